"""The CUDA modules' shared helpers: packing and the training loop on the device.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def loss(params, data=None, check_finite=False):
    """The total loss; arguments as for the CPU module (NumPy or device arrays)."""
    theta, _ = _pack(params)
    columns = _columns(data, check_finite)
    out = cuda.device_array(1)
    _loss_core(theta, *columns, out)
    return float(out.copy_to_host()[0])


def _train_core(theta, data, kind, hyper, state, first_step, steps, history):
    """As on the CPU: `steps` updates of theta by the optimizer of `kind`."""
    device_train(_loss_and_grad_core, theta, data, kind, hyper, state, first_step, steps,
                 history)


def _trainer(columns):
    return _train_core
