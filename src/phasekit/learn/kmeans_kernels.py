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
  over pre-drawn mini-batch indices;
* :func:`sbe_outer_draw` / :func:`minibatch_draw` -- the same with the mini-batches drawn inside
  the compiled call (:class:`Sampler`: NumPy's ``Generator.choice(n, m, replace=False)`` word for
  word, so a seed gives the fit it gave with the draws in Python).

Where the time of one SBE fit went (10^4 x 30 points, K = 15, thesis settings, one thread,
issue 16): the ``imaxit`` Python calls of ``Generator.choice`` per outer step were about a third
(~60-80 us each, 1,000 per fit); they now cost ~10-20 us each inside the kernel.  The distance
loop handles four features per pass over a block row (same summation order, same bits).  What
is left is arithmetic: one SBE fit assigns ``omaxit * imaxit * M = 5 * 10^5`` points, 1.6x what
scikit-learn's Lloyd assigns in its ~32 iterations at 10^4 points, at about 1.5x its cost per
point (its distances are a BLAS GEMM; a GEMM variant here was 13% faster at d = 30, K = 15 and
15% slower at d = 10, K = 50, so the exact direct sum was kept).

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

__all__ = ["Sampler", "assign", "assign_sums", "available", "fast_sampler", "minibatch_draw",
           "minibatch_step", "sampling_exact", "sbe_outer", "sbe_outer_draw", "usable"]


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
    order of ``t`` (vectorised over the block, no reassociation), ties to the lowest ``j``.

    Four features per pass over the block's row of ``D`` (the sum keeps its left-to-right order
    ``(((D + e_t^2) + e_{t+1}^2) + ...)``, so the bits are those of the one-feature loop) cut the
    loads and stores of ``D`` and the loop set-ups by four."""
    K, d = C.shape
    B = XbT.shape[1]
    d4 = d - d % 4
    for j in range(K):
        row = D[j]
        for s in range(B):
            row[s] = 0
        for t in range(0, d4, 4):
            c0 = C[j, t]
            c1 = C[j, t + 1]
            c2 = C[j, t + 2]
            c3 = C[j, t + 3]
            x0 = XbT[t]
            x1 = XbT[t + 1]
            x2 = XbT[t + 2]
            x3 = XbT[t + 3]
            for s in range(B):
                e0 = x0[s] - c0
                e1 = x1[s] - c1
                e2 = x2[s] - c2
                e3 = x3[s] - c3
                row[s] = row[s] + e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
        for t in range(d4, d):
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


# --------------------------------------------------------------------------- sampling
# ``Generator.choice(n, m, replace=False)`` re-done in compiled code, draw for draw: the same
# 32-bit words of the same bit generator, consumed in the same order by the same algorithms
# (NumPy's bounded integers by Lemire's rejection method; Floyd's algorithm with a linear-probing
# hash set and a final shuffle when ``n <= 10000`` or ``m <= n // 50``, else a partial
# Fisher-Yates shuffle of the tail).  It saves the ~60 us of Python per draw that made the
# mini-batch draws a third of an SBE fit at 10^4 points.  :func:`sampling_exact` checks it
# against NumPy once per process; where it differs (another NumPy), the draws stay in Python.

@_jit
def _bounded(fn, st, rng):  # fn(st): the bit generator's next 32-bit word
    """A uniform integer in ``[0, rng]`` as NumPy's ``random_bounded_uint64(.., 0, rng, ..)``
    for ``1 <= rng < 2**32 - 1`` (Lemire's multiply-and-reject on 32-bit words)."""
    rng_excl = np.uint64(rng) + np.uint64(1)
    low = np.uint64(0xFFFFFFFF)
    m = np.uint64(fn(st)) * rng_excl
    leftover = m & low
    if leftover < rng_excl:
        threshold = (low - np.uint64(rng)) % rng_excl
        while leftover < threshold:
            m = np.uint64(fn(st)) * rng_excl
            leftover = m & low
    return np.int64(m >> np.uint64(32))


@_jit
def _choice_into(fn, st, n, m, out, hs, perm, jbuf):
    """``out[:m] = g.choice(n, m, replace=False)`` (``1 <= m < n < 2**32 - 1``).

    ``hs`` is the hash-set scratch (at least the next power of two above ``1.2 m``), ``perm``
    ``arange(n)`` (read and restored; only used for the tail-shuffle branch), ``jbuf`` ``m``
    integers of scratch."""
    if n > 10000 and m > n // 50:  # partial Fisher-Yates shuffle of the tail of arange(n)
        first = max(n - m, 1)
        for i in range(n - 1, first - 1, -1):
            j = _bounded(fn, st, i)
            jbuf[n - 1 - i] = j
            tmp = perm[j]
            perm[j] = perm[i]
            perm[i] = tmp
        for s in range(m):
            out[s] = perm[n - m + s]
        for r in range(n - first):  # put arange(n) back (the swapped positions only)
            perm[jbuf[r]] = jbuf[r]
        for i in range(first, n):
            perm[i] = i
        return
    # Floyd's algorithm, then a shuffle of the result
    size = np.uint64(np.int64(1.2 * m))
    mask = size
    mask |= mask >> np.uint64(1)
    mask |= mask >> np.uint64(2)
    mask |= mask >> np.uint64(4)
    mask |= mask >> np.uint64(8)
    mask |= mask >> np.uint64(16)
    mask |= mask >> np.uint64(32)
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)
    one = np.uint64(1)
    for s in range(np.int64(mask) + 1):
        hs[s] = empty
    for j in range(n - m, n):
        val = np.uint64(_bounded(fn, st, j)) if j > 0 else np.uint64(0)
        loc = val & mask
        while hs[loc] != empty and hs[loc] != val:
            loc = (loc + one) & mask
        if hs[loc] == empty:
            hs[loc] = val
            out[j - n + m] = np.int64(val)
        else:
            loc = np.uint64(j) & mask
            while hs[loc] != empty:
                loc = (loc + one) & mask
            hs[loc] = np.uint64(j)
            out[j - n + m] = j
    for i in range(m - 1, 0, -1):
        j = _bounded(fn, st, i)
        tmp = out[j]
        out[j] = out[i]
        out[i] = tmp


@_jit
def _draw_k(fn, st, n, idx, hs, perm, jbuf):
    """Fill every row of ``idx`` (``(L, m)``) with one :func:`_choice_into` draw, in order;
    ``m >= n``: every row is ``arange(n)`` and nothing is drawn (as ``KMeansProblem.sample_index``)."""
    L, m = idx.shape
    for l in range(L):
        if m >= n:
            for s in range(m):
                idx[l, s] = s
        else:
            _choice_into(fn, st, n, m, idx[l], hs, perm, jbuf)


@_jit
def _sbe_outer_draw_k(X, fn, st, idx, hs, perm, jbuf, x_prev, gamma, alpha):
    _draw_k(fn, st, X.shape[0], idx, hs, perm, jbuf)
    return _sbe_outer_k(X, idx, x_prev, gamma, alpha)


@_jit
def _minibatch_draw_k(X, fn, st, idx, hs, perm, jbuf, x, v):
    _draw_k(fn, st, X.shape[0], idx, hs, perm, jbuf)
    return _minibatch_k(X, idx[0], x, v)


def _bitgen(g: np.random.Generator):
    """The bit generator's ``next_uint32`` (a ctypes function pointer) and state address: compiled
    code calls it as NumPy's C code does (unboxing these costs ~5 us, a whole Generator ~50 us)."""
    c = g.bit_generator.ctypes
    return c.next_uint32, c.state_address


class Sampler:
    """Scratch for compiled draws of ``L`` mini-batches of ``m`` of ``n`` points per call.

    Examples
    --------
    >>> import numpy as np
    >>> if sampling_exact():
    ...     s = Sampler(100, 5, 2)
    ...     a = s.draw(np.random.default_rng(0))
    ...     b = np.random.default_rng(0)
    ...     assert [list(r) for r in a] == [list(b.choice(100, 5, replace=False)) for _ in range(2)]
    """

    def __init__(self, n: int, m: int, n_rows: int = 1):
        self.n, self.m = int(n), int(m)
        self.idx = np.empty((int(n_rows), self.m), np.int64)
        size = 1
        while size <= int(1.2 * self.m):
            size *= 2
        self.hs = np.empty(size, np.uint64)
        tail = self.n > 10000 and self.m > self.n // 50 and self.m < self.n
        self.perm = np.arange(self.n, dtype=np.int64) if tail else np.empty(0, np.int64)
        self.jbuf = np.empty(self.m, np.int64)

    def draw(self, g: np.random.Generator) -> np.ndarray:
        """Draw ``idx`` (``(L, m)``) from ``g``: row ``l`` is the ``l``-th ``g.choice(n, m, replace=False)``."""
        _draw_k(*_bitgen(g), self.n, self.idx, self.hs, self.perm, self.jbuf)
        return self.idx


_EXACT: bool | None = None


def sampling_exact() -> bool:
    """Whether the compiled draws reproduce NumPy's ``Generator.choice(n, m, replace=False)`` here
    (checked once per process on both of NumPy's branches); False without numba."""
    global _EXACT
    if _EXACT is None:
        ok = available
        try:
            for n, m in ((10000, 500), (20000, 500), (150, 60), (60000, 1300)):
                if not ok:
                    break
                a, b = np.random.default_rng(n + m), np.random.default_rng(n + m)
                got = Sampler(n, m, 3).draw(a)
                ok = all(np.array_equal(got[l], b.choice(n, m, replace=False)) for l in range(3))
                ok = ok and a.random() == b.random()
        except Exception:  # noqa: BLE001  # pragma: no cover - any compile/typing failure: draw in Python
            ok = False
        _EXACT = bool(ok)
    return _EXACT


def fast_sampler(n: int, m: int, n_rows: int = 1) -> Sampler | None:
    """A :class:`Sampler` where compiled draws are exact and ``n`` is in their range, else None."""
    if 1 <= n < 2 ** 31 and sampling_exact():
        return Sampler(n, m, n_rows)
    return None


def sbe_outer_draw(Xn: np.ndarray, g: np.random.Generator, sampler: Sampler, x: np.ndarray,
                   gamma: float, alpha: float) -> np.ndarray:
    """:func:`sbe_outer` with its ``imaxit`` mini-batches drawn from ``g`` inside the same
    compiled call (the draws of ``imaxit`` calls of ``g.choice(n, M, replace=False)``).

    ``Xn`` is the contiguous ``(N, d)`` data, ``x`` the ``(K, d)`` centres in its dtype."""
    return _sbe_outer_draw_k(Xn, *_bitgen(g), sampler.idx, sampler.hs, sampler.perm, sampler.jbuf, x,
                             float(gamma), float(alpha))


def minibatch_draw(Xn: np.ndarray, g: np.random.Generator, sampler: Sampler, x: np.ndarray,
                   v: np.ndarray):
    """:func:`minibatch_step` with its batch drawn from ``g`` in the same compiled call."""
    return _minibatch_draw_k(Xn, *_bitgen(g), sampler.idx, sampler.hs, sampler.perm, sampler.jbuf, x, v)


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
