"""The point at which a derivation is shown: one value per param and input."""

from __future__ import annotations

import math
from collections.abc import Mapping

from symgrad.errors import OptionError
from symgrad.model import Model


def parse_point(text: str) -> dict[str, float]:
    """`"x=-2,y=5"` -> {"x": -2.0, "y": 5.0}; OptionError on anything else."""
    point: dict[str, float] = {}
    for item in text.split(","):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise OptionError(f"--at expects name=value pairs separated by commas "
                              f"(e.g. x=-2,y=5), got {item.strip()!r}")
        if name in point:
            raise OptionError(f"--at gives {name!r} twice")
        try:
            point[name] = float(value)
        except ValueError:
            raise OptionError(f"--at {name}: {value!r} is not a number") from None
    return point


def check_point(model: Model, at: Mapping[str, float]) -> dict[str, float]:
    """The point as floats, after checking it names every param and input, and nothing else.

    For a model with inputs the point is one sample: one value per input.
    """
    if getattr(model, "is_matrix", False):
        raise OptionError("numbers at a point are shown for scalar models only; for a "
                          "matrix model leave out the point (--at) to see the symbolic view")
    known = (*model.param_names, *model.input_names)
    unknown = [k for k in at if k not in known]
    if unknown:
        raise OptionError(f"unknown name(s) in the point: {', '.join(map(str, unknown))}; "
                          f"the model's params and inputs are {', '.join(known)}")
    missing = [k for k in known if k not in at]
    if missing:
        raise OptionError(f"the point needs a value for every param and input; missing: "
                          f"{', '.join(missing)}")
    values = {}
    for k in known:
        try:
            values[k] = float(at[k])
        except (TypeError, ValueError):
            raise OptionError(f"the value of {k!r} is not a number: {at[k]!r}") from None
        if not math.isfinite(values[k]):
            raise OptionError(f"the value of {k!r} is not finite: {at[k]!r}")
    return values
