"""Run specs: the YAML file that drives ``motifgram run``.

A spec is a tree of frozen section dataclasses (:class:`Spec` at the root). Every key is one dataclass
field: its default lives in the field, and its description and constraints (range, oddness, pattern,
whether ``"auto"`` is allowed) live in the field's metadata. One generic walker reads those fields to
validate a parsed YAML mapping, to build the dataclasses, to write them back (:meth:`Spec.to_dict`) and to
generate the JSON Schema (:func:`json_schema`), so adding a key means adding a field.

Conventions in the YAML:

- ``auto`` (the string) stands for ``None`` in Python: the stage chooses the value and logs it.
  ``null`` is never accepted; one key has one type.
- Booleans are not integers (``k: true`` is an error); integers are accepted where numbers are expected.
- Paths are relative to the folder of the spec file (or ``base_dir`` for a spec given as a dict);
  ``output.dir`` is relative to the current working directory.
- Validation collects every problem as ``(yaml_path, message)``, e.g.
  ``("tokens.k", 'expected int >= 1 or "auto", got "eight"')``; :func:`load_spec` raises them all at once
  in one :class:`~motifgram.engine.errors.SpecError`.
"""

import dataclasses
import difflib
import glob
import importlib.resources
import json
import logging
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import yaml

from motifgram.engine.errors import SpecError
from motifgram.engine.simspec import check_simulation

__all__ = [
    "IMAGE_SUFFIXES",
    "SIMULATION_KINDS",
    "SimulateSpec",
    "InputSpec",
    "DetectSpec",
    "FeaturesSpec",
    "TokensSpec",
    "GraphSpec",
    "GrammarSpec",
    "CompareSpec",
    "EngineSpec",
    "OutputSpec",
    "Spec",
    "load_spec",
    "read_spec_file",
    "validate_spec",
    "json_schema",
    "bundled_spec_path",
]

log = logging.getLogger(__name__)

#: File suffixes (lower case) that ``inputs[].path`` may name.
IMAGE_SUFFIXES = (
    ".npy", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".emd", ".hspy", ".hdf5", ".h5", ".mrc",
)

SimulationKind = Literal["graphene", "graphene_gb", "mos2", "perovskite", "cairo", "crn", "tbl_mos2"]
#: Kinds of synthetic micrograph that ``inputs[].simulate.kind`` may name.
SIMULATION_KINDS = typing.get_args(SimulationKind)

# Detection methods; "grid" (lattice-cell sampling) is reserved for a later release.
DetectMethod = Literal["atoms", "grid"]
SpotKind = Literal["atoms", "ring_centres", "dumbbells"]
FeatureDescriptor = Literal["auto", "zernike", "zernike_context", "intensity"]

_AUTO = "auto"
# (regular expression, the same in words)
_NAME_PATTERN = (r"^[^/\\]+$", "a non-empty name without / or \\ (it names files)")
_TOKEN_PATTERN = (r"^[A-Za-z][A-Za-z0-9_]*$", "a letter followed by letters, digits or _")
_DATASET_PATTERN = (r"^/\S*$", "an HDF5 dataset path starting with /, e.g. /data")
_ADDRESS_PATTERN = (r"^(tcp|tls)://\S+$", "a scheduler address such as tcp://host:8786")


def _key(default=dataclasses.MISSING, *, doc, auto=None, minimum=None, maximum=None, exclusive_minimum=None,
         odd=False, pattern=None, min_items=None, unique=False, ordered=False, relative=False, glob_=False,
         must_exist=False, extra=False):
    """A spec key: a dataclass field whose metadata drives validation, writing and the JSON Schema.

    ``auto`` (default: whether the type admits ``None``) allows the string ``"auto"`` for ``None``.
    ``pattern`` is a pair (regular expression, the same in words for messages).
    ``minimum``, ``maximum``, ``exclusive_minimum``, ``odd`` and ``pattern`` apply to the value, or to each
    item of a list. ``min_items``, ``unique`` and ``ordered`` apply to a list. ``relative`` resolves a path
    against the spec's folder; ``glob_`` lets it be a glob that must match readable images; ``must_exist``
    requires it to exist. ``extra`` marks a ``dict`` field that collects all keys not named by a field.
    """
    meta = {"doc": doc, "auto": auto, "minimum": minimum, "maximum": maximum,
            "exclusive_minimum": exclusive_minimum, "odd": odd, "pattern": pattern, "min_items": min_items,
            "unique": unique, "ordered": ordered, "relative": relative, "glob": glob_,
            "must_exist": must_exist, "extra": extra}
    if isinstance(default, type) and dataclasses.is_dataclass(default) or default is dict:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------------------
# Cross-key rules, declared per section in ``_rules`` and checked by the walker.


@dataclass(frozen=True)
class _ExactlyOne:
    """Exactly one of two keys must be given (a given but invalid value counts as given)."""

    first: str
    second: str
    on_invalid: ClassVar = True

    @property
    def keys(self):
        return (self.first, self.second)

    def apply(self, values, path, ctx):
        if (values[self.first] is None) == (values[self.second] is None):
            ctx.problem(path, f"give exactly one of '{self.first}' or '{self.second}'")
        return values

    def schema(self):
        return {"oneOf": [{"required": [self.first]}, {"required": [self.second]}]}


@dataclass(frozen=True)
class _OnlyWith:
    """A key may be set (not auto, or not its default ``unset``) only when another key has a given value."""

    key: str
    other: str
    value: str
    unset: str | None = None  # the key's value that counts as not set (None: auto)
    on_invalid: ClassVar = False

    @property
    def keys(self):
        return (self.key, self.other)

    def apply(self, values, path, ctx):
        if values[self.key] != self.unset and values[self.other] != self.value:
            what = "set" if self.unset is None else _show(values[self.key])
            ctx.problem(_join(path, self.key),
                        f"conflicting options: {_join(path, self.key)} is {what} but {_join(path, self.other)} is "
                        f"{_show(values[self.other])}; set {self.other}: {self.value} or remove {self.key}")
        return values

    def schema(self):
        unset = _AUTO if self.unset is None else self.unset
        return {"if": {"required": [self.key], "properties": {self.key: {"not": {"const": unset}}}},
                "then": {"required": [self.other], "properties": {self.other: {"const": self.value}}}}


@dataclass(frozen=True)
class _LengthEquals:
    """A list key may be set only with an int key, and must then have as many items as it says."""

    key: str
    count: str
    on_invalid: ClassVar = False

    @property
    def keys(self):
        return (self.key, self.count)

    def apply(self, values, path, ctx):
        items, count = values[self.key], values[self.count]
        if items is not None and count is None:
            ctx.problem(_join(path, self.key),
                        f"conflicting options: {len(items)} {self.key} given but {_join(path, self.count)} is auto "
                        f"(the number is chosen during the run); set {self.count}: {len(items)} or remove "
                        f"{self.key}")
        elif items is not None and len(items) != count:
            ctx.problem(_join(path, self.key),
                        f"conflicting options: {len(items)} {self.key} given but {_join(path, self.count)} is "
                        f"{count}; give one per {self.count} or remove {self.key}")
        return values

    def schema(self):  # the count itself is not expressible in JSON Schema
        return {"if": {"required": [self.key], "properties": {self.key: {"not": {"const": _AUTO}}}},
                "then": {"required": [self.count], "properties": {self.count: {"not": {"const": _AUTO}}}}}


@dataclass(frozen=True)
class _ExpandInputs:
    """Expand globs into one input per file (sorted) and fill in default groups and unique ids."""

    key: str
    on_invalid: ClassVar = False

    @property
    def keys(self):
        return (self.key,)

    def apply(self, values, path, ctx):
        expanded = []  # (index, InputSpec with a file path or a simulation, explicit id)
        for i, item in enumerate(values[self.key]):
            if item.simulate is not None:
                expanded.append((i, item, item.id))
                continue
            matches = _match_images(item.path, ctx.base_dir)
            if item.id is not None and len(matches) > 1:
                ctx.problem(_join(f"{_join(path, self.key)}[{i}]", "id"),
                            f"'id' names one input but the path matches {len(matches)} files; remove 'id' "
                            f"(ids default to the file stems)")
            expanded += [(i, dataclasses.replace(item, path=m), item.id) for m in matches]
        taken, explicit = set(), {}
        for i, given in dict.fromkeys((i, given) for i, _, given in expanded):
            if given is None:
                continue
            if given in explicit:
                ctx.problem(_join(f"{_join(path, self.key)}[{i}]", "id"),
                            f"duplicate id {_show(given)} (also inputs[{explicit[given]}]); ids must be unique")
            explicit.setdefault(given, i)
            taken.add(given)
        inputs = []
        for _, item, given in expanded:
            stem = item.path.stem if item.simulate is None else item.simulate.kind
            ident = given
            if ident is None:
                base = stem if item.simulate is None else f"{item.simulate.kind}-{item.simulate.seed}"
                ident, n = base, 1
                while ident in taken:
                    n += 1
                    ident = f"{base}-{n}"
                taken.add(ident)
            inputs.append(dataclasses.replace(item, id=ident, group=item.group if item.group is not None else stem))
        return {**values, self.key: tuple(inputs)}

    def schema(self):
        return None


@dataclass(frozen=True)
class _SimulatorAccepts:
    """The simulator's own checks of its options (unknown names, ranges), so that ``validate`` rejects what
    ``run`` would: ``inputs[0].simulate.sise: unknown option 'sise' ...; did you mean "size"?``."""

    on_invalid: ClassVar = False
    keys: ClassVar = ("kind", "size", "seed", "options")

    def apply(self, values, path, ctx):
        options = {name: value for name, value in values["options"].items() if value is not _INVALID}
        for problem in check_simulation(values["kind"], values["size"], values["seed"], options, path=path)[1]:
            ctx.problem(*problem)
        return values

    def schema(self):
        return None  # the options are listed per kind by motifgram.engine.simspec.simulate_options


def _has_magic(text):
    return re.search(r"[*?[]", text) is not None


def _glob(path, base_dir):
    """Sorted absolute paths matching ``path`` (a glob below ``base_dir``, whose own name is taken literally)."""
    rel = path.relative_to(base_dir) if path.is_relative_to(base_dir) else path
    return sorted(Path(os.path.normpath(base_dir / p)) for p in glob.glob(str(rel), root_dir=base_dir, recursive=True))


def _match_images(path, base_dir):
    """Readable image files that a path or glob names, sorted."""
    rel = path.relative_to(base_dir) if path.is_relative_to(base_dir) else path
    if not _has_magic(str(rel)):
        return [path]
    return [p for p in _glob(path, base_dir) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


# ---------------------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True, kw_only=True)
class SimulateSpec:
    """A synthetic micrograph made by ``motifgram.engine.simulate`` (no file needed)."""

    kind: SimulationKind = _key(doc="What to simulate: " + ", ".join(SIMULATION_KINDS) + ".")
    size: int = _key(512, doc="Image side length in px (the image is size x size).", minimum=64)
    seed: int = _key(0, doc="Seed of the simulation's random numbers (defects, noise).", minimum=0)
    options: dict[str, float | None] = _key(
        dict, extra=True,
        doc="All other keys under 'simulate' are options of the simulator for this kind (e.g. "
            "stone_wales_density, dose; see motifgram.engine.simulate.simulate_options); the simulator "
            "checks them. auto: the simulator's choice.")

    _rules: ClassVar = (_SimulatorAccepts(),)


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """One micrograph: a file (or a glob of files) or a simulation. After loading, one per file."""

    path: Path | None = _key(
        None, auto=False, relative=True, glob_=True,
        doc="Image file, relative to the spec file's folder; a glob (data/*.tif) expands to one input per "
            "file, sorted. Formats: " + " ".join(IMAGE_SUFFIXES) + ". Give this or 'simulate'.")
    simulate: SimulateSpec | None = _key(None, auto=False, doc="A synthetic micrograph instead of a file.")
    pixel_size: float | None = _key(
        None, exclusive_minimum=0.0, doc="Pixel size in nm; overrides the file's. auto: from the file.")
    dataset: str | None = _key(
        None, pattern=_DATASET_PATTERN,
        doc="HDF5 files (.h5 .hdf5 .emd .hspy): the path of the dataset holding the image, e.g. /data. auto: the "
            "file's one image (a file with several lists them).")
    frame: int | None = _key(
        None, minimum=0, doc="For a stack of frames (frames first): the frame to analyse. auto: the file must hold "
                             "one 2-D image.")
    group: str | None = _key(
        None, pattern=_NAME_PATTERN,
        doc="Material or condition this micrograph belongs to, for comparison. auto: the file stem, or the "
            "simulated kind.")
    id: str | None = _key(
        None, pattern=_NAME_PATTERN,
        doc="Name of this micrograph in the outputs. auto: the file stem (with -2, -3, ... added when stems "
            "repeat), or '<kind>-<seed>' for a simulation.")

    _rules: ClassVar = (_ExactlyOne("path", "simulate"),)


@dataclass(frozen=True, kw_only=True)
class DetectSpec:
    """Finding atom columns."""

    method: DetectMethod = _key(
        "atoms", doc="How to find sites: 'atoms' (peaks of atom columns) or 'grid' (sample points on a triangular "
                     "lattice, for images whose columns overlap, e.g. twisted bilayers; atoms.csv then lists the "
                     "sample points).")
    spacing: float | None = _key(
        None, exclusive_minimum=0.0, doc="grid only: spacing of the sample points in px. auto: one lattice period.")
    lattice_period: float | None = _key(
        None, exclusive_minimum=0.0, doc="Lattice period in px. auto: from the image's Fourier transform.")
    min_distance: float | None = _key(
        None, exclusive_minimum=0.0, doc="Least distance between two atom columns in px. auto: from the period.")
    threshold: float | None = _key(
        None, minimum=0.0, maximum=1.0,
        doc="Least peak height above the local background (denoised image), as a fraction of the image's "
        "intensity range (0.1-99.9 percentiles). auto: from the noise and the strongest peaks.")
    denoise_sigma: float | None = _key(
        None, minimum=0.0, doc="Gaussian smoothing before peak finding in px (0: none). auto: from the period.")
    refine: bool = _key(True, doc="Refine positions to sub-pixel precision by a Gaussian fit.")
    dark_atoms: bool = _key(False, doc="Atoms are dark on a bright background (e.g. bright-field); invert first.")
    spots: SpotKind = _key(
        "atoms",
        doc="What the bright spots are: 'atoms' (atom columns, the sites themselves), 'ring_centres' (the "
            "centres of the atom rings, as in aberration-corrected HRTEM of graphene, whose bright spots are "
            "the hexagon centres). With ring_centres the sites are the atoms of the dual lattice: one per "
            "triangle of bonded spots, at its centroid, bonded to the sites of the triangles it shares an edge "
            "with; a face of 5-8 spots without a centre spot (a dim pentagon centre) gets one "
            "(motifgram.engine.dual). Their intensity is the image at the site (bilinear). 'dumbbells': the "
            "spots are atom columns that come in close pairs (dumbbells: Si, Ge, GaAs, diamond [110]); each pair "
            "(mutual nearest spots closer than 0.75 x the median distance of a spot to its second-nearest), and "
            "each spot that is an unresolved pair, becomes one site at the pair's centre, with the mean intensity "
            "of its spots (motifgram.engine.pairs); a lattice without close pairs keeps its spots. method: atoms "
            "only.")

    _rules: ClassVar = (_OnlyWith("spots", "method", "atoms", unset="atoms"),)


@dataclass(frozen=True, kw_only=True)
class FeaturesSpec:
    """Features of each site's neighbourhood: Zernike moments (atoms) or intensity quantiles (grid points)."""

    n_max: int = _key(10, minimum=2, maximum=20, doc="Highest Zernike order (10 gives 36 moments).")
    patch_size: int | None = _key(
        None, minimum=5, odd=True, doc="Diameter of the disk around each site in px, odd. auto: about one "
                                        "lattice period + 1.")
    descriptor: FeatureDescriptor = _key(
        "auto", doc="What the tokens are learned from: 'zernike' (rotation invariants of the disk; atoms), "
                  "'zernike_context' (the invariants normalised to unit norm, plus each column's peak intensity "
                  "and its dimmest nearest neighbour's: tells a metal from an equally bright substituted "
                  "chalcogen in a compound such as MoS2; on one-element lattices it gives defect neighbourhoods "
                  "their own token; atoms) or 'intensity' (quantiles of the pixel values within 1.5 lattice "
                  "periods: translation invariant, for grid points, whose place in the unit cell is arbitrary). "
                  "auto: 'intensity' with detect.method grid, else 'zernike'.")


@dataclass(frozen=True, kw_only=True)
class TokensSpec:
    """Learning the motif tokens (the vocabulary) with a Gaussian mixture."""

    k: int | None = _key(None, minimum=1, doc="Number of tokens. auto: chosen by BIC within k_range.")
    k_range: tuple[int, int] = _key(
        (1, 8), minimum=1, maximum=20, ordered=True, doc="Smallest and largest k tried when k is auto.")
    names: tuple[str, ...] | None = _key(
        None, pattern=_TOKEN_PATTERN, unique=True,
        doc="Token names, in the order of the learned classes: exactly k of them, so k must be given too. "
            "Each a letter followed by letters, digits or _. auto: A, B, C, ...")
    n_init: int = _key(4, minimum=1, doc="Number of EM restarts; the best fit is kept.")
    max_iter: int = _key(200, minimum=1, doc="Most EM iterations per restart.")

    _rules: ClassVar = (_LengthEquals("names", "k"),)


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """The atom graph: bonds and rings."""

    bond_factor: float | None = _key(
        None, minimum=1.0, maximum=2.5,
        doc="A bond joins atoms closer than bond_factor x the local nearest-neighbour distance. auto: from "
            "the first minimum of the bond-length histogram. With detect.spots: ring_centres it bonds the spots "
            "(which triangles of spots become atoms); the atoms' bonds are then those of the dual lattice.")
    max_ring: int = _key(12, minimum=3, maximum=30, doc="Largest ring (face) size kept.")
    border: float | None = _key(
        None, minimum=0.0, doc="Rings with an atom closer than this to the image edge are dropped, in px. "
                               "auto: one lattice period.")


@dataclass(frozen=True, kw_only=True)
class GrammarSpec:
    """Inducing the grammar (minimum description length)."""

    min_count: int = _key(2, minimum=1, doc="A motif must occur at least this often to become a rule.")
    max_motif_size: int = _key(6, minimum=2, maximum=12, doc="Most parts in one motif rule.")
    min_domain_size: int | None = _key(
        None, minimum=1, doc="Fewest rings in a domain (a region of one repeated ring). auto: from the data.")


@dataclass(frozen=True, kw_only=True)
class CompareSpec:
    """Comparing this run's grammar with reference grammars."""

    references: dict[str, Path] = _key(
        dict, relative=True, must_exist=True,
        doc="Reference label -> run directory or grammar file, relative to the spec file's folder; each "
            "micrograph group is classified by its nearest reference.")


@dataclass(frozen=True, kw_only=True)
class EngineSpec:
    """Where the per-micrograph work runs."""

    executor: Literal["local", "dask"] = _key("local", doc="'local' (this process) or 'dask' (a Dask cluster).")
    workers: int | None = _key(None, minimum=1, doc="Number of parallel workers. auto: the number of CPU cores.")
    address: str | None = _key(
        None, pattern=_ADDRESS_PATTERN,
        doc="Address of a running Dask scheduler (tcp://host:port); only with executor: dask. auto: start a "
            "local cluster.")

    _rules: ClassVar = (_OnlyWith("address", "executor", "dask"),)


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """What a run writes, and where."""

    dir: str | None = _key(
        None, doc="Run directory, relative to the current working directory (--out overrides it). "
                  "auto: runs/<name>.")
    overlays: bool = _key(True, doc="Write overlays/<image>.png (atoms coloured by token, rings by symbol).")
    report: bool = _key(True, doc="Write report.html and tokens.png (the token gallery as a picture).")


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A motifgram run: which micrographs, and how to learn and apply their grammar."""

    name: str = _key("motifgram-run", pattern=_NAME_PATTERN, doc="Name of the run (and of its grammar).")
    seed: int = _key(0, minimum=0, doc="Seed of all random choices in learning (EM initialisation).")
    inputs: tuple[InputSpec, ...] = _key(
        min_items=1, doc="The micrographs: a list of {path: FILE} or {simulate: {kind: ...}} items.")
    detect: DetectSpec = _key(DetectSpec, doc=DetectSpec.__doc__)
    features: FeaturesSpec = _key(FeaturesSpec, doc=FeaturesSpec.__doc__)
    tokens: TokensSpec = _key(TokensSpec, doc=TokensSpec.__doc__)
    graph: GraphSpec = _key(GraphSpec, doc=GraphSpec.__doc__)
    grammar: GrammarSpec = _key(GrammarSpec, doc=GrammarSpec.__doc__)
    compare: CompareSpec = _key(CompareSpec, doc=CompareSpec.__doc__)
    engine: EngineSpec = _key(EngineSpec, doc=EngineSpec.__doc__)
    output: OutputSpec = _key(OutputSpec, doc=OutputSpec.__doc__)

    _rules: ClassVar = (_ExpandInputs("inputs"),)

    def to_dict(self):
        """The spec as plain YAML/JSON data with every default filled in (``None`` written as ``"auto"``).

        ``load_spec(spec.to_dict()) == spec``: paths are absolute and input ids and groups explicit.
        """
        return _to_plain(self, Spec, {})

    @property
    def feature_descriptor(self) -> str:
        """``features.descriptor`` with ``auto`` resolved: intensity quantiles for grid points (``detect.method:
        grid``), else Zernike invariants.

        Not ``zernike_context`` by default: on one-element lattices its norm-scaled invariants give defect
        neighbourhoods a token of their own (see ``examples/`` and ``benchmarks/README.md``).
        """
        if self.features.descriptor != "auto":
            return self.features.descriptor
        return "intensity" if self.detect.method == "grid" else "zernike"

    def run_dir(self):
        """The run directory: ``output.dir``, else ``runs/<name>``, relative to the current directory.

        Returns
        -------
        pathlib.Path
            Absolute path.
        """
        return Path(self.output.dir if self.output.dir is not None else Path("runs") / self.name).absolute()


# ---------------------------------------------------------------------------------------------------------
# The walker


class _Invalid:
    """Marker for a value that failed validation (its problem is already recorded)."""


_INVALID = _Invalid()


@dataclass
class _Context:
    base_dir: Path
    problems: list = field(default_factory=list)

    def problem(self, path, message):
        self.problems.append((path, message))


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


def _show(value):
    """A value as the user wrote it in YAML, shortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _split_optional(tp):
    """``(inner, True)`` for ``X | None``, else ``(tp, False)``."""
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return (rest[0] if len(rest) == 1 else typing.Union[rest]), True
    return tp, False


def _fields(cls):
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _allows_auto(tp, meta):
    inner, optional = _split_optional(tp)
    return optional if meta.get("auto") is None else meta["auto"]


def _describe(tp, meta):
    """What a key expects, in words: ``int >= 1 or "auto"``."""
    inner, _ = _split_optional(tp)
    text = _describe_inner(inner, meta)
    return f'{text} or "auto"' if _allows_auto(tp, meta) else text


def _range_words(meta):
    lo, hi, xlo = meta.get("minimum"), meta.get("maximum"), meta.get("exclusive_minimum")
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if xlo is not None:
        return f" > {xlo}"
    if lo is not None:
        return f" >= {lo}"
    return f" <= {hi}" if hi is not None else ""


def _describe_inner(tp, meta):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return ("odd int" if meta.get("odd") else "int") + _range_words(meta)
    if tp is float:
        return "number" + _range_words(meta)
    if tp is str:
        return "string"
    if tp is Path:
        return "path (a string)"
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if origin is tuple and args[-1] is Ellipsis:
        return ("non-empty " if meta.get("min_items") else "") + f"list, each item: {_describe_inner(args[0], meta)}"
    if origin is tuple:
        return f"[low, high], each: {_describe_inner(args[0], meta)}"
    if origin is dict:
        return "mapping"
    words = ["true/false" if a is bool else _describe_inner(a, {})  # a union of scalars
             for a in args if not (a is int and float in args)]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def _convert(tp, value, meta, path, ctx):
    """Check ``value`` (parsed YAML) against a field's type and metadata; return it converted or _INVALID."""
    inner, _ = _split_optional(tp)
    if _allows_auto(tp, meta) and value == _AUTO:
        return None
    converted = _convert_inner(inner, value, meta, path, ctx)
    if converted is None:  # wrong type: not recorded yet
        ctx.problem(path, f"expected {_describe(tp, meta)}, got {_show(value)}")
        return _INVALID
    return converted


def _convert_inner(tp, value, meta, path, ctx):
    """Converted value, _INVALID (problem recorded) or None (wrong type, to be recorded by the caller)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _convert_section(tp, value, path, ctx) if isinstance(value, Mapping) else None
    if origin is tuple:
        return _convert_sequence(tp, value, meta, path, ctx)
    if origin is dict:
        if not isinstance(value, Mapping):
            return None
        out = {}
        for key, item in value.items():
            item_path = _join(path, key)
            if not isinstance(key, str):
                ctx.problem(item_path, f"keys must be strings, got {_show(key)}")
                out = _INVALID
                continue
            item = _convert(args[1], item, meta, item_path, ctx)
            if out is not _INVALID and item is not _INVALID:
                out[key] = item
            else:
                out = _INVALID
        return out
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        close = difflib.get_close_matches(value, [str(a) for a in args], n=1) if isinstance(value, str) else []
        hint = f'; did you mean "{close[0]}"?' if close else ""
        ctx.problem(path, f"expected {_describe_inner(tp, meta)}, got {_show(value)}{hint}")
        return _INVALID
    if origin in (types.UnionType, typing.Union):  # a union of scalar types, e.g. simulator options
        for member in args:
            if _convert_scalar(member, value, {}, path, ctx) is not None:
                return value
        return None
    return _convert_scalar(tp, value, meta, path, ctx)


def _convert_scalar(tp, value, meta, path, ctx):
    if tp is bool:
        return value if isinstance(value, bool) else None
    if tp is int or tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or (tp is int and isinstance(value, float)):
            return None
        if not math.isfinite(value):
            return None
        value = tp(value)
        lo, hi, xlo = meta.get("minimum"), meta.get("maximum"), meta.get("exclusive_minimum")
        if ((lo is not None and value < lo) or (hi is not None and value > hi) or (xlo is not None and value <= xlo)
                or (meta.get("odd") and value % 2 == 0)):
            ctx.problem(path, f"expected {_describe_inner(tp, meta)}, got {_show(value)}")
            return _INVALID
        return value
    if tp is str or tp is Path:
        if not isinstance(value, str):
            return None
        if meta.get("pattern") and not re.search(meta["pattern"][0], value):
            ctx.problem(path, f"expected {meta['pattern'][1]}, got {_show(value)}")
            return _INVALID
        return value if tp is str else _convert_path(value, meta, path, ctx)
    raise TypeError(f"spec field type {tp!r} is not supported")  # a bug in a section dataclass


def _convert_path(text, meta, path, ctx):
    if not text.strip():
        ctx.problem(path, "expected a path, got an empty string")
        return _INVALID
    full = Path(text).expanduser()
    if meta.get("relative"):
        full = Path(os.path.normpath(ctx.base_dir / full))
    where = f"'{text}' (relative to {ctx.base_dir})"
    if meta.get("glob") and _has_magic(text):
        if not _match_images(full, ctx.base_dir):
            found = sorted({p.suffix.lower() or "(no suffix)" for p in _glob(full, ctx.base_dir)})
            extra = f"; it matches only {', '.join(found)} files" if found else ""
            ctx.problem(path, f"no file matches {where}{extra}; check the path or the glob "
                              f"(readable: {' '.join(IMAGE_SUFFIXES)})")
            return _INVALID
    elif meta.get("glob"):
        if full.is_dir():
            ctx.problem(path, f"{where} is a folder; give a file or a glob such as '{text.rstrip('/')}/*.tif'")
            return _INVALID
        if not full.is_file():
            ctx.problem(path, f"no file matches {where}; check the path or the glob")
            return _INVALID
        if full.suffix.lower() not in IMAGE_SUFFIXES:
            ctx.problem(path, f"unsupported format '{full.suffix}' of {where}; readable: {' '.join(IMAGE_SUFFIXES)}")
            return _INVALID
    elif meta.get("must_exist") and not full.exists():
        ctx.problem(path, f"{where} does not exist; check the path")
        return _INVALID
    return full


def _convert_sequence(tp, value, meta, path, ctx):
    if not isinstance(value, list | tuple):
        return None
    args = typing.get_args(tp)
    fixed = args[-1] is not Ellipsis
    if fixed and len(value) != len(args):
        return None
    if meta.get("min_items") and len(value) < meta["min_items"]:
        ctx.problem(path, f"expected {_describe_inner(tp, meta)}, got an empty list")
        return _INVALID
    items = []
    for i, item in enumerate(value):
        item_tp = args[i] if fixed else args[0]
        converted = _convert_inner(item_tp, item, meta, f"{path}[{i}]", ctx)
        if converted is None:
            ctx.problem(f"{path}[{i}]", f"expected {_describe_inner(item_tp, meta)}, got {_show(item)}")
            converted = _INVALID
        items.append(converted)
    if any(item is _INVALID for item in items):
        return _INVALID
    if meta.get("unique") and len(set(items)) != len(items):
        ctx.problem(path, f"items must be distinct, got {_show(list(value))}")
        return _INVALID
    if meta.get("ordered") and list(items) != sorted(items):
        ctx.problem(path, f"expected [low, high] with low <= high, got {_show(list(value))}")
        return _INVALID
    return tuple(items)


def _convert_section(cls, data, path, ctx):
    """Build section ``cls`` from a mapping, recording every problem; _INVALID if there was any."""
    n_problems = len(ctx.problems)
    fields = _fields(cls)
    extra = next(((f, tp) for f, tp in fields if f.metadata.get("extra")), None)
    known = [f.name for f, _ in fields if not f.metadata.get("extra")]
    values, extras = {}, {}
    for key, value in data.items():
        if not isinstance(key, str):
            ctx.problem(_join(path, _show(key)), f"keys must be strings, got {_show(key)}")
        elif key not in known and extra is not None:
            extras[key] = _convert(typing.get_args(extra[1])[1], value, extra[0].metadata, _join(path, key), ctx)
        elif key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f'did you mean "{close[0]}"?' if close else "expected one of: " + ", ".join(known)
            ctx.problem(_join(path, key), f"unknown key; {hint}")
    for f, tp in fields:
        if f.metadata.get("extra"):
            continue
        if f.name in data:
            values[f.name] = _convert(tp, data[f.name], f.metadata, _join(path, f.name), ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            ctx.problem(_join(path, f.name), f"required key is missing: {f.metadata['doc']}")
            values[f.name] = _INVALID
        else:
            values[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if extra is not None:
        values[extra[0].name] = extras
    for rule in getattr(cls, "_rules", ()):
        if rule.on_invalid or all(values[name] is not _INVALID for name in rule.keys):
            values = rule.apply(values, path, ctx)
    if len(ctx.problems) > n_problems:
        return _INVALID
    return cls(**values)


# ---------------------------------------------------------------------------------------------------------
# Writing back and the JSON Schema


def _to_plain(value, tp, meta):
    inner, _ = _split_optional(tp)
    if value is None:
        return _AUTO
    if dataclasses.is_dataclass(inner):
        out = {}
        for f, ftp in _fields(inner):
            item = getattr(value, f.name)
            if f.metadata.get("extra"):
                out.update({k: _to_plain(v, typing.get_args(ftp)[1], f.metadata) for k, v in item.items()})
            elif item is not None or _allows_auto(ftp, f.metadata):
                out[f.name] = _to_plain(item, ftp, f.metadata)
        return out
    if isinstance(value, tuple):
        return [_to_plain(v, typing.get_args(inner)[0], meta) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v, typing.get_args(inner)[1], meta) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _schema_for(tp, meta, defs):
    inner, _ = _split_optional(tp)
    schema = _schema_inner(inner, meta, defs)
    if _allows_auto(tp, meta):
        schema = {"anyOf": [schema, {"const": _AUTO}]}
    return schema


def _schema_inner(tp, meta, defs):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # placeholder against recursion
            defs[tp.__name__] = _schema_section(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin is tuple:
        schema = {"type": "array"}
        if args[-1] is Ellipsis:
            schema["items"] = _schema_inner(args[0], meta, defs)
            if meta.get("min_items"):
                schema["minItems"] = meta["min_items"]
            if meta.get("unique"):
                schema["uniqueItems"] = True
        else:
            schema |= {"prefixItems": [_schema_inner(a, meta, defs) for a in args], "items": False,
                       "minItems": len(args), "maxItems": len(args)}
        return schema
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_for(args[1], meta, defs)}
    if origin in (types.UnionType, typing.Union):
        return {"type": sorted({_schema_inner(a, {}, defs)["type"] for a in args})}
    schema = {"type": {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}[tp]}
    for key, word in (("minimum", "minimum"), ("maximum", "maximum"), ("exclusive_minimum", "exclusiveMinimum"),
                      ("pattern", "pattern")):
        if meta.get(key) is not None and (tp in (int, float) or key == "pattern"):
            schema[word] = meta[key][0] if key == "pattern" else meta[key]
    if meta.get("odd") and tp is int:
        schema["not"] = {"multipleOf": 2}
    return schema


def _schema_section(cls, defs):
    props, required, additional = {}, [], False
    for f, tp in _fields(cls):
        if f.metadata.get("extra"):
            additional = _schema_for(typing.get_args(tp)[1], f.metadata, defs)
            continue
        prop = {"title": f.name, "description": f.metadata["doc"], **_schema_for(tp, f.metadata, defs)}
        if f.default is not dataclasses.MISSING:
            if f.default is not None or _allows_auto(tp, f.metadata):
                prop["default"] = _to_plain(f.default, tp, f.metadata)
        elif f.default_factory is not dataclasses.MISSING:
            prop["default"] = _to_plain(f.default_factory(), tp, f.metadata)
        else:
            required.append(f.name)
        props[f.name] = prop
    schema = {"title": cls.__name__, "description": cls.__doc__, "type": "object", "properties": props,
              "additionalProperties": additional}
    if required:
        schema["required"] = required
    rules = [r.schema() for r in getattr(cls, "_rules", ()) if r.schema() is not None]
    if len(rules) == 1:
        schema |= rules[0]
    elif rules:
        schema["allOf"] = rules
    return schema


def json_schema():
    """The JSON Schema (draft 2020-12) of a spec, generated from the section dataclasses.

    Checks types, ranges, enums and unknown keys; file existence and the names/k count are checked only
    by :func:`validate_spec`.

    Returns
    -------
    dict
        JSON-serialisable schema with titles, descriptions and defaults, for editors.
    """
    defs = {}
    root = _schema_section(Spec, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://motifgram.invalid/spec.schema.json", **root, "$defs": defs}


# ---------------------------------------------------------------------------------------------------------
# Loading


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys instead of keeping the last."""


def _construct_mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
            seen.add(key_node.value)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _root_problems(data):
    if data is None:
        return [("", "the spec is empty; it needs at least 'inputs' (a list of files or simulations)")]
    if not isinstance(data, Mapping):
        return [("", f"the spec must be a mapping of sections ({', '.join(f.name for f in dataclasses.fields(Spec))})"
                     f", got {_show(data)}")]
    return []


def _walk(data, base_dir):
    ctx = _Context(Path(base_dir).absolute())
    problems = _root_problems(data)
    if problems:
        return _INVALID, problems
    spec = _convert_section(Spec, data, "", ctx)
    return spec, ctx.problems


def validate_spec(data, *, base_dir):
    """Every problem of a parsed spec.

    Parameters
    ----------
    data : object
        The parsed YAML (normally a mapping).
    base_dir : str or pathlib.Path
        Folder that relative paths are resolved against (the spec file's folder).

    Returns
    -------
    list of (str, str)
        ``(yaml_path, message)`` pairs, e.g. ``("tokens.k", 'expected int >= 1 or "auto", got "eight"')``;
        ``yaml_path`` is ``""`` for the whole spec. Empty when the spec is valid.
    """
    return _walk(data, base_dir)[1]


def load_spec(source, *, base_dir=None):
    """Read, check and resolve a spec.

    Parameters
    ----------
    source : str, pathlib.Path or mapping
        A YAML file, or an already-parsed mapping.
    base_dir : str or pathlib.Path, optional
        Folder for relative paths. Default: the YAML file's folder, or the current directory for a mapping.

    Returns
    -------
    Spec
        With one :class:`InputSpec` per file (globs expanded, sorted), absolute paths, ids and groups filled in.

    Raises
    ------
    SpecError
        Listing every problem with its YAML path (also for a missing file, a YAML syntax error with its
        line and column, an empty file or a top level that is not a mapping).
    """
    where = None
    if isinstance(source, Mapping):
        data = source
        base = Path.cwd() if base_dir is None else Path(base_dir)
    else:
        where = Path(source)
        base = where.parent if base_dir is None else Path(base_dir)
        data = read_spec_file(where)
    spec, problems = _walk(data, base)
    if problems:
        raise SpecError(problems, source=where)
    log.debug("loaded spec %r with %d inputs", spec.name, len(spec.inputs))
    return spec


def read_spec_file(path):
    """The parsed YAML of a spec file, not yet checked (:func:`load_spec` checks it).

    Raises
    ------
    SpecError
        When the file cannot be read, or for a YAML syntax error (with its line and column) or a duplicate key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([("", f"cannot read the spec file: {exc}")], source=path) from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError([("", f"YAML syntax error{at}: {exc.problem or exc.context}")], source=path) from exc
    except yaml.YAMLError as exc:
        raise SpecError([("", f"YAML error: {exc}")], source=path) from exc


def bundled_spec_path(name="demo"):
    """Path of a spec shipped in the package (``motifgram.specs``), e.g. the demo.

    Raises
    ------
    SpecError
        When no bundled spec has that name; the message lists those that exist.
    """
    folder = importlib.resources.files("motifgram.specs")
    path = folder / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise SpecError([("", f"no bundled spec named {name!r}; available: {', '.join(names) or 'none'}")])
    return Path(str(path))
