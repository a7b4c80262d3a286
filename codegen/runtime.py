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
    """A parameter is NaN or infinite."""


class EmptyBatchError(ArgumentError):
    """The data has no samples where the loss needs at least one (reduction='mean')."""


ERRORS = (SymgradError, ArgumentError, MissingArgumentError, UnknownArgumentError,
          DTypeError, ShapeError, LengthMismatchError, NonFiniteError, EmptyBatchError)


def _check_names(kind, given, expected):
    if not isinstance(given, Mapping):
        raise DTypeError(f"{kind}s must be a dict mapping names to values, "
                         f"got {type(given).__name__}")
    missing = [name for name in expected if name not in given]
    if missing:
        raise MissingArgumentError(f"missing {kind}(s) {', '.join(map(repr, missing))}; "
                                   f"the model's {kind}s are {list(expected)!r}")
    unknown = [name for name in given if name not in expected]
    if unknown:
        raise UnknownArgumentError(f"unknown {kind}(s) {', '.join(map(repr, unknown))}; "
                                   f"the model's {kind}s are {list(expected)!r}")


def check_params(params, names, dtype=np.float64):
    """The params as one contiguous vector in the model's order."""
    _check_names("param", params, names)
    out = np.empty(len(names), dtype=dtype)
    for i, name in enumerate(names):
        value = params[name]
        arr = np.asarray(value) if not isinstance(value, (str, bytes)) else None
        if arr is None or arr.dtype.kind not in "fiu":
            kind = type(value).__name__ if arr is None else f"dtype {arr.dtype}"
            raise DTypeError(f"param {name!r} must be a real number, got {kind}")
        if arr.shape != ():
            raise ShapeError(f"param {name!r} must be a scalar, got shape {arr.shape}")
        out[i] = arr
        if not np.isfinite(out[i]):
            raise NonFiniteError(f"param {name!r} is {float(out[i])!r}; params must be finite")
    return out


def check_data(data, names, reduction, dtype=np.float64):
    """The data arrays (1-D, one common length n, contiguous, of `dtype`) and n."""
    if not names:
        if data:
            raise UnknownArgumentError(f"this model has no inputs, got data for "
                                       f"{', '.join(map(repr, data))}")
        return (), 1
    if data is None:
        raise MissingArgumentError(f"missing data; the model's inputs are {list(names)!r}")
    _check_names("input", data, names)
    arrays, n, first = [], None, None
    for name in names:
        try:
            arr = np.asarray(data[name])
        except ValueError as exc:
            raise ShapeError(f"input {name!r} is not a rectangular array: {exc}") from None
        if arr.dtype.kind != "f":
            raise DTypeError(f"input {name!r} must be a float array, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ShapeError(f"input {name!r} must be 1-D (one value per sample), "
                             f"expected shape (n,), got {arr.shape}")
        if n is None:
            n, first = arr.shape[0], name
        elif arr.shape[0] != n:
            raise LengthMismatchError(f"inputs {first!r} and {name!r} have different "
                                      f"lengths: {n} and {arr.shape[0]}")
        arrays.append(np.ascontiguousarray(arr, dtype=dtype))
    if n == 0 and reduction == "mean":
        raise EmptyBatchError("the data has 0 samples; the mean over an empty batch "
                              "is undefined")
    return tuple(arrays), n


# In a generated module: when symgrad is loaded in this process, raise its
# classes, so that `except symgrad.SymgradError` also catches this module's errors.
_shared = sys.modules.get("codegen.runtime")
if _shared is not None and _shared.__dict__ is not globals():
    globals().update({cls.__name__: cls for cls in _shared.ERRORS})
    ERRORS = _shared.ERRORS
del _shared
