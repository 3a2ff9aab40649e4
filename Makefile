# Imbalance Lab. `make run` starts the app, `make test` runs the tests; both create .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: run test bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Re-install whenever a requirements file is newer than the stamp.
$(VENV)/.app-installed: requirements.txt | $(PY)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements.txt requirements-test.txt $(VENV)/.app-installed
	$(PIP) install -q -r requirements-test.txt
	touch $@

$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.app-installed
	$(PIP) install -q -r requirements-bench.txt
	touch $@

# Through `python -m core app`: a non-loopback HOST needs IMBALANCE_LAB_DATA_ROOTS (README, "Serving a class").
run: $(VENV)/.app-installed
	$(PY) -m core app --host $(HOST) --port $(PORT) $(if $(SHARED),--shared,)

test: $(VENV)/.test-installed
	$(PY) -m pytest

bench: $(VENV)/.bench-installed
	@echo "Benchmarks are scripts: e.g. $(PY) bench/dataset_load.py (see BENCHMARKS.md)"

clean-venv:
	rm -rf $(VENV)
