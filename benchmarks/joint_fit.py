"""What the joint refinement costs and buys: RMSE / Cramér–Rao bound with one or two passes, and detection time.

The passes are ``refine_jointly``'s ``n_iter``: 8 + 4 Levenberg-Marquardt iterations (the default), 6 + 3,
8 + 8, and 8 alone.

The error is tests/test_low_dose.py's measurement (192² simulations, realistic imaging, seeds 0-3); the time is
``detect_atoms`` on the default 2048² graphene simulation in one warm process, with and without the joint fit
(wall and process CPU seconds; on shared cores the CPU time is what the load disturbs least).

    python benchmarks/joint_fit.py
"""

import functools
import resource
import sys
import time
from pathlib import Path

import numpy as np

import motifgram.engine.detect as detect
import motifgram.engine.refine as refine
from motifgram.engine.simulate import simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_low_dose import measure_position_error  # noqa: E402


def main():
    for n_iter in ((8, 4), (6, 3), (8, 8), (8,)):
        detect.refine_jointly = functools.partial(refine.refine_jointly, n_iter=n_iter)
        for kind in ("graphene", "mos2"):
            for dose in (10.0, 40.0, 80.0):
                ratios = [measure_position_error(kind, dose, s)["ratio"] for s in range(4)]
                low, high = np.min(ratios), np.max(ratios)
                label = "+".join(map(str, n_iter))
                print(f"n_iter {label:4s} {kind:8s} {dose:4.0f} counts  RMSE/bound {low:.2f}-{high:.2f}", flush=True)
    detect.refine_jointly = refine.refine_jointly
    image = simulate("graphene", size=2048, seed=4).image
    for joint in (False, True):
        detect.detect_atoms(image, joint=joint)  # compile
    for joint in (False, True, False, True):
        start, cpu = time.perf_counter(), _cpu_seconds()
        detect.detect_atoms(image, joint=joint)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        print(f"2048² detect_atoms joint={joint}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
