"""The suite's own rules (tests/conftest.py): which tests draw seeds, so that CI's second seed set runs them only."""

import pytest

import conftest
from conftest import seed, seeds
from conftest import seed as seed_of

SEED_SET = seeds(0, 1)
SEED_PAIRS = [(s, s + 1) for s in SEED_SET]
FIXED = [1, 2]


def simulated(seed_value):
    return seed_value


def draws_seed_directly():
    return simulated(seed(3))


def draws_seed_through_an_alias():
    return simulated(seed_of(3))


def calls_a_helper_that_draws():
    return draws_seed_directly()


def calls_it_in_a_comprehension():
    return [draws_seed_through_an_alias() for _ in range(2)]


@pytest.mark.parametrize("value", seeds(0, 1))
def parametrized_by_seeds(value):
    return value


@pytest.mark.parametrize("pair", SEED_PAIRS)
def parametrized_by_a_constant_built_from_seeds(pair):
    return pair


def imports_seed_locally():
    from conftest import seed as local_seed

    return local_seed(0)


def reads_the_offset(seed_offset):
    return seed_offset


@pytest.mark.parametrize("value", FIXED)
def fixed_seeds(value):
    return simulated(value)


def no_seed_at_all():
    return simulated(3) + len(FIXED)


class Runner:
    def run(self):
        return draws_seed_directly()


def uses_a_class_that_draws():
    return Runner().run()


@pytest.mark.parametrize(
    "function, expected",
    [
        (draws_seed_directly, True),
        (draws_seed_through_an_alias, True),
        (calls_a_helper_that_draws, True),
        (calls_it_in_a_comprehension, True),
        (parametrized_by_seeds, True),
        (parametrized_by_a_constant_built_from_seeds, True),
        (imports_seed_locally, True),
        (reads_the_offset, True),
        (uses_a_class_that_draws, True),
        (fixed_seeds, False),
        (no_seed_at_all, False),
        (simulated, False),
    ],
)
def test_a_function_draws_seeds_when_it_or_what_it_calls_uses_the_offset(function, expected):
    assert conftest._function_draws_seeds(function, set()) is expected


def test_the_seed_helpers_add_the_offset():
    assert seed(3) == 3 + conftest.SEED_OFFSET
    assert seeds(0, 1) == [conftest.SEED_OFFSET, 1 + conftest.SEED_OFFSET]
