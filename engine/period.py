"""Lattice period of an atomic-resolution micrograph from its power spectrum, and the input checks.

:func:`estimate_lattice_period` sets the scale of everything :mod:`motifgram.engine.detect` does (peak
separation, denoising, fit windows); :func:`checked_image` is the validation every detection entry point
applies first.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage as ndi

from motifgram.engine.errors import ImageError, NoLatticeError

__all__ = ["checked_image", "estimate_lattice_period", "MIN_SIDE_PX"]

log = logging.getLogger(__name__)

MIN_SIDE_PX = 32
"""Smallest image side (px) that can show a few lattice periods."""

_MIN_PERIOD_PX = 3.0  # finer lattices cannot be resolved into separate columns
_FFT_MAX_SIDE = 1024  # the period is estimated on a central crop at most this large
_PEAK_SIGNIFICANCE = 50.0  # Bragg spot / radial-median power; pure noise reaches ~20
_RING_CONTRAST = 10.0  # amorphous ring / white-noise floor of the radial power; pure noise stays < 3
_REFLECTION_FRACTION = 0.1  # a reflection counts as "strong" at >= this fraction of the strongest


def checked_image(image) -> np.ndarray:
    """Validate a 2-D finite, non-constant image of usable size; return it as float32."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ImageError(f"expected a 2-D grey-scale image, got an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ImageError(f"expected a real-valued numeric image, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ImageError(
            f"image has {int(bad.sum())} NaN/Inf pixels; replace them (e.g. by the median) before detection"
        )
    if min(arr.shape) < MIN_SIDE_PX:
        raise NoLatticeError(
            f"image is {arr.shape[0]}x{arr.shape[1]} px; need at least {MIN_SIDE_PX} px per side to see "
            "a lattice"
        )
    if float(arr.max()) == float(arr.min()):
        raise NoLatticeError("no periodic lattice found: the image is constant")
    return arr


def _power_spectrum(img: np.ndarray) -> tuple[np.ndarray, int]:
    """Centred power spectrum of the Hann-windowed central square crop, plane removed."""
    n = min(img.shape[0], img.shape[1], _FFT_MAX_SIDE) // 2 * 2
    r0 = (img.shape[0] - n) // 2
    c0 = (img.shape[1] - n) // 2
    crop = img[r0 : r0 + n, c0 : c0 + n].astype(np.float64)
    # remove the best-fit plane so an illumination ramp does not leak into low frequencies
    t = np.arange(n) - (n - 1) / 2
    crop = crop - crop.mean()
    crop = crop - np.outer(crop.mean(axis=1) @ t / (t @ t) * t, np.ones(n))
    crop = crop - np.outer(np.ones(n), crop.mean(axis=0) @ t / (t @ t) * t)
    hann = np.hanning(n)
    spec = sp_fft.fft2((crop * hann[:, None] * hann[None, :]).astype(np.float32))
    power = np.fft.fftshift(spec.real**2 + spec.imag**2).astype(np.float64)
    return power, n


def _radial_median(power: np.ndarray, radius_bin: np.ndarray, n_bins: int) -> np.ndarray:
    """Median power in each integer radius bin, shape (n_bins,)."""
    flat = radius_bin.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n_bins)[:n_bins]
    groups = np.split(power.ravel()[order][: counts.sum()], np.cumsum(counts)[:-1])
    # a loop over radius bins (<= 512), not over pixels or atoms
    return np.array([np.median(g) if g.size else np.inf for g in groups])


def _bragg_spots(img: np.ndarray):
    """Significant Bragg spots of the central crop.

    Returns k_xy (S, 2) in cycles per crop, power (S,), crop side n, the best spot significance, and the
    radial median power profile (n // 2 + 2,) by integer radius.
    """
    power, n = _power_spectrum(img)
    centre = n // 2
    ky, kx = np.mgrid[-centre : n - centre, -centre : n - centre]
    radius = np.hypot(kx, ky)
    n_bins = centre + 1
    radius_bin = np.minimum(np.rint(radius).astype(np.int64), n_bins)
    background = _radial_median(power, radius_bin, n_bins + 1)
    significance = power / np.maximum(background[radius_bin], np.finfo(np.float64).tiny)
    # periods from n/4 (at least four cells in the crop) down to 2 px (Nyquist)
    in_range = (radius >= 4) & (radius <= centre - 1)
    is_peak = (power == ndi.maximum_filter(power, size=3, mode="wrap")) & in_range
    rows, cols = np.nonzero(is_peak)
    sig = significance[rows, cols]
    best = float(sig.max()) if sig.size else 0.0
    keep = sig >= _PEAK_SIGNIFICANCE
    rows, cols = rows[keep], cols[keep]
    # sub-pixel spot centres: Gaussian (log-parabola) interpolation along each axis
    logp = np.log(np.maximum(power, np.finfo(np.float64).tiny))

    def offset(lm, l0, lp):
        den = lm - 2 * l0 + lp
        return np.where(den < 0, 0.5 * (lm - lp) / np.where(den < 0, den, -1.0), 0.0).clip(-0.5, 0.5)

    dr = offset(logp[rows - 1, cols], logp[rows, cols], logp[(rows + 1) % n, cols])
    dc = offset(logp[rows, cols - 1], logp[rows, cols], logp[rows, (cols + 1) % n])
    k_xy = np.stack([kx[rows, cols] + dc, ky[rows, cols] + dr], axis=1)
    return k_xy, power[rows, cols], n, best, background


def _check_period(period: float) -> None:
    if period < _MIN_PERIOD_PX:
        raise NoLatticeError(
            f"lattice too fine for the sampling: period {period:.2f} px (need >= {_MIN_PERIOD_PX:.0f} px); "
            "use a higher magnification or less binning"
        )


def _diffuse_ring_period(profile: np.ndarray, n: int) -> float | None:
    """Spacing of the diffuse ring of an amorphous structure, px, or None if there is none.

    ``profile`` is the radial median power by integer radius. The ring is the highest point of the profile
    at radii >= 8 cycles; it must be a local maximum at least ``_RING_CONTRAST`` times the white-noise floor
    (median of the outer fifth of the profile). Its radius is refined by a log-parabola.
    """
    centre = n // 2
    prof = profile[:centre]
    floor = float(np.median(prof[int(0.8 * centre) :]))
    r = 8 + int(np.argmax(prof[8 : centre - 1]))
    is_ring = floor > 0 and prof[r] >= _RING_CONTRAST * floor and prof[r - 1] <= prof[r] >= prof[r + 1]
    if not is_ring:
        return None
    lm, l0, lp = np.log(prof[r - 1 : r + 2])
    den = lm - 2 * l0 + lp
    r_sub = r + (0.5 * (lm - lp) / den if den < 0 else 0.0)
    return n / r_sub


def estimate_lattice_period(image) -> float:
    """Dominant lattice period of an atomic-resolution image, from its Bragg reflections.

    The power spectrum of the Hann-windowed central crop (at most 1024 px square, best-fit plane removed)
    is compared with its radial median; local maxima at least 50x that background are Bragg spots. The
    period is the real-space spacing ``d = n / |k|`` of the lowest-order *strong* reflection (power at least
    10 % of the strongest spot), with ``|k|`` interpolated to sub-pixel precision and averaged over the
    symmetry-equivalent spots. Without Bragg spots, an amorphous structure shows a diffuse ring in the
    radial median power; if that ring stands at least 10x above the white-noise floor, its spacing is
    returned (with a warning).

    For a square lattice of spacing ``a`` this is ``a``; for a honeycomb with bond length ``b`` (graphene,
    MoS2) it is the {100} spacing ``1.5 b`` (the lattice constant is ``sqrt(3) b``); for a triangular lattice
    of spacing ``a`` it is ``sqrt(3)/2 a``. The nearest-neighbour atom distance, which sets peak separation
    and fit windows, is measured by :func:`detect_atoms` and stored in :attr:`Atoms.nn_distance_px`.

    Parameters
    ----------
    image : (H, W) array_like
        Grey-scale micrograph, both sides >= 32 px.

    Returns
    -------
    float
        Lattice period in px.

    Raises
    ------
    ImageError
        If the image is not 2-D or holds NaN/Inf pixels.
    NoLatticeError
        If the image is too small or constant, shows neither a Bragg spot well above the noise nor a
        diffuse ring, or its lattice is finer than 3 px.
    """
    img = checked_image(image)
    k_xy, power, n, best, profile = _bragg_spots(img)
    if power.size == 0:
        period = _diffuse_ring_period(profile, n)
        if period is None:
            raise NoLatticeError(
                f"no periodic lattice found: the strongest FFT peak is {best:.1f}x the background at its "
                f"frequency (need >= {_PEAK_SIGNIFICANCE:.0f}x) and there is no diffuse ring; is this an "
                "atomic-resolution image?"
            )
        _check_period(period)
        log.warning(
            "no Bragg spots (strongest %.1fx background): amorphous structure? using the diffuse ring's "
            "spacing %.3f px as the period",
            best,
            period,
        )
        return period
    k_abs = np.hypot(k_xy[:, 0], k_xy[:, 1])
    strong = power >= _REFLECTION_FRACTION * power.max()
    k_first = k_abs[strong].min()
    ring = strong & (np.abs(k_abs - k_first) <= 0.05 * k_first)
    k_mean = float(np.average(k_abs[ring], weights=power[ring]))
    period = n / k_mean
    _check_period(period)
    log.info(
        "lattice period %.3f px from %d Bragg spot(s) (significance %.0fx background)",
        period,
        int(ring.sum()),
        best,
    )
    return period
