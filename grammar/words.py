"""Which ring words earn a rule of their own: the ring vocabulary of a grammar, chosen by description length.

A ring rule is either an exact cyclic word of tokens (``R6 = ring(Mo S2 Mo S2 Mo S2)``), which fixes the
tokens of its atoms, or the wildcard of a size (``R5 = ring5(*)``), which says only the size; the atoms that
lie in wildcard rings alone have their tokens spelled out, once each (the data code of
:mod:`motifgram.grammar.parse`). Naming a word pays when it saves more token bits than it costs in rules,
symbols and structure: the sublattice order of a compound (every MoS2 hexagon alternates Mo and S2) earns a
word, while tokens that vary from ring to ring (a spurious second token on the distorted atoms next to
graphene's defects) do not: their words fall back to the size's wildcard, so the defects read ``R5``, ``R7``
and all hexagons form one domain.

:func:`choose_ring_words` searches, per ring size, how many of its words (most frequent first; only those
seen ``min_count`` times may) get rules, by coordinate descent over the sizes, scoring each choice by the
exact total description length after the ring and domain rules (rules + data, before any motif), which
:func:`stage_bits` computes from arrays without building the symbol graphs.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from motifgram.engine.errors import GrammarError
from motifgram.engine.graph import Rings
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import DomainRule, MotifRule, RingRule, TokenSymbol, canonical_motif
from motifgram.grammar.parse import (
    DataCode,
    auto_min_domain_size,
    canonical_ring_order,
    distinct_ring_words,
    interior_graph,
    ring_contacts,
    structure_bits,
    usage_bits,
)

__all__ = ["RingWords", "RingVocabulary", "ring_words_of", "choose_ring_words", "stage_bits"]

log = logging.getLogger(__name__)

_MIN_GAIN_BITS = 1e-9  # a choice must shrink the description length by more than this to replace another
_MAX_PASSES = 4  # coordinate-descent passes over the ring sizes (it settles in one or two)


def _gamma_bits(n: np.ndarray) -> np.ndarray:
    """Elias gamma code length of ``n + 1`` (as :func:`motifgram.grammar.parse.structure_bits` uses), vectorised."""
    n = np.asarray(n, dtype=np.int64) + 1
    return 2.0 * np.floor(np.log2(n)) + 1.0


@dataclass
class RingWords:
    """What induction keeps of one micrograph's graph: ring words, ring adjacency and atom token classes.

    Attributes
    ----------
    distinct : list of tuple of str
        Distinct canonical ring words.
    index : (R,) int32 ndarray
        Word of each ring, rings in canonical order (:func:`~motifgram.grammar.parse.canonical_ring_order`).
    adjacency : (E, 2) int32 ndarray
        Rings sharing a bond, in canonical positions.
    contacts : (C, 2) int32 ndarray
        Rings sharing an atom (:func:`~motifgram.grammar.parse.ring_contacts`), in canonical positions.
    atoms : Counter
        ``(token, words)`` -> number of ring atoms with that token lying in exactly the rings of those words
        (``words``: sorted tuple of indices into ``distinct``): enough to count the free atoms of any choice.
    """

    distinct: list
    index: np.ndarray
    adjacency: np.ndarray
    contacts: np.ndarray
    atoms: Counter

    def free_tokens(self, word_class: np.ndarray) -> Counter:
        """``(class, token)`` -> free atoms (:func:`~motifgram.grammar.parse.free_atom_tokens`), given the class of
        each word of ``distinct`` (-1: the word has its own rule)."""
        out = Counter()
        for (token, words), n in self.atoms.items():
            classes = word_class[list(words)]
            if classes.min() >= 0:
                out[(int(classes.min()), token)] += n
        return out


def ring_words_of(k: int, graph) -> RingWords:
    """The :class:`RingWords` of micrograph number ``k`` (``k`` only names it in errors)."""
    tokens = np.asarray(graph.tokens).astype(str)
    if tokens.size and np.any(tokens == ""):
        raise GrammarError(
            f"induce_grammar: micrograph {k} has atoms without a token; assign tokens first (AtomGraph.with_tokens)"
        )
    graph = interior_graph(graph)
    distinct, index = distinct_ring_words(graph)
    rings = Rings.from_sequences(graph.rings)
    order = canonical_ring_order(rings)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    adjacency = rank[np.asarray(graph.ring_adjacency(), dtype=np.int64).reshape(-1, 2)]
    # Atoms grouped by their token and the set of words of the rings holding them.
    n_words = max(len(distinct), 1)
    pairs = np.unique(rings.atoms * n_words + np.repeat(index, rings.sizes))
    atom, word = pairs // n_words, pairs % n_words
    atoms = Counter()
    if len(atom):
        first = np.r_[True, atom[1:] != atom[:-1]]
        group = np.cumsum(first) - 1
        slot = np.arange(len(atom)) - np.flatnonzero(first)[group]
        table = np.full((int(group[-1]) + 1, int(slot.max()) + 1), -1, dtype=np.int64)
        table[group, slot] = word
        names, token_id = np.unique(tokens[atom[first]], return_inverse=True)
        rows, counts = np.unique(np.column_stack([token_id.reshape(-1), table]), axis=0, return_counts=True)
        for row, n in zip(rows.tolist(), counts.tolist(), strict=True):
            atoms[(names[row[0]], tuple(w for w in row[1:] if w >= 0))] += n
    return RingWords(distinct, index[order].astype(np.int32), adjacency.astype(np.int32),
                     rank[ring_contacts(rings)].astype(np.int32), atoms)


@dataclass(frozen=True)
class RingVocabulary:
    """A choice of ring rules and the domain rules that go with it (provisional names, before canonical ones).

    Attributes
    ----------
    rings : tuple of RingRule
        Exact-word rules ``R<size>_<k>`` (most frequent first) and the wildcards ``R<size>_any``.
    symbol_of : dict
        Canonical word -> its ring symbol (the exact rule, else the size's wildcard).
    domains : tuple of (str, str, int)
        ``(domain name, ring symbol, smallest region in rings)`` for every ring rule.
    """

    rings: tuple[RingRule, ...]
    symbol_of: dict
    domains: tuple[tuple[str, str, int], ...]

    @classmethod
    def build(cls, word_counts: Mapping[tuple[str, ...], int], exact, min_domain_size: int | None, *,
              without_domain: str | None = None) -> RingVocabulary:
        """The rules when the words in ``exact`` get their own rule and the others their size's wildcard.

        ``without_domain`` (a provisional ring symbol) leaves that symbol without a domain rule.
        """
        rings, symbol_of = [], {}
        for size in sorted({len(w) for w in word_counts}):
            group = _by_count(word_counts, size)
            named = [w for w in group if w in exact]
            for k, w in enumerate(named):
                symbol_of[w] = f"R{size}_{k}"
                rings.append(RingRule(symbol_of[w], w, word_counts[w]))
            rest = [w for w in group if w not in exact]
            if rest:
                for w in rest:
                    symbol_of[w] = f"R{size}_any"
                rings.append(RingRule.wildcard(f"R{size}_any", size, sum(word_counts[w] for w in rest)))
        domains = tuple(
            (f"D_{r.name}", r.name, min_domain_size if min_domain_size is not None else auto_min_domain_size(r.size))
            for r in sorted(rings, key=lambda r: r.name) if r.name != without_domain
        )
        return cls(tuple(rings), symbol_of, domains)


def _by_count(word_counts: Mapping[tuple[str, ...], int], size: int) -> list[tuple[str, ...]]:
    """The words of one size, most frequent first (ties by word)."""
    return sorted((w for w in word_counts if len(w) == size), key=lambda w: (-word_counts[w], w))


def stage_bits(micrographs: Sequence[RingWords], vocabulary: RingVocabulary, tokens: Sequence[TokenSymbol], *,
               min_count: int, max_motif_size: int, name: str = "grammar") -> tuple[float, list[DomainRule]]:
    """Total description length (rules + data) after the ring and domain rules of ``vocabulary`` and the
    *component motifs*, and the domain rules (those with at least one region).

    Component motifs estimate what motif induction will do with the rings outside domains: every connected
    component of them with 2..``max_motif_size`` rings whose labelled graph occurs at least ``min_count``
    times becomes one motif rule and each occurrence one node (an isolated defect, whole). Scoring the ring
    vocabulary with them makes a word pay for the defects it splits into kinds that no longer repeat.

    Computed on arrays (plus one canonical form per component), with the data code of
    :mod:`motifgram.grammar.parse`: regions are connected components of equally labelled rings (sharing a
    bond, or an atom where neither shares a bond with its kind), and
    contracted edges are the distinct pairs of the nodes that rings end up in.
    """
    symbols = [r.name for r in vocabulary.rings]
    sid = {s: i for i, s in enumerate(symbols)}
    threshold = np.full(len(symbols), np.iinfo(np.int64).max, dtype=np.int64)
    for _, symbol, size in vocabulary.domains:
        threshold[sid[symbol]] = size
    code = DataCode.from_grammar(Grammar(name, 1, tuple(tokens), vocabulary.rings))
    regions = np.zeros(len(symbols), dtype=np.int64)
    members = np.zeros(len(symbols), dtype=np.int64)
    staged, occurrences, canon = [], Counter(), {}
    for m in micrographs:
        label = np.array([sid[vocabulary.symbol_of[w]] for w in m.distinct], dtype=np.int64)[m.index]
        n = len(label)
        a, b = m.adjacency[:, 0].astype(np.int64), m.adjacency[:, 1].astype(np.int64)
        same = label[a] == label[b]
        bonded = np.zeros(n, dtype=bool)
        bonded[a[same]] = bonded[b[same]] = True
        ca, cb = m.contacts[:, 0].astype(np.int64), m.contacts[:, 1].astype(np.int64)
        corner = (label[ca] == label[cb]) & ~bonded[ca] & ~bonded[cb]  # as parse._region_links joins rings
        ra, rb = np.concatenate([a, ca]), np.concatenate([b, cb])
        comp, comp_size = _components(n, ra, rb, np.concatenate([same, corner]))
        in_region = comp_size[comp] >= threshold[label]
        region_comps, region_of = np.unique(comp[in_region], return_inverse=True)
        node = np.arange(n, dtype=np.int64)
        node[in_region] = n + region_of.reshape(-1)
        region_label = np.zeros(len(region_comps), dtype=np.int64)
        region_label[region_of.reshape(-1)] = label[in_region]
        regions += np.bincount(region_label, minlength=len(symbols))
        members += np.bincount(region_label, weights=comp_size[region_comps], minlength=len(symbols)).astype(np.int64)
        free = ~in_region
        fcomp, fsize = _components(n, a, b, free[a] & free[b])
        found = _free_components(fcomp, fsize, free, a, b, label, symbols, max_motif_size, canon)
        occurrences.update(key for key, _ in found)
        free_tokens = m.free_tokens(code.ring_classes([vocabulary.symbol_of[w] for w in m.distinct]))
        staged.append((n, a, b, node, comp_size[region_comps], label, free, found, free_tokens))
    motif_keys = sorted(key for key, c in occurrences.items() if c >= min_count)
    motif_id = {key: k for k, key in enumerate(motif_keys)}
    usage = np.zeros(len(symbols) + len(motif_keys), dtype=np.int64)
    bits = []
    for n, a, b, node, region_size, label, free, found, free_tokens in staged:
        kept = [(motif_id[key], rings) for key, rings in found if key in motif_id]
        first = n + len(region_size)
        for k, (_, rings) in enumerate(kept):
            node[rings] = first + k
            free[rings] = False
        composite = np.concatenate([region_size, [len(rings) for _, rings in kept]]).astype(np.int64)
        u, v = node[a], node[b]
        keep = u != v
        width = first + len(kept)
        key = np.unique(np.minimum(u[keep], v[keep]) * width + np.maximum(u[keep], v[keep]))
        degree = np.bincount(np.concatenate([key // width, key % width]), minlength=width)[n:]
        n_nodes = int(free.sum()) + len(composite)
        usage[:len(symbols)] += np.bincount(label[free], minlength=len(symbols))
        usage[len(symbols):] += np.bincount([k for k, _ in kept], minlength=len(motif_keys)).astype(np.int64)
        bits.append(structure_bits(n_nodes, len(key))
                    + math.fsum((degree * np.log2(np.maximum(composite, 1))).tolist())
                    + math.fsum(_gamma_bits(region_size).tolist()) + code.free_token_bits(free_tokens))
    domains = [
        DomainRule(d_name, symbol, int(regions[sid[symbol]]), 2, int(members[sid[symbol]]))
        for d_name, symbol, _ in vocabulary.domains if regions[sid[symbol]]
    ]
    motifs = tuple(MotifRule(f"M_{k}", nodes, edges, int(occurrences[(nodes, edges)]), 2)
                   for k, (nodes, edges) in enumerate(motif_keys))
    counts = {s: int(u) for s, u in zip([*symbols, *(m.name for m in motifs)], usage.tolist(), strict=True)}
    counts.update({d.name: d.count for d in domains})
    grammar = Grammar(name, 1, tuple(tokens), vocabulary.rings, motifs, tuple(domains))
    total = grammar.description_length_bits() + math.fsum(bits) + usage_bits(counts, len(counts))
    return total, domains


def _components(n: int, a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of ``n`` nodes over the edges ``(a, b)[keep]``: component per node, sizes."""
    _, comp = connected_components(
        coo_matrix((np.ones(int(keep.sum()), dtype=np.int8), (a[keep], b[keep])), shape=(n, n)), directed=False
    )
    return comp, np.bincount(comp, minlength=1)


def _free_components(comp, size, free, a, b, label, symbols, max_size, canon) -> list:
    """``(canonical pattern, ring ids)`` of every component of free rings with 2..``max_size`` rings."""
    wanted = free & (size[comp] >= 2) & (size[comp] <= max_size)
    rings = np.flatnonzero(wanted)
    if not len(rings):
        return []
    rings = rings[np.argsort(comp[rings], kind="stable")]
    starts = np.flatnonzero(np.r_[True, comp[rings][1:] != comp[rings][:-1]])
    inner = wanted[a] & wanted[b] & (comp[a] == comp[b])
    edges_of: dict[int, list] = {}
    for x, y in zip(a[inner].tolist(), b[inner].tolist(), strict=True):
        edges_of.setdefault(int(comp[x]), []).append((x, y))
    out = []
    for group in np.split(rings, starts[1:]):
        members = group.tolist()
        where = {r: i for i, r in enumerate(members)}
        raw = (tuple(symbols[label[r]] for r in members),
               tuple(sorted((where[x], where[y]) for x, y in edges_of.get(int(comp[members[0]]), []))))
        if raw not in canon:
            canon[raw] = canonical_motif(*raw)
        out.append((canon[raw], group))
    return out


def choose_ring_words(micrographs: Sequence[RingWords], tokens: Sequence[TokenSymbol], *, min_count: int,
                      min_domain_size: int | None, max_motif_size: int,
                      name: str = "grammar") -> tuple[RingVocabulary, dict]:
    """The ring vocabulary with the shortest description after ring and domain rules.

    Per size, the number of its words (most frequent first, each seen at least ``min_count`` times) that get
    a rule; the other words of the size share its wildcard. Starts from every eligible word named and
    changes one size at a time to its best number while that shortens the total (coordinate descent); a tie
    keeps more words. With a single token a word and its wildcard cost the same, so every eligible word is
    kept without a search. Deterministic.

    Returns
    -------
    vocabulary : RingVocabulary
    gains : dict of str to float
        Provisional symbol -> the bits its rule saves (the total without it minus the total with it): a named
        word against its rings falling back to the wildcard, a domain rule against its regions staying
        separate rings. Wildcards are not in it (without them a micrograph has no parse), nor are words of a
        single token (they cost what the wildcard would).
    """
    word_counts = Counter()
    for m in micrographs:
        for w, n in zip(m.distinct, np.bincount(m.index, minlength=len(m.distinct)).tolist(), strict=True):
            word_counts[w] += n
    sizes = sorted({len(w) for w in word_counts})
    ranked = {s: _by_count(word_counts, s) for s in sizes}
    eligible = {s: sum(word_counts[w] >= min_count for w in ranked[s]) for s in sizes}
    cache: dict[tuple, float] = {}

    def named(c: Mapping[int, int]) -> frozenset:
        return frozenset(w for s in sizes for w in ranked[s][:c[s]])

    def total(exact: frozenset, without_domain: str | None = None) -> float:
        key = (exact, without_domain)
        if key not in cache:
            vocabulary = RingVocabulary.build(word_counts, exact, min_domain_size, without_domain=without_domain)
            cache[key] = stage_bits(micrographs, vocabulary, tokens, min_count=min_count,
                                    max_motif_size=max_motif_size, name=name)[0]
        return cache[key]

    choice = dict(eligible)
    single = len(tokens) <= 1  # a word then fixes nothing the wildcard does not: same cost, keep the words
    for _ in range(0 if single else _MAX_PASSES):
        changed = False
        for s in sizes:
            best_k, best = choice[s], total(named(choice))
            for k in range(eligible[s], -1, -1):
                bits = total(named({**choice, s: k}))
                if bits < best - _MIN_GAIN_BITS:
                    best_k, best = k, bits
            if best_k != choice[s]:
                choice[s], changed = best_k, True
        if not changed:
            break
    exact = named(choice)
    vocabulary = RingVocabulary.build(word_counts, exact, min_domain_size)
    base = total(exact)
    gains = {} if single else {vocabulary.symbol_of[w]: total(exact - {w}) - base for w in sorted(exact)}
    _, domains = stage_bits(micrographs, vocabulary, tokens, min_count=min_count, max_motif_size=max_motif_size,
                            name=name)
    gains.update({d.name: total(exact, without_domain=d.symbol) - base for d in domains})
    log.debug("ring words: %s of %s named per size (%d choices scored)", choice, eligible, len(cache))
    return vocabulary, gains
