"""The run directory: the one owner of the files of the output contract (``INTERFACE.md``).

Every writer and every reader of ``atoms.csv``, ``bonds.csv``, ``rings.csv``, ``summary.json``, ``parses/``,
``grammar.txt``, ``grammars/``, ``embedding.npz`` and the paths of ``tokens.npz``, ``overlays/``,
``tokens.png`` and ``report.html`` goes through this module, so a column or a summary field is added in one
place. It imports no JAX, so ``motifgram show``, ``report`` and ``compare`` stay light. The token model's
own file format is :meth:`motifgram.engine.tokens.TokenModel.save` (versioned with the class).

Per-micrograph rows are written as text parts (one file per micrograph and table, by any executor) and
assembled in input order: :func:`write_part`, :func:`assemble_tables`.
"""

import csv
import json
import math
import platform
import shutil
import typing
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from motifgram.engine.errors import MotifgramError
from motifgram.engine.graph import AtomGraph
from motifgram.engine.outputs import csv_field, write_json
from motifgram.engine.regions import REGION_DISORDERED, REGION_NETWORK
from motifgram.engine.spec import SpotKind
from motifgram.grammar.model import Grammar
from motifgram.grammar.parse import ParseNode

__all__ = [
    "ATOMS_CSV", "BONDS_CSV", "RINGS_CSV", "GRAMMAR_TXT", "TOKENS_NPZ", "EMBEDDING_NPZ", "SUMMARY_JSON",
    "REPORT_HTML", "TOKEN_GALLERY_PNG", "PARSES", "OVERLAYS", "GRAMMARS",
    "ATOMS_HEADER", "BONDS_HEADER", "RINGS_HEADER", "TABLES",
    "atoms_rows", "bonds_rows", "rings_rows", "write_part", "assemble_tables",
    "write_parse", "parse_path", "read_parses", "overlay_path", "write_grammars",
    "image_summary", "run_summary", "own_bits_per_atom", "comparison_summary", "versions",
    "write_summary", "read_summary", "learned_spots",
    "write_embedding", "read_embedding", "read_token_arrays", "confidence_units", "confidence_sums", "token_stats",
    "read_token_stats", "read_run_graphs",
    "grammar_file", "read_grammar_file", "token_model_path",
]

ATOMS_CSV, BONDS_CSV, RINGS_CSV = "atoms.csv", "bonds.csv", "rings.csv"
GRAMMAR_TXT = "grammar.txt"
TOKENS_NPZ = "tokens.npz"
EMBEDDING_NPZ = "embedding.npz"
SUMMARY_JSON = "summary.json"
REPORT_HTML = "report.html"
TOKEN_GALLERY_PNG = "tokens.png"
PARSES, OVERLAYS, GRAMMARS = "parses", "overlays", "grammars"

#: x_nm, y_nm: x and y times the pixel size (same origin), empty when the pixel size is unknown.
ATOMS_HEADER = ("image", "id", "x", "y", "token", "confidence", "intensity", "region", "x_nm", "y_nm")
BONDS_HEADER = ("image", "i", "j")
RINGS_HEADER = ("image", "ring", "size", "symbol", "atoms", "border")
#: The CSV tables of a run, by part name, with their headers.
TABLES = {"atoms": (ATOMS_CSV, ATOMS_HEADER), "bonds": (BONDS_CSV, BONDS_HEADER), "rings": (RINGS_CSV, RINGS_HEADER)}


# ------------------------------------------------------------------------------------------------------------
# The CSV tables


def atoms_rows(image_id: str, xy: np.ndarray, token_names: Sequence[str], labels: np.ndarray,
               confidence: np.ndarray, intensity: np.ndarray, network: np.ndarray,
               pixel_size_nm: float | None) -> str:
    """The rows of ``atoms.csv`` for one micrograph (no header).

    ``xy`` (N, 2) px, ``labels`` (N,) index ``token_names``; ``confidence`` and ``intensity`` (N,);
    ``network`` (N,) bool: the atom's region (:mod:`motifgram.engine.regions`) is a regular network;
    ``pixel_size_nm`` gives the nm columns (empty when None).
    """
    image, names = csv_field(image_id), [csv_field(name) for name in token_names]
    nm = pixel_size_nm
    confidence = confidence_units(confidence) / 10**_CONFIDENCE_DECIMALS  # what {:.4f} writes, as a float
    return "".join(
        f"{image},{i},{x:.3f},{y:.3f},{names[t]},{c:.4f},{v:.6g},{REGION_NETWORK if net else REGION_DISORDERED},"
        + (f"{x * nm:.5f},{y * nm:.5f}\n" if nm is not None else ",\n")
        for i, ((x, y), t, c, v, net) in enumerate(zip(
            xy.tolist(), labels.tolist(), confidence.tolist(), intensity.tolist(), network.tolist(), strict=True
        ))
    )


def bonds_rows(image_id: str, bonds: np.ndarray) -> str:
    """The rows of ``bonds.csv`` for one micrograph: ``bonds`` (B, 2) atom ids."""
    image = csv_field(image_id)
    return "".join(f"{image},{i},{j}\n" for i, j in bonds.tolist())


def rings_rows(image_id: str, rings: Iterable[Sequence[int]], symbols: Sequence[str], border: np.ndarray) -> str:
    """The rows of ``rings.csv`` for one micrograph: each ring's atoms in cyclic order, its symbol, and
    whether it touches the image edge or the outer face (``border`` (R,) bool)."""
    image = csv_field(image_id)
    return "".join(
        f"{image},{r},{len(ring)},{csv_field(symbol)},{' '.join(map(str, ring))},{int(b)}\n"
        for r, (ring, symbol, b) in enumerate(zip(rings, symbols, border.tolist(), strict=True))
    )


def write_part(parts_dir: Path, index: int, table: str, rows: str) -> None:
    """Write one micrograph's rows of ``table`` (a key of :data:`TABLES`) as a part to be assembled."""
    (parts_dir / f"{index:06d}.{table}.csv").write_text(rows)


def assemble_tables(run_dir: Path, parts_dir: Path, indices: Sequence[int]) -> None:
    """Assemble the CSV tables of ``run_dir`` from the parts of the micrographs ``indices`` (in that order),
    then remove ``parts_dir``."""
    for table, (fname, header) in TABLES.items():
        with open(run_dir / fname, "wb") as out:
            out.write((",".join(header) + "\n").encode())
            for index in indices:
                with open(parts_dir / f"{index:06d}.{table}.csv", "rb") as part:
                    shutil.copyfileobj(part, out)
    for part in parts_dir.iterdir():
        part.unlink()
    parts_dir.rmdir()


def _rows(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def read_token_arrays(run_dir) -> dict[str, np.ndarray]:
    """The arrays of a run's ``tokens.npz`` by name (e.g. ``names``, ``class_averages``), without building the
    token model (:meth:`motifgram.engine.tokens.TokenModel.load` does that, and needs JAX)."""
    with np.load(Path(run_dir) / TOKENS_NPZ, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


_CONFIDENCE_DECIMALS = 4  # of atoms.csv's confidence column (atoms_rows)


def confidence_units(confidence) -> np.ndarray:
    """(N,) int64: confidences in the units of their last decimal in ``atoms.csv`` (1e-4), so that sums of them
    are exact whichever way they are added (:func:`token_stats`)."""
    return np.rint(np.asarray(confidence, dtype=float) * 10**_CONFIDENCE_DECIMALS).astype(np.int64)


def confidence_sums(which, confidence, n_tokens: int) -> np.ndarray:
    """(K,) int64: per token, the sum of the :func:`confidence_units` of its atoms (``which`` (N,): each atom's
    token index; ``confidence`` (N,)). The sums are of integers below 2**53, so exact in float64."""
    sums = np.bincount(np.asarray(which, dtype=np.intp), weights=confidence_units(confidence), minlength=n_tokens)
    return np.rint(sums).astype(np.int64)


def token_stats(names: Sequence[str], counts, units) -> dict[str, tuple[int, float]]:
    """Per token with atoms: (number of atoms, mean confidence as written in ``atoms.csv``).

    ``counts`` (K,): atoms per token of ``names``; ``units`` (K,): the sum of their :func:`confidence_units`.
    The sums are exact, so the pipeline (adding micrograph by micrograph) and :func:`read_token_stats`
    (reading the file back) give the same numbers.
    """
    return {name: (int(n), int(u) / (int(n) * 10**_CONFIDENCE_DECIMALS))
            for name, n, u in zip(names, np.asarray(counts).tolist(), np.asarray(units).tolist(), strict=True) if n}


def read_token_stats(run_dir) -> dict[str, tuple[int, float]]:
    """Per token of ``atoms.csv``: (number of atoms, mean confidence) over all its micrographs, tokens in order
    of first appearance; the confidences counted to the 4 decimals :func:`atoms_rows` writes (:func:`token_stats`)."""
    with open(Path(run_dir) / ATOMS_CSV, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)  # plain rows: 10x faster than a dict per row for large runs
        header = next(reader, [])
        try:
            tok_col, conf_col = header.index("token"), header.index("confidence")
        except ValueError as exc:
            raise KeyError(f"{ATOMS_CSV} has no token or confidence column") from exc
        rows = [(row[tok_col], row[conf_col]) for row in reader]
    if not rows:
        return {}
    tokens, confidence = zip(*rows, strict=True)
    names = list(dict.fromkeys(tokens))
    index = {name: k for k, name in enumerate(names)}
    which = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    counts = np.bincount(which, minlength=len(names))
    return token_stats(names, counts, confidence_sums(which, np.array(confidence, dtype=float), len(names)))


def read_run_graphs(run_dir, *, images: Iterable[str] | None = None) -> dict[str, AtomGraph]:
    """Rebuild a run's atom graphs (with tokens) from its CSV files, without recomputing anything.

    Parameters
    ----------
    run_dir : str or Path
        A run directory holding ``atoms.csv``, ``bonds.csv`` and ``rings.csv``; ``summary.json`` (optional)
        gives each image's shape and bond factor.
    images : iterable of str, optional
        Only these image ids (default: all).

    Returns
    -------
    dict of str to AtomGraph
        Image id -> graph, in the order of ``atoms.csv``: ``xy`` (N, 2) px as written (3 decimals), tokens,
        regions, bonds, and rings with their border flags in the order of ``rings.csv`` (the parse's ring
        order, so parses reproduce). Runs written before these columns existed read as all ``network`` and
        no border ring.
        Without ``summary.json`` the image shape is taken as the atoms' bounding box.
    """
    run_dir = Path(run_dir)
    wanted = None if images is None else set(images)
    for fname in (ATOMS_CSV, BONDS_CSV, RINGS_CSV):
        if not (run_dir / fname).is_file():
            raise MotifgramError(f"{run_dir / fname}: missing; give a complete run directory written by 'motifgram run'")
    xy: dict[str, list] = defaultdict(list)
    tokens: dict[str, list] = defaultdict(list)
    region: dict[str, list] = defaultdict(list)
    for row in _rows(run_dir / ATOMS_CSV):
        image = row["image"]
        if wanted is not None and image not in wanted:
            continue
        if int(row["id"]) != len(xy[image]):
            raise MotifgramError(f"{run_dir / ATOMS_CSV}: atom ids of image {image!r} are not 0, 1, 2, ... in order")
        xy[image].append((float(row["x"]), float(row["y"])))
        tokens[image].append(row["token"])
        region[image].append(row.get("region") or REGION_NETWORK)
    bonds: dict[str, list] = defaultdict(list)
    for row in _rows(run_dir / BONDS_CSV):
        if row["image"] in xy:
            bonds[row["image"]].append((int(row["i"]), int(row["j"])))
    rings: dict[str, list] = defaultdict(list)
    border: dict[str, list] = defaultdict(list)
    for row in _rows(run_dir / RINGS_CSV):
        if row["image"] in xy:
            rings[row["image"]].append(tuple(int(a) for a in row["atoms"].split()))
            border[row["image"]].append(row.get("border") == "1")
    info = read_summary(run_dir, required=False).get("images", {})
    out = {}
    for image, coords in xy.items():
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        meta = info.get(image, {})
        shape = meta.get("shape") or (int(math.ceil(coords[:, 1].max(initial=0))) + 1,
                                      int(math.ceil(coords[:, 0].max(initial=0))) + 1)
        out[image] = AtomGraph(
            xy=coords, tokens=np.asarray(tokens[image], dtype=np.str_),
            bonds=np.asarray(bonds[image], dtype=np.int64).reshape(-1, 2), rings=tuple(rings[image]),
            image_shape=tuple(shape), bond_factor=meta.get("bond_factor", math.nan),
            ring_border=np.asarray(border[image], dtype=bool), region=np.asarray(region[image], dtype=np.str_),
        )
    return out


# ------------------------------------------------------------------------------------------------------------
# Parse trees, overlays, grammars


def read_parses(run_dir) -> tuple[dict, dict[str, np.ndarray]]:
    """Every parse tree of a run and the atom positions of its micrographs: ``({image: ParseNode},
    {image: (N, 2) xy px})`` (empty when ``atoms.csv`` or ``parses/`` is missing)."""
    run_dir = Path(run_dir)
    if not (run_dir / ATOMS_CSV).is_file() or not (run_dir / PARSES).is_dir():
        return {}, {}
    xy: dict[str, list] = defaultdict(list)
    for row in _rows(run_dir / ATOMS_CSV):
        xy[row["image"]].append((float(row["x"]), float(row["y"])))
    trees = {image: ParseNode.from_dict(json.loads(parse_path(run_dir, image).read_text()))
             for image in xy if parse_path(run_dir, image).is_file()}
    return trees, {image: np.asarray(coords, dtype=np.float64).reshape(-1, 2) for image, coords in xy.items()}


def parse_path(run_dir, image_id: str) -> Path:
    """``parses/<image>.json`` of a run directory."""
    return Path(run_dir) / PARSES / f"{image_id}.json"


def write_parse(run_dir: Path, image_id: str, tree_json: str) -> None:
    """Write one micrograph's parse tree (compact JSON text, :meth:`ParseNode.to_json`)."""
    parse_path(run_dir, image_id).write_text(tree_json + "\n")


def overlay_path(run_dir, image_id: str) -> Path:
    """``overlays/<image>.png`` of a run directory."""
    return Path(run_dir) / OVERLAYS / f"{image_id}.png"


def write_grammars(run_dir: Path, grammar: Grammar, group_grammars: dict[str, Grammar]) -> None:
    """``grammar.txt``, and ``grammars/<group>.txt`` when a run has several groups."""
    (run_dir / GRAMMAR_TXT).write_text(grammar.to_text())
    if group_grammars:
        (run_dir / GRAMMARS).mkdir()
        for group, group_grammar in group_grammars.items():
            (run_dir / GRAMMARS / f"{group}.txt").write_text(group_grammar.to_text())


def grammar_file(path) -> Path:
    """The grammar file of ``path``: ``path/grammar.txt`` for a run directory, else ``path`` itself.

    Raises
    ------
    MotifgramError
        Neither exists.
    """
    path = Path(path)
    grammar_path = path / GRAMMAR_TXT if path.is_dir() else path
    if not grammar_path.is_file():
        raise MotifgramError(f"{path}: no grammar here; give a run directory holding grammar.txt, or a grammar file")
    return grammar_path


def read_grammar_file(path) -> Grammar:
    """Read a run directory's (or a file's) grammar; errors name the file, line and column
    (:meth:`Grammar.parse_text`)."""
    grammar_path = grammar_file(path)
    return Grammar.parse_text(grammar_path.read_text(), source=str(grammar_path))


def token_model_path(grammar_path: Path) -> Path:
    """The token model (``tokens.npz``) written beside a grammar file by ``motifgram run``.

    Raises
    ------
    MotifgramError
        It is missing.
    """
    model_path = Path(grammar_path).parent / TOKENS_NPZ
    if not model_path.is_file():
        raise MotifgramError(
            f"{model_path}: the token model is missing; parse needs the tokens.npz written beside grammar.txt by "
            "'motifgram run'"
        )
    return model_path


# ------------------------------------------------------------------------------------------------------------
# summary.json and embedding.npz


def _round(value: float, digits: int = 5):
    return None if not np.isfinite(value) else round(float(value), digits)


def _in_nm(pixel_size_nm: float | None, **lengths_px) -> dict:
    """``{name: length x pixel size}`` (nm, rounded), or nothing when the pixel size is unknown."""
    if pixel_size_nm is None:
        return {}
    return {name: round(float(value) * pixel_size_nm, 5) for name, value in lengths_px.items()}


def _length_stats(lengths: np.ndarray) -> dict:
    """Median and 5th/95th percentiles of bond lengths (None for a graph without bonds)."""
    if not len(lengths):
        return {"median": None, "p05": None, "p95": None}
    p05, median, p95 = np.percentile(lengths, (5, 50, 95))
    return {"median": _round(median), "p05": _round(p05), "p95": _round(p95)}


def own_bits_per_atom(run_dir) -> float | None:
    """Atom-weighted bits per atom of a run's micrographs under its own grammar (its summary.json); None when
    the run has no readable summary."""
    try:
        images = read_summary(run_dir)["images"].values()
        atoms = sum(info["n_atoms"] for info in images)
        return sum(info["bits_per_atom"] * info["n_atoms"] for info in images) / atoms if atoms else None
    except (MotifgramError, KeyError, TypeError, AttributeError):
        return None


def image_summary(record, graph: AtomGraph, token_counts: dict, mean_confidence, parse, measures: dict,
                  ring_stats, *, sampling: str) -> dict:
    """One micrograph's entry of ``summary.json`` ``images``.

    ``record`` is the run's :class:`~motifgram.engine.records.MicrographRecord`; ``token_counts`` maps token
    names to atom counts; ``parse`` is the micrograph's :class:`~motifgram.grammar.parse.ParseResult`,
    ``measures`` its disorder measures and ``ring_stats`` its :class:`~motifgram.engine.graph.RingStats`.
    """
    sizes = graph.ring_sizes
    return {
        "source": record.source,
        "group": record.group,
        "shape": list(record.shape),
        "pixel_size_nm": record.pixel_size_nm,
        "lattice_period_px": round(float(record.lattice_period_px), 4),
        "nn_distance_px": round(float(record.nn_distance_px), 4),
        **_in_nm(record.pixel_size_nm, lattice_period_nm=record.lattice_period_px, nn_distance_nm=record.nn_distance_px),
        "bond_length_px": _length_stats(graph.bond_lengths_px()),
        **({"bond_length_nm": _length_stats(graph.bond_lengths_px() * record.pixel_size_nm)}
           if record.pixel_size_nm is not None else {}),
        "bond_factor": round(float(graph.bond_factor), 4),
        "patch_size_px": record.patch_size,
        "disc_diameter_px": round(record.disc_diameter_px, 4),
        "n_atoms": int(sum(token_counts.values())),
        "n_bonds": int(len(graph.bonds)),
        "n_rings": int(len(sizes)),
        "n_border_rings": int(np.count_nonzero(graph.ring_border)),
        "token_counts": token_counts,
        "mean_confidence": mean_confidence,
        "ring_histogram": {str(n): int(c) for n, c in sorted(Counter(sizes.tolist()).items())},
        "ring_stats": {"mean": _round(ring_stats.mean), "mu2": _round(ring_stats.mu2)},
        "motif_counts": {str(level): dict(sorted(c.items())) for level, c in sorted(parse.motif_counts.items())},
        "relative_abundance": {
            str(level): {s: round(v, 5) for s, v in sorted(c.items())}
            for level, c in sorted(parse.relative_abundance.items())
        },
        "coverage": {str(level): round(v, 5) for level, v in sorted(parse.coverage.items())},
        **{key: round(value, 5) for key, value in measures.items()},
        "sampling": sampling,
        **({"moire": record.moire} if record.moire is not None else {}),
    }


def versions() -> dict[str, str]:
    """Versions of Python, motifgram and the libraries whose numbers its results depend on."""
    found = {"python": platform.python_version()}
    for package in ("motifgram", "jax", "numpy", "scipy", "scikit-image", "networkx", "lark"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def run_summary(spec, records, images: dict, failures, *, token_model, merging: dict | None, grammar: Grammar,
                timings: dict, output_dir: Path, comparison=None, induced=None) -> dict:
    """The whole ``summary.json`` of a run.

    ``images`` maps image ids to :func:`image_summary` entries; ``records`` and ``failures`` are the run's
    :class:`~motifgram.engine.records.MicrographRecord` and ``Failure`` lists; ``merging`` is how the token
    mixture's components were merged (None when ``tokens.k`` was fixed); ``comparison`` the groups'
    :class:`~motifgram.grammar.compare.Comparison`, if any; ``induced`` the
    :class:`~motifgram.grammar.induce.InductionResult` that learned ``grammar``, when the run learned it (its
    data and total description lengths and the bits each rule saved go in ``grammar``).
    """
    groups: dict[str, list[str]] = {}
    for record in records:
        groups.setdefault(record.group, []).append(record.id)
    found = versions()
    summary = {
        "name": spec.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output_dir": str(output_dir),
        "motifgram_version": found.get("motifgram", "unknown"),
        "versions": found,
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
        "failed": {f.id: {"source": f.source, "reason": f.reason} for f in failures},
        "recomputed": [r.id for r in records if r.recomputed],
        "tokens": {
            "names": list(token_model.names),
            "k": len(token_model.names),
            "k_selection": ("fixed" if spec.tokens.k is not None
                            else "description length" if merging and merging.get("vocabulary") else "bic"),
            "abundance": {n: round(float(v), 5) for n, v in zip(token_model.names, token_model.abundances)},
            "patch_size_px": int(token_model.patch_size),
            "n_max": int(token_model.n_max),
            **({"merging": merging} if merging is not None else {}),
        },
        "grammar": {
            "n_rules": grammar.n_rules,
            "levels": list(grammar.levels),
            "description_length_bits": round(grammar.description_length_bits(), 3),
            **({"data_bits": round(induced.data_bits, 3),
                "total_bits": round(induced.total_bits, 3),
                "gains_bits": {name: round(bits, 3) for name, bits in induced.gains_bits.items()}}
               if induced is not None else {}),
        },
        "timings": timings,
    }
    if comparison is not None:
        summary["comparison"] = comparison_summary(comparison)
    return summary


def comparison_summary(comparison, *, max_pairs: int = 20, max_rules: int = 5) -> dict:
    """The groups' comparison as ``summary.json`` holds it: items, distance, ranking and disorder, the
    classification, and the rules each of the ``max_pairs`` closest pairs does not share (heaviest first)."""
    full = comparison.to_json()
    closest = sorted(full.get("pairs", []), key=lambda p: (p["distance"], p["a"], p["b"]))[:max_pairs]
    keep = ("symbol", "level", "weight")
    differences = [
        {"a": p["a"], "b": p["b"],
         "only_in_a": [{k: e[k] for k in keep} for e in p["only_in_a"][:max_rules]],
         "only_in_b": [{k: e[k] for k in keep} for e in p["only_in_b"][:max_rules]]}
        for p in closest
    ]
    return {**comparison.to_summary(), "classification": full.get("classification", {}), "differences": differences}


def write_summary(run_dir: Path, summary: dict) -> None:
    write_json(run_dir / SUMMARY_JSON, summary)


def read_summary(run_dir, *, required: bool = True) -> dict:
    """The run's ``summary.json``.

    Parameters
    ----------
    run_dir : str or Path
    required : bool
        When False, a missing file gives ``{}``; an unreadable one is always an error.

    Raises
    ------
    MotifgramError
        The file is missing (when ``required``), not JSON, or not a JSON object; the message names it.
    """
    path = Path(run_dir) / SUMMARY_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not required:
            return {}
        raise MotifgramError(
            f"{path}: no summary.json; is {path.parent} a motifgram run directory? Run `motifgram run SPEC.yaml` "
            "to create one"
        ) from None
    except (OSError, ValueError) as exc:
        raise MotifgramError(f"{path}: cannot read it as JSON ({exc}); rerun 'motifgram run' to rewrite it") from None
    if not isinstance(data, dict):
        raise MotifgramError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def learned_spots(run_dir) -> str:
    """``detect.spots`` of the run that learned a grammar (from its summary.json); ``atoms`` when not recorded
    or unreadable."""
    try:
        summary = read_summary(run_dir)
    except MotifgramError:
        return "atoms"
    spots = (summary.get("spec") or {}).get("detect", {}).get("spots", "atoms")
    return spots if spots in typing.get_args(SpotKind) else "atoms"


def write_embedding(run_dir: Path, xy: np.ndarray, token: np.ndarray) -> None:
    """``embedding.npz``: ``xy`` (S, 2) float32, a 2-D projection of sampled atoms' features, and ``token``
    (S,) int64, their labels."""
    np.savez(run_dir / EMBEDDING_NPZ, xy=xy.astype(np.float32), token=token.astype(np.int64))


def read_embedding(run_dir) -> tuple[np.ndarray, np.ndarray]:
    """``(xy, token)`` of ``embedding.npz``; ValueError when the arrays do not have those shapes."""
    with np.load(Path(run_dir) / EMBEDDING_NPZ, allow_pickle=False) as data:
        xy, token = np.asarray(data["xy"]), np.asarray(data["token"])
    if xy.ndim != 2 or xy.shape[1] != 2 or token.shape != (len(xy),):
        raise ValueError(f"embedding.npz: expected xy (S, 2) and token (S,), got {xy.shape} and {token.shape}")
    return xy, token
