"""What a generated module defines, for the templates beside this file: the names they
read, so that each template imports, lints and reads as a module of its own. Never
pasted (the templates' import of it is marked not embedded); the values here are
placeholders, the writers print the real ones."""

import numpy as np  # noqa: F401

from codegen.optimizer_rules import N_STATE  # noqa: F401
from codegen.hessian import hessian_from_products  # noqa: F401
from codegen.optimizers import optimizer_spec  # noqa: F401
from codegen.runtime import (  # noqa: F401
    ArgumentError, UnknownArgumentError, check_arrays, check_data, check_params, pack_params,
    unpack_grads)

# Printed by codegen/module.py and tensor_module.py (and cuda_module.py).
PARAMS: tuple = ()              # the params' names, in the order of theta
INPUTS: tuple = ()              # the inputs' names, in the order of the data arrays
REDUCTION = "sum"               # scalar models: "sum" or "mean" over the samples
CHUNK = 4096                    # scalar models: samples per chunk
PARAM_SHAPES: tuple = ()        # matrix models: each param's shape
INPUT_SHAPES: tuple = ()        # matrix models: each input's shape, the batch dim by name
BATCH = "n"                     # matrix models: the name of the batch dim
DTYPE = np.float64              # matrix models: the dtype of theta and the data
PREDICT_INPUTS: tuple = ()      # matrix models with a prediction: the inputs it reads
PREDICT_SHAPES: tuple = ()      # and their shapes
HESSIAN_PATTERN = None          # order 2: (indptr, indices) of the Hessian's pattern, or None
HESSIAN_COLORS = None           # order 2: the star colouring of that pattern


def _placeholder(*args):
    raise NotImplementedError("a generated module defines this")


# The cores each writer prints (the `_par` ones: scalar CPU modules), and the entry
# points' helpers the scalar, matrix and CUDA entry templates define.
_loss_core = _loss_core_par = _loss_and_grad_core = _loss_and_grad_core_par = _placeholder
_predict_core = _train_core = _train_core_par = _placeholder
_pack = _columns = _unpack = _trainer = _parallel = _placeholder
# Order-2 modules: the JVP and HVP cores (the `_par` ones alias the serial ones where
# there is no parallel variant).
_jvp_core = _jvp_core_par = _hvp_core = _hvp_core_par = _placeholder

# CUDA modules: numba.cuda and codegen/cuda_support.py's host helpers.
cuda = None
device_train = device_vector = split_device = to_device_columns = _placeholder
