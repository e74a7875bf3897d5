"""The clock that restart intensity, backoff and timeouts read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "TimerHandle", "MonotonicClock"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The interface a supervisor needs from a clock.

    ``now()`` returns seconds from an arbitrary origin and never goes backwards.
    ``call_later()`` runs ``callback(*args)`` on the running event loop after ``delay`` seconds
    of this clock's time.
    """

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...


class MonotonicClock:
    """The default clock: ``time.monotonic()`` and the running loop's timers."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def call_later(
        self, delay: float, callback: Callable[..., Any], *args: Any
    ) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    def __repr__(self) -> str:
        return "MonotonicClock()"


def _resolve_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep(clock: Clock, delay: float) -> None:
    """Sleep ``delay`` seconds of ``clock`` time; cancelling the caller cancels the timer."""
    if isinstance(clock, MonotonicClock):
        await asyncio.sleep(delay)
        return
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handle = clock.call_later(delay, _resolve_if_pending, future)
    try:
        await future
    finally:
        handle.cancel()


async def wait_task(clock: Clock, task: asyncio.Task[Any], timeout: float | None) -> bool:
    """Wait until ``task`` is done or ``timeout`` seconds of clock time pass.

    Returns whether the task is done. ``timeout=None`` waits without limit and ``timeout=0``
    gives the task one pass of the event loop.
    """
    if task.done():
        return True
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_done(_: asyncio.Task[Any]) -> None:
        _resolve_if_pending(future)

    task.add_done_callback(on_done)
    handle = None
    if timeout is not None:
        if timeout <= 0:
            handle = asyncio.get_running_loop().call_soon(_resolve_if_pending, future)
        else:
            handle = clock.call_later(timeout, _resolve_if_pending, future)
    try:
        await future
    finally:
        task.remove_done_callback(on_done)
        if handle is not None:
            handle.cancel()
    return task.done()
