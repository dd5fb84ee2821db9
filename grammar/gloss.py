"""A grammar at a glance: every rule with a one-line gloss, ranked by its share of the description-length gain.

A gloss says what a rule covers (the ring sizes under it), how often it is used and where it lies in the
micrographs (from the parse trees: the bounding box and centroid of its occurrences' atoms, in pixels).
Rules are ranked by the bits they saved when induction chose them (``InductionResult.gains_bits``, kept in
``summary.json`` as ``grammar.gains_bits``); wildcard rings, which every parse needs, and rules of a
grammar read without its run have no gain and follow, most used first. ``motifgram show`` prints this table
(``--top N`` for the first N; :mod:`motifgram.engine.show`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from motifgram.grammar.dsl import rule_rhs
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import ParseNode
from motifgram.grammar.rules import DomainRule, MotifRule, RingRule

__all__ = ["RulePlace", "RuleGloss", "rule_places", "rule_glosses", "format_glosses"]


@dataclass(frozen=True)
class RulePlace:
    """Where a symbol's occurrences lie in one micrograph.

    Attributes
    ----------
    n : int
        Occurrences (parse nodes with the symbol).
    centroid_xy : (float, float), px
        Mean of the occurrences' centroids.
    bbox_xy : (float, float, float, float), px
        ``(x_min, y_min, x_max, y_max)`` of the occurrences' atoms.
    """

    n: int
    centroid_xy: tuple[float, float]
    bbox_xy: tuple[float, float, float, float]


@dataclass(frozen=True)
class RuleGloss:
    """One rule of a grammar, glossed.

    Attributes
    ----------
    name : str
    rule : str
        The rule as written in the text form (without its count).
    count : int
        The rule's count in the grammar.
    ring_sizes : tuple of int
        Sizes of the rings one occurrence covers, ascending (a domain: its ring's size once).
    gain_bits : float or None
        Bits the rule saved when it was chosen; None when unknown.
    share : float or None
        ``gain_bits`` over the sum of all positive gains.
    places : dict of str to RulePlace
        Image id -> where the rule's occurrences lie (empty without parse trees).
    members : int or None
        A domain's rings over all its regions (None for other rules).
    """

    name: str
    rule: str
    count: int
    ring_sizes: tuple[int, ...]
    gain_bits: float | None
    share: float | None
    places: Mapping[str, RulePlace]
    members: int | None = None

    @property
    def gloss(self) -> str:
        """``rings 5 5 7 7; 32 x; img-1: x 20-490, y 15-500, centre (251, 240)`` (one line; a domain:
        ``regions of 6-rings; 2 x, 1306 rings; ...``)."""
        sizes = " ".join(map(str, self.ring_sizes))
        if self.members is not None:
            parts = [f"regions of {sizes}-rings", f"{self.count} x, {self.members} rings"]
        else:
            parts = [f"rings {sizes}", f"{self.count} x"]
        if self.places:
            image, place = max(self.places.items(), key=lambda kv: (kv[1].n, kv[0]))
            x0, y0, x1, y1 = place.bbox_xy
            cx, cy = place.centroid_xy
            where = f"{image}: x {x0:.0f}-{x1:.0f}, y {y0:.0f}-{y1:.0f}, centre ({cx:.0f}, {cy:.0f})"
            if len(self.places) > 1:
                where += f" (+{len(self.places) - 1} more images)"
            parts.append(where)
        return "; ".join(parts)


def _ring_sizes(grammar: Grammar, name: str) -> tuple[int, ...]:
    rule = grammar.symbols[name]
    if isinstance(rule, RingRule):
        return (rule.size,)
    if isinstance(rule, MotifRule):
        return tuple(sorted(s for part in rule.nodes for s in _ring_sizes(grammar, part)))
    return _ring_sizes(grammar, rule.symbol)


def rule_places(parses: Mapping[str, ParseNode], xy: Mapping[str, np.ndarray]) -> dict[str, dict[str, RulePlace]]:
    """Symbol -> image -> :class:`RulePlace`, for every node of level >= 1 of the parse trees.

    Parameters
    ----------
    parses : dict of str to ParseNode
        Image id -> parse tree.
    xy : dict of str to (N, 2) float ndarray, px
        Image id -> atom positions (ids as in the parse).
    """
    out: dict[str, dict[str, RulePlace]] = {}
    for image, root in parses.items():
        positions = np.asarray(xy[image], dtype=float).reshape(-1, 2)
        found: dict[str, list[np.ndarray]] = {}
        for node in root.iter_nodes():
            if node.level >= 1 and node is not root and node.atoms:
                found.setdefault(node.symbol, []).append(positions[list(node.atoms)])
        for symbol, groups in found.items():
            centres = np.array([g.mean(axis=0) for g in groups])
            everything = np.concatenate(groups)
            lo, hi = everything.min(axis=0), everything.max(axis=0)
            out.setdefault(symbol, {})[image] = RulePlace(
                len(groups), (float(centres[:, 0].mean()), float(centres[:, 1].mean())),
                (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))
    return out


def rule_glosses(grammar: Grammar, gains_bits: Mapping[str, float] | None = None,
                 places: Mapping[str, Mapping[str, RulePlace]] | None = None) -> list[RuleGloss]:
    """Every rule of ``grammar`` glossed, ranked by share of the gain (then count, then name)."""
    gains_bits = gains_bits or {}
    places = places or {}
    names = [r.name for r in (*grammar.rings, *grammar.motifs, *grammar.domains)]
    total = math.fsum(g for n, g in gains_bits.items() if n in grammar.symbols and g > 0)
    out = []
    for name in names:
        gain = gains_bits.get(name)
        share = gain / total if gain is not None and total > 0 else None
        rule = grammar.symbols[name]
        out.append(RuleGloss(name, rule_rhs(rule), rule.count, _ring_sizes(grammar, name), gain, share,
                             dict(places.get(name, {})), rule.size if isinstance(rule, DomainRule) else None))
    return sorted(out, key=lambda g: (g.share is None, -(g.share or 0.0), -g.count, g.name))


def format_glosses(glosses: list[RuleGloss], *, top: int | None = None) -> str:
    """The ranked rules as text lines: share, rule, count, gloss (``top``: only the first ``top``)."""
    shown = glosses if top is None else glosses[:top]
    lines = ["# rules by share of the description-length gain"
             + (f" (top {len(shown)} of {len(glosses)})" if len(shown) < len(glosses) else "") + ":"]
    width = max((len(f"{g.name} = {g.rule}") for g in shown), default=0)
    for g in shown:
        share = f"{100 * g.share:5.1f} %" if g.share is not None else "    – "
        lines.append(f"#  {share}  {f'{g.name} = {g.rule}'.ljust(width)}  {g.gloss}")
    return "\n".join(lines)
