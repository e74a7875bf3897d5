# Benchmarks and tests for asyncio-supervisor. Every target creates .venv and
# installs the project with its bench and test extras first, so they work
# from a fresh clone with Python 3.11 and git installed.

PYTHON ?= python3.11
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
ASV := $(VENV)/bin/asv

# asv machine name under which results are stored in results/$(MACHINE)/.
MACHINE ?= $(shell hostname -s)
# p99 restart latency, in seconds, that the summary checks against.
SLO ?= 1.0
# Commits for `make history`: an asv/git range such as HEAD~10..HEAD. Empty
# means every commit since asv.conf.json first appeared.
RANGE ?=
# Optional cap on the number of commits `make history` measures (asv --steps).
STEPS ?=
# Extra pytest arguments, for example PYTEST_ARGS='-m "not slow"'.
PYTEST_ARGS ?=
# Extra `asv run` arguments for bench, bench-quick and history, for example
# ASV_ARGS='--bench RestartCycle'. A commit measured with --bench has partial
# results, which the --skip-existing-commits of bench and history then keep.
ASV_ARGS ?=

.PHONY: venv machine test test-pythons bench bench-quick history compare summary

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -e '.[bench,test]'
	touch $@

# Registers the machine with asv's defaults, without prompting.
machine: venv
	$(ASV) machine --yes --machine $(MACHINE)

test: venv
	$(VENV_PYTHON) -m pytest $(PYTEST_ARGS)
	$(ASV) check --python=same

# The fast tests on other CPython versions, each in a venv .venv-pyX.Y
# (tools/test-pythons.sh). On 3.12 and later children start eagerly, a path
# that `make test` on 3.11 never takes. A version not installed is skipped,
# unless REQUIRE_PYTHONS=1.
TEST_PYTHONS ?= 3.12 3.13
test-pythons:
	sh tools/test-pythons.sh $(TEST_PYTHONS) -- $(PYTEST_ARGS)

# Measures the committed HEAD (not uncommitted changes) in a fresh virtualenv,
# unless results for HEAD on $(MACHINE) already exist. Publishes, summarizes
# and writes the latency report even when a benchmark failed, names every step
# that failed, and exits with the status of the first one (a p99 that missed
# the SLO makes the summary fail). The report (tools/latency_report.py) goes to
# .asv/html/latency/; its CDF plots come from a new measurement of about a
# minute in .venv, so they include uncommitted changes, and the report says so.
# Pass options to it with REPORT_ARGS, for example REPORT_ARGS='--children 1,10000'.
bench: machine
	status=0; \
	failed() { echo "make bench: $$2 failed with status $$1" >&2; if [ $$status -eq 0 ]; then status=$$1; fi; }; \
	$(ASV) run --record-samples --skip-existing-commits --show-stderr --machine $(MACHINE) $(ASV_ARGS) HEAD || failed $$? "asv run"; \
	$(ASV) publish || failed $$? "asv publish"; \
	$(VENV_PYTHON) tools/bench_summary.py --machine $(MACHINE) --slo $(SLO) || failed $$? "the summary"; \
	$(VENV_PYTHON) tools/latency_report.py --machine $(MACHINE) --slo $(SLO) $(REPORT_ARGS) || failed $$? "the latency report"; \
	echo "asv site: $(CURDIR)/.asv/html/index.html (serve it with: $(ASV) preview)"; \
	exit $$status

# One pass over every benchmark against the working tree, in the development
# venv; asv stores no results from an existing environment.
bench-quick: machine
	$(ASV) run --quick --show-stderr --python=same --machine $(MACHINE) $(ASV_ARGS)

# Measures a series of commits, skipping those that already have results.
history: machine
	@if [ -n "$(RANGE)" ]; then \
		range='$(RANGE)'; \
	else \
		first=$$(git log --reverse --format=%H -- asv.conf.json | head -n 1); \
		test -n "$$first" || { echo "no commit contains asv.conf.json; commit it or pass RANGE=" >&2; exit 2; }; \
		parent=$$(git rev-parse --verify --quiet "$$first^" || true); \
		mkdir -p .asv; \
		git rev-list HEAD $${parent:+--not $$parent} > .asv/history-commits.txt; \
		range=HASHFILE:.asv/history-commits.txt; \
	fi; \
	echo "asv run $$range"; \
	$(ASV) run --record-samples --skip-existing-commits --machine $(MACHINE) $(if $(STEPS),--steps $(STEPS)) $(ASV_ARGS) "$$range"

# Measures HEAD and its parent on $(MACHINE) where results are missing, then compares them.
# A commit cannot hold its own results, so on a fresh clone HEAD is never measured yet.
compare: machine
	$(ASV) run --record-samples --skip-existing-commits --machine $(MACHINE) $(ASV_ARGS) HEAD~2..HEAD
	$(ASV) compare --machine $(MACHINE) HEAD~1 HEAD

summary: venv
	$(VENV_PYTHON) tools/bench_summary.py --machine $(MACHINE) --slo $(SLO)

-include make/*.mk
