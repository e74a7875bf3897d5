"""The cost of the instrument itself, and memory per idle child beside a bare task.

Timestamps. A restart latency is the difference of two ``time.perf_counter_ns()``
readings taken by the child code in ``_restart.py``, so every latency includes
the cost of one clock reading. The probe's bookkeeping also runs on the restart
path, of the supervised child and of the bare baseline alike.
``InstrumentOverhead`` measures both costs, so the latency figures can be read
against them:

- ``track_perf_counter_ns_call``: one ``time.perf_counter_ns()`` call, the
  loop that repeats it subtracted;
- ``track_back_to_back_timestamps``: the difference of two consecutive
  readings, the smallest latency the probe can report;
- ``track_probe_on_crash`` and ``track_probe_on_ready``: the probe's
  bookkeeping per restart. The crash timestamp is taken before
  ``RestartProbe.on_crash`` stores it, so ``on_crash`` falls inside every
  measured latency. The ready timestamp is taken before ``on_ready`` runs, so
  ``on_ready`` (and a supervised child's ``task_status.started()``) falls
  outside it, but still takes loop time before the next crash.

Memory. ``IdleChildMemory`` reports the bytes one idle child costs under a
supervisor (its ``ChildSpec``, the supervisor's state for it, its task and
coroutine frames) and the bytes of one bare asyncio task running the same
coroutine, both counted with ``tracemalloc``. Unlike a difference of resident
set sizes, tracemalloc counts the Python objects themselves: it does not depend
on whether the allocator returns freed pages to the system or on page size,
and gives the same figure run after run. It does not see memory allocated
outside Python's allocators, which these objects do not use.
"""

import asyncio
import gc
import time
import tracemalloc

from . import _restart
from ._stats import samples_form
from .memory import _idle_child

_UNAVAILABLE = "unavailable"

# Calls per timing batch and batches per statistic; one batch takes about
# 10 ms for the clock calls on a 2-core sandbox (CPython 3.11.7).
CALLS_PER_BATCH = 100_000
BATCHES = 20
# Restarts simulated per bookkeeping batch.
RESTARTS_PER_BATCH = 20_000

# Children per memory measurement, large enough to spread the supervisor's own
# fixed size thin: at 100 children it read 1,716 bytes per child and at 10,000
# it read 1,643 (CPython 3.11.7), so that share is under one byte here.
MEMORY_CHILDREN = 10_000
# Children started once, at full size, before measuring, so one-time
# allocations are not charged to whichever measurement runs first. The largest
# is the table of asyncio's set of all tasks. It grows with the number of live
# tasks and keeps its size afterwards, and it added about 50 bytes per task to
# the first measurement of 10,000 tasks on CPython 3.11.7.
WARMUP_CHILDREN = MEMORY_CHILDREN


def _loop_ns(calls):
    """Return the nanoseconds of an empty loop of ``calls`` iterations."""
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(calls):
        pass
    return clock() - start


def _clock_calls_ns(calls):
    """Return the nanoseconds of a loop of ``calls`` perf_counter_ns() calls."""
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(calls):
        time.perf_counter_ns()
    return clock() - start


def measure_clock_call(batches=BATCHES, calls=CALLS_PER_BATCH):
    """Return the nanoseconds per ``time.perf_counter_ns()`` call, one value per batch.

    The call is written as the child code writes it (a module attribute
    lookup), and each batch subtracts an empty loop timed right before it.
    """
    return [(_clock_calls_ns(calls) - _loop_ns(calls)) / calls for _ in range(batches)]


def measure_back_to_back(batches=BATCHES, pairs=CALLS_PER_BATCH // 10):
    """Return the median difference, in ns, of two consecutive perf_counter_ns() readings, per batch."""
    medians = []
    for _ in range(batches):
        differences = []
        for _ in range(pairs):
            first = time.perf_counter_ns()
            second = time.perf_counter_ns()
            differences.append(second - first)
        differences.sort()
        medians.append(differences[len(differences) // 2])
    return medians


async def _bookkeeping_batch(restarts):
    """Return the ns per simulated restart of (on_crash, on_ready), empty loop subtracted.

    One loop runs on_crash then on_ready per restart, as a restart does, and a
    second runs on_crash alone; on_ready is the difference of the two.
    """
    probe = _restart.RestartProbe(1)
    probe.on_ready(0, 0)
    clock = time.perf_counter_ns

    start = clock()
    for now in range(restarts):
        probe.on_crash(0, now)
        probe.on_ready(0, now)
    both = clock() - start

    start = clock()
    for now in range(restarts):
        probe.on_crash(0, now)
    crash_only = clock() - start

    empty = _loop_ns(restarts)
    return (crash_only - empty) / restarts, (both - crash_only) / restarts


def measure_bookkeeping(batches=BATCHES, restarts=RESTARTS_PER_BATCH):
    """Return ``{"on_crash": [ns per batch], "on_ready": [ns per batch]}``."""

    async def run():
        return [await _bookkeeping_batch(restarts) for _ in range(batches)]

    results = asyncio.run(run())
    return {
        "on_crash": [on_crash for on_crash, _ in results],
        "on_ready": [on_ready for _, on_ready in results],
    }


class InstrumentOverhead:
    """Cost of the timestamps and of the probe's bookkeeping, in nanoseconds.

    Each ``track_`` returns one value per batch in asv's samples form. The
    timings run in setup_cache, once per asv run, in about a second.
    """

    # NOTE: asv formats only "seconds" and "bytes", so asv compare and asv show print these
    # nanosecond values as bare numbers. The unit "seconds" would need values in seconds.
    unit = "ns"
    timeout = 120
    version = 1

    def setup_cache(self):
        return {
            "clock_call": measure_clock_call(),
            "back_to_back": measure_back_to_back(),
            **measure_bookkeeping(),
        }

    def track_perf_counter_ns_call(self, cache):
        return samples_form(cache["clock_call"])

    def track_back_to_back_timestamps(self, cache):
        return samples_form(cache["back_to_back"])

    def track_probe_on_crash(self, cache):
        return samples_form(cache["on_crash"])

    def track_probe_on_ready(self, cache):
        return samples_form(cache["on_ready"])


async def _supervised_children_bytes(children):
    """Return the bytes allocated per idle child to run ``children`` of them under a supervisor."""
    Supervisor, ChildSpec = _restart.require("Supervisor", "ChildSpec")
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    specs = [ChildSpec(f"child-{slot}", _idle_child) for slot in range(children)]
    supervisor = Supervisor(specs, name="bench")
    await supervisor.start()
    after = tracemalloc.get_traced_memory()[0]
    await supervisor.stop()
    return (after - before) / children


async def _bare_tasks_bytes(children):
    """Return the bytes allocated per task to run ``children`` bare tasks of the same coroutine."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.create_task(_idle_child()) for _ in range(children)]
    # One pass of the event loop runs every task up to its first await.
    await asyncio.sleep(0)
    after = tracemalloc.get_traced_memory()[0]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (after - before) / children


def measure_memory(children=MEMORY_CHILDREN):
    """Return ``{"supervised": bytes per child, "bare": bytes per task}``, counted by tracemalloc.

    Each measurement gets an event loop of its own. A second measurement on the
    same loop read about 600 bytes per supervised child instead of 1,600,
    because memory held over from the first was freed while the second ran.
    """
    tracemalloc.start()
    try:
        for measure in (_bare_tasks_bytes, _supervised_children_bytes):
            gc.collect()
            asyncio.run(measure(WARMUP_CHILDREN))
        gc.collect()
        bare = asyncio.run(_bare_tasks_bytes(children))
        gc.collect()
        supervised = asyncio.run(_supervised_children_bytes(children))
    finally:
        tracemalloc.stop()
    return {"supervised": supervised, "bare": bare}


class IdleChildMemory:
    """Bytes per idle child under a supervisor, beside a bare asyncio task (tracemalloc).

    The children do not signal readiness, so each is ready once its task runs,
    like the bare tasks. Both are measured in setup_cache, in the same process,
    in about 3 s with the warm-up.
    """

    unit = "bytes"
    timeout = 120
    version = 1

    def setup_cache(self):
        try:
            return measure_memory()
        except NotImplementedError as exc:
            return (_UNAVAILABLE, str(exc))

    def setup(self, cache):
        if isinstance(cache, tuple) and cache[0] == _UNAVAILABLE:
            raise NotImplementedError(cache[1])

    def track_supervised_child(self, cache):
        return cache["supervised"]

    def track_bare_task(self, cache):
        return cache["bare"]

    def track_ratio(self, cache):
        return cache["supervised"] / cache["bare"]

    track_ratio.unit = "ratio"
