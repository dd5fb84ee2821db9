"""motifgram as an outside evaluator meets it: micrographs from a renderer that shares no code with motifgram's.

    python benchmarks/outside.py                                   # graphene and MoS2, 20 and 60 counts, seeds 11-14
    python benchmarks/outside.py --kinds mos2 --doses 20 --seeds 11 --out benchmarks/outside.json
    python benchmarks/outside.py --harsh --kinds graphene mos2 mos2_madf --out benchmarks/outside_harsh.json

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

Options (``--effects``, or ``--harsh`` for all; each from its own seed stream, so the default images are unchanged):
``drift``, a linear slow-scan drift plus an exponential stage settling (2 + 2 px over the frame; the truth and the
vacancies are where they are imaged); ``rows``, 1/f noise along the slow axis: a row gain (probe current flicker, rms
3 %), a row offset (detector baseline, rms 0.05 of a unit peak) and row x shifts (rms 0.3 px); ``thickness``, a smooth
log-normal factor on the column peaks (std 0.15); ``cover``, amorphous carbon over 25 % of the field (3 random layers
at graphene's areal density). Kind ``mos2_madf``: MoS2 at the MADF contrast of the abTEM crop (:data:`CONTRAST`).

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
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import match, run_reference  # noqa: E402

BOND_PX = 9.0
PIXEL_NM = 0.142 / BOND_PX
SIZE = 384
READ_NOISE = 0.5  # counts
CLASSES = {"graphene": ("C",), "mos2": ("Mo", "S2", "S1", "SSe"), "mos2_madf": ("Mo", "S2", "S1", "SSe")}
#: Column peaks relative to Mo. HAADF: Z**1.7 column sums. MADF: the peaks of benchmarks/abtem_crops.npz's MoS2 crop
#: (60 kV, 54-200 mrad) at its true columns, median per class: S2 0.68 (71 columns), S1 0.20 (2), S+Se 1.50 (2).
CONTRAST = {"mos2": (1.0, 0.39, 0.19, 0.60), "mos2_madf": (1.0, 0.68, 0.20, 1.50)}
#: Carbon's peak in each kind's unit (the graphene column; Mo): Z**1.7 for HAADF; for MADF the exponent 1.12 that
#: gives the crop's single-S peak (0.20 of Mo for Z 16 against 42).
CARBON = {"graphene": 1.0, "mos2": (6 / 42) ** 1.7, "mos2_madf": (6 / 42) ** 1.12}
EFFECTS = ("drift", "rows", "thickness", "cover")
DRIFT_LINEAR_PX = 2.0  # linear slow-scan drift over the frame (px, random direction)
DRIFT_SETTLE_PX = 2.0  # stage settling: an exponentially decaying drift adding this much (px, random direction)
DRIFT_SETTLE_TAU = 0.3  # its time constant, in frames
ROW_GAIN = 0.03  # rms of the probe current's 1/f flicker along the slow scan (relative)
ROW_OFFSET = 0.05  # rms of the detector baseline's 1/f wander from row to row (unit column peaks)
ROW_SHIFT_PX = 0.3  # rms of 1/f row x displacements from stray fields (px), beside the white 0.2 px
THICKNESS = 0.15  # relative std of a smooth log-normal factor on column peaks (correlation SIZE / 8)
COVER = 0.25  # share of the field under amorphous carbon
COVER_LAYERS = 3  # carbon layers at graphene's areal density stacked in the cover (about 1 nm)


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
    return xy, np.array(CONTRAST[kind])[label], label, np.empty((0, 2))


def effect_rng(seed, effect):
    """The stream of one added effect: its own, so that the default images draw as before and any subset of
    effects draws each the same way."""
    return np.random.default_rng([seed, 18, EFFECTS.index(effect)])


def one_over_f(n, rng):
    """(n,) zero-mean, unit-rms noise whose power falls as 1/frequency (flicker)."""
    f = np.fft.rfftfreq(n)
    spectrum = (rng.normal(size=len(f)) + 1j * rng.normal(size=len(f))) / np.sqrt(np.maximum(f, f[1]))
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std()


def slow_drift(rng):
    """(SIZE, 2) displacement (px, x and y) of the sample at the time each row is scanned: a linear drift plus a
    stage settling (exponential in time), each in its own random direction; a row lasts 1 / SIZE of the frame, so
    the drift within a row is neglected."""
    t = np.arange(SIZE) / SIZE
    direction = np.exp(1j * rng.uniform(0, 2 * np.pi, 2))
    settle = (1 - np.exp(-t / DRIFT_SETTLE_TAU)) / (1 - np.exp(-1 / DRIFT_SETTLE_TAU))
    d = DRIFT_LINEAR_PX * t * direction[0] + DRIFT_SETTLE_PX * settle * direction[1]
    return np.stack([d.real, d.imag], axis=1)


def smooth_field(rng, scale):
    """(SIZE, SIZE) zero-mean, unit-std random field smoothed by a Gaussian of ``scale`` px."""
    field = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), scale, mode="wrap")
    return (field - field.mean()) / field.std()


def carbon_cover(kind, rng, sigma):
    """Amorphous carbon over ``COVER`` of the field: the mask and its image (unit column peaks). The mask is the
    highest share of a field smoothed over 3 bonds; the carbon is ``COVER_LAYERS`` layers of randomly placed atoms
    at graphene's areal density (at pixel centres), each a probe core of peak ``CARBON[kind]`` x U(0.6, 1.4)."""
    field = smooth_field(rng, 3 * BOND_PX)
    mask = field >= np.quantile(field, 1 - COVER)
    n_atoms = rng.poisson(COVER_LAYERS * mask.sum() / (3 * np.sqrt(3) / 4 * BOND_PX**2))
    pixel = np.flatnonzero(mask)[rng.integers(0, mask.sum(), n_atoms)]
    mass = CARBON[kind] * rng.uniform(0.6, 1.4, n_atoms) * 2 * np.pi * sigma**2
    canvas = np.bincount(pixel, weights=mass, minlength=SIZE * SIZE).reshape(SIZE, SIZE)
    return mask, ndimage.gaussian_filter(canvas, sigma, mode="constant")


def render(kind, seed, dose, effects=()):
    """The image (float32, counts), the truth (xy as imaged, class), the carbon-covered mask, the vacancies and
    each truth column's position floor (px); ``effects``: any of :data:`EFFECTS` added to the mild model."""
    rng = np.random.default_rng(seed)
    xy, amplitude, label, vacancies = structure(kind, rng)
    xy = xy + rng.normal(0, 0.05, xy.shape)
    sigma = (0.30 if kind == "graphene" else 0.25) * BOND_PX
    tail_sigma, tail_share = 4.5 * sigma, 0.15
    shift = rng.normal(0, 0.2, SIZE)  # per-row x shift of the scan (px)
    rows = np.arange(SIZE)
    drift = np.zeros((SIZE, 2))  # the sample's displacement when each row is scanned (px)
    gain, offset = np.ones(SIZE), np.zeros(SIZE)
    if "thickness" in effects:
        field = smooth_field(effect_rng(seed, "thickness"), SIZE / 8)
        rc = np.clip(np.rint(xy[:, ::-1]).astype(int), 0, SIZE - 1)
        s = np.sqrt(np.log1p(THICKNESS**2))
        amplitude = amplitude * np.exp(s * field[rc[:, 0], rc[:, 1]] - s**2 / 2)
    if "drift" in effects:
        drift = slow_drift(effect_rng(seed, "drift"))
    if "rows" in effects:
        row_rng = effect_rng(seed, "rows")
        gain = 1 + ROW_GAIN * one_over_f(SIZE, row_rng)
        offset = ROW_OFFSET * one_over_f(SIZE, row_rng)
        shift = shift + ROW_SHIFT_PX * one_over_f(SIZE, row_rng)
    x_imaged, y_imaged = drifted(xy, drift).T
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    xx_sample = xx - shift[:, None] - drift[:, :1]  # the sample point under each pixel's probe
    yy_sample = yy - drift[:, 1:]
    image = np.zeros((SIZE, SIZE))
    reach = int(4 * tail_sigma) + 2
    for x, y, xi, yi, amp in zip(xy[:, 0], xy[:, 1], x_imaged, y_imaged, amplitude):
        rows_in = slice(max(int(yi) - reach, 0), min(int(yi) + reach, SIZE))
        cols = slice(max(int(xi) - reach, 0), min(int(xi) + reach, SIZE))
        if rows_in.start >= rows_in.stop or cols.start >= cols.stop:
            continue
        d2 = (xx_sample[rows_in, cols] - x) ** 2 + (yy_sample[rows_in, cols] - y) ** 2
        image[rows_in, cols] += amp * (np.exp(-d2 / (2 * sigma**2))
                                       + tail_share * (sigma / tail_sigma) ** 2 * np.exp(-d2 / (2 * tail_sigma**2)))
    patches = np.zeros((SIZE, SIZE), bool)
    for _ in range(2):  # amorphous carbon: dim random spots, 0.3 of a column, in a disk of 3-5 bonds
        centre, radius = rng.uniform(0.15, 0.85, 2) * SIZE, rng.uniform(3, 5) * BOND_PX
        inside = np.hypot(xx - centre[0], yy - centre[1]) < radius
        patches |= np.hypot(xx - centre[0], yy - centre[1]) < radius + BOND_PX
        n_spots = int(inside.sum() / (0.8 * BOND_PX**2))
        for y, x in np.argwhere(inside)[rng.choice(inside.sum(), n_spots)]:
            image += 0.3 * rng.random() * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (0.8 * sigma) ** 2))
    if "cover" in effects:
        cover, carbon = carbon_cover(kind, effect_rng(seed, "cover"), sigma)
        image += carbon
        patches |= ndimage.distance_transform_edt(~cover) < BOND_PX
    ramp = rng.normal(size=2) * 0.15
    background = 0.05 + ramp[0] * (xx / SIZE - 0.5) + ramp[1] * (yy / SIZE - 0.5)
    for _ in range(4):
        centre, width = rng.uniform(0, SIZE, 2), rng.uniform(20, 60)
        background += 0.12 * rng.random() * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * width**2))
    expected = np.clip(dose * gain[:, None] * (image + background), 0, None)
    counts = rng.poisson(expected) + rng.normal(0, READ_NOISE, image.shape) + dose * offset[:, None]
    weight = np.exp(-(rows[None, :] - y_imaged[:, None]) ** 2 / (2 * sigma**2))
    unshifted = np.stack([x_imaged, y_imaged], axis=1)
    imaged = unshifted.copy()
    imaged[:, 0] += (weight * shift).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-12)
    inside = np.all((imaged >= 0) & (imaged <= SIZE - 1), axis=1)
    peak = dose * amplitude * np.interp(y_imaged, rows, gain)
    floor = position_floor(unshifted[inside], peak[inside], expected + READ_NOISE**2, sigma, tail_sigma, tail_share)
    return counts.astype(np.float32), imaged[inside], label[inside], patches, drifted(vacancies, drift), floor


def drifted(xy, drift):
    """(N, 2) positions (px) where points of the sample at ``xy`` are imaged under the slow-scan ``drift`` (the
    sample's displacement when each row is scanned): at the row r where r - dy(r) = y, and x + dx(r)."""
    rows = np.arange(SIZE)
    y = xy[:, 1].copy()
    for _ in range(6):  # a fixed point: dy changes by far less than a pixel per row
        y = xy[:, 1] + np.interp(y, rows, drift[:, 1])
    return np.stack([xy[:, 0] + np.interp(y, rows, drift[:, 0]), y], axis=1)


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
    both = hit & scored_truth
    delta = found[pairs[both]] - truth[both]
    d = np.hypot(*delta.T)
    return {"recall": float(hit[scored_truth].mean()), "precision": float(matched_found[scored_found].mean()),
            "rmse_px": float(np.sqrt(np.mean(d**2))),
            "recall_by_class": {name: float(hit[scored_truth & (label == k)].mean())
                                for k, name in enumerate(classes) if np.any(scored_truth & (label == k))},
            # along the slow scan (y: drift, row offsets) and the fast scan (x: row shifts), per class
            "rmse_yx_by_class": {name: [float(np.sqrt(np.mean(delta[label[both] == k, 1] ** 2))),
                                        float(np.sqrt(np.mean(delta[label[both] == k, 0] ** 2)))]
                                 for k, name in enumerate(classes) if np.sum(label[both] == k) >= 5}}, pairs


def measure(kind, seed, dose, work, effects=()):
    """One image: rendered (with ``effects``, any of :data:`EFFECTS`), run through the CLI and the reference,
    scored."""
    from motifgram.engine.mixture import adjusted_rand_index

    image, truth, label, patches, vacancies, floor = render(kind, seed, dose, effects)

    def clear(xy):
        rc = np.clip(np.rint(xy[:, ::-1]).astype(int), 0, SIZE - 1)
        return np.all((xy >= BOND_PX) & (xy <= SIZE - 1 - BOND_PX), axis=1) & ~patches[rc[:, 0], rc[:, 1]]

    name = "-".join([kind, str(seed), f"{dose:g}", *effects])
    found, token, rings = run_cli(image, work, name, PIXEL_NM)
    row = {"kind": kind, "seed": seed, "dose": dose, **({"effects": list(effects)} if effects else {}),
           "columns": int(clear(truth).sum())}
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
        if effects:  # the carbon cover hides columns: those vacancies whose whole 12-ring (2 bonds) is clear too
            rc = np.clip(np.rint(vacancies[:, ::-1]).astype(int), 0, SIZE - 1)
            ring_clear = inner(vacancies) & (ndimage.distance_transform_edt(~patches)[rc[:, 0], rc[:, 1]] > 2 * BOND_PX)
            row["vacancies_ring_clear"] = int(ring_clear.sum())
            row["vacancies_ring_clear_with_12_ring"] = int(near[ring_clear].any(axis=1).sum())
        row["rings_12_inside"] = len(centres)
        row["rings_by_size"] = {int(n): int(c) for n, c in zip(*np.unique(rings["size"], return_counts=True))}
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["graphene", "mos2"], choices=sorted(CLASSES))
    parser.add_argument("--doses", nargs="+", type=float, default=[20.0, 60.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[11, 12, 13, 14])
    parser.add_argument("--effects", nargs="+", default=[], choices=EFFECTS,
                        help="effects added to the mild model: slow-scan drift, 1/f row noise, thickness, carbon cover")
    parser.add_argument("--harsh", action="store_true", help="all the effects (as --effects " + " ".join(EFFECTS) + ")")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path, help="keep the images, specs and runs here (default: a temporary folder)")
    args = parser.parse_args()
    effects = EFFECTS if args.harsh else tuple(e for e in EFFECTS if e in args.effects)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for kind in args.kinds:
            for dose in args.doses:
                for seed in args.seeds:
                    row = measure(kind, seed, dose, work, effects)
                    rows.append(row)
                    m, r = row["motifgram"], row["reference"]
                    extra = (f" vacancies inside {row['vacancies_inside']}, with their 12-ring "
                             f"{row['vacancies_with_12_ring']}, 12-rings inside {row['rings_12_inside']}"
                             if kind == "graphene" else "")
                    print(f"{kind} {dose:g} counts seed {seed}: floor {row['position_floor_px']:.3f} px; "
                          f"motifgram recall {m['recall']:.3f} precision "
                          f"{m['precision']:.3f} RMSE {m['rmse_px']:.3f} px {m['recall_by_class']} y, x "
                          f"{ {k: [round(v, 3) for v in yx] for k, yx in m['rmse_yx_by_class'].items()} } tokens "
                          f"{row['tokens']} ARI {row['token_ari']:.3f} main token "
                          f"{row['main_token_share']:.3f}{extra} | reference recall {r['recall']:.3f} "
                          f"precision {r['precision']:.3f} RMSE {r['rmse_px']:.3f} px", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
