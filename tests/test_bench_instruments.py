"""The benchmark suite's instruments: load generator, restart probe and crash schedule.

Async tests run through the ``asyncio.run`` hook in conftest.py.
"""

import asyncio
import os
import subprocess
import sys

import pytest

from benchmarks import _crash_loop, _restart
from benchmarks._load import LOAD_LEVELS, Load
from benchmarks._restart import RestartProbe, next_grid_point, require


def test_load_unknown_level_raises():
    with pytest.raises(ValueError, match="unknown load level 'medium'"):
        Load("medium")


@pytest.mark.parametrize("level", list(LOAD_LEVELS))
async def test_load_one_slice_per_operation_per_pass(level):
    """Every event-loop pass runs exactly one slice of each operation."""
    async with Load(level) as load:
        for _ in range(5):
            before = load.slices
            await asyncio.sleep(0)
            assert load.slices - before == LOAD_LEVELS[level]


async def test_load_stop_ends_every_task():
    load = Load("heavy")
    await load.start()
    tasks = list(load._tasks)
    assert len(tasks) == 2 * LOAD_LEVELS["heavy"]

    await load.stop()

    assert all(task.done() for task in tasks)
    slices = load.slices
    await asyncio.sleep(0)
    assert load.slices == slices


async def test_load_start_twice_raises():
    async with Load("light") as load:
        with pytest.raises(RuntimeError, match="already running"):
            await load.start()


async def test_probe_pairs_crash_with_replacement():
    probe = RestartProbe(2)
    probe.on_ready(0, 1_000)
    probe.on_ready(1, 1_500)

    probe.on_crash(1, 2_000)
    probe.on_ready(1, 2_250)

    assert probe.latencies_ns == [250]


async def test_probe_first_start_records_no_latency():
    probe = RestartProbe(1)
    probe.on_ready(0, 5_000)
    assert probe.latencies_ns == []
    assert probe.ready_count == 1


async def test_probe_crash_needs_ready_child():
    """A slot whose child is restarting cannot be crashed again."""
    probe = RestartProbe(1)
    assert probe.crash(0) is False

    trigger = probe.on_ready(0, 0)
    assert probe.crash(0) is True
    assert trigger.done()
    assert probe.crash(0) is False


async def test_probe_wait_for_readies():
    probe = RestartProbe(3)
    waiter = probe.wait_for_readies(2)
    probe.on_ready(0, 0)
    assert not waiter.done()
    probe.on_ready(1, 0)
    assert waiter.done()


async def test_probe_wait_for_latencies():
    probe = RestartProbe(1)
    waiter = probe.wait_for_latencies(2)
    probe.on_ready(0, 0)
    for time_ns in (10, 30):
        assert not waiter.done()
        probe.on_crash(0, time_ns)
        probe.on_ready(0, time_ns + 5)
    assert waiter.done()
    assert probe.latencies_ns == [5, 5]


async def test_bare_rerun_restarts_in_same_task():
    """The baseline re-runs the crashed coroutine without creating a task."""
    probe = RestartProbe(1)
    ready = probe.wait_for_readies(1)
    task = asyncio.create_task(_restart.rerun_bare_child(probe))
    await ready
    tasks_before = asyncio.all_tasks()

    restarted = probe.wait_for_readies(1)
    assert probe.crash(0)
    await restarted

    assert asyncio.all_tasks() == tasks_before
    assert len(probe.latencies_ns) == 1
    assert probe.latencies_ns[0] >= 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (10.0, 11.0),  # the first tick is one interval after the origin
        (11.0, 12.0),  # a tick on time goes to the next point
        (11.2, 12.0),
        (13.7, 14.0),  # a tick 2.7 intervals late skips the points it overran
        (9.0, 11.0),  # never before the first point
    ],
)
def test_next_grid_point(now, expected):
    assert next_grid_point(10.0, 1.0, now) == pytest.approx(expected)


def test_require_missing_name_skips():
    with pytest.raises(NotImplementedError, match="lacks NoSuchThing"):
        require("Supervisor", "NoSuchThing")


def test_require_returns_attributes():
    import supervisor

    assert require("Supervisor", "ChildSpec") == (supervisor.Supervisor, supervisor.ChildSpec)


def test_every_track_benchmark_has_unit():
    """asv shows a track_ value with its unit, read from the method or its class; "unit" is asv's placeholder."""
    from asv_runner.discovery import disc_benchmarks

    benchmarks = disc_benchmarks("benchmarks")
    units = {benchmark.name: benchmark.unit for benchmark in benchmarks if benchmark.type == "track"}

    assert "overhead.InstrumentOverhead.track_probe_on_crash" in units
    assert {name: unit for name, unit in units.items() if unit == "unit"} == {}
    assert units["overhead.InstrumentOverhead.track_probe_on_crash"] == "ns"
    assert units["overhead.IdleChildMemory.track_supervised_child"] == "bytes"


@pytest.mark.parametrize("signals_ready", [True, False])
async def test_crash_loop_finishes_both_kinds(signals_ready):
    """Both loops end after their restarts and return a positive time per restart."""
    per_restart_ns = await _crash_loop.supervised_loop(50, signals_ready)
    assert per_restart_ns > 0
    assert await _crash_loop.bare_loop(50) > 0


def test_crash_loop_prints_ratio(capsys):
    assert _crash_loop.main(["--restarts", "30", "--runs", "2"]) == 0
    output = capsys.readouterr().out
    assert "30 restarts x 2 runs, signals_ready=True" in output
    assert "ratio" in output


def test_crash_loop_rejects_zero_restarts(capsys):
    with pytest.raises(SystemExit):
        _crash_loop.main(["--restarts", "0"])
    assert "--restarts must be at least 1, got 0" in capsys.readouterr().err


def test_crash_loop_path_without_package(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _crash_loop.main(["--path", str(tmp_path)])
    assert "has no supervisor package (supervisor/__init__.py)" in capsys.readouterr().err


def test_crash_loop_reports_failed_checkout(tmp_path, capsys):
    """A restart path that raises in the measured checkout ends the run with its error."""
    import shutil

    import supervisor

    copy = tmp_path / "supervisor"
    shutil.copytree(os.path.dirname(supervisor.__file__), copy)
    source = copy / "_supervisor.py"
    source.write_text(source.read_text().replace(
        "    def _count_restart(self, child: _Child, reason: BaseException | None, now: float | None = None) -> bool:\n",
        "    def _count_restart(self, child: _Child, reason: BaseException | None, now: float | None = None) -> bool:\n"
        "        if child.restarts >= 40:\n"
        "            raise ArithmeticError('broken at restart 40')\n",
    ))
    script = (
        "import sys; from benchmarks import _crash_loop; "
        f"sys.exit(_crash_loop.main(['--restarts', '200', '--runs', '1', '--path', {str(tmp_path)!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "measurement failed: ArithmeticError: broken at restart 40" in result.stderr


def test_idle_child_memory_within_twice_bare_task():
    """An idle supervised child costs under twice a bare task (tracemalloc, deterministic).

    Every local that _child_main keeps alive while the child runs adds to this: a float held
    in its frame costs 24 bytes per child.
    """
    from benchmarks.overhead import IdleChildMemory

    benchmark = IdleChildMemory()
    cache = benchmark.setup_cache()
    benchmark.setup(cache)
    assert benchmark.track_ratio(cache) < 2.0
