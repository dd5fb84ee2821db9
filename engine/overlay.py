"""Overlay images: a micrograph with its atoms coloured by token and its rings filled by grammar symbol.

:func:`render_overlay` writes ``overlays/<image>.png``; :func:`render_token_gallery` the token gallery
(``tokens.png``). Both are rasterised directly with NumPy and Pillow at the size the report shows them
(no plotting library: a 2048² micrograph with 50,000 atoms and 24,000 rings is drawn in a small fraction of
the time a figure library needs to place as many artists). The colours are shared with the report, the
napari plugin and :meth:`motifgram.Result.plot` (:func:`token_colours`, :func:`ring_symbol_colours`).
"""

import importlib.util
import logging
import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.spatial import cKDTree

from motifgram.engine.scalebar import scale_bar_label, scale_bar_length_nm

__all__ = [
    "OVERLAY_IMAGE_PX",
    "render_overlay",
    "render_token_gallery_png",
    "token_colours",
    "ring_symbol_colours",
    "hex_colour",
    "quantised",
    "polygon_labels",
    "stamp_dots",
    "font",
]

log = logging.getLogger(__name__)

#: Long side of the micrograph area of an overlay, px (the legend panel adds :data:`_LEGEND_PX`).
OVERLAY_IMAGE_PX = 1200
_LEGEND_PX = 380
_TITLE_PX = 48
#: Height of one legend row, px.
_ROW_PX = 30
_MAX_PX = 1600
#: Ring symbols with their own colour in an overlay; rarer ones share the "other" grey.
_MAX_RING_COLOURS = 16
_OTHER = "other"
_OTHER_COLOUR = (0.6, 0.6, 0.6, 1.0)
_RING_ALPHA = 0.45
_LEGEND_ALPHA = 0.6

# Qualitative palettes (matplotlib's tab10/tab20 for atom dots; Set2 then Dark2 for ring fills, a different
# family so the two never look alike), as hex so that nothing here needs a plotting library.
_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
_TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
          "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
          "#17becf", "#9edae5")
_SET2_DARK2 = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3",
               "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")


def _rgba(hex_code: str) -> tuple[float, float, float, float]:
    return tuple(int(hex_code[i : i + 2], 16) / 255 for i in (1, 3, 5)) + (1.0,)


def hex_colour(rgba) -> str:
    """``#rrggbb`` of an RGB(A) colour in [0, 1]."""
    return "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in rgba[:3])


def token_colours(n_tokens: int) -> np.ndarray:
    """Colours of atom tokens: ``(n_tokens, 4)`` RGBA in [0, 1], token ``i`` -> row ``i``.

    The same colours are used in overlays, the token gallery and the embedding plot, so pass the token
    names to :func:`render_overlay` in the order of ``tokens.npz``'s ``names``.
    """
    palette = _TAB10 if n_tokens <= 10 else _TAB20
    return np.array([_rgba(palette[i % len(palette)]) for i in range(n_tokens)], dtype=float).reshape(-1, 4)


def ring_symbol_colours(names: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """Colours of ring symbols: the first 16 names (put the most frequent first) get distinct colours.

    Returns a mapping name -> RGBA for the first ``16`` names; any other symbol is drawn in grey as "other".
    """
    return {name: _rgba(_SET2_DARK2[i]) for i, name in enumerate(list(names)[:_MAX_RING_COLOURS])}


@lru_cache(maxsize=32)
def font(size_px: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (shipped with matplotlib, found without importing it) at ``size_px``; Pillow's own font
    when it is not there."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        if path.exists():
            return ImageFont.truetype(str(path), size_px)
    return ImageFont.load_default(size_px)


def quantised(img: Image.Image) -> Image.Image:
    """A 256-colour palette copy: a third of an RGB PNG's size, visually the same for these pictures."""
    return img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def _rgb8(rgba) -> np.ndarray:
    return np.round(255 * np.asarray(rgba, float)[..., :3]).astype(np.uint8)


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
    small: about 1 MB for a 2048² micrograph with 50,000 atoms.

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
    ring_atoms, ring_offsets = _ragged(rings)
    if len(ring_atoms) and (ring_atoms.min() < 0 or ring_atoms.max() >= n):
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
    fig_h = max(img_h + title_px, min(_MAX_PX, _ROW_PX * n_legend_rows + title_px))

    canvas = np.full((fig_h, fig_w, 3), 255, np.uint8)
    area = canvas[title_px : title_px + img_h, :img_w]
    # display coordinates: image pixel x spans display [x * scale, (x + 1) * scale)
    pos = (xy + 0.5) * scale
    area[...] = _with_rings(_grey(image, img_w, img_h), pos, ring_atoms, ring_offsets, ring_symbols, ring_colour)
    if n:
        diameter = float(np.clip(0.4 * _spacing_px(xy) * scale, 1.5, 12.0))
        stamp_dots(area, pos, _rgb8(token_colours(len(token_names)))[tokens], diameter)

    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    if pixel_size_nm is not None:
        _scale_bar(draw, pixel_size_nm=pixel_size_nm, image_width_px=w, scale=scale, top=title_px, height=img_h)
    if title:
        draw.text((round(0.01 * fig_w), title_px // 2), title, fill=(0, 0, 0), font=font(28), anchor="lm")
    present = np.bincount(tokens, minlength=len(token_names)) if n else np.zeros(len(token_names), int)
    entries = [("title", "atom tokens", None)]
    entries += [("dot", f"{name}  ({present[i]})", c) for i, (name, c) in
                enumerate(zip(token_names, token_colours(len(token_names)), strict=True))]
    if shown_rings or has_other:
        entries += [("gap", "", None), ("title", "rings (grammar symbol)", None)]
        entries += [("box", f"{s}  ({counts[s]})", ring_colour[s]) for s in shown_rings]
        if has_other:
            entries.append(("box", f"{_OTHER}  ({sum(c for s, c in counts.items() if s not in ring_colour)})",
                            _OTHER_COLOUR))
    _legend(draw, entries, left=img_w + 12, top=title_px + 10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    quantised(picture).save(path, format="PNG", compress_level=1)  # 4 % larger than level 6, 3x faster


def _grey(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) uint8: the image resized (box filter down, nearest up) between its 0.5th and 99.5th
    percentiles (from a strided subsample: the same contrast at a fraction of the cost)."""
    step = max(1, int(math.sqrt(image.size / 250_000)))
    lo, hi = np.percentile(image[::step, ::step], (0.5, 99.5))
    hi = hi if hi > lo else lo + 1.0
    h, w = image.shape
    resample = Image.Resampling.BOX if width < w else Image.Resampling.NEAREST
    shown = np.asarray(Image.fromarray(image, mode="F").resize((width, height), resample))
    return np.round(np.clip((shown - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)


def _with_rings(grey: np.ndarray, pos: np.ndarray, atoms, offsets, ring_symbols, ring_colour) -> np.ndarray:
    """(H, W, 3) uint8: the grey image with every ring's polygon blended in its symbol's colour (alpha 0.45)."""
    names = list(ring_colour)
    colours = np.array([(1.0, 1.0, 1.0, 1.0)] + [ring_colour[s] for s in names] + [_OTHER_COLOUR])[:, :3]
    symbols, inverse = np.unique(np.asarray(ring_symbols, dtype=str), return_inverse=True)
    index = {s: k + 1 for k, s in enumerate(names)}
    fill = np.array([index.get(s, len(names) + 1) for s in symbols.tolist()], np.uint8)[inverse.reshape(-1)]
    labels = polygon_labels(grey.shape, pos, atoms, offsets, fill) if len(fill) else np.zeros(grey.shape, np.uint8)
    # label x grey level -> colour: one lookup for the whole image (np.take of a flat index: 5x faster than
    # indexing with the two arrays)
    alpha = np.where(np.arange(len(colours)) > 0, _RING_ALPHA, 0.0)[:, None, None]
    levels = np.arange(256, dtype=float)[None, :, None]
    table = np.round((1 - alpha) * levels + alpha * 255 * colours[:, None, :]).astype(np.uint8)
    return np.take(table.reshape(-1, 3), labels.astype(np.intp) << 8 | grey, axis=0)


def polygon_labels(shape, pos: np.ndarray, atoms: np.ndarray, offsets: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Rasterise polygons given as one ragged array: pixel ``(r, c)`` gets ``fill[k]`` when its centre
    ``(c + 0.5, r + 0.5)`` lies inside polygon ``k`` (even-odd rule), 0 elsewhere.

    All polygons at once by scanlines: every edge's crossings with the pixel-centre rows, sorted by
    (polygon, row, x) and paired into spans. Written out because a drawing library fills one polygon per
    call (24,000 Python calls for the rings of a 2048² micrograph, several times slower).

    Parameters
    ----------
    shape : (H, W)
    pos : (N, 2) float array
        Vertex positions (x, y) in pixel units (pixel ``(r, c)`` spans ``[c, c + 1) x [r, r + 1)``).
    atoms : (S,) int array
        Vertex indices of polygon 0, then polygon 1, ...
    offsets : (R + 1,) int array
        Polygon ``k`` is ``atoms[offsets[k]:offsets[k + 1]]``.
    fill : (R,) uint8 array
        Label of each polygon.

    Returns
    -------
    (H, W) ndarray of uint8
    """
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    sizes = np.diff(offsets)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    following = np.arange(len(atoms)) + 1
    following[offsets[1:][sizes > 0] - 1] = offsets[:-1][sizes > 0]  # the last vertex closes the polygon
    x0, y0 = pos[atoms].T
    x1, y1 = pos[atoms[following]].T
    first = np.ceil(np.minimum(y0, y1) - 0.5).astype(np.int64)  # rows whose centre lies in [y_min, y_max)
    count = np.maximum(np.ceil(np.maximum(y0, y1) - 0.5).astype(np.int64) - first, 0)
    edge = np.repeat(np.arange(len(atoms)), count)
    row = first[edge] + np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count)
    t = (row + 0.5 - y0[edge]) / (y1[edge] - y0[edge])
    x = x0[edge] + t * (x1[edge] - x0[edge])
    a, b = _crossing_pairs(owner[edge], row, x)
    start = np.clip(np.ceil(x[a] - 0.5).astype(np.int64), 0, w)
    length = np.maximum(np.clip(np.ceil(x[b] - 0.5).astype(np.int64), 0, w) - start, 0)
    span_row = row[a]
    keep = (span_row >= 0) & (span_row < h) & (length > 0)
    start, length, span_row, span_fill = start[keep], length[keep], span_row[keep], fill[owner[edge[a[keep]]]]
    flat = np.repeat(span_row * w + start - np.cumsum(length) + length, length) + np.arange(int(length.sum()))
    out.reshape(-1)[flat] = np.repeat(span_fill, length)
    return out


def _crossing_pairs(owner: np.ndarray, row: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crossings ordered by (polygon, row, x), as ``(left, right)`` index pairs: the permutation
    ``np.lexsort((x, row, owner))`` (ties in the same order), split into its even and odd entries.

    ``owner`` is non-decreasing (edges come polygon by polygon), so a stable sort of one integer key per
    (polygon, row) finds short sorted runs to merge; a polygon crosses a row an even number of times, almost
    always twice, and a pair needs only a swap to be ordered by x. Groups of four or more (rows through a
    concave polygon) are ordered by x with ``lexsort``.
    """
    if not len(row):
        return row[:0], row[:0]
    low = int(row.min())
    key = owner * (int(row.max()) - low + 1) + (row - low)
    order = np.argsort(key, kind="stable")  # timsort: the keys come in sorted runs, one per polygon
    group = key[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1], True])
    sizes = np.diff(starts)
    if (sizes > 2).any():
        wide = np.flatnonzero(np.repeat(sizes > 2, sizes))
        order[wide] = order[wide][np.lexsort((x[order[wide]], group[wide]))]
    a, b = order[0::2], order[1::2]
    swap = x[a] > x[b]
    return np.where(swap, b, a), np.where(swap, a, b)


def _ragged(rings) -> tuple[np.ndarray, np.ndarray]:
    """``(atoms, offsets)`` of rings given as :class:`~motifgram.engine.graph.Rings` or as sequences."""
    if hasattr(rings, "atoms") and hasattr(rings, "offsets"):
        return np.asarray(rings.atoms, np.int64), np.asarray(rings.offsets, np.int64)
    sizes = np.fromiter(map(len, rings), dtype=np.int64, count=len(rings))
    atoms = np.fromiter((int(a) for r in rings for a in r), dtype=np.int64, count=int(sizes.sum()))
    return atoms, np.concatenate([[0], np.cumsum(sizes)])


def stamp_dots(area: np.ndarray, pos: np.ndarray, colours: np.ndarray, diameter: float) -> None:
    """Opaque disks of ``diameter`` px centred at ``pos`` (display px) in ``colours`` (N, 3) uint8; at least
    the pixel under each centre."""
    radius = diameter / 2
    reach = int(math.ceil(radius))
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    centre = np.floor(pos).astype(np.int64)
    frac = pos - centre - 0.5  # the centre's offset from its pixel's centre
    h, w = area.shape[:2]
    for oy, ox in zip(dy.ravel(), dx.ravel(), strict=True):
        near = (ox - frac[:, 0]) ** 2 + (oy - frac[:, 1]) ** 2 <= radius**2
        if oy == 0 and ox == 0:
            near[:] = True
        rows, cols = centre[:, 1] + oy, centre[:, 0] + ox
        keep = near & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        area[rows[keep], cols[keep]] = colours[keep]


def _spacing_px(xy: np.ndarray) -> float:
    """Median nearest-neighbour distance of the atoms (px); 8 px when there are fewer than two."""
    if len(xy) < 2:
        return 8.0
    sample = xy[:: max(1, len(xy) // 5000)]
    dist, _ = cKDTree(xy).query(sample, k=2)
    spacing = float(np.median(dist[:, 1]))
    return spacing if spacing > 0 else 8.0


def _scale_bar(draw, *, pixel_size_nm: float, image_width_px: int, scale: float, top: int, height: int) -> None:
    """A white bar of a round length with its label above, in the lower left corner of the image area."""
    length_nm = scale_bar_length_nm(image_width_px * pixel_size_nm)
    length = length_nm / pixel_size_nm * scale
    thick = max(image_width_px / 150, 1.0) * scale
    left, bottom = 0.03 * OVERLAY_IMAGE_PX, top + height - 0.03 * OVERLAY_IMAGE_PX
    draw.rectangle((left, bottom - thick, left + length, bottom), fill=(255, 255, 255))
    draw.text((left + length / 2, bottom - thick - 4), scale_bar_label(length_nm), fill=(255, 255, 255),
              font=font(22, bold=True), anchor="mb")


def _legend(draw, entries, *, left: int, top: int) -> None:
    """Legend rows: section titles, token dots and ring swatches (alpha 0.6 on white), one per 30 px."""
    y = top
    for kind, text, colour in entries:
        centre = y + _ROW_PX // 2
        if kind == "title":
            draw.text((left, centre), text, fill=(0, 0, 0), font=font(22), anchor="lm")
        elif kind == "dot":
            draw.ellipse((left + 2, centre - 8, left + 18, centre + 8), fill=tuple(_rgb8(colour)))
            draw.text((left + 30, centre), text, fill=(0, 0, 0), font=font(20), anchor="lm")
        elif kind == "box":
            shade = np.round(255 * (1 - _LEGEND_ALPHA) + _LEGEND_ALPHA * _rgb8(colour)).astype(int)
            draw.rectangle((left, centre - 8, left + 22, centre + 8), fill=tuple(shade.tolist()))
            draw.text((left + 30, centre), text, fill=(0, 0, 0), font=font(20), anchor="lm")
        y += _ROW_PX // 2 if kind == "gap" else _ROW_PX


def render_token_gallery_png(names: Sequence[str], counts: Sequence[int], averages: np.ndarray | None) -> Image.Image:
    """The token gallery: each token's class average (grey, min to max) framed in its overlay colour, with its
    name, atom count and share above; 170 x 210 px per token, 8 tokens per row.

    Parameters
    ----------
    names : sequence of str, length K
    counts : sequence of int, length K
        Atoms per token.
    averages : (K, P, P) float array or None
        Class averages; None draws empty frames.
    """
    colours = token_colours(len(names))
    n_cols = max(1, min(len(names), 8))
    n_rows = max(1, math.ceil(len(names) / n_cols))
    picture = Image.new("RGB", (170 * n_cols, 210 * n_rows), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    total = sum(counts) or 1
    for i, name in enumerate(names):
        x0, y0 = 170 * (i % n_cols), 210 * (i // n_cols)
        draw.multiline_text((x0 + 85, y0 + 8), f"{name}\n{counts[i]:,} atoms · {100 * counts[i] / total:.1f} %",
                            fill=(0, 0, 0), font=font(12), anchor="ma", align="center")
        box = (x0 + 22, y0 + 52, x0 + 148, y0 + 178)
        if averages is not None:
            panel = _grey_panel(np.asarray(averages[i], dtype=float), box[2] - box[0])
            picture.paste(panel, box[:2])
        draw.rectangle(box, outline=tuple(_rgb8(colours[i])), width=6)
    return picture


def _grey_panel(average: np.ndarray, size: int) -> Image.Image:
    finite = np.isfinite(average)
    lo, hi = (average[finite].min(), average[finite].max()) if finite.any() else (0.0, 1.0)
    grey = np.where(finite, (average - lo) / (hi - lo if hi > lo else 1.0), 0.0)
    return Image.fromarray((255 * grey).astype(np.uint8), mode="L").resize((size, size), Image.Resampling.BICUBIC)
