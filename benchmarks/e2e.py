"""End to end, as users run it: ``motifgram run spec.yaml`` in a new process against a plain reference pipeline.

For every size (default 512², 2048², 4096²) two simulated graphene micrographs are written (seeds 0 and 1).
Each measurement is a new process, timed from the parent (Python start to exit) and wrapped in
``/usr/bin/time`` for its peak RSS:

* **motifgram, warm**: the default spec (overlays and report on; only the input and its pixel size are given).
  The seed-0 micrograph is run first (untimed, recorded) so that JAX's persistent compilation cache on disk
  holds the kernels of this size, as it does for a user's second micrograph; then the seed-1 micrograph is run
  ``--repeats`` times (the run's per-micrograph result cache is removed before each run, so nothing else is
  reused). The cache folder is this benchmark's own (``XDG_CACHE_HOME`` points into ``--work``).
* **motifgram, cold**: the seed-1 micrograph with an empty compilation cache (a first-ever run): ``--cold-repeats``
  runs, each with a new empty folder.
* **reference**: :func:`reference` (below) on the seed-1 micrograph, ``--repeats`` runs, each paired with a
  warm motifgram run (order alternating): skimage Gaussian smoothing, ``peak_local_max`` (a square footprint:
  the same peaks as ``min_distance``, whose spacing pass costs 30x more here), centre-of-mass refinement, NumPy Zernike moments (n_max = 10) of integer
  patches, PCA + scikit-learn ``GaussianMixture`` (full covariance) with K chosen by BIC over 1..8 (4 restarts,
  on at most 10,000 rows, then the chosen K on all rows: motifgram's default settings), Delaunay bonds
  (< 1.37 × nearest-neighbour distance) and rings as the faces left after merging the triangles across
  non-bonds; it writes atoms.csv, bonds.csv, rings.csv and summary.json. The reference is given the simulated
  lattice's nearest-neighbour distance; motifgram estimates its own.

Ratios (motifgram's median wall / the reference's median wall) are always of numbers measured in the same run.
motifgram runs with the threads a user's environment gives it; the reference with ``--reference-threads``
BLAS/OpenMP threads (default 1: on 2 shared cores scikit-learn's EM with 2 threads took 19.4 s instead of 1.4 s
for a 512² micrograph, its threads spinning against the machine's other work). ``--imports`` prints the table of
``python -X importtime``.
``--scale`` adds 8192² (one warm-up and one timed run of each; motifgram's peak RSS is the figure of the
issue's memory target) and the per-stage exponents over the three largest sizes.
``--baseline BIN`` also times another ``motifgram`` executable (an older checkout's, in its own venv) in the same
rounds (warm, with its own kernel cache), the three tools' order rotating, and its cold runs alternating with
motifgram's, so that a change is measured against the code before it under the same load. Every run also records
its CPU seconds (user + system of the process and its threads), which the machine's load moves far less than the
wall. ``--exit-cost`` times what a ``motifgram run`` process spends after
``main`` has returned (the child writes the time when ``main`` returns; the parent takes the time the process
ends), with and without freezing the collector first as the command line does
(:func:`motifgram.engine.cli._skip_final_collection`).

Usage::

    python benchmarks/e2e.py                  # 512², 2048², 4096², median of 3 (~15 min on 2 cores)
    python benchmarks/e2e.py --quick          # 512² and 2048², one run each (~2 min)
    python benchmarks/e2e.py --scale          # also 8192² and stage exponents over 2048-8192
    python benchmarks/e2e.py --quick --baseline ../before/venv/bin/motifgram   # and the code before a change
    python benchmarks/e2e.py --exit-cost      # a run's exit with and without freezing the collector

Writes ``benchmarks/e2e.json`` (``e2e-quick.json`` with ``--quick``; ``--out`` to choose) and prints a
Markdown table. Threads are left as a user has them.
"""

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Settings of the reference's token model: motifgram's defaults (tokens.k_range, n_init, BIC sample).
K_RANGE, N_INIT, BIC_SAMPLE, N_MAX, PCA_DIMS = (1, 8), 4, 10_000, 10, 10
REFERENCE_STAGES = ("detect", "features", "tokens", "graph", "write")
STAGES = ("load", "detect", "features", "graph", "tokens", "write", "grammar", "parse", "overlay")


# --------------------------------------------------------------------------------------------- the reference
def reference(image_path: Path, out_dir: Path, spacing: float, seed: int = 0) -> dict:
    """The plain pipeline a user could write with the usual libraries; returns its summary.

    Parameters
    ----------
    image_path : Path
        ``.npy`` micrograph.
    out_dir : Path
        Folder for atoms.csv, bonds.csv, rings.csv and summary.json (made if absent).
    spacing : float, px
        Nearest-neighbour distance of the atom columns.
    seed : int
        Seed of the subsample and of scikit-learn's restarts.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import Delaunay
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian
    from sklearn.mixture import GaussianMixture

    times, t = {}, time.perf_counter()
    image = np.load(image_path).astype(np.float32)
    smooth = gaussian(image, sigma=spacing / 8, preserve_range=True).astype(np.float32)
    # a square footprint: the same peaks as min_distance=(width - 1) / 2, without skimage's spacing pass (30x slower)
    width = 2 * max(1, int(0.4 * spacing)) + 1
    peaks = peak_local_max(smooth, footprint=np.ones((width, width), bool), threshold_rel=0.3, exclude_border=2)
    r = max(1, int(0.3 * spacing))
    window = _patches(smooth, peaks, r)
    window -= window.min(axis=(1, 2), keepdims=True)
    grid = np.arange(-r, r + 1, dtype=np.float32)
    mass = window.sum(axis=(1, 2)) + 1e-12
    xy = np.c_[peaks[:, 1] + (window.sum(axis=1) @ grid) / mass, peaks[:, 0] + (window.sum(axis=2) @ grid) / mass]
    times["detect"] = _lap(t)

    t = time.perf_counter()
    radius = max(2, int(round(0.8 * spacing)))
    patches = _patches(image, np.round(xy[:, ::-1]).astype(np.int64), radius).reshape(len(xy), -1)
    basis = _zernike_basis(radius, N_MAX)
    moments = patches @ basis  # (N, 2M): real and imaginary parts
    m = basis.shape[1] // 2
    invariants = np.hypot(moments[:, :m], moments[:, m:])
    times["features"] = _lap(t)

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    z = (invariants - invariants.mean(0)) / (invariants.std(0) + 1e-12)
    _, _, vt = np.linalg.svd(z[rng.permutation(len(z))[:BIC_SAMPLE]], full_matrices=False)
    z = z @ vt[:PCA_DIMS].T
    sample = z[rng.permutation(len(z))[:BIC_SAMPLE]]
    bic = {k: GaussianMixture(k, n_init=N_INIT, random_state=seed).fit(sample).bic(sample)
           for k in range(K_RANGE[0], K_RANGE[1] + 1)}
    k = min(bic, key=bic.get)
    gmm = GaussianMixture(k, n_init=N_INIT, random_state=seed).fit(z)
    posterior = gmm.predict_proba(z)
    tokens, confidence = posterior.argmax(1), posterior.max(1)
    times["tokens"] = _lap(t)

    t = time.perf_counter()
    tri = Delaunay(xy)
    simplices = tri.simplices
    sides = np.stack([simplices[:, [1, 2]], simplices[:, [2, 0]], simplices[:, [0, 1]]], axis=1)  # opposite vertex j
    length = np.linalg.norm(xy[sides[..., 0]] - xy[sides[..., 1]], axis=-1)
    nn = np.median(length.min(axis=1))
    bonded = length < 1.37 * nn
    edges = np.sort(sides[bonded], axis=1)
    bonds = np.unique(edges[:, 0] * len(xy) + edges[:, 1])
    bonds = np.c_[bonds // len(xy), bonds % len(xy)]
    neighbour = tri.neighbors
    merge = ~bonded & (neighbour >= 0)
    t_from = np.repeat(np.arange(len(simplices)), 3).reshape(-1, 3)[merge]
    graph = coo_matrix((np.ones(len(t_from)), (t_from, neighbour[merge])), shape=(len(simplices),) * 2)
    n_faces, face = connected_components(graph, directed=False)
    open_face = np.zeros(n_faces, bool)
    open_face[face[(~bonded & (neighbour < 0)).any(axis=1)]] = True
    size = np.bincount(face, minlength=n_faces) + 2
    keep = ~open_face & (size <= 12)
    members = np.unique(face[:, None] * len(xy) + simplices, axis=None)
    members = members[keep[members // len(xy)]]
    ring_of, atom = members // len(xy), members % len(xy)
    times["graph"] = _lap(t)

    t = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savetxt(out_dir / "atoms.csv", np.c_[np.arange(len(xy)), xy, tokens, confidence],
               fmt=("%d", "%.3f", "%.3f", "%d", "%.4f"), delimiter=",", header="id,x,y,token,confidence", comments="")
    np.savetxt(out_dir / "bonds.csv", bonds, fmt="%d", delimiter=",", header="i,j", comments="")
    np.savetxt(out_dir / "rings.csv", np.c_[ring_of, atom], fmt="%d", delimiter=",", header="ring,atom", comments="")
    summary = {"n_atoms": len(xy), "n_bonds": len(bonds), "n_rings": int(keep.sum()), "k": int(k),
               "bic": {str(a): float(b) for a, b in bic.items()},
               "ring_sizes": {str(s): int(c) for s, c in zip(*np.unique(size[keep], return_counts=True), strict=True)}}
    times["write"] = _lap(t)
    summary["timings"] = times
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _lap(start: float) -> float:
    return round(time.perf_counter() - start, 4)


def _patches(image: np.ndarray, rc: np.ndarray, r: int) -> np.ndarray:
    """(N, 2r+1, 2r+1) windows of ``image`` centred at integer (row, col) ``rc`` (edge-padded)."""
    padded = np.pad(image, r, mode="edge")
    offsets = np.arange(2 * r + 1)
    return padded[rc[:, 0, None, None] + offsets[:, None], rc[:, 1, None, None] + offsets[None, :]]


def _zernike_basis(radius: int, n_max: int) -> np.ndarray:
    """(P, 2M) real and imaginary parts of conj(V_nm) on the pixels of a (2r+1)² patch inside the unit disk,
    for the M = (n, m >= 0) pairs with n - m even, n <= n_max (36 for n_max = 10)."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1] / (radius + 0.5)
    rho, theta = np.hypot(x, y).ravel(), np.arctan2(y, x).ravel()
    inside = rho <= 1
    columns = []
    for n in range(n_max + 1):
        for m in range(n % 2, n + 1, 2):
            radial = sum((-1) ** s * math.factorial(n - s)
                         / (math.factorial(s) * math.factorial((n + m) // 2 - s) * math.factorial((n - m) // 2 - s))
                         * rho ** (n - 2 * s) for s in range((n - m) // 2 + 1))
            columns.append((n + 1) / math.pi * np.where(inside, radial, 0.0) * np.exp(-1j * m * theta))
    basis = np.stack(columns, axis=1)
    return np.concatenate([basis.real, basis.imag], axis=1).astype(np.float32)


# ------------------------------------------------------------------------------------------------ the driver
def simulate(size: int, seed: int, folder: Path) -> dict:
    """Write a simulated graphene micrograph (``.npy``) and return its path, pixel size, atom count, spacing."""
    path = folder.absolute() / f"graphene_{size}_s{seed}.npy"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return json.loads(meta_path.read_text())
    from scipy.spatial import cKDTree

    from motifgram.engine.simulate import simulate as simulate_micrograph

    sim = simulate_micrograph("graphene", size=size, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(path, sim.image)
    sample = sim.truth.xy[:: max(1, len(sim.truth.xy) // 5000)]
    dist, _ = cKDTree(sim.truth.xy).query(sample, k=2)
    meta = {"path": str(path), "pixel_size_nm": sim.pixel_size_nm, "n_true": len(sim.truth.xy),
            "spacing_px": float(np.median(dist[:, 1]))}
    meta_path.write_text(json.dumps(meta))
    return meta


def timed_process(command: list[str], env: dict) -> dict:
    """Run ``command`` in a new process under /usr/bin/time; wall (s, from the parent), CPU (s, user + system) and
    peak RSS (MiB)."""
    rss_file = Path(env["E2E_WORK"]) / "rss.txt"
    wrap = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if Path("/usr/bin/time").exists() else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(wrap + command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rss = float(rss_file.read_text().split()[-1]) / 1024 if wrap else None
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mib": rss and round(rss, 1)}


def motifgram_run(meta: dict, work: Path, cache_home: Path, env: dict, tag: str,
                  executable: Path | None = None) -> dict:
    """``motifgram run spec.yaml`` with the default spec on one micrograph, in a new process (``executable``:
    this interpreter's ``motifgram`` unless given)."""
    spec = work / f"{tag}.yaml"
    spec.write_text(f"name: {tag}\ninputs:\n  - path: {meta['path']}\n    pixel_size: {meta['pixel_size_nm']}\n")
    out = work / "runs" / tag
    shutil.rmtree(out.parent / f".{out.name}.cache", ignore_errors=True)  # the per-micrograph result cache
    env = dict(env, XDG_CACHE_HOME=str(cache_home))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    executable = executable or Path(sys.executable).parent / "motifgram"
    result = timed_process([str(executable), "run", str(spec), "--out", str(out),
                            "--force", "--quiet"], env)
    summary = json.loads((out / "summary.json").read_text())
    image = next(iter(summary["images"].values()))
    result["n_atoms"] = image.get("n_atoms")
    result["stages_s"] = {k: v for k, v in _stage_times(summary).items() if k in STAGES}
    return result


def _stage_times(summary: dict) -> dict:
    """Stage seconds of a run's summary.json (``timings``: a flat mapping, or per image plus global)."""
    timings = summary.get("timings", {})
    flat = {}
    for key, value in timings.items():
        if isinstance(value, dict):
            for stage, seconds in value.items():
                if isinstance(seconds, (int, float)):
                    flat[stage] = flat.get(stage, 0.0) + seconds
        elif isinstance(value, (int, float)):
            flat[key] = flat.get(key, 0.0) + value
    return {k: round(v, 4) for k, v in flat.items()}


def reference_run(meta: dict, work: Path, env: dict) -> dict:
    """The reference pipeline on one micrograph in a new process, with its BLAS/OpenMP threads set
    (``E2E_REFERENCE_THREADS``)."""
    out = work / "reference" / Path(meta["path"]).stem
    threads = env["E2E_REFERENCE_THREADS"]
    env = dict(env, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    result = timed_process([sys.executable, __file__, "--reference", meta["path"], str(out),
                            str(meta["spacing_px"])], env)
    summary = json.loads((out / "summary.json").read_text())
    result.update(n_atoms=summary["n_atoms"], n_rings=summary["n_rings"], k=summary["k"],
                  stages_s=summary["timings"])
    return result


def import_time(env: dict) -> float:
    """Wall of ``python -c "import motifgram.engine.pipeline"`` in a new process (s)."""
    return timed_process([sys.executable, "-c", "import motifgram.engine.pipeline"], env)["wall_s"]


def import_table(module: str = "motifgram.engine.pipeline", repeats: int = 5) -> str:
    """A Markdown table of ``python -X importtime -c "import MODULE"``: self time summed per top-level package,
    the fastest of ``repeats`` new processes per package (import times are noisy on a shared machine)."""
    best: dict[str, float] = {}
    totals = []
    for _ in range(repeats):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                             text=True, check=True).stderr
        per_package: dict[str, float] = {}
        for line in err.splitlines():
            fields = line.split("|")
            if len(fields) == 3 and fields[0].startswith("import time:") and fields[0].split()[-1].isdigit():
                name = fields[2].strip().split(".")[0]
                per_package[name] = per_package.get(name, 0.0) + int(fields[0].split()[-1]) / 1000
        totals.append(sum(per_package.values()))
        for name, ms in per_package.items():
            best[name] = min(best.get(name, math.inf), ms)
    rows = sorted(best.items(), key=lambda item: -item[1])
    shown = rows[:12]
    lines = [f"`python -X importtime -c \"import {module}\"`: {min(totals):.0f} ms in all (fastest of {repeats}; "
             f"median {statistics.median(totals):.0f} ms); self time per top-level package, fastest of {repeats}:",
             "", "| package | ms |", "|---|---|"]
    lines += [f"| {name} | {ms:.0f} |" for name, ms in shown]
    lines.append(f"| {len(rows) - len(shown)} others | {sum(ms for _, ms in rows[len(shown):]):.0f} |")
    return "\n".join(lines)


def exit_cost(work: Path, env: dict, *, size: int = 1024, repeats: int = 2) -> str:
    """Seconds from ``main`` returning to the end of a ``motifgram run`` process, the collector frozen or not
    (pairs, the order alternating), on a simulated ``size``² graphene micrograph with the default spec."""
    meta = simulate(size, 1, work / "data")
    spec = work / "exit.yaml"
    spec.write_text(f"name: exit\ninputs:\n  - path: {meta['path']}\n    pixel_size: {meta['pixel_size_nm']}\n")
    env = dict(env, XDG_CACHE_HOME=str(work / "cache-exit"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    code = ("import gc, sys, time\nfrom motifgram.engine.cli import main\n"
            f"code = main(['run', {str(spec)!r}, '--out', {str(work / 'runs' / 'exit')!r}, '--force', '--quiet'])\n"
            "if sys.argv[1] == 'frozen':\n    gc.freeze()\n"
            "sys.stderr.write(f'{time.time()!r}\\n')\nsys.exit(code)\n")
    subprocess.run([sys.executable, "-c", code, "frozen"], env=env, capture_output=True, check=True)  # warm-up
    seconds = {"frozen": [], "collected": []}
    for i in range(repeats):
        for mode in ("collected", "frozen")[:: 1 - 2 * (i % 2)]:
            done = subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True, text=True,
                                  check=True)
            seconds[mode].append(round(time.time() - float(done.stderr.strip().splitlines()[-1]), 3))
            log(f"  exit {mode}: {seconds[mode][-1]} s (load {os.getloadavg()[0]:.1f})")
    return (f"Exit of a {size}² `motifgram run` (seconds after `main` returned; {repeats} of each, load "
            f"{os.getloadavg()[0]:.1f}): collected {seconds['collected']}, frozen {seconds['frozen']}")


def median(runs: list[dict], key: str = "wall_s"):
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def exponent(sizes: list[int], results: dict, stage: str) -> float | None:
    """Least-squares slope of log(stage seconds) against log(atoms) over ``sizes`` (motifgram, warm)."""
    points = []
    for size in sizes:
        runs = results[str(size)]["motifgram_warm"]
        t = statistics.median(r["stages_s"].get(stage, float("nan")) for r in runs)
        if t > 0 and runs[0]["n_atoms"]:
            points.append((math.log(runs[0]["n_atoms"]), math.log(t)))
    if len(points) < 2:
        return None
    x, y = np.array(points).T
    return round(float(np.polyfit(x, y, 1)[0]), 3)


def measure(size: int, args, work: Path, env: dict, *, repeats: int, cold_repeats: int) -> dict:
    data = work / "data"
    first, second = simulate(size, 0, data), simulate(size, 1, data)
    warm_home = work / "cache-warm"
    log(f"{size}²: {second['n_true']} atoms; warming the kernel cache with seed 0")
    entry = {"atoms_true": second["n_true"], "warmup": motifgram_run(first, work, warm_home, env, f"warm{size}s0")}
    tools = ["motifgram_warm", "reference"]
    if args.baseline:
        baseline_home = work / "cache-warm-baseline"
        entry["baseline_warmup"] = motifgram_run(first, work, baseline_home, env, f"base{size}s0", args.baseline)
        tools.append("baseline_warm")
    runners = {
        "motifgram_warm": lambda: motifgram_run(second, work, warm_home, env, f"warm{size}"),
        "reference": lambda: reference_run(second, work, env),
        "baseline_warm": lambda: motifgram_run(second, work, baseline_home, env, f"base{size}", args.baseline),
    }
    for tool in tools:
        entry[tool] = []
    for i in range(repeats):  # in rounds, the order rotating (alternating for two): the machine's load drifts
        order = tools[i % len(tools):] + tools[: i % len(tools)] if len(tools) > 2 else tools[:: 1 - 2 * (i % 2)]
        for tool in order:
            run = runners[tool]()
            entry[tool].append(run)
            log(f"  {tool} {i + 1}: {run['wall_s']} s (load {os.getloadavg()[0]:.2f})")
    colds = {"motifgram_cold": None, "baseline_cold": args.baseline} if args.baseline else {"motifgram_cold": None}
    for tool in colds:
        entry[tool] = []
    for i in range(cold_repeats):
        for tool in list(colds)[:: 1 - 2 * (i % 2)]:
            cold_home = work / f"cache-cold-{size}-{i}"
            shutil.rmtree(cold_home, ignore_errors=True)
            entry[tool].append(motifgram_run(second, work, cold_home, env, f"{tool}{size}", colds[tool]))
            shutil.rmtree(cold_home, ignore_errors=True)
            log(f"  {tool} {i + 1}: {entry[tool][-1]['wall_s']} s, {entry[tool][-1]['cpu_s']} CPU s")
    warm, ref = median(entry["motifgram_warm"]), median(entry["reference"])
    cold = median(entry["motifgram_cold"])
    entry["summary"] = {
        "motifgram_warm_s": warm, "reference_s": ref, "motifgram_cold_s": cold,
        "cpu_s": {tool: median(entry[tool], "cpu_s") for tool in (*tools, *colds)},
        "ratio_warm": round(warm / ref, 3), "ratio_cold": cold and round(cold / ref, 3),
        "peak_rss_mib_warm": max(r["peak_rss_mib"] or 0 for r in entry["motifgram_warm"]),
        "peak_rss_mib_reference": max(r["peak_rss_mib"] or 0 for r in entry["reference"]),
        "stages_s": {s: round(statistics.median(r["stages_s"].get(s, 0.0) for r in entry["motifgram_warm"]), 3)
                     for s in STAGES},
    }
    if args.baseline:
        base = median(entry["baseline_warm"])
        entry["summary"].update(baseline_warm_s=base, ratio_baseline=round(base / ref, 3),
                                baseline_cold_s=median(entry["baseline_cold"]),
                                baseline_stages_s={s: round(statistics.median(r["stages_s"].get(s, 0.0)
                                                                              for r in entry["baseline_warm"]), 3)
                                                   for s in STAGES})
    # what the stages do not cover: Python and imports, the report, start-up and exit
    entry["summary"]["stages_s"]["rest"] = round(warm - sum(entry["summary"]["stages_s"].values()), 3)
    return entry


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def markdown(result: dict) -> str:
    lines = [f"Date: {result['date']}. Command: `{result['command']}`.",
             f"Machine: {result['machine']}; load average at start {result['load_start']}, at end {result['load_end']}.",
             f"Threads: motifgram as the user's environment sets them; the reference with "
             f"{result['reference_threads']} BLAS/OpenMP thread(s).",
             "", "| size | atoms | motifgram warm s | reference s | **ratio warm** | motifgram cold s | ratio cold | "
             "peak RSS MiB motifgram / reference |", "|---|---|---|---|---|---|---|---|"]
    for size, entry in result["sizes"].items():
        s = entry["summary"]
        cold = f"{s['motifgram_cold_s']} | {s['ratio_cold']}×" if s["motifgram_cold_s"] else "– | –"
        lines.append(f"| {size}² | {entry['motifgram_warm'][0]['n_atoms']:,} | {s['motifgram_warm_s']} | "
                     f"{s['reference_s']} | **{s['ratio_warm']}×** | {cold} | "
                     f"{s['peak_rss_mib_warm']:.0f} / {s['peak_rss_mib_reference']:.0f} |")
    lines += ["", "Stage seconds of the warm motifgram runs (median; from each run's summary.json):", "",
              "| size | " + " | ".join(STAGES) + " | rest (wall − stages) | reference: " + ", ".join(REFERENCE_STAGES)
              + " |", "|---|" + "---|" * (len(STAGES) + 2)]
    for size, entry in result["sizes"].items():
        ref = [statistics.median(r["stages_s"][s] for r in entry["reference"]) for s in REFERENCE_STAGES]
        stages = [statistics.median(r["stages_s"].get(s, 0.0) for r in entry["motifgram_warm"]) for s in STAGES]
        stages.append(entry["summary"]["motifgram_warm_s"] - sum(stages))
        lines.append(f"| {size}² | " + " | ".join(f"{t:.3g}" for t in stages)
                     + " | " + " · ".join(f"{t:.3g}" for t in ref) + " |")
    if any("baseline_warm_s" in entry["summary"] for entry in result["sizes"].values()):
        lines += ["", f"Against the baseline `{result.get('baseline')}`, timed in the same rounds (warm):", "",
                  ("| size | baseline warm s | baseline / reference | motifgram / reference | motifgram / baseline | "
                   "detect s baseline → motifgram | warm CPU s baseline → motifgram (reference) | "
                   "cold s baseline → motifgram | cold CPU s baseline → motifgram |"),
                  "|---|---|---|---|---|---|---|---|---|"]
        for size, entry in result["sizes"].items():
            s = entry["summary"]
            cpu = s.get("cpu_s", {})
            lines.append(f"| {size}² | {s['baseline_warm_s']} | {s['ratio_baseline']}× | {s['ratio_warm']}× | "
                         f"{s['motifgram_warm_s'] / s['baseline_warm_s']:.3f}× | "
                         f"{s['baseline_stages_s']['detect']} → {s['stages_s']['detect']} | "
                         f"{cpu.get('baseline_warm')} → {cpu.get('motifgram_warm')} ({cpu.get('reference')}) | "
                         f"{s.get('baseline_cold_s')} → {s['motifgram_cold_s']} | "
                         f"{cpu.get('baseline_cold')} → {cpu.get('motifgram_cold')} |")
    lines += ["", f"`import motifgram.engine.pipeline` in a new process: {result['import_s']} s (median of 3)."]
    if result.get("exponents"):
        lines += ["", f"Stage exponents b (t ∝ atoms^b, warm, over {', '.join(result['exponent_sizes'])}): "
                  + ", ".join(f"{k} {v}" for k, v in result["exponents"].items())]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048, 4096])
    parser.add_argument("--render", type=Path, metavar="JSON", help="only print the tables of an earlier run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="512² and 2048², one run of each (~2 min)")
    parser.add_argument("--scale", action="store_true", help="also 8192² (one run of each) and stage exponents")
    parser.add_argument("--reference-threads", type=int, default=1,
                        help="BLAS/OpenMP threads of the reference (default 1: its faster setting on 2 shared "
                             "cores, where scikit-learn's EM with 2 threads took 14x longer)")
    parser.add_argument("--imports", action="store_true", help="only print the import-time table (new processes)")
    parser.add_argument("--exit-cost", action="store_true", help="only time the exit with and without gc.freeze")
    parser.add_argument("--work", type=Path, default=ROOT / ".bench" / "e2e", help="data, runs and caches")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--baseline", type=Path, metavar="BIN",
                        help="another motifgram executable (an older checkout's) timed in the same rounds")
    parser.add_argument("--reference", nargs=3, metavar=("IMAGE", "OUT", "SPACING"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference:
        reference(Path(args.reference[0]), Path(args.reference[1]), float(args.reference[2]))
        return 0
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return 0
    if args.imports:
        print(import_table())
        return 0
    if args.exit_cost:
        work = args.work.absolute()
        work.mkdir(parents=True, exist_ok=True)
        print(exit_cost(work, dict(os.environ, E2E_WORK=str(work))))
        return 0
    if args.quick:
        args.sizes, args.repeats, args.cold_repeats = [512, 2048], 1, 1
    out = args.out or HERE / ("e2e-quick.json" if args.quick else "e2e.json")
    work = args.work.absolute()
    shutil.rmtree(work / "cache-warm", ignore_errors=True)
    shutil.rmtree(work / "cache-warm-baseline", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, E2E_WORK=str(work), E2E_REFERENCE_THREADS=str(args.reference_threads))
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(["python", *sys.argv]),
              "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                         f"Python {platform.python_version()}",
              "load_start": [round(x, 2) for x in os.getloadavg()], "reference_threads": args.reference_threads,
              "threads_motifgram": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                                   "XLA_FLAGS")},
              "baseline": args.baseline and str(args.baseline), "sizes": {}}
    result["import_s"] = round(statistics.median(import_time(env) for _ in range(3)), 3)
    for size in args.sizes:
        result["sizes"][str(size)] = measure(size, args, work, env, repeats=args.repeats,
                                             cold_repeats=args.cold_repeats)
    if args.scale:
        result["sizes"]["8192"] = measure(8192, args, work, env, repeats=1, cold_repeats=0)
        big = [s for s in result["sizes"] if int(s) >= 2048]
        result["exponent_sizes"] = [f"{s}²" for s in big]
        result["exponents"] = {stage: exponent(big, result["sizes"], stage) for stage in STAGES if stage != "load"}
    result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
