"""The ``chemistry`` descriptor: what an atom column is made of, not how its neighbourhood is distorted.

In HAADF-STEM the integrated intensity of a column (its scattering cross-section) grows with the atomic
numbers in it (about ``sum Z**1.7``) and is nearly independent of the probe and of small displacements;
StatSTEM (De Backer et al. 2016; :mod:`motifgram.engine.columnfit`) fits it as the volume of a Gaussian per
column. The rotation invariants of a neighbourhood disk (the ``zernike`` descriptor) also see geometry: next
to a Stone–Wales defect or a vacancy the same carbon column gets different invariants, and a mixture fitted to
them gives strain its own tokens. This descriptor keeps only chemistry, two numbers per column
(:data:`CHEMISTRY_COLUMNS`):

* ``log(I / trend)``: the column's fitted integrated intensity
  (:func:`motifgram.engine.columnfit.column_intensities`) relative to a smooth spatial trend
  (:func:`intensity_trend`) so that dose, gain and probe cancel, and so do thickness, background and probe
  drift over a real micrograph, which otherwise split a kind's columns into tokens by region. The trend is
  class-aware: the intensity levels (:func:`intensity_levels`) are found first, and only the columns of main
  kinds (levels holding at least :data:`MAIN_KIND_SHARE` of the columns) enter it, each relative to its level,
  so neither the mix of kinds nor a rare kind (a dopant, a vacancy) moves it; levels and trend are found in
  turn (:data:`TREND_ITERATIONS`). The trend is that of the brightest main kind (its columns sit at 0). (The
  median of the 64 nearest columns, used before, flips between Mo and S2 in MoS2, where the two kinds are
  equally common.)
* ``log(I / I of its dimmest neighbour of a main kind)``: its contrast with its nearest neighbours (the atoms
  within :data:`motifgram.engine.context.NEIGHBOUR_RADIUS` nearest-neighbour distances; the dimmest of all
  its neighbours where none is of a main kind, 0 for an atom without one). It tells a metal column from an
  equally bright substituted chalcogen column (MoS2's Mo and S+Se): the metal's dimmest main neighbour is an
  S2 column whatever its substitutions, the chalcogen's neighbours are all metal. Main kinds only: a Mo next
  to an S vacancy (a single S, a rare kind) would otherwise have a contrast of its own and a token of its own.

Columns closer than :data:`EDGE_SIGMAS` column widths to the image edge are not measured: they get the median
features of the most populous main kind (a typical column) rather than the biased intensity of a column cut
by the edge.

How precisely the features are measured is read off the micrograph (:func:`feature_precision`: the spread of one
kind's columns); the token vocabulary (:mod:`motifgram.engine.vocabulary`) keeps no two tokens closer than twice that.

Positions enter only through which pixels belong to which column, so bond rotations and strain near defects
move an atom's features by the fitting noise alone. Both columns are rotation invariant (the trend's grid is
symmetric about the columns' middle, so 90-degree rotations and mirrors of the image leave them unchanged up
to the fitting noise).
"""

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d, map_coordinates
from scipy.spatial import cKDTree

from motifgram.engine.columnfit import column_intensities
from motifgram.engine.context import NEIGHBOUR_RADIUS

__all__ = ["CHEMISTRY_COLUMNS", "intensity_levels", "intensity_trend", "chemistry_features", "feature_precision"]

#: Columns of :func:`chemistry_features`: log relative intensity, log contrast with the neighbours.
CHEMISTRY_COLUMNS = 2


#: Columns of a fitted intensity below this fraction of the median are clipped to it (a spurious detection
#: in a hole fits to about 0 or below, whose logarithm is undefined).
INTENSITY_FLOOR = 0.02

#: Most neighbours compared (the first shell of the lattices simulated has 3 to 6).
_MAX_NEIGHBOURS = 8

#: Columns closer than this many column widths to the image edge are not measured (they get a typical column's
#: features) and are no one's neighbour in the contrast.
EDGE_SIGMAS = 3.0

#: Width of the kernel that finds the intensity levels (:func:`intensity_levels`), in natural-log units.
LEVEL_BANDWIDTH = 0.1

#: A level holding at least this share of the measured columns is a main kind: it enters the trend and can be
#: a column's dimmest neighbour in the contrast.
MAIN_KIND_SHARE = 0.10

#: Columns further than this many robust standard deviations from their main kind's centre are not counted as
#: members of it (:func:`chemistry_features`).
MAIN_KIND_WIDTH = 2.5

#: Least robust standard deviation of a kind's log intensities: the fitting precision (3 %), so that in a
#: noise-free image a column of a kind is not cast out of it by rounding.
SPREAD_FLOOR = 0.03

#: Grid spacing and Gaussian smoothing width of the intensity trend (:func:`intensity_trend`), in
#: nearest-neighbour distances: the trend follows thickness and background over a few unit cells.
TREND_SPACING = 1.5
TREND_SMOOTHING = 3.0

#: Rounds of levels and trend (:func:`chemistry_features`).
TREND_ITERATIONS = 3


def intensity_levels(log_intensity, *, bandwidth=LEVEL_BANDWIDTH):
    """The intensity levels (column kinds) of a set of columns: the modes of their log intensities.

    The density of the values is estimated with a Gaussian kernel of width ``bandwidth``; each mode is a level,
    and each value belongs to the level between the density minima on either side of its mode.

    Parameters
    ----------
    log_intensity : (N,) array_like of float
        Natural logarithms of the columns' intensities (finite).
    bandwidth : float
        Kernel width in natural-log units (0.1: 10 % of a column's intensity).

    Returns
    -------
    level : (N,) ndarray of int64
        Level of each column, levels ordered by intensity (0 the dimmest).
    centres : (L,) ndarray of float64
        Median log intensity of each level's columns.

    Examples
    --------
    >>> level, centres = intensity_levels(np.log([1.0, 1.02, 0.98, 2.0, 2.05, 1.97, 1.01]))
    >>> level.tolist(), np.round(np.exp(centres), 2).tolist()
    ([0, 0, 0, 1, 1, 1, 0], [1.0, 2.0])
    """
    values = np.asarray(log_intensity, dtype=np.float64).ravel()
    if len(values) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    step = bandwidth / 4.0
    low = values.min() - 4.0 * bandwidth
    bins = int(np.ceil((values.max() + 4.0 * bandwidth - low) / step)) + 1
    index = np.clip(((values - low) / step).astype(np.int64), 0, bins - 1)
    density = gaussian_filter1d(np.bincount(index, minlength=bins).astype(np.float64), 4.0, mode="constant")
    rising = np.diff(density) > 0
    # the minima between modes: where the density stops falling and starts rising
    valleys = np.flatnonzero(~rising[:-1] & rising[1:]) + 1
    level = np.searchsorted(valleys, index, side="right")
    level = np.unique(level, return_inverse=True)[1].astype(np.int64)  # levels without a column dropped
    centres = np.array([np.median(values[level == k]) for k in range(int(level.max()) + 1)])
    return level, centres


def intensity_trend(xy, log_intensity, level, centres, *, spacing_px, smoothing_px):
    """The smooth spatial trend that multiplies every column's intensity (thickness, background, probe drift).

    Each column's log intensity relative to its level's centre is averaged on a grid of cells ``spacing_px``
    wide (symmetric about the middle of the columns' bounding box), smoothed with a Gaussian of width
    ``smoothing_px`` (normalised convolution: cells without columns take their neighbours' values) and
    interpolated bilinearly at every column.

    Parameters
    ----------
    xy : (N, 2) array_like of float
        Column positions (x = column, y = row) in px.
    log_intensity : (N,) array_like of float
        Natural logarithms of the columns' intensities.
    level : (N,) array_like of int
        Level of each column (:func:`intensity_levels`); a negative level leaves the column out of the fit.
    centres : (L,) array_like of float
        Log intensity of each level.
    spacing_px, smoothing_px : float
        Grid spacing and Gaussian standard deviation of the smoothing, in px.

    Returns
    -------
    (N,) ndarray of float64
        The trend at each column in natural-log units (0 where no column entered the fit).
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    level = np.asarray(level, dtype=np.int64)
    used = level >= 0
    if not used.any():
        return np.zeros(len(pts))
    residual = np.asarray(log_intensity, dtype=np.float64)[used] - np.asarray(centres)[level[used]]
    # cell edges at the middle of the columns' bounding box plus multiples of the spacing: the grid is symmetric
    # about that middle, so rotating the image by 90 degrees or mirroring it rotates or mirrors the trend
    middle = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    origin = np.floor((pts.min(axis=0) - middle) / spacing_px)
    cell = (np.floor((pts - middle) / spacing_px) - origin).astype(np.int64)
    nx, ny = cell.max(axis=0) + 1
    flat = cell[used, 1] * nx + cell[used, 0]
    sums = np.bincount(flat, weights=residual, minlength=nx * ny).reshape(ny, nx)
    counts = np.bincount(flat, minlength=nx * ny).reshape(ny, nx).astype(np.float64)
    sigma = smoothing_px / spacing_px
    sums, counts = gaussian_filter(sums, sigma, mode="constant"), gaussian_filter(counts, sigma, mode="constant")
    field = np.where(counts > 1e-6, sums / np.maximum(counts, 1e-300), 0.0)
    at = (pts - middle) / spacing_px - origin - 0.5  # fractional cell index (cell k's centre at k)
    return map_coordinates(field, [at[:, 1], at[:, 0]], order=1, mode="nearest")


def _main_kinds(log_intensity):
    """Levels (:func:`intensity_levels`) of the measured columns, their centres, and which columns belong to a
    main kind: a level holding at least :data:`MAIN_KIND_SHARE` of the columns, within :data:`MAIN_KIND_WIDTH`
    robust standard deviations of its centre (a rare kind too close to a main one to be a level of its own, an S
    vacancy beside S2 at low dose, stays out)."""
    level, centres = intensity_levels(log_intensity)
    main = np.bincount(level) / len(level) >= MAIN_KIND_SHARE
    if not main.any():  # no level holds MAIN_KIND_SHARE (a spread of values without modes): the largest one
        main[np.argmax(np.bincount(level))] = True
    deviation = log_intensity - centres[level]
    spread = np.array([1.4826 * np.median(np.abs(deviation[level == k])) for k in range(len(centres))])
    core = main[level] & (np.abs(deviation) <= MAIN_KIND_WIDTH * np.maximum(spread[level], SPREAD_FLOOR))
    return level, centres, core


def chemistry_features(image, xy, *, nn_distance_px, radius=NEIGHBOUR_RADIUS, seed=0):
    """The ``chemistry`` descriptor of every atom column (see the module docstring).

    Parameters
    ----------
    image : (H, W) array_like of float
        The micrograph (any offset and scale: both features are ratios of fitted intensities).
    xy : (N, 2) array_like of float
        Column positions (x = column, y = row) in px.
    nn_distance_px : float
        Nearest-neighbour distance in px.
    radius : float
        Neighbours are the other atoms within ``radius * nn_distance_px``.
    seed : int
        Seed of the column-width estimate (:func:`column_intensities`).

    Returns
    -------
    (N, CHEMISTRY_COLUMNS) ndarray of float32
        ``log(I / trend)`` and ``log(I / I of the dimmest neighbour of a main kind)`` (natural logarithms; ``I``
        clipped below at :data:`INTENSITY_FLOOR` times the median, the trend that of the brightest main kind,
        :func:`intensity_trend`). A column closer than :data:`EDGE_SIGMAS` column widths to the image edge (part
        of it lies outside the fit) gets the median features of the most populous main kind, and its intensity
        is not used as a neighbour's.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:40, 0:40]
    >>> xy = np.array([(8.0, 20.0), (16.0, 20.0), (24.0, 20.0), (32.0, 20.0)])
    >>> image = sum(a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0) for (x, y), a in zip(xy, [1, 1, 4, 1]))
    >>> np.round(chemistry_features(image, xy, nn_distance_px=8.0), 2) + 0.0
    array([[-1.39,  0.  ],
           [-1.38,  0.  ],
           [ 0.  ,  1.38],
           [-1.38, -1.38]], dtype=float32)
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((len(pts), CHEMISTRY_COLUMNS), np.float32)
    if len(pts) == 0:
        return out
    img = np.asarray(image)
    intensity, sigma = column_intensities(img, pts, nn_distance_px=nn_distance_px, seed=seed)
    # a column within EDGE_SIGMAS widths of the image edge has lost its pixels there (see column_intensities)
    h, w = img.shape
    measured = np.minimum.reduce([pts[:, 0], pts[:, 1], w - 1 - pts[:, 0], h - 1 - pts[:, 1]]) >= EDGE_SIGMAS * sigma
    if not measured.any():
        return out
    median = float(np.median(intensity[measured]))
    if not median > 0:
        median = float(np.max(np.abs(intensity[measured]))) or 1.0
    raw = np.log(np.maximum(intensity[measured], INTENSITY_FLOOR * median) / median)
    # levels and trend in turn: the levels of the intensities relative to the trend, the trend of the main kinds
    # relative to their levels (a kind's columns vary together with thickness and background; a rare kind, a
    # dopant or a vacancy, would pull the trend towards itself)
    trend = np.zeros(len(raw))
    for _ in range(TREND_ITERATIONS):
        level, centres, core = _main_kinds(raw - trend)
        trend = intensity_trend(pts[measured], raw, np.where(core, level, -1), centres,
                                spacing_px=TREND_SPACING * nn_distance_px,
                                smoothing_px=TREND_SMOOTHING * nn_distance_px)
    level, centres, core = _main_kinds(raw - trend)
    log_i = np.full(len(pts), np.nan)
    log_i[measured] = raw - trend - centres[level[core]].max()
    # the neighbours' intensities: those of main kinds where the column has one (next to a vacancy or a dopant
    # the dimmest neighbour would otherwise be the defect, and the column would look like another kind)
    of_main = np.zeros(len(pts), bool)
    of_main[np.flatnonzero(measured)[core]] = True
    dist, index = cKDTree(pts).query(pts, k=min(_MAX_NEIGHBOURS + 1, len(pts)),
                                     distance_upper_bound=radius * float(nn_distance_px))
    dist, index = dist.reshape(len(pts), -1)[:, 1:], index.reshape(len(pts), -1)[:, 1:]
    index = np.minimum(index, len(pts) - 1)
    neighbour_i = np.where(np.isfinite(dist), log_i[index], np.nan)
    main_i = np.where(of_main[index], neighbour_i, np.nan)
    has_main = np.isfinite(main_i).any(axis=1)
    dimmest = np.full(len(pts), np.nan)
    dimmest[has_main] = np.nanmin(main_i[has_main], axis=1)
    other = ~has_main & np.isfinite(neighbour_i).any(axis=1)
    dimmest[other] = np.nanmin(neighbour_i[other], axis=1)
    contrast = np.where(measured & np.isfinite(dimmest), log_i - dimmest, 0.0)
    out[:, 0] = np.where(measured, log_i, 0.0)
    out[:, 1] = contrast
    # a column at the edge: the median features of the most populous main kind's columns
    typical = np.flatnonzero(measured)[core & (level == np.argmax(np.bincount(level[core])))]
    out[~measured] = np.median(out[typical], axis=0)
    return out


def feature_precision(features):
    """How precisely the chemistry features are measured: their robust standard deviations (1.4826 x the median
    absolute deviation) over the columns of the level (:func:`intensity_levels`) nearest 0, the brightest main
    kind of :func:`chemistry_features`, each at least :data:`SPREAD_FLOOR`.

    The columns of one level are of one kind (or of kinds of equal intensity, which the median absolute deviation
    of the more common one decides), so their spread is what dose, probe, thickness and the trend's error leave
    of a column's features, measured on the micrograph itself.

    Parameters
    ----------
    features : (N, CHEMISTRY_COLUMNS) array_like of float
        As returned by :func:`chemistry_features`.

    Returns
    -------
    (CHEMISTRY_COLUMNS,) ndarray of float64
        In natural-log units.

    Examples
    --------
    >>> features = np.log([[1.0, 2.0], [1.1, 2.1], [0.9, 1.9], [1.05, 2.0], [0.95, 2.0], [0.4, 0.5], [0.42, 0.5]])
    >>> np.round(feature_precision(features), 3)
    array([0.076, 0.03 ])
    """
    x = np.asarray(features, dtype=np.float64).reshape(-1, CHEMISTRY_COLUMNS)
    if len(x) == 0:
        return np.full(CHEMISTRY_COLUMNS, SPREAD_FLOOR)
    level, centres = intensity_levels(x[:, 0])
    own = x[level == np.argmin(np.abs(centres))]
    return np.maximum(1.4826 * np.median(np.abs(own - np.median(own, axis=0)), axis=0), SPREAD_FLOOR)
