"""Shared test setup: a kernel cache inside the checkout, and small helpers."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SYMGRAD_CACHE_DIR", str(ROOT / "build" / "kernel-cache"))
# No background compile workers (symgrad/precompile.py) but in the test of them: the
# suite compiles hundreds of order-2 kernels, most never run on a large batch, and a
# worker per kernel would compile cores (the parallel ones) no test calls. The cores a
# worker saves are the ones the caller would compile: the same code, the same bits.
os.environ.setdefault("SYMGRAD_BACKGROUND_COMPILE", "0")


def torch_or_skip():
    """PyTorch for the cross-checks: skipped where it is not installed (torch is no
    dependency of symgrad), except under SYMGRAD_REQUIRE_TORCH=1, which CI sets after
    installing it (.ci/run), so a missing torch fails there instead of skipping."""
    if os.environ.get("SYMGRAD_REQUIRE_TORCH") == "1":
        import torch
        return torch
    import pytest
    return pytest.importorskip("torch")
