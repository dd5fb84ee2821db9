"""Synthetic micrographs with exact ground truth.

:func:`simulate` builds an atomic structure (graphene with Stone–Wales defects, single and double vacancies
and dislocation dipoles, a graphene grain boundary, 2H-MoS2 with S vacancies and Se substitution, Se
clusters and S-vacancy lines, an ABO3 perovskite, the Cairo pentagonal
tiling, an amorphous continuous random network, or twisted bilayer 2H-MoS2), computes its truth (atoms,
bonds, rings, defects; for the bilayer, the local stacking class) and renders a HAADF-like image from it.
One seed fixes everything; the structure and the image draw from
independent streams, so imaging options (noise, background, blur) never change the truth.

Scales: at the default pixel size of every kind but ``tbl_mos2`` the nearest-neighbour distance is 8 px,
so a 512 x 512 graphene image holds ~3,100 atoms and a 2048 x 2048 one ~50,000. ``tbl_mos2`` uses 6 px
(0.0304 nm/px, lattice constant 10.4 px) so that a 1024 x 1024 image spans 3.4 moiré periods at a 2 deg
twist (``lambda = a / (2 sin(theta / 2))`` = 9.05 nm) and 6.8 at 4 deg.

Graphene defect densities (``stone_wales_density``, ``vacancy_density`` (5-9), ``divacancy_density`` (5-8-5),
``dislocation_density`` (dipoles of two 5-7 cores, made by a second bond rotation next to a Stone–Wales
defect): defects per atom in the image, each < 0.1) are honoured up to jamming: defects are first spread
>= 4 lattice periods apart (the default densities never need more), then packed densely with
non-overlapping footprints (no pristine hexagon rewired by two defects), so every defect keeps its rings
(Stone–Wales two 5- and two 7-rings, a vacancy its 5- and 9-ring, a divacancy 5-8-5, a dislocation core
5-7). Measured at 512 x 512, seed 1, one kind at a time: requested
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from motifgram.engine.display import format_counts, summary_html, summary_text
from motifgram.engine.errors import MotifgramError, SpecError
from motifgram.engine.graph import face_cycles
from motifgram.engine.graphene_structures import build_graphene, build_graphene_gb
from motifgram.engine.imaging import ImagingTruth, render
from motifgram.engine.simspec import KINDS, check_simulation, simulate_options
from motifgram.engine.structures import (
    MAX_RING,
    STACKING_CLASSES,
    Stacking,
    build_cairo,
    build_crn,
    build_mos2,
    build_perovskite,
    build_tbl_mos2,
    sort_bonds,
)

__all__ = ["KINDS", "STACKING_CLASSES", "Defect", "Stacking", "Truth", "Simulation", "simulate", "simulate_options"]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Data objects


@dataclass(frozen=True)
class Defect:
    """One defect of a simulated structure.

    Attributes
    ----------
    kind : str
        ``"stone_wales"``, ``"vacancy"``, ``"divacancy"``, ``"dislocation"`` (one 5-7 core of a dipole),
        ``"grain_boundary"``, ``"s_vacancy"``, ``"se_cluster"`` or ``"s_vacancy_line"``.
    atoms : tuple of int
        Indices into ``Truth.xy`` (sorted): the atoms of the defect's rings (plus, for a grain boundary,
        its under- or over-coordinated atoms; for an S vacancy, Se cluster or S-vacancy line, its columns
        alone).
    rings : tuple of int
        Indices into ``Truth.rings``: Stone–Wales, its two 5- and two 7-rings; vacancy, its 5- and 9-ring;
        divacancy, its two 5-rings and its 8-ring; dislocation, its 5- and 7-ring; grain boundary, every
        ring holding atoms of both grains or not of size 6; S vacancy, Se cluster and S-vacancy line, the
        rings around its columns.
    """

    kind: str
    atoms: tuple[int, ...]
    rings: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Truth:
    """The exact structure behind a simulated micrograph.

    Attributes
    ----------
    xy : (N, 2) float64 ndarray, px
        Atom-column positions (x = column, y = row) of every column inside the image.
    label : (N,) str ndarray
        Site class of each column: ``"C"``, ``"Si"`` (graphene dopant); ``"Mo"``, ``"S2"``, ``"S1"``, ``"SSe"``, ``"Se2"``;
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


_BUILDERS = {
    "graphene": build_graphene,
    "graphene_gb": build_graphene_gb,
    "mos2": build_mos2,
    "perovskite": build_perovskite,
    "cairo": build_cairo,
    "crn": build_crn,
    "tbl_mos2": build_tbl_mos2,
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
        bonds=sort_bonds(new[kept]),
        rings=rings,
        defects=tuple(defects),
        stacking=structure.stacking,
    )
