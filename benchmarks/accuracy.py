"""Accuracy of atoms and rings over a dose sweep of realistic simulated micrographs (issue 18).

    python benchmarks/accuracy.py                     # 4 materials x doses 10 20 40 80 x seeds 0-2, 256^2; ~5 min
    python benchmarks/accuracy.py --no-atomap --seeds 0 --doses 20
    python benchmarks/accuracy.py --out benchmarks/accuracy.json   # also writes accuracy.md beside it

Materials (``motifgram.engine.simulate`` with the realistic imaging model of ``engine/imaging.py``: probe
tail at the abTEM calibration, per-column thickness factor, slow drift, row jitter, contamination patches,
background ramp and blobs, read noise and fast-scan noise): graphene with Stone–Wales defects and
vacancies, MoS2 with Se substitutions and S vacancies, a 2-D glass (continuous random network) and the same
network blurred (probe sigma 0.4 x the bond length). Dose: counts per unit column peak.

Tools: motifgram (``detect_atoms`` + ``build_graph``, all automatic), a plain reference written here
(Gaussian smoothing, skimage ``peak_local_max``, centre of mass, Delaunay with a bond cut at 1.37 x the
true bond length, faces), and Atomap (``get_atom_positions`` + centre of mass + 2-D Gaussian refinement,
run in the peer venv ``.bench/venv`` on seed 0 only; its rings come from the reference's graph of its
positions). The reference and Atomap are given the true bond length; motifgram estimates its own.

Scores, per material and dose, over every seed (atoms and rings in contaminated patches, within half a bond
of one, or within half a bond of the image edge are not scored):

- F1 of the detected columns (a detection matches the nearest true column within 0.5 bond, one to one);
- position RMSE (px, the 2-D distance) over matched columns against the columns' imaged positions, and
  the Cramér–Rao bound (``imaging.position_bound``: Poisson + read noise, amplitude, neighbours and a local
  background as nuisance) as the same root mean square over the same columns;
- ring recovery: the share of true rings that a detected ring reproduces exactly (its atoms are the
  matches of the true ring's atoms), and the ring-histogram L1: ``sum_n |found_n - true_n| / sum_n true_n``
  over the ring counts by size (so rings lost and rings invented both count; 0 is perfect).
"""

import argparse
import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from scipy.spatial import Delaunay, cKDTree

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "accuracy"

MATERIALS = {
    "graphene": ("graphene", {"stone_wales_density": 0.005, "vacancy_density": 0.003}),
    "mos2": ("mos2", {}),
    "glass": ("crn", {}),
    "blurred": ("crn", {"sigma_px": 3.2}),  # 0.4 x the 8 px bond
}
REALISTIC = {
    "probe_tail": 0.2, "thickness_variation": 0.05, "drift": 1.5, "row_jitter": 0.15, "contamination": 0.08,
    "contamination_contrast": 0.5, "background_gradient": 0.2, "background_blobs": 0.2, "read_noise": 0.02,
    "scan_noise": 0.05,
}
BOND_PX = 8.0  # every material's nearest-neighbour distance at its default pixel size
MATCH_NN = 0.5
EDGE_NN = 0.5


def simulate_case(material, dose, seed, size):
    from motifgram.engine.simulate import simulate

    kind, extra = MATERIALS[material]
    return simulate(kind, size=size, seed=seed, dose=float(dose), **REALISTIC, **extra)


# ---------------------------------------------------------------------------------------------------------
# tools


def run_motifgram(image):
    from motifgram.engine.detect import detect_atoms
    from motifgram.engine.graph import build_graph

    atoms = detect_atoms(image)
    graph = build_graph(atoms.xy, image_shape=image.shape)
    return np.asarray(atoms.xy, np.float64), [tuple(r) for r in graph.rings]


def reference_positions(image, nn):
    """Gaussian smoothing, peak_local_max, centre of mass: the plain pipeline."""
    from skimage.feature import peak_local_max

    smooth = ndi.gaussian_filter(image.astype(np.float64), 0.15 * nn)
    flat = smooth - ndi.gaussian_filter(smooth, 2 * nn)  # the broad background out
    peaks = peak_local_max(flat, min_distance=max(1, int(0.5 * nn)), threshold_abs=0.2 * np.percentile(flat, 99),
                           exclude_border=False)
    return centre_of_mass(image, peaks[:, ::-1].astype(np.float64), radius=0.4 * nn)


def centre_of_mass(image, xy, *, radius):
    """Centre of mass above the window minimum in a disk of ``radius`` around each integer start."""
    h = int(math.ceil(radius))
    off = np.arange(-h, h + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    disk = oy**2 + ox**2 <= radius**2
    oy, ox = oy[disk], ox[disk]
    c = np.rint(xy).astype(np.int64)
    rr, cc = c[:, 1:2] + oy, c[:, 0:1] + ox
    ok = (rr >= 0) & (rr < image.shape[0]) & (cc >= 0) & (cc < image.shape[1])
    v = np.where(ok, image[rr.clip(0, image.shape[0] - 1), cc.clip(0, image.shape[1] - 1)], np.nan)
    v = np.nan_to_num(v - np.nanmin(v, axis=1, keepdims=True), nan=0.0)
    total = np.maximum(v.sum(axis=1), 1e-12)
    return np.stack([(v * cc).sum(axis=1) / total, (v * rr).sum(axis=1) / total], axis=1)


def reference_rings(xy, nn):
    """Delaunay edges shorter than 1.37 x the bond, then every simple face of 3-12 atoms."""
    from motifgram.engine.graph import face_cycles

    if len(xy) < 3:
        return []
    indptr, indices = Delaunay(xy).vertex_neighbor_vertices
    i = np.repeat(np.arange(len(xy)), np.diff(indptr))
    e = np.stack([i, indices], axis=1)
    e = e[e[:, 0] < e[:, 1]]
    e = e[np.hypot(*(xy[e[:, 1]] - xy[e[:, 0]]).T) < 1.37 * nn]
    return face_cycles(xy, e, max_ring=12)


def run_reference(image, nn):
    xy = reference_positions(image, nn)
    return xy, reference_rings(xy, nn)


# ---------------------------------------------------------------------------------------------------------
# scoring


def match(found, truth, radius):
    """One-to-one matching (Hungarian on distances below ``radius``): truth index -> found index or -1."""
    out = np.full(len(truth), -1)
    if len(found) == 0 or len(truth) == 0:
        return out
    pairs = cKDTree(truth).sparse_distance_matrix(cKDTree(found), radius, output_type="coo_matrix")
    if pairs.nnz == 0:
        return out
    ti, fi = np.unique(pairs.row), np.unique(pairs.col)
    cost = np.full((len(ti), len(fi)), 1e6)
    cost[np.searchsorted(ti, pairs.row), np.searchsorted(fi, pairs.col)] = pairs.data
    r, c = linear_sum_assignment(cost)
    good = cost[r, c] < 1e6
    out[ti[r[good]]] = fi[c[good]]
    return out


def scored(xy, shape, excluded, nn):
    """(N,) bool: positions inside the scored region (away from the edge and from contamination)."""
    h, w = shape
    m = EDGE_NN * nn
    inside = (xy[:, 0] >= m - 0.5) & (xy[:, 0] <= w - 0.5 - m) & (xy[:, 1] >= m - 0.5) & (xy[:, 1] <= h - 0.5 - m)
    rc = np.clip(np.rint(xy[:, ::-1]).astype(np.int64), 0, [h - 1, w - 1])
    return inside & ~excluded[rc[:, 0], rc[:, 1]]


def score(sim, found_xy, found_rings, bound):
    """Counts and sums for one image and one tool (summed over seeds before the ratios are taken)."""
    nn = BOND_PX
    truth_xy = sim.imaging.xy
    excluded = ndi.distance_transform_edt(~sim.imaging.contamination) <= EDGE_NN * nn
    t_in = scored(truth_xy, sim.image.shape, excluded, nn)
    f_in = scored(found_xy, sim.image.shape, excluded, nn) if len(found_xy) else np.zeros(0, bool)
    m = match(found_xy, truth_xy, MATCH_NN * nn)
    hit = (m >= 0) & t_in
    matched_found = np.zeros(len(found_xy), bool)
    matched_found[m[m >= 0]] = True
    tp = int(hit.sum())
    fn = int((t_in & (m < 0)).sum())
    fp = int((f_in & ~matched_found).sum())
    d2 = ((found_xy[m[hit]] - truth_xy[hit]) ** 2).sum(axis=1) if tp else np.zeros(0)
    b2 = (bound[hit] ** 2).sum(axis=1)
    # rings: the true rings whose atoms are all scored; the detected rings whose atoms are all scored
    true_rings = [r for r in sim.truth.rings if t_in[list(r)].all()]
    found_set = {frozenset(r) for r in found_rings}
    recovered = sum(1 for r in true_rings if (m[list(r)] >= 0).all() and frozenset(m[list(r)].tolist()) in found_set)
    kept = [r for r in found_rings if f_in[list(r)].all()]
    return {
        "tp": tp, "fn": fn, "fp": fp, "sq_err": float(d2.sum()), "sq_bound": float(b2.sum()),
        "rings_true": len(true_rings), "rings_recovered": recovered,
        "hist_true": np.bincount([len(r) for r in true_rings], minlength=13)[:13].tolist(),
        "hist_found": np.bincount([len(r) for r in kept], minlength=13)[:13].tolist(),
    }


def summarise(parts):
    s = {k: sum(p[k] for p in parts) for k in ("tp", "fn", "fp", "sq_err", "sq_bound", "rings_true", "rings_recovered")}
    ht = np.sum([p["hist_true"] for p in parts], axis=0).astype(float)
    hf = np.sum([p["hist_found"] for p in parts], axis=0).astype(float)
    f1 = 2 * s["tp"] / max(2 * s["tp"] + s["fn"] + s["fp"], 1)
    rmse = math.sqrt(s["sq_err"] / s["tp"]) if s["tp"] else math.nan
    crb = math.sqrt(s["sq_bound"] / s["tp"]) if s["tp"] else math.nan
    l1 = float(np.abs(hf - ht).sum() / max(ht.sum(), 1))
    return {"f1": f1, "rmse_px": rmse, "crb_px": crb, "rmse_over_crb": rmse / crb if crb > 0 else math.nan,
            "ring_recovery": s["rings_recovered"] / max(s["rings_true"], 1), "ring_l1": l1,
            "n_true_atoms": s["tp"] + s["fn"], "n_true_rings": s["rings_true"], "n_images": len(parts)}


# ---------------------------------------------------------------------------------------------------------
# Atomap, in the peer venv


ATOMAP_SCRIPT = r"""
import json, sys, logging
import numpy as np
import atomap.api as am
import hyperspy.api as hs
logging.getLogger("atomap").setLevel(logging.ERROR)
out = {}
for path in sys.argv[2:]:
    image = np.load(path).astype(np.float64)
    nn = float(sys.argv[1])
    s = hs.signals.Signal2D(image)
    try:
        peaks = am.get_atom_positions(s, separation=max(2, int(0.5 * nn)), pca=True)
        sub = am.Sublattice(peaks, image=image)
        sub.find_nearest_neighbors()
        sub.refine_atom_positions_using_center_of_mass(show_progressbar=False)
        sub.refine_atom_positions_using_2d_gaussian(percent_to_nn=0.4, show_progressbar=False)
        out[path] = np.stack([sub.x_position, sub.y_position], axis=1).tolist()
    except Exception as exc:
        out[path] = repr(exc)
print(json.dumps(out))
"""


def run_atomap(paths, peer_python):
    proc = subprocess.run([str(peer_python), "-c", ATOMAP_SCRIPT, str(BOND_PX), *map(str, paths)],
                          capture_output=True, text=True, cwd=WORK)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------


def table(results, doses):
    lines = ["| material | dose | tool | F1 | RMSE px | CRB px | RMSE/CRB | ring recovery | ring L1 | true atoms · rings |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for material in MATERIALS:
        for dose in doses:
            cell = results.get(material, {}).get(str(dose), {})
            for tool, r in cell.items():
                lines.append(
                    f"| {material} | {dose} | {tool} | {r['f1']:.3f} | {r['rmse_px']:.3f} | {r['crb_px']:.3f} | "
                    f"{r['rmse_over_crb']:.2f} | {r['ring_recovery']:.3f} | {r['ring_l1']:.3f} | "
                    f"{r['n_true_atoms']} · {r['n_true_rings']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doses", type=float, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--materials", nargs="+", default=list(MATERIALS), choices=list(MATERIALS))
    parser.add_argument("--no-atomap", action="store_true")
    parser.add_argument("--peer-python", default=str(ROOT / ".bench" / "venv" / "bin" / "python"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "accuracy.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from motifgram.engine.imaging import position_bound

    WORK.mkdir(parents=True, exist_ok=True)
    doses = [int(d) if float(d).is_integer() else d for d in args.doses]
    parts = {}  # (material, dose, tool) -> list of score dicts
    atomap_jobs = {}
    start = time.perf_counter()
    for material in args.materials:
        for dose in doses:
            for seed in args.seeds:
                sim = simulate_case(material, dose, seed, args.size)
                bound = position_bound(sim.imaging, nn_px=BOND_PX)
                for tool, fn in (("motifgram", lambda im: run_motifgram(im)),
                                 ("reference", lambda im: run_reference(im, BOND_PX))):
                    try:
                        xy, rings = fn(sim.image)
                    except Exception as exc:  # a tool that fails on an image scores zero there
                        print(f"{tool} failed on {material} dose {dose} seed {seed}: {exc}", file=sys.stderr)
                        xy, rings = np.zeros((0, 2)), []
                    parts.setdefault((material, dose, tool), []).append(score(sim, xy, rings, bound))
                if seed == args.seeds[0] and not args.no_atomap:
                    path = WORK / f"{material}_{dose}_{seed}.npy"
                    np.save(path, sim.image)
                    atomap_jobs[str(path)] = (material, dose, sim, bound)
                print(f"{material} dose {dose} seed {seed} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if atomap_jobs and Path(args.peer_python).exists():
        found = run_atomap(list(atomap_jobs), args.peer_python)
        for path, (material, dose, sim, bound) in atomap_jobs.items():
            value = found.get(path)
            if isinstance(value, str):
                print(f"atomap failed on {path}: {value}", file=sys.stderr)
                xy = np.zeros((0, 2))
            else:
                xy = np.asarray(value, np.float64).reshape(-1, 2)
            parts.setdefault((material, dose, "atomap (seed 0)"), []).append(
                score(sim, xy, reference_rings(xy, BOND_PX), bound))
    results = {}
    for (material, dose, tool), p in parts.items():
        results.setdefault(material, {}).setdefault(str(dose), {})[tool] = summarise(p)
    meta = {"command": " ".join(["python", "benchmarks/accuracy.py", *sys.argv[1:]]), "size": args.size,
            "seeds": args.seeds, "doses": doses, "realistic": REALISTIC, "materials": MATERIALS,
            "seconds": time.perf_counter() - start}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    text = table(results, doses)
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
