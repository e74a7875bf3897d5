"""Which children each strategy restarts, and in which order."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import (
    Backoff,
    ChildExited,
    ChildReady,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    ChildStopped,
    InvalidChildSpec,
    Supervisor,
    SupervisorStopped,
)

from supervisor.testing import FaultInjector, settle

from conftest import EventLog, start_all


async def test_children_start_in_order(probe):
    """Children start in the order of the child list, each after the previous one is ready."""
    events = EventLog()
    supervisor = Supervisor([probe.spec("a"), probe.spec("b"), probe.spec("c")], on_event=events)

    await start_all(supervisor, events)

    assert probe.actions("start") == ["a", "b", "c"]
    assert events.kinds(ChildStarted, ChildReady) == [
        ("ChildStarted", "a"),
        ("ChildReady", "a"),
        ("ChildStarted", "b"),
        ("ChildReady", "b"),
        ("ChildStarted", "c"),
        ("ChildReady", "c"),
    ]
    await supervisor.stop()


async def test_children_stop_in_reverse_order(probe):
    """stop() cancels the children from the last one to the first."""
    events = EventLog()
    supervisor = Supervisor([probe.spec("a"), probe.spec("b"), probe.spec("c")], on_event=events)
    await start_all(supervisor, events)

    await supervisor.stop()

    assert probe.actions("stop") == ["c", "b", "a"]
    assert events.kinds(ChildStopped) == [
        ("ChildStopped", "c"),
        ("ChildStopped", "b"),
        ("ChildStopped", "a"),
    ]
    assert isinstance(events.events[-1], SupervisorStopped)


async def test_one_for_one_restarts_only_failed_child(probe):
    """With one_for_one, a crash restarts the crashed child and leaves its siblings running."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")], strategy="one_for_one", on_event=events
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("b")
    await events.wait_for(ChildReady, "b", count=2)
    await settle()

    assert probe.log == [("crash", "b"), ("start", "b")]
    assert probe.starts == {"a": 1, "b": 2, "c": 1}
    await supervisor.stop()


async def test_one_for_all_restarts_siblings_in_order(probe):
    """With one_for_all, a crash stops the others in reverse order, then starts all in order."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c"), probe.spec("d")],
        strategy="one_for_all",
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("b")
    await events.wait_for(ChildReady, "d", count=2)
    await settle()

    assert probe.log == [
        ("crash", "b"),
        ("stop", "d"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    await supervisor.stop()


async def test_one_for_all_event_sequence(probe):
    """A one_for_all group restart reports exit, stops in reverse, then start and ready in order."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")], strategy="one_for_all", on_event=events
    )
    await start_all(supervisor, events)
    first_restart_event = len(events.events)

    probe.crash("a")
    await events.wait_for(ChildReady, "c", count=2)
    await settle()

    group_restart = [
        (type(event).__name__, event.child_id)
        for event in events.events[first_restart_event:]
        if isinstance(event, (ChildStopped, ChildStarted, ChildReady))
    ]
    assert group_restart == [
        ("ChildStopped", "c"),
        ("ChildStopped", "b"),
        ("ChildStarted", "a"),
        ("ChildReady", "a"),
        ("ChildStarted", "b"),
        ("ChildReady", "b"),
        ("ChildStarted", "c"),
        ("ChildReady", "c"),
    ]
    await supervisor.stop()


async def test_rest_for_one_restarts_later_siblings(probe):
    """With rest_for_one, a crash restarts the crashed child and those after it, not those before."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c"), probe.spec("d")],
        strategy="rest_for_one",
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("b")
    await events.wait_for(ChildReady, "d", count=2)
    await settle()

    assert probe.log == [
        ("crash", "b"),
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert probe.starts["a"] == 1
    await supervisor.stop()


async def test_rest_for_one_last_child_restarts_alone(probe):
    """With rest_for_one, a crash of the last child restarts only that child."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")], strategy="rest_for_one", on_event=events
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("c")
    await events.wait_for(ChildReady, "c", count=2)
    await settle()

    assert probe.log == [("crash", "c"), ("start", "c")]
    await supervisor.stop()


async def test_one_for_all_does_not_restart_temporary_sibling(probe):
    """A temporary child stopped by a sibling's group restart is not started again, as in OTP."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("t", restart="temporary"), probe.spec("c")],
        strategy="one_for_all",
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("a")
    await events.wait_for(ChildReady, "c", count=2)
    await settle()

    assert probe.log == [
        ("crash", "a"),
        ("stop", "c"),
        ("stop", "t"),
        ("start", "a"),
        ("start", "c"),
    ]
    await supervisor.stop()


async def test_one_for_all_transient_normal_exit_restarts_nothing(probe):
    """A transient child that returns normally under one_for_all does not restart its siblings."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", restart="transient"), probe.spec("c")],
        strategy="one_for_all",
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.finish("b")
    await events.wait_for(ChildExited, "b")
    await settle()

    assert probe.log == [("return", "b")]
    assert probe.starts == {"a": 1, "b": 1, "c": 1}
    await supervisor.stop()


async def test_one_for_one_restart_reuses_child_task(probe):
    """A one_for_one restart runs the new generation inside the same asyncio task."""
    events = EventLog()
    supervisor = Supervisor([probe.spec("a")], on_event=events)
    await start_all(supervisor, events)
    [before] = supervisor.which_children()

    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)
    [after] = supervisor.which_children()

    assert after.task is before.task
    assert not after.task.done()
    await supervisor.stop()


async def test_one_for_one_restart_needs_no_loop_pass(probe):
    """Between a child's exit and its replacement's start, no other callback of the loop runs."""
    loop = asyncio.get_running_loop()
    marks = []

    def on_event(event):
        events(event)
        if isinstance(event, ChildExited):
            loop.call_soon(marks.append, "loop pass")
        elif isinstance(event, ChildStarted) and event.generation == 2:
            marks.append("replacement started")

    events = EventLog()
    supervisor = Supervisor([probe.spec("a")], on_event=on_event)
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)
    await settle()

    assert marks == ["replacement started", "loop pass"]
    await supervisor.stop()


async def test_rest_for_one_transient_crash_restarts_rest(probe):
    """With rest_for_one, a transient child's crash restarts it and the children after it."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", restart="transient"), probe.spec("c")],
        strategy="rest_for_one",
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("b")
    await events.wait_for(ChildReady, "c", count=2)
    await settle()

    assert probe.log == [("crash", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]
    await supervisor.stop()


async def test_rest_for_one_temporary_exit_restarts_nothing(probe):
    """With rest_for_one, a temporary child's crash restarts nothing and removes that child."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("t", restart="temporary"), probe.spec("c")],
        strategy="rest_for_one",
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("t")
    await events.wait_for(ChildExited, "t")
    await settle()

    assert probe.log == [("crash", "t")]
    assert [info.id for info in supervisor.which_children()] == ["a", "c"]
    await supervisor.stop()


def statuses(supervisor: Supervisor) -> dict[str, str]:
    return {info.id: str(info.status) for info in supervisor.which_children()}


async def test_one_for_all_stopped_siblings_show_restarting(clock, probe):
    """During a one_for_all restart, children to be started again show restarting, a temporary one stopped."""
    events = EventLog(clock)
    at_stop = []

    def on_event(event):
        events(event)
        if isinstance(event, ChildStopped):
            at_stop.append((event.child_id, event.cause, statuses(supervisor)))

    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("t", restart="temporary"), probe.spec("c")],
        strategy="one_for_all",
        clock=clock,
        on_event=on_event,
    )
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildRestarting, "a")
    await settle()

    assert at_stop == [
        ("c", "group_restart", {"a": "restarting", "t": "running", "c": "restarting"}),
        ("t", "group_restart", {"a": "restarting", "t": "stopped", "c": "restarting"}),
    ]
    assert statuses(supervisor) == {"a": "restarting", "t": "stopped", "c": "restarting"}

    clock.advance(1.0)
    await events.wait_for(ChildReady, "c", count=2)

    assert statuses(supervisor) == {"a": "running", "c": "running"}
    await supervisor.stop()


async def test_rest_for_one_stopped_siblings_show_restarting(clock, probe):
    """During a rest_for_one restart, the children from the failed one on show restarting, the others running."""
    events = EventLog(clock)
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b", backoff=backoff), probe.spec("c")],
        strategy="rest_for_one",
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)

    probe.crash("b")
    await events.wait_for(ChildRestarting, "b")
    await settle()

    assert statuses(supervisor) == {"a": "running", "b": "restarting", "c": "restarting"}
    assert [(event.child_id, event.cause) for event in events.select(ChildStopped)] == [("c", "group_restart")]

    clock.advance(1.0)
    await events.wait_for(ChildReady, "c", count=2)

    assert statuses(supervisor) == {"a": "running", "b": "running", "c": "running"}
    await supervisor.stop()


async def test_stop_during_group_restart_lists_stopped(clock, probe):
    """stop() while a group restart waits for its backoff delay: the children to be restarted end as stopped."""
    events = EventLog(clock)
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("b")], strategy="one_for_all", clock=clock, on_event=events
    )
    await start_all(supervisor, events)
    probe.crash("a")
    await events.wait_for(ChildRestarting, "a")
    await settle()

    await supervisor.stop()

    assert statuses(supervisor) == {"a": "stopped", "b": "stopped"}
    assert probe.starts == {"a": 1, "b": 1}


async def test_group_restart_abandoned_sibling_shows_restarting(clock, probe):
    """A sibling abandoned after its shutdown time in a group restart: its fresh record is listed as restarting."""
    events = EventLog(clock)
    at_stop = {}

    def on_event(event):
        events(event)
        if isinstance(event, ChildStopped):
            at_stop[event.child_id] = statuses(supervisor)

    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.stubborn_spec("s", shutdown=2.0)],
        strategy="one_for_all",
        clock=clock,
        on_event=on_event,
    )
    await start_all(supervisor, events)

    probe.crash("a")
    await settle()
    clock.advance(2.0)
    stopped = await events.wait_for(ChildStopped, "s")
    await settle()

    assert stopped.timed_out is True
    assert at_stop["s"] == {"a": "restarting", "s": "restarting"}
    assert statuses(supervisor) == {"a": "restarting", "s": "restarting"}
    probe.release("s")  # the abandoned first generation returns

    clock.advance(1.0)
    await events.wait_for(ChildReady, "s", count=2)

    assert statuses(supervisor) == {"a": "running", "s": "running"}
    stopping = asyncio.create_task(supervisor.stop())
    await settle()
    clock.advance(2.0)
    await stopping
    probe.release("s")


async def _group_restart_in_backoff(clock, probe, events):
    # a, b, c under one_for_all. a crashes, and its 1 s backoff delays the group restart while
    # every child is stopped and listed as restarting.
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("b"), probe.spec("c")],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.crash("a")
    await events.wait_for(ChildRestarting, "a")
    await settle()
    assert statuses(supervisor) == {"a": "restarting", "b": "restarting", "c": "restarting"}
    return supervisor


async def test_delete_during_group_restart_is_not_restarted(clock, probe):
    """A child deleted while a group restart is pending is not started again; its siblings are."""
    events = EventLog(clock)
    supervisor = await _group_restart_in_backoff(clock, probe, events)

    supervisor.delete_child("b")
    clock.advance(1.0)
    await events.wait_for(ChildReady, "c", count=2)
    await settle()

    assert statuses(supervisor) == {"a": "running", "c": "running"}
    assert events.count(ChildStarted, "b") == 1
    assert probe.starts["b"] == 1
    await supervisor.stop()


async def test_terminate_during_group_restart_keeps_child_down(clock, probe):
    """A child terminated while a group restart is pending stays stopped until restart_child()."""
    events = EventLog(clock)
    supervisor = await _group_restart_in_backoff(clock, probe, events)

    await supervisor.terminate_child("b")
    clock.advance(1.0)
    await events.wait_for(ChildReady, "c", count=2)
    await settle()

    assert statuses(supervisor) == {"a": "running", "b": "stopped", "c": "running"}
    assert events.count(ChildStarted, "b") == 1
    assert events.count(ChildRestarting, "a") == 1

    await supervisor.restart_child("b")
    assert statuses(supervisor) == {"a": "running", "b": "running", "c": "running"}
    await supervisor.stop()


async def test_terminate_starting_child_during_group_restart(clock):
    """Terminating a child that a group restart is starting stops it, counts no restart and starts the rest."""
    events = EventLog(clock)
    crash = asyncio.Event()

    async def slow_ready(*, task_status):
        await clock.sleep(1.0)
        task_status.started()
        await asyncio.Event().wait()

    async def crasher(*, task_status):
        task_status.started()
        if crash.is_set():
            await asyncio.Event().wait()  # the restarted generation stays up
        await crash.wait()
        raise RuntimeError("crash")

    supervisor = Supervisor(
        [
            ChildSpec("a", slow_ready, signals_ready=True),
            ChildSpec("b", slow_ready, signals_ready=True),
            ChildSpec("c", crasher, signals_ready=True),
        ],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
    )
    starting = asyncio.ensure_future(supervisor.start())
    await clock.advance_and_settle(1.0)
    await clock.advance_and_settle(1.0)
    await starting

    crash.set()
    await events.wait_for(ChildStarted, "a", count=2)
    await supervisor.terminate_child("a")
    await events.wait_for(ChildStarted, "b", count=2)
    await clock.advance_and_settle(1.0)
    await events.wait_for(ChildReady, "c", count=2)

    assert statuses(supervisor) == {"a": "stopped", "b": "running", "c": "running"}
    assert events.count(ChildRestarting) == 1
    await supervisor.stop()


async def test_parallel_group_restart_starts_without_waiting_for_readiness(clock, probe):
    """parallel_group_restart: all are stopped, then all started before any is ready."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec(name, signals_ready=True) for name in "abc"],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
        parallel_group_restart=True,
    )
    await start_all(supervisor, events)
    probe.hold_ready("a")
    probe.hold_ready("b")

    probe.crash("b")
    await events.wait_for(ChildStarted, "c", count=2)
    await settle()

    stops = [event.child_id for event in events.select(ChildStopped)]
    assert stops == ["c", "a"]  # b had exited; the rest stop in reverse start order
    assert events.count(ChildReady, "a") == 1  # a and b still hold their readiness
    assert events.count(ChildReady, "c") == 2  # c did not wait for them
    assert statuses(supervisor) == {"a": "starting", "b": "starting", "c": "running"}

    probe.allow_ready("b")
    probe.allow_ready("a")
    await events.wait_for(ChildReady, "a", count=2)
    assert statuses(supervisor) == {"a": "running", "b": "running", "c": "running"}
    assert events.count(ChildRestarting) == 1
    await supervisor.stop()


async def test_parallel_group_restart_retries_a_failed_start(clock, probe):
    """A child that fails its parallel restart causes one more group restart, counted as such."""
    events = EventLog(clock)
    faults = FaultInjector(clock)
    faults.fail_on_start("b", 2)
    supervisor = Supervisor(
        [faults.wrap(probe.spec(name, signals_ready=True)) for name in "ab"],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
        parallel_group_restart=True,
    )
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "b", count=2)
    await settle()

    assert faults.starts("b") == 3
    assert events.count(ChildRestarting) == 2
    assert statuses(supervisor) == {"a": "running", "b": "running"}
    await supervisor.stop()


def test_parallel_group_restart_must_be_bool():
    with pytest.raises(InvalidChildSpec, match="parallel_group_restart"):
        Supervisor([], parallel_group_restart="yes")
