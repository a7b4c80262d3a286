"""Entry points of a scalar model's CPU module: loss and loss_and_grad.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def _pack(params, kind="param"):
    return check_params(params, PARAMS, kind=kind), [()] * len(PARAMS)


def _columns(data, check_finite=False):
    return check_data(data, INPUTS, REDUCTION, check_finite=check_finite)[0]


def _unpack(theta, given):
    return dict(zip(PARAMS, theta.tolist()))


def _parallel(columns):
    """Whether a batch spans several chunks (and so runs the parallel variant)."""
    return bool(columns) and columns[0].shape[0] > CHUNK


def _trainer(columns):
    return _train_core_par if _parallel(columns) else _train_core


def loss(params, data=None, check_finite=False):
    """The total loss: params maps each name in PARAMS to a number; data maps each
    name in INPUTS to a 1-D float array (one value per sample). check_finite=True:
    a NonFiniteError names the first sample holding a NaN or an inf (a pass over the
    data; off by default)."""
    p = check_params(params, PARAMS)
    columns = _columns(data, check_finite)
    out = np.empty(1)
    (_loss_core_par if _parallel(columns) else _loss_core)(p, *columns, out)
    return float(out[0])


def loss_and_grad(params, data=None, check_finite=False):
    """(total loss, {param name: gradient}), arguments as for loss()."""
    p = check_params(params, PARAMS)
    columns = _columns(data, check_finite)
    out = np.empty(1 + len(PARAMS))
    (_loss_and_grad_core_par if _parallel(columns) else _loss_and_grad_core)(p, *columns, out)
    return float(out[0]), dict(zip(PARAMS, out[1:].tolist()))
