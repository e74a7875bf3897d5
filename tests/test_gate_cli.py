"""The gate's command line, state file, machine check and git resolution, without asv runs."""

import json
import os
import subprocess

import pytest

from tools.gate.cli import main
from tools.gate.report import EXIT_BROKEN, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE
from tools.gate.runner import (
    GateUsageError,
    check_machine,
    default_base,
    derive_config,
    read_last_good,
    resolve_revision,
    write_last_good,
)


def git(repo, *args):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "commit", "-q", "--allow-empty", "-m", "first")
    git(path, "commit", "-q", "--allow-empty", "-m", "second")
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def test_resolve_revision(repo):
    assert resolve_revision(str(repo), "HEAD", "HEAD") == git(repo, "rev-parse", "HEAD")


def test_resolve_unknown_revision(repo):
    with pytest.raises(GateUsageError, match="BASE revision 'no-such-branch' is not a commit"):
        resolve_revision(str(repo), "no-such-branch", "BASE")


def test_resolve_rejects_option_like_name(repo):
    with pytest.raises(GateUsageError, match="is not a revision name"):
        resolve_revision(str(repo), "--all", "HEAD")


def test_default_base_is_parent(repo, tmp_path):
    head = git(repo, "rev-parse", "HEAD")
    name, commit = default_base(str(repo), str(tmp_path / "none"), head)
    assert commit == git(repo, "rev-parse", "HEAD~1")
    assert name == f"{head[:8]}^"


def test_default_base_from_state_file(repo, tmp_path):
    first = git(repo, "rev-parse", "HEAD~1")
    state = tmp_path / "state" / "last-good"
    write_last_good(str(state), first)
    assert read_last_good(str(state)) == first
    assert default_base(str(repo), str(state), git(repo, "rev-parse", "HEAD")) == (first, first)


def test_default_base_unknown_recorded_commit(repo, tmp_path):
    state = tmp_path / "last-good"
    state.write_text("0123456789abcdef0123456789abcdef01234567\n")
    with pytest.raises(GateUsageError, match="pass BASE explicitly or fix that file"):
        default_base(str(repo), str(state), git(repo, "rev-parse", "HEAD"))


def test_default_base_without_parent(tmp_path):
    path = tmp_path / "single"
    path.mkdir()
    git(path, "init", "-q")
    git(path, "commit", "-q", "--allow-empty", "-m", "only")
    with pytest.raises(GateUsageError, match="has no parent"):
        default_base(str(path), str(tmp_path / "none"), git(path, "rev-parse", "HEAD"))


def test_state_file_with_two_entries(tmp_path):
    state = tmp_path / "last-good"
    state.write_text("# comment\nabc\ndef\n")
    with pytest.raises(GateUsageError, match="exactly one commit hash"):
        read_last_good(str(state))


def test_missing_machine_file(home):
    with pytest.raises(GateUsageError, match="asv machine --yes --machine NAME"):
        check_machine("ci-box")


def test_machine_chosen_when_only_one(home):
    (home / ".asv-machine.json").write_text(json.dumps({"box": {"machine": "box"}, "version": 1}))
    assert check_machine(None) == "box"
    with pytest.raises(GateUsageError, match="'other' is not in"):
        check_machine("other")


def test_machine_required_when_several(home):
    machines = {"a": {"machine": "a"}, "b": {"machine": "b"}, "version": 1}
    (home / ".asv-machine.json").write_text(json.dumps(machines))
    with pytest.raises(GateUsageError, match="describes 2 machines"):
        check_machine(None)


def test_derived_config_uses_absolute_paths(tmp_path):
    config = tmp_path / "project" / "asv.conf.json"
    config.parent.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    conf = {
        "repo": ".",
        "benchmark_dir": "benchmarks",
        "env_dir": ".asv/env",
        "results_dir": "results",
    }
    with open(derive_config(conf, str(config), str(run_dir))) as stream:
        derived = json.load(stream)
    assert derived["repo"] == str(config.parent)
    assert derived["env_dir"] == str(config.parent / ".asv" / "env")
    assert derived["benchmark_dir"] == str(config.parent / "benchmarks")
    assert derived["results_dir"] == str(run_dir / "results")
    assert derived["html_dir"] == str(run_dir / "html")


def test_cli_bad_option_value_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--min-effect", "lots"])
    assert exit_info.value.code == EXIT_USAGE
    assert "expected a fraction" in capsys.readouterr().err


def test_cli_too_few_rounds_is_usage_error(capsys, home):
    """Two rounds cannot show any difference as significant, so the gate refuses to pass on them."""
    assert main(["run", "--rounds", "2"]) == EXIT_USAGE
    assert "--rounds must be at least 3 (got 2)" in capsys.readouterr().err


def test_cli_invalid_regex_is_usage_error(capsys, home):
    assert main(["run", "--select", "track_("]) == EXIT_USAGE
    assert "invalid regular expression 'track_('" in capsys.readouterr().err


def test_cli_missing_config_is_usage_error(capsys, tmp_path):
    assert main(["run", "--config", str(tmp_path / "nope.json")]) == EXIT_USAGE
    assert "not found" in capsys.readouterr().err


def test_cli_check_results(tmp_path, capsys):
    machine_dir = tmp_path / "results" / "box"
    machine_dir.mkdir(parents=True)
    assert main(["check-results", str(tmp_path / "results")]) == EXIT_OK
    broken = machine_dir / "0123abcd-virtualenv-py3.11.json"
    broken.write_text('{"version": 2, "results": {')
    assert main(["check-results", str(tmp_path / "results")]) == EXIT_BROKEN
    output = capsys.readouterr().out
    assert f"{broken} is truncated" in output
    assert broken.read_text() == '{"version": 2, "results": {'


def test_cli_record_good(repo, tmp_path):
    state = tmp_path / "last-good"
    assert main(["record-good", "HEAD~1", "--repo", str(repo), "--state-file", str(state)]) == 0
    assert read_last_good(str(state)) == git(repo, "rev-parse", "HEAD~1")


def write_stored(results_dir, commit, samples):
    """Write one asv results file with a single unparameterised p99 row."""
    folder = results_dir / "box"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "machine.json").write_text(json.dumps({"machine": "box", "version": 1}))
    data = {
        "commit_hash": commit,
        "env_name": "virtualenv-py3.11",
        "date": 1700000000000,
        "params": {"machine": "box"},
        "python": "3.11",
        "requirements": {},
        "env_vars": {},
        "result_columns": ["result", "params", "version", "started_at", "duration", "samples"],
        "results": {"r.L.track_p99": [sorted(samples)[10], [], "v", 0, 1.0, [samples]]},
        "durations": {},
        "version": 2,
    }
    (folder / f"{commit[:8]}-virtualenv-py3.11.json").write_text(json.dumps(data))


def test_cli_compare_stored_results(repo, capsys):
    config = {"version": 1, "repo": ".", "results_dir": "results"}
    (repo / "asv.conf.json").write_text(json.dumps(config))
    base = git(repo, "rev-parse", "HEAD~1")
    head = git(repo, "rev-parse", "HEAD")
    write_stored(repo / "results", base, [1e-4 * (1 + i / 100) for i in range(20)])
    write_stored(repo / "results", head, [1.5e-4 * (1 + i / 100) for i in range(20)])
    config = str(repo / "asv.conf.json")

    code = main(["compare", "--config", config, "--base", "HEAD~1", "--head", "HEAD"])
    assert code == EXIT_REGRESSION
    output = capsys.readouterr().out
    assert "| **regression** | `r.L.track_p99` |" in output
    assert "stored results" in output
