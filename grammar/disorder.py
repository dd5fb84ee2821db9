"""Disorder measures of a parsed micrograph, and the single disorder index that orders materials.

Four measures (DESIGN.md, "Comparison"):

- ring-word entropy ``H``: Shannon entropy (bits) of the canonical token words of the micrograph's rings
  (size and token order both count), so a perfect crystal has ``H = 0`` and a continuous random network
  a few bits;
- domain coverage ``c``: the fraction of ring atoms inside a domain node of the parse (a crystal region);
- lattice order ``L``: the bond-orientational order ``|<exp(i n theta)>|`` of the bonds' directions ``theta``
  within a few bond lengths of each atom, averaged over the atoms, for the best ``n`` of
  :data:`LATTICE_HARMONICS`: 1 when the bonds around every atom lie along the directions of one lattice (each
  grain of a polycrystal its own), near 0 for a network without one;
- bits per atom under the grammar (the parse's data description length per atom).

The disorder index combines the first three, which need no reference grammar and are therefore comparable
across runs::

    disorder = 1 - (1 - D_rings) L,    D_rings = ½ (1 − c) + ½ H / (1 + H)

It lies in [0, 1]: 0 for a perfect, fully domain-covered crystal, approaching 1 for a network with no
domains, many ring kinds and no lattice; it grows with each of ``D_rings`` and ``1 − L``. The lattice term
separates what rings alone cannot: graphene with 5 % defects has rings as irregular as a random network
(ring-size entropy, hexagon share and ``mu2`` overlap) but keeps its lattice (benchmarks/README.md, "Comparing
grammars"). ``L`` is local, so a grain boundary between two crystals costs only the atoms near it: measured
image-wide, two grains' bonds point along two lattices and read as lost order (examples/real_comparison.md).
"""

from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi

from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import distinct_ring_words, interior_graph

__all__ = [
    "DisorderMeasures", "ring_word_entropy", "domain_coverage", "lattice_order", "disorder_index", "disorder_measures",
    "is_poor_fit", "LATTICE_HARMONICS", "LATTICE_CELL_BONDS", "LATTICE_BLOCK_CELLS", "POOR_FIT_FACTOR",
    "POOR_FIT_MARGIN_BITS",
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


#: Harmonics ``n`` of the bonds' directions in :func:`lattice_order`. Bonds are undirected (``theta`` modulo
#: 180 degrees) and a 2D lattice's bond directions repeat under its rotations of order 4 or 6: every 90 degrees
#: (square: along the axes, ``n = 4``; with the diagonals, ``n = 8``) or every 60 degrees (hexagonal, ``n = 6``;
#: with a second family of bonds at 30 degrees, ``n = 12``).
LATTICE_HARMONICS = (4, 6, 8, 12)


#: Side of the square cells over which :func:`lattice_order` sums the bonds, in median bond lengths; each cell's
#: order is measured over the block of ``(2 LATTICE_BLOCK_CELLS + 1)²`` cells around it, 8 bond lengths wide:
#: about 70 bonds of a honeycomb, beyond the one or two bond lengths over which any network of 3-coordinated atoms
#: keeps its bonds' directions, and small against a grain. Measurements: benchmarks/README.md, "Comparing grammars".
LATTICE_CELL_BONDS = 1.6
LATTICE_BLOCK_CELLS = 2


def _block_sums(grid: np.ndarray, half: int) -> np.ndarray:
    """Sum of each cell's ``(2 half + 1)²`` block over the last two axes of ``grid`` (zero beyond its edges)."""
    width = 2 * half + 1
    return ndi.uniform_filter(grid, size=(1,) * (grid.ndim - 2) + (width, width), mode="constant") * width**2


def lattice_order(graph) -> float:
    """Local bond-orientational order of an atom graph, averaged over its atoms (module docstring).

    The bonds are binned by their midpoints into square cells :data:`LATTICE_CELL_BONDS` median bond lengths
    wide. Over the block of cells around each cell (:data:`LATTICE_BLOCK_CELLS` on each side), its ``m`` bonds
    give ``|psi_n|^2 = |<exp(i n theta)>|^2``, estimated without the ``1 / m`` it has for ``m`` random
    directions as ``(|sum exp(i n theta)|^2 - m) / (m (m - 1))``; the cell's order is its square root (0 where the
    estimate is negative). ``L`` is the mean over the atoms (each with its cell's order; cells whose block holds
    fewer than two bonds do not count), for the ``n`` of :data:`LATTICE_HARMONICS` that gives the largest mean.
    Linear in the atoms, with memory for one value per cell and harmonic.

    Parameters
    ----------
    graph : AtomGraph
        Positions ``xy`` (px) and ``bonds``.

    Returns
    -------
    float
        In [0, 1]: 1 when around every atom the bonds' directions ``theta`` lie a multiple of ``360° / n`` apart,
        whatever each grain's orientation; near 0 for random directions; 1 where no block holds two bonds
        (no lattice measured, so the disorder index is that of the rings alone).

    Examples
    --------
    >>> from motifgram.engine.graph import AtomGraph
    >>> xy = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.866], [1.5, 0.866]])
    >>> graph = AtomGraph(xy, np.array(["A"] * 4), [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)], (), (2, 2))
    >>> round(lattice_order(graph), 3)
    1.0
    """
    bonds = np.asarray(graph.bonds, dtype=np.int64).reshape(-1, 2)
    if len(bonds) < 2:
        return 1.0
    d = graph.xy[bonds[:, 1]] - graph.xy[bonds[:, 0]]
    theta = np.arctan2(d[:, 1], d[:, 0])
    cell_px = LATTICE_CELL_BONDS * float(np.median(np.hypot(d[:, 0], d[:, 1])))
    origin = graph.xy.min(axis=0)
    atom_cells = np.floor((graph.xy - origin) / cell_px).astype(np.int64)  # (column, row) of each atom's cell
    cols, rows = atom_cells.max(axis=0) + 1
    bond_cells = np.floor((0.5 * (graph.xy[bonds[:, 0]] + graph.xy[bonds[:, 1]]) - origin) / cell_px).astype(np.int64)
    bond_flat = bond_cells[:, 1] * cols + bond_cells[:, 0]
    phase = np.exp(1j * np.outer(LATTICE_HARMONICS, theta))  # (harmonics, bonds)
    sums = np.stack([np.bincount(bond_flat, p.real, rows * cols) + 1j * np.bincount(bond_flat, p.imag, rows * cols)
                     for p in phase]).reshape(len(LATTICE_HARMONICS), rows, cols)
    # bond counts: whole numbers again after the filter's rounding, so that the two-bond minimum is exact
    m = np.rint(_block_sums(np.bincount(bond_flat, minlength=rows * cols).reshape(rows, cols).astype(np.float64),
                            LATTICE_BLOCK_CELLS))
    psi2 = (np.abs(_block_sums(sums, LATTICE_BLOCK_CELLS)) ** 2 - m) / np.where(m >= 2, m * (m - 1), np.inf)
    atoms = np.bincount(atom_cells[:, 1] * cols + atom_cells[:, 0], minlength=rows * cols).reshape(rows, cols)
    weight = np.where(m >= 2, atoms, 0)
    if weight.sum() == 0:
        return 1.0
    orders = (np.sqrt(np.clip(psi2, 0.0, 1.0)) * weight).sum(axis=(1, 2)) / weight.sum()
    return float(orders.max())


def disorder_index(entropy_bits: float, coverage: float, lattice: float = 1.0) -> float:
    """``1 − (1 − D_rings) lattice`` with ``D_rings = ½ (1 − coverage) + ½ H / (1 + H)`` (module docstring),
    in [0, 1]; ``lattice`` (:func:`lattice_order`) is 1 where no bonds are known (a grammar's estimate)."""
    rings = 0.5 * (1.0 - coverage) + 0.5 * entropy_bits / (1.0 + entropy_bits)
    return 1.0 - (1.0 - rings) * lattice


class DisorderMeasures(NamedTuple):
    """Disorder measures of one micrograph (see the module docstring)."""

    ring_entropy_bits: float
    domain_coverage: float
    lattice_order: float
    bits_per_atom: float
    disorder: float


def disorder_measures(grammar: Grammar, graph, parse) -> DisorderMeasures:
    """All disorder measures of one parsed micrograph, and the combined index (module docstring)."""
    entropy = ring_word_entropy(graph)
    coverage = domain_coverage(grammar, parse)
    lattice = lattice_order(graph)
    return DisorderMeasures(
        ring_entropy_bits=entropy,
        domain_coverage=coverage,
        lattice_order=lattice,
        bits_per_atom=float(parse.bits_per_atom),
        disorder=disorder_index(entropy, coverage, lattice),
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
