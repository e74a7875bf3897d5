"""Exceptions raised by the supervisor package."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = [
    "SupervisorError",
    "InvalidChildSpec",
    "RestartIntensityExceeded",
    "StartTimeout",
    "ChildStartError",
    "ChildNotFound",
    "DuplicateChild",
    "ChildRunning",
    "SupervisorNotRunning",
    "TooManyChildren",
]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class SupervisorError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidChildSpec(SupervisorError, ValueError):
    """A child spec or supervisor option has an invalid value.

    ``field`` is the name of the offending field and ``value`` the rejected value.
    """

    def __init__(self, field: str, value: Any, rule: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"invalid {field}={value!r}: {rule}")


class RestartIntensityExceeded(SupervisorError):
    """A supervisor gave up restarting: its restart intensity or a child's lifetime cap was exceeded.

    The supervisor has stopped all its children. ``offender`` is the id of the child whose
    failure broke the limit and ``reason`` that child's last exit reason (``None`` for a normal
    return), which is also the ``__cause__``, so tracebacks show it. For the intensity,
    ``restarts`` is the number of restarts counted in the window of ``max_seconds``. For a
    child's ``max_lifetime_restarts``, ``max_seconds`` is ``None`` and ``restarts`` is the
    number of restarts that child would have had.
    """

    def __init__(
        self,
        supervisor: str,
        offender: Hashable,
        restarts: int,
        max_restarts: int,
        max_seconds: float | None,
        reason: BaseException | None,
    ) -> None:
        self.supervisor = supervisor
        self.offender = offender
        self.restarts = restarts
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.reason = reason
        exit = "returned" if reason is None else f"exited with {reason!r}"
        if max_seconds is None:
            message = (
                f"supervisor {supervisor!r} gave up on child {offender!r}: it {exit} after "
                f"{_count(max_restarts, 'restart')}, its max_lifetime_restarts"
            )
        else:
            message = (
                f"supervisor {supervisor!r} exceeded its restart intensity: "
                f"{_count(restarts, 'restart')} within {max_seconds} s "
                f"(max_restarts={max_restarts}); offender {offender!r} {exit}"
            )
        super().__init__(message)
        if reason is not None:
            self.__cause__ = reason

    @property
    def offenders(self) -> list[tuple[str, Hashable]]:
        """The chain of (supervisor, offender) pairs from this supervisor down to the leaf."""
        chain = [(self.supervisor, self.offender)]
        inner = self.reason
        while isinstance(inner, RestartIntensityExceeded):
            chain.append((inner.supervisor, inner.offender))
            inner = inner.reason
        return chain


class StartTimeout(SupervisorError):
    """A child that signals readiness did not call ``task_status.started()`` in time."""

    def __init__(self, supervisor: str, child_id: Hashable, timeout: float) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self.timeout = timeout
        super().__init__(
            f"child {child_id!r} of supervisor {supervisor!r} did not signal readiness "
            f"within its start_timeout of {timeout} s"
        )


class ChildStartError(SupervisorError):
    """A child failed before it became ready, while a caller waited for its start."""

    def __init__(self, supervisor: str, child_id: Hashable, reason: BaseException | None) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self.reason = reason
        outcome = "returned before signalling readiness" if reason is None else f"failed: {reason!r}"
        super().__init__(f"child {child_id!r} of supervisor {supervisor!r} {outcome}")
        if reason is not None:
            self.__cause__ = reason


class ChildNotFound(SupervisorError, LookupError):
    """No child with the requested id exists in the supervisor."""

    def __init__(self, supervisor: str, child_id: Hashable) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(f"supervisor {supervisor!r} has no child with id {child_id!r}")


class DuplicateChild(SupervisorError, ValueError):
    """A child with this id already exists in the supervisor."""

    def __init__(self, supervisor: str, child_id: Hashable, running: bool) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self.running = running
        state = "running" if running else "present but not running"
        super().__init__(
            f"supervisor {supervisor!r} already has a child with id {child_id!r} ({state}); "
            "child ids must be unique within a supervisor"
        )


class ChildRunning(SupervisorError):
    """The operation needs a stopped child, but the child is running."""

    def __init__(self, supervisor: str, child_id: Hashable, operation: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(
            f"cannot {operation} child {child_id!r} of supervisor {supervisor!r} because it "
            "is running; call terminate_child() first"
        )


class SupervisorNotRunning(SupervisorError):
    """The operation needs a running supervisor.

    ``child_id`` is the child the operation was for, or ``None`` if it was not about one child.
    """

    def __init__(self, supervisor: str, state: str, operation: str, child_id: Hashable | None = None) -> None:
        self.supervisor = supervisor
        self.state = state
        self.child_id = child_id
        target = "" if child_id is None else f" child {child_id!r}"
        super().__init__(
            f"cannot {operation}{target}: supervisor {supervisor!r} is {state}, not running"
        )


class TooManyChildren(SupervisorError):
    """A dynamic supervisor already has ``max_children`` children."""

    def __init__(self, supervisor: str, max_children: int) -> None:
        self.supervisor = supervisor
        self.max_children = max_children
        super().__init__(
            f"cannot start a child: dynamic supervisor {supervisor!r} already has "
            f"max_children={max_children} children; terminate one first"
        )
