"""Cost of the restart path alone: a child that crashes as soon as it starts, with no load.

The asv suite schedules crashes 1 to 2 ms apart under background load, which is honest about
latency but leaves the restart path a few percent of the samples and its figures noisy on a
shared machine. Here one one_for_one child raises at once in every generation, so the loop
does nothing but restart it, and the time per restart is the cost of the restart path with
warm caches. The baseline is the suite's bare re-run in the same form: the same coroutine
awaited again in one task after it raised. Both run in turns, ``--runs`` times each, and the
medians and their ratio are printed.

Run it from the repository root. To compare two checkouts of ``supervisor`` on a shared
machine, run both in turns, a few times each, and compare the ratios:

    python -m benchmarks._crash_loop
    python -m benchmarks._crash_loop --path /path/to/old/checkout

Only the public API is used, so the script runs against older commits too.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time

from ._restart import require


class LoopCrash(Exception):
    """Raised by the crash-loop child in every generation."""


async def supervised_loop(restarts, signals_ready):
    """Return the nanoseconds per restart of one one_for_one child that crashes at once."""
    Supervisor, ChildSpec = require("Supervisor", "ChildSpec")
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    starts = 0

    async def last_generation():
        if not finished.done():
            finished.set_result(time.perf_counter_ns())
        await loop.create_future()  # stays running until the supervisor stops it

    # The same body as the bare child, plus the readiness call of the protocol, which is
    # part of what a restart costs.
    async def signalling_child(*, task_status):
        nonlocal starts
        starts += 1
        task_status.started()
        if starts > restarts:
            await last_generation()
        raise LoopCrash()

    async def child():
        nonlocal starts
        starts += 1
        if starts > restarts:
            await last_generation()
        raise LoopCrash()

    supervisor = Supervisor(
        [
            ChildSpec(
                "crash-loop",
                signalling_child if signals_ready else child,
                signals_ready=signals_ready,
            )
        ],
        max_restarts=restarts + 1,
        max_seconds=3600.0,
        name="crash-loop",
    )
    started_at = time.perf_counter_ns()
    await supervisor.start()
    try:
        # A supervisor that fails before the last generation (a restart path that raises,
        # say, in another checkout) would otherwise leave this waiting for ever.
        failure = asyncio.ensure_future(supervisor.wait())
        await asyncio.wait([finished, failure], return_when=asyncio.FIRST_COMPLETED)
        if not finished.done():
            failure.result()  # raises the supervisor's failure
            raise RuntimeError(f"the supervisor stopped after {starts} of {restarts + 1} starts")
        ended_at = finished.result()
    finally:
        await supervisor.stop()
    return (ended_at - started_at) / restarts


async def bare_loop(restarts):
    """Return the nanoseconds per re-run of a coroutine that raises, awaited again in one task."""
    runs = 0

    async def child():
        nonlocal runs
        runs += 1
        raise LoopCrash()

    started_at = time.perf_counter_ns()
    while runs < restarts:
        try:
            await child()
        except LoopCrash:
            pass
    return (time.perf_counter_ns() - started_at) / restarts


def measure(restarts, runs, signals_ready):
    """Return the per-restart times (ns) of ``runs`` supervised and bare runs, taken in turns."""
    supervised, bare = [], []
    for _ in range(runs):
        supervised.append(asyncio.run(supervised_loop(restarts, signals_ready)))
        bare.append(asyncio.run(bare_loop(restarts)))
    return supervised, bare


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._crash_loop",
        description="Time the restart path in a tight crash loop, beside a bare re-run.",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=20_000,
        help="restarts per run; each run's time includes starting and stopping the supervisor, "
        "so use thousands (default: 20000)",
    )
    parser.add_argument(
        "--runs", type=int, default=7, help="runs of each kind, taken in turns (default: 7)"
    )
    parser.add_argument(
        "--no-signals-ready",
        dest="signals_ready",
        action="store_false",
        help="start the child without task_status, so it is ready as soon as it runs "
        "(default: it calls task_status.started(), as the suite's child does)",
    )
    parser.add_argument(
        "--path",
        metavar="DIR",
        help="folder containing the supervisor package to measure, put first on sys.path "
        "(default: the package Python finds, which is this checkout's from the repository root)",
    )
    args = parser.parse_args(argv)
    if args.path is not None and not os.path.isfile(os.path.join(args.path, "supervisor", "__init__.py")):
        parser.error(f"--path {args.path!r} has no supervisor package (supervisor/__init__.py)")
    if args.restarts < 1:
        parser.error(f"--restarts must be at least 1, got {args.restarts!r}")
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.path is not None:
        sys.path.insert(0, os.path.abspath(args.path))
    try:
        supervised, bare = measure(args.restarts, args.runs, args.signals_ready)
    except NotImplementedError as exc:
        print(f"cannot measure: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a failure of the measured checkout, reported as such
        print(f"measurement failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    import supervisor

    supervised_median = statistics.median(supervised) / 1e3
    bare_median = statistics.median(bare) / 1e3
    print(
        f"supervisor from {supervisor.__file__}, Python {sys.version.split()[0]}, "
        f"{args.restarts:,} restarts x {args.runs} runs, signals_ready={args.signals_ready}: "
        f"supervised {supervised_median:.2f} us, bare {bare_median:.2f} us per restart "
        f"(medians), ratio {supervised_median / bare_median:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
