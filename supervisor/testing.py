"""Tools for testing code that uses supervisors, without real waiting.

``VirtualClock`` replaces the supervisor's clock: restart intensity windows, backoff delays,
start timeouts and shutdown timeouts then advance only when the test calls ``advance()``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["VirtualClock", "VirtualTimer"]


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
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards: seconds={seconds!r}")
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

    NOTE: this reads the ready queue of asyncio's base event loop, a private attribute; on a
    loop without it, it falls back to yielding ``max_passes`` times.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(max_passes):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return
