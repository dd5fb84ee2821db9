"""Tests of motifgram.grammar.compare on run directories written by the real pipeline (seeded simulations).

The graphene series uses densities the simulator can realise: at 384 px it places about 8, 14 and 24
defects for 0.001, 0.004 and 0.02 defects per atom (it saturates near 0.008), so the true order is strict.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from motifgram.engine.pipeline import run
from motifgram.engine.spec import load_spec
from motifgram.engine.tokens import TokenModel
from motifgram.grammar.compare import (
    Comparable,
    align_tokens,
    compare,
    compare_pair,
    format_table,
    grammar_disorder_estimate,
    jensen_shannon,
    load_comparable,
    rename_tokens,
    rule_keys,
    usage_divergence,
)
from motifgram.engine.rundir import read_run_graphs
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import RingRule
from motifgram.grammar.parse import parse_graph

# Stone–Wales and vacancy densities per atom, each; the simulator places defects up to ~8 %, and beyond ~1 %
# each a graphene sheet has as many non-hexagons as the continuous random network below
SERIES = {"g0": 0.0, "g1": 0.001, "g4": 0.004, "g7": 0.007}


def _graphene(density, seed, size=384):
    return {"simulate": {"kind": "graphene", "size": size, "seed": seed, "stone_wales_density": density,
                         "vacancy_density": density}}


def _pair(kind, seed):
    return [{"simulate": {"kind": kind, "size": 256, "seed": seed + s}} for s in range(2)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    specs = {name: ([_graphene(d, 10 * i + 1), _graphene(d, 10 * i + 2)], {"k": 1})
             for i, (name, d) in enumerate(SERIES.items())}
    specs["crn"] = (_pair("crn", 50), {"k": 1})
    specs["g4k2"] = ([_graphene(0.004, 61, 256), _graphene(0.004, 62, 256)], {"k": 2})
    specs["mos2a"] = (_pair("mos2", 70), {})
    specs["mos2b"] = (_pair("mos2", 80), {})
    specs["perovskite"] = (_pair("perovskite", 90), {})
    out = {}
    for name, (inputs, tokens) in specs.items():
        spec = load_spec({"name": name, "inputs": inputs, "tokens": tokens,
                          "output": {"overlays": False, "report": False}})
        out[name] = run(spec, out_dir=root / name, quiet=True)
    return out


@pytest.fixture(scope="module")
def series(runs):
    return compare([runs[name] for name in (*SERIES, "crn")])


def test_series_ranked_in_true_order(series):
    names = [*SERIES, "crn"]
    assert list(series.ranking) == names
    disorder = [item.disorder for item in series.items]
    assert spearmanr(disorder, np.arange(len(names))).statistic == pytest.approx(1.0)
    assert all(item.disorder_source == "images" for item in series.items)


def test_series_distances(series):
    d = series.distance
    assert d.shape == (5, 5)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert np.all((d >= 0) & (d <= 1))
    names = list(series.names)
    off = d + np.diag(np.full(5, np.inf))
    nearest = {name: names[int(np.argmin(row))] for name, row in zip(names, off, strict=True)}
    assert nearest["g1"] in ("g0", "g4")
    # the continuous random network is farther from pristine graphene than any graphene run is
    assert names[int(np.argmax(d[names.index("g0")]))] == "crn"
    # more defects, farther from pristine
    assert d[0, 1] < d[0, 2] < d[0, 3] < d[0, 4]


def test_read_run_graphs_reproduces_the_parses(runs):
    item = load_comparable(runs["g4"])
    graphs = read_run_graphs(runs["g4"])
    assert list(graphs) == list(item.images)
    for image_id, graph in graphs.items():
        parse = parse_graph(item.grammar, graph, min_domain_size=item.min_domain_size)
        assert parse.bits_per_atom == pytest.approx(item.images[image_id]["bits_per_atom"], abs=1e-4)
        assert graph.n_atoms == item.images[image_id]["n_atoms"]


def test_same_run_twice_is_at_distance_zero(runs):
    a, b = load_comparable(runs["g4"]), load_comparable(runs["g4"])
    pair = compare_pair(a, b)
    assert pair.alignment.is_identity
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in pair.jsd.values())
    assert pair.cross_dl_a_on_b == pytest.approx(0.0, abs=1e-4)
    assert pair.distance == pytest.approx(0.0, abs=1e-4)
    assert pair.only_in_a == pair.only_in_b == ()


def test_different_vocabularies_are_aligned(runs):
    k1, k2 = load_comparable(runs["g4"]), load_comparable(runs["g4k2"])
    assert len(k1.grammar.tokens) == 1 and len(k2.grammar.tokens) == 2
    alignment = align_tokens(k1.token_model, k2.token_model)
    assert len(alignment.mapping) == 1 and len(alignment.unmatched_b) == 1
    assert alignment.inverse().mapping == {b: a for a, b in alignment.mapping.items()}
    result = compare([k1, k2])
    pair = result.pairs[(0, 1)]
    assert pair.alignment.mapping == alignment.mapping
    assert pair.cross_dl_a_on_b is not None and pair.cross_dl_b_on_a is not None
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["pairs"][0]["tokens"]["matched"] == alignment.mapping
    assert doc["pairs"][0]["tokens"]["unmatched_b"] == list(alignment.unmatched_b)
    assert 0 < result.distance[0, 1] <= 1


def test_unrelated_vocabularies_do_not_align(runs):
    graphene = TokenModel.load(runs["g0"] / "tokens.npz")
    perovskite = TokenModel.load(runs["perovskite"] / "tokens.npz")
    alignment = align_tokens(graphene, perovskite)
    assert alignment.mapping == {}
    pair = compare_pair(load_comparable(runs["g0"]), load_comparable(runs["perovskite"]))
    assert pair.cross_dl_a_on_b is None and "cannot be aligned" in pair.cross_dl_note
    assert pair.distance >= 0.5


def test_models_of_different_descriptors_do_not_align(runs):
    # the same run's model, its features relabelled as another descriptor: a different feature space
    graphene = TokenModel.load(runs["g0"] / "tokens.npz")
    assert align_tokens(graphene, dataclasses.replace(graphene)).mapping == {"A": "A"}
    other = dataclasses.replace(graphene, descriptor="intensity")
    assert align_tokens(graphene, other).mapping == {}


def test_mos2_is_classified_as_mos2(runs):
    refs = {"graphene": runs["g0"], "perovskite": runs["perovskite"], "mos2": runs["mos2b"]}
    result = compare([runs["mos2a"], runs["g4"]], references=refs)
    assert result.classification["mos2a"].label == "mos2"
    # two MoS2 runs learn different vocabularies (2 and 3 tokens), so even the right reference is far
    assert result.classification["mos2a"].margin > 0.05
    assert result.classification["g4"].label == "graphene"
    table = format_table(result)
    assert "mos2a: mos2 (margin" in table and "ranking" in table


def test_json_follows_the_interface(runs, series):
    doc = json.loads(json.dumps(compare([runs["g0"], runs["mos2a"]], references=[runs["mos2b"]]).to_json()))
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


def test_bare_grammar_file(runs, tmp_path):
    path = tmp_path / "graphene_g4.txt"
    shutil.copy(runs["g4"] / "grammar.txt", path)
    bare = load_comparable(path)
    assert bare.name == "graphene_g4" and not bare.graphs and bare.token_model is None
    assert bare.disorder_source == "grammar estimate"
    assert bare.disorder == pytest.approx(grammar_disorder_estimate(bare.grammar))
    assert 0 < bare.disorder < load_comparable(runs["crn"]).disorder
    result = compare([runs["g4"], path])
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


def test_equal_rules_with_different_names_match(runs):
    item = load_comparable(runs["g7"])
    g = item.grammar
    shuffled = Grammar(g.name, g.version, g.tokens, tuple(reversed(g.rings)), g.motifs, g.domains)
    other = Comparable("other", shuffled.canonical())
    pair = compare_pair(Comparable("same", g), other)
    assert pair.jsd_mean == pytest.approx(0.0, abs=1e-12)
    assert pair.only_in_a == pair.only_in_b == ()


def test_jsd_of_a_grammar_with_itself_is_zero(runs):
    item = load_comparable(runs["g7"])
    keys = rule_keys(item.grammar)
    usage = item.level_usage()
    assert set(usage_divergence(usage, keys, usage, keys).values()) == {0.0}


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
