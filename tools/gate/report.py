"""The gate's report: a JSON document for machines and Markdown for an issue or pull request."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

from .decide import Comparison, Settings

__all__ = ["EXIT_BROKEN", "EXIT_OK", "EXIT_REGRESSION", "EXIT_USAGE", "Report", "exit_code_for"]

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BROKEN = 2
EXIT_USAGE = 3

OUTCOMES = {
    EXIT_OK: "pass",
    EXIT_REGRESSION: "regression",
    EXIT_BROKEN: "broken",
    EXIT_USAGE: "usage error",
}

REPORT_FORMAT = 1


@dataclass
class Revision:
    """A revision as the user named it and the commit it resolved to."""

    name: str
    commit: str


@dataclass
class Report:
    """Everything one gate run found, ready to render."""

    base: Revision
    head: Revision
    machine: str
    settings: Settings
    comparisons: list[Comparison]
    rounds: int | None = None
    quick: bool = False
    problems: list[str] = field(default_factory=list)
    asv_log: str | None = None

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.comparisons, self.problems)

    def to_json(self) -> dict:
        counts = Counter(row.verdict for row in self.comparisons)
        return {
            "format": REPORT_FORMAT,
            "outcome": OUTCOMES[self.exit_code],
            "exit_code": self.exit_code,
            "base": {"name": self.base.name, "commit": self.base.commit},
            "head": {"name": self.head.name, "commit": self.head.commit},
            "machine": self.machine,
            "rounds": self.rounds,
            "quick": self.quick,
            "settings": {
                "select": self.settings.select,
                "higher_is_better": list(self.settings.higher_is_better),
                "min_effect": self.settings.min_effect,
                "alpha": self.settings.alpha,
                "test": "one-sided, Holm-adjusted over all compared rows; see each row's test",
            },
            "counts": dict(sorted(counts.items())),
            "problems": list(self.problems),
            "asv_log": self.asv_log,
            "comparisons": [_comparison_json(row) for row in self.comparisons],
        }

    def to_markdown(self) -> str:
        return render_markdown(self)


def exit_code_for(comparisons: list[Comparison], problems: list[str]) -> int:
    """Return the exit code: broken beats regression, which beats a pass.

    A run where something failed reports ``EXIT_BROKEN`` even if it also found a regression,
    because its coverage is incomplete; the report still lists the regression first.
    """
    if problems or any(row.is_broken for row in comparisons):
        return EXIT_BROKEN
    if any(row.verdict == "regression" for row in comparisons):
        return EXIT_REGRESSION
    return EXIT_OK


def _finite_or_none(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def _comparison_json(row: Comparison) -> dict:
    names = row.param_names if len(row.param_names) == len(row.params) else ()
    return {
        "benchmark": row.benchmark,
        "params": dict(zip(names, row.params)) if names else list(row.params),
        "env": row.env_name,
        "better": "higher" if row.higher_is_better else "lower",
        "unit": row.unit,
        "before": row.before,
        "after": row.after,
        "n_before": row.n_before,
        "n_after": row.n_after,
        "ratio": _finite_or_none(row.ratio),
        "p_value": row.p_value,
        "p_value_unadjusted": row.p_raw,
        "test": {
            "rounds": "welch-t-log-round-medians",
            "pooled": "welch-t-mean-log-round-medians",
            "batches": "mann-whitney-u",
        }.get(row.method),
        "pooled": row.pooled,
        "verdict": row.verdict,
        "note": row.note,
    }


def format_value(value: float | None, unit: str) -> str:
    """Format ``value`` for a table cell; seconds get an SI prefix (``35.2 µs``)."""
    if value is None:
        return "n/a"
    if unit in ("seconds", "s"):
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            # 0.9995 so that 999.8 µs reads "1 ms", not "1e+03 µs".
            if abs(value) >= scale * 0.9995 or scale == 1e-9:
                return f"{value / scale:.3g} {suffix}"
    text = f"{value:.4g}"
    return f"{text} {unit}" if unit and unit != "unit" else text


def _format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "n/a"
    if math.isinf(ratio):
        return "inf"
    return f"{ratio:.3f}"


def _format_p(p_value: float | None) -> str:
    return "n/a" if p_value is None else f"{p_value:.2g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """Render ``report`` as Markdown that GitHub shows as a table."""
    code = report.exit_code
    counts = Counter(row.verdict for row in report.comparisons)
    settings = report.settings
    lines = [f"## Benchmark gate: {OUTCOMES[code]} (exit code {code})", ""]

    mode = "quick mode (one run per benchmark)" if report.quick else (
        f"{report.rounds} interleaved rounds" if report.rounds else "stored results"
    )
    lines.append(
        f"BASE `{report.base.commit[:8]}` ({_cell(report.base.name)}) against "
        f"HEAD `{report.head.commit[:8]}` ({_cell(report.head.name)}) "
        f"on machine `{report.machine}`, {mode}."
    )
    lines.append("")
    methods = {row.method for row in report.comparisons if row.method}
    tests = []
    if "rounds" in methods:
        tests.append("Welch's t-test on the logarithms of the per-round medians")
    if "batches" in methods:
        tests.append("a Mann-Whitney U test on the batch samples of one run per revision")
    described = " or ".join(tests) or "none ran"
    if "pooled" in methods:
        described += (
            "; for a pooled row, the same test on the per-round mean of those logarithms over "
            "every parameter set of the benchmark"
        )
    compared = [row for row in report.comparisons if row.p_value is not None]
    pooled = sum(1 for row in compared if row.pooled)
    if pooled and pooled < len(compared):
        adjustment = (
            f"Holm-adjusted within the {len(compared) - pooled} single and the {pooled} pooled "
            "compared rows, each family with half of alpha,"
        )
    else:
        adjustment = f"Holm-adjusted over the {len(compared)} compared rows,"
    lines.append(
        f"A row is a regression when its median is at least {settings.min_effect:.0%} worse and "
        f"a one-sided test ({described}), {adjustment} "
        f"gives p < {settings.alpha:g}. Benchmarks selected by `{settings.select}`."
    )
    lines.append("")
    summary = ", ".join(f"{counts[verdict]} {verdict}" for verdict in sorted(counts))
    lines.append(f"Verdicts: {summary or 'no benchmark selected'}.")
    lines.append("")

    if report.problems:
        lines.append("### Problems")
        lines.append("")
        lines.extend(f"- {problem}" for problem in report.problems)
        lines.append("")

    if report.comparisons:
        lines.append(
            "| verdict | benchmark | parameters | env | before | after | ratio | p-value | note |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for row in report.comparisons:
            verdict = f"**{row.verdict}**" if row.verdict == "regression" or row.is_broken else (
                row.verdict
            )
            direction = " (higher is better)" if row.higher_is_better else ""
            before = format_value(row.before, row.unit)
            after = format_value(row.after, row.unit)
            if row.before is not None:
                before += f" (n={row.n_before})"
            if row.after is not None:
                after += f" (n={row.n_after})"
            cells = [
                verdict,
                f"`{row.benchmark}`{direction}",
                row.label,
                row.env_name,
                before,
                after,
                _format_ratio(row.ratio),
                _format_p(row.p_value),
                row.note,
            ]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
        lines.append("before and after are sample medians; ratio is after / before.")
        lines.append("")

    if report.asv_log:
        lines.append(f"asv output: `{report.asv_log}`")
        lines.append("")
    return "\n".join(lines)


def write_report(report: Report, json_path: str, markdown_path: str) -> None:
    """Write the JSON and Markdown forms of ``report``."""
    with open(json_path, "w", encoding="utf-8") as stream:
        json.dump(report.to_json(), stream, indent=2, allow_nan=False)
        stream.write("\n")
    with open(markdown_path, "w", encoding="utf-8") as stream:
        stream.write(report.to_markdown())
