# Every target creates .venv when it is missing. torch==2.13.0 is installed first and on its own so that
# pip never resolves a newer (CUDA) torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-perf lint format demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-perf: $(STAMP)
	$(PY) -m pytest -q -m perf

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m ruff format --check src tests benchmarks examples
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format src tests benchmarks examples

demo: $(STAMP)
	$(VENV)/bin/lk3d demo

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
	find src tests benchmarks examples -name __pycache__ -prune -exec rm -rf {} +   # bytecode and numba's caches (*.nbi, *.nbc live there)
	find src -name '*.nbi' -delete -o -name '*.nbc' -delete
