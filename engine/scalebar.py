"""Scale bars for micrographs whose pixel size is known: a round length and its label.

Shared by the overlays (``overlays/<image>.png``, drawn with Pillow by :mod:`motifgram.engine.overlay`) and
:meth:`motifgram.Result.plot` (:func:`add_scale_bar` on matplotlib axes that show the image in pixels).
"""

import math

__all__ = ["scale_bar_length_nm", "scale_bar_label", "add_scale_bar"]


def scale_bar_length_nm(width_nm: float, *, fraction: float = 0.2) -> float:
    """The round length (1, 2 or 5 x 10^k nm) nearest below ``fraction`` of the image width.

    Examples
    --------
    >>> scale_bar_length_nm(9.09), scale_bar_length_nm(30.0), scale_bar_length_nm(0.8)
    (1.0, 5.0, 0.1)
    """
    if not width_nm > 0:
        raise ValueError(f"width_nm must be > 0, got {width_nm}")
    target = fraction * width_nm
    power = 10.0 ** math.floor(math.log10(target))
    step = max(s for s in (1.0, 2.0, 5.0) if s * power <= target * (1 + 1e-9))
    return round(step * power, 12)


def scale_bar_label(length_nm: float) -> str:
    """The bar's label: µm from 1000 nm, Å below 1 nm.

    Examples
    --------
    >>> scale_bar_label(2.0), scale_bar_label(0.5), scale_bar_label(5000.0)
    ('2 nm', '5 Å', '5 µm')
    """
    if length_nm >= 1000:
        return f"{length_nm / 1000:g} µm"
    if length_nm < 1:
        return f"{length_nm * 10:g} Å"
    return f"{length_nm:g} nm"


def add_scale_bar(ax, *, pixel_size_nm: float, image_width_px: int, fontsize: float = 12.0):
    """Draw a white scale bar with its length in the lower left corner of ``ax``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes showing the image with pixels as data coordinates.
    pixel_size_nm : float
        Size of one pixel (nm), > 0.
    image_width_px : int
        Width of the image (px); the bar is about a fifth of it.
    fontsize : float
        Of the label, in points.

    Returns
    -------
    float
        The bar's length in nm.
    """
    # matplotlib is the caller's (it made ``ax``); the overlays draw their bar without it
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length_nm = scale_bar_length_nm(image_width_px * pixel_size_nm)
    bar = AnchoredSizeBar(
        ax.transData, length_nm / pixel_size_nm, scale_bar_label(length_nm), "lower left", pad=0.6, color="white",
        frameon=False, size_vertical=max(image_width_px / 150, 1.0), label_top=True,
        fontproperties=FontProperties(size=fontsize, weight="bold"),
    )
    ax.add_artist(bar)
    return length_nm
