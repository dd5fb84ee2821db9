"""The comparison's scenarios (issue 20) and the time to compare 20 grammars.

Usage::

    python benchmarks/compare20.py [--seeds 0 1] [--kinds defects selenium twist] [--scratch DIR] [--timing]
    python benchmarks/compare20.py --kinds --timing        # the timing alone
    PYTHONPATH=OLD python benchmarks/compare20.py --kinds --timing --scratch DIR   # the same with another tree

For each scenario of tests/test_compare.py (one run per simulated micrograph, two per group): graphene at 0, 0.5,
2 and 5 % defects and a random network (``defects``); MoS2 with the same 47 Se2 columns ordered, random or in
clusters of 3 or 6, on chemistry features (``selenium``); twisted MoS2 bilayers at 0, 2, 4, 8 and 15 degrees
(``twist``), it prints the nearest-neighbour accuracy, the order (Spearman, by the distance to the last group and
from the first) and, per level, the largest distance between replicates against the smallest between groups
(``selenium``: also the Se2 columns per micrograph from the simulation's truth). ``--timing`` also times, in this process, loading and comparing 20 small runs (190
pairs; the first call, JAX compiling included) and the same with the grammar level (``levels=["grammar"]``), then
``motifgram compare`` on them in a fresh interpreter (cold). ``PYTHONPATH`` pointing at a package tree of another
commit (``motifgram/``, ``motifgram/engine``, ``motifgram/grammar`` from ``api/``, ``engine/``, ``grammar/``)
times that commit on the same runs (one ``--scratch`` for both), for before/after ratios.
Results: benchmarks/README.md, "Comparing grammars".
"""

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from motifgram.engine.pipeline import run  # noqa: E402
from motifgram.engine.spec import load_spec  # noqa: E402
from motifgram.grammar.compare import compare  # noqa: E402
from motifgram.grammar.items import load_comparable  # noqa: E402
from test_compare import measure_scenario  # noqa: E402

DENSITIES = (0.0, 0.001, 0.002, 0.004, 0.008)
OTHERS = ("crn", "mos2", "perovskite", "cairo", "graphene_gb")


def build(scratch: Path) -> list[Path]:
    """20 runs of two 256² micrographs each: graphene at five densities × three seeds, and five other kinds."""
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


def timing(scratch: Path) -> None:
    """Print the seconds to load and compare the 20 runs, with the grammar level, and of the command line."""
    paths = build(scratch)
    start = time.perf_counter()
    items = [load_comparable(p) for p in paths]
    loaded = time.perf_counter()
    result = compare(items)
    compared = time.perf_counter()
    print(f"20 runs: load {loaded - start:.2f} s, compare (190 pairs, tokens {result.vocabulary.method}, "
          f"{len(result.vocabulary.model.names)} joint tokens) {compared - loaded:.2f} s (first call), "
          f"total {compared - start:.2f} s", flush=True)
    if "levels" in inspect.signature(compare).parameters:  # a tree before issue 20's levels computes them all
        again = time.perf_counter()
        compare(items, levels=["grammar"])
        print(f"compare with the grammar level: {time.perf_counter() - again:.2f} s (second call)", flush=True)
    cli = time.perf_counter()
    subprocess.run([sys.executable, "-m", "motifgram.engine.cli", "compare", *map(str, paths)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"motifgram compare (fresh interpreter): {time.perf_counter() - cli:.2f} s", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--kinds", nargs="*", default=["defects", "selenium", "twist"])
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--timing", action="store_true")
    args = parser.parse_args(argv)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="motifgram-compare20-"))
    for kind in args.kinds:
        for seed in args.seeds:
            start = time.perf_counter()
            root = scratch / f"{kind}-{seed}"
            root.mkdir(parents=True, exist_ok=True)
            measures, _ = measure_scenario(kind, seed, root=root)
            print(json.dumps({"kind": kind, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
                              **{k: round(v, 4) for k, v in measures.items()}}), flush=True)
    if args.timing:
        timing(scratch / "timing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
