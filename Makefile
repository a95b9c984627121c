# Two commands: `make demo` and `make test`. Both create .venv on first use.
# `make demo` installs seglab alone (what the demo needs); `make test` adds the extras in EXTRAS (dev and export;
# CI asks for `make test EXTRAS=dev,export,sam` so the SAM tests run, which skip without the extra).
# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only torch wheels first (much smaller).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
TORCH_INDEX ?=
EXTRAS ?= dev,export,runtime,serve
comma := ,
# One stamp per set of extras: asking for more (CI's sam) installs them, a rerun with the same set does nothing.
FULL := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet torch torchvision --index-url $(TORCH_INDEX))

$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(BASE)

$(FULL): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(FULL) $(BASE)

demo: $(BASE)
	$(BIN)/seglab demo

# One test process per core (pytest-xdist), each with one torch thread: the tests are tiny, so more threads per
# process only contend (2 cores: 10 min 31 s in one process, 6 min 29 s in two). The few tests that assert on
# wall-clock time (marked `timing`) run afterwards, alone. `pytest` by itself runs everything serially.
test: $(FULL)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist worksteal -m "not timing"
	$(BIN)/python -m pytest -q -m timing

lint: $(FULL)
	$(BIN)/ruff check src tests benchmarks

bench: $(FULL)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs build *.egg-info
