"""Tests for motifgram.engine.patches: sub-pixel patch extraction and patch rotation."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from conftest import seed
from motifgram.engine.errors import ImageError
from motifgram.engine.patches import (
    MAX_PATCH_SIZE,
    MIN_PATCH_SIZE,
    disc_diameter_for,
    extract_patches,
    normalise_image,
    patch_size_for,
    peak_values,
    rotate_patches,
    sample_image,
)


def test_patch_size_for_is_odd_about_one_period_and_bounded():
    assert patch_size_for(12.0) == 13
    assert patch_size_for(12.4) == 13
    assert patch_size_for(18.2) == 19
    assert patch_size_for(7.6) == 9
    assert patch_size_for(0.5) == MIN_PATCH_SIZE
    assert patch_size_for(1e4) == MAX_PATCH_SIZE
    for period in np.linspace(1, 80, 50):
        assert patch_size_for(period) % 2 == 1
    with pytest.raises(ValueError, match="lattice_period_px"):
        patch_size_for(0.0)
    with pytest.raises(ValueError):
        patch_size_for(float("nan"))


def test_disc_diameter_follows_the_period_without_steps():
    """Periods either side of a rounding step of the patch side (10.9 and 11.1 px: patches of 11 and 13 px) get
    discs 0.2 px apart, and the patch side is the odd integer nearest the disc."""
    assert disc_diameter_for(10.9) == pytest.approx(11.9) and disc_diameter_for(11.1) == pytest.approx(12.1)
    assert (patch_size_for(10.9), patch_size_for(11.1)) == (11, 13)
    periods = np.linspace(1, 200, 2000)
    discs = np.array([disc_diameter_for(p) for p in periods])
    assert np.all(np.diff(discs) >= 0) and np.abs(np.diff(discs)).max() <= periods[1] - periods[0] + 1e-9
    assert discs.min() == MIN_PATCH_SIZE and discs.max() == MAX_PATCH_SIZE
    for period, disc in zip(periods, discs, strict=True):
        assert abs(patch_size_for(period) - disc) <= 1.0 or disc in (MIN_PATCH_SIZE, MAX_PATCH_SIZE)
    with pytest.raises(ValueError, match="lattice_period_px"):
        disc_diameter_for(-1.0)


def test_extract_matches_bilinear_interpolation_with_mirror_borders():
    rng = np.random.default_rng(seed(0))
    img = rng.random((40, 50)).astype(np.float32)
    xy = rng.random((300, 2)) * [49, 39]  # anywhere, including next to the border
    size = 9
    got = extract_patches(img, xy, patch_size=size)
    assert got.shape == (300, size, size) and got.dtype == np.float32
    ii, jj = np.mgrid[0:size, 0:size] - size // 2
    for k in range(0, 300, 7):
        rows = xy[k, 1] + ii
        cols = xy[k, 0] + jj
        ref = map_coordinates(img.astype(np.float64), [rows, cols], order=1, mode="mirror")
        np.testing.assert_allclose(got[k], ref, atol=1e-5)


def test_sample_image_at_arbitrary_offsets_matches_bilinear_interpolation():
    rng = np.random.default_rng(seed(3))
    img = rng.random((30, 40)).astype(np.float32)
    xy = rng.random((50, 2)) * [39, 29]
    offsets = rng.uniform(-6, 6, (17, 2))
    got = sample_image(img, xy, offsets=offsets)
    assert got.shape == (50, 17) and got.dtype == np.float32
    pos = xy[:, None, :] + offsets[None]
    ref = map_coordinates(img.astype(np.float64), [pos[..., 1], pos[..., 0]], order=1, mode="mirror")
    np.testing.assert_allclose(got, ref, atol=1e-5)
    with pytest.raises(ValueError, match="offsets"):
        sample_image(img, xy, offsets=np.zeros(3))


def test_integer_positions_give_exact_windows_and_centre_pixel():
    img = np.arange(400, dtype=np.float32).reshape(20, 20)
    got = extract_patches(img, [[10, 7], [3.0, 15.0]], patch_size=5)
    np.testing.assert_array_equal(got[0], img[5:10, 8:13])
    np.testing.assert_array_equal(got[1], img[13:18, 1:6])
    assert got[0, 2, 2] == img[7, 10]


def test_positions_outside_are_clamped_and_empty_input():
    img = np.ones((16, 16), np.float32)
    got = extract_patches(img, [[-5.0, 100.0]], patch_size=5)
    np.testing.assert_allclose(got, 1.0)
    assert extract_patches(img, np.zeros((0, 2)), patch_size=5).shape == (0, 5, 5)


def test_bad_inputs_raise_named_errors():
    img = np.zeros((16, 16), np.float32)
    with pytest.raises(ImageError):
        extract_patches(np.zeros(16), [[1, 1]], patch_size=5)
    with pytest.raises(ImageError, match="NaN"):
        extract_patches(np.full((16, 16), np.nan), [[1, 1]], patch_size=5)
    with pytest.raises(ValueError, match="odd"):
        extract_patches(img, [[1, 1]], patch_size=4)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        extract_patches(img, [1, 1], patch_size=5)
    with pytest.raises(ImageError, match="too small"):
        extract_patches(img, [[1, 1]], patch_size=31)


def test_rotate_patches_quarter_turns_are_exact_and_zero_is_identity():
    rng = np.random.default_rng(seed(2))
    p = rng.random((5, 11, 11)).astype(np.float32)
    np.testing.assert_allclose(rotate_patches(p, np.zeros(5)), p, atol=1e-6)
    for k in (1, 2, 3):
        got = rotate_patches(p, np.full(5, k * np.pi / 2))
        np.testing.assert_allclose(got, np.rot90(p, k, axes=(1, 2)), atol=1e-5)


def test_rotate_patches_moves_a_blob_counter_clockwise():
    yy, xx = np.mgrid[0:21, 0:21] - 10.0
    up = -yy  # y up, as displayed

    def blob(x0, y0):
        return np.exp(-((xx - x0) ** 2 + (up - y0) ** 2) / 8.0).astype(np.float32)

    theta = 0.7
    got = rotate_patches(blob(5.0, 1.0)[None], [theta])[0]
    want = blob(5 * np.cos(theta) - np.sin(theta), 5 * np.sin(theta) + np.cos(theta))
    np.testing.assert_allclose(got, want, atol=0.08)  # bilinear error at the peak
    assert np.unravel_index(np.argmax(got), got.shape) == np.unravel_index(np.argmax(want), want.shape)


@pytest.mark.parametrize("sigma", [0.8, 1.5, 3.0])
def test_peak_values_do_not_depend_on_the_sub_pixel_phase(sigma):
    rng = np.random.default_rng(seed(4))
    xy = np.array([[10.0, 10.0], [30.5, 10.5], [50.25, 9.6], [10.7, 30.3], [31.5, 29.0]])
    heights = rng.uniform(0.5, 2.0, len(xy))
    yy, xx = np.mgrid[0:40, 0:64]
    img = 0.1 + sum(h * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for (x, y), h in zip(xy, heights))
    np.testing.assert_allclose(peak_values(img, xy, background=0.1), heights, rtol=1e-3)


def test_normalise_image_puts_background_at_zero_and_median_peak_at_one():
    yy, xx = np.mgrid[0:64, 0:64]
    xy = np.array([[x + 0.5, y + 0.5] for x in range(8, 60, 12) for y in range(8, 60, 12)])  # all between pixels
    img = 3.0 + 5.0 * sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0) for x, y in xy)
    out = normalise_image(img, xy)
    assert out.dtype == np.float32
    assert abs(np.percentile(out, 5)) < 1e-6
    np.testing.assert_allclose(np.median(peak_values(out, xy)), 1.0, rtol=1e-3)
