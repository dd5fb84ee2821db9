"""Short text and HTML summaries of motifgram objects, for notebooks and the Python prompt.

A summary is a title and a few ``(label, value)`` rows: sizes and counts, never the arrays behind them
(the default dataclass repr of a 512² simulation prints 54 KB). ``repr()`` shows the text form;
Jupyter shows the HTML form (``_repr_html_``).
"""

import html
from collections.abc import Iterable, Mapping

__all__ = ["summary_text", "summary_html", "format_counts", "plural"]


def summary_text(title: str, rows: Iterable[tuple[str, str]]) -> str:
    """``title`` and one indented ``label: value`` line per row."""
    return "\n".join([title, *(f"  {label}: {value}" for label, value in rows)])


def summary_html(title: str, rows: Iterable[tuple[str, str]]) -> str:
    """The same as a small HTML table (everything escaped)."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(label)}</th><td style='text-align:left'>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>{body}</table>"


def format_counts(counts: Mapping, *, limit: int = 8) -> str:
    """``"A 3109, B 12"``: the first ``limit`` entries of a mapping, then how many more there are.

    Examples
    --------
    >>> format_counts({"A": 3, "B": 1, "C": 1}, limit=2)
    'A 3, B 1 (+1 more)'
    """
    items = list(counts.items())
    text = ", ".join(f"{key} {value}" for key, value in items[:limit])
    return text + (f" (+{len(items) - limit} more)" if len(items) > limit else "") if items else "none"


def plural(n: int, noun: str) -> str:
    """``"1 token"``, ``"3 tokens"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
