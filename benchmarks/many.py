"""Many micrographs: wall time and peak memory of a glob spec run serially and with the local process pool.

Usage::

    python benchmarks/many.py [--counts 50 200] [--size 512] [--out benchmarks/many.json] [--kernel-cache DIR]

Writes ``--size``² simulated graphene micrographs (fixed seeds) to a scratch folder, then runs the same
spec over the first N of them with ``engine: {executor: local, workers: 1}`` and ``workers: 2``, each run in a
fresh process. The per-micrograph cache is removed before every run, so every run computes everything.

Memory of a run is the memory of all its processes: the main process and the pool's workers. Recorded per run:

- ``peak_total_rss_mib``: peak over the run of the summed resident memory of the run's process tree (sampled
  every 0.1 s; counts the pages of shared libraries once per process);
- ``peak_total_pss_mib``: the same with proportional set sizes (shared pages split between the processes that
  map them; sampled every 1 s, so a short peak can be missed);
- ``peak_rss_mib``: the largest single process (``ru_maxrss`` of the children, exact).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil  # installed with dask.distributed

RUN = """
import sys, yaml
from motifgram.engine.pipeline import run
from motifgram.engine.spec import load_spec
spec = load_spec(yaml.safe_load(open(sys.argv[1])), base_dir=sys.argv[2])
run(spec, out_dir=sys.argv[3], force=True, quiet=True)
"""


def write_micrographs(folder: Path, count: int, size: int) -> None:
    from motifgram.engine.simulate import simulate

    for seed in range(count):
        path = folder / f"frame{seed:04d}.npy"
        if not path.exists():
            np.save(path, simulate("graphene", size=size, seed=seed).image)


class TreeMemory:
    """Peak summed RSS (and PSS) of a process and its descendants, sampled in a thread until ``stop()``."""

    def __init__(self, pid: int, *, every_s: float = 0.1, pss_every: int = 10):
        self.peak_rss = self.peak_pss = 0
        self._root = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every_s, pss_every), daemon=True)
        self._thread.start()

    def _sample(self, every_s: float, pss_every: int) -> None:
        tick = 0
        while not self._stop.wait(every_s):
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                continue
            rss = pss = 0
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                    if tick % pss_every == 0:
                        pss += proc.memory_full_info().pss
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            tick += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def timed_run(spec: dict, folder: Path, out: Path) -> dict:
    spec_path = folder / "spec.yaml"
    import yaml

    spec_path.write_text(yaml.safe_dump(spec))
    shutil.rmtree(out.parent / f".{out.name}.cache", ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", RUN, str(spec_path), str(folder), str(out)])
    memory = TreeMemory(child.pid)
    try:
        if child.wait() != 0:
            raise subprocess.CalledProcessError(child.returncode, child.args)
    finally:
        memory.stop()
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_total_rss_mib": round(memory.peak_rss / 2**20, 1),
        "peak_total_pss_mib": round(memory.peak_pss / 2**20, 1),
        "peak_rss_mib": round(max(usage.ru_maxrss, before) / 1024, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/many.json"))
    parser.add_argument("--kernel-cache", type=Path, metavar="DIR",
                        help="JAX's persistent compilation cache in DIR for every run and pool worker (as the CLI "
                             "does), filled by an untimed run of the smallest count per worker setting first")
    args = parser.parse_args(argv)
    if args.kernel_cache:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(args.kernel_cache.absolute())
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    scratch = Path(tempfile.mkdtemp(prefix="motifgram-many-"))
    results = {"size": args.size, "cores": os.cpu_count(), "runs": []}
    try:
        write_micrographs(scratch, max(args.counts), args.size)
        warm_up = [min(args.counts)] if args.kernel_cache else []
        for run_index, count in enumerate([*warm_up, *args.counts]):
            folder = scratch / f"n{count}-{run_index}"
            folder.mkdir()
            for i in range(count):
                (folder / f"frame{i:04d}.npy").symlink_to(scratch / f"frame{i:04d}.npy")
            for workers in args.workers:
                spec = {
                    "name": f"many-{count}-{workers}",
                    "inputs": [{"path": "*.npy", "group": "graphene"}],
                    "engine": {"executor": "local", "workers": workers},
                    "output": {"report": False, "overlays": False},
                }
                # ru_maxrss of children is the largest child so far: run each configuration in its own
                # python so the figure belongs to this run alone
                result = json.loads(subprocess.run(
                    [sys.executable, __file__, "--_one", json.dumps(spec), str(folder)],
                    check=True, capture_output=True, text=True,
                ).stdout)
                result.update(count=count, workers=workers, kernel_cache=bool(args.kernel_cache))
                if run_index < len(warm_up):
                    continue
                results["runs"].append(result)
                print(json.dumps(result), file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--_one":
        spec, folder = json.loads(sys.argv[2]), Path(sys.argv[3])
        print(json.dumps(timed_run(spec, folder, folder / "run")))
        sys.exit(0)
    sys.exit(main())
