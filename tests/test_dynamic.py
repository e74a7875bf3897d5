"""DynamicSupervisor: children from a template, max_children, parallel shutdown, nesting."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import (
    ChildExited,
    ChildReady,
    ChildSpec,
    ChildStartError,
    ChildStatus,
    ChildStopped,
    DynamicSupervisor,
    InvalidChildSpec,
    Supervisor,
    SupervisorNotRunning,
    TooManyChildren,
)
from supervisor.testing import FaultInjector, InjectedFault, settle

from conftest import EventLog


async def record_call(calls: list, *args, task_status=None, **kwargs) -> None:
    calls.append((args, kwargs))
    if task_status is not None:
        task_status.started()
    await asyncio.Event().wait()


async def test_dynamic_appends_args_and_merges_kwargs(clock):
    """start_child() appends its arguments to the template's and merges keyword arguments over them."""
    calls: list = []
    supervisor = DynamicSupervisor(
        ChildSpec("t", record_call, args=(calls, "base"), kwargs={"mode": "a", "keep": 1}, signals_ready=True),
        clock=clock,
    )
    await supervisor.start()

    first = await supervisor.start_child("extra", mode="b")
    second = await supervisor.start_child()

    assert (first, second) == (1, 2)
    assert calls == [(("base", "extra"), {"mode": "b", "keep": 1}), (("base",), {"mode": "a", "keep": 1})]
    assert [info.id for info in supervisor.which_children()] == [1, 2]
    await supervisor.stop()


async def test_dynamic_shutdown_runs_in_parallel(clock):
    """Stopping a dynamic supervisor cancels every child at once: it takes the slowest child's time, not the sum."""
    cleaned: list[float] = []

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await clock.sleep(0.3)
            cleaned.append(clock.now())

    supervisor = DynamicSupervisor(ChildSpec("t", slow_cleanup, shutdown=1.0), clock=clock)
    await supervisor.start()
    for _ in range(5):
        await supervisor.start_child()
    await settle()

    stopping = asyncio.create_task(supervisor.stop())
    await clock.advance_and_settle(0.3)

    assert stopping.done()
    assert cleaned == [0.3] * 5


async def test_dynamic_parallel_shutdown_deadline_per_child(clock, probe):
    """Each stubborn child is abandoned at its own deadline, counted from the common cancellation."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(
        ChildSpec("t", probe.run_stubborn, shutdown=2.0), clock=clock, on_event=events
    )
    await supervisor.start()
    for n in range(3):
        await supervisor.start_child(f"s{n}", 1)
    await settle()

    stopping = asyncio.create_task(supervisor.stop())
    await clock.advance_and_settle(2.0)

    assert stopping.done()
    stopped = events.select(ChildStopped)
    assert [event.timed_out for event in stopped] == [True, True, True]
    assert [events.time_of(event) for event in stopped] == [2.0, 2.0, 2.0]
    for n in range(3):
        probe.release(f"s{n}")
    await settle()


async def test_dynamic_transient_normal_exit_removed(clock, probe):
    """A dynamic child that exits without restart is removed from the supervisor."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(ChildSpec("t", probe.run, restart="transient"), clock=clock, on_event=events)
    await supervisor.start()
    child = await supervisor.start_child("w")
    await events.wait_for(ChildReady, child)

    probe.finish("w")
    await events.wait_for(ChildExited, child)
    await settle()

    assert supervisor.which_children() == []
    assert supervisor.count_children()["specs"] == 0
    await supervisor.stop()


async def test_dynamic_terminate_removes_permanent_child(clock, probe):
    """terminate_child() stops a permanent dynamic child and removes it, as Elixir does."""
    supervisor = DynamicSupervisor(ChildSpec("t", probe.run), clock=clock)
    await supervisor.start()
    child = await supervisor.start_child("w")
    await settle()

    await supervisor.terminate_child(child)

    assert supervisor.which_children() == []
    assert probe.log[-1] == ("stop", "w")
    await supervisor.stop()


async def test_dynamic_failed_start_removed(clock):
    """A child that fails before it is ready: start_child() raises and the child is gone."""
    faults = FaultInjector(clock)
    supervisor = DynamicSupervisor(faults.wrap(ChildSpec("t", record_call, args=([],), signals_ready=True)), clock=clock)
    await supervisor.start()
    faults.fail_on_start(1, 1)

    with pytest.raises(ChildStartError) as raised:
        await supervisor.start_child()
    second = await supervisor.start_child()

    assert isinstance(raised.value.reason, InjectedFault)
    assert raised.value.reason.child_id == 1
    assert [info.id for info in supervisor.which_children()] == [second]
    await supervisor.stop()


async def test_dynamic_nested_under_supervisor(clock, probe):
    """A dynamic supervisor runs as a child of a plain one and is stopped with it."""
    pool = DynamicSupervisor(ChildSpec("t", probe.run), name="pool", clock=clock)
    root = Supervisor([pool.child_spec(), probe.spec("sibling")], clock=clock)
    await root.start()
    for n in range(3):
        await pool.start_child(f"w{n}")
    await settle()

    await root.stop()

    assert pool.state == "stopped"
    assert sorted(probe.actions("stop")) == ["sibling", "w0", "w1", "w2"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_dynamic_restart_starts_empty(clock, probe):
    """A dynamic supervisor started again after a stop has no children, and ids keep counting."""
    supervisor = DynamicSupervisor(ChildSpec("t", probe.run), clock=clock)
    await supervisor.start()
    await supervisor.start_child("a")
    await supervisor.stop()

    await supervisor.start()
    child = await supervisor.start_child("b")

    assert [info.id for info in supervisor.which_children()] == [child]
    assert child == 2
    await supervisor.stop()


async def test_dynamic_repr_shows_counts(clock, probe):
    """The repr names the supervisor and shows its state, children against max_children, and restarts."""
    supervisor = DynamicSupervisor(ChildSpec("t", probe.run), max_children=5, name="pool", clock=clock)
    await supervisor.start()
    await supervisor.start_child("a")
    await settle()

    assert repr(supervisor) == "<DynamicSupervisor 'pool' running children=1/5 active=1 restarts=0>"
    await supervisor.stop()


async def test_dynamic_quarantined_child_counts_toward_max(clock, probe):
    """A quarantined child keeps its place under max_children until it is terminated."""
    events = EventLog(clock)
    supervisor = DynamicSupervisor(
        ChildSpec("t", probe.run), max_children=1, child_max_restarts=0, clock=clock, on_event=events
    )
    await supervisor.start()
    child = await supervisor.start_child("w")
    await events.wait_for(ChildReady, child)
    probe.crash("w")
    await settle()

    assert supervisor.which_children()[0].status is ChildStatus.QUARANTINED
    assert supervisor.count_children()["active"] == 0
    await supervisor.terminate_child(child)
    await supervisor.start_child("v")
    await supervisor.stop()


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_children", 0),
        ("max_children", 2.0),
        ("child_max_restarts", -1),
        ("child_max_seconds", 0),
        ("child_max_seconds", float("inf")),
        pytest.param("child_max_seconds", 10**400, id="child_max_seconds-int_beyond_float"),
    ],
)
def test_dynamic_options_validated(field, value):
    """An invalid dynamic supervisor option is rejected with its name and value."""
    with pytest.raises(InvalidChildSpec, match=field) as raised:
        DynamicSupervisor(ChildSpec("t", record_call), **{field: value})
    assert raised.value.value == value


def test_dynamic_template_must_be_spec():
    """A template that is not a ChildSpec is rejected."""
    with pytest.raises(InvalidChildSpec, match="template"):
        DynamicSupervisor(record_call)


@pytest.mark.parametrize("position", [0, 1])
async def test_dynamic_start_child_rejects_spec(clock, position):
    """start_child() given a ChildSpec positionally raises, names the argument, starts nothing and uses no id."""
    calls: list = []
    supervisor = DynamicSupervisor(ChildSpec("t", record_call, args=(calls,)), clock=clock)
    await supervisor.start()
    stray = ChildSpec("other", record_call)
    args = ["extra"]
    args.insert(position, stray)

    with pytest.raises(InvalidChildSpec) as raised:
        await supervisor.start_child(*args)

    assert raised.value.field == f"args[{position}]"
    assert raised.value.value is stray
    assert "Supervisor.start_child(spec)" in str(raised.value)
    assert "keyword argument" in str(raised.value)
    assert supervisor.which_children() == []
    assert await supervisor.start_child() == 1
    await settle()
    assert calls == [((), {})]
    await supervisor.stop()


async def test_dynamic_start_child_spec_as_keyword(clock):
    """A ChildSpec passed as a keyword argument reaches the template's start unchanged."""
    calls: list = []
    supervisor = DynamicSupervisor(ChildSpec("t", record_call, args=(calls,)), clock=clock)
    await supervisor.start()
    passed = ChildSpec("inner", record_call)

    await supervisor.start_child(spec=passed)
    await settle()

    assert calls == [((), {"spec": passed})]
    await supervisor.stop()


async def test_dynamic_refused_starts_use_no_id(clock, probe):
    """Ids count the children started: a call refused before the start does not use one."""
    supervisor = DynamicSupervisor(ChildSpec("t", probe.run), max_children=1, clock=clock)
    with pytest.raises(SupervisorNotRunning):
        await supervisor.start_child("early")
    await supervisor.start()

    first = await supervisor.start_child("a")
    with pytest.raises(TooManyChildren):
        await supervisor.start_child("b")
    await supervisor.terminate_child(first)
    second = await supervisor.start_child("c")

    assert (first, second) == (1, 2)
    await supervisor.stop()


async def test_dynamic_rejected_keyword_uses_no_id(clock):
    """A task_status= keyword, which the template's spec refuses, raises and takes no id."""
    calls: list = []
    supervisor = DynamicSupervisor(ChildSpec("t", record_call, args=(calls,), signals_ready=True), clock=clock)
    await supervisor.start()

    with pytest.raises(InvalidChildSpec, match="task_status"):
        await supervisor.start_child(task_status="mine")

    assert supervisor.which_children() == []
    assert await supervisor.start_child() == 1
    await supervisor.stop()
