"""Image samples around atom columns: square patches, arbitrary sample patterns, and patch rotation.

A patch of odd side ``P`` is sampled on the pixel grid of the image shifted so that its centre pixel
``(P // 2, P // 2)`` lies exactly at the atom's sub-pixel position: patch pixel ``(i, j)`` (row, column)
holds the image value at ``x + j - P // 2``, ``y + i - P // 2`` (``xy`` = column, row in px, origin at the
centre of the top-left pixel), bilinearly interpolated. :func:`sample_image` samples any pattern of
offsets the same way (e.g. the polar grid of :mod:`motifgram.engine.zernike`).

Borders: the image is extended by mirror reflection about its edge pixels (numpy's ``mode="reflect"``:
``d c b | a b c d | c b a``), so patches of atoms near the border are complete, mirrored neighbourhoods.
Positions outside the image are clamped onto its extent ``[0, W - 1] x [0, H - 1]`` first.

Atoms are sampled by one jitted gather (the 2 x 2 block of bilinear corners read from the padded image) over
fixed chunks of atoms, from an image padded to a side bucket (:mod:`motifgram.engine.buckets`), so that
micrographs of other sizes and atom counts reuse one compiled kernel per sample pattern.
"""

import logging
import math
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from motifgram.engine.buckets import bucket_side, map_chunks, pad_to, to_device
from motifgram.engine.errors import ImageError
from motifgram.engine.kernelstore import stored

__all__ = [
    "MIN_PATCH_SIZE",
    "MAX_PATCH_SIZE",
    "patch_size_for",
    "disc_diameter_for",
    "prepare_sampling",
    "bilinear_gather",
    "sample_image",
    "extract_patches",
    "rotate_patches",
    "peak_values",
    "normalise_image",
    "intensity_quantiles",
    "INTENSITY_QUANTILES",
]

log = logging.getLogger(__name__)

MIN_PATCH_SIZE = 7
"""Smallest patch side returned by :func:`patch_size_for` (px): enough for a radial order of 10."""

MAX_PATCH_SIZE = 129
"""Largest patch side returned by :func:`patch_size_for` (px): bounds memory at O(N * 129**2)."""


def disc_diameter_for(lattice_period_px):
    """Zernike disc diameter (px) for a lattice period: ``period + 1``, clipped to ``[7, 129]`` px.

    The disc holds the atom column and reaches about halfway to its neighbours, so a token describes the
    column and its immediate surroundings; how columns combine is left to the rings and the grammar. The
    prior art's wider disc (``2 * period + 1``, the first shell of neighbours included) makes tokens encode
    the neighbours' species and the strain field around defects, which splits one species into many
    tokens and the ring words with them (measured: simulated graphene with Stone–Wales defects gives 4
    tokens and 36 ring rules at 25 px, 1 token and 4 ring rules at 13 px; 2H-MoS2 site classes reach ARI
    0.63 at 25 px and 0.75 at 13 px). Set ``features.patch_size`` for the wider disc.

    Continuous in the period, so that two micrographs of one structure whose period estimates differ a
    little (an amorphous network's diffuse ring: 10.3-11.5 px over seeds) get features of nearly the same
    disc; rounding to an odd patch side put them on either side of 12 px (discs of 11 and 13 px), and a
    joint token model then separated them by their disc (benchmarks/README.md, "Issue 20"). The polar
    sampling of :func:`motifgram.engine.zernike.image_moments` takes any diameter; square patches (class
    averages) keep the odd side of :func:`patch_size_for`.

    Parameters
    ----------
    lattice_period_px : float
        Lattice period in pixels (> 0).

    Returns
    -------
    float
        Diameter in px.

    Examples
    --------
    >>> disc_diameter_for(11.3)
    12.3
    """
    return min(max(_checked_period(lattice_period_px) + 1.0, float(MIN_PATCH_SIZE)), float(MAX_PATCH_SIZE))


def _checked_period(lattice_period_px) -> float:
    period = float(lattice_period_px)
    if not math.isfinite(period) or period <= 0:
        raise ValueError(f"lattice_period_px must be a finite positive number of pixels, got {lattice_period_px!r}")
    return period


def patch_size_for(lattice_period_px):
    """Square patch side (odd, px) for a lattice period: ``period + 1`` rounded to odd, clipped.

    The side of the square patches (class averages, overlays) about a disc of :func:`disc_diameter_for`.

    Parameters
    ----------
    lattice_period_px : float
        Lattice period in pixels (> 0), as :func:`motifgram.engine.detect.estimate_lattice_period` gives it.

    Returns
    -------
    int
        Odd diameter in ``[MIN_PATCH_SIZE, MAX_PATCH_SIZE]`` = ``[7, 129]`` px.

    Examples
    --------
    >>> patch_size_for(12.0)
    13
    >>> patch_size_for(1.0)
    7
    """
    size = 2 * int(round(_checked_period(lattice_period_px) / 2)) + 1
    return int(min(max(size, MIN_PATCH_SIZE), MAX_PATCH_SIZE))


def bilinear_gather(padded, xy, offsets, pad):
    """Bilinear samples (M, S) of ``padded`` (an image mirror-padded by ``pad`` px) at ``xy + offsets``.

    The traceable kernel of :func:`sample_image` (and of :func:`motifgram.engine.zernike.image_moments`).
    ``xy`` (M, 2) and ``offsets`` (S, 2) are (x = column, y = row) in px of the unpadded image, every
    ``xy + offsets`` inside ``padded`` (:func:`prepare_sampling` guarantees it). Each sample reads its four
    bilinear corners as one 2 x 2 block (one XLA gather; measured 1.7x faster on CPU than a gather per
    corner, and faster than per-atom windows). Traceable, and vmap-able over a batch of position sets
    (``in_axes=(None, 0, None, None)``).
    """
    pos = xy[:, None, :] + offsets[None] + pad
    corner = jnp.floor(pos)
    frac = pos - corner
    start = corner.astype(jnp.int32)[..., ::-1]  # (row, column) of the top-left corner
    dims = jax.lax.GatherDimensionNumbers(offset_dims=(2, 3), collapsed_slice_dims=(), start_index_map=(0, 1))
    block = jax.lax.gather(padded, start, dims, slice_sizes=(2, 2), mode="promise_in_bounds")
    fx, fy = frac[..., 0], frac[..., 1]
    top = (1 - fx) * block[..., 0, 0] + fx * block[..., 0, 1]
    bottom = (1 - fx) * block[..., 1, 0] + fx * block[..., 1, 1]
    return (1 - fy) * top + fy * bottom


_gather_jit = stored(jax.jit(bilinear_gather, static_argnames=("pad",)))


def prepare_sampling(image, xy, reach_px):
    """Validate inputs and mirror-pad the image for bilinear sampling within ``reach_px`` of each position.

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Positions (x = column, y = row) in px; clamped onto ``[0, W - 1] x [0, H - 1]``.
    reach_px : float
        Largest offset (px, either axis) that will be sampled about a position.

    Returns
    -------
    padded : (H', W') ndarray of float32
        The image extended by mirror reflection (``mode="reflect"``) by ``pad`` px on every side, then with
        zeros on the bottom and right to ``bucket_side(H) + 2 pad`` by ``bucket_side(W) + 2 pad``
        (:func:`motifgram.engine.buckets.bucket_side`; never sampled), so that images of similar sizes share
        compiled kernels.
    xy : (N, 2) ndarray of float32
        The clamped positions.
    pad : int
        ``ceil(reach_px) + 1`` px.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 2:
        raise ImageError(f"image must be a 2-D array of at least 2 x 2 pixels, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise ImageError("image contains NaN or infinite pixels; clean or inpaint them before extracting patches")
    pts = np.asarray(xy, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2) (x = column, y = row), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("xy contains NaN or infinite positions")
    h, w = img.shape
    pad = int(math.ceil(reach_px)) + 1
    if pad >= min(h, w):
        raise ImageError(f"image of shape {img.shape} is too small for patches of radius {reach_px:g} px")
    mirrored = np.pad(img, pad, mode="reflect")
    bucketed = pad_to(pad_to(mirrored, bucket_side(h) + 2 * pad, axis=0), bucket_side(w) + 2 * pad, axis=1)
    return bucketed, np.clip(pts, 0.0, [w - 1, h - 1]).astype(np.float32), pad


def sample_image(image, xy, *, offsets):
    """Bilinear image values at ``xy[k] + offsets[s]`` for every position and offset (one jitted gather).

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Centres (x = column, y = row) in px, origin at the centre of the top-left pixel; clamped onto
        the image.
    offsets : (S, 2) array_like of float
        Sample offsets (x, y) in px (y along rows, i.e. down as displayed).

    Returns
    -------
    (N, S) ndarray of float32
        Mirror-reflected beyond the border (see module docstring).
    """
    off = np.asarray(offsets, dtype=np.float32)
    if off.ndim != 2 or off.shape[1] != 2 or not np.isfinite(off).all():
        raise ValueError(f"offsets must be a finite (S, 2) array of (x, y) px, got shape {off.shape}")
    image_padded, pts, pad = prepare_sampling(image, xy, float(np.abs(off).max(initial=0.0)))
    return map_chunks(partial(_gather_jit, to_device(image_padded)), [pts], off, pad=pad)


@lru_cache(maxsize=64)
def _square_offsets(patch_size):
    half = patch_size // 2
    jj, ii = np.meshgrid(np.arange(patch_size) - half, np.arange(patch_size) - half)
    return np.stack([jj.ravel(), ii.ravel()], axis=1).astype(np.float32)


def extract_patches(image, xy, *, patch_size):
    """Extract one ``patch_size`` x ``patch_size`` patch centred on every sub-pixel position.

    Parameters
    ----------
    image : (H, W) array_like of float
        The micrograph.
    xy : (N, 2) array_like of float
        Atom positions ``(x = column, y = row)`` in px, origin at the centre of the top-left pixel.
    patch_size : int
        Odd patch side in px (see :func:`patch_size_for`).

    Returns
    -------
    (N, P, P) ndarray of float32
        ``patches[k, i, j]`` = image at ``(x_k + j - P // 2, y_k + i - P // 2)``, bilinear; mirror-reflected
        beyond the border (see module docstring).

    Examples
    --------
    >>> img = np.arange(100, dtype=np.float32).reshape(10, 10)
    >>> extract_patches(img, [[4.5, 3.0]], patch_size=3)[0, 1]
    array([33.5, 34.5, 35.5], dtype=float32)
    """
    size = int(patch_size)
    if size != patch_size or size < 1 or size % 2 == 0:
        raise ValueError(f"patch_size must be a positive odd integer, got {patch_size!r}")
    return sample_image(image, xy, offsets=_square_offsets(size)).reshape(-1, size, size)


@stored
@jax.jit
def _rotate(patches, angles):
    """Rotate (M, P, P) patches by (M,) angles (radians, counter-clockwise as displayed), bilinear, zero outside."""
    size = patches.shape[-1]
    c = (size - 1) / 2.0
    idx = jnp.arange(size, dtype=jnp.float32) - c
    xo = idx[None, :]  # output x (right)
    yo = -idx[:, None]  # output y (up)

    def one(patch, theta):
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        col = c + cos * xo + sin * yo
        row = c - (-sin * xo + cos * yo)
        c0 = jnp.floor(col)
        r0 = jnp.floor(row)
        fc = col - c0
        fr = row - r0
        c0 = c0.astype(jnp.int32)
        r0 = r0.astype(jnp.int32)

        def at(r, q):
            inside = (r >= 0) & (r < size) & (q >= 0) & (q < size)
            return jnp.where(inside, patch[jnp.clip(r, 0, size - 1), jnp.clip(q, 0, size - 1)], 0.0)

        top = (1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1)
        bottom = (1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)
        return (1 - fr) * top + fr * bottom

    return jax.vmap(one)(patches, angles)


def rotate_patches(patches, angles):
    """Rotate each patch about its centre pixel.

    Parameters
    ----------
    patches : (N, P, P) array_like of float
        Square patches (e.g. from :func:`extract_patches`).
    angles : (N,) array_like of float
        Rotation angles in radians; positive = counter-clockwise as displayed (row 0 at the top), the
        direction of ``np.rot90`` with ``k = 1``.

    Returns
    -------
    (N, P, P) ndarray of float32
        Rotated patches, bilinear; samples from outside the source patch are 0 (only the inscribed disk
        is complete for every angle).

    Examples
    --------
    >>> p = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    >>> np.allclose(rotate_patches(p, [np.pi / 2])[0], np.rot90(p[0]), atol=1e-5)
    True
    """
    arr = np.asarray(patches, dtype=np.float32)
    ang = np.asarray(angles, dtype=np.float32).reshape(-1)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"patches must have shape (N, P, P), got {arr.shape}")
    if len(ang) != len(arr):
        raise ValueError(f"angles must have one entry per patch ({len(arr)}), got {len(ang)}")
    if len(arr) == 0:
        return arr.copy()
    return map_chunks(_rotate, [arr, ang])


@lru_cache(maxsize=1)
def _quadratic_fit():
    """(6, 9) least-squares fit of ``c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2`` to a 3 x 3 block."""
    y, x = np.mgrid[-1:2, -1:2]
    design = np.stack([np.ones(9), x.ravel(), y.ravel(), x.ravel() ** 2, (x * y).ravel(), y.ravel() ** 2], axis=1)
    return np.linalg.pinv(design)


def peak_values(image, xy, *, background=0.0):
    """Sub-pixel peak heights above ``background`` at ``xy``, independent of the sub-pixel phase.

    A quadratic is fitted to the logarithm of the 3 x 3 pixels (minus ``background``) around each rounded
    position and evaluated at the exact position: exact for Gaussian columns of any width, whereas the
    nearest pixel value is up to ``exp(-1 / (4 sigma**2))`` lower for positions between pixels (a
    lattice aligned with the pixel grid puts all its atoms at one sub-pixel phase, which would bias a whole
    micrograph).

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Positions (x = column, y = row) in px.
    background : float
        Subtracted before the fit; pixels at or below it count as ``1e-3`` of the block's maximum.

    Returns
    -------
    (N,) ndarray of float64
        Peak height above ``background`` (> 0 where the block has any pixel above it, else 0).
    """
    img = np.asarray(image, dtype=np.float64)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    h, w = img.shape
    centre = np.rint(pts).astype(np.int64)
    centre = np.clip(centre, 1, [w - 2, h - 2]) if min(h, w) >= 3 else np.zeros_like(centre)
    dx, dy = np.meshgrid(np.arange(-1, 2), np.arange(-1, 2))
    rows = np.clip(centre[:, 1, None] + dy.ravel(), 0, h - 1)
    cols = np.clip(centre[:, 0, None] + dx.ravel(), 0, w - 1)
    block = img[rows, cols] - background  # (N, 9)
    top = block.max(axis=1, keepdims=True)
    positive = top[:, 0] > 0
    block = np.log(np.maximum(block, 1e-3 * np.where(positive[:, None], top, 1.0)))
    c = block @ _quadratic_fit().T
    x, y = (pts - centre).T
    x = np.clip(x, -1.0, 1.0)
    y = np.clip(y, -1.0, 1.0)
    value = c[:, 0] + c[:, 1] * x + c[:, 2] * y + c[:, 3] * x**2 + c[:, 4] * x * y + c[:, 5] * y**2
    # Never above the fitted block's scale by more than e (guards flat or noisy blocks).
    value = np.minimum(value, np.log(np.maximum(top[:, 0], 1e-300)) + 1.0)
    return np.where(positive, np.exp(value), 0.0)


def normalise_image(image, xy):
    """Scale an image so that its background is ≈ 0 and its median atom column peaks at ≈ 1.

    Features of atoms from different micrographs (another dose, detector gain or background) are then
    comparable, while the relative intensities of columns within a micrograph (Z-contrast) are kept.

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Atom positions (x = column, y = row) in px.

    Returns
    -------
    (H, W) ndarray of float32
        ``(image − b) / p`` with ``b`` the image's 5th percentile and ``p`` the median sub-pixel peak height
        above ``b`` at the atom positions (:func:`peak_values`); ``p`` falls back to ``max − b`` (or 1) when
        that is not positive.
    """
    img = np.asarray(image, dtype=np.float32)
    background = float(np.percentile(img, 5))
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    scale = float(np.median(peak_values(img, pts, background=background))) if len(pts) else 0.0
    if not np.isfinite(scale) or scale <= 0:
        scale = float(img.max() - background) or 1.0
    return (img - background) / np.float32(scale)


#: Quantile levels of :func:`intensity_quantiles`.
INTENSITY_QUANTILES = np.linspace(0.05, 0.995, 12)


def intensity_quantiles(image, xy, *, radius_px):
    """Quantiles of the pixel values in a disk around each point: a translation-invariant descriptor.

    For sites that are not atom columns (grid points, whose place in the unit cell is arbitrary), rotation
    invariants of a disk still change as the disk slides over the unit cell; the distribution of the values
    in a disk that spans more than a unit cell does not, but it does tell how the columns of two overlapping
    lattices stack locally (where columns coincide, the brightest values are higher).

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Points (x = column, y = row) in px.
    radius_px : float
        Disk radius in px (more than a unit cell; the pipeline uses 1.5 lattice periods).

    Returns
    -------
    (N, Q) ndarray of float32
        The :data:`INTENSITY_QUANTILES` quantiles of the bilinear samples on the whole-pixel offsets inside
        the disk (mirror borders, as :func:`sample_image`).
    """
    reach = int(np.ceil(radius_px))
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = dx**2 + dy**2 <= radius_px**2
    offsets = np.stack([dx[inside], dy[inside]], axis=1).astype(np.float32)
    values = np.asarray(sample_image(image, xy, offsets=offsets))
    return np.quantile(values, INTENSITY_QUANTILES, axis=1).T.astype(np.float32)
