"""The pipeline: spec → micrographs → atoms → features → tokens → atom graphs → grammar → parses → outputs.

Per-micrograph stages (load, detect, features, graph, parse) are independent of one another; the global
stages (token mixture, grammar induction) see all micrographs of the run. Orchestration only: every number
comes from the stage modules.
"""

import dataclasses
import logging
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import parse_graph
from motifgram.grammar.disorder import disorder_measures

from .detect import Atoms, detect_atoms
from .errors import GrammarError, ImageError, MotifgramError
from .graph import AtomGraph, build_graph, ring_statistics
from .io import Micrograph, load_micrograph
from .outputs import atomic_run_dir, check_output_dir, write_csv, write_json
from .patches import extract_patches, normalise_image, patch_size_for
from .progress import Progress
from .report import render_overlay, write_report
from .simulate import simulate
from .spec import Spec, bundled_spec_path, load_spec
from .tokens import TokenModel, assign_tokens, class_averages, compute_features, learn_tokens

__all__ = ["run", "analyse_micrograph", "load_input", "MicrographAnalysis", "show_grammar", "parse_with_grammar"]

log = logging.getLogger(__name__)

#: Atoms used to fit the token mixture; the rest are assigned with the fitted model.
TOKEN_FIT_SAMPLE = 40_000


@dataclass(frozen=True, eq=False)
class MicrographAnalysis:
    """Everything computed for one micrograph before the global stages.

    Attributes
    ----------
    micrograph : Micrograph
    atoms : Atoms
        Sub-pixel atom positions (px) and intensities.
    moments : (N, M) complex64 ndarray
        Zernike moments of each atom's patch.
    invariants : (N, M) float32 ndarray
        Rotation invariants |A_nm|.
    graph : AtomGraph
        Bonds and rings (tokens not yet assigned).
    """

    micrograph: Micrograph
    atoms: Atoms
    moments: np.ndarray
    invariants: np.ndarray
    graph: AtomGraph


class StageTimer:
    """Accumulates wall-clock seconds per stage name across micrographs."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        return {stage: round(seconds, 4) for stage, seconds in self.seconds.items()}


def load_input(item) -> Micrograph:
    """Load one resolved input of a spec: a file, or a simulated micrograph."""
    if item.simulate is not None:
        sim = simulate(item.simulate.kind, size=item.simulate.size, seed=item.simulate.seed, **item.simulate.options)
        return Micrograph(
            image=sim.image,
            pixel_size_nm=item.pixel_size if item.pixel_size is not None else sim.pixel_size_nm,
            id=item.id,
            group=item.group,
            source=f"simulate:{item.simulate.kind}",
        )
    return load_micrograph(item.path, pixel_size_nm=item.pixel_size, id=item.id, group=item.group)


def analyse_micrograph(micrograph: Micrograph, spec: Spec, timer: StageTimer | None = None) -> MicrographAnalysis:
    """Run the per-micrograph stages: detection, features and the atom graph."""
    timer = timer or StageTimer()
    detect = spec.detect
    with timer("detect"):
        atoms = detect_atoms(
            micrograph.image,
            lattice_period_px=detect.lattice_period,
            min_distance_px=detect.min_distance,
            threshold=detect.threshold,
            denoise_sigma_px=detect.denoise_sigma,
            refine=detect.refine,
            dark_atoms=detect.dark_atoms,
        )
    with timer("features"):
        features = compute_features(
            normalise_image(micrograph.image, atoms.xy),
            atoms.xy,
            patch_size=spec.features.patch_size or _patch_size(atoms),
            n_max=spec.features.n_max,
        )
    with timer("graph"):
        graph = build_graph(
            atoms.xy,
            image_shape=micrograph.image.shape,
            bond_factor=spec.graph.bond_factor,
            max_ring=spec.graph.max_ring,
            border_px=spec.graph.border,
        )
    return MicrographAnalysis(micrograph, atoms, features.moments, features.invariants, graph)


@contextmanager
def _naming(source: str):
    """Prefix input errors raised while analysing a micrograph with the file (or simulation) they concern."""
    try:
        yield
    except ImageError as exc:
        raise ImageError(f"{source}: {exc}") from exc
    except MotifgramError as exc:
        raise MotifgramError(f"{source}: {exc}") from exc


def _patch_size(atoms: Atoms) -> int:
    return patch_size_for(atoms.lattice_period_px)


def run(spec=None, *, out_dir=None, force: bool = False, quiet: bool = False) -> Path:
    """Run the whole pipeline for a spec and write its run directory.

    Parameters
    ----------
    spec : Spec, str, Path or None
        A loaded spec or the path of a YAML spec; None runs the bundled demo spec.
    out_dir : str or Path, optional
        Run directory; overrides ``output.dir`` of the spec.
    force : bool
        Replace an existing non-empty run directory.
    quiet : bool
        No progress display.

    Returns
    -------
    Path
        The run directory, complete (it is moved into place only when every file is written).
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec if spec is not None else bundled_spec_path("demo"))
    out_dir = Path(out_dir) if out_dir is not None else spec.run_dir()
    check_output_dir(out_dir, force=force)
    timer = StageTimer()
    with Progress(enabled=not quiet) as progress:
        analyses = []
        with progress.task("atoms, features, graph", len(spec.inputs)) as advance:
            for item in spec.inputs:
                with timer("load"):
                    micrograph = load_input(item)
                with _naming(micrograph.source):
                    analyses.append(analyse_micrograph(micrograph, spec, timer))
                advance()
        with timer("tokens"):
            token_model, labels, confidences = _learn_tokens(analyses, spec)
        graphs = [
            a.graph.with_tokens(np.asarray(token_model.names)[lab]) for a, lab in zip(analyses, labels, strict=True)
        ]
        with timer("grammar"):
            grammar = induce_grammar(
                graphs,
                name=spec.name,
                min_count=spec.grammar.min_count,
                max_motif_size=spec.grammar.max_motif_size,
                min_domain_size=spec.grammar.min_domain_size,
            ).grammar
        parses = []
        with progress.task("parse", len(graphs)) as advance, timer("parse"):
            for graph in graphs:
                parses.append(parse_graph(grammar, graph, min_domain_size=spec.grammar.min_domain_size))
                advance()
        with atomic_run_dir(out_dir, force=force) as staging:
            with timer("write"):
                _write_run(staging, spec, analyses, graphs, labels, confidences, token_model, grammar, parses, timer)
    return out_dir


def _learn_tokens(analyses: list[MicrographAnalysis], spec: Spec):
    """Fit the token mixture on (a seeded sample of) all atoms of the run, then tokenise every atom.

    Class averages need one patch size: they are taken from the micrographs whose automatic patch size is
    the run's most common one (all of them when the micrographs share a magnification).
    """
    counts = [len(a.atoms.xy) for a in analyses]
    invariants = np.concatenate([a.invariants for a in analyses])
    rng = np.random.default_rng(spec.seed)
    sample = np.sort(rng.choice(len(invariants), size=TOKEN_FIT_SAMPLE, replace=False)) \
        if len(invariants) > TOKEN_FIT_SAMPLE else np.arange(len(invariants))
    owner = np.repeat(np.arange(len(analyses)), counts)
    local = np.arange(len(invariants)) - np.repeat(np.cumsum([0] + counts[:-1]), counts)
    sizes = [spec.features.patch_size or _patch_size(a.atoms) for a in analyses]
    common_size = Counter(sizes).most_common(1)[0][0]
    with_patches = np.array([size == common_size for size in sizes])[owner[sample]]
    averaged = sample[with_patches]
    patches = np.concatenate([
        extract_patches(normalise_image(a.micrograph.image, a.atoms.xy), a.atoms.xy[local[averaged][owner[averaged] == i]], patch_size=common_size)
        for i, a in enumerate(analyses)
    ])
    moments = np.concatenate([a.moments for a in analyses])[averaged]
    k = spec.tokens.k if spec.tokens.k is not None else "auto"
    model, sample_labels, _ = learn_tokens(
        invariants[sample],
        k=k,
        k_range=tuple(spec.tokens.k_range),
        names=spec.tokens.names,
        seed=spec.seed,
        n_init=spec.tokens.n_init,
        max_iter=spec.tokens.max_iter,
        lattice_period_px=float(np.median([a.atoms.lattice_period_px for a in analyses])),
    )
    averages = class_averages(patches, moments, sample_labels[with_patches], len(model.names), seed=spec.seed)
    model = dataclasses.replace(model, class_averages=averages, patch_size=common_size)
    labels, confidences = [], []
    for a in analyses:
        lab, conf = assign_tokens(model, a.invariants)
        labels.append(lab)
        confidences.append(conf)
    return model, labels, confidences


def _write_run(staging: Path, spec, analyses, graphs, labels, confidences, token_model, grammar, parses, timer):
    """Write every output file of a run into ``staging`` (moved into place by the caller)."""
    names = np.asarray(token_model.names)
    atom_rows, bond_rows, ring_rows = [], [], []
    for a, graph, lab, conf, parse in zip(analyses, graphs, labels, confidences, parses, strict=True):
        image_id = a.micrograph.id
        for i, ((x, y), token, c, intensity) in enumerate(zip(a.atoms.xy, names[lab], conf, a.atoms.intensity)):
            atom_rows.append((image_id, i, f"{x:.3f}", f"{y:.3f}", token, f"{c:.4f}", f"{intensity:.6g}"))
        bond_rows.extend((image_id, int(i), int(j)) for i, j in graph.bonds)
        for r, (ring, symbol) in enumerate(zip(graph.rings, parse.ring_symbols, strict=True)):
            ring_rows.append((image_id, r, len(ring), symbol, " ".join(map(str, ring))))
    write_csv(staging / "atoms.csv", ("image", "id", "x", "y", "token", "confidence", "intensity"), atom_rows)
    write_csv(staging / "bonds.csv", ("image", "i", "j"), bond_rows)
    write_csv(staging / "rings.csv", ("image", "ring", "size", "symbol", "atoms"), ring_rows)
    (staging / "grammar.txt").write_text(grammar.to_text())
    token_model.save(staging / "tokens.npz")
    _write_embedding(staging / "embedding.npz", token_model, analyses, labels, seed=spec.seed)
    (staging / "parses").mkdir()
    for a, parse in zip(analyses, parses, strict=True):
        write_json(staging / "parses" / f"{a.micrograph.id}.json", parse.root.to_dict())
    if spec.output.overlays:
        (staging / "overlays").mkdir()
        ring_names = [r.name for r in sorted(grammar.rings, key=lambda r: -r.count)]
        for a, graph, lab, parse in zip(analyses, graphs, labels, parses, strict=True):
            render_overlay(
                a.micrograph.image, a.atoms.xy, lab, token_model.names, graph.rings, parse.ring_symbols,
                staging / "overlays" / f"{a.micrograph.id}.png", title=a.micrograph.id, ring_symbol_names=ring_names,
            )
    write_json(staging / "summary.json", _summary(spec, analyses, graphs, labels, confidences, token_model,
                                                  grammar, parses, timer))
    if spec.output.report:
        write_report(staging)


def _write_embedding(path: Path, token_model: TokenModel, analyses, labels, *, seed: int, max_points: int = 5000):
    """The first two whitened principal components of a seeded sample of atoms (the report's scatter plot)."""
    invariants = np.concatenate([a.invariants for a in analyses])
    tokens = np.concatenate(labels)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(tokens), size=min(max_points, len(tokens)), replace=False))
    xy = token_model.transform(invariants[pick])[:, :2]
    np.savez(path, xy=xy.astype(np.float32), token=tokens[pick].astype(np.int64))


def _summary(spec, analyses, graphs, labels, confidences, token_model, grammar, parses, timer) -> dict:
    names = list(token_model.names)
    images = {}
    for a, graph, lab, conf, parse in zip(analyses, graphs, labels, confidences, parses, strict=True):
        sizes = graph.ring_sizes
        stats = ring_statistics(sizes)
        counts = np.bincount(lab, minlength=len(names))
        images[a.micrograph.id] = {
            "source": a.micrograph.source,
            "group": a.micrograph.group,
            "shape": list(a.micrograph.image.shape),
            "pixel_size_nm": a.micrograph.pixel_size_nm,
            "lattice_period_px": round(float(a.atoms.lattice_period_px), 4),
            "nn_distance_px": round(float(a.atoms.nn_distance_px), 4),
            "bond_factor": round(float(graph.bond_factor), 4),
            "n_atoms": int(len(lab)),
            "n_bonds": int(len(graph.bonds)),
            "n_rings": int(len(sizes)),
            "token_counts": {n: int(c) for n, c in zip(names, counts)},
            "mean_confidence": round(float(np.mean(conf)), 4) if len(conf) else None,
            "ring_histogram": {str(n): int(c) for n, c in sorted(Counter(sizes.tolist()).items())},
            "ring_stats": {"mean": _round(stats.mean), "mu2": _round(stats.mu2)},
            "motif_counts": {str(level): dict(sorted(c.items())) for level, c in sorted(parse.motif_counts.items())},
            "relative_abundance": {
                str(level): {s: round(v, 5) for s, v in sorted(c.items())}
                for level, c in sorted(parse.relative_abundance.items())
            },
            "coverage": {str(level): round(v, 5) for level, v in sorted(parse.coverage.items())},
            **{key: round(value, 5) for key, value in disorder_measures(grammar, graph, parse)._asdict().items()},
        }
    groups = {}
    for a in analyses:
        groups.setdefault(a.micrograph.group, []).append(a.micrograph.id)
    return {
        "name": spec.name,
        "motifgram_version": _version(),
        "versions": _versions(),
        "spec": spec.to_dict(),
        "images": images,
        "groups": {
            group: {
                "images": ids,
                "n_atoms": sum(images[i]["n_atoms"] for i in ids),
                "disorder": round(float(np.mean([images[i]["disorder"] for i in ids])), 5),
            }
            for group, ids in groups.items()
        },
        "tokens": {
            "names": names,
            "k": len(names),
            "k_selection": "fixed" if spec.tokens.k is not None else "bic",
            "abundance": {n: round(float(v), 5) for n, v in zip(names, token_model.abundances)},
            "patch_size_px": int(token_model.patch_size),
            "n_max": int(token_model.n_max),
        },
        "grammar": {
            "n_rules": grammar.n_rules,
            "levels": list(grammar.levels),
            "description_length_bits": round(grammar.description_length_bits(), 3),
        },
        "timings": timer.as_dict(),
    }


def _round(value: float, digits: int = 5):
    return None if not np.isfinite(value) else round(float(value), digits)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("motifgram")
    except PackageNotFoundError:
        return "unknown"


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("motifgram", "jax", "numpy", "scipy", "scikit-image", "networkx", "lark"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _grammar_path(path: Path) -> Path:
    path = Path(path)
    grammar_path = path / "grammar.txt" if path.is_dir() else path
    if not grammar_path.is_file():
        raise MotifgramError(f"{path}: no grammar here; give a run directory holding grammar.txt, or a grammar file")
    return grammar_path


def read_grammar_file(path) -> Grammar:
    """Read and validate a grammar file, reporting syntax errors with the file name, line and column."""
    grammar_path = _grammar_path(path)
    return Grammar.parse_text(grammar_path.read_text(), source=str(grammar_path)).validate()


def show_grammar(path, *, tree_of: str | None = None) -> str:
    """The grammar of a run directory (or a grammar file) as text, with a short summary.

    With ``tree_of`` (an image id of the run) the parse tree of that micrograph is appended.
    """
    grammar_path = _grammar_path(path)
    grammar = read_grammar_file(grammar_path)
    lines = [grammar.to_text().rstrip(), ""]
    per_level = Counter(grammar.level_of(r.name) for r in (*grammar.rings, *grammar.motifs, *grammar.domains))
    lines.append(
        f"# {grammar.n_rules} rules ("
        + ", ".join(f"level {level}: {n}" for level, n in sorted(per_level.items()))
        + f"), {grammar.description_length_bits():.1f} bits"
    )
    summary_path = grammar_path.parent / "summary.json"
    if summary_path.is_file():
        import json

        summary = json.loads(summary_path.read_text())
        for image_id, info in summary.get("images", {}).items():
            lines.append(
                f"# {image_id}: {info['n_atoms']} atoms, {info['n_rings']} rings, "
                f"coverage {info['coverage']}, {info['bits_per_atom']:.3f} bits/atom, disorder {info['disorder']:.3f}"
            )
    if tree_of is not None:
        tree_path = grammar_path.parent / "parses" / f"{tree_of}.json"
        if not tree_path.is_file():
            raise MotifgramError(f"{tree_path}: no parse tree for image '{tree_of}' in this run")
        import json

        lines += ["", _tree_text(json.loads(tree_path.read_text()))]
    return "\n".join(lines)


def _tree_text(node: dict) -> str:
    """A parse tree read from ``parses/<image>.json`` as an indented lark tree."""
    import lark

    def build(n):
        if n["level"] == 0 and not n["children"]:
            return lark.Tree(n["symbol"], [str(a) for a in n["atoms"]])
        return lark.Tree(n["symbol"], [build(c) for c in n["children"]])

    return build(node).pretty()


def parse_with_grammar(grammar_path, image_path, *, out_dir=None, pixel_size_nm=None, force=False,
                       quiet=False) -> Path:
    """Apply a learned grammar and its token model to a new micrograph, without re-learning.

    The token model is the ``tokens.npz`` beside the grammar file (as in a run directory). The output
    directory is a run directory of its own (atoms, bonds, rings, the parse tree, summary, overlay).
    """
    grammar_path = _grammar_path(grammar_path)
    grammar = read_grammar_file(grammar_path)
    model_path = grammar_path.parent / "tokens.npz"
    if not model_path.is_file():
        raise MotifgramError(
            f"{model_path}: the token model is missing; parse needs the tokens.npz written beside grammar.txt by "
            "'motifgram run'"
        )
    token_model = TokenModel.load(model_path)
    grammar_tokens = {t.name for t in grammar.tokens}
    if set(token_model.names) != grammar_tokens:
        raise GrammarError(
            f"{grammar_path}: the grammar's tokens ({', '.join(sorted(grammar_tokens))}) do not match the token "
            f"model {model_path} ({', '.join(token_model.names)}); use the tokens.npz of the run that wrote this grammar"
        )
    image_path = Path(image_path)
    item = {"path": str(image_path.absolute())}
    if pixel_size_nm is not None:
        item["pixel_size"] = pixel_size_nm
    spec = load_spec({
        "name": f"parse-{image_path.stem}",
        "inputs": [item],
        "features": {"n_max": int(token_model.n_max)},
        "tokens": {"k": len(token_model.names), "names": list(token_model.names)},
    })
    out_dir = Path(out_dir) if out_dir is not None else spec.run_dir()
    check_output_dir(out_dir, force=force)
    timer = StageTimer()
    with timer("load"):
        micrograph = load_input(spec.inputs[0])
    with _naming(micrograph.source):
        analysis = analyse_micrograph(micrograph, spec, timer)
    with timer("tokens"):
        labels, confidence = assign_tokens(token_model, analysis.invariants)
    graph = analysis.graph.with_tokens(np.asarray(token_model.names)[labels])
    with timer("parse"):
        parse = parse_graph(grammar, graph)
    with atomic_run_dir(out_dir, force=force) as staging, timer("write"):
        _write_run(staging, spec, [analysis], [graph], [labels], [confidence], token_model, grammar, [parse], timer)
    return out_dir
