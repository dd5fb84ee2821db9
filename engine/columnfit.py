"""Integrated intensity of every atom column, fitted as StatSTEM does: the measurement behind the ``chemistry``
descriptor (:mod:`motifgram.engine.chemistry`).

The image near the atoms is modelled as one Gaussian per column (one common width, each column its own height) on a
smooth background (bilinear tents between nodes every :data:`BACKGROUND_SPACING` nearest-neighbour distances), and
the heights are the linear least-squares solution of all columns at once (:func:`column_intensities`). The normal
equations are summed column pair by column pair (:func:`_normal_equations`), never through the design matrix of a
row per pixel, and solved by conjugate gradients; a micrograph wider than :data:`TILE_PX` is fitted by tiles with a
halo, so that time and memory grow with the atom count alone.

References
----------
A. De Backer, K. H. W. van den Bos, W. Van den Broek, J. Sijbers, S. Van Aert, "StatSTEM: an efficient
approach for accurate and precise model-based quantification of atomic resolution electron microscopy
images", Ultramicroscopy 171, 104 (2016).
"""

import itertools

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import cg, spsolve
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits

__all__ = ["SIGMA_GRID", "BACKGROUND_SPACING", "TILE_PX", "TILE_HALO", "column_intensities"]

#: Candidate column widths (Gaussian standard deviation) in nearest-neighbour distances; the one whose fit
#: leaves the least residual is used (:func:`column_intensities`).
SIGMA_GRID = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)

#: Spacing of the background's nodes in nearest-neighbour distances: the background is bilinear between
#: them, smooth on the scale of a few unit cells (a global plane leaves a column-to-column error of about 0.1
#: of a column's height on the simulator's smooth background).
BACKGROUND_SPACING = 4.0

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


def _tents(coords, size, lo, hi, background_px):
    """The background's bilinear tents along one axis of an image ``size`` px long (nodes every
    ``background_px`` from its origin) at integer pixel coordinates ``coords`` (within the image): each
    coordinate's first node, counted from the first node whose tent reaches pixels ``lo:hi``, and the weights
    (2, ...) of that node and the next (0 where the next is beyond the image's last node); and the number of
    nodes that reach ``lo:hi``."""
    n = int(np.ceil((size - 1) / background_px)) + 1
    last = max(n - 2, 0)
    first = min(int(lo / background_px), last)
    count = min(min(int((hi - 1) / background_px), last) + 1, n - 1) - first + 1
    f = coords / background_px
    node = np.minimum(f.astype(np.int64), last)
    t = f - node
    return node - first, np.stack([1 - t, np.where(node + 1 < n, t, 0.0)]), count


def _normal_equations(image, xy, window, sigma_px, background_px):
    """The least-squares problem of the column fit, as its normal equations, assembled column by column.

    The model: unit-height Gaussian columns of width ``sigma_px`` at ``xy`` (px) plus a smooth background
    (bilinear tents on a grid of spacing ``background_px`` anchored at the image's origin; the nodes whose tents
    reach the window), over the pixels of ``window`` (rows ``r0:r1``, columns ``c0:c1`` of ``image``) within 3
    sigma of a column. Pixels within 2 sigma of the image edge also hold the tails of columns beyond it (never
    detected, so not modelled): they are left out.

    The design matrix (a row per pixel, 4.15 M rows for a 2048^2 micrograph) is never formed: its Gram matrix is
    summed per pair of overlapping columns (their masked stencils' products), per column and background cell
    (the stencil weighted by the cell's tents, a stencil being narrower than a cell) and per cell over the
    pixels fitted (the tents' products).

    Returns
    -------
    normal : (N + B, N + B) sparse.csr_matrix
        ``A^T A`` of the design matrix ``A`` (pixels, columns then background nodes).
    rhs : (N + B,) ndarray
        ``A^T y`` of the pixels' values ``y``.
    model : callable
        ``model(solution) -> residuals``: the fit's residuals at its pixels (the model minus the image).
    n_pixels : int
        The number of pixels fitted.
    """
    h, w = image.shape
    r0, r1, c0, c1 = window
    ww = c1 - c0
    n_atoms = len(xy)
    r = int(np.ceil(3.0 * sigma_px))
    stencil = 2 * r + 1
    offsets = np.arange(-r, r + 1)
    centre = np.rint(xy).astype(np.int64)
    cols = centre[:, 0, None] + offsets  # (N, S)
    rows = centre[:, 1, None] + offsets
    values = np.exp(-((cols[:, None, :] - xy[:, 0, None, None]) ** 2 + (rows[:, :, None] - xy[:, 1, None, None]) ** 2)
                    / (2 * sigma_px**2))  # (N, S, S): [atom, row, column]
    b = int(np.ceil(2.0 * sigma_px))
    col_in = (cols >= max(b, c0)) & (cols < min(w - b, c1))
    row_in = (rows >= max(b, r0)) & (rows < min(h - b, r1))
    inside = row_in[:, :, None] & col_in[:, None, :] & (values > 1e-4)
    values = np.where(inside, values, 0.0)
    # the stencils' coordinates clipped into the window (where they are outside, their values are 0)
    cols_w = np.clip(cols, c0, c1 - 1) - c0
    rows_w = np.clip(rows, r0, r1 - 1) - r0
    window_image = np.asarray(image[r0:r1, c0:c1], dtype=np.float64)
    pixel = rows_w[:, :, None] * ww + cols_w[:, None, :]
    taken = np.zeros((r1 - r0) * ww, bool)
    taken[pixel[inside]] = True

    node_x, weight_x, mx = _tents(np.arange(c0, c1), w, c0, c1, background_px)
    node_y, weight_y, my = _tents(np.arange(r0, r1), h, r0, r1, background_px)
    n_nodes = mx * my
    # the background's cells (a node and the three beyond it) met by the window's rows and columns: where each
    # starts, and each cell's four nodes (clipped to the last; the weights are 0 there)
    starts_y = np.flatnonzero(np.r_[True, np.diff(node_y) != 0])
    starts_x = np.flatnonzero(np.r_[True, np.diff(node_x) != 0])
    corner_node = [[(n_atoms + np.minimum(node_y[starts_y] + dy, my - 1)[:, None] * mx
                     + np.minimum(node_x[starts_x] + dx, mx - 1)).ravel() for dx in (0, 1)] for dy in (0, 1)]
    tent_pairs = ((0, 0), (0, 1), (1, 1))

    # columns with columns: the overlap of two stencils, for every pair whose stencils meet (centres at most 2r
    # apart in each direction), grouped by the pair's offset
    pairs = cKDTree(centre).query_pairs(2 * r, p=np.inf, output_type="ndarray")
    first, second = pairs[:, 0], pairs[:, 1]
    shift = centre[second] - centre[first]  # (P, 2): x, y
    key = (shift[:, 1] + 2 * r) * (4 * r + 1) + shift[:, 0] + 2 * r
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    overlap = np.empty(len(pairs))
    for group in np.split(order, bounds) if len(order) else ():
        dx, dy = shift[group[0]]
        a, c = values[first[group]], values[second[group]]
        a = a[:, max(dy, 0):stencil + min(dy, 0), max(dx, 0):stencil + min(dx, 0)]
        c = c[:, max(-dy, 0):stencil + min(-dy, 0), max(-dx, 0):stencil + min(-dx, 0)]
        overlap[group] = np.einsum("nij,nij->n", a, c)
    diagonal = np.einsum("nij,nij->n", values, values)

    # columns with background nodes: each stencil weighted by the tents of the cells it spans
    sy, sx = node_y[rows_w], node_x[cols_w]  # (N, S): each stencil row's / column's first node
    base_y, base_x = sy[:, 0], sx[:, 0]
    span_y, span_x = int((sy[:, -1] - base_y).max()) + 2, int((sx[:, -1] - base_x).max()) + 2
    tent_y = np.zeros((n_atoms, stencil, span_y))
    tent_x = np.zeros((n_atoms, stencil, span_x))
    atom_index, position = np.indices((n_atoms, stencil))
    for k in (0, 1):
        tent_y[atom_index, position, sy - base_y[:, None] + k] = weight_y[k][rows_w]
        tent_x[atom_index, position, sx - base_x[:, None] + k] = weight_x[k][cols_w]
    cross = np.einsum("nsl,nst,ntm->nlm", tent_y, values, tent_x, optimize=True)  # (N, span_y, span_x)
    cross_y = base_y[:, None, None] + np.arange(span_y)[None, :, None]
    cross_x = base_x[:, None, None] + np.arange(span_x)[None, None, :]
    cross_atom = np.broadcast_to(np.arange(n_atoms)[:, None, None], cross.shape)
    real = (cross_y < my) & (cross_x < mx)  # beyond the last node the weights are 0
    cross_node = n_atoms + (cross_y * mx + cross_x)[real]
    cross_atom, cross = cross_atom[real], cross[real]

    # background nodes with background nodes: the tents' products summed per cell over the pixels fitted (a
    # tent's weight is a row's times a column's, so the sums are taken along rows and then along columns)
    taken = taken.reshape(r1 - r0, ww)
    pair_x = [np.add.reduceat(taken * (weight_x[i] * weight_x[j]), starts_x, axis=1) for i, j in tent_pairs]
    node_rows, node_cols, node_values = [], [], []
    for (iy, jy), (ix, jx) in itertools.product(tent_pairs, tent_pairs):
        summed = np.add.reduceat(pair_x[tent_pairs.index((ix, jx))] * (weight_y[iy] * weight_y[jy])[:, None], starts_y,
                                 axis=0).ravel()
        for (ay, by), (ax, bx) in {((iy, jy), (ix, jx)), ((jy, iy), (jx, ix)), ((iy, jy), (jx, ix)),
                                   ((jy, iy), (ix, jx))}:
            node_rows.append(corner_node[ay][ax])
            node_cols.append(corner_node[by][bx])
            node_values.append(summed)

    atoms = np.arange(n_atoms)
    normal = sparse.coo_matrix(
        (np.concatenate([diagonal, overlap, overlap, cross, cross, *node_values]),
         (np.concatenate([atoms, first, second, cross_atom, cross_node, *node_rows]),
          np.concatenate([atoms, second, first, cross_node, cross_atom, *node_cols]))),
        shape=(n_atoms + n_nodes,) * 2).tocsr()
    normal.sum_duplicates()
    normal.eliminate_zeros()  # pairs of stencils that meet only where one of them is masked
    rhs = np.zeros(n_atoms + n_nodes)
    rhs[:n_atoms] = np.einsum("nij,nij->n", values, window_image[rows_w[:, :, None], cols_w[:, None, :]])
    fitted_image = np.where(taken, window_image, 0.0)
    for ix in (0, 1):
        part = np.add.reduceat(fitted_image * weight_x[ix], starts_x, axis=1)
        for iy in (0, 1):
            rhs += np.bincount(corner_node[iy][ix], np.add.reduceat(part * weight_y[iy][:, None], starts_y,
                                                                    axis=0).ravel(), minlength=len(rhs))

    def model(solution):
        """The fit's residuals (the model minus the image) at its pixels."""
        fitted = np.bincount(pixel[inside], (values * solution[:n_atoms, None, None])[inside], minlength=taken.size)
        nodes = solution[n_atoms:].reshape(my, mx)
        for iy, ix in itertools.product((0, 1), (0, 1)):
            rows_n, cols_n = np.minimum(node_y + iy, my - 1), np.minimum(node_x + ix, mx - 1)
            fitted += (weight_y[iy][:, None] * weight_x[ix] * nodes[rows_n[:, None], cols_n]).ravel()
        return (fitted - window_image.ravel())[taken.ravel()]

    return normal, rhs, model, int(taken.sum())


def _fit(image, xy, window, sigma_px, background_px, *, residual=True):
    """Least-squares heights (N,) of the columns at ``xy`` (px, image coordinates) over the pixels of ``window``
    (rows ``r0:r1``, columns ``c0:c1`` of ``image``; the model of :func:`_normal_equations`), and the
    root-mean-square residual of the fit (infinite without pixels to fit; NaN, not computed, unless
    ``residual``)."""
    normal, rhs, model, n_pixels = _normal_equations(image, xy, window, sigma_px, background_px)
    if n_pixels == 0:  # no pixel of the window is near a column away from the image edge: nothing to fit
        return np.zeros(len(xy)), np.inf
    # normal equations: sparse (each column overlaps its neighbours and a few background nodes; a tiny ridge
    # keeps nodes without pixels, far from every atom, determined) and strongly diagonal, so conjugate gradients
    # with a diagonal preconditioner reach 1e-12 in a few dozen products, where a sparse LU of a 2048^2
    # micrograph's system took 10x longer (benchmarks/README.md, issue 21); the LU remains the fallback
    normal = normal + sparse.identity(normal.shape[0], format="csr") * (1e-9 * normal.diagonal().max())
    solution, info = cg(normal, rhs, rtol=1e-12, maxiter=_CG_ITERATIONS, M=sparse.diags(1.0 / normal.diagonal()))
    if info != 0:
        solution = spsolve(normal.tocsc(), rhs)
    return solution[: len(xy)], float(np.sqrt(np.mean(model(solution) ** 2))) if residual else np.nan


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
    (``tests/test_columnfit.py``, benchmarks/README.md).

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
    # one BLAS thread: the dot products of conjugate gradients (vectors of ~20,000 numbers per tile) gain
    # nothing from threads, whose wake-ups cost 3-10x the whole solve on a busy machine (benchmarks/README.md)
    with threadpool_limits(1, user_api="blas"):
        for window, members, core in tiles:
            if core.any():
                heights[members[core]] = _fit(img, pts[members], window, float(sigma_px), background_px,
                                              residual=False)[0][core]
    return 2 * np.pi * float(sigma_px) ** 2 * heights, float(sigma_px)
