"""Tests for motifgram.engine.tokens on synthetic honeycomb micrographs with known site classes."""

import numpy as np
import pytest

from motifgram.engine.detect import detect_atoms
from motifgram.engine.errors import MotifgramError
from motifgram.engine.mixture import adjusted_rand_index
from motifgram.engine.patches import extract_patches, normalise_image, patch_size_for, rotate_patches
from motifgram.engine.simulate import simulate
from motifgram.engine.tokens import (
    TokenModel,
    assign_tokens,
    class_averages,
    compute_features,
    learn_tokens,
    token_names,
)
from motifgram.engine.zernike import zernike_moments

SIZE, BOND, PATCH = 320, 8.0, 17
MOS2 = (1.0, 0.6, 0.3, 0.9)  # intensities of Mo, S2, S1 (S vacancy), SSe (substitution)


def honeycomb(intensities, *, defect_fraction=0.0, sigma=1.4, noise=0.03, seed=0):
    """Gaussian columns on a honeycomb: site class 0 on sublattice A, 1 on B, and a fraction of B turned
    into class 2 and 3. Returns the image and the classes and positions of the atoms at least half a patch
    from the border."""
    rng = np.random.default_rng(seed)
    a = BOND * np.sqrt(3)
    n = int(SIZE / BOND) + 4
    i, j = np.meshgrid(np.arange(-n, n), np.arange(-n, n))
    cells = i.reshape(-1, 1) * np.array([a, 0.0]) + j.reshape(-1, 1) * np.array([a / 2, a * np.sqrt(3) / 2])
    xy = np.concatenate([cells, cells + [a / 2, BOND / 2]]) + rng.uniform(0, a, 2)
    label = np.repeat([0, 1], len(cells))
    keep = ((xy > -5 * sigma) & (xy < SIZE + 5 * sigma)).all(1)
    xy, label = xy[keep], label[keep]
    b_sites = rng.permutation(np.flatnonzero(label == 1))[: int(2 * defect_fraction * (label == 1).sum())]
    label[b_sites[: len(b_sites) // 2]] = 2
    label[b_sites[len(b_sites) // 2 :]] = 3
    amp = np.asarray(intensities)[label]
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.zeros((SIZE, SIZE))
    r = int(4 * sigma) + 1
    for (x, y), height in zip(xy, amp, strict=True):
        rows = slice(max(int(y) - r, 0), max(min(int(y) + r + 2, SIZE), 0))
        cols = slice(max(int(x) - r, 0), max(min(int(x) + r + 2, SIZE), 0))
        img[rows, cols] += height * np.exp(-((xx[rows, cols] - x) ** 2 + (yy[rows, cols] - y) ** 2) / (2 * sigma**2))
    img += rng.normal(0, noise, img.shape)
    margin = PATCH // 2 + 1
    inside = ((xy >= margin) & (xy <= SIZE - 1 - margin)).all(1)
    return img.astype(np.float32), xy[inside], label[inside]


@pytest.fixture(scope="module")
def mos2():
    img, xy, truth = honeycomb(MOS2, defect_fraction=0.03, seed=1)
    feats = compute_features(img, xy, patch_size=PATCH)
    model, labels, conf = learn_tokens(
        feats.invariants, patches=feats.patches, moments=feats.moments, lattice_period_px=BOND, seed=0
    )
    return feats, truth, model, labels, conf


def test_compute_features_shapes_and_dtypes():
    img, xy, _ = honeycomb(MOS2, seed=0)
    f = compute_features(img, xy[:50], patch_size=PATCH, n_max=8)
    assert f.moments.shape == (50, 25) and f.moments.dtype == np.complex64
    assert f.invariants.shape == (50, 25) and f.invariants.dtype == np.float32
    np.testing.assert_allclose(f.invariants, np.abs(f.moments), rtol=1e-6)
    assert "patches" not in vars(f)  # extracted lazily
    assert f.patches.shape == (50, PATCH, PATCH) and f.patches.dtype == np.float32
    assert f.patches is f.patches
    np.testing.assert_array_equal(f.patches, extract_patches(img, xy[:50], patch_size=PATCH))
    with pytest.raises(ValueError, match="patch_size"):
        compute_features(img, xy, patch_size=16)


def _graphene_features(rotation, seed, size):
    """Invariants of the atoms of a pristine simulated graphene micrograph (detected positions), and
    which of them are at least half a patch from the border."""
    sim = simulate("graphene", size=size, seed=seed, rotation=rotation, stone_wales_density=0, vacancy_density=0)
    atoms = detect_atoms(sim.image)
    size_px = patch_size_for(atoms.lattice_period_px)
    feats = compute_features(normalise_image(sim.image, atoms.xy), atoms.xy, patch_size=size_px)
    half = size_px / 2
    interior = ((atoms.xy > half) & (atoms.xy < size - 1 - half)).all(axis=1)
    return feats.invariants, interior


def test_invariants_do_not_depend_on_the_lattice_orientation():
    # Every invariant's mean over a micrograph moves by less than half its spread within a micrograph when
    # the lattice turns (0.3 rad is the worst case of square pixel patches: ratios of about 4 there).
    for seed in (1, 2, 3):
        inv = {}
        for rotation in (0.0, 0.3, 0.52):
            values, interior = _graphene_features(rotation, seed, 320)
            inv[rotation] = values[interior]
        for a, b in ((0.0, 0.3), (0.0, 0.52), (0.3, 0.52)):
            spread = np.sqrt(0.5 * (inv[a].var(axis=0) + inv[b].var(axis=0)))
            ratio = np.abs(inv[a].mean(axis=0) - inv[b].mean(axis=0)) / spread
            assert ratio.max() < 0.5, (seed, a, b, ratio.round(2))


def test_tokens_of_two_orientations_are_not_split_by_micrograph():
    parts = [_graphene_features(rotation, 2, 256) for rotation in (0.0, 0.3)]
    inv = np.concatenate([p[0] for p in parts])
    interior = np.concatenate([p[1] for p in parts])
    owner = np.repeat([0, 1], [len(p[0]) for p in parts])
    model, labels, _ = learn_tokens(inv, k="auto", seed=0)
    for token in range(len(model.names)):
        members = owner[labels == token]
        if len(members) >= 0.05 * len(labels):
            assert max(np.mean(members == 0), np.mean(members == 1)) <= 0.9, (token, np.bincount(members))
    # away from the (mirrored, orientation-dependent) border every atom of both micrographs is one token
    for mic in (0, 1):
        counts = np.bincount(labels[interior & (owner == mic)], minlength=len(model.names))
        assert counts[0] >= 0.98 * counts.sum()


def test_mos2_site_classes_are_separated(mos2):
    feats, truth, model, labels, conf = mos2
    assert adjusted_rand_index(truth, labels) >= 0.8
    assert 3 <= len(model.names) <= 6
    assert model.names[:3] == ("A", "B", "C")
    assert np.all(np.diff(model.abundances) <= 0)
    assert np.all((conf > 0) & (conf <= 1 + 1e-9)) and np.median(conf) > 0.9
    # Mo and S2 columns never share a token
    mo = set(labels[truth == 0].tolist())
    s2 = set(labels[truth == 1].tolist())
    assert len(mo & s2) <= 1 and np.bincount(labels[truth == 0]).max() > 0.75 * (truth == 0).sum()


def test_model_fields_and_class_averages(mos2):
    feats, truth, model, labels, _ = mos2
    k = len(model.names)
    assert model.patch_size == PATCH and model.n_max == 10 and model.lattice_period_px == BOND
    assert model.class_averages.shape == (k, PATCH, PATCH) and model.class_averages.dtype == np.float32
    c = PATCH // 2
    mo_token = np.bincount(labels[truth == 0]).argmax()
    s2_token = np.bincount(labels[truth == 1]).argmax()
    assert model.class_averages[mo_token, c, c] > model.class_averages[s2_token, c, c] + 0.2


def test_assign_tokens_reproduces_training_labels_and_generalises(mos2):
    feats, truth, model, labels, conf = mos2
    again, again_conf = assign_tokens(model, feats.invariants)
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_allclose(again_conf, conf, atol=1e-6)
    img, xy, truth2 = honeycomb(MOS2, defect_fraction=0.03, seed=11)
    new = compute_features(img, xy, patch_size=PATCH)
    labels2, _ = assign_tokens(model, new.invariants)
    assert adjusted_rand_index(truth2, labels2) >= 0.75
    with pytest.raises(MotifgramError, match="n_max"):
        assign_tokens(model, new.invariants[:, :20])


def test_save_load_round_trip(mos2, tmp_path):
    _, _, model, _, _ = mos2
    path = tmp_path / "tokens.npz"
    model.save(path)
    back = TokenModel.load(path)
    assert back.names == model.names and back.n_max == model.n_max and back.patch_size == model.patch_size
    for name in ("feature_mean", "feature_scale", "projection", "class_averages", "abundances"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    for u, v in zip(back.mixture, model.mixture, strict=True):
        np.testing.assert_array_equal(u, v)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[key].dtype != object for key in data.files)
    with pytest.raises(MotifgramError):
        TokenModel.load(tmp_path / "missing.npz")


def test_graphene_gives_one_or_two_tokens():
    img, xy, _ = honeycomb((1.0, 1.0), seed=2)
    feats = compute_features(img, xy, patch_size=PATCH)
    model, labels, _ = learn_tokens(feats.invariants, seed=0)
    assert 1 <= len(model.names) <= 2
    assert model.abundances[0] > 0.8
    assert model.class_averages.shape == (len(model.names), 0, 0) and model.patch_size == 0


def test_fixed_k_custom_names_and_validation():
    img, xy, truth = honeycomb((1.0, 0.5), seed=3)
    feats = compute_features(img, xy, patch_size=PATCH)
    model, labels, _ = learn_tokens(feats.invariants, k=2, names=("Mo", "S"), seed=0)
    assert model.names == ("Mo", "S") and len(model.mixture.weights) == 2
    assert adjusted_rand_index(truth, labels) > 0.99
    with pytest.raises(ValueError, match="names"):
        learn_tokens(feats.invariants, k=2, names=("X",))
    with pytest.raises(ValueError, match="k must"):
        learn_tokens(feats.invariants, k="many")
    with pytest.raises(ValueError, match="patches and moments"):
        learn_tokens(feats.invariants, k=2, patches=feats.patches)


def test_class_averages_align_rotated_copies():
    yy, xx = np.mgrid[0:21, 0:21] - 10.0
    template = np.exp(-((xx - 5) ** 2 + yy**2) / 6.0) + 0.6 * np.exp(-((xx + 2) ** 2 + (yy - 4) ** 2) / 6.0)
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, 40)
    copies = rotate_patches(np.repeat(template[None].astype(np.float32), 40, axis=0), angles)
    mom = zernike_moments(copies, sampling="square")
    avg = class_averages(copies, mom, np.zeros(40, int), 2)
    assert avg.shape == (2, 21, 21) and np.all(avg[1] == 0)
    naive = copies.mean(axis=0)
    disk = np.hypot(xx, yy) <= 9
    # aligned average keeps the template's contrast; the naive average smears it into a ring
    assert avg[0][disk].std() > 1.5 * naive[disk].std()


def test_token_names():
    assert token_names(3) == ("A", "B", "C")
    names = token_names(28)
    assert names[25:] == ("Z", "AA", "AB") and len(set(names)) == 28
