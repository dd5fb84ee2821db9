"""Tests for motifgram.engine.spec: defaults, round trips, every kind of problem with its YAML path, paths
and globs, the JSON Schema, and a property test that bad specs give problems, never other exceptions."""

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motifgram.engine.errors import SpecError
from motifgram.engine.spec import (
    DetectSpec,
    InputSpec,
    Spec,
    bundled_spec_path,
    json_schema,
    load_spec,
    validate_spec,
)

SIM = {"simulate": {"kind": "graphene"}}


def problems_of(data, base_dir):
    problems = validate_spec(data, base_dir=base_dir)
    assert all(isinstance(p, str) and isinstance(m, str) for p, m in problems)
    return dict(problems)


def write_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith(".npy"):
            np.save(folder / name, np.zeros((4, 4), np.float32))
        else:
            (folder / name).write_bytes(b"x")


@pytest.fixture
def full_spec(tmp_path):
    """A valid spec setting every key (not to its default), with files and a reference below tmp_path."""
    write_images(tmp_path / "data", ["b.npy", "a.npy"])
    (tmp_path / "ref").mkdir()
    data = {
        "name": "full", "seed": 7,
        "inputs": [
            {"path": "data/*.npy", "pixel_size": 0.02, "group": "g1"},
            {"simulate": {"kind": "mos2", "size": 128, "seed": 3, "s_vacancy_density": 0.02, "dose": 50,
                          "se_fraction": 0.5, "rotation": "auto"}, "id": "sim", "group": "g2", "pixel_size": 1},
        ],
        "detect": {"method": "atoms", "lattice_period": 12.5, "min_distance": 4, "threshold": 0.3,
                   "denoise_sigma": 1.0, "refine": False, "dark_atoms": True},
        "features": {"n_max": 8, "patch_size": 25},
        "tokens": {"k": 3, "k_range": [1, 5], "names": ["A", "B", "V"], "n_init": 2, "max_iter": 50},
        "graph": {"bond_factor": 1.4, "max_ring": 10, "border": 5},
        "grammar": {"min_count": 3, "max_motif_size": 5, "min_domain_size": 10},
        "compare": {"references": {"pristine": "ref"}},
        "engine": {"executor": "dask", "workers": 2, "address": "tcp://127.0.0.1:8786"},
        "output": {"dir": "out/full", "overlays": False, "report": False},
    }
    return data


def test_defaults(tmp_path):
    spec = load_spec({"inputs": [SIM]}, base_dir=tmp_path)
    assert spec.name == "motifgram-run" and spec.seed == 0
    assert spec.detect == DetectSpec() and spec.detect.method == "atoms" and spec.detect.refine
    assert spec.detect.lattice_period is None and not spec.detect.dark_atoms
    assert (spec.features.n_max, spec.features.patch_size) == (10, None)
    assert (spec.tokens.k, spec.tokens.k_range, spec.tokens.names) == (None, (1, 8), None)
    assert (spec.tokens.n_init, spec.tokens.max_iter) == (4, 200)
    assert (spec.graph.bond_factor, spec.graph.max_ring, spec.graph.border) == (None, 12, None)
    assert (spec.grammar.min_count, spec.grammar.max_motif_size, spec.grammar.min_domain_size) == (2, 6, None)
    assert spec.compare.references == {}
    assert (spec.engine.executor, spec.engine.workers, spec.engine.address) == ("local", None, None)
    assert (spec.output.dir, spec.output.overlays, spec.output.report) == (None, True, True)
    (item,) = spec.inputs
    assert item.path is None and item.simulate.kind == "graphene"
    assert (item.simulate.size, item.simulate.seed, item.simulate.options) == (512, 0, {})
    assert (item.id, item.group) == ("graphene-0", "graphene")
    assert spec.run_dir() == Path.cwd() / "runs" / "motifgram-run"
    assert dataclasses.is_dataclass(spec) and spec.__dataclass_params__.frozen


def test_full_spec_round_trips(full_spec, tmp_path):
    spec = load_spec(full_spec, base_dir=tmp_path)
    assert [i.id for i in spec.inputs] == ["a", "b", "sim"]
    assert spec.inputs[0].path == tmp_path / "data" / "a.npy" and spec.inputs[0].pixel_size == 0.02
    assert spec.inputs[2].simulate.options == {"s_vacancy_density": 0.02, "dose": 50, "se_fraction": 0.5,
                                               "rotation": None}
    assert isinstance(spec.inputs[2].pixel_size, float)
    assert spec.tokens.names == ("A", "B", "V") and spec.tokens.k_range == (1, 5)
    assert spec.compare.references == {"pristine": tmp_path / "ref"}
    plain = spec.to_dict()
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain  # plain YAML data
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert load_spec(plain, base_dir=elsewhere) == spec  # absolute paths, explicit ids
    assert load_spec({"inputs": [SIM]}, base_dir=tmp_path).to_dict()["tokens"]["k"] == "auto"


def test_yaml_file_round_trip(full_spec, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(full_spec))
    spec = load_spec(path)
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(spec.to_dict()))
    assert load_spec(again) == spec


@pytest.mark.parametrize(
    ("change", "where", "needle"),
    [
        ({"detct": {}}, "detct", 'unknown key; did you mean "detect"?'),
        ({"tokens": {"kk": 3}}, "tokens.kk", 'did you mean "k"?'),
        ({"tokens": {"zzzz": 3}}, "tokens.zzzz", "unknown key; expected one of: k, k_range"),
        ({"tokens": {"k": "eight"}}, "tokens.k", 'expected int >= 1 or "auto", got "eight"'),
        ({"tokens": {"k": True}}, "tokens.k", "got true"),
        ({"tokens": {"k": 2.0}}, "tokens.k", "got 2.0"),
        ({"tokens": {"k": 0}}, "tokens.k", "expected int >= 1"),
        ({"tokens": {"k": None}}, "tokens.k", "got null"),
        ({"tokens": {"k_range": [5, 2]}}, "tokens.k_range", "low <= high"),
        ({"tokens": {"k_range": [1, 2, 3]}}, "tokens.k_range", "[low, high]"),
        ({"tokens": {"k_range": [0, 2]}}, "tokens.k_range[0]", "in [1, 20]"),
        ({"tokens": {"names": ["A", "A"]}}, "tokens.names", "distinct"),
        ({"tokens": {"names": ["A", 3]}}, "tokens.names[1]", "got 3"),
        ({"features": {"n_max": 21}}, "features.n_max", "expected int in [2, 20], got 21"),
        ({"features": {"patch_size": 8}}, "features.patch_size", "odd int >= 5"),
        ({"graph": {"bond_factor": 3}}, "graph.bond_factor", "in [1.0, 2.5]"),
        ({"graph": {"bond_factor": float("nan")}}, "graph.bond_factor", "number"),
        ({"detect": {"threshold": 1.5}}, "detect.threshold", "in [0.0, 1.0]"),
        ({"detect": {"method": "atom"}}, "detect.method", 'did you mean "atoms"?'),
        ({"detect": {"refine": 1}}, "detect.refine", "expected true or false, got 1"),
        ({"detect": "fast"}, "detect", 'expected mapping, got "fast"'),
        ({"detect": {"spots": "ring_centers"}}, "detect.spots", 'did you mean "ring_centres"?'),
        ({"detect": {"spots": "ring_centres", "method": "grid"}}, "detect.spots", "conflicting options"),
        ({"engine": {"executor": "ray"}}, "engine.executor", 'one of "local", "dask"'),
        ({"engine": {"address": "tcp://h:1"}}, "engine.address", "conflicting options"),
        ({"engine": {"executor": "dask", "address": "h:1"}}, "engine.address", "tcp://host:8786"),
        ({"tokens": {"k": 3, "names": ["A", "B"]}}, "tokens.names", "conflicting options"),
        ({"seed": -1}, "seed", "int >= 0"),
        ({"name": "a/b"}, "name", "without /"),
        ({"compare": {"references": {"x": "missing-run"}}}, "compare.references.x", "does not exist"),
        ({"compare": {"references": {"x": 3}}}, "compare.references.x", "got 3"),
        ({"inputs": []}, "inputs", "non-empty list"),
        ({"inputs": {"path": "a.npy"}}, "inputs", "expected non-empty list"),
        ({"inputs": [{"path": "a.npy", **SIM}]}, "inputs[0]", "give exactly one of 'path' or 'simulate'"),
        ({"inputs": [{"group": "g"}]}, "inputs[0]", "give exactly one of 'path' or 'simulate'"),
        ({"inputs": [{"path": "nope/*.tif"}]}, "inputs[0].path", "no file matches 'nope/*.tif' (relative to "),
        ({"inputs": [{"path": "nope.tif"}]}, "inputs[0].path", "no file matches 'nope.tif'"),
        ({"inputs": [{"path": "notes.txt"}]}, "inputs[0].path", "unsupported format '.txt'"),
        ({"inputs": [{"path": "*.txt"}]}, "inputs[0].path", "it matches only .txt files"),
        ({"inputs": [{"path": "."}]}, "inputs[0].path", "is a folder"),
        ({"inputs": [{"simulate": {"kind": "graphene", "size": 32}}]}, "inputs[0].simulate.size", ">= 64"),
        ({"inputs": [{"simulate": {"size": 128}}]}, "inputs[0].simulate.kind", "required key is missing"),
        ({"inputs": [{"simulate": {"kind": "graphene", "dose": [1]}}]}, "inputs[0].simulate.dose",
         'expected number or "auto", got [1]'),
        # the simulator's own checks, as `run` would apply them
        ({"inputs": [{"simulate": {"kind": "graphene", "sise": 3}}]}, "inputs[0].simulate.sise",
         "unknown option 'sise' for kind 'graphene'; did you mean \"size\"?"),
        ({"inputs": [SIM, {"simulate": {"kind": "mos2", "se_fraction": 2}}]}, "inputs[1].simulate.se_fraction",
         "expected a number in [0, 1], got 2"),
        ({"tokens": {"names": ["A", "B"]}}, "tokens.names", "tokens.k is auto"),
        ({"inputs": [{"simulate": {"kind": "graphene"}, "pixel_size": 0}]}, "inputs[0].pixel_size", "> 0.0"),
        ({"inputs": [{**SIM, "id": "x"}, {**SIM, "id": "x"}]}, "inputs[1].id", "duplicate id"),
    ],
)
def test_problem_paths(tmp_path, change, where, needle):
    (tmp_path / "notes.txt").write_text("hi")
    data = {"inputs": [SIM], **change}
    problems = problems_of(data, tmp_path)
    assert where in problems, problems
    assert needle in problems[where]
    with pytest.raises(SpecError) as info:
        load_spec(data, base_dir=tmp_path)
    assert (where, problems[where]) in info.value.problems
    assert where in str(info.value)


def test_missing_inputs(tmp_path):
    assert "required key is missing" in problems_of({"name": "x"}, tmp_path)["inputs"]


def test_several_problems_together(tmp_path):
    data = {"detct": {}, "inputs": [{"path": "data/*.tif"}, {}], "tokens": {"k": "eight"},
            "features": {"n_max": True}, "engine": {"address": "tcp://h:1"}}
    with pytest.raises(SpecError) as info:
        load_spec(data, base_dir=tmp_path)
    paths = [p for p, _ in info.value.problems]
    assert set(paths) == {"detct", "inputs[0].path", "inputs[1]", "tokens.k", "features.n_max", "engine.address"}
    message = str(info.value)
    assert all(p in message for p in paths)


def test_yaml_syntax_error_has_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ninputs:\n  - simulate: {kind: graphene\ndetect: {}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem[0] == "" and "YAML syntax error at line" in problem[1]
    assert info.value.source == path and str(path) in str(info.value)


def test_duplicate_yaml_key(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("inputs:\n  - simulate: {kind: graphene}\nname: a\nname: b\n")
    with pytest.raises(SpecError, match="line 4.*duplicate key 'name'"):
        load_spec(path)


@pytest.mark.parametrize(("text", "needle"), [("", "empty"), ("# only a comment\n", "empty"),
                                              ("- a\n- b\n", "must be a mapping"), ("42\n", "must be a mapping")])
def test_empty_or_non_mapping(tmp_path, text, needle):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=needle):
        load_spec(path)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_spec_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    write_images(project / "data", ["img.npy"])
    (project / "runs" / "old").mkdir(parents=True)
    (project / "spec.yaml").write_text(
        "inputs:\n  - path: data/img.npy\ncompare:\n  references:\n    old: runs/old\n")
    monkeypatch.chdir(tmp_path)  # cwd is not the spec folder
    spec = load_spec(project / "spec.yaml")
    assert spec.inputs[0].path == project / "data" / "img.npy" and spec.inputs[0].path.is_absolute()
    assert (spec.inputs[0].id, spec.inputs[0].group) == ("img", "img")
    assert spec.compare.references == {"old": project / "runs" / "old"}
    assert spec.run_dir() == tmp_path / "runs" / "motifgram-run"  # output.dir is relative to cwd


def test_globs_expand_sorted_with_unique_ids(tmp_path):
    write_images(tmp_path / "data", ["c.npy", "a.npy", "b.npy", "notes.txt"])
    write_images(tmp_path / "more", ["a.npy", "a-2.npy"])
    data = {"inputs": [{"path": "data/*", "group": "d"}, {"path": "more/*.npy"},
                       {"simulate": {"kind": "cairo", "seed": 5}}, {"simulate": {"kind": "cairo", "seed": 5}}]}
    spec = load_spec(data, base_dir=tmp_path)
    names = [(i.path.parent.name, i.path.name) if i.path else None for i in spec.inputs]
    assert names == [("data", "a.npy"), ("data", "b.npy"), ("data", "c.npy"), ("more", "a-2.npy"),
                     ("more", "a.npy"), None, None]
    ids = [i.id for i in spec.inputs]
    assert ids == ["a", "b", "c", "a-2", "a-3", "cairo-5", "cairo-5-2"]
    assert [i.group for i in spec.inputs] == ["d", "d", "d", "a-2", "a", "cairo", "cairo"]
    problems = problems_of({"inputs": [{"path": "data/*.npy", "id": "x"}]}, tmp_path)
    assert "matches 3 files" in problems["inputs[0].id"]


def test_glob_in_folder_with_brackets(tmp_path):
    folder = tmp_path / "run[1]"
    write_images(folder, ["a.npy"])
    spec = load_spec({"inputs": [{"path": "*.npy"}]}, base_dir=folder)
    assert spec.inputs[0].path == folder / "a.npy"


def test_bundled_demo_spec():
    path = bundled_spec_path()
    assert path.name == "demo.yaml" and path.is_file()
    spec = load_spec(path)
    assert len(spec.inputs) == 2 and all(i.simulate is not None and i.path is None for i in spec.inputs)
    assert {i.group for i in spec.inputs} == {"graphene"} and len({i.id for i in spec.inputs}) == 2
    assert all(i.simulate.size == 512 for i in spec.inputs)
    with pytest.raises(SpecError, match="available: .*demo"):
        bundled_spec_path("no-such-spec")


def test_json_schema_matches_the_dataclasses():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False and schema["required"] == ["inputs"]
    tokens = schema["$defs"]["TokensSpec"]["properties"]
    assert tokens["k"]["default"] == "auto" and tokens["k"]["description"]
    assert tokens["k_range"]["default"] == [1, 8]
    n_max = schema["$defs"]["FeaturesSpec"]["properties"]["n_max"]
    assert (n_max["minimum"], n_max["maximum"], n_max["default"]) == (2, 20, 10)
    assert schema["$defs"]["EngineSpec"]["properties"]["executor"]["enum"] == ["local", "dask"]
    assert schema["$defs"]["SimulateSpec"]["additionalProperties"]  # simulator options


def test_json_schema_validates_demo_and_rejects_unknown_keys(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    demo = yaml.safe_load(bundled_spec_path().read_text())
    assert not list(validator.iter_errors(demo))
    assert not list(validator.iter_errors(load_spec(demo).to_dict()))
    for bad in ({**demo, "detct": {}}, {**demo, "tokens": {"k": True}}, {**demo, "features": {"patch_size": 6}},
                {**demo, "engine": {"address": "tcp://h:1"}}, {**demo, "inputs": [{"group": "g"}]}):
        assert list(validator.iter_errors(bad)), bad


# --- property test: mutated specs give problems, never other exceptions ----------------------------------


@pytest.fixture(scope="module")
def valid_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("prop")
    write_images(base / "data", ["a.npy"])
    (base / "ref").mkdir()
    data = {
        "name": "p", "seed": 1,
        "inputs": [{"path": "data/a.npy", "pixel_size": 0.5, "group": "g"},
                   {"simulate": {"kind": "graphene", "size": 128, "seed": 2, "dose": 50.0}}],
        "detect": {"lattice_period": 10.0, "threshold": 0.5, "refine": True},
        "features": {"n_max": 6, "patch_size": 21},
        "tokens": {"k": 2, "k_range": [2, 4], "names": ["A", "B"], "n_init": 1},
        "graph": {"bond_factor": 1.5, "max_ring": 8, "border": 2.0},
        "grammar": {"min_count": 2, "min_domain_size": 3},
        "compare": {"references": {"r": "ref"}},
        "engine": {"executor": "dask", "workers": 1, "address": "tcp://h:1"},
        "output": {"dir": "o", "overlays": False},
    }
    assert validate_spec(data, base_dir=base) == []
    return data, base


def _locations(node, trail=()):
    """Every (trail to a container, key or index) below ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield trail, key
        yield from _locations(value, (*trail, key))


def _category(value):
    return "bool" if isinstance(value, bool) else type(value).__name__


WRONG = {"bool": True, "int": 3, "float": 2.5, "str": "zz", "list": [[]], "dict": {"zz_unknown": 1},
         "none": None}


def _wrong_values(value, trail):
    """Values of another type than ``value``, none of which the key can accept."""
    if trail[-2:-1] == ("simulate",) and trail[-1] not in ("kind", "size", "seed"):
        return [None, [1], {"a": 1}]  # simulator options take a number or auto
    current = _category(value)
    banned = {current} | ({"int"} if current == "float" else set())
    return [v for k, v in WRONG.items() if k not in banned and not (k == "str" and value == "auto")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutations_always_give_problems(valid_base, data):
    base_spec, base_dir = valid_base
    spec = copy.deepcopy(base_spec)
    chosen = data.draw(st.lists(st.sampled_from(list(_locations(base_spec))), min_size=1, max_size=3, unique=True))
    # mutate only locations of which none lies below another, so that no mutation undoes or hides another
    chosen = [c for c in chosen if not any((*c[0], c[1])[: len(d[0]) + 1] == (*d[0], d[1]) and c != d for d in chosen)]
    for trail, key in chosen:
        container = spec
        for step in trail:
            container = container[step]
        if isinstance(container, dict) and data.draw(st.booleans()):
            new_key = data.draw(st.text(min_size=1, max_size=8).filter(lambda k, c=container: k not in c))
            # an unknown key; under references or simulate it names a label or an option, so its value is bad
            container[new_key] = data.draw(st.sampled_from([None, [1], {"zz": 1}]))
        else:
            container[key] = data.draw(st.sampled_from(_wrong_values(container[key], (*trail, key))))
    problems = validate_spec(spec, base_dir=base_dir)
    assert problems and all(isinstance(p, str) and isinstance(m, str) and m for p, m in problems)
    with pytest.raises(SpecError):
        load_spec(spec, base_dir=base_dir)


def test_input_spec_is_frozen(tmp_path):
    item = load_spec({"inputs": [SIM]}, base_dir=tmp_path).inputs[0]
    assert isinstance(item, InputSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.id = "other"
    assert isinstance(Spec.__dataclass_fields__["inputs"].metadata["doc"], str)
