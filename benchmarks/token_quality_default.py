"""The atoms' default descriptor: ``chemistry`` against ``zernike`` on every simulated kind, through the pipeline.

Usage (from ``benchmarks/``)::

    python token_quality_default.py [--seeds 0 1 2 1000 1001 1002] [--size 384] [--descriptors chemistry zernike]
                                    [--imaging plain realistic] [--cases graphene ...]
                                    [--out token_quality_default.json] [--render JSON ...]

Every case (graphene with Stone–Wales defects, 5-9 vacancies or 5-8-5 divacancies; a graphene grain boundary;
MoS2 with 10 % Se and 5 % S vacancies; MoS2 Se clusters and S-vacancy lines over a random background; SrTiO3-like
perovskite; a continuous random network; the Cairo tiling), seed, descriptor and imaging (``plain``: the
simulator's defaults; ``realistic``: ``benchmarks/accuracy.py``'s imaging model at 40 counts) goes through the
whole pipeline with the token count chosen by the run (``tokens.k: auto``), as a user's run does
(``grammar_quality.on_pipeline``). Per run: the token count against the number of chemically distinct column
kinds among the true classes (:data:`CHEMICAL`: the Cairo tiling's two vertex kinds are one element, equally
bright), the token ARI against those kinds (interior detections), the rule count and each defect kind's rule count
against the defects complete in the image. Writes the rows to ``--out`` (JSON) and a Markdown table to stdout.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grammar_quality import MOS2_OFF, OFF, defect_cells, on_pipeline, span  # (this folder)

DENSITY = 0.004  # graphene defects per atom
CASES = [  # (name, kind, options)
    ("graphene SW", "graphene", {**OFF, "stone_wales_density": DENSITY}),
    ("graphene V", "graphene", {**OFF, "vacancy_density": DENSITY}),
    ("graphene DV", "graphene", {**OFF, "divacancy_density": DENSITY}),
    ("graphene GB", "graphene_gb", {}),
    ("MoS2 Se + S vac", "mos2", {}),
    ("MoS2 clusters + lines + background", "mos2", {**MOS2_OFF, "se_fraction": 0.02, "s_vacancy_density": 0.01,
                                                    "se_cluster_density": 0.003, "s_vacancy_line_density": 0.003}),
    ("perovskite", "perovskite", {}),
    ("CRN (2-D glass)", "crn", {}),
    ("Cairo", "cairo", {}),
]
#: True classes that are one chemical column kind (scored as one): a Se-bearing column is one kind whether it holds
#: one Se or two; the Cairo tiling's 3- and 4-valent vertices are the same element at the same brightness.
CHEMICAL = {"Se2": "SSe", "B@cairo": "A"}


def measure(case, kind, options, seed, size, descriptor, realistic, scratch):
    merged = {k.split("@")[0]: v for k, v in CHEMICAL.items() if "@" not in k or k.endswith("@" + kind)}
    start = time.perf_counter()
    r = on_pipeline(case, kind, options, seed, size, "auto", scratch, realistic=realistic, descriptor=descriptor,
                    merged=merged)
    return {**r, "descriptor": descriptor, "imaging": "realistic" if realistic else "plain",
            "seconds": round(time.perf_counter() - start, 1)}


def table(rows):
    """Markdown: one line per case, imaging and descriptor, the seeds pooled."""
    lines = ["| case | imaging | descriptor | seeds | tokens (chemical kinds) | token ARI min–max (mean) | rules "
             "| defect kind: Σ count / Σ truth, worst relative error |", "|---|---|---|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["case"], r["imaging"], r["descriptor"]), []).append(r)

    for (case, imaging, descriptor), rs in groups.items():
        cells = defect_cells(rs)
        aris = [r["token_ari"] for r in rs]
        lines.append(f"| {case} | {imaging} | {descriptor} | {len(rs)} | {span([r['tokens'] for r in rs])} "
                     f"({rs[0]['kinds']}) | {min(aris):.3f}–{max(aris):.3f} ({np.mean(aris):.3f}) | "
                     f"{span([r['rules'] for r in rs])} | {'; '.join(cells)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 1000, 1001, 1002])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--descriptors", nargs="+", default=["chemistry", "zernike"])
    parser.add_argument("--imaging", nargs="+", default=["plain", "realistic"], choices=["plain", "realistic"])
    parser.add_argument("--cases", nargs="+", help="only the cases whose name contains one of these words")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("token_quality_default.json"))
    parser.add_argument("--render", type=Path, nargs="+", help="only print the table of earlier runs' JSON")
    args = parser.parse_args(argv)
    if args.render:
        print(table([r for path in args.render for r in json.loads(path.read_text())["rows"]]))
        return
    rows, start = [], time.perf_counter()
    cases = [c for c in CASES if not args.cases or any(word in c[0] for word in args.cases)]
    with tempfile.TemporaryDirectory() as scratch:
        for case, kind, options in cases:
            for imaging in args.imaging:
                for seed in args.seeds:
                    for descriptor in args.descriptors:
                        rows.append(measure(case, kind, options, seed, args.size, descriptor, imaging == "realistic",
                                            Path(scratch)))
                        r = rows[-1]
                        print(f"{case} {imaging} seed {seed} {descriptor}: {r['tokens']} tokens ({r['kinds']} kinds), "
                              f"ARI {r['token_ari']:.3f}, {r['rules']} rules, {r['defects']}, {r['seconds']} s",
                              file=sys.stderr, flush=True)
    args.out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "seconds": time.perf_counter() - start,
                                    "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
