"""Tests of motifgram.grammar.compare on run directories written by the real pipeline (seeded simulations).

The graphene series: Stone-Wales and vacancy densities of 0, 0.1, 0.4 and 2 % per atom each (two 384 px
micrographs per run; about 2, 6, 25 and 115 defects per micrograph), then a continuous random network, so the
true order of disorder is strict. ``measure_compare`` (benchmarks/seed_sweeps.py) runs every claim's measure
over seed sets 0-7; the ranges beside the thresholds come from there.
"""

import csv
import dataclasses
import itertools
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from motifgram.engine.pipeline import run
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import load_spec
from motifgram.engine.tokens import TokenModel
from motifgram.engine.errors import MotifgramError
from motifgram.engine.featurestore import read_features
from motifgram.engine.graph import AtomGraph
from motifgram.engine.rundir import read_run_graphs
from motifgram.grammar.align import align_tokens, rename_tokens
from motifgram.grammar.classify import UNKNOWN
from motifgram.grammar.compare import WEIGHTS, compare, compare_pair
from motifgram.grammar.items import (
    Comparable,
    level_distances,
    level_stats,
    load_comparable,
    neighbour_pairs,
    warren_cowley,
)
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import RingRule
from motifgram.grammar.table import format_table
from motifgram.grammar.usage import grammar_disorder_estimate, jensen_shannon, rule_keys, usage_divergence
from conftest import DATA, built_once, needs_data, seed, seeds

# Stone–Wales and vacancy densities per atom, each. 95cb091 made the random network more regular (56 % hexagons)
# and replaced 2 % by 0.7 % here, saying in a comment only that beyond ~1 % graphene has as many non-hexagons as
# the network. By disorder 2 % still ranks below the network on every seed set 0-7 (0.334-0.349 against
# 0.365-0.457), so the series is back to its first densities; what 2 % does change is the distance claim
# (test_series_distances).
SERIES = {"g0": 0.0, "g1": 0.001, "g4": 0.004, "g20": 0.02}


def _graphene(density, seed, size=384):
    return {"simulate": {"kind": "graphene", "size": size, "seed": seed, "stone_wales_density": density,
                         "vacancy_density": density}}


def _pair(kind, seed):
    return [{"simulate": {"kind": kind, "size": 256, "seed": seed + s}} for s in range(2)]


ZERNIKE = {"descriptor": "zernike"}


def build_runs(root, base):
    """The runs the tests compare, their micrographs seeded from ``base``: the graphene series and the network,
    a twin of g4 (the same density, other micrographs), g4 with two tokens, two MoS2 runs and a perovskite one."""
    specs = {name: ([_graphene(d, base + 10 * i + 1), _graphene(d, base + 10 * i + 2)], {"k": 1})
             for i, (name, d) in enumerate(SERIES.items())}
    specs["crn"] = (_pair("crn", base + 50), {"k": 1})
    specs["g4twin"] = ([_graphene(0.004, base + 41), _graphene(0.004, base + 42)], {"k": 1})
    specs["g4k2"] = ([_graphene(0.004, base + 61, 256), _graphene(0.004, base + 62, 256)], {"k": 2})
    specs["mos2a"] = (_pair("mos2", base + 70), {})
    specs["mos2b"] = (_pair("mos2", base + 80), {})
    specs["perovskite"] = (_pair("perovskite", base + 90), {})
    out = {}
    for name, (inputs, tokens) in specs.items():
        # Zernike tokens, with which these claims were swept (the default for atoms before issue 19): with chemistry
        # graphene's two tokens of g4k2 split the one kind by intensity noise and align with none of g4's
        spec = load_spec({"name": name, "inputs": inputs, "tokens": tokens, "seed": base, "features": ZERNIKE,
                          "output": {"overlays": False, "report": False}})
        out[name] = run(spec, out_dir=Path(root) / name, quiet=True)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return built_once(tmp_path_factory, f"compare-{seed(0)}", lambda root: build_runs(root, seed(0)))


@pytest.fixture(scope="module")
def items(runs):
    """The runs loaded once (reading a run's CSV files is a good part of a small comparison)."""
    return {name: load_comparable(path) for name, path in runs.items()}


@pytest.fixture(scope="module")
def series(items):
    # runs of one token each: their own vocabularies are one already, and the disorder is each run's own
    return compare([items[name] for name in (*SERIES, "crn")], tokens="own")


@pytest.fixture(scope="module")
def joint(items):
    """g4, MoS2 and g4 with two tokens on one joint vocabulary (two tests ask it)."""
    return compare([items["g4"], items["mos2a"], items["g4k2"]])


#: The references of the classification tests: their runs and the classified ones are the same five, so the
#: joint token fit is made once (grammar/align.py keeps it).
def _references(items):
    return {"graphene": items["g0"], "perovskite": items["perovskite"], "mos2": items["mos2b"]}


def measure_compare(seed):
    """Every measure the comparison claims rest on, for the runs of seed set ``100 * seed``."""
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        runs = build_runs(root, 100 * seed)
        result = compare([runs[name] for name in (*SERIES, "crn")])
        d = result.distance
        twin = compare_pair(load_comparable(runs["g4"]), load_comparable(runs["g4twin"]))
        classified = compare([runs["mos2a"], runs["g4"]], references={
            "graphene": runs["g0"], "perovskite": runs["perovskite"], "mos2": runs["mos2b"]}).classification
        unrelated = compare_pair(load_comparable(runs["g0"]), load_comparable(runs["perovskite"]))
        return {
            "ranked": float(list(result.ranking) == [*SERIES, "crn"]),
            **{f"disorder_{item.name}": item.disorder for item in result.items},
            "pristine_distances_increase": float(np.all(np.diff(d[0]) > 0)),
            **{f"d_g0_{name}": d[0, k] for k, name in enumerate([*SERIES, "crn"]) if k},
            "crn_farthest_from_g0": float(np.argmax(d[0]) == 4),
            "g1_nearest_neighbour_in_series": float(np.argsort(d[1])[1] in (0, 2)),
            "twin_distance": twin.distance, "twin_over_g1": twin.distance / d[1, 2],
            "mos2_label": float(classified["mos2a"].label == "mos2"),
            "mos2_margin": classified["mos2a"].margin,
            "graphene_label": float(classified["g4"].label == "graphene"),
            "unrelated_distance": unrelated.distance,
        }


def test_series_ranked_in_true_order(series):
    names = [*SERIES, "crn"]
    # seed sets 0-7: disorder g0 0, g1 0.067-0.068, g4 0.153-0.154, g20 0.334-0.349, crn 0.365-0.457
    assert list(series.ranking) == names
    disorder = [item.disorder for item in series.items]
    assert spearmanr(disorder, np.arange(len(names))).statistic == pytest.approx(1.0)
    assert all(item.disorder_source == "images" for item in series.items)


def test_read_run_graphs_returns_the_written_atoms_bonds_and_rings(runs, items):
    """The graphs read back are the run's CSV files (read here with the csv module): positions, tokens, bonds, rings."""
    graphs = read_run_graphs(runs["g4"])
    assert list(graphs) == list(items["g4"].images)

    def rows(name):
        with open(runs["g4"] / name, newline="") as fh:
            return list(csv.DictReader(fh))

    atoms, bonds, rings = rows("atoms.csv"), rows("bonds.csv"), rows("rings.csv")
    for image_id, graph in graphs.items():
        mine = [a for a in atoms if a["image"] == image_id]
        np.testing.assert_allclose(graph.xy, [[float(a["x"]), float(a["y"])] for a in mine], atol=1e-3)
        assert graph.tokens.tolist() == [a["token"] for a in mine]
        assert {tuple(sorted(map(int, b))) for b in graph.bonds.tolist()} == {
            tuple(sorted((int(b["i"]), int(b["j"])))) for b in bonds if b["image"] == image_id}
        assert [list(r) for r in graph.rings] == [list(map(int, r["atoms"].split())) for r in rings
                                                   if r["image"] == image_id]


def test_twin_runs_of_one_material_are_near(items, series):
    """g4 and a twin run of the same density on other micrographs: identical vocabulary, a distance well below the
    one between neighbours in the series (g1 and g4). Per-level distances (issue 20), seed set 0: 1.1e-8 against
    0.0043 (the old usage/cross-DL distance, seed sets 0-7: 3e-8-1.1e-6, at most 1.6e-4 of it)."""
    pair = compare_pair(items["g4"], items["g4twin"])
    assert pair.alignment.is_identity
    assert pair.distance < 0.5 * series.distance[1, 2]


def test_different_vocabularies_are_aligned(items, joint):
    k1, k2 = items["g4"], items["g4k2"]
    assert len(k1.grammar.tokens) == 1 and len(k2.grammar.tokens) == 2
    alignment = align_tokens(k1.token_model, k2.token_model)
    assert len(alignment.mapping) == 1 and len(alignment.unmatched_b) == 1
    assert alignment.inverse().mapping == {b: a for a, b in alignment.mapping.items()}
    result = compare([k1, k2], tokens="own", levels=["grammar"])
    assert result.vocabulary.method == "own"
    pair = result.pairs[(0, 1)]
    assert pair.alignment.mapping == alignment.mapping
    assert pair.cross_dl_a_on_b is not None and pair.cross_dl_b_on_a is not None
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["pairs"][0]["tokens"]["matched"] == alignment.mapping
    assert doc["pairs"][0]["tokens"]["unmatched_b"] == list(alignment.unmatched_b)
    assert 0 < result.distance[0, 1] <= 1
    # one vocabulary: a joint token model over the runs' stored features (g4, MoS2, g4k2); every grammar speaks it
    assert joint.vocabulary.method == "joint" and joint.pairs[(0, 2)].alignment.is_identity
    names = set(joint.vocabulary.model.names)
    assert all({t.name for t in item.grammar.tokens} <= names for item in joint.items)
    assert set(joint.vocabulary.match) == {"g4", "mos2a", "g4k2"}
    assert all(0 < m["agreement"] <= 1 and 0 < m["mean_confidence"] <= 1 for m in joint.vocabulary.match.values())
    doc = json.loads(json.dumps(joint.to_json()))
    assert doc["tokens"]["method"] == "joint" and set(doc["levels"]) == {*WEIGHTS}


def test_unrelated_vocabularies_do_not_align(runs, items):
    graphene = TokenModel.load(runs["g0"] / "tokens.npz")
    perovskite = TokenModel.load(runs["perovskite"] / "tokens.npz")
    alignment = align_tokens(graphene, perovskite)
    assert alignment.mapping == {}
    pair = compare_pair(items["g0"], items["perovskite"], levels=["grammar"])
    assert pair.cross_dl_a_on_b is None and "cannot be aligned" in pair.cross_dl_note
    assert pair.distance >= 0.5  # seed sets 0-7: 1.0


def test_models_of_different_descriptors_do_not_align(runs):
    # the same run's model, its features relabelled as another descriptor: a different feature space
    graphene = TokenModel.load(runs["g0"] / "tokens.npz")
    assert align_tokens(graphene, dataclasses.replace(graphene)).mapping == {"A": "A"}
    other = dataclasses.replace(graphene, descriptor="intensity")
    assert align_tokens(graphene, other).mapping == {}


def test_mos2_is_classified_as_mos2(items):
    result = compare([items["mos2a"], items["g4"]], references=_references(items))
    assert result.classification["mos2a"].label == "mos2"
    # The label is right on every seed set 0-7; the margin is 0.051-0.722 (0.357 on set 0): the two MoS2 runs may
    # learn different vocabularies (2 or 3 tokens). 95cb091 lowered the bound from 0.1 to 0.05 saying so in a
    # comment; 0.1 fails on seed set 4 (0.051) and 0.05 sits 2 % below it, so the bound is 0.025. Per-level
    # distances on the joint vocabulary (issue 20), seed set 0: margin 0.24.
    assert result.classification["mos2a"].margin > 0.025
    assert result.classification["g4"].label == "graphene"
    table = format_table(result)
    assert "mos2a: mos2 (margin" in table and "ranking" in table


def test_json_follows_the_interface(items, series):
    # references as a list: labelled by their names
    refs = [items["mos2b"], items["perovskite"], items["g4"]]
    doc = json.loads(json.dumps(compare([items["g0"], items["mos2a"]], references=refs).to_json()))
    assert {"items", "distance", "ranking", "metric", "classification"} <= set(doc)
    assert [set(item) >= {"name", "path", "group", "disorder"} for item in doc["items"]] == [True, True]
    assert [item["name"] for item in doc["items"]] == ["g0", "mos2a"]
    assert doc["items"][1]["group"] == "mos2"
    assert len(doc["distance"]) == 2 and all(len(row) == 2 for row in doc["distance"])
    assert sorted(doc["ranking"]) == ["g0", "mos2a"] and isinstance(doc["metric"], str)
    assert doc["classification"]["mos2a"]["label"] == "mos2b"
    assert set(doc["classification"]["g0"]) >= {"label", "margin"}
    plain = json.loads(json.dumps(series.to_json()))
    assert "classification" not in plain
    assert sorted(plain["clustering"]["order"]) == sorted(series.names)
    assert np.asarray(plain["clustering"]["linkage"]).shape == (4, 4)
    summary = series.to_summary()
    assert set(summary) == {"items", "distance", "ranking", "disorder"}


def test_grammar_level_only_when_weighted_or_asked(items):
    """The grammar level (weight 0) costs the cross parses: it is computed only with ``levels=["grammar"]``; else
    it and the cross description lengths are null, ``levels_computed`` says so and the combined distance is the
    same."""
    items = [items["g4"], items["g4k2"]]
    plain, full = compare(items, tokens="own"), compare(items, tokens="own", levels=["grammar"])
    assert plain.levels_computed == tuple(k for k, w in WEIGHTS.items() if w > 0)
    assert full.levels_computed == tuple(WEIGHTS)
    np.testing.assert_allclose(plain.distance, full.distance)
    doc = json.loads(json.dumps(plain.to_json()))
    assert doc["levels"]["grammar"] is None and doc["levels_computed"] == list(plain.levels_computed)
    assert doc["pairs"][0]["levels"]["grammar"] is None
    assert doc["pairs"][0]["cross_dl_bits_per_atom"] == {"a_on_b": None, "b_on_a": None}
    assert "grammar: not computed" in format_table(plain)
    assert full.pairs[(0, 1)].levels["grammar"] is not None and "grammar: not computed" not in format_table(full)
    with pytest.raises(MotifgramError, match="unknown level"):
        compare(items, tokens="own", levels=["grammr"])


def test_bare_grammar_file(runs, items, tmp_path):
    path = tmp_path / "graphene_g4.txt"
    shutil.copy(runs["g4"] / "grammar.txt", path)
    bare = load_comparable(path)
    assert bare.name == "graphene_g4" and not bare.graphs and bare.token_model is None
    assert bare.disorder_source == "grammar estimate"
    assert bare.disorder == pytest.approx(grammar_disorder_estimate(bare.grammar))
    assert 0 < bare.disorder < items["crn"].disorder
    result = compare([items["g4"], path], levels=["grammar"])
    pair = result.pairs[(0, 1)]
    assert pair.cross_dl_a_on_b is None and "bare grammar" in pair.cross_dl_note
    assert pair.cross_dl_b_on_a == pytest.approx(0.0, abs=1e-4)  # the same grammar, on g4's micrographs
    assert pair.jsd_mean < 1e-9  # the rule counts are the usage in the training parses
    assert "estimated from the grammar alone" in format_table(result)


def test_rename_tokens_recanonicalises_rings():
    g = Grammar.parse_text(
        'grammar "t" version 1\ntokens {\n  A 0.5\n  B 0.5\n}\nrings {\n  R6 = ring(A A B A A B) 3\n'
        "  R5_any = ring5(*) 1\n}\n"
    )
    renamed = rename_tokens(g, {"A": "Z"})
    assert [t.name for t in renamed.tokens] == ["Z", "X_B"]
    ring = next(r for r in renamed.rings if r.name == "R6")
    assert ring == RingRule("R6", ("Z", "X_B", "Z", "Z", "X_B", "Z"), 3)
    assert rule_keys(renamed)["R5_any"] == "ring5(*)"
    extra = rename_tokens(g, {"A": "B", "B": "A"}, extra_tokens=["C"])
    assert {t.name: t.abundance for t in extra.tokens} == {"B": 0.5, "A": 0.5, "C": 0.0}
    assert rule_keys(extra)["R6"] == "ring(A B B A B B)"


def test_equal_rules_with_different_names_match(items):
    item = items["g20"]
    g = item.grammar
    shuffled = Grammar(g.name, g.version, g.tokens, tuple(reversed(g.rings)), g.motifs, g.domains)
    other = Comparable("other", shuffled.canonical())
    pair = compare_pair(Comparable("same", g), other)
    assert pair.jsd_mean == pytest.approx(0.0, abs=1e-12)
    assert pair.only_in_a == pair.only_in_b == ()


def test_usage_divergence_against_hand_computed_values():
    """Per tier, the Jensen-Shannon divergence (bits) of rule usage, compared by rule keys, not names."""
    keys_a = {"A": "A", "B": "B", "R6": "ring(A A A A A A)", "R5": "ring(A A A A B)", "M1": "{R5, R5; 0-1}"}
    keys_b = {"X": "A", "Y": "B", "R6b": "ring(A A A A A A)", "R7": "ring7(*)"}
    usage_a = {0: {"A": 3, "B": 1}, 1: {"R6": 1, "R5": 1}, 2: {"M1": 4}}
    usage_b = {0: {"X": 1, "Y": 3}, 1: {"R6b": 1}}
    jsd = usage_divergence(usage_a, keys_a, usage_b, keys_b)
    # tokens: P = (3/4, 1/4), Q = (1/4, 3/4), M = (1/2, 1/2): JSD = 1 - H(1/4) = 1 - 0.811278 = 0.188722
    assert jsd["tokens"] == pytest.approx(1 - (-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))), abs=1e-9)
    # rings: P = (1/2, 1/2) over (R6, R5), Q = (1, 0), M = (3/4, 1/4):
    # JSD = 1/2 [1/2 log2(2/3) + 1/2 log2 2] + 1/2 log2(4/3) = 0.311278
    want = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75)
    assert jsd["rings"] == pytest.approx(want, abs=1e-9) and want == pytest.approx(0.311278, abs=1e-6)
    assert jsd["motifs"] == 1.0  # a tier only one side uses


def _chain_graph(tokens):
    """Atoms on a ring, bonded to their two neighbours, with the given tokens."""
    n = len(tokens)
    bonds = sorted((min(k, (k + 1) % n), max(k, (k + 1) % n)) for k in range(n))
    return AtomGraph(np.zeros((n, 2)), np.array(list(tokens)), bonds, (), (1, 1))


def test_warren_cowley_against_hand_computed_values():
    """Ordered (ABAB...) and segregated (AAA...BBB...) rings of 12 at one composition: alpha over bonds is -1 and
    close to +1 for unlike pairs; the arrangement level tells them apart, the composition level does not."""
    ordered, segregated = _chain_graph("AB" * 6), _chain_graph("A" * 6 + "B" * 6)
    alpha, shares = warren_cowley(neighbour_pairs([ordered]))
    assert alpha[1][("A", "B")] == pytest.approx(-1.0) and alpha[1][("A", "A")] == pytest.approx(1.0)
    assert shares[1] == {"A": 0.5, "B": 0.5}
    # segregated: 24 bond directions, 2 unlike bonds (4 directions): P(B | A) = 2/12, c_B = 1/2, alpha = 2/3
    alpha, _ = warren_cowley(neighbour_pairs([segregated]))
    assert alpha[1][("A", "B")] == pytest.approx(1 - (2 / 12) / 0.5)
    a, b = level_stats({"o": ordered}, {}), level_stats({"s": segregated}, {})
    levels = level_distances(a, b)
    assert levels["composition"] == pytest.approx(0.0) and levels["arrangement"] > 0.3
    assert levels["mesoscale"] is None


_counts = st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 50), min_size=1)


@settings(max_examples=60, deadline=None)
@given(_counts, _counts, st.integers(1, 5))
def test_jensen_shannon_properties(p, q, scale):
    d = jensen_shannon(p, q)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(jensen_shannon(q, p), abs=1e-12)
    assert jensen_shannon(p, {k: v * scale for k, v in p.items()}) == pytest.approx(0.0, abs=1e-12)
    if not set(p) & set(q):
        assert d == pytest.approx(1.0)
# --------------------------------------------------------------------------------------------------------------
# The scenarios: one run per micrograph, as users run them, two or more micrographs per group.

#: Graphene defect densities per atom (half Stone-Wales, half vacancies), then a random network ("crn").
DEFECTS = {"g0": 0.0, "g05": 0.005, "g2": 0.02, "g5": 0.05, "crn": None}
#: MoS2 with exactly 12 % of its chalcogen columns Se2 (47 at 256 px; no other Se, no S vacancies) in every
#: micrograph, the Se2 columns ordered on a superlattice of index 8, random, or in clusters of 3 (mild) or 6
#: (strong) columns: (superlattice index, cluster size; ``se2_superlattice``, ``se2_cluster_size`` of mos2).
SE2_FRACTION = 0.12
SELENIUM = {"ordered": (8, 1), "random": (1, 1), "mild": (1, 3), "strong": (1, 6)}
#: Twist of the bilayer's second layer (degrees).
TWISTS = {"t00": 0.0, "t02": 2.0, "t04": 4.0, "t08": 8.0, "t15": 15.0}
#: The defect and Se runs' own tokens: ``compare`` re-tokenises every atom from the runs' features.npz with its joint
#: model and re-induces every grammar, so a run's own tokens enter no distance or disorder (only the agreement it
#: reports); one fixed token spares each run its token fit (benchmarks/README.md, "Comparing grammars").
ONE_TOKEN = {"k": 1}


def _one_run(root, name, simulate, seed, **spec):
    path = Path(root) / name
    if not (path / "summary.json").is_file():
        run(load_spec({"name": name, "inputs": [{"simulate": simulate}], "seed": seed,
                       "output": {"overlays": False, "report": False}, **spec}), out_dir=path, quiet=True)
    return path


def scenario_inputs(kind, base, *, replicates=2, size=256):
    """The simulations of one scenario: ``(group, replicate, simulate options, spec sections)`` per micrograph."""
    for g, (group, value) in enumerate({"defects": DEFECTS, "selenium": SELENIUM, "twist": TWISTS}[kind].items()):
        for r in range(replicates):
            s = base + 10 * g + r + 1
            if kind == "defects":
                sim = ({"kind": "crn", "size": size, "seed": s} if value is None else
                       {"kind": "graphene", "size": size, "seed": s, "stone_wales_density": value / 2,
                        "vacancy_density": value / 2})
                # swept with Zernike tokens; with chemistry (one token) seed set 1 gives NN accuracy 0.75 over graphene.
                # patch_size auto: each micrograph's disc follows its period (period + 1 px, continuous), or for the
                # network, which has no Bragg spot, 1.5 bonds (engine/stages.py feature_period_px). With discs rounded
                # to an odd side the network's "period", its diffuse ring's spacing (10.3-11.6 px), gave its
                # micrographs discs of 11 or 13 px, and the joint token model split the two discs' atoms (NN accuracy
                # 0.8-0.9 on five of eight seed sets); with continuous discs of the diffuse ring (11.3-12.6 px) its
                # replicates still lay further apart than graphene's groups on two of eight (benchmarks/README.md,
                # "Issue 20: the disc of an amorphous structure")
                spec = {"features": ZERNIKE, "tokens": ONE_TOKEN}
            elif kind == "selenium":
                sim = {"kind": "mos2", "size": size, "seed": s, "se_fraction": 0.0, "s_vacancy_density": 0.0,
                       "se2_fraction": SE2_FRACTION, "se2_superlattice": value[0], "se2_cluster_size": value[1]}
                spec = {"features": {"descriptor": "chemistry"}, "tokens": ONE_TOKEN}  # Zernike sees shape, not Se
            else:
                # the moire is measured when the layers' Bragg spots lie >= 3 frequency bins apart, as at 2 degrees on
                # 768 px (benchmarks/README.md, "Comparing grammars"): the side scales with 1 / twist
                side = size if value == 0 else max(size, 128 * math.ceil(6 * size / value / 128))
                sim = {"kind": "tbl_mos2", "size": side, "seed": s, "twist": value}
                spec = {"detect": {"method": "grid"}, "tokens": {"k": 3}}
            yield group, r, sim, spec


def scenario(kind, root, base, **options):
    """Run directories of one scenario, one micrograph each: ``{group: [run, ...]}`` (seeds from ``base``;
    ``options``: those of :func:`scenario_inputs`)."""
    out = {}
    for group, r, sim, spec in scenario_inputs(kind, base, **options):
        out.setdefault(group, []).append(_one_run(root, f"{kind}-{group}-{r}", sim, base, **spec))
    return out


def nearest_neighbour_accuracy(result, groups):
    """Share of items whose nearest other item is from their own group (``groups``: item name -> group)."""
    d = result.distance + np.diag(np.full(len(result.items), np.inf))
    names = result.names
    return float(np.mean([groups[names[int(np.argmin(row))]] == groups[n] for n, row in zip(names, d, strict=True)]))


def replicate_gap(result, groups, level=None):
    """(largest distance between two items of one group, smallest between two of different groups)."""
    m = result.distance if level is None else np.array(result.level_matrix(level), dtype=float)
    names = result.names
    within = [m[i, j] for i, j in itertools.combinations(range(len(names)), 2) if groups[names[i]] == groups[names[j]]]
    between = [m[i, j] for i, j in itertools.combinations(range(len(names)), 2) if groups[names[i]] != groups[names[j]]]
    if np.all(np.isnan(within)) or np.all(np.isnan(between)):  # a level measured for no pair (mesoscale without moire)
        return math.nan, math.nan
    return float(np.nanmax(within)), float(np.nanmin(between))


def measure_scenario(kind, seed, root=None, **options):
    """The issue's measures of one scenario for seed set ``seed``: NN accuracy, the order, the replicate gap
    per level. Returns ``(measures, comparison)``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        runs = scenario(kind, root or tmp, 1000 * seed, **options)
        groups = {p.name: g for g, paths in runs.items() for p in paths}
        result = compare([p for paths in runs.values() for p in paths])
        order = list(runs)
        out = {"nn_accuracy": nearest_neighbour_accuracy(result, groups)}
        within, between = replicate_gap(result, groups)
        out.update(within_max=within, between_min=between)
        for level in WEIGHTS:
            w, b = replicate_gap(result, groups, level)
            out.update({f"{level}_within_max": w, f"{level}_between_min": b})
        if kind == "defects":  # the disorder index along the graphene series, and where the network falls
            disorder = {g: [i.disorder for i in result.items if groups[i.name] == g] for g in order}
            graphene = [g for g in order if g != "crn"]
            out["spearman_disorder_graphene"] = float(spearmanr([np.mean(disorder[g]) for g in graphene],
                                                                range(len(graphene))).statistic)
            out["disorder_groups_separate"] = float(all(max(disorder[a]) < min(disorder[b])
                                                        for a, b in itertools.pairwise(graphene)))
            out["spearman_disorder"] = float(spearmanr([np.mean(disorder[g]) for g in order],
                                                       range(len(order))).statistic)
            out["crn_disorder_min"] = min(i.disorder for i in result.items if groups[i.name] == "crn")
            out["g5_disorder_max"] = max(i.disorder for i in result.items if groups[i.name] == "g5")
        else:  # the distance to the last group's items falls as the parameter approaches it, from the first rises
            if kind == "selenium":  # the Se content of every micrograph, from the simulation's truth
                counts = [Counter(simulate(sim.pop("kind"), **sim).truth.label.tolist())
                          for _, _, sim, _ in scenario_inputs(kind, 1000 * seed, **options)]
                se2 = [c["Se2"] / (c["S2"] + c["Se2"]) for c in counts]
                out.update(se2_columns_min=min(c["Se2"] for c in counts), se2_columns_max=max(c["Se2"] for c in counts),
                           se2_share_min=min(se2), se2_share_max=max(se2),
                           other_chalcogen_columns=sum(sum(c.values()) - c["Mo"] - c["S2"] - c["Se2"] for c in counts))
            members = [[k for k, n in enumerate(result.names) if groups[n] == g] for g in order]
            far = [float(np.mean(result.distance[np.ix_(members[-1], m)])) for m in members]
            out["spearman_to_last"] = float(-spearmanr(far, range(len(order))).statistic)
            near = [float(np.mean(result.distance[np.ix_(members[0], m)])) for m in members]
            out["spearman_from_first"] = float(spearmanr(near, range(len(order))).statistic)
        return out, result


def _measured(kind, request, tmp_path_factory):
    return built_once(tmp_path_factory, f"{kind}-{request.param}",
                      lambda root: measure_scenario(kind, request.param, root=root))


@pytest.fixture(scope="module", params=seeds(0, 1))
def defects(request, tmp_path_factory):
    return _measured("defects", request, tmp_path_factory)


@pytest.fixture(scope="module", params=seeds(0, 1))
def twist(request, tmp_path_factory):
    return _measured("twist", request, tmp_path_factory)


@pytest.fixture(scope="module", params=seeds(0, 1))
def selenium(request, tmp_path_factory):
    return _measured("selenium", request, tmp_path_factory)


def test_defect_series_nearest_neighbours_and_order(defects):
    """Graphene at 0, 0.5, 2 and 5 % defects and a random network, one run per micrograph, two per group, on one
    joint vocabulary: every run's nearest neighbour is its replicate, replicates lie nearer each other than any two
    groups (the calibration of the weights), and the disorder index orders the graphene series. Seed sets 0-3 and
    1000-1003: replicates' largest distance 0.0010-0.0041 against the groups' smallest 0.0076-0.0117 (with discs
    rounded to an odd side, a network micrograph lay 0.57-0.63 from its replicate on five of the eight: the joint
    tokens of discs 11 and 13 px, see scenario_inputs).
    """
    measures, result = defects
    assert result.vocabulary.method == "joint"
    assert measures["nn_accuracy"] == 1.0
    assert measures["within_max"] < measures["between_min"]
    assert measures["spearman_disorder_graphene"] == pytest.approx(1.0)
    assert measures["disorder_groups_separate"] == 1.0


def test_random_network_ranks_most_disordered(defects):
    """The disorder index ranks the random network above 5 % graphene, whose rings are as irregular as the
    network's (ring-size entropy, hexagon share and mu2 overlap at 256 px): the index's lattice term (bond
    orientational order, grammar/disorder.py) tells the lost lattice from a defective one. Seed sets 0-3 and
    1000-1003, the lattice order per grain: network 0.891-0.936 against 5 % graphene 0.681-0.713 (network L
    0.10-0.19, 5 % graphene 0.57-0.60); with the discs of scenario_inputs the whole series in order (Spearman 1)."""
    measures, result = defects
    assert measures["crn_disorder_min"] > measures["g5_disorder_max"]
    assert measures["spearman_disorder"] == pytest.approx(1.0)
    assert all(0.0 <= item.measures()["lattice_order"] <= 1.0 for item in result.items)


def test_twist_series_nearest_neighbours_and_order(twist):
    """Twisted MoS2 bilayers at 0, 2, 4, 8 and 15 degrees (grid sampling, 3 tokens): the moiré wavenumber of each
    run's summary.json is the mesoscale level; replicates are nearest each other and the distance to the most
    twisted runs falls monotonically with twist. Twist is not disorder (an ordered superstructure), so the disorder
    ranking is not asked to order it (grammar/compare.py)."""
    measures, result = twist
    assert measures["nn_accuracy"] == 1.0
    assert measures["within_max"] < measures["between_min"]
    assert measures["spearman_to_last"] == pytest.approx(1.0)
    assert all(item.levels.twist_deg is not None for item in result.items)


def test_selenium_arrangement_separates_groups(selenium):
    """MoS2 with the same 47 Se2 columns (12 % of the chalcogen columns of a 256 px micrograph) ordered on a
    superlattice, random, or in clusters of 3 or 6 columns, one run per micrograph on the joint chemistry tokens:
    every run's nearest neighbour is its replicate, replicates lie nearer each other than any two groups, and the
    distance from the ordered runs grows from random to clusters of 3 to clusters of 6. The composition is equal by
    construction (the simulation's truth, asserted): only the arrangement separates the groups.

    In truth the share of Se2 among a Se2 column's chalcogen neighbours is 0 ordered, 0.08-0.17 random, 0.34-0.36
    and 0.50-0.55 in clusters of 3 and 6 (15 draws). Clusters grown one column at a time with a clustering
    strength scattered as much between draws as the groups differed (0.20-0.42 at strength 1 against random's
    0.08-0.17), and replicates of one group lay nearer another group (seed set 1). Measures of seed sets 0, 1,
    1000, 1001: benchmarks/README.md, "Comparing grammars".

    The columns at the image edge are not measured: each gets a copy of its micrograph's typical column's
    features, about 60 copies of one point per micrograph. While the joint fit's sample kept the copies it gave
    them a sharp token of their own, which one micrograph's point missed: on seed set 1000 one clusters-of-3
    run's edge columns joined the Mo token and its composition lay 0.025 from its replicate's against 0.0001
    between groups (NN accuracy 0.875). The sample now holds distinct rows (FeatureStore.sample).
    """
    measures, result = selenium
    assert measures["se2_columns_min"] == measures["se2_columns_max"] == 47
    assert 0.115 < measures["se2_share_min"] <= measures["se2_share_max"] < 0.125
    assert measures["other_chalcogen_columns"] == 0
    assert result.vocabulary.model.descriptor == "chemistry"
    assert measures["nn_accuracy"] == 1.0
    assert measures["within_max"] < measures["between_min"]
    assert measures["spearman_from_first"] == pytest.approx(1.0)


def test_unrelated_material_is_unknown(items):
    """Perovskite against a graphene reference: beyond the reference's own replicate spread, so unknown; graphene
    of another density is still graphene. (The MoS2 runs are compared too: the same five runs as the other
    classification tests, one joint token fit.)"""
    result = compare([items["perovskite"], items["g4"], items["mos2a"], items["mos2b"]],
                     references={"graphene": items["g0"]})
    verdict = result.classification["perovskite"]
    assert verdict.label == UNKNOWN and verdict.nearest == "graphene" and verdict.margin > 0
    assert result.classification["g4"].label == "graphene"
    assert "graphene" in result.spreads and verdict.threshold >= 0.1
    assert "perovskite: unknown (nearest graphene" in format_table(result)
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["classification"]["perovskite"]["label"] == UNKNOWN
    # every run's disc follows its period (patch_size auto: perovskite's 16 px gives 17 px, graphene's and MoS2's
    # 12 px 13 px): one rule, so no pooling of discs to report
    match = doc["tokens"]["match"]
    assert {round(d) for d in match["perovskite"]["disc_diameter_px"]} == {17}
    assert all(abs(d - 13) < 0.1 for name in ("g4", "mos2a", "mos2b", "g0") for d in match[name]["disc_diameter_px"])
    assert "pooled" not in doc["tokens"]["source"]


def test_joint_vocabulary_says_when_it_pools_discs_of_two_rules(items):
    """A run whose ``features.patch_size`` fixed its disc, compared with runs whose disc follows the period: the
    joint model's source names both rules."""
    fixed = dataclasses.replace(items["mos2a"], images={i: {**m, "disc_fixed_px": 13}
                                                        for i, m in items["mos2a"].images.items()})
    result = compare([items["g4"], fixed])
    assert "discs 13 px, auto pooled" in result.vocabulary.source


def test_joint_vocabulary_does_not_depend_on_the_order(items, joint):
    forward, backward = joint, compare([items["g4k2"], items["mos2a"], items["g4"]])
    assert forward.vocabulary.model.names == backward.vocabulary.model.names
    np.testing.assert_allclose(forward.distance, backward.distance[::-1, ::-1], atol=1e-9)


def test_joint_vocabulary_of_chemistry_runs_is_chemical(tmp_path):
    """Runs whose tokens are column chemistry (``features.descriptor: chemistry``; two MoS2 runs, one graphene, one
    perovskite, 256 px): the joint model is a chemistry model and its tokens relabel the MoS2 and graphene runs' own
    (agreement 0.956-1.0, mean confidence >= 0.977 on seed sets 0 and 1000; the graphene run's one carbon token is
    one joint token). The perovskite run's own tokens match less well (0.92 and 0.77: its joint tokens split or
    merge its three or six), which is not asked. Without the perovskite run the MoS2 and graphene agreement
    falls to 0.89-0.92 on seed set 1000: the joint fit depends on the set compared (its sample)."""
    base = seed(0)
    paths = {}
    for name, kind, s in (("mos2a", "mos2", 1), ("mos2b", "mos2", 2), ("graphene", "graphene", 3),
                          ("perovskite", "perovskite", 4)):
        spec = {"name": name, "inputs": [{"simulate": {"kind": kind, "size": 256, "seed": base + s}}],
                "features": {"descriptor": "chemistry"}, "seed": base, "output": {"overlays": False, "report": False}}
        paths[name] = run(load_spec(spec), out_dir=tmp_path / f"{name}-{base}", quiet=True)
    vocabulary = compare(list(paths.values())).vocabulary
    assert vocabulary.method == "joint" and vocabulary.model.descriptor == "chemistry"
    for name in ("mos2a", "mos2b", "graphene"):
        match = vocabulary.match[paths[name].name]
        assert match["agreement"] >= 0.95 and match["mean_confidence"] >= 0.95, (name, match)
    assert vocabulary.match[paths["graphene"].name]["agreement"] == 1.0


def test_features_are_stored_in_atom_order(runs):
    """features.npz holds one feature row per atom of atoms.csv; re-assigning them with the run's own token model
    gives the run's tokens."""
    from motifgram.engine.tokens import assign_tokens

    store = read_features(runs["g4k2"])
    model = TokenModel.load(runs["g4k2"] / "tokens.npz")
    graphs = read_run_graphs(runs["g4k2"])
    assert store.descriptor == model.descriptor and list(store.images) == list(graphs)
    for image, graph in graphs.items():
        labels, _ = assign_tokens(model, store.images[image])
        assert np.asarray(model.names)[labels].tolist() == graph.tokens.tolist()


def test_reference_token_model(runs, items, tmp_path):
    """tokens: {model: RUN} reuses a run's token model; compare --tokens RUN tokenises every run with it."""
    spec = load_spec({"name": "reuse", "inputs": [_graphene(0.004, seed(77), 256)], "features": ZERNIKE,
                      "tokens": {"model": str(runs["g4k2"])}, "output": {"overlays": False, "report": False}})
    reuse = run(spec, out_dir=tmp_path / "reuse", quiet=True)
    assert TokenModel.load(reuse / "tokens.npz").names == TokenModel.load(runs["g4k2"] / "tokens.npz").names
    result = compare([reuse, items["g4"]], tokens=runs["g4k2"])
    assert result.vocabulary.method == "reference" and result.vocabulary.source == str(runs["g4k2"])
    assert result.vocabulary.match["reuse"]["agreement"] == pytest.approx(1.0)


REAL = ("mose2_grain_boundary", "ws2te2_alloy", "mos2_se_implanted", "graphene_flower", "sto", "si110",
        "au_grain_boundary")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The seven real micrographs' runs (examples/real_comparison.md), loaded (name -> Comparable), and their
    comparison on one joint vocabulary."""
    if not DATA.is_dir():
        pytest.skip(f"real micrographs not present at {DATA}")
    from test_real_data import REAL_SPEC_SEED, real_run

    paths = {name: real_run(tmp_path_factory, name) for name in REAL}  # test_real_data's runs, built once
    items = {name: load_comparable(path) for name, path in paths.items()}
    return paths, items, built_once(tmp_path_factory, f"real-compare-{REAL_SPEC_SEED}",
                                    lambda _: compare(list(items.values())))


def _nearest(result, name):
    d = result.distance + np.diag(np.full(len(result.items), np.inf))
    return result.names[int(np.argmin(d[result.names.index(name)]))]


@needs_data
def test_real_tmds_nearest_each_other_and_sto_unknown(real):
    """examples/real_comparison.md: on the joint vocabulary the nearest neighbour of MoSe2 (grain boundary) and of
    MoS2-Se is another TMD, and STO is unknown against all six others as references."""
    paths, items, result = real
    assert result.vocabulary.method == "joint"
    tmds = {paths[name].name for name in REAL[:3]}
    for name in ("mose2_grain_boundary", "mos2_se_implanted"):
        assert _nearest(result, paths[name].name) in tmds - {paths[name].name}
    others = {name: item for name, item in items.items() if name != "sto"}
    against = compare([items["sto"]], references=others)
    assert against.classification[paths["sto"].name].label == UNKNOWN


@needs_data
def test_real_ws2te2_nearest_a_tmd_on_every_joint_fit(real):
    """WS2Te2's nearest run does not depend on the joint token fit's seed. With the BIC scan capped at 8 mixture
    components (one run's default) the joint fit of the seven runs stopped at the cap (BIC still falling) and
    which classes shared a component was a near-tie (mean log-likelihood per row -10.044 to -10.078 on one sample
    whatever the outcome): WS2Te2's nearest over joint-fit seeds 0-5 was MoSe2, MoS2-Se, flower, MoSe2, flower,
    flower (its agreement with the joint tokens 0.43 or 0.84-0.92), and the 28 columns detection's hidden-column
    pass added to the MoS2-Se run (3929 -> 3957) were enough to move it. With the scan reaching the runs' own
    tokens summed (12; :func:`motifgram.grammar.align.joint_k_max`) BIC chooses 10-11 components and WS2Te2's
    nearest is MoSe2 on all six seeds, 0.36-0.42 away against 0.57-0.61 for the runner-up (the graphene flower; spec
    seed 0, 2026-12-07; the runs of spec seed 1: MoSe2 on all six, a TMD on 5 of 6 before). Asked: a TMD on each
    of seeds 0-2 (a fit that lands on a TMD half the time passes one in eight)."""
    paths, items, result = real  # its joint fit is seed 0's
    items = list(items.values())
    tmds = {paths[name].name for name in ("mose2_grain_boundary", "mos2_se_implanted")}
    nearest = [_nearest(r, paths["ws2te2_alloy"].name) for r in (result, *(compare(items, seed=s) for s in (1, 2)))]
    assert all(n in tmds for n in nearest), nearest
