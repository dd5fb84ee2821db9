"""Tests of motifgram.engine.buckets: bucket sizes and the chunked map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from motifgram.engine.buckets import (
    N_BUCKET,
    WINDOW_BUCKETS,
    bucket_components,
    bucket_rows,
    bucket_side,
    chunk_rows,
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


def test_chunk_rows_are_powers_of_two_between_the_bounds():
    assert [chunk_rows(n) for n in (0, 1, 1024, 1025, 5000, 8192, 8193, 10**6)] == [
        1024, 1024, 1024, 2048, 8192, 8192, 8192, 8192]
    assert chunk_rows(10, smallest=4, largest=64) == 16


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
