"""The motif grammar's text form: read it with lark, write it deterministically.

The syntax is defined in ``motifgram.lark`` next to this module::

    # motifgram grammar: counts after each rule, levels and shares in the comments
    grammar "graphene-sw" version 1

    tokens {
      A 0.98  # level 0, 98.0 % of atoms
      B 0.02  # level 0, 2.0 % of atoms
    }

    rings {
      R6 = ring(A A A A A A) 8123  # level 1, 96.1 %
      R5x = ring5(*) 3             # level 1, 0.0 %
    }

    motifs {
      M1 = R5 - R7 190                                              # level 2, 70.4 %
      SW = {a: R5, b: R5, c: R7, d: R7; a-c, a-d, b-c, b-d, c-d} 80  # level 2, 29.6 %
    }

    domains {
      D6 = domain(R6) 3 size 8000  # level 2, 1.1 %
    }

A motif is either a pair ``X - Y`` or a graph ``{label: symbol, ...; label-label, ...}`` whose labels are
local to the rule. Levels are not written (only in comments): a motif or domain is 1 + the highest level of
its parts. This module is the syntax only: :func:`read_rules` turns text into rules (with the line of each),
:func:`write_grammar` writes a grammar; :meth:`motifgram.grammar.model.Grammar.parse_text` checks that the rules
make a consistent grammar, and ``Grammar.parse_text(write_grammar(g)) == g`` for every valid grammar ``g``.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from motifgram.engine.errors import GrammarError, GrammarSyntaxError
from motifgram.grammar.rules import WILDCARD, DomainRule, MotifRule, RingRule, TokenSymbol, letters

if TYPE_CHECKING:
    from motifgram.grammar.model import Grammar

__all__ = ["GrammarText", "read_rules", "write_grammar", "GRAMMAR_ERRORS"]

log = logging.getLogger(__name__)

_HEAD = 'grammar "g" version 1\n'

# Common mistakes: a human explanation and malformed snippets that fail in the same parser state
# (matched like lark's UnexpectedInput.match_examples, as lark's own load_grammar does; see _explain).
GRAMMAR_ERRORS: list[tuple[str, list[str]]] = [
    (
        "the grammar's name is a closed, double-quoted string: grammar \"NAME\" version N",
        ['grammar "g version 1', 'grammar "g', "grammar g version 1"],
    ),
    (
        'a grammar starts with its header: grammar "NAME" version N',
        ["tokens { A 1.0 }", "rings { }", "A 1.0", 'grammar "g"\ntokens { }',
         'grammar "g" version\ntokens { }', 'grammar "g" 1', "grammar", 'grammar "g" version x'],
    ),
    (
        "unknown section name: sections are tokens, rings, motifs and domains, in that order, each at most once",
        [_HEAD + "rules { }", _HEAD + "motif { }", _HEAD + "rings { }\ntokens { }", _HEAD + "tokens { }\ntokens { }",
         _HEAD + "rings { }\nrings { }", _HEAD + "motifs { }\nmotifs { }", _HEAD + "domains { }\ndomains { }",
         _HEAD + "domains { }\nmotifs { }", _HEAD + "motifs { }\nrings { }", _HEAD + "domains { }\nrings { }",
         _HEAD + "domains { } x"],
    ),
    (
        "a section's rules go between braces: tokens { ... }",
        [_HEAD + "tokens A 1.0", _HEAD + "rings R6 = ring(A A A) 1", _HEAD + "motifs M = R5 - R7 1",
         _HEAD + "domains D = domain(R6) 1 size 1"],
    ),
    (
        "a '{' is not closed: end the section with '}' before the next section or the end of the text",
        [_HEAD + "tokens {\n A 1.0\n", _HEAD + "tokens {", _HEAD + "rings {\n R6 = ring(A A A) 1\n",
         _HEAD + "rings {", _HEAD + "motifs {\n M = R5 - R7 1\n", _HEAD + "motifs {",
         _HEAD + "domains {\n D = domain(R6) 1 size 1\n", _HEAD + "domains {",
         _HEAD + "tokens {\n A 1.0\nrings {", _HEAD + "rings {\n R6 = ring(A A A) 1\nmotifs {",
         _HEAD + "motifs {\n M = R5 - R7 1\ndomains {", _HEAD + "tokens { A 1.0\nrings"],
    ),
    (
        "a token is a name followed by its abundance, a number >= 0 (e.g. A 0.98)",
        [_HEAD + "tokens { A }", _HEAD + "tokens { A B 0.5 }", _HEAD + "tokens { A -0.5 }",
         _HEAD + "tokens { A = 0.5 }", _HEAD + "tokens { 0.5 }", _HEAD + "tokens { A x }"],
    ),
    (
        "missing '=' between the rule's name and its right-hand side (e.g. R6 = ring(A A A A A A) 12)",
        [_HEAD + "rings { R6 ring(A A A) 1 }", _HEAD + "rings { R6 ring3(*) 1 }", _HEAD + "rings { R6 }",
         _HEAD + "motifs { M R5 - R7 1 }", _HEAD + "motifs { M {a: R5, b: R7; a-b} 1 }", _HEAD + "motifs { M }",
         _HEAD + "domains { D domain(R6) 1 size 1 }", _HEAD + "domains { D }"],
    ),
    (
        "a ring needs its tokens: ring(A A A A A A), or ring<size>(*) for the wildcard of a size",
        [_HEAD + "rings { R = ring() 1 }", _HEAD + "rings { R = ring5() 1 }", _HEAD + "rings { R = ring5(A) 1 }",
         _HEAD + "rings { R = ring 1 }", _HEAD + "rings { R = ring5 1 }", _HEAD + "rings { R = ring(*) 1 }",
         _HEAD + "rings { R = ring(A, A, A) 1 }", _HEAD + "rings { R = ring5(* *) 1 }"],
    ),
    (
        "a ')' is missing",
        [_HEAD + "rings { R = ring(A A A 1 }", _HEAD + "rings { R = ring5(* 1 }",
         _HEAD + "domains { D = domain(R6 1 size 1 }"],
    ),
    (
        "a count is missing: every rule ends with its count, a non-negative integer (e.g. R6 = ring(A A A A A A) 12)",
        [_HEAD + "rings { R = ring(A A A) }", _HEAD + "rings { R = ring(A A A)\n S = ring(B B B) 1 }",
         _HEAD + "rings { R = ring3(*) }", _HEAD + "rings { R = ring3(*)\n S = ring(B B B) 1 }",
         _HEAD + "motifs { M = R5 - R7 }", _HEAD + "motifs { M = R5 - R7\n N = R5 - R6 1 }",
         _HEAD + "motifs { M = {a: R5, b: R7; a-b} }", _HEAD + "motifs { M = {a: R5, b: R7; a-b}\n N = R - S 1 }",
         _HEAD + "domains { D = domain(R6) size 1 }", _HEAD + "domains { D = domain(R6) }",
         _HEAD + "rings { R = ring(A A A) 1.5 }", _HEAD + "motifs { M = R5 - R7 x }"],
    ),
    (
        "a count must be a non-negative integer",
        [_HEAD + "rings { R = ring(A A A) -1 }", _HEAD + "rings { R = ring3(*) -1 }",
         _HEAD + "motifs { M = R5 - R7 -1 }", _HEAD + "motifs { M = {a: R5, b: R7; a-b} -1 }",
         _HEAD + "domains { D = domain(R6) -1 size 1 }", _HEAD + "domains { D = domain(R6) 1 size -1 }"],
    ),
    (
        "a domain is written D = domain(SYMBOL) COUNT size MEMBERS (e.g. D6 = domain(R6) 3 size 8000)",
        [_HEAD + "domains { D = domain(R6) 1 }", _HEAD + "domains { D = domain(R6) 1 2 }",
         _HEAD + "domains { D = domain(R6) 1 size }", _HEAD + "domains { D = domain() 1 size 1 }",
         _HEAD + "domains { D = R6 1 size 1 }", _HEAD + "domains { D = domain R6 1 size 1 }"],
    ),
    (
        "a motif is a pair X - Y or a graph {a: X, b: Y; a-b}: parts 'label: symbol' separated by ',', "
        "then ';', then edges 'label-label' separated by ','",
        [_HEAD + "motifs { M = {a: R5, b: R7, a-b} 1 }", _HEAD + "motifs { M = {a: R5, b: R7} 1 }",
         _HEAD + "motifs { M = {a: R5 b: R7; a-b} 1 }", _HEAD + "motifs { M = {a: R5, b: R7; a-b b-a} 1 }",
         _HEAD + "motifs { M = {a: R5, b: R7; a b} 1 }", _HEAD + "motifs { M = {a: R5, b: R7; } 1 }",
         _HEAD + "motifs { M = {a R5, b: R7; a-b} 1 }", _HEAD + "motifs { M = {; a-b} 1 }",
         _HEAD + "motifs { M = {a: R5, b: R7; a-b 1 }", _HEAD + "motifs { M = R5 R7 1 }",
         _HEAD + "motifs { M = R5 - 1 }", _HEAD + "motifs { M = {a: R5, b: R7; a-} 1 }",
         _HEAD + "motifs { M = {a: R5, b: R7; a-b,} 1 }", _HEAD + "motifs { M = {a: R5, b: R7,; a-b} 1 }",
         _HEAD + "motifs { M = {a:, b: R7; a-b} 1 }"],
    ),
    (
        "a rule starts with a name: letters, digits and '_', not starting with a digit",
        [_HEAD + "rings { 6R = ring(A A A) 1 }", _HEAD + "motifs { 1 = R5 - R7 1 }",
         _HEAD + "domains { 1 = domain(R6) 1 size 1 }", _HEAD + "rings { = ring(A A A) 1 }"],
    ),
]


@functools.cache
def _parser() -> Lark:
    """The DSL parser, built once."""
    return Lark.open("motifgram.lark", rel_to=__file__, parser="lalr", lexer="basic", propagate_positions=True)


def _context(text: str, line: int, column: int) -> str:
    """The ``line``-th line of ``text`` (1-based) and a caret under ``column`` (1-based)."""
    lines = text.splitlines() or [""]
    line = min(max(line, 1), len(lines))
    src = lines[line - 1].expandtabs()
    return f"{src}\n{' ' * (max(column, 1) - 1)}^"


def _syntax_error(message: str, text: str, line: int, column: int, source: str | None) -> GrammarSyntaxError:
    return GrammarSyntaxError(message, line=line, column=column, context=_context(text, line, column), source=source)


@dataclass(frozen=True)
class _At:
    """A rule with where it was written."""

    rule: TokenSymbol | RingRule | MotifRule | DomainRule | tuple
    line: int


class _LocalError(Exception):
    """A mistake inside one rule, found while transforming; carries the offending token."""

    def __init__(self, message: str, token: Token):
        super().__init__(message)
        self.token = token


class _ToModel(Transformer):
    """Parse tree -> (header, tokens, rings, raw motifs, raw domains); levels are resolved afterwards."""

    @v_args(inline=True)
    def header(self, name, version):
        try:
            return json.loads(name), int(version)
        except ValueError as exc:
            raise _LocalError(f"the grammar's name is not a valid quoted string ({exc.msg})", name) from None

    @v_args(inline=True)
    def token_decl(self, name, abundance):
        return _At(self._rule(name, TokenSymbol, str(name), float(abundance)), name.line)

    @v_args(inline=True)
    def ring_word(self, name, *rest):
        *word, count = rest
        return _At(self._rule(name, RingRule, str(name), tuple(map(str, word)), int(count)), name.line)

    @v_args(inline=True)
    def ring_wildcard(self, name, wild, count):
        size = int(wild[len("ring"):])
        return _At(self._rule(name, RingRule.wildcard, str(name), size, int(count)), name.line)

    @v_args(inline=True)
    def motif_pair(self, name, a, b, count):
        return _At((name, (str(a), str(b)), ((0, 1),), int(count)), name.line)

    @v_args(inline=True)
    def part(self, label, symbol):
        return "part", label, str(symbol)

    @v_args(inline=True)
    def link(self, a, b):
        return "link", a, b

    def motif_graph(self, children):
        name, *items, count = children
        index: dict[str, int] = {}
        nodes, edges = [], []
        for kind, first, second in items:
            if kind == "part":
                if first in index:
                    raise _LocalError(f"motif {name}: part label {str(first)!r} is declared twice", first)
                index[str(first)] = len(nodes)
                nodes.append(second)
                continue
            for end in (first, second):
                if end not in index:
                    raise _LocalError(
                        f"motif {name}: edge {first}-{second} names {str(end)!r}, which is not one of its parts "
                        f"({', '.join(index)}); declare it as '{end}: SYMBOL' before the ';'", end)
            edges.append((index[first], index[second]))
        return _At((name, tuple(nodes), tuple(edges), int(count)), name.line)

    @v_args(inline=True)
    def domain_rule(self, name, symbol, count, size):
        return _At((name, str(symbol), int(count), int(size)), name.line)

    def tokens_section(self, children):
        return "tokens", children

    def rings_section(self, children):
        return "rings", children

    def motifs_section(self, children):
        return "motifs", children

    def domains_section(self, children):
        return "domains", children

    def start(self, children):
        header, *sections = children
        return header, dict(sections)

    @staticmethod
    def _rule(name: Token, make, *args):
        try:
            return make(*args)
        except GrammarError as exc:
            raise _LocalError(str(exc), name) from None


class GrammarText(NamedTuple):
    """The rules read from a grammar's text, before they are checked as a whole.

    Attributes
    ----------
    name : str
    version : int
    tokens, rings, motifs, domains : tuple
        The rules of each section, in the order written.
    lines : dict of str to int
        The line of each rule, by its name (for the messages of the consistency check).
    """

    name: str
    version: int
    tokens: tuple
    rings: tuple
    motifs: tuple
    domains: tuple
    lines: dict


def read_rules(text: str, *, source: str | None = None) -> GrammarText:
    """Read the rules of a grammar from its text form.

    Parameters
    ----------
    text : str
        The grammar in the motifgram DSL.
    source : str, optional
        Where the text came from (a file name), for error messages.

    Returns
    -------
    GrammarText
        The rules, each valid on its own; whether they form a consistent grammar (no unknown symbol, forward
        reference or duplicate name) is :meth:`motifgram.grammar.model.Grammar.parse_text`'s check.

    Raises
    ------
    GrammarSyntaxError
        The text does not parse, or a rule is invalid on its own; the message explains the likely mistake and
        carries line, column and context.
    """
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _explain(exc, text, source) from None
    try:
        (name, version), sections = _ToModel().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, _LocalError):
            tok = exc.orig_exc.token
            raise _syntax_error(str(exc.orig_exc), text, tok.line, tok.column, source) from None
        raise
    lines: dict[str, int] = {}

    def at(item: _At, name: str):
        lines[name] = item.line
        return item.rule

    tokens = tuple(at(t, t.rule.name) for t in sections.get("tokens", ()))
    rings = tuple(at(r, r.rule.name) for r in sections.get("rings", ()))
    levels = {r.name: 1 for r in rings}
    motifs = []
    for item in sections.get("motifs", ()):
        mname, nodes, edges, count = item.rule
        level = 1 + max((levels.get(p, 1) for p in nodes), default=1)
        try:
            rule = MotifRule(str(mname), nodes, edges, count, level)
        except GrammarError as exc:
            raise _syntax_error(str(exc), text, mname.line, mname.column, source) from None
        levels.setdefault(rule.name, level)
        motifs.append(at(_At(rule, item.line), rule.name))
    domains = []
    for item in sections.get("domains", ()):
        dname, symbol, count, size = item.rule
        try:
            rule = DomainRule(str(dname), symbol, count, 1 + levels.get(symbol, 1), size)
        except GrammarError as exc:
            raise _syntax_error(str(exc), text, dname.line, dname.column, source) from None
        domains.append(at(_At(rule, item.line), rule.name))
    return GrammarText(name, version, tokens, rings, tuple(motifs), tuple(domains), lines)


def _signature(exc: UnexpectedInput) -> tuple:
    """Where a parse failed: the LALR state and what it accepted (not the stack depth, unlike
    ``UnexpectedInput.match_examples``, so a mistake is recognised whichever sections precede it)."""
    state = getattr(exc, "state", None)
    accepts = getattr(exc, "accepts", None) or getattr(exc, "expected", None) or ()
    return type(exc).__name__, getattr(state, "position", None), frozenset(accepts)


def _found(exc: UnexpectedInput) -> tuple[str, str]:
    token = getattr(exc, "token", None)
    return (token.type, str(token)) if token is not None else ("", exc.char)


@functools.cache
def _examples() -> tuple[tuple[tuple, tuple[str, str], str], ...]:
    """(signature, offending token, explanation) of every example in GRAMMAR_ERRORS, parsed once."""
    out = []
    for label, examples in GRAMMAR_ERRORS:
        for text in examples:
            try:
                _parser().parse(text)
            except UnexpectedInput as exc:
                out.append((_signature(exc), _found(exc), label))
    return tuple(out)


def _explain(exc: UnexpectedInput, text: str, source: str | None) -> GrammarSyntaxError:
    """A GrammarSyntaxError with a human explanation of a lark parse error.

    The explanation comes from the first example of GRAMMAR_ERRORS that failed in the same parser state on the
    same token, else on any token.
    """
    signature, found = _signature(exc), _found(exc)
    same_state = [(tok, label) for sig, tok, label in _examples() if sig == signature]
    label = next((label for tok, label in same_state if tok == found), None) or next(
        (label for _, label in same_state), None)
    line, column = exc.line, exc.column
    if found[0] == "$END":
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        what = "the end of the text"
    else:
        what = repr(found[1])
    message = f"unexpected {what}" + (f": {label}" if label else "")
    if not label:
        expected = sorted(getattr(exc, "accepts", None) or getattr(exc, "expected", None) or ())
        if expected:
            message += f"; expected one of {', '.join(expected)}"
    return _syntax_error(message, text, line, column, source)


# --------------------------------------------------------------------------------------------------------------
# Writing


def _percent(p: float) -> str:
    return f"{100.0 * p:.1f} %"


def _motif_rhs(m: MotifRule) -> str:
    if m.is_pair:
        return f"{m.nodes[0]} - {m.nodes[1]}"
    labels = [letters(i) for i in range(m.size)]
    parts = ", ".join(f"{labels[i]}: {s}" for i, s in enumerate(m.nodes))
    links = ", ".join(f"{labels[i]}-{labels[j]}" for i, j in m.edges)
    return f"{{{parts}; {links}}}"


def _section(title: str, rows: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return [f"{title} {{ }}"]
    width = max(len(body) for body, _ in rows)
    return [f"{title} {{"] + [f"  {body.ljust(width)}  # {comment}" for body, comment in rows] + ["}"]


def write_grammar(grammar: Grammar) -> str:
    """The grammar as DSL text (deterministic; :meth:`~motifgram.grammar.model.Grammar.parse_text` inverts it).

    Each rule is followed by a comment with its level and its share of that level (token abundance, or
    count over the level's total count).
    """
    p = grammar.probabilities()
    tokens = [(f"{t.name} {t.abundance!r}", f"level 0, {_percent(p[0][t.name])} of atoms") for t in grammar.tokens]
    rings = []
    for r in grammar.rings:
        rhs = f"ring{r.size}({WILDCARD})" if r.is_wildcard else f"ring({' '.join(r.word)})"
        rings.append((f"{r.name} = {rhs} {r.count}", f"level 1, {_percent(p[1][r.name])}"))
    motifs = [
        (f"{m.name} = {_motif_rhs(m)} {m.count}", f"level {m.level}, {_percent(p[m.level][m.name])}")
        for m in grammar.motifs
    ]
    domains = [
        (f"{d.name} = domain({d.symbol}) {d.count} size {d.size}", f"level {d.level}, {_percent(p[d.level][d.name])}")
        for d in grammar.domains
    ]
    out = [
        "# motifgram grammar: each rule ends with its count; comments give its level and share of that level",
        f"grammar {json.dumps(grammar.name, ensure_ascii=False)} version {grammar.version}",
    ]
    for title, rows in (("tokens", tokens), ("rings", rings), ("motifs", motifs), ("domains", domains)):
        out += [""] + _section(title, rows)
    return "\n".join(out) + "\n"
