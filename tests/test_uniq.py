"""engine/uniq.py: the radix sort and unique of bounded integers give exactly NumPy's answers."""

import numpy as np
import pytest

from motifgram.engine.uniq import radix_argsort, unique_ints, unique_pairs
from conftest import seeds


@pytest.mark.parametrize("seed_", seeds(0, 1))
@pytest.mark.parametrize(("n", "upper"), [(0, 5), (1, 1), (7, 3), (1000, 70_000), (5000, 2**40), (20_000, 2**17)])
def test_radix_argsort_is_numpys_stable_argsort(seed_, n, upper):
    keys = np.random.default_rng(seed_).integers(0, upper, n)  # many ties when upper < n
    assert np.array_equal(radix_argsort(keys), np.argsort(keys, kind="stable"))
    assert np.array_equal(radix_argsort(keys, upper), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("seed_", seeds(0, 1))
@pytest.mark.parametrize(("n", "upper"), [(1, 1), (50, 10), (3000, 2000), (3000, 10**9), (20_000, 2**33)])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32])
def test_unique_ints_is_numpys_unique(seed_, n, upper, dtype):
    """Both paths (a table for dense keys, the radix sort for sparse ones), for every integer dtype."""
    upper = min(upper, int(np.iinfo(dtype).max))
    keys = np.random.default_rng(seed_).integers(0, upper, n).astype(dtype)
    got, expected = unique_ints(keys), np.unique(keys)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert np.array_equal(unique_ints(keys, upper), expected)


@pytest.mark.parametrize("seed_", seeds(0, 1, 2))
@pytest.mark.parametrize("n", [1, 4, 300, 100_000])
def test_unique_pairs_is_numpys_unique_of_rows(seed_, n):
    rng = np.random.default_rng(seed_)
    pairs = rng.integers(0, n, (5000, 2))
    pairs = np.concatenate([pairs, pairs[rng.integers(0, len(pairs), 2000)]])  # repeated rows
    expected = np.unique(pairs, axis=0)
    assert np.array_equal(unique_pairs(pairs), expected)
    assert np.array_equal(unique_pairs(pairs, n), expected)
    assert unique_pairs(pairs).dtype == np.int64


def test_empty_inputs():
    assert radix_argsort([]).shape == (0,)
    assert unique_ints([]).shape == (0,) and unique_ints(np.zeros(0, np.int32)).dtype == np.int32
    assert unique_pairs(np.zeros((0, 2), np.int64)).shape == (0, 2)
    assert unique_pairs(np.zeros((0, 2), np.int64), 10).shape == (0, 2)


def test_negative_keys_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        radix_argsort([3, -1])
    with pytest.raises(ValueError, match="non-negative"):
        unique_ints([3, -1, 2])
