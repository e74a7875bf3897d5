"""which_children(), count_children(), state and __repr__."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import (
    Backoff,
    ChildExited,
    ChildReady,
    ChildRestarting,
    ChildSpec,
    ChildType,
    Restart,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorError,
    SupervisorNotRunning,
)
from supervisor.testing import settle

from conftest import EventLog, start_all


async def test_which_children_lists_specs_in_start_order(clock, probe):
    """which_children() describes each child in start order with its type, restart and task."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", restart="transient"), probe.spec("c", type="supervisor")],
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    children = supervisor.which_children()

    assert [info.id for info in children] == ["a", "b", "c"]
    assert [info.status for info in children] == ["running", "running", "running"]
    assert [info.type for info in children] == [ChildType.WORKER, ChildType.WORKER, ChildType.SUPERVISOR]
    assert [info.restart for info in children] == [Restart.PERMANENT, Restart.TRANSIENT, Restart.PERMANENT]
    assert [info.generation for info in children] == [1, 1, 1]
    assert [info.restarts for info in children] == [0, 0, 0]
    assert all(isinstance(info.task, asyncio.Task) for info in children)
    assert all(not info.task.done() for info in children)
    await supervisor.stop()


async def test_which_children_counts_restarts(clock, probe):
    """After a restart, the child's generation and restart count have both gone up by one."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("b")
    await events.wait_for(ChildReady, "b", count=2)
    by_id = {info.id: info for info in supervisor.which_children()}

    assert by_id["b"].generation == 2
    assert by_id["b"].restarts == 1
    assert by_id["a"].generation == 1
    assert by_id["a"].restarts == 0
    await supervisor.stop()


async def test_which_children_shows_exited_transient(clock, probe):
    """A transient child that returned normally stays listed as exited."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a", restart="transient")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.finish("a")
    await events.wait_for(ChildExited, "a")
    await settle()
    [info] = supervisor.which_children()

    assert info.status == "exited"
    assert info.task.done()
    await supervisor.stop()


async def test_which_children_shows_restarting_during_backoff(clock, probe):
    """A child waiting for its backoff delay is listed as restarting."""
    events = EventLog(clock)
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
    supervisor = Supervisor([probe.spec("a", backoff=backoff)], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildRestarting, "a")
    await settle()
    [info] = supervisor.which_children()

    assert info.status == "restarting"
    await supervisor.stop()


async def test_which_children_shows_stopped_after_stop(clock, probe):
    """After stop(), every child is listed as stopped."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    await supervisor.stop()

    assert [info.status for info in supervisor.which_children()] == ["stopped", "stopped"]


async def test_count_children_by_kind(clock, probe):
    """count_children() counts specs, running children, supervisors and workers."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [
            probe.spec("a"),
            probe.spec("b", restart="transient"),
            ChildSpec("sub", probe.run, args=("sub",), type="supervisor"),
        ],
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    assert supervisor.count_children() == {"specs": 3, "active": 3, "supervisors": 1, "workers": 2}

    probe.finish("b")
    await events.wait_for(ChildExited, "b")
    await settle()

    assert supervisor.count_children() == {"specs": 3, "active": 2, "supervisors": 1, "workers": 2}
    await supervisor.stop()


async def test_count_children_skips_backoff_wait(clock, probe):
    """A child in its backoff delay has no running task of its own, so it is not active."""
    events = EventLog(clock)
    backoff = Backoff(initial=10.0, maximum=10.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("b")], clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildRestarting, "a")
    await settle()

    assert [info.status for info in supervisor.which_children()] == ["restarting", "running"]
    assert supervisor.count_children()["active"] == 1
    await clock.advance_and_settle(10.0)
    assert supervisor.count_children()["active"] == 2
    await supervisor.stop()


async def test_which_children_stopping_group(clock, probe):
    """During a rest_for_one restart, a sibling still unwinding its stop is listed as restarting."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.stubborn_spec("b"), probe.spec("c")],
        strategy="rest_for_one", clock=clock, on_event=events,
    )
    await supervisor.start()
    await events.wait_for(ChildReady, "c")

    probe.crash("a")
    await settle()
    assert probe.log[-3:] == [("crash", "a"), ("stop", "c"), ("ignore-cancel", "b")]
    statuses = [info.status for info in supervisor.which_children()]
    assert supervisor.count_children()["active"] == 1  # b, which has not stopped yet

    probe.release("b")
    await events.wait_for(ChildReady, "c", count=2)
    assert statuses == ["restarting", "restarting", "restarting"]
    assert [info.status for info in supervisor.which_children()] == ["running"] * 3
    # The new b ignores its first cancellation too; released, it returns during the stop.
    stopping = asyncio.ensure_future(supervisor.stop())
    await settle()
    probe.release("b")
    await stopping


def test_count_children_before_start():
    """A supervisor that has not started counts its specs but no active children."""

    async def child():
        pass

    supervisor = Supervisor([ChildSpec("a", child), ChildSpec("b", child)])

    assert supervisor.count_children() == {"specs": 2, "active": 0, "supervisors": 0, "workers": 2}


async def test_state_follows_lifecycle(clock, probe):
    """state goes from idle to running to stopped."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)

    assert supervisor.state == "idle"

    await start_all(supervisor, events)

    assert supervisor.state == "running"

    await supervisor.stop()

    assert supervisor.state == "stopped"


async def test_state_failed_after_breach(clock, probe):
    """After a restart intensity breach, state is failed and failure is the error."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], max_restarts=0, clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.wait()

    assert supervisor.state == "failed"
    assert supervisor.failure is info.value


async def test_repr_shows_name_state_and_counts(clock, probe):
    """repr() shows the name, the state, the strategy and the child counts."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b")], name="web", strategy="rest_for_one", clock=clock, on_event=events
    )

    idle = repr(supervisor)

    assert "'web'" in idle
    assert "idle" in idle
    assert "specs=2" in idle
    assert "active=0" in idle

    await start_all(supervisor, events)
    probe.crash("a")
    await events.wait_for(ChildReady, "b", count=2)
    running = repr(supervisor)

    assert "running" in running
    assert "rest_for_one" in running
    assert "active=2" in running
    assert "restarts=2" in running

    await supervisor.stop()
    stopped = repr(supervisor)

    assert "stopped" in stopped
    assert "active=0" in stopped


async def test_wait_before_start_rejected():
    """wait() on a supervisor that never started raises SupervisorNotRunning."""
    supervisor = Supervisor()

    with pytest.raises(SupervisorNotRunning) as info:
        await supervisor.wait()

    assert info.value.state == "idle"


async def test_start_twice_rejected(clock, probe):
    """start() on a running supervisor raises and leaves the children alone."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], name="sup", clock=clock, on_event=events)
    await start_all(supervisor, events)

    with pytest.raises(SupervisorError) as info:
        await supervisor.start()

    assert "'sup'" in str(info.value)
    assert "running" in str(info.value)
    assert probe.starts["a"] == 1
    await supervisor.stop()


async def test_exit_event_lists_child_exited(clock, probe):
    """which_children() inside an on_event callback for ChildExited reports the child as exited."""
    seen = []

    def on_event(event):
        if isinstance(event, ChildExited):
            seen.append({info.id: str(info.status) for info in supervisor.which_children()})

    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], clock=clock, on_event=on_event)
    await supervisor.start()
    probe.crash("a")
    await settle()

    assert seen == [{"a": "exited", "b": "running"}]
    assert {info.id: str(info.status) for info in supervisor.which_children()} == {"a": "running", "b": "running"}
    await supervisor.stop()
