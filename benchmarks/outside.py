"""motifgram as an outside evaluator meets it: micrographs from a renderer that shares no code with motifgram's.

    python benchmarks/outside.py                                   # graphene and MoS2, 20 and 60 counts, seeds 11-14
    python benchmarks/outside.py --kinds mos2 --doses 20 --seeds 11 --out benchmarks/outside.json

The accuracy benchmark (``accuracy.py``) renders with ``engine/imaging.py``, the model the detector was developed
against. The issues' figures came from outside the project, from a different renderer; this one is written here,
from the physics, without ``motifgram.engine.simulate`` or ``engine/imaging``: its own lattice (a honeycomb at a
random angle and offset, 0.05 px static disorder), columns as a Gaussian core (sigma 0.30 bond for graphene, 0.25
for MoS2) plus a broad tail (0.15 of the core's integral at 4.5x its sigma), a background ramp and broad blobs, two
patches of amorphous carbon (random dim spots, not on the lattice), Poisson counts at ``dose`` per unit column peak,
Gaussian read noise and a white per-row x shift (0.2 px; the truth is each column's position as imaged: the
shift averaged over its rows). MoS2 (2H, [001]): Mo 1, S2 0.39, single S 0.19 (5 % of the S2 sites), S+Se 0.60
(8 %), from Z**1.7. Graphene: 0.5 % of the atoms removed (isolated vacancies, each leaving a 12-ring when not
reconstructed).

Each image runs through the CLI exactly as a user runs it (``motifgram run SPEC``, a new process, a spec of only
the path and the pixel size) and through the plain reference of ``accuracy.py`` (smoothing, ``peak_local_max``,
centre of mass, given the true bond). Scores over the columns at least a bond inside the image and clear of the
carbon patches: recall, precision, position RMSE (px, one-to-one matches within half a bond), per-class recall,
the token ARI against the true column classes
(and the clear columns' share in their commonest token), and for graphene the vacancies inside
(3 bonds from the edge, clear of the patches) with a 12-ring centred within a bond, and the 12-rings there.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import match, run_reference  # noqa: E402

BOND_PX = 9.0
PIXEL_NM = 0.142 / BOND_PX
SIZE = 384
READ_NOISE = 0.5  # counts
CLASSES = {"graphene": ("C",), "mos2": ("Mo", "S2", "S1", "SSe")}


def honeycomb(rng, size, bond):
    """Two-site honeycomb covering the image (plus a margin), at a random angle and offset: (N, 2) xy, (N,) site."""
    a = bond * np.sqrt(3)
    angle = rng.uniform(0, np.pi / 3)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    cells = np.arange(-int(size / a) - 4, 2 * int(size / a) + 4)
    i, j = np.meshgrid(cells, cells, indexing="ij")
    base = np.stack([i.ravel() * a + j.ravel() * a / 2, j.ravel() * a * np.sqrt(3) / 2], axis=1)
    sites = np.concatenate([base, base + [a / 2, a / (2 * np.sqrt(3))]])
    site = np.repeat([0, 1], len(base))
    xy = sites @ rot.T + rng.uniform(0, a, 2)
    keep = np.all((xy > -3 * bond) & (xy < size + 3 * bond), axis=1)
    return xy[keep], site[keep]


def structure(kind, rng):
    """Columns (xy px, relative amplitude, class index) and, for graphene, the vacancies' positions."""
    xy, site = honeycomb(rng, SIZE, BOND_PX)
    if kind == "graphene":
        vacancies = []
        for k in rng.permutation(len(xy)):  # isolated: no two within 3 bonds
            if len(vacancies) >= 0.005 * len(xy):
                break
            if all(np.hypot(*(xy[k] - xy[v])) > 3 * BOND_PX for v in vacancies):
                vacancies.append(k)
        keep = np.setdiff1d(np.arange(len(xy)), vacancies)
        return xy[keep], np.ones(len(keep)), np.zeros(len(keep), int), xy[vacancies]
    label = site.copy()
    chalcogen = np.flatnonzero(site == 1)
    draw = rng.random(len(chalcogen))
    label[chalcogen[draw < 0.05]] = 2
    label[chalcogen[(draw >= 0.05) & (draw < 0.13)]] = 3
    return xy, np.array([1.0, 0.39, 0.19, 0.60])[label], label, np.empty((0, 2))


def render(kind, seed, dose):
    """The image (float32, counts), the truth (xy as imaged, class), the carbon patches' mask and the vacancies."""
    rng = np.random.default_rng(seed)
    xy, amplitude, label, vacancies = structure(kind, rng)
    xy = xy + rng.normal(0, 0.05, xy.shape)
    sigma = (0.30 if kind == "graphene" else 0.25) * BOND_PX
    tail_sigma, tail_share = 4.5 * sigma, 0.15
    shift = rng.normal(0, 0.2, SIZE)  # per-row x shift of the scan (px)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    xx_imaged = xx - shift[:, None]
    image = np.zeros((SIZE, SIZE))
    reach = int(4 * tail_sigma) + 2
    for (x, y), amp in zip(xy, amplitude):
        rows = slice(max(int(y) - reach, 0), min(int(y) + reach, SIZE))
        cols = slice(max(int(x) - reach, 0), min(int(x) + reach, SIZE))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        d2 = (xx_imaged[rows, cols] - x) ** 2 + (yy[rows, cols] - y) ** 2
        image[rows, cols] += amp * (np.exp(-d2 / (2 * sigma**2))
                                    + tail_share * (sigma / tail_sigma) ** 2 * np.exp(-d2 / (2 * tail_sigma**2)))
    patches = np.zeros((SIZE, SIZE), bool)
    for _ in range(2):  # amorphous carbon: dim random spots, 0.3 of a column, in a disk of 3-5 bonds
        centre, radius = rng.uniform(0.15, 0.85, 2) * SIZE, rng.uniform(3, 5) * BOND_PX
        inside = np.hypot(xx - centre[0], yy - centre[1]) < radius
        patches |= np.hypot(xx - centre[0], yy - centre[1]) < radius + BOND_PX
        n_spots = int(inside.sum() / (0.8 * BOND_PX**2))
        for y, x in np.argwhere(inside)[rng.choice(inside.sum(), n_spots)]:
            image += 0.3 * rng.random() * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (0.8 * sigma) ** 2))
    ramp = rng.normal(size=2) * 0.15
    background = 0.05 + ramp[0] * (xx / SIZE - 0.5) + ramp[1] * (yy / SIZE - 0.5)
    for _ in range(4):
        centre, width = rng.uniform(0, SIZE, 2), rng.uniform(20, 60)
        background += 0.12 * rng.random() * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * width**2))
    expected = np.clip(dose * (image + background), 0, None)
    counts = rng.poisson(expected) + rng.normal(0, READ_NOISE, image.shape)
    rows = np.arange(SIZE)
    weight = np.exp(-(rows[None, :] - xy[:, 1:2]) ** 2 / (2 * sigma**2))
    imaged = xy.copy()
    imaged[:, 0] += (weight * shift).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-12)
    inside = np.all((imaged >= 0) & (imaged <= SIZE - 1), axis=1)
    floor = position_floor(xy[inside], dose * amplitude[inside], expected + READ_NOISE**2, sigma, tail_sigma,
                           tail_share)
    return counts.astype(np.float32), imaged[inside], label[inside], patches, vacancies, floor


def position_floor(xy, peak, variance, sigma, tail_sigma, tail_share):
    """Each column's 2-D position bound (px) if everything else in the image were known: the Fisher information of
    its own x and y from Poisson + read noise (``variance``, counts squared per pixel) over its +-4 sigma window.
    A floor, below the Cramér–Rao bound of a fit that must also find amplitudes, widths, neighbours and
    background, and blind to the row shifts."""
    reach = int(4 * sigma) + 1
    off = np.arange(-reach, reach + 1)
    bound = np.empty(len(xy))
    for k, (x, y) in enumerate(xy):
        rows, cols = np.clip(int(y) + off, 0, SIZE - 1), np.clip(int(x) + off, 0, SIZE - 1)
        dx, dy = cols[None, :] - x, rows[:, None] - y
        d2 = dx**2 + dy**2
        slope = peak[k] * (np.exp(-d2 / (2 * sigma**2)) / sigma**2
                           + tail_share * (sigma / tail_sigma) ** 2 * np.exp(-d2 / (2 * tail_sigma**2)) / tail_sigma**2)
        var = variance[np.ix_(rows, cols)]
        bound[k] = np.sqrt(1 / np.sum((slope * dx) ** 2 / var) + 1 / np.sum((slope * dy) ** 2 / var))
    return bound


def run_cli(image, work, name, pixel_nm):
    """``motifgram run`` on the image as a user runs it (a new process, a spec of the path and the pixel size in
    nm only): atoms.csv's xy (px) and tokens, and rings.csv's rows."""
    np.save(work / f"{name}.npy", image)
    (work / f"{name}.yaml").write_text(f"name: {name}\ninputs:\n  - path: {work / name}.npy\n"
                                       f"    pixel_size: {pixel_nm:.6g}\n")
    out = work / f"run-{name}"
    subprocess.run([str(Path(sys.executable).parent / "motifgram"), "run", str(work / f"{name}.yaml"), "--out",
                    str(out), "--quiet", "--force"], check=True, stdout=subprocess.DEVNULL)
    atoms = np.genfromtxt(out / "atoms.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    rings = np.genfromtxt(out / "rings.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    return np.column_stack([atoms["x"], atoms["y"]]), np.asarray(atoms["token"]).astype(str), np.atleast_1d(rings)


def scores(found, truth, label, classes, scored_truth, scored_found, bond_px=BOND_PX):
    """Recall, precision, RMSE (px) and recall per class over the scored columns (one-to-one matches within half
    a bond); the matches (truth index -> found index or -1)."""
    pairs = match(found, truth, 0.5 * bond_px)
    hit = pairs >= 0
    matched_found = np.zeros(len(found), bool)
    matched_found[pairs[hit]] = True
    d = np.hypot(*(found[pairs[hit & scored_truth]] - truth[hit & scored_truth]).T)
    return {"recall": float(hit[scored_truth].mean()), "precision": float(matched_found[scored_found].mean()),
            "rmse_px": float(np.sqrt(np.mean(d**2))),
            "recall_by_class": {name: float(hit[scored_truth & (label == k)].mean())
                                for k, name in enumerate(classes) if np.any(scored_truth & (label == k))}}, pairs


def measure(kind, seed, dose, work):
    """One image: rendered, run through the CLI and the reference, scored."""
    from motifgram.engine.mixture import adjusted_rand_index

    image, truth, label, patches, vacancies, floor = render(kind, seed, dose)

    def clear(xy):
        rc = np.clip(np.rint(xy[:, ::-1]).astype(int), 0, SIZE - 1)
        return np.all((xy >= BOND_PX) & (xy <= SIZE - 1 - BOND_PX), axis=1) & ~patches[rc[:, 0], rc[:, 1]]

    name = f"{kind}-{seed}-{dose:g}"
    found, token, rings = run_cli(image, work, name, PIXEL_NM)
    row = {"kind": kind, "seed": seed, "dose": dose, "columns": int(clear(truth).sum())}
    row["position_floor_px"] = float(np.sqrt(np.mean(floor[clear(truth)] ** 2)))
    row["motifgram"], pairs = scores(found, truth, label, CLASSES[kind], clear(truth), clear(found))
    ref_xy, _ = run_reference(image.astype(np.float64), BOND_PX)
    row["reference"], _ = scores(ref_xy, truth, label, CLASSES[kind], clear(truth), clear(ref_xy))
    both = (pairs >= 0) & clear(truth)
    row["tokens"] = len(set(token.tolist()))
    # graphene has one class, where the ARI says nothing: the share of its clear columns in their commonest token
    kept = token[pairs[both]]
    row["main_token_share"] = float(np.max(np.unique(kept, return_counts=True)[1]) / len(kept))
    row["token_ari"] = float(adjusted_rand_index(label[both], np.unique(kept, return_inverse=True)[1]))
    if kind == "graphene":  # a vacancy inside leaves a 12-ring centred on it; rings centred elsewhere are invented
        def inner(xy):
            return clear(xy) & np.all((xy >= 3 * BOND_PX) & (xy <= SIZE - 1 - 3 * BOND_PX), axis=1)

        big = [np.array(r.split(), int) for r, n in zip(rings["atoms"], rings["size"]) if n == 12]
        centres = np.array([found[r].mean(axis=0) for r in big]).reshape(-1, 2)
        centres = centres[inner(centres)]
        near = np.hypot(*(vacancies[:, None] - centres[None]).transpose(2, 0, 1)) < BOND_PX
        row["vacancies_inside"] = int(inner(vacancies).sum())
        row["vacancies_with_12_ring"] = int(near[inner(vacancies)].any(axis=1).sum())
        row["rings_12_inside"] = len(centres)
        row["rings_by_size"] = {int(n): int(c) for n, c in zip(*np.unique(rings["size"], return_counts=True))}
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["graphene", "mos2"], choices=sorted(CLASSES))
    parser.add_argument("--doses", nargs="+", type=float, default=[20.0, 60.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[11, 12, 13, 14])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path, help="keep the images, specs and runs here (default: a temporary folder)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for kind in args.kinds:
            for dose in args.doses:
                for seed in args.seeds:
                    row = measure(kind, seed, dose, work)
                    rows.append(row)
                    m, r = row["motifgram"], row["reference"]
                    extra = (f" vacancies inside {row['vacancies_inside']}, with their 12-ring "
                             f"{row['vacancies_with_12_ring']}, 12-rings inside {row['rings_12_inside']}"
                             if kind == "graphene" else "")
                    print(f"{kind} {dose:g} counts seed {seed}: floor {row['position_floor_px']:.3f} px; "
                          f"motifgram recall {m['recall']:.3f} precision "
                          f"{m['precision']:.3f} RMSE {m['rmse_px']:.3f} px {m['recall_by_class']} tokens "
                          f"{row['tokens']} ARI {row['token_ari']:.3f} main token "
                          f"{row['main_token_share']:.3f}{extra} | reference recall {r['recall']:.3f} "
                          f"precision {r['precision']:.3f} RMSE {r['rmse_px']:.3f} px", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
