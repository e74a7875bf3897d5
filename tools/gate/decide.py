"""Turn the stored samples of two revisions into one verdict per benchmark and parameter set.

A row is a regression when both hold:

* HEAD is significantly worse than BASE: a one-sided test, with p-values adjusted by Holm's
  method over every row compared in this run, below ``alpha``. With interleaved rounds the
  test is Welch's t-test on the logarithms of the per-round medians, so that run-to-run
  variation counts; with one round it is the Mann-Whitney U test on the batch samples;
* the median moved by at least ``min_effect`` in the bad direction (``after / before >= 1.10``
  for the default 10% when lower is better, ``before / after >= 1.10`` when higher is better).

The test alone would flag a 1% change measured with many samples, and the ratio alone flags
noise, so the gate asks for both. Improvements are judged the same way in the other direction.

With interleaved rounds, a benchmark with several parameter sets also gets a *pooled* row:
per round, the mean over its parameter sets of the logarithms of their round medians, that
is the geometric mean of the grid, compared with the same test and the same thresholds. A
slowdown of the restart path shows in every parameter set. Each row alone may be too noisy
to prove it, but the pooled row averages the noise of the single rows away. Single rows and
pooled rows are two families that share alpha equally, with Holm's method within each, so
the family-wise error stays below alpha.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .results import Measurement, RevisionResults
from .stats import holm_adjust, mann_whitney_greater, median, welch_t_greater

__all__ = ["BROKEN_VERDICTS", "Comparison", "Settings", "compare_revisions"]

# Verdicts that mean a comparison could not be made because something did not run.
BROKEN_VERDICTS = ("failed", "not-built", "missing", "no-samples")

# Report order: regressions first, then whatever hides a verdict, then the rest.
VERDICT_ORDER = ("regression", *BROKEN_VERDICTS, "improvement", "unchanged", "skipped")


@dataclass(frozen=True)
class Settings:
    """The benchmarks the gate judges, and how strictly.

    ``select`` is a regular expression searched in each benchmark's full name; only matching
    benchmarks are run and judged. ``higher_is_better`` contains regular expressions, searched
    the same way, for benchmarks whose larger values are better. ``min_effect`` is the smallest
    change of the median, as a fraction, that counts (0.10 means 10% worse). ``alpha`` is the
    family-wise significance level.
    """

    select: str = r"\.track_p99"
    higher_is_better: tuple[str, ...] = ()
    min_effect: float = 0.10
    alpha: float = 0.01

    def __post_init__(self) -> None:
        if not (isinstance(self.min_effect, (int, float)) and 0 <= self.min_effect < 10):
            raise ValueError(f"min_effect must be a fraction in [0, 10), got {self.min_effect!r}")
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 1):
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        for pattern in (self.select, *self.higher_is_better):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc

    def selects(self, benchmark: str) -> bool:
        return re.search(self.select, benchmark) is not None

    def is_higher_better(self, benchmark: str) -> bool:
        return any(re.search(pattern, benchmark) for pattern in self.higher_is_better)


@dataclass
class Comparison:
    """The verdict for one benchmark, parameter set and environment.

    ``before`` and ``after`` are sample medians at BASE and HEAD. ``ratio`` is
    ``after / before`` whatever the direction. ``p_value`` is the Holm-adjusted one-sided
    p-value in the direction the median moved, and ``p_raw`` the same before adjustment.
    ``method`` is ``"rounds"`` (Welch's t-test on per-round medians), ``"pooled"`` (the
    same test on per-round means over a benchmark's parameter sets) or ``"batches"``
    (Mann-Whitney U on all samples).
    """

    benchmark: str
    params: tuple[str, ...]
    param_names: tuple[str, ...]
    env_name: str
    higher_is_better: bool
    verdict: str = "unchanged"
    note: str = ""
    before: float | None = None
    after: float | None = None
    n_before: int = 0
    n_after: int = 0
    ratio: float | None = None
    p_raw: float | None = None
    p_value: float | None = None
    method: str = ""
    unit: str = ""
    pooled: int = 0  # the number of parameter sets a pooled row stands for; 0 for others

    @property
    def label(self) -> str:
        """The parameter set as ``name=value, ...`` (asv stores values as Python reprs)."""
        if self.pooled:
            return f"all {self.pooled} parameter sets, pooled"
        if not self.params:
            return ""
        names = self.param_names if len(self.param_names) == len(self.params) else ()
        if not names:
            return ", ".join(self.params)
        return ", ".join(f"{name}={value}" for name, value in zip(names, self.params))

    @property
    def is_broken(self) -> bool:
        return self.verdict in BROKEN_VERDICTS


def _ratio(before: float, after: float) -> float:
    if before == 0:
        return 1.0 if after == 0 else math.inf
    return after / before


def _broken_or_skipped(base: Measurement | None, head: Measurement | None) -> tuple[str, str]:
    """Return the verdict and note for a row where at least one side has no samples."""
    sides = (("BASE", base), ("HEAD", head))
    for status, verdict in (
        ("not-built", "not-built"),
        ("failed", "failed"),
        ("no-samples", "no-samples"),
    ):
        which = [name for name, side in sides if side is not None and side.status == status]
        if which:
            notes = {
                "not-built": "did not build at {}",
                "failed": "benchmark failed at {}; its traceback is in the asv log",
                "no-samples": "no samples stored at {}; return {{'samples': [...], 'number': 1}}",
            }
            return verdict, notes[status].format(" and ".join(which))
    which = [name for name, side in sides if side is None]
    if which:
        return "missing", f"no result stored for {' and '.join(which)}"
    which = [name for name, side in sides if side.status == "skipped"]
    return "skipped", f"skipped at {' and '.join(which)} (NotImplementedError in setup)"


def split_rounds(samples: list[float], rounds: int) -> list[list[float]] | None:
    """Split samples that asv appended round after round into one list per round.

    Returns None unless the samples divide evenly into ``rounds`` lists.
    """
    if rounds < 2 or len(samples) % rounds:
        return None
    size = len(samples) // rounds
    return [samples[index * size:(index + 1) * size] for index in range(rounds)]


def _round_summaries(samples: list[float], rounds: int) -> list[float] | None:
    """Return the median of each round, on a log scale when every value is positive."""
    chunks = split_rounds(samples, rounds)
    if chunks is None:
        return None
    medians = [median(chunk) for chunk in chunks]
    if all(value > 0 for value in medians):
        return [math.log(value) for value in medians]
    return medians


def _one_sided_p_values(
    before: list[float], after: list[float], rounds: int | None
) -> tuple[float, float, str]:
    """Return p-values for "larger at HEAD" and "smaller at HEAD", and the method used.

    With two or more rounds, each round's median is one observation, because batches from
    one asv process share that process and that moment of the machine: their spread
    understates the spread between runs. Welch's t-test on the logarithms of those medians
    then compares the revisions. With a single round (quick mode, stored history) only the
    batches are left, and the Mann-Whitney U test on them ignores run-to-run variation.
    """
    if rounds is not None and rounds >= 2:
        before_rounds = _round_summaries(before, rounds)
        after_rounds = _round_summaries(after, rounds)
        if before_rounds is not None and after_rounds is not None:
            return (
                welch_t_greater(after_rounds, before_rounds),
                welch_t_greater(before_rounds, after_rounds),
                "rounds",
            )
    return (
        mann_whitney_greater(after, before).p_value,
        mann_whitney_greater(before, after).p_value,
        "batches",
    )


def _log_round_medians(samples: tuple[float, ...], rounds: int) -> list[float] | None:
    """Return the logarithm of each round's median, or None unless every round median is positive."""
    chunks = split_rounds(list(samples), rounds)
    if chunks is None:
        return None
    medians = [median(chunk) for chunk in chunks]
    if not all(value > 0 for value in medians):
        return None
    return [math.log(value) for value in medians]


def _mean_by_round(members: list, side: int) -> list[float]:
    """Per round, the mean over ``members`` of their log round medians at one side (0: BASE)."""
    columns = [summaries[side] for _, summaries in members]
    return [sum(values) / len(values) for values in zip(*columns)]


def _pooled_row(members: list, unit: str) -> Comparison:
    """Build the pooled row of one benchmark from the geometric means of its medians."""
    first = members[0][0]
    rows = [row for row, _ in members]
    before = math.exp(sum(math.log(row.before) for row in rows) / len(rows))
    after = math.exp(sum(math.log(row.after) for row in rows) / len(rows))
    return Comparison(
        benchmark=first.benchmark,
        params=(),
        param_names=(),
        env_name=first.env_name,
        higher_is_better=first.higher_is_better,
        before=before,
        after=after,
        n_before=len(members[0][1][0]),
        n_after=len(members[0][1][1]),
        ratio=_ratio(before, after),
        method="pooled",
        unit=unit,
        pooled=len(rows),
    )


def _adjust(tests: list[tuple[Comparison, float]]) -> list[float]:
    """Adjust p-values for multiple testing so that ``p < alpha`` bounds every false alarm.

    Single rows and pooled rows are two families. When both are present, each gets half of
    alpha: Holm's method runs within each family and its adjusted p-values are doubled. The
    few pooled rows are then not charged for the many single ones, and the family-wise error
    stays below alpha. With one family, Holm's method runs over it alone.
    """
    families: dict[bool, list[int]] = {}
    for index, (row, _) in enumerate(tests):
        families.setdefault(bool(row.pooled), []).append(index)
    share = len(families)
    adjusted = [1.0] * len(tests)
    for indices in families.values():
        for index, value in zip(indices, holm_adjust([tests[index][1] for index in indices])):
            adjusted[index] = min(1.0, share * value)
    return adjusted


def compare_revisions(
    base: RevisionResults,
    head: RevisionResults,
    settings: Settings,
    param_names: dict[str, list[str]] | None = None,
    units: dict[str, str] | None = None,
    rounds: int | None = None,
) -> list[Comparison]:
    """Compare every selected benchmark stored for ``base`` and ``head``.

    ``rounds`` is the number of interleaved rounds the samples came from, or None when
    unknown. Returns the comparisons sorted for the report: regressions first, then rows
    that could not be compared, improvements, unchanged rows and skipped rows.
    """
    param_names = param_names or {}
    units = units or {}
    keys = sorted(
        key
        for key in set(base.measurements) | set(head.measurements)
        if settings.selects(key[0])
    )

    comparisons = []
    tested = []  # (comparison, p_worse, p_better) for rows with samples on both sides
    # Rows judged by rounds, with their per-round log medians, by (benchmark, environment).
    by_benchmark: dict[tuple[str, str], list] = {}
    for key in keys:
        benchmark, params, env_name = key
        row = Comparison(
            benchmark=benchmark,
            params=params,
            param_names=tuple(param_names.get(benchmark, ())),
            env_name=env_name,
            higher_is_better=settings.is_higher_better(benchmark),
            unit=units.get(benchmark, ""),
        )
        comparisons.append(row)
        before = base.measurements.get(key)
        after = head.measurements.get(key)
        if before is not None and before.status == "ok":
            row.before, row.n_before = median(before.samples), len(before.samples)
        if after is not None and after.status == "ok":
            row.after, row.n_after = median(after.samples), len(after.samples)

        if before is None or after is None or before.status != "ok" or after.status != "ok":
            row.verdict, row.note = _broken_or_skipped(before, after)
            continue

        row.ratio = _ratio(row.before, row.after)
        p_larger_at_head, p_smaller_at_head, row.method = _one_sided_p_values(
            list(before.samples), list(after.samples), rounds
        )
        if row.higher_is_better:
            tested.append((row, p_smaller_at_head, p_larger_at_head))
        else:
            tested.append((row, p_larger_at_head, p_smaller_at_head))
        if row.method == "rounds":
            assert rounds is not None
            summaries = (_log_round_medians(before.samples, rounds),
                         _log_round_medians(after.samples, rounds))
            if summaries[0] is not None and summaries[1] is not None:
                by_benchmark.setdefault((benchmark, env_name), []).append((row, summaries))

    for (benchmark, env_name), members in sorted(by_benchmark.items()):
        if len(members) < 2:
            continue
        row = _pooled_row(members, units.get(benchmark, ""))
        comparisons.append(row)
        base_means, head_means = _mean_by_round(members, 0), _mean_by_round(members, 1)
        p_larger_at_head = welch_t_greater(head_means, base_means)
        p_smaller_at_head = welch_t_greater(base_means, head_means)
        if row.higher_is_better:
            tested.append((row, p_smaller_at_head, p_larger_at_head))
        else:
            tested.append((row, p_larger_at_head, p_smaller_at_head))

    worse_adjusted = _adjust([(row, p_worse) for row, p_worse, _ in tested])
    better_adjusted = _adjust([(row, p_better) for row, _, p_better in tested])
    threshold = 1 + settings.min_effect
    for (row, p_worse, p_better), worse_adj, better_adj in zip(
        tested, worse_adjusted, better_adjusted
    ):
        # How many times worse HEAD is than BASE (below 1 means better).
        if row.higher_is_better:
            worse_factor = math.inf if row.ratio == 0 else 1 / row.ratio
        else:
            worse_factor = row.ratio
        moved_worse = worse_factor >= 1
        row.p_raw = p_worse if moved_worse else p_better
        row.p_value = worse_adj if moved_worse else better_adj
        significant = row.p_value < settings.alpha
        if moved_worse:
            large_enough = worse_factor >= threshold
        else:
            large_enough = worse_factor == 0 or 1 / worse_factor >= threshold

        if significant and large_enough:
            row.verdict = "regression" if moved_worse else "improvement"
        elif large_enough:
            row.note = f"not significant (p={row.p_value:.3g} >= alpha={settings.alpha:g})"
        elif significant:
            row.note = f"significant but below the {settings.min_effect:.0%} minimum effect"

    comparisons.sort(key=lambda row: VERDICT_ORDER.index(row.verdict))
    return comparisons
