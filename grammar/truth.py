"""A parse against a simulation's truth: which rule names each kind of defect, and how often it is used.

For every kind of defect in the truth (:class:`~motifgram.engine.simulate.Defect`: Stone–Wales, vacancy,
divacancy, dislocation core, Se cluster, S-vacancy line, ...), :func:`defect_rules` finds the parse nodes
whose rings are exactly one defect's rings: a grammar *names* the defect when such nodes exist, and the
rule that names it is the symbol most of them carry. Its count is the number of nodes with that symbol in
the parse (true and false occurrences alike), to be compared with the number of defects of the kind whose
rings all lie in the image. Detected micrographs are compared through :func:`match_rings`, which maps
detected rings onto truth rings by their atoms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from motifgram.grammar.parse import ParseNode

__all__ = ["DefectRule", "defect_rules", "match_rings", "ring_sets"]


@dataclass(frozen=True)
class DefectRule:
    """How a grammar's parse names one kind of defect.

    Attributes
    ----------
    kind : str
        The defect kind (``Defect.kind``).
    truth : int
        Defects of the kind with all their rings in the parsed graph (complete in the image).
    symbol : str or None
        The symbol of most parse nodes that hold exactly one such defect's rings; None if none does.
    named : int
        Defects held exactly by a node with ``symbol``.
    count : int
        Top-level nodes with ``symbol`` in the parse (children of the root: the occurrences that are not part
        of a larger motif; 0 without a symbol).
    uses : int
        All nodes with ``symbol`` (a 5-7 dislocation core inside a Stone–Wales defect too).
    """

    kind: str
    truth: int
    symbol: str | None
    named: int
    count: int
    uses: int

    @property
    def relative_error(self) -> float:
        """``|count - truth| / truth`` (inf when the kind has no complete defect)."""
        return abs(self.count - self.truth) / self.truth if self.truth else float("inf")


def ring_sets(root: ParseNode) -> list[tuple[str, frozenset]]:
    """``(symbol, rings under it)`` for every node above the rings; a ring is the frozenset of its atom ids."""
    out = []

    def walk(node: ParseNode) -> frozenset:
        if node.level == 1:
            return frozenset({frozenset(node.atoms)})
        under = frozenset().union(*[walk(c) for c in node.children if c.level >= 1]) if node.children else frozenset()
        if node.level >= 2:
            out.append((node.symbol, under))
        return under

    for child in root.children:
        walk(child)
    return out


def defect_rules(root: ParseNode, rings: Sequence[Sequence[int]], defects) -> dict[str, DefectRule]:
    """Per defect kind, the rule that names it in a parse (module docstring).

    Parameters
    ----------
    root : ParseNode
        The parse tree of a micrograph (``parse_graph(...).root``).
    rings : sequence of sequence of int
        The rings of the parsed graph, as atom ids of that graph.
    defects : iterable
        Objects with ``kind`` and ``rings`` (indices into ``rings``; ``None`` for a ring the graph lacks), e.g.
        a simulation's ``Truth.defects`` (after :func:`match_rings` for a detected graph). A defect with fewer
        rings than the most any defect of its kind has is cut by the image edge and not counted.

    Returns
    -------
    dict of str to DefectRule
    """
    ring_set = [frozenset(r) for r in rings]
    defects = list(defects)
    full = Counter()
    for d in defects:
        full[d.kind] = max(full[d.kind], len(d.rings))
    by_kind: dict[str, list[frozenset]] = {kind: [] for kind in full}
    for d in defects:
        if len(d.rings) == full[d.kind] and all(k is not None for k in d.rings):
            by_kind[d.kind].append(frozenset(ring_set[k] for k in d.rings))
    nodes = ring_sets(root)
    symbol_of = {}
    for symbol, under in nodes:
        symbol_of.setdefault(under, symbol)  # pre-order: the highest node with exactly these rings
    uses = Counter(symbol for symbol, _ in nodes)
    top = Counter(c.symbol for c in root.children if c.level >= 2)
    out = {}
    for kind, instances in sorted(by_kind.items()):
        named = Counter(symbol_of[s] for s in instances if s in symbol_of)
        symbol = min(named, key=lambda s: (-named[s], s)) if named else None
        out[kind] = DefectRule(kind, len(instances), symbol, named[symbol] if symbol else 0,
                               top[symbol] if symbol else 0, uses[symbol] if symbol else 0)
    return out


def match_rings(xy: np.ndarray, rings: Sequence[Sequence[int]], truth_xy: np.ndarray,
                truth_rings: Sequence[Sequence[int]], *, tolerance_px: float) -> list[int | None]:
    """For every truth ring, the index of the detected ring with the same atoms, or None.

    Parameters
    ----------
    xy : (N, 2) float ndarray, px
        Detected atom positions.
    rings : sequence of sequence of int
        Detected rings (ids into ``xy``).
    truth_xy : (M, 2) float ndarray, px
        True positions.
    truth_rings : sequence of sequence of int
        True rings (ids into ``truth_xy``).
    tolerance_px : float
        A detected atom is a true atom when it is the nearest detected atom to it and within this distance.
    """
    distance, nearest = cKDTree(np.asarray(xy, dtype=float)).query(np.asarray(truth_xy, dtype=float))
    detected_of = {int(t): int(d) for t, (d, dist) in enumerate(zip(nearest, distance, strict=True))
                   if dist <= tolerance_px}
    index = {frozenset(r): k for k, r in enumerate(rings)}
    out = []
    for ring in truth_rings:
        atoms = [detected_of.get(int(a)) for a in ring]
        out.append(index.get(frozenset(atoms)) if None not in atoms else None)
    return out
