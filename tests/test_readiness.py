"""Readiness: start order, restart completion and start timeouts."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import (
    ChildExited,
    ChildStartError,
    ChildReady,
    ChildSpec,
    ChildStarted,
    StartTimeout,
    Supervisor,
)
from supervisor.testing import settle

from conftest import EventLog, start_all

EPSILON = 1 / 1024


async def test_next_child_waits_for_readiness(clock, probe):
    """A child is started only after the previous child signalled readiness."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", signals_ready=True), probe.spec("b", signals_ready=True)],
        clock=clock,
        on_event=events,
    )
    probe.hold_ready("a")

    starting = asyncio.create_task(supervisor.start())
    await settle()

    assert probe.log == [("start", "a")]
    assert events.count(ChildReady) == 0
    assert not starting.done()

    probe.allow_ready("a")
    await starting

    assert probe.log == [("start", "a"), ("ready", "a"), ("start", "b"), ("ready", "b")]
    await supervisor.stop()


async def test_start_returns_when_last_child_ready(clock, probe):
    """start() does not return while the last child has not signalled readiness."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", signals_ready=True)], clock=clock, on_event=events
    )
    probe.hold_ready("b")

    starting = asyncio.create_task(supervisor.start())
    await events.wait_for(ChildStarted, "b")
    await settle()

    assert not starting.done()

    probe.allow_ready("b")
    await starting

    assert events.kinds(ChildReady) == [("ChildReady", "a"), ("ChildReady", "b")]
    await supervisor.stop()


async def test_restart_complete_when_ready(clock, probe):
    """After a crash, ChildReady for the new generation waits until it signals readiness."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a", signals_ready=True)], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.hold_ready("a")
    probe.crash("a")
    started = await events.wait_for(ChildStarted, "a", count=2)
    await settle()

    assert started.generation == 2
    assert events.count(ChildReady, "a") == 1

    probe.allow_ready("a")
    ready = await events.wait_for(ChildReady, "a", count=2)

    assert ready.generation == 2
    await supervisor.stop()


async def test_start_timeout_on_restart_is_failed_start(clock, probe):
    """A restarted child that does not signal within start_timeout exits abnormally and is restarted."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", signals_ready=True, start_timeout=2.0)], clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    probe.hold_ready("a")
    probe.crash("a")
    await events.wait_for(ChildStarted, "a", count=2)

    clock.advance(2.0 - EPSILON)
    await settle()

    assert events.count(ChildExited, "a") == 1

    clock.advance(EPSILON)
    timed_out = await events.wait_for(ChildExited, "a", count=2)

    assert isinstance(timed_out.reason, StartTimeout)
    assert timed_out.abnormal is True
    assert timed_out.generation == 2
    assert events.time_of(timed_out) == 2.0
    # The timed-out generation was cancelled, then the next one started in the same task.
    assert probe.log[-2:] == [("stop", "a"), ("start", "a")]

    probe.allow_ready("a")
    ready = await events.wait_for(ChildReady, "a", count=2)

    assert ready.generation == 3
    await supervisor.stop()


async def test_start_timeout_at_initial_start_fails_start(clock, probe):
    """A child that never signals during start() makes start() raise and stops the others."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", signals_ready=True, start_timeout=1.0), probe.spec("c")],
        clock=clock,
        on_event=events,
    )
    probe.hold_ready("b")

    starting = asyncio.create_task(supervisor.start())
    await events.wait_for(ChildStarted, "b")
    clock.advance(1.0)
    with pytest.raises(ChildStartError) as info:
        await starting

    assert info.value.child_id == "b"
    assert isinstance(info.value.reason, StartTimeout)
    assert probe.starts["c"] == 0
    assert ("stop", "a") in probe.log


async def test_no_start_timeout_waits_forever(clock, probe):
    """With start_timeout=None a child may take any virtual time to signal readiness."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", signals_ready=True, start_timeout=None)], clock=clock, on_event=events
    )
    probe.hold_ready("a")

    starting = asyncio.create_task(supervisor.start())
    await events.wait_for(ChildStarted, "a")
    clock.advance(1e6)
    await settle()

    assert not starting.done()
    assert events.count(ChildExited) == 0

    probe.allow_ready("a")
    await starting

    assert events.count(ChildReady, "a") == 1
    await supervisor.stop()


async def test_start_returns_with_children_ready(probe):
    """When start() returns, every child that does not signal readiness is reported ready."""
    events = EventLog()
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], on_event=events)

    await supervisor.start()

    assert [str(info.status) for info in supervisor.which_children()] == ["running", "running"]
    assert events.kinds(ChildStarted, ChildReady) == [
        ("ChildStarted", "a"),
        ("ChildReady", "a"),
        ("ChildStarted", "b"),
        ("ChildReady", "b"),
    ]
    await supervisor.stop()


async def test_child_crash_before_ready_fails_start(clock, probe):
    """A child that raises before signalling readiness makes start() raise and stops the others."""
    events = EventLog(clock)
    error = OSError("address in use")

    async def fail_to_bind(task_status):
        raise error

    supervisor = Supervisor(
        [probe.spec("a"), ChildSpec("b", fail_to_bind, signals_ready=True), probe.spec("c")],
        clock=clock,
        on_event=events,
    )

    with pytest.raises(ChildStartError) as info:
        await supervisor.start()

    assert info.value.child_id == "b"
    assert info.value.reason is error
    assert probe.starts["c"] == 0
    assert probe.actions("stop") == ["a"]
    assert supervisor.state == "stopped"


async def test_start_timeouts_expire_at_own_deadlines(clock, probe):
    """Children waiting for readiness at once each time out at their own deadline."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [
            probe.spec("a", signals_ready=True, start_timeout=1.0),
            probe.spec("b", signals_ready=True, start_timeout=3.0),
            probe.spec("c", signals_ready=True, start_timeout=2.0),
        ],
        max_restarts=10,
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    for child_id in ("a", "b", "c"):
        probe.hold_ready(child_id)

    probe.crash("a")
    probe.crash("b")
    await events.wait_for(ChildStarted, "b", count=2)
    clock.advance(0.5)
    probe.crash("c")
    await events.wait_for(ChildStarted, "c", count=2)

    # c becomes ready before its deadline at 2.5, so only a and b time out.
    probe.allow_ready("c")
    await events.wait_for(ChildReady, "c", count=2)
    clock.advance(0.5)
    a_timeout = await events.wait_for(ChildExited, "a", count=2)
    probe.allow_ready("a")
    await events.wait_for(ChildReady, "a", count=2)
    clock.advance(2.0)
    b_timeout = await events.wait_for(ChildExited, "b", count=2)
    await settle()

    assert isinstance(a_timeout.reason, StartTimeout)
    assert events.time_of(a_timeout) == 1.0
    assert isinstance(b_timeout.reason, StartTimeout)
    assert events.time_of(b_timeout) == 3.0
    assert events.count(ChildExited, "c") == 1
    assert events.count(ChildExited, "a") == 2
    await supervisor.stop()
