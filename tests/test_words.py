"""Tests for the ring vocabulary chosen by description length (grammar.words), ring contacts, the free-atom
token code and the rule glosses (grammar.gloss)."""

import math

import networkx as nx
import numpy as np
import pytest

from motifgram.engine.graph import AtomGraph
from motifgram.engine.simulate import simulate
from motifgram.grammar.gloss import rule_glosses, rule_places
from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.parse import SymbolGraph, kt_bits, parse_graph, ring_contacts
from motifgram.grammar.rules import TokenSymbol
from motifgram.grammar.words import RingVocabulary, choose_ring_words, ring_words_of, stage_bits


def truth_graph(kind="graphene", size=384, seed=1, **options):
    truth = simulate(kind, size=size, seed=seed, **options).truth
    return AtomGraph(truth.xy, truth.label, truth.bonds, truth.rings, (size, size)), truth


def sublattice_tokens(graph):
    """Tokens "B"/"N" by the parity of the bond distance from one atom: the two sublattices of a honeycomb
    (an h-BN-like compound), with the alternation broken around odd rings."""
    depth = nx.single_source_shortest_path_length(nx.Graph(graph.bonds.tolist()), 0)
    return graph.with_tokens(np.array(["B" if depth.get(i, 0) % 2 else "N" for i in range(graph.n_atoms)]))


def test_kt_code_lengths():
    assert kt_bits([7], 1) == 0.0
    assert kt_bits([1], 2) == pytest.approx(1.0)  # one binary symbol: 1 bit
    assert kt_bits([1, 1], 2) == pytest.approx(math.log2(8 / 1))  # p = 1/2 then 1/4 (KT): 3 bits
    n = 10_000  # N H + (T - 1)/2 log2 N + O(1) for a fair coin
    assert kt_bits([n // 2, n // 2], 2) == pytest.approx(n + 0.5 * math.log2(n), abs=1.0)


def test_ring_contacts_are_the_pairs_sharing_an_atom():
    rings = [(0, 1, 2, 3), (3, 4, 5, 6), (1, 2, 7, 8), (9, 10, 11)]  # a corner, a bond, nothing
    assert ring_contacts(rings).tolist() == [[0, 1], [0, 2]]
    assert ring_contacts([]).shape == (0, 2)


def test_corner_sharing_rings_form_one_domain_but_no_edge():
    # five squares in a line meeting at corners (a 4|4P-like boundary), each bonded to one hexagon
    labels = ["R4"] * 5 + ["R6"] * 5
    edges = np.array([[k, 5 + k] for k in range(5)])
    contacts = np.array([[k, k + 1] for k in range(4)])
    sg = SymbolGraph(labels, edges, contacts)
    assert sg.regions("R4", 5) == [(0, 1, 2, 3, 4)]
    assert sg.n_edges == 5 and all(len(sg.adj[k]) == 1 for k in range(5))  # contacts are not edges
    assert SymbolGraph(labels, edges).regions("R4", 2) == []
    # two bonded patches of hexagons that touch at a corner (two grains) stay two regions
    grains = SymbolGraph(["R6"] * 6, np.array([[0, 1], [1, 2], [3, 4], [4, 5]]), np.array([[2, 3]]))
    assert grains.regions("R6", 3) == [(0, 1, 2), (3, 4, 5)]


def test_stage_bits_is_the_induction_cost_before_motifs():
    # two tokens (sublattices), defects: without repeated components stage_bits must equal induce's initial bits
    graph, _ = truth_graph(stone_wales_density=0.004, vacancy_density=0.002)
    graph = sublattice_tokens(graph)
    huge = 10**9  # no word and no component repeats this often
    result = induce_grammar([graph], min_count=huge)
    micrograph = ring_words_of(0, graph)
    counts = dict(zip(micrograph.distinct, np.bincount(micrograph.index).tolist(), strict=True))
    tokens = tuple(TokenSymbol(t.name, t.abundance) for t in result.grammar.tokens)
    vocabulary = RingVocabulary.build(counts, frozenset(), None)
    bits, domains = stage_bits([micrograph], vocabulary, tokens, min_count=huge, max_motif_size=6)
    assert bits == pytest.approx(result.initial_bits, rel=1e-12)
    assert [(d.count, d.size) for d in domains] == [(d.count, d.size) for d in result.grammar.domains]


def test_the_sublattice_word_earns_its_rule():
    graph, _ = truth_graph(stone_wales_density=0.0, vacancy_density=0.0)
    micrograph = ring_words_of(0, sublattice_tokens(graph))
    tokens = (TokenSymbol("B", 0.5), TokenSymbol("N", 0.5))
    vocabulary, gains = choose_ring_words([micrograph], tokens, min_count=2, min_domain_size=None, max_motif_size=6)
    assert [(r.word, r.is_wildcard) for r in vocabulary.rings] == [(("B", "N") * 3, False)]
    # naming the alternation saves about a bit per atom: the tokens a wildcard hexagon would spell out
    assert 0.8 * graph.n_atoms < gains[vocabulary.rings[0].name] < 1.1 * graph.n_atoms


def test_rule_glosses_say_what_and_where():
    graph, truth = truth_graph(stone_wales_density=0.004, vacancy_density=0.0)
    result = induce_grammar([graph])
    parse = parse_graph(result.grammar, graph)
    places = rule_places({"img": parse.root}, {"img": graph.xy})
    glosses = rule_glosses(result.grammar, result.gains_bits, places)
    assert [g.name for g in glosses][:1] == ["D_R6"]  # the crystal saves the most
    assert sum(g.share for g in glosses if g.share is not None) == pytest.approx(1.0)
    sw = next(g for g in glosses if g.ring_sizes == (5, 5, 7, 7))
    at_defects = graph.xy[[a for d in truth.defects for a in d.atoms]]
    place = sw.places["img"]
    assert place.n == sw.count == len(truth.defects)
    assert np.allclose(place.bbox_xy, [*at_defects.min(axis=0), *at_defects.max(axis=0)])
    assert np.allclose(place.centroid_xy, np.mean([graph.xy[list(d.atoms)].mean(axis=0) for d in truth.defects],
                                                  axis=0))
    assert sw.gloss.startswith(f"rings 5 5 7 7; {sw.count} x; img: x ")
    assert rule_glosses(result.grammar)[0].share is None  # a grammar without its run: ranked by count
