"""Entry points of an order-2 module (scalar and matrix, CPU): jvp, hvp and hessian.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def jvp(params, tangent, data=None, check_finite=False):
    """(total loss, its directional derivative along `tangent`): forward mode, one pass.
    `tangent` maps each param's name to a value shaped like the param."""
    theta, _ = _pack(params)
    v, _ = _pack(tangent, "tangent")
    columns = _columns(data, check_finite)
    out = np.empty(2)
    (_jvp_core_par if _parallel(columns) else _jvp_core)(np.concatenate((theta, v)),
                                                          *columns, out)
    return float(out[0]), float(out[1])


def hvp(params, vector, data=None, check_finite=False):
    """The Hessian of the total loss (reduction and penalty included) times `vector`
    (shaped like params), as {param name: value shaped like the param}: forward mode
    over the gradient's graph, without forming the Hessian."""
    theta, given = _pack(params)
    v, _ = _pack(vector, "vector")
    return _unpack(_flat_hvp(theta, v, _columns(data, check_finite)), given)


def hessian(params, data=None, sparse=None, check_finite=False):
    """The Hessian of the total loss over the flat params (PARAMS order, each param's
    entries row-major): a dense array, or a scipy.sparse.csr_matrix with sparse=True.
    sparse=None: sparse where the structural pattern is (HESSIAN_PATTERN). Costs one
    HVP per colour of HESSIAN_COLORS where sparse, one per flat param where dense."""
    theta, _ = _pack(params)
    columns = _columns(data, check_finite)
    return hessian_from_products(lambda v: _flat_hvp(theta, v.astype(theta.dtype), columns),
                                 theta.shape[0], HESSIAN_PATTERN, HESSIAN_COLORS, sparse)


def _flat_hvp(theta, v, columns):
    out = np.empty(1 + theta.shape[0])
    (_hvp_core_par if _parallel(columns) else _hvp_core)(np.concatenate((theta, v)),
                                                          *columns, out)
    return out[1:]
