"""The restart policy as a whole: intensity window, backoff, stable-period reset and lifetime cap."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import (
    Backoff,
    ChildExited,
    ChildQuarantined,
    ChildReady,
    ChildRestarting,
    ChildSpec,
    ChildStatus,
    DynamicSupervisor,
    IntensityExceeded,
    InvalidChildSpec,
    RestartIntensityExceeded,
    Supervisor,
)
from supervisor.testing import FaultInjector, settle, wait_for_generation

from conftest import EventLog, start_all


async def fail_at_once() -> None:
    raise RuntimeError("cannot start")


def info_of(supervisor, child_id):
    return next(info for info in supervisor.which_children() if info.id == child_id)


async def test_lifetime_cap_escalates_in_static_supervisor(clock, probe):
    """A child past max_lifetime_restarts in a plain supervisor: the supervisor fails, as for intensity."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", max_lifetime_restarts=2), probe.spec("b")],
        name="sup",
        max_restarts=100,
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    for crash in range(1, 4):
        probe.crash("a")
        await events.wait_for(ChildExited, "a", count=crash)
        if crash < 3:
            await events.wait_for(ChildReady, "a", count=crash + 1)
    with pytest.raises(RestartIntensityExceeded) as raised:
        await supervisor.wait()

    assert raised.value.max_seconds is None
    assert raised.value.max_restarts == 2
    assert raised.value.restarts == 3
    assert raised.value.offenders == [("sup", "a")]
    assert "max_lifetime_restarts" in str(raised.value)
    breach = events.select(IntensityExceeded, "a")
    assert len(breach) == 1
    assert breach[0].max_seconds is None
    assert events.count(ChildRestarting, "a") == 2
    assert probe.actions("stop") == ["b"]


async def test_lifetime_cap_outlasts_window_and_reset(clock, probe):
    """Backoff spreads restarts beyond the window and resets after stable periods; the lifetime cap still stops the loop."""
    events = EventLog(clock)
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0, reset_after=10.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff, max_lifetime_restarts=3)],
        max_restarts=1,
        max_seconds=5,
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    # Each crash comes after a 20 s stable period, so neither the window (1 in 5 s) nor the
    # backoff ever grows. Only the lifetime count does.
    for crash in range(1, 4):
        await clock.advance_and_settle(20.0)
        probe.crash("a")
        await events.wait_for(ChildExited, "a", count=crash)
        await clock.advance_and_settle(1.0)
        await events.wait_for(ChildReady, "a", count=crash + 1)
        assert info_of(supervisor, "a").lifetime.restarts == crash
        assert info_of(supervisor, "a").intensity.restarts == 1
    assert [event.delay for event in events.select(ChildRestarting)] == [1.0, 1.0, 1.0]

    await clock.advance_and_settle(20.0)
    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded) as raised:
        await supervisor.wait()
    assert raised.value.max_seconds is None


async def test_intensity_counts_decisions_not_delays(clock):
    """A restart is counted when it is decided, before its backoff delay, so long delays spread the window."""
    events = EventLog(clock)
    backoff = Backoff(initial=3.0, maximum=3.0, jitter=0)
    supervisor = Supervisor(
        [ChildSpec("a", fail_at_once, backoff=backoff)],
        max_restarts=1,
        max_seconds=2,
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    await clock.advance_and_settle(30.0)

    # Failures at 0, 3, 6, ...: never two restarts within 2 s, so the limit never trips.
    assert supervisor.state == "running"
    assert [event.intensity for event in events.select(ChildRestarting)] == [1] * 11
    await supervisor.stop()


async def test_backoff_delay_restarts_within_window_breach(clock):
    """Short backoff delays do not save a crash loop from the intensity limit."""
    events = EventLog(clock)
    backoff = Backoff(initial=0.1, maximum=0.1, jitter=0)
    supervisor = Supervisor(
        [ChildSpec("a", fail_at_once, backoff=backoff)],
        max_restarts=3,
        max_seconds=5,
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    await clock.advance_and_settle(1.0)

    assert supervisor.state == "failed"
    breach = events.select(IntensityExceeded)
    assert len(breach) == 1
    assert events.time_of(breach[0]) == pytest.approx(0.3)


async def test_lifetime_cap_quarantines_in_dynamic(clock, probe):
    """A dynamic child past its lifetime cap is quarantined, not escalated, even without a per-child window."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(
        ChildSpec("worker", probe.run, max_lifetime_restarts=1),
        max_restarts=100,
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    child = await supervisor.start_child("w")
    await events.wait_for(ChildReady, child)

    probe.crash("w")
    await events.wait_for(ChildReady, child, count=2)
    probe.crash("w")
    quarantined = await events.wait_for(ChildQuarantined, child)

    assert quarantined.max_seconds is None
    assert quarantined.max_restarts == 1
    assert info_of(supervisor, child).status is ChildStatus.QUARANTINED
    assert info_of(supervisor, child).lifetime.restarts == 1
    assert supervisor.state == "running"
    await supervisor.stop()


async def test_quarantined_child_restarts_with_fresh_budget(clock, probe):
    """restart_child() on a quarantined child: it runs again with an empty per-child window."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(
        ChildSpec("worker", probe.run),
        child_max_restarts=1,
        max_restarts=100,
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    child = await supervisor.start_child("w")
    await events.wait_for(ChildReady, child)
    probe.crash("w")
    await events.wait_for(ChildReady, child, count=2)
    probe.crash("w")
    await events.wait_for(ChildQuarantined, child)
    assert info_of(supervisor, child).budget.restarts == 1

    await supervisor.restart_child(child)
    await events.wait_for(ChildReady, child, count=3)

    assert info_of(supervisor, child).status is ChildStatus.RUNNING
    assert info_of(supervisor, child).budget.restarts == 0
    probe.crash("w")
    await events.wait_for(ChildReady, child, count=4)
    assert events.count(ChildQuarantined) == 1
    await supervisor.stop()


async def test_per_child_budget_window_slides(clock, probe):
    """Restarts of a dynamic child spread wider than its window are never quarantined."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(
        ChildSpec("worker", probe.run),
        child_max_restarts=1,
        child_max_seconds=1.0,
        max_restarts=100,
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    child = await supervisor.start_child("w")
    for crash in range(1, 6):
        await events.wait_for(ChildReady, child, count=crash)
        await clock.advance_and_settle(1.5)
        probe.crash("w")
    await events.wait_for(ChildReady, child, count=6)

    assert events.count(ChildQuarantined) == 0
    assert [event.child_intensity for event in events.select(ChildRestarting)] == [1] * 5
    await supervisor.stop()


async def test_supervisor_intensity_still_guards_dynamic(clock, probe):
    """Many children failing once each: no quarantine, but the supervisor-wide limit trips."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(
        ChildSpec("worker", probe.run),
        child_max_restarts=3,
        max_restarts=4,
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    for n in range(6):
        await supervisor.start_child(f"w{n}")
    await events.wait_for(ChildReady, count=6)

    for n in range(5):
        probe.crash(f"w{n}")
    with pytest.raises(RestartIntensityExceeded) as raised:
        await supervisor.wait()

    assert raised.value.restarts == 5
    assert events.count(ChildQuarantined) == 0


async def test_restart_child_not_counted_as_restart(clock, probe):
    """restart_child() after terminate_child() counts in restarts but not in the window or the lifetime cap."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", max_lifetime_restarts=0)], max_restarts=0, clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    for round_ in range(1, 4):
        await supervisor.terminate_child("a")
        await supervisor.restart_child("a")
        await wait_for_generation(supervisor, "a", round_ + 1, ready=True)

    info = info_of(supervisor, "a")
    assert info.restarts == 3
    assert info.lifetime.restarts == 0
    assert info.intensity.restarts == 0
    assert supervisor.state == "running"
    await supervisor.stop()


async def test_group_restart_respects_lifetime_cap(clock, probe):
    """In one_for_all, the failed child's lifetime cap is checked before the group restarts."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", max_lifetime_restarts=1), probe.spec("b")],
        strategy="one_for_all",
        max_restarts=10,
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.crash("a")
    await events.wait_for(ChildReady, "b", count=2)
    probe.crash("a")

    with pytest.raises(RestartIntensityExceeded) as raised:
        await supervisor.wait()
    assert raised.value.max_seconds is None
    assert probe.starts == {"a": 2, "b": 2}


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_lifetime_cap_validated(value):
    """A max_lifetime_restarts that is not an integer >= 0 is rejected, naming the field."""
    with pytest.raises(InvalidChildSpec, match="max_lifetime_restarts") as raised:
        ChildSpec("a", fail_at_once, max_lifetime_restarts=value)
    assert raised.value.value == value


async def test_significant_child_restarted_does_not_stop(probe):
    """A significant transient child that crashes is restarted and does not trigger auto-shutdown."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("job", restart="transient", significant=True)],
        auto_shutdown="any_significant",
        on_event=events,
    )
    await start_all(supervisor, events)

    probe.crash("job")
    await events.wait_for(ChildReady, "job", count=2)

    assert supervisor.state == "running"
    await supervisor.stop()


async def test_terminated_significant_child_does_not_stop(probe):
    """terminate_child() on a significant child does not trigger auto-shutdown, as in OTP."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("job", restart="transient", significant=True)],
        auto_shutdown="any_significant",
        on_event=events,
    )
    await start_all(supervisor, events)

    await supervisor.terminate_child("job")
    await settle()

    assert supervisor.state == "running"
    await supervisor.stop()


async def test_auto_shutdown_nested_is_normal_exit(clock, probe):
    """A nested supervisor that shuts itself down is a normal exit: a transient parent spec does not restart it."""
    events = EventLog(clock)
    inner = Supervisor(
        [probe.spec("job", restart="temporary", significant=True)],
        name="inner",
        auto_shutdown="all_significant",
        clock=clock,
    )
    outer = Supervisor(
        [inner.child_spec(restart="transient"), probe.spec("keeper")], clock=clock, on_event=events
    )
    await start_all(outer, events)

    probe.finish("job")
    exited = await events.wait_for(ChildExited, inner.name)
    await settle()

    assert exited.reason is None
    assert exited.abnormal is False
    assert info_of(outer, inner.name).status is ChildStatus.EXITED
    assert outer.state == "running"
    await outer.stop()


async def test_significant_needs_auto_shutdown_in_dynamic(probe):
    """A significant template is rejected, because a dynamic supervisor has no auto_shutdown."""
    with pytest.raises(InvalidChildSpec, match="significant"):
        DynamicSupervisor(ChildSpec("w", probe.run, restart="transient", significant=True))


async def test_fault_injector_fail_after_virtual_seconds(clock):
    """fail_after(): the child fails exactly that much virtual time after its start."""
    events = EventLog(clock)
    faults = FaultInjector(clock)
    cleanups = []

    async def service() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleanups.append(clock.now())

    supervisor = Supervisor([faults.wrap(ChildSpec("s", service))], clock=clock, on_event=events)
    faults.fail_after("s", 2.5)
    await start_all(supervisor, events)
    await clock.advance_and_settle(2.5 - 1 / 1024)
    assert events.count(ChildExited) == 0
    await clock.advance_and_settle(1 / 1024)

    exited = await events.wait_for(ChildExited, "s")
    assert exited.reason.child_id == "s"
    assert exited.reason.start == 1
    assert events.time_of(exited) == 2.5
    assert cleanups == [2.5]
    await wait_for_generation(supervisor, "s", 2, ready=True)
    await clock.advance_and_settle(10.0)
    assert events.count(ChildExited) == 1
    await supervisor.stop()


async def test_terminated_child_started_by_group_restart(clock, probe):
    """A terminated permanent child stays down, until a one_for_all restart of a sibling starts it, as in OTP."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b")], strategy="one_for_all", clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    await supervisor.terminate_child("a")
    await settle()
    assert info_of(supervisor, "a").status is ChildStatus.STOPPED

    probe.crash("b")
    await events.wait_for(ChildReady, "b", count=2)

    assert info_of(supervisor, "a").status is ChildStatus.RUNNING
    assert probe.starts == {"a": 2, "b": 2}
    await supervisor.stop()
