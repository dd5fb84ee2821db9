"""Batched sub-pixel refinement of atom columns: a 2-D Gaussian + background fitted to every column at once.

One jitted, ``vmap``-ed Levenberg-Marquardt kernel (:func:`refine_columns`) fits all columns of an image;
windows and atom chunks are padded to the shape buckets of :mod:`motifgram.engine.buckets`, so images with
different atom counts reuse the compiled kernel.
"""

from __future__ import annotations

import logging
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from motifgram.engine.buckets import bucket_window, chunk_rows, map_chunks
from motifgram.engine.errors import ImageError

__all__ = ["refine_positions", "refine_columns"]

log = logging.getLogger(__name__)


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


def _fit_one(window, mask, sigma, n_iter):
    """Fit ``b + a exp(-|p - p0|^2 / 2 s^2)`` to one window by Levenberg-Marquardt.

    Parameters
    ----------
    window : (W*W,) float32, the flattened (row-major) window, scaled to O(1)
    mask : (W*W,) float32, 1 where the pixel takes part in the fit
    sigma : () float32, starting Gaussian sigma, px
    n_iter : int (static), LM iterations; 0 returns the centre-of-mass start

    Returns
    -------
    xy : (2,) offsets from the window centre, px
    amplitude : ()
    ok : () bool, the Gaussian fit converged inside the window (else ``xy`` is the centre of mass)
    """
    w = round(window.shape[0] ** 0.5)
    h = (w - 1) // 2
    u = jnp.arange(w, dtype=jnp.float32) - h
    ux, uy = jnp.tile(u, w), jnp.repeat(u, w)
    # start: centre of mass above the masked minimum, amplitude from the centre pixel
    lo = jnp.min(jnp.where(mask > 0, window, jnp.inf))
    mass = jnp.maximum(window - lo, 0.0) * mask
    total = jnp.maximum(mass.sum(), 1e-12)
    com = jnp.stack([(mass * ux).sum() / total, (mass * uy).sum() / total])
    amp0 = jnp.maximum(window[h * w + h] - lo, 1e-6)
    s_min, s_max = 0.3, float(h) + 1.0
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
    ok = jnp.all(jnp.isfinite(p)) & inside & (p[2] > 0) & (p[3] > s_min) & (p[3] < s_max)
    if n_iter == 0:
        ok = jnp.asarray(False)
    xy = jnp.where(ok, p[:2], com)
    amp = jnp.where(ok, p[2], amp0)
    return xy, amp, ok


@partial(jax.jit, static_argnames=("n_iter",))
def _fit_windows(windows, masks, sigma, n_iter):
    """Batched :func:`_fit_one`: windows, masks (W*W, N), sigma () -> xy (N, 2), amplitude (N,), ok (N,).

    Atoms run along the last (minor) axis so that XLA vectorises across atoms and the per-atom sums over
    pixels become row additions; with atoms leading it is several times slower on CPU.
    """
    return jax.vmap(partial(_fit_one, n_iter=n_iter), in_axes=(1, 1, None))(windows, masks, sigma)


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
        Fit radius, px (:func:`detect_atoms` uses 0.4 x the nearest-neighbour distance).
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
    xy_fit, amplitude, _ = refine_columns(img, pts, sigma_px=sigma_px, half_window=half_window, n_iter=n_iter)
    return xy_fit, amplitude


def refine_columns(image, xy, *, sigma_px, half_window, n_iter):
    """:func:`refine_positions` without input checks that also returns ``ok`` (N,) bool: the Gaussian fit was used."""
    img = np.asarray(image, dtype=np.float32)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if half_window < 1:
        raise ValueError(f"half_window must be >= 1 px, got {half_window}")
    n = pts.shape[0]
    if n == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0,), np.float32), np.zeros((0,), bool)
    hb = bucket_window(int(half_window))
    # robust scaling to O(1) for float32 conditioning
    lo, hi = np.percentile(img, [1.0, 99.9])
    scale = float(hi - lo) if hi > lo else 1.0
    centre = np.rint(pts).astype(np.int64)  # (N, 2) x, y
    off = np.arange(-hb, hb + 1)
    disk = (off[:, None] ** 2 + off[None, :] ** 2) <= (half_window + 0.5) ** 2
    h, w = img.shape

    def fit_chunk(chunk):
        # one gather straight into the kernel's (pixel, atom) layout: rows/cols (W, W, n)
        chunk = np.asarray(chunk)
        rows = off[:, None, None] + chunk[None, None, :, 1]
        cols = off[None, :, None] + chunk[None, None, :, 0]
        valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        windows = ((img[rows.clip(0, h - 1), cols.clip(0, w - 1)] - lo) * (1.0 / scale)).astype(np.float32)
        masks = (valid & disk[:, :, None]).astype(np.float32)
        n_pix = (2 * hb + 1) ** 2
        return _fit_windows(windows.reshape(n_pix, -1), masks.reshape(n_pix, -1), jnp.float32(sigma_px), n_iter)

    fit_xy, amp, ok = map_chunks(fit_chunk, [centre], chunk=chunk_rows(n))
    if n_iter > 0 and not ok.all():
        log.info("refine_positions: %d of %d fits fell back to the centre of mass", int((~ok).sum()), n)
    out = (centre + fit_xy).astype(np.float32)
    return out, (amp * scale).astype(np.float32), ok
