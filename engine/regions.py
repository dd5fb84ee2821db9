"""Which atoms belong to a regular bonded network (crystal or glass) and which do not (contamination, noise).

A micrograph's material is a planar network whose atoms share one coordination and one bond length: a
crystal, a 2-D glass, their defects. Amorphous contamination, amorphous carbon on a crystal, and noise
peaks in vacuum or in holes give detections that form no such network: their coordination scatters and
their bonds are too short or too long. Rings found there are not the material's, so the graph stage
labels each atom and makes rings only of network atoms.

Rule (:func:`network_atoms`): an atom is *regular* when its degree is a common one (held by at least
:data:`COMMON_DEGREE` of the atoms) and its bond lengths, sorted, differ from the median sorted bond lengths
of the atoms of that degree by at most :data:`BOND_TOLERANCE` median bonds (so lattices with two bond
lengths, or two kinds of vertex, are regular too); an atom within one bond of the image edge, or on the
outer face of the network within a bond of its convex hull (the edge of a flake), whose neighbours may be
missing, has no say. An atom is a *network* atom when at least half of the atoms with a
say within :data:`NEIGHBOURHOOD_BONDS` bonds of it (itself included) are regular: a lone defect atom (the
2-coordinated atom of a 5-9 vacancy, a grain-boundary atom) sits among regular ones and stays in.
"""

import logging

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

__all__ = ["BOND_TOLERANCE", "COMMON_DEGREE", "NEIGHBOURHOOD_BONDS", "REGION_NETWORK", "REGION_DISORDERED", "network_atoms"]

log = logging.getLogger(__name__)

#: Largest difference of a regular atom's sorted bond lengths from its degree's typical ones, in median bonds.
BOND_TOLERANCE = 0.3
#: Least share of the atoms that makes a degree a common one.
COMMON_DEGREE = 0.2
#: Radius of the neighbourhood that votes, in median bond lengths.
NEIGHBOURHOOD_BONDS = 1.6
#: Values of the per-atom ``region`` label (atoms.csv).
REGION_NETWORK = "network"
REGION_DISORDERED = "disordered"


def network_atoms(xy, bonds, *, image_shape, outer=None):
    """(N,) bool: the atoms of the regular bonded network (see the module docstring).

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
    (N,) bool ndarray
        True for network atoms; every atom is one when there are fewer than 3 bonds.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    n = len(xy)
    if len(bonds) < 3:
        return np.ones(n, dtype=bool)
    degree = np.bincount(bonds.ravel(), minlength=n)
    length = np.hypot(*(xy[bonds[:, 1]] - xy[bonds[:, 0]]).T)
    median = float(np.median(length))
    h, w = image_shape
    edge = np.minimum.reduce([xy[:, 0] + 0.5, w - 0.5 - xy[:, 0], xy[:, 1] + 0.5, h - 0.5 - xy[:, 1]])
    has_say = edge >= median
    if not has_say.any():
        return np.ones(n, dtype=bool)
    share = np.bincount(degree[has_say]) / has_say.sum()
    if outer is not None and n >= 3:  # the edge of a flake: on the outer face, within a bond of the hull
        try:
            hull = ConvexHull(xy)
            to_hull = -(xy @ hull.equations[:, :2].T + hull.equations[:, 2]).max(axis=1)
            has_say &= ~(np.asarray(outer, dtype=bool) & (to_hull < median))
        except QhullError:
            pass
    # each atom's bond lengths, sorted, padded with inf: (N, max degree)
    owner = np.concatenate([bonds[:, 0], bonds[:, 1]])
    both = np.concatenate([length, length])
    order = np.lexsort((both, owner))
    owner, both = owner[order], both[order]
    rank = np.arange(len(owner)) - (np.cumsum(degree) - degree)[owner]
    lengths = np.full((n, int(degree.max())), np.inf)
    lengths[owner, rank] = both
    regular = np.zeros(n, dtype=bool)
    for d in np.flatnonzero(share >= COMMON_DEGREE):  # one or two degrees: a loop over degrees, not atoms
        if d == 0:
            continue
        members = degree == d
        typical = np.median(lengths[members & has_say, :d], axis=0)
        regular[members] = np.abs(lengths[members, :d] - typical).max(axis=1) <= BOND_TOLERANCE * median
    # every atom votes for itself and for each neighbour within the radius: pairs as one array, no lists per atom
    i, j = cKDTree(xy).query_pairs(NEIGHBOURHOOD_BONDS * median, output_type="ndarray").T
    votes, voters = ((weight + np.bincount(i, weight[j], n) + np.bincount(j, weight[i], n)) for weight in
                     ((regular & has_say).astype(np.float64), has_say.astype(np.float64)))
    network = np.where(voters > 0, votes >= 0.5 * voters, True)
    log.info("regions: %d of %d atoms in the regular network (common degrees %s, median bond %.2f px)",
             int(network.sum()), n, np.flatnonzero(share >= COMMON_DEGREE).tolist(), median)
    return network
