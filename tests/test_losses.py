"""symgrad.losses: values and gradients with PyTorch's definitions.

Each loss is taken of a param matrix (the logits or scores themselves), so its
gradient is the loss's own derivative, compared with the closed form: 2(Z - T)/count
for MSE, softmax(Z) - T for cross-entropy, sigmoid(Z) - T for BCE with logits. The
references are NumPy (max-shifted where it matters); torch.nn.functional cross-checks
the same numbers where torch is installed.
"""

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses
from conftest import torch_or_skip

R, C = 6, 4
Z = sp.MatrixSymbol("Z", R, C)      # param: logits / predictions / scores
T = sp.MatrixSymbol("T", R, C)      # input: targets
Z2 = sp.MatrixSymbol("Z2", R, C)
T2 = sp.MatrixSymbol("T2", R, C)

rng = np.random.default_rng(7)
LOGITS = rng.standard_normal((R, C)) * 2.0
REAL_TARGETS = rng.standard_normal((R, C))
LABELS = rng.integers(0, C, R)
ONE_HOT = np.eye(C)[LABELS]
PROBS = rng.uniform(0.0, 1.0, (R, C))
SIGNS = rng.choice([-1.0, 1.0], (R, C))
# Every sign of extreme logits, ties included, and exact zeros.
EXTREME = np.array([[1000.0, -1000.0, 0.0, 3.0],
                    [1000.0, 1000.0, 1000.0, 1000.0],
                    [-1000.0, -1000.0, -1000.0, -1000.0],
                    [-1000.0, 999.0, -1.0, 1000.0],
                    [0.0, 0.0, 0.0, 0.0],
                    [40.0, -40.0, 710.0, -710.0]])


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _ce_reference(logits, one_hot):
    """Per-row cross-entropy and softmax, max-shifted (never overflows)."""
    m = logits.max(axis=1, keepdims=True)
    shifted = logits - m
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_softmax = shifted - lse
    return -(one_hot * log_softmax).sum(axis=1), np.exp(log_softmax)


def _bce_reference(x, y):
    return np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))


_KERNELS = {}


def kernel_for(key, loss, params=(Z,), inputs=(T,), penalty=None):
    if key not in _KERNELS:
        model = symgrad.Model(loss, params=list(params), inputs=list(inputs), penalty=penalty)
        _KERNELS[key] = symgrad.compile(model)
    return _KERNELS[key]


def run_uncompiled(kernel, params, data, entry="loss_and_grad"):
    """An entry point's generated core run as plain Python (no Numba compile)."""
    mod = kernel.module
    theta, given = mod._pack(params)
    out = np.empty(1 + theta.shape[0])
    getattr(mod, f"_{entry}_core").py_func(theta, *mod._columns(data), out)
    return float(out[0]), mod._unpack(out[1:], given)


# ------------------------------------------------------------------------ mse

@pytest.mark.parametrize("reduction, count", [("sum", 1), ("mean", R * C)])
def test_mse(reduction, count):
    kernel = kernel_for(f"mse {reduction}", losses.mse(Z, T, reduction=reduction))
    loss, grads = run_uncompiled(kernel, {"Z": LOGITS}, {"T": REAL_TARGETS})
    diff = LOGITS - REAL_TARGETS
    assert loss == pytest.approx((diff ** 2).sum() / count, rel=1e-13)
    np.testing.assert_allclose(grads["Z"], 2.0 * diff / count, rtol=1e-13)


def test_mse_mean_divides_by_element_count_not_batch():
    total = run_uncompiled(kernel_for("mse sum", losses.mse(Z, T, reduction="sum")),
                           {"Z": LOGITS}, {"T": REAL_TARGETS})[0]
    mean = run_uncompiled(kernel_for("mse mean", losses.mse(Z, T, reduction="mean")),
                          {"Z": LOGITS}, {"T": REAL_TARGETS})[0]
    assert mean == pytest.approx(total / (R * C), rel=1e-14)


# -------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("reduction, count", [("sum", 1), ("mean", R)])
def test_cross_entropy(reduction, count):
    kernel = kernel_for(f"ce {reduction}", losses.cross_entropy(Z, T, reduction=reduction))
    loss, grads = run_uncompiled(kernel, {"Z": LOGITS}, {"T": ONE_HOT})
    per_row, softmax = _ce_reference(LOGITS, ONE_HOT)
    assert loss == pytest.approx(per_row.sum() / count, rel=1e-13)
    np.testing.assert_allclose(grads["Z"], (softmax - ONE_HOT) / count, rtol=1e-12,
                               atol=1e-15)


def test_cross_entropy_mean_divides_by_batch_size():
    loss = run_uncompiled(kernel_for("ce mean", losses.cross_entropy(Z, T)),
                          {"Z": LOGITS}, {"T": ONE_HOT})[0]
    assert loss == pytest.approx(_ce_reference(LOGITS, ONE_HOT)[0].mean(), rel=1e-13)


def test_cross_entropy_integer_labels_equal_one_hot():
    kernel = kernel_for("ce mean", losses.cross_entropy(Z, T))
    from_one_hot = run_uncompiled(kernel, {"Z": LOGITS}, {"T": ONE_HOT})
    from_labels = run_uncompiled(kernel, {"Z": LOGITS}, {"T": LABELS})
    assert from_labels[0] == from_one_hot[0]
    np.testing.assert_array_equal(from_labels[1]["Z"], from_one_hot[1]["Z"])
    for dtype in (np.int32, np.uint8):
        again = run_uncompiled(kernel, {"Z": LOGITS}, {"T": LABELS.astype(dtype)})
        assert again[0] == from_one_hot[0]


def test_cross_entropy_soft_targets():
    soft = PROBS / PROBS.sum(axis=1, keepdims=True)
    kernel = kernel_for("ce sum", losses.cross_entropy(Z, T, reduction="sum"))
    loss, grads = run_uncompiled(kernel, {"Z": LOGITS}, {"T": soft})
    per_row, softmax = _ce_reference(LOGITS, soft)
    assert loss == pytest.approx(per_row.sum(), rel=1e-13)
    np.testing.assert_allclose(grads["Z"], softmax - soft, rtol=1e-12, atol=1e-15)


def test_cross_entropy_is_stable_for_logits_of_1000():
    kernel = kernel_for("ce mean", losses.cross_entropy(Z, T))
    labels = np.array([0, 3, 2, 1, 0, 3])
    one_hot = np.eye(C)[labels]
    loss, grads = run_uncompiled(kernel, {"Z": EXTREME}, {"T": labels})
    per_row, softmax = _ce_reference(EXTREME, one_hot)
    assert np.isfinite(loss) and np.all(np.isfinite(grads["Z"]))
    assert loss == pytest.approx(per_row.mean(), rel=1e-13)
    np.testing.assert_allclose(grads["Z"], (softmax - one_hot) / R, rtol=1e-12, atol=1e-16)


# ------------------------------------------------------------ BCE with logits

@pytest.mark.parametrize("reduction, count", [("sum", 1), ("mean", R * C)])
def test_bce_with_logits(reduction, count):
    kernel = kernel_for(f"bce {reduction}",
                        losses.binary_cross_entropy_with_logits(Z, T, reduction=reduction))
    loss, grads = run_uncompiled(kernel, {"Z": LOGITS}, {"T": PROBS})
    assert loss == pytest.approx(_bce_reference(LOGITS, PROBS).sum() / count, rel=1e-13)
    np.testing.assert_allclose(grads["Z"], (_sigmoid(LOGITS) - PROBS) / count, rtol=1e-12)


def test_bce_with_logits_is_finite_and_exact_at_extremes_and_zero():
    kernel = kernel_for("bce sum", losses.binary_cross_entropy_with_logits(Z, T, "sum"))
    targets = np.where(rng.uniform(size=(R, C)) < 0.5, 0.0, 1.0)
    targets[0, :] = [0.25, 0.75, 0.5, 0.0]
    loss, grads = run_uncompiled(kernel, {"Z": EXTREME}, {"T": targets})
    assert np.isfinite(loss) and np.all(np.isfinite(grads["Z"]))
    assert loss == pytest.approx(_bce_reference(EXTREME, targets).sum(), rel=1e-13)
    np.testing.assert_allclose(grads["Z"], _sigmoid(EXTREME) - targets, rtol=1e-15,
                               atol=1e-300)
    zero = EXTREME == 0.0
    np.testing.assert_array_equal(grads["Z"][zero], 0.5 - targets[zero])


# ---------------------------------------------------------------------- hinge

def test_hinge_with_labels_plus_minus_one():
    kernel = kernel_for("hinge", losses.hinge(Z, T))
    scores = LOGITS.copy()
    scores[0, 0] = SIGNS[0, 0]          # exactly on the kink: margin 0
    loss, grads = run_uncompiled(kernel, {"Z": scores}, {"T": SIGNS})
    margin = 1.0 - SIGNS * scores
    assert loss == pytest.approx(np.maximum(margin, 0.0).sum(), rel=1e-13)
    # relu'(0) = 0 (PyTorch's convention): no gradient at the kink.
    np.testing.assert_array_equal(grads["Z"], np.where(margin > 0.0, -SIGNS, 0.0))
    mean = run_uncompiled(kernel_for("hinge mean", losses.hinge(Z, T, reduction="mean")),
                          {"Z": scores}, {"T": SIGNS})[0]
    assert mean == pytest.approx(loss / (R * C), rel=1e-14)


# ------------------------------------------------------------------------- l2

def test_l2_penalty_value_and_gradient():
    lam = 0.125
    kernel = kernel_for("l2", losses.mse(Z, T, "sum"), params=(Z, Z2), inputs=(T,),
                        penalty=lam * losses.l2(Z, Z2))
    w2 = rng.standard_normal((R, C))
    loss, grads = run_uncompiled(kernel, {"Z": LOGITS, "Z2": w2}, {"T": REAL_TARGETS})
    want = ((LOGITS - REAL_TARGETS) ** 2).sum() + lam * ((LOGITS ** 2).sum() + (w2 ** 2).sum())
    assert loss == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(grads["Z"], 2 * (LOGITS - REAL_TARGETS) + 2 * lam * LOGITS,
                               rtol=1e-13)
    np.testing.assert_allclose(grads["Z2"], 2 * lam * w2, rtol=1e-14)


def test_unknown_reduction_is_an_option_error():
    with pytest.raises(symgrad.OptionError, match="reduction"):
        losses.mse(Z, T, reduction="batchmean")
    with pytest.raises(symgrad.SymgradError, match="'none'"):
        losses.cross_entropy(Z, T, reduction="none")


# ------------------------------------------------------- compiled (real Numba)

def test_compiled_cross_entropy_and_bce_are_stable():
    """The same stability through Numba: one kernel, the two losses on separate params."""
    loss = losses.cross_entropy(Z, T) + losses.binary_cross_entropy_with_logits(Z2, T2)
    kernel = kernel_for("ce+bce", loss, params=(Z, Z2), inputs=(T, T2))
    labels = np.array([2, 0, 1, 3, 2, 2])
    one_hot = np.eye(C)[labels]
    probs = PROBS.copy()
    value, grads = kernel.loss_and_grad({"Z": EXTREME, "Z2": -EXTREME}, {"T": labels,
                                                                          "T2": probs})
    per_row, softmax = _ce_reference(EXTREME, one_hot)
    want = per_row.mean() + _bce_reference(-EXTREME, probs).mean()
    assert np.isfinite(value) and value == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(grads["Z"], (softmax - one_hot) / R, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(grads["Z2"], (_sigmoid(-EXTREME) - probs) / (R * C),
                               rtol=1e-13, atol=1e-300)
    assert kernel.loss({"Z": EXTREME, "Z2": -EXTREME}, {"T": one_hot, "T2": probs}) == value


# ---------------------------------------------------------------- vs PyTorch

def _torch_case(name):
    torch = torch_or_skip()
    F = torch.nn.functional
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    if name == "mse sum":
        loss = F.mse_loss(z, torch.tensor(REAL_TARGETS), reduction="sum")
        return loss, z, {"T": REAL_TARGETS}, losses.mse(Z, T, "sum")
    if name == "mse mean":
        loss = F.mse_loss(z, torch.tensor(REAL_TARGETS), reduction="mean")
        return loss, z, {"T": REAL_TARGETS}, losses.mse(Z, T, "mean")
    if name == "ce mean":
        loss = F.cross_entropy(z, torch.tensor(LABELS), reduction="mean")
        return loss, z, {"T": LABELS}, losses.cross_entropy(Z, T)
    if name == "ce sum":
        loss = F.cross_entropy(z, torch.tensor(LABELS), reduction="sum")
        return loss, z, {"T": LABELS}, losses.cross_entropy(Z, T, "sum")
    if name == "bce mean":
        loss = F.binary_cross_entropy_with_logits(z, torch.tensor(PROBS), reduction="mean")
        return loss, z, {"T": PROBS}, losses.binary_cross_entropy_with_logits(Z, T)
    if name == "bce sum":
        loss = F.binary_cross_entropy_with_logits(z, torch.tensor(PROBS), reduction="sum")
        return loss, z, {"T": PROBS}, losses.binary_cross_entropy_with_logits(Z, T, "sum")
    if name == "hinge":
        loss = torch.relu(1.0 - torch.tensor(SIGNS) * z).sum()
        return loss, z, {"T": SIGNS}, losses.hinge(Z, T)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["mse sum", "mse mean", "ce mean", "ce sum", "bce mean",
                                  "bce sum", "hinge"])
def test_matches_torch_functional(name):
    loss_t, z, data, expr = _torch_case(name)
    loss_t.backward()
    kernel = kernel_for(name, expr)
    loss, grads = run_uncompiled(kernel, {"Z": LOGITS}, data)
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(grads["Z"], z.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_extreme_logits_match_torch():
    torch = torch_or_skip()
    F = torch.nn.functional
    labels = np.array([0, 3, 2, 1, 0, 3])
    z = torch.tensor(EXTREME, dtype=torch.float64, requires_grad=True)
    ce = F.cross_entropy(z, torch.tensor(labels))
    ce.backward()
    loss, grads = run_uncompiled(kernel_for("ce mean", losses.cross_entropy(Z, T)),
                                 {"Z": EXTREME}, {"T": labels})
    assert loss == pytest.approx(ce.item(), rel=1e-12)
    np.testing.assert_allclose(grads["Z"], z.grad.numpy(), rtol=1e-12, atol=1e-16)
    z = torch.tensor(EXTREME, dtype=torch.float64, requires_grad=True)
    bce = F.binary_cross_entropy_with_logits(z, torch.tensor(PROBS), reduction="sum")
    bce.backward()
    loss, grads = run_uncompiled(
        kernel_for("bce sum", losses.binary_cross_entropy_with_logits(Z, T, "sum")),
        {"Z": EXTREME}, {"T": PROBS})
    assert loss == pytest.approx(bce.item(), rel=1e-12)
    np.testing.assert_allclose(grads["Z"], z.grad.numpy(), rtol=1e-12, atol=1e-16)
