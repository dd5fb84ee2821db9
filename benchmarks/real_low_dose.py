"""Real low-dose graphene: AtomNet's public 60 kV scans through motifgram (issue 18).

    python benchmarks/get_atomnet_graphene.py                   # once: the scans, into benchmarks/data
    python benchmarks/real_low_dose.py --out benchmarks/real_low_dose.json
    python benchmarks/real_low_dose.py --check                  # exit 1 below the agreement floor

Per image: the lattice period (px, and whether it was called amorphous), the atoms found against the columns
AtomNet found (``*-coord.npy``, an independent detector's answer, not a hand annotation: recall and precision at
0.3 of the bond), and the run's rings (how many, the share of hexagons among the rings wholly inside the
image, the region labels). Pixel sizes from the files' scan size (4, 6, 2 nm); the Si dimer and trimer scans
have none, so their runs work in pixels. The images are public but carry no licence, so the project does not
carry them: ``get_atomnet_graphene.py`` fetches them (checked against their git hashes). ``--check`` asks of the
grain boundary and Si scans what tests/test_noise_limited.py asks of its simulations: recall and precision against
AtomNet >= 0.85 and 0.85-1.15 x its count (the unit tests cannot read the scans: CI has no copy).
"""

import argparse
import csv
import json
import logging
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from get_atomnet_graphene import TARGET as DATA

#: name -> (pixel size nm or None, C-C bond px)
IMAGES = {
    "G-GrainBoundary-4nm": (4.0 / 512, 0.142 / (4.0 / 512)),
    "G-GrainBoundary-6nm": (6.0 / 512, 0.142 / (6.0 / 512)),
    "G-Si-2nm": (2.0 / 256, 0.142 / (2.0 / 256)),
    "G-dimSi": (None, 37.0),
    "G-trimSi": (None, 37.0),
}


#: the scans --check holds to the agreement floor (the 6 nm boundary is coarser: 2.2 px per 0.1 nm)
CHECKED = ("G-GrainBoundary-4nm", "G-Si-2nm")


def agrees(result: dict) -> bool:
    """Recall and precision against AtomNet >= 0.85 and an atom count within 15 % of AtomNet's."""
    count_ratio = result["atoms"] / result["atomnet_atoms"]
    return result["recall"] >= 0.85 and result["precision"] >= 0.85 and 0.85 <= count_ratio <= 1.15


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def measure(name: str, pixel_nm: float | None, bond_px: float, work: Path) -> dict:
    from motifgram.engine.pipeline import run
    from motifgram.engine.spec import load_spec

    warnings = _Warnings()
    logging.getLogger("motifgram").addHandler(warnings)
    item = {"path": str(DATA / f"{name}.hdf5")}
    if pixel_nm is not None:
        item["pixel_size"] = pixel_nm
    spec = {"name": name, "seed": 0, "inputs": [item], "output": {"report": False, "overlays": False}}
    out = run(load_spec(spec), out_dir=work / name, quiet=True)
    logging.getLogger("motifgram").removeHandler(warnings)
    summary = json.loads((out / "summary.json").read_text())
    image = next(iter(summary["images"].values()))
    atoms = np.array([[float(r["x"]), float(r["y"])] for r in csv.DictReader(open(out / "atoms.csv"))])
    regions = Counter(r["region"] for r in csv.DictReader(open(out / "atoms.csv")))
    rings = list(csv.DictReader(open(out / "rings.csv")))
    whole = [r for r in rings if r.get("border", "False") in ("False", "false", "0")]
    sizes = Counter(int(r["size"]) for r in whole)
    result = {
        "period_px": round(image["lattice_period_px"], 2),
        "amorphous": any("amorphous" in m for m in warnings.messages),
        "atoms": len(atoms),
        "rings_inside": len(whole),
        "hexagon_share": round(sizes[6] / max(1, len(whole)), 3),
        "ring_sizes": dict(sorted(sizes.items())),
        "regions": dict(regions),
        "tokens": summary["tokens"]["k"],
        "rules": summary["grammar"]["n_rules"],
    }
    coord = DATA / f"{name}-coord.npy"
    if coord.exists():
        reference = np.load(coord, allow_pickle=True)[()][0][:, [1, 0]]  # (row, col) -> xy
        tolerance = 0.3 * bond_px
        result.update(
            atomnet_atoms=len(reference),
            recall=round(float(np.mean(cKDTree(atoms).query(reference)[0] < tolerance)), 3),
            precision=round(float(np.mean(cKDTree(reference).query(atoms)[0] < tolerance)), 3),
        )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 where the agreement with AtomNet is below the floor")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"AtomNet's graphene images are not at {DATA}: run benchmarks/get_atomnet_graphene.py", file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (pixel_nm, bond_px) in IMAGES.items():
            results[name] = measure(name, pixel_nm, bond_px, Path(tmp))
            print(name, json.dumps(results[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    if args.check:
        below = [name for name in CHECKED if not agrees(results[name])]
        for name in below:
            print(f"{name}: below the floor (recall, precision >= 0.85; 0.85-1.15 x AtomNet's atoms)", file=sys.stderr)
        return 1 if below else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
