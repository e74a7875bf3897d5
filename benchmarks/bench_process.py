"""Restart latency of an OS-process child, beside a bare asyncio subprocess loop.

The child is ``/bin/sh -c 'echo ready; exec sleep 600'``, ready when it prints
``ready``: a process whose own start-up is small, so the figure shows the cost of
spawning, detecting the exit and reading the readiness line rather than of an
interpreter starting. Latency runs from ``perf_counter_ns()`` just before the
benchmark sends SIGKILL to the running process, to the ``time_ns`` of the
supervisor's ``ChildReady`` event for the replacement.

Kills follow a fixed grid of ``KILL_INTERVALS`` seconds, as in ``bench_actor``:
after each restart the driver sleeps until the next grid point still ahead.
Load levels are those of ``_load.py``.

The baseline does the same with plain asyncio: ``create_subprocess_exec``,
``readline()`` until ``ready``, ``wait()``, and again, in one task.

Both measure with asyncio's pidfd child watcher, the default from CPython 3.12.
On 3.11 the default watcher is a thread blocked in ``waitpid()``, which must win
the GIL from a busy event loop to report an exit: under ``light`` load an exit
was reported 0.2 to 2 s late on a 2-core sandbox (CPython 3.11.7), for the
supervisor and the baseline alike, so the figures showed the GIL and not the
restart. ``docs/ACTORS_AND_PROCESSES.md`` shows how to install the same watcher.
"""

import asyncio
import contextlib
import os
import signal
import sys
import time
import warnings

from . import _restart
from ._load import LOAD_LEVELS, Load
from ._stats import batch_percentiles, samples_form
from .bench_actor import measure_all, select, sleep_until_next_tick

LOADS = list(LOAD_LEVELS)

COMMAND = ("/bin/sh", "-c", "echo ready; exec sleep 600")

# Restarts per batch, batches per load and warm-up restarts: 5 x 16 restarts
# per load keep the three loads, with the baseline, near 13 s of kills.
RESTART_BATCH = 16
RESTART_BATCHES = 5
RESTART_WARMUP = 5

# Seconds between kills, at least twice the slowest restart seen. On a 2-core
# sandbox (CPython 3.11.7, pidfd watcher, ``asv run --quick -b bench_process``
# while other jobs ran) the p99 of a restart was about 8 ms idle and light and
# 11 ms heavy for the supervisor, and 18 ms heavy for the baseline.
KILL_INTERVALS = {"idle": 0.015, "light": 0.02, "heavy": 0.04}


@contextlib.contextmanager
def pidfd_child_watcher():
    """On CPython 3.11 with pidfd support, use asyncio's PidfdChildWatcher inside the block.

    CPython 3.12 and later use it by default, so there this changes nothing.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        yield
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel without pidfds: keep the default watcher
        yield
        return
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        previous = policy.get_child_watcher()
        policy.set_child_watcher(asyncio.PidfdChildWatcher())
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            policy.set_child_watcher(previous)


def measure_with_pidfd(measure):
    """``measure_all(measure, ...)`` for every load, under ``pidfd_child_watcher()``."""
    with pidfd_child_watcher():
        return measure_all(measure, [(load,) for load in LOADS])


async def _run_kills(level, kill_cycle):
    """Run ``kill_cycle()`` on the grid under ``level``; return per-batch percentiles in seconds."""
    latencies = []
    loop = asyncio.get_running_loop()
    interval = KILL_INTERVALS[level]
    total = RESTART_WARMUP + RESTART_BATCH * RESTART_BATCHES
    async with Load(level):
        origin = loop.time()
        for _ in range(total):
            await sleep_until_next_tick(loop, origin, interval)
            latencies.append(await kill_cycle() / 1e9)
    return batch_percentiles(latencies[RESTART_WARMUP:], RESTART_BATCH)


async def measure_process_restarts(level):
    """Kill a supervised process child on the grid; return restart-latency percentiles."""
    Supervisor, ProcessChild, ChildReady = _restart.require("Supervisor", "ProcessChild", "ChildReady")
    loop = asyncio.get_running_loop()
    ready_waiter = None

    def on_event(event):
        if isinstance(event, ChildReady) and ready_waiter is not None and not ready_waiter.done():
            ready_waiter.set_result(event.time_ns)

    child = ProcessChild(COMMAND, ready="^ready$", on_output=lambda line: None)
    supervisor = Supervisor(
        [child.child_spec("sh", shutdown="brutal_kill")],
        max_restarts=_restart.MAX_RESTARTS,
        max_seconds=_restart.MAX_SECONDS,
        name="bench",
        on_event=on_event,
    )

    async def kill_cycle():
        nonlocal ready_waiter
        pid = child.pid
        if pid is None:
            raise RuntimeError("the process child has no running process to kill")
        ready_waiter = loop.create_future()
        killed_ns = time.perf_counter_ns()
        os.kill(pid, signal.SIGKILL)
        ready_ns = await ready_waiter
        return ready_ns - killed_ns

    await supervisor.start()
    try:
        return await _run_kills(level, kill_cycle)
    finally:
        await supervisor.stop()


async def _bare_process_loop(processes, ready_times):
    # The baseline restart: spawn again in the same task as soon as the process exited.
    while True:
        process = await asyncio.create_subprocess_exec(
            *COMMAND, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        processes.append(process)
        while (await process.stdout.readline()).strip() != b"ready":
            pass
        ready_times.put_nowait(time.perf_counter_ns())
        await process.wait()


async def measure_bare_restarts(level):
    """The same kills against the bare asyncio loop; return restart-latency percentiles."""
    processes = []
    ready_times = asyncio.Queue()
    task = asyncio.create_task(_bare_process_loop(processes, ready_times))

    async def kill_cycle():
        process = processes[-1]
        killed_ns = time.perf_counter_ns()
        process.kill()
        return await ready_times.get() - killed_ns

    try:
        await ready_times.get()
        return await _run_kills(level, kill_cycle)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


class ProcessRestartLatency:
    """Restart latency of a process child killed with SIGKILL, by load level.

    ``setup_cache`` measures every load once per asv run (about 7 s on 2 cores);
    one sample per batch of 16 restarts, in asv's samples form.

    NOTE: on a shared 2-core sandbox the idle median moved between about 2 ms and
    5 ms from one run to the next, for the baseline as well, so compare a ratio
    only within one run.
    """

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 180
    # 2: measured with the pidfd child watcher.
    version = 2

    def setup_cache(self):
        return measure_with_pidfd(measure_process_restarts)

    def setup(self, cache, load):
        _restart.require("Supervisor", "ProcessChild", "ChildReady")
        self.batches = select(cache, (load,))

    def track_p50(self, cache, load):
        return samples_form(self.batches["p50"])

    def track_p95(self, cache, load):
        return samples_form(self.batches["p95"])

    def track_p99(self, cache, load):
        return samples_form(self.batches["p99"])

    def track_max(self, cache, load):
        return samples_form(self.batches["max"])


class BareProcessRestartLatency:
    """Baseline for ``ProcessRestartLatency``: plain asyncio respawning the same command."""

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 180
    # 2: measured with the pidfd child watcher.
    version = 2

    def setup_cache(self):
        return measure_with_pidfd(measure_bare_restarts)

    def setup(self, cache, load):
        self.batches = select(cache, (load,))

    def track_p50(self, cache, load):
        return samples_form(self.batches["p50"])

    def track_p99(self, cache, load):
        return samples_form(self.batches["p99"])
