"""predict() of a matrix model's CPU module that has a prediction.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def predict(params, data=None, check_finite=False):
    """The model's prediction for each sample (a 2-D array, batch first). data needs only
    the inputs the prediction reads (PREDICT_INPUTS: not the targets)."""
    theta, _ = _pack(params)
    return _predict_core(theta, *_columns(data, check_finite, PREDICT_INPUTS,
                                          PREDICT_SHAPES))
