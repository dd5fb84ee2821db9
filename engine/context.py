"""Chemical context of atom columns: their own intensity and that of their neighbours.

The rotation invariants of a disk about one lattice period across see the tails of the nearest neighbours at
its edge. In a binary honeycomb (2H-MoS2 with Se substitutions) that makes the metal sites' invariants depend
on *which* chalcogen neighbours they have (one bright Se neighbour breaks the disk's three-fold symmetry),
while a metal column and a Se-substituted chalcogen column, nearly equally bright (Z-contrast), look alike at
the centre. The ``zernike_context`` descriptor (:func:`context_features`) separates the two kinds of
information:

* shape: the Zernike invariants of each row divided by their Euclidean norm
  (:func:`motifgram.engine.zernike.rotation_invariants` with ``normalize=True``): the geometry and relative
  intensity pattern of the neighbourhood, not its overall brightness;
* chemistry (:data:`CONTEXT_COLUMNS` columns): the column's own sub-pixel peak height and the peak height of
  its *dimmest* nearest neighbour (:func:`chemical_context`), both on the normalised image (background 0,
  median column 1). A metal column has dim chalcogen neighbours whatever its substitutions (all three would
  have to be Se to change the minimum); a chalcogen column, substituted or not, has bright metal neighbours.

Both are rotation invariant and deterministic. The token model normalises the two blocks separately
(:func:`motifgram.engine.tokens.learn_tokens`): the shape block is standardised and reduced to its leading
whitened principal axes, the chemistry block is whitened on its own, so the two chemical axes are always kept
and weigh as much as any principal axis of the shape.
"""

import numpy as np
from scipy.spatial import cKDTree

from motifgram.engine.patches import peak_values
from motifgram.engine.zernike import rotation_invariants

__all__ = ["chemical_context", "context_features", "CONTEXT_COLUMNS", "NEIGHBOUR_RADIUS"]

#: Number of chemistry columns appended by :func:`context_features` (own peak, dimmest neighbour's peak).
CONTEXT_COLUMNS = 2

#: Nearest neighbours are the atoms within this many nearest-neighbour distances (the first shell of a
#: honeycomb, square or perovskite lattice, short of the second shell at >= sqrt(2) nn).
NEIGHBOUR_RADIUS = 1.2


def chemical_context(image, xy, *, nn_distance_px, radius=NEIGHBOUR_RADIUS):
    """Each column's peak height and the peak height of its dimmest nearest neighbour.

    Parameters
    ----------
    image : (H, W) array_like of float
        Normalised image (background ~0; :func:`motifgram.engine.patches.normalise_image`).
    xy : (N, 2) array_like of float
        Atom positions (x = column, y = row) in px.
    nn_distance_px : float
        Nearest-neighbour (bond) distance in px.
    radius : float
        Neighbours are the other atoms within ``radius * nn_distance_px``.

    Returns
    -------
    (N, 2) ndarray of float64
        Column 0: sub-pixel peak height above 0 (:func:`motifgram.engine.patches.peak_values`); column 1: the
        least peak height among the neighbours, 0 (the background) for an atom without neighbours.

    Examples
    --------
    >>> image = np.zeros((32, 32), np.float32)
    >>> yy, xx = np.mgrid[0:32, 0:32]
    >>> for (x, y), a in zip([(10, 16), (18, 16), (26, 16)], [1.0, 0.4, 0.8]):
    ...     image += a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
    >>> np.round(chemical_context(image, [(10, 16), (18, 16), (26, 16)], nn_distance_px=8.0), 2)
    array([[1.  , 0.4 ],
           [0.4 , 0.8 ],
           [0.8 , 0.4 ]])
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not (np.isfinite(nn_distance_px) and nn_distance_px > 0):
        raise ValueError(f"nn_distance_px must be a positive number, got {nn_distance_px!r}")
    peaks = peak_values(image, pts)
    out = np.zeros((len(pts), 2))
    out[:, 0] = peaks
    if len(pts) < 2:
        return out
    pairs = cKDTree(pts).query_pairs(radius * float(nn_distance_px), output_type="ndarray")
    if len(pairs) == 0:
        return out
    dimmest = np.full(len(pts), np.inf)
    np.minimum.at(dimmest, pairs[:, 0], peaks[pairs[:, 1]])
    np.minimum.at(dimmest, pairs[:, 1], peaks[pairs[:, 0]])
    out[:, 1] = np.where(np.isfinite(dimmest), dimmest, 0.0)
    return out


def context_features(moments, image, xy, *, nn_distance_px, radius=NEIGHBOUR_RADIUS):
    """The ``zernike_context`` descriptor: normalised Zernike invariants and the chemical context.

    Parameters
    ----------
    moments : (N, M) array_like of complex
        Zernike moments of the atoms' disks.
    image, xy, nn_distance_px, radius
        As for :func:`chemical_context`.

    Returns
    -------
    (N, M + CONTEXT_COLUMNS) ndarray of float32
        ``|A_nm| / ||A||`` per row, then the column's peak height and its dimmest neighbour's.
    """
    shape = rotation_invariants(moments, normalize=True)
    chem = chemical_context(image, xy, nn_distance_px=nn_distance_px, radius=radius)
    if len(chem) != len(shape):
        raise ValueError(f"moments and xy differ in length: {len(shape)} and {len(chem)}")
    return np.concatenate([shape, chem.astype(np.float32)], axis=1)
