"""Logging: ERROR per child failure, INFO per start, and no traceback formatting without a handler."""

from __future__ import annotations

import logging
import traceback

import pytest

from supervisor import ChildReady, RestartIntensityExceeded, Supervisor
from supervisor._supervisor import FAILURE_LOG_LIMIT, FAILURE_LOG_WINDOW

from conftest import EventLog, start_all


def records_at(caplog, level):
    return [record for record in caplog.records if record.name == "supervisor" and record.levelno == level]


async def test_failure_logged_once_as_error(clock, probe, supervisor_logs):
    """One crash gives exactly one ERROR record naming supervisor, child and reason."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], name="sup", clock=clock, on_event=events)
    await start_all(supervisor, events)
    error = RuntimeError("disk full")

    probe.crash("b", error)
    await events.wait_for(ChildReady, "b", count=2)

    errors = records_at(supervisor_logs, logging.ERROR)
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "'sup'" in message
    assert "'b'" in message
    assert "disk full" in message
    assert errors[0].exc_info[1] is error
    await supervisor.stop()


async def test_normal_return_not_logged_as_error(clock, probe, supervisor_logs):
    """A permanent child that returns normally is restarted without an ERROR record."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.finish("a")
    await events.wait_for(ChildReady, "a", count=2)

    assert records_at(supervisor_logs, logging.ERROR) == []
    await supervisor.stop()


async def test_each_start_logged_as_info(clock, probe, supervisor_logs):
    """Every start, first or restart, gives an INFO record naming the child and supervisor."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], name="sup", clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)

    start_messages = [
        record.getMessage()
        for record in records_at(supervisor_logs, logging.INFO)
        if record.getMessage().startswith("starting child")
    ]
    assert len(start_messages) == 3
    assert "'a'" in start_messages[0]
    assert "'b'" in start_messages[1]
    assert "'a'" in start_messages[2]
    assert all("'sup'" in message for message in start_messages)
    await supervisor.stop()


async def test_failure_storm_rate_limited(clock, probe, supervisor_logs):
    """Failures beyond the limit per window are counted and reported in one later line."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], max_restarts=1000, clock=clock, on_event=events)
    await start_all(supervisor, events)
    failures = FAILURE_LOG_LIMIT + 5

    for generation in range(2, failures + 2):
        probe.crash("a")
        await events.wait_for(ChildReady, "a", count=generation)

    assert len(records_at(supervisor_logs, logging.ERROR)) == FAILURE_LOG_LIMIT

    clock.advance(FAILURE_LOG_WINDOW)
    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=failures + 2)

    errors = records_at(supervisor_logs, logging.ERROR)
    assert len(errors) == FAILURE_LOG_LIMIT + 2
    assert "5 more child failures" in errors[-2].getMessage()
    assert "failed" in errors[-1].getMessage()
    await supervisor.stop()


async def test_intensity_breach_logged_as_error(clock, probe, supervisor_logs):
    """A restart intensity breach gives an ERROR record naming the supervisor and the offender."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], name="sup", max_restarts=0, clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    with pytest.raises(RestartIntensityExceeded):
        await supervisor.wait()

    breach_messages = [
        record.getMessage()
        for record in records_at(supervisor_logs, logging.ERROR)
        if "restart intensity" in record.getMessage()
    ]
    assert len(breach_messages) == 1
    assert "'sup'" in breach_messages[0]
    assert "'a'" in breach_messages[0]


class CountingTracebackException(traceback.TracebackException):
    created = 0

    def __init__(self, *args, **kwargs):
        type(self).created += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
def count_tracebacks(monkeypatch):
    """Count every traceback the traceback module formats during the test."""
    CountingTracebackException.created = 0
    monkeypatch.setattr(traceback, "TracebackException", CountingTracebackException)
    return CountingTracebackException


@pytest.fixture
def supervisor_logger():
    """The "supervisor" logger, with its level and propagation restored after the test."""
    logger = logging.getLogger("supervisor")
    level, propagate = logger.level, logger.propagate
    yield logger
    logger.setLevel(level)
    logger.propagate = propagate


async def test_no_traceback_formatted_without_handler(clock, probe, count_tracebacks, supervisor_logger):
    """With only the NullHandler attached, a crash and restart format no traceback."""
    supervisor_logger.propagate = False
    supervisor_logger.setLevel(logging.DEBUG)
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)

    assert count_tracebacks.created == 0
    await supervisor.stop()


async def test_no_traceback_formatted_when_error_disabled(clock, probe, count_tracebacks, supervisor_logger):
    """With the logger set above ERROR, a crash and restart format no traceback."""
    supervisor_logger.setLevel(logging.CRITICAL)
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)

    assert count_tracebacks.created == 0
    await supervisor.stop()


async def test_traceback_formatted_when_handler_emits(clock, probe, count_tracebacks, supervisor_logs):
    """With a handler that emits ERROR records, the failure's traceback is formatted.

    This is the counterpart of the two tests above: it shows the counter does see tracebacks.
    """
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)

    probe.crash("a")
    await events.wait_for(ChildReady, "a", count=2)

    assert count_tracebacks.created >= 1
    await supervisor.stop()
