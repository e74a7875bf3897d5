"""Restart latency of a one_for_one child, beside the bare-coroutine baseline.

Latency runs from the failing child's ``perf_counter_ns()`` just before it
raises to its replacement's ``perf_counter_ns()`` just before it reports ready;
``_restart.py`` describes the crash schedule and ``_load.py`` the load levels.

Each ``track_`` benchmark returns one value per batch of restarts
(``_restart.BATCHES`` batches of ``_restart.BATCH_SIZE``) in asv's samples
form, so asv stores the spread and ``asv compare`` can test whether a change is
significant. The value asv shows is the median of the batches.
"""

import asyncio

from . import _restart
from ._load import LOAD_LEVELS
from ._stats import samples_form

LOADS = list(LOAD_LEVELS)

# From one child to 10,000: a one_for_one restart should cost the same at any
# size. Starting and stopping 10,000 idle children took about 0.3 s on a 2-core
# sandbox (CPython 3.11.7), small beside the crash schedule.
CHILD_COUNTS = [1, 10, 100, 1000, 10000]

_UNAVAILABLE = "unavailable"


def _measure_grid(measure, combinations, loop_factory=None):
    """Measure every combination; return ``{combination: result}``.

    A result is the per-batch percentiles, an error message (str) for a failed
    combination, or ``(_UNAVAILABLE, message)`` if this commit of
    ``supervisor`` lacks the API, which setup turns into a skip.
    ``loop_factory`` creates each event loop (asyncio's default if None).
    """
    results = {}
    for combination in combinations:
        try:
            results[combination] = _restart.run_measurement(
                measure, *combination, _restart.BATCH_SIZE * _restart.BATCHES, loop_factory=loop_factory
            )
        except NotImplementedError as exc:
            results[combination] = (_UNAVAILABLE, str(exc))
    return results


def _select(cache, combination):
    result = cache[combination]
    if isinstance(result, tuple) and result[0] == _UNAVAILABLE:
        raise NotImplementedError(result[1])
    if isinstance(result, str):
        raise RuntimeError(f"measurement failed for {combination!r}: {result}")
    return result


class OneForOneRestartLatency:
    """Restart latency of one_for_one children, by load level and child count.

    ``setup_cache`` measures all 15 combinations once per asv run, and the
    four ``track_`` benchmarks read their statistic from it. The crash
    schedules alone take 1 s per combination idle and light and 2 s heavy, so
    about 20 s in all.
    """

    params = (LOADS, CHILD_COUNTS)
    param_names = ("load", "children")
    unit = "seconds"
    timeout = 600
    # Bump when a change to the measurement makes old results incomparable.
    version = 1

    def setup_cache(self):
        combinations = [(load, children) for load in LOADS for children in CHILD_COUNTS]
        return _measure_grid(_restart.measure_supervised, combinations)

    def setup(self, cache, load, children):
        self.batches = _select(cache, (load, children))

    def track_p50(self, cache, load, children):
        return samples_form(self.batches["p50"])

    def track_p95(self, cache, load, children):
        return samples_form(self.batches["p95"])

    def track_p99(self, cache, load, children):
        return samples_form(self.batches["p99"])

    def track_max(self, cache, load, children):
        return samples_form(self.batches["max"])


class BareRerunLatency:
    """Baseline: a bare coroutine re-run in the same task after it raised.

    Same child code, crash schedule, batches and load levels as
    ``OneForOneRestartLatency``, but no supervisor and no new task: the cost of
    the restart that the interpreter itself allows. The child count does not
    apply, because there is only the one coroutine.
    """

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 300
    version = 1

    def setup_cache(self):
        return _measure_grid(_restart.measure_bare, [(load,) for load in LOADS])

    def setup(self, cache, load):
        self.batches = _select(cache, (load,))

    def track_p50(self, cache, load):
        return samples_form(self.batches["p50"])

    def track_p95(self, cache, load):
        return samples_form(self.batches["p95"])

    def track_p99(self, cache, load):
        return samples_form(self.batches["p99"])

    def track_max(self, cache, load):
        return samples_form(self.batches["max"])


class RestartCycle:
    """Wall time of one one_for_one restart cycle with no load.

    A cycle crashes the middle child and returns once its replacement is
    ready, measured by asv's timer around ``run_until_complete``, so it
    includes one entry into and exit from the event loop. asv re-runs setup,
    which starts N children, before every timed call; 10,000 children keep
    this class under 10 s.
    """

    params = ([1, 100, 10000],)
    param_names = ("children",)
    timeout = 180
    version = 1

    def setup(self, children):
        Supervisor, ChildSpec = _restart.require("Supervisor", "ChildSpec")
        self.loop = asyncio.new_event_loop()
        self.probe = _restart.RestartProbe(children)
        self.victim = children // 2
        specs = [
            ChildSpec(
                f"child-{slot}",
                _restart.supervised_child,
                args=(self.probe, slot),
                signals_ready=True,
            )
            for slot in range(children)
        ]
        self.supervisor = Supervisor(
            specs,
            strategy="one_for_one",
            max_restarts=_restart.MAX_RESTARTS,
            max_seconds=_restart.MAX_SECONDS,
            name="bench",
        )
        self.loop.run_until_complete(self.supervisor.start())

        # One untimed cycle first: the first loop pass after start() pays for
        # start-up leftovers (asyncio purges the cancelled start_timeout timers
        # of all N children from its heap), which is not restart work.
        self.loop.run_until_complete(self._cycle())

    def teardown(self, children):
        try:
            self.loop.run_until_complete(self.supervisor.stop())
        finally:
            self.loop.close()

    async def _cycle(self):
        ready = self.probe.wait_for_readies(1)
        if not self.probe.crash(self.victim):
            raise RuntimeError(f"child-{self.victim} was not ready to crash")
        await ready

    def time_one_for_one(self, children):
        self.loop.run_until_complete(self._cycle())


class BareRerunCycle:
    """Baseline for ``RestartCycle``: crash a bare coroutine and wait until it runs again."""

    timeout = 60
    version = 1

    def setup(self):
        self.loop = asyncio.new_event_loop()
        self.probe = _restart.RestartProbe(1)
        self.task = self.loop.run_until_complete(self._start())
        self.loop.run_until_complete(self._cycle())

    async def _start(self):
        ready = self.probe.wait_for_readies(1)
        task = asyncio.create_task(_restart.rerun_bare_child(self.probe))
        await ready
        return task

    def teardown(self):
        try:
            self.task.cancel()
            self.loop.run_until_complete(asyncio.gather(self.task, return_exceptions=True))
        finally:
            self.loop.close()

    async def _cycle(self):
        ready = self.probe.wait_for_readies(1)
        if not self.probe.crash(0):
            raise RuntimeError("the bare child was not ready to crash")
        await ready

    def time_bare_rerun(self):
        self.loop.run_until_complete(self._cycle())
