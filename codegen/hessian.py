"""Full Hessians from Hessian-vector products: dense, or compressed by a star colouring.

Pasted into order-2 modules. `HESSIAN_PATTERN` (CSR index arrays of the structural
pattern, or None where it is dense) and `HESSIAN_COLORS` are printed by the writer from
symgrad/sparsity.py's analysis of the DAG; each colour costs one HVP, each column of a
dense Hessian one.
"""

import numpy as np

from codegen.runtime import HessianTooLargeError  # symgrad: not embedded

DENSE_HESSIAN_LIMIT = 20000     # flat params: a dense Hessian above this takes > 3 GB


def recover(indptr, indices, colors, compressed):
    """The entries of a symmetric matrix H on its pattern (CSR data, in the pattern's
    order) from `compressed[:, c] = H @ (colors == c)`, where `colors` is a star
    colouring: H_ij is compressed[i, c(j)] when j is row i's only entry of colour c(j),
    else compressed[j, c(i)] (one of the two holds in a star colouring)."""
    n, k = compressed.shape
    rows = np.repeat(np.arange(n), np.diff(indptr))
    cols = np.asarray(indices)
    col_colors = colors[cols]
    counts = np.bincount(rows * k + col_colors, minlength=n * k)
    direct = counts[rows * k + col_colors] == 1
    return np.where(direct, compressed[rows, col_colors], compressed[cols, colors[rows]])


def hessian_from_products(product, n, pattern, colors, sparse):
    """The n x n Hessian from `product(v) = H @ v` (flat float64 vectors): a CSR matrix
    when `sparse` (None: when the pattern is sparse), else a dense array."""
    if sparse is None:
        sparse = pattern is not None
    if pattern is None:
        if n > DENSE_HESSIAN_LIMIT:
            raise HessianTooLargeError(
                f"the Hessian of this model's {n} flat params is structurally dense: "
                f"{n * n * 8 / 1e9:.1f} GB as float64; use hvp() (H v without forming H) "
                f"or an optimizer that needs only gradients (optim.LBFGS)")
        h = np.empty((n, n))
        e = np.zeros(n)
        for j in range(n):
            e[j] = 1.0
            h[:, j] = product(e)
            e[j] = 0.0
        if not sparse:
            return h
        import scipy.sparse
        return scipy.sparse.csr_matrix(h)
    indptr, indices = pattern
    k = int(colors.max()) + 1 if n else 0
    compressed = np.empty((n, k))
    for c in range(k):
        compressed[:, c] = product((colors == c).astype(np.float64))
    import scipy.sparse
    h = scipy.sparse.csr_matrix((recover(indptr, indices, colors, compressed), indices,
                                 indptr), shape=(n, n))
    return h if sparse else h.toarray()
