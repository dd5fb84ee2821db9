"""The motif grammar as data: :class:`Grammar` holds the rules of :mod:`motifgram.grammar.rules`.

Every rule carries its count, so the grammar is stochastic (:meth:`Grammar.probabilities`) and has a
description length (:meth:`Grammar.description_length_bits`). Its text form is written and read by
:mod:`motifgram.grammar.dsl` (:meth:`Grammar.to_text`, :meth:`Grammar.parse_text`); it is applied to an
atom graph by :mod:`motifgram.grammar.parse` (:meth:`Grammar.parse`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from motifgram.engine.display import format_counts, plural, summary_html, summary_text
from motifgram.engine.errors import GrammarError
from motifgram.grammar import dsl
from motifgram.grammar.parse import parse_graph
from motifgram.grammar.rules import (
    WILDCARD,
    DomainRule,
    MotifRule,
    RingRule,
    Rule,
    TokenSymbol,
    is_valid_name,
    letters,
)

__all__ = ["Grammar"]


def _int_bits(n: int) -> float:
    """Bits of the Elias gamma code of ``n + 1`` (a universal code for integers n >= 0)."""
    return float(2 * (n + 1).bit_length() - 1)


def _log2(n: int) -> float:
    return math.log2(n) if n > 1 else 0.0


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

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        by_count = lambda rules: format_counts({r.name: r.count for r in sorted(rules, key=lambda r: -r.count)})
        rows = [
            ("tokens", format_counts({t.name: f"{t.abundance:.1%}" for t in self.tokens})),
            ("rules", f"{self.n_rules} ({plural(len(self.rings), 'ring')}, {plural(len(self.motifs), 'motif')}, "
                      f"{plural(len(self.domains), 'domain')}), levels {self.levels[0] if self.levels else 0}-{self.levels[-1] if self.levels else 0}"),
            *((label, by_count(rules)) for label, rules in
              (("rings", self.rings), ("motifs", self.motifs), ("domains", self.domains)) if rules),
            ("description length", f"{self.description_length_bits():.1f} bits"),
        ]
        return f"Grammar {self.name!r} (version {self.version})", rows

    def __repr__(self) -> str:
        return summary_text(*self._summary())

    def _repr_html_(self) -> str:
        return summary_html(*self._summary())

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
        size, else ``R<size>a``, ``R<size>b``, ...; the wildcard is ``R<size>_any``. Motifs keep their order
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
                    new = f"R{size}_any"
                elif len(plain) == 1:
                    new = f"R{size}"
                else:
                    new = f"R{size}{letters(k)}"
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
        return dsl.write_grammar(self)

    @classmethod
    def parse_text(cls, text: str, source: str | None = None) -> Grammar:
        """Read a grammar written in the text DSL (:mod:`motifgram.grammar.dsl`).

        ``source`` (a file name) is only used in error messages.

        Raises
        ------
        GrammarSyntaxError
            The text does not parse; the message explains the likely mistake and carries line, column and
            context.
        GrammarError
            The text parses but the grammar is inconsistent (unknown symbol, forward reference, duplicate
            name); the message names the rule and its line.
        """
        parts = dsl.read_rules(text, source=source)
        grammar = cls(parts.name, parts.version, parts.tokens, parts.rings, parts.motifs, parts.domains)
        problems = grammar.problems()
        if problems:
            where = f" in {source}" if source else ""
            msgs = "\n".join(
                f"  line {parts.lines[rule]}: {msg}" if rule in parts.lines else f"  {msg}" for rule, msg in problems
            )
            raise GrammarError(f"invalid grammar {parts.name!r}{where}:\n{msgs}")
        return grammar

    def parse(self, graph):
        """Parse an :class:`~motifgram.engine.graph.AtomGraph` with this grammar into a parse tree.

        See :func:`motifgram.grammar.parse.parse_graph`.
        """
        return parse_graph(self, graph)
