"""Merging the components of a Gaussian mixture that describe one class (Bhattacharyya overlap).

BIC measures density fit, not cluster count: a unimodal but non-Gaussian class (skewed, heavy-tailed or
curved, as the neighbourhoods of one site class are) takes several components. :func:`merge_sequence` orders
the merges of a mixture's components by their overlap (single linkage of Bhattacharyya coefficients;
Hennig 2010, Baudry et al. 2010); :func:`merge_components` merges while the overlap exceeds a threshold,
and :mod:`motifgram.engine.vocabulary` walks the same sequence to find the partition of the shortest
description. A decision inside the calibration's undecided band is a *close call*, reported.

References
----------
C. Hennig, "Methods for merging Gaussian mixture components", Adv. Data Anal. Classif. 4, 3 (2010).
J.-P. Baudry, A. E. Raftery, G. Celeux, K. Lo, R. Gottardo, "Combining mixture components for clustering",
J. Comput. Graph. Stat. 19, 332 (2010). K. Fukunaga, "Introduction to Statistical Pattern Recognition",
2nd ed., Academic Press (1990), sec. 3.4 (Bhattacharyya distance).
"""

import logging

import numpy as np

__all__ = [
    "DEFAULT_MERGE_THRESHOLD",
    "UNDECIDED_OVERLAP",
    "bhattacharyya_coefficient",
    "merge_sequence",
    "merge_decision",
    "is_close_call",
    "merging_summary",
    "merge_components",
    "groups_at_level",
]

log = logging.getLogger(__name__)

DEFAULT_MERGE_THRESHOLD = 0.25
"""Merge two component groups while their Bhattacharyya coefficient exceeds this (see :func:`merge_components`)."""

UNDECIDED_OVERLAP = (0.22, 0.30)
"""Bhattacharyya coefficients between the two calibration populations of the default threshold (components
splitting one site class overlapped at >= 0.30, components of different site classes at <= 0.22; see
``merge_threshold`` in :func:`motifgram.engine.tokens.learn_tokens`): a merge decided inside this band is not backed by the
calibration."""

def bhattacharyya_coefficient(mean_a, cov_a, mean_b, cov_b):
    """Bhattacharyya coefficient ``BC = exp(-D_B)`` of two Gaussians (1 = identical, -> 0 = disjoint).

    ``D_B = (mu_a - mu_b)^T S^-1 (mu_a - mu_b) / 8 + ln(det S / sqrt(det S_a det S_b)) / 2`` with
    ``S = (S_a + S_b) / 2`` (Fukunaga 1990). For equal covariances ``D_B = Delta^2 / 8`` with ``Delta`` the
    Mahalanobis distance of the means: ``BC = 0.5`` at ``Delta = 2.35``, ``BC = 0.25`` at ``Delta = 3.33``.

    Parameters
    ----------
    mean_a, mean_b : (D,) array_like of float
    cov_a, cov_b : (D, D) array_like of float
        Symmetric positive definite covariances.

    Returns
    -------
    float

    Examples
    --------
    >>> round(bhattacharyya_coefficient([0, 0], np.eye(2), [2, 0], np.eye(2)), 4)  # exp(-4 / 8)
    0.6065
    """
    ca = np.asarray(cov_a, dtype=np.float64)
    cb = np.asarray(cov_b, dtype=np.float64)
    diff = np.asarray(mean_a, dtype=np.float64) - np.asarray(mean_b, dtype=np.float64)
    chol = np.linalg.cholesky(0.5 * (ca + cb))
    y = np.linalg.solve(chol, diff)
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    distance = y @ y / 8.0 + 0.5 * (logdet - 0.5 * (np.linalg.slogdet(ca)[1] + np.linalg.slogdet(cb)[1]))
    return float(np.exp(-distance))

def merge_sequence(mixture):
    """The single-linkage merge sequence of a mixture's components under Bhattacharyya overlap.

    Starting from one group per component, the two groups with the largest overlap are merged, until one
    group is left. The overlap of two groups is the largest Bhattacharyya coefficient
    (:func:`bhattacharyya_coefficient`) between a component of one and a component of the other.

    Parameters
    ----------
    mixture : Mixture

    Returns
    -------
    coefficients : (K - 1,) ndarray of float64
        Overlap at each merge, non-increasing (single linkage).
    pairs : (K - 1, 2) ndarray of int64
        The two components whose overlap joined the two groups at each merge.
    """
    means = np.asarray(mixture.means, dtype=np.float64)
    covs = np.asarray(mixture.covariances, dtype=np.float64)
    k = len(means)
    overlap = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            overlap[i, j] = overlap[j, i] = bhattacharyya_coefficient(means[i], covs[i], means[j], covs[j])
    group = np.arange(k)
    coefficients, pairs = [], []
    for _ in range(k - 1):
        between = np.where(group[:, None] != group[None, :], overlap, -1.0)
        i, j = np.unravel_index(np.argmax(between), between.shape)
        coefficients.append(between[i, j])
        pairs.append((i, j))
        group[group == group[j]] = group[i]
    return np.array(coefficients, dtype=np.float64), np.array(pairs, dtype=np.int64).reshape(-1, 2)

def merge_decision(coefficients, threshold=DEFAULT_MERGE_THRESHOLD):
    """The two overlaps that fix the number of groups at ``threshold``: the last merge made and the first
    refused (``None`` where there is none), from :func:`merge_sequence`'s ``coefficients``."""
    made = coefficients[coefficients > threshold]
    refused = coefficients[coefficients <= threshold]
    return (float(made[-1]) if len(made) else None), (float(refused[0]) if len(refused) else None)

def is_close_call(decision, threshold=DEFAULT_MERGE_THRESHOLD):
    """Whether a :func:`merge_decision` at the default threshold lies inside :data:`UNDECIDED_OVERLAP`."""
    low, high = UNDECIDED_OVERLAP
    return threshold == DEFAULT_MERGE_THRESHOLD and any(c is not None and low < c < high for c in decision)

def merging_summary(mixture, *, n_tokens=None) -> dict:
    """How a mixture's components merged into tokens, for ``summary.json``.

    ``n_tokens`` given: the description length chose that many tokens along :func:`merge_sequence`
    (:func:`motifgram.engine.vocabulary.choose_vocabulary`), so ``last_merged`` and ``first_kept_apart`` are the
    overlaps of the last merge it made and the first it refused, and ``tokens_at_threshold`` the count the
    default threshold would have given. Otherwise the default threshold decided (:func:`merge_decision`), with
    its close call. ``decided_by`` names which.
    """
    coefficients = merge_sequence(mixture)[0]
    at_threshold = len(mixture.weights) - int(np.sum(coefficients > DEFAULT_MERGE_THRESHOLD))
    if n_tokens is None:
        decision = merge_decision(coefficients)
        decided_by, close_call = "overlap threshold", is_close_call(decision)
    else:
        made = len(mixture.weights) - int(n_tokens)
        decision = (float(coefficients[made - 1]) if made > 0 else None,
                    float(coefficients[made]) if made < len(coefficients) else None)
        decided_by, close_call = "description length", False
    last, first = (None if c is None else round(c, 4) for c in decision)
    return {
        "mixture_components": len(mixture.weights),
        "threshold": DEFAULT_MERGE_THRESHOLD,
        "last_merged": last,
        "first_kept_apart": first,
        "undecided": list(UNDECIDED_OVERLAP),
        "close_call": close_call,
        "decided_by": decided_by,
        "tokens_at_threshold": at_threshold,
    }

def merge_components(mixture, *, threshold=DEFAULT_MERGE_THRESHOLD):
    """Group the components of a Gaussian mixture into clusters by agglomerative merging.

    The groups of :func:`merge_sequence` are merged while their overlap exceeds ``threshold`` (single
    linkage), so the result is the connected components of the graph "coefficient > threshold". Single
    linkage follows a curved (banana-shaped) class covered by a chain of components; representing a group by
    its moment-matched Gaussian (Hennig's "bhat" method) stopped half-way along such chains in tests, and
    gave the same tokens on the simulated micrographs.

    Parameters
    ----------
    mixture : Mixture
    threshold : float
        Merge while the largest coefficient between two groups is above this (in ``[0, 1]``; 1 never
        merges, 0 merges everything).

    Returns
    -------
    (K,) ndarray of int64
        Group of each component, numbered ``0 .. G-1`` in order of each group's first component.
        Every merge is logged at INFO level. A warning says when a decision that fixed the number of
        groups (:func:`merge_decision`) came at a coefficient inside :data:`UNDECIDED_OVERLAP` (for the
        default threshold): the calibration does not back that count.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"merge threshold must be in [0, 1], got {threshold!r}")
    coefficients, pairs = merge_sequence(mixture)
    group = np.arange(len(mixture.means))
    for coefficient, (i, j) in zip(coefficients, pairs, strict=True):
        if coefficient <= threshold:
            break
        log.info(
            "merging mixture components %s and %s (Bhattacharyya coefficient of components %d and %d: %.3f > %.3f)",
            np.flatnonzero(group == group[i]).tolist(), np.flatnonzero(group == group[j]).tolist(), i, j,
            coefficient, threshold,
        )
        group[group == group[j]] = group[i]
    for coefficient, verdict in zip(merge_decision(coefficients, threshold), ("merged", "kept apart"), strict=True):
        if is_close_call((coefficient,), threshold):
            log.warning(
                "the token count rests on a close call: mixture components with Bhattacharyya coefficient %.3f "
                "were %s (threshold %.2f; in its calibration one site class split in two overlapped at >= %.2f, "
                "different classes at <= %.2f). Check the token gallery (tokens.png); tokens.k fixes the count.",
                coefficient, verdict, threshold, UNDECIDED_OVERLAP[1], UNDECIDED_OVERLAP[0],
            )
    return np.unique(group, return_inverse=True)[1].astype(np.int64)



def groups_at_level(n_components, pairs, n_merges):
    """The groups after the first ``n_merges`` merges of :func:`merge_sequence`'s ``pairs``.

    Returns
    -------
    (K,) ndarray of int64
        Group of each component, numbered ``0 .. G-1`` in order of each group's first component.
    """
    group = np.arange(n_components)
    for i, j in pairs[:n_merges]:
        group[group == group[j]] = group[i]
    return np.unique(group, return_inverse=True)[1].astype(np.int64)
