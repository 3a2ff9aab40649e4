# Imbalance Lab. `make run` starts the app, `make test` runs the tests; both create .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8501
# The exact versions CI passed with (`make lock` re-resolves them); `make test LOCK=` installs without it.
LOCK   ?= constraints.txt
# `make run CPU=1`: torch and torchvision from PyTorch's CPU index first (PyPI's Linux wheels pull
# several GB of CUDA libraries); the locked versions still apply (2.14.1 matches 2.14.1+cpu).
CPU    ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: run test test-floors bench lock clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Re-install whenever a requirements file or the lock is newer than the stamp.
$(VENV)/.app-installed: requirements.txt $(LOCK) | $(PY)
	$(if $(CPU),$(PIP) install -q torch torchvision --index-url $(TORCH_CPU_INDEX) $(if $(LOCK),-c $(LOCK)))
	$(PIP) install -q -r requirements.txt $(if $(LOCK),-c $(LOCK))
	touch $@

$(VENV)/.test-installed: requirements.txt requirements-test.txt $(LOCK) $(VENV)/.app-installed
	$(PIP) install -q -r requirements-test.txt $(if $(LOCK),-c $(LOCK))
	touch $@

$(VENV)/.bench-installed: requirements-bench.txt $(LOCK) $(VENV)/.app-installed
	$(PIP) install -q -r requirements-bench.txt $(if $(LOCK),-c $(LOCK))
	touch $@

# Re-resolve constraints.txt from PyPI after a requirements file changed: one exact version per
# package (per Python where they must differ, 3.10 and up), no local +cpu/+cu build tags. Pins
# already in the file are kept when they still fit; `make lock UPGRADE=1` takes the newest allowed.
lock: | $(PY)
	$(PIP) install -q uv
	$(VENV)/bin/uv pip compile requirements.txt requirements-test.txt requirements-bench.txt --universal --python-version 3.10 \
		--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -q -o constraints.txt

# Through `python -m core app`: a non-loopback HOST needs IMBALANCE_LAB_DATA_ROOTS (README, "Serving a class").
run: $(VENV)/.app-installed
	$(PY) -m core app --host $(HOST) --port $(PORT) $(if $(SHARED),--shared,)

test: $(VENV)/.test-installed
	$(PY) -m pytest

# The floors check, on demand: a fresh .venv-floors with each direct requirement at the lowest
# version requirements.txt allows (uv's lowest-direct resolution), then the fast tests there;
# bench/floors.py writes what ran with what to bench/results/floors.txt (commit it).
FLOORS_VENV := .venv-floors
test-floors: | $(PY)
	$(PIP) install -q uv
	rm -rf $(FLOORS_VENV)
	$(VENV)/bin/uv venv -q --python $(PYTHON) $(FLOORS_VENV)
	$(VENV)/bin/uv pip install -q --python $(FLOORS_VENV)/bin/python --resolution lowest-direct -r requirements.txt \
		"pytest>=8.0" "pytest-timeout>=2.2" "hypothesis>=6.100"
	$(FLOORS_VENV)/bin/python bench/floors.py

bench: $(VENV)/.bench-installed
	@echo "Benchmarks are scripts: e.g. $(PY) bench/dataset_load.py (see BENCHMARKS.md)"

clean-venv:
	rm -rf $(VENV)
