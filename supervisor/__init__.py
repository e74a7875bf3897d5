"""Erlang/OTP-style supervision for asyncio.

A ``Supervisor`` runs a list of children, each described by a ``ChildSpec``, restarts the ones
that exit according to its strategy and their restart types, and stops them in reverse start
order. Vocabulary and semantics follow Erlang/OTP's ``supervisor`` module.

Child spec fields (``ChildSpec``):

``id``
    Any hashable value other than ``None``, unique within its supervisor.
``start``
    An async callable; the child runs as long as ``await start(*args, **kwargs)`` does. A
    normal return is a normal exit; an exception, or a cancellation that the supervisor did
    not request, is an abnormal exit.
``args``, ``kwargs``
    Passed to ``start`` at every start. Default: none.
``restart``
    ``permanent`` (default): always restarted, even after a normal return. ``transient``:
    restarted only after an abnormal exit. ``temporary``: never restarted, and removed from the
    supervisor when it exits or is terminated, even when a sibling's restart stopped it.
``shutdown``
    Seconds to wait after cancelling the child before giving up on it (default 5 for workers),
    ``BRUTAL_KILL`` (cancel and allow one event-loop pass) or ``INFINITY`` (wait without limit;
    the default for supervisors). An asyncio task cannot be killed: a child that ignores
    cancellation past its shutdown time is abandoned still running, logged at ERROR and
    reported as a ``ChildShutdownTimeout`` event.
``type``
    ``worker`` (default) or ``supervisor``.
``signals_ready``
    If true, ``start`` also receives ``task_status=`` and the child is ready only once it calls
    ``task_status.started()``. If false (default), the child is ready as soon as its task exists.
``start_timeout``
    Seconds a signalling child may take to call ``started()`` (default 5, ``None`` for no
    limit). Missing it is an abnormal exit with ``StartTimeout`` as the reason.
``backoff``
    ``None`` (default): restart at once. A ``Backoff``: wait ``initial * multiplier ** (n-1)``
    seconds before the n-th consecutive restart, capped at ``maximum``, with a random factor
    within ``1 ± jitter``; a child that stayed ready for ``reset_after`` seconds starts again
    from ``initial``.
``significant``
    Only for transient and temporary children of a supervisor whose ``auto_shutdown`` is not
    ``never``: its exit without restart stops the supervisor (``any_significant``), or does so
    once every significant child has exited (``all_significant``).

Supervisor options: ``strategy`` (``one_for_one`` default, ``one_for_all``, ``rest_for_one``);
``max_restarts`` and ``max_seconds`` (default 3 in 5 s, as in Elixir): when more than
``max_restarts`` restarts happen within ``max_seconds`` (a restart exactly ``max_seconds`` ago
still counts, as in OTP), the supervisor stops all children in reverse order and fails with
``RestartIntensityExceeded``, which ``wait()``, ``run()`` and ``async with`` raise; a parent
supervisor sees that as its child's abnormal exit. ``clock`` (injectable time for intensity,
backoff and timeouts; see ``supervisor.testing.VirtualClock``), ``on_event`` (a callback for
every ``Event``) and ``name``.

Start order is readiness order: each child starts only once the previous one is ready, and a
group restart (``one_for_all``, ``rest_for_one``) stops the affected children in reverse order,
then starts them in order. A one_for_one restart happens inside the child's own task, with no
extra pass through the event loop.

Exceptions in a child: ``Exception`` subclasses and unrequested ``CancelledError`` are abnormal
exits. ``KeyboardInterrupt``, ``SystemExit`` and other ``BaseException`` subclasses are
recorded (event and log) and re-raised, never swallowed or restarted.

Actors (``ActorRef``, ``Actor``): a worker with a mailbox and a reference that stays valid
across restarts. ``ActorRef(factory, name=...)`` owns the mailbox (at most ``mailbox_size``
messages, 1000 by default) and ``ref.child_spec()`` runs the actor under a supervisor; each
start creates a new instance and awaits its ``on_start``. ``tell()`` raises ``MailboxFull``
when the mailbox is full, ``send()`` and ``ask()`` wait for room, and ``ask()`` raises
``AskTimeout`` after its timeout (5 s by default). Messages wait in the mailbox while the
actor restarts; the message being handled when the actor failed is not retried, and its
``ask()`` raises ``ActorFailed``. Once the actor is stopped for good (a temporary child
exited, or its supervisor stopped or failed), every pending and later ``ask()`` raises
``ActorStopped`` at once.

OS processes (``ProcessChild``): ``ProcessChild(command, ready=...).child_spec(id)`` runs a
command as a child process, ready when it starts or when a line of its stdout matches
``ready``. Stopping it sends SIGTERM, waits the spec's shutdown time, then sends SIGKILL
(``BRUTAL_KILL``: SIGKILL at once), and waits until the process is reaped. An exit that
nobody requested is seen by push from the event loop and handled by the restart policy; a
non-zero status or a signal is reported as ``ProcessExited``.

Logging goes to the ``supervisor`` logger: ERROR once per child failure (at most 10 per
supervisor per second, then a count of the rest), INFO per start and per stop.
"""

from ._actor import Actor, ActorError, ActorFailed, ActorRef, ActorStopped, AskTimeout, MailboxFull
from ._clock import Clock, MonotonicClock
from ._errors import (
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
from ._process import KILL_TIMEOUT, ProcessChild, ProcessExited
from ._spec import BRUTAL_KILL, INFINITY, Backoff, ChildSpec, ChildType, Restart, Strategy
from ._supervisor import AutoShutdown, ChildInfo, ChildStatus, Supervisor, TaskStatus

__all__ = [
    "Actor",
    "ActorError",
    "ActorFailed",
    "ActorRef",
    "ActorStopped",
    "AskTimeout",
    "AutoShutdown",
    "Backoff",
    "BRUTAL_KILL",
    "ChildExited",
    "ChildInfo",
    "ChildNotFound",
    "ChildReady",
    "ChildRestarting",
    "ChildRunning",
    "ChildShutdownTimeout",
    "ChildSpec",
    "ChildStarted",
    "ChildStartError",
    "ChildStatus",
    "ChildStopped",
    "ChildType",
    "Clock",
    "DuplicateChild",
    "Event",
    "EventStream",
    "INFINITY",
    "IntensityExceeded",
    "InvalidChildSpec",
    "KILL_TIMEOUT",
    "MailboxFull",
    "MonotonicClock",
    "ProcessChild",
    "ProcessExited",
    "Restart",
    "RestartIntensityExceeded",
    "StartTimeout",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorNotRunning",
    "SupervisorStopped",
    "TaskStatus",
]

__version__ = "0.1.0"

import logging as _logging

_logging.getLogger(__name__).addHandler(_logging.NullHandler())
del _logging
