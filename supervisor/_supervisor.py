"""The Supervisor: starts its children, restarts them by policy and stops them in order."""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
import itertools
import logging
import math
import opcode
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from . import _clock
from ._clock import Clock, MonotonicClock
from ._errors import (
    _count,
    ChildNotFound,
    ChildRunning,
    ChildStartError,
    DuplicateChild,
    InvalidChildSpec,
    RestartIntensityExceeded,
    StartTimeout,
    SupervisorError,
    SupervisorNotRunning,
)
from ._events import (
    ChildExited,
    ChildQuarantined,
    ChildReady,
    ChildRestarting,
    ChildShutdownTimeout,
    ChildStarted,
    ChildStopped,
    Event,
    EventStream,
    IntensityExceeded,
    SupervisorStopped,
)
from ._spec import BRUTAL_KILL, INFINITY, ChildSpec, ChildType, Restart, Strategy, _to_enum, _to_finite_float

__all__ = ["Supervisor", "TaskStatus", "ChildInfo", "ChildStatus", "AutoShutdown", "RestartWindow"]

logger = logging.getLogger("supervisor")

# At most this many child failures are logged per supervisor per second. The rest are counted
# and reported in one line, so a restart storm cannot flood the logs or slow restarts down.
FAILURE_LOG_LIMIT = 10
FAILURE_LOG_WINDOW = 1.0

_names = itertools.count(1)

# A one_for_one restart starts the replacement with no pass through the event loop. A child
# that fails before its first await would then keep every other task from running for as long
# as the restart intensity allows, forever if it allows more restarts than the child can fail.
# So after QUICK_RESTARTS consecutive generations that each exited within QUICK_EXIT seconds
# of the call to their start function, the next restart first yields to the event loop once.
# NOTE: a child that runs longer than QUICK_EXIT without awaiting before each failure is not
# detected, and other tasks then wait until the restart intensity stops it.
QUICK_EXIT = 100e-6
QUICK_RESTARTS = 100

# CPython 3.12 added eager task start (Task(..., eager_start=True)): children then start, and
# group restarts run, without one event-loop pass per child.
EAGER_START = sys.version_info >= (3, 12)

# The (supervisor, child id) pair of the child that owns the running task, set once per child
# task while tracking is on. The test kit's fault injection turns it on and reads it to tell
# apart children that share a start function. While it is off, no child task copies a context.
current_child: contextvars.ContextVar[tuple[Supervisor, Hashable] | None] = contextvars.ContextVar(
    "supervisor_current_child", default=None
)
_tracking = {"current_child": False}

# The supervisors whose group restarts started the current task's child, outermost first,
# set once in each control task. A child's task copies the context of the task that starts
# it, and so do the tasks it creates and the children of a supervisor it runs. The value is
# set once per control task, not per child. With a value per child, each child's context held
# a mapping of its own, and a rest_for_one restart of 10,000 children took about 15% longer.
# That is the median of 5 runs of GroupRestart.time_group_restart on a 2-core shared sandbox,
# CPython 3.11.7.
_restarted_by: contextvars.ContextVar[tuple[Supervisor, ...]] = contextvars.ContextVar(
    "supervisor_restarted_by", default=()
)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


# None on a CPython without this opcode, which turns the check below off.
# NOTE: checked on CPython 3.11 only. Where the check misses, the reason stays the TypeError.
_GET_AWAITABLE = opcode.opmap.get("GET_AWAITABLE")


def _awaited_non_awaitable(error: TypeError) -> bool:
    """Return whether ``error`` was raised by an ``await`` of an object that is not awaitable.

    ``error`` must be caught in the frame that contains the ``await``. The opcode that raised it
    separates this failure from a TypeError of the call on the same line, such as a missing
    argument.
    """
    traceback = error.__traceback__
    if traceback is None or traceback.tb_next is not None:
        return False  # raised inside the called function
    return traceback.tb_frame.f_code.co_code[traceback.tb_lasti] == _GET_AWAITABLE


def track_current_child() -> None:
    """Make every child task started from now on set ``current_child``."""
    _tracking["current_child"] = True


class ChildStatus(str, enum.Enum):
    STARTING = "starting"  # start callable called, readiness not yet signalled
    RUNNING = "running"  # ready
    RESTARTING = "restarting"  # exited or stopped by a group restart, and a restart is pending
    STOPPED = "stopped"  # stopped by the supervisor, or not started yet
    EXITED = "exited"  # exited and will not be restarted
    QUARANTINED = "quarantined"  # exceeded its own restart budget; not restarted

    def __str__(self) -> str:
        return self.value


# Reading an enum member through its class took about 0.12 us on CPython 3.11.7 (timeit),
# several times a module global's cost, because the enum metaclass defines __getattr__. The
# restart path reads these on every restart, and every local of a child's coroutine costs
# 8 bytes per idle child.
_STARTING = ChildStatus.STARTING
_RUNNING = ChildStatus.RUNNING
_ONE_FOR_ONE = Strategy.ONE_FOR_ONE


class AutoShutdown(str, enum.Enum):
    """When the exit of significant children stops the supervisor (OTP 24 auto_shutdown)."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class RestartWindow:
    """A restart limit and its use: ``restarts`` counted within the last ``max_seconds``.

    ``max_seconds`` is ``None`` for a lifetime cap, which counts every automatic restart.
    """

    restarts: int
    max_restarts: int
    max_seconds: float | None


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A snapshot of one child, as returned by ``Supervisor.which_children()``.

    ``restarts`` counts every restart of the child, by policy, by a sibling's group restart or
    by ``restart_child()``. ``intensity`` is the supervisor-wide limit shared by all children,
    ``budget`` the child's own window in a dynamic supervisor (``None`` without one) and
    ``lifetime`` its ``max_lifetime_restarts`` cap (``None`` without one).
    """

    id: Hashable
    status: ChildStatus
    type: ChildType
    restart: Restart
    generation: int
    restarts: int
    task: asyncio.Task[Any] | None
    intensity: RestartWindow | None = None
    budget: RestartWindow | None = None
    lifetime: RestartWindow | None = None


class _Child:
    __slots__ = (
        "spec",
        "task",
        "status",
        "generation",
        "restarts",
        "stopping",
        "ready",
        "ready_waiter",
        "timed_out",
        "attempt",
        "ready_at",
        "limited",
        "lifetime_restarts",
        "budget_times",
        "abandoned",
        "stop_error",
        "jitter_source",
    )

    def __init__(self, spec: ChildSpec, budget: bool = False) -> None:
        self.spec = spec
        self.task: asyncio.Task[None] | None = None
        self.status = ChildStatus.STOPPED
        self.generation = 0
        self.restarts = 0
        self.stopping = False  # the supervisor asked this child to stop
        self.ready = False
        self.ready_waiter: asyncio.Future[Any] | None = None
        self.timed_out = False
        self.attempt = 0  # consecutive backoff attempts
        self.ready_at: float | None = None  # clock time of readiness, kept only with backoff
        # Whether a restart must check a lifetime cap or a per-child budget, so the restart
        # path of a child with neither reads one flag.
        self.limited = budget or spec.max_lifetime_restarts is not None
        self.lifetime_restarts = 0  # automatic restarts, counted for max_lifetime_restarts
        self.budget_times: deque[float] | None = deque() if budget else None
        self.abandoned = False  # its task outlived its shutdown time and was left running
        self.stop_error: BaseException | None = None  # raised while being stopped
        self.jitter_source: random.Random | None = None  # Backoff.new_random(), at the first delay


def _count_within(times: deque[float], now: float, seconds: float) -> int:
    # The same rule as the intensity check: a restart exactly ``seconds`` ago still counts.
    # A clock advanced by ``seconds`` computes ``now`` as ``when + seconds``, so at the edge
    # that sum equals ``now``, while ``now - seconds`` or ``now - when`` can round past it.
    count = 0
    for when in reversed(times):
        if when + seconds < now:
            break
        count += 1
    return count


class TaskStatus:
    """Passed as ``task_status=`` to a child whose spec has ``signals_ready=True``.

    The child calls ``started()`` once it is ready to serve; the supervisor starts the next
    child, and counts a restart as complete, only after that call.
    """

    __slots__ = ("_supervisor", "_child", "_generation")

    def __init__(self, supervisor: Supervisor, child: _Child, generation: int) -> None:
        self._supervisor = supervisor
        self._child = child
        self._generation = generation

    @property
    def supervisor(self) -> Supervisor:
        """The supervisor that started this child."""
        return self._supervisor

    @property
    def generation(self) -> int:
        """The start this status belongs to, counted from 1 for each child."""
        return self._generation

    def started(self, value: Any = None) -> None:
        """Signal readiness; ``value`` is returned to a caller waiting in ``start_child()``."""
        child = self._child
        if child.generation != self._generation or child.ready or child.stopping:
            raise RuntimeError(
                f"task_status.started() called twice, or after exit or stop, by child {child.spec.id!r}"
            )
        self._supervisor._mark_ready(child, value)

    def __repr__(self) -> str:
        return f"<TaskStatus child={self._child.spec.id!r} generation={self._generation}>"


def _check_options(
    strategy: Any, max_restarts: Any, max_seconds: Any, clock: Any, on_event: Any, auto_shutdown: Any
) -> tuple[Strategy, AutoShutdown]:
    strategy = _to_enum(Strategy, "strategy", strategy)
    auto_shutdown = _to_enum(AutoShutdown, "auto_shutdown", auto_shutdown)
    if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < 0:
        raise InvalidChildSpec("max_restarts", max_restarts, "expected an integer >= 0")
    if not isinstance(max_seconds, (int, float)) or isinstance(max_seconds, bool):
        raise InvalidChildSpec("max_seconds", max_seconds, "expected a finite number of seconds > 0")
    if _to_finite_float("max_seconds", max_seconds, "expected a finite number of seconds > 0") <= 0:
        raise InvalidChildSpec("max_seconds", max_seconds, "expected a finite number of seconds > 0")
    if not (callable(getattr(clock, "now", None)) and callable(getattr(clock, "call_later", None))):
        raise InvalidChildSpec("clock", clock, "expected an object with now() and call_later()")
    if on_event is not None and not callable(on_event):
        raise InvalidChildSpec("on_event", on_event, "expected a callable or None")
    if inspect.iscoroutinefunction(on_event):
        raise InvalidChildSpec(
            "on_event", on_event,
            "expected a plain function: it is called on the restart path and never awaited; "
            "use events() to consume events in async code",
        )
    return strategy, auto_shutdown


class Supervisor:
    """Runs a list of children and keeps them running according to their specs.

    See the package documentation for the behaviour of every option.
    """

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy | str = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        auto_shutdown: AutoShutdown | str = AutoShutdown.NEVER,
        name: str | None = None,
        clock: Clock | None = None,
        on_event: Callable[[Event], object] | None = None,
        parallel_group_restart: bool = False,
    ) -> None:
        clock = MonotonicClock() if clock is None else clock
        if not isinstance(parallel_group_restart, bool):
            raise InvalidChildSpec("parallel_group_restart", parallel_group_restart, "expected True or False")
        self._parallel_group_restart = parallel_group_restart
        self._strategy, self._auto_shutdown = _check_options(
            strategy, max_restarts, max_seconds, clock, on_event, auto_shutdown
        )
        if name is not None and not isinstance(name, str):
            raise InvalidChildSpec("name", name, "expected a string or None")
        self.name = name if name is not None else f"supervisor-{next(_names)}"
        self._max_restarts = max_restarts
        self._max_seconds = float(max_seconds)
        self._clock = clock
        # time.monotonic itself for the default clock: the restart path reads the clock up to
        # three times, and a bound C function costs less than a method call.
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, MonotonicClock) else clock.now
        self._on_event = on_event
        # Clock time spent in ChildReady listeners, which the quick-exit count leaves out.
        self._listener_time = 0.0
        self._streams: list[EventStream] = []
        self._listening = on_event is not None

        if isinstance(children, ChildSpec) or not isinstance(children, Iterable):
            raise InvalidChildSpec("children", children, "expected a list of ChildSpec")
        specs = list(children)
        seen: set[Hashable] = set()
        for index, spec in enumerate(specs):
            self._check_new_spec(spec, seen, f"children[{index}]")
            seen.add(spec.id)
        self._specs = tuple(specs)

        # A per-child restart budget; only DynamicSupervisor sets one.
        self._budget_max_restarts: int | None = None
        self._budget_max_seconds = 5.0
        # Stop children concurrently at shutdown instead of one by one in reverse order.
        self._parallel_shutdown = False
        # Remove a child that exits without restart, whatever its restart type.
        self._forget_exited = False
        # Quarantine a child past its lifetime cap instead of failing the supervisor.
        self._quarantines = False
        self._children: dict[Hashable, _Child] = {spec.id: _Child(spec) for spec in specs}
        self._state = "idle"
        self._stopping = False
        self._failure: BaseException | None = None
        self._restart_times: deque[float] = deque()
        # Group restarts to run: the child, its generation, its exit reason and the clock time
        # of its exit, at which the restart counts toward the intensity.
        self._pending: deque[tuple[_Child, int, BaseException | None, float]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._control_task: asyncio.Task[None] | None = None
        self._control_ran = False  # whether the control task has begun to run its body
        # Set while the control task stops every child for good. A cancellation then does not
        # cut the stop short, but is raised once every child has stopped.
        self._final_shutdown = False
        self._shutdown_cancelled = False
        self._wakeup: asyncio.Future[None] | None = None
        self._in_group_restart = False
        # Callers of start_child() and restart_child() waiting for the group restarts to end.
        self._idle_waiters: list[asyncio.Future[None]] = []
        # The children a group restart is stopping and will start again, which
        # which_children() lists as restarting while they stop.
        self._group_stopping: set[_Child] = set()
        # Set while a group restart starts its children and waits for them to be ready, and
        # the clock time at which each child it started failed before it was ready.
        self._group_starting = False
        self._start_failed_at: dict[_Child, float] = {}
        self._done: asyncio.Future[None] | None = None
        self._host: asyncio.Task[Any] | None = None
        self._host_cancelled = False
        self._exiting = False
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._starting: dict[_Child, float] = {}  # children waiting for readiness -> deadline
        self._start_timer: Any = None
        self._start_timer_due = math.inf
        self._log_window_start = -math.inf
        self._log_count = 0
        self._log_suppressed = 0

    def _check_new_spec(self, spec: Any, existing: Iterable[Hashable], field: str) -> None:
        if not isinstance(spec, ChildSpec):
            raise InvalidChildSpec(field, spec, "expected a ChildSpec")
        if spec.id in existing:
            raise InvalidChildSpec("id", spec.id, "duplicate child id; ids must be unique within a supervisor")
        if spec.significant and self._auto_shutdown is AutoShutdown.NEVER:
            raise InvalidChildSpec(
                "significant", True, "a significant child needs a supervisor with auto_shutdown other than 'never'"
            )

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> str:
        """One of ``idle``, ``starting``, ``running``, ``stopping``, ``stopped`` or ``failed``."""
        return self._state

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def failure(self) -> BaseException | None:
        """The exception the supervisor failed with, or ``None``.

        That is a ``RestartIntensityExceeded``, or a ``BaseException`` that is neither an
        ``Exception`` nor a ``CancelledError`` raised by a child and passed on to the owner.
        """
        return self._failure

    def __repr__(self) -> str:
        counts = self.count_children()
        return (
            f"<Supervisor {self.name!r} {self._state} {self._strategy} "
            f"specs={counts['specs']} active={counts['active']} "
            f"restarts={sum(child.restarts for child in self._children.values())}>"
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every child in order, each one only after the previous one is ready.

        If a child fails before it is ready, the children already started are stopped in
        reverse order and ``ChildStartError`` is raised.
        """
        if self._state in ("starting", "running", "stopping"):
            raise SupervisorError(f"cannot start supervisor {self.name!r}: it is {self._state}")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._failure = None
        self._stopping = False
        self._restart_times.clear()
        self._pending.clear()
        self._host_cancelled = False
        self._done = loop.create_future()
        # A restarted supervisor starts again from its initial specs, as in OTP: children
        # added at run time are not carried over.
        self._children = {spec.id: self._new_child(spec) for spec in self._specs}
        self._state = "starting"
        self._control_ran = False
        self._final_shutdown = False
        self._shutdown_cancelled = False
        self._spawn_control()
        try:
            for child in list(self._children.values()):
                if self._stopping:
                    break
                await self._launch(child)
        except BaseException:
            await self._stop_and_wait()
            failure = self._failure
            if failure is not None:
                # ``from None`` would also clear the cause that RestartIntensityExceeded carries.
                raise failure from failure.__cause__
            raise
        if self._stopping:
            await self._stop_and_wait()
            if self._failure is not None:
                raise self._failure
            return
        self._state = "running"

    async def stop(self) -> None:
        """Stop every child in reverse start order and wait until all have stopped.

        Does nothing if the supervisor is not running. A child that outlives its shutdown
        time is abandoned and reported, because an asyncio task cannot be killed.
        """
        if self._state in ("idle", "stopped", "failed"):
            return
        await self._stop_and_wait()

    async def wait(self) -> None:
        """Wait until the supervisor stops; raise the exception it failed with, if any.

        That is ``RestartIntensityExceeded``, or a ``BaseException`` that a child raised (see
        the package documentation for which ones). Raises ``SupervisorNotRunning`` if the
        supervisor was never started.
        """
        if self._done is None:
            raise SupervisorNotRunning(self.name, self._state, "wait for the supervisor")
        await asyncio.shield(self._done)
        if self._failure is not None:
            raise self._failure

    async def run(self, *, task_status: TaskStatus | None = None) -> None:
        """Start the children, signal ``task_status`` if given, and supervise until stopped.

        Raises ``RestartIntensityExceeded`` if the restart intensity is exceeded, and passes
        on a child's ``BaseException`` as ``wait()`` does. Cancelling the caller stops every
        child first. This is the start callable of a nested supervisor.
        """
        await self.start()
        try:
            if task_status is not None:
                task_status.started()
            await self.wait()
        finally:
            if self._done is not None and not self._done.done():
                await self._stop_and_wait()

    def child_spec(self, id: Hashable | None = None, **fields: Any) -> ChildSpec:
        """Return a spec that runs this supervisor as a child of another supervisor."""
        fields.setdefault("type", ChildType.SUPERVISOR)
        fields.setdefault("start_timeout", None)
        return ChildSpec(self.name if id is None else id, self.run, signals_ready=True, **fields)

    async def __aenter__(self) -> Supervisor:
        self._exiting = False
        # The host task is recorded only once start() succeeded: a failure during start()
        # is raised by start() itself, and Python never calls __aexit__ to undo a cancel.
        self._host = None
        await self.start()
        self._host = asyncio.current_task()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, traceback: Any) -> bool:
        self._exiting = True
        try:
            await self.stop()
        finally:
            host, self._host = self._host, None
        failure = self._failure
        if failure is not None:
            if self._host_cancelled and host is not None:
                self._host_cancelled = False
                host.uncancel()
            if exc is not None and not isinstance(exc, asyncio.CancelledError) and exc is not failure:
                # The body's own error becomes the failure's __context__, which a traceback
                # hides behind its __cause__, so a note names it.
                failure.add_note(f"the body of async with raised {exc!r} while the supervisor failed")
            raise failure
        return False

    async def _stop_and_wait(self) -> None:
        self._request_stop()
        assert self._done is not None
        await asyncio.shield(self._done)

    def _request_stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._state = "stopping"
        self._wake_control()
        self._release_idle_waiters()
        control = self._control_task
        if self._in_group_restart and control is not None and control is not asyncio.current_task():
            control.cancel()

    def _spawn_control(self) -> None:
        assert self._loop is not None
        control = self._loop.create_task(self._control_main(), name=f"{self.name}:control")
        control.add_done_callback(self._on_control_done)
        self._control_task = control

    def _on_control_done(self, control: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never runs its body. start() can return, or
        # be cancelled, before the control task has run (no child, or children that started
        # eagerly), and asyncio.run() cancels every task left. Nothing would then stop the
        # children or end wait(), so a new control task does the shutdown.
        if self._control_ran or control is not self._control_task:
            return
        self._stopping = True
        self._state = "stopping"
        self._spawn_control()

    def _wake_control(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _release_idle_waiters(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _after_group_restarts(self) -> None:
        """Return once no group restart is running or queued, or the supervisor is stopping.

        OTP's supervisor handles a call only between restarts, so a child added or restarted
        by hand never starts while the children it depends on are down. While a restart
        starts its children, a call made on behalf of a child that a group restart started
        does not wait, because the restart may be waiting for that child to be ready. Such a
        call comes from the child's task, from a task it created, or from a child of a
        supervisor it runs.
        """
        while (self._in_group_restart or self._pending) and not self._stopping:
            if self._group_starting and self in _restarted_by.get():
                # NOTE: that includes a child an earlier group restart started, which is
                # ready, so its call may start a child before the rest of this group.
                return
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    async def _control_main(self) -> None:
        # The control task runs group restarts one at a time and performs the final shutdown,
        # so that neither races with the other. One_for_one restarts never pass through here.
        self._control_ran = True
        _restarted_by.set((*_restarted_by.get(), self))
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                if not self._pending:
                    self._release_idle_waiters()
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                child, generation, reason, exited_at = self._pending.popleft()
                self._in_group_restart = True
                try:
                    await self._group_restart(child, generation, reason, exited_at)
                except Exception as error:
                    # A failure of the supervisor itself, such as a clock that raised: nothing
                    # would run the group restarts any more, so the supervisor fails.
                    self._fail_internally(child, error)
                finally:
                    self._in_group_restart = False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping and task is not None:
                task.uncancel()
            else:
                # Cancelled from outside, for example by the event loop shutting down: the
                # children still have to be stopped before the cancellation goes on.
                self._stopping = True
                self._state = "stopping"
                await self._shutdown_children()
                raise
        await self._shutdown_children()

    async def _shutdown_children(self) -> None:
        # A cancellation during the shutdown, such as asyncio.run() cancelling every task while
        # a stop() is under way, must not end the supervisor with children still running.
        self._final_shutdown = True
        try:
            children = list(self._children.values())
            if self._parallel_shutdown:
                try:
                    await self._stop_in_parallel(children, "shutdown")
                    children = []
                except Exception as error:
                    # An error of the supervisor's own, such as a clock that raised, possibly
                    # before any child was cancelled: the loop below stops each one left.
                    self._fail_shutdown(None, error)
            for child in reversed(children):
                try:
                    await self._stop_child(child, "shutdown")
                except Exception as error:
                    # The child was cancelled before the error, and the children before it
                    # must still stop.
                    self._fail_shutdown(child, error)
        finally:
            if self._start_timer is not None:
                self._start_timer.cancel()
                self._start_timer = None
                self._start_timer_due = math.inf
            self._starting.clear()
            self._state = "failed" if self._failure is not None else "stopped"
            if self._listening:
                self._emit(SupervisorStopped(self.name, None, time.perf_counter_ns(), self._failure))
            if self._failure is None:
                logger.info("supervisor %r stopped", self.name)
            else:
                logger.info("supervisor %r stopped after it failed: %r", self.name, self._failure)
            host = self._host
            if self._failure is not None and host is not None and not self._exiting and not host.done():
                self._host_cancelled = True
                host.cancel()
            assert self._done is not None
            if not self._done.done():
                self._done.set_result(None)
        if self._shutdown_cancelled:
            raise asyncio.CancelledError()

    def _fail_shutdown(self, child: _Child | None, error: Exception) -> None:
        if child is None:
            logger.error(
                "supervisor %r failed while stopping its children at once; stopping them one by one",
                self.name, exc_info=error,
            )
        else:
            logger.error(
                "supervisor %r failed while stopping child %r; stopping the others",
                self.name, child.spec.id, exc_info=error,
            )
        if self._failure is None:
            self._failure = error

    # ------------------------------------------------------------------ children

    async def _launch(self, child: _Child) -> Any:
        """Create the child's task and, if it signals readiness, wait until it is ready."""
        waiter, generation = self._spawn(child)
        if waiter is None:
            # A child that does not signal is ready once its task has begun to run, which
            # takes one pass of the event loop unless the task started eagerly.
            if child.generation == generation:
                await asyncio.sleep(0)
            return None
        try:
            return await waiter
        finally:
            child.ready_waiter = None

    def _spawn(self, child: _Child) -> tuple[asyncio.Future[Any] | None, int]:
        """Create the child's task; return its readiness future (None if it does not signal)."""
        assert self._loop is not None
        child.stopping = False
        child.ready = False
        child.timed_out = False
        waiter = None
        if child.spec.signals_ready:
            waiter = self._loop.create_future()
            child.ready_waiter = waiter
        generation = child.generation
        name = f"{self.name}:{child.spec.id!r}"
        if EAGER_START:
            # The child runs at once up to its first await; one that signals readiness before
            # it is ready without any pass through the event loop.
            child.task = asyncio.Task(self._child_main(child), loop=self._loop, name=name, eager_start=True)
        else:
            child.task = self._loop.create_task(self._child_main(child), name=name)
        return waiter, generation

    async def _child_main(self, child: _Child) -> None:
        # The whole life of a child, restarts included, runs in this one task. A one_for_one
        # restart re-enters the loop right after the exception is caught, so the replacement
        # starts with no extra pass through the event loop.
        spec = child.spec
        start = spec.start
        args = spec.args
        kwargs = spec.kwargs
        signals_ready = spec.signals_ready
        now: float | None = None  # clock time of the last exit, reused by the restart
        quick_exits = 0  # consecutive generations that exited within QUICK_EXIT of their start
        # A task that starts eagerly runs this before _spawn() has stored it, and a child that
        # stops itself before its first suspension must find its own task.
        task = asyncio.current_task()
        assert task is not None
        child.task = task
        if _tracking["current_child"]:
            current_child.set((self, spec.id))
        # Restarted without a look at the restart type once the child is known to be
        # permanent; transient and temporary children go through _should_restart().
        permanent = spec.restart is Restart.PERMANENT
        try:
            while True:
                child.generation += 1
                generation = child.generation
                child.status = _STARTING
                if self._listening:
                    self._emit(ChildStarted(self.name, spec.id, time.perf_counter_ns(), generation))
                if logger.isEnabledFor(logging.INFO):
                    logger.info("starting child %r of supervisor %r (generation %d)", spec.id, self.name, generation)
                if not signals_ready:
                    self._mark_ready(child, None)

                reason: BaseException | None
                # Read after the listeners and the start log, and the exit is read before them,
                # so a slow listener or log handler cannot hide a child that fails at once. The
                # ChildReady listeners that started() calls are subtracted. The first start, and
                # the first after a wait, is not timed: an idle child then keeps no float alive,
                # 24 bytes each.
                started_at = None if now is None else self._now() - self._listener_time
                try:
                    if signals_ready:
                        # Every local here is a slot in each child's frame for its whole life,
                        # so the start timeout and the status are not kept in locals.
                        if spec.start_timeout is not None:
                            self._watch_start(child, spec.start_timeout, now)
                        # Without keyword arguments, the call builds no dict to merge them.
                        if kwargs:
                            await start(*args, task_status=TaskStatus(self, child, generation), **kwargs)
                        else:
                            await start(*args, task_status=TaskStatus(self, child, generation))
                    elif kwargs:
                        await start(*args, **kwargs)
                    else:
                        await start(*args)
                except asyncio.CancelledError as error:
                    if child.stopping:
                        self._fail_waiter(child, error)
                        raise
                    if self._shutting_down():
                        # A stop, not a crash, although the supervisor did not request it. Either
                        # the supervisor is stopping anyway, or the event loop is shutting down.
                        # asyncio.run() cancels every task left when the main coroutine returns or
                        # after a KeyboardInterrupt, the control task included, often before the
                        # supervisor has stopped this child.
                        self._record_outside_stop(child)
                        self._fail_waiter(child, error)
                        raise
                    task.uncancel()
                    if child.timed_out:
                        child.timed_out = False
                        reason = StartTimeout(self.name, spec.id, spec.start_timeout or 0.0)
                    else:
                        reason = error
                except TypeError as error:
                    reason = error
                    if _awaited_non_awaitable(error):
                        reason = self._start_not_awaitable(spec, error)
                except Exception as error:
                    reason = error
                except (KeyboardInterrupt, SystemExit) as error:
                    # Never swallowed: asyncio passes these on out of the event loop, and the
                    # supervisor stops its other children and raises it to its owner.
                    self._pass_on(child, task, error)
                    # The supervisor has recorded it and its owner gets it, so the task's own copy
                    # is marked retrieved: asyncio would otherwise log it again when the task is
                    # garbage collected.
                    task.add_done_callback(_retrieve_exception)
                    raise
                except BaseException as error:
                    # Any other BaseException reaches the owner through wait(), run() and
                    # ``async with``. Re-raising it here would only leave it in a task that no
                    # one awaits.
                    self._pass_on(child, task, error)
                    return
                else:
                    reason = None
                finally:
                    if child in self._starting:
                        del self._starting[child]

                if child.stopping:
                    if reason is not None:
                        self._report_stop_error(child, task, reason)
                    self._fail_waiter(child, reason)
                    return
                now = self._now()
                if started_at is not None and now - self._listener_time - started_at < QUICK_EXIT:
                    quick_exits += 1
                else:
                    quick_exits = 0
                if self._listening:
                    self._record_exit(child, reason, now)
                else:
                    # What _record_exit() does without listeners, one call fewer per restart.
                    child.ready = False
                    if reason is not None:
                        self._log_failure(child, reason, now)

                if child.ready_waiter is not None and not child.ready_waiter.done():
                    # A caller waits for this start, so the failure is its to handle.
                    child.status = ChildStatus.EXITED
                    if self._group_starting:
                        self._start_failed_at[child] = now
                    child.ready_waiter.set_exception(ChildStartError(self.name, spec.id, reason))
                    return

                if (self._stopping or not permanent) and not self._should_restart(child, reason):
                    return
                if self._strategy is not _ONE_FOR_ONE:
                    child.status = ChildStatus.RESTARTING
                    self._pending.append((child, generation, reason, now))
                    self._wake_control()
                    return
                if child.limited and not self._within_child_limits(child, reason):
                    return
                if not self._count_restart(child, reason, now):
                    child.status = ChildStatus.EXITED
                    return

                child.restarts += 1
                delay = self._backoff_delay(child) if spec.backoff is not None else 0.0
                if self._listening:
                    self._emit_restarting(child, generation + 1, delay)
                if delay or quick_exits >= QUICK_RESTARTS:
                    quick_exits = 0
                    child.status = ChildStatus.RESTARTING
                    if not await self._wait_to_restart(child, task, delay):
                        return
                    now = None  # the start timeout runs from the end of the wait
        except Exception as error:
            # The child's own exceptions are handled inside the loop, so this is a failure of
            # the supervisor itself on the restart path, for example a clock that raised.
            self._fail_internally(child, error)

    def _shutting_down(self) -> bool:
        """Return whether the supervisor is stopping or its control task is being cancelled."""
        control = self._control_task
        return self._stopping or (control is not None and control.cancelling() > 0)

    async def _wait_to_restart(self, child: _Child, task: asyncio.Task[None], delay: float) -> bool:
        """Wait ``delay`` seconds, or one event-loop pass if 0, before a one_for_one restart.

        Return False if the supervisor began to stop meanwhile, so the child must not start.
        """
        try:
            if delay:
                await _clock.sleep(self._clock, delay)
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            if child.stopping:
                raise
            if self._shutting_down():
                # As in the start phase: asyncio.run() or a stop cancelled the task itself.
                self._record_outside_stop(child)
                raise
            # Someone else cancelled a child that was down. Like an unrequested cancellation of
            # a running child, it does not end supervision: the restart goes ahead at once.
            task.uncancel()
            logger.warning(
                "child %r of supervisor %r was cancelled while waiting %s s to restart; "
                "restarting it now",
                child.spec.id, self.name, delay,
            )
        if self._stopping:
            # The stop began during the wait and finds this task done, so it is recorded here.
            self._record_outside_stop(child)
            return False
        return True

    def _fail_internally(self, child: _Child, error: Exception) -> None:
        # The child can no longer be supervised, so the supervisor fails instead of listing
        # a child that nothing restarts any more.
        child.status = ChildStatus.EXITED
        child.ready = False
        logger.error(
            "supervisor %r failed while handling child %r; stopping all children",
            self.name, child.spec.id, exc_info=error,
        )
        if self._failure is None:
            self._failure = error
        self._fail_waiter(child, error)
        self._request_stop()


    def _emit_restarting(self, child: _Child, generation: int, delay: float) -> None:
        budget = child.budget_times
        self._emit(
            ChildRestarting(
                self.name, child.spec.id, time.perf_counter_ns(), generation, delay,
                len(self._restart_times), None if budget is None else len(budget),
            )
        )

    def _start_not_awaitable(self, spec: ChildSpec, error: TypeError) -> InvalidChildSpec:
        invalid = InvalidChildSpec(
            "start",
            spec.start,
            f"calling it for child {spec.id!r} of supervisor {self.name!r} returned an object that "
            "is not awaitable; start must be an async function (async def) or return an awaitable",
        )
        invalid.__cause__ = error
        return invalid

    def _record_outside_stop(self, child: _Child) -> None:
        # The supervisor did not cancel this child, so it will find the task done and report
        # nothing. The stop is reported here instead.
        child.status = ChildStatus.STOPPED
        child.ready = False
        if self._listening:
            self._emit(ChildStopped(self.name, child.spec.id, time.perf_counter_ns(), "shutdown", False, None))

    def _fail_waiter(self, child: _Child, reason: BaseException | None) -> None:
        # A child stopped before it was ready, so a caller waiting for its start must not hang.
        waiter = child.ready_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ChildStartError(self.name, child.spec.id, reason))

    def _pass_on(self, child: _Child, task: asyncio.Task[Any], error: BaseException) -> None:
        # A BaseException that is not a crash: record it, never restart the child, and fail
        # the supervisor with it so that wait(), run() and ``async with`` raise it.
        if child.abandoned:
            # The supervisor has moved on from this task, and may have stopped.
            self._report_stop_error(child, task, error)
            return
        self._record_exit(child, error)
        child.status = ChildStatus.EXITED
        if child.spec.restart is Restart.TEMPORARY and self._children.get(child.spec.id) is child:
            del self._children[child.spec.id]  # a temporary child is removed however it exits
        if self._failure is None:
            self._failure = error
        # A caller waiting for this start gets ChildStartError; start() raises the failure.
        self._fail_waiter(child, error)
        self._request_stop()

    def _report_stop_error(self, child: _Child, task: asyncio.Task[Any], error: BaseException) -> None:
        # The child raised instead of accepting the cancellation. No caller awaits its task, so
        # the error is logged and attached to the ChildStopped event. Once the task has been
        # abandoned, no event is left to carry it, so it goes to the loop's exception handler.
        if child.abandoned:
            asyncio.get_running_loop().call_exception_handler(
                {
                    "message": (
                        f"abandoned child {child.spec.id!r} of supervisor {self.name!r} "
                        "raised after its shutdown time"
                    ),
                    "exception": error,
                    # No "task" key: CPython 3.12 runs the handler in that task's context,
                    # which fails while the handler is called from inside that same task.
                }
            )
            return
        child.stop_error = error
        logger.error(
            "child %r of supervisor %r raised while stopping: %r",
            child.spec.id, self.name, error, exc_info=error,
        )

    def _record_exit(self, child: _Child, reason: BaseException | None, now: float | None = None) -> None:
        child.ready = False
        abnormal = reason is not None
        if self._listening:
            # The status which_children() reports to a listener until the restart decision.
            child.status = ChildStatus.EXITED
            self._emit(
                ChildExited(self.name, child.spec.id, time.perf_counter_ns(), child.generation, reason, abnormal)
            )
        if abnormal:
            self._log_failure(child, reason, self._now() if now is None else now)

    def _should_restart(self, child: _Child, reason: BaseException | None) -> bool:
        restart = child.spec.restart
        if self._stopping or restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and reason is None):
            if restart is Restart.TEMPORARY or self._forget_exited:
                if self._children.get(child.spec.id) is child:
                    del self._children[child.spec.id]
            child.status = ChildStatus.EXITED
            if child.spec.significant and not self._stopping:
                self._check_auto_shutdown()
            return False
        return True

    def _check_auto_shutdown(self) -> None:
        if self._auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
            self._request_stop()
        elif self._auto_shutdown is AutoShutdown.ALL_SIGNIFICANT:
            still_running = any(
                c.spec.significant and c.task is not None and not c.task.done() and c.status is not ChildStatus.EXITED
                for c in self._children.values()
            )
            if not still_running:
                self._request_stop()

    def _within_child_limits(self, child: _Child, reason: BaseException | None) -> bool:
        # The child's own limits come before the supervisor-wide intensity: a child that
        # reaches one of them is not restarted, so its exit is not counted as a restart.
        spec = child.spec
        cap = spec.max_lifetime_restarts
        if cap is not None and child.lifetime_restarts >= cap:
            if self._quarantines:
                self._quarantine(child, reason, child.lifetime_restarts + 1, cap, None)
            else:
                self._fail(child, reason, child.lifetime_restarts + 1, cap, None)
                child.status = ChildStatus.EXITED
            return False
        times = child.budget_times
        if times is not None:
            assert self._budget_max_restarts is not None
            now = self._now()
            times.append(now)
            window = self._budget_max_seconds
            while times[0] + window < now:
                times.popleft()
            if len(times) > self._budget_max_restarts:
                # The refused restart does not stay in the window, which lists restarts done.
                times.pop()
                self._quarantine(
                    child, reason, len(times) + 1, self._budget_max_restarts, self._budget_max_seconds
                )
                return False
        child.lifetime_restarts += 1
        return True

    def _quarantine(
        self, child: _Child, reason: BaseException | None, restarts: int, max_restarts: int, max_seconds: float | None
    ) -> None:
        child.status = ChildStatus.QUARANTINED
        if self._listening:
            self._emit(
                ChildQuarantined(
                    self.name, child.spec.id, time.perf_counter_ns(), child.generation,
                    restarts, max_restarts, max_seconds, reason,
                )
            )
        if max_seconds is None:
            limit = f"its max_lifetime_restarts={max_restarts}"
        else:
            limit = f"{_count(restarts, 'restart')} within {max_seconds} s (max {max_restarts})"
        logger.error(
            "quarantining child %r of supervisor %r: %s; last exit %r; it stays stopped until "
            "restart_child() or terminate_child()",
            child.spec.id, self.name, limit, reason,
        )

    def _count_restart(self, child: _Child, reason: BaseException | None, now: float | None = None) -> bool:
        # Sliding window as in OTP: a restart exactly max_seconds ago still counts.
        if now is None:
            now = self._now()
        times = self._restart_times
        times.append(now)
        window = self._max_seconds
        while times[0] + window < now:
            times.popleft()
        if len(times) <= self._max_restarts:
            return True
        self._fail(child, reason, len(times), self._max_restarts, self._max_seconds)
        return False

    def _fail(
        self, child: _Child, reason: BaseException | None, restarts: int, max_restarts: int, max_seconds: float | None
    ) -> None:
        error = RestartIntensityExceeded(self.name, child.spec.id, restarts, max_restarts, max_seconds, reason)
        if self._failure is None:
            self._failure = error
        if self._listening:
            self._emit(
                IntensityExceeded(
                    self.name, child.spec.id, time.perf_counter_ns(), restarts, max_restarts, max_seconds, reason
                )
            )
        logger.error("%s; stopping all children", error)
        self._request_stop()

    def _backoff_delay(self, child: _Child) -> float:
        backoff = child.spec.backoff
        assert backoff is not None
        ready_at = child.ready_at
        if ready_at is not None and self._now() - ready_at >= backoff.reset_after:
            child.attempt = 0
        child.ready_at = None
        child.attempt += 1
        source = child.jitter_source
        if source is None:
            # Its own generator when the Backoff is seeded and jittered, so every child and
            # every run repeats the same delays; otherwise the Backoff's shared one.
            source = child.jitter_source = backoff.new_random()
        return backoff.delay(child.attempt, source)

    def _mark_ready(self, child: _Child, value: Any) -> None:
        child.ready = True
        child.status = _RUNNING
        if child in self._starting:
            del self._starting[child]
        if child.spec.backoff is not None:
            child.ready_at = self._now()
        if self._listening:
            # started() runs this inside the child's generation, so the listeners' time is
            # recorded for the quick-exit count to leave out.
            called_at = self._now()
            self._emit(ChildReady(self.name, child.spec.id, time.perf_counter_ns(), child.generation))
            self._listener_time += self._now() - called_at
        waiter = child.ready_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(value)

    def _watch_start(self, child: _Child, timeout: float, now: float | None) -> None:
        # Start timeouts share one timer per supervisor instead of one per start: a restart
        # only adds the child to a dict and readiness removes it, which costs far less than
        # creating and cancelling a loop timer. The timer is armed for the earliest deadline
        # and, when it fires, expires what is due and re-arms for what remains.
        deadline = (self._now() if now is None else now) + timeout
        self._starting[child] = deadline
        if deadline < self._start_timer_due:
            if self._start_timer is not None:
                self._start_timer.cancel()
            self._start_timer = self._clock.call_later(timeout, self._expire_starts)
            self._start_timer_due = deadline

    def _expire_starts(self) -> None:
        self._start_timer = None
        self._start_timer_due = math.inf
        now = self._now()
        expired = [child for child, deadline in self._starting.items() if deadline <= now]
        for child in expired:
            del self._starting[child]
            task = child.task
            if not child.ready and task is not None and not task.done():
                child.timed_out = True
                task.cancel()
        if self._starting:
            deadline = min(self._starting.values())
            self._start_timer = self._clock.call_later(max(0.0, deadline - now), self._expire_starts)
            self._start_timer_due = deadline

    async def _group_restart(
        self, failed: _Child, generation: int, reason: BaseException | None, exited_at: float
    ) -> None:
        if failed.generation != generation or self._children.get(failed.spec.id) is not failed:
            return  # stale: that child has been restarted or removed since it failed
        if failed.limited and not self._within_child_limits(failed, reason):
            return
        # Counted at the exit, not now: a restart queued behind another group restart's
        # backoff delay still falls in the window of the exits around it.
        if not self._count_restart(failed, reason, exited_at):
            return
        children = list(self._children.values())
        if self._strategy is Strategy.REST_FOR_ONE:
            children = children[children.index(failed):]
        # Every child stopped here is started again below, except a temporary one, so it is
        # listed as restarting from now until it starts.
        self._group_stopping = {child for child in children if child.spec.restart is not Restart.TEMPORARY}
        try:
            if self._parallel_group_restart:
                await self._stop_in_parallel(list(reversed(children)), "group_restart", restarting=True)
            else:
                for child in reversed(children):
                    status = ChildStatus.RESTARTING if child in self._group_stopping else ChildStatus.STOPPED
                    await self._stop_child(child, "group_restart", status)
        finally:
            self._group_stopping = set()

        delay = self._backoff_delay(failed) if failed.spec.backoff is not None else 0.0
        if self._listening:
            self._emit_restarting(failed, generation + 1, delay)
        if delay:
            await _clock.sleep(self._clock, delay)

        self._group_starting = True
        try:
            if self._parallel_group_restart:
                await self._start_in_parallel(children)
            else:
                await self._start_in_order(children)
        finally:
            self._group_starting = False
            self._start_failed_at.clear()

    async def _start_in_order(self, stopped: list[_Child]) -> None:
        for record in stopped:
            if self._stopping:
                return
            child = self._to_restart(record)
            if child is None:
                continue
            child.restarts += 1
            try:
                await self._launch(child)
            except ChildStartError as error:
                if child.stopping:
                    continue  # terminated while it started: it stays down
                self._queue_start_failure(child, error)
                return

    def _queue_start_failure(self, child: _Child, error: ChildStartError) -> None:
        # The restart counts at the exit that _child_main() recorded. A parallel start collects
        # readiness in start order, so it may reach this child long after the child failed.
        exited_at = self._start_failed_at.get(child)
        if exited_at is None:
            exited_at = self._now()
        self._pending.append((child, child.generation, error.reason, exited_at))

    def _to_restart(self, stopped: _Child) -> _Child | None:
        # The record a group restart starts again in place of ``stopped``, or None. A child
        # abandoned after its shutdown time was replaced by a fresh record.
        child = self._children.get(stopped.spec.id)
        if child is None:
            return None  # deleted while this restart ran
        if child.spec.restart is Restart.TEMPORARY:
            # Temporary children are never restarted, even when a sibling's restart stopped them.
            if child.task is None or child.task.done():
                del self._children[child.spec.id]
            return None
        if child.status is not ChildStatus.RESTARTING:
            # Terminated, or deleted and added again, while this restart ran: the management
            # call wins, as if OTP had handled it after the restart.
            return None
        return child

    async def _start_in_parallel(self, stopped: list[_Child]) -> None:
        # parallel_group_restart: every task is created before any is awaited, so the group
        # starts in one pass of the event loop. Readiness is then collected in start order.
        if self._stopping:
            return
        started = []
        for record in stopped:
            child = self._to_restart(record)
            if child is not None:
                child.restarts += 1
                started.append((child, *self._spawn(child)))
        if any(waiter is None for _, waiter, _ in started):
            await asyncio.sleep(0)
        failed = None
        for child, waiter, _ in started:
            if waiter is None:
                continue
            try:
                await waiter
            except ChildStartError as error:
                if failed is None and not child.stopping:
                    failed = (child, error)
            finally:
                child.ready_waiter = None
        if failed is not None and not self._stopping:
            self._queue_start_failure(*failed)

    async def _stop_child(self, child: _Child, cause: str, status: ChildStatus = ChildStatus.STOPPED) -> None:
        # The child gets ``status`` once stopped, which is RESTARTING when a group restart
        # will start it again.
        task = self._cancel_child(child, cause, status)
        if task is None:
            return
        if task is asyncio.current_task():
            # The child stops itself (terminate_child() from its own code). Nothing can wait
            # for a task from inside it, so the stop is recorded now; the cancellation ends
            # the task at its next await.
            child.status = status
            child.ready = False
            if self._listening:
                self._emit(ChildStopped(self.name, child.spec.id, time.perf_counter_ns(), cause, False, None))
            return
        timeout = self._shutdown_timeout(child)
        if timeout != 0.0:
            # Most children finish unwinding in the pass right after the cancellation, so one
            # pass comes first; only a child still running then needs a timed wait. That keeps
            # a group restart of N children at one pass per child, with no timer each.
            if self._final_shutdown:
                await self._pass_during_stop()
            else:
                await asyncio.sleep(0)
        await self._await_stopped(child, task, timeout, cause, status=status)

    async def _stop_in_parallel(self, children: list[_Child], cause: str, restarting: bool = False) -> None:
        # Cancel every child first, then wait for each until its own deadline, so the whole
        # stop takes as long as the slowest child rather than the sum of their shutdown times.
        # With ``restarting``, the children that a group restart starts again (all but the
        # temporary ones) are listed as restarting once stopped.
        now = self._now()
        cancelled = []
        for child in children:
            status = ChildStatus.STOPPED
            if restarting and child.spec.restart is not Restart.TEMPORARY:
                status = ChildStatus.RESTARTING
            task = self._cancel_child(child, cause, status)
            if task is not None:
                timeout = self._shutdown_timeout(child)
                cancelled.append((child, task, timeout, None if timeout is None else now + timeout, status))
        if any(timeout != 0.0 for _, _, timeout, _, _ in cancelled):
            # As in _stop_child(): one pass lets most children finish unwinding, so only those
            # still running need a timer.
            if self._final_shutdown:
                await self._pass_during_stop()
            else:
                await asyncio.sleep(0)
        for child, task, timeout, deadline, status in cancelled:
            remaining = None if deadline is None else max(0.0, deadline - self._now())
            await self._await_stopped(child, task, remaining, cause, reported_timeout=timeout, status=status)

    def _cancel_child(self, child: _Child, cause: str, status: ChildStatus) -> asyncio.Task[None] | None:
        task = child.task
        if task is None or task.done():
            if task is not None and child.stopping and child.status in (_STARTING, _RUNNING):
                # An earlier stop cancelled this task, and the wait that would have recorded it
                # was itself cancelled (asyncio.run() ending during a group restart).
                child.status = status
                child.ready = False
                if self._listening:
                    self._emit(
                        ChildStopped(self.name, child.spec.id, time.perf_counter_ns(), cause, False, child.stop_error)
                    )
                child.stop_error = None
                return None
            # An exited or quarantined child keeps its status, unless a group restart will
            # start it again.
            restarting = status is ChildStatus.RESTARTING
            if restarting or child.status not in (ChildStatus.EXITED, ChildStatus.QUARANTINED):
                child.status = status
            return None
        child.stopping = True
        child.stop_error = None
        task.cancel()
        return task

    @staticmethod
    def _shutdown_timeout(child: _Child) -> float | None:
        shutdown = child.spec.shutdown
        if shutdown is INFINITY:
            return None
        if shutdown is BRUTAL_KILL:
            return 0.0
        return float(shutdown)  # type: ignore[arg-type]

    async def _await_stopped(
        self,
        child: _Child,
        task: asyncio.Task[None],
        timeout: float | None,
        cause: str,
        reported_timeout: float | None = None,
        status: ChildStatus = ChildStatus.STOPPED,
    ) -> None:
        if reported_timeout is None:
            reported_timeout = timeout
        # Group restarts, which a stop interrupts by cancelling the control task, take the
        # plain wait: the other one costs a coroutine more per child.
        if self._final_shutdown:
            finished = await self._wait_stopping(task, timeout)
        else:
            finished = await _clock.wait_task(self._clock, task, timeout)
        child.status = status
        child.ready = False
        if not finished:
            self._abandon(child, task, reported_timeout)
        if self._listening:
            self._emit(
                ChildStopped(self.name, child.spec.id, time.perf_counter_ns(), cause, not finished, child.stop_error)
            )
        child.stop_error = None

    async def _pass_during_stop(self) -> None:
        """Give the event loop one pass during the final shutdown, deferring a cancellation."""
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._shutdown_cancelled = True

    async def _wait_stopping(self, task: asyncio.Task[None], timeout: float | None) -> bool:
        """Wait as _clock.wait_task() does during the final shutdown, deferring a cancellation."""
        deadline = None if timeout is None else self._now() + timeout
        while True:
            try:
                return await _clock.wait_task(self._clock, task, timeout)
            except asyncio.CancelledError:
                self._shutdown_cancelled = True
                if deadline is not None:
                    timeout = max(0.0, deadline - self._now())

    def _abandon(self, child: _Child, task: asyncio.Task[None], timeout: float | None) -> None:
        # An asyncio task cannot be killed: keep a reference so it is not garbage collected
        # mid-flight, and report it. The abandoned task keeps its _Child, which stays marked
        # as stopping, and the supervisor goes on with a fresh record of the child, so a
        # restart never shares state with the task that is still running.
        child.abandoned = True
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        if self._children.get(child.spec.id) is child:
            fresh = self._new_child(child.spec)
            fresh.generation = child.generation
            fresh.restarts = child.restarts
            fresh.lifetime_restarts = child.lifetime_restarts
            fresh.status = child.status  # stopped, or restarting in a group restart
            self._children[child.spec.id] = fresh
        # INFINITY never gets here, because the supervisor waits for such a child without limit.
        if child.spec.shutdown is BRUTAL_KILL:
            limit = "the one event-loop pass that shutdown=BRUTAL_KILL allows after cancelling it"
        else:
            limit = f"its shutdown time of {timeout} s"
        logger.error(
            "child %r of supervisor %r did not stop within %s; abandoning its task, which is still running",
            child.spec.id, self.name, limit,
        )
        if self._listening:
            self._emit(ChildShutdownTimeout(self.name, child.spec.id, time.perf_counter_ns(), timeout or 0.0))

    # ------------------------------------------------------------------ runtime management

    def _require_running(self, operation: str, child_id: Hashable | None = None) -> None:
        if self._state not in ("running", "starting"):
            raise SupervisorNotRunning(self.name, self._state, operation, child_id)

    def _get(self, child_id: Hashable) -> _Child:
        try:
            return self._children[child_id]
        except (KeyError, TypeError):  # TypeError: an unhashable id, which no child can have
            raise ChildNotFound(self.name, child_id) from None

    def _new_child(self, spec: ChildSpec) -> _Child:
        return _Child(spec, self._budget_max_restarts is not None)

    async def start_child(self, spec: ChildSpec) -> Any:
        """Add a child at the end of the start order and start it.

        Returns the value the child passed to ``task_status.started()``. If the child fails
        before it is ready, it is removed again and ``ChildStartError`` is raised. Raises
        ``DuplicateChild`` if a child with the same id exists, running or not, and
        ``SupervisorNotRunning`` unless the supervisor is starting or running. While a
        one_for_all or rest_for_one restart runs or is queued, it first waits until that is
        done. It does not wait while the restart starts children if it is called on behalf of
        a child that a group restart started, because the restart may be waiting for it.
        """
        self._require_running("start", getattr(spec, "id", None))
        self._check_new_spec(spec, (), "spec")
        await self._after_group_restarts()
        self._require_running("start", spec.id)
        if spec.id in self._children:
            existing = self._children[spec.id]
            running = existing.task is not None and not existing.task.done()
            raise DuplicateChild(self.name, spec.id, running)
        return await self._add_and_launch(spec)

    async def _add_and_launch(self, spec: ChildSpec) -> Any:
        child = self._new_child(spec)
        self._children[spec.id] = child
        try:
            return await self._launch(child)
        except BaseException:
            if self._children.get(spec.id) is child and (child.task is None or child.task.done()):
                del self._children[spec.id]
            raise

    async def terminate_child(self, child_id: Hashable) -> None:
        """Stop a child; it stays down until ``restart_child()``. A temporary child is removed.

        A pending restart (a backoff delay) is cancelled. A quarantined child keeps its
        status. Raises ``ChildNotFound`` for an unknown id.
        """
        self._require_running("terminate", child_id)
        child = self._get(child_id)
        await self._stop_child(child, "terminate")
        current = self._children.get(child_id)
        if current is not None and current.spec.restart is Restart.TEMPORARY:
            del self._children[child_id]

    async def restart_child(self, child_id: Hashable) -> Any:
        """Start a child that was terminated, has exited or was quarantined; its spec is kept.

        A quarantined child starts with an empty restart budget; its lifetime count is kept.
        Raises ``ChildRunning`` if the child's task is still running, which includes a
        pending restart in a backoff delay. Like ``start_child()``, it first waits for a
        group restart that runs or is queued, and raises ``ChildRunning`` if that started
        the child.
        """
        self._require_running("restart", child_id)
        self._get(child_id)
        await self._after_group_restarts()
        self._require_running("restart", child_id)
        # Looked up again: the group restart may have started it, or replaced its record.
        child = self._get(child_id)
        if child.task is not None and not child.task.done():
            raise ChildRunning(self.name, child_id, "restart")
        if child.budget_times is not None:
            child.budget_times.clear()
        child.restarts += 1
        return await self._launch(child)

    def delete_child(self, child_id: Hashable) -> None:
        """Remove the spec of a child that is not running.

        Raises ``ChildRunning`` if its task is still running; call ``terminate_child()`` first.
        """
        self._require_running("delete", child_id)
        child = self._get(child_id)
        if child.task is not None and not child.task.done():
            raise ChildRunning(self.name, child_id, "delete")
        del self._children[child_id]

    def which_children(self) -> list[ChildInfo]:
        """Return a snapshot of every child, in start order, with its restart limits."""
        now = self._now()
        intensity = RestartWindow(
            _count_within(self._restart_times, now, self._max_seconds), self._max_restarts, self._max_seconds
        )
        infos = []
        for child in self._children.values():
            spec = child.spec
            budget = None
            if child.budget_times is not None:
                assert self._budget_max_restarts is not None
                budget = RestartWindow(
                    _count_within(child.budget_times, now, self._budget_max_seconds),
                    self._budget_max_restarts,
                    self._budget_max_seconds,
                )
            lifetime = None
            if spec.max_lifetime_restarts is not None:
                lifetime = RestartWindow(child.lifetime_restarts, spec.max_lifetime_restarts, None)
            status = child.status
            if child in self._group_stopping and status in (_STARTING, _RUNNING):
                status = ChildStatus.RESTARTING
            infos.append(
                ChildInfo(
                    spec.id, status, spec.type, spec.restart, child.generation, child.restarts,
                    child.task, intensity, budget, lifetime,
                )
            )
        return infos

    def count_children(self) -> dict[str, int]:
        """Return the number of specs, of running children, and of supervisors and workers."""
        specs = len(self._children)
        # As in OTP, a child counts as active only while it runs, not while it waits to restart.
        active = sum(
            1
            for child in self._children.values()
            if child.task is not None and not child.task.done() and child.status in (_STARTING, _RUNNING)
        )
        supervisors = sum(1 for child in self._children.values() if child.spec.type is ChildType.SUPERVISOR)
        return {"specs": specs, "active": active, "supervisors": supervisors, "workers": specs - supervisors}

    # ------------------------------------------------------------------ events and logging

    def events(self) -> EventStream:
        """Subscribe to events; the stream ends after the supervisor stops.

        Subscribe before ``start()`` to see a whole run; a stream taken after the supervisor
        has stopped or failed is already at its end. A stream buffers every event until it is
        read, so one left before its end should be closed: ``close()``, or ``async with``.
        """
        stream = EventStream(self._unsubscribe)
        self._streams.append(stream)
        self._listening = True
        if self._state in ("stopped", "failed"):
            stream.close()
        return stream

    def _unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
        self._listening = self._on_event is not None or bool(self._streams)

    def _emit(self, event: Event) -> None:
        callback = self._on_event
        if callback is not None:
            try:
                callback(event)
            except Exception as error:
                # The callback runs on the restart path; its failure must not break a restart.
                asyncio.get_running_loop().call_exception_handler(
                    {"message": f"on_event callback of supervisor {self.name!r} raised", "exception": error}
                )
        for stream in tuple(self._streams):
            stream._push(event)

    def _log_failure(self, child: _Child, reason: BaseException | None, now: float) -> None:
        # In a restart storm most failures land here; the suppressed case is checked first so
        # that it costs two comparisons.
        in_window = now - self._log_window_start < FAILURE_LOG_WINDOW
        if in_window and self._log_count >= FAILURE_LOG_LIMIT:
            self._log_suppressed += 1
            return
        if not logger.isEnabledFor(logging.ERROR):
            return
        if not in_window:
            if self._log_suppressed:
                logger.error(
                    "%d more child failures in supervisor %r were not logged (limit %d per %s s)",
                    self._log_suppressed, self.name, FAILURE_LOG_LIMIT, FAILURE_LOG_WINDOW,
                )
            self._log_window_start = now
            self._log_count = 0
            self._log_suppressed = 0
        if self._log_count >= FAILURE_LOG_LIMIT:
            self._log_suppressed += 1
            return
        self._log_count += 1
        # exc_info defers formatting of the traceback to handlers that emit the record.
        logger.error(
            "child %r of supervisor %r failed: %r", child.spec.id, self.name, reason, exc_info=reason
        )
