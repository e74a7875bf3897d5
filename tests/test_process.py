"""OS-process children: readiness, exit reasons, restarts and a clean shutdown, with real processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import pytest

from supervisor import (
    BRUTAL_KILL,
    INFINITY,
    KILL_TIMEOUT,
    ChildExited,
    ChildReady,
    ChildStartError,
    ChildStopped,
    InvalidChildSpec,
    ProcessChild,
    ProcessExited,
    StartTimeout,
    Supervisor,
)
from supervisor.testing import settle

from conftest import EventLog

# Child programs. Each prints its pid first, so a test can check that it is gone.
SLEEPER = "import os, time; print('pid', os.getpid(), flush=True); print('ready', flush=True); time.sleep(600)"
IGNORES_SIGTERM = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: print('got SIGTERM', flush=True))\n"
    "print('pid', os.getpid(), flush=True)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    time.sleep(600)\n"
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def process_state(pid: int) -> str | None:
    """Return the state letter of process ``pid`` from /proc (``Z`` for a zombie), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


class Output:
    """An ``on_output`` callback that stores the lines and lets a test wait for one."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._waiters: list[tuple[str, asyncio.Future[str]]] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        for text, waiter in list(self._waiters):
            if text in line and not waiter.done():
                waiter.set_result(line)
                self._waiters.remove((text, waiter))

    async def wait_for(self, text: str) -> str:
        """Return the first line containing ``text``, waiting for it if it has not come yet."""
        for line in self.lines:
            if text in line:
                return line
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((text, waiter))
        return await waiter

    async def pid(self, count: int = 1) -> int:
        """Return the pid that the ``count``-th started process printed."""
        while True:
            pids = [int(line.split()[1]) for line in self.lines if line.startswith("pid ")]
            if len(pids) >= count:
                return pids[count - 1]
            await self.wait_for_next()

    async def wait_for_next(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(("", waiter))
        await waiter


# ---------------------------------------------------------------------------- readiness


async def test_ready_at_start():
    """Without a ready pattern the child is ready once the process exists."""
    child = ProcessChild(python(SLEEPER))
    events = EventLog()
    supervisor = Supervisor([child.child_spec("sleeper")], on_event=events)

    async with supervisor:
        await events.wait_for(ChildReady, "sleeper")
        pid = child.pid

        assert pid is not None
        assert process_state(pid) not in (None, "Z")

    assert child.pid is None
    assert process_state(pid) is None


async def test_ready_line_gates_readiness(tmp_path):
    """With a ready pattern the child is ready only once a stdout line matches it."""
    go = tmp_path / "go"
    code = (
        "import os, time\n"
        "print('loading', flush=True)\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.01)\n"
        "print('listening on 8080', flush=True)\n"
        "time.sleep(600)\n"
    )
    output = Output()
    child = ProcessChild(python(code), ready=r"listening on \d+", on_output=output)
    events = EventLog()
    supervisor = Supervisor([child.child_spec("server")], on_event=events)

    starting = asyncio.create_task(supervisor.start())
    await output.wait_for("loading")
    await settle()

    assert not starting.done()
    assert events.count(ChildReady) == 0

    go.touch()
    await starting

    assert output.lines == ["loading", "listening on 8080"]
    assert events.count(ChildReady, "server") == 1
    await supervisor.stop()


async def test_exit_before_ready_fails_start():
    """A process that exits before its ready line fails the start with ProcessExited."""
    child = ProcessChild(python("import sys; print('no config'); sys.exit(4)"), ready="ready", on_output=Output())
    supervisor = Supervisor([child.child_spec("server")])

    with pytest.raises(ChildStartError) as caught:
        await supervisor.start()

    reason = caught.value.reason
    assert isinstance(reason, ProcessExited)
    assert reason.returncode == 4
    assert reason.signal is None
    assert reason.ready is False
    assert "exited with code 4 before it was ready" in str(reason)


async def test_start_timeout_kills_process(clock):
    """A process that never prints its ready line is killed when its start times out."""
    output = Output()
    child = ProcessChild(python(SLEEPER), ready="never printed", on_output=output)
    supervisor = Supervisor([child.child_spec("server", start_timeout=1.0)], clock=clock)

    starting = asyncio.create_task(supervisor.start())
    pid = await output.pid()
    await output.wait_for("ready")
    clock.advance(1.0)

    with pytest.raises(ChildStartError) as caught:
        await starting

    assert isinstance(caught.value.reason, StartTimeout)
    assert process_state(pid) is None
    assert child.returncode == -signal.SIGTERM


async def test_missing_program_fails_start():
    """A command that cannot be executed fails the start with the OS error."""
    child = ProcessChild(["/nonexistent/program", "--flag"])
    supervisor = Supervisor([child.child_spec("missing")])

    with pytest.raises(ChildStartError) as caught:
        await supervisor.start()

    assert isinstance(caught.value.reason, FileNotFoundError)


async def test_output_lines_in_order():
    """on_output gets every stdout line in order, including a last line without a newline."""
    output = Output()
    child = ProcessChild(python("import sys; sys.stdout.write('a\\nb\\r\\nc')"), on_output=output)
    events = EventLog()
    supervisor = Supervisor([child.child_spec("writer", restart="temporary")], on_event=events)

    async with supervisor:
        await events.wait_for(ChildExited, "writer")
        await output.wait_for("c")

    assert output.lines == ["a", "b", "c"]


# ---------------------------------------------------------------------------- exits and restarts


@pytest.fixture
def pidfd_watcher():
    """asyncio's pidfd child watcher, as docs/ACTORS_AND_PROCESSES.md advises on CPython 3.11."""
    if sys.version_info >= (3, 12):
        yield  # already the default
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        pytest.skip("this kernel or platform has no pidfd_open()")
    policy = asyncio.get_event_loop_policy()
    previous = policy.get_child_watcher()
    policy.set_child_watcher(asyncio.PidfdChildWatcher())
    try:
        yield
    finally:
        policy.set_child_watcher(previous)


async def test_killed_from_outside_restarted():
    """SIGKILL from another process is the exit reason, and the child is restarted."""
    await check_killed_from_outside_restarted()


async def test_killed_restarted_with_pidfd_watcher(pidfd_watcher):
    """The same with the pidfd child watcher: exit reason, restart, nothing left running."""
    await check_killed_from_outside_restarted()


async def check_killed_from_outside_restarted():
    output = Output()
    child = ProcessChild(python(SLEEPER), ready="ready", on_output=output)
    events = EventLog()
    supervisor = Supervisor([child.child_spec("sleeper")], on_event=events)

    async with supervisor:
        first_pid = await output.pid(1)
        killer = await asyncio.create_subprocess_exec("kill", "-KILL", str(first_pid))
        assert await killer.wait() == 0

        exited = await events.wait_for(ChildExited, "sleeper")
        await events.wait_for(ChildReady, "sleeper", generation=2)
        second_pid = await output.pid(2)

        assert isinstance(exited.reason, ProcessExited)
        assert exited.abnormal is True
        assert exited.reason.returncode == -signal.SIGKILL
        assert exited.reason.signal is signal.SIGKILL
        assert exited.reason.pid == first_pid
        assert exited.reason.ready is True
        assert "killed by SIGKILL" in str(exited.reason)
        assert process_state(first_pid) is None
        assert second_pid != first_pid
        assert child.pid == second_pid

    assert process_state(second_pid) is None


async def test_exit_code_is_reason():
    """A non-zero exit status is an abnormal exit whose reason carries the code."""
    child = ProcessChild(python("import sys; sys.exit(3)"))
    events = EventLog()
    supervisor = Supervisor([child.child_spec("job", restart="temporary")], on_event=events)

    async with supervisor:
        exited = await events.wait_for(ChildExited, "job")

    assert isinstance(exited.reason, ProcessExited)
    assert exited.reason.returncode == 3
    assert exited.reason.signal is None
    assert exited.abnormal is True
    assert child.returncode == 3


async def test_exit_zero_is_normal():
    """Exit status 0 is a normal exit, so a transient child is not restarted."""
    child = ProcessChild(python("pass"))
    events = EventLog()
    supervisor = Supervisor([child.child_spec("job", restart="transient")], on_event=events)

    async with supervisor:
        exited = await events.wait_for(ChildExited, "job")
        await settle()

        assert exited.reason is None
        assert exited.abnormal is False
        assert events.count(ChildReady, "job") == 1


async def test_grandchild_holding_stdout_does_not_delay_exit():
    """The exit is seen when the process ends, even while a grandchild keeps its stdout open."""
    grandchild = "import time; time.sleep(600)"
    code = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {grandchild!r}])\n"
        "print('grandchild', child.pid, flush=True)\n"
        "sys.exit(5)\n"
    )
    output = Output()
    child = ProcessChild(python(code), on_output=output)
    events = EventLog()
    supervisor = Supervisor([child.child_spec("parent", restart="temporary")], on_event=events)
    grandchild_pid = None
    try:
        async with supervisor:
            grandchild_pid = int((await output.wait_for("grandchild")).split()[1])
            exited = await events.wait_for(ChildExited, "parent")

            assert exited.reason.returncode == 5
            assert process_state(grandchild_pid) not in (None, "Z")
    finally:
        if grandchild_pid is not None:
            os.kill(grandchild_pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- shutdown


async def test_shutdown_sends_sigterm():
    """Stopping the supervisor ends the process with SIGTERM and reaps it."""
    output = Output()
    child = ProcessChild(python(SLEEPER), ready="ready", on_output=output)
    events = EventLog()
    supervisor = Supervisor([child.child_spec("sleeper", shutdown=30)], on_event=events)

    async with supervisor:
        pid = await output.pid()

    assert child.returncode == -signal.SIGTERM
    assert process_state(pid) is None
    stopped = events.select(ChildStopped, "sleeper")
    assert len(stopped) == 1
    assert stopped[0].timed_out is False


async def test_sigterm_ignored_then_sigkill(clock, caplog):
    """A process that ignores SIGTERM gets SIGKILL exactly when its shutdown time ends."""
    caplog.set_level(logging.WARNING, logger="supervisor")
    output = Output()
    child = ProcessChild(python(IGNORES_SIGTERM), ready="ready", on_output=output, clock=clock)
    events = EventLog(clock)
    supervisor = Supervisor([child.child_spec("stubborn", shutdown=3.0)], clock=clock, on_event=events)
    await supervisor.start()
    pid = await output.pid()

    stopping = asyncio.create_task(supervisor.stop())
    await output.wait_for("got SIGTERM")
    clock.advance(2.999)
    await settle()

    assert not stopping.done()
    assert process_state(pid) not in (None, "Z")

    clock.advance(0.001)
    await stopping

    assert child.returncode == -signal.SIGKILL
    assert process_state(pid) is None
    assert events.select(ChildStopped, "stubborn")[0].timed_out is False
    warnings = [record.getMessage() for record in caplog.records if str(pid) in record.getMessage()]
    assert len(warnings) == 1
    assert "SIGKILL" in warnings[0]


async def test_brutal_kill_skips_sigterm():
    """shutdown=BRUTAL_KILL sends SIGKILL at once, without SIGTERM."""
    output = Output()
    child = ProcessChild(python(IGNORES_SIGTERM), ready="ready", on_output=output)
    supervisor = Supervisor([child.child_spec("stubborn", shutdown=BRUTAL_KILL)])

    async with supervisor:
        pid = await output.pid()

    assert child.returncode == -signal.SIGKILL
    assert process_state(pid) is None
    assert "got SIGTERM" not in output.lines


async def test_owner_cancel_leaves_no_process(clock):
    """Cancelling the owner of the supervisor ends every process, one that ignores SIGTERM too."""
    plain_output = Output()
    stubborn_output = Output()
    plain = ProcessChild(python(SLEEPER), ready="ready", on_output=plain_output, clock=clock)
    stubborn = ProcessChild(python(IGNORES_SIGTERM), ready="ready", on_output=stubborn_output, clock=clock)
    supervisor = Supervisor(
        [stubborn.child_spec("stubborn", shutdown=3.0), plain.child_spec("plain", shutdown=3.0)],
        clock=clock,
    )
    entered = asyncio.get_running_loop().create_future()

    async def owner() -> None:
        async with supervisor:
            entered.set_result(None)
            await asyncio.get_running_loop().create_future()

    owner_task = asyncio.create_task(owner())
    await entered
    pids = [await plain_output.pid(), await stubborn_output.pid()]
    owner_task.cancel()
    await stubborn_output.wait_for("got SIGTERM")
    clock.advance(3.0)

    with pytest.raises(asyncio.CancelledError):
        await owner_task

    assert [process_state(pid) for pid in pids] == [None, None]
    assert plain.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL


# ---------------------------------------------------------------------------- specs and validation


@pytest.mark.parametrize(
    ("shutdown", "grace", "supervisor_wait"),
    [
        (None, 5.0, 5.0 + KILL_TIMEOUT),
        (3, 3.0, 3.0 + KILL_TIMEOUT),
        (0, 0.0, KILL_TIMEOUT),
        (BRUTAL_KILL, BRUTAL_KILL, KILL_TIMEOUT),
        ("infinity", INFINITY, INFINITY),
    ],
)
def test_child_spec_shutdown(shutdown, grace, supervisor_wait):
    """The spec's shutdown is the SIGTERM grace time plus KILL_TIMEOUT for SIGKILL and reaping."""
    child = ProcessChild(["true"])
    fields = {} if shutdown is None else {"shutdown": shutdown}

    spec = child.child_spec("job", **fields)

    assert spec.kwargs["grace"] == grace
    assert spec.shutdown == supervisor_wait
    assert spec.signals_ready is True


def test_child_spec_keeps_fields():
    """child_spec() passes the other ChildSpec fields through and validates them."""
    child = ProcessChild(["true"])

    spec = child.child_spec("job", restart="transient", start_timeout=30)

    assert spec.restart == "transient"
    assert spec.start_timeout == 30
    with pytest.raises(InvalidChildSpec) as caught:
        child.child_spec("job", restart="sometimes")
    assert caught.value.field == "restart"


@pytest.mark.parametrize("field", ["start", "args", "kwargs", "signals_ready"])
def test_child_spec_rejects_fixed_field(field):
    """child_spec() rejects the fields it sets itself."""
    with pytest.raises(InvalidChildSpec) as caught:
        ProcessChild(["true"]).child_spec("job", **{field: None})

    assert caught.value.field == field


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"command": "sleep 10"}, "command"),
        ({"command": []}, "command"),
        ({"command": ["sleep", 10]}, "command"),
        ({"ready": "("}, "ready"),
        ({"ready": 5}, "ready"),
        ({"env": {"PATH": 1}}, "env"),
        ({"cwd": 3}, "cwd"),
        ({"on_output": "print"}, "on_output"),
        ({"clock": object()}, "clock"),
    ],
)
def test_process_child_rejects_bad_value(arguments, field):
    """A bad ProcessChild argument raises InvalidChildSpec naming the field and showing the value."""
    options = {"command": ["true"], **arguments}
    command = options.pop("command")

    with pytest.raises(InvalidChildSpec) as caught:
        ProcessChild(command, **options)

    assert caught.value.field == field
    assert f"{field}={arguments[field]!r}" in str(caught.value)


def test_process_exited_describes_signal():
    """ProcessExited names the signal, or the exit code, and the command."""
    killed = ProcessExited(["sleep", "10"], 42, -signal.SIGTERM, ready=True)
    failed = ProcessExited(["sleep", "10"], 42, 2, ready=False)

    assert killed.signal is signal.SIGTERM
    assert str(killed) == "process 42 (sleep 10) was killed by SIGTERM"
    assert failed.signal is None
    assert str(failed) == "process 42 (sleep 10) exited with code 2 before it was ready"
