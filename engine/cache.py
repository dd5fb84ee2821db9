"""A cache of per-micrograph results, keyed by the input's content and the parameters of the stages.

A run over many micrographs that is interrupted (Ctrl-C, a killed worker) and started again recomputes only
the micrographs it has no entry for. An entry is written to a temporary file and renamed into place, so a
half-written entry is never read; an entry that cannot be read is recomputed. An entry made by other code (another
motifgram, an edited checkout, other numerical libraries or another JAX backend) is not reused: its key carries
:func:`code_fingerprint`.
"""

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["fingerprint_file", "code_fingerprint", "cache_key", "save_entry", "load_entry", "cache_dir_for"]

#: The distributions whose numerics a per-micrograph result depends on besides the engine's own source.
_NUMERICAL_LIBRARIES = ("jax", "jaxlib", "numpy", "scipy", "scikit-image", "networkx")

log = logging.getLogger(__name__)


def cache_dir_for(run_dir) -> Path:
    """The cache folder of a run directory: a hidden sibling, so it survives replacing the run directory."""
    run_dir = Path(run_dir).absolute()
    return run_dir.parent / f".{run_dir.name}.cache"


def fingerprint_file(path, *, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 (hex, 16 characters) of the engine's source files, the numerical libraries' versions and JAX's
    default backend: what a result depends on besides its input and settings. Cache entries and exported kernels
    carry it, so that results of other code are computed again rather than read."""
    import jax

    digest = hashlib.sha256(jax.default_backend().encode())
    for name in _NUMERICAL_LIBRARIES:
        digest.update(f"{name} {importlib.metadata.version(name)}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(*parts) -> str:
    """A stable key from JSON-serialisable parts (dict order does not matter)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def save_entry(cache_dir: Path, key: str, arrays: dict) -> Path:
    """Write an entry atomically (temporary file, then rename)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{key}.npz"
    handle, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".npz", dir=cache_dir)
    try:
        with os.fdopen(handle, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def load_entry(cache_dir: Path, key: str, names=None) -> dict | None:
    """The arrays of an entry, or None when there is none or it cannot be read (then it is recomputed).

    ``names`` (an iterable of str) reads only those arrays (an ``.npz`` member is read only when asked for):
    the later passes of a run read a micrograph's graph or features, not the whole entry.
    """
    path = cache_dir / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in (data.files if names is None else names)}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("ignoring unreadable cache entry %s (%s); recomputing", path.name, exc)
        return None
