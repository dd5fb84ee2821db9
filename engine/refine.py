"""Batched sub-pixel refinement of atom columns: a 2-D Gaussian + background fitted to every column at once.

One jitted, ``vmap``-ed Levenberg-Marquardt kernel fits all columns of an image (:func:`refine_columns`);
windows and atom chunks are padded to the shape buckets of :mod:`motifgram.engine.buckets`, so images with
different atom counts reuse the compiled kernel. Two uses of that one kernel:

- :func:`refine_positions`: every column on its own in a small window (0.4 nn in
  :func:`~motifgram.engine.detect.detect_atoms`), uniform weights;
- :func:`refine_jointly`: every column again with its neighbours' fitted Gaussians taken out of a window of
  0.8 nn (:func:`render_columns`), Poisson + read-noise weights (:func:`noise_weights`) and a capped width,
  in block-coordinate passes of the joint least-squares fit. On the realistic dose sweep of
  ``benchmarks/accuracy.py`` (10-80 counts) it brings the position RMSE from 1.33-1.72x to 1.02-1.38x the
  Cramer-Rao bound on graphene and MoS2 (benchmarks/README.md).
"""

from __future__ import annotations

import logging
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage as ndi

from motifgram.engine.buckets import bucket_window, map_chunks
from motifgram.engine.errors import ImageError
from motifgram.engine.kernelstore import stored

__all__ = ["refine_positions", "refine_columns", "refine_jointly", "render_columns", "model_amplitudes",
           "noise_weights", "JOINT_MAX_SNR"]

log = logging.getLogger(__name__)

_SAMPLE_PIXELS = 1 << 18  # pixels sampled for image-wide percentiles and the noise model on large images

_FIT_CHUNK = 2048
"""Columns per call of the fit's kernel, whatever the image's column count: one compiled shape per window bucket, and
the kernel's (pixel, column) intermediates stay in cache (at 2048^2, 50k columns, detection took 5.3-6.3 CPU s in
chunks of 8192 and 4.6-5.2 in chunks of 2048; benchmarks/README.md)."""

JOINT_MAX_SNR = 16.0
"""Column signal-to-noise ratio (median amplitude / noise sigma at the columns) up to which the joint fit runs.

Measured: the dose sweep of ``benchmarks/accuracy.py`` spans 3-10 (10-160 counts per column peak), where the
joint fit brings graphene's position RMSE from 1.35-1.46x to 1.02-1.37x the Cramer-Rao bound and MoS2's from
1.44-1.72x to 1.10-1.38x; the real images of the bundled specs are 3-20 except the contrast-stretched Au
boundary (41), where the shot noise is far below the mismatch of a Gaussian column model and the joint fit
moved atoms of a dislocation core enough to change its ring (a 5-ring became a 4-ring beside it,
off the boundary's line)."""


def _solve_spd(a, b):
    """Solve a small symmetric positive-definite system by an unrolled Cholesky factorisation.

    ``a`` (K, K), ``b`` (K,); K is static. Unrolled scalar arithmetic vectorises across ``vmap`` far
    better on CPU than a batch of tiny LAPACK calls.
    """
    k = a.shape[0]
    lower = [[None] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            s = a[i, j] - sum(lower[i][m] * lower[j][m] for m in range(j))
            if i == j:
                lower[i][j] = jnp.sqrt(jnp.maximum(s, 1e-30))
            else:
                lower[i][j] = s / lower[j][j]
    y = [None] * k
    for i in range(k):
        y[i] = (b[i] - sum(lower[i][m] * y[m] for m in range(i))) / lower[i][i]
    x = [None] * k
    for i in reversed(range(k)):
        x[i] = (y[i] - sum(lower[m][i] * x[m] for m in range(i + 1, k))) / lower[i][i]
    return jnp.stack(x)


def _fit_one(window, mask, sigma, start, sigma_max, ux, uy, n_iter, half):
    """Fit ``b + a exp(-|p - p0|^2 / 2 s^2)`` to one window by weighted Levenberg-Marquardt.

    Parameters
    ----------
    window : (P,) float32, the window's pixels (a disk, its centre pixel first), scaled to O(1)
    mask : (P,) float32, the square root of each pixel's weight (0 where the pixel takes no part); the
        cost is ``sum(mask^2 * residual^2)``
    sigma : () float32, starting Gaussian sigma, px
    start : (2,) float32, starting offset from the window centre, px; NaN starts from the centre of mass
    sigma_max : () float32, largest Gaussian sigma allowed, px
    ux, uy : (P,) float32, each pixel's offset from the window centre, px
    half : int (static), the window's half-width, px
    n_iter : () int32, LM iterations; 0 returns the start (traced, so that one compiled kernel serves every count)

    Returns
    -------
    xy : (2,) offsets from the window centre, px
    amplitude : ()
    sigma : () fitted Gaussian sigma, px (the starting sigma where the fit failed)
    ok : () bool, the Gaussian fit converged inside the window (else ``xy`` is the start)
    """
    h = half
    # start: the given offset or the centre of mass above the masked minimum; amplitude from the centre pixel
    lo = jnp.min(jnp.where(mask > 0, window, jnp.inf))
    mass = jnp.maximum(window - lo, 0.0) * mask
    total = jnp.maximum(mass.sum(), 1e-12)
    com = jnp.stack([(mass * ux).sum() / total, (mass * uy).sum() / total])
    com = jnp.where(jnp.isnan(start), com, start)
    amp0 = jnp.maximum(window[0] - lo, 1e-6)
    s_min, s_max = 0.3, jnp.minimum(float(h) + 1.0, sigma_max)
    p0 = jnp.stack([com[0], com[1], amp0, jnp.clip(sigma, s_min, s_max), lo])

    def normal_equations(p):
        """Cost, Gauss-Newton matrix (5, 5) and gradient (5,) at parameters p."""
        dx, dy = ux - p[0], uy - p[1]
        r2 = dx * dx + dy * dy
        inv_s2 = 1.0 / (p[3] * p[3])
        g = jnp.exp(-0.5 * r2 * inv_s2) * mask
        ag = p[2] * g * inv_s2
        res = (p[4] + p[2] * g - window) * mask
        jac = (ag * dx, ag * dy, g, ag * r2 / p[3], mask)
        # explicit sums of products: they vectorise across atoms far better on CPU than a batch of
        # (5, W^2) @ (W^2, 5) matrix products
        hess = [[None] * 5 for _ in range(5)]
        for i in range(5):
            for j in range(i + 1):
                hess[i][j] = hess[j][i] = (jac[i] * jac[j]).sum()
        grad = jnp.stack([(jac_k * res).sum() for jac_k in jac])
        return (res * res).sum(), jnp.stack([jnp.stack(row) for row in hess]), grad

    def step(_, state):
        # the normal equations of the best point so far are carried along, so every iteration costs
        # one model evaluation (at the candidate) rather than two
        p, lam, c, hess, grad = state
        damped = hess + lam * jnp.diag(jnp.diag(hess)) + 1e-9 * jnp.eye(5, dtype=hess.dtype)
        delta = -_solve_spd(damped, grad)
        delta = delta.at[:2].set(jnp.clip(delta[:2], -1.0, 1.0))  # at most one pixel per step
        p_new = (p + delta).at[3].set(jnp.clip(p[3] + delta[3], s_min, s_max))
        c_new, hess_new, grad_new = normal_equations(p_new)
        better = jnp.isfinite(c_new) & (c_new < c)
        return (
            jnp.where(better, p_new, p),
            jnp.where(better, lam * 0.3, lam * 4.0),
            jnp.where(better, c_new, c),
            jnp.where(better, hess_new, hess),
            jnp.where(better, grad_new, grad),
        )

    p, _, _, _, _ = jax.lax.fori_loop(0, n_iter, step, (p0, jnp.float32(1e-2), *normal_equations(p0)))
    inside = jnp.all(jnp.abs(p[:2]) <= 0.75 * h)
    # a width at the cap is a result when the cap is the caller's; at the window's own limit it is degenerate
    width_ok = (p[3] > s_min) & ((p[3] < s_max) | (sigma_max < float(h) + 1.0))
    ok = jnp.all(jnp.isfinite(p)) & inside & (p[2] > 0) & width_ok
    ok = ok & (n_iter > 0)
    xy = jnp.where(ok, p[:2], com)
    amp = jnp.where(ok, p[2], amp0)
    return xy, amp, jnp.where(ok, p[3], sigma), ok


@stored
@partial(jax.jit, static_argnames=("half",))
def _fit_windows(windows, masks, sigma, start, sigma_max, ux, uy, n_iter, half):
    """Batched :func:`_fit_one`: windows, masks (P, N), sigma (N,), start (N, 2), sigma_max (), ux, uy (P,),
    n_iter () -> xy (N, 2), amplitude (N,), sigma (N,), ok (N,).

    Atoms run along the last (minor) axis so that XLA vectorises across atoms and the per-atom sums over
    pixels become row additions; with atoms leading it is several times slower on CPU. ``half`` (static)
    by keyword (:func:`~motifgram.engine.kernelstore.stored`).
    """
    fit = jax.vmap(partial(_fit_one, half=half), in_axes=(1, 1, 0, 0, None, None, None, None))
    return fit(windows, masks, sigma, start, sigma_max, ux, uy, n_iter)


def _sample_index(size: int) -> np.ndarray | None:
    """Seeded indices of :data:`_SAMPLE_PIXELS` of ``size`` values, or None where ``size`` is at most twice that.

    Percentiles and medians of a 2^18-pixel sample are within ~0.2 % of the image's (a quantile's standard
    error at that size) and cost a fraction of a sort of a 2048^2 image.
    """
    return None if size <= 2 * _SAMPLE_PIXELS else np.random.default_rng(0).integers(0, size, _SAMPLE_PIXELS)


def _pixel_sample(img: np.ndarray) -> np.ndarray:
    """The pixels of ``img``, or a seeded sample of them on a larger image (:func:`_sample_index`)."""
    flat = img.ravel()
    pick = _sample_index(flat.size)
    return flat if pick is None else flat[pick]


def _disk_offsets(bucket: int, half_window: int):
    """Pixel offsets (x, y) of the disk of radius ``bucket + 0.5`` px, centre first and by distance, and which of
    them lie within ``half_window + 0.5`` px (the rest pad the window to its bucket's pixel count).

    Returns
    -------
    ox, oy : (P,) int64 ndarray, px
    used : (P,) bool ndarray
    """
    off = np.arange(-bucket, bucket + 1)
    oy, ox = (a.ravel() for a in np.meshgrid(off, off, indexing="ij"))
    r2 = ox * ox + oy * oy
    order = np.argsort(r2, kind="stable")
    order = order[r2[order] <= (bucket + 0.5) ** 2]
    return ox[order], oy[order], r2[order] <= (half_window + 0.5) ** 2


def refine_positions(image, xy, *, sigma_px: float, half_window: int, n_iter: int = 8):
    """Refine atom positions by fitting a 2-D Gaussian + constant background to every atom at once.

    For each atom the pixels within ``half_window + 0.5`` px of its nearest pixel are gathered (one
    vectorised gather; pixels outside the image are masked out), the centre of mass above the window
    minimum is the starting point, and ``n_iter`` Levenberg-Marquardt steps fit the parameters
    (x0, y0, amplitude, sigma, background) for all atoms together in one jitted ``vmap``-ed kernel.
    Position steps are clamped to 1 px; a fit that ends outside the inner 75 % of the window, with a
    non-positive amplitude or a degenerate width falls back to the centre of mass. The atoms are fitted in
    fixed chunks and the window is padded to a fixed set of sizes (:mod:`motifgram.engine.buckets`), so
    images with different atom counts reuse the compiled kernel, and memory stays linear in the atom count.

    Parameters
    ----------
    image : (H, W) array_like
        Micrograph with bright atoms.
    xy : (N, 2) array_like, px
        Starting positions (x = column, y = row), e.g. local maxima.
    sigma_px : float
        Starting Gaussian sigma of a column, px (the fit adjusts it per atom).
    half_window : int
        Fit radius, px (:func:`~motifgram.engine.detect.detect_atoms` uses 0.4 x the nearest-neighbour distance).
    n_iter : int
        Levenberg-Marquardt iterations; 0 returns the centre-of-mass estimate.

    Returns
    -------
    xy : (N, 2) float32 ndarray, px
        Refined positions.
    amplitude : (N,) float32 ndarray
        Fitted amplitude above the fitted background, image units.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ImageError(f"expected a 2-D image, got an array of shape {img.shape}")
    pts = np.asarray(xy, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2), got {pts.shape}")
    if not sigma_px > 0:
        raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
    xy_fit, amplitude, _, _ = refine_columns(img, pts, sigma_px=sigma_px, half_window=half_window, n_iter=n_iter)
    return xy_fit, amplitude


def refine_columns(image, xy, *, sigma_px, half_window, n_iter, sigma_max=None, weights=None, own=None):
    """The batched fit behind :func:`refine_positions` and :func:`refine_jointly`, without input checks.

    Parameters
    ----------
    image : (H, W) float array
        The image fitted (for the joint fit: the image minus every other column's model).
    xy : (N, 2) float array, px
        Starting positions.
    sigma_px : float or (N,) float array
        Starting Gaussian sigma, px.
    half_window : int
        Fit radius, px.
    n_iter : int
        Levenberg-Marquardt iterations.
    sigma_max : float, optional
        Largest Gaussian sigma, px (default: the window's half-width + 1).
    weights : (H, W) float array, optional
        Inverse noise variance of every pixel (default: uniform).
    own : tuple of (N,) amplitude and (N,) sigma, optional
        Each column's own Gaussian at ``xy`` with these parameters, in image units, is added to its window
        (the joint fit takes it out of ``image`` with the neighbours), and the fit starts at ``xy`` rather
        than at the window's centre of mass.

    Returns
    -------
    xy : (N, 2) float32, amplitude : (N,) float32 (image units), sigma : (N,) float32 (px), ok : (N,) bool
    (the Gaussian fit was used; elsewhere ``xy`` is the start).
    """
    img = np.asarray(image, dtype=np.float32)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if half_window < 1:
        raise ValueError(f"half_window must be >= 1 px, got {half_window}")
    n = pts.shape[0]
    if n == 0:
        empty = np.zeros((0,), np.float32)
        return np.zeros((0, 2), np.float32), empty, empty.copy(), np.zeros((0,), bool)
    hb = bucket_window(int(half_window))
    lo, hi = np.percentile(_pixel_sample(img), [1.0, 99.9])  # robust scaling to O(1) for float32 conditioning
    scale = float(hi - lo) if hi > lo else 1.0
    centre = np.rint(pts).astype(np.int64)  # (N, 2) x, y
    ox, oy, used = _disk_offsets(hb, half_window)
    h, w = img.shape
    root_w = None if weights is None else np.sqrt(weights / np.median(_pixel_sample(weights))).astype(np.float32)
    sigma0 = np.broadcast_to(np.asarray(sigma_px, np.float32), (n,))
    if own is None:
        start = np.full((n, 2), np.nan, np.float32)
        own_amp = own_sigma = np.zeros(n, np.float32)
    else:
        start = (pts - centre).astype(np.float32)
        own_amp, own_sigma = (np.broadcast_to(np.asarray(v, np.float32), (n,)) for v in own)
    s_cap = jnp.float32(np.inf if sigma_max is None else sigma_max)
    fx, fy = ox.astype(np.float32), oy.astype(np.float32)
    offset_flat = oy * w + ox
    ux, uy = jnp.asarray(fx), jnp.asarray(fy)

    def fit_chunk(chunk, s0, st, a_own, s_own):
        # one flat gather of the disk's pixels straight into the kernel's (pixel, atom) layout: (P, n); a window
        # within the image is its centre's flat index plus the offsets', only those cut by the border are clipped.
        # The arithmetic on (P, n) runs in place: each new array of that size costs its page faults again
        chunk = np.asarray(chunk, np.int64)
        flat = offset_flat[:, None] + (chunk[:, 1] * w + chunk[:, 0])[None, :]
        valid = np.repeat(used[:, None], chunk.shape[0], axis=1)
        cut = np.flatnonzero((chunk.min(axis=1) < hb) | (chunk[:, 0] >= w - hb) | (chunk[:, 1] >= h - hb))
        if cut.size:
            rows, cols = oy[:, None] + chunk[None, cut, 1], ox[:, None] + chunk[None, cut, 0]
            valid[:, cut] &= (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            flat[:, cut] = rows.clip(0, h - 1) * w + cols.clip(0, w - 1)
        windows = img.ravel()[flat]
        if own is not None:
            st = np.asarray(st)
            inv = np.float32(-0.5) / np.maximum(np.asarray(s_own), np.float32(0.3)) ** 2
            model = np.subtract(fx[:, None], st[:, 0])
            model *= model
            dy = np.subtract(fy[:, None], st[:, 1])
            dy *= dy
            model += dy
            model *= inv
            np.exp(model, out=model)
            model *= np.asarray(a_own)
            windows += model
        windows -= np.float32(lo)
        windows *= np.float32(1.0 / scale)
        if root_w is None:
            masks = valid.astype(np.float32)
        else:
            masks = root_w.ravel()[flat]
            masks *= valid
        return _fit_windows(windows, masks, s0, st, s_cap, ux, uy, np.int32(n_iter), half=hb)

    fit_xy, amp, sig, ok = map_chunks(
        fit_chunk, [centre, sigma0, start, own_amp, own_sigma], chunk=_FIT_CHUNK
    )
    if n_iter > 0 and not ok.all():
        log.info("refine: %d of %d fits fell back to their start", int((~ok).sum()), n)
    out = (centre + fit_xy).astype(np.float32)
    return out, (amp * scale).astype(np.float32), sig.astype(np.float32), ok


def render_columns(shape, xy, amplitude, sigma, *, reach=3.0):
    """Sum of Gaussian columns ``a exp(-|p - p_i|^2 / 2 s_i^2)`` on an image of ``shape``.

    Each column's stamp is the outer product of its two 1-D Gaussian profiles (the isotropic Gaussian is
    separable), so a stamp of side ``S`` costs ``2 S`` exponentials rather than ``S^2``.

    Parameters
    ----------
    shape : (int, int)
        Image shape (H, W).
    xy : (N, 2) float array, px
    amplitude, sigma : (N,) float arrays (image units, px)
    reach : float
        Each column is drawn out to this many of its sigmas (of the largest sigma), px.

    Returns
    -------
    (H, W) float64 ndarray
    """
    h, w = shape
    out = np.zeros(h * w)
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if xy.shape[0] == 0:
        return out.reshape(h, w)
    r = int(np.ceil(reach * float(np.max(sigma))))
    off = np.arange(-r, r + 1)
    centre = np.rint(xy).astype(np.int64)
    amplitude, sigma = np.asarray(amplitude, np.float64), np.asarray(sigma, np.float64)
    for c0 in range(0, xy.shape[0], 4096):  # bounded memory: (chunk, (2r+1)^2) at a time
        c, p = centre[c0 : c0 + 4096], xy[c0 : c0 + 4096]
        inv = -0.5 / sigma[c0 : c0 + 4096, None] ** 2
        rows = c[:, 1, None] + off  # (n, S)
        cols = c[:, 0, None] + off
        gy = np.exp((rows - p[:, 1, None]) ** 2 * inv) * ((rows >= 0) & (rows < h))
        gx = np.exp((cols - p[:, 0, None]) ** 2 * inv) * ((cols >= 0) & (cols < w))
        val = (amplitude[c0 : c0 + 4096, None] * gy)[:, :, None] * gx[:, None, :]
        # summed over the span of pixels the chunk reaches only (a band of rows: detection gives the atoms in row
        # order), not the whole image per chunk, which made the rendering quadratic in the image's side; the span's
        # first pixel is taken off the (n, S) offsets, before they are spread to (n, S, S)
        row_flat, cols = rows.clip(0, h - 1) * w, cols.clip(0, w - 1)
        first = int((row_flat.min(axis=1) + cols.min(axis=1)).min())
        part = np.bincount(((row_flat - first)[:, :, None] + cols[:, None, :]).ravel(), weights=val.ravel())
        out[first : first + len(part)] += part
    return out.reshape(h, w)


def model_amplitudes(amplitude) -> np.ndarray:
    """Fitted column amplitudes (N,) as a model of the columns uses them: float32, clipped to 0 .. 3x their median
    (a small window can swell a column into a broad blob, whose model would take out its neighbours' signal)."""
    return np.clip(np.asarray(amplitude, np.float32), 0.0, 3.0 * max(float(np.median(amplitude)), 0.0))


def noise_weights(image) -> np.ndarray:
    """Inverse noise variance of every pixel under a Poisson + read-noise model ``var = g I + c``.

    The image is cut into 2x2 blocks; the finest diagonal Haar coefficient of a block measures its noise
    (a smooth column profile hardly reaches it) and the block mean its level. The blocks are grouped into
    16 bins of equal count by level (on a larger image, a seeded sample of 2^18 blocks); the robust variance
    of each bin (MAD / 0.6745, squared) against its median level gives ``g`` and ``c`` by least squares. The
    variance at each pixel is that line at the lightly smoothed image (1 px), floored at a tenth of the median
    variance. Without a positive slope (dark-atom or already normalised images) the weights are uniform.

    Parameters
    ----------
    image : (H, W) float array

    Returns
    -------
    (H, W) float32 ndarray, image units^-2
    """
    img = np.asarray(image)
    h, w = img.shape[0] // 2, img.shape[1] // 2
    # the blocks' corners in float64, only the sampled blocks' on a larger image (no float64 copy of the image)
    pick = _sample_index(h * w)
    rows, cols = np.divmod(np.arange(h * w) if pick is None else pick, w)
    a, b, c, d = (img[2 * rows + i, 2 * cols + j].astype(np.float64) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    detail, level = (a - b - c + d) / 2, (a + b + c + d) / 4
    order = np.argsort(level)
    bins = np.array_split(order, 16)
    lev = np.array([np.median(level[g]) for g in bins])
    var = np.array([(np.median(np.abs(detail[g])) / 0.6745) ** 2 for g in bins])
    slope, intercept = np.polyfit(lev, var, 1)
    floor = 0.1 * float(np.median(var))
    if not (slope > 0 and floor > 0):
        return np.full(img.shape, 1.0 / max(float(np.median(var)), 1e-30), np.float32)
    # the model in float64 (the filter computes in float64 whatever its input), in place: one image-sized buffer
    model = ndi.gaussian_filter(img, 1.0, mode="nearest", output=np.float64)
    model *= slope
    model += intercept
    np.maximum(model, floor, out=model)
    np.divide(1.0, model, out=model)
    return model.astype(np.float32)


def refine_jointly(image, xy, amplitude, sigma, *, nn_px, n_iter=(8, 4), max_snr=JOINT_MAX_SNR):
    """Refine every column together with its neighbours and a local background, noise-weighted.

    Each pass renders every column's current Gaussian (:func:`render_columns`), takes the others out of
    each column's window (radius ``0.8 nn``, the window of
    :func:`~motifgram.engine.imaging.position_bound`), and refits that column's position, amplitude, width
    (at most ``nn / 2.8`` and 1.25x the median width of the first fit) and a constant background by
    Levenberg-Marquardt with the weights of :func:`noise_weights`, all columns at once in the kernel of
    :func:`refine_positions`. The passes are block-coordinate steps of the joint least-squares fit of all
    columns; a column whose fit fails keeps its previous values. In the neighbours' model of the first pass
    every column has the median width of the first fit and an amplitude clipped to 3x the median (a small
    window can swell a column into a broad blob).

    Parameters
    ----------
    image : (H, W) float array
        Micrograph with bright atoms.
    xy : (N, 2) float array, px
        Positions from a first, independent fit.
    amplitude, sigma : (N,) float arrays
        Their amplitudes (image units) and Gaussian sigmas (px).
    nn_px : float
        Nearest-neighbour distance, px.
    max_snr : float
        The joint fit runs only below this column signal-to-noise ratio (the median amplitude over the noise
        sigma at the columns, from :func:`noise_weights`); above it the input is returned unchanged.
    n_iter : sequence of int
        Levenberg-Marquardt iterations of each pass, one pass per entry. The second pass starts next to its
        optimum, so 4 iterations reach what 8 do (benchmarks/README.md).

    Returns
    -------
    xy : (N, 2) float32, amplitude : (N,) float32, sigma : (N,) float32
    """
    img = np.asarray(image, np.float32)
    xy = np.asarray(xy, np.float32).reshape(-1, 2)
    if xy.shape[0] == 0:
        return xy, np.zeros(0, np.float32), np.zeros(0, np.float32)
    width = float(np.median(sigma))
    cap = min(nn_px / 2.8, 1.25 * width)
    amp = model_amplitudes(amplitude)
    sig = np.full(xy.shape[0], min(width, cap), np.float32)
    weights = noise_weights(img)
    centre = np.clip(np.rint(xy).astype(np.int64), 0, [img.shape[1] - 1, img.shape[0] - 1])
    snr = float(np.median(amplitude)) * float(np.median(np.sqrt(weights[centre[:, 1], centre[:, 0]])))
    if not snr < max_snr:
        log.info("joint refinement skipped: column signal-to-noise %.1f >= %.0f", snr, max_snr)
        return xy, np.asarray(amplitude, np.float32), np.asarray(sigma, np.float32)
    log.info("joint refinement: column signal-to-noise %.1f, %d passes", snr, len(n_iter))
    half_window = max(2, int(round(0.8 * nn_px)))
    for iterations in n_iter:
        others = render_columns(img.shape, xy, np.maximum(amp, 0.0), sig)
        np.subtract(img, others, out=others)  # in place, then in float32 (as the fit reads it): one float64 image
        others = others.astype(np.float32)
        new_xy, new_amp, new_sig, ok = refine_columns(
            others, xy, sigma_px=sig, half_window=half_window, n_iter=iterations, sigma_max=cap,
            weights=weights, own=(np.maximum(amp, 0.0), sig),
        )
        xy = np.where(ok[:, None], new_xy, xy)
        amp, sig = np.where(ok, new_amp, amp), np.where(ok, new_sig, sig)
    return xy.astype(np.float32), amp.astype(np.float32), sig.astype(np.float32)
