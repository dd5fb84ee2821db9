"""Lattice period of an atomic-resolution micrograph from its power spectrum, and the input checks.

:func:`estimate_lattice_period` sets the scale of everything :mod:`motifgram.engine.detect` does (peak
separation, denoising, fit windows); :func:`checked_image` is the validation every detection entry point
applies first.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from motifgram.engine.errors import ImageError, NoLatticeError

__all__ = ["checked_image", "estimate_lattice_period", "lattice_period", "LatticePeriod", "MIN_SIDE_PX"]

log = logging.getLogger(__name__)

MIN_SIDE_PX = 32
"""Smallest image side (px) that can show a few lattice periods."""

_MIN_PERIOD_PX = 3.0  # finer lattices cannot be resolved into separate columns
_FFT_MAX_SIDE = 1024  # the period is estimated on a central crop at most this large
_PEAK_SIGNIFICANCE = 50.0  # Bragg spot / radial-median power; pure noise reaches ~20-28
_WELCH_SIGNIFICANCE = 12.0  # the same in the Welch spectrum: pure noise reaches 4.8, 2-D glass 6.1
_LOWER_SIGNIFICANCE = (20.0, 6.0)  # a lower-order reflection (periodogram, Welch): at a predicted radius only
#: ... or this, where it also lies at the predicted spot and carries the power of a strong reflection
_LOUD_LOWER_SIGNIFICANCE = 10.0
#: |k| ratios of a strong reflection to a lower-order one, and the angle between them, degrees (modulo 180:
#: a honeycomb's or hexagonal lattice's {100} lie 30 degrees from its {110}, a square lattice's {100} 45
#: degrees from its {110}, a doubled period on the strong spot's own line)
_LOWER_ORDERS = ((2.0, 0.0), (3**0.5, 30.0), (2**0.5, 45.0))
_LOWER_ANGLE_TOLERANCE = 5.0  # degrees
_RING_CONTRAST = 10.0  # amorphous ring / white-noise floor of the radial power; pure noise stays < 3
_REFLECTION_FRACTION = 0.1  # a reflection counts as "strong" at >= this fraction of the strongest
#: each reflection of a closing triple in the clipped periodogram; the best triple of pure noise (64²-1024²),
#: 2-D glass and random sequential addition reaches 17
_CLOSURE_SIGNIFICANCE = 24.0
_OUTLIER_SMOOTHING_PX = 2.0  # bright outliers are found in the image smoothed over this (below the finest lattice)
_OUTLIER_MADS = 3.0  # ... where it stands this many (normal-scaled) median absolute deviations above its median


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


def _plane_removed(crop: np.ndarray) -> np.ndarray:
    """A square crop minus its mean and its best-fit plane (an illumination ramp would leak into low frequencies)."""
    n = crop.shape[0]
    t = np.arange(n) - (n - 1) / 2
    crop = crop.astype(np.float64) - crop.mean()
    crop = crop - np.outer(crop.mean(axis=1) @ t / (t @ t) * t, np.ones(n))
    return crop - np.outer(np.ones(n), crop.mean(axis=0) @ t / (t @ t) * t)


def _periodogram(crop: np.ndarray) -> np.ndarray:
    """Centred power spectrum of a square crop, Hann-windowed, plane removed."""
    n = crop.shape[0]
    hann = np.hanning(n)
    spec = sp_fft.fft2((_plane_removed(crop) * hann[:, None] * hann[None, :]).astype(np.float32))
    return np.fft.fftshift(spec.real**2 + spec.imag**2).astype(np.float64)


def _central_crop(img: np.ndarray) -> np.ndarray:
    """The central square crop of even side, at most ``_FFT_MAX_SIDE`` px."""
    n = min(img.shape[0], img.shape[1], _FFT_MAX_SIDE) // 2 * 2
    r0 = (img.shape[0] - n) // 2
    c0 = (img.shape[1] - n) // 2
    return img[r0 : r0 + n, c0 : c0 + n]


def _welch_spectrum(crop: np.ndarray) -> np.ndarray:
    """Welch estimate of the centred power spectrum: the mean periodogram of the 3 x 3 half-side sub-crops that
    overlap by half (Hann-windowed, each plane removed), on a grid of ``n // 2`` frequencies per axis."""
    m = crop.shape[0] // 4 * 2
    step = m // 2
    starts = range(0, crop.shape[0] - m + 1, step)
    return np.mean([_periodogram(crop[r : r + m, c : c + m]) for r in starts for c in starts], axis=0)


def _bright_outliers_clipped(crop: np.ndarray) -> np.ndarray:
    """``crop`` with its bright outliers cut down to the level of the rest.

    Where the crop smoothed over 2 px stands more than 3 median absolute deviations above its median (heavy
    single atoms, bright contamination), the excess of the smoothed image is subtracted, so that the pixel noise
    stays. A few bright blobs spread their power over all low frequencies, where the Bragg spots of a lattice
    only a few periods across the crop lie; cut down, they leave the lattice periodic.
    """
    crop = crop.astype(np.float64)
    smooth = ndi.gaussian_filter(crop, _OUTLIER_SMOOTHING_PX)
    median = np.median(smooth)
    ceiling = median + _OUTLIER_MADS * 1.4826 * np.median(np.abs(smooth - median))
    return crop - np.maximum(smooth - ceiling, 0.0)


def _radial_median(power: np.ndarray, radius_bin: np.ndarray, n_bins: int) -> np.ndarray:
    """Median power in each integer radius bin, shape (n_bins,)."""
    flat = radius_bin.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n_bins)[:n_bins]
    groups = np.split(power.ravel()[order][: counts.sum()], np.cumsum(counts)[:-1])
    # a loop over radius bins (<= 512), not over pixels or atoms
    return np.array([np.median(g) if g.size else np.inf for g in groups])


def _spectrum_peaks(power: np.ndarray):
    """Local maxima of a centred power spectrum and their significance over the radial median.

    Returns k_xy (S, 2) in cycles per crop (sub-pixel), power (S,), significance (S,), and the radial median
    power profile (n // 2 + 2,) by integer radius; ``n`` is the side of ``power``. Maxima are searched at
    periods from n/4 (at least four cells in the crop) down to 2 px (Nyquist).
    """
    n = power.shape[0]
    centre = n // 2
    ky, kx = np.mgrid[-centre : n - centre, -centre : n - centre]
    radius = np.hypot(kx, ky)
    n_bins = centre + 1
    radius_bin = np.minimum(np.rint(radius).astype(np.int64), n_bins)
    background = _radial_median(power, radius_bin, n_bins + 1)
    significance = power / np.maximum(background[radius_bin], np.finfo(np.float64).tiny)
    in_range = (radius >= 4) & (radius <= centre - 1)
    is_peak = (power == ndi.maximum_filter(power, size=3, mode="wrap")) & in_range
    rows, cols = np.nonzero(is_peak)
    # sub-pixel spot centres: Gaussian (log-parabola) interpolation along each axis
    logp = np.log(np.maximum(power, np.finfo(np.float64).tiny))

    def offset(lm, l0, lp):
        den = lm - 2 * l0 + lp
        return np.where(den < 0, 0.5 * (lm - lp) / np.where(den < 0, den, -1.0), 0.0).clip(-0.5, 0.5)

    dr = offset(logp[rows - 1, cols], logp[rows, cols], logp[(rows + 1) % n, cols])
    dc = offset(logp[rows, cols - 1], logp[rows, cols], logp[rows, (cols + 1) % n])
    k_xy = np.stack([kx[rows, cols] + dc, ky[rows, cols] + dr], axis=1)
    return k_xy, power[rows, cols], significance[rows, cols], background


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


def _closing_reflections(k_xy: np.ndarray, significance: np.ndarray) -> np.ndarray:
    """Which maxima of a spectrum belong to a closing triple of reflections: (S,) bool.

    The reciprocal lattice is closed under addition: with two non-collinear reflections ``k_a``, ``k_b`` (more
    than 10 degrees apart modulo 180), ``k_a + k_b`` is one as well. A triple counts where all three maxima stand
    at least :data:`_CLOSURE_SIGNIFICANCE` times their radial median and the sum lies within 1 cycle or 5 % of
    ``|k|`` of the third; the three {100} reflections of a hexagonal lattice close, as do a square lattice's
    two {10} and one {11}. Single noise maxima reach that height; three that close do not.
    """
    idx = np.flatnonzero(significance >= _CLOSURE_SIGNIFICANCE)
    member = np.zeros(len(k_xy), bool)
    if idx.size < 3:
        return member
    k = k_xy[idx]
    k_abs = np.hypot(k[:, 0], k[:, 1])
    a, b = np.triu_indices(len(k), 1)
    sine = np.abs(k[a, 0] * k[b, 1] - k[a, 1] * k[b, 0]) / (k_abs[a] * k_abs[b])
    apart = sine > np.sin(np.radians(10.0))
    a, b = a[apart], b[apart]
    dist, c = cKDTree(k).query(k[a] + k[b])
    closes = dist <= np.maximum(1.0, 0.05 * k_abs[c])
    member[idx[np.concatenate([a[closes], b[closes], c[closes]])]] = True
    return member


def _is_turn(turns, degrees):
    """Which of the angles ``turns`` (degrees, modulo 180) are ``degrees`` within the lower-order tolerance."""
    off = np.abs(turns - degrees)
    return np.minimum(off, 180.0 - off) <= _LOWER_ANGLE_TOLERANCE


def _first_order(k_xy, power, significance, spot, lower):
    """Which spots form the period's reflection ring: (S,) bool.

    The ring is that of the smallest ``|k|`` among the strong spots (``spot`` and power >= 10 % of the
    strongest; those within 5 % of it), or, where it is there, of a weaker lower-order reflection: at least two
    Friedel pairs of maxima within 5 % of ``|k| / q`` of a strong spot up to 10 % beyond the smallest (q and
    the order's angle in :data:`_LOWER_ORDERS`), each either at significance >= ``lower`` or "loud" (at
    significance >= :data:`_LOUD_LOWER_SIGNIFICANCE`, power >= 10 % of the strongest spot's, within 5 degrees of
    the strong spot's direction turned by the order's angle, on a strong ring of the matching symmetry), and
    those within 5 % of their mean ``|k|``. A honeycomb's {100} reflections are weaker than its {110} at low dose
    (on a finely sampled low-dose scan its {100} stand only 15x above the radial median) and on a grain boundary,
    where each grain's share of a reflection is split off (and the two grains' strong spots may lie 5 % apart);
    noise and moire satellites at the predicted spot carry far less power.
    """
    k_abs = np.hypot(k_xy[:, 0], k_xy[:, 1])
    angle = np.degrees(np.arctan2(k_xy[:, 1], k_xy[:, 0]))
    powerful = power >= _REFLECTION_FRACTION * power[spot].max()
    strong = spot & powerful
    k_first = k_abs[strong].min()
    base = strong & (k_abs <= 1.1 * k_first)
    candidate = significance >= lower
    loud = (significance >= min(lower, _LOUD_LOWER_SIGNIFICANCE)) & powerful
    # the symmetry of the strong ring, from its loud maxima
    ring = (base | loud) & (np.abs(k_abs - k_first) <= 0.05 * k_first)
    ring_turns = (angle[ring][:, None] - angle[ring][None, :]) % 180.0
    for q, turn in _LOWER_ORDERS:
        radius_ok = np.abs(k_abs[:, None] * q / k_abs[None, base] - 1) <= 0.05
        turns = (angle[:, None] - angle[None, base]) % 180.0
        angle_ok = _is_turn(turns, turn) | _is_turn(turns, 180.0 - turn)  # turned either way
        # sqrt 3 at 30 degrees needs a six-fold ring, sqrt 2 at 45 degrees a four-fold one
        symmetric = not turn or bool(_is_turn(ring_turns, 2 * turn).any())
        near = (candidate & radius_ok.any(axis=1)) | (loud & symmetric & (radius_ok & angle_ok).any(axis=1))
        if near.sum() >= 4:
            k_lower = np.average(k_abs[near], weights=power[near])
            return (candidate | (loud & symmetric)) & (np.abs(k_abs - k_lower) <= 0.05 * k_lower)
    return strong & (np.abs(k_abs - k_first) <= 0.05 * k_first)


class LatticePeriod(NamedTuple):
    """A micrograph's lattice period and what it was measured from."""

    px: float
    """Period in px."""
    periodic: bool
    """False where no Bragg spot was found and ``px`` is the spacing of an amorphous structure's diffuse ring."""


def estimate_lattice_period(image) -> float:
    """The lattice period in px of :func:`lattice_period` (Bragg reflections, or an amorphous structure's
    diffuse ring)."""
    return lattice_period(image).px


def lattice_period(image) -> LatticePeriod:
    """Dominant lattice period of an atomic-resolution image, from its Bragg reflections.

    The power spectrum of the Hann-windowed central crop (at most 1024 px square, best-fit plane removed)
    is compared with its radial median; local maxima at least 50x that background are Bragg spots. Where
    there are none (a low dose), the Welch spectrum is searched instead: the mean periodogram of the nine
    half-side sub-crops overlapping by half, whose noise is a third as large, with spots at least 12x its
    radial median (pure noise reaches 4.8x, a 2-D glass 6.1x). The period is the real-space spacing
    ``d = n / |k|`` of the lowest-order *strong* reflection (power at least 10 % of the strongest spot), or of
    a weaker reflection of lower order where two pairs of them stand out at the radius it predicts
    (:func:`_first_order`), with ``|k|`` interpolated to sub-pixel precision and averaged over the
    symmetry-equivalent spots. Where neither spectrum has a spot, the periodogram of the image with its bright
    outliers clipped (heavy single atoms, whose blobs drown a lattice only a few periods across the crop) is
    searched for reflections that close, ``k_a + k_b = k_c``, each at least 24x its radial median
    (:func:`_closing_reflections`; the best closing triple of pure noise and 2-D glass reaches 17x). Without
    Bragg spots in any of them, an amorphous structure shows a diffuse ring in the radial median power; if
    that ring stands at least 10x above the white-noise floor, its spacing is returned (with a warning).

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
    LatticePeriod
        Lattice period in px, and whether it is a Bragg lattice's (``periodic``) or a diffuse ring's.

    Raises
    ------
    ImageError
        If the image is not 2-D or holds NaN/Inf pixels.
    NoLatticeError
        If the image is too small or constant, shows neither a Bragg spot well above the noise nor a
        diffuse ring, or its lattice is finer than 3 px.
    """
    img = checked_image(image)
    crop = _central_crop(img)
    n = crop.shape[0]
    k_xy, power, significance, profile = _spectrum_peaks(_periodogram(crop))
    best = float(significance.max()) if significance.size else 0.0
    spot, lower, side, source = significance >= _PEAK_SIGNIFICANCE, _LOWER_SIGNIFICANCE[0], n, "periodogram"
    if not spot.any():
        welch = _welch_spectrum(crop)
        peaks = _spectrum_peaks(welch)
        if (peaks[2] >= _WELCH_SIGNIFICANCE).any():
            k_xy, power, significance, _ = peaks
            spot, lower, side, source = significance >= _WELCH_SIGNIFICANCE, _LOWER_SIGNIFICANCE[1], len(welch), "Welch"
    if not spot.any():
        peaks = _spectrum_peaks(_periodogram(_bright_outliers_clipped(crop)))
        closing = _closing_reflections(peaks[0], peaks[2])
        if closing.any():
            k_xy, power, significance, _ = peaks
            spot, lower, source = closing, _LOWER_SIGNIFICANCE[0], "periodogram with bright outliers clipped"
            side = n
    if not spot.any():
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
        return LatticePeriod(period, periodic=False)
    k_abs = np.hypot(k_xy[:, 0], k_xy[:, 1])
    ring = _first_order(k_xy, power, significance, spot, lower)
    k_mean = float(np.average(k_abs[ring], weights=power[ring]))
    period = side / k_mean
    _check_period(period)
    log.info(
        "lattice period %.3f px from %d Bragg spot(s) of the %s (significance %.0fx background)",
        period,
        int(ring.sum()),
        source,
        float(significance[ring].max()),
    )
    return LatticePeriod(period, periodic=True)
