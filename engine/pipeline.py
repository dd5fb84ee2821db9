"""The pipeline: spec → micrographs → atoms → features → tokens → atom graphs → grammar → parses → outputs.

Passes over the micrographs keep memory flat however many a run has: per-atom data lives in each
micrograph's cache entry, and the passes that need it read it there.

1. per micrograph (any executor): load, detect, features, graph; the result is cached on disk and only a
   compact record (scalars and the micrograph's share of the token fit's sample) comes back;
2. global, in this process: the token mixture is fitted on the pooled samples;
3. per micrograph (any executor): tokens of every atom from the cached features, and the micrograph's rows
   of atoms.csv; only the labels (one byte per atom) come back;
4. global, in this process: the grammar is induced from all ring graphs (read from the cache);
5. per micrograph (any executor): parse, overlay, the rows of bonds.csv and rings.csv and the summary.

Orchestration only: every number comes from the stage modules.
"""

import dataclasses
import json
from datetime import datetime, timezone
import logging
import shutil
import time
import typing
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from motifgram.grammar.compare import Comparable, compare
from motifgram.grammar.disorder import disorder_measures
from motifgram.grammar.dsl import grammar_file, read_grammar_file
from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import parse_graph

from .cache import cache_dir_for, cache_key, fingerprint_file, load_entry, save_entry
from .context import context_features
from .detect import Atoms, _nn_distance, detect_atoms, remove_scan_noise
from .dual import RingCentreSites, ring_centre_sites
from .pairs import DumbbellSites, dumbbell_sites
from .errors import GrammarError, ImageError, MotifgramError, NoLatticeError
from .executor import open_executor
from .graph import AtomGraph, Rings, build_graph, graph_from_bonds, ring_statistics
from .io import Micrograph, load_micrograph
from .moire import grid_points, measure_moire
from .outputs import atomic_run_dir, check_output_dir, csv_field, write_json
from .patches import extract_patches, intensity_quantiles, normalise_image, patch_size_for
from .progress import Progress
from .report import render_overlay, write_report
from .simulate import simulate
from .spec import Spec, SpotKind, bundled_spec_path, load_spec
from .tokens import (
    DEFAULT_MERGE_THRESHOLD,
    UNDECIDED_OVERLAP,
    Features,
    TokenModel,
    assign_tokens,
    class_averages,
    compute_features,
    is_close_call,
    learn_tokens,
    merge_decision,
    merge_sequence,
)

__all__ = [
    "run",
    "parse_with_grammar",
    "analyse_micrograph",
    "atoms_at_ring_centres",
    "atoms_at_dumbbells",
    "load_input",
    "MicrographAnalysis",
    "MicrographRecord",
    "FitSample",
]

log = logging.getLogger(__name__)

#: Atoms used to fit the token mixture (pooled over micrographs); every atom is then tokenised.
TOKEN_FIT_SAMPLE = 40_000
#: Radius of the intensity-quantile disk (``features.descriptor: intensity``), in lattice periods: more than
#: a unit cell, so the descriptor does not depend on where a grid point falls in it.
INTENSITY_RADIUS_PERIODS = 1.5
#: Atoms per micrograph kept for the token fit, and for the rotation-aligned class averages (cached) ...
SAMPLE_PER_MICROGRAPH = 4096
PATCHES_PER_MICROGRAPH = 512
#: ... of which a run keeps an equal share per micrograph, about this many patches in all.
PATCH_SAMPLE = 8192
#: Bump when a change to the per-micrograph stages makes cached results stale (2: the zernike_context
#: descriptor became the default for atoms; 4: fast-scan noise removed before detection and features).
CACHE_VERSION = 4

ATOMS_HEADER = ("image", "id", "x", "y", "token", "confidence", "intensity")
BONDS_HEADER = ("image", "i", "j")
RINGS_HEADER = ("image", "ring", "size", "symbol", "atoms")


@dataclass(frozen=True, eq=False)
class MicrographAnalysis:
    """Everything computed for one micrograph before the global stages.

    Attributes
    ----------
    micrograph : Micrograph
    atoms : Atoms
        Sub-pixel atom positions (px) and intensities.
    features : Features
        Zernike moments and rotation invariants of each atom's neighbourhood (and its square patches,
        extracted when first used, for class averages).
    graph : AtomGraph
        Bonds and rings (tokens not yet assigned).
    """

    micrograph: Micrograph
    atoms: Atoms
    features: Features
    graph: AtomGraph

    @property
    def invariants(self) -> np.ndarray:
        return self.features.invariants

    @property
    def moments(self) -> np.ndarray:
        return self.features.moments


@dataclass(frozen=True, eq=False)
class FitSample:
    """One micrograph's share of the pooled sample the token mixture is fitted on.

    Attributes
    ----------
    invariants : (S, M) float32 ndarray
        Features of the atoms drawn (seeded by the input's id, away from the border).
    moments : (S', M) complex64 ndarray
        Moments of the first S' of them, for the class averages.
    patches : (S', P, P) float32 ndarray
        Their square patches, P = the record's ``patch_size``.
    """

    invariants: np.ndarray
    moments: np.ndarray
    patches: np.ndarray


@dataclass(frozen=True, eq=False)
class MicrographRecord:
    """The compact result of the first pass for one micrograph, kept for the whole run.

    No per-atom array: positions, bonds, rings and all atoms' features stay in the cache entry
    ``cache_key``, read by the passes that need them, so the main process holds a few hundred bytes per
    micrograph (plus the share of the token fit's sample, whose total is capped).

    Attributes
    ----------
    index : int
        Position of the input in the spec.
    id, group, source : str
    shape : tuple of int
        Image shape (H, W) in px.
    pixel_size_nm : float or None
    n_atoms : int
    lattice_period_px, nn_distance_px : float
    patch_size : int
        Feature patch side (px).
    cache_key : str
        Entry of the cache holding the micrograph's atoms, graph and features.
    recomputed : bool
        False when the record came from the cache.
    moire : dict or None
        Twist and moiré period (``detect.method: grid`` only; see :mod:`motifgram.engine.moire`).
    sample : FitSample or None
        This micrograph's share of the token fit's sample (None once the tokens are fitted).
    """

    index: int
    id: str
    group: str
    source: str
    shape: tuple
    pixel_size_nm: float | None
    n_atoms: int
    lattice_period_px: float
    nn_distance_px: float
    patch_size: int
    cache_key: str
    recomputed: bool
    moire: dict | None = None
    sample: FitSample | None = None


@dataclass(frozen=True)
class Failure:
    """A micrograph that could not be analysed, and why."""

    index: int
    id: str
    source: str
    reason: str


class StageTimer:
    """Accumulates wall-clock seconds per stage name across micrographs."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def add(self, seconds: dict[str, float]) -> None:
        for stage, value in seconds.items():
            self.seconds[stage] += value

    def as_dict(self) -> dict[str, float]:
        return {stage: round(seconds, 4) for stage, seconds in self.seconds.items()}


# ------------------------------------------------------------------------------------------------------------
# Per-micrograph stages


def load_input(item) -> Micrograph:
    """Load one resolved input of a spec: a file, or a simulated micrograph."""
    if item.simulate is not None:
        sim = simulate(item.simulate.kind, size=item.simulate.size, seed=item.simulate.seed, **item.simulate.options)
        return Micrograph(
            image=sim.image,
            pixel_size_nm=item.pixel_size if item.pixel_size is not None else sim.pixel_size_nm,
            id=item.id,
            group=item.group,
            source=f"simulate:{item.simulate.kind}",
        )
    return load_micrograph(item.path, pixel_size_nm=item.pixel_size, id=item.id, group=item.group)


def analyse_micrograph(micrograph: Micrograph, spec: Spec, timer: StageTimer | None = None) -> MicrographAnalysis:
    """Run the per-micrograph stages: detection, features and the atom graph."""
    timer = timer or StageTimer()
    detect = spec.detect
    with timer("detect"):
        if detect.method == "grid":
            cleaned = micrograph.image
            atoms = grid_points(cleaned, spacing_px=detect.spacing)
        else:
            cleaned = remove_scan_noise(micrograph.image)  # detection and features see the same image
            atoms = detect_atoms(
                cleaned,
                lattice_period_px=detect.lattice_period,
                min_distance_px=detect.min_distance,
                threshold=detect.threshold,
                denoise_sigma_px=detect.denoise_sigma,
                refine=detect.refine,
                dark_atoms=detect.dark_atoms,
                scan_noise_removal=False,
            )
        sites = None
        if detect.spots == "ring_centres":
            atoms, sites = atoms_at_ring_centres(cleaned, atoms, bond_factor=spec.graph.bond_factor)
        elif detect.spots == "dumbbells":  # one site per dumbbell; the rest of the run treats them as atoms
            atoms, _ = atoms_at_dumbbells(atoms)
    with timer("features"):
        image = normalise_image(cleaned, atoms.xy)
        features = compute_features(
            image,
            atoms.xy,
            patch_size=spec.features.patch_size or patch_size_for(atoms.lattice_period_px),
            n_max=spec.features.n_max,
        )
        descriptor = feature_descriptor(spec)
        if descriptor == "intensity":
            quantiles = intensity_quantiles(image, atoms.xy, radius_px=INTENSITY_RADIUS_PERIODS * atoms.lattice_period_px)
            features = dataclasses.replace(features, invariants=quantiles)
        elif descriptor == "zernike_context":
            context = context_features(features.moments, image, atoms.xy, nn_distance_px=atoms.nn_distance_px)
            features = dataclasses.replace(features, invariants=context)
    with timer("graph"):
        if sites is not None:  # the dual lattice's bonds, exact whatever the bond lengths
            graph = graph_from_bonds(
                atoms.xy,
                sites.bonds,
                image_shape=micrograph.image.shape,
                max_ring=spec.graph.max_ring,
                border_px=spec.graph.border,
                bond_factor=sites.spot_bond_factor,
            )
        else:
            graph = build_graph(
                atoms.xy,
                image_shape=micrograph.image.shape,
                bond_factor=spec.graph.bond_factor,
                max_ring=spec.graph.max_ring,
                border_px=spec.graph.border,
            )
    return MicrographAnalysis(micrograph, atoms, features, graph)


def atoms_at_ring_centres(image: np.ndarray, spots: Atoms, *, bond_factor: float | None = None
                          ) -> tuple[Atoms, RingCentreSites]:
    """The atoms of the lattice whose ring centres are the detected ``spots`` (``detect.spots: ring_centres``).

    Positions and bonds come from :func:`motifgram.engine.dual.ring_centre_sites` (``bond_factor`` bonds
    the spots; None: auto). Each atom's intensity is the image at its position, interpolated bilinearly (in
    HRTEM of graphene with bright hexagon centres the carbon sites are the darker points between them); the
    lattice period is the spots' (the dual lattice has the same period) and the nearest-neighbour distance
    the median length of the dual bonds.

    Raises
    ------
    NoLatticeError
        When the spots make fewer than two atoms (no triangle of bonded spots).
    """
    sites = ring_centre_sites(spots.xy, image_shape=image.shape, bond_factor=bond_factor)
    if len(sites.xy) < 2:
        raise NoLatticeError(
            f"{len(spots)} spots give {len(sites.xy)} atom sites (no triangle of bonded spots); with detect.spots: "
            "ring_centres the spots must form a lattice"
        )
    xy = sites.xy.astype(np.float32)
    intensity = ndimage.map_coordinates(np.asarray(image, dtype=np.float32), [xy[:, 1], xy[:, 0]], order=1,
                                        mode="nearest")
    bond_len = np.hypot(*(sites.xy[sites.bonds[:, 1]] - sites.xy[sites.bonds[:, 0]]).T)
    nn = float(np.median(bond_len)) if len(bond_len) else spots.nn_distance_px / np.sqrt(3.0)
    return Atoms(xy=xy, intensity=intensity.astype(np.float32), lattice_period_px=spots.lattice_period_px,
                 nn_distance_px=nn), sites


def atoms_at_dumbbells(spots: Atoms) -> tuple[Atoms, DumbbellSites]:
    """One site per dumbbell of the detected ``spots`` (``detect.spots: dumbbells``).

    Positions, and intensities (the mean of each site's spots), come from
    :func:`motifgram.engine.pairs.dumbbell_sites`; the lattice period and the scan noise are the spots', the
    nearest-neighbour distance is the sites' own (their first shell), which sets the context radius of the
    features and the scale of the graph.
    """
    sites = dumbbell_sites(spots.xy, spots.intensity)
    atoms = dataclasses.replace(spots, xy=sites.xy.astype(np.float32), intensity=sites.intensity.astype(np.float32),
                                nn_distance_px=_nn_distance(sites.xy))
    return atoms, sites


def feature_descriptor(spec: Spec) -> str:
    """``features.descriptor`` with ``auto`` resolved: intensity quantiles for grid points, else Zernike
    invariants.

    Not ``zernike_context`` (:mod:`motifgram.engine.context`) by default, although it separates the site
    classes of simulated MoS2 with Se far better (ARI 0.95 vs 0.47-0.76): on one-element lattices its
    norm-scaled invariants give defect neighbourhoods a token of their own (simulated 2048^2 graphene with
    Stone-Wales defects and vacancies: 2 tokens instead of 1, 142 grammar rules instead of 7; the real
    graphene flower: a 21 % token scattered over the clean lattice), and cross-run token matching
    (:mod:`motifgram.grammar.compare`) is calibrated on plain invariants.
    """
    if spec.features.descriptor != "auto":
        return spec.features.descriptor
    return "intensity" if spec.detect.method == "grid" else "zernike"


def _input_cache_key(item, spec: Spec) -> str:
    if item.simulate is not None:
        content = {"simulate": dataclasses.asdict(item.simulate)}
    else:
        content = {"sha256": fingerprint_file(item.path)}
    sections = spec.to_dict()
    return cache_key(
        CACHE_VERSION, content, item.id, item.pixel_size, spec.seed,
        sections["detect"], sections["features"], feature_descriptor(spec), sections["graph"],
    )


def _sample_rng(seed: int, image_id: str) -> np.random.Generator:
    """A generator per micrograph that depends on its id, not its position, so caches survive reordering."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode())])


def first_pass(index: int, item, spec: Spec, cache_dir: Path, n_inputs: int):
    """Detection, features and graph of one input, through the cache; a Failure for unusable input.

    Top-level (picklable) so that every executor can run it. The record carries this micrograph's share
    (one in ``n_inputs``) of the token fit's sample, copied out of the entry so that only that share
    travels and stays in memory. Returns ``(record_or_failure, seconds)``.
    """
    timer = StageTimer()
    key = _input_cache_key(item, spec)
    entry = load_entry(cache_dir, key)
    if entry is not None:
        return _record_from_entry(index, item, key, entry, n_inputs), timer.as_dict()
    try:
        with timer("load"):
            micrograph = load_input(item)
        with _naming(micrograph.source):
            analysis = analyse_micrograph(micrograph, spec, timer)
    except MotifgramError as exc:
        return Failure(index, item.id, str(item.path or f"simulate:{item.simulate.kind}"), str(exc)), timer.as_dict()
    arrays = _entry_from_analysis(analysis, spec)
    if spec.detect.method == "grid":
        with timer("moire"):
            arrays["moire"] = np.array(json.dumps(_moire_summary(micrograph)))
    save_entry(cache_dir, key, arrays)
    return _record_from_entry(index, item, key, arrays, n_inputs, recomputed=True), timer.as_dict()


def _moire_summary(micrograph: Micrograph) -> dict | None:
    """Twist angle and moiré period from the Fourier transform; None when the image shows no lattice."""
    try:
        return measure_moire(micrograph.image, pixel_size_nm=micrograph.pixel_size_nm).to_summary()
    except NoLatticeError:
        return None


def _entry_from_analysis(analysis: MicrographAnalysis, spec: Spec) -> dict:
    """The cache entry of one micrograph: everything later passes need, as plain arrays."""
    atoms, graph = analysis.atoms, analysis.graph
    patch_size = analysis.features.patch_size
    interior = _interior_atoms(atoms.xy, analysis.micrograph.image.shape, patch_size / 2)
    rng = _sample_rng(spec.seed, analysis.micrograph.id)
    sample = np.sort(rng.choice(interior, size=min(len(interior), SAMPLE_PER_MICROGRAPH), replace=False))
    with_patches = sample[:PATCHES_PER_MICROGRAPH]
    return {
        "source": np.array(analysis.micrograph.source),
        "shape": np.array(analysis.micrograph.image.shape, dtype=np.int64),
        "pixel_size_nm": np.array(np.nan if analysis.micrograph.pixel_size_nm is None
                                  else analysis.micrograph.pixel_size_nm),
        "xy": atoms.xy,
        "intensity": atoms.intensity,
        "lattice_period_px": np.array(atoms.lattice_period_px),
        "nn_distance_px": np.array(atoms.nn_distance_px),
        "bonds": graph.bonds,
        "ring_sizes": graph.ring_sizes,
        "ring_atoms": graph.rings.atoms,
        "bond_factor": np.array(graph.bond_factor),
        "patch_size": np.array(patch_size),
        "invariants": analysis.invariants,
        "sample": sample,
        "sample_moments": analysis.moments[with_patches],
        "sample_patches": extract_patches(analysis.features.image, atoms.xy[with_patches], patch_size=patch_size),
    }


def _interior_atoms(xy: np.ndarray, shape, radius_px: float) -> np.ndarray:
    """Indices of the atoms whose feature disk lies inside the image (all atoms when none does).

    Only these are sampled to fit the tokens: a disk that crosses the border sees a mirrored neighbourhood,
    which would otherwise form tokens of its own.
    """
    height, width = shape
    x, y = xy[:, 0], xy[:, 1]
    inside = (x >= radius_px - 0.5) & (x <= width - 0.5 - radius_px) & (y >= radius_px - 0.5) & (y <= height - 0.5 - radius_px)
    return np.flatnonzero(inside) if inside.any() else np.arange(len(xy))


def _record_from_entry(index: int, item, key: str, entry: dict, n_inputs: int, *,
                       recomputed: bool = False) -> MicrographRecord:
    pixel = float(entry["pixel_size_nm"])
    # the run's pooled sample stays near TOKEN_FIT_SAMPLE atoms (and PATCH_SAMPLE patches) however many
    # micrographs it has; copies, so that the entry's full arrays are not kept alive by views
    quota = -(-TOKEN_FIT_SAMPLE // n_inputs)
    with_patches = -(-PATCH_SAMPLE // n_inputs)
    sample = FitSample(
        invariants=entry["invariants"][entry["sample"][:quota]],
        moments=entry["sample_moments"][:with_patches].copy(),
        patches=entry["sample_patches"][:with_patches].copy(),
    )
    return MicrographRecord(
        index=index, id=item.id, group=item.group, source=str(entry["source"]),
        shape=tuple(int(v) for v in entry["shape"]), pixel_size_nm=None if np.isnan(pixel) else pixel,
        n_atoms=len(entry["xy"]), lattice_period_px=float(entry["lattice_period_px"]),
        nn_distance_px=float(entry["nn_distance_px"]), patch_size=int(entry["patch_size"]), cache_key=key,
        recomputed=recomputed, moire=json.loads(str(entry["moire"])) if "moire" in entry else None, sample=sample,
    )


#: Cache entry arrays that make a micrograph's atom graph.
_GRAPH_ARRAYS = ("xy", "shape", "bonds", "ring_sizes", "ring_atoms", "bond_factor")


def _load_graph(record: MicrographRecord, cache_dir: Path, tokens: np.ndarray) -> AtomGraph:
    """The atom graph of a micrograph, read from its cache entry, with ``tokens`` ((N,) str) as token names."""
    entry = _read_entry(cache_dir, record, _GRAPH_ARRAYS)
    rings = Rings(entry["ring_atoms"], np.concatenate([[0], np.cumsum(entry["ring_sizes"])]))
    return AtomGraph(
        xy=entry["xy"].astype(np.float64), tokens=tokens, bonds=entry["bonds"], rings=rings,
        image_shape=tuple(int(v) for v in entry["shape"]), bond_factor=float(entry["bond_factor"]),
    )


def _read_entry(cache_dir: Path, record: MicrographRecord, names) -> dict:
    entry = load_entry(cache_dir, record.cache_key, names)
    if entry is None:
        raise MotifgramError(
            f"{record.source}: the cache entry {cache_dir / record.cache_key}.npz disappeared during the run; "
            "run again"
        )
    return entry


def _label_dtype(n_tokens: int) -> np.dtype:
    """The smallest unsigned integer type of token labels (one byte up to 256 tokens)."""
    return np.min_scalar_type(max(n_tokens - 1, 0))


def token_pass(record: MicrographRecord, token_model: TokenModel, cache_dir: Path, parts: Path):
    """Tokens of every atom of one micrograph from its cached features, and its rows of atoms.csv.

    Top-level (picklable) so that every executor can run it. Returns ``(labels, mean_confidence, seconds)``:
    labels ((N,) unsigned int, the smallest type that holds them) index ``token_model.names``.
    """
    timer = StageTimer()
    with timer("tokens"):
        entry = _read_entry(cache_dir, record, ("invariants", "xy", "intensity"))
        labels, confidence = assign_tokens(token_model, entry["invariants"])
    with timer("write"):
        image, names = csv_field(record.id), [csv_field(name) for name in token_model.names]
        (parts / f"{record.index:06d}.atoms.csv").write_text("".join(
            f"{image},{i},{x:.3f},{y:.3f},{names[t]},{c:.4f},{v:.6g}\n"
            for i, ((x, y), t, c, v) in enumerate(zip(
                entry["xy"].tolist(), labels.tolist(), confidence.tolist(), entry["intensity"].tolist(), strict=True
            ))
        ))
    mean_confidence = round(float(np.mean(confidence)), 4) if len(confidence) else None
    return labels.astype(_label_dtype(len(names))), mean_confidence, timer.as_dict()


@dataclass(frozen=True)
class _Finish:
    """What the third pass needs besides the record (shared by all micrographs of a run)."""

    token_names: tuple
    grammar: Grammar
    min_domain_size: int | None
    ring_symbol_names: tuple
    overlays: bool
    staging: Path
    sampling: str
    cache_dir: Path


def third_pass(record: MicrographRecord, item, labels: np.ndarray, mean_confidence: float | None, finish: _Finish):
    """Parse one tokenised micrograph, render its overlay and write its rows; returns its summary entry."""
    timer = StageTimer()
    names = np.asarray(finish.token_names)
    with timer("parse"):
        graph = _load_graph(record, finish.cache_dir, names[labels])
        parse = parse_graph(finish.grammar, graph, min_domain_size=finish.min_domain_size)
    with timer("write"):
        parts, image = finish.staging / "parts", csv_field(record.id)
        xy = graph.xy
        (parts / f"{record.index:06d}.bonds.csv").write_text(
            "".join(f"{image},{i},{j}\n" for i, j in graph.bonds.tolist())
        )
        (parts / f"{record.index:06d}.rings.csv").write_text("".join(
            f"{image},{r},{len(ring)},{csv_field(symbol)},{' '.join(map(str, ring))}\n"
            for r, (ring, symbol) in enumerate(zip(graph.rings, parse.ring_symbols, strict=True))
        ))
        (finish.staging / "parses" / f"{record.id}.json").write_text(parse.root.to_json() + "\n")
    if finish.overlays:
        with timer("overlay"):
            image = load_input(item).image
            render_overlay(
                image, xy, labels, finish.token_names, graph.rings, parse.ring_symbols,
                finish.staging / "overlays" / f"{record.id}.png", title=record.id,
                ring_symbol_names=list(finish.ring_symbol_names),
            )
    return _image_summary(record, graph, labels, mean_confidence, finish, parse), timer.as_dict()


def _image_summary(record, graph, labels, mean_confidence, finish: _Finish, parse) -> dict:
    sizes = graph.ring_sizes
    stats = ring_statistics(sizes)
    counts = np.bincount(labels, minlength=len(finish.token_names))
    measures = disorder_measures(finish.grammar, graph, parse)._asdict()
    return {
        "source": record.source,
        "group": record.group,
        "shape": list(record.shape),
        "pixel_size_nm": record.pixel_size_nm,
        "lattice_period_px": round(float(record.lattice_period_px), 4),
        "nn_distance_px": round(float(record.nn_distance_px), 4),
        "bond_factor": round(float(graph.bond_factor), 4),
        "patch_size_px": record.patch_size,
        "n_atoms": int(len(labels)),
        "n_bonds": int(len(graph.bonds)),
        "n_rings": int(len(sizes)),
        "token_counts": {n: int(c) for n, c in zip(finish.token_names, counts)},
        "mean_confidence": mean_confidence,
        "ring_histogram": {str(n): int(c) for n, c in sorted(Counter(sizes.tolist()).items())},
        "ring_stats": {"mean": _round(stats.mean), "mu2": _round(stats.mu2)},
        "motif_counts": {str(level): dict(sorted(c.items())) for level, c in sorted(parse.motif_counts.items())},
        "relative_abundance": {
            str(level): {s: round(v, 5) for s, v in sorted(c.items())}
            for level, c in sorted(parse.relative_abundance.items())
        },
        "coverage": {str(level): round(v, 5) for level, v in sorted(parse.coverage.items())},
        **{key: round(value, 5) for key, value in measures.items()},
        "sampling": finish.sampling,
        **({"moire": record.moire} if record.moire is not None else {}),
    }


@contextmanager
def _naming(source: str):
    """Prefix input errors raised while analysing a micrograph with the file (or simulation) they concern."""
    try:
        yield
    except ImageError as exc:
        raise ImageError(f"{source}: {exc}") from exc
    except MotifgramError as exc:
        raise MotifgramError(f"{source}: {exc}") from exc


# ------------------------------------------------------------------------------------------------------------
# Global stages


def _learn_tokens(records: list[MicrographRecord], spec: Spec) -> TokenModel:
    """Fit the token mixture on a seeded sample pooled from every micrograph of the run.

    Class averages need one patch size: they come from the micrographs whose automatic patch size is the
    run's most common one (all of them when the micrographs share a magnification).
    """
    invariants = _pooled_invariants(records)
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
        descriptor=feature_descriptor(spec),
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


def _pooled_invariants(records) -> np.ndarray:
    """(S, M) float32: the token fit's sample, pooled over the records in order."""
    return np.concatenate([r.sample.invariants for r in records])


def _tokenise(records, token_model: TokenModel, cache_dir: Path, parts: Path, executor, progress, timer):
    """Token labels of every atom (one array per record) and the mean confidence of each record, computed
    per micrograph on the executor (which also writes the rows of atoms.csv)."""
    labels, mean_confidences = [], []
    n = len(records)
    with progress.task("tokens", n) as advance:
        for lab, mean_confidence, seconds in executor.map(
            token_pass, records, [token_model] * n, [cache_dir] * n, [parts] * n
        ):
            labels.append(lab)
            mean_confidences.append(mean_confidence)
            timer.add(seconds)
            advance()
    return labels, mean_confidences


def _graphs(records, labels, token_model: TokenModel, cache_dir: Path, members=None) -> Iterator[AtomGraph]:
    """The atom graphs, with tokens, of the micrographs at positions ``members`` (default: all), read from
    the cache one at a time as they are consumed (for the global grammar stages)."""
    names = np.asarray(token_model.names)
    for i in range(len(records)) if members is None else members:
        yield _load_graph(records[i], cache_dir, names[labels[i]])


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
        records, failures = [], []
        n = len(items)
        with progress.task("atoms, features, graph", n) as advance:
            for result, seconds in executor.map(first_pass, range(n), items, [spec] * n, [cache_dir] * n, [n] * n):
                timer.add(seconds)
                if isinstance(result, Failure):
                    failures.append(result)
                else:
                    records.append(result)
                advance()
        if not records:
            raise MotifgramError("no micrograph could be analysed:\n" + "\n".join(f.reason for f in failures))
        for failure in failures:
            log.warning("skipped %s: %s", failure.id, failure.reason)
        with timer("tokens"):
            token_model = _learn_tokens(records, spec)
        fit_invariants = _pooled_invariants(records)
        records = [dataclasses.replace(r, sample=None) for r in records]
        with atomic_run_dir(out_dir, force=force) as staging:
            (staging / "parts").mkdir()
            labels, mean_confidences = _tokenise(records, token_model, cache_dir, staging / "parts", executor,
                                                 progress, timer)
            with timer("grammar"):
                induced = induce_grammar(
                    _graphs(records, labels, token_model, cache_dir),
                    name=spec.name,
                    min_count=spec.grammar.min_count,
                    max_motif_size=spec.grammar.max_motif_size,
                    min_domain_size=spec.grammar.min_domain_size,
                )
                grammar = induced.grammar
            group_grammars, comparison = _compare_groups(
                spec, records, partial(_graphs, records, labels, token_model, cache_dir), token_model, grammar, timer
            )
            images = _finish(staging, spec, records, labels, mean_confidences, token_model, grammar,
                             [items[r.index] for r in records], executor, progress, timer, cache_dir=cache_dir)
            with timer("write"):
                if group_grammars:
                    (staging / "grammars").mkdir()
                    for group, group_grammar in group_grammars.items():
                        (staging / "grammars" / f"{group}.txt").write_text(group_grammar.to_text())
                _write_globals(staging, spec, records, token_model, induced, images, failures, timer,
                               fit_invariants=fit_invariants, output_dir=out_dir.absolute(), comparison=comparison)
    return out_dir


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
    group_grammars = {}
    if len(groups) > 1:
        with timer("grammar"):
            for group, members in groups.items():
                group_grammars[group] = induce_grammar(
                    graphs_of(members), name=f"{spec.name}/{group}", min_count=spec.grammar.min_count,
                    max_motif_size=spec.grammar.max_motif_size, min_domain_size=spec.grammar.min_domain_size,
                ).grammar
    with timer("compare"):
        items = [
            Comparable.from_graphs(
                group, grammar, {records[i].id: g for i, g in zip(members, graphs_of(members), strict=True)},
                token_model=token_model,
                group=group, min_domain_size=spec.grammar.min_domain_size,
            )
            for group, members in groups.items()
        ]
        comparison = compare(items, references=references)
    return group_grammars, comparison


def _finish(staging, spec, records, labels, mean_confidences, token_model, grammar, items, executor, progress,
            timer, *, cache_dir):
    """Last pass over every micrograph, then the CSV files assembled from their parts in input order.

    The rows of atoms.csv are already in ``staging/parts`` (written by :func:`token_pass`).
    """
    for folder in ("parses", *(("overlays",) if spec.output.overlays else ())):
        (staging / folder).mkdir()
    finish = _Finish(
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
            third_pass, records, items, labels, mean_confidences, [finish] * n
        ), strict=True):
            images[record.id] = summary
            timer.add(seconds)
            advance()
    with timer("write"):
        for kind, header in (("atoms", ATOMS_HEADER), ("bonds", BONDS_HEADER), ("rings", RINGS_HEADER)):
            with open(staging / f"{kind}.csv", "wb") as out:
                out.write((",".join(header) + "\n").encode())
                for record in records:
                    with open(staging / "parts" / f"{record.index:06d}.{kind}.csv", "rb") as part:
                        shutil.copyfileobj(part, out)
        for part in (staging / "parts").iterdir():
            part.unlink()
        (staging / "parts").rmdir()
    return images


def _write_globals(staging, spec, records, token_model, induced, images, failures, timer, *, fit_invariants,
                   output_dir, comparison=None):
    """grammar.txt, tokens.npz, embedding.npz, summary.json and report.html."""
    grammar = induced.grammar
    (staging / "grammar.txt").write_text(grammar.to_text())
    token_model.save(staging / "tokens.npz")
    _write_embedding(staging / "embedding.npz", token_model, fit_invariants, seed=spec.seed)
    groups = {}
    for record in records:
        groups.setdefault(record.group, []).append(record.id)
    summary = {
        "name": spec.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output_dir": str(output_dir),
        "motifgram_version": _versions().get("motifgram", "unknown"),
        "versions": _versions(),
        "spec": spec.to_dict(),
        "images": images,
        "groups": {
            group: {
                "images": ids,
                "n_atoms": sum(images[i]["n_atoms"] for i in ids),
                "disorder": round(float(np.mean([images[i]["disorder"] for i in ids])), 5),
            }
            for group, ids in groups.items()
        },
        "failed": {f.id: {"source": f.source, "reason": f.reason} for f in failures},
        "recomputed": [r.id for r in records if r.recomputed],
        "tokens": {
            "names": list(token_model.names),
            "k": len(token_model.names),
            "k_selection": "fixed" if spec.tokens.k is not None else "bic",
            "abundance": {n: round(float(v), 5) for n, v in zip(token_model.names, token_model.abundances)},
            "patch_size_px": int(token_model.patch_size),
            "n_max": int(token_model.n_max),
            **({"merging": _merging_summary(token_model)} if spec.tokens.k is None else {}),
        },
        "grammar": {
            "n_rules": grammar.n_rules,
            "levels": list(grammar.levels),
            "description_length_bits": round(grammar.description_length_bits(), 3),
            "data_bits": round(induced.data_bits, 3),
            "total_bits": round(induced.total_bits, 3),
            "gains_bits": {name: round(bits, 3) for name, bits in induced.gains_bits.items()},
        },
        "timings": timer.as_dict(),
    }
    if comparison is not None:
        full = comparison.to_json()
        summary["comparison"] = {
            **comparison.to_summary(),
            "classification": full.get("classification", {}),
            "differences": _rule_differences(full.get("pairs", [])),
        }
    write_json(staging / "summary.json", summary)
    if spec.output.report:
        write_report(staging)


def _merging_summary(token_model: TokenModel) -> dict:
    """How the BIC mixture's components were merged into tokens: the overlaps that fixed the count."""
    decision = merge_decision(merge_sequence(token_model.mixture)[0])
    last, first = (None if c is None else round(c, 4) for c in decision)
    return {
        "mixture_components": len(token_model.mixture.weights),
        "threshold": DEFAULT_MERGE_THRESHOLD,
        "last_merged": last,
        "first_kept_apart": first,
        "undecided": list(UNDECIDED_OVERLAP),
        "close_call": is_close_call(decision),
    }


def _rule_differences(pairs: list[dict], *, max_pairs: int = 20, max_rules: int = 5) -> list[dict]:
    """The rules each pair of compared items does not share (heaviest first), for the closest pairs."""
    closest = sorted(pairs, key=lambda p: (p["distance"], p["a"], p["b"]))[:max_pairs]
    keep = ("symbol", "level", "weight")
    return [
        {"a": p["a"], "b": p["b"],
         "only_in_a": [{k: e[k] for k in keep} for e in p["only_in_a"][:max_rules]],
         "only_in_b": [{k: e[k] for k in keep} for e in p["only_in_b"][:max_rules]]}
        for p in closest
    ]


def _write_embedding(path: Path, token_model: TokenModel, invariants, *, seed: int, max_points: int = 5000):
    """The first two whitened principal components of a seeded sample of atoms (the report's scatter plot).

    ``invariants`` ((S, M) float32) is the token fit's pooled sample.
    """
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(invariants), size=min(max_points, len(invariants)), replace=False))
    labels, _ = assign_tokens(token_model, invariants[pick])
    xy = token_model.transform(invariants[pick])[:, :2]
    np.savez(path, xy=xy.astype(np.float32), token=labels.astype(np.int64))


def _round(value: float, digits: int = 5):
    return None if not np.isfinite(value) else round(float(value), digits)


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("motifgram", "jax", "numpy", "scipy", "scikit-image", "networkx", "lark"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


# ------------------------------------------------------------------------------------------------------------
# Applying a learned grammar

def _learned_spots(summary_path: Path) -> str:
    """``detect.spots`` of the run that learned a grammar (its summary.json); ``atoms`` when not recorded."""
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return "atoms"
    spots = (summary.get("spec") or {}).get("detect", {}).get("spots", "atoms")
    return spots if spots in typing.get_args(SpotKind) else "atoms"


def parse_with_grammar(grammar_path, image_path, *, out_dir=None, pixel_size_nm=None, force=False,
                       quiet=False) -> Path:
    """Apply a learned grammar and its token model to a new micrograph, without re-learning.

    The token model is the ``tokens.npz`` beside the grammar file (as in a run directory). The output
    directory is a run directory of its own (atoms, bonds, rings, the parse tree, summary, overlay).
    """
    grammar_path = grammar_file(grammar_path)
    grammar = read_grammar_file(grammar_path)
    model_path = grammar_path.parent / "tokens.npz"
    if not model_path.is_file():
        raise MotifgramError(
            f"{model_path}: the token model is missing; parse needs the tokens.npz written beside grammar.txt by "
            "'motifgram run'"
        )
    token_model = TokenModel.load(model_path)
    grammar_tokens = {t.name for t in grammar.tokens}
    if set(token_model.names) != grammar_tokens:
        raise GrammarError(
            f"{grammar_path}: the grammar's tokens ({', '.join(sorted(grammar_tokens))}) do not match the token "
            f"model {model_path} ({', '.join(token_model.names)}); use the tokens.npz of the run that wrote this grammar"
        )
    image_path = Path(image_path)
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
                   "spots": _learned_spots(grammar_path.parent / "summary.json")},
        "tokens": {"k": len(token_model.names), "names": list(token_model.names)},
    })
    out_dir = Path(out_dir) if out_dir is not None else spec.run_dir()
    check_output_dir(out_dir, force=force)
    cache_dir = cache_dir_for(out_dir)
    timer = StageTimer()
    items = list(spec.inputs)
    record, seconds = first_pass(0, items[0], spec, cache_dir, 1)
    timer.add(seconds)
    if isinstance(record, Failure):
        raise MotifgramError(record.reason)
    fit_invariants = _pooled_invariants([record])
    record = dataclasses.replace(record, sample=None)
    with Progress(enabled=not quiet) as progress, open_executor(spec.engine, 1) as executor:
        with atomic_run_dir(out_dir, force=force) as staging:
            (staging / "parts").mkdir()
            labels, mean_confidences = _tokenise([record], token_model, cache_dir, staging / "parts", executor,
                                                 progress, timer)
            images = _finish(staging, spec, [record], labels, mean_confidences, token_model, grammar, items,
                             executor, progress, timer, cache_dir=cache_dir)
            with timer("write"):
                _write_globals(staging, spec, [record], token_model, grammar, images, [], timer,
                               fit_invariants=fit_invariants, output_dir=out_dir.absolute())
    return out_dir
