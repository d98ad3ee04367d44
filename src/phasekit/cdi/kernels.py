"""Hot elementwise steps of the CDI iterations: a plain-torch reference (what CUDA runs and what
the tests compare against) and fused single-pass CPU kernels compiled with numba.

Why: on the CPU, torch's complex elementwise operations are slow (``abs``/``sgn`` of a 256^2
complex64 array cost about half an FFT pair, and every extra temporary costs a pass over memory),
so an iteration written naively costs 2-3x its FFTs.  Each kernel here does one pass over memory:

* :func:`fourier_project` -- modulus projection on measured pixels (unmeasured pixels free);
* :func:`realspace_update` -- ER / HIO / RAAR real-space step with support, realness and
  positivity (one definition of each rule; see :mod:`phasekit.cdi.algorithms`); on real
  tensors (a real object on real FFTs) the real-array kernels; on complex tensors without
  realness or positivity the same rule per component, on the float views and the support
  repeated per component (:func:`lane_mask`);
* :func:`fourier_project_half` / :func:`rfactor_numerator_half` -- the projection and R-factor
  of a real object on its Hermitian half spectrum (:mod:`phasekit.cdi.halfspectrum`).

The numba kernels are used automatically for contiguous CPU tensors when numba imports; set
``PHASEKIT_NO_NUMBA=1`` to force the reference path.
"""
from __future__ import annotations

import os
import weakref

import numpy as np
import torch

from ..core.threads import PARALLEL_MIN_ELEMENTS
from ..operators.projections import apply_constraints, modulus_projection_
from .halfspectrum import project_half_reference, rfactor_numerator_half_reference

ER, HIO, RAAR = 0, 1, 2
_MODES = {"er": ER, "hio": HIO, "raar": RAAR}

def _build_numba_kernels(parallel: bool):  # pragma: no cover - compiled code
    """Compile the fused kernels.  They are written branch-free (selects, no reductions) so that
    LLVM vectorises them."""
    rng = numba.prange if parallel else range
    _BLOCK = 4096  # pixels per block of the modulus projection (32 KiB of complex64)
    jit = numba.njit(fastmath=True, cache=True, parallel=parallel)
    # kernels that store a modulus projection: strict IEEE arithmetic (see operators/modulus.py);
    # their on-disk cache also goes stale when operators/modulus.py, whose helpers they inline,
    # changes (jit_with_helpers)
    strict = jit_with_helpers(fastmath=False, error_model="numpy", parallel=parallel)

    @strict
    def fourier_project(z, amp, meas):
        # the fast pass (bits of project_pixel where it applies), then the exact rule on the rare
        # pixels it leaves unchanged (zero, tiny, huge, non-finite): see operators/modulus.py and
        # _project_block.  Block by block (32 KiB of complex64, in L1 for the fix-up)
        zf = z.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        n = zf.size
        for bi in rng((n + _BLOCK - 1) // _BLOCK):
            lo = bi * _BLOCK
            hi = min(lo + _BLOCK, n)
            _project_block(zf[lo:hi], af[lo:hi], mf[lo:hi])

    # the ER / HIO / RAAR rules on complex arrays.  Scalars come in the arrays' real type and
    # ``zero`` replaces the literal 0 (numba promotes ``float32 * 0`` and a float64 ``beta`` to
    # float64, which kept LLVM from vectorising: the HIO pass cost 146 us instead of 107 on a
    # 256^2 complex64 array, AMD EPYC); conditions combine with bitwise & | (no short-circuit)
    @jit
    def er_update(x, y, supp, real, positive, zero):
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        for i in rng(xf.size):
            v = yf[i]
            r = v.real
            im = zero if real else v.imag
            r = max(r, zero) if positive else r
            s = sf[i]
            xf[i] = complex(r if s else zero, im if s else zero)

    @jit
    def hio_update(x, y, supp, beta, real, positive, zero):
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        nopos = not positive
        for i in rng(xf.size):
            v = yf[i]
            yr = v.real
            yi = zero if real else v.imag
            u = xf[i]
            g = sf[i] & (nopos | (yr >= zero))
            xf[i] = complex(yr if g else u.real - beta * yr, yi if g else u.imag - beta * yi)

    @jit
    def raar_update(x, y, supp, beta, c, real, positive, zero):
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        nopos = not positive
        for i in rng(xf.size):
            v = yf[i]
            yr = v.real
            yi = zero if real else v.imag
            u = xf[i]
            g = sf[i] & (nopos | ((yr + yr) - u.real >= zero))
            xf[i] = complex(yr if g else beta * u.real + c * yr, yi if g else beta * u.imag + c * yi)

    # the same rules without realness or positivity (the common complex case), where the rule
    # acts on the real and the imaginary part alike: on the float views of the arrays (re, im
    # interleaved) with the support repeated per component (:func:`lane_mask`), a plain float
    # loop that LLVM vectorises at full width.  HIO: 34 us instead of 107 us for 256^2 complex64
    # (one AMD EPYC core, data in cache); inside the iteration, where the FFTs have evicted the
    # data, the pass went from 217 to 145 us (256^2) and from 851 to 599 us (512^2)
    @jit
    def er_update_l(x, y, s2, zero):
        for i in rng(x.size):
            v = y[i]
            x[i] = v if s2[i] else zero

    @jit
    def hio_update_l(x, y, s2, beta):
        for i in rng(x.size):
            v = y[i]
            u = x[i]
            x[i] = v if s2[i] else u - beta * v

    @jit
    def raar_update_l(x, y, s2, beta, c):
        for i in rng(x.size):
            v = y[i]
            u = x[i]
            x[i] = v if s2[i] else beta * u + c * v

    @strict
    def rfactor_numerator(z, amp, meas, project):
        # the R-factor numerator of z over fixed blocks of _BLOCK pixels, each summed by
        # _rsum_block, the block sums added in block order (_total): the result does not depend
        # on the number of threads.  With ``project`` each block is then modulus-projected in
        # place (fourier_project's rule) while it is in L1: ER's metrics and its next step's
        # projection in one pass over z, the same values as the two separate calls.  (Blocks as
        # slices indexed from 0: a loop over range(lo, hi) on the whole arrays was vectorised
        # with gathers on an AVX-512 Xeon and took 4x longer.)
        zf = z.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        n = zf.size
        nb = (n + _BLOCK - 1) // _BLOCK
        sub = np.empty(nb)
        for bi in rng(nb):
            lo = bi * _BLOCK
            hi = min(lo + _BLOCK, n)
            zb = zf[lo:hi]
            ab = af[lo:hi]
            mb = mf[lo:hi]
            sub[bi] = _rsum_block(zb, ab, mb)
            if project:
                _project_block(zb, ab, mb)
        return _total(sub)

    @strict
    def gps_primal(out, z, fy, amp, meas, t, eps):
        # GPS G1-G2: w = z - t F y; out = (1 - eps) P~_m w + eps w on measured pixels, w elsewhere
        of = out.ravel()
        zf = z.ravel()
        ff = fy.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        c = 1.0 - eps
        nbad = np.int32(0)
        for i in rng(of.size):
            wr = zf[i].real - t * ff[i].real
            wi = zf[i].imag - t * ff[i].imag
            pr, pi, ok, bad = project_fast(wr, wi, af[i], mf[i])
            nbad = max(nbad, np.int32(bad))
            of[i] = complex(c * pr + eps * wr if ok else wr, c * pi + eps * wi if ok else wi)
        if nbad:  # the exact rule on the rare pixels the fast pass leaves (see fourier_project)
            for i in range(of.size):
                wr = zf[i].real - t * ff[i].real
                wi = zf[i].imag - t * ff[i].imag
                if mf[i] and not fast_ok(wr, wi):
                    pr, pi = project_pixel(wr, wi, af[i])
                    of[i] = complex(c * pr + eps * wr, c * pi + eps * wi)

    @jit
    def gps_dual(yhalf, est, y, u_new, u_old, s, supp, real, positive):
        # GPS G3: v = y + s (2 u_new - u_old); yhalf = v - P_C v; est = P_C u_new
        hf = yhalf.ravel()
        ef = est.ravel()
        yf = y.ravel()
        nf = u_new.ravel()
        of = u_old.ravel()
        sf = supp.ravel()
        for i in rng(hf.size):
            n = nf[i]
            vr = yf[i].real + s * (2 * n.real - of[i].real)
            vi = yf[i].imag + s * (2 * n.imag - of[i].imag)
            ins = sf[i]
            pr = max(vr, vr * 0) if positive else vr
            pr = pr if ins else pr * 0
            pi = vi * 0 if (real or not ins) else vi
            hf[i] = complex(vr - pr, vi - pi)
            er = max(n.real, n.real * 0) if positive else n.real
            ei = n.imag * 0 if real else n.imag
            ef[i] = complex(er if ins else er * 0, ei if ins else ei * 0)

    @jit
    def scale_real(z, w):
        # z <- z * w for complex z and real w (a filter)
        zf = z.ravel()
        wf = w.ravel()
        for i in rng(zf.size):
            zf[i] = zf[i] * wf[i]

    @strict
    def fourier_project_half(z, amp, proj, keep):
        # the half-spectrum projection of a real object (see cdi/halfspectrum.py):
        # P~(z; amp) + keep z on proj pixels, z elsewhere; blocked as fourier_project
        zf = z.ravel()
        af = amp.ravel()
        pf = proj.ravel()
        kf = keep.ravel()
        n = zf.size
        for bi in rng((n + _BLOCK - 1) // _BLOCK):
            lo = bi * _BLOCK
            hi = min(lo + _BLOCK, n)
            _project_half_block(zf[lo:hi], af[lo:hi], pf[lo:hi], kf[lo:hi])

    # the ER / HIO / RAAR rules on real arrays (a real object on real FFTs).  Written branch-free
    # (bitwise & |, no short-circuit) and with beta, c in the arrays' dtype (the caller casts):
    # 4x faster than the branchy float64 form on a 256^2 float32 HIO step (AMD EPYC)
    @jit
    def er_update_r(x, y, supp, positive, zero):
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        for i in rng(xf.size):
            r = yf[i]
            r = max(r, zero) if positive else r
            xf[i] = r if sf[i] else zero

    @jit
    def hio_update_r(x, y, supp, beta, positive):
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        nopos = not positive
        for i in rng(xf.size):
            yr = yf[i]
            g = sf[i] & (nopos | (yr >= yr * 0))
            u = xf[i]
            v = u - beta * yr
            xf[i] = yr if g else v

    @jit
    def raar_update_r(x, y, supp, beta, c, positive, zero):
        # ``(yr + yr) - u`` and ``zero``: the float64 ``2 * yr`` cost 1.4x with positivity
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        nopos = not positive
        for i in rng(xf.size):
            yr = yf[i]
            u = xf[i]
            t = (yr + yr) - u
            g = sf[i] & (nopos | (t >= zero))
            v = beta * u + c * yr
            xf[i] = yr if g else v

    @strict
    def rfactor_numerator_half(z, a1, m1, a2, m2, amp, proj, keep, project):
        # the R-factor numerator from the half spectrum (paired columns count twice, m2), in
        # fixed blocks as rfactor_numerator; with ``project`` each block is then projected
        # (fourier_project_half's rule with amp, proj, keep) while it is in L1
        zf = z.ravel()
        a1f = a1.ravel()
        m1f = m1.ravel()
        a2f = a2.ravel()
        m2f = m2.ravel()
        af = amp.ravel()
        pf = proj.ravel()
        kf = keep.ravel()
        n = zf.size
        nb = (n + _BLOCK - 1) // _BLOCK
        sub = np.empty(nb)
        for bi in rng(nb):
            lo = bi * _BLOCK
            hi = min(lo + _BLOCK, n)
            zb = zf[lo:hi]
            sub[bi] = _rsum_half_block(zb, a1f[lo:hi], m1f[lo:hi], a2f[lo:hi], m2f[lo:hi])
            if project:
                _project_half_block(zb, af[lo:hi], pf[lo:hi], kf[lo:hi])
        return _total(sub)

    return (fourier_project, er_update, hio_update, raar_update, rfactor_numerator, gps_primal,
            gps_dual, scale_real, fourier_project_half, er_update_r, hio_update_r, raar_update_r,
            rfactor_numerator_half, er_update_l, hio_update_l, raar_update_l)


#: block length of the deterministic (thread-count independent) reductions
REDUCE_BLOCK = 1 << 14

try:  # numba is optional at run time: fall back to the torch reference
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    import numba

    from ..operators.modulus import (
        fast_ok,
        jit_with_helpers,
        project_fast,
        project_pixel,
    )

    # block helpers of the projection and R-factor kernels: module-level functions (numba's
    # on-disk cache keys a kernel that calls closure-defined kernels on the pickled closure, and
    # never finds it), each compiled with its own floating-point flags
    _strict1 = jit_with_helpers(fastmath=False, error_model="numpy")
    _fast1 = numba.njit(fastmath=True, cache=True)

    @_strict1
    def _project_block(zb, ab, mb):  # pragma: no cover - compiled code
        # the fast pass (bits of project_pixel where it applies), then the exact rule on the rare
        # pixels it leaves unchanged (zero, tiny, huge, non-finite): see operators/modulus.py.
        # The fast pass leaves those pixels as they were and marks them in a block mask, and the
        # fix-up takes the marked ones (not a fast_ok test after the pass: a pixel projected
        # onto a zero or tiny amplitude fails fast_ok afterwards, and projecting it again would
        # change its bits).  The mask replaced a copy of the block's input: 57 -> 47 us for
        # 256^2 complex64 (one Intel Xeon core), the same bits.
        kb = np.empty(zb.size, np.bool_)  # the pixels the fast pass left
        nbad = np.int32(0)
        for j in range(zb.size):
            v = zb[j]
            re2, im2, _ok, bad = project_fast(v.real, v.imag, ab[j], mb[j])
            nbad = max(nbad, np.int32(bad))
            kb[j] = bad
            zb[j] = complex(re2, im2)  # (v itself where bad)
        if nbad:
            for j in range(zb.size):
                if kb[j]:
                    v = zb[j]
                    re2, im2 = project_pixel(v.real, v.imag, ab[j])
                    zb[j] = complex(re2, im2)

    @_strict1
    def _project_half_block(zb, ab, pb, kb):  # pragma: no cover - compiled code
        # the half-spectrum projection of one block: P~(z; amp) + keep z on proj pixels
        xb = np.empty(zb.size, np.bool_)  # the pixels the fast pass left (as they were)
        nbad = np.int32(0)
        for j in range(zb.size):
            v = zb[j]
            re2, im2, _ok, bad = project_fast(v.real, v.imag, ab[j], pb[j])
            nbad = max(nbad, np.int32(bad))
            xb[j] = bad
            c = kb[j]
            h = (c > 0) & (not bad)
            zb[j] = complex(re2 + c * v.real if h else re2, im2 + c * v.imag if h else im2)
        if nbad:
            for j in range(zb.size):
                if xb[j]:
                    v = zb[j]
                    re2, im2 = project_pixel(v.real, v.imag, ab[j])
                    c = kb[j]
                    h = c > 0
                    zb[j] = complex(re2 + c * v.real if h else re2, im2 + c * v.imag if h else im2)

    @_fast1
    def _rsum_block(zb, ab, mb):  # pragma: no cover - compiled code
        # sum over the measured pixels of a block of | |z| - b |, in float64 (vectorised and
        # reassociated: the same bits run to run on a host, and in every kernel that calls it)
        acc = 0.0
        for i in range(zb.size):
            v = zb[i]
            d = abs(np.sqrt(v.real * v.real + v.imag * v.imag) - ab[i])
            acc += d if mb[i] else d * 0
        return acc

    @_fast1
    def _rsum_half_block(zb, a1, m1, a2, m2):  # pragma: no cover - compiled code
        # the same on a block of a half spectrum: paired columns count twice (m2)
        acc = 0.0
        for i in range(zb.size):
            v = zb[i]
            az = np.sqrt(v.real * v.real + v.imag * v.imag)
            d1 = abs(az - a1[i])
            d2 = abs(az - a2[i])
            acc += (d1 if m1[i] else d1 * 0) + (d2 if m2[i] else d2 * 0)
        return acc

    @_strict1
    def _total(sub):  # pragma: no cover - compiled code
        # the block sums in block order
        tot = 0.0
        for k in range(sub.size):
            tot += sub[k]
        return tot

    _SERIAL = _build_numba_kernels(False)
    _PARALLEL = _build_numba_kernels(True)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

#: arrays with at least this many elements use the multi-threaded kernels
PARALLEL_THRESHOLD = PARALLEL_MIN_ELEMENTS  # (core.threads: where a second thread pays)


def _k(n: int):
    return _PARALLEL if n >= PARALLEL_THRESHOLD else _SERIAL


def _fused_ok(*ts: torch.Tensor) -> bool:
    # (``t.is_cpu`` and a plain loop: ``t.device.type`` builds a device object, and the check
    # of three tensors took ~6 us, more than a 32^2 kernel)
    if not HAVE_NUMBA:
        return False
    for t in ts:
        if not t.is_cpu or t.requires_grad or not t.is_contiguous():
            return False
    return True


_VIEWS: dict = {}


def _sv(t: torch.Tensor) -> np.ndarray:
    """The NumPy view of a long-lived tensor (data, mask, support, filter), cached by identity and
    checked against its data pointer and version counter (``Tensor.numpy()`` costs ~2.5 us, about
    a 128^2 pass; the check ~1 us).  Every in-place operation bumps the version, so a view is
    made again after an in-place change of shape or strides (``resize_``, ``unsqueeze_``, ``t_``)
    -- and, needlessly but harmlessly, after an in-place change of values; a ``.data``
    assignment (which does not bump it) moves the data pointer."""
    e = _VIEWS.get(id(t))
    if e is not None and e[0]() is t and e[2] == t.data_ptr() and e[3] == t._version:
        return e[1]
    if len(_VIEWS) > 256:
        _VIEWS.clear()
    a = t.numpy()
    _VIEWS[id(t)] = (weakref.ref(t), a, t.data_ptr(), t._version)
    return a


_SCALARS: dict = {}


def _scalar(dt, v: float):
    """``dt(v)`` (a NumPy float32 / float64 scalar), cached: NumPy builds one in ~0.9 us, and the
    kernels take their scalars in the arrays' precision (a Python float would widen their
    arithmetic to float64)."""
    k = (dt, float(v))
    r = _SCALARS.get(k)
    if r is None:
        if len(_SCALARS) > 1024:
            _SCALARS.clear()
        r = _SCALARS[k] = dt(k[1])
    return r


def fourier_project(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor, *,
                    fused: bool | None = None) -> None:
    """In place ``z <- P~_m z``: modulus ``amp`` on measured pixels, phase kept (phase 1 where
    ``z = 0``), unmeasured pixels unchanged."""
    if fused is None:
        fused = _fused_ok(z, amp, measured)
    if fused:
        _k(z.numel())[0](z.numpy(), _sv(amp), _sv(measured))
    else:
        modulus_projection_(z, amp, measured)


def fourier_project_half(z: torch.Tensor, hs, *, fused: bool | None = None) -> None:
    """In place on a half spectrum ``z`` (a real object's ``rfftn``): the half-spectrum form of
    the modulus projection followed by the real part, ``P~(z; b_h) + keep z`` on ``hs.proj``
    pixels (see :mod:`phasekit.cdi.halfspectrum`; ``hs`` is a
    :class:`~phasekit.cdi.halfspectrum.HalfSpectrum`)."""
    if fused is None:
        fused = _fused_ok(z, hs.amp, hs.proj, hs.keep)
    if fused:
        _k(z.numel())[8](z.numpy(), _sv(hs.amp), _sv(hs.proj), _sv(hs.keep))
    else:
        project_half_reference(z, hs)


def _half_views(hs, project: bool) -> tuple:
    """The NumPy views the half-spectrum R-factor kernel takes: ``a1, m1, a2, m2`` (its sums)
    and, with ``project``, ``amp, proj, keep`` (the projection it applies on the way); without,
    ``a1, m1, a2`` stand in their places (same types, not read: three views fewer to make)."""
    a1, m1, a2, m2 = _sv(hs.a1), _sv(hs.m1), _sv(hs.a2), _sv(hs.m2)
    if project:
        return a1, m1, a2, m2, _sv(hs.amp), _sv(hs.proj), _sv(hs.keep)
    return a1, m1, a2, m2, a1, m1, a2


def rfactor_numerator_half(z: torch.Tensor, hs, *, fused: bool | None = None) -> float:
    """``sum_measured | |Z| - b |`` over the full grid from the half spectrum ``z`` of a real
    image (paired columns count twice; see :mod:`phasekit.cdi.halfspectrum`)."""
    if fused is None:
        fused = _fused_ok(z, hs.a1, hs.m1, hs.a2, hs.m2)
    if fused:
        return float(_k(z.numel())[12](z.numpy(), *_half_views(hs, False), False))
    return rfactor_numerator_half_reference(z, hs)


def rfactor_numerator(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor) -> float:
    """``sum_measured | |z| - b |`` (the numerator of the R-factor, thesis eq. (2.21))."""
    if _fused_ok(z, amp, measured):
        return float(_k(z.numel())[4](z.numpy(), _sv(amp), _sv(measured), False))
    return float(((z.abs() - amp).abs() * measured).sum(dtype=torch.float64))


def fourier_project_rfactor(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor, *,
                            fused: bool | None = None) -> float:
    """:func:`rfactor_numerator` of ``z``, then :func:`fourier_project` of ``z`` in place, in one
    pass over ``z`` with the fused kernels (the same values to the bit as the two calls).

    Examples
    --------
    >>> z = torch.tensor([3 + 4j, 1j], dtype=torch.complex64)
    >>> fourier_project_rfactor(z, torch.tensor([10.0, 2.0]), torch.tensor([True, False]))
    5.0
    >>> z.tolist()
    [(6+8j), 1j]
    """
    if fused is None:
        fused = _fused_ok(z, amp, measured)
    if fused:
        return float(_k(z.numel())[4](z.numpy(), _sv(amp), _sv(measured), True))
    num = rfactor_numerator(z, amp, measured)
    fourier_project(z, amp, measured, fused=False)
    return num


def fourier_project_half_rfactor(z: torch.Tensor, hs, *, fused: bool | None = None) -> float:
    """:func:`rfactor_numerator_half` of the half spectrum ``z``, then
    :func:`fourier_project_half` in place, in one pass with the fused kernels (the same values
    to the bit as the two calls)."""
    if fused is None:
        fused = _fused_ok(z, hs.amp, hs.proj, hs.keep, hs.a1, hs.m1, hs.a2, hs.m2)
    if fused:
        return float(_k(z.numel())[12](z.numpy(), *_half_views(hs, True), True))
    num = rfactor_numerator_half(z, hs, fused=False)
    fourier_project_half(z, hs, fused=False)
    return num


_LANES: dict = {}


def lane_mask(support: torch.Tensor) -> np.ndarray:
    """The support repeated per component, ``(s0, s0, s1, s1, ...)``: the mask of the float view
    (real and imaginary parts interleaved) of a complex array of the support's shape.

    Cached by the support's identity and its version counter, so an in-place change through
    torch (``support.copy_``, as shrink-wrap and the driver do) builds a new one.  A write through
    a NumPy view of the support bypasses the counter: change supports through torch.

    Examples
    --------
    >>> lane_mask(torch.tensor([True, False])).tolist()
    [True, True, False, False]
    """
    key = id(support)
    e = _LANES.get(key)
    ver = support._version
    if e is not None and e[0]() is support and e[1] == ver:
        return e[2]
    if len(_LANES) > 64:
        _LANES.clear()
    a = np.repeat(support.numpy().reshape(-1), 2)
    _LANES[key] = (weakref.ref(support), ver, a)
    return a


def _complex_rule(ks, x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, mode: int,
                  beta: float, real: bool, positive: bool) -> None:
    """``x <- U(x, y)`` (``mode``; ER writes ``P_C y`` into ``x``) for complex ``x``, ``y`` of the
    support's shape (or a batch with one support each): the per-component kernels on the float
    views where the rule treats both parts alike (no realness, no positivity), the per-pixel
    kernels otherwise; all arithmetic in the arrays' real precision."""
    if not (x.shape == y.shape and x.numel() == support.numel()):
        raise ValueError(f"shapes differ: x {tuple(x.shape)}, y {tuple(y.shape)}, "
                         f"support {tuple(support.shape)}")
    xn, yn = x.numpy(), y.numpy()
    dt = np.float32 if xn.dtype == np.complex64 else np.float64
    if not real and not positive:
        x2 = xn.reshape(-1).view(dt)
        y2 = yn.reshape(-1).view(dt)
        s2 = lane_mask(support)
        if mode == ER:
            ks[13](x2, y2, s2, _scalar(dt, 0.0))
        elif mode == HIO:
            ks[14](x2, y2, s2, _scalar(dt, beta))
        elif mode == RAAR:
            ks[15](x2, y2, s2, _scalar(dt, beta), _scalar(dt, 1.0 - 2.0 * beta))
        else:
            raise ValueError(f"unknown mode {mode}")
        return
    sn = _sv(support)
    if mode == ER:
        ks[1](xn, yn, sn, bool(real), bool(positive), _scalar(dt, 0.0))
    elif mode == HIO:
        ks[2](xn, yn, sn, _scalar(dt, beta), bool(real), bool(positive), _scalar(dt, 0.0))
    elif mode == RAAR:
        ks[3](xn, yn, sn, _scalar(dt, beta), _scalar(dt, 1.0 - 2.0 * beta), bool(real),
              bool(positive), _scalar(dt, 0.0))
    else:
        raise ValueError(f"unknown mode {mode}")


def constrain(x: torch.Tensor, support: torch.Tensor, *, real: bool = False, positive: bool = False
              ) -> torch.Tensor:
    """``P_C x`` into a new tensor (the ER rule applied to a fresh buffer)."""
    if _fused_ok(x, support) and x.is_complex():
        out = torch.empty_like(x)
        _complex_rule(_k(x.numel()), out, x, support, ER, 0.0, real, positive)
        return out
    if _fused_ok(x, support) and x.is_floating_point():
        out = torch.empty_like(x)
        xn = x.numpy()
        _k(x.numel())[9](out.numpy(), xn, _sv(support), bool(positive), _scalar(xn.dtype.type, 0.0))
        return out
    return apply_constraints(x, support, real=real, positive=positive)


def realspace_update_reference(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, mode: int,
                               beta: float, real: bool, positive: bool) -> None:
    """Plain-torch reference of :func:`realspace_update` (in place on ``x``)."""
    if real:
        y = y.real.to(x.dtype)
    if mode == ER:
        x.copy_(apply_constraints(y, support, real=False, positive=positive))
        return
    if mode == HIO:
        gamma = support & (y.real >= 0) if positive else support
        x.copy_(torch.where(gamma, y, x - beta * y))
        return
    if mode == RAAR:
        gamma = support & ((2 * y.real - x.real) >= 0) if positive else support
        x.copy_(torch.where(gamma, y, beta * x + (1 - 2 * beta) * y))
        return
    raise ValueError(f"unknown mode {mode}")


def realspace_update(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, mode: int,
                     beta: float = 0.9, *, real: bool = False, positive: bool = False,
                     fused: bool | None = None) -> None:
    """In-place real-space step ``x <- U(x, y)`` with ``y = P_m x``.

    ``mode`` is :data:`ER` (``x = P_C y``), :data:`HIO` (``y`` on ``Gamma``, ``x - beta y``
    elsewhere) or :data:`RAAR` (``y`` on ``Gamma'``, ``beta x + (1 - 2 beta) y`` elsewhere), with
    ``Gamma`` = support (and ``Re y >= 0`` with positivity), ``Gamma'`` = support (and
    ``Re(2y - x) >= 0`` with positivity).  With ``real`` the imaginary part of ``y`` is dropped,
    so a real iterate stays real.
    """
    if fused is None:
        fused = _fused_ok(x, y, support)
    if fused and not x.is_complex():  # a real object on real FFTs: x and y real
        ks = _k(x.numel())
        xn, yn, sn = x.numpy(), y.numpy(), _sv(support)
        dt = xn.dtype.type  # the arithmetic in the arrays' precision, as the torch twin does
        if mode == ER:
            ks[9](xn, yn, sn, bool(positive), _scalar(dt, 0.0))
        elif mode == HIO:
            ks[10](xn, yn, sn, _scalar(dt, beta), bool(positive))
        elif mode == RAAR:
            ks[11](xn, yn, sn, _scalar(dt, beta), _scalar(dt, 1.0 - 2.0 * beta), bool(positive),
                   _scalar(dt, 0.0))
        else:
            raise ValueError(f"unknown mode {mode}")
    elif fused:
        _complex_rule(_k(x.numel()), x, y, support, mode, beta, real, positive)
    else:
        realspace_update_reference(x, y, support, mode, beta, real, positive)


def gps_primal(z: torch.Tensor, fy: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor,
               t: float, eps: float, *, fused: bool | None = None) -> torch.Tensor:
    """GPS steps G1-G2 (Pham thesis Alg. 1-2, eq. (2.14)) into a new tensor:
    ``w = z - t Fy``; ``(1 - eps) P~_m w + eps w`` on measured pixels, ``w`` elsewhere."""
    if _fused_ok(z, fy, amp, measured) if fused is None else fused:
        out = torch.empty_like(z)
        _k(z.numel())[5](out.numpy(), z.numpy(), fy.numpy(), _sv(amp), _sv(measured),
                         float(t), float(eps))
        return out
    w = z - t * fy if t != 1.0 else z - fy
    out = w.clone()
    modulus_projection_(out, amp, measured)
    if eps > 0:
        out.mul_(1.0 - eps).add_(w, alpha=eps)
    return out


def gps_dual(y: torch.Tensor, u_new: torch.Tensor, u_old: torch.Tensor, s: float,
             support: torch.Tensor, *, real: bool = False, positive: bool = False,
             fused: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """GPS step G3 (eq. (2.19)): ``v = y + s (2 u_new - u_old)``, returns ``(v - P_C v, P_C u_new)``
    (the dual point projected onto ``S*`` and the estimate whose R-factor is tracked)."""
    if fused is None:
        fused = _fused_ok(y, u_new, u_old, support) and y.is_complex()
    if fused:
        yh, est = torch.empty_like(y), torch.empty_like(y)
        _k(y.numel())[6](yh.numpy(), est.numpy(), y.numpy(), u_new.numpy(), u_old.numpy(),
                         float(s), _sv(support), bool(real), bool(positive))
        return yh, est
    v = y + s * (2.0 * u_new - u_old)
    return v - apply_constraints(v, support, real=real, positive=positive), \
        apply_constraints(u_new, support, real=real, positive=positive)


def scale_(z: torch.Tensor, w: torch.Tensor, *, fused: bool | None = None) -> torch.Tensor:
    """In place ``z <- z * w`` for a complex ``z`` and a real filter ``w``."""
    if fused is None:
        fused = _fused_ok(z, w) and z.is_complex() and not w.is_complex()
    if fused:
        _k(z.numel())[7](z.numpy(), _sv(w))
        return z
    return z.mul_(w)


# --------------------------------------------------------------------------- batched starts
# A batch of random starts is one (N, *shape) tensor (the engine's batched-starts path, see
# docs/cdi.md "Batched starts").  The fused kernels above are per image; the wrappers below give
# every start exactly the arithmetic of a sequential run: the compiled kernel a single image of
# that size uses (serial or parallel, by the size of one image), applied to the whole batch where
# the rule is elementwise over arrays of the batch's shape (the real-space updates, ``P_C``) and
# image by image (NumPy views, no per-call checks) where the data broadcast over the batch (the
# Fourier projections, the R-factor).  On the reference path (CUDA) the data broadcast over the
# batch in plain torch (elementwise, so slice-independent as well).


def _batch_fused(x: torch.Tensor, *ts: torch.Tensor) -> bool:
    return x.ndim >= 2 and _fused_ok(x, *ts)


def fourier_project_batch(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor) -> None:
    """:func:`fourier_project` on a batch ``z`` of shape ``(N, *amp.shape)``, in place."""
    if z.ndim == amp.ndim:
        fourier_project(z, amp, measured)
    elif _batch_fused(z, amp, measured):
        kern = _k(amp.numel())[0]
        zn, an, mn = z.numpy(), amp.numpy(), measured.numpy()
        for i in range(zn.shape[0]):
            kern(zn[i], an, mn)
    else:
        modulus_projection_(z, amp, measured)


def fourier_project_half_batch(z: torch.Tensor, hs) -> None:
    """:func:`fourier_project_half` on a batch of half spectra ``(N, *hs.amp.shape)``, in place."""
    if z.ndim == hs.amp.ndim:
        fourier_project_half(z, hs)
    elif _batch_fused(z, hs.amp, hs.proj, hs.keep):
        kern = _k(hs.amp.numel())[8]
        zn, an, pn, kn = z.numpy(), hs.amp.numpy(), hs.proj.numpy(), hs.keep.numpy()
        for i in range(zn.shape[0]):
            kern(zn[i], an, pn, kn)
    else:
        project_half_reference(z, hs)


def realspace_update_batch(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, mode: int,
                           beta: float = 0.9, *, real: bool = False, positive: bool = False) -> None:
    """:func:`realspace_update` on a batch: ``x``, ``y`` and ``support`` all ``(N, *shape)``
    (one support per start), in place on ``x``.  The rule is elementwise: one call of the kernel
    a single image uses (chosen by the size of one image)."""
    if _batch_fused(x, y, support) and x.shape == y.shape == support.shape:
        ks = _k(x[0].numel())
        xn, yn, sn = x.numpy(), y.numpy(), support.numpy()
        if not x.is_complex():
            dt = xn.dtype.type
            if mode == ER:
                ks[9](xn, yn, sn, bool(positive), dt(0))
            elif mode == HIO:
                ks[10](xn, yn, sn, dt(beta), bool(positive))
            elif mode == RAAR:
                ks[11](xn, yn, sn, dt(beta), dt(1.0 - 2.0 * beta), bool(positive), dt(0))
            else:
                raise ValueError(f"unknown mode {mode}")
        else:
            _complex_rule(ks, x, y, support, mode, beta, real, positive)
    else:
        realspace_update_reference(x, y, support, mode, beta, real, positive)


def constrain_batch(x: torch.Tensor, support: torch.Tensor, *, real: bool = False,
                    positive: bool = False) -> torch.Tensor:
    """:func:`constrain` of a batch with one support per start (``x``, ``support``
    ``(N, *shape)``) into a new tensor (elementwise: one call of the single-image kernel)."""
    if _batch_fused(x, support) and x.shape == support.shape:
        out = torch.empty_like(x)
        ks = _k(x[0].numel())
        if x.is_complex():
            _complex_rule(ks, out, x, support, ER, 0.0, real, positive)
            return out
        if x.is_floating_point():
            xn = x.numpy()
            ks[9](out.numpy(), xn, support.numpy(), bool(positive), xn.dtype.type(0))
            return out
    return apply_constraints(x, support, real=real, positive=positive)


def rfactor_numerator_batch(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor) -> list[float]:
    """:func:`rfactor_numerator` of each image of a batch of transforms ``(N, *amp.shape)``."""
    if _batch_fused(z, amp, measured):
        kern = _k(amp.numel())[4]
        zn, an, mn = z.numpy(), amp.numpy(), measured.numpy()
        return [float(kern(zn[i], an, mn, False)) for i in range(zn.shape[0])]
    return [rfactor_numerator(zi, amp, measured) for zi in z]


def rfactor_numerator_half_batch(z: torch.Tensor, hs) -> list[float]:
    """:func:`rfactor_numerator_half` of each half spectrum of a batch ``(N, *hs.a1.shape)``."""
    if _batch_fused(z, hs.a1, hs.m1, hs.a2, hs.m2):
        kern = _k(hs.a1.numel())[12]
        zn = z.numpy()
        views = _half_views(hs, False)
        return [float(kern(zn[i], *views, False)) for i in range(zn.shape[0])]
    return [rfactor_numerator_half(zi, hs) for zi in z]
