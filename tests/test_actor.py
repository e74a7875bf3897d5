"""Actors: a reference and a mailbox that outlive restarts, and callers that never hang."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from supervisor import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    AskTimeout,
    ChildExited,
    ChildStartError,
    InvalidChildSpec,
    MailboxFull,
    RestartIntensityExceeded,
    Supervisor,
)
from supervisor.testing import settle

from conftest import EventLog


class Journal:
    """What the instances of ``Worker`` did, kept outside them so it survives restarts.

    ``start_gate``, when set, makes the next ``on_start`` wait for it; ``start_failures``
    makes that many of the next restarts fail in ``on_start``; ``stop_error`` makes
    ``on_stop`` raise it.
    """

    def __init__(self) -> None:
        self.starts = 0
        self.handled: list[tuple[int, object]] = []
        self.stops: list[tuple[int, BaseException | None]] = []
        self.start_gate: asyncio.Future[None] | None = None
        self.start_failures = 0
        self.stop_error: Exception | None = None


class Worker(Actor):
    """Handles ``("echo", value)``, ``("fail", error)`` and ``("wait", future)`` messages.

    An instance records ``(instance number, value)`` for each echo and replies with it; a
    wait message suspends the handler until the future is done and raises its exception.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.number = 0

    async def on_start(self) -> None:
        journal = self.journal
        journal.starts += 1
        self.number = journal.starts
        gate, journal.start_gate = journal.start_gate, None
        if gate is not None:
            await gate
        if journal.start_failures and self.number > 1:
            journal.start_failures -= 1
            raise RuntimeError(f"instance {self.number} failed to start")

    async def receive(self, message: tuple[str, object]) -> object:
        kind, value = message
        if kind == "fail":
            raise value  # type: ignore[misc]
        if kind == "wait":
            await value  # type: ignore[misc]
            return "released"
        self.journal.handled.append((self.number, value))
        return (self.number, value)

    async def on_stop(self, reason: BaseException | None) -> None:
        self.journal.stops.append((self.number, reason))
        if self.journal.stop_error is not None:
            raise self.journal.stop_error


def worker(journal: Journal, **options) -> ActorRef:
    return ActorRef(Worker, name="worker", args=(journal,), **options)


async def started(ref: ActorRef, clock, **supervisor_options) -> tuple[Supervisor, EventLog]:
    events = EventLog(clock)
    supervisor_options.setdefault("max_restarts", 100)
    supervisor = Supervisor(
        [ref.child_spec()], name="sup", clock=clock, on_event=events, **supervisor_options
    )
    await supervisor.start()
    return supervisor, events


def block(ref: ActorRef) -> asyncio.Future[None]:
    """Make the actor's current or next handler wait until the returned future is done."""
    gate = asyncio.get_running_loop().create_future()
    ref.tell(("wait", gate))
    return gate


# ---------------------------------------------------------------------------- messaging


async def test_ask_returns_reply(clock):
    """ask() returns what receive() returned, and tell() messages come first in order."""
    journal = Journal()
    ref = worker(journal)
    supervisor, _ = await started(ref, clock)

    ref.tell(("echo", "a"))
    ref.tell(("echo", "b"))
    reply = await ref.ask(("echo", "c"))

    assert reply == (1, "c")
    assert journal.handled == [(1, "a"), (1, "b"), (1, "c")]
    assert ref.state == "running"
    await supervisor.stop()


async def test_messages_before_start_wait(clock):
    """Messages sent before the supervisor starts the actor are handled once it starts."""
    journal = Journal()
    ref = worker(journal)
    ref.tell(("echo", 1))
    pending = asyncio.create_task(ref.ask(("echo", 2)))
    await settle()

    assert ref.state == "idle"
    assert ref.pending == 2

    supervisor, _ = await started(ref, clock)

    assert await pending == (1, 2)
    assert journal.handled == [(1, 1), (1, 2)]
    await supervisor.stop()


async def test_handler_failure_fails_its_ask(clock):
    """The ask whose message was in flight at a failure gets ActorFailed naming actor and cause."""
    journal = Journal()
    ref = worker(journal)
    supervisor, events = await started(ref, clock)
    error = ValueError("bad input")

    with pytest.raises(ActorFailed) as caught:
        await ref.ask(("fail", error))

    assert caught.value.actor == "worker"
    assert caught.value.reason is error
    assert caught.value.__cause__ is error
    assert "'worker'" in str(caught.value)
    assert "ValueError('bad input')" in str(caught.value)
    assert await ref.ask(("echo", "next")) == (2, "next")
    assert events.count(ChildExited, "worker") == 1
    await supervisor.stop()


async def test_failed_message_not_retried(clock):
    """After a failure the new instance goes on with the next message, not the failed one."""
    journal = Journal()
    ref = worker(journal)
    supervisor, events = await started(ref, clock)

    ref.tell(("echo", 1))
    ref.tell(("fail", RuntimeError("boom")))
    ref.tell(("echo", 2))
    await ref.ask(("echo", 3))

    assert journal.handled == [(1, 1), (2, 2), (2, 3)]
    assert journal.starts == 2
    assert ref.instances == 2
    await supervisor.stop()


async def test_mailbox_survives_restart(clock):
    """Messages sent while the actor restarts wait for the new instance, in order."""
    journal = Journal()
    ref = worker(journal)
    supervisor, events = await started(ref, clock)
    start_gate = asyncio.get_running_loop().create_future()
    journal.start_gate = start_gate

    ref.tell(("fail", RuntimeError("boom")))
    await events.wait_for(ChildExited, "worker")
    ref.tell(("echo", "a"))
    ref.tell(("echo", "b"))
    last = asyncio.create_task(ref.ask(("echo", "c")))
    await settle()

    assert ref.state == "starting"
    assert ref.pending == 3
    assert journal.handled == []
    assert [number for number, _ in journal.stops] == [1]

    start_gate.set_result(None)

    assert await last == (2, "c")
    assert journal.handled == [(2, "a"), (2, "b"), (2, "c")]
    await supervisor.stop()


async def test_start_failure_keeps_mailbox(clock):
    """A restart whose on_start fails loses no queued message; the next instance gets them."""
    journal = Journal()
    ref = worker(journal)
    supervisor, events = await started(ref, clock)
    journal.start_failures = 1
    gate = block(ref)
    ref.tell(("echo", "a"))
    ref.tell(("echo", "b"))
    await settle()

    gate.set_exception(RuntimeError("boom"))
    reply = await ref.ask(("echo", "c"))

    assert reply == (3, "c")
    assert journal.handled == [(3, "a"), (3, "b"), (3, "c")]
    assert events.count(ChildExited, "worker") == 2
    await supervisor.stop()


async def test_on_stop_gets_reason(clock):
    """on_stop sees the handler's error after a failure and CancelledError at shutdown."""
    journal = Journal()
    ref = worker(journal)
    supervisor, _ = await started(ref, clock)
    error = KeyError("missing")

    with pytest.raises(ActorFailed):
        await ref.ask(("fail", error))
    await ref.ask(("echo", 1))
    await supervisor.stop()

    assert [number for number, _ in journal.stops] == [1, 2]
    assert journal.stops[0][1] is error
    assert isinstance(journal.stops[1][1], asyncio.CancelledError)


async def test_on_stop_error_reported(clock):
    """An error raised by on_stop goes to the loop's exception handler; the restart goes on."""
    journal = Journal()
    journal.stop_error = OSError("cleanup failed")
    ref = worker(journal)
    supervisor, _ = await started(ref, clock)
    reported: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))

    with pytest.raises(ActorFailed) as caught:
        await ref.ask(("fail", ValueError("bad")))
    reply = await ref.ask(("echo", 1))

    assert isinstance(caught.value.reason, ValueError)
    assert reply == (2, 1)
    assert len(reported) == 1
    assert reported[0]["exception"] is journal.stop_error
    assert "'worker'" in reported[0]["message"]
    journal.stop_error = None
    await supervisor.stop()


# ---------------------------------------------------------------------------- mailbox limit


async def test_tell_raises_when_full(clock):
    """tell() into a full mailbox raises MailboxFull naming the actor and the limit."""
    journal = Journal()
    ref = worker(journal, mailbox_size=2)
    supervisor, _ = await started(ref, clock)
    gate = block(ref)
    await settle()  # the wait message is in flight and no longer counts
    ref.tell(("echo", 1))
    ref.tell(("echo", 2))

    with pytest.raises(MailboxFull) as caught:
        ref.tell(("echo", 3))

    assert caught.value.actor == "worker"
    assert caught.value.limit == 2
    assert "'worker'" in str(caught.value)
    assert "2 messages" in str(caught.value)
    gate.set_result(None)
    await ref.ask(("echo", 4))
    assert journal.handled == [(1, 1), (1, 2), (1, 4)]
    await supervisor.stop()


async def test_send_waits_for_room(clock):
    """send() into a full mailbox waits, and senders get in first come first served."""
    journal = Journal()
    ref = worker(journal, mailbox_size=1)
    supervisor, _ = await started(ref, clock)
    gate = block(ref)
    await settle()
    ref.tell(("echo", 1))
    second = asyncio.create_task(ref.send(("echo", 2)))
    third = asyncio.create_task(ref.send(("echo", 3)))
    await settle()

    assert not second.done()
    assert not third.done()
    assert ref.pending == 1

    gate.set_result(None)
    await second
    await third
    await ref.ask(("echo", 4))

    assert journal.handled == [(1, 1), (1, 2), (1, 3), (1, 4)]
    await supervisor.stop()


async def test_ask_waits_for_room(clock):
    """ask() into a full mailbox waits for room instead of failing."""
    journal = Journal()
    ref = worker(journal, mailbox_size=1)
    supervisor, _ = await started(ref, clock)
    gate = block(ref)
    await settle()
    ref.tell(("echo", 1))
    reply = asyncio.create_task(ref.ask(("echo", 2)))
    await settle()

    assert not reply.done()

    gate.set_result(None)
    assert await reply == (1, 2)
    assert journal.handled == [(1, 1), (1, 2)]
    await supervisor.stop()


async def test_cancelled_send_not_delivered(clock):
    """A send() cancelled while it waits for room never reaches the actor."""
    journal = Journal()
    ref = worker(journal, mailbox_size=1)
    supervisor, _ = await started(ref, clock)
    gate = block(ref)
    await settle()
    ref.tell(("echo", 1))
    cancelled = asyncio.create_task(ref.send(("echo", "cancelled")))
    await settle()
    cancelled.cancel()
    await settle()

    gate.set_result(None)
    await ref.ask(("echo", 2))

    assert cancelled.cancelled()
    assert journal.handled == [(1, 1), (1, 2)]
    await supervisor.stop()


# ---------------------------------------------------------------------------- ask timeout


async def test_ask_times_out(clock):
    """ask() raises AskTimeout after exactly its timeout; the queued message is still handled."""
    journal = Journal()
    ref = worker(journal, clock=clock)
    supervisor, _ = await started(ref, clock)
    gate = block(ref)
    reply = asyncio.create_task(ref.ask(("echo", "late"), timeout=2.0))
    await settle()
    clock.advance(1.999)
    await settle()

    assert not reply.done()

    clock.advance(0.001)
    with pytest.raises(AskTimeout) as caught:
        await reply

    assert isinstance(caught.value, TimeoutError)
    assert caught.value.actor == "worker"
    assert caught.value.timeout == 2.0
    assert "'worker'" in str(caught.value)
    gate.set_result(None)
    await ref.ask(("echo", "after"))
    assert journal.handled == [(1, "late"), (1, "after")]
    await supervisor.stop()


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), float("nan"), "1", True])
async def test_ask_rejects_bad_timeout(clock, timeout):
    """ask() with a timeout that is not positive seconds or None raises ValueError showing it."""
    ref = worker(Journal())

    with pytest.raises(ValueError) as caught:
        await ref.ask(("echo", 1), timeout=timeout)

    assert f"timeout={timeout!r}" in str(caught.value)
    assert ref.pending == 0


# ---------------------------------------------------------------------------- stopped for good


async def test_temporary_actor_stops_for_good(clock):
    """A temporary actor that fails fails its pending asks, and later ones at once."""
    journal = Journal()
    ref = worker(journal)
    supervisor = Supervisor([ref.child_spec(restart="temporary")], clock=clock)
    await supervisor.start()
    gate = block(ref)
    queued = asyncio.create_task(ref.ask(("echo", 1)))
    await settle()

    gate.set_exception(RuntimeError("boom"))
    with pytest.raises(ActorStopped) as caught:
        await queued

    assert caught.value.actor == "worker"
    assert "temporary" in str(caught.value)
    assert ref.state == "stopped"
    with pytest.raises(ActorStopped):
        await ref.ask(("echo", 2))
    with pytest.raises(ActorStopped):
        ref.tell(("echo", 3))
    with pytest.raises(ActorStopped):
        await ref.send(("echo", 4))
    assert journal.handled == []
    await supervisor.stop()


async def test_intensity_exceeded_stops_actor(clock):
    """When the supervisor gives up, the in-flight ask fails and the queued ones stop at once."""
    journal = Journal()
    ref = worker(journal)
    supervisor, _ = await started(ref, clock, max_restarts=0)
    gate = asyncio.get_running_loop().create_future()
    in_flight = asyncio.create_task(ref.ask(("wait", gate)))
    queued = asyncio.create_task(ref.ask(("echo", 1)))
    await settle()

    gate.set_exception(RuntimeError("boom"))
    with pytest.raises(ActorFailed):
        await in_flight
    with pytest.raises(ActorStopped) as caught:
        await queued
    with pytest.raises(RestartIntensityExceeded):
        await supervisor.wait()

    assert isinstance(caught.value.reason, RestartIntensityExceeded)
    assert "'sup' failed" in str(caught.value)
    with pytest.raises(ActorStopped):
        await ref.ask(("echo", 2))


async def test_supervisor_stop_stops_actor(clock, caplog):
    """stop() fails the in-flight and queued asks and logs the tell() messages it dropped."""
    caplog.set_level(logging.WARNING, logger="supervisor")
    journal = Journal()
    ref = worker(journal)
    supervisor, _ = await started(ref, clock)
    gate = asyncio.get_running_loop().create_future()
    in_flight = asyncio.create_task(ref.ask(("wait", gate)))
    queued = asyncio.create_task(ref.ask(("echo", 1)))
    await settle()
    ref.tell(("echo", 2))

    await supervisor.stop()

    for pending in (in_flight, queued):
        with pytest.raises(ActorStopped) as caught:
            await pending
        assert "'sup' stopped" in str(caught.value)
    assert ref.state == "stopped"
    assert ref.pending == 0
    with pytest.raises(ActorStopped):
        await ref.ask(("echo", 3))
    assert journal.handled == []
    dropped = [record for record in caplog.records if "'worker'" in record.getMessage()]
    assert len(dropped) == 1
    assert "1 messages" in dropped[0].getMessage()


async def test_owner_cancel_stops_actor(clock):
    """Cancelling the task that owns the supervisor fails the asks still waiting."""
    journal = Journal()
    ref = worker(journal)
    supervisor = Supervisor([ref.child_spec()], clock=clock)
    entered = asyncio.get_running_loop().create_future()

    async def owner() -> None:
        async with supervisor:
            entered.set_result(None)
            await asyncio.get_running_loop().create_future()

    owner_task = asyncio.create_task(owner())
    await entered
    block(ref)
    queued = asyncio.create_task(ref.ask(("echo", 1)))
    await settle()
    owner_task.cancel()

    with pytest.raises(ActorStopped):
        await queued
    with pytest.raises(asyncio.CancelledError):
        await owner_task
    assert ref.state == "stopped"


async def test_supervisor_restart_reopens(clock):
    """A supervisor started again after stop() starts the actor again behind the same ref."""
    journal = Journal()
    ref = worker(journal)
    supervisor, _ = await started(ref, clock)
    await supervisor.stop()

    assert ref.state == "stopped"

    await supervisor.start()

    assert ref.state == "running"
    assert await ref.ask(("echo", 1)) == (2, 1)
    await supervisor.stop()


# ---------------------------------------------------------------------------- group restarts


async def test_group_restart_keeps_mailbox(clock, probe):
    """A one_for_all restart caused by a sibling keeps the mailbox; the in-flight ask fails."""
    journal = Journal()
    ref = worker(journal)
    events = EventLog(clock)
    supervisor = Supervisor(
        [ref.child_spec(), probe.spec("sibling")],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    gate = asyncio.get_running_loop().create_future()
    in_flight = asyncio.create_task(ref.ask(("wait", gate)))
    await settle()
    journal.start_gate = asyncio.get_running_loop().create_future()
    start_gate = journal.start_gate

    probe.crash("sibling")
    with pytest.raises(ActorFailed) as caught:
        await in_flight
    ref.tell(("echo", "a"))
    queued = asyncio.create_task(ref.ask(("echo", "b")))
    await settle()

    assert isinstance(caught.value.reason, asyncio.CancelledError)
    assert "restart" in str(caught.value)
    assert ref.state == "starting"
    assert ref.pending == 2

    start_gate.set_result(None)

    assert await queued == (2, "b")
    assert journal.handled == [(2, "a"), (2, "b")]
    await supervisor.stop()


async def test_terminate_then_restart_keeps_messages(clock):
    """Messages sent after terminate_child() are handled once restart_child() starts it."""
    journal = Journal()
    ref = worker(journal)
    supervisor, _ = await started(ref, clock)

    await supervisor.terminate_child("worker")
    ref.tell(("echo", "a"))
    await settle()

    assert ref.state == "restarting"
    assert ref.pending == 1

    await supervisor.restart_child("worker")

    assert await ref.ask(("echo", "b")) == (2, "b")
    assert journal.handled == [(2, "a"), (2, "b")]
    await supervisor.stop()


async def test_second_supervisor_rejected(clock):
    """One ref cannot run under two supervisors at once: the second start fails."""
    ref = worker(Journal())
    first, _ = await started(ref, clock)
    second = Supervisor([ref.child_spec()], clock=clock)

    with pytest.raises(ChildStartError) as caught:
        await second.start()

    assert isinstance(caught.value.reason, RuntimeError)
    assert "already running" in str(caught.value.reason)
    assert await ref.ask(("echo", 1)) == (1, 1)
    await first.stop()


# ---------------------------------------------------------------------------- bulk ordering


class Flaky(Actor):
    """Fails on about one message in 1,000 and one restart in 20, from a seeded generator."""

    def __init__(self, log: dict, rng: random.Random) -> None:
        self.log = log
        self.rng = rng

    async def on_start(self) -> None:
        self.log["starts"] += 1
        if self.log["starts"] > 1 and self.rng.random() < 0.05:
            raise RuntimeError("start failed")

    async def receive(self, message: object) -> object:
        if message == "sync":
            return len(self.log["handled"])
        if self.rng.random() < 0.001:
            self.log["failed"].append(message)
            raise RuntimeError(f"failed on message {message}")
        self.log["handled"].append(message)
        return None


async def test_hundred_thousand_messages_exactly_once(clock):
    """Through random failures, every message but those in flight is handled once, in order."""
    count = 100_000
    log = {"starts": 0, "handled": [], "failed": []}
    ref = ActorRef(Flaky, name="flaky", args=(log, random.Random(1234)))
    events = EventLog(clock)
    supervisor = Supervisor(
        [ref.child_spec()], clock=clock, on_event=events, max_restarts=count
    )
    await supervisor.start()

    for number in range(count):
        await ref.send(number)
    handled_count = await ref.ask("sync", timeout=None)

    failed = set(log["failed"])
    assert len(log["failed"]) > 50  # the seed makes about 100 failures
    assert len(failed) == len(log["failed"])
    assert log["starts"] > len(failed) + 1  # some restarts failed in on_start too
    assert handled_count == count - len(failed)
    assert log["handled"] == [number for number in range(count) if number not in failed]
    assert events.count(ChildExited, "flaky") == log["starts"] - 1
    await supervisor.stop()


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"factory": "Worker"}, "factory"),
        ({"name": ""}, "name"),
        ({"name": 7}, "name"),
        ({"args": "journal"}, "args"),
        ({"kwargs": {1: "x"}}, "kwargs"),
        ({"mailbox_size": 0}, "mailbox_size"),
        ({"mailbox_size": 2.5}, "mailbox_size"),
        ({"mailbox_size": True}, "mailbox_size"),
        ({"clock": object()}, "clock"),
    ],
)
def test_actor_ref_rejects_bad_value(options, field):
    """A bad ActorRef argument raises InvalidChildSpec naming the field and showing the value."""
    arguments = {"factory": Worker, "name": "worker"}
    arguments.update(options)
    factory = arguments.pop("factory")

    with pytest.raises(InvalidChildSpec) as caught:
        ActorRef(factory, **arguments)

    assert caught.value.field == field
    assert f"{field}={options[field]!r}" in str(caught.value)


@pytest.mark.parametrize("field", ["start", "args", "kwargs", "signals_ready"])
def test_child_spec_rejects_fixed_field(field):
    """child_spec() rejects the fields it sets itself."""
    ref = worker(Journal())

    with pytest.raises(InvalidChildSpec) as caught:
        ref.child_spec(**{field: None})

    assert caught.value.field == field


def test_child_spec_passes_fields():
    """child_spec() uses the actor's name as id by default and keeps the other fields."""
    ref = worker(Journal())

    default = ref.child_spec()
    custom = ref.child_spec("other", restart="transient", shutdown=1.5, start_timeout=10)

    assert default.id == "worker"
    assert default.signals_ready is True
    assert custom.id == "other"
    assert custom.restart == "transient"
    assert custom.shutdown == 1.5
    assert custom.start_timeout == 10


def test_repr_shows_state():
    """The repr shows the name, state, mailbox use and limit."""
    ref = worker(Journal(), mailbox_size=5)
    ref.tell(("echo", 1))

    assert repr(ref) == "<ActorRef 'worker' idle mailbox=1/5 instances=0>"
