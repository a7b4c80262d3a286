# `make demo` and `make test` each create (or refresh) .venv and install the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export SYMGRAD_CACHE_DIR ?= $(CURDIR)/build/kernel-cache

.PHONY: venv demo test test-all test-libm fuzz snapshots pictures clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	mkdir -p build
	$(BIN)/python examples/lecture_graph.py
	$(BIN)/symgrad grad examples/lecture_graph.py --steps --at x=-2,y=5,z=-4
	$(BIN)/symgrad graph examples/lecture_graph.py --at x=-2,y=5,z=-4 -o build/lecture_graph.png
	$(BIN)/python examples/chain_rule.py
	$(BIN)/symgrad grad examples/chain_rule.py
	$(BIN)/symgrad compile examples/polynomial_sin.py -o build/poly_kernels.py --jit
	$(BIN)/python examples/polynomial_sin.py
	$(BIN)/python examples/hinge_two_layer.py
	$(BIN)/python examples/linear_rmsprop.py
	$(BIN)/symgrad train examples/two_layer_net.py --steps 500 --optimizer sgd --lr 1e-4 \
		--plot build/two_layer_loss.png

# Workers: one per core, at most 4 (each compiles its own Numba kernels and holds ~2 GB).
XDIST := -n auto --maxprocesses=4 --dist worksteal

test: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST)

# Rewrite tests/snapshots/ (the generated module of each example) after a codegen change.
snapshots: $(STAMP)
	$(BIN)/python tests/test_snapshots.py --update

# Rewrite docs/img/: one picture of each example's graph (the lecture's at its point).
pictures: $(STAMP)
	mkdir -p docs/img
	$(BIN)/symgrad graph examples/lecture_graph.py --at x=-2,y=5,z=-4 -o docs/img/lecture_graph.png
	for example in chain_rule polynomial_sin hinge_two_layer linear_rmsprop two_layer_net \
		rosenbrock_newton; do \
		$(BIN)/symgrad graph examples/$$example.py -o docs/img/$$example.png || exit 1; done

# The fast set with libm's exp/log/tanh in the CPU loops instead of codegen/vector_math.py.
test-libm: $(STAMP)
	SYMGRAD_MATH=libm $(BIN)/python -m pytest -q $(XDIST) -m "not slow"

fuzz: $(STAMP)
	SYMGRAD_FUZZ_EXAMPLES=5000 SYMGRAD_FUZZ_COMPILED_EXAMPLES=5000 SYMGRAD_FUZZ_CUDA_EXAMPLES=5000 \
	$(BIN)/python -m pytest -q \
		tests/test_fuzz.py tests/test_fuzz_cuda.py \
		-k "test_random_dag_gradients_match_sympy or test_random_dag_kernels_match_sympy \
		or test_singular_shared_branches \
		or test_random_dags_in_cuda_modules"

clean:
	rm -rf build .pytest_cache
