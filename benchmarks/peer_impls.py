"""The training workloads of benchmarks/peers.py, written for each contender.

A workload spec is a plain dict (JSON-ready): layer widths, activation, loss,
optimizer, batch, steps and dtype ("float64" or "float32": params, data and
every contender's arithmetic in that precision; integer labels stay integers).
Every contender starts from the same initial params (symgrad's `init`,
PyTorch's convention) and the same data. Its trainer `run(record=False)` runs
the whole loop from those params and returns the loss of the last step
(computed before that step's update, as `history[-1]` of `Kernel.train`);
`run(record=True)` (untimed) returns the loss before every
step, so that contenders can be compared step by step.

Contenders: symgrad (kernel.train), PyTorch eager (loss.backward() and a
torch.optim optimizer), JAX (jit with the loop inside, lax.fori_loop) and NumPy
with hand-written gradients. torch and jax are imported only inside their
builders, after the caller has set the thread environment.
"""

from __future__ import annotations

import math

import numpy as np

# key -> (title, full size, quick size). Widths run from the input to the output.
WORKLOADS = {
    "a": ("(a) cubic fit, GD",
          {"kind": "cubic", "batch": 2000, "steps": 2000, "optimizer": "sgd", "lr": 1e-6},
          {"batch": 200, "steps": 50}),
    "b": ("(b) Linear(3,1), RMSprop",
          {"kind": "mlp", "widths": [3, 1], "act": None, "loss": "mse", "flatten": True,
           "batch": 2000, "steps": 2000, "optimizer": "rmsprop", "lr": 1e-3},
          {"batch": 200, "steps": 50}),
    "c": ("(c) 1000-100-10 ReLU, SGD",
          {"kind": "mlp", "widths": [1000, 100, 10], "act": "relu", "loss": "mse",
           "flatten": False, "batch": 64, "steps": 500, "optimizer": "sgd", "lr": 1e-4},
          {"widths": [50, 20, 5], "batch": 8, "steps": 20}),
    "d": ("(d) 784-256-256-10 tanh, CE",
          {"kind": "mlp", "widths": [784, 256, 256, 10], "act": "tanh", "loss": "ce",
           "flatten": False, "batch": 128, "steps": 200, "optimizer": "sgd", "lr": 0.1},
          {"widths": [32, 16, 16, 10], "batch": 16, "steps": 10}),
    # (d) at a batch large enough for symgrad's parallel kernels (peers.py runs it
    # at 1 and 2 threads, float64 only): the same model as (d), so the same kernel.
    "d4096": ("(d4096) 784-256-256-10 tanh, CE",
              {"kind": "mlp", "widths": [784, 256, 256, 10], "act": "tanh", "loss": "ce",
               "flatten": False, "batch": 4096, "steps": 20, "optimizer": "sgd", "lr": 0.1},
              {"widths": [32, 16, 16, 10], "batch": 4096, "steps": 3}),
}
DTYPES = ("float64", "float32")
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8


def spec(key: str, quick: bool = False, dtype: str = "float64") -> dict:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    title, full, small = WORKLOADS[key]
    return {"key": key, "title": title, **full, **(small if quick else {}), "dtype": dtype}


def _dtype(s: dict):
    return np.dtype(s.get("dtype", "float64"))


def _cast(s: dict, values: dict) -> dict:
    """Floating values (arrays and Python floats) in the spec's dtype; integers as they are."""
    dtype = _dtype(s)
    if dtype == np.float64:
        return values
    out = {}
    for k, v in values.items():
        a = np.asarray(v)
        out[k] = a.astype(dtype) if a.dtype.kind == "f" else v
    return out


# ------------------------------------------------------------ model, data, params


def linear_indices(s: dict) -> list[int]:
    """Positions of the Linear layers in the Sequential (for state_dict names)."""
    return [2 * i for i in range(len(s["widths"]) - 1)]


def build_net(s: dict):
    """symgrad.nn.Sequential of the spec, laid out as the PyTorch one is (same names)."""
    from symgrad import nn

    layers = []
    widths = s["widths"]
    for i in range(len(widths) - 1):
        if i:
            layers.append({"relu": nn.ReLU, "tanh": nn.Tanh}[s["act"]]())
        layers.append(nn.Linear(widths[i], widths[i + 1]))
    if s["flatten"]:
        layers.append(nn.Flatten(0, 1))
    return nn.Sequential(*layers)


def build_model(s: dict):
    """(symgrad.Model, net or None): examples/polynomial_sin.py for the cubic fit,
    otherwise the Sequential with losses.mse(sum) or losses.cross_entropy(mean)."""
    import sympy as sp

    import symgrad
    from symgrad import losses

    if s["kind"] == "cubic":
        x, y = sp.symbols("x y", real=True)
        a, b, c, d = sp.symbols("a b c d", real=True)
        pred = a + b * x + c * x**2 + d * x**3
        return symgrad.Model(loss=(pred - y) ** 2, params=[a, b, c, d], inputs=[x, y],
                             reduction="sum", name="cubic"), None
    n = sp.Symbol("n", integer=True, positive=True)
    widths = s["widths"]
    X = sp.MatrixSymbol("X", n, widths[0])
    Y = sp.MatrixSymbol("Y", n, widths[-1])
    net = build_net(s)
    pred = net(X)
    loss = (losses.mse(pred, Y, reduction="sum") if s["loss"] == "mse"
            else losses.cross_entropy(pred, Y, reduction="mean"))
    return symgrad.Model(loss=loss, params=net.params, inputs=[X, Y], predict=pred,
                         name=f"peers_{s['key']}"), net


def make_data(s: dict) -> dict[str, np.ndarray]:
    """Cubic and Linear(3,1): sin on [-pi, pi] as in the examples; the nets: random
    data (seed 1), MSE targets standard normal, CE targets integer labels."""
    if s["kind"] == "cubic" or s["widths"][0] == 3:
        x = np.linspace(-math.pi, math.pi, s["batch"])
        if s["kind"] == "cubic":
            return _cast(s, {"x": x, "y": np.sin(x)})
        return _cast(s, {"X": np.stack([x, x**2, x**3], axis=1), "Y": np.sin(x)})
    rng = np.random.default_rng(1)
    widths = s["widths"]
    X = rng.standard_normal((s["batch"], widths[0]))
    if s["loss"] == "ce":
        return _cast(s, {"X": X, "Y": rng.integers(0, widths[-1], s["batch"])})
    return _cast(s, {"X": X, "Y": rng.standard_normal((s["batch"], widths[-1]))})


def make_init(s: dict, net=None) -> dict:
    """Initial params (seed 0): the cubic's four normals; a net's PyTorch-style init
    (drawn in float64, then rounded to the spec's dtype)."""
    if s["kind"] == "cubic":
        return dict(zip("abcd", np.random.default_rng(0).standard_normal(4).tolist()))
    return _cast(s, net.init(0))


def layer_params(s: dict, params: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(weight (out, in), bias (out,)), ...] from a state_dict-named params dict."""
    dtype = _dtype(s)
    return [(np.array(params[f"{i}.weight"], dtype=dtype),
             np.array(params[f"{i}.bias"], dtype=dtype).reshape(-1))
            for i in linear_indices(s)]


def arrays_to_hold(s: dict) -> dict[str, int]:
    """Bytes training must hold at its peak (in the spec's dtype; integer labels
    counted as floats): the caller's params and data,
    one more params copy (train returns new arrays), the gradient, the optimizer
    state, and the forward activations (pre- and post-activation of each hidden
    layer, and the output)."""
    widths, batch = s["widths"], s["batch"]
    n_params = sum((widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1))
    state = {"sgd": 0, "rmsprop": 1}[s["optimizer"]] * n_params
    acts = batch * (2 * sum(widths[1:-1]) + widths[-1])
    data = batch * (widths[0] + widths[-1])
    parts = {"params_in": n_params, "params_out": n_params, "gradient": n_params,
             "optimizer_state": state, "data": data, "activations": acts}
    return {k: _dtype(s).itemsize * v for k, v in parts.items()}


# ------------------------------------------------------------ symgrad


def symgrad_trainer(kernel, s: dict, init: dict, data: dict):
    """(run() -> final loss, how): kernel.train when the module has it; for a scalar
    module without train, a Python loop of plain GD over kernel.loss_and_grad."""
    from symgrad import optim

    steps = s["steps"]
    optimizer = (optim.SGD(lr=s["lr"]) if s["optimizer"] == "sgd"
                 else optim.RMSprop(lr=s["lr"], alpha=RMSPROP_ALPHA, eps=RMSPROP_EPS))
    if getattr(kernel.module, "train", None) is not None:
        def run(record=False):
            _, history = kernel.train(init, data, optimizer, steps)
            return history if record else float(history[-1])
        return run, "kernel.train"
    if s["optimizer"] != "sgd":
        raise ValueError("the Python-loop fallback does plain gradient descent only")
    lr = s["lr"]

    def loop(record=False):
        params, history = dict(init), []
        for _ in range(steps):
            loss, grads = kernel.loss_and_grad(params, data)
            params = {k: v - lr * grads[k] for k, v in params.items()}
            if record:
                history.append(loss)
        return np.array(history) if record else loss
    return loop, "Python loop over kernel.loss_and_grad (module has no train)"


# ------------------------------------------------------------ NumPy, hand-written gradients


def numpy_trainer(s: dict, init: dict, data: dict):
    return (_numpy_cubic if s["kind"] == "cubic" else _numpy_mlp)(s, init, data)


def _numpy_cubic(s, init, data):
    x, y = data["x"], data["y"]
    x2, x3 = x * x, x * x * x           # data-only powers, computed once
    lr, steps = s["lr"], s["steps"]

    def run(record=False):
        a, b, c, d = (init[k] for k in "abcd")
        history = []
        for _ in range(steps):
            r = a + b * x + c * x2 + d * x3 - y
            loss = float(r @ r)
            g = 2.0 * r
            a, b, c, d = a - lr * g.sum(), b - lr * (g @ x), c - lr * (g @ x2), d - lr * (g @ x3)
            if record:
                history.append(loss)
        return np.array(history) if record else loss
    return run


def _numpy_mlp(s, init, data):
    dtype = _dtype(s)
    X = np.ascontiguousarray(data["X"], dtype=dtype)
    labels = data["Y"] if s["loss"] == "ce" else None
    Y = None if labels is not None else np.asarray(data["Y"], dtype=dtype).reshape(
        X.shape[0], -1)
    rows = np.arange(X.shape[0])
    act = s["act"]
    lr, steps = s["lr"], s["steps"]
    rmsprop = s["optimizer"] == "rmsprop"

    def loss_and_grads(layers):
        outs = [X]                      # input of each layer
        a = X
        for i, (W, b) in enumerate(layers):
            z = a @ W.T
            z += b
            if i < len(layers) - 1:
                a = np.maximum(z, 0.0) if act == "relu" else np.tanh(z)
                outs.append(a)
            else:
                a = z
        if labels is None:
            r = a - Y
            loss = float(np.vdot(r, r))
            g = 2.0 * r
        else:
            m = a.max(axis=1, keepdims=True)
            e = np.exp(a - m)
            total = e.sum(axis=1, keepdims=True)
            loss = float(np.mean(m[:, 0] + np.log(total[:, 0]) - a[rows, labels]))
            g = e / total
            g[rows, labels] -= 1.0
            g /= X.shape[0]
        grads = [None] * len(layers)
        for i in range(len(layers) - 1, -1, -1):
            grads[i] = (g.T @ outs[i], g.sum(axis=0))
            if i:
                g = g @ layers[i][0]
                h = outs[i]
                if act == "relu":
                    g *= h > 0.0
                else:
                    g *= 1.0 - h * h
        return loss, grads

    def run(record=False):
        layers = [(W.copy(), b.copy()) for W, b in layer_params(s, init)]
        state = [(np.zeros_like(W), np.zeros_like(b)) for W, b in layers] if rmsprop else None
        history = []
        for _ in range(steps):
            loss, grads = loss_and_grads(layers)
            if record:
                history.append(loss)
            for i, (p_pair, g_pair) in enumerate(zip(layers, grads)):
                for j, (p, g) in enumerate(zip(p_pair, g_pair)):
                    if rmsprop:
                        sq = state[i][j]
                        sq *= RMSPROP_ALPHA
                        sq += (1.0 - RMSPROP_ALPHA) * g * g
                        p -= lr * g / (np.sqrt(sq) + RMSPROP_EPS)
                    else:
                        p -= lr * g
        return np.array(history) if record else loss
    return run


def gemm_floor(s: dict, init: dict, data: dict):
    """Not a trainer: the matrix products of one training step alone, NumPy, in the
    spec's dtype, `steps` times (forward z = a @ W.T per layer, dW = g.T @ a per layer,
    dX = g @ W for every layer but the first). Every contender makes these GEMMs (or the
    same flops), so their time is a floor: a ratio to a peer above peer / floor cannot
    come from anything but a faster GEMM. The run returns NaN (no loss)."""
    dtype = _dtype(s)
    X = np.ascontiguousarray(data["X"], dtype=dtype)
    layers = layer_params(s, init)
    rng = np.random.default_rng(2)
    acts = [X] + [rng.standard_normal((X.shape[0], W.shape[0])).astype(dtype)
                  for W, _ in layers]
    steps = s["steps"]

    def run(record=False):
        for _ in range(steps):
            for i, (W, _) in enumerate(layers):
                acts[i] @ W.T
            for i in range(len(layers) - 1, -1, -1):
                g = acts[i + 1]
                g.T @ acts[i]
                if i:
                    g @ layers[i][0]
        return np.full(steps, np.nan) if record else float("nan")
    return run


# ------------------------------------------------------------ PyTorch eager


def torch_trainer(s: dict, init: dict, data: dict):
    import torch

    dtype = {"float64": torch.float64, "float32": torch.float32}[s.get("dtype", "float64")]
    torch.set_default_dtype(dtype)
    steps, lr = s["steps"], s["lr"]
    if s["kind"] == "cubic":
        x, y = torch.tensor(data["x"], dtype=dtype), torch.tensor(data["y"], dtype=dtype)
        params = [torch.tensor(init[k], dtype=dtype, requires_grad=True) for k in "abcd"]

        def run(record=False):
            with torch.no_grad():
                for p, k in zip(params, "abcd"):
                    p.fill_(init[k])
            a, b, c, d = params
            opt = torch.optim.SGD(params, lr=lr)
            history = []
            for _ in range(steps):
                loss = (a + b * x + c * x**2 + d * x**3 - y).pow(2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if record:
                    history.append(loss.item())
            return np.array(history) if record else loss.item()
        return run

    widths = s["widths"]
    layers = []
    for i in range(len(widths) - 1):
        if i:
            layers.append(torch.nn.ReLU() if s["act"] == "relu" else torch.nn.Tanh())
        layers.append(torch.nn.Linear(widths[i], widths[i + 1], dtype=dtype))
    if s["flatten"]:
        layers.append(torch.nn.Flatten(0, 1))
    net = torch.nn.Sequential(*layers)
    start = {k: torch.tensor(np.asarray(v).reshape(net.state_dict()[k].shape), dtype=dtype)
             for k, v in init.items()}
    X = torch.tensor(data["X"], dtype=dtype)
    if s["loss"] == "ce":
        Y, loss_fn = torch.tensor(data["Y"], dtype=torch.int64), torch.nn.CrossEntropyLoss()
    else:
        Y, loss_fn = torch.tensor(data["Y"], dtype=dtype), torch.nn.MSELoss(reduction="sum")

    def run(record=False):
        net.load_state_dict(start)
        opt = (torch.optim.SGD(net.parameters(), lr=lr) if s["optimizer"] == "sgd" else
               torch.optim.RMSprop(net.parameters(), lr=lr, alpha=RMSPROP_ALPHA,
                                   eps=RMSPROP_EPS))
        history = []
        for _ in range(steps):
            loss = loss_fn(net(X), Y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if record:
                history.append(loss.item())
        return np.array(history) if record else loss.item()
    return run


# ------------------------------------------------------------ JAX, loop inside jit


def jax_trainer(s: dict, init: dict, data: dict):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)      # float32 runs name their dtype
    dtype = {"float64": jnp.float64, "float32": jnp.float32}[s.get("dtype", "float64")]
    steps, lr = s["steps"], s["lr"]
    if s["kind"] == "cubic":
        params0 = jnp.asarray([init[k] for k in "abcd"], dtype=dtype)
        batch = (jnp.asarray(data["x"], dtype=dtype), jnp.asarray(data["y"], dtype=dtype))

        def loss_fn(p, batch):
            x, y = batch
            return jnp.sum((p[0] + p[1] * x + p[2] * x**2 + p[3] * x**3 - y) ** 2)
    else:
        params0 = [(jnp.asarray(W), jnp.asarray(b)) for W, b in layer_params(s, init)]
        labels = s["loss"] == "ce"
        target = (jnp.asarray(data["Y"]) if labels
                  else jnp.asarray(data["Y"], dtype=dtype).reshape(s["batch"], -1))
        batch = (jnp.asarray(data["X"], dtype=dtype), target)
        act = jax.nn.relu if s["act"] == "relu" else jnp.tanh

        def loss_fn(layers, batch):
            a, y = batch
            for i, (W, b) in enumerate(layers):
                a = a @ W.T + b
                if i < len(layers) - 1:
                    a = act(a)
            if not labels:
                return jnp.sum((a - y) ** 2)
            lse = jax.nn.logsumexp(a, axis=1)
            return jnp.mean(lse - jnp.take_along_axis(a, y[:, None], axis=1)[:, 0])

    rmsprop = s["optimizer"] == "rmsprop"
    grad_fn = jax.value_and_grad(loss_fn)

    def update(p, g, sq):
        if not rmsprop:
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, p, g), sq
        sq = jax.tree_util.tree_map(
            lambda s, g: s * RMSPROP_ALPHA + (1.0 - RMSPROP_ALPHA) * g * g, sq, g)
        p = jax.tree_util.tree_map(lambda p, g, s: p - lr * g / (jnp.sqrt(s) + RMSPROP_EPS),
                                   p, g, sq)
        return p, sq

    def step(p, sq, batch):
        loss, g = grad_fn(p, batch)
        p, sq = update(p, g, sq)
        return p, sq, loss

    @jax.jit
    def train(p, batch):
        def body(_, carry):
            return step(carry[0], carry[1], batch)
        sq0 = jax.tree_util.tree_map(jnp.zeros_like, p)
        return jax.lax.fori_loop(0, steps, body, (p, sq0, jnp.zeros((), dtype)))[2]

    @jax.jit
    def train_history(p, batch):
        def body(carry, _):
            p, sq, loss = step(carry[0], carry[1], batch)
            return (p, sq), loss
        sq0 = jax.tree_util.tree_map(jnp.zeros_like, p)
        return jax.lax.scan(body, (p, sq0), None, length=steps)[1]

    def run(record=False):
        if record:
            return np.asarray(train_history(params0, batch))
        return float(train(params0, batch))
    return run


TRAINERS = {"numpy": numpy_trainer, "pytorch": torch_trainer, "jax": jax_trainer}
PEER_MODULES = {"numpy": "numpy", "pytorch": "torch", "jax": "jax"}
PEER_LABELS = {"symgrad": "symgrad", "pytorch": "PyTorch eager", "jax": "JAX jit",
               "numpy": "NumPy by hand", "gemms": "GEMMs alone"}
FLOOR = "gemms"     # the products-only row (gemm_floor) of the nets' workloads
