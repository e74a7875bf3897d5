"""Actors: supervised workers with a mailbox and a reference that stays valid across restarts.

An ``ActorRef`` owns the mailbox; the supervisor owns the actor instance. Each start of the
child creates a new instance from the factory, runs its ``on_start`` hook and then hands it
the messages in the mailbox one at a time, in arrival order. A restart replaces the instance
but keeps the reference and the mailbox, as Akka does and unlike an Erlang pid.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from ._clock import Clock, MonotonicClock
from ._errors import InvalidChildSpec, SupervisorError
from ._spec import ChildSpec, Restart, Strategy
from ._supervisor import Supervisor, TaskStatus

__all__ = [
    "Actor",
    "ActorRef",
    "ActorError",
    "ActorFailed",
    "ActorStopped",
    "MailboxFull",
    "AskTimeout",
    "DEFAULT_MAILBOX_SIZE",
    "DEFAULT_ASK_TIMEOUT",
    "MESSAGES_PER_TURN",
]

logger = logging.getLogger("supervisor")

DEFAULT_MAILBOX_SIZE = 1000
"""The maximum number of messages in a mailbox, unless ``ActorRef(mailbox_size=...)`` sets another."""

DEFAULT_ASK_TIMEOUT = 5.0
"""Seconds ``ask()`` waits for a reply unless given ``timeout=`` (as gen_server:call's 5 s)."""

MESSAGES_PER_TURN = 100
"""Messages an actor handles back to back before it yields to the event loop once.

A handler that never awaits would otherwise hold the loop for as long as its mailbox has
messages. Yielding every 100 messages bounds that, at the cost of one loop pass per 100.
"""

# Actor states, as ActorRef.state reports them.
IDLE = "idle"  # never started
STARTING = "starting"  # an instance is running on_start
RUNNING = "running"  # an instance is handling messages
RESTARTING = "restarting"  # no instance; the supervisor is expected to start one
STOPPED = "stopped"  # stopped for good: tell() and ask() raise ActorStopped


class ActorError(SupervisorError):
    """Base class of the errors about one actor; ``actor`` is the actor's name."""

    actor: str


class ActorFailed(ActorError):
    """The actor failed while it handled this message, which is not retried.

    ``reason`` is the exception the handler raised, also chained as ``__cause__``, or the
    ``CancelledError`` of a supervisor that stopped the actor to restart it.
    """

    def __init__(self, actor: str, reason: BaseException) -> None:
        self.actor = actor
        self.reason = reason
        if isinstance(reason, asyncio.CancelledError):
            what = "was stopped by its supervisor for a restart"
        else:
            what = f"failed with {reason!r}"
        super().__init__(f"actor {actor!r} {what} while handling this message; the message is not retried")


class ActorStopped(ActorError):
    """The actor stopped for good, so the message was not handled and never will be.

    ``cause`` describes why in words, and ``reason`` is the error behind it if there is one, such as
    the supervisor's ``RestartIntensityExceeded``.
    """

    def __init__(self, actor: str, cause: str, reason: BaseException | None = None) -> None:
        self.actor = actor
        self.cause = cause
        self.reason = reason
        message = f"actor {actor!r} is stopped: {cause}"
        if reason is not None:
            message += f" ({reason})"
        super().__init__(message)


class MailboxFull(ActorError):
    """``tell()`` found the mailbox full; ``limit`` is its size."""

    def __init__(self, actor: str, limit: int) -> None:
        self.actor = actor
        self.limit = limit
        super().__init__(
            f"mailbox of actor {actor!r} is full ({limit} messages); use 'await send()' to wait "
            "for room, or a larger mailbox_size"
        )


class AskTimeout(ActorError, TimeoutError):
    """No reply came within the ``timeout`` seconds given to ``ask()``."""

    def __init__(self, actor: str, timeout: float) -> None:
        self.actor = actor
        self.timeout = timeout
        super().__init__(
            f"ask to actor {actor!r} timed out after {timeout} s; a message that reached the "
            "mailbox is still handled later"
        )


class Actor:
    """Base class of actors: override ``receive`` and, if needed, the two hooks.

    The supervisor creates a new instance at every start, so state built by ``on_start``
    is fresh after a restart while the mailbox is kept. Messages reach ``receive`` one at a
    time, never concurrently.
    """

    async def on_start(self) -> None:
        """Build the instance's state before its first message; raising is a failed start."""

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value is the reply to ``ask()``.

        An exception is the actor's failure: the supervisor restarts it by its policy.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement receive()")

    async def on_stop(self, reason: BaseException | None) -> None:
        """Release resources of an instance whose ``on_start`` completed.

        ``reason`` is the exception that ended it: the handler's error, or ``CancelledError``
        when the supervisor stopped it. An exception raised here goes to the event loop's
        exception handler and does not replace ``reason``.
        """


class _Binding:
    """The restart type of one actor child spec, read by the actor when its task ends."""

    __slots__ = ("restart",)

    def __init__(self) -> None:
        self.restart = Restart.PERMANENT


def _is_running(supervisor: Supervisor) -> bool:
    return supervisor.state in ("starting", "running")


def _supervisor_of(task_status: TaskStatus) -> Supervisor:
    # The actor needs the supervisor to tell a stop for good (the supervisor is stopping)
    # from a stop before a group restart.
    supervisor = getattr(task_status, "supervisor", None)
    if not isinstance(supervisor, Supervisor):
        raise TypeError(
            f"an actor must be started by a Supervisor through its child spec; got task_status={task_status!r}"
        )
    return supervisor


def _expire(reply: asyncio.Future[Any], actor: str, timeout: float) -> None:
    if not reply.done():
        reply.set_exception(AskTimeout(actor, timeout))


class ActorRef:
    """The address of an actor: send it messages with ``tell``, ``send`` and ``ask``.

    ``factory(*args, **kwargs)`` creates an ``Actor`` (any object with the same three
    methods will do) at every start. ``child_spec()`` returns the spec that runs the actor
    under a supervisor. The reference and its mailbox outlive restarts: messages sent while
    the actor restarts wait in the mailbox for the new instance.

    The mailbox holds at most ``mailbox_size`` messages. When it is full, ``tell()``
    raises ``MailboxFull``, while ``send()`` and ``ask()`` wait for room, first come first
    served. ``clock`` times ``ask()`` timeouts (default: the event loop's monotonic time).
    """

    def __init__(
        self,
        factory: Callable[..., Any],
        *,
        name: str,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        clock: Clock | None = None,
    ) -> None:
        if not callable(factory):
            raise InvalidChildSpec("factory", factory, "expected a callable that returns an Actor")
        if not isinstance(name, str) or not name:
            raise InvalidChildSpec("name", name, "expected a non-empty string")
        if not isinstance(args, (tuple, list)):
            raise InvalidChildSpec("args", args, "expected a tuple of positional arguments")
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping) or not all(isinstance(key, str) for key in kwargs):
            raise InvalidChildSpec("kwargs", kwargs, "expected a mapping of str to values")
        if isinstance(mailbox_size, bool) or not isinstance(mailbox_size, int) or mailbox_size < 1:
            raise InvalidChildSpec("mailbox_size", mailbox_size, "expected an integer >= 1")
        if clock is None:
            clock = MonotonicClock()
        elif not callable(getattr(clock, "call_later", None)):
            raise InvalidChildSpec("clock", clock, "expected an object with now() and call_later()")

        self.name = name
        self._factory = factory
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._limit = mailbox_size
        self._clock = clock

        # The mailbox holds (message, reply future or None). Senders that found it full wait
        # in _blocked as (message, reply or None, accepted future or None); whenever the
        # actor takes a message, the first of them moves into the mailbox, so _blocked is
        # empty unless the mailbox is full and arrival order is kept.
        self._mailbox: deque[tuple[Any, asyncio.Future[Any] | None]] = deque()
        self._blocked: deque[tuple[Any, asyncio.Future[Any] | None, asyncio.Future[None] | None]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._in_flight: tuple[Any, asyncio.Future[Any] | None] | None = None

        self._state = IDLE
        self._stop_cause: tuple[str, BaseException | None] | None = None
        self._instances = 0
        self._task: asyncio.Task[Any] | None = None
        self._binding: _Binding | None = None
        self._last_reason: BaseException | None = None
        self._supervisor: Supervisor | None = None
        self._watcher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ introspection

    @property
    def state(self) -> str:
        """One of ``idle``, ``starting``, ``running``, ``restarting`` or ``stopped``."""
        return self._state

    @property
    def mailbox_size(self) -> int:
        """The number of messages the mailbox holds at most."""
        return self._limit

    @property
    def pending(self) -> int:
        """The number of messages in the mailbox, not counting the one being handled."""
        return len(self._mailbox)

    @property
    def instances(self) -> int:
        """The number of instances started so far; each restart adds one."""
        return self._instances

    def __repr__(self) -> str:
        return (
            f"<ActorRef {self.name!r} {self._state} mailbox={len(self._mailbox)}/{self._limit} "
            f"instances={self._instances}>"
        )

    # ------------------------------------------------------------------ sending

    def tell(self, message: Any) -> None:
        """Put ``message`` in the mailbox and return at once, without a reply.

        Raises ``MailboxFull`` if the mailbox is full and ``ActorStopped`` if the actor is
        stopped for good.
        """
        if self._state == STOPPED:
            raise self._stopped_error()
        if len(self._mailbox) >= self._limit:
            raise MailboxFull(self.name, self._limit)
        self._mailbox.append((message, None))
        self._wake()

    async def send(self, message: Any) -> None:
        """Put ``message`` in the mailbox, waiting for room while it is full.

        Raises ``ActorStopped`` if the actor is or becomes stopped for good before the
        message is in the mailbox.
        """
        if self._state == STOPPED:
            raise self._stopped_error()
        if len(self._mailbox) < self._limit:
            self._mailbox.append((message, None))
            self._wake()
            return
        accepted = asyncio.get_running_loop().create_future()
        self._blocked.append((message, None, accepted))
        await accepted

    async def ask(self, message: Any, *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and return the actor's reply: what ``receive`` returned.

        Raises ``AskTimeout`` if no reply comes within ``timeout`` seconds (``None``: no
        limit; the time spent waiting for room in a full mailbox counts), ``ActorFailed``
        if the actor failed while handling this message, and ``ActorStopped`` if the actor
        is or becomes stopped for good before it handled it.
        """
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < math.inf
        ):
            raise ValueError(f"invalid timeout={timeout!r}: expected seconds > 0, or None for no limit")
        if self._state == STOPPED:
            raise self._stopped_error()

        reply = asyncio.get_running_loop().create_future()
        if len(self._mailbox) < self._limit:
            self._mailbox.append((message, reply))
            self._wake()
        else:
            self._blocked.append((message, reply, None))
        timer = None
        if timeout is not None:
            timer = self._clock.call_later(timeout, _expire, reply, self.name, timeout)
        try:
            return await reply
        finally:
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None:
            self._wakeup = None
            if not waiter.done():
                waiter.set_result(None)

    def _take(self) -> tuple[Any, asyncio.Future[Any] | None]:
        envelope = self._mailbox.popleft()
        blocked = self._blocked
        while blocked:
            message, reply, accepted = blocked.popleft()
            if accepted is not None:
                if accepted.done():
                    continue  # the sender was cancelled while it waited for room
                accepted.set_result(None)
            elif reply is not None and reply.done():
                continue  # the asker timed out or was cancelled before its message got in
            self._mailbox.append((message, reply))
            break
        return envelope

    # ------------------------------------------------------------------ supervision

    def child_spec(self, id: Hashable | None = None, **fields: Any) -> ChildSpec:
        """Return a spec that runs this actor as a child; ``id`` defaults to the actor's name.

        ``fields`` are the other ``ChildSpec`` fields (``restart``, ``shutdown``,
        ``start_timeout``, ``backoff``, ...). The actor is ready once ``on_start`` has
        returned, so ``start_timeout`` bounds ``on_start``. ``start``, ``args``, ``kwargs``
        and ``signals_ready`` are set here and cannot be given.
        """
        for field_name in ("start", "args", "kwargs", "signals_ready"):
            if field_name in fields:
                raise InvalidChildSpec(
                    field_name, fields[field_name], "is set by ActorRef.child_spec() and cannot be given"
                )
        binding = _Binding()
        spec = ChildSpec(self.name if id is None else id, self._run, args=(binding,), signals_ready=True, **fields)
        binding.restart = spec.restart
        return spec

    async def _run(self, binding: _Binding, *, task_status: TaskStatus) -> None:
        # The start callable of the child: one instance, from on_start until it fails or
        # is cancelled. It never returns normally, because an actor has no end of its own.
        supervisor = _supervisor_of(task_status)
        task = asyncio.current_task()
        assert task is not None
        self._attach(supervisor, binding, task)
        self._state = STARTING
        self._instances += 1

        instance = None
        started = False
        try:
            instance = self._factory(*self._args, **self._kwargs)
            await instance.on_start()
            started = True
            self._state = RUNNING
            task_status.started()
            await self._serve(instance)
        except BaseException as error:
            self._last_reason = error
            current = self._task is task
            if current and not _is_running(supervisor):
                # Stopped for good: fail every waiting caller now, not after on_stop.
                self._close_for(supervisor)
            self._fail_in_flight(error)
            if current and self._state != STOPPED:
                self._state = RESTARTING
            if started:
                await self._call_on_stop(instance, error)
            raise

    async def _serve(self, instance: Any) -> None:
        receive = instance.receive
        mailbox = self._mailbox
        loop = asyncio.get_running_loop()
        handled = 0
        while True:
            if not mailbox:
                handled = 0
                waiter = loop.create_future()
                self._wakeup = waiter
                await waiter
                continue

            envelope = self._take()
            self._in_flight = envelope
            result = await receive(envelope[0])
            self._in_flight = None
            reply = envelope[1]
            if reply is not None and not reply.done():
                reply.set_result(result)

            handled += 1
            if handled >= MESSAGES_PER_TURN:
                handled = 0
                await asyncio.sleep(0)

    def _fail_in_flight(self, error: BaseException) -> None:
        envelope, self._in_flight = self._in_flight, None
        if envelope is None:
            return
        reply = envelope[1]
        if reply is None or reply.done():
            return
        if self._state == STOPPED:
            reply.set_exception(self._stopped_error())
            return
        failure = ActorFailed(self.name, error)
        failure.__cause__ = error
        reply.set_exception(failure)

    async def _call_on_stop(self, instance: Any, reason: BaseException) -> None:
        try:
            await instance.on_stop(reason)
        except Exception as error:
            # The instance is already ending with `reason`; an error in its cleanup must not
            # replace that, and must not be lost either.
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"on_stop of actor {self.name!r} raised", "exception": error}
            )

    def _attach(self, supervisor: Supervisor, binding: _Binding, task: asyncio.Task[Any]) -> None:
        previous = self._supervisor
        if previous is not supervisor:
            old_task = self._task
            if previous is not None and _is_running(previous) and old_task is not None and not old_task.done():
                raise RuntimeError(
                    f"actor {self.name!r} is already running under supervisor {previous.name!r}; "
                    "one ActorRef runs one instance at a time"
                )
            if self._watcher is not None:
                self._watcher.cancel()
                self._watcher = None
            self._supervisor = supervisor
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(supervisor), name=f"actor {self.name!r} watcher"
            )

        # A group restart runs the actor in a new task; the one_for_one restart reuses it.
        if self._task is not task:
            self._task = task
            task.add_done_callback(self._on_task_done)
        self._binding = binding
        if self._state == STOPPED:
            self._stop_cause = None

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        # The child's task ended, so no instance runs until the supervisor creates a new
        # task. Decide whether it ever will.
        if task is not self._task:
            return
        self._task = None
        supervisor = self._supervisor
        binding = self._binding
        if self._state == STOPPED or supervisor is None or binding is None:
            return
        if not _is_running(supervisor):
            self._close_for(supervisor)
        elif binding.restart is Restart.TEMPORARY:
            self._close("it is a temporary child and exited", self._last_reason)
        elif task.cancelled():
            # Terminated, or stopped for a group restart: the mailbox waits for the next
            # start. After terminate_child() that is restart_child(), or the supervisor's
            # own stop; until then ask() ends by its timeout.
            self._state = RESTARTING
        elif supervisor.strategy is Strategy.ONE_FOR_ONE:
            # A one_for_one child whose task returns was not restarted: it failed to start
            # while a caller of start_child() or restart_child() waited for it.
            self._close("it failed to start and its supervisor does not restart it", self._last_reason)
        else:
            self._state = RESTARTING  # a group restart is pending

    async def _watch(self, supervisor: Supervisor) -> None:
        # Closes the mailbox when the supervisor stops while the actor has no task to notice
        # it, for example after a failure that a group restart was still to handle.
        while True:
            try:
                await supervisor.wait()
            except asyncio.CancelledError:
                raise
            except BaseException:
                # The supervisor's failure, even KeyboardInterrupt or SystemExit, is raised to
                # its owner; here it only means "stopped".
                pass
            if supervisor is not self._supervisor:
                return
            if _is_running(supervisor):
                continue  # it was started again in the meantime
            self._close_for(supervisor)
            return

    def _close_for(self, supervisor: Supervisor) -> None:
        failure = supervisor.failure
        outcome = "failed" if failure is not None else "stopped"
        self._close(f"its supervisor {supervisor.name!r} {outcome}", failure)

    def _close(self, cause: str, reason: BaseException | None) -> None:
        if self._state == STOPPED:
            return
        self._state = STOPPED
        self._stop_cause = (cause, reason)

        dropped = 0
        for _, reply in self._mailbox:
            if reply is None:
                dropped += 1
            elif not reply.done():
                reply.set_exception(self._stopped_error())
        self._mailbox.clear()
        for _, reply, accepted in self._blocked:
            waiter = accepted if accepted is not None else reply
            if waiter is not None and not waiter.done():
                waiter.set_exception(self._stopped_error())
        self._blocked.clear()

        if dropped:
            logger.warning(
                "actor %r stopped (%s); %d messages sent with tell() were not handled",
                self.name, cause, dropped,
            )

    def _stopped_error(self) -> ActorStopped:
        cause, reason = self._stop_cause or ("it was stopped", None)
        return ActorStopped(self.name, cause, reason)
