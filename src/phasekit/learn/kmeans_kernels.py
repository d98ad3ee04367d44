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
(~60-80 us each, 1,000 per fit); they now cost ~6-12 us each inside the kernel.  What is left is
arithmetic: one SBE fit assigns ``omaxit * imaxit * M = 5 * 10^5`` points, 1.6x what
scikit-learn's Lloyd assigns in its ~32 iterations at 10^4 points.  The assignment scores
``|c - r|^2 - 2 (p - r).(c - r)`` (one multiply-add per feature and centre instead of the direct
sum's subtract, multiply and add) for four points at a time against blocks of 16 centres (8 in
float64): the rows of a block of points are first gathered as ``p - r`` (the random rows of a
mini-batch are loaded in parallel), then a register-blocked micro-kernel (:func:`_make_block_scores`,
LLVM IR through a numba intrinsic) keeps the 4 x 16 running scores in vector registers over the
whole sum and takes each point's least score and its first centre in vector code.  It replaced a
loop-vectorised form that kept the scores in memory (a load and a store per two features) and
searched the minimum one centre at a time; same bits, and side by side in one process on the
``kmeans_speed`` data (AMD EPYC, Zen 1, where 256-bit operations are split in two): one SBE fit
1.19x faster at K = 15, d = 30 and 1.09x at K = 50, d = 10; a full assignment pass of 10^5
points 1.13x / 1.02x.  A BLAS GEMM was not used: its summation order depends on the CPU's
kernel, and so would the labels at near ties.

Numerics: scores are measured from the reference point ``r`` (:func:`reference`, the data mean;
scikit-learn centres the data for the same reason) and summed in the data's precision in order of
the feature index (no ``fastmath``: the same bits on every x86 CPU, whatever the grouping of
points and centres); ties go to the lowest centre index as in the reference.  A NaN score (only
from overflow: inputs are checked finite) is never the least one.  The distance a
kernel returns is the direct ``sum_t (p_t - c_t)^2`` to the chosen centre, in order.  Sums and the
SBE update are accumulated in float64 and stored in the data's precision.  The kernels are
serial, so results do not depend on the thread count.  The torch reference computes distances as
``|p|^2 - 2 p.c + |c|^2`` from the origin; the two agree on the assignment except at ties within
rounding, and on sums and centres to rounding.

Used automatically for contiguous float CPU tensors when numba imports; ``PHASEKIT_NO_NUMBA=1``
forces the reference path.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np
import torch

__all__ = ["Sampler", "assign", "assign_sums", "available", "block_scores_reference", "fast_sampler", "minibatch_draw",
           "minibatch_step", "reference", "sampling_exact", "sbe_outer", "sbe_outer_draw", "usable"]


try:  # numba is optional at run time: fall back to the torch reference
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError("PHASEKIT_NO_NUMBA is set")
    import numba
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.core import types as _types
    from numba.core.errors import TypingError as _TypingError
    from numba.extending import intrinsic as _intrinsic

    # module-level functions (not closures) so that numba's on-disk cache is used
    _jit = numba.njit(cache=True, fastmath=False, nogil=True)
    available = True

    @_intrinsic
    def _next_u32(typingctx, fn, st):
        """``fn(st)``: call the C function at address ``fn`` (``uint32_t (*)(void *)``, a bit
        generator's ``next_uint32``) on the state at address ``st``.  Two integers cross the
        call boundary: a ctypes function pointer argument costs the dispatcher ~4 us per call."""
        def codegen(context, builder, signature, args):
            fnty = _ir.FunctionType(_ir.IntType(32), [_ir.IntType(8).as_pointer()])
            f = builder.inttoptr(args[0], fnty.as_pointer())
            return builder.call(f, [builder.inttoptr(args[1], _ir.IntType(8).as_pointer())])
        return _types.uint32(_types.intp, _types.intp), codegen
except ImportError:  # pragma: no cover - exercised only without numba
    available = False

    def _jit(f):
        return f



@_jit
def _centre_table(C, ref, CmT, c2p):
    """``CmT[t, j] = -2 (c_jt - r_t)`` and ``c2p[j] = |c_j - r|^2`` (summed in float64) in the
    data's dtype, for the ``K`` centres; the padding up to ``Kp`` scores ``+inf`` (never chosen)."""
    K, d = C.shape
    Kp = c2p.shape[0]
    for j in range(K):
        acc = 0.0
        for t in range(d):
            u = C[j, t] - ref[t]
            CmT[t, j] = -(u + u)
            acc += np.float64(u) * np.float64(u)
        c2p[j] = acc
    for j in range(K, Kp):
        c2p[j] = np.inf
        for t in range(d):
            CmT[t, j] = 0


# --------------------------------------------------------------------------- block scores
# The score of four points against ``W`` centres, with the 4 x W running sums in vector
# registers for the whole sum over the features (a register-blocked micro-kernel): written as
# LLVM IR because numba's loop vectoriser keeps such accumulators in memory (a load and a store
# per feature) and its SLP vectoriser, which would find this blocking, is off by default.

def _lanes(dtype, half: bool) -> int:
    """Centres per block: two 256-bit registers of the dtype (16 float32 / 8 float64) per point,
    or one (``half``) for the last block when ``K`` needs only half of one."""
    w = 16 if dtype.bitwidth == 32 else 8
    return w // 2 if half else w


def _make_block_scores(half: bool):
    """The intrinsic ``_block_scores(Y, r0, r1, r2, r3, CmT, c2p, off, best, bidx)``, see
    :func:`block_scores_reference` for what it computes (bit for bit)."""
    if not available:  # pragma: no cover - exercised only without numba
        return None

    @_intrinsic
    def _block_scores(typingctx, Y, r0, r1, r2, r3, CmT, c2p, off, best, bidx):
        for a in (Y, CmT, c2p, best, bidx):
            if not (isinstance(a, _types.Array) and a.layout == "C"):
                raise _TypingError("_block_scores needs C-contiguous arrays")
        W = _lanes(Y.dtype, half)
        ip = _types.intp
        sig = _types.void(Y, ip, ip, ip, ip, CmT, c2p, ip, best, bidx)

        def codegen(context, builder, signature, args):
            fty = context.get_value_type(Y.dtype)
            ity = context.get_value_type(_types.intp)
            i32 = _ir.IntType(32)
            vty = _ir.VectorType(fty, W)
            vp = vty.as_pointer()
            al = Y.dtype.bitwidth // 8  # element alignment: the blocks start anywhere in a row
            ya, ca, ha, ba, ia = (context.make_array(signature.args[k])(context, builder, args[k])
                                  for k in (0, 5, 6, 8, 9))
            off_ = args[7]
            d = _cgutils.unpack_tuple(builder, ya.shape, 2)[1]
            kp = _cgutils.unpack_tuple(builder, ca.shape, 2)[1]
            rows = [builder.gep(ya.data, [builder.mul(args[1 + q], d)]) for q in range(4)]
            undef = _ir.Constant(vty, _ir.Undefined)
            splat0 = _ir.Constant(_ir.VectorType(i32, W), [0] * W)

            def splat(x):
                return builder.shuffle_vector(builder.insert_element(undef, x, _ir.Constant(i32, 0)),
                                              undef, splat0)

            h = builder.load(builder.bitcast(builder.gep(ha.data, [off_]), vp), align=al)
            accs = [_cgutils.alloca_once_value(builder, h) for _ in range(4)]  # -> registers
            cbase = builder.gep(ca.data, [off_])
            with _cgutils.for_range(builder, d) as loop:  # features in order: a + y_t c_t
                t = loop.index
                cv = builder.load(builder.bitcast(builder.gep(cbase, [builder.mul(t, kp)]), vp), align=al)
                for q in range(4):
                    y = splat(builder.load(builder.gep(rows[q], [t])))
                    builder.store(builder.fadd(builder.load(accs[q]), builder.fmul(y, cv)), accs[q])
            sfx = "f32" if Y.dtype.bitwidth == 32 else "f64"
            mty = _ir.IntType(W)
            cttz = _cgutils.get_or_insert_function(
                builder.module, _ir.FunctionType(mty, [mty, _ir.IntType(1)]), f"llvm.cttz.i{W}")
            fmin = _cgutils.get_or_insert_function(builder.module, _ir.FunctionType(fty, [fty, fty]),
                                                   f"llvm.minnum.{sfx}")
            for q in range(4):
                acc = builder.load(accs[q])
                m, w = acc, W
                while w > 2:  # the least lane by halving (minnum: a NaN lane is never taken)
                    w //= 2
                    hty = _ir.VectorType(fty, w)
                    vmin = _cgutils.get_or_insert_function(
                        builder.module, _ir.FunctionType(hty, [hty, hty]), f"llvm.minnum.v{w}{sfx}")
                    lo = builder.shuffle_vector(m, m, _ir.Constant(_ir.VectorType(i32, w), list(range(w))))
                    hi = builder.shuffle_vector(m, m, _ir.Constant(_ir.VectorType(i32, w), list(range(w, 2 * w))))
                    m = builder.call(vmin, [lo, hi])
                cmin = builder.call(fmin, [builder.extract_element(m, _ir.Constant(i32, 0)),
                                           builder.extract_element(m, _ir.Constant(i32, 1))])
                # the first lane equal to it (exists unless every lane is NaN: then no update)
                eq = builder.bitcast(builder.fcmp_ordered("==", acc, splat(cmin)), mty)
                lane = builder.zext(builder.call(cttz, [eq, _ir.Constant(_ir.IntType(1), 0)]), ity)
                bq = builder.gep(ba.data, [_ir.Constant(ity, q)])
                with builder.if_then(builder.fcmp_ordered("<", cmin, builder.load(bq))):
                    builder.store(cmin, bq)
                    builder.store(builder.add(off_, lane), builder.gep(ia.data, [_ir.Constant(ity, q)]))
            return context.get_dummy_value()
        return sig, codegen
    return _block_scores


_block_scores_full = _make_block_scores(False)
_block_scores_half = _make_block_scores(True)


def block_scores_reference(Y, rows, CmT, c2p, off, W, best, bidx):
    """What the compiled block-score kernel does, in plain Python (its test twin).

    For each of the four points ``q`` (row ``rows[q]`` of ``Y``, the gathered ``p - r``) the
    scores of centres ``off .. off + W - 1`` are ``s_j = c2p[j] + sum_t Y[r, t] * CmT[t, j]``,
    summed over ``t`` in order with a rounded product and a rounded sum per term (no fused
    multiply-add).  Their least value ``m`` (NaN scores ignored) and its first centre ``j``
    replace ``best[q], bidx[q]`` when ``m < best[q]``: blocks visited in increasing ``off`` keep
    the lowest index among equal scores.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.array([[1.0], [2.0], [0.0], [0.0]], np.float32)
    >>> CmT = np.array([[-2.0, 0.0]], np.float32); c2p = np.array([1.0, 0.0], np.float32)
    >>> best, bidx = np.full(4, np.inf, np.float32), np.zeros(4, np.int64)
    >>> block_scores_reference(Y, (0, 1, 2, 3), CmT, c2p, 0, 2, best, bidx)
    >>> bidx.tolist()
    [0, 0, 1, 1]
    """
    for q in range(4):
        s = c2p[off:off + W].copy()
        for t in range(Y.shape[1]):
            s = s + Y[rows[q], t] * CmT[t, off:off + W]
        m, jm = np.nan, 0
        for j in range(W):
            if not np.isnan(s[j]) and (np.isnan(m) or s[j] < m):
                m, jm = s[j], j
        if m < best[q]:
            best[q], bidx[q] = m, off + jm


_CHUNK = 128  # points gathered per block (a (128, d) block of p - r stays in L1/L2)


@_jit
def _scratch(X, K):
    """The scratch of :func:`_assign_core` for ``K`` centres: ``CmT`` (``(d, Kp)``, ``Kp`` = ``K``
    rounded up to half a block), ``c2p``, the gathered rows ``Y`` and the running minima."""
    d = X.shape[1]
    h = 8 if X.itemsize == 4 else 4
    Kp = (K + h - 1) // h * h
    return (np.empty((d, Kp), X.dtype), np.empty(Kp, X.dtype), np.empty((_CHUNK, d), X.dtype),
            np.empty(4, X.dtype), np.empty(4, np.int64))


@_jit
def _assign_core(X, idx, C, ref, labels, mins, sums, counts, with_sums, with_mins, CmT, c2p, Y, best, bidx):
    """Nearest centre of the rows ``X[idx]`` (``idx`` None: all rows) by the score
    ``|c_j - r|^2 - 2 (p - r).(c_j - r)``, ties to the lowest ``j``; optionally the direct squared
    distance to it (``mins``) and the per-cluster sums (float64) and counts.

    Blocks of up to ``_CHUNK`` rows are first gathered as ``p - r`` into the contiguous ``Y``
    (independent loads: the random rows of a mini-batch arrive in parallel).  Then four points at
    a time are scored against blocks of 16 centres (8 in float64; a half block ends an odd
    ``Kp``) by the block-score kernel, which keeps the sums in registers and takes the least score
    of a block in vector code.  Each score is summed over ``t`` in order (no reassociation, no
    fused multiply-add), so the bits do not depend on the CPU or on the grouping."""
    d = C.shape[1]
    n = X.shape[0] if idx is None else idx.shape[0]
    Kp = c2p.shape[0]
    W = 16 if X.itemsize == 4 else 8
    nfull = Kp // W * W
    _centre_table(C, ref, CmT, c2p)
    zero = X.dtype.type(0)
    inf = X.dtype.type(np.inf)
    if with_sums:
        sums[:] = 0.0
        counts[:] = 0
    for s0 in range(0, n, _CHUNK):
        nb = min(_CHUNK, n - s0)
        for i in range(nb):  # gather p - r (the rows of a short last group of four repeat)
            xi = X[s0 + i if idx is None else idx[s0 + i]]
            yi = Y[i]
            for t in range(d):
                yi[t] = xi[t] - ref[t]
        for s in range(0, nb, 4):
            for q in range(4):
                best[q] = inf
                bidx[q] = 0
            r1, r2, r3 = min(s + 1, nb - 1), min(s + 2, nb - 1), min(s + 3, nb - 1)
            for off in range(0, nfull, W):
                _block_scores_full(Y, s, r1, r2, r3, CmT, c2p, off, best, bidx)
            if nfull < Kp:
                _block_scores_half(Y, s, r1, r2, r3, CmT, c2p, nfull, best, bidx)
            for q in range(min(4, nb - s)):
                b = bidx[q]
                i = s0 + s + q
                labels[i] = b
                xi = X[i if idx is None else idx[i]]
                if with_mins:  # the direct squared distance to the chosen centre, summed in order
                    acc = zero
                    cb_ = C[b]
                    for t in range(d):
                        e = xi[t] - cb_[t]
                        acc += e * e
                    mins[i] = acc
                if with_sums:
                    counts[b] += 1
                    sb = sums[b]
                    for t in range(d):
                        sb[t] += xi[t]


@_jit
def _assign_sums_k(X, idx, C, ref, labels, mins, sums, counts, with_sums, with_mins):
    """:func:`_assign_core` with its own scratch."""
    CmT, c2p, Y, best, bidx = _scratch(X, C.shape[0])
    _assign_core(X, idx, C, ref, labels, mins, sums, counts, with_sums, with_mins, CmT, c2p, Y, best, bidx)


@_jit
def _sbe_outer_k(X, ref, idx, x_prev, gamma, alpha):
    n_inner, M = idx.shape
    K, d = x_prev.shape
    xk = x_prev.copy()
    y = x_prev.copy()
    sums = np.empty((K, d), np.float64)
    counts = np.empty(K, np.int64)
    labels = np.empty(M, np.int64)
    mins = np.empty(M, X.dtype)
    CmT, c2p, Y, best, bidx = _scratch(X, K)  # once per outer step
    for l in range(n_inner):
        _assign_core(X, idx[l], y, ref, labels, mins, sums, counts, True, False, CmT, c2p, Y, best, bidx)
        # y^l = x^{k-1} - gamma (1/M) [c_j y_j^{l-1} - sum_{C_j} p]_j ; x^k <- a x^k + (1-a) y^l
        for j in range(K):
            for t in range(d):
                grad = (counts[j] * np.float64(y[j, t]) - sums[j, t]) / M
                y[j, t] = x_prev[j, t] - gamma * grad
                xk[j, t] = alpha * np.float64(xk[j, t]) + (1.0 - alpha) * np.float64(y[j, t])
    return xk


@_jit
def _minibatch_k(X, ref, idx, x, v):
    K, d = x.shape
    M = idx.shape[0]
    sums = np.empty((K, d), np.float64)
    counts = np.empty(K, np.int64)
    _assign_sums_k(X, idx, x, ref, np.empty(M, np.int64), np.empty(M, X.dtype), sums, counts, True, False)
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
# hash set -- here a bitmap up to 2**24 points, the same membership answers -- and a final
# shuffle when ``n <= 10000`` or ``m <= n // 50``, else a partial Fisher-Yates shuffle of the
# tail).  It saves the ~60 us of Python per draw that made the mini-batch draws a third of an SBE
# fit at 10^4 points.  :func:`sampling_exact` checks it
# against NumPy once per process; where it differs (another NumPy), the draws stay in Python.

@_jit
def _bounded(fn, st, rng):  # fn, st: addresses of the bit generator's next_uint32 and state
    """A uniform integer in ``[0, rng]`` as NumPy's ``random_bounded_uint64(.., 0, rng, ..)``
    for ``1 <= rng < 2**32 - 1`` (Lemire's multiply-and-reject on 32-bit words)."""
    rng_excl = np.uint64(rng) + np.uint64(1)
    low = np.uint64(0xFFFFFFFF)
    m = np.uint64(_next_u32(fn, st)) * rng_excl
    leftover = m & low
    if leftover < rng_excl:
        threshold = (low - np.uint64(rng)) % rng_excl
        while leftover < threshold:
            m = np.uint64(_next_u32(fn, st)) * rng_excl
            leftover = m & low
    return np.int64(m >> np.uint64(32))


@_jit
def _choice_into(fn, st, n, m, out, hs, perm, jbuf, bits):
    """``out[:m] = g.choice(n, m, replace=False)`` (``1 <= m < n < 2**32 - 1``).

    ``hs`` is the hash-set scratch (at least the next power of two above ``1.2 m``), ``perm``
    ``arange(n)`` (read and restored; only used for the tail-shuffle branch), ``jbuf`` ``m``
    integers of scratch, ``bits`` a zeroed bitmap of at least ``n`` bits or empty (left zeroed).

    Floyd's algorithm asks only whether a value was drawn before; the answer is the same from
    NumPy's hash set or from a bitmap, so the words consumed and the draws are too.  The bitmap
    (used where ``Sampler`` allocates one, ``n <= 2**24``: at most 2 MiB) takes one bit test per
    draw where the hash set's probes cost about one mispredicted branch: 500 of 10^4 points,
    12.6 -> 9.1 us per draw, and one SBE outer step 634 -> 595 us (mix15; 703 -> 671 us skew50),
    old and new side by side in one process on the Zen 1 ``kmeans_speed`` host."""
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
    if bits.shape[0] * 64 >= n:  # membership in a bitmap of n bits (same answers as NumPy's hash set)
        for j in range(n - m, n):
            val = _bounded(fn, st, j) if j > 0 else 0
            w = val >> 6
            b = np.uint64(1) << np.uint64(val & 63)
            if bits[w] & b:  # already drawn: take j (never drawn, every value so far is < j)
                val = j
                w = val >> 6
                b = np.uint64(1) << np.uint64(val & 63)
            bits[w] |= b
            out[j - n + m] = val
        for s in range(m):  # clear the bitmap: every set bit is a drawn value's
            bits[out[s] >> 6] = 0
        _shuffle(fn, st, out, m)
        return
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
    _shuffle(fn, st, out, m)


@_jit
def _shuffle(fn, st, out, m):
    """NumPy's in-place shuffle of ``out[:m]`` after Floyd's draws (Fisher-Yates from the end)."""
    for i in range(m - 1, 0, -1):
        j = _bounded(fn, st, i)
        tmp = out[j]
        out[j] = out[i]
        out[i] = tmp


@_jit
def _draw_k(fn, st, n, idx, hs, perm, jbuf, bits):
    """Fill every row of ``idx`` (``(L, m)``) with one :func:`_choice_into` draw, in order;
    ``m >= n``: every row is ``arange(n)`` and nothing is drawn (as ``KMeansProblem.sample_index``)."""
    L, m = idx.shape
    for l in range(L):
        if m >= n:
            for s in range(m):
                idx[l, s] = s
        else:
            _choice_into(fn, st, n, m, idx[l], hs, perm, jbuf, bits)


@_jit
def _sbe_outer_draw_k(X, ref, fn, st, idx, hs, perm, jbuf, bits, x_prev, gamma, alpha):
    _draw_k(fn, st, X.shape[0], idx, hs, perm, jbuf, bits)
    return _sbe_outer_k(X, ref, idx, x_prev, gamma, alpha)


@_jit
def _minibatch_draw_k(X, ref, fn, st, idx, hs, perm, jbuf, bits, x, v):
    _draw_k(fn, st, X.shape[0], idx, hs, perm, jbuf, bits)
    return _minibatch_k(X, ref, idx[0], x, v)


def _bitgen(g: np.random.Generator):
    """The addresses of the bit generator's ``next_uint32`` and of its state, as integers: compiled
    code calls it as NumPy's C code does (unboxing a whole Generator costs ~50 us).  ``g`` must
    outlive their use (:class:`Sampler` keeps the last one with its addresses)."""
    c = g.bit_generator.ctypes
    return ctypes.cast(c.next_uint32, ctypes.c_void_p).value, c.state_address


_BITMAP_MAX = 1 << 24  # Floyd's membership test in a bitmap (at most 2 MiB) up to this n


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
        floyd = not tail and self.m < self.n
        self.bits = np.zeros((self.n + 63) // 64 if floyd and self.n <= _BITMAP_MAX else 0, np.uint64)
        #: the compiled draws' arguments after ``n``: ``idx, hs, perm, jbuf, bits``
        self.scratch = (self.idx, self.hs, self.perm, self.jbuf, self.bits)
        self._g = self._addr = None

    def bitgen(self, g: np.random.Generator) -> tuple[int, int]:
        """:func:`_bitgen` of ``g``, remembered with ``g`` itself (which it keeps alive)."""
        if g is not self._g:
            self._addr = _bitgen(g)
            self._g = g
        return self._addr

    def draw(self, g: np.random.Generator) -> np.ndarray:
        """Draw ``idx`` (``(L, m)``) from ``g``: row ``l`` is the ``l``-th ``g.choice(n, m, replace=False)``."""
        _draw_k(*self.bitgen(g), self.n, *self.scratch)
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
                   gamma: float, alpha: float, ref: np.ndarray | None = None) -> np.ndarray:
    """:func:`sbe_outer` with its ``imaxit`` mini-batches drawn from ``g`` inside the same
    compiled call (the draws of ``imaxit`` calls of ``g.choice(n, M, replace=False)``).

    ``Xn`` is the contiguous ``(N, d)`` data, ``x`` the ``(K, d)`` centres in its dtype, ``ref``
    its :func:`reference` point (computed when None)."""
    return _sbe_outer_draw_k(Xn, _ref(Xn, ref), *sampler.bitgen(g), *sampler.scratch, x, float(gamma),
                             float(alpha))


def minibatch_draw(Xn: np.ndarray, g: np.random.Generator, sampler: Sampler, x: np.ndarray,
                   v: np.ndarray, ref: np.ndarray | None = None):
    """:func:`minibatch_step` with its batch drawn from ``g`` in the same compiled call."""
    return _minibatch_draw_k(Xn, _ref(Xn, ref), *sampler.bitgen(g), *sampler.scratch, x, v)


def usable(*ts: torch.Tensor) -> bool:
    """Whether the compiled kernels can run on these tensors (CPU, float32/float64, no grad)."""
    return available and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
                             and not t.requires_grad for t in ts)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


def reference(Xn: np.ndarray) -> np.ndarray:
    """The point the kernels measure points and centres from: the column mean of ``Xn`` (summed
    in float64), in its dtype.  Scores ``|c|^2 - 2 p.c`` lose digits as ``|p|^2 / |p - c|^2``
    grows; relative to the mean, as scikit-learn centres the data, they keep them.

    Examples
    --------
    >>> import numpy as np
    >>> reference(np.array([[1.0, 2.0], [3.0, 6.0]])).tolist()
    [2.0, 4.0]
    """
    return Xn.mean(axis=0, dtype=np.float64).astype(Xn.dtype)


def _ref(Xn: np.ndarray, ref) -> np.ndarray:
    return reference(Xn) if ref is None else np.ascontiguousarray(ref, dtype=Xn.dtype)


def assign(X: torch.Tensor, C: torch.Tensor, ref: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each row of ``X`` and the squared distance to it (ties: lowest index).

    The nearest centre is the one of least score ``|c - r|^2 - 2 (p - r).(c - r)`` with ``r``
    the :func:`reference` point (``ref``; computed from ``X`` when None); the distance returned is
    the direct ``sum_t (p_t - c_t)^2`` to that centre.

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
    _assign_sums_k(Xn, None, Cn, _ref(Xn, ref), labels, mins, np.empty((1, 1)), np.empty(1, np.int64),
                   False, True)
    return torch.from_numpy(labels), torch.from_numpy(mins)


def assign_sums(X: torch.Tensor, C: torch.Tensor, idx: np.ndarray | None = None,
                ref: np.ndarray | None = None, *, with_mins: bool = True):
    """:func:`assign` plus per-cluster sums (float64, ``(K, d)``) and counts (int64, ``(K,)``)
    of the rows ``X[idx]`` (``idx`` None: all rows, in order).  ``with_mins=False`` skips the
    distances (returned as None; a Lloyd iteration needs only the sums).

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
    labels, mins = np.empty(n, np.int64), np.empty(n if with_mins else 1, Xn.dtype)
    sums, counts = np.empty((k, d), np.float64), np.empty(k, np.int64)
    _assign_sums_k(Xn, idx, Cn, _ref(Xn, ref), labels, mins, sums, counts, True, bool(with_mins))
    return (torch.from_numpy(labels), torch.from_numpy(mins) if with_mins else None, torch.from_numpy(sums),
            torch.from_numpy(counts))


def sbe_outer(X: torch.Tensor, idx: np.ndarray, x: torch.Tensor, gamma: float, alpha: float,
              ref: np.ndarray | None = None) -> torch.Tensor:
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
    out = _sbe_outer_k(Xn, _ref(Xn, ref), np.ascontiguousarray(idx, dtype=np.int64), _np(x).astype(Xn.dtype, copy=False),
                     float(gamma), float(alpha))
    return torch.from_numpy(out)


def minibatch_step(X: torch.Tensor, idx: np.ndarray, x: torch.Tensor, v: torch.Tensor,
                   ref: np.ndarray | None = None):
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
    xn, vn = _minibatch_k(Xn, _ref(Xn, ref), np.ascontiguousarray(idx, dtype=np.int64), _np(x).astype(Xn.dtype, copy=False),
                          _np(v).astype(Xn.dtype, copy=False))
    return torch.from_numpy(xn), torch.from_numpy(vn)
