"""Crash injection and restart-latency measurement shared by the restart benchmarks.

Restart latency is the time from a failing child's own ``perf_counter_ns()``,
taken just before it raises, to its replacement's ``perf_counter_ns()``, taken
just before it reports ready (``task_status.started()`` for a supervised child).
Both timestamps are taken by the child code below, so a supervised child and
the bare baseline pay the same instrumentation cost.

Crashes follow a schedule rather than coming back to back. A timer fires on a
fixed grid of ``interval`` seconds and makes one child raise, chosen by a
fixed-seed ``random.Random``. The schedule never waits for a restart: a tick
that picks a child still restarting counts as missed. So a slow restart cannot
stretch the schedule and hide its own delay. A tick that runs late is not made
up, because the next one goes to the next grid point after it, so a stalled
loop never releases a burst of crashes.

The ``supervisor`` package is imported only through ``require()``, so a commit
that lacks a name raises NotImplementedError, which asv reports as a skip.
"""

import asyncio
import gc
import math
import random
import time

from ._load import Load
from ._stats import batch_percentiles

# Restarts measured per batch and batches per parameter combination. Each
# batch yields one p50/p95/p99/max sample, so asv gets BATCHES samples per
# statistic. With 100 restarts a batch's p99 is interpolated between its two
# slowest restarts; resolving it more finely needs bigger batches.
# Changing BATCHES changes only how many samples a run stores, not what a
# sample means, so it needs no new benchmark version. 10 batches keep a quick
# run of the whole suite within budget. The gate gains its power from rounds
# (separate processes), because rounds vary far more than the batches of one run.
BATCH_SIZE = 100
BATCHES = 10

# Restarts before the first batch, discarded: they run code paths and
# allocations for the first time.
WARMUP_RESTARTS = 20

# Seconds between scheduled crashes at each load level. Each interval spans
# at least four event-loop passes at its level (a pass takes about 45 us at
# light and 0.45 ms at heavy), so a restart that needs a pass or two still
# finishes before the next crash. asyncio's selector loop rounds its timeouts up to
# whole milliseconds on Linux (epoll), so 1 ms is the finest interval the loop
# can keep.
CRASH_INTERVALS = {"idle": 0.001, "light": 0.001, "heavy": 0.002}

SEED = 20240601

# Intensity settings for supervisors under crash injection. The default of
# 3 restarts in 5 s would stop the supervisor after the fourth crash, so the
# benchmarks allow more restarts per second than any schedule above injects.
MAX_RESTARTS = 10_000
MAX_SECONDS = 1.0


def require(*names):
    """Import ``supervisor`` and return the named public attributes as a tuple.

    Raises NotImplementedError, which asv treats as "skip this benchmark", if
    the package cannot be imported or lacks one of the names.
    """
    try:
        import supervisor
    except ImportError as exc:
        raise NotImplementedError(f"supervisor cannot be imported at this commit: {exc}") from exc

    missing = [name for name in names if not hasattr(supervisor, name)]
    if missing:
        raise NotImplementedError(f"supervisor at this commit lacks {', '.join(missing)}")
    return tuple(getattr(supervisor, name) for name in names)


class InjectedCrash(Exception):
    """Raised by a benchmark child when the crash schedule picks it."""


class RestartProbe:
    """Readiness and crash timestamps per child slot, paired into restart latencies.

    A slot is a child position (0 to ``slots - 1``) that outlives the child
    instances filling it, so a replacement reports into its predecessor's slot.
    """

    def __init__(self, slots):
        self.crashed_at_ns = [None] * slots
        self.triggers = [None] * slots
        self.latencies_ns = []
        self.ready_count = 0
        self._ready_waiters = []
        self._latency_waiter = None

    def on_ready(self, slot, now_ns):
        """Record that ``slot`` is ready at ``now_ns``; return the future that crashes it."""
        crashed_at_ns = self.crashed_at_ns[slot]
        if crashed_at_ns is not None:
            self.crashed_at_ns[slot] = None
            self.latencies_ns.append(now_ns - crashed_at_ns)
            waiter = self._latency_waiter
            if waiter is not None and len(self.latencies_ns) >= waiter[0]:
                self._latency_waiter = None
                if not waiter[1].done():
                    waiter[1].set_result(None)

        self.ready_count += 1
        while self._ready_waiters and self._ready_waiters[0][0] <= self.ready_count:
            _, waiter = self._ready_waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)

        trigger = asyncio.get_running_loop().create_future()
        self.triggers[slot] = trigger
        return trigger

    def on_crash(self, slot, now_ns):
        """Record that the child in ``slot`` is about to raise at ``now_ns``."""
        self.crashed_at_ns[slot] = now_ns

    def crash(self, slot):
        """Make the child in ``slot`` raise; return False if no child is ready there."""
        trigger = self.triggers[slot]
        if trigger is None or trigger.done():
            return False
        self.triggers[slot] = None
        trigger.set_result(None)
        return True

    def wait_for_readies(self, count):
        """Return a future that completes once ``count`` more readiness reports arrived."""
        waiter = asyncio.get_running_loop().create_future()
        self._ready_waiters.append((self.ready_count + count, waiter))
        return waiter

    def wait_for_latencies(self, total):
        """Return a future that completes once ``total`` latencies are recorded."""
        waiter = asyncio.get_running_loop().create_future()
        if len(self.latencies_ns) >= total:
            waiter.set_result(None)
        else:
            self._latency_waiter = (total, waiter)
        return waiter


async def supervised_child(probe, slot, *, task_status):
    """Report ready, wait until the schedule picks ``slot``, then raise InjectedCrash.

    Started by a supervisor with ``signals_ready=True``.
    """
    crash = probe.on_ready(slot, time.perf_counter_ns())
    task_status.started()
    await crash
    probe.on_crash(slot, time.perf_counter_ns())
    raise InjectedCrash(slot)


async def bare_child(probe, slot):
    """Run the body of ``supervised_child`` without a supervisor, ready as soon as it runs."""
    crash = probe.on_ready(slot, time.perf_counter_ns())
    await crash
    probe.on_crash(slot, time.perf_counter_ns())
    raise InjectedCrash(slot)


async def rerun_bare_child(probe):
    """Baseline restart: run ``bare_child`` again in the same task each time it raises."""
    while True:
        try:
            await bare_child(probe, 0)
        except InjectedCrash:
            pass


class CrashSchedule:
    """Timer that crashes one child per tick on a fixed grid of ``interval`` seconds."""

    def __init__(self, probe, slots, interval, seed):
        self.probe = probe
        self.slots = slots
        self.interval = interval
        self.random = random.Random(seed)
        self.fired = 0
        self.missed = 0
        self._loop = None
        self._origin = None
        self._handle = None

    def start(self):
        self._loop = asyncio.get_running_loop()
        self._origin = self._loop.time()
        self._handle = self._loop.call_at(self._origin + self.interval, self._tick)

    def stop(self):
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self):
        victim = self.random.randrange(self.slots)
        if self.probe.crash(victim):
            self.fired += 1
        else:
            self.missed += 1

        when = next_grid_point(self._origin, self.interval, self._loop.time())
        self._handle = self._loop.call_at(when, self._tick)


def next_grid_point(origin, interval, now):
    """Return the first time ``origin + k * interval`` (k >= 1) strictly after ``now``.

    A tick that ran late thereby skips the points it overran instead of firing
    them back to back.
    """
    index = max(1, math.floor((now - origin) / interval) + 1)
    return origin + index * interval


def _deadline(level, restarts):
    # Ten times the schedule's own length, plus room for starting and
    # stopping 10,000 children; only a broken restart path gets near it.
    return 10 * restarts * CRASH_INTERVALS[level] + 60.0


async def _collect_latencies(probe, level, slots, restarts, seed, failure=None):
    """Run the crash schedule under ``level`` until ``restarts`` latencies are measured.

    ``failure`` is an optional awaitable that completes if the system under
    test gives up (for example a supervisor that exceeded its intensity).
    Returns the latencies in nanoseconds, warm-up excluded.
    """
    target = WARMUP_RESTARTS + restarts
    schedule = CrashSchedule(probe, slots, CRASH_INTERVALS[level], seed)
    watchers = []
    if failure is not None:
        watchers.append(asyncio.ensure_future(failure))

    async with Load(level):
        done = probe.wait_for_latencies(target)
        schedule.start()
        try:
            finished, _ = await asyncio.wait(
                [done, *watchers],
                timeout=_deadline(level, target),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            schedule.stop()
            for task in (done, *watchers):
                task.cancel()
            await asyncio.gather(done, *watchers, return_exceptions=True)

    if done not in finished:
        for watcher in watchers:
            if watcher in finished:
                raise RuntimeError(
                    f"system under test stopped after {len(probe.latencies_ns)} restarts "
                    f"at load={level!r}, slots={slots}"
                ) from watcher.exception()
        raise RuntimeError(
            f"timed out with {len(probe.latencies_ns)} of {target} restarts measured "
            f"({schedule.fired} crashes injected, {schedule.missed} ticks missed) "
            f"at load={level!r}, slots={slots}"
        )
    return probe.latencies_ns[WARMUP_RESTARTS:target]


async def measure_supervised(level, children, restarts, seed=SEED):
    """Return one_for_one restart latencies (ns) of ``children`` children under ``level``."""
    Supervisor, ChildSpec = require("Supervisor", "ChildSpec")
    probe = RestartProbe(children)
    specs = [
        ChildSpec(f"child-{slot}", supervised_child, args=(probe, slot), signals_ready=True)
        for slot in range(children)
    ]
    supervisor = Supervisor(
        specs,
        strategy="one_for_one",
        max_restarts=MAX_RESTARTS,
        max_seconds=MAX_SECONDS,
        name="bench",
    )

    # Children start before the load does: starting 10,000 children while 100
    # operations compete for the loop would take minutes and measures nothing.
    await supervisor.start()
    try:
        return await _collect_latencies(
            probe, level, children, restarts, seed, failure=supervisor.wait()
        )
    finally:
        await supervisor.stop()


async def measure_bare(level, restarts, seed=SEED):
    """Return baseline restart latencies (ns) of one bare child re-run in the same task."""
    probe = RestartProbe(1)
    ready = probe.wait_for_readies(1)
    task = asyncio.create_task(rerun_bare_child(probe))
    await ready
    try:
        return await _collect_latencies(probe, level, 1, restarts, seed, failure=task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def run_measurement(coroutine_function, *args, loop_factory=None):
    """Run one measurement in a fresh event loop, after a full garbage collection.

    Returns ``{"p50": [per batch, seconds], ...}`` from the latencies, or an
    error message (a str) if the measurement failed, so one broken parameter
    combination does not hide the others. NotImplementedError propagates.
    ``loop_factory`` creates the event loop (asyncio's default loop if None).
    """
    gc.collect()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            latencies_ns = runner.run(coroutine_function(*args))
    except NotImplementedError:
        raise
    except Exception as exc:  # reported per combination by the benchmark's setup
        return f"{type(exc).__name__}: {exc}"

    seconds = [latency / 1e9 for latency in latencies_ns]
    return batch_percentiles(seconds, BATCH_SIZE)
