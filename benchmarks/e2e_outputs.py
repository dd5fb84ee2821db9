"""Report and overlay of a finished run, timed as ``motifgram run`` makes them (issue 21: ≤ 0.3 s at 2048²).

Reads a run directory written by ``motifgram run`` (e.g. one of ``benchmarks/e2e.py``'s), then in a new
process per repeat: the overlay of its first micrograph (``render_overlay`` with the run's atoms, tokens, rings
and symbols) and ``write_report`` on a copy of the directory. Reports wall and CPU seconds (CPU time is what
the two shared cores' load disturbs least), the first call in a process (templates and parsers built) and a
second one. *report as run*: given the grammar and token statistics, as ``motifgram run`` calls it;
*report rebuilt*: reading them from the files, as ``motifgram report`` does.

    python benchmarks/e2e_outputs.py RUN_DIR [--repeats 3]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import csv, json, sys, time
from pathlib import Path
import numpy as np
from motifgram.engine import rundir
from motifgram.engine.io import load_micrograph
from motifgram.engine.overlay import render_overlay
from motifgram.engine.report import write_report

run_dir, source, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
summary = rundir.read_summary(run_dir)
image_id, info = next(iter(summary["images"].items()))
graph = rundir.read_run_graphs(source, images=[image_id])[image_id]
names = [str(n) for n in np.load(source / "tokens.npz")["names"]]
labels = np.array([names.index(t) for t in graph.tokens.tolist()])
with open(source / "rings.csv", newline="") as fh:
    ring_symbols = [row["symbol"] for row in csv.DictReader(fh) if row["image"] == image_id]
image = load_micrograph(info["source"]).image
held = {"grammar": rundir.read_grammar_file(source / rundir.GRAMMAR_TXT), "token_stats": rundir.read_token_stats(source)}
times = {}
for call in ("first", "second"):
    for what in ("overlay", "report as run", "report rebuilt"):
        w, c = time.perf_counter(), time.process_time()
        if what == "overlay":
            render_overlay(image, graph.xy, labels, names, graph.rings, ring_symbols, out / f"{call}.png",
                           title=image_id, pixel_size_nm=info.get("pixel_size_nm"))
        else:
            write_report(run_dir, **(held if what == "report as run" else {}))
        times[f"{what} {call}"] = (time.perf_counter() - w, time.process_time() - c)
print(json.dumps(times))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    source = args.run_dir.absolute()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        shutil.copytree(source, copy)
        for _ in range(args.repeats):
            done = subprocess.run([sys.executable, "-c", _CHILD, str(copy), str(source), tmp], capture_output=True,
                                  text=True, env=dict(os.environ, PYTHONHASHSEED="0"))
            if done.returncode:
                raise RuntimeError(done.stderr[-3000:])
            runs.append(json.loads(done.stdout.splitlines()[-1]))
    print(f"{source} ({time.strftime('%Y-%m-%dT%H:%M:%S%z')}, load {os.getloadavg()[0]:.1f}); "
          f"median of {args.repeats} processes, seconds wall / CPU:")
    for key in runs[0]:
        wall = statistics.median(r[key][0] for r in runs)
        cpu = statistics.median(r[key][1] for r in runs)
        print(f"  {key:22s} {wall:7.3f} / {cpu:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
