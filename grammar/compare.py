"""Compare motif grammars across materials: distances, a disorder ranking and nearest-reference classification.

Items are run directories (``grammar.txt``, ``tokens.npz``, ``summary.json``, ``atoms.csv``/``bonds.csv``/
``rings.csv``) or bare grammar files, loaded with :func:`load_comparable`; :func:`compare` compares every pair
and :func:`format_table` prints the result (``motifgram compare``; JSON per INTERFACE.md via
:meth:`Comparison.to_json`).

Token vocabularies
------------------
Each run learns its own tokens, so two grammars speak different alphabets. :func:`align_tokens` matches them
by their centroids in *raw* rotation-invariant units (the Zernike magnitudes ``|A_nm|``): a token model's
token means (weight-averaged over the token's mixture components) live in its own standardised and whitened
PCA space ``z = ((x - mean) / scale) @ P``, and
:func:`token_centroids` maps them back with the pseudo-inverse of the projection, ``x = (z @ pinv(P)) * scale
+ mean`` (exact within the kept principal subspace; the discarded axes carry < 1e-6 of the variance or lie
beyond ``n_pca``). Two centroids are compared by their *relative distance*
``‖μa − μb‖ / sqrt(½(‖μa‖² + ‖μb‖²))`` (dimensionless: the fraction by which the two mean invariant vectors
differ), matched one-to-one by the Hungarian algorithm, and a match farther apart than ``max_distance``
(default 0.4) is dropped. On simulated data the same species in two runs lie at 0.03–0.08, the halves of a
graphene token split in two at 0.2–0.27, graphene vs. a carbon random network at 0.32–0.37, graphene vs.
MoS2 at ≥ 0.22 and vs. perovskite at ≥ 0.6. :func:`rename_tokens` rewrites a grammar into the other
vocabulary; its unmatched tokens become ``X_<name>``, which no token of the other run carries.

Distances between two items A and B
-----------------------------------
1. **Rule-usage divergence.** Every symbol gets a canonical key from its right-hand side (:func:`rule_keys`:
   ``ring(A A B)``, ``ring6(*)``, a motif's canonical labelled graph over its parts' keys, ``domain(...)``),
   so rules with equal content match whatever their names. Usage counts per level come from the run's own
   parses (``summary.json``: ``token_counts`` for level 0, ``motif_counts`` above) or else from the rule
   counts. The Jensen–Shannon divergence (base 2, in [0, 1]) is taken per *tier*: tokens (level 0), rings
   (level 1) and motifs with domains (levels ≥ 2 pooled: a motif's level depends on the order in which
   MDL merged its parts, so the same defect can sit at level 2 in one grammar and level 4 in another).
   ``jsd_mean`` is the unweighted mean over the tiers present in either grammar; a tier present in only one
   contributes 1.
2. **Cross description length.** Bits per atom of B's micrographs parsed with A's grammar (renamed into B's
   vocabulary) minus bits per atom with B's own grammar (atom-weighted over B's images), and vice versa.
   Tokens of B that A's grammar lacks are added to it with abundance 0, so their rings fall back to
   wildcard or unknown-ring codes spelled at the parser's 32-bit floor per token. It is skipped (``None``,
   with the reason in ``cross_dl_note``) when an item has no atom graphs (a bare grammar file) or when no
   token could be matched.
3. **Rule differences.** Rules (levels ≥ 1) whose key occurs in one grammar and not in the other, heaviest
   first (weight = the rule's share of its tier's usage).

The combined symmetric distance of the matrix is::

    d(A, B) = ½ jsd_mean + ½ s / (1 + s),   s = ½ (max(ΔDL(A→B), 0) + max(ΔDL(B→A), 0))  [bits/atom]

(one direction alone when only one is available). Without graphs on either side ``d = jsd_mean``; when the
vocabularies could not be aligned at all the second term is 1. ``d`` lies in [0, 1], with 0 on the diagonal.

Disorder and classification
---------------------------
An item's disorder is the mean ``disorder`` index of its images (:mod:`motifgram.grammar.disorder`); for a bare
grammar it is estimated from the rules alone with the same formula, ``½(1 − c) + ½ H / (1 + H)``, where ``H``
is the entropy (bits) of the ring rules' counts and ``c`` the share of rings inside domains
(:func:`grammar_disorder_estimate`). With references every item gets the label of its nearest reference and
the margin (second-nearest minus nearest distance); without, the items are clustered hierarchically
(average linkage on the combined distance).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform

from motifgram.engine import rundir
from motifgram.engine.errors import GrammarError, MotifgramError
from motifgram.engine.graph import AtomGraph
from motifgram.engine.tokens import TokenModel
from motifgram.grammar.disorder import disorder_index, disorder_measures
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import TokenSymbol, canonical_motif, is_valid_name
from motifgram.grammar.parse import parse_graph

__all__ = [
    "Comparable",
    "TokenAlignment",
    "PairComparison",
    "Classification",
    "Comparison",
    "load_comparable",
    "token_centroids",
    "align_tokens",
    "rename_tokens",
    "rule_keys",
    "jensen_shannon",
    "usage_divergence",
    "cross_description_length",
    "rule_differences",
    "grammar_disorder_estimate",
    "compare_pair",
    "compare",
    "format_table",
    "DEFAULT_MAX_TOKEN_DISTANCE",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKEN_DISTANCE = 0.4
"""Largest relative centroid distance at which two tokens of different runs are matched."""

_MEASURES = ("disorder", "ring_entropy_bits", "domain_coverage", "bits_per_atom")
_TIERS = ("tokens", "rings", "motifs")
_UNMATCHED = "X_"


# --------------------------------------------------------------------------------------------------------------
# Items


@dataclass(frozen=True, eq=False)
class Comparable:
    """One grammar with what is needed to compare it: a run, a group of a run, or a bare grammar file.

    Attributes
    ----------
    name : str
        Display name (the run directory's or grammar file's base name).
    grammar : Grammar
    path : Path or None
        Where it was loaded from.
    group : str or None
        The micrograph group(s) of its images, joined with ``+``; None for a bare grammar.
    token_model : TokenModel or None
        The run's token model (``tokens.npz``), used to align vocabularies.
    graphs : mapping of str to AtomGraph
        Image id -> atom graph with tokens (empty for a bare grammar); needed for cross description lengths.
    images : mapping of str to mapping of str to float
        Image id -> disorder measures (``disorder``, ``ring_entropy_bits``, ``domain_coverage``,
        ``bits_per_atom``) and ``n_atoms``.
    usage : mapping of int to mapping of str to float, or None
        Level -> symbol -> count in the item's own parses (level 0: token counts); None: use rule counts.
    min_domain_size : int or None
        The ``min_domain_size`` the grammar was induced with (None: auto), used when parsing with it.
    """

    name: str
    grammar: Grammar
    path: Path | None = None
    group: str | None = None
    token_model: TokenModel | None = None
    graphs: Mapping[str, AtomGraph] = field(default_factory=dict)
    images: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    usage: Mapping[int, Mapping[str, float]] | None = None
    min_domain_size: int | None = None

    @property
    def disorder(self) -> float:
        """Mean disorder index of the images, else :func:`grammar_disorder_estimate` of the grammar."""
        values = [m["disorder"] for m in self.images.values() if m.get("disorder") is not None]
        return float(np.mean(values)) if values else grammar_disorder_estimate(self.grammar)

    @property
    def disorder_source(self) -> str:
        """``"images"`` or ``"grammar estimate"``."""
        return "images" if any(m.get("disorder") is not None for m in self.images.values()) else "grammar estimate"

    def measures(self) -> dict[str, float]:
        """Mean of each disorder measure over the images (only those present)."""
        out = {}
        for key in _MEASURES:
            values = [m[key] for m in self.images.values() if m.get(key) is not None]
            if values:
                out[key] = float(np.mean(values))
        return out

    def level_usage(self) -> dict[int, dict[str, float]]:
        """Level -> symbol -> count: :attr:`usage`, else the grammar's token abundances and rule counts."""
        if self.usage is not None:
            return {int(level): dict(per) for level, per in self.usage.items()}
        g = self.grammar
        out: dict[int, dict[str, float]] = {0: {t.name: t.abundance for t in g.tokens}}
        for rule in (*g.rings, *g.motifs, *g.domains):
            out.setdefault(rule.level, {})[rule.name] = float(rule.count)
        return out

    @classmethod
    def from_graphs(cls, name: str, grammar: Grammar, graphs: Mapping[str, AtomGraph], *,
                    token_model: TokenModel | None = None, group: str | None = None,
                    min_domain_size: int | None = None, path: Path | None = None) -> Comparable:
        """Parse ``graphs`` with ``grammar`` and build the item from the parses (usage and disorder measures).

        For grammars held in memory, e.g. one per micrograph group of a run.
        """
        images, usage = {}, defaultdict(Counter)
        for image_id, graph in graphs.items():
            parse = parse_graph(grammar, graph, min_domain_size=min_domain_size)
            images[image_id] = {**disorder_measures(grammar, graph, parse)._asdict(), "n_atoms": graph.n_atoms}
            usage[0].update(Counter(np.asarray(graph.tokens).astype(str).tolist()))
            for level, per in parse.motif_counts.items():
                usage[level].update(per)
        return cls(name=name, grammar=grammar, path=path, group=group, token_model=token_model,
                   graphs=dict(graphs), images=images, usage={k: dict(v) for k, v in usage.items()},
                   min_domain_size=min_domain_size)


def load_comparable(path, *, group: str | None = None) -> Comparable:
    """Load a run directory or a bare grammar file for comparison.

    Parameters
    ----------
    path : str or Path
        A run directory (``grammar.txt`` required; ``tokens.npz``, ``summary.json`` and the CSV files used
        when present), or a grammar file (with a ``tokens.npz`` beside it, if any). A file named
        ``grammar.txt`` next to a ``summary.json`` loads its whole run directory.
    group : str, optional
        Keep only the images of this micrograph group (the grammar is still the run's); the name becomes
        ``<run>/<group>``.

    Returns
    -------
    Comparable

    Raises
    ------
    MotifgramError
        No grammar at ``path``, an unknown group, or unreadable files (the message names them).
    """
    path = Path(path)
    if path.is_file() and path.name == rundir.GRAMMAR_TXT and (path.parent / rundir.SUMMARY_JSON).is_file():
        path = path.parent
    grammar = rundir.read_grammar_file(path)
    run_dir = path if path.is_dir() else path.parent
    model_path = run_dir / rundir.TOKENS_NPZ
    token_model = TokenModel.load(model_path) if model_path.is_file() else None
    if token_model is not None and set(token_model.names) != {t.name for t in grammar.tokens}:
        log.warning("%s: token model names %s differ from the grammar's tokens; ignoring the token model",
                    model_path, token_model.names)
        token_model = None
    if not path.is_dir():
        if group is not None:
            raise MotifgramError(f"{path}: a bare grammar file has no groups; drop group={group!r}")
        return Comparable(name=path.stem, grammar=grammar, path=path, token_model=token_model)
    summary = rundir.read_summary(path, required=False)
    infos = summary.get("images", {})
    if group is not None:
        infos = {i: m for i, m in infos.items() if m.get("group") == group}
        if not infos:
            known = sorted({m.get("group") for m in summary.get("images", {}).values()} - {None})
            raise MotifgramError(f"{path}: no images of group {group!r} (groups: {', '.join(known) or 'none'})")
    images = {i: {k: m[k] for k in (*_MEASURES, "n_atoms") if m.get(k) is not None} for i, m in infos.items()}
    usage = None
    if infos and all("motif_counts" in m and "token_counts" in m for m in infos.values()):
        counts: dict[int, Counter] = defaultdict(Counter)
        for m in infos.values():
            counts[0].update(m["token_counts"])
            for level, per in m["motif_counts"].items():
                counts[int(level)].update(per)
        usage = {level: dict(c) for level, c in counts.items()}
    graphs = {}
    if all((path / f).is_file() for f in (rundir.ATOMS_CSV, rundir.BONDS_CSV, rundir.RINGS_CSV)):
        graphs = rundir.read_run_graphs(path, images=None if group is None else list(infos))
    mds = summary.get("spec", {}).get("grammar", {}).get("min_domain_size")
    groups = sorted({m.get("group") for m in infos.values()} - {None})
    return Comparable(
        name=path.resolve().name if group is None else f"{path.resolve().name}/{group}",
        grammar=grammar, path=path, group="+".join(groups) or None, token_model=token_model, graphs=graphs,
        images=images, usage=usage, min_domain_size=mds if isinstance(mds, int) else None,
    )


# --------------------------------------------------------------------------------------------------------------
# Token vocabularies


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


# --------------------------------------------------------------------------------------------------------------
# Rule usage


def rule_keys(grammar: Grammar) -> dict[str, str]:
    """A content key for every symbol, equal for rules with the same right-hand side whatever their names.

    Returns
    -------
    dict of str to str
        Token -> its name; ring -> ``ring(<canonical word>)`` or ``ring<n>(*)``; motif -> ``{<part keys>;
        <edges>}`` of its canonical labelled graph over its parts' keys; domain -> ``domain(<key>)``.
    """
    keys = {t.name: t.name for t in grammar.tokens}
    for r in grammar.rings:
        keys[r.name] = f"ring{r.size}(*)" if r.is_wildcard else f"ring({' '.join(r.word)})"
    for m in grammar.motifs:
        nodes, edges = canonical_motif([keys[p] for p in m.nodes], m.edges)
        keys[m.name] = "{" + ", ".join(nodes) + "; " + " ".join(f"{i}-{j}" for i, j in edges) + "}"
    for d in grammar.domains:
        keys[d.name] = f"domain({keys[d.symbol]})"
    return keys


def _key_of(symbol: str, keys: Mapping[str, str]) -> str:
    if symbol in keys:
        return keys[symbol]
    if symbol.startswith("R") and symbol.endswith("?") and symbol[1:-1].isdigit():  # unknown ring (parse.py)
        return f"ring{symbol[1:-1]}(?)"
    return f"?{symbol}"


def _tier(level: int) -> str:
    return _TIERS[min(level, 2)]


def _tier_usage(usage: Mapping[int, Mapping[str, float]], keys: Mapping[str, str]) -> dict[str, Counter]:
    """Tier -> canonical key -> count."""
    out: dict[str, Counter] = {}
    for level, per in usage.items():
        counter = out.setdefault(_tier(int(level)), Counter())
        for symbol, count in per.items():
            if count > 0:
                counter[_key_of(symbol, keys)] += float(count)
    return {tier: c for tier, c in out.items() if sum(c.values()) > 0}


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two distributions given as (unnormalised) counts.

    Examples
    --------
    >>> jensen_shannon({"a": 1}, {"b": 3})
    1.0
    >>> jensen_shannon({"a": 1, "b": 1}, {"a": 2, "b": 2})
    0.0
    """
    support = sorted(set(p) | set(q))
    a = np.array([p.get(s, 0.0) for s in support], dtype=np.float64)
    b = np.array([q.get(s, 0.0) for s in support], dtype=np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        raise ValueError("jensen_shannon needs two non-empty distributions")
    a, b = a / a.sum(), b / b.sum()
    m = 0.5 * (a + b)

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return float(min(max(0.5 * kl(a) + 0.5 * kl(b), 0.0), 1.0))


def usage_divergence(usage_a: Mapping[int, Mapping[str, float]], keys_a: Mapping[str, str],
                     usage_b: Mapping[int, Mapping[str, float]], keys_b: Mapping[str, str]) -> dict[str, float]:
    """Jensen–Shannon divergence of rule usage per tier (``tokens``, ``rings``, ``motifs``).

    Symbols are compared by their keys (:func:`rule_keys`), so both key maps must be in one vocabulary.
    A tier present in only one usage gets 1; tiers present in neither are left out.
    """
    ta, tb = _tier_usage(usage_a, keys_a), _tier_usage(usage_b, keys_b)
    return {tier: (jensen_shannon(ta[tier], tb[tier]) if tier in ta and tier in tb else 1.0)
            for tier in _TIERS if tier in ta or tier in tb}


def rule_differences(usage_a, keys_a, usage_b, keys_b) -> tuple[list[dict], list[dict]]:
    """Rules (levels ≥ 1) used by one item and absent from the other, heaviest first.

    Returns
    -------
    only_in_a, only_in_b : list of dict
        ``{"symbol", "rule" (its key), "level", "weight" (share of its tier's usage)}``.
    """
    def entries(usage, keys):
        tiers = _tier_usage(usage, keys)
        out = {}
        for level, per in usage.items():
            if int(level) < 1:
                continue
            total = sum(tiers.get(_tier(int(level)), {}).values())
            for symbol, count in per.items():
                key = _key_of(symbol, keys)
                if count > 0 and total > 0 and key not in out:
                    out[key] = {"symbol": symbol, "rule": key, "level": int(level),
                                "weight": float(tiers[_tier(int(level))][key] / total)}
        return out

    def order(e):
        return -e["weight"], e["rule"]

    ea, eb = entries(usage_a, keys_a), entries(usage_b, keys_b)
    return (sorted((e for k, e in ea.items() if k not in eb), key=order),
            sorted((e for k, e in eb.items() if k not in ea), key=order))


def grammar_disorder_estimate(grammar: Grammar) -> float:
    """Disorder index estimated from a grammar alone (no micrographs).

    ``½(1 − c) + ½ H / (1 + H)`` as in :mod:`motifgram.grammar.disorder`, with ``H`` the entropy (bits) of
    the ring rules' counts (wildcard rings count as one word each, so ``H`` is a lower bound) and ``c`` the
    share of rings that lie inside domains (``Σ DomainRule.size`` over ring domains / ``Σ RingRule.count``).
    0 for a grammar without rings.
    """
    counts = np.array([r.count for r in grammar.rings if r.count > 0], dtype=np.float64)
    if counts.sum() <= 0:
        return 0.0
    p = counts / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    ring_names = {r.name for r in grammar.rings}
    coverage = min(sum(d.size for d in grammar.domains if d.symbol in ring_names) / counts.sum(), 1.0)
    return disorder_index(entropy, coverage)


# --------------------------------------------------------------------------------------------------------------
# Cross description length


class _Cache:
    """Per-comparison caches: own bits per atom of each item, and token alignments."""

    def __init__(self, max_token_distance: float):
        self.max_token_distance = max_token_distance
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
# Pairs and the whole comparison


@dataclass(frozen=True)
class PairComparison:
    """Everything computed for one pair of items.

    Attributes
    ----------
    a, b : str
        Item names.
    jsd : dict of str to float
        Jensen–Shannon divergence per tier (``tokens``, ``rings``, ``motifs``), in B's vocabulary.
    jsd_mean : float
        Unweighted mean over the tiers in ``jsd``.
    cross_dl_a_on_b, cross_dl_b_on_a : float or None
        Bits per atom of B's (A's) micrographs with A's (B's) grammar minus with its own.
    cross_dl_note : str
        Why a cross description length was skipped (empty if none was).
    only_in_a, only_in_b : tuple of dict
        Rule differences (:func:`rule_differences`).
    alignment : TokenAlignment
        A's tokens -> B's.
    distance : float
        The combined distance (module docstring), in [0, 1].
    """

    a: str
    b: str
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


def _squash(bits: float) -> float:
    return bits / (1.0 + bits)


def compare_pair(a: Comparable, b: Comparable, *,
                 max_token_distance: float = DEFAULT_MAX_TOKEN_DISTANCE) -> PairComparison:
    """Compare two items (module docstring): usage divergence, cross description lengths, rule differences.

    ``a`` and ``b`` may be the same object (distance 0 up to rounding of ``summary.json``).
    """
    return _compare_pair(a, b, _Cache(max_token_distance))


def _compare_pair(a: Comparable, b: Comparable, cache: _Cache) -> PairComparison:
    ab = cache.alignment(a, b)
    renamed_a = rename_tokens(a.grammar, ab.mapping)
    keys_a, keys_b = rule_keys(renamed_a), rule_keys(b.grammar)
    usage_a = a.level_usage()
    if 0 in usage_a:
        rename = {t.name: r.name for t, r in zip(a.grammar.tokens, renamed_a.tokens, strict=False)}
        usage_a[0] = {rename.get(t, t): c for t, c in usage_a[0].items()}
    usage_b = b.level_usage()
    jsd = usage_divergence(usage_a, keys_a, usage_b, keys_b)
    jsd_mean = float(np.mean(list(jsd.values()))) if jsd else 0.0
    only_a, only_b = rule_differences(usage_a, keys_a, usage_b, keys_b)
    d_ab, note_ab = cross_description_length(a, b, ab, own_bits_b=cache.own_bits(b))
    d_ba, note_ba = cross_description_length(b, a, cache.alignment(b, a), own_bits_b=cache.own_bits(a))
    notes = "; ".join(dict.fromkeys(n for n in (note_ab, note_ba) if n))
    deltas = [max(d, 0.0) for d in (d_ab, d_ba) if d is not None]
    if deltas:
        distance = 0.5 * jsd_mean + 0.5 * _squash(float(np.mean(deltas)))
    elif a.graphs and b.graphs:  # graphs on both sides, but the vocabularies do not align
        distance = 0.5 * jsd_mean + 0.5
    else:
        distance = jsd_mean
    return PairComparison(a.name, b.name, jsd, jsd_mean, d_ab, d_ba, notes, tuple(only_a), tuple(only_b), ab,
                          float(distance))


@dataclass(frozen=True)
class Classification:
    """Nearest reference of one item.

    Attributes
    ----------
    label : str
        The nearest reference's label.
    margin : float or None
        Second-nearest minus nearest distance (None with a single reference).
    distances : dict of str to float
        Reference label -> combined distance.
    """

    label: str
    margin: float | None
    distances: dict[str, float]


@dataclass(frozen=True, eq=False)
class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    items : tuple of Comparable
    distance : (N, N) ndarray of float64
        Combined distances, symmetric, 0 on the diagonal, in item order.
    pairs : dict of (int, int) to PairComparison
        Item index pairs ``(i, j)``, ``i < j``.
    ranking : tuple of str
        Item names, least to most disordered.
    classification : dict of str to Classification
        Item name -> nearest reference (empty without references).
    references : tuple of str
        Reference labels.
    linkage : (N-1, 4) ndarray of float64 or None
        Average-linkage clustering of the items (without references, N >= 2).
    """

    items: tuple[Comparable, ...]
    distance: np.ndarray
    pairs: dict[tuple[int, int], PairComparison]
    ranking: tuple[str, ...]
    classification: dict[str, Classification]
    references: tuple[str, ...]
    linkage: np.ndarray | None

    @property
    def names(self) -> tuple[str, ...]:
        """Item names in order."""
        return tuple(item.name for item in self.items)

    @property
    def metric(self) -> str:
        """How the distance was computed (one sentence)."""
        return ("0.5 * mean Jensen-Shannon divergence (base 2) of rule usage over the tiers tokens, rings, "
                "motifs+domains + 0.5 * s/(1+s), s = symmetric positive cross description length in bits per "
                "atom (grammar of one item parsing the other's micrographs minus its own grammar), after "
                "aligning token vocabularies by centroid matching; jsd only when no micrographs are available")

    def to_json(self) -> dict:
        """The ``motifgram compare --json`` document (INTERFACE.md), with extras ``pairs`` and ``clustering``."""
        out = {
            "items": [
                {"name": item.name, "path": str(item.path) if item.path is not None else None, "group": item.group,
                 "disorder": round(item.disorder, 6), "disorder_source": item.disorder_source,
                 "measures": {k: round(v, 6) for k, v in item.measures().items()},
                 "n_images": len(item.images), "n_rules": item.grammar.n_rules}
                for item in self.items
            ],
            "distance": [[round(float(v), 6) for v in row] for row in self.distance],
            "ranking": list(self.ranking),
            "metric": self.metric,
            "pairs": [p.to_dict() for _, p in sorted(self.pairs.items())],
        }
        if self.references:
            out["classification"] = {
                name: {"label": c.label, "margin": _round(c.margin),
                       "distances": {k: round(v, 6) for k, v in c.distances.items()}}
                for name, c in self.classification.items()
            }
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


def compare(items: Sequence, *, references: Mapping | Sequence | None = None,
            max_token_distance: float = DEFAULT_MAX_TOKEN_DISTANCE) -> Comparison:
    """Compare grammars pairwise, rank them by disorder and classify them.

    Parameters
    ----------
    items : sequence of (str, Path or Comparable)
        Run directories, grammar files or loaded items (:func:`load_comparable`).
    references : mapping of str to (path or Comparable), or sequence, optional
        Reference label -> run directory, grammar file or item (spec ``compare.references``); a sequence
        uses the items' names as labels. Each item is classified by its nearest reference.
    max_token_distance : float
        Token matching threshold (:func:`align_tokens`).

    Returns
    -------
    Comparison

    Notes
    -----
    Cost: N(N−1) cross parses of each item's micrographs with every other grammar (each item's atom graphs
    are read once; its own bits per atom come from ``summary.json``), plus N·R more with R references.
    """
    items = _unique_names([_as_comparable(i) for i in items])
    if not items:
        raise MotifgramError("compare needs at least one run directory or grammar file")
    cache = _Cache(max_token_distance)
    n = len(items)
    dist = np.zeros((n, n))
    pairs = {}
    for i, j in itertools.combinations(range(n), 2):
        pair = _compare_pair(items[i], items[j], cache)
        pairs[(i, j)] = pair
        dist[i, j] = dist[j, i] = pair.distance
    ranking = tuple(item.name for item in sorted(items, key=lambda it: (it.disorder, it.name)))
    classification: dict[str, Classification] = {}
    labels: tuple[str, ...] = ()
    if references:
        if isinstance(references, Mapping):
            refs = [(str(label), _as_comparable(ref)) for label, ref in references.items()]
        else:
            refs = [(ref.name, ref) for ref in map(_as_comparable, references)]
        labels = tuple(label for label, _ in refs)
        for item in items:
            d = {label: (0.0 if _same(item, ref) else
                         _compare_pair(item, ref, cache).distance)
                 for label, ref in refs}
            ordered = sorted(d.items(), key=lambda kv: (kv[1], kv[0]))
            margin = ordered[1][1] - ordered[0][1] if len(ordered) > 1 else None
            classification[item.name] = Classification(ordered[0][0], margin, d)
    link = linkage(squareform(dist, checks=False), method="average") if not references and n >= 2 else None
    log.info("compared %d grammars%s", n, f" against {len(labels)} references" if labels else "")
    return Comparison(tuple(items), dist, pairs, ranking, classification, labels, link)


def _same(a: Comparable, b: Comparable) -> bool:
    return a is b or (a.path is not None and b.path is not None and Path(a.path).resolve() == Path(b.path).resolve())


# --------------------------------------------------------------------------------------------------------------
# Text


def format_table(comparison: Comparison, *, width: int = 12) -> str:
    """A readable text table: the distance matrix with each item's disorder, the ranking and the labels."""
    names = comparison.names
    short = [n if len(n) <= width else n[: width - 1] + "…" for n in names]
    head = " " * (width + 2) + " ".join(f"{s:>{width}}" for s in short) + f" {'disorder':>9}"
    lines = ["distance (0 = same grammar, 1 = nothing in common)", head]
    for s, row, item in zip(short, comparison.distance, comparison.items, strict=True):
        mark = "*" if item.disorder_source != "images" else " "
        lines.append(f"{s:<{width}}  " + " ".join(f"{v:>{width}.3f}" for v in row) + f" {item.disorder:>8.3f}{mark}")
    if any(item.disorder_source != "images" for item in comparison.items):
        lines.append("* disorder estimated from the grammar alone (no micrographs)")
    lines += ["", "ranking (least to most disordered): " + " < ".join(comparison.ranking)]
    skipped = sorted({p.cross_dl_note for p in comparison.pairs.values() if p.cross_dl_note})
    if skipped:
        lines += ["", "cross description length skipped:"] + [f"  {note}" for note in skipped]
    if comparison.classification:
        lines += ["", "classification (nearest reference, margin to the second):"]
        for name, c in comparison.classification.items():
            margin = "-" if c.margin is None else f"{c.margin:.3f}"
            lines.append(f"  {name}: {c.label} (margin {margin})")
    elif comparison.linkage is not None:
        order = [names[i] for i in leaves_list(comparison.linkage)]
        lines += ["", "clustering (average linkage) leaf order: " + ", ".join(order)]
    return "\n".join(lines)
