"""Tests for motifgram.engine.moire: twist and moiré period of simulated twisted bilayers, sampling grids."""

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from motifgram.engine.detect import Atoms
from motifgram.engine.errors import ImageError, NoLatticeError
from motifgram.engine.graph import build_graph
from motifgram.engine.moire import GridSample, MoireMeasurement, grid_points, measure_moire
from motifgram.engine.simulate import simulate
from conftest import seed, seeds

A_PX = 6.0 * math.sqrt(3)  # MoS2 lattice constant at tbl_mos2's default pixel size (Mo–S2 6 px)


@pytest.mark.parametrize("twist", [2.0, 4.0, 8.0])
def test_twist_and_moire_period_of_a_twisted_bilayer(twist):
    sim = simulate("tbl_mos2", size=1024, seed=seed(11), twist=twist)
    m = measure_moire(sim.image, pixel_size_nm=sim.pixel_size_nm)
    expected = A_PX / (2 * math.sin(math.radians(twist) / 2))
    assert isinstance(m, MoireMeasurement)
    assert m.n_lattices == 2 and m.symmetry == 6
    assert m.twist_deg == pytest.approx(twist, abs=0.2)
    assert m.moire_period_px == pytest.approx(expected, rel=0.05)
    assert m.moire_period_measured_px == pytest.approx(expected, rel=0.05)
    assert m.lattice_constant_px == pytest.approx(A_PX, rel=0.002)
    assert m.lattice_period_px == pytest.approx(A_PX * math.sqrt(3) / 2, rel=0.002)
    assert m.moire_period_nm == pytest.approx(0.316 / (2 * math.sin(math.radians(twist) / 2)), rel=0.05)
    assert m.spots.shape == (12, 2) and sorted(np.bincount(m.spot_lattice).tolist()) == [6, 6]
    summary = m.to_summary()
    assert summary["n_lattices"] == 2 and summary["twist_deg"] == pytest.approx(twist, abs=0.2)


def test_a_negative_twist_and_its_sixty_degree_partner_read_as_the_same_angle():
    for twist in (-5.0, 55.0):
        image = simulate("tbl_mos2", size=512, seed=seed(1), twist=twist).image
        assert measure_moire(image).twist_deg == pytest.approx(5.0, abs=0.2)


@pytest.mark.parametrize(("kind", "options", "symmetry"), [
    ("tbl_mos2", {"twist": 0.0}, 6), ("mos2", {}, 6), ("graphene", {}, 6), ("perovskite", {}, 4),
])
def test_one_lattice_has_no_twist_and_no_moire(kind, options, symmetry):
    m = measure_moire(simulate(kind, size=384, seed=seed(2), **options).image)
    assert m.n_lattices == 1 and m.symmetry == symmetry and m.twist_deg == 0.0
    assert m.moire_period_px is None and m.moire_period_measured_px is None and m.moire_period_nm is None
    assert len(m.spots) == symmetry and np.all(m.spot_lattice == 0)
    assert m.to_summary()["moire_period_px"] is None


def test_measure_moire_is_deterministic_and_rejects_bad_input():
    image = simulate("tbl_mos2", size=256, seed=seed(5), twist=7.0).image
    a, b = measure_moire(image), measure_moire(image.copy())
    assert a.to_summary() == b.to_summary()
    np.testing.assert_array_equal(a.spots, b.spots)
    with pytest.raises(NoLatticeError):
        measure_moire(np.random.default_rng(seed(0)).normal(size=(128, 128)))
    with pytest.raises(ImageError):
        measure_moire(image, pixel_size_nm=-1.0)


def test_grid_points_build_the_triangular_lattice_graph():
    image = simulate("tbl_mos2", size=300, seed=seed(3), twist=4.0).image
    sample = grid_points(image)
    assert isinstance(sample, GridSample) and isinstance(sample, Atoms)
    assert sample.xy.dtype == np.float32 and sample.intensity.dtype == np.float32
    assert sample.nn_distance_px == sample.lattice_period_px == pytest.approx(A_PX * math.sqrt(3) / 2, rel=0.01)
    assert np.all((sample.xy >= sample.nn_distance_px / 2 - 0.5) & (sample.xy <= 299 - sample.nn_distance_px / 2 + 0.5))
    graph = build_graph(sample.xy, image_shape=image.shape)
    pairs = cKDTree(sample.xy.astype(np.float64)).query_pairs(1.01 * sample.nn_distance_px, output_type="ndarray")
    np.testing.assert_array_equal(graph.bonds, np.unique(np.sort(pairs, axis=1), axis=0))
    assert {len(r) for r in graph.rings} == {3}
    # rings are exactly the grid's triangles, all of them once the grid's outermost points are excluded
    x, y = sample.xy.T
    step = sample.nn_distance_px
    edge = (x < x.min() + step) | (x > x.max() - step) | (y < y.min() + 1) | (y > y.max() - 1)
    neighbours = [set() for _ in range(len(sample))]
    for i, j in graph.bonds.tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)
    triangles = {frozenset((i, j, k)) for i, j in graph.bonds.tolist() for k in neighbours[i] & neighbours[j]}
    rings = {frozenset(r) for r in graph.rings}
    assert len(rings) == len(graph.rings) and rings <= triangles
    assert {t for t in triangles if not edge[list(t)].any()} <= rings
    for ring in graph.rings:  # counter-clockwise as displayed: negative shoelace in raw (x, y)
        p = sample.xy[list(ring)].astype(np.float64)
        assert np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]) < 0


def test_grid_intensity_is_the_bilinear_image_value_and_spacing_is_honoured():
    image = simulate("mos2", size=128, seed=seed(0)).image
    sample = grid_points(image, spacing_px=10.0)
    assert sample.nn_distance_px == 10.0 and len(sample) == 168
    x, y = sample.xy[7].astype(np.float64)
    c, r = int(x), int(y)
    fx, fy = x - c, y - r
    patch = image[r : r + 2, c : c + 2].astype(np.float64)
    expected = (patch[0, 0] * (1 - fx) * (1 - fy) + patch[0, 1] * fx * (1 - fy)
                + patch[1, 0] * (1 - fx) * fy + patch[1, 1] * fx * fy)
    assert sample.intensity[7] == pytest.approx(expected, rel=1e-4)
    again = grid_points(image, spacing_px=10.0)
    np.testing.assert_array_equal(sample.xy, again.xy)
    with pytest.raises(ImageError, match="spacing_px"):
        grid_points(image, spacing_px=0.5)
    with pytest.raises(ImageError, match="spacing_px"):
        grid_points(image, spacing_px=True)


@pytest.mark.parametrize("seed, twist", list(zip(seeds(1, 2, 3), [2.0, 4.0, 8.0])))
def test_grid_mode_tokens_recover_the_stacking_and_the_twist(tmp_path, seed, twist):
    """Twisted bilayer MoS2 through the pipeline in grid mode with three tokens, one run per angle."""
    import csv
    import json

    from motifgram.engine.mixture import adjusted_rand_index
    from motifgram.engine.pipeline import run
    from motifgram.engine.spec import load_spec

    spec = load_spec({
        "name": "twist",
        "inputs": [{"simulate": {"kind": "tbl_mos2", "size": 1024, "seed": seed, "twist": twist}, "id": "tbl"}],
        "detect": {"method": "grid"},
        "tokens": {"k": 3},  # the three high-symmetry stackings AA', AB', A'B
        "output": {"report": False, "overlays": False},
    })
    out = run(spec, out_dir=tmp_path / "run", quiet=True)
    info = json.loads((out / "summary.json").read_text())["images"]["tbl"]
    assert info["sampling"] == "grid"
    assert info["moire"]["twist_deg"] == pytest.approx(twist, abs=0.2)
    a = info["moire"]["lattice_constant_px"]
    assert info["moire"]["moire_period_px"] == pytest.approx(a / (2 * np.sin(np.radians(twist) / 2)), rel=0.05)
    with open(out / "atoms.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    tokens = np.array([r["token"] for r in rows])
    truth = simulate("tbl_mos2", size=1024, seed=seed, twist=twist).truth.stacking
    label = truth.grid_label[cKDTree(truth.grid_xy).query(xy)[1]]
    named = label != "other"  # points between the high-symmetry stackings have no class to recover
    ari = adjusted_rand_index(np.unique(tokens[named], return_inverse=True)[1],
                              np.unique(label[named], return_inverse=True)[1])
    assert ari >= 0.8


def test_twist_series_micrographs_are_nearest_to_their_own_angle(tmp_path):
    """The bundled twist-series spec (0, 2, 4, 8, 15 degrees, two micrographs each), at 512 px to stay quick.

    Rule-usage proportions alone do not separate 2 from 4 degrees (the stacking domains' size is not in them);
    the comparison's mesoscale level (the moiré period each run measures) does.
    """
    import json

    import yaml

    from motifgram.engine.pipeline import run
    from motifgram.engine.spec import bundled_spec_path, load_spec

    data = yaml.safe_load(bundled_spec_path("twist_series").read_text())
    data["seed"] = seed(data["seed"])
    for item in data["inputs"]:
        item["simulate"]["size"] = 512
        item["simulate"]["seed"] = seed(item["simulate"]["seed"])
    data["output"] = {"report": False, "overlays": False}
    # in this process: a pool of fresh processes would import and compile everything again beside the test worker
    # (300 s instead of 170 s on 2 busy cores); the executors are tested in test_executor.py
    data["engine"] = {"workers": 1}
    out = run(load_spec(data), out_dir=tmp_path / "run", quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    names = summary["comparison"]["items"]
    distance = np.array(summary["comparison"]["distance"])
    np.fill_diagonal(distance, np.inf)
    for i, name in enumerate(names):
        nearest = names[int(np.argmin(distance[i]))]
        assert nearest.split("-")[0] == name.split("-")[0], (name, nearest)
        measured = summary["images"][name]["moire"]["twist_deg"]
        assert measured == pytest.approx(float(name[5:7]), abs=0.3)
