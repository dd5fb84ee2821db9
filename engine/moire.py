"""Moiré patterns of twisted bilayers: twist angle and moiré period from the Fourier transform, and
regular sampling grids for images whose columns do not resolve into atoms.

:func:`measure_moire` finds the first-order Bragg spots of every lattice in the image, groups them by
orientation (two hexagonal sets of six spots rotated by the twist ``theta`` for a twisted bilayer) and
reports ``theta``, the lattice constant ``a`` and the moiré period ``lambda = a / (2 sin(theta / 2))``.

Method:

1. :func:`~motifgram.engine.detect.estimate_lattice_period` gives the first-order spacing ``d`` (and
   rejects images without a lattice).
2. The central square crop (at most :data:`MAX_CROP_PX` px), best-fit plane removed, Hann-windowed, is
   Fourier transformed. Bragg spots are the 3x3 local maxima of the power within ``+-15 %`` of
   ``|k| = 1 / d`` that stand at least 50x above the radial median power and at least 10 % of the
   strongest spot there.
3. Each spot is refined to ~0.01 frequency bin by evaluating the windowed DFT itself on a 9 x 9 grid of
   quarter-bin steps around it (a matrix "zoom" DFT, cost O(n^2) per spot) and fitting a parabola to the
   log power around the best grid point. The Hann window's side lobes (-31 dB) keep a neighbouring
   layer's spot from biasing the fit once the spots are >= 3 bins apart (2 deg at |k| = 114 bins).
4. Symmetry: 6 if the strongest spot has partners every 60 deg, else 4 (every 90 deg), else 2. Spot
   orientations modulo ``360 / symmetry`` deg are clustered (tolerance: the angle one frequency bin
   subtends at ``|k|``, at least 0.25 deg); each cluster with at least 2 spots is a lattice. Its
   orientation is the power-weighted circular mean.
5. The twist is the orientation difference of the two strongest lattices, folded into
   ``[0, 180 / symmetry]`` deg (layers are interchangeable, and a hexagonal pattern cannot tell a twist
   ``theta`` from ``60 - theta``). Two lattices whose spots merge (twists below about one frequency bin,
   ~0.5 deg at 1024 px and 9 px spacing) read as one: ``n_lattices = 1``, ``twist_deg = 0`` and no moiré.
6. Moiré period: the formula value ``a / (2 sin(theta / 2))`` and, independently of any assumption that
   the two layers have the same lattice constant, the value measured from the difference wave vectors
   ``k_1 - k_2`` of each layer-1 spot and its nearest layer-2 spot: ``c / |k_1 - k_2|`` with ``c =
   2 / sqrt(3)`` (hexagonal) or 1 (square). In a HAADF image the two layers' intensities add, so the
   moiré itself has no Fourier component of its own; ``k_1 - k_2`` is the moiré's wave vector.

:func:`grid_points` puts sample points on a triangular lattice over the image (spacing: the lattice
period by default) and returns them as an :class:`~motifgram.engine.detect.Atoms`-compatible
:class:`GridSample`, so patches, features, tokens, the graph and the grammar run on it unchanged;
:func:`motifgram.engine.graph.build_graph` turns its points into exactly the triangular lattice graph
(every bond one spacing long, every ring a triangle).

Accuracy and resolution limit on simulated twisted bilayers: ``benchmarks/README.md`` (Moiré measurement).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage as ndi

from motifgram.engine.detect import Atoms, estimate_lattice_period
from motifgram.engine.errors import ImageError, NoLatticeError

__all__ = ["MAX_CROP_PX", "GridSample", "MoireMeasurement", "grid_points", "measure_moire"]

log = logging.getLogger(__name__)

MAX_CROP_PX = 2048
"""Side of the largest central square crop that :func:`measure_moire` transforms."""

_SIGNIFICANCE = 50.0  # Bragg spot power / radial median power (as in detect.estimate_lattice_period)
_STRONG_FRACTION = 0.1  # a first-order spot has >= this fraction of the strongest one's power
_RING_WIDTH = 0.15  # first-order spots lie within this relative distance of |k| = 1 / period
_ZOOM_STEP = 0.25  # frequency-bin step of the zoom DFT grid
_ZOOM_HALF = 4  # the zoom grid spans +- _ZOOM_HALF steps


@dataclasses.dataclass(frozen=True)
class GridSample(Atoms):
    """Sample points on a regular triangular lattice, in place of detected atoms.

    The fields are those of :class:`~motifgram.engine.detect.Atoms`: ``xy`` (N, 2) float32 px (x = column,
    y = row), ``intensity`` (N,) float32 (the image value at each point, bilinear), ``lattice_period_px``
    (the image's first-order lattice period, px, which sizes the patches) and ``nn_distance_px`` (the grid
    spacing, px). Points are in rows of constant y, ``sqrt(3)/2 * spacing`` apart, every other row shifted
    by half a spacing; the grid is centred on the image and its points lie at least half a spacing inside
    the image edges.
    """


@dataclasses.dataclass(frozen=True)
class MoireMeasurement:
    """Lattices and moiré of one image, from its Fourier transform (see the module docstring).

    Attributes
    ----------
    twist_deg : float
        Rotation between the two strongest lattices, degrees, in ``[0, 180 / symmetry]``; 0.0 when there is
        one lattice.
    moire_period_px : float or None
        ``a / (2 sin(theta / 2))``, px; None with one lattice.
    moire_period_measured_px : float or None
        From the difference wave vectors of the two lattices' spots, px; None with one lattice.
    lattice_period_px : float
        First-order spacing ``d`` (``1 / |k|`` over all first-order spots), px; as
        :func:`~motifgram.engine.detect.estimate_lattice_period` but refined.
    lattice_constant_px : float
        ``a = 2 d / sqrt(3)`` (hexagonal) or ``d`` (square and lower symmetry), px.
    n_lattices : int
        Number of lattice orientations found (1 or 2; more are logged and the two strongest kept).
    symmetry : int
        6 (hexagonal), 4 (square) or 2 (the spot pattern's rotational symmetry).
    orientations_deg : tuple of float
        Orientation of each lattice (its first-order spot direction modulo ``360 / symmetry``), degrees,
        strongest lattice first.
    spots : (S, 2) float64 ndarray, cycles/px
        Refined first-order Bragg spots ``(k_x, k_y)``.
    spot_lattice : (S,) int64 ndarray
        Index into ``orientations_deg`` of each spot's lattice (-1: not assigned to the two kept lattices).
    pixel_size_nm : float or None
        As given; sets the ``*_nm`` properties.
    """

    twist_deg: float
    moire_period_px: float | None
    moire_period_measured_px: float | None
    lattice_period_px: float
    lattice_constant_px: float
    n_lattices: int
    symmetry: int
    orientations_deg: tuple
    spots: np.ndarray
    spot_lattice: np.ndarray
    pixel_size_nm: float | None = None

    @property
    def moire_period_nm(self):
        """Formula moiré period in nm, or None without a pixel size or a moiré."""
        return _to_nm(self.moire_period_px, self.pixel_size_nm)

    @property
    def lattice_constant_nm(self):
        """Lattice constant in nm, or None without a pixel size."""
        return _to_nm(self.lattice_constant_px, self.pixel_size_nm)

    def to_summary(self):
        """JSON-ready dict of the scalar results (for ``summary.json``; spots left out)."""
        def r(v):
            return None if v is None else round(float(v), 5)

        return {
            "twist_deg": r(self.twist_deg),
            "moire_period_px": r(self.moire_period_px),
            "moire_period_measured_px": r(self.moire_period_measured_px),
            "moire_period_measured_nm": r(_to_nm(self.moire_period_measured_px, self.pixel_size_nm)),
            "moire_period_nm": r(self.moire_period_nm),
            "lattice_period_px": r(self.lattice_period_px),
            "lattice_constant_px": r(self.lattice_constant_px),
            "lattice_constant_nm": r(self.lattice_constant_nm),
            "n_lattices": int(self.n_lattices),
            "symmetry": int(self.symmetry),
            "orientations_deg": [r(o) for o in self.orientations_deg],
        }


def _to_nm(value_px, pixel_size_nm):
    return None if value_px is None or pixel_size_nm is None else float(value_px) * float(pixel_size_nm)


# --------------------------------------------------------------------------------------------------
# Sampling grid


def grid_points(image, *, spacing_px=None):
    """Sample points on a triangular lattice over an image.

    Parameters
    ----------
    image : (H, W) array_like
        Grey-scale micrograph (both sides >= 32 px, finite).
    spacing_px : float or None
        Distance between neighbouring points, px (> 1). None: the image's first-order lattice period
        from :func:`~motifgram.engine.detect.estimate_lattice_period` (one point per lattice period, so
        patches of ``patch_size_for(period)`` overlap by about half).

    Returns
    -------
    GridSample
        Points in rows (y ascending, x ascending within a row). ``build_graph(sample.xy,
        image_shape=image.shape)`` gives the triangular lattice: bonds between points one spacing apart,
        rings the triangles not on the outer face.

    Raises
    ------
    ImageError
        Not a 2-D finite real image, or a bad ``spacing_px``.
    NoLatticeError
        No lattice period can be estimated (needed for ``lattice_period_px``), or the image is smaller
        than one spacing.

    Examples
    --------
    >>> from motifgram.engine.simulate import simulate
    >>> sample = grid_points(simulate("mos2", size=128, seed=0).image, spacing_px=10.0)
    >>> len(sample), sample.nn_distance_px
    (168, 10.0)
    """
    period = estimate_lattice_period(image)
    img = np.asarray(image, dtype=np.float32)
    if spacing_px is None:
        spacing = float(period)
        log.info("grid spacing %.3f px (the lattice period)", spacing)
    else:
        if isinstance(spacing_px, bool) or not isinstance(spacing_px, (int, float, np.number)):
            raise ImageError(f"spacing_px must be a number of px > 1 or None, got {spacing_px!r}")
        spacing = float(spacing_px)
        if not (math.isfinite(spacing) and spacing > 1):
            raise ImageError(f"spacing_px must be a finite number of px > 1 or None, got {spacing_px!r}")
    h, w = img.shape
    row_step = spacing * math.sqrt(3) / 2
    n_rows = int(math.floor((h - 1 - spacing) / row_step)) + 1
    n_cols = int(math.floor((w - 1 - 1.5 * spacing) / spacing)) + 1
    if n_rows < 2 or n_cols < 2:
        raise NoLatticeError(f"image {h}x{w} px is too small for a grid of spacing {spacing:.2f} px")
    y0 = (h - 1 - (n_rows - 1) * row_step) / 2
    x0 = (w - 1 - (n_cols - 0.5) * spacing) / 2
    j, i = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    x = x0 + (i + 0.5 * (j % 2)) * spacing
    y = y0 + j * row_step
    xy = np.stack([x.ravel(), y.ravel()], axis=1)
    intensity = ndi.map_coordinates(img, [xy[:, 1], xy[:, 0]], order=1, mode="nearest")
    return GridSample(
        xy=xy.astype(np.float32),
        intensity=intensity.astype(np.float32),
        lattice_period_px=float(period),
        nn_distance_px=spacing,
    )


# --------------------------------------------------------------------------------------------------
# Moiré measurement


def measure_moire(image, *, pixel_size_nm=None):
    """Twist angle, lattice constant and moiré period of a (twisted bilayer) lattice image.

    Parameters
    ----------
    image : (H, W) array_like
        Grey-scale micrograph (both sides >= 32 px, finite). The central square crop of at most
        :data:`MAX_CROP_PX` px is analysed; it should span several moiré periods.
    pixel_size_nm : float or None
        Pixel size; only converts lengths to nm in the result.

    Returns
    -------
    MoireMeasurement

    Raises
    ------
    ImageError
        Not a 2-D finite real image, or a bad ``pixel_size_nm``.
    NoLatticeError
        No lattice (see :func:`~motifgram.engine.detect.estimate_lattice_period`).

    Examples
    --------
    >>> from motifgram.engine.simulate import simulate
    >>> sim = simulate("tbl_mos2", size=512, seed=0, twist=6.0)
    >>> m = measure_moire(sim.image, pixel_size_nm=sim.pixel_size_nm)
    >>> m.n_lattices, round(m.twist_deg, 1), round(m.moire_period_nm, 1)
    (2, 6.0, 3.0)
    """
    if pixel_size_nm is not None and not (
        isinstance(pixel_size_nm, (int, float, np.number)) and math.isfinite(pixel_size_nm) and pixel_size_nm > 0
    ):
        raise ImageError(f"pixel_size_nm must be a number > 0 or None, got {pixel_size_nm!r}")
    period = estimate_lattice_period(image)
    img = np.asarray(image, dtype=np.float64)
    windowed = _windowed_crop(img)
    n = windowed.shape[0]
    spots, power = _first_order_spots(windowed, period)
    k = np.stack([_refine_spot(windowed, s) for s in spots]) / n  # cycles/px
    k_abs = np.hypot(k[:, 0], k[:, 1])
    angle = np.degrees(np.arctan2(k[:, 1], k[:, 0]))
    symmetry = _symmetry(angle, power)
    fold = 360.0 / symmetry
    tol = max(0.25, math.degrees(1.0 / (n * float(np.median(k_abs)))))
    labels = _cluster_angles(angle % fold, power, fold, tol)
    counts = np.bincount(labels)
    strength = np.bincount(labels, weights=power)
    lattices = [c for c in np.argsort(-strength, kind="stable") if counts[c] >= 2]
    if len(lattices) > 2:
        log.warning("%d lattice orientations in the Fourier transform; keeping the two strongest", len(lattices))
    lattices = lattices[:2]
    spot_lattice = np.full(len(k), -1, dtype=np.int64)
    for rank, c in enumerate(lattices):
        spot_lattice[labels == c] = rank
    orientations = tuple(_circular_mean(angle[labels == c], power[labels == c], fold) for c in lattices)
    used = spot_lattice >= 0
    d = float(1.0 / np.average(k_abs[used], weights=power[used]))
    a = d * 2 / math.sqrt(3) if symmetry == 6 else d
    twist, moire, moire_measured = 0.0, None, None
    if len(lattices) == 2:
        twist = abs(_wrap(orientations[1] - orientations[0], fold))
        moire = a / (2 * math.sin(math.radians(twist) / 2))
        k1, k2 = k[spot_lattice == 0], k[spot_lattice == 1]
        diff = np.linalg.norm(k1[:, None, :] - k2[None, :, :], axis=-1).min(axis=1)
        moire_measured = float((2 / math.sqrt(3) if symmetry == 6 else 1.0) / np.mean(diff))
    result = MoireMeasurement(
        twist_deg=float(twist),
        moire_period_px=moire,
        moire_period_measured_px=moire_measured,
        lattice_period_px=d,
        lattice_constant_px=a,
        n_lattices=len(lattices),
        symmetry=symmetry,
        orientations_deg=tuple(float(o) for o in orientations),
        spots=k,
        spot_lattice=spot_lattice,
        pixel_size_nm=None if pixel_size_nm is None else float(pixel_size_nm),
    )
    log.info(
        "moire: %d lattice(s), symmetry %d, twist %.3f deg, a %.3f px, period %s px",
        result.n_lattices, symmetry, twist, a, "none" if moire is None else f"{moire:.2f}",
    )
    return result


def _windowed_crop(img):
    """Central square crop (even side <= MAX_CROP_PX), best-fit plane removed, times a 2-D Hann window."""
    n = min(img.shape[0], img.shape[1], MAX_CROP_PX) // 2 * 2
    r0, c0 = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
    crop = img[r0 : r0 + n, c0 : c0 + n]
    t = np.arange(n) - (n - 1) / 2
    crop = crop - crop.mean()
    crop = crop - np.outer(crop.mean(axis=1) @ t / (t @ t) * t, np.ones(n))
    crop = crop - np.outer(np.ones(n), crop.mean(axis=0) @ t / (t @ t) * t)
    hann = np.hanning(n)
    return crop * hann[:, None] * hann[None, :]


def _first_order_spots(windowed, period):
    """Integer (kx, ky) in cycles per crop of the first-order Bragg spots, and their power."""
    n = windowed.shape[0]
    spec = sp_fft.fft2(windowed)
    power = np.fft.fftshift(spec.real**2 + spec.imag**2)
    centre = n // 2
    ky, kx = np.mgrid[-centre : n - centre, -centre : n - centre]
    radius = np.hypot(kx, ky)
    radius_bin = np.rint(radius).astype(np.int64)
    order = np.argsort(radius_bin.ravel(), kind="stable")
    counts = np.bincount(radius_bin.ravel())
    groups = np.split(power.ravel()[order], np.cumsum(counts)[:-1])
    median = np.array([np.median(g) if g.size else np.inf for g in groups])  # a loop over radii, not pixels
    k0 = n / period
    ring = (np.abs(radius - k0) <= _RING_WIDTH * k0) & (radius >= 2)
    peak = ring & (power == ndi.maximum_filter(power, size=3, mode="wrap"))
    peak &= power >= _SIGNIFICANCE * np.maximum(median[radius_bin], np.finfo(np.float64).tiny)
    rows, cols = np.nonzero(peak)
    if rows.size == 0:
        raise NoLatticeError(f"no Bragg spot near the lattice period {period:.2f} px stands out of the noise")
    p = power[rows, cols]
    strong = p >= _STRONG_FRACTION * p.max()
    spots = np.stack([kx[rows, cols], ky[rows, cols]], axis=1)[strong].astype(np.float64)
    return spots, p[strong]


def _refine_spot(windowed, spot):
    """Sub-bin (kx, ky) of one spot: zoom DFT on a grid around it, then a log-parabola at the best point."""
    n = windowed.shape[0]
    steps = np.arange(-_ZOOM_HALF, _ZOOM_HALF + 1) * _ZOOM_STEP
    pos = np.arange(n)
    ex = np.exp(-2j * np.pi * np.outer(spot[0] + steps, pos) / n)  # (m, n): over x
    ey = np.exp(-2j * np.pi * np.outer(spot[1] + steps, pos) / n)  # (m, n): over y
    zoom = ey @ windowed @ ex.T  # (m_y, m_x)
    logp = np.log(np.maximum(np.abs(zoom) ** 2, np.finfo(np.float64).tiny))
    iy, ix = np.unravel_index(np.argmax(logp), logp.shape)
    iy = int(np.clip(iy, 1, len(steps) - 2))
    ix = int(np.clip(ix, 1, len(steps) - 2))

    def vertex(lm, l0, lp):
        den = lm - 2 * l0 + lp
        return float(np.clip(0.5 * (lm - lp) / den, -1.0, 1.0)) if den < 0 else 0.0

    dx = vertex(logp[iy, ix - 1], logp[iy, ix], logp[iy, ix + 1])
    dy = vertex(logp[iy - 1, ix], logp[iy, ix], logp[iy + 1, ix])
    return np.array([spot[0] + steps[ix] + dx * _ZOOM_STEP, spot[1] + steps[iy] + dy * _ZOOM_STEP])


def _wrap(delta, fold):
    """``delta`` (deg) wrapped into ``[-fold/2, fold/2)``."""
    return (delta + fold / 2) % fold - fold / 2


def _symmetry(angle, power):
    """6 if the strongest spot has >= 5 of 6 partners every 60 deg, else 4 (>= 3 of 4 every 90), else 2."""
    ref = angle[np.argmax(power)]
    for order in (6, 4):
        step = 360.0 / order
        offsets = np.abs(_wrap(angle[None, :] - ref - step * np.arange(order)[:, None], 360.0))
        if (offsets.min(axis=1) < 0.2 * step).sum() >= order - 1:
            return order
    return 2


def _cluster_angles(folded, power, fold, tol):
    """Greedy clustering of folded angles (deg), strongest spot first; returns a label per spot."""
    labels = np.full(len(folded), -1, dtype=np.int64)
    centres = []
    for s in np.argsort(-power, kind="stable"):
        gaps = [abs(_wrap(folded[s] - c, fold)) for c in centres]
        if gaps and min(gaps) <= tol:
            labels[s] = int(np.argmin(gaps))
        else:
            labels[s] = len(centres)
            centres.append(folded[s])
    return labels


def _circular_mean(angle, weight, fold):
    """Weighted circular mean of angles (deg) with period ``fold``, in ``[0, fold)``."""
    phase = np.exp(2j * np.pi * angle / fold)
    return float((np.degrees(np.angle(np.sum(weight * phase))) * fold / 360.0) % fold)
