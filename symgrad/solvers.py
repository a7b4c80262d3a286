"""Newton and L-BFGS: optimizers that run in Python around a kernel's compiled cores.

They take whole steps over the flat parameter vector (solves, line searches, a history
of updates) rather than one elementwise update, so they are not in the generated
modules' registry (codegen/optimizer_rules.py); `Kernel.train` and `train_step` route
`optim.Newton` and `optim.LBFGS` here. Every function value and gradient comes from
the module's jitted `_loss_and_grad_core` on flat vectors (no dict conversions per
evaluation); Newton's Hessians from its `hessian_from_products` (order=2 kernels).

L-BFGS transcribes torch.optim.LBFGS's step (two-loop recursion, first step length,
stopping tests, and its strong-Wolfe line search with cubic interpolation) operation
for operation, so from the same start the iterates agree with PyTorch's to rounding.
"""

from __future__ import annotations

import numpy as np

from symgrad.errors import OptionError


class FlatProblem:
    """A kernel's loss and gradient (and Hessian) as functions of the flat params."""

    def __init__(self, kernel, params, data, check_finite: bool = False):
        module = kernel.module
        getattr(kernel, "await_background", lambda data: None)(data)
        if not hasattr(module, "_pack") or not hasattr(module, "_loss_and_grad_core"):
            raise OptionError("Newton and L-BFGS run on target='cpu' kernels")
        self.module = module
        self.theta, self.given = module._pack(params)
        self.columns = module._columns(data, check_finite)
        parallel = module._parallel(self.columns)
        self._core = module._loss_and_grad_core_par if parallel else module._loss_and_grad_core
        self.evaluations = 0

    def loss_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        out = np.empty(1 + theta.shape[0])
        self._core(np.ascontiguousarray(theta, dtype=self.theta.dtype), *self.columns, out)
        self.evaluations += 1
        return float(out[0]), out[1:]

    def hessian(self, theta: np.ndarray, sparse: bool | None):
        m = self.module
        if not hasattr(m, "_flat_hvp"):
            raise OptionError("optim.Newton needs the Hessian: compile the model with "
                              "symgrad.compile(model, order=2)")
        theta = np.ascontiguousarray(theta, dtype=self.theta.dtype)
        return m.hessian_from_products(
            lambda v: m._flat_hvp(theta, v.astype(theta.dtype), self.columns),
            theta.shape[0], m.HESSIAN_PATTERN, m.HESSIAN_COLORS, sparse)

    def params(self, theta: np.ndarray) -> dict:
        return self.module._unpack(np.asarray(theta, dtype=self.theta.dtype), self.given)


def run(kernel, optimizer, params, data, steps: int, state: dict | None,
        check_finite: bool = False, problem=None, callback=None):
    """(new params, loss before each step, state for the next call). `problem`: the
    loss as a function of the flat params (default a FlatProblem of kernel and data;
    symgrad/distributed.py passes its own); `callback(step, loss)` after each step."""
    from symgrad import optim

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise OptionError(f"steps must be an int >= 0, got {steps!r}")
    problem = problem or FlatProblem(kernel, params, data, check_finite)
    kind = type(optimizer).__name__
    state = dict(state) if state else {"optimizer": kind, "step": 0}
    if state.get("optimizer") != kind:
        raise OptionError(f"this state is from {state.get('optimizer')!r}, not {kind!r}; "
                          f"start {kind} without one (state=None)")
    step = newton_step if isinstance(optimizer, optim.Newton) else lbfgs_step
    theta = problem.theta.astype(np.float64)
    history = np.empty(steps)
    for k in range(steps):
        theta, history[k] = step(problem, optimizer, theta, state)
        state["step"] += 1
        if callback is not None:
            callback(k, float(history[k]))
    return problem.params(theta), history, state


# ------------------------------------------------------------------------ Newton

def newton_step(problem: FlatProblem, opt, theta: np.ndarray, state: dict):
    """One damped Newton step with backtracking (Armijo) line search: solve
    (H + lam I) p = -g with lam = opt.damping, raised tenfold (from 1e-8 max|H|) until
    H + lam I is positive definite (a Cholesky factor, dense, or an LDL^T-like sparse LU
    with diagonal pivots only, all positive); then halve t from 1 until
    f(x + t p) <= f + c1 t g.p. Returns (new theta, the loss at theta)."""
    f, g = problem.loss_and_grad(theta)
    h = problem.hessian(theta, opt.sparse)
    p, state["damping"] = _damped_newton_direction(h, g, opt.damping)
    slope = float(g @ p)
    t = 1.0
    for _ in range(opt.max_backtracks):
        f_new, _ = problem.loss_and_grad(theta + t * p)
        if f_new <= f + opt.c1 * t * slope:
            break
        t *= 0.5
    else:
        return theta, f     # no decrease along p (g is ~0 in floating point): stay
    state["step_length"] = t
    return theta + t * p, f


def _damped_newton_direction(h, g: np.ndarray, damping: float):
    import scipy.sparse

    sparse = scipy.sparse.issparse(h)
    scale = (abs(h).max() if sparse else np.abs(h).max()) or 1.0
    lam = damping
    for _ in range(60):
        p = _solve_if_positive_definite(h, g, lam, sparse)
        if p is not None and np.all(np.isfinite(p)):
            return p, lam
        lam = max(10.0 * lam, 1e-8 * scale)
    return -g, lam      # a gradient step: the line search sizes it


def _solve_if_positive_definite(h, g, lam, sparse):
    """-(h + lam I)^-1 g, or None where h + lam I is not positive definite."""
    n = g.shape[0]
    if not sparse:
        try:
            factor = np.linalg.cholesky(h + lam * np.eye(n))
        except np.linalg.LinAlgError:
            return None
        return -np.linalg.solve(factor.T, np.linalg.solve(factor, g))
    import scipy.sparse
    import scipy.sparse.linalg

    shifted = (h + lam * scipy.sparse.identity(n, format="csr")).tocsc()
    try:    # symmetric mode, diagonal pivots: U's diagonal holds the LDL^T pivots
        lu = scipy.sparse.linalg.splu(shifted, permc_spec="MMD_AT_PLUS_A",
                                      diag_pivot_thresh=0.0,
                                      options={"SymmetricMode": True})
    except RuntimeError:        # exactly singular
        return None
    if not (np.array_equal(lu.perm_r, lu.perm_c) and np.all(lu.U.diagonal() > 0)):
        return None
    return -lu.solve(g)


# ------------------------------------------------------------------------ L-BFGS

def lbfgs_step(problem: FlatProblem, opt, x: np.ndarray, state: dict):
    """One torch.optim.LBFGS.step(closure): up to max_iter iterations. Returns (new x,
    the loss at x)."""
    max_eval = opt.max_eval if opt.max_eval is not None else opt.max_iter * 5 // 4
    state.setdefault("func_evals", 0)
    state.setdefault("n_iter", 0)
    orig_loss, flat_grad = problem.loss_and_grad(x)
    loss = orig_loss
    current_evals = 1
    state["func_evals"] += 1
    if np.abs(flat_grad).max() <= opt.tolerance_grad:
        return x, orig_loss
    d, t = state.get("d"), state.get("t")
    old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
    h_diag, prev_flat_grad = state.get("H_diag"), state.get("prev_flat_grad")
    prev_loss = state.get("prev_loss")
    x = x.copy()
    n_iter = 0
    while n_iter < opt.max_iter:
        n_iter += 1
        state["n_iter"] += 1
        if state["n_iter"] == 1:
            d = -flat_grad
            old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
        else:
            y = flat_grad - prev_flat_grad
            s = d * t
            ys = y @ s
            if ys > 1e-10:
                if len(old_dirs) == opt.history:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                h_diag = ys / (y @ y)
            al = [0.0] * len(old_dirs)
            q = -flat_grad
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = (old_stps[i] @ q) * ro[i]
                q = q + (-al[i]) * old_dirs[i]
            d = q * h_diag
            for i in range(len(old_dirs)):
                be_i = (old_dirs[i] @ d) * ro[i]
                d = d + (al[i] - be_i) * old_stps[i]
        prev_flat_grad = flat_grad.copy()
        prev_loss = loss
        t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * opt.lr if state["n_iter"] == 1 \
            else opt.lr
        gtd = flat_grad @ d
        if gtd > -opt.tolerance_change:
            break
        ls_func_evals = 0
        if opt.line_search == "strong_wolfe":
            def evaluate(t, x=x, d=d):
                return problem.loss_and_grad(x + t * d)
            loss, flat_grad, t, ls_func_evals = strong_wolfe(
                evaluate, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
            x = x + t * d
            opt_cond = np.abs(flat_grad).max() <= opt.tolerance_grad
        else:
            x = x + t * d
            opt_cond = False
            if n_iter != opt.max_iter:
                loss, flat_grad = problem.loss_and_grad(x)
                opt_cond = np.abs(flat_grad).max() <= opt.tolerance_grad
                ls_func_evals = 1
        current_evals += ls_func_evals
        state["func_evals"] += ls_func_evals
        if n_iter == opt.max_iter or current_evals >= max_eval or opt_cond:
            break
        if np.abs(d * t).max() <= opt.tolerance_change or abs(loss - prev_loss) < \
                opt.tolerance_change:
            break
    state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag,
                 prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
    return x, orig_loss


def cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clipped to
    `bounds` (default: the interval); the midpoint where the cubic has none."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, lo), hi)
    return (lo + hi) / 2.0


def strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                 max_ls=25):
    """A step t along d satisfying the strong Wolfe conditions (bracketing, then zoom by
    cubic interpolation): (loss, gradient, t, evaluations). `evaluate(t)` gives the
    loss and gradient at x + t d."""
    d_norm = np.abs(d).max()
    f_new, g_new = evaluate(t)
    ls_func_evals = 1
    gtd_new = g_new @ d
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    bracket_gtd = None
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                              bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = evaluate(t)
        ls_func_evals += 1
        gtd_new = g_new @ d
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                              bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) \
                    else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = evaluate(t)
        ls_func_evals += 1
        gtd_new = g_new @ d
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new
    t = bracket[low_pos]
    return bracket_f[low_pos], bracket_g[low_pos], t, ls_func_evals
