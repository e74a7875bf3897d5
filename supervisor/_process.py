"""OS processes as supervised children, run with asyncio's subprocess support."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from ._clock import Clock, MonotonicClock
from ._errors import InvalidChildSpec, SupervisorError
from ._spec import BRUTAL_KILL, INFINITY, ChildSpec
from ._supervisor import TaskStatus

__all__ = ["ProcessChild", "ProcessExited", "KILL_TIMEOUT"]

logger = logging.getLogger("supervisor")

KILL_TIMEOUT = 2.0
"""Seconds a supervisor allows for SIGKILL and reaping, on top of the SIGTERM grace time."""

# A line longer than this is passed on in pieces of this size, so output without newlines
# cannot grow the buffer without bound.
MAX_LINE_BYTES = 65536


class ProcessExited(SupervisorError):
    """A child process ended on its own with a non-zero status: the child's exit reason.

    ``returncode`` is the status as asyncio reports it (negative: killed by a signal);
    ``signal`` is that ``signal.Signals`` member, or ``None`` for a plain exit code.
    ``ready`` is whether the process had become ready before it ended.
    """

    def __init__(self, command: Sequence[str], pid: int, returncode: int, *, ready: bool) -> None:
        self.command = tuple(command)
        self.pid = pid
        self.returncode = returncode
        self.ready = ready
        self.signal: signal.Signals | None = None
        if returncode < 0:
            try:
                self.signal = signal.Signals(-returncode)
            except ValueError:
                pass
        if returncode < 0:
            name = self.signal.name if self.signal is not None else f"signal {-returncode}"
            outcome = f"was killed by {name}"
        else:
            outcome = f"exited with code {returncode}"
        when = "" if ready else " before it was ready"
        super().__init__(f"process {pid} ({shlex.join(self.command)}) {outcome}{when}")


class _ProcessProtocol(asyncio.SubprocessProtocol):
    # Receives the process's stdout and its exit by push from the event loop. Exit waiters
    # do not wait for the pipes to close, unlike asyncio.subprocess.Process.wait() on
    # CPython 3.11, which a grandchild holding stdout open would delay without limit.

    def __init__(self, ready: re.Pattern[str] | None, output: Callable[[str], object]) -> None:
        self._pattern = ready
        self._output = output
        self._buffer = bytearray()
        self._transport: asyncio.SubprocessTransport | None = None
        self.ready = ready is None
        self.returncode: int | None = None
        self._ready_waiter: asyncio.Future[bool] | None = None
        self._exit_waiters: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            self._line(bytes(buffer[start:end]))
            start = end + 1
        del buffer[:start]
        while len(buffer) >= MAX_LINE_BYTES:
            self._line(bytes(buffer[:MAX_LINE_BYTES]))
            del buffer[:MAX_LINE_BYTES]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self._buffer:
            line = bytes(self._buffer)
            self._buffer.clear()
            self._line(line)

    def process_exited(self) -> None:
        assert self._transport is not None
        self.returncode = self._transport.get_returncode()
        self._resolve_ready(False)
        waiters, self._exit_waiters = self._exit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _line(self, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        if not self.ready and self._pattern is not None and self._pattern.search(text):
            self.ready = True
            self._resolve_ready(True)
        try:
            self._output(text)
        except Exception as error:
            asyncio.get_running_loop().call_exception_handler(
                {"message": "on_output callback of a process child raised", "exception": error}
            )

    def _resolve_ready(self, ready: bool) -> None:
        waiter = self._ready_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(ready)

    async def wait_ready(self) -> bool:
        """Wait until the readiness line arrives (True) or the process exits first (False)."""
        if self.ready or self.returncode is not None:
            return self.ready
        self._ready_waiter = asyncio.get_running_loop().create_future()
        try:
            return await self._ready_waiter
        finally:
            self._ready_waiter = None

    async def wait_exit(self, clock: Clock | None = None, timeout: float | None = None) -> bool:
        """Wait until the process has exited, at most ``timeout`` seconds; return whether it has."""
        if self.returncode is not None:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._exit_waiters.append(waiter)
        timer = None
        if timeout is not None and clock is not None:
            timer = clock.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
        return self.returncode is not None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _write_stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _check_command(command: Any) -> tuple[str, ...]:
    if isinstance(command, (str, bytes)) or not isinstance(command, Sequence):
        raise InvalidChildSpec(
            "command", command, "expected a sequence of arguments such as ['sleep', '10'], not a single string"
        )
    if not command:
        raise InvalidChildSpec("command", command, "expected at least the program to run")
    arguments = []
    for argument in command:
        if not isinstance(argument, (str, os.PathLike)):
            raise InvalidChildSpec("command", command, f"argument {argument!r} is not a str or path")
        arguments.append(os.fspath(argument))
    return tuple(arguments)


def _check_ready(ready: Any) -> re.Pattern[str] | None:
    if ready is None or isinstance(ready, re.Pattern):
        return ready
    if not isinstance(ready, str):
        raise InvalidChildSpec("ready", ready, "expected None, a regular expression string or a compiled pattern")
    try:
        return re.compile(ready)
    except re.error as error:
        raise InvalidChildSpec("ready", ready, f"invalid regular expression: {error}") from None


class ProcessChild:
    """A command run as an OS process under a supervisor; ``child_spec()`` returns its spec.

    ``command`` is the program and its arguments, run without a shell, with stdin from
    ``/dev/null`` and stderr inherited. ``ready`` decides when the child is ready: ``None``
    (default) as soon as the process exists, or a regular expression that a line of its
    stdout must match (``re.search``). When ``ready`` or ``on_output`` is given, stdout is
    read through a pipe and every line, without its line ending, goes to
    ``on_output(line)``, or to this program's stdout if ``on_output`` is None. Otherwise
    the process inherits stdout. ``env`` replaces the environment when given; ``cwd`` sets the
    working directory. ``clock`` times the SIGTERM grace period (default: the event loop's
    monotonic time).

    An exit with status 0 is a normal exit; any other status, or death by a signal, is an
    abnormal exit whose reason is ``ProcessExited``. The exit is seen when the event loop
    reports it, without polling. On CPython 3.11 asyncio's default child watcher can report
    it seconds late while the loop is busy. docs/ACTORS_AND_PROCESSES.md shows how to
    install the pidfd watcher, the default from 3.12.

    A ``ProcessChild`` runs one process at a time: give its spec to one supervisor only.
    """

    def __init__(
        self,
        command: Sequence[str | os.PathLike[str]],
        *,
        ready: str | re.Pattern[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        on_output: Callable[[str], object] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.command = _check_command(command)
        self._ready = _check_ready(ready)
        if env is not None and (
            not isinstance(env, Mapping)
            or not all(isinstance(key, str) and isinstance(value, str) for key, value in env.items())
        ):
            raise InvalidChildSpec("env", env, "expected a mapping of str to str, or None to inherit")
        if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
            raise InvalidChildSpec("cwd", cwd, "expected a path or None")
        if on_output is not None and not callable(on_output):
            raise InvalidChildSpec("on_output", on_output, "expected a callable that takes one line, or None")
        if clock is None:
            clock = MonotonicClock()
        elif not callable(getattr(clock, "call_later", None)):
            raise InvalidChildSpec("clock", clock, "expected an object with now() and call_later()")
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._on_output = on_output
        self._clock = clock
        self._pid: int | None = None
        self._returncode: int | None = None

    @property
    def pid(self) -> int | None:
        """The process id of the running process, or None."""
        return self._pid

    @property
    def returncode(self) -> int | None:
        """The exit status of the last process that ended (negative: the signal), or None."""
        return self._returncode

    def __repr__(self) -> str:
        state = f"pid={self._pid}" if self._pid is not None else f"returncode={self._returncode}"
        return f"<ProcessChild {shlex.join(self.command)!r} {state}>"

    def child_spec(self, id: Hashable, **fields: Any) -> ChildSpec:
        """Return a spec that runs the command as a child with the given ``id``.

        ``fields`` are the other ``ChildSpec`` fields. ``shutdown`` keeps its meaning for
        the process: seconds (default 5) between SIGTERM and SIGKILL, ``BRUTAL_KILL`` for
        SIGKILL at once, or ``INFINITY`` to wait after SIGTERM without limit. The returned
        spec's ``shutdown`` is that grace time plus ``KILL_TIMEOUT`` (none for
        ``INFINITY``), so the supervisor waits for the kill and the reaping of the process
        instead of abandoning its task first. ``start_timeout`` bounds the wait for the
        readiness line. ``start``, ``args``, ``kwargs`` and ``signals_ready`` are set here
        and cannot be given.
        """
        for field_name in ("start", "args", "kwargs", "signals_ready"):
            if field_name in fields:
                raise InvalidChildSpec(
                    field_name, fields[field_name], "is set by ProcessChild.child_spec() and cannot be given"
                )
        # Build the spec as given first: ChildSpec validates the fields and resolves the
        # default shutdown, which becomes the SIGTERM grace time.
        spec = ChildSpec(id, self._run, signals_ready=True, **fields)
        grace = spec.shutdown
        if grace is INFINITY:
            supervisor_wait: Any = INFINITY
        elif grace is BRUTAL_KILL:
            supervisor_wait = KILL_TIMEOUT
        else:
            supervisor_wait = grace + KILL_TIMEOUT  # type: ignore[operator]
        return dataclasses.replace(spec, kwargs={"grace": grace}, shutdown=supervisor_wait)

    async def _run(self, *, grace: Any, task_status: TaskStatus) -> None:
        loop = asyncio.get_running_loop()
        piped = self._ready is not None or self._on_output is not None
        protocol = _ProcessProtocol(self._ready, self._on_output or _write_stdout)
        # If this await is cancelled, asyncio kills and reaps the process it started.
        transport, _ = await loop.subprocess_exec(
            lambda: protocol,
            *self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else None,
            stderr=None,
            env=self._env,
            cwd=self._cwd,
        )
        pid = transport.get_pid()
        self._pid = pid
        ready = False
        try:
            ready = await protocol.wait_ready()
            if ready:
                task_status.started()
                await protocol.wait_exit()
        except BaseException:
            await self._stop(protocol, pid, grace)
            raise
        finally:
            transport.close()
            self._pid = None
            self._returncode = protocol.returncode

        returncode = protocol.returncode
        assert returncode is not None
        if returncode != 0:
            raise ProcessExited(self.command, pid, returncode, ready=ready)

    async def _stop(self, protocol: _ProcessProtocol, pid: int, grace: Any) -> None:
        # Cancelled (the supervisor stops the child, or its start timed out) or failed:
        # the process must be gone before this task ends.
        if protocol.returncode is not None:
            return
        try:
            if grace is BRUTAL_KILL:
                _signal(protocol, pid, signal.SIGKILL)
            else:
                _signal(protocol, pid, signal.SIGTERM)
                timeout = None if grace is INFINITY else float(grace)
                if timeout is not None and not await protocol.wait_exit(self._clock, timeout):
                    logger.warning(
                        "process %d (%s) did not exit within %s s of SIGTERM; sending SIGKILL",
                        pid, shlex.join(self.command), timeout,
                    )
                    _signal(protocol, pid, signal.SIGKILL)
            await protocol.wait_exit()
        except BaseException:
            # Cancelled again while waiting, for example by the event loop shutting down:
            # kill now. asyncio's child watcher still reaps the process.
            _signal(protocol, pid, signal.SIGKILL)
            raise


def _signal(protocol: _ProcessProtocol, pid: int, signum: signal.Signals) -> None:
    # os.kill rather than the transport's send_signal(): Popen.send_signal() polls first,
    # which can reap the process before asyncio's child watcher sees it exit.
    if protocol.returncode is not None:
        return
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
