#!/usr/bin/env python3
"""Write the restart-latency report: the stored summary table and one CDF plot per load level.

``make bench`` runs this after ``asv publish``, which empties the site folder,
and writes into ``.asv/html/latency/``: ``index.html`` (``asv preview`` serves
it at ``/latency/``), ``report.md`` with the same content, and
``cdf-<load>.png`` for each load level.

The report has two parts:

1. The table that ``tools/bench_summary.py`` prints, read from asv's stored
   results of one commit with that script's own functions: per load level and
   child count, the median over batches of each batch's p50, p95, p99 and max.
2. Latency distributions. asv stores only those batch percentiles, so this tool
   measures again: ``benchmarks._raw.collect_latencies`` runs the suite's own
   measurement functions in this interpreter, for the bare baseline and for each
   chosen child count at every load level, one after another. Each plot shows
   the empirical CDF of every single restart, with p50, p95 and p99 marked, and
   a second panel with the tail on a log scale.

The distributions measure the ``supervisor`` package that this interpreter
imports, which in the development venv is the working tree, whereas asv
measured the committed revision in its own environment. The report names the
commit, lists the files in which the working tree differs from it, and records
the machine and the command line.

Exit status: 0 when every part was written; 2 when the stored results could not
be read or a measurement failed, in which case the report is still written and
shows the error. Whether p99 meets the SLO decides bench_summary's exit status;
this report only repeats its verdict column.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import platform
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make `tools` and `benchmarks` importable from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmarks import _raw, _restart
from benchmarks._load import LOAD_LEVELS
from benchmarks._stats import PERCENTILES, summarize
from tools import bench_summary

# At these defaults the 12 measurements of 2,020 restarts each (one crash
# every 1 ms idle and light, every 2 ms heavy) took 36 s in all on a 2-core
# shared sandbox (CPython 3.11.7). 2,000 restarts put 20 of them above p99.
DEFAULT_CHILDREN = (1, 100, 10000)
DEFAULT_RESTARTS = 2000

# Percentiles marked on the plots, with their marker shapes.
MARKED = {"p50": "o", "p95": "^", "p99": "s"}

EXIT_OK = 0
EXIT_INCOMPLETE = 2


@dataclass
class Series:
    """The restart latencies of one curve: the bare baseline (``children`` None) or a supervisor."""

    load: str
    children: int | None
    latencies_ns: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self):
        if self.children is None:
            return "bare re-run (baseline)"
        noun = "child" if self.children == 1 else "children"
        return f"supervisor, {self.children:,} {noun}"

    @property
    def measured(self):
        return self.error is None and bool(self.latencies_ns)

    def percentiles_us(self):
        """Return ``{"p50": ..., "p95": ..., "p99": ..., "max": ...}`` in microseconds."""
        return summarize([latency / 1e3 for latency in self.latencies_ns])


@dataclass
class StoredTable:
    """The bench_summary table of one asv results file, or the reason it is missing."""

    source: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Report:
    provenance: dict[str, str]
    measured_label: str  # what the distributions measured, short enough for a plot caption
    stored: list[StoredTable]
    series: list[Series]
    loads: list[str]
    restarts: int
    figures: dict[str, str] = field(default_factory=dict)  # load level -> PNG file name

    @property
    def complete(self):
        stored_ok = all(table.error is None for table in self.stored)
        return stored_ok and all(series.measured for series in self.series)


# ---------------------------------------------------------------------- arithmetic


def empirical_cdf(values):
    """Return ``(x, fraction)``: the sorted distinct values and the fraction of values <= each.

    Raises ValueError if ``values`` is empty.
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("cannot compute the CDF of an empty sample")
    distinct, counts = np.unique(array, return_counts=True)
    return distinct, np.cumsum(counts) / array.size


def exceedance(values):
    """Return ``(x, fraction)``: the sorted distinct values and the fraction of values >= each.

    The fraction never reaches 0 (the maximum itself has 1 / n), so it can be
    drawn on a log scale. Raises ValueError if ``values`` is empty.
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("cannot compute the exceedance of an empty sample")
    distinct, counts = np.unique(array, return_counts=True)
    below = np.cumsum(counts) - counts
    return distinct, (array.size - below) / array.size


def ratio(numerator, denominator):
    if denominator <= 0:
        return None
    return numerator / denominator


# ---------------------------------------------------------------------- inputs


def read_stored_tables(results_dir, machine, commit, slo):
    """Return one StoredTable per asv results file of ``commit`` on ``machine``."""
    try:
        paths = bench_summary.find_result_files(results_dir, machine, commit)
    except bench_summary.SummaryError as exc:
        return [StoredTable(source=str(results_dir / machine), error=str(exc))]

    tables = []
    for path in paths:
        try:
            table, _ = bench_summary.load_results(path)
            header, rows, _ = bench_summary.build_rows(table, path, slo)
        except bench_summary.SummaryError as exc:
            tables.append(StoredTable(source=str(path), error=str(exc)))
            continue
        tables.append(StoredTable(source=str(path), header=header, rows=rows))
    return tables


def measure_series(loads, child_counts, restarts, seed, log=sys.stderr):
    """Measure the baseline and every child count at every load level; return the Series."""
    all_series = []
    for load in loads:
        for children in (None, *child_counts):
            series = Series(load, children)
            print(f"latency_report: measuring {series.label} at load {load!r}", file=log, flush=True)
            try:
                if children is None:
                    latencies = _raw.collect_latencies(_restart.measure_bare, load, restarts, seed)
                else:
                    latencies = _raw.collect_latencies(
                        _restart.measure_supervised, load, children, restarts, seed
                    )
            except NotImplementedError as exc:
                series.error = f"skipped: {exc}"
            except Exception as exc:  # one failed series must not lose the others
                series.error = f"{type(exc).__name__}: {exc}"
            else:
                series.latencies_ns = latencies
            if series.error is not None:
                print(f"latency_report: {series.label} at load {load!r}: {series.error}", file=log)
            all_series.append(series)
    return all_series


def _git(repository, *args):
    try:
        completed = subprocess.run(
            ["git", *args], cwd=repository, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()


def describe_machine(results_dir, machine):
    """Describe ``machine`` from asv's machine.json if it exists, else from this interpreter's host."""
    path = results_dir / machine / "machine.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict):
        return (
            f"{machine} ({info.get('cpu', '?')}, {info.get('num_cpu', '?')} CPUs, "
            f"{info.get('os', '?')}; from {path})"
        )
    return f"{machine} (no asv machine.json; host {platform.node()}, {platform.platform()})"


def describe_measured_tree(repository):
    """Describe the ``supervisor`` package this interpreter imports, which the distributions measure.

    Returns ``(description, short_label)``; the label goes into the plot captions.
    """
    import supervisor

    package = Path(supervisor.__file__).resolve().parent
    if package.parent != repository:
        return f"{package}, outside the repository, so its revision is unknown", "installed package"

    head = _git(repository, "rev-parse", "HEAD")
    status = _git(repository, "status", "--porcelain", "--", "supervisor", "benchmarks")
    if head is None or status is None:
        return f"{package}, revision unknown (git failed)", "unknown revision"
    subject = _git(repository, "log", "-1", "--format=%s", head) or "?"
    if status:
        changed = [line[3:] for line in status.splitlines()]
        listed = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        return (
            f"{package}, working tree at {head} ({subject}) with uncommitted changes in {listed}",
            f"working tree at {head[:8]} with uncommitted changes",
        )
    return f"{package}, working tree at {head} ({subject}), clean", f"commit {head[:8]}"


def collect_provenance(repository, commit, results_dir, machine):
    """Return the commit, machine, interpreter and command behind the report, in display order."""
    measured, measured_label = describe_measured_tree(repository)
    subject = _git(repository, "log", "-1", "--format=%s", commit) or "?"
    return {
        "stored results of": f"commit {commit} ({subject})",
        "distributions measured on": measured,
        "machine": describe_machine(results_dir, machine),
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
        "directory": str(Path.cwd()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }, (
        f"{measured_label}, machine {machine}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


# ---------------------------------------------------------------------- plots


def _format_micros(value, _position=None):
    return f"{value:g}"


def _format_fraction(value, _position=None):
    return f"{value * 100:g}%"


def plot_load(load, series_list, path, caption):
    """Write the CDF and tail plot of one load level to ``path`` (PNG)."""
    measured = [series for series in series_list if series.measured]
    figure = Figure(figsize=(13, 5.6), layout="constrained")
    FigureCanvasAgg(figure)
    operations = LOAD_LEVELS.get(load)
    load_text = "no other tasks" if operations == 0 else f"{operations} concurrent operations"
    figure.suptitle(
        f"Restart latency at load {load!r} ({load_text}): "
        f"one_for_one supervisor beside the bare re-run\n{caption}",
        fontsize=11,
    )
    if not measured:
        # An image that states why it is empty, rather than empty axes.
        lines = ["No measurement succeeded at this load level:"]
        lines += [f"{series.label}: {series.error or 'no latencies'}" for series in series_list]
        figure.text(0.5, 0.5, "\n".join(lines), ha="center", va="center", fontsize=10, wrap=True)
        figure.savefig(path, dpi=100)
        return

    cdf_axes, tail_axes = figure.subplots(1, 2)

    baseline = next((series for series in measured if series.children is None), None)
    base_points = baseline.percentiles_us() if baseline is not None else None
    colours = iter(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"])
    largest_size = 1
    for series in measured:
        latencies_us = np.asarray(series.latencies_ns, dtype=float) / 1e3
        largest_size = max(largest_size, latencies_us.size)
        points = series.percentiles_us()
        colour = "black" if series.children is None else next(colours, "tab:gray")

        figures = []
        for name in ("p50", "p99"):
            text = f"{name} {points[name]:,.1f} µs"
            if series.children is not None and base_points is not None:
                times = ratio(points[name], base_points[name])
                if times is not None:
                    text += f" ({times:.1f}x base)"
            figures.append(text)
        label = f"{series.label}: {', '.join(figures)}"

        x, at_most = empirical_cdf(latencies_us)
        cdf_axes.step(x, at_most, where="post", color=colour, linewidth=1.4, label=label)
        x, at_least = exceedance(latencies_us)
        tail_axes.step(x, at_least, where="pre", color=colour, linewidth=1.4)

        for name, marker in MARKED.items():
            fraction = PERCENTILES[name] / 100
            style = {"marker": marker, "color": colour, "markersize": 7, "linestyle": "none",
                     "markeredgecolor": "white", "markeredgewidth": 0.8, "zorder": 3}
            cdf_axes.plot([points[name]], [fraction], **style)
            tail_axes.plot([points[name]], [1 - fraction], **style)

    # Guides at the marked fractions, labelled on the right edge.
    for name in MARKED:
        fraction = PERCENTILES[name] / 100
        for axes, level in ((cdf_axes, fraction), (tail_axes, 1 - fraction)):
            axes.axhline(level, color="0.75", linestyle=":", linewidth=0.8, zorder=0)
            axes.text(1.005, level, name, transform=axes.get_yaxis_transform(),
                      va="center", ha="left", fontsize=8, color="0.4")

    for axes in (cdf_axes, tail_axes):
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(ticker.FuncFormatter(_format_micros))
        axes.xaxis.set_minor_formatter(ticker.NullFormatter())
        axes.set_xlabel("restart latency, µs (log scale)")
        axes.grid(True, which="major", color="0.92")

    cdf_axes.set_ylim(0, 1.02)
    cdf_axes.yaxis.set_major_formatter(ticker.FuncFormatter(_format_fraction))
    cdf_axes.set_ylabel("restarts at most this slow")
    cdf_axes.set_title("CDF", fontsize=10)

    tail_axes.set_yscale("log")
    tail_axes.set_ylim(0.5 / largest_size, 1.3)
    tail_axes.yaxis.set_major_formatter(ticker.FuncFormatter(_format_fraction))
    tail_axes.set_ylabel("restarts at least this slow (log scale)")
    tail_axes.set_title("tail: each curve ends at its slowest restart", fontsize=10)

    # Below both panels, so that it hides no part of a curve.
    curves, labels = cdf_axes.get_legend_handles_labels()
    marks = [
        Line2D([], [], marker=marker, color="0.3", linestyle="none", label=f"{name} mark")
        for name, marker in MARKED.items()
    ]
    figure.legend(
        handles=[*curves, *marks],
        labels=[*labels, *(mark.get_label() for mark in marks)],
        loc="outside lower center",
        ncols=2,
        fontsize=9,
        title="x base: ratio to the bare re-run's figure at the same load",
        title_fontsize=9,
    )
    figure.savefig(path, dpi=100)


# ---------------------------------------------------------------------- tables


def distribution_table(series_list):
    """Return (header, rows) of the measured distributions, in microseconds, with ratios to the baseline."""
    header = ["load", "series", "restarts", "p50", "p95", "p99", "max", "p50 ratio", "p99 ratio"]
    rows = []
    baselines = {
        series.load: series.percentiles_us()
        for series in series_list
        if series.children is None and series.measured
    }
    for series in series_list:
        if not series.measured:
            rows.append([series.load, series.label, "0", series.error or "no latencies", "", "", "", "", ""])
            continue
        points = series.percentiles_us()
        base = baselines.get(series.load)
        ratios = ["-", "-"]
        if series.children is not None and base is not None:
            ratios = [
                "-" if value is None else f"{value:.1f}x"
                for value in (ratio(points["p50"], base["p50"]), ratio(points["p99"], base["p99"]))
            ]
        rows.append(
            [
                series.load,
                series.label,
                f"{len(series.latencies_ns):,}",
                *(f"{points[name]:,.1f}" for name in ("p50", "p95", "p99", "max")),
                *ratios,
            ]
        )
    return header, rows


def _markdown_table(header, rows):
    def cell(text):
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(name) for name in header) + " |"]
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    lines.extend("| " + " | ".join(cell(value) for value in row) + " |" for row in rows)
    return "\n".join(lines)


def _html_table(header, rows):
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in row) + "</tr>"
        for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


INTRODUCTION = (
    "Restart latency runs from the failing child's `time.perf_counter_ns()` just before it raises "
    "to its replacement's, just before it reports ready. The baseline runs the same child code under "
    "the same crash schedule and load, but re-runs the coroutine in the same task with no supervisor."
)

STORED_NOTE = (
    "From asv's stored results, as `tools/bench_summary.py` prints them: microseconds, each figure "
    "the median over batches of 100 restarts; ratio = supervisor / baseline."
)


def distribution_note(restarts):
    intervals = ", ".join(f"{load} every {seconds * 1e3:g} ms" for load, seconds in _restart.CRASH_INTERVALS.items())
    return (
        f"Measured for this report, one series after another in this interpreter: {restarts:,} restarts "
        f"per series after {_restart.WARMUP_RESTARTS} warm-up restarts, crashes injected on a fixed grid "
        f"({intervals}). Percentiles are over all restarts of a series, in microseconds, "
        f"so they differ slightly from the batch medians above. "
        f"In each plot the left panel is the CDF and the right panel the tail on a log scale, "
        f"where p99 sits at 1% and each curve ends at its slowest restart."
    )


def render_markdown(report):
    lines = ["# Restart latency report", "", INTRODUCTION, ""]
    lines.extend(f"- {name}: {value}" for name, value in report.provenance.items())
    lines += ["", "## Stored asv results", "", STORED_NOTE, ""]
    for table in report.stored:
        lines.append(f"Source: `{table.source}`")
        lines.append("")
        if table.error is not None:
            lines += [f"Not available: {table.error}", ""]
        else:
            lines += [_markdown_table(table.header, table.rows), ""]

    lines += ["## Latency distributions", "", distribution_note(report.restarts), ""]
    header, rows = distribution_table(report.series)
    lines += [_markdown_table(header, rows), ""]
    for load in report.loads:
        if load in report.figures:
            lines += [f"![restart latency CDF at load {load}]({report.figures[load]})", ""]
    return "\n".join(lines)


def render_html(report):
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Restart latency report</title>',
        "<style>body{font-family:sans-serif;max-width:1350px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}td:first-child,td:nth-child(2),th{text-align:left}img{max-width:100%}"
        "dt{font-weight:bold}</style></head><body>",
        "<h1>Restart latency report</h1>",
        f"<p>{html.escape(INTRODUCTION)}</p>",
        "<dl>",
    ]
    for name, value in report.provenance.items():
        parts.append(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>")
    parts += ["</dl>", "<h2>Stored asv results</h2>", f"<p>{html.escape(STORED_NOTE)}</p>"]
    for table in report.stored:
        parts.append(f"<p>Source: <code>{html.escape(table.source)}</code></p>")
        if table.error is not None:
            parts.append(f"<p>Not available: {html.escape(table.error)}</p>")
        else:
            parts.append(_html_table(table.header, table.rows))

    parts += ["<h2>Latency distributions</h2>", f"<p>{html.escape(distribution_note(report.restarts))}</p>"]
    header, rows = distribution_table(report.series)
    parts.append(_html_table(header, rows))
    for load in report.loads:
        if load in report.figures:
            name = html.escape(report.figures[load])
            parts.append(f'<p><img src="{name}" alt="restart latency CDF at load {html.escape(load)}"></p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report, output_dir):
    """Draw one PNG per load level and write index.html and report.md into ``output_dir``.

    Files of earlier reports that this one does not overwrite are left in place.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    caption = f"{report.measured_label}, {report.restarts:,} restarts per curve, {report.provenance.get('date', '')}"
    for load in report.loads:
        name = f"cdf-{load}.png"
        plot_load(load, [series for series in report.series if series.load == load], output_dir / name, caption)
        report.figures[load] = name
    (output_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (output_dir / "index.html").write_text(render_html(report), encoding="utf-8")
    return output_dir / "index.html"


# ---------------------------------------------------------------------- command line


def _parse_list(parser, option, text, convert):
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            values.append(convert(item))
        except ValueError as exc:
            parser.error(f"{option}: invalid value {item!r} in {text!r}: {exc}")
    if not values:
        parser.error(f"{option} must name at least one value, got {text!r}")
    return values


def _child_count(text):
    value = int(text.replace("_", ""))
    if value < 1:
        raise ValueError("a child count must be at least 1")
    return value


def _load_level(text):
    if text not in LOAD_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOAD_LEVELS)}")
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Write the restart-latency report (summary table and CDF plots) next to the asv site.",
        epilog="Exit status: 0 report complete, 2 a part of it failed (the report still shows why).",
    )
    parser.add_argument("--commit", default="HEAD", help="git revision whose stored results to show (default: HEAD)")
    parser.add_argument(
        "--machine",
        default=socket.gethostname().split(".")[0],
        help="asv machine name, a folder under results/ (default: the short host name)",
    )
    parser.add_argument("--slo", type=float, default=1.0, metavar="SECONDS",
                        help="p99 bound shown in the table's last column, in seconds (default: 1.0)")
    parser.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="asv results directory (default: results/ in the repository)")
    parser.add_argument("--repo", type=Path, default=bench_summary.default_repository(), metavar="DIR",
                        help="git repository that resolves --commit (default: this script's repository)")
    parser.add_argument("--output", type=Path, default=None, metavar="DIR",
                        help="folder for index.html, report.md and the PNGs (default: .asv/html/latency in the repository)")
    parser.add_argument("--loads", default=",".join(LOAD_LEVELS), metavar="LIST",
                        help=f"comma-separated load levels to plot (default: {','.join(LOAD_LEVELS)})")
    parser.add_argument("--children", default=",".join(str(n) for n in DEFAULT_CHILDREN), metavar="LIST",
                        help="comma-separated child counts measured at every load level "
                             f"(default: {','.join(str(n) for n in DEFAULT_CHILDREN)})")
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS,
                        help=f"restarts measured per series after the warm-up (default: {DEFAULT_RESTARTS})")
    parser.add_argument("--seed", type=int, default=_restart.SEED, help="seed of the crash schedule")
    args = parser.parse_args(argv)

    if not np.isfinite(args.slo) or args.slo <= 0:
        parser.error(f"--slo must be a positive number of seconds, got {args.slo!r}")
    if args.restarts < 1:
        parser.error(f"--restarts must be at least 1, got {args.restarts!r}")
    args.loads = _parse_list(parser, "--loads", args.loads, _load_level)
    args.children = _parse_list(parser, "--children", args.children, _child_count)
    args.repo = args.repo.resolve()
    if args.results is None:
        args.results = args.repo / "results"
    if args.output is None:
        args.output = args.repo / ".asv" / "html" / "latency"
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        commit = bench_summary.resolve_commit(args.repo, args.commit)
    except bench_summary.SummaryError as exc:
        print(f"latency_report: error: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE

    stored = read_stored_tables(args.results, args.machine, commit, args.slo)
    series = measure_series(args.loads, args.children, args.restarts, args.seed)
    provenance, measured_label = collect_provenance(args.repo, commit, args.results, args.machine)
    report = Report(
        provenance=provenance,
        measured_label=measured_label,
        stored=stored,
        series=series,
        loads=args.loads,
        restarts=args.restarts,
    )
    index = write_report(report, args.output)
    print(f"latency report: {index}")
    if not report.complete:
        print("latency_report: the report is incomplete; see the errors it shows", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
