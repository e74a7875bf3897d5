"""The test kit in supervisor.testing: fault injection, generation waits and the failure trap."""

from __future__ import annotations

import asyncio
import math

import pytest

from supervisor import ChildExited, ChildNotFound, ChildReady, ChildSpec, Supervisor, SupervisorNotRunning
from supervisor.testing import (
    FailureTrap,
    FaultInjector,
    InjectedFault,
    UnexpectedFailure,
    VirtualClock,
    settle,
    wait_for_generation,
)

from conftest import EventLog, start_all


async def run_forever() -> None:
    await asyncio.Event().wait()


async def test_wait_for_generation_reached_returns_without_yield(clock, probe):
    """A generation already reached: wait_for_generation() completes without giving up control."""
    supervisor = Supervisor([probe.spec("a")], clock=clock)
    await supervisor.start()
    await settle()

    waiting = wait_for_generation(supervisor, "a", 1, ready=True)
    with pytest.raises(StopIteration):
        waiting.send(None)
    await supervisor.stop()


async def test_wait_for_generation_waits_for_restart(clock, probe):
    """A generation not reached yet: wait_for_generation() returns once the child starts that time."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    waiting = asyncio.create_task(wait_for_generation(supervisor, "a", 3))
    await settle()
    assert not waiting.done()
    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)
    await settle()
    assert not waiting.done()
    probe.crash("a")
    await waiting

    assert supervisor.which_children()[0].generation == 3
    await supervisor.stop()


async def test_wait_for_generation_raises_when_supervisor_stops(clock, probe):
    """The supervisor stops before the generation is reached: the wait raises, naming child and supervisor."""
    supervisor = Supervisor([probe.spec("a")], name="sup", clock=clock)
    await supervisor.start()
    waiting = asyncio.create_task(wait_for_generation(supervisor, "a", 5))
    await settle()

    await supervisor.stop()

    with pytest.raises(SupervisorNotRunning, match=r"generation 5 of child 'a': supervisor 'sup' is stopped"):
        await waiting
    with pytest.raises(SupervisorNotRunning):
        await wait_for_generation(supervisor, "a", 5)


async def test_wait_for_generation_unknown_child_raises(clock, probe):
    """A child id the supervisor does not have: the wait raises ChildNotFound at once, naming id and supervisor."""
    supervisor = Supervisor([probe.spec("a")], name="sup", clock=clock)
    await supervisor.start()

    with pytest.raises(ChildNotFound, match=r"supervisor 'sup' has no child with id 'b'"):
        await wait_for_generation(supervisor, "b", 1)
    with pytest.raises(ChildNotFound):
        await wait_for_generation(supervisor, "b", 1, ready=True)
    await supervisor.stop()


async def test_wait_for_generation_removed_child_raises(clock, probe):
    """A temporary child that exits while waited for is removed: the wait raises ChildNotFound."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("t", restart="temporary")], name="sup", clock=clock, on_event=events)
    await start_all(supervisor, events)
    waiting = asyncio.create_task(wait_for_generation(supervisor, "t", 2))
    await settle()

    probe.crash("t")

    with pytest.raises(ChildNotFound, match=r"no child with id 't'"):
        await waiting
    assert supervisor.state == "running"
    await supervisor.stop()


async def test_fault_injector_fails_chosen_starts(clock):
    """fail_on_start(): only the listed starts of that child fail, with InjectedFault."""
    events = EventLog(clock)
    faults = FaultInjector(clock)
    supervisor = Supervisor(
        [faults.wrap(ChildSpec("a", run_forever)), faults.wrap(ChildSpec("b", run_forever))],
        max_restarts=10,
        clock=clock,
        on_event=events,
    )
    faults.fail_on_start("a", 1, 2)
    await supervisor.start()
    await wait_for_generation(supervisor, "a", 3)
    await settle()

    reasons = [event.reason for event in events.select(ChildExited, "a")]
    assert [(type(reason), reason.start) for reason in reasons] == [(InjectedFault, 1), (InjectedFault, 2)]
    assert faults.starts("a") == 3
    assert faults.starts("b") == 1
    assert events.count(ChildExited, "b") == 0
    await supervisor.stop()


async def test_fault_injector_custom_error(clock):
    """A fault with an explicit error raises that error."""
    events = EventLog(clock)
    faults = FaultInjector(clock)
    supervisor = Supervisor([faults.wrap(ChildSpec("a", run_forever))], clock=clock, on_event=events)
    faults.fail_on_start("a", 2, error=OSError("disk full"))
    faults.fail_after("a", 1.0, error=TimeoutError("stuck"))
    await supervisor.start()
    await clock.advance_and_settle(1.0)
    await wait_for_generation(supervisor, "a", 3)

    reasons = [event.reason for event in events.select(ChildExited, "a")]
    assert [type(reason) for reason in reasons] == [TimeoutError, OSError]
    await supervisor.stop()


def test_fault_injector_rejects_bad_start_numbers():
    """Start numbers are counted from 1."""
    faults = FaultInjector()
    with pytest.raises(ValueError, match="counted from 1"):
        faults.fail_on_start("a", 0)
    with pytest.raises(ValueError, match="counted from 1"):
        faults.fail_on_start("a")


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -math.inf, -1.0, "1", None, True])
def test_fault_injector_rejects_bad_seconds(seconds):
    """fail_after() takes a finite number of seconds >= 0; the error names the parameter and shows the value."""
    faults = FaultInjector(VirtualClock())

    with pytest.raises(ValueError) as raised:
        faults.fail_after("a", seconds)

    assert f"seconds={seconds!r}" in str(raised.value)
    assert "'a'" in str(raised.value)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1.0])
def test_virtual_clock_rejects_bad_advance(seconds):
    """advance() takes a finite number >= 0, and a rejected value runs no pending timer."""
    clock = VirtualClock()
    fired = []
    clock.call_later(10.0, fired.append, "timer")

    with pytest.raises(ValueError, match=r"invalid seconds="):
        clock.advance(seconds)

    assert fired == []
    assert clock.now() == 0.0


async def test_failure_trap_quiet_passes(clock, probe):
    """No failure inside the trap: it exits without raising."""
    supervisor = Supervisor([probe.spec("a")], clock=clock)
    await supervisor.start()
    with FailureTrap(supervisor) as trap:
        await settle()
    assert trap.failures == []
    await supervisor.stop()


async def test_failure_trap_clear_forgets_expected(clock, probe):
    """A failure the test expected and cleared does not fail the test; a later one does."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    with pytest.raises(UnexpectedFailure) as raised:
        with FailureTrap(supervisor) as trap:
            probe.crash("a", ValueError("expected"))
            await events.wait_for(ChildReady, "a", count=2)
            assert len(trap.failures) == 1
            trap.clear()
            probe.crash("a", ValueError("surprise"))
            await events.wait_for(ChildReady, "a", count=3)

    assert raised.value.failures == ["child 'a' of " + repr(supervisor.name) + " exited with ValueError('surprise')"]
    await supervisor.stop()
