"""HyperSpy signals as motifgram inputs: the image and its calibration, read from the signal's axes.

Duck-typed (``signal.data``, ``signal.axes_manager.signal_axes`` with ``scale``, ``offset`` and ``units``,
``signal.metadata.General.title``), so HyperSpy itself is needed only to make markers
(:meth:`motifgram.Result.to_hyperspy_markers`).
"""

import math
from dataclasses import dataclass

import numpy as np

from motifgram.engine.errors import ImageError
from motifgram.engine.io import axes_pixel_size_nm

__all__ = ["Calibration", "is_signal", "signal_image", "signal_calibration", "signal_pixel_size_nm", "signal_title"]


@dataclass(frozen=True)
class Calibration:
    """How an image's pixels map onto the axes it was given with (a HyperSpy signal's, or plain nm).

    Attributes
    ----------
    scale : float
        Axis units per pixel (the same along x and y).
    offset_x, offset_y : float
        Axis value of the centre of the top-left pixel.
    units : str
        The axes' unit (``"nm"`` when the calibration is the pixel size).
    """

    scale: float
    offset_x: float = 0.0
    offset_y: float = 0.0
    units: str = "nm"


def is_signal(obj) -> bool:
    """Whether ``obj`` looks like a HyperSpy signal (data and an axes manager)."""
    return hasattr(obj, "data") and hasattr(obj, "axes_manager")


def _axes(signal):
    """The signal's (x, y) axes: x runs along columns, y along rows."""
    axes = tuple(signal.axes_manager.signal_axes)
    if len(axes) != 2 or np.ndim(signal.data) != 2:
        raise ImageError(
            f"a HyperSpy signal with {len(axes)} signal axes and data of shape {np.shape(signal.data)}: give one "
            "2-D image (a Signal2D without navigation axes; e.g. signal.inav[0] of a stack)")
    return axes


def _units(axis) -> str | None:
    units = getattr(axis, "units", None)
    text = None if units is None else str(units)
    return None if text in (None, "", "<undefined>", "<Undefined>") else text


def signal_image(signal) -> np.ndarray:
    """The signal's image as an (H, W) array (rows, columns)."""
    _axes(signal)
    return np.asarray(signal.data)


def signal_pixel_size_nm(signal) -> float | None:
    """The pixel size (nm) from the signal's axes; None when they are not calibrated."""
    x, y = _axes(signal)
    axes = [{"scale": float(a.scale), "units": _units(a)} for a in (y, x)]  # array order: rows, then columns
    return axes_pixel_size_nm(axes, source=signal_title(signal) or "the signal")


def signal_calibration(signal) -> Calibration:
    """The scale, offsets and unit of the signal's axes (for markers in the signal's own coordinates)."""
    x, y = _axes(signal)
    if not math.isclose(float(x.scale), float(y.scale), rel_tol=1e-3):
        raise ImageError(f"the signal's pixels are not square ({x.scale} x {y.scale}); resample it first")
    return Calibration(scale=float(x.scale), offset_x=float(x.offset), offset_y=float(y.offset),
                       units=_units(x) or "px")


def signal_title(signal) -> str | None:
    """``metadata.General.title``, when the signal has one."""
    try:
        title = str(signal.metadata.General.title).strip()
    except AttributeError:
        return None
    return title or None
