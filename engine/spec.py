"""Run specs: the YAML file that drives ``motifgram run``.

A spec is a tree of frozen section dataclasses (:class:`Spec` at the root). Every key is one dataclass
field: its default lives in the field, and its description and constraints (range, oddness, pattern,
whether ``"auto"`` is allowed) live in the field's metadata. One generic walker (:mod:`motifgram.engine.specfields`)
reads those fields to validate a parsed YAML mapping, to build the dataclasses, to write them back
(:meth:`Spec.to_dict`) and to generate the JSON Schema (:func:`json_schema`), so adding a key means adding a field.

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
import importlib.resources
import logging
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import yaml

from motifgram.engine.errors import SpecError
from motifgram.engine.simspec import check_simulation
from motifgram.engine.specfields import (
    IMAGE_SUFFIXES,
    INVALID,
    Context,
    ExactlyOne,
    LengthEquals,
    NotBoth,
    OnlyWith,
    StrictLoader,
    convert_section,
    join_path,
    match_images,
    section_schema,
    show_value,
    spec_key,
    to_plain,
)

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

SimulationKind = Literal["graphene", "graphene_gb", "mos2", "perovskite", "cairo", "crn", "tbl_mos2"]
#: Kinds of synthetic micrograph that ``inputs[].simulate.kind`` may name.
SIMULATION_KINDS = typing.get_args(SimulationKind)

# Detection methods; "grid" (lattice-cell sampling) is reserved for a later release.
DetectMethod = Literal["atoms", "grid"]
SpotKind = Literal["atoms", "ring_centres", "dumbbells"]
FeatureDescriptor = Literal["auto", "chemistry", "zernike", "zernike_context", "intensity"]

# (regular expression, the same in words)
_NAME_PATTERN = (r"^[^/\\]+$", "a non-empty name without / or \\ (it names files)")
_TOKEN_PATTERN = (r"^[A-Za-z][A-Za-z0-9_]*$", "a letter followed by letters, digits or _")
_DATASET_PATTERN = (r"^/\S*$", "an HDF5 dataset path starting with /, e.g. /data")
_ADDRESS_PATTERN = (r"^(tcp|tls)://\S+$", "a scheduler address such as tcp://host:8786")



# ---------------------------------------------------------------------------------------------------------
# Cross-key rules of the spec's own sections


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
            matches = match_images(item.path, ctx.base_dir)
            if item.id is not None and len(matches) > 1:
                ctx.problem(join_path(f"{join_path(path, self.key)}[{i}]", "id"),
                            f"'id' names one input but the path matches {len(matches)} files; remove 'id' "
                            f"(ids default to the file stems)")
            expanded += [(i, dataclasses.replace(item, path=m), item.id) for m in matches]
        taken, explicit = set(), {}
        for i, given in dict.fromkeys((i, given) for i, _, given in expanded):
            if given is None:
                continue
            if given in explicit:
                ctx.problem(join_path(f"{join_path(path, self.key)}[{i}]", "id"),
                            f"duplicate id {show_value(given)} (also inputs[{explicit[given]}]); ids must be unique")
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
        options = {name: value for name, value in values["options"].items() if value is not INVALID}
        for problem in check_simulation(values["kind"], values["size"], values["seed"], options, path=path)[1]:
            ctx.problem(*problem)
        return values

    def schema(self):
        return None  # the options are listed per kind by motifgram.engine.simspec.simulate_options

# ---------------------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True, kw_only=True)
class SimulateSpec:
    """A synthetic micrograph made by ``motifgram.engine.simulate`` (no file needed)."""

    kind: SimulationKind = spec_key(doc="What to simulate: " + ", ".join(SIMULATION_KINDS) + ".")
    size: int = spec_key(512, doc="Image side length in px (the image is size x size).", minimum=64)
    seed: int = spec_key(0, doc="Seed of the simulation's random numbers (defects, noise).", minimum=0)
    options: dict[str, float | None] = spec_key(
        dict, extra=True,
        doc="All other keys under 'simulate' are options of the simulator for this kind (e.g. "
            "stone_wales_density, dose; see motifgram.engine.simulate.simulate_options); the simulator "
            "checks them. auto: the simulator's choice.")

    _rules: ClassVar = (_SimulatorAccepts(),)


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """One micrograph: a file (or a glob of files) or a simulation. After loading, one per file."""

    path: Path | None = spec_key(
        None, auto=False, relative=True, glob_=True,
        doc="Image file, relative to the spec file's folder; a glob (data/*.tif) expands to one input per "
            "file, sorted. Formats: " + " ".join(IMAGE_SUFFIXES) + ". Give this or 'simulate'.")
    simulate: SimulateSpec | None = spec_key(None, auto=False, doc="A synthetic micrograph instead of a file.")
    pixel_size: float | None = spec_key(
        None, exclusive_minimum=0.0, doc="Pixel size in nm; overrides the file's. auto: from the file.")
    dataset: str | None = spec_key(
        None, pattern=_DATASET_PATTERN,
        doc="HDF5 files (.h5 .hdf5 .emd .hspy): the path of the dataset holding the image, e.g. /data. auto: the "
            "file's one image (a file with several lists them).")
    frame: int | None = spec_key(
        None, minimum=0, doc="For a stack of frames (frames first): the frame to analyse. auto: the file must hold "
                             "one 2-D image.")
    group: str | None = spec_key(
        None, pattern=_NAME_PATTERN,
        doc="Material or condition this micrograph belongs to, for comparison. auto: the file stem, or the "
            "simulated kind.")
    id: str | None = spec_key(
        None, pattern=_NAME_PATTERN,
        doc="Name of this micrograph in the outputs. auto: the file stem (with -2, -3, ... added when stems "
            "repeat), or '<kind>-<seed>' for a simulation.")

    _rules: ClassVar = (ExactlyOne("path", "simulate"),)


@dataclass(frozen=True, kw_only=True)
class DetectSpec:
    """Finding atom columns."""

    method: DetectMethod = spec_key(
        "atoms", doc="How to find sites: 'atoms' (peaks of atom columns) or 'grid' (sample points on a triangular "
                     "lattice, for images whose columns overlap, e.g. twisted bilayers; atoms.csv then lists the "
                     "sample points).")
    spacing: float | None = spec_key(
        None, exclusive_minimum=0.0, doc="grid only: spacing of the sample points in px. auto: one lattice period.")
    lattice_period: float | None = spec_key(
        None, exclusive_minimum=0.0, doc="Lattice period in px. auto: from the image's Fourier transform.")
    min_distance: float | None = spec_key(
        None, exclusive_minimum=0.0, doc="Least distance between two atom columns in px. auto: from the period.")
    threshold: float | None = spec_key(
        None, minimum=0.0, maximum=1.0,
        doc="Least peak height above the local background (denoised image), as a fraction of the image's "
        "intensity range (0.1-99.9 percentiles). auto: from the noise and the strongest peaks.")
    denoise_sigma: float | None = spec_key(
        None, minimum=0.0, doc="Gaussian smoothing before peak finding in px (0: none). auto: from the period.")
    refine: bool = spec_key(True, doc="Refine positions to sub-pixel precision by a Gaussian fit.")
    dark_atoms: bool = spec_key(False, doc="Atoms are dark on a bright background (e.g. bright-field); invert first.")
    row_offsets: bool = spec_key(
        False, doc="Also remove detector offsets that drift slowly from scan line to scan line (1/f; see "
                   "motifgram.engine.scannoise). Off by default: it sharpens simulated columns under such offsets, "
                   "but on two bundled real images with lattice rows along the scan it changed what was measured.")
    spots: SpotKind = spec_key(
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

    _rules: ClassVar = (OnlyWith("spots", "method", "atoms", unset="atoms"),)


@dataclass(frozen=True, kw_only=True)
class FeaturesSpec:
    """Features of each site's neighbourhood: Zernike moments (atoms) or intensity quantiles (grid points)."""

    n_max: int = spec_key(10, minimum=2, maximum=20, doc="Highest Zernike order (10 gives 36 moments).")
    patch_size: int | None = spec_key(
        None, minimum=5, odd=True, doc="Diameter of the disk around each site in px, odd. auto: the lattice "
                                        "period + 1 (not rounded; 1.5 bonds + 1 without Bragg spots).")
    descriptor: FeatureDescriptor = spec_key(
        "auto", doc="What the tokens are learned from: 'chemistry' (each column's fitted integrated intensity, "
                  "relative to a smooth trend of the main column kinds' intensities over the image, and its "
                  "contrast with its dimmest nearest neighbour of a main kind: one token per column kind, whatever the "
                  "strain near defects, the token count by description length with each atom's token coded "
                  "given its neighbours'; atoms), 'zernike' (rotation invariants of the disk: the "
                  "neighbourhood's shape; atoms), 'zernike_context' (the invariants normalised to unit norm, plus "
                  "each column's peak intensity and its dimmest nearest neighbour's; atoms) or 'intensity' "
                  "(quantiles of the pixel values within 1.5 lattice periods: translation invariant, for grid "
                  "points, whose place in the unit cell is arbitrary). auto: 'chemistry' for atom columns "
                  "(detect.spots atoms), 'zernike' for sites built from the spots (ring_centres, dumbbells: no "
                  "column of their own to measure), 'intensity' with detect.method grid.")


@dataclass(frozen=True, kw_only=True)
class TokensSpec:
    """Learning the motif tokens (the vocabulary) with a Gaussian mixture."""

    k: int | None = spec_key(None, minimum=1, doc="Number of tokens. auto: chosen by BIC within k_range.")
    k_range: tuple[int, int] = spec_key(
        (1, 8), minimum=1, maximum=20, ordered=True, doc="Smallest and largest k tried when k is auto.")
    names: tuple[str, ...] | None = spec_key(
        None, pattern=_TOKEN_PATTERN, unique=True,
        doc="Token names, in the order of the learned classes: exactly k of them, so k must be given too. "
            "Each a letter followed by letters, digits or _. auto: A, B, C, ...")
    n_init: int = spec_key(4, minimum=1, doc="Number of EM restarts; the best fit is kept.")
    max_iter: int = spec_key(200, minimum=1, doc="Most EM iterations per restart.")
    model: Path | None = spec_key(
        None, relative=True, must_exist=True,
        doc="Reuse a reference run's token model instead of learning one: its run directory (or tokens.npz), "
            "relative to the spec file's folder. Later runs of the same material then speak its vocabulary "
            "(motifgram compare --tokens RUN). Not with k.")

    _rules: ClassVar = (LengthEquals("names", "k"), NotBoth("k", "model"))


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """The atom graph: bonds and rings."""

    bond_factor: float | None = spec_key(
        None, minimum=1.0, maximum=2.5,
        doc="A bond joins atoms closer than bond_factor x the local nearest-neighbour distance. auto: from "
            "the first minimum of the bond-length histogram. With detect.spots: ring_centres it bonds the spots "
            "(which triangles of spots become atoms); the atoms' bonds are then those of the dual lattice.")
    max_ring: int = spec_key(12, minimum=3, maximum=30, doc="Largest ring (face) size kept.")
    border: float | None = spec_key(
        None, minimum=0.0, doc="Rings with an atom closer than this to the image edge are dropped, in px. "
                               "auto: one lattice period.")


@dataclass(frozen=True, kw_only=True)
class GrammarSpec:
    """Inducing the grammar (minimum description length)."""

    min_count: int = spec_key(2, minimum=1, doc="A motif must occur at least this often to become a rule.")
    max_motif_size: int = spec_key(6, minimum=2, maximum=12, doc="Most parts in one motif rule.")
    min_domain_size: int | None = spec_key(
        None, minimum=1, doc="Fewest rings in a domain (a region of one repeated ring). auto: from the data.")


@dataclass(frozen=True, kw_only=True)
class CompareSpec:
    """Comparing this run's grammar with reference grammars."""

    references: dict[str, Path] = spec_key(
        dict, relative=True, must_exist=True,
        doc="Reference label -> run directory or grammar file, relative to the spec file's folder; each "
            "micrograph group is classified by its nearest reference.")


@dataclass(frozen=True, kw_only=True)
class EngineSpec:
    """Where the per-micrograph work runs."""

    executor: Literal["local", "dask"] = spec_key("local", doc="'local' (this process) or 'dask' (a Dask cluster).")
    workers: int | None = spec_key(None, minimum=1, doc="Number of parallel workers. auto: the number of CPU cores.")
    address: str | None = spec_key(
        None, pattern=_ADDRESS_PATTERN,
        doc="Address of a running Dask scheduler (tcp://host:port); only with executor: dask. auto: start a "
            "local cluster.")

    _rules: ClassVar = (OnlyWith("address", "executor", "dask"),)


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """What a run writes, and where."""

    dir: str | None = spec_key(
        None, doc="Run directory, relative to the current working directory (--out overrides it). "
                  "auto: runs/<name>.")
    overlays: bool = spec_key(True, doc="Write overlays/<image>.png (atoms coloured by token, rings by symbol).")
    report: bool = spec_key(True, doc="Write report.html and tokens.png (the token gallery as a picture).")


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A motifgram run: which micrographs, and how to learn and apply their grammar."""

    name: str = spec_key("motifgram-run", pattern=_NAME_PATTERN, doc="Name of the run (and of its grammar).")
    seed: int = spec_key(0, minimum=0, doc="Seed of all random choices in learning (EM initialisation).")
    inputs: tuple[InputSpec, ...] = spec_key(
        min_items=1, doc="The micrographs: a list of {path: FILE} or {simulate: {kind: ...}} items.")
    detect: DetectSpec = spec_key(DetectSpec, doc=DetectSpec.__doc__)
    features: FeaturesSpec = spec_key(FeaturesSpec, doc=FeaturesSpec.__doc__)
    tokens: TokensSpec = spec_key(TokensSpec, doc=TokensSpec.__doc__)
    graph: GraphSpec = spec_key(GraphSpec, doc=GraphSpec.__doc__)
    grammar: GrammarSpec = spec_key(GrammarSpec, doc=GrammarSpec.__doc__)
    compare: CompareSpec = spec_key(CompareSpec, doc=CompareSpec.__doc__)
    engine: EngineSpec = spec_key(EngineSpec, doc=EngineSpec.__doc__)
    output: OutputSpec = spec_key(OutputSpec, doc=OutputSpec.__doc__)

    _rules: ClassVar = (_ExpandInputs("inputs"),)

    def to_dict(self):
        """The spec as plain YAML/JSON data with every default filled in (``None`` written as ``"auto"``).

        ``load_spec(spec.to_dict()) == spec``: paths are absolute and input ids and groups explicit.
        """
        return to_plain(self, Spec, {})

    @property
    def feature_descriptor(self) -> str:
        """``features.descriptor`` with ``auto`` resolved: intensity quantiles for grid points (``detect.method:
        grid``), column chemistry for atom columns (``detect.spots: atoms``), else Zernike invariants (the sites
        of ``ring_centres`` and ``dumbbells`` are built from the spots and are no column to measure).

        Chemistry, not the neighbourhood's shape: Zernike invariants also see the strain next to a defect and give
        it tokens of its own (issue 19; ``benchmarks/token_quality_default.py``).
        """
        if self.features.descriptor != "auto":
            return self.features.descriptor
        if self.detect.method == "grid":
            return "intensity"
        return "chemistry" if self.detect.spots == "atoms" else "zernike"

    def run_dir(self):
        """The run directory: ``output.dir``, else ``runs/<name>``, relative to the current directory.

        Returns
        -------
        pathlib.Path
            Absolute path.
        """
        return Path(self.output.dir if self.output.dir is not None else Path("runs") / self.name).absolute()


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
    root = section_schema(Spec, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://motifgram.invalid/spec.schema.json", **root, "$defs": defs}



def _root_problems(data):
    if data is None:
        return [("", "the spec is empty; it needs at least 'inputs' (a list of files or simulations)")]
    if not isinstance(data, Mapping):
        return [("", f"the spec must be a mapping of sections ({', '.join(f.name for f in dataclasses.fields(Spec))})"
                     f", got {show_value(data)}")]
    return []


def _walk(data, base_dir):
    ctx = Context(Path(base_dir).absolute())
    problems = _root_problems(data)
    if problems:
        return INVALID, problems
    spec = convert_section(Spec, data, "", ctx)
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
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
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
