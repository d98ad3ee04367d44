"""Fused elementwise passes of the smoothing algorithms, GPS (Pham thesis ch. 2, Algorithms 1-2)
and OSS (Rodriguez et al., J. Appl. Cryst. 46, 312 (2013)): one pass over memory between two
FFTs, with the smoothing multiply folded into a neighbouring pass.

Each kernel has a plain-torch twin (``*_reference``) that is what the algorithms run where numba
is not available (CUDA, ``PHASEKIT_NO_NUMBA=1``) and what the tests compare the kernels against.
All arithmetic stays in the arrays' precision (float32 for complex64): scalars are cast to that
type before the call, and no integer literal enters a float expression (numba would promote it to
float64 and halve the vector width -- the reason the earlier ``kernels.gps_primal`` /
``gps_dual`` cost about one FFT each on a 256^2 array on an AMD EPYC core).

Passes per iteration (between the FFTs):

* GPS-R (4 FFTs): :func:`gps_primal_v` (G1-G2 with G4's multiplier ``F y = W G`` applied as it
  reads, and G3's extrapolation formed in Fourier space, ``V = F y + s (2 z_new - z)``, whose
  inverse FFT is ``y + s (2 u_new - u_old)``), :func:`gps_dual_v` (G3 and the estimate
  ``P_C u``) and the R-factor sum: 3 passes instead of 4, and 10.8 instead of 12.8 complex-array
  transfers per iteration (the separate multiply, and the reads of ``y`` and ``u_old``, are gone).
* GPS-F (3 FFTs): :func:`gps_primal`, :func:`gps_dual` (which applies the real-space weight
  ``W`` of G4 as it writes the dual point) and the R-factor sum -- 3 passes instead of 4.  (The
  Fourier-space form of GPS-R would cost GPS-F an extra FFT: its ``y`` is needed in real space
  anyway.)
* OSS (4 FFTs instead of 5): :func:`oss_fourier` (the modulus projection, which also writes the
  filtered spectrum ``W F h = W (Z - beta P~_m Z)`` of the density ``h = x - beta y``: F is
  linear, so ``h`` needs no forward FFT), :func:`oss_update` (HIO inside the support, the
  smoothed density outside, the estimate ``P_C y``) and the R-factor sum -- 3 passes instead of
  about 10.  A real object on the complex path (``rfft=False``, ``h = x - beta Re y``, not
  pointwise in Fourier space) keeps 5 FFTs with :func:`oss_split` and :func:`oss_merge`.

Fusing the filter multiply with the R-factor sum into one loop was tried and dropped: two arrays
that numba cannot prove distinct (a store into one, loads from the other) keep LLVM from
vectorising the reduction, and the loop cost 5x the two separate passes.

Real-array variants (suffix ``_r``, and the ``half`` arguments) serve real objects on real FFTs
(:mod:`phasekit.cdi.halfspectrum`).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..operators.projections import apply_constraints, modulus_projection_
from . import kernels as _kernels
from .halfspectrum import project_half_reference

__all__ = [
    "fused_ok",
    "gps_dual",
    "gps_dual_reference",
    "gps_dual_v",
    "gps_primal",
    "gps_primal_reference",
    "gps_primal_v",
    "gps_primal_v_reference",
    "oss_fourier",
    "oss_fourier_reference",
    "oss_merge",
    "oss_merge_reference",
    "oss_split",
    "oss_split_reference",
    "oss_update",
    "oss_update_reference",
    "rfactor",
]


#: block length of the deterministic reductions (the value of :mod:`phasekit.cdi.kernels`)
REDUCE_BLOCK = _kernels.REDUCE_BLOCK
#: terms per partial sum in the data's precision inside a block (see ``rfactor_numerator``)
_SUB = 256


def _build(parallel: bool):  # pragma: no cover - compiled code
    rng = numba.prange if parallel else range
    _BLOCK = 4096  # pixels per block of the projection passes (32 KiB of complex64)
    jit = jit_with_helpers(fastmath=True, parallel=parallel)
    strict = jit_with_helpers(fastmath=False, error_model="numpy", parallel=parallel)

    @strict
    def gps_primal(out, z, fy, amp, meas, t, c, eps):
        # G1-G2: w = z - t Fy; out = c P~_m w + eps w on measured pixels (c = 1 - eps), w elsewhere
        of = out.ravel()
        zf = z.ravel()
        ff = fy.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        nbad = np.int32(0)
        for i in rng(of.size):
            a = zf[i]
            b = ff[i]
            wr = a.real - t * b.real
            wi = a.imag - t * b.imag
            pr, pi, ok, bad = project_fast(wr, wi, af[i], mf[i])
            nbad = max(nbad, np.int32(bad))
            of[i] = complex(c * pr + eps * wr if ok else wr, c * pi + eps * wi if ok else wi)
        if nbad:  # the exact rule on the rare pixels the fast pass leaves (input z, fy unchanged)
            for i in range(of.size):
                a = zf[i]
                b = ff[i]
                wr = a.real - t * b.real
                wi = a.imag - t * b.imag
                if mf[i] and not fast_ok(wr, wi):
                    pr, pi = project_pixel(wr, wi, af[i])
                    of[i] = complex(c * pr + eps * wr, c * pi + eps * wi)

    @strict
    def gps_primal_v(out, vout, z, g, w, amp, meas, t, c, eps, s):
        # GPS-R's G1-G2 with G4's multiplier folded in and G3's extrapolation moved to Fourier
        # space: Fy = W g; w = z - t Fy; out = c P~_m w + eps w
        # on measured pixels, w elsewhere; vout = Fy + s (2 out - z), whose inverse FFT is
        # y + s (2 u_new - u_old) by linearity
        of = out.ravel()
        vf = vout.ravel()
        zf = z.ravel()
        gf = g.ravel()
        wf = w.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        nbad = np.int32(0)
        for i in rng(of.size):
            a = zf[i]
            b = gf[i]
            k = wf[i]
            fr = b.real * k
            fi = b.imag * k
            wr = a.real - t * fr
            wi = a.imag - t * fi
            pr, pi, ok, bad = project_fast(wr, wi, af[i], mf[i])
            nbad = max(nbad, np.int32(bad))
            orr = c * pr + eps * wr if ok else wr
            oi = c * pi + eps * wi if ok else wi
            of[i] = complex(orr, oi)
            vf[i] = complex(fr + s * ((orr + orr) - a.real), fi + s * ((oi + oi) - a.imag))
        if nbad:  # the exact rule on the rare pixels the fast pass leaves
            for i in range(of.size):
                a = zf[i]
                b = gf[i]
                k = wf[i]
                fr = b.real * k
                fi = b.imag * k
                wr = a.real - t * fr
                wi = a.imag - t * fi
                if mf[i] and not fast_ok(wr, wi):
                    pr, pi = project_pixel(wr, wi, af[i])
                    orr = c * pr + eps * wr
                    oi = c * pi + eps * wi
                    of[i] = complex(orr, oi)
                    vf[i] = complex(fr + s * ((orr + orr) - a.real), fi + s * ((oi + oi) - a.imag))

    @jit
    def gps_dual_v_c(yh, est, v, un, supp, real, positive, zero):
        # G3 given v: yh = v - P_C v; est = P_C u_new
        hf = yh.ravel()
        ef = est.ravel()
        vf = v.ravel()
        nf = un.ravel()
        sf = supp.ravel()
        for i in rng(hf.size):
            n = nf[i]
            q = vf[i]
            vr = q.real
            vi = q.imag
            ins = sf[i]
            pr = max(vr, zero) if positive else vr
            pr = pr if ins else zero
            pi = zero if (real or not ins) else vi
            hf[i] = complex(vr - pr, vi - pi)
            er = max(n.real, zero) if positive else n.real
            ei = zero if real else n.imag
            ef[i] = complex(er if ins else zero, ei if ins else zero)

    @jit
    def gps_dual_v_r(yh, est, v, un, supp, positive, zero):
        # as gps_dual_v_c for a real object: est real
        hf = yh.ravel()
        ef = est.ravel()
        vf = v.ravel()
        nf = un.ravel()
        sf = supp.ravel()
        for i in rng(hf.size):
            n = nf[i]
            q = vf[i]
            vr = q.real
            ins = sf[i]
            pr = max(vr, zero) if positive else vr
            pr = pr if ins else zero
            hf[i] = complex(vr - pr, q.imag)
            er = max(n.real, zero) if positive else n.real
            ef[i] = er if ins else zero

    @jit
    def gps_dual_c(yh, est, y, un, uo, s, supp, real, positive, zero):
        # G3: v = y + s (2 u_new - u_old); yh = (v - P_C v); est = P_C u_new
        hf = yh.ravel()
        ef = est.ravel()
        yf = y.ravel()
        nf = un.ravel()
        of = uo.ravel()
        sf = supp.ravel()
        for i in rng(hf.size):
            n = nf[i]
            o = of[i]
            v0 = yf[i]
            vr = v0.real + s * ((n.real + n.real) - o.real)
            vi = v0.imag + s * ((n.imag + n.imag) - o.imag)
            ins = sf[i]
            pr = max(vr, zero) if positive else vr
            pr = pr if ins else zero
            pi = zero if (real or not ins) else vi
            hf[i] = complex(vr - pr, vi - pi)
            er = max(n.real, zero) if positive else n.real
            ei = zero if real else n.imag
            ef[i] = complex(er if ins else zero, ei if ins else zero)

    @jit
    def gps_dual_r(yh, est, y, un, uo, s, supp, positive, zero):
        # as gps_dual_c for a real object (real = True): est = P_C u_new is a real array
        hf = yh.ravel()
        ef = est.ravel()
        yf = y.ravel()
        nf = un.ravel()
        of = uo.ravel()
        sf = supp.ravel()
        for i in rng(hf.size):
            n = nf[i]
            o = of[i]
            v0 = yf[i]
            vr = v0.real + s * ((n.real + n.real) - o.real)
            vi = v0.imag + s * ((n.imag + n.imag) - o.imag)
            ins = sf[i]
            pr = max(vr, zero) if positive else vr
            pr = pr if ins else zero
            hf[i] = complex(vr - pr, vi)
            er = max(n.real, zero) if positive else n.real
            ef[i] = er if ins else zero

    @jit
    def gps_dual_cw(yh, est, y, un, uo, s, supp, w, real, positive, zero):
        # G3 + G4 of GPS-F: v = y + s (2 u_new - u_old); yh = W (v - P_C v); est = P_C u_new
        hf = yh.ravel()
        ef = est.ravel()
        yf = y.ravel()
        nf = un.ravel()
        of = uo.ravel()
        sf = supp.ravel()
        wf = w.ravel()
        for i in rng(hf.size):
            n = nf[i]
            o = of[i]
            v0 = yf[i]
            vr = v0.real + s * ((n.real + n.real) - o.real)
            vi = v0.imag + s * ((n.imag + n.imag) - o.imag)
            ins = sf[i]
            pr = max(vr, zero) if positive else vr
            pr = pr if ins else zero
            pi = zero if (real or not ins) else vi
            g = wf[i]
            hf[i] = complex((vr - pr) * g, (vi - pi) * g)
            er = max(n.real, zero) if positive else n.real
            ei = zero if real else n.imag
            ef[i] = complex(er if ins else zero, ei if ins else zero)

    @jit
    def gps_dual_rw(yh, est, y, un, uo, s, supp, w, positive, zero):
        # as gps_dual_cw for a real object (real = True): est = P_C u_new is a real array
        hf = yh.ravel()
        ef = est.ravel()
        yf = y.ravel()
        nf = un.ravel()
        of = uo.ravel()
        sf = supp.ravel()
        wf = w.ravel()
        for i in rng(hf.size):
            n = nf[i]
            o = of[i]
            v0 = yf[i]
            vr = v0.real + s * ((n.real + n.real) - o.real)
            vi = v0.imag + s * ((n.imag + n.imag) - o.imag)
            ins = sf[i]
            pr = max(vr, zero) if positive else vr
            pr = pr if ins else zero
            g = wf[i]
            hf[i] = complex((vr - pr) * g, vi * g)
            er = max(n.real, zero) if positive else n.real
            ef[i] = er if ins else zero

    @numba.njit(fastmath=True, cache=True, parallel=parallel)
    def rfactor_numerator(zv, amp, meas, zero):
        # sum_meas | |z| - amp | on the real view zv of a complex z (re, im interleaved): float64
        # over fixed blocks of REDUCE_BLOCK (thread-count independent, as kernels.py), partial
        # sums of _SUB terms in the data's precision (vectorised: 4x faster than a float64
        # accumulator per term; relative rounding about _SUB * eps in the worst case)
        zf = zv.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        n = af.size
        nb = (n + REDUCE_BLOCK - 1) // REDUCE_BLOCK
        part = np.zeros(nb)
        for k in rng(nb):
            lo = k * REDUCE_BLOCK
            hi = min(lo + REDUCE_BLOCK, n)
            acc = 0.0
            for j in range(lo, hi, _SUB):
                e = min(j + _SUB, hi)
                # each run of _SUB terms through slices indexed from 0 (see kernels.py's
                # rfactor_numerator: a loop over range(j, e) made gathers)
                zb = zf[2 * j:2 * e]
                ab = af[j:e]
                mb = mf[j:e]
                t = zero
                for i in range(ab.size):
                    a = zb[2 * i]
                    b = zb[2 * i + 1]
                    d = abs(np.sqrt(a * a + b * b) - ab[i])
                    t += d if mb[i] else zero
                acc += t
            part[k] = acc
        tot = 0.0
        for k in range(nb):
            tot += part[k]
        return tot

    @numba.njit(fastmath=True, cache=True, parallel=parallel)
    def rfactor_numerator_half(zv, a1, m1, a2, m2, zero):
        # the same from the half spectrum of a real image (paired columns twice, halfspectrum.py)
        zf = zv.ravel()
        af = a1.ravel()
        mf = m1.ravel()
        bf = a2.ravel()
        nf = m2.ravel()
        n = af.size
        nb = (n + REDUCE_BLOCK - 1) // REDUCE_BLOCK
        part = np.zeros(nb)
        for k in rng(nb):
            lo = k * REDUCE_BLOCK
            hi = min(lo + REDUCE_BLOCK, n)
            acc = 0.0
            for j in range(lo, hi, _SUB):
                e = min(j + _SUB, hi)
                zb = zf[2 * j:2 * e]
                ab = af[j:e]
                mb = mf[j:e]
                bb = bf[j:e]
                nb_ = nf[j:e]
                t = zero
                for i in range(ab.size):
                    a = zb[2 * i]
                    b = zb[2 * i + 1]
                    az = np.sqrt(a * a + b * b)
                    d1 = abs(az - ab[i])
                    d2 = abs(az - bb[i])
                    t += (d1 if mb[i] else zero) + (d2 if nb_[i] else zero)
                acc += t
            part[k] = acc
        tot = 0.0
        for k in range(nb):
            tot += part[k]
        return tot

    @strict
    def oss_fourier(z, hs, amp, meas, w, beta):
        # OSS in Fourier space, Z = F x: z <- P~_m Z (= F y) and hs = W (Z - beta P~_m Z)
        # (= W F h, h = x - beta y, by linearity); blocked with the block's input kept, as
        # kernels.fourier_project (the fix-up must see the input)
        zf = z.ravel()
        hf = hs.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        wf = w.ravel()
        n = zf.size
        for bi in rng((n + _BLOCK - 1) // _BLOCK):
            lo = bi * _BLOCK
            hi = min(lo + _BLOCK, n)
            zb = zf[lo:hi]
            hb = hf[lo:hi]
            ab = af[lo:hi]
            mb = mf[lo:hi]
            wb = wf[lo:hi]
            ib = zb.copy()
            nbad = np.int32(0)
            for j in range(ib.size):
                v = ib[j]
                re2, im2, _ok, bad = project_fast(v.real, v.imag, ab[j], mb[j])
                nbad = max(nbad, np.int32(bad))
                zb[j] = complex(re2, im2)
                g = wb[j]
                hb[j] = complex((v.real - beta * re2) * g, (v.imag - beta * im2) * g)
            if nbad:
                for j in range(ib.size):
                    v = ib[j]
                    if mb[j] and not fast_ok(v.real, v.imag):
                        re2, im2 = project_pixel(v.real, v.imag, ab[j])
                        zb[j] = complex(re2, im2)
                        g = wb[j]
                        hb[j] = complex((v.real - beta * re2) * g, (v.imag - beta * im2) * g)

    @strict
    def oss_fourier_half(z, hs, amp, proj, keep, w, beta):
        # the same on the half spectrum of a real iterate (halfspectrum.py's projection)
        zf = z.ravel()
        hf = hs.ravel()
        af = amp.ravel()
        pf = proj.ravel()
        kf = keep.ravel()
        wf = w.ravel()
        n = zf.size
        for bi in rng((n + _BLOCK - 1) // _BLOCK):
            lo = bi * _BLOCK
            hi = min(lo + _BLOCK, n)
            zb = zf[lo:hi]
            hb = hf[lo:hi]
            ab = af[lo:hi]
            pb = pf[lo:hi]
            kb = kf[lo:hi]
            wb = wf[lo:hi]
            ib = zb.copy()
            nbad = np.int32(0)
            for j in range(ib.size):
                v = ib[j]
                re2, im2, _ok, bad = project_fast(v.real, v.imag, ab[j], pb[j])
                nbad = max(nbad, np.int32(bad))
                c = kb[j]
                h = c > 0
                r3 = re2 + c * v.real if h else re2
                i3 = im2 + c * v.imag if h else im2
                zb[j] = complex(r3, i3)
                g = wb[j]
                hb[j] = complex((v.real - beta * r3) * g, (v.imag - beta * i3) * g)
            if nbad:
                for j in range(ib.size):
                    v = ib[j]
                    if pb[j] and not fast_ok(v.real, v.imag):
                        re2, im2 = project_pixel(v.real, v.imag, ab[j])
                        c = kb[j]
                        h = c > 0
                        r3 = re2 + c * v.real if h else re2
                        i3 = im2 + c * v.imag if h else im2
                        zb[j] = complex(r3, i3)
                        g = wb[j]
                        hb[j] = complex((v.real - beta * r3) * g, (v.imag - beta * i3) * g)

    @jit
    def oss_update_c(x, y, sm, supp, beta, est, positive, zero):
        # x <- y on Gamma, x - beta y elsewhere in the support, sm outside; est = P_C y
        xf = x.ravel()
        yf = y.ravel()
        mf = sm.ravel()
        sf = supp.ravel()
        ef = est.ravel()
        nopos = not positive
        for i in rng(xf.size):
            v = yf[i]
            yr = v.real
            yi = v.imag
            u = xf[i]
            q = mf[i]
            s = sf[i]
            g = s & (nopos | (yr >= zero))
            hr = u.real - beta * yr
            hi = u.imag - beta * yi
            xr = yr if g else (hr if s else q.real)
            xi = yi if g else (hi if s else q.imag)
            xf[i] = complex(xr, xi)
            er = yr if nopos else max(yr, zero)
            ef[i] = complex(er if s else zero, yi if s else zero)

    @jit
    def oss_update_r(x, y, sm, supp, beta, est, positive, zero):
        xf = x.ravel()
        yf = y.ravel()
        mf = sm.ravel()
        sf = supp.ravel()
        ef = est.ravel()
        nopos = not positive
        for i in rng(xf.size):
            yr = yf[i]
            s = sf[i]
            g = s & (nopos | (yr >= zero))
            hr = xf[i] - beta * yr
            xf[i] = yr if g else (hr if s else mf[i])
            er = yr if nopos else max(yr, zero)
            ef[i] = er if s else zero

    @jit
    def oss_split_c(x, y, supp, beta, h, est, real, positive, zero):
        # h = x - beta y (y real part only if real); x <- HIO(x, y) (its out-of-support values
        # are replaced by oss_merge); est = P_C y
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        hf = h.ravel()
        ef = est.ravel()
        nopos = not positive
        for i in rng(xf.size):
            v = yf[i]
            yr = v.real
            yi = zero if real else v.imag
            u = xf[i]
            hr = u.real - beta * yr
            hi = u.imag - beta * yi
            hf[i] = complex(hr, hi)
            s = sf[i]
            g = s & (nopos | (yr >= zero))
            xf[i] = complex(yr if g else hr, yi if g else hi)
            er = yr if nopos else max(yr, zero)
            ef[i] = complex(er if s else zero, yi if s else zero)

    @jit
    def oss_split_r(x, y, supp, beta, h, est, positive, zero):
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        hf = h.ravel()
        ef = est.ravel()
        nopos = not positive
        for i in rng(xf.size):
            yr = yf[i]
            hr = xf[i] - beta * yr
            hf[i] = hr
            s = sf[i]
            g = s & (nopos | (yr >= zero))
            xf[i] = yr if g else hr
            er = yr if nopos else max(yr, zero)
            ef[i] = er if s else zero

    @jit
    def oss_merge_c(x, sm, supp, real, zero):
        # x <- sm outside the support (its real part if real)
        xf = x.ravel()
        mf = sm.ravel()
        sf = supp.ravel()
        for i in rng(xf.size):
            u = xf[i]
            v = mf[i]
            s = sf[i]
            vi = zero if real else v.imag
            xf[i] = complex(u.real if s else v.real, u.imag if s else vi)

    @jit
    def oss_merge_r(x, sm, supp):
        xf = x.ravel()
        mf = sm.ravel()
        sf = supp.ravel()
        for i in rng(xf.size):
            xf[i] = xf[i] if sf[i] else mf[i]

    return {"gps_primal": gps_primal, "gps_dual_c": gps_dual_c, "gps_dual_r": gps_dual_r,
            "gps_dual_cw": gps_dual_cw, "gps_dual_rw": gps_dual_rw, "gps_primal_v": gps_primal_v,
            "gps_dual_v_c": gps_dual_v_c, "gps_dual_v_r": gps_dual_v_r, "oss_fourier": oss_fourier,
            "oss_fourier_half": oss_fourier_half, "oss_update_c": oss_update_c,
            "oss_update_r": oss_update_r,
            "rfactor_numerator": rfactor_numerator, "rfactor_numerator_half": rfactor_numerator_half,
            "oss_split_c": oss_split_c, "oss_split_r": oss_split_r, "oss_merge_c": oss_merge_c,
            "oss_merge_r": oss_merge_r}


try:  # numba is optional at run time: fall back to the torch references
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    import numba

    from ..operators.modulus import (
        fast_ok,
        jit_with_helpers,
        project_fast,
        project_pixel,
    )

    _SERIAL = _build(False)
    _PARALLEL = _build(True)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False


def _k(n: int) -> dict:
    return _PARALLEL if n >= _kernels.PARALLEL_THRESHOLD else _SERIAL


def fused_ok(*ts: torch.Tensor) -> bool:
    """True when the numba kernels apply: numba present (and not switched off through
    ``phasekit.cdi.kernels.HAVE_NUMBA``, which the benchmarks toggle), every tensor on the CPU,
    contiguous and without autograd."""
    return HAVE_NUMBA and _kernels._fused_ok(*ts)


#: NumPy views of long-lived tensors, and cached NumPy scalars (see :mod:`.kernels`)
_sv = _kernels._sv
_sc = _kernels._scalar


def _rt(t: torch.Tensor):
    """The NumPy scalar type of the real arithmetic of ``t`` (float32 for complex64)."""
    return np.float32 if t.dtype in (torch.complex64, torch.float32) else np.float64


# --------------------------------------------------------------------------- R-factor
def rfactor(problem, est: torch.Tensor, *, fused: bool | None = None) -> float:
    """R-factor of a real-space estimate (thesis eq. (2.21) with the absolute value), as
    :meth:`CDIProblem.rfactor <phasekit.cdi.problem.CDIProblem.rfactor>`: from the half spectrum
    when ``est`` is a real tensor.  The fused sum keeps partial sums of 256 terms in the data's
    precision (float64 across them): equal to the reference within about 1e-6 relative.

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.cdi import CDIProblem
    >>> I = np.ones((8, 8)); s = np.zeros((8, 8), bool); s[3:5, 3:5] = True
    >>> p = CDIProblem.from_arrays(I, s)
    >>> x = p.random_start(np.random.default_rng(0))
    >>> abs(rfactor(p, x) - p.rfactor(x)) < 1e-6
    True
    """
    if not est.is_complex():
        f = problem.rfft_half(est.to(problem.rdtype).contiguous())
        h = problem.half()
        if fused_ok(f, h.a1, h.m1, h.a2, h.m2) if fused is None else fused:
            num = _k(f.numel())["rfactor_numerator_half"](
                torch.view_as_real(f).numpy(), _sv(h.a1), _sv(h.m1), _sv(h.a2),
                _sv(h.m2), _rt(f)(0))
            return float(num) / problem.amp_sum
        return problem.rfactor_half(f)
    f = problem.fft(est)
    if fused_ok(f, problem.amp, problem.measured) if fused is None else fused:
        num = _k(f.numel())["rfactor_numerator"](torch.view_as_real(f).numpy(), _sv(problem.amp),
                                                 _sv(problem.measured), _rt(f)(0))
        return float(num) / problem.amp_sum
    return problem.rfactor_fourier(f)


# --------------------------------------------------------------------------- GPS
def gps_primal_reference(out, z, fy, amp, measured, t, eps) -> torch.Tensor:
    """Torch twin of :func:`gps_primal` (the earlier ``kernels.gps_primal`` reference path)."""
    w = z - t * fy if t != 1.0 else z - fy
    out.copy_(w)
    modulus_projection_(out, amp, measured)
    if eps > 0:
        out.mul_(1.0 - eps).add_(w, alpha=eps)
    return out


def gps_primal(z, fy, amp, measured, t: float, eps: float, *, fused: bool | None = None) -> torch.Tensor:
    """GPS steps G1-G2 (Pham thesis Algorithms 1-2, eq. (2.14)) into a new tensor:
    ``w = z - t Fy``; ``(1 - eps) P~_m w + eps w`` on measured pixels, ``w`` elsewhere.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([3 + 4j, 1j], dtype=torch.complex64)
    >>> out = gps_primal(z, torch.zeros_like(z), torch.tensor([10.0, 2.0]),
    ...                  torch.tensor([True, False]), 1.0, 0.0)
    >>> out.tolist()
    [(6+8j), 1j]
    """
    out = torch.empty_like(z)
    if fused_ok(z, fy, amp, measured) if fused is None else fused:
        dt = _rt(z)
        _k(z.numel())["gps_primal"](out.numpy(), z.numpy(), fy.numpy(), _sv(amp),
                                    _sv(measured), _sc(dt, t), dt(1.0 - eps), dt(eps))
        return out
    return gps_primal_reference(out, z, fy, amp, measured, t, eps)


def gps_dual_reference(y, u_new, u_old, s, support, w=None, *, real=False, positive=False,
                       real_estimate=False):
    """Torch twin of :func:`gps_dual`."""
    v = y + s * (2.0 * u_new - u_old)
    yh = v - apply_constraints(v, support, real=real, positive=positive)
    if w is not None:
        yh = yh * w
    est = apply_constraints(u_new, support, real=real, positive=positive)
    if real_estimate:
        est = est.real.contiguous()
    return yh, est


def gps_dual(y, u_new, u_old, s: float, support, w=None, *, real: bool = False,
             positive: bool = False, real_estimate: bool = False, fused: bool | None = None):
    """GPS step G3 (thesis eq. (2.19)) with GPS-F's smoothing G4 (eq. (2.27)) folded in.

    ``v = y + s (2 u_new - u_old)``; returns ``(W (v - P_C v), P_C u_new)``: the dual point
    projected onto ``S*`` times the real-space weight ``W`` (``w=None``: no weight, GPS-R) and the
    estimate whose R-factor is tracked.  ``real_estimate`` (a real object, ``real=True``) returns
    the estimate as a real tensor, whose R-factor then takes a real FFT.

    Examples
    --------
    >>> import torch
    >>> y = torch.zeros(2, dtype=torch.complex64)
    >>> u = torch.tensor([1 + 1j, 2 + 0j], dtype=torch.complex64)
    >>> yh, est = gps_dual(y, u, u, 1.0, torch.tensor([True, False]), real=True)
    >>> yh.tolist(), est.tolist()
    ([1j, (2+0j)], [(1+0j), 0j])
    """
    tens = (y, u_new, u_old, support) + ((w,) if w is not None else ())
    if fused_ok(*tens) if fused is None else fused:
        dt = _rt(y)
        ks = _k(y.numel())
        yh = torch.empty_like(y)
        sfx, wa = ("w", (_sv(w),)) if w is not None else ("", ())
        if real_estimate:
            est = torch.empty(y.shape, dtype=y.real.dtype, device=y.device)
            ks["gps_dual_r" + sfx](yh.numpy(), est.numpy(), y.numpy(), u_new.numpy(), u_old.numpy(),
                                   _sc(dt, s), _sv(support), *wa, bool(positive), _sc(dt, 0.0))
        else:
            est = torch.empty_like(y)
            ks["gps_dual_c" + sfx](yh.numpy(), est.numpy(), y.numpy(), u_new.numpy(), u_old.numpy(),
                                   _sc(dt, s), _sv(support), *wa, bool(real), bool(positive), _sc(dt, 0.0))
        return yh, est
    return gps_dual_reference(y, u_new, u_old, s, support, w, real=real, positive=positive,
                              real_estimate=real_estimate)


_ONES: dict = {}


def _ones(shape, dt) -> np.ndarray:
    key = (tuple(shape), dt)
    if key not in _ONES:
        if len(_ONES) > 8:
            _ONES.clear()
        _ONES[key] = np.ones(shape, dt)
    return _ONES[key]


def gps_primal_v_reference(z, g, w, amp, measured, t, eps, s):
    """Torch twin of :func:`gps_primal_v`."""
    fy = g * w if w is not None else g
    out = gps_primal_reference(torch.empty_like(z), z, fy, amp, measured, t, eps)
    return out, fy + s * (2.0 * out - z)


def gps_primal_v(z, g, w, amp, measured, t: float, eps: float, s: float, *,
                 fused: bool | None = None):
    """GPS-R steps G1-G2 with the smoothing multiply of G4 folded in, and the extrapolation of G3
    taken in Fourier space (thesis Algorithm 1, eqs. (2.14), (2.19), (2.20)).

    With ``Fy = W g`` (``w=None``: ``Fy = g``): returns ``z_new = prox(z - t Fy)`` (as
    :func:`gps_primal`) and ``V = Fy + s (2 z_new - z)``.  Since ``F`` is linear,
    ``F^-1 V = y + s (2 u_new - u_old)``, the point G3 projects: one inverse FFT of ``V``
    replaces GPS-R's inverse FFT of ``F y``, and the separate multiply and the read of ``y`` and
    ``u_old`` are gone.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([3 + 4j, 1j], dtype=torch.complex64)
    >>> zn, v = gps_primal_v(z, torch.zeros_like(z), None, torch.tensor([10.0, 2.0]),
    ...                      torch.tensor([True, False]), 1.0, 0.0, 1.0)
    >>> zn.tolist(), v.tolist()
    ([(6+8j), 1j], [(9+12j), 1j])
    """
    tens = (z, g, amp, measured) + ((w,) if w is not None else ())
    if fused_ok(*tens) if fused is None else fused:
        dt = _rt(z)
        out = torch.empty_like(z)
        vout = torch.empty_like(z)
        wn = _sv(w) if w is not None else _ones(z.shape, dt)  # a multiply by 1 is exact
        _k(z.numel())["gps_primal_v"](out.numpy(), vout.numpy(), z.numpy(), g.numpy(), wn,
                                      _sv(amp), _sv(measured), _sc(dt, t), dt(1.0 - eps), dt(eps), _sc(dt, s))
        return out, vout
    return gps_primal_v_reference(z, g, w, amp, measured, t, eps, s)


def gps_dual_v(v, u_new, support, *, real: bool = False, positive: bool = False,
               real_estimate: bool = False, fused: bool | None = None):
    """GPS step G3 given the extrapolated point ``v`` (see :func:`gps_primal_v`): returns
    ``(v - P_C v, P_C u_new)``; ``real_estimate`` as in :func:`gps_dual`.

    Examples
    --------
    >>> import torch
    >>> v = torch.tensor([1 + 1j, 2 + 0j], dtype=torch.complex64)
    >>> yh, est = gps_dual_v(v, v, torch.tensor([True, False]), real=True)
    >>> yh.tolist(), est.tolist()
    ([1j, (2+0j)], [(1+0j), 0j])
    """
    if fused_ok(v, u_new, support) if fused is None else fused:
        dt = _rt(v)
        ks = _k(v.numel())
        yh = torch.empty_like(v)
        if real_estimate:
            est = torch.empty(v.shape, dtype=v.real.dtype, device=v.device)
            ks["gps_dual_v_r"](yh.numpy(), est.numpy(), v.numpy(), u_new.numpy(), _sv(support),
                               bool(positive), _sc(dt, 0.0))
        else:
            est = torch.empty_like(v)
            ks["gps_dual_v_c"](yh.numpy(), est.numpy(), v.numpy(), u_new.numpy(), _sv(support),
                               bool(real), bool(positive), _sc(dt, 0.0))
        return yh, est
    yh = v - apply_constraints(v, support, real=real, positive=positive)
    est = apply_constraints(u_new, support, real=real, positive=positive)
    if real_estimate:
        est = est.real.contiguous()
    return yh, est


# --------------------------------------------------------------------------- OSS
def oss_split_reference(x, y, support, beta, *, real=False, positive=False):
    """Torch twin of :func:`oss_split`: returns ``(h, est)`` and updates ``x`` in place."""
    yv = y.real.to(y.dtype) if (real and y.is_complex()) else y
    h = x - beta * yv
    _kernels.realspace_update_reference(x, y, support, _kernels.HIO, beta, real and y.is_complex(),
                                        positive)
    est = apply_constraints(y, support, real=real, positive=positive)
    return h, est


def oss_split(x, y, support, beta: float, *, real: bool = False, positive: bool = False,
              h=None, fused: bool | None = None):
    """OSS real-space pass (Rodriguez et al. 2013; see :class:`phasekit.cdi.oss.OSS`), with
    ``y = P_m x``: the out-of-support density to be smoothed ``h = x - beta y``, the HIO update
    of ``x`` in place (its out-of-support values are then replaced by :func:`oss_merge`), and the
    estimate ``P_C y``.  Real tensors (a real object on real FFTs) use the real kernels.  ``h``
    may be given as the output buffer.  Returns ``(h, est)``.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([1.0, 1.0]); y = torch.tensor([0.5, 0.5])
    >>> h, est = oss_split(x, y, torch.tensor([True, False]), 1.0)
    >>> x.tolist(), h.tolist(), est.tolist()
    ([0.5, 0.5], [0.5, 0.5], [0.5, 0.0])
    """
    if fused_ok(x, y, support) if fused is None else fused:
        dt = _rt(x)
        ks = _k(x.numel())
        h = torch.empty_like(x) if h is None else h
        est = torch.empty_like(x)
        if x.is_complex():
            ks["oss_split_c"](x.numpy(), y.numpy(), _sv(support), _sc(dt, beta), h.numpy(), est.numpy(),
                              bool(real), bool(positive), _sc(dt, 0.0))
        else:
            ks["oss_split_r"](x.numpy(), y.numpy(), _sv(support), _sc(dt, beta), h.numpy(), est.numpy(),
                              bool(positive), _sc(dt, 0.0))
        return h, est
    hh, est = oss_split_reference(x, y, support, beta, real=real, positive=positive)
    if h is not None:
        h.copy_(hh)
        hh = h
    return hh, est


def oss_merge_reference(x, smooth, support, *, real=False) -> None:
    """Torch twin of :func:`oss_merge`."""
    if real and smooth.is_complex():
        smooth = smooth.real.to(smooth.dtype)
    x.copy_(torch.where(support, x, smooth))


def oss_merge(x, smooth, support, *, real: bool = False, fused: bool | None = None) -> None:
    """In place ``x <- smooth`` outside the support (OSS: the smoothed out-of-support density;
    its real part when ``real``).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([1.0, 1.0])
    >>> oss_merge(x, torch.tensor([5.0, 7.0]), torch.tensor([True, False])); x.tolist()
    [1.0, 7.0]
    """
    if fused_ok(x, smooth, support) if fused is None else fused:
        ks = _k(x.numel())
        if x.is_complex():
            ks["oss_merge_c"](x.numpy(), smooth.numpy(), _sv(support), bool(real), _sc(_rt(x), 0.0))
        else:
            ks["oss_merge_r"](x.numpy(), smooth.numpy(), _sv(support))
        return
    oss_merge_reference(x, smooth, support, real=real)


def oss_fourier_reference(z, w, beta, *, amp=None, measured=None, half=None):
    """Torch twin of :func:`oss_fourier`."""
    zin = z.clone()
    if half is not None:
        project_half_reference(z, half)
    else:
        modulus_projection_(z, amp, measured)
    return (zin - beta * z) * w


def oss_fourier(z, w, beta: float, *, amp=None, measured=None, half=None,
                fused: bool | None = None) -> torch.Tensor:
    """OSS's Fourier-space pass on ``Z = F x`` (Rodriguez et al. 2013; see
    :class:`phasekit.cdi.oss.OSS`): in place ``Z <- P~_m Z`` (``= F y``, ``y = P_m x``) and
    returns ``W (Z - beta P~_m Z)``, which is ``W F h`` for ``h = x - beta y`` by linearity: the
    smoothed density's spectrum without a forward FFT of ``h``.  ``half`` (a
    :class:`~phasekit.cdi.halfspectrum.HalfSpectrum`): ``Z`` is the half spectrum of a real
    iterate and the projection is the half-spectrum one (``F`` of the real part of ``P_m x``).

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([3 + 4j, 2j], dtype=torch.complex64)
    >>> hs = oss_fourier(z, torch.tensor([1.0, 0.5]), 0.5, amp=torch.tensor([10.0, 1.0]),
    ...                  measured=torch.tensor([True, False]))
    >>> z.tolist(), hs.tolist()
    ([(6+8j), 2j], [0j, 0.5j])
    """
    tens = (z, w) + ((half.amp, half.proj, half.keep) if half is not None else (amp, measured))
    if fused_ok(*tens) if fused is None else fused:
        dt = _rt(z)
        hs = torch.empty_like(z)
        ks = _k(z.numel())
        if half is not None:
            ks["oss_fourier_half"](z.numpy(), hs.numpy(), _sv(half.amp), _sv(half.proj),
                                   _sv(half.keep), _sv(w), _sc(dt, beta))
        else:
            ks["oss_fourier"](z.numpy(), hs.numpy(), _sv(amp), _sv(measured), _sv(w), _sc(dt, beta))
        return hs
    return oss_fourier_reference(z, w, beta, amp=amp, measured=measured, half=half)


def oss_update_reference(x, y, smooth, support, beta, *, positive=False):
    """Torch twin of :func:`oss_update`."""
    _kernels.realspace_update_reference(x, y, support, _kernels.HIO, beta, False, positive)
    x.copy_(torch.where(support, x, smooth))
    return apply_constraints(y, support, positive=positive)


def oss_update(x, y, smooth, support, beta: float, *, positive: bool = False,
               fused: bool | None = None) -> torch.Tensor:
    """OSS's real-space pass (no realness constraint on a complex ``x``, or a real ``x`` on real
    FFTs): in place ``x <- y`` where the constraint holds, ``x - beta y`` elsewhere in the support
    (HIO) and ``smooth`` outside it; returns the estimate ``P_C y``.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([1.0, 1.0, 1.0]); y = torch.tensor([0.5, -0.5, 0.5])
    >>> est = oss_update(x, y, torch.tensor([7.0, 7.0, 7.0]), torch.tensor([True, True, False]),
    ...                  1.0, positive=True)
    >>> x.tolist(), est.tolist()
    ([0.5, 1.5, 7.0], [0.5, 0.0, 0.0])
    """
    if fused_ok(x, y, smooth, support) if fused is None else fused:
        dt = _rt(x)
        est = torch.empty_like(x)
        name = "oss_update_c" if x.is_complex() else "oss_update_r"
        _k(x.numel())[name](x.numpy(), y.numpy(), smooth.numpy(), _sv(support), _sc(dt, beta),
                            est.numpy(), bool(positive), _sc(dt, 0.0))
        return est
    return oss_update_reference(x, y, smooth, support, beta, positive=positive)
