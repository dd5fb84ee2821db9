"""Test-wide settings: the seed offset every seeded test uses, the real micrographs, and the CI rule that no test
may be skipped.

Seeds. A test that draws random data (a simulation, a noisy lattice, a spec's ``seed``) takes its seeds from
:func:`seeds` / :func:`seed`, which add ``MOTIFGRAM_TEST_SEED_OFFSET`` (default 0) to the seeds written in the test.
``MOTIFGRAM_TEST_SEED_OFFSET=1000 pytest`` runs the same claims on a second, independent set of simulations, so a
threshold fitted to one draw fails there (README, Development). The thresholds' margins were measured over seed
sweeps (``benchmarks/seed_sweeps.py``) and are written beside them.

CI. With ``CI`` set (``.ci/run`` sets it) a skipped test is reported as a failure: CI has the real micrographs and
Chromium, so a skip there means a claim went unchecked.
"""

import contextlib
import fcntl
import os
import pickle
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
