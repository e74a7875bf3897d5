"""The calibration's delay injection and its summary, without asv runs."""

import asyncio
import types

import pytest

from tools.gate.calibrate import delay_patch, render_summary, summarize

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
