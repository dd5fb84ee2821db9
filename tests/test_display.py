"""Short summaries (repr and Jupyter's HTML) of the objects a notebook holds: counts, never arrays."""

import numpy as np
import pytest

from motifgram.engine.graph import build_graph
from motifgram.engine.simulate import simulate
from motifgram.engine.tokens import learn_tokens
from motifgram.grammar.induce import induce_grammar
from conftest import seed

#: Longest summary accepted, in characters (the dataclass reprs were 48-54 KB for a 512² simulation).
MAX_CHARS = 700


@pytest.fixture(scope="module")
def objects():
    sim = simulate("graphene", size=512, seed=seed(3), stone_wales_density=0.003, vacancy_density=0.002)
    graph = build_graph(sim.truth.xy, image_shape=sim.image.shape).with_tokens(np.full(len(sim.truth.xy), "A"))
    grammar = induce_grammar([graph], name="graphene").grammar
    rng = np.random.default_rng(seed(0))
    features = np.concatenate([rng.normal(0, 1, (300, 6)), rng.normal(8, 1, (100, 6))])
    model, _, _ = learn_tokens(features, k=2, seed=seed(0), n_init=1)
    return {"simulation": sim, "truth": sim.truth, "graph": graph, "grammar": grammar, "token model": model}


@pytest.mark.parametrize("name", ["simulation", "truth", "graph", "grammar", "token model"])
def test_summaries_are_short_and_carry_no_arrays(objects, name):
    obj = objects[name]
    text, page = repr(obj), obj._repr_html_()
    assert len(text) < MAX_CHARS and len(page) < 3 * MAX_CHARS
    assert 2 <= len(text.splitlines()) <= 10
    assert "array(" not in text and "[[" not in text and "<table>" in page and "array(" not in page


def test_summaries_count_what_the_objects_hold(objects):
    sim, graph, grammar, model = (objects[k] for k in ("simulation", "graph", "grammar", "token model"))
    n_sw = sum(d.kind == "stone_wales" for d in sim.truth.defects)
    assert repr(sim).startswith("Simulation: 512 x 512 px, 0.01775 nm/px (9.09 x 9.09 nm)\n")
    assert f"stone_wales {n_sw}" in repr(sim) and f"C {len(sim.truth.xy)}" in repr(sim)
    assert repr(graph).startswith(f"AtomGraph: {graph.n_atoms} atoms, {len(graph.bonds)} bonds, {len(graph.rings)} rings")
    assert f"6-rings {int(np.sum(graph.ring_sizes == 6))}" in repr(graph)
    assert repr(grammar).startswith("Grammar 'graphene' (version 1)")
    assert f"rules: {grammar.n_rules} ({len(grammar.rings)} ring" in repr(grammar)
    assert f"{grammar.description_length_bits():.1f} bits" in repr(grammar)
    assert repr(model).startswith("TokenModel: 2 tokens") and "A 75.0%, B 25.0%" in repr(model)
