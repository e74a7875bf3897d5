"""Shared helpers for the supervisor tests.

Tests written as ``async def`` run in a fresh event loop of their own (``asyncio.Runner``),
so the suite needs no asyncio plugin. Time is virtual: a test moves a ``VirtualClock``
forward and then waits for the events it expects, never for a fixed sleep. To check that
something did not happen, a test waits with ``supervisor.testing.settle()`` until the event
loop is idle. The global pytest timeout catches a test whose event never arrives.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from typing import Any, Callable

import pytest

from supervisor import ChildReady, ChildSpec, Event
from supervisor.testing import VirtualClock, settle


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a coroutine test function to completion in a new event loop."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    clock = pyfuncitem.funcargs.get("clock")
    with asyncio.Runner() as runner:
        try:
            runner.run(pyfuncitem.obj(**kwargs))
        finally:
            runner.run(finish_leftover_tasks(clock if isinstance(clock, VirtualClock) else None))
    return True


async def finish_leftover_tasks(clock: VirtualClock | None) -> None:
    """Cancel the tasks a test left behind and wait until they end.

    asyncio.run() would do the same, but a supervisor stopping a child waits for the child's
    shutdown time on the virtual clock, which does not move once the test is over, and a
    stubborn child swallows its first cancellation. A failed or timed-out test would then
    hang instead of reporting. Here virtual time jumps to each pending timer, and tasks that
    swallowed their cancellation are cancelled again, a few times, until they are done.
    """
    current = asyncio.current_task()
    leftover = {task for task in asyncio.all_tasks() if task is not current}
    for task in leftover:
        task.cancel()
    extra_cancellations = 3
    while leftover:
        await settle()
        leftover = {task for task in leftover if not task.done()}
        if not leftover:
            break
        deadline = clock.next_deadline() if clock is not None else None
        if deadline is not None:
            clock.advance(deadline - clock.now())
        elif extra_cancellations > 0:
            extra_cancellations -= 1
            for task in leftover:
                task.cancel()
        else:
            # Only real events can end these tasks now, as under asyncio.run().
            await asyncio.wait(leftover, return_when=asyncio.FIRST_COMPLETED)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def supervisor_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every record of the "supervisor" logger from INFO up."""
    caplog.set_level(logging.INFO, logger="supervisor")
    return caplog


async def start_all(supervisor, events: EventLog) -> None:
    """Start ``supervisor`` and wait for a ChildReady event from each child.

    After this, every child has run up to its first ``await``, so the test can make any of
    them crash or return.
    """
    await supervisor.start()
    for info in supervisor.which_children():
        await events.wait_for(ChildReady, info.id)


def matches(event: Event, event_type: type, child_id: Any, fields: dict[str, Any]) -> bool:
    if not isinstance(event, event_type):
        return False
    if child_id is not ANY and event.child_id != child_id:
        return False
    return all(getattr(event, name) == value for name, value in fields.items())


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


class EventLog:
    """An ``on_event`` callback that stores each event with the virtual time it arrived at.

    ``wait_for`` returns the n-th matching event, including events that arrived before the
    call, so a test cannot miss an event by waiting for it too late.
    """

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock
        self.events: list[Event] = []
        self.virtual_times: list[float | None] = []
        self._waiters: list[tuple[Callable[[Event], bool], list[int], asyncio.Future]] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.virtual_times.append(self.clock.now() if self.clock is not None else None)
        for predicate, remaining, future in list(self._waiters):
            if future.done() or not predicate(event):
                continue
            remaining[0] -= 1
            if remaining[0] == 0:
                future.set_result(event)
                self._waiters.remove((predicate, remaining, future))

    def select(self, event_type: type = Event, child_id: Any = ANY, **fields: Any) -> list[Event]:
        """Return the stored events of ``event_type`` for ``child_id`` whose fields equal ``fields``."""
        return [event for event in self.events if matches(event, event_type, child_id, fields)]

    def count(self, event_type: type = Event, child_id: Any = ANY, **fields: Any) -> int:
        return len(self.select(event_type, child_id, **fields))

    def time_of(self, event: Event) -> float | None:
        """Return the virtual time at which ``event`` arrived."""
        for index, stored in enumerate(self.events):
            if stored is event:
                return self.virtual_times[index]
        raise LookupError(f"event not recorded: {event!r}")

    async def wait_for(
        self, event_type: type, child_id: Any = ANY, *, count: int = 1, **fields: Any
    ) -> Event:
        """Wait until ``count`` matching events have arrived and return the last of them."""

        def predicate(event: Event) -> bool:
            return matches(event, event_type, child_id, fields)

        seen = [event for event in self.events if predicate(event)]
        if len(seen) >= count:
            return seen[count - 1]
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, [count - len(seen)], future))
        return await future

    def kinds(self, *event_types: type) -> list[tuple[str, Any]]:
        """Return ``(event class name, child id)`` for each stored event of the given types."""
        types = event_types or (Event,)
        return [
            (type(event).__name__, event.child_id)
            for event in self.events
            if isinstance(event, types)
        ]


class Probe:
    """Child start functions that record what happens to them and exit when the test makes them.

    ``log`` is the sequence of ``(action, child id)`` pairs the children recorded from inside
    their own tasks: "start" on entry, "ready" after signalling readiness, "stop" when
    cancelled, "crash" when an injected exception reached them and "return" on a normal exit.
    """

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.starts: Counter[str] = Counter()
        self._exits: dict[str, asyncio.Future] = {}
        self._ready_gates: dict[str, asyncio.Future] = {}
        self._releases: dict[str, asyncio.Future] = {}

    # Specs.

    def spec(self, child_id: str, **spec_fields: Any) -> ChildSpec:
        """Build a spec for a child that runs until ``crash`` or ``finish`` is called for it."""
        return ChildSpec(child_id, self.run, args=(child_id,), **spec_fields)

    def stubborn_spec(
        self, child_id: str, *, ignored_cancellations: int = 1, **spec_fields: Any
    ) -> ChildSpec:
        """Build a spec for a child that swallows its first cancellations until ``release``.

        Once it has swallowed ``ignored_cancellations`` cancellations it lets the next one
        through, so the event loop can still shut down at the end of a test.
        """
        return ChildSpec(
            child_id, self.run_stubborn, args=(child_id, ignored_cancellations), **spec_fields
        )

    # Control from the test.

    def crash(self, child_id: str, error: BaseException | None = None) -> None:
        """Make the running generation of ``child_id`` raise ``error`` (a RuntimeError by default)."""
        self._exits[child_id].set_exception(error or RuntimeError(f"{child_id} crashed"))

    def finish(self, child_id: str) -> None:
        """Make the running generation of ``child_id`` return normally."""
        self._exits[child_id].set_result(None)

    def hold_ready(self, child_id: str) -> None:
        """Make the next generation of ``child_id`` wait for ``allow_ready`` before it signals readiness."""
        self._ready_gates[child_id] = asyncio.get_running_loop().create_future()

    def allow_ready(self, child_id: str) -> None:
        self._ready_gates.pop(child_id).set_result(None)

    def release(self, child_id: str) -> None:
        """Let a stubborn child return."""
        self._releases[child_id].set_result(None)

    def actions(self, action: str) -> list[str]:
        """Return the child ids that recorded ``action``, in order."""
        return [child_id for recorded, child_id in self.log if recorded == action]

    # Start functions.

    async def run(self, child_id: str, task_status: Any = None) -> None:
        loop = asyncio.get_running_loop()
        exit_future = loop.create_future()
        self._exits[child_id] = exit_future
        self.starts[child_id] += 1
        self.log.append(("start", child_id))
        try:
            if task_status is not None:
                gate = self._ready_gates.get(child_id)
                if gate is not None:
                    # Shielded: cancelling this generation must not cancel the gate that
                    # the next generation waits on too.
                    await asyncio.shield(gate)
                task_status.started()
                self.log.append(("ready", child_id))
            await exit_future
        except asyncio.CancelledError:
            self.log.append(("stop", child_id))
            raise
        except Exception:
            self.log.append(("crash", child_id))
            raise
        self.log.append(("return", child_id))

    async def run_stubborn(self, child_id: str, ignored_cancellations: int) -> None:
        release = asyncio.get_running_loop().create_future()
        self._releases[child_id] = release
        self.starts[child_id] += 1
        self.log.append(("start", child_id))
        ignored = 0
        while True:
            try:
                await asyncio.shield(release)
            except asyncio.CancelledError:
                if ignored == ignored_cancellations:
                    self.log.append(("stop", child_id))
                    raise
                ignored += 1
                self.log.append(("ignore-cancel", child_id))
                continue
            self.log.append(("return", child_id))
            return
