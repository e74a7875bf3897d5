"""Typed events: timestamps, the callback, the async iterator and restart latency."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from supervisor import (
    ChildExited,
    ChildReady,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    Event,
    InvalidChildSpec,
    Supervisor,
    SupervisorStopped,
)
from supervisor.testing import settle

from conftest import EventLog, start_all


async def test_events_carry_perf_counter_timestamps(clock, probe):
    """Every event is an Event of the supervisor, stamped with perf_counter_ns in arrival order."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], name="sup", clock=clock, on_event=events)
    before_ns = time.perf_counter_ns()

    await start_all(supervisor, events)
    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)
    await supervisor.stop()
    after_ns = time.perf_counter_ns()

    assert len(events.events) > 0
    for event in events.events:
        assert isinstance(event, Event), event
        assert event.supervisor == "sup", event
        assert before_ns <= event.time_ns <= after_ns, event
    timestamps = [event.time_ns for event in events.events]
    assert timestamps == sorted(timestamps)


async def test_events_are_frozen(clock, probe):
    """An event cannot be modified after it was delivered."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    with pytest.raises(dataclasses.FrozenInstanceError):
        events.events[0].child_id = "b"
    await supervisor.stop()


async def test_one_for_one_restart_event_sequence(clock, probe):
    """A one_for_one restart reports exit, restarting, started and ready, with generations."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)
    first_restart_event = len(events.events)
    error = RuntimeError("boom")

    probe.crash("a", error)
    await events.wait_for(ChildReady, "a", count=2)

    exited, restarting, started, ready = events.events[first_restart_event:]
    assert isinstance(exited, ChildExited)
    assert exited.generation == 1
    assert exited.reason is error
    assert isinstance(restarting, ChildRestarting)
    assert restarting.generation == 2
    assert restarting.delay == 0
    assert isinstance(started, ChildStarted)
    assert started.generation == 2
    assert isinstance(ready, ChildReady)
    assert ready.generation == 2
    await supervisor.stop()


async def test_restart_latency_derivable_from_events(clock, probe):
    """Restart latency is ChildReady.time_ns minus ChildExited.time_ns, and never negative."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a", signals_ready=True)], clock=clock, on_event=events)
    await start_all(supervisor, events)

    for generation in (2, 3):
        probe.crash("a")
        await events.wait_for(ChildReady, "a", count=generation)

    exits = events.select(ChildExited, "a")
    replacements = events.select(ChildReady, "a")[1:]
    assert [event.generation for event in exits] == [1, 2]
    assert [event.generation for event in replacements] == [2, 3]
    for exited, ready in zip(exits, replacements):
        assert ready.time_ns - exited.time_ns >= 0
    await supervisor.stop()


async def test_event_iterator_matches_callback(clock, probe):
    """The async iterator delivers the same events as the callback, then ends after the stop."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], clock=clock, on_event=events)
    stream = supervisor.events()

    async def consume():
        return [event async for event in stream]

    consumer = asyncio.create_task(consume())
    await start_all(supervisor, events)
    probe.crash("b")
    await events.wait_for(ChildReady, "b", count=2)
    await supervisor.stop()
    received = await consumer

    assert len(received) == len(events.events)
    assert all(got is sent for got, sent in zip(received, events.events))
    assert isinstance(received[-1], SupervisorStopped)


async def test_event_iterator_without_callback(clock, probe):
    """A supervisor without on_event still delivers every event through the iterator."""
    supervisor = Supervisor([probe.spec("a")], clock=clock)
    stream = supervisor.events()

    async def consume():
        return [(type(event).__name__, event.child_id) async for event in stream]

    consumer = asyncio.create_task(consume())
    await supervisor.start()
    await settle()
    await supervisor.stop()

    assert await consumer == [
        ("ChildStarted", "a"),
        ("ChildReady", "a"),
        ("ChildStopped", "a"),
        ("SupervisorStopped", None),
    ]


async def test_closed_event_stream_ends_iteration(clock, probe):
    """Closing a stream ends its iteration while the supervisor keeps running."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)
    stream = supervisor.events()

    async def consume():
        return [event async for event in stream]

    consumer = asyncio.create_task(consume())
    await settle()
    stream.close()
    received = await consumer
    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)

    assert received == []
    assert supervisor.state == "running"
    await supervisor.stop()


async def test_stop_events_name_cause(clock, probe):
    """ChildStopped.cause distinguishes a shutdown from a group restart."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("b")], strategy="one_for_all", clock=clock, on_event=events
    )
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "b", count=2)
    await supervisor.stop()

    assert [(event.child_id, event.cause) for event in events.select(ChildStopped)] == [
        ("b", "group_restart"),
        ("b", "shutdown"),
        ("a", "shutdown"),
    ]


async def test_failing_callback_does_not_break_restart(clock, probe):
    """An on_event callback that raises is reported to the loop and the restart still happens."""
    loop_errors = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context))
    events = EventLog(clock)

    def callback(event):
        events(event)
        if isinstance(event, ChildExited):
            raise ValueError("callback bug")

    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=callback)
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)

    assert len(loop_errors) == 1
    assert isinstance(loop_errors[0]["exception"], ValueError)
    assert probe.starts["a"] == 2
    await supervisor.stop()


async def test_events_after_stop_end_at_once(probe):
    """A stream taken after the supervisor stopped is at its end instead of waiting forever."""
    supervisor = Supervisor([probe.spec("a")])
    await supervisor.start()
    await supervisor.stop()

    received = [event async for event in supervisor.events()]

    assert received == []


async def test_async_on_event_rejected():
    """An async on_event would never be awaited, so the supervisor refuses it, naming the field."""

    async def on_event(event):
        pass

    with pytest.raises(InvalidChildSpec, match="on_event") as info:
        Supervisor([], on_event=on_event)
    assert "events()" in str(info.value)
