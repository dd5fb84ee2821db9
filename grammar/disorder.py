"""Disorder measures of a parsed micrograph, and the single disorder index that orders materials.

Three measures (DESIGN.md, "Comparison"):

- ring-word entropy ``H``: Shannon entropy (bits) of the canonical token words of the micrograph's rings
  (size and token order both count), so a perfect crystal has ``H = 0`` and a continuous random network
  a few bits;
- domain coverage ``c``: the fraction of ring atoms inside a domain node of the parse (a crystal region);
- bits per atom under the grammar (the parse's data description length per atom).

The disorder index combines the first two, which need no reference grammar and are therefore comparable
across runs::

    disorder = ½ (1 − c) + ½ H / (1 + H)

It lies in [0, 1): 0 for a perfect, fully domain-covered crystal, approaching 1 for a network with no
domains and many ring kinds. Both terms grow monotonically with the density of defects.
"""

from typing import NamedTuple

import numpy as np

from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import distinct_ring_words, interior_graph

__all__ = [
    "DisorderMeasures", "ring_word_entropy", "domain_coverage", "disorder_index", "disorder_measures", "is_poor_fit",
    "POOR_FIT_FACTOR", "POOR_FIT_MARGIN_BITS",
]

#: A grammar fits a micrograph poorly when the micrograph costs more than ``POOR_FIT_FACTOR`` times the
#: grammar's own bits per atom plus ``POOR_FIT_MARGIN_BITS``. The factor allows a few times more defects of
#: known kinds (simulated graphene at 5x the training defect density costs 3.2x); the margin, one bit per
#: atom, is what naming every atom's token costs with a two-token vocabulary, so a near-perfect crystal
#: grammar (0.1 bits per atom) does not flag every micrograph with a few more defects. Measurements:
#: benchmarks/README.md, "Poor fit".
POOR_FIT_FACTOR = 2.0
POOR_FIT_MARGIN_BITS = 1.0


def ring_word_entropy(graph) -> float:
    """Shannon entropy (bits) of the canonical ring words of an atom graph with tokens; 0 without rings.

    Border-flagged rings do not count (:func:`motifgram.grammar.parse.interior_graph`)."""
    _, index = distinct_ring_words(interior_graph(graph))
    if len(index) == 0:
        return 0.0
    counts = np.bincount(index)
    p = counts[counts > 0] / len(index)
    return float(-(p * np.log2(p)).sum())


def domain_coverage(grammar: Grammar, parse) -> float:
    """Fraction of the atoms that belong to rings which lie inside a domain node of the parse tree."""
    domain_names = {d.name for d in grammar.domains}
    in_rings, in_domains = set(), set()
    for node in parse.root.iter_nodes():
        if node.level == 1:
            in_rings.update(node.atoms)
        if node.symbol in domain_names:
            in_domains.update(node.atoms)
    return len(in_domains & in_rings) / len(in_rings) if in_rings else 0.0


def disorder_index(entropy_bits: float, coverage: float) -> float:
    """``½ (1 − coverage) + ½ H / (1 + H)`` (module docstring), in [0, 1)."""
    return 0.5 * (1.0 - coverage) + 0.5 * entropy_bits / (1.0 + entropy_bits)


class DisorderMeasures(NamedTuple):
    """Disorder measures of one micrograph (see the module docstring)."""

    ring_entropy_bits: float
    domain_coverage: float
    bits_per_atom: float
    disorder: float


def disorder_measures(grammar: Grammar, graph, parse) -> DisorderMeasures:
    """All disorder measures of one parsed micrograph, and the combined index (module docstring)."""
    entropy = ring_word_entropy(graph)
    coverage = domain_coverage(grammar, parse)
    return DisorderMeasures(
        ring_entropy_bits=entropy,
        domain_coverage=coverage,
        bits_per_atom=float(parse.bits_per_atom),
        disorder=disorder_index(entropy, coverage),
    )


def is_poor_fit(bits_per_atom: float, own_bits_per_atom: float) -> bool:
    """Whether a grammar describes a micrograph poorly compared with the micrographs it was learned from.

    Parameters
    ----------
    bits_per_atom : float
        The micrograph's bits per atom under the grammar.
    own_bits_per_atom : float
        The grammar's own micrographs' bits per atom (atom-weighted), from the run that learned it.

    Returns
    -------
    bool
        ``bits_per_atom > POOR_FIT_FACTOR * own_bits_per_atom + POOR_FIT_MARGIN_BITS``.

    Examples
    --------
    >>> is_poor_fit(0.31, 0.097), is_poor_fit(14.4, 0.097)
    (False, True)
    """
    return bits_per_atom > POOR_FIT_FACTOR * own_bits_per_atom + POOR_FIT_MARGIN_BITS
