"""Classification against references, with an ``unknown`` answer beyond the references' own spread.

Each item gets the label of its nearest reference (combined distance of :mod:`motifgram.grammar.compare`)
and the margin to the second nearest, unless the nearest is farther than the *unknown threshold*::

    tau = max(SPREAD_FACTOR * s, MIN_THRESHOLD)

where ``s`` is the references' own spread: the largest distance between two micrographs of one reference
run (each compared as an item of its own, in the same vocabulary), i.e. how far replicate images of one known
material lie apart. An item farther than ``tau`` from every reference is ``unknown``, with the margin
``nearest distance - tau`` (how far beyond). Without a reference of two or more micrographs ``s`` is unknown
and ``tau = DEFAULT_THRESHOLD``.

The constants (measured values: benchmarks/README.md, "Comparing grammars"): ``SPREAD_FACTOR`` 3 leaves room
for an item's micrographs scattering like the reference's; ``MIN_THRESHOLD`` keeps a reference of identical
images (pristine graphene: spread 0) from rejecting its own material with another defect density, which lies
nearer than any other material; ``DEFAULT_THRESHOLD`` is a little above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Classification", "classify", "unknown_threshold", "UNKNOWN", "SPREAD_FACTOR", "MIN_THRESHOLD",
           "DEFAULT_THRESHOLD"]

UNKNOWN = "unknown"
"""The label of an item beyond every reference's spread."""
SPREAD_FACTOR = 3.0
"""The unknown threshold in units of the references' replicate spread."""
MIN_THRESHOLD = 0.25
"""Smallest unknown threshold."""
DEFAULT_THRESHOLD = 0.3
"""The unknown threshold when no reference has two micrographs to measure a spread."""


@dataclass(frozen=True)
class Classification:
    """Nearest reference of one item, or ``unknown``.

    Attributes
    ----------
    label : str
        The nearest reference's label, or :data:`UNKNOWN`.
    nearest : str
        The nearest reference's label (also when ``label`` is unknown).
    margin : float or None
        Known: second-nearest minus nearest distance (None with a single reference). Unknown: the nearest
        distance minus the threshold.
    distances : dict of str to float
        Reference label -> combined distance.
    threshold : float
        The unknown threshold used.
    """

    label: str
    nearest: str
    margin: float | None
    distances: dict[str, float]
    threshold: float

    def to_dict(self) -> dict:
        """JSON-ready form (``classification`` of ``motifgram compare --json``)."""
        return {"label": self.label, "nearest": self.nearest,
                "margin": None if self.margin is None else round(float(self.margin), 6),
                "threshold": round(float(self.threshold), 6),
                "distances": {k: round(float(v), 6) for k, v in self.distances.items()}}


def unknown_threshold(spreads: Mapping[str, float]) -> float:
    """The unknown threshold from each reference's replicate spread (label -> largest distance between two
    of its micrographs; references of one micrograph left out)."""
    if not spreads:
        return DEFAULT_THRESHOLD
    return max(SPREAD_FACTOR * max(spreads.values()), MIN_THRESHOLD)


def classify(distances: Mapping[str, float], threshold: float) -> Classification:
    """The classification of one item from its distance to each reference.

    Examples
    --------
    >>> classify({"graphene": 0.05, "mos2": 0.8}, 0.3).label
    'graphene'
    >>> c = classify({"graphene": 0.9}, 0.3)
    >>> c.label, c.nearest, round(c.margin, 3)
    ('unknown', 'graphene', 0.6)
    """
    ordered = sorted(distances.items(), key=lambda kv: (kv[1], kv[0]))
    nearest, d = ordered[0]
    if d > threshold:
        return Classification(UNKNOWN, nearest, d - threshold, dict(distances), threshold)
    margin = ordered[1][1] - d if len(ordered) > 1 else None
    return Classification(nearest, nearest, margin, dict(distances), threshold)
