"""Command line of the benchmark gate: ``python -m tools.gate COMMAND``.

Exit codes of ``run`` and ``compare``:

* 0: no regression;
* 1: a regression (HEAD significantly and at least ``--min-effect`` worse);
* 2: a benchmark failed, a revision did not build, or a results file is unreadable; every
  benchmark that did run is still compared and reported, regressions first;
* 3: a usage or configuration error, with a message saying what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .calibrate import (
    add_calibrate_arguments,
    add_rejudge_arguments,
    command_calibrate,
    command_rejudge,
    command_summary,
)
from .decide import Settings
from .gate import GateRequest, compare_stored, run_gate
from .report import EXIT_BROKEN, EXIT_OK, EXIT_USAGE, Report
from .results import find_bad_files
from .runner import MIN_ROUNDS, GateUsageError, resolve_revision, settings_from_args, write_last_good

DEFAULT_STATE_FILE = os.path.join(".gate", "last-good")
DEFAULT_WORK_DIR = os.path.join(".asv", "gate")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors exit with the gate's usage code."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.10 or 10%, got {text!r}")
    return value


def _add_judging_options(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument(
        "--config", default="asv.conf.json", help="asv configuration file (default: %(default)s)"
    )
    parser.add_argument(
        "--machine",
        help="asv machine name; default: the only machine in ~/.asv-machine.json",
    )
    parser.add_argument(
        "--select",
        default=defaults.select,
        help="regular expression searched in benchmark names; only matches are run and "
        "judged (default: %(default)s)",
    )
    parser.add_argument(
        "--higher-is-better",
        action="append",
        default=[],
        metavar="REGEX",
        help="benchmarks matching REGEX are better when larger; repeat for several",
    )
    parser.add_argument(
        "--min-effect",
        type=_fraction,
        default=defaults.min_effect,
        help="smallest change of the median that counts, as a fraction or percentage "
        "(default: %(default)s, i.e. 10%% worse)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=defaults.alpha,
        help="family-wise significance level of the Holm-adjusted tests (default: %(default)s)",
    )
    parser.add_argument("--report-dir", help="also write report.md and report.json here")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m tools.gate",
        description="Benchmark gate: run the p99 benchmarks on two revisions and decide "
        "whether HEAD regressed.",
        epilog="Exit codes: 0 no regression, 1 regression, 2 a benchmark failed or a "
        "revision did not build (everything else is still compared), 3 usage or "
        "configuration error.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run BASE and HEAD with interleaved rounds and decide")
    run.add_argument("--head", default="HEAD", help="revision to judge (default: %(default)s)")
    run.add_argument(
        "--base",
        help="revision to compare against; default: the commit in --state-file, or HEAD's parent",
    )
    run.add_argument(
        "--rounds",
        type=int,
        default=8,
        help="interleaved rounds per revision; each round calls every benchmark once "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help="one asv run per benchmark and revision (asv --quick), for pull requests",
    )
    run.add_argument(
        "--state-file",
        default=DEFAULT_STATE_FILE,
        help="file holding the last commit that passed the gate (default: %(default)s)",
    )
    run.add_argument(
        "--record-good",
        action="store_true",
        help="on a pass, write HEAD's commit into --state-file",
    )
    run.add_argument(
        "--work-dir",
        default=DEFAULT_WORK_DIR,
        help="folder for the gate's own asv results and logs (default: %(default)s)",
    )
    run.add_argument("--quiet", action="store_true", help="do not echo asv's output")
    _add_judging_options(run)

    compare = commands.add_parser(
        "compare", help="judge two revisions from stored results, running nothing"
    )
    compare.add_argument("--base", required=True, help="revision to compare against")
    compare.add_argument("--head", required=True, help="revision to judge")
    compare.add_argument(
        "--results-dir", help="asv results folder (default: results_dir of --config)"
    )
    compare.add_argument(
        "--rounds",
        type=int,
        help="the samples came from this many interleaved rounds (the results folder of a "
        "gate run); judge them by round, as the gate does",
    )
    _add_judging_options(compare)

    check = commands.add_parser(
        "check-results", help="report unreadable files in an asv results folder"
    )
    check.add_argument("results_dir", nargs="?", default="results")

    record = commands.add_parser(
        "record-good", help="record a revision as the last one that passed the gate"
    )
    record.add_argument("revision")
    record.add_argument("--state-file", default=DEFAULT_STATE_FILE)
    record.add_argument("--repo", default=".", help="git repository (default: %(default)s)")

    calibrate = commands.add_parser(
        "calibrate",
        help="measure false alarms and detections on a temporary clone",
    )
    add_calibrate_arguments(calibrate)
    _add_judging_options(calibrate)

    rejudge = commands.add_parser(
        "calibrate-rejudge",
        help="judge the kept runs of an earlier calibration with the current rule, running nothing",
    )
    add_rejudge_arguments(rejudge)
    _add_judging_options(rejudge)

    summary = commands.add_parser(
        "calibrate-summary",
        help="print the summary and totals of a stored calibration.json, running nothing",
        description=(
            "Print the summary of a stored calibration.json, with the totals this version of "
            "the gate computes, running nothing and leaving the file as it is. Exit codes, as "
            "the calibration gives them: 0 no false alarm and every run at a delay of 25% or "
            "more failed by the gate; 1 a false alarm or such a run that passed; 2 a run with "
            "a failed benchmark or build; 3 a file that cannot be read, naming the field."
        ),
    )
    summary.add_argument("calibration", metavar="FILE", help="a calibration.json")
    return parser


def _print_report(report: Report) -> int:
    sys.stdout.write(report.to_markdown())
    sys.stdout.flush()
    return report.exit_code


def _command_run(args: argparse.Namespace) -> int:
    if not args.quick and args.rounds < MIN_ROUNDS:
        raise GateUsageError(
            f"--rounds must be at least {MIN_ROUNDS} (got {args.rounds}): with fewer rounds no "
            "difference can be significant; use --quick for a single pass"
        )
    request = GateRequest(
        config=args.config,
        head=args.head,
        base=args.base,
        machine=args.machine,
        settings=settings_from_args(args),
        state_file=args.state_file,
        work_dir=args.work_dir,
        rounds=args.rounds,
        quick=args.quick,
        report_dir=args.report_dir,
        echo=not args.quiet,
    )
    report = run_gate(request)
    code = _print_report(report)
    if code == EXIT_OK and args.record_good:
        write_last_good(args.state_file, report.head.commit)
        print(f"Recorded {report.head.commit} in {args.state_file}.")
    return code


def _command_compare(args: argparse.Namespace) -> int:
    if args.rounds is not None and args.rounds < 2:
        raise GateUsageError(f"--rounds must be at least 2, got {args.rounds}")
    report = compare_stored(
        args.config,
        args.base,
        args.head,
        args.machine,
        settings_from_args(args),
        results_dir=args.results_dir,
        report_dir=args.report_dir,
        rounds=args.rounds,
    )
    return _print_report(report)


def _command_check_results(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.results_dir):
        raise GateUsageError(f"results folder {args.results_dir} not found")
    bad_files = find_bad_files(args.results_dir)
    for bad in bad_files:
        print(f"{bad.path} {bad.reason}")
    if bad_files:
        print(f"{len(bad_files)} unreadable results file(s); they were left untouched.")
        return EXIT_BROKEN
    print(f"Every results file in {args.results_dir} is readable.")
    return EXIT_OK


def _command_record_good(args: argparse.Namespace) -> int:
    commit = resolve_revision(args.repo, args.revision, "revision")
    write_last_good(args.state_file, commit)
    print(f"Recorded {commit} in {args.state_file}.")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": _command_run,
        "compare": _command_compare,
        "check-results": _command_check_results,
        "record-good": _command_record_good,
        "calibrate": command_calibrate,
        "calibrate-rejudge": command_rejudge,
        "calibrate-summary": command_summary,
    }
    try:
        return handlers[args.command](args)
    except GateUsageError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - Python's own exit code 1 would read as a regression
        traceback.print_exc()
        print(
            f"gate: error: {args.command} failed inside the gate (traceback above); exiting "
            f"with {EXIT_BROKEN}, the code for a broken run",
            file=sys.stderr,
        )
        return EXIT_BROKEN

