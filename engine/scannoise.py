"""Fast-scan (scan-line) noise: noise independent between scan lines but correlated along them.

:func:`remove_scan_noise` finds it in the image's DCT power spectrum and removes it before detection
(:func:`~motifgram.engine.detect.detect_atoms`, the pipeline's detect stage), because the threshold's white-noise
estimate cannot see it.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage as ndi

from motifgram.engine.period import checked_image, estimate_lattice_period

__all__ = ["remove_scan_noise", "scan_noise_removed"]

log = logging.getLogger(__name__)

_SCAN_HIGH_F = 0.35  # cycles/px: above this the columns carry no signal, the power is noise
_SCAN_PROFILE_BINS = 7  # the noise profiles are averaged over this many frequency bins
_SCAN_Z = 7.0  # a row (column) noise excess counts at >= this many standard errors of its estimate
_SCAN_BOX = 5  # the Wiener gain uses the power averaged over this many bins square
_CHI2_MEDIAN = 0.45494  # median of chi-square(1): a median of such powers is this fraction of their mean


def _scan_noise_excess(power: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Excess noise power of the rows (along x) and of the columns (along y) over white noise.

    ``power`` (H, W) is the squared orthonormal DCT-II of the image. Above ``_SCAN_HIGH_F`` cycles/px in
    one direction there is no column signal, so the median power there, as a function of the frequency in
    the other direction, is the noise spectrum along that direction; noise that is independent between rows
    but correlated along them (a drifting detector offset) raises it at low ``kx``. The same profile taken
    the other way round (the transpose) is the reference, so anything isotropic (white or blurred noise,
    the signal's own tail) cancels. A difference counts where it exceeds ``_SCAN_Z`` standard errors of the
    two medians (a median of n chi-square(1) values scatters by 2.33 / sqrt(n) of itself).

    Returns e_row (W,) and e_col (H,), the excess per bin (0 where not significant), and the white level.
    """
    h, w = power.shape
    f_row, f_col = np.arange(h) / (2 * h), np.arange(w) / (2 * w)  # cycles/px of the DCT bins
    high_r, high_c = f_row >= _SCAN_HIGH_F, f_col >= _SCAN_HIGH_F
    white = float(np.median(power[np.ix_(high_r, high_c)]))
    if not white > 0:
        return np.zeros(w), np.zeros(h), white
    k = _SCAN_PROFILE_BINS
    along_x = ndi.uniform_filter1d(np.median(power[high_r], axis=0), k, mode="nearest")  # (W,) by kx
    along_y = ndi.uniform_filter1d(np.median(power[:, high_c], axis=1), k, mode="nearest")  # (H,) by ky
    se = 2.33 * np.sqrt(1.0 / (high_r.sum() * k) + 1.0 / (high_c.sum() * k)) * white
    d_row = along_x - np.interp(f_col, f_row, along_y)
    d_col = along_y - np.interp(f_row, f_col, along_x)
    e_row = np.where(d_row > _SCAN_Z * se, d_row, 0.0)
    e_col = np.where(d_col > _SCAN_Z * se, d_col, 0.0)
    return e_row, e_col, white


def _offset_spectrum(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Power of the row offsets on the kx = 0 line of an image's DCT, and of everything else there, (H,) each.

    ``coef`` (H, W) is the orthonormal DCT-II of the image. Its lines kx = 0..k are taken back to y, tapered
    along y by a Hann window and transformed again, so that the Bragg rows of a lattice aligned with the scan
    (on kx = 0 too) leak into few bins; ``power`` is the square of that. An additive offset per scan row is a
    function of y only: all of it lies on kx = 0 (the row means), W times stronger there than per pixel. The
    noise and the lattice have about the same power on kx = 0 as on the lines next to it (kx = 1..k,
    k = ``_SCAN_PROFILE_BINS``) but at a few ky where a Bragg spot sits. So offsets are present where the
    median over ky of the kx = 0 power, each bin relative to the median of the k x k bins beside it, exceeds
    its value without offsets by ``_SCAN_Z`` standard errors (2.33 / sqrt(n) of itself for n bins, and as
    much for the k n bins beside); None when not. Their spectrum ``E(ky)`` is the median excess of kx = 0
    over an octave of ky around each bin (a 1/f spectrum changes by 2x over it; a Bragg spot spans a few of
    its bins); the rest ``R(ky)`` is the median of the k x k bins beside. Both are mean powers (a median of
    chi-square(1) powers is ``_CHI2_MEDIAN`` of their mean); ``E(0) = 0`` (the image mean).
    """
    h, k = coef.shape[0], _SCAN_PROFILE_BINS
    taper = np.hanning(h + 2)[1:-1, None]
    lines = sp_fft.dct(taper * sp_fft.idct(coef[:, : k + 1], axis=0, norm="ortho"), axis=0, norm="ortho")
    power = lines * lines / np.mean(taper * taper)
    rest = ndi.median_filter(power[:, 1 : k + 1], k, mode="nearest")[:, k // 2] / _CHI2_MEDIAN
    ratio = float(np.median(power[1:, 0] / np.maximum(rest[1:], np.finfo(np.float64).tiny)))
    if not ratio - _CHI2_MEDIAN > _SCAN_Z * 2.33 * np.sqrt(1.0 / (h - 1) + 1.0 / (k * (h - 1))) * _CHI2_MEDIAN:
        return None
    ky = np.arange(1, h)
    lo, hi = np.maximum(np.floor(ky / np.sqrt(2)).astype(int), 1), np.ceil(ky * np.sqrt(2)).astype(int) + 1
    excess = np.zeros(h)
    excess[1:] = [np.median(power[a:b, 0]) - np.median(power[a:b, 1 : k + 1]) for a, b in zip(lo, hi)]
    return np.clip(excess, 0.0, None) / _CHI2_MEDIAN, rest


def _row_offsets(line: np.ndarray, power: np.ndarray, spectrum, slowest: int) -> np.ndarray:
    """Wiener estimate ``c E / (E + R)`` of the offsets on the kx = 0 line ``line`` (H,) with power ``power`` (H,),
    from ``spectrum`` = (E, R) of :func:`_offset_spectrum` (None: no offsets). Bins below ``slowest`` are left, and
    so is a coefficient above the largest of H Gaussian draws of variance ``E + R`` (``2 ln H`` times it). A
    coefficient ``_SCAN_Z`` standard deviations above ``E + R`` is a Bragg row of a lattice whose rows are aligned
    with the scan: its weaker harmonics and their leakage cannot be told from the offsets, and none are removed."""
    if spectrum is None:
        return np.zeros_like(line)
    excess, rest = spectrum
    excess = np.where(np.arange(len(line)) >= slowest, excess, 0.0)
    expected = excess + rest
    if np.any(power[slowest:] > _SCAN_Z**2 * expected[slowest:]):
        log.info("a lattice row lies along the scan (a Bragg row on the row means): row offsets left in place")
        return np.zeros_like(line)
    gain = np.where(power > 2.0 * np.log(len(line)) * expected, 0.0,
                    excess / np.maximum(expected, np.finfo(np.float64).tiny))
    return line * gain


def scan_noise_removed(img: np.ndarray, *, row_offsets: bool = False) -> tuple[np.ndarray, float]:
    """:func:`remove_scan_noise` of an image already checked, and the RMS it removed.

    Parameters
    ----------
    img : (H, W) float32 ndarray
        Grey-scale micrograph as :func:`~motifgram.engine.period.checked_image` returns it.
    row_offsets : bool
        Remove 1/f row (column) offsets first, as :func:`remove_scan_noise` describes.

    Returns
    -------
    cleaned : (H, W) float32 ndarray
        The image without its fast-scan noise excess (``img`` itself when there is none).
    rms : float
        RMS of what was removed, in the image's units; 0 when nothing was.
    """
    mean = float(img.mean())
    coef = sp_fft.dctn(img.astype(np.float64) - mean, norm="ortho")
    power = coef * coef
    # row (column) offsets first, from the kx = 0 and ky = 0 lines of the same spectrum, so that rows and columns
    # are treated alike; then the fast-scan excess of what is left
    rows, cols = (_offset_spectrum(coef), _offset_spectrum(coef.T)) if row_offsets else (None, None)
    offsets = np.zeros_like(coef)
    if rows is not None or cols is not None:
        # offsets slower than half the lattice frequency (two periods) move neighbouring columns alike, and there
        # large-scale content (a contamination edge along the scan, the background) fills kx = 0 as well
        period = estimate_lattice_period(img)
        h, w = img.shape
        offsets[:, 0] = _row_offsets(coef[:, 0], power[:, 0], rows, int(np.ceil(h / period)))
        offsets[0, :] = _row_offsets(coef[0, :], power[0, :], cols, int(np.ceil(w / period)))
        coef = coef - offsets
        power = coef * coef
    e_row, e_col, white = _scan_noise_excess(power)
    if not (e_row.any() or e_col.any() or offsets.any()):
        return img, 0.0
    excess = e_col[:, None] + e_row[None, :]
    smooth_power = ndi.uniform_filter(power, _SCAN_BOX, mode="reflect")
    gain = np.clip(1.0 - excess / np.maximum(smooth_power, np.finfo(np.float64).tiny), 0.0, 1.0)
    removed = sp_fft.idctn(coef * (1.0 - gain) + offsets, norm="ortho")
    rms = float(np.sqrt(np.mean(removed * removed)))
    log.info("scan-line noise: row offsets %.4g rms, column offsets %.4g rms, fast-scan excess up to %.1fx the white "
             "noise power; removed %.4g rms in all", float(np.sqrt(np.sum(offsets[:, 0] ** 2) / img.size)),
             float(np.sqrt(np.sum(offsets[0, :] ** 2) / img.size)),
             float(max(e_row.max(), e_col.max()) / white) if white > 0 else 0.0, rms)
    return (img - removed).astype(np.float32), rms


def remove_scan_noise(image, *, row_offsets: bool = False) -> np.ndarray:
    """Remove fast-scan noise: noise independent between scan lines but correlated along each line.

    A STEM image is scanned row by row; a detector offset that drifts within a row and jumps between rows
    adds streaks that the white-noise estimate of :func:`~motifgram.engine.detect.detect_atoms` (the finest
    diagonal wavelet band) does not see and that Gaussian denoising lets through as spurious maxima between
    the columns. Such noise is white along the slow-scan axis, so at high slow-scan frequency (>= 0.35
    cycles/px, where atom columns carry no signal) its spectrum along the fast-scan axis shows up as an
    excess over the same profile taken the other way round. That excess ``N(k)`` is removed by a Wiener-type gain
    ``max(0, 1 - N(k) / P(k))`` on the DCT coefficients, with ``P`` the local (5 x 5 bins) mean power:
    Bragg reflections and other strong signal, far above ``N``, pass unchanged; the noise between them
    goes. Rows and columns are treated alike (either may be the fast-scan axis). An image whose excess is
    nowhere significant (7 standard errors of its estimate; no clean simulation of 243, 64-256 px, reaches
    it) is returned unchanged.

    Measured on simulated 256^2 micrographs (``simulate(..., scan_noise=0.3)``, three seeds): MoS2 column
    precision 0.77 -> 0.93 at recall 0.92 -> 0.93, graphene 0.92 -> 0.98, perovskite 0.82 -> 0.93 (recall
    0.81 -> 0.83); clean simulations are returned unchanged.

    Per-row detector offsets that wander slowly from row to row (1/f along the slow scan) have most of their
    power below 0.35 cycles/px and lie on the ``kx = 0`` line (the row means) only: with ``row_offsets`` they
    are removed first, on that line, by a Wiener estimate from their own spectrum (``_offset_spectrum``),
    above half the lattice frequency; a lattice whose rows run along the scan (a Bragg row on ``kx = 0``)
    keeps them. Measured with ``detect_atoms`` on ``benchmarks/outside.py``'s harsh images (384^2; 1/f row
    gain 3 %, offsets 0.05 of a unit peak, x shifts 0.3 px; drift, thickness, 25 % carbon cover; seeds 11-14
    at 20 and 60 counts), y RMSE: MoS2 Mo 0.15-0.21 -> 0.11-0.17 px, S2 0.36-0.53 -> 0.26-0.41 px, MADF S2
    0.21-0.29 -> 0.17-0.25 px, graphene 0.20-0.26 -> 0.19-0.25 px; images without row noise unchanged.

    Parameters
    ----------
    image : (H, W) array_like
        Grey-scale micrograph, both sides >= 32 px.
    row_offsets : bool
        Remove 1/f row (column) offsets first. Off by default: on the real Si [110] and MoS2-Se images it changes
        the dumbbell length and the Se token (benchmarks/README.md, issue 18's harsh section).

    Returns
    -------
    (H, W) float32 ndarray
        The image without its fast-scan noise excess (the input as float32 when there is none).

    Raises
    ------
    ImageError
        If the image is not 2-D or holds NaN/Inf pixels.
    NoLatticeError
        If the image is too small or constant.

    Examples
    --------
    >>> from motifgram.engine.simulate import simulate
    >>> clean = simulate("graphene", size=128, seed=1).image
    >>> bool(np.array_equal(remove_scan_noise(clean), clean))
    True
    >>> noisy = simulate("graphene", size=128, seed=1, scan_noise=0.3).image
    >>> bool(np.std(remove_scan_noise(noisy) - clean) < 0.8 * np.std(noisy - clean))
    True
    """
    return scan_noise_removed(checked_image(image), row_offsets=row_offsets)[0]
