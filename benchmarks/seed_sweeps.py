"""Seed sweeps behind the tests' thresholds: each claim's measures over many seeds.

Every accuracy test in ``tests/`` asserts on a ``measure_*`` function of its module; this script calls the same
functions for seeds 0..N-1 (the tests run two or three of them, shifted by ``MOTIFGRAM_TEST_SEED_OFFSET``) and
prints the range of every measure. The ranges are quoted beside the thresholds, which keep a margin to them:
a threshold must hold for any seed, not for the one it was fitted on.

    python benchmarks/seed_sweeps.py                  # every sweep, seeds 0-9
    python benchmarks/seed_sweeps.py detect. --seeds 12   # the sweeps whose name starts with "detect."

Results are merged into ``benchmarks/seed_sweeps.json`` (name -> measure -> list of (seed, value); a seed measured
again replaces its values). ``--show`` prints the stored ranges without measuring.
"""

import argparse
import importlib
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
OUT = Path(__file__).resolve().with_name("seed_sweeps.json")

#: name -> (test module, measure function, keyword arguments); the function takes ``seed`` and returns a dict of
#: numbers (or a tuple whose first element is that dict).
SWEEPS = {
    "detect.honeycomb": ("test_detect", "measure_honeycomb", {}),
    "detect.refinement": ("test_detect", "measure_refinement", {}),
    "detect.weak_and_strong": ("test_detect", "measure_weak_and_strong", {}),
    "detect.threshold_fraction": ("test_detect", "measure_threshold_fraction", {}),
    "detect.square": ("test_detect", "measure_square", {}),
    "detect.dark": ("test_detect", "measure_square", {"dark": True}),
    "detect.amorphous": ("test_detect", "measure_amorphous", {}),
    "detect.explicit_parameters": ("test_detect", "measure_explicit_parameters", {}),
    "detect.scan_filter.mos2": ("test_detect", "measure_scan_filter", {"kind": "mos2"}),
    "detect.scan_filter.graphene": ("test_detect", "measure_scan_filter", {"kind": "graphene"}),
    "detect.scan_filter_image": ("test_detect", "measure_scan_filter_image", {}),
    "tokens.mos2": ("test_tokens", "measure_mos2_tokens", {}),
    "tokens.orientation_shift": ("test_tokens", "measure_orientation_shift", {}),
    "tokens.two_orientations": ("test_tokens", "measure_two_orientations", {}),
    "tokens.one_species": ("test_tokens", "measure_one_species", {}),
    "tokens.merging": ("test_tokens", "measure_merging", {}),
    "tokens.pristine_graphene": ("test_tokens", "measure_pristine_graphene", {}),
    "tokens.perovskite": ("test_tokens", "measure_perovskite", {}),
    "tokens.mos2_context": ("test_tokens", "measure_mos2_context", {}),
    "tokens.context_generalises": ("test_tokens", "measure_context_generalises", {}),
    "compare": ("test_compare", "measure_compare", {}),
    "dual.recovered": ("test_dual", "measure_recovered", {}),
    "grammar.cairo": ("test_grammar_pipeline", "measure_cairo", {}),
    "grammar.graphene": ("test_grammar_pipeline", "measure_graphene_grammar", {}),
    "grammar.disorder_series": ("test_grammar_pipeline", "measure_disorder_series", {}),
    "grammar.selenium_series": ("test_grammar_pipeline", "measure_selenium_series", {}),
    "parse": ("test_parse", "measure_parse", {}),
    "pairs.sites": ("test_pairs", "measure_sites", {}),
    "pairs.rendered": ("test_pairs", "measure_rendered", {}),
    "pipeline.graphene_detection": ("test_pipeline", "measure_graphene_detection", {}),
    "pipeline.parse_new": ("test_pipeline", "measure_parse_new", {}),
    "api.analyse": ("test_api", "sweep_analysed", {}),
    # the real micrographs: the spec's seed (token fit) varies; detection and rings do not depend on it
    "real.mose2": ("test_real_data", "sweep", {"spec": "mose2_grain_boundary", "measure": "measure_mose2"}),
    "real.ws2te2": ("test_real_data", "sweep", {"spec": "ws2te2_alloy", "measure": "measure_ws2te2"}),
    "real.mos2_se": ("test_real_data", "sweep", {"spec": "mos2_se_implanted", "measure": "measure_mos2_se"}),
    "real.flower": ("test_real_data", "sweep", {"spec": "graphene_flower", "measure": "measure_flower"}),
    "real.sto": ("test_real_data", "sweep", {"spec": "sto", "measure": "measure_sto"}),
    "real.si110": ("test_real_data", "sweep", {"spec": "si110", "measure": "measure_si110_partners"}),
    "real.au": ("test_real_data", "sweep", {"spec": "au_grain_boundary", "measure": "measure_au"}),
    "real.si110_dumbbells": ("test_real_data", "sweep", {"spec": "si110_dumbbells", "measure": "measure_si110_dumbbells",
                                                         "module": "test_pairs"}),
}


def run_sweep(name, seeds):
    module, function, kwargs = SWEEPS[name]
    measure = getattr(importlib.import_module(module), function)
    values = {}
    for seed in seeds:
        start = time.perf_counter()
        out = measure(seed=seed, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        for key, value in out.items():
            values.setdefault(key, []).append((seed, float(value)))
        print(f"  {name} seed {seed}: " + ", ".join(f"{k} {float(v):.4g}" for k, v in out.items())
              + f"  ({time.perf_counter() - start:.1f} s)", flush=True)
    return values


def merged(old, new):
    """The stored sweep ``old`` with ``new`` in it: a seed measured again replaces its old values, other seeds stay;
    a measure the function no longer returns is dropped."""
    out = {}
    for key, pairs in new.items():
        seeds = {s for s, _ in pairs}
        out[key] = sorted([p for p in old.get(key, []) if p[0] not in seeds] + [list(p) for p in pairs])
    return out


def seed_ranges(seeds):
    """'0-7, 1016-1023' for seeds 0..7 and 1016..1023."""
    seeds, runs = sorted(seeds), []
    for s in seeds:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def summary_line(name, values):
    parts = []
    for key, pairs in values.items():
        finite = [v for _, v in pairs if math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (math.nan, math.nan)
        parts.append(f"{key} {lo:.4g}-{hi:.4g}")
    return f"{name} (seeds {seed_ranges(s for s, _ in pairs)}): " + "; ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="sweep names or prefixes (default: all)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--show", action="store_true", help="print the stored ranges of the sweeps, measure nothing")
    args = parser.parse_args(argv)
    names = [n for n in SWEEPS if not args.names or any(n.startswith(p) for p in args.names)]
    if not names:
        parser.error(f"no sweep matches {args.names}; known: {', '.join(SWEEPS)}")
    if args.show:
        stored = json.loads(OUT.read_text()) if OUT.is_file() else {}
        for name in names:
            if name in stored:
                print(summary_line(name, stored[name]))
        return
    seeds = range(args.first, args.first + args.seeds)
    done = {}
    for name in names:
        done[name] = run_sweep(name, seeds)
        results = json.loads(OUT.read_text()) if OUT.is_file() else {}  # another sweep may have written meanwhile
        results[name] = merged(results.get(name, {}), done[name])
        OUT.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    for name in names:
        print(summary_line(name, done[name]))


if __name__ == "__main__":
    main()
