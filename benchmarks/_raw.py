"""Raw restart latencies, for tools that need every restart rather than batch percentiles.

asv stores what the ``track_`` benchmarks return: one p50/p95/p99/max per
batch of restarts. A latency distribution plot or a profile of one measurement
needs the single latencies instead. ``collect_latencies`` therefore runs the
suite's own measurement functions, ``_restart.measure_supervised`` and
``_restart.measure_bare``, with the same child code, crash schedule and load,
and returns every latency they measured.

Run one measurement from the repository root and print its percentiles:

    python -m benchmarks._raw --load heavy --children 1000
    python -m benchmarks._raw --load heavy --bare

``make profile`` runs this under py-spy.
"""

import argparse
import asyncio
import gc
import sys

from . import _restart
from ._load import LOAD_LEVELS
from ._stats import summarize


def collect_latencies(coroutine_function, *args):
    """Run one measurement in a fresh event loop, after a full garbage collection.

    ``coroutine_function`` is ``_restart.measure_supervised`` or
    ``_restart.measure_bare`` and ``args`` are its arguments. Returns the
    restart latencies in nanoseconds, warm-up excluded. Unlike
    ``_restart.run_measurement``, a failed measurement raises its exception.
    """
    gc.collect()
    return list(asyncio.run(coroutine_function(*args)))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._raw",
        description="Run one restart-latency measurement of the asv suite and print its percentiles.",
    )
    parser.add_argument(
        "--load",
        choices=list(LOAD_LEVELS),
        default="heavy",
        help="background load while crashes are injected (default: heavy)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--children",
        type=int,
        default=1000,
        help="number of one_for_one children under the supervisor (default: 1000)",
    )
    target.add_argument(
        "--bare",
        action="store_true",
        help="measure the baseline instead: one bare coroutine re-run in the same task",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=2000,
        help="restarts to measure after the warm-up (default: 2000)",
    )
    parser.add_argument("--seed", type=int, default=_restart.SEED, help="seed of the crash schedule")
    args = parser.parse_args(argv)
    if args.children < 1:
        parser.error(f"--children must be at least 1, got {args.children!r}")
    if args.restarts < 1:
        parser.error(f"--restarts must be at least 1, got {args.restarts!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.bare:
        description = "bare re-run"
        latencies_ns = collect_latencies(_restart.measure_bare, args.load, args.restarts, args.seed)
    else:
        description = f"one_for_one, {args.children:,} children"
        latencies_ns = collect_latencies(
            _restart.measure_supervised, args.load, args.children, args.restarts, args.seed
        )

    summary = summarize([latency / 1e3 for latency in latencies_ns])
    figures = ", ".join(f"{name} {value:,.1f} us" for name, value in summary.items())
    print(f"{description}, load {args.load}, {len(latencies_ns)} restarts: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
