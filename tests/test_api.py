"""The notebook API: ``motifgram.analyse`` on an array, a HyperSpy signal and a file, ``Result`` and
``load_run``."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

import motifgram
from motifgram.engine.errors import MotifgramError, SpecError
from motifgram.engine.simulate import simulate
from conftest import seed

SIZE, SEED = 192, 7
COLUMNS = ["image", "id", "x", "y", "token", "confidence", "intensity", "region", "x_nm", "y_nm"]
FAST = {"output": {"report": False, "overlays": False}, "tokens": {"k": 1}}


class StandIn:
    """What analyse reads from a HyperSpy Signal2D (data, signal axes, title), for when HyperSpy is absent."""

    def __init__(self, data, *, scale, units, offsets=(0.0, 0.0), title=""):
        axes = [SimpleNamespace(scale=scale, offset=o, units=units) for o in offsets]  # x (columns), then y (rows)
        self.data = data
        self.axes_manager = SimpleNamespace(signal_axes=tuple(axes))
        self.metadata = SimpleNamespace(General=SimpleNamespace(title=title))


def make_signal(data, *, scale, units, offsets=(0.0, 0.0), title=""):
    """A HyperSpy Signal2D when HyperSpy is installed, else the stand-in."""
    try:
        import hyperspy.api as hs
    except ImportError:
        return StandIn(data, scale=scale, units=units, offsets=offsets, title=title)
    signal = hs.signals.Signal2D(data)
    for axis, offset in zip(signal.axes_manager.signal_axes, offsets, strict=True):
        axis.scale, axis.units, axis.offset = scale, units, offset
    signal.metadata.General.title = title
    return signal


def simulation(seed):
    return simulate("graphene", size=SIZE, seed=seed, stone_wales_density=0.004)


def analyse_array(sim):
    return motifgram.analyse(sim.image, pixel_size=sim.pixel_size_nm, quiet=True, **FAST)


def measure_analysed(sim, result=None):
    """An analysed simulation against its truth: the 99th percentile of the detected atoms' distance to the nearest
    true column (px), the atoms found per true column, and the median bond length (nm)."""
    result = result if result is not None else analyse_array(sim)
    distance, _ = cKDTree(sim.truth.xy).query(result.xy())
    return {"distance_q99_px": float(np.quantile(distance, 0.99)), "found": len(result.atoms) / len(sim.truth.xy),
            "bond_nm": float(result.bonds["length_nm"].median())}


def sweep_analysed(seed):
    """:func:`measure_analysed` of the simulation of ``seed`` (benchmarks/seed_sweeps.py)."""
    return measure_analysed(simulation(seed))


@pytest.fixture(scope="module")
def sim():
    return simulation(seed(SEED))


@pytest.fixture(scope="module")
def results(sim, tmp_path_factory):
    """The same micrograph given three ways; the signal's axes in Å with an offset, the file as .npy."""
    folder = tmp_path_factory.mktemp("inputs")
    np.save(folder / "image.npy", sim.image)
    signal = make_signal(sim.image, scale=10 * sim.pixel_size_nm, units="Å", offsets=(3.0, -2.0), title="image")
    return {
        "array": analyse_array(sim),
        "signal": motifgram.analyse(signal, quiet=True, **FAST),
        "path": motifgram.analyse(folder / "image.npy", pixel_size=sim.pixel_size_nm, quiet=True, **FAST),
    }


def test_an_array_a_signal_and_a_file_give_the_same_atoms(results, sim):
    atoms = {how: r.atoms for how, r in results.items()}
    for how, table in atoms.items():
        assert list(table.columns) == COLUMNS, how
        assert (table["image"] == "image").all()
        pd.testing.assert_frame_equal(table, atoms["array"], check_exact=True, obj=how)
    for how, r in results.items():
        assert r.pixel_size_nm() == pytest.approx(sim.pixel_size_nm, rel=1e-9), how
    # against the simulation's truth: nearly every detected atom within a pixel of a true column, and nearly every
    # column found (benchmarks/seed_sweeps.py api.analyse, seeds 0-9: 99th percentile 0.25-0.30 px; 96.8-98.0 % of
    # the true columns, the rest cut by the edge)
    m = measure_analysed(sim, results["array"])
    assert m["distance_q99_px"] < 1.0
    assert m["found"] >= 0.95


def test_tables_carry_lengths_in_px_and_nm(results, sim):
    r = results["array"]
    # x is written to 1e-3 px and x_nm to 1e-5 nm, both from the unrounded position
    np.testing.assert_allclose(r.atoms["x_nm"], r.atoms["x"] * sim.pixel_size_nm, atol=5e-4 * sim.pixel_size_nm + 5e-6)
    xy = r.xy()
    expected = np.hypot(*(xy[r.bonds["j"]] - xy[r.bonds["i"]]).T)
    np.testing.assert_allclose(r.bonds["length_px"], expected)
    # graphene's C-C bond (seeds 0-9: median 0.1419-0.1422 nm)
    assert measure_analysed(sim, r)["bond_nm"] == pytest.approx(0.142, rel=0.02)
    assert (r.rings["size"] == r.rings["atoms"].map(len)).all()
    first = r.rings.iloc[0]
    np.testing.assert_allclose([first["x"], first["y"]], xy[list(first["atoms"])].mean(axis=0))
    np.testing.assert_allclose(r.rc(), xy[:, ::-1])
    assert set(r.parses) == {"image"} and r.parses["image"].symbol == "micrograph"
    assert r.summary["images"]["image"]["n_atoms"] == len(r.atoms)


def test_save_writes_the_run_directory_and_load_run_reads_it_back(results, tmp_path):
    r = results["array"]
    saved = r.save(tmp_path / "run")
    for name in ("atoms.csv", "bonds.csv", "rings.csv", "grammar.txt", "tokens.npz", "summary.json",
                 "parses/image.json"):
        assert (saved / name).read_bytes() == (r.run_dir / name).read_bytes(), name
    with pytest.raises(MotifgramError, match="--force"):
        r.save(tmp_path / "run")
    again = motifgram.load_run(saved)
    for table in ("atoms", "bonds", "rings"):
        pd.testing.assert_frame_equal(getattr(again, table), getattr(r, table), obj=table)
    assert again.grammar == r.grammar and again.summary == r.summary
    # an array given to analyse is not in the run directory: once analyse's temporary copy is gone,
    # plotting the saved run asks for the image
    copy = r.run_dir.parent / "inputs" / "image.npy"
    copy.rename(tmp_path / "away.npy")
    try:
        with pytest.raises(MotifgramError, match="image="):
            again.image()
    finally:
        (tmp_path / "away.npy").rename(copy)
    np.testing.assert_array_equal(r.image(), np.load(copy))  # the result itself keeps it in memory


def test_plot_draws_atoms_rings_and_a_scale_bar(results, sim):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import PathCollection, PolyCollection
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    r = results["array"]
    ax = r.plot()
    dots = next(c for c in ax.collections if isinstance(c, PathCollection))
    np.testing.assert_allclose(dots.get_offsets(), r.xy())
    rings = next(c for c in ax.collections if isinstance(c, PolyCollection))
    assert len(rings.get_paths()) == len(r.rings)
    bars = [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]
    assert len(bars) == 1 and bars[0].txt_label.get_text() == "5 Å"  # a fifth of 3.4 nm, rounded down


def test_markers_sit_on_the_atoms_in_the_signals_units(results, sim):
    pytest.importorskip("hyperspy")
    r = results["signal"]
    points, polygons = r.to_hyperspy_markers()
    scale = 10 * sim.pixel_size_nm  # Å per px, as the signal's axes say
    np.testing.assert_allclose(points.kwargs["offsets"], r.xy() * scale + np.array([3.0, -2.0]), rtol=1e-6)
    assert len(polygons.kwargs["verts"]) == len(r.rings)


def test_signal_calibration_in_other_units_and_bad_inputs(sim):
    from motifgram.signals import signal_calibration, signal_pixel_size_nm

    signal = StandIn(sim.image, scale=0.5, units="µm")
    assert signal_pixel_size_nm(signal) == pytest.approx(500.0)
    assert signal_pixel_size_nm(StandIn(sim.image, scale=1.0, units="<undefined>")) is None
    assert signal_calibration(StandIn(sim.image, scale=2.0, units="nm", offsets=(1, 2))).offset_y == 2
    with pytest.raises(MotifgramError, match="2-D image"):
        motifgram.analyse(StandIn(np.zeros((3, 64, 64)), scale=1.0, units="nm"), quiet=True)
    with pytest.raises(MotifgramError, match="a dict"):
        motifgram.analyse({"not": "an image"}, quiet=True)
    with pytest.raises(SpecError, match="tokens.k"):
        motifgram.analyse(sim.image, quiet=True, tokens={"k": "eight"})
    with pytest.raises(MotifgramError, match="no such file"):
        motifgram.analyse(Path("missing.tif"), quiet=True)


def test_reprs_are_short(results):
    r = results["array"]
    assert len(repr(r)) < 700 and "<table>" in r._repr_html_()
    assert repr(r).startswith("Result 'motifgram-run': 1 micrograph")
