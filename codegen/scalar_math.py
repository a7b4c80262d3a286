"""Scalar math for the per-sample code of scalar models: `exp`, `log`, ... and `select`.

Embedded verbatim in generated scalar modules (their chunk functions call these
names), and importable on its own for tests. Compiled by Numba, the names are
`math`'s functions, which Numba types and lowers in about half the time of NumPy's
scalar ufuncs, and `select(cond, a, b)` is one LLVM select instruction: a
conditional expression would add a branch to the function, and Numba's SSA pass
costs time quadratic in a function's branches (500 `a if c else b` in one loop body
compiled in 23 s, 500 selects in 2 s). Run as plain Python (NUMBA_DISABLE_JIT=1)
they are NumPy's functions, which give IEEE results where `math.log(0.0)` would
raise, and an ordinary `select`.
"""

import numba

if numba.config.DISABLE_JIT:
    from numpy import cos, exp, expm1, log, log1p, sin, sqrt, tan, tanh

    import numpy as np

    def select(cond, a, b):
        """a if cond else b, for two values already computed; a number as a NumPy float,
        so that arithmetic on it stays IEEE (1.0 / 0.0 between Python floats raises)."""
        value = a if cond else b
        return value if isinstance(value, (bool, np.bool_)) else np.float64(value)
else:
    from math import cos, exp, expm1, log, log1p, sin, sqrt, tan, tanh

    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def select(typingctx, cond, a, b):
        """a if cond else b, for two values already computed: an LLVM select."""
        result = typingctx.unify_pairs(a, b)
        if not isinstance(cond, types.Boolean) or result is None:
            return None

        def codegen(context, builder, signature, args):
            c, x, y = args
            x = context.cast(builder, x, signature.args[1], result)
            y = context.cast(builder, y, signature.args[2], result)
            return builder.select(c, x, y)

        return result(cond, a, b), codegen
