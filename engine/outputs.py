"""Writing a run directory atomically.

Everything a run writes goes to a temporary sibling folder first; only when every file is complete is that
folder moved into place. A failed run therefore leaves no half-written files, and a rerun never mixes old and
new outputs: an existing, non-empty run directory is replaced only with ``force=True``.
"""

import contextlib
import csv
import functools
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np

from motifgram.engine.errors import MotifgramError

__all__ = ["atomic_run_dir", "check_output_dir", "remove_stale_staging", "write_csv", "write_json", "csv_field"]

log = logging.getLogger(__name__)


def check_output_dir(out_dir, *, force: bool) -> Path:
    """Refuse to overwrite a non-empty run directory unless ``force`` is set.

    Called before any computation so a user learns about the clash at once, not after minutes of work.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MotifgramError(f"{out_dir}: exists and is not a directory; choose another output directory with --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise MotifgramError(
            f"{out_dir}: the output directory already holds results; pass --force to replace them "
            "or choose another directory with --out"
        )
    return out_dir


@contextlib.contextmanager
def atomic_run_dir(out_dir, *, force: bool):
    """Yield a temporary folder; on success it replaces ``out_dir`` in one rename.

    On an exception (Ctrl-C and, through the CLI, SIGTERM included) the temporary folder is deleted and
    ``out_dir`` is left exactly as it was. The folder, ``.<name>.partial-<pid>@<host>-<random>`` beside
    ``out_dir``, names the process that owns it: folders left by runs that were killed outright (SIGKILL,
    a power cut) are removed by the next run into the same directory once that process is gone
    (:func:`remove_stale_staging`).
    """
    out_dir = check_output_dir(out_dir, force=force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{_owner()}-", dir=out_dir.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a run directory is as readable as any folder
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = None
    if out_dir.exists():
        previous = out_dir.with_name(f".{out_dir.name}.old-{staging.name.split('.partial-', 1)[1]}")
        out_dir.rename(previous)
    staging.rename(out_dir)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    log.info("wrote %s", out_dir)


def _owner() -> str:
    """``<pid>@<host>``: who owns a staging folder (the host, since run directories may sit on shared disks)."""
    return f"{os.getpid()}@{re.sub(r'[^A-Za-z0-9.]', '_', socket.gethostname())}"


def remove_stale_staging(out_dir) -> list[Path]:
    """Remove the staging folders beside ``out_dir`` that runs killed outright left behind.

    A folder ``.<name>.partial-<pid>@<host>-...`` is removed when ``host`` is this machine and process
    ``pid`` no longer exists; ``.<name>.old-<pid>@<host>-...`` (the previous results, moved aside just
    before the new ones moved in) likewise, but only once ``out_dir`` exists again. Folders of live
    processes, of other machines, or without an owner in their name (older versions) are kept.

    Returns
    -------
    list of Path
        The folders removed.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return []
    here = _owner().split("@", 1)[1]
    pattern = re.compile(rf"\.{re.escape(out_dir.name)}\.(partial|old)-(\d+)@([A-Za-z0-9._]+)-[A-Za-z0-9_]+")
    removed = []
    for folder in sorted(out_dir.parent.iterdir()):
        match = pattern.fullmatch(folder.name)
        if match is None or not folder.is_dir():
            continue
        kind, pid, host = match.group(1), int(match.group(2)), match.group(3)
        if host != here or _process_exists(pid) or (kind == "old" and not out_dir.exists()):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed %s, left by a run that was killed (process %d is gone)", folder, pid)
        removed.append(folder)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(path, header, rows) -> None:
    """Write rows (already formatted, so reruns are byte-identical) under a header; ``header=None`` writes none."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)


@functools.lru_cache(maxsize=4096)
def csv_field(value: str) -> str:
    """``value`` as :func:`write_csv` writes it within a row (quoted only when it holds a comma, quote or newline).

    For rows assembled as text (many rows of one micrograph: several times faster than ``csv.writer`` on
    tuples), byte-identical to what ``write_csv`` writes.

    Examples
    --------
    >>> csv_field("frame0"), csv_field("a,b")
    ('frame0', '"a,b"')
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([value, ""])
    return buffer.getvalue()[:-2]


def write_json(path, data) -> None:
    """Write JSON indented for people (parse trees: :meth:`motifgram.grammar.parse.ParseNode.to_json`)."""
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
