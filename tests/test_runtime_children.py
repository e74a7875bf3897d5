"""Children added, terminated, restarted and deleted while the supervisor runs."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import (
    Backoff,
    ChildExited,
    ChildNotFound,
    ChildReady,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStartError,
    ChildStopped,
    DuplicateChild,
    InvalidChildSpec,
    Supervisor,
    SupervisorNotRunning,
)
from supervisor.testing import settle

from conftest import EventLog, start_all


async def start_supervisor(clock, probe, *child_ids, **options):
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec(child_id) for child_id in child_ids], clock=clock, on_event=events, **options
    )
    await start_all(supervisor, events)
    return supervisor, events


async def test_start_child_appends_and_starts(clock, probe):
    """start_child() adds the child after the others, and stop() stops it first."""
    supervisor, events = await start_supervisor(clock, probe, "a", "b")

    await supervisor.start_child(probe.spec("c"))
    await events.wait_for(ChildReady, "c")

    assert [info.id for info in supervisor.which_children()] == ["a", "b", "c"]
    assert probe.starts["c"] == 1

    await supervisor.stop()

    assert probe.actions("stop") == ["c", "b", "a"]


async def test_start_child_returns_started_value(clock, probe):
    """start_child() returns the value the child passed to task_status.started()."""
    supervisor, events = await start_supervisor(clock, probe, "a")

    async def serve(task_status):
        task_status.started("listening on 8080")
        await probe.run("server")

    value = await supervisor.start_child(ChildSpec("server", serve, signals_ready=True))

    assert value == "listening on 8080"
    await supervisor.stop()


async def test_start_child_duplicate_id_rejected(clock, probe):
    """start_child() with the id of an existing child raises DuplicateChild and changes nothing."""
    supervisor, events = await start_supervisor(clock, probe, "a")

    with pytest.raises(DuplicateChild) as info:
        await supervisor.start_child(probe.spec("a"))

    assert info.value.child_id == "a"
    assert info.value.running is True
    assert probe.starts["a"] == 1
    assert len(supervisor.which_children()) == 1
    await supervisor.stop()


async def test_start_child_rejects_non_spec(clock, probe):
    """start_child() with something other than a ChildSpec raises InvalidChildSpec."""
    supervisor, events = await start_supervisor(clock, probe, "a")

    with pytest.raises(InvalidChildSpec) as info:
        await supervisor.start_child("b")

    assert "'b'" in str(info.value)
    await supervisor.stop()


async def test_start_child_on_idle_supervisor_rejected(probe):
    """start_child() before start() raises SupervisorNotRunning."""
    supervisor = Supervisor()

    with pytest.raises(SupervisorNotRunning) as info:
        await supervisor.start_child(probe.spec("a"))

    assert info.value.state == "idle"
    assert probe.starts["a"] == 0


async def test_start_child_failing_before_ready_removed(clock, probe):
    """A child that crashes before signalling readiness makes start_child() raise and is removed."""
    supervisor, events = await start_supervisor(clock, probe, "a")
    error = RuntimeError("cannot bind")

    async def fail_to_bind(task_status):
        raise error

    with pytest.raises(ChildStartError) as info:
        await supervisor.start_child(ChildSpec("b", fail_to_bind, signals_ready=True))

    assert info.value.child_id == "b"
    assert info.value.reason is error
    assert events.count(ChildExited, "b") == 1
    assert [child.id for child in supervisor.which_children()] == ["a"]
    assert supervisor.state == "running"
    await supervisor.stop()


async def test_terminate_child_keeps_spec(clock, probe):
    """terminate_child() stops a permanent child, keeps its spec and does not restart it."""
    supervisor, events = await start_supervisor(clock, probe, "a", "b")

    await supervisor.terminate_child("a")
    await settle()

    stopped = events.select(ChildStopped, "a")
    assert len(stopped) == 1
    assert stopped[0].cause == "terminate"
    assert probe.starts["a"] == 1
    assert [(info.id, str(info.status)) for info in supervisor.which_children()] == [
        ("a", "stopped"),
        ("b", "running"),
    ]
    assert supervisor.count_children()["active"] == 1
    await supervisor.stop()


async def test_terminate_temporary_child_removes_it(clock, probe):
    """terminate_child() of a temporary child also removes its spec, as in OTP."""
    supervisor, events = await start_supervisor(clock, probe, "a")
    await supervisor.start_child(probe.spec("t", restart="temporary"))
    await events.wait_for(ChildReady, "t")

    await supervisor.terminate_child("t")

    assert [info.id for info in supervisor.which_children()] == ["a"]
    await supervisor.stop()


async def test_restart_child_after_terminate(clock, probe):
    """restart_child() starts a terminated child again as its next generation."""
    supervisor, events = await start_supervisor(clock, probe, "a", "b")
    await supervisor.terminate_child("a")

    await supervisor.restart_child("a")
    ready = await events.wait_for(ChildReady, "a", count=2)

    assert ready.generation == 2
    assert probe.starts["a"] == 2
    assert [info.id for info in supervisor.which_children()] == ["a", "b"]
    await supervisor.stop()


async def test_restart_running_child_rejected(clock, probe):
    """restart_child() of a running child raises ChildRunning and leaves it alone."""
    supervisor, events = await start_supervisor(clock, probe, "a")

    with pytest.raises(ChildRunning) as info:
        await supervisor.restart_child("a")

    assert info.value.child_id == "a"
    assert probe.starts["a"] == 1
    await supervisor.stop()


async def test_delete_running_child_rejected(clock, probe):
    """delete_child() of a running child raises ChildRunning and keeps the spec."""
    supervisor, events = await start_supervisor(clock, probe, "a")

    with pytest.raises(ChildRunning):
        supervisor.delete_child("a")

    assert [info.id for info in supervisor.which_children()] == ["a"]
    await supervisor.stop()


async def test_delete_terminated_child(clock, probe):
    """delete_child() after terminate_child() removes the spec for good."""
    supervisor, events = await start_supervisor(clock, probe, "a", "b")
    await supervisor.terminate_child("a")

    supervisor.delete_child("a")

    assert [info.id for info in supervisor.which_children()] == ["b"]
    with pytest.raises(ChildNotFound):
        await supervisor.restart_child("a")
    await supervisor.stop()


@pytest.mark.parametrize("operation", ["terminate_child", "restart_child", "delete_child"])
async def test_unknown_child_id_not_found(clock, probe, operation):
    """Each runtime operation on an unknown id raises ChildNotFound naming the id."""
    supervisor, events = await start_supervisor(clock, probe, "a")

    with pytest.raises(ChildNotFound) as info:
        result = getattr(supervisor, operation)("missing")
        if operation != "delete_child":
            await result

    assert info.value.child_id == "missing"
    assert "'missing'" in str(info.value)
    await supervisor.stop()


async def test_added_child_joins_group_restart(clock, probe):
    """A child added at run time takes part in one_for_all restarts in its start position."""
    supervisor, events = await start_supervisor(clock, probe, "a", "b", strategy="one_for_all")
    await supervisor.start_child(probe.spec("c"))
    await events.wait_for(ChildReady, "c")
    probe.log.clear()

    probe.crash("a")
    await events.wait_for(ChildReady, "c", count=2)
    await settle()

    assert probe.log == [
        ("crash", "a"),
        ("stop", "c"),
        ("stop", "b"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    await supervisor.stop()


async def test_restarted_supervisor_forgets_added_children(clock, probe):
    """A supervisor started again runs its initial children only, as in OTP."""
    supervisor, events = await start_supervisor(clock, probe, "a")
    await supervisor.start_child(probe.spec("b"))
    await supervisor.stop()

    await supervisor.start()

    assert [info.id for info in supervisor.which_children()] == ["a"]
    await supervisor.stop()


async def test_child_terminating_itself_is_recorded_stopped(clock):
    """terminate_child() from the child's own code stops it, with a ChildStopped and status stopped."""
    events = EventLog(clock)
    supervisor = Supervisor([], clock=clock, on_event=events)

    async def quitter(*, task_status):
        task_status.started()
        await task_status.supervisor.terminate_child("me")
        await asyncio.sleep(0)  # the cancellation arrives at this await
        raise AssertionError("the child ran on after terminating itself")

    await supervisor.start()
    await supervisor.start_child(ChildSpec("me", quitter, signals_ready=True))
    stopped = await events.wait_for(ChildStopped, "me")
    await settle()

    assert stopped.cause == "terminate"
    assert [(info.id, str(info.status)) for info in supervisor.which_children()] == [("me", "stopped")]
    assert supervisor.count_children()["active"] == 0
    assert events.count(ChildExited, "me") == 0
    await supervisor.stop()


async def test_broken_clock_fails_the_supervisor(clock, probe):
    """An error of the supervisor's own on the restart path (here its clock) fails it instead of orphaning the child."""

    class BrokenClock(type(clock)):
        broken = False

        def now(self):
            if self.broken:
                raise RuntimeError("clock broke")
            return super().now()

    broken_clock = BrokenClock()
    events = EventLog(broken_clock)
    supervisor = Supervisor([probe.spec("a"), probe.spec("b")], clock=broken_clock, on_event=events)
    await start_all(supervisor, events)

    broken_clock.broken = True
    probe.crash("a")

    with pytest.raises(RuntimeError, match="clock broke"):
        await supervisor.wait()
    assert supervisor.state == "failed"
    assert probe.actions("stop") == ["b"]


def test_single_spec_instead_of_list_rejected(probe):
    """Supervisor(spec) instead of Supervisor([spec]) names the children argument."""
    spec = probe.spec("a")
    with pytest.raises(InvalidChildSpec, match="children") as info:
        Supervisor(spec)
    assert info.value.field == "children"


async def test_start_error_chains_reason(clock):
    """ChildStartError has the child's failure as __cause__, so tracebacks show both."""

    async def broken(*, task_status):
        raise KeyError("missing config")

    supervisor = Supervisor([], clock=clock)
    await supervisor.start()
    with pytest.raises(ChildStartError) as info:
        await supervisor.start_child(ChildSpec("b", broken, signals_ready=True))
    assert isinstance(info.value.__cause__, KeyError)
    await supervisor.stop()


async def test_stale_started_after_terminate_rejected(clock):
    """started() through a status kept past terminate_child() raises and leaves the child stopped."""
    statuses = []

    async def keeper(*, task_status):
        statuses.append(task_status)
        task_status.started()
        await asyncio.Event().wait()

    supervisor = Supervisor([ChildSpec("k", keeper, signals_ready=True)], clock=clock)
    await supervisor.start()
    await supervisor.terminate_child("k")

    with pytest.raises(RuntimeError, match="after exit or stop"):
        statuses[0].started()
    assert [str(info.status) for info in supervisor.which_children()] == ["stopped"]
    await supervisor.stop()


async def test_unhashable_id_is_not_found(probe):
    """An id that no child can have, such as a list, gives ChildNotFound like any unknown id."""
    supervisor = Supervisor([probe.spec("a")])
    await supervisor.start()
    with pytest.raises(ChildNotFound):
        await supervisor.terminate_child(["a"])
    await supervisor.stop()


TEN_SECOND_BACKOFF = Backoff(initial=10.0, maximum=10.0, jitter=0.0)


async def crash_into_group_delay(clock, probe, specs, failing):
    """Start a rest_for_one supervisor and crash ``failing``, whose group restart then waits 10 s."""
    events = EventLog(clock)
    supervisor = Supervisor(specs, strategy="rest_for_one", clock=clock, on_event=events)
    await start_all(supervisor, events)
    probe.crash(failing)
    await events.wait_for(ChildRestarting, failing)
    return supervisor


async def test_start_child_waits_for_group_restart(clock, probe):
    """A child added while a rest_for_one restart waits out its delay starts after the group."""
    supervisor = await crash_into_group_delay(
        clock, probe, [probe.spec("a", backoff=TEN_SECOND_BACKOFF), probe.spec("b")], "a"
    )

    adding = asyncio.ensure_future(supervisor.start_child(probe.spec("c")))
    await settle()
    assert not adding.done()
    assert probe.starts["c"] == 0
    await clock.advance_and_settle(10.0)
    await adding

    assert probe.actions("start")[-3:] == ["a", "b", "c"]
    await supervisor.stop()


async def test_restart_child_after_group_restart(clock, probe):
    """restart_child() of a child a group restart has stopped waits, then finds it running."""
    supervisor = await crash_into_group_delay(
        clock, probe, [probe.spec("a", backoff=TEN_SECOND_BACKOFF), probe.spec("b")], "a"
    )

    restarting = asyncio.ensure_future(supervisor.restart_child("b"))
    await settle()
    assert not restarting.done()
    await clock.advance_and_settle(10.0)

    with pytest.raises(ChildRunning):
        await restarting
    assert probe.actions("start")[-2:] == ["a", "b"]
    assert probe.starts["b"] == 2
    await supervisor.stop()


async def test_start_child_from_restarting_child(clock, probe):
    """A child that adds a sibling before it is ready does not wait for its own group restart."""
    events = EventLog(clock)
    added = []

    async def adder(task_status):
        # The second generation runs inside the one_for_all restart that started it.
        if probe.starts["adder"] == 1:
            added.append(await supervisor.start_child(probe.spec(f"extra{len(added)}")))
        probe.starts["adder"] += 1
        task_status.started()
        await asyncio.Event().wait()

    supervisor = Supervisor(
        [probe.spec("a"), ChildSpec("adder", adder, signals_ready=True)],
        strategy="one_for_all", clock=clock, on_event=events,
    )
    await start_all(supervisor, events)
    probe.crash("a")
    await events.wait_for(ChildReady, "adder", count=2)

    assert [info.id for info in supervisor.which_children()] == ["a", "adder", "extra0"]
    await supervisor.stop()


async def test_broken_clock_in_group_restart(clock, probe):
    """A clock that raises during a group restart's delay fails the supervisor, as on the one_for_one path."""

    class BrokenTimerClock(type(clock)):
        def call_later(self, delay, callback, *args):
            if delay == 10.0:
                raise RuntimeError("timer broke")
            return super().call_later(delay, callback, *args)

    broken_clock = BrokenTimerClock()
    events = EventLog(broken_clock)
    backoff = Backoff(initial=10.0, maximum=10.0, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("b")],
        strategy="one_for_all", clock=broken_clock, on_event=events,
    )
    await start_all(supervisor, events)

    probe.crash("a")
    with pytest.raises(RuntimeError, match="timer broke"):
        await supervisor.wait()
    assert supervisor.state == "failed"
    with pytest.raises(SupervisorNotRunning):
        await supervisor.start_child(probe.spec("c"))


async def test_start_child_from_helper_task(clock, probe):
    """A task the restarting child creates, here by gather(), adds siblings without waiting for the restart."""
    events = EventLog(clock)

    async def adder(task_status):
        if task_status.generation == 2:
            await asyncio.gather(
                supervisor.start_child(probe.spec("helper1")),
                supervisor.start_child(probe.spec("helper2")),
            )
        task_status.started()
        await asyncio.Event().wait()

    supervisor = Supervisor(
        [probe.spec("a"), ChildSpec("adder", adder, signals_ready=True, start_timeout=None)],
        strategy="one_for_all", clock=clock, on_event=events,
    )
    await start_all(supervisor, events)
    probe.crash("a")
    await events.wait_for(ChildReady, "adder", count=2)

    assert [info.id for info in supervisor.which_children()] == ["a", "adder", "helper1", "helper2"]
    await supervisor.stop()


async def test_start_child_from_grandchild(clock, probe):
    """A child of a nested supervisor that the restart starts can add a child to the top supervisor."""
    events = EventLog(clock)
    generations = []

    async def registrar(task_status):
        generations.append(task_status.generation)
        if len(generations) == 2:
            await top.start_child(probe.spec("helper"))
        task_status.started()
        await asyncio.Event().wait()

    inner = Supervisor(
        [ChildSpec("registrar", registrar, signals_ready=True, start_timeout=None)],
        name="inner", clock=clock,
    )
    top = Supervisor(
        [probe.spec("a"), inner.child_spec("inner")],
        strategy="one_for_all", name="top", clock=clock, on_event=events,
    )
    await start_all(top, events)
    probe.crash("a")
    await events.wait_for(ChildReady, "inner", count=2)

    assert [info.id for info in top.which_children()] == ["a", "inner", "helper"]
    await top.stop()


async def test_start_child_from_sibling_waits(clock, probe):
    """A child the restart is not starting waits like any caller, so the start order holds."""
    calls: asyncio.Queue = asyncio.Queue()

    async def caller():
        while True:
            call, result = await calls.get()
            result.set_result(await call())

    supervisor = await crash_into_group_delay(
        clock, probe,
        [ChildSpec("caller", caller), probe.spec("b", backoff=TEN_SECOND_BACKOFF), probe.spec("c")], "b",
    )

    result = asyncio.get_running_loop().create_future()
    calls.put_nowait((lambda: supervisor.start_child(probe.spec("d")), result))
    await settle()
    assert not result.done()
    await clock.advance_and_settle(10.0)
    await result

    assert probe.actions("start")[-3:] == ["b", "c", "d"]
    await supervisor.stop()


@pytest.mark.parametrize("parallel", [False, True])
async def test_broken_clock_during_shutdown(clock, probe, parallel):
    """A clock that raises while the final shutdown waits for a child does not leave the others running."""

    class BrokenClock(type(clock)):
        broken = False

        def now(self):
            if self.broken:
                raise RuntimeError("clock broke")
            return super().now()

    broken_clock = BrokenClock()
    supervisor = Supervisor([probe.spec("a"), probe.spec("b"), probe.spec("c")], clock=broken_clock)
    supervisor._parallel_shutdown = parallel  # DynamicSupervisor's way of stopping children
    await supervisor.start()
    await settle()

    broken_clock.broken = True
    probe.crash("a")
    with pytest.raises(RuntimeError, match="clock broke"):
        await supervisor.wait()
    await settle()

    assert sorted(probe.actions("stop")) == ["b", "c"]
    assert supervisor.state == "failed"
    assert supervisor._control_task.exception() is None
