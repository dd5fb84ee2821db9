"""What a run keeps of each micrograph between its passes: the cache entry and the compact record.

The first pass analyses a micrograph (:mod:`motifgram.engine.stages`) and stores everything later passes need
as plain arrays in its cache entry (:func:`entry_from_analysis`); the main process keeps only a
:class:`MicrographRecord` (scalars, and the micrograph's share of the token fit's sample) and reads the
entry again when a pass needs per-atom data (:func:`load_graph`, :func:`read_entry`).
"""

import dataclasses
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motifgram.engine.cache import cache_key, code_fingerprint, fingerprint_file, load_entry
from motifgram.engine.errors import MotifgramError
from motifgram.engine.geometry import inside_image
from motifgram.engine.graph import AtomGraph, Rings
from motifgram.engine.patches import extract_patches
from motifgram.engine.regions import REGION_DISORDERED, REGION_NETWORK
from motifgram.engine.spec import InputSpec, Spec
from motifgram.engine.stages import MicrographAnalysis

__all__ = [
    "TOKEN_FIT_SAMPLE",
    "SAMPLE_PER_MICROGRAPH",
    "PATCHES_PER_MICROGRAPH",
    "PATCH_SAMPLE",
    "FitSample",
    "MicrographRecord",
    "Failure",
    "input_cache_key",
    "entry_from_analysis",
    "record_from_entry",
    "read_entry",
    "load_graph",
    "label_dtype",
]

#: Atoms used to fit the token mixture (pooled over micrographs); every atom is then tokenised.
TOKEN_FIT_SAMPLE = 40_000
#: Atoms per micrograph kept for the token fit, and for the rotation-aligned class averages (cached) ...
SAMPLE_PER_MICROGRAPH = 4096
PATCHES_PER_MICROGRAPH = 512
#: ... of which a run keeps an equal share per micrograph, about this many patches in all.
PATCH_SAMPLE = 8192


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
        Square patch side (px).
    disc_diameter_px : float
        Zernike disc diameter (px).
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
    disc_diameter_px: float
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


def input_cache_key(item: InputSpec, spec: Spec) -> str:
    """The cache entry of one input: its content (file hash or simulation), every setting of the per-micrograph
    stages and the code that computes them (:func:`~motifgram.engine.cache.code_fingerprint`)."""
    if item.simulate is not None:
        content = {"simulate": dataclasses.asdict(item.simulate)}
    else:
        content = {"sha256": fingerprint_file(item.path)}
    sections = spec.to_dict()
    return cache_key(
        code_fingerprint(), content, item.id, item.pixel_size, spec.seed,
        sections["detect"], sections["features"], spec.feature_descriptor, sections["graph"],
    )


def _sample_rng(seed: int, image_id: str) -> np.random.Generator:
    """A generator per micrograph that depends on its id, not its position, so caches survive reordering."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode())])


def _interior_atoms(xy: np.ndarray, shape, radius_px: float) -> np.ndarray:
    """Indices of the atoms whose feature disk lies inside the image (all atoms when none does).

    Only these are sampled to fit the tokens: a disk that crosses the border sees a mirrored neighbourhood,
    which would otherwise form tokens of its own.
    """
    inside = inside_image(xy, shape, radius_px)
    return np.flatnonzero(inside) if inside.any() else np.arange(len(xy))


def entry_from_analysis(analysis: MicrographAnalysis, seed: int) -> dict:
    """The cache entry of one micrograph: everything later passes need, as plain arrays."""
    atoms, graph = analysis.atoms, analysis.graph
    patch_size = analysis.features.patch_size
    interior = _interior_atoms(atoms.xy, analysis.micrograph.image.shape, patch_size / 2)
    rng = _sample_rng(seed, analysis.micrograph.id)
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
        "ring_border": graph.ring_border,
        "network": graph.region == REGION_NETWORK,
        "bond_factor": np.array(graph.bond_factor),
        "patch_size": np.array(patch_size),
        "disc_diameter_px": np.array(analysis.features.disc_diameter_px),
        "invariants": analysis.invariants,
        "sample": sample,
        "sample_moments": analysis.features.moments_of(with_patches),
        "sample_patches": extract_patches(analysis.features.image, atoms.xy[with_patches], patch_size=patch_size),
    }


def record_from_entry(index: int, item: InputSpec, key: str, entry: dict, n_inputs: int, *,
                      recomputed: bool = False) -> MicrographRecord:
    """The record of a micrograph from its cache entry, with its share (one in ``n_inputs``) of the token
    fit's sample."""
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
        nn_distance_px=float(entry["nn_distance_px"]), patch_size=int(entry["patch_size"]),
        disc_diameter_px=float(entry["disc_diameter_px"]), cache_key=key,
        recomputed=recomputed, moire=json.loads(str(entry["moire"])) if "moire" in entry else None, sample=sample,
    )


def read_entry(cache_dir: Path, record: MicrographRecord, names) -> dict:
    """The arrays ``names`` of a record's cache entry; an error naming the micrograph when it is gone."""
    entry = load_entry(cache_dir, record.cache_key, names)
    if entry is None:
        raise MotifgramError(
            f"{record.source}: the cache entry {cache_dir / record.cache_key}.npz disappeared during the run; "
            "run again"
        )
    return entry


#: Cache entry arrays that make a micrograph's atom graph.
_GRAPH_ARRAYS = ("xy", "shape", "bonds", "ring_sizes", "ring_atoms", "ring_border", "network", "bond_factor")


def load_graph(record: MicrographRecord, cache_dir: Path, tokens: np.ndarray) -> AtomGraph:
    """The atom graph of a micrograph, read from its cache entry, with ``tokens`` ((N,) str) as token names."""
    entry = read_entry(cache_dir, record, _GRAPH_ARRAYS)
    rings = Rings(entry["ring_atoms"], np.concatenate([[0], np.cumsum(entry["ring_sizes"])]))
    return AtomGraph(
        xy=entry["xy"].astype(np.float64), tokens=tokens, bonds=entry["bonds"], rings=rings,
        image_shape=tuple(int(v) for v in entry["shape"]), bond_factor=float(entry["bond_factor"]),
        ring_border=entry["ring_border"], region=np.where(entry["network"], REGION_NETWORK, REGION_DISORDERED),
    )


def label_dtype(n_tokens: int) -> np.dtype:
    """The smallest unsigned integer type of token labels (one byte up to 256 tokens)."""
    return np.min_scalar_type(max(n_tokens - 1, 0))
