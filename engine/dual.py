"""Atoms from ring centres: the dual of a lattice of bright spots at the centres of the atom rings.

Aberration-corrected HRTEM of graphene (at some defoci) shows bright spots at the hexagon *centres*, not at
the carbon atoms. The spots form the dual lattice: a triangular lattice in which a ring of ``n`` atoms is a
spot with ``n`` neighbours, and every carbon atom (3-coordinated, in three rings) is a triangle of three
spots. :func:`ring_centre_sites` turns the spots back into atoms:

1. **Spot bonds** by :func:`motifgram.engine.graph.build_graph` (its Delaunay candidates and bond
   criterion, auto or given ``bond_factor``).
2. **Missing centres.** A face of the spot bonds with 5..``max_face`` spots, no spot inside and every
   boundary spot within :data:`CENTRE_DISTANCE` x the median spot bond of the face's centroid is a ring
   whose centre spot was not detected (a pentagon's centre is dim): its centroid becomes an *inferred
   spot*, bonded to the boundary spots. On the real flower image (HRTEM, 547 detected spots) all 9 such
   faces, 6 of them at the flower, lie within 0.3-3.0 px of a spot of the hand annotation; 6 of the 9 are
   the annotated pentagon centres.
3. **Triangles.** Delaunay triangles of the spots whose three edges are spot bonds, the two triangles of a
   face of 4 spots (a rhombus whose short diagonal the bond cut dropped), and the fans of the inferred
   spots. Triangles across larger or elongated faces (holes, contamination) or open to the outside of the
   spot network give no atoms.
4. **Atoms** at the triangles' centroids (in a perfect honeycomb the centroid of three hexagon centres is
   exactly the shared atom), bonded when their triangles share an edge: the dual graph, so the ring of
   ``n`` atoms around a spot of ``n`` triangles is exact whatever the bond lengths (a distance cut on the
   strained sites of the real flower, auto bond factor 1.37, loses 6 bonds and merges rings into 10- and
   11-rings).

Limits: an atom with two bonds (the dangling atom of a 5-9 vacancy, an edge) lies on a spot-spot edge
rather than in a triangle, so the dual cannot hold it, and the rings near it differ from the truth. Two
adjacent missing spots leave an elongated face, which gives no atoms: the atoms around it form one large
ring (not kept as a ring when larger than the graph's ``max_ring``).
"""

import logging
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay, QhullError

from motifgram.engine.detect import Atoms
from motifgram.engine.errors import MotifgramError, NoLatticeError
from motifgram.engine.graph import build_graph, empty_polygons, face_cycles, triangle_regions

__all__ = ["MAX_FACE_SPOTS", "CENTRE_DISTANCE", "RingCentreSites", "ring_centre_sites", "atoms_at_ring_centres"]

log = logging.getLogger(__name__)

#: Largest face of the spot bonds (spots on its boundary) whose missing centre spot is inferred: a ring of
#: up to 8 atoms (graphene's rings are 5 to 8).
MAX_FACE_SPOTS = 8
#: A face's centre is inferred only when every boundary spot lies within this range of its centroid, in
#: median spot bonds of the face (a pentagon's centre is ~0.85 spot bonds from its neighbours, a heptagon's
#: ~1.15; real flower: 0.70-1.12). Elongated faces (two missing spots) are left empty.
CENTRE_DISTANCE = (0.6, 1.4)


class RingCentreSites(NamedTuple):
    """Atom sites dual to a lattice of ring-centre spots.

    Attributes
    ----------
    xy : (M, 2) float64 ndarray, px
        Atom positions (x = column, y = row): centroids of the spot triangles, sorted by y, then x.
    bonds : (B, 2) int64 ndarray
        Atom pairs whose triangles share an edge, ``i < j``, sorted.
    triangles : (M, 3) int64 ndarray
        The three spots of each atom, ascending: indices into the input spots, ``N + k`` for the inferred
        spot ``k``.
    inferred_xy : (K, 2) float64 ndarray, px
        Inferred centre spots of faces without one (module docstring, step 2).
    spot_bonds : (S, 2) int64 ndarray
        Bonds of the detected spots, ``i < j``, sorted.
    spot_bond_factor : float
        Bond factor of the spot lattice (given or auto, see :func:`motifgram.engine.graph.build_graph`).
    """

    xy: np.ndarray
    bonds: np.ndarray
    triangles: np.ndarray
    inferred_xy: np.ndarray
    spot_bonds: np.ndarray
    spot_bond_factor: float


def ring_centre_sites(spots_xy, *, image_shape, bond_factor=None, max_face=MAX_FACE_SPOTS):
    """Atoms and bonds of the lattice whose ring centres are ``spots_xy`` (module docstring).

    Parameters
    ----------
    spots_xy : (N, 2) array_like of float, px
        Spot positions (x = column, y = row), finite, no duplicates.
    image_shape : tuple of int
        ``(H, W)`` of the micrograph, px.
    bond_factor : float or None
        Bond factor of the spot lattice (> 1); None: auto (:func:`motifgram.engine.graph.build_graph`).
    max_face : int
        Largest face of the spot bonds, in spots (>= 4), whose missing centre is inferred; 4: none is.

    Returns
    -------
    RingCentreSites
        Empty arrays when the spots form no triangle.

    Raises
    ------
    MotifgramError
        Malformed spots or parameters (as :func:`motifgram.engine.graph.build_graph`).

    Examples
    --------
    Seven spots of a triangular lattice (a centre and its six neighbours, 10 px apart) give the six atoms
    of the hexagon around the centre, each bonded to two others; without the centre spot, the same six
    atoms come from the inferred centre (six spots are too few for the auto bond factor).

    >>> angles = np.arange(6) * np.pi / 3
    >>> spots = np.vstack([[0, 0], 10 * np.c_[np.cos(angles), np.sin(angles)]]) + 50
    >>> sites = ring_centre_sites(spots, image_shape=(100, 100))
    >>> len(sites.xy), len(sites.bonds), np.round(np.hypot(*(sites.xy - 50).T), 3).tolist()
    (6, 6, [5.774, 5.774, 5.774, 5.774, 5.774, 5.774])
    >>> ring = ring_centre_sites(spots[1:], image_shape=(100, 100), bond_factor=1.3)
    >>> len(ring.xy), len(ring.bonds), ring.inferred_xy.round(3).tolist()
    (6, 6, [[50.0, 50.0]])
    """
    if isinstance(max_face, bool) or not isinstance(max_face, (int, np.integer)) or max_face < 4:
        raise MotifgramError(f"max_face must be an integer >= 4 (spots), got {max_face!r}")
    spot_graph = build_graph(spots_xy, image_shape=image_shape, bond_factor=bond_factor, max_ring=3)
    xy, spot_bonds = spot_graph.xy, spot_graph.bonds
    n = len(xy)
    tri = None
    if n >= 3:
        try:
            tri = Delaunay(xy)
        except QhullError:  # collinear spots: no triangle
            pass
    if tri is None:
        return RingCentreSites(np.empty((0, 2)), np.empty((0, 2), dtype=np.int64), np.empty((0, 3), dtype=np.int64),
                               np.empty((0, 2)), spot_bonds, spot_graph.bond_factor)
    # bonded triangles and the two triangles of a 4-spot face: regions of at most 2 triangles, not outside
    region, n_tri, _ = triangle_regions(xy, spot_bonds, tri)
    of_triangle = region[:-1]
    filled = np.sort(tri.simplices[(of_triangle != region[-1]) & (n_tri[of_triangle] <= 2)].astype(np.int64), axis=1)
    faces, centres = _faces_without_centre(xy, spot_bonds, max_face)
    fans = [np.sort(np.stack([np.full(len(f), n + k), f, np.roll(f, -1)], axis=1), axis=1)
            for k, f in enumerate(faces)]
    triangles = np.concatenate([filled, *fans]) if fans else filled
    everything = np.concatenate([xy, centres])
    atoms = everything[triangles].mean(axis=1)
    order = np.lexsort((atoms[:, 0], atoms[:, 1]))
    triangles, atoms = triangles[order], atoms[order]
    bonds = _shared_edges(triangles, n + len(centres))
    log.info("ring centres: %d spots (bond factor %.3f) and %d inferred centres -> %d atom sites, %d bonds",
             n, spot_graph.bond_factor, len(centres), len(atoms), len(bonds))
    return RingCentreSites(atoms, bonds, triangles, centres, spot_bonds, spot_graph.bond_factor)


def atoms_at_ring_centres(image: np.ndarray, spots: Atoms, *, bond_factor: float | None = None
                          ) -> tuple[Atoms, RingCentreSites]:
    """The atoms of the lattice whose ring centres are the detected ``spots`` (``detect.spots: ring_centres``).

    Positions and bonds come from :func:`ring_centre_sites` (``bond_factor`` bonds the spots; None: auto).
    Each atom's intensity is the image at its position, interpolated bilinearly (in HRTEM of graphene with
    bright hexagon centres the carbon sites are the darker points between them); the lattice period is the
    spots' (the dual lattice has the same period) and the nearest-neighbour distance the median length of
    the dual bonds.

    Raises
    ------
    NoLatticeError
        When the spots make fewer than two atoms (no triangle of bonded spots).
    """
    sites = ring_centre_sites(spots.xy, image_shape=image.shape, bond_factor=bond_factor)
    if len(sites.xy) < 2:
        raise NoLatticeError(
            f"{len(spots)} spots give {len(sites.xy)} atom sites (no triangle of bonded spots); with detect.spots: "
            "ring_centres the spots must form a lattice"
        )
    xy = sites.xy.astype(np.float32)
    intensity = ndimage.map_coordinates(np.asarray(image, dtype=np.float32), [xy[:, 1], xy[:, 0]], order=1,
                                        mode="nearest")
    bond_len = np.hypot(*(sites.xy[sites.bonds[:, 1]] - sites.xy[sites.bonds[:, 0]]).T)
    nn = float(np.median(bond_len)) if len(bond_len) else spots.nn_distance_px / np.sqrt(3.0)
    return Atoms(xy=xy, intensity=intensity.astype(np.float32), lattice_period_px=spots.lattice_period_px,
                 nn_distance_px=nn, periodic=spots.periodic), sites


def _faces_without_centre(xy, bonds, max_face):
    """Faces of 5..max_face spots that lack their centre spot: (list of (k,) int64 cycles, (K, 2) centroids)."""
    cycles = [np.array(f, dtype=np.int64) for f in face_cycles(xy, bonds, max_ring=max_face) if len(f) >= 5]
    if not cycles:
        return [], np.empty((0, 2))
    width = max(map(len, cycles))
    length = np.array([len(f) for f in cycles])
    ring = np.array([np.concatenate([f, -1 - np.arange(len(f), width)]) for f in cycles])
    empty = empty_polygons(xy, ring, length)
    bond_len = np.hypot(*(xy[bonds[:, 1]] - xy[bonds[:, 0]]).T)
    lo, hi = CENTRE_DISTANCE
    faces, centres = [], []
    for f, ok in zip(cycles, empty.tolist()):
        centre = xy[f].mean(axis=0)
        on_face = np.isin(bonds[:, 0], f) & np.isin(bonds[:, 1], f)
        scale = np.median(bond_len[on_face])
        dist = np.hypot(*(xy[f] - centre).T) / scale
        if ok and lo <= dist.min() and dist.max() <= hi:
            faces.append(f)
            centres.append(centre)
    return faces, np.array(centres, dtype=np.float64).reshape(-1, 2)


def _shared_edges(triangles, n_spots):
    """(B, 2) int64 pairs of triangles (rows of ``triangles``, sorted) that share an edge, ``i < j``, sorted."""
    if len(triangles) == 0:
        return np.empty((0, 2), dtype=np.int64)
    a, b, c = triangles.T
    key = np.concatenate([a * n_spots + b, a * n_spots + c, b * n_spots + c])
    owner = np.tile(np.arange(len(triangles)), 3)
    order = np.argsort(key, kind="stable")
    key, owner = key[order], owner[order]
    same = np.flatnonzero(key[1:] == key[:-1])  # an edge borders at most two triangles of a planar set
    pairs = np.sort(np.stack([owner[same], owner[same + 1]], axis=1), axis=1)
    return np.unique(pairs, axis=0).reshape(-1, 2)
