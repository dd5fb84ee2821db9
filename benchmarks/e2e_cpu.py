"""CPU seconds of ``motifgram run`` as users run it, against another checkout's, rounds alternating.

On a shared machine the wall of a run follows the load; the CPU time a process uses (user + system, all its
threads, from ``resource.getrusage(RUSAGE_CHILDREN)``) moves far less, so a change is measured by it. For each
size the seed-0 micrograph of :func:`e2e.simulate` is run once by each tool (warming its JAX caches and exported
kernels, untimed); then the seed-1 micrograph ``--rounds`` times by each, the order alternating, each run a new
process with the default spec and the run's per-micrograph result cache removed. ``--baseline`` is another
``motifgram`` executable (an older checkout's; a wrapper script setting ``PYTHONPATH`` will do). The outputs of
the two tools' last runs are compared byte for byte (atoms.csv, bonds.csv, rings.csv, grammar.txt, tokens.npz).

    python benchmarks/e2e_cpu.py --baseline ../before/venv/bin/motifgram                 # 2048², 3 rounds
    python benchmarks/e2e_cpu.py --baseline BIN --sizes 512 2048 --rounds 2 --work /tmp/cpu

Prints a Markdown table (CPU s, wall s, peak RSS MiB, the features and detect stages' wall s, per run).
"""

import argparse
import filecmp
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from e2e import ROOT, _stage_times, simulate

OUTPUTS = ("atoms.csv", "bonds.csv", "rings.csv", "grammar.txt", "tokens.npz")


def cpu_run(executable: str, meta: dict, work: Path, tag: str) -> dict:
    """One ``motifgram run`` of ``meta``'s micrograph in a new process: its CPU s, wall s, peak RSS and stages."""
    work.mkdir(parents=True, exist_ok=True)
    spec = work / f"{tag}.yaml"
    spec.write_text(f"name: {tag}\ninputs:\n  - path: {meta['path']}\n    pixel_size: {meta['pixel_size_nm']}\n")
    out = work / "runs" / tag
    shutil.rmtree(out.parent / f".{out.name}.cache", ignore_errors=True)
    env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([executable, "run", str(spec), "--out", str(out), "--force", "--quiet"], env=env, check=True,
                   capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stages = _stage_times(json.loads((out / "summary.json").read_text()))
    return {"cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2),
            "wall_s": round(wall, 2), "peak_rss_mib": round(after.ru_maxrss / 1024), "out": out,
            "load": round(os.getloadavg()[0], 1), "features_s": stages.get("features"), "detect_s": stages.get("detect")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the other motifgram executable")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / ".bench" / "e2e-cpu")
    args = parser.parse_args(argv)
    tools = {"this": str(Path(sys.executable).parent / "motifgram"), "baseline": args.baseline}
    print("| size | round | tool | CPU s | wall s | peak RSS MiB | features s | detect s | load |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        warm, timed = simulate(size, 0, args.work / "data"), simulate(size, 1, args.work / "data")
        for tool, executable in tools.items():
            # ru_maxrss of the children is the largest so far: measure each tool's peak in its own process
            cpu_run(executable, warm, args.work / tool, f"warm{size}")
        last = {}
        for r in range(args.rounds):
            for tool in (("this", "baseline") if r % 2 else ("baseline", "this")):
                run = subprocess.run([sys.executable, __file__, "--one", tools[tool], json.dumps(timed),
                                      str(args.work / tool), f"s1-{size}"], check=True, capture_output=True, text=True)
                result = json.loads(run.stdout)
                last[tool] = Path(result["out"])
                print(f"| {size}² | {r + 1} | {tool} | {result['cpu_s']} | {result['wall_s']} | "
                      f"{result['peak_rss_mib']} | {result['features_s']} | {result['detect_s']} | {result['load']} |",
                      flush=True)
        same = [name for name in OUTPUTS if filecmp.cmp(last["this"] / name, last["baseline"] / name, shallow=False)]
        print(f"\n{size}²: byte-identical outputs: {', '.join(same) or 'none'}; differing: "
              f"{', '.join(sorted(set(OUTPUTS) - set(same))) or 'none'}\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:  # one run in a fresh parent, so that its peak RSS is its own
        executable, meta, work, tag = sys.argv[2:6]
        print(json.dumps(cpu_run(executable, json.loads(meta), Path(work), tag), default=str))
        sys.exit(0)
    sys.exit(main())
