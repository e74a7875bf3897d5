"""The gate's two ways to decide: run both revisions now, or read results already stored."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .decide import Settings, compare_revisions
from .report import Report, Revision, write_report
from .results import find_bad_files, load_param_names, load_revision, load_units
from .runner import (
    GateUsageError,
    check_machine,
    default_base,
    derive_config,
    describe_tree_changes,
    load_asv_config,
    resolve_revision,
    run_asv,
    snapshot_tree,
)

__all__ = ["GateRequest", "compare_stored", "run_gate"]


@dataclass
class GateRequest:
    """One gate run: which revisions, where, and how strictly.

    ``base`` None means the last good commit in ``state_file``, or HEAD's parent.
    ``env_dir`` overrides the configuration's ``env_dir`` (calibration shares the project's
    environments with its temporary clone).
    """

    config: str
    head: str
    base: str | None
    machine: str | None
    settings: Settings
    state_file: str
    work_dir: str
    rounds: int = 8
    quick: bool = False
    report_dir: str | None = None
    env_dir: str | None = None
    echo: bool = True


def _project_paths(config_path: str, conf: dict) -> tuple[str, str]:
    root = os.path.dirname(os.path.abspath(config_path))
    repo = os.path.abspath(os.path.join(root, conf.get("repo", ".")))
    results_dir = os.path.join(root, conf.get("results_dir", "results"))
    return repo, results_dir


def _bad_file_problems(bad_files, where: str) -> list[str]:
    return [
        f"{where} results file {bad.path} {bad.reason}; it was left untouched"
        for bad in bad_files
    ]


def _new_run_dir(work_dir: str, base_commit: str, head_commit: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = f"{stamp}-{base_commit[:8]}-{head_commit[:8]}"
    run_dir = os.path.join(os.path.abspath(work_dir), name)
    suffix = 1
    candidate = run_dir
    while os.path.exists(candidate):
        suffix += 1
        candidate = f"{run_dir}-{suffix}"
    os.makedirs(candidate)
    return candidate


def _finish(report: Report, run_dir: str, report_dir: str | None) -> Report:
    """Write the report into ``run_dir`` and, if given, ``report_dir``."""
    for folder in filter(None, (run_dir, report_dir)):
        os.makedirs(folder, exist_ok=True)
        write_report(report, os.path.join(folder, "report.json"), os.path.join(folder, "report.md"))
    return report


def run_gate(request: GateRequest) -> Report:
    """Run the selected benchmarks on BASE and HEAD and judge them.

    Raises ``GateUsageError`` for problems the user must fix before anything runs.
    """
    settings = request.settings
    conf = load_asv_config(request.config)
    repo, project_results = _project_paths(request.config, conf)
    machine = check_machine(request.machine)
    if request.rounds < 1:
        raise GateUsageError(f"rounds must be at least 1, got {request.rounds!r}")

    head_commit = resolve_revision(repo, request.head, "HEAD")
    if request.base is None:
        base_name, base_commit = default_base(repo, request.state_file, head_commit)
    else:
        base_name, base_commit = request.base, resolve_revision(repo, request.base, "BASE")
    if base_commit == head_commit:
        raise GateUsageError(
            f"BASE ({base_name}) and HEAD ({request.head}) are the same commit "
            f"{head_commit[:8]}, so there is nothing to compare. To measure the gate's noise, "
            "compare two commits with identical code (`python -m tools.gate calibrate`)."
        )

    run_dir = _new_run_dir(request.work_dir, base_commit, head_commit)
    if request.env_dir is not None:
        conf = dict(conf, env_dir=os.path.abspath(request.env_dir))
    config_copy = derive_config(conf, request.config, run_dir)
    history_before = snapshot_tree(project_results)
    problems = _bad_file_problems(find_bad_files(project_results), "stored")

    asv = run_asv(
        config_copy,
        run_dir,
        machine,
        [base_commit, head_commit],
        settings.select,
        request.rounds,
        request.quick,
        echo=request.echo,
    )
    results_dir = asv.results_dir
    written = any(
        name.endswith(".json") and name != "machine.json"
        for _, _, files in os.walk(os.path.join(results_dir, machine))
        for name in files
    )
    if asv.returncode == 1 and not written:
        raise GateUsageError(
            f"asv stopped before running any benchmark (exit code 1); its last lines, from "
            f"{asv.log_path}:\n{asv.tail()}\nFix the configuration or the benchmark selection "
            f"({settings.select!r}) and run the gate again."
        )
    if asv.returncode not in (0, 2):
        problems.append(f"asv exited with code {asv.returncode}; see {asv.log_path}")

    changes = describe_tree_changes(history_before, snapshot_tree(project_results))
    if changes:
        problems.append(
            f"the stored results in {project_results} changed during the run: "
            + ", ".join(changes)
        )

    problems += _bad_file_problems(find_bad_files(results_dir), "new")
    base = load_revision(results_dir, machine, base_commit)
    head = load_revision(results_dir, machine, head_commit)
    for role, revision in (("BASE", base), ("HEAD", head)):
        if not revision.files and not revision.bad_files:
            problems.append(
                f"asv stored no results for {role} {revision.commit[:8]}; see {asv.log_path}"
            )

    comparisons = compare_revisions(
        base,
        head,
        settings,
        load_param_names(results_dir),
        load_units(results_dir),
        rounds=None if request.quick else request.rounds,
    )
    report = Report(
        base=Revision(base_name, base_commit),
        head=Revision(request.head, head_commit),
        machine=machine,
        settings=settings,
        comparisons=comparisons,
        rounds=None if request.quick else request.rounds,
        quick=request.quick,
        problems=problems,
        asv_log=asv.log_path,
    )
    return _finish(report, run_dir, request.report_dir)


def compare_stored(
    config: str,
    base: str,
    head: str,
    machine: str | None,
    settings: Settings,
    results_dir: str | None = None,
    report_dir: str | None = None,
    rounds: int | None = None,
) -> Report:
    """Judge two revisions from results already stored, without running anything.

    Stored history rarely has samples of both revisions measured side by side, so this is for
    reading results, and the nightly gate uses ``run_gate``. ``rounds`` is the number of
    interleaved rounds the samples came from, as in the results folder of a gate run, so that
    they are judged as the gate judged them.
    """
    conf = load_asv_config(config)
    repo, project_results = _project_paths(config, conf)
    results_dir = results_dir or project_results
    if not os.path.isdir(results_dir):
        raise GateUsageError(f"results folder {results_dir} not found; pass --results-dir.")
    if machine is None:
        machines = sorted(
            name for name in os.listdir(results_dir)
            if os.path.isfile(os.path.join(results_dir, name, "machine.json"))
        )
        if len(machines) != 1:
            raise GateUsageError(
                f"{results_dir} contains results of {len(machines)} machines {machines!r}; "
                "choose one with --machine NAME."
            )
        machine = machines[0]
    base_commit = resolve_revision(repo, base, "BASE")
    head_commit = resolve_revision(repo, head, "HEAD")
    problems = _bad_file_problems(find_bad_files(results_dir), "stored")
    base_results = load_revision(results_dir, machine, base_commit)
    head_results = load_revision(results_dir, machine, head_commit)
    for role, revision in (("BASE", base_results), ("HEAD", head_results)):
        if not revision.files and not revision.bad_files:
            problems.append(f"no results stored for {role} {revision.commit[:8]} in {results_dir}")
    report = Report(
        base=Revision(base, base_commit),
        head=Revision(head, head_commit),
        machine=machine,
        settings=settings,
        comparisons=compare_revisions(
            base_results,
            head_results,
            settings,
            load_param_names(results_dir),
            load_units(results_dir),
            rounds=rounds,
        ),
        rounds=rounds,
        problems=problems,
    )
    if report_dir:
        _finish(report, None, report_dir)
    return report

