"""The run directory is written atomically, and staging folders of killed runs do not accumulate."""

import socket
import subprocess
import sys

import pytest

from motifgram.engine.outputs import atomic_run_dir, remove_stale_staging


@pytest.fixture(scope="module")
def dead_pid():
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _host():
    import re

    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path, dead_pid):
    import os

    out = tmp_path / "run"
    folders = {
        "dead": tmp_path / f".run.partial-{dead_pid}@{_host()}-k2j4_x9a",
        "alive": tmp_path / f".run.partial-{os.getpid()}@{_host()}-ab12cd34",  # a run still writing
        "elsewhere": tmp_path / f".run.partial-{dead_pid}@another.host-ab12cd34",  # a shared disk
        "legacy": tmp_path / ".run.partial-ab12cd34",  # no owner in its name
        "other run": tmp_path / f".other.partial-{dead_pid}@{_host()}-ab12cd34",
        "old, no results yet": tmp_path / f".run.old-{dead_pid}@{_host()}-ab12cd34",
    }
    for folder in folders.values():
        folder.mkdir()
        (folder / "atoms.csv").write_text("partial")
    with atomic_run_dir(out, force=False) as staging:
        assert staging.name.startswith(f".run.partial-{os.getpid()}@{_host()}-")
        (staging / "atoms.csv").write_text("new")
    assert (out / "atoms.csv").read_text() == "new"
    assert not folders["dead"].exists()
    kept = {name for name, folder in folders.items() if folder.exists()}
    assert kept == {"alive", "elsewhere", "legacy", "other run", "old, no results yet"}
    # once the run directory exists again, previous results left aside by a killed run go too
    assert remove_stale_staging(out) == [folders["old, no results yet"]]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".run.partial-")) == [
        ".other.partial-" + folders["other run"].name.split(".partial-")[1], "run"]


def test_a_failed_run_removes_its_staging_folder_and_keeps_the_previous_results(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "atoms.csv").write_text("previous")
    with pytest.raises(KeyboardInterrupt), atomic_run_dir(out, force=True) as staging:
        (staging / "atoms.csv").write_text("half")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (out / "atoms.csv").read_text() == "previous"
