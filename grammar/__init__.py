"""motifgram.grammar: the motif grammar of a material — DSL, induction, parsing, comparison."""

from .induce import induce_grammar
from .model import DomainRule, Grammar, MotifRule, RingRule, TokenSymbol
from .parse import ParseNode, ParseResult, parse_graph

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
