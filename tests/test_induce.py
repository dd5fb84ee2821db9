"""Tests for motifgram.grammar.induce: MDL grammar induction on simulated truth graphs."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motifgram.engine.errors import GrammarError
from motifgram.engine.graph import AtomGraph
from motifgram.engine.simulate import simulate
from motifgram.grammar.induce import InductionResult, induce_grammar
from motifgram.grammar.rules import canonical_motif
from motifgram.grammar.parse import parse_graph
from conftest import seed
from conftest import seed as offset_seed

SW_DENSITY, VACANCY_DENSITY = 0.002, 0.001


def atom_graph(kind, *, size, seed, **options):
    """The exact atom graph (truth positions, labels as tokens, bonds, rings) of a simulated micrograph."""
    truth = simulate(kind, size=size, seed=seed, **options).truth
    return AtomGraph(truth.xy, truth.label, truth.bonds, truth.rings, (size, size)), truth


def complete_defects(truth, kind, n_rings):
    """Defects of ``kind`` whose rings all lie inside the image."""
    return [d for d in truth.defects if d.kind == kind and len(d.rings) == n_rings]


def expand(grammar, symbol):
    """Fully expand a symbol to the sorted tuple of ring sizes under it."""
    rule = grammar.symbols[symbol]
    if hasattr(rule, "word"):
        return (rule.size,)
    if hasattr(rule, "nodes"):
        return tuple(sorted(s for part in rule.nodes for s in expand(grammar, part)))
    return expand(grammar, rule.symbol)


@pytest.fixture(scope="module")
def defective():
    return atom_graph("graphene", size=512, seed=seed(1), stone_wales_density=SW_DENSITY, vacancy_density=VACANCY_DENSITY)


@pytest.fixture(scope="module")
def learned(defective):
    graph, _ = defective
    return induce_grammar([graph], name="graphene")


def test_stone_wales_and_vacancy_rules(defective, learned):
    graph, truth = defective
    g = learned.grammar
    assert isinstance(learned, InductionResult)
    n_sw = len(complete_defects(truth, "stone_wales", 4))
    n_vac = len(complete_defects(truth, "vacancy", 2))
    assert n_sw >= 3 and n_vac >= 2
    # One domain: the hexagon lattice.
    assert [(d.symbol, d.count) for d in g.domains] == [("R6", 1)]
    assert g.symbols["R6"].word == ("C",) * 6
    # Stone-Wales: two pentagons each bordering both heptagons, the heptagons sharing the rotated bond.
    sw_graph = canonical_motif(("R5", "R7", "R7", "R5"), [(0, 1), (0, 2), (1, 2), (3, 1), (3, 2)])
    sw = [m for m in g.motifs if (m.nodes, m.edges) == sw_graph]
    assert len(sw) == 1 and sw[0].level >= 2 and sw[0].count == n_sw
    assert expand(g, sw[0].name) == (5, 5, 7, 7)
    # Reconstructed single vacancy: a pentagon sharing a bond with a nonagon.
    v1 = [m for m in g.motifs if expand(g, m.name) == (5, 9)]
    assert len(v1) == 1 and v1[0].count == n_vac
    assert len(g.motifs) == 2
    assert learned.total_bits < learned.initial_bits
    assert [s.symbol for s in learned.history] == [m.name for m in g.motifs]
    assert all(s.gain_bits > 0 for s in learned.history)


def test_perfect_crystal_is_one_domain_rule():
    graph, truth = atom_graph("graphene", size=384, seed=seed(3), stone_wales_density=0.0, vacancy_density=0.0)
    assert not truth.defects
    result = induce_grammar([graph])
    g = result.grammar
    assert [(r.name, r.word) for r in g.rings] == [("R6", ("C",) * 6)]
    assert [(d.name, d.symbol, d.count, d.size) for d in g.domains] == [("D_R6", "R6", 1, len(truth.rings))]
    assert g.motifs == ()
    assert result.history == ()


def test_counts_sum_over_micrographs(defective):
    graph, truth = defective
    other, other_truth = atom_graph("graphene", size=448, seed=seed(2), stone_wales_density=SW_DENSITY,
                                    vacancy_density=VACANCY_DENSITY)
    result = induce_grammar([graph, other])
    g = result.grammar
    n_sw = sum(len(complete_defects(t, "stone_wales", 4)) for t in (truth, other_truth))
    n_vac = sum(len(complete_defects(t, "vacancy", 2)) for t in (truth, other_truth))
    assert [(d.symbol, d.count) for d in g.domains] == [("R6", 2)]
    assert sorted((expand(g, m.name), m.count) for m in g.motifs) == [((5, 5, 7, 7), n_sw), ((5, 9), n_vac)]
    assert len(result.data_bits_per_graph) == 2
    for graph_k, bits in zip((graph, other), result.data_bits_per_graph, strict=True):
        assert parse_graph(g, graph_k).data_bits == pytest.approx(bits, rel=1e-12)


def test_graphs_are_read_once_one_at_a_time(defective):
    # a generator of graphs (the pipeline loads each from its cache) gives the grammar a list gives, and
    # induction keeps no reference to a graph but the one it is reading
    import gc
    import weakref

    graph, _ = defective
    other = atom_graph("graphene", size=448, seed=seed(2), stone_wales_density=SW_DENSITY,
                       vacancy_density=VACANCY_DENSITY)[0]
    refs, alive_earlier = [], []

    def stream():
        for g in (graph, other, graph):
            copy = g.with_tokens(g.tokens)
            refs.append(weakref.ref(copy))
            yield copy
            del copy
            gc.collect()
            alive_earlier.append(sum(ref() is not None for ref in refs[:-1]))

    result = induce_grammar(stream())
    assert result.grammar.to_text() == induce_grammar([graph, other, graph]).grammar.to_text()
    assert alive_earlier == [0, 0, 0]


def two_sublattice(graph):
    """The graph's atoms tokenised by sublattice ("B"/"N", an h-BN-like compound): every hexagon reads
    B N B N B N, so its word carries one bit per atom."""
    import networkx as nx

    colour = nx.bipartite.color(nx.Graph(graph.bonds.tolist()))
    return graph.with_tokens(np.array(["B" if colour[i] else "N" for i in range(graph.n_atoms)]))


def test_a_word_earns_its_rule_and_rare_words_fall_back_to_the_wildcard():
    graph, _ = atom_graph("graphene", size=256, seed=seed(4), stone_wales_density=0.0, vacancy_density=0.0)
    compound = two_sublattice(graph)
    tokens = compound.tokens.astype("<U2")
    centre = int(np.argmin(np.hypot(*(graph.xy - 128.0).T)))
    tokens[centre] = "X"  # a dopant: its three hexagons have a word seen only three times
    doped = graph.with_tokens(tokens)
    # the sublattice order earns a word (one bit per atom saved); the dopant's word, seen 3 < 4 times, cannot
    g = induce_grammar([doped], min_count=4).grammar
    assert [(r.name, r.word) for r in g.rings if not r.is_wildcard] == [("R6", ("B", "N") * 3)]
    assert [(r.name, r.size, r.count) for r in g.rings if r.is_wildcard] == [("R6_any", 6, 3)]
    assert {t.name for t in g.tokens} == {"B", "N", "X"}
    symbols = parse_graph(g, doped).ring_symbols
    assert sorted(np.flatnonzero(symbols == "R6_any").tolist()) == sorted(
        k for k, ring in enumerate(doped.rings) if centre in ring
    )
    # Frequent enough for a rule (min_count 2), the dopant's word still does not pay: naming it costs more
    # bits than spelling the one token its rings add.
    assert [r.count for r in induce_grammar([doped]).grammar.rings if r.is_wildcard] == [3]
    # One token: a word and the wildcard cost the same, and the word is kept.
    assert [(r.name, r.word) for r in induce_grammar([graph]).grammar.rings] == [("R6", ("C",) * 6)]


def test_deterministic(defective, learned):
    graph, _ = defective
    again = induce_grammar([graph], name="graphene")
    assert again.grammar == learned.grammar
    assert again.grammar.to_text() == learned.grammar.to_text()
    assert again.total_bits == learned.total_bits


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_ring_order_does_not_matter(seed):
    graph, _ = atom_graph("graphene", size=256, seed=offset_seed(0), stone_wales_density=0.004, vacancy_density=0.002)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(graph.rings))
    rings = tuple(graph.rings[k][s:] + graph.rings[k][:s] for k, s in zip(order, rng.integers(0, 5, len(order))))
    permuted = AtomGraph(graph.xy, graph.tokens, graph.bonds, rings, graph.image_shape)
    assert induce_grammar([permuted]).grammar.canonical() == induce_grammar([graph]).grammar.canonical()


def test_amorphous_network_learns_many_motifs():
    graph, _ = atom_graph("crn", size=256, seed=seed(0))
    result = induce_grammar([graph], max_motif_size=4)
    g = result.grammar
    assert len(g.motifs) >= 2
    assert all(m.size <= 4 for m in g.motifs)
    assert all(m.count >= 2 for m in g.motifs)
    assert result.total_bits < result.initial_bits
    assert g.validate() is g


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_count": 0}, "min_count"),
        ({"max_motif_size": 1}, "max_motif_size"),
        ({"min_domain_size": 0}, "min_domain_size"),
        ({"beam_width": 0}, "beam_width"),
    ],
)
def test_bad_arguments(defective, kwargs, message):
    with pytest.raises(GrammarError, match=message):
        induce_grammar([defective[0]], **kwargs)


def test_needs_tokens(defective):
    graph, _ = defective
    with pytest.raises(GrammarError, match="no micrographs"):
        induce_grammar([])
    with pytest.raises(GrammarError, match="without a token"):
        induce_grammar([graph.with_tokens(np.full(graph.n_atoms, ""))])


def test_min_domain_size(defective):
    graph, _ = defective
    huge = induce_grammar([graph], min_domain_size=10**6)
    assert huge.grammar.domains == ()
    assert huge.min_domain_size == 10**6
