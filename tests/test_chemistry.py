"""The column fit of :mod:`motifgram.engine.chemistry` by tiles (issue 21's scale target): a micrograph wider than
``tile_px`` is fitted tile by tile, each with a halo, and its heights agree with the whole image's fit."""

import numpy as np
import pytest

from motifgram.engine.chemistry import EDGE_SIGMAS, column_intensities
from motifgram.engine.refine import render_columns
from conftest import seeds

SIZE = 240
SPACING = 6.0
SIGMA = 1.5


def lattice_image(seed):
    """A triangular lattice of Gaussian columns (a random rotation, jitter, 20 % brighter columns) on a smooth
    background with Poisson-like noise; the image, the positions (px) and the true integrated intensities."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, np.pi / 3)
    basis = SPACING * np.array([[np.cos(angle), np.sin(angle)], [np.cos(angle + np.pi / 3), np.sin(angle + np.pi / 3)]])
    ij = np.stack(np.meshgrid(np.arange(-2 * SIZE // 5, 2 * SIZE // 5), np.arange(-2 * SIZE // 5, 2 * SIZE // 5)), -1)
    xy = ij.reshape(-1, 2) @ basis + SIZE / 2 + rng.normal(0, 0.1, (ij.size // 2, 2))
    xy = xy[(xy.min(axis=1) > 2) & (xy.max(axis=1) < SIZE - 3)]
    height = np.where(rng.random(len(xy)) < 0.2, 1.6, 1.0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    background = 0.3 + 0.2 * np.sin(2 * np.pi * xx / 180.0) * np.cos(2 * np.pi * yy / 240.0)
    image = render_columns((SIZE, SIZE), xy, height, np.full(len(xy), SIGMA)) + background
    image = image + rng.normal(0, 0.02, image.shape)
    return image.astype(np.float32), xy, 2 * np.pi * SIGMA**2 * height


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_tiled_fit_agrees_with_the_whole_image(seed):
    image, xy, truth = lattice_image(seed)
    whole, _ = column_intensities(image, xy, nn_distance_px=SPACING, sigma_px=SIGMA, tile_px=SIZE)
    # 3 x 3 tiles of 80 px, each with a halo of 72 px: every window smaller than the image
    tiled, _ = column_intensities(image, xy, nn_distance_px=SPACING, sigma_px=SIGMA, tile_px=80)
    measured = np.minimum(xy, SIZE - 1 - xy).min(axis=1) >= EDGE_SIGMAS * SIGMA
    error = (tiled - truth)[measured] / truth[measured]
    # the tiles change a height by far less than the noise does (measured on seeds 0-5: at most 2.6e-4 of the
    # column's intensity, against a noise of 0.0091-0.0096 rms)
    assert np.max(np.abs(tiled - whole)[measured] / truth[measured]) < 1e-3
    assert np.sqrt(np.mean(error**2)) < 0.015
