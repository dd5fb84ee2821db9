"""Rings and region labels under contamination, across grain boundaries and on glass (issue 18).

    python benchmarks/accuracy_contamination.py                  # seeds 0-5 and 1000-1005 x doses 10 20 40 80
    python benchmarks/accuracy_contamination.py --seeds 0 1 --doses 40 --out /tmp/c.json
    python benchmarks/accuracy_contamination.py --cases defects0.5 defects2 defects5 --doses 10 40 \
        --seeds 0 1 2 1000 1001 1002 --out /tmp/d.json

Cases (256^2, ``motifgram.engine.simulate``): ``patches``, graphene with a quarter of the image under two
layers of amorphous carbon 1.5x as bright as a column (the settings of ``tests/test_low_dose.py``); ``gb``,
the graphene grain boundary; ``glass``, the 2-D glass of ``benchmarks/accuracy.py`` (both with that script's
realistic imaging, 8 % of the area under contamination of contrast 0.5); ``defects0.5``, ``defects2``,
``defects5``, 384^2 graphene with 0.5, 2 or 5 % defects (half Stone-Wales, half vacancies: the disorder series
of ``tests/test_grammar_pipeline.py``) under the same realistic imaging. Per case and dose, summed over the
seeds: the rings whose atoms all lie more than half a bond inside a patch ("deep": none is the material's),
the most in one image, the share of the deep atoms and of the clean atoms (more than half a bond outside)
labelled ``network`` (``engine/regions.py``), and ring recovery and ring L1 away from contamination and the
image edge (``benchmarks/accuracy.py``'s scores).
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402

HALF_BOND = 0.5 * accuracy.BOND_PX


def simulate_case(case, dose, seed):
    from motifgram.engine.simulate import simulate

    if case == "patches":
        return simulate("graphene", size=256, seed=seed, dose=float(dose), contamination=0.25,
                        contamination_contrast=1.5, probe_tail=0.2)
    if case == "gb":
        return simulate("graphene_gb", size=256, seed=seed, dose=float(dose), **accuracy.REALISTIC)
    if case.startswith("defects"):
        density = float(case.removeprefix("defects")) / 100
        return simulate("graphene", size=384, seed=seed, dose=float(dose), stone_wales_density=density / 2,
                        vacancy_density=density / 2, **accuracy.REALISTIC)
    return accuracy.simulate_case("glass", dose, seed, 256)


def measure(sim):
    from motifgram.engine.detect import detect_atoms
    from motifgram.engine.graph import build_graph

    g = build_graph(detect_atoms(sim.image).xy, image_shape=sim.image.shape)
    mask = sim.imaging.contamination
    rc = np.clip(np.rint(g.xy[:, ::-1]).astype(int), 0, np.array(mask.shape) - 1)
    deep = ndimage.distance_transform_edt(mask)[rc[:, 0], rc[:, 1]] > HALF_BOND
    clean = ndimage.distance_transform_edt(~mask)[rc[:, 0], rc[:, 1]] > HALF_BOND
    network = g.region == "network"
    rings = [tuple(r) for r in g.rings]
    return {"rings_deep": sum(1 for r in rings if deep[list(r)].all()), "deep": int(deep.sum()),
            "deep_network": int(network[deep].sum()), "clean": int(clean.sum()),
            "clean_network": int(network[clean].sum()),
            "score": accuracy.score(sim, g.xy, rings, np.zeros((len(sim.imaging.xy), 2)))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["patches", "gb", "glass"],
                        choices=["patches", "gb", "glass", "defects0.5", "defects2", "defects5"])
    parser.add_argument("--doses", type=float, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--seeds", type=int, nargs="+", default=[*range(6), *range(1000, 1006)])
    parser.add_argument("--out", default=str(accuracy.ROOT / "benchmarks" / "accuracy_contamination.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    lines = ["| case | dose | rings deep (most in one image) | deep atoms network | clean atoms network "
             "| ring recovery | ring L1 |", "|---|---|---|---|---|---|---|"]
    results = {}
    for case in args.cases:
        for dose in args.doses:
            parts = [measure(simulate_case(case, dose, seed)) for seed in args.seeds]
            s = accuracy.summarise([p["score"] for p in parts])
            r = {"rings_deep": sum(p["rings_deep"] for p in parts), "most": max(p["rings_deep"] for p in parts),
                 "deep_network": sum(p["deep_network"] for p in parts) / max(sum(p["deep"] for p in parts), 1),
                 "clean_network": sum(p["clean_network"] for p in parts) / max(sum(p["clean"] for p in parts), 1),
                 "images": len(parts),
                 "ring_recovery": s["ring_recovery"], "ring_l1": s["ring_l1"]}
            results.setdefault(case, {})[f"{dose:g}"] = r
            lines.append(f"| {case} | {dose:g} | {r['rings_deep']} ({r['most']}) | {r['deep_network']:.2f} | "
                         f"{r['clean_network']:.3f} | {r['ring_recovery']:.3f} | "
                         f"{r['ring_l1']:.3f} |")
            print(lines[-1], f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    meta = {"command": " ".join(["python", "benchmarks/accuracy_contamination.py", *sys.argv[1:]]),
            "seeds": args.seeds, "seconds": time.perf_counter() - start}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
