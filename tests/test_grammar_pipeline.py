"""The grammar learned end to end (detection → tokens → rings → MDL induction) against simulated truth.

Every test asserts on a ``measure_*`` function of this module, which ``benchmarks/seed_sweeps.py`` (``grammar.*``)
runs over seeds 0-7; the ranges written beside the thresholds come from there. Each test is whole runs of one to
ten micrographs, so it runs one seed set, shifted by the seed offset (tests/conftest.py; CI runs two).
"""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.stats import spearmanr

from conftest import seed
from motifgram.engine.detect import detect_atoms
from motifgram.engine.graph import build_graph
from motifgram.engine.pipeline import parse_with_grammar, run
from motifgram.engine.rundir import read_run_graphs
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import load_spec
from motifgram.grammar import Grammar

QUIET = {"report": False, "overlays": False}


def run_spec(folder, name, inputs, **sections):
    """Run a spec of ``inputs`` in ``folder``: (run directory, grammar, summary)."""
    spec = load_spec({"name": name, "inputs": inputs, "output": QUIET, **sections}, base_dir=folder)
    out = run(spec, out_dir=Path(folder) / name, quiet=True)
    return out, Grammar.parse_text((out / "grammar.txt").read_text()), json.loads((out / "summary.json").read_text())


def parse_image(run_dir, image, folder, name):
    """``motifgram parse`` of ``image`` (a 2-D array, saved as ``<name>.npy``) with the grammar of ``run_dir``: its
    summary.json entry."""
    np.save(Path(folder) / f"{name}.npy", image)
    out = parse_with_grammar(run_dir / "grammar.txt", Path(folder) / f"{name}.npy",
                             out_dir=Path(folder) / f"parse-{name}", quiet=True)
    return json.loads((out / "summary.json").read_text())["images"][name]


def _folder(folder, prefix):
    return Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix=f"motifgram-{prefix}-"))


# ---- graphene with Stone-Wales defects and vacancies -----------------------------------------------------------------

DEFECTS = {"stone_wales_density": 0.003, "vacancy_density": 0.002}


def graphene_run(folder, seed):
    """A run on one simulated 512² graphene with Stone-Wales defects and vacancies, and the simulation."""
    inputs = [{"simulate": {"kind": "graphene", "size": 512, "seed": seed, **DEFECTS}}]
    return run_spec(folder, "graphene", inputs), simulate("graphene", size=512, seed=seed, **DEFECTS)


def defects_in_interior(sim, graph, kind):
    """How many of the simulation's defects of ``kind`` have every ring among the graph's interior rings (those the
    grammar learns from): a true ring is found when a detected unflagged ring of its size has its centre within a
    third of a bond of the true one."""
    detected = graph.interior()
    centres = np.array([graph.xy[list(r)].mean(0) for r in detected.rings]).reshape(-1, 2)
    sizes = detected.ring_sizes
    tree, bond = cKDTree(centres), float(np.median(graph.bond_lengths_px()))
    truth = sim.truth

    def found(ring):
        ring = truth.rings[ring]
        hits = tree.query_ball_point(truth.xy[list(ring)].mean(0), bond / 3)
        return any(sizes[h] == len(ring) for h in hits)

    return sum(all(found(r) for r in d.rings) for d in truth.defects if d.kind == kind)


def measure_graphene_rules(run_dir, grammar, sim):
    """The rules of a graphene run against its simulation: hexagon domain rules, Stone-Wales rules (two 5- and two
    7-rings, five bonds shared) and vacancy rules (a 5- and a 9-ring), and each defect rule's count minus the true
    defects of its kind whose rings are all interior rings (:func:`defects_in_interior`)."""
    graph = next(iter(read_run_graphs(run_dir).values()))
    size_of = {r.name: r.size for r in grammar.rings}
    sw = [m for m in grammar.motifs
          if m.level >= 2 and sorted(size_of.get(p, 0) for p in m.nodes) == [5, 5, 7, 7] and len(m.edges) == 5]
    vacancy = [m for m in grammar.motifs if sorted(size_of.get(p, 0) for p in m.nodes) == [5, 9]]
    sw_inside = defects_in_interior(sim, graph, "stone_wales")
    vacancy_inside = defects_in_interior(sim, graph, "vacancy")
    return {"hexagon_domain_rules": sum(size_of.get(d.symbol) == 6 for d in grammar.domains),
            "sw_rules": len(sw), "sw_true": sum(d.kind == "stone_wales" for d in sim.truth.defects),
            "sw_inside": sw_inside, "sw_count_error": (sw[0].count if sw else 0) - sw_inside,
            "vacancy_rules": len(vacancy), "vacancy_true": sum(d.kind == "vacancy" for d in sim.truth.defects),
            "vacancy_inside": vacancy_inside,
            "vacancy_count_error": (vacancy[0].count if vacancy else 0) - vacancy_inside}


def measure_second_micrograph(run_dir, summary, seed, folder):
    """Another graphene micrograph (``seed``) parsed with the grammar of ``run_dir``, against a run of its own: the
    coverage at levels 1 and 2 under the borrowed grammar minus under its own, and whether the parse calls the fit
    poor."""
    other = simulate("graphene", size=512, seed=seed, **DEFECTS)
    parsed = parse_image(run_dir, other.image, folder, "other")
    own = run_spec(folder, "own", [{"path": "other.npy"}])[2]["images"]["other"]
    change = {f"coverage_{level}_change": parsed["coverage"][level] - own["coverage"][level] for level in ("1", "2")}
    return {**change, "poor_fit": float(parsed["fit"]["poor"])}, parsed


def measure_network_bits(run_dir, summary, seed, folder):
    """A random network (``seed``) parsed with a crystal's grammar: its bits per atom over the crystal's own, and
    whether the parse calls the fit poor."""
    crystal_bits = next(iter(summary["images"].values()))["bits_per_atom"]
    parsed = parse_image(run_dir, simulate("crn", size=512, seed=seed).image, folder, "crn")
    return {"crn_over_crystal_bits": parsed["bits_per_atom"] / crystal_bits,
            "poor_fit": float(parsed["fit"]["poor"])}, parsed


def measure_graphene_grammar(seed, folder=None):
    """The graphene grammar of ``seed`` (:func:`measure_graphene_rules`), micrograph ``seed + 1`` parsed with it
    (:func:`measure_second_micrograph`) and a random network ``seed + 2`` (:func:`measure_network_bits`)."""
    folder = _folder(folder, "grammar")
    (out, grammar, summary), sim = graphene_run(folder, seed)
    second, _ = measure_second_micrograph(out, summary, seed + 1, folder)
    network, _ = measure_network_bits(out, summary, seed + 2, folder)
    return {**measure_graphene_rules(out, grammar, sim), **{f"second_{k}": v for k, v in second.items()},
            **{f"network_{k}": v for k, v in network.items()}}


@pytest.fixture(scope="module")
def graphene(tmp_path_factory):
    return graphene_run(tmp_path_factory.mktemp("graphene"), seed(21))


def test_graphene_grammar_has_a_lattice_domain_stone_wales_and_vacancy_rules(graphene):
    (out, grammar, _), sim = graphene
    m = measure_graphene_rules(out, grammar, sim)
    # one hexagon domain rule, one Stone-Wales rule and one vacancy rule, each counting exactly the true defects of
    # its kind whose rings are all interior rings (border-flagged rings are not learned from). Seeds 0-7 and
    # 1016-1023: one rule of each; 9 Stone-Wales defects and 6 vacancies, all interior, every one counted (count
    # minus truth 0). This asked for "n - 2 <= count <= n" against every defect before.
    assert m["hexagon_domain_rules"] == 1
    assert m["sw_rules"] == 1 and m["sw_inside"] >= 3 and m["sw_count_error"] == 0
    assert m["vacancy_rules"] == 1 and m["vacancy_inside"] >= 2 and m["vacancy_count_error"] == 0


def test_second_micrograph_is_covered_by_the_first_ones_grammar(graphene, tmp_path, caplog):
    (out, _, summary), _ = graphene
    m, parsed = measure_second_micrograph(out, summary, seed(22), tmp_path)
    own_bits = next(iter(summary["images"].values()))["bits_per_atom"]
    assert parsed["fit"] == {"bits_per_atom": parsed["bits_per_atom"], "grammar_bits_per_atom": own_bits,
                             "poor": False}
    assert "fits this micrograph poorly" not in caplog.text
    # the coverage under the first micrograph's grammar is the micrograph's own at both levels (seeds 0-7,
    # 1016-1023: equal at both, change 0; never called a poor fit)
    assert m["coverage_1_change"] == pytest.approx(0, abs=0.03)
    assert m["coverage_2_change"] == pytest.approx(0, abs=0.03)


def test_amorphous_network_costs_far_more_bits_under_the_crystal_grammar(graphene, tmp_path, caplog):
    """... and the parse says so: a warning with both costs, and ``fit.poor`` in summary.json."""
    (out, _, summary), _ = graphene
    m, parsed = measure_network_bits(out, summary, seed(23), tmp_path)
    crystal_bits = next(iter(summary["images"].values()))["bits_per_atom"]
    assert m["crn_over_crystal_bits"] > 10  # seeds 0-7, 1016-1023: 55.7-67.9 x, always a poor fit
    assert parsed["fit"]["poor"] is True and parsed["fit"]["grammar_bits_per_atom"] == crystal_bits
    warning = next(r.getMessage() for r in caplog.records if "fits this micrograph poorly" in r.getMessage())
    assert f"{parsed['bits_per_atom']:.3g} bits/atom against {crystal_bits:.3g} bits/atom" in warning


# ---- the Cairo pentagonal tiling -------------------------------------------------------------------------------------

def measure_cairo(seed, folder=None):
    """The Cairo pentagonal tiling (1280 px) through the pipeline: rule count, the commonest ring rule's share of
    the interior rings (those the grammar learns from), whether the one domain is of that rule, level-2 coverage
    of every atom and of the atoms of interior rings (level-1 coverage), and the pentagons' share of every ring and
    of the interior ones."""
    _, grammar, summary = run_spec(_folder(folder, "cairo"), "cairo",
                                   [{"simulate": {"kind": "cairo", "size": 1280, "seed": seed}}])
    info = next(iter(summary["images"].values()))
    top = max(grammar.rings, key=lambda r: r.count)
    n_interior = info["n_rings"] - info["n_border_rings"]
    return {"rules": grammar.n_rules, "top_ring_share": top.count / n_interior,
            "one_domain_of_it": float([d.symbol for d in grammar.domains] == [top.name]),
            "coverage_1": info["coverage"]["1"], "coverage_2": info["coverage"]["2"],
            "coverage_2_of_1": info["coverage"]["2"] / info["coverage"]["1"],
            "pentagon_share": info["ring_histogram"].get("5", 0) / info["n_rings"],
            "interior_pentagon_share": sum(r.count for r in grammar.rings if r.size == 5) / n_interior}


def test_cairo_tiling_is_a_handful_of_rules_covering_its_interior(tmp_path):
    m = measure_cairo(seed(0), tmp_path)
    # a handful of rules: the pentagon word and its domain, plus a few for the odd mis-tokenised atom. Seeds 0-7,
    # 1000 and 1002 (seed 1001: the xfail below): 4-7 rules; the commonest ring rule 99.84-99.95 % of the interior
    # rings, one domain of it; every interior ring a pentagon (99.97-100 % of all rings).
    assert m["rules"] <= 8
    assert m["top_ring_share"] >= 0.99 and m["one_domain_of_it"]
    assert m["interior_pentagon_share"] >= 0.99
    # Level-2 coverage: 0.9999-1 of the atoms of interior rings. Of all atoms 0.959-0.962: since 01c13e3 the atoms
    # only in border-flagged rings (about 4 % of a 1280 px tiling) stay out of the tree, so the 0.95 this test asked
    # of all atoms (0.992-0.996 before) is within 1 % of what the geometry allows; the bound on all atoms is 0.94.
    assert m["coverage_2_of_1"] >= 0.99
    assert m["coverage_2"] >= 0.94


def test_cairo_tiling_bonds_into_pentagons_on_seed_1001():
    """The seed that failed before the joint refinement, pinned (not shifted by the seed offset).

    With the independent fit, five stray edges in the first gap of the edge-ratio histogram (1.13-1.35) made the
    second (1.53-1.61) emptier, the automatic cut became 1.57 and every ring a triangle (pentagon share 0.0); the
    joint fit's positions (engine/refine.py) close the first gap: pentagon share 1.0 (seed 1000: 0.9998 -> 0.9999,
    seed 0: 1.0 both)."""
    sim = simulate("cairo", size=1280, seed=1001)
    graph = build_graph(detect_atoms(sim.image).xy, image_shape=sim.image.shape)
    assert np.mean(graph.ring_sizes == 5) > 0.99  # seeds 0-9, 1000, 1003-1009: the cut 1.15-1.29


# ---- disorder series -------------------------------------------------------------------------------------------------

SERIES = [("g0", "graphene", 0.0), ("g05", "graphene", 0.005), ("g2", "graphene", 0.02), ("g5", "graphene", 0.05),
          ("crn", "crn", None)]


def measure_disorder_series(seed, folder=None):
    """Graphene at 0, 0.5, 2 and 5 % defects and a random network, two micrographs each (seeds from ``seed``), in
    one run with one token: whether the disorder ranks them in order, the share of micrographs whose nearest is their
    twin, and whether the pristine twins share every rule."""
    inputs = []
    for name, kind, density in SERIES:
        for twin in (1, 2):
            options = {} if density is None else {"stone_wales_density": density / 2, "vacancy_density": density / 2}
            inputs.append({"simulate": {"kind": kind, "size": 384, "seed": seed + 10 * twin + len(inputs), **options},
                           "group": f"{name}-{twin}", "id": f"{name}-{twin}"})
    _, _, summary = run_spec(_folder(folder, "series"), "series", inputs, tokens={"k": 1})
    disorder = [np.mean([summary["images"][f"{name}-{twin}"]["disorder"] for twin in (1, 2)])
                for name, _, _ in SERIES]
    comparison = summary["comparison"]
    names = comparison["items"]
    distance = np.array(comparison["distance"])
    np.fill_diagonal(distance, np.inf)
    twin_of = {n: f"{n.rsplit('-', 1)[0]}-{3 - int(n.rsplit('-', 1)[1])}" for n in names}
    differences = {(d["a"], d["b"]): d for d in comparison["differences"]}
    pristine = differences[("g0-1", "g0-2")]
    return {"ranked": float(spearmanr(disorder, range(len(SERIES))).statistic > 0.999),
            **{f"disorder_{name}": value for (name, _, _), value in zip(SERIES, disorder, strict=True)},
            "twins_nearest": float(np.mean([names[int(np.argmin(distance[i]))] == twin_of[n]
                                            for i, n in enumerate(names)])),
            "pristine_twins_share_rules": float(pristine["only_in_a"] == pristine["only_in_b"] == [])}


def test_disorder_series_is_ranked_and_twins_are_nearest(tmp_path):
    """Graphene at 0, 0.5, 2 and 5 % defects and a random network, two micrographs each."""
    m = measure_disorder_series(seed(0), tmp_path)
    # seed sets 0-7 and 1000-1002 with the image-wide lattice order: in order on every one (g5 0.368-0.396, network
    # 0.380-0.417, 0.004-0.04 apart), every micrograph's nearest its twin; with the per-grain lattice order (seeds 0,
    # 1, 1000, 1001) g5 0.623-0.638 against the network 0.908-0.917 (benchmarks/README.md, "Comparing grammars")
    assert m["ranked"]
    assert m["twins_nearest"] == 1.0
    # the closest pairs name the rules one uses and the other does not: the pristine twins share everything
    assert m["pristine_twins_share_rules"]


# ---- MoS2 with Se ----------------------------------------------------------------------------------------------------

def measure_selenium_series(seed, folder=None):
    """MoS2 with 0, 5 and 15 % of S replaced by Se, two micrographs each, in one run of three groups: whether the
    comparison ranks the groups in order, and each group's disorder."""
    inputs = [{"simulate": {"kind": "mos2", "size": 384, "seed": seed + k, "se_fraction": fraction,
                            "s_vacancy_density": 0.0}, "group": f"se{round(100 * fraction):02d}"}
              for k, fraction in enumerate((0.0, 0.0, 0.05, 0.05, 0.15, 0.15), start=1)]
    # the thresholds below were swept with Zernike tokens, the default before issue 19; with chemistry tokens (seed
    # set 0) the disorder is 0.200 / 0.290 / 0.366 at 0 / 5 / 15 %: in order, but 0 % only 0.09 below 5 %
    _, _, summary = run_spec(_folder(folder, "selenium"), "selenium", inputs, features={"descriptor": "zernike"})
    disorder = summary["comparison"]["disorder"]
    return {"ranked": float(summary["comparison"]["ranking"] == ["se00", "se05", "se15"]),
            **{f"disorder_{g}": disorder[g] for g in ("se00", "se05", "se15")}}


def test_mos2_with_selenium_is_more_disordered_than_pure_mos2(tmp_path):
    """MoS2 with 0, 5 and 15 % of S replaced by Se, two micrographs each, in one run of three groups."""
    m = measure_selenium_series(seed(0), tmp_path)
    # Seed sets 0-7 and 1000-1002 with the image-wide lattice order: pure MoS2 is the least disordered, far below
    # both Se groups (0 %: 0.010-0.297; 5 %: 0.388-0.509; 15 %: 0.417-0.556; the gap to 5 % at least 0.21); with the
    # per-grain lattice order (seeds 0, 1000) 0 % 0.052-0.065, 5 % 0.307-0.318, 15 % 0.331-0.334. Image-wide, 5 %
    # ranked below 15 % on 9 of 11 sets only:
    # on sets 5 and 6 the two are equal to 5e-4 (0.4221 and 0.4216, 0.4177 and 0.4173), so "ranked 0 < 5 < 15 %",
    # which this test asserted on one set, is no claim for any seed; 15 % is never below 5 % by more than 5e-4.
    assert m["disorder_se00"] < min(m["disorder_se05"], m["disorder_se15"]) - 0.1
    assert m["disorder_se15"] > m["disorder_se05"] - 0.01
