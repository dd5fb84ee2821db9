"""The run report: overlay images and one self-contained HTML page built from a run directory.

:func:`render_overlay` draws one micrograph with its atoms coloured by token and its rings filled by grammar
symbol (``overlays/<image>.png``). :func:`write_report` reads a finished run directory (see INTERFACE.md:
``summary.json``, ``atoms.csv``, ``grammar.txt``, ``tokens.npz``, ``embedding.npz``, ``overlays/``) and writes
``report.html`` (and ``tokens.png``, the token gallery as a picture) without recomputing anything, so
``motifgram report RUN_DIR`` can rebuild them at any time.

The page is self-contained: images are embedded as base64 PNG (``data:`` URIs) or inline SVG, the CSS is
inline, fonts come from the system stack, and there is no JavaScript and no external URL. Every optional
input that is missing or unreadable leaves a short note in its place instead of an error.

Figures use :class:`matplotlib.figure.Figure` with explicit canvases, never pyplot, so nothing here touches
matplotlib's global backend or figure registry.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image
from scipy.spatial import cKDTree

from motifgram.engine import rundir
from motifgram.engine.errors import GrammarError, MotifgramError
from motifgram.engine.scalebar import add_scale_bar
from motifgram.grammar.model import Grammar

__all__ = [
    "render_overlay",
    "render_token_gallery",
    "write_report",
    "REPORT_SECTIONS",
    "token_colours",
    "ring_symbol_colours",
]

log = logging.getLogger(__name__)

REPORT_SECTIONS = ("run", "micrographs", "tokens", "grammar", "rings", "timings")
"""The ``id`` of every top-level section of ``report.html``, in page order."""

#: Long side of the micrograph area of an overlay, px (the legend panel adds :data:`_LEGEND_PX`).
OVERLAY_IMAGE_PX = 1200
_LEGEND_PX = 380
_TITLE_PX = 48
#: Height of one legend row, px.
_ROW_PX = 30
_DPI = 100
#: Overlays larger than this (long side, px) or heavier than _MAX_PNG_BYTES are shrunk before embedding.
_MAX_EMBED_PX = 1600
_MAX_PNG_BYTES = 3_000_000
#: Ring symbols with their own colour in an overlay; rarer ones share the "other" grey.
_MAX_RING_COLOURS = 16
_OTHER = "other"
_OTHER_COLOUR = (0.6, 0.6, 0.6, 1.0)
#: Nodes per level drawn in the hierarchy (the most frequent); symbols per level in an abundance chart.
_MAX_NODES_PER_LEVEL = 30
_MAX_BARS = 12

# Qualitative palettes: saturated ones for atom dots, a different family for the ring fills so the two
# never look alike.
_TOKEN_CMAPS = ("tab10", "tab20")
_RING_CMAPS = ("Set2", "Dark2")


# --------------------------------------------------------------------------------------------------------------
# Colours


def token_colours(n_tokens: int) -> np.ndarray:
    """Colours of atom tokens: ``(n_tokens, 4)`` RGBA in [0, 1], token ``i`` -> row ``i``.

    The same colours are used in overlays, the token gallery and the embedding plot, so pass the token
    names to :func:`render_overlay` in the order of ``tokens.npz``'s ``names``.
    """
    cmap = mpl.colormaps[_TOKEN_CMAPS[0] if n_tokens <= 10 else _TOKEN_CMAPS[1]]
    return np.array([cmap(i % cmap.N) for i in range(n_tokens)], dtype=float)


def ring_symbol_colours(names: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """Colours of ring symbols: the first 16 names (put the most frequent first) get distinct colours.

    Returns a mapping name -> RGBA for the first ``16`` names; any other symbol is drawn in grey as "other".
    """
    colours = [c for name in _RING_CMAPS for c in mpl.colormaps[name].colors]
    return {name: to_rgba(colours[i]) for i, name in enumerate(list(names)[:_MAX_RING_COLOURS])}


# --------------------------------------------------------------------------------------------------------------
# Overlay


def render_overlay(
    image,
    xy,
    tokens,
    token_names: Sequence[str],
    rings: Sequence[Sequence[int]],
    ring_symbols: Sequence[str],
    path,
    *,
    title: str | None = None,
    ring_symbol_names: Sequence[str] | None = None,
    pixel_size_nm: float | None = None,
) -> None:
    """Write a PNG of a micrograph with atoms coloured by token and rings filled by grammar symbol.

    The micrograph area is :data:`OVERLAY_IMAGE_PX` (1200) px on its long side, whatever the image size; a
    380 px legend panel sits on its right and, with a ``title``, a 48 px strip on top. So an ``(H, W)`` image
    gives a PNG of ``round(1200 W / max(H, W)) + 380`` by ``round(1200 H / max(H, W)) (+ 48)`` px (taller if
    the legend needs it), ≤ 1600 px on its long side. The PNG is palette-quantised (256 colours) to stay
    small: about 1 MB for a 2048² micrograph with 50,000 atoms, drawn in about a second.

    Parameters
    ----------
    image : (H, W) float array
        The micrograph; shown in grey between its 0.5th and 99.5th percentiles.
    xy : (N, 2) float array, px
        Atom positions, x = column, y = row, origin at the centre of the top-left pixel.
    tokens : (N,) int array
        Index of each atom's token in ``token_names``.
    token_names : sequence of str, length K
        Token names; token ``i`` is drawn in ``token_colours(K)[i]``.
    rings : sequence of sequences of int, length R
        Atom indices of each ring, in cyclic order.
    ring_symbols : sequence of str, length R
        The grammar symbol of each ring.
    path : str or Path
        Where to write the PNG (parent folders are created).
    title : str, optional
        A title above the image.
    ring_symbol_names : sequence of str, optional
        Ring symbols in colour order (most frequent first), to give a symbol the same colour in every
        micrograph of a run. Default: this image's symbols by decreasing count.
    pixel_size_nm : float, optional
        When known, a scale bar is drawn in the lower left corner.

    Raises
    ------
    ValueError
        If the shapes disagree or a token or atom index is out of range.
    """
    image = np.asarray(image, dtype=np.float32)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    ring_symbols = [str(s) for s in ring_symbols]
    n = len(xy)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"render_overlay: image must be a non-empty 2-D array, got shape {image.shape}")
    if len(tokens) != n:
        raise ValueError(f"render_overlay: {n} positions but {len(tokens)} tokens")
    if n and (tokens.min() < 0 or tokens.max() >= len(token_names)):
        raise ValueError(f"render_overlay: token indices must lie in 0..{len(token_names) - 1}")
    if len(ring_symbols) != len(rings):
        raise ValueError(f"render_overlay: {len(rings)} rings but {len(ring_symbols)} ring symbols")
    if any(len(r) and (min(r) < 0 or max(r) >= n) for r in rings):
        raise ValueError(f"render_overlay: a ring names an atom outside 0..{n - 1}")

    h, w = image.shape
    scale = OVERLAY_IMAGE_PX / max(h, w)
    img_w, img_h = round(w * scale), round(h * scale)
    title_px = _TITLE_PX if title else 0

    counts = Counter(ring_symbols)
    order = list(ring_symbol_names) if ring_symbol_names is not None else sorted(counts, key=lambda s: (-counts[s], s))
    ring_colour = ring_symbol_colours(order)
    shown_rings = [s for s in order if s in counts and s in ring_colour]
    has_other = any(s not in ring_colour for s in counts)
    n_legend_rows = len(token_names) + len(shown_rings) + has_other + 4
    fig_w = img_w + _LEGEND_PX
    fig_h = max(img_h + title_px, min(_MAX_EMBED_PX, _ROW_PX * n_legend_rows + title_px))

    fig = Figure(figsize=(fig_w / _DPI, fig_h / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(fig)
    top = 1.0 - title_px / fig_h
    ax = fig.add_axes((0.0, top - img_h / fig_h, img_w / fig_w, img_h / fig_h))
    ax.set_axis_off()
    # Percentiles from a strided subsample: the same contrast at a fraction of the cost.
    step = max(1, int(math.sqrt(image.size / 250_000)))
    lo, hi = np.percentile(image[::step, ::step], (0.5, 99.5))
    if scale < 1.0:  # shrink to the drawn size first: a box filter is both faster and cleaner than imshow's
        image = np.asarray(Image.fromarray(image, mode="F").resize((img_w, img_h), Image.Resampling.BOX))
    ax.imshow(
        image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1.0, origin="upper",
        extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest" if scale < 1.0 else "antialiased",
        aspect="auto",
    )
    faces = np.array([ring_colour.get(s, _OTHER_COLOUR) for s in ring_symbols]).reshape(-1, 4)
    by_size: dict[int, list[int]] = {}
    for k, r in enumerate(rings):
        by_size.setdefault(len(r), []).append(k)
    for size, members in by_size.items():
        # One (R, size, 2) array per ring size takes PolyCollection's fast path (~20x faster than a list).
        polygons = xy[np.array([rings[k] for k in members], dtype=np.int64).reshape(len(members), size)]
        ax.add_collection(PolyCollection(polygons, facecolors=faces[members], edgecolors="none", alpha=0.45))
    if n:
        diameter_px = 0.4 * _spacing_px(xy) * scale
        size_pt2 = (np.clip(diameter_px, 1.5, 12.0) * 72.0 / _DPI) ** 2
        colours = token_colours(len(token_names))
        ax.scatter(xy[:, 0], xy[:, 1], s=size_pt2, c=colours[tokens], linewidths=0, marker="o")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    if pixel_size_nm is not None:
        add_scale_bar(ax, pixel_size_nm=pixel_size_nm, image_width_px=w, fontsize=16)
    if title:
        fig.text(0.01, 1.0 - 0.5 * title_px / fig_h, title, va="center", ha="left", fontsize=20)

    legend_ax = fig.add_axes((img_w / fig_w, 0.0, _LEGEND_PX / fig_w, top))
    legend_ax.set_axis_off()
    present = np.bincount(tokens, minlength=len(token_names)) if n else np.zeros(len(token_names), int)
    token_handles = [
        Line2D([], [], marker="o", linestyle="", markersize=12, markerfacecolor=colours_i, markeredgewidth=0,
               label=f"{name}  ({present[i]})")
        for i, (name, colours_i) in enumerate(zip(token_names, token_colours(len(token_names)), strict=True))
    ]
    ring_handles = [Patch(facecolor=ring_colour[s], alpha=0.6, label=f"{s}  ({counts[s]})") for s in shown_rings]
    if has_other:
        n_other = sum(c for s, c in counts.items() if s not in ring_colour)
        ring_handles.append(Patch(facecolor=_OTHER_COLOUR, alpha=0.6, label=f"{_OTHER}  ({n_other})"))
    style = {"loc": "upper left", "frameon": False, "fontsize": 15, "title_fontsize": 16, "alignment": "left"}
    first = legend_ax.legend(handles=token_handles, title="atom tokens", **style)
    if ring_handles:
        legend_ax.add_artist(first)
        rows_above = len(token_handles) + 2.5
        legend_ax.legend(handles=ring_handles, title="rings (grammar symbol)", **style,
                         bbox_to_anchor=(0.0, 1.0 - rows_above * _ROW_PX / (top * fig_h)))
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _quantised(Image.fromarray(rgb)).save(path, format="PNG", optimize=True)


def _spacing_px(xy: np.ndarray) -> float:
    """Median nearest-neighbour distance of the atoms (px); 8 px when there are fewer than two."""
    if len(xy) < 2:
        return 8.0
    sample = xy[:: max(1, len(xy) // 5000)]
    dist, _ = cKDTree(xy).query(sample, k=2)
    spacing = float(np.median(dist[:, 1]))
    return spacing if spacing > 0 else 8.0


def _quantised(img: Image.Image) -> Image.Image:
    """A 256-colour palette copy: a third of an RGB PNG's size, visually the same for these plots."""
    return img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


# --------------------------------------------------------------------------------------------------------------
# Embedding helpers


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(data: bytes, alt: str, *, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} alt="{html.escape(alt)}" src="{_png_uri(data)}">'


def _pil_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _embeddable_png(path: Path) -> bytes:
    """The PNG at ``path``, shrunk to ≤ 1600 px and palette-quantised if it is larger or heavier than that."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        if max(img.size) <= _MAX_EMBED_PX and len(data) <= _MAX_PNG_BYTES and img.format == "PNG":
            return data
        img = img.convert("RGB")
        if max(img.size) > _MAX_EMBED_PX:
            img.thumbnail((_MAX_EMBED_PX, _MAX_EMBED_PX), Image.Resampling.LANCZOS)
        return _pil_png(_quantised(img))


def _fig_png(fig: Figure, *, quantise: bool = True) -> bytes:
    """The figure as PNG; palette-quantised (small, for embedding) unless ``quantise`` is False."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    img = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    return _pil_png(_quantised(img) if quantise else img)


_SVG_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_SVG_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_SVG_DATA_URI = re.compile(r'(href="data:image/png;base64,)([^"]*)')


def _fig_svg(fig: Figure, key: str) -> str:
    """The figure as inline SVG markup: no XML prologue, metadata or namespace URLs.

    ``key`` salts matplotlib's element ids so that ids of different figures on one page never collide and
    the page is byte-identical when rebuilt. Text stays text (system fonts), which keeps the SVG small.
    """
    buf = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": f"motifgram-{key}", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = _SVG_METADATA.sub("", _SVG_PROLOGUE.sub("", buf.getvalue(), count=1))
    svg = _SVG_DATA_URI.sub(lambda m: m.group(1) + re.sub(r"\s+", "", m.group(2)), svg)
    return _SVG_XMLNS.sub("", svg)


# --------------------------------------------------------------------------------------------------------------
# Reading the run directory


# Things an optional input can raise when absent, truncated or written with other keys than expected.
_OPTIONAL_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, zipfile.BadZipFile, MotifgramError)


def _optional(what: str, build: Callable[[], str]) -> str:
    """``build()``, or a note saying why ``what`` is not shown when its inputs are missing or unreadable."""
    try:
        return build()
    except FileNotFoundError as exc:
        return _note(f"No {what}: {Path(exc.filename).name if exc.filename else 'input'} is not in the run directory.")
    except _OPTIONAL_ERRORS as exc:
        log.warning("report: %s not shown: %s", what, exc)
        return _note(f"No {what}: {type(exc).__name__}: {exc}")


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


# --------------------------------------------------------------------------------------------------------------
# Formatting


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
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence], *, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(sid: str, heading: str, body: str) -> str:
    return f'<section id="{sid}">\n<h2>{html.escape(heading)}</h2>\n{body}\n</section>'


def _level_key(level) -> int:
    try:
        return int(level)
    except (TypeError, ValueError):
        return 10**6


def _coverage_text(coverage) -> str:
    if not isinstance(coverage, Mapping) or not coverage:
        return _fmt(coverage)
    return " · ".join(
        f"L{html.escape(str(k))} {100 * float(v):.1f}%"
        for k, v in sorted(coverage.items(), key=lambda kv: _level_key(kv[0]))
    )


# --------------------------------------------------------------------------------------------------------------
# Sections


def _section_run(run_dir: Path, summary: dict) -> str:
    name = summary.get("name") or run_dir.name
    images = summary.get("images") or {}
    grammar = summary.get("grammar") or {}
    tokens = summary.get("tokens") or {}
    facts = [
        ("run", html.escape(str(name))),
        ("created", html.escape(str(summary.get("created", "—")))),
        ("output", html.escape(str(summary.get("output_dir", run_dir.name)))),
        ("micrographs", _fmt(len(images))),
        ("groups", _fmt(len(summary.get("groups") or {}))),
        ("atoms", _fmt(sum(int(v.get("n_atoms", 0)) for v in images.values()))),
        ("tokens", _fmt(tokens.get("k", len(tokens.get("names", [])) or None))),
        ("grammar rules", _fmt(grammar.get("n_rules"))),
        ("description length", f"{_fmt(grammar.get('description_length_bits'), 1)} bits"),
    ]
    body = '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    versions = summary.get("versions") or {}
    if versions:
        body += "<h3>Software</h3>" + _table(
            ("package", "version"), [(html.escape(str(k)), html.escape(str(v))) for k, v in versions.items()],
            cls="narrow",
        )
    spec = summary.get("spec")
    if spec:
        text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, default_flow_style=False)
        body += f"<details><summary>Spec used (YAML)</summary><pre>{html.escape(text)}</pre></details>"
    else:
        body += _note("The spec is not recorded in summary.json.")
    return _section("run", f"motifgram run: {name}", body)


def _section_micrographs(run_dir: Path, summary: dict) -> str:
    images = summary.get("images") or {}
    if not images:
        return _section("micrographs", "Micrographs", _note("summary.json lists no micrographs."))
    parts = []
    for image_id, info in images.items():
        stats = info.get("ring_stats") or {}
        shape = info.get("shape")
        rows = [
            ("group", _fmt(info.get("group"))),
            ("source", _fmt(info.get("source"))),
            ("shape (rows × cols)", " × ".join(str(s) for s in shape) if shape else "—"),
            ("pixel size", f"{_fmt(info.get('pixel_size_nm'), 4)} nm" if info.get("pixel_size_nm") else "—"),
            ("lattice period", f"{_fmt(info.get('lattice_period_px'), 2)} px"),
            ("atoms", _fmt(info.get("n_atoms"))),
            ("bonds", _fmt(info.get("n_bonds"))),
            ("rings", _fmt(info.get("n_rings"))),
            ("⟨n⟩", _fmt(stats.get("mean"))),
            ("μ<sub>2</sub>", _fmt(stats.get("mu2"))),
            ("coverage", _coverage_text(info.get("coverage"))),
            ("bits per atom", _fmt(info.get("bits_per_atom"))),
            ("disorder", _fmt(info.get("disorder"))),
        ]
        facts = '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
        overlay = _optional(
            "overlay", lambda i=image_id: _img(_embeddable_png(rundir.overlay_path(run_dir, i)),
                                               f"overlay of {i}", cls="overlay")
        )
        parts.append(
            f'<article class="micrograph" id="micrograph-{html.escape(_slug(image_id))}">'
            f"<h3>{html.escape(str(image_id))}</h3><div class=\"pair\"><figure>{overlay}<figcaption>Atoms coloured "
            f"by token, rings filled by their grammar symbol.</figcaption></figure>{facts}</div></article>"
        )
    return _section("micrographs", "Micrographs", "\n".join(parts))


def _slug(text) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"


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


def _token_gallery_data(run_dir: Path, summary: dict):
    """Token names (colour order), per-token ``(atoms, mean confidence)``, class averages (T, P, P) or None,
    and notes on what could not be read."""
    notes = []
    npz = None
    try:
        npz = rundir.read_token_arrays(run_dir)
    except FileNotFoundError:
        notes.append("No class averages: tokens.npz is not in the run directory.")
    except _OPTIONAL_ERRORS as exc:
        notes.append(f"No class averages: tokens.npz cannot be read ({exc}).")
    atom_stats = None
    try:
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


def _section_tokens(run_dir: Path, summary: dict) -> str:
    names, atom_stats, averages, notes = _token_gallery_data(run_dir, summary)
    total = sum(n for n, _ in atom_stats.values()) or 1
    colours = token_colours(len(names))
    cards = []
    for i, name in enumerate(names):
        n, conf = atom_stats.get(name, (0, None))
        colour = "#%02x%02x%02x" % tuple(int(255 * c) for c in colours[i][:3])
        picture = _img(_class_average_png(averages[i]), f"class average of token {name}") if averages is not None \
            else '<div class="placeholder"></div>'
        cards.append(
            f'<div class="card" style="border-color:{colour}">{picture}'
            f'<div class="cardname"><span class="swatch" style="background:{colour}"></span>{html.escape(name)}</div>'
            f"<div>{_fmt(n)} atoms · {100 * n / total:.1f}%</div>"
            f"<div>confidence {_fmt(conf)}</div></div>"
        )
    body = "".join(_note(t) for t in notes)
    body += ("<p>Rotation-aligned class average of each token (the mean neighbourhood of its atoms), with its "
             "count, share of all atoms and mean posterior confidence.</p>")
    body += f'<div class="gallery">{"".join(cards)}</div>'
    body += _merging_html((summary.get("tokens") or {}).get("merging"), len(names))
    body += "<h3>Embedding</h3>" + _optional("embedding plot", lambda: _embedding_html(run_dir, names))
    return _section("tokens", "Token gallery", body)


def _merging_html(merging: dict | None, n_tokens: int) -> str:
    """How the BIC mixture's components became the tokens (summary.json ``tokens.merging``), if recorded."""
    if not merging:
        return ""
    decided = [f"{label} at Bhattacharyya coefficient {merging[key]:.3f}"
               for key, label in (("last_merged", "last merge"), ("first_kept_apart", "first pair kept apart"))
               if merging.get(key) is not None]
    text = (f"{merging['mixture_components']} mixture components (K by BIC) became {n_tokens} token(s), merged while "
            f"their overlap exceeded {merging['threshold']:g}" + (f": {', '.join(decided)}." if decided else "."))
    if merging.get("close_call"):
        low, high = merging["undecided"]
        return _note(text + f" A close call: that overlap lies between those of one site class split in two and of "
                     f"different classes in the threshold's calibration ({low:g}-{high:g}), so the count is not "
                     "backed by it; tokens.k in the spec fixes the count.")
    return f"<p>{html.escape(text)}</p>"


def render_token_gallery(run_dir) -> bytes:
    """The token gallery as one PNG: each token's rotation-aligned class average (its atoms' mean
    neighbourhood), framed in the token's overlay colour, with its name, atom count and share.

    Reads ``summary.json``, ``tokens.npz`` and ``atoms.csv`` of a run directory, as :func:`write_report`
    does; a token without a class average gets an empty frame.

    Returns
    -------
    bytes
        PNG data (about 1.7 inches per token, 8 tokens per row, 100 dpi).
    """
    run_dir = Path(run_dir)
    names, atom_stats, averages, _ = _token_gallery_data(run_dir, rundir.read_summary(run_dir))
    total = sum(n for n, _ in atom_stats.values()) or 1
    colours = token_colours(len(names))
    n_cols = max(1, min(len(names), 8))
    n_rows = max(1, math.ceil(len(names) / n_cols))
    fig = Figure(figsize=(1.7 * n_cols, 2.1 * n_rows), dpi=_DPI)
    for i, name in enumerate(names):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        if averages is not None:
            ax.imshow(np.asarray(averages[i], dtype=float), cmap="gray", interpolation="bicubic")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color(colours[i])
            spine.set_linewidth(4)
        n = atom_stats.get(name, (0, None))[0]
        ax.set_title(f"{name}\n{n:,} atoms · {100 * n / total:.1f} %", fontsize=9)
    fig.tight_layout()
    return _fig_png(fig, quantise=False)  # grey levels of the class averages, not a palette's bands


def _class_average_png(avg: np.ndarray, size: int = 112) -> bytes:
    a = np.asarray(avg, dtype=float)
    finite = np.isfinite(a)
    lo, hi = (a[finite].min(), a[finite].max()) if finite.any() else (0.0, 1.0)
    grey = np.where(finite, (a - lo) / (hi - lo if hi > lo else 1.0), 0.0)
    img = Image.fromarray((255 * grey).astype(np.uint8), mode="L")
    return _pil_png(img.resize((size, size), Image.Resampling.BICUBIC))


def _embedding_html(run_dir: Path, names: list[str]) -> str:
    xy, tok = rundir.read_embedding(run_dir)
    xy = xy.astype(float)
    colours = token_colours(max(len(names), int(tok.max()) + 1 if len(tok) else 0))
    fig = Figure(figsize=(6.4, 5.6), dpi=_DPI)
    ax = fig.add_axes((0.1, 0.1, 0.62, 0.82))
    size = float(np.clip(6000 / max(len(xy), 1), 1.0, 16.0))
    for k in np.unique(tok):
        sel = tok == k
        label = names[k] if k < len(names) else str(k)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colours[k], linewidths=0, label=label, alpha=0.7)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Feature embedding ({len(xy):,} atoms)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, markerscale=max(1.0, 30 / size) ** 0.5)
    return (f'<figure>{_img(_fig_png(fig), "embedding of the atom features")}<figcaption>Principal components '
            "of the rotation-invariant features, coloured by token.</figcaption></figure>")


def _section_grammar(run_dir: Path, summary: dict) -> str:
    body = ""
    path = run_dir / rundir.GRAMMAR_TXT
    grammar = None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        body += _note("No grammar: grammar.txt is not in the run directory.")
    else:
        body += f"<details open><summary>grammar.txt</summary><pre>{html.escape(text)}</pre></details>"
        try:
            grammar = Grammar.parse_text(text, source=str(path))
        except GrammarError as exc:
            body += _note(f"Hierarchy not drawn: grammar.txt does not parse ({exc}).")
    if grammar is not None:
        body += "<h3>Hierarchy</h3>" + _optional("hierarchy", lambda: _hierarchy_html(grammar))
    body += "<h3>Relative abundance per level</h3>" + _abundance_html(summary)
    return _section("grammar", "Grammar", body)


def _hierarchy_layout(grammar, *, max_per_level: int = _MAX_NODES_PER_LEVEL):
    """Place the grammar's symbols by level for drawing.

    Level 0 (tokens) is the bottom row in grammar order; each higher level is ordered by the mean position
    of its parts (the barycentre heuristic, few crossings) and spread evenly over [0, 1]. A level with more
    than ``max_per_level`` symbols keeps its most frequent ones.

    Returns
    -------
    nodes : dict name -> (x in [0, 1], level, weight in (0, 1], kind)
        ``weight`` is the count (tokens: abundance) relative to the largest of its level; kind is
        "token", "ring", "motif" or "domain".
    edges : list of (parent, child)
        "``parent`` is built from ``child``": ring -> its tokens, motif -> its parts, domain -> its symbol.
    omitted : int
        Number of symbols left out.
    """
    entries: dict[str, tuple[int, float, str, tuple[str, ...]]] = {}
    for t in grammar.tokens:
        entries[t.name] = (0, float(t.abundance), "token", ())
    for r in grammar.rings:
        entries[r.name] = (1, float(r.count), "ring", tuple(dict.fromkeys(x for x in r.word if x != "*")))
    for m in grammar.motifs:
        entries[m.name] = (m.level, float(m.count), "motif", tuple(dict.fromkeys(m.nodes)))
    for d in grammar.domains:
        entries[d.name] = (d.level, float(d.count), "domain", (d.symbol,))
    by_level: dict[int, list[str]] = {}
    for name, (level, *_rest) in entries.items():
        by_level.setdefault(level, []).append(name)
    omitted = 0
    for level, names in by_level.items():
        if len(names) > max_per_level:
            keep = set(sorted(names, key=lambda s: -entries[s][1])[:max_per_level])
            omitted += len(names) - len(keep)
            by_level[level] = [s for s in names if s in keep]
    nodes: dict[str, tuple[float, int, float, str]] = {}
    for level in sorted(by_level):
        names = by_level[level]
        if level > 0:
            def barycentre(s):
                xs = [nodes[c][0] for c in entries[s][3] if c in nodes]
                return (sum(xs) / len(xs) if xs else 0.5, s)
            names = sorted(names, key=barycentre)
        top = max(entries[s][1] for s in names) or 1.0
        for k, s in enumerate(names):
            x = (k + 0.5) / len(names)
            nodes[s] = (x, level, max(entries[s][1] / top, 0.02), entries[s][2])
    edges = [(s, c) for s in nodes for c in entries[s][3] if c in nodes]
    return nodes, edges, omitted


_KIND_COLOURS = {"token": "#4c72b0", "ring": "#dd8452", "motif": "#55a868", "domain": "#8172b3"}


def _hierarchy_html(grammar) -> str:
    nodes, edges, omitted = _hierarchy_layout(grammar)
    if not nodes:
        return _note("The grammar has no symbols.")
    levels = sorted({v[1] for v in nodes.values()})
    widest = max(sum(1 for v in nodes.values() if v[1] == lv) for lv in levels)
    width = min(16.0, max(6.0, 0.55 * widest + 1.5))
    fig = Figure(figsize=(width, 1.0 + 1.3 * len(levels)), dpi=_DPI)
    ax = fig.add_axes((0.9 / width, 0.04, 1.0 - 1.0 / width, 0.9))
    row = {lv: i for i, lv in enumerate(levels)}
    pos = {s: (v[0], row[v[1]]) for s, v in nodes.items()}
    ax.add_collection(LineCollection([(pos[a], pos[b]) for a, b in edges], colors="#999999", linewidths=0.8,
                                     alpha=0.7, zorder=1))
    names = list(nodes)
    ax.scatter([pos[s][0] for s in names], [pos[s][1] for s in names],
               s=[60 + 700 * nodes[s][2] for s in names], c=[_KIND_COLOURS[nodes[s][3]] for s in names],
               edgecolors="white", linewidths=0.8, zorder=2)
    fontsize = 9 if widest <= 16 else 7
    for s in names:
        ax.text(pos[s][0], pos[s][1] + 0.28, s, ha="center", va="bottom", fontsize=fontsize, zorder=3,
                rotation=0 if widest <= 16 else 45)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.5, len(levels) - 0.2)
    ax.set_yticks(range(len(levels)), [f"level {lv}" for lv in levels])
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=k) for k, c in _KIND_COLOURS.items()]
    ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=4, frameon=False, fontsize=8)
    note = _note(f"{omitted} rarer symbols are not drawn.") if omitted else ""
    return (f'<figure class="svg">{_fig_svg(fig, "hierarchy")}<figcaption>Each symbol is a node (area by '
            "count, tokens by abundance); a line joins a symbol to the symbols it is built from."
            f"</figcaption></figure>{note}")


def _abundance_html(summary: dict) -> str:
    images = summary.get("images") or {}
    parts = []
    for n, (image_id, info) in enumerate(images.items()):
        abundance = info.get("relative_abundance") or {}
        levels = sorted(abundance, key=_level_key)
        levels = [lv for lv in levels if abundance[lv]]
        if not levels:
            parts.append(_note(f"{image_id}: no relative abundances in summary.json."))
            continue
        bars = []
        for lv in levels:
            shares = sorted(((str(s), float(p)) for s, p in abundance[lv].items()), key=lambda kv: -kv[1])
            if len(shares) > _MAX_BARS:
                shares = shares[: _MAX_BARS - 1] + [(f"{len(shares) - _MAX_BARS + 1} others",
                                                     sum(p for _, p in shares[_MAX_BARS - 1:]))]
            bars.append((lv, shares))
        heights = [len(s) * 0.24 + 0.55 for _, s in bars]
        fig = Figure(figsize=(7.0, sum(heights) + 0.4), dpi=_DPI, layout="constrained")
        grid = fig.add_gridspec(len(bars), 1, height_ratios=heights)
        for k, (lv, shares) in enumerate(bars):
            ax = fig.add_subplot(grid[k])
            labels = [s for s, _ in shares][::-1]
            values = [p for _, p in shares][::-1]
            ax.barh(range(len(values)), values, color=_KIND_COLOURS["ring" if str(lv) == "1" else
                                                                    "token" if str(lv) == "0" else "motif"])
            ax.set_yticks(range(len(values)), labels, fontsize=8)
            ax.set_xlim(0, max(1e-9, max(values)) * 1.18)
            for y, v in enumerate(values):
                ax.text(v, y, f" {100 * v:.1f}%", va="center", fontsize=7)
            ax.set_title(f"level {lv}", fontsize=9, loc="left")
            ax.tick_params(axis="x", labelsize=7)
        figure = f'<figure class="svg">{_fig_svg(fig, f"abundance-{n}")}</figure>'
        open_attr = " open" if n == 0 else ""
        parts.append(f"<details{open_attr}><summary>{html.escape(str(image_id))}</summary>{figure}</details>")
    if not parts:
        return _note("summary.json lists no micrographs.")
    return "<p>Share of each symbol among the symbols of its level, per micrograph.</p>" + "".join(parts)


def _section_rings(summary: dict) -> str:
    images = summary.get("images") or {}
    hist = {i: {int(k): int(v) for k, v in (info.get("ring_histogram") or {}).items()} for i, info in images.items()}
    hist = {i: h for i, h in hist.items() if sum(h.values()) > 0}
    body = ""
    if hist:
        body += f'<figure class="svg">{_ring_histogram_svg(hist)}<figcaption>p<sub>n</sub>: the fraction of rings ' \
                "with n atoms.</figcaption></figure>"
    else:
        body += _note("No ring histograms in summary.json.")
    rows = []
    for i, info in images.items():
        stats = info.get("ring_stats") or {}
        rows.append((html.escape(str(i)), _fmt(info.get("group")), _fmt(info.get("n_rings")), _fmt(stats.get("mean")),
                     _fmt(stats.get("mu2")), _fmt(info.get("disorder"))))
    if rows:
        body += _table(("micrograph", "group", "rings", "⟨n⟩", "μ₂", "disorder"), rows, cls="narrow")
    groups = summary.get("groups") or {}
    if groups:
        body += "<h3>Groups</h3>" + _table(
            ("group", "micrographs", "disorder"),
            [(html.escape(str(g)), html.escape(", ".join(map(str, v.get("images", [])))), _fmt(v.get("disorder")))
             for g, v in groups.items()],
            cls="narrow",
        )
    body += '<h3 id="comparison">Comparison</h3>'
    comparison = summary.get("comparison")
    if comparison:
        body += _optional("comparison", lambda: _comparison_html(comparison))
    elif len(groups) > 1:
        body += _note("summary.json holds no comparison for these groups; run `motifgram compare` on the run.")
    else:
        body += _note("A single group: no comparison.")
    return _section("rings", "Ring statistics", body)


def _ring_histogram_svg(hist: dict[str, dict[int, int]]) -> str:
    sizes = sorted({n for h in hist.values() for n in h})
    fig = Figure(figsize=(7.5, 3.4), dpi=_DPI)
    ax = fig.add_axes((0.09, 0.15, 0.62, 0.78))
    cmap = mpl.colormaps["tab10"]
    m = len(hist)
    for k, (image_id, h) in enumerate(hist.items()):
        total = sum(h.values())
        p = [h.get(n, 0) / total for n in sizes]
        if m <= 6:
            width = 0.8 / m
            ax.bar([n - 0.4 + width * (k + 0.5) for n in sizes], p, width=width, color=cmap(k % 10), label=image_id)
        else:
            ax.plot(sizes, p, marker="o", color=cmap(k % 10), label=image_id)
    ax.set_xticks(sizes)
    ax.set_xlabel("ring size n (atoms)")
    ax.set_ylabel("p$_n$")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
    return _fig_svg(fig, "rings")


def _comparison_html(comparison: Mapping) -> str:
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    items = [str(it.get("name")) if isinstance(it, Mapping) else str(it) for it in comparison["items"]]
    dist = np.asarray(comparison["distance"], dtype=float)
    if dist.shape != (len(items), len(items)):
        raise ValueError(f"comparison: distance is {dist.shape}, expected {len(items)} × {len(items)}")
    body = ""
    metric = comparison.get("metric")
    if metric:
        body += f"<p>Distance: {html.escape(str(metric))}.</p>"
    n = len(items)
    fig = Figure(figsize=(11.0, max(3.2, 0.42 * n + 1.6)), dpi=_DPI)
    ax = fig.add_axes((0.14, 0.2, 0.36, 0.72))
    im = ax.imshow(dist, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(n), items, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), items, fontsize=8)
    ax.set_title("distance", fontsize=10)
    if n <= 12:
        mid = (np.nanmax(dist) + np.nanmin(dist)) / 2
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{dist[i, j]:.2g}", ha="center", va="center", fontsize=7,
                        color="white" if dist[i, j] < mid else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if n >= 2:
        sym = (dist + dist.T) / 2
        np.fill_diagonal(sym, 0.0)
        tree = linkage(squareform(sym, checks=False), method="average")
        dax = fig.add_axes((0.64, 0.2, 0.33, 0.72))
        dendrogram(tree, labels=items, ax=dax, orientation="right", color_threshold=0, above_threshold_color="#555555")
        dax.set_title("average-linkage dendrogram", fontsize=10)
        dax.tick_params(axis="y", labelsize=8)
        for spine in ("top", "right", "left"):
            dax.spines[spine].set_visible(False)
    body += f'<figure class="svg">{_fig_svg(fig, "comparison")}</figure>'
    ranking = comparison.get("ranking") or []
    disorder = comparison.get("disorder") or {}
    if not disorder:
        disorder = {str(it.get("name")): it.get("disorder") for it in comparison["items"] if isinstance(it, Mapping)}
    if ranking:
        rows = [(str(k + 1), html.escape(str(name)), _fmt(disorder.get(str(name)))) for k, name in enumerate(ranking)]
        body += "<p>Ranking, least to most disordered:</p>" + _table(("rank", "name", "disorder"), rows, cls="narrow")
    differences = comparison.get("differences") or []
    if differences:
        rows = [
            (html.escape(f"{d['a']} / {d['b']}"),
             html.escape(", ".join(f"{e['symbol']} ({e['weight']:.0%})" for e in d["only_in_a"]) or "—"),
             html.escape(", ".join(f"{e['symbol']} ({e['weight']:.0%})" for e in d["only_in_b"]) or "—"))
            for d in differences
        ]
        body += ("<p>Rules used by one item and not the other (share of their level's usage), for the closest "
                 "pairs:</p>" + _table(("pair", "only in the first", "only in the second"), rows))
    return body


def _section_timings(summary: dict) -> str:
    timings = summary.get("timings") or {}
    if not timings:
        return _section("timings", "Timings", _note("No timings in summary.json."))
    values = {str(k): float(v) for k, v in timings.items()}
    total = sum(values.values())
    longest = max(values.values()) or 1.0
    rows = [
        (html.escape(k), f"{v:.3f}", f"{100 * v / total:.1f}%" if total else "—",
         f'<div class="bar" style="width:{100 * v / longest:.1f}%"></div>')
        for k, v in values.items()
    ]
    rows.append(("<b>total</b>", f"<b>{total:.3f}</b>", "100%" if total else "—", ""))
    return _section("timings", "Timings", _table(("stage", "seconds", "share", ""), rows, cls="timings"))


# --------------------------------------------------------------------------------------------------------------
# The page

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; color: #1d232b; background: #f6f7f9; line-height: 1.45; }
header.top { background: #1d2b3a; color: #fff; padding: 14px 28px; }
header.top h1 { margin: 0; font-size: 1.5em; }
header.top nav a { color: #cfe3ff; margin-right: 16px; text-decoration: none; font-size: 0.95em; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 24px 48px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 6px 22px 18px; margin: 18px 0; }
h2 { border-bottom: 2px solid #e6e9ee; padding-bottom: 4px; }
h3 { margin-top: 1.3em; }
pre { background: #f3f4f6; padding: 10px 12px; border-radius: 6px; overflow-x: auto; font-size: 0.86em;
      font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 4px 12px; text-align: left; vertical-align: middle; }
th { background: #f0f2f5; }
table.timings td:nth-child(4) { width: 320px; }
div.bar { height: 10px; background: #4c72b0; border-radius: 3px; min-width: 1px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 3px 16px; margin: 8px 0; }
dl.facts dt { color: #5a6470; } dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
.pair { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
.pair figure { flex: 1 1 640px; margin: 0; }
figure { margin: 8px 0; } figcaption { color: #5a6470; font-size: 0.88em; }
img { max-width: 100%; height: auto; }
img.overlay { border: 1px solid #ccd; }
figure.svg svg { max-width: 100%; height: auto; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 12px; }
.card { border: 3px solid #ccc; border-radius: 8px; padding: 8px; text-align: center; font-size: 0.88em; }
.card img { width: 112px; height: 112px; image-rendering: auto; }
.cardname { font-weight: 700; font-size: 1.1em; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 5px; }
.placeholder { width: 112px; height: 112px; margin: 0 auto; background: #eee; }
p.note { color: #7a5b00; background: #fff8e1; border-left: 4px solid #f0c040; padding: 4px 10px; }
"""


def write_report(run_dir) -> Path:
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
    name = str(summary.get("name") or run_dir.name)
    sections = [
        _section_run(run_dir, summary),
        _section_micrographs(run_dir, summary),
        _section_tokens(run_dir, summary),
        _section_grammar(run_dir, summary),
        _section_rings(summary),
        _section_timings(summary),
    ]
    titles = ("Run", "Micrographs", "Tokens", "Grammar", "Rings", "Timings")
    nav = "".join(f'<a href="#{sid}">{t}</a>' for sid, t in zip(REPORT_SECTIONS, titles, strict=True))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>motifgram report: {html.escape(name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header class="top"><h1>motifgram report: {html.escape(name)}</h1><nav>{nav}</nav></header>\n'
        "<main>\n" + "\n".join(sections) + "\n</main>\n</body>\n</html>\n"
    )
    out = run_dir / rundir.REPORT_HTML
    out.write_text(page, encoding="utf-8")
    (run_dir / rundir.TOKEN_GALLERY_PNG).write_bytes(render_token_gallery(run_dir))
    log.info("wrote %s (%.1f MB)", out, len(page) / 1e6)
    return out
