"""When permanent, transient and temporary children are restarted."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import ChildExited, ChildSpec, ChildReady, ChildStarted, Supervisor

from supervisor.testing import settle

from conftest import EventLog, start_all


async def start_one(probe, **spec_fields):
    events = EventLog()
    supervisor = Supervisor([probe.spec("child", **spec_fields), probe.spec("sibling")], on_event=events)
    await start_all(supervisor, events)
    return supervisor, events


async def test_permanent_abnormal_exit_restarted(probe):
    """A permanent child that raises is started again."""
    supervisor, events = await start_one(probe, restart="permanent")

    probe.crash("child")
    ready = await events.wait_for(ChildReady, "child", count=2)

    assert ready.generation == 2
    assert probe.starts["child"] == 2
    await supervisor.stop()


async def test_permanent_normal_exit_restarted(probe):
    """A permanent child that returns normally is started again."""
    supervisor, events = await start_one(probe, restart="permanent")

    probe.finish("child")
    exited = await events.wait_for(ChildExited, "child")
    ready = await events.wait_for(ChildReady, "child", count=2)

    assert exited.reason is None
    assert exited.abnormal is False
    assert ready.generation == 2
    await supervisor.stop()


async def test_transient_normal_exit_not_restarted(probe):
    """A transient child that returns normally stays stopped."""
    supervisor, events = await start_one(probe, restart="transient")

    probe.finish("child")
    exited = await events.wait_for(ChildExited, "child")
    await settle()

    assert exited.reason is None
    assert exited.abnormal is False
    assert events.count(ChildStarted, "child") == 1
    assert probe.starts["child"] == 1
    assert probe.starts["sibling"] == 1
    await supervisor.stop()


async def test_transient_abnormal_exit_restarted(probe):
    """A transient child that raises is started again."""
    supervisor, events = await start_one(probe, restart="transient")

    error = ValueError("bad input")
    probe.crash("child", error)
    exited = await events.wait_for(ChildExited, "child")
    ready = await events.wait_for(ChildReady, "child", count=2)

    assert exited.reason is error
    assert exited.abnormal is True
    assert ready.generation == 2
    await supervisor.stop()


async def test_temporary_abnormal_exit_not_restarted(probe):
    """A temporary child that raises is not started again and its spec is removed."""
    supervisor, events = await start_one(probe, restart="temporary")

    probe.crash("child")
    exited = await events.wait_for(ChildExited, "child")
    await settle()

    assert exited.abnormal is True
    assert events.count(ChildStarted, "child") == 1
    assert [info.id for info in supervisor.which_children()] == ["sibling"]
    await supervisor.stop()


async def test_temporary_normal_exit_not_restarted(probe):
    """A temporary child that returns normally is not started again and its spec is removed."""
    supervisor, events = await start_one(probe, restart="temporary")

    probe.finish("child")
    await events.wait_for(ChildExited, "child")
    await settle()

    assert events.count(ChildStarted, "child") == 1
    assert [info.id for info in supervisor.which_children()] == ["sibling"]
    await supervisor.stop()


async def test_restart_keeps_spec_arguments(probe):
    """A restarted child is called again with the same args and kwargs."""
    calls = []

    async def child(position, *, name):
        calls.append((position, name))
        if len(calls) == 1:
            raise RuntimeError("first generation fails")
        await probe.run("placeholder")

    events = EventLog()
    supervisor = Supervisor([ChildSpec("child", child, args=(7,), kwargs={"name": "x"})], on_event=events)
    await start_all(supervisor, events)
    await events.wait_for(ChildReady, "child", count=2)

    assert calls == [(7, "x"), (7, "x")]
    await supervisor.stop()


@pytest.mark.parametrize("signals_ready", [False, True])
@pytest.mark.parametrize("kwargs", [{}, {"name": "x"}])
async def test_restart_without_listener_keeps_arguments(signals_ready, kwargs, caplog):
    """With no event listener, a restart still passes the same arguments and logs the failure."""
    calls = []
    second_call = asyncio.Event()

    async def child(position, **received):
        task_status = received.pop("task_status", None)
        calls.append((position, received))
        if task_status is not None:
            task_status.started()
        if len(calls) == 1:
            raise RuntimeError("first generation fails")
        second_call.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(
        [ChildSpec("child", child, args=(7,), kwargs=kwargs, signals_ready=signals_ready)]
    )
    await supervisor.start()
    await second_call.wait()

    assert calls == [(7, kwargs), (7, kwargs)]
    [info] = supervisor.which_children()
    assert info.restarts == 1
    assert "first generation fails" in caplog.text
    await supervisor.stop()


async def test_unrequested_cancellation_is_abnormal_exit(probe):
    """A transient child cancelled by someone other than its supervisor is restarted."""
    supervisor, events = await start_one(probe, restart="transient")
    [child_info] = [info for info in supervisor.which_children() if info.id == "child"]

    child_info.task.cancel()
    exited = await events.wait_for(ChildExited, "child")
    ready = await events.wait_for(ChildReady, "child", count=2)

    assert isinstance(exited.reason, asyncio.CancelledError)
    assert exited.abnormal is True
    assert ready.generation == 2
    await supervisor.stop()


async def test_any_significant_exit_stops_supervisor(probe):
    """With auto_shutdown=any_significant, a significant child's normal exit stops the supervisor."""
    events = EventLog()
    supervisor = Supervisor(
        [probe.spec("a"), probe.spec("job", restart="transient", significant=True)],
        auto_shutdown="any_significant",
        on_event=events,
    )
    await start_all(supervisor, events)

    probe.finish("job")
    await supervisor.wait()

    assert supervisor.state == "stopped"
    assert probe.actions("stop") == ["a"]


async def test_all_significant_waits_for_every_significant_child(probe):
    """With auto_shutdown=all_significant, the supervisor stops after the last significant exit."""
    events = EventLog()
    supervisor = Supervisor(
        [
            probe.spec("a"),
            probe.spec("job1", restart="temporary", significant=True),
            probe.spec("job2", restart="transient", significant=True),
        ],
        auto_shutdown="all_significant",
        on_event=events,
    )
    await start_all(supervisor, events)

    probe.finish("job1")
    await events.wait_for(ChildExited, "job1")
    await settle()

    assert supervisor.state == "running"

    probe.finish("job2")
    await supervisor.wait()

    assert supervisor.state == "stopped"


async def test_temporary_child_removed_after_other_base_exception(probe):
    """A temporary child that ends with a BaseException such as GeneratorExit is removed too."""

    async def leaves(*, task_status):
        task_status.started()
        raise GeneratorExit

    supervisor = Supervisor(
        [ChildSpec("t", leaves, signals_ready=True, restart="temporary"), probe.spec("b")]
    )
    with pytest.raises(GeneratorExit):
        await supervisor.start()  # raises it, or leaves it to wait() if b started first
        await supervisor.wait()
    assert [info.id for info in supervisor.which_children()] == ["b"]
