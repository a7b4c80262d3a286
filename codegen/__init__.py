"""Code generation: from a scheduled symgrad program to a standalone kernel module.

Reads symgrad's IR, schedules and options only; knows nothing about SymPy.
`generate` is the one entry: it hands the options to the writer of the model's kind.
"""

from __future__ import annotations


def load_writer(options, model):
    """The writer module for this target and kind of model (imported on first use)."""
    import importlib
    name = "cuda_module" if options.target == "cuda" else \
        "tensor_module" if model.is_matrix else "module"
    return importlib.import_module(f"codegen.{name}")


def generate(derivation, options, model, *, version: str, second=None) -> str:
    """The module text of `model` (a symgrad.Model, read for its structure: nodes, name)
    from its `derivation`, by `options` (a symgrad.options.CompileOptions); `second` (a
    symgrad.second_order.SecondOrder, order 2) adds the jvp, hvp and hessian entries."""
    import numba

    parts = dict(version=version, numba_version=numba.__version__, model_name=model.name)
    if second is not None:
        parts.update(second=second)
    if options.target == "cuda" or model.is_matrix:
        parts.update(param_nodes=model.param_nodes, input_nodes=model.input_nodes,
                     prediction=model.predict_node)
    if options.target == "cuda":
        parts.update(matrix=model.is_matrix)
    return load_writer(options, model).generate(derivation, options, **parts)
