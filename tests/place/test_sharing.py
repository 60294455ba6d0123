"""Core sharing among busy processes against a brute-force sum over who is busy."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.place.sharing import core_share, core_shares, poisson_binomial

busy_lists = st.lists(st.floats(min_value=0.0, max_value=0.99), min_size=1, max_size=6)


def brute_share(busy: list[float], k: int, cores: int) -> float:
    """E[min(1, c / (1 + K))] with K the number of others busy, over every busy pattern."""
    others = [b for i, b in enumerate(busy) if i != k]
    total = 0.0
    for pattern in itertools.product((0, 1), repeat=len(others)):
        weight = math.prod(b if on else 1.0 - b for b, on in zip(others, pattern, strict=True))
        total += weight * min(1.0, cores / (1.0 + sum(pattern)))
    return total


def test_poisson_binomial_of_two_fair_coins():
    assert poisson_binomial([0.5, 0.5]) == pytest.approx([0.25, 0.5, 0.25])


def test_one_core_shared_by_two_always_busy_others_is_a_third():
    assert core_share(poisson_binomial([1.0, 1.0]), 1) == pytest.approx(1 / 3)


@pytest.mark.fuzz
@given(busy=busy_lists)
def test_poisson_binomial_is_a_law_with_the_right_mean(busy):
    dist = poisson_binomial(busy)
    assert len(dist) == len(busy) + 1
    assert sum(dist) == pytest.approx(1.0)
    assert sum(k * p for k, p in enumerate(dist)) == pytest.approx(sum(busy))


@pytest.mark.fuzz
@given(busy=busy_lists, cores=st.integers(min_value=1, max_value=4))
def test_core_shares_match_the_sum_over_busy_patterns(busy, cores):
    shares = core_shares(busy, cores)
    for k, share in enumerate(shares):
        assert share == pytest.approx(brute_share(busy, k, cores), abs=1e-9)
        assert min(1.0, cores / len(busy)) - 1e-12 <= share <= 1.0 + 1e-12
