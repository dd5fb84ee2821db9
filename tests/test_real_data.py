"""The example analyses of real micrographs (specs/*.yaml, examples/*.md): headline numbers.

The images live outside the project (most are not ours to redistribute, see examples/README.md); these tests
skip when ``../shared/data`` is absent (a failure in CI). Each spec runs once per module with overlays and the
report switched off, at spec ``seed`` :data:`REAL_SPEC_SEED` (the token fit's restarts and samples). The helper
functions are the analyses quoted in the write-ups; each test asserts on a ``measure_*`` function that
``benchmarks/seed_sweeps.py`` runs over spec seeds 0-7, and the ranges beside the thresholds come from there.
Detection, bonds and rings do not depend on the seed; tokens and the grammar do. The seed is not shifted by the
test seed offset: a real micrograph is one image, not a draw, and the claims' dependence on the spec seed is that
sweep's measurement, so CI's second seed set (which costs as much as the first) does not repeat these runs.
"""

import csv
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import yaml
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from conftest import DATA, SPECS, built_once, needs_data
from motifgram.engine.pipeline import run
from motifgram.engine.spec import load_spec
from motifgram.grammar import Grammar

pytestmark = needs_data


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


# ---- runs ----------------------------------------------------------------------------------------------------------

#: The spec seed of every real run (module docstring).
REAL_SPEC_SEED = 0

_RUNS = {}


def run_spec(name, spec_seed, root=None):
    """The run directory of ``specs/<name>.yaml`` with ``seed: spec_seed``, overlays and report off (run once)."""
    import tempfile

    key = (name, spec_seed)
    if key not in _RUNS:
        raw = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
        raw["output"] = {"overlays": False, "report": False}
        raw["seed"] = spec_seed
        root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix=f"motifgram-{name}-"))
        _RUNS[key] = run(load_spec(raw, base_dir=SPECS), out_dir=root / f"{name}-{spec_seed}", quiet=True)
    return _RUNS[key]


def real_run(tmp_path_factory, name):
    """The run directory of ``specs/<name>.yaml`` at :data:`REAL_SPEC_SEED`, built once per test session by whichever
    pytest-xdist worker asks first (this module's tests and test_compare's comparison of the real runs share it)."""
    return built_once(tmp_path_factory, f"real-{name}-{REAL_SPEC_SEED}",
                      lambda folder: run_spec(name, REAL_SPEC_SEED, folder))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> run directory at :data:`REAL_SPEC_SEED` (each spec run once per test session, lazily)."""
    return lambda name: real_run(tmp_path_factory, name)


def chemistry_run(name, out_dir):
    """``specs/<name>.yaml`` run at :data:`REAL_SPEC_SEED` with ``features.descriptor: chemistry`` (overlays and
    report off)."""
    raw = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    raw.update(output={"overlays": False, "report": False}, seed=REAL_SPEC_SEED)
    raw.setdefault("features", {})["descriptor"] = "chemistry"
    return run(load_spec(raw, base_dir=SPECS), out_dir=out_dir, quiet=True)


def grammar_of(run_dir):
    return Grammar.parse_text((Path(run_dir) / "grammar.txt").read_text())


def ring_sizes_of(grammar):
    return {r.name: r.size for r in grammar.rings}


# ---- MoSe2 mirror-twin boundary ---------------------------------------------------------------------------------------

def measure_mose2(run_dir):
    """4-rings on the boundary row (y ~ 370 px), their spacing, and the grammar's R4 rule and hexagon domains."""
    xy, token, intensity, bonds, rings = read_run(run_dir)
    four = np.array([xy[ids].mean(0) for size, ids in rings if size == 4])
    row = four[np.abs(four[:, 1] - 369.6) < 2.0]
    g = grammar_of(run_dir)
    size_of = ring_sizes_of(g)
    hexagon_domains = [d for d in g.domains if size_of.get(d.symbol) == 6]
    return {"row_4_rings": len(row), "spacing_px": float(np.median(np.diff(np.sort(row[:, 0])))),
            "r4_rules": sum(r.size == 4 and not r.is_wildcard for r in g.rings),
            "hexagon_domain_rules": len(hexagon_domains),
            "hexagon_domains": sum(d.count for d in hexagon_domains),
            "boundary_domains": [(d.count, d.size) for d in g.domains if size_of.get(d.symbol) == 4]}


def test_mose2_grain_boundary_rules(runs):
    m = measure_mose2(runs("mose2_grain_boundary"))
    # the mirror-twin boundary: a straight row of point-sharing 4-rings at y ~ 370 px, one per lattice constant
    # (20.7 px); the grammar has a rule for its 4-ring and the boundary cuts the honeycomb into two domains of one
    # hexagon rule. Seeds 0-7: 19 4-rings on the row 20.68 px apart, one R4 rule, two domains of one R6 rule.
    assert m["row_4_rings"] >= 15
    assert m["spacing_px"] == pytest.approx(20.7, abs=1.0)
    assert m["r4_rules"] >= 1
    assert m["hexagon_domain_rules"] == 1 and m["hexagon_domains"] == 2
    # the boundary is a rule of its own: its corner-sharing 4-rings make domains (two stretches where a missing
    # column cuts the row), each of at least 15 rings
    assert len(m["boundary_domains"]) == 1
    count, size = m["boundary_domains"][0]
    assert count <= 2 and size >= 15


@pytest.mark.xfail(reason="with features.descriptor: chemistry (seeds 0-1) the boundary row is found (16 4-rings "
                          "20.8 px apart, two hexagon domains of one rule) but its 4-ring is the wildcard R4, no rule "
                          "of its own", strict=True)
def test_mose2_grain_boundary_rules_with_chemistry_tokens(tmp_path):
    m = measure_mose2(chemistry_run("mose2_grain_boundary", tmp_path / "chemistry"))
    assert m["row_4_rings"] >= 15 and m["hexagon_domain_rules"] == 1 and m["hexagon_domains"] == 2
    assert m["r4_rules"] >= 1


# ---- WS2(1-x)Te2x alloy ------------------------------------------------------------------------------------------------

def brightness_classes(token, intensity, *, within=1.3):
    """Tokens grouped by mean intensity: sorted by it, a token less than ``within`` x brighter than the previous one
    joins its class. Returns (class (N,) int, the classes' mean intensities ascending)."""
    names = sorted(set(token), key=lambda t: intensity[token == t].mean())
    means, cls, of = [], -1, {}
    for t in names:
        mean = intensity[token == t].mean()
        if not means or mean >= within * means[-1]:
            cls += 1
            means.append(mean)
        of[t] = cls
    cls_of = np.array([of[t] for t in token])
    return cls_of, np.array([intensity[cls_of == c].mean() for c in range(cls + 1)])


def measure_ws2te2(run_dir):
    """Tokens and brightness classes (:func:`brightness_classes`): their counts, the ratios of the classes' mean
    intensities, the bright class's share, and how far bonded bright-bright pairs fall below a random placement
    (in permutation standard deviations)."""
    xy, token, intensity, bonds, rings = read_run(run_dir)
    cls, means = brightness_classes(token, intensity)
    bright = cls == cls.max()
    obs, expected, sd, p = like_pairs(bright, bonds)
    return {"n_tokens": len(set(token)), "n_classes": len(means),
            "middle_over_dim": means[1] / means[0] if len(means) > 2 else 0,
            "bright_over_middle": means[-1] / means[-2] if len(means) > 2 else 0,
            "bright_share": bright.mean(), "avoidance_sd": (expected - obs) / sd}


def test_ws2te2_tokens_by_intensity_and_clustering(runs):
    m = measure_ws2te2(runs("ws2te2_alloy"))
    # W, S2 and Te-bearing columns: three brightness classes (seeds 0-7: means 2.08-2.11 and 1.65 x apart; the bright
    # class 22.8-22.9 % of the columns). Three tokens on 7 of seeds 0-7; on seed 1 S2 is two tokens 1.15 x apart,
    # which the classes join. Bright sites avoid each other on the bond graph (sublattice ordering): 15.0-15.1
    # permutation sd below a random placement of the same number.
    assert m["n_classes"] == 3 and m["n_tokens"] in (3, 4)
    assert m["middle_over_dim"] > 1.5 and m["bright_over_middle"] > 1.5
    assert 0.15 < m["bright_share"] < 0.30
    assert m["avoidance_sd"] > 8


def test_ws2te2_chemistry_tokens(tmp_path):
    m = measure_ws2te2(chemistry_run("ws2te2_alloy", tmp_path / "chemistry"))
    # with features.descriptor: chemistry (seeds 0-1): 4 tokens; 4 brightness classes on seed 0 (the Te-bearing
    # columns in two), 3 on seed 1; classes 1.83-2.17 and 1.70 x apart, the bright class 20.9 %, bright sites 13.6
    # permutation sd below a random placement
    assert m["n_classes"] in (3, 4)
    assert m["bright_over_middle"] > 1.5
    assert 0.15 < m["bright_share"] < 0.30
    assert m["avoidance_sd"] > 8


# ---- Se-implanted MoS2 ---------------------------------------------------------------------------------------------

def measure_mos2_se(run_dir):
    """On the undisturbed honeycomb (two sublattices): Mo sites in the brightest main token and in S2's; chalcogen sites
    outside S2's token and their brightness; S vacancies (a single S left: below 0.6 x the median chalcogen)."""
    xy, token, intensity, bonds, rings = read_run(run_dir)
    metal, chalcogen = honeycomb_sublattices(intensity, bonds, rings)
    # the tokens of at least 10 % of the columns (a kind of a few columns off the lattice can be brighter than Mo)
    main = [t for t in set(token) if np.mean(token == t) >= 0.1]
    by_brightness = sorted(main, key=lambda t: intensity[token == t].mean())
    s2_token, bright_token = by_brightness[0], by_brightness[-1]
    rel = intensity[chalcogen] / np.median(intensity[chalcogen])
    not_s2 = token[chalcogen] != s2_token
    vacancy = rel < 0.6
    return {
        "metal_sites": len(metal), "chalcogen_sites": len(chalcogen),
        "mo_in_bright": np.mean(token[metal] == bright_token), "mo_in_s2": int(np.sum(token[metal] == s2_token)),
        "not_s2_share": not_s2.mean(),
        "not_s2_brightness": np.median(rel[not_s2]) if not_s2.any() else 0.0,
        "vacancy_share": vacancy.mean(), "vacancy_brightness": float(np.median(rel[vacancy])),
        "vacancies_in_s2": np.mean(token[chalcogen][vacancy] == s2_token),
    }


def test_mos2_se_substitutions_and_vacancies(runs):
    m = measure_mos2_se(runs("mos2_se_implanted"))
    assert m["metal_sites"] > 600 and m["chalcogen_sites"] > 600  # 714 and 754
    # Mo columns are the brightest token, but for the neighbourhood token of Se sites and holes, which holds 4.6-4.9 %
    # of them (seeds 0-7: 0.951-0.954 in the brightest token; this asked for > 0.95 before, which seeds 1 and 6 met
    # by one column), and never S2's token
    assert m["mo_in_bright"] > 0.93 and m["mo_in_s2"] == 0
    # chalcogen sites outside S2's token are brighter than S2 (Se-bearing): 5.2-5.4 % of them, median 1.34-1.37 x;
    # the token is not a species (write-up), so its size is not a Se count (the old 20 <= count <= 70 was no claim)
    assert 0.02 < m["not_s2_share"] < 0.10
    assert m["not_s2_brightness"] > 1.2
    # S vacancies: a single S left, about half an S2 column (median 0.48 x of the sites below 0.6 x: a mode of its
    # own, not the edge of S2's), 9.5 % of the chalcogen sites; no token separates them (98.6 % in S2's token).
    # Detection and rings do not depend on the seed: one value each over seeds 0-7.
    assert 0.06 < m["vacancy_share"] < 0.14
    assert 0.4 < m["vacancy_brightness"] < 0.55
    assert m["vacancies_in_s2"] > 0.9


@pytest.fixture(scope="module")
def mos2_se_chemistry(tmp_path_factory):
    """measure_mos2_se of the MoS2-Se spec run with ``features.descriptor: chemistry`` (built once per session)."""
    return measure_mos2_se(built_once(tmp_path_factory, f"real-mos2_se_implanted-chemistry-{REAL_SPEC_SEED}",
                                      lambda folder: chemistry_run("mos2_se_implanted", folder / "chemistry")))


def test_mos2_se_chemistry_tokens_name_se_sites(mos2_se_chemistry):
    m = mos2_se_chemistry
    # with features.descriptor: chemistry (spec seeds 0, 1, 1000): Mo is a clean token (99.2-99.6 % of the Mo sites in
    # the brightest token, none in S2's; Zernike 95.2 %), and the Se-bearing chalcogen sites a token of their own:
    # 3.3-3.4 % of the chalcogen sites outside S2's token, median 1.97-1.98 x an S2 column (S+Se against S2 in
    # HAADF, Z**1.7: 2.3 x; Zernike's non-S2 token: 3.9 % at 1.55 x, holes' neighbourhoods in it). With every EM
    # restart a candidate of the description (engine/vocabulary.py) the run gives 3 tokens at tokens.n_init 4 and 16 on
    # spec seeds 0, 1 and 1000; the 2 tokens once seen with 8 restarts kept the likelihood-best restarts, whose patch
    # removal left out 85 of the Se-site token's 91 columns (benchmarks/README.md, "A converged token fit")
    assert m["mo_in_bright"] > 0.98 and m["mo_in_s2"] <= 1
    assert 0.02 < m["not_s2_share"] < 0.10
    assert m["not_s2_brightness"] > 1.7


@pytest.mark.xfail(reason="with features.descriptor: chemistry (spec seeds 0, 1, 1000) 94 % of the S-vacancy sites "
                          "(below 0.6 x the median chalcogen in atoms.csv's intensity) are in S2's token: their fitted "
                          "integrated intensity (the chemistry feature) is 0.14 below the other chalcogen sites' in "
                          "log (a single S: 0.69), and the two intensities correlate by only 0.38 over the chalcogen "
                          "sites", strict=True)
def test_mos2_se_chemistry_tokens_name_s_vacancies(mos2_se_chemistry):
    assert mos2_se_chemistry["vacancies_in_s2"] < 0.5


# ---- graphene flower (hand-annotated positions) ------------------------------------------------------------------------

def measure_flower(run_dir):
    """Detection against the hand-annotated positions: recall, F1 over every detection and inside the annotated
    window (the annotator marked no spot within ~6 px of the edge)."""
    xy, *_ = read_run(run_dir)
    ref = np.loadtxt(DATA / "temimage-graphene" / "graphene_flower.txt")
    d, _ = cKDTree(ref).query(ref, k=2)
    radius = np.median(d[:, 1]) / 3
    _, recall, f1_all = detection_scores(xy, ref, radius=radius)
    window = (ref.min(0) - radius, ref.max(0) + radius)
    _, _, f1 = detection_scores(xy, ref, radius=radius, window=window)
    return {"recall": recall, "f1_all": f1_all, "f1_window": f1}


def test_graphene_flower_detection_f1(runs):
    m = measure_flower(runs("graphene_flower"))
    # detection does not depend on the seed: recall 0.9615, F1 0.9597 (every detection), 0.9615 (inside the annotated
    # window). The window's bound was 0.955, within 1 % of its one value: 0.95, the target, as for every detection.
    assert m["recall"] > 0.95
    assert m["f1_all"] >= 0.95  # the target, counting every detection
    assert m["f1_window"] >= 0.95


# ---- SrTiO3 -------------------------------------------------------------------------------------------------------------

def measure_sto(run_dir):
    """The grammar of a clean crystal: motif rules, domains (rule, count, size) and the rings it covers."""
    g = grammar_of(run_dir)
    size_of = ring_sizes_of(g)
    _, _, _, _, rings = read_run(run_dir)  # the interior rings: those the grammar learns from
    (domain, *others) = sorted(g.domains, key=lambda d: -d.size) or (None,)
    return {"motif_rules": len(g.motifs), "domain_rules": len(g.domains),
            "domain_ring_size": size_of.get(domain.symbol, 0) if domain else 0,
            "domain_count": domain.count if domain else 0,
            "domain_share": domain.size / len(rings) if domain else 0.0,
            "four_ring_share": np.mean([size == 4 for size, _ in rings]),
            "four_ring_share_all": np.mean([size == 4 for size, _ in read_run(run_dir, with_border=True)[4]])}


def test_sto_one_domain(runs):
    m = measure_sto(runs("sto"))
    # one rectangular lattice: every ring a 4-ring (Sr-TiO-Sr-TiO), one domain of one 4-ring rule over nearly all
    # the interior rings (those the grammar learns from), no motifs (seeds 0-7, after 01c13e3 kept border-flagged
    # rings out of induction: every ring a 4-ring, flagged ones too; the domain takes in every interior ring; no
    # motif rule). This replaces "len(g.to_text()) > 0".
    assert m["four_ring_share"] > 0.97
    assert m["domain_rules"] == 1 and m["domain_ring_size"] == 4 and m["domain_count"] == 1
    assert m["domain_share"] > 0.9
    assert m["motif_rules"] == 0


def test_sto_chemistry_tokens(tmp_path):
    out = chemistry_run("sto", tmp_path / "chemistry")
    m = measure_sto(out)
    # with features.descriptor: chemistry: 3 tokens on seeds 0-1 (8 before the intensity trend of issue 19), one
    # domain of one 4-ring rule over 99.8-99.9 % of the interior rings, no motif
    assert 2 <= len(set(read_run(out)[1])) <= 3
    assert m["domain_rules"] == 1 and m["domain_ring_size"] == 4 and m["domain_count"] == 1
    assert m["domain_share"] > 0.9 and m["motif_rules"] == 0


# ---- Si [110] ------------------------------------------------------------------------------------------------------------

@pytest.mark.xfail(reason="Si[110]: unresolved dumbbells give single columns (the fast-scan filter removed the scan "
                          "noise peaks, 51 -> 34 unpaired inner columns), the inter-dumbbell distances spread over "
                          "1.6-2.9 x the dumbbell length, and the automatic bond cut sits between two valleys (2.33 or "
                          "2.05 x nn for positions 0.02 px apart); see examples/sto_si110.md "
                          "(specs/si110_dumbbells.yaml, sites at dumbbells, is one domain: tests/test_pairs.py)",
                   strict=True)
def test_si110_one_domain(runs):
    m = measure_sto(runs("si110"))
    # a perfect crystal, as SrTiO3's: one domain of one six-ring rule over nearly all the interior rings. The share
    # is part of the claim: with the cheaper joint fit (de00be9) the bond cut fell to 2.05 x nn and the crystal into
    # patches (35 interior six-rings, 25 in the domain) while the domain list alone read "one domain of six-rings"
    assert m["domain_rules"] == 1 and m["domain_ring_size"] == 6 and m["domain_count"] == 1
    assert m["domain_share"] > 0.9


def measure_si110_partners(run_dir):
    """Each column's nearest neighbour: the median distance (the dumbbell, 0.136 nm = 13.6 px at 0.01 nm/px) and
    the share within 3 px of it."""
    xy, *_ = read_run(run_dir)
    partner = cKDTree(xy).query(xy, k=2)[0][:, 1]
    return {"median_px": float(np.median(partner)), "share": np.mean(np.abs(partner - 13.1) < 3.0)}


def test_si110_dumbbells(runs):
    m = measure_si110_partners(runs("si110"))
    # detection does not depend on the seed: median 13.03 px, 86.4 % within 3 px
    assert m["median_px"] == pytest.approx(13.1, abs=1.0)  # 0.131 nm at 0.01 nm/px (Si: 0.136 nm)
    assert m["share"] > 0.8


# ---- Au grain boundary ---------------------------------------------------------------------------------------------------

def measure_au(run_dir):
    """Rings of the Au boundary: the share of triangles, the dislocation cores (4- and 5-rings), how straight
    their line is and their spacing along it."""
    xy, token, intensity, bonds, rings = read_run(run_dir)
    sizes = np.array([s for s, _ in rings])
    cores = np.array([xy[ids].mean(0) for s, ids in rings if s in (4, 5)])
    centred = cores - cores.mean(0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    spacing = np.diff(np.sort(centred @ vt[0]))
    return {"triangle_share": np.mean(sizes == 3), "cores": len(cores), "straightness": sv[1] / sv[0],
            "spacing_px": float(np.median(np.abs(spacing)))}


def test_au_grain_boundary_dislocation_cores(runs):
    m = measure_au(runs("au_grain_boundary"))
    # seeds 0-7 (rings do not depend on the seed): 99.4 % triangles, 6 cores, straightness 0.005, spacing 76.7 px
    assert m["triangle_share"] > 0.98
    assert 5 <= m["cores"] <= 8
    # the cores lie on one line (the boundary), evenly spaced
    assert m["straightness"] < 0.05
    assert m["spacing_px"] == pytest.approx(76, abs=8)


def sweep(spec, measure, *, seed, module=None):
    """``measure`` (a function name of this module, or of test module ``module``) of ``specs/<spec>.yaml`` run at
    ``seed`` (benchmarks)."""
    import importlib

    where = globals() if module is None else vars(importlib.import_module(module))
    return where[measure](run_spec(spec, seed))
