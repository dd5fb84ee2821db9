"""One token vocabulary for a comparison: a joint or reference token model, or matching each run's own tokens.

Each run learns its own tokens, so two grammars speak different alphabets. :func:`common_vocabulary` puts the
items of a comparison on one vocabulary (``motifgram compare --tokens``):

``joint``
    One token model fitted (:func:`motifgram.engine.tokens.learn_tokens`, ``k`` auto) on a seeded sample of
    every item's stored features (``features.npz``, :mod:`motifgram.engine.featurestore`; at most
    ``min(JOINT_SAMPLE, BIC_SAMPLE // N)`` atoms from each of the N items, so each item weighs alike and the
    whole sample stays within :data:`motifgram.engine.tokens.BIC_SAMPLE` rows: the mixture is then fitted on
    the sample itself, one compiled EM shape, instead of being scanned on a subsample and refitted on all rows;
    each item's rows are drawn with a seed of its name, so the fit does not depend on the order in which the
    items are given; the last few fits are kept, so the same runs compared again fit nothing); its BIC scan
    tries up to as many mixture components as the items' own tokens summed (:func:`joint_k_max`, at least
    :data:`JOINT_K_MAX`, one run's default): the seven real micrographs' runs hold 12 own tokens and BIC still
    fell at 8 components, where which site classes shared a component was a near-tie that the fit's seed
    decided (benchmarks/README.md, "Issue 20: a joint fit steady under its seed"). Every atom of every item is
    then re-tokenised with it and each item's grammar re-induced from its re-tokenised atom graphs (with the
    run's own ``grammar`` settings), so the same structure gives the same rules whatever each run learned
    alone. Features that describe a disc about each site (Zernike invariants, intensity quantiles) are one
    feature space only for discs of one rule: ``features.patch_size: auto`` gives every micrograph the disc
    of its period (period + 1 px, continuous), a number gives that disc whatever the period. A joint model
    over discs of several rules can separate micrographs of one structure by their disc, and the vocabulary's
    source says when it pooled them. (Discs rounded to an odd side did so even under ``auto``: a random
    carbon network's period, its diffuse ring's spacing, is 10.3-11.5 px at the test scenarios' sampling, so
    its micrographs got discs of 11 or 13 px, and the two discs' atoms two tokens; benchmarks/README.md,
    "Issue 20: one disc for the defect series".)
``RUN``
    A reference run's token model (``tokens.npz``, the one ``tokens: {model: RUN}`` reuses) assigns the
    tokens instead of a joint fit; the grammars are re-induced as for ``joint``.
``own``
    Each item keeps its tokens and grammar; pairs are matched by :func:`align_tokens` (below).

Re-expressed items get their disorder index from their grammar in the common vocabulary: the ring-word entropy
depends on the vocabulary, so indices of runs with their own vocabularies are not comparable (one run of graphene
at 0.5 % defects that learned two tokens measured 0.30, its replicate with one token 0.13), in one vocabulary they
are.
``auto``
    ``joint`` when every item has stored features of one kind, else ``own`` (the report says why).

How well the tokens matched is reported per item: the disc diameters of its features (``disc_diameter_px``, for
the descriptors that describe a disc), the mean posterior confidence of the common tokens and the
*agreement* of the item's own tokens with them, ``min(sum_own max_common n, sum_common max_own n) / N`` over
the contingency table ``n`` of own against common tokens (1: the two vocabularies are one relabelling of the
other; a run whose one token the common model splits in two scores the larger half's share).

Matching own tokens
-------------------
:func:`align_tokens` matches two token models by their centroids in *raw* rotation-invariant units (the
Zernike magnitudes ``|A_nm|``): a token model's token means live in its own standardised and whitened PCA space
``z = ((x - mean) / scale) @ P``, and :func:`token_centroids` maps them back with the pseudo-inverse of the
projection, ``x = (z @ pinv(P)) * scale + mean`` (exact within the kept principal subspace). Two centroids are
compared by their *relative distance* ``‖μa − μb‖ / sqrt(½(‖μa‖² + ‖μb‖²))``, matched one-to-one by the
Hungarian algorithm, and a match farther apart than ``max_distance`` (default 0.4) is dropped. On simulated
data the same species in two runs lie at 0.03–0.08, the halves of a graphene token split in two at 0.2–0.27,
graphene vs. a carbon random network at 0.32–0.37, graphene vs. MoS2 at ≥ 0.22 and vs. perovskite at ≥ 0.6.
:func:`rename_tokens` rewrites a grammar into the other vocabulary; its unmatched tokens become ``X_<name>``,
which no token of the other run carries.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from motifgram.engine.errors import GrammarError, MotifgramError
from motifgram.engine.featurestore import reference_token_model
from motifgram.engine.tokens import BIC_SAMPLE, TokenModel, assign_tokens, learn_tokens
from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.items import Comparable
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import TokenSymbol, is_valid_name

__all__ = ["TokenAlignment", "Vocabulary", "token_centroids", "align_tokens", "rename_tokens",
           "common_vocabulary", "joint_k_max", "DEFAULT_MAX_TOKEN_DISTANCE", "JOINT_SAMPLE",
           "JOINT_K_MAX"]

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKEN_DISTANCE = 0.4
"""Largest relative centroid distance at which two tokens of different runs are matched."""
JOINT_SAMPLE = 4000
"""Most atoms per item in the joint token fit's sample (``BIC_SAMPLE // N`` for N items when that is fewer)."""
JOINT_K_MAX = 8
"""Fewest mixture components the joint fit's BIC scan may reach (one run's default ``tokens.k_range``)."""
_UNMATCHED = "X_"
#: Descriptors whose features describe a disc about each site, so that they depend on its diameter.
_DISC_DESCRIPTORS = ("zernike", "zernike_context", "intensity")


@dataclass(frozen=True)
class TokenAlignment:
    """A one-to-one matching of the tokens of vocabulary A to those of vocabulary B.

    Attributes
    ----------
    mapping : dict of str to str
        Token of A -> its matched token of B.
    unmatched_a, unmatched_b : tuple of str
        Tokens left without a partner.
    distances : dict of str to float
        Token of A -> relative centroid distance to its partner (empty when aligned by name).
    method : str
        ``"centroids"``, ``"same model"`` or ``"names"`` (no token models: equal names match).
    """

    mapping: dict[str, str]
    unmatched_a: tuple[str, ...]
    unmatched_b: tuple[str, ...]
    distances: dict[str, float]
    method: str

    @property
    def is_identity(self) -> bool:
        """Every token matched to the token of the same name."""
        return not self.unmatched_a and not self.unmatched_b and all(a == b for a, b in self.mapping.items())

    def inverse(self) -> TokenAlignment:
        """The alignment from B to A."""
        return TokenAlignment({b: a for a, b in self.mapping.items()}, self.unmatched_b, self.unmatched_a,
                              {self.mapping[a]: d for a, d in self.distances.items()}, self.method)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"method": self.method, "matched": dict(self.mapping), "unmatched_a": list(self.unmatched_a),
                "unmatched_b": list(self.unmatched_b),
                "distances": {k: round(float(v), 5) for k, v in self.distances.items()}}


def token_centroids(model: TokenModel) -> np.ndarray:
    """Each token's mean mapped back to raw rotation-invariant units.

    Parameters
    ----------
    model : TokenModel
        Token means (:meth:`TokenModel.token_means`: the weight-averaged means of the mixture components
        merged into each token) live in the normalised space ``z = ((x - feature_mean) / feature_scale) @
        projection``.

    Returns
    -------
    (T, M) ndarray of float64
        ``(token_means @ pinv(projection)) * feature_scale + feature_mean``, one row per token (in the order
        of ``model.names``): the centroid in units of the invariants ``|A_nm|`` (M = number of Zernike
        moments), exact within the model's kept principal subspace.
    """
    back = np.linalg.pinv(np.asarray(model.projection, dtype=np.float64))  # (D, M)
    return (model.token_means() @ back) * model.feature_scale + model.feature_mean


def align_tokens(model_a: TokenModel | None, model_b: TokenModel | None, *,
                 max_distance: float = DEFAULT_MAX_TOKEN_DISTANCE,
                 names_a: Sequence[str] | None = None, names_b: Sequence[str] | None = None) -> TokenAlignment:
    """Match the tokens of two vocabularies by their centroids (Hungarian algorithm).

    Parameters
    ----------
    model_a, model_b : TokenModel or None
        The two token models. When either is missing, tokens are matched by equal name (``names_a``,
        ``names_b`` give the vocabularies then); the same model object matches itself exactly.
    max_distance : float
        Matches with a relative centroid distance above this are dropped (see the module docstring).
    names_a, names_b : sequence of str, optional
        Vocabularies for name matching (default: the models' names).

    Returns
    -------
    TokenAlignment

    Notes
    -----
    The cost of pairing token ``i`` of A with ``j`` of B is ``‖μa_i − μb_j‖ / sqrt(½(‖μa_i‖² + ‖μb_j‖²))``
    with the centroids of :func:`token_centroids`; :func:`scipy.optimize.linear_sum_assignment` minimises the
    total over one-to-one pairings, pairs above ``max_distance`` costing a constant so they never displace
    a valid pair. Models with different descriptors (:attr:`TokenModel.descriptor`) or Zernike orders
    (invariant counts) share no feature space: nothing matches. ``max_distance`` was calibrated on the
    plain invariants (``zernike``); ``zernike_context`` centroids are norm-scaled invariants and two peak
    heights, on which unrelated tokens lie closer (0.2-0.38 measured between STO and TMD tokens).
    """
    names_a = tuple(names_a if names_a is not None else (model_a.names if model_a is not None else ()))
    names_b = tuple(names_b if names_b is not None else (model_b.names if model_b is not None else ()))
    if model_a is None or model_b is None or model_a is model_b:
        common = [t for t in names_a if t in set(names_b)]
        method = "same model" if model_a is not None and model_a is model_b else "names"
        return TokenAlignment({t: t for t in common}, tuple(t for t in names_a if t not in common),
                              tuple(t for t in names_b if t not in common),
                              {t: 0.0 for t in common} if method == "same model" else {}, method)
    if model_a.descriptor != model_b.descriptor:
        log.info("token models describe sites differently (%s and %s): no tokens can be matched",
                 model_a.descriptor, model_b.descriptor)
        return TokenAlignment({}, tuple(model_a.names), tuple(model_b.names), {}, "centroids")
    ca, cb = token_centroids(model_a), token_centroids(model_b)
    if ca.shape[1] != cb.shape[1]:
        log.info("token models use %d and %d invariants (different Zernike orders): no tokens can be matched",
                 ca.shape[1], cb.shape[1])
        return TokenAlignment({}, tuple(model_a.names), tuple(model_b.names), {}, "centroids")
    diff = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2)
    norm = np.sqrt(0.5 * (np.sum(ca**2, axis=1)[:, None] + np.sum(cb**2, axis=1)[None, :]))
    dist = diff / np.maximum(norm, 1e-300)
    cost = np.where(dist <= max_distance, dist, max_distance + 1.0)
    rows, cols = linear_sum_assignment(cost)
    keep = dist[rows, cols] <= max_distance
    mapping = {model_a.names[i]: model_b.names[j] for i, j in zip(rows[keep], cols[keep], strict=True)}
    distances = {model_a.names[i]: float(dist[i, j]) for i, j in zip(rows[keep], cols[keep], strict=True)}
    matched_b = set(mapping.values())
    return TokenAlignment(mapping, tuple(t for t in model_a.names if t not in mapping),
                          tuple(t for t in model_b.names if t not in matched_b), distances, "centroids")


def _unmatched_name(name: str, taken: set[str]) -> str:
    new = f"{_UNMATCHED}{name}"
    while new in taken or not is_valid_name(new):
        new += "_"
    return new


def rename_tokens(grammar: Grammar, mapping: Mapping[str, str], *, extra_tokens: Iterable[str] = ()) -> Grammar:
    """Rewrite a grammar into another token vocabulary.

    Parameters
    ----------
    grammar : Grammar
    mapping : mapping of str to str
        Old token name -> new name (one-to-one, e.g. :attr:`TokenAlignment.mapping`).
    extra_tokens : iterable of str
        Tokens of the other vocabulary to declare as well, with abundance 0 (so that its micrographs parse;
        their rings fall back to wildcard or unknown-ring codes).

    Returns
    -------
    Grammar
        Tokens renamed (abundances kept); tokens without a partner become ``X_<name>`` (with ``_`` appended
        until the name is free), which cannot match the other vocabulary. Ring words are re-canonicalised;
        rule names, counts, motifs and domains are unchanged.

    Raises
    ------
    GrammarError
        ``mapping`` sends two tokens to one name, or the result is inconsistent.
    """
    if len(set(mapping.values())) != len(mapping):
        raise GrammarError("rename_tokens: the token mapping must be one-to-one")
    taken = set(mapping.values()) | set(extra_tokens) | set(grammar.symbols)
    new_name = {}
    for t in grammar.tokens:
        new_name[t.name] = mapping[t.name] if t.name in mapping else _unmatched_name(t.name, taken)
        taken.add(new_name[t.name])
    tokens = [TokenSymbol(new_name[t.name], t.abundance) for t in grammar.tokens]
    have = {t.name for t in tokens}
    tokens += [TokenSymbol(t, 0.0) for t in dict.fromkeys(extra_tokens) if t not in have]
    rings = [r if r.is_wildcard else replace(r, word=tuple(new_name[t] for t in r.word)) for r in grammar.rings]
    return Grammar(grammar.name, grammar.version, tuple(tokens), tuple(rings), grammar.motifs,
                   grammar.domains).validate()


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """How a comparison's items were put on one token vocabulary (:func:`common_vocabulary`).

    Attributes
    ----------
    method : str
        ``"joint"``, ``"reference"`` or ``"own"``.
    model : TokenModel or None
        The common token model (None for ``own``).
    source : str
        Where the model came from: ``"joint fit over N items"``, the reference run's path, or why each item
        keeps its own tokens.
    match : dict of str to dict
        Item name -> ``{"own_tokens", "agreement", "mean_confidence"}`` and, for features of a disc,
        ``"disc_diameter_px"`` (the discs of its micrographs, px, to 0.01) (empty for ``own``).
    """

    method: str
    model: TokenModel | None
    source: str
    match: dict

    def to_dict(self) -> dict:
        """JSON-ready form (``tokens`` of ``motifgram compare --json``)."""
        return {"method": self.method, "source": self.source,
                "names": list(self.model.names) if self.model is not None else None,
                "match": {name: {k: (round(v, 5) if isinstance(v, float) else v) for k, v in m.items()}
                          for name, m in self.match.items()}}


def _agreement(own: np.ndarray, common: np.ndarray) -> float:
    """``min`` of the two purities of the contingency table of own against common tokens (module docstring)."""
    if len(own) == 0:
        return 1.0
    _, a = np.unique(own, return_inverse=True)
    _, b = np.unique(common, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)
    return float(min(table.max(axis=1).sum(), table.max(axis=0).sum()) / len(own))


def _why_not_joint(items: Sequence[Comparable]) -> str:
    """Empty when every item has usable stored features of one kind, else the reason."""
    for item in items:
        where = item.path if item.path is not None else item.name
        if item.features is None or not item.graphs:
            return f"{where} has no stored features (features.npz; runs written before it existed)"
        for image, graph in item.graphs.items():
            if len(item.features.images.get(image, ())) != graph.n_atoms:
                return f"{where}: features.npz does not match atoms.csv for image {image}"
    kinds = {(item.features.descriptor, item.features.n_features) for item in items}
    if len(kinds) > 1:
        return "the items' features differ (" + ", ".join(f"{d} x{m}" for d, m in sorted(kinds)) + ")"
    return ""


def _express(item: Comparable, model: TokenModel) -> tuple[Comparable, dict]:
    """``item`` re-tokenised with ``model`` and its grammar re-induced from the re-tokenised graphs."""
    names = np.asarray(model.names)
    graphs, own, common, confidence = {}, [], [], []
    for image, graph in item.graphs.items():
        labels, conf = assign_tokens(model, item.features.images[image])
        graphs[image] = graph.with_tokens(names[labels])
        own.append(np.asarray(graph.tokens).astype(str))
        common.append(labels)
        confidence.append(conf)
    induced = induce_grammar(graphs.values(), name=item.grammar.name, min_count=item.induction.get("min_count", 2),
                             max_motif_size=item.induction.get("max_motif_size", 6),
                             min_domain_size=item.min_domain_size)
    expressed = Comparable.from_graphs(item.name, induced.grammar, graphs, token_model=model, group=item.group,
                                       min_domain_size=item.min_domain_size, path=item.path, features=item.features,
                                       moire=item.moire, induction=item.induction)
    match = {"own_tokens": len(item.grammar.tokens),
             "agreement": _agreement(np.concatenate(own), np.concatenate(common)),
             "mean_confidence": float(np.mean(np.concatenate(confidence))) if item.graphs else None}
    if model.descriptor in _DISC_DESCRIPTORS:
        match["disc_diameter_px"] = sorted({round(d, 2) for d, _ in _discs(item)})
    return expressed, match


def _discs(item: Comparable) -> list[tuple[float, str]]:
    """``(diameter px, rule)`` of the feature disc of each of the item's micrographs, as its run recorded them: the
    rule is ``auto`` (``features.patch_size: auto``, the disc follows each micrograph's period) or the fixed
    diameter; runs from before the disc was continuous recorded an odd side only, each its own rule."""
    discs = []
    for m in item.images.values():
        if "disc_diameter_px" in m:
            fixed = m.get("disc_fixed_px")
            discs.append((float(m["disc_diameter_px"]), "auto" if fixed is None else f"{fixed:g} px"))
        elif "patch_size_px" in m:
            discs.append((float(m["patch_size_px"]), f"{m['patch_size_px']:g} px"))
    return discs


def joint_k_max(items: Sequence[Comparable]) -> int:
    """Most mixture components the joint token fit's BIC scan tries: the items' own tokens summed, at least
    :data:`JOINT_K_MAX` (module docstring)."""
    return max(JOINT_K_MAX, sum(len(item.grammar.tokens) for item in items))


@functools.lru_cache(maxsize=4)
def _joint_fit(rows: bytes, dtype: str, n_features: int, seed: int, descriptor: str, k_max: int) -> TokenModel:
    """The joint token model of a sample (its rows' bytes), kept for the comparisons that follow: the same runs
    compared again (against other references, in another order) draw the same sample and fit nothing anew."""
    sample = np.frombuffer(rows, dtype=dtype).reshape(-1, n_features)
    return learn_tokens(sample, k="auto", k_range=(1, k_max), seed=seed, descriptor=descriptor)[0]


def common_vocabulary(items: Sequence[Comparable], tokens: str | Path = "auto", *,
                      seed: int = 0) -> tuple[list[Comparable], Vocabulary]:
    """Put the items on one token vocabulary (module docstring).

    Parameters
    ----------
    items : sequence of Comparable
    tokens : {"auto", "joint", "own"} or path
        The alignment, or a run directory (or ``tokens.npz``) whose token model to use.
    seed : int
        Seed of the joint fit's sample and mixture.

    Returns
    -------
    items : list of Comparable
        The items re-expressed in the common vocabulary (the given ones for ``own``).
    vocabulary : Vocabulary

    Raises
    ------
    MotifgramError
        ``joint`` or a reference model asked for but an item lacks stored features, or the features do not
        fit the reference model (the message names the item and the fix).
    """
    if str(tokens) == "own":
        return list(items), Vocabulary("own", None, "each item's own tokens, matched pairwise by centroids", {})
    why = _why_not_joint(items)
    if str(tokens) == "auto":
        if why or len(items) < 2:
            why = why or "a single item"
            log.info("comparing in each item's own tokens: %s", why)
            return list(items), Vocabulary("own", None, f"each item's own tokens, matched pairwise by centroids "
                                                        f"(no joint vocabulary: {why})", {})
        tokens = "joint"
    if why:
        raise MotifgramError(f"--tokens {tokens}: {why}; run those micrographs again with this version of "
                             "'motifgram run' (it writes features.npz) or compare with --tokens own")
    descriptor, n_features = items[0].features.descriptor, items[0].features.n_features
    if str(tokens) == "joint":
        # the sample does not depend on the items' order: each item's rows are drawn with a seed of its name
        ordered = sorted(items, key=lambda it: it.name)
        per_item = max(1, min(JOINT_SAMPLE, BIC_SAMPLE // len(items)))
        sample = np.concatenate([it.features.sample(per_item, seed + zlib.crc32(it.name.encode()))
                                 for it in ordered])
        model = _joint_fit(sample.tobytes(), sample.dtype.str, n_features, seed, descriptor, joint_k_max(items))
        method, source = "joint", f"joint fit over {len(items)} items ({len(sample)} atoms, {descriptor})"
        rules = sorted({rule for item in items for _, rule in _discs(item)}) if descriptor in _DISC_DESCRIPTORS else []
        if len(rules) > 1:
            source += (f"; features of discs {', '.join(rules)} pooled: a token can separate the micrographs of one "
                       "structure by their disc (give the runs one features.patch_size)")
            log.warning("the joint token model pools %s features of discs %s", descriptor, ", ".join(rules))
    else:
        model = reference_token_model(tokens, descriptor=descriptor)
        if len(model.feature_mean) != n_features:
            raise MotifgramError(f"--tokens {tokens}: its token model takes {len(model.feature_mean)} features "
                                 f"per atom but the items store {n_features}; use a run of the same features")
        method, source = "reference", str(tokens)
    out, match = [], {}
    for item in items:
        expressed, match[item.name] = _express(item, model)
        out.append(expressed)
    log.info("common vocabulary (%s): %s", method, ", ".join(model.names))
    return out, Vocabulary(method, model, source, match)
