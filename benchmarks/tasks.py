"""Benchmark worker: one measurement per fresh process, run by run.py.

    python benchmarks/tasks.py TASK --out result.json [--size N] [--repeats R] [--options JSON]

Tasks ``data`` and ``mg_*`` need motifgram (either venv); ``peer_*`` need the peer venv (.bench/venv).
Each writes one JSON object to ``--out``. Times are wall-clock seconds, the median of ``--repeats`` calls
after one untimed warm-up call unless a task says otherwise.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

T_PROCESS_START = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import (  # noqa: E402
    DATA_DIR,
    crop_box,
    data_file,
    gmm_mean_log_likelihood,
    integer_patches,
    load_data,
    match_positions,
    nn_distance,
    start_peaks,
    timed,
    write_json,
)

PIPELINE_STAGES = ("detect", "features", "tokens", "graph", "grammar", "parse")


# --------------------------------------------------------------------------------------------------
# data


def task_data(args, opts):
    """Simulate graphene micrographs (seed 0) with the current simulator; save them with their truth and scale."""
    from motifgram.engine.detect import estimate_lattice_period
    from motifgram.engine.patches import patch_size_for
    from motifgram.engine.simulate import simulate

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    out = {}
    for size in opts["sizes"]:
        start = time.perf_counter()
        sim = simulate("graphene", size=size, seed=0)
        period = estimate_lattice_period(sim.image)
        np.savez(
            data_file(size),
            image=sim.image,
            truth_xy=sim.truth.xy,
            n_truth_rings=len(sim.truth.rings),
            nn_px=nn_distance(sim.truth.xy),
            period_px=period,
            patch_size=patch_size_for(period),
            pixel_size_nm=sim.pixel_size_nm,
        )
        np.save(data_file(size, "npy"), sim.image)
        out[size] = {"n_atoms": int(len(sim.truth.xy)), "simulate_s": time.perf_counter() - start}
    return out


# --------------------------------------------------------------------------------------------------
# motifgram


def _spec(size, name="bench"):
    from motifgram.engine.spec import load_spec

    d = load_data(size)
    return load_spec({
        "name": name,
        "inputs": [{"path": str(data_file(size, "npy")), "pixel_size": float(d["pixel_size_nm"])}],
        "output": {"report": False, "overlays": False},
        "engine": {"workers": 1},  # in this process (the default for one micrograph, made explicit)
    })


def _run_once(spec):
    """One motifgram.engine.pipeline.run(); returns (wall s, stage timings, run directory)."""
    from motifgram.engine.pipeline import run

    out_dir = tempfile.mkdtemp(prefix="mgbench-") + "/run"
    start = time.perf_counter()
    run(spec, out_dir=out_dir, force=True, quiet=True)
    wall = time.perf_counter() - start
    with open(os.path.join(out_dir, "summary.json")) as f:
        summary = json.load(f)
    return wall, summary, out_dir


def _atoms_csv(out_dir):
    xy = np.loadtxt(os.path.join(out_dir, "atoms.csv"), delimiter=",", skiprows=1, usecols=(2, 3), ndmin=2)
    return xy


def task_mg_pipeline(args, opts):
    """Whole pipeline (run() with a spec), warm: one warm-up run, then the median of R runs per stage."""
    import shutil

    spec = _spec(args.size)
    d = load_data(args.size)
    _, _, warm_dir = _run_once(spec)
    shutil.rmtree(os.path.dirname(warm_dir), ignore_errors=True)
    walls, stages, summary, out_dir = [], [], None, None
    for _ in range(args.repeats):
        wall, summary, out_dir = _run_once(spec)
        walls.append(wall)
        stages.append(summary["timings"])
        xy = _atoms_csv(out_dir)
        shutil.rmtree(os.path.dirname(out_dir), ignore_errors=True)
    med = {s: float(np.median([t.get(s, 0.0) for t in stages])) for s in stages[0]}
    totals = [sum(t.get(s, 0.0) for s in PIPELINE_STAGES) for t in stages]
    image = next(iter(summary["images"].values()))
    return {
        "size": args.size,
        "n_atoms": image["n_atoms"],
        "n_rings": image["n_rings"],
        "n_truth_atoms": int(len(d["truth_xy"])),
        "n_truth_rings": int(d["n_truth_rings"]),
        "tokens_k": summary["tokens"]["k"],
        "n_rules": summary["grammar"]["n_rules"],
        "stage_s": med,
        "stage_s_all": stages,
        "detect_to_parse_s": float(np.median(totals)),
        "detect_to_parse_s_all": totals,
        "run_wall_s": float(np.median(walls)),
        "run_wall_s_all": walls,
        "accuracy": match_positions(xy, d["truth_xy"], max_dist=0.5 * float(d["nn_px"])),
    }


def task_mg_cold(args, opts):
    """One run() in this fresh process: imports + JIT compilation included; peak RSS at the end."""
    t_import = time.perf_counter()
    import motifgram.engine.pipeline  # noqa: F401

    import_s = time.perf_counter() - t_import
    spec = _spec(args.size)
    wall, summary, _ = _run_once(spec)
    return {
        "size": args.size,
        "import_s": import_s,
        "run_wall_s": wall,
        "stage_s": summary["timings"],
        "detect_to_parse_s": sum(summary["timings"].get(s, 0.0) for s in PIPELINE_STAGES),
        "in_process_s": time.perf_counter() - T_PROCESS_START,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "jax_compilation_cache_dir": os.environ.get("JAX_COMPILATION_CACHE_DIR"),
    }


def _time_zernike(out, d, reps):
    """Time the Zernike features (positions -> invariants) and the kernel alone on integer square patches.

    Adds ``out["zernike"]`` and ``out["zernike_kernel"]``; returns the features of the true positions.
    """
    from motifgram.engine.features import compute_features
    from motifgram.engine.zernike import rotation_invariants

    image, truth, patch = d["image"], d["truth_xy"], int(d["patch_size"])
    t, ts, feats = timed(lambda: compute_features(image, truth, patch_size=patch, n_max=10), repeats=reps)
    out["zernike"] = {"s": t, "all": ts, "n": len(truth), "n_moments": int(feats.moments.shape[1])}
    # the same integer square patches motif-learn gets
    patches = integer_patches(image, truth, patch)
    t, ts, inv = timed(lambda: rotation_invariants(_square_moments(patches)), repeats=reps)
    out["zernike_kernel"] = {"s": t, "all": ts, "n": len(patches), "n_moments": int(inv.shape[1])}
    out["zernike_product"] = _time_product_alone(patches, reps)
    return feats


def _time_product_alone(patches, reps):
    """The kernel's matrix product alone, on patches already in XLA memory (no NumPy hand-over, no complex
    result copied out): the floor of any implementation that is one dense float32 product."""
    import jax
    from motifgram.engine.buckets import N_BUCKET, pad_rows
    from motifgram.engine.zernike import _moments, _projector

    flat = np.zeros((pad_rows(len(patches)), patches[0].size), np.float32)
    flat[: len(patches)] = patches.reshape(len(patches), -1)
    chunks = [jax.device_put(flat[s : s + N_BUCKET]) for s in range(0, len(flat), N_BUCKET)]
    proj = jax.device_put(_projector(patches.shape[1:], 10, "square"))

    def product():
        return jax.block_until_ready([_moments(c, proj) for c in chunks])

    t, ts, _ = timed(product, repeats=reps)
    return {"s": t, "all": ts, "n": len(patches), "padded_rows": len(flat)}


def _time_em(z, em, reps):
    """Time ``fit_mixture`` on the whitened invariants ``z`` with the shared EM settings."""
    from motifgram.engine.mixture import fit_mixture

    t, ts, mix = timed(
        lambda: fit_mixture(z, n_components=em["k"], seed=0, n_init=em["n_init"], max_iter=em["max_iter"],
                            tol=em["tol"], reg_covar=em["reg_covar"], covariance="full"),
        repeats=reps,
    )
    return {
        "s": t, "all": ts, "n": len(z), "d": int(z.shape[1]), "n_iter": mix.n_iter, "converged": mix.converged,
        "mean_log_likelihood": gmm_mean_log_likelihood(z, mix.weights, mix.means, mix.covariances),
        "reported_log_likelihood": float(mix.log_likelihood),
    }


def task_mg_paired(args, opts):
    """The peer-compared kernels only (Zernike both ways, EM), for run.py's alternating paired rounds."""
    out = {"size": args.size}
    _time_zernike(out, load_data(args.size), args.repeats)
    out["em"] = _time_em(np.load(DATA_DIR / f"em_{args.size}.npy"), opts["em"], args.repeats)
    return out


def task_mg_kernels(args, opts):
    """motifgram's kernels alone, on the same inputs the peers get (warm, median of R)."""
    from motifgram.engine.detect import detect_atoms, refine_positions
    from motifgram.engine.graph import build_graph

    d = load_data(args.size)
    image, truth, nn = d["image"], d["truth_xy"], float(d["nn_px"])
    patch = int(d["patch_size"])
    reps = args.repeats
    out = {"size": args.size, "n_truth_atoms": int(len(truth)), "patch_size": patch, "nn_px": nn}

    # detection: the whole detect stage (period, peaks, Gaussian refinement)
    t, ts, atoms = timed(lambda: detect_atoms(image), repeats=reps)
    out["detect"] = {"s": t, "all": ts, "n": len(atoms.xy), **match_positions(atoms.xy, truth, max_dist=0.5 * nn)}

    # refinement alone from the common starting peaks (the Atomap comparison)
    peaks = start_peaks(image, nn)
    half_window = max(2, int(round(0.4 * nn)))
    t, ts, (xy, _) = timed(
        lambda: refine_positions(image, peaks, sigma_px=0.25 * nn, half_window=half_window), repeats=reps
    )
    box = crop_box(args.size, nn, opts.get("atomap_atoms", 300))
    inner = (box[0] + nn, box[1] + nn, box[2] - nn, box[3] - nn)
    out["refine"] = {
        "s": t, "all": ts, "n": len(peaks), "half_window_px": half_window,
        **match_positions(xy, truth, max_dist=0.5 * nn),
        "start": match_positions(peaks, truth, max_dist=0.5 * nn),
        "crop": match_positions(xy, truth, max_dist=0.5 * nn, region=inner),
    }

    feats = _time_zernike(out, d, reps)

    # EM on the whitened invariants (standardise, PCA to 10, whiten: as motifgram.engine.tokens does)
    inv = feats.invariants.astype(np.float64)
    z = (inv - inv.mean(0)) / np.where(inv.std(0) > 0, inv.std(0), 1.0)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    z = z @ vt[:10].T / (s[:10] / np.sqrt(len(z)))
    np.save(DATA_DIR / f"em_{args.size}.npy", z)
    out["em"] = _time_em(z, opts["em"], reps)

    # graph + rings on the true positions
    t, ts, graph = timed(lambda: build_graph(truth, image_shape=image.shape), repeats=reps)
    np.save(DATA_DIR / f"bonds_{args.size}.npy", graph.bonds)
    out["graph"] = {"s": t, "all": ts, "n": len(truth), "n_bonds": int(len(graph.bonds)),
                    "n_rings": int(len(graph.rings)), "n_truth_rings": int(d["n_truth_rings"])}
    return out


def task_mg_grammar_scaling(args, opts):
    """Graph, grammar induction and parsing of square crops of one tokenised 2048^2 graph, ~5k to ~50k atoms.

    One process, one token model (fitted as the pipeline does, on the whole image): only the crop size
    changes. Each crop also times ``build_graph`` and, alone, the scipy (qhull) Delaunay triangulation inside
    it (the graph stage's one super-linear part). The largest crop is also timed with Python's cyclic garbage
    collector disabled (diagnostic).
    """
    import gc

    from scipy.spatial import Delaunay

    from motifgram.engine.detect import detect_atoms
    from motifgram.engine.graph import build_graph
    from motifgram.engine.patches import normalise_image, patch_size_for
    from motifgram.engine.features import compute_features
    from motifgram.engine.tokens import assign_tokens, learn_tokens
    from motifgram.grammar.induce import induce_grammar
    from motifgram.grammar.parse import parse_graph

    d = load_data(args.size)
    image = d["image"]
    spec = _spec(args.size)
    grammar_spec = spec.grammar
    atoms = detect_atoms(image)
    feats = compute_features(normalise_image(image, atoms.xy), atoms.xy,
                             patch_size=patch_size_for(atoms.lattice_period_px), n_max=spec.features.n_max)
    model, _, _ = learn_tokens(feats.invariants, k=spec.tokens.k or "auto", k_range=tuple(spec.tokens.k_range),
                               n_init=spec.tokens.n_init, max_iter=spec.tokens.max_iter, seed=spec.seed)
    tokens = np.asarray(model.names)[assign_tokens(model, feats.invariants)[0]]
    kw = dict(min_count=grammar_spec.min_count, max_motif_size=grammar_spec.max_motif_size,
              min_domain_size=grammar_spec.min_domain_size)
    rows = []
    for fraction in opts.get("fractions", (0.1, 0.2, 0.4, 1.0)):
        side = int(round(args.size * fraction**0.5))
        sel = np.flatnonzero((atoms.xy[:, 0] < side - 0.5) & (atoms.xy[:, 1] < side - 0.5))
        t_graph, ts_graph, graph = timed(lambda: build_graph(atoms.xy[sel], image_shape=(side, side)),
                                         repeats=args.repeats)
        t_delaunay, ts_delaunay, _ = timed(lambda: Delaunay(atoms.xy[sel]), repeats=args.repeats)
        graph = graph.with_tokens(tokens[sel])
        t_ind, ts_ind, result = timed(lambda: induce_grammar([graph], name="bench", **kw), repeats=args.repeats)
        t_par, ts_par, _ = timed(
            lambda: parse_graph(result.grammar, graph, min_domain_size=grammar_spec.min_domain_size),
            repeats=args.repeats,
        )
        rows.append({"side_px": side, "n_atoms": int(len(sel)), "n_rings": len(graph.rings),
                     "n_rules": result.grammar.n_rules, "graph_s": t_graph, "graph_all": ts_graph,
                     "delaunay_s": t_delaunay, "delaunay_all": ts_delaunay, "grammar_s": t_ind, "grammar_all": ts_ind,
                     "parse_s": t_par, "parse_all": ts_par})
    gc.disable()
    try:
        t_ind_off = timed(lambda: induce_grammar([graph], name="bench", **kw), repeats=args.repeats)[0]
        t_par_off = timed(lambda: parse_graph(result.grammar, graph, min_domain_size=grammar_spec.min_domain_size),
                          repeats=args.repeats)[0]
    finally:
        gc.enable()
    return {"size": args.size, "tokens_k": len(model.names), "crops": rows,
            "largest_gc_off": {"grammar_s": t_ind_off, "parse_s": t_par_off}}


def _square_moments(patches):
    """motifgram's Zernike moments of square patches, n_max = 10 (the ``sampling`` keyword is newer)."""
    from motifgram.engine.zernike import zernike_moments

    try:
        return zernike_moments(patches, n_max=10, sampling="square")
    except TypeError:
        return zernike_moments(patches, n_max=10)


def task_mg_profile(args, opts):
    """cProfile of one warm run() (after a warm-up run); top functions by own and cumulative time."""
    import cProfile
    import io
    import pstats

    spec = _spec(args.size)
    _run_once(spec)
    prof = cProfile.Profile()
    prof.enable()
    wall, summary, _ = _run_once(spec)
    prof.disable()
    text = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(opts.get("top", 30))
        text[key] = buf.getvalue()
    path = opts.get("text_out")
    if path:
        with open(path, "w") as f:
            f.write(f"# cProfile of a warm motifgram run() on graphene {args.size}^2, wall {wall:.2f} s "
                    f"(profiler overhead included)\n# stage timings {summary['timings']}\n\n")
            f.write(text["tottime"] + "\n\n" + text["cumulative"])
    return {"size": args.size, "wall_s": wall, "stage_s": summary["timings"], "profile": path}


# --------------------------------------------------------------------------------------------------
# peers (run in the peer venv)


def task_peer_detect(args, opts):
    """motif-learn's detection: Gaussian denoise, local maxima, centre-of-mass refinement (r = 3 px).

    Two peak finders from motif-learn 0.1.2: ``features.local_max`` (skimage ``peak_local_max`` + a k-d
    tree distance filter) and ``features._local_max.local_max`` (scipy ``maximum_filter``); both then
    ``KeyPoints.refine`` (scipy ``center_of_mass`` on labelled r = 3 px squares). The peers get the true
    nearest-neighbour distance (an advantage motifgram, which estimates its scale, does not have).
    """
    from mtflearn.features import KeyPoints, local_max
    from mtflearn.features._local_max import local_max as maxfilter_local_max
    from scipy import ndimage as ndi

    d = load_data(args.size)
    image, truth, nn = d["image"].astype(np.float64), d["truth_xy"], float(d["nn_px"])

    def run(finder):
        smooth = ndi.gaussian_filter(image, 0.15 * nn)
        threshold = float(smooth.mean())
        if finder == "skimage":
            pts = local_max(smooth, min_distance=0.5 * nn, threshold=threshold)
        else:
            pts = maxfilter_local_max(smooth, min_distance=max(1, int(0.5 * nn)), threshold=threshold,
                                      exclude_border=False, plot=False)
        kp = KeyPoints(np.asarray(pts), image, 7)
        kp.refine(r=3)
        return kp.pts

    out = {"size": args.size, "nn_px": nn}
    for finder, repeats in (("maxfilter", args.repeats), ("skimage", opts.get("skimage_repeats", args.repeats))):
        t, ts, xy = timed(lambda: run(finder), repeats=repeats, warmup=1 if repeats > 1 else 0)
        out[finder] = {"s": t, "all": ts, "n": len(xy), **match_positions(xy, truth, max_dist=0.5 * nn)}
    return out


def task_peer_atomap(args, opts):
    """Atomap's per-atom 2-D Gaussian refinement on a central crop of ~300 atoms, from the common peaks."""
    import logging

    import atomap.api as am

    logging.getLogger("atomap").setLevel(logging.ERROR)
    d = load_data(args.size)
    image, truth, nn = d["image"].astype(np.float64), d["truth_xy"], float(d["nn_px"])
    peaks = start_peaks(d["image"], nn)
    x0, y0, x1, y1 = crop_box(args.size, nn, opts.get("atomap_atoms", 300))
    sel = (peaks[:, 0] >= x0) & (peaks[:, 0] < x1) & (peaks[:, 1] >= y0) & (peaks[:, 1] < y1)
    crop = image[y0:y1, x0:x1]
    local = peaks[sel] - [x0, y0]
    times, refined = [], None
    for _ in range(opts.get("atomap_repeats", 1)):
        sublattice = am.Sublattice(local.copy(), image=crop)
        sublattice.find_nearest_neighbors()
        start = time.perf_counter()
        sublattice.refine_atom_positions_using_2d_gaussian(percent_to_nn=0.4, show_progressbar=False)
        times.append(time.perf_counter() - start)
        refined = np.stack([sublattice.x_position, sublattice.y_position], axis=1) + [x0, y0]
    t = float(np.median(times))
    inner = (x0 + nn, y0 + nn, x1 - nn, y1 - nn)
    n_all = len(start_peaks(d["image"], nn))
    return {
        "size": args.size, "s_subset": t, "all": times, "n_subset": int(sel.sum()),
        "atoms_per_s": sel.sum() / t, "n_image": n_all, "s_extrapolated": t / sel.sum() * n_all,
        "crop": match_positions(refined, truth, max_dist=0.5 * nn, region=inner),
        "start_crop": match_positions(peaks[sel], truth, max_dist=0.5 * nn, region=inner),
    }


def task_peer_zernike(args, opts):
    """motif-learn: KeyPoints.extract_patches + ZPs(n_max=10).fit_transform + complex |A_nm|; mahotas per patch."""
    from mtflearn.features import ZPs, KeyPoints

    d = load_data(args.size)
    image, truth = d["image"], d["truth_xy"]
    patch = int(d["patch_size"])

    zps = ZPs(n_max=10, size=patch)  # the polynomial basis, built once (not timed), as motifgram caches its own

    def mtflearn_features():
        kp = KeyPoints(truth, image, patch)
        patches = kp.extract_patches(patch)
        zm = zps.fit_transform(patches)
        return np.abs(zm.to_complex().data), len(kp.pts)

    t, ts, (inv, n) = timed(mtflearn_features, repeats=args.repeats)
    out = {"size": args.size, "patch_size": patch,
           "mtflearn": {"s": t, "all": ts, "n": n, "n_moments": int(inv.shape[1])}}
    patches = integer_patches(image, truth, patch)
    t, ts, inv = timed(lambda: np.abs(zps.transform(patches).to_complex().data), repeats=args.repeats)
    out["mtflearn_kernel"] = {"s": t, "all": ts, "n": len(patches), "n_moments": int(inv.shape[1])}
    # its float64 product alone, the patches already converted (where ZPs.transform spends the rest: the
    # float32 -> float64 copy, the division by the area, to_complex's second product and |A|)
    flat64 = patches.reshape(len(patches), -1).astype(np.float64)
    basis = zps.polynomials.reshape(len(zps.polynomials), -1).T.copy()
    t, ts, _ = timed(lambda: flat64 @ basis, repeats=args.repeats)
    out["mtflearn_product"] = {"s": t, "all": ts, "n": len(patches), "n_columns": int(basis.shape[1])}
    if not opts.get("mahotas", True):
        return out
    try:
        import mahotas.features
    except ImportError as exc:
        out["mahotas"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out
    kp = KeyPoints(truth, image, patch)
    patches = kp.extract_patches(patch)
    subset = patches[: opts.get("mahotas_patches", 1000)]
    t, ts, _ = timed(
        lambda: [mahotas.features.zernike_moments(p, patch / 2, degree=10, cm=(patch // 2, patch // 2))
                 for p in subset], repeats=args.repeats
    )
    out["mahotas"] = {"s_subset": t, "all": ts, "n_subset": len(subset), "s_extrapolated": t / len(subset) * n,
                      "n": n}
    return out


def task_peer_em(args, opts):
    """scikit-learn GaussianMixture on motifgram's whitened invariants, at its fastest BLAS thread count."""
    import sklearn
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    z = np.load(DATA_DIR / f"em_{args.size}.npy")
    em = opts["em"]

    def fit(threads):
        with threadpool_limits(limits=threads):
            return GaussianMixture(
                n_components=em["k"], covariance_type="full", tol=em["tol"], reg_covar=em["reg_covar"],
                max_iter=em["max_iter"], n_init=em["n_init"], init_params="k-means++", random_state=0,
            ).fit(z)

    # one probe call per thread count (2 threads can be many times slower here), then repeats at the fastest
    probe = {th: timed(lambda: fit(th), repeats=1, warmup=0)[0] for th in em["sklearn_threads"]}
    fastest = min(probe, key=probe.get)
    t, ts, gm = timed(lambda: fit(fastest), repeats=args.repeats, warmup=0)
    return {
        "size": args.size, "s": t, "all": ts, "n": len(z), "probe_s_by_blas_threads": probe,
        "n_iter": int(gm.n_iter_), "converged": bool(gm.converged_),
        "mean_log_likelihood": gmm_mean_log_likelihood(z, gm.weights_, gm.means_, gm.covariances_),
        "sklearn_score": float(gm.score(z)), "sklearn": sklearn.__version__,
        "blas_threads": fastest,
    }


def task_peer_graph(args, opts):
    """networkx geometric faces: PlanarEmbedding in angular order + traverse_face over every half-edge.

    From points: scipy Delaunay edges cut at 1.37 x the nearest-neighbour distance, then the embedding and
    the face walk (``s``); ``faces_only`` gets motifgram's bonds for free. Faces of 3..12 atoms are kept,
    as motifgram's rings (its border/outer-face and emptiness filters are not applied).
    """
    import networkx as nx

    from scipy.spatial import Delaunay

    d = load_data(args.size)
    xy = d["truth_xy"]
    given = np.load(DATA_DIR / f"bonds_{args.size}.npy")

    def delaunay_bonds():
        """Delaunay edges shorter than 1.37 x the median nearest-neighbour distance (honeycomb cut)."""
        indptr, indices = Delaunay(xy).vertex_neighbor_vertices
        i = np.repeat(np.arange(len(xy)), np.diff(indptr))
        e = np.stack([i, indices], axis=1)
        e = e[e[:, 0] < e[:, 1]]
        length = np.hypot(*(xy[e[:, 1]] - xy[e[:, 0]]).T)
        return e[length < 1.37 * nn_distance(xy)]

    def faces(bonds):
        nbrs = [[] for _ in range(len(xy))]
        for i, j in bonds.tolist():
            nbrs[i].append(j)
            nbrs[j].append(i)
        emb = nx.PlanarEmbedding()
        data = {}
        for i, nb in enumerate(nbrs):
            if nb:
                ang = np.arctan2(xy[nb, 1] - xy[i, 1], xy[nb, 0] - xy[i, 0])
                data[i] = [nb[k] for k in np.argsort(-ang)]
        emb.set_data(data)
        seen, rings = set(), []
        for u, v in emb.edges():
            if (u, v) not in seen:
                face = emb.traverse_face(u, v, mark_half_edges=seen)
                if 3 <= len(face) <= 12:
                    rings.append(face)
        return rings

    t, ts, rings = timed(lambda: faces(delaunay_bonds()), repeats=args.repeats)
    t_faces, ts_faces, rings_given = timed(lambda: faces(given), repeats=args.repeats)
    return {"size": args.size, "s": t, "all": ts, "n": len(xy), "n_faces_3_12": len(rings),
            "faces_only": {"s": t_faces, "all": ts_faces, "n_faces_3_12": len(rings_given)},
            "networkx": nx.__version__}


TASKS = {name[5:]: fn for name, fn in globals().items() if name.startswith("task_")}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--options", default="{}", help="JSON object of task options")
    args = parser.parse_args()
    result = TASKS[args.task](args, json.loads(args.options))
    write_json(args.out, result)


if __name__ == "__main__":
    main()
