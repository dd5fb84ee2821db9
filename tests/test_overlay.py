"""The overlay raster (engine/overlay.py), pixel by pixel: ring fills against an independent point-in-polygon
test, dots where the atoms are, the scale bar where and as long as it should be.

tests/test_report.py checks the overlay's size, that dots land on their columns within a colour tolerance and
that bad input is refused; here every pixel of the fast paths is checked exactly.
"""

import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath
from PIL import Image

from motifgram.engine.overlay import (
    OVERLAY_IMAGE_PX,
    polygon_labels,
    render_overlay,
    ring_symbol_colours,
    stamp_dots,
    token_colours,
)
from motifgram.engine.scalebar import scale_bar_length_nm
from conftest import seed, seeds

ALPHA = 0.45  # the ring fill's opacity over the micrograph


def jittered_hexagons(rng, shape, spacing):
    """Non-overlapping hexagons (vertices jittered, some made concave) covering ``shape``: (pos, atoms, offsets)."""
    h, w = shape
    pos, rings = [], []
    angles = np.pi / 3 * np.arange(6) + rng.uniform(0, np.pi / 3)
    for cy in np.arange(-spacing / 2, h + spacing, spacing):
        for cx in np.arange(-spacing / 2, w + spacing, spacing):
            radius = 0.45 * spacing * rng.uniform(0.5, 1.0, 6)
            radius[rng.integers(6)] *= rng.choice([1.0, 0.3])  # a dent: the polygon is concave
            ring = [len(pos) + k for k in range(6)]
            pos += list(zip(cx + radius * np.cos(angles), cy + radius * np.sin(angles), strict=True))
            rings.append(ring if rng.random() < 0.5 else ring[::-1])  # either orientation
    sizes = [len(r) for r in rings]
    return np.array(pos), np.concatenate(rings), np.concatenate([[0], np.cumsum(sizes)])


@pytest.mark.parametrize("seed_", seeds(0, 1, 2))
@pytest.mark.parametrize("shape", [(61, 97), (128, 128)])
def test_polygon_labels_match_a_point_in_polygon_test(seed_, shape):
    """Every pixel whose centre lies inside ring k gets fill[k], every other pixel 0 (rings cross the border)."""
    rng = np.random.default_rng(seed_)
    pos, atoms, offsets = jittered_hexagons(rng, shape, spacing=float(rng.uniform(6, 15)))
    fill = rng.integers(1, 255, len(offsets) - 1).astype(np.uint8)
    labels = polygon_labels(shape, pos, atoms, offsets, fill)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    centres = np.c_[cols.ravel() + 0.5, rows.ravel() + 0.5]
    expected = np.zeros(shape[0] * shape[1], np.uint8)
    for k in range(len(fill)):
        expected[PolygonPath(pos[atoms[offsets[k]:offsets[k + 1]]]).contains_points(centres)] = fill[k]
    assert np.array_equal(labels, expected.reshape(shape))
    assert labels.any()


def test_polygon_labels_of_nothing():
    empty = np.zeros(0, np.int64)
    assert not polygon_labels((5, 7), np.zeros((0, 2)), empty, np.array([0]), np.zeros(0, np.uint8)).any()


@pytest.mark.parametrize("diameter", [1.5, 3.0, 6.4])
def test_stamp_dots_fill_exactly_their_disks(diameter):
    rng = np.random.default_rng(seed(3))
    area = np.zeros((40, 50, 3), np.uint8)
    pos = np.c_[rng.uniform(-2, 52, 30), rng.uniform(-2, 42, 30)]  # some near or past the border
    pos = pos[np.argsort(pos[:, 0])]
    pos = pos[np.r_[True, np.diff(pos[:, 0]) > diameter + 2]]  # disjoint disks
    colours = rng.integers(1, 255, (len(pos), 3)).astype(np.uint8)
    stamp_dots(area, pos, colours, diameter)
    rows, cols = np.mgrid[:40, :50]
    expected = np.zeros_like(area)
    for (x, y), colour in zip(pos, colours, strict=True):
        inside = (cols + 0.5 - x) ** 2 + (rows + 0.5 - y) ** 2 <= (diameter / 2) ** 2
        inside |= (cols == np.floor(x)) & (rows == np.floor(y))  # at least the pixel under the centre
        expected[inside] = colour
    assert np.array_equal(area, expected)


def test_overlay_draws_atoms_rings_and_scale_bar_at_their_pixels(tmp_path):
    """A black 100 px micrograph drawn at 12x: each atom's dot at its pixel in its token's colour, a square ring
    filled with its symbol's colour at 45 % over black, nothing else in the image area but the scale bar, white
    and as long as a round length of 20 % of the width."""
    n = 100
    scale = OVERLAY_IMAGE_PX / n
    atoms = np.array([[20.0, 20.0], [40.0, 20.0], [40.0, 40.0], [20.0, 40.0], [70.0, 30.0], [80.0, 60.0]])
    tokens = np.array([0, 1, 0, 1, 2, 0])
    pixel_size = 0.05  # nm: a 5 nm wide image gets a 1 nm bar (20 % of the width)
    path = tmp_path / "o.png"
    render_overlay(np.zeros((n, n)), atoms, tokens, ("A", "B", "C"), [(0, 1, 2, 3)], ["R4"], path,
                   pixel_size_nm=pixel_size)
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert rgb.shape[:2] == (OVERLAY_IMAGE_PX, OVERLAY_IMAGE_PX + 380)
    image = rgb[:, :OVERLAY_IMAGE_PX]
    dots = np.round(255 * token_colours(3)[:, :3]).astype(int)
    for (x, y), t in zip(atoms, tokens, strict=True):
        assert (image[int((y + 0.5) * scale), int((x + 0.5) * scale)] == dots[t]).all()
    ring = np.round(ALPHA * 255 * np.asarray(ring_symbol_colours(["R4"])["R4"][:3])).astype(int)
    centre = int(30.5 * scale)
    assert (image[centre, centre] == ring).all()
    inside = (slice(int(21 * scale), int(39 * scale)), slice(int(21 * scale), int(39 * scale)))
    assert (image[inside] == ring).all(axis=-1).mean() > 0.97  # the rest: the four corner dots

    length_nm = scale_bar_length_nm(n * pixel_size)
    assert length_nm == pytest.approx(1.0)
    left, bottom = 0.03 * OVERLAY_IMAGE_PX, OVERLAY_IMAGE_PX - 0.03 * OVERLAY_IMAGE_PX
    length, thick = length_nm / pixel_size * scale, max(n / 150, 1.0) * scale
    bar_row = int(bottom - thick / 2)
    white = (image[bar_row] >= 250).all(axis=-1)  # white, as the 256-colour palette keeps it
    assert white[int(left) + 1 : int(left + length) - 1].all()
    assert not white[int(left + length) + 2 :].any() and not white[: int(left) - 1].any()
    assert (image[int(bottom) + 2 :] == 0).all()  # below the bar: the black micrograph
    label = image[int(bottom - thick - 30) : int(bottom - thick - 2), int(left) : int(left + length)]
    assert (label >= 250).all(axis=-1).any()  # the label's text sits above the bar

    # everywhere else in the image area: black
    known = np.zeros(image.shape[:2], bool)
    known[int(19 * scale) : int(42 * scale), int(19 * scale) : int(42 * scale)] = True  # ring and its dots
    for x, y in atoms[4:]:
        known[int(y * scale) - 4 : int((y + 1) * scale) + 4, int(x * scale) - 4 : int((x + 1) * scale) + 4] = True
    known[int(bottom - thick - 40) : int(bottom) + 1, : int(left + length) + 2] = True  # scale bar and label
    assert (image[~known] == 0).all()


def test_overlay_without_pixel_size_has_no_scale_bar(tmp_path):
    path = tmp_path / "o.png"
    render_overlay(np.zeros((50, 50)), np.zeros((0, 2)), np.zeros(0, int), ("A",), [], [], path)
    image = np.asarray(Image.open(path).convert("RGB"))[:, :OVERLAY_IMAGE_PX]
    assert (image == 0).all()
