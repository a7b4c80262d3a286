"""Argument checks and errors for generated kernel modules.

This file is embedded verbatim into every generated module (which may import
only numpy, numba and the standard library), and symgrad imports it as
`codegen.runtime`, so the checks exist once. The checks run in plain Python
before any jitted code touches memory: Numba does no bounds checks, and lazy
dispatch would silently compile new specialisations for wrong dtypes.
"""

import sys
from collections.abc import Mapping

import numpy as np


class SymgradError(Exception):
    """Base class of every error symgrad raises."""


class ArgumentError(SymgradError, ValueError):
    """A kernel was called with arguments that do not fit the model."""


class MissingArgumentError(ArgumentError):
    """A param or input the model needs was not passed."""


class UnknownArgumentError(ArgumentError):
    """A name was passed that the model does not have."""


class DTypeError(ArgumentError, TypeError):
    """A value has the wrong type or dtype (e.g. an int array for float data)."""


class ShapeError(ArgumentError):
    """A value has the wrong shape (e.g. 2-D data where one value per sample is expected)."""


class LengthMismatchError(ShapeError):
    """Data arrays of one call have different lengths."""


class NonFiniteError(ArgumentError):
    """A parameter is NaN or infinite (or a data value, with check_finite=True)."""


class EmptyBatchError(ArgumentError):
    """The data has no samples where the loss needs at least one (reduction='mean')."""


class HessianTooLargeError(ArgumentError):
    """A dense Hessian that would not fit in memory was asked for (order-2 kernels)."""


SYMGRAD_RUNTIME = True   # marks symgrad's own `codegen.runtime` (the name is generic)


def _register_module(name, namespace):
    """Put the module running this code into sys.modules when its loader did not.

    `importlib.util.spec_from_file_location` + `exec_module` leaves a module out of
    sys.modules; Numba then records its functions as belonging to module '<dynamic>', and
    the next process that finds them in Numba's cache fails to import '<dynamic>'. The
    module is the object whose __dict__ is these globals."""
    if sys.modules.get(name) is not None:
        return
    import gc
    for referrer in gc.get_referrers(namespace):
        if isinstance(referrer, type(sys)) and referrer.__dict__ is namespace:
            sys.modules[name] = referrer
            return


_register_module(__name__, globals())

ERRORS = (SymgradError, ArgumentError, MissingArgumentError, UnknownArgumentError,
          DTypeError, ShapeError, LengthMismatchError, NonFiniteError, EmptyBatchError,
          HessianTooLargeError)


def _check_names(kind, given, expected, allowed=None):
    if not isinstance(given, Mapping):
        raise DTypeError(f"{kind}s must be a dict mapping names to values, "
                         f"got {type(given).__name__}")
    missing = [name for name in expected if name not in given]
    if missing:
        raise MissingArgumentError(f"missing {kind}(s) {', '.join(map(repr, missing))}; "
                                   f"the model's {kind}s are {list(expected)!r}")
    known = set(allowed or expected)     # a set: models may have 10^4 params
    unknown = [name for name in given if name not in known]
    if unknown:
        raise UnknownArgumentError(f"unknown {kind}(s) {', '.join(map(repr, unknown))}; "
                                   f"the model's {kind}s are {list(expected)!r}")


def check_params(params, names, dtype=np.float64, kind="param"):
    """The params (or a direction in param space: kind "tangent", "vector") as one
    contiguous vector in the model's order."""
    _check_names(kind, params, names)
    values = [params[name] for name in names]
    if all(type(v) is float for v in values):     # the common case, fast for 10^4 params
        out = np.array(values, dtype=dtype)
        if np.isfinite(out).all():
            return out
    out = np.empty(len(names), dtype=dtype)
    for i, (name, value) in enumerate(zip(names, values)):
        arr = np.asarray(value) if not isinstance(value, (str, bytes)) else None
        if arr is None or arr.dtype.kind not in "fiu":
            got = type(value).__name__ if arr is None else f"dtype {arr.dtype}"
            raise DTypeError(f"{kind} {name!r} must be a real number, got {got}")
        if arr.shape != ():
            raise ShapeError(f"{kind} {name!r} must be a scalar, got shape {arr.shape}")
        out[i] = arr
        if not np.isfinite(out[i]):
            raise NonFiniteError(f"{kind} {name!r} is {float(out[i])!r}; {kind}s must be finite")
    return out


def check_finite_rows(name, arr):
    """NonFiniteError naming input `name` and its first row (sample) holding a NaN or an
    infinity: compute on such data and the loss and every gradient come out NaN."""
    values = np.atleast_1d(arr)
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise NonFiniteError(
            f"input {name!r} has a NaN or an infinity in row {int(rows[0])} "
            f"({rows.size} row(s) of {bad.size} in all); drop those rows or replace the "
            f"values (e.g. np.nan_to_num, or the column's mean) before passing the data")


def check_data(data, names, reduction, dtype=np.float64, check_finite=False):
    """The data arrays (1-D, one common length n, contiguous, of `dtype`) and n; with
    `check_finite`, a NonFiniteError names the first row holding a NaN or an inf."""
    if data is None:
        if not names:
            return (), 1
        raise MissingArgumentError(f"missing data; the model's inputs are {list(names)!r}")
    if not isinstance(data, Mapping):
        raise DTypeError(f"data must be a dict mapping input names to arrays (or None), "
                         f"got {type(data).__name__}")
    if not names:
        if data:
            raise UnknownArgumentError(f"this model has no inputs, got data for "
                                       f"{', '.join(map(repr, data))}; pass data=None")
        return (), 1
    _check_names("input", data, names)
    arrays, n, first = [], None, None
    for name in names:
        try:
            arr = np.asarray(data[name])
        except ValueError as exc:
            raise ShapeError(f"input {name!r} is not a rectangular array: {exc}") from None
        if arr.dtype.kind != "f":
            raise DTypeError(f"input {name!r} must be a float array, got dtype {arr.dtype}; "
                             f"convert it with np.asarray(..., dtype=float)")
        if arr.ndim != 1:
            raise ShapeError(f"input {name!r} must be 1-D (one value per sample), "
                             f"expected shape (n,), got {arr.shape}")
        if n is None:
            n, first = arr.shape[0], name
        elif arr.shape[0] != n:
            raise LengthMismatchError(f"inputs {first!r} and {name!r} have different "
                                      f"lengths: {n} and {arr.shape[0]}; every input needs "
                                      f"one value per sample")
        if check_finite:
            check_finite_rows(name, arr)
        arrays.append(np.ascontiguousarray(arr, dtype=dtype))
    if n == 0 and reduction == "mean":
        raise EmptyBatchError("the data has 0 samples; the mean over an empty batch "
                              "is undefined: pass at least one sample, or compile the model "
                              "with reduction='sum'")
    return tuple(arrays), n


def pack_params(params, names, shapes, dtype=np.float64, kind="param"):
    """Matrix models: the params (or a direction: kind "tangent", "vector") flattened
    into one vector in order, and the shape each was given in (a (1, k) or (k, 1) param
    may be given as a vector of k)."""
    _check_names(kind, params, names)
    sizes = [int(np.prod(shape)) for shape in shapes]
    theta = np.empty(sum(sizes), dtype=dtype)
    given, offset = [], 0
    for name, shape, size in zip(names, shapes, sizes):
        value = params[name]
        arr = None if isinstance(value, (str, bytes)) else np.asarray(value)
        if arr is None or arr.dtype.kind not in "fiu":
            got = type(value).__name__ if arr is None else f"dtype {arr.dtype}"
            raise DTypeError(f"{kind} {name!r} must be a real array, got {got}")
        if arr.shape != tuple(shape) and not (arr.ndim == 1 and arr.size == size
                                              and 1 in shape and len(shape) == 2):
            wanted = f"({size},) or {tuple(shape)}" if 1 in shape and len(shape) == 2 \
                else str(tuple(shape))      # a bias as a vector, as in a state_dict
            raise ShapeError(f"{kind} {name!r} must have shape {wanted}, got {arr.shape}")
        flat = arr.reshape(-1)
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            raise NonFiniteError(f"{kind} {name!r} has a non-finite value "
                                 f"{float(flat[bad[0]])!r} at flat index {int(bad[0])}")
        theta[offset:offset + size] = flat
        given.append(arr.shape)
        offset += size
    return theta, given


def unpack_grads(flat, names, given):
    """The flat gradient as {name: array of the shape the param was given in}."""
    out, offset = {}, 0
    for name, shape in zip(names, given):
        size = int(np.prod(shape))
        part = flat[offset:offset + size]
        out[name] = float(part[0]) if shape == () else part.reshape(shape).copy()
        offset += size
    return out


def check_arrays(data, names, shapes, size_name, dtype=np.float64, check_finite=False,
                 allowed=None):
    """Matrix models: the data arrays, 2-D of the declared shapes, with the batch size
    n read from them; a (n, 1) input may be given as a vector, and a one-hot (n, C)
    input as integer class labels in [0, C). `check_finite`: as for check_data.
    `allowed`: names that may be given besides `names` (and are ignored)."""
    if data is None:
        raise MissingArgumentError(f"missing data; the model's inputs are {list(names)!r}")
    _check_names("input", data, names, allowed)
    arrays, n, first = [], None, None
    for name, shape in zip(names, shapes):
        try:
            arr = np.asarray(data[name])
        except ValueError as exc:
            raise ShapeError(f"input {name!r} is not a rectangular array: {exc}") from None
        if arr.ndim == 1 and len(shape) == 2 and shape[1] != 1 and arr.dtype.kind in "iu":
            arr = _one_hot(name, arr, shape[1], dtype)
        if arr.dtype.kind != "f":
            raise DTypeError(f"input {name!r} must be a float array, got dtype {arr.dtype}; "
                             f"convert it with np.asarray(..., dtype=float)")
        if arr.ndim == 1 and len(shape) == 2 and shape[1] != 1 and shape[0] != 1:
            raise ShapeError(f"input {name!r} must have shape {_show(shape)}, got {arr.shape}: "
                             f"pass one-hot rows of {shape[1]}, or integer class labels in "
                             f"[0, {shape[1]}) (an int array; these are floats)")
        if arr.ndim == 1 and len(shape) == 2 and 1 in shape:
            arr = arr.reshape(-1, 1) if shape[1] == 1 else arr.reshape(1, -1)
        if arr.ndim != len(shape):
            raise ShapeError(f"input {name!r} must have shape {_show(shape)}, got {arr.shape}")
        for have, want in zip(arr.shape, shape):
            if want == size_name:
                if n is None:
                    n, first = have, name
                elif have != n:
                    raise LengthMismatchError(f"inputs {first!r} and {name!r} have different "
                                              f"batch sizes: {n} and {have}; every input "
                                              f"needs one row per sample")
            elif have != want:
                raise ShapeError(f"input {name!r} must have shape {_show(shape)}, "
                                 f"got {arr.shape}")
        if check_finite:
            check_finite_rows(name, arr)
        arrays.append(np.ascontiguousarray(arr, dtype=dtype))
    return tuple(arrays), n


def _one_hot(name, labels, classes, dtype):
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ShapeError(f"input {name!r}: class labels must lie in [0, {classes}), got "
                         f"values from {labels.min()} to {labels.max()}")
    out = np.zeros((labels.shape[0], classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _show(shape):
    return "(" + ", ".join(map(str, shape)) + ")"


# In a generated module: when symgrad is loaded in this process, raise its
# classes, so that `except symgrad.SymgradError` also catches this module's errors.
_shared = sys.modules.get("codegen.runtime")
if getattr(_shared, "SYMGRAD_RUNTIME", False) and _shared.__dict__ is not globals():
    globals().update({cls.__name__: cls for cls in _shared.ERRORS})
    ERRORS = _shared.ERRORS
del _shared
