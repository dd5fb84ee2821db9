"""Induce a motif grammar from micrographs by minimum description length (MDL).

:func:`induce_grammar` learns, from the atom graphs of one or more micrographs (with tokens):

1. **Ring rules, by MDL** (:mod:`motifgram.grammar.words`). Each ring's cyclic token word in dihedral
   canonical form. A word seen at least ``min_count`` times (over all micrographs) *may* become a ring rule;
   it does when naming it shortens the description (rules + data after domains and component motifs, below),
   otherwise it shares its size's wildcard (``R5 = ring5(*)``), whose atoms have their tokens spelled out. So
   the sublattice order of a compound earns a word, while a token that only marks distorted atoms next to
   defects leaves graphene's defect rings as ``R5``, ``R7``, and every micrograph parses.
2. **Domains first.** On each micrograph's ring-adjacency graph (nodes = rings with their symbol, edges =
   shared bonds), every connected region of one ring symbol (wildcards too) with at least
   ``min_domain_size`` rings (default ``1 + ring size``: a ring with its complete first shell, 7 for hexagons)
   is contracted into one frozen domain node; one rule per symbol, ``D_R6 = domain(R6)``, with count = number
   of regions and size = their members. *All* rings of the domain symbol in such a region join it, including
   those that border a defect; the rings of other symbols (and small islands of the domain symbol) are what
   motifs are learned from. So a Stone–Wales defect in graphene is exactly its 5-7-7-5 rings, touching the
   domain, and a perfect crystal costs a single domain rule.
3. **MDL merging** (in the spirit of SUBDUE and graph byte-pair encoding). Repeatedly: count every adjacent
   pair of symbols among the free (non-domain) top-level nodes; keep the ``beam_width`` best patterns and
   grow each occurrence by one adjacent free node (induced subgraphs, grouped by canonical labelled graph),
   keeping the best ``beam_width`` of each size, up to ``max_motif_size`` nodes. Beside them, every whole
   connected component of free nodes (up to ``max_motif_size``) is a candidate, grouped by its canonical
   graph: in a crystal these are the defects, so an isolated defect becomes one rule counted once per
   defect. Every candidate is scored by the exact change in total description length if its occurrences
   were contracted (greedy non-overlapping selection, :func:`~motifgram.grammar.parse.select_disjoint`). A
   pattern with more than 500 occurrences in a micrograph grows only from its non-overlapping ones (this
   bounds the search in large free regions; below that, growth is exhaustive and finds every occurrence).
   The best few candidates are re-scored over the occurrences found by the parser's matcher; the best one
   with at least ``min_count`` occurrences that shrinks the total is contracted with the parser's
   contraction, recorded as a motif rule (count = occurrences contracted, level = 1 + highest level of its
   parts), and the loop repeats until nothing shrinks the description length.

Total description length = rule bits (:meth:`Grammar.description_length_bits`) + data bits (the code of
:mod:`motifgram.grammar.parse`: node and edge counts, which nodes touch, attachment points, node symbols
from the add-½ stochastic grammar, domain sizes and the tokens of the atoms only wildcard rings hold).
Everything is sorted by content (ring order is canonicalised by atom ids, ties broken by canonical pattern),
so a given input always gives the same grammar, and permuting the rings of a micrograph gives the same
canonical grammar.

Cost: O(R) per ring vocabulary scored (a few per ring size for a compound; none with a single token, whose
words cost what the wildcards do); per merge, pair counting is O(edges among free nodes) and growth is
O(occurrences × degree) for the beam's patterns, which is small when defects are sparse in a crystal.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from motifgram.engine.errors import GrammarError
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import DomainRule, MotifRule, TokenSymbol, canonical_motif
from motifgram.grammar.parse import (
    DataCode,
    SymbolGraph,
    graph_data_bits,
    select_disjoint,
    structure_bits,
    usage_bits,
    without_cyclic_gc,
)
from motifgram.grammar.words import choose_ring_words, ring_words_of

__all__ = ["MergeStep", "InductionResult", "induce_grammar"]

log = logging.getLogger(__name__)

_MIN_GAIN_BITS = 1e-9  # a merge must shrink the description length by more than this
_EXHAUSTIVE_GROWTH = 500  # occurrences per micrograph up to which a pattern grows from all of them
_VERIFY = 4  # best beam candidates re-scored exactly with the matcher per merge


@dataclass(frozen=True)
class MergeStep:
    """One accepted merge of the MDL loop.

    Attributes
    ----------
    symbol : str
        The new motif's name in the returned (canonical) grammar.
    nodes, edges : tuple
        Its graph, canonical (as in :class:`~motifgram.grammar.rules.MotifRule`), with canonical names.
    count : int
        Occurrences contracted.
    level : int
        The motif's level.
    gain_bits : float
        Decrease of the total description length (> 0).
    """

    symbol: str
    nodes: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    count: int
    level: int
    gain_bits: float


@dataclass(frozen=True, eq=False)
class InductionResult:
    """The learned grammar and the description lengths behind it.

    Attributes
    ----------
    grammar : Grammar
        The grammar, in canonical form (:meth:`Grammar.canonical`): rings ``R6``/``R6a``.., wildcards
        ``R<n>_any``, motifs ``M1``.. in merge order, domains ``D_<symbol>``.
    rule_bits : float
        ``grammar.description_length_bits()``.
    data_bits : float
        Data bits of all micrographs under the grammar (equal to the sum of
        ``parse_graph(grammar, g, min_domain_size=...).data_bits`` over the inputs).
    data_bits_per_graph : tuple of float
        The same per micrograph, in input order.
    initial_bits : float
        Total description length after ring and domain rules, before any merge.
    history : tuple of MergeStep
        The merges in order (one per motif rule).
    min_domain_size : int or None
        The ``min_domain_size`` used (``None``: per symbol ``1 + ring size``); pass it to ``parse_graph``.
    gains_bits : dict of str to float
        Rule -> the bits it saved when it was chosen: an exact ring word and a domain against their absence
        when the ring vocabulary was chosen (:func:`~motifgram.grammar.words.choose_ring_words`), a motif its
        merge's gain. Wildcard rings are absent (every parse needs them).
    """

    grammar: Grammar
    rule_bits: float
    data_bits: float
    data_bits_per_graph: tuple[float, ...]
    initial_bits: float
    history: tuple[MergeStep, ...]
    min_domain_size: int | None
    gains_bits: dict = dataclasses.field(default_factory=dict)

    @property
    def total_bits(self) -> float:
        """Rule bits + data bits."""
        return self.rule_bits + self.data_bits


@dataclass
class _State:
    """One micrograph during induction."""

    sg: SymbolGraph
    extra_bits: float  # word bits of its wildcard rings (constant)


@dataclass
class _Candidate:
    key: tuple[tuple[str, ...], tuple[tuple[int, int], ...]]  # canonical (nodes, edges)
    instances: list[list[tuple[int, ...]]]  # per graph, all occurrences, sorted
    count: int = 0
    gain: float = -math.inf


def _validate_args(min_count, max_motif_size, min_domain_size, beam_width) -> None:
    def positive_int(name, value, low):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise GrammarError(f"induce_grammar: {name} must be an integer >= {low}, got {value!r}")

    positive_int("min_count", min_count, 1)
    positive_int("max_motif_size", max_motif_size, 2)
    positive_int("beam_width", beam_width, 1)
    if min_domain_size is not None:
        positive_int("min_domain_size", min_domain_size, 1)


@without_cyclic_gc
def induce_grammar(
    graphs: Iterable,
    *,
    name: str = "grammar",
    min_count: int = 2,
    max_motif_size: int = 6,
    min_domain_size: int | None = None,
    beam_width: int = 4,
) -> InductionResult:
    """Learn a stochastic motif grammar from atom graphs by MDL.

    Parameters
    ----------
    graphs : iterable of AtomGraph
        Micrographs with tokens; uses ``tokens`` ((N,) str), ``rings`` and ``ring_adjacency()``. Read once,
        one at a time: a generator that loads each graph keeps only one in memory (induction keeps ring
        words and adjacency arrays, and each micrograph's symbol graph after its domains are contracted).
    name : str
        The grammar's name.
    min_count : int
        Fewest occurrences (over all micrographs) for a ring word to get its own rule and for a motif.
    max_motif_size : int
        Largest motif pattern, in nodes (parts), searched per merge.
    min_domain_size : int or None
        Smallest connected region of one ring symbol that becomes a domain; ``None``: ``1 + ring size``.
    beam_width : int
        Patterns of each size kept for growth (SUBDUE's beam). Induction is deterministic: every tie is
        broken by content, so it takes no seed.

    Returns
    -------
    InductionResult
        ``.grammar`` is the learned (canonical) grammar; see :class:`InductionResult`.

    Raises
    ------
    GrammarError
        Bad arguments, no micrographs, or atoms without tokens.

    Examples
    --------
    >>> from motifgram.engine.graph import AtomGraph
    >>> from motifgram.engine.simulate import simulate
    >>> t = simulate("graphene", size=256, seed=0, stone_wales_density=0.0, vacancy_density=0.0).truth
    >>> g = AtomGraph(t.xy, t.label, t.bonds, t.rings, (256, 256))
    >>> result = induce_grammar([g], name="graphene")
    >>> [d.symbol for d in result.grammar.domains], result.grammar.motifs
    (['R6'], ())
    """
    _validate_args(min_count, max_motif_size, min_domain_size, beam_width)
    tokens, compact = _read_graphs(graphs)
    vocabulary, stage_gains = choose_ring_words(compact, tokens, min_count=min_count,
                                                min_domain_size=min_domain_size, max_motif_size=max_motif_size,
                                                name=name)
    code = DataCode.from_grammar(Grammar(name, 1, tokens, vocabulary.rings))
    states, domains = _contract_domains(compact, vocabulary, code)
    grammar = Grammar(name, 1, tokens, vocabulary.rings, (), tuple(domains))
    usage = Counter()
    for st in states:
        usage.update(st.sg.top_level_usage())
    initial_bits = grammar.description_length_bits() + _data_bits(states, usage, grammar)
    grammar, history = _merge_motifs(states, usage, grammar, min_count=min_count, max_motif_size=max_motif_size,
                                     beam_width=beam_width)

    grammar = grammar.validate()
    per_graph = _data_bits_per_graph(states, grammar)
    canonical = grammar.canonical()
    rename = _renaming(grammar, canonical)
    steps = tuple(
        MergeStep(rename[s], m.nodes, m.edges, count, level, gain)
        for (s, count, level, gain), m in zip(history, canonical.motifs, strict=True)
    )
    log.info("induced grammar %r: %d ring, %d motif, %d domain rules; %.1f -> %.1f bits", name,
             len(canonical.rings), len(canonical.motifs), len(canonical.domains), initial_bits,
             canonical.description_length_bits() + math.fsum(per_graph))
    return InductionResult(
        grammar=canonical,
        rule_bits=canonical.description_length_bits(),
        data_bits=math.fsum(per_graph),
        data_bits_per_graph=tuple(per_graph),
        initial_bits=initial_bits,
        history=steps,
        min_domain_size=min_domain_size,
        gains_bits={**{rename[s]: g for s, g in stage_gains.items() if s in rename},
                    **{step.symbol: step.gain_bits for step in steps}},
    )


def _read_graphs(graphs: Iterable) -> tuple[tuple[TokenSymbol, ...], list]:
    """The token symbols (with their shares over every atom) and each micrograph's ring words, reading the
    graphs once, one at a time."""
    token_counts = Counter()
    compact = []
    for k, g in enumerate(graphs):
        token_counts.update(np.asarray(g.tokens).astype(str).tolist())
        compact.append(ring_words_of(k, g))
    if not compact:
        raise GrammarError("induce_grammar: no micrographs given; pass at least one atom graph")
    n_tokens = sum(token_counts.values())
    return tuple(TokenSymbol(t, c / n_tokens) for t, c in sorted(token_counts.items())), compact


def _contract_domains(compact: list, vocabulary, code: DataCode) -> tuple[list, list[DomainRule]]:
    """Each micrograph's ring-adjacency graph in canonical ring order with its domains contracted at once (a
    crystal's symbol graph shrinks to a few nodes, so memory follows the disorder, not the number of
    micrographs), and the domain rules found. Frees each micrograph's ring words once its graph exists."""
    n_regions, n_members = Counter(), Counter()
    states = []
    for i in range(len(compact)):
        c, compact[i] = compact[i], None
        symbols = [vocabulary.symbol_of[w] for w in c.distinct]
        extra = code.free_token_bits(c.free_tokens(code.ring_classes(symbols)))
        sg = SymbolGraph(list(map(symbols.__getitem__, c.index.tolist())), c.adjacency, c.contacts)
        for d_name, symbol, threshold in vocabulary.domains:
            regions = sg.regions(symbol, threshold)
            sg.contract(regions, d_name, 2, domain=True)
            n_regions[d_name] += len(regions)
            n_members[d_name] += sum(map(len, regions))
        states.append(_State(sg, extra))
    domains = []
    for d_name, symbol, threshold in vocabulary.domains:
        if n_regions[d_name]:
            domains.append(DomainRule(d_name, symbol, n_regions[d_name], 2, n_members[d_name]))
            log.debug("domain %s = domain(%s): %d regions, %d rings (min size %d)", d_name, symbol,
                      n_regions[d_name], n_members[d_name], threshold)
    return states, domains


def _merge_motifs(states: list, usage: Counter, grammar: Grammar, *, min_count: int, max_motif_size: int,
                  beam_width: int) -> tuple[Grammar, list]:
    """Merge the pattern that shortens the description most into a motif rule, contracting its instances in
    every micrograph, until none does. Returns the grammar with its motif rules and the merge history
    ``(symbol, count, level, gain_bits)``; ``usage`` is updated in place."""
    history = []
    canon_cache: dict = {}
    while True:
        best = _best_merge(states, usage, grammar, min_count=min_count, max_size=max_motif_size,
                           beam_width=beam_width, canon_cache=canon_cache)
        if best is None:
            return grammar, history
        nodes, edges = best.key
        level = 1 + max(grammar.level_of(s) for s in nodes)
        symbol = _fresh(f"M{len(grammar.motifs) + 1}", grammar)
        for st, selected in zip(states, best.instances, strict=True):
            st.sg.contract(selected, symbol, level)
        for s, mult in Counter(nodes).items():
            usage[s] -= mult * best.count
        usage[symbol] = best.count
        rule = MotifRule(symbol, nodes, edges, best.count, level)
        grammar = dataclasses.replace(grammar, motifs=grammar.motifs + (rule,))
        history.append((symbol, best.count, level, best.gain))
        log.debug("merge %s = %s (level %d): %d occurrences, -%.1f bits", symbol, best.key, level, best.count,
                  best.gain)


def _fresh(name: str, grammar: Grammar) -> str:
    while name in grammar.symbols:
        name += "_"
    return name


def _renaming(old: Grammar, new: Grammar) -> dict[str, str]:
    """Old rule name -> canonical name: rings by word, motifs by order (``canonical`` keeps it), domains by
    their (renamed) symbol."""
    word = {r.word: r.name for r in new.rings}
    out = {r.name: word[r.word] for r in old.rings}
    out.update({a.name: b.name for a, b in zip(old.motifs, new.motifs, strict=True)})
    domain = {d.symbol: d.name for d in new.domains}
    out.update({d.name: domain[out[d.symbol]] for d in old.domains})
    return out


def _data_bits(states: Sequence[_State], usage: Counter, grammar: Grammar) -> float:
    """Data bits of all micrographs, symbol probabilities estimated from the current top-level usage."""
    n_symbols = len(grammar.rings) + len(grammar.motifs) + len(grammar.domains)
    return (math.fsum(structure_bits(st.sg.n_alive, st.sg.n_edges) + st.sg.attach_bits() + st.sg.domain_bits()
                      + st.extra_bits for st in states)
            + usage_bits(usage, n_symbols))


def _data_bits_per_graph(states: Sequence[_State], grammar: Grammar) -> list[float]:
    code = DataCode.from_grammar(grammar)
    return [graph_data_bits(st.sg, code, st.extra_bits) for st in states]


# --------------------------------------------------------------------------------------------------------------
# Candidate search


def _pattern_key(sg: SymbolGraph, inst: tuple[int, ...], cache: dict):
    """Canonical (nodes, edges) of the subgraph induced by ``inst`` (memoised on its raw form)."""
    labels = tuple(sg.labels[v] for v in inst)
    edges = tuple((a, b) for a in range(len(inst)) for b in range(a + 1, len(inst)) if inst[b] in sg.adj[inst[a]])
    raw = (labels, edges)
    key = cache.get(raw)
    if key is None:
        key = cache[raw] = canonical_motif(labels, edges)
    return key


def _pairs(states: Sequence[_State]) -> dict:
    """Every edge between free nodes, grouped by its (sorted) label pair."""
    groups: dict = {}
    n = len(states)
    for gi, st in enumerate(states):
        sg = st.sg
        for u in sg.alive_nodes():
            if sg.is_domain[u]:
                continue
            for v in sg.adj[u]:
                if v > u and sg.is_free(v):
                    a, b = sg.labels[u], sg.labels[v]
                    key = ((a, b) if a <= b else (b, a), ((0, 1),))
                    groups.setdefault(key, [set() for _ in range(n)])[gi].add((u, v))
    return groups


def _components(states: Sequence[_State], max_size: int, cache: dict) -> dict:
    """Every connected component of free nodes with 2..``max_size`` nodes, grouped by canonical pattern.

    In a crystal whose domain has absorbed the background, these are the defects, whole: a Stone–Wales
    defect's four rings, a vacancy's 5-9 pair. Offered as candidates beside the grown pairs, so that an
    isolated defect becomes one rule counted once per defect rather than being assembled from pairs whose
    greedy selection can split neighbouring defects.
    """
    groups: dict = {}
    n = len(states)
    for gi, st in enumerate(states):
        sg = st.sg
        seen: set[int] = set()
        for v in sg.alive_nodes():
            if v in seen or sg.is_domain[v]:
                continue
            seen.add(v)
            stack, members = [v], [v]
            while stack and len(members) <= max_size:
                for w in sg.adj[stack.pop()]:
                    if w not in seen and sg.is_free(w):
                        seen.add(w)
                        stack.append(w)
                        members.append(w)
            while stack:  # too large: mark the rest of the component seen without recording it
                for w in sg.adj[stack.pop()]:
                    if w not in seen and sg.is_free(w):
                        seen.add(w)
                        stack.append(w)
                        members.append(w)
            if 2 <= len(members) <= max_size:
                inst = tuple(sorted(members))
                groups.setdefault(_pattern_key(sg, inst, cache), [set() for _ in range(n)])[gi].add(inst)
    return groups


def _grow(states: Sequence[_State], beam: Sequence[_Candidate], cache: dict) -> dict:
    """Extend the occurrences of the beam's patterns by one adjacent free node; group by canonical pattern.

    A pattern with at most :data:`_EXHAUSTIVE_GROWTH` occurrences in a micrograph grows from all of them, so
    every occurrence of the grown pattern is found; one with more grows only from its disjoint selection,
    which keeps each step linear in the number of free nodes (large free regions: amorphous networks,
    crystals without domains).
    """
    groups: dict = {}
    n = len(states)
    for gi, st in enumerate(states):
        sg = st.sg
        seen: set[tuple[int, ...]] = set()
        for cand in beam:
            instances = cand.instances[gi]
            if len(instances) > _EXHAUSTIVE_GROWTH:
                instances = select_disjoint(instances)
            for inst in instances:
                members = set(inst)
                around = set()
                for m in inst:
                    around |= sg.adj[m]
                for x in around - members:
                    if not sg.is_free(x):
                        continue
                    new = tuple(sorted(inst + (x,)))
                    if new in seen:
                        continue
                    seen.add(new)
                    groups.setdefault(_pattern_key(sg, new, cache), [set() for _ in range(n)])[gi].add(new)
    return groups


def _score(groups: dict, states: Sequence[_State], usage: Counter, grammar: Grammar, min_count: int,
           base_usage_bits: float, rule_cost) -> list[_Candidate]:
    """Candidates with at least ``min_count`` disjoint occurrences, with their exact description-length gain."""
    n_symbols = len(grammar.rings) + len(grammar.motifs) + len(grammar.domains)
    out = []
    for key, per_graph in groups.items():
        instances = [sorted(s) for s in per_graph]
        selected = [select_disjoint(insts) for insts in instances]
        count = sum(map(len, selected))
        if count < min_count:
            continue
        delta = 0.0
        for st, sel in zip(states, selected, strict=True):
            if not sel:
                continue
            d_nodes, d_edges, d_attach = st.sg.contraction_delta(sel)
            v, e = st.sg.n_alive, st.sg.n_edges
            delta += structure_bits(v + d_nodes, e + d_edges) - structure_bits(v, e) + d_attach
        new_usage = usage.copy()
        for s, mult in Counter(key[0]).items():
            new_usage[s] -= mult * count
        new_usage["\0new"] = count
        delta += usage_bits(new_usage, n_symbols + 1) - base_usage_bits
        delta += rule_cost(key, count)
        out.append(_Candidate(key, instances, count, -delta))
    return out


def _best_merge(states, usage, grammar, *, min_count, max_size, beam_width, canon_cache):
    """The merge that shrinks the description length most, or None.

    The beam search ranks patterns by their gain over the occurrences it enumerated; the best few are then
    re-scored exactly over the occurrences the parser's matcher finds (the same ones whenever growth was
    exhaustive). Returns a candidate whose ``instances`` are the disjoint occurrences to contract.
    """
    base_rule_bits = grammar.description_length_bits()
    n_symbols = len(grammar.rings) + len(grammar.motifs) + len(grammar.domains)
    base_usage_bits = usage_bits(usage, n_symbols)
    rule_cache: dict = {}

    def rule_cost(key, count):
        nodes, edges = key
        k = (len(nodes), len(edges), count)
        if k not in rule_cache:
            trial = MotifRule("M_trial_", nodes, edges, count, 1 + max(grammar.level_of(s) for s in nodes))
            extended = dataclasses.replace(grammar, motifs=grammar.motifs + (trial,))
            rule_cache[k] = extended.description_length_bits() - base_rule_bits
        return rule_cache[k]

    def score(groups):
        return sorted(_score(groups, states, usage, grammar, min_count, base_usage_bits, rule_cost), key=_rank)

    ranked: list[_Candidate] = []
    groups = _pairs(states)
    for size in range(2, max_size + 1):
        scored = score(groups)
        if not scored:
            break
        ranked.extend(scored[:beam_width])
        if size < max_size:
            groups = _grow(states, scored[:beam_width], canon_cache)
    ranked.extend(score(_components(states, max_size, canon_cache)))
    ranked.sort(key=_rank)
    for cand in ranked[:_VERIFY]:
        if cand.gain <= _MIN_GAIN_BITS:
            break
        nodes, edges = cand.key
        exact = score({cand.key: [set(st.sg.occurrences(nodes, edges)) for st in states]})
        if exact and exact[0].gain > _MIN_GAIN_BITS:
            best = exact[0]
            best.instances = [select_disjoint(insts) for insts in best.instances]
            return best
    return None


def _rank(c: _Candidate):
    return (-c.gain, c.key)
