"""Read asv's stored results (format version 2, asv 0.6) without changing them.

asv keeps one JSON file per machine, commit and environment:
``<results_dir>/<machine>/<commit[:8]>-<env_name>.json``. Each benchmark row is a list whose
meaning is given by the file's ``result_columns``. A parameterised benchmark stores one entry per
parameter combination in ``result`` and ``samples``, in the order of
``itertools.product(*params)``. In ``result``, ``None`` means the benchmark failed for that
combination and NaN means it was skipped (``NotImplementedError`` in setup). ``samples`` is only
present when asv ran with ``--record-samples``.

Nothing here writes: a file that cannot be read becomes a ``BadFile`` naming it and the reason,
and the file stays as it is.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field

__all__ = [
    "BadFile",
    "Measurement",
    "RevisionResults",
    "find_bad_files",
    "load_revision",
]

SUPPORTED_FORMAT_VERSION = 2


@dataclass(frozen=True)
class Measurement:
    """One benchmark and parameter combination at one revision, in one environment.

    ``status`` is ``"ok"`` (``samples`` contains the values), ``"failed"``, ``"skipped"``,
    ``"no-samples"`` (a value but no recorded samples) or ``"not-built"`` (the revision did not
    build in this environment, so no benchmark ran).
    """

    benchmark: str
    params: tuple[str, ...]
    env_name: str
    status: str
    samples: tuple[float, ...] = ()
    value: float | None = None


@dataclass(frozen=True)
class BadFile:
    """A results file that could not be read, with the reason."""

    path: str
    reason: str


@dataclass
class RevisionResults:
    """Everything stored for one commit on one machine, keyed by (benchmark, params, env)."""

    commit: str
    measurements: dict[tuple[str, tuple[str, ...], str], Measurement] = field(default_factory=dict)
    bad_files: list[BadFile] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _read_json(path: str) -> tuple[dict | None, str | None]:
    """Return the decoded object in ``path``, or None and the reason it is unreadable."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text: {exc.reason} at byte {exc.start}"
    if not text.strip():
        return None, "is empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # asv writes one JSON object, so a file cut off while it was written does not end
        # with the closing brace.
        if not text.rstrip().endswith("}"):
            return None, (
                f"is truncated (no closing brace; the JSON error is {exc.msg} at line "
                f"{exc.lineno}, column {exc.colno})"
            )
        return None, f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if not isinstance(data, dict):
        return None, f"holds a JSON {type(data).__name__}, expected an object"
    return data, None


def _check_results_file(data: dict) -> str | None:
    """Return why ``data`` is not an asv results file this module understands, or None."""
    version = data.get("version")
    if version != SUPPORTED_FORMAT_VERSION:
        return (
            f"has results format version {version!r}, expected {SUPPORTED_FORMAT_VERSION} "
            "(asv 0.6)"
        )
    for key in ("commit_hash", "env_name", "result_columns", "results"):
        if key not in data:
            return f"is missing the key {key!r}"
    columns = data["result_columns"]
    if not isinstance(columns, list) or "result" not in columns or "params" not in columns:
        return f"has result_columns {columns!r} without 'result' and 'params'"
    if not isinstance(data["results"], dict):
        return f"has 'results' of type {type(data['results']).__name__}, expected an object"
    return None


def _is_results_file_name(name: str) -> bool:
    return name.endswith(".json") and name not in ("machine.json", "benchmarks.json")


def find_bad_files(results_dir: str) -> list[BadFile]:
    """Check every results file under ``results_dir`` and return those that cannot be read."""
    bad = []
    if not os.path.isdir(results_dir):
        return bad
    for root, dirs, files in os.walk(results_dir):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if not name.endswith(".json"):
                continue
            data, reason = _read_json(path)
            if reason is None and _is_results_file_name(name) and root != results_dir:
                reason = _check_results_file(data)
            if reason is not None:
                bad.append(BadFile(path, reason))
    return bad


def _row_columns(columns: list[str], row: list) -> dict:
    """Map column names to values; asv drops trailing columns that are all empty."""
    return {name: row[index] if index < len(row) else None for index, name in enumerate(columns)}


def _as_float(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _rows_to_measurements(data: dict) -> tuple[list[Measurement], str | None]:
    """Convert one results file into measurements; return them and any problem found."""
    env_name = data["env_name"]
    columns = data["result_columns"]
    measurements = []
    rows = data["results"]

    # asv stores no build status, but a revision that failed to build has rows that were never
    # run: no 'duration' column and no result anywhere in the file.
    not_built = bool(rows) and all(
        _row_columns(columns, row).get("duration") is None
        and _row_columns(columns, row).get("result") is None
        for row in rows.values()
        if isinstance(row, list)
    )

    for benchmark, row in rows.items():
        if not isinstance(row, list):
            return [], f"has a row for {benchmark!r} of type {type(row).__name__}"
        cells = _row_columns(columns, row)
        params = cells.get("params") or []
        combinations = [tuple(combination) for combination in itertools.product(*params)]
        result = cells.get("result")
        samples = cells.get("samples")

        if not isinstance(result, list):
            result = [result] * len(combinations)
        if not isinstance(samples, list):
            samples = [None] * len(combinations)
        if len(result) != len(combinations) or len(samples) != len(combinations):
            return [], (
                f"has {len(result)} results and {len(samples)} sample lists for "
                f"{benchmark!r}, expected {len(combinations)} (one per parameter combination)"
            )

        for combination, value, value_samples in zip(combinations, result, samples):
            number = _as_float(value)
            if not_built:
                status, kept = "not-built", ()
            elif value is None:
                status, kept = "failed", ()
            elif number is None:
                return [], f"has a non-numeric result {value!r} for {benchmark!r}"
            elif math.isnan(number):
                status, kept = "skipped", ()
            elif not value_samples:
                status, kept = "no-samples", ()
            else:
                kept = tuple(_as_float(s) for s in value_samples)
                if any(s is None or math.isnan(s) for s in kept):
                    return [], f"has a non-numeric sample for {benchmark!r}{combination!r}"
                status = "ok"
            measurements.append(
                Measurement(benchmark, combination, env_name, status, kept, number)
            )
    return measurements, None


def load_revision(results_dir: str, machine: str, commit: str) -> RevisionResults:
    """Load every environment's results for ``commit`` (a full hash) on ``machine``.

    A file that cannot be read is recorded in ``bad_files`` and otherwise ignored.
    """
    revision = RevisionResults(commit)
    machine_dir = os.path.join(results_dir, machine)
    if not os.path.isdir(machine_dir):
        return revision
    prefix = commit[:8] + "-"
    for name in sorted(os.listdir(machine_dir)):
        if not name.startswith(prefix) or not _is_results_file_name(name):
            continue
        path = os.path.join(machine_dir, name)
        data, reason = _read_json(path)
        if reason is None:
            reason = _check_results_file(data)
        if reason is None and data["commit_hash"] != commit:
            # Another commit whose hash shares the first eight digits.
            continue
        if reason is None:
            measurements, reason = _rows_to_measurements(data)
        if reason is not None:
            revision.bad_files.append(BadFile(path, reason))
            continue
        revision.files.append(path)
        for measurement in measurements:
            key = (measurement.benchmark, measurement.params, measurement.env_name)
            revision.measurements[key] = measurement
    return revision


def load_param_names(results_dir: str) -> dict[str, list[str]]:
    """Return each benchmark's parameter names from asv's ``benchmarks.json``, if readable."""
    path = os.path.join(results_dir, "benchmarks.json")
    data, reason = _read_json(path)
    if reason is not None:
        return {}
    names = {}
    for benchmark, entry in data.items():
        if isinstance(entry, dict) and isinstance(entry.get("param_names"), list):
            names[benchmark] = [str(name) for name in entry["param_names"]]
    return names


def load_units(results_dir: str) -> dict[str, str]:
    """Return each benchmark's unit from asv's ``benchmarks.json``, if readable."""
    path = os.path.join(results_dir, "benchmarks.json")
    data, reason = _read_json(path)
    if reason is not None:
        return {}
    return {
        benchmark: str(entry.get("unit", ""))
        for benchmark, entry in data.items()
        if isinstance(entry, dict)
    }
