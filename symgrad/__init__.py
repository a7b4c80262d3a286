"""symgrad: a gradient compiler for models written as SymPy formulas."""

__version__ = "0.1.0"

from symgrad.errors import *  # noqa: E402,F401,F403
from symgrad.errors import SymgradError  # noqa: E402,F401
from symgrad.functions import relu, sigmoid, softplus  # noqa: E402,F401
from symgrad.kernel import Kernel, compile  # noqa: E402,F401
from symgrad.model import Model  # noqa: E402,F401
from symgrad.inspect import grad  # noqa: E402,F401
from symgrad.catalog import supported_functions  # noqa: E402,F401
from symgrad.sparsity import HessianSparsity, hessian_sparsity  # noqa: E402,F401
from symgrad import losses, matrix, nn, optim  # noqa: E402,F401
