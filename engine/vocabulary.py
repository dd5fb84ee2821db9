"""How many tokens: the vocabulary of the shortest description.

A token earns its place when the whole description gets shorter: the mixture's parameters, the tokens of
the atoms, and the features given their tokens. :func:`description_length` measures the three parts of one
candidate (a mixture whose components are grouped into tokens), in bits:

* **model**: ``p / 2 log2 N`` for the ``p`` free parameters of the tokens' Gaussians (mean and covariance
  of each token, moment-matched to its mixture components; the weights are in the structure code);
* **structure**: the tokens of the atoms, each coded given the multiset of its neighbours' tokens with an
  adaptive (Krichevsky–Trofimov) code per context, the code the grammar's rings and motifs would otherwise
  pay for: in MoS2 a metal's neighbours are chalcogens, so knowing the neighbours a token costs almost
  nothing, while tokens that split one column kind by strain or noise are unpredictable from their
  neighbours and cost about their entropy. Without neighbours every atom is coded in one context (and then
  merging always pays: :func:`motifgram.engine.tokens.learn_tokens` asks for neighbours);
* **data**: ``-log2 p(x | token)`` of each atom's features under its token's Gaussian, mixed with
  a uniform density over the features' bounding box (weight :data:`OUTLIER_WEIGHT`; the "noise component" of
  model-based clustering, Fraley and Raftery 2002): a few scattered columns whose fit failed (cut by the
  image edge, a spurious detection) cost a bounded number of bits each, so a component that merely
  covers them does not pay for its parameters, while a tight cluster of a few columns (a dopant) does.

Merging the components of one column kind (BIC covers a skewed class with several) costs the few bits by which
the kind is not Gaussian, and saves the entropy of an arbitrary split; merging two kinds costs the gap between
them, however rare one is (a dopant); a split that the neighbours predict (a metal next to chalcogens) is
nearly free to code. :func:`choose_vocabulary` scores
every number of components in a range and every level of each mixture's merge sequence
(:func:`motifgram.engine.merging.merge_sequence`) and keeps the shortest; when the runner-up with a
different token count lies within :data:`CLOSE_CALL_BITS`, the choice is a close call (reported). No merge is
forced by the components' overlap alone: a mixture criterion cannot tell two kinds bridged by a few corrupted
columns (MoS2's S2 and Se-substituted columns under amorphous contamination) from one skewed kind. With the
features' precision (``floor``) a vocabulary is a candidate only when its tokens are :func:`resolved`, their means
at least :data:`RESOLUTION` precisions apart: a systematic variation below the precision (a periodic bias of the
fit in a blurred lattice) is structure the neighbours predict, yet not a column kind.

A kind of one to a few columns (a Si dopant in graphene) cannot pay for a token in bits: naming which columns
hold it costs about ``log2 N`` each, as much as the outlier code saves. It is told by significance instead
(:func:`rare_kinds`): columns heavier than every main token beyond odds of a close call (``2**CLOSE_CALL_BITS``,
over all ``N`` columns; more scattering: more or heavier atoms, where a failed fit or a spurious detection only
ever gives less) become tokens of their own, one per compact cluster within :data:`RESOLUTION` precisions.

A minor token whose columns are bonded to each other beyond chance marks amorphous contamination, no kind
(:func:`motifgram.engine.kinds.patchy_tokens`): its columns and their bonded neighbours leave the coded columns and
the search runs again, until no token is patchy (:func:`choose_vocabulary`); :mod:`motifgram.engine.kinds` tells
which. Nor is a column a rare kind when it is no heavier than the heaviest column of a patch's token:
contamination alone could make it.

References
----------
C. Fraley, A. E. Raftery, "Model-based clustering, discriminant analysis, and density estimation", J. Am.
Stat. Assoc. 97, 611 (2002). R. E. Krichevsky, V. K. Trofimov, "The performance of universal encoding",
IEEE Trans. Inf. Theory 27, 199 (1981).
"""

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import gammainccinv

from motifgram.engine.chemistry import MAIN_KIND_SHARE
from motifgram.engine.kinds import (CLOSE_CALL_BITS, RESOLUTION, kt_nats, neighbour_contexts, on_kind_sites,
                                    one_main_kind, patchy_tokens, spread_along)
from motifgram.engine.merging import groups_at_level, merge_sequence
from motifgram.engine.mixture import EM_TOL, fit_restarts, min_component_size

__all__ = [
    "CLOSE_CALL_BITS",
    "OUTLIER_WEIGHT",
    "RESOLUTION",
    "Candidate",
    "token_gaussians",
    "gaussian_log_densities",
    "structure_bits",
    "description_length",
    "resolved",
    "rare_kinds",
    "token_labels",
    "choose_vocabulary",
]

log = logging.getLogger(__name__)

#: Weight of the uniform outlier density in the data code (see the module docstring).
OUTLIER_WEIGHT = 0.01

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class Candidate:
    """One scored vocabulary: a mixture, its components' tokens and its description length (bits)."""

    mixture: object
    groups: np.ndarray
    model_bits: float
    structure_bits: float
    data_bits: float

    @property
    def n_tokens(self) -> int:
        return int(self.groups.max()) + 1

    @property
    def total_bits(self) -> float:
        return self.model_bits + self.structure_bits + self.data_bits


def token_gaussians(mixture, groups):
    """One Gaussian per token, moment-matched to its components: weights ``(T,)``, means ``(T, D)`` and
    covariances ``(T, D, D)`` (the components' weights summed, their mixture's mean and covariance)."""
    grp = np.asarray(groups, dtype=np.int64)
    w = np.asarray(mixture.weights, dtype=np.float64)
    mu = np.asarray(mixture.means, dtype=np.float64)
    cov = np.asarray(mixture.covariances, dtype=np.float64)
    n_tokens = int(grp.max()) + 1
    weights = np.array([w[grp == t].sum() for t in range(n_tokens)])
    means = np.stack([w[grp == t] @ mu[grp == t] / weights[t] for t in range(n_tokens)])
    covariances = np.stack([
        np.einsum("k,kij->ij", w[grp == t], cov[grp == t] + np.einsum("ki,kj->kij", mu[grp == t] - means[t],
                                                                     mu[grp == t] - means[t])) / weights[t]
        for t in range(n_tokens)
    ])
    return weights, means, covariances


def gaussian_log_densities(means, covariances, z):
    """``log N(z | mu_t, S_t)`` of every row and Gaussian, ``(N, T)`` float64 (natural logarithms)."""
    x = np.asarray(z, dtype=np.float64)
    out = np.empty((len(x), len(means)))
    for t, (mean, cov) in enumerate(zip(means, covariances, strict=True)):
        chol = np.linalg.cholesky(cov)
        y = np.linalg.solve(chol, (x - mean).T)
        out[:, t] = (-0.5 * np.sum(y * y, axis=0) - np.sum(np.log(np.diag(chol)))
                     - 0.5 * x.shape[1] * math.log(2 * math.pi))
    return out


def structure_bits(labels, n_tokens, neighbours=None):
    """Bits of the tokens ``labels`` coded given their neighbours' tokens (adaptive KT code per context).

    Parameters
    ----------
    labels : (N,) array_like of int
        Token of every row, in ``[0, n_tokens)``.
    n_tokens : int
    neighbours : (S, J) array_like of int, optional
        Row indices of the neighbours of the first ``S`` rows (``-1`` pads); those rows are coded, the
        others are context only. Default: every row coded in one context.

    Returns
    -------
    float

    Examples
    --------
    >>> alternating = np.array([0, 1, 0, 1, 0, 1])
    >>> ring = np.array([[5, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 0]])
    >>> round(structure_bits(alternating, 2), 2), round(structure_bits(alternating, 2, ring), 2)
    (7.68, 3.36)
    """
    lab = np.asarray(labels, dtype=np.int64)
    if n_tokens <= 1 or len(lab) == 0:
        return 0.0
    if neighbours is None:
        coded, context = lab, np.zeros(len(lab), np.int64)
    else:
        coded, context = lab[: len(neighbours)], neighbour_contexts(lab, neighbours, n_tokens)
    table = np.zeros((int(context.max()) + 1, n_tokens))
    np.add.at(table, (context, coded), 1.0)
    return float(kt_nats(table).sum() / _LN2)


def description_length(mixture, groups, z, neighbours=None, *, floor=None):
    """The description length of a vocabulary (see the module docstring).

    Each token is coded as one Gaussian, moment-matched to its components (:func:`token_gaussians`): merging
    components of one column kind (a skewed or heavy-tailed class that BIC covers with several) costs the
    little by which the class is not Gaussian, merging different kinds the whole gap between them.

    Parameters
    ----------
    mixture : Mixture
    groups : (K,) array_like of int
        Token of each component.
    z : (N, D) array_like of float
        Normalised features.
    neighbours : (S, J) array_like of int, optional
        As for :func:`structure_bits`: only the first ``S`` rows are coded (their tokens and features), the
        others are the context of their neighbours.
    floor : (D, D) ndarray, optional
        Added to every token's covariance: the precision of the features (a token cannot be sharper than its
        features are measured), so that no split of a noise-free class pays for its sharper Gaussians.

    Returns
    -------
    Candidate
    """
    grp = np.asarray(groups, dtype=np.int64)
    n_tokens, d = int(grp.max()) + 1, np.shape(z)[1]
    log_density, labels = _token_densities(mixture, grp, z, floor)
    n_coded = len(labels) if neighbours is None else len(neighbours)
    x = np.asarray(z, dtype=np.float64)[:n_coded]
    log_volume = float(np.sum(np.log(np.maximum(np.ptp(x, axis=0), 1e-12)))) if n_coded else 0.0
    own = log_density[np.arange(n_coded), labels[:n_coded]]
    mixed = np.logaddexp(math.log1p(-OUTLIER_WEIGHT) + own, math.log(OUTLIER_WEIGHT) - log_volume)
    data = -float(np.sum(mixed)) / _LN2
    n_params = n_tokens * (d + d * (d + 1) // 2)
    model = 0.5 * n_params * math.log2(max(n_coded, 2))
    return Candidate(mixture, grp, model, structure_bits(labels, n_tokens, neighbours), data)


def _token_densities(mixture, groups, z, floor):
    """``log N(z | token)`` ``(N, T)`` of every row under each token's Gaussian (plus ``floor``), and each row's
    token of highest weighted density ``(N,)``."""
    weights, means, covariances = token_gaussians(mixture, groups)
    if floor is not None:
        covariances = covariances + np.asarray(floor, dtype=np.float64)
    log_density = gaussian_log_densities(means, covariances, z)
    return log_density, np.argmax(log_density + np.log(weights), axis=1)


def token_labels(candidate, z, floor=None):
    """(N,) int64: the token of every row of ``z`` under ``candidate`` (as :func:`description_length` codes it)."""
    return _token_densities(candidate.mixture, candidate.groups, z, floor)[1]


def resolved(mixture, groups, floor):
    """Whether every two tokens' means (:func:`token_gaussians`) differ by at least :data:`RESOLUTION` times the
    features' precision ``floor`` (a covariance, Mahalanobis distance); always true without a floor."""
    if floor is None:
        return True
    _, means, _ = token_gaussians(mixture, groups)
    diff = means[:, None, :] - means[None, :, :]
    distance2 = np.einsum("abi,ij,abj->ab", diff, np.linalg.inv(floor), diff)
    return bool(np.all(distance2[np.triu_indices(len(means), 1)] >= RESOLUTION**2))


def _chi2_isf(probability: float, degrees: int) -> float:
    """The chi-square quantile exceeded with ``probability`` (``scipy.stats.chi2.isf``, whose own definition this is:
    importing scipy.stats would load scipy.optimize into every run)."""
    return float(2.0 * gammainccinv(degrees / 2.0, probability))


def rare_kinds(candidate, z, *, n_coded, floor, heavier, beyond=-np.inf):
    """Columns of a kind too rare to pay for a token: clusters of the coded rows beyond every token's reach.

    A row is beyond reach when it is heavier than every main token (one holding at least
    :data:`motifgram.engine.chemistry.MAIN_KIND_SHARE` of the rows) by more than the chi-square quantile of odds
    ``2**-CLOSE_CALL_BITS / n_coded`` allows along ``heavier`` (no row of ``n_coded`` would be that far at those
    odds; the token's Gaussian of :func:`token_gaussians` plus ``floor``): a kind differs in what scatters, so a
    column next to a hole, odd only in its contrast with its neighbours, is not one. Such rows within
    :data:`RESOLUTION` precisions (``floor``) of each other are one cluster (single linkage); a cluster is a kind,
    and returned, when none of its rows is beyond the reach of their mean at the precision (a chain of scattered
    columns, such as those under amorphous contamination, is not).

    Parameters
    ----------
    candidate : Candidate
    z : (N, D) ndarray of float
    n_coded : int
        The first ``n_coded`` rows are examined.
    floor : (D, D) ndarray
        The features' precision as a covariance.
    heavier : (D,) ndarray
        Direction of more scattering in ``z``.
    beyond : float
        Rows at most this far along ``heavier`` are no kind (the most that contamination added to a column of a
        patch, :func:`choose_vocabulary`: such a column could be contamination alone).

    Returns
    -------
    list of (n,) ndarray of int64
        Rows of each cluster, largest first.
    """
    weights, means, covariances = token_gaussians(candidate.mixture, candidate.groups)
    main = weights >= MAIN_KIND_SHARE
    means, covariances = means[main], covariances[main]
    x = np.asarray(z, dtype=np.float64)[:n_coded]
    excess = np.stack([(x - m) @ heavier / np.sqrt(heavier @ (c + floor) @ heavier)
                       for m, c in zip(means, covariances, strict=True)], axis=1)
    odds = 2.0 ** -CLOSE_CALL_BITS / max(n_coded, 1)
    rows = np.flatnonzero((excess.min(axis=1) > np.sqrt(_chi2_isf(odds, 1))) & (x @ heavier > beyond))
    bound = _chi2_isf(odds, x.shape[1])
    if len(rows) == 0:
        return []
    precision = np.linalg.inv(floor)
    diff = x[rows, None, :] - x[None, rows, :]
    linked = np.einsum("abi,ij,abj->ab", diff, precision, diff) <= RESOLUTION**2
    _, cluster = connected_components(sparse.csr_matrix(linked), directed=False)
    clusters = []
    for c in np.unique(cluster):
        members = x[rows[cluster == c]]
        spread = members - members.mean(axis=0)
        if np.all(np.einsum("ni,ij,nj->n", spread, precision, spread) <= bound):
            clusters.append(rows[cluster == c])
    return sorted(clusters, key=len, reverse=True)


def _with_rare_kinds(candidate, clusters, z, neighbours, floor):
    """``candidate`` with one more component and token per cluster (its rows' mean; the precision ``floor`` plus
    their scatter as its covariance), scored."""
    mixture, n = candidate.mixture, (len(z) if neighbours is None else len(neighbours))
    x = np.asarray(z, dtype=np.float64)
    added = np.array([len(c) / n for c in clusters])
    means = np.stack([x[c].mean(axis=0) for c in clusters])
    covariances = np.stack([floor + np.cov(x[c].T, bias=True).reshape(floor.shape) for c in clusters])
    grown = mixture._replace(weights=np.concatenate([np.asarray(mixture.weights) * (1 - added.sum()), added]),
                             means=np.concatenate([mixture.means, means]),
                             covariances=np.concatenate([mixture.covariances, covariances]))
    groups = np.concatenate([candidate.groups, candidate.n_tokens + np.arange(len(clusters))])
    return description_length(grown, groups, z, neighbours, floor=floor)


def _levels(mixture, z, neighbours, merge, floor):
    """Every level of the mixture's merge sequence, from one token per component down to one token, whose
    tokens are :func:`resolved`, scored (only the first when ``merge`` is false)."""
    k = len(mixture.weights)
    if not merge:
        return [description_length(mixture, np.arange(k), z, neighbours, floor=floor)]
    _, pairs = merge_sequence(mixture)
    levels = [groups_at_level(k, pairs, level) for level in range(k)]
    return [description_length(mixture, groups, z, neighbours, floor=floor)
            for groups in levels if resolved(mixture, groups, floor)]


def _distinct_restarts(x, n_components, seed, options):
    """The mixtures of :func:`~motifgram.engine.mixture.fit_restarts` on ``x`` that reached different optima: a
    mixture whose mean log-likelihood is within EM's own stopping rule (``tol``) of an earlier one's and whose sorted
    weights differ from its by less than one row's is the same optimum, scored once."""
    tol, kept = options.get("tol", EM_TOL), []
    for m in fit_restarts(x, n_components=n_components, seed=seed, **options):
        if not any(abs(m.log_likelihood - o.log_likelihood) < tol
                   and np.all(np.abs(np.sort(m.weights) - np.sort(o.weights)) < 1.0 / len(x)) for o in kept):
            kept.append(m)
    return kept


def _search(z, fitted, k_min, k_max, neighbours, merge, floor, min_weight, seed, options, *, refit, rare=()):
    """Every candidate of :func:`choose_vocabulary` (mixtures fitted on the rows ``fitted``, each with the tokens of
    ``rare``, the :func:`rare_kinds` clusters, added), the shortest description of each number of components, and
    the best candidate (with ``refit``, its number of components refitted on every coded row but ``rare``'s)."""
    n_coded = len(z) if neighbours is None else len(neighbours)

    def scored(mixture):
        levels = _levels(mixture, z, neighbours, merge, floor)
        return [_with_rare_kinds(c, rare, z, neighbours, floor) for c in levels] if rare else levels

    rows = z[fitted]
    k_max = min(k_max, len(rows))
    candidates, components = [], {}
    for k in range(k_min, max(k_max, k_min) + 1):
        for mixture in _distinct_restarts(rows, k, seed, options):
            smallest = float(np.min(mixture.weights))
            if k > k_min and (smallest < min_weight or smallest * len(rows) < min_component_size(
                    z.shape[1], options.get("covariance", "full"))):
                continue
            levels = scored(mixture)
            components[k] = min(components.get(k, np.inf), *(c.total_bits for c in levels))
            candidates.extend(levels)
    best = min(candidates, key=lambda c: c.total_bits)
    if refit:  # the chosen number of components refitted on every row, its levels scored again
        every = np.setdiff1d(np.arange(n_coded), np.concatenate(rare)) if rare else np.arange(n_coded)
        k = len(best.mixture.weights) - len(rare)
        best = min((c for mixture in _distinct_restarts(z[every], k, seed, options) for c in scored(mixture)),
                   key=lambda c: c.total_bits)
        candidates.append(best)
    return candidates, components, best


def _without_rows(z, neighbours, fitted, keep, lone):
    """The rows of ``z`` reordered so that the coded rows ``keep`` ((S,) bool) selects come first and the others are
    context only; ``neighbours`` (of the kept rows only), ``fitted`` and the rows ``lone`` ((N,) bool) renumbered."""
    s = len(neighbours)
    order = np.concatenate([np.flatnonzero(keep), np.flatnonzero(~keep), np.arange(s, len(z))])
    position = np.empty(len(z), np.int64)
    position[order] = np.arange(len(z))
    kept = neighbours[keep]
    renumbered = np.where(kept >= 0, position[np.maximum(kept, 0)], -1)
    return z[order], renumbered, np.sort(position[fitted[keep[fitted]]]), lone[order]


def choose_vocabulary(z, *, k_range, neighbours=None, merge=True, min_weight=0.0, sample=None,
                      seed=0, floor=None, heavier=None, **options):
    """The vocabulary (mixture and components' tokens) of the shortest description.

    Parameters
    ----------
    z : (N, D) ndarray of float
        Normalised features.
    k_range : tuple of int
        Mixture components tried, inclusive.
    neighbours : (S, J) array_like of int, optional
        As for :func:`structure_bits`; the mixtures are fitted on the first ``S`` rows (the coded ones), less the
        patches of :func:`motifgram.engine.kinds.patchy_tokens` and their neighbours (while they are fewer than half
        of them).
    merge : bool
        Score every level of each mixture's merge sequence (components of any overlap stay separate tokens
        unless merging them shortens the description); false keeps one token per component.
    min_weight : float
        A mixture (beyond ``k_range[0]`` components) with a component lighter than this is not a candidate;
        nor is one with a component of fewer rows than its covariance needs
        (:func:`motifgram.engine.mixture.min_component_size`).
    sample : (M,) ndarray of int, optional
        Rows (of the coded ones) the candidate mixtures are fitted on (all coded rows by default; every
        candidate is scored on all rows); the chosen number of components is then refitted on every row and its
        merge levels scored again.
    seed : int
    floor : (D, D) ndarray, optional
        The features' precision as a covariance (see :func:`description_length`); only vocabularies whose
        tokens are :func:`resolved` at it are candidates.
    heavier : (D,) ndarray, optional
        With ``floor``: the direction of more scattering in ``z``; the :func:`rare_kinds` of the shortest
        vocabulary are then tokens of their own.
    **options
        ``n_init``, ``max_iter``, ``covariance`` for :func:`motifgram.engine.mixture.fit_mixture`.

    Returns
    -------
    best : Candidate
    report : dict
        ``mixture_components``, ``tokens``, ``description_length_bits`` (model, structure, data, total), the
        best candidate of each other token count (``alternatives``: tokens -> total bits), ``runner_up_bits``
        (how much longer the best other token count is; ``None`` if there is none), ``close_call`` and
        ``rare_kinds`` (the columns of each token added by :func:`rare_kinds`; ``tokens`` counts them) and
        ``patch_columns`` (the coded rows left out as patches of contamination, see the module docstring).
    """
    k_min, k_max = (int(v) for v in k_range)
    if not 1 <= k_min <= k_max:
        raise ValueError(f"k_range must be (k_min, k_max) with 1 <= k_min <= k_max, got {k_range!r}")
    if neighbours is not None:
        neighbours = np.asarray(neighbours, dtype=np.int64).reshape(len(neighbours), -1)
    n_coded = len(z) if neighbours is None else len(neighbours)
    fitted = np.arange(n_coded) if sample is None else np.asarray(sample)
    reach = -np.inf  # the most scattering a patch's column showed, along heavier
    lone = np.zeros(len(z), bool)  # the columns of patchy tokens bonded to none of their own token
    while True:
        candidates, components, best = _search(z, fitted, k_min, k_max, neighbours, merge, floor, min_weight, seed,
                                               options, refit=sample is not None)
        if neighbours is None:
            break
        labels = token_labels(best, z, floor)
        spread = None if floor is None or heavier is None else functools.partial(spread_along, z, floor, heavier)
        coded = labels[: len(neighbours)]
        bonded = (np.where(neighbours >= 0, labels[np.maximum(neighbours, 0)], -1) == coded[:, None]).any(axis=1)
        patchy = np.isin(coded, patchy_tokens(labels, neighbours, best.n_tokens, spread=spread))
        if one_main_kind(coded, best.n_tokens):
            members = patchy  # a kind there sits alone: every column of a patchy token is contamination's
        else:
            # a kind can share a patchy token with contamination (MoS2's Se-bearing columns): the patches are its
            # columns bonded to one of their own token, and a minor token mostly of its lone columns refitted is
            # the rest of the patches unless they are one kind's measurement or sit on a main kind's sites
            members = patchy & bonded
            for t in np.unique(coded[lone[: len(coded)]]):
                own = np.flatnonzero(coded == t)
                if (len(own) < MAIN_KIND_SHARE * len(coded) and lone[own].mean() > 0.5
                        and spread(own) > RESOLUTION and not on_kind_sites(labels, neighbours, own)):
                    members[own] = True
            lone[: len(coded)] |= patchy & ~bonded
        around = neighbours[members]
        area = members.copy()
        area[around[(around >= 0) & (around < len(neighbours))]] = True
        if not area.any() or len(neighbours) - area.sum() < n_coded / 2:
            break
        if heavier is not None:
            reach = max(reach, float(np.max(z[: len(neighbours)][members | patchy] @ heavier)))
        log.info("%d column(s) in patches bonded to each other beyond chance (contamination): the search again "
                 "without them and their %d neighbours", int(members.sum()), int(area.sum() - members.sum()))
        z, neighbours, fitted, lone = _without_rows(z, neighbours, fitted, ~area, lone)
    n_left = n_coded if neighbours is None else len(neighbours)  # the rows still coded, clear of patches
    rare = [] if floor is None or heavier is None else rare_kinds(best, z, n_coded=n_left, floor=floor,
                                                                   heavier=heavier, beyond=reach)
    if rare:  # the search again with the rare kinds' rows as tokens of their own, fitted without them
        log.info("%d column(s) of rare kinds beyond every main token: tokens of their own %s",
                 sum(map(len, rare)), [len(c) for c in rare])
        candidates, components, best = _search(z, np.setdiff1d(fitted, np.concatenate(rare)), k_min, k_max,
                                               neighbours, merge, floor, min_weight, seed, options,
                                               refit=sample is not None, rare=rare)
    alternatives = {}
    for c in candidates:
        alternatives[c.n_tokens] = min(alternatives.get(c.n_tokens, np.inf), c.total_bits)
    others = [bits for t, bits in alternatives.items() if t != best.n_tokens]
    runner_up = min(others) - best.total_bits if others else None
    report = {
        "mixture_components": len(best.mixture.weights),
        "tokens": best.n_tokens,
        "description_length_bits": {"model": round(best.model_bits, 1), "structure": round(best.structure_bits, 1),
                                    "data": round(best.data_bits, 1), "total": round(best.total_bits, 1)},
        "alternatives": {t: round(bits, 1) for t, bits in sorted(alternatives.items())},
        "runner_up_bits": None if runner_up is None else round(runner_up, 1),
        "close_call": runner_up is not None and runner_up < CLOSE_CALL_BITS,
        "rare_kinds": [len(c) for c in rare],
        "patch_columns": n_coded - n_left,
    }
    log.info("description length by mixture components %s; by token count %s; chose %d tokens from %d components",
             {k: round(v, 1) for k, v in components.items()}, report["alternatives"], best.n_tokens,
             len(best.mixture.weights))
    if report["close_call"]:
        log.warning(
            "the token count rests on a close call: %d tokens describe the data in %.1f bits fewer than %s "
            "(below %.0f bits). Check the token gallery (tokens.png); tokens.k fixes the count.",
            best.n_tokens, runner_up, "the best other count", CLOSE_CALL_BITS,
        )
    return best, report
