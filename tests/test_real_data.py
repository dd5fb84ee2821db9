"""The example analyses of real micrographs (specs/*.yaml, examples/*.md): headline numbers.

The images live outside the project (most are not ours to redistribute, see examples/README.md); these tests
skip when ``../shared/data`` is absent. Each spec runs once per module with overlays and the report switched off.
The helper functions are the analyses quoted in the write-ups.
"""

import csv
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import yaml
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from motifgram.engine.pipeline import run
from motifgram.engine.spec import load_spec
from motifgram.grammar import Grammar

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECS = ROOT / "specs"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real micrographs not present at {DATA}")


# ---- analyses used by the write-ups -------------------------------------------------------------------------------

def read_run(run_dir, *, with_border=False):
    """atoms (xy (N,2) px, token (N,), intensity (N,)), bonds (B,2) and rings [(size, atom ids)] of a run.

    Rings flagged as touching the image edge or the outer face (rings.csv ``border`` = 1) are left out unless
    ``with_border``: the claims below are about the interior."""
    run_dir = Path(run_dir)
    atoms = list(csv.DictReader(open(run_dir / "atoms.csv")))
    xy = np.array([[float(a["x"]), float(a["y"])] for a in atoms])
    token = np.array([a["token"] for a in atoms])
    intensity = np.array([float(a["intensity"]) for a in atoms])
    bonds = np.array([[int(b["i"]), int(b["j"])] for b in csv.DictReader(open(run_dir / "bonds.csv"))], int)
    rings = [(int(r["size"]), [int(v) for v in r["atoms"].split()])
             for r in csv.DictReader(open(run_dir / "rings.csv")) if with_border or r["border"] == "0"]
    return xy, token, intensity, bonds.reshape(-1, 2), rings


def honeycomb_sublattices(intensity, bonds, rings, *, min_component=20):
    """Atoms of the undisturbed honeycomb (in >= 2 six-rings, in no other ring), split into its two sublattices.

    Returns (metal, chalcogen) atom indices: in each connected bipartite piece the sublattice with the brighter
    median is called the metal one.
    """
    n = len(intensity)
    n6 = np.zeros(n, int)
    other = np.zeros(n, bool)
    for size, ids in rings:
        if size == 6:
            n6[ids] += 1
        else:
            other[ids] = True
    keep = (n6 >= 2) & ~other
    g = nx.Graph()
    g.add_nodes_from(np.flatnonzero(keep))
    g.add_edges_from((i, j) for i, j in bonds if keep[i] and keep[j])
    metal, chalcogen = [], []
    for comp in nx.connected_components(g):
        sub = g.subgraph(comp)
        if len(comp) < min_component or not nx.is_bipartite(sub):
            continue
        a, b = (sorted(s) for s in nx.bipartite.sets(sub))
        if np.median(intensity[a]) < np.median(intensity[b]):
            a, b = b, a
        metal += a
        chalcogen += b
    return np.array(metal, int), np.array(chalcogen, int)


def like_pairs(substituted, pairs, *, seed=0, n_perm=2000):
    """Substituted-substituted neighbour pairs: observed, expected for a random alloy, permutation sd and p.

    substituted: (n,) bool over sites; pairs: (P,2) neighbouring site pairs. The expectation keeps the number of
    substituted sites: P k (k-1) / (n (n-1)). p is the one-sided permutation p-value of observing >= obs.
    """
    n, k = len(substituted), int(substituted.sum())
    obs = int(np.sum(substituted[pairs[:, 0]] & substituted[pairs[:, 1]]))
    expected = len(pairs) * k * (k - 1) / (n * (n - 1))
    rng = np.random.default_rng(seed)
    perm = np.empty(n_perm)
    for t in range(n_perm):
        s = rng.permutation(substituted)
        perm[t] = np.sum(s[pairs[:, 0]] & s[pairs[:, 1]])
    return obs, expected, float(perm.std()), float((np.sum(perm >= obs) + 1) / (n_perm + 1))


def detection_scores(det, ref, *, radius, window=None):
    """Precision, recall, F1 of detections against reference positions (one-to-one matching within radius).

    window: (lo (2,), hi (2,)) — only detections inside it count (the annotated area); None: all.
    """
    d = np.linalg.norm(det[:, None] - ref[None], axis=2)
    cost = np.where(d <= radius, d, 1e6)
    i, j = linear_sum_assignment(cost)
    ok = cost[i, j] < 1e6
    inside = np.ones(len(det), bool) if window is None else np.all((det >= window[0]) & (det <= window[1]), axis=1)
    tp = int(np.sum(ok & inside[i]))
    precision, recall = tp / inside.sum(), tp / len(ref)
    return precision, recall, 2 * precision * recall / (precision + recall)


# ---- runs -----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> run directory, each spec run once (lazily), without overlays and report."""
    done = {}

    def get(name):
        if name not in done:
            raw = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
            raw["output"] = {"overlays": False, "report": False}
            spec = load_spec(raw, base_dir=SPECS)
            done[name] = run(spec, out_dir=tmp_path_factory.mktemp(name) / "run", quiet=True)
        return done[name]

    return get


def grammar_of(run_dir):
    return Grammar.parse_text((Path(run_dir) / "grammar.txt").read_text())


def test_mose2_grain_boundary_rules(runs):
    rd = runs("mose2_grain_boundary")
    xy, token, intensity, bonds, rings = read_run(rd)
    four = np.array([xy[ids].mean(0) for size, ids in rings if size == 4])
    # the mirror-twin boundary: a straight row of point-sharing 4-rings at y ~ 370 px, one per lattice constant
    row = four[np.abs(four[:, 1] - 369.6) < 2.0]
    assert len(row) >= 15
    assert np.median(np.diff(np.sort(row[:, 0]))) == pytest.approx(20.7, abs=1.0)
    text = (Path(rd) / "grammar.txt").read_text()
    assert "R4 = ring(A A A A)" in text
    # the boundary cuts the honeycomb into two R6 domains
    assert "D_R6 = domain(R6) 2" in text
    # and is a rule of its own: the corner-sharing 4-rings are domains (two stretches, cut by a missing column)
    boundary = next(d for d in grammar_of(rd).domains if d.symbol == "R4")
    assert boundary.count <= 2 and boundary.size >= 15


def test_ws2te2_tokens_by_intensity_and_clustering(runs):
    rd = runs("ws2te2_alloy")
    xy, token, intensity, bonds, rings = read_run(rd)
    names = sorted(set(token))
    assert len(names) == 3
    means = {t: intensity[token == t].mean() for t in names}
    order = sorted(names, key=means.get)
    assert means[order[1]] > 1.5 * means[order[0]] and means[order[2]] > 1.5 * means[order[1]]
    bright = token == order[2]
    assert 0.15 < bright.mean() < 0.30
    # substitution clustering: bonded bright-bright pairs vs a random placement of the same number of bright sites
    obs, expected, sd, p = like_pairs(bright, bonds)
    assert obs < expected - 5 * sd      # bright sites avoid each other on the bond graph (sublattice ordering)


def test_mos2_se_substitutions_and_vacancies(runs):
    rd = runs("mos2_se_implanted")
    xy, token, intensity, bonds, rings = read_run(rd)
    metal, chalcogen = honeycomb_sublattices(intensity, bonds, rings)
    assert len(metal) > 600 and len(chalcogen) > 600
    by_brightness = sorted(set(token), key=lambda t: intensity[token == t].mean())
    s2_token, bright_token = by_brightness[0], by_brightness[-1]
    # Mo columns are the brightest token, but for a few in the neighbourhood token of Se sites and defects
    # (3 tokens: the third holds 33 Mo and 37 chalcogen sites near Se and holes; measured 0.954. Its size moves with
    # small changes of the positions: 0.937-0.981 over seeds 0-3 before the fast-scan filter)
    assert np.mean(token[metal] == bright_token) > 0.95 and not np.any(token[metal] == s2_token)
    se = int(np.sum(token[chalcogen] != s2_token))          # chalcogen sites brighter than a plain S2 column
    assert 20 <= se <= 70
    rel = intensity[chalcogen] / np.median(intensity[chalcogen])
    vacancies = int(np.sum(rel < 0.6))                       # a single S left: about half an S2 column
    assert 50 <= vacancies <= 130


def test_graphene_flower_detection_f1(runs):
    rd = runs("graphene_flower")
    xy, *_ = read_run(rd)
    ref = np.loadtxt(DATA / "temimage-graphene" / "graphene_flower.txt")
    d, _ = cKDTree(ref).query(ref, k=2)
    radius = np.median(d[:, 1]) / 3
    _, recall, f1_all = detection_scores(xy, ref, radius=radius)
    window = (ref.min(0) - radius, ref.max(0) + radius)     # the annotator marked no spot within ~6 px of the edge
    precision, _, f1 = detection_scores(xy, ref, radius=radius, window=window)
    assert recall > 0.95
    assert f1_all >= 0.95  # the target, counting every detection
    assert f1 > 0.955


def test_sto_one_domain(runs):
    g_text = (Path(runs("sto")) / "grammar.txt").read_text()
    g = grammar_of(runs("sto"))
    assert "D_R4 = domain(R4) 1" in g_text
    assert len(g.to_text()) > 0 and "motifs { }" in g_text


@pytest.mark.xfail(reason="Si[110]: unresolved dumbbells give single columns (the fast-scan filter removed the scan "
                          "noise peaks, 51 -> 34 unpaired inner columns) and the inter-dumbbell distances spread over "
                          "1.6-2.9 x the dumbbell length; see examples/sto_si110.md",
                   strict=False)
def test_si110_one_domain(runs):
    g = grammar_of(runs("si110"))
    ring_size = {r.name: r.size for r in g.rings}
    # one rule, one piece: a single domain of six-rings (its name depends on the token count)
    assert [(ring_size.get(d.symbol), d.count) for d in g.domains] == [(6, 1)]


def test_si110_dumbbells(runs):
    xy, *_ = read_run(runs("si110"))
    d, _ = cKDTree(xy).query(xy, k=2)
    partner = d[:, 1]
    assert np.median(partner) == pytest.approx(13.1, abs=1.0)            # 0.131 nm at 0.01 nm/px (Si: 0.136 nm)
    assert np.mean(np.abs(partner - 13.1) < 3.0) > 0.8


def test_au_grain_boundary_dislocation_cores(runs):
    xy, token, intensity, bonds, rings = read_run(runs("au_grain_boundary"))
    sizes = np.array([s for s, _ in rings])
    assert np.mean(sizes == 3) > 0.98
    cores = np.array([xy[ids].mean(0) for s, ids in rings if s in (4, 5)])
    assert 5 <= len(cores) <= 8
    # the cores lie on one line (the boundary), evenly spaced
    centred = cores - cores.mean(0)
    _, sv, _ = np.linalg.svd(centred, full_matrices=False)
    assert sv[1] / sv[0] < 0.05
    spacing = np.diff(np.sort(centred @ np.linalg.svd(centred)[2][0]))
    assert np.median(np.abs(spacing)) == pytest.approx(76, abs=8)
