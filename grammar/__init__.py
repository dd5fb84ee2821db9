"""motifgram.grammar: the motif grammar of a material — DSL, induction, parsing, comparison."""

# The engine first: its pipeline imports this package's modules, and they import the engine's errors, so
# loading the engine before this package's names keeps either import order free of circular imports.
import motifgram.engine  # noqa: F401

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
