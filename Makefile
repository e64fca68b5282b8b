# tensorgates: `make demo` sets up and runs the whole flow; `make test` sets up and tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TG     := $(BIN)/tensorgates
# Parallel pytest workers: the simulators are single-threaded.
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup iverilog demo sim synth prove bench report test test-full lint clean

setup: $(STAMP) iverilog

# torch first, pinned: the CPU build on this machine's disk. An unpinned torch would pull a
# multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Icarus Verilog comes from the system's packages; without it the Icarus runs are skipped
# with a visible reason.
iverilog:
	@command -v iverilog >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq iverilog >/dev/null) || true; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    (sudo apt-get update -qq && sudo apt-get install -y -qq iverilog >/dev/null) || true; \
	  fi; \
	  command -v iverilog >/dev/null 2>&1 || echo "warning: Icarus Verilog is not installed \
	(apt-get install iverilog); Icarus runs will be skipped"; }

demo: setup
	$(TG) demo

sim: setup
	$(BIN)/pytest -n $(JOBS) tests/test_cosim.py tests/test_nm_sparse.py

synth: setup
	$(TG) synth systolic_gemm --target ecp5
	$(TG) synth systolic_gemm --target ice40
	$(TG) synth systolic_gemm --target generic
	$(TG) synth nm_sparse_gemm --target ecp5
	$(TG) synth nm_sparse_gemm --set rows=1 --set cols=2 --target ice40

# Every block's formal point at the full depths (docs/formal.md); `make test` runs small ones.
prove: setup
	$(TG) prove --all --full

bench: setup
	$(TG) bench

report: setup
	$(TG) report

test: setup
	$(BIN)/pytest -n $(JOBS) -m "not full"

test-full: setup
	$(BIN)/pytest -n $(JOBS)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf build
