"""Tests for motifgram.grammar.model: canonical forms, validation, statistics and the canonical grammar."""

import itertools
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motifgram.engine.errors import GrammarError
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import (
    DomainRule,
    MotifRule,
    RingRule,
    TokenSymbol,
    canonical_motif,
    canonical_ring_word,
)
from conftest import seed

# The Stone-Wales 55-77 cluster: each pentagon borders both heptagons, the heptagons share the rotated bond.
SW_NODES = ("R5", "R7", "R7", "R5")
SW_EDGES = ((0, 1), (0, 2), (1, 2), (1, 3), (2, 3))
CHAIN_EDGES = ((0, 1), (1, 2), (2, 3))  # 5-7-7-5 in a row


def graphene_sw() -> Grammar:
    return Grammar(
        "graphene-sw",
        1,
        (TokenSymbol("A", 0.98), TokenSymbol("B", 0.02)),
        (
            RingRule("R6", ("A",) * 6, 8123),
            RingRule("R5", ("A",) * 5, 211),
            RingRule("R7", ("A",) * 7, 190),
            RingRule("R6b", ("A", "A", "B", "A", "A", "A"), 20),
            RingRule.wildcard("R5x", 5, 3),
        ),
        (
            MotifRule("M1", ("R5", "R7"), ((0, 1),), 190, 2),
            MotifRule("SW", SW_NODES, SW_EDGES, 80, 2),
            MotifRule("M3", ("M1", "SW", "M1"), ((0, 1), (1, 2)), 4, 3),
        ),
        (DomainRule("D6", "R6", 3, 2, 8000),),
    )


def _as_nx(nodes, edges):
    g = nx.Graph()
    g.add_nodes_from((i, {"label": s}) for i, s in enumerate(nodes))
    g.add_edges_from(edges)
    return g


def _permute(nodes, edges, perm):
    """Node i moves to position perm[i]."""
    new_nodes = [None] * len(nodes)
    for i, s in enumerate(nodes):
        new_nodes[perm[i]] = s
    return tuple(new_nodes), tuple((perm[i], perm[j]) for i, j in edges)


# -- canonical ring words --------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["AABAB", "ABCABD", "AAAAAA", "BAACCB", "MoSMoSSe"])
def test_ring_word_is_invariant_under_the_dihedral_group(word):
    word = tuple(word)
    n = len(word)
    forms = set()
    for w in (word, word[::-1]):
        for k in range(n):
            forms.add(canonical_ring_word(w[k:] + w[:k]))
    assert len(forms) == 1
    (form,) = forms
    assert sorted(form) == sorted(word)
    assert canonical_ring_word(form) == form


def test_ring_word_is_least_over_rotations_and_reflections():
    assert canonical_ring_word(("B", "A", "C", "A")) == ("A", "B", "A", "C")
    assert canonical_ring_word(("C", "B", "A")) == ("A", "B", "C")  # a reflection is needed


def test_different_cyclic_words_differ():
    # Same letters, different necklaces: AABB vs ABAB; and chiral pair AABAC / AACAB are mirror images (equal).
    assert canonical_ring_word("AABB") != canonical_ring_word("ABAB")
    assert canonical_ring_word("AABAC") == canonical_ring_word("AACAB")
    assert canonical_ring_word("AABC") != canonical_ring_word("ABAC")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from("ABC"), min_size=3, max_size=9),
    st.lists(st.sampled_from("ABC"), min_size=3, max_size=9),
)
def test_ring_words_equal_iff_dihedrally_equivalent(a, b):
    n = len(a)
    equivalent = len(a) == len(b) and any(
        tuple(w[k:] + w[:k]) == tuple(b) for w in (a, a[::-1]) for k in range(n)
    )
    assert (canonical_ring_word(a) == canonical_ring_word(b)) == equivalent


def test_ring_rule_stores_the_canonical_word():
    r = RingRule("R", ("B", "A", "A", "A", "A"), 1)
    assert r.word == ("A", "A", "A", "A", "B")
    assert r == RingRule("R", ("A", "B", "A", "A", "A"), 1)
    assert (r.level, r.size, r.is_wildcard) == (1, 5, False)
    w = RingRule.wildcard("W", 5, 2)
    assert w.word == ("*",) * 5 and w.is_wildcard


@pytest.mark.parametrize(
    "args",
    [("R", ("A", "A"), 1), ("R", ("A", "*", "A"), 1), ("R", ("A", "A", "A"), -1), ("R", ("A", "A", "A"), 1.5)],
)
def test_bad_ring_rules_raise(args):
    with pytest.raises(GrammarError):
        RingRule(*args)


# -- canonical motifs ------------------------------------------------------------------------------------------


def test_sw_cluster_and_chain_are_different_motifs():
    sw = canonical_motif(SW_NODES, SW_EDGES)
    chain = canonical_motif(SW_NODES, CHAIN_EDGES)
    assert sw != chain
    assert sw[0] == chain[0] == ("R5", "R5", "R7", "R7")
    assert len(sw[1]) == 5 and len(chain[1]) == 3


@pytest.mark.parametrize("edges", [SW_EDGES, CHAIN_EDGES])
def test_motif_is_invariant_under_node_permutation(edges):
    want = canonical_motif(SW_NODES, edges)
    for perm in itertools.permutations(range(4)):
        nodes, pedges = _permute(SW_NODES, edges, perm)
        assert canonical_motif(nodes, pedges) == want
        assert canonical_motif(nodes, [(j, i) for i, j in pedges]) == want


def test_canonical_motif_is_a_relabelling():
    nodes, edges = canonical_motif(SW_NODES, SW_EDGES)
    assert nx.is_isomorphic(
        _as_nx(nodes, edges), _as_nx(SW_NODES, SW_EDGES), node_match=lambda a, b: a["label"] == b["label"]
    )
    assert list(nodes) == sorted(nodes)
    assert list(edges) == sorted(edges) and all(i < j for i, j in edges)


def test_regular_graphs_that_refinement_cannot_split():
    # Two 6-vertex 2-regular graphs: a hexagon and two triangles (1-WL colours them identically).
    hexagon = [(i, (i + 1) % 6) for i in range(6)]
    triangles = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)]
    assert canonical_motif(("R",) * 6, hexagon) != canonical_motif(("R",) * 6, triangles)
    rng = np.random.default_rng(seed(0))
    for _ in range(20):
        perm = rng.permutation(6)
        assert canonical_motif(*_permute(("R",) * 6, hexagon, perm)) == canonical_motif(("R",) * 6, hexagon)


@st.composite
def labelled_graphs(draw, max_nodes=6):
    n = draw(st.integers(2, max_nodes))
    nodes = tuple(draw(st.lists(st.sampled_from(["R5", "R6", "R7"]), min_size=n, max_size=n)))
    edges = {(draw(st.integers(0, i - 1)), i) for i in range(1, n)}  # a random spanning tree
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    edges |= set(draw(st.lists(st.sampled_from(pairs), max_size=4)))
    return nodes, tuple(sorted(edges))


@settings(max_examples=200, deadline=None)
@given(labelled_graphs(), labelled_graphs(), st.randoms(use_true_random=False))
def test_canonical_motif_equal_iff_isomorphic(a, b, rnd):
    perm = list(range(len(a[0])))
    rnd.shuffle(perm)
    assert canonical_motif(*_permute(*a, perm)) == canonical_motif(*a)
    iso = nx.is_isomorphic(_as_nx(*a), _as_nx(*b), node_match=lambda x, y: x["label"] == y["label"])
    assert (canonical_motif(*a) == canonical_motif(*b)) == iso


def test_motif_rule_is_stored_canonical():
    m = MotifRule("SW", SW_NODES, SW_EDGES, 80, 2)
    nodes, edges = _permute(SW_NODES, SW_EDGES, (3, 1, 0, 2))
    assert m == MotifRule("SW", nodes, edges, 80, 2)
    assert (m.nodes, m.edges) == canonical_motif(SW_NODES, SW_EDGES)
    assert hash(m) == hash(MotifRule("SW", nodes, edges, 80, 2))
    pair = MotifRule("P", ("R7", "R5"), ((1, 0),), 3, 2)
    assert pair.nodes == ("R5", "R7") and pair.edges == ((0, 1),) and pair.is_pair


@pytest.mark.parametrize(
    "nodes, edges, match",
    [
        (("R5",), (), "at least 2 parts"),
        (("R5", "R7", "R6"), ((0, 1),), "not connected"),
        (("R5", "R7"), ((0, 1), (1, 0)), "twice"),
        (("R5", "R7"), ((0, 0), (0, 1)), "itself"),
        (("R5", "R7"), ((0, 2),), "outside"),
    ],
)
def test_bad_motifs_raise(nodes, edges, match):
    with pytest.raises(GrammarError, match=match):
        MotifRule("M", nodes, edges, 1, 2)


# -- the grammar -----------------------------------------------------------------------------------------------


def test_lookup_and_levels():
    g = graphene_sw().validate()
    assert g.level_of("A") == 0 and g.level_of("R5x") == 1 and g.level_of("SW") == 2 and g.level_of("M3") == 3
    assert g.level_of("D6") == 2
    assert [r.name for r in g.rules_at_level(2)] == ["M1", "SW", "D6"]
    assert g.levels == (0, 1, 2, 3)
    assert g.n_rules == 5 + 3 + 1
    assert isinstance(g.symbols["SW"], MotifRule)
    with pytest.raises(GrammarError, match="no symbol"):
        g.level_of("nope")


def test_probabilities_sum_to_one_per_level():
    g = graphene_sw()
    p = g.probabilities()
    assert set(p) == {0, 1, 2, 3}
    for per_level in p.values():
        assert math.isclose(sum(per_level.values()), 1.0)
    assert p[1]["R6"] == pytest.approx(8123 / (8123 + 211 + 190 + 20 + 3))
    assert p[2]["D6"] == pytest.approx(3 / (190 + 80 + 3))
    assert g.relative_abundance()["M3"] == 1.0


def test_probabilities_of_an_all_zero_level_are_uniform():
    g = Grammar("z", 1, (TokenSymbol("A", 0.0), TokenSymbol("B", 0.0)), (RingRule("R", "AAA", 0),))
    assert g.probabilities() == {0: {"A": 0.5, "B": 0.5}, 1: {"R": 1.0}}


def test_description_length_is_positive_and_grows_with_rules():
    g = graphene_sw()
    bits = g.description_length_bits()
    assert bits > 0 and bits == g.description_length_bits()
    smaller = Grammar(g.name, g.version, g.tokens, g.rings, g.motifs[:2], g.domains)
    assert smaller.description_length_bits() < bits
    # A pair is cheaper than the four-ring SW cluster.
    pair_bits = Grammar("p", 1, g.tokens, g.rings, g.motifs[:1]).description_length_bits()
    sw_bits = Grammar("p", 1, g.tokens, g.rings, g.motifs[1:2]).description_length_bits()
    assert pair_bits < sw_bits


def _with(g, **changes):
    fields = dict(name=g.name, version=g.version, tokens=g.tokens, rings=g.rings, motifs=g.motifs, domains=g.domains)
    fields.update(changes)
    return Grammar(**fields)


@pytest.mark.parametrize(
    "change, rule, match",
    [
        (lambda g: dict(motifs=g.motifs + (MotifRule("X", ("R5", "Q9"), ((0, 1),), 1, 2),)), "X", "unknown symbol"),
        (lambda g: dict(motifs=(g.motifs[2],) + g.motifs[:2]), "M3", "defined later"),
        (lambda g: dict(motifs=g.motifs + (MotifRule("X", ("X", "R5"), ((0, 1),), 1, 2),)), "X", "itself"),
        (lambda g: dict(motifs=g.motifs + (MotifRule("X", ("A", "R5"), ((0, 1),), 1, 2),)), "X", "is a token"),
        (lambda g: dict(rings=g.rings + (RingRule("R6", ("B",) * 6, 1),)), "R6", "defined twice"),
        (lambda g: dict(domains=(DomainRule("SW", "R5", 1, 2, 3),)), "SW", "defined twice"),
        (lambda g: dict(rings=g.rings + (RingRule("R8", ("A", "Z") * 4, 1),)), "R8", "undeclared token"),
        (lambda g: dict(rings=g.rings + (RingRule("R5y", ("A",) * 5, 1),)), "R5y", "same word"),
        (lambda g: dict(motifs=g.motifs[:2] + (MotifRule("M3", ("M1", "SW"), ((0, 1),), 1, 2),)), "M3", "level"),
        (lambda g: dict(domains=(DomainRule("D6", "R6", 3, 3, 8000),)), "D6", "level"),
        (lambda g: dict(domains=(DomainRule("D6", "Q", 3, 2, 8000),)), "D6", "unknown symbol"),
        (lambda g: dict(domains=g.domains + (DomainRule("D7", "R6", 1, 2, 1),)), "D7", "repeats"),
        (lambda g: dict(motifs=g.motifs + (MotifRule("X", ("R7", "R5"), ((0, 1),), 1, 2),)), "X", "same graph"),
        (lambda g: dict(tokens=g.tokens + (TokenSymbol("ring", 0.1),)), "ring", "keyword"),
        (lambda g: dict(tokens=g.tokens + (TokenSymbol("9x", 0.1),)), "9x", "identifier"),
    ],
)
def test_validate_names_the_rule_and_the_problem(change, rule, match):
    g = _with(graphene_sw(), **change(graphene_sw()))
    assert any(name == rule and match in msg for name, msg in g.problems()), g.problems()
    with pytest.raises(GrammarError, match=match):
        g.validate()


def test_a_valid_grammar_has_no_problems():
    assert graphene_sw().problems() == []


def test_canonical_names_and_order():
    c = graphene_sw().canonical()
    assert [r.name for r in c.rings] == ["R5", "R5_any", "R6a", "R6b", "R7"]
    assert [m.name for m in c.motifs] == ["M1", "M2", "M3"]
    assert c.motifs[2].nodes == ("M1", "M1", "M2")
    assert [d.name for d in c.domains] == ["D_R6a"]
    assert c.canonical() == c
    assert c.validate() is c


def test_canonical_ignores_names_and_order():
    g = graphene_sw()
    rename = {"R6": "Hex", "R5": "Pent", "R7": "Hept", "R6b": "HexB", "R5x": "Any5", "M1": "P57", "SW": "StoneWales",
              "M3": "Big", "D6": "Crystal"}
    h = Grammar(
        g.name, g.version, g.tokens[::-1],
        tuple(RingRule(rename[r.name], r.word, r.count) for r in g.rings[::-1]),
        tuple(
            MotifRule(rename[m.name], tuple(rename[p] for p in m.nodes), m.edges, m.count, m.level) for m in g.motifs
        ),
        tuple(DomainRule(rename[d.name], rename[d.symbol], d.count, d.level, d.size) for d in g.domains),
    ).validate()
    assert h != g
    assert h.canonical() == g.canonical()


def test_canonical_avoids_token_names():
    g = Grammar("t", 1, (TokenSymbol("R3", 1.0),), (RingRule("X", ("R3",) * 3, 5),))
    assert g.canonical().rings[0].name == "R3_"


def test_rules_are_hashable_and_comparable():
    g = graphene_sw()
    assert hash(g) == hash(graphene_sw()) and g == graphene_sw()
    assert sorted(g.rings)[0].name == "R5"
    assert len({*g.rings, *graphene_sw().rings}) == len(g.rings)


def test_token_abundance_must_be_finite_and_non_negative():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(GrammarError, match="abundance"):
            TokenSymbol("A", bad)
