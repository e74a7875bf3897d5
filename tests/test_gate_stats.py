"""Mann-Whitney U and Holm's correction in tools.gate.stats, checked against exact values."""

import itertools
import math
import random

import pytest

from tools.gate.stats import (
    EXACT_MAX_PAIRS,
    holm_adjust,
    mann_whitney_greater,
    student_t_upper_tail,
    welch_t_greater,
)


def test_exact_full_separation_three_each():
    # Of the C(6, 3) = 20 equally likely arrangements, only one puts all of x on top.
    result = mann_whitney_greater([4.0, 5.0, 6.0], [1.0, 2.0, 3.0])
    assert result.method == "exact"
    assert result.u == 9
    assert result.p_value == pytest.approx(1 / 20)


def test_exact_full_separation_eight_each():
    result = mann_whitney_greater([10.0 + i for i in range(8)], [float(i) for i in range(8)])
    assert result.method == "exact"
    assert result.p_value == pytest.approx(1 / math.comb(16, 8))


def test_exact_opposite_direction_is_certain():
    result = mann_whitney_greater([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert result.u == 0
    assert result.p_value == pytest.approx(1.0)


def test_exact_one_overlap():
    # x = {2, 4}, y = {1, 3}: U = 3 of a maximum of 4. Arrangements of two x among four
    # ranks with rank sum >= 6 (U >= 3): {2,4} and {3,4}, so p = 2 / C(4, 2).
    result = mann_whitney_greater([2.0, 4.0], [1.0, 3.0])
    assert result.u == 3
    assert result.p_value == pytest.approx(2 / 6)


def test_exact_matches_enumeration():
    # Every placement of x's ranks among n_x + n_y is equally likely without ties.
    rng = random.Random(7)
    for _ in range(15):
        x = [rng.random() for _ in range(rng.randint(1, 5))]
        y = [rng.random() for _ in range(rng.randint(1, 5))]
        result = mann_whitney_greater(x, y)
        n_x, n = len(x), len(x) + len(y)
        placements = list(itertools.combinations(range(1, n + 1), n_x))
        at_least = sum(1 for ranks in placements if sum(ranks) - n_x * (n_x + 1) / 2 >= result.u)
        assert result.method == "exact"
        assert result.p_value == pytest.approx(at_least / len(placements))


def test_ties_use_normal_approximation():
    # Reference: scipy.stats.mannwhitneyu(x, y, alternative="greater",
    # method="asymptotic", use_continuity=True) in scipy 1.17.1 gives U = 22, p = 0.02697.
    x = [3.0, 4.0, 4.0, 5.0, 6.0]
    y = [1.0, 2.0, 3.0, 3.0, 4.0]
    result = mann_whitney_greater(x, y)
    assert result.method == "normal"
    assert result.u == 22
    assert result.p_value == pytest.approx(0.026968, abs=1e-6)


def test_large_samples_use_normal_approximation():
    x = [float(i) for i in range(60)]
    y = [i + 0.5 for i in range(50)]
    assert len(x) * len(y) > EXACT_MAX_PAIRS
    result = mann_whitney_greater(x, y)
    assert result.method == "normal"
    # Reference: scipy.stats.mannwhitneyu(x, y, alternative="greater") in scipy 1.17.1.
    assert result.p_value == pytest.approx(0.0888816, abs=1e-6)


def test_all_values_equal_gives_no_evidence():
    result = mann_whitney_greater([1.0, 1.0, 1.0], [1.0, 1.0])
    assert result.p_value == 1.0


def test_empty_sample_raises():
    with pytest.raises(ValueError, match="non-empty"):
        mann_whitney_greater([], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        mann_whitney_greater([1.0], [])


def test_nan_sample_raises():
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney_greater([1.0, math.nan], [1.0])


def test_holm_adjust_example():
    # Sorted: 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 raised to the running 0.06.
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_holm_adjust_caps_at_one():
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_holm_adjust_empty():
    assert holm_adjust([]) == []


@pytest.mark.parametrize("t", [-3.0, -0.5, 0.0, 0.4, 1.0, 2.5, 30.0])
def test_student_t_one_degree_is_cauchy(t):
    # With one degree of freedom, P(T >= t) = 1/2 - atan(t) / pi.
    assert student_t_upper_tail(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-12)


@pytest.mark.parametrize("t", [-3.0, -0.5, 0.0, 0.4, 1.0, 2.5, 30.0])
def test_student_t_two_degrees_closed_form(t):
    # With two degrees of freedom, P(T >= t) = 1/2 - t / (2 sqrt(t^2 + 2)).
    expected = 0.5 - t / (2 * math.sqrt(t * t + 2))
    assert student_t_upper_tail(t, 2) == pytest.approx(expected, rel=1e-12)


def test_student_t_critical_value():
    # The two-sided 5% critical value for 4 degrees of freedom is 2.776445 (t tables).
    assert student_t_upper_tail(2.776445, 4) == pytest.approx(0.025, abs=1e-6)


def test_student_t_invalid_degrees():
    with pytest.raises(ValueError, match="degrees of freedom"):
        student_t_upper_tail(1.0, 0)


def test_welch_equal_variances_matches_pooled_formula():
    # With equal sizes and variances Welch's t equals Student's t with df = 2n - 2 = 4.
    x = [2.0, 3.0, 4.0]
    y = [0.0, 1.0, 2.0]
    # Means differ by 2, each variance is 1, so t = 2 / sqrt(1/3 + 1/3) = sqrt(6).
    assert welch_t_greater(x, y) == pytest.approx(student_t_upper_tail(math.sqrt(6), 4))


def test_welch_is_symmetric():
    x = [1.0, 1.4, 0.9, 1.2]
    y = [1.1, 0.8, 1.0]
    assert welch_t_greater(x, y) + welch_t_greater(y, x) == pytest.approx(1.0)


def test_welch_constant_samples():
    assert welch_t_greater([2.0, 2.0], [1.0, 1.0]) == 0.0
    assert welch_t_greater([1.0, 1.0], [2.0, 2.0]) == 1.0
    assert welch_t_greater([1.0, 1.0], [1.0, 1.0]) == 1.0


def test_welch_needs_two_values_per_side():
    with pytest.raises(ValueError, match="two values per side"):
        welch_t_greater([1.0], [1.0, 2.0])
