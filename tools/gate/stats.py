"""Statistics behind the gate's verdict: Mann-Whitney U, Holm's correction, medians.

Pure standard library, so the unit tests and the report code run without numpy or asv.
"""

from __future__ import annotations

import math
from statistics import NormalDist, fmean, median, variance

__all__ = [
    "MannWhitney",
    "holm_adjust",
    "mann_whitney_greater",
    "median",
    "student_t_upper_tail",
    "welch_t_greater",
]

# Above this many pairs (n_x * n_y) the exact null distribution costs more than it is worth,
# and the normal approximation is already accurate to well below the alpha levels the gate
# uses. The exact computation is O(n_x * n_x * n_y) integer additions.
EXACT_MAX_PAIRS = 2500


class MannWhitney:
    """Result of a one-sided Mann-Whitney U test.

    ``u`` counts the pairs (x_i, y_j) with x_i > y_j, ties counting one half, so it grows with
    the evidence that ``x`` tends to be larger than ``y``. ``p_value`` is the probability of a U
    at least that large if both samples come from one distribution. ``method`` is ``"exact"``
    or ``"normal"``.
    """

    __slots__ = ("u", "p_value", "method")

    def __init__(self, u: float, p_value: float, method: str) -> None:
        self.u = u
        self.p_value = p_value
        self.method = method

    def __repr__(self) -> str:
        return f"MannWhitney(u={self.u!r}, p_value={self.p_value!r}, method={self.method!r})"


def _ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Return the mid-ranks of ``values`` (1-based) and the sizes of the groups of ties."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    tie_sizes = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        mid_rank = (start + end) / 2 + 1
        for k in range(start, end + 1):
            ranks[order[k]] = mid_rank
        tie_sizes.append(end - start + 1)
        start = end + 1
    return ranks, tie_sizes


def _exact_upper_tail(u: int, n_x: int, n_y: int) -> float:
    """Return P(U >= u) under the null hypothesis for samples without ties.

    The number of arrangements with U = k is the coefficient of q**k in the Gaussian binomial
    coefficient [n_x + n_y choose n_x]_q = prod_{i=1..n_x} (1 - q**(n_y + i)) / (1 - q**i).
    Multiplying by (1 - q**m) and dividing by (1 - q**i) are both linear passes over the
    coefficient list, so the whole distribution costs O(n_x * n_x * n_y) exact integer steps.
    """
    size = n_x * n_y + 1
    counts = [0] * size
    counts[0] = 1
    for i in range(1, n_x + 1):
        m = n_y + i
        for k in range(size - 1, m - 1, -1):
            counts[k] -= counts[k - m]
        for k in range(i, size):
            counts[k] += counts[k - i]
    total = math.comb(n_x + n_y, n_x)
    return sum(counts[u:]) / total


def mann_whitney_greater(x: list[float], y: list[float]) -> MannWhitney:
    """Test whether values in ``x`` tend to be larger than values in ``y`` (one-sided).

    Uses the exact null distribution when there are no ties and at most ``EXACT_MAX_PAIRS``
    pairs, otherwise the normal approximation with tie correction and continuity correction.
    Raises ``ValueError`` when either sample is empty or contains a NaN.
    """
    if not x or not y:
        raise ValueError(f"both samples must be non-empty, got {len(x)} and {len(y)} values")
    if any(math.isnan(v) for v in x) or any(math.isnan(v) for v in y):
        raise ValueError("samples must not contain NaN")

    n_x, n_y = len(x), len(y)
    ranks, tie_sizes = _ranks(list(x) + list(y))
    rank_sum_x = sum(ranks[:n_x])
    u = rank_sum_x - n_x * (n_x + 1) / 2
    has_ties = any(size > 1 for size in tie_sizes)

    if not has_ties and n_x * n_y <= EXACT_MAX_PAIRS:
        # Without ties U is an integer, so the cast is exact.
        return MannWhitney(u, _exact_upper_tail(int(u), n_x, n_y), "exact")

    n = n_x + n_y
    mean_u = n_x * n_y / 2
    tie_term = sum(t**3 - t for t in tie_sizes) / (n * (n - 1))
    variance_u = n_x * n_y / 12 * ((n + 1) - tie_term)
    if variance_u <= 0:
        # Every value is equal: there is no evidence in either direction.
        return MannWhitney(u, 1.0, "normal")
    z = (u - mean_u - 0.5) / math.sqrt(variance_u)
    return MannWhitney(u, 1.0 - NormalDist().cdf(z), "normal")


def holm_adjust(p_values: list[float]) -> list[float]:
    """Return Holm-Bonferroni adjusted p-values, in the order given.

    Comparing each adjusted value with alpha keeps the chance of any false rejection in the
    whole family at most alpha, whatever the dependence between the tests.
    """
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted = [0.0] * m
    running_max = 0.0
    for position, index in enumerate(order):
        running_max = max(running_max, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running_max
    return adjusted


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Evaluate the continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        # Even step, then odd step, of the continued fraction's terms.
        numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        result *= step
        if abs(step - 1.0) < 1e-15:
            break
    return result


def _regularized_beta(a: float, b: float, x: float) -> float:
    """Return the regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
        + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast only below this point; use the symmetry
    # I_x(a, b) = 1 - I_(1-x)(b, a) above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_upper_tail(t: float, df: float) -> float:
    """Return P(T >= t) for Student's t distribution with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    tail = 0.5 * _regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def welch_t_greater(x: list[float], y: list[float]) -> float:
    """Return the one-sided p-value of Welch's t-test that the mean of ``x`` exceeds ``y``'s.

    Needs at least two values on each side. When neither side varies at all, the p-value
    is 0 if the mean of ``x`` is larger and 1 otherwise.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"Welch's t-test needs two values per side, got {len(x)} and {len(y)}")
    difference = fmean(x) - fmean(y)
    share_x = variance(x) / len(x)
    share_y = variance(y) / len(y)
    standard_error_squared = share_x + share_y
    if standard_error_squared == 0:
        return 0.0 if difference > 0 else 1.0
    t = difference / math.sqrt(standard_error_squared)
    # Welch-Satterthwaite degrees of freedom.
    df = standard_error_squared**2 / (
        share_x**2 / (len(x) - 1) + share_y**2 / (len(y) - 1)
    )
    return student_t_upper_tail(t, df)
