"""Helpers shared by the benchmark driver (run.py) and its worker processes (tasks.py).

Everything here is plain numpy/scipy, so it imports in both the motifgram venv and the peer venv.
"""

import json
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
DATA_DIR = BENCH_DIR / "data"


def data_file(size: int, suffix: str = "npz") -> Path:
    """Cached simulated graphene micrograph of side ``size`` (seed 0): ``.npz`` (image, truth, meta) or ``.npy``."""
    return DATA_DIR / f"graphene_{size}_s0.{suffix}"


def load_data(size: int) -> dict:
    with np.load(data_file(size)) as f:
        return {k: f[k] for k in f.files}


def timed(fn, *, repeats: int, warmup: int = 1) -> tuple[float, list[float], object]:
    """Median wall time (s) of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls.

    Returns (median, all times, the last result).
    """
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def match_positions(xy, truth_xy, *, max_dist: float, region=None) -> dict:
    """Position error of detected atoms against the truth.

    Every true atom (inside ``region`` = (x0, y0, x1, y1) px if given) is matched to its nearest detection
    within ``max_dist`` px. Returns RMSE (px) over matched atoms, recall (matched / true) and precision
    (detections with a true atom within ``max_dist`` / detections), all within the region.
    """
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    truth = np.asarray(truth_xy, np.float64)
    if region is not None:
        x0, y0, x1, y1 = region
        truth = truth[(truth[:, 0] >= x0) & (truth[:, 0] < x1) & (truth[:, 1] >= y0) & (truth[:, 1] < y1)]
        xy = xy[(xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)]
    if len(xy) == 0 or len(truth) == 0:
        return {"rmse_px": None, "recall": 0.0, "precision": 0.0, "n_true": int(len(truth)), "n_found": int(len(xy))}
    d, _ = cKDTree(xy).query(truth, distance_upper_bound=max_dist)
    hit = np.isfinite(d)
    d_back, _ = cKDTree(truth).query(xy, distance_upper_bound=max_dist)
    return {
        "rmse_px": float(np.sqrt(np.mean(d[hit] ** 2))) if hit.any() else None,
        "recall": float(hit.mean()),
        "precision": float(np.isfinite(d_back).mean()),
        "n_true": int(len(truth)),
        "n_found": int(len(xy)),
    }


def nn_distance(xy) -> float:
    """Median nearest-neighbour distance of points (px)."""
    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(d[:, 1]))


def start_peaks(image, nn_px: float) -> np.ndarray:
    """Common integer starting positions for the refinement comparison (motifgram vs Atomap), xy (N, 2).

    Gaussian smoothing at 0.15 nn, 3x3 maxima, threshold at the mean of the smoothed image, of two peaks
    closer than 0.5 nn the lower goes, peaks within 2 px of the border dropped. scipy only, so both venvs
    compute identical positions.
    """
    smooth = ndi.gaussian_filter(np.asarray(image, np.float32), 0.15 * nn_px)
    is_max = (smooth == ndi.maximum_filter(smooth, size=3)) & (smooth > smooth.mean())
    rc = np.argwhere(is_max)
    h, w = smooth.shape
    rc = rc[(rc[:, 0] >= 2) & (rc[:, 0] < h - 2) & (rc[:, 1] >= 2) & (rc[:, 1] < w - 2)]
    height = smooth[rc[:, 0], rc[:, 1]]
    order = np.argsort(-height, kind="stable")
    rc = rc[order]
    keep = np.ones(len(rc), bool)
    tree = cKDTree(rc)
    for i, j in sorted(tree.query_pairs(0.5 * nn_px)):
        if keep[i]:  # pairs (i < j): i is the higher peak
            keep[j] = False
    return rc[keep][:, ::-1].astype(np.float64)


def integer_patches(image, xy, patch_size: int) -> np.ndarray:
    """Square patches (N', P, P) at the rounded positions, as motif-learn's ``KeyPoints.extract_patches``.

    Atoms within ``P // 2 + 1`` px of the border are dropped (motif-learn's ``clear_border``). One vectorised
    gather, so that both kernels of the Zernike comparison get identical patches.
    """
    xy = np.asarray(xy, np.float64)
    h, w = image.shape
    half = patch_size // 2
    keep = (xy[:, 0] > half + 1) & (xy[:, 0] < w - half - 1) & (xy[:, 1] > half + 1) & (xy[:, 1] < h - half - 1)
    c = np.rint(xy[keep]).astype(np.int64)
    off = np.arange(-half, half + 1)
    rows = c[:, 1, None, None] + off[None, :, None]
    cols = c[:, 0, None, None] + off[None, None, :]
    return np.ascontiguousarray(image[rows, cols], dtype=np.float32)


def crop_box(size: int, nn_px: float, n_target: int) -> tuple[int, int, int, int]:
    """Central square (x0, y0, x1, y1) px holding about ``n_target`` graphene atoms (density 4 / (3 sqrt 3 nn^2))."""
    density = 4.0 / (3.0 * np.sqrt(3.0) * nn_px**2)
    side = int(np.ceil(np.sqrt(n_target / density)))
    x0 = (size - side) // 2
    return x0, x0, x0 + side, x0 + side


def gmm_mean_log_likelihood(x, weights, means, covariances) -> float:
    """Mean log-likelihood per sample of a full-covariance Gaussian mixture, float64 (common ruler)."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    lp = np.empty((n, len(weights)))
    for k, (w, mu, cov) in enumerate(zip(weights, means, covariances)):
        chol = np.linalg.cholesky(np.asarray(cov, np.float64))
        z = np.linalg.solve(chol, (x - mu).T)
        lp[:, k] = np.log(w) - 0.5 * (d * np.log(2 * np.pi) + (z * z).sum(0)) - np.log(np.diag(chol)).sum()
    m = lp.max(axis=1)
    return float(np.mean(m + np.log(np.exp(lp - m[:, None]).sum(axis=1))))


def write_json(path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=1, default=_jsonable))


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))
