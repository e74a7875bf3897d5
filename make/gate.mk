# Benchmark gate (tools/gate): runs the p99 benchmarks on BASE and HEAD with
# interleaved rounds and decides whether HEAD regressed. Included by the
# Makefile, which defines venv, machine, VENV_PYTHON and MACHINE.
#
#   make gate                          BASE = last good commit, else HEAD's parent
#   make gate BASE=HEAD~1 HEAD=HEAD
#   make gate-quick                    one asv pass per revision, for pull requests
#   make gate-record                   record HEAD as the last good commit
#   make gate-calibrate                false alarms and detections, in a temporary clone
#
# Exit codes: 0 no regression, 1 regression, 2 a benchmark failed or a revision
# did not build (everything that ran is still compared and reported), 3 usage
# or configuration error. The report is in $(GATE_REPORT_DIR)/report.md and
# report.json; asv's own results stay under .asv/gate, never in results/.

# Revision to judge, and the one to compare it with; an empty BASE means the
# commit recorded in $(GATE_STATE_FILE), or HEAD's parent if there is none.
HEAD ?= HEAD
BASE ?=
# Interleaved rounds per revision; every round measures each benchmark afresh
# in a new process. The calibration in docs/BENCHMARKS.md shows why 8, not 4.
ROUNDS ?= 8
# Benchmarks the gate judges (an asv --bench regex): the one_for_one p99 rows and their
# baseline, which the calibration covers. Widen it, for example to '\.track_p99', to
# gate the tree, actor, process and uvloop suites too, at several minutes per round.
GATE_SELECT ?= ^restart_latency\..*\.track_p99
GATE_STATE_FILE ?= .gate/last-good
GATE_REPORT_DIR ?= .asv/gate/report
# Further options for `python -m tools.gate run`, such as --min-effect 5%,
# --alpha 0.05 or --higher-is-better REGEX.
GATE_ARGS ?=

# Calibration: gate runs per scenario, injected delays as percentages of the
# current p99, and the function on the restart path that the delay wraps.
CALIBRATION_RUNS ?= 20
CALIBRATION_LEVELS ?= 25
CALIBRATION_ROUNDS ?= $(ROUNDS)
DELAY_SITE ?= supervisor._supervisor:Supervisor._count_restart
# Benchmarks whose measured path calls DELAY_SITE: the baseline never does.
CALIBRATION_DELAYED ?= OneForOneRestartLatency
CALIBRATION_OUTPUT ?= .asv/gate/calibration
# Minutes after which no new cycle starts (empty: run every cycle).
CALIBRATION_MINUTES ?=
# An earlier calibration.json to continue with more cycles (empty: start a new calibration).
CALIBRATION_RESUME ?=

GATE := $(VENV_PYTHON) -m tools.gate

.PHONY: gate gate-quick gate-record gate-calibrate

gate: machine
	$(GATE) run --machine $(MACHINE) --head '$(HEAD)' $(if $(BASE),--base '$(BASE)') \
		--rounds $(ROUNDS) --select '$(GATE_SELECT)' --state-file $(GATE_STATE_FILE) \
		--report-dir $(GATE_REPORT_DIR) $(GATE_ARGS)

gate-quick: machine
	$(GATE) run --quick --machine $(MACHINE) --head '$(HEAD)' $(if $(BASE),--base '$(BASE)') \
		--select '$(GATE_SELECT)' --state-file $(GATE_STATE_FILE) --report-dir $(GATE_REPORT_DIR) $(GATE_ARGS)

gate-record: venv
	$(GATE) record-good '$(HEAD)' --state-file $(GATE_STATE_FILE)

gate-calibrate: machine
	$(GATE) calibrate --machine $(MACHINE) --runs $(CALIBRATION_RUNS) \
		--rounds $(CALIBRATION_ROUNDS) --select '$(GATE_SELECT)' --delay-site $(DELAY_SITE) \
		--delayed '$(CALIBRATION_DELAYED)' \
		$(foreach level,$(CALIBRATION_LEVELS),--delay-percent $(level)) \
		$(if $(CALIBRATION_MINUTES),--max-minutes $(CALIBRATION_MINUTES)) \
		$(if $(CALIBRATION_RESUME),--resume '$(CALIBRATION_RESUME)') \
		--output $(CALIBRATION_OUTPUT) $(GATE_ARGS)
