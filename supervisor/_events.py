"""Typed supervisor events and the async iterator that delivers them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = [
    "Event",
    "ChildStarted",
    "ChildReady",
    "ChildExited",
    "ChildRestarting",
    "ChildStopped",
    "ChildShutdownTimeout",
    "ChildQuarantined",
    "IntensityExceeded",
    "SupervisorStopped",
    "EventStream",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a supervisor.

    ``time_ns`` is ``time.perf_counter_ns()`` taken when the supervisor saw it happen, so the
    restart latency of a child is ``ChildReady.time_ns - ChildExited.time_ns`` for the same
    ``child_id`` and consecutive generations.
    """

    supervisor: str
    child_id: Hashable | None
    time_ns: int


@dataclass(frozen=True, slots=True)
class ChildStarted(Event):
    """The child's start callable was called; ``generation`` counts starts from 1."""

    generation: int


@dataclass(frozen=True, slots=True)
class ChildReady(Event):
    """The child signalled readiness, or was started without signalling."""

    generation: int


@dataclass(frozen=True, slots=True)
class ChildExited(Event):
    """The child exited without being asked to.

    ``reason`` is the exception (``None`` for a normal return); ``abnormal`` is whether a
    transient child would be restarted for it.
    """

    generation: int
    reason: BaseException | None
    abnormal: bool


@dataclass(frozen=True, slots=True)
class ChildRestarting(Event):
    """The supervisor decided to restart the child after ``delay`` seconds of backoff.

    ``intensity`` is the number of restarts in the supervisor's window of ``max_seconds``, this
    one included. ``child_intensity`` is the same count in the child's own restart budget of a
    dynamic supervisor, or ``None`` when the supervisor sets no per-child budget.
    """

    generation: int
    delay: float
    intensity: int = 0
    child_intensity: int | None = None


@dataclass(frozen=True, slots=True)
class ChildStopped(Event):
    """The supervisor stopped the child; ``cause`` is ``"shutdown"``, ``"terminate"`` or ``"group_restart"``.

    ``reason`` is the exception the child raised while stopping instead of accepting the
    cancellation, or ``None``. It is logged too, because it has nowhere to propagate.
    """

    cause: str
    timed_out: bool
    reason: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ChildShutdownTimeout(Event):
    """The child ignored cancellation for ``timeout`` seconds and was abandoned still running."""

    timeout: float


@dataclass(frozen=True, slots=True)
class ChildQuarantined(Event):
    """A dynamic supervisor stopped restarting the child, which exceeded its own restart budget.

    Either more than ``max_restarts`` restarts of this child fell within ``max_seconds``, or
    (``max_seconds`` is ``None``) it reached its ``max_lifetime_restarts``. ``reason`` is its
    last exit reason. Its siblings are not touched.
    """

    generation: int
    restarts: int
    max_restarts: int
    max_seconds: float | None
    reason: BaseException | None


@dataclass(frozen=True, slots=True)
class IntensityExceeded(Event):
    """More than ``max_restarts`` restarts happened within ``max_seconds``; ``child_id`` is the offender.

    ``max_seconds`` is ``None`` when the offender reached its ``max_lifetime_restarts`` instead.
    """

    restarts: int
    max_restarts: int
    max_seconds: float | None
    reason: BaseException | None


@dataclass(frozen=True, slots=True)
class SupervisorStopped(Event):
    """The supervisor stopped all its children; ``reason`` is the exception it failed with, if any.

    That is a ``RestartIntensityExceeded``, or a ``BaseException`` such as ``SystemExit`` that
    a child raised and that the supervisor passes on to its owner.
    """

    reason: BaseException | None


class EventStream:
    """An async iterator over a supervisor's events, from subscription until it stops.

    Events are buffered without limit, so a consumer that falls behind costs memory but never
    slows the supervisor down. Iteration ends after the ``SupervisorStopped`` event, or when
    ``close()`` is called.
    """

    __slots__ = ("_buffer", "_waiter", "_closed", "_unsubscribe")

    def __init__(self, unsubscribe) -> None:
        self._buffer: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._unsubscribe = unsubscribe

    def _push(self, event: Event) -> None:
        self._buffer.append(event)
        self._wake()

    def close(self) -> None:
        """Stop receiving events; iteration ends once the buffered ones are consumed."""
        if not self._closed:
            self._closed = True
            self._unsubscribe(self)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._buffer.popleft()
        if isinstance(event, SupervisorStopped):
            self.close()
        return event

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
