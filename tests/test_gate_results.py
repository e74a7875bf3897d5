"""Reading asv results files in tools.gate.results, including damaged ones.

The files are written in the layout asv 0.6.6 produced for a small suite (result_columns,
one row per benchmark, trailing empty columns dropped).
"""

import hashlib
import json
import math
import os

from tools.gate.results import find_bad_files, load_param_names, load_revision

COMMIT = "12a43070ddd28e1b5e9b2ebce08aa6d7ca0a3b90"
COLUMNS = [
    "result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
    "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile",
]
PARAMS = [["'idle'", "'busy'"], ["1", "10"]]


def full_row(result, samples):
    stats = [None] * 6
    return [result, PARAMS, "v1", 1700000000000, 0.27, *stats, samples]


def write_results(results_dir, rows, commit=COMMIT, machine="box", **overrides):
    folder = os.path.join(results_dir, machine)
    os.makedirs(folder, exist_ok=True)
    data = {
        "commit_hash": commit,
        "env_name": "virtualenv-py3.11",
        "date": 1700000000000,
        "params": {"machine": machine, "python": "3.11"},
        "python": "3.11",
        "requirements": {},
        "env_vars": {},
        "result_columns": COLUMNS,
        "results": rows,
        "durations": {},
        "version": 2,
    }
    data.update(overrides)
    path = os.path.join(folder, f"{commit[:8]}-virtualenv-py3.11.json")
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(data, stream)
    return path


def digest(path):
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def test_parameterised_row_with_samples(tmp_path):
    samples = [[1.0, 1.1], [2.0, 2.1], [3.0, 3.1], [4.0, 4.1]]
    write_results(tmp_path, {"b.R.track_p99": full_row([1.05, 2.05, 3.05, 4.05], samples)})
    revision = load_revision(str(tmp_path), "box", COMMIT)
    assert revision.bad_files == []
    busy_10 = revision.measurements[("b.R.track_p99", ("'busy'", "10"), "virtualenv-py3.11")]
    assert busy_10.status == "ok"
    assert busy_10.samples == (4.0, 4.1)
    idle_10 = revision.measurements[("b.R.track_p99", ("'idle'", "10"), "virtualenv-py3.11")]
    assert idle_10.samples == (2.0, 2.1)


def test_failed_skipped_and_missing_samples(tmp_path):
    rows = {
        "b.R.track_p99": full_row(
            [None, math.nan, 3.0, 4.0], [None, None, None, [4.0, 4.1]]
        ),
    }
    write_results(tmp_path, rows)
    revision = load_revision(str(tmp_path), "box", COMMIT)
    statuses = {key[1]: m.status for key, m in revision.measurements.items()}
    assert statuses == {
        ("'idle'", "1"): "failed",
        ("'idle'", "10"): "skipped",
        ("'busy'", "1"): "no-samples",
        ("'busy'", "10"): "ok",
    }


def test_unparameterised_failure(tmp_path):
    write_results(tmp_path, {"b.F.track_p99_x": [None, [], "v1", 1700000000000, 0.06]})
    revision = load_revision(str(tmp_path), "box", COMMIT)
    assert revision.measurements[("b.F.track_p99_x", (), "virtualenv-py3.11")].status == "failed"


def test_revision_that_did_not_build(tmp_path):
    # asv writes rows without a duration for every benchmark when the build fails.
    rows = {
        "b.R.track_p99": [None, PARAMS, "v1", 1700000000000],
        "b.F.track_p99_x": [None, [], "v2", 1700000000000],
    }
    write_results(tmp_path, rows)
    revision = load_revision(str(tmp_path), "box", COMMIT)
    assert {m.status for m in revision.measurements.values()} == {"not-built"}


def test_truncated_file_is_reported_and_untouched(tmp_path):
    path = write_results(tmp_path, {"b.R.track_p99": full_row([1.0] * 4, [[1.0]] * 4)})
    with open(path, "r+", encoding="utf-8") as stream:
        text = stream.read()
        stream.seek(0)
        stream.write(text[: len(text) // 2])
        stream.truncate()
    before = digest(path)

    revision = load_revision(str(tmp_path), "box", COMMIT)
    assert revision.measurements == {}
    assert [bad.path for bad in revision.bad_files] == [path]
    assert "truncated" in revision.bad_files[0].reason

    bad = find_bad_files(str(tmp_path))
    assert [entry.path for entry in bad] == [path]
    assert digest(path) == before


def test_invalid_json_in_the_middle(tmp_path):
    path = write_results(tmp_path, {})
    with open(path, "w", encoding="utf-8") as stream:
        stream.write('{"version": 2, oops, "results": {}}')
    (bad,) = find_bad_files(str(tmp_path))
    assert bad.path == path
    assert "not valid JSON" in bad.reason


def test_empty_file(tmp_path):
    path = write_results(tmp_path, {})
    open(path, "w").close()
    (bad,) = find_bad_files(str(tmp_path))
    assert bad.reason == "is empty"


def test_unknown_format_version(tmp_path):
    path = write_results(tmp_path, {}, version=1)
    revision = load_revision(str(tmp_path), "box", COMMIT)
    assert revision.bad_files[0].path == path
    assert "format version 1" in revision.bad_files[0].reason


def test_row_with_wrong_number_of_results(tmp_path):
    write_results(tmp_path, {"b.R.track_p99": full_row([1.0, 2.0], [[1.0], [2.0]])})
    revision = load_revision(str(tmp_path), "box", COMMIT)
    assert "expected 4 (one per parameter combination)" in revision.bad_files[0].reason


def test_other_commit_with_same_prefix_is_ignored(tmp_path):
    other = COMMIT[:8] + "f" * 32
    write_results(tmp_path, {"b.R.track_p99": full_row([1.0] * 4, [[1.0]] * 4)}, commit=other)
    revision = load_revision(str(tmp_path), "box", COMMIT)
    assert revision.files == []
    assert revision.bad_files == []


def test_machine_and_benchmarks_files_are_not_results(tmp_path):
    write_results(tmp_path, {})
    with open(tmp_path / "box" / "machine.json", "w") as stream:
        json.dump({"machine": "box", "version": 1}, stream)
    with open(tmp_path / "benchmarks.json", "w") as stream:
        json.dump({"b.R.track_p99": {"param_names": ["load", "children"]}, "version": 2}, stream)
    assert find_bad_files(str(tmp_path)) == []
    assert load_param_names(str(tmp_path)) == {"b.R.track_p99": ["load", "children"]}
