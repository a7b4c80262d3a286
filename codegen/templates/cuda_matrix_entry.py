"""Entry points of a matrix model's CUDA module: loss and loss_and_grad.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def _pack(params, kind="param"):
    """The params as one flat device vector, and what _unpack needs: the shapes they
    were given in and whether they were device arrays."""
    host, device = split_device(kind, params, DTYPE)
    theta, given = pack_params(host, PARAMS, PARAM_SHAPES, DTYPE, kind)
    theta = cuda.to_device(theta)
    offset = 0
    for name, shape in zip(PARAMS, PARAM_SHAPES):
        size = int(np.prod(shape))
        if name in device:
            theta[offset:offset + size].copy_to_device(device[name].reshape(size))
        offset += size
    return theta, (given, bool(device))


def _columns(data, check_finite=False, names=INPUTS, shapes=INPUT_SHAPES):
    """As on the CPU: the inputs `names` on the device (host arrays checked and copied,
    device arrays checked by shape, and copied back for check_finite)."""
    if not names:
        if data and any(name not in INPUTS for name in data):
            raise UnknownArgumentError("this model has no inputs")
        return ()
    host, device = split_device("input", data, DTYPE, check_finite)
    checked = check_arrays(host, names, shapes, BATCH, DTYPE, check_finite, INPUTS)[0]
    return to_device_columns(names, [a.reshape(1) if a.ndim == 0 else a for a in checked],
                             device)


def _unpack(flat, given):
    """Flat device values as {name: array}: NumPy arrays, or device arrays (views of
    `flat`) where the params were given on the device."""
    shapes, on_device = given
    if not on_device:
        return unpack_grads(flat.copy_to_host(), PARAMS, shapes)
    out, offset = {}, 0
    for name, shape in zip(PARAMS, shapes):
        size = int(np.prod(shape))
        part = flat[offset:offset + size]
        out[name] = float(part.copy_to_host()[0]) if shape == () else part.reshape(shape)
        offset += size
    return out


def loss_and_grad(params, data=None, check_finite=False):
    """(total loss, {param name: gradient of the param's shape})."""
    theta, given = _pack(params)
    columns = _columns(data, check_finite)
    out = cuda.device_array(1 + theta.shape[0])
    _loss_and_grad_core(theta, *columns, out)
    if given[1]:
        return float(out[0:1].copy_to_host()[0]), _unpack(out[1:], given)
    host = out.copy_to_host()
    return float(host[0]), unpack_grads(host[1:], PARAMS, given[0])
