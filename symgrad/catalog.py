"""The SymPy functions symgrad compiles, read from the front end's tables.

`supported_functions()` is the list users see (the README's table is generated from
it, and a test fails when the two differ; `symgrad functions --write README.md` rewrites
it). Arithmetic (+, -, *, /, **) and matrix algebra are not listed: they are
operators, supported throughout.
"""

from __future__ import annotations

import re
from pathlib import Path

import sympy as sp

from symgrad import frontend

# Beyond the one-op-per-class tables: functions the front end lowers by their own rules.
_OWN_RULES = (sp.Max, sp.Min, sp.Heaviside, sp.Piecewise, sp.polygamma)

# The README's groups, in order: title -> the functions in it.
_GROUPS = {
    "Elementary (`sympy`)": ("exp", "log", "sqrt", "sin", "cos", "tan", "sec", "csc", "cot", "asin",
                   "acos", "atan", "atan2", "sinh", "cosh", "tanh", "sech", "csch", "coth",
                   "asinh", "acosh", "atanh", "sinc"),
    "Special (`sympy`)": ("erf", "erfc", "gamma", "loggamma", "polygamma"),
    "Piecewise and kinks (`sympy`)": ("Abs", "sign", "floor", "ceiling", "frac", "Mod", "Max", "Min", "Heaviside",
                  "Piecewise"),
    "Activations (`symgrad.sigmoid`, ...)": ("sigmoid", "relu", "softplus"),
    "`sympy.codegen.cfunctions` and `numpy_nodes`": ("log1p", "expm1", "Sqrt", "exp2", "log2", "log10", "hypot", "logaddexp",
                      "logaddexp2", "maximum", "minimum"),
}
# What a user needs to know beyond "as in SymPy": conventions at kinks, domains, forms.
NOTES = {
    "log": "log(0) = -inf; NaN below 0",
    "sqrt": "x**(1/2) in SymPy; derivative inf at 0",
    "sec": "as 1/cos(x)", "csc": "as 1/sin(x)", "cot": "as 1/tan(x)",
    "sech": "as 1/cosh(x)", "csch": "as 1/sinh(x)", "coth": "as 1/tanh(x)",
    "atan2": "atan2(y, x), as np.arctan2",
    "sinc": "sin(x)/x, 1 at 0 (SymPy's, unnormalized: np.sinc(x/pi))",
    "gamma": "gamma(0) = inf, NaN at negative integers",
    "loggamma": "log|gamma(x)|: real for x < 0, as torch.lgamma (SymPy's is complex there)",
    "polygamma": "polygamma(n, x) for an integer literal n >= 0 (digamma, trigamma)",
    "Abs": "derivative sign(x): 0 at 0",
    "sign": "derivative 0",
    "floor": "derivative 0", "ceiling": "derivative 0",
    "frac": "x - floor(x): derivative 1",
    "Mod": "Mod(x, y), the sign of y (np.mod); derivatives 1 and -floor(x/y), as "
           "torch.remainder",
    "Max": "ties split the gradient evenly", "Min": "ties split the gradient evenly",
    "Heaviside": "derivative 0; its value at 0 must be a number (default 1/2)",
    "Piecewise": "each branch evaluated only where taken (no NaN from the other branch)",
    "sigmoid": "1/(1 + exp(-x)), stable for large |x|",
    "relu": "max(0, x); derivative 0 at 0, as PyTorch",
    "softplus": "log(1 + exp(x)), stable for large |x|",
    "exp2": "as 2**x", "log2": "as log(x)/log(2)", "log10": "as log(x)/log(10)",
    "hypot": "as sqrt(x**2 + y**2)",
    "logaddexp": "as max(x, y) + log1p(exp(-|x - y|))",
    "logaddexp2": "as max(x, y) + log1p(2**-|x - y|)/log(2)",
    "maximum": "as Max", "minimum": "as Min",
}


def supported_functions() -> dict[str, str]:
    """Each SymPy function (class name) symgrad compiles -> a note on its conventions
    ("" when it is exactly SymPy's function with SymPy's derivative)."""
    classes = [*frontend.UNARY, *frontend.BINARY, *frontend.REWRITES, *_OWN_RULES]
    names = ["sqrt", *(cls.__name__ for cls in classes)]   # sympy.sqrt(x) is x**(1/2)
    return {name: NOTES.get(name, "") for name in names}


def readme_block() -> str:
    """The README's table (between its `<!-- functions: ... -->` markers)."""
    supported = supported_functions()
    grouped = {name for names in _GROUPS.values() for name in names}
    missing = sorted(set(supported) - grouped)
    assert not missing, f"functions without a group in symgrad/catalog.py: {missing}"
    lines = []
    for title, names in _GROUPS.items():
        lines += ["", f"**{title}**", "", "| function | notes |", "| --- | --- |"]
        lines += [f"| `{name}` | {supported[name]} |" for name in names if name in supported]
    return "\n".join(lines[1:]) + "\n"


def write_readme(path: Path) -> bool:
    """Replace the table in the README at `path`; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = re.sub(r"(<!-- functions: start -->\n).*?(<!-- functions: end -->)",
                 lambda m: m.group(1) + readme_block() + m.group(2), text, flags=re.S)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
