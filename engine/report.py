"""The run report: one self-contained HTML page built from a run directory.

:func:`write_report` reads a finished run directory (see INTERFACE.md: ``summary.json``, ``atoms.csv``,
``grammar.txt``, ``tokens.npz``, ``embedding.npz``, ``overlays/``) and writes ``report.html`` (and
``tokens.png``, the token gallery as a picture) without recomputing anything, so ``motifgram report RUN_DIR``
can rebuild them at any time. The page is the Jinja2 template ``templates/report.html`` (its charts in
``templates/charts.svg``, geometry from :mod:`motifgram.engine.charts`); this module gathers what the template
shows. Overlays are drawn by :mod:`motifgram.engine.overlay`.

The page is self-contained: images are embedded as base64 PNG (``data:`` URIs) or inline SVG, the CSS is
inline, fonts come from the system stack, and there is no JavaScript and no external URL. Every optional
input that is missing or unreadable leaves a short note in its place instead of an error.
"""

import io
import logging
import math
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

import jinja2
import numpy as np
import yaml
from PIL import Image

from motifgram.engine import rundir
from motifgram.engine.charts import (
    abundance_chart,
    comparison_chart,
    embedding_png,
    hierarchy_chart,
    histogram_chart,
    png_uri,
)
from motifgram.engine.errors import GrammarError, MotifgramError
from motifgram.engine.overlay import hex_colour, quantised, render_token_gallery_png, token_colours
from motifgram.grammar.model import Grammar

__all__ = ["write_report", "render_token_gallery", "REPORT_SECTIONS"]

log = logging.getLogger(__name__)

REPORT_SECTIONS = ("run", "micrographs", "tokens", "grammar", "rings", "timings")
"""The ``id`` of every top-level section of ``report.html``, in page order."""

_TITLES = ("Run", "Micrographs", "Tokens", "Grammar", "Rings", "Timings")
#: Overlays larger than this (long side, px) or heavier than _MAX_PNG_BYTES are shrunk before embedding.
_MAX_EMBED_PX = 1600
_MAX_PNG_BYTES = 3_000_000
# Things an optional input can raise when absent, truncated or written with other keys than expected.
_OPTIONAL_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, zipfile.BadZipFile, MotifgramError)


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("motifgram.engine", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, bytecode_cache=_bytecode_cache())
    env.filters["num"] = _fmt
    return env


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja's cache of compiled templates in its private per-user temporary folder (keyed by each template's
    source), so that a new process does not compile them again (70-85 ms of CPU at 2048²); a template that
    cannot be written there is compiled again next time."""

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:
            log.debug("compiled template not cached: %s", exc)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """A :class:`_TemplateCache`, or none where its folder cannot be made safely."""
    try:
        return _TemplateCache()
    except (RuntimeError, OSError) as exc:
        log.debug("templates compiled without a cache: %s", exc)
        return None


def _fmt(value, digits: int = 3) -> str:
    """A number for a table cell ("—" for missing), integers without decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _optional(what: str, build: Callable):
    """``(build(), None)``, or ``(None, note)`` saying why ``what`` is not shown when its inputs are missing or
    unreadable."""
    try:
        return build(), None
    except FileNotFoundError as exc:
        return None, f"No {what}: {Path(exc.filename).name if exc.filename else 'input'} is not in the run directory."
    except _OPTIONAL_ERRORS as exc:
        log.warning("report: %s not shown: %s", what, exc)
        return None, f"No {what}: {type(exc).__name__}: {exc}"


def _slug(text) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"


def _coverage_text(coverage) -> str:
    if not isinstance(coverage, Mapping) or not coverage:
        return _fmt(coverage)
    return " · ".join(f"L{k} {100 * float(v):.1f}%" for k, v in sorted(coverage.items(), key=lambda kv: _level(kv[0])))


def _level(level) -> int:
    try:
        return int(level)
    except (TypeError, ValueError):
        return 10**6


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------------
# What each section shows


def _run(run_dir: Path, summary: dict) -> dict:
    images = summary.get("images") or {}
    grammar = summary.get("grammar") or {}
    tokens = summary.get("tokens") or {}
    spec = summary.get("spec")
    return {
        "facts": [
            ("run", summary.get("name") or run_dir.name),
            ("created", summary.get("created", "—")),
            ("output", summary.get("output_dir", run_dir.name)),
            ("micrographs", _fmt(len(images))),
            ("groups", _fmt(len(summary.get("groups") or {}))),
            ("atoms", _fmt(sum(int(v.get("n_atoms", 0)) for v in images.values()))),
            ("tokens", _fmt(tokens.get("k", len(tokens.get("names", [])) or None))),
            ("grammar rules", _fmt(grammar.get("n_rules"))),
            ("description length", f"{_fmt(grammar.get('description_length_bits'), 1)} bits"),
        ],
        "versions": [(k, v) for k, v in (summary.get("versions") or {}).items()],
        "spec_yaml": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, default_flow_style=False) if spec else "",
    }


def _embeddable_png(path: Path) -> bytes:
    """The PNG at ``path``, shrunk to ≤ 1600 px and palette-quantised if it is larger or heavier than that."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        if max(img.size) <= _MAX_EMBED_PX and len(data) <= _MAX_PNG_BYTES and img.format == "PNG":
            return data
        img = img.convert("RGB")
        if max(img.size) > _MAX_EMBED_PX:
            img.thumbnail((_MAX_EMBED_PX, _MAX_EMBED_PX), Image.Resampling.LANCZOS)
        return _png_bytes(quantised(img))


def _micrographs(run_dir: Path, summary: dict) -> list[dict]:
    out = []
    for image_id, info in (summary.get("images") or {}).items():
        stats = info.get("ring_stats") or {}
        shape = info.get("shape")
        overlay, note = _optional("overlay", lambda i=image_id: png_uri(_embeddable_png(rundir.overlay_path(run_dir, i))))
        out.append({
            "id": image_id, "slug": _slug(image_id), "overlay": overlay, "overlay_note": note,
            "facts": [
                ("group", _fmt(info.get("group"))),
                ("source", _fmt(info.get("source"))),
                ("shape (rows × cols)", " × ".join(str(s) for s in shape) if shape else "—"),
                ("pixel size", f"{_fmt(info.get('pixel_size_nm'), 4)} nm" if info.get("pixel_size_nm") else "—"),
                ("lattice period", f"{_fmt(info.get('lattice_period_px'), 2)} px"),
                ("atoms", _fmt(info.get("n_atoms"))),
                ("bonds", _fmt(info.get("n_bonds"))),
                ("rings", _fmt(info.get("n_rings"))),
                ("⟨n⟩", _fmt(stats.get("mean"))),
                ("μ₂", _fmt(stats.get("mu2"))),
                ("coverage", _coverage_text(info.get("coverage"))),
                ("bits per atom", _fmt(info.get("bits_per_atom"))),
                ("disorder", _fmt(info.get("disorder"))),
            ],
        })
    return out


def _token_names(summary: dict, npz: dict | None, atom_stats: dict | None) -> list[str]:
    """Token names in colour order: tokens.npz, else summary.json, else atoms.csv, else token counts."""
    if npz is not None and "names" in npz:
        return [str(s) for s in npz["names"]]
    names = (summary.get("tokens") or {}).get("names")
    if names:
        return [str(s) for s in names]
    if atom_stats:
        return sorted(atom_stats)
    totals: Counter = Counter()
    for info in (summary.get("images") or {}).values():
        totals.update(info.get("token_counts") or {})
    return sorted(totals)


def _token_gallery_data(run_dir: Path, summary: dict, token_stats: Mapping | None = None):
    """Token names (colour order), per-token ``(atoms, mean confidence)`` (``token_stats``, else read from
    atoms.csv), class averages (T, P, P) or None, and notes on what could not be read."""
    notes = []
    npz = None
    try:
        npz = rundir.read_token_arrays(run_dir)
    except FileNotFoundError:
        notes.append("No class averages: tokens.npz is not in the run directory.")
    except _OPTIONAL_ERRORS as exc:
        notes.append(f"No class averages: tokens.npz cannot be read ({exc}).")
    atom_stats = token_stats
    try:
        if atom_stats is None:
            atom_stats = rundir.read_token_stats(run_dir)
    except FileNotFoundError:
        notes.append("No confidences: atoms.csv is not in the run directory; counts come from summary.json.")
    except _OPTIONAL_ERRORS as exc:
        notes.append(f"No confidences: atoms.csv cannot be read ({exc}).")
    names = _token_names(summary, npz, atom_stats)
    if atom_stats is None:
        totals: Counter = Counter()
        for info in (summary.get("images") or {}).values():
            totals.update({k: int(v) for k, v in (info.get("token_counts") or {}).items()})
        atom_stats = {tok: (n, None) for tok, n in totals.items()}
    averages = npz.get("class_averages") if npz is not None else None
    if averages is not None and (averages.ndim != 3 or len(averages) != len(names)):
        notes.append(f"No class averages: class_averages has shape {averages.shape}, expected ({len(names)}, P, P).")
        averages = None
    elif npz is not None and averages is None:
        notes.append("No class averages: tokens.npz has no 'class_averages' array.")
    return names, atom_stats, averages, notes


def _class_average_png(avg: np.ndarray, size: int = 112) -> bytes:
    a = np.asarray(avg, dtype=float)
    finite = np.isfinite(a)
    lo, hi = (a[finite].min(), a[finite].max()) if finite.any() else (0.0, 1.0)
    grey = np.where(finite, (a - lo) / (hi - lo if hi > lo else 1.0), 0.0)
    img = Image.fromarray((255 * grey).astype(np.uint8), mode="L")
    return _png_bytes(img.resize((size, size), Image.Resampling.BICUBIC))


def _merging(merging: dict | None, n_tokens: int) -> dict | None:
    """How the BIC mixture's components became the tokens (summary.json ``tokens.merging``), if recorded.

    By the merge threshold, or, for the chemistry descriptor, by the shortest description (``vocabulary``).
    """
    if not merging:
        return None
    decided = [f"{label} at Bhattacharyya coefficient {merging[key]:.3f}"
               for key, label in (("last_merged", "last merge"), ("first_kept_apart", "first pair kept apart"))
               if merging.get(key) is not None]
    vocabulary = merging.get("vocabulary")
    if vocabulary:  # the chemistry descriptor: the count with the shortest description (engine/vocabulary.py)
        runner_up = vocabulary.get("runner_up_bits")
        text = (f"{merging['mixture_components']} mixture components (K by BIC) became {n_tokens} token(s): the "
                f"token count with the shortest description of tokens, structure and data "
                f"({vocabulary['description_length_bits']['total']:,.1f} bits"
                + (f"; the next best count is {runner_up:,.1f} bits longer)." if runner_up is not None else ")."))
        if vocabulary.get("close_call"):
            text += " A close call: tokens.k in the spec fixes the count."
        return {"text": text, "close_call": bool(merging.get("close_call"))}
    text = (f"{merging['mixture_components']} mixture components (K by BIC) became {n_tokens} token(s), merged while "
            f"their overlap exceeded {merging['threshold']:g}" + (f": {', '.join(decided)}." if decided else "."))
    if merging.get("close_call"):
        low, high = merging["undecided"]
        text += (f" A close call: that overlap lies between those of one site class split in two and of different "
                 f"classes in the threshold's calibration ({low:g}-{high:g}), so the count is not backed by it; "
                 "tokens.k in the spec fixes the count.")
    return {"text": text, "close_call": bool(merging.get("close_call"))}


def _tokens(run_dir: Path, summary: dict, gallery) -> dict:
    names, atom_stats, averages, notes = gallery
    total = sum(n for n, _ in atom_stats.values()) or 1
    colours = token_colours(len(names))
    cards = []
    for i, name in enumerate(names):
        n, conf = atom_stats.get(name, (0, None))
        cards.append({"name": name, "colour": hex_colour(colours[i]), "count": n, "share": 100 * n / total,
                      "confidence": conf,
                      "picture": png_uri(_class_average_png(averages[i])) if averages is not None else None})

    def embedding():
        xy, tok = rundir.read_embedding(run_dir)
        return png_uri(embedding_png(xy, tok, names))

    picture, note = _optional("embedding plot", embedding)
    return {"notes": notes, "cards": cards, "embedding": picture, "embedding_note": note,
            "merging": _merging((summary.get("tokens") or {}).get("merging"), len(names))}


def _grammar(run_dir: Path, summary: dict, grammar: Grammar | None = None) -> dict:
    path = run_dir / rundir.GRAMMAR_TXT
    out = {"text": None, "parse_note": None, "hierarchy": None, "hierarchy_note": None}
    try:
        out["text"] = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        pass
    else:
        try:
            grammar = grammar if grammar is not None else Grammar.parse_text(out["text"], source=str(path))
        except GrammarError as exc:
            out["parse_note"] = f"Hierarchy not drawn: grammar.txt does not parse ({exc})."
        else:
            out["hierarchy"], out["hierarchy_note"] = _optional("hierarchy", lambda: hierarchy_chart(grammar))
    out["abundance"] = [{"id": image_id, "chart": abundance_chart(info.get("relative_abundance") or {})}
                        for image_id, info in (summary.get("images") or {}).items()]
    return out


def _rings(summary: dict) -> dict:
    images = summary.get("images") or {}
    hist = {i: {int(k): int(v) for k, v in (info.get("ring_histogram") or {}).items()} for i, info in images.items()}
    hist = {i: h for i, h in hist.items() if sum(h.values()) > 0}
    groups = summary.get("groups") or {}
    comparison = summary.get("comparison")
    if comparison:
        chart, note = _optional("comparison", lambda: _comparison(comparison))
        compared = chart or {"note": note}
    elif len(groups) > 1:
        compared = {"note": "summary.json holds no comparison for these groups; run `motifgram compare` on the run."}
    else:
        compared = {"note": "A single group: no comparison."}
    return {
        "histogram": histogram_chart(hist) if hist else None,
        "rows": [(i, _fmt(info.get("group")), _fmt(info.get("n_rings")), _fmt((info.get("ring_stats") or {}).get("mean")),
                  _fmt((info.get("ring_stats") or {}).get("mu2")), _fmt(info.get("disorder"))) for i, info in images.items()],
        "groups": [(g, ", ".join(map(str, v.get("images", []))), _fmt(v.get("disorder"))) for g, v in groups.items()],
        "comparison": compared,
    }


def _comparison(comparison: Mapping) -> dict:
    items = [str(it.get("name")) if isinstance(it, Mapping) else str(it) for it in comparison["items"]]
    dist = np.asarray(comparison["distance"], dtype=float)
    if dist.shape != (len(items), len(items)):
        raise ValueError(f"comparison: distance is {dist.shape}, expected {len(items)} × {len(items)}")
    disorder = comparison.get("disorder") or {
        str(it.get("name")): it.get("disorder") for it in comparison["items"] if isinstance(it, Mapping)}
    return {
        "note": None, "metric": comparison.get("metric"), "chart": comparison_chart(items, dist),
        "ranking": [(str(k + 1), name, _fmt(disorder.get(str(name)))) for k, name in enumerate(comparison.get("ranking") or [])],
        "differences": [
            (f"{d['a']} / {d['b']}",
             ", ".join(f"{e['symbol']} ({e['weight']:.0%})" for e in d["only_in_a"]) or "—",
             ", ".join(f"{e['symbol']} ({e['weight']:.0%})" for e in d["only_in_b"]) or "—")
            for d in comparison.get("differences") or []
        ],
    }


def _timings(summary: dict) -> dict | None:
    values = {str(k): float(v) for k, v in (summary.get("timings") or {}).items()}
    if not values:
        return None
    total = sum(values.values())
    longest = max(values.values()) or 1.0
    return {"total": total, "rows": [{"stage": k, "seconds": v, "share": f"{100 * v / total:.1f}%" if total else "—",
                                      "width": 100 * v / longest} for k, v in values.items()]}


# ------------------------------------------------------------------------------------------------------------
# Entry points


def render_token_gallery(run_dir) -> bytes:
    """The token gallery as one PNG: each token's rotation-aligned class average (its atoms' mean
    neighbourhood), framed in the token's overlay colour, with its name, atom count and share.

    Reads ``summary.json``, ``tokens.npz`` and ``atoms.csv`` of a run directory, as :func:`write_report`
    does; a token without a class average gets an empty frame.

    Returns
    -------
    bytes
        PNG data (170 x 210 px per token, 8 tokens per row).
    """
    run_dir = Path(run_dir)
    return _gallery_png(_token_gallery_data(run_dir, rundir.read_summary(run_dir)))


def _gallery_png(gallery) -> bytes:
    names, atom_stats, averages, _ = gallery
    counts = [atom_stats.get(name, (0, None))[0] for name in names]
    return _png_bytes(render_token_gallery_png(names, counts, averages))


def write_report(run_dir, *, grammar: Grammar | None = None, token_stats: Mapping | None = None) -> Path:
    """Write ``run_dir/report.html``, one self-contained page summarising a finished run, and
    ``run_dir/tokens.png``, its token gallery as a picture (:func:`render_token_gallery`).

    Reads only the run directory's files, recomputing nothing: ``summary.json`` (required), and, where present,
    ``overlays/<image>.png``, ``atoms.csv`` (token counts and mean confidence), ``tokens.npz`` (``names``
    (K,) and ``class_averages`` (K, P, P)), ``embedding.npz`` (``xy`` (S, 2) and ``token`` (S,)) and
    ``grammar.txt``. A missing optional input leaves a short note on the page.

    Sections (their ids are :data:`REPORT_SECTIONS`): ``run`` (name, date, software versions, the spec as
    YAML), ``micrographs`` (overlay and key numbers of each), ``tokens`` (gallery of class averages with
    count, share and confidence; embedding scatter), ``grammar`` (its text, the hierarchy as a graph,
    relative abundances per level), ``rings`` (p_n, ⟨n⟩, μ2; groups; the comparison's distance matrix,
    dendrogram and disorder ranking when ``summary.json`` has ``comparison``) and ``timings``.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by ``motifgram run``.
    grammar : Grammar, optional
        The grammar of ``grammar.txt``, when the caller holds it (:func:`motifgram.engine.run`): the file is
        then not parsed again.
    token_stats : mapping of str to (int, float), optional
        Per token, (atoms, mean confidence) as :func:`rundir.read_token_stats` reads them from ``atoms.csv``,
        when the caller holds them: the file is then not read. Either gives the page a rebuild gives.

    Returns
    -------
    Path
        The path of ``report.html``.

    Raises
    ------
    MotifgramError
        If ``run_dir`` has no readable ``summary.json``.
    """
    run_dir = Path(run_dir)
    summary = rundir.read_summary(run_dir)
    gallery = _token_gallery_data(run_dir, summary, token_stats)
    page = _templates().get_template("report.html").render(
        name=str(summary.get("name") or run_dir.name),
        nav=list(zip(REPORT_SECTIONS, _TITLES, strict=True)),
        run=_run(run_dir, summary),
        micrographs=_micrographs(run_dir, summary),
        tokens=_tokens(run_dir, summary, gallery),
        grammar=_grammar(run_dir, summary, grammar),
        rings=_rings(summary),
        timings=_timings(summary),
    )
    out = run_dir / rundir.REPORT_HTML
    out.write_text(page, encoding="utf-8")
    (run_dir / rundir.TOKEN_GALLERY_PNG).write_bytes(_gallery_png(gallery))
    log.info("wrote %s (%.1f MB)", out, len(page) / 1e6)
    return out
