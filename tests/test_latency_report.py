"""tools/latency_report.py: CDF arithmetic, tables, and the files it writes."""

import datetime
import subprocess

import numpy as np
import pytest
from asv.results import Results
from asv.runner import BenchmarkResult
from matplotlib import image

from tools import latency_report
from tools.latency_report import Report, Series, StoredTable

MACHINE = "report-box"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_repository(path):
    """Create a git repository with one commit and return that commit's hash."""
    path.mkdir()
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README").write_text("report test\n")
    subprocess.run([*git, "add", "README"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "initial"], cwd=path, check=True)
    completed = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True, text=True
    )
    return completed.stdout.strip()


def write_results(results_dir, commit):
    """Write an asv results file for ``commit`` with idle and heavy rows for 1 and 10,000 children.

    Every supervised statistic is 10 us idle and 20 us heavy times the child
    count's factor (1 or 2); every baseline statistic is 2 us.
    """
    params = {"machine": MACHINE, "cpu": "Test CPU", "num_cpu": "2", "python": "3.11"}
    results = Results(params, {}, commit, 1_700_000_000_000, "3.11", "virtualenv-py3.11", {})
    started_at = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    loads, children = ["idle", "heavy"], [1, 10000]

    def add(name, param_lists, values):
        benchmark = {"name": name, "version": "1", "params": param_lists}
        result = BenchmarkResult(
            result=[True] * len(values),
            samples=[[value] for value in values],
            number=[1] * len(values),
            errcode=0,
            stderr="",
            profile=None,
        )
        results.add_result(benchmark, result, started_at=started_at, record_samples=True)

    def supervised_seconds(load, n):
        base = 10e-6 if load == "idle" else 20e-6
        return base if n == 1 else 2 * base

    for statistic in ("p50", "p95", "p99", "max"):
        add(
            f"restart_latency.OneForOneRestartLatency.track_{statistic}",
            [[repr(load) for load in loads], [repr(n) for n in children]],
            [supervised_seconds(load, n) for load in loads for n in children],
        )
        add(
            f"restart_latency.BareRerunLatency.track_{statistic}",
            [[repr(load) for load in loads]],
            [2e-6 for _ in loads],
        )
    results.save(str(results_dir))


def micros_to_ns(values):
    return [int(value * 1000) for value in values]


def synthetic_series():
    """Baseline latencies of 1..100 us at both loads, and a supervisor at exactly twice them."""
    base = micros_to_ns(range(1, 101))
    doubled = micros_to_ns(range(2, 202, 2))
    return [
        Series("idle", None, base),
        Series("idle", 1, doubled),
        Series("heavy", None, base),
        Series("heavy", 1, doubled),
    ]


def table_row(rows, load, label):
    (row,) = [row for row in rows if row[0] == load and row[1] == label]
    return row


# ---------------------------------------------------------------------- arithmetic


def test_cdf_of_distinct_values():
    x, fraction = latency_report.empirical_cdf([3.0, 1.0, 2.0])
    assert x.tolist() == [1.0, 2.0, 3.0]
    assert fraction.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_cdf_counts_ties_once():
    x, fraction = latency_report.empirical_cdf([5, 5, 1, 5])
    assert x.tolist() == [1.0, 5.0]
    assert fraction.tolist() == [0.25, 1.0]


def test_cdf_of_one_value():
    x, fraction = latency_report.empirical_cdf([7])
    assert x.tolist() == [7.0]
    assert fraction.tolist() == [1.0]


def test_exceedance_counts_values_at_or_above():
    x, fraction = latency_report.exceedance([3, 1, 2, 2])
    assert x.tolist() == [1.0, 2.0, 3.0]
    assert fraction.tolist() == [1.0, 0.75, 0.25]


def test_exceedance_ends_at_one_over_n():
    values = np.arange(1, 1001)
    _, fraction = latency_report.exceedance(values)
    assert fraction[-1] == pytest.approx(1 / 1000)
    assert np.all(np.diff(fraction) < 0)


@pytest.mark.parametrize("function", [latency_report.empirical_cdf, latency_report.exceedance])
def test_empty_sample_raises(function):
    with pytest.raises(ValueError, match="empty"):
        function([])


def test_series_percentiles_in_micros():
    points = Series("idle", 1, micros_to_ns(range(1, 101))).percentiles_us()
    assert points["p50"] == pytest.approx(50.5)
    assert points["p99"] == pytest.approx(99.01)
    assert points["max"] == pytest.approx(100.0)


# ---------------------------------------------------------------------- tables


def test_distribution_table_figures_and_ratios():
    header, rows = latency_report.distribution_table(synthetic_series())

    assert header[:7] == ["load", "series", "restarts", "p50", "p95", "p99", "max"]
    base = table_row(rows, "idle", "bare re-run (baseline)")
    assert base[2:7] == ["100", "50.5", "95.0", "99.0", "100.0"]
    assert base[7:] == ["-", "-"]
    supervised = table_row(rows, "heavy", "supervisor, 1 child")
    assert supervised[2:7] == ["100", "101.0", "190.1", "198.0", "200.0"]
    assert supervised[7:] == ["2.0x", "2.0x"]


def test_distribution_table_shows_failed_series():
    series = [Series("idle", None, micros_to_ns([1, 2])), Series("idle", 10, error="RuntimeError: timed out")]
    _, rows = latency_report.distribution_table(series)
    failed = table_row(rows, "idle", "supervisor, 10 children")
    assert failed[3] == "RuntimeError: timed out"


def test_supervised_row_without_baseline_has_no_ratio():
    _, rows = latency_report.distribution_table([Series("light", 100, micros_to_ns([5, 6]))])
    assert table_row(rows, "light", "supervisor, 100 children")[7:] == ["-", "-"]


def test_stored_tables_read_with_bench_summary(tmp_path):
    commit = make_repository(tmp_path / "repo")
    write_results(tmp_path / "results", commit)

    (table,) = latency_report.read_stored_tables(tmp_path / "results", MACHINE, commit, slo=1.0)

    assert table.error is None
    assert table.header[:6] == ["load", "children", "p50", "p95", "p99", "max"]
    heavy = [row for row in table.rows if row[0] == "heavy" and row[1] == "10,000"]
    assert heavy == [["heavy", "10,000", "40.0", "40.0", "40.0", "40.0", "2.0", "2.0", "20.0x", "20.0x", "yes"]]


def test_stored_tables_missing_commit(tmp_path):
    commit = make_repository(tmp_path / "repo")
    (tmp_path / "results" / MACHINE).mkdir(parents=True)

    (table,) = latency_report.read_stored_tables(tmp_path / "results", MACHINE, commit, slo=1.0)

    assert table.rows == []
    assert commit[:8] in table.error


# ---------------------------------------------------------------------- files


def synthetic_report(stored):
    return Report(
        provenance={"stored results of": "commit abc", "command": "python tools/latency_report.py"},
        measured_label="synthetic input",
        stored=stored,
        series=synthetic_series(),
        loads=["idle", "heavy"],
        restarts=100,
    )


def test_report_files_written(tmp_path):
    stored = [StoredTable("results.json", ["load", "children", "p99"], [["idle", "1", "12.5"]])]
    report = synthetic_report(stored)

    index = latency_report.write_report(report, tmp_path / "out")

    assert index == tmp_path / "out" / "index.html"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| idle | 1 | 12.5 |" in markdown
    assert "| heavy | supervisor, 1 child | 100 | 101.0 | 190.1 | 198.0 | 200.0 | 2.0x | 2.0x |" in markdown
    assert "- command: python tools/latency_report.py" in markdown
    page = index.read_text()
    assert '<img src="cdf-idle.png"' in page
    assert '<img src="cdf-heavy.png"' in page
    assert "<td>12.5</td>" in page


def test_report_pngs_are_valid(tmp_path):
    latency_report.write_report(synthetic_report([]), tmp_path)

    for load in ("idle", "heavy"):
        path = tmp_path / f"cdf-{load}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = image.imread(path)
        assert pixels.shape[0] > 300
        assert pixels.shape[1] > 600
        # A blank image has one colour; a drawn plot has many.
        assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 10


def test_report_shows_stored_error(tmp_path):
    report = synthetic_report([StoredTable("results/x", error="no results for commit abc")])
    latency_report.write_report(report, tmp_path)
    assert "Not available: no results for commit abc" in (tmp_path / "report.md").read_text()
    assert not report.complete


def test_report_plot_without_measurements(tmp_path):
    report = synthetic_report([])
    report.series = [Series("idle", None, error="boom"), Series("idle", 1, error="boom")]
    report.loads = ["idle"]
    latency_report.write_report(report, tmp_path)
    assert (tmp_path / "cdf-idle.png").read_bytes()[:8] == PNG_SIGNATURE


# ---------------------------------------------------------------------- command line


def test_main_measures_and_writes(tmp_path):
    commit = make_repository(tmp_path / "repo")
    write_results(tmp_path / "repo" / "results", commit)
    output = tmp_path / "report"

    status = latency_report.main(
        ["--repo", str(tmp_path / "repo"), "--machine", MACHINE, "--output", str(output),
         "--loads", "idle", "--children", "1,3", "--restarts", "20"]
    )

    assert status == latency_report.EXIT_OK
    markdown = (output / "report.md").read_text()
    assert f"commit {commit}" in markdown
    for label in ("bare re-run (baseline)", "supervisor, 1 child", "supervisor, 3 children"):
        assert f"| idle | {label} | 20 |" in markdown
    assert (output / "cdf-idle.png").read_bytes()[:8] == PNG_SIGNATURE
    assert not (output / "cdf-heavy.png").exists()


def test_main_without_stored_results_still_writes(tmp_path):
    make_repository(tmp_path / "repo")
    output = tmp_path / "report"

    status = latency_report.main(
        ["--repo", str(tmp_path / "repo"), "--machine", MACHINE, "--output", str(output),
         "--loads", "idle", "--children", "1", "--restarts", "20"]
    )

    assert status == latency_report.EXIT_INCOMPLETE
    assert "Not available: no results directory" in (output / "report.md").read_text()
    assert (output / "cdf-idle.png").exists()


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("--children", "1,x", "'x'"),
        ("--children", "0", "'0'"),
        ("--loads", "idle,busy", "'busy'"),
        ("--restarts", "0", "0"),
    ],
)
def test_invalid_option_names_value(option, value, shown, capsys):
    with pytest.raises(SystemExit) as raised:
        latency_report.parse_args([option, value])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert option in error
    assert shown in error
