"""Tests for motifgram.engine.tokens on synthetic honeycomb micrographs with known site classes."""

import dataclasses
import functools

import numpy as np
import pytest
from scipy.spatial import cKDTree

from motifgram.engine.detect import detect_atoms
from motifgram.engine.errors import MotifgramError
from motifgram.engine.mixture import Mixture, adjusted_rand_index, select_n_components
from motifgram.engine.patches import extract_patches, normalise_image, patch_size_for, rotate_patches
from motifgram.engine.simulate import simulate
from motifgram.engine.features import compute_features
from motifgram.engine.tokens import (
    TokenModel,
    assign_tokens,
    bhattacharyya_coefficient,
    class_averages,
    is_close_call,
    learn_tokens,
    merge_components,
    merge_decision,
    merging_summary,
    merge_sequence,
    token_names,
)
from motifgram.engine.zernike import zernike_moments
from conftest import seed, seeds

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


def learn_mos2(image_seed, *, fit_seed=0):
    """Tokens of a honeycomb with MoS2's site classes (3 % defect sites): features, truth, model, labels, confidence."""
    img, xy, truth = honeycomb(MOS2, defect_fraction=0.03, seed=image_seed)
    feats = compute_features(img, xy, patch_size=PATCH)
    model, labels, conf = learn_tokens(
        feats.invariants, patches=feats.patches, moments=feats.moments, lattice_period_px=BOND, seed=fit_seed
    )
    return feats, truth, model, labels, conf


@pytest.fixture(scope="module")
def mos2():
    return learn_mos2(seed(1))


def measure_mos2_tokens(seed):
    """The site classes of the MoS2-like honeycomb as tokens (image and mixture seeds both ``seed``).

    ari: against the four classes; shared: Mo sites in S2's token plus S2 sites in Mo's; plain_mo_share: Mo sites
    without a defect (S1 or SSe) neighbour in Mo's token; near_defect_apart: Mo sites with a defect neighbour in
    neither Mo's nor S2's token; other_tokens_pure: the members of the other tokens that are defect sites or Mo
    sites next to one; contrast: the class averages' centre pixel, Mo's token minus S2's; generalises: ARI of the
    model on a new micrograph (seed + 10) of the same material.
    """
    feats, truth, model, labels, conf = learn_mos2(seed, fit_seed=seed)
    mo, s2 = truth == 0, truth == 1
    mo_token, s2_token = np.bincount(labels[mo]).argmax(), np.bincount(labels[s2]).argmax()
    xy = honeycomb(MOS2, defect_fraction=0.03, seed=seed)[1]
    near_defect = np.array([np.any(truth[n] >= 2) for n in cKDTree(xy).query_ball_point(xy, 1.2 * BOND)])
    other = (labels != mo_token) & (labels != s2_token)
    c = PATCH // 2
    img, xy2, truth2 = honeycomb(MOS2, defect_fraction=0.03, seed=seed + 10)
    labels2, _ = assign_tokens(model, compute_features(img, xy2, patch_size=PATCH).invariants)
    return {
        "ari": adjusted_rand_index(truth, labels), "n_tokens": len(model.names),
        "distinct": float(mo_token != s2_token),
        "shared": int(np.sum(labels[mo] == s2_token) + np.sum(labels[s2] == mo_token)),
        "s2_share": np.mean(labels[s2] == s2_token),
        "plain_mo_share": np.mean(labels[mo & ~near_defect] == mo_token),
        "near_defect_apart": np.mean(other[mo & near_defect]),
        "other_tokens_pure": np.mean(((mo & near_defect) | (truth >= 2))[other]) if other.any() else 1.0,
        "median_confidence": float(np.median(conf)),
        "contrast": float(model.class_averages[mo_token, c, c] - model.class_averages[s2_token, c, c]),
        "generalises": adjusted_rand_index(truth2, labels2),
    }


def test_compute_features_shapes_and_dtypes():
    img, xy, _ = honeycomb(MOS2, seed=seed(0))
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


def measure_orientation_shift(seed):
    """The largest shift of an invariant's mean between micrographs of the lattice turned by 0, 0.3 and 0.52 rad,
    in units of its spread within a micrograph (0.3 rad is the worst case of square pixel patches: about 4)."""
    inv = {}
    for rotation in (0.0, 0.3, 0.52):
        values, interior = _graphene_features(rotation, seed, 320)
        inv[rotation] = values[interior]
    worst = 0.0
    for a, b in ((0.0, 0.3), (0.0, 0.52), (0.3, 0.52)):
        spread = np.sqrt(0.5 * (inv[a].var(axis=0) + inv[b].var(axis=0)))
        worst = max(worst, float((np.abs(inv[a].mean(axis=0) - inv[b].mean(axis=0)) / spread).max()))
    return {"shift": worst}


@pytest.mark.parametrize("seed", seeds(1, 2))
def test_invariants_do_not_depend_on_the_lattice_orientation(seed):
    # Every invariant's mean moves by less than half its spread within a micrograph when the lattice turns
    # (seeds 0-9: at most 0.12-0.28 of it)
    assert measure_orientation_shift(seed)["shift"] < 0.5


def measure_two_orientations(seed):
    """Tokens of two pristine graphene micrographs (lattice at 0 and 0.3 rad) learned together: the largest share
    one micrograph has of a token holding >= 5 % of the atoms, and the smallest share of each micrograph's
    interior atoms in the first token."""
    parts = [_graphene_features(rotation, seed, 256) for rotation in (0.0, 0.3)]
    inv = np.concatenate([p[0] for p in parts])
    interior = np.concatenate([p[1] for p in parts])
    owner = np.repeat([0, 1], [len(p[0]) for p in parts])
    model, labels, _ = learn_tokens(inv, k="auto", seed=seed)
    one_sided = 0.0
    for token in range(len(model.names)):
        members = owner[labels == token]
        if len(members) >= 0.05 * len(labels):
            one_sided = max(one_sided, np.mean(members == 0), np.mean(members == 1))
    interior_in_first = min(np.mean(labels[interior & (owner == mic)] == 0) for mic in (0, 1))
    pooled, _, _ = learn_tokens(inv[interior], seed=seed)
    return {"one_sided": one_sided, "interior_in_first": interior_in_first, "n_tokens": len(model.names),
            "interior_tokens": len(pooled.names)}


@pytest.mark.parametrize("seed", seeds(2, 3))
def test_tokens_of_two_orientations_are_not_split_by_micrograph(seed):
    m = measure_two_orientations(seed)
    # no token belongs to one micrograph; away from the (mirrored, orientation-dependent) border every atom of both
    # micrographs is one token (seeds 0-9: 2 tokens, the second at the border; the larger micrograph's share of a
    # token 0.50-0.67; interior atoms in the first token 0.997-1)
    assert m["one_sided"] <= 0.9
    assert m["interior_in_first"] >= 0.98


@pytest.mark.parametrize("seed", seeds(1, 2, 3))
def test_mos2_site_classes_are_separated(seed):
    m = measure_mos2_tokens(seed)
    # What the tokens are (seeds 0-9): Mo, S2, and the Mo sites next to a defect: 17 % of Mo (6 % of the S sites
    # are defects and a Mo has three S neighbours), every one of them outside Mo's and S2's tokens, 0-0.7 % of the
    # other Mo sites with them; the defect sites join S2's token (or, seeds 4 and 7, the neighbourhood token).
    # Mo and S2 never share a token (0 sites on every seed).
    assert m["distinct"] and m["shared"] == 0 and m["s2_share"] > 0.98
    # (Mo without a defect neighbour in Mo's token 0.9935-1; Mo with one apart: 1; other tokens' members that are
    # defects or Mo next to one: 0.965-1)
    assert m["plain_mo_share"] > 0.97 and m["near_defect_apart"] > 0.95 and m["other_tokens_pure"] > 0.9
    # ARI against the four site classes: 0.779-0.864. Before 32bceb8 this asked for 0.80 (on seed 1 only), which
    # 5 of seeds 0-9 miss: since merging, the classes the tokens find are the three above, not the four.
    assert m["ari"] >= 0.75
    assert m["median_confidence"] > 0.99  # 0.9999-1
    assert m["contrast"] > 0.25  # 0.360-0.382
    assert m["generalises"] >= 0.75  # a new micrograph (seed + 10): 0.794-0.840


def test_model_fields(mos2):
    feats, truth, model, labels, conf = mos2
    k = len(model.names)
    assert model.names == token_names(k)
    assert np.all(np.diff(model.abundances) <= 0)
    assert np.all((conf > 0) & (conf <= 1 + 1e-9))
    assert model.patch_size == PATCH and model.n_max == 10 and model.lattice_period_px == BOND
    assert model.class_averages.shape == (k, PATCH, PATCH) and model.class_averages.dtype == np.float32


def test_assign_tokens_reproduces_training_labels(mos2):
    feats, truth, model, labels, conf = mos2
    again, again_conf = assign_tokens(model, feats.invariants)
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_allclose(again_conf, conf, atol=1e-6)
    with pytest.raises(MotifgramError, match="n_max"):
        assign_tokens(model, feats.invariants[:, :20])


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


def measure_one_species(seed):
    """A honeycomb of one species (graphene): the token count and the first token's share."""
    img, xy, _ = honeycomb((1.0, 1.0), seed=seed)
    feats = compute_features(img, xy, patch_size=PATCH)
    model, labels, _ = learn_tokens(feats.invariants, seed=seed)
    return {"n_tokens": len(model.names), "first_share": model.abundances[0]}, model


@pytest.mark.parametrize("seed", seeds(2, 3))
def test_one_species_is_one_token(seed):
    m, model = measure_one_species(seed)
    # seeds 0-9: one token (this test accepted 1 or 2 before)
    assert m["n_tokens"] == 1
    assert model.class_averages.shape == (len(model.names), 0, 0) and model.patch_size == 0


def test_fixed_k_custom_names_and_validation():
    img, xy, truth = honeycomb((1.0, 0.5), seed=seed(3))
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
    angles = np.random.default_rng(seed(0)).uniform(-np.pi, np.pi, 40)
    copies = rotate_patches(np.repeat(template[None].astype(np.float32), 40, axis=0), angles)
    mom = zernike_moments(copies, sampling="square")
    avg = class_averages(copies, mom, np.zeros(40, int), 2)
    assert avg.shape == (2, 21, 21) and np.all(avg[1] == 0)
    naive = copies.mean(axis=0)
    disk = np.hypot(xx, yy) <= 9
    # aligned average keeps the template's contrast; the naive average smears it into a ring
    assert avg[0][disk].std() > 1.5 * naive[disk].std()


def test_whitening_is_the_principal_axes_with_a_fixed_sign():
    """The projection whitens the standardised features along their principal axes (as an SVD finds them),
    each axis signed so that its largest entry is positive; a sign flip of the input columns does not move it."""
    from motifgram.engine.tokens import _whitening

    rng = np.random.default_rng(seed(2))
    x = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 5.0
    mean, scale, projection = _whitening(x, 4)
    z = (x - mean) / scale
    w = z @ projection
    np.testing.assert_allclose(w.T @ w / len(w), np.eye(4), atol=1e-10)
    _, sing, vt = np.linalg.svd(z, full_matrices=False)
    np.testing.assert_allclose(np.abs(projection * (sing[:4] / np.sqrt(len(z)))), np.abs(vt[:4].T), atol=1e-10)
    top = np.argmax(np.abs(projection), axis=0)
    assert np.all(projection[top, np.arange(4)] > 0)
    np.testing.assert_array_equal(_whitening(x, 4)[2], projection)  # deterministic
    assert _whitening(np.repeat(x[:, :1], 3, axis=1), 4)[2].shape == (3, 1)  # rank 1: one axis


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


def unimodal_and_bimodal(seed):
    """A half ring, a heavy-tailed (Student t, 3 dof) cloud and two unit Gaussians 6 sigma apart, with their
    number of classes."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, 1500)
    banana = np.c_[10 * np.cos(t), 10 * np.sin(t)] + rng.normal(0, 1.0, (1500, 2))
    heavy = rng.standard_t(3, (1500, 3))
    two = np.concatenate([rng.normal(0, 1, (600, 3)), rng.normal(0, 1, (600, 3)) + [6, 0, 0]])
    return {"banana": (banana, 1), "heavy": (heavy, 1), "two": (two, 2)}


def measure_merging(seed):
    """Per data set of :func:`unimodal_and_bimodal`: BIC's component count and the groups after merging."""
    out = {}
    for name, (x, _) in unimodal_and_bimodal(seed).items():
        mix = select_n_components(x, k_range=(1, 6), seed=seed, min_weight=0.01)
        out[f"{name}_components"] = len(mix.weights)
        out[f"{name}_groups"] = int(merge_components(mix).max() + 1)
    return out


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_merging_joins_split_unimodal_clusters_and_keeps_separate_ones(seed):
    # seeds 0-9: BIC splits the heavy-tailed cloud into 4 components and the half ring into 4-5, and keeps the two
    # Gaussians as 2; merging makes the cloud one group on every seed and the two Gaussians two, and joins the half
    # ring's components into fewer groups (1 on 7 seeds, 2-3 on seeds 2, 6, 7: see the xfail below)
    for name, (x, want) in unimodal_and_bimodal(seed).items():
        mix = select_n_components(x, k_range=(1, 6), seed=seed, min_weight=0.01)
        groups = merge_components(mix)
        assert groups.dtype == np.int64 and groups.shape == mix.weights.shape
        if name == "banana":
            assert len(mix.weights) >= 3 and groups.max() + 1 < len(mix.weights), (len(mix.weights), groups)
            continue
        assert groups.max() + 1 == want, (name, len(mix.weights), groups)
        if want == 1:
            assert len(mix.weights) >= 3  # BIC alone splits it
            np.testing.assert_array_equal(merge_components(mix, threshold=1.0), np.arange(len(mix.weights)))
    np.testing.assert_array_equal(merge_components(mix, threshold=0.0), [0, 0])


@pytest.mark.xfail(reason="a strongly curved unimodal cluster (a half ring, radius 10 sigma) is split by BIC into 4-5 "
                          "components along the arc, and neighbours on the arc can overlap less than the merge "
                          "threshold: 2-3 groups on seeds 2, 6 and 7 of 0-9 (pairwise-overlap merging)", strict=True)
def test_merging_makes_a_curved_cluster_one_group_on_every_seed():
    for s in seeds(*range(10)):
        x, _ = unimodal_and_bimodal(s)["banana"]
        assert merge_components(select_n_components(x, k_range=(1, 6), seed=s, min_weight=0.01)).max() == 0, s


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


def test_merging_summary_reports_what_decided_the_count():
    """At the threshold its close call; at a count chosen by description length the merges that count made."""
    mixture = _two_gaussians(0.263, third=6.0)  # merge heights 0.394, 0.263
    by_threshold = merging_summary(mixture)
    assert by_threshold["decided_by"] == "overlap threshold" and by_threshold["close_call"]
    assert (by_threshold["last_merged"], by_threshold["first_kept_apart"]) == (pytest.approx(0.263, abs=1e-3), None)
    assert by_threshold["tokens_at_threshold"] == 1
    by_length = merging_summary(mixture, n_tokens=2)
    assert by_length["decided_by"] == "description length" and not by_length["close_call"]
    assert by_length["last_merged"] == pytest.approx(0.394, abs=1e-3)
    assert by_length["first_kept_apart"] == pytest.approx(0.263, abs=1e-3)
    assert by_length["tokens_at_threshold"] == 1
    assert merging_summary(mixture, n_tokens=3)["last_merged"] is None


def _simulated_features(kind, size, patch_sizes, *, seed, **options):
    """Per patch size: invariants of the detected atoms whose feature disk lies inside the image and that
    match a true atom within half a bond, with the true site class (Se2 counted as SSe)."""
    sim = simulate(kind, size=size, seed=seed, **options)
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


def measure_pristine_graphene(seed):
    """Pristine simulated graphene at patch sizes 9, 13 and 25 px: token and BIC component counts per size."""
    features = _simulated_features("graphene", 512, (9, 13, 25), seed=seed, stone_wales_density=0,
                                   vacancy_density=0)
    out, models = {}, {}
    for size_px, (inv, _) in features.items():
        models[size_px] = learn_tokens(inv, seed=seed)
        out[f"tokens_{size_px}"] = len(models[size_px][0].names)
        out[f"components_{size_px}"] = len(models[size_px][0].mixture.weights)
    return out, models


@pytest.mark.parametrize("seed", seeds(0))
def test_pristine_graphene_is_one_token_at_every_patch_size(seed):
    # seeds 0-9: one token at 9, 13 and 25 px; BIC chose 2 components at 9 and 25 px on every seed (1-2 at 13 px)
    _, models = measure_pristine_graphene(seed)
    for size_px, (model, labels, conf) in models.items():
        assert model.names == ("A",), (size_px, model.component_token)
        assert np.all(labels == 0) and np.allclose(conf, 1.0)
        np.testing.assert_allclose(model.token_means(), [model.mixture.weights @ model.mixture.means], atol=1e-12)
    # BIC chose several components somewhere; merging made them one token
    assert any(len(model.mixture.weights) > 1 for model, _, _ in models.values())


@pytest.mark.parametrize("seed", seeds(2, 3))
def test_graphene_of_two_orientations_pooled_is_one_token(seed):
    parts = [_graphene_features(rotation, seed, 256) for rotation in (0.0, 0.3)]
    inv = np.concatenate([values[interior] for values, interior in parts])
    model, labels, _ = learn_tokens(inv, seed=seed)
    # seeds 0-9: one token (tokens.two_orientations learns each pair with k="auto" too: 2 tokens there, as the
    # border atoms of the unpooled interior are kept)
    assert model.names == ("A",)


def measure_perovskite(seed):
    """Perovskite (A, B and O columns) tokens with and without merging: counts and ARI against the classes."""
    inv, truth = _simulated_features("perovskite", 384, (17,), seed=seed)[17]
    model, labels, conf = learn_tokens(inv, seed=seed)
    unmerged, labels_unmerged, _ = learn_tokens(inv, seed=seed, merge_threshold=None)
    return {"tokens": len(model.names), "components": len(model.mixture.weights),
            "ari": adjusted_rand_index(truth, labels), "unmerged_tokens": len(unmerged.names),
            "unmerged_ari": adjusted_rand_index(truth, labels_unmerged)}, (inv, model, labels, conf)


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_perovskite_sites_are_three_tokens(seed):
    m, (inv, model, labels, conf) = measure_perovskite(seed)
    # seeds 0-9: 3 tokens, ARI 1.000; BIC chose 4 components on 9 seeds (the O columns in two, merged; ARI without
    # merging 0.73-0.80) and 3 on seed 5
    assert m["tokens"] == 3
    assert m["ari"] >= 0.95
    if m["components"] > 3:  # BIC split a class (the O columns): merging is what gives the three species
        assert m["unmerged_tokens"] == m["components"] and m["unmerged_ari"] < m["ari"]
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


@functools.cache
def measure_mos2_context(seed, size=384):
    """Simulated MoS2 through the pipeline's features, tokens of the ``zernike_context`` descriptor: ARI against
    the classes Mo, S1, S2, SSe, whether Mo, S2 and SSe have distinct majority tokens, each one's share of its
    class, and the purity of the tokens (atoms whose token's most common class is their own)."""
    inv, truth = _pipeline_features("mos2", size, seed, "zernike_context")
    model, labels, _ = learn_tokens(inv, seed=seed, descriptor="zernike_context")
    matched = truth >= 0
    truth, labels = truth[matched], labels[matched]
    mo, s2, sse = (np.bincount(labels[truth == c], minlength=len(model.names)) for c in (0, 2, 3))
    majority = np.array([np.bincount(truth[labels == t], minlength=4).argmax() if np.any(labels == t) else -1
                         for t in range(len(model.names))])
    return {"ari": adjusted_rand_index(truth, labels), "distinct": float(len({mo.argmax(), s2.argmax(),
                                                                             sse.argmax()}) == 3),
            "mo_share": mo.max() / mo.sum(), "s2_share": s2.max() / s2.sum(), "sse_share": sse.max() / sse.sum(),
            "purity": np.mean(majority[labels] == truth)}


@pytest.mark.parametrize("size, seed", [(384, s) for s in seeds(0, 1, 2)] + [(512, seed(0))])
def test_mos2_site_classes_with_merging(size, seed):
    # Mo and SSe columns are nearly equally bright (Z-contrast), and the one-period disk sees the tails of the
    # nearest neighbours, so a Mo with an SSe neighbour looks unlike one without: plain invariants give ARI
    # 0.47-0.76 (Mo split in two, or Mo and SSe in one token). The chemical context (the column's peak and
    # its dimmest neighbour's, beside the normalised invariants) keeps the classes apart: no token mixes them.
    m = measure_mos2_context(seed, size)
    # seeds 0-9 at 384 px: distinct majority tokens for Mo, S2 and SSe; purity 0.967-0.976 (S1 columns, a single S,
    # share S2's token); S2 0.998-1 and SSe 0.994-1 in their token; ARI 0.68-0.96 (0.68-0.69 where Mo splits in two:
    # the xfail below)
    assert m["distinct"] and m["purity"] > 0.94
    assert m["s2_share"] > 0.98 and m["sse_share"] > 0.95
    assert m["ari"] >= 0.6


@pytest.mark.xfail(reason="zernike_context tokens split Mo into two tokens on about half the seeds (4, 5, 6, 7 and 9 "
                          "of 0-9: BIC keeps a 4th component, Mo 51-54 % in its main token, ARI 0.68 instead of "
                          "0.95); the test used to run seeds 0-2 only", strict=True)
def test_mos2_context_keeps_mo_one_token_on_every_seed():
    for s in seeds(0, 1, 2, 3, 4, 5):
        m = measure_mos2_context(s)
        assert m["mo_share"] > 0.95 and m["ari"] >= 0.8, s


def measure_context_generalises(seed):
    """A ``zernike_context`` model learned on one simulated MoS2 micrograph, applied to another (seed + 5): ARI on
    the training micrograph and on the new one."""
    inv, truth = _pipeline_features("mos2", 384, seed, "zernike_context")
    model, labels, _ = learn_tokens(inv, seed=seed, descriptor="zernike_context")
    new, truth2 = _pipeline_features("mos2", 384, seed + 5, "zernike_context")
    labels2, _ = assign_tokens(model, new)
    trained = adjusted_rand_index(truth[truth >= 0], labels[truth >= 0])
    applied = adjusted_rand_index(truth2[truth2 >= 0], labels2[truth2 >= 0])
    return {"trained": trained, "applied": applied, "loss": trained - applied}


def test_context_model_round_trip_and_assignment(tmp_path):
    inv, truth = _pipeline_features("mos2", 384, seed(0), "zernike_context")
    model, labels, conf = learn_tokens(inv, seed=seed(0), descriptor="zernike_context")
    assert model.descriptor == "zernike_context" and model.n_max == 10
    # block-diagonal projection: the two context columns have axes of their own
    assert np.all(model.projection[:-2, -2:] == 0) and np.all(model.projection[-2:, :-2] == 0)
    model.save(tmp_path / "m.npz")
    again = TokenModel.load(tmp_path / "m.npz")
    assert again.descriptor == "zernike_context"
    np.testing.assert_array_equal(assign_tokens(again, inv)[0], labels)
    new, truth2 = _pipeline_features("mos2", 384, seed(5), "zernike_context")
    labels2, _ = assign_tokens(again, new)
    # the saved model tokenises a new micrograph as well as its own (seeds 0-9: ARI on the new one minus ARI on its
    # own micrograph -0.011-+0.013; the test asked for ARI >= 0.8 on the new one, which holds where Mo is one token)
    trained = adjusted_rand_index(truth[truth >= 0], labels[truth >= 0])
    assert adjusted_rand_index(truth2[truth2 >= 0], labels2[truth2 >= 0]) > trained - 0.03
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
