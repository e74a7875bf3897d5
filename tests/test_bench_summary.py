"""tools/bench_summary.py against results files written by asv's own Results class."""

import datetime
import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asv.results import Results
from asv.runner import BenchmarkResult

from tools import bench_summary

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "bench_summary.py"
MACHINE = "summary-box"

LOADS = ["idle", "heavy"]
CHILDREN = [1, 10000]

# Medians, in seconds, stored for each statistic, load and child count. The
# samples around each median are 0.8x, 1x and 1.2x of it.
SUPERVISED = {
    "p50": {("idle", 1): 8e-6, ("idle", 10000): 9e-6, ("heavy", 1): 10e-6, ("heavy", 10000): 12e-6},
    "p95": {("idle", 1): 20e-6, ("idle", 10000): 24e-6, ("heavy", 1): 22e-6, ("heavy", 10000): 25e-6},
    "p99": {("idle", 1): 30e-6, ("idle", 10000): 40e-6, ("heavy", 1): 50e-6, ("heavy", 10000): 2.5e-3},
    "max": {("idle", 1): 60e-6, ("idle", 10000): 150e-6, ("heavy", 1): 90e-6, ("heavy", 10000): 4e-3},
}
BASELINE = {
    "p50": {"idle": 1e-6, "heavy": 2e-6},
    "p95": {"idle": 1.5e-6, "heavy": 3e-6},
    "p99": {"idle": 2e-6, "heavy": 5e-6},
    "max": {"idle": 4e-6, "heavy": 9e-6},
}


def make_repository(path):
    """Create a git repository with one commit and return that commit's hash."""
    path.mkdir()
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README").write_text("summary test\n")
    subprocess.run([*git, "add", "README"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "initial"], cwd=path, check=True)
    completed = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True, text=True
    )
    return completed.stdout.strip()


def _samples_result(values):
    """A BenchmarkResult as asv's runner builds it from {"samples": ..., "number": 1}."""
    samples = [None if value is None else [value * 0.8, value, value * 1.2] for value in values]
    return BenchmarkResult(
        result=[None if value is None else True for value in values],
        samples=samples,
        number=[None if value is None else 1 for value in values],
        errcode=0 if all(value is not None for value in values) else 1,
        stderr="",
        profile=None,
    )


def write_results(results_dir, commit, supervised=SUPERVISED, baseline=BASELINE, extra=()):
    """Write an asv results file for ``commit`` and return its path.

    ``extra`` adds more benchmarks, as (name, params, values) with ``values`` in the
    order of the parameter combinations.
    """
    params = {"machine": MACHINE, "cpu": "Test CPU", "num_cpu": "2", "python": "3.11"}
    results = Results(params, {}, commit, 1_700_000_000_000, "3.11", "virtualenv-py3.11", {})
    started_at = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

    for statistic, table in supervised.items():
        benchmark = {
            "name": f"restart_latency.OneForOneRestartLatency.track_{statistic}",
            "version": "1",
            "params": [[repr(load) for load in LOADS], [repr(n) for n in CHILDREN]],
        }
        values = [table[(load, n)] for load in LOADS for n in CHILDREN]
        results.add_result(benchmark, _samples_result(values), started_at=started_at, record_samples=True)

    for statistic, table in baseline.items():
        benchmark = {
            "name": f"restart_latency.BareRerunLatency.track_{statistic}",
            "version": "1",
            "params": [[repr(load) for load in LOADS]],
        }
        values = [table[load] for load in LOADS]
        results.add_result(benchmark, _samples_result(values), started_at=started_at, record_samples=True)

    for name, params, values in extra:
        benchmark = {"name": name, "version": "1", "params": [[repr(value) for value in axis] for axis in params]}
        results.add_result(benchmark, _samples_result(values), started_at=started_at, record_samples=True)

    results.save(str(results_dir))
    (path,) = (results_dir / MACHINE).glob(f"{commit[:8]}-*.json")
    return path


def snapshot(directory):
    """Return every file under ``directory`` with its content hash and modification time."""
    state = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            state[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


def run_script(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def repository(tmp_path):
    repo = tmp_path / "repo"
    commit = make_repository(repo)
    return repo, commit


def table_rows(output):
    """Return the table's data rows as lists of cells, keyed by (load, children)."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) == 11 and cells[0] in LOADS:
            rows[(cells[0], int(cells[1].replace(",", "")))] = cells
    return rows


def test_summary_prints_every_row(repository):
    repo, commit = repository
    write_results(repo / "results", commit)

    completed = run_script("--repo", str(repo), "--machine", MACHINE, "--slo", "0.01")

    assert completed.returncode == bench_summary.EXIT_OK, completed.stderr
    rows = table_rows(completed.stdout)
    assert sorted(rows) == [("heavy", 1), ("heavy", 10000), ("idle", 1), ("idle", 10000)]
    assert rows[("idle", 1)][2:6] == ["8.0", "20.0", "30.0", "60.0"]
    assert rows[("heavy", 10000)][2:6] == ["12.0", "25.0", "2,500.0", "4,000.0"]


def test_summary_shows_baseline_and_ratio(repository):
    repo, commit = repository
    write_results(repo / "results", commit)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    rows = table_rows(completed.stdout)
    # idle baseline: p50 1 us, p99 2 us; heavy: 2 us and 5 us.
    assert rows[("idle", 1)][6:10] == ["1.0", "2.0", "8.0x", "15.0x"]
    assert rows[("heavy", 10000)][6:10] == ["2.0", "5.0", "6.0x", "500.0x"]


def test_summary_states_units_and_source(repository):
    repo, commit = repository
    path = write_results(repo / "results", commit)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert "microseconds" in completed.stdout
    assert commit[:8] in completed.stdout
    assert str(path) in completed.stdout


def test_summary_slo_missed(repository):
    """A p99 above the SLO is marked NO and makes the exit status 1."""
    repo, commit = repository
    write_results(repo / "results", commit)

    completed = run_script("--repo", str(repo), "--machine", MACHINE, "--slo", "0.001")

    assert completed.returncode == bench_summary.EXIT_SLO_MISSED
    rows = table_rows(completed.stdout)
    assert rows[("heavy", 10000)][10] == "NO"
    assert rows[("heavy", 1)][10] == "yes"
    assert "p99 <= 0.001 s" in completed.stdout


def test_summary_failed_and_skipped_values(repository):
    """A failed combination (None) and a skipped one (NaN) are named, and p99 counts as unmet."""
    repo, commit = repository
    supervised = {statistic: dict(table) for statistic, table in SUPERVISED.items()}
    for statistic in supervised:
        supervised[statistic][("idle", 10000)] = None
        supervised[statistic][("heavy", 1)] = math.nan
    write_results(repo / "results", commit, supervised=supervised)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_SLO_MISSED
    rows = table_rows(completed.stdout)
    assert rows[("idle", 10000)][2:6] == ["failed"] * 4
    assert rows[("idle", 10000)][10] == "n/a"
    assert rows[("heavy", 1)][2:6] == ["skipped"] * 4
    assert rows[("heavy", 1)][8:10] == ["-", "-"]


def test_summary_without_baseline(repository):
    """Results without the baseline still print, with dashes in the baseline columns."""
    repo, commit = repository
    write_results(repo / "results", commit, baseline={})

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_OK
    rows = table_rows(completed.stdout)
    assert rows[("idle", 1)][6:10] == ["-", "-", "-", "-"]


def test_summary_does_not_write(repository):
    repo, commit = repository
    results_dir = repo / "results"
    write_results(results_dir, commit)
    before = snapshot(results_dir)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_OK
    assert snapshot(results_dir) == before


def test_corrupt_file_named_and_kept(repository):
    """A truncated results file is reported by name and left as it was."""
    repo, commit = repository
    path = write_results(repo / "results", commit)
    truncated = path.read_bytes()[:200]
    path.write_bytes(truncated)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_ERROR
    assert str(path) in completed.stderr
    assert "not valid JSON" in completed.stderr
    assert path.read_bytes() == truncated


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"version": 1, "results": {}}', "unsupported format version 1"),
        ('{"version": 2, "results": {}}', "invalid 'result_columns'"),
        ('{"version": 2, "result_columns": ["result", "params"], "results": {}}', "no restart-latency results"),
    ],
)
def test_malformed_file_named(repository, content, message):
    repo, commit = repository
    machine_dir = repo / "results" / MACHINE
    machine_dir.mkdir(parents=True)
    path = machine_dir / f"{commit[:8]}-virtualenv-py3.11.json"
    path.write_text(content)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_ERROR
    assert str(path) in completed.stderr
    assert message in completed.stderr


def test_missing_machine_lists_known_ones(repository):
    repo, commit = repository
    write_results(repo / "results", commit)

    completed = run_script("--repo", str(repo), "--machine", "other-box")

    assert completed.returncode == bench_summary.EXIT_ERROR
    assert str(repo / "results" / "other-box") in completed.stderr
    assert repr([MACHINE]) in completed.stderr


def test_missing_commit_results(repository):
    repo, commit = repository
    (repo / "results" / MACHINE).mkdir(parents=True)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_ERROR
    assert f"no results for commit {commit[:8]}" in completed.stderr
    assert "make bench" in completed.stderr


def test_unknown_revision(repository):
    repo, _ = repository

    completed = run_script("--repo", str(repo), "--machine", MACHINE, "--commit", "no-such-branch")

    assert completed.returncode == bench_summary.EXIT_ERROR
    assert "unknown revision 'no-such-branch'" in completed.stderr


@pytest.mark.parametrize("slo", ["0", "-1", "nan", "inf"])
def test_invalid_slo_rejected(repository, slo):
    repo, _ = repository

    completed = run_script("--repo", str(repo), "--machine", MACHINE, "--slo", slo)

    assert completed.returncode == 2
    assert f"--slo must be a positive number of seconds, got {float(slo)!r}" in completed.stderr


def test_results_option_overrides_directory(repository, tmp_path):
    repo, commit = repository
    elsewhere = tmp_path / "elsewhere"
    write_results(elsewhere, commit)

    completed = run_script("--repo", str(repo), "--machine", MACHINE, "--results", str(elsewhere))

    assert completed.returncode == bench_summary.EXIT_OK, completed.stderr
    assert str(elsewhere) in completed.stdout
    assert not os.path.exists(repo / "results")


GROUP_SIZES = [1, 100, 1000, 10000]
# Seconds per timed call. Bare start costs 1 us per child and the parallel group restart 1.5 us.
# The ordered group restart costs 3 us per child at 100 and 1,000 children, and 4 us at 10,000.
GROUP_EXTRA = [
    ("group_restart.BareTaskStart.time_bare_start", [GROUP_SIZES], [n * 1e-6 for n in GROUP_SIZES]),
    (
        "group_restart.GroupRestart.time_group_restart",
        [["one_for_all", "rest_for_one"], GROUP_SIZES],
        [3e-6, 3e-4, 3e-3, 4e-2] * 2,
    ),
    ("group_restart.ParallelGroupRestart.time_group_restart", [["one_for_all"], GROUP_SIZES], [n * 1.5e-6 for n in GROUP_SIZES]),
    ("overhead.IdleChildMemory.track_ratio", [], [1.9]),
]


def target_rows(output):
    """Return the ratio-target rows as {target: (this run, status)}."""
    rows = {}
    lines = output.split("Ratio targets", 1)[1].splitlines()
    for line in lines:
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        if len(cells) == 3 and cells[0] != "target" and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_targets_show_ratios_and_status(repository):
    repo, commit = repository
    write_results(repo / "results", commit, extra=GROUP_EXTRA)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_OK, completed.stderr
    rows = target_rows(completed.stdout)
    # p99 over base p99: idle 30/2 and 40/2, heavy 50/5 and 2,500/5.
    assert rows["one_for_one p99 within 2x of the bare re-run"] == ("10.00x to 500.00x, 0 of 4 rows within", "missed")
    assert rows["p99 at 10,000 children within 1.5x of 1 child"] == ("idle 1.33x, heavy 50.00x", "missed")
    assert rows["one_for_all per child within 2x of bare task start"] == (
        "3.00x at 100, 3.00x at 1,000, 4.00x at 10,000",
        "missed",
    )
    assert rows["the same with parallel_group_restart=True"] == ("1.50x at 100, 1.50x at 1,000, 1.50x at 10,000", "met")
    assert rows["one_for_all linear in N (per-child cost, within 1.5x)"] == (
        "3.0 µs at 1,000, 4.0 µs at 10,000: 1.33x",
        "met",
    )
    assert rows["memory per idle child within 2x of a bare task"] == ("1.90x", "met")


def test_targets_name_missing_and_failed(repository):
    """Absent benchmarks read "not measured" and a failed one "failed"; the exit status stays the SLO's."""
    repo, commit = repository
    extra = [
        ("group_restart.BareTaskStart.time_bare_start", [GROUP_SIZES], [n * 1e-6 for n in GROUP_SIZES]),
        ("group_restart.GroupRestart.time_group_restart", [["one_for_all"], GROUP_SIZES], [3e-6, None, 3e-3, 3e-2]),
        ("overhead.IdleChildMemory.track_ratio", [], [None]),
    ]
    write_results(repo / "results", commit, extra=extra)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_OK, completed.stderr
    rows = target_rows(completed.stdout)
    assert rows["one_for_all per child within 2x of bare task start"] == (
        "failed at 100, 3.00x at 1,000, 3.00x at 10,000",
        "missed",
    )
    assert rows["the same with parallel_group_restart=True"] == ("not measured", "not measured")
    assert rows["memory per idle child within 2x of a bare task"] == ("failed", "not measured")


def test_targets_without_group_results(repository):
    repo, commit = repository
    write_results(repo / "results", commit)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    rows = target_rows(completed.stdout)
    assert rows["one_for_all per child within 2x of bare task start"] == ("not measured", "not measured")
    assert rows["memory per idle child within 2x of a bare task"] == ("not measured", "not measured")
    assert "one_for_all linear in N (per-child cost, within 1.5x)" not in rows


def test_targets_incomplete_when_a_part_failed(repository):
    """A failed part that could hide a miss makes the status "incomplete", never "met"."""
    repo, commit = repository
    supervised = {statistic: dict(table) for statistic, table in SUPERVISED.items()}
    supervised["p99"][("heavy", 10000)] = None
    extra = [
        ("group_restart.BareTaskStart.time_bare_start", [GROUP_SIZES], [n * 1e-6 for n in GROUP_SIZES]),
        ("group_restart.ParallelGroupRestart.time_group_restart", [["one_for_all"], GROUP_SIZES], [1e-6, 1.5e-4, None, 1.5e-2]),
    ]
    write_results(repo / "results", commit, supervised=supervised, extra=extra)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    rows = target_rows(completed.stdout)
    assert rows["p99 at 10,000 children within 1.5x of 1 child"] == ("idle 1.33x, heavy failed", "incomplete")
    assert rows["the same with parallel_group_restart=True"] == ("1.50x at 100, failed at 1,000, 1.50x at 10,000", "incomplete")


def test_targets_zero_values_do_not_crash(repository):
    repo, commit = repository
    supervised = {statistic: dict(table) for statistic, table in SUPERVISED.items()}
    supervised["p99"][("idle", 1)] = 0.0
    extra = [
        ("group_restart.BareTaskStart.time_bare_start", [GROUP_SIZES], [n * 1e-6 for n in GROUP_SIZES]),
        ("group_restart.GroupRestart.time_group_restart", [["one_for_all"], GROUP_SIZES], [3e-6, 3e-4, 0.0, 3e-2]),
    ]
    write_results(repo / "results", commit, supervised=supervised, extra=extra)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_OK, completed.stderr
    rows = target_rows(completed.stdout)
    assert rows["p99 at 10,000 children within 1.5x of 1 child"] == ("idle invalid, heavy 50.00x", "missed")
    assert rows["one_for_all per child within 2x of bare task start"] == (
        "3.00x at 100, invalid at 1,000, 3.00x at 10,000",
        "missed",
    )


def test_targets_ratio_rounded_as_printed(repository):
    """A ratio printed as 2.00x counts as within 2x."""
    repo, commit = repository
    extra = [("overhead.IdleChildMemory.track_ratio", [], [2.004])]
    write_results(repo / "results", commit, extra=extra)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert target_rows(completed.stdout)["memory per idle child within 2x of a bare task"] == ("2.00x", "met")


def test_targets_malformed_memory_is_an_error(repository):
    repo, commit = repository
    extra = [("overhead.IdleChildMemory.track_ratio", [["a", "b"]], [1.5, 1.6])]
    path = write_results(repo / "results", commit, extra=extra)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    assert completed.returncode == bench_summary.EXIT_ERROR
    assert str(path) in completed.stderr
    assert "expected 1" in completed.stderr


def test_linearity_not_measured_when_a_size_failed(repository):
    """Linearity compares the two largest child counts and never falls back to smaller ones."""
    repo, commit = repository
    extra = [("group_restart.GroupRestart.time_group_restart", [["one_for_all"], GROUP_SIZES], [3e-6, 3e-4, 3e-3, None])]
    write_results(repo / "results", commit, extra=extra)

    completed = run_script("--repo", str(repo), "--machine", MACHINE)

    rows = target_rows(completed.stdout)
    assert rows["one_for_all linear in N (per-child cost, within 1.5x)"] == ("failed at 10,000", "not measured")
