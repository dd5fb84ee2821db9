"""The ``chemistry`` descriptor: what an atom column is made of, not how its neighbourhood is distorted.

In HAADF-STEM the integrated intensity of a column (its scattering cross-section) grows with the atomic
numbers in it (about ``sum Z**1.7``) and is nearly independent of the probe and of small displacements;
StatSTEM (De Backer et al. 2016) fits it as the volume of a Gaussian per column. The rotation invariants
of a neighbourhood disk (the ``zernike`` descriptor) also see geometry: next to a Stone–Wales defect or a
vacancy the same carbon column gets different invariants, and a mixture fitted to them gives strain its own
tokens. This descriptor keeps only chemistry, two numbers per column (:data:`CHEMISTRY_COLUMNS`):

* ``log(I / trend)``: the column's fitted integrated intensity (:func:`column_intensities`) relative to a
  smooth spatial trend (:func:`intensity_trend`) so that dose, gain and probe cancel, and so do thickness,
  background and probe drift over a real micrograph, which otherwise split a kind's columns into tokens by
  region. The trend is class-aware: the intensity levels (:func:`intensity_levels`) are found first, and only
  the columns of main kinds (levels holding at least :data:`MAIN_KIND_SHARE` of the columns) enter it, each
  relative to its level, so neither the mix of kinds nor a rare kind (a dopant, a vacancy) moves it; levels
  and trend are found in turn (:data:`TREND_ITERATIONS`). The trend is that of the brightest main kind (its
  columns sit at 0). (The median of the 64 nearest columns, used before, flips between Mo and S2 in MoS2,
  where the two kinds are equally common.)
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

References
----------
A. De Backer, K. H. W. van den Bos, W. Van den Broek, J. Sijbers, S. Van Aert, "StatSTEM: an efficient
approach for accurate and precise model-based quantification of atomic resolution electron microscopy
images", Ultramicroscopy 171, 104 (2016).
"""

import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter, gaussian_filter1d, map_coordinates
from scipy.sparse.linalg import cg, spsolve
from scipy.spatial import cKDTree

from motifgram.engine.context import NEIGHBOUR_RADIUS

__all__ = ["CHEMISTRY_COLUMNS", "SIGMA_GRID", "TILE_PX", "column_intensities", "intensity_levels", "intensity_trend",
           "chemistry_features", "feature_precision"]

#: Columns of :func:`chemistry_features`: log relative intensity, log contrast with the neighbours.
CHEMISTRY_COLUMNS = 2

#: Candidate column widths (Gaussian standard deviation) in nearest-neighbour distances; the one whose fit
#: leaves the least residual is used (:func:`column_intensities`).
SIGMA_GRID = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)

#: Spacing of the background's nodes in nearest-neighbour distances: the background is bilinear between
#: them, smooth on the scale of a few unit cells (a global plane leaves a column-to-column error of about 0.1
#: of a column's height on the simulator's smooth background).
BACKGROUND_SPACING = 4.0

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

#: Atoms used to choose the column width (the first ones in a seeded order).
_SIGMA_SAMPLE = 600

#: Widest core of a tile of the column fit, in px (:func:`column_intensities`): a micrograph up to this wide is
#: fitted whole; a wider one by tiles, so that the fit's memory (0.5-0.6 GB for graphene at 8 px spacing, whose
#: windows are 1216 px wide) does not grow with the image.
TILE_PX = 1024

#: Halo fitted around a tile's core, in nearest-neighbour distances (three background node spacings).
TILE_HALO = 12.0

#: Most conjugate-gradient steps of a column fit before the direct solve takes over.
_CG_ITERATIONS = 500


def _design(xy, shape, window, sigma_px, background_px):
    """The sparse design matrix (pixels, atoms + nodes) of unit-height Gaussian columns of width ``sigma_px``
    plus a smooth background (bilinear tents on a grid of spacing ``background_px`` anchored at the image's
    origin), over the pixels of ``window`` (rows ``r0:r1``, columns ``c0:c1`` of an image of ``shape``) within
    3 sigma of an atom; and those pixels' flat indices in the window. The nodes are those whose tents can reach
    the window, all of the image's for the whole image."""
    h, w = shape
    r0, r1, c0, c1 = window
    ww = c1 - c0
    r = int(np.ceil(3.0 * sigma_px))
    offsets = np.arange(-r, r + 1)
    centre = np.rint(xy).astype(np.int64)
    cols = centre[:, 0, None, None] + offsets[None, None, :]  # (N, 1, S)
    rows = centre[:, 1, None, None] + offsets[None, :, None]  # (N, S, 1)
    cols, rows = np.broadcast_arrays(cols, rows)
    values = np.exp(-((cols - xy[:, 0, None, None]) ** 2 + (rows - xy[:, 1, None, None]) ** 2) / (2 * sigma_px**2))
    # pixels within 2 sigma of the image edge also hold the tails of columns beyond it (never detected, so not
    # modelled): they are left out of the fit
    b = int(np.ceil(2.0 * sigma_px))
    inside = ((cols >= max(b, c0)) & (cols < min(w - b, c1)) & (rows >= max(b, r0)) & (rows < min(h - b, r1))
              & (values > 1e-4))
    atom = np.broadcast_to(np.arange(len(xy))[:, None, None], values.shape)[inside]
    pixel = ((rows - r0) * ww + cols - c0)[inside]
    # the pixels used, in flat order, and each entry's row (np.unique without a sort)
    taken = np.zeros((r1 - r0) * ww, bool)
    taken[pixel] = True
    used = np.flatnonzero(taken)
    row = (np.cumsum(taken) - 1)[pixel]
    py, px = np.divmod(used, ww)
    py, px = py + r0, px + c0
    # background: bilinear interpolation between nodes every background_px (a smooth, slowly varying field)
    nx = int(np.ceil((w - 1) / background_px)) + 1
    ny = int(np.ceil((h - 1) / background_px)) + 1
    last_x, last_y = max(nx - 2, 0), max(ny - 2, 0)
    fx, fy = px / background_px, py / background_px
    ix = np.minimum(fx.astype(np.int64), last_x)
    iy = np.minimum(fy.astype(np.int64), last_y)
    tx, ty = fx - ix, fy - iy
    # the window's nodes: from the first pixel's cell to the last pixel's cell's far corner
    ix0, iy0 = min(int(c0 / background_px), last_x), min(int(r0 / background_px), last_y)
    mx = min(min(int((c1 - 1) / background_px), last_x) + 1, nx - 1) - ix0 + 1
    my = min(min(int((r1 - 1) / background_px), last_y) + 1, ny - 1) - iy0 + 1
    # each pixel's (up to) four nodes in increasing column order, so the node block is built row by row in place
    corners = ((0, 0, (1 - tx) * (1 - ty)), (1, 0, tx * (1 - ty)), (0, 1, (1 - tx) * ty), (1, 1, tx * ty))
    keep = np.stack([(ix + dx < nx) & (iy + dy < ny) for dx, dy, _ in corners], axis=1)  # (pixels, 4)
    node = np.stack([(iy + dy - iy0) * mx + ix + dx - ix0 for dx, dy, _ in corners], axis=1)[keep]
    weight = np.stack([value for _, _, value in corners], axis=1)[keep]
    nodes = sparse.csr_matrix((weight, node, np.r_[0, np.cumsum(keep.sum(axis=1))]), shape=(len(used), mx * my))
    columns = sparse.csr_matrix((values[inside], (row, atom)), shape=(len(used), len(xy)))
    matrix = sparse.hstack([columns, nodes], format="csr")
    return matrix, used


def _fit(image, xy, window, sigma_px, background_px):
    """Least-squares heights (N,) of the columns at ``xy`` (px, image coordinates) over the pixels of ``window``
    (rows ``r0:r1``, columns ``c0:c1`` of ``image``), and the root-mean-square residual of the fit (infinite
    without pixels to fit)."""
    r0, r1, c0, c1 = window
    matrix, used = _design(xy, image.shape, window, sigma_px, background_px)
    if len(used) == 0:  # no pixel of the window is near a column away from the image edge: nothing to fit
        return np.zeros(len(xy)), np.inf
    target = np.asarray(image[r0:r1, c0:c1], dtype=np.float64).ravel()[used]
    # normal equations: sparse (each column overlaps its neighbours and a few background nodes; a tiny ridge
    # keeps nodes without pixels, far from every atom, determined) and strongly diagonal, so conjugate gradients
    # with a diagonal preconditioner reach 1e-12 in a few dozen products, where a sparse LU of a 2048^2
    # micrograph's system took 10x longer (benchmarks/README.md, issue 21); the LU remains the fallback
    normal = (matrix.T @ matrix).tocsr()
    normal = normal + sparse.identity(normal.shape[0], format="csr") * (1e-9 * normal.diagonal().max())
    rhs = matrix.T @ target
    solution, info = cg(normal, rhs, rtol=1e-12, maxiter=_CG_ITERATIONS, M=sparse.diags(1.0 / normal.diagonal()))
    if info != 0:
        solution = spsolve(normal.tocsc(), rhs)
    residual = matrix @ solution - target
    return solution[: len(xy)], float(np.sqrt(np.mean(residual**2)))


def _tiles(pts, shape, *, tile_px, halo_px, reach_px):
    """The tiles of the column fit: for each, its window (rows ``r0:r1``, columns ``c0:c1``: its core plus
    ``halo_px`` on every side, within the image), the atoms that reach into the window (within ``reach_px`` of
    it; indices into ``pts``, increasing) and which of them lie in the core. The cores cut the image into equal
    parts at most ``tile_px`` wide; every atom lies in exactly one core (those outside the image in the nearest);
    one tile for an image no wider than ``tile_px``, its window the whole image and its atoms all of them."""
    h, w = shape
    # core edges in px; the outer ones open, so that every atom has a core
    edges = [np.r_[-np.inf, np.rint(np.linspace(0, n, -(-n // tile_px) + 1))[1:-1], np.inf] for n in (h, w)]
    margin = halo_px + reach_px
    by_row = np.argsort(pts[:, 1], kind="stable")
    ys = pts[by_row, 1]
    for top, bottom in zip(edges[0][:-1], edges[0][1:]):
        band = by_row[np.searchsorted(ys, top - margin):np.searchsorted(ys, bottom + margin)]
        band = band[np.argsort(pts[band, 0], kind="stable")]
        xs = pts[band, 0]
        for left, right in zip(edges[1][:-1], edges[1][1:]):
            members = np.sort(band[np.searchsorted(xs, left - margin):np.searchsorted(xs, right + margin)])
            x, y = pts[members, 0], pts[members, 1]
            core = (x >= left) & (x < right) & (y >= top) & (y < bottom)
            window = (int(max(0.0, np.floor(top - halo_px))), int(min(h, np.ceil(bottom + halo_px))),
                      int(max(0.0, np.floor(left - halo_px))), int(min(w, np.ceil(right + halo_px))))
            yield window, members, core


def column_intensities(image, xy, *, nn_distance_px, sigma_px=None, seed=0, tile_px=TILE_PX):
    """Integrated intensity of every atom column, fitted as StatSTEM does.

    The image near the atoms is modelled as one Gaussian per column (at the column's position, of one common
    width, each with its own height) on a smooth background (bilinear between nodes every
    :data:`BACKGROUND_SPACING` nearest-neighbour distances); the heights are the linear least-squares
    solution (all columns at once, so overlapping tails are shared out, not counted twice), and the
    integrated intensity is ``2 pi sigma**2`` times the height.

    An image wider than ``tile_px`` is fitted by tiles, so that memory does not grow with the image: each tile's
    core (the image cut into equal parts at most ``tile_px`` wide) is fitted with a halo of
    :data:`TILE_HALO` nearest-neighbour distances around it (the halo's atoms, pixels and background nodes), and
    only the core's heights are kept. The halo's influence on the core decays with distance; at this halo the
    tiled heights differ from the whole image's fit by far less than the fitting noise
    (``tests/test_chemistry.py``, benchmarks/README.md).

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Column positions (x = column, y = row) in px.
    nn_distance_px : float
        Nearest-neighbour distance in px (scales the candidate widths, :data:`SIGMA_GRID`).
    sigma_px : float, optional
        Column width (Gaussian standard deviation) in px; default: the candidate whose fit to the columns
        of a seeded region of at most 600 atoms leaves the least residual.
    seed : int
        Seed of that region's choice.
    tile_px : int
        Widest core of a tile, in px (:data:`TILE_PX`).

    Returns
    -------
    intensities : (N,) ndarray of float64
        Integrated intensity per column, in image units x px^2.
    sigma_px : float
        The column width used.
    """
    img = np.asarray(image)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not (np.isfinite(nn_distance_px) and nn_distance_px > 0):
        raise ValueError(f"nn_distance_px must be a positive number, got {nn_distance_px!r}")
    if isinstance(tile_px, bool) or not (isinstance(tile_px, (int, np.integer)) and tile_px >= 1):
        raise ValueError(f"tile_px must be a positive int, got {tile_px!r}")
    if len(pts) == 0:
        return np.zeros(0), float(sigma_px or SIGMA_GRID[2] * nn_distance_px)
    background_px = BACKGROUND_SPACING * nn_distance_px
    if sigma_px is None:
        # a compact region (the atoms nearest a random atom), so its columns' neighbours are in the fit too; fitted
        # over the pixels around it only
        start = np.random.default_rng(seed).integers(len(pts))
        region = cKDTree(pts).query(pts[start], k=min(_SIGMA_SAMPLE, len(pts)))[1]
        region = np.atleast_1d(region)
        margin = np.ceil(3.0 * max(SIGMA_GRID) * nn_distance_px) + 1
        low, high = pts[region].min(axis=0) - margin, pts[region].max(axis=0) + margin
        window = (max(0, int(low[1])), min(img.shape[0], int(high[1]) + 1),
                  max(0, int(low[0])), min(img.shape[1], int(high[0]) + 1))
        residuals = [_fit(img, pts[region], window, f * nn_distance_px, background_px)[1] for f in SIGMA_GRID]
        sigma_px = SIGMA_GRID[int(np.argmin(residuals))] * nn_distance_px
    heights = np.zeros(len(pts))
    tiles = _tiles(pts, img.shape, tile_px=int(tile_px), halo_px=TILE_HALO * nn_distance_px,
                   reach_px=np.ceil(3.0 * sigma_px) + 1)
    for window, members, core in tiles:
        if core.any():
            heights[members[core]] = _fit(img, pts[members], window, float(sigma_px), background_px)[0][core]
    return 2 * np.pi * float(sigma_px) ** 2 * heights, float(sigma_px)


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
