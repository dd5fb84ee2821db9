"""The napari plugin: a run directory opens as layers; the widget analyses the open image.

Skipped when napari is not installed (``pip install -e ".[napari]"``). Headless with Qt's offscreen
platform, which has no OpenGL: the viewer gets the points and shapes layers; image layers (which need
OpenGL to be drawn) are checked as layer data.
"""

import os

import numpy as np
import pytest

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
napari = pytest.importorskip("napari", reason="napari is not installed (pip install -e '.[napari]')")

import motifgram  # noqa: E402
from motifgram.engine.pipeline import run  # noqa: E402
from motifgram.engine.overlay import token_colours  # noqa: E402
from motifgram.engine.simulate import simulate  # noqa: E402
from motifgram.engine.spec import load_spec  # noqa: E402
from motifgram.napari_plugin import analyse_image, get_reader, layers_of, read_run  # noqa: E402
from conftest import seed  # noqa: E402

SIMULATION = {"kind": "graphene", "size": 256, "seed": seed(2), "stone_wales_density": 0.004, "vacancy_density": 0.002}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An analysed array, saved; its temporary input gone, so the run's layers have no image."""
    sim = simulate(**SIMULATION)
    result = motifgram.analyse(sim.image, pixel_size=sim.pixel_size_nm, quiet=True, tokens={"k": 1},
                               output={"report": False, "overlays": False})
    folder = result.save(tmp_path_factory.mktemp("runs") / "graphene")
    result._workspace.cleanup()
    return folder, sim


def test_the_reader_takes_run_directories_only(run_dir, tmp_path):
    folder, _ = run_dir
    assert get_reader(str(folder)) is read_run and get_reader([str(folder)]) is read_run
    assert get_reader(str(tmp_path)) is None and get_reader(str(folder / "atoms.csv")) is None


def test_a_run_opens_as_atoms_rings_and_parse_layers(make_napari_viewer, run_dir):
    folder, sim = run_dir
    result = motifgram.load_run(folder)
    viewer = make_napari_viewer()
    layers = viewer.open(str(folder), plugin="motifgram")
    by_name = {layer.name: layer for layer in layers}
    assert "image" not in by_name  # the analysed array is not in the run directory
    atoms, rings = by_name["image atoms"], by_name["image rings"]
    assert isinstance(atoms, napari.layers.Points) and isinstance(rings, napari.layers.Shapes)
    np.testing.assert_allclose(atoms.data, result.rc())
    np.testing.assert_allclose(atoms.scale, [sim.pixel_size_nm] * 2)
    np.testing.assert_allclose(atoms.face_color, token_colours(1)[np.zeros(len(result.atoms), int)])
    assert list(atoms.features["token"]) == list(result.atoms["token"])
    assert rings.nshapes == len(result.rings) and list(rings.features["symbol"]) == list(result.rings["symbol"])
    # the parse tree: one hidden layer per motif or domain symbol at the top of the tree, holding its rings
    tree = result.parses["image"]
    tops = [node for node in tree.children if node.level >= 2]
    parse_layers = [layer for name, layer in by_name.items() if " parse " in name]
    assert {layer.metadata["symbol"] for layer in parse_layers} == {n.symbol for n in tops}
    for layer in parse_layers:
        symbol = layer.metadata["symbol"]
        assert layer.name == f"image parse {symbol} x{sum(n.symbol == symbol for n in tops)}"
    assert not any(layer.visible for layer in parse_layers)
    rings_below = sum(sum(1 for n in node.iter_nodes() if n.level == 1) for node in tops)
    assert sum(layer.nshapes for layer in parse_layers) == rings_below


def test_a_simulated_run_brings_its_image(tmp_path):
    """The micrograph of a run whose input can be read again (here re-simulated from its seed)."""
    spec = load_spec({"inputs": [{"simulate": SIMULATION}], "tokens": {"k": 1},
                      "output": {"report": False, "overlays": False}})
    folder = run(spec, out_dir=tmp_path / "run", quiet=True)
    image, meta, kind = layers_of(motifgram.load_run(folder))[0]
    sim = simulate(**SIMULATION)
    assert kind == "image" and meta["name"] == f"graphene-{seed(2)}"
    np.testing.assert_array_equal(image, sim.image)
    assert meta["scale"] == (sim.pixel_size_nm, sim.pixel_size_nm)


def test_the_widget_analyses_the_selected_image(make_napari_viewer, run_dir):
    from magicgui import magicgui

    _, sim = run_dir
    widget = magicgui(analyse_image)  # what napari builds from the manifest's autogenerate
    assert [w.name for w in widget if w.name != "call_button"] == ["image", "spec", "pixel_size_nm", "tokens"]
    layer = napari.layers.Image(sim.image, name="graphene", scale=(sim.pixel_size_nm, sim.pixel_size_nm))
    viewer = make_napari_viewer()
    for data in analyse_image(layer, tokens=1):
        viewer.add_layer(napari.layers.Layer.create(*data))
    atoms = viewer.layers["image atoms"]
    assert len(atoms.data) >= 0.95 * len(sim.truth.xy)
    np.testing.assert_allclose(atoms.scale, [sim.pixel_size_nm] * 2)  # the layer's scale gave the pixel size


def test_the_manifest_declares_the_reader_and_the_widget():
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest("motifgram")
    assert [r.command for r in manifest.contributions.readers] == ["motifgram.get_reader"]
    assert [w.command for w in manifest.contributions.widgets] == ["motifgram.analyse_image"]
