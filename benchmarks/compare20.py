"""Comparing 20 grammars pairwise: 20 small runs of simulated materials, then ``compare`` over all of them.

Usage::

    python benchmarks/compare20.py [--scratch DIR]

Builds 20 run directories (graphene at five defect densities, three seeds each, and one run each of a random
network, MoS2, perovskite, the Cairo tiling and a graphene grain boundary; two 256² micrographs per run;
reused when present in ``--scratch``), then times loading them and the pairwise comparison (190 pairs, each
with the cross description length in both directions: 380 parses).
"""

import argparse
import tempfile
import time
from pathlib import Path

from motifgram.engine.pipeline import run
from motifgram.engine.spec import load_spec
from motifgram.grammar.compare import compare, load_comparable

DENSITIES = (0.0, 0.001, 0.002, 0.004, 0.008)
OTHERS = ("crn", "mos2", "perovskite", "cairo", "graphene_gb")


def build(scratch: Path) -> list[Path]:
    paths = []
    for r in range(20):
        path = scratch / f"run{r:02d}"
        paths.append(path)
        if (path / "summary.json").exists():
            continue
        if r < 15:
            density = DENSITIES[r % 5]
            inputs = [{"simulate": {"kind": "graphene", "size": 256, "seed": 100 + 2 * r + s,
                                    "stone_wales_density": density, "vacancy_density": density}} for s in range(2)]
            tokens = {"k": 1}
        else:
            inputs = [{"simulate": {"kind": OTHERS[r - 15], "size": 256, "seed": 100 + 2 * r + s}} for s in range(2)]
            tokens = {}
        spec = load_spec({"name": path.name, "inputs": inputs, "tokens": tokens,
                          "output": {"overlays": False, "report": False}})
        run(spec, out_dir=path, force=True, quiet=True)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="motifgram-compare20-"))
    paths = build(scratch)
    start = time.perf_counter()
    items = [load_comparable(p) for p in paths]
    loaded = time.perf_counter()
    compare(items)
    compared = time.perf_counter()
    print(f"20 runs: load {loaded - start:.2f} s, compare (190 pairs) {compared - loaded:.2f} s, "
          f"total {compared - start:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
