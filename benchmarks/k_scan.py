"""The token step's BIC scan with early stopping against the full scan: chosen K and the number of fits.

Every input is a simulated micrograph (each kind of :data:`motifgram.engine.simulate.KINDS`, sides 256 and
512 px, seeds ``offset + 0..4``) run through the default spec's detection and Zernike features; the token
model is then learned twice from all its atoms' invariants with :func:`motifgram.engine.tokens.learn_tokens`
(``k="auto"``, ``k_range`` (1, 8), 4 restarts, EM seed ``offset``: the default spec): once scanning every K
(``BIC_PATIENCE = None``) and once with the token step's early stop
(:data:`motifgram.engine.tokens.BIC_PATIENCE`). Reported per input: the mixture's K, the token count, whether
the atoms' token labels are identical, the EM fits of each scan and their seconds.

Usage::

    python benchmarks/k_scan.py                      # seeds 0-4, writes benchmarks/k_scan.json
    python benchmarks/k_scan.py --seed-offset 1000   # seeds 1000-1004 (the tests' second seed set)
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from motifgram.engine import mixture, tokens
from motifgram.engine.simulate import KINDS, simulate
from motifgram.engine.spec import load_spec
from motifgram.engine.stages import describe_atoms, find_atoms

HERE = Path(__file__).resolve().parent


class _CountFits:
    """Wraps :func:`motifgram.engine.mixture.fit_mixture` (what the BIC scan calls) and counts its calls."""

    def __init__(self):
        self.calls = 0
        self._fit = mixture.fit_mixture

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._fit(*args, **kwargs)


def features(kind: str, size: int, seed: int, spec) -> np.ndarray:
    """(N, M) float32 Zernike invariants of every atom of one simulated micrograph, as the pipeline has them."""
    image = simulate(kind, size=size, seed=seed).image
    cleaned, atoms, _ = find_atoms(image, spec)
    return np.asarray(describe_atoms(cleaned, atoms, spec).invariants, dtype=np.float32)


def scan(invariants: np.ndarray, patience, seed: int) -> dict:
    """One ``learn_tokens`` with the BIC scan's patience set to ``patience``: K, tokens, fits, seconds."""
    counter = _CountFits()
    mixture.fit_mixture, tokens.BIC_PATIENCE = counter, patience
    try:
        start = time.perf_counter()
        model, labels, _ = tokens.learn_tokens(invariants, seed=seed)
        seconds = time.perf_counter() - start
    finally:
        mixture.fit_mixture = counter._fit
    return {"k": len(model.mixture.weights), "tokens": len(model.names), "fits": counter.calls,
            "seconds": round(seconds, 3), "labels": labels}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-offset", type=int, default=0, help="simulation seeds offset + 0..4, EM seed offset")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or HERE / ("k_scan.json" if args.seed_offset == 0 else f"k_scan_{args.seed_offset}.json")
    patience = tokens.BIC_PATIENCE
    spec = load_spec({"inputs": [{"simulate": {"kind": "graphene", "size": 64}}], "seed": args.seed_offset})
    rows = []
    for kind in KINDS:
        for size in args.sizes:
            for seed in range(args.seed_offset, args.seed_offset + args.seeds):
                invariants = features(kind, size, seed, spec)
                full = scan(invariants, None, args.seed_offset)
                early = scan(invariants, patience, args.seed_offset)
                row = {"kind": kind, "size": size, "seed": seed, "atoms": len(invariants),
                       "same_labels": bool(np.array_equal(full.pop("labels"), early.pop("labels"))),
                       "full": full, "early": early}
                rows.append(row)
                print(f"{kind:12s} {size:4d} seed {seed:4d} {len(invariants):6d} atoms  K {full['k']} -> "
                      f"{early['k']}  tokens {full['tokens']} -> {early['tokens']}  fits {full['fits']} -> "
                      f"{early['fits']}  {full['seconds']:.2f} -> {early['seconds']:.2f} s  "
                      f"labels {'same' if row['same_labels'] else 'DIFFER'}", flush=True)
    same_k = sum(r["full"]["k"] == r["early"]["k"] for r in rows)
    same = sum(r["same_labels"] for r in rows)
    fits = [sum(r[key]["fits"] for r in rows) for key in ("full", "early")]
    seconds = [round(sum(r[key]["seconds"] for r in rows), 2) for key in ("full", "early")]
    summary = {"inputs": len(rows), "same_k": same_k, "same_labels": same, "fits_full": fits[0],
               "fits_early": fits[1], "seconds_full": seconds[0], "seconds_early": seconds[1]}
    print(f"\n{len(rows)} inputs, patience {patience}: K unchanged on {same_k}, labels identical on {same}; "
          f"fits {fits[0]} -> {fits[1]}; scan seconds {seconds[0]} -> {seconds[1]}")
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed_offset": args.seed_offset, "patience": patience,
              "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                          "load_average": list(os.getloadavg())},
              "summary": summary, "rows": rows}
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if same_k == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
