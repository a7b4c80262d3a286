"""Write PyTorch reference runs of the lecture's workloads to tests/data/ (float64).

Needs torch (a CPU build is enough: `pip install torch==2.13.0`). Each workload
uses the initial parameters and data of the shipped example, runs PyTorch's own
training loop, and stores the initial parameters, the data and the loss before
every step; for RMSprop also single steps from saved states, so that tests can
compare one update in isolation. symgrad's tests read these files; they never
need torch.

    python benchmarks/torch_reference.py [--out tests/data]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
torch.set_default_dtype(torch.float64)


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cubic_by_hand() -> dict[str, np.ndarray]:
    """polynomial_sin.py: a + b x + c x^2 + d x^3, sum of squares, lr 1e-6, 2000 steps."""
    example = load_example("polynomial_sin")
    batch = example.data()
    init = example.initial_params()
    x, y = torch.tensor(batch["x"]), torch.tensor(batch["y"])
    a, b, c, d = (torch.tensor(init[k], requires_grad=True) for k in "abcd")
    losses = []
    for _ in range(2000):
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in (a, b, c, d):
                p -= 1e-6 * p.grad
                p.grad = None
    return {"x": batch["x"], "y": batch["y"],
            **{f"init_{k}": np.array(v) for k, v in init.items()},
            "losses": np.array(losses)}


def _module_from(params: dict[str, np.ndarray], layers) -> torch.nn.Module:
    net = torch.nn.Sequential(*layers)
    net.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    return net


def linear_module(optimizer: str) -> dict[str, np.ndarray]:
    """linear_rmsprop.py: Linear(3, 1) + Flatten, MSE sum; SGD 1e-6 or RMSprop 1e-3."""
    example = load_example("linear_rmsprop")
    batch, init = example.data(), example.params()
    net = _module_from(init, [torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1)])
    xx, y = torch.tensor(batch["X"]), torch.tensor(batch["Y"])
    loss_fn = torch.nn.MSELoss(reduction="sum")
    opt = (torch.optim.SGD(net.parameters(), lr=1e-6) if optimizer == "sgd"
           else torch.optim.RMSprop(net.parameters(), lr=1e-3))
    losses, single = [], {"params_before": [], "square_avg_before": [], "step": [],
                          "params_after": []}
    for t in range(2000):
        loss = loss_fn(net(xx), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        record = optimizer == "rmsprop" and t in (0, 1, 10, 100, 1000, 1999)
        if record:
            single["params_before"].append(_flat(net))
            single["square_avg_before"].append(_square_avg(opt, net))
            single["step"].append(t)
        opt.step()
        if record:
            single["params_after"].append(_flat(net))
    out = {"X": batch["X"], "Y": batch["Y"], "losses": np.array(losses),
           **{f"init/{k}": v for k, v in init.items()}}
    if optimizer == "rmsprop":
        out.update({f"single/{k}": np.array(v) for k, v in single.items()})
    return out


def _flat(net) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])


def _square_avg(opt, net) -> np.ndarray:
    parts = []
    for p in net.parameters():
        state = opt.state.get(p, {})
        avg = state.get("square_avg")
        parts.append(np.zeros(p.numel()) if avg is None else avg.numpy().ravel().copy())
    return np.concatenate(parts)


def two_layer() -> dict[str, np.ndarray]:
    """two_layer_net.py: 1000-100-10 with ReLU, MSE sum, SGD lr 1e-4, 500 steps."""
    example = load_example("two_layer_net")
    batch, init = example.data(), example.params()
    net = _module_from(init, [torch.nn.Linear(1000, 100), torch.nn.ReLU(),
                              torch.nn.Linear(100, 10)])
    x, y = torch.tensor(batch["X"]), torch.tensor(batch["Y"])
    loss_fn = torch.nn.MSELoss(reduction="sum")
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    losses = []
    for _ in range(500):
        loss = loss_fn(net(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"X": batch["X"], "Y": batch["Y"], "losses": np.array(losses),
            **{f"init/{k}": v for k, v in init.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "data"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    runs = {
        "torch_cubic_by_hand.npz": cubic_by_hand,
        "torch_linear_sgd.npz": lambda: linear_module("sgd"),
        "torch_linear_rmsprop.npz": lambda: linear_module("rmsprop"),
        "torch_two_layer_sgd.npz": two_layer,
    }
    for name, run in runs.items():
        arrays = run()
        np.savez_compressed(out / name, torch_version=np.array(torch.__version__), **arrays)
        losses = arrays["losses"]
        print(f"{name}: {len(losses)} steps, loss {losses[0]:.6g} -> {losses[-1]:.6g}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
