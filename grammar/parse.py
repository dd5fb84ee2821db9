"""Apply a motif grammar to a micrograph's atom graph: the parse tree, its counts and its description length.

Parsing (:func:`parse_graph`) runs the grammar's rules in their order on the ring-adjacency graph:

1. **Rings.** Each ring's cyclic token word, in dihedral canonical form, gets the symbol of the ring rule with
   that word; else the wildcard rule of its size (``ring5(*)``); else it is an *unknown ring*, a level-1 leaf
   named ``R<size>?`` that no rule mentions (it is costed with an escape code, see below).
2. **Domains are marked first.** Connected regions (rings sharing a bond; rings that share no bond with a ring of
   their symbol join by shared atoms, so a line of 4-rings meeting at corners, as at the 4|4P mirror-twin
   boundary of a TMD, is one) of a domain rule's ring symbol with at least
   ``min_domain_size`` rings (default: ``1 + ring size``, the smallest region that can hold a ring together
   with its complete first shell of edge-sharing neighbours: 7 for hexagons) become one frozen domain node
   each. Frozen nodes take no part in motif matching, so motifs cannot eat into a crystal; rings of the
   domain symbol outside such regions stay available to motifs. Induction makes the same split.
3. **Motifs** in rule order: every induced, label-preserving occurrence of the rule's graph among the free
   top-level nodes (:meth:`SymbolGraph.occurrences`), taken greedily without overlap in canonical order
   (:func:`select_disjoint`), each contracted into one node (:meth:`SymbolGraph.contract`) whose "touch"
   edges are the union of its parts' outside edges. Domains whose symbol is a motif are found after all
   motifs, the same way as ring domains.
4. **Root.** The remaining top-level nodes and the atoms in no ring hang under one root node.

:mod:`motifgram.grammar.induce` uses the same :class:`SymbolGraph`, matcher and contraction, and the same
data code (:class:`DataCode`), so parsing a training micrograph with its own grammar reproduces the
induction's final graph and bits exactly.

The data code (bits to describe a micrograph's top-level symbol graph given the grammar)
-----------------------------------------------------------------------------------------
With ``V`` top-level nodes, ``E`` top-level edges (simple, undirected) and ``k_v`` the number of rings
under node ``v`` (1 for a ring, the member count for a domain)::

    bits = γ(V) + γ(E) + log2 C(V(V-1)/2, E)        which pairs of nodes touch (uniform over graphs)
         + Σ_v deg(v) · log2 k_v                     which part of a composite node each touch attaches to
         + Σ_v −log2 p(symbol_v)                     the node symbols, from the stochastic grammar
         + Σ_domain nodes γ(k_v)                     each domain's size
         + Σ_classes KT(token counts of its atoms)   the tokens of the free atoms (below), each atom once
         + Σ_unknown rings γ(size)                   the size of every ring no rule matches

A ring whose symbol is an exact word fixes the tokens of its atoms; a wildcard (or unknown) ring says only
its size, so the tokens of the *free* atoms, those lying in such rings alone, are spelled out, once per
atom however many rings hold it. A free atom belongs to the class of the rarest wildcard (or unknown) ring
holding it, and each class's tokens are coded by the Krichevsky–Trofimov mixture (:func:`kt_bits`), an
adaptive code that needs no parameters: what the tokens of, say, pentagons cost follows their own
frequencies there. A word therefore earns its own rule only when naming it saves more than it costs in symbols
and structure (:mod:`motifgram.grammar.induce` chooses the ring rules by this total).
Here ``γ(n) = 2⌊log2(n+1)⌋ + 1`` (Elias gamma of n+1, the code of :meth:`Grammar.description_length_bits`).
Symbol probabilities are add-½ estimates from the *top-level usage* ``u`` of each of the grammar's ``K`` ring,
motif and domain symbols, with one escape slot for unknown rings::

    p(s) = (u_s + ½) / (U + ½(K + 1)),   p(unknown) = ½ / (U + ½(K + 1)),   U = Σ u_s

and ``u`` derives from the rule counts alone: a domain's usage is its count; a motif's is its count minus its
uses inside later motifs and domains; a ring's is its count minus its uses inside motifs and the members of
its domains (``DomainRule.size``). ``bits_per_atom`` divides by the number of atoms.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import lark
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from motifgram.engine.errors import GrammarError
from motifgram.engine.graph import Rings
from motifgram.engine.uniq import unique_pairs
from motifgram.grammar.rules import canonical_ring_word

if TYPE_CHECKING:
    from motifgram.grammar.model import Grammar

__all__ = [
    "ParseNode",
    "ParseResult",
    "SymbolGraph",
    "DataCode",
    "parse_graph",
    "select_disjoint",
    "ring_words",
    "distinct_ring_words",
    "canonical_ring_order",
    "ring_contacts",
    "free_atom_tokens",
    "kt_bits",
    "graph_data_bits",
    "structure_bits",
    "usage_bits",
    "auto_min_domain_size",
    "unknown_ring_symbol",
    "interior_graph",
    "ROOT_SYMBOL",
]

log = logging.getLogger(__name__)

_NO_NEIGHBOURS: frozenset[int] = frozenset()  # the neighbours of every absorbed node

ROOT_SYMBOL = "micrograph"
"""Symbol of the root node of every parse tree."""


def unknown_ring_symbol(size: int) -> str:
    """Symbol of a ring that no rule of the grammar matches: ``R<size>?`` (not a grammar name)."""
    return f"R{size}?"


def interior_graph(graph):
    """``graph`` without its border-flagged rings (:meth:`motifgram.engine.graph.AtomGraph.interior`); a graph
    that flags none (or has no ``ring_border``) is returned as it is."""
    border = getattr(graph, "ring_border", None)
    return graph.interior() if border is not None and np.any(border) else graph


def _ring_labels(grammar: Grammar, words) -> list[str]:
    """The ring symbol of each canonical word: its ring rule, else its size's wildcard, else unknown."""
    exact, wild = ring_symbol_table(grammar)
    return [exact.get(w) or wild.get(len(w)) or unknown_ring_symbol(len(w)) for w in words]


def auto_min_domain_size(ring_size: int) -> int:
    """Default smallest domain: ``1 + ring_size`` rings, a ring plus its complete first shell (7 for hexagons)."""
    return 1 + int(ring_size)


def _gamma_bits(n: int) -> float:
    """Elias gamma code length of ``n + 1`` in bits (a universal code for integers n >= 0)."""
    return float(2 * (int(n) + 1).bit_length() - 1)


def _log2_comb(n: int, k: int) -> float:
    """log2 of the binomial coefficient C(n, k) (0 <= k <= n)."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2.0)


def structure_bits(n_nodes: int, n_edges: int) -> float:
    """Bits for the top-level graph's node and edge counts and which node pairs touch.

    ``γ(V) + γ(E) + log2 C(V(V-1)/2, E)``; see the module docstring.
    """
    pairs = n_nodes * (n_nodes - 1) // 2
    return _gamma_bits(n_nodes) + _gamma_bits(n_edges) + _log2_comb(pairs, n_edges)


def usage_bits(usage: Mapping[str, int], n_symbols: int) -> float:
    """Bits for the symbols of all top-level nodes when each symbol ``s`` is used ``usage[s]`` times.

    The add-½ code of :class:`DataCode` with its probabilities estimated from ``usage`` itself (as during
    induction): ``-Σ_s u_s log2((u_s + ½) / (U + ½(n_symbols + 1)))``.
    """
    total = sum(usage.values()) + 0.5 * (n_symbols + 1)
    return -math.fsum(u * math.log2((u + 0.5) / total) for u in usage.values() if u > 0)


# --------------------------------------------------------------------------------------------------------------
# Ring words


def ring_words(graph) -> list[tuple[str, ...]]:
    """The dihedral canonical token word of every ring of ``graph``, in ring order.

    Parameters
    ----------
    graph : AtomGraph
        Uses ``graph.tokens`` ((N,) str) and ``graph.rings``.

    Returns
    -------
    list of tuple of str
        One canonical word (:func:`~motifgram.grammar.rules.canonical_ring_word`) per ring; rings with the
        same word share one tuple.
    """
    words, index = distinct_ring_words(graph)
    return list(map(words.__getitem__, index.tolist()))


def distinct_ring_words(graph) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """The distinct canonical ring words of ``graph`` and which one each ring has.

    Returns
    -------
    words : list of tuple of str
        Distinct canonical words (:func:`~motifgram.grammar.rules.canonical_ring_word`), by ring size, then
        by the first raw word (token ids in sorted name order) that gives them.
    index : (R,) int64 ndarray
        ``words[index[k]]`` is ring ``k``'s word.

    Only the distinct raw words (rows of token ids) are canonicalised in Python: as many as there are
    different words, not rings (one for a crystal of a single token).
    """
    rings = Rings.from_sequences(graph.rings)
    names, token_id = np.unique(np.asarray(graph.tokens).astype(str), return_inverse=True)
    names = names.tolist()
    n_tokens = max(len(names), 1)
    sizes = rings.sizes
    starts = rings.offsets[:-1]
    index = np.zeros(len(sizes), dtype=np.int64)
    words: list[tuple[str, ...]] = []
    position: dict[tuple[str, ...], int] = {}
    for m in np.unique(sizes).tolist():
        idx = np.flatnonzero(sizes == m)
        rows = token_id[rings.atoms[starts[idx, None] + np.arange(m)]]
        if n_tokens ** m < 2**62:  # one integer per row; same grouping as unique rows, much faster
            key = rows @ (n_tokens ** np.arange(m - 1, -1, -1, dtype=np.int64))
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            raw = rows[first]
        else:
            raw, inverse = np.unique(rows, axis=0, return_inverse=True)
        slot = np.empty(len(raw), dtype=np.int64)
        for k, row in enumerate(raw.tolist()):
            word = canonical_ring_word([names[t] for t in row])
            slot[k] = position.setdefault(word, len(position))
            if slot[k] == len(words):
                words.append(word)
        index[idx] = slot[inverse.reshape(-1)]
    return words, index


def free_atom_tokens(rings, ring_class: np.ndarray, tokens) -> Counter:
    """``(class, token)`` -> number of *free* ring atoms: atoms in at least one ring and in no exact-word ring.

    Parameters
    ----------
    rings : Rings or sequence of sequences of int, length R
        Atom ids of each ring.
    ring_class : (R,) int ndarray
        -1 for a ring whose symbol fixes its word, else its class (:meth:`DataCode.ring_classes`); a free atom
        belongs to the lowest class among its rings.
    tokens : (N,) str array
        Token of each atom.

    Returns
    -------
    Counter
        What the data code spells out (each free atom once; see the module docstring).
    """
    rings = Rings.from_sequences(rings)
    tokens = np.asarray(tokens).astype(str)
    entry_class = np.repeat(np.asarray(ring_class, dtype=np.int64), rings.sizes)
    big = np.iinfo(np.int64).max
    lowest = np.full(len(tokens), big, dtype=np.int64)
    np.minimum.at(lowest, rings.atoms, np.where(entry_class < 0, big, entry_class))
    determined = np.zeros(len(tokens), dtype=bool)
    determined[rings.atoms[entry_class < 0]] = True
    free = np.flatnonzero((lowest < big) & ~determined)
    names, token_id = np.unique(tokens[free], return_inverse=True)
    keys, counts = np.unique(np.column_stack([lowest[free], token_id.reshape(-1)]), axis=0, return_counts=True)
    return Counter({(int(c), names[t]): int(n) for (c, t), n in zip(keys.tolist(), counts.tolist(), strict=True)})


def ring_contacts(rings) -> np.ndarray:
    """(C, 2) int64: every pair ``i < j`` of rings that share at least one atom (a bond or a corner), once.

    Parameters
    ----------
    rings : Rings or sequence of sequences of int
    """
    rings = Rings.from_sequences(rings)
    entry_ring = np.repeat(np.arange(len(rings), dtype=np.int64), rings.sizes)
    order = np.lexsort((entry_ring, rings.atoms))
    atom, ring = rings.atoms[order], entry_ring[order]
    pairs = []
    for k in range(1, int(np.bincount(atom).max(initial=1))):  # rings around an atom, pairwise
        same = atom[k:] == atom[:-k]
        pairs.append(np.stack([ring[:-k][same], ring[k:][same]], axis=1))
    pairs = np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)
    return unique_pairs(np.sort(pairs, axis=1), len(rings))


def canonical_ring_order(rings: Sequence[Sequence[int]]) -> np.ndarray:
    """(R,) int64 permutation sorting rings by their sorted atom tuples: independent of the input ring order.

    Ties keep the input order (a stable sort), and a ring whose sorted atoms are a prefix of another's comes
    first, as when sorting the tuples themselves.
    """
    rings = Rings.from_sequences(rings)
    if len(rings) == 0:
        return np.empty(0, dtype=np.int64)
    big = np.iinfo(np.int64).max
    keys = np.sort(rings.padded(fill=big), axis=1)
    keys[keys == big] = -1  # shorter rings first among equal prefixes
    return np.lexsort(keys.T[::-1]).astype(np.int64)


# --------------------------------------------------------------------------------------------------------------
# The symbol graph shared by induction and parsing


class SymbolGraph:
    """The mutable graph of top-level symbols of one micrograph, contracted step by step.

    Node ids ``0 .. R-1`` are the rings (in the order given); contraction appends new nodes. A node is *alive*
    while it is top-level; a *domain* node is frozen (never part of a motif occurrence). Edges join alive
    nodes only: two rings share a bond, composite nodes touch when any of their parts do.

    Attributes (per node id, lists)
    -------------------------------
    labels : str
        The node's symbol.
    levels : int
        1 for rings, the rule's level for motifs and domains.
    n_rings : int
        Number of rings under the node (``k_v`` of the data code).
    parts : tuple of int
        Child node ids (empty for rings), ascending.
    parent : int
        The node that contracted this one, or -1 while it is top-level.
    adj : set of int
        Current neighbours (empty once absorbed).
    is_domain : bool
        Whether the node is a (frozen) domain.
    n_edges : int
        Number of edges among alive nodes.
    """

    def __init__(self, ring_labels: Sequence[str], ring_edges: np.ndarray, ring_contacts: np.ndarray | None = None):
        """Build the ring-adjacency graph.

        Parameters
        ----------
        ring_labels : sequence of str, length R
            Symbol of each ring.
        ring_edges : (E, 2) int array
            Pairs of ring indices sharing a bond, each pair once.
        ring_contacts : (C, 2) int array, optional
            Pairs of ring indices sharing an atom (:func:`ring_contacts`): they may join the rings of a domain
            (:meth:`regions`), never the edges of the graph.
        """
        n = len(ring_labels)
        self.labels: list[str] = list(ring_labels)
        self.levels: list[int] = [1] * n
        self.n_rings: list[int] = [1] * n
        self.parts: list[tuple[int, ...]] = [()] * n
        self.parent: list[int] = [-1] * n
        self.is_domain: list[bool] = [False] * n
        edges = np.sort(np.asarray(ring_edges, dtype=np.int64).reshape(-1, 2), axis=1)
        key = np.unique(edges[edges[:, 0] != edges[:, 1]] @ np.array([max(n, 1), 1]))  # sorted pairs, once each
        edges = np.stack([key // max(n, 1), key % max(n, 1)], axis=1)
        # Each set gets its neighbours in ascending order, as adding the sorted edges one by one would.
        src = np.concatenate([edges[:, 0], edges[:, 1]])
        dst = np.concatenate([edges[:, 1], edges[:, 0]])
        by_node = np.lexsort((dst, src))
        bounds = np.searchsorted(src[by_node], np.arange(n + 1)).tolist()
        neighbours = dst[by_node].tolist()
        self.adj: list[set[int]] = [set(neighbours[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        self._ring_edges = edges  # edges and contacts between alive rings never change: see _ring_regions()
        self._contacts = np.asarray(ring_contacts if ring_contacts is not None else np.empty((0, 2)),
                                    dtype=np.int64).reshape(-1, 2)
        self._n_ring_nodes = n
        self.n_edges = len(edges)
        self.n_alive = n

    # -- queries -------------------------------------------------------------------------------------------

    def alive_nodes(self) -> list[int]:
        """Ids of the top-level nodes, ascending."""
        return [v for v, p in enumerate(self.parent) if p < 0]

    def is_free(self, v: int) -> bool:
        """Whether node ``v`` is top-level and not a domain (available to motifs)."""
        return self.parent[v] < 0 and not self.is_domain[v]

    def top_ancestor(self) -> np.ndarray:
        """(n_nodes,) int64: the top-level node above each node (itself when top-level)."""
        top = np.arange(len(self.parent), dtype=np.int64)
        for v in range(len(self.parent) - 1, -1, -1):  # parents have larger ids than their parts
            p = self.parent[v]
            if p >= 0:
                top[v] = top[p]
        return top

    def attach_bits(self) -> float:
        """``Σ_v deg(v) log2 k_v`` over alive nodes (which part each touch attaches to)."""
        return math.fsum(len(self.adj[v]) * math.log2(self.n_rings[v]) for v in self.alive_nodes()
                         if self.n_rings[v] > 1)

    def domain_bits(self) -> float:
        """``Σ γ(k_v)`` over the domain nodes (each domain's size)."""
        return math.fsum(_gamma_bits(k) for k, d in zip(self.n_rings, self.is_domain, strict=True) if d)

    def top_level_usage(self) -> Counter:
        """Symbol -> number of top-level nodes with it."""
        return Counter(self.labels[v] for v in self.alive_nodes())

    def regions(self, symbol: str, min_size: int) -> list[tuple[int, ...]]:
        """Connected regions of free nodes labelled ``symbol`` with at least ``min_size`` nodes.

        Rings are connected when they share a bond, or an atom when neither shares a bond with a ring of the
        symbol (:func:`_region_links`: a line of 4-rings meeting at corners is one region, two grains of a
        crystal meeting along a boundary stay two); composite nodes when they touch.

        Returns
        -------
        list of tuple of int
            Each region's node ids ascending; regions ordered by their smallest id.
        """
        labels, parent, is_domain = self.labels, self.parent, self.is_domain
        members = [v for v, label in enumerate(labels) if label == symbol and parent[v] < 0 and not is_domain[v]]
        if not members:
            return []
        if members[-1] < self._n_ring_nodes:
            return self._ring_regions(np.asarray(members, dtype=np.int64), min_size)
        return self._searched_regions(symbol, min_size)

    def _searched_regions(self, symbol: str, min_size: int) -> list[tuple[int, ...]]:
        """:meth:`regions` by a search over the current neighbour sets (any node, contracted ones too)."""
        seen: set[int] = set()
        out = []
        for v in range(len(self.labels)):
            if v in seen or self.labels[v] != symbol or not self.is_free(v):
                continue
            seen.add(v)
            stack, region = [v], [v]
            while stack:
                for w in self.adj[stack.pop()]:
                    if w not in seen and self.labels[w] == symbol and self.is_free(w):
                        seen.add(w)
                        stack.append(w)
                        region.append(w)
            if len(region) >= min_size:
                out.append(tuple(sorted(region)))
        return out

    def _ring_regions(self, members: np.ndarray, min_size: int) -> list[tuple[int, ...]]:
        """:meth:`regions` when every node of the symbol is a ring, by connected components over arrays.

        Rings join as :func:`_region_links` says. Contraction removes the edges of the nodes it absorbs and
        adds edges to the new node only, so the edges between two alive ring nodes are exactly their edges in
        the initial ring-adjacency graph (and their contacts never change).
        """
        n = self._n_ring_nodes
        mask = np.zeros(n, dtype=bool)
        mask[members] = True
        e = _region_links(n, mask, self._ring_edges, self._contacts)
        _, component = connected_components(
            coo_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), shape=(n, n)), directed=False
        )
        component = component[members]
        by_component = np.argsort(component, kind="stable")  # members ascending within each component
        members, component = members[by_component], component[by_component]
        starts = np.flatnonzero(np.r_[True, component[1:] != component[:-1]])
        sizes = np.diff(np.r_[starts, len(members)])
        keep = sizes >= min_size
        starts, sizes = starts[keep], sizes[keep]
        order = np.argsort(members[starts], kind="stable")  # regions by their smallest node
        flat = members.tolist()
        return [tuple(flat[a:a + m]) for a, m in zip(starts[order].tolist(), sizes[order].tolist())]

    def occurrences(self, nodes: Sequence[str], edges: Iterable[tuple[int, int]]) -> list[tuple[int, ...]]:
        """Every induced occurrence of a labelled pattern among the free nodes.

        Backtracking anchored at the pattern node whose label is rarest among the free nodes, then extending
        along pattern edges; a candidate must have the right label and be adjacent to exactly the already
        matched nodes the pattern says (induced matching). Automorphic embeddings collapse to one node set.

        Parameters
        ----------
        nodes : sequence of str, length n
            Pattern node labels.
        edges : iterable of (int, int)
            Pattern edges (connected pattern).

        Returns
        -------
        list of tuple of int
            Distinct occurrences as ascending node-id tuples, sorted lexicographically.
        """
        n = len(nodes)
        padj: list[set[int]] = [set() for _ in range(n)]
        for i, j in edges:
            padj[i].add(j)
            padj[j].add(i)
        by_label: dict[str, list[int]] = {}
        wanted = set(nodes)
        for v in self.alive_nodes():
            if not self.is_domain[v] and self.labels[v] in wanted:
                by_label.setdefault(self.labels[v], []).append(v)
        if any(label not in by_label for label in wanted):
            return []
        rarity = {label: len(vs) for label, vs in by_label.items()}
        order = [min(range(n), key=lambda i: (rarity[nodes[i]], i))]
        while len(order) < n:
            placed = set(order)
            order.append(min((i for i in range(n) if i not in placed),
                             key=lambda i: (-len(padj[i] & placed), rarity[nodes[i]], i)))
        # For each pattern node after the first: an earlier neighbour to extend from, and the earlier nodes
        # with their required adjacency.
        via = [None] + [next(q for q in order[:k] if q in padj[order[k]]) for k in range(1, n)]
        checks = [[(q, q in padj[order[k]]) for q in order[:k]] for k in range(n)]
        match = [-1] * n
        found: set[tuple[int, ...]] = set()
        adj, labels = self.adj, self.labels

        def extend(k: int, used: set[int]) -> None:
            if k == n:
                found.add(tuple(sorted(match)))
                return
            p = order[k]
            label = nodes[p]
            for c in adj[match[via[k]]]:
                if c in used or labels[c] != label or not self.is_free(c):
                    continue
                if all((match[q] in adj[c]) == linked for q, linked in checks[k]):
                    match[p] = c
                    used.add(c)
                    extend(k + 1, used)
                    used.discard(c)

        for anchor in by_label[nodes[order[0]]]:
            match[order[0]] = anchor
            extend(1, {anchor})
        return sorted(found)

    # -- contraction ---------------------------------------------------------------------------------------

    def _detach_region(self, inst: Sequence[int], members: set[int]) -> tuple[set[int], int]:
        """Cut a (large) instance's outside edges with set operations: its outside neighbours, edges removed.

        The same edges and counts as :meth:`contract`'s loop over every member's neighbours, in time
        proportional to the members plus the boundary; the new node's set is built in another insertion order,
        which only a domain (frozen, never expanded) may have.
        """
        adj = self.adj
        outside = set().union(*[adj[m] for m in inst])
        outside -= members
        degree = sum(map(len, [adj[m] for m in inst]))
        external = 0
        for y in outside:
            touching = adj[y] & members
            external += len(touching)
            adj[y] -= touching
        return outside, (degree + external) // 2  # internal edges counted twice in the degree, external once

    def contraction_delta(self, instances: Sequence[tuple[int, ...]]) -> tuple[int, int, float]:
        """What contracting disjoint ``instances`` would change, without changing anything.

        Returns
        -------
        d_nodes : int
            Change in the number of alive nodes.
        d_edges : int
            Change in the number of edges (internal edges vanish; parallel touches merge).
        d_attach : float
            Change in :meth:`attach_bits`.
        """
        owner: dict[int, int] = {}
        for i, inst in enumerate(instances):
            for m in inst:
                owner[m] = i
        weight = [math.log2(sum(self.n_rings[m] for m in inst)) for inst in instances]
        removed, attach, added = 0, 0.0, 0
        inst_pairs: set[tuple[int, int]] = set()
        for i, inst in enumerate(instances):
            outside: set[int] = set()
            for m in inst:
                wm = math.log2(self.n_rings[m])
                for y in self.adj[m]:
                    j = owner.get(y)
                    if j is None:
                        removed += 1
                        attach -= wm + math.log2(self.n_rings[y])
                        outside.add(y)
                    elif y > m:  # an edge between two members: count it once
                        removed += 1
                        attach -= wm + math.log2(self.n_rings[y])
                    if j is not None and j != i:
                        inst_pairs.add((min(i, j), max(i, j)))
            added += len(outside)
            attach += math.fsum(weight[i] + math.log2(self.n_rings[y]) for y in outside)
        added += len(inst_pairs)
        attach += math.fsum(weight[i] + weight[j] for i, j in inst_pairs)
        d_nodes = -sum(len(inst) - 1 for inst in instances)
        return d_nodes, added - removed, attach

    def contract(self, instances: Sequence[tuple[int, ...]], symbol: str, level: int, *,
                 domain: bool = False) -> list[int]:
        """Replace each instance (disjoint sets of alive nodes) by one new node; return the new ids.

        The new node's neighbours are the union of its parts' neighbours outside the instance.
        """
        new_ids = []
        adj = self.adj
        for inst in instances:
            nid = len(self.labels)
            members = set(inst)
            if domain:
                outside, removed = self._detach_region(inst, members)
            else:
                outside = set()
                removed = 0
                for m in inst:
                    for y in adj[m]:
                        if y in members:
                            removed += y > m
                        else:
                            removed += 1
                            outside.add(y)
                            adj[y].discard(m)
            for m in inst:
                adj[m] = _NO_NEIGHBOURS
                self.parent[m] = nid
            for y in outside:
                self.adj[y].add(nid)
            self.labels.append(symbol)
            self.levels.append(level)
            self.n_rings.append(sum(map(self.n_rings.__getitem__, inst)))
            self.parts.append(tuple(sorted(inst)))
            self.parent.append(-1)
            self.is_domain.append(domain)
            self.adj.append(outside)
            self.n_edges += len(outside) - removed
            self.n_alive += 1 - len(inst)
            new_ids.append(nid)
        return new_ids


def _region_links(n: int, member: np.ndarray, edges: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """(L, 2) links between the ``member`` rings (a (n,) bool mask) that make up regions: the bond-sharing
    edges among them, and the corner contacts between two members that share no bond with any member.

    So rings that tile only by corners (the 4-rings of a 4|4P boundary) form a region, while the rings of a
    crystal, which share bonds, join only by bonds: a corner where two grains meet does not merge them.
    """
    edges = edges[member[edges[:, 0]] & member[edges[:, 1]]]
    bonded = np.zeros(n, dtype=bool)
    bonded[edges.ravel()] = True
    loose = member & ~bonded
    return np.concatenate([edges, contacts[loose[contacts[:, 0]] & loose[contacts[:, 1]]]])


def select_disjoint(instances: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Greedy non-overlapping selection: walk ``instances`` in sorted order, keep each one sharing no node
    with those kept before. Deterministic; node ids are canonical, so it does not depend on input order."""
    used: set[int] = set()
    out = []
    for inst in sorted(instances):
        if used.isdisjoint(inst):
            used.update(inst)
            out.append(inst)
    return out


# --------------------------------------------------------------------------------------------------------------
# The data code


@dataclass(frozen=True)
class DataCode:
    """The code for a micrograph's top-level symbols given a grammar (see the module docstring).

    Attributes
    ----------
    usage : dict of str to int
        Top-level usage ``u_s`` of every ring, motif and domain symbol.
    n_symbols : int
        ``K``, the number of ring, motif and domain symbols (the escape is one more slot).
    n_tokens : int
        Number of tokens of the grammar (the alphabet of the free atoms' code).
    wildcards : tuple of str
        The wildcard ring symbols, rarest first (by count, then size): the order in which they claim free
        atoms (:meth:`ring_classes`).
    """

    usage: dict[str, int]
    n_symbols: int
    n_tokens: int = 1
    wildcards: tuple[str, ...] = ()

    @classmethod
    def from_grammar(cls, grammar: Grammar) -> DataCode:
        """Derive the top-level usage from the rule counts alone."""
        usage = {r.name: r.count for r in grammar.rings}
        for m in grammar.motifs:
            usage[m.name] = m.count
        for m in grammar.motifs:
            for part, mult in Counter(m.nodes).items():
                if part in usage:
                    usage[part] -= mult * m.count
        for d in grammar.domains:
            if d.symbol in usage:
                usage[d.symbol] -= d.size
            usage[d.name] = d.count
        usage = {s: max(u, 0) for s, u in usage.items()}
        wildcards = tuple(r.name for r in sorted((r for r in grammar.rings if r.is_wildcard),
                                                 key=lambda r: (r.count, r.size, r.name)))
        return cls(usage, len(usage), max(len(grammar.tokens), 1), wildcards)

    def _denominator(self) -> float:
        return sum(self.usage.values()) + 0.5 * (self.n_symbols + 1)

    def symbol_bits(self, symbol: str) -> float:
        """``-log2 p(symbol)``; the escape probability for a symbol outside the grammar."""
        return -math.log2((self.usage.get(symbol, 0) + 0.5) / self._denominator())

    def ring_classes(self, symbols: Sequence[str]) -> np.ndarray:
        """(len(symbols),) int64: the class of each ring symbol for :func:`free_atom_tokens`.

        -1 for an exact-word symbol (it fixes its atoms' tokens); otherwise a rank, lower claiming first:
        unknown rings (``R<n>?``) by size, then the wildcards rarest first.
        """
        unknown = sorted({s for s in symbols if s not in self.usage}, key=lambda s: (len(s), s))
        rank = {s: k for k, s in enumerate(unknown)}
        rank.update({s: len(unknown) + k for k, s in enumerate(self.wildcards)})
        return np.array([rank.get(s, -1) for s in symbols], dtype=np.int64).reshape(len(symbols))

    def free_token_bits(self, free: Mapping[tuple[int, str], int]) -> float:
        """Bits to spell the tokens of the free ring atoms (:func:`free_atom_tokens`): per ring class, the
        Krichevsky–Trofimov code of its token counts over the grammar's ``n_tokens`` tokens (adaptive, so the
        tokens of a class of defect rings cost what their own frequencies say, not the micrograph's).

        Summed in class order, so induction and parsing get the same float from the same counts.
        """
        per_class: dict[int, list[int]] = {}
        for (cls, _), n in sorted(free.items()):
            per_class.setdefault(cls, []).append(n)
        return math.fsum(kt_bits(counts, self.n_tokens) for _, counts in sorted(per_class.items()))


def kt_bits(counts: Sequence[int], n_tokens: int) -> float:
    """Code length (bits) of a sequence with these symbol counts under the Krichevsky–Trofimov mixture over
    ``n_tokens`` symbols: ``log2 Γ(N + T/2) − log2 Γ(T/2) − Σ_t [log2 Γ(n_t + ½) − log2 Γ(½)]``.

    0 for one symbol; about ``N H + (T − 1)/2 log2 N`` bits for ``N`` symbols of empirical entropy ``H``.
    """
    n = sum(counts)
    half = 0.5 * n_tokens
    nats = math.lgamma(n + half) - math.lgamma(half) - math.fsum(math.lgamma(c + 0.5) - math.lgamma(0.5)
                                                                 for c in counts)
    return max(nats, 0.0) / math.log(2.0)


def graph_data_bits(sg: SymbolGraph, code: DataCode, ring_extra_bits: float) -> float:
    """Total data bits of one micrograph's top-level graph under ``code`` (module docstring formula).

    ``ring_extra_bits`` is the bits of its free atoms' tokens (:meth:`DataCode.free_token_bits`) plus γ(size)
    for each unknown ring, which no contraction changes.
    """
    alive = sg.alive_nodes()
    labels = math.fsum(code.symbol_bits(sg.labels[v]) for v in alive)
    return (structure_bits(len(alive), sg.n_edges) + sg.attach_bits() + labels + sg.domain_bits()
            + ring_extra_bits)


# --------------------------------------------------------------------------------------------------------------
# Parse trees


@dataclass(frozen=True, slots=True)
class ParseNode:
    """A node of a parse tree.

    Attributes
    ----------
    symbol : str
        Grammar symbol (a token name for level-0 leaves, :data:`ROOT_SYMBOL` for the root).
    level : int
        0 atoms, 1 rings, >= 2 motifs and domains; the root is one above the grammar's highest level.
    atoms : tuple of int
        Atom ids covered: a ring's atoms in cyclic order, otherwise ascending (the union over the children,
        with every atom of every ring underneath).
    children : tuple of ParseNode
        Sub-nodes. A ring's children are the leaves of the atoms it *owns*: every atom is owned by exactly
        one ring (of those containing it, the one whose top-level node has the highest level, then the
        first in canonical ring order), so each atom appears in exactly one leaf.
    """

    symbol: str
    level: int
    atoms: tuple[int, ...]
    children: tuple[ParseNode, ...] = ()

    def to_dict(self) -> dict:
        """``{"symbol", "level", "atoms": [ids], "children": [...]}`` (INTERFACE.md, ``parses/<image>.json``)."""
        return {
            "symbol": self.symbol,
            "level": self.level,
            "atoms": list(self.atoms),
            "children": [c.to_dict() for c in self.children],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON text (``separators=(",", ":")``), written directly: the same text
        ``json.dumps`` gives, 3-4x faster for the ~75k nodes of a 50k-atom micrograph (no dict per node)."""
        parts: list[str] = []
        self._json_parts(parts)
        return "".join(parts)

    def _json_parts(self, parts: list[str]) -> None:
        parts += ('{"symbol":', json.dumps(self.symbol), ',"level":', str(self.level), ',"atoms":[',
                  ",".join(map(str, self.atoms)), '],"children":[')
        for k, child in enumerate(self.children):
            if k:
                parts.append(",")
            child._json_parts(parts)
        parts.append("]}")

    @classmethod
    def from_dict(cls, data: Mapping) -> ParseNode:
        """The node written by :meth:`to_dict` (e.g. read back from ``parses/<image>.json``)."""
        return cls(
            symbol=str(data["symbol"]),
            level=int(data["level"]),
            atoms=tuple(int(a) for a in data["atoms"]),
            children=tuple(cls.from_dict(c) for c in data["children"]),
        )

    def to_lark_tree(self) -> lark.Tree:
        """The tree as a ``lark.Tree`` (``.pretty()`` prints it); a leaf holds its atom id as a string."""
        if self.level == 0 and not self.children:
            return lark.Tree(self.symbol, [str(a) for a in self.atoms])
        return lark.Tree(self.symbol, [c.to_lark_tree() for c in self.children])

    def iter_nodes(self):
        """Depth-first pre-order iterator over this node and all nodes below it."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass(frozen=True, eq=False)
class ParseResult:
    """A micrograph parsed with a grammar.

    Attributes
    ----------
    root : ParseNode
        The tree: micrograph -> motifs and domains -> rings -> atoms.
    ring_symbols : (R,) str ndarray
        Level-1 symbol of every ring, in the graph's ring order (``rings.csv``'s ``symbol``). Border-flagged
        rings get the symbol of their word but are not in the tree (:func:`interior_graph`).
    motif_counts : dict of int to dict of str to int
        Level (>= 1) -> symbol -> number of nodes in the tree.
    coverage : dict of int to float
        Level (0 .. the grammar's top level) -> fraction of atoms covered by a node of that level or higher.
    bits_per_atom : float
        Data description length of the micrograph under the grammar divided by the number of atoms
        (0 for a graph without atoms).
    relative_abundance : dict of int to dict of str to float
        ``motif_counts`` normalised to sum 1 per level.
    data_bits : float
        The total data description length (bits).
    """

    root: ParseNode
    ring_symbols: np.ndarray
    motif_counts: dict[int, dict[str, int]]
    coverage: dict[int, float]
    bits_per_atom: float
    relative_abundance: dict[int, dict[str, float]]
    data_bits: float


def ring_symbol_table(grammar: Grammar) -> tuple[dict[tuple[str, ...], str], dict[int, str]]:
    """Canonical word -> ring symbol, and ring size -> wildcard symbol, of a grammar's ring rules."""
    exact = {r.word: r.name for r in grammar.rings if not r.is_wildcard}
    wild = {r.size: r.name for r in grammar.rings if r.is_wildcard}
    return exact, wild


def _check_tokens(grammar: Grammar, graph) -> None:
    known = {t.name for t in grammar.tokens}
    present = set(np.asarray(graph.tokens).astype(str).tolist())
    missing = sorted(present - known)
    if missing:
        raise GrammarError(
            f"the micrograph has token(s) {', '.join(map(repr, missing))} that grammar {grammar.name!r} does not "
            f"know (its tokens: {', '.join(sorted(known)) or 'none'}); assign tokens with the grammar's own token "
            "model, or induce a grammar from this material"
        )


def without_cyclic_gc(function):
    """Run ``function`` with Python's cyclic garbage collector paused (re-enabled afterwards if it was on).

    Induction and parsing allocate hundreds of thousands of small objects that form no reference cycles
    (symbol sets, tuples, parse nodes); every collection their allocation triggers scans all live objects, so
    the cost grew faster than linearly with the atom count (measured on 50k atoms: parse 0.74 → 0.34 s,
    induction 0.71 → 0.54 s with the collector paused; benchmarks/README.md).
    """

    @functools.wraps(function)
    def paused(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


@without_cyclic_gc
def parse_graph(grammar: Grammar, graph, *, min_domain_size: int | None = None) -> ParseResult:
    """Parse a micrograph's atom graph with a grammar.

    Parameters
    ----------
    grammar : Grammar
        A valid grammar (e.g. from :func:`~motifgram.grammar.induce.induce_grammar` or ``Grammar.parse_text``).
    graph : AtomGraph
        Uses ``tokens`` ((N,) str), ``rings`` (atom indices in cyclic order) and ``ring_adjacency()``
        ((E, 2) ring index pairs sharing a bond).
    min_domain_size : int or None
        Smallest connected region (in rings) that counts as a domain; ``None``: ``1 + ring size``
        (:func:`auto_min_domain_size`); use the value the grammar was induced with.

    Returns
    -------
    ParseResult

    Raises
    ------
    GrammarError
        The graph has tokens the grammar does not know (named in the message).

    Notes
    -----
    The module docstring gives the algorithm and the data code. Cost: O(R) for rings and domains plus,
    per motif rule, the backtracking search anchored at its rarest symbol.
    """
    _check_tokens(grammar, graph)
    whole, graph = graph, interior_graph(graph)
    n_atoms = len(graph.tokens)
    rings = Rings.from_sequences(graph.rings)
    order = canonical_ring_order(rings)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    words, word_index = distinct_ring_words(graph)
    exact, wild = ring_symbol_table(grammar)
    code = DataCode.from_grammar(grammar)
    symbols = _ring_labels(grammar, words)
    # Word bits of the wildcard and unknown rings, added in ring order (the same float sum as ring by ring).
    extra = 0.0
    extra += code.free_token_bits(free_atom_tokens(rings, code.ring_classes(symbols)[word_index], graph.tokens))
    unknown = np.array([len(w) not in wild and w not in exact for w in words], dtype=bool).reshape(len(words))
    for k in word_index[unknown[word_index]].tolist():
        extra += _gamma_bits(len(words[k]))
    labels = list(map(symbols.__getitem__, word_index.tolist()))
    ring_symbols = np.array(labels, dtype=np.str_).reshape(len(labels))
    if whole is not graph:  # border rings get the symbol of their word, outside the tree
        border = np.asarray(whole.ring_border, dtype=bool)
        border_words, border_index = distinct_ring_words(dataclasses.replace(whole, rings=whole.rings.take(border),
                                                                             ring_border=None))
        all_symbols = np.empty(len(border), dtype=object)
        all_symbols[~border] = ring_symbols
        all_symbols[border] = np.array(_ring_labels(grammar, border_words), dtype=object)[border_index]
        ring_symbols = all_symbols.astype(np.str_)
    sg = SymbolGraph(list(map(labels.__getitem__, order.tolist())),
                     rank[np.asarray(graph.ring_adjacency(), dtype=np.int64)], rank[ring_contacts(rings)])
    ring_size = {r.name: r.size for r in grammar.rings}

    def threshold(symbol: str) -> int:
        if min_domain_size is not None:
            return int(min_domain_size)
        return auto_min_domain_size(ring_size[symbol]) if symbol in ring_size else 2

    for d in grammar.domains:
        if d.symbol in ring_size:
            sg.contract(sg.regions(d.symbol, threshold(d.symbol)), d.name, d.level, domain=True)
    for m in grammar.motifs:
        sg.contract(select_disjoint(sg.occurrences(m.nodes, m.edges)), m.name, m.level)
    for d in grammar.domains:
        if d.symbol not in ring_size:
            sg.contract(sg.regions(d.symbol, threshold(d.symbol)), d.name, d.level, domain=True)
    data_bits = graph_data_bits(sg, code, extra)
    root_level = max(grammar.levels, default=0) + 1
    root, counts, coverage = _build_tree(sg, rings.take(order), graph.tokens, n_atoms, root_level)
    abundance = {
        level: {s: c / total for s, c in per.items()}
        for level, per in counts.items()
        if (total := sum(per.values())) > 0
    }
    return ParseResult(
        root=root,
        ring_symbols=ring_symbols,
        motif_counts=counts,
        coverage=coverage,
        bits_per_atom=data_bits / n_atoms if n_atoms else 0.0,
        relative_abundance=abundance,
        data_bits=data_bits,
    )


def _build_tree(sg: SymbolGraph, rings: Rings, tokens, n_atoms: int, root_level: int):
    """Parse tree, per-level symbol counts and coverage from a contracted symbol graph (rings in node order)."""
    tokens = np.asarray(tokens).astype(str).tolist()
    n_ring_nodes = len(rings)
    top = sg.top_ancestor()
    levels = np.asarray(sg.levels, dtype=np.int64)
    ring_level = levels[top[:n_ring_nodes]] if n_ring_nodes else np.empty(0, np.int64)
    sizes = rings.sizes
    entry_atom = rings.atoms
    entry_ring = np.repeat(np.arange(n_ring_nodes, dtype=np.int64), sizes)
    # Owner ring of each atom: highest top-level ancestor level, then the first ring.
    sort = np.lexsort((entry_ring, -ring_level[entry_ring], entry_atom))
    atoms_sorted = entry_atom[sort]
    first = np.ones(len(sort), dtype=bool)
    first[1:] = atoms_sorted[1:] != atoms_sorted[:-1]
    owner = np.full(n_atoms, -1, dtype=np.int64)
    owner[atoms_sorted[first]] = entry_ring[sort][first]
    covered = np.zeros(n_atoms, dtype=np.int64)
    if len(entry_atom):
        np.maximum.at(covered, entry_atom, ring_level[entry_ring])

    # Leaves of the owned atoms, ascending per ring, built in one pass (no Python loop per atom).
    owned = np.flatnonzero(owner >= 0)
    owned = owned[np.argsort(owner[owned], kind="stable")].tolist()
    leaves = list(map(ParseNode, [tokens[a] for a in owned], itertools.repeat(0), zip(owned)))
    bounds = np.concatenate([[0], np.cumsum(np.bincount(owner[owner >= 0], minlength=n_ring_nodes))]).tolist()
    nodes: list[ParseNode] = list(map(
        ParseNode, sg.labels[:n_ring_nodes], sg.levels[:n_ring_nodes], rings.to_tuples(),
        [tuple(leaves[a:b]) for a, b in zip(bounds[:-1], bounds[1:])],
    ))
    ring_members: dict[int, np.ndarray] = {}  # composite node -> the ring nodes under it
    for v in range(n_ring_nodes, len(sg.labels)):
        parts = np.asarray(sg.parts[v], dtype=np.int64)
        under = np.concatenate([parts[parts < n_ring_nodes]] + [ring_members[c] for c in parts[parts >= n_ring_nodes].tolist()])
        ring_members[v] = under
        atoms = np.unique(rings.take(under).atoms)
        nodes.append(ParseNode(sg.labels[v], sg.levels[v], tuple(atoms.tolist()), tuple(map(nodes.__getitem__, sg.parts[v]))))
    counts: dict[int, Counter] = {}
    for (level, symbol), c in Counter(zip(sg.levels, sg.labels)).items():
        counts.setdefault(level, Counter())[symbol] = c
    children = [nodes[v] for v in sg.alive_nodes()]
    children += [ParseNode(tokens[a], 0, (a,)) for a in np.flatnonzero(owner < 0).tolist()]
    root = ParseNode(ROOT_SYMBOL, root_level, tuple(range(n_atoms)), tuple(children))
    coverage = {
        level: (float(np.count_nonzero(covered >= level)) / n_atoms if n_atoms else 0.0)
        for level in range(root_level)
    }
    motif_counts = {level: dict(sorted(c.items())) for level, c in sorted(counts.items())}
    return root, motif_counts, coverage
