"""Entry points of an order-2 CUDA module (scalar and matrix): jvp, hvp and hessian.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def _with_direction(theta, v):
    """theta then v in one device vector (the order-2 cores' first argument)."""
    n = theta.shape[0]
    both = cuda.device_array(2 * n, dtype=theta.dtype)
    both[:n].copy_to_device(theta)
    both[n:].copy_to_device(v)
    return both


def jvp(params, tangent, data=None, check_finite=False):
    """(total loss, its derivative along `tangent`), as on the CPU."""
    theta, _ = _pack(params)
    v, _ = _pack(tangent, "tangent")
    out = cuda.device_array(2)
    _jvp_core(_with_direction(theta, v), *_columns(data, check_finite), out)
    host = out.copy_to_host()
    return float(host[0]), float(host[1])


def hvp(params, vector, data=None, check_finite=False):
    """The Hessian of the total loss times `vector`, shaped like params (device arrays
    where the params were given on the device), as on the CPU."""
    theta, given = _pack(params)
    v, _ = _pack(vector, "vector")
    return _unpack(_flat_hvp(theta, v, _columns(data, check_finite)), given)


def hessian(params, data=None, sparse=None, check_finite=False):
    """The Hessian over the flat params, on the host: as on the CPU (one HVP on the
    device per colour of HESSIAN_COLORS, or per param where it is dense)."""
    theta, _ = _pack(params)
    columns = _columns(data, check_finite)
    return hessian_from_products(
        lambda v: _flat_hvp(theta, device_vector(v.astype(theta.dtype)), columns)
        .copy_to_host(), theta.shape[0], HESSIAN_PATTERN, HESSIAN_COLORS, sparse)


def _flat_hvp(theta, v, columns):
    out = cuda.device_array(1 + theta.shape[0])
    _hvp_core(_with_direction(theta, v), *columns, out)
    return out[1:]
