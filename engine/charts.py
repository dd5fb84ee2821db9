"""The report's figures: geometry for its inline SVG charts (drawn by ``templates/charts.svg``) and the two
raster ones (the feature embedding and the distance matrix), drawn with Pillow.

Every function takes plain data from the run directory and returns numbers and strings in SVG pixel units
(y down), so the figures cost milliseconds and the page text stays text (system fonts, searchable).
"""

import base64
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from motifgram.engine.overlay import font, hex_colour, stamp_dots, token_colours

__all__ = [
    "KIND_COLOURS",
    "png_uri",
    "hierarchy_layout",
    "hierarchy_chart",
    "abundance_chart",
    "histogram_chart",
    "comparison_chart",
    "embedding_png",
]

KIND_COLOURS = {"token": "#4c72b0", "ring": "#dd8452", "motif": "#55a868", "domain": "#8172b3"}
"""Node colour of each kind of grammar symbol (hierarchy) and bar colour of each level (abundances)."""

_MAX_NODES_PER_LEVEL = 30
_MAX_BARS = 12
_CATEGORY = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
             "#17becf")
# viridis at 17 evenly spaced points (matplotlib's), interpolated linearly between them
_VIRIDIS = ("#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e", "#21918c",
            "#1fa088", "#28ae80", "#3fbc73", "#5ec962", "#84d44b", "#addc30", "#d8e219", "#fde725")


def png_uri(data: bytes) -> str:
    """A ``data:`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _round(value: float) -> float:
    return round(float(value), 1)


# ------------------------------------------------------------------------------------------------------------
# Hierarchy of the grammar


def hierarchy_layout(grammar, *, max_per_level: int = _MAX_NODES_PER_LEVEL):
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
            nodes[s] = ((k + 0.5) / len(names), level, max(entries[s][1] / top, 0.02), entries[s][2])
    edges = [(s, c) for s in nodes for c in entries[s][3] if c in nodes]
    return nodes, edges, omitted


def hierarchy_chart(grammar) -> dict:
    """Geometry of the hierarchy figure: one row per level (level 0 at the bottom), nodes sized by weight,
    a line from each symbol to the symbols it is built from, labels above the nodes."""
    nodes, edges, omitted = hierarchy_layout(grammar)
    levels = sorted({level for _, level, _, _ in nodes.values()})
    widest = max((len(s) for s in nodes), default=1)
    per_level = max((sum(1 for v in nodes.values() if v[1] == lv) for lv in levels), default=1)
    left, row_px = 70, 90
    width = max(700, left + per_level * (60 if widest <= 8 else 90) + 20)
    height = 40 + row_px * len(levels)
    row_y = {lv: height - 30 - row_px * k for k, lv in enumerate(levels)}
    place = {s: (left + 10 + x * (width - left - 30), row_y[level]) for s, (x, level, _, _) in nodes.items()}
    node_list = []
    for s, (_, _, weight, kind) in nodes.items():
        x, y = place[s]
        r = 3.0 + 12.0 * math.sqrt(weight)
        node_list.append({"x": _round(x), "y": _round(y), "r": _round(r), "colour": KIND_COLOURS[kind], "label": s,
                          "label_y": _round(y - r - 4)})
    return {
        "width": width, "height": height, "left": left, "omitted": omitted,
        "rotate": widest > 16, "font_size": 11 if widest <= 16 else 9,
        "rows": [{"y": row_y[lv], "label": f"level {lv}"} for lv in levels],
        "edges": [{"x1": _round(place[a][0]), "y1": _round(place[a][1]), "x2": _round(place[b][0]),
                   "y2": _round(place[b][1])} for a, b in edges],
        "nodes": node_list,
        "legend": [{"x": width - 300 + 75 * k, "colour": c, "kind": kind} for k, (kind, c) in enumerate(KIND_COLOURS.items())],
    }


# ------------------------------------------------------------------------------------------------------------
# Bars, histograms


def _level_key(level) -> int:
    try:
        return int(level)
    except (TypeError, ValueError):
        return 10**6


def abundance_chart(abundance: Mapping) -> dict | None:
    """Horizontal bars of each level's symbol shares (the 12 largest; the rest as "N others"); None when the
    micrograph has none."""
    levels = [lv for lv in sorted(abundance, key=_level_key) if abundance[lv]]
    if not levels:
        return None
    bar_x, bar_w, bar_h, gap = 140, 470, 14, 4
    blocks, bars, y = [], [], 4
    for lv in levels:
        shares = sorted(((str(s), float(p)) for s, p in abundance[lv].items()), key=lambda kv: -kv[1])
        if len(shares) > _MAX_BARS:
            shares = shares[: _MAX_BARS - 1] + [(f"{len(shares) - _MAX_BARS + 1} others",
                                                 sum(p for _, p in shares[_MAX_BARS - 1:]))]
        colour = KIND_COLOURS["ring" if str(lv) == "1" else "token" if str(lv) == "0" else "motif"]
        top = max(1e-9, max(p for _, p in shares))
        y += 16
        blocks.append({"title": f"level {lv}", "y": y})
        y += 6
        for label, p in shares:
            bars.append({"label": label, "y": y, "h": bar_h, "w": _round(bar_w * p / top / 1.18), "colour": colour,
                         "value": f"{100 * p:.1f}%"})
            y += bar_h + gap
        y += 6
    return {"width": bar_x + bar_w + 60, "height": y + 4, "bar_x": bar_x, "blocks": blocks, "bars": bars}


def histogram_chart(hist: Mapping[str, Mapping[int, int]]) -> dict:
    """p_n of every micrograph: grouped bars for up to 6, lines beyond."""
    sizes = sorted({n for h in hist.values() for n in h})
    x0, x1, y0, y1 = 60, 520, 14, 250
    width, height = x1 + 200, y1 + 44
    shares = {image_id: [h.get(n, 0) / sum(h.values()) for n in sizes] for image_id, h in hist.items()}
    top = max(max(p) for p in shares.values()) or 1.0
    step = 10 ** math.floor(math.log10(top / 4)) if top > 0 else 0.1
    step *= next(m for m in (1, 2, 5, 10) if top / (step * m) <= 6)
    top = step * math.ceil(top / step)
    slot = (x1 - x0) / max(len(sizes), 1)

    def xpos(k):
        return x0 + slot * (k + 0.5)

    def ypos(p):
        return y1 - (y1 - y0) * p / top

    bars, lines, legend = [], [], []
    m = len(shares)
    for j, (image_id, p) in enumerate(shares.items()):
        colour = _CATEGORY[j % len(_CATEGORY)]
        legend.append({"y": y0 + 10 + 18 * j, "colour": colour, "label": image_id})
        if m <= 6:
            w = 0.8 * slot / m
            bars += [{"x": _round(xpos(k) - 0.4 * slot + w * j), "y": _round(ypos(v)), "w": _round(w),
                      "h": _round(y1 - ypos(v)), "colour": colour} for k, v in enumerate(p)]
        else:
            points = [(_round(xpos(k)), _round(ypos(v))) for k, v in enumerate(p)]
            lines.append({"points": " ".join(f"{a},{b}" for a, b in points), "markers": points, "colour": colour})
    n_ticks = int(round(top / step))
    return {
        "width": width, "height": height, "x0": x0, "x1": x1, "y0": y0, "y1": y1, "bars": bars, "lines": lines,
        "legend": legend, "xticks": [{"x": _round(xpos(k)), "label": n} for k, n in enumerate(sizes)],
        "yticks": [{"y": _round(ypos(step * i)), "label": f"{step * i:.3g}"} for i in range(n_ticks + 1)],
    }


# ------------------------------------------------------------------------------------------------------------
# Comparison: distance matrix and dendrogram


def _viridis(values: np.ndarray) -> np.ndarray:
    """(…, 3) uint8 viridis colours of values in [0, 1]."""
    table = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in _VIRIDIS], float)
    pos = np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * (len(table) - 1)
    low = np.minimum(np.floor(pos).astype(int), len(table) - 2)
    frac = (pos - low)[..., None]
    return np.round((1 - frac) * table[low] + frac * table[low + 1]).astype(np.uint8)


def comparison_chart(items: Sequence[str], dist: np.ndarray, key: str = "comparison") -> dict:
    """Distance matrix as a heat map (an n x n PNG shown with square cells, values printed up to 12 items),
    a colour bar, and the average-linkage dendrogram of the symmetrised distances."""
    n = len(items)
    lo, hi = float(np.nanmin(dist)), float(np.nanmax(dist))
    scaled = (dist - lo) / (hi - lo if hi > lo else 1.0)
    cell = max(18, min(48, 480 // max(n, 1)))
    size = cell * n
    widest = max((len(s) for s in items), default=1)
    heat_x, heat_y = 20 + 7 * widest, 30
    bar_x = heat_x + size + 14
    dendro_x = bar_x + 70
    dendro_w = 260 if n >= 2 else 0
    heat = {"x": heat_x, "y": heat_y, "size": size, "href": png_uri(_png(Image.fromarray(_viridis(scaled))))}
    cells = []
    if n <= 12:
        for i in range(n):
            for j in range(n):
                cells.append({"x": heat_x + cell * (j + 0.5), "y": heat_y + cell * (i + 0.5), "text": f"{dist[i, j]:.2g}",
                              "colour": "#fff" if scaled[i, j] < 0.5 else "#000"})
    ticks = [{"y": _round(heat_y + size * (1 - t)), "label": f"{lo + t * (hi - lo):.2g}"} for t in (0, 0.5, 1)]
    chart = {
        "width": dendro_x + dendro_w + 20 + 7 * widest, "height": heat_y + size + 12 + 6 * widest,
        "gradient_id": f"viridis-{key}", "heat": heat, "cells": cells, "bar": {"x": bar_x, "ticks": ticks},
        "stops": [{"offset": f"{k / (len(_VIRIDIS) - 1):.4f}", "colour": c} for k, c in enumerate(_VIRIDIS)],
        "row_labels": [{"y": heat_y + cell * (i + 0.5), "text": s} for i, s in enumerate(items)],
        "column_labels": [{"x": heat_x + cell * (j + 0.5), "y": heat_y + size + 12, "text": s} for j, s in enumerate(items)],
        "dendrogram": _dendrogram(items, dist, x=dendro_x, y=heat_y, width=dendro_w, height=size) if n >= 2 else None,
    }
    return chart


def _dendrogram(items, dist, *, x, y, width, height) -> dict:
    """Average-linkage dendrogram, leaves on the right (one row per item), joins at their distance."""
    from scipy.cluster.hierarchy import dendrogram, linkage  # only for runs that compare groups
    from scipy.spatial.distance import squareform

    sym = (dist + dist.T) / 2
    np.fill_diagonal(sym, 0.0)
    tree = dendrogram(linkage(squareform(sym, checks=False), method="average"), no_plot=True, labels=list(items))
    top = max((max(d) for d in tree["dcoord"]), default=1.0) or 1.0
    n = len(items)

    def px(depth, leaf):  # depth from the leaves (0) to the root; leaf coordinate 5, 15, 25, ...
        return _round(x + width * (1 - depth / top)), _round(y + height * (leaf / (10 * n))),

    lines = []
    for ic, dc in zip(tree["icoord"], tree["dcoord"], strict=True):
        lines.append(" ".join(f"{a},{b}" for a, b in (px(d, i) for i, d in zip(ic, dc, strict=True))))
    labels = [{"y": _round(y + height * (k + 0.5) / n), "text": s} for k, s in enumerate(tree["ivl"])]
    return {"x": x, "width": width, "lines": lines, "labels": labels}


# ------------------------------------------------------------------------------------------------------------
# Feature embedding


def embedding_png(xy: np.ndarray, tokens: np.ndarray, names: Sequence[str]) -> bytes:
    """Scatter of the first two principal components coloured by token (640 x 560 PNG, legend on the right)."""
    width, height = 640, 560
    x0, y0, x1, y1 = 64, 40, 450, 500
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    xy = np.asarray(xy, float).reshape(-1, 2)
    tokens = np.asarray(tokens, int).reshape(-1)
    colours = token_colours(max(len(names), int(tokens.max()) + 1 if len(tokens) else 0))
    if len(xy):
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0) * 1.06
        pos = np.c_[x0 + (xy[:, 0] - lo[0] + 0.03 * span[0]) / span[0] * (x1 - x0),
                    y1 - (xy[:, 1] - lo[1] + 0.03 * span[1]) / span[1] * (y1 - y0)]
        area = np.asarray(picture)
        area = area.copy()
        diameter = float(np.clip(math.sqrt(6000 / len(xy)) * 1.6, 2.0, 6.0))
        stamp_dots(area, pos, np.round(255 * colours[tokens, :3]).astype(np.uint8), diameter)
        picture = Image.fromarray(area)
        draw = ImageDraw.Draw(picture)
    draw.rectangle((x0, y0, x1, y1), outline=(68, 68, 68))
    draw.text(((x0 + x1) / 2, y0 - 14), f"Feature embedding ({len(xy):,} atoms)", fill=(0, 0, 0), font=font(15),
              anchor="mm")
    draw.text(((x0 + x1) / 2, y1 + 22), "PC 1", fill=(0, 0, 0), font=font(13), anchor="mm")
    label = Image.new("RGBA", (60, 20), (255, 255, 255, 0))
    ImageDraw.Draw(label).text((30, 10), "PC 2", fill=(0, 0, 0), font=font(13), anchor="mm")
    picture.paste(label.rotate(90, expand=True), (x0 - 36, (y0 + y1) // 2 - 30), label.rotate(90, expand=True))
    for k in np.unique(tokens) if len(tokens) else []:
        row = y0 + 10 + 22 * int(k)
        draw.ellipse((x1 + 18, row - 6, x1 + 30, row + 6), fill=hex_colour(colours[k]))
        draw.text((x1 + 38, row), names[k] if k < len(names) else str(k), fill=(0, 0, 0), font=font(13), anchor="lm")
    return _png(picture)
