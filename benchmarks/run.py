"""motifgram benchmarks against its peers, side by side on the same simulated graphene micrographs.

    python benchmarks/run.py [--sizes 512 1024 2048] [--quick] [--repeats 3] [--out benchmarks/results.json]

Every measurement runs in a fresh worker process (benchmarks/tasks.py) with its thread counts set in the
environment: motifgram with this interpreter, the peers (motif-learn, Atomap, mahotas, scikit-learn,
networkx) with the peer venv's (``--peer-python``, default .bench/venv/bin/python; see README.md). Writes
all numbers to JSON and prints Markdown tables.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BENCH_DIR, ROOT, write_json  # noqa: E402

TASKS_PY = Path(__file__).resolve().parent / "tasks.py"

#: Thread settings per tool, in the worker's environment. motifgram: XLA's own pool uses both cores, BLAS
#: (numpy PCA, scipy) single-threaded so the two do not fight. Peers: BLAS/OpenMP may use both cores
#: (their default here); scikit-learn is timed with threadpoolctl limits of 1 and 2 BLAS threads inside the
#: worker and reported at its faster setting (1 thread was its fastest here per DESIGN.md).
_ONE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
THREADS = {
    "motifgram": {**_ONE},
    "peers": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
    "sklearn": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
}

EM = {"k": 8, "n_init": 4, "max_iter": 200, "tol": 1e-4, "reg_covar": 1e-6, "sklearn_threads": [1, 2]}

TARGETS = {
    "warm_s": 5.0, "cold_s": 15.0, "zernike_x": 10.0, "em_x": 5.0, "refine_x": 100.0, "memory_gib": 2.0,
    "scaling_exponent": 1.2,
}


def worker(python, task, *, threads, size=None, repeats=3, options=None, timeout=900):
    """Run one task in a fresh process; returns its JSON result (plus ``process_wall_s``) or ``{"error": ...}``."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS")}
    env.update(THREADS[threads])
    env["PYTHONPATH"] = ""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [str(python), str(TASKS_PY), task, "--out", out, "--repeats", str(repeats),
           "--options", json.dumps(options or {})]
    if size is not None:
        cmd += ["--size", str(size)]
    label = f"{task}" + (f" {size}^2" if size else "")
    print(f"  {label:<24} ...", end="", flush=True, file=sys.stderr)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(" timeout", file=sys.stderr)
        return {"error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        print(f" FAILED ({wall:.1f} s): {' | '.join(tail)}", file=sys.stderr)
        return {"error": " | ".join(tail), "process_wall_s": wall}
    print(f" {wall:.1f} s", file=sys.stderr)
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["process_wall_s"] = wall
    result["threads"] = THREADS[threads]
    return result


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem, 1), "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_start": os.getloadavg()}


def versions(python, packages) -> dict:
    code = (
        "import json,importlib.metadata as m\nout={}\n"
        f"for p in {list(packages)!r}:\n"
        "    try: out[p]=m.version(p)\n    except m.PackageNotFoundError: out[p]=None\nprint(json.dumps(out))"
    )
    try:
        return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)
    except (subprocess.CalledProcessError, OSError, json.JSONDecodeError) as exc:
        return {"error": str(exc)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048], help="image sides (px)")
    parser.add_argument("--quick", action="store_true", help="512^2 only, no Atomap, no profile (< 2 min)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (median)")
    parser.add_argument("--out", default=None,
                        help="results JSON (default benchmarks/results.json, --quick: benchmarks/results-quick.json)")
    parser.add_argument("--peer-python", default=str(BENCH_DIR / "venv" / "bin" / "python"))
    parser.add_argument("--no-atomap", action="store_true", help="skip Atomap (slow: ~3 s per 300 atoms)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile of the largest size")
    parser.add_argument("--pairs", type=int, default=3,
                        help="alternating motifgram/peer rounds for the speed-up targets (0: none)")
    parser.add_argument("--atomap-atoms", type=int, default=300, help="atoms in Atomap's timed crop")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = str(ROOT / "benchmarks" / ("results-quick.json" if args.quick else "results.json"))
    args.out = str(Path(args.out).resolve())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.sizes, args.no_atomap, args.no_profile = [512], True, True
    sizes = sorted(set(args.sizes))
    peer_python = Path(args.peer_python)
    have_peers = peer_python.exists()
    py = sys.executable
    opts = {"em": EM, "atomap_atoms": args.atomap_atoms}
    started = datetime.datetime.now(datetime.timezone.utc)

    results = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT))
                             else sys.executable, "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "threads": THREADS,
        "em_settings": EM,
        "repeats": args.repeats,
        "motifgram_python": py,
        "motifgram_versions": versions(py, ["motifgram", "jax", "jaxlib", "numpy", "scipy", "networkx"]),
        "peer_python": str(peer_python) if have_peers else None,
        "peer_versions": versions(peer_python, ["motif-learn", "atomap", "hyperspy", "mahotas", "scikit-learn",
                                                "scikit-image", "threadpoolctl", "networkx", "numpy", "scipy"])
        if have_peers else {"error": f"{peer_python} missing: create the peer venv (benchmarks/README.md)"},
        "sizes": {},
    }
    print(f"motifgram benchmarks, sizes {sizes}, {args.repeats} repeats (median)", file=sys.stderr)
    results["data"] = worker(py, "data", threads="motifgram", options={"sizes": sizes})
    for size in sizes:
        print(f"{size}^2:", file=sys.stderr)
        r = results["sizes"][str(size)] = {}
        r["pipeline"] = worker(py, "mg_pipeline", threads="motifgram", size=size, repeats=args.repeats)
        r["cold"] = worker(py, "mg_cold", threads="motifgram", size=size)
        r["kernels"] = worker(py, "mg_kernels", threads="motifgram", size=size, repeats=args.repeats, options=opts)
        if not have_peers:
            continue
        r["peer_detect"] = worker(peer_python, "peer_detect", threads="peers", size=size, repeats=args.repeats)
        r["peer_zernike"] = worker(peer_python, "peer_zernike", threads="peers", size=size, repeats=args.repeats)
        r["peer_em"] = worker(peer_python, "peer_em", threads="sklearn", size=size, repeats=args.repeats,
                              options=opts)
        r["peer_graph"] = worker(peer_python, "peer_graph", threads="peers", size=size, repeats=args.repeats)
        if not args.no_atomap and size == sizes[-1]:
            r["peer_atomap"] = worker(peer_python, "peer_atomap", threads="peers", size=size, options=opts)
    if have_peers and args.pairs:
        results["paired"] = paired_rounds(py, peer_python, sizes[-1], args.pairs, args.repeats, opts)
    if not args.quick:
        results["grammar_scaling"] = worker(py, "mg_grammar_scaling", threads="motifgram", size=sizes[-1],
                                            repeats=args.repeats)
    if not args.no_profile:
        text_out = Path(args.out).with_suffix(".profile.txt")
        results["profile"] = worker(py, "mg_profile", threads="motifgram", size=sizes[-1],
                                    options={"text_out": str(text_out), "top": 40})
    results["elapsed_s"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    results["targets"] = targets(results, sizes)
    write_json(args.out, results)
    text = markdown(results, sizes)
    Path(args.out).with_suffix(".md").write_text(text)
    print(text)


#: Speed-ups measured in paired rounds: (name, motifgram task key, peer task, peer key).
PAIRED = (
    ("zernike", ("zernike",), "peer_zernike", ("mtflearn",)),
    ("zernike_kernel", ("zernike_kernel",), "peer_zernike", ("mtflearn_kernel",)),
    ("zernike_product", ("zernike_product",), "peer_zernike", ("mtflearn_kernel",)),
    ("em", ("em",), "peer_em", ()),
)


def paired_rounds(py, peer_python, size, rounds, repeats, opts):
    """Speed-ups from alternating rounds: each round times motifgram's and the peers' kernels back to back.

    Other jobs on a shared machine slow whichever process runs meanwhile; a ratio from two processes minutes
    apart (the main tables) can move by 2x. Here every round's ratio comes from processes seconds apart, the
    order alternates between rounds, and the median over rounds is what the targets use.
    """
    print(f"paired rounds at {size}^2:", file=sys.stderr)
    out = {"size": size, "rounds": []}
    for i in range(rounds):
        mine = lambda: worker(py, "mg_paired", threads="motifgram", size=size, repeats=repeats, options=opts)
        peers = lambda: {
            "peer_zernike": worker(peer_python, "peer_zernike", threads="peers", size=size, repeats=repeats,
                                   options={"mahotas": False}),
            "peer_em": worker(peer_python, "peer_em", threads="sklearn", size=size, repeats=repeats, options=opts),
        }
        if i % 2 == 0:
            m, p = mine(), peers()
        else:
            p, m = peers(), mine()
        ratios = {}
        for name, mkey, ptask, pkey in PAIRED:
            ratios[name] = _ratio(_get(p, ptask, *pkey, "s"), _get(m, *mkey, "s"))
        out["rounds"].append({"motifgram": m, **p, "speedup": ratios})
    for name, *_ in PAIRED:
        vals = [r["speedup"][name] for r in out["rounds"] if r["speedup"][name] is not None]
        out[name] = {"median": statistics.median(vals) if vals else None, "min": min(vals, default=None),
                     "max": max(vals, default=None), "all": vals}
    return out


# --------------------------------------------------------------------------------------------------
# report


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _fmt(x, digits=3):
    if x is None:
        return "–"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return str(x)


def _ratio(peer, mine):
    return None if peer is None or mine is None or mine <= 0 else peer / mine


def _exponent(ts, ns):
    """Scaling exponent b of t ~ N^b between the smallest and largest size."""
    if len(ts) < 2 or None in (ts[0], ts[-1]) or min(ts[0], ts[-1]) <= 0 or ns[0] == ns[-1]:
        return None
    return math.log(ts[-1] / ts[0]) / math.log(ns[-1] / ns[0])


def comparisons(results, size):
    """Rows (stage, motifgram s, N, peer name, peer s, speed-up, motifgram accuracy, peer accuracy)."""
    r = results["sizes"][str(size)]
    k = r.get("kernels", {})
    rows = []

    def acc(m):
        return None if not m or m.get("rmse_px") is None else (
            f"RMSE {m['rmse_px']:.3f} px, recall {m['recall']:.3f}, precision {m['precision']:.3f}")

    det = k.get("detect", {})
    for name, key in (("motif-learn maxfilter + CoM", "maxfilter"), ("motif-learn peak_local_max + CoM", "skimage")):
        p = _get(r, "peer_detect", key) or {}
        rows.append(("detect + refine", det.get("s"), det.get("n"), name, p.get("s"), acc(det), acc(p)))
    ref, at = k.get("refine", {}), r.get("peer_atomap")
    if at and "error" not in at:
        rows.append(("Gaussian refinement", ref.get("s"), ref.get("n"),
                     f"Atomap 2-D Gaussian (timed on {at['n_subset']} atoms, extrapolated)", at["s_extrapolated"],
                     acc(ref.get("crop")), acc(at.get("crop"))))
    z = k.get("zernike", {})
    p = _get(r, "peer_zernike", "mtflearn") or {}
    rows.append(("Zernike n_max=10 + invariants", z.get("s"), z.get("n"), "motif-learn patches + ZPs + |A|",
                 p.get("s"), f"{z.get('n_moments')} moments", f"{p.get('n_moments')} moments"))
    zk, p = k.get("zernike_kernel", {}), _get(r, "peer_zernike", "mtflearn_kernel") or {}
    rows.append(("Zernike kernel only, same square patches", zk.get("s"), zk.get("n"),
                 "motif-learn ZPs.transform + |A|", p.get("s"), f"{zk.get('n_moments')} moments",
                 f"{p.get('n_moments')} moments"))
    zp = k.get("zernike_product", {})
    if zp:
        rows.append(("Zernike product alone (patches in XLA memory)", zp.get("s"), zp.get("n"),
                     "motif-learn ZPs.transform + |A|", _get(r, "peer_zernike", "mtflearn_kernel", "s"),
                     f"{zk.get('n_moments')} moments", None))
        p = _get(r, "peer_zernike", "mtflearn_product") or {}
        if p:
            rows.append(("Zernike product alone (patches in XLA memory)", zp.get("s"), zp.get("n"),
                         "motif-learn's float64 product alone (patches converted, untimed)", p.get("s"),
                         "float32, 72 columns", f"float64, {p.get('n_columns')} columns"))
    p = _get(r, "peer_zernike", "mahotas") or {}
    if "s_extrapolated" in p:
        rows.append(("Zernike n_max=10 + invariants", z.get("s"), z.get("n"),
                     f"mahotas per patch (timed on {p['n_subset']}, extrapolated)", p["s_extrapolated"], None, None))
    em, p = k.get("em", {}), r.get("peer_em") or {}
    rows.append((f"EM K={EM['k']} full", em.get("s"), em.get("n"), f"scikit-learn GaussianMixture ({p.get('blas_threads')} BLAS thread(s), the faster)",
                 p.get("s"),
                 None if "mean_log_likelihood" not in em else
                 f"LL/sample {em['mean_log_likelihood']:.4f}, {em['n_iter']} it",
                 None if "mean_log_likelihood" not in p else
                 f"LL/sample {p['mean_log_likelihood']:.4f}, {p['n_iter']} it"))
    g, p = k.get("graph", {}), r.get("peer_graph") or {}
    rings = None if "n_rings" not in g else f"{g['n_rings']} rings (truth {g['n_truth_rings']})"
    rows.append(("graph + rings", g.get("s"), g.get("n"),
                 "scipy Delaunay + cut + networkx PlanarEmbedding.traverse_face", p.get("s"), rings,
                 None if "n_faces_3_12" not in p else f"{p['n_faces_3_12']} faces of 3-12"))
    if "faces_only" in p:
        rows.append(("graph + rings", g.get("s"), g.get("n"),
                     "networkx faces only (given motifgram's bonds)", p["faces_only"]["s"], rings,
                     f"{p['faces_only']['n_faces_3_12']} faces of 3-12"))
    return rows


def targets(results, sizes):
    big = str(sizes[-1])
    r = results["sizes"][big]
    pipe, cold, k = r.get("pipeline", {}), r.get("cold", {}), r.get("kernels", {})
    out = {"size": sizes[-1]}

    def add(name, target, value, met, note=""):
        out[name] = {"target": target, "measured": value, "met": met, "note": note}

    warm = pipe.get("detect_to_parse_s")
    add("warm detect->parse", f"<= {TARGETS['warm_s']} s", warm, None if warm is None else warm <= TARGETS["warm_s"])
    cs = cold.get("detect_to_parse_s")
    add("cold detect->parse", f"<= {TARGETS['cold_s']} s", cs, None if cs is None else cs <= TARGETS["cold_s"],
        f"fresh process, JIT included; whole process wall {_fmt(cold.get('process_wall_s'))} s "
        f"(imports {_fmt(cold.get('import_s'))} s, load + write included)")
    paired = results.get("paired") or {}

    def speedup(name, single):
        """The paired rounds' median speed-up where measured (else the main table's), and a note."""
        pr = paired.get(name) or {}
        if pr.get("median") is None:
            return single, f"one run (main table: {_fmt(single)}x)"
        return pr["median"], (f"median of {len(pr['all'])} paired rounds, range {_fmt(pr['min'])}-"
                              f"{_fmt(pr['max'])}x; main table {_fmt(single)}x")

    zr, note = speedup("zernike", _ratio(_get(r, "peer_zernike", "mtflearn", "s"), _get(k, "zernike", "s")))
    add("Zernike vs motif-learn (positions -> invariants)", f">= {TARGETS['zernike_x']}x", zr,
        None if zr is None else zr >= TARGETS["zernike_x"],
        note + "; motifgram samples a sub-pixel polar grid (bilinear), motif-learn slices integer patches")
    zr, note = speedup("zernike_kernel",
                       _ratio(_get(r, "peer_zernike", "mtflearn_kernel", "s"), _get(k, "zernike_kernel", "s")))
    floor, floor_note = speedup("zernike_product", _ratio(_get(r, "peer_zernike", "mtflearn_kernel", "s"),
                                                           _get(k, "zernike_product", "s")))
    add("Zernike vs motif-learn (kernel, same square patches)", f">= {TARGETS['zernike_x']}x", zr,
        None if zr is None else zr >= TARGETS["zernike_x"],
        note + f"; its float32 product alone (the kernel's 4096-row chunks, patches already in XLA memory): "
        f"{_fmt(floor)}x ({floor_note})")
    er, note = speedup("em", _ratio(_get(r, "peer_em", "s"), _get(k, "em", "s")))
    ll_m, ll_p = _get(k, "em", "mean_log_likelihood"), _get(r, "peer_em", "mean_log_likelihood")
    ll_ok = None if None in (ll_m, ll_p) else ll_m >= ll_p - 1e-3
    add("EM vs scikit-learn", f">= {TARGETS['em_x']}x at >= log-likelihood", er,
        None if er is None else (er >= TARGETS["em_x"] and bool(ll_ok)),
        f"{note}; LL/sample motifgram {_fmt(ll_m, 6)} vs scikit-learn {_fmt(ll_p, 6)}")
    at = r.get("peer_atomap") or {}
    rr = _ratio(at.get("s_extrapolated"), _get(k, "refine", "s"))
    rm_m, rm_p = _get(k, "refine", "crop", "rmse_px"), _get(at, "crop", "rmse_px")
    add("refinement vs Atomap", f">= {TARGETS['refine_x']}x at <= RMSE", rr,
        None if rr is None or None in (rm_m, rm_p) else (rr >= TARGETS["refine_x"] and rm_m <= rm_p),
        f"RMSE on the same crop atoms: motifgram {_fmt(rm_m)} px vs Atomap {_fmt(rm_p)} px")
    mem = None if cold.get("maxrss_mib") is None else cold["maxrss_mib"] / 1024
    add("peak memory (fresh process, whole pipeline)", f"<= {TARGETS['memory_gib']} GiB", mem,
        None if mem is None else mem <= TARGETS["memory_gib"])
    gs = results.get("grammar_scaling")
    if gs and "crops" in gs:
        ns = [c["n_atoms"] for c in gs["crops"]]
        for stage in ("grammar", "parse"):
            b = _exponent([c[f"{stage}_s"] for c in gs["crops"]], ns)
            add(f"scaling {stage} (crops of one graph)", f"t ~ N^b, b <= {TARGETS['scaling_exponent']}", b,
                None if b is None else b <= TARGETS["scaling_exponent"], f"{ns[0]} -> {ns[-1]} atoms")
    if len(sizes) > 1:
        ns = [_get(results, "sizes", str(s), "pipeline", "n_atoms") for s in sizes]
        for stage in ("detect", "features", "tokens", "graph", "grammar", "parse"):
            ts = [_get(results, "sizes", str(s), "pipeline", "stage_s", stage) for s in sizes]
            b = None if None in ns else _exponent(ts, ns)
            add(f"scaling {stage}", f"t ~ N^b, b <= {TARGETS['scaling_exponent']}", b,
                None if b is None else b <= TARGETS["scaling_exponent"], f"{ns[0]} -> {ns[-1]} atoms")
    return out


def markdown(results, sizes):
    m = results["machine"]
    lines = [
        f"Date: {results['date']}. Command: `{results['command']}`.",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, Python {m['python']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])} (shared machine: "
        f"every time is the median of {results['repeats']} repeats after a warm-up call).",
        "",
        "### motifgram pipeline stages, warm (run() on a simulated graphene micrograph)",
        "",
        "| stage | " + " | ".join(
            f"{s}² ({_fmt(_get(results, 'sizes', str(s), 'pipeline', 'n_atoms'))} atoms) s · atoms/s" for s in sizes
        ) + " | scaling b (t ~ N^b) |",
        "|---|" + "---|" * (len(sizes) + 1),
    ]
    ns = [_get(results, "sizes", str(s), "pipeline", "n_atoms") for s in sizes]
    for stage in ("detect", "features", "tokens", "graph", "grammar", "parse", "write"):
        ts = [_get(results, "sizes", str(s), "pipeline", "stage_s", stage) for s in sizes]
        cells = [f"{_fmt(t)} · {_fmt(None if t in (None, 0) or n is None else n / t)}" for t, n in zip(ts, ns)]
        b = None if None in ns or stage == "write" else _exponent(ts, ns)
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {_fmt(b)} |")
    for label, key in (("detect → parse, warm", ("pipeline", "detect_to_parse_s")),
                       ("detect → parse, cold (fresh process, JIT)", ("cold", "detect_to_parse_s")),
                       ("whole process, cold (python start → run dir written)", ("cold", "process_wall_s")),
                       ("peak RSS, cold process (MiB)", ("cold", "maxrss_mib"))):
        vals = [_get(results, "sizes", str(s), *key) for s in sizes]
        lines.append(f"| **{label}** | " + " | ".join(_fmt(v) for v in vals) + " | |")
    acc = [_get(results, "sizes", str(s), "pipeline", "accuracy") for s in sizes]
    lines.append("| position RMSE px (recall) | " + " | ".join(
        "–" if not a or a.get("rmse_px") is None else f"{a['rmse_px']:.3f} ({a['recall']:.4f})" for a in acc) + " | |")
    lines += ["", "### Side by side with the peers (same data, same run)", "",
              "| size | stage | motifgram s | atoms/s | peer | peer s | speed-up (peer s / motifgram s) "
              "| motifgram accuracy | peer accuracy |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in sizes:
        for stage, t, n, peer, tp, am, ap in comparisons(results, s):
            lines.append(f"| {s}² | {stage} | {_fmt(t)} | {_fmt(None if not t or n is None else n / t)} | {peer} "
                         f"| {_fmt(tp)} | {_fmt(_ratio(tp, t))}× | {am or '–'} | {ap or '–'} |")
    for s in sizes:
        for name in ("grammar", "parse"):
            t = _get(results, "sizes", str(s), "pipeline", "stage_s", name)
            n = _get(results, "sizes", str(s), "pipeline", "n_atoms")
            lines.append(f"| {s}² | {name} (no peer) | {_fmt(t)} | {_fmt(None if not t or n is None else n / t)} "
                         "| – | – | – | – | – |")
    gs = results.get("grammar_scaling")
    if gs and "crops" in gs:
        crops = gs["crops"]
        lines += ["", f"### Grammar induction and parsing vs atom count (square crops of one tokenised {gs['size']}² "
                  f"graph, K = {gs['tokens_k']} tokens, one process)", "",
                  "| crop | atoms | rings | rules | grammar s | atoms/s | parse s | atoms/s |", "|---|---|---|---|---|---|---|---|"]
        for c in crops:
            lines.append(f"| {c['side_px']}² | {c['n_atoms']} | {c['n_rings']} | {c['n_rules']} | {_fmt(c['grammar_s'])} "
                         f"| {_fmt(c['n_atoms'] / c['grammar_s'])} | {_fmt(c['parse_s'])} "
                         f"| {_fmt(c['n_atoms'] / c['parse_s'])} |")
        ns = [c["n_atoms"] for c in crops]
        off = gs["largest_gc_off"]
        lines.append(f"| scaling b | | | | {_fmt(_exponent([c['grammar_s'] for c in crops], ns))} | "
                     f"| {_fmt(_exponent([c['parse_s'] for c in crops], ns))} | |")
        lines.append(f"| largest, `gc.disable()` | {ns[-1]} | | | {_fmt(off['grammar_s'])} | | {_fmt(off['parse_s'])} | |")
    paired = results.get("paired")
    if paired and paired.get("rounds"):
        lines += ["", f"### Paired rounds ({paired['size']}², motifgram and peer processes back to back, order "
                  "alternating; the targets use the median)", "",
                  "| round | " + " | ".join(f"{name}: motifgram s / peer s = speed-up" for name, *_ in PAIRED) + " |",
                  "|---|" + "---|" * len(PAIRED)]
        for i, rnd in enumerate(paired["rounds"], 1):
            cells = [f"{_fmt(_get(rnd, 'motifgram', *mkey, 's'))} / {_fmt(_get(rnd, ptask, *pkey, 's'))} = "
                     f"{_fmt(rnd['speedup'][name])}×" for name, mkey, ptask, pkey in PAIRED]
            lines.append(f"| {i} | " + " | ".join(cells) + " |")
        lines.append("| **median** | " + " | ".join(f"**{_fmt(paired[name]['median'])}×**" for name, *_ in PAIRED)
                     + " |")
    t = results["targets"]
    lines += ["", f"### Targets ({t['size']}² image)", "", "| target | goal | measured | met | note |",
              "|---|---|---|---|---|"]
    for name, v in t.items():
        if name == "size":
            continue
        met = "–" if v["met"] is None else ("yes" if v["met"] else "**no**")
        lines.append(f"| {name} | {v['target']} | {_fmt(v['measured'])} | {met} | {v['note']} |")
    errors = [(s, k, v["error"]) for s in sizes for k, v in results["sizes"][str(s)].items()
              if isinstance(v, dict) and "error" in v]
    if errors or "error" in results.get("peer_versions", {}):
        lines += ["", "Failures:"] + [f"- {s}² {k}: {e}" for s, k, e in errors]
        if "error" in results.get("peer_versions", {}):
            lines.append(f"- peers: {results['peer_versions']['error']}")
    lines += ["", "Threads: " + "; ".join(f"{k}: {' '.join(f'{a}={b}' for a, b in v.items())}"
                                          for k, v in results["threads"].items())
              + "; scikit-learn timed under `threadpoolctl.threadpool_limits(1)` and `(2)`, the faster reported.",
              "Versions: motifgram venv " + ", ".join(f"{k} {v}" for k, v in results["motifgram_versions"].items())
              + "; peer venv " + ", ".join(f"{k} {v}" for k, v in results["peer_versions"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
