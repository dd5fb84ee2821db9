"""Tests for motifgram.grammar.dsl: the text form's round trip and its error messages."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motifgram.engine.errors import GrammarError, GrammarSyntaxError
from motifgram.grammar.dsl import GRAMMAR_ERRORS, write_grammar
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import DomainRule, MotifRule, RingRule, TokenSymbol, is_valid_name

read_grammar = Grammar.parse_text

EXAMPLE = """\
# motifgram grammar, written by hand
grammar "graphene-sw" version 1
tokens  {
  A 0.98      # level 0
  B 0.02
}
rings   {
  R6 = ring(A A A A A A) 8123    # level 1, 96.1 %
  R5 = ring(A A A A A) 211
  R7 = ring(A A A A A A A) 190
  R5x = ring5(*) 3
}
motifs  {
  M1 = R5 - R7 190
  SW = {a: R5, b: R7, c: R7, d: R5; a-b, a-c, b-c, d-b, d-c} 80   # the Stone-Wales 55-77 cluster
  M3 = {x: M1, y: SW; x-y} 2
}
domains {
  D6 = domain(R6) 3 size 8000
}
"""


def assert_round_trip(g: Grammar) -> None:
    text = g.to_text()
    assert Grammar.parse_text(text) == g
    assert write_grammar(read_grammar(text)) == text


def test_reads_the_example():
    g = Grammar.parse_text(EXAMPLE)
    assert g.name == "graphene-sw" and g.version == 1
    assert g.tokens == (TokenSymbol("A", 0.98), TokenSymbol("B", 0.02))
    assert g.rings[3] == RingRule.wildcard("R5x", 5, 3)
    sw = g.symbols["SW"]
    assert sw == MotifRule("SW", ("R5", "R7", "R7", "R5"), ((0, 1), (0, 2), (1, 2), (1, 3), (2, 3)), 80, 2)
    assert g.symbols["M1"] == MotifRule("M1", ("R5", "R7"), ((0, 1),), 190, 2)
    assert g.level_of("M3") == 3  # recomputed from the parts
    assert g.domains == (DomainRule("D6", "R6", 3, 2, 8000),)
    assert_round_trip(g)


def test_written_text_is_readable():
    text = Grammar.parse_text(EXAMPLE).to_text()
    assert 'grammar "graphene-sw" version 1' in text
    assert "R5x = ring5(*) 3" in text
    assert "M1 = R5 - R7 190" in text
    assert "SW = {a: R5, b: R5, c: R7, d: R7; a-c, a-d, b-c, b-d, c-d} 80" in text
    assert "D6 = domain(R6) 3 size 8000" in text
    assert "# level 3, 100.0 %" in text


def test_sections_may_be_omitted_or_empty():
    assert Grammar.parse_text('grammar "x" version 2') == Grammar("x", 2)
    g = Grammar.parse_text('grammar "x" version 0 tokens { } rings { } motifs { } domains { }')
    assert g == Grammar("x", 0)
    assert_round_trip(g)


def test_one_line_sections_and_odd_names():
    g = Grammar.parse_text('grammar "a \\"quoted\\" name # not a comment" version 3\ntokens { A 0.5 B 5e-06 }')
    assert g.name == 'a "quoted" name # not a comment'
    assert g.tokens[1].abundance == 5e-06
    assert_round_trip(g)


# -- hypothesis: every valid grammar round-trips ---------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(is_valid_name)


@st.composite
def grammars(draw):
    names = draw(st.lists(NAMES, min_size=20, max_size=20, unique=True))
    pool = iter(names)
    tokens = tuple(
        TokenSymbol(next(pool), draw(st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False)))
        for _ in range(draw(st.integers(0, 3)))
    )
    count = st.integers(0, 10**9)
    rings, words = [], set()
    if tokens:
        for _ in range(draw(st.integers(0, 4))):
            word = draw(st.lists(st.sampled_from([t.name for t in tokens]), min_size=3, max_size=8))
            rule = RingRule(next(pool), tuple(word), draw(count))
            if rule.word not in words:
                words.add(rule.word)
                rings.append(rule)
    for size in draw(st.sets(st.integers(3, 9), max_size=2)):
        rings.append(RingRule.wildcard(next(pool), size, draw(count)))
    rings = draw(st.permutations(rings))
    levels = {r.name: 1 for r in rings}
    motifs, graphs = [], set()
    if rings:
        for _ in range(draw(st.integers(0, 4))):
            n = draw(st.integers(2, 5))
            nodes = draw(st.lists(st.sampled_from(sorted(levels)), min_size=n, max_size=n))
            edges = {(draw(st.integers(0, i - 1)), i) for i in range(1, n)}
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
            edges |= set(draw(st.lists(st.sampled_from(pairs), max_size=3)))
            rule = MotifRule(next(pool), tuple(nodes), tuple(edges), draw(count), 1 + max(levels[p] for p in nodes))
            if (rule.nodes, rule.edges) not in graphs:
                graphs.add((rule.nodes, rule.edges))
                motifs.append(rule)
                levels[rule.name] = rule.level
    domains = []
    if levels:
        for symbol in draw(st.sets(st.sampled_from(sorted(levels)), max_size=3)):
            c = draw(count)
            domains.append(DomainRule(next(pool), symbol, c, levels[symbol] + 1, c + draw(st.integers(0, 10**6))))
    name = draw(st.text(max_size=12))
    return Grammar(name, draw(st.integers(0, 1000)), tokens, tuple(rings), tuple(motifs), tuple(domains)).validate()


@settings(max_examples=250, deadline=None)
@given(grammars())
def test_text_round_trip_is_the_identity(g):
    assert_round_trip(g)


def _renamed(g: Grammar, data) -> Grammar:
    """The same grammar with fresh nonterminal names and shuffled ring and domain order."""
    old = [r.name for r in (*g.rings, *g.motifs, *g.domains)]
    taken = {t.name for t in g.tokens}
    fresh = NAMES.filter(lambda s: s not in taken)
    new = data.draw(st.lists(fresh, min_size=len(old), max_size=len(old), unique=True))
    m = dict(zip(old, new, strict=True))
    return Grammar(
        g.name, g.version, data.draw(st.permutations(g.tokens)),
        tuple(RingRule(m[r.name], r.word, r.count) for r in data.draw(st.permutations(g.rings))),
        tuple(MotifRule(m[x.name], tuple(m[p] for p in x.nodes), x.edges, x.count, x.level) for x in g.motifs),
        tuple(
            DomainRule(m[d.name], m[d.symbol], d.count, d.level, d.size) for d in data.draw(st.permutations(g.domains))
        ),
    ).validate()


@settings(max_examples=200, deadline=None)
@given(grammars(), st.data())
def test_canonical_is_idempotent_and_ignores_names_and_order(g, data):
    c = g.canonical()
    assert c.canonical() == c
    assert _renamed(g, data).canonical() == c
    assert_round_trip(c)


# -- syntax errors ---------------------------------------------------------------------------------------------

HEAD = 'grammar "g" version 1\n'


@pytest.mark.parametrize(
    "text, line, column, explanation",
    [
        (HEAD + "rings {\n  R6 ring(A A A A A A) 5\n}", 3, 6, "missing '='"),
        (HEAD + "tokens { A 1.0 }\nmotifs {\n  M1 R5 - R7 5\n}", 4, 6, "missing '='"),
        (HEAD + "tokens {\n  A 1.0\n", 3, 8, "is not closed"),
        (HEAD + "tokens {\n  A 1.0\nrings {\n  R = ring(A A A) 1\n}", 4, 1, "is not closed"),
        (HEAD + "tokens { A 1.0 }\nrings {\n  R6 = ring(A A A A A A)\n  R5 = ring(A A A A A) 4\n}", 5, 3,
         "count is missing"),
        (HEAD + "tokens { A 1.0 }\nrings {\n  R6 = ring(A A A A A A)\n}", 5, 1, "count is missing"),
        (HEAD + "motifs {\n  M = R5 - R7\n}", 4, 1, "count is missing"),
        (HEAD + "rulez {\n}", 2, 1, "unknown section name"),
        (HEAD + "rings { }\ntokens { }", 3, 1, "unknown section name"),
        (HEAD + "rings {\n  R = ring() 4\n}", 3, 12, "a ring needs its tokens"),
        (HEAD + "rings {\n  R = ring6(A) 4\n}", 3, 13, "a ring needs its tokens"),
        (HEAD + "rings {\n  R = ring(A A A) -4\n}", 3, 19, "non-negative integer"),
        (HEAD + "domains {\n  D = domain(R6) 2 size -5\n}", 3, 25, "non-negative integer"),
        (HEAD + "domains {\n  D = domain(R6) 2\n}", 4, 1, "domain is written"),
        (HEAD + "motifs {\n  M = {a: R5, b: R7, a-b} 1\n}", 3, 23, "a motif is a pair"),
        (HEAD + "tokens {\n  A -0.5\n}", 3, 5, "abundance"),
        ('grammar "g version 1\n', 1, 9, "double-quoted"),
        ("tokens { A 1.0 }", 1, 1, "starts with its header"),
    ],
)
def test_syntax_errors_explain_the_mistake_with_line_and_column(text, line, column, explanation):
    with pytest.raises(GrammarSyntaxError) as info:
        read_grammar(text, source="bad.txt")
    err = info.value
    assert explanation in str(err)
    assert (err.line, err.column) == (line, column)
    assert str(err).startswith(f"bad.txt:{line}:{column}: ")
    src, caret = err.context.split("\n")
    assert src == text.splitlines()[line - 1]
    assert caret == " " * (column - 1) + "^"


def test_edge_naming_an_undeclared_label_points_at_it():
    text = HEAD + "rings { R5 = ring3(*) 1\n R7 = ring4(*) 1 }\nmotifs {\n  M = {a: R5, b: R7; a-c} 1\n}"
    with pytest.raises(GrammarSyntaxError, match=r"names 'c', which is not one of its parts \(a, b\)") as info:
        read_grammar(text)
    assert (info.value.line, info.value.column) == (5, 24)


@pytest.mark.parametrize(
    "body, match",
    [
        ("motifs {\n  M = {a: R5, a: R7; a-a} 1\n}", "declared twice"),
        ("motifs {\n  M = {a: R5, b: R7; a-b, b-a} 1\n}", "listed twice"),
        ("motifs {\n  M = {a: R5, b: R7, c: R7; a-b} 1\n}", "not connected"),
        ("domains {\n  D = domain(R5) 3 size 2\n}", "less than count"),
        ("rings {\n  R = ring(A A) 1\n}", "at least 3 tokens"),
        ("tokens {\n  A 1e999\n}", "finite"),
    ],
)
def test_malformed_rules_are_syntax_errors_on_their_line(body, match):
    with pytest.raises(GrammarSyntaxError, match=match) as info:
        read_grammar(HEAD + body)
    assert info.value.line == 3


def test_every_table_entry_is_recognised():
    for explanation, examples in GRAMMAR_ERRORS:
        for text in examples:
            with pytest.raises(GrammarSyntaxError) as info:
                read_grammar(text)
            assert explanation in str(info.value), text


# -- semantic errors -------------------------------------------------------------------------------------------

R5 = "rings { R5 = ring(A A A A A) 1 }\n"


@pytest.mark.parametrize(
    "body, match",
    [
        (R5 + "motifs {\n  M = R5 - R9 1\n}", r"line 5: motif 'M' refers to unknown symbol 'R9'"),
        (R5 + "motifs {\n  M = R5 - N 1\n  N = R5 - R5 1\n}", r"line 5: .*'N', which is defined later"),
        (R5 + "motifs {\n  M = M - R5 1\n}", r"line 5: motif 'M' refers to itself"),
        ("rings {\n  R5 = ring(A A A A A) 1\n  R5 = ring(A A A A A A) 1\n}", r"line 5: ring 'R5' is defined twice"),
        ("rings {\n  R5 = ring(A A A A A) 1\n  R5b = ring(B A A A A) 1\n}",
         r"line 5: ring 'R5b' uses undeclared token\(s\) B"),
        (R5 + "domains {\n  D = domain(Q) 1 size 1\n}", r"line 5: domain 'D' refers to unknown symbol 'Q'"),
    ],
)
def test_semantic_errors_name_the_rule_and_line(body, match):
    text = HEAD + "tokens { A 1.0 }\n" + body
    with pytest.raises(GrammarError, match=match) as info:
        read_grammar(text)
    assert not isinstance(info.value, GrammarSyntaxError)
