"""The symbols and rules of a motif grammar, and their canonical forms.

Levels: 0 = atom tokens (terminals, :class:`TokenSymbol`), 1 = rings (:class:`RingRule`), 2.. = motifs built
from lower-level symbols (:class:`MotifRule`) and domains, connected regions of one repeated symbol
(:class:`DomainRule`). Every rule carries its count.

All classes are frozen dataclasses: immutable, hashable and ordered by their fields. Rule constructors
canonicalise their right-hand side (a ring's word to its dihedral canonical form, a motif's graph to its
canonical labelled form), so two rules with the same content compare equal however they were written.
The grammar that holds them is :class:`motifgram.grammar.model.Grammar`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from motifgram.engine.errors import GrammarError

__all__ = [
    "WILDCARD",
    "TokenSymbol",
    "RingRule",
    "MotifRule",
    "DomainRule",
    "Rule",
    "canonical_ring_word",
    "canonical_motif",
    "is_valid_name",
    "letters",
]

WILDCARD = "*"
"""The token that stands for any token in a wildcard ring word (``ring5(*)``)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words of the text form that cannot be symbol names (see motifgram.lark).
_RESERVED = frozenset({"grammar", "version", "tokens", "rings", "motifs", "domains", "ring", "domain", "size"})
_RING_KEYWORD = re.compile(r"ring[0-9]+")


def is_valid_name(name: str) -> bool:
    """Whether ``name`` can name a symbol: an identifier ``[A-Za-z_][A-Za-z0-9_]*`` that is not a keyword.

    Keywords are the section and rule words of the text form (``tokens``, ``ring``, ``domain``, ``size``, ...)
    and ``ring<N>``.
    """
    return (
        isinstance(name, str)
        and _NAME.fullmatch(name) is not None
        and name not in _RESERVED
        and _RING_KEYWORD.fullmatch(name) is None
    )


# --------------------------------------------------------------------------------------------------------------
# Canonical forms


def canonical_ring_word(word: Sequence[str]) -> tuple[str, ...]:
    """The dihedral canonical form of a cyclic word: the least over all rotations and reflections.

    Parameters
    ----------
    word : sequence of str, length n
        Token names around a ring, in cyclic order (either direction, any starting atom).

    Returns
    -------
    tuple of str, length n
        The lexicographically least of the 2n rotations of ``word`` and of its reverse. O(n²), fine for n ≤ 12.

    Examples
    --------
    >>> canonical_ring_word(("B", "A", "A", "C"))
    ('A', 'A', 'B', 'C')
    >>> canonical_ring_word(("A", "C", "A", "B")) == canonical_ring_word(("A", "B", "A", "C"))
    True
    """
    word = tuple(word)
    if not word:
        return word
    rev = word[::-1]
    n = len(word)
    return min(min(w[i:] + w[:i] for i in range(n)) for w in (word, rev))


def _ranks(values: Sequence) -> list[int]:
    """Rank of each value among the sorted distinct values (an isomorphism-invariant colour)."""
    order = {v: r for r, v in enumerate(sorted(set(values)))}
    return [order[v] for v in values]


def _refine(colours: list[int], adj: list[list[int]]) -> list[int]:
    """Colour refinement (1-WL) until stable; the new ranks refine the order of the old ones."""
    n_classes = len(set(colours))
    while True:
        new = _ranks([(colours[i], tuple(sorted(colours[j] for j in adj[i]))) for i in range(len(colours))])
        n_new = len(set(new))
        if n_new == n_classes:
            return new
        colours, n_classes = new, n_new


def canonical_motif(
    nodes: Sequence[str], edges: Iterable[tuple[int, int]]
) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The canonical form of a small labelled graph.

    The canonical node order sorts the nodes by label and, within equal labels, by their colour after
    colour refinement (1-dimensional Weisfeiler–Leman); remaining ties are searched exhaustively by
    individualisation and refinement, keeping the order whose sorted edge list is least. The result depends
    only on the isomorphism class of the labelled graph: isomorphic graphs give the same form, and
    non-isomorphic ones different forms (the form is a relabelled copy of the graph).

    Parameters
    ----------
    nodes : sequence of str, length n
        Node labels (node i has label ``nodes[i]``).
    edges : iterable of (int, int)
        Undirected edges between node indices, in either orientation.

    Returns
    -------
    nodes : tuple of str, length n
        Labels in canonical order (sorted).
    edges : tuple of (int, int)
        Edges ``(i, j)`` with ``i < j`` in canonical indices, sorted.

    Examples
    --------
    >>> canonical_motif(("R7", "R5"), [(1, 0)])
    (('R5', 'R7'), ((0, 1),))
    """
    nodes = tuple(nodes)
    n = len(nodes)
    adj: list[list[int]] = [[] for _ in range(n)]
    for i, j in edges:
        adj[i].append(j)
        adj[j].append(i)
    best: tuple[tuple[int, int], ...] | None = None
    best_order: list[int] | None = None

    def search(colours: list[int]) -> None:
        nonlocal best, best_order
        cells: dict[int, list[int]] = {}
        for v, c in enumerate(colours):
            cells.setdefault(c, []).append(v)
        target = next((cells[c] for c in sorted(cells) if len(cells[c]) > 1), None)
        if target is None:  # discrete: colour = position
            cand = tuple(sorted((min(colours[i], colours[j]), max(colours[i], colours[j])) for i in range(n)
                                for j in adj[i] if i < j))
            if best is None or cand < best:
                best, best_order = cand, sorted(range(n), key=colours.__getitem__)
            return
        for v in target:
            individualised = _ranks([(c, 0 if u == v else 1) for u, c in enumerate(colours)])
            search(_refine(individualised, adj))

    if n:
        search(_refine(_ranks(nodes), adj))
    else:
        best, best_order = (), []
    return tuple(nodes[v] for v in best_order), best


def _is_connected(n: int, edges: Sequence[tuple[int, int]]) -> bool:
    adj: list[list[int]] = [[] for _ in range(n)]
    for i, j in edges:
        adj[i].append(j)
        adj[j].append(i)
    seen, stack = {0}, [0]
    while stack:
        for w in adj[stack.pop()]:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return len(seen) == n


# --------------------------------------------------------------------------------------------------------------
# Symbols and rules


def _check_count(kind: str, name: str, value, what: str = "count") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GrammarError(f"{kind} {name!r}: {what} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True, order=True)
class TokenSymbol:
    """A level-0 terminal: a learned atom-column motif.

    Attributes
    ----------
    name : str
        The token's name (an identifier, e.g. ``"A"``, ``"Mo"``, ``"S2"``).
    abundance : float
        Fraction of atoms carrying this token, in [0, 1].
    """

    name: str
    abundance: float

    def __post_init__(self):
        object.__setattr__(self, "abundance", float(self.abundance))
        if not (math.isfinite(self.abundance) and self.abundance >= 0.0):
            raise GrammarError(f"token {self.name!r}: abundance must be a finite number >= 0, got {self.abundance!r}")

    @property
    def level(self) -> int:
        """Always 0."""
        return 0


@dataclass(frozen=True, order=True)
class RingRule:
    """A level-1 rule: a ring whose atoms carry the tokens of a cyclic word.

    The constructor stores ``word`` in dihedral canonical form (:func:`canonical_ring_word`). A wildcard rule
    (``word == ("*",) * size``, written ``ring5(*)``) matches any ring of its size that no other rule matches.

    Attributes
    ----------
    name : str
        The ring symbol, e.g. ``"R6"``.
    word : tuple of str, length size >= 3
        Token names around the ring, canonical; all ``"*"`` for a wildcard.
    count : int
        Number of rings with this symbol in the training micrographs.
    """

    name: str
    word: tuple[str, ...]
    count: int

    def __post_init__(self):
        word = tuple(self.word)
        if len(word) < 3:
            raise GrammarError(f"ring {self.name!r}: a ring needs at least 3 tokens, got {len(word)}")
        if WILDCARD in word and set(word) != {WILDCARD}:
            raise GrammarError(f"ring {self.name!r}: a wildcard ring is all '*', got {' '.join(word)}")
        _check_count("ring", self.name, self.count)
        object.__setattr__(self, "word", canonical_ring_word(word))

    @property
    def level(self) -> int:
        """Always 1."""
        return 1

    @property
    def size(self) -> int:
        """Number of atoms in the ring."""
        return len(self.word)

    @property
    def is_wildcard(self) -> bool:
        """Whether this is the per-size fall-back rule ``ring<size>(*)``."""
        return self.word[0] == WILDCARD

    @classmethod
    def wildcard(cls, name: str, size: int, count: int) -> RingRule:
        """The wildcard rule ``name = ring<size>(*) count``."""
        return cls(name, (WILDCARD,) * size, count)


@dataclass(frozen=True, order=True)
class MotifRule:
    """A motif: a small connected labelled graph of lower-level symbols.

    Node ``i`` has symbol ``nodes[i]``; an edge means the two parts share a bond (rings) or touch (motifs).
    The constructor stores the graph in canonical form (:func:`canonical_motif`): ``nodes`` sorted, edges
    ``(i, j)`` with ``i < j`` sorted, so read ``nodes``/``edges`` back after constructing. It raises
    :class:`GrammarError` for fewer than 2 nodes, bad, repeated or self edges, or a disconnected graph.

    Attributes
    ----------
    name : str
        The motif symbol.
    nodes : tuple of str, length n >= 2
        Symbols of the parts (rings or earlier motifs).
    edges : tuple of (int, int)
        Adjacency between parts; connected.
    count : int
        Number of (non-overlapping) occurrences in the training micrographs.
    level : int
        1 + the highest level of its parts (>= 2); checked by :meth:`Grammar.validate`.

    Examples
    --------
    >>> MotifRule("M1", ("R7", "R5"), ((0, 1),), 190, 2).nodes
    ('R5', 'R7')
    """

    name: str
    nodes: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    count: int
    level: int

    def __post_init__(self):
        nodes = tuple(self.nodes)
        n = len(nodes)
        if n < 2:
            raise GrammarError(f"motif {self.name!r}: a motif needs at least 2 parts, got {n}")
        edges = []
        for e in self.edges:
            i, j = (int(v) for v in e)
            if not (0 <= i < n and 0 <= j < n):
                raise GrammarError(f"motif {self.name!r}: edge {i}-{j} names a part outside 0..{n - 1}")
            if i == j:
                raise GrammarError(f"motif {self.name!r}: edge {i}-{j} joins a part to itself")
            edges.append((min(i, j), max(i, j)))
        if len(set(edges)) != len(edges):
            raise GrammarError(f"motif {self.name!r}: an edge is listed twice")
        if not _is_connected(n, edges):
            raise GrammarError(f"motif {self.name!r}: its parts are not connected by its edges")
        _check_count("motif", self.name, self.count)
        if not isinstance(self.level, int) or self.level < 2:
            raise GrammarError(f"motif {self.name!r}: level must be an integer >= 2, got {self.level!r}")
        nodes, edges = canonical_motif(nodes, edges)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", edges)

    @property
    def size(self) -> int:
        """Number of parts."""
        return len(self.nodes)

    @property
    def is_pair(self) -> bool:
        """Whether the motif is two adjacent parts (written ``R5 - R7``)."""
        return len(self.nodes) == 2


@dataclass(frozen=True, order=True)
class DomainRule:
    """A domain: a connected region of one repeated symbol (``D6 = domain(R6)``).

    Attributes
    ----------
    name : str
        The domain symbol.
    symbol : str
        The repeated symbol (a ring or a motif).
    count : int
        Number of domains in the training micrographs.
    level : int
        1 + the level of ``symbol``.
    size : int
        Total number of members over all domains (>= count).
    """

    name: str
    symbol: str
    count: int
    level: int
    size: int

    def __post_init__(self):
        _check_count("domain", self.name, self.count)
        _check_count("domain", self.name, self.size, "size")
        if not isinstance(self.level, int) or self.level < 2:
            raise GrammarError(f"domain {self.name!r}: level must be an integer >= 2, got {self.level!r}")
        if self.size < self.count:
            raise GrammarError(
                f"domain {self.name!r}: size (members over all domains) {self.size} is less than count {self.count}"
            )


Rule = TokenSymbol | RingRule | MotifRule | DomainRule


def letters(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'aa', ... (bijective base 26)."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(ord("a") + r) + out
    return out
