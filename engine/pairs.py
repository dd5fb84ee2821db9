"""Dumbbell sites: the atom columns of a lattice of close column pairs, one site per pair.

In Si, Ge, GaAs or diamond viewed along [110] the columns come in *dumbbells*: two columns much closer to
each other (Si: 0.136 nm) than to any column of another dumbbell (Si: >= 0.23 nm in projection). At the
resolution of many micrographs only part of the dumbbells are resolved into two spots; the others are one
elongated spot. On the columns the graph then mixes two length scales and two kinds of site, and no bond cut
gives a regular graph. :func:`dumbbell_sites` makes each resolved pair, and each spot that is an unresolved
pair, one site; the dumbbell lattice (centred rectangular in projection) is then one regular graph.

**Rule.** A spot is *linked* to its nearest spot when their distance is shorter than :data:`PAIR_FRACTION`
x ``scale``, where ``scale`` is the median over all spots of the distance to the *second*-nearest spot. In a
dumbbell lattice the nearest spot is the partner and the second-nearest is a column of another dumbbell, so
the partner distance is a clear fraction of ``scale``. On a lattice without a close basis pair each spot's two
nearest neighbours are about equally far (a Bravais lattice has the neighbour at ``-v`` for each at ``v``; the
honeycomb's three neighbours are equidistant), the ratio is ~1, nothing is linked and the sites are the spots
unchanged. Linked spots form groups (connected components); each group is one site:

* one spot (an unresolved dumbbell, or a column whose partner is outside the image): the site is the spot;
* two spots (a resolved dumbbell): the site is their midpoint;
* three or more: a dumbbell with extra detections (a noise peak in the gap beside it, a column found twice).
  The two brightest spots are its columns and give the site's position and intensity; the others belong to
  the site (:attr:`DumbbellSites.site`) without moving it.

A site's intensity is the *mean* of its one or two columns (see :class:`DumbbellSites`).

The value of :data:`PAIR_FRACTION` (0.75) and the measurements behind it (Si [110], the simulated lattices,
the real images without dumbbells) are in ``examples/sto_si110.md``. It is not a detector of dumbbells: it is
for images the user knows to show them (``detect.spots: dumbbells``).

Limits: the rule is global (one ``scale`` per image), so an image whose magnification varies across it by
more than ~20 % mixes up the two distances. A group of four or more spots (two dumbbells linked through a
noise peak between them, none in Si) becomes one site at its two brightest spots, which may belong to two
dumbbells. An unresolved dumbbell's single spot is where its fit put it, which may lean towards the brighter
column.
"""

import dataclasses
import logging
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from motifgram.engine.detect import Atoms
from motifgram.engine.errors import MotifgramError
from motifgram.engine.geometry import nn_distance

__all__ = ["PAIR_FRACTION", "DumbbellSites", "dumbbell_sites", "atoms_at_dumbbells"]

log = logging.getLogger(__name__)

#: A spot is linked to its nearest spot when closer than this fraction of the median distance of a spot to its
#: second-nearest spot (module docstring: Si's partners reach 0.68, simulated lattices without dumbbells start
#: at 0.80).
PAIR_FRACTION = 0.75


class DumbbellSites(NamedTuple):
    """Sites of a lattice of dumbbells: one per group of linked spots (module docstring).

    Attributes
    ----------
    xy : (M, 2) float64 ndarray, px
        Site positions (x = column, y = row): the mean of the site's columns, sorted by y, then x.
    spots : (M, 2) int64 ndarray
        The columns of each site, indices into the input spots: ``[i, j]`` with ``i < j`` for a pair (the two
        brightest spots of its group), ``[i, -1]`` for a single spot.
    intensity : (M,) float64 ndarray
        Mean intensity of the site's columns, in the input's units. The mean, not the sum: a spot that is an
        unresolved pair has about the fitted amplitude of one resolved column, not of two (Si [110]: median
        93 for single spots, 88 for paired columns, 173 for the sum of a pair), so the mean gives the two
        kinds of site the same scale.
    site : (N,) int64 ndarray
        The site of every input spot (row of ``xy``), extra detections included.
    scale_px : float
        Median distance of a spot to its second-nearest spot, px (nan for fewer than 3 spots).
    """

    xy: np.ndarray
    spots: np.ndarray
    intensity: np.ndarray
    site: np.ndarray
    scale_px: float

    @property
    def paired(self) -> np.ndarray:
        """(M,) bool ndarray: whether each site is a pair of columns (a resolved dumbbell)."""
        return self.spots[:, 1] >= 0


def dumbbell_sites(xy, intensity, *, pair_fraction=PAIR_FRACTION):
    """One site per dumbbell: each group of linked spots, and each spot linked to none (module docstring).

    Parameters
    ----------
    xy : (N, 2) array_like of float, px
        Spot positions (x = column, y = row), finite.
    intensity : (N,) array_like of float
        Spot intensities (any units), finite.
    pair_fraction : float
        A spot is linked to its nearest spot when closer than this fraction (0 < f < 1) of the median distance
        of a spot to its second-nearest spot.

    Returns
    -------
    DumbbellSites
        Fewer than 3 spots: nothing is linked, the sites are the spots.

    Raises
    ------
    MotifgramError
        Malformed ``xy`` or ``intensity``, or ``pair_fraction`` outside (0, 1).

    Examples
    --------
    Two dumbbells (columns 4 px apart, dumbbells 20 px apart) and one unresolved dumbbell: three sites.

    >>> xy = np.array([[8.0, 10], [12, 10], [28, 10], [32, 10], [50, 10]])
    >>> sites = dumbbell_sites(xy, np.array([1.0, 1.0, 2.0, 2.0, 1.5]))
    >>> sites.xy.tolist(), sites.spots.tolist(), sites.intensity.tolist(), sites.paired.tolist()
    ([[10.0, 10.0], [30.0, 10.0], [50.0, 10.0]], [[0, 1], [2, 3], [4, -1]], [1.0, 2.0, 1.5], [True, True, False])

    A square lattice has no pairs: the sites are the spots.

    >>> grid = np.array([[x, y] for y in range(5) for x in range(5)], float) * 10
    >>> bool(np.all(dumbbell_sites(grid, np.ones(25)).paired == False))
    True
    """
    xy = np.asarray(xy, dtype=np.float64)
    intensity = np.asarray(intensity, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.all(np.isfinite(xy)):
        raise MotifgramError(f"xy must be a finite (N, 2) array of positions in px, got shape {xy.shape}")
    if intensity.shape != (len(xy),) or not np.all(np.isfinite(intensity)):
        raise MotifgramError(f"intensity must be a finite ({len(xy)},) array, got shape {intensity.shape}")
    if isinstance(pair_fraction, bool) or not isinstance(pair_fraction, (int, float)) or not 0 < pair_fraction < 1:
        raise MotifgramError(f"pair_fraction must be a number in (0, 1), got {pair_fraction!r}")
    n = len(xy)
    group = np.arange(n, dtype=np.int64)
    scale = float("nan")
    n_linked = 0
    if n >= 3:
        dist, nearest = cKDTree(xy).query(xy, k=3)
        scale = float(np.median(dist[:, 2]))
        linked = np.flatnonzero(dist[:, 1] < pair_fraction * scale)
        n_linked = len(linked)
        adjacency = coo_matrix((np.ones(len(linked)), (linked, nearest[linked, 1])), shape=(n, n))
        _, group = connected_components(adjacency, directed=False)
    # per group: its spots, brightest first (ties: lower index), the two brightest are the dumbbell's columns
    order = np.lexsort((np.arange(n), -intensity, group))
    starts = np.flatnonzero(np.r_[n > 0, group[order][1:] != group[order][:-1]])
    size = np.diff(np.r_[starts, n])
    first = order[starts]
    second = np.where(size >= 2, order[np.minimum(starts + 1, n - 1)], -1)
    has_two = second >= 0
    spots = np.stack([np.where(has_two, np.minimum(first, second), first),
                      np.where(has_two, np.maximum(first, second), -1)], axis=1).astype(np.int64).reshape(-1, 2)
    member = spots >= 0
    take = np.where(member, spots, 0)
    count = member.sum(axis=1)
    site_xy = (xy[take] * member[..., None]).sum(axis=1) / count[:, None]
    site_intensity = (intensity[take] * member).sum(axis=1) / count
    site_order = np.lexsort((site_xy[:, 0], site_xy[:, 1]))
    site_of_group = np.empty(len(starts), dtype=np.int64)
    site_of_group[site_order] = np.arange(len(starts))
    site = np.empty(n, dtype=np.int64)
    site[order] = site_of_group[np.repeat(np.arange(len(starts)), size)]
    log.info("dumbbells: %d spots (second-neighbour scale %.2f px, pair cut %.2f px, %d linked) -> %d pairs, %d "
             "single spots and %d extra spots, %d sites", n, scale, pair_fraction * scale, n_linked,
             int(np.sum(size >= 2)), int(np.sum(size == 1)), int(np.sum(size - 2, where=size > 2)), len(starts))
    return DumbbellSites(site_xy[site_order], spots[site_order], site_intensity[site_order], site, scale)


def atoms_at_dumbbells(spots: Atoms) -> tuple[Atoms, DumbbellSites]:
    """One site per dumbbell of the detected ``spots`` (``detect.spots: dumbbells``).

    Positions, and intensities (the mean of each site's spots), come from :func:`dumbbell_sites`; the
    lattice period and the scan noise are the spots', the nearest-neighbour distance is the sites' own
    (their first shell), which sets the context radius of the features and the scale of the graph.
    """
    sites = dumbbell_sites(spots.xy, spots.intensity)
    atoms = dataclasses.replace(spots, xy=sites.xy.astype(np.float32), intensity=sites.intensity.astype(np.float32),
                                nn_distance_px=nn_distance(sites.xy))
    return atoms, sites
