"""Validation of child specs and supervisor options at construction time, and of start at run time."""

from __future__ import annotations

import functools
import math
import types

import pytest

from supervisor import (
    BRUTAL_KILL,
    INFINITY,
    Backoff,
    ChildExited,
    ChildSpec,
    ChildStartError,
    ChildType,
    InvalidChildSpec,
    Restart,
    Strategy,
    Supervisor,
)
from supervisor.testing import settle

from conftest import EventLog


async def idle_child() -> None:
    pass


def make_spec(**fields):
    child_id = fields.pop("id", "worker")
    start = fields.pop("start", idle_child)
    return ChildSpec(child_id, start, **fields)


def assert_error_names(error: BaseException, field: str, value: object) -> None:
    message = str(error)
    assert field in message, f"error does not name the field {field!r}: {message}"
    assert repr(value) in message, f"error does not show {value!r}: {message}"


BAD_SPEC_FIELDS = [
    ("id", ["worker"]),
    ("id", None),
    ("start", 42),
    ("start", "idle_child"),
    ("args", 5),
    ("kwargs", ["x"]),
    ("restart", "forever"),
    ("restart", 3),
    ("shutdown", -1.0),
    ("shutdown", "soon"),
    ("shutdown", math.nan),
    ("type", "thread"),
    ("signals_ready", "yes"),
    pytest.param("shutdown", 10**400, id="shutdown-int_beyond_float"),
    ("start_timeout", -1.0),
    ("start_timeout", math.nan),
    pytest.param("start_timeout", 10**400, id="start_timeout-int_beyond_float"),
    ("backoff", 0.5),
    ("significant", "yes"),
]


@pytest.mark.parametrize(("field", "value"), BAD_SPEC_FIELDS)
def test_bad_spec_field_rejected(field, value):
    """A child spec with an invalid field raises InvalidChildSpec naming the field and value."""
    with pytest.raises(InvalidChildSpec) as info:
        make_spec(**{field: value})
    assert_error_names(info.value, field, value)


def test_bad_spec_error_carries_field_and_value():
    """InvalidChildSpec exposes the rejected field and value as attributes."""
    with pytest.raises(InvalidChildSpec) as info:
        make_spec(start_timeout=-2.5)
    assert info.value.field == "start_timeout"
    assert info.value.value == -2.5


def test_significant_permanent_child_rejected():
    """A permanent child cannot be significant, because it never exits for good."""
    with pytest.raises(InvalidChildSpec) as info:
        make_spec(significant=True)
    assert_error_names(info.value, "significant", True)


def test_task_status_kwarg_rejected_when_signalling():
    """A spec that signals readiness cannot pass its own task_status keyword."""
    with pytest.raises(InvalidChildSpec) as info:
        make_spec(signals_ready=True, kwargs={"task_status": None})
    assert_error_names(info.value, "kwargs", "task_status")


BAD_BACKOFF_FIELDS = [
    ("initial", 0),
    ("initial", -1.0),
    ("initial", math.inf),
    ("maximum", -1.0),
    ("multiplier", 0.5),
    ("multiplier", "2"),
    ("jitter", 1.5),
    ("jitter", -0.1),
    ("reset_after", -1.0),
    pytest.param("initial", 10**400, id="initial-int_beyond_float"),
    pytest.param("maximum", 10**400, id="maximum-int_beyond_float"),
    pytest.param("multiplier", 10**400, id="multiplier-int_beyond_float"),
    pytest.param("jitter", 10**400, id="jitter-int_beyond_float"),
    pytest.param("reset_after", 10**400, id="reset_after-int_beyond_float"),
    ("seed", "x"),
    ("seed", True),
    ("seed", 1.5),
]


@pytest.mark.parametrize(("field", "value"), BAD_BACKOFF_FIELDS)
def test_bad_backoff_field_rejected(field, value):
    """A Backoff with an invalid field raises InvalidChildSpec naming the field and value."""
    with pytest.raises(InvalidChildSpec) as info:
        Backoff(**{field: value})
    assert_error_names(info.value, f"backoff.{field}", value)


def test_backoff_maximum_below_initial_rejected():
    """A Backoff whose maximum is less than its initial delay raises, showing both."""
    with pytest.raises(InvalidChildSpec) as info:
        Backoff(initial=2.0, maximum=1.0)
    assert_error_names(info.value, "backoff.maximum", 1.0)
    assert "2.0" in str(info.value)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: make_spec(shutdown=10**400), "shutdown"),
        (lambda: make_spec(start_timeout=10**400), "start_timeout"),
        (lambda: Backoff(initial=10**400), "backoff.initial"),
        (lambda: Backoff(multiplier=10**400), "backoff.multiplier"),
    ],
    ids=["shutdown", "start_timeout", "backoff.initial", "backoff.multiplier"],
)
def test_int_beyond_float_range_rejected(build, field):
    """An int too large for a float raises InvalidChildSpec saying so, not OverflowError."""
    with pytest.raises(InvalidChildSpec) as info:
        build()
    assert info.value.field == field
    assert info.value.value == 10**400
    assert "too large for a float" in str(info.value)


def test_int_within_float_range_accepted():
    """A large int that fits in a float is a valid number of seconds, stored as a float."""
    spec = make_spec(shutdown=10**300, start_timeout=10**300)
    assert spec.shutdown == 1e300
    assert spec.start_timeout == 1e300


@pytest.mark.parametrize("seed", [None, 0, -7, 2**100])
def test_backoff_accepts_integer_seed(seed):
    """A Backoff seed is None or any int, including negative and big ones."""
    assert Backoff(seed=seed).seed == seed


def test_backoff_stores_floats():
    """A Backoff built from ints stores its numbers as floats."""
    backoff = Backoff(initial=1, maximum=8, multiplier=2, jitter=0, reset_after=60)
    values = [backoff.initial, backoff.maximum, backoff.multiplier, backoff.jitter, backoff.reset_after]
    assert values == [1.0, 8.0, 2.0, 0.0, 60.0]
    assert all(type(value) is float for value in values)


def test_invalid_child_spec_is_value_or_type_error():
    """InvalidChildSpec can be caught as the built-in error a caller would expect."""
    with pytest.raises(InvalidChildSpec) as info:
        make_spec(shutdown=-1.0)
    assert isinstance(info.value, (ValueError, TypeError))


def test_spec_defaults_for_worker():
    """A worker spec built with only id and start gets the documented defaults."""
    spec = make_spec()
    assert spec.id == "worker"
    assert spec.start is idle_child
    assert spec.args == ()
    assert spec.restart is Restart.PERMANENT
    assert spec.shutdown == 5.0
    assert spec.type is ChildType.WORKER
    assert spec.signals_ready is False
    assert spec.start_timeout == 5.0
    assert spec.backoff is None
    assert spec.significant is False


def test_spec_supervisor_type_waits_infinitely():
    """A spec of type supervisor defaults to an infinite shutdown time, as in OTP."""
    spec = make_spec(type=ChildType.SUPERVISOR)
    assert spec.shutdown is INFINITY


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        ("restart", "transient", Restart.TRANSIENT),
        ("restart", "temporary", Restart.TEMPORARY),
        ("restart", "permanent", Restart.PERMANENT),
        ("type", "supervisor", ChildType.SUPERVISOR),
        ("type", "worker", ChildType.WORKER),
        ("shutdown", "brutal_kill", BRUTAL_KILL),
        ("shutdown", "infinity", INFINITY),
    ],
)
def test_spec_accepts_enum_strings(field, text, expected):
    """A string naming an enum member is converted to that member."""
    spec = make_spec(**{field: text})
    assert getattr(spec, field) == expected


def test_spec_accepts_zero_shutdown():
    """A shutdown time of zero is valid: cancel and do not wait."""
    spec = make_spec(shutdown=0)
    assert spec.shutdown == 0


def test_spec_accepts_no_start_timeout():
    """start_timeout=None waits for readiness without a limit."""
    spec = make_spec(signals_ready=True, start_timeout=None)
    assert spec.start_timeout is None


def test_spec_accepts_backoff():
    """A Backoff instance is stored on the spec as given."""
    backoff = Backoff()
    spec = make_spec(backoff=backoff)
    assert spec.backoff is backoff


# The start callable.


def sync_start() -> None:
    pass


async def async_generator_start():
    yield


class Service:
    def run(self) -> None:
        pass

    async def serve(self) -> None:
        pass

    @classmethod
    def create(cls) -> None:
        pass


class AsyncCallable:
    async def __call__(self) -> None:
        pass


class CoroutineFactory:
    """A synchronous callable object that returns a coroutine."""

    def __call__(self):
        return idle_child()


class ReturnsValue:
    """A synchronous callable object, so only a call shows that it returns no awaitable."""

    def __init__(self, value):
        self.value = value

    def __call__(self, **kwargs):
        return self.value


class Awaitable:
    """A class whose instances can be awaited, so the class itself is a valid start."""

    def __await__(self):
        return idle_child().__await__()


@types.coroutine
def generator_coroutine():
    yield


def self_wrapped() -> None:
    pass


self_wrapped.__wrapped__ = self_wrapped


def wraps_decorator(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


SYNC_STARTS = {
    "function": sync_start,
    "bound method": Service().run,
    "class method": Service.create,
    "partial": functools.partial(sync_start),
    "partial of a bound method": functools.partial(Service().run),
    "functools.wraps wrapper": wraps_decorator(sync_start),
    "__wrapped__ cycle": self_wrapped,
}


@pytest.mark.parametrize("start", list(SYNC_STARTS.values()), ids=list(SYNC_STARTS))
def test_sync_start_rejected(start):
    """A plain function or bound method that is not async is rejected, naming start and showing the value."""
    with pytest.raises(InvalidChildSpec) as info:
        make_spec(start=start)
    assert_error_names(info.value, "start", start)
    assert "async function (async def)" in str(info.value)
    assert info.value.field == "start"


def test_async_generator_start_rejected():
    """An async generator function cannot be awaited, so it is rejected as a start."""
    with pytest.raises(InvalidChildSpec, match="async generator function") as info:
        make_spec(start=async_generator_start)
    assert_error_names(info.value, "start", async_generator_start)


ASYNC_STARTS = {
    "async function": idle_child,
    "async bound method": Service().serve,
    "partial": functools.partial(idle_child),
    "nested partial": functools.partial(functools.partial(Service().serve)),
    "functools.wraps wrapper": wraps_decorator(idle_child),
    "object with async __call__": AsyncCallable(),
    "object returning a coroutine": CoroutineFactory(),
    "awaitable class": Awaitable,
    "types.coroutine generator": generator_coroutine,
    "lambda returning a coroutine": lambda: idle_child(),
}


@pytest.mark.parametrize("start", list(ASYNC_STARTS.values()), ids=list(ASYNC_STARTS))
def test_async_start_accepted(start):
    """An async function, and any callable that cannot be judged before it is called, is accepted as given."""
    spec = make_spec(start=start)
    assert spec.start is start


async def test_start_returning_non_awaitable_names_child(clock):
    """A start that returns no awaitable: the exit reason names child and rule, with the TypeError as cause."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [ChildSpec("worker", ReturnsValue(42), restart="temporary")], name="sup", clock=clock, on_event=events
    )

    await supervisor.start()
    exited = await events.wait_for(ChildExited, "worker")

    reason = exited.reason
    assert isinstance(reason, InvalidChildSpec)
    assert reason.field == "start"
    assert "child 'worker' of supervisor 'sup'" in str(reason)
    assert "start must be an async function (async def)" in str(reason)
    assert isinstance(reason.__cause__, TypeError)
    assert "int" in str(reason.__cause__)
    await supervisor.stop()


async def test_signalling_start_returning_non_awaitable_fails_start(clock):
    """A signalling child whose start returns something not awaitable: start() raises with that reason."""
    supervisor = Supervisor(
        [ChildSpec("worker", ReturnsValue(None), signals_ready=True)],
        name="sup",
        clock=clock,
    )

    with pytest.raises(ChildStartError) as info:
        await supervisor.start()

    assert isinstance(info.value.reason, InvalidChildSpec)
    assert "child 'worker'" in str(info.value.reason)


async def test_start_type_error_kept(clock):
    """A TypeError from calling start with wrong arguments, or from inside the child, is kept as the reason."""

    async def needs_argument(value):
        pass

    async def raises_type_error():
        raise TypeError("bad operand")

    events = EventLog(clock)
    supervisor = Supervisor(
        [
            ChildSpec("missing-argument", needs_argument, restart="temporary"),
            ChildSpec("inside", raises_type_error, restart="temporary"),
        ],
        clock=clock,
        on_event=events,
    )

    await supervisor.start()
    await settle()

    reasons = {event.child_id: event.reason for event in events.select(ChildExited)}
    assert type(reasons["missing-argument"]) is TypeError
    assert "missing 1 required positional argument" in str(reasons["missing-argument"])
    assert type(reasons["inside"]) is TypeError
    assert str(reasons["inside"]) == "bad operand"
    await supervisor.stop()


# Supervisor options.


def test_duplicate_child_ids_rejected():
    """Two children with the same id make the supervisor raise, naming the id."""
    with pytest.raises(InvalidChildSpec) as info:
        Supervisor([make_spec(id="a"), make_spec(id="b"), make_spec(id="a")])
    assert_error_names(info.value, "id", "a")


def test_significant_child_needs_auto_shutdown():
    """A significant child under a supervisor whose auto_shutdown is never is rejected."""
    with pytest.raises(InvalidChildSpec) as info:
        Supervisor([make_spec(restart="transient", significant=True)])
    assert_error_names(info.value, "significant", True)


BAD_SUPERVISOR_OPTIONS = [
    ("strategy", "round_robin"),
    ("max_restarts", -1),
    ("max_restarts", 1.5),
    ("max_seconds", -1.0),
    ("max_seconds", 0),
    ("max_seconds", math.nan),
    ("max_seconds", 10**400),
    ("on_event", 42),
    ("name", 42),
    ("clock", 42),
    ("auto_shutdown", "sometimes"),
]


@pytest.mark.parametrize(("field", "value"), BAD_SUPERVISOR_OPTIONS)
def test_bad_supervisor_option_rejected(field, value):
    """An invalid supervisor option raises naming the option and showing the value."""
    with pytest.raises((ValueError, TypeError)) as info:
        Supervisor([make_spec()], **{field: value})
    assert_error_names(info.value, field, value)


def test_child_that_is_not_a_spec_rejected():
    """A child that is not a ChildSpec raises, showing the value."""
    with pytest.raises((ValueError, TypeError)) as info:
        Supervisor([make_spec(), "worker"])
    assert_error_names(info.value, "children", "worker")


def test_supervisor_defaults():
    """A supervisor built with no options is idle, uses one_for_one and gets a generated name."""
    supervisor = Supervisor()
    assert supervisor.strategy is Strategy.ONE_FOR_ONE
    assert supervisor.state == "idle"
    assert isinstance(supervisor.name, str)
    assert supervisor.name != ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("one_for_one", Strategy.ONE_FOR_ONE),
        ("one_for_all", Strategy.ONE_FOR_ALL),
        ("rest_for_one", Strategy.REST_FOR_ONE),
    ],
)
def test_supervisor_accepts_strategy_strings(text, expected):
    """A string naming a strategy is converted to the Strategy member."""
    supervisor = Supervisor(strategy=text)
    assert supervisor.strategy is expected
