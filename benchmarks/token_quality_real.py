"""The bundled real-image specs with each atom descriptor: tokens, rules and the write-ups' measures.

Each spec of ``specs/`` that detects atom columns runs with ``features.descriptor`` set to ``zernike`` and to
``chemistry`` (overlays and report off) at the given spec seeds; the measures are ``tests/test_real_data.py``'s
``measure_*`` functions (the claims of the write-ups in ``examples/``), plus the token count, the rule count and
the grammar's description length. Results go to ``token_quality_real.json``; ``--render`` prints the table.

    python benchmarks/token_quality_real.py --seeds 0 1
    python benchmarks/token_quality_real.py --render
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
OUT = Path(__file__).resolve().with_name("token_quality_real.json")

#: spec -> measure function of tests/test_real_data.py
SPECS = {"mose2_grain_boundary": "measure_mose2", "ws2te2_alloy": "measure_ws2te2",
         "mos2_se_implanted": "measure_mos2_se", "graphene_flower": "measure_flower", "sto": "measure_sto",
         "si110": "measure_si110_partners", "au_grain_boundary": "measure_au"}


def measure(spec, descriptor, seed, root):
    import test_real_data as t
    from motifgram.engine.pipeline import run
    from motifgram.engine.spec import load_spec

    raw = yaml.safe_load((t.SPECS / f"{spec}.yaml").read_text())
    raw.update(output={"overlays": False, "report": False}, seed=seed)
    raw.setdefault("features", {})["descriptor"] = descriptor
    start = time.perf_counter()
    out = run(load_spec(raw, base_dir=t.SPECS), out_dir=root / f"{spec}-{descriptor}-{seed}", quiet=True)
    seconds = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    g = t.grammar_of(out)
    row = {"tokens": len(set(t.read_run(out)[1])), "rules": summary["grammar"]["n_rules"],
           "bits": summary["grammar"]["description_length_bits"], "ring_words": len(g.rings),
           "motifs": len(g.motifs), "domains": len(g.domains), "seconds": round(seconds, 1)}
    row.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in getattr(t, SPECS[spec])(out).items()})
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--specs", nargs="+", default=list(SPECS))
    parser.add_argument("--descriptors", nargs="+", default=["zernike", "chemistry"])
    parser.add_argument("--render", action="store_true", help="print the stored table and exit")
    args = parser.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    if not args.render:
        root = Path(tempfile.mkdtemp(prefix="token-quality-real-"))
        for spec in args.specs:
            for descriptor in args.descriptors:
                for seed in args.seeds:
                    row = measure(spec, descriptor, seed, root)
                    results.setdefault(spec, {}).setdefault(descriptor, {})[str(seed)] = row
                    print(spec, descriptor, seed, row, flush=True)
                    OUT.write_text(json.dumps(results, indent=1, default=float) + "\n")
    for spec, by in results.items():
        for descriptor, rows in by.items():
            for seed, row in rows.items():
                print(f"| {spec} | {descriptor} | {seed} | " + ", ".join(f"{k} {v}" for k, v in row.items()) + " |")


if __name__ == "__main__":
    main()
