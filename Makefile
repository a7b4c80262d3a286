# `make demo` and `make test` each create (or refresh) .venv and install the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export SYMGRAD_CACHE_DIR ?= $(CURDIR)/build/kernel-cache

.PHONY: venv demo test test-all clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	mkdir -p build
	$(BIN)/python examples/lecture_graph.py
	$(BIN)/python examples/chain_rule.py
	$(BIN)/symgrad compile examples/polynomial_sin.py -o build/poly_kernels.py --jit
	$(BIN)/python examples/polynomial_sin.py
	$(BIN)/python examples/hinge_two_layer.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf build .pytest_cache
