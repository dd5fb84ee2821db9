"""Token quality: adjusted Rand index of a run's tokens against the true column classes of a simulation.

Usage::

    python benchmarks/token_quality.py [--seeds 0 1 2 3 4 5 6 7] [--doses 20 60] [--size 384] [--realistic]
                                       [--out benchmarks/token_quality.json]

For every seed and dose (counts per unit amplitude), MoS2 with Se substitutions (10 % of the S sites) and S
vacancies (5 %), the simulator's defaults as in ``tests/test_chemistry_tokens.py``, goes through the whole pipeline
with ``features.descriptor: chemistry`` and the token count chosen by description length; the tokens in
``atoms.csv`` are matched to the true columns (nearest within half a nearest-neighbour distance) and scored with
the adjusted Rand index against the true classes (Mo, S2, SSe, S1; Se2 counted as SSe, as the tests do), over
the detections at least one nearest-neighbour distance from the image edge (``ari``; the descriptor does not
measure a column cut by the edge), over every detection (``ari_all``) and, with ``--realistic``, over the interior
columns clear of the amorphous contamination (``ari_clear``: a carbon network on top of a column adds to its
intensity by an unknown amount; even the best 3-class rule, a quadratic discriminant fitted to the true classes of
the clear columns, scores 0.86-0.90 over all interior columns on seeds 0-3).
``--realistic`` adds the realistic imaging model of ``benchmarks/accuracy.py`` (probe tail, thickness variation,
drift, row jitter, contamination, background ramp and blobs, scan noise). Writes every row to ``--out`` (JSON)
and a Markdown table (one line per dose: ARI range and token counts over the seeds) to stdout.

``token_ari(truth, atoms_csv)`` is also used by ``benchmarks/grammar_quality.py``.
"""

import argparse
import csv
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from motifgram.engine.mixture import adjusted_rand_index
from motifgram.engine.simulate import simulate

MOS2 = {"se_fraction": 0.10, "s_vacancy_density": 0.05}
#: True classes merged before scoring (a column with two Se is a Se-bearing column, as one with one Se).
MERGED = {"Se2": "SSe"}
MATCH_NN = 0.5  # a detection within this many nearest-neighbour distances of a true column is that column


def token_ari(truth, atoms_csv, *, shape=None, margin_nn=1.0, keep=None, merged=MERGED):
    """Adjusted Rand index of the tokens in a run's ``atoms.csv`` against a simulation's true column classes.

    Parameters
    ----------
    truth : motifgram.engine.simulate.Truth
        The simulation's truth (``xy`` (N, 2) in px, ``label`` (N,)).
    atoms_csv : path
        The run's ``atoms.csv`` (one image; ``x``, ``y`` in px and ``token``).
    shape : (int, int), optional
        The image's (rows, columns); given, the detections closer than ``margin_nn`` nearest-neighbour distances
        to its edge are not scored (the ``chemistry`` descriptor does not measure a column cut by the edge, and
        gives it a typical column's features: ``motifgram.engine.chemistry.EDGE_SIGMAS``).
    margin_nn : float
        That margin in nearest-neighbour distances.
    keep : (N,) array_like of bool, optional
        The true columns scored (default: all); a detection matched to another is left out.
    merged : dict
        True classes scored as one (class -> the class it joins).

    Returns
    -------
    float
        ARI over the detections within :data:`MATCH_NN` nearest-neighbour distances of a true column (classes
        merged by ``merged``).
    """
    with open(atoms_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows]).reshape(-1, 2)
    token = np.array([r["token"] for r in rows])
    tree = cKDTree(truth.xy)
    nn = float(np.median(tree.query(truth.xy, k=2)[0][:, 1]))
    dist, nearest = tree.query(xy)
    found = dist < MATCH_NN * nn
    if keep is not None:
        found &= np.asarray(keep, dtype=bool)[nearest]
    if shape is not None:
        h, w = shape
        found &= np.minimum.reduce([xy[:, 0], xy[:, 1], w - 1 - xy[:, 0], h - 1 - xy[:, 1]]) >= margin_nn * nn
    label = np.array([merged.get(str(s), str(s)) for s in truth.label[nearest[found]]])
    classes = np.unique(label, return_inverse=True)[1]
    return adjusted_rand_index(classes, np.unique(token[found], return_inverse=True)[1])


def measure(seed, dose, size, scratch, *, realistic=False):
    """One pipeline run: its token count and ARI."""
    from motifgram.engine.pipeline import run
    from motifgram.engine.spec import load_spec

    from accuracy import REALISTIC  # the realistic imaging settings of the accuracy benchmark (this folder)

    sim = simulate("mos2", size=size, seed=seed, dose=float(dose), **MOS2, **(REALISTIC if realistic else {}))
    np.save(scratch / "image.npy", sim.image)
    spec = load_spec({"name": "t", "inputs": [{"path": "image.npy", "id": "img"}], "seed": seed,
                      "features": {"descriptor": "chemistry"}, "output": {"report": False, "overlays": False}},
                     base_dir=scratch)
    out = run(spec, out_dir=scratch / "run", force=True, quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    truth = dataclasses.replace(sim.truth, xy=sim.imaging.xy)  # where the columns were imaged (after drift)
    clear = None
    if realistic:
        clear = round(token_ari(truth, out / "atoms.csv", shape=sim.image.shape,
                                keep=~sim.imaging.atom_contaminated), 4)
    return {"seed": seed, "dose": dose, "realistic": realistic, "tokens": summary["tokens"]["k"],
            "ari": round(token_ari(truth, out / "atoms.csv", shape=sim.image.shape), 4),
            "ari_all": round(token_ari(truth, out / "atoms.csv"), 4), "ari_clear": clear,
            "vocabulary": summary["tokens"].get("merging", {}).get("vocabulary")}


def table(rows):
    lines = ["| imaging | dose (counts) | seeds | tokens | token ARI min–max (median) | every detection, edge too "
             "| clear of contamination |", "|---|---|---|---|---|---|---|"]
    for key in sorted({(r["realistic"], r["dose"]) for r in rows}):
        rs = [r for r in rows if (r["realistic"], r["dose"]) == key]
        aris, every, tokens = [r["ari"] for r in rs], [r["ari_all"] for r in rs], [r["tokens"] for r in rs]
        clear = [r["ari_clear"] for r in rs if r.get("ari_clear") is not None]
        clear = f"{min(clear):.3f}–{max(clear):.3f} ({np.median(clear):.3f})" if clear else ""
        lines.append(f"| {'realistic' if key[0] else 'plain'} | {key[1]:g} | {len(rs)} | {min(tokens)}–{max(tokens)} "
                     f"| {min(aris):.3f}–{max(aris):.3f} ({np.median(aris):.3f}) | {min(every):.3f}–{max(every):.3f} "
                     f"| {clear} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--doses", type=float, nargs="+", default=[20.0, 60.0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--realistic", action="store_true", help="the realistic imaging model (benchmarks/accuracy.py)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("token_quality.json"))
    args = parser.parse_args(argv)
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for dose in args.doses:
            for seed in args.seeds:
                rows.append(measure(seed, dose, args.size, Path(scratch), realistic=args.realistic))
                print(rows[-1], file=sys.stderr, flush=True)
    args.out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "seconds": time.perf_counter() - start,
                                    "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
