"""The motif grammar as data: symbols, rules and the grammar that holds them.

Levels: 0 = atom tokens (terminals, :class:`TokenSymbol`), 1 = rings (:class:`RingRule`), 2.. = motifs built
from lower-level symbols (:class:`MotifRule`) and domains, connected regions of one repeated symbol
(:class:`DomainRule`). Every rule carries its count, so the grammar is stochastic (:meth:`Grammar.probabilities`)
and has a description length (:meth:`Grammar.description_length_bits`).

All classes are frozen dataclasses: immutable, hashable and ordered by their fields. Rule constructors
canonicalise their right-hand side (a ring's word to its dihedral canonical form, a motif's graph to its
canonical labelled form), so two rules with the same content compare equal however they were written.

Text form: :meth:`Grammar.to_text` and :meth:`Grammar.parse_text` (see :mod:`motifgram.grammar.dsl`).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from motifgram.engine.errors import GrammarError

__all__ = [
    "WILDCARD",
    "TokenSymbol",
    "RingRule",
    "MotifRule",
    "DomainRule",
    "Grammar",
    "canonical_ring_word",
    "canonical_motif",
    "is_valid_name",
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


# --------------------------------------------------------------------------------------------------------------
# The grammar


def _int_bits(n: int) -> float:
    """Bits of the Elias gamma code of ``n + 1`` (a universal code for integers n >= 0)."""
    return float(2 * (n + 1).bit_length() - 1)


def _log2(n: int) -> float:
    return math.log2(n) if n > 1 else 0.0


def _letters(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'aa', ... (bijective base 26)."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(ord("a") + r) + out
    return out


@dataclass(frozen=True)
class Grammar:
    """A stochastic motif grammar.

    Attributes
    ----------
    name : str
        A free-text name (e.g. the material).
    version : int
        Version of the text format / grammar.
    tokens : tuple of TokenSymbol
        Level-0 terminals.
    rings : tuple of RingRule
        Level-1 rules.
    motifs : tuple of MotifRule
        Motif rules in merge order, which is the parse order; a motif refers only to rings and earlier motifs.
    domains : tuple of DomainRule
        Domain rules (applied after all motifs).

    Notes
    -----
    The constructor only turns sequences into tuples; call :meth:`validate` to check consistency
    (:meth:`parse_text` always does).
    """

    name: str
    version: int
    tokens: tuple[TokenSymbol, ...] = ()
    rings: tuple[RingRule, ...] = ()
    motifs: tuple[MotifRule, ...] = ()
    domains: tuple[DomainRule, ...] = ()

    def __post_init__(self):
        for f in ("tokens", "rings", "motifs", "domains"):
            object.__setattr__(self, f, tuple(getattr(self, f)))

    # -- lookup --------------------------------------------------------------------------------------------

    @functools.cached_property
    def symbols(self) -> Mapping[str, Rule]:
        """Symbol name -> its token or rule (the first one, if a name is duplicated)."""
        out: dict[str, Rule] = {}
        for rule in itertools.chain(self.tokens, self.rings, self.motifs, self.domains):
            out.setdefault(rule.name, rule)
        return out

    def level_of(self, symbol: str) -> int:
        """Level of a symbol: 0 tokens, 1 rings, >= 2 motifs and domains. Raises GrammarError if unknown."""
        try:
            return self.symbols[symbol].level
        except KeyError:
            raise GrammarError(f"grammar {self.name!r} has no symbol {symbol!r}") from None

    def rules_at_level(self, level: int) -> tuple[Rule, ...]:
        """Tokens (level 0), rings (level 1) or motifs then domains at ``level`` (>= 2), in grammar order."""
        if level == 0:
            return self.tokens
        if level == 1:
            return self.rings
        return tuple(r for r in itertools.chain(self.motifs, self.domains) if r.level == level)

    @property
    def levels(self) -> tuple[int, ...]:
        """The levels present, ascending."""
        return tuple(sorted({r.level for r in self.symbols.values()}))

    @property
    def n_rules(self) -> int:
        """Number of productions: rings + motifs + domains (tokens are terminals, not rules)."""
        return len(self.rings) + len(self.motifs) + len(self.domains)

    # -- statistics ----------------------------------------------------------------------------------------

    def probabilities(self) -> dict[int, dict[str, float]]:
        """The stochastic grammar: per level, symbol -> probability.

        Level 0 uses token abundances, higher levels rule counts, each normalised to sum to 1 over the level
        (domains count whole domains). A level whose counts are all zero gets a uniform distribution.
        """
        out: dict[int, dict[str, float]] = {}
        for level in self.levels:
            rules = self.rules_at_level(level)
            weights = [r.abundance if level == 0 else float(r.count) for r in rules]
            total = math.fsum(weights)
            out[level] = {
                r.name: (w / total if total > 0 else 1.0 / len(rules)) for r, w in zip(rules, weights, strict=True)
            }
        return out

    def relative_abundance(self) -> dict[str, float]:
        """Symbol -> its share of its level (the per-level probabilities, flattened into one mapping)."""
        return {s: p for per_level in self.probabilities().values() for s, p in per_level.items()}

    def description_length_bits(self) -> float:
        """Bits to write the rules down (the model part of the MDL cost); a pure function of the grammar.

        The code: the four rule counts, each in Elias gamma (``2⌊log2(n+1)⌋+1`` bits); tokens cost nothing
        more (they are the data's alphabet). A ring: 1 wildcard bit + gamma(size) + size·log2(#tokens) bits
        for its word (none for a wildcard) + gamma(count). A motif with n parts and m edges: gamma(n) +
        n·log2(#symbols available: rings and earlier motifs) + log2(n(n-1)/2) for m + log2 C(n(n-1)/2, m)
        for which edges + gamma(count). A domain: log2(#rings + #motifs) + gamma(count) + gamma(size).
        """
        bits = sum(_int_bits(len(x)) for x in (self.tokens, self.rings, self.motifs, self.domains))
        n_tok = len(self.tokens)
        for r in self.rings:
            bits += 1.0 + _int_bits(r.size) + (0.0 if r.is_wildcard else r.size * _log2(n_tok)) + _int_bits(r.count)
        for k, m in enumerate(self.motifs):
            available = len(self.rings) + k
            pairs = m.size * (m.size - 1) // 2
            bits += (
                _int_bits(m.size)
                + m.size * _log2(available)
                + _log2(pairs)
                + _log2(math.comb(pairs, len(m.edges)))
                + _int_bits(m.count)
            )
        for d in self.domains:
            bits += _log2(len(self.rings) + len(self.motifs)) + _int_bits(d.count) + _int_bits(d.size)
        return float(bits)

    # -- consistency ---------------------------------------------------------------------------------------

    def problems(self) -> list[tuple[str, str]]:
        """Every inconsistency as ``(symbol name, message)``; empty for a valid grammar.

        Checks: names are identifiers and not keywords, no name is defined twice, ring words use declared
        tokens, a motif's parts are rings or motifs defined before it (no forward references or cycles) and a
        domain's symbol is a ring or motif, levels equal 1 + the highest level of the parts, and no two rules
        of a kind have the same right-hand side (at most one wildcard per ring size).
        """
        out: list[tuple[str, str]] = []
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 0:
            out.append(("", f"version must be a non-negative integer, got {self.version!r}"))
        seen: dict[str, str] = {}
        kinds = (("token", self.tokens), ("ring", self.rings), ("motif", self.motifs), ("domain", self.domains))
        for kind, rules in kinds:
            for r in rules:
                if not is_valid_name(r.name):
                    out.append((r.name, f"{kind} name {r.name!r} is not an identifier or is a keyword"))
                if r.name in seen:
                    out.append((r.name, f"{kind} {r.name!r} is defined twice (first as a {seen[r.name]})"))
                else:
                    seen[r.name] = kind
        tokens = {t.name for t in self.tokens}
        words: dict[tuple[str, ...], str] = {}
        for r in self.rings:
            unknown = sorted({t for t in r.word if t != WILDCARD and t not in tokens})
            if unknown:
                out.append((r.name, f"ring {r.name!r} uses undeclared token(s) {', '.join(unknown)}"))
            if r.word in words:
                out.append((r.name, f"ring {r.name!r} has the same word as ring {words[r.word]!r}"))
            words.setdefault(r.word, r.name)
        levels = {r.name: 1 for r in self.rings}
        all_motifs = {m.name for m in self.motifs}
        graphs: dict[tuple, str] = {}
        for m in self.motifs:
            bad = False
            for part in dict.fromkeys(m.nodes):
                if part in levels:
                    continue
                bad = True
                if part == m.name:
                    out.append((m.name, f"motif {m.name!r} refers to itself (a cycle)"))
                elif part in all_motifs:
                    out.append((m.name, f"motif {m.name!r} refers to motif {part!r}, which is defined later "
                                        "(a motif may use only rings and earlier motifs)"))
                elif part in seen:
                    out.append((m.name, f"motif {m.name!r}: part {part!r} is a {seen[part]}; "
                                        "motif parts are rings or earlier motifs"))
                else:
                    out.append((m.name, f"motif {m.name!r} refers to unknown symbol {part!r}"))
            if not bad:
                want = 1 + max(levels[p] for p in m.nodes)
                if m.level != want:
                    out.append((m.name, f"motif {m.name!r} has level {m.level}, but its parts make it level {want}"))
            key = (m.nodes, m.edges)
            if key in graphs:
                out.append((m.name, f"motif {m.name!r} has the same graph as motif {graphs[key]!r}"))
            graphs.setdefault(key, m.name)
            levels.setdefault(m.name, m.level)
        domain_of: dict[str, str] = {}
        for d in self.domains:
            if d.symbol in levels:
                if d.level != levels[d.symbol] + 1:
                    out.append((d.name, f"domain {d.name!r} has level {d.level}, "
                                        f"but domain({d.symbol}) is level {levels[d.symbol] + 1}"))
            elif d.symbol in seen:
                out.append((d.name, f"domain {d.name!r}: {d.symbol!r} is a {seen[d.symbol]}; "
                                    "a domain repeats a ring or a motif"))
            else:
                out.append((d.name, f"domain {d.name!r} refers to unknown symbol {d.symbol!r}"))
            if d.symbol in domain_of:
                out.append((d.name, f"domain {d.name!r} repeats {d.symbol!r} like domain {domain_of[d.symbol]!r}"))
            domain_of.setdefault(d.symbol, d.name)
        return out

    def validate(self) -> Grammar:
        """Raise :class:`GrammarError` listing every problem (see :meth:`problems`); return ``self`` if valid."""
        problems = self.problems()
        if problems:
            lines = "\n".join(f"  {name or '<grammar>'}: {msg}" for name, msg in problems)
            raise GrammarError(f"invalid grammar {self.name!r}:\n{lines}")
        return self

    # -- canonical form ------------------------------------------------------------------------------------

    def canonical(self) -> Grammar:
        """An equivalent grammar with names and order derived from content.

        Tokens keep their names (they are the vocabulary) and are sorted by name. Rings are sorted by
        (size, wildcard last, word) and named ``R<size>`` when they are the only non-wildcard ring of their
        size, else ``R<size>a``, ``R<size>b``, ...; the wildcard is ``R<size>_any``, or ``R<size>`` when it is its
        size's only rule. Motifs keep their order
        (the merge order is the parse order) and are named ``M1``, ``M2``, ... in that order. Domains are sorted
        by (level, canonical name of the repeated symbol) and named ``D_<symbol>``. A generated name that
        equals a token name gets ``_`` appended. So ``g1.canonical() == g2.canonical()`` whenever ``g1`` and
        ``g2`` differ only in symbol names or in the order of tokens, rings or domains. Requires a valid grammar.
        """
        self.validate()
        taken = {t.name for t in self.tokens}

        def fresh(name: str) -> str:
            while name in taken:
                name += "_"
            taken.add(name)
            return name

        rename: dict[str, str] = {}
        rings = sorted(self.rings, key=lambda r: (r.size, r.is_wildcard, r.word))
        new_rings = []
        for size, group in itertools.groupby(rings, key=lambda r: r.size):
            group = list(group)
            plain = [r for r in group if not r.is_wildcard]
            for k, r in enumerate(group):
                if r.is_wildcard:
                    new = f"R{size}_any" if plain else f"R{size}"
                elif len(plain) == 1:
                    new = f"R{size}"
                else:
                    new = f"R{size}{_letters(k)}"
                rename[r.name] = fresh(new)
                new_rings.append(replace(r, name=rename[r.name]))
        new_motifs = []
        for k, m in enumerate(self.motifs, start=1):
            rename[m.name] = fresh(f"M{k}")
            new_motifs.append(
                MotifRule(rename[m.name], tuple(rename[p] for p in m.nodes), m.edges, m.count, m.level)
            )
        domains = sorted(self.domains, key=lambda d: (d.level, rename[d.symbol]))
        new_domains = [
            replace(d, name=fresh(f"D_{rename[d.symbol]}"), symbol=rename[d.symbol]) for d in domains
        ]
        return Grammar(
            self.name, self.version, tuple(sorted(self.tokens)), tuple(new_rings), tuple(new_motifs),
            tuple(new_domains),
        )

    # -- text and parsing ----------------------------------------------------------------------------------

    def to_text(self) -> str:
        """The grammar in the motifgram text DSL (deterministic; :meth:`parse_text` inverts it)."""
        from motifgram.grammar.dsl import write_grammar

        return write_grammar(self)

    @classmethod
    def parse_text(cls, text: str, source: str | None = None) -> Grammar:
        """Read a grammar written in the text DSL; raises GrammarSyntaxError / GrammarError.

        ``source`` (a file name) is only used in error messages.
        """
        from motifgram.grammar.dsl import read_grammar

        return read_grammar(text, source=source)

    def parse(self, graph):
        """Parse an :class:`~motifgram.engine.graph.AtomGraph` with this grammar into a parse tree.

        See :func:`motifgram.grammar.parse.parse_graph`.
        """
        from motifgram.grammar.parse import parse_graph

        return parse_graph(self, graph)
