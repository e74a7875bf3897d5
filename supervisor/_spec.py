"""Child specs, restart types, strategies and backoff, validated when they are built."""

from __future__ import annotations

import enum
import functools
import inspect
import math
import random
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._errors import InvalidChildSpec

__all__ = [
    "Restart",
    "Strategy",
    "ChildType",
    "BRUTAL_KILL",
    "INFINITY",
    "Backoff",
    "ChildSpec",
]


class Restart(str, enum.Enum):
    """When a child that exited is restarted."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit
    TEMPORARY = "temporary"  # never; the child is removed once it exits

    def __str__(self) -> str:
        return self.value


class Strategy(str, enum.Enum):
    """Which children a supervisor restarts when one of them must be restarted."""

    ONE_FOR_ONE = "one_for_one"  # only the child that exited
    ONE_FOR_ALL = "one_for_all"  # every child
    REST_FOR_ONE = "rest_for_one"  # that child and every child started after it

    def __str__(self) -> str:
        return self.value


class ChildType(str, enum.Enum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"

    def __str__(self) -> str:
        return self.value


class _Shutdown:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


BRUTAL_KILL = _Shutdown("BRUTAL_KILL")
"""Shutdown value: cancel the child and give it a single event-loop pass to unwind."""

INFINITY = _Shutdown("INFINITY")
"""Shutdown value: cancel the child and wait for it without a time limit."""

_SHUTDOWN_NAMES = {"brutal_kill": BRUTAL_KILL, "infinity": INFINITY}

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})

DEFAULT_WORKER_SHUTDOWN = 5.0
DEFAULT_START_TIMEOUT = 5.0


def _to_enum(enum_type: type[enum.Enum], field_name: str, value: Any) -> Any:
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum_type)
        raise InvalidChildSpec(field_name, value, f"expected one of {allowed}") from None


def _check_start(start: Any) -> None:
    """Reject a start callable that is clearly synchronous, which would fail only once started.

    A plain function or a bound method must be an async function, seen through
    ``functools.partial`` and through the ``__wrapped__`` that ``functools.wraps`` sets. Other
    callables, such as an object with an async ``__call__`` or a class, cannot be judged before
    they are called, so they are accepted.
    """
    if not callable(start):
        raise InvalidChildSpec("start", start, "expected an async callable")
    function = start
    seen: set[int] = set()  # ends a cycle of __wrapped__ attributes
    while id(function) not in seen:
        seen.add(id(function))
        if isinstance(function, functools.partial):
            function = function.func
        elif inspect.ismethod(function):
            function = function.__func__
        elif not inspect.isfunction(function) or function.__name__ == "<lambda>":
            # A lambda cannot be async, and ``lambda: worker(1)`` is the usual way to return
            # a coroutine, so it is judged by what it returns, when the child starts.
            return
        elif inspect.iscoroutinefunction(function):
            return
        elif function.__code__.co_flags & inspect.CO_ITERABLE_COROUTINE:
            return  # a generator function decorated with types.coroutine
        elif hasattr(function, "__wrapped__"):
            function = function.__wrapped__
        else:
            break
    if inspect.isasyncgenfunction(function):
        raise InvalidChildSpec(
            "start", start, "expected an async function (async def), got an async generator function"
        )
    raise InvalidChildSpec(
        "start",
        start,
        "expected an async function (async def), got a synchronous function; to pass arguments "
        "to an async function, use args=, kwargs= or functools.partial",
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_seconds(field_name: str, value: Any, *, allow_zero: bool) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise InvalidChildSpec(field_name, value, "expected a finite number of seconds")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise InvalidChildSpec(field_name, value, f"expected {bound} seconds")
    return float(value)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between restarts of one child, with jitter.

    The n-th consecutive restart of a child waits ``initial * multiplier ** (n - 1)`` seconds,
    capped at ``maximum``, then scaled by a random factor in ``[1 - jitter, 1 + jitter]`` and
    capped at ``maximum`` again. A child that stayed ready for at least ``reset_after`` seconds
    before it exited starts again from ``initial``. ``seed`` makes the jitter repeatable.
    """

    initial: float = 0.1
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1
    reset_after: float = 60.0
    seed: int | None = None
    _random: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_seconds("backoff.initial", self.initial, allow_zero=False)
        _check_seconds("backoff.maximum", self.maximum, allow_zero=False)
        if self.maximum < self.initial:
            raise InvalidChildSpec(
                "backoff.maximum", self.maximum, f"must not be less than initial={self.initial!r}"
            )
        if not _is_number(self.multiplier) or not 1 <= self.multiplier < math.inf:
            raise InvalidChildSpec("backoff.multiplier", self.multiplier, "expected a finite number >= 1")
        if not _is_number(self.jitter) or not 0 <= self.jitter <= 1:
            raise InvalidChildSpec("backoff.jitter", self.jitter, "expected a number from 0 to 1")
        _check_seconds("backoff.reset_after", self.reset_after, allow_zero=True)
        object.__setattr__(self, "_random", random.Random(self.seed))

    def delay(self, attempt: int) -> float:
        """Return the delay in seconds before consecutive restart number ``attempt`` (from 1)."""
        exponent = attempt - 1
        if self.multiplier > 1:
            # Past the exponent that reaches the cap it no longer matters; bounding it
            # avoids float overflow for long crash loops.
            exponent = min(exponent, math.ceil(math.log(self.maximum / self.initial, self.multiplier)) + 1)
        base = min(self.maximum, self.initial * self.multiplier**exponent)
        if self.jitter:
            base *= 1.0 + self._random.uniform(-self.jitter, self.jitter)
        return min(self.maximum, base)


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    ``start(*args, **kwargs)`` must return an awaitable; the child runs as long as it does.
    A plain function or bound method (not a lambda) that is not an async function is rejected
    here.
    With ``signals_ready=True`` the supervisor also passes ``task_status=`` and the child is
    ready once it calls ``task_status.started()``, which it must do within ``start_timeout``
    seconds (``None``: no limit). Otherwise the child is ready as soon as its task exists.
    ``shutdown`` is the number of seconds to wait after cancelling the child, ``BRUTAL_KILL``
    or ``INFINITY``; it defaults to 5 s for workers and ``INFINITY`` for supervisors.
    ``max_lifetime_restarts`` caps the automatic restarts of this child over the life of its
    supervisor (``None``: no cap); the package documentation describes what happens at the cap.
    """

    id: Hashable
    start: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    shutdown: float | _Shutdown | None = None
    type: ChildType = ChildType.WORKER
    signals_ready: bool = False
    start_timeout: float | None = DEFAULT_START_TIMEOUT
    backoff: Backoff | None = None
    significant: bool = False
    max_lifetime_restarts: int | None = None

    def __post_init__(self) -> None:
        set_field = object.__setattr__

        if self.id is None:
            raise InvalidChildSpec("id", self.id, "a child needs an id other than None")
        try:
            hash(self.id)
        except TypeError:
            raise InvalidChildSpec("id", self.id, "expected a hashable value") from None
        _check_start(self.start)
        if not isinstance(self.args, (tuple, list)):
            raise InvalidChildSpec("args", self.args, "expected a tuple of positional arguments")
        set_field(self, "args", tuple(self.args))
        if self.kwargs is None:
            set_field(self, "kwargs", {})
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise InvalidChildSpec("kwargs", self.kwargs, "expected a mapping of str to values")
        # Specs without keyword arguments share one empty mapping: a supervisor of 10,000
        # children would otherwise hold 10,000 empty dicts.
        set_field(self, "kwargs", MappingProxyType(dict(self.kwargs)) if self.kwargs else _NO_KWARGS)

        set_field(self, "restart", _to_enum(Restart, "restart", self.restart))
        set_field(self, "type", _to_enum(ChildType, "type", self.type))
        set_field(self, "shutdown", self._resolve_shutdown(self.shutdown))

        for name in ("signals_ready", "significant"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidChildSpec(name, getattr(self, name), "expected True or False")
        if self.signals_ready and "task_status" in self.kwargs:
            raise InvalidChildSpec(
                "kwargs", dict(self.kwargs), "'task_status' is passed by the supervisor when signals_ready=True"
            )
        if self.start_timeout is not None:
            set_field(self, "start_timeout", _check_seconds("start_timeout", self.start_timeout, allow_zero=False))
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise InvalidChildSpec("backoff", self.backoff, "expected a Backoff instance or None")
        cap = self.max_lifetime_restarts
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
            raise InvalidChildSpec("max_lifetime_restarts", cap, "expected an integer >= 0 or None")
        if self.significant and self.restart is Restart.PERMANENT:
            raise InvalidChildSpec(
                "significant", self.significant, "a permanent child cannot be significant; use transient or temporary"
            )

    def _resolve_shutdown(self, value: Any) -> float | _Shutdown:
        if value is None:
            return INFINITY if self.type is ChildType.SUPERVISOR else DEFAULT_WORKER_SHUTDOWN
        if isinstance(value, _Shutdown):
            return value
        if isinstance(value, str):
            if value.lower() in _SHUTDOWN_NAMES:
                return _SHUTDOWN_NAMES[value.lower()]
            raise InvalidChildSpec("shutdown", value, "expected seconds, 'brutal_kill' or 'infinity'")
        if _is_number(value) and value == math.inf:
            return INFINITY
        return _check_seconds("shutdown", value, allow_zero=True)
