"""A digits-sized classifier for benchmarks/compile_cache.py (issue 12's third target):
scikit-learn's digits shape, 64 inputs, a 32-unit tanh layer, 10 classes, softmax
cross-entropy, with a prediction (the logits)."""

import sympy as sp

import symgrad
from symgrad import losses, nn

n = sp.Symbol("n", integer=True, positive=True)
X = sp.MatrixSymbol("X", n, 64)
Y = sp.MatrixSymbol("Y", n, 10)
net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
model = symgrad.Model(loss=losses.cross_entropy(net(X), Y), params=net.params, inputs=[X, Y],
                      predict=net(X), name="digits_mlp")
