"""``motifgram.analyse``: the whole pipeline on micrographs already in memory (or on disk), from Python.

The micrographs become the inputs of a spec (arrays and HyperSpy signals are written to a temporary folder
as ``.npy``, with their pixel size), the spec runs exactly as ``motifgram run`` would, into a temporary
run directory, and the run directory is read back as a :class:`~motifgram.result.Result`. So a notebook
and the command line give the same numbers and the same files (:meth:`Result.save`).
"""

import copy
import dataclasses
import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from motifgram.engine.errors import MotifgramError
from motifgram.engine.io import check_image_file
from motifgram.engine.pipeline import run
from motifgram.engine.spec import Spec, load_spec, read_spec_file

from motifgram.result import Result, load_run
from motifgram.signals import is_signal, signal_calibration, signal_image, signal_pixel_size_nm, signal_title

__all__ = ["analyse"]

log = logging.getLogger(__name__)


def analyse(image_or_signal, spec=None, *, pixel_size: float | None = None, quiet: bool = False,
            **overrides) -> Result:
    """Learn the grammar of micrographs and parse them: the whole pipeline, returning its results.

    Parameters
    ----------
    image_or_signal : array, HyperSpy Signal2D, str or Path, or a list of them
        The micrograph(s): a 2-D NumPy array (pixel size from ``pixel_size``), a HyperSpy ``Signal2D``
        (pixel size and axes from its calibration; its title names it), or an image file of any readable
        format. Several share one vocabulary and grammar.
    spec : str, Path, dict or Spec, optional
        Settings: a YAML spec file, its mapping, or a loaded spec; its ``inputs`` are replaced by the given
        micrographs. Default: every default (``motifgram schema`` lists them).
    pixel_size : float, optional
        nm per pixel, for every micrograph; overrides a signal's or file's calibration.
    quiet : bool
        No progress bars (in Jupyter they are a widget: ``pip install "motifgram[notebook]"``).
    **overrides
        Spec sections or keys, merged into ``spec``: ``tokens={"k": 2}``, ``detect={"spots": "ring_centres"}``,
        ``name="graphene"``, ``seed=3``.

    Returns
    -------
    Result
        Tables (atoms, bonds, rings) in px and nm, the grammar, the parse trees and the summary.

    Raises
    ------
    MotifgramError
        For bad input, with the key or micrograph named (as the command line reports it).

    Examples
    --------
    >>> import motifgram
    >>> from motifgram.engine.simulate import simulate
    >>> sim = simulate("graphene", size=256, seed=1)
    >>> result = motifgram.analyse(sim.image, pixel_size=sim.pixel_size_nm, quiet=True)  # doctest: +SKIP
    >>> result.atoms[["x_nm", "y_nm", "token"]].head()  # doctest: +SKIP
    """
    workspace = tempfile.TemporaryDirectory(prefix="motifgram-")
    folder = Path(workspace.name)
    data, base_dir = _spec_data(spec)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    micrographs = image_or_signal if isinstance(image_or_signal, list | tuple) else [image_or_signal]
    if not micrographs:
        raise MotifgramError("analyse: give at least one micrograph (an array, a HyperSpy signal or a file)")
    inputs, images, calibrations = [], {}, {}
    taken: set[str] = set()
    for k, micrograph in enumerate(micrographs):
        item = {} if pixel_size is None else {"pixel_size": pixel_size}
        if isinstance(micrograph, str | Path):
            path = check_image_file(Path(micrograph).expanduser(), fix="check the path given to analyse")
            inputs.append({"path": str(path.absolute()), **item})
            continue
        if is_signal(micrograph):
            image, name = signal_image(micrograph), signal_title(micrograph)
            signal_pixel = signal_pixel_size_nm(micrograph)
            if pixel_size is None and signal_pixel is not None:
                item["pixel_size"] = signal_pixel
        elif isinstance(micrograph, np.ndarray) or hasattr(micrograph, "__array__"):
            image, name = np.asarray(micrograph), None
        else:
            raise MotifgramError(
                f"analyse: micrograph {k} is a {type(micrograph).__name__}; give a 2-D array, a HyperSpy Signal2D "
                "or the path of an image file")
        image_id = _unique_id(name or ("image" if len(micrographs) == 1 else f"image-{k + 1}"), taken)
        path = folder / "inputs" / f"{image_id}.npy"
        path.parent.mkdir(exist_ok=True)
        np.save(path, image)
        inputs.append({"path": str(path), "id": image_id, **item})
        images[image_id] = image
        if is_signal(micrograph) and signal_pixel is not None:
            calibrations[image_id] = signal_calibration(micrograph)
    data["inputs"] = inputs
    loaded = load_spec(data, base_dir=base_dir)
    result = load_run(run(loaded, out_dir=folder / "run", quiet=quiet))
    images = {image_id: np.asarray(image, dtype=np.float32) for image_id, image in images.items()}
    return dataclasses.replace(result, _images=images, _calibrations=calibrations, _workspace=workspace)


def _spec_data(spec) -> tuple[dict, Path]:
    """The spec as a mutable mapping, and the folder its relative paths start from."""
    if spec is None:
        return {}, Path.cwd()
    if isinstance(spec, Spec):
        return spec.to_dict(), Path.cwd()
    if isinstance(spec, Mapping):
        return copy.deepcopy(dict(spec)), Path.cwd()
    if isinstance(spec, str | Path):
        data = read_spec_file(spec)
        if not isinstance(data, Mapping):
            return {"spec": data}, Path(spec).parent  # load_spec names the problem
        return dict(data), Path(spec).parent
    raise MotifgramError(f"analyse: spec is a {type(spec).__name__}; give a YAML file, a mapping or a Spec")


def _unique_id(name: str, taken: set[str]) -> str:
    """A name usable as an input id (no / or \\), not yet taken."""
    base = re.sub(r"[/\\\\]", "_", name).strip() or "image"
    ident, n = base, 1
    while ident in taken:
        n += 1
        ident = f"{base}-{n}"
    taken.add(ident)
    return ident
