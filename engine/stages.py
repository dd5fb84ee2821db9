"""What happens to one micrograph given a spec: load, detect, features, graph.

Each function here runs one stage with the spec's settings and nothing else: no executor, no cache, no
files (those are :mod:`motifgram.engine.pipeline`'s and :mod:`motifgram.engine.rundir`'s), so a stage can
be called and tested on an array in memory.
"""

import dataclasses
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from motifgram.engine.chemistry import chemistry_features
from motifgram.engine.context import context_features
from motifgram.engine.detect import Atoms, detect_atoms, remove_scan_noise
from motifgram.engine.dual import RingCentreSites, atoms_at_ring_centres
from motifgram.engine.errors import ImageError, MotifgramError
from motifgram.engine.graph import AtomGraph, build_graph, graph_from_bonds
from motifgram.engine.io import Micrograph, load_micrograph
from motifgram.engine.moire import grid_points
from motifgram.engine.pairs import atoms_at_dumbbells
from motifgram.engine.patches import disc_diameter_for, intensity_quantiles, normalise_image, patch_size_for
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import InputSpec, Spec
from motifgram.engine.features import Features, compute_features

__all__ = [
    "INTENSITY_RADIUS_PERIODS",
    "StageTimer",
    "MicrographAnalysis",
    "load_input",
    "naming_source",
    "find_atoms",
    "describe_atoms",
    "connect_atoms",
    "analyse_micrograph",
]

#: Radius of the intensity-quantile disk (``features.descriptor: intensity``), in lattice periods: more than
#: a unit cell, so the descriptor does not depend on where a grid point falls in it.
INTENSITY_RADIUS_PERIODS = 1.5
#: The "period" of an amorphous structure for its feature disc, in bond lengths: a honeycomb's period for its
#: bond, so that a 2-D network (carbon, a silica bilayer) and its crystal get discs of one rule.
AMORPHOUS_PERIOD_BONDS = 1.5


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


@dataclass(frozen=True, eq=False)
class MicrographAnalysis:
    """Everything computed for one micrograph before the global stages.

    Attributes
    ----------
    micrograph : Micrograph
    atoms : Atoms
        Sub-pixel atom positions (px) and intensities.
    features : Features
        Each atom's features: rotation invariants of its neighbourhood's Zernike moments, or the descriptor's
        own (then the moments are computed only for the sampled patches, :meth:`Features.moments_of`); and
        its square patches, extracted when first used, for class averages.
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


def load_input(item: InputSpec) -> Micrograph:
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
    return load_micrograph(item.path, pixel_size_nm=item.pixel_size, id=item.id, group=item.group,
                           dataset=item.dataset, frame=item.frame)


@contextmanager
def naming_source(source: str):
    """Prefix input errors raised while analysing a micrograph with the file (or simulation) they concern."""
    try:
        yield
    except ImageError as exc:
        raise ImageError(f"{source}: {exc}") from exc
    except MotifgramError as exc:
        raise MotifgramError(f"{source}: {exc}") from exc


def find_atoms(image: np.ndarray, spec: Spec) -> tuple[np.ndarray, Atoms, RingCentreSites | None]:
    """The atoms (or grid points, or sites) of one image, by ``spec.detect``.

    Returns
    -------
    cleaned : (H, W) ndarray
        The image the later stages see (fast-scan noise removed for atom detection).
    atoms : Atoms
    sites : RingCentreSites or None
        The dual lattice with its exact bonds, for ``detect.spots: ring_centres``.
    """
    detect = spec.detect
    if detect.method == "grid":
        return image, grid_points(image, spacing_px=detect.spacing), None
    cleaned = remove_scan_noise(image, row_offsets=detect.row_offsets)  # detection and features see the same image
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
    if detect.spots == "ring_centres":
        atoms, sites = atoms_at_ring_centres(cleaned, atoms, bond_factor=spec.graph.bond_factor)
        return cleaned, atoms, sites
    if detect.spots == "dumbbells":  # one site per dumbbell; the rest of the run treats them as atoms
        atoms, _ = atoms_at_dumbbells(atoms)
    return cleaned, atoms, None


def feature_period_px(atoms: Atoms) -> float:
    """The length (px) the feature discs follow (the Zernike disc, the intensity quantiles' disc): the lattice
    period, or for an amorphous structure (no Bragg spot) :data:`AMORPHOUS_PERIOD_BONDS` bonds.

    A diffuse ring's spacing is the broad maximum of a noisy spectrum: over micrographs of one simulated carbon
    network (256 px, 8 seeds) it spread over 10.3-11.6 px, where the bond length, the median of thousands of
    bonds, spread over 7.60-7.73 px. Discs that far apart (11.3-12.6 px) gave one network's micrographs features
    further apart than graphene's at 0 and 0.5 % defects (benchmarks/README.md, "Issue 20: the disc of an
    amorphous structure").
    """
    return atoms.lattice_period_px if atoms.periodic else AMORPHOUS_PERIOD_BONDS * atoms.nn_distance_px


def describe_atoms(image: np.ndarray, atoms: Atoms, spec: Spec) -> Features:
    """The features of every atom's neighbourhood, by ``spec.features`` (descriptor resolved by the spec)."""
    image = normalise_image(image, atoms.xy)
    descriptor = spec.feature_descriptor
    fixed, scale = spec.features.patch_size, feature_period_px(atoms)
    features = compute_features(
        image,
        atoms.xy,
        patch_size=fixed or patch_size_for(scale),
        disc_diameter_px=fixed or disc_diameter_for(scale),
        n_max=spec.features.n_max,
        moments=descriptor in ("zernike", "zernike_context"),
    )
    if descriptor == "intensity":
        quantiles = intensity_quantiles(image, atoms.xy, radius_px=INTENSITY_RADIUS_PERIODS * scale)
        return dataclasses.replace(features, invariants=quantiles)
    if descriptor == "chemistry":
        chemistry = chemistry_features(image, atoms.xy, nn_distance_px=atoms.nn_distance_px, seed=spec.seed)
        return dataclasses.replace(features, invariants=chemistry)
    if descriptor == "zernike_context":
        context = context_features(features.moments, image, atoms.xy, nn_distance_px=atoms.nn_distance_px)
        return dataclasses.replace(features, invariants=context)
    return features


def connect_atoms(atoms: Atoms, image_shape, spec: Spec, sites: RingCentreSites | None = None) -> AtomGraph:
    """The atom graph (bonds and rings) by ``spec.graph``; the dual lattice's own bonds when ``sites`` is given
    (exact whatever the bond lengths)."""
    if sites is not None:
        return graph_from_bonds(
            atoms.xy,
            sites.bonds,
            image_shape=image_shape,
            max_ring=spec.graph.max_ring,
            border_px=spec.graph.border,
            bond_factor=sites.spot_bond_factor,
        )
    return build_graph(
        atoms.xy,
        image_shape=image_shape,
        bond_factor=spec.graph.bond_factor,
        max_ring=spec.graph.max_ring,
        border_px=spec.graph.border,
    )


def analyse_micrograph(micrograph: Micrograph, spec: Spec, timer: StageTimer | None = None) -> MicrographAnalysis:
    """Run the per-micrograph stages: detection, features and the atom graph."""
    timer = timer or StageTimer()
    with timer("detect"):
        cleaned, atoms, sites = find_atoms(micrograph.image, spec)
    with timer("features"):
        features = describe_atoms(cleaned, atoms, spec)
    with timer("graph"):
        graph = connect_atoms(atoms, micrograph.image.shape, spec, sites)
    return MicrographAnalysis(micrograph, atoms, features, graph)
