"""Tests for motifgram.engine.detect against synthetic lattices with known atom positions."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from motifgram.engine import detect
from motifgram.engine.detect import EDGE_MARGIN_NN, Atoms, detect_atoms, estimate_lattice_period, refine_positions
from motifgram.engine.errors import ImageError, NoLatticeError
from motifgram.engine.refine import noise_weights
from motifgram.engine.simulate import simulate
from conftest import seed, seeds


def lattice_image(
    kind="honeycomb",
    *,
    size=256,
    spacing=8.0,
    sigma=2.0,
    angle=0.0,
    amplitudes=(1.0, 1.0),
    dose=400.0,
    read_noise=0.02,
    seed=0,
):
    """Gaussian columns on a honeycomb (bond = ``spacing``) or square (side = ``spacing``) lattice.

    A random sub-pixel origin, rotation ``angle`` (radians); the noise-free image (peak ~ amplitude,
    background 0.05) is scaled to ``dose`` counts per unit, Poisson-sampled, divided back and given Gaussian
    read noise. Returns (image (size, size) float32, xy (N, 2) px, site (N,) int: 0 = A, 1 = B).
    """
    rng = np.random.default_rng(seed)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if kind == "honeycomb":
        a = np.sqrt(3) * spacing
        cell = np.array([[a, 0.0], [a / 2, 1.5 * spacing]])
        basis = np.array([[0.0, 0.0], [0.0, spacing]])
    else:
        cell = np.array([[spacing, 0.0], [0.0, spacing]])
        basis = np.array([[0.0, 0.0]])
    reach = int(np.ceil(size * 1.5 / np.min(np.linalg.norm(cell, axis=1)))) + 2
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    origins = i.reshape(-1, 1) * cell[0] + j.reshape(-1, 1) * cell[1]
    pts = (origins[:, None, :] + basis[None]).reshape(-1, 2)
    site = np.tile(np.arange(len(basis)), len(origins))
    xy = pts @ rot.T + size / 2 + rng.uniform(-0.5, 0.5, 2) * spacing
    keep = np.all((xy >= -3 * sigma) & (xy <= size - 1 + 3 * sigma), axis=1)
    xy, site = xy[keep], site[keep]
    amp = np.asarray(amplitudes, float)[site]
    # render each atom into a local patch (vectorised over atoms)
    r = int(np.ceil(4 * sigma))
    off = np.arange(-r, r + 1)
    cr = np.rint(xy[:, 1]).astype(int)[:, None, None] + off[None, :, None]
    cc = np.rint(xy[:, 0]).astype(int)[:, None, None] + off[None, None, :]
    val = amp[:, None, None] * np.exp(
        -((cc - xy[:, 0, None, None]) ** 2 + (cr - xy[:, 1, None, None]) ** 2) / (2 * sigma**2)
    )
    inside = (cr >= 0) & (cr < size) & (cc >= 0) & (cc < size)
    clean = np.full((size, size), 0.05)
    rows, cols = np.broadcast_to(cr, val.shape)[inside], np.broadcast_to(cc, val.shape)[inside]
    np.add.at(clean, (rows, cols), val[inside])
    image = rng.poisson(clean * dose) / dose + rng.normal(0, read_noise, clean.shape)
    in_image = np.all((xy >= -0.5) & (xy <= size - 0.5), axis=1)
    return image.astype(np.float32), xy[in_image], site[in_image]


def amorphous_image(*, size=192, min_distance=7.0, sigma=1.8, seed=0):
    """Random sequential addition of points >= ``min_distance`` apart, as Gaussian columns with noise."""
    rng = np.random.default_rng(seed)
    accepted = np.empty((0, 2))
    for p in rng.uniform(-4, size + 3, (6000, 2)):  # test helper: a few thousand darts
        if accepted.size == 0 or np.min(np.sum((accepted - p) ** 2, axis=1)) >= min_distance**2:
            accepted = np.vstack([accepted, p])
    rr, cc = np.mgrid[0:size, 0:size]
    clean = np.full((size, size), 0.05)
    for x, y in accepted:
        clean += np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * sigma**2))
    image = rng.poisson(clean * 300) / 300 + rng.normal(0, 0.02, clean.shape)
    inside = np.all((accepted >= -0.5) & (accepted <= size - 0.5), axis=1)
    return image.astype(np.float32), accepted[inside]


def whole_columns(truth, size, nn):
    """Truth columns that detection reports: centred at least EDGE_MARGIN_NN x nn inside the image."""
    margin = EDGE_MARGIN_NN * nn
    inside = np.all((truth >= margin - 0.5) & (truth <= size - 0.5 - margin), axis=1)
    return truth[inside], inside


def match(found, truth, radius):
    """Greedy one-to-one matching within ``radius``: (F1, RMSE of matched pairs, matched truth mask)."""
    tree = cKDTree(found)
    dist, idx = tree.query(truth, k=1, distance_upper_bound=radius)
    order = np.argsort(dist)
    used = np.zeros(len(found), bool)
    hit = np.zeros(len(truth), bool)
    err = []
    for t in order:  # test helper; O(N) Python is fine at test sizes
        if np.isfinite(dist[t]) and not used[idx[t]]:
            used[idx[t]] = True
            hit[t] = True
            err.append(dist[t])
    tp = hit.sum()
    f1 = 2 * tp / (len(found) + len(truth))
    return f1, float(np.sqrt(np.mean(np.square(err)))), hit


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(["honeycomb", "square"]),
    spacing=st.floats(5.5, 12.0),
    angle=st.floats(0.0, np.pi),
    seed=st.integers(0, 2**16),
)
def test_period_estimate_within_3_percent(kind, spacing, angle, seed):
    image, _, _ = lattice_image(kind, size=256, spacing=spacing, angle=angle, sigma=0.25 * spacing, seed=seed)
    # honeycomb (bond b): the {100} spacing 1.5 b; square (side a): a
    expected = 1.5 * spacing if kind == "honeycomb" else spacing
    assert abs(estimate_lattice_period(image) / expected - 1) < 0.03


# ---- accuracy on known truth (each measure_* is what its test asserts on; benchmarks/seed_sweeps.py runs it over
# seeds 0-9 and the ranges quoted beside the thresholds come from there) -------------------------------------------

def measure_honeycomb(seed):
    """Honeycomb, bond 8 px, sigma 2 px, dose 400, at a random angle: F1 against the whole columns, RMSE (px), nn
    and period errors."""
    angle = np.random.default_rng(seed).uniform(0, np.pi / 3)
    image, truth, _ = lattice_image("honeycomb", size=384, spacing=8.0, sigma=2.0, angle=angle, seed=seed)
    atoms = detect_atoms(image)
    f1, rmse, _ = match(atoms.xy, whole_columns(truth, 384, 8.0)[0], 4.0)
    return {"f1": f1, "rmse": rmse, "nn_error": abs(atoms.nn_distance_px / 8.0 - 1),
            "period_error": abs(atoms.lattice_period_px / 12.0 - 1)}, atoms


@pytest.mark.parametrize("seed", seeds(7, 8))
def test_honeycomb_detection_f1_and_rmse(seed):
    m, atoms = measure_honeycomb(seed)
    assert isinstance(atoms, Atoms)
    assert atoms.xy.dtype == np.float32 and atoms.xy.shape == (len(atoms), 2)
    assert atoms.intensity.shape == (len(atoms),) and np.isfinite(atoms.intensity).all()
    assert np.isfinite(atoms.xy).all()
    # seeds 0-9: F1 0.9989-1 against the whole columns, RMSE 0.060-0.062 px, nn within 1.1e-4, period within 3.4e-4
    assert m["f1"] >= 0.98
    assert m["rmse"] <= 0.1
    assert m["nn_error"] < 0.01 and m["period_error"] < 0.01


def measure_refinement(seed):
    """Gaussian fit against the centre of mass from the same starts (0.3 px start noise): RMSE ratio, amplitude."""
    rng = np.random.default_rng(seed)
    image, truth, _ = lattice_image("honeycomb", size=256, spacing=8.0, sigma=2.0, angle=rng.uniform(0, np.pi),
                                    seed=seed)
    start = np.rint(truth + rng.normal(0, 0.3, truth.shape))
    com, _ = refine_positions(image, start, sigma_px=2.0, half_window=4, n_iter=0)
    fit, amp = refine_positions(image, start, sigma_px=2.0, half_window=4)
    rmse_com = np.sqrt(np.mean(np.sum((com - truth) ** 2, axis=1)))
    rmse_fit = np.sqrt(np.mean(np.sum((fit - truth) ** 2, axis=1)))
    return {"ratio": rmse_fit / rmse_com, "median_amplitude": float(np.median(amp)), "finite": float(np.isfinite(amp).all())}


@pytest.mark.parametrize("seed", seeds(11, 12))
def test_refinement_beats_centre_of_mass(seed):
    m = measure_refinement(seed)
    # seeds 0-9: the fit's RMSE is 0.19-0.21 of the centre of mass's; median amplitude 0.892-0.895 (true height 1:
    # the neighbours' tails lift the fitted background)
    assert m["ratio"] < 0.3
    assert m["finite"] and m["median_amplitude"] == pytest.approx(1.0, rel=0.15)


def test_rot90_gives_rotated_atoms():
    image, _, _ = lattice_image("honeycomb", size=192, spacing=8.0, sigma=2.0, angle=0.2, seed=seed(5))
    atoms = detect_atoms(image)
    rotated = detect_atoms(np.rot90(image))
    # np.rot90: new row = W - 1 - old x, new col = old y
    expected = np.stack([atoms.xy[:, 1], image.shape[1] - 1 - atoms.xy[:, 0]], axis=1)
    f1, rmse, _ = match(rotated.xy, expected, 1.0)
    assert f1 == 1.0
    assert rmse < 1e-3


def measure_weak_and_strong(seed):
    """MoS2-like: strong Mo (1.0) and weak S2 (0.3) columns; recall of the weak ones, F1, RMSE, nn error."""
    angle = np.random.default_rng(seed).uniform(0, np.pi / 3)
    image, truth, site = lattice_image(
        "honeycomb", size=256, spacing=8.0, sigma=2.0, angle=angle, amplitudes=(1.0, 0.3), dose=800, seed=seed
    )
    atoms = detect_atoms(image)
    truth, inside = whole_columns(truth, 256, 8.0)
    f1, rmse, hit = match(atoms.xy, truth, 4.0)
    return {"weak_recall": hit[site[inside] == 1].mean(), "f1": f1, "rmse": rmse,
            "nn_error": abs(atoms.nn_distance_px / 8.0 - 1)}


@pytest.mark.parametrize("seed", seeds(3, 4))
def test_weak_and_strong_columns_all_found(seed):
    m = measure_weak_and_strong(seed)
    # seeds 0-9: weak recall 0.9974-1, F1 0.9987-1, RMSE 0.102-0.109 px, nn within 6.7e-4
    assert m["weak_recall"] >= 0.98
    assert m["f1"] >= 0.98
    assert m["rmse"] <= 0.15
    assert m["nn_error"] < 0.01


def measure_threshold_fraction(seed):
    """Mo (1.0) and S2 (0.3): detection at thresholds 0.3 and 0.1 of the intensity range, and in other units."""
    angle = np.random.default_rng(seed).uniform(0, np.pi / 3)
    image, truth, site = lattice_image(
        "honeycomb", size=192, spacing=8.0, sigma=2.0, angle=angle, amplitudes=(1.0, 0.3), dose=800, seed=seed
    )
    strong_only = detect_atoms(image, threshold=0.3)
    # Mo alone is a triangular lattice with a larger nearest-neighbour distance, so a wider edge margin
    whole, inside = whole_columns(truth, 192, strong_only.nn_distance_px)
    _, _, hit = match(strong_only.xy, whole, 4.0)
    both = detect_atoms(image, threshold=0.1)
    whole_both, inside_both = whole_columns(truth, 192, 8.0)
    _, _, hit_both = match(both.xy, whole_both, 4.0)
    scaled = detect_atoms(1000.0 * image + 50.0, threshold=0.3)
    same = len(scaled.xy) == len(strong_only.xy) and np.allclose(scaled.xy, strong_only.xy, atol=1e-3)
    return {"strong_at_0.3": hit[site[inside] == 0].mean(), "weak_at_0.3": hit[site[inside] == 1].mean(),
            "all_at_0.1": hit_both.mean(), "unit_free": float(same)}, image


@pytest.mark.parametrize("seed", seeds(3, 4))
def test_threshold_is_a_fraction_of_the_intensity_range(seed):
    # Mo (1.0) and S2 (0.3) columns (denoised heights ~0.45 and ~0.18 of the range): a threshold of 0.3 keeps
    # only Mo, 0.1 keeps both, and the same fraction gives the same atoms whatever the image's units
    m, image = measure_threshold_fraction(seed)
    # seeds 0-9 and 1000-1009: every whole Mo column kept at 0.3 (the margin follows the Mo-only nn distance; with
    # the MoS2 nn, seed 1004 "lost" 13 % at the edge), no S2; all columns at 0.1: 0.993-1
    assert m["strong_at_0.3"] >= 0.98 and m["weak_at_0.3"] <= 0.01
    assert m["all_at_0.1"] >= 0.98
    assert m["unit_free"]
    with pytest.raises(ValueError, match="threshold"):
        detect_atoms(image, threshold=2.0)


def measure_square(seed, *, dark=False):
    """Square lattice (side 9 px, sigma 2.2 px) at a random angle; ``dark``: inverted contrast. F1 and RMSE."""
    angle = np.random.default_rng(seed).uniform(0, np.pi / 2)
    size = 160 if dark else 256
    image, truth, _ = lattice_image("square", size=size, spacing=9.0, sigma=2.2, angle=angle, seed=seed)
    atoms = detect_atoms(1.0 - image, dark_atoms=True) if dark else detect_atoms(image)
    f1, rmse, _ = match(atoms.xy, whole_columns(truth, size, 9.0)[0], 4.5)
    return {"f1": f1, "rmse": rmse}


@pytest.mark.parametrize("seed", seeds(4, 5))
def test_square_lattice_detection(seed):
    m = measure_square(seed)
    # seeds 0-9: F1 0.9981-1, RMSE 0.055-0.064 px
    assert m["f1"] >= 0.98 and m["rmse"] <= 0.1


@pytest.mark.parametrize("seed", seeds(8, 9))
def test_dark_atoms(seed):
    # seeds 0-9: F1 0.9967-1
    assert measure_square(seed, dark=True)["f1"] >= 0.98


@pytest.mark.parametrize(
    "image",
    [
        np.full((128, 128), 3.0, np.float32),
        np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32),
        np.random.default_rng(1).poisson(5.0, size=(300, 200)).astype(np.float32),
        np.ones((16, 16), np.float32),
    ],
    ids=["constant", "gaussian-noise", "poisson-noise", "tiny"],
)
def test_no_lattice_errors(image):
    with pytest.raises(NoLatticeError, match="lattice|px"):
        estimate_lattice_period(image)
    with pytest.raises(NoLatticeError):
        detect_atoms(image)


def measure_amorphous(seed):
    """Random sequential addition (>= 7 px apart): the period from the diffuse ring, F1 and RMSE."""
    image, truth = amorphous_image(seed=seed)
    atoms = detect_atoms(image)
    f1, rmse, _ = match(atoms.xy, truth, 3.5)
    return {"period_px": atoms.lattice_period_px, "f1": f1, "rmse": rmse}, image


@pytest.mark.parametrize("seed", seeds(3, 4))
def test_amorphous_structure_uses_diffuse_ring(caplog, seed):
    with caplog.at_level(logging.WARNING, logger="motifgram.engine"):
        m, _ = measure_amorphous(seed)
    assert "amorphous" in caplog.text
    # seeds 0-9: period 7.9-10.6 px (the diffuse ring of points >= 7 px apart), F1 0.979-0.992, RMSE 0.063-0.067 px
    assert 7.0 < m["period_px"] < 12.0
    assert m["f1"] >= 0.96 and m["rmse"] <= 0.1


def test_too_fine_lattice():
    image, _, _ = lattice_image("square", size=128, spacing=2.3, sigma=0.6, dose=1e5, read_noise=0.0, seed=seed(0))
    with pytest.raises(NoLatticeError, match="too fine"):
        estimate_lattice_period(image)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_pixels_are_image_errors(bad):
    image, _, _ = lattice_image("square", size=64, seed=seed(0))
    image[3, 5] = bad
    with pytest.raises(ImageError, match="NaN/Inf") as err:
        detect_atoms(image)
    assert not isinstance(err.value, NoLatticeError)
    with pytest.raises(ImageError, match="not|2-D"):
        detect_atoms(np.zeros((4, 64, 64)))


@pytest.mark.parametrize("option", ["lattice_period_px", "min_distance_px", "denoise_sigma_px"])
def test_bad_options_name_the_parameter(option):
    image, _, _ = lattice_image("square", size=64, seed=seed(0))
    with pytest.raises(ValueError, match=option):
        detect_atoms(image, **{option: -1.0})


def test_auto_values_are_logged(caplog):
    image, _, _ = lattice_image("square", size=128, spacing=9.0, sigma=2.2, seed=seed(1))
    with caplog.at_level(logging.INFO, logger="motifgram.engine"):
        detect_atoms(image)
    text = caplog.text
    assert "lattice period" in text and "threshold" in text and "denoise sigma" in text


def measure_explicit_parameters(seed):
    """Square lattice with every automatic value given and no refinement: the period kept, F1, integer positions."""
    angle = np.random.default_rng(seed).uniform(0, np.pi / 2)
    image, truth, _ = lattice_image("square", size=160, spacing=9.0, sigma=2.2, angle=angle, seed=seed)
    atoms = detect_atoms(image, lattice_period_px=9.0, min_distance_px=4.5, denoise_sigma_px=1.5, refine=False)
    f1, _, _ = match(atoms.xy, truth, 4.5)
    return {"f1": f1, "period_px": atoms.lattice_period_px, "integer": float(np.all(atoms.xy == np.rint(atoms.xy)))}


@pytest.mark.parametrize("seed", seeds(6, 7))
def test_explicit_parameters_override_auto(seed):
    m = measure_explicit_parameters(seed)
    assert m["period_px"] == 9.0 and m["integer"]
    # against every truth column: columns centred on the outermost pixels are dropped without a fit
    # seeds 0-9: F1 0.966-0.977
    assert m["f1"] >= 0.95


@pytest.mark.parametrize("seed", seeds(8, 9))
def test_columns_cut_by_the_edge_are_dropped(seed):
    angle = np.random.default_rng(seed).uniform(0, np.pi / 2)
    image, truth, _ = lattice_image("square", size=160, spacing=9.0, sigma=2.2, angle=angle, seed=seed)
    atoms = detect_atoms(image)
    margin = EDGE_MARGIN_NN * atoms.nn_distance_px
    assert np.all((atoms.xy >= margin - 0.5) & (atoms.xy <= 160 - 0.5 - margin))
    # and every whole column is still found
    f1, _, hit = match(atoms.xy, whole_columns(truth, 160, 9.0)[0], 4.5)
    assert hit.all()


# ---- fast-scan (scan-line) noise ------------------------------------------------------------------------------------

def detection_scores(image, truth, size, *, scan_noise_removal):
    """(precision, recall, RMSE, atoms) of detect_atoms against the whole truth columns."""
    atoms = detect_atoms(image, scan_noise_removal=scan_noise_removal)
    truth, _ = whole_columns(truth, size, 8.0)
    _, rmse, hit = match(atoms.xy, truth, 3.0)
    return hit.sum() / len(atoms), hit.mean(), rmse, atoms


SCAN_NOISE = {"mos2": (256, 0.2), "graphene": (192, 0.3)}  # size px, scan_noise


def measure_scan_filter(kind, seed):
    """Precision, recall and RMSE without (0) and with (1) the fast-scan filter on a simulation with scan noise."""
    size, scan_noise = SCAN_NOISE[kind]
    sim = simulate(kind, size=size, seed=seed, scan_noise=scan_noise)
    p0, r0, rmse0, _ = detection_scores(sim.image, sim.truth.xy, size, scan_noise_removal=False)
    p1, r1, rmse1, atoms = detection_scores(sim.image, sim.truth.xy, size, scan_noise_removal=True)
    return {"p0": p0, "r0": r0, "p1": p1, "r1": r1, "precision_gain": p1 - p0, "recall_change": r1 - r0,
            "rmse_ratio": rmse1 / rmse0, "scan_noise": atoms.scan_noise}


@pytest.mark.parametrize("seed", seeds(1, 2, 3))
@pytest.mark.parametrize("kind", list(SCAN_NOISE))
def test_scan_noise_removal_improves_detection(kind, seed):
    m = measure_scan_filter(kind, seed)
    # seeds 0-9, MoS2 (graphene): precision +0.024-0.079 (+0.025-0.070) to 0.969-0.980 (0.957-0.984); recall
    # +0.010-0.039 (-0.007-+0.005: 3 columns of 430 either way) to 0.944-0.974 (0.981-0.998); RMSE x 0.76-0.81
    # (0.66-0.73). The single seed-1 numbers this test used to pin, and its "+0.05 precision", held for some seeds only.
    assert m["precision_gain"] > 0.01
    assert m["recall_change"] > -0.015
    assert m["rmse_ratio"] < 0.9
    assert m["p1"] > 0.94 and m["r1"] > 0.93
    assert m["scan_noise"] > 0


@pytest.mark.parametrize("kind", ["graphene", "mos2", "perovskite", "crn"])
@pytest.mark.parametrize("size", [64, 192])
def test_clean_images_are_left_alone(kind, size):
    image = simulate(kind, size=size, seed=seed(2)).image
    assert np.array_equal(detect.remove_scan_noise(image), image)


def test_clean_detection_unchanged_by_scan_filter():
    image, _, _ = lattice_image("honeycomb", size=192, spacing=8.0, sigma=2.0, angle=0.7, amplitudes=(1.0, 0.3),
                                dose=800, seed=seed(3))
    atoms = detect_atoms(image)
    plain = detect_atoms(image, scan_noise_removal=False)
    np.testing.assert_array_equal(atoms.xy, plain.xy)
    assert atoms.scan_noise == 0.0


def measure_scan_filter_image(seed):
    """How much of the added scan noise the filter takes out (residual / added, RMS), and rot90 equivariance."""
    noisy = simulate("mos2", size=128, seed=seed, scan_noise=0.3).image
    cleaned = detect.remove_scan_noise(noisy)
    clean = simulate("mos2", size=128, seed=seed).image
    turned = detect.remove_scan_noise(np.rot90(noisy))
    return {"residual_ratio": float(np.std(cleaned - clean) / np.std(noisy - clean)),
            "rot90_error": float(np.abs(turned - np.rot90(cleaned)).max()),
            "changed": float(not np.array_equal(cleaned, noisy))}


@pytest.mark.parametrize("seed", seeds(4, 5))
def test_scan_filter_treats_rows_and_columns_alike(seed):
    m = measure_scan_filter_image(seed)
    assert m["changed"]
    # streaks along the columns (a slow-scan axis along x) are found the same way
    assert m["rot90_error"] < 1e-4
    # seeds 0-9: 0.63-0.74 of the added noise is left
    assert m["residual_ratio"] < 0.85


def measure_joint_refinement(seed):
    """Honeycomb at low dose (B columns at 0.4 of A, 20 counts; equal columns, 10 counts): the position RMSE (px,
    inner columns) of the independent fit alone and with the joint fit."""
    out = {}
    for name, amplitudes, dose in [("weak_b", (1.0, 0.4), 20.0), ("equal", (1.0, 1.0), 10.0)]:
        image, truth, _ = lattice_image("honeycomb", amplitudes=amplitudes, dose=dose, seed=seed)
        inner = truth[(truth.min(1) > 10) & (truth.max(1) < image.shape[0] - 10)]
        for joint in (False, True):
            dist, _ = cKDTree(detect_atoms(image, joint=joint).xy).query(inner)
            out[name, joint] = float(np.sqrt(np.mean(dist[dist < 4.0] ** 2)))
    return out


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_joint_refinement_beats_the_independent_fit_at_low_dose(seed):
    m = measure_joint_refinement(seed)
    # seeds 0-5: weak B 0.41-0.44 px -> 0.26-0.28 px; equal columns 0.37-0.39 -> 0.25-0.27
    for name in ("weak_b", "equal"):
        assert m[name, True] < 0.8 * m[name, False], (name, m)
        assert m[name, True] < 0.32, (name, m)


def test_noise_weights_follow_poisson_and_read_noise():
    # two flat halves at 0.5 and 2 units, 50 counts per unit, read noise 0.02: variance 0.0104 and 0.0404
    # (seeds 0-5: 0.0102-0.0111 and 0.0390-0.0423)
    rng = np.random.default_rng(seed(0))
    flat = np.repeat(np.array([0.5, 2.0]), 128 * 256).reshape(256, 256)
    image = rng.poisson(flat * 50) / 50 + 0.02 * rng.standard_normal((256, 256))
    variance = 1.0 / noise_weights(image)
    assert np.median(variance[:128]) == pytest.approx(0.0104, rel=0.15)
    assert np.median(variance[128:]) == pytest.approx(0.0404, rel=0.15)


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_missing_neighbours_are_voted_for_at_vacancies_only(seed):
    # detect._hidden_columns skips its image-wide work where no pixel has the votes: none on a clean honeycomb (its
    # edges included), and with two lone vacancies 26-30 pixels at them and none elsewhere (seeds 0-9, 1000-1009)
    rng = np.random.default_rng(seed)
    _, xy, _ = lattice_image(spacing=8.0, angle=rng.uniform(0, np.pi / 3), seed=seed)
    xy = xy[np.all((xy >= 0) & (xy <= 255), axis=1)].astype(np.float32)
    inner = np.flatnonzero(np.all((xy > 40) & (xy < 215), axis=1))
    first, *rest = xy[rng.permutation(inner)]  # two vacancies apart (adjacent ones change their neighbours' bonds)
    vacancies = np.stack([first, next(p for p in rest if np.hypot(*(p - first)) > 5 * 8.0)])
    assert detect._voted_pixels(*detect._voters(xy, nn_px=8.0), (256, 256), nn_px=8.0).size == 0
    atoms = xy[cKDTree(vacancies).query(xy)[0] > 1.0]
    voted = detect._voted_pixels(*detect._voters(atoms, nn_px=8.0), (256, 256), nn_px=8.0)
    pixels = np.stack([voted % 256, voted // 256], axis=1)
    assert cKDTree(vacancies).query(pixels)[0].max() < 0.35 * 8.0  # 1.9-2.3 px: where the three cones meet
    assert cKDTree(pixels).query(vacancies)[0].max() < 1.0
