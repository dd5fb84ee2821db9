"""The grammar names defects with their true counts: simulations with exact defect counts, each kind alone and
mixed, graphene and MoS2, two independently seeded images of each (grammar.truth finds the rule that holds
each defect's rings exactly; its count is compared with the number of defects complete in the image).

Thresholds come from the claim (issue 19): the defect rule present and its count within 10 % of the truth,
at most 12 rules for graphene (the claim for two defect kinds; with all four kinds the textbook grammar is 10
rules: five ring sizes, four defects, one domain). Measured over seeds 1-8 at these settings (512², truth
graphs): every count exact (relative error 0) with the true tokens and with the spurious token; rules 4-7 for
one or two kinds and 10 for four with the true tokens, 5-9 and 10-12 with the spurious token. Counts stay
exact while defects are isolated; at 0.006 per atom of each of the four kinds (dense placement, defects
touching) touching defects form compound motifs and the counts of single defects fall to 50-80 %
(benchmarks/README.md).
"""

import csv
import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import seeds
from test_low_dose import REALISTIC
from motifgram.engine import rundir
from motifgram.engine.graph import AtomGraph
from motifgram.engine.mixture import adjusted_rand_index
from motifgram.engine.pipeline import run
from motifgram.engine.simulate import Defect, simulate
from motifgram.engine.spec import load_spec
from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.parse import ParseNode, parse_graph
from motifgram.grammar.truth import defect_rules, match_rings

SIZE = 512
CASES = {
    "stone_wales": ("graphene", {"stone_wales_density": 0.005, "vacancy_density": 0.0}),
    "vacancy": ("graphene", {"stone_wales_density": 0.0, "vacancy_density": 0.005}),
    "divacancy": ("graphene", {"stone_wales_density": 0.0, "vacancy_density": 0.0, "divacancy_density": 0.005}),
    "dislocation": ("graphene", {"stone_wales_density": 0.0, "vacancy_density": 0.0, "dislocation_density": 0.005}),
    "sw+divacancy": ("graphene", {"stone_wales_density": 0.004, "vacancy_density": 0.0, "divacancy_density": 0.004}),
    "graphene_mixed": ("graphene", {"stone_wales_density": 0.003, "vacancy_density": 0.003,
                                    "divacancy_density": 0.003, "dislocation_density": 0.003}),
    "se_cluster": ("mos2", {"se_fraction": 0.0, "s_vacancy_density": 0.0, "se_cluster_density": 0.004}),
    "s_vacancy_line": ("mos2", {"se_fraction": 0.0, "s_vacancy_density": 0.0, "s_vacancy_line_density": 0.004}),
    "mos2_mixed": ("mos2", {"se_fraction": 0.0, "s_vacancy_density": 0.0, "se_cluster_density": 0.003,
                            "s_vacancy_line_density": 0.003}),
}
KINDS = {"graphene": {"C"}, "mos2": {"Mo", "S2", "Se2", "S1"}}


def truth_graph(case, seed, *, spurious=False):
    """The simulation's exact graph with its site classes as tokens; ``spurious``: half the atoms within 1.5 bond
    lengths of a defect's atoms get a second token "B" (a token model that sees the distortion, not the
    chemistry, as in issue 19)."""
    kind, options = CASES[case]
    truth = simulate(kind, size=SIZE, seed=seed, **options).truth
    tokens = truth.label.astype("<U3")
    if spurious:
        rng = np.random.default_rng(seed)
        at_defects = sorted({a for d in truth.defects for a in d.atoms})
        near = np.unique(np.concatenate(cKDTree(truth.xy).query_ball_point(truth.xy[at_defects], 1.5 * 8.0)))
        tokens[near[rng.random(len(near)) < 0.5]] = "B"
    return AtomGraph(truth.xy, tokens, truth.bonds, truth.rings, (SIZE, SIZE)), truth


def check(case, seed, *, spurious=False):
    graph, truth = truth_graph(case, seed, spurious=spurious)
    result = induce_grammar([graph])
    grammar = result.grammar
    rules = defect_rules(parse_graph(grammar, graph).root, truth.rings, truth.defects)
    kinds = {d.kind for d in truth.defects}
    assert set(rules) == kinds
    for kind, rule in rules.items():
        assert rule.truth >= 5, kind
        assert rule.symbol is not None, f"{case}: no rule holds a {kind} defect"
        assert abs(rule.count - rule.truth) <= 0.1 * rule.truth, (kind, rule)
    tokens = {t.name for t in grammar.tokens}
    assert tokens == set(np.unique(graph.tokens).tolist())
    return grammar, rules


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_defect_is_one_rule_with_its_true_count(case, seed):
    grammar, rules = check(case, seed)
    if CASES[case][0] == "graphene":
        assert {t.name for t in grammar.tokens} == {"C"}
        assert grammar.n_rules <= 12
        assert [d.symbol for d in grammar.domains] == ["R6"]
    else:
        assert {t.name for t in grammar.tokens} <= KINDS["mos2"]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("case", ["stone_wales", "vacancy", "sw+divacancy"])
def test_a_spurious_token_next_to_defects_does_not_split_them(case, seed):
    grammar, rules = check(case, seed, spurious=True)
    assert {t.name for t in grammar.tokens} == {"B", "C"}
    # the defect rings fall back to their size's wildcard: R5, R7, ... not R5a-R5f
    for size in {5, 7, 8, 9} & {r.size for r in grammar.rings}:
        assert [r.name for r in grammar.rings if r.size == size] == [f"R{size}"]
        assert grammar.symbols[f"R{size}"].is_wildcard
    assert grammar.n_rules <= 12


def through_the_pipeline(case, seed, tmp_path, imaging=()):
    """The rendered micrograph (more ``imaging`` options of the simulator) through the whole pipeline as a user runs
    it (the default descriptor, ``chemistry`` for atom columns, and the token count of the shortest description): the
    defect rules (rings matched to the truth's by their atoms, at the columns' imaged positions), the token count and
    the tokens' ARI against the true column classes (the detections within half a bond of a true column, at least a
    bond from the image edge)."""
    kind, options = CASES[case]
    sim = simulate(kind, size=SIZE, seed=seed, **options, **dict(imaging))
    truth_xy = sim.imaging.xy  # after the drift of the realistic imaging model
    np.save(tmp_path / "image.npy", sim.image)
    spec = load_spec({"name": "d", "inputs": [{"path": "image.npy", "id": "img"}], "seed": seed,
                      "output": {"report": False, "overlays": False}},
                     base_dir=tmp_path)
    out = run(spec, out_dir=tmp_path / "run", quiet=True)
    graph = rundir.read_run_graphs(out)["img"]
    tree = cKDTree(truth_xy)
    nn = float(np.median(tree.query(truth_xy, k=2)[0][:, 1]))
    matched = match_rings(graph.xy, graph.rings, truth_xy, sim.truth.rings, tolerance_px=0.3 * nn)
    defects = [Defect(d.kind, d.atoms, tuple(matched[r] for r in d.rings)) for d in sim.truth.defects]
    root = ParseNode.from_dict(json.loads((out / "parses" / "img.json").read_text()))
    with open(out / "atoms.csv", newline="") as f:
        atoms = list(csv.DictReader(f))
    xy = np.array([[float(a["x"]), float(a["y"])] for a in atoms])
    dist, nearest = tree.query(xy)
    # a column cut by the image edge is not measured (engine/chemistry.py: a typical column's features)
    found = (dist < 0.5 * nn) & (np.minimum(xy, SIZE - 1 - xy).min(axis=1) >= nn)
    truth = np.unique(sim.truth.label[nearest[found]], return_inverse=True)[1]
    tokens = np.unique(np.array([a["token"] for a in atoms])[found], return_inverse=True)[1]
    return defect_rules(root, graph.rings, defects), int(tokens.max()) + 1, adjusted_rand_index(truth, tokens)


@pytest.mark.parametrize("seed", seeds(1, 2))
@pytest.mark.parametrize("case", ["se_cluster", "s_vacancy_line"])
def test_mos2_defects_through_the_pipeline_are_named_with_their_counts(case, seed, tmp_path):
    # detection, chemistry tokens (count by description length), graph, grammar, at 0.004 defects per atom: the
    # defect is one rule with its exact count on seeds 1-2 (Se clusters 26/26, S-vacancy lines 19/19; at 0.002: 12/12
    # and 10/10), tokens Mo, S2 and Se2 or S1 (4 on one of the four runs), ARI 0.991-0.999 against the true classes
    # (benchmarks/grammar_quality.py --cases MoS2 --modes pipeline --descriptor chemistry --auto-k)
    rules, n_tokens, ari = through_the_pipeline(case, seed, tmp_path)
    assert n_tokens in (3, 4)
    assert ari >= 0.95
    (kind, rule), = rules.items()
    assert rule.truth >= 5 and rule.symbol is not None
    assert abs(rule.count - rule.truth) <= 0.1 * rule.truth, rule


@pytest.mark.parametrize("seed", seeds(1, 2))
def test_graphene_defects_under_realistic_imaging_keep_their_counts(seed, tmp_path):
    # Stone-Wales defects and divacancies rendered with the realistic imaging model (tests/test_low_dose.py's
    # REALISTIC: probe tail, drift, scan noise, background, amorphous contamination) at 40 counts, through detection,
    # chemistry tokens, graph and grammar: each kind one rule, its count within 10 % of the truth. Measured on seeds
    # 1, 2, 1001, 1002: divacancies 13/13, 12/12, 13/13, 13/13, Stone-Wales 11/12, 12/12, 12/12, 12/11 (2-4 tokens:
    # the contamination's detected carbon network is dim). Matched at the imaged positions: the drift moves columns by
    # up to 1.5 px, beyond the rings' tolerance, and unmatched defects would drop out of the truth
    rules, _, _ = through_the_pipeline("sw+divacancy", seed, tmp_path, tuple({**REALISTIC, "dose": 40.0}.items()))
    for kind in ("stone_wales", "divacancy"):
        rule = rules[kind]
        assert rule.truth >= 5 and rule.symbol is not None
        assert abs(rule.count - rule.truth) <= 0.1 * rule.truth, rule
