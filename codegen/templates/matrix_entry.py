"""Entry points of a matrix model's CPU module: loss and loss_and_grad.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def _pack(params, kind="param"):
    return pack_params(params, PARAMS, PARAM_SHAPES, DTYPE, kind)


def _columns(data, check_finite=False, names=INPUTS, shapes=INPUT_SHAPES):
    """The checked arrays of the inputs `names` (all, or predict()'s); any other input
    of the model may be given too, and is ignored."""
    if not names:
        if data and any(name not in INPUTS for name in data):
            raise UnknownArgumentError("this model has no inputs")
        return ()
    return check_arrays(data, names, shapes, BATCH, DTYPE, check_finite, INPUTS)[0]


def _unpack(flat, given):
    return unpack_grads(flat, PARAMS, given)


def _trainer(columns):
    return _train_core


def _parallel(columns):
    """Matrix cores have one variant (BLAS and the loops over rows do the work)."""
    return False


def loss(params, data=None, check_finite=False):
    """The total loss. params: {name: array}, shapes as in PARAM_SHAPES (a bias may be a
    vector); data: {name: array} with the batch on the first axis. check_finite=True:
    a NonFiniteError names the first row holding a NaN or an inf (off by default)."""
    theta, _ = _pack(params)
    out = np.empty(1)
    _loss_core(theta, *_columns(data, check_finite), out)
    return float(out[0])


def loss_and_grad(params, data=None, check_finite=False):
    """(total loss, {param name: gradient of the param's shape})."""
    theta, given = _pack(params)
    out = np.empty(1 + theta.shape[0])
    _loss_and_grad_core(theta, *_columns(data, check_finite), out)
    return float(out[0]), _unpack(out[1:], given)
