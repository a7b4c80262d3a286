"""Entry points of a scalar model's CUDA module: loss and loss_and_grad.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def _pack(params, kind="param"):
    return device_vector(check_params(params, PARAMS, kind=kind)), None


def _columns(data, check_finite=False):
    host, device = split_device("input", data, np.float64, check_finite)
    checked, _ = check_data(host, INPUTS, REDUCTION, check_finite=check_finite)
    return to_device_columns(INPUTS, checked, device)


def _unpack(theta, given):
    return dict(zip(PARAMS, theta.copy_to_host().tolist()))


def loss_and_grad(params, data=None, check_finite=False):
    """(total loss, {param name: gradient}), arguments as for loss()."""
    theta, _ = _pack(params)
    columns = _columns(data, check_finite)
    out = cuda.device_array(1 + len(PARAMS))
    _loss_and_grad_core(theta, *columns, out)
    host = out.copy_to_host()
    return float(host[0]), dict(zip(PARAMS, host[1:].tolist()))
