"""Measure the gate itself: false alarms on identical code, detections of injected delays.

Everything happens in a temporary clone of the repository, so the project's history, results
and state file are never touched:

1. An empty commit on top of the chosen revision gives two commits with identical code. The
   gate compares them ``--runs`` times; every regression verdict is a false alarm.
2. The largest BASE median of the first comparison is the reference p99. For each
   ``--delay-percent`` level, a commit on top of the revision wraps the function named by
   ``--delay-site`` so that every call first busy-waits ``level% x reference`` nanoseconds,
   and the gate compares it with the revision ``--runs`` times.

Every parameter set thus gets the same absolute delay, which is at least the stated
percentage of its own p99, and more where its p99 is smaller. The summary gives, per
parameter set, the relative size of the delay and how many runs caught it, and the smallest
relative regression above which every run caught every parameter set.

The scenarios take turns: each cycle is one same-code run and one run per level, and the
summary files are rewritten after every cycle, so ``--max-minutes`` can cut a calibration
short and still leave a balanced, readable result.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from .decide import VERDICT_ORDER, Settings
from .gate import GateRequest, compare_stored, run_gate
from .report import EXIT_BROKEN, EXIT_OK, EXIT_REGRESSION, Report
from .runner import (
    MIN_ROUNDS,
    GateUsageError,
    check_machine,
    load_asv_config,
    resolve_revision,
    settings_from_args,
)

__all__ = [
    "add_calibrate_arguments",
    "add_rejudge_arguments",
    "command_calibrate",
    "command_rejudge",
    "command_summary",
    "delay_patch",
]

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "gate calibration",
    "GIT_AUTHOR_EMAIL": "gate-calibration@localhost",
    "GIT_COMMITTER_NAME": "gate calibration",
    "GIT_COMMITTER_EMAIL": "gate-calibration@localhost",
}


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delay-site",
        required=True,
        metavar="MODULE:QUALNAME",
        help="function or method on the restart path to slow down, such as "
        "supervisor._core:Supervisor._restart_child",
    )
    parser.add_argument(
        "--delay-percent",
        type=float,
        action="append",
        help="injected delay as a percentage of the reference p99; repeat for several "
        "levels (default: 25)",
    )
    parser.add_argument(
        "--delayed",
        metavar="REGEX",
        help="benchmarks whose measured path goes through --delay-site; only their rows "
        "count as detections or misses (default: every benchmark --select picks, which "
        "wrongly counts a baseline that never calls the site as missed)",
    )
    parser.add_argument(
        "--runs", type=int, default=20, help="gate runs per scenario (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=8,
        help="interleaved rounds per gate run (default: %(default)s)",
    )
    parser.add_argument(
        "--revision",
        help="revision to calibrate on (default: HEAD, or the revision of --resume)",
    )
    parser.add_argument(
        "--resume",
        metavar="FILE",
        help="calibration.json of an earlier calibration to continue: its runs count, its "
        "delays are reused, and cycles run until --runs same-code runs exist. The revision, "
        "machine, rounds, judging options, delay site and levels must be the same",
    )
    parser.add_argument(
        "--output",
        default=os.path.join(".asv", "gate", "calibration"),
        help="folder for calibration.md and calibration.json (default: %(default)s)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        help="start no new cycle after this many minutes; the files then hold the cycles "
        "completed (default: no limit)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary clone and the gate's run folders"
    )


def delay_patch(qualname: str, delay_ns: int) -> str:
    """Return Python source that, appended to a module, delays every call of ``qualname``.

    The wait is a busy loop on ``time.perf_counter_ns``: it adds a fixed time without an
    extra pass through the event loop, which an ``asyncio.sleep`` would add.
    """
    parts = qualname.split(".")
    if len(parts) == 1:
        lookup = f"original = globals()[{parts[0]!r}]"
        install = f"globals()[{parts[0]!r}] = delayed"
    else:
        owner = "globals()[{!r}]".format(parts[0]) + "".join(f".{name}" for name in parts[1:-1])
        lookup = f"owner = {owner}\n    original = getattr(owner, {parts[-1]!r})"
        install = f"setattr(owner, {parts[-1]!r}, delayed)"
    return f'''

# Added by `python -m tools.gate calibrate` in a temporary clone: every call of
# {qualname} first busy-waits {delay_ns} ns, to measure which regressions the
# gate catches.
def _gate_calibration_delay():
    import functools
    import inspect
    import time

    {lookup}

    def spin():
        deadline = time.perf_counter_ns() + {delay_ns}
        while time.perf_counter_ns() < deadline:
            pass

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def delayed(*args, **kwargs):
            spin()
            return await original(*args, **kwargs)
    else:
        @functools.wraps(original)
        def delayed(*args, **kwargs):
            spin()
            return original(*args, **kwargs)

    delayed.gate_calibration_delay_ns = {delay_ns}
    {install}


_gate_calibration_delay()
'''


def _git(clone: str, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", clone, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **_GIT_IDENTITY},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {clone}: {result.stderr.strip()}")
    return result.stdout.strip()


def _module_path(clone: str, module: str) -> str:
    base = os.path.join(clone, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    raise GateUsageError(
        f"--delay-site module {module!r} has no source file in the revision "
        f"(looked for {base}.py and {base}/__init__.py)"
    )


def _commit_delay(clone: str, commit: str, site: str, delay_ns: int, branch: str) -> str:
    """Create a commit on top of ``commit`` that delays ``site``; return its hash."""
    module, _, qualname = site.partition(":")
    _git(clone, "checkout", "-q", "-B", branch, commit)
    path = _module_path(clone, module)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(delay_patch(qualname, delay_ns))

    # Import the patched module to prove the wrapper is in place before spending runs on it.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib, sys\n"
            f"owner = importlib.import_module({module!r})\n"
            f"for name in {qualname.split('.')!r}:\n"
            "    owner = getattr(owner, name)\n"
            "sys.exit(0 if getattr(owner, 'gate_calibration_delay_ns', None) else 1)\n",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise GateUsageError(
            f"--delay-site {site!r} could not be wrapped: {check.stderr.strip() or 'not found'}"
        )
    _git(clone, "commit", "-q", "-a", "-m", f"calibration: +{delay_ns} ns at {site}")
    return _git(clone, "rev-parse", "HEAD")


def _row_key(row: dict) -> str:
    if row.get("pooled"):
        return f"{row['benchmark']}(all {row['pooled']} parameter sets, pooled) [{row['env']}]"
    params = row["params"]
    if isinstance(params, dict):
        label = ", ".join(f"{name}={value}" for name, value in params.items())
    else:
        label = ", ".join(params)
    return f"{row['benchmark']}({label}) [{row['env']}]"


def _run_series(
    label: str, runs: int, make_request, progress
) -> list[dict]:
    reports = []
    for index in range(runs):
        started = time.monotonic()
        report: Report = run_gate(make_request())
        data = report.to_json()
        reports.append(data)
        regressions = data["counts"].get("regression", 0)
        progress(
            f"{label} run {index + 1}/{runs}: {data['outcome']}, {regressions} regression "
            f"row(s), {time.monotonic() - started:.0f} s"
        )
    return reports


def summarize(
    same_reports: list[dict],
    level_reports: dict[float, list[dict]],
    delays: dict[float, int],
    delayed: str | None = None,
    parts: list[dict] | None = None,
) -> dict:
    """Reduce the calibration's gate reports to false alarms and detection rates.

    Only rows of benchmarks matching the regular expression ``delayed`` (all rows if None)
    count as detections or misses; false alarms count on every row. ``parts`` (the context's
    list of parts, each with its cycles) splits the single-row detections by part.
    """
    reference_medians = {
        _row_key(row): row["before"]
        for row in same_reports[0]["comparisons"]
        if row["before"] is not None
        and (delayed is None or re.search(delayed, row["benchmark"]))
    }
    false_alarm_runs = sum(
        1
        for data in same_reports
        if any(row["verdict"] == "regression" for row in data["comparisons"])
    )
    broken_runs = sum(
        1
        for data in [*same_reports, *(d for reports in level_reports.values() for d in reports)]
        if data["exit_code"] == EXIT_BROKEN
    )
    rows = []
    for level, reports in sorted(level_reports.items()):
        for key, median_before in sorted(reference_medians.items()):
            caught = sum(
                1
                for data in reports
                for row in data["comparisons"]
                if _row_key(row) == key and row["verdict"] == "regression"
            )
            rows.append(
                {
                    "level_percent": level,
                    "delay_ns": delays[level],
                    "row": key,
                    "p99_before": median_before,
                    "relative_size": delays[level] / 1e9 / median_before,
                    "caught": caught,
                    "runs": len(reports),
                }
            )

    # The smallest relative size above which every run caught every row.
    reliable = None
    for candidate in sorted(rows, key=lambda row: row["relative_size"]):
        above = [row for row in rows if row["relative_size"] >= candidate["relative_size"]]
        if all(0 < row["runs"] == row["caught"] for row in above):
            reliable = candidate["relative_size"]
            break
    missed_25 = [
        row for row in rows if row["relative_size"] >= 0.25 and row["caught"] < row["runs"]
    ]
    flagged = {
        str(level): sum(1 for data in reports if data["exit_code"] == EXIT_REGRESSION)
        for level, reports in sorted(level_reports.items())
    }
    return {
        "same_code_runs": len(same_reports),
        "false_alarm_runs": false_alarm_runs,
        "totals": totals(same_reports, level_reports, delayed, parts),
        "delay_runs": {str(level): len(reports) for level, reports in sorted(level_reports.items())},
        "delay_runs_flagged": flagged,
        "broken_runs": broken_runs,
        "detections": rows,
        "smallest_reliable_relative_size": reliable,
        "missed_at_or_above_25_percent": len(missed_25),
    }


def _range(values: list) -> list | None:
    numbers = [value for value in values if _is_number(value)]
    return [min(numbers), max(numbers)] if numbers else None


def _part_slices(parts: list[dict] | None, runs: int) -> list[slice]:
    # Reports are stored in the order they ran, so part k contains the next `cycles` runs.
    # Runs beyond the recorded cycles, of a scenario evened out later, fall into the last part.
    slices, start = [], 0
    for index, part in enumerate(parts or []):
        stop = runs if index == len(parts) - 1 else min(runs, start + part["cycles"])
        slices.append(slice(start, stop))
        start = stop
    return slices


def totals(
    same_reports: list[dict],
    level_reports: dict[float, list[dict]],
    delayed: str | None,
    parts: list[dict] | None = None,
) -> dict:
    """Count the calibration's verdicts over all runs, with the ratios and p-values behind them.

    A single row is one parameter set; a pooled row joins every parameter set of a benchmark.
    Rows of benchmarks that ``delayed`` does not match are the unchanged baseline of a delay run.
    """
    def is_delayed(row: dict) -> bool:
        return delayed is None or re.search(delayed, row["benchmark"]) is not None

    same_single = [row for data in same_reports for row in data["comparisons"] if not row.get("pooled")]
    same_pooled = [row for data in same_reports for row in data["comparisons"] if row.get("pooled")]
    result = {
        "same_code": {
            "runs": len(same_reports),
            "single_rows": len(same_single),
            "single_flagged": sum(row["verdict"] == "regression" for row in same_single),
            "single_ratio_range": _range([row.get("ratio") for row in same_single]),
            "smallest_single_p_unadjusted": (
                _range([row.get("p_value_unadjusted") for row in same_single]) or [None]
            )[0],
            "pooled_rows": len(same_pooled),
            "pooled_flagged": sum(row["verdict"] == "regression" for row in same_pooled),
            "pooled_ratio_range": _range([row.get("ratio") for row in same_pooled]),
            "smallest_pooled_p": (_range([row.get("p_value") for row in same_pooled]) or [None])[0],
        },
        "levels": {},
    }
    for level, reports in sorted(level_reports.items()):
        def rows_of(data: dict, pooled: bool, target: bool) -> list[dict]:
            return [
                row for row in data["comparisons"]
                if bool(row.get("pooled")) == pooled and is_delayed(row) == target
            ]

        single = [rows_of(data, False, True) for data in reports]
        pooled = [row for data in reports for row in rows_of(data, True, True)]
        baseline = [
            row for data in reports for row in data["comparisons"] if not is_delayed(row)
        ]
        caught_per_run = [sum(row["verdict"] == "regression" for row in rows) for rows in single]
        rows_per_run = [len(rows) for rows in single]
        per_row: dict[str, int] = {}
        for rows in single:
            for row in rows:
                per_row[_row_key(row)] = per_row.get(_row_key(row), 0) + (row["verdict"] == "regression")
        caught_pooled = [row for row in pooled if row["verdict"] == "regression"]
        result["levels"][str(level)] = {
            "runs": len(reports),
            "single_rows": sum(rows_per_run),
            "single_caught": sum(caught_per_run),
            "single_caught_per_run": _range(caught_per_run),
            "single_caught_by_part": [
                [sum(caught_per_run[part]), sum(rows_per_run[part])]
                for part in _part_slices(parts, len(reports))
            ],
            "single_most_caught": max(per_row.values(), default=None),
            "single_ratio_range": _range([row.get("ratio") for rows in single for row in rows]),
            "pooled_rows": len(pooled),
            "pooled_caught": len(caught_pooled),
            "pooled_ratio_range": _range([row.get("ratio") for row in pooled]),
            "pooled_caught_p_range": _range([row.get("p_value") for row in caught_pooled]),
            "baseline_rows": len(baseline),
            "baseline_flagged": sum(row["verdict"] == "regression" for row in baseline),
        }
    return result


_OUTPUT_FILES = ("calibration.md", "calibration.json")


def _write_outputs(
    output: str, summary: dict, context: dict, same_reports: list[dict], level_reports: dict
) -> str:
    markdown = render_summary(summary, context)
    data = json.dumps(
        {"context": context, "summary": summary, "same_code_reports": same_reports,
         "delay_reports": {str(level): reports for level, reports in level_reports.items()}},
        indent=2,
    )
    # Written beside the target and renamed over it, so an interrupted calibration never
    # leaves a truncated file where the last complete one was.
    for name, text in zip(_OUTPUT_FILES, (markdown, data)):
        path = os.path.join(output, name)
        with open(path + ".tmp", "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(path + ".tmp", path)
    return markdown


def render_summary(summary: dict, context: dict) -> str:
    lines = [
        "## Gate calibration",
        "",
        f"Revision `{context['revision'][:8]}`, machine `{context['machine']}`, "
        f"{context['rounds']} interleaved rounds per gate run, min effect "
        f"{context['min_effect']:.0%}, alpha {context['alpha']:g}, delay site "
        f"`{context['delay_site']}`, reference p99 {context['reference_p99'] * 1e6:.1f} µs, "
        f"rows judged for detection: `{context.get('delayed') or 'all'}`.",
        "",
        f"- Cycles completed: {summary['same_code_runs']} of "
        f"{context.get('runs', summary['same_code_runs'])} planned "
        "(one same-code run and one run per delay level each).",
        f"- False alarms: {summary['false_alarm_runs']} of {summary['same_code_runs']} "
        "same-code runs.",
        f"- Runs with a failed benchmark or build: {summary['broken_runs']}.",
        *(
            f"- Delay commits at +{float(level):g}% failed by the gate (exit code 1): "
            f"{flagged} of {summary.get('delay_runs', {}).get(level, 0)} runs."
            for level, flagged in summary.get("delay_runs_flagged", {}).items()
        ),
        f"- Rows at +25% or more that some run missed: "
        f"{summary['missed_at_or_above_25_percent']}.",
    ]
    parts = context.get("parts") or []
    if len(parts) > 1:
        lines.append(
            "- Measured in parts, continued with `--resume`: "
            + ", ".join(
                f"{part['cycles']} cycle(s) started {part.get('started') or 'at an unrecorded time'}"
                for part in parts
            )
            + "."
        )
    reliable = summary["smallest_reliable_relative_size"]
    lines.append(
        "- Smallest regression caught in every run, with every larger one also caught: "
        + (f"+{reliable:.0%}." if reliable is not None else "none.")
    )
    if "totals" in summary:
        lines += ["", *render_totals(summary["totals"])]
    lines += [
        "",
        "| level | delay | parameter set | p99 before | delay / p99 | caught |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["detections"]:
        lines.append(
            f"| {row['level_percent']:g}% | {row['delay_ns'] / 1000:.1f} µs | `{row['row']}` | "
            f"{row['p99_before'] * 1e6:.1f} µs | +{row['relative_size']:.0%} | "
            f"{row['caught']}/{row['runs']} |"
        )
    lines.append("")
    return "\n".join(lines)


def _ratios(span: list | None) -> str:
    return "no ratio" if span is None else f"{span[0]:.2f}x to {span[1]:.2f}x"


def _format_p(value) -> str:
    return "none" if value is None else f"{value:.2g}"


def render_totals(data: dict) -> list[str]:
    """Return the Markdown table of the calibration's totals over all runs."""
    same = data["same_code"]
    lines = [
        "| scenario | rows | flagged or caught | ratios after/before | p-values |",
        "|---|---|---|---|---|",
        f"| same code, single rows | {same['single_rows']} in {same['runs']} runs | "
        f"{same['single_flagged']} | {_ratios(same['single_ratio_range'])} | "
        f"smallest unadjusted {_format_p(same['smallest_single_p_unadjusted'])} |",
        f"| same code, pooled rows | {same['pooled_rows']} in {same['runs']} runs | "
        f"{same['pooled_flagged']} | {_ratios(same['pooled_ratio_range'])} | "
        f"smallest adjusted {_format_p(same['smallest_pooled_p'])} |",
    ]
    for level, row in data["levels"].items():
        parts = row["single_caught_by_part"]
        per_run = row["single_caught_per_run"] or [0, 0]
        detail = f"; {per_run[0]} to {per_run[1]} a run"
        if row["single_most_caught"] is not None:
            detail += f"; each row at most {row['single_most_caught']} of {row['runs']} runs"
        if len(parts) > 1:
            detail += "; by part " + ", ".join(f"{caught} of {rows}" for caught, rows in parts)
        p_range = row["pooled_caught_p_range"]
        lines += [
            f"| +{float(level):g}% delay, delayed single rows | {row['single_rows']} in "
            f"{row['runs']} runs | {row['single_caught']}{detail} | "
            f"{_ratios(row['single_ratio_range'])} | |",
            f"| +{float(level):g}% delay, delayed pooled rows | {row['pooled_rows']} in "
            f"{row['runs']} runs | "
            f"{row['pooled_caught']} | {_ratios(row['pooled_ratio_range'])} | "
            + (f"adjusted {_format_p(p_range[0])} to {_format_p(p_range[1])} where caught |" if p_range else "|"),
            f"| +{float(level):g}% delay, unchanged rows | {row['baseline_rows']} in "
            f"{row['runs']} runs | "
            f"{row['baseline_flagged']} | | |",
        ]
    return lines


def _exit_code(summary: dict) -> int:
    """Exit 0 when no same-code run raised an alarm and the gate failed every delay run at +25% or more."""
    if summary["broken_runs"]:
        return EXIT_BROKEN
    missed_runs = sum(
        summary["delay_runs"][level] - flagged
        for level, flagged in summary["delay_runs_flagged"].items()
        if float(level) >= 25
    )
    if summary["false_alarm_runs"] or missed_runs:
        return EXIT_REGRESSION
    return EXIT_OK


# Context fields that a resumed calibration must share with the one it continues, because
# each changes what a run measures or how it is judged.
_RESUME_FIELDS = (
    "machine", "rounds", "min_effect", "alpha", "delay_site", "delayed", "select",
    "higher_is_better",
)
# Fields that the first calibration files did not store in their context. Their values are
# then taken from the settings in the first gate report.
_LATER_FIELDS = ("select", "higher_is_better")


def _delay_ns(level: float, reference: float) -> int:
    """Return the injected delay for ``level`` percent of ``reference`` seconds, at least 1 ns."""
    return max(1, round(level / 100 * reference * 1e9))


def _level(text) -> float:
    level = float(text)
    if not (math.isfinite(level) and level > 0):
        raise ValueError(f"delay level {text!r} is not a positive number")
    return level


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _row_problem(row) -> str | None:
    # The fields summarize() and render_summary() read from a gate report's row.
    if not isinstance(row, dict):
        return f"a row is {type(row).__name__}, not an object"
    for field in ("benchmark", "env", "verdict"):
        if not isinstance(row.get(field), str):
            return f"a row's {field} is {row.get(field)!r}, not a string"
    params = row.get("params")
    if not (isinstance(params, dict) or (isinstance(params, list) and all(isinstance(p, str) for p in params))):
        return f"a row's params is {params!r}, not an object or a list of strings"
    if "before" not in row:
        return "a row has no before field"
    before = row["before"]
    if before is not None and not (_is_number(before) and before > 0):
        return f"a row's before is {before!r}, not a positive number of seconds or null"
    if row["verdict"] not in VERDICT_ORDER:
        return f"a row's verdict is {row['verdict']!r}, not one of {', '.join(VERDICT_ORDER)}"
    # Read by the totals; files from before the totals may lack them.
    pooled = row.get("pooled", 0)
    if not (isinstance(pooled, int) and not isinstance(pooled, bool) and pooled >= 0):
        return f"a row's pooled is {pooled!r}, not a count of parameter sets (0 for a single row)"
    ratio = row.get("ratio")
    if ratio is not None and not (_is_number(ratio) and ratio > 0):
        return f"a row's ratio is {ratio!r}, not a positive number or null"
    for field in ("p_value", "p_value_unadjusted"):
        value = row.get(field)
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            return f"a row's {field} is {value!r}, not a number from 0 to 1 or null"
    return None


def _check_reports(path: str, label: str, reports, verb: str) -> list[dict]:
    if not isinstance(reports, list) or not all(
        isinstance(report, dict)
        and isinstance(report.get("comparisons"), list)
        and isinstance(report.get("exit_code"), int)
        and not isinstance(report.get("exit_code"), bool)
        for report in reports
    ):
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: its {label} are not a list of gate "
            "reports, each with exit_code and comparisons"
        )
    for index, report in enumerate(reports, 1):
        for row in report["comparisons"]:
            problem = _row_problem(row)
            if problem is not None:
                raise GateUsageError(
                    f"cannot {verb} the calibration {path}: in run {index} of its {label}, "
                    f"{problem}"
                )
    return reports


def load_resume(path: str, verb: str = "resume from") -> dict:
    """Read an earlier calibration.json; return its context, reports and delays.

    Raise GateUsageError, naming the file and the field, if it cannot be read or a field is
    missing or malformed, so that a bad file fails before any run is spent on it.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            earlier = json.load(stream)
    except (OSError, ValueError) as exc:
        raise GateUsageError(f"cannot {verb} the calibration {path}: {exc}") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("context"), dict):
        raise GateUsageError(f"cannot {verb} the calibration {path}: it has no context object")
    context = dict(earlier["context"])
    missing = [
        field for field in ("revision", "reference_p99", "python", *_RESUME_FIELDS)
        if field not in context and field not in _LATER_FIELDS
    ]
    if missing:
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: its context lacks {', '.join(missing)}"
        )
    if not isinstance(context["revision"], str):
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: revision={context['revision']!r} is "
            "not a commit hash"
        )
    for field in ("alpha", "min_effect"):
        if not (_is_number(context[field]) and context[field] > 0):
            raise GateUsageError(
                f"cannot {verb} the calibration {path}: {field}={context[field]!r} is not a "
                "positive number"
            )
    delayed = context["delayed"]
    try:
        if delayed is not None:
            re.compile(delayed)
    except (re.error, TypeError) as exc:
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: delayed={delayed!r} is not a regular "
            f"expression or null ({exc})"
        ) from None
    parts = context.get("parts")
    if parts is not None and not (
        isinstance(parts, list)
        and all(
            isinstance(part, dict)
            and isinstance(part.get("cycles"), int)
            and not isinstance(part["cycles"], bool)
            and part["cycles"] >= 0
            and (part.get("started") is None or isinstance(part["started"], str))
            for part in parts
        )
    ):
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: parts={parts!r} is not a list of "
            "objects with a cycles count and a start time or null"
        )
    reference = context["reference_p99"]
    if not (_is_number(reference) and reference > 0):
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: reference_p99={reference!r} is not a "
            "positive number of seconds"
        )

    same_reports = _check_reports(path, "same-code reports", earlier.get("same_code_reports"), verb)
    delay_reports = earlier.get("delay_reports")
    if not isinstance(delay_reports, dict):
        raise GateUsageError(f"cannot {verb} the calibration {path}: it has no delay_reports object")
    try:
        level_reports = {
            _level(level): _check_reports(path, f"delay reports at {level}%", reports, verb)
            for level, reports in delay_reports.items()
        }
        # Files written before delays were stored in the context have them in every row.
        stored = context.get("delays_ns") or {
            row["level_percent"]: row["delay_ns"] for row in earlier["summary"]["detections"]
        }
        delays = {_level(level): delay for level, delay in stored.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: its delay levels or delays are "
            f"unreadable ({exc})"
        ) from None
    if len(level_reports) != len(delay_reports) or len(delays) != len(stored):
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: it lists the same delay level twice "
            f"({sorted(delay_reports)})"
        )
    for level, delay in delays.items():
        # The delay a calibration derives from its level and reference, so a hand-edited
        # delay or reference cannot slip into the runs that follow.
        expected = _delay_ns(level, reference)
        if isinstance(delay, bool) or delay != expected:
            raise GateUsageError(
                f"cannot {verb} the calibration {path}: its delay at {level:g}% is "
                f"{delay!r} ns, but {level:g}% of its reference_p99 ({reference!r} s) is "
                f"{expected} ns"
            )
    if not same_reports:
        raise GateUsageError(f"cannot {verb} the calibration {path}: it has no same-code run")
    if not level_reports:
        raise GateUsageError(f"cannot {verb} the calibration {path}: it has no delay level")
    for level, reports in level_reports.items():
        # Every cycle, the first one too, runs each delay commit once.
        if not reports:
            raise GateUsageError(
                f"cannot {verb} the calibration {path}: it has no run at the {level:g}% delay"
            )
    if parts:
        complete = min(len(same_reports), *(len(reports) for reports in level_reports.values()))
        recorded = sum(part["cycles"] for part in parts)
        if recorded != complete:
            raise GateUsageError(
                f"cannot {verb} the calibration {path}: its parts add up to {recorded} "
                f"cycles, but it holds {complete} complete cycles of runs"
            )
    if set(level_reports) != set(delays):
        raise GateUsageError(
            f"cannot {verb} the calibration {path}: its delay reports are for levels "
            f"{sorted(level_reports)} but its delays for {sorted(delays)}"
        )
    # Files written before the judging settings were stored have them in every report.
    settings = same_reports[0].get("settings") or {}
    for field in _LATER_FIELDS:
        if field not in context and field in settings:
            context[field] = settings[field]
    return {
        "path": path,
        "context": context,
        "same_reports": same_reports,
        "level_reports": level_reports,
        "delays": delays,
    }


def check_resume(earlier: dict, current: dict, levels: list[float]) -> None:
    """Raise GateUsageError unless ``current`` settings match those of the earlier calibration."""
    path = earlier["path"]
    context = earlier["context"]
    for field in _RESUME_FIELDS:
        if field not in context:
            continue  # a later field that neither the context nor the reports recorded
        if context[field] != current[field]:
            raise GateUsageError(
                f"cannot resume from {path}: it has {field}={context[field]!r}, this run "
                f"{field}={current[field]!r}; pass the same options or start a new calibration"
            )
    earlier_python = ".".join(str(context.get("python", "")).split(".")[:2])
    current_python = ".".join(current["python"].split(".")[:2])
    if earlier_python != current_python:
        raise GateUsageError(
            f"cannot resume from {path}: it was measured with Python {context.get('python')!r}, "
            f"this run uses {current['python']!r}"
        )
    if sorted(earlier["delays"]) != sorted(levels):
        raise GateUsageError(
            f"cannot resume from {path}: it has delay levels "
            f"{', '.join(f'{level:g}' for level in sorted(earlier['delays']))}%, this run "
            f"{', '.join(f'{level:g}' for level in sorted(levels))}%; pass the same "
            "--delay-percent options"
        )


def command_calibrate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if ":" not in args.delay_site:
        raise GateUsageError(
            f"--delay-site must look like MODULE:QUALNAME, got {args.delay_site!r}"
        )
    if args.runs < 1:
        raise GateUsageError(f"--runs must be at least 1, got {args.runs!r}")
    if args.rounds < MIN_ROUNDS:
        raise GateUsageError(
            f"--rounds must be at least {MIN_ROUNDS} (got {args.rounds}): with fewer rounds no "
            "difference can be significant, so every delay would be missed"
        )
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise GateUsageError(f"--max-minutes must be a positive number, got {args.max_minutes!r}")
    if args.delayed is not None:
        try:
            re.compile(args.delayed)
        except re.error as exc:
            raise GateUsageError(
                f"--delayed {args.delayed!r} is not a valid regular expression: {exc}"
            ) from None
    levels = args.delay_percent or [25.0]
    for level in levels:
        # A delay ten times the reference p99 is already far past any regression worth sizing.
        if not (math.isfinite(level) and 0 < level <= 1000):
            raise GateUsageError(
                f"--delay-percent must be a number above 0 and at most 1000, got {level!r}"
            )
    if len(set(levels)) != len(levels):
        raise GateUsageError(f"--delay-percent lists a level twice: {levels}")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise GateUsageError(f"--output {args.output} is a file, not a folder")
    written = [os.path.realpath(os.path.join(args.output, name)) for name in _OUTPUT_FILES]
    if args.resume is not None and os.path.realpath(args.resume) in written:
        raise GateUsageError(
            f"--output {args.output} would overwrite the calibration given to --resume; "
            "choose another folder, so the earlier file stays as it is"
        )
    conf = load_asv_config(args.config)
    root = os.path.dirname(os.path.abspath(args.config))
    repo = os.path.abspath(os.path.join(root, conf.get("repo", ".")))
    env_dir = os.path.join(root, conf.get("env_dir", "env"))
    machine = check_machine(args.machine)

    earlier = load_resume(args.resume) if args.resume else None
    if earlier is None:
        commit = resolve_revision(repo, args.revision or "HEAD", "--revision")
    else:
        commit = resolve_revision(repo, earlier["context"]["revision"], "the resumed calibration's")
        if args.revision is not None and resolve_revision(repo, args.revision, "--revision") != commit:
            raise GateUsageError(
                f"cannot resume from {args.resume}: it calibrated {commit[:12]}, not "
                f"--revision {args.revision}; leave --revision out to continue it"
            )
    context = {
        "revision": commit,
        "machine": machine,
        "rounds": args.rounds,
        "min_effect": settings.min_effect,
        "alpha": settings.alpha,
        "select": settings.select,
        "higher_is_better": list(settings.higher_is_better),
        "delay_site": args.delay_site,
        "delayed": args.delayed,
        "runs": args.runs,
        "python": sys.version.split()[0],
    }
    if earlier is not None:
        check_resume(earlier, context, levels)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    scratch = tempfile.mkdtemp(prefix="gate-calibration-")
    try:
        return _calibrate(args, context, earlier, levels, settings, repo, env_dir, scratch, progress)
    finally:
        if args.keep:
            progress(f"Kept the calibration clone and runs in {scratch}.")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _calibrate(args, context, earlier, levels, settings, repo, env_dir, scratch, progress) -> int:
    commit = context["revision"]
    clone = os.path.join(scratch, "repo")
    _git(scratch, "clone", "-q", repo, clone)
    _git(clone, "checkout", "-q", "-B", "calibration-same", commit)
    _git(clone, "commit", "-q", "--allow-empty", "-m", "calibration: same code")
    same_commit = _git(clone, "rev-parse", "HEAD")
    clone_config = os.path.join(clone, os.path.relpath(os.path.abspath(args.config), repo))

    def request_for(head: str, series: str) -> GateRequest:
        return GateRequest(
            config=clone_config,
            head=head,
            base=commit,
            machine=context["machine"],
            settings=settings,
            state_file=os.path.join(scratch, "unused-state"),
            work_dir=os.path.join(scratch, "runs", series),
            rounds=args.rounds,
            env_dir=env_dir,
            echo=False,
        )

    # Wrapping the delay site once with 1 ns proves it exists before any run is spent.
    _commit_delay(clone, commit, args.delay_site, 1, "calibration-check")

    deadline = None if args.max_minutes is None else time.monotonic() + args.max_minutes * 60
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if earlier is None:
        # The first same-code run also sizes the delays, and it is cycle 1's same-code run.
        same_reports = _run_series(
            "same code", 1, lambda: request_for(same_commit, "same"), progress
        )
        medians = [
            row["before"] for row in same_reports[0]["comparisons"] if row["before"] is not None
        ]
        if not medians:
            raise GateUsageError(
                "the first same-code run measured nothing; see its report in "
                f"{os.path.join(scratch, 'runs', 'same')}"
            )
        context["reference_p99"] = max(medians)
        delays = {level: _delay_ns(level, context["reference_p99"]) for level in levels}
        level_reports: dict[float, list[dict]] = {level: [] for level in levels}
        parts = []
    else:
        context["reference_p99"] = earlier["context"]["reference_p99"]
        delays = earlier["delays"]
        same_reports = list(earlier["same_reports"])
        level_reports = {level: list(earlier["level_reports"][level]) for level in levels}
        # A part without a record is the whole of a file written before parts were recorded.
        complete = min(len(same_reports), *(len(reports) for reports in level_reports.values()))
        parts = list(earlier["context"].get("parts") or [
            {"started": None, "cycles": complete, "python": earlier["context"].get("python")}
        ])
        context["resumed_from"] = os.path.abspath(args.resume)
    context["delays_ns"] = {str(level): delay for level, delay in delays.items()}
    part = {"started": started, "cycles": 0, "python": context["python"]}
    context["parts"] = parts

    delayed_commits = {
        level: _commit_delay(clone, commit, args.delay_site, delays[level], f"calibration-{level:g}")
        for level in levels
    }
    os.makedirs(args.output, exist_ok=True)

    # The scenarios take turns, one gate run each, so that slow drift of a shared machine
    # hits them alike, and a calibration cut short by --max-minutes still has as many runs
    # of every scenario. Cycle ``index`` runs each scenario that has at most ``index`` runs,
    # which also evens out a resumed file with more runs of one scenario than another. The
    # files are rewritten after every cycle.
    counts = [len(same_reports), *(len(reports) for reports in level_reports.values())]
    done = min(counts)
    # A scenario with more runs than --runs still gets its partners evened up to it.
    target = max(args.runs, *counts)
    if done >= target:
        progress(f"{args.resume} already has {done} cycles; --runs {args.runs} asks for no more.")
    else:
        context["parts"] = [*parts, part]
    context["runs"] = target
    for index in range(done, target):
        if index > done and deadline is not None and time.monotonic() >= deadline:
            progress(f"Stopping after {index} of {target} cycles: --max-minutes reached.")
            break
        if len(same_reports) <= index:
            same_reports += _run_series(
                f"same code (cycle {index + 1})", 1,
                lambda: request_for(same_commit, "same"), progress,
            )
        for level in levels:
            if len(level_reports[level]) <= index:
                level_reports[level] += _run_series(
                    f"+{level:g}% delay (cycle {index + 1})", 1,
                    lambda head=delayed_commits[level], level=level: request_for(
                        head, f"delay-{level:g}"
                    ),
                    progress,
                )
        part["cycles"] += 1
        summary = summarize(same_reports, level_reports, delays, args.delayed, context["parts"])
        _write_outputs(args.output, summary, context, same_reports, level_reports)

    summary = summarize(same_reports, level_reports, delays, args.delayed, context["parts"])
    print(_write_outputs(args.output, summary, context, same_reports, level_reports))
    return _exit_code(summary)


def command_summary(args: argparse.Namespace) -> int:
    """Print the summary of a stored calibration.json, with this version's totals.

    Nothing runs and the file is only read. The exit code is the one the calibration itself
    would give for these runs.
    """
    earlier = load_resume(args.calibration, "summarize")
    context = earlier["context"]
    summary = summarize(
        earlier["same_reports"], earlier["level_reports"], earlier["delays"],
        context.get("delayed"), context.get("parts"),
    )
    sys.stdout.write(render_summary(summary, context))
    return _exit_code(summary)


def add_rejudge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kept",
        required=True,
        metavar="DIR",
        help="the temporary folder that calibrate --keep left, with the clone and runs/",
    )
    parser.add_argument(
        "--calibration",
        required=True,
        metavar="FILE",
        help="calibration.json of that calibration, for its delays and settings",
    )
    parser.add_argument(
        "--output",
        default=os.path.join(".asv", "gate", "calibration-rejudged"),
        help="folder for calibration.md and calibration.json (default: %(default)s)",
    )


def _finished_runs(series_dir: str) -> list[str]:
    # A gate run folder contains report.json once the run has finished.
    if not os.path.isdir(series_dir):
        return []
    return [
        os.path.join(series_dir, name)
        for name in sorted(os.listdir(series_dir))
        if os.path.isfile(os.path.join(series_dir, name, "report.json"))
    ]


def _rejudge_run(run_dir: str, machine: str, settings: Settings, rounds: int) -> dict:
    with open(os.path.join(run_dir, "commits.txt"), encoding="utf-8") as stream:
        base, head = stream.read().split()[:2]
    report = compare_stored(
        os.path.join(run_dir, "asv.conf.json"),
        base,
        head,
        machine,
        settings,
        results_dir=os.path.join(run_dir, "results"),
        rounds=rounds,
    )
    return report.to_json()


def command_rejudge(args: argparse.Namespace) -> int:
    """Judge the kept runs of an earlier calibration again, with the current decision rule.

    Nothing is measured: the samples are those the calibration stored, so a change to the
    gate's statistics can be calibrated on the same data as the rule it replaces.
    """
    settings = settings_from_args(args)
    try:
        with open(args.calibration, encoding="utf-8") as stream:
            earlier = json.load(stream)
        context = dict(earlier["context"])
        delays = {
            float(row["level_percent"]): int(row["delay_ns"])
            for row in earlier["summary"]["detections"]
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GateUsageError(f"cannot read the calibration {args.calibration}: {exc}") from None
    runs_dir = os.path.join(args.kept, "runs")
    if not os.path.isdir(runs_dir):
        raise GateUsageError(f"{args.kept} has no runs/ folder; pass the folder calibrate --keep left")

    rounds = int(context["rounds"])
    machine = context["machine"]
    same_reports = [
        _rejudge_run(run, machine, settings, rounds)
        for run in _finished_runs(os.path.join(runs_dir, "same"))
    ]
    level_reports = {
        level: [
            _rejudge_run(run, machine, settings, rounds)
            for run in _finished_runs(os.path.join(runs_dir, f"delay-{level:g}"))
        ]
        for level in delays
    }
    if not same_reports:
        raise GateUsageError(f"no finished same-code run in {runs_dir}")
    context.update(
        min_effect=settings.min_effect,
        alpha=settings.alpha,
        rejudged_from=os.path.abspath(args.calibration),
    )
    os.makedirs(args.output, exist_ok=True)
    summary = summarize(same_reports, level_reports, delays, context.get("delayed"), context.get("parts"))
    print(_write_outputs(args.output, summary, context, same_reports, level_reports))
    return _exit_code(summary)
