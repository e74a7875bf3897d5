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


def _to_finite_float(field_name: str, value: Any, expected: str) -> float:
    """Convert an int or float (not a bool) to a finite float, or raise InvalidChildSpec.

    ``expected`` is the rule the error message states. An int beyond the float range (about
    1.8e308) is rejected here, where ``float()`` and ``math.isfinite()`` would raise
    ``OverflowError``.
    """
    if not _is_number(value):
        raise InvalidChildSpec(field_name, value, expected)
    try:
        number = float(value)
    except OverflowError:
        raise InvalidChildSpec(field_name, value, f"{expected}, but this integer is too large for a float") from None
    if not math.isfinite(number):
        raise InvalidChildSpec(field_name, value, expected)
    return number


def _check_seconds(field_name: str, value: Any, *, allow_zero: bool) -> float:
    seconds = _to_finite_float(field_name, value, "expected a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise InvalidChildSpec(field_name, value, f"expected {bound} seconds")
    return seconds


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between restarts of one child, with jitter.

    The n-th consecutive restart of a child waits ``initial * multiplier ** (n - 1)`` seconds,
    capped at ``maximum``, then scaled by a random factor in ``[1 - jitter, 1 + jitter]`` and
    capped at ``maximum`` again. A child that stayed ready for at least ``reset_after`` seconds
    before it exited starts again from ``initial``. The numbers are stored as floats.

    ``seed`` (an int, or ``None`` for unrepeatable jitter) makes the jitter repeatable:
    ``new_random()`` gives each child a ``random.Random(seed)`` of its own, so every child and
    every supervisor run that uses this Backoff draws the same sequence of jitter factors.
    Children that share a seeded Backoff therefore also restart in step. Give each child its
    own seed to spread their restarts.
    """

    initial: float = 0.1
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1
    reset_after: float = 60.0
    seed: int | None = None
    _random: random.Random = field(init=False, repr=False, compare=False)
    # The exponent from which ``initial * multiplier ** exponent`` reaches ``maximum``.
    _exponent_at_maximum: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field = object.__setattr__

        initial = _check_seconds("backoff.initial", self.initial, allow_zero=False)
        maximum = _check_seconds("backoff.maximum", self.maximum, allow_zero=False)
        if maximum < initial:
            raise InvalidChildSpec(
                "backoff.maximum", self.maximum, f"must not be less than initial={self.initial!r}"
            )
        multiplier = _to_finite_float("backoff.multiplier", self.multiplier, "expected a finite number >= 1")
        if multiplier < 1:
            raise InvalidChildSpec("backoff.multiplier", self.multiplier, "expected a finite number >= 1")
        jitter = _to_finite_float("backoff.jitter", self.jitter, "expected a number from 0 to 1")
        if not 0 <= jitter <= 1:
            raise InvalidChildSpec("backoff.jitter", self.jitter, "expected a number from 0 to 1")
        reset_after = _check_seconds("backoff.reset_after", self.reset_after, allow_zero=True)
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise InvalidChildSpec("backoff.seed", self.seed, "expected an integer or None")

        set_field(self, "initial", initial)
        set_field(self, "maximum", maximum)
        set_field(self, "multiplier", multiplier)
        set_field(self, "jitter", jitter)
        set_field(self, "reset_after", reset_after)
        set_field(self, "_random", random.Random(self.seed))
        # Logs instead of maximum / initial, which overflows to inf for initial=1e-300 and
        # maximum=1e10. Both logs are finite and log(multiplier) is at least about 2.2e-16,
        # so the quotient is finite too (at most about 6.6e18).
        if multiplier > 1:
            exponent_at_maximum = (math.log(maximum) - math.log(initial)) / math.log(multiplier)
        else:
            exponent_at_maximum = math.inf
        set_field(self, "_exponent_at_maximum", exponent_at_maximum)

    def new_random(self) -> random.Random:
        """Create the jitter source for one child, to pass to every ``delay()`` call for it.

        With a seed and jitter this is a new ``random.Random(seed)``, so each child repeats
        the same jitter sequence. Otherwise it returns this Backoff's own generator, so no
        child allocates one when nothing needs to repeat.
        """
        if self.seed is not None and self.jitter:
            return random.Random(self.seed)
        return self._random

    def delay(self, attempt: int, jitter_source: random.Random | None = None) -> float:
        """Return the delay in seconds before consecutive restart number ``attempt`` (from 1).

        The jitter factor is drawn from ``jitter_source`` (see ``new_random()``), or by default
        from a generator that this Backoff creates once and shares between all its callers.
        Raises ``ValueError`` if ``attempt`` is less than 1.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be 1 or more, got {attempt!r}")
        base = self._exponential_delay(attempt - 1)
        if self.jitter:
            source = self._random if jitter_source is None else jitter_source
            # Near the float limit a factor above 1 overflows the product to inf, and min()
            # then returns maximum.
            base *= 1.0 + source.uniform(-self.jitter, self.jitter)
        return min(self.maximum, base)

    def _exponential_delay(self, exponent: int) -> float:
        # Comparing first keeps a long crash loop (a huge exponent) away from the power.
        if exponent == 0 or self.multiplier == 1:
            return self.initial
        if exponent >= self._exponent_at_maximum:
            return self.maximum
        try:
            return min(self.maximum, self.initial * self.multiplier**exponent)
        except OverflowError:
            # multiplier ** exponent alone can exceed the float range while the product with
            # a tiny initial stays below maximum (initial=1e-300, multiplier=10, exponent=309).
            # Here exponent < _exponent_at_maximum, so this sum is below log(maximum).
            logarithm = math.log(self.initial) + exponent * math.log(self.multiplier)
            return min(self.maximum, math.exp(logarithm))


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
