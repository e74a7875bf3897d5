"""Run asv on two revisions with interleaved rounds, in a results folder of the gate's own.

The gate never writes into the project's ``results/``: it writes a copy of ``asv.conf.json``
into a fresh run folder, with ``results_dir`` and ``html_dir`` pointing inside that folder and
``env_dir`` left as configured, so the environments asv already built are reused. After the
run it checks that ``results/`` is byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from .decide import Settings

__all__ = [
    "GateUsageError",
    "MIN_ROUNDS",
    "AsvRun",
    "check_machine",
    "default_base",
    "load_asv_config",
    "read_last_good",
    "resolve_revision",
    "settings_from_args",
    "run_asv",
    "snapshot_tree",
    "write_last_good",
]

MACHINE_FILE = os.path.join("~", ".asv-machine.json")


class GateUsageError(Exception):
    """A usage or configuration error, with a message that says what to do next."""


# Below this many interleaved rounds, the test on round medians, corrected over every row,
# cannot reach significance at the default alpha, so the gate would pass any regression.
MIN_ROUNDS = 3


def settings_from_args(args) -> Settings:
    """Build the judging settings from parsed command-line options; raise GateUsageError if invalid."""
    try:
        return Settings(
            select=args.select,
            higher_is_better=tuple(args.higher_is_better),
            min_effect=args.min_effect,
            alpha=args.alpha,
        )
    except ValueError as exc:
        raise GateUsageError(str(exc)) from None


def _git(repo: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", repo, *args], capture_output=True, text=True, check=False
    )


def resolve_revision(repo: str, name: str, role: str) -> str:
    """Return the full commit hash that ``name`` refers to in ``repo``."""
    if not name or name.startswith("-"):
        raise GateUsageError(f"{role} revision {name!r} is not a revision name")
    result = _git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    if result.returncode != 0:
        shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        hint = (
            " This clone is shallow: fetch the history with `git fetch --unshallow`."
            if shallow
            else " Use a branch, a tag or a hash that `git log --oneline` shows."
        )
        raise GateUsageError(f"{role} revision {name!r} is not a commit in {repo}.{hint}")
    return result.stdout.strip()


def read_last_good(state_file: str) -> str | None:
    """Return the revision recorded in ``state_file``, or None if there is no such file.

    The file contains one commit hash; blank lines and lines starting with ``#`` are ignored.
    """
    try:
        with open(state_file, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except FileNotFoundError:
        return None
    entries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if len(entries) != 1:
        raise GateUsageError(
            f"{state_file} must hold exactly one commit hash, found {entries!r}. "
            "Rewrite it with `python -m tools.gate record-good REV`, or delete it to compare "
            "against HEAD's parent."
        )
    return entries[0]


def write_last_good(state_file: str, commit: str) -> None:
    """Record ``commit`` as the last commit that passed the gate."""
    os.makedirs(os.path.dirname(state_file) or ".", exist_ok=True)
    temporary = state_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write("# Last commit that passed the benchmark gate (python -m tools.gate).\n")
        stream.write(commit + "\n")
    os.replace(temporary, state_file)


def default_base(repo: str, state_file: str, head_commit: str) -> tuple[str, str]:
    """Return the default BASE as (name, commit): the last good commit, or HEAD's parent."""
    recorded = read_last_good(state_file)
    if recorded is not None:
        try:
            return recorded, resolve_revision(repo, recorded, "BASE (recorded in the state file)")
        except GateUsageError as exc:
            raise GateUsageError(
                f"{exc} It was read from {state_file}; pass BASE explicitly or fix that file."
            ) from None
    parent = _git(repo, "rev-parse", "--verify", "--quiet", f"{head_commit}^")
    if parent.returncode != 0:
        raise GateUsageError(
            f"HEAD {head_commit[:8]} has no parent and {state_file} does not exist, so there "
            "is no default BASE. Pass BASE explicitly."
        )
    return f"{head_commit[:8]}^", parent.stdout.strip()


def check_machine(machine: str | None) -> str:
    """Return the asv machine name to use, after checking that asv has it on file.

    asv prompts on the terminal when the machine is unknown, which hangs in CI, so the
    gate checks the machine file itself first.
    """
    path = os.path.expanduser(MACHINE_FILE)
    register = "asv machine --yes --machine NAME"
    if not os.path.isfile(path):
        raise GateUsageError(
            f"asv machine file {path} not found. Register this machine once with "
            f"`{register}` (NAME is the name its results are filed under), then pass "
            "MACHINE=NAME."
        )
    try:
        with open(path, encoding="utf-8") as stream:
            known = json.load(stream)
    except (OSError, json.JSONDecodeError) as exc:
        raise GateUsageError(
            f"asv machine file {path} cannot be read ({exc}). Move it aside and run "
            f"`{register}` again."
        ) from None
    names = sorted(name for name, entry in known.items() if isinstance(entry, dict))
    if machine is None:
        if len(names) == 1:
            return names[0]
        raise GateUsageError(
            f"asv machine file {path} describes {len(names)} machines ({', '.join(names)}); "
            "choose one with MACHINE=NAME (or --machine NAME)."
        )
    if machine not in names:
        raise GateUsageError(
            f"machine {machine!r} is not in {path}, which lists {names!r}. Register it with "
            f"`asv machine --yes --machine {machine}`."
        )
    return machine


def load_asv_config(path: str) -> dict:
    """Read ``asv.conf.json`` the way asv does (JSON, ``//`` comments allowed)."""
    if not os.path.isfile(path):
        raise GateUsageError(f"asv configuration {path} not found; pass --config PATH.")
    try:
        from asv import util as asv_util
    except ImportError:
        raise GateUsageError(
            "asv is not importable from this Python "
            f"({sys.executable}); install it (pip install asv) or run the gate from the "
            "project's virtual environment."
        ) from None
    try:
        return asv_util.load_json(path, js_comments=True)
    except asv_util.UserError as exc:
        raise GateUsageError(f"asv configuration {path} is invalid: {exc}") from None


def derive_config(conf: dict, config_path: str, run_dir: str) -> str:
    """Write the gate's copy of the asv configuration into ``run_dir`` and return its path.

    asv resolves relative paths from the folder of the configuration file, so every path the
    copy keeps is made absolute.
    """
    root = os.path.dirname(os.path.abspath(config_path))
    derived = dict(conf)
    derived["repo"] = os.path.abspath(os.path.join(root, conf.get("repo", ".")))
    derived["benchmark_dir"] = os.path.join(root, conf.get("benchmark_dir", "benchmarks"))
    derived["env_dir"] = os.path.join(root, conf.get("env_dir", "env"))
    derived["results_dir"] = os.path.join(run_dir, "results")
    derived["html_dir"] = os.path.join(run_dir, "html")
    path = os.path.join(run_dir, "asv.conf.json")
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(derived, stream, indent=2)
    return path


def snapshot_tree(path: str) -> dict[str, str]:
    """Return a SHA-256 digest for every file under ``path`` (relative path -> digest)."""
    digests = {}
    if not os.path.isdir(path):
        return digests
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            with open(full, "rb") as stream:
                digests[os.path.relpath(full, path)] = hashlib.sha256(stream.read()).hexdigest()
    return digests


def describe_tree_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """List files added, removed or changed between two snapshots."""
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append(f"{name} removed")
        elif name not in before:
            changes.append(f"{name} added")
        elif before[name] != after[name]:
            changes.append(f"{name} changed")
    return changes


@dataclass
class AsvRun:
    """Outcome of one ``asv run``: exit code, log, results folder and duration."""

    returncode: int
    log_path: str
    results_dir: str
    seconds: float

    def tail(self, lines: int = 8) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as stream:
            return "\n".join(stream.read().splitlines()[-lines:])


def run_asv(
    config_path: str,
    run_dir: str,
    machine: str,
    commits: list[str],
    bench_regex: str,
    rounds: int,
    quick: bool,
    echo: bool = True,
) -> AsvRun:
    """Run the selected benchmarks on ``commits`` and return how asv ended.

    In full mode asv interleaves ``rounds`` rounds over the commits (the order reverses every
    other round), so slow drift of a shared machine hits both revisions alike. Samples are
    recorded so the gate can test them. asv's output goes to ``asv.log`` in ``run_dir`` and,
    if ``echo`` is true, to standard error as well.
    """
    hash_file = os.path.join(run_dir, "commits.txt")
    with open(hash_file, "w", encoding="utf-8") as stream:
        stream.write("\n".join(commits) + "\n")
    command = [
        sys.executable, "-m", "asv", "--config", config_path, "run",
        f"HASHFILE:{hash_file}",
        "--machine", machine,
        "--bench", bench_regex,
        "--record-samples",
        "--show-stderr",
        # A new process per benchmark and parameter set, as in the calibration in
        # docs/BENCHMARKS.md, whatever launch_method asv.conf.json sets for other runs.
        "--launch-method", "spawn",
    ]
    if quick:
        command += ["--quick", "--no-interleave-rounds"]
    else:
        command += ["--interleave-rounds", "--attribute", f"rounds={rounds}"]

    log_path = os.path.join(run_dir, "asv.log")
    started = time.monotonic()
    # Line-buffered, like the environment below, so the log shows where a slow or stuck
    # run is while it runs.
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if echo:
                sys.stderr.write(line)
        returncode = process.wait()
    return AsvRun(
        returncode, log_path, os.path.join(run_dir, "results"), time.monotonic() - started
    )
