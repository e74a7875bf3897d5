"""The gate end to end with real asv, real virtualenvs and real git, on temporary clones.

Most tests use a small repository built here: a package whose "restart latency" is a number
in its source, and an asv suite whose ``track_p99`` returns eight samples spread +-4% around
it. Each commit changes that number or breaks something, so every verdict is known in
advance while asv, the environments, the interleaved rounds and the results files are all
real. Between the commits the samples never overlap when the latency moves by 30%, and the
medians can never move by 10% when it does not.

The last test runs this project's own suite in quick mode on a clone of this repository.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from benchmarks import _restart
from tools.gate.report import EXIT_BROKEN, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACHINE = "gate-test-box"

PACKAGE = """\
LATENCY = {latency!r}


def restart_latency():
    return LATENCY
"""

FRAGILE = """

def fragile():
    raise RuntimeError("fragile() is broken at this commit")
"""

BENCHMARKS = '''\
import random

import gatepkg


class Restart:
    params = (["idle", "busy"], [1, 10])
    param_names = ["load", "children"]
    unit = "seconds"

    def track_p99(self, load, children):
        rng = random.Random()
        base = gatepkg.restart_latency() * (2 if load == "busy" else 1)
        return {"samples": [base * rng.uniform(0.96, 1.04) for _ in range(8)], "number": 1}

    def track_p50(self, load, children):
        return {"samples": [gatepkg.restart_latency() / 2] * 8, "number": 1}


class Fragile:
    unit = "seconds"

    def setup(self):
        if not hasattr(gatepkg, "fragile"):
            raise NotImplementedError("gatepkg has no fragile() at this commit")

    def track_p99_fragile(self):
        return {"samples": [gatepkg.fragile()] * 8, "number": 1}
'''

# Copies the package into the environment instead of building a wheel, so no step of the
# test needs a build backend.
ASV_CONFIG = {
    "version": 1,
    "project": "gatedemo",
    "repo": ".",
    "branches": ["main"],
    "environment_type": "virtualenv",
    "build_command": [],
    "install_command": [
        "in-dir={env_dir} python -c \"import shutil, sysconfig; shutil.copytree("
        "r'{build_dir}/gatepkg', sysconfig.get_paths()['purelib'] + '/gatepkg', "
        "dirs_exist_ok=True)\""
    ],
    "uninstall_command": [],
    "benchmark_dir": "benchmarks",
    "env_dir": ".asv/env",
    "results_dir": "results",
    "html_dir": ".asv/html",
}

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "gate test",
    "GIT_AUTHOR_EMAIL": "gate-test@localhost",
    "GIT_COMMITTER_NAME": "gate test",
    "GIT_COMMITTER_EMAIL": "gate-test@localhost",
}


def git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_IDENTITY},
    ).stdout.strip()


def write_package(repo, latency, fragile=False):
    source = PACKAGE.format(latency=latency) + (FRAGILE if fragile else "")
    (repo / "gatepkg" / "__init__.py").write_text(source)


def commit_all(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A repository with one commit per scenario, a machine file and shared environments."""
    root = tmp_path_factory.mktemp("gate-demo")
    repo = root / "repo"
    (repo / "gatepkg").mkdir(parents=True)
    (repo / "benchmarks").mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(".asv/\n")
    (repo / "asv.conf.json").write_text(json.dumps(ASV_CONFIG, indent=2))
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "bench.py").write_text(BENCHMARKS)

    # A stored history the gate must leave byte for byte as it is.
    history = repo / "results" / MACHINE
    history.mkdir(parents=True)
    (history / "machine.json").write_text(json.dumps({"machine": MACHINE, "version": 1}))

    commits = {}
    write_package(repo, 0.001)
    commits["base"] = commit_all(repo, "base: 1 ms")
    (repo / "README").write_text("Documentation only.\n")
    commits["same"] = commit_all(repo, "same code, new README")
    write_package(repo, 0.0013)
    commits["slower"] = commit_all(repo, "slower: 1.3 ms")
    write_package(repo, 0.0013, fragile=True)
    commits["slower_fragile"] = commit_all(repo, "slower, and fragile() raises")
    shutil.rmtree(repo / "gatepkg")
    commits["no_build"] = commit_all(repo, "package removed: install fails")
    git(repo, "checkout", "-q", commits["base"])

    home = root / "home"
    home.mkdir()
    machines = {MACHINE: {"machine": MACHINE}, "version": 1}
    (home / ".asv-machine.json").write_text(json.dumps(machines))
    return {"repo": repo, "home": home, "commits": commits}


def run_gate(demo, *args, home=None):
    env = dict(os.environ)
    env["HOME"] = str(home or demo["home"])
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "tools.gate", "run", "--quiet", *args],
        cwd=demo["repo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def gate_report(demo, base, head, tmp_path, *extra):
    report_dir = tmp_path / "report"
    result = run_gate(
        demo,
        "--base", demo["commits"][base],
        "--head", demo["commits"][head],
        "--rounds", "3",
        "--report-dir", str(report_dir),
        *extra,
    )
    report = None
    if (report_dir / "report.json").exists():
        report = json.loads((report_dir / "report.json").read_text())
    return result, report


def verdicts(report):
    return {
        (row["benchmark"], tuple(sorted(row["params"].items())) if isinstance(row["params"], dict)
         else tuple(row["params"])): row["verdict"]
        for row in report["comparisons"]
    }


def history_snapshot(demo):
    folder = demo["repo"] / "results"
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_code_passes(demo, tmp_path):
    before = history_snapshot(demo)
    result, report = gate_report(demo, "base", "same", tmp_path)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    p99_rows = [
        row for row in report["comparisons"]
        if row["benchmark"] == "bench.Restart.track_p99" and not row["pooled"]
    ]
    assert len(p99_rows) == 4
    assert {row["verdict"] for row in p99_rows} == {"unchanged"}
    assert all(row["n_before"] == 24 and row["n_after"] == 24 for row in p99_rows)
    assert {row["test"] for row in p99_rows} == {"welch-t-log-round-medians"}
    pooled = [row for row in report["comparisons"] if row["pooled"]]
    assert [(row["benchmark"], row["pooled"], row["verdict"]) for row in pooled] == [
        ("bench.Restart.track_p99", 4, "unchanged")
    ]
    assert "pass (exit code 0)" in result.stdout
    assert history_snapshot(demo) == before


def test_injected_regression_fails(demo, tmp_path):
    result, report = gate_report(demo, "base", "slower", tmp_path)
    assert result.returncode == EXIT_REGRESSION, result.stdout + result.stderr
    p99_rows = [
        row for row in report["comparisons"] if row["benchmark"] == "bench.Restart.track_p99"
    ]
    assert len(p99_rows) == 5  # four parameter sets and their pooled row
    assert {row["verdict"] for row in p99_rows} == {"regression"}
    assert all(row["ratio"] == pytest.approx(1.3, rel=0.06) for row in p99_rows)
    assert "| **regression** | `bench.Restart.track_p99` |" in result.stdout
    # track_p50 changed too, but the gate judges only the p99 series.
    assert all(not row["benchmark"].endswith("track_p50") for row in report["comparisons"])


def test_broken_benchmark_still_reports_regression(demo, tmp_path):
    result, report = gate_report(demo, "base", "slower_fragile", tmp_path)
    assert result.returncode == EXIT_BROKEN, result.stdout + result.stderr
    found = verdicts(report)
    assert found[("bench.Fragile.track_p99_fragile", ())] == "failed"
    regressions = [key for key, verdict in found.items() if verdict == "regression"]
    assert len(regressions) == 5  # four parameter sets and their pooled row
    assert all(name == "bench.Restart.track_p99" for name, _ in regressions)
    assert report["comparisons"][0]["verdict"] == "regression"
    assert "| **failed** | `bench.Fragile.track_p99_fragile` |" in result.stdout


def test_revision_that_does_not_build(demo, tmp_path):
    result, report = gate_report(demo, "base", "no_build", tmp_path)
    assert result.returncode == EXIT_BROKEN, result.stdout + result.stderr
    assert {row["verdict"] for row in report["comparisons"]} == {"not-built"}
    assert all("did not build at HEAD" in row["note"] for row in report["comparisons"])


def test_corrupt_stored_results_reported_and_untouched(demo, tmp_path):
    stored = demo["repo"] / "results" / MACHINE / "deadbeef-virtualenv-py3.11.json"
    stored.write_text('{"commit_hash": "deadbeef", "version": 2, "results": {"b.R')
    try:
        before = stored.read_bytes()
        result, report = gate_report(demo, "base", "same", tmp_path, "--quick")
        assert result.returncode == EXIT_BROKEN, result.stdout + result.stderr
        assert any(
            str(stored) in problem and "truncated" in problem for problem in report["problems"]
        )
        assert stored.read_bytes() == before
        # The comparison itself still ran and is still reported.
        assert {row["verdict"] for row in report["comparisons"]} == {"unchanged", "skipped"}
    finally:
        stored.unlink()


def test_bad_revision_is_usage_error(demo):
    result = run_gate(demo, "--base", "no-such-tag", "--head", "HEAD")
    assert result.returncode == EXIT_USAGE
    assert "BASE revision 'no-such-tag' is not a commit" in result.stderr
    assert "git log --oneline" in result.stderr


def test_missing_machine_file_is_usage_error(demo, tmp_path):
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    result = run_gate(demo, "--base", "HEAD", "--head", "HEAD", home=empty_home)
    assert result.returncode == EXIT_USAGE
    assert "asv machine file" in result.stderr
    assert "asv machine --yes --machine NAME" in result.stderr


def test_no_matching_benchmark_is_usage_error(demo, tmp_path):
    result, _ = gate_report(demo, "base", "same", tmp_path, "--select", "track_nothing_like_this")
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert "asv stopped before running any benchmark" in result.stderr


def run_calibrate(demo, *args):
    env = dict(os.environ)
    env["HOME"] = str(demo["home"])
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "tools.gate", "calibrate", *args],
        cwd=demo["repo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


# The demo's benchmark returns the number in its source, so a busy wait in
# restart_latency() changes nothing it reports: every delay run is a miss.
CALIBRATION_OPTIONS = (
    "--delay-site", "gatepkg:restart_latency", "--delayed", "Restart",
    "--select", r"Restart\.track_p99", "--rounds", "3",
)


def test_calibration_resumes_with_same_delay(demo, tmp_path):
    first = tmp_path / "first"
    result = run_calibrate(demo, *CALIBRATION_OPTIONS, "--runs", "1", "--output", str(first))
    assert result.returncode == EXIT_REGRESSION, result.stdout + result.stderr
    first_file = first / "calibration.json"
    first_bytes = first_file.read_bytes()
    first_data = json.loads(first_bytes)
    assert first_data["summary"]["delay_runs_flagged"] == {"25.0": 0}

    second = tmp_path / "second"
    result = run_calibrate(
        demo, *CALIBRATION_OPTIONS, "--runs", "2", "--resume", str(first_file),
        "--output", str(second),
    )
    assert result.returncode == EXIT_REGRESSION, result.stdout + result.stderr
    data = json.loads((second / "calibration.json").read_text())
    assert len(data["same_code_reports"]) == 2
    assert len(data["delay_reports"]["25.0"]) == 2
    assert data["same_code_reports"][0] == first_data["same_code_reports"][0]
    assert data["context"]["delays_ns"] == first_data["context"]["delays_ns"]
    assert data["context"]["reference_p99"] == first_data["context"]["reference_p99"]
    assert [part["cycles"] for part in data["context"]["parts"]] == [1, 1]
    assert "- Cycles completed: 2 of 2 planned" in result.stdout
    assert "- Measured in parts, continued with `--resume`: 1 cycle(s) started" in result.stdout
    assert first_file.read_bytes() == first_bytes


def test_calibration_resume_rejects_other_rounds(demo, tmp_path):
    earlier = tmp_path / "calibration.json"
    earlier.write_text(json.dumps({
        "context": {
            "revision": demo["commits"]["base"], "machine": MACHINE, "rounds": 3,
            "min_effect": 0.1, "alpha": 0.01, "select": r"Restart\.track_p99",
            "delay_site": "gatepkg:restart_latency", "delayed": "Restart",
            "reference_p99": 0.001, "python": sys.version.split()[0],
            "delays_ns": {"25": 250_000},
        },
        "summary": {"detections": []},
        "same_code_reports": [{"exit_code": 0, "comparisons": []}],
        "delay_reports": {"25": [{"exit_code": 1, "comparisons": []}]},
    }))
    options = [option if option != "3" else "4" for option in CALIBRATION_OPTIONS]
    result = run_calibrate(demo, *options, "--resume", str(earlier))
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert "it has rounds=3, this run rounds=4" in result.stderr
    assert "pass the same options or start a new calibration" in result.stderr


def test_project_suite_quick_gate(tmp_path):
    """Run this project's own p99 benchmarks in quick mode: HEAD against a copy of itself.

    The verdict of one quick pass on a shared machine is not asserted, only that the real
    suite builds, runs and yields one sample per batch for each of its 15 parameter sets, and that
    the clone's results/ is left as it was.
    """
    if subprocess.run(
        ["git", "-C", PROJECT_ROOT, "rev-parse", "--verify", "--quiet", "HEAD"],
        capture_output=True,
    ).returncode != 0:
        pytest.skip("this repository has no commit yet")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", PROJECT_ROOT, str(clone))
    git(clone, "commit", "-q", "--allow-empty", "-m", "same code as HEAD~1")
    # Reuse the environments the project already built, if any.
    config = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys; from asv import util; "
         "print(json.dumps(util.load_json(sys.argv[1], js_comments=True)))",
         str(clone / "asv.conf.json")],
        capture_output=True, text=True, check=True,
    ).stdout)
    config["env_dir"] = os.path.join(PROJECT_ROOT, ".asv", "env")
    (clone / "asv.conf.json").write_text(json.dumps(config))
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(
        json.dumps({MACHINE: {"machine": MACHINE}, "version": 1})
    )

    def stored_results():
        return {
            str(path.relative_to(clone)): path.read_bytes()
            for path in sorted((clone / "results").rglob("*"))
            if path.is_file()
        }

    before = stored_results()
    report_dir = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable, "-m", "tools.gate", "run", "--quiet", "--quick",
            "--select", r"OneForOneRestartLatency\.track_p99",
            "--base", "HEAD~1", "--head", "HEAD", "--report-dir", str(report_dir),
        ],
        cwd=clone,
        env={**os.environ, "HOME": str(home), "PYTHONPATH": PROJECT_ROOT},
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode in (EXIT_OK, EXIT_REGRESSION), result.stdout + result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    rows = report["comparisons"]
    assert len(rows) == 15
    assert {row["verdict"] for row in rows} <= {"unchanged", "regression", "improvement"}
    batches = _restart.BATCHES
    assert all(row["n_before"] == batches and row["n_after"] == batches for row in rows)
    assert {tuple(row["params"]) for row in rows} == {("load", "children")}
    assert stored_results() == before
