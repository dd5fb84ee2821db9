"""Test-wide settings: the seed offset every seeded test uses, the real micrographs, and the CI rule that no test
may be skipped.

Seeds. A test that draws random data (a simulation, a noisy lattice, a spec's ``seed``) takes its seeds from
:func:`seeds` / :func:`seed`, which add ``MOTIFGRAM_TEST_SEED_OFFSET`` (default 0) to the seeds written in the test.
``MOTIFGRAM_TEST_SEED_OFFSET=1000 pytest`` runs the same claims on a second, independent set of simulations, so a
threshold fitted to one draw fails there (README, Development). The thresholds' margins were measured over seed
sweeps (``benchmarks/seed_sweeps.py``) and are written beside them.

With ``MOTIFGRAM_TEST_SEEDED_ONLY=1`` only the tests that draw seeds run (the others are deselected): on a second
seed set every other test would repeat the first run exactly. A test draws seeds when its function, its fixtures or
the test-suite functions they call (followed by name, transitively) use :func:`seed`, :func:`seeds`, the
``seed_offset`` fixture or the offset variable, directly or in a ``parametrize`` decorator (:func:`draws_seeds`).

CI. With ``CI`` set (``.ci/run`` sets it) a skipped test is reported as a failure: CI has the real micrographs and
Chromium, so a skip there means a claim went unchecked.
"""

import ast
import contextlib
import fcntl
import functools
import inspect
import os
import pickle
import re
import types
from pathlib import Path

import pytest

# The CLI keeps JAX's compiled kernels in ~/.cache/motifgram/jax; in-process CLI tests must not write there
# (test_cli.py checks the cache with a subprocess and its own cache folder).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "")

SEED_OFFSET_VARIABLE = "MOTIFGRAM_TEST_SEED_OFFSET"


def _seed_offset() -> int:
    text = os.environ.get(SEED_OFFSET_VARIABLE, "0").strip() or "0"
    try:
        offset = int(text)
    except ValueError:
        raise pytest.UsageError(f"{SEED_OFFSET_VARIABLE}={text!r}: give a non-negative integer") from None
    if offset < 0:
        raise pytest.UsageError(f"{SEED_OFFSET_VARIABLE}={offset}: give a non-negative integer")
    return offset


SEED_OFFSET = _seed_offset()


def seed(base: int) -> int:
    """The seed a test uses for its default seed ``base``: ``base + MOTIFGRAM_TEST_SEED_OFFSET``."""
    return int(base) + SEED_OFFSET


def seeds(*base: int) -> list[int]:
    """:func:`seed` of each default seed (for ``pytest.mark.parametrize("seed", seeds(0, 1, 2))``)."""
    return [seed(b) for b in base]


#: The real micrographs (read-only, outside the project; ``../shared/data`` from the repository root).
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECS = Path(__file__).resolve().parents[1] / "specs"

#: Marks a test that reads :data:`DATA`: skipped where it is absent (and so a failure in CI).
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real micrographs not present at {DATA}")


@contextlib.contextmanager
def compilations():
    """Collect the names of the XLA computations JAX compiles inside the block.

    Counted from JAX's public monitoring events (one ``backend_compile`` event per compilation; the persistent
    compilation cache is off in the tests), so a test sees whether a public entry point recompiled without
    looking at private caches.
    """
    import jax.monitoring

    names = []

    def listener(event, _duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def built_once(tmp_path_factory, name, build):
    """``build(folder)`` computed once per test session, whichever pytest-xdist worker asks first.

    A costly fixture (runs and their comparison: tens of seconds each) is otherwise built by every worker that
    runs one of its tests. The first worker to ask builds it in a folder of the session that every worker sees
    (``name`` under the session's temporary directory) and leaves its value there (pickled: a cache of this
    session only); a worker asking meanwhile waits on a file lock, later ones load the value.
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, value = root / name, root / f"{name}.pickle"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not value.is_file():
                folder.mkdir(exist_ok=True)
                value.write_bytes(pickle.dumps(build(folder)))
            return pickle.loads(value.read_bytes())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def seed_offset() -> int:
    """``MOTIFGRAM_TEST_SEED_OFFSET`` (0 by default)."""
    return SEED_OFFSET


SEEDED_ONLY_VARIABLE = "MOTIFGRAM_TEST_SEEDED_ONLY"
TESTS = Path(__file__).resolve().parent
#: what in a test's source draws seeds: a call of seed/seeds, the fixture, the offset (by its names)
_SEED_TEXT = re.compile(rf"\bseeds?\(|\bseed_offset\b|\bSEED_OFFSET\b|{SEED_OFFSET_VARIABLE}")


def _in_tests(obj) -> bool:
    try:
        return Path(inspect.getsourcefile(obj)).resolve().parent == TESTS
    except TypeError:
        return False


@functools.cache
def _seeded_constants(module_file: str) -> frozenset:
    """Names a test module binds at its top level to values drawn from seeds (``SEEDS = seeds(0, 1)``, or built
    from such a name)."""
    text = Path(module_file).read_text()
    names = set()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            value = ast.get_source_segment(text, node.value) or ""
            if _SEED_TEXT.search(value) or names & set(re.findall(r"\w+", value)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
    return frozenset(names)


def _code_draws_seeds(code: types.CodeType, namespace: dict, seen: set) -> bool:
    """Whether ``code`` (with nested code: comprehensions, lambdas, inner functions) names a seed helper, imports
    from conftest, or calls a test-suite function that does."""
    if "conftest" in code.co_names:
        return True
    for name in code.co_names:
        value = namespace.get(name)
        if value is seed or value is seeds:
            return True
        if isinstance(value, types.FunctionType) and _function_draws_seeds(value, seen):
            return True
        if isinstance(value, type) and _in_tests(value) and any(
            isinstance(member, types.FunctionType) and _function_draws_seeds(member, seen)
            for member in vars(value).values()
        ):
            return True
    return any(
        isinstance(const, types.CodeType) and _code_draws_seeds(const, namespace, seen) for const in code.co_consts
    )


def _function_draws_seeds(function, seen: set) -> bool:
    function = inspect.unwrap(function)
    if function in seen or not _in_tests(function):
        return False
    seen.add(function)
    try:
        source = inspect.getsource(function)  # with its decorators: parametrize(..., seeds(0, 1))
    except (OSError, TypeError):
        return True  # cannot tell: keep the test
    if function.__module__ != __name__ and (
        _SEED_TEXT.search(source)
        or _seeded_constants(inspect.getsourcefile(function)) & set(re.findall(r"\w+", source))
    ):
        return True
    return _code_draws_seeds(function.__code__, function.__globals__, seen)


def draws_seeds(item) -> bool:
    """Whether a collected test draws seeds (module docstring: its function, fixtures and what they call)."""
    if "seed_offset" in item.fixturenames:
        return True
    seen = set()
    fixture_functions = [
        definition.func for definitions in item._fixtureinfo.name2fixturedefs.values() for definition in definitions
    ]
    return any(_function_draws_seeds(f, seen) for f in [item.function, *fixture_functions])


def pytest_collection_modifyitems(config, items):
    if os.environ.get(SEEDED_ONLY_VARIABLE, "").strip() in ("", "0"):
        return
    kept, deselected = [], []
    for item in items:
        (kept if draws_seeds(item) else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_report_header(config):
    return f"motifgram: seed offset {SEED_OFFSET} ({SEED_OFFSET_VARIABLE}); real micrographs at {DATA}" + (
        "" if DATA.is_dir() else " (absent)"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and _in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI ({reason}); CI must run every test: provide what it needs"
    return report
