"""napari plugin (npe2; manifest ``napari.yaml`` beside this module): open run directories, analyse the open image.

- The reader opens a run directory (``atoms.csv``, ``summary.json`` ...) as layers, per micrograph: the
  image (when its input can still be read), the atoms as a Points layer coloured by token, the rings as a
  Shapes layer coloured by grammar symbol, and the parse tree as one Shapes layer per motif or domain symbol
  of the tree's top level (hidden at first: switching them on in the layer list selects those parts of the
  tree).
- The widget runs :func:`motifgram.analyse` on the selected image layer and adds the same layers.

Layers are in pixels, scaled by the pixel size with units of nm when it is known, so napari's scale bar
reads nm. A parse-tree layer is named ``<image> parse <symbol> x<instances>``.
napari is needed only to use the plugin (``pip install "motifgram[napari]"``); the layer data come from
plain functions (:func:`layers_of`).
"""

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from motifgram.engine.errors import MotifgramError
from motifgram.engine.overlay import ring_symbol_colours, token_colours

from motifgram.analysis import analyse
from motifgram.result import Result, load_run

__all__ = ["get_reader", "read_run", "layers_of", "analyse_image", "MAX_PARSE_LAYERS"]

log = logging.getLogger(__name__)

#: Motif and domain symbols of a parse tree shown as layers of their own (the most frequent); the rest
#: share one layer.
MAX_PARSE_LAYERS = 12


def get_reader(path):
    """The reader of a run directory (napari asks with the path dropped or opened), else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    folder = Path(path)
    if folder.is_dir() and all((folder / name).is_file() for name in ("summary.json", "atoms.csv", "rings.csv")):
        return read_run
    return None


def read_run(path) -> list[tuple]:
    """Layers of every micrograph of a run directory (see the module docstring)."""
    result = load_run(path[0] if isinstance(path, list) else path)
    return [layer for image_id in result.image_ids for layer in layers_of(result, image_id)]


def layers_of(result: Result, image_id: str | None = None, *, with_image: bool = True) -> list[tuple]:
    """napari layer data ``(data, keyword arguments, layer type)`` of one micrograph of a result.

    Parameters
    ----------
    result : Result
    image_id : str, optional
        Needed when the result holds several micrographs.
    with_image : bool
        Include the micrograph itself (when it can be read).

    Returns
    -------
    list of tuple
        Image (optional), atoms (points), rings (shapes) and the parse-tree layers (shapes), in that order.
        Coordinates are (row, column) in px; ``scale`` is the pixel size in nm when known.
    """
    image_id = result.resolve_image_id(image_id)
    pixel = result.pixel_size_nm(image_id)
    common = {"scale": (pixel, pixel) if pixel else (1.0, 1.0), "units": ("nm", "nm") if pixel else ("pixel", "pixel"),
              "metadata": {"motifgram_image": image_id, "run_dir": str(result.run_dir)}}
    layers = []
    if with_image:
        try:
            layers.append((result.image(image_id), {**common, "name": image_id, "colormap": "gray"}, "image"))
        except MotifgramError as exc:
            log.warning("%s", exc)
    atoms = result.atoms[result.atoms["image"] == image_id]
    names = list(result.token_model.names)
    token = atoms["token"].map(names.index).to_numpy()
    nn_px = result.summary["images"][image_id].get("nn_distance_px") or 8.0
    layers.append((
        result.rc(image_id),
        {**common, "name": f"{image_id} atoms", "size": 0.45 * nn_px, "border_width": 0,
         "face_color": token_colours(len(names))[token],
         "features": {"id": atoms["id"].to_numpy(), "token": atoms["token"].to_numpy(),
                      "confidence": atoms["confidence"].to_numpy()}},
        "points",
    ))
    rc = result.rc(image_id)
    rings = result.rings[result.rings["image"] == image_id]
    colours = ring_symbol_colours(list(rings["symbol"].value_counts().index))
    layers.append((
        [rc[list(members)] for members in rings["atoms"]],
        {**common, "name": f"{image_id} rings", "shape_type": "polygon", "edge_width": 0, "opacity": 0.45,
         "face_color": [colours.get(s, (0.6, 0.6, 0.6, 1.0)) for s in rings["symbol"]],
         "features": {"ring": rings["ring"].to_numpy(), "symbol": rings["symbol"].to_numpy(),
                      "size": rings["size"].to_numpy()}},
        "shapes",
    ))
    if image_id in result.parses:
        layers += _parse_layers(result.parses[image_id], rc, common, image_id)
    return layers


def _parse_layers(root, rc: np.ndarray, common: dict, image_id: str) -> list[tuple]:
    """One hidden Shapes layer per motif or domain symbol at the top of the parse tree: its rings."""
    tops = [node for node in root.children if node.level >= 2]
    counts = Counter(node.symbol for node in tops)
    shown = [symbol for symbol, _ in counts.most_common(MAX_PARSE_LAYERS)]
    colours = ring_symbol_colours(shown)
    groups: dict[str, list] = {}
    for node in tops:
        groups.setdefault(node.symbol if node.symbol in colours else "other motifs", []).append(node)
    layers = []
    for symbol, nodes in groups.items():
        polygons, owner = [], []
        for k, node in enumerate(nodes):
            for ring in (n for n in node.iter_nodes() if n.level == 1):
                polygons.append(rc[list(ring.atoms)])
                owner.append(k)
        colour = colours.get(symbol, (0.6, 0.6, 0.6, 1.0))
        layers.append((
            polygons,
            {**common, "name": f"{image_id} parse {symbol} x{len(nodes)}",
             "shape_type": "polygon", "face_color": [colour] * len(polygons), "edge_color": "white",
             "edge_width": 0.5, "opacity": 0.6, "visible": False,
             "features": {"instance": np.asarray(owner, dtype=np.int64)},
             "metadata": {**common["metadata"], "symbol": symbol, "level": nodes[0].level}},
            "shapes",
        ))
    return layers


def analyse_image(image: "napari.layers.Image", spec: Path = Path(), pixel_size_nm: float = 0.0,  # noqa: F821
                  tokens: int = 0) -> "list[napari.types.LayerDataTuple]":  # noqa: F821
    """Learn the grammar of the selected image and show its atoms, rings and parse tree.

    Parameters
    ----------
    image : napari.layers.Image
        A 2-D image layer.
    spec : Path
        A YAML spec for the settings (its inputs are ignored); empty: the defaults.
    pixel_size_nm : float
        nm per pixel; 0: the layer's scale when it is not 1, else unknown.
    tokens : int
        The number of tokens; 0: chosen by BIC.
    """
    if image is None:
        raise MotifgramError("select an image layer to analyse")
    pixel = pixel_size_nm or (float(image.scale[-1]) if float(image.scale[-1]) != 1.0 else None)
    overrides = {"tokens": {"k": int(tokens)}} if tokens else {}
    spec_path = Path(spec) if str(spec) not in ("", ".") else None
    result = analyse(np.asarray(image.data), spec_path, pixel_size=pixel, quiet=True,
                     name=image.name.replace("/", "_") or "image", **overrides)
    return layers_of(result, with_image=False)
