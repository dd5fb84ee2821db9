"""Point-set geometry shared by the stages: the typical bond length, and where points lie in the image.

Coordinates are ``xy`` = (x = column, y = row) in px, origin at the centre of the top-left pixel, so the
image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
"""

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["nn_distance", "border_distance", "inside_image"]


def nn_distance(xy: np.ndarray) -> float:
    """Typical nearest-neighbour (bond) distance of a point set, px (inf for < 2 points).

    The median over every neighbour pair closer than 1.2x the median nearest-neighbour distance: the
    whole first shell, so noise in the positions does not bias it low as a per-point minimum does.

    Examples
    --------
    >>> xy = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]])
    >>> nn_distance(xy)
    3.0
    """
    if xy.shape[0] < 2:
        return float("inf")
    dist, _ = cKDTree(xy).query(xy, k=min(9, xy.shape[0]))
    shell = dist[:, 1:]
    return float(np.median(shell[shell < 1.2 * np.median(shell[:, 0])]))


def border_distance(xy: np.ndarray, image_shape) -> np.ndarray:
    """(N,) float: each point's distance (px) to the nearest image edge, negative outside the image.

    ``image_shape`` is (H, W) in px.
    """
    height, width = image_shape
    return np.minimum.reduce([xy[:, 0] + 0.5, width - 0.5 - xy[:, 0], xy[:, 1] + 0.5, height - 0.5 - xy[:, 1]])


def inside_image(xy: np.ndarray, image_shape, margin_px: float = 0.0) -> np.ndarray:
    """(N,) bool: the points at least ``margin_px`` inside the image edge (on the edge counts as inside).

    Examples
    --------
    >>> inside_image(np.array([[0.0, 0.0], [5.0, 5.0]]), (10, 10), margin_px=1.0).tolist()
    [False, True]
    """
    height, width = image_shape
    x, y = xy[:, 0], xy[:, 1]
    return (x >= margin_px - 0.5) & (x <= width - 0.5 - margin_px) & (y >= margin_px - 0.5) & (y <= height - 0.5 - margin_px)
