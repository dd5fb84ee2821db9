"""The pipeline: spec → micrographs → atoms → features → tokens → atom graphs → grammar → parses → outputs.

Orchestration only. Passes over the micrographs keep memory flat however many a run has: per-atom data
lives in each micrograph's cache entry (:mod:`motifgram.engine.records`), and the passes that need it read
it there.

1. :func:`analysis_pass`, per micrograph (any executor): load, detect, features, graph
   (:mod:`motifgram.engine.stages`), through the cache; only a compact record comes back;
2. global, in this process: the token mixture is fitted on the pooled samples (:func:`learn_run_tokens`);
3. :func:`token_pass`, per micrograph (any executor): tokens of every atom, and its rows of atoms.csv; only
   the labels (one byte per atom) come back;
4. global, in this process: the grammar is induced from all ring graphs (read from the cache);
5. :func:`parse_pass`, per micrograph (any executor): parse, overlay, the rows of bonds.csv and rings.csv
   and the summary entry.

Every file of the run directory is written through :mod:`motifgram.engine.rundir`.
"""

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from motifgram.engine import rundir
from motifgram.engine.cache import cache_dir_for, load_entry, save_entry
from motifgram.engine.errors import GrammarError, MotifgramError, NoLatticeError
from motifgram.engine.executor import open_executor
from motifgram.engine.featurestore import reference_token_model, write_features
from motifgram.engine.graph import AtomGraph, ring_statistics
from motifgram.engine.io import Micrograph, check_image_file
from motifgram.engine.moire import measure_moire
from motifgram.engine.outputs import atomic_run_dir, check_output_dir
from motifgram.engine.progress import Progress
from motifgram.engine.records import (
    Failure,
    MicrographRecord,
    entry_from_analysis,
    input_cache_key,
    label_dtype,
    load_graph,
    read_entry,
    record_from_entry,
)
from motifgram.engine.overlay import render_overlay
from motifgram.engine.report import write_report
from motifgram.engine.spec import Spec, bundled_spec_path, load_spec
from motifgram.engine.stages import StageTimer, analyse_micrograph, load_input, naming_source
from motifgram.engine.tokens import TokenModel, assign_tokens, class_averages, learn_tokens, merging_summary
from motifgram.grammar.disorder import POOR_FIT_FACTOR, POOR_FIT_MARGIN_BITS, disorder_measures, is_poor_fit
from motifgram.grammar.induce import InductionResult, induce_grammar
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import parse_graph

__all__ = ["run", "parse_with_grammar", "analysis_pass", "token_pass", "parse_pass", "learn_run_tokens"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------------
# The passes over the micrographs (top-level, so that every executor can pickle them)


def analysis_pass(index: int, item, spec: Spec, cache_dir: Path, n_inputs: int):
    """Detection, features and graph of one input, through the cache; a Failure for unusable input.

    The record carries this micrograph's share (one in ``n_inputs``) of the token fit's sample, copied out
    of the entry so that only that share travels and stays in memory. Returns ``(record_or_failure,
    seconds)``.
    """
    timer = StageTimer()
    key = input_cache_key(item, spec)
    entry = load_entry(cache_dir, key)
    if entry is not None:
        return record_from_entry(index, item, key, entry, n_inputs), timer.as_dict()
    try:
        with timer("load"):
            micrograph = load_input(item)
        with naming_source(micrograph.source):
            analysis = analyse_micrograph(micrograph, spec, timer)
    except MotifgramError as exc:
        return Failure(index, item.id, str(item.path or f"simulate:{item.simulate.kind}"), str(exc)), timer.as_dict()
    arrays = entry_from_analysis(analysis, spec.seed)
    if spec.detect.method == "grid":
        with timer("moire"):
            arrays["moire"] = np.array(json.dumps(_moire_summary(micrograph)))
    save_entry(cache_dir, key, arrays)
    return record_from_entry(index, item, key, arrays, n_inputs, recomputed=True), timer.as_dict()


def _moire_summary(micrograph: Micrograph) -> dict | None:
    """Twist angle and moiré period from the Fourier transform; None when the image shows no lattice."""
    try:
        return measure_moire(micrograph.image, pixel_size_nm=micrograph.pixel_size_nm).to_summary()
    except NoLatticeError:
        return None


def token_pass(record: MicrographRecord, token_model: TokenModel, cache_dir: Path, parts: Path):
    """Tokens of every atom of one micrograph from its cached features, and its rows of atoms.csv.

    Returns ``(labels, mean_confidence, units, seconds)``: labels ((N,) unsigned int, the smallest type that
    holds them) index ``token_model.names``; units ((K,) int64) the sum of each token's confidences as written
    (:func:`rundir.confidence_sums`), for the report.
    """
    timer = StageTimer()
    with timer("tokens"):
        entry = read_entry(cache_dir, record, ("invariants", "xy", "intensity", "network"))
        labels, confidence = assign_tokens(token_model, entry["invariants"])
    with timer("write"):
        rows = rundir.atoms_rows(record.id, entry["xy"], token_model.names, labels, confidence, entry["intensity"],
                                 entry["network"], record.pixel_size_nm)
        rundir.write_part(parts, record.index, "atoms", rows)
    mean_confidence = round(float(np.mean(confidence)), 4) if len(confidence) else None
    units = rundir.confidence_sums(labels, confidence, len(token_model.names))
    return labels.astype(label_dtype(len(token_model.names))), mean_confidence, units, timer.as_dict()


@dataclass(frozen=True)
class _ParseSettings:
    """What :func:`parse_pass` needs besides the record (shared by all micrographs of a run)."""

    token_names: tuple
    grammar: Grammar
    min_domain_size: int | None
    ring_symbol_names: tuple
    overlays: bool
    staging: Path
    sampling: str
    cache_dir: Path


def parse_pass(record: MicrographRecord, item, labels: np.ndarray, mean_confidence: float | None,
               settings: _ParseSettings):
    """Parse one tokenised micrograph, render its overlay and write its rows; returns its summary entry."""
    timer = StageTimer()
    names = np.asarray(settings.token_names)
    with timer("parse"):
        graph = load_graph(record, settings.cache_dir, names[labels])
        parse = parse_graph(settings.grammar, graph, min_domain_size=settings.min_domain_size)
    with timer("write"):
        parts = settings.staging / "parts"
        rundir.write_part(parts, record.index, "bonds", rundir.bonds_rows(record.id, graph.bonds))
        rundir.write_part(parts, record.index, "rings",
                          rundir.rings_rows(record.id, graph.rings, parse.ring_symbols, graph.ring_border))
        rundir.write_parse(settings.staging, record.id, parse.root.to_json())
    if settings.overlays:
        with timer("overlay"):
            render_overlay(
                load_input(item).image, graph.xy, labels, settings.token_names, graph.rings, parse.ring_symbols,
                rundir.overlay_path(settings.staging, record.id), title=record.id,
                ring_symbol_names=list(settings.ring_symbol_names), pixel_size_nm=record.pixel_size_nm,
            )
    counts = np.bincount(labels, minlength=len(settings.token_names))
    summary = rundir.image_summary(
        record, graph, {n: int(c) for n, c in zip(settings.token_names, counts)}, mean_confidence, parse,
        disorder_measures(settings.grammar, graph, parse)._asdict(), ring_statistics(graph.ring_sizes),
        sampling=settings.sampling,
    )
    return summary, timer.as_dict()


# ------------------------------------------------------------------------------------------------------------
# Global stages


def learn_run_tokens(records: list[MicrographRecord], spec: Spec, cache_dir: Path | None = None) -> TokenModel:
    """Fit the token mixture on a seeded sample pooled from every micrograph of the run.

    With ``cache_dir`` and the ``chemistry`` descriptor the bonded neighbours of the sampled atoms join the fit
    (after every sampled row, as context only), so that the token count is chosen by description length with
    each sampled atom's token coded given its neighbours' (:func:`motifgram.engine.tokens.learn_tokens`). Class averages need one patch size: they come from the
    micrographs whose automatic patch size is the run's most common one (all of them when the micrographs
    share a magnification).
    """
    invariants = _pooled_invariants(records)
    neighbours = None
    if cache_dir is not None and spec.tokens.k is None and spec.feature_descriptor == "chemistry":
        extra, neighbours = _sample_neighbours(records, cache_dir, len(invariants))
        invariants = np.concatenate([invariants, extra])
    common_size = Counter(r.patch_size for r in records).most_common(1)[0][0]
    averaged = [r for r in records if r.patch_size == common_size]
    k = spec.tokens.k if spec.tokens.k is not None else "auto"
    model, labels, _ = learn_tokens(
        invariants,
        k=k,
        k_range=tuple(spec.tokens.k_range),
        names=spec.tokens.names,
        seed=spec.seed,
        n_init=spec.tokens.n_init,
        max_iter=spec.tokens.max_iter,
        lattice_period_px=float(np.median([r.lattice_period_px for r in records])),
        descriptor=spec.feature_descriptor,
        neighbours=neighbours,
    )
    # the sampled patches are the first rows of each record's sample: take their labels from the fit
    starts = np.cumsum([0] + [len(r.sample.invariants) for r in records])
    patch_labels = np.concatenate([
        labels[start : start + len(r.sample.moments)]
        for r, start in zip(records, starts[:-1], strict=True)
        if r.patch_size == common_size
    ])
    moments = np.concatenate([r.sample.moments for r in averaged])
    patches = np.concatenate([r.sample.patches for r in averaged])
    averages = class_averages(patches, moments, patch_labels, len(model.names), seed=spec.seed)
    return dataclasses.replace(model, class_averages=averages, patch_size=common_size, n_max=spec.features.n_max)


def _sample_neighbours(records, cache_dir: Path, n_sampled: int) -> tuple[np.ndarray, np.ndarray]:
    """The features of the bonded neighbours of every sampled atom that are not sampled themselves, and the
    neighbours ``(n_sampled, J)`` of each sampled row as row indices into the sample followed by those
    features (``-1`` pads)."""
    extra, rows, offset = [], [], n_sampled
    start = 0
    for record in records:
        entry = read_entry(cache_dir, record, ("invariants", "bonds", "sample"))
        sampled = entry["sample"][: len(record.sample.invariants)]
        bonds = np.asarray(entry["bonds"], dtype=np.int64).reshape(-1, 2)
        n_atoms = len(entry["invariants"])
        row_of = np.full(n_atoms, -1, np.int64)
        row_of[sampled] = start + np.arange(len(sampled))
        is_sampled = np.zeros(n_atoms, bool)
        is_sampled[sampled] = True
        pairs = np.concatenate([bonds, bonds[:, ::-1]])
        pairs = pairs[is_sampled[pairs[:, 0]]]
        others = np.unique(pairs[~is_sampled[pairs[:, 1]], 1])
        row_of[others] = offset + np.arange(len(others))
        extra.append(entry["invariants"][others])
        offset += len(others)
        degree = np.bincount(pairs[:, 0], minlength=n_atoms)
        width = max(int(degree.max(initial=0)), 1)
        table = np.full((n_atoms, width), -1, np.int64)
        order = np.argsort(pairs[:, 0], kind="stable")
        first = np.concatenate([[0], np.cumsum(degree)[:-1]])
        slot = np.arange(len(pairs)) - first[pairs[order, 0]]
        table[pairs[order, 0], slot] = row_of[pairs[order, 1]]
        rows.append(table[sampled])
        start += len(sampled)
    width = max(t.shape[1] for t in rows)
    neighbours = np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1])), constant_values=-1) for t in rows])
    width_features = records[0].sample.invariants.shape[1]
    features = np.concatenate(extra) if extra else np.zeros((0, width_features), np.float32)
    return features, neighbours


def _pooled_invariants(records) -> np.ndarray:
    """(S, M) float32: the token fit's sample, pooled over the records in order."""
    return np.concatenate([r.sample.invariants for r in records])


def _embedding(token_model: TokenModel, invariants, *, seed: int, max_points: int = 5000):
    """The first two whitened principal components of a seeded sample of atoms, and their tokens (the
    report's scatter plot); ``invariants`` ((S, M) float32) is the token fit's pooled sample."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(invariants), size=min(max_points, len(invariants)), replace=False))
    labels, _ = assign_tokens(token_model, invariants[pick])
    return token_model.transform(invariants[pick])[:, :2], labels


def _tokenise(records, token_model: TokenModel, cache_dir: Path, parts: Path, executor, progress, timer):
    """Token labels of every atom (one array per record), the mean confidence of each record and the run's
    per-token statistics (:func:`rundir.token_stats`), computed per micrograph on the executor (which also
    writes the rows of atoms.csv)."""
    labels, mean_confidences = [], []
    k = len(token_model.names)
    counts, units = np.zeros(k, np.int64), np.zeros(k, np.int64)
    n = len(records)
    with progress.task("tokens", n) as advance:
        for lab, mean_confidence, token_units, seconds in executor.map(
            token_pass, records, [token_model] * n, [cache_dir] * n, [parts] * n
        ):
            labels.append(lab)
            mean_confidences.append(mean_confidence)
            counts += np.bincount(lab, minlength=k)
            units += token_units
            timer.add(seconds)
            advance()
    return labels, mean_confidences, rundir.token_stats(token_model.names, counts, units)


def _graphs(records, labels, token_model: TokenModel, cache_dir: Path, members=None) -> Iterator[AtomGraph]:
    """The atom graphs, with tokens, of the micrographs at positions ``members`` (default: all), read from
    the cache one at a time as they are consumed (for the global grammar stages)."""
    names = np.asarray(token_model.names)
    for i in range(len(records)) if members is None else members:
        yield load_graph(records[i], cache_dir, names[labels[i]])


def _induce(graphs, spec: Spec, name: str) -> InductionResult:
    return induce_grammar(
        graphs, name=name, min_count=spec.grammar.min_count, max_motif_size=spec.grammar.max_motif_size,
        min_domain_size=spec.grammar.min_domain_size,
    )


def _compare_groups(spec, records, graphs_of, token_model, grammar, timer):
    """One grammar per group (when a run has several) and the comparison of the groups.

    The groups share the run's token vocabulary and joint grammar, so they are compared in that common
    basis: each group's micrographs are parsed with the joint grammar and the distance is the
    Jensen–Shannon divergence of their rule usage (a per-group grammar, learned from a few micrographs,
    also models their idiosyncrasies: two micrographs of one material can learn different rare motifs).
    The per-group grammars are returned for the run directory (``grammars/<group>.txt``); comparing them
    by cross description length is ``motifgram compare`` between runs. A run of one group is compared only
    when the spec names references (its grammar is then classified against them). ``graphs_of(positions)``
    yields the tokenised graphs of the micrographs at those positions.

    Returns
    -------
    group_grammars : dict of str to Grammar
        Empty for a run of one group.
    comparison : Comparison or None
    """
    groups: dict[str, list[int]] = {}
    for position, record in enumerate(records):
        groups.setdefault(record.group, []).append(position)
    references = dict(spec.compare.references) or None
    if len(groups) < 2 and references is None:
        return {}, None
    from motifgram.grammar.compare import compare  # SciPy's clustering and optimize: only here
    from motifgram.grammar.items import Comparable
    group_grammars = {}
    if len(groups) > 1:
        with timer("grammar"):
            for group, members in groups.items():
                group_grammars[group] = _induce(graphs_of(members), spec, f"{spec.name}/{group}").grammar
    with timer("compare"):
        items = [
            Comparable.from_graphs(
                group, grammar, {records[i].id: g for i, g in zip(members, graphs_of(members), strict=True)},
                token_model=token_model,
                group=group, min_domain_size=spec.grammar.min_domain_size,
            )
            for group, members in groups.items()
        ]
        comparison = compare(items, references=references, tokens="own")  # the groups share the run's tokens
    return group_grammars, comparison


# ------------------------------------------------------------------------------------------------------------
# Runs


def run(spec=None, *, out_dir=None, force: bool = False, quiet: bool = False) -> Path:
    """Run the whole pipeline for a spec and write its run directory.

    Parameters
    ----------
    spec : Spec, str, Path or None
        A loaded spec or the path of a YAML spec; None runs the bundled demo spec.
    out_dir : str or Path, optional
        Run directory; overrides ``output.dir`` of the spec.
    force : bool
        Replace an existing non-empty run directory.
    quiet : bool
        No progress display.

    Returns
    -------
    Path
        The run directory, complete (it is moved into place only when every file is written).

    Notes
    -----
    Per-micrograph results are cached in a hidden folder beside the run directory
    (``.<run name>.cache``), keyed by each input's content and the stage parameters: a run that was
    interrupted redoes only what is missing. A micrograph that cannot be analysed is skipped and listed in
    ``summary.json`` under ``failed``; when none can be, the run stops with an error.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec if spec is not None else bundled_spec_path("demo"))
    out_dir = Path(out_dir) if out_dir is not None else spec.run_dir()
    check_output_dir(out_dir, force=force)
    cache_dir = cache_dir_for(out_dir)
    timer = StageTimer()
    items = list(spec.inputs)
    with Progress(enabled=not quiet) as progress, open_executor(spec.engine, len(items)) as executor:
        records, failures = _analyse_all(items, spec, cache_dir, executor, progress, timer)
        if not records:
            raise MotifgramError("no micrograph could be analysed:\n" + "\n".join(f.reason for f in failures))
        for failure in failures:
            log.warning("skipped %s: %s", failure.id, failure.reason)
        with timer("tokens"):
            token_model = (learn_run_tokens(records, spec, cache_dir) if spec.tokens.model is None
                           else reference_token_model(spec.tokens.model, descriptor=spec.feature_descriptor,
                                                      n_max=spec.features.n_max))
        fit_invariants = _pooled_invariants(records)
        records = [dataclasses.replace(r, sample=None) for r in records]
        with atomic_run_dir(out_dir, force=force) as staging:
            (staging / "parts").mkdir()
            labels, mean_confidences, token_stats = _tokenise(records, token_model, cache_dir, staging / "parts",
                                                              executor, progress, timer)
            with timer("grammar"):
                induced = _induce(_graphs(records, labels, token_model, cache_dir), spec, spec.name)
                grammar = induced.grammar
            group_grammars, comparison = _compare_groups(
                spec, records, partial(_graphs, records, labels, token_model, cache_dir), token_model, grammar, timer
            )
            images = _parse_all(staging, spec, records, labels, mean_confidences, token_model, grammar,
                                [items[r.index] for r in records], executor, progress, timer, cache_dir=cache_dir)
            _write_run_files(staging, spec, records, token_model, grammar, images, failures, timer, induced=induced,
                             fit_invariants=fit_invariants, output_dir=out_dir.absolute(), token_stats=token_stats,
                             group_grammars=group_grammars, comparison=comparison)
            with timer("write"):  # every atom's features, for compare's common vocabulary (featurestore.py)
                write_features(staging, {r.id: read_entry(cache_dir, r, ("invariants",))["invariants"]
                                         for r in records}, descriptor=token_model.descriptor,
                               n_max=spec.features.n_max)
    return out_dir


def _analyse_all(items, spec, cache_dir, executor, progress, timer):
    """The records of the inputs that could be analysed, and the failures of the others."""
    records, failures = [], []
    n = len(items)
    with progress.task("atoms, features, graph", n) as advance:
        for result, seconds in executor.map(analysis_pass, range(n), items, [spec] * n, [cache_dir] * n, [n] * n):
            timer.add(seconds)
            (failures if isinstance(result, Failure) else records).append(result)
            advance()
    return records, failures


def _parse_all(staging, spec, records, labels, mean_confidences, token_model, grammar, items, executor, progress,
               timer, *, cache_dir):
    """Last pass over every micrograph, then the CSV files assembled from their parts in input order.

    The rows of atoms.csv are already in ``staging/parts`` (written by :func:`token_pass`).
    """
    for folder in (rundir.PARSES, *((rundir.OVERLAYS,) if spec.output.overlays else ())):
        (staging / folder).mkdir()
    settings = _ParseSettings(
        token_names=tuple(token_model.names),
        grammar=grammar,
        min_domain_size=spec.grammar.min_domain_size,
        ring_symbol_names=tuple(r.name for r in sorted(grammar.rings, key=lambda r: -r.count)),
        overlays=spec.output.overlays,
        staging=staging,
        sampling=spec.detect.method,
        cache_dir=cache_dir,
    )
    images = {}
    n = len(records)
    with progress.task("parse, overlays", n) as advance:
        for record, (summary, seconds) in zip(records, executor.map(
            parse_pass, records, items, labels, mean_confidences, [settings] * n
        ), strict=True):
            images[record.id] = summary
            timer.add(seconds)
            advance()
    with timer("write"):
        rundir.assemble_tables(staging, staging / "parts", [r.index for r in records])
    return images


def _write_run_files(staging, spec, records, token_model, grammar, images, failures, timer, *, fit_invariants,
                     output_dir, token_stats, group_grammars=None, comparison=None, induced=None):
    """grammar.txt (and grammars/), tokens.npz, embedding.npz, summary.json and report.html (given what the run
    holds: its grammar and token statistics are not read back)."""
    with timer("write"):
        rundir.write_grammars(staging, grammar, group_grammars or {})
        token_model.save(staging / rundir.TOKENS_NPZ)
        rundir.write_embedding(staging, *_embedding(token_model, fit_invariants, seed=spec.seed))
        merging = None
        if spec.tokens.k is None:  # the overlaps of the merges, and the description-length choice
            choice = token_model.choice
            merging = merging_summary(token_model.mixture, n_tokens=len(token_model.names) if choice else None)
            merging["vocabulary"] = choice or {}
            merging["close_call"] = merging["close_call"] or bool(merging["vocabulary"].get("close_call"))
        summary = rundir.run_summary(spec, records, images, failures, token_model=token_model, merging=merging,
                                     grammar=grammar, timings=timer.as_dict(), output_dir=output_dir,
                                     comparison=comparison, induced=induced)
        rundir.write_summary(staging, summary)
    if spec.output.report:
        write_report(staging, grammar=grammar, token_stats=token_stats)


# ------------------------------------------------------------------------------------------------------------
# Applying a learned grammar


def _fit(image_id: str, bits_per_atom: float, own_bits: float | None) -> dict:
    """summary.json's ``fit`` of a micrograph parsed with an existing grammar; warns when the fit is poor."""
    if own_bits is None:
        log.info("%s: %.3g bits/atom (the grammar's own is unknown: no summary.json beside it)", image_id,
                 bits_per_atom)
        return {"bits_per_atom": bits_per_atom, "grammar_bits_per_atom": None, "poor": None}
    poor = is_poor_fit(bits_per_atom, own_bits)
    if poor:
        log.warning(
            "%s: the grammar fits this micrograph poorly: %.3g bits/atom against %.3g bits/atom on the micrographs "
            "it was learned from (more than %g x theirs + %g): it differs from them (another material or structure, "
            "other imaging conditions or far more defects); 'motifgram run' learns its own grammar", image_id,
            bits_per_atom, own_bits, POOR_FIT_FACTOR, POOR_FIT_MARGIN_BITS)
    return {"bits_per_atom": bits_per_atom, "grammar_bits_per_atom": round(own_bits, 5), "poor": poor}


def parse_with_grammar(grammar_path, image_path, *, out_dir=None, pixel_size_nm=None, force=False,
                       quiet=False) -> Path:
    """Apply a learned grammar and its token model to a new micrograph, without re-learning.

    The token model is the ``tokens.npz`` beside the grammar file (as in a run directory). The output
    directory is a run directory of its own (atoms, bonds, rings, the parse tree, summary, overlay). Its
    summary.json gives each micrograph's ``fit``: its bits per atom against those of the micrographs the
    grammar was learned from, and ``poor`` (with a warning) when it costs far more
    (:func:`motifgram.grammar.disorder.is_poor_fit`).
    """
    grammar_path = rundir.grammar_file(grammar_path)
    grammar = rundir.read_grammar_file(grammar_path)
    model_path = rundir.token_model_path(grammar_path)
    token_model = TokenModel.load(model_path)
    grammar_tokens = {t.name for t in grammar.tokens}
    if set(token_model.names) != grammar_tokens:
        raise GrammarError(
            f"{grammar_path}: the grammar's tokens ({', '.join(sorted(grammar_tokens))}) do not match the token "
            f"model {model_path} ({', '.join(token_model.names)}); use the tokens.npz of the run that wrote this grammar"
        )
    image_path = check_image_file(image_path, fix="check the IMAGE argument")
    item = {"path": str(image_path.absolute())}
    if pixel_size_nm is not None:
        item["pixel_size"] = pixel_size_nm
    spec = load_spec({
        "name": f"parse-{image_path.stem}",
        "inputs": [item],
        "features": {"n_max": int(token_model.n_max), "descriptor": token_model.descriptor},
        # intensity tokens describe grid points (twisted bilayers); Zernike tokens describe atom columns, or
        # the atoms between ring-centre spots when the grammar's run said so
        "detect": {"method": "grid" if token_model.descriptor == "intensity" else "atoms",
                   "spots": rundir.learned_spots(grammar_path.parent)},
        "tokens": {"k": len(token_model.names), "names": list(token_model.names)},
    })
    out_dir = Path(out_dir) if out_dir is not None else spec.run_dir()
    check_output_dir(out_dir, force=force)
    cache_dir = cache_dir_for(out_dir)
    timer = StageTimer()
    items = list(spec.inputs)
    record, seconds = analysis_pass(0, items[0], spec, cache_dir, 1)
    timer.add(seconds)
    if isinstance(record, Failure):
        raise MotifgramError(record.reason)
    fit_invariants = _pooled_invariants([record])
    record = dataclasses.replace(record, sample=None)
    with Progress(enabled=not quiet) as progress, open_executor(spec.engine, 1) as executor:
        with atomic_run_dir(out_dir, force=force) as staging:
            (staging / "parts").mkdir()
            labels, mean_confidences, token_stats = _tokenise([record], token_model, cache_dir, staging / "parts",
                                                              executor, progress, timer)
            images = _parse_all(staging, spec, [record], labels, mean_confidences, token_model, grammar, items,
                                executor, progress, timer, cache_dir=cache_dir)
            own_bits = rundir.own_bits_per_atom(grammar_path.parent)
            for image_id, info in images.items():
                info["fit"] = _fit(image_id, info["bits_per_atom"], own_bits)
            _write_run_files(staging, spec, [record], token_model, grammar, images, [], timer,
                             fit_invariants=fit_invariants, output_dir=out_dir.absolute(), token_stats=token_stats)
    return out_dir
