"""Percentile arithmetic for latency benchmarks.

Percentiles use numpy's default ``"linear"`` method: the value at rank
``q / 100 * (n - 1)`` of the sorted sample, interpolated between neighbours.
With one value every percentile is that value.
"""

import math

import numpy as np

# Statistic names reported by the latency benchmarks, mapped to the percentile
# passed to numpy; "max" is the 100th percentile.
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def summarize(values):
    """Return ``{"p50": ..., "p95": ..., "p99": ..., "max": ...}`` of ``values``.

    Raises ValueError if ``values`` is empty, not one-dimensional, or contains
    NaN or infinity.
    """
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"expected a flat sequence of numbers, got shape {array.shape!r}")
    if array.size == 0:
        raise ValueError("cannot compute percentiles of an empty sample")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"sample contains NaN or infinity: {values!r}")

    points = np.percentile(array, list(PERCENTILES.values()))
    return {name: float(point) for name, point in zip(PERCENTILES, points)}


def batch_percentiles(values, batch_size):
    """Split ``values`` into consecutive batches and summarize each batch.

    Returns ``{"p50": [one value per batch], ...}``. The number of values must be
    a positive multiple of ``batch_size``, so every batch has the same weight.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    count = len(values)
    if count == 0 or count % batch_size:
        raise ValueError(
            f"expected a positive multiple of batch_size={batch_size} values, got {count}"
        )

    per_batch = {name: [] for name in PERCENTILES}
    for start in range(0, count, batch_size):
        summary = summarize(values[start : start + batch_size])
        for name, value in summary.items():
            per_batch[name].append(value)
    return per_batch


def samples_form(samples):
    """Wrap ``samples`` in the dict that asv's runner stores as raw samples.

    A ``track_`` benchmark that returns ``{"samples": [...], "number": 1}`` gets
    the median of the samples as its value, and with ``--record-samples`` asv
    keeps the list, so ``asv compare`` can run its significance test (checked
    against asv 0.6.6).
    """
    values = [float(sample) for sample in samples]
    if not values:
        raise ValueError("cannot report an empty list of samples")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"samples contain NaN or infinity: {samples!r}")
    return {"samples": values, "number": 1}
