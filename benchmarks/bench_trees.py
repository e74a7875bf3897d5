"""Supervision trees: dynamic supervisor restart latency and escalation through three levels.

``DynamicRestartLatency`` runs the crash schedule of ``_restart.py`` against 10,000 children
started one by one with ``DynamicSupervisor.start_child()``, beside the same schedule against
a plain one_for_one ``Supervisor`` of 10,000 children, so every run shows what the dynamic
supervisor costs as a ratio.

``EscalationLatency`` builds a three-level tree whose supervisors all have
``max_restarts=0`` and crashes the leaf worker. Latency runs from the worker's
``perf_counter_ns()`` just before it raises to the root owner's ``perf_counter_ns()`` just
after ``root.wait()`` raised ``RestartIntensityExceeded``. It includes stopping every sibling
at each level in reverse order, as a real escalation does.
"""

import asyncio
import gc
import time

from . import _restart
from ._stats import batch_percentiles, samples_form

_UNAVAILABLE = "unavailable"

# 10,000 children, the largest size of the one_for_one suite. Starting them one by one
# with start_child() took about 0.4 s on a 2-core sandbox (CPython 3.11.7).
DYNAMIC_CHILDREN = 10_000
DYNAMIC_LOADS = ["idle", "heavy"]
DYNAMIC_KINDS = ["dynamic", "static"]

# Escalations per batch and batches: each escalation builds and starts a fresh tree, so 400
# of them at 100 siblings per level (120,000 child starts) stay within a few seconds.
ESCALATION_BATCH_SIZE = 20
ESCALATION_BATCHES = 20
ESCALATION_WARMUP = 5
SIBLINGS = [1, 100]


async def measure_dynamic(level, children, restarts, seed=_restart.SEED):
    """Return restart latencies (ns) of ``children`` dynamic children under ``level``."""
    DynamicSupervisor, ChildSpec = _restart.require("DynamicSupervisor", "ChildSpec")
    probe = _restart.RestartProbe(children)
    template = ChildSpec("child", _restart.supervised_child, args=(probe,), signals_ready=True)
    supervisor = DynamicSupervisor(
        template,
        max_restarts=_restart.MAX_RESTARTS,
        max_seconds=_restart.MAX_SECONDS,
        name="bench-dynamic",
    )
    await supervisor.start()
    try:
        for slot in range(children):
            await supervisor.start_child(slot)
        return await _restart._collect_latencies(
            probe, level, children, restarts, seed, failure=supervisor.wait()
        )
    finally:
        await supervisor.stop()


class _Crash(Exception):
    pass


async def _idle(*, task_status):
    task_status.started()
    await asyncio.Event().wait()


async def _crash_on(trigger, crashed_at, *, task_status):
    task_status.started()
    await trigger
    crashed_at.append(time.perf_counter_ns())
    raise _Crash()


async def _escalate_once(Supervisor, ChildSpec, RestartIntensityExceeded, siblings):
    trigger = asyncio.get_running_loop().create_future()
    crashed_at = []

    def idle_specs(level):
        return [ChildSpec(f"{level}-{n}", _idle, signals_ready=True) for n in range(siblings)]

    worker = ChildSpec("worker", _crash_on, args=(trigger, crashed_at), signals_ready=True)
    leaf = Supervisor([*idle_specs("leaf"), worker], max_restarts=0, name="leaf")
    middle = Supervisor([*idle_specs("middle"), leaf.child_spec()], max_restarts=0, name="middle")
    root = Supervisor([*idle_specs("root"), middle.child_spec()], max_restarts=0, name="root")
    await root.start()

    trigger.set_result(None)
    try:
        await root.wait()
    except RestartIntensityExceeded:
        escalated_at = time.perf_counter_ns()
    else:
        raise RuntimeError("the root stopped without an escalation")
    return escalated_at - crashed_at[0]


async def measure_escalation(siblings, escalations):
    """Return escalation latencies (ns) through a three-level tree, warm-up excluded."""
    Supervisor, ChildSpec, RestartIntensityExceeded = _restart.require(
        "Supervisor", "ChildSpec", "RestartIntensityExceeded"
    )
    if not hasattr(Supervisor, "child_spec"):
        raise NotImplementedError("Supervisor at this commit cannot run as a child (no child_spec())")
    latencies = []
    for _ in range(ESCALATION_WARMUP + escalations):
        latencies.append(await _escalate_once(Supervisor, ChildSpec, RestartIntensityExceeded, siblings))
    return latencies[ESCALATION_WARMUP:]


def _measure(cache, key, measure, *args):
    try:
        cache[key] = _restart.run_measurement(measure, *args)
    except NotImplementedError as exc:
        cache[key] = (_UNAVAILABLE, str(exc))


def _select(cache, key):
    result = cache[key]
    if isinstance(result, tuple) and result[0] == _UNAVAILABLE:
        raise NotImplementedError(result[1])
    if isinstance(result, str):
        raise RuntimeError(f"measurement failed for {key!r}: {result}")
    return result


class DynamicRestartLatency:
    """Restart latency of 10,000 dynamic children, beside 10,000 static ones, by load level.

    ``setup_cache`` runs the four schedules once per asv run: about 1 s each idle and 2 s
    heavy, plus starting the children.
    """

    params = (DYNAMIC_KINDS, DYNAMIC_LOADS)
    param_names = ("kind", "load")
    unit = "seconds"
    timeout = 300
    version = 1

    def setup_cache(self):
        restarts = _restart.BATCH_SIZE * _restart.BATCHES
        measures = {"dynamic": measure_dynamic, "static": _restart.measure_supervised}
        cache = {}
        for kind in DYNAMIC_KINDS:
            for load in DYNAMIC_LOADS:
                _measure(cache, (kind, load), measures[kind], load, DYNAMIC_CHILDREN, restarts)
        return cache

    def setup(self, cache, kind, load):
        self.batches = _select(cache, (kind, load))

    def track_p50(self, cache, kind, load):
        return samples_form(self.batches["p50"])

    def track_p99(self, cache, kind, load):
        return samples_form(self.batches["p99"])

    def track_max(self, cache, kind, load):
        return samples_form(self.batches["max"])


def _run_escalations(siblings):
    gc.collect()
    try:
        latencies_ns = asyncio.run(measure_escalation(siblings, ESCALATION_BATCH_SIZE * ESCALATION_BATCHES))
    except NotImplementedError:
        raise
    except Exception as exc:  # reported per combination by setup
        return f"{type(exc).__name__}: {exc}"
    return batch_percentiles([latency / 1e9 for latency in latencies_ns], ESCALATION_BATCH_SIZE)


class EscalationLatency:
    """Time from a leaf crash to the root owner's error, through three supervisors.

    ``siblings`` idle children sit beside the failing one at every level and are stopped
    during the escalation. Each escalation builds a fresh tree outside the measured span.
    """

    params = (SIBLINGS,)
    param_names = ("siblings",)
    unit = "seconds"
    timeout = 300
    version = 1

    def setup_cache(self):
        cache = {}
        for siblings in SIBLINGS:
            try:
                cache[siblings] = _run_escalations(siblings)
            except NotImplementedError as exc:
                cache[siblings] = (_UNAVAILABLE, str(exc))
        return cache

    def setup(self, cache, siblings):
        self.batches = _select(cache, siblings)

    def track_p50(self, cache, siblings):
        return samples_form(self.batches["p50"])

    def track_p99(self, cache, siblings):
        return samples_form(self.batches["p99"])

    def track_max(self, cache, siblings):
        return samples_form(self.batches["max"])
