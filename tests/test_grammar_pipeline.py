"""The grammar learned end to end (detection → tokens → rings → MDL induction) against simulated truth."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from motifgram.engine.pipeline import parse_with_grammar, run
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import load_spec
from motifgram.grammar import Grammar

QUIET = {"report": False, "overlays": False}


def run_spec(tmp_path, name, inputs, **sections):
    spec = load_spec({"name": name, "inputs": inputs, "output": QUIET, **sections}, base_dir=tmp_path)
    out = run(spec, out_dir=tmp_path / name, quiet=True)
    return out, Grammar.parse_text((out / "grammar.txt").read_text()), json.loads((out / "summary.json").read_text())


def motif_parts(grammar, motif):
    return sorted(motif.nodes), len(motif.edges)


@pytest.fixture(scope="module")
def graphene_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graphene")
    inputs = [{"simulate": {"kind": "graphene", "size": 512, "seed": 21, "stone_wales_density": 0.003,
                            "vacancy_density": 0.002}}]
    sim = simulate("graphene", size=512, seed=21, stone_wales_density=0.003, vacancy_density=0.002)
    return run_spec(tmp, "graphene", inputs), sim


def test_graphene_grammar_has_a_lattice_domain_stone_wales_and_vacancy_rules(graphene_run):
    (out, grammar, summary), sim = graphene_run
    size_of = {r.name: r.size for r in grammar.rings}
    hexagon_domains = [d for d in grammar.domains if size_of.get(d.symbol) == 6]
    assert len(hexagon_domains) == 1
    n_sw = sum(d.kind == "stone_wales" for d in sim.truth.defects)
    n_vac = sum(d.kind == "vacancy" for d in sim.truth.defects)
    stone_wales = [
        m for m in grammar.motifs
        if m.level >= 2 and sorted(size_of.get(p, 0) for p in m.nodes) == [5, 5, 7, 7] and len(m.edges) == 5
    ]
    assert len(stone_wales) == 1
    # every defect whose four rings lie inside the field of view (not cut by the border)
    assert n_sw - 2 <= stone_wales[0].count <= n_sw
    vacancy = [m for m in grammar.motifs if sorted(size_of.get(p, 0) for p in m.nodes) == [5, 9]]
    assert len(vacancy) == 1 and n_vac - 2 <= vacancy[0].count <= n_vac


def test_second_micrograph_is_covered_by_the_first_ones_grammar(graphene_run, tmp_path, caplog):
    (out, grammar, summary), _ = graphene_run
    other = simulate("graphene", size=512, seed=22, stone_wales_density=0.003, vacancy_density=0.002)
    np.save(tmp_path / "other.npy", other.image)
    parsed = json.loads((parse_with_grammar(out / "grammar.txt", tmp_path / "other.npy", out_dir=tmp_path / "p",
                                            quiet=True) / "summary.json").read_text())["images"]["other"]
    own_bits = summary["images"][next(iter(summary["images"]))]["bits_per_atom"]
    assert parsed["fit"] == {"bits_per_atom": parsed["bits_per_atom"], "grammar_bits_per_atom": own_bits,
                             "poor": False}
    assert "fits this micrograph poorly" not in caplog.text
    _, _, own = run_spec(tmp_path, "own", [{"path": "other.npy"}])
    own = own["images"]["other"]
    for level in ("1", "2"):
        assert parsed["coverage"][level] == pytest.approx(own["coverage"][level], abs=0.03)


def test_amorphous_network_costs_far_more_bits_under_the_crystal_grammar(graphene_run, tmp_path, caplog):
    """... and the parse says so: a warning with both costs, and ``fit.poor`` in summary.json."""
    (out, grammar, summary), _ = graphene_run
    crystal_bits = summary["images"][next(iter(summary["images"]))]["bits_per_atom"]
    crn = simulate("crn", size=512, seed=3)
    np.save(tmp_path / "crn.npy", crn.image)
    parsed = json.loads((parse_with_grammar(out / "grammar.txt", tmp_path / "crn.npy", out_dir=tmp_path / "p",
                                            quiet=True) / "summary.json").read_text())["images"]["crn"]
    assert parsed["bits_per_atom"] > 10 * crystal_bits
    assert parsed["fit"]["poor"] is True and parsed["fit"]["grammar_bits_per_atom"] == crystal_bits
    warning = next(r.getMessage() for r in caplog.records if "fits this micrograph poorly" in r.getMessage())
    assert f"{parsed['bits_per_atom']:.3g} bits/atom against {crystal_bits:.3g} bits/atom" in warning


def test_cairo_tiling_is_a_handful_of_rules_covering_95_percent(tmp_path):
    _, grammar, summary = run_spec(tmp_path, "cairo", [{"simulate": {"kind": "cairo", "size": 1280, "seed": 0}}])
    # a handful of rules: the pentagon word and its domain, plus a few rules for the odd mis-tokenised atom
    assert grammar.n_rules <= 8
    info = next(iter(summary["images"].values()))
    assert max(r.count for r in grammar.rings) >= 0.99 * info["n_rings"]
    assert [d.symbol for d in grammar.domains] == [max(grammar.rings, key=lambda r: r.count).name]
    assert info["coverage"]["2"] >= 0.95
    assert set(info["ring_histogram"]) == {"5"}


def test_disorder_series_is_ranked_and_twins_are_nearest(tmp_path):
    """Graphene at 0, 0.5, 2 and 5 % defects and a random network, two micrographs each (fixed seeds)."""
    series = [("g0", "graphene", 0.0), ("g05", "graphene", 0.005), ("g2", "graphene", 0.02),
              ("g5", "graphene", 0.05), ("crn", "crn", None)]
    inputs = []
    for name, kind, density in series:
        for twin in (1, 2):
            options = {} if density is None else {"stone_wales_density": density / 2, "vacancy_density": density / 2}
            inputs.append({"simulate": {"kind": kind, "size": 384, "seed": 10 * twin + len(inputs), **options},
                           "group": f"{name}-{twin}", "id": f"{name}-{twin}"})
    _, _, summary = run_spec(tmp_path, "series", inputs, tokens={"k": 1})
    disorder = [np.mean([summary["images"][f"{name}-{twin}"]["disorder"] for twin in (1, 2)]) for name, _, _ in series]
    assert spearmanr(disorder, range(len(series))).statistic == pytest.approx(1.0)
    comparison = summary["comparison"]
    names = comparison["items"]
    distance = np.array(comparison["distance"])
    np.fill_diagonal(distance, np.inf)
    for i, name in enumerate(names):
        material, twin = name.rsplit("-", 1)
        assert names[int(np.argmin(distance[i]))] == f"{material}-{3 - int(twin)}", name
    # the closest pairs name the rules one uses and the other does not: the pristine twins share everything
    differences = {(d["a"], d["b"]): d for d in comparison["differences"]}
    assert differences[("g0-1", "g0-2")]["only_in_a"] == differences[("g0-1", "g0-2")]["only_in_b"] == []


def test_mos2_selenium_series_is_ranked_in_order(tmp_path):
    """MoS2 with 0, 5 and 15 % of S replaced by Se, two micrographs each, in one run of three groups."""
    inputs = [
        {"simulate": {"kind": "mos2", "size": 384, "seed": seed, "se_fraction": fraction, "s_vacancy_density": 0.0},
         "group": f"se{round(100 * fraction):02d}"}
        for seed, fraction in enumerate((0.0, 0.0, 0.05, 0.05, 0.15, 0.15), start=1)
    ]
    _, _, summary = run_spec(tmp_path, "selenium", inputs)
    assert summary["comparison"]["ranking"] == ["se00", "se05", "se15"]
    disorder = summary["comparison"]["disorder"]
    assert disorder["se00"] < disorder["se05"] < disorder["se15"]
