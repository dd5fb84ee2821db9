"""Bits per atom of micrographs parsed with a grammar learned elsewhere: where the poor-fit warning belongs.

Usage::

    python benchmarks/poor_fit.py [--scratch DIR] [--data ../shared/data]

Learns three grammars from one 512² simulation each (graphene with Stone-Wales defects and vacancies, MoS2,
perovskite), then parses with each: other seeds of the same materials (more defects, another dose), other
simulated materials, and the real micrographs of ``../shared/data`` that are present. Prints, per grammar, its
own bits per atom, each parse's bits per atom and whether
:func:`motifgram.grammar.disorder.is_poor_fit` calls it a poor fit; writes ``poor_fit.json`` in the scratch
folder. Accuracy figures only (no timing).
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from motifgram.engine.errors import MotifgramError
from motifgram.engine.pipeline import parse_with_grammar, run
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import load_spec
from motifgram.grammar.disorder import is_poor_fit

QUIET = {"report": False, "overlays": False}
TRAIN = {
    "graphene": {"kind": "graphene", "size": 512, "seed": 21, "stone_wales_density": 0.003, "vacancy_density": 0.002},
    "mos2": {"kind": "mos2", "size": 512, "seed": 1},
    "perovskite": {"kind": "perovskite", "size": 512, "seed": 1},
}
SIMULATED = {
    "graphene seed 5": ("graphene", {"seed": 5}),
    "graphene seed 6, 5x defects": ("graphene", {"seed": 6, "stone_wales_density": 0.01, "vacancy_density": 0.005}),
    "graphene seed 7, dose 20": ("graphene", {"seed": 7, "dose": 20.0}),
    "graphene grain boundary": ("graphene_gb", {"seed": 3}),
    "MoS2 seed 5": ("mos2", {"seed": 5}),
    "MoS2 seed 6, 30 % Se": ("mos2", {"seed": 6, "se_fraction": 0.3}),
    "MoS2 seed 7, dose 20": ("mos2", {"seed": 7, "dose": 20.0}),
    "perovskite seed 5": ("perovskite", {"seed": 5}),
    "perovskite seed 6, dose 20": ("perovskite", {"seed": 6, "dose": 20.0}),
    "Cairo tiling": ("cairo", {"seed": 2}),
    "random network": ("crn", {"seed": 3}),
}
REAL = {
    "STO (real)": "atomap-sto/test_ADF_cropped.hdf5",
    "MoSe2 grain boundary (real)": "motiflearn-tmd/GB_mono_MoSe2.tif",
    "Si [110] (real)": "atomsegnet-au-si/Si110_5nmX25us_03_none_none.png",
    "Au grain boundary (real)": "atomsegnet-au-si/Grain_boundry_gold_512px.png",
    "WS2Te2 alloy (real)": "motiflearn-tmd/WS2Te2-2_0040_1_Cut.tif",
    "MoS2 with Se (real)": "temul-mos2-se/example_Se_implanted_MoS2.dm3",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "motifgram-poor-fit")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    targets = {}
    for name, (kind, options) in SIMULATED.items():
        path = args.scratch / f"{kind}-{options['seed']}.npy"
        if not path.exists():
            np.save(path, simulate(kind, size=512, **options).image)
        targets[name] = path
    targets |= {name: args.data / rel for name, rel in REAL.items() if (args.data / rel).is_file()}
    results = {}
    for grammar_name, simulation in TRAIN.items():
        run_dir = args.scratch / f"run-{grammar_name}"
        if not (run_dir / "summary.json").exists():
            spec = load_spec({"name": grammar_name, "inputs": [{"simulate": simulation}], "output": QUIET})
            run(spec, out_dir=run_dir, force=True, quiet=True)
        own = next(iter(json.loads((run_dir / "summary.json").read_text())["images"].values()))["bits_per_atom"]
        results[grammar_name] = {"own": own, "parsed": {}}
        print(f"\n{grammar_name} grammar: own {own:.3g} bits/atom")
        for k, (name, path) in enumerate(targets.items()):
            try:
                out = parse_with_grammar(run_dir / "grammar.txt", path, out_dir=args.scratch / f"p-{grammar_name}-{k}",
                                         force=True, quiet=True)
            except MotifgramError as exc:
                print(f"  {name}: {exc}")
                continue
            bits = next(iter(json.loads((out / "summary.json").read_text())["images"].values()))["bits_per_atom"]
            results[grammar_name]["parsed"][name] = {"bits_per_atom": bits, "poor": is_poor_fit(bits, own)}
            print(f"  {name}: {bits:.3g} bits/atom ({bits / own:.2g}x own){'  POOR FIT' * is_poor_fit(bits, own)}")
    (args.scratch / "poor_fit.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
