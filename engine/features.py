"""Per-atom features: Zernike moments of each atom's neighbourhood disc, and its square patch on demand.

The features stage of a run (:func:`motifgram.engine.stages.describe_atoms`) computes them, and replaces the
invariants with another descriptor's columns where the spec asks (:mod:`motifgram.engine.chemistry`,
:mod:`motifgram.engine.context`, :func:`motifgram.engine.patches.intensity_quantiles`); the tokens are learned
from them (:mod:`motifgram.engine.tokens`).
"""

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from motifgram.engine.patches import extract_patches
from motifgram.engine.zernike import image_moments, rotation_invariants

__all__ = ["Features", "compute_features"]


@dataclass(frozen=True, eq=False)
class Features:
    """Per-atom features of one micrograph.

    Attributes
    ----------
    moments : (N, M) ndarray of complex64 or None
        Zernike moments ``A_nm`` of the disc of diameter ``disc_diameter_px`` about each atom, sampled on a polar
        grid (:func:`motifgram.engine.zernike.image_moments`); orientation in their phases. None where a
        descriptor of its own replaces the invariants (:meth:`moments_of` computes a sample's).
    invariants : (N, M) ndarray of float32
        ``|A_nm|``, invariant to rotation (or the descriptor's features).
    image : (H, W) ndarray of float32
        The (normalised) image the features were computed from.
    xy : (N, 2) ndarray of float32
        Atom positions (x = column, y = row) in px.
    patch_size : int
        Square patch side in px (odd).
    disc_diameter_px : float
        Diameter of the Zernike disc in px (not necessarily an integer).
    n_max : int
        Highest Zernike radial order.
    patches : (N, P, P) ndarray of float32
        Square patches centred on the atoms (:func:`motifgram.engine.patches.extract_patches`), extracted
        on first access (for class averages) and then kept.
    """

    moments: np.ndarray | None
    invariants: np.ndarray
    image: np.ndarray = field(repr=False)
    xy: np.ndarray
    patch_size: int
    disc_diameter_px: float
    n_max: int = 10

    @cached_property
    def patches(self):
        return extract_patches(self.image, self.xy, patch_size=self.patch_size)

    def moments_of(self, rows):
        """The Zernike moments (R, M) of the atoms ``rows``: rows of :attr:`moments`, or where those were not
        computed, these atoms' alone (the same values)."""
        if self.moments is not None:
            return self.moments[rows]
        return image_moments(self.image, self.xy[rows], patch_size=self.disc_diameter_px, n_max=self.n_max)


def compute_features(image, xy, *, patch_size, disc_diameter_px=None, n_max=10, moments=True):
    """Zernike moments and rotation invariants of every atom's neighbourhood.

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Atom positions (x = column, y = row) in px.
    patch_size : int
        Odd square patch side in px (see :func:`motifgram.engine.patches.patch_size_for`).
    disc_diameter_px : float, optional
        Zernike disc diameter in px (see :func:`motifgram.engine.patches.disc_diameter_for`); default
        ``patch_size``.
    n_max : int
        Highest Zernike radial order.
    moments : bool
        False: none computed (moments and invariants None; :meth:`Features.moments_of` computes a sample's).

    Returns
    -------
    Features
        Square patches are extracted only when ``Features.patches`` is read.
    """
    size = int(patch_size)
    if size != patch_size or size < 3 or size % 2 == 0:
        raise ValueError(f"patch_size must be an odd integer >= 3 px, got {patch_size!r}")
    img = np.asarray(image, dtype=np.float32)
    pts = np.asarray(xy, dtype=np.float32)
    disc = float(size if disc_diameter_px is None else disc_diameter_px)
    values = image_moments(img, pts, patch_size=disc, n_max=n_max) if moments else None
    invariants = None if values is None else rotation_invariants(values)
    return Features(moments=values, invariants=invariants, image=img, xy=pts, patch_size=size,
                    disc_diameter_px=disc, n_max=n_max)
