"""Reading micrographs from disk into :class:`Micrograph` objects.

Supported formats: ``.npy``, ``.tif``/``.tiff``, ``.png``/``.jpg``/``.jpeg`` (RGB is converted to grey),
``.dm3``/``.dm4`` (Gatan), ``.emd`` (Velox/Berkeley), ``.hspy``/``.hdf5``/``.h5`` (HyperSpy) and ``.mrc``;
the microscope formats are read with rosettasciio, which also gives the pixel size and its unit.
"""

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motifgram.engine.errors import ImageError

__all__ = [
    "Micrograph", "load_micrograph", "check_image_file", "axes_pixel_size_nm", "SUPPORTED_SUFFIXES", "MAX_PIXELS",
]

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (
    ".npy", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".emd", ".hspy", ".hdf5", ".h5", ".mrc",
)

#: Largest image accepted (pixels); a 16384² image of float32 is 1 GiB, beyond what one run should hold.
MAX_PIXELS = 8192 * 8192

_NM_PER_UNIT = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0,
    "a": 0.1, "å": 0.1, "angstrom": 0.1, "angstroms": 0.1, "Å": 0.1,
    "pm": 1e-3, "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "m": 1e9,
}


@dataclass(frozen=True, eq=False)
class Micrograph:
    """One 2-D micrograph and what is known about it.

    Attributes
    ----------
    image : (H, W) float32 ndarray
        Pixel values; finite, not constant.
    pixel_size_nm : float or None
        Size of one pixel in nm, from the spec or the file; None when unknown.
    id : str
        Unique name of this input within a run (the ``image`` column of atoms.csv).
    group : str
        Material or condition this micrograph belongs to (for comparison).
    source : str
        The file it came from, or ``simulate:<kind>``.
    """

    image: np.ndarray
    pixel_size_nm: float | None
    id: str
    group: str
    source: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape


def load_micrograph(path, *, pixel_size_nm=None, id=None, group=None, dataset=None, frame=None) -> Micrograph:
    """Read one micrograph file.

    Parameters
    ----------
    path : str or Path
        The image file; its suffix selects the reader.
    pixel_size_nm : float, optional
        Overrides the pixel size stored in the file (nm).
    id, group : str, optional
        Default to the file's stem.
    dataset : str, optional
        HDF5 files (.h5, .hdf5, .emd, .hspy): the path of the dataset holding the image (e.g. ``/data``).
        None: a HyperSpy/EMD file's one image signal, or a plain HDF5 file's one image dataset; a file with
        several says which it holds and how to choose.
    frame : int, optional
        For a stack (a 3-D array of frames, frame index first): the frame to analyse. None: a stack is an
        error that says how many frames it holds.

    Returns
    -------
    Micrograph

    Raises
    ------
    ImageError
        The file is missing, unreadable, corrupt, not a single 2-D image, too large, or holds
        NaN/Inf or constant pixels. The message names the file and what to do.
    """
    path = check_image_file(path)
    suffix = path.suffix.lower()
    try:
        data, file_pixel_nm = _read(path, suffix, dataset)
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError(f"{path}: too large to read into memory ({exc})") from exc
    except Exception as exc:  # readers raise many unrelated types on corrupt input; all mean "unreadable"
        raise ImageError(
            f"{path}: cannot read this {suffix} file ({type(exc).__name__}: {exc}); "
            "the file may be truncated or corrupt — re-export it from the microscope software"
        ) from exc
    image = _as_2d_image(_select_frame(np.asarray(data), frame, path), path)
    if pixel_size_nm is None:
        pixel_size_nm = file_pixel_nm
    log.info("loaded %s: %dx%d, pixel size %s nm", path.name, image.shape[0], image.shape[1], pixel_size_nm)
    return Micrograph(
        image=image,
        pixel_size_nm=None if pixel_size_nm is None else float(pixel_size_nm),
        id=id or path.stem,
        group=group or path.stem,
        source=str(path),
    )


def check_image_file(path, *, fix="check the path in the spec (relative paths start at the spec's folder)") -> Path:
    """``path`` as a Path when it names an existing file of a readable format.

    Parameters
    ----------
    path : str or Path
    fix : str
        What the user should do about a missing file, for the message.

    Raises
    ------
    ImageError
        The format is not readable, or there is no such file (or it is a folder); the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file; {fix}")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ImageError(
            f"{path}: unsupported file type '{path.suffix}'; readable formats are {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise ImageError(f"{path}: no such file; {fix}")
    return path


def _read(path: Path, suffix: str, dataset: str | None = None) -> tuple[np.ndarray, float | None]:
    """Return the raw array and the pixel size in nm (None when the file does not say)."""
    if suffix in _HDF5_SUFFIXES and dataset is not None:
        return _read_hdf5(path, dataset), None
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            return data, _tiff_pixel_size_nm(tif)
    if suffix in (".png", ".jpg", ".jpeg"):
        import imageio.v3 as iio

        return iio.imread(path), None
    reader = _rosettasciio_reader(suffix)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signals = reader(str(path))
    except Exception:
        if suffix not in _HDF5_SUFFIXES:
            raise
        # not a HyperSpy/EMD layout: a plain HDF5 file whose one image dataset is the micrograph
        log.info("%s: not a HyperSpy/EMD file; reading it as plain HDF5", path.name)
        return _read_hdf5(path, None), None
    images = [s for s in signals if np.asarray(s["data"]).ndim >= 2]
    if not images:
        raise ImageError(f"{path}: the file holds no image (only {len(signals)} non-image signal(s))")
    if len(images) > 1:
        titles = ", ".join(repr(s.get("metadata", {}).get("General", {}).get("title", "")) for s in images)
        raise ImageError(
            f"{path}: the file holds {len(images)} image signals ({titles}); choose one by its dataset path "
            f"with 'dataset: /path' on the input. {_dataset_listing(path)}"
        )
    signal = images[0]
    return np.asarray(signal["data"]), axes_pixel_size_nm(signal.get("axes", []), source=path.name)


_HDF5_SUFFIXES = (".h5", ".hdf5", ".hspy", ".emd")


def _image_datasets(path: Path) -> list[tuple[str, tuple]]:
    """(name, shape) of every numeric dataset of at least 2 dimensions in an HDF5 file, in file order."""
    import h5py

    found = []
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and obj.dtype.kind in "biuf":
                found.append(("/" + name, tuple(obj.shape)))

        f.visititems(visit)
    return found


def _dataset_listing(path: Path) -> str:
    found = _image_datasets(path)
    return "Image datasets: " + "; ".join(f"{name} {shape}" for name, shape in found) + "." if found else ""


def _read_hdf5(path: Path, dataset: str | None) -> np.ndarray:
    """The array of ``dataset`` in an HDF5 file, or of its one image dataset when ``dataset`` is None."""
    import h5py

    if dataset is None:
        found = _image_datasets(path)
        if not found:
            raise ImageError(f"{path}: the HDF5 file holds no dataset with 2 or more dimensions (no image)")
        if len(found) > 1:
            raise ImageError(
                f"{path}: the HDF5 file holds {len(found)} image datasets; choose one with 'dataset: /path' on the "
                f"input. {_dataset_listing(path)}"
            )
        dataset = found[0][0]
    with h5py.File(path, "r") as f:
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            raise ImageError(f"{path}: no dataset {dataset!r} in the file. {_dataset_listing(path)}")
        return np.asarray(obj[()])


def _select_frame(data: np.ndarray, frame: int | None, path: Path) -> np.ndarray:
    """Frame ``frame`` of a stack (frames first); a non-stack is returned as it is (``frame`` must then be None)."""
    is_stack = data.ndim == 3 and data.shape[-1] not in (3, 4)
    if frame is None:
        if is_stack:
            raise ImageError(
                f"{path}: a stack of {data.shape[0]} frames of {data.shape[1]}x{data.shape[2]} px; choose one with "
                f"'frame: N' on the input (0 to {data.shape[0] - 1}), or export a sum of aligned frames"
            )
        return data
    if not is_stack:
        raise ImageError(f"{path}: 'frame: {frame}' given, but the file holds one image of shape {data.shape}, not a stack")
    if not 0 <= frame < data.shape[0]:
        raise ImageError(f"{path}: 'frame: {frame}' is out of range; the stack holds frames 0 to {data.shape[0] - 1}")
    return data[frame]


def _rosettasciio_reader(suffix: str):
    if suffix in (".dm3", ".dm4"):
        from rsciio.digitalmicrograph import file_reader
    elif suffix == ".emd":
        from rsciio.emd import file_reader
    elif suffix == ".mrc":
        from rsciio.mrc import file_reader
    else:
        from rsciio.hspy import file_reader
    return file_reader


def axes_pixel_size_nm(axes, *, source: str) -> float | None:
    """Pixel size (nm) from the calibration of an image's two axes.

    Parameters
    ----------
    axes : sequence of mapping
        Axes in array order, each with ``scale`` and ``units`` (rosettasciio's signal axes; the last two are
        the image's rows and columns).
    source : str
        Where they come from, for the log.

    Returns
    -------
    float or None
        The column axis's scale converted to nm; None when the axes are not calibrated or their unit is
        unknown. A scale without a unit is taken as nm (the HyperSpy and atomap convention), with a warning.
    """
    if len(axes) < 2:
        return None
    scales, units = [], []
    for axis in axes[-2:]:
        scale = float(axis.get("scale", 1.0) or 1.0)
        unit = axis.get("units")
        unit = None if unit in (None, "", "<undefined>") else str(unit)
        scales.append(scale)
        units.append(unit)
    if units[0] is None and scales[0] == 1.0:
        return None
    if units[0] is None:
        log.warning("%s: pixel size %.6g has no unit; assuming nm (HyperSpy/atomap convention)", source, scales[0])
        return scales[0]
    factor = _NM_PER_UNIT.get(units[0].strip().lower(), _NM_PER_UNIT.get(units[0].strip()))
    if factor is None:
        log.warning("%s: unknown pixel unit '%s'; ignoring the pixel size", source, units[0])
        return None
    if not np.isclose(scales[0], scales[1], rtol=1e-3):
        log.warning("%s: non-square pixels (%g x %g %s); using the x size", source, scales[1], scales[0], units[0])
    return scales[-1] * factor


def _tiff_pixel_size_nm(tif) -> float | None:
    """Pixel size from ImageJ metadata (unit + XResolution), when present."""
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    tag = tif.pages[0].tags.get("XResolution")
    if not unit or tag is None:
        return None
    numerator, denominator = tag.value
    if numerator == 0:
        return None
    factor = _NM_PER_UNIT.get(str(unit).strip().lower().replace("\\u00c5", "å"))
    if factor is None:
        return None
    return denominator / numerator * factor


def _as_2d_image(data, path: Path) -> np.ndarray:
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise ImageError(f"{path}: pixels of type {data.dtype} are not a grey-level image")
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        log.info("%s: converting RGB to grey", path.name)
        data = data[..., :3].astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    if data.ndim != 2:
        raise ImageError(
            f"{path}: expected one 2-D image, got an array of shape {data.shape}; "
            "for a stack or a spectrum image, export the frame you want (or a sum of aligned frames) as a 2-D image"
        )
    if min(data.shape) < 32:
        raise ImageError(f"{path}: image of shape {data.shape} is too small; at least 32x32 pixels are needed")
    if data.size > MAX_PIXELS:
        raise ImageError(
            f"{path}: image of shape {data.shape} has more than {MAX_PIXELS} pixels; crop or bin it first"
        )
    image = data.astype(np.float32)
    finite = np.isfinite(image)
    if not finite.all():
        raise ImageError(
            f"{path}: {np.count_nonzero(~finite)} pixels are NaN or infinite; "
            "fix or crop the invalid region before analysis"
        )
    if float(image.max()) == float(image.min()):
        raise ImageError(f"{path}: the image is constant (every pixel is {image.flat[0]}); there is nothing to analyse")
    _check_extreme_pixels(image, path)
    return image


#: Pixels further than this many robust ranges beyond the 0.1–99.9 % percentiles are not physical signal.
EXTREME_PIXEL_RANGES = 20.0


def _check_extreme_pixels(image: np.ndarray, path: Path) -> None:
    """Reject images holding values far outside their own dynamic range (corrupt bytes, overflowed counts).

    Real micrographs, hot pixels included, stay within about one robust range of their 0.1–99.9 %
    percentiles (measured on the shared test data: at most 0.9 ranges); a flipped exponent or high byte
    lands thousands of ranges away.
    """
    step = max(1, int(np.sqrt(image.size / 1_000_000)))
    low, high = np.percentile(image[::step, ::step], [0.1, 99.9])
    span = float(high - low)
    if span <= 0:
        return
    extreme = (image > high + EXTREME_PIXEL_RANGES * span) | (image < low - EXTREME_PIXEL_RANGES * span)
    if extreme.any():
        example = float(image[extreme][0])
        raise ImageError(
            f"{path}: {np.count_nonzero(extreme)} pixel(s) hold extreme values (e.g. {example:.4g}, while 99.8 % of "
            f"the pixels lie within [{low:.4g}, {high:.4g}]); the file may be corrupt — re-export it, or replace "
            "the bad pixels before analysis"
        )
