#!/usr/bin/env python3
"""Print the restart-latency summary of one commit from asv's stored results.

Reads ``results/<machine>/<commit[:8]>-<environment>.json`` (asv's results
format, version 2) and prints, per load level and child count, the one_for_one
restart latency p50, p95, p99 and max in microseconds, the bare-coroutine
baseline beside it, their ratio, and whether p99 meets the SLO. Each figure is
the median over the batches that the benchmark reported. A second table sets the
same file against the suite's ratio targets: p99 within 2x of the bare re-run,
p99 flat in the child count, group restarts against bare task start, and memory
per idle child. The script only reads the results directory.

Exit status: 0 if every measured p99 meets the SLO, 1 if one misses it or was
not measured, 2 if the results cannot be found or read.
"""

import argparse
import ast
import json
import math
import socket
import subprocess
import sys
from pathlib import Path

SUPERVISED = "restart_latency.OneForOneRestartLatency.track_{}"
BASELINE = "restart_latency.BareRerunLatency.track_{}"
STATISTICS = ("p50", "p95", "p99", "max")

GROUP_RESTART = "group_restart.GroupRestart.time_group_restart"
PARALLEL_GROUP_RESTART = "group_restart.ParallelGroupRestart.time_group_restart"
BARE_START = "group_restart.BareTaskStart.time_bare_start"
MEMORY_RATIO = "overhead.IdleChildMemory.track_ratio"
# Group restarts are compared with bare task start from this many children on. Below
# it, the fixed cost of one restart decides the ratio more than the cost per child.
GROUP_MIN_CHILDREN = 100

EXIT_OK = 0
EXIT_SLO_MISSED = 1
EXIT_ERROR = 2


class SummaryError(Exception):
    """A results file that is missing or cannot be read; the message names it."""


def default_repository():
    return Path(__file__).resolve().parent.parent


def resolve_commit(repository, revision):
    """Return the full hash of ``revision`` in the git repository ``repository``."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
            cwd=repository,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise SummaryError("git not found on PATH; pass a full commit hash with --commit") from None
    commit = completed.stdout.strip()
    if completed.returncode != 0 or not commit:
        raise SummaryError(f"unknown revision {revision!r} in git repository {str(repository)!r}")
    return commit


def find_result_files(results_dir, machine, commit):
    """Return the results files of ``commit`` on ``machine``, one per asv environment."""
    machine_dir = results_dir / machine
    if not machine_dir.is_dir():
        known = sorted(p.name for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() else []
        raise SummaryError(
            f"no results directory {str(machine_dir)!r} for machine {machine!r}; "
            f"machines with results: {known or 'none'}. Run `make bench` or pass --machine."
        )
    files = sorted(machine_dir.glob(f"{commit[:8]}-*.json"))
    if not files:
        raise SummaryError(
            f"no results for commit {commit[:8]} in {str(machine_dir)!r}; "
            f"run `make bench` to measure HEAD, or pass --commit."
        )
    return files


def load_results(path):
    """Return ``{benchmark: {"params": [...], "result": [...]}}`` from an asv results file.

    Raises SummaryError naming ``path`` if the file cannot be parsed or lacks
    a field this script needs.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SummaryError(f"cannot read results file {str(path)!r}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SummaryError(f"results file {str(path)!r} is not valid JSON: {exc}") from exc

    if not isinstance(data, dict):
        raise SummaryError(f"results file {str(path)!r}: expected a JSON object, got {type(data).__name__}")
    if data.get("version") != 2:
        raise SummaryError(
            f"results file {str(path)!r}: unsupported format version {data.get('version')!r}, expected 2"
        )
    columns = data.get("result_columns")
    results = data.get("results")
    if not isinstance(columns, list) or "result" not in columns or "params" not in columns:
        raise SummaryError(f"results file {str(path)!r}: missing or invalid 'result_columns' {columns!r}")
    if not isinstance(results, dict):
        raise SummaryError(f"results file {str(path)!r}: missing or invalid 'results'")

    result_index = columns.index("result")
    params_index = columns.index("params")
    table = {}
    for name, row in results.items():
        if not isinstance(row, list) or len(row) <= max(result_index, params_index):
            raise SummaryError(f"results file {str(path)!r}: malformed row for {name!r}: {row!r}")
        values = row[result_index]
        params = row[params_index]
        if values is not None and not isinstance(values, list):
            values = [values]
        if not isinstance(params, list):
            raise SummaryError(f"results file {str(path)!r}: malformed params for {name!r}: {params!r}")
        table[name] = {"params": params, "result": values}
    return table, data


def _parse_param(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def index_by_params(entry, path, name):
    """Map each parameter combination (a tuple of values) of one benchmark to its value."""
    params = [[_parse_param(value) for value in axis] for axis in entry["params"]]
    combinations = [()]
    for axis in params:
        combinations = [combination + (value,) for combination in combinations for value in axis]
    values = entry["result"]
    if values is None:
        # asv stores None for the whole benchmark when its build or setup_cache failed.
        values = [None] * len(combinations)
    if len(values) != len(combinations):
        raise SummaryError(
            f"results file {str(path)!r}: {name!r} has {len(values)} values "
            f"for {len(combinations)} parameter combinations"
        )
    return dict(zip(combinations, values))


def _is_measured(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Marks a benchmark or combination absent from the results file, as opposed
# to None, which asv stores for a failed one.
MISSING = object()


def format_micros(value):
    if value is MISSING:
        return "-"
    if value is None:
        return "failed"
    if not _is_measured(value):
        return "skipped"
    return f"{value * 1e6:,.1f}"


def format_ratio(numerator, denominator):
    if not (_is_measured(numerator) and _is_measured(denominator)) or denominator == 0:
        return "-"
    return f"{numerator / denominator:.1f}x"


def build_rows(table, path, slo):
    """Return (header, rows, every_p99_meets_slo) for one results file."""
    supervised = {}
    for statistic in STATISTICS:
        name = SUPERVISED.format(statistic)
        if name in table:
            supervised[statistic] = index_by_params(table[name], path, name)
    if not supervised:
        raise SummaryError(
            f"results file {str(path)!r} has no restart-latency results "
            f"({SUPERVISED.format('*')}); was the run limited with -b?"
        )
    baseline = {}
    for statistic in ("p50", "p99"):
        name = BASELINE.format(statistic)
        if name in table:
            baseline[statistic] = {
                combination[0]: value
                for combination, value in index_by_params(table[name], path, name).items()
            }

    combinations = []
    for statistic_values in supervised.values():
        for combination in statistic_values:
            if combination not in combinations:
                combinations.append(combination)

    header = [
        "load",
        "children",
        "p50",
        "p95",
        "p99",
        "max",
        "base p50",
        "base p99",
        "p50 ratio",
        "p99 ratio",
        f"p99 <= {slo:g} s",
    ]
    rows = []
    all_met = True
    for combination in combinations:
        load, children = combination
        values = {s: supervised.get(s, {}).get(combination, MISSING) for s in STATISTICS}
        base_p50 = baseline.get("p50", {}).get(load, MISSING)
        base_p99 = baseline.get("p99", {}).get(load, MISSING)
        p99 = values["p99"]
        if _is_measured(p99):
            meets = p99 <= slo
            verdict = "yes" if meets else "NO"
        else:
            meets = False
            verdict = "n/a"
        all_met = all_met and meets
        rows.append(
            [
                str(load),
                f"{children:,}" if isinstance(children, int) else str(children),
                *(format_micros(values[s]) for s in STATISTICS),
                format_micros(base_p50),
                format_micros(base_p99),
                format_ratio(values["p50"], base_p50),
                format_ratio(p99, base_p99),
                verdict,
            ]
        )
    return header, rows, all_met


def _ratio(numerator, denominator):
    """Return numerator / denominator rounded as printed (2 decimals), or None if either is not a positive number."""
    if not (_is_measured(numerator) and _is_measured(denominator)) or numerator <= 0 or denominator <= 0:
        return None
    # The verdict uses the printed value, so a ratio shown as 2.00x never counts as a miss.
    return round(numerator / denominator, 2)


def _ratio_text(value):
    return f"{value:.2f}x"


def _absent_text(value):
    """Describe a value that is not a positive number: "not measured", "failed", "skipped" or "invalid"."""
    if value is MISSING:
        return "not measured"
    if _is_measured(value):
        return "invalid"  # zero or negative
    return format_micros(value)


def _first_unusable(*values):
    """Return the first of ``values`` that is not a positive number."""
    return next(value for value in values if not (_is_measured(value) and value > 0))


def _verdict(ratios, limit, complete=True):
    """Return "met", "missed", "incomplete" (some parts not measured) or "not measured"."""
    if not ratios:
        return "not measured"
    if max(ratios) > limit:
        return "missed"
    return "met" if complete else "incomplete"


def _latency_targets(supervised, baseline):
    """Return the rows for the p99 ratio to the bare re-run and for flatness in the child count."""
    p99 = supervised.get("p99", {})
    base = baseline.get("p99", {})
    ratios = []
    for (load, _), value in p99.items():
        ratio = _ratio(value, base.get(load, MISSING))
        if ratio is not None:
            ratios.append(ratio)
    if ratios:
        within = sum(1 for ratio in ratios if ratio <= 2.0)
        measured = f"{_ratio_text(min(ratios))} to {_ratio_text(max(ratios))}, {within} of {len(p99)} rows within"
    else:
        measured = "not measured"
    rows = [["one_for_one p99 within 2x of the bare re-run", measured, _verdict(ratios, 2.0, len(ratios) == len(p99))]]

    by_load = {}
    for (load, children), value in p99.items():
        if isinstance(children, int):
            by_load.setdefault(load, {})[children] = value
    sizes = sorted({size for values in by_load.values() for size in values})
    if len(sizes) < 2:
        return rows
    smallest, largest = sizes[0], sizes[-1]
    flat = []
    parts = []
    for load, values in by_load.items():
        large, small = values.get(largest, MISSING), values.get(smallest, MISSING)
        ratio = _ratio(large, small)
        if ratio is None:
            parts.append(f"{load} {_absent_text(_first_unusable(large, small))}")
        else:
            flat.append(ratio)
            parts.append(f"{load} {_ratio_text(ratio)}")
    rows.append([
        f"p99 at {largest:,} children within 1.5x of {smallest:,} {'child' if smallest == 1 else 'children'}",
        ", ".join(parts),
        _verdict(flat, 1.5, len(flat) == len(by_load)),
    ])
    return rows


def _sizes(values):
    return sorted(size for size in values if isinstance(size, int))


def _one_for_all(table, path, name):
    """Map child count to the stored time of ``name``'s one_for_all rows; {} if absent."""
    if name not in table:
        return {}
    return {
        combination[-1]: value
        for combination, value in index_by_params(table[name], path, name).items()
        if len(combination) == 2 and combination[0] == "one_for_all"
    }


def _group_targets(table, path):
    """Return the rows that compare group restarts with bare task start, and the linearity row."""
    bare = {}
    if BARE_START in table:
        bare = {
            combination[0]: value
            for combination, value in index_by_params(table[BARE_START], path, BARE_START).items()
            if len(combination) == 1
        }
    rows = []
    for label, name in (
        ("one_for_all per child within 2x of bare task start", GROUP_RESTART),
        ("the same with parallel_group_restart=True", PARALLEL_GROUP_RESTART),
    ):
        values = _one_for_all(table, path, name)
        compared = [size for size in _sizes(values) if size >= GROUP_MIN_CHILDREN]
        if not compared or not bare:
            rows.append([label, "not measured", "not measured"])
            continue
        ratios = []
        parts = []
        for children in compared:
            value, base = values[children], bare.get(children, MISSING)
            ratio = _ratio(value, base)
            if ratio is None:
                parts.append(f"{_absent_text(_first_unusable(value, base))} at {children:,}")
            else:
                ratios.append(ratio)
                parts.append(f"{_ratio_text(ratio)} at {children:,}")
        rows.append([label, ", ".join(parts), _verdict(ratios, 2.0, len(ratios) == len(compared))])

    # Linearity compares the two largest child counts, whether or not both were measured.
    values = _one_for_all(table, path, GROUP_RESTART)
    sizes = [size for size in _sizes(values) if size > 0]
    if len(sizes) >= 2 and sizes[-2] >= GROUP_MIN_CHILDREN:
        label = "one_for_all linear in N (per-child cost, within 1.5x)"
        small, large = sizes[-2], sizes[-1]
        if _ratio(values[large], values[small]) is None:
            bad = next(size for size in (small, large) if not (_is_measured(values[size]) and values[size] > 0))
            rows.append([label, f"{_absent_text(values[bad])} at {bad:,}", "not measured"])
        else:
            growth = _ratio(values[large] / large, values[small] / small)
            rows.append([
                label,
                f"{values[small] / small * 1e6:.1f} µs at {small:,}, {values[large] / large * 1e6:.1f} µs "
                f"at {large:,}: {_ratio_text(growth)}",
                _verdict([growth], 1.5),
            ])
    return rows


def build_target_rows(table, path):
    """Return (header, rows) that compare this run with the suite's ratio targets.

    Each row names a target, what this run measured and "met", "missed", "incomplete" or
    "not measured". Benchmarks absent from the file, for example after ``asv run -b``, give
    "not measured". A failed or skipped part of a target gives "incomplete", unless the
    parts that were measured already miss it.
    """
    supervised = {}
    name = SUPERVISED.format("p99")
    if name in table:
        supervised["p99"] = index_by_params(table[name], path, name)
    baseline = {}
    name = BASELINE.format("p99")
    if name in table:
        baseline["p99"] = {
            combination[0]: value
            for combination, value in index_by_params(table[name], path, name).items()
            if len(combination) == 1
        }
    rows = _latency_targets(supervised, baseline)
    rows += _group_targets(table, path)

    value = MISSING
    if MEMORY_RATIO in table:
        values = list(index_by_params(table[MEMORY_RATIO], path, MEMORY_RATIO).values())
        if len(values) != 1:
            raise SummaryError(
                f"results file {str(path)!r}: {MEMORY_RATIO!r} has {len(values)} values, expected 1"
            )
        value = values[0]
    ratio = _ratio(value, 1.0)
    rows.append([
        "memory per idle child within 2x of a bare task",
        _ratio_text(ratio) if ratio is not None else _absent_text(value),
        _verdict([ratio] if ratio is not None else [], 2.0),
    ])
    return ["target", "this run", "status"], rows


def render_table(header, rows, left=(0,)):
    """Return the rows as aligned text; the columns in ``left`` align left, the others right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, None, *rows]:
        if row is None:
            lines.append("  ".join("-" * width for width in widths))
            continue
        cells = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def machine_info(results_dir, machine):
    """Return asv's machine.json for ``machine`` as a dict, or {} if it is missing or unreadable.

    Results files written with ``asv run -E`` lack the CPU fields that machine.json has.
    """
    try:
        info = json.loads((results_dir / machine / "machine.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def summarize(results_dir, machine, commit, slo, out=sys.stdout):
    """Print the summary of every results file of ``commit``; return the exit status."""
    status = EXIT_OK
    for path in find_result_files(results_dir, machine, commit):
        table, data = load_results(path)
        header, rows, all_met = build_rows(table, path, slo)
        params = {**machine_info(results_dir, machine), **(data.get("params") or {})}
        print(
            f"Restart latency of one_for_one children, in microseconds (median over batches)\n"
            f"commit {commit[:8]}, machine {machine!r} ({params.get('cpu', '?')}, "
            f"{params.get('num_cpu', '?')} CPUs), environment {data.get('env_name', '?')!r}\n"
            f"from {path}\n"
            f"base = bare coroutine re-run in the same task; ratio = supervisor / base\n",
            file=out,
        )
        print(render_table(header, rows), file=out)
        print(file=out)
        target_header, target_rows = build_target_rows(table, path)
        print("Ratio targets, from the same file (none of them changes the exit status)\n", file=out)
        print(render_table(target_header, target_rows, left=(0, 1, 2)), file=out)
        print(file=out)
        if not all_met:
            status = EXIT_SLO_MISSED
    return status


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Print the restart-latency summary of one commit from asv's results/.",
        epilog="Exit status: 0 all p99 within the SLO, 1 a p99 missed it or is missing, 2 an error.",
    )
    parser.add_argument(
        "--commit",
        default="HEAD",
        help="git revision whose results to read (default: HEAD)",
    )
    parser.add_argument(
        "--machine",
        default=socket.gethostname().split(".")[0],
        help="asv machine name, a folder under results/ (default: the short host name)",
    )
    parser.add_argument(
        "--slo",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="p99 restart latency that each row must not exceed, in seconds (default: 1.0)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        metavar="DIR",
        help="asv results directory (default: results/ in the repository)",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=default_repository(),
        metavar="DIR",
        help="git repository that resolves --commit (default: this script's repository)",
    )
    args = parser.parse_args(argv)
    if not math.isfinite(args.slo) or args.slo <= 0:
        parser.error(f"--slo must be a positive number of seconds, got {args.slo!r}")
    args.repo = args.repo.resolve()
    if args.results is None:
        args.results = args.repo / "results"
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        commit = resolve_commit(args.repo, args.commit)
        return summarize(args.results, args.machine, commit, args.slo)
    except SummaryError as exc:
        print(f"bench_summary: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
