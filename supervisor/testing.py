"""Tools for testing code that uses supervisors, without real waiting.

``VirtualClock`` replaces the supervisor's clock: restart intensity windows, backoff delays,
start timeouts and shutdown timeouts then advance only when the test calls ``advance()``.
``FaultInjector`` makes a child fail on its n-th start or after some seconds of clock time.
``wait_for_generation()`` waits until a child has been started n times. ``FailureTrap`` fails
a test on a child failure, or an error sent to the event loop's exception handler, that the
test did not expect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import math
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from ._clock import Clock, MonotonicClock
from ._errors import ChildNotFound, SupervisorNotRunning
from ._events import ChildExited, ChildQuarantined, ChildReady, ChildStarted, ChildStopped, Event, EventStream
from ._spec import ChildSpec
from ._supervisor import Supervisor, current_child, track_current_child

__all__ = [
    "VirtualClock",
    "VirtualTimer",
    "settle",
    "FaultInjector",
    "InjectedFault",
    "wait_for_generation",
    "FailureTrap",
    "UnexpectedFailure",
]


class VirtualTimer:
    """A callback scheduled on a ``VirtualClock``."""

    __slots__ = ("when", "_callback", "_args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self._callback = callback
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def _run(self) -> None:
        self._callback(*self._args)

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<VirtualTimer when={self.when}{state}>"


class VirtualClock:
    """A clock whose time moves only when ``advance()`` is called.

    Timers are run in order of their due time, and ``now()`` returns each timer's due time
    while its callback runs, so tests observe exact virtual times.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, VirtualTimer]] = []
        self._sequence = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> VirtualTimer:
        timer = VirtualTimer(self._now + max(0.0, delay), callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._sequence), timer))
        return timer

    async def sleep(self, delay: float) -> None:
        """Sleep ``delay`` seconds of virtual time."""
        future = asyncio.get_running_loop().create_future()
        timer = self.call_later(delay, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()

    @property
    def pending(self) -> int:
        """The number of timers that are scheduled and not cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    def next_deadline(self) -> float | None:
        """Return the due time of the earliest pending timer, or ``None``."""
        self._drop_cancelled()
        return self._timers[0][0] if self._timers else None

    def _drop_cancelled(self) -> None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds`` and run every timer due by then; return how many ran.

        Callbacks run synchronously. Tasks they wake run once the caller next yields to the
        event loop, so use ``await settle()`` or wait for an event before checking results.
        """
        if not 0 <= seconds < math.inf:
            # NaN would pass a plain ``seconds < 0`` check and then run every pending timer.
            raise ValueError(f"invalid seconds={seconds!r}: expected a finite number >= 0")
        target = self._now + seconds
        ran = 0
        while True:
            self._drop_cancelled()
            if not self._timers or self._timers[0][0] > target:
                break
            when, _, timer = heapq.heappop(self._timers)
            self._now = when
            timer._run()
            ran += 1
        self._now = target
        return ran

    async def advance_and_settle(self, seconds: float, *, step: float | None = None) -> None:
        """Advance time in order of due timers, letting the event loop settle after each one.

        Unlike ``advance()``, a timer that a woken task schedules within the window also runs.
        """
        target = self._now + seconds
        await settle()
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self.advance(deadline - self._now)
            await settle()
        self.advance(target - self._now)
        await settle()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def settle(max_passes: int = 1000) -> None:
    """Yield to the event loop until no callback is ready to run, or ``max_passes`` passes.

    NOTE: this reads the ready queue of asyncio's base event loop, a private attribute. A loop
    without it gets ``max_passes`` yields instead.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(max_passes):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return


class InjectedFault(Exception):
    """The failure a ``FaultInjector`` raises in a child, unless the test chose another."""

    def __init__(self, child_id: Hashable, start: int, after: float | None = None) -> None:
        self.child_id = child_id
        self.start = start
        self.after = after
        when = "at its start" if after is None else f"after {after} s"
        super().__init__(f"injected fault: child {child_id!r} failed {when} (start {start})")


class FaultInjector:
    """Makes chosen children fail on a chosen start, or after some seconds of clock time.

    ``wrap(spec)`` returns the spec with its start callable wrapped; every failure is then
    chosen by child id. That is the id the supervisor runs the child under, so each child of a
    ``DynamicSupervisor`` built from a wrapped template has its own faults. ``clock`` is the
    clock that ``fail_after()`` reads, normally the supervisor's ``VirtualClock``.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        # Children started from now on record which child they are; create the injector
        # before starting the supervisor whose children it wraps.
        track_current_child()
        self._clock = MonotonicClock() if clock is None else clock
        self._starts: Counter[Hashable] = Counter()
        self._start_faults: dict[Hashable, dict[int, BaseException | None]] = {}
        self._timed_faults: dict[Hashable, tuple[float, BaseException | None]] = {}
        self._running: dict[Hashable, tuple[asyncio.Task[Any], int]] = {}
        self._firing: dict[asyncio.Task[Any], BaseException] = {}

    def wrap(self, spec: ChildSpec) -> ChildSpec:
        """Return ``spec`` with a start callable that applies this injector's faults."""
        original = spec.start
        default_id = spec.id

        async def start(*args: Any, **kwargs: Any) -> Any:
            return await self._run(original, default_id, args, kwargs)

        return dataclasses.replace(spec, start=start)

    def starts(self, child_id: Hashable) -> int:
        """Return how many times the wrapped start of ``child_id`` has been called."""
        return self._starts[child_id]

    def fail_on_start(self, child_id: Hashable, *starts: int, error: BaseException | None = None) -> None:
        """Make each listed start of ``child_id`` (counted from 1) raise before the child runs.

        ``error`` defaults to an ``InjectedFault``.
        """
        if not starts or any(not isinstance(n, int) or n < 1 for n in starts):
            raise ValueError(f"expected start numbers counted from 1, got {starts!r}")
        faults = self._start_faults.setdefault(child_id, {})
        for n in starts:
            faults[n] = error

    def fail_after(self, child_id: Hashable, seconds: float, *, error: BaseException | None = None) -> None:
        """Make ``child_id`` raise once ``seconds`` of clock time have passed.

        The timer starts now if the child is running, otherwise at its next start, and fires
        once. At that moment the child is cancelled, so its cleanup runs, and the supervisor
        gets ``error`` (an ``InjectedFault`` by default) as its exit reason. Raises
        ``ValueError`` unless ``seconds`` is a finite number >= 0.
        """
        if (
            not isinstance(seconds, (int, float))
            or isinstance(seconds, bool)
            or not 0 <= seconds < math.inf
        ):
            raise ValueError(f"invalid seconds={seconds!r} for child {child_id!r}: expected a finite number >= 0")
        running = self._running.get(child_id)
        if running is None:
            self._timed_faults[child_id] = (seconds, error)
        else:
            task, start = running
            self._arm(child_id, task, start, seconds, error)

    def _arm(
        self, child_id: Hashable, task: asyncio.Task[Any], start: int, seconds: float, error: BaseException | None
    ) -> None:
        fault = InjectedFault(child_id, start, seconds) if error is None else error
        self._clock.call_later(seconds, self._fire, child_id, task, start, fault)

    def _fire(self, child_id: Hashable, task: asyncio.Task[Any], start: int, error: BaseException) -> None:
        if self._running.get(child_id) == (task, start) and not task.done():
            self._firing[task] = error
            task.cancel()

    async def _run(
        self, original: Callable[..., Any], default_id: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        current = current_child.get()
        child_id = default_id if current is None else current[1]
        self._starts[child_id] += 1
        start = self._starts[child_id]
        faults = self._start_faults.get(child_id)
        if faults and start in faults:
            error = faults.pop(start)
            raise InjectedFault(child_id, start) if error is None else error

        task = asyncio.current_task()
        assert task is not None
        self._running[child_id] = (task, start)
        timed = self._timed_faults.pop(child_id, None)
        if timed is not None:
            self._arm(child_id, task, start, *timed)
        try:
            return await original(*args, **kwargs)
        except asyncio.CancelledError:
            error = self._firing.pop(task, None)
            if error is None:
                raise
            task.uncancel()
            raise error from None
        finally:
            if self._running.get(child_id) == (task, start):
                del self._running[child_id]
            self._firing.pop(task, None)


def _generation_reached(supervisor: Supervisor, child_id: Hashable, generation: int, ready: bool) -> bool:
    child = supervisor._children.get(child_id)
    if child is None or child.generation < generation:
        return False
    return not ready or child.ready


async def wait_for_generation(
    supervisor: Supervisor, child_id: Hashable, generation: int, *, ready: bool = False
) -> None:
    """Wait until child ``child_id`` has been started ``generation`` times (counted from 1).

    Returns at once if that has already happened. With ``ready=True`` it also waits until a
    generation from ``generation`` on is ready. Raises ``SupervisorNotRunning`` if the
    supervisor stops first, and ``ChildNotFound`` if the supervisor has no such child or
    removes it while waiting, like a temporary child that exits.
    """
    if _generation_reached(supervisor, child_id, generation, ready):
        return
    if supervisor.state in ("stopped", "failed"):
        raise SupervisorNotRunning(
            supervisor.name, supervisor.state, f"wait for generation {generation} of", child_id
        )
    if child_id not in supervisor._children:
        raise ChildNotFound(supervisor.name, child_id)
    wanted = ChildReady if ready else ChildStarted
    stream = supervisor.events()
    try:
        async for event in stream:
            if isinstance(event, wanted) and event.child_id == child_id and event.generation >= generation:
                return
            # NOTE: a removed child never reaches the generation. The check runs after each
            # event, so a removal that no event follows, such as delete_child() while nothing
            # else happens, is found only at the next event.
            if child_id not in supervisor._children:
                raise ChildNotFound(supervisor.name, child_id)
    finally:
        stream.close()
    raise SupervisorNotRunning(supervisor.name, supervisor.state, f"wait for generation {generation} of", child_id)


class UnexpectedFailure(AssertionError):
    """A ``FailureTrap`` saw failures that the test did not expect; ``failures`` lists them."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        listed = "\n  ".join(failures)
        super().__init__(f"{len(failures)} unexpected failure(s):\n  {listed}")


class FailureTrap:
    """Fails a test on child failures and on errors sent to the loop's exception handler.

    Use it as ``with FailureTrap(supervisor, ...) as trap:`` inside a running event loop. It
    records every abnormal ``ChildExited``, every ``ChildStopped`` with a ``reason`` and every
    ``ChildQuarantined`` of the given supervisors, and every call of the loop's exception
    handler (which still runs as before). When the block ends without an exception and
    something was recorded, it raises ``UnexpectedFailure``. Call ``clear()`` after handling
    an expected failure.
    """

    def __init__(self, *supervisors: Supervisor) -> None:
        self._supervisors = supervisors
        self._streams: list[EventStream] = []
        self._loop_errors: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None

    def __enter__(self) -> FailureTrap:
        self._loop = asyncio.get_running_loop()
        self._previous = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._on_loop_error)
        self._streams = [supervisor.events() for supervisor in self._supervisors]
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        failures = self.failures
        assert self._loop is not None
        self._loop.set_exception_handler(self._previous)
        for stream in self._streams:
            stream.close()
        if exc_type is None and failures:
            raise UnexpectedFailure(failures)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self._loop_errors.append(context)
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _events(self) -> list[Event]:
        return [event for stream in self._streams for event in stream._buffer]

    @property
    def failures(self) -> list[str]:
        """One line per failure recorded so far."""
        lines = []
        for event in self._events():
            if isinstance(event, ChildExited) and event.abnormal:
                lines.append(f"child {event.child_id!r} of {event.supervisor!r} exited with {event.reason!r}")
            elif isinstance(event, ChildStopped) and event.reason is not None:
                lines.append(f"child {event.child_id!r} of {event.supervisor!r} raised {event.reason!r} while stopping")
            elif isinstance(event, ChildQuarantined):
                lines.append(f"child {event.child_id!r} of {event.supervisor!r} was quarantined")
        for context in self._loop_errors:
            lines.append(f"loop exception handler: {context.get('message')} ({context.get('exception')!r})")
        return lines

    def clear(self) -> None:
        """Forget the failures recorded so far."""
        for stream in self._streams:
            stream._buffer.clear()
        self._loop_errors.clear()
