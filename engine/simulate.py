"""Synthetic micrographs with exact ground truth.

:func:`simulate` builds an atomic structure (graphene with Stone–Wales defects and vacancies, a graphene
grain boundary, 2H-MoS2 with S vacancies and Se substitution, an ABO3 perovskite, the Cairo pentagonal
tiling, an amorphous continuous random network, or twisted bilayer 2H-MoS2), computes its truth (atoms,
bonds, rings, defects; for the bilayer, the local stacking class) and renders a HAADF-like image from it.
One seed fixes everything; the structure and the image draw from
independent streams, so imaging options (noise, background, blur) never change the truth.

Scales: at the default pixel size of every kind but ``tbl_mos2`` the nearest-neighbour distance is 8 px,
so a 512 x 512 graphene image holds ~3,100 atoms and a 2048 x 2048 one ~50,000. ``tbl_mos2`` uses 6 px
(0.0304 nm/px, lattice constant 10.4 px) so that a 1024 x 1024 image spans 3.4 moiré periods at a 2 deg
twist (``lambda = a / (2 sin(theta / 2))`` = 9.05 nm) and 6.8 at 4 deg.

Graphene defect densities (``stone_wales_density``, ``vacancy_density``: defects per atom in the image,
each < 0.1) are honoured up to jamming: defects are first spread >= 4 lattice periods apart (the default
densities never need more), then packed densely with non-overlapping footprints (no pristine hexagon
rewired by two defects), so every Stone–Wales defect keeps its two 5- and two
7-rings and every vacancy its 5- and 9-ring. Measured at 512 x 512, seed 1, one kind at a time: requested
0.005 / 0.02 / 0.05 gives 0.0051 / 0.0200 / 0.0500 Stone–Wales and 0.0051 / 0.0204 / 0.0526 vacancies per
remaining atom, bonds within 0.95-1.04 (SW) and 0.98-1.14 (vacancies) of a_CC. A warning ("placed m of n")
appears only when no free site is left (Stone–Wales alone jam near 0.08 per atom; vacancies fit up to
the 0.1 cap).

Twisted bilayer (``tbl_mos2``): two pristine MoS2 monolayers (``a = 0.316`` nm, Mo and S2 columns), the
second 2H-stacked on the first (Mo over S2, S2 over Mo) and then rotated by ``twist`` (DEGREES, unlike
the other angle options, which are radians) about a random point. Columns of both layers are rendered
and add where they overlap. The truth lists every column of both layers (labels ``"Mo@L1"``, ``"S2@L1"``,
``"Mo@L2"``, ``"S2@L2"``), no bonds, rings or defects, and :class:`Stacking`: the local stacking class
on a grid.

Coordinates are ``xy`` = (x = column, y = row) in pixels, origin at the centre of the top-left pixel.
Rings list their atoms in cyclic order, counter-clockwise as displayed (y down; negative signed area
``sum(x[i] * y[i+1] - x[i+1] * y[i]) < 0`` in raw (x, y)), starting at their smallest atom index: the
convention of :attr:`motifgram.engine.graph.AtomGraph.rings`, whose face walk they come from.

Image formation (one implementation for all kinds, :mod:`motifgram.engine.imaging`): each atom column is a
Gaussian of standard deviation ``sigma_px`` whose amplitude comes from the column's label (HAADF Z-contrast,
``sum Z**1.7`` over the column, relative to the brightest host column) on a smooth background, with Poisson
noise at ``dose`` counts per unit amplitude, read noise, scan distortion and fast-scan noise; the realistic
options (probe tail, thickness variation, drift, row jitter, contamination, background ramp and blobs) are
off by default and described there. The image is returned in units of the unit amplitude (a carbon column
in graphene peaks at ~1 above the background); :attr:`Simulation.imaging` says how it was formed.

Limitations: the spring model is a plausibility relaxation, not a force field (the 5-9 vacancy's new bond
relaxes to ~1.05 a_CC, shorter than in DFT). Grain boundaries are stitched by a distance cut, so their
seams hold some 2-coordinated atoms and faces larger than 12 atoms (not rings), and bonds there stretch
up to ~1.35 a_CC; graphene, MoS2, perovskite, Cairo and CRN truths keep a clear gap between bond and
non-bond distances (checked in the tests with a Delaunay triangulation and a length cut).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.spatial import Delaunay, cKDTree

from motifgram.engine.display import format_counts, summary_html, summary_text
from motifgram.engine.errors import MotifgramError, SpecError
from motifgram.engine.graph import face_cycles
from motifgram.engine.imaging import ImagingTruth, render
from motifgram.engine.simspec import (
    A_CC_NM,
    CAIRO_EDGE_NM,
    KINDS,
    MOS2_MO_S_NM,
    PEROVSKITE_A_NM,
    check_simulation,
    simulate_options,
)

__all__ = ["KINDS", "STACKING_CLASSES", "Defect", "Stacking", "Truth", "Simulation", "simulate", "simulate_options"]

log = logging.getLogger(__name__)

STACKING_CLASSES = ("AA'", "AB'", "A'B", "other")
"""Local stacking classes of ``tbl_mos2`` (see :class:`Stacking`)."""

MAX_RING = 12
SQRT3 = math.sqrt(3.0)


def _z_contrast(*atomic_numbers):
    """HAADF column intensity: sum of Z**1.7 over the atoms in the column."""
    return float(sum(z**1.7 for z in atomic_numbers))


_Z = {"Mo": 42, "S": 16, "Se": 34, "Sr": 38, "Ti": 22, "O": 8}
_MOS2_INTENSITY = {
    name: _z_contrast(*(_Z[a] for a in atoms)) / _z_contrast(_Z["Mo"])
    for name, atoms in {
        "Mo": ("Mo",),
        "S2": ("S", "S"),
        "S1": ("S",),
        "SSe": ("S", "Se"),
        "Se2": ("Se", "Se"),
    }.items()
}
_PEROVSKITE_B_INTENSITY = _z_contrast(_Z["Ti"], _Z["O"]) / _z_contrast(_Z["Sr"])

# --------------------------------------------------------------------------------------------------
# Data objects


@dataclass(frozen=True)
class Defect:
    """One defect of a simulated structure.

    Attributes
    ----------
    kind : str
        ``"stone_wales"``, ``"vacancy"``, ``"grain_boundary"`` or ``"s_vacancy"``.
    atoms : tuple of int
        Indices into ``Truth.xy`` (sorted): the atoms of the defect's rings (plus, for a grain boundary,
        its under- or over-coordinated atoms; for an S vacancy, the ``"S1"`` column alone).
    rings : tuple of int
        Indices into ``Truth.rings``: Stone–Wales, its two 5- and two 7-rings; vacancy, its 5- and 9-ring;
        grain boundary, every ring holding atoms of both grains or not of size 6; S vacancy, the rings
        around the column.
    """

    kind: str
    atoms: tuple[int, ...]
    rings: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Stacking:
    """Local stacking of a twisted bilayer, sampled on a square grid.

    At a point ``r`` the top layer (layer 2) is the 2H-stacked (AA') partner of layer 1 rotated by the
    twist ``theta`` about the pivot ``p``; locally it is that partner translated by
    ``u(r) = (I - R(-theta)) (r - p)``. ``u`` modulo the lattice is compared with the three high-symmetry
    registries of 2H bilayers: ``u = 0`` "AA'" (Mo over S2, S2 over Mo: 2H), ``u = -delta`` "AB'" (Mo over
    Mo, top S2 over the hollow), ``u = +delta`` "A'B" (S2 over S2, top Mo over the hollow), where ``delta``
    is the Mo -> S2 vector of layer 1 (length a / sqrt(3)). A point within ``a / 4`` of one registry takes
    its class, else ``"other"``; the three disks cover 3 x 22.7 % of the plane, so a large enough field
    of view holds ~23 % of each class and ~32 % "other" (at zero twist, 100 % "AA'").

    Attributes
    ----------
    grid_xy : (G, 2) float64 ndarray, px
        Grid points (x, y) inside the image, spaced by the lattice constant ``a``.
    grid_label : (G,) str ndarray
        One of :data:`STACKING_CLASSES` per point.
    """

    grid_xy: np.ndarray
    grid_label: np.ndarray


@dataclass(frozen=True, eq=False)
class Truth:
    """The exact structure behind a simulated micrograph.

    Attributes
    ----------
    xy : (N, 2) float64 ndarray, px
        Atom-column positions (x = column, y = row) of every column inside the image.
    label : (N,) str ndarray
        Site class of each column: ``"C"``; ``"Mo"``, ``"S2"``, ``"S1"``, ``"SSe"``, ``"Se2"``;
        ``"A"``, ``"B"``, ``"O"`` (perovskite, and Cairo 3- and 4-valent vertices as ``"A"``/``"B"``);
        ``"Mo@L1"``, ``"S2@L1"``, ``"Mo@L2"``, ``"S2@L2"`` (twisted bilayer: species and layer; a column of
        one layer that projects onto a column of the other is still two entries).
    bonds : (B, 2) int64 ndarray
        Bonds between columns, ``i < j``, rows sorted (none for a twisted bilayer: its projected columns
        form no planar bond network).
    rings : tuple of tuple of int
        Bounded faces of the bond graph of size 3..12 whose atoms are all in the image and not within
        half a bond length of its edge; atoms in cyclic order (counter-clockwise as displayed, as
        :attr:`motifgram.engine.graph.AtomGraph.rings`), smallest first.
    defects : tuple of Defect
    stacking : Stacking or None
        Local stacking classes of a twisted bilayer (``tbl_mos2``); None for every other kind.
    """

    xy: np.ndarray
    label: np.ndarray
    bonds: np.ndarray
    rings: tuple[tuple[int, ...], ...]
    defects: tuple[Defect, ...]
    stacking: Stacking | None = None

    @property
    def ring_sizes(self):
        """(R,) int64 ndarray: the number of atoms of each ring."""
        return np.array([len(r) for r in self.rings], dtype=np.int64)

    def _rows(self) -> list[tuple[str, str]]:
        def counted(values):
            names, counts = np.unique(np.asarray(values), return_counts=True)
            return format_counts({names[i]: int(counts[i]) for i in np.argsort(-counts, kind="stable")})

        rows = [("sites", counted(self.label)),
                ("rings", counted([f"{len(r)}-rings" for r in self.rings]) if self.rings else "none"),
                ("defects", counted([d.kind for d in self.defects]) if self.defects else "none")]
        if self.stacking is not None:
            rows.append(("stacking", counted(self.stacking.grid_label)))
        return rows

    def _title(self) -> str:
        return f"{len(self.xy)} atoms, {len(self.bonds)} bonds, {len(self.rings)} rings, {len(self.defects)} defects"

    def __repr__(self) -> str:
        return summary_text(f"Truth: {self._title()}", self._rows())

    def _repr_html_(self) -> str:
        return summary_html(f"Truth: {self._title()}", self._rows())

    def to_files(self, csv_path):
        """Write the atoms to ``csv_path`` and bonds, rings and defects to a sidecar JSON.

        Parameters
        ----------
        csv_path : str or Path
            The atoms CSV (columns ``id,x,y,label``; x, y in px, full float precision). The sidecar is
            ``csv_path`` with suffix ``.json``: ``{"bonds": [[i, j], ...], "rings": [[...], ...],
            "defects": [{"kind", "atoms", "rings"}, ...]}``, plus ``"stacking": {"grid_xy": [[x, y], ...],
            "grid_label": [...]}`` when the truth has one.

        Returns
        -------
        (Path, Path)
            The CSV and JSON paths written.
        """
        csv_path = Path(csv_path)
        json_path = csv_path.with_suffix(".json")
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "x", "y", "label"])
            for i, ((x, y), lab) in enumerate(zip(self.xy.tolist(), self.label.tolist())):
                writer.writerow([i, repr(x), repr(y), lab])
        sidecar = {
            "n_atoms": int(len(self.xy)),
            "bonds": self.bonds.tolist(),
            "rings": [list(r) for r in self.rings],
            "defects": [{"kind": d.kind, "atoms": list(d.atoms), "rings": list(d.rings)} for d in self.defects],
        }
        if self.stacking is not None:
            sidecar["stacking"] = {
                "grid_xy": self.stacking.grid_xy.tolist(),
                "grid_label": self.stacking.grid_label.tolist(),
            }
        json_path.write_text(json.dumps(sidecar, separators=(",", ":")))
        return csv_path, json_path

    @classmethod
    def from_files(cls, csv_path):
        """Read a truth written by :meth:`to_files` (the CSV and its ``.json`` sidecar)."""
        csv_path = Path(csv_path)
        json_path = csv_path.with_suffix(".json")
        with csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and set(rows[0]) != {"id", "x", "y", "label"}:
            raise MotifgramError(f"{csv_path}: expected columns id,x,y,label, got {','.join(rows[0])}")
        ids = [int(r["id"]) for r in rows]
        if ids != list(range(len(rows))):
            raise MotifgramError(f"{csv_path}: atom ids must be 0..N-1 in order")
        side = json.loads(json_path.read_text())
        xy = np.array([[float(r["x"]), float(r["y"])] for r in rows], dtype=np.float64).reshape(-1, 2)
        label = np.array([r["label"] for r in rows], dtype=str)
        bonds = np.array(side["bonds"], dtype=np.int64).reshape(-1, 2)
        rings = tuple(tuple(int(i) for i in r) for r in side["rings"])
        defects = tuple(Defect(d["kind"], tuple(d["atoms"]), tuple(d["rings"])) for d in side["defects"])
        stacking = None
        if "stacking" in side:
            stacking = Stacking(
                grid_xy=np.array(side["stacking"]["grid_xy"], dtype=np.float64).reshape(-1, 2),
                grid_label=np.array(side["stacking"]["grid_label"], dtype=str),
            )
        return cls(xy=xy, label=label, bonds=bonds, rings=rings, defects=defects, stacking=stacking)


@dataclass(frozen=True, eq=False)
class Simulation:
    """A synthetic micrograph and its truth.

    Attributes
    ----------
    image : (size, size) float32 ndarray
        In units of the unit column amplitude.
    truth : Truth
    pixel_size_nm : float
    options : dict
        Every option with the value used (``None`` defaults resolved, e.g. the drawn rotation in radians).
    imaging : ImagingTruth or None
        How the image was formed: the columns' positions as imaged, their amplitudes, the noiseless image
        and the contaminated pixels (:mod:`motifgram.engine.imaging`).
    """

    image: np.ndarray
    truth: Truth
    pixel_size_nm: float
    options: dict = field(default_factory=dict)
    imaging: ImagingTruth | None = None

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        height, width = self.image.shape
        title = (f"Simulation: {height} x {width} px, {self.pixel_size_nm:.4g} nm/px "
                 f"({width * self.pixel_size_nm:.3g} x {height * self.pixel_size_nm:.3g} nm)")
        return title, [("truth", self.truth._title()), *self.truth._rows()]

    def __repr__(self) -> str:
        return summary_text(*self._summary())

    def _repr_html_(self) -> str:
        return summary_html(*self._summary())


# --------------------------------------------------------------------------------------------------
# Public entry points


def simulate(kind, *, size=512, seed=0, **options):
    """Simulate a micrograph of ``kind`` and its exact truth.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    size : int
        Image side (px), >= 64. The image is ``size x size``.
    seed : int
        Seeds ``np.random.default_rng``; identical arguments give identical output.
    **options
        Kind options, see :func:`simulate_options`.

    Returns
    -------
    Simulation

    Raises
    ------
    SpecError
        Unknown kind or option, or an invalid value (paths ``simulate.<name>``).

    Examples
    --------
    >>> sim = simulate("graphene", size=128, seed=1)
    >>> sim.image.shape, sim.image.dtype
    ((128, 128), dtype('float32'))
    >>> set(sim.truth.ring_sizes.tolist()) <= {5, 6, 7, 9}
    True
    """
    opts, problems = check_simulation(kind, size, seed, options)
    if problems:
        raise SpecError(problems)
    struct_seed, image_seed, effects_seed = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(struct_seed)
    structure = _BUILDERS[kind](size, rng, opts)
    truth = _truth(structure, size)
    sigma = opts["sigma_px"] if opts["sigma_px"] is not None else 0.25 * structure.nn_px
    opts["sigma_px"] = float(sigma)
    amplitude = np.array([structure.intensity[lab] for lab in structure.label.tolist()], dtype=np.float64)
    inside = _in_image(structure.xy, size)
    image, imaging = render(
        structure.xy,
        amplitude,
        opts,
        size=size,
        nn_px=structure.nn_px,
        inside=inside,
        rng=np.random.default_rng(image_seed),
        extra_rng=np.random.default_rng(effects_seed),
    )
    log.debug("simulated %s: size=%d seed=%d atoms=%d options=%s", kind, size, seed, len(truth.xy), opts)
    return Simulation(image=image, truth=truth, pixel_size_nm=float(opts["pixel_size_nm"]), options=opts,
                      imaging=imaging)


# --------------------------------------------------------------------------------------------------
# Structures


class _DefectSpec(NamedTuple):
    """A defect before cropping: which rings belong to it and which atoms it always holds (full indices)."""

    kind: str
    selects: Callable[[tuple[int, ...]], bool]  # called only on the rings that hold an anchor atom
    anchors: tuple[int, ...]
    atoms: tuple[int, ...]
    ring_atoms: bool  # whether the atoms of the selected rings join the defect's atoms


class _Structure(NamedTuple):
    xy: np.ndarray  # (N, 2) float64 px, including a margin of atoms outside the image
    label: np.ndarray  # (N,) str
    bonds: np.ndarray  # (B, 2) int64, i < j
    defects: list  # of _DefectSpec
    nn_px: float  # nearest-neighbour (bond) distance, px
    intensity: Mapping[str, float]  # column amplitude per label
    stacking: Stacking | None = None  # local stacking classes (tbl_mos2), grid inside the image


def _rotation_matrix(theta):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _lattice(cell, basis, *, size, margin, rotation, rng):
    """Points of a rotated, randomly shifted lattice covering the image plus ``margin`` px.

    Parameters
    ----------
    cell : (2, 2) float, px
        Rows are the lattice vectors.
    basis : (K, 2) float, px
        Basis positions in the cell.

    Returns
    -------
    xy : (N, 2) float64 px
    site : (N,) int64, the basis index of each point
    """
    centre = np.full(2, (size - 1) / 2)
    radius = (size / 2 + margin) * math.sqrt(2) + np.linalg.norm(cell, axis=1).sum() + np.abs(basis).max()
    coeff_bound = np.ceil(radius * np.linalg.norm(np.linalg.inv(cell.T), axis=1)).astype(int)
    n, m = np.meshgrid(
        np.arange(-coeff_bound[0], coeff_bound[0] + 1), np.arange(-coeff_bound[1], coeff_bound[1] + 1), indexing="ij"
    )
    shift = rng.random(2) @ cell
    pts = (np.stack([n.ravel(), m.ravel()], axis=1) @ cell + shift)[:, None, :] + basis[None, :, :]
    xy = pts.reshape(-1, 2) @ _rotation_matrix(rotation).T + centre
    site = np.tile(np.arange(len(basis)), n.size)
    keep = np.all((xy >= -margin) & (xy <= size - 1 + margin), axis=1)
    return xy[keep], site[keep]


def _bonds_within(xy, cutoff):
    """(B, 2) int64 sorted pairs closer than ``cutoff``."""
    pairs = cKDTree(xy).query_pairs(cutoff, output_type="ndarray").astype(np.int64)
    return _sort_bonds(pairs)


def _sort_bonds(bonds):
    bonds = np.sort(np.asarray(bonds, dtype=np.int64).reshape(-1, 2), axis=1)
    bonds = np.unique(bonds, axis=0)
    return bonds[bonds[:, 0] != bonds[:, 1]]


def _neighbours(n, bonds):
    """CSR adjacency: ``nbr[ptr[i]:ptr[i+1]]`` are the neighbours of atom ``i``."""
    src = np.concatenate([bonds[:, 0], bonds[:, 1]])
    dst = np.concatenate([bonds[:, 1], bonds[:, 0]])
    order = np.argsort(src, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    return ptr, dst[order]


def _compact(xy, label, bonds, alive, defects):
    """Drop dead atoms, reindexing bonds and defect specs."""
    new = np.cumsum(alive) - 1
    bonds = bonds[alive[bonds].all(axis=1)]
    old_to_new = {int(o): int(new[o]) for o in np.flatnonzero(alive)}

    def remap(spec):
        selects = spec.selects
        inverse = np.flatnonzero(alive)
        return spec._replace(
            selects=lambda ring: selects(tuple(int(inverse[i]) for i in ring)),
            anchors=tuple(old_to_new[a] for a in spec.anchors if a in old_to_new),
            atoms=tuple(old_to_new[a] for a in spec.atoms if a in old_to_new),
        )

    return xy[alive], label[alive], _sort_bonds(new[bonds]), [remap(s) for s in defects]


def _prune_dangling(n, bonds, alive):
    """Mark atoms with fewer than two bonds dead, repeatedly (returns the new alive mask)."""
    alive = alive.copy()
    while True:
        live_bonds = bonds[alive[bonds].all(axis=1)]
        degree = np.bincount(live_bonds.ravel(), minlength=n)
        dangling = alive & (degree < 2)
        if not dangling.any():
            return alive
        alive &= ~dangling


def _relax(xy, bonds, mobile, *, bond_px, angle_weight=0.1, repel_px=None, n_iter=300):
    """Relax ``mobile`` atoms in a harmonic spring model.

    Energy: ``sum (|x_i - x_j| - bond_px)**2`` over bonds plus ``angle_weight * sum (|x_i - x_k| -
    sqrt(3) bond_px)**2`` over the second neighbours (i, k) around each 2- or 3-coordinated atom, which
    keeps bond angles near 120 degrees, plus, when ``repel_px`` is given, ``sum (repel_px - |x_i -
    x_j|)**2`` over non-bonded pairs closer than ``repel_px`` (pairs refreshed every 25 steps), which
    keeps a gap between bonded and non-bonded distances. Atoms not ``mobile`` stay fixed. Minimised by heavy-ball gradient
    descent in elementwise numpy (no BLAS calls: scipy's L-BFGS-B was 7x slower here on 2 busy cores
    because its BLAS threads fought; this is stable for the stiffness above, ``step * max curvature < 2``).

    Returns
    -------
    (N, 2) float64 px
    """
    n = len(xy)
    ptr, nbr = _neighbours(n, bonds)
    degree = np.diff(ptr)
    second = []
    for deg, combos in ((2, [(0, 1)]), (3, [(0, 1), (0, 2), (1, 2)])):
        centres = np.flatnonzero(degree == deg)
        table = nbr[ptr[centres][:, None] + np.arange(deg)]
        second.extend(table[:, list(c)] for c in combos)
    pairs = np.concatenate([bonds, *second])
    rest = np.concatenate([np.full(len(bonds), bond_px), np.full(len(pairs) - len(bonds), SQRT3 * bond_px)])
    weight = np.concatenate([np.ones(len(bonds)), np.full(len(pairs) - len(bonds), angle_weight)])
    touch = mobile[pairs].any(axis=1)
    i, j, rest, weight = pairs[touch, 0], pairs[touch, 1], rest[touch], weight[touch]
    out = xy.copy()
    velocity = np.zeros_like(xy)
    frozen = ~mobile
    bond_keys = bonds[:, 0] * n + bonds[:, 1]
    i0, j0, rest0, weight0 = i, j, rest, weight
    for step in range(n_iter):
        if repel_px is not None and step % 25 == 0:
            close = cKDTree(out).query_pairs(repel_px, output_type="ndarray").astype(np.int64)
            close = close[mobile[close].any(axis=1) & ~np.isin(close[:, 0] * n + close[:, 1], bond_keys)]
            i, j = np.concatenate([i0, close[:, 0]]), np.concatenate([j0, close[:, 1]])
            rest = np.concatenate([rest0, np.full(len(close), repel_px)])
            weight = np.concatenate([weight0, np.ones(len(close))])
            repulsive = np.arange(len(i)) >= len(i0)
        d = out[i] - out[j]
        length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        stretch = length - rest
        if repel_px is not None:
            stretch[repulsive] = np.minimum(stretch[repulsive], 0.0)  # repulsion only, never attraction
        g = (2 * weight * stretch / length)[:, None] * d
        grad = np.stack(
            [np.bincount(i, g[:, k], minlength=n) - np.bincount(j, g[:, k], minlength=n) for k in range(2)], axis=1
        )
        grad[frozen] = 0.0
        velocity = 0.8 * velocity - 0.08 * grad
        out += velocity
    return out


def _honeycomb(bond_px, rotation, size, margin, rng):
    """Honeycomb lattice (sublattices 0 and 1) with nearest-neighbour distance ``bond_px``."""
    a = SQRT3 * bond_px
    cell = np.array([[a, 0.0], [a / 2, a * SQRT3 / 2]])
    basis = np.array([[0.0, 0.0], [a / 2, a * SQRT3 / 6]])
    return _lattice(cell, basis, size=size, margin=margin, rotation=rotation, rng=rng)


def _draw_rotation(opts, rng, period):
    if opts["rotation"] is None:
        opts["rotation"] = float(rng.uniform(0.0, period))
    return opts["rotation"]


def _graphene(size, rng, opts):
    acc = A_CC_NM / opts["pixel_size_nm"]
    rotation = _draw_rotation(opts, rng, math.pi / 3)
    xy, _ = _honeycomb(acc, rotation, size, 4 * acc, rng)
    n = len(xy)
    bonds = _bonds_within(xy, 1.2 * acc)
    ptr, nbr = _neighbours(n, bonds)
    inside = np.all((xy >= -0.5) & (xy <= size - 0.5), axis=1)
    n_inside = int(inside.sum())
    todo = ["stone_wales"] * round(opts["stone_wales_density"] * n_inside) + ["vacancy"] * round(
        opts["vacancy_density"] * n_inside
    )
    rng.shuffle(todo)
    sites = _DefectSites(xy, bonds, ptr, nbr, size=size, acc=acc, rng=rng)
    bond_set = set(map(tuple, bonds.tolist()))
    alive = np.ones(n, dtype=bool)
    centres, defects = [], []
    for kind in todo:
        site = sites.take(kind)
        if site is None:
            break
        atom, choice = site
        centres.append(xy[atom].copy())
        neighbours = [int(k) for k in nbr[ptr[atom] : ptr[atom + 1]]]
        if kind == "stone_wales":
            i, j = atom, neighbours[choice]
            others = sorted((set(nbr[ptr[i] : ptr[i + 1]]) | set(nbr[ptr[j] : ptr[j + 1]])) - {i, j})
            mid = (xy[i] + xy[j]) / 2
            quarter = _rotation_matrix(math.pi / 2)
            xy[i] = mid + quarter @ (xy[i] - mid)
            xy[j] = mid + quarter @ (xy[j] - mid)
            for o in others:
                bond_set.discard(tuple(sorted((i, int(o)))))
                bond_set.discard(tuple(sorted((j, int(o)))))
            near_i = sorted(others, key=lambda o: float(np.hypot(*(xy[o] - xy[i]))))
            bond_set.update(tuple(sorted((i, int(o)))) for o in near_i[:2])
            bond_set.update(tuple(sorted((j, int(o)))) for o in near_i[2:])
            defects.append(_DefectSpec("stone_wales", _contains_any({i, j}), (i, j), (), True))
        else:
            n1, n2 = (neighbours[k] for k in ((0, 1), (0, 2), (1, 2))[choice])
            alive[atom] = False
            bond_set.add(tuple(sorted((n1, n2))))
            defects.append(_DefectSpec("vacancy", _contains_bond(n1, n2), (n1, n2), (), True))
    if len(defects) < len(todo):
        log.warning(
            "placed %d of %d requested graphene defects (%.4f of %.4f per atom): every remaining site's rings "
            "overlap another defect's at size %d",
            len(defects),
            len(todo),
            len(defects) / max(n_inside, 1),
            len(todo) / max(n_inside, 1),
            size,
        )
    bonds = _sort_bonds(list(bond_set))
    if centres:
        mobile = alive & (cKDTree(np.array(centres)).query(xy)[0] < 3 * SQRT3 * acc)
        xy = _relax(xy, bonds[alive[bonds].all(axis=1)], mobile, bond_px=acc)
    label = np.full(n, "C")
    xy, label, bonds, defects = _compact(xy, label, bonds, alive, defects)
    return _Structure(xy, label, bonds, defects, acc, {"C": 1.0})


class _DefectSites:
    """Where the next graphene defect goes: sparse sites first, then dense, non-interacting ones.

    A defect's *footprint* is the set of pristine hexagons it rewires: for a Stone–Wales defect on bond
    (i, j) the four hexagons holding i or j (they become its 5-, 5-, 7- and 7-rings), for a vacancy at v the
    three hexagons holding v (its 5- and 9-ring). All bonds a defect removes or adds lie inside its
    footprint, so two defects with disjoint footprints never change each other's rings, and each keeps its
    exact topology (they may still share atoms and bonds of their rings).

    Sparse phase (the only one for the default densities, which it leaves unchanged): centre atoms in
    random order at least 3 lattice periods from the image edge, each at least 4 periods from every earlier
    centre. When no such atom is left, the dense phase visits every atom once, in a new random order, and
    takes it if its footprint is disjoint from every placed defect's and all the footprint's atoms lie at
    least one bond length inside the image (for a Stone–Wales defect the three bonds of the atom are
    tried in random order). Dense Stone–Wales placement jams near 0.08 defects per atom (measured at
    512 px); vacancies fit up to the 0.1 cap (random sequential adsorption of footprints of 4 and 3
    hexagons, 0.5 hexagon per atom).
    """

    def __init__(self, xy, bonds, ptr, nbr, *, size, acc, rng):
        a = SQRT3 * acc
        border = 3 * a
        self._xy = xy.copy()  # pristine positions (the caller's array is rewired in place)
        self._bonds, self._ptr, self._nbr = bonds, ptr, nbr
        self._size, self._acc, self._rng = size, acc, rng
        candidates = np.flatnonzero(np.all((xy >= border - 0.5) & (xy <= size - 0.5 - border), axis=1))
        self._sparse = candidates[rng.permutation(len(candidates))].tolist()
        self._separation = 4 * a
        self._cursor = 0
        self._centres = []
        self._placed = []  # atoms whose hexagons form each placed defect's footprint
        self._dense = None  # (order, hexagons per atom, usable hexagon mask), built when the sparse sites run out
        self._occupied = None

    def _neighbours(self, atom):
        return [int(k) for k in self._nbr[self._ptr[atom] : self._ptr[atom + 1]]]

    def take(self, kind):
        """``(centre atom, choice)`` for a defect of ``kind``, or None when no site is left.

        ``choice`` indexes the centre's neighbours: the rotated bond's partner (Stone–Wales) or, as 0, 1, 2,
        the pair (0, 1), (0, 2), (1, 2) of neighbours that the vacancy bonds.
        """
        if self._dense is None:
            while self._cursor < len(self._sparse):
                atom = self._sparse[self._cursor]
                self._cursor += 1
                gaps = np.hypot(*(np.array(self._centres) - self._xy[atom]).T) if self._centres else [np.inf]
                if np.min(gaps) >= self._separation:
                    choice = int(self._rng.integers(3))
                    self._centres.append(self._xy[atom])
                    partner = self._neighbours(atom)[choice] if kind == "stone_wales" else None
                    self._placed.append((atom,) if partner is None else (atom, partner))
                    return atom, choice
            self._start_dense()
        order, hexes_of, usable = self._dense
        while self._cursor < len(order):
            atom = order[self._cursor]
            self._cursor += 1
            own = hexes_of[atom]
            if not usable[own].all() or self._occupied[own].any():
                continue
            if kind == "vacancy":
                choice = int(self._rng.integers(3))
                self._occupied[own] = True
                return atom, choice
            neighbours = self._neighbours(atom)
            for choice in self._rng.permutation(3).tolist():
                theirs = hexes_of[neighbours[choice]]
                if usable[theirs].all() and not self._occupied[theirs].any():
                    self._occupied[own] = True
                    self._occupied[theirs] = True
                    return atom, choice
        return None

    def _start_dense(self):
        n = len(self._xy)
        faces = [f for f in face_cycles(self._xy, self._bonds, max_ring=MAX_RING) if len(f) == 6]
        hexagons = np.array(faces, dtype=np.int64).reshape(-1, 6)
        edge = self._acc
        clear = np.all((self._xy >= edge - 0.5) & (self._xy <= self._size - 0.5 - edge), axis=1)
        usable = np.append(clear[hexagons].all(axis=1), False)  # index -1: a missing hexagon, never usable
        hexes_of = np.full((n, 3), -1, dtype=np.int64)
        filled = np.zeros(n, dtype=np.int64)
        for h, ring in enumerate(hexagons.tolist()):
            for atom in ring:
                hexes_of[atom, filled[atom]] = h
                filled[atom] += 1
        self._occupied = np.zeros(len(hexagons) + 1, dtype=bool)
        for atoms in self._placed:
            for atom in atoms:
                self._occupied[hexes_of[atom]] = True
        self._dense = (self._rng.permutation(n).tolist(), hexes_of, usable)
        self._cursor = 0
        log.debug("graphene defects: sparse sites used up after %d; placing the rest densely", len(self._placed))


def _contains_any(atoms):
    return lambda ring: any(a in atoms for a in ring)


def _contains_bond(p, q):
    def selects(ring):
        return any({ring[k], ring[k - 1]} == {p, q} for k in range(len(ring)))

    return selects


def _graphene_gb(size, rng, opts):
    acc = A_CC_NM / opts["pixel_size_nm"]
    rotation = _draw_rotation(opts, rng, math.pi / 3)
    if opts["boundary_angle"] is None:
        opts["boundary_angle"] = float(rng.uniform(0.0, math.pi))
    phi = opts["boundary_angle"]
    normal = np.array([-math.sin(phi), math.cos(phi)])
    centre = np.full(2, (size - 1) / 2)
    grains = [_honeycomb(acc, rotation + turn, size, 4 * acc, rng)[0] for turn in (0.0, opts["misorientation"])]
    side = [(g - centre) @ normal for g in grains]
    xy = np.concatenate([grains[0][side[0] < 0], grains[1][side[1] >= 0]])
    grain = np.concatenate([np.zeros((side[0] < 0).sum(), int), np.ones((side[1] >= 0).sum(), int)])
    n = len(xy)
    close = cKDTree(xy).query_pairs(0.7 * acc, output_type="ndarray")
    alive = np.ones(n, dtype=bool)
    alive[close[grain[close] == 1]] = False  # of each too-close pair across the boundary, drop grain 2's atom
    for _ in range(10):
        live = np.flatnonzero(alive)
        simplices = live[Delaunay(xy[live]).simplices]
        edges = _sort_bonds(np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]]))
        bonds = edges[np.hypot(*(xy[edges[:, 0]] - xy[edges[:, 1]]).T) <= 1.25 * acc]
        # A 3-ring at the seam is an artefact of the distance cut: drop its lone atom from the other grain.
        triangles = np.array([f for f in face_cycles(xy, bonds, max_ring=MAX_RING) if len(f) == 3], dtype=np.int64).reshape(-1, 3)
        if not len(triangles):
            break
        tags = grain[triangles]
        lone = np.where((tags.sum(axis=1) == 1)[:, None], tags == 1, tags == 0).argmax(axis=1)
        alive[triangles[np.arange(len(triangles)), lone]] = False
    alive = _prune_dangling(n, bonds, alive)
    bonds = bonds[alive[bonds].all(axis=1)]
    distance = np.abs((xy - centre) @ normal)
    xy = _relax(xy, bonds, alive & (distance < 4 * acc), bond_px=acc, repel_px=1.5 * acc)
    degree = np.bincount(bonds.ravel(), minlength=n)
    in_image = np.all((xy >= 0) & (xy <= size - 1), axis=1)
    odd = tuple(int(k) for k in np.flatnonzero(alive & in_image & (degree != 3) & (distance < 3 * acc)))
    grain_of = grain.copy()

    def selects(ring):
        return len(ring) != 6 or len({int(grain_of[k]) for k in ring}) == 2

    defects = [_DefectSpec("grain_boundary", selects, tuple(int(k) for k in np.flatnonzero(alive)), odd, True)]
    xy, label, bonds, defects = _compact(xy, np.full(n, "C"), bonds, alive, defects)
    return _Structure(xy, label, bonds, defects, acc, {"C": 1.0})


def _mos2(size, rng, opts):
    d = MOS2_MO_S_NM / opts["pixel_size_nm"]
    rotation = _draw_rotation(opts, rng, 2 * math.pi / 3)
    xy, site = _honeycomb(d, rotation, size, 4 * d, rng)
    label = np.where(site == 0, "Mo", "S2").astype("<U3")
    sulfur = np.flatnonzero(site == 1)
    vacant = rng.random(len(sulfur)) < opts["s_vacancy_density"]
    selenium = (rng.random((len(sulfur), 2)) < opts["se_fraction"]).sum(axis=1)
    label[sulfur] = np.where(vacant, "S1", np.array(["S2", "SSe", "Se2"])[selenium])
    bonds = _bonds_within(xy, 1.2 * d)
    defects = [_DefectSpec("s_vacancy", _contains_any({int(k)}), (int(k),), (int(k),), False) for k in sulfur[vacant]]
    return _Structure(xy, label, bonds, defects, d, _MOS2_INTENSITY)


def _perovskite(size, rng, opts):
    h = PEROVSKITE_A_NM / 2 / opts["pixel_size_nm"]  # A–O = B–O distance
    rotation = _draw_rotation(opts, rng, math.pi / 2)
    cell = np.array([[2 * h, 0.0], [0.0, 2 * h]])
    basis = np.array([[0.0, 0.0], [h, h], [h, 0.0], [0.0, h]])
    xy, site = _lattice(cell, basis, size=size, margin=4 * h, rotation=rotation, rng=rng)
    label = np.array(["A", "B", "O", "O"])[site]
    bonds = _bonds_within(xy, 1.2 * h)  # the square grid of step a/2: every A–O and B–O nearest neighbour
    intensity = {"A": 1.0, "B": _PEROVSKITE_B_INTENSITY, "O": opts["o_intensity"]}
    return _Structure(xy, label, bonds, [], h, intensity)


def _cairo(size, rng, opts):
    edge = CAIRO_EDGE_NM / opts["pixel_size_nm"]
    # 4-valent vertices on a square grid of step s; in each grid square a bonded pair of 3-valent vertices,
    # horizontal or vertical in a checkerboard, each bonded to the two corners on its side. All edges are
    # equal when t (half the pair's length, in units of s) solves 3 t**2 + t - 1/2 = 0.
    t = (math.sqrt(7.0) - 1) / 6
    s = edge / (2 * t)
    rotation = _draw_rotation(opts, rng, math.pi / 2)
    frac = [(0, 0), (1, 0), (0, 1), (1, 1)]
    frac += [(0.5 - t, 0.5), (0.5 + t, 0.5), (1.5 - t, 1.5), (1.5 + t, 1.5)]
    frac += [(1.5, 0.5 - t), (1.5, 0.5 + t), (0.5, 1.5 - t), (0.5, 1.5 + t)]
    basis = np.array(frac, dtype=float) * s
    xy, site = _lattice(np.array([[2 * s, 0.0], [0.0, 2 * s]]), basis, size=size, margin=4 * s, rotation=rotation, rng=rng)
    label = np.where(site < 4, "B", "A")
    bonds = _bonds_within(xy, 1.2 * edge)
    return _Structure(xy, label, bonds, [], edge, {"A": 1.0, "B": 1.0})


def _crn(size, rng, opts):
    acc = A_CC_NM / opts["pixel_size_nm"]
    # One Voronoi cell (ring) per blue-noise point; a regular hexagon of side acc has area 3 sqrt(3)/2 acc**2.
    margin = 6 * acc
    lo, hi = -2 * margin, size - 1 + 2 * margin
    n_points = round((hi - lo) ** 2 / (1.5 * SQRT3 * acc**2))
    points = rng.uniform(lo, hi, size=(n_points, 2))
    radius = opts["regularity"] * SQRT3 * acc  # repulsion radius: blue noise, short of crystallising
    for _ in range(30):
        pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
        d = points[pairs[:, 0]] - points[pairs[:, 1]]
        length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        push = (0.5 * (radius - length) / length)[:, None] * d
        for k in range(2):
            points[:, k] += np.bincount(pairs[:, 0], push[:, k], minlength=n_points)
            points[:, k] -= np.bincount(pairs[:, 1], push[:, k], minlength=n_points)
        np.clip(points, lo, hi, out=points)
    tri = Delaunay(points)
    p = points[tri.simplices]  # (T, 3, 2) -> circumcentres
    ax, ay, bx, by, cx, cy = p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1], p[:, 2, 0], p[:, 2, 1]
    den = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    sa, sb, sc = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    xy = np.stack(
        [(sa * (by - cy) + sb * (cy - ay) + sc * (ay - by)) / den, (sa * (cx - bx) + sb * (ax - cx) + sc * (bx - ax)) / den],
        axis=1,
    )
    neighbours = tri.neighbors
    own = np.repeat(np.arange(len(xy)), 3)
    bonds = np.stack([own, neighbours.ravel()], axis=1)
    bonds = _sort_bonds(bonds[bonds[:, 1] >= 0])
    alive = np.all((xy >= lo) & (xy <= hi), axis=1)
    alive = _prune_dangling(len(xy), bonds, alive)
    bonds = bonds[alive[bonds].all(axis=1)]
    # Scale the network to a mean bond of acc so that relaxing does not stretch it, then relax it whole.
    centre = np.full(2, (size - 1) / 2)
    mean_bond = np.hypot(*(xy[bonds[:, 0]] - xy[bonds[:, 1]]).T).mean()
    xy = centre + (xy - centre) * (acc / mean_bond)
    alive &= np.all((xy >= -margin) & (xy <= size - 1 + margin), axis=1)
    alive = _prune_dangling(len(xy), bonds, alive)
    bonds = bonds[alive[bonds].all(axis=1)]
    xy = _relax(xy, bonds, alive, bond_px=acc, repel_px=1.5 * acc, n_iter=400)
    xy, label, bonds, _ = _compact(xy, np.full(len(xy), "C"), bonds, alive, [])
    return _Structure(xy, label, bonds, [], acc, {"C": 1.0})


def _tbl_mos2(size, rng, opts):
    d = MOS2_MO_S_NM / opts["pixel_size_nm"]
    a = SQRT3 * d
    rotation = _draw_rotation(opts, rng, 2 * math.pi / 3)
    twist = math.radians(opts["twist"])
    pivot = rng.uniform(0.0, size - 1, size=2)
    margin = 4 * d
    # Layer 2 before the twist is layer 1's 2H partner (Mo over S2, S2 over Mo): one lattice, four basis sites.
    # Its points within reach of the image after the twist lie within `reach` of the image (plus margin).
    reach = 2 * math.sin(abs(twist) / 2) * math.sqrt(2) * (size + 2 * margin)
    cell = np.array([[a, 0.0], [a / 2, a * SQRT3 / 2]])
    delta = np.array([a / 2, a * SQRT3 / 6])  # Mo -> S2 of layer 1, in the lattice frame
    basis = np.array([[0.0, 0.0], delta, delta, [0.0, 0.0]])
    xy, site = _lattice(cell, basis, size=size, margin=margin + reach, rotation=rotation, rng=rng)
    top = site >= 2
    xy[top] = pivot + (xy[top] - pivot) @ _rotation_matrix(twist).T
    keep = np.all((xy >= -margin) & (xy <= size - 1 + margin), axis=1)
    xy, site = xy[keep], site[keep]
    names = np.array(["Mo@L1", "S2@L1", "Mo@L2", "S2@L2"])
    intensity = {name: _MOS2_INTENSITY[name.split("@")[0]] for name in names.tolist()}
    turn = _rotation_matrix(rotation)
    stacking = _stacking_classes(size, lattice=cell @ turn.T, delta=turn @ delta, twist=twist, pivot=pivot)
    return _Structure(xy, names[site], np.empty((0, 2), dtype=np.int64), [], d, intensity, stacking)


def _stacking_classes(size, *, lattice, delta, twist, pivot):
    """Local stacking class on a square grid of step ``a`` over the image (see :class:`Stacking`).

    Parameters
    ----------
    lattice : (2, 2) float, px
        Rows: layer 1's lattice vectors in the image.
    delta : (2,) float, px
        Layer 1's Mo -> S2 vector in the image.
    twist : float, rad
    pivot : (2,) float, px
    """
    a = float(np.linalg.norm(lattice[0]))
    ticks = np.arange(a / 2, size, a) - 0.5
    gx, gy = np.meshgrid(ticks, ticks)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    u = (grid - pivot) - (grid - pivot) @ _rotation_matrix(-twist).T
    inverse = np.linalg.inv(lattice)
    registries = np.array([[0.0, 0.0], -delta, delta]) @ inverse  # AA', AB', A'B in lattice coordinates
    frac = (u @ inverse)[:, None, :] - registries[None, :, :]  # (G, 3, 2)
    frac -= np.round(frac)
    cells = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    distance = np.linalg.norm((frac[:, :, None, :] + cells[None, None, :, :]) @ lattice, axis=-1).min(axis=2)
    nearest = distance.argmin(axis=1)
    label = np.array(STACKING_CLASSES)[np.where(distance.min(axis=1) <= a / 4, nearest, 3)]
    return Stacking(grid_xy=grid, grid_label=label)


_BUILDERS = {
    "graphene": _graphene,
    "graphene_gb": _graphene_gb,
    "mos2": _mos2,
    "perovskite": _perovskite,
    "cairo": _cairo,
    "crn": _crn,
    "tbl_mos2": _tbl_mos2,
}


# --------------------------------------------------------------------------------------------------
# Truth: faces and cropping


def _in_image(xy, size):
    """(N,) bool: the columns inside the image, those the truth lists."""
    return np.all((xy >= -0.5) & (xy < size - 0.5), axis=1)


def _truth(structure, size):
    xy, bonds = structure.xy, structure.bonds
    inside = _in_image(xy, size)
    edge = 0.5 * structure.nn_px
    clear = np.all((xy >= -0.5 + edge) & (xy <= size - 0.5 - edge), axis=1)
    full_rings = sorted(r for r in face_cycles(xy, bonds, max_ring=MAX_RING) if clear[list(r)].all())
    new = np.cumsum(inside) - 1
    rings = tuple(tuple(int(new[a]) for a in r) for r in full_rings)
    rings_of = [[] for _ in range(len(xy))]
    for k, ring in enumerate(full_rings):
        for a in ring:
            rings_of[a].append(k)
    defects = []
    for spec in structure.defects:
        if not all(inside[a] for a in spec.atoms):
            continue
        candidates = sorted({k for a in spec.anchors for k in rings_of[a]})
        ring_ids = tuple(k for k in candidates if spec.selects(full_rings[k]))
        atoms = {int(new[a]) for a in spec.atoms}
        if spec.ring_atoms:
            atoms.update(a for k in ring_ids for a in rings[k])
        defects.append(Defect(spec.kind, tuple(sorted(atoms)), ring_ids))
    kept = bonds[inside[bonds].all(axis=1)]
    return Truth(
        xy=xy[inside].copy(),
        label=np.asarray(structure.label[inside], dtype=str),
        bonds=_sort_bonds(new[kept]),
        rings=rings,
        defects=tuple(defects),
        stacking=structure.stacking,
    )
