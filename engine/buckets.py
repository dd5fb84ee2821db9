"""Shape buckets: the few array shapes the jitted kernels ever see.

JAX compiles a kernel once per input shape, and a compilation costs far more than a run (seconds against
milliseconds), so inputs of varying size are padded to a bucket, run, and trimmed:

- kernels that treat rows independently (sampling, Zernike moments, posteriors, the Gaussian fits of
  detection) run over fixed chunks of :data:`N_BUCKET` rows (:func:`map_chunks`): one compilation for
  every row count, and no padded copy of the whole input;
- kernels that reduce over all rows at once (an EM fit) take the rows padded to a geometric bucket
  (:func:`bucket_rows`) with zero-weight padding;
- images are padded to a side bucket (:func:`bucket_side`), and window half-widths and component counts
  to small fixed sets (:func:`bucket_window`, :func:`bucket_components`).

Padding rows or image margins never changes the values of the real rows: every kernel here either treats
rows independently or gives padded rows zero weight.
"""

import logging
from collections.abc import Callable, Sequence

import jax
import numpy as np

__all__ = [
    "N_BUCKET",
    "WINDOW_BUCKETS",
    "SIDE_BUCKET",
    "to_device",
    "pad_rows",
    "bucket_rows",
    "bucket_side",
    "bucket_window",
    "bucket_components",
    "pad_to",
    "map_chunks",
]

log = logging.getLogger(__name__)

N_BUCKET = 4096
"""Rows per chunk of a row-wise kernel, and the granularity of every row bucket."""

WINDOW_BUCKETS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
"""Half-widths (px) of the square windows gathered around atoms (the detection fit's)."""

SIDE_BUCKET = 256
"""Image sides handed to a kernel are padded to a multiple of this (px)."""

_IN_FLIGHT = 4
"""Chunks :func:`map_chunks` dispatches ahead of the oldest result it has not read (each holds its inputs)."""

_K_BUCKET = 8
_ROW_STEPS = (4, 5, 6, 7)  # quarter-octave steps: a bucket wastes at most a quarter of its rows


def to_device(array):
    """Hand a numpy array to JAX without copying it where the backend allows (jit would copy it)."""
    return jax.device_put(array, may_alias=True)


def pad_rows(n: int) -> int:
    """``n`` rounded up to a positive multiple of :data:`N_BUCKET`."""
    return max(N_BUCKET, -(-n // N_BUCKET) * N_BUCKET)


def bucket_rows(n: int) -> int:
    """Row bucket of a kernel that reduces over all rows: a multiple of :data:`N_BUCKET` from the geometric
    series ``N_BUCKET * {1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, ...}``.

    Successive buckets differ by at most a quarter, so padding costs at most 25 % more rows, and a run of any
    size compiles a handful of kernels (inputs up to a million rows fall into 28 buckets).

    Examples
    --------
    >>> bucket_rows(1), bucket_rows(10_000), bucket_rows(40_000), bucket_rows(41_000)
    (4096, 12288, 40960, 49152)
    """
    units = max(1, -(-int(n) // N_BUCKET))
    if units <= 8:
        return units * N_BUCKET
    step = 1 << (units.bit_length() - 3)  # units in [4 step, 8 step): steps of a quarter
    return -(-units // step) * step * N_BUCKET


def bucket_side(n: int) -> int:
    """An image side padded to a multiple of :data:`SIDE_BUCKET` (px)."""
    return max(SIDE_BUCKET, -(-int(n) // SIDE_BUCKET) * SIDE_BUCKET)


def bucket_window(half_window: int) -> int:
    """The smallest of :data:`WINDOW_BUCKETS` that is at least ``half_window`` (px)."""
    for b in WINDOW_BUCKETS:
        if b >= half_window:
            return b
    raise ValueError(
        f"half_window {half_window} px exceeds the largest supported window ({WINDOW_BUCKETS[-1]} px); "
        "bin the image first"
    )


def bucket_components(k: int) -> int:
    """Mixture components padded to a multiple of 8 (the padding components are inactive)."""
    return _K_BUCKET * -(-int(k) // _K_BUCKET)


def pad_to(array: np.ndarray, size: int, *, axis: int = 0, dtype=None) -> np.ndarray:
    """A copy of ``array`` zero-padded along ``axis`` to ``size`` entries (``array`` itself when it has them)."""
    arr = np.asarray(array, dtype=dtype)
    n = arr.shape[axis]
    if n == size:
        return arr
    if n > size:
        raise ValueError(f"cannot pad {n} entries down to {size}")
    shape = list(arr.shape)
    shape[axis] = size
    out = np.zeros(shape, arr.dtype)
    out[(slice(None),) * (axis % arr.ndim) + (slice(0, n),)] = arr
    return out


def map_chunks(kernel: Callable, arrays: Sequence[np.ndarray], *args, chunk: int = N_BUCKET, axis: int = 0,
               **kwargs):
    """``kernel`` over fixed-size chunks of rows, its outputs concatenated and trimmed to the input's rows.

    Parameters
    ----------
    kernel : callable
        ``kernel(*chunks, *args, **kwargs)``: takes one chunk of each of ``arrays`` (``chunk`` rows along
        ``axis``, the last chunk zero-padded) and returns an array or a tuple of arrays with one row per
        input row along their first axis. Up to :data:`_IN_FLIGHT` chunks are dispatched ahead of the
        results read, so JAX overlaps them while the inputs it holds stay bounded.
    arrays : sequence of ndarray
        Arrays with the same number of rows along ``axis``.
    chunk : int
        Rows per call (default :data:`N_BUCKET`).

    Returns
    -------
    ndarray or tuple of ndarray
        As ``kernel`` returns, with every input row's result in order.

    Examples
    --------
    >>> double = jax.jit(lambda x: 2 * x)
    >>> map_chunks(double, [np.arange(5.0)], chunk=4).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    arrays = [np.asarray(a) for a in arrays]
    n = arrays[0].shape[axis]
    if any(a.shape[axis] != n for a in arrays):
        raise ValueError(f"map_chunks: arrays differ in rows along axis {axis}: {[a.shape for a in arrays]}")
    if n == 0:
        out = kernel(*(pad_to(a, chunk, axis=axis) for a in arrays), *args, **kwargs)
        return jax.tree_util.tree_map(lambda o: np.asarray(o)[:0], out)
    results = []
    for start in range(0, n, chunk):
        part = (slice(None),) * (axis % arrays[0].ndim) + (slice(start, start + chunk),)
        results.append(kernel(*(to_device(pad_to(a[part], chunk, axis=axis)) for a in arrays), *args, **kwargs))
        if len(results) > _IN_FLIGHT:  # read the oldest pending result: its inputs are freed
            results[-_IN_FLIGHT - 1] = jax.tree_util.tree_map(np.asarray, results[-_IN_FLIGHT - 1])
    return jax.tree_util.tree_map(lambda *outs: np.concatenate([np.asarray(o) for o in outs])[:n], *results)
