"""Benchmark gate: decide from asv samples whether a revision regressed.

``python -m tools.gate run`` runs the selected benchmarks (the p99 restart latencies by
default) on BASE and HEAD in interleaved rounds, in a results folder of its own, and judges
each benchmark and parameter set with a one-sided Mann-Whitney U test plus a minimum effect
size. See ``cli`` for the commands and exit codes and docs/BENCHMARKS.md for the method.
"""

from .report import EXIT_BROKEN, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE

__all__ = ["EXIT_BROKEN", "EXIT_OK", "EXIT_REGRESSION", "EXIT_USAGE"]
