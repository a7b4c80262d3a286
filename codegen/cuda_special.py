"""Device special functions for CUDA modules: floor, ceil, mod, erf, erfc, gamma, lgamma,
polygamma.

Embedded after codegen/special_math.py (whose `_polygamma` it compiles as a device
function) in a CUDA module whose kernels call one of them. On a GPU: libdevice's floor,
ceil, erf, erfc, tgamma and lgamma (Numba's CUDA target types `math.floor` as a float, and
has no np.floor or np.mod), NumPy's remainder written out for `_mod`. In the simulator,
kernels run as Python: NumPy's ufuncs and special_math's compiled CPU functions, which
keep IEEE results where `math` would raise.
"""

import math

import numpy as np
from numba import cuda

from codegen.cuda_support import SIMULATOR  # symgrad: not embedded
from codegen.special_math import _polygamma, erf, erfc, gamma, lgamma, polygamma  # symgrad: not embedded

if SIMULATOR:
    _floor, _ceil, _mod = np.floor, np.ceil, np.mod
    _erf, _erfc, _gamma, _lgamma, _polygamma_dev = erf, erfc, gamma, lgamma, polygamma
else:
    _floor, _ceil = math.floor, math.ceil
    _erf, _erfc, _gamma, _lgamma = math.erf, math.erfc, math.gamma, math.lgamma
    _polygamma_dev = cuda.jit(device=True)(_polygamma)

    @cuda.jit(device=True)
    def _mod(x, y):
        """x mod y with the sign of y, as np.mod: fmod, then moved into y's range."""
        if y == 0.0:
            return math.nan
        r = math.fmod(x, y)
        if r != 0.0:
            if (r < 0.0) != (y < 0.0):
                r += y
        else:
            r = math.copysign(0.0, y)
        return r
