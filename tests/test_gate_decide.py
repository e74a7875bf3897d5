"""Verdicts and reports of the benchmark gate, from hand-made samples (no asv run)."""

import json
import math

import pytest

from tools.gate.decide import Settings, compare_revisions, split_rounds
from tools.gate.report import (
    EXIT_BROKEN,
    EXIT_OK,
    EXIT_REGRESSION,
    Report,
    Revision,
    exit_code_for,
    format_value,
)
from tools.gate.results import Measurement, RevisionResults

P99 = "restart.Latency.track_p99"
ENV = "virtualenv-py3.11"


def spread(center: float, count: int = 20, width: float = 0.04) -> tuple[float, ...]:
    """Return ``count`` distinct values evenly spread over center * (1 +- width)."""
    return tuple(center * (1 - width + 2 * width * i / (count - 1)) for i in range(count))


def revision(commit: str, rows: dict) -> RevisionResults:
    """Build stored results from {(benchmark, params): samples or status string}."""
    result = RevisionResults(commit)
    for (benchmark, params), value in rows.items():
        if isinstance(value, str):
            measurement = Measurement(benchmark, params, ENV, value)
        else:
            measurement = Measurement(benchmark, params, ENV, "ok", value, sorted(value)[0])
        result.measurements[(benchmark, params, ENV)] = measurement
    return result


def judge(base_rows: dict, head_rows: dict, **settings) -> list:
    return compare_revisions(
        revision("a" * 40, base_rows),
        revision("b" * 40, head_rows),
        Settings(**settings),
        param_names={P99: ["load", "children"]},
        units={P99: "seconds"},
    )


IDLE = ("'idle'", "1")
HEAVY = ("'heavy'", "100")


def test_clear_slowdown_is_regression():
    rows = judge({(P99, IDLE): spread(1e-4)}, {(P99, IDLE): spread(1.3e-4)})
    assert [row.verdict for row in rows] == ["regression"]
    assert rows[0].ratio == pytest.approx(1.3)
    assert rows[0].p_value < 0.01
    assert rows[0].label == "load='idle', children=1"


def test_same_distribution_is_unchanged():
    rows = judge({(P99, IDLE): spread(1e-4)}, {(P99, IDLE): spread(1e-4)})
    assert rows[0].verdict == "unchanged"
    assert rows[0].p_value > 0.01


def test_significant_but_small_change_is_unchanged():
    rows = judge(
        {(P99, IDLE): spread(1e-4, width=0.01)}, {(P99, IDLE): spread(1.05e-4, width=0.01)}
    )
    assert rows[0].verdict == "unchanged"
    assert rows[0].p_value < 0.01
    assert "below the 10% minimum effect" in rows[0].note


def test_large_change_with_few_samples_is_not_significant():
    # Two samples per side: the smallest one-sided p-value possible is 1/6.
    rows = judge({(P99, IDLE): (1.0, 1.1)}, {(P99, IDLE): (2.0, 2.1)})
    assert rows[0].verdict == "unchanged"
    assert rows[0].p_value == pytest.approx(1 / 6)
    assert "not significant" in rows[0].note


def test_min_effect_is_configurable():
    base = {(P99, IDLE): spread(1e-4, width=0.01)}
    head = {(P99, IDLE): spread(1.05e-4, width=0.01)}
    assert judge(base, head, min_effect=0.03)[0].verdict == "regression"


def test_faster_head_is_improvement():
    rows = judge({(P99, IDLE): spread(1e-4)}, {(P99, IDLE): spread(0.7e-4)})
    assert rows[0].verdict == "improvement"


def test_higher_is_better_drop_is_regression():
    rows = judge(
        {(P99, IDLE): spread(1000.0)},
        {(P99, IDLE): spread(700.0)},
        higher_is_better=(r"\.track_p99$",),
    )
    assert rows[0].verdict == "regression"
    assert rows[0].higher_is_better


def test_higher_is_better_rise_is_improvement():
    rows = judge(
        {(P99, IDLE): spread(1000.0)},
        {(P99, IDLE): spread(1300.0)},
        higher_is_better=(r"\.track_p99$",),
    )
    assert rows[0].verdict == "improvement"


def test_failed_at_head_is_reported_beside_regression():
    rows = judge(
        {(P99, IDLE): spread(1e-4), (P99, HEAVY): spread(1e-3)},
        {(P99, IDLE): spread(1.3e-4), (P99, HEAVY): "failed"},
    )
    verdicts = {row.params: row.verdict for row in rows}
    assert verdicts == {IDLE: "regression", HEAVY: "failed"}
    assert rows[0].verdict == "regression"
    assert "failed at HEAD" in rows[1].note
    assert exit_code_for(rows, []) == EXIT_BROKEN


@pytest.mark.parametrize(
    ("base_value", "head_value", "verdict", "note"),
    [
        ("not-built", "ok", "not-built", "did not build at BASE"),
        ("ok", "not-built", "not-built", "did not build at HEAD"),
        ("ok", "no-samples", "no-samples", "no samples stored at HEAD"),
        ("skipped", "ok", "skipped", "skipped at BASE"),
        ("ok", None, "missing", "no result stored for HEAD"),
    ],
)
def test_rows_without_samples(base_value, head_value, verdict, note):
    def rows_for(value):
        if value is None:
            return {}
        return {(P99, IDLE): spread(1e-4) if value == "ok" else value}

    rows = judge(rows_for(base_value), rows_for(head_value))
    assert rows[0].verdict == verdict
    assert note in rows[0].note


def test_skipped_row_does_not_break_the_gate():
    rows = judge({(P99, IDLE): "skipped"}, {(P99, IDLE): spread(1e-4)})
    assert exit_code_for(rows, []) == EXIT_OK


def test_selection_ignores_other_benchmarks():
    other = "restart.Latency.track_p50"
    rows = judge(
        {(P99, IDLE): spread(1e-4), (other, IDLE): spread(1e-4)},
        {(P99, IDLE): spread(1e-4), (other, IDLE): spread(9e-4)},
    )
    assert [row.benchmark for row in rows] == [P99]


def test_holm_adjustment_grows_with_rows():
    single = judge({(P99, IDLE): spread(1e-4)}, {(P99, IDLE): spread(1.3e-4)})
    many_base = {(P99, ("'idle'", str(n))): spread(1e-4) for n in range(10)}
    many_head = {(P99, ("'idle'", str(n))): spread(1.3e-4) for n in range(10)}
    many = judge(many_base, many_head)
    assert all(row.p_value >= row.p_raw for row in many)
    assert max(row.p_value for row in many) > single[0].p_value


def test_regressions_sort_first():
    rows = judge(
        {(P99, IDLE): spread(1e-4), (P99, HEAVY): spread(1e-3), (P99, ("'x'", "1")): "skipped"},
        {
            (P99, IDLE): spread(0.6e-4),
            (P99, HEAVY): spread(1.5e-3),
            (P99, ("'x'", "1")): spread(1e-4),
        },
    )
    assert [row.verdict for row in rows][0] == "regression"
    assert [row.verdict for row in rows][-1] == "skipped"


def test_invalid_settings_raise():
    with pytest.raises(ValueError, match="min_effect"):
        Settings(min_effect=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        Settings(alpha=1.5)
    with pytest.raises(ValueError, match="invalid regular expression"):
        Settings(select="track_(")


def test_exit_code_precedence():
    regression = judge({(P99, IDLE): spread(1e-4)}, {(P99, IDLE): spread(1.3e-4)})
    unchanged = judge({(P99, IDLE): spread(1e-4)}, {(P99, IDLE): spread(1e-4)})
    assert exit_code_for(unchanged, []) == EXIT_OK
    assert exit_code_for(regression, []) == EXIT_REGRESSION
    assert exit_code_for(regression, ["results file x is truncated"]) == EXIT_BROKEN
    assert exit_code_for([], ["asv stored no results for HEAD"]) == EXIT_BROKEN


def make_report(rows, problems=()) -> Report:
    return Report(
        base=Revision("HEAD~1", "a" * 40),
        head=Revision("HEAD", "b" * 40),
        machine="ci-box",
        settings=Settings(),
        comparisons=rows,
        rounds=4,
        problems=list(problems),
    )


def test_markdown_lists_regression_first():
    rows = judge(
        {(P99, IDLE): spread(1e-4), (P99, HEAVY): spread(1e-3)},
        {(P99, IDLE): spread(1e-4), (P99, HEAVY): spread(1.4e-3)},
    )
    markdown = make_report(rows).to_markdown()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| verdict | benchmark | parameters")
    assert table[1].startswith("| **regression** |")
    assert "children=100" in table[1]
    assert "1.4 ms (n=20)" in table[1]
    assert table[2].startswith("| unchanged |")
    assert "regression (exit code 1)" in markdown


def test_markdown_lists_problems():
    report = make_report([], problems=["stored results file r/x.json is truncated"])
    markdown = report.to_markdown()
    assert "### Problems" in markdown
    assert "- stored results file r/x.json is truncated" in markdown
    assert "broken (exit code 2)" in markdown


def test_markdown_escapes_pipes():
    rows = judge({(P99, ("'a|b'", "1")): spread(1e-4)}, {(P99, ("'a|b'", "1")): spread(1e-4)})
    assert "'a\\|b'" in make_report(rows).to_markdown()


def test_json_report_fields():
    rows = judge(
        {(P99, IDLE): spread(1e-4), (P99, HEAVY): spread(1e-3)},
        {(P99, IDLE): spread(1.3e-4), (P99, HEAVY): "failed"},
    )
    data = json.loads(json.dumps(make_report(rows).to_json(), allow_nan=False))
    assert data["outcome"] == "broken"
    assert data["exit_code"] == EXIT_BROKEN
    assert data["counts"] == {"failed": 1, "regression": 1}
    first = data["comparisons"][0]
    assert first["verdict"] == "regression"
    assert first["params"] == {"load": "'idle'", "children": "1"}
    assert first["better"] == "lower"
    assert set(first) >= {"before", "after", "ratio", "p_value", "verdict"}


def test_json_report_drops_infinite_ratio():
    rows = judge({(P99, IDLE): (0.0, 0.0, 0.0)}, {(P99, IDLE): (1.0, 2.0, 3.0)})
    assert math.isinf(rows[0].ratio)
    data = make_report(rows).to_json()
    assert data["comparisons"][0]["ratio"] is None
    json.dumps(data, allow_nan=False)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (3.52e-5, "seconds", "35.2 µs"),
        (9.998e-4, "seconds", "1 ms"),
        (2.5, "seconds", "2.5 s"),
        (4e-10, "seconds", "0.4 ns"),
        (1234.5, "bytes", "1234 bytes"),
        (None, "seconds", "n/a"),
    ],
)
def test_format_value(value, unit, text):
    assert format_value(value, unit) == text


def rounds_of(*centers, per_round=10):
    """Samples of consecutive rounds, each spread +-4% around its own center."""
    return tuple(value for center in centers for value in spread(center, per_round))


def test_split_rounds():
    assert split_rounds([1.0, 2.0, 3.0, 4.0], 2) == [[1.0, 2.0], [3.0, 4.0]]
    assert split_rounds([1.0, 2.0, 3.0], 2) is None
    assert split_rounds([1.0, 2.0], 1) is None


def test_round_shift_alone_is_not_regression():
    # Identical code whose second round ran on a busier machine: the batches alone look
    # significantly different, the rounds do not.
    base = {(P99, IDLE): rounds_of(1e-4, 1e-4, 1e-4, 1e-4)}
    head = {(P99, IDLE): rounds_of(1e-4, 2e-4, 1e-4, 2e-4)}
    by_batches = judge(base, head)
    by_rounds = compare_revisions(
        revision("a" * 40, base), revision("b" * 40, head), Settings(), rounds=4
    )
    assert by_batches[0].verdict == "regression"
    assert by_batches[0].method == "batches"
    assert by_rounds[0].verdict == "unchanged"
    assert by_rounds[0].method == "rounds"


def test_consistent_shift_across_rounds_is_regression():
    base = {(P99, IDLE): rounds_of(1.00e-4, 1.02e-4, 0.99e-4, 1.01e-4)}
    head = {(P99, IDLE): rounds_of(1.30e-4, 1.31e-4, 1.28e-4, 1.32e-4)}
    rows = compare_revisions(
        revision("a" * 40, base), revision("b" * 40, head), Settings(), rounds=4
    )
    assert rows[0].verdict == "regression"
    assert rows[0].method == "rounds"
    assert rows[0].p_value < 0.01


def test_uneven_rounds_fall_back_to_batches():
    base = {(P99, IDLE): spread(1e-4, count=21)}
    head = {(P99, IDLE): spread(1.3e-4, count=21)}
    rows = compare_revisions(
        revision("a" * 40, base), revision("b" * 40, head), Settings(), rounds=4
    )
    assert rows[0].method == "batches"
    assert rows[0].verdict == "regression"


# Round-to-round factors of a noisy shared machine: each row gets them in its own order,
# so the rows do not move together.
NOISE = (1.0, 1.6, 0.8, 1.3, 0.9, 1.5, 1.1, 0.7)


def grid_rounds(scale: float, rows: int = 6) -> dict:
    """Samples of 8 rounds for ``rows`` parameter sets, every round median ``scale`` x noise."""
    return {
        (P99, (f"'p{index}'", "1")): rounds_of(
            *(scale * NOISE[(round_ + 3 * index) % len(NOISE)] for round_ in range(len(NOISE)))
        )
        for index in range(rows)
    }


def judge_rounds(base_rows: dict, head_rows: dict) -> list:
    return compare_revisions(
        revision("a" * 40, base_rows), revision("b" * 40, head_rows), Settings(), rounds=len(NOISE)
    )


def test_pooled_row_catches_uniform_slowdown():
    """+30% on every parameter set: no single noisy row proves it, the pooled row does."""
    rows = judge_rounds(grid_rounds(1e-4), grid_rounds(1.3e-4))

    pooled = [row for row in rows if row.pooled]
    single = [row for row in rows if not row.pooled]
    assert len(pooled) == 1
    assert len(single) == 6
    assert {row.verdict for row in single} == {"unchanged"}
    assert pooled[0].verdict == "regression"
    assert pooled[0].method == "pooled"
    assert pooled[0].ratio == pytest.approx(1.3)
    assert pooled[0].label == "all 6 parameter sets, pooled"
    assert rows[0] is pooled[0]


def test_pooled_row_identical_grids_unchanged():
    rows = judge_rounds(grid_rounds(1e-4), grid_rounds(1e-4))
    assert {row.verdict for row in rows} == {"unchanged"}
    assert sum(1 for row in rows if row.pooled) == 1


def test_pooled_row_needs_rounds():
    """One round (batch samples only): nothing to pool by round."""
    assert not any(row.pooled for row in judge(grid_rounds(1e-4), grid_rounds(1.3e-4)))


def test_pooled_row_needs_two_parameter_sets():
    rows = judge_rounds(grid_rounds(1e-4, rows=1), grid_rounds(1.3e-4, rows=1))
    assert not any(row.pooled for row in rows)


def test_pooled_and_single_rows_share_alpha():
    """Two families, half of alpha each: Holm within the six single rows, then doubled."""
    rows = judge_rounds(grid_rounds(1e-4), grid_rounds(1.3e-4))
    pooled = next(row for row in rows if row.pooled)
    single = sorted((row for row in rows if not row.pooled), key=lambda row: row.p_raw)
    assert pooled.p_value == pytest.approx(min(1.0, 2 * pooled.p_raw))
    assert single[0].p_value == pytest.approx(min(1.0, 2 * 6 * single[0].p_raw))


def test_without_pooled_rows_holm_uses_all_of_alpha():
    rows = judge_rounds(grid_rounds(1e-4, rows=1), grid_rounds(1.3e-4, rows=1))
    assert rows[0].p_value == pytest.approx(rows[0].p_raw)
