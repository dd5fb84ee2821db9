"""What a comparison compares: items (runs, groups of runs, bare grammars) and their statistics per level.

An item (:class:`Comparable`) is a grammar with what is needed to compare it: the atom graphs of its
micrographs (tokens, bonds, rings), its usage of the grammar's rules, each image's disorder measures and,
when the run measured them, the moiré twist and period. :meth:`Comparable.levels` reduces it to the
statistics of four levels (:class:`LevelStats`), each compared by :func:`level_distances`:

composition
    The token shares. Distance: Jensen–Shannon divergence (base 2) of the token counts.
topology
    Ring statistics over the rings not touching the image border: the ring-size distribution ``p_n``, its mean
    ``<n>`` and second moment ``mu2`` and the Aboav–Weaire parameter ``a`` (:func:`motifgram.engine.graph.
    aboav_weaire`, ring-weighted mean over images). Distance: Jensen–Shannon divergence of ``p_n`` (``<n>``,
    ``mu2`` and ``a`` are reported: they follow from ``p_n`` and the ring adjacency).
arrangement
    Short-range order: the Warren–Cowley parameter ``alpha_ij = 1 - P(j | i) / c_j`` of every token pair,
    over bonded pairs (shell 1) and second neighbours (shell 2: two bonds apart, not bonded), with
    ``P(j | i)`` the share of ``j`` among the shell's neighbours of ``i`` atoms (those at least a bond length
    inside the image: :func:`neighbour_pairs`) and ``c_j`` the share of ``j``
    among all the shell's neighbour slots (so a sublattice structure alone gives 0 for a random
    arrangement). Row ``i`` of alpha is the neighbour distribution of ``i`` atoms, ``P(j | i) = c_j (1 -
    alpha_ij)``, so two items are compared per shell and centre token ``i`` (present in both) by the
    Jensen–Shannon divergence of ``P(. | i)`` less its expected value for two samples of one distribution,
    ``(k - 1) (1/n_A + 1/n_B) / (8 ln 2)`` bits (``k`` neighbour tokens seen, ``n`` neighbour slots of
    ``i`` atoms; clipped at 0). A centre token weighs ``(1/n_A + 1/n_B) ** -0.5``, the inverse of the sampling
    error of its row: weighting by pair counts would let the sampling noise of the abundant tokens' rows drown
    the environment of a minority token (Se2 columns among S2), which is the arrangement, and weighting alike
    let the noise of rows seen a few times (columns cut by the image edge, a token of their own) drown it too
    (benchmarks/README.md, "Comparing grammars"). Distance: the weighted mean over the centre tokens, then the
    mean over the two shells.
mesoscale
    Moiré (``summary.json`` ``moire`` of grid-sampled runs): twist (degrees) and period (nm); domains: the
    share of ring atoms inside domains and the mean domain size (rings per domain node of the parses).
    Distance: with a moiré on both sides, ``|q_A - q_B| / (q_A + q_B)`` of the moiré wavenumbers ``q =
    1 / period`` (0 when both are untwisted); unmeasured otherwise. The domain statistics are reported, not
    compared: the domain coverage is half of the disorder index already, and on single micrographs it
    scatters between replicates (benchmarks/README.md, "Comparing grammars").
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse

from motifgram.engine import rundir
from motifgram.engine.errors import MotifgramError
from motifgram.engine.featurestore import FeatureStore, read_features
from motifgram.engine.geometry import inside_image
from motifgram.engine.graph import AtomGraph, aboav_weaire
from motifgram.engine.tokens import TokenModel
from motifgram.grammar.disorder import disorder_measures
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import parse_graph
from motifgram.grammar.usage import grammar_disorder_estimate, jensen_shannon

__all__ = ["Comparable", "LevelStats", "load_comparable", "level_stats", "neighbour_pairs", "warren_cowley",
           "level_distances", "LEVELS", "MEASURES"]

log = logging.getLogger(__name__)

LEVELS = ("composition", "topology", "arrangement", "mesoscale")
"""The structural levels of a comparison (:func:`level_distances`)."""
MEASURES = ("disorder", "ring_entropy_bits", "domain_coverage", "lattice_order", "bits_per_atom")
"""The per-image disorder measures of ``summary.json`` an item keeps."""


@dataclass(frozen=True)
class LevelStats:
    """The statistics of one item per level (pooled over its images).

    Attributes
    ----------
    tokens : dict of str to float
        Token -> atom count.
    p_n : dict of int to float
        Ring size -> share of the rings (border rings left out).
    mean_ring, mu2, aboav_weaire : float
        ``<n>``, ``mu2`` and the Aboav–Weaire parameter (NaN when unknown).
    pairs : dict of int to dict of (str, str) to float
        Shell (1: bonds, 2: second neighbours) -> token pair -> count (:func:`neighbour_pairs`).
    alpha : dict of int to dict of (str, str) to float
        Shell -> token pair -> Warren–Cowley alpha.
    shares : dict of int to dict of str to float
        Shell -> token -> share of the shell's neighbour slots (the ``c_j`` of alpha).
    twist_deg : float or None
        Median twist over the images with a moiré measurement (degrees).
    moire_wavenumber : float or None
        Median of ``1 / moiré period`` over those images (1/nm; 0 for an untwisted image).
    domain_coverage, mean_domain_size : float or None
        Share of ring atoms inside domains; mean rings per domain.
    """

    tokens: dict
    p_n: dict
    mean_ring: float = math.nan
    mu2: float = math.nan
    aboav_weaire: float = math.nan
    pairs: dict = field(default_factory=dict)
    alpha: dict = field(default_factory=dict)
    shares: dict = field(default_factory=dict)
    twist_deg: float | None = None
    moire_wavenumber: float | None = None
    domain_coverage: float | None = None
    mean_domain_size: float | None = None

    def renamed(self, mapping: Mapping[str, str]) -> LevelStats:
        """The same statistics with tokens renamed (``mapping``: old -> new name; others kept)."""
        def name(t):
            return mapping.get(t, t)

        return replace(self, tokens={name(t): c for t, c in self.tokens.items()},
                       pairs={s: {(name(i), name(j)): c for (i, j), c in per.items()} for s, per in self.pairs.items()},
                       alpha={s: {(name(i), name(j)): a for (i, j), a in per.items()} for s, per in self.alpha.items()},
                       shares={s: {name(t): c for t, c in per.items()} for s, per in self.shares.items()})

    def to_dict(self) -> dict:
        """JSON-ready form (rounded; alpha keyed ``"shell1"`` -> ``"A-B"``)."""
        def r(v):
            return None if v is None or not math.isfinite(v) else round(float(v), 5)

        total = max(sum(self.tokens.values()), 1)
        return {
            "composition": {"token_shares": {t: r(c / total) for t, c in self.tokens.items()}},
            "topology": {"p_n": {str(n): r(p) for n, p in sorted(self.p_n.items())}, "mean_ring": r(self.mean_ring),
                         "mu2": r(self.mu2), "aboav_weaire": r(self.aboav_weaire)},
            "arrangement": {f"shell{s}": {f"{i}-{j}": r(a) for (i, j), a in sorted(per.items())}
                            for s, per in self.alpha.items()},
            "mesoscale": {"twist_deg": r(self.twist_deg), "moire_wavenumber_per_nm": r(self.moire_wavenumber),
                          "domain_coverage": r(self.domain_coverage), "mean_domain_size": r(self.mean_domain_size)},
        }


def neighbour_pairs(graphs) -> dict[int, dict[tuple[str, str], float]]:
    """Token pairs over bonds (shell 1) and second neighbours (shell 2: two bonds apart, not bonded), pooled.

    Parameters
    ----------
    graphs : iterable of AtomGraph
        With tokens and bonds.

    Returns
    -------
    dict of int to dict of (str, str) to float
        Shell -> ordered token pair ``(i, j)`` -> number of (centre atom of ``i``, neighbour of ``j``) pairs.
        Centre atoms lie at least one median bond length inside the image: nearer the edge a column is cut
        (its token is the cut's, its neighbours missing), which would make an arrangement of the edge.
    """
    counts: dict[int, Counter] = {1: Counter(), 2: Counter()}
    for graph in graphs:
        n = graph.n_atoms
        bonds = np.asarray(graph.bonds, dtype=np.int64).reshape(-1, 2)
        if n == 0 or len(bonds) == 0:
            continue
        centres = inside_image(graph.xy, graph.image_shape, float(np.median(graph.bond_lengths_px())))
        adj = sparse.coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n)).tocsr()
        adj = ((adj + adj.T) > 0).astype(np.float64)
        reach = (adj @ adj) > 0
        two = reach.astype(np.float64) - adj.multiply(reach)
        two.setdiag(0)
        two.eliminate_zeros()
        names, index = np.unique(np.asarray(graph.tokens).astype(str), return_inverse=True)
        onehot = sparse.csr_matrix((np.ones(n), (np.arange(n), index)), shape=(n, len(names)))
        centre = sparse.csr_matrix((centres.astype(np.float64), (np.arange(n), index)), shape=(n, len(names)))
        for shell, pairs in ((1, adj), (2, (two > 0).astype(np.float64))):
            table = (centre.T @ pairs @ onehot).toarray()
            for a, b in zip(*np.nonzero(table), strict=True):
                counts[shell][(str(names[a]), str(names[b]))] += float(table[a, b])
    return {shell: dict(c) for shell, c in counts.items() if c}


def warren_cowley(pairs: Mapping[int, Mapping[tuple[str, str], float]]) -> tuple[dict, dict]:
    """Warren–Cowley short-range order parameters from neighbour pair counts (:func:`neighbour_pairs`).

    Returns
    -------
    alpha : dict of int to dict of (str, str) to float
        Shell -> ``(i, j)`` -> ``1 - P(j | i) / c_j`` (dimensionless; 0 for a random arrangement, negative
        when ``j`` gathers around ``i``, at most 1).
    shares : dict of int to dict of str to float
        Shell -> token -> ``c_j``, its share of the shell's neighbour slots.

    Examples
    --------
    Alternating A and B on a ring of six: every bond joins A and B, every second neighbour is alike.

    >>> import numpy as np
    >>> from motifgram.engine.graph import AtomGraph
    >>> bonds = sorted((min(k, (k + 1) % 6), max(k, (k + 1) % 6)) for k in range(6))
    >>> g = AtomGraph(np.zeros((6, 2)), np.array(list("ABABAB")), bonds, (), (1, 1))
    >>> alpha, _ = warren_cowley(neighbour_pairs([g]))
    >>> alpha[1][("A", "A")], alpha[1][("A", "B")], alpha[2][("A", "A")]
    (1.0, -1.0, -1.0)
    """
    alpha, shares = {}, {}
    for shell, table in pairs.items():
        total = sum(table.values())
        if total <= 0:
            continue
        tokens = sorted({t for pair in table for t in pair})
        share = {j: sum(c for (_, b), c in table.items() if b == j) / total for j in tokens}
        row = {i: sum(c for (a, _), c in table.items() if a == i) for i in tokens}
        alpha[shell] = {(i, j): 1.0 - (table.get((i, j), 0.0) / row[i]) / share[j]
                        for i in tokens for j in tokens if row[i] > 0 and share[j] > 0}
        shares[shell] = share
    return alpha, shares


def _domain_sizes(node, names: set[str], out: list[int]) -> list[int]:
    if node.symbol in names:
        out.append(len(node.children))
    for child in node.children:
        _domain_sizes(child, names, out)
    return out


def level_stats(graphs: Mapping[str, AtomGraph], images: Mapping[str, Mapping], *, token_counts=None,
                moire: Mapping[str, Mapping] | None = None, domain_sizes=()) -> LevelStats:
    """The per-level statistics of a set of micrographs (see the module docstring).

    Parameters
    ----------
    graphs : mapping of str to AtomGraph
        Image id -> graph with tokens.
    images : mapping of str to mapping
        Image id -> disorder measures (``domain_coverage`` used).
    token_counts : mapping of str to float, optional
        Token counts (default: counted from the graphs).
    moire : mapping of str to mapping, optional
        Image id -> ``summary.json`` moiré entry (``twist_deg``, ``moire_period_nm``).
    domain_sizes : sequence of int
        Rings per domain node over the item's parses.
    """
    tokens = Counter(token_counts or {})
    if token_counts is None:
        for graph in graphs.values():
            tokens.update(np.asarray(graph.tokens).astype(str).tolist())
    sizes = np.concatenate([g.interior().ring_sizes for g in graphs.values()] or [np.zeros(0, int)])
    p_n, mean, mu2, aw = {}, math.nan, math.nan, math.nan
    if sizes.size:
        n, c = np.unique(sizes, return_counts=True)
        p_n = {int(k): float(v) / sizes.size for k, v in zip(n, c, strict=True)}
        mean = float(np.sum(n * c) / sizes.size)
        mu2 = float(np.sum(c * (n - mean) ** 2) / sizes.size)
        fits = [(aboav_weaire(g.interior())[0], len(g.interior().rings)) for g in graphs.values()]
        fits = [(a, w) for a, w in fits if math.isfinite(a) and w > 0]
        aw = float(np.average([a for a, _ in fits], weights=[w for _, w in fits])) if fits else math.nan
    pairs = neighbour_pairs(graphs.values())
    alpha, shares = warren_cowley(pairs)
    measured = [m for m in (moire or {}).values() if m]
    coverage = [m["domain_coverage"] for m in images.values() if m.get("domain_coverage") is not None]
    return LevelStats(
        dict(tokens), p_n, mean, mu2, aw, pairs, alpha, shares,
        float(np.median([m.get("twist_deg") or 0.0 for m in measured])) if measured else None,
        float(np.median([1.0 / p if (p := m.get("moire_period_nm")) else 0.0 for m in measured])) if measured else None,
        float(np.mean(coverage)) if coverage else None,
        float(np.mean(domain_sizes)) if len(domain_sizes) else None,
    )


def _rows(pairs: Mapping[tuple[str, str], float]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for (i, j), c in pairs.items():
        rows[i][j] = c
    return rows


def _pair_distance(a: LevelStats, b: LevelStats, shell: int) -> float | None:
    """Mean over the centre tokens of both items of the sampling-corrected divergence of their neighbour rows,
    each weighted by ``(1/n_A + 1/n_B) ** -0.5`` (module docstring)."""
    rows_a, rows_b = _rows(a.pairs.get(shell, {})), _rows(b.pairs.get(shell, {}))
    parts, weights = [], []
    for i in sorted(set(rows_a) & set(rows_b)):
        p, q = rows_a[i], rows_b[i]
        k = len({j for j, c in (*p.items(), *q.items()) if c > 0})
        scale = 1 / sum(p.values()) + 1 / sum(q.values())
        parts.append(max(0.0, jensen_shannon(p, q) - (k - 1) * scale / (8 * math.log(2))))
        weights.append(scale**-0.5)
    return float(np.average(parts, weights=weights)) if parts else None


def level_distances(a: LevelStats, b: LevelStats) -> dict[str, float | None]:
    """The distance of the four structural levels (module docstring), each in [0, 1]; None where unmeasured.

    Parameters
    ----------
    a, b : LevelStats
        In one token vocabulary.
    """
    out: dict[str, float | None] = dict.fromkeys(LEVELS)
    if sum(a.tokens.values()) > 0 and sum(b.tokens.values()) > 0:
        out["composition"] = jensen_shannon(a.tokens, b.tokens)
    if a.p_n and b.p_n:
        out["topology"] = jensen_shannon({str(k): v for k, v in a.p_n.items()}, {str(k): v for k, v in b.p_n.items()})
    parts = [d for d in (_pair_distance(a, b, 1), _pair_distance(a, b, 2)) if d is not None]
    if parts:
        out["arrangement"] = float(np.mean(parts))
    if a.moire_wavenumber is not None and b.moire_wavenumber is not None:
        qa, qb = a.moire_wavenumber, b.moire_wavenumber
        out["mesoscale"] = abs(qa - qb) / (qa + qb) if qa + qb > 0 else 0.0
    return out


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
        Image id -> atom graph with tokens (empty for a bare grammar).
    images : mapping of str to mapping of str to float
        Image id -> disorder measures (:data:`MEASURES`), ``n_atoms`` and, for a run, ``disc_diameter_px`` (the
        disc its features describe; ``patch_size_px`` for runs before it) and ``disc_fixed_px`` where the run's
        ``features.patch_size`` fixed it.
    usage : mapping of int to mapping of str to float, or None
        Level -> symbol -> count in the item's own parses (level 0: token counts); None: use rule counts.
    min_domain_size : int or None
        The ``min_domain_size`` the grammar was induced with (None: auto), used when parsing with it.
    features : FeatureStore or None
        The run's ``features.npz`` (every atom's features), for a common token vocabulary.
    moire : mapping of str to mapping
        Image id -> the moiré measured by the run (``summary.json``), when it measured one.
    domain_sizes : tuple of int
        Rings per domain node over the item's parses.
    induction : mapping of str to int
        The run's ``grammar`` settings (``min_count``, ``max_motif_size``), for re-inducing its grammar.
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
    features: FeatureStore | None = None
    moire: Mapping[str, Mapping] = field(default_factory=dict)
    domain_sizes: tuple = ()
    induction: Mapping[str, int] = field(default_factory=dict)

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
        for key in MEASURES:
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

    @cached_property
    def levels(self) -> LevelStats:
        """The item's statistics per level (:func:`level_stats`); from the grammar alone for a bare grammar."""
        if self.graphs:
            return level_stats(self.graphs, self.images, token_counts=self.level_usage().get(0), moire=self.moire,
                               domain_sizes=self.domain_sizes)
        rings = [r for r in self.grammar.rings if r.count > 0]
        total = sum(r.count for r in rings)
        return LevelStats({t.name: t.abundance for t in self.grammar.tokens},
                          {} if not total else {n: sum(r.count for r in rings if r.size == n) / total
                                                for n in sorted({r.size for r in rings})})

    @classmethod
    def from_graphs(cls, name: str, grammar: Grammar, graphs: Mapping[str, AtomGraph], *,
                    token_model: TokenModel | None = None, group: str | None = None,
                    min_domain_size: int | None = None, path: Path | None = None, **extra) -> Comparable:
        """Parse ``graphs`` with ``grammar`` and build the item from the parses (usage, disorder, domains).

        For grammars held in memory: one per micrograph group of a run, or a run re-expressed in a common
        token vocabulary; ``extra`` sets the other attributes (``moire``, ``features``, ``induction``).
        """
        images, usage, domains = {}, defaultdict(Counter), []
        names = {d.name for d in grammar.domains}
        for image_id, graph in graphs.items():
            parse = parse_graph(grammar, graph, min_domain_size=min_domain_size)
            images[image_id] = {**disorder_measures(grammar, graph, parse)._asdict(), "n_atoms": graph.n_atoms}
            usage[0].update(Counter(np.asarray(graph.tokens).astype(str).tolist()))
            for level, per in parse.motif_counts.items():
                usage[level].update(per)
            _domain_sizes(parse.root, names, domains)
        return cls(name=name, grammar=grammar, path=path, group=group, token_model=token_model,
                   graphs=dict(graphs), images=images, usage={k: dict(v) for k, v in usage.items()},
                   min_domain_size=min_domain_size, domain_sizes=tuple(domains), **extra)


def load_comparable(path, *, group: str | None = None) -> Comparable:
    """Load a run directory or a bare grammar file for comparison.

    Parameters
    ----------
    path : str or Path
        A run directory (``grammar.txt`` required; ``tokens.npz``, ``features.npz``, ``summary.json``,
        ``parses/`` and the CSV files used when present), or a grammar file (with a ``tokens.npz`` beside
        it, if any). A file named ``grammar.txt`` next to a ``summary.json`` loads its whole run directory.
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
    fixed_disc = summary.get("spec", {}).get("features", {}).get("patch_size")
    images = {i: {**{k: m[k] for k in (*MEASURES, "n_atoms", "patch_size_px", "disc_diameter_px") if m.get(k) is not None},
                  **({"disc_fixed_px": fixed_disc} if isinstance(fixed_disc, int) else {})}
              for i, m in infos.items()}
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
    features = read_features(path)
    if features is not None and group is not None:
        features = FeatureStore(features.descriptor, features.n_max,
                                {i: a for i, a in features.images.items() if i in infos})
    trees, _ = rundir.read_parses(path) if graphs else ({}, {})
    domain_names = {d.name for d in grammar.domains}
    domains = [size for image, tree in trees.items() if image in infos
               for size in _domain_sizes(tree, domain_names, [])]
    settings = summary.get("spec", {}).get("grammar", {})
    mds = settings.get("min_domain_size")
    groups = sorted({m.get("group") for m in infos.values()} - {None})
    return Comparable(
        name=path.resolve().name if group is None else f"{path.resolve().name}/{group}",
        grammar=grammar, path=path, group="+".join(groups) or None, token_model=token_model, graphs=graphs,
        images=images, usage=usage, min_domain_size=mds if isinstance(mds, int) else None, features=features,
        moire={i: m["moire"] for i, m in infos.items() if m.get("moire")}, domain_sizes=tuple(domains),
        induction={k: v for k, v in settings.items() if k in ("min_count", "max_motif_size") and isinstance(v, int)},
    )
