"""Peak memory of ``motifgram run`` as users run it, in all and per stage (issue 21's scale target: <= 8 GB).

For every size, the seed-1 simulated graphene micrograph of ``benchmarks/e2e.py`` is run once with the default
spec (overlays and report on) in a new process, under ``/usr/bin/time`` for its peak RSS. The child runs the
command line in its own process with its resident memory sampled every ``E2E_RSS_INTERVAL`` s (default 0.05)
and at the end of every stage, each sample counted for the innermost stage of
:class:`motifgram.engine.stages.StageTimer` running (``other``: imports, start-up, the report, exit).
``--baseline BIN`` runs another ``motifgram`` executable's interpreter (an older checkout's) on the same images,
right after. Each tool keeps its JAX compilation cache in ``--work`` across sizes and invocations.
``--mirrored`` sizes are made of the half-size seed-1 micrograph and its three mirror images (a mirror twin
boundary along the middle row and column): the stand-in for 8192² before the simulator's memory was bounded
(``benchmarks/README.md``, Scale); ``--sizes 8192`` now simulates it.

    python benchmarks/e2e_memory.py --sizes 2048 4096 --baseline ../before/venv/bin/motifgram
    python benchmarks/e2e_memory.py --sizes 8192
    python benchmarks/e2e_memory.py --sizes --mirrored 8192
    python benchmarks/e2e_memory.py --fit IMAGE.npy RUN_DIR   # the column fit alone: tiled vs whole image
    python benchmarks/e2e_memory.py --fit IMAGE.npy RUN_DIR --tiled-only   # tiled only (8192²: whole needs ~27 GB)
    python benchmarks/e2e_memory.py --child PEAKS.json run SPEC --out OUT   # the child, in this process

Writes ``benchmarks/e2e-memory.json`` (``--out`` to choose) and prints a Markdown table.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STAGES = ("load", "detect", "features", "graph", "tokens", "write", "grammar", "parse", "overlay", "other")


def child(peaks_path: str, argv: list[str]) -> int:
    """``motifgram`` with ``argv`` in this process; each stage's peak resident memory (MiB) to ``peaks_path``."""
    import threading
    from contextlib import contextmanager

    from motifgram.engine import stages
    from motifgram.engine.cli import main

    page, interval = os.sysconf("SC_PAGE_SIZE"), float(os.environ.get("E2E_RSS_INTERVAL", "0.05"))
    active, peaks, done = ["other"], {}, threading.Event()

    def note():
        with open("/proc/self/statm") as statm:
            mib = int(statm.read().split()[1]) * page / 2**20
        peaks[active[-1]] = max(peaks.get(active[-1], 0.0), mib)

    def sample():
        while not done.wait(interval):
            note()

    timer = stages.StageTimer.__call__

    @contextmanager
    def traced(self, stage):
        active.append(stage)
        try:
            with timer(self, stage):
                yield
        finally:
            note()
            active.pop()

    stages.StageTimer.__call__ = traced
    threading.Thread(target=sample, daemon=True).start()
    code = main(argv)
    done.set()
    Path(peaks_path).write_text(json.dumps({stage: round(mib, 1) for stage, mib in peaks.items()}))
    return code


def fit_check(image_path: str, run_dir: str, *, whole_image: bool = True) -> str:
    """The chemistry column fit (:func:`motifgram.engine.columnfit.column_intensities`) on a run's atoms, by tiles
    (the default) and then (``whole_image``) of the whole image at the same width: the peak RSS the tiled fit adds
    to this process, and how far the two fits' intensities are apart on the measured columns."""
    import csv
    import resource

    from scipy.spatial import cKDTree

    from motifgram.engine.chemistry import EDGE_SIGMAS
    from motifgram.engine.columnfit import column_intensities

    image = np.load(image_path)
    with open(Path(run_dir) / "atoms.csv") as table:
        xy = np.array([[float(row["x"]), float(row["y"])] for row in csv.DictReader(table)])
    nn = float(np.median(cKDTree(xy).query(xy[:: max(1, len(xy) // 5000)], k=2)[0][:, 1]))
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter()
    tiled, sigma = column_intensities(image, xy, nn_distance_px=nn)
    added, tiled_s = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before, time.perf_counter() - start
    head = f"{Path(image_path).name}: {len(xy):,} atoms, nn {nn:.2f} px, width {sigma:.2f} px; tiled fit +{added:.0f} "
    if not whole_image:
        return head + f"MiB peak RSS, {tiled_s:.1f} s"
    start = time.perf_counter()
    whole, _ = column_intensities(image, xy, nn_distance_px=nn, sigma_px=sigma, tile_px=max(image.shape))
    whole_s = time.perf_counter() - start
    h, w = image.shape
    measured = np.minimum.reduce([xy[:, 0], xy[:, 1], w - 1 - xy[:, 0], h - 1 - xy[:, 1]]) >= EDGE_SIGMAS * sigma
    rel = (np.abs(tiled - whole) / np.abs(whole))[measured]
    log_i = np.log(whole[measured])
    spread = 1.4826 * np.median(np.abs(log_i - np.median(log_i)))
    return (head + f"MiB peak RSS, {tiled_s:.1f} s (whole {whole_s:.1f} s); |tiled - whole| / whole over "
            f"{measured.sum():,} measured columns: max {rel.max():.2e}, 99th percentile {np.quantile(rel, 0.99):.2e}, "
            f"median {np.median(rel):.2e}; robust spread of log intensity {spread:.4f}")


def mirrored(size: int, folder: Path) -> dict:
    """The ``size``² micrograph made of the seed-1 ``size // 2``² one (:func:`e2e.simulate`) and its mirror images."""
    from e2e import simulate

    path = folder.absolute() / f"graphene_{size}_s1_mirrored.npy"
    half = simulate(size // 2, 1, folder)
    if not path.exists():
        image = np.load(half["path"])
        np.save(path, np.block([[image, image[:, ::-1]], [image[::-1], image[::-1, ::-1]]]))
    return dict(half, path=str(path), n_true=4 * half["n_true"])


def memory_run(meta: dict, work: Path, tool: str, executable: Path | None) -> dict:
    """One ``motifgram run`` of the micrograph ``meta`` (:func:`e2e.simulate`) in a new process of
    ``executable``'s interpreter (this one unless given): wall, peak RSS, stage seconds and stage peaks."""
    from e2e import _stage_times, timed_process

    size = Path(meta["path"]).stem
    tag = f"mem-{tool}-{size}"
    spec = work / f"{tag}.yaml"
    spec.write_text(f"name: {tag}\ninputs:\n  - path: {meta['path']}\n    pixel_size: {meta['pixel_size_nm']}\n")
    out, peaks = work / "runs" / tag, work / f"{tag}.rss.json"
    shutil.rmtree(out.parent / f".{out.name}.cache", ignore_errors=True)  # the per-micrograph result cache
    env = dict(os.environ, E2E_WORK=str(work), XDG_CACHE_HOME=str(work / f"cache-{tool}"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    python = (executable or Path(sys.executable)).parent / "python"
    result = timed_process([str(python), __file__, "--child", str(peaks), "run", str(spec), "--out", str(out),
                            "--force", "--quiet"], env)
    summary = json.loads((out / "summary.json").read_text())
    result["n_atoms"] = next(iter(summary["images"].values())).get("n_atoms")
    result["stages_s"] = {k: v for k, v in _stage_times(summary).items() if k in STAGES}
    result["stage_peak_rss_mib"] = json.loads(peaks.read_text())
    return result


def markdown(result: dict) -> str:
    lines = [f"Date: {result['date']}. Command: `{result['command']}`. Load average at start "
             f"{result['load_start']}, at end {result['load_end']}.", "",
             "| size | tool | atoms | wall s | **peak RSS MiB** | peak RSS MiB by stage: " + ", ".join(STAGES) + " |",
             "|---|---|---|---|---|---|"]
    for size, runs in result["sizes"].items():
        for tool, run in runs.items():
            by_stage = " · ".join(f"{run['stage_peak_rss_mib'].get(s, 0):.0f}" for s in STAGES)
            lines.append(f"| {size} | {tool} | {run['n_atoms']:,} | {run['wall_s']} | "
                         f"**{run['peak_rss_mib']:.0f}** | {by_stage} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[2:])
    if argv[:1] == ["--fit"]:
        print(fit_check(argv[1], argv[2], whole_image=argv[3:] != ["--tiled-only"]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2048, 4096])
    parser.add_argument("--mirrored", type=int, nargs="*", default=[], help="sizes made of mirror images")
    parser.add_argument("--baseline", type=Path, metavar="BIN", help="another motifgram executable, run after")
    parser.add_argument("--work", type=Path, default=HERE.parent / ".bench" / "e2e", help="data, runs and caches")
    parser.add_argument("--out", type=Path, default=HERE / "e2e-memory.json")
    args = parser.parse_args(argv)
    from e2e import log, simulate

    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    tools = {"motifgram": None, **({"baseline": args.baseline} if args.baseline else {})}
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(["python", *sys.argv]),
              "load_start": [round(x, 2) for x in os.getloadavg()], "baseline": str(args.baseline or ""), "sizes": {}}
    for size in args.sizes + args.mirrored:
        meta = simulate(size, 1, work / "data") if size in args.sizes else mirrored(size, work / "data")
        result["sizes"][Path(meta["path"]).stem] = runs = {}
        for tool, executable in tools.items():
            runs[tool] = memory_run(meta, work, tool, executable)
            run = runs[tool]
            log(f"{Path(meta['path']).stem} {tool}: {run['wall_s']} s, peak RSS {run['peak_rss_mib']} MiB "
                f"(load {os.getloadavg()[0]:.1f})")
    result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
