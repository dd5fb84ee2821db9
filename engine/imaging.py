"""Image formation of simulated micrographs: probe, Z-contrast columns, background, scan and detector noise.

:func:`motifgram.engine.simulate.simulate` builds a structure and hands its columns (positions, amplitudes)
to :func:`render`, which returns the image and :class:`ImagingTruth`: what a scorer or a Cramér–Rao bound
needs to know about how the image was formed (the positions as imaged after drift and scan jitter, the
amplitude of each column, the noiseless image, the contaminated pixels). One seed stream draws what the
original renderer drew, in the same order, and a second stream draws every realistic effect, so the
default options give the same image, byte for byte, as before the realistic effects existed.

The model, in the order it is applied (units: the unit column amplitude, i.e. the noiseless peak of a
host column above its background; ``dose`` counts per unit amplitude):

- **Columns**: the probe intensity is a Gaussian core (``sigma_px``) plus a weak broad tail, a second
  Gaussian (``probe_tail_sigma_px``) holding ``probe_tail`` times the core's integral (residual
  aberrations and the Airy rings of the aperture; see :data:`PROBE_CALIBRATION`); the column amplitude is
  its Z-contrast (set by the structure) times a per-column thickness/tilt factor (log-normal, relative
  std ``thickness_variation``).
- **Scan**: slow drift along the slow-scan (row) axis moves every column by a smooth function of its row
  (``drift``: the largest displacement, px); every scan row is shifted along x (the existing sinusoidal
  ``scan_distortion`` plus white ``row_jitter``, std in px). The truth position of a column under row
  jitter is the jittered shift averaged over its rows, weighted by its core profile.
- **Contamination**: patches covering a fraction ``contamination`` of the image (a smooth random field
  thresholded), holding two layers of a random, blue-noise carbon-like network at ``contamination_contrast``
  of a unit column: low contrast and no lattice.
- **Background**: the original smooth background (mean ``background``), a linear ramp over the image
  (``background_gradient``, its rise across the field) and broad Gaussian blobs (``background_blobs``,
  their peak amplitude).
- **Noise**: Poisson counts at ``dose``; Gaussian read noise; fast-scan (row-correlated) noise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from motifgram.engine.simspec import REALISTIC_OPTIONS

__all__ = [
    "REALISTIC_OPTIONS",
    "PROBE_CALIBRATION",
    "ImagingTruth",
    "render",
    "position_bound",
]

log = logging.getLogger(__name__)

#: Probe tail calibration: ``tail_sigma / core_sigma`` and the ``tail / core`` integral ratio of a
#: two-Gaussian fit to the intensity of a 60 kV, 31.5 mrad aberration-corrected probe with a 5 mm residual
#: C5, computed by abTEM (benchmarks/imaging_calibration.py; the ideal probe gives 6.0 and 0.12). The
#: benchmarks render with ``probe_tail = tail_fraction``.
PROBE_CALIBRATION = {"tail_sigma_ratio": 5.0, "tail_fraction": 0.2}

_CONTAMINATION_SCALE_NN = 3.0  # smoothing of the field whose high values are the contaminated patches, nn
_CONTAMINATION_LAYERS = 2  # independent random carbon networks stacked in a patch
_GRAPHENE_AREA_NN2 = 3 * math.sqrt(3) / 4  # projected area per carbon atom of graphene, in nn^2
_SPLAT_CHUNK = 1 << 21  # window pixels splatted at once: ~17 MB per float64 temporary


@dataclass(frozen=True, eq=False)
class ImagingTruth:
    """How a simulated image was formed, per column and per pixel.

    Attributes
    ----------
    xy : (N, 2) float64 ndarray, px
        Positions of the truth's columns as imaged (after drift and row jitter), x = column, y = row; the
        same order as ``Truth.xy``.
    amplitude : (N,) float64 ndarray
        Core peak amplitude of each column (Z-contrast times its thickness factor), unit amplitudes.
    sigma_px : float
        Core sigma of the probe (px).
    tail_fraction : float
        Integral of the probe tail relative to the core's (0: no tail).
    tail_sigma_px : float
        Sigma of the tail (px).
    expected : (H, W) float32 ndarray
        The noiseless image (the mean of every pixel), unit amplitudes.
    contamination : (H, W) bool ndarray
        Pixels under amorphous contamination.
    atom_contaminated : (N,) bool ndarray
        Columns whose imaged position lies under contamination.
    dose : float or None
        Counts per unit amplitude (None: noiseless).
    read_noise : float
        Std of the Gaussian read noise, unit amplitudes.
    """

    xy: np.ndarray
    amplitude: np.ndarray
    sigma_px: float
    tail_fraction: float
    tail_sigma_px: float
    expected: np.ndarray
    contamination: np.ndarray
    atom_contaminated: np.ndarray
    dose: float | None
    read_noise: float


def render(xy, amplitude, opts: Mapping, *, size, nn_px, inside, rng, extra_rng):
    """Render columns into a (size, size) float32 image and describe how.

    Parameters
    ----------
    xy : (M, 2) float64 ndarray, px
        Every column of the structure (including those outside the image that reach into it).
    amplitude : (M,) float64 ndarray
        Z-contrast of each column, unit amplitudes.
    opts : mapping
        The simulator's imaging options (``sigma_px`` resolved), including :data:`REALISTIC_OPTIONS`.
    size : int
        Image side, px.
    nn_px : float
        Nearest-neighbour distance of the structure (sets the contamination's scale and spacing).
    inside : (M,) bool ndarray
        The columns that ``Truth.xy`` lists, in order.
    rng, extra_rng : numpy.random.Generator
        The original renderer's stream and the stream of the realistic effects.

    Returns
    -------
    image : (size, size) float32 ndarray
    truth : ImagingTruth
    """
    sigma = float(opts["sigma_px"])
    xy = np.asarray(xy, dtype=np.float64)
    amp = np.asarray(amplitude, dtype=np.float64)
    if opts["thickness_variation"] > 0:
        s = math.log1p(opts["thickness_variation"] ** 2) ** 0.5
        amp = amp * np.exp(s * extra_rng.standard_normal(len(amp)) - 0.5 * s * s)
    if opts["drift"] > 0:
        xy = xy + _slow_drift(xy[:, 1], size, opts["drift"], extra_rng)
    rows = np.arange(size)
    if opts["scan_distortion"] > 0:
        period = size / 2
        wave = np.sin(2 * math.pi * rows / period + rng.uniform(0, 2 * math.pi))
        shift = opts["scan_distortion"] * 0.5 * (wave + rng.standard_normal(size))
    else:
        shift = np.zeros(size)
    if opts["row_jitter"] > 0:
        shift = shift + opts["row_jitter"] * extra_rng.standard_normal(size)
    signal = _splat(xy, amp, sigma=sigma, size=size, shift=shift)
    tail_fraction, tail_sigma = float(opts["probe_tail"]), _tail_sigma(opts, sigma)
    if tail_fraction > 0:
        signal = signal + _tail(xy, amp * tail_fraction * (sigma / tail_sigma) ** 2, sigma=tail_sigma, size=size)
    mask = np.zeros((size, size), dtype=bool)
    if opts["contamination"] > 0:
        mask = _contamination_mask(size, opts["contamination"], nn_px, extra_rng)
        c_xy, c_amp = _amorphous_network(mask, nn_px, opts["contamination_contrast"], extra_rng)
        signal = signal + _splat(c_xy, c_amp, sigma=sigma, size=size, shift=shift)
        if tail_fraction > 0:
            signal = signal + _tail(c_xy, c_amp * tail_fraction * (sigma / tail_sigma) ** 2, sigma=tail_sigma,
                                    size=size)
    coarse = rng.standard_normal((5, 5))
    smooth = ndimage.zoom(coarse, size / 5, order=3, mode="reflect", grid_mode=True)[:size, :size]
    clean = signal + opts["background"] * np.clip(1 + 0.25 * smooth, 0, None)
    if opts["background_gradient"] > 0 or opts["background_blobs"] > 0:
        clean = clean + _broad_background(size, opts["background_gradient"], opts["background_blobs"], extra_rng)
    dose = opts["dose"]
    image = rng.poisson(clean * dose) / dose if dose is not None else clean
    if opts["read_noise"] > 0:
        image = image + opts["read_noise"] * rng.standard_normal((size, size))
    if opts["scan_noise"] > 0:
        image = image + opts["scan_noise"] * _row_noise(size, opts["scan_noise_length"], rng)
    seen = _imaged_positions(xy[inside], shift, sigma)
    rc = np.clip(np.rint(seen[:, ::-1]).astype(np.int64), 0, size - 1)
    truth = ImagingTruth(
        xy=seen,
        amplitude=amp[inside],
        sigma_px=sigma,
        tail_fraction=tail_fraction,
        tail_sigma_px=tail_sigma,
        expected=np.asarray(clean, dtype=np.float32),
        contamination=mask,
        atom_contaminated=mask[rc[:, 0], rc[:, 1]],
        dose=None if dose is None else float(dose),
        read_noise=float(opts["read_noise"]),
    )
    return image.astype(np.float32), truth


def _tail_sigma(opts, sigma):
    given = opts["probe_tail_sigma_px"]
    return float(given) if given is not None else PROBE_CALIBRATION["tail_sigma_ratio"] * sigma


def _splat(xy, amplitude, *, sigma, size, shift):
    """Gaussian columns of peak ``amplitude`` and width ``sigma``, each row shifted along x by ``shift[row]``.

    Each column is splatted on its own window (r = ceil(4 sigma) px, widened by the largest shift), vectorised
    over chunks of at most :data:`_SPLAT_CHUNK` window pixels, and the windows are added to the canvas with
    ``np.add.at`` in column order: every pixel sums its columns in the same order whatever the chunking, so
    the image does not depend on it, and the memory is bounded by the canvas. Cost O(N r**2).
    """
    r = int(math.ceil(4 * sigma))
    reach = int(math.ceil(np.abs(shift).max())) if len(shift) else 0
    reach_all = r + reach  # columns this far outside the image still reach into it
    pad = 2 * reach_all + 1
    keep = np.all((xy >= -reach_all) & (xy <= size - 1 + reach_all), axis=1)
    x, y, amp = xy[keep, 0], xy[keep, 1], amplitude[keep]
    offsets = np.arange(-r, r + 1)
    col_offsets = np.arange(-r - reach, r + reach + 1)
    inv = 1.0 / (2 * sigma * sigma)
    shifted = bool(np.any(shift != 0))
    width = size + 2 * pad
    canvas = np.zeros(width * width)
    step = max(1, _SPLAT_CHUNK // (len(offsets) * len(col_offsets)))
    for start in range(0, len(x), step):
        xs, ys, amps = x[start : start + step], y[start : start + step], amp[start : start + step]
        rr = np.rint(ys).astype(np.int64)[:, None] + offsets  # (n, w)
        cc = np.rint(xs).astype(np.int64)[:, None] + col_offsets  # (n, wc)
        gy = np.exp(-((rr - ys[:, None]) ** 2) * inv) * amps[:, None]
        if shifted:
            row_shift = shift[np.clip(rr, 0, size - 1)]  # (n, w)
            dx = cc[:, None, :] - xs[:, None, None] - row_shift[:, :, None]
            values = gy[:, :, None] * np.exp(-(dx**2) * inv)
        else:
            values = gy[:, :, None] * np.exp(-((cc - xs[:, None]) ** 2) * inv)[:, None, :]
        flat = (rr + pad)[:, :, None] * width + (cc + pad)[:, None, :]
        np.add.at(canvas, flat.ravel(), values.ravel())
    return canvas.reshape(width, width)[pad : pad + size, pad : pad + size]


def _tail(xy, peak, *, sigma, size):
    """Broad Gaussians of peak ``peak`` and width ``sigma``: point masses (bilinear) blurred by a Gaussian."""
    pad = int(math.ceil(4 * sigma))
    width = size + 2 * pad
    x, y = xy[:, 0] + pad, xy[:, 1] + pad
    keep = (x >= 0) & (x < width - 1) & (y >= 0) & (y < width - 1)
    x, y, mass = x[keep], y[keep], peak[keep] * 2 * math.pi * sigma * sigma
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    canvas = np.zeros(width * width)
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        canvas += np.bincount((y0 + dy) * width + x0 + dx, weights=mass * w, minlength=width * width)
    blurred = ndimage.gaussian_filter(canvas.reshape(width, width), sigma, mode="constant", truncate=4.0)
    return blurred[pad : pad + size, pad : pad + size]


def _slow_drift(y, size, amplitude, rng):
    """(N, 2) displacement of columns at rows ``y``: a smooth random function of the slow-scan time (row).

    Two random low-frequency sinusoids per axis (0.3-1.5 cycles over the frame), scaled so that the
    largest displacement over the frame is ``amplitude`` px.
    """
    t = np.arange(size) / size
    out = []
    for _ in range(2):
        freq = rng.uniform(0.3, 1.5, 2)
        phase = rng.uniform(0, 2 * math.pi, 2)
        curve = np.sin(2 * math.pi * freq[0] * t + phase[0]) + 0.5 * np.sin(2 * math.pi * freq[1] * t + phase[1])
        curve = curve - curve.mean()
        curve *= amplitude / max(np.abs(curve).max(), 1e-12)
        out.append(np.interp(y, np.arange(size), curve))
    return np.stack(out, axis=1)


def _imaged_positions(xy, shift, sigma):
    """Positions as imaged under a per-row x ``shift``: each column's x moves by the mean shift of its rows,
    weighted by its core profile along y."""
    if not np.any(shift != 0):
        return xy.copy()
    size = len(shift)
    r = int(math.ceil(4 * sigma))
    rr = np.rint(xy[:, 1]).astype(np.int64)[:, None] + np.arange(-r, r + 1)
    w = np.exp(-((rr - xy[:, 1:2]) ** 2) / (2 * sigma * sigma)) * ((rr >= 0) & (rr < size))
    mean_shift = (w * shift[np.clip(rr, 0, size - 1)]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)
    return np.stack([xy[:, 0] + mean_shift, xy[:, 1]], axis=1)


def _contamination_mask(size, coverage, nn_px, rng):
    """(size, size) bool: the pixels of the highest ``coverage`` share of a smooth random field."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), _CONTAMINATION_SCALE_NN * nn_px, mode="wrap")
    return field >= np.quantile(field, 1.0 - coverage)


def _amorphous_network(mask, nn_px, contrast, rng):
    """Columns of a random carbon-like network over ``mask``: positions (K, 2) px and amplitudes (K,).

    Each layer is a Matérn type-II hard-core process (no two atoms closer than 0.8 nn; random marks, the
    lower mark wins) at graphene's areal density, so it is dense and locally bond-like but has no lattice.
    """
    size = mask.shape[0]
    r = 0.8 * nn_px
    area = float(size * size)
    target = 1.0 / (_GRAPHENE_AREA_NN2 * nn_px * nn_px)
    # Matern II keeps (1 - exp(-l0 pi r^2)) / (pi r^2) per area; solve for the candidate intensity l0
    kept = min(target * math.pi * r * r, 0.95)
    l0 = -math.log(1.0 - kept) / (math.pi * r * r)
    points, amps = [], []
    for _ in range(_CONTAMINATION_LAYERS):
        cand = rng.uniform(-0.5, size - 0.5, size=(rng.poisson(l0 * area), 2))
        mark = rng.random(len(cand))
        beaten = np.zeros(len(cand), dtype=bool)
        pairs = cKDTree(cand).query_pairs(r, output_type="ndarray")
        if len(pairs):
            loser = np.where(mark[pairs[:, 0]] > mark[pairs[:, 1]], pairs[:, 0], pairs[:, 1])
            beaten[loser] = True
        cand = cand[~beaten]
        rc = np.clip(np.rint(cand[:, ::-1]).astype(np.int64), 0, size - 1)
        cand = cand[mask[rc[:, 0], rc[:, 1]]]
        points.append(cand)
        amps.append(contrast * rng.uniform(0.6, 1.4, len(cand)))
    return np.concatenate(points), np.concatenate(amps)


def _broad_background(size, gradient, blobs, rng):
    """A linear ramp rising by ``gradient`` across the image in a random direction, plus broad Gaussian
    blobs (about one per 200^2 px, sigma 5-15 % of the side) of peak ``blobs`` x U(0.5, 1)."""
    t = np.arange(size) / max(size - 1, 1)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = math.cos(angle) * t[None, :] + math.sin(angle) * t[:, None]
    out = gradient * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-12)
    n_blobs = 1 + rng.poisson(size * size / 200.0**2)
    centre = rng.uniform(0, size - 1, (n_blobs, 2))
    width = rng.uniform(0.05, 0.15, n_blobs) * size
    height = blobs * rng.uniform(0.5, 1.0, n_blobs)
    for (cx, cy), s, a in zip(centre, width, height):  # a handful of blobs: a loop over blobs, not pixels
        out = out + a * np.exp(-((t[None, :] * (size - 1) - cx) ** 2 + (t[:, None] * (size - 1) - cy) ** 2) / (2 * s * s))
    return out


def _row_noise(size, length, rng):
    """Unit-variance fast-scan noise (size, size): independent rows, each a stationary AR(1) along x.

    Neighbouring pixels of a row correlate by ``exp(-1 / length)``: a slowly drifting detector offset
    (``length`` >> size: one offset per row, the classic streaks).
    """
    from scipy.signal import lfilter  # here: importing scipy.signal costs every process 0.2 s

    rho = math.exp(-1.0 / length)
    e = rng.standard_normal((size, size + 1))
    noise, _ = lfilter([math.sqrt(1.0 - rho * rho)], [1.0, -rho], e[:, 1:], axis=1, zi=rho * e[:, :1])
    return noise


def position_bound(truth: ImagingTruth, *, nn_px, window_nn=0.8, neighbour_nn=1.6):
    """Cramér–Rao bound of every column's position under the image model.

    The pixel values are independent with mean ``expected`` and variance ``expected / dose + read_noise**2``
    (Poisson counts plus Gaussian read noise, in the Gaussian approximation of their sum). Each column is
    fitted on the pixels within ``window_nn`` x nn of it, with its own position and amplitude, the positions
    and amplitudes of every column within ``neighbour_nn`` x nn (their overlap), and a constant local
    background as parameters; the bound is the position block of the inverse Fisher matrix. Fast-scan
    noise, jitter and contamination are not in the model: the bound is that of the white-noise image.

    Parameters
    ----------
    truth : ImagingTruth
    nn_px : float
        Nearest-neighbour distance (px).
    window_nn, neighbour_nn : float
        Fit window radius and neighbour reach, in units of ``nn_px``.

    Returns
    -------
    (N, 2) float64 ndarray, px
        Standard deviations of x and y for every column (0 for a noiseless image).
    """
    xy = truth.xy
    n = len(xy)
    if n == 0 or truth.dose is None and truth.read_noise == 0:
        return np.zeros((n, 2))
    size_r, size_c = truth.expected.shape
    var = np.maximum(truth.expected.astype(np.float64), 0.0) / (truth.dose or math.inf) + truth.read_noise**2
    tree = cKDTree(xy)
    k_max = int(min(n, 16))
    dist, nbr = tree.query(xy, k=k_max, distance_upper_bound=neighbour_nn * nn_px)
    dist, nbr = dist.reshape(n, k_max), nbr.reshape(n, k_max)
    valid = np.isfinite(dist)  # (N, K); column 0 is the atom itself
    nbr = np.where(valid, nbr, 0)
    r_win = window_nn * nn_px
    h = int(math.ceil(r_win))
    off = np.arange(-h, h + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    disk = (oy**2 + ox**2) <= r_win**2
    oy, ox = oy[disk], ox[disk]  # (P,)
    centre = np.rint(xy).astype(np.int64)
    pr = centre[:, 1:2] + oy[None, :]  # (N, P)
    pc = centre[:, 0:1] + ox[None, :]
    inside = (pr >= 0) & (pr < size_r) & (pc >= 0) & (pc < size_c)
    w = np.where(inside, 1.0 / var[np.clip(pr, 0, size_r - 1), np.clip(pc, 0, size_c - 1)], 0.0)  # (N, P)
    s2, t2, f = truth.sigma_px**2, truth.tail_sigma_px**2, truth.tail_fraction
    dx = pc[:, None, :] - xy[nbr][:, :, 0:1]  # (N, K, P)
    dy = pr[:, None, :] - xy[nbr][:, :, 1:2]
    r2 = dx * dx + dy * dy
    core = np.exp(-0.5 * r2 / s2)
    tail = f * (s2 / t2) * np.exp(-0.5 * r2 / t2) if f > 0 else np.zeros_like(core)
    a = (truth.amplitude[nbr] * valid)[:, :, None]
    radial = a * (core / s2 + tail / t2)  # d model / d x0 = radial * dx
    jac = np.concatenate(
        [radial * dx, radial * dy, (core + tail) * valid[:, :, None], np.ones_like(w)[:, None, :]], axis=1
    )  # (N, 3K + 1, P): x_j, y_j, amplitude_j for every neighbour, then the background
    fisher = np.einsum("nap,nbp,np->nab", jac, jac, w)
    pad_param = np.concatenate([~valid, ~valid, ~valid, np.zeros((n, 1), bool)], axis=1)
    fisher[:, np.arange(fisher.shape[1]), np.arange(fisher.shape[1])] += pad_param  # padded neighbours: identity
    cov = np.linalg.inv(fisher)
    return np.sqrt(np.stack([cov[:, 0, 0], cov[:, k_max, k_max]], axis=1))
