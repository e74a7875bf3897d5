"""Actor benchmarks: restart latency of a worker actor, ask round trip and message cost.

Restart latency runs from the failing handler's ``perf_counter_ns()``, taken just
before it raises, to the ``perf_counter_ns()`` taken when the replacement
instance starts handling its first message. Every replacement first runs a
realistic ``on_start``: it builds a dict of ``TABLE_SIZE`` (5,000) string keys,
which is most of the cost at idle. The message round trip during a restart is
the time of an ``ask()`` sent right behind the message that crashes the actor,
so it waits out the whole restart.

Crashes follow a fixed grid of ``CRASH_INTERVALS`` seconds. At each tick the
driver sends the crash and the probe ask and waits for the reply. Then it sleeps
until the next grid point that is still ahead, so crashes never come back to back.
Load levels are those of ``_load.py``; each load runs in its own event loop.

Baselines, measured the same way: the same actor class driven by a bare loop
that re-creates the instance in the same task after it raised, reading an
``asyncio.Queue``; and a bare queue-plus-future worker for the messaging costs.

``supervisor`` names are imported through ``_restart.require()``, so a commit
without actors reports these benchmarks as skipped.
"""

import asyncio
import gc
import math
import time

from . import _restart
from ._load import LOAD_LEVELS, Load
from ._stats import batch_percentiles, samples_form

LOADS = list(LOAD_LEVELS)

# The replacement's on_start builds a table this large, about as much start-up
# work as a worker that loads a small lookup table or a cache.
TABLE_SIZE = 5_000

# Restarts per batch, batches per load and warm-up restarts. Each batch gives
# one sample of each statistic; 5 x 40 restarts keep all three loads, with the
# baseline, near 13 s.
RESTART_BATCH = 40
RESTART_BATCHES = 5
RESTART_WARMUP = 20

# Seconds between crashes: several times the restart itself, so the actor is
# idle again before the next crash. On a 2-core sandbox (CPython 3.11.7) a
# restart took about 0.65 ms at idle, almost all of it building the table, and
# its p99 reached 1.5 ms at heavy.
CRASH_INTERVALS = {"idle": 0.005, "light": 0.008, "heavy": 0.015}

# Messaging: sequential asks per batch, and messages per throughput batch.
ASK_BATCH = 100
SEND_BATCH = 5_000
MESSAGE_BATCHES = 10

_UNAVAILABLE = "unavailable"
_CRASH = "crash"
_PROBE = "probe"


class _InjectedCrash(Exception):
    """Raised by the benchmark actor when it receives the crash message."""


class _RestartProbe:
    """Timestamps of one crash and of the first message after it."""

    def __init__(self):
        self.failed_at_ns = None
        self.first_message_ns = None


class TableWorker:
    """The benchmark actor: builds a table on start, fails on ``_CRASH``, returns table entries.

    It has the three methods of ``supervisor.Actor`` without inheriting from it, so this
    module imports on commits that lack actors.
    """

    def __init__(self, probe):
        self.probe = probe
        self.table = None
        self.first = True

    async def on_start(self):
        self.table = {f"key-{index}": index for index in range(TABLE_SIZE)}

    async def receive(self, message):
        if self.first:
            self.first = False
            self.probe.first_message_ns = time.perf_counter_ns()
        if message == _CRASH:
            self.probe.failed_at_ns = time.perf_counter_ns()
            raise _InjectedCrash()
        return self.table.get(message)

    async def on_stop(self, reason):
        pass


# ---------------------------------------------------------------------------- shared helpers


def measure_all(measure, combinations):
    """Run ``measure(*combination)`` in a fresh event loop for each combination.

    Returns ``{combination: result}``. A result is what ``measure`` returned, an
    error message (str) for a failed combination, or ``(_UNAVAILABLE, message)``
    if this commit of ``supervisor`` lacks the API, which ``select`` turns into
    a skip.
    """
    results = {}
    for combination in combinations:
        gc.collect()
        try:
            results[combination] = asyncio.run(measure(*combination))
        except NotImplementedError as exc:
            results[combination] = (_UNAVAILABLE, str(exc))
        except Exception as exc:  # reported by setup for this combination only
            results[combination] = f"{type(exc).__name__}: {exc}"
    return results


def select(cache, combination):
    """Return the cached result of ``combination``, raising as setup must for a skip or failure."""
    result = cache[combination]
    if isinstance(result, tuple) and result and result[0] == _UNAVAILABLE:
        raise NotImplementedError(result[1])
    if isinstance(result, str):
        raise RuntimeError(f"measurement failed for {combination!r}: {result}")
    return result


async def sleep_until_next_tick(loop, origin, interval):
    """Sleep until the next point of the grid ``origin + k * interval`` that is still ahead."""
    index = math.floor((loop.time() - origin) / interval) + 1
    waiter = loop.create_future()
    handle = loop.call_at(origin + index * interval, _resolve, waiter)
    try:
        await waiter
    finally:
        handle.cancel()


def _resolve(waiter):
    if not waiter.done():
        waiter.set_result(None)


async def _run_crashes(level, crash_cycle):
    """Run ``crash_cycle()`` on the grid under ``level``; return per-batch percentiles in seconds."""
    restarts = []
    round_trips = []
    loop = asyncio.get_running_loop()
    interval = CRASH_INTERVALS[level]
    total = RESTART_WARMUP + RESTART_BATCH * RESTART_BATCHES
    async with Load(level):
        origin = loop.time()
        for _ in range(total):
            await sleep_until_next_tick(loop, origin, interval)
            restart_ns, round_trip_ns = await crash_cycle()
            restarts.append(restart_ns / 1e9)
            round_trips.append(round_trip_ns / 1e9)
    return {
        "restart": batch_percentiles(restarts[RESTART_WARMUP:], RESTART_BATCH),
        "round_trip": batch_percentiles(round_trips[RESTART_WARMUP:], RESTART_BATCH),
    }


# ---------------------------------------------------------------------------- restart latency


async def measure_actor_restarts(level):
    """Crash a supervised worker actor on the grid; return restart and round-trip percentiles."""
    Supervisor, ActorRef = _restart.require("Supervisor", "ActorRef")
    probe = _RestartProbe()
    ref = ActorRef(TableWorker, name="bench-actor", args=(probe,))
    supervisor = Supervisor(
        [ref.child_spec()],
        max_restarts=_restart.MAX_RESTARTS,
        max_seconds=_restart.MAX_SECONDS,
        name="bench",
    )

    async def crash_cycle():
        ref.tell(_CRASH)
        sent_ns = time.perf_counter_ns()
        await ref.ask(_PROBE, timeout=None)
        replied_ns = time.perf_counter_ns()
        return probe.first_message_ns - probe.failed_at_ns, replied_ns - sent_ns

    await supervisor.start()
    try:
        return await _run_crashes(level, crash_cycle)
    finally:
        await supervisor.stop()


async def _bare_actor_loop(probe, inbox):
    # The baseline restart: re-create the instance in the same task and go on reading.
    while True:
        instance = TableWorker(probe)
        await instance.on_start()
        try:
            while True:
                message, reply = await inbox.get()
                result = await instance.receive(message)
                if reply is not None and not reply.done():
                    reply.set_result(result)
        except _InjectedCrash:
            pass


async def measure_bare_restarts(level):
    """The same crashes against the bare loop; return restart and round-trip percentiles."""
    probe = _RestartProbe()
    inbox = asyncio.Queue()
    task = asyncio.create_task(_bare_actor_loop(probe, inbox))
    loop = asyncio.get_running_loop()

    async def crash_cycle():
        inbox.put_nowait((_CRASH, None))
        sent_ns = time.perf_counter_ns()
        reply = loop.create_future()
        inbox.put_nowait((_PROBE, reply))
        await reply
        replied_ns = time.perf_counter_ns()
        return probe.first_message_ns - probe.failed_at_ns, replied_ns - sent_ns

    try:
        return await _run_crashes(level, crash_cycle)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class ActorRestartLatency:
    """Worker-actor restart latency and the round trip of an ask sent during the restart.

    ``setup_cache`` measures every load once per asv run (about 6 s on 2 cores) and
    the ``track_`` benchmarks read their statistic from it, one sample per batch of
    40 restarts, in asv's samples form.
    """

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 180
    version = 1

    def setup_cache(self):
        return measure_all(measure_actor_restarts, [(load,) for load in LOADS])

    def setup(self, cache, load):
        _restart.require("Supervisor", "ActorRef")
        self.batches = select(cache, (load,))

    def track_restart_p50(self, cache, load):
        return samples_form(self.batches["restart"]["p50"])

    def track_restart_p95(self, cache, load):
        return samples_form(self.batches["restart"]["p95"])

    def track_restart_p99(self, cache, load):
        return samples_form(self.batches["restart"]["p99"])

    def track_restart_max(self, cache, load):
        return samples_form(self.batches["restart"]["max"])

    def track_round_trip_p50(self, cache, load):
        return samples_form(self.batches["round_trip"]["p50"])

    def track_round_trip_p99(self, cache, load):
        return samples_form(self.batches["round_trip"]["p99"])


class BareActorRestartLatency:
    """Baseline for ``ActorRestartLatency``: the same actor re-created in a bare loop."""

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 180
    version = 1

    def setup_cache(self):
        return measure_all(measure_bare_restarts, [(load,) for load in LOADS])

    def setup(self, cache, load):
        self.batches = select(cache, (load,))

    def track_restart_p50(self, cache, load):
        return samples_form(self.batches["restart"]["p50"])

    def track_restart_p99(self, cache, load):
        return samples_form(self.batches["restart"]["p99"])

    def track_round_trip_p50(self, cache, load):
        return samples_form(self.batches["round_trip"]["p50"])

    def track_round_trip_p99(self, cache, load):
        return samples_form(self.batches["round_trip"]["p99"])


# ---------------------------------------------------------------------------- messaging


async def _time_messaging(level, ask, send, sync):
    """Return seconds per ask and per sent message, one value per batch, under ``level``."""
    ask_seconds = []
    send_seconds = []
    async with Load(level):
        await ask("key-1")  # first use outside the batches
        for _ in range(MESSAGE_BATCHES):
            start = time.perf_counter_ns()
            for _ in range(ASK_BATCH):
                await ask("key-1")
            ask_seconds.append((time.perf_counter_ns() - start) / 1e9 / ASK_BATCH)

            start = time.perf_counter_ns()
            for index in range(SEND_BATCH):
                await send(index)
            await sync()
            send_seconds.append((time.perf_counter_ns() - start) / 1e9 / SEND_BATCH)
    return {"ask": ask_seconds, "send": send_seconds}


async def measure_actor_messaging(level):
    """Time ask round trips and sent messages through a supervised actor."""
    Supervisor, ActorRef = _restart.require("Supervisor", "ActorRef")
    ref = ActorRef(TableWorker, name="bench-actor", args=(_RestartProbe(),))
    supervisor = Supervisor([ref.child_spec()], name="bench")

    async def ask(message):
        return await ref.ask(message, timeout=None)

    async def sync():
        await ref.ask(_PROBE, timeout=None)

    await supervisor.start()
    try:
        return await _time_messaging(level, ask, ref.send, sync)
    finally:
        await supervisor.stop()


async def _bare_worker(table, inbox):
    while True:
        message, reply = await inbox.get()
        result = table.get(message)
        if reply is not None:
            reply.set_result(result)


async def measure_bare_messaging(level):
    """Time the same traffic through a bare asyncio.Queue worker that replies with futures."""
    loop = asyncio.get_running_loop()
    inbox = asyncio.Queue(maxsize=1000)  # the actor's default mailbox size
    table = {f"key-{index}": index for index in range(TABLE_SIZE)}
    task = asyncio.create_task(_bare_worker(table, inbox))

    async def ask(message):
        reply = loop.create_future()
        await inbox.put((message, reply))
        return await reply

    async def send(message):
        await inbox.put((message, None))

    async def sync():
        await ask(_PROBE)

    try:
        return await _time_messaging(level, ask, send, sync)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class ActorMessaging:
    """Seconds per ``ask()`` round trip and per message sent with ``send()``, by load.

    The send figure includes the final ask that waits until the actor has handled
    all 5,000 messages of a batch. One sample per batch, 10 batches.
    """

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 120
    version = 1

    def setup_cache(self):
        return measure_all(measure_actor_messaging, [(load,) for load in LOADS])

    def setup(self, cache, load):
        _restart.require("Supervisor", "ActorRef")
        self.seconds = select(cache, (load,))

    def track_ask_round_trip(self, cache, load):
        return samples_form(self.seconds["ask"])

    def track_send_per_message(self, cache, load):
        return samples_form(self.seconds["send"])


class BareMessaging:
    """Baseline for ``ActorMessaging``: an asyncio.Queue worker with reply futures."""

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 120
    version = 1

    def setup_cache(self):
        return measure_all(measure_bare_messaging, [(load,) for load in LOADS])

    def setup(self, cache, load):
        self.seconds = select(cache, (load,))

    def track_ask_round_trip(self, cache, load):
        return samples_form(self.seconds["ask"])

    def track_send_per_message(self, cache, load):
        return samples_form(self.seconds["send"])
