"""Tests for motifgram.engine.context: the chemical context of atom columns."""

import numpy as np
import pytest

from motifgram.engine.context import CONTEXT_COLUMNS, chemical_context, context_features
from motifgram.engine.zernike import image_moments, rotation_invariants
from conftest import seed as offset_seed

SIZE, BOND = 96, 8.0


def binary_honeycomb(*, rotation=0.0, swap=(), seed=0):
    """Gaussian columns on a honeycomb (sublattice A amplitude 1, B 0.4; B sites listed in ``swap`` 0.9),
    rotated by ``rotation`` about the image centre. Returns the image, positions and sublattice (0 = A)."""
    a = BOND * np.sqrt(3)
    i, j = np.meshgrid(np.arange(-8, 9), np.arange(-8, 9))
    cells = i.reshape(-1, 1) * np.array([a, 0.0]) + j.reshape(-1, 1) * np.array([a / 2, a * np.sqrt(3) / 2])
    xy = np.concatenate([cells, cells + [a / 2, BOND / 2]])
    site = np.repeat([0, 1], len(cells))
    c, s = np.cos(rotation), np.sin(rotation)
    xy = xy @ np.array([[c, s], [-s, c]]) + SIZE / 2
    keep = ((xy > 4) & (xy < SIZE - 5)).all(axis=1)
    xy, site = xy[keep], site[keep]
    amp = np.where(site == 0, 1.0, 0.4)
    amp[list(swap)] = 0.9
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.zeros((SIZE, SIZE))
    for (x, y), h in zip(xy, amp, strict=True):
        img += h * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    img += np.random.default_rng(offset_seed(seed)).normal(0, 0.01, img.shape)
    return img.astype(np.float32), xy, site


def test_chemical_context_peak_and_dimmest_neighbour():
    img, xy, site = binary_honeycomb()
    ctx = chemical_context(img, xy, nn_distance_px=BOND)
    assert ctx.shape == (len(xy), 2) and ctx.dtype == np.float64
    inner = ((xy > 12) & (xy < SIZE - 12)).all(axis=1)
    np.testing.assert_allclose(ctx[inner & (site == 0), 0], 1.0, atol=0.06)
    np.testing.assert_allclose(ctx[inner & (site == 0), 1], 0.4, atol=0.06)  # A sees dim B neighbours
    np.testing.assert_allclose(ctx[inner & (site == 1), 1], 1.0, atol=0.06)  # B sees bright A neighbours


def test_substituted_b_site_differs_from_a_only_by_context():
    img, xy, site = binary_honeycomb()
    centre = np.argmin(np.linalg.norm(xy - SIZE / 2, axis=1) + 1e3 * (site == 0))
    sub, _, _ = binary_honeycomb(swap=[centre])
    ctx = chemical_context(sub, xy, nn_distance_px=BOND)
    near_a = np.flatnonzero((site == 0) & (np.linalg.norm(xy - xy[centre], axis=1) < 1.2 * BOND))
    assert len(near_a) == 3
    assert ctx[centre, 0] == pytest.approx(0.9, abs=0.06) and ctx[centre, 1] > 0.9  # bright neighbours
    np.testing.assert_allclose(ctx[near_a, 1], 0.4, atol=0.06)  # its A neighbours still have a dim one


def test_context_is_rotation_invariant_and_deterministic():
    img, xy, site = binary_honeycomb()
    inner = ((xy > 16) & (xy < SIZE - 16)).all(axis=1)
    base = chemical_context(img, xy, nn_distance_px=BOND)
    np.testing.assert_array_equal(base, chemical_context(img, xy, nn_distance_px=BOND))
    # np.rot90 (counter-clockwise): (x, y) -> (y, W - 1 - x)
    rot = np.rot90(img)
    xy_rot = np.column_stack([xy[:, 1], SIZE - 1 - xy[:, 0]])
    np.testing.assert_allclose(chemical_context(rot, xy_rot, nn_distance_px=BOND), base, atol=1e-5)
    # an arbitrary lattice rotation: the classes keep their context within the noise
    img_r, xy_r, site_r = binary_honeycomb(rotation=0.37)
    inner_r = ((xy_r > 16) & (xy_r < SIZE - 16)).all(axis=1)
    turned = chemical_context(img_r, xy_r, nn_distance_px=BOND)
    for cls in (0, 1):
        np.testing.assert_allclose(turned[inner_r & (site_r == cls)].mean(0), base[inner & (site == cls)].mean(0),
                                   atol=0.03)


def test_isolated_atoms_and_validation():
    img = np.zeros((32, 32), np.float32)
    img[16, 16] = 1.0
    np.testing.assert_array_equal(chemical_context(img, [(16, 16)], nn_distance_px=8.0)[:, 1], [0.0])
    assert chemical_context(img, np.zeros((0, 2)), nn_distance_px=8.0).shape == (0, 2)
    with pytest.raises(ValueError, match="nn_distance_px"):
        chemical_context(img, [(16, 16)], nn_distance_px=0.0)


def test_context_features_layout():
    img, xy, _ = binary_honeycomb()
    moments = image_moments(img, xy.astype(np.float32), patch_size=15, n_max=6)
    feats = context_features(moments, img, xy, nn_distance_px=BOND)
    m = moments.shape[1]
    assert feats.shape == (len(xy), m + CONTEXT_COLUMNS) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[:, :m], rotation_invariants(moments, normalize=True), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(feats[:, :m], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(feats[:, m:], chemical_context(img, xy, nn_distance_px=BOND), rtol=1e-6)
    with pytest.raises(ValueError, match="differ in length"):
        context_features(moments[:-1], img, xy, nn_distance_px=BOND)
