"""Atom tokens: the learned vocabulary of atom columns.

Each atom is described by a few features, and a Gaussian mixture fitted to them gives the tokens. What the
features are is the *descriptor* (:data:`DESCRIPTORS`): ``chemistry`` for atom columns
(:mod:`motifgram.engine.chemistry`: fitted integrated intensity and contrast with the neighbours, so that one
column kind is one token however its neighbourhood is distorted), rotation-invariant Zernike magnitudes of a
neighbourhood disk (``zernike``; ring-centre and dumbbell sites, or on request), with the chemical context
(``zernike_context``), or intensity quantiles (``intensity``, grid points).

How many tokens (``k="auto"``) is a description-length choice (:mod:`motifgram.engine.vocabulary`): mixtures
of ``k_range`` components, their components merged in order of overlap (:mod:`motifgram.engine.merging`),
and the vocabulary kept is the one that describes the mixture, the atoms' tokens (coded given their
neighbours' tokens) and the features given the tokens in the fewest bits. A token's posterior is the sum of
its components' posteriors; an atom's label is the token of highest posterior and its confidence that
posterior. Tokens are ordered by the number of atoms assigned and named ``A, B, C, ...``
(:mod:`motifgram.engine.gallery`, which also ranks them by brightness and makes the class averages).

Feature normalisation (stored in the model and re-applied by :func:`assign_tokens`): each feature is
standardised (mean 0, standard deviation 1 over the training atoms; constant columns keep scale 1), then
projected onto its leading principal axes (at most ``n_pca``, 10 by default, and only axes carrying at
least ``1e-6`` of the total variance) and whitened (unit variance per axis). With the ``zernike_context``
descriptor (:mod:`motifgram.engine.context`) the chemical-context columns are normalised the same way but
on their own (all their axes kept), and their axes follow the invariants' (a block-diagonal projection).
"""

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motifgram.engine.chemistry import feature_precision
from motifgram.engine.context import CONTEXT_COLUMNS
from motifgram.engine.display import format_counts, plural, summary_html, summary_text
from motifgram.engine.errors import MotifgramError
from motifgram.engine.gallery import brightness_labels, class_averages, token_names
from motifgram.engine.merging import (
    DEFAULT_MERGE_THRESHOLD,
    bhattacharyya_coefficient,
    is_close_call,
    merge_components,
    merge_decision,
    merge_sequence,
    merging_summary,
)
from motifgram.engine.mixture import Mixture, fit_mixture, posterior, select_n_components
from motifgram.engine.vocabulary import choose_vocabulary
from motifgram.engine.zernike import n_max_for

__all__ = [
    "TokenModel",
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
    "DESCRIPTORS",
]

log = logging.getLogger(__name__)

# 2: component_token added (format 1 loads with one token per component); 3: descriptor added;
# 4: descriptor "zernike_context" (a block-diagonal projection); 5: descriptor "chemistry"; formats 1-4 load as
# before
_FORMAT = 5

#: Descriptors (``TokenModel.descriptor``) and the number of chemical-context columns after the Zernike or
#: intensity columns of their features.
DESCRIPTORS = {"zernike": 0, "intensity": 0, "zernike_context": CONTEXT_COLUMNS, "chemistry": 0}

#: Descriptors whose features are not Zernike invariants (the model's ``n_max`` is then 0).
_NOT_ZERNIKE = ("intensity", "chemistry")

#: Rows on which each number of mixture components is fitted before the description length scores it on all
#: rows (see :func:`learn_tokens`).
BIC_SAMPLE = 10_000
#: The BIC scan over ``k_range`` stops after this many consecutive K that do not lower the chosen BIC
#: (:func:`motifgram.engine.mixture.select_n_components`).
BIC_PATIENCE = 2


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
    descriptor : {"zernike", "intensity", "zernike_context", "chemistry"}
        What the features are: rotation invariants of Zernike moments, intensity quantiles
        (:func:`motifgram.engine.patches.intensity_quantiles`, for grid points), normalised Zernike
        invariants followed by the chemical context (:func:`motifgram.engine.context.context_features`), or
        the column chemistry (:func:`motifgram.engine.chemistry.chemistry_features`).
    choice : dict or None
        How ``k="auto"`` chose the token count (:func:`motifgram.engine.vocabulary.choose_vocabulary`'s
        report); ``None`` for a fixed ``k`` or a loaded model (not saved).
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
    choice: dict | None = field(default=None, compare=False, repr=False)

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
            *([("brightness", format_counts(dict(zip(self.names, self.brightness(), strict=True))))]
              if self.descriptor == "chemistry" else []),
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

    def brightness(self):
        """Each token's brightness rank (``bright`` ... ``dim``, :func:`motifgram.engine.gallery.brightness_labels`)
        from its mean column intensity; ``None`` unless the descriptor is ``chemistry``."""
        if self.descriptor != "chemistry":
            return None
        means = self.token_means() @ np.linalg.pinv(self.projection) * self.feature_scale + self.feature_mean
        return brightness_labels(means[:, 0])

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
                if version not in (1, 2, 3, 4, _FORMAT):
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
    """Standardisation (mean, scale) and whitening PCA projection (M, D) of features (N, M).

    The principal axes are the eigenvectors of the standardised features' (M, M) covariance (``eigh``; an SVD
    of the N rows gives the same axes: 50,238 x 36 Zernike invariants of a 2048² micrograph, 0.18 s against
    0.92 s, the fastest of 7 at load ~11 on 2 cores), each signed so that its entry of largest magnitude is
    positive (the first of equal ones), so that the projection does not depend on the LAPACK routine's signs.
    Axes with less than 1e-6 of the total variance are dropped.
    """
    mean = inv.mean(axis=0)
    scale = inv.std(axis=0)
    scale = np.where(scale > 1e-12 * max(np.abs(mean).max(), 1.0), scale, 1.0)
    z = (inv - mean) / scale
    var, axes = np.linalg.eigh(z.T @ z / len(z))
    var, axes = np.maximum(var[::-1], 0.0), axes[:, ::-1]  # largest variance first
    keep = max(int(min(n_pca, np.sum(var > 1e-6 * max(var.sum(), 1e-300)))), 1)
    axes = axes[:, :keep]
    axes = axes * np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(keep)])
    projection = axes / np.sqrt(np.maximum(var[:keep], 1e-300))
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
    min_weight=None,
    covariance="full",
    merge_threshold=DEFAULT_MERGE_THRESHOLD,
    descriptor="zernike",
    neighbours=None,
):
    """Learn a token vocabulary from per-atom features.

    Parameters
    ----------
    invariants : (N, M) array_like of float
        Per-atom features of the ``descriptor`` (for ``zernike``, the rotation invariants of
        :func:`motifgram.engine.zernike.rotation_invariants`, M = Zernike moment count).
    k : int or "auto"
        "auto" with ``neighbours``: the vocabulary of the shortest description
        (:func:`motifgram.engine.vocabulary.choose_vocabulary`): mixtures of ``k_range`` components, each
        with its components merged along their overlap sequence, scored by the bits of the mixture, the
        atoms' tokens given their neighbours' and the features given the tokens; with the ``chemistry``
        descriptor, heavy columns of a kind too rare to pay for a token in bits (a single dopant) are tokens of
        their own when no main token can hold them (:func:`motifgram.engine.vocabulary.rare_kinds`). "auto"
        without neighbours (no structure to code, so a description length would always merge to one token): the
        mixture of lowest BIC, its overlapping components merged (``merge_threshold``). An int: exactly ``k`` tokens,
        one per component of a ``k``-component mixture (no merging).
    k_range : tuple of int
        ``(k_min, k_max)`` mixture components, inclusive, for ``k="auto"``: each is fitted on at most
        :data:`BIC_SAMPLE` rows (a seeded subsample of larger inputs); the chosen one is refitted on all rows.
        Without ``neighbours`` the BIC scan stops after :data:`BIC_PATIENCE` consecutive K that do not lower
        the chosen BIC.
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
    min_weight : float, optional
        With ``k="auto"``, a mixture with a component lighter than this is not a candidate. Default: 0.01
        without ``neighbours`` (keeps BIC's tiny components of stray neighbourhoods out), 0 with them (the
        description length decides: a dopant at 0.5 % of the columns is a token when it pays).
    covariance : {"full", "diag"}
        Mixture covariance structure.
    merge_threshold : float or None
        With ``k="auto"``, components whose Bhattacharyya coefficient exceeds this are always one token
        (:func:`motifgram.engine.merging.merge_components`); with ``neighbours`` the description length alone
        decides every merge (the threshold is not used). ``None`` keeps one token per component. The default
        0.25 was set on simulated graphene, MoS2 and perovskite micrographs in the 10-D whitened Zernike space:
        components splitting one site class overlapped at 0.30–0.49, pure components of different site classes
        at <= 0.22.
    descriptor : {"zernike", "intensity", "zernike_context", "chemistry"}
        What ``invariants`` hold: Zernike rotation invariants (``n_max`` follows from their count),
        intensity quantiles (:func:`motifgram.engine.patches.intensity_quantiles`; ``n_max`` is then 0),
        normalised invariants and then :data:`motifgram.engine.context.CONTEXT_COLUMNS` chemical-context
        columns (:func:`motifgram.engine.context.context_features`; the two blocks are normalised separately,
        see the module docstring), or the column chemistry (:func:`motifgram.engine.chemistry.chemistry_features`;
        ``n_max`` 0). Recorded in the model, so new micrographs are described the same way.
    neighbours : (S, J) array_like of int, optional
        Row indices of the bonded neighbours of the first ``S <= N`` rows (``-1`` pads; the other rows are
        neighbours only, not fitted): with ``k="auto"`` the vocabulary is then chosen by description length,
        the atoms' tokens coded given their neighbours' tokens.

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
    n_max = n_max_for(inv.shape[1] - n_context) if descriptor not in _NOT_ZERNIKE else 0
    if (patches is None) != (moments is None):
        raise ValueError("give both patches and moments (for class averages) or neither")
    if merge_threshold is not None and not 0.0 <= merge_threshold <= 1.0:
        raise ValueError(f"merge threshold must be in [0, 1], got {merge_threshold!r}")
    if neighbours is not None:
        neighbours = np.asarray(neighbours, dtype=np.int64).reshape(len(neighbours), -1)
        if len(neighbours) > len(inv) or np.any(neighbours >= len(inv)) or np.any(neighbours < -1):
            raise ValueError(f"neighbours must be (S <= {len(inv)}, J) row indices or -1, got shape "
                             f"{neighbours.shape}")
    if min_weight is None:
        min_weight = 0.01 if neighbours is None else 0.0
    mean, scale, projection = _normalisation(inv, int(n_pca), n_context)
    z = ((inv - mean) / scale) @ projection
    options = dict(n_init=n_init, max_iter=max_iter, covariance=covariance)
    choice = None
    if k == "auto":
        sample, n_fit = None, len(z) if neighbours is None else len(neighbours)
        if n_fit > BIC_SAMPLE:
            sample = np.sort(np.random.default_rng(seed).choice(n_fit, size=BIC_SAMPLE, replace=False))
        if neighbours is not None:
            # the chemistry features are ratios of fitted intensities, measured as precisely as one kind's columns
            # agree in this micrograph: no token is sharper than that
            floor = heavier = None
            if descriptor == "chemistry":
                precision = feature_precision(inv[: len(neighbours)])
                floor = projection.T @ np.diag((precision / scale) ** 2) @ projection
                heavier = np.linalg.pinv(projection)[:, 0]  # z . heavier grows with the integrated intensity
            best, choice = choose_vocabulary(z, k_range=k_range, neighbours=neighbours,
                                             merge=merge_threshold is not None, min_weight=min_weight,
                                             sample=sample, seed=seed, floor=floor, heavier=heavier, **options)
            mixture, groups = best.mixture, best.groups
        else:
            # no structure to code: BIC chooses K (on at most BIC_SAMPLE seeded rows, then refitted on all) and
            # overlapping components merge
            scan = z if sample is None else z[sample]
            mixture = select_n_components(scan, k_range=k_range, min_weight=min_weight, seed=seed,
                                          patience=BIC_PATIENCE, **options)
            if sample is not None:
                mixture = fit_mixture(z, n_components=len(mixture.weights), seed=seed, **options)
            groups = (np.arange(len(mixture.weights)) if merge_threshold is None
                      else merge_components(mixture, threshold=merge_threshold))
    elif isinstance(k, int) and not isinstance(k, bool) and k >= 1:
        mixture = fit_mixture(z, n_components=k, seed=seed, **options)
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
        choice=choice,
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
