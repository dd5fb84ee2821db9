"""Tests of motifgram.engine.buckets: bucket sizes, the chunked map, and one compiled fit for every column count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from motifgram.engine import refine
from motifgram.engine.buckets import (
    N_BUCKET,
    WINDOW_BUCKETS,
    bucket_components,
    bucket_rows,
    bucket_side,
    bucket_window,
    map_chunks,
    pad_rows,
    pad_to,
)


def test_row_buckets_hold_the_rows_and_waste_at_most_a_quarter():
    sizes = np.unique(np.r_[1, 2, 4095, 4096, 4097, np.geomspace(1, 3_000_000, 400).astype(int)])
    buckets = np.array([bucket_rows(n) for n in sizes])
    assert (buckets >= sizes).all() and (buckets % N_BUCKET == 0).all()
    assert (np.diff(buckets) >= 0).all()
    big = sizes > 8 * N_BUCKET
    assert (buckets[big] <= 1.25 * sizes[big] + N_BUCKET).all()
    assert len(np.unique(buckets[sizes <= 1_000_000])) <= 28
    assert [bucket_rows(n) for n in (10_000, 40_000)] == [pad_rows(10_000), pad_rows(40_000)]


def test_side_window_and_component_buckets():
    assert [bucket_side(n) for n in (1, 256, 257, 2064)] == [256, 256, 512, 2304]
    assert [bucket_window(h) for h in (1, 2, 7, 64)] == [2, 2, 8, 64]
    assert all(bucket_window(h) >= h for h in range(1, 65))
    assert set(bucket_window(h) for h in range(1, 65)) == set(WINDOW_BUCKETS)
    with pytest.raises(ValueError, match="half_window 65"):
        bucket_window(65)
    assert [bucket_components(k) for k in (1, 8, 9)] == [8, 8, 16]


def test_pad_to_pads_with_zeros_along_an_axis():
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(pad_to(a, 4), np.r_[a, np.zeros((2, 3))])
    np.testing.assert_array_equal(pad_to(a, 5, axis=1), np.c_[a, np.zeros((2, 2))])
    assert pad_to(a, 2) is a
    with pytest.raises(ValueError):
        pad_to(a, 1)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 30])
def test_map_chunks_equals_the_unchunked_kernel(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.normal(size=n).astype(np.float32)

    @jax.jit
    def kernel(x, y, scale):
        return jnp.sum(x, axis=1) * scale + y, x[:, ::-1]

    calls = []
    got = map_chunks(lambda *a: calls.append(a[0].shape) or kernel(*a), [x, y], np.float32(2.0), chunk=8)
    assert all(shape == (8, 3) for shape in calls) and len(calls) == max(1, -(-n // 8))
    np.testing.assert_array_equal(got[0], x.sum(axis=1) * 2 + y)
    np.testing.assert_array_equal(got[1], x[:, ::-1])
    assert got[0].shape == (n,) and got[1].shape == (n, 3)


def test_map_chunks_along_the_last_axis():
    x = np.arange(30.0).reshape(3, 10)
    got = map_chunks(lambda c: c.T * 1.0, [x], chunk=4, axis=1)
    np.testing.assert_array_equal(got, x.T)
    with pytest.raises(ValueError, match="rows"):
        map_chunks(lambda a, b: a, [np.zeros(3), np.zeros(4)])


def _lattice(n_side: int, spacing: float = 8.0, sigma: float = 1.6):
    """A noiseless square lattice of ``n_side``^2 Gaussian columns (px) off the pixel grid, and their positions."""
    size = int(spacing * (n_side + 1))
    g = spacing * (np.arange(n_side) + 1) + 0.3
    xy = np.stack(np.meshgrid(g, g + 0.2), axis=-1).reshape(-1, 2)
    return refine.render_columns((size, size), xy, np.ones(len(xy)), np.full(len(xy), sigma)), xy


def test_the_column_fit_compiles_once_for_every_column_count():
    """9, 324 and 2500 columns (before: chunks of 1024 and 4096 columns, one compilation each) share one compiled
    kernel; every fit lands on its column."""
    compiled = []

    def listen(event, duration, **metadata):
        if event == "/jax/core/compile/backend_compile_duration" and "_fit_windows" in metadata.get("fun_name", ""):
            compiled.append("_fit_windows")

    images = [_lattice(n) for n in (18, 50, 3)]
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        per_image = []
        for image, xy in images:
            before = len(compiled)
            start = xy + np.array([0.4, -0.3])
            got, _ = refine.refine_positions(image, start, sigma_px=2.0, half_window=3)
            per_image.append(compiled[before:])
            assert np.abs(got - xy).max() < 0.01
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert per_image[0] in ([], ["_fit_windows"]), per_image  # nothing where an earlier test compiled it
    assert per_image[1:] == [[], []], per_image
