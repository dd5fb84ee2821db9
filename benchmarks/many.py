"""Many micrographs: throughput, CPU and peak memory of a glob spec run serially, with the local pool and on Dask.

Usage::

    python benchmarks/many.py [--counts 50 200] [--size 512] [--executors serial local dask] [--workers 2]
                              [--out benchmarks/many.json] [--kernel-cache DIR]

Writes ``--size``² simulated graphene micrographs (fixed seeds) to a scratch folder, then runs the same
spec over the first N of them with each executor: ``serial`` is ``engine: {executor: local, workers: 1}``,
``local`` the local process pool (``workers: --workers``), ``dask`` a new local Dask cluster of ``--workers``
worker processes of one thread each (``engine: {executor: dask, workers: --workers}``). Each run is a fresh
process, and the per-micrograph cache is removed before every run, so every run computes everything. The
runs of one count must write the same bytes: the benchmark fails unless every executor's CSV files and
grammar.txt have the same hashes.

Throughput per run: micrographs per second of wall time, micrographs per CPU second (``cpu_seconds``: user +
system time of the run's whole process tree, the Dask scheduler, nannies and workers included, from
``RUSAGE_CHILDREN`` of the process that started the run), and atoms (rows of atoms.csv) per second. The load
average (1 min) before and after each run is recorded with it: the machine may be shared.

Memory of a run is the memory of all its processes: the main process and the pool's workers. Recorded per run:

- ``peak_total_rss_mib``: peak over the run of the summed resident memory of the run's process tree (sampled
  every 0.1 s; counts the pages of shared libraries once per process);
- ``peak_total_pss_mib``: the same with proportional set sizes (shared pages split between the processes that
  map them; sampled every 1 s, so a short peak can be missed);
- ``peak_rss_mib``: the largest single process (``ru_maxrss`` of the children, exact).
"""

import argparse
import hashlib
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


#: The spec's ``engine`` section of each executor, given the number of parallel workers.
ENGINES = {
    "serial": lambda workers: {"executor": "local", "workers": 1},
    "local": lambda workers: {"executor": "local", "workers": workers},
    "dask": lambda workers: {"executor": "dask", "workers": workers},
}


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


def output_hashes(run_dir: Path) -> dict:
    """SHA-256 of every CSV file and of grammar.txt of a run, by path relative to ``run_dir``."""
    files = sorted([*run_dir.rglob("*.csv"), run_dir / "grammar.txt"])
    return {f.relative_to(run_dir).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


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
    cpu_seconds = usage.ru_utime + usage.ru_stime
    with open(out / "atoms.csv") as atoms_csv:
        atoms = sum(1 for _ in atoms_csv) - 1
    count = len(list(folder.glob("*.npy")))
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 1),
        "atoms": atoms,
        "micrographs_per_s": round(count / seconds, 3),
        "micrographs_per_cpu_s": round(count / cpu_seconds, 3),
        "atoms_per_s": round(atoms / seconds),
        "peak_total_rss_mib": round(memory.peak_rss / 2**20, 1),
        "peak_total_pss_mib": round(memory.peak_pss / 2**20, 1),
        "peak_rss_mib": round(max(usage.ru_maxrss, before) / 1024, 1),
        "hashes": output_hashes(out),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--executors", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    parser.add_argument("--workers", type=int, default=2, help="workers of the local pool and of the Dask cluster")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/many.json"))
    parser.add_argument("--kernel-cache", type=Path, metavar="DIR",
                        help="JAX's persistent compilation cache in DIR for every run and worker (as the CLI "
                             "does), filled by an untimed run per executor first")
    parser.add_argument("--warm-up", type=int, metavar="N",
                        help="micrographs of the untimed run that fills the kernel cache (default: the smallest "
                             "count; fewer suffice when DIR is already filled by a run of the same size)")
    args = parser.parse_args(argv)
    if args.kernel_cache:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(args.kernel_cache.absolute())
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    scratch = Path(tempfile.mkdtemp(prefix="motifgram-many-"))
    results = {"size": args.size, "cores": os.cpu_count(), "workers": args.workers, "runs": []}
    try:
        write_micrographs(scratch, max(args.counts), args.size)
        warm_up = [args.warm_up or min(args.counts)] if args.kernel_cache else []
        for run_index, count in enumerate([*warm_up, *args.counts]):
            folder = scratch / f"n{count}-{run_index}"
            folder.mkdir()
            for i in range(count):
                (folder / f"frame{i:04d}.npy").symlink_to(scratch / f"frame{i:04d}.npy")
            hashes = {}
            for executor in args.executors:
                spec = {
                    "name": f"many-{count}",
                    "inputs": [{"path": "*.npy", "group": "graphene"}],
                    "engine": ENGINES[executor](args.workers),
                    "output": {"report": False, "overlays": False},
                }
                load_before = os.getloadavg()[0]
                # ru_maxrss of children is the largest child so far: run each configuration in its own
                # python so the figure belongs to this run alone
                result = json.loads(subprocess.run(
                    [sys.executable, __file__, "--_one", json.dumps(spec), str(folder)],
                    check=True, capture_output=True, text=True,
                ).stdout)
                hashes[executor] = result.pop("hashes")
                first = args.executors[0]
                if hashes[executor] != hashes[first]:
                    raise AssertionError(f"{count} micrographs: {executor} wrote other outputs than {first}: "
                                         + str(sorted(set(hashes[executor].items()) ^ set(hashes[first].items()))))
                result.update(count=count, executor=executor, workers=spec["engine"]["workers"],
                              kernel_cache=bool(args.kernel_cache), load_before=round(load_before, 2),
                              load_after=round(os.getloadavg()[0], 2))
                if run_index < len(warm_up):
                    continue
                results["runs"].append(result)
                args.out.write_text(json.dumps(results, indent=2) + "\n")  # a cut-short benchmark keeps its runs
                print(json.dumps(result), file=sys.stderr)
            print(f"{count} micrographs: {len(hashes[first])} output files identical across "
                  f"{', '.join(args.executors)}", file=sys.stderr)
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
