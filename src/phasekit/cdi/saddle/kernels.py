"""Fused CPU kernels (numba) of the FFT-free subspace Lagrangian: set-up, evaluation (value terms,
gradient, Hessian) and update passes over the Fourier-space arrays (Marchesini 2007 App. B,
eqs. (39)-(48); the torch reference is :meth:`SubspaceLagrangian._pass_torch`).

Importing this module needs numba.  The per-pixel modulus rule is that of
:mod:`phasekit.operators.modulus` in the kernels that store a projection; the evaluations (sums
only) share one inlined per-pixel form, :func:`phasekit.operators.modulus.pixel_terms`; the kernels that *store* a projection (:func:`project_into`,
:func:`apply2p`) use the fast pass :func:`~phasekit.operators.modulus.project_fast` followed, when
it left some pixels, by the exact rule, and are compiled without fastmath (the same bits whichever
of them computes a projection: a resumed run recomputes with ``project_into`` what the
uninterrupted run got from the fused update).  The sums run in float64, in a fixed order.  The
K = 4 kernels of SO4D are generated (:mod:`phasekit.cdi.saddle.codegen`).
"""
from __future__ import annotations

import numpy as np

from ...operators.modulus import fast_ok, jit_with_helpers, pixel_terms, project_fast, project_pixel

# numba.njit(cache=True) whose on-disk cache also goes stale when operators/modulus.py changes
_jit = jit_with_helpers(fastmath=True)
_strict = jit_with_helpers(fastmath=False, error_model="numpy")


@_jit
def eval2(z, d0, d1, amp, meas, t0, t1, hess, out):
    """One pass for K = 2: ``out = [S_unmeas, S_amp, q0, q1, h00, h01, h11]``.  Branch-free
    (selects) so that LLVM vectorises the loop."""
    zf = z.ravel()
    af = amp.ravel()
    mf = meas.ravel()
    a0 = d0.ravel()
    a1 = d1.ravel()
    s1 = s2 = q0 = q1 = h00 = h01 = h11 = 0.0
    if not hess:
        for i in range(zf.size):
            u0 = a0[i]
            u1 = a1[i]
            re = zf[i].real + t0 * u0.real + t1 * u1.real
            im = zf[i].imag + t0 * u0.imag + t1 * u1.imag
            e1, e2, pr, pi, b, inv = pixel_terms(re, im, af[i], mf[i])
            s1 += e1
            s2 += e2
            q0 += u0.real * pr + u0.imag * pi
            q1 += u1.real * pr + u1.imag * pi
    else:
        for i in range(zf.size):
            u0 = a0[i]
            u1 = a1[i]
            re = zf[i].real + t0 * u0.real + t1 * u1.real
            im = zf[i].imag + t0 * u0.imag + t1 * u1.imag
            ok = mf[i]
            e1, e2, pr, pi, b, inv = pixel_terms(re, im, af[i], ok)
            s1 += e1
            s2 += e2
            q0 += u0.real * pr + u0.imag * pi
            q1 += u1.real * pr + u1.imag * pi
            # Hessian: measured w b_j b_k with b_k = Im(conj(u) d_k), w = b/|rho~|;
            # unmeasured Re(conj(d_j) d_k)
            c = re * inv
            sn = im * inv
            w = b * inv
            p0 = c * u0.imag - sn * u0.real
            p1 = c * u1.imag - sn * u1.real
            h00 += w * p0 * p0 if ok else u0.real * u0.real + u0.imag * u0.imag
            h01 += w * p0 * p1 if ok else u0.real * u1.real + u0.imag * u1.imag
            h11 += w * p1 * p1 if ok else u1.real * u1.real + u1.imag * u1.imag
    out[0] = s1
    out[1] = s2
    out[2] = q0
    out[3] = q1
    out[4] = h00
    out[5] = h01
    out[6] = h11


@_jit
def setup2(z, gs, gm, gms, d0, d1, amp, meas, t0, t1, out):
    """K = 2 set-up pass: ``d0 = gms - gs``, ``d1 = gms - gm``,
    ``out[:8] = [||gs||^2, a0, a1, p0, p1, G00, G01, G11]`` and, fused in the same pass, the
    first evaluation at ``(t0, t1)``: ``out[8:12] = [S_unmeas, S_amp, q0, q1]``."""
    zf = z.ravel()
    gsf = gs.ravel()
    gmf = gm.ravel()
    gmsf = gms.ravel()
    o0 = d0.ravel()
    o1 = d1.ravel()
    af = amp.ravel()
    mf = meas.ravel()
    c0 = a0 = a1 = p0 = p1 = g00 = g01 = g11 = s1 = s2 = q0 = q1 = 0.0
    for i in range(gsf.size):
        ar = gsf[i].real
        ai = gsf[i].imag
        mr = gmf[i].real
        mi = gmf[i].imag
        er = gmsf[i].real
        ei = gmsf[i].imag
        x0r = er - ar
        x0i = ei - ai
        x1r = er - mr
        x1i = ei - mi
        o0[i] = complex(x0r, x0i)
        o1[i] = complex(x1r, x1i)
        c0 += ar * ar + ai * ai
        a0 += x0r * ar + x0i * ai
        a1 += x1r * ar + x1i * ai
        p0 += x0r * mr + x0i * mi
        p1 += x1r * mr + x1i * mi
        g00 += x0r * x0r + x0i * x0i
        g01 += x0r * x1r + x0i * x1i
        g11 += x1r * x1r + x1i * x1i
        # first evaluation (the eval2 rule)
        re = zf[i].real + t0 * x0r + t1 * x1r
        im = zf[i].imag + t0 * x0i + t1 * x1i
        e1, e2, pr, pi, b, inv = pixel_terms(re, im, af[i], mf[i])
        s1 += e1
        s2 += e2
        q0 += x0r * pr + x0i * pi
        q1 += x1r * pr + x1i * pi
    out[0] = c0
    out[1] = a0
    out[2] = a1
    out[3] = p0
    out[4] = p1
    out[5] = g00
    out[6] = g01
    out[7] = g11
    out[8] = s1
    out[9] = s2
    out[10] = q0
    out[11] = q1


@_jit
def mask_inplace(y, supp, real):
    """``y <- P_s y``: zero outside the support (and the imaginary part with realness)."""
    yf = y.ravel()
    sf = supp.ravel()
    for i in range(yf.size):
        v = yf[i]
        s = sf[i]
        yf[i] = complex(v.real if s else 0.0, v.imag if (s and not real) else 0.0)


@_jit
def apply2(z, gs, d0, d1, t0, t1):
    """K = 2 update: ``z += t0 d0 + t1 d1``; ``gs += t0 d0`` (d0 inside the constraint)."""
    zf = z.ravel()
    gsf = gs.ravel()
    a0 = d0.ravel()
    a1 = d1.ravel()
    for i in range(zf.size):
        u0 = a0[i]
        u1 = a1[i]
        r0 = t0 * u0.real
        i0 = t0 * u0.imag
        zf[i] = complex(zf[i].real + r0 + t1 * u1.real, zf[i].imag + i0 + t1 * u1.imag)
        gsf[i] = complex(gsf[i].real + r0, gsf[i].imag + i0)


@_jit
def evalk(z, D, amp, meas, tau, hess, out):
    """One pass for any K: ``out = [S_unmeas, S_amp, q (K), h (K x K, row major)]``."""
    K = D.shape[0]
    zf = z.ravel()
    af = amp.ravel()
    mf = meas.ravel()
    n = zf.size
    acc = np.zeros(2 + K + K * K)
    dr = np.zeros(K)
    di = np.zeros(K)
    pk = np.zeros(K)
    for i in range(n):
        re = zf[i].real
        im = zf[i].imag
        for k in range(K):
            dr[k] = D[k, i].real
            di[k] = D[k, i].imag
            re += tau[k] * dr[k]
            im += tau[k] * di[k]
        ok = mf[i]
        e1, e2, pr, pi, b, inv = pixel_terms(re, im, af[i], ok)
        acc[0] += e1
        acc[1] += e2
        for k in range(K):
            acc[2 + k] += dr[k] * pr + di[k] * pi
        if hess:
            if ok:
                c = re * inv
                s = im * inv
                w = b * inv
                for k in range(K):
                    pk[k] = c * di[k] - s * dr[k]
                for k in range(K):
                    for j in range(k, K):
                        acc[2 + K + k * K + j] += w * pk[k] * pk[j]
            else:
                for k in range(K):
                    for j in range(k, K):
                        acc[2 + K + k * K + j] += dr[k] * dr[j] + di[k] * di[j]
    for k in range(out.size):
        out[k] = acc[k]


@_jit
def setup(z, gs, gm, gms, D, out):
    """Write ``D[0] = Gms - Gs`` (d_s~), ``D[1] = Gms - Gm`` (d_sbar~) and accumulate
    ``out = [||Gs||^2, Re<d_k|Gs> (K), Re<d_k|Gm> (K), Re<d_k|d_j> (K x K)]``."""
    K = D.shape[0]
    n = z.size
    gsf = gs.ravel()
    gmf = gm.ravel()
    gmsf = gms.ravel()
    acc = np.zeros(1 + 2 * K + K * K)
    dr = np.zeros(K)
    di = np.zeros(K)
    for i in range(n):
        a = gsf[i]
        mm = gmf[i]
        e = gmsf[i]
        D[0, i] = e - a
        D[1, i] = e - mm
        acc[0] += a.real * a.real + a.imag * a.imag
        for k in range(K):
            v = D[k, i]
            dr[k] = v.real
            di[k] = v.imag
            acc[1 + k] += dr[k] * a.real + di[k] * a.imag
            acc[1 + K + k] += dr[k] * mm.real + di[k] * mm.imag
        for k in range(K):
            for j in range(k, K):
                acc[1 + 2 * K + k * K + j] += dr[k] * dr[j] + di[k] * di[j]
    for k in range(out.size):
        out[k] = acc[k]


@_jit
def apply_step(z, gs, D, tau, smask):
    """``z += sum_k tau_k D_k``; ``Gs += sum_{k in s} tau_k D_k``."""
    K = D.shape[0]
    zf = z.ravel()
    gsf = gs.ravel()
    for i in range(zf.size):
        dz = 0j
        ds = 0j
        for k in range(K):
            v = tau[k] * D[k, i]
            dz += v
            if smask[k]:
                ds += v
        zf[i] += dz
        gsf[i] += ds


@_strict
def project_into(z, amp, meas, out):
    """``out = P~_m z`` (phase 1 where ``z = 0``; unmeasured pixels copied)."""
    zf = z.ravel()
    af = amp.ravel()
    mf = meas.ravel()
    of = out.ravel()
    nbad = np.int32(0)
    for i in range(zf.size):
        v = zf[i]
        re2, im2, ok, bad = project_fast(v.real, v.imag, af[i], mf[i])
        nbad = max(nbad, np.int32(bad))
        of[i] = complex(re2, im2)
    if nbad:  # the exact rule on the rare pixels the fast pass leaves (zero or extreme |z|)
        for i in range(zf.size):
            v = zf[i]
            if mf[i] and not fast_ok(v.real, v.imag):
                re2, im2 = project_pixel(v.real, v.imag, af[i])
                of[i] = complex(re2, im2)


# ---- SO2D without stored directions: d0 = gms - gs and d1 = gms - gm are formed on the fly (the
# same float32 differences the stored rows hold, so the results are the same) -- two fewer arrays
# written per iteration and a working set that stays closer to the cache.
@_jit
def setup2n(z, gs, gm, gms, amp, meas, t0, t1, out):
    """:func:`setup2` without writing ``d0``, ``d1`` (the same arithmetic), and without the three
    sums SO2D's solver does not read -- ``||gs||^2`` (only ``L`` needs it), ``Re<d1|gs>`` and
    ``Re<d0|d1>``: ``out[0]``, ``out[2]``, ``out[6]`` are NaN (see
    :meth:`SubspaceLagrangian.build_pair`)."""
    zf = z.ravel()
    gsf = gs.ravel()
    gmf = gm.ravel()
    gmsf = gms.ravel()
    af = amp.ravel()
    mf = meas.ravel()
    a0 = p0 = p1 = g00 = g11 = s1 = s2 = q0 = q1 = 0.0
    for i in range(gsf.size):
        ar = gsf[i].real
        ai = gsf[i].imag
        mr = gmf[i].real
        mi = gmf[i].imag
        er = gmsf[i].real
        ei = gmsf[i].imag
        x0r = er - ar
        x0i = ei - ai
        x1r = er - mr
        x1i = ei - mi
        a0 += x0r * ar + x0i * ai
        p0 += x0r * mr + x0i * mi
        p1 += x1r * mr + x1i * mi
        g00 += x0r * x0r + x0i * x0i
        g11 += x1r * x1r + x1i * x1i
        re = zf[i].real + t0 * x0r + t1 * x1r
        im = zf[i].imag + t0 * x0i + t1 * x1i
        e1, e2, pr, pi, b, inv = pixel_terms(re, im, af[i], mf[i])
        s1 += e1
        s2 += e2
        q0 += x0r * pr + x0i * pi
        q1 += x1r * pr + x1i * pi
    out[0] = np.nan
    out[1] = a0
    out[2] = np.nan
    out[3] = p0
    out[4] = p1
    out[5] = g00
    out[6] = np.nan
    out[7] = g11
    out[8] = s1
    out[9] = s2
    out[10] = q0
    out[11] = q1


@_jit
def eval2n(z, gs, gm, gms, amp, meas, t0, t1, hess, out):
    """:func:`eval2` with ``d0 = gms - gs``, ``d1 = gms - gm`` formed on the fly."""
    zf = z.ravel()
    gsf = gs.ravel()
    gmf = gm.ravel()
    gmsf = gms.ravel()
    af = amp.ravel()
    mf = meas.ravel()
    s1 = s2 = q0 = q1 = h00 = h01 = h11 = 0.0
    if not hess:
        for i in range(zf.size):
            er = gmsf[i].real
            ei = gmsf[i].imag
            u0r = er - gsf[i].real
            u0i = ei - gsf[i].imag
            u1r = er - gmf[i].real
            u1i = ei - gmf[i].imag
            re = zf[i].real + t0 * u0r + t1 * u1r
            im = zf[i].imag + t0 * u0i + t1 * u1i
            e1, e2, pr, pi, b, inv = pixel_terms(re, im, af[i], mf[i])
            s1 += e1
            s2 += e2
            q0 += u0r * pr + u0i * pi
            q1 += u1r * pr + u1i * pi
    else:
        for i in range(zf.size):
            er = gmsf[i].real
            ei = gmsf[i].imag
            u0r = er - gsf[i].real
            u0i = ei - gsf[i].imag
            u1r = er - gmf[i].real
            u1i = ei - gmf[i].imag
            re = zf[i].real + t0 * u0r + t1 * u1r
            im = zf[i].imag + t0 * u0i + t1 * u1i
            ok = mf[i]
            e1, e2, pr, pi, b, inv = pixel_terms(re, im, af[i], ok)
            s1 += e1
            s2 += e2
            q0 += u0r * pr + u0i * pi
            q1 += u1r * pr + u1i * pi
            c = re * inv
            sn = im * inv
            w = b * inv
            p0 = c * u0i - sn * u0r
            p1 = c * u1i - sn * u1r
            h00 += w * p0 * p0 if ok else u0r * u0r + u0i * u0i
            h01 += w * p0 * p1 if ok else u0r * u1r + u0i * u1i
            h11 += w * p1 * p1 if ok else u1r * u1r + u1i * u1i
    out[0] = s1
    out[1] = s2
    out[2] = q0
    out[3] = q1
    out[4] = h00
    out[5] = h01
    out[6] = h11


@_strict
def apply2p(z, gs, gm, gms, amp, meas, t0, t1):
    """SO2D update with the next modulus projection fused: ``z += t0 d0 + t1 d1``,
    ``gs += t0 d0`` (``d0 = gms - gs``, ``d1 = gms - gm``), then ``gm <- P~_m z`` (the
    :func:`project_into` rule) in the same pass."""
    zf = z.ravel()
    gsf = gs.ravel()
    gmf = gm.ravel()
    gmsf = gms.ravel()
    af = amp.ravel()
    mf = meas.ravel()
    nbad = np.int32(0)
    for i in range(zf.size):
        e = gmsf[i]
        u0 = e - gsf[i]
        u1 = e - gmf[i]
        r0 = t0 * u0.real
        i0 = t0 * u0.imag
        v = complex(zf[i].real + r0 + t1 * u1.real, zf[i].imag + i0 + t1 * u1.imag)
        zf[i] = v
        gsf[i] = complex(gsf[i].real + r0, gsf[i].imag + i0)
        v = zf[i]  # rounded to the array's precision, as project_into reads it
        re2, im2, ok, bad = project_fast(v.real, v.imag, af[i], mf[i])
        nbad = max(nbad, np.int32(bad))
        gmf[i] = complex(re2, im2)
    if nbad:  # the exact rule on the rare pixels the fast pass leaves
        for i in range(zf.size):
            v = zf[i]
            if mf[i] and not fast_ok(v.real, v.imag):
                re2, im2 = project_pixel(v.real, v.imag, af[i])
                gmf[i] = complex(re2, im2)
