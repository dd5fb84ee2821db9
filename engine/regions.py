"""Which atoms belong to the material's bonded network (crystal, its defects, or glass) and which do not.

A micrograph's material is a planar network whose atoms share one coordination, one bond length and one set
of bond angles: a crystal, a 2-D glass, their defects. Amorphous contamination, amorphous carbon on a crystal,
and noise peaks in vacuum or in holes give detections that form no such network. Rings found there are not
the material's, so the graph stage labels each atom, and on a crystal drops the rings made mostly of atoms
that are not *ordered* (below).

Rules (:func:`atom_regions`):

- An atom is *regular* when its degree is a common one (held by at least :data:`COMMON_DEGREE` of the atoms),
  its bond lengths, sorted, differ from the median sorted bond lengths of the atoms of that degree by at most
  :data:`BOND_TOLERANCE` median bonds, and the angles between its consecutive bonds, sorted, differ from that
  degree's median ones by at most :data:`ANGLE_TOLERANCE` (lattices with two bond lengths or two kinds of
  vertex are regular; a triangle of noise peaks in a honeycomb is not). An atom within one bond of the image
  edge, or on the outer face of the network within a bond of its convex hull (the edge of a flake), whose
  neighbours may be missing, has no say. An atom is *voted* into the network when at least half of the atoms
  with a say within :data:`NEIGHBOURHOOD_BONDS` bonds of it (itself included) are regular: a lone defect atom
  (the 2-coordinated atom of a 5-9 vacancy, a grain-boundary atom) sits among regular ones and stays in.
- A crystal's bonds point along a few directions everywhere in a grain; contamination, noise and glass have no
  such order. The bond-orientational order of an atom is ``psi_k = mean(exp(i k theta))`` over its bonds
  (``k`` in :data:`SYMMETRIES`: 6 for honeycomb and hexagonal lattices, 4 for square ones) and its *coherence*
  ``|sum psi_k| / count`` over the atoms within :data:`COHERENCE_BONDS` bonds (1 in a grain; ~0.3 among
  random bonds). The image holds a *lattice* when at least :data:`CRYSTAL_SHARE` of the atoms reach
  :data:`CRYSTAL_COHERENCE` for one ``k``. Its *lattice atoms* are those of coherence at least
  :data:`LATTICE_COHERENCE` of which at least half of the atoms within :data:`NEIGHBOURHOOD_BONDS` bonds are
  lattice atoms too (a chance alignment in a patch is alone).
- With a lattice, the network is the lattice atoms and the regular voted atoms within :data:`LATTICE_REACH`
  bonds of one (defects and grain boundaries lie within a bond or two of their grains; the inside of a
  contamination patch does not). Without one (a glass, amorphous throughout) it is the voted atoms.
- An atom with no say is regular when what it has fits: its bond lengths within the typical ones' range and
  no angle between consecutive bonds narrower than the typical narrowest (missing neighbours only widen them).
- An atom is *ordered* when it is regular and voted: its own bonds fit and so do most of its neighbours'. On a
  crystal the rings of :mod:`motifgram.engine.graph` are those made, or enclosed, mostly by ordered atoms. This
  test, unlike the lattice atoms, needs no bond orientation: a Stone-Wales bond turned by 90 degrees or a cluster
  of vacancies keeps its 3-coordinated atoms with crystal bond lengths and angles, whatever the defect density,
  while amorphous carbon over the crystal gives triangles, 4-coordinated atoms and bent bonds.
"""

import logging
import math
from typing import NamedTuple

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

__all__ = [
    "ANGLE_TOLERANCE", "BOND_TOLERANCE", "COHERENCE_BONDS", "COMMON_DEGREE", "CRYSTAL_COHERENCE", "CRYSTAL_SHARE",
    "LATTICE_COHERENCE", "LATTICE_REACH", "NEIGHBOURHOOD_BONDS", "REGION_DISORDERED", "REGION_NETWORK", "Regions",
    "SYMMETRIES", "atom_regions",
]

log = logging.getLogger(__name__)

#: Largest difference of a regular atom's sorted bond lengths from its degree's typical ones, in median bonds.
BOND_TOLERANCE = 0.3
#: Largest difference of a regular atom's sorted angles between consecutive bonds from its degree's typical
#: ones, rad (a Stone-Wales pentagon's 108 degrees against the honeycomb's 120 is in; a triangle's 60 is out).
ANGLE_TOLERANCE = math.radians(30.0)
#: Least share of the atoms that makes a degree a common one.
COMMON_DEGREE = 0.2
#: Radius of the neighbourhood that votes, in median bond lengths.
NEIGHBOURHOOD_BONDS = 1.6
#: Rotational symmetries of the bond-orientational order tried for a lattice.
SYMMETRIES = (4, 6)
#: Radius of the neighbourhood over which the bond-orientational order is averaged, in median bond lengths.
COHERENCE_BONDS = 2.0
#: Coherence of a crystal's interior, and the least share of the atoms reaching it for an image to hold a lattice
#: (measured: 2-D glass 0.00 of its atoms at 0.8; graphene with a quarter of it under contamination 0.61-0.66).
CRYSTAL_COHERENCE = 0.8
CRYSTAL_SHARE = 0.25
#: Least coherence of a lattice atom.
LATTICE_COHERENCE = 0.6
#: Largest distance of a network atom from a lattice atom when the image holds a lattice, in median bonds.
LATTICE_REACH = 2.0
#: Values of the per-atom ``region`` label (atoms.csv).
REGION_NETWORK = "network"
REGION_DISORDERED = "disordered"


class Regions(NamedTuple):
    """Per-atom regions of a bond network (:func:`atom_regions`)."""

    network: np.ndarray  # (N,) bool: atoms of the material's network (the atoms.csv label)
    ordered: np.ndarray  # (N,) bool: regular atoms voted into the network
    lattice: bool  # the image holds a crystal lattice
    narrowest_angle: float  # rad: the typical narrowest angle between consecutive bonds (NaN: none measured)


def atom_regions(xy, bonds, *, image_shape, outer=None):
    """The material's network, its ordered atoms and whether there is a lattice (see the module docstring).

    Parameters
    ----------
    xy : (N, 2) float ndarray, px
        Atom positions (x = column, y = row).
    bonds : (B, 2) int ndarray
        Bonded pairs.
    image_shape : tuple of int
        (H, W) of the micrograph, px.
    outer : (N,) bool ndarray, optional
        Atoms on the outer face of the bond network.

    Returns
    -------
    Regions
        Every atom an ordered network atom, with no lattice and no typical angle, when there are fewer than 3
        bonds or no atom has a say.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    n = len(xy)
    everything = Regions(np.ones(n, dtype=bool), np.ones(n, dtype=bool), False, math.nan)
    if len(bonds) < 3:
        return everything
    degree = np.bincount(bonds.ravel(), minlength=n)
    vec = xy[bonds[:, 1]] - xy[bonds[:, 0]]
    length = np.hypot(*vec.T)
    median = float(np.median(length))
    h, w = image_shape
    edge = np.minimum.reduce([xy[:, 0] + 0.5, w - 0.5 - xy[:, 0], xy[:, 1] + 0.5, h - 0.5 - xy[:, 1]])
    has_say = edge >= median
    if not has_say.any():
        return everything
    share = np.bincount(degree[has_say]) / has_say.sum()
    if outer is not None and n >= 3:  # the edge of a flake: on the outer face, within a bond of the hull
        try:
            hull = ConvexHull(xy)
            to_hull = -(xy @ hull.equations[:, :2].T + hull.equations[:, 2]).max(axis=1)
            has_say &= ~(np.asarray(outer, dtype=bool) & (to_hull < median))
        except QhullError:
            pass
    # each atom's bonds as (owner, length, angle), both directions
    owner = np.concatenate([bonds[:, 0], bonds[:, 1]])
    both = np.concatenate([length, length])
    angle = np.arctan2(np.concatenate([vec[:, 1], -vec[:, 1]]), np.concatenate([vec[:, 0], -vec[:, 0]]))
    lengths = _per_atom(owner, both, degree, np.inf)  # (N, max degree) sorted, padded
    angles = _per_atom(owner, angle, degree, np.nan)
    gaps = np.diff(np.concatenate([angles, np.full((n, 1), np.nan)], axis=1), axis=1)  # between consecutive bonds
    gaps[np.arange(n), np.maximum(degree - 1, 0)] = angles[:, 0] + 2 * np.pi - angles[np.arange(n), degree - 1]
    gaps = np.sort(gaps, axis=1)  # NaN (no bond) last
    regular = np.zeros(n, dtype=bool)
    shortest, longest, narrowest = [], [], []
    for d in np.flatnonzero(share >= COMMON_DEGREE):  # one or two degrees: a loop over degrees, not atoms
        members = degree == d
        if d == 0 or not (members & has_say).any():  # all on the edge of a flake: they have no say
            continue
        typical = np.median(lengths[members & has_say, :d], axis=0)
        ok = np.abs(lengths[members, :d] - typical).max(axis=1) <= BOND_TOLERANCE * median
        shortest.append(typical[0])
        longest.append(typical[-1])
        if d >= 2:
            typical_gaps = np.median(gaps[members & has_say, :d], axis=0)
            ok &= np.abs(gaps[members, :d] - typical_gaps).max(axis=1) <= ANGLE_TOLERANCE
            narrowest.append(typical_gaps[0])
        regular[members] = ok
    if shortest:  # no say: missing neighbours only widen gaps, so what is there must fit the typical ranges
        lo, hi = min(shortest) - BOND_TOLERANCE * median, max(longest) + BOND_TOLERANCE * median
        fits = (lengths[:, 0] >= lo) & (np.where(np.isfinite(lengths), lengths, 0).max(axis=1) <= hi)
        if narrowest:
            fits &= ~(gaps[:, 0] < min(narrowest) - ANGLE_TOLERANCE)
        regular = np.where(has_say, regular, fits)
    tree = cKDTree(xy)
    near = tree.query_pairs(NEIGHBOURHOOD_BONDS * median, output_type="ndarray")
    votes, voters = _neighbourhood_sums(near, n, (regular & has_say).astype(np.float64), has_say.astype(np.float64))
    voted = np.where(voters > 0, votes >= 0.5 * voters, True)

    wide = tree.query_pairs(COHERENCE_BONDS * median, output_type="ndarray")
    (count,) = _neighbourhood_sums(wide, n, np.ones(n))
    best_share, coherence, best_k = -1.0, None, 0
    for k in SYMMETRIES:  # two symmetries: a loop over them, not atoms
        z = np.exp(1j * k * angle)
        psi = (np.bincount(owner, z.real, n) + 1j * np.bincount(owner, z.imag, n)) / np.maximum(degree, 1)
        re, im = _neighbourhood_sums(wide, n, psi.real, psi.imag)
        c = np.hypot(re, im) / count
        if np.mean(c >= CRYSTAL_COHERENCE) > best_share:
            best_share, coherence, best_k = float(np.mean(c >= CRYSTAL_COHERENCE)), c, k
    lattice = best_share >= CRYSTAL_SHARE
    network = voted
    if lattice:
        coherent = (coherence >= LATTICE_COHERENCE).astype(np.float64)
        on_lattice, around = _neighbourhood_sums(near, n, coherent, np.ones(n))
        core = (coherent > 0) & (on_lattice >= 0.5 * around)
        dist = cKDTree(xy[core]).query(xy)[0] if core.any() else np.full(n, np.inf)
        network = core | (voted & regular & (dist <= LATTICE_REACH * median))
    log.info("regions: %d of %d atoms in the network (common degrees %s, median bond %.2f px; %s: %.2f of the atoms "
             "with %d-fold coherence >= %.2f)", int(network.sum()), n, np.flatnonzero(share >= COMMON_DEGREE).tolist(),
             median, "lattice" if lattice else "no lattice", best_share, best_k, CRYSTAL_COHERENCE)
    return Regions(network, regular & voted, bool(lattice), min(narrowest, default=math.nan))


def _per_atom(owner, value, degree, fill):
    """(N, max degree): each atom's ``value`` over its bonds (``owner`` the atom of each), sorted, ``fill`` after."""
    order = np.lexsort((value, owner))
    owner, value = owner[order], value[order]
    rank = np.arange(len(owner)) - (np.cumsum(degree) - degree)[owner]
    out = np.full((len(degree), int(degree.max())), fill)
    out[owner, rank] = value
    return out


def _neighbourhood_sums(pairs, n, *weights):
    """For each weight (N,): its sum over every atom and the atoms of ``pairs`` (P, 2) paired with it."""
    i, j = pairs.T
    return tuple(weight + np.bincount(i, weight[j], n) + np.bincount(j, weight[i], n) for weight in weights)
