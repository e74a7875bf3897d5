# Profiling of the restart path; docs/PROFILING.md explains how to read the
# output. Included by the Makefile, which defines venv, machine, VENV, VENV_PYTHON
# and ASV.
#
#   make profile                                   both profiles below
#   make profile-flamegraph PROFILE_LOAD=idle PROFILE_CHILDREN=1
#   make profile-flamegraph PROFILE_CHILDREN=bare  the baseline, for comparison
#   make profile-asv PROFILE_BENCH='restart_latency.RestartCycle.time_one_for_one\(10000\)'
#
# Both profile the working tree as installed in .venv.

# py-spy samples one restart-latency measurement of the suite
# (python -m benchmarks._raw) at this load level (idle, light or heavy), with
# this many one_for_one children, or the bare baseline for `bare`.
PROFILE_LOAD ?= light
PROFILE_CHILDREN ?= 1000
# Restarts in the profiled measurement. Crashes come every 1 ms (2 ms at heavy),
# so 10,000 take 10 s (20 s at heavy), which gives the restart path a few hundred samples.
PROFILE_RESTARTS ?= 10000
# py-spy samples per second (py-spy's own default is 100).
PROFILE_RATE ?= 1000
# Further py-spy record options, for example --function (one frame per
# function instead of per line) or --nonblocking (do not pause the process to sample it).
PY_SPY_ARGS ?=

# asv benchmark for `asv profile`, a full name with its parameters as a regular
# expression. asv profiles one call of the benchmark function under cProfile and
# not its setup_cache, and the restart-latency track_ benchmarks measure in
# setup_cache, so profiling one of them shows only the copying of stored
# numbers. RestartCycle.time_one_for_one runs one whole restart in the call.
PROFILE_BENCH ?= restart_latency.RestartCycle.time_one_for_one\(100\)
# Number of cProfile lines printed.
PROFILE_LINES ?= 40

PROFILE_DIR ?= .asv/profile
PY_SPY := $(VENV)/bin/py-spy
PROFILE_TARGET = $(if $(filter bare,$(PROFILE_CHILDREN)),--bare,--children $(PROFILE_CHILDREN))
PROFILE_SVG = $(PROFILE_DIR)/restart-$(PROFILE_LOAD)-$(PROFILE_CHILDREN).svg
PROFILE_PSTATS = $(PROFILE_DIR)/asv-profile.pstats

.PHONY: profile profile-flamegraph profile-asv

profile: profile-flamegraph profile-asv

profile-flamegraph: venv
	mkdir -p $(PROFILE_DIR)
	$(PY_SPY) record --rate $(PROFILE_RATE) --format flamegraph --output $(PROFILE_SVG) $(PY_SPY_ARGS) -- \
		$(VENV_PYTHON) -m benchmarks._raw --load $(PROFILE_LOAD) $(PROFILE_TARGET) --restarts $(PROFILE_RESTARTS)
	@echo "flame graph: $(CURDIR)/$(PROFILE_SVG) (open it in a browser; click a frame to zoom, Ctrl+F to search)"

# pstats prints seconds with three decimals, which rounds every function of a
# single restart to 0.000, so this prints microseconds instead.
define PROFILE_PRINT_STATS
import pstats, sys
stats = pstats.Stats(sys.argv[1]).stats
rows = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
total = sum(row[1][2] for row in rows)
print(f"{len(rows)} functions, {sum(row[1][1] for row in rows)} calls, {total * 1e6:.1f} us in all (cProfile clock, overhead included)")
print(f"{'calls':>6} {'own us':>8} {'cum us':>8}  function")
for (path, line, name), (_, calls, own, cumulative, _) in rows[: int(sys.argv[2])]:
    where = "/".join(path.split("/")[-2:])
    print(f"{calls:6d} {own * 1e6:8.1f} {cumulative * 1e6:8.1f}  {where}:{line}({name})")
endef
export PROFILE_PRINT_STATS

profile-asv: machine
	mkdir -p $(PROFILE_DIR)
	$(ASV) profile --python=same --force --output $(PROFILE_PSTATS) '$(PROFILE_BENCH)'
	$(VENV_PYTHON) -c "$$PROFILE_PRINT_STATS" $(PROFILE_PSTATS) $(PROFILE_LINES)
	@echo "cProfile data: $(CURDIR)/$(PROFILE_PSTATS) (python -m pstats $(PROFILE_PSTATS) to browse it)"
