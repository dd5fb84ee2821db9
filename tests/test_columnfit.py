"""The column fit of :mod:`motifgram.engine.chemistry` by tiles (issue 21's scale target): a micrograph wider than
``tile_px`` is fitted tile by tile, each with a halo, and its heights agree with the whole image's fit."""

import numpy as np
import pytest

from motifgram.engine.chemistry import EDGE_SIGMAS
from motifgram.engine.columnfit import BACKGROUND_SPACING, SIGMA_GRID, _fit, column_intensities
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


def design_matrix_fit(image, xy, window, sigma_px, background_px):
    """The column fit written out pixel by pixel: the dense design matrix of the model (unit Gaussians within 3
    sigma of their rounded centres where above 1e-4, on pixels of the window at least 2 sigma inside the image;
    every background node's bilinear tent) over the pixels any column reaches, and the least-squares solution
    with the fit's ridge (1e-9 of the largest diagonal of the normal equations, for nodes without pixels):
    heights and the root-mean-square residual."""
    h, w = image.shape
    r0, r1, c0, c1 = window
    r, b = int(np.ceil(3 * sigma_px)), int(np.ceil(2 * sigma_px))
    yy, xx = np.mgrid[r0:r1, c0:c1]
    yy, xx = yy.ravel(), xx.ravel()
    gauss = np.exp(-((xx[:, None] - xy[:, 0]) ** 2 + (yy[:, None] - xy[:, 1]) ** 2) / (2 * sigma_px**2))
    centre = np.rint(xy)
    near = (np.abs(xx[:, None] - centre[:, 0]) <= r) & (np.abs(yy[:, None] - centre[:, 1]) <= r) & (gauss > 1e-4)
    near &= ((xx >= b) & (xx < w - b) & (yy >= b) & (yy < h - b))[:, None]
    columns = np.where(near, gauss, 0.0)
    fitted = near.any(axis=1)
    nodes_x = np.arange(int(np.ceil((w - 1) / background_px)) + 1)
    nodes_y = np.arange(int(np.ceil((h - 1) / background_px)) + 1)
    tent_x = np.maximum(0, 1 - np.abs(xx[:, None] / background_px - nodes_x))
    tent_y = np.maximum(0, 1 - np.abs(yy[:, None] / background_px - nodes_y))
    tents = (tent_y[:, :, None] * tent_x[:, None, :]).reshape(len(xx), -1)
    design = np.hstack([columns, tents])[fitted]
    target = image[r0:r1, c0:c1].ravel()[fitted].astype(np.float64)
    normal = design.T @ design
    solution = np.linalg.solve(normal + 1e-9 * normal.diagonal().max() * np.eye(len(normal)), design.T @ target)
    return solution[: len(xy)], np.sqrt(np.mean((design @ solution - target) ** 2))


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_column_fit_is_the_least_squares_fit_of_its_model(seed):
    # the fit assembles its normal equations without the design matrix (issue 21): its heights and residual are
    # those of the design matrix's least-squares solution, on the whole image and on a window of it, with atoms
    # near and beyond the image edge and the narrowest and widest candidate widths
    image, xy, _ = lattice_image(seed)
    image, xy = image[:48, :60], xy[(xy[:, 0] < 63) & (xy[:, 1] < 51)]
    for window in ((0, 48, 0, 60), (7, 40, 13, 50)):
        for factor in (SIGMA_GRID[0], SIGMA_GRID[-1]):
            sigma = factor * SPACING
            heights, rms = _fit(image, xy, window, sigma, BACKGROUND_SPACING * SPACING)
            truth, truth_rms = design_matrix_fit(image, xy, window, sigma, BACKGROUND_SPACING * SPACING)
            # conjugate gradients stop at a relative residual of 1e-12: within 7e-9 of the largest height and 5e-13 of
            # the residual on seeds 0-5 and 1000-1002 (the design matrix's own fit before it, 3ea985c: 3e-9, 2e-13)
            assert np.max(np.abs(heights - truth)) < 1e-7 * np.max(np.abs(truth))
            assert abs(rms - truth_rms) < 1e-10 * truth_rms
