#!/usr/bin/env bash
# symgrad's CUDA target on a lent GPU machine, from the source tree; installs nothing and
# needs no network. Needs python3 with numpy, sympy, scipy, numba (its numba.cuda, or
# NVIDIA's numba-cuda) and pytest; torch (CUDA) and cupy only for their timing columns.
#
#     bash benchmarks/gpu_check.sh            # about 5-10 minutes
#
# Steps: (1) the CUDA tests on the GPU: tests/test_cuda_sim.py's checks with real kernels
# (SYMGRAD_CUDA_TESTS=gpu: no simulator) and the PTX tests; (2) CUDA vs CPU on the
# lecture's networks; (3) loss_and_grad timings against PyTorch CUDA, table last.
# Exits non-zero at the first failing step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
CACHE="$(mktemp -d "${TMPDIR:-/tmp}/symgrad-gpu-check.XXXXXX")"
export SYMGRAD_CACHE_DIR="$CACHE"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
unset NUMBA_ENABLE_CUDASIM NUMBA_DISABLE_JIT
trap 'rm -rf "$CACHE"' EXIT

step() { printf '\n===== %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

step "environment"
"$PY" - <<'EOF' || fail "numba cannot see a CUDA GPU"
import sys
import numba
import numpy
from numba import cuda
print("python", sys.version.split()[0], "| numpy", numpy.__version__, "| numba", numba.__version__,
      "| numba.cuda:", getattr(cuda, "implementation", "?"))
if not cuda.is_available():
    sys.exit("numba.cuda.is_available() is False")
device = cuda.get_current_device()
name = device.name.decode() if isinstance(device.name, bytes) else device.name
print("GPU:", name, "compute capability", device.compute_capability)
for optional in ("torch", "cupy"):
    try:
        module = __import__(optional)
        print(optional, module.__version__)
    except ImportError:
        print(optional, "not installed (its timing column will be empty)")
EOF

step "1/3 CUDA tests on the GPU (no simulator)"
# (Numba warns that one-block grids under-use the GPU: symgrad's serial kernels are tiny on
# purpose.)
SYMGRAD_CUDA_TESTS=gpu "$PY" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
    -W "ignore:Grid size" tests/test_cuda_sim.py tests/test_cuda_ptx.py || fail "CUDA tests"

step "2/3 CUDA vs CPU on the lecture's networks"
"$PY" benchmarks/gpu_bench.py --check || fail "CUDA and CPU results disagree"

step "3/3 timings: loss_and_grad, symgrad CUDA vs PyTorch CUDA"
"$PY" benchmarks/gpu_bench.py --time || fail "timings"
