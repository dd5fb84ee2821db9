"""motifgram.grammar: the motif grammar of a material — DSL, induction, parsing, comparison."""

from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import DomainRule, MotifRule, RingRule, TokenSymbol
from motifgram.grammar.parse import ParseNode, ParseResult, parse_graph

__all__ = [
    "Grammar",
    "TokenSymbol",
    "RingRule",
    "MotifRule",
    "DomainRule",
    "induce_grammar",
    "parse_graph",
    "ParseNode",
    "ParseResult",
]
