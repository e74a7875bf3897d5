"""The real asv suite, end to end, on a temporary git repository holding this working tree.

asv builds the snapshot's wheel in a fresh virtualenv and runs every benchmark
once (``--quick``). asv 0.6.6 saves quick results of a real environment, despite
its help text, so the test reads them back and checks every parameter
combination of every benchmark. Its time is mostly the quick run itself.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MACHINE = "e2e-box"
ASV = [sys.executable, "-m", "asv"]


def snapshot_working_tree(destination):
    """Copy the tracked and untracked, not ignored, files into a new repository and commit them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    destination.mkdir()
    for name in filter(None, listed.split("\0")):
        # Stored results are history, not part of the suite; the run writes its own.
        if name.startswith("results/"):
            continue
        source = PROJECT_ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree but still in the index
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)

    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=destination, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=destination, check=True, capture_output=True, text=True
    ).stdout.strip()


def isolated_environment(home):
    """Environment variables that keep asv's machine file out of the real home directory."""
    env = dict(os.environ)
    # pip and virtualenv keep their download caches where they were.
    env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    env["HOME"] = str(home)
    return env


def run(command, cwd, env):
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, (
        f"{' '.join(command)} exited with {completed.returncode}\n"
        f"--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}"
    )
    return completed


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Run ``asv check`` and ``asv run --quick`` once on a snapshot; return what they left."""
    root = tmp_path_factory.mktemp("e2e")
    clone = root / "repo"
    commit = snapshot_working_tree(clone)
    home = root / "home"
    home.mkdir()
    env = isolated_environment(home)

    run([*ASV, "machine", "--yes", "--machine", MACHINE], clone, env)
    run([*ASV, "check", "--python=same"], clone, env)
    output = run(
        [*ASV, "run", "--quick", "--show-stderr", "--machine", MACHINE, "HEAD"], clone, env
    ).stdout
    return {"clone": clone, "commit": commit, "env": env, "output": output}


def test_quick_run_every_benchmark_succeeds(quick_run):
    clone, commit, output = quick_run["clone"], quick_run["commit"], quick_run["output"]

    discovered = json.loads((clone / "results" / "benchmarks.json").read_text())
    names = sorted(name for name in discovered if name != "version")
    assert names, "asv discovered no benchmarks"

    (results_file,) = (clone / "results" / MACHINE).glob(f"{commit[:8]}-*.json")
    stored = json.loads(results_file.read_text())
    result_index = stored["result_columns"].index("result")
    problems = []
    for name in names:
        row = stored["results"].get(name)
        if row is None:
            problems.append(f"{name}: no result stored")
            continue
        values = row[result_index]
        if values is None:
            problems.append(f"{name}: failed")
            continue
        for index, value in enumerate(values):
            if value is None:
                problems.append(f"{name}[{index}]: failed")
            elif not math.isfinite(value):
                problems.append(f"{name}[{index}]: skipped")
    assert not problems, "\n".join(problems) + f"\n--- asv output\n{output}"


def test_summary_reads_quick_run(quick_run):
    """bench_summary prints a row per load level and child count from the stored results."""
    summary = run(
        [sys.executable, "tools/bench_summary.py", "--machine", MACHINE, "--slo", "1"],
        quick_run["clone"],
        quick_run["env"],
    ).stdout

    for load in ("idle", "light", "heavy"):
        for children in ("1", "10", "100", "1,000", "10,000"):
            assert any(
                line.split()[:2] == [load, children] for line in summary.splitlines()
            ), f"no row for load={load} children={children}:\n{summary}"
