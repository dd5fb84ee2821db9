"""End to end: simulated micrographs with exact truth through detection, graph, tokens, grammar and outputs."""

import csv
import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from motifgram.engine.detect import detect_atoms
from motifgram.engine.graph import build_graph
from motifgram.engine.pipeline import parse_with_grammar, run
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import load_spec
from motifgram.engine.tokens import UNDECIDED_OVERLAP, TokenModel, is_close_call, merge_decision, merge_sequence


def match_to_truth(truth_xy, found_xy, radius):
    """Index of the detected atom matching each truth atom (-1 when none within ``radius``), one-to-one."""
    tree = cKDTree(found_xy)
    dist, idx = tree.query(truth_xy, distance_upper_bound=radius)
    idx = np.where(np.isfinite(dist), idx, -1)
    _, first = np.unique(idx[idx >= 0], return_index=True)
    keep = np.zeros(len(idx), bool)
    keep[np.flatnonzero(idx >= 0)[first]] = True
    return np.where(keep, idx, -1)


@pytest.fixture(scope="module")
def graphene_with_defects():
    return simulate("graphene", size=512, seed=11, stone_wales_density=0.003, vacancy_density=0.0)


def test_detection_f1_and_rmse_on_simulated_graphene(graphene_with_defects):
    sim = graphene_with_defects
    atoms = detect_atoms(sim.image)
    match = match_to_truth(sim.truth.xy, atoms.xy, radius=0.5 * atoms.nn_distance_px)
    true_positives = np.count_nonzero(match >= 0)
    precision = true_positives / len(atoms.xy)
    recall = true_positives / len(sim.truth.xy)
    f1 = 2 * precision * recall / (precision + recall)
    rmse = np.sqrt(np.mean(np.sum((atoms.xy[match[match >= 0]] - sim.truth.xy[match >= 0]) ** 2, axis=1)))
    assert f1 >= 0.99
    assert rmse <= 0.25


def test_every_stone_wales_defect_appears_with_its_rings(graphene_with_defects):
    sim = graphene_with_defects
    atoms = detect_atoms(sim.image)
    graph = build_graph(atoms.xy, image_shape=sim.image.shape)
    match = match_to_truth(sim.truth.xy, atoms.xy, radius=0.5 * atoms.nn_distance_px)
    found = {frozenset(ring) for ring in graph.rings}
    defects = [d for d in sim.truth.defects if d.kind == "stone_wales"]
    assert len(defects) >= 5
    for defect in defects:
        sizes = sorted(len(sim.truth.rings[r]) for r in defect.rings)
        assert sizes == [5, 5, 7, 7]
        for r in defect.rings:
            mapped = match[list(sim.truth.rings[r])]
            assert (mapped >= 0).all()
            assert frozenset(mapped.tolist()) in found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    return run(None, out_dir=out, quiet=True)


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_demo_writes_every_output_file(demo_run):
    for name in ("atoms.csv", "bonds.csv", "rings.csv", "grammar.txt", "tokens.npz", "summary.json", "report.html"):
        assert (demo_run / name).is_file(), name
    summary = json.loads((demo_run / "summary.json").read_text())
    assert set(summary["images"]) == {"graphene-1", "graphene-2"}
    for image_id in summary["images"]:
        assert (demo_run / "parses" / f"{image_id}.json").is_file()
        assert (demo_run / "overlays" / f"{image_id}.png").is_file()
    for stage in ("detect", "features", "graph", "tokens", "grammar", "parse"):
        assert summary["timings"][stage] >= 0
    assert not list(demo_run.parent.glob(".*partial*"))


def test_demo_columns_follow_the_interface(demo_run):
    atoms = read_rows(demo_run / "atoms.csv")
    assert list(atoms[0]) == ["image", "id", "x", "y", "token", "confidence", "intensity", "region", "x_nm", "y_nm"]
    assert list(read_rows(demo_run / "bonds.csv")[0]) == ["image", "i", "j"]
    rings = read_rows(demo_run / "rings.csv")
    assert list(rings[0]) == ["image", "ring", "size", "symbol", "atoms", "border"]
    summary = json.loads((demo_run / "summary.json").read_text())
    per_image = {}
    for row in atoms:
        per_image.setdefault(row["image"], []).append(row)
        assert 0.0 <= float(row["confidence"]) <= 1.0
    for image_id, rows in per_image.items():
        info = summary["images"][image_id]
        assert len(rows) == info["n_atoms"]
        assert sum(info["token_counts"].values()) == info["n_atoms"]
        assert [int(r["id"]) for r in rows] == list(range(len(rows)))
    for ring in rings:
        assert len(ring["atoms"].split()) == int(ring["size"])
        assert ring["border"] in ("0", "1")
    assert {row["region"] for row in atoms} <= {"network", "disordered"}
    assert any(r["border"] == "1" for r in rings) and any(r["border"] == "0" for r in rings)


def test_lengths_in_nm_follow_the_pixel_size(demo_run):
    """The demo's simulations know their pixel size: nm columns are px x pixel size, and the measured bond
    length is graphene's (0.142 nm, the simulation's truth) to within 2 %."""
    summary = json.loads((demo_run / "summary.json").read_text())
    for row in read_rows(demo_run / "atoms.csv")[::97]:
        pixel = summary["images"][row["image"]]["pixel_size_nm"]
        # x is written to 1e-3 px and x_nm to 1e-5 nm, both from the unrounded position
        assert float(row["x_nm"]) == pytest.approx(float(row["x"]) * pixel, abs=5e-4 * pixel + 5e-6)
        assert float(row["y_nm"]) == pytest.approx(float(row["y"]) * pixel, abs=5e-4 * pixel + 5e-6)
    for info in summary["images"].values():
        assert info["bond_length_nm"]["median"] == pytest.approx(0.142, rel=0.02)
        assert info["bond_length_nm"]["p05"] < info["bond_length_nm"]["median"] < info["bond_length_nm"]["p95"]
        assert info["nn_distance_nm"] == pytest.approx(info["nn_distance_px"] * info["pixel_size_nm"], abs=1e-5)
        assert info["lattice_period_nm"] == pytest.approx(1.5 * 0.142, rel=0.02)  # the {10-10} spacing


def test_without_a_pixel_size_lengths_stay_in_px(tmp_path):
    np.save(tmp_path / "plain.npy", simulate("graphene", size=192, seed=4).image)  # a bare array: no calibration
    spec = load_spec({"inputs": [{"path": "plain.npy"}], "output": {"overlays": False, "report": False}},
                     base_dir=tmp_path)
    out = run(spec, out_dir=tmp_path / "run", quiet=True)
    rows = read_rows(out / "atoms.csv")
    assert rows and all(r["x_nm"] == "" and r["y_nm"] == "" for r in rows)
    info = json.loads((out / "summary.json").read_text())["images"]["plain"]
    assert info["pixel_size_nm"] is None and info["bond_length_px"]["median"] == pytest.approx(8.0, rel=0.03)
    assert not [key for key in info if key.endswith("_nm") and key != "pixel_size_nm"]


def test_summary_records_how_components_became_tokens(demo_run):
    """The demo's BIC mixture has more components than tokens; the summary gives the overlaps that fixed the
    count, recomputed here from the saved model."""
    tokens = json.loads((demo_run / "summary.json").read_text())["tokens"]
    merging = tokens["merging"]
    model = TokenModel.load(demo_run / "tokens.npz")
    assert merging["mixture_components"] == len(model.mixture.weights) > tokens["k"]
    last, first = merge_decision(merge_sequence(model.mixture)[0])
    assert merging["last_merged"] == pytest.approx(last, abs=1e-4) and last > merging["threshold"]
    assert merging["first_kept_apart"] == (None if first is None else pytest.approx(first, abs=1e-4))
    assert merging["close_call"] == is_close_call((last, first))
    assert merging["undecided"] == list(UNDECIDED_OVERLAP)
    assert f"{merging['mixture_components']} mixture components (K by BIC) became 1 token(s)" in (
        demo_run / "report.html").read_text()


def test_demo_parse_trees_cover_each_atom_once(demo_run):
    tree = json.loads((demo_run / "parses" / "graphene-1.json").read_text())
    assert tree["symbol"] == "micrograph"
    leaves = []

    def walk(node, parent_atoms):
        assert set(node["atoms"]) <= parent_atoms
        if node["level"] == 0:
            assert not node["children"]
            leaves.extend(node["atoms"])
        for child in node["children"]:
            assert child["level"] < node["level"]
            walk(child, set(node["atoms"]))

    walk(tree, set(tree["atoms"]))
    summary = json.loads((demo_run / "summary.json").read_text())
    assert sorted(leaves) == list(range(summary["images"]["graphene-1"]["n_atoms"]))


def test_rerun_is_byte_identical(demo_run, tmp_path):
    again = run(None, out_dir=tmp_path / "again", quiet=True)
    for name in ("atoms.csv", "bonds.csv", "rings.csv", "grammar.txt", "parses/graphene-1.json"):
        assert (again / name).read_bytes() == (demo_run / name).read_bytes(), name


def test_parse_applies_a_saved_grammar_to_a_new_micrograph(demo_run, tmp_path):
    sim = simulate("graphene", size=384, seed=5, stone_wales_density=0.003, vacancy_density=0.002)
    np.save(tmp_path / "new.npy", sim.image)
    out = parse_with_grammar(demo_run / "grammar.txt", tmp_path / "new.npy", out_dir=tmp_path / "parsed", quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    info = summary["images"]["new"]
    assert info["n_atoms"] > 0.95 * len(sim.truth.xy)
    assert (out / "grammar.txt").read_text() == (demo_run / "grammar.txt").read_text()
    own = json.loads((demo_run / "summary.json").read_text())["images"]["graphene-1"]
    assert info["coverage"]["1"] == pytest.approx(own["coverage"]["1"], abs=0.05)


def test_failed_run_leaves_previous_results_intact(demo_run, tmp_path):
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "atoms.csv").write_text("old")
    np.save(tmp_path / "noise.npy", np.random.default_rng(0).normal(size=(128, 128)))
    spec = load_spec({"inputs": [{"path": "noise.npy"}]}, base_dir=tmp_path)
    from motifgram.engine.errors import MotifgramError

    with pytest.raises(MotifgramError):
        run(spec, out_dir=previous, force=True, quiet=True)
    assert (previous / "atoms.csv").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.npy", "previous"]


def test_show_prints_the_grammar_and_a_parse_tree(demo_run):
    from motifgram.engine.show import show_grammar
    from motifgram.grammar import Grammar

    text = show_grammar(demo_run, tree_of="graphene-1")
    grammar = Grammar.parse_text((demo_run / "grammar.txt").read_text())
    assert text.startswith(grammar.to_text().rstrip())
    assert "graphene-1:" in text and "bits/atom" in text
    tree = text.split("\n\n")[-1]
    assert tree.startswith("micrograph") and any(d.name in tree for d in grammar.domains)


def test_show_ranks_the_rules_by_their_gain_and_says_where_they_are(demo_run):
    from motifgram.engine.show import show_grammar
    from motifgram.grammar import Grammar

    summary = json.loads((demo_run / "summary.json").read_text())["grammar"]
    gains = summary["gains_bits"]
    assert summary["total_bits"] == pytest.approx(summary["description_length_bits"] + summary["data_bits"], abs=0.01)
    grammar = Grammar.parse_text((demo_run / "grammar.txt").read_text())
    assert set(gains) <= {r.name for r in (*grammar.rings, *grammar.motifs, *grammar.domains)}
    assert {m.name for m in grammar.motifs} <= set(gains) and all(gains[m.name] > 0 for m in grammar.motifs)
    table = show_grammar(demo_run).split("# rules by share of the description-length gain")[1].splitlines()[1:]
    assert len(table) == grammar.n_rules
    ranked = [line.split()[3] for line in table if "%" in line]
    assert ranked == sorted(gains, key=lambda n: -gains[n])[:len(ranked)]
    assert all("graphene-" in line and "centre (" in line for line in table)  # where it is, from the parses
    top = show_grammar(demo_run, top=2).split("# rules by share of the description-length gain")[1].splitlines()
    assert top[0] == f" (top 2 of {grammar.n_rules}):" and top[1:] == table[:2]
