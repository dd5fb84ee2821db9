"""The text form of a comparison (``motifgram compare``): distances, levels, vocabulary, ranking and labels."""

from __future__ import annotations

from scipy.cluster.hierarchy import leaves_list

from motifgram.grammar.classify import UNKNOWN
from motifgram.grammar.compare import WEIGHTS, Comparison

__all__ = ["format_table"]


def _matrix(rows, short, width, fmt) -> list[str]:
    head = " " * (width + 2) + " ".join(f"{s:>{width}}" for s in short)
    return [head] + [f"{s:<{width}}  " + " ".join(f"{'-':>{width}}" if v is None else f"{v:>{width}{fmt}}" for v in row)
                     for s, row in zip(short, rows, strict=True)]


def format_table(comparison: Comparison, *, width: int = 12, levels: bool = True) -> str:
    """A readable text table.

    Parameters
    ----------
    comparison : Comparison
    width : int
        Column width (longer names are cut with an ellipsis).
    levels : bool
        Also print the distance matrix of each computed level (``-``: not measured for that pair), and name the
        levels not computed.

    Returns
    -------
    str
        The combined distances with each item's disorder, the token vocabulary and how well each item's
        tokens matched it, each level's distances, the ranking, and the classification (or clustering).
    """
    names = comparison.names
    short = [n if len(n) <= width else n[: width - 1] + "…" for n in names]
    lines = ["distance (0 = same structure, 1 = nothing in common): weighted mean of the levels ("
             + ", ".join(f"{k} {w:g}" for k, w in WEIGHTS.items()) + ")"]
    head, *rows = _matrix(comparison.distance.tolist(), short, width, ".3f")
    lines.append(head + f" {'disorder':>9}")
    for row, item in zip(rows, comparison.items, strict=True):
        mark = "*" if item.disorder_source != "images" else " "
        lines.append(row + f" {item.disorder:>8.3f}{mark}")
    if any(item.disorder_source != "images" for item in comparison.items):
        lines.append("* disorder estimated from the grammar alone (no micrographs)")
    vocab = comparison.vocabulary
    lines += ["", f"tokens: {vocab.method} — {vocab.source}"]
    if vocab.model is not None:
        lines.append(f"  common tokens: {', '.join(vocab.model.names)}")
        for name, m in vocab.match.items():
            lines.append(f"  {name}: {m['own_tokens']} own tokens, agreement {m['agreement']:.3f}, mean confidence "
                         f"{m['mean_confidence']:.3f}")
    if levels and len(names) > 1:
        for level in WEIGHTS:
            if level in comparison.levels_computed:
                lines += ["", f"{level}:"] + _matrix(comparison.level_matrix(level), short, width, ".3f")
            else:
                lines += ["", f"{level}: not computed (weight 0; --levels {level} computes it)"]
    lines += ["", "ranking (least to most disordered): " + " < ".join(comparison.ranking)]
    skipped = sorted({p.cross_dl_note for p in comparison.pairs.values() if p.cross_dl_note})
    if skipped:
        lines += ["", "cross description length skipped:"] + [f"  {note}" for note in skipped]
    if comparison.classification:
        threshold = next(iter(comparison.classification.values())).threshold
        spread = ", ".join(f"{k} {v:.3f}" for k, v in comparison.spreads.items()) or "none measured"
        lines += ["", f"classification (nearest reference; unknown beyond {threshold:.3f}, reference spread: "
                      f"{spread}):"]
        for name, c in comparison.classification.items():
            if c.label == UNKNOWN:
                lines.append(f"  {name}: {UNKNOWN} (nearest {c.nearest} at {c.distances[c.nearest]:.3f}, "
                             f"{c.margin:.3f} beyond)")
            else:
                margin = "-" if c.margin is None else f"{c.margin:.3f}"
                lines.append(f"  {name}: {c.label} (margin {margin})")
    elif comparison.linkage is not None:
        order = [names[i] for i in leaves_list(comparison.linkage)]
        lines += ["", "clustering (average linkage) leaf order: " + ", ".join(order)]
    return "\n".join(lines)
