"""predict() of a matrix model's CUDA module that has a prediction.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def predict(params, data=None, check_finite=False):
    """The model's prediction for each sample (a 2-D array, batch first); a device
    array when the params were given as device arrays."""
    theta, given = _pack(params)
    result, transposed = _predict_core(theta, *_columns(data, check_finite, PREDICT_INPUTS,
                                                        PREDICT_SHAPES))
    if given[1] and not transposed and len(result.shape) == 2:
        copy = cuda.device_array(result.shape, result.dtype)
        copy.copy_to_device(result)
        return copy
    host = result.copy_to_host()
    host = host.reshape(1, 1) if host.ndim == 1 else (host.T.copy() if transposed else host)
    return cuda.to_device(host) if given[1] else host
