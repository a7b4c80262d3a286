"""predict() of a CUDA module whose model has no prediction.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def predict(params, data=None, check_finite=False):
    """Not available: the model was built without predict=."""
    raise ArgumentError("this model has no prediction; build it with Model(..., predict=...)")
