"""Tests of motifgram.engine.report: overlays and the self-contained HTML report.

The fixture writes a small but consistent run directory (a honeycomb of atoms on a synthetic micrograph,
its rings, tokens, a grammar, summary.json) following INTERFACE.md, without running the pipeline.
The browser test drives a headless Chromium over the DevTools protocol (``--remote-debugging-pipe``, no
extra Python packages) and is skipped when no Chromium is installed.
"""

import base64
import csv
import fcntl
import html.parser
import io
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from motifgram.engine import rundir
from motifgram.engine.errors import MotifgramError
from motifgram.engine.charts import hierarchy_layout
from motifgram.engine.overlay import OVERLAY_IMAGE_PX, render_overlay, token_colours
from motifgram.engine.report import REPORT_SECTIONS, render_token_gallery, write_report
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import DomainRule, MotifRule, RingRule, TokenSymbol
from conftest import seed

TOKEN_NAMES = ("A", "B", "V")


# --------------------------------------------------------------------------------------------------------------
# A synthetic run directory


def honeycomb(shape, bond):
    """Atoms of a honeycomb inside ``shape`` (xy px), their sublattice (0/1), and its hexagons fully inside."""
    h, w = shape
    a1 = np.array([np.sqrt(3) * bond, 0.0])
    a2 = np.array([np.sqrt(3) / 2 * bond, 1.5 * bond])
    angles = np.deg2rad(30 + 60 * np.arange(6))
    offsets = bond * np.c_[np.cos(angles), np.sin(angles)]
    span = int(max(h, w) / bond) + 4
    i, j = np.meshgrid(np.arange(-span, span), np.arange(-2, span), indexing="ij")
    centres = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    verts = centres[:, None, :] + offsets  # (C, 6, 2)
    inside = (verts[..., 0] >= 0) & (verts[..., 0] <= w - 1) & (verts[..., 1] >= 0) & (verts[..., 1] <= h - 1)
    keep = inside.any(axis=1)
    verts, inside = verts[keep], inside[keep]
    sublattice = np.broadcast_to(np.arange(6) % 2, inside.shape)
    _, first, inverse = np.unique(np.round(verts[inside], 3), axis=0, return_index=True, return_inverse=True)
    xy, sub = verts[inside][first], sublattice[inside][first]
    ids = np.full(inside.shape, -1)
    ids[inside] = inverse.reshape(-1)
    full = (verts.min(axis=1) >= 3).all(axis=1) & (verts.max(axis=1) <= (w - 4, h - 4)).all(axis=1)
    rings = [tuple(int(a) for a in r) for r in ids[full]]
    return xy, sub, rings


def fixture_grammar() -> Grammar:
    return Grammar(
        "fixture", 1,
        tokens=(TokenSymbol("A", 0.48), TokenSymbol("B", 0.48), TokenSymbol("V", 0.04)),
        rings=(RingRule("R6", ("A", "B") * 3, 90), RingRule("R6v", ("A", "B", "A", "B", "A", "V"), 12),
               RingRule.wildcard("R7", 7, 4)),
        motifs=(MotifRule("M1", ("R6v", "R7"), ((0, 1),), 3, 2), MotifRule("M2", ("M1", "M1"), ((0, 1),), 1, 3)),
        domains=(DomainRule("D_R6", "R6", 2, 2, 80),),
    )


def grammar_text(g: Grammar) -> str:
    """The DSL text of ``g`` (a hand-written rendering while the DSL writer does not exist yet)."""
    try:
        return g.to_text()
    except ImportError:
        return (
            'grammar "fixture" version 1\n'
            "tokens  { A 0.48  B 0.48  V 0.04 }\n"
            "rings   { R6 = ring(A B A B A B) 90\n          R6v = ring(A A B A B V) 12\n          R7 = ring7(*) 4 }\n"
            "motifs  { M1 = R6v - R7 3\n          M2 = {a: M1, b: M1; a-b} 1 }\n"
            "domains { D_R6 = domain(R6) 2 size 80 }\n"
        )


def make_image(xy, shape, seed):
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    img = rng.normal(0.0, 0.15, shape)
    for x, y in xy:
        sl = (slice(max(0, int(y) - 4), int(y) + 5), slice(max(0, int(x) - 4), int(x) + 5))
        img[sl] += np.exp(-((cc[sl] - x) ** 2 + (rr[sl] - y) ** 2) / (2 * 1.5**2))
    return img.astype(np.float32)


def write_run(run_dir: Path, *, seed: int = 0) -> dict:
    """Write a two-micrograph, two-group run directory; return its summary."""
    rng = np.random.default_rng(seed)
    shape = (140, 180)
    xy, sub, rings = honeycomb(shape, bond=8.0)
    (run_dir / "overlays").mkdir(parents=True)
    images = {}
    atom_rows, ring_rows = [], []
    for n, (image_id, group) in enumerate((("img_a", "pristine"), ("img_b", "defective"))):
        tokens = sub.copy()
        tokens[rng.random(len(xy)) < (0.02 if n == 0 else 0.12)] = 2
        symbols = ["R6v" if (tokens[list(r)] == 2).any() else "R6" for r in rings]
        symbols = [("R7" if rng.random() < 0.05 * n else s) for s in symbols]
        image = make_image(xy, shape, seed + n)
        render_overlay(image, xy, tokens, TOKEN_NAMES, rings, symbols, run_dir / "overlays" / f"{image_id}.png",
                       title=image_id, ring_symbol_names=("R6", "R6v", "R7"))
        conf = rng.uniform(0.6, 1.0, len(xy))
        atom_rows += [(image_id, i, x, y, TOKEN_NAMES[t], c, 1.0) for i, ((x, y), t, c) in
                      enumerate(zip(xy, tokens, conf, strict=True))]
        ring_rows += [(image_id, k, len(r), s, " ".join(map(str, r))) for k, (r, s) in
                      enumerate(zip(rings, symbols, strict=True))]
        counts = {s: symbols.count(s) for s in sorted(set(symbols))}
        images[image_id] = {
            "source": f"simulate:graphene seed={n}", "group": group, "shape": list(shape), "pixel_size_nm": 0.02,
            "lattice_period_px": 13.9, "n_atoms": len(xy), "n_bonds": int(1.4 * len(xy)), "n_rings": len(rings),
            "token_counts": {t: int((tokens == i).sum()) for i, t in enumerate(TOKEN_NAMES)},
            "ring_histogram": {"6": len(rings) - counts.get("R7", 0), "7": counts.get("R7", 0)},
            "ring_stats": {"mean": 6.0 + 0.05 * n, "mu2": 0.04 * n},
            "motif_counts": {"2": {"M1": 2 * n, "D_R6": 1}, "3": {"M2": n}},
            "relative_abundance": {
                "0": {t: float((tokens == i).mean()) for i, t in enumerate(TOKEN_NAMES)},
                "1": {s: c / len(rings) for s, c in counts.items()},
                "2": {"M1": 0.3, "D_R6": 0.7}, "3": {"M2": 1.0},
            },
            "coverage": {"1": 0.93, "2": 0.81}, "bits_per_atom": 0.41 + n, "disorder": 0.1 + 0.3 * n,
        }
    with open(run_dir / "atoms.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("image", "id", "x", "y", "token", "confidence", "intensity"), *atom_rows])
    with open(run_dir / "rings.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("image", "ring", "size", "symbol", "atoms"), *ring_rows])
    rr, cc = np.mgrid[-7:8, -7:8]
    averages = np.stack([np.exp(-((cc - dx) ** 2 + rr**2) / 6.0) for dx in (-2, 2, 0)]).astype(np.float32)
    np.savez(run_dir / "tokens.npz", names=np.array(TOKEN_NAMES), class_averages=averages)
    emb_tok = rng.integers(0, 3, 600)
    np.savez(run_dir / "embedding.npz", xy=rng.normal(size=(600, 2)) + 4 * emb_tok[:, None], token=emb_tok)
    (run_dir / "grammar.txt").write_text(grammar_text(fixture_grammar()))
    summary = {
        "name": "fixture-run", "created": "2025-01-01T12:00:00+00:00",
        "versions": {"motifgram": "0.1.0", "numpy": np.__version__},
        "spec": {"name": "fixture-run", "inputs": [{"simulate": {"kind": "graphene"}, "group": "pristine"}],
                 "tokens": {"k": "auto"}},
        "images": images,
        "groups": {"pristine": {"images": ["img_a"], "disorder": 0.1},
                   "defective": {"images": ["img_b"], "disorder": 0.4}},
        "tokens": {"names": list(TOKEN_NAMES), "k": 3},
        "grammar": {"n_rules": 6, "description_length_bits": 123.4},
        "comparison": {"items": ["pristine", "defective", "reference"],
                       "distance": [[0, 0.4, 0.2], [0.4, 0, 0.5], [0.2, 0.5, 0]],
                       "ranking": ["pristine", "reference", "defective"],
                       "disorder": {"pristine": 0.1, "reference": 0.2, "defective": 0.4}},
        "timings": {"load": 0.01, "detect": 0.52, "features": 0.33, "tokens": 1.2, "graph": 0.4, "grammar": 0.7},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("report") / "fixture-run"
    write_run(d)
    return d


@pytest.fixture(scope="module")
def report(run_dir):
    return write_report(run_dir)


# --------------------------------------------------------------------------------------------------------------
# Checking a page


class PageScan(html.parser.HTMLParser):
    """Collects element ids, tags and every URL-carrying attribute of a page."""

    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.urls = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key == "id":
                self.ids.add(value)
            if key in ("src", "href", "xlink:href", "action", "poster", "srcset", "data"):
                self.urls.append((tag, key, value or ""))


def scan(page: str) -> PageScan:
    p = PageScan()
    p.feed(page)
    p.close()
    return p


def decoded_images(urls):
    out = []
    for _tag, _key, url in urls:
        if url.startswith("data:image/png;base64,"):
            img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1], validate=True)))
            img.load()
            out.append(img)
    return out


def assert_self_contained(page: str) -> PageScan:
    p = scan(page)
    for tag, key, url in p.urls:
        assert url.startswith("data:") or url.startswith("#"), f"<{tag} {key}={url[:60]!r}> is not embedded"
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered
    for bad in ("script", "link", "iframe", "object", "embed", "base"):
        assert bad not in p.tags, f"page has a <{bad}> element"
    assert "@import" not in lowered
    for match in re.finditer(r"url\(\s*['\"]?([^'\")]{0,8})", lowered):
        assert match.group(1).startswith(("#", "data:")), match.group(0)
    return p


# --------------------------------------------------------------------------------------------------------------
# Tests


def test_report_has_every_section_and_is_self_contained(report, run_dir):
    assert report == run_dir / "report.html"
    page = report.read_text(encoding="utf-8")
    p = assert_self_contained(page)
    assert set(REPORT_SECTIONS) <= p.ids
    assert {"micrograph-img_a", "micrograph-img_b", "comparison"} <= p.ids
    images = decoded_images(p.urls)
    # 2 overlays, 3 class averages, the embedding, the comparison heat map inside its SVG
    assert len(images) >= 7
    overlay_sizes = {img.size for img in images if max(img.size) >= OVERLAY_IMAGE_PX}
    assert len(overlay_sizes) == 1 and max(next(iter(overlay_sizes))) <= 1600
    assert p.tags.count("svg") >= 4  # abundances (2), ring histogram, comparison (+ hierarchy)
    for text in ("fixture-run", "2025-01-01", "numpy", "inputs:", "R6v", "pristine", "detect", "μ"):
        assert text in page
    assert "class=\"note\"" not in page.split('id="tokens"')[1].split("</section>")[0]


def test_report_reports_token_statistics_from_atoms_csv(report, run_dir):
    page = report.read_text(encoding="utf-8")
    with open(run_dir / "atoms.csv") as fh:
        rows = list(csv.DictReader(fh))
    n_v = sum(r["token"] == "V" for r in rows)
    conf_v = np.mean([float(r["confidence"]) for r in rows if r["token"] == "V"])
    gallery = page.split('id="tokens"')[1]
    assert f"{n_v:,} atoms · {100 * n_v / len(rows):.1f}%" in gallery
    assert f"confidence {conf_v:.3f}".rstrip("0") in gallery


def test_token_gallery_picture(report, run_dir):
    """tokens.png beside the report: one framed class average per token, in the overlay colours."""
    names = [str(n) for n in np.load(run_dir / "tokens.npz")["names"]]
    with Image.open(run_dir / "tokens.png") as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    assert rgb.shape[1] == round(1.7 * len(names) * 100) and rgb.shape[0] == 210
    for colour in token_colours(len(names))[:, :3]:
        frame = np.all(np.abs(rgb - np.round(255 * colour)) <= 2, axis=-1)
        assert frame.sum() > 400  # a 4-point frame around a panel of ~120 px
    # the panels hold the class averages: grey levels, not one flat colour
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2]) & (rgb[..., 0] > 0) & (rgb[..., 0] < 255)
    assert len(np.unique(rgb[grey][:, 0])) > 50
    assert render_token_gallery(run_dir) == (run_dir / "tokens.png").read_bytes()


def test_report_is_rebuilt_identically(report, run_dir):
    first = report.read_bytes()
    assert write_report(run_dir).read_bytes() == first


def test_report_from_what_the_run_holds_is_the_rebuilt_page(report, run_dir, tmp_path):
    """The pipeline hands write_report its grammar and token statistics instead of having them read back:
    the statistics from the arrays are those of atoms.csv, and the page is byte for byte the rebuilt one."""
    with open(run_dir / "atoms.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = np.array([TOKEN_NAMES.index(r["token"]) for r in rows])
    conf = np.array([float(r["confidence"]) for r in rows])
    held = rundir.token_stats(TOKEN_NAMES, np.bincount(labels, minlength=len(TOKEN_NAMES)),
                              [rundir.confidence_units(conf[labels == k]).sum() for k in range(len(TOKEN_NAMES))])
    assert held == rundir.read_token_stats(run_dir)
    for name, (n, mean) in held.items():  # the mean of the confidences as atoms.csv's 4 decimals write them
        assert n == sum(r["token"] == name for r in rows)
        assert mean == pytest.approx(np.mean(conf[labels == TOKEN_NAMES.index(name)]), abs=5e-5)
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    grammar = Grammar.parse_text((run_dir / "grammar.txt").read_text())
    assert write_report(copy, grammar=grammar, token_stats=held).read_bytes() == report.read_bytes()


def test_report_from_cached_compiled_templates_is_the_same_page(report, run_dir, tmp_path):
    """A new process reads the compiled templates from Jinja's bytecode cache instead of compiling them."""
    from motifgram.engine import report as report_module

    cache = report_module._templates().bytecode_cache
    assert cache is not None and list(Path(cache.directory).glob("__jinja2_*.cache"))  # written by the fixture
    report_module._templates.cache_clear()
    try:
        copy = tmp_path / run_dir.name
        shutil.copytree(run_dir, copy)
        assert write_report(copy).read_bytes() == report.read_bytes()
    finally:
        report_module._templates.cache_clear()


def test_report_draws_the_hierarchy_when_the_grammar_parses(report):
    page = report.read_text(encoding="utf-8")
    try:
        Grammar.parse_text(grammar_text(fixture_grammar()))
    except ImportError:
        assert "Hierarchy not drawn" in page
    else:
        assert "<h3>Hierarchy</h3><figure" in page


def test_minimal_run_gives_notes_not_errors(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({
        "name": "bare", "images": {"only": {"n_atoms": 10, "ring_histogram": {}, "token_counts": {"A": 10}}},
        "groups": {"g1": {"images": ["only"]}, "g2": {"images": []}},
    }))
    (tmp_path / "tokens.npz").write_bytes(b"not a zip file")
    (tmp_path / "grammar.txt").write_text("this is { not a grammar")
    page = write_report(tmp_path).read_text(encoding="utf-8")
    p = assert_self_contained(page)
    assert set(REPORT_SECTIONS) <= p.ids
    for note in ("overlay.png", "No overlay", "tokens.npz cannot be read", "embedding.npz is not in the run",
                 "Hierarchy not drawn", "no comparison", "No ring histograms", "No timings", "spec is not recorded"):
        assert note in page or note.replace("overlay.png", "only.png") in page, note
    with Image.open(tmp_path / "tokens.png") as img:  # token A from the counts, an empty frame
        assert img.size == (170, 210)


@pytest.mark.parametrize("close_call", [True, False])
def test_token_section_says_how_components_became_tokens(tmp_path, close_call):
    merging = {"mixture_components": 3, "threshold": 0.25, "last_merged": None, "first_kept_apart": 0.232,
               "undecided": [0.22, 0.3], "close_call": close_call}
    (tmp_path / "summary.json").write_text(json.dumps({
        "name": "m", "images": {"only": {"n_atoms": 10, "token_counts": {"A": 6, "B": 3, "C": 1}}},
        "tokens": {"names": ["A", "B", "C"], "k": 3, "k_selection": "bic", "merging": merging},
    }))
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "3 mixture components (K by BIC) became 3 token(s)" in page
    assert "first pair kept apart at Bhattacharyya coefficient 0.232" in page
    assert ("A close call" in page) == close_call and ("(0.22-0.3)" in page) == close_call


@pytest.mark.parametrize("runner_up", [None, 3.5, 120.0])
def test_token_section_says_the_count_had_the_shortest_description(tmp_path, runner_up):
    vocabulary = {"mixture_components": 3, "tokens": 2, "alternatives": {"1": 5000.0, "2": 4880.0},
                  "description_length_bits": {"model": 40.0, "structure": 800.0, "data": 4040.0, "total": 4880.0},
                  "runner_up_bits": runner_up, "close_call": runner_up is not None and runner_up < 10}
    merging = {"mixture_components": 3, "threshold": 0.25, "last_merged": 0.9, "first_kept_apart": None,
               "undecided": [0.22, 0.3], "close_call": vocabulary["close_call"], "vocabulary": vocabulary}
    (tmp_path / "summary.json").write_text(json.dumps({
        "name": "m", "images": {"only": {"n_atoms": 10, "token_counts": {"A": 6, "B": 4}}},
        "tokens": {"names": ["A", "B"], "k": 2, "k_selection": "description length", "merging": merging},
    }))
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "3 mixture components (K by BIC) became 2 token(s): the token count with the shortest description" in page
    assert "4,880.0 bits" in page and "Bhattacharyya" not in page
    assert ("bits longer" in page) == (runner_up is not None)
    assert ("A close call" in page) == vocabulary["close_call"]


def test_missing_summary_is_a_motifgram_error(tmp_path):
    with pytest.raises(MotifgramError, match="summary.json"):
        write_report(tmp_path)
    (tmp_path / "summary.json").write_text("[1, 2")
    with pytest.raises(MotifgramError, match="JSON"):
        write_report(tmp_path)


@pytest.mark.parametrize(("shape", "title"), [((120, 200), "a title"), ((200, 120), None), ((64, 64), None)])
def test_overlay_size_and_dots_on_the_columns(tmp_path, shape, title):
    h, w = shape
    rng = np.random.default_rng(seed(1))
    xy = np.c_[rng.uniform(5, w - 6, 12), rng.uniform(5, h - 6, 12)]
    tokens = np.arange(12) % 3
    path = tmp_path / "sub" / "o.png"
    render_overlay(np.zeros(shape), xy, tokens, TOKEN_NAMES, [(0, 1, 2)], ["R3"], path, title=title)
    img = Image.open(path)
    scale = OVERLAY_IMAGE_PX / max(h, w)
    title_px = 48 if title else 0
    assert img.size[0] == round(w * scale) + 380
    assert img.size[1] == max(round(h * scale) + title_px, 30 * (3 + 1 + 4) + title_px)
    assert max(img.size) <= 1600
    rgb = np.asarray(img.convert("RGB")).astype(int)
    colours = (255 * token_colours(3)[:, :3]).astype(int)
    for (x, y), t in zip(xy[3:], tokens[3:], strict=True):  # atoms 0-2 lie under the ring's fill
        col, row = int((x + 0.5) * scale), int((y + 0.5) * scale) + title_px
        assert np.abs(rgb[row, col] - colours[t]).max() <= 24, (x, y, rgb[row, col], colours[t])


def test_overlay_rejects_inconsistent_input(tmp_path):
    xy = np.zeros((3, 2))
    with pytest.raises(ValueError, match="tokens"):
        render_overlay(np.zeros((8, 8)), xy, [0, 1], TOKEN_NAMES, [], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="token indices"):
        render_overlay(np.zeros((8, 8)), xy, [0, 1, 5], TOKEN_NAMES, [], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="ring symbols"):
        render_overlay(np.zeros((8, 8)), xy, [0, 1, 2], TOKEN_NAMES, [(0, 1, 2)], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="outside"):
        render_overlay(np.zeros((8, 8)), xy, [0, 1, 2], TOKEN_NAMES, [(0, 1, 7)], ["R3"], tmp_path / "x.png")


def test_large_run_stays_small(tmp_path):
    """50,000 atoms on a 2048² micrograph: overlay ≤ 1600 px, page well under 15 MB."""
    shape = (2048, 2048)
    xy, sub, rings = honeycomb(shape, bond=8.0)
    assert len(xy) > 45_000
    rng = np.random.default_rng(seed(3))
    image = rng.normal(size=shape).astype(np.float32)
    symbols = np.where(rng.random(len(rings)) < 0.05, "R5", "R6")
    run = tmp_path / "big"
    render_overlay(image, xy, sub, ("A", "B"), rings, symbols, run / "overlays" / "big.png")
    png = run / "overlays" / "big.png"
    assert max(Image.open(png).size) <= 1600
    assert png.stat().st_size < 4_000_000
    (run / "summary.json").write_text(json.dumps({"name": "big", "images": {"big": {"n_atoms": len(xy)}}}))
    assert write_report(run).stat().st_size < 15_000_000


def hierarchy_labels(page: str) -> tuple[dict[str, tuple[float, float]], dict[int, float]]:
    """The report's hierarchy figure (inline SVG, text kept as text): symbol label -> (x, y) and level -> row y."""
    start = page.index("<h3>Hierarchy</h3>")
    svg = page[start:page.index("</svg>", start)]
    labels, rows = {}, {}
    for attributes, text in re.findall(r"<text([^>]*)>([^<]*)</text>", svg):
        at = re.search(r' x="([-\d.]+)" y="([-\d.]+)"', attributes) or re.search(
            r"translate\(([-\d.]+) ([-\d.]+)\)", attributes)  # rotated labels are placed by a transform
        x, y = float(at.group(1)), float(at.group(2))
        if text.startswith("level "):
            rows[int(text.split()[1])] = y
        elif text not in ("token", "ring", "motif", "domain"):  # the legend
            labels[html.unescape(text)] = (x, y)
    return labels, rows


def test_hierarchy_draws_every_symbol_above_its_parts(report):
    """In the page: one label per grammar symbol, on the row of its level (labels sit just above their node), so
    every rule is drawn above the symbols it is built from."""
    g = fixture_grammar().validate()
    labels, rows = hierarchy_labels(report.read_text(encoding="utf-8"))
    assert set(labels) == set(g.symbols) and sorted(rows) == sorted({g.level_of(s) for s in g.symbols})
    for name, (_, y) in labels.items():
        nearest_row = min(rows, key=lambda level: abs(rows[level] - y))
        assert nearest_row == g.level_of(name) and y < rows[nearest_row], name  # SVG y grows downwards
    for rule in (*g.rings, *g.motifs, *g.domains):
        parts = rule.word if hasattr(rule, "word") else rule.nodes if hasattr(rule, "nodes") else (rule.symbol,)
        assert all(labels[p][1] > labels[rule.name][1] for p in parts if p != "*"), rule.name


def test_hierarchy_of_a_large_grammar_keeps_the_commonest_symbols(tmp_path):
    """A level with more symbols than fit (30 drawn) keeps the commonest and says how many it left out."""
    rings = tuple(RingRule(f"R{k}", ("A",) * (k - 1) + ("B",), 200 - k) for k in range(3, 43))
    g = Grammar("big", 1, tokens=(TokenSymbol("A", 0.9), TokenSymbol("B", 0.1)), rings=rings)
    write_run(tmp_path / "run")
    (tmp_path / "run" / "grammar.txt").write_text(g.to_text())
    page = write_report(tmp_path / "run").read_text(encoding="utf-8")
    labels, _ = hierarchy_labels(page)
    drawn = {name for name in labels if name.startswith("R")}
    assert drawn == {r.name for r in sorted(rings, key=lambda r: -r.count)[:30]}
    assert "10 rarer symbols are not drawn" in page


def test_hierarchy_layout_places_parts_below_their_rules():
    g = fixture_grammar().validate()
    nodes, edges, omitted = hierarchy_layout(g)
    assert omitted == 0
    assert set(nodes) == set(g.symbols)
    for name, (x, level, weight, kind) in nodes.items():
        assert level == g.level_of(name)
        assert 0 <= x <= 1 and 0 < weight <= 1
    assert {kind for *_, kind in nodes.values()} == {"token", "ring", "motif", "domain"}
    for parent, child in edges:
        assert nodes[parent][1] > nodes[child][1]
    assert set(edges) == {
        ("R6", "A"), ("R6", "B"), ("R6v", "A"), ("R6v", "B"), ("R6v", "V"),
        ("M1", "R6v"), ("M1", "R7"), ("M2", "M1"), ("D_R6", "R6"),
    }
    assert nodes["R6"][2] == 1.0 and nodes["R7"][2] == pytest.approx(4 / 90)
    few, _, omitted = hierarchy_layout(g, max_per_level=1)
    assert omitted == 5  # tokens B, V; rings R6v, R7; D_R6 (rarer than M1 on level 2)
    assert {"A", "R6", "M1", "M2"} == set(few)


# --------------------------------------------------------------------------------------------------------------
# A real browser


def find_chromium():
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


class DevTools:
    """A minimal Chrome DevTools protocol client over ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, chromium: str, profile: Path):
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Move Chromium's ends above 10 so the shell's "3<& 4>&" redirections cannot clobber them.
        cr = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        cw = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
            "--remote-debugging-pipe", "about:blank",
        ]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{cr} 4>&{cw}', "chromium", chromium, *flags],
            pass_fds=(cr, cw), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(cr)
        os.close(cw)
        self.out, self.inp = to_chrome_w, from_chrome_r
        self.buffer = b""
        self.events: list[dict] = []
        self.n = 0

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.inp], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe: " + self.proc.stderr.read().decode()[-2000:])
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params=None, *, session=None, timeout: float = 30.0) -> dict:
        self.n += 1
        message = {"id": self.n, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self.n:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, *, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.events.append(self._next(deadline))

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.out)
        os.close(self.inp)


def browse(chromium: str, page: Path, profile: Path) -> dict:
    """Open ``page`` in headless Chromium; return its DOM, screenshot, requests, errors and image checks."""
    cdp = DevTools(chromium, profile)
    try:
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            cdp.call(f"{domain}.enable", session=sid)
        cdp.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=sid)
        cdp.call("Page.navigate", {"url": page.resolve().as_uri()}, session=sid)
        cdp.wait_event("Page.loadEventFired")

        def evaluate(expression):
            return cdp.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                            session=sid)["result"]["value"]

        result = {
            "dom": evaluate("document.documentElement.outerHTML"),
            "n_images": evaluate("document.images.length"),
            "broken_images": evaluate("Array.from(document.images).filter(i => !i.complete || "
                                      "i.naturalWidth === 0).map(i => i.alt)"),
            "sections": evaluate("Array.from(document.querySelectorAll('section[id]')).map(s => s.id)"),
        }
        size = cdp.call("Page.getLayoutMetrics", session=sid)["cssContentSize"]
        shot = cdp.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1},
        }, session=sid)
        result["screenshot"] = base64.b64decode(shot["data"])
    finally:
        cdp.close()
    events = cdp.events
    result["requests"] = [e["params"]["request"]["url"] for e in events
                          if e.get("method") == "Network.requestWillBeSent"]
    result["failed"] = [e["params"] for e in events if e.get("method") == "Network.loadingFailed"]
    result["errors"] = (
        [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
        + [e["params"] for e in events
           if e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert")]
        + [e["params"]["entry"] for e in events
           if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"]
    )
    return result


def test_report_in_a_real_browser(report, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    result = browse(chromium, report, tmp_path / "profile")
    assert result["errors"] == []
    assert result["failed"] == []
    assert all(url.startswith(("file://", "data:")) for url in result["requests"]), result["requests"]
    assert result["sections"] == list(REPORT_SECTIONS)
    for sid in REPORT_SECTIONS:
        assert f'id="{sid}"' in result["dom"]
    assert result["n_images"] >= 6 and result["broken_images"] == []
    shot = Image.open(io.BytesIO(result["screenshot"])).convert("L")
    assert shot.size[0] >= 1000 and shot.size[1] > 2000
    pixels = np.asarray(shot)
    assert pixels.std() > 20 and len(np.unique(pixels)) > 64  # not blank: text, figures, micrographs
    if os.environ.get("MOTIFGRAM_REPORT_SCREENSHOT"):
        Path(os.environ["MOTIFGRAM_REPORT_SCREENSHOT"]).write_bytes(result["screenshot"])


def test_browser_check_sees_external_requests_and_errors(tmp_path):
    """The browser check itself: a page that fetches and throws is caught (so a clean result means clean)."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><section id="run">x</section>'
                   '<img alt="remote" src="http://example.invalid/a.png">'
                   "<script>console.error('boom'); undefined_function();</script></body></html>")
    result = browse(chromium, bad, tmp_path / "profile")
    assert any(url.startswith("http://example.invalid") for url in result["requests"])
    assert result["broken_images"] == ["remote"]
    assert len(result["errors"]) >= 2
