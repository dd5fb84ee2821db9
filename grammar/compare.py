"""Compare motif grammars across materials: distances on several levels, a disorder ranking, classification.

Items are run directories (``grammar.txt``, ``tokens.npz``, ``features.npz``, ``summary.json``,
``atoms.csv``/``bonds.csv``/``rings.csv``) or bare grammar files, loaded with
:func:`motifgram.grammar.items.load_comparable`. :func:`compare` puts them on one token vocabulary
(:func:`motifgram.grammar.align.common_vocabulary`: a joint token model over their stored features, a
reference run's model, or each run's own tokens matched pairwise), compares every pair and classifies them
against references (:mod:`motifgram.grammar.classify`); :func:`motifgram.grammar.table.format_table` prints
the result (``motifgram compare``; JSON per INTERFACE.md via :meth:`Comparison.to_json`).

Distances between two items A and B
-----------------------------------
Each in [0, 1], None when a level is not measured on both sides (:mod:`motifgram.grammar.items` defines the
first four):

``composition``
    Jensen–Shannon divergence of the token shares.
``topology``
    Jensen–Shannon divergence of the ring-size distributions ``p_n``.
``arrangement``
    Warren–Cowley short-range order over bonds and second neighbours.
``mesoscale``
    Moiré wavenumbers when both runs measured a moiré.
``grammar``
    The grammars themselves: the mean of the rule-usage divergences of rings and of motifs with domains
    (:mod:`motifgram.grammar.usage`) and the cross
    description length squashed to ``s / (1 + s)``, ``s = ½ (max(ΔDL(A→B), 0) + max(ΔDL(B→A), 0))`` with
    ``ΔDL(A→B)`` the bits per atom of B's micrographs parsed with A's grammar (in B's vocabulary) minus with B's
    own (atom-weighted over B's images); the cross description length is skipped (``None``, with the reason
    in ``cross_dl_note``) for a bare grammar, and counts 1 when no token could be matched.

Which levels are computed
-------------------------
The four structural levels are cheap (statistics of the stored graphs). The grammar level is not: its cross
description length parses every item's micrographs with every other item's grammar, N (N − 1) parses for N
items (about half the time of a comparison of 20 small runs; benchmarks/README.md, "Issue 20"). A level is
therefore computed only when it is weighted in the combined distance (:data:`WEIGHTS`) or asked for
(``levels=``, ``motifgram compare --levels grammar``); a level not computed is None for every pair (null in the
JSON, with the cross description lengths), and :attr:`Comparison.levels_computed` lists the ones that were
(``levels_computed`` in the JSON).

The combined distance is the weighted mean over the levels measured for the pair, weights :data:`WEIGHTS`:
1 for the four structural levels (each lies in [0, 1] and is 0 for identical statistics; none is privileged)
and 0 for ``grammar``, which is reported per pair when computed but not combined: the rules chosen and the
cross description length of grammars induced from single micrographs differ between replicate micrographs of
one material as much as between materials (benchmarks/README.md, "Comparing grammars"). The weights are checked
by a calibration test (tests/test_compare.py): replicate micrographs of one material lie nearer each other than
any two of the different materials of the test sets. Two bare grammars (no micrographs) are compared by their
mean rule-usage divergence alone.

Disorder and classification
---------------------------
An item's disorder is the mean ``disorder`` index of its images (:mod:`motifgram.grammar.disorder`; for a
bare grammar :func:`motifgram.grammar.usage.grammar_disorder_estimate`). It ranks defect densities, not twist:
a twisted bilayer is an ordered superstructure, so twist is a mesoscale *distance*, not disorder. With
references every item gets the label of its nearest reference, or ``unknown`` beyond the references' own
spread (:mod:`motifgram.grammar.classify`); without, the items are clustered hierarchically (average
linkage).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from motifgram.engine.errors import MotifgramError
from motifgram.engine.graph import AtomGraph
from motifgram.grammar.align import (
    DEFAULT_MAX_TOKEN_DISTANCE,
    TokenAlignment,
    Vocabulary,
    align_tokens,
    common_vocabulary,
    rename_tokens,
)
from motifgram.grammar.classify import Classification, classify, unknown_threshold
from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.items import Comparable, level_distances, load_comparable
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import parse_graph
from motifgram.grammar.usage import rule_differences, rule_keys, usage_divergence

__all__ = ["PairComparison", "Comparison", "cross_description_length", "compare_pair", "compare", "WEIGHTS",
           "computed_levels"]

log = logging.getLogger(__name__)

WEIGHTS = {"composition": 1.0, "topology": 1.0, "arrangement": 1.0, "mesoscale": 1.0, "grammar": 0.0}
"""Weight of each level in the combined distance (module docstring)."""


def computed_levels(levels: Iterable[str] | None = None) -> tuple[str, ...]:
    """The levels a comparison computes: those weighted in :data:`WEIGHTS` and those asked for.

    Parameters
    ----------
    levels : iterable of str, optional
        Levels to compute although their weight is 0 (e.g. ``["grammar"]``).

    Returns
    -------
    tuple of str
        In the order of :data:`WEIGHTS`.

    Raises
    ------
    MotifgramError
        An unknown level name.
    """
    asked = set(levels or ())
    unknown = sorted(asked - set(WEIGHTS))
    if unknown:
        raise MotifgramError(f"unknown level(s) {', '.join(map(repr, unknown))}; the levels are "
                             f"{', '.join(WEIGHTS)}")
    return tuple(k for k, w in WEIGHTS.items() if w > 0 or k in asked)


class _Cache:
    """Per-comparison settings and caches: the levels to compute, own bits per atom of each item, token
    alignments."""

    def __init__(self, max_token_distance: float, levels: tuple[str, ...]):
        self.max_token_distance = max_token_distance
        self.levels = levels
        self.own: dict[int, float | None] = {}
        self.alignments: dict[tuple[int, int], TokenAlignment] = {}

    def alignment(self, a: Comparable, b: Comparable) -> TokenAlignment:
        key = (id(a), id(b))
        if key not in self.alignments:
            back = self.alignments.get((id(b), id(a)))
            self.alignments[key] = back.inverse() if back is not None else align_tokens(
                a.token_model, b.token_model, max_distance=self.max_token_distance,
                names_a=[t.name for t in a.grammar.tokens], names_b=[t.name for t in b.grammar.tokens])
        return self.alignments[key]

    def own_bits(self, item: Comparable) -> float | None:
        if id(item) not in self.own:
            self.own[id(item)] = _own_bits_per_atom(item)
        return self.own[id(item)]


def _own_bits_per_atom(item: Comparable) -> float | None:
    """Atom-weighted bits per atom of the item's graphs under its own grammar (from summary.json if there)."""
    if not item.graphs:
        return None
    if all(item.images.get(i, {}).get("bits_per_atom") is not None and item.images[i].get("n_atoms") is not None
           for i in item.graphs):
        atoms = sum(item.images[i]["n_atoms"] for i in item.graphs)
        bits = sum(item.images[i]["bits_per_atom"] * item.images[i]["n_atoms"] for i in item.graphs)
        return bits / atoms if atoms else None
    return _bits_per_atom(item.grammar, item.graphs.values(), item.min_domain_size)


def _bits_per_atom(grammar: Grammar, graphs: Iterable[AtomGraph], min_domain_size: int | None) -> float | None:
    bits = atoms = 0.0
    for graph in graphs:
        bits += parse_graph(grammar, graph, min_domain_size=min_domain_size).data_bits
        atoms += graph.n_atoms
    return bits / atoms if atoms else None


def cross_description_length(a: Comparable, b: Comparable, alignment: TokenAlignment | None = None, *,
                             own_bits_b: float | None = None) -> tuple[float | None, str]:
    """Extra bits per atom needed to describe B's micrographs with A's grammar instead of B's own.

    Parameters
    ----------
    a, b : Comparable
    alignment : TokenAlignment, optional
        A's tokens -> B's (default: :func:`align_tokens` of their token models).
    own_bits_b : float, optional
        B's own bits per atom, if already known.

    Returns
    -------
    delta : float or None
        ``bpa(B | A renamed into B's tokens) − bpa(B | B)`` in bits per atom (atom-weighted over B's images);
        None when it cannot be computed.
    note : str
        Empty, or why it was skipped.
    """
    if not b.graphs:
        return None, f"{b.name} has no atom graphs (a bare grammar)"
    if alignment is None:
        alignment = align_tokens(a.token_model, b.token_model, names_a=[t.name for t in a.grammar.tokens],
                                 names_b=[t.name for t in b.grammar.tokens])
    if not alignment.mapping:
        return None, f"no token of {a.name} matches a token of {b.name}: vocabularies cannot be aligned"
    renamed = rename_tokens(a.grammar, alignment.mapping, extra_tokens=[t.name for t in b.grammar.tokens])
    cross = _bits_per_atom(renamed, b.graphs.values(), a.min_domain_size)
    own = own_bits_b if own_bits_b is not None else _own_bits_per_atom(b)
    if cross is None or own is None:
        return None, f"{b.name} has no atoms"
    return cross - own, ""



# --------------------------------------------------------------------------------------------------------------
# Pairs


@dataclass(frozen=True)
class PairComparison:
    """Everything computed for one pair of items.

    Attributes
    ----------
    a, b : str
        Item names.
    levels : dict of str to float or None
        Distance per level (``composition``, ``topology``, ``arrangement``, ``mesoscale``, ``grammar``); None
        where not measured or not computed (module docstring).
    jsd : dict of str to float
        Jensen–Shannon divergence of rule usage per tier (``tokens``, ``rings``, ``motifs``), in B's vocabulary.
    jsd_mean : float
        Unweighted mean over the tiers in ``jsd``.
    cross_dl_a_on_b, cross_dl_b_on_a : float or None
        Bits per atom of B's (A's) micrographs with A's (B's) grammar minus with its own; None when skipped or
        when the grammar level is not computed.
    cross_dl_note : str
        Why a cross description length was skipped (empty if none was).
    only_in_a, only_in_b : tuple of dict
        Rule differences (:func:`motifgram.grammar.usage.rule_differences`).
    alignment : TokenAlignment
        A's tokens -> B's.
    distance : float
        The combined distance (module docstring), in [0, 1].
    """

    a: str
    b: str
    levels: dict[str, float | None]
    jsd: dict[str, float]
    jsd_mean: float
    cross_dl_a_on_b: float | None
    cross_dl_b_on_a: float | None
    cross_dl_note: str
    only_in_a: tuple[dict, ...]
    only_in_b: tuple[dict, ...]
    alignment: TokenAlignment
    distance: float

    def to_dict(self, *, max_rules: int = 10) -> dict:
        """JSON-ready form (at most ``max_rules`` rule differences per side)."""
        return {
            "a": self.a, "b": self.b, "distance": round(self.distance, 6),
            "levels": {k: _round(v) for k, v in self.levels.items()},
            "jsd": {k: round(v, 6) for k, v in self.jsd.items()}, "jsd_mean": round(self.jsd_mean, 6),
            "cross_dl_bits_per_atom": {"a_on_b": _round(self.cross_dl_a_on_b), "b_on_a": _round(self.cross_dl_b_on_a)},
            "cross_dl_note": self.cross_dl_note,
            "only_in_a": [{**e, "weight": round(e["weight"], 6)} for e in self.only_in_a[:max_rules]],
            "only_in_b": [{**e, "weight": round(e["weight"], 6)} for e in self.only_in_b[:max_rules]],
            "n_only_in_a": len(self.only_in_a), "n_only_in_b": len(self.only_in_b),
            "tokens": self.alignment.to_dict(),
        }


def _round(value: float | None, digits: int = 6):
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def combined_distance(levels: Mapping[str, float | None]) -> float:
    """The weighted mean of the measured levels (:data:`WEIGHTS`); 0 when none is measured."""
    measured = [(WEIGHTS[k], v) for k, v in levels.items() if v is not None]
    total = sum(w for w, _ in measured)
    return float(sum(w * v for w, v in measured) / total) if total else 0.0


def compare_pair(a: Comparable, b: Comparable, *, max_token_distance: float = DEFAULT_MAX_TOKEN_DISTANCE,
                 levels: Iterable[str] | None = None) -> PairComparison:
    """Compare two items in their own vocabularies (matched by :func:`motifgram.grammar.align.align_tokens`).

    ``a`` and ``b`` may be the same object (distance 0 up to rounding of ``summary.json``). ``levels``: levels
    to compute besides the weighted ones (:func:`computed_levels`; ``["grammar"]`` for the cross description
    lengths).
    """
    return _compare_pair(a, b, _Cache(max_token_distance, computed_levels(levels)))


def _compare_pair(a: Comparable, b: Comparable, cache: _Cache) -> PairComparison:
    ab = cache.alignment(a, b)
    renamed_a = rename_tokens(a.grammar, ab.mapping)
    rename = {t.name: r.name for t, r in zip(a.grammar.tokens, renamed_a.tokens, strict=False)}
    keys_a, keys_b = rule_keys(renamed_a), rule_keys(b.grammar)
    usage_a = a.level_usage()
    if 0 in usage_a:
        usage_a[0] = {rename.get(t, t): c for t, c in usage_a[0].items()}
    usage_b = b.level_usage()
    jsd = usage_divergence(usage_a, keys_a, usage_b, keys_b)
    jsd_mean = float(np.mean(list(jsd.values()))) if jsd else 0.0
    only_a, only_b = rule_differences(usage_a, keys_a, usage_b, keys_b)
    levels = level_distances(a.levels.renamed(rename), b.levels)
    d_ab = d_ba = None
    notes = ""
    if "grammar" in cache.levels:
        d_ab, note_ab = cross_description_length(a, b, ab, own_bits_b=cache.own_bits(b))
        d_ba, note_ba = cross_description_length(b, a, cache.alignment(b, a), own_bits_b=cache.own_bits(a))
        notes = "; ".join(dict.fromkeys(n for n in (note_ab, note_ba) if n))
        deltas = [max(d, 0.0) for d in (d_ab, d_ba) if d is not None]
        grammar = [jsd[tier] for tier in ("rings", "motifs") if tier in jsd]
        if deltas:
            s = float(np.mean(deltas))
            grammar.append(s / (1.0 + s))
        elif a.graphs and b.graphs:  # graphs on both sides but vocabularies that do not align: nothing in common
            grammar.append(1.0)
        levels["grammar"] = float(np.mean(grammar)) if grammar else None
    levels = {k: (levels.get(k) if k in cache.levels else None) for k in WEIGHTS}
    if not any(v is not None for k, v in levels.items() if WEIGHTS[k] > 0):
        levels["arrangement"] = jsd_mean  # two bare grammars: their rule usage is all there is
    return PairComparison(a.name, b.name, levels, jsd, jsd_mean, d_ab, d_ba, notes, tuple(only_a), tuple(only_b),
                          ab, combined_distance(levels))


# --------------------------------------------------------------------------------------------------------------
# The whole comparison


@dataclass(frozen=True, eq=False)
class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    items : tuple of Comparable
        As compared (in the common vocabulary).
    distance : (N, N) ndarray of float64
        Combined distances, symmetric, 0 on the diagonal, in item order.
    pairs : dict of (int, int) to PairComparison
        Item index pairs ``(i, j)``, ``i < j``.
    ranking : tuple of str
        Item names, least to most disordered.
    classification : dict of str to Classification
        Item name -> nearest reference or unknown (empty without references).
    references : tuple of str
        Reference labels.
    linkage : (N-1, 4) ndarray of float64 or None
        Average-linkage clustering of the items (without references, N >= 2).
    vocabulary : Vocabulary
        How the items were put on one token vocabulary.
    spreads : dict of str to float
        Reference label -> largest distance between two of its micrographs (references of two or more).
    levels_computed : tuple of str
        The levels computed (:func:`computed_levels`); the others are None for every pair.
    """

    items: tuple[Comparable, ...]
    distance: np.ndarray
    pairs: dict[tuple[int, int], PairComparison]
    ranking: tuple[str, ...]
    classification: dict[str, Classification]
    references: tuple[str, ...]
    linkage: np.ndarray | None
    vocabulary: Vocabulary
    spreads: dict[str, float]
    levels_computed: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Item names in order."""
        return tuple(item.name for item in self.items)

    @property
    def metric(self) -> str:
        """How the distance was computed (one sentence)."""
        return ("weighted mean (weights " + ", ".join(f"{k} {w:g}" for k, w in WEIGHTS.items()) + ") of the "
                "measured levels: composition = Jensen-Shannon divergence (base 2) of token shares; topology = "
                "JSD of ring-size distributions; arrangement = Warren-Cowley short-range order: JSD of each "
                "token's neighbour-token distribution less its sampling expectation, mean over the tokens, "
                "over bonds and over second neighbours; mesoscale = "
                "|q_A - q_B|/(q_A + q_B) of moire wavenumbers; grammar = mean of the ring and motif "
                "rule-usage JSDs and s/(1+s), s = symmetric positive cross description length in bits per atom; "
                f"levels computed: {', '.join(self.levels_computed)}; "
                f"tokens: {self.vocabulary.method} ({self.vocabulary.source})")

    def level_matrix(self, level: str) -> list[list[float | None]]:
        """The N x N distances of one level (None where unmeasured or not computed; 0 on the diagonal)."""
        n = len(self.items)
        out: list[list[float | None]] = [[0.0] * n for _ in range(n)]
        for (i, j), pair in self.pairs.items():
            out[i][j] = out[j][i] = _round(pair.levels.get(level))
        return out

    def to_json(self) -> dict:
        """The ``motifgram compare --json`` document (INTERFACE.md), with extras (``levels``,
        ``levels_computed``, ``tokens``, ``pairs``, ``clustering``, per-item ``levels``)."""
        out = {
            "items": [
                {"name": item.name, "path": str(item.path) if item.path is not None else None, "group": item.group,
                 "disorder": round(item.disorder, 6), "disorder_source": item.disorder_source,
                 "measures": {k: round(v, 6) for k, v in item.measures().items()},
                 "n_images": len(item.images), "n_rules": item.grammar.n_rules, "levels": item.levels.to_dict()}
                for item in self.items
            ],
            "distance": [[round(float(v), 6) for v in row] for row in self.distance],
            "ranking": list(self.ranking),
            "metric": self.metric,
            "weights": dict(WEIGHTS),
            "levels": {level: self.level_matrix(level) if level in self.levels_computed else None
                       for level in WEIGHTS},
            "levels_computed": list(self.levels_computed),
            "tokens": self.vocabulary.to_dict(),
            "pairs": [p.to_dict() for _, p in sorted(self.pairs.items())],
        }
        if self.references:
            out["classification"] = {name: c.to_dict() for name, c in self.classification.items()}
            out["reference_spread"] = {k: round(v, 6) for k, v in self.spreads.items()}
        elif self.linkage is not None:
            out["clustering"] = {"method": "average", "linkage": self.linkage.tolist(),
                                 "order": [self.names[i] for i in leaves_list(self.linkage)]}
        return out

    def to_summary(self) -> dict:
        """The compact form for a run's ``summary["comparison"]``: items, distance, ranking and disorder."""
        return {"items": list(self.names), "distance": [[round(float(v), 6) for v in r] for r in self.distance],
                "ranking": list(self.ranking), "disorder": {i.name: round(i.disorder, 6) for i in self.items}}


def _as_comparable(item) -> Comparable:
    return item if isinstance(item, Comparable) else load_comparable(item)


def _unique_names(items: list[Comparable]) -> list[Comparable]:
    seen: Counter = Counter()
    out = []
    for item in items:
        seen[item.name] += 1
        if seen[item.name] > 1:
            new = f"{item.name}-{seen[item.name]}"
            log.info("two items are named %r; calling the second %r", item.name, new)
            item = replace(item, name=new)
        out.append(item)
    return out


def _key(item: Comparable):
    return Path(item.path).resolve() if item.path is not None else id(item)


def _replicates(ref: Comparable) -> list[Comparable]:
    """Each micrograph of a reference as an item of its own, as a run of that micrograph alone would give it:
    the reference's vocabulary, a grammar induced from that micrograph with the reference's settings."""
    out = []
    for image, graph in ref.graphs.items():
        grammar = induce_grammar([graph], name=f"{ref.grammar.name}:{image}",
                                 min_count=ref.induction.get("min_count", 2),
                                 max_motif_size=ref.induction.get("max_motif_size", 6),
                                 min_domain_size=ref.min_domain_size).grammar
        out.append(Comparable.from_graphs(f"{ref.name}:{image}", grammar, {image: graph}, token_model=ref.token_model,
                                          min_domain_size=ref.min_domain_size, induction=ref.induction,
                                          moire={image: ref.moire[image]} if image in ref.moire else {}))
    return out


def compare(items: Sequence, *, references: Mapping | Sequence | None = None, tokens: str | Path = "auto",
            max_token_distance: float = DEFAULT_MAX_TOKEN_DISTANCE, seed: int = 0,
            levels: Iterable[str] | None = None) -> Comparison:
    """Compare grammars pairwise, rank them by disorder and classify them.

    Parameters
    ----------
    items : sequence of (str, Path or Comparable)
        Run directories, grammar files or loaded items (:func:`motifgram.grammar.items.load_comparable`).
    references : mapping of str to (path or Comparable), or sequence, optional
        Reference label -> run directory, grammar file or item (spec ``compare.references``); a sequence
        uses the items' names as labels. Each item is classified by its nearest reference, or unknown.
    tokens : {"auto", "joint", "own"} or path
        The common vocabulary (:func:`motifgram.grammar.align.common_vocabulary`).
    max_token_distance : float
        Token matching threshold for own vocabularies (:func:`motifgram.grammar.align.align_tokens`).
    seed : int
        Seed of a joint token fit.
    levels : iterable of str, optional
        Levels to compute although their weight is 0 (:func:`computed_levels`): ``["grammar"]`` for the grammar
        level and the cross description lengths.

    Returns
    -------
    Comparison

    Notes
    -----
    Cost: a joint vocabulary re-tokenises every atom and re-induces each grammar. Only with the grammar level:
    N(N−1) cross parses of each item's micrographs with every other grammar, plus 2·N·R with R references and
    the pairs of each reference's micrographs.
    """
    computed = computed_levels(levels)
    items = _unique_names([_as_comparable(i) for i in items])
    if not items:
        raise MotifgramError("compare needs at least one run directory or grammar file")
    if isinstance(references, Mapping):
        refs = [(str(label), _as_comparable(ref)) for label, ref in references.items()]
    else:
        refs = [(ref.name, ref) for ref in map(_as_comparable, references or ())]
    unique = list({_key(x): x for x in (*items, *(r for _, r in refs))}.values())
    expressed, vocabulary = common_vocabulary(unique, tokens, seed=seed)
    by_key = {_key(old): new for old, new in zip(unique, expressed, strict=True)}
    items = [replace(by_key[_key(i)], name=i.name) for i in items]
    refs = [(label, by_key[_key(r)]) for label, r in refs]
    cache = _Cache(max_token_distance, computed)
    n = len(items)
    dist = np.zeros((n, n))
    pairs = {}
    for i, j in itertools.combinations(range(n), 2):
        pair = _compare_pair(items[i], items[j], cache)
        pairs[(i, j)] = pair
        dist[i, j] = dist[j, i] = pair.distance
    ranking = tuple(item.name for item in sorted(items, key=lambda it: (it.disorder, it.name)))
    classification: dict[str, Classification] = {}
    spreads: dict[str, float] = {}
    for label, ref in refs:
        reps = _replicates(ref) if len(ref.graphs) >= 2 else []
        if reps:
            spreads[label] = max(_compare_pair(x, y, cache).distance for x, y in itertools.combinations(reps, 2))
    for item in items:
        d = {label: (0.0 if _key(item) == _key(ref) else _compare_pair(item, ref, cache).distance)
             for label, ref in refs}
        if d:
            classification[item.name] = classify(d, unknown_threshold(spreads))
    link = linkage(squareform(dist, checks=False), method="average") if not refs and n >= 2 else None
    log.info("compared %d grammars%s", n, f" against {len(refs)} references" if refs else "")
    return Comparison(tuple(items), dist, pairs, ranking, classification, tuple(label for label, _ in refs), link,
                      vocabulary, spreads, computed)
