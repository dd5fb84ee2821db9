"""Tests for motifgram.engine.tokens on synthetic honeycomb micrographs with known site classes."""

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from motifgram.engine.detect import detect_atoms
from motifgram.engine.errors import MotifgramError
from motifgram.engine.mixture import Mixture, adjusted_rand_index, select_n_components
from motifgram.engine.patches import extract_patches, normalise_image, patch_size_for, rotate_patches
from motifgram.engine.simulate import simulate
from motifgram.engine.tokens import (
    TokenModel,
    assign_tokens,
    bhattacharyya_coefficient,
    class_averages,
    compute_features,
    is_close_call,
    learn_tokens,
    merge_components,
    merge_decision,
    merge_sequence,
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
    # 0.83 without merging; merging joins the broad 4 % defect component (both defect classes and some
    # B sites, Bhattacharyya coefficient 0.31) into the B token, leaving 0.79
    assert adjusted_rand_index(truth, labels) >= 0.78
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
    np.testing.assert_array_equal(back.component_token, model.component_token)
    assert back.component_token.dtype == np.int64
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
    np.testing.assert_array_equal(model.component_token, [0, 1])  # an int k is never merged
    assert adjusted_rand_index(truth, labels) > 0.99
    with pytest.raises(ValueError, match="names"):
        learn_tokens(feats.invariants, k=2, names=("X",))
    with pytest.raises(ValueError, match="k must"):
        learn_tokens(feats.invariants, k="many")
    with pytest.raises(ValueError, match="patches and moments"):
        learn_tokens(feats.invariants, k=2, patches=feats.patches)
    with pytest.raises(ValueError, match="merge threshold"):
        learn_tokens(feats.invariants, merge_threshold=1.5)


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


# ------------------------------------------------------------------------------ merging mixture components


def test_bhattacharyya_coefficient_closed_forms():
    assert bhattacharyya_coefficient([1, 2], np.eye(2), [1, 2], np.eye(2)) == pytest.approx(1.0)
    # equal covariances: exp(-Mahalanobis^2 / 8)
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    d = np.array([1.0, -2.0])
    want = np.exp(-d @ np.linalg.solve(cov, d) / 8)
    assert bhattacharyya_coefficient(d, cov, [0, 0], cov) == pytest.approx(want)
    # 1-D, different variances: sqrt(2 s1 s2 / (s1^2 + s2^2)) exp(-delta^2 / (4 (s1^2 + s2^2)))
    s1, s2, delta = 1.0, 3.0, 2.5
    want = np.sqrt(2 * s1 * s2 / (s1**2 + s2**2)) * np.exp(-(delta**2) / (4 * (s1**2 + s2**2)))
    assert bhattacharyya_coefficient([0.0], [[s1**2]], [delta], [[s2**2]]) == pytest.approx(want)


def test_merging_joins_split_unimodal_clusters_and_keeps_separate_ones():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, np.pi, 1500)
    banana = np.c_[10 * np.cos(t), 10 * np.sin(t)] + rng.normal(0, 1.0, (1500, 2))  # a half ring
    heavy = rng.standard_t(3, (1500, 3))  # Student t, 3 degrees of freedom
    two = np.concatenate([rng.normal(0, 1, (600, 3)), rng.normal(0, 1, (600, 3)) + [6, 0, 0]])
    for x, want in ((banana, 1), (heavy, 1), (two, 2)):
        mix = select_n_components(x, k_range=(1, 6), seed=0, min_weight=0.01)
        groups = merge_components(mix)
        assert groups.dtype == np.int64 and groups.shape == mix.weights.shape
        assert groups.max() + 1 == want, (len(mix.weights), groups)
        if want == 1:
            assert len(mix.weights) >= 3  # BIC alone splits it
            np.testing.assert_array_equal(merge_components(mix, threshold=1.0), np.arange(len(mix.weights)))
    np.testing.assert_array_equal(merge_components(mix, threshold=0.0), [0, 0])


def _two_gaussians(coefficient, third=None):
    """A 1-D mixture whose first two unit-variance components overlap with this Bhattacharyya coefficient
    (equal variances: BC = exp(-delta^2 / 8)); ``third`` adds a component at that mean."""
    means = [0.0, np.sqrt(-8 * np.log(coefficient))] + ([] if third is None else [third])
    k = len(means)
    return Mixture(weights=np.full(k, 1 / k), means=np.array(means)[:, None], covariances=np.ones((k, 1, 1)),
                   log_likelihood=0.0, converged=True, n_iter=1, covariance_type="full")


@pytest.mark.parametrize(
    "coefficient, third, groups, warned",
    [
        (0.26, None, 1, True),  # merged inside the undecided band
        (0.24, None, 2, True),  # refused inside it
        (0.50, None, 1, False),  # one class split in two: merged, clearly
        (0.10, None, 2, False),  # two classes: kept, clearly
        (0.50, 40.0, 2, False),  # the far third component's refusal (coefficient 0) is not a close call
        (0.263, 6.0, 1, True),  # a chain: 1-2 merge at 0.39, then {1, 2} joins 0 at 0.263 (2 to 0: 0.011)
        (0.50, 5.733, 2, True),  # 0-1 merge at 0.5, then 2 is refused at 0.240 from 1 (0.016 from 0)
    ],
)
def test_a_merge_decided_near_the_threshold_is_reported(caplog, coefficient, third, groups, warned):
    with caplog.at_level("WARNING", logger="motifgram.engine.tokens"):
        found = merge_components(_two_gaussians(coefficient, third))
    assert found.max() + 1 == groups
    assert ("close call" in caplog.text) == warned


def test_merge_sequence_is_single_linkage_and_the_decision_brackets_the_threshold():
    coefficients, pairs = merge_sequence(_two_gaussians(0.263, third=6.0))
    # 1 and 2 (2.73 apart: exp(-2.73^2 / 8) = 0.394) first, then 0 joins through 1 (0.263), not 2 (0.011)
    np.testing.assert_allclose(coefficients, [0.394, 0.263], atol=1e-3)
    assert sorted(pairs[0]) == [1, 2] and sorted(pairs[1]) == [0, 1]
    assert merge_decision(coefficients, 0.25) == pytest.approx((0.263, None), abs=1e-3)
    assert merge_decision(coefficients, 0.3) == pytest.approx((0.394, 0.263), abs=1e-3)
    assert merge_decision(coefficients, 0.5) == (None, pytest.approx(0.394, abs=1e-3))
    assert is_close_call((0.263, None)) and not is_close_call((0.394, 0.1))
    assert not is_close_call((0.263, None), threshold=0.3)  # the band belongs to the default threshold


def _simulated_features(kind, size, patch_sizes, **options):
    """Per patch size: invariants of the detected atoms whose feature disk lies inside the image and that
    match a true atom within half a bond, with the true site class (Se2 counted as SSe)."""
    sim = simulate(kind, size=size, seed=0, **options)
    atoms = detect_atoms(sim.image)
    dist, nearest = cKDTree(sim.truth.xy).query(atoms.xy)
    label = sim.truth.label[nearest]
    label = np.where(label == "Se2", "SSe", label)
    image = normalise_image(sim.image, atoms.xy)
    out = {}
    for size_px in patch_sizes:
        half = size_px / 2
        keep = ((atoms.xy >= half) & (atoms.xy <= size - 1 - half)).all(axis=1) & (dist < 0.5 * atoms.nn_distance_px)
        feats = compute_features(image, atoms.xy[keep], patch_size=size_px)
        out[size_px] = (feats.invariants, np.unique(label[keep], return_inverse=True)[1])
    return out


def test_pristine_graphene_is_one_token_at_every_patch_size():
    features = _simulated_features("graphene", 512, (9, 13, 25), stone_wales_density=0, vacancy_density=0)
    split = 0
    for size_px, (inv, _) in features.items():
        model, labels, conf = learn_tokens(inv, seed=0)
        assert model.names == ("A",), (size_px, model.component_token)
        assert np.all(labels == 0) and np.allclose(conf, 1.0)
        np.testing.assert_allclose(model.token_means(), [model.mixture.weights @ model.mixture.means], atol=1e-12)
        split += len(model.mixture.weights) > 1
    assert split >= 1  # BIC chose several components somewhere; merging made them one token


def test_graphene_of_two_orientations_pooled_is_one_token():
    parts = [_graphene_features(rotation, 2, 256) for rotation in (0.0, 0.3)]
    inv = np.concatenate([values[interior] for values, interior in parts])
    model, labels, _ = learn_tokens(inv, seed=0)
    assert model.names == ("A",)


def test_perovskite_sites_are_three_tokens():
    features = _simulated_features("perovskite", 384, (17,))
    inv, truth = features[17]
    model, labels, conf = learn_tokens(inv, seed=0)
    assert len(model.names) == 3 and len(model.mixture.weights) == 4  # the O component pair was merged
    assert adjusted_rand_index(truth, labels) >= 0.95
    unmerged, labels_unmerged, _ = learn_tokens(inv, seed=0, merge_threshold=None)
    assert len(unmerged.names) == 4 and adjusted_rand_index(truth, labels_unmerged) < 0.8
    # token posteriors sum over components; assignment reproduces training labels
    again, again_conf = assign_tokens(model, inv)
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_allclose(again_conf, conf, atol=1e-9)
    np.testing.assert_allclose(model.token_posterior(model.transform(inv)).sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(np.bincount(labels)) <= 0)
    assert np.all(np.diff(model.component_token) >= 0)


def _pipeline_features(kind, size, seed, descriptor):
    """Features of the interior atoms of a simulated micrograph through the pipeline's per-micrograph stage
    (:func:`motifgram.engine.pipeline.analyse_micrograph`), with the true site class of each atom that matches
    a true atom within half a bond (Se2 counted as SSe) and -1 for the others."""
    from motifgram.engine.stages import analyse_micrograph, load_input
    from motifgram.engine.spec import load_spec

    options = {"kind": kind, "size": size, "seed": seed}
    spec = load_spec({"inputs": [{"simulate": options}], "features": {"descriptor": descriptor}})
    sim = simulate(kind, size=size, seed=seed)
    analysis = analyse_micrograph(load_input(spec.inputs[0]), spec)
    xy, half = analysis.atoms.xy, analysis.features.patch_size / 2
    inner = ((xy >= half - 0.5) & (xy <= size - 0.5 - half)).all(axis=1)
    dist, nearest = cKDTree(sim.truth.xy).query(xy[inner])
    label = np.where(sim.truth.label[nearest] == "Se2", "SSe", sim.truth.label[nearest])
    truth = np.where(dist < 0.5 * analysis.atoms.nn_distance_px, np.unique(label, return_inverse=True)[1], -1)
    return analysis.invariants[inner], truth


@pytest.mark.parametrize("size, seed", [(384, 0), (384, 1), (384, 2), (512, 0)])
def test_mos2_site_classes_with_merging(size, seed):
    # Mo and SSe columns are nearly equally bright (Z-contrast), and the one-period disk sees the tails of the
    # nearest neighbours, so a Mo with an SSe neighbour looks unlike one without: plain invariants give ARI
    # 0.47-0.76 (Mo split in two, or Mo and SSe in one token). The chemical context (the column's peak and
    # its dimmest neighbour's, beside the normalised invariants) separates the classes: ARI 0.94-0.96
    inv, truth = _pipeline_features("mos2", size, seed, "zernike_context")
    model, labels, _ = learn_tokens(inv, seed=0, descriptor="zernike_context")
    matched = truth >= 0
    truth, labels = truth[matched], labels[matched]  # classes Mo, S1, S2, SSe
    assert adjusted_rand_index(truth, labels) >= 0.8
    mo, s2, sse = (np.bincount(labels[truth == c], minlength=len(model.names)) for c in (0, 2, 3))
    assert len({mo.argmax(), s2.argmax(), sse.argmax()}) == 3
    assert mo.max() > 0.95 * mo.sum() and s2.max() > 0.95 * s2.sum() and sse.max() > 0.9 * sse.sum()


def test_context_model_round_trip_and_assignment(tmp_path):
    inv, truth = _pipeline_features("mos2", 384, 0, "zernike_context")
    model, labels, conf = learn_tokens(inv, seed=0, descriptor="zernike_context")
    assert model.descriptor == "zernike_context" and model.n_max == 10
    # block-diagonal projection: the two context columns have axes of their own
    assert np.all(model.projection[:-2, -2:] == 0) and np.all(model.projection[-2:, :-2] == 0)
    model.save(tmp_path / "m.npz")
    again = TokenModel.load(tmp_path / "m.npz")
    assert again.descriptor == "zernike_context"
    np.testing.assert_array_equal(assign_tokens(again, inv)[0], labels)
    new, truth2 = _pipeline_features("mos2", 384, 5, "zernike_context")
    labels2, _ = assign_tokens(again, new)
    assert adjusted_rand_index(truth2[truth2 >= 0], labels2[truth2 >= 0]) >= 0.8
    with pytest.raises(MotifgramError, match="zernike_context"):
        assign_tokens(again, new[:, :36])
    with pytest.raises(ValueError, match="descriptor"):
        learn_tokens(inv, descriptor="context")


def test_format_1_models_load_with_one_token_per_component(mos2, tmp_path):
    _, _, model, _, _ = mos2
    path = tmp_path / "old.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        fields = {key: data[key] for key in data.files if key != "component_token"}
    k = len(model.mixture.weights)
    fields.update(format=np.int64(1), names=np.array(token_names(k)), class_averages=np.zeros((k, 0, 0), np.float32),
                  abundances=np.full(k, 1 / k))
    np.savez(path, **fields)
    old = TokenModel.load(path)
    np.testing.assert_array_equal(old.component_token, np.arange(k))
    with pytest.raises(MotifgramError, match="component_token"):
        dataclasses.replace(model, component_token=np.zeros(k + 1, np.int64))
