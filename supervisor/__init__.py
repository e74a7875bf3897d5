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
    once every significant child has exited (``all_significant``). A significant child that is
    restarted, or stopped by ``terminate_child()``, does not count, as in OTP. A supervisor that
    shuts itself down this way exits normally, so a transient spec for it is not restarted.
``max_lifetime_restarts``
    ``None`` (default) or a cap on the automatic restarts of this child while its supervisor
    runs. The exit that would exceed it is not restarted; see the restart policy below.

Supervisor options: ``strategy`` (``one_for_one`` default, ``one_for_all``, ``rest_for_one``);
``max_restarts`` and ``max_seconds`` (default 3 in 5 s, as in Elixir): when more than
``max_restarts`` restarts happen within ``max_seconds`` (a restart exactly ``max_seconds`` ago
still counts, as in OTP), the supervisor stops all children in reverse order and fails with
``RestartIntensityExceeded``, which ``wait()``, ``run()`` and ``async with`` raise, with the
offender's last exit reason as its ``__cause__``; a parent supervisor sees that as its child's
abnormal exit. ``clock`` (injectable time for intensity,
backoff and timeouts; see ``supervisor.testing.VirtualClock``), ``on_event`` (a callback for
every ``Event``) and ``name``.

Start order is readiness order: each child starts only once the previous one is ready, and a
group restart (``one_for_all``, ``rest_for_one``) stops the affected children in reverse order,
then starts them in order. ``parallel_group_restart=True`` gives up that order for speed: a
group restart cancels all the affected children at once (in reverse order) and waits for
each until its own shutdown time, then starts them all at once and collects their readiness.
Use it only when no child depends on a sibling being up while it starts or stops.

A one_for_one restart happens inside the child's own task, with no extra pass through the
event loop. Two consequences: context variables that a generation set are still set for the
next one (a group restart starts fresh tasks), and a child that fails at once on every start,
with no backoff, keeps the event loop busy until the intensity limit stops it. NOTE: with a
``max_seconds`` too short for the limit ever to trip, it never stops, so give such a child a
``Backoff``.

Restart policy. When a child exits and its restart type calls for a restart, the supervisor
checks, in this order: (1) the child's ``max_lifetime_restarts``; (2) in a
``DynamicSupervisor`` with ``child_max_restarts``, the child's own window; (3) the
supervisor's ``max_restarts`` in ``max_seconds``. Then (4) the child's ``Backoff`` gives the
delay, and (5) the child starts again after it. The rules between them:

- A child refused at (1) or (2) is not restarted, so its exit is not counted at (3). At (1)
  a plain supervisor fails with ``RestartIntensityExceeded`` (``max_seconds`` is ``None``),
  as for intensity; a dynamic supervisor quarantines the child instead. At (2) the child is
  quarantined: status ``quarantined``, a ``ChildQuarantined`` event and an ERROR log, and
  its siblings keep running.
- Windows count restart decisions, made when the child exits, not the starts after the
  delay. A backoff delay therefore spreads the decisions of a crash loop: a loop whose
  delays exceed ``max_seconds / max_restarts`` never trips the window. The lifetime cap is
  the bound for that case.
- ``reset_after`` only resets the backoff attempt counter; it clears neither window (time
  does) nor the lifetime count. Jitter changes the delay only, never what is counted.
- A group restart counts once, for the child that failed, and waits that child's backoff
  delay before it starts the group again.
- ``restart_child()`` and a sibling's group restart are not automatic restarts of this child:
  they count in ``ChildInfo.restarts`` but in no window and not in the lifetime count.
  ``restart_child()`` on a quarantined child empties its own window.
- Stopping the supervisor or ``terminate_child()`` during a backoff delay cancels the
  pending restart; the decision stays counted.

``ChildRestarting`` carries ``intensity`` (restarts in the supervisor's window) and
``child_intensity`` (in the child's own window, or ``None``); ``which_children()`` shows each
limit as a ``RestartWindow`` (``intensity``, ``budget`` and ``lifetime``).

Exceptions in a child, by ``BaseException`` family:

- ``Exception`` subclasses, and a ``CancelledError`` that the supervisor did not request,
  are abnormal exits, handled by the restart policy. A ``CancelledError`` the supervisor
  requested ends the child quietly, and so does one that arrives while the supervisor is
  stopping or while its own task is being cancelled: if ``asyncio.run()`` ends with a
  supervisor still running, its children are reported stopped (``ChildStopped``, cause
  ``"shutdown"``), not crashed.
- ``KeyboardInterrupt`` and ``SystemExit`` are never swallowed or restarted: the supervisor
  records the exit (event and ERROR log), stops its other children and fails with that
  exception, and the child's task re-raises it, which asyncio passes out of the event loop
  (``asyncio.run()`` raises it and cancels the remaining tasks). Because the loop stops at
  once, the siblings are then cancelled by ``asyncio.run()`` in no defined order rather than
  in reverse start order; the supervisor counts those cancellations as stops, not crashes.
- Any other ``BaseException`` is recorded and never restarted either: the supervisor stops
  its other children and ``wait()``, ``run()``, ``start()`` and ``async with`` raise it, so
  it travels up a tree to the owner of the root. A caller of ``start_child()`` waiting for
  that child gets ``ChildStartError`` with it as the reason.
- An error with nowhere to propagate is never dropped. A child that raises instead of
  accepting cancellation has the error attached to its ``ChildStopped`` event and logged; an
  abandoned child that raises later, and an ``on_event`` callback that raises, go to the
  loop's exception handler.

Runtime child management, with OTP's rules: ``start_child(spec)`` adds and starts a child
(``DuplicateChild`` if the id exists, running or not); ``terminate_child(id)`` stops it, and
a permanent child stays down until ``restart_child(id)``, although a one_for_all or
rest_for_one restart of its siblings starts it again, as in OTP; ``delete_child(id)`` removes
a child that is not running (``ChildRunning`` otherwise). An unknown id raises
``ChildNotFound``, and any of them on a supervisor that is not running raises
``SupervisorNotRunning``; each error names the supervisor and the child. ``start_child()``
and ``restart_child()`` called while a one_for_all or rest_for_one restart runs or is queued
wait until it is done, so a child never starts while those before it are down. The
exception is a call made, while the restart starts children, on behalf of a child that a
group restart started: the restart may be waiting for that child, so the call goes ahead.

Nested trees: ``supervisor.child_spec()`` runs a supervisor as a child (type ``supervisor``,
``shutdown`` ``INFINITY``). A breach fails that supervisor only; its parent sees one abnormal
exit and applies its own policy, so escalation climbs one level per breach, and
``RestartIntensityExceeded.offenders`` lists the chain from the top down to the leaf.

``DynamicSupervisor(template, ...)`` is OTP's ``simple_one_for_one``: it starts with no
children, and ``start_child(*args, **kwargs)`` starts one from ``template`` with the
arguments appended and returns its integer id. ``max_children`` (default ``None``) bounds
the children, quarantined ones included (``TooManyChildren``). ``child_max_restarts``
(default ``None``) and ``child_max_seconds`` (default 5) give each child its own window. A
child that exits without restart, or is terminated, is removed. At shutdown all children are
cancelled at once and each is waited for up to its own shutdown time.

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

``supervisor.testing`` holds the test kit: ``VirtualClock``, ``settle()``, ``FaultInjector``
(a child fails on its n-th start or after n seconds of clock time), ``wait_for_generation()``
(returns at once if the child has already been started that often) and ``FailureTrap`` (a
failure the test did not expect fails it).
"""

from ._actor import Actor, ActorError, ActorFailed, ActorRef, ActorStopped, AskTimeout, MailboxFull
from ._clock import Clock, MonotonicClock
from ._dynamic import DynamicSupervisor
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
    TooManyChildren,
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
from ._process import KILL_TIMEOUT, ProcessChild, ProcessExited
from ._spec import BRUTAL_KILL, INFINITY, Backoff, ChildSpec, ChildType, Restart, Strategy
from ._supervisor import AutoShutdown, ChildInfo, ChildStatus, RestartWindow, Supervisor, TaskStatus

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
    "ChildQuarantined",
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
    "DynamicSupervisor",
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
    "RestartWindow",
    "StartTimeout",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorNotRunning",
    "SupervisorStopped",
    "TaskStatus",
    "TooManyChildren",
]

__version__ = "0.1.0"

import logging as _logging

_logging.getLogger(__name__).addHandler(_logging.NullHandler())
del _logging
