"""Restart intensity: at most max_restarts restarts within a sliding window of max_seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import traceback

import pytest

from supervisor import (
    Backoff,
    ChildExited,
    ChildReady,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    IntensityExceeded,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorStopped,
)
from supervisor.testing import VirtualClock, settle

from conftest import EventLog, start_all


async def crash_and_wait_restart(probe, events, child_id):
    """Crash ``child_id`` and wait until its next generation is ready."""
    ready_before = events.count(ChildReady, child_id)
    probe.crash(child_id)
    await events.wait_for(ChildReady, child_id, count=ready_before + 1)


async def test_intensity_default_allows_three_restarts(clock, probe):
    """Three crashes within five seconds are all restarted under the default limits."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    for _ in range(3):
        await crash_and_wait_restart(probe, events, "a")
        clock.advance(1.0)
    await settle()

    assert probe.starts["a"] == 4
    assert events.count(IntensityExceeded) == 0
    await supervisor.stop()


async def test_intensity_breach_on_fourth_restart(clock, probe):
    """A fourth crash within five seconds fails the supervisor, naming offender, count and reason."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")], clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    for _ in range(3):
        await crash_and_wait_restart(probe, events, "b")
        clock.advance(1.0)
    probe.log.clear()

    last_error = RuntimeError("fourth crash")
    probe.crash("b", last_error)
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert info.value.offender == "b"
    assert info.value.restarts == 4
    assert info.value.reason is last_error
    assert info.value.max_restarts == 3
    assert info.value.max_seconds == 5.0
    breach = events.select(IntensityExceeded)
    assert len(breach) == 1
    assert breach[0].child_id == "b"
    assert events.time_of(breach[0]) == 3.0
    assert probe.log == [("crash", "b"), ("stop", "c"), ("stop", "a")]


async def test_intensity_breach_stops_before_reporting(clock, probe):
    """The breach event comes before the stops, and SupervisorStopped carries the error last."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b")], max_restarts=0, clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    first_new_event = len(events.events)

    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert events.kinds()[first_new_event:] == [
        ("ChildExited", "a"),
        ("IntensityExceeded", "a"),
        ("ChildStopped", "b"),
        ("SupervisorStopped", None),
    ]
    assert events.events[-1].reason is info.value


async def test_intensity_window_slides(clock, probe):
    """Restarts older than max_seconds no longer count, so only a burst inside the window fails."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)
    for _ in range(3):
        await crash_and_wait_restart(probe, events, "a")
        clock.advance(1.0)

    # Restarts happened at 0, 1 and 2. At 5.5 the one at 0 has left the window.
    clock.advance(2.5)
    await crash_and_wait_restart(probe, events, "a")

    assert probe.starts["a"] == 5
    assert events.count(IntensityExceeded) == 0

    # At 5.75 the window contains the restarts at 1, 2, 5.5 and this one.
    clock.advance(0.25)
    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert info.value.restarts == 4
    assert events.time_of(events.select(IntensityExceeded)[0]) == 5.75


async def test_intensity_counts_all_children(clock, probe):
    """Restarts of different children share one window."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")], clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    for child_id in ("a", "b", "c"):
        await crash_and_wait_restart(probe, events, child_id)

    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert info.value.offender == "a"
    assert info.value.restarts == 4


async def test_zero_max_restarts_fails_on_first_crash(clock, probe):
    """With max_restarts=0 the first crash fails the supervisor and nothing is restarted."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], max_restarts=0, clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert info.value.offender == "a"
    assert info.value.restarts == 1
    assert probe.starts["a"] == 1


async def test_permanent_normal_returns_count_toward_intensity(clock, probe):
    """Normal returns of a permanent child are restarts too, and can breach the limit."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)
    for generation in range(2, 5):
        probe.finish("a")
        await events.wait_for(ChildReady, "a", count=generation)

    probe.finish("a")
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert info.value.offender == "a"
    assert info.value.reason is None
    assert info.value.__cause__ is None


async def test_intensity_error_chains_last_reason(clock, probe):
    """The intensity error has the offender's last exit reason as __cause__, so a traceback shows both."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], max_restarts=0, clock=clock, on_event=events)
    await start_all(supervisor, events)
    error = RuntimeError("disk full")

    probe.crash("a", error)
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert info.value.__cause__ is error
    printed = "".join(traceback.format_exception(info.value))
    assert "RuntimeError: disk full" in printed
    assert "direct cause of the following exception" in printed


async def test_intensity_error_during_start_keeps_cause(clock, probe):
    """A breach while start() waits for a later child: start() raises the intensity error with its cause."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", signals_ready=True)], max_restarts=0, clock=clock, on_event=events
    )
    probe.hold_ready("b")
    starting = asyncio.create_task(supervisor.start())
    await events.wait_for(ChildStarted, "b")
    error = RuntimeError("disk full")

    probe.crash("a", error)
    with pytest.raises(RestartIntensityExceeded) as info:
        await starting

    assert info.value.offender == "a"
    assert info.value.__cause__ is error
    assert supervisor.state == "failed"


async def test_one_for_all_group_restart_counts_once(clock, probe):
    """A group restart of three children counts as one restart, not three."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    for generation in range(2, 5):
        probe.crash("b")
        await events.wait_for(ChildReady, "c", count=generation)
    await settle()

    assert events.count(IntensityExceeded) == 0
    assert probe.starts == {"a": 4, "b": 4, "c": 4}
    await supervisor.stop()


async def test_top_level_run_raises_intensity_error(clock, probe):
    """run() of a top-level supervisor raises the breach to its caller."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], max_restarts=0, clock=clock, on_event=events)

    async def crash_when_ready():
        await events.wait_for(ChildReady, "a")
        probe.crash("a")

    crasher = asyncio.create_task(crash_when_ready())
    with pytest.raises(RestartIntensityExceeded):
        await supervisor.run()
    await crasher

    assert isinstance(events.events[-1], SupervisorStopped)


async def test_nested_breach_is_parent_child_crash(clock, probe):
    """A nested supervisor that breaches its limit exits abnormally and its parent restarts it."""
    inner_events = EventLog(clock)

    async def run_inner(task_status):
        inner = Supervisor(
            [probe.spec("worker")], name="inner", max_restarts=0, clock=clock, on_event=inner_events
        )
        await inner.run(task_status=task_status)

    outer_events = EventLog(clock)
    outer = Supervisor(
        [ChildSpec("inner", run_inner, type="supervisor", signals_ready=True)],
        name="outer",
        clock=clock,
        on_event=outer_events,
    )
    await start_all(outer, outer_events)
    await inner_events.wait_for(ChildReady, "worker")

    probe.crash("worker")
    exited = await outer_events.wait_for(ChildExited, "inner")
    ready = await outer_events.wait_for(ChildReady, "inner", count=2)
    await inner_events.wait_for(ChildReady, "worker", count=2)

    assert isinstance(exited.reason, RestartIntensityExceeded)
    assert exited.reason.offender == "worker"
    assert exited.abnormal is True
    assert ready.generation == 2
    assert probe.starts["worker"] == 2
    assert outer_events.count(IntensityExceeded) == 0
    await outer.stop()


async def test_nested_breach_chain_names_offenders(clock, probe):
    """When both levels breach, the top-level error lists the offender at each level."""
    inner_events = EventLog(clock)

    async def run_inner(task_status):
        inner = Supervisor(
            [probe.spec("worker")], name="inner", max_restarts=0, clock=clock, on_event=inner_events
        )
        await inner.run(task_status=task_status)

    outer_events = EventLog(clock)
    outer = Supervisor(
        [ChildSpec("inner", run_inner, type="supervisor", signals_ready=True)],
        name="outer",
        max_restarts=0,
        clock=clock,
        on_event=outer_events,
    )
    await start_all(outer, outer_events)
    await inner_events.wait_for(ChildReady, "worker")

    probe.crash("worker")
    with pytest.raises(RestartIntensityExceeded) as info:
        await outer.wait()

    assert info.value.offender == "inner"
    assert info.value.offenders == [("outer", "inner"), ("inner", "worker")]


async def test_restart_exactly_max_seconds_ago_counts(clock, probe):
    """A restart exactly max_seconds before the current one is still inside the window, as in OTP."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)
    for _ in range(3):
        await crash_and_wait_restart(probe, events, "a")
        clock.advance(1.0)

    # Restarts happened at 0, 1 and 2; the one at 0 is exactly 5 seconds before 5.0.
    clock.advance(2.0)
    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert info.value.restarts == 4
    assert events.time_of(events.select(IntensityExceeded)[0]) == 5.0


@pytest.mark.parametrize(
    ("start", "max_seconds"),
    [
        pytest.param(0.2, 5.0, id="now-max_seconds-rounds-down"),  # 5.2 - 5.0 > 0.2
        pytest.param(0.5, 0.3, id="now-when-rounds-up"),  # 0.8 - 0.5 > 0.3
    ],
)
async def test_window_edge_survives_rounding(probe, start, max_seconds):
    """A restart exactly max_seconds ago still counts at clock values where a difference rounds."""
    clock = VirtualClock(start)
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a")], max_restarts=1, max_seconds=max_seconds, clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    await crash_and_wait_restart(probe, events, "a")
    clock.advance(max_seconds)

    [info] = supervisor.which_children()
    assert info.intensity.restarts == 1
    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as raised:
        await supervisor.wait()
    assert raised.value.restarts == 2


async def test_parallel_start_failure_counts_at_exit(clock, probe):
    """A child failing before it is ready in a parallel group restart counts when it failed, not when seen."""
    events = EventLog(clock)

    async def fragile(task_status):
        if task_status.generation == 2:
            raise RuntimeError("fragile failed before it was ready")
        task_status.started()
        await asyncio.Event().wait()

    supervisor = Supervisor(
        [probe.spec("a", signals_ready=True, start_timeout=None), ChildSpec("fragile", fragile, signals_ready=True)],
        strategy="one_for_all", parallel_group_restart=True, max_restarts=1, max_seconds=5.0,
        clock=clock, on_event=events,
    )
    await start_all(supervisor, events)
    probe.hold_ready("a")
    probe.crash("a")
    exited = await events.wait_for(ChildExited, "fragile", generation=2)
    assert events.time_of(exited) == 0.0

    # a becomes ready 6 s later, and only then does the group restart reach fragile's
    # failure. Both restarts happened at 0 s, so they are two within 5 s.
    await clock.advance_and_settle(6.0)
    probe.allow_ready("a")
    with pytest.raises(RestartIntensityExceeded) as raised:
        await supervisor.wait()
    assert raised.value.offender == "fragile"


async def test_queued_group_restart_counts_at_its_exit(clock, probe):
    """A group restart queued behind another one's delay counts at its child's exit, not after."""
    events = EventLog(clock)
    backoff = Backoff(initial=10.0, maximum=10.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", backoff=backoff)],
        strategy="rest_for_one", max_restarts=1, max_seconds=5.0, clock=clock, on_event=events,
    )
    await start_all(supervisor, events)
    probe.crash("b")
    await events.wait_for(ChildRestarting, "b")
    clock.advance(1.0)
    probe.crash("a")
    await events.wait_for(ChildExited, "a")

    # Two exits one second apart are two restarts within five seconds, while b still waits.
    await clock.advance_and_settle(9.0)
    with pytest.raises(RestartIntensityExceeded) as raised:
        await supervisor.wait()
    assert raised.value.offender == "a"
    assert events.time_of(events.select(IntensityExceeded)[0]) == 10.0


async def test_child_spec_runs_nested_supervisor(clock, probe):
    """A spec from child_spec() runs the same supervisor object again after it breached."""
    inner_events = EventLog(clock)
    inner = Supervisor(
        [probe.spec("worker")], name="inner", max_restarts=0, clock=clock, on_event=inner_events
    )
    spec = inner.child_spec()

    assert spec.id == "inner"
    assert str(spec.type) == "supervisor"
    assert spec.signals_ready is True

    outer_events = EventLog(clock)
    outer = Supervisor([spec], name="outer", clock=clock, on_event=outer_events)
    await start_all(outer, outer_events)
    await inner_events.wait_for(ChildReady, "worker")

    probe.crash("worker")
    await outer_events.wait_for(ChildReady, "inner", count=2)
    await inner_events.wait_for(ChildReady, "worker", count=2)

    assert inner.state == "running"
    assert probe.starts["worker"] == 2
    await outer.stop()

    assert inner.state == "stopped"


async def test_async_with_breach_interrupts_body(clock, probe):
    """A breach inside `async with` interrupts the body and raises the error from the block."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], max_restarts=0, clock=clock, on_event=events)
    body_finished = False

    with pytest.raises(RestartIntensityExceeded) as info:
        async with supervisor:
            await events.wait_for(ChildReady, "a")
            probe.crash("a")
            await asyncio.get_running_loop().create_future()
            body_finished = True

    assert info.value.offender == "a"
    assert body_finished is False
    assert asyncio.current_task().cancelling() == 0


async def test_async_with_body_error_named_beside_breach(clock, probe):
    """A body that raises its own error while being interrupted: the failure is raised and names that error."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], max_restarts=0, clock=clock, on_event=events)

    with pytest.raises(RestartIntensityExceeded) as info:
        async with supervisor:
            await events.wait_for(ChildReady, "a")
            probe.crash("a")
            try:
                await asyncio.get_running_loop().create_future()
            finally:
                raise KeyError("cleanup failed")

    assert isinstance(info.value.__context__, KeyError)
    assert info.value.__notes__ == [
        "the body of async with raised KeyError('cleanup failed') while the supervisor failed"
    ]


async def test_async_with_breach_during_start_raises_failure():
    """A breach while ``async with`` is still starting: the failure is raised, the caller is not left cancelled."""

    async def crash_after_ready(task_status):
        task_status.started()
        raise RuntimeError("boom")

    supervisor = Supervisor([ChildSpec("crasher", crash_after_ready, signals_ready=True)], max_restarts=1)
    entered = False

    with pytest.raises(RestartIntensityExceeded) as raised:
        async with supervisor:
            entered = True

    assert raised.value.offender == "crasher"
    assert entered is False
    assert asyncio.current_task().cancelling() == 0
    assert supervisor.state == "failed"


def test_intensity_message_wording():
    """One restart is "1 restart", and a normal return reads as one, not as "exited with None"."""
    single_restart = RestartIntensityExceeded("sup", "a", 1, 0, 5.0, None)
    assert "1 restart within 5.0 s" in str(single_restart)
    assert "offender 'a' returned" in str(single_restart)
    lifetime = RestartIntensityExceeded("sup", "a", 4, 3, None, RuntimeError("x"))
    assert "exited with RuntimeError('x') after 3 restarts" in str(lifetime)


class LoopPasses:
    """A task that counts the passes of the event loop it gets, until cancelled."""

    def __init__(self) -> None:
        self.count = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


async def crash_loop(clock, generations, lifetime=0.0, on_event=None, signals_ready=False):
    """Run a child that fails before its first await; return the loop passes between its first and last start.

    Each generation moves the virtual clock by ``lifetime`` before it raises. The restart
    intensity allows far more restarts than the test makes.
    """
    starts = 0
    passes_at_first = None
    passes_at_end = asyncio.get_running_loop().create_future()
    passes = LoopPasses()

    async def child(task_status=None):
        nonlocal starts, passes_at_first
        starts += 1
        if task_status is not None:
            task_status.started()
        if starts == 1:
            passes_at_first = passes.count
        if starts == generations:
            passes_at_end.set_result(passes.count - passes_at_first)
            await asyncio.Event().wait()
        clock.advance(lifetime)
        raise RuntimeError("fails at once")

    supervisor = Supervisor(
        [ChildSpec("spinner", child, signals_ready=signals_ready)], max_restarts=10**6,
        max_seconds=1.0, clock=clock, on_event=on_event,
    )
    await supervisor.start()
    try:
        seen = await passes_at_end
        [info] = supervisor.which_children()
        assert info.restarts == generations - 1
        return seen
    finally:
        passes.task.cancel()
        await supervisor.stop()


async def test_quick_crash_loop_yields_to_event_loop(clock):
    """A child failing before any await still lets other tasks run between its restarts."""
    from supervisor._supervisor import QUICK_RESTARTS

    passes = await crash_loop(clock, generations=10 * QUICK_RESTARTS + 1)

    # One yield per QUICK_RESTARTS quick exits.
    assert passes >= 9


@pytest.mark.parametrize("signals_ready", [False, True])
async def test_slow_listener_keeps_quick_yield(clock, signals_ready):
    """Time the supervisor spends in a listener does not make a quick child look slow.

    With signals_ready, the ChildReady listeners run inside the child's started() call.
    """
    from supervisor._supervisor import QUICK_EXIT, QUICK_RESTARTS

    def slow_listener(event):
        clock.advance(10 * QUICK_EXIT)

    passes = await crash_loop(
        clock, generations=10 * QUICK_RESTARTS + 1, on_event=slow_listener,
        signals_ready=signals_ready,
    )

    assert passes >= 9


async def test_slow_generations_restart_without_yield(clock):
    """Generations that live longer than QUICK_EXIT restart with no pass through the loop."""
    from supervisor._supervisor import QUICK_EXIT, QUICK_RESTARTS

    passes = await crash_loop(clock, generations=3 * QUICK_RESTARTS, lifetime=2 * QUICK_EXIT)

    assert passes == 0


SPINNING_SERVICE = textwrap.dedent("""
    import asyncio, logging, signal, sys
    from supervisor import ChildSpec, Supervisor

    # A shell that starts a job in the background makes it ignore SIGINT, and children inherit
    # that; asyncio.run() then leaves Ctrl-C alone. Restore Python's own handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.disable(logging.CRITICAL)
    starts = 0

    async def child():
        global starts
        starts += 1
        if starts == 1000:
            print("spinning", flush=True)
        raise RuntimeError("fails at once")

    async def main():
        async with Supervisor([ChildSpec("spinner", child)], max_restarts=10**9, max_seconds=1.0):
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print(f"interrupted, more than 1000 starts: {starts > 1000}", flush=True)
""")


def test_interrupt_ends_quick_crash_loop(tmp_path):
    """Ctrl-C reaches asyncio.run() while a child fails before its first await, over and over."""
    script = tmp_path / "service.py"
    script.write_text(SPINNING_SERVICE)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
    ) as process:
        try:
            assert process.stdout.readline() == "spinning\n"
            process.send_signal(signal.SIGINT)
            # A hang guard, not a speed bound: before the fix the loop never ran again.
            output, errors = process.communicate(timeout=50)
        finally:
            process.kill()
    assert process.returncode == 0, errors
    assert output == "interrupted, more than 1000 starts: True\n"
