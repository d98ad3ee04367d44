"""Compiled CPU kernels of k-means: nearest-centre assignment, per-cluster sums and one whole SBE
outer step, each with the plain-torch reference in :mod:`phasekit.learn.kmeans` as its twin.

Why: a k-means step on a mini-batch of a few hundred points is a dozen small torch operations
(a GEMM, a row minimum, ``index_select``, ``index_add_``, ``bincount`` and the update), each
costing more in dispatch than in arithmetic; one SBE fit (1,000 inner steps) spent ~10x
scikit-learn's Lloyd time in that overhead.  Here one call does one pass over the points:

* :func:`assign` -- nearest centre of every row and the squared distance to it;
* :func:`assign_sums` -- the same plus per-cluster sums and counts (one Lloyd iteration);
* :func:`minibatch_step` -- one mini-batch k-means update (Sculley 2010);
* :func:`sbe_outer` -- one outer step of SBE (Pham thesis ch. 4, Algorithm 4; Yin, Pham,
  Oberman & Osher, J. Sci. Comput. 77, 1133 (2018)), all ``imaxit`` inner fixed-point passes
  over pre-drawn mini-batch indices.

Numerics: distances are ``sum_t (p_t - c_t)^2`` accumulated in the data's precision in a fixed
order (no ``fastmath``: the same bits on every x86 CPU, vectorised across centres), ties go to the
lowest centre index as in the reference; sums and the SBE update are accumulated in float64 and
stored in the data's precision.  The kernels are serial, so results do not depend on the thread
count.  The torch reference computes distances as ``|p|^2 - 2 p.c + |c|^2``; the two agree on
the assignment except at ties within rounding, and on sums and centres to rounding.

Used automatically for contiguous float CPU tensors when numba imports; ``PHASEKIT_NO_NUMBA=1``
forces the reference path.
"""
from __future__ import annotations

import os

import numpy as np
import torch

__all__ = ["assign", "assign_sums", "available", "minibatch_step", "sbe_outer", "usable"]


_B = 64  # points per block: the distance loop runs over a block of points.  The length is read
# from the array shape at run time: a compile-time constant makes LLVM unroll the loop fully and
# then leave it scalar (5x slower).


try:  # numba is optional at run time: fall back to the torch reference
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError("PHASEKIT_NO_NUMBA is set")
    import numba

    # module-level functions (not closures) so that numba's on-disk cache is used
    _jit = numba.njit(cache=True, fastmath=False, nogil=True)
    available = True
except ImportError:  # pragma: no cover - exercised only without numba
    available = False

    def _jit(f):
        return f


@_jit
def _gather(X, idx, lo, nb, XbT):
    """Rows ``idx[lo:lo+nb]`` of ``X`` (``idx`` None: rows ``lo:lo+nb``) transposed into ``XbT``."""
    d, B = XbT.shape
    for s in range(nb):
        i = lo + s if idx is None else idx[lo + s]
        for t in range(d):
            XbT[t, s] = X[i, t]
    for s in range(nb, B):
        for t in range(d):
            XbT[t, s] = 0

@_jit
def _block_nearest(XbT, C, D, lab, mn):
    """Nearest centre of the block's points: ``D[j, s] = sum_t (p_st - c_jt)^2`` summed in
    order of ``t`` (vectorised over the block, no reassociation), ties to the lowest ``j``."""
    K, d = C.shape
    B = XbT.shape[1]
    for j in range(K):
        row = D[j]
        for s in range(B):
            row[s] = 0
        for t in range(d):
            c = C[j, t]
            xr = XbT[t]
            for s in range(B):
                diff = xr[s] - c
                row[s] += diff * diff
    for s in range(B):
        lab[s] = 0
        mn[s] = D[0, s]
    for j in range(1, K):  # branch-free (selects) so that it vectorises
        row = D[j]
        for s in range(B):
            v = row[s]
            m = mn[s]
            lt = v < m
            mn[s] = v if lt else m
            lab[s] = j if lt else lab[s]

@_jit
def _assign_sums_k(X, idx, C, labels, mins, sums, counts, with_sums):
    K, d = C.shape
    n = X.shape[0] if idx is None else idx.shape[0]
    XbT = np.empty((d, _B), X.dtype)
    D = np.empty((K, _B), X.dtype)
    lab = np.empty(_B, np.int32)
    mn = np.empty(_B, X.dtype)
    if with_sums:
        sums[:] = 0.0
        counts[:] = 0
    for lo in range(0, n, _B):
        nb = min(_B, n - lo)
        _gather(X, idx, lo, nb, XbT)
        _block_nearest(XbT, C, D, lab, mn)
        for s in range(nb):
            b = lab[s]
            labels[lo + s] = b
            mins[lo + s] = mn[s]
            if with_sums:
                counts[b] += 1
                i = lo + s if idx is None else idx[lo + s]
                sb = sums[b]
                xi = X[i]
                for t in range(d):
                    sb[t] += xi[t]

@_jit
def _sbe_outer_k(X, idx, x_prev, gamma, alpha):
    n_inner, M = idx.shape
    K, d = x_prev.shape
    xk = x_prev.copy()
    y = x_prev.copy()
    sums = np.empty((K, d), np.float64)
    counts = np.empty(K, np.int64)
    labels = np.empty(M, np.int64)
    mins = np.empty(M, X.dtype)
    for l in range(n_inner):
        _assign_sums_k(X, idx[l], y, labels, mins, sums, counts, True)
        # y^l = x^{k-1} - gamma (1/M) [c_j y_j^{l-1} - sum_{C_j} p]_j ; x^k <- a x^k + (1-a) y^l
        for j in range(K):
            for t in range(d):
                grad = (counts[j] * np.float64(y[j, t]) - sums[j, t]) / M
                y[j, t] = x_prev[j, t] - gamma * grad
                xk[j, t] = alpha * np.float64(xk[j, t]) + (1.0 - alpha) * np.float64(y[j, t])
    return xk


@_jit
def _minibatch_k(X, idx, x, v):
    K, d = x.shape
    M = idx.shape[0]
    sums = np.empty((K, d), np.float64)
    counts = np.empty(K, np.int64)
    _assign_sums_k(X, idx, x, np.empty(M, np.int64), np.empty(M, X.dtype), sums, counts, True)
    xn = x.copy()
    vn = v.copy()
    for j in range(K):
        if counts[j] > 0:
            vj = np.float64(v[j]) + counts[j]
            for t in range(d):
                xn[j, t] = (np.float64(v[j]) * np.float64(x[j, t]) + sums[j, t]) / vj
            vn[j] = vj
    return xn, vn


def usable(*ts: torch.Tensor) -> bool:
    """Whether the compiled kernels can run on these tensors (CPU, float32/float64, no grad)."""
    return available and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
                             and not t.requires_grad for t in ts)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


def assign(X: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each row of ``X`` and the squared distance to it (ties: lowest index).

    Examples
    --------
    >>> import torch
    >>> lab, m = assign(torch.tensor([[0.0], [3.0]]), torch.tensor([[0.0], [2.0]]))
    >>> lab.tolist(), m.tolist()
    ([0, 1], [0.0, 1.0])
    """
    Xn = _np(X)
    Cn = _np(C).astype(Xn.dtype, copy=False)
    labels = np.empty(Xn.shape[0], np.int64)
    mins = np.empty(Xn.shape[0], Xn.dtype)
    _assign_sums_k(Xn, None, Cn, labels, mins, np.empty((1, 1)), np.empty(1, np.int64), False)
    return torch.from_numpy(labels), torch.from_numpy(mins)


def assign_sums(X: torch.Tensor, C: torch.Tensor, idx: np.ndarray | None = None):
    """:func:`assign` plus per-cluster sums (float64, ``(K, d)``) and counts (int64, ``(K,)``)
    of the rows ``X[idx]`` (``idx`` None: all rows, in order).

    Examples
    --------
    >>> import torch
    >>> lab, m, s, c = assign_sums(torch.tensor([[0.0], [1.0], [5.0]]), torch.tensor([[0.0], [4.0]]))
    >>> s[:, 0].tolist(), c.tolist()
    ([1.0, 5.0], [2, 1])
    """
    Xn = _np(X)
    Cn = _np(C).astype(Xn.dtype, copy=False)
    if idx is not None:
        idx = np.ascontiguousarray(idx, dtype=np.int64)
    n, (k, d) = (Xn.shape[0] if idx is None else idx.shape[0]), Cn.shape
    labels, mins = np.empty(n, np.int64), np.empty(n, Xn.dtype)
    sums, counts = np.empty((k, d), np.float64), np.empty(k, np.int64)
    _assign_sums_k(Xn, idx, Cn, labels, mins, sums, counts, True)
    return (torch.from_numpy(labels), torch.from_numpy(mins), torch.from_numpy(sums),
            torch.from_numpy(counts))


def sbe_outer(X: torch.Tensor, idx: np.ndarray, x: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """One SBE outer step (thesis Algorithm 4) over the mini-batches ``X[idx[l]]``, ``l < imaxit``.

    ``y^0 = x``; ``y^l = x - gamma/M [c_j^l y_j^{l-1} - sum_{i in C_j^l} p_i]_j`` with the batch
    assigned to the nearest centre of ``y^{l-1}``; returns ``x^k``, the running average
    ``x^k <- alpha x^k + (1 - alpha) y^l`` started at ``x``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> X = torch.tensor([[0.0], [2.0]])
    >>> sbe_outer(X, np.array([[0, 1]]), torch.tensor([[1.0]]), 1.0, 0.0).tolist()
    [[1.0]]
    """
    Xn = _np(X)
    out = _sbe_outer_k(Xn, np.ascontiguousarray(idx, dtype=np.int64), _np(x).astype(Xn.dtype, copy=False),
                     float(gamma), float(alpha))
    return torch.from_numpy(out)


def minibatch_step(X: torch.Tensor, idx: np.ndarray, x: torch.Tensor, v: torch.Tensor):
    """One mini-batch k-means update (Sculley 2010) over the rows ``X[idx]``: each centre with
    batch points moves to ``(v_j c_j + sum_batch p) / (v_j + b_j)`` and ``v_j += b_j``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> x, v = minibatch_step(torch.tensor([[0.0], [4.0]]), np.array([0, 1]), torch.tensor([[1.0]]),
    ...                       torch.tensor([1.0]))
    >>> x.tolist(), v.tolist()
    ([[1.6666666269302368]], [3.0])
    """
    Xn = _np(X)
    xn, vn = _minibatch_k(Xn, np.ascontiguousarray(idx, dtype=np.int64), _np(x).astype(Xn.dtype, copy=False),
                          _np(v).astype(Xn.dtype, copy=False))
    return torch.from_numpy(xn), torch.from_numpy(vn)
