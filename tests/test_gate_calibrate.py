"""The calibration's delay injection and its summary, without asv runs."""

import asyncio
import json
import os
import re
import subprocess
import sys
import types

import pytest

from tools.gate.calibrate import (
    _exit_code,
    check_resume,
    delay_patch,
    load_resume,
    render_summary,
    render_totals,
    summarize,
    totals,
)
from tools.gate.report import EXIT_BROKEN, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE
from tools.gate.runner import GateUsageError

MODULE_SOURCE = """
class Supervisor:
    def count(self, value):
        return value + 1

    async def restart(self, value):
        return value * 2


def helper(value):
    return -value
"""


def load_patched(qualname, delay_ns=1000):
    module = types.ModuleType("patched_for_test")
    exec(MODULE_SOURCE + delay_patch(qualname, delay_ns), module.__dict__)
    return module


def test_delay_patch_wraps_method():
    module = load_patched("Supervisor.count")
    method = module.Supervisor.count
    assert method.gate_calibration_delay_ns == 1000
    assert method.__name__ == "count"
    assert module.Supervisor().count(41) == 42


def test_delay_patch_wraps_coroutine_method():
    module = load_patched("Supervisor.restart")
    assert asyncio.iscoroutinefunction(module.Supervisor.restart)
    assert asyncio.run(module.Supervisor().restart(21)) == 42


def test_delay_patch_wraps_module_function():
    module = load_patched("helper", delay_ns=5)
    assert module.helper.gate_calibration_delay_ns == 5
    assert module.helper(3) == -3


def test_delay_patch_unknown_name_raises():
    with pytest.raises(AttributeError):
        load_patched("Supervisor.no_such_method")


def gate_json(exit_code, rows):
    """A gate report's JSON with rows given as (load, before, verdict)."""
    return {
        "exit_code": exit_code,
        "comparisons": [
            {
                "benchmark": "restart.Latency.track_p99",
                "params": {"load": load},
                "env": "py3.11",
                "before": before,
                "verdict": verdict,
            }
            for load, before, verdict in rows
        ],
    }


def test_summary_counts_false_alarms_and_detections():
    same = [
        gate_json(0, [("'idle'", 1e-4, "unchanged"), ("'heavy'", 1e-3, "unchanged")]),
        gate_json(1, [("'idle'", 1e-4, "regression"), ("'heavy'", 1e-3, "unchanged")]),
    ]
    # 250 us is +250% of idle's p99 and +25% of heavy's; 50 us is +50% and +5%.
    delayed = {
        25.0: [
            gate_json(1, [("'idle'", 1e-4, "regression"), ("'heavy'", 1e-3, "regression")]),
            gate_json(1, [("'idle'", 1e-4, "regression"), ("'heavy'", 1e-3, "regression")]),
        ],
        5.0: [
            gate_json(1, [("'idle'", 1e-4, "regression"), ("'heavy'", 1e-3, "unchanged")]),
            gate_json(2, [("'idle'", 1e-4, "regression"), ("'heavy'", 1e-3, "unchanged")]),
        ],
    }
    summary = summarize(same, delayed, {25.0: 250_000, 5.0: 50_000})
    assert summary["false_alarm_runs"] == 1
    assert summary["broken_runs"] == 1
    assert summary["missed_at_or_above_25_percent"] == 0
    assert summary["smallest_reliable_relative_size"] == pytest.approx(0.25)
    heavy_5 = [
        row for row in summary["detections"]
        if row["level_percent"] == 5.0 and "heavy" in row["row"]
    ]
    assert heavy_5[0]["caught"] == 0
    assert heavy_5[0]["relative_size"] == pytest.approx(0.05)


def test_summary_reports_missed_large_regression():
    same = [gate_json(0, [("'idle'", 1e-4, "unchanged")])]
    delayed = {30.0: [gate_json(0, [("'idle'", 1e-4, "unchanged")])]}
    summary = summarize(same, delayed, {30.0: 30_000})
    assert summary["missed_at_or_above_25_percent"] == 1
    assert summary["smallest_reliable_relative_size"] is None
    markdown = render_summary(
        summary,
        {
            "revision": "a" * 40,
            "machine": "box",
            "rounds": 4,
            "min_effect": 0.1,
            "alpha": 0.01,
            "delay_site": "m:f",
            "reference_p99": 1e-4,
        },
    )
    assert "False alarms: 0 of 1 same-code runs." in markdown
    assert "| 30% | 30.0 µs | `restart.Latency.track_p99(load='idle') [py3.11]` |" in markdown
    assert "| 0/1 |" in markdown


def test_summary_ignores_rows_the_delay_cannot_reach():
    same = [gate_json(0, [("'idle'", 1e-4, "unchanged")])]
    same[0]["comparisons"].append(
        {"benchmark": "restart.Bare.track_p99", "params": {"load": "'idle'"}, "env": "py3.11",
         "before": 3e-6, "verdict": "unchanged"}
    )
    delayed_runs = [gate_json(1, [("'idle'", 1e-4, "regression")])]
    summary = summarize(same, {25.0: delayed_runs}, {25.0: 25_000}, delayed=r"\.Latency\.")
    assert [row["row"] for row in summary["detections"]] == [
        "restart.Latency.track_p99(load='idle') [py3.11]"
    ]
    assert summary["missed_at_or_above_25_percent"] == 0


def test_summary_counts_flagged_runs():
    pooled = {
        "benchmark": "restart.Latency.track_p99", "params": [], "pooled": 2,
        "env": "py3.11", "before": 2e-4, "verdict": "regression",
    }
    same = [gate_json(0, [("'idle'", 1e-4, "unchanged")])]
    same[0]["comparisons"].append({**pooled, "verdict": "unchanged"})
    flagged = gate_json(1, [("'idle'", 1e-4, "unchanged")])
    flagged["comparisons"].append(pooled)
    delayed = {25.0: [flagged, gate_json(0, [("'idle'", 1e-4, "unchanged")])]}

    summary = summarize(same, delayed, {25.0: 50_000})

    assert summary["delay_runs"] == {"25.0": 2}
    assert summary["delay_runs_flagged"] == {"25.0": 1}
    rows = {row["row"]: row["caught"] for row in summary["detections"]}
    assert rows == {
        "restart.Latency.track_p99(load='idle') [py3.11]": 0,
        "restart.Latency.track_p99(all 2 parameter sets, pooled) [py3.11]": 1,
    }
    markdown = render_summary(
        summary,
        {"revision": "a" * 40, "machine": "box", "rounds": 8, "min_effect": 0.1, "alpha": 0.01,
         "delay_site": "m:f", "reference_p99": 1e-4, "runs": 20},
    )
    assert "- Delay commits at +25% failed by the gate (exit code 1): 1 of 2 runs." in markdown
    assert "- Cycles completed: 1 of 20 planned" in markdown


def test_exit_code_judges_whole_runs():
    same = [gate_json(0, [("'idle'", 1e-4, "unchanged"), ("'heavy'", 1e-4, "unchanged")])]
    # The gate failed the delay commit although one single row missed it.
    caught = gate_json(1, [("'idle'", 1e-4, "regression"), ("'heavy'", 1e-3, "unchanged")])
    passed = gate_json(0, [("'idle'", 1e-4, "unchanged"), ("'heavy'", 1e-3, "unchanged")])

    summary = summarize(same, {25.0: [caught]}, {25.0: 25_000})
    assert summary["missed_at_or_above_25_percent"] == 1
    assert _exit_code(summary) == EXIT_OK
    assert _exit_code(summarize(same, {25.0: [caught, passed]}, {25.0: 25_000})) == EXIT_REGRESSION
    # A smaller level that slips through is reported, not a failure of the calibration.
    two_levels = summarize(same, {25.0: [caught], 10.0: [passed]}, {25.0: 25_000, 10.0: 10_000})
    assert _exit_code(two_levels) == EXIT_OK
    alarmed = [gate_json(1, [("'idle'", 1e-4, "regression")])]
    assert _exit_code(summarize(alarmed, {25.0: [caught]}, {25.0: 25_000})) == EXIT_REGRESSION
    assert _exit_code(summarize(same, {25.0: [gate_json(2, [])]}, {25.0: 25_000})) == EXIT_BROKEN


CONTEXT = {
    "revision": "a" * 40, "machine": "box", "rounds": 8, "min_effect": 0.1, "alpha": 0.01,
    "select": "track_p99", "delay_site": "m:f", "delayed": "Latency", "reference_p99": 1e-4,
    "runs": 20, "python": "3.11.7",
}


def write_calibration(tmp_path, context=CONTEXT, cycles=2):
    same = [gate_json(0, [("'idle'", 1e-4, "unchanged")]) for _ in range(cycles)]
    delayed = {25.0: [gate_json(1, [("'idle'", 1e-4, "regression")]) for _ in range(cycles)]}
    summary = summarize(same, delayed, {25.0: 25_000})
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({
        "context": context, "summary": summary, "same_code_reports": same,
        "delay_reports": {"25.0": delayed[25.0]},
    }))
    return path


def test_resume_reads_runs_and_delays(tmp_path):
    earlier = load_resume(str(write_calibration(tmp_path)))
    assert len(earlier["same_reports"]) == 2
    assert len(earlier["level_reports"][25.0]) == 2
    # Taken from the detection rows when the context does not list them.
    assert earlier["delays"] == {25.0: 25_000}


def test_resume_prefers_stored_delays(tmp_path):
    path = write_calibration(tmp_path, {**CONTEXT, "delays_ns": {"25.0": 25_000}})
    assert load_resume(str(path))["delays"] == {25.0: 25_000}


def test_resume_rejects_edited_delay(tmp_path):
    path = write_calibration(tmp_path, {**CONTEXT, "delays_ns": {"25": 24_000}})
    with pytest.raises(GateUsageError, match="its delay at 25% is 24000 ns, but 25% of its reference_p99"):
        load_resume(str(path))


def test_resume_truncated_file_names_it(tmp_path):
    path = write_calibration(tmp_path)
    path.write_text(path.read_text()[:200])
    with pytest.raises(GateUsageError, match="cannot resume from the calibration .*calibration.json"):
        load_resume(str(path))


def test_resume_missing_context_field(tmp_path):
    context = {key: value for key, value in CONTEXT.items() if key != "reference_p99"}
    with pytest.raises(GateUsageError, match="lacks reference_p99"):
        load_resume(str(write_calibration(tmp_path, context)))


@pytest.mark.parametrize(
    ("field", "value"),
    [("machine", "other"), ("rounds", 6), ("alpha", 0.05), ("min_effect", 0.2),
     ("delay_site", "m:g"), ("delayed", None), ("select", "track_p50")],
)
def test_resume_rejects_changed_setting(tmp_path, field, value):
    earlier = load_resume(str(write_calibration(tmp_path)))
    with pytest.raises(GateUsageError, match=f"it has {field}=.*this run {field}={value!r}"):
        check_resume(earlier, {**CONTEXT, field: value}, [25.0])


def test_resume_rejects_other_levels_and_python(tmp_path):
    earlier = load_resume(str(write_calibration(tmp_path)))
    with pytest.raises(GateUsageError, match="delay levels 25%, this run 10, 25%"):
        check_resume(earlier, CONTEXT, [25.0, 10.0])
    with pytest.raises(GateUsageError, match="Python '3.11.7', this run uses '3.12.1'"):
        check_resume(earlier, {**CONTEXT, "python": "3.12.1"}, [25.0])
    # Another patch release of the same Python continues the calibration.
    check_resume(earlier, {**CONTEXT, "python": "3.11.9"}, [25.0])


def test_resume_skips_fields_older_files_lack(tmp_path):
    context = {key: value for key, value in CONTEXT.items() if key != "select"}
    earlier = load_resume(str(write_calibration(tmp_path, context)))
    check_resume(earlier, {**CONTEXT, "select": "anything", "higher_is_better": []}, [25.0])


def test_summary_lists_resumed_parts():
    summary = summarize(
        [gate_json(0, [("'idle'", 1e-4, "unchanged")])],
        {25.0: [gate_json(1, [("'idle'", 1e-4, "regression")])]},
        {25.0: 25_000},
    )
    parts = [{"started": None, "cycles": 6}, {"started": "2026-12-05T02:00:00Z", "cycles": 8}]
    markdown = render_summary(summary, {**CONTEXT, "parts": parts})
    assert (
        "- Measured in parts, continued with `--resume`: 6 cycle(s) started at an unrecorded "
        "time, 8 cycle(s) started 2026-12-05T02:00:00Z." in markdown
    )
    assert "Measured in parts" not in render_summary(summary, {**CONTEXT, "parts": parts[1:]})


def row(benchmark, load, verdict, ratio, p_value, pooled=0):
    """A gate report's row with the fields the totals read."""
    return {
        "benchmark": benchmark, "params": [] if pooled else {"load": load}, "env": "py3.11",
        "before": 1e-4, "verdict": verdict, "ratio": ratio, "p_value": p_value,
        "p_value_unadjusted": p_value / 4, "pooled": pooled,
    }


def run_of(*rows, exit_code=0):
    return {"exit_code": exit_code, "comparisons": list(rows)}


LATENCY, BARE = "restart.Latency.track_p99", "restart.Bare.track_p99"


def test_totals_split_single_pooled_and_unchanged_rows():
    same = [
        run_of(row(LATENCY, "'idle'", "unchanged", 0.9, 0.8), row(BARE, "'idle'", "unchanged", 1.3, 0.2),
               row(LATENCY, "", "unchanged", 1.1, 0.6, pooled=2)),
        run_of(row(LATENCY, "'idle'", "unchanged", 1.2, 0.04), row(BARE, "'idle'", "unchanged", 1.0, 1.0),
               row(LATENCY, "", "unchanged", 0.95, 0.3, pooled=2)),
    ]
    delayed = [
        run_of(row(LATENCY, "'idle'", "regression", 1.6, 1e-5), row(LATENCY, "'heavy'", "unchanged", 1.2, 0.5),
               row(BARE, "'idle'", "unchanged", 1.1, 0.9), row(LATENCY, "", "regression", 1.4, 1e-6, pooled=2),
               exit_code=1),
        run_of(row(LATENCY, "'idle'", "regression", 1.8, 1e-4), row(LATENCY, "'heavy'", "regression", 1.5, 1e-3),
               row(BARE, "'idle'", "regression", 1.3, 1e-3), row(LATENCY, "", "regression", 1.7, 1e-8, pooled=2),
               exit_code=1),
        run_of(row(LATENCY, "'idle'", "unchanged", 1.1, 0.3), row(LATENCY, "'heavy'", "unchanged", 1.05, 0.6),
               row(BARE, "'idle'", "unchanged", 0.9, 1.0), row(LATENCY, "", "unchanged", 1.08, 0.2, pooled=2)),
    ]
    parts = [{"started": None, "cycles": 1}, {"started": "2026-12-05T08:00:00Z", "cycles": 1}]

    data = totals(same, {25.0: delayed}, r"\.Latency\.", parts)

    assert data["same_code"] == {
        "runs": 2, "single_rows": 4, "single_flagged": 0, "single_ratio_range": [0.9, 1.3],
        "smallest_single_p_unadjusted": 0.01, "pooled_rows": 2, "pooled_flagged": 0,
        "pooled_ratio_range": [0.95, 1.1], "smallest_pooled_p": 0.3,
    }
    assert data["levels"]["25.0"] == {
        "runs": 3, "single_rows": 6, "single_caught": 3, "single_caught_per_run": [0, 2],
        # The third run, beyond the recorded cycles, counts in the last part.
        "single_caught_by_part": [[1, 2], [2, 4]],
        "single_most_caught": 2, "single_ratio_range": [1.05, 1.8],
        "pooled_rows": 3, "pooled_caught": 2, "pooled_ratio_range": [1.08, 1.7],
        "pooled_caught_p_range": [1e-8, 1e-6],
        "baseline_rows": 3, "baseline_flagged": 1,
    }
    table = "\n".join(render_totals(data))
    assert "| same code, single rows | 4 in 2 runs | 0 | 0.90x to 1.30x | smallest unadjusted 0.01 |" in table
    assert "| same code, pooled rows | 2 in 2 runs | 0 | 0.95x to 1.10x | smallest adjusted 0.3 |" in table
    assert (
        "| +25% delay, delayed single rows | 6 in 3 runs | 3; 0 to 2 a run; each row at most 2 of 3 "
        "runs; by part 1 of 2, 2 of 4 | 1.05x to 1.80x | |" in table
    )
    assert "| +25% delay, delayed pooled rows | 3 in 3 runs | 2 | 1.08x to 1.70x | adjusted 1e-08 to 1e-06 where caught |" in table
    assert "| +25% delay, unchanged rows | 3 in 3 runs | 1 | | |" in table


def test_totals_tolerate_rows_without_figures():
    # Files from before the totals, or rows that measured nothing, lack ratios and p-values.
    same = [gate_json(0, [("'idle'", 1e-4, "unchanged")])]
    delayed = {25.0: [gate_json(0, [("'idle'", None, "unchanged")])]}
    data = totals(same, delayed, None)
    assert data["same_code"]["single_ratio_range"] is None
    assert data["same_code"]["smallest_single_p_unadjusted"] is None
    assert data["levels"]["25.0"]["single_caught_by_part"] == []
    table = "\n".join(render_totals(data))
    assert "| same code, single rows | 1 in 1 runs | 0 | no ratio | smallest unadjusted none |" in table
    assert "| +25% delay, delayed pooled rows | 0 in 1 runs | 0 | no ratio | |" in table


def test_summary_command_prints_totals_and_exit_code(tmp_path, capsys):
    from tools.gate.cli import main

    path = write_calibration(tmp_path)
    before = path.read_bytes()
    assert main(["calibrate-summary", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "- False alarms: 0 of 2 same-code runs." in out
    assert "| +25% delay, delayed single rows | 2 in 2 runs | 2; 1 to 1 a run; each row at most 2 of 2 runs |" in out
    assert path.read_bytes() == before

    damaged = json.loads(before)
    damaged["same_code_reports"][1]["comparisons"][0]["verdict"] = "regression"
    path.write_text(json.dumps(damaged))
    assert main(["calibrate-summary", str(path)]) == EXIT_REGRESSION
    path.write_text(path.read_text()[:100])
    assert main(["calibrate-summary", str(path)]) == EXIT_USAGE
    assert f"cannot summarize the calibration {path}" in capsys.readouterr().err


# The cycle bookkeeping below runs the real command on a real clone of this repository, with
# the gate runs themselves replaced by canned reports: the asv side has its own end-to-end
# test (test_calibration_resumes_with_same_delay in test_gate_asv.py), which takes minutes.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = [
    "--machine", "box", "--rounds", "3", "--delayed", "Latency",
    "--delay-site", "supervisor._supervisor:Supervisor._count_restart",
]


class CannedReport:
    def __init__(self, data):
        self.data = data

    def to_json(self):
        return self.data


@pytest.fixture
def fake_gate(tmp_path, monkeypatch):
    """Run calibrate from this repository with canned gate runs; return the series requested."""
    from tools.gate import calibrate

    if subprocess.run(["git", "-C", PROJECT_ROOT, "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("this repository has no commit yet")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(json.dumps({"box": {"machine": "box"}, "version": 1}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.chdir(PROJECT_ROOT)
    series = []

    def run_gate(request):
        name = os.path.basename(request.work_dir)
        series.append(name)
        delayed = name.startswith("delay")
        data = gate_json(1 if delayed else 0, [
            ("'idle'", 1e-4, "regression" if delayed else "unchanged"),
        ])
        data.update(outcome="canned", counts={"regression": 1} if delayed else {})
        return CannedReport(data)

    monkeypatch.setattr(calibrate, "run_gate", run_gate)
    return series


def resumable_context():
    head = subprocess.run(
        ["git", "-C", PROJECT_ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {**CONTEXT, "revision": head, "machine": "box", "rounds": 3, "select": r"\.track_p99",
            "delay_site": OPTIONS[-1], "python": sys.version.split()[0]}


def calibrate_main(*args):
    from tools.gate.cli import main

    return main(["calibrate", *OPTIONS, *args])


def test_fresh_calibration_runs_each_scenario(fake_gate, tmp_path):
    out = tmp_path / "out"
    assert calibrate_main("--runs", "3", "--output", str(out)) == EXIT_OK
    assert fake_gate == ["same", "delay-25", "same", "delay-25", "same", "delay-25"]
    data = json.loads((out / "calibration.json").read_text())
    assert len(data["same_code_reports"]) == 3
    assert len(data["delay_reports"]["25.0"]) == 3
    assert data["context"]["parts"][0]["cycles"] == 3


def test_resume_evens_out_unequal_runs(fake_gate, tmp_path):
    earlier = write_calibration(tmp_path, resumable_context())
    data = json.loads(earlier.read_text())
    data["same_code_reports"].append(data["same_code_reports"][0])  # 3 same-code, 2 delay runs
    earlier.write_text(json.dumps(data))
    out = tmp_path / "out"

    assert calibrate_main("--runs", "4", "--resume", str(earlier), "--output", str(out)) == EXIT_OK

    assert fake_gate == ["delay-25", "same", "delay-25"]
    result = json.loads((out / "calibration.json").read_text())
    assert len(result["same_code_reports"]) == 4
    assert len(result["delay_reports"]["25.0"]) == 4
    assert [part["cycles"] for part in result["context"]["parts"]] == [2, 2]


def test_resume_with_every_cycle_done_runs_nothing(fake_gate, tmp_path):
    earlier = write_calibration(tmp_path, resumable_context())
    out = tmp_path / "out"
    assert calibrate_main("--runs", "1", "--resume", str(earlier), "--output", str(out)) == EXIT_OK
    assert fake_gate == []
    context = json.loads((out / "calibration.json").read_text())["context"]
    assert context["runs"] == 2
    assert len(context["parts"]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rounds", "2"], "--rounds must be at least 3"),
        (["--delay-percent", "nan"], "--delay-percent must be a number above 0 and at most 1000"),
        (["--delay-percent", "0"], "--delay-percent must be a number above 0 and at most 1000"),
        (["--delay-percent", "1e308"], "--delay-percent must be a number above 0 and at most 1000"),
        (["--delay-percent", "25", "--delay-percent", "25"], "lists a level twice"),
        (["--delay-site", "supervisor._supervisor:Supervisor.no_such_method"], "could not be wrapped"),
    ],
)
def test_bad_option_fails_before_any_run(fake_gate, tmp_path, capsys, args, message):
    assert calibrate_main(*args, "--output", str(tmp_path / "out")) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert fake_gate == []


def test_resume_refuses_to_overwrite_its_file(fake_gate, tmp_path, capsys):
    earlier = write_calibration(tmp_path)
    before = earlier.read_bytes()
    alias = tmp_path / "alias"
    alias.symlink_to(tmp_path)
    for output in (tmp_path, alias):
        assert calibrate_main("--resume", str(earlier), "--output", str(output)) == EXIT_USAGE
        assert "would overwrite the calibration given to --resume" in capsys.readouterr().err
    assert earlier.read_bytes() == before
    assert fake_gate == []


def test_output_that_is_a_file_fails_first(fake_gate, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("")
    assert calibrate_main("--output", str(target)) == EXIT_USAGE
    assert "is a file, not a folder" in capsys.readouterr().err
    assert fake_gate == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data.update(same_code_reports="xyz"), "same-code reports are not a list"),
        (lambda data: data.update(same_code_reports=[{}]), "same-code reports are not a list"),
        (lambda data: data["delay_reports"].update({"25.0": "abc"}), "delay reports at 25.0%"),
        (lambda data: data["context"].update(reference_p99="fast"), "reference_p99='fast'"),
        (lambda data: data["context"].pop("rounds"), "its context lacks rounds"),
        (lambda data: data["context"].update(delays_ns={"25": 0}), "its delay at 25% is 0 ns"),
        (lambda data: data["context"].update(delays_ns={"25": True}), "its delay at 25% is True ns"),
        (lambda data: data["context"].update(revision=123), "revision=123 is not a commit hash"),
        (lambda data: data["context"].update(parts="abc"), "parts='abc' is not a list"),
        (lambda data: data["context"].update(reference_p99=True), "reference_p99=True"),
        (lambda data: data["same_code_reports"][0]["comparisons"][0].pop("before"),
         "in run 1 of its same-code reports, a row has no before field"),
        (lambda data: data["same_code_reports"][0]["comparisons"][0].update(before=0),
         "a row's before is 0, not a positive number"),
        (lambda data: data["same_code_reports"][0]["comparisons"][0].pop("benchmark"),
         "a row's benchmark is None, not a string"),
        (lambda data: data["delay_reports"]["25.0"][1]["comparisons"][0].update(params=None),
         "in run 2 of its delay reports at 25.0%, a row's params is None"),
        (lambda data: data["same_code_reports"][0]["comparisons"].append("row"),
         "a row is str, not an object"),
        (lambda data: data["delay_reports"].update({"25": data["delay_reports"]["25.0"]}),
         "it lists the same delay level twice"),
        (lambda data: data["context"].update(alpha="0.01"), "alpha='0.01' is not a positive number"),
        (lambda data: data["context"].update(min_effect=-1), "min_effect=-1 is not a positive number"),
        (lambda data: data["context"].update(delayed="("), "delayed='(' is not a regular expression"),
        (lambda data: data["context"].update(delayed=5), "delayed=5 is not a regular expression"),
        (lambda data: data["context"].update(parts=[{"cycles": True}]), "is not a list of objects"),
        (lambda data: data["context"].update(parts=[{"cycles": -1}, {"cycles": 3}]),
         "is not a list of objects"),
        (lambda data: data["context"].update(parts=[{"cycles": 1, "started": 5}]),
         "is not a list of objects"),
        (lambda data: data["context"].update(parts=[{"cycles": 1}, {"cycles": 2}]),
         "its parts add up to 3 cycles, but it holds 2 complete cycles of runs"),
        (lambda data: data["delay_reports"].update({"25.0": []}), "it has no run at the 25% delay"),
        (lambda data: (data["delay_reports"].clear(), data["context"].update(delays_ns={})),
         "it has no delay level"),
        (lambda data: data["same_code_reports"][0]["comparisons"][0].update(verdict="Regression"),
         "a row's verdict is 'Regression', not one of regression,"),
        (lambda data: data["same_code_reports"][0]["comparisons"][0].update(pooled="0"),
         "a row's pooled is '0', not a count"),
        (lambda data: data["same_code_reports"][0]["comparisons"][0].update(ratio=-5),
         "a row's ratio is -5, not a positive number or null"),
        (lambda data: data["delay_reports"]["25.0"][0]["comparisons"][0].update(p_value="0.5"),
         "a row's p_value is '0.5', not a number from 0 to 1"),
        (lambda data: data["delay_reports"]["25.0"][0]["comparisons"][0].update(p_value_unadjusted=-3),
         "a row's p_value_unadjusted is -3, not a number from 0 to 1"),
    ],
)
def test_resume_malformed_file_names_field(tmp_path, damage, message):
    path = write_calibration(tmp_path)
    data = json.loads(path.read_text())
    damage(data)
    path.write_text(json.dumps(data))
    with pytest.raises(GateUsageError, match=re.escape(message)):
        load_resume(str(path))


def test_resume_takes_select_from_reports(tmp_path):
    context = {key: value for key, value in CONTEXT.items() if key != "select"}
    path = write_calibration(tmp_path, context)
    data = json.loads(path.read_text())
    data["same_code_reports"][0]["settings"] = {"select": "track_p99", "higher_is_better": ["x"]}
    path.write_text(json.dumps(data))
    earlier = load_resume(str(path))
    with pytest.raises(GateUsageError, match="it has higher_is_better=\\['x'\\]"):
        check_resume(earlier, {**CONTEXT, "higher_is_better": []}, [25.0])


def test_error_inside_gate_exits_broken(fake_gate, tmp_path, monkeypatch, capsys):
    """A crash of the tool exits 2, never 1, which would read as a regression."""
    from tools.gate import calibrate

    def run_gate(request):
        raise ZeroDivisionError("inside the gate")

    monkeypatch.setattr(calibrate, "run_gate", run_gate)
    assert calibrate_main("--output", str(tmp_path / "out")) == EXIT_BROKEN
    errors = capsys.readouterr().err
    assert "ZeroDivisionError: inside the gate" in errors
    assert "calibrate failed inside the gate (traceback above); exiting with 2" in errors
