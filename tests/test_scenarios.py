"""Failures that users of other supervisors have reported, one test each, on virtual time."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from supervisor import (
    Backoff,
    ChildExited,
    ChildNotFound,
    ChildQuarantined,
    ChildReady,
    ChildRestarting,
    ChildRunning,
    ChildShutdownTimeout,
    ChildSpec,
    ChildStarted,
    ChildStatus,
    ChildStopped,
    DuplicateChild,
    DynamicSupervisor,
    IntensityExceeded,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorNotRunning,
    TooManyChildren,
)
from supervisor.testing import FailureTrap, FaultInjector, UnexpectedFailure, settle, wait_for_generation

from conftest import EventLog, start_all


async def run_forever() -> None:
    await asyncio.Event().wait()


async def fail_at_once() -> None:
    raise RuntimeError("cannot start")


def status_of(supervisor: Supervisor, child_id) -> ChildStatus:
    return next(info.status for info in supervisor.which_children() if info.id == child_id)


# 1 ------------------------------------------------------------------------------------------


async def test_start_failure_loop_backoff_bounded(clock):
    """A child that fails at every start, with backoff: restarts per second stay bounded and other tasks run."""
    events = EventLog(clock)
    backoff = Backoff(initial=0.1, maximum=1.0, jitter=0.1, seed=7)
    supervisor = Supervisor(
        [ChildSpec("looping", fail_at_once, backoff=backoff)],
        max_restarts=1000,
        max_seconds=5,
        clock=clock,
        on_event=events,
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await clock.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await supervisor.start()
    await clock.advance_and_settle(10.0)

    starts_per_second = Counter(int(events.time_of(event)) for event in events.select(ChildStarted, "looping"))
    assert supervisor.state == "running"
    assert ticks == 1000
    # Delays of 0.1, 0.2, 0.4 and 0.8 s put four starts in the first second. After that the
    # delay stays within 1.0 s +- 10 %, which allows one or two starts per second.
    assert starts_per_second[0] == 4
    for second in range(1, 10):
        assert 1 <= starts_per_second[second] <= 2, (second, starts_per_second)
    assert all(event.delay <= 1.0 for event in events.select(ChildRestarting))

    ticking.cancel()
    await supervisor.stop()


# 2 ------------------------------------------------------------------------------------------


async def test_dynamic_crash_loop_quarantined_alone(clock, probe):
    """A dynamic supervisor of 100 children with one crash-looping: only that child is quarantined."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(
        ChildSpec("worker", probe.run, restart="transient"),
        child_max_restarts=3,
        child_max_seconds=5,
        max_restarts=10,
        max_seconds=5,
        name="pool",
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    ids = [await supervisor.start_child(f"w{n}") for n in range(100)]
    await events.wait_for(ChildReady, count=100)
    looping = ids[7]

    for crash in range(1, 5):
        probe.crash("w7")
        await events.wait_for(ChildExited, looping, count=crash)
        if crash < 4:
            await events.wait_for(ChildReady, looping, count=crash + 1)
    quarantined = await events.wait_for(ChildQuarantined, looping)

    # Transient children that exit normally are removed and never count against a limit.
    for n in range(50, 70):
        probe.finish(f"w{n}")
    await events.wait_for(ChildExited, count=24)
    await settle()

    assert quarantined.restarts == 4
    assert quarantined.max_restarts == 3
    assert quarantined.max_seconds == 5
    assert supervisor.state == "running"
    infos = {info.id: info for info in supervisor.which_children()}
    assert infos[looping].status is ChildStatus.QUARANTINED
    assert infos[looping].budget.restarts == 3
    assert infos[looping].budget.max_restarts == 3
    assert infos[looping].intensity.restarts == 3
    assert infos[looping].intensity.max_restarts == 10
    assert len(infos) == 80
    assert all(ids[n] not in infos for n in range(50, 70))
    others = [info for child_id, info in infos.items() if child_id != looping]
    assert all(info.status is ChildStatus.RUNNING and info.generation == 1 for info in others)
    assert [event.intensity for event in events.select(ChildRestarting)] == [1, 2, 3]
    assert [event.child_intensity for event in events.select(ChildRestarting)] == [1, 2, 3]
    assert events.count(IntensityExceeded) == 0

    await supervisor.stop()


# 3 ------------------------------------------------------------------------------------------


async def test_nested_three_levels_escalates_to_owner(clock, probe):
    """Intensity exhausted three levels down: the root's owner gets the error with the chain of offenders."""
    faults = FaultInjector(clock)
    leaf = Supervisor(
        [
            faults.wrap(ChildSpec("crasher", fail_at_once, backoff=Backoff(initial=0.1, maximum=1, jitter=0))),
            probe.spec("leaf-worker"),
        ],
        name="leaf",
        max_restarts=2,
        clock=clock,
    )
    middle = Supervisor([leaf.child_spec(), probe.spec("middle-worker")], name="middle", max_restarts=0, clock=clock)
    root_events = EventLog(clock)
    root = Supervisor(
        [middle.child_spec(), probe.spec("root-worker")],
        name="root",
        max_restarts=0,
        clock=clock,
        on_event=root_events,
    )
    owner = asyncio.create_task(root.run())
    await settle()

    await clock.advance_and_settle(1.0)

    assert owner.done()
    with pytest.raises(RestartIntensityExceeded) as raised:
        owner.result()
    assert raised.value.offenders == [("root", "middle"), ("middle", "leaf"), ("leaf", "crasher")]
    # The crasher started at 0, 0.1 and 0.3 s; its third failure broke the leaf's limit.
    assert faults.starts("crasher") == 3
    assert root_events.time_of(root_events.select(IntensityExceeded)[0]) == pytest.approx(0.3)
    assert sorted(probe.actions("stop")) == ["leaf-worker", "middle-worker", "root-worker"]
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert (root.state, middle.state, leaf.state) == ("failed", "failed", "failed")


# 4 ------------------------------------------------------------------------------------------


async def test_nested_three_levels_stop_waits_for_cleanup(clock):
    """A three-level tree whose leaves take 300 ms to clean up: stop runs each cleanup in reverse order, then returns."""
    cleaned: list[tuple[str, float]] = []

    async def leaf(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await clock.sleep(0.3)
            cleaned.append((name, clock.now()))

    def leaf_spec(name: str) -> ChildSpec:
        return ChildSpec(name, leaf, args=(name,), shutdown=1.0)

    first = Supervisor([leaf_spec("a1"), leaf_spec("a2")], name="a", clock=clock)
    second = Supervisor([leaf_spec("b1"), leaf_spec("b2")], name="b", clock=clock)
    root = Supervisor([first.child_spec(), second.child_spec()], name="root", clock=clock)
    await root.start()
    await settle()

    stopping = asyncio.create_task(root.stop())
    for step in range(3):
        await clock.advance_and_settle(0.3)
        assert not stopping.done(), f"stop returned after {len(cleaned)} cleanups"
    await clock.advance_and_settle(0.3)

    assert stopping.done()
    assert [name for name, _ in cleaned] == ["b2", "b1", "a2", "a1"]
    assert [when for _, when in cleaned] == pytest.approx([0.3, 0.6, 0.9, 1.2])
    assert asyncio.all_tasks() == {asyncio.current_task()}


# 5 ------------------------------------------------------------------------------------------


async def test_backoff_start_failures_then_running(clock):
    """A start that fails twice then succeeds, under backoff: it runs, shows restarting between, and terminate cancels a pending restart."""
    events = EventLog(clock)
    faults = FaultInjector(clock)
    backoff = Backoff(initial=0.1, maximum=10, jitter=0)
    supervisor = Supervisor(
        [faults.wrap(ChildSpec("c", run_forever, backoff=backoff))],
        max_restarts=10,
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    faults.fail_after("c", 1.0)
    faults.fail_on_start("c", 2, 3)

    await clock.advance_and_settle(1.0)
    assert status_of(supervisor, "c") is ChildStatus.RESTARTING
    await clock.advance_and_settle(0.1)
    assert status_of(supervisor, "c") is ChildStatus.RESTARTING
    await clock.advance_and_settle(0.2)
    assert status_of(supervisor, "c") is ChildStatus.RESTARTING
    await clock.advance_and_settle(0.4)

    await wait_for_generation(supervisor, "c", 4, ready=True)
    assert status_of(supervisor, "c") is ChildStatus.RUNNING
    assert [event.delay for event in events.select(ChildRestarting, "c")] == pytest.approx([0.1, 0.2, 0.4])
    assert [events.time_of(event) for event in events.select(ChildStarted, "c")] == pytest.approx(
        [0.0, 1.1, 1.3, 1.7]
    )

    # Crash once more, then terminate while the 0.8 s delay runs.
    faults.fail_after("c", 0.0)
    await clock.advance_and_settle(0.0)
    assert events.select(ChildRestarting, "c")[-1].delay == pytest.approx(0.8)
    await supervisor.terminate_child("c")
    await clock.advance_and_settle(5.0)

    assert faults.starts("c") == 4
    assert status_of(supervisor, "c") is ChildStatus.STOPPED
    assert events.select(ChildStopped, "c")[-1].cause == "terminate"
    await supervisor.stop()


# 6 ------------------------------------------------------------------------------------------


async def test_shutdown_ignored_cancellation_abandoned_on_time(clock, probe):
    """A child that ignores cancellation past its shutdown time is abandoned after exactly that time."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("polite", shutdown=5.0), probe.stubborn_spec("stubborn", shutdown=2.5)],
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    stopping = asyncio.create_task(supervisor.stop())
    await clock.advance_and_settle(2.5 - 1 / 1024)
    assert not stopping.done()
    await clock.advance_and_settle(1 / 1024)

    assert stopping.done()
    timeout = events.select(ChildShutdownTimeout, "stubborn")
    assert len(timeout) == 1
    assert timeout[0].timeout == 2.5
    assert events.time_of(timeout[0]) == 2.5
    assert [(event.child_id, event.timed_out) for event in events.select(ChildStopped)] == [
        ("stubborn", True),
        ("polite", False),
    ]
    assert supervisor.state == "stopped"
    assert probe.log[-1] == ("stop", "polite")

    probe.release("stubborn")
    await settle()
    assert asyncio.all_tasks() == {asyncio.current_task()}


# 7 ------------------------------------------------------------------------------------------


class Shutdown(BaseException):
    """A BaseException that is neither an Exception nor a cancellation."""


@pytest.mark.parametrize("error_type", [SystemExit, KeyboardInterrupt])
def test_system_exit_and_interrupt_leave_event_loop(error_type, probe):
    """A child raising SystemExit or KeyboardInterrupt: recorded, not restarted, raised out of the loop, siblings stopped."""
    recorded = []
    supervisor = Supervisor([probe.spec("sibling"), probe.spec("quitter")], name="sup", on_event=recorded.append)

    async def main() -> None:
        await supervisor.start()
        await settle()
        probe.crash("quitter", error_type("leaving"))
        await supervisor.wait()

    with asyncio.Runner() as runner:
        with pytest.raises(error_type):
            runner.run(main())

    exits = [event for event in recorded if isinstance(event, ChildExited)]
    assert [(event.child_id, type(event.reason), event.abnormal) for event in exits] == [
        ("quitter", error_type, True)
    ]
    assert not any(isinstance(event, ChildRestarting) for event in recorded)
    assert probe.starts["quitter"] == 1
    assert ("stop", "sibling") in probe.log
    assert isinstance(supervisor.failure, error_type)
    assert supervisor.state == "failed"


async def test_custom_base_exception_passed_to_owner(clock, probe):
    """A child raising a custom BaseException: recorded, not restarted, siblings stopped, raised by the root's run()."""
    events = EventLog(clock)
    inner = Supervisor([probe.spec("quitter"), probe.spec("sibling")], name="inner", clock=clock, on_event=events)
    outer = Supervisor([inner.child_spec(), probe.spec("outer-worker")], name="outer", clock=clock, on_event=events)
    owner = asyncio.create_task(outer.run())
    await events.wait_for(ChildReady, "outer-worker")

    probe.crash("quitter", Shutdown("maintenance"))
    with pytest.raises(Shutdown):
        await owner

    quitter_exit = events.select(ChildExited, "quitter")
    assert len(quitter_exit) == 1
    assert isinstance(quitter_exit[0].reason, Shutdown)
    inner_exit = events.select(ChildExited, "inner")
    assert len(inner_exit) == 1
    assert inner_exit[0].reason is quitter_exit[0].reason
    assert events.count(ChildRestarting) == 0
    assert sorted(probe.actions("stop")) == ["outer-worker", "sibling"]
    assert outer.failure is quitter_exit[0].reason
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_unrequested_cancellation_restarted_as_crash(clock, probe):
    """A child cancelled by someone other than its supervisor: an abnormal exit, restarted."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    supervisor.which_children()[0].task.cancel()
    exited = await events.wait_for(ChildExited, "a")
    await wait_for_generation(supervisor, "a", 2, ready=True)

    assert isinstance(exited.reason, asyncio.CancelledError)
    assert exited.abnormal is True
    await supervisor.stop()


# 8 ------------------------------------------------------------------------------------------


async def test_unawaited_failure_logged_and_trapped(clock, probe, supervisor_logs):
    """A temporary child that fails where no one awaits it: logged, emitted, and it fails the test."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("fire-and-forget", restart="temporary")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    with pytest.raises(UnexpectedFailure) as raised:
        with FailureTrap(supervisor):
            probe.crash("fire-and-forget")
            await events.wait_for(ChildExited, "fire-and-forget")

    assert "fire-and-forget" in str(raised.value)
    assert events.select(ChildExited, "fire-and-forget")[0].abnormal is True
    errors = [
        record
        for record in supervisor_logs.records
        if record.name == "supervisor" and record.levelno == logging.ERROR
    ]
    assert len(errors) == 1
    assert "fire-and-forget" in errors[0].getMessage()
    await supervisor.stop()


async def test_abandoned_child_error_reaches_loop_handler(clock):
    """An abandoned child that raises later: the error goes to the loop's exception handler and fails the test."""
    loop = asyncio.get_running_loop()
    late = loop.create_future()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await late  # ignores the cancellation until the test resolves this future
            raise

    supervisor = Supervisor([ChildSpec("stubborn", stubborn, shutdown=1.0)], name="sup", clock=clock)
    await supervisor.start()
    await settle()
    stopping = asyncio.create_task(supervisor.stop())
    await clock.advance_and_settle(1.0)
    assert stopping.done()

    seen = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: seen.append(context))
    try:
        with pytest.raises(UnexpectedFailure) as raised:
            with FailureTrap():
                late.set_exception(RuntimeError("late failure"))
                await settle()
    finally:
        loop.set_exception_handler(previous)

    assert "late failure" in str(raised.value)
    assert len(seen) == 1
    assert isinstance(seen[0]["exception"], RuntimeError)
    assert "stubborn" in seen[0]["message"]
    assert "'sup'" in seen[0]["message"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_error_while_stopping_reported(clock, supervisor_logs):
    """A child that raises instead of accepting cancellation: the error is on ChildStopped and logged."""
    events = EventLog(clock)

    async def messy() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise ValueError("cleanup failed")

    supervisor = Supervisor([ChildSpec("messy", messy)], clock=clock, on_event=events)
    await start_all(supervisor, events)
    await supervisor.stop()

    stopped = events.select(ChildStopped, "messy")
    assert len(stopped) == 1
    assert isinstance(stopped[0].reason, ValueError)
    assert any("cleanup failed" in record.getMessage() for record in supervisor_logs.records)


# 9 ------------------------------------------------------------------------------------------


async def test_runtime_requests_name_supervisor_and_child(clock, probe):
    """Unknown ids, duplicate ids and a stopped supervisor: each request raises an error naming both."""
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], name="sup", clock=clock)
    await supervisor.start()
    await settle()

    for operation in (supervisor.terminate_child, supervisor.restart_child):
        with pytest.raises(ChildNotFound, match=r"'sup'.*'ghost'"):
            await operation("ghost")
    with pytest.raises(ChildNotFound, match=r"'sup'.*'ghost'"):
        supervisor.delete_child("ghost")
    with pytest.raises(DuplicateChild, match=r"'sup'.*'a'.*running") as duplicate:
        await supervisor.start_child(probe.spec("a"))
    assert duplicate.value.running is True
    with pytest.raises(ChildRunning, match=r"'b'.*'sup'"):
        supervisor.delete_child("b")
    with pytest.raises(ChildRunning, match=r"'b'.*'sup'"):
        await supervisor.restart_child("b")

    await supervisor.terminate_child("b")
    with pytest.raises(DuplicateChild, match="not running") as duplicate:
        await supervisor.start_child(probe.spec("b"))
    assert duplicate.value.running is False

    await supervisor.stop()
    requests = [
        ("start", lambda: supervisor.start_child(probe.spec("c")), "c"),
        ("terminate", lambda: supervisor.terminate_child("a"), "a"),
        ("restart", lambda: supervisor.restart_child("b"), "b"),
        ("delete", lambda: supervisor.delete_child("b"), "b"),
    ]
    for operation, request, child_id in requests:
        with pytest.raises(SupervisorNotRunning) as raised:
            result = request()
            if asyncio.iscoroutine(result):
                await result
        assert raised.value.supervisor == "sup"
        assert raised.value.child_id == child_id
        assert f"cannot {operation} child {child_id!r}: supervisor 'sup' is stopped" in str(raised.value)


async def test_dynamic_max_children_rejected(clock, probe):
    """A dynamic supervisor at max_children: another start_child raises TooManyChildren."""
    supervisor = DynamicSupervisor(ChildSpec("w", probe.run), max_children=2, name="pool", clock=clock)
    await supervisor.start()
    first = await supervisor.start_child("x")
    await supervisor.start_child("y")

    with pytest.raises(TooManyChildren, match=r"'pool'.*max_children=2"):
        await supervisor.start_child("z")
    await supervisor.terminate_child(first)
    third = await supervisor.start_child("z")

    assert [info.id for info in supervisor.which_children()] == [2, third]
    await supervisor.stop()


async def test_base_exception_during_group_restart_fails_supervisor(clock, probe):
    """A custom BaseException from a child restarted by one_for_all, before it is ready: the supervisor fails with it."""
    events = EventLog(clock)
    faults = FaultInjector(clock)
    supervisor = Supervisor(
        [faults.wrap(probe.spec("a", signals_ready=True)), probe.spec("b")],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    faults.fail_on_start("a", 2, error=Shutdown("during restart"))

    probe.crash("b")
    with pytest.raises(Shutdown):
        await supervisor.wait()

    assert supervisor.state == "failed"
    assert probe.starts == {"a": 1, "b": 1}
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_base_exception_at_start_raised_by_start(clock, probe):
    """A custom BaseException from a child before it is ready at start(): start() raises it after stopping the others."""
    faults = FaultInjector(clock)
    supervisor = Supervisor([probe.spec("a"), faults.wrap(probe.spec("b", signals_ready=True))], clock=clock)
    faults.fail_on_start("b", 1, error=Shutdown("at start"))

    with pytest.raises(Shutdown):
        await supervisor.start()

    assert supervisor.state == "failed"
    assert probe.actions("stop") == ["a"]


async def test_abandoned_child_base_exception_to_loop_handler(clock):
    """An abandoned child that later raises a custom BaseException: it goes to the loop's handler, not to the stopped supervisor."""
    loop = asyncio.get_running_loop()
    late = loop.create_future()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await late
            raise

    supervisor = Supervisor([ChildSpec("stubborn", stubborn, shutdown=1.0)], clock=clock)
    await supervisor.start()
    await settle()
    stopping = asyncio.create_task(supervisor.stop())
    await clock.advance_and_settle(1.0)
    await stopping

    seen = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: seen.append(context))
    try:
        late.set_exception(Shutdown("late"))
        await settle()
    finally:
        loop.set_exception_handler(previous)

    assert len(seen) == 1
    assert isinstance(seen[0]["exception"], Shutdown)
    assert supervisor.failure is None
    assert supervisor.state == "stopped"
