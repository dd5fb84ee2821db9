"""Rare heavy columns as tokens (issue 19): 1-3 Si dopants in simulated graphene, and the Si of AtomNet's G-Si-2nm.

Simulated: ``tests/test_chemistry_tokens.py``'s ``measure_rare_dopants`` (graphene at 20 counts, plain or under the
realistic imaging model, ``n`` dopants) over seeds and ``n``: whether the dopants are exactly one token and the
other columns one token. Real: ``G-Si-2nm`` (``benchmarks/get_atomnet_graphene.py`` fetches it; not in CI) through
the pipeline as a user runs it: the token of the column nearest the Si at (x 96, y 137) px and its members.

    python benchmarks/token_quality_dopants.py --seeds 0 1 2 3 --out benchmarks/token_quality_dopants.json
"""

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SI_XY = (96.0, 137.0)


def simulated(seeds, counts):
    from test_chemistry_tokens import measure_rare_dopants

    rows = []
    for realistic in (False, True):
        for seed in seeds:
            for n in counts:
                dopants, others, model = measure_rare_dopants(seed, n, realistic=realistic)
                rows.append({"realistic": realistic, "seed": seed, "n": n, "tokens": len(model.names),
                             "dopant_token_exact": bool(len(set(dopants.tolist())) == 1 and dopants[0] not in others),
                             "others_one_token": bool(len(set(others.tolist())) == 1)})
                print(rows[-1], flush=True)
    return rows


def real_scan():
    from get_atomnet_graphene import TARGET as DATA
    from motifgram.engine.pipeline import run
    from motifgram.engine.spec import load_spec

    path = DATA / "G-Si-2nm.hdf5"
    if not path.exists():
        return None
    spec = {"name": "G-Si-2nm", "seed": 0, "inputs": [{"path": str(path), "pixel_size": 2.0 / 256}],
            "output": {"report": False, "overlays": False}}
    out = run(load_spec(spec), out_dir=Path(tempfile.mkdtemp()) / "si", quiet=True)
    atoms = list(csv.DictReader(open(out / "atoms.csv")))
    xy = np.array([[float(a["x"]), float(a["y"])] for a in atoms])
    token = np.array([a["token"] for a in atoms])
    si = int(np.argmin(np.linalg.norm(xy - SI_XY, axis=1)))
    merging = json.loads((out / "summary.json").read_text())["tokens"]["merging"]
    result = {"atoms": len(atoms), "tokens": {t: int(np.sum(token == t)) for t in sorted(set(token))},
              "si_token": token[si], "si_token_members": int(np.sum(token == token[si])),
              "rare_kinds": merging["vocabulary"].get("rare_kinds")}
    print(result, flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = {"simulated": simulated(args.seeds, args.counts), "G-Si-2nm": real_scan()}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
