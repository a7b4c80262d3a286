"""Every generated CUDA kernel compiles to PTX for sm_80 and sm_90.

The simulator runs kernels as Python and accepts code the GPU target rejects (e.g.
`np.exp` or `np.sum` inside a kernel), so each kernel of each module is also compiled
by Numba's CUDA target with the exact signatures the module launches it with
(`KERNEL_SIGNATURES`), here, in a process without the simulator. Needs NVVM (from a
CUDA toolkit, or NVIDIA's wheels), not a GPU. Kernels shared between modules (the
reduction passes, the optimizers, identical loops) compile once.
"""

from __future__ import annotations

import inspect
import os
import re

import cuda_models as cm
import pytest

import symgrad
from symgrad.cli import main as cli_main


def _why_no_ptx() -> str | None:
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set: cuda.compile_ptx does not work in the simulator"
    try:
        from numba.cuda.cudadrv import nvvm
        if nvvm.is_available():
            return None
    except Exception as exc:                # noqa: BLE001 -- any failure means no NVVM
        return f"NVVM not found ({type(exc).__name__}: {exc}); install a CUDA toolkit " \
               f"or NVIDIA's nvidia-nvvm wheel to compile kernels to PTX"
    return "NVVM not found (libNVVM from a CUDA toolkit, or the nvidia-nvvm wheel): " \
           "cannot compile CUDA kernels to PTX on this machine"


NO_PTX = _why_no_ptx()

ARCHS = ((8, 0), (9, 0))
_compiled: set[tuple[str, str]] = set()       # (kernel source, signature) done already


def _models():
    mse, _ = cm.mlp("mse")
    ce, _ = cm.mlp("ce")
    cases = [(name, cm.example(name), "float64", 1) for name in cm.EXAMPLES]
    cases += [("every_op", cm.every_op_model(), "float64", 1),
              ("special", cm.special_functions_model(), "float64", 1),
              ("mlp mse", mse, "float64", 1), ("mlp ce", ce, "float64", 1),
              ("mlp ce", ce, "float32", 1),
              # order 2: the JVP and HVP kernels (scalar, matrix, a model without inputs)
              ("hinge_two_layer", cm.example("hinge_two_layer"), "float64", 2),
              ("mlp ce", ce, "float64", 2),
              ("rosenbrock_newton", cm.example("rosenbrock_newton"), "float64", 2)]
    return cases


CASES = _models()


@pytest.mark.skipif(NO_PTX is not None, reason=NO_PTX or "")
@pytest.mark.parametrize("name, model, dtype, order", CASES,
                         ids=[f"{name}-{dtype}" + ("-order2" if order == 2 else "")
                              for name, _, dtype, order in CASES])
def test_every_kernel_compiles_to_ptx(name, model, dtype, order, monkeypatch):
    from types import SimpleNamespace

    import numba.cuda.dispatcher
    from numba import cuda

    # A kernel that calls a device function (codegen/cuda_special.py's polygamma and mod)
    # compiles it for the current GPU's compute capability, which needs a CUDA driver:
    # without one, the device function compiles for the first architecture tested.
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device",
                        lambda: SimpleNamespace(compute_capability=ARCHS[0]))
    module = symgrad.compile(model, target="cuda", dtype=dtype, order=order).module
    assert module.KERNEL_SIGNATURES, "a module without kernels"
    for kernel_name, signatures in module.KERNEL_SIGNATURES.items():
        kernel = getattr(module, kernel_name).py_func
        text = inspect.getsource(kernel).split(":", 1)[1]
        for signature in signatures:
            if (text, signature) in _compiled:
                continue
            for cc in ARCHS:
                ptx, _ = cuda.compile_ptx(kernel, signature, cc=cc)
                assert f".target sm_{cc[0]}{cc[1]}" in ptx
                assert ".entry" in ptx, f"{kernel_name} {signature}: no kernel entry"
            _compiled.add((text, signature))


def test_every_launched_kernel_has_a_signature():
    """The table drives the PTX test: each kernel the host code launches is listed."""
    kernel = symgrad.compile(cm.mlp("ce")[0], target="cuda")
    host_code = kernel.source[kernel.source.index("\ndef _loss_core("):]
    launched = set(re.findall(r"\b_k\d+_\w+", host_code.split("KERNEL_SIGNATURES")[0]))
    table = kernel.module.KERNEL_SIGNATURES
    assert launched and launched <= set(table)
    assert {"_sum_columns", "_sgd_kernel", "_rmsprop_kernel", "_adam_kernel"} <= set(table)


def test_cli_compiles_every_example_for_cuda(tmp_path, capsys):
    for name in cm.EXAMPLES:
        out = tmp_path / f"{name}_cuda.py"
        assert cli_main(["compile", str(cm.ROOT / "examples" / f"{name}.py"), "--target",
                         "cuda", "-o", str(out)]) == 0
        text = out.read_text()
        assert " target=cuda " in text and "KERNEL_SIGNATURES = {" in text
        compile(text, str(out), "exec")
    assert "wrote" in capsys.readouterr().out


def test_cuda_printer_prints_every_elementwise_op_with_device_math():
    """Every op the schedules emit prints, and never as a NumPy function that Numba's CUDA
    target cannot type (those would pass the simulator and fail on the GPU)."""
    from codegen.numba_cuda import CudaExprPrinter
    from symgrad.ir import ARITY, LEAVES, STRUCTURAL, Op
    printer = CudaExprPrinter()
    for op in Op:
        if op in LEAVES or op in STRUCTURAL:
            continue
        cases = [("a", "b", "c")[:ARITY[op]]] + ([("a", 2.5), ("a", 3.0)] if op is Op.POW else [])
        for args in cases:
            text = printer.expr(op, args, 0.5 if op is Op.HEAVISIDE else None)
            assert not any(bad in text for bad in printer.NOT_ON_DEVICE), (op, text)
