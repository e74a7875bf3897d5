"""Percentile arithmetic of the benchmark suite (benchmarks/_stats.py)."""

import math

import pytest

from benchmarks._stats import PERCENTILES, batch_percentiles, samples_form, summarize


def test_summarize_one_sample():
    """With one value, every percentile is that value."""
    summary = summarize([7.5])
    assert summary == {"p50": 7.5, "p95": 7.5, "p99": 7.5, "max": 7.5}


def test_summarize_all_ties():
    summary = summarize([3.0] * 10)
    for name in PERCENTILES:
        assert summary[name] == 3.0, name


def test_summarize_ties_around_median():
    summary = summarize([1, 2, 2, 2, 9])
    assert summary["p50"] == 2.0
    assert summary["max"] == 9.0
    # Rank 0.95 * 4 = 3.8 lies between the last tie (2) and the max (9).
    assert summary["p95"] == pytest.approx(2 + 0.8 * 7)


def test_summarize_linear_interpolation():
    """1..101 puts percentile q exactly on the value q + 1."""
    summary = summarize(range(1, 102))
    assert summary["p50"] == 51.0
    assert summary["p95"] == 96.0
    assert summary["p99"] == 100.0
    assert summary["max"] == 101.0


def test_summarize_ignores_order():
    assert summarize([5, 1, 4, 2, 3]) == summarize([1, 2, 3, 4, 5])


def test_summarize_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        summarize([])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_summarize_non_finite_raises(bad):
    with pytest.raises(ValueError, match="NaN or infinity"):
        summarize([1.0, bad])


def test_summarize_nested_raises():
    with pytest.raises(ValueError, match="flat sequence"):
        summarize([[1.0, 2.0], [3.0, 4.0]])


def test_batch_percentiles_one_value_per_batch():
    per_batch = batch_percentiles([1, 2, 3, 10, 20, 30], 3)
    assert per_batch["p50"] == [2.0, 20.0]
    assert per_batch["max"] == [3.0, 30.0]
    assert set(per_batch) == set(PERCENTILES)


def test_batch_percentiles_batches_keep_order():
    """Batches are consecutive runs of the input, not a sorted split."""
    per_batch = batch_percentiles([9, 9, 1, 1], 2)
    assert per_batch["p50"] == [9.0, 1.0]


@pytest.mark.parametrize("values", [[], [1, 2, 3]])
def test_batch_percentiles_uneven_count_raises(values):
    with pytest.raises(ValueError, match="multiple of batch_size=2"):
        batch_percentiles(values, 2)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "2"])
def test_batch_percentiles_invalid_batch_size_raises(batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive int, got {batch_size!r}"):
        batch_percentiles([1, 2], batch_size)


def test_samples_form_shape():
    assert samples_form([1, 2.5]) == {"samples": [1.0, 2.5], "number": 1}


def test_samples_form_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        samples_form([])


def test_samples_form_nan_raises():
    with pytest.raises(ValueError, match="NaN or infinity"):
        samples_form([1.0, math.nan])
