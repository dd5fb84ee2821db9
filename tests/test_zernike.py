"""Tests for motifgram.engine.zernike against analytic properties of Zernike moments."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import seed
from motifgram.engine.patches import rotate_patches, sample_image
from motifgram.engine.zernike import (
    image_moments,
    moment_orientation,
    n_max_for,
    polar_offsets,
    polar_shape,
    rotation_invariants,
    zernike_basis,
    zernike_moments,
    zernike_orders,
)


def _smooth_patch(size, seed):
    """A patch of a few Gaussian blobs (smooth, so interpolation error under rotation is small)."""
    rng = np.random.default_rng(seed)
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size] - c
    out = np.zeros((size, size))
    for _ in range(4):
        x0, y0 = rng.uniform(-0.3, 0.3, 2) * size
        out += rng.uniform(0.5, 1.5) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * (0.08 * size) ** 2))
    return out.astype(np.float32)


def _blob_image(centre, blobs, theta, size=64, sigma=1.8):
    """Gaussian columns at ``blobs`` (x, y-up offsets, px) rotated counter-clockwise by ``theta`` about
    ``centre`` (x, y in image px), rendered exactly at the pixel centres."""
    cos, sin = np.cos(theta), np.sin(theta)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    img = np.zeros((size, size))
    for dx, dy, height in blobs:
        x = centre[0] + cos * dx - sin * dy
        y = centre[1] - (sin * dx + cos * dy)  # y up as displayed = minus rows
        img += height * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return img.astype(np.float32)


# A neighbourhood of graphene-like columns, some cut by the disk edge (radius 12.5 px).
BLOBS = [(0.0, 0.0, 1.0), (8.0, 0.0, 0.9), (-4.0, 6.93, 0.8), (-4.0, -6.93, 1.1), (12.0, 6.93, 0.7), (0.0, -13.0, 0.6)]


def test_orders_and_counts():
    n, m = zernike_orders(10)
    assert len(n) == 36
    assert np.all(m >= 0) and np.all(m <= n) and np.all((n - m) % 2 == 0)
    assert len(set(zip(n.tolist(), m.tolist()))) == 36
    assert n_max_for(36) == 10
    with pytest.raises(ValueError):
        n_max_for(35)
    assert polar_shape(25) == (13, 44) and polar_shape(7, 10) == (6, 44) and polar_shape(25, 20) == (13, 84)
    assert polar_shape(7, 4) == (4, 32)  # MIN_N_THETA
    assert polar_offsets(25).shape == (13 * 44, 2)
    np.testing.assert_allclose(np.hypot(*polar_offsets(25).T).max(), 12.5, rtol=0.01)


def _gram(basis):
    v = basis.values.reshape(len(basis.n), -1).astype(np.complex128)
    w = basis.weights.reshape(-1)
    return (v * w) @ v.conj().T * ((basis.n + 1) / np.pi)[:, None]


def test_polar_basis_is_orthonormal_under_its_quadrature():
    b = zernike_basis((6, 32), 10, sampling="polar")  # the smallest exact grid for n_max = 10
    assert b.values.shape == (36, 6, 32) and b.values.dtype == np.complex64 and b.sampling == "polar"
    assert abs(b.weights.sum() - np.pi) < 1e-12
    np.testing.assert_allclose(_gram(b), np.eye(36), atol=2e-5)
    assert zernike_basis((6, 32), 10, sampling="polar") is b  # cached


def test_square_basis_is_nearly_orthonormal_on_a_fine_grid():
    b = zernike_basis((101, 101), 10, sampling="square")
    np.testing.assert_allclose(_gram(b), np.eye(36), atol=0.03)
    yy, xx = np.mgrid[0:101, 0:101] - 50
    assert np.all(b.values[:, np.hypot(xx, yy) > 50.5] == 0) and np.all(b.weights[np.hypot(xx, yy) > 50.5] == 0)
    with pytest.raises(ValueError, match="sampling"):
        zernike_basis((11, 11), 4, sampling="hexagonal")


@pytest.mark.parametrize("shape", [(6, 32), (13, 64)])
def test_moments_of_a_zernike_polynomial_are_one_hot(shape):
    b = zernike_basis(shape, 10, sampling="polar")
    # moments are linear: A(V) = A(Re V) + i A(Im V); real samples only
    a = zernike_moments(b.values.real, sampling="polar") + 1j * zernike_moments(b.values.imag, sampling="polar")
    np.testing.assert_allclose(a, np.eye(36), atol=1e-4)
    const = zernike_moments(np.full((1,) + shape, 2.5, np.float32), sampling="polar")
    assert abs(const[0, 0] - 2.5) < 1e-5 and np.abs(const[0, 1:]).max() < 1e-5


def test_shifting_polar_samples_in_angle_multiplies_moments_by_the_phase():
    rng = np.random.default_rng(seed(0))
    samples = rng.normal(size=(3, 13, 64)).astype(np.float32)
    a = zernike_moments(samples, sampling="polar")
    _, m = zernike_orders(10)
    for k in (1, 5, 23):
        b = zernike_moments(np.roll(samples, k, axis=2), sampling="polar")
        theta = 2 * np.pi * k / 64
        np.testing.assert_allclose(b, a * np.exp(-1j * m * theta), atol=2e-4)


@pytest.mark.parametrize("theta", [0.3, np.pi / 6, 1.0, 2.2])
def test_image_moments_rotate_covariantly_at_any_angle(theta):
    centre = (31.37, 32.71)  # between pixels
    images = [_blob_image(centre, BLOBS, 0.0), _blob_image(centre, BLOBS, theta)]
    a = np.concatenate([image_moments(img, [centre], patch_size=25) for img in images])
    _, m = zernike_orders(10)
    inv = rotation_invariants(a)
    np.testing.assert_allclose(inv[1], inv[0], atol=1e-2 * inv[0].max())  # bilinear interpolation error
    assert ((inv[0] > 0.1 * inv[0].max()) & (m > 0)).sum() >= 5  # several oriented moments
    np.testing.assert_allclose(a[1], a[0] * np.exp(-1j * m * theta), atol=2e-2 * inv[0].max())
    # the pixelated disk of square patches is far less invariant for the same data
    from motifgram.engine.patches import extract_patches

    square = rotation_invariants(
        zernike_moments(np.concatenate([extract_patches(img, [centre], patch_size=25) for img in images]), sampling="square")
    )
    assert np.abs(square[1] - square[0]).max() > 3 * np.abs(inv[1] - inv[0]).max()


def test_image_moments_equal_the_moments_of_the_sampled_polar_grid():
    rng = np.random.default_rng(seed(1))
    img = rng.random((48, 40)).astype(np.float32)
    xy = rng.random((30, 2)) * [39, 47]
    direct = image_moments(img, xy, patch_size=15, n_max=8)
    samples = sample_image(img, xy, offsets=polar_offsets(15, 8)).reshape((30,) + polar_shape(15, 8))
    np.testing.assert_allclose(direct, zernike_moments(samples, n_max=8, sampling="polar"), atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(
    image=arrays(np.float32, (20, 20), elements=st.floats(-10, 10, width=32)),
    xy=arrays(np.float64, (3, 2), elements=st.floats(0, 19)),
    k=st.integers(1, 3),
)
def test_image_invariants_are_invariant_under_rot90(image, xy, k):
    # np.rot90 maps the polar grid (n_theta a multiple of 4) onto itself and commutes with bilinear
    # interpolation, so the invariants agree to float32 rounding
    turned = np.rot90(image, k).copy()
    xy_turned = xy.copy()
    for _ in range(k):  # counter-clockwise quarter turn of (x, y) in an n x n image
        xy_turned = np.stack([xy_turned[:, 1], 19 - xy_turned[:, 0]], axis=1)
    a = rotation_invariants(image_moments(image, xy, patch_size=9))
    b = rotation_invariants(image_moments(turned, xy_turned, patch_size=9))
    inner = ((xy > 4.5) & (xy < 14.5)).all(axis=1)  # mirrored borders are not rotated with the image
    np.testing.assert_allclose(b[inner], a[inner], atol=1e-4 * (1 + np.abs(image).max()))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_square_rot90_multiplies_moments_by_phase_exactly(k):
    p = _smooth_patch(25, seed=seed(k))
    a = zernike_moments(p[None], sampling="square")[0]
    b = zernike_moments(np.rot90(p, k)[None].copy(), sampling="square")[0]
    _, m = zernike_orders(10)
    np.testing.assert_allclose(b, a * np.exp(-1j * m * k * np.pi / 2), atol=1e-4)


def test_moment_orientation_recovers_the_rotation():
    p = _smooth_patch(31, seed=seed(3))
    angles = np.array([0.0, 0.3, -0.5, 1.0])
    rotated = rotate_patches(np.repeat(p[None], 4, axis=0), angles)
    mom = zernike_moments(rotated, sampling="square")
    est = moment_orientation(mom, nm=(1, 1))
    np.testing.assert_allclose(np.angle(np.exp(1j * (est - est[0] - angles))), 0.0, atol=0.03)
    auto = moment_orientation(mom)
    assert auto.shape == (4,) and auto.dtype == np.float32
    with pytest.raises(ValueError):
        moment_orientation(mom, nm=(2, 0))


def test_normalized_invariants_have_unit_norm():
    a = zernike_moments(np.stack([_smooth_patch(25, seed(1)), np.zeros((25, 25), np.float32)]), n_max=6, sampling="square")
    inv = rotation_invariants(a, normalize=True)
    assert inv.dtype == np.float32
    assert abs(np.linalg.norm(inv[0]) - 1) < 1e-5 and np.all(inv[1] == 0)


def test_moment_shapes_for_any_row_count_and_bad_shapes_rejected():
    rng = np.random.default_rng(seed(0))
    img = rng.random((80, 80)).astype(np.float32)
    first = image_moments(img, rng.random((10, 2)) * 79, patch_size=17)
    second = image_moments(img, rng.random((5000, 2)) * 79, patch_size=17)
    for out, n in ((first, 10), (second, 5000)):
        assert out.shape == (n, 36) and out.dtype == np.complex64 and np.isfinite(out).all()
    assert image_moments(img, np.zeros((0, 2)), patch_size=17).shape == (0, 36)
    assert zernike_moments(np.zeros((0, 17, 17)), sampling="square").shape == (0, 36)
    with pytest.raises(ValueError):
        zernike_moments(np.zeros((3, 17, 16)), sampling="square")
    with pytest.raises(ValueError):
        zernike_moments(np.zeros((3, 17)), sampling="polar")
