"""Shutdown: cancel, wait up to the shutdown time, then give up and report."""

from __future__ import annotations

import asyncio
import logging

import pytest

from supervisor import (
    BRUTAL_KILL,
    INFINITY,
    ChildReady,
    ChildExited,
    ChildRestarting,
    ChildShutdownTimeout,
    ChildSpec,
    ChildStopped,
    Supervisor,
    SupervisorStopped,
)
from supervisor.testing import settle

from conftest import EventLog, start_all

EPSILON = 1 / 1024


async def test_cooperative_child_stops_without_timeout(clock, probe):
    """A child that lets cancellation through is stopped at once, with no timeout reported."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a", shutdown=3.0)], clock=clock, on_event=events)
    await start_all(supervisor, events)

    await supervisor.stop()

    stopped = events.select(ChildStopped, "a")
    assert len(stopped) == 1
    assert stopped[0].cause == "shutdown"
    assert stopped[0].timed_out is False
    assert events.count(ChildShutdownTimeout) == 0
    assert probe.log[-1] == ("stop", "a")


async def test_shutdown_timeout_gives_up_and_reports(clock, probe, supervisor_logs):
    """A child that ignores cancellation is abandoned after its shutdown time, and reported."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.stubborn_spec("a", shutdown=3.0)], name="sup", clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    stopping = asyncio.create_task(supervisor.stop())
    await settle()
    clock.advance(3.0 - EPSILON)
    await settle()

    assert not stopping.done()
    assert events.count(ChildShutdownTimeout) == 0

    clock.advance(EPSILON)
    await stopping

    timeout_events = events.select(ChildShutdownTimeout, "a")
    assert len(timeout_events) == 1
    assert timeout_events[0].timeout == 3.0
    assert events.time_of(timeout_events[0]) == 3.0
    assert events.select(ChildStopped, "a")[0].timed_out is True
    assert probe.log == [("start", "a"), ("ignore-cancel", "a")]
    assert any(
        "'a'" in record.getMessage() and record.levelname in ("WARNING", "ERROR")
        for record in supervisor_logs.records
    ), "the abandoned child is not logged"

    probe.release("a")
    await settle()

    assert probe.log[-1] == ("return", "a")
    assert probe.starts["a"] == 1
    assert events.count(ChildExited) == 0


async def test_shutdown_times_add_up_in_reverse_order(clock, probe):
    """Children are stopped one after another in reverse order, each getting its own shutdown time."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.stubborn_spec("a", shutdown=2.0), probe.stubborn_spec("b", shutdown=1.0)],
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    stopping = asyncio.create_task(supervisor.stop())
    await settle()
    clock.advance(1.0)
    await events.wait_for(ChildShutdownTimeout, "b")
    await settle()
    clock.advance(2.0)
    await stopping

    timeouts = events.select(ChildShutdownTimeout)
    assert [event.child_id for event in timeouts] == ["b", "a"]
    assert [events.time_of(event) for event in timeouts] == [1.0, 3.0]
    assert probe.actions("ignore-cancel") == ["b", "a"]

    probe.release("a")
    probe.release("b")


async def test_brutal_kill_does_not_wait(clock, probe):
    """With BRUTAL_KILL, stop() returns without any clock time passing and reports the child."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.stubborn_spec("a", shutdown=BRUTAL_KILL)], clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    await supervisor.stop()

    assert clock.now() == 0
    assert events.count(ChildShutdownTimeout, "a") == 1
    assert events.select(ChildStopped, "a")[0].timed_out is True
    probe.release("a")


async def test_brutal_kill_abandon_log_names_brutal_kill(clock, probe, supervisor_logs):
    """A child that survives BRUTAL_KILL is logged as such, not as missing a shutdown time of 0.0 s."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.stubborn_spec("a", shutdown=BRUTAL_KILL)], name="sup", clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    await supervisor.stop()

    [message] = [record.getMessage() for record in supervisor_logs.records if "abandoning" in record.getMessage()]
    assert "child 'a' of supervisor 'sup'" in message
    assert "BRUTAL_KILL" in message
    assert "0.0 s" not in message
    assert events.select(ChildShutdownTimeout, "a")[0].timeout == 0.0
    probe.release("a")


async def test_timed_shutdown_abandon_log_shows_time(clock, probe, supervisor_logs):
    """A child that outlives a shutdown time in seconds is logged with that time."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.stubborn_spec("a", shutdown=1.5)], name="sup", clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    stopping = asyncio.create_task(supervisor.stop())
    await settle()
    clock.advance(1.5)
    await stopping

    [message] = [record.getMessage() for record in supervisor_logs.records if "abandoning" in record.getMessage()]
    assert "shutdown time of 1.5 s" in message
    assert "BRUTAL_KILL" not in message
    probe.release("a")


async def test_brutal_kill_cooperative_child_stops(clock, probe):
    """With BRUTAL_KILL, a child that lets cancellation through is stopped cleanly."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a", shutdown=BRUTAL_KILL)], clock=clock, on_event=events)
    await start_all(supervisor, events)

    await supervisor.stop()

    assert events.select(ChildStopped, "a")[0].timed_out is False
    assert events.count(ChildShutdownTimeout) == 0
    assert probe.log[-1] == ("stop", "a")


async def test_infinity_waits_until_child_exits(clock, probe):
    """With INFINITY, stop() waits for the child however much virtual time passes."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.stubborn_spec("a", shutdown=INFINITY)], clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    stopping = asyncio.create_task(supervisor.stop())
    await settle()
    clock.advance(1e6)
    await settle()

    assert not stopping.done()

    probe.release("a")
    await stopping

    assert events.count(ChildShutdownTimeout) == 0
    assert events.select(ChildStopped, "a")[0].timed_out is False
    assert probe.log[-1] == ("return", "a")


async def test_zero_shutdown_gives_one_loop_pass(clock, probe):
    """With shutdown=0 a cooperative child still gets to run its cancellation handler."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a", shutdown=0)], clock=clock, on_event=events)
    await start_all(supervisor, events)

    await supervisor.stop()

    assert probe.log[-1] == ("stop", "a")
    assert events.select(ChildStopped, "a")[0].timed_out is False


async def test_stop_reports_supervisor_stopped(clock, probe):
    """stop() ends with a SupervisorStopped event without a reason, and wait() returns."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    await supervisor.stop()
    await supervisor.wait()

    assert isinstance(events.events[-1], SupervisorStopped)
    assert events.events[-1].reason is None


async def test_stop_twice_is_harmless(clock, probe):
    """A second stop() returns at once and reports nothing new."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)
    await supervisor.stop()
    event_count = len(events.events)

    await supervisor.stop()

    assert len(events.events) == event_count


async def test_async_with_starts_and_stops(clock, probe):
    """`async with` starts the children on entry and stops them in reverse order on exit."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], clock=clock, on_event=events)

    async with supervisor:
        await events.wait_for(ChildReady, "b")
        assert probe.starts == {"a": 1, "b": 1}

    assert probe.actions("stop") == ["b", "a"]


async def test_nested_supervisor_stops_its_children(clock, probe):
    """Stopping a parent stops a nested supervisor, which stops its own children in reverse order."""

    inner_events = EventLog(clock)

    async def run_inner(task_status):
        inner = Supervisor(
            [probe.spec("x"), probe.spec("y")], name="inner", clock=clock, on_event=inner_events
        )
        await inner.run(task_status=task_status)

    events = EventLog(clock)
    outer = Supervisor(
        [probe.spec("a"), ChildSpec("inner", run_inner, type="supervisor", signals_ready=True)],
        name="outer",
        clock=clock,
        on_event=events,
    )
    await start_all(outer, events)
    await inner_events.wait_for(ChildReady, "y")

    await outer.stop()

    assert probe.actions("start") == ["a", "x", "y"]
    assert probe.actions("stop") == ["y", "x", "a"]
    assert events.select(ChildStopped, "inner")[0].timed_out is False


async def test_crash_during_stop_not_restarted(clock, probe):
    """A child that crashes while the supervisor is stopping its siblings is not restarted."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.stubborn_spec("b", shutdown=2.0)], clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    stopping = asyncio.create_task(supervisor.stop())
    await settle()
    probe.crash("a")
    await events.wait_for(ChildExited, "a")
    clock.advance(2.0)
    await stopping

    assert probe.starts["a"] == 1
    assert supervisor.state == "stopped"
    probe.release("b")


async def test_stop_during_group_restart_restarts_nothing(clock, probe):
    """stop() while a group restart waits for a stubborn child ends the restart and starts nothing."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.stubborn_spec("b", shutdown=2.0)],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildExited, "a")
    await settle()

    assert probe.log[-1] == ("ignore-cancel", "b")

    stopping = asyncio.create_task(supervisor.stop())
    await settle()

    assert stopping.done()
    assert probe.starts == {"a": 1, "b": 1}
    assert supervisor.state == "stopped"


async def test_cancelling_run_stops_children(clock, probe):
    """Cancelling the task that awaits run() stops the children in reverse order first."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], clock=clock, on_event=events)
    runner = asyncio.create_task(supervisor.run())
    await events.wait_for(ChildReady, "b")

    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner

    assert probe.actions("stop") == ["b", "a"]
    assert supervisor.state == "stopped"


def stop_causes(events: EventLog) -> list[tuple[str, str]]:
    return sorted((event.child_id, event.cause) for event in events.select(ChildStopped))


@pytest.mark.parametrize("first", ["children", "control task"])
async def test_loop_teardown_order_stops_children(clock, probe, supervisor_logs, first):
    """All tasks cancelled at once, as at the end of asyncio.run(): in either order the children stop, not crash."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b")], strategy="one_for_all", name="sup", clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    children = [info.task for info in supervisor.which_children()]
    [control] = asyncio.all_tasks() - {asyncio.current_task(), *children}

    # Tasks resume in the order they were cancelled in.
    order = [*children, control] if first == "children" else [control, *children]
    for task in order:
        task.cancel()
    await asyncio.gather(*order, return_exceptions=True)

    assert events.count(ChildExited) == 0
    assert events.count(ChildRestarting) == 0
    assert stop_causes(events) == [("a", "shutdown"), ("b", "shutdown")]
    assert [event.reason for event in events.select(SupervisorStopped)] == [None]
    assert supervisor.state == "stopped"
    assert [str(info.status) for info in supervisor.which_children()] == ["stopped", "stopped"]
    assert probe.starts == {"a": 1, "b": 1}
    assert [record.getMessage() for record in supervisor_logs.records if record.levelno >= logging.ERROR] == []


async def test_control_cancelled_after_start_stops(clock):
    """start() returns only once the control task runs, so a cancel just after it still stops.

    With no child to wait for, start() returns before the control task's first step. A task
    cancelled then never runs its body, so the supervisor must replace it for wait() to return.
    """
    events = EventLog(clock)
    supervisor = Supervisor([], name="empty", clock=clock, on_event=events)
    await supervisor.start()
    [control] = asyncio.all_tasks() - {asyncio.current_task()}

    control.cancel()
    await asyncio.gather(control, return_exceptions=True)
    await supervisor.wait()

    assert [event.reason for event in events.select(SupervisorStopped)] == [None]
    assert supervisor.state == "stopped"


async def _wait_forever() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("children", [0, 1])
def test_asyncio_run_ends_during_start(children):
    """asyncio.run() returns when main() ends while another task is still inside start().

    asyncio.run() then cancels that task and the control task, which has not taken its first
    step: a new control task stops the children and ends the supervisor.
    """
    events: list[object] = []
    specs = [ChildSpec(f"child-{slot}", _wait_forever) for slot in range(children)]
    supervisor = Supervisor(specs, name="pending", on_event=events.append)

    async def main() -> None:
        asyncio.create_task(supervisor.start())

    asyncio.run(main())

    assert supervisor.state == "stopped"
    assert [type(event) for event in events][-1] is SupervisorStopped


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
def test_main_returning_while_running_is_quiet(strategy, probe, supervisor_logs):
    """The main coroutine of asyncio.run() returns without stop(): the children are stopped, with no ERROR log."""
    events = EventLog()
    loop_errors = []
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")], strategy=strategy, name="sup", on_event=events
    )

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context))
        await start_all(supervisor, events)

    with asyncio.Runner() as runner:
        runner.run(main())

    assert events.count(ChildExited) == 0
    assert events.count(ChildRestarting) == 0
    assert stop_causes(events) == [("a", "shutdown"), ("b", "shutdown"), ("c", "shutdown")]
    assert supervisor.state == "stopped"
    assert probe.starts == {"a": 1, "b": 1, "c": 1}
    assert [record.getMessage() for record in supervisor_logs.records if record.levelno >= logging.ERROR] == []
    assert loop_errors == []


async def test_shutdown_not_cut_short_by_cancel(clock):
    """A cancel of the control task while it stops the children waits for all of them.

    SupervisorStopped comes last, wait() returns only then, and the control task still ends
    cancelled.
    """
    events = EventLog(clock)
    cleanup_started = asyncio.Event()
    release = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleanup_started.set()
            await release.wait()
            raise

    supervisor = Supervisor(
        [ChildSpec("a", _wait_forever), ChildSpec("b", slow_cleanup)], name="sup", clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    [control] = [task for task in asyncio.all_tasks() if task.get_name() == "sup:control"]

    stopper = asyncio.create_task(supervisor.stop())
    await cleanup_started.wait()  # b, stopped first, is in its cleanup
    control.cancel()
    await settle()
    control.cancel()
    await settle()
    assert events.count(SupervisorStopped) == 0
    assert supervisor.state == "stopping"

    release.set()
    await supervisor.wait()
    await stopper

    ends = [event for event in events.select() if isinstance(event, (ChildStopped, SupervisorStopped))]
    assert [(type(event).__name__, getattr(event, "child_id", None)) for event in ends] == [
        ("ChildStopped", "b"),
        ("ChildStopped", "a"),
        ("SupervisorStopped", None),
    ]
    assert all(info.task.done() for info in supervisor.which_children())
    await asyncio.gather(control, return_exceptions=True)
    assert control.cancelled()


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
def test_asyncio_run_ends_during_group_restart(strategy):
    """asyncio.run() ending while a group restart waits for a child still records its stop once."""
    events: list[object] = []
    cleanup_started: asyncio.Event | None = None
    go: asyncio.Event | None = None

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            assert cleanup_started is not None
            cleanup_started.set()
            for _ in range(3):
                await asyncio.sleep(0)
            raise

    async def crasher() -> None:
        assert go is not None
        await go.wait()
        raise RuntimeError("crash")

    supervisor = Supervisor(
        [ChildSpec("a", slow_cleanup), ChildSpec("b", _wait_forever), ChildSpec("c", crasher)],
        name="sup",
        strategy=strategy,
        on_event=events.append,
    )

    async def main() -> None:
        nonlocal cleanup_started, go
        cleanup_started, go = asyncio.Event(), asyncio.Event()
        await supervisor.start()
        go.set()
        if strategy == "one_for_all":
            await cleanup_started.wait()  # the group restart is stopping a

    asyncio.run(main())

    stopped = [event.child_id for event in events if isinstance(event, ChildStopped)]
    assert sorted(stopped) == sorted(set(stopped))
    assert isinstance(events[-1], SupervisorStopped)
    assert supervisor.state == "stopped"
    assert "a" in stopped
    assert "b" in stopped
