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
from motifgram.engine.simulate import simulate


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


def test_honeycomb_detection_f1_and_rmse():
    image, truth, _ = lattice_image("honeycomb", size=384, spacing=8.0, sigma=2.0, angle=0.3, seed=7)
    atoms = detect_atoms(image)
    assert isinstance(atoms, Atoms)
    assert atoms.xy.dtype == np.float32 and atoms.xy.shape == (len(atoms), 2)
    assert atoms.intensity.shape == (len(atoms),) and np.isfinite(atoms.intensity).all()
    assert np.isfinite(atoms.xy).all()
    f1, rmse, _ = match(atoms.xy, truth, 4.0)
    assert f1 >= 0.99
    assert rmse <= 0.25
    assert abs(atoms.nn_distance_px / 8.0 - 1) < 0.03
    assert abs(atoms.lattice_period_px / 12.0 - 1) < 0.03


def test_refinement_beats_centre_of_mass():
    image, truth, _ = lattice_image("honeycomb", size=256, spacing=8.0, sigma=2.0, angle=1.1, seed=11)
    start = np.rint(truth + np.random.default_rng(0).normal(0, 0.3, truth.shape))
    com, _ = refine_positions(image, start, sigma_px=2.0, half_window=4, n_iter=0)
    fit, amp = refine_positions(image, start, sigma_px=2.0, half_window=4)
    rmse_com = np.sqrt(np.mean(np.sum((com - truth) ** 2, axis=1)))
    rmse_fit = np.sqrt(np.mean(np.sum((fit - truth) ** 2, axis=1)))
    assert rmse_fit < 0.6 * rmse_com
    assert np.isfinite(amp).all() and np.median(amp) == pytest.approx(1.0, rel=0.15)


def test_rot90_gives_rotated_atoms():
    image, _, _ = lattice_image("honeycomb", size=192, spacing=8.0, sigma=2.0, angle=0.2, seed=5)
    atoms = detect_atoms(image)
    rotated = detect_atoms(np.rot90(image))
    # np.rot90: new row = W - 1 - old x, new col = old y
    expected = np.stack([atoms.xy[:, 1], image.shape[1] - 1 - atoms.xy[:, 0]], axis=1)
    f1, rmse, _ = match(rotated.xy, expected, 1.0)
    assert f1 == 1.0
    assert rmse < 1e-3


def test_weak_and_strong_columns_all_found():
    # MoS2-like: strong Mo (1.0) and weak S2 (0.3) columns on the two honeycomb sublattices
    image, truth, site = lattice_image(
        "honeycomb", size=256, spacing=8.0, sigma=2.0, angle=0.7, amplitudes=(1.0, 0.3), dose=800, seed=3
    )
    atoms = detect_atoms(image)
    truth, inside = whole_columns(truth, 256, 8.0)
    f1, rmse, hit = match(atoms.xy, truth, 4.0)
    assert hit[site[inside] == 1].mean() >= 0.99
    assert f1 >= 0.99
    assert rmse <= 0.3
    assert abs(atoms.nn_distance_px / 8.0 - 1) < 0.03


def test_threshold_is_a_fraction_of_the_intensity_range():
    # Mo (1.0) and S2 (0.3) columns (denoised heights ~0.45 and ~0.18 of the range): a threshold of 0.3 keeps
    # only Mo (less a few cut by the edge), 0.1 keeps both, and the same fraction gives the same atoms whatever
    # the image's units
    image, truth, site = lattice_image(
        "honeycomb", size=192, spacing=8.0, sigma=2.0, angle=0.7, amplitudes=(1.0, 0.3), dose=800, seed=3
    )
    truth, inside = whole_columns(truth, 192, 8.0)
    strong_only = detect_atoms(image, threshold=0.3)
    _, _, hit = match(strong_only.xy, truth, 4.0)
    assert hit[site[inside] == 0].mean() >= 0.95 and hit[site[inside] == 1].mean() <= 0.01
    both = detect_atoms(image, threshold=0.1)
    _, _, hit = match(both.xy, truth, 4.0)
    assert hit.mean() >= 0.99
    scaled = detect_atoms(1000.0 * image + 50.0, threshold=0.3)
    np.testing.assert_allclose(scaled.xy, strong_only.xy, atol=1e-3)
    with pytest.raises(ValueError, match="threshold"):
        detect_atoms(image, threshold=2.0)


def test_square_lattice_detection():
    image, truth, _ = lattice_image("square", size=256, spacing=9.0, sigma=2.2, angle=0.4, seed=4)
    atoms = detect_atoms(image)
    f1, rmse, _ = match(atoms.xy, whole_columns(truth, 256, 9.0)[0], 4.5)
    assert f1 >= 0.99 and rmse <= 0.25


def test_dark_atoms():
    image, truth, _ = lattice_image("square", size=160, spacing=9.0, sigma=2.2, angle=0.4, seed=8)
    atoms = detect_atoms(1.0 - image, dark_atoms=True)
    f1, _, _ = match(atoms.xy, whole_columns(truth, 160, 9.0)[0], 4.5)
    assert f1 >= 0.99


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


def test_amorphous_structure_uses_diffuse_ring(caplog):
    image, truth = amorphous_image(seed=3)
    with caplog.at_level(logging.WARNING, logger="motifgram.engine.detect"):
        atoms = detect_atoms(image)
    assert "amorphous" in caplog.text
    assert 7.0 < atoms.lattice_period_px < 12.0
    f1, rmse, _ = match(atoms.xy, truth, 3.5)
    assert f1 >= 0.97 and rmse <= 0.3


def test_too_fine_lattice():
    image, _, _ = lattice_image("square", size=128, spacing=2.3, sigma=0.6, dose=1e5, read_noise=0.0, seed=0)
    with pytest.raises(NoLatticeError, match="too fine"):
        estimate_lattice_period(image)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_pixels_are_image_errors(bad):
    image, _, _ = lattice_image("square", size=64, seed=0)
    image[3, 5] = bad
    with pytest.raises(ImageError, match="NaN/Inf") as err:
        detect_atoms(image)
    assert not isinstance(err.value, NoLatticeError)
    with pytest.raises(ImageError, match="not|2-D"):
        detect_atoms(np.zeros((4, 64, 64)))


@pytest.mark.parametrize("option", ["lattice_period_px", "min_distance_px", "denoise_sigma_px"])
def test_bad_options_name_the_parameter(option):
    image, _, _ = lattice_image("square", size=64, seed=0)
    with pytest.raises(ValueError, match=option):
        detect_atoms(image, **{option: -1.0})


def test_auto_values_are_logged(caplog):
    image, _, _ = lattice_image("square", size=128, spacing=9.0, sigma=2.2, seed=1)
    with caplog.at_level(logging.INFO, logger="motifgram.engine.detect"):
        detect_atoms(image)
    text = caplog.text
    assert "lattice period" in text and "threshold" in text and "denoise sigma" in text


def test_explicit_parameters_override_auto():
    image, truth, _ = lattice_image("square", size=160, spacing=9.0, sigma=2.2, angle=0.1, seed=6)
    atoms = detect_atoms(
        image, lattice_period_px=9.0, min_distance_px=4.5, denoise_sigma_px=1.5, refine=False
    )
    assert atoms.lattice_period_px == 9.0
    f1, _, _ = match(atoms.xy, truth, 4.5)
    assert f1 >= 0.95  # columns centred on the outermost pixels are dropped without a fit
    assert np.all(atoms.xy == np.rint(atoms.xy))


def test_columns_cut_by_the_edge_are_dropped():
    image, truth, _ = lattice_image("square", size=160, spacing=9.0, sigma=2.2, angle=0.4, seed=8)
    atoms = detect_atoms(image)
    margin = EDGE_MARGIN_NN * atoms.nn_distance_px
    assert np.all((atoms.xy >= margin - 0.5) & (atoms.xy <= 160 - 0.5 - margin))
    # and every whole column is still found
    f1, _, hit = match(atoms.xy, whole_columns(truth, 160, 9.0)[0], 4.5)
    assert hit.all()


# ---- fast-scan (scan-line) noise ------------------------------------------------------------------------------------

def detection_scores(image, truth, size, *, remove_scan_noise, monkeypatch):
    """(precision, recall, RMSE) of detect_atoms against the whole truth columns, with or without the scan filter."""
    with monkeypatch.context() as m:
        if not remove_scan_noise:
            m.setattr(detect, "_remove_scan_noise", lambda img: (img, 0.0, 0.0))
        atoms = detect_atoms(image)
    truth, _ = whole_columns(truth, size, 8.0)
    _, rmse, hit = match(atoms.xy, truth, 3.0)
    return hit.sum() / len(atoms), hit.mean(), rmse, atoms


@pytest.mark.parametrize(
    "kind, size, before, after",
    [
        # measured (precision, recall) without -> with the filter, seed 1, scan_noise 0.2 (mos2) / 0.3 (graphene)
        ("mos2", 256, (0.915, 0.954), (0.976, 0.971)),
        ("graphene", 192, (0.914, 0.986), (0.982, 0.993)),
    ],
)
def test_scan_noise_removal_improves_detection(kind, size, before, after, monkeypatch):
    scan_noise = 0.2 if kind == "mos2" else 0.3
    sim = simulate(kind, size=size, seed=1, scan_noise=scan_noise)
    p0, r0, rmse0, _ = detection_scores(sim.image, sim.truth.xy, size, remove_scan_noise=False,
                                        monkeypatch=monkeypatch)
    p1, r1, rmse1, atoms = detection_scores(sim.image, sim.truth.xy, size, remove_scan_noise=True,
                                            monkeypatch=monkeypatch)
    assert (p0, r0) == pytest.approx(before, abs=0.01)
    assert (p1, r1) == pytest.approx(after, abs=0.01)
    assert p1 > p0 + 0.05 and r1 >= r0
    assert rmse1 < 0.8 * rmse0  # positions too: 0.79 -> 0.62 px (MoS2), 0.73 -> 0.53 px (graphene)
    assert atoms.scan_noise > 0


@pytest.mark.parametrize("kind", ["graphene", "mos2", "perovskite", "crn"])
@pytest.mark.parametrize("size", [64, 192])
def test_clean_images_are_left_alone(kind, size):
    image = simulate(kind, size=size, seed=2).image
    assert np.array_equal(detect.remove_scan_noise(image), image)


def test_clean_detection_unchanged_by_scan_filter(monkeypatch):
    image, _, _ = lattice_image("honeycomb", size=192, spacing=8.0, sigma=2.0, angle=0.7, amplitudes=(1.0, 0.3),
                                dose=800, seed=3)
    atoms = detect_atoms(image)
    monkeypatch.setattr(detect, "_remove_scan_noise", lambda img: (img, 0.0, 0.0))
    plain = detect_atoms(image)
    np.testing.assert_array_equal(atoms.xy, plain.xy)
    assert atoms.scan_noise == 0.0


def test_scan_filter_treats_rows_and_columns_alike():
    noisy = simulate("mos2", size=128, seed=4, scan_noise=0.3).image
    cleaned = detect.remove_scan_noise(noisy)
    assert not np.array_equal(cleaned, noisy)
    # streaks along the columns (a slow-scan axis along x) are found the same way
    np.testing.assert_allclose(detect.remove_scan_noise(np.rot90(noisy)), np.rot90(cleaned), atol=1e-4)
    clean = simulate("mos2", size=128, seed=4).image
    assert np.std(cleaned - clean) < 0.85 * np.std(noisy - clean)
