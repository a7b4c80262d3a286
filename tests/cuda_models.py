"""The models and launch shapes the CUDA tests share (test_cuda_sim, test_cuda_ptx).

Small on purpose: the simulator runs every GPU thread as a Python thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp

import symgrad
from codegen.numba_cuda import Launch
from symgrad import losses, nn
from symgrad.modelfile import load_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
SCALAR_EXAMPLES = ("lecture_graph", "chain_rule", "polynomial_sin", "hinge_two_layer")

# Tiny blocks and grid caps: every grid-stride loop takes several passes at n = 29 or 37,
# every block is ragged, and weight-gradient products split their inner dim (the batch).
SIM_LAUNCH = Launch(block=8, max_blocks=3, loop_threads=16, max_row_blocks=3,
                    tile_threads=2, micro=2, tile_k=4, max_tiles=2, split_target=4,
                    split_min_depth=8)
# For the 1000-100-10 example: wider product tiles, so that the simulator synchronises
# its threads a few hundred times per product instead of thousands.
SIM_LAUNCH_WIDE = Launch(block=8, max_blocks=3, loop_threads=16, max_row_blocks=3,
                         tile_threads=2, micro=8, tile_k=16, max_tiles=2)


def example(name: str) -> symgrad.Model:
    return load_model(ROOT / "examples" / f"{name}.py")


def every_op_model() -> symgrad.Model:
    """A scalar model that uses every function the printers know, with lazy branches."""
    x, y = sp.symbols("x y", real=True)
    a, b = sp.symbols("a b", real=True)
    loss = (symgrad.sigmoid(a * x) + symgrad.softplus(b * y) + sp.log(1 + x**2)
            + sp.sqrt(1 + y**2) + sp.exp(-x**2) * a + sp.tanh(b * x) + sp.Abs(a - x)
            + sp.Max(0, x * b) + sp.Min(a, y) + sp.sign(x - y) * b
            + sp.Piecewise((x * a, x > 0), (a * y**2, True)) + (x**2 + 1) ** sp.Rational(3, 2)
            + symgrad.relu(y - a) + sp.sin(a * y) * sp.cos(b) + sp.tan(0.3 * x) * a
            + sp.log(1 + sp.exp(b * x)) + (sp.exp(a * y) - 1) + (a * x) ** -2
            + sp.log(y**2 + 0.5))
    return symgrad.Model(loss=loss, params=[a, b], inputs=[x, y], reduction="mean",
                         name="every op")


def special_functions_model() -> symgrad.Model:
    """A scalar model with every inverse, hyperbolic and special function, each at
    arguments in its domain for any real data (x, y in +-[0.2, 1.5])."""
    x, y = sp.symbols("x y", real=True)
    a, b = sp.symbols("a b", real=True)
    loss = (sp.asin(sp.tanh(a * x) / 2) + sp.acos(sp.tanh(b * y) / 3) + sp.atan(a * x)
            + sp.sinh(b * y / 4) + sp.cosh(a * x / 4) + sp.asinh(a * x)
            + sp.acosh(2 + b**2 * y**2) + sp.atanh(sp.tanh(a * y) / 2) + sp.erf(a * x)
            + sp.erfc(b * y) + sp.gamma(2.5 + sp.tanh(a * x)) + sp.loggamma(3 + b**2 * x**2)
            + sp.digamma(2 + y**2) * a + sp.polygamma(1, 3 + a**2 + x**2)
            + sp.floor(2 * x) * a + sp.ceiling(2 * y) * b
            + sp.atan2(a * x, 1.5 + b**2 + y**2) + sp.Mod(a * x, 0.7) + sp.Mod(3 * x, 1 + b**2))
    return symgrad.Model(loss=loss, params=[a, b], inputs=[x, y], reduction="mean",
                         name="special functions")


def mlp(loss: str) -> tuple[symgrad.Model, nn.Sequential]:
    """3 -> 5 -> 3 networks: ReLU + sigmoid with MSE ("sum"), tanh with cross-entropy
    ("mean")."""
    n = sp.Symbol("n", integer=True, positive=True)
    X, Y = sp.MatrixSymbol("X", n, 3), sp.MatrixSymbol("Y", n, 3)
    if loss == "mse":
        net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3), nn.Sigmoid())
        total = losses.mse(net(X), Y, reduction="sum")
    else:
        net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3))
        total = losses.cross_entropy(net(X), Y, reduction="mean")
    return symgrad.Model(loss=total, params=net.params, inputs=[X, Y], predict=net(X),
                         name=f"mlp {loss}"), net


def mlp_data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((n, 3)), "Y": rng.uniform(0.0, 1.0, (n, 3))}


def scalar_data(model: symgrad.Model, n: int, seed: int) -> dict[str, np.ndarray] | None:
    if not model.inputs:
        return None
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(0.2, 1.5, n) * rng.choice([-1.0, 1.0], n)
            for name in model.input_names}


def scalar_params(model: symgrad.Model, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {name: float(v) for name, v in
            zip(model.param_names, rng.uniform(0.3, 1.0, len(model.params)))}


def matrix_data(model: symgrad.Model, n: int, seed: int) -> dict[str, np.ndarray]:
    """Random data of each input's shape with the batch dim set to n."""
    rng = np.random.default_rng(seed)
    shapes = [x.shape for x in model.input_nodes]
    return {name: rng.standard_normal(tuple(n if isinstance(d, str) else d for d in shape))
            for name, shape in zip(model.input_names, shapes)}


def matrix_params(model: symgrad.Model, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-0.5, 0.5, p.shape)
            for name, p in zip(model.param_names, model.param_nodes)}
