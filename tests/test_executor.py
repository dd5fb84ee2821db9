"""Many micrographs: executors give identical results, interrupted runs resume, bad files are skipped."""

import json
import os
import re

import numpy as np
import pytest

import motifgram.engine.cache as cache
import motifgram.engine.pipeline as pipeline
import motifgram.engine.records as records
from motifgram.engine.executor import WORKER_ENVIRONMENT, open_executor
from motifgram.engine.pipeline import run
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import EngineSpec, load_spec

#: summary.json keys that describe the run rather than its results: when and where, the engine, timings, and which
#: micrographs this run recomputed rather than read from the cache
RUN_KEYS = ("created", "output_dir", "timings", "recomputed")


def spec_for(folder, *, executor="local", workers=1, pattern="*.npy"):
    return load_spec(
        {
            "name": "many",
            "inputs": [{"path": pattern, "group": "graphene"}],
            "tokens": {"k_range": [1, 3], "n_init": 2},
            "engine": {"executor": executor, "workers": workers},
            "output": {"report": False, "overlays": False},
        },
        base_dir=folder,
    )


@pytest.fixture(scope="module")
def micrographs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("micrographs")
    for seed in range(4):
        # fixed seeds: that every executor writes the same outputs is no claim about a draw, so CI's second seed
        # set does not repeat it
        sim = simulate("graphene", size=192, seed=seed, stone_wales_density=0.004, vacancy_density=0.0)
        np.save(folder / f"frame{seed}.npy", sim.image)
    return folder


@pytest.fixture(scope="module")
def serial_run(micrographs, tmp_path_factory):
    return run(spec_for(micrographs), out_dir=tmp_path_factory.mktemp("serial") / "run", quiet=True)


def output_files(run_dir):
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())


def results_of(summary, *, same_inputs=True):
    """summary.json without what describes the run rather than its results (RUN_KEYS, the spec's engine; and where
    the inputs came from and which failed, unless ``same_inputs``)."""
    out = {k: v for k, v in summary.items() if k not in RUN_KEYS}
    out["spec"] = {k: v for k, v in summary["spec"].items() if k != "engine" and (same_inputs or k != "inputs")}
    if not same_inputs:
        del out["failed"]
        out["images"] = {i: {k: v for k, v in info.items() if k != "source"} for i, info in out["images"].items()}
    return out


def assert_same_outputs(a, b, *, same_inputs=True):
    """Every output file of run ``a`` equals run ``b``'s: the same files, byte for byte, but for summary.json (equal
    results, RUN_KEYS aside), report.html (the same page but for timings and creation) and the .npz archives (equal
    arrays: the zip holds file times)."""
    files = output_files(a)
    assert files == output_files(b)
    assert {"atoms.csv", "bonds.csv", "rings.csv", "grammar.txt", "tokens.npz", "embedding.npz", "summary.json"} <= set(
        files) and any(f.startswith("parses/") for f in files)
    for name in files:
        if name == "summary.json":
            assert results_of(json.loads((a / name).read_text()), same_inputs=same_inputs) == results_of(
                json.loads((b / name).read_text()), same_inputs=same_inputs)
        elif name.endswith(".npz"):
            with np.load(a / name) as x, np.load(b / name) as y:
                assert sorted(x.files) == sorted(y.files), name
                for key in x.files:
                    np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}:{key}")
        elif name == "report.html":
            assert report_results(a / name) == report_results(b / name)
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def report_results(path):
    """report.html without what describes the run (its timings section, creation time and folder)."""
    page = path.read_text(encoding="utf-8")
    page = re.sub(r'<section id="timings".*?</section>', "", page, flags=re.S)
    page = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", "<created>", page)
    return page.replace(str(path.parent.absolute()), "<run>")


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_executors_give_identical_outputs(micrographs, serial_run, tmp_path, executor):
    out = run(spec_for(micrographs, executor=executor, workers=2), out_dir=tmp_path / "run", quiet=True)
    assert_same_outputs(out, serial_run)


def test_a_local_dask_cluster_runs_its_workers_as_the_pool_does():
    """Single-threaded, and with this process's malloc settings (not Dask's trim threshold, which doubles the CPU
    time of a micrograph: benchmarks/README.md, "Many micrographs")."""
    names = [*WORKER_ENVIRONMENT, "MALLOC_TRIM_THRESHOLD_"]
    with open_executor(EngineSpec(executor="dask", workers=1), n_tasks=1) as executor:
        seen = list(executor.map(os.getenv, names))
    assert seen == [*WORKER_ENVIRONMENT.values(), os.getenv("MALLOC_TRIM_THRESHOLD_")]


def test_interrupted_run_resumes_recomputing_only_what_is_missing(micrographs, serial_run, tmp_path, monkeypatch):
    real_analysis_pass = pipeline.analysis_pass
    done = []

    def interrupted(index, item, *args):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(item.id)
        return real_analysis_pass(index, item, *args)

    monkeypatch.setattr(pipeline, "analysis_pass", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(spec_for(micrographs), out_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(pipeline, "analysis_pass", real_analysis_pass)
    out = run(spec_for(micrographs), out_dir=tmp_path / "run", quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["recomputed"]) == ["frame2", "frame3"]
    assert_same_outputs(out, serial_run)


def test_a_corrupt_file_is_reported_and_the_others_complete(micrographs, serial_run, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    for path in micrographs.glob("*.npy"):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "frame9.npy").write_bytes(b"\x93NUMPY garbage")
    out = run(spec_for(folder), out_dir=tmp_path / "run", quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["failed"]) == ["frame9"]
    assert "frame9.npy" in summary["failed"]["frame9"]["reason"]
    assert sorted(summary["images"]) == ["frame0", "frame1", "frame2", "frame3"]
    assert_same_outputs(out, serial_run, same_inputs=False)


def test_a_stale_cache_entry_is_not_reused(micrographs, tmp_path):
    first = run(spec_for(micrographs), out_dir=tmp_path / "run", quiet=True)
    changed = load_spec({**spec_for(micrographs).to_dict(), "graph": {"max_ring": 9}}, base_dir=micrographs)
    again = run(changed, out_dir=first, force=True, quiet=True)
    summary = json.loads((again / "summary.json").read_text())
    assert sorted(summary["recomputed"]) == ["frame0", "frame1", "frame2", "frame3"]


def test_a_cache_entry_of_other_code_is_not_reused(micrographs, tmp_path, monkeypatch):
    """An entry written by another motifgram (here: another engine source fingerprint) is computed again, not read:
    a run resumed in a folder of an older run once wrote the older code's positions."""
    spec = spec_for(micrographs)
    pipeline.analysis_pass(0, spec.inputs[0], spec, tmp_path / "cache", 1)
    again, _ = pipeline.analysis_pass(0, spec.inputs[0], spec, tmp_path / "cache", 1)
    assert not again.recomputed
    monkeypatch.setattr(records, "code_fingerprint", lambda: "other code")
    other, _ = pipeline.analysis_pass(0, spec.inputs[0], spec, tmp_path / "cache", 1)
    assert other.recomputed
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_code_fingerprint_follows_the_engine_source(tmp_path, monkeypatch):
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "cache.py").write_text("x = 1\n")
    monkeypatch.setattr(cache, "__file__", str(engine / "cache.py"))
    try:
        cache.code_fingerprint.cache_clear()
        first = cache.code_fingerprint()
        (engine / "stages.py").write_text("y = 2\n")
        cache.code_fingerprint.cache_clear()
        assert cache.code_fingerprint() != first
    finally:  # later tests get the real engine's fingerprint, whatever happened here
        monkeypatch.undo()
        cache.code_fingerprint.cache_clear()


def test_a_record_keeps_only_its_share_of_the_fit_sample(micrographs, tmp_path):
    spec = spec_for(micrographs)
    item = spec.inputs[0]
    record, _ = pipeline.analysis_pass(0, item, spec, tmp_path / "cache", 1000)
    again, _ = pipeline.analysis_pass(0, item, spec, tmp_path / "cache", 1000)  # from the cache entry
    for r in (record, again):
        quota = -(-records.TOKEN_FIT_SAMPLE // 1000)
        with_patches = -(-records.PATCH_SAMPLE // 1000)
        assert len(r.sample.invariants) == quota
        assert len(r.sample.moments) == len(r.sample.patches) == with_patches
        # copies, not views that would keep the entry's full arrays alive
        assert all(a.base is None for a in (r.sample.invariants, r.sample.moments, r.sample.patches))
    assert not again.recomputed
    np.testing.assert_array_equal(record.sample.invariants, again.sample.invariants)


def test_windowed_map_keeps_task_order_with_few_tasks_in_flight():
    from concurrent.futures import Future

    from motifgram.engine.executor import _windowed_map

    in_flight, most = [], []

    def submit(fn, *args):
        future = Future()
        future.set_result(fn(*args))
        in_flight.append(future)
        most.append(len(in_flight))
        return future

    results = []
    for result in _windowed_map(submit, lambda f: f.cancel(), lambda a, b: a * b, (range(10), range(10)), window=3):
        in_flight.pop(0)
        results.append(result)
    assert results == [i * i for i in range(10)]
    assert max(most) <= 3 + 1  # the window, plus the task submitted before the oldest result is handed on
