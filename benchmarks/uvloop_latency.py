"""Restart latency on uvloop's event loop, beside the bare baseline on the same loop.

uvloop is an optional extra (``pip install 'asyncio-supervisor[uvloop]'``): the library never
requires it. The asv environments install it (``asv.conf.json``'s matrix), so every commit is
measured on both loops; where uvloop cannot be imported, every benchmark here is skipped.
Only 1 and 10,000 children are measured, the two ends of the main suite's range, to keep the
run short.
"""

from . import _restart, restart_latency
from ._load import LOAD_LEVELS
from ._stats import samples_form
from .restart_latency import _UNAVAILABLE, _select

LOADS = list(LOAD_LEVELS)
CHILD_COUNTS = [1, 10000]


def _uvloop_factory():
    try:
        import uvloop
    except ImportError as exc:
        raise NotImplementedError(f"uvloop is not installed: {exc}") from exc
    return uvloop.new_event_loop


def _measure_grid(measure, combinations):
    try:
        loop_factory = _uvloop_factory()
    except NotImplementedError as exc:
        return {combination: (_UNAVAILABLE, str(exc)) for combination in combinations}
    return restart_latency._measure_grid(measure, combinations, loop_factory=loop_factory)


class UvloopRestartLatency:
    """One_for_one restart latency on uvloop, by load level and child count."""

    params = (LOADS, CHILD_COUNTS)
    param_names = ("load", "children")
    unit = "seconds"
    timeout = 300
    version = 1

    def setup_cache(self):
        combinations = [(load, children) for load in LOADS for children in CHILD_COUNTS]
        return _measure_grid(_restart.measure_supervised, combinations)

    def setup(self, cache, load, children):
        self.batches = _select(cache, (load, children))

    def track_p50(self, cache, load, children):
        return samples_form(self.batches["p50"])

    def track_p99(self, cache, load, children):
        return samples_form(self.batches["p99"])


class UvloopBareRerunLatency:
    """Baseline on uvloop: a bare coroutine re-run in the same task after it raised."""

    params = (LOADS,)
    param_names = ("load",)
    unit = "seconds"
    timeout = 120
    version = 1

    def setup_cache(self):
        return _measure_grid(_restart.measure_bare, [(load,) for load in LOADS])

    def setup(self, cache, load):
        self.batches = _select(cache, (load,))

    def track_p50(self, cache, load):
        return samples_form(self.batches["p50"])

    def track_p99(self, cache, load):
        return samples_form(self.batches["p99"])
