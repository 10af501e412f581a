PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint docs docs-deps tutorials wheel-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/qrnn-tn demo --overwrite

test: setup
	$(BIN)/python -m pytest -n 2 -q

bench: setup
	$(BIN)/python -m benchmarks.statevector --quick
	$(BIN)/python -m benchmarks.contraction_scaling --quick
	$(BIN)/python -m benchmarks.mps --quick

DOCS_STAMP := $(VENV)/.docs-installed

docs-deps: $(DOCS_STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: docs-deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

tutorials: setup
	QRNN_TN_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python docs/tutorials/compile_and_inspect.py --out runs/tutorials/compile
	QRNN_TN_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python docs/tutorials/contraction_cost.py --out runs/tutorials/cost
	QRNN_TN_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python docs/tutorials/train_wide.py
	QRNN_TN_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python docs/tutorials/data_parallel_and_dask.py

wheel-check: setup
	PYTHON=$(BIN)/python .ci/wheel-check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist site *.egg-info
