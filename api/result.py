"""A run's results as Python objects: tables, the grammar, parse trees and the summary.

:class:`Result` is what :func:`motifgram.analyse` returns and :func:`load_run` reads back from a run
directory. Its tables are the run directory's CSV files as pandas DataFrames, with lengths in nm beside
those in px when the pixel size is known; :meth:`Result.save` writes the run directory itself, the files
the command line writes, byte for byte.
"""

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from motifgram.engine import rundir
from motifgram.engine.display import format_counts, plural, summary_html, summary_text
from motifgram.engine.errors import MotifgramError
from motifgram.engine.outputs import atomic_run_dir
from motifgram.engine.overlay import ring_symbol_colours, token_colours
from motifgram.engine.scalebar import add_scale_bar
from motifgram.engine.spec import load_spec
from motifgram.engine.stages import load_input
from motifgram.engine.tokens import TokenModel
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import ParseNode

from motifgram.signals import Calibration, signal_calibration

__all__ = ["Result", "load_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Result:
    """The outputs of a run: what the run directory holds, as Python objects.

    Attributes
    ----------
    run_dir : Path
        Where the files are (for :func:`motifgram.analyse`, a temporary folder that lives as long as the
        result: :meth:`save` keeps them).
    atoms : pandas.DataFrame
        One row per atom (atoms.csv): ``image, id, x, y, token, confidence, intensity, region, x_nm, y_nm``; x is
        the column and y the row in px, origin at the centre of the top-left pixel; ``x_nm, y_nm`` NaN when
        the pixel size is unknown.
    bonds : pandas.DataFrame
        One row per bond (bonds.csv) ``image, i, j`` with ``length_px`` and ``length_nm``.
    rings : pandas.DataFrame
        One row per ring (rings.csv) ``image, ring, size, symbol, atoms, border`` (atoms: a tuple of atom ids
        in cyclic order) with the centroid ``x, y`` (px) and ``x_nm, y_nm``.
    grammar : Grammar
        The learned (or applied) grammar.
    parses : dict of str to ParseNode
        The parse tree of each micrograph, by image id.
    summary : dict
        summary.json.
    token_model : TokenModel
        The token model (tokens.npz).
    """

    run_dir: Path
    atoms: pd.DataFrame
    bonds: pd.DataFrame
    rings: pd.DataFrame
    grammar: Grammar
    parses: dict
    summary: dict
    token_model: TokenModel
    _images: dict = field(default_factory=dict, repr=False)
    _calibrations: dict = field(default_factory=dict, repr=False)
    _workspace: object = field(default=None, repr=False)  # a TemporaryDirectory kept alive with the result

    # -- what is in it -------------------------------------------------------------------------------------------

    @property
    def image_ids(self) -> list[str]:
        """The micrographs of the run, in input order."""
        return list(self.summary.get("images", {}))

    def resolve_image_id(self, image_id: str | None = None) -> str:
        """``image_id``, checked; None names the only micrograph of a one-micrograph result."""
        ids = self.image_ids
        if image_id is None:
            if len(ids) != 1:
                raise MotifgramError(f"this result holds {len(ids)} micrographs ({', '.join(ids)}); name one")
            return ids[0]
        if image_id not in ids:
            raise MotifgramError(f"no micrograph {image_id!r} in this result; it holds {', '.join(ids)}")
        return image_id

    def pixel_size_nm(self, image_id: str | None = None) -> float | None:
        """Pixel size of a micrograph (nm), None when unknown."""
        return self.summary["images"][self.resolve_image_id(image_id)].get("pixel_size_nm")

    def xy(self, image_id: str | None = None) -> np.ndarray:
        """(N, 2) float64, px: the atoms' (x, y) = (column, row), in atom-id order."""
        rows = self.atoms[self.atoms["image"] == self.resolve_image_id(image_id)]
        return rows[["x", "y"]].to_numpy(dtype=np.float64)

    def rc(self, image_id: str | None = None) -> np.ndarray:
        """(N, 2) float64, px: the atoms' (row, column), as NumPy, scikit-image and napari index images."""
        return self.xy(image_id)[:, ::-1].copy()

    def image(self, image_id: str | None = None) -> np.ndarray:
        """The micrograph itself, (H, W) float32.

        Kept in memory by :func:`motifgram.analyse`; for a run read back with :func:`load_run`, read again
        from the inputs its spec names (a file, or the simulation re-run from its seed).

        Raises
        ------
        MotifgramError
            When the input cannot be found any more (an array given to :func:`motifgram.analyse` and read back
            from a saved run directory: pass it to :meth:`plot` as ``image=``).
        """
        image_id = self.resolve_image_id(image_id)
        if image_id not in self._images:
            try:
                item = next(i for i in load_spec(self.summary["spec"]).inputs if i.id == image_id)
                self._images[image_id] = load_input(item).image
            except (MotifgramError, StopIteration, KeyError) as exc:
                raise MotifgramError(
                    f"{image_id}: the micrograph is not available ({exc}); pass it as image= (an array)") from exc
        return self._images[image_id]

    # -- pictures --------------------------------------------------------------------------------------------

    def plot(self, image_id: str | None = None, *, ax=None, image=None, atoms: bool = True, rings: bool = True,
             scale_bar: bool = True):
        """Draw a micrograph with its atoms coloured by token and rings filled by grammar symbol.

        Parameters
        ----------
        image_id : str, optional
            Which micrograph (needed when the result holds several).
        ax : matplotlib.axes.Axes, optional
            Where to draw (default: a new figure).
        image : (H, W) array, optional
            The micrograph, when :meth:`image` cannot find it.
        atoms, rings, scale_bar : bool
            What to draw; the scale bar only when the pixel size is known.

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt  # pyplot picks a backend (inline in Jupyter): only when plotting

        image_id = self.resolve_image_id(image_id)
        picture = np.asarray(self.image(image_id) if image is None else image, dtype=np.float32)
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 8 * picture.shape[0] / picture.shape[1]))
        lo, hi = np.percentile(picture, (0.5, 99.5))
        height, width = picture.shape
        ax.imshow(picture, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6), extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        xy = self.xy(image_id)
        handles = []
        if rings:
            table = self.rings[self.rings["image"] == image_id]
            order = list(table["symbol"].value_counts().index)
            colours = ring_symbol_colours(order)
            polygons = [xy[list(members)] for members in table["atoms"]]
            faces = [colours.get(s, (0.6, 0.6, 0.6, 1.0)) for s in table["symbol"]]
            ax.add_collection(PolyCollection(polygons, facecolors=faces, edgecolors="none", alpha=0.45))
            handles += [Patch(facecolor=colours[s], alpha=0.6, label=s) for s in order if s in colours]
        if atoms:
            names = list(self.token_model.names)
            palette = token_colours(len(names))
            tokens = self.atoms.loc[self.atoms["image"] == image_id, "token"].map(names.index).to_numpy()
            ax.scatter(xy[:, 0], xy[:, 1], s=6, c=palette[tokens], linewidths=0)
            handles += [Line2D([], [], marker="o", linestyle="", color=palette[k], label=n) for k, n in enumerate(names)]
        pixel = self.pixel_size_nm(image_id)
        if scale_bar and pixel is not None:
            add_scale_bar(ax, pixel_size_nm=pixel, image_width_px=width)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_axis_off()
        ax.set_title(image_id)
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return ax

    def to_hyperspy_markers(self, image_id: str | None = None, *, signal=None) -> list:
        """HyperSpy markers of the atoms (points coloured by token) and rings (polygons coloured by symbol).

        Positions are in the calibrated units of ``signal``'s axes when a signal is given, else in those of
        the signal the micrograph came from (:func:`motifgram.analyse`), else in nm (or px when the pixel size
        is unknown). Add them with ``signal.add_marker(markers)``.

        Returns
        -------
        list of hyperspy.api.plot.markers.Markers
            ``[points, polygons]``.
        """
        try:
            from hyperspy.api import plot as hs_plot
        except ImportError as exc:
            raise MotifgramError("to_hyperspy_markers needs HyperSpy: pip install hyperspy") from exc

        image_id = self.resolve_image_id(image_id)
        calibration = self._calibration(image_id, signal)
        xy = self.xy(image_id)
        where = np.column_stack([calibration.offset_x + xy[:, 0] * calibration.scale,
                                 calibration.offset_y + xy[:, 1] * calibration.scale])
        names = list(self.token_model.names)
        tokens = self.atoms.loc[self.atoms["image"] == image_id, "token"].map(names.index).to_numpy()
        points = hs_plot.markers.Points(offsets=where, color=token_colours(len(names))[tokens], sizes=6)
        table = self.rings[self.rings["image"] == image_id]
        colours = ring_symbol_colours(list(table["symbol"].value_counts().index))
        polygons = hs_plot.markers.Polygons(
            verts=[where[list(members)] for members in table["atoms"]],
            facecolors=[colours.get(s, (0.6, 0.6, 0.6, 1.0)) for s in table["symbol"]], alpha=0.45)
        return [points, polygons]

    def _calibration(self, image_id: str, signal) -> Calibration:
        if signal is not None:
            return signal_calibration(signal)
        if image_id in self._calibrations:
            return self._calibrations[image_id]
        pixel = self.pixel_size_nm(image_id)
        return Calibration(scale=pixel, units="nm") if pixel is not None else Calibration(scale=1.0, units="px")

    # -- files -----------------------------------------------------------------------------------------------

    def save(self, directory, *, force: bool = False) -> Path:
        """Write the run directory (INTERFACE.md: atoms.csv, bonds.csv, rings.csv, grammar.txt, tokens.npz,
        parses/, summary.json, report.html, overlays/ ...), the files the command line wrote for this run.

        Written atomically like a run's: a non-empty ``directory`` is replaced only with ``force``.

        Returns
        -------
        Path
        """
        directory = Path(directory)
        if directory.resolve() == self.run_dir.resolve():
            return directory
        with atomic_run_dir(directory, force=force) as staging:
            shutil.copytree(self.run_dir, staging, dirs_exist_ok=True)
        return directory

    # -- display ---------------------------------------------------------------------------------------------

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        images = self.summary.get("images", {})
        rows = []
        for image_id, info in images.items():
            pixel = info.get("pixel_size_nm")
            size = f"{info['shape'][0]} x {info['shape'][1]} px" + (f", {pixel:.4g} nm/px" if pixel else "")
            rows.append((image_id, f"{size}; {info['n_atoms']} atoms, {info['n_rings']} rings, "
                                   f"{info['bits_per_atom']:.3g} bits/atom, disorder {info['disorder']:.3f}"))
        rows += [("tokens", format_counts(dict(zip(self.token_model.names,
                                                   (f"{a:.1%}" for a in self.token_model.abundances), strict=True)))),
                 ("grammar", f"{self.grammar.n_rules} rules, levels {self.grammar.levels[0]}-{self.grammar.levels[-1]}, "
                             f"{self.grammar.description_length_bits():.1f} bits"),
                 ("tables", "atoms, bonds, rings (pandas); .grammar, .parses, .summary; .plot(), .save(dir)")]
        return f"Result {self.summary.get('name', '')!r}: {plural(len(images), 'micrograph')}", rows

    def __repr__(self) -> str:
        return summary_text(*self._summary())

    def _repr_html_(self) -> str:
        return summary_html(*self._summary())


def load_run(run_dir) -> Result:
    """Read a run directory (written by ``motifgram run``, ``motifgram parse`` or :meth:`Result.save`).

    Parameters
    ----------
    run_dir : str or Path

    Returns
    -------
    Result

    Raises
    ------
    MotifgramError
        When a file of the run directory is missing or unreadable (the message names it).
    """
    run_dir = Path(run_dir)
    for name in (rundir.ATOMS_CSV, rundir.BONDS_CSV, rundir.RINGS_CSV, rundir.GRAMMAR_TXT, rundir.TOKENS_NPZ,
                 rundir.SUMMARY_JSON):
        if not (run_dir / name).is_file():
            raise MotifgramError(f"{run_dir / name}: missing; give a run directory written by 'motifgram run'")
    summary = rundir.read_summary(run_dir)
    pixel = pd.Series({image_id: info.get("pixel_size_nm") for image_id, info in summary.get("images", {}).items()},
                      dtype=float)
    atoms = pd.read_csv(run_dir / rundir.ATOMS_CSV, dtype={"image": str, "token": str}, keep_default_na=False,
                        na_values={"x_nm": [""], "y_nm": [""]})
    for column in ("x_nm", "y_nm"):  # run directories written before the nm columns
        if column not in atoms:
            atoms[column] = atoms[column[0]] * atoms["image"].map(pixel)
    bonds = pd.read_csv(run_dir / rundir.BONDS_CSV, dtype={"image": str})
    rings = pd.read_csv(run_dir / rundir.RINGS_CSV, dtype={"image": str, "symbol": str, "atoms": str},
                        keep_default_na=False)
    rings["atoms"] = [tuple(int(a) for a in text.split()) for text in rings["atoms"]]
    _add_lengths(atoms, bonds, rings, pixel)
    parses = {}
    for image_id in summary.get("images", {}):
        path = rundir.parse_path(run_dir, image_id)
        if path.is_file():
            parses[image_id] = ParseNode.from_dict(json.loads(path.read_text()))
    return Result(run_dir=run_dir, atoms=atoms, bonds=bonds, rings=rings, grammar=rundir.read_grammar_file(run_dir),
                  parses=parses, summary=summary, token_model=TokenModel.load(run_dir / rundir.TOKENS_NPZ))


def _add_lengths(atoms: pd.DataFrame, bonds: pd.DataFrame, rings: pd.DataFrame, pixel: pd.Series) -> None:
    """Bond lengths and ring centroids (px and nm), from the atoms' positions."""
    bonds["length_px"] = np.nan
    rings["x"], rings["y"] = np.nan, np.nan
    for image_id, members in atoms.groupby("image", sort=False):
        xy = members[["x", "y"]].to_numpy(dtype=np.float64)
        mine = bonds["image"] == image_id
        i, j = bonds.loc[mine, "i"].to_numpy(), bonds.loc[mine, "j"].to_numpy()
        bonds.loc[mine, "length_px"] = np.hypot(*(xy[j] - xy[i]).T)
        mine = rings["image"] == image_id
        centres = np.array([xy[list(r)].mean(axis=0) for r in rings.loc[mine, "atoms"]]).reshape(-1, 2)
        rings.loc[mine, "x"], rings.loc[mine, "y"] = centres[:, 0], centres[:, 1]
    bonds["length_nm"] = bonds["length_px"] * bonds["image"].map(pixel)
    rings["x_nm"] = rings["x"] * rings["image"].map(pixel)
    rings["y_nm"] = rings["y"] * rings["image"].map(pixel)
