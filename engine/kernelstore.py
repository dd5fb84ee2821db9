"""Jitted kernels kept on disk as exported StableHLO, so that a new process loads them instead of tracing them.

JAX's persistent compilation cache keeps compiled executables, but a new process must still trace a jitted
function in Python and lower it to MLIR before it can look its executable up, and for the Levenberg-Marquardt
and EM kernels that costs more than running them (benchmarks/README.md, issue 21). :func:`stored` wraps such a
kernel: while the persistent cache is on (the command line turns it on), the first call with each combination
of static arguments and argument shapes exports the kernel (:func:`jax.export.export`) into a folder inside
that cache, and later processes deserialize the file and call it; the executable itself still comes from the
persistent cache. A file's name carries :func:`~motifgram.engine.cache.code_fingerprint` (the engine's source, the
numerical libraries' versions, the backend), so changed code is traced again. Without the persistent cache
(library use, most tests) the kernel is called as it is.
"""

import functools
import hashlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import jax

from motifgram.engine.cache import code_fingerprint

__all__ = ["stored"]

log = logging.getLogger(__name__)

_FOLDER = "motifgram-kernels"


@functools.cache
def _serialisable() -> bool:
    """Whether ``jax.export`` can write files: it needs flatbuffers (missing where motifgram was installed before
    it became a dependency; then the kernels are traced as before)."""
    found = importlib.util.find_spec("flatbuffers") is not None
    if not found:
        log.info("flatbuffers is not installed: jitted kernels are traced in every process")
    return found


def _folder() -> Path | None:
    """The folder of the exported kernels, or None while JAX's persistent compilation cache is off."""
    cache = jax.config.jax_compilation_cache_dir
    return Path(cache) / _FOLDER if cache and _serialisable() else None


def _load_or_export(jitted, name: str, folder: Path, args, static: dict):
    """The exported kernel for these arguments' shapes and these static arguments: read from ``folder`` or
    exported there (written to a temporary file, then renamed, so a half-written file is never read)."""
    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in map(jax.typeof, args)]
    signature = repr((name, sorted(static.items()), [(s.shape, str(s.dtype), s.weak_type) for s in specs],
                      jax.config.jax_enable_x64, code_fingerprint()))
    path = folder / f"{name}-{hashlib.sha256(signature.encode()).hexdigest()[:32]}.exported"
    if path.is_file():
        try:
            return jax.export.deserialize(bytearray(path.read_bytes()))
        except Exception as exc:  # whatever the deserializer raises on a damaged file: export it again
            log.warning("ignoring unreadable exported kernel %s (%s)", path.name, exc)
    exported = jax.export.export(jitted)(*specs, **static)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as exc:  # a cache folder this process may read but not write: the kernel is used unstored
        log.debug("kernel %s not stored: %s", path.name, exc)
        return exported
    try:
        with os.fdopen(handle, "wb") as fh:
            fh.write(exported.serialize())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return exported


def stored(jitted):
    """Wrap a jitted kernel so that, with JAX's persistent cache on, a new process loads it rather than tracing it.

    Parameters
    ----------
    jitted : callable
        A ``jax.jit``-ed function; its static arguments must be passed by keyword.

    Returns
    -------
    callable
        The same function: the same arguments, the same outputs bit for bit (the exported module is the one
        ``jitted`` lowers to).
    """
    name = f"{jitted.__module__.rsplit('.', 1)[-1]}.{jitted.__name__}"
    calls = {}  # (folder, static arguments, shapes) -> the loaded kernel's jitted call

    @functools.wraps(jitted)
    def call(*args, **static):
        folder = _folder()
        if folder is None:
            return jitted(*args, **static)
        key = (folder, tuple(sorted(static.items())), tuple(jax.typeof(a) for a in args))
        if key not in calls:
            calls[key] = jax.jit(_load_or_export(jitted, name, folder, args, static).call)
        return calls[key](*args)

    return call
