"""Atom tokens: the learned vocabulary of local neighbourhoods.

Each atom's neighbourhood (a disk about one lattice period across by default, sampled on a polar grid) is
described by rotation-invariant Zernike magnitudes, and a Gaussian mixture is fitted to those features (the
number of components K chosen by BIC). BIC measures density fit, not cluster count: a unimodal but
non-Gaussian class (skewed, heavy-tailed or curved, as the neighbourhoods of one site class are) takes
several components. The components are therefore merged agglomeratively into *tokens* while two groups
overlap strongly (:func:`merge_components`, Bhattacharyya coefficient above ``merge_threshold``; Hennig 2010,
Baudry et al. 2010). A token's posterior is the sum of its components' posteriors; an atom's label is the
token of highest posterior and its confidence that posterior. Tokens are ordered by the number of atoms
assigned and named ``A, B, C, ...``. Rotation-aligned class averages show what each token looks like.

Feature normalisation (stored in the model and re-applied by :func:`assign_tokens`): each invariant is
standardised (mean 0, standard deviation 1 over the training atoms; constant columns keep scale 1), then
projected onto its leading principal axes (at most ``n_pca``, 10 by default, and only axes carrying at
least ``1e-6`` of the total variance) and whitened (unit variance per axis). With the ``zernike_context``
descriptor (:mod:`motifgram.engine.context`) the chemical-context columns are normalised the same way but
on their own (all their axes kept), and their axes follow the invariants' (a block-diagonal projection).

References
----------
C. Hennig, "Methods for merging Gaussian mixture components", Adv. Data Anal. Classif. 4, 3 (2010).
J.-P. Baudry, A. E. Raftery, G. Celeux, K. Lo, R. Gottardo, "Combining mixture components for clustering",
J. Comput. Graph. Stat. 19, 332 (2010). K. Fukunaga, "Introduction to Statistical Pattern Recognition",
2nd ed., Academic Press (1990), sec. 3.4 (Bhattacharyya distance).
"""

import logging
import math
import string
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from motifgram.engine.context import CONTEXT_COLUMNS
from motifgram.engine.display import format_counts, plural, summary_html, summary_text
from motifgram.engine.errors import MotifgramError
from motifgram.engine.mixture import Mixture, fit_mixture, posterior, select_n_components
from motifgram.engine.patches import extract_patches, rotate_patches
from motifgram.engine.zernike import (
    image_moments,
    moment_orientation,
    n_max_for,
    rotation_invariants,
    zernike_orders,
)

__all__ = [
    "Features",
    "TokenModel",
    "compute_features",
    "learn_tokens",
    "assign_tokens",
    "class_averages",
    "token_names",
    "bhattacharyya_coefficient",
    "merge_components",
    "merge_sequence",
    "merge_decision",
    "is_close_call",
    "merging_summary",
    "DEFAULT_MERGE_THRESHOLD",
]

log = logging.getLogger(__name__)

# 2: component_token added (format 1 loads with one token per component); 3: descriptor added;
# 4: descriptor "zernike_context" (a block-diagonal projection); formats 1-3 load as before
_FORMAT = 4

#: Descriptors (``TokenModel.descriptor``) and the number of chemical-context columns after the Zernike or
#: intensity columns of their features.
DESCRIPTORS = {"zernike": 0, "intensity": 0, "zernike_context": CONTEXT_COLUMNS}

#: Rows on which BIC scores each number of mixture components (see :func:`learn_tokens`).
BIC_SAMPLE = 10_000

DEFAULT_MERGE_THRESHOLD = 0.25
"""Merge two component groups while their Bhattacharyya coefficient exceeds this (see :func:`merge_components`)."""

UNDECIDED_OVERLAP = (0.22, 0.30)
"""Bhattacharyya coefficients between the two calibration populations of the default threshold (components
splitting one site class overlapped at >= 0.30, components of different site classes at <= 0.22; see
``merge_threshold`` in :func:`learn_tokens`): a merge decided inside this band is not backed by the
calibration."""


@dataclass(frozen=True, eq=False)
class Features:
    """Per-atom features of one micrograph.

    Attributes
    ----------
    moments : (N, M) ndarray of complex64
        Zernike moments ``A_nm`` of the disk of diameter ``patch_size`` about each atom, sampled on a polar
        grid (:func:`motifgram.engine.zernike.image_moments`); orientation in their phases.
    invariants : (N, M) ndarray of float32
        ``|A_nm|``, invariant to rotation.
    image : (H, W) ndarray of float32
        The (normalised) image the features were computed from.
    xy : (N, 2) ndarray of float32
        Atom positions (x = column, y = row) in px.
    patch_size : int
        Neighbourhood diameter / square patch side in px.
    patches : (N, P, P) ndarray of float32
        Square patches centred on the atoms (:func:`motifgram.engine.patches.extract_patches`), extracted
        on first access (for class averages) and then kept.
    """

    moments: np.ndarray
    invariants: np.ndarray
    image: np.ndarray = field(repr=False)
    xy: np.ndarray
    patch_size: int

    @cached_property
    def patches(self):
        return extract_patches(self.image, self.xy, patch_size=self.patch_size)


def compute_features(image, xy, *, patch_size, n_max=10):
    """Zernike moments and rotation invariants of every atom's neighbourhood.

    Parameters
    ----------
    image : (H, W) array_like of float
    xy : (N, 2) array_like of float
        Atom positions (x = column, y = row) in px.
    patch_size : int
        Odd neighbourhood diameter in px (see :func:`motifgram.engine.patches.patch_size_for`).
    n_max : int
        Highest Zernike radial order.

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
    moments = image_moments(img, pts, patch_size=size, n_max=n_max)
    return Features(moments=moments, invariants=rotation_invariants(moments), image=img, xy=pts, patch_size=size)


def token_names(k):
    """Default token names: ``A`` ... ``Z``, then ``AA``, ``AB``, ... (k names)."""
    letters = string.ascii_uppercase
    names = list(letters[:k])
    width = 2
    while len(names) < k:
        for i in range(len(letters) ** width):
            digits = []
            for _ in range(width):
                i, r = divmod(i, len(letters))
                digits.append(letters[r])
            names.append("".join(reversed(digits)))
            if len(names) == k:
                break
        width += 1
    return tuple(names)


@dataclass(frozen=True)
class TokenModel:
    """A learned token vocabulary, enough to tokenise new micrographs.

    Attributes
    ----------
    names : tuple of str
        Token names (``T`` of them), most abundant first.
    mixture : Mixture
        Gaussian mixture in the normalised feature space (``K >= T`` components, ``D`` dimensions),
        components grouped by token.
    feature_mean, feature_scale : (M,) ndarray of float64
        Standardisation of the invariants.
    projection : (M, D) ndarray of float64
        Whitening PCA projection applied after standardisation.
    n_max : int
        Zernike order the invariants were computed with.
    patch_size : int
        Patch side in px (0 when no patches were given).
    lattice_period_px : float
        Lattice period the model was learned at (px; NaN if unknown).
    class_averages : (T, P, P) ndarray of float32
        Rotation-aligned mean patch per token (``P = patch_size``; empty when no patches were given).
    abundances : (T,) ndarray of float64
        Fraction of the training atoms assigned to each token.
    component_token : (K,) ndarray of int64
        Token of each mixture component; ``None`` (the default) means one token per component.
    descriptor : {"zernike", "intensity", "zernike_context"}
        What the features are: rotation invariants of Zernike moments, intensity quantiles
        (:func:`motifgram.engine.patches.intensity_quantiles`, for grid points), or normalised Zernike
        invariants followed by the chemical context (:func:`motifgram.engine.context.context_features`).
    """

    names: tuple
    mixture: Mixture
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    projection: np.ndarray
    n_max: int
    patch_size: int
    lattice_period_px: float
    class_averages: np.ndarray
    abundances: np.ndarray
    component_token: np.ndarray = None
    descriptor: str = "zernike"

    def __post_init__(self):
        k = len(self.mixture.weights)
        groups = np.arange(k) if self.component_token is None else np.asarray(self.component_token)
        groups = groups.astype(np.int64)
        if groups.shape != (k,) or not np.array_equal(np.unique(groups), np.arange(len(self.names))):
            raise MotifgramError(
                f"component_token must map the {k} mixture components onto all of the {len(self.names)} "
                f"tokens, got {groups.tolist()}"
            )
        object.__setattr__(self, "component_token", groups)
        if self.descriptor not in DESCRIPTORS:
            raise MotifgramError(f"unknown token descriptor {self.descriptor!r}; expected one of {sorted(DESCRIPTORS)}")

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        n_features, n_dims = np.shape(self.projection)
        rows = [
            ("tokens", format_counts({n: f"{a:.1%}" for n, a in zip(self.names, self.abundances, strict=True)})),
            ("mixture", f"{plural(len(self.mixture.weights), 'component')} in {n_dims} dimensions"),
            ("features", f"{n_features} {self.descriptor} features (Zernike n_max {self.n_max})"),
            ("patches", f"{self.patch_size} px at a lattice period of {self.lattice_period_px:.3g} px"),
        ]
        return f"TokenModel: {plural(len(self.names), 'token')}", rows

    def __repr__(self) -> str:
        return summary_text(*self._summary())

    def _repr_html_(self) -> str:
        return summary_html(*self._summary())

    def token_means(self):
        """Each token's mean ``(T, D)`` in the normalised feature space: the weight-averaged means of its
        mixture components (the mean of the token's part of the mixture density)."""
        w = np.asarray(self.mixture.weights, dtype=np.float64)
        member = np.eye(len(self.names))[self.component_token] * w[:, None]  # (K, T)
        return (member.T @ np.asarray(self.mixture.means, dtype=np.float64)) / member.sum(axis=0)[:, None]

    def token_posterior(self, z):
        """Posterior probability ``(N, T)`` of each token for normalised features ``z`` ``(N, D)``: the sum of
        its components' posteriors (clipped to [0, 1]: the component posteriors come from a float32 kernel)."""
        return np.clip(posterior(self.mixture, z) @ np.eye(len(self.names))[self.component_token], 0.0, 1.0)

    def transform(self, invariants):
        """Normalised features ``(N, D)`` of invariants ``(N, M)``."""
        inv = np.asarray(invariants, dtype=np.float64)
        if inv.ndim != 2 or inv.shape[1] != len(self.feature_mean):
            raise MotifgramError(
                f"invariants have shape {inv.shape}, but this token model expects (N, {len(self.feature_mean)}) "
                f"(descriptor {self.descriptor}, Zernike n_max={self.n_max}); compute features with the model's "
                "descriptor, n_max and patch_size"
            )
        return ((inv - self.feature_mean) / self.feature_scale) @ self.projection

    def save(self, path):
        """Write the model to ``path`` (.npz, no pickled objects)."""
        mix = self.mixture
        np.savez(
            Path(path),
            format=np.int64(_FORMAT),
            names=np.array(self.names, dtype=str),
            weights=mix.weights,
            means=mix.means,
            covariances=mix.covariances,
            log_likelihood=np.float64(mix.log_likelihood),
            converged=np.bool_(mix.converged),
            n_iter=np.int64(mix.n_iter),
            covariance_type=np.array(mix.covariance_type),
            feature_mean=self.feature_mean,
            feature_scale=self.feature_scale,
            projection=self.projection,
            n_max=np.int64(self.n_max),
            patch_size=np.int64(self.patch_size),
            lattice_period_px=np.float64(self.lattice_period_px),
            class_averages=self.class_averages,
            abundances=self.abundances,
            component_token=self.component_token,
            descriptor=np.array(self.descriptor),
        )

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                version = int(data["format"])
                if version not in (1, 2, 3, _FORMAT):
                    raise MotifgramError(
                        f"{path}: token model format {version}, expected 1 to {_FORMAT}; re-learn the tokens "
                        "with this version of motifgram"
                    )
                mixture = Mixture(
                    weights=data["weights"],
                    means=data["means"],
                    covariances=data["covariances"],
                    log_likelihood=float(data["log_likelihood"]),
                    converged=bool(data["converged"]),
                    n_iter=int(data["n_iter"]),
                    covariance_type=str(data["covariance_type"]),
                )
                return cls(
                    names=tuple(str(s) for s in data["names"]),
                    mixture=mixture,
                    feature_mean=data["feature_mean"],
                    feature_scale=data["feature_scale"],
                    projection=data["projection"],
                    n_max=int(data["n_max"]),
                    patch_size=int(data["patch_size"]),
                    lattice_period_px=float(data["lattice_period_px"]),
                    class_averages=data["class_averages"],
                    abundances=data["abundances"],
                    component_token=data["component_token"] if version >= 2 else None,
                    descriptor=str(data["descriptor"]) if version >= 3 else "zernike",
                )
        except (OSError, KeyError, ValueError) as err:
            raise MotifgramError(f"cannot read a token model from {path}: {err}") from err


def _whitening(inv, n_pca):
    """Standardisation (mean, scale) and whitening PCA projection (M, D) of features (N, M)."""
    mean = inv.mean(axis=0)
    scale = inv.std(axis=0)
    scale = np.where(scale > 1e-12 * max(np.abs(mean).max(), 1.0), scale, 1.0)
    z = (inv - mean) / scale
    _, sing, vt = np.linalg.svd(z, full_matrices=False)
    var = sing**2 / len(z)
    keep = int(min(n_pca, np.sum(var > 1e-6 * max(var.sum(), 1e-300))))
    keep = max(keep, 1)
    projection = vt[:keep].T / np.sqrt(np.maximum(var[:keep], 1e-300))
    return mean, scale, projection


def _normalisation(inv, n_pca, n_context=0):
    """Standardisation (mean, scale) and whitening projection (M, D) of features (N, M).

    The last ``n_context`` columns (chemical context) are whitened on their own, keeping all their axes; the
    projection is block-diagonal, the invariants' ``n_pca`` (at most) axes first.
    """
    if n_context == 0:
        return _whitening(inv, n_pca)
    split = inv.shape[1] - n_context
    mean_a, scale_a, proj_a = _whitening(inv[:, :split], n_pca)
    mean_b, scale_b, proj_b = _whitening(inv[:, split:], n_context)
    projection = np.zeros((inv.shape[1], proj_a.shape[1] + proj_b.shape[1]))
    projection[:split, : proj_a.shape[1]] = proj_a
    projection[split:, proj_a.shape[1] :] = proj_b
    return np.concatenate([mean_a, mean_b]), np.concatenate([scale_a, scale_b]), projection


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


def merging_summary(mixture) -> dict:
    """How a mixture's components merge into tokens at the default threshold, for ``summary.json``: the
    number of components, the threshold, the two overlaps that fix the count (:func:`merge_decision`), the
    undecided band and whether this is a close call."""
    decision = merge_decision(merge_sequence(mixture)[0])
    last, first = (None if c is None else round(c, 4) for c in decision)
    return {
        "mixture_components": len(mixture.weights),
        "threshold": DEFAULT_MERGE_THRESHOLD,
        "last_merged": last,
        "first_kept_apart": first,
        "undecided": list(UNDECIDED_OVERLAP),
        "close_call": is_close_call(decision),
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


def class_averages(patches, moments, labels, k, *, max_per_token=2048, seed=0):
    """Rotation-aligned average patch of each token.

    For each token the ``m >= 1`` Zernike moment with the largest mean magnitude over its members sets
    the orientation (:func:`motifgram.engine.zernike.moment_orientation`); each member is rotated into that
    common pose and the members are averaged.

    Parameters
    ----------
    patches : (N, P, P) array_like of float
    moments : (N, M) array_like of complex
        Zernike moments of the patches.
    labels : (N,) array_like of int
        Token index per patch, in ``[0, k)``.
    k : int
        Number of tokens.
    max_per_token : int
        At most this many members (a seeded random subset) are averaged per token.
    seed : int
        Seed for that subset.

    Returns
    -------
    (k, P, P) ndarray of float32
        Zeros for a token without members.
    """
    arr = np.asarray(patches, dtype=np.float32)
    mom = np.asarray(moments)
    lab = np.asarray(labels)
    if not (len(arr) == len(mom) == len(lab)):
        raise ValueError(f"patches, moments and labels differ in length: {len(arr)}, {len(mom)}, {len(lab)}")
    n, m = zernike_orders(n_max_for(mom.shape[1]))
    rng = np.random.default_rng(seed)
    picked, angles, owner = [], [], []
    for token in range(k):
        members = np.flatnonzero(lab == token)
        if len(members) == 0:
            continue
        if len(members) > max_per_token:
            members = np.sort(rng.choice(members, max_per_token, replace=False))
        strength = np.where(m > 0, np.abs(mom[members]).mean(axis=0), -1.0)
        col = int(np.argmax(strength))
        picked.append(members)
        angles.append(moment_orientation(mom[members], nm=(int(n[col]), int(m[col]))))
        owner.append(np.full(len(members), token))
    out = np.zeros((k,) + arr.shape[1:], np.float32)
    if not picked:
        return out
    idx = np.concatenate(picked)
    token_of = np.concatenate(owner)
    aligned = rotate_patches(arr[idx], -np.concatenate(angles))
    np.add.at(out, token_of, aligned)
    counts = np.bincount(token_of, minlength=k).astype(np.float32)
    return out / np.maximum(counts, 1.0)[:, None, None]


def learn_tokens(
    invariants,
    *,
    k="auto",
    k_range=(1, 8),
    names=None,
    seed=0,
    n_init=4,
    max_iter=200,
    patches=None,
    moments=None,
    lattice_period_px=None,
    n_pca=10,
    min_weight=0.01,
    covariance="full",
    merge_threshold=DEFAULT_MERGE_THRESHOLD,
    descriptor="zernike",
):
    """Learn a token vocabulary from per-atom rotation invariants.

    Parameters
    ----------
    invariants : (N, M) array_like of float
        Rotation invariants (:func:`motifgram.engine.zernike.rotation_invariants`), M = Zernike moment count.
    k : int or "auto"
        "auto": fit mixtures with ``k_range`` components, keep the one of lowest BIC, then merge its
        overlapping components into tokens (``merge_threshold``). An int: exactly ``k`` tokens, one per
        component of a ``k``-component mixture (no merging).
    k_range : tuple of int
        ``(k_min, k_max)`` mixture components, inclusive, for ``k="auto"``: BIC scores each K on at most
        :data:`BIC_SAMPLE` rows (a seeded subsample of larger inputs, then the chosen K is fitted on all rows).
    names : sequence of str, optional
        One name per *token*, most abundant first; default ``A, B, C, ...``. With ``k="auto"`` the token
        count is known only after the fit: a wrong count raises ``ValueError``.
    seed, n_init, max_iter : int
        Mixture seed, restarts and most EM iterations per restart
        (:func:`motifgram.engine.mixture.fit_mixture`).
    patches : (N, P, P) array_like of float, optional
        The atoms' patches; with ``moments``, used for the rotation-aligned class averages.
    moments : (N, M) array_like of complex, optional
        The atoms' Zernike moments (orientation for the class averages).
    lattice_period_px : float, optional
        Lattice period (px) recorded in the model.
    n_pca : int
        At most this many whitened principal components are clustered.
    min_weight : float
        With ``k="auto"``, a K whose smallest mixture weight is below this is not chosen (keeps tiny
        spurious components out on clean data; lower it to resolve rarer defects).
    covariance : {"full", "diag"}
        Mixture covariance structure.
    merge_threshold : float or None
        With ``k="auto"``, components are merged into one token while the largest Bhattacharyya
        coefficient between two groups exceeds this (:func:`merge_components`); ``None`` or 1 disables
        merging. The default 0.25 (``D_B < 1.39``; Mahalanobis separation below 3.3 for equal covariances)
        was set on simulated graphene, MoS2 and perovskite micrographs in the 10-D whitened feature space:
        components splitting one site class overlapped at 0.30–0.49, pure components of different
        site classes at <= 0.22; a broad component mixing a rare class with stray atoms of a common one can
        reach 0.3–0.37 with the common class and is then merged into it.
    descriptor : {"zernike", "intensity", "zernike_context"}
        What ``invariants`` hold: Zernike rotation invariants (``n_max`` follows from their count),
        intensity quantiles (:func:`motifgram.engine.patches.intensity_quantiles`; ``n_max`` is then 0), or
        normalised invariants and then :data:`motifgram.engine.context.CONTEXT_COLUMNS` chemical-context
        columns (:func:`motifgram.engine.context.context_features`; the two blocks are normalised separately,
        see the module docstring). Recorded in the model, so new micrographs are described the same way.

    Returns
    -------
    model : TokenModel
    labels : (N,) ndarray of int64
        Token index per atom (into ``model.names``).
    confidence : (N,) ndarray of float64
        Posterior probability of the assigned token (summed over its components).
    """
    inv = np.asarray(invariants, dtype=np.float64)
    if inv.ndim != 2 or len(inv) < 2:
        raise ValueError(f"invariants must have shape (N, M) with N >= 2, got {inv.shape}")
    if not np.isfinite(inv).all():
        raise ValueError("invariants contain NaN or infinite values")
    if descriptor not in DESCRIPTORS:
        raise ValueError(f"descriptor must be one of {sorted(DESCRIPTORS)}, got {descriptor!r}")
    n_context = DESCRIPTORS[descriptor]
    if inv.shape[1] <= n_context:
        raise ValueError(f"{descriptor} features need more than {n_context} columns, got {inv.shape[1]}")
    n_max = n_max_for(inv.shape[1] - n_context) if descriptor != "intensity" else 0
    if (patches is None) != (moments is None):
        raise ValueError("give both patches and moments (for class averages) or neither")
    mean, scale, projection = _normalisation(inv, int(n_pca), n_context)
    z = ((inv - mean) / scale) @ projection
    options = dict(seed=seed, n_init=n_init, max_iter=max_iter, covariance=covariance)
    if k == "auto":
        # BIC chooses K on at most BIC_SAMPLE seeded rows (the scan's cost stops growing with the sample); the
        # chosen K is then refitted on all rows
        if len(z) > BIC_SAMPLE:
            scan = z[np.sort(np.random.default_rng(seed).choice(len(z), size=BIC_SAMPLE, replace=False))]
            chosen = select_n_components(scan, k_range=k_range, min_weight=min_weight, **options)
            mixture = fit_mixture(z, n_components=len(chosen.weights), **options)
        else:
            mixture = select_n_components(z, k_range=k_range, min_weight=min_weight, **options)
        if merge_threshold is None:
            groups = np.arange(len(mixture.weights))
        else:
            groups = merge_components(mixture, threshold=merge_threshold)
    elif isinstance(k, int) and not isinstance(k, bool) and k >= 1:
        mixture = fit_mixture(z, n_components=k, **options)
        groups = np.arange(k)
    else:
        raise ValueError(f'k must be a positive int or "auto", got {k!r}')
    n_tokens = int(groups.max()) + 1
    member = np.eye(n_tokens)[groups]  # (K, T)
    resp = np.clip(posterior(mixture, z) @ member, 0.0, 1.0)
    counts = np.bincount(np.argmax(resp, axis=1), minlength=n_tokens)
    rank = np.empty(n_tokens, np.int64)
    rank[np.lexsort((-(mixture.weights @ member), -counts))] = np.arange(n_tokens)  # most assigned first
    groups = rank[groups]
    components = np.lexsort((-mixture.weights, groups))  # grouped by token, heaviest component first
    mixture = mixture._replace(
        weights=mixture.weights[components],
        means=mixture.means[components],
        covariances=mixture.covariances[components],
    )
    groups = groups[components]
    resp = resp[:, np.argsort(rank)]
    labels = np.argmax(resp, axis=1)
    confidence = resp[np.arange(len(resp)), labels]
    if names is None:
        names = token_names(n_tokens)
    names = tuple(str(s) for s in names)
    if len(names) != n_tokens or len(set(names)) != n_tokens:
        raise ValueError(f"names must be {n_tokens} distinct strings (one per token), got {names!r}")
    if patches is None:
        averages = np.zeros((n_tokens, 0, 0), np.float32)
        patch_size = 0
    else:
        averages = class_averages(patches, moments, labels, n_tokens, seed=seed)
        patch_size = averages.shape[-1]
    model = TokenModel(
        names=names,
        mixture=mixture,
        feature_mean=mean,
        feature_scale=scale,
        projection=projection,
        n_max=n_max,
        patch_size=patch_size,
        lattice_period_px=math.nan if lattice_period_px is None else float(lattice_period_px),
        class_averages=averages,
        abundances=np.bincount(labels, minlength=n_tokens) / len(labels),
        component_token=groups,
        descriptor=descriptor,
    )
    log.info(
        "learned %d tokens %s from %d mixture components, abundances %s",
        n_tokens, names, len(groups), np.round(model.abundances, 3).tolist(),
    )
    return model, labels, confidence


def assign_tokens(model, invariants):
    """Tokenise atoms of a new micrograph with a learned model.

    Parameters
    ----------
    model : TokenModel
    invariants : (N, M) array_like of float
        Rotation invariants computed with the model's ``n_max`` and ``patch_size``.

    Returns
    -------
    labels : (N,) ndarray of int64
        Token index per atom (into ``model.names``).
    confidence : (N,) ndarray of float64
        Posterior probability of the assigned token (summed over its mixture components).
    """
    z = model.transform(invariants)
    if len(z) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    resp = model.token_posterior(z)
    labels = np.argmax(resp, axis=1)
    return labels, resp[np.arange(len(resp)), labels]
