"""Paired statistics against hand-computed cases (apo_core/statistics.py)."""

import numpy as np
import pytest

from apo_core.statistics import paired_difference, wilson_interval


def outcomes(wins: int, losses: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    candidate = [1] * wins + [0] * losses + [1] * both + [0] * neither
    champion = [0] * wins + [1] * losses + [1] * both + [0] * neither
    return np.array(candidate), np.array(champion)


def test_ten_wins_no_loss_in_twenty_pairs_is_significant():
    # Clopper-Pearson lower bound of 10/10 at 95%: 0.025 ** (1/10) = 0.69150;
    # Δ = 10/20 = 0.5, lower = (2 * 0.69150 - 1) * 10/20 = 0.19150; McNemar p = 2 / 2**10.
    result = paired_difference(*outcomes(wins=10, losses=0, both=3, neither=7))
    assert (result.n, result.wins, result.losses) == (20, 10, 0)
    assert result.difference == pytest.approx(0.5)
    assert result.ci95_low == pytest.approx((2 * 0.025 ** 0.1 - 1) * 0.5, abs=1e-9)
    assert result.ci95_high == pytest.approx(0.5)
    assert result.p_value == pytest.approx(2 / 1024)
    assert result.significantly_better and not result.significantly_worse


def test_four_wins_are_not_enough():
    # 4/4 discordant: lower bound 0.025 ** (1/4) = 0.39764 -> Δ lower (2·0.39764 - 1)·4/10 < 0; p = 2/16.
    result = paired_difference(*outcomes(wins=4, losses=0, both=2, neither=4))
    assert result.difference == pytest.approx(0.4)
    assert result.ci95_low == pytest.approx((2 * 0.025 ** 0.25 - 1) * 0.4, abs=1e-9)
    assert result.p_value == pytest.approx(0.125)
    assert not result.significantly_better


def test_the_difference_is_antisymmetric():
    a, b = outcomes(wins=7, losses=2, both=20, neither=71)
    forward, backward = paired_difference(a, b), paired_difference(b, a)
    assert forward.difference == pytest.approx(-backward.difference)
    assert forward.ci95_low == pytest.approx(-backward.ci95_high)
    assert forward.p_value == pytest.approx(backward.p_value)


def test_identical_outcomes_have_a_zero_interval():
    result = paired_difference(*outcomes(wins=0, losses=0, both=5, neither=5))
    assert (result.difference, result.ci95_low, result.ci95_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_only_discordant_pairs_matter():
    few = paired_difference(*outcomes(wins=6, losses=1, both=0, neither=93))
    many = paired_difference(*outcomes(wins=6, losses=1, both=50, neither=43))
    assert few.p_value == many.p_value and few.ci95_low == many.ci95_low


def test_mismatched_vectors_are_refused():
    with pytest.raises(ValueError, match="equal length"):
        paired_difference(np.ones(3), np.ones(4))


def test_wilson_interval_hand_computed():
    low, high = wilson_interval(15, 100)  # p = 0.15, z = 1.96
    assert (round(low, 3), round(high, 3)) == (0.093, 0.233)
    assert wilson_interval(0, 0) == (0.0, 1.0)
