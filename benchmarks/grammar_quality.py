"""Grammar quality on simulations with exact defect counts: rules, description length, defect rule count vs truth.

Usage::

    python benchmarks/grammar_quality.py [--seeds 1 2 3 4 5 6 7 8] [--size 512] [--pipeline 2]
                                         [--modes truth spurious pipeline realistic] [--cases MoS2 ...]
                                         [--descriptor chemistry] [--auto-k]
                                         [--out benchmarks/grammar_quality.json] [--render JSON]

For every simulated material and defect case (graphene: Stone–Wales, 5-9 vacancy, 5-8-5 divacancy, 5-7
dislocation dipoles, alone, in pairs and all four mixed, at two densities; MoS2: Se clusters, S-vacancy
lines, both, and both over a random background of Se substitutions and S vacancies) and every seed, the
grammar is induced and the micrograph parsed three ways:

- ``truth``: the exact atom graph with the true site classes as tokens (the grammar alone);
- ``spurious`` (graphene): the same with half the atoms within 1.5 bond lengths of a defect given a second
  token "B", as a token model that sees distortion rather than chemistry gives (issue 19);
- ``pipeline`` (the first ``--pipeline`` seeds): the rendered image through the whole pipeline
  (detection, features, tokens pinned to the true number of column kinds, graph, grammar); its rings are
  matched to the truth's by their atoms (``grammar.truth.match_rings``). ``--descriptor`` sets
  ``features.descriptor`` (default ``auto``: Zernike invariants), ``--auto-k`` lets the run choose the token
  count (``tokens.k: auto``; with the ``chemistry`` descriptor by description length) instead of pinning it;
- ``realistic`` (the same seeds): the same with the realistic imaging model of ``benchmarks/accuracy.py``
  (probe tail, thickness variation, drift, row jitter, contamination, background ramp and blobs, scan noise)
  at 40 counts per unit amplitude.

Per defect kind: the rule that names it (the symbol most parse nodes holding exactly one defect's rings
carry, ``grammar.truth.defect_rules``), its top-level count, and the number of defects complete in the image.
``token_ari`` is the adjusted Rand index of the tokens against the true column classes
(``benchmarks/token_quality.py``'s ``token_ari``: the detections at least one nearest-neighbour distance from the
image edge, Se2 counted as SSe). ``--cases`` keeps the cases whose name contains one of the words given. Writes
every row to ``--out`` (JSON) and the tables to stdout (Markdown).
"""

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from motifgram.engine.graph import AtomGraph
from motifgram.engine.simulate import Defect, simulate
from motifgram.grammar.induce import induce_grammar
from motifgram.grammar.parse import ParseNode, parse_graph
from motifgram.grammar.truth import defect_rules, match_rings

from accuracy import REALISTIC  # the realistic imaging settings of the accuracy benchmark (this folder)
from token_quality import MERGED, token_ari  # (this folder)

MODES = ("truth", "spurious", "pipeline", "realistic")
REALISTIC_DOSE = 40.0  # counts per unit amplitude, within benchmarks/accuracy.py's sweep (10-80)
OFF = {"stone_wales_density": 0.0, "vacancy_density": 0.0}
MOS2_OFF = {"se_fraction": 0.0, "s_vacancy_density": 0.0}
CASES = [  # (name, kind, options, pinned token count for the pipeline)
    *[(f"graphene {name} {d}", "graphene", {**OFF, **{k: d for k in keys}}, 1)
      for d in (0.002, 0.006)
      for name, keys in (("SW", ["stone_wales_density"]), ("V", ["vacancy_density"]),
                         ("DV", ["divacancy_density"]), ("5-7", ["dislocation_density"]),
                         ("SW+DV", ["stone_wales_density", "divacancy_density"]),
                         ("SW+V", ["stone_wales_density", "vacancy_density"]),
                         ("all four", ["stone_wales_density", "vacancy_density", "divacancy_density",
                                       "dislocation_density"]))],
    *[(f"MoS2 {name} {d}", "mos2", {**MOS2_OFF, **{k: d for k in keys}}, len(labels.split()))
      for d in (0.002, 0.004)
      for name, keys, labels in (("Se cluster", ["se_cluster_density"], "Mo S2 Se2"),
                                 ("S-vac line", ["s_vacancy_line_density"], "Mo S2 S1"),
                                 ("both", ["se_cluster_density", "s_vacancy_line_density"], "Mo S2 Se2 S1"))],
    ("MoS2 both 0.003 + background", "mos2", {"se_fraction": 0.02, "s_vacancy_density": 0.01,
                                              "se_cluster_density": 0.003, "s_vacancy_line_density": 0.003}, 5),
]


def spurious_tokens(truth, seed):
    tokens = truth.label.astype("<U3")
    rng = np.random.default_rng(seed)
    at_defects = sorted({a for d in truth.defects for a in d.atoms})
    if at_defects:
        near = np.unique(np.concatenate(cKDTree(truth.xy).query_ball_point(truth.xy[at_defects], 1.5 * 8.0)))
        tokens[near[rng.random(len(near)) < 0.5]] = "B"
    return tokens


def row(case, seed, mode, grammar, total_bits, rules, ari=None):
    return {
        "case": case, "seed": seed, "mode": mode, "tokens": len(grammar.tokens), "rules": grammar.n_rules,
        "total_bits": round(total_bits, 1), "token_ari": ari,
        "defects": {k: {"symbol": r.symbol, "count": r.count, "truth": r.truth} for k, r in rules.items()},
    }


def on_truth(case, kind, options, seed, size, mode):
    truth = simulate(kind, size=size, seed=seed, **options).truth
    tokens = spurious_tokens(truth, seed) if mode == "spurious" else truth.label
    graph = AtomGraph(truth.xy, tokens, truth.bonds, truth.rings, (size, size))
    result = induce_grammar([graph])
    rules = defect_rules(parse_graph(result.grammar, graph).root, truth.rings, truth.defects)
    return row(case, seed, mode, result.grammar, result.total_bits, rules, 1.0 if mode == "truth" else None)


def on_pipeline(case, kind, options, seed, size, k, scratch, *, realistic=False, descriptor="auto", merged=None):
    from motifgram.engine import rundir
    from motifgram.engine.pipeline import run
    from motifgram.engine.spec import load_spec

    imaging = {**REALISTIC, "dose": REALISTIC_DOSE} if realistic else {}
    sim = simulate(kind, size=size, seed=seed, **options, **imaging)
    np.save(scratch / "image.npy", sim.image)
    spec = load_spec({"name": "q", "inputs": [{"path": "image.npy", "id": "img"}], "tokens": {"k": k},
                      "features": {"descriptor": descriptor}, "output": {"report": False, "overlays": False}},
                     base_dir=scratch)
    out = run(spec, out_dir=scratch / "run", force=True, quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    graph = rundir.read_run_graphs(out)["img"]
    # the columns where they were imaged (the realistic model's drift moves them by up to 1.5 px, beyond the
    # rings' matching tolerance, 0.3 bonds)
    truth = sim.truth if sim.imaging is None else dataclasses.replace(sim.truth, xy=sim.imaging.xy)
    nn = float(np.median(cKDTree(truth.xy).query(truth.xy, k=2)[0][:, 1]))
    matched = match_rings(graph.xy, graph.rings, truth.xy, truth.rings, tolerance_px=0.3 * nn)
    defects = [Defect(d.kind, d.atoms, tuple(matched[r] for r in d.rings)) for d in sim.truth.defects]
    root = ParseNode.from_dict(json.loads((out / "parses" / "img.json").read_text()))
    rules = defect_rules(root, graph.rings, defects)
    merged = MERGED if merged is None else merged
    ari = token_ari(truth, out / "atoms.csv", shape=sim.image.shape, merged=merged)
    kinds = len({merged.get(str(s), str(s)) for s in truth.label})  # chemically distinct column kinds
    return {**row(case, seed, "realistic" if realistic else "pipeline", rundir.read_grammar_file(out),
                  summary["grammar"]["total_bits"], rules, ari), "kinds": kinds}


def span(values):
    """``"a"`` when every value is ``a``, else ``"min–max"``."""
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}–{max(values)}"


def defect_cells(rows):
    """Per defect kind over ``rows`` (one per seed): ``"kind: Σ count/Σ truth, worst relative error"``."""
    cells = []
    for kind in sorted({k for r in rows for k in r["defects"]}):
        per = [r["defects"][kind] for r in rows if kind in r["defects"]]
        if all(p["symbol"] is None for p in per):
            cells.append(f"{kind}: unnamed ({sum(p['truth'] for p in per)} true)")
            continue
        worst = max(abs(p["count"] - p["truth"]) / p["truth"] if p["symbol"] else 1.0 for p in per if p["truth"])
        cells.append(f"{kind}: {sum(p['count'] for p in per)}/{sum(p['truth'] for p in per)}, {worst:.0%}")
    return cells


def table(rows):
    """Markdown: one line per case and mode, the seeds pooled (counts summed, the worst seed's error)."""
    lines = ["| case (defects per atom) | mode | seeds | tokens | rules | total bits (mean) | defect kind: Σ count / "
             "Σ truth, worst relative error | token ARI |", "|---|---|---|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["case"], r["mode"]), []).append(r)

    for (case, mode), rs in groups.items():
        cells = defect_cells(rs)
        aris = [r["token_ari"] for r in rs if r["token_ari"] is not None]
        lines.append(f"| {case} | {mode} | {len(rs)} | {span([r['tokens'] for r in rs])} | "
                     f"{span([r['rules'] for r in rs])} | {np.mean([r['total_bits'] for r in rs]):.0f} | "
                     f"{'; '.join(cells)} | {f'{np.mean(aris):.3f}' if aris else ''} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pipeline", type=int, default=2, help="seeds (the first N) also run through the pipeline")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("grammar_quality.json"))
    parser.add_argument("--cases", nargs="+", help="only the cases whose name contains one of these words")
    parser.add_argument("--descriptor", default="auto", help="features.descriptor of the pipeline runs")
    parser.add_argument("--auto-k", action="store_true", help="the pipeline runs choose the token count")
    parser.add_argument("--render", type=Path, help="only print the table of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.render:
        print(table(json.loads(args.render.read_text())["rows"]))
        return
    rows = []
    cases = [c for c in CASES if not args.cases or any(word in c[0] for word in args.cases)]
    with tempfile.TemporaryDirectory() as scratch:
        for case, kind, options, k in cases:
            for n, seed in enumerate(args.seeds):
                for mode in ("truth", "spurious"):
                    if mode in args.modes and (mode == "truth" or kind == "graphene"):
                        rows.append(on_truth(case, kind, options, seed, args.size, mode))
                for mode in ("pipeline", "realistic"):
                    if mode in args.modes and n < args.pipeline:
                        rows.append(on_pipeline(case, kind, options, seed, args.size, "auto" if args.auto_k else k,
                                                Path(scratch), realistic=mode == "realistic",
                                                descriptor=args.descriptor))
                print(f"{case} seed {seed}: {[(r['mode'], r['rules'], r['defects']) for r in rows[-3:]]}",
                      file=sys.stderr, flush=True)
    args.out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
