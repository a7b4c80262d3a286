import numpy as np
import sympy as sp

import symgrad


def test_cubic_fit_gradient_matches_closed_form():
    x, y = sp.symbols("x y", real=True)
    a, b, c, d = sp.symbols("a b c d", real=True)
    model = symgrad.Model((a + b * x + c * x**2 + d * x**3 - y) ** 2, [a, b, c, d], [x, y])
    xs = np.linspace(-np.pi, np.pi, 2000)
    ys = np.sin(xs)
    params = {"a": 0.1, "b": 0.2, "c": -0.3, "d": 0.05}
    loss, grads = symgrad.compile(model).loss_and_grad(params, {"x": xs, "y": ys})
    r = params["a"] + params["b"] * xs + params["c"] * xs**2 + params["d"] * xs**3 - ys
    assert np.isclose(loss, np.sum(r**2), rtol=1e-12)
    for name, feature in zip("abcd", (np.ones_like(xs), xs, xs**2, xs**3)):
        assert np.isclose(grads[name], np.sum(2 * r * feature), rtol=1e-10)
