"""The compiled (numba) kernels of :mod:`.kernels`, at module level so that numba's on-disk
cache can key them (a kernel defined in a closure that calls other kernels is keyed on the
pickled closure and never hit the cache: every process compiled them again, ~10 s).

Imported by :mod:`.kernels` only when numba is present; the documentation of each kernel is
there.  Branch-free loops over row views (unit stride, non-negative indices) with real
arithmetic and scalars in the arrays' precision, so that LLVM vectorises them.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..operators.modulus import fast_ok, jit_with_helpers, project_fast, project_pixel

# numba.njit(cache=True) whose cache also goes stale when operators/modulus.py changes
jit = jit_with_helpers(fastmath=True)
# kernels that store a modulus projection: strict IEEE arithmetic (see operators/modulus.py)
strict = jit_with_helpers(fastmath=False, error_model="numpy")
# kernels that store a quotient or a square root: fastmath without the approximate reciprocal
# and root ('arcp', 'afn').  With them LLVM computes a float32 quotient in the vector loop as
# vrcpps plus a Newton step (vendor-specific bits) but as vdivss in the scalar loop it falls
# back to when the runtime alias checks fail, which depends on where the arrays lie in memory:
# the same inputs gave results 1 ulp apart from run to run (rPIE / mPIE, found when their
# denominators moved from float64 to float32)
jitq = jit_with_helpers(fastmath={"nnan", "ninf", "nsz", "contract", "reassoc"})


@jit
def exit_wave(psi, P, O, y0, x0, bp, bo, ip, io):
    # psi = P * O_patch and the maxima of |P|^2, |O_patch|^2.  A float max reduction does
    # not vectorise (NaN semantics), so the squared moduli of a row go to the buffers bp, bo
    # and the maxima are taken over their integer views ip, io (same memory): for
    # non-negative IEEE floats the integer order is the float order (3x faster, exact).
    my, mx = P.shape
    mp = ip.dtype.type(0)  # (``ip[0] * 0`` is int64 in numba: a 4-wide max, 5x slower)
    mo = mp
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        prow = P[i]
        srow = psi[i]
        for j in range(mx):
            pr = prow[j].real
            pi = prow[j].imag
            orr = orow[j].real
            oi = orow[j].imag
            srow[j] = complex(pr * orr - pi * oi, pr * oi + pi * orr)
            bp[j] = pr * pr + pi * pi
            bo[j] = orr * orr + oi * oi
        for j in range(mx):
            a = ip[j]
            b = io[j]
            mp = a if a > mp else mp  # noqa: FURB136 (branch-free select)
            mo = b if b > mo else mo  # noqa: FURB136
    ip[0] = mp
    io[0] = mo
    return bp[0], bo[0]


@jit
def row_sums(drow):
    # R-factor numerator and cost terms of one row from its differences d = b - |z| (0 on
    # unmeasured pixels), each widened to float64 before it is summed.  Sums only, so fastmath
    # (vectorised, reassociated: the same bits run to run on a host)
    num = 0.0
    cost = 0.0
    for j in range(drow.size):
        dd = np.float64(drow[j])
        num += abs(dd)
        cost += dd * dd
    return num, cost


@strict
def fourier_project(zrow, arow, mrow, buf, drow):
    # the modulus projection of operators/modulus.py on one row, in place, in the data
    # precision and strict IEEE: the fast pass into the scratch row buf, the exact rule on the
    # pixels it left (zero, tiny, huge, non-finite |z|; read from the row, still unchanged),
    # then the row is written back.  (Not in place: after the pass a projected pixel with a
    # zero or tiny amplitude fails fast_ok too, and the exact rule on it would change bits,
    # e.g. the sign of a zero.)  The bits of project_pixel / project_t.  drow gets b - |z| on
    # measured pixels (0 elsewhere) for row_sums: |z| rounded once (IEEE square root of the
    # float32 |z|^2, the root the fast pass takes, so LLVM computes it once)
    n = zrow.size
    nbad = np.int32(0)
    zero = drow.dtype.type(0)  # (not arow[0] - arow[0]: NaN for an inf amplitude)
    for j in range(n):
        v = zrow[j]
        re2, im2, ok, bad = project_fast(v.real, v.imag, arow[j], mrow[j])
        nbad = max(nbad, np.int32(bad))
        buf[j] = complex(re2, im2)
        drow[j] = arow[j] - np.sqrt(v.real * v.real + v.imag * v.imag) if ok else zero
    if nbad:
        for j in range(n):
            v = zrow[j]
            if mrow[j] and not fast_ok(v.real, v.imag):
                re2, im2 = project_pixel(v.real, v.imag, arow[j])
                buf[j] = complex(re2, im2)
                drow[j] = arow[j] - np.sqrt(v.real * v.real + v.imag * v.imag)
    for j in range(n):
        zrow[j] = buf[j]


@jit
def fourier_rows(z, amp, meas, diff):
    # per row: the projection (strict) -- z <- P(z) (fourier_project) or, with diff,
    # z <- P(z) - z (diff_row) -- which also leaves b - |z| in a row buffer, then its sums
    # (fastmath) from that buffer, still in L1; separately compiled functions, so each keeps
    # its own floating-point flags.  (The sums used to take |z| again in a fastmath pass over
    # the row before the projection: fourier_diff 1.29x / 1.38x slower at 128^2 / 480^2 than
    # with the differences from the projection's pass, one AMD EPYC core, side by side)
    my, mx = z.shape
    buf = np.empty(mx, z.dtype)
    drow = np.empty(mx, amp.dtype)
    num = 0.0
    cost = 0.0
    for i in range(my):
        if diff:
            diff_row(z[i], amp[i], meas[i], buf, drow)
        else:
            fourier_project(z[i], amp[i], meas[i], buf, drow)
        n, c = row_sums(drow)
        num += n
        cost += c
    return num, cost


@jit
def fourier(z, amp, meas):
    return fourier_rows(z, amp, meas, False)


@jit
def grad_norms(P, O, psi, psit, y0, x0):
    # row sums in the arrays' precision, added in float64 (as grad_norms_r)
    my, mx = P.shape
    np_ = 0.0
    no = 0.0
    zero = P.real.dtype.type(0)
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        prow = P[i]
        srow = psi[i]
        trow = psit[i]
        ap = zero
        ao = zero
        for j in range(mx):
            pr = prow[j].real
            pi = prow[j].imag
            orr = orow[j].real
            oi = orow[j].imag
            rr = trow[j].real - srow[j].real
            ri = trow[j].imag - srow[j].imag
            r2 = rr * rr + ri * ri
            ap += (pr * pr + pi * pi) * r2
            ao += (orr * orr + oi * oi) * r2
        np_ += ap
        no += ao
    return np_, no


@jit
def update_scalar(P, O, psi, psit, y0, x0, fo, fp, do_probe):
    # ePIE / CRISP: O += fo conj(P) R, P += fp conj(O_old) R (fo = s_o / |P|max^2);
    # R = psit - psi with the exit wave psi kept from exit_wave (recomputing P * O here was
    # 3x slower: the compiler cannot vectorise reads of rows it is also writing)
    # (fp = 0 without the probe update, set by the caller: an in-kernel ``fp * 0`` is float64
    # in numba and widened the whole update to float64)
    my, mx = P.shape
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        prow = P[i]
        srow = psi[i]
        trow = psit[i]
        for j in range(mx):
            pr = prow[j].real
            pi = prow[j].imag
            orr = orow[j].real
            oi = orow[j].imag
            rr = trow[j].real - srow[j].real
            ri = trow[j].imag - srow[j].imag
            orow[j] = complex(orr + fo * (pr * rr + pi * ri), oi + fo * (pr * ri - pi * rr))
            prow[j] = complex(pr + fp * (orr * rr + oi * ri), pi + fp * (orr * ri - oi * rr))


@jitq
def update_regularised(P, O, psi, psit, y0, x0, so, sp, cgo, gpm, cgp, gom, zero):
    # rPIE / mPIE: element-wise denominators (1 - g)|Q|^2 + g |Q|max^2, with cg = 1 - g and
    # gm = g |Q|max^2 rounded to the arrays' precision by the caller (the torch twin's
    # arithmetic; an in-kernel ``1 - g`` is float64 in numba and widened the update to float64)
    my, mx = P.shape
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        prow = P[i]
        srow = psi[i]
        trow = psit[i]
        for j in range(mx):
            pr = prow[j].real
            pi = prow[j].imag
            orr = orow[j].real
            oi = orow[j].imag
            rr = trow[j].real - srow[j].real
            ri = trow[j].imag - srow[j].imag
            den_o = cgo * (pr * pr + pi * pi) + gpm
            den_p = cgp * (orr * orr + oi * oi) + gom
            fo = so / den_o if den_o > zero else zero
            fp = sp / den_p if den_p > zero else zero
            orow[j] = complex(orr + fo * (pr * rr + pi * ri), oi + fo * (pr * ri - pi * rr))
            prow[j] = complex(pr + fp * (orr * rr + oi * ri), pi + fp * (orr * ri - oi * rr))


real_type = {np.dtype(np.complex64): np.float32, np.dtype(np.complex128): np.float64}


def update(P, O, psi, psit, y0, x0, so, sp, go, gp, pm, om, do_probe):
    rt = real_type[P.dtype]  # scalars in the arrays' precision (mixed types do not vectorise)
    if go == 1.0 and gp == 1.0:
        fo = so / pm if pm > 0 else 0.0
        fp = sp / om if (om > 0 and do_probe) else 0.0
        update_scalar(P, O, psi, psit, y0, x0, rt(fo), rt(fp), bool(do_probe))
    else:
        update_regularised(P, O, psi, psit, y0, x0, rt(so), rt(sp if do_probe else 0.0),
                           *reg_terms(rt, go, gp, pm, om), rt(0))


def reg_terms(rt, go, gp, pm, om):
    """``(1 - g_o, g_o pm, 1 - g_p, g_p om)`` in the arrays' real type ``rt``: the terms of the
    regularised denominators ``(1 - g)|Q|^2 + g |Q|max^2`` as the torch twin rounds them."""
    return rt(1.0 - go), rt(go * pm), rt(1.0 - gp), rt(gp * om)


@strict
def diff_row(zrow, arow, mrow, buf, drow):
    # fourier_project's projection on one row, minus the row (strict IEEE): the fast pass
    # into buf, the exact rule on the pixels it left (read from the unchanged row), then
    # z <- P(z) - z is written back; unmeasured pixels get 0.  drow as in fourier_project
    n = zrow.size
    nbad = np.int32(0)
    zero = drow.dtype.type(0)  # (not arow[0] - arow[0]: NaN for an inf amplitude)
    for j in range(n):
        v = zrow[j]
        re2, im2, ok, bad = project_fast(v.real, v.imag, arow[j], mrow[j])
        nbad = max(nbad, np.int32(bad))
        buf[j] = complex(re2 - v.real, im2 - v.imag)
        drow[j] = arow[j] - np.sqrt(v.real * v.real + v.imag * v.imag) if ok else zero
    if nbad:
        for j in range(n):
            v = zrow[j]
            if mrow[j] and not fast_ok(v.real, v.imag):
                re2, im2 = project_pixel(v.real, v.imag, arow[j])
                buf[j] = complex(re2 - v.real, im2 - v.imag)
                drow[j] = arow[j] - np.sqrt(v.real * v.real + v.imag * v.imag)
    for j in range(n):
        zrow[j] = buf[j]


@jit
def fourier_diff(z, amp, meas):
    # fourier_rows with z <- P(z) - z
    return fourier_rows(z, amp, meas, True)


@jit
def grad_norms_r(P, O, R, y0, x0):
    # each row summed in the arrays' precision, the row sums in float64: a float64 accumulator
    # per term halved the vector width (128^2 complex64 on one Xeon core: 8.7 -> 5.6 us)
    my, mx = P.shape
    np_ = 0.0
    no = 0.0
    zero = P.real.dtype.type(0)
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        prow = P[i]
        rrow = R[i]
        ap = zero
        ao = zero
        for j in range(mx):
            pr = prow[j].real
            pi = prow[j].imag
            orr = orow[j].real
            oi = orow[j].imag
            rr = rrow[j].real
            ri = rrow[j].imag
            r2 = rr * rr + ri * ri
            ap += (pr * pr + pi * pi) * r2
            ao += (orr * orr + oi * oi) * r2
        np_ += ap
        no += ao
    return np_, no


@jitq
def update_exit(P, O, R, y0, x0, fo_, fp_, so_, sp_, cgo_, gpm_, cgp_, gom_, reg,
                psi, y1, x1, nxt, bp, bo, ip, io):
    # The update of this position (O += fo conj(P) R, P += fp conj(O_old) R; rPIE's
    # element-wise denominators when reg) and, in the same pass, the exit wave of the next
    # position (P_new * O_new on its window) with max|P_new|^2 and max|O_next|^2 (integer
    # views, as exit_wave).  Rows are visited so that every object row the next window
    # reads is read after this update wrote it and never written again: with d = y1 - y0,
    # exit row i follows update row i + max(d, 0).
    # (rPIE's denominators with cg = 1 - g and gm = g |Q|max^2 from the caller, as in
    # update_regularised; the eight scalars come as Python floats and are rounded to the
    # arrays' precision here, once: NumPy's float32(x) costs ~0.8 us a scalar in Python)
    ft = bp.dtype.type
    fo, fp, so, sp = ft(fo_), ft(fp_), ft(so_), ft(sp_)
    cgo, gpm, cgp, gom = ft(cgo_), ft(gpm_), ft(cgp_), ft(gom_)
    my, mx = P.shape
    lag = y1 - y0 if (nxt and y1 > y0) else 0
    mp = ip.dtype.type(0)  # (``ip[0] * 0`` is int64 in numba: a 4-wide max, 5x slower)
    mo = mp
    zero = bp.dtype.type(0)
    for t in range(my + lag):
        if t < my:
            orow = O[y0 + t, x0:x0 + mx]
            prow = P[t]
            rrow = R[t]
            if reg:
                for j in range(mx):
                    pr = prow[j].real
                    pi = prow[j].imag
                    orr = orow[j].real
                    oi = orow[j].imag
                    rr = rrow[j].real
                    ri = rrow[j].imag
                    den_o = cgo * (pr * pr + pi * pi) + gpm
                    den_p = cgp * (orr * orr + oi * oi) + gom
                    f_o = so / den_o if den_o > zero else zero
                    f_p = sp / den_p if den_p > zero else zero
                    npr = pr + f_p * (orr * rr + oi * ri)
                    npi = pi + f_p * (orr * ri - oi * rr)
                    orow[j] = complex(orr + f_o * (pr * rr + pi * ri),
                                      oi + f_o * (pr * ri - pi * rr))
                    prow[j] = complex(npr, npi)
                    bp[j] = npr * npr + npi * npi
            else:
                for j in range(mx):
                    pr = prow[j].real
                    pi = prow[j].imag
                    orr = orow[j].real
                    oi = orow[j].imag
                    rr = rrow[j].real
                    ri = rrow[j].imag
                    npr = pr + fp * (orr * rr + oi * ri)
                    npi = pi + fp * (orr * ri - oi * rr)
                    orow[j] = complex(orr + fo * (pr * rr + pi * ri),
                                      oi + fo * (pr * ri - pi * rr))
                    prow[j] = complex(npr, npi)
                    bp[j] = npr * npr + npi * npi
            for j in range(mx):
                a = ip[j]
                mp = a if a > mp else mp  # noqa: FURB136
        i = t - lag
        if nxt and i >= 0:
            orow = O[y1 + i, x1:x1 + mx]
            prow = P[i]
            srow = psi[i]
            for j in range(mx):
                pr = prow[j].real
                pi = prow[j].imag
                orr = orow[j].real
                oi = orow[j].imag
                srow[j] = complex(pr * orr - pi * oi, pr * oi + pi * orr)
                bo[j] = orr * orr + oi * oi
            for j in range(mx):
                b = io[j]
                mo = b if b > mo else mo  # noqa: FURB136
    ip[0] = mp
    io[0] = mo
    return bp[0], bo[0]


def update_exit_py(P, O, R, y0, x0, so, sp, go, gp, pm, om, do_probe, psi, y1, x1, nxt,
                   bufs):
    """Update of one position and, when ``nxt``, the exit wave of the next window into
    ``psi``; returns ``(max|P_new|^2, max|O_next|^2)`` (the second is meaningless without
    ``nxt``)."""
    sp = float(sp) if do_probe else 0.0
    so, go, gp, pm, om = float(so), float(go), float(gp), float(pm), float(om)
    reg = not (go == 1.0 and gp == 1.0)
    fo = so / pm if pm > 0 else 0.0
    fp = sp / om if om > 0 else 0.0
    # the kernel rounds the scalars to the arrays' precision (reg_terms' values, unrounded)
    return update_exit(P, O, R, y0, x0, fo, fp, so, sp, 1.0 - go, go * pm, 1.0 - gp, gp * om,
                       reg, psi, y1, x1, bool(nxt), *bufs)

# ------------------------------------------------------------------ K modes


@jit
def exit_k(psi, P, O, y0, x0, bp, bo):
    # psi_k = P_k O, max sum_k |P_k|^2, max |O|^2 (float compares: rows are short sums)
    nk, my, mx = P.shape
    mp = bp[0] * 0
    mo = mp
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        for j in range(mx):
            bp[j] = 0
            orr = orow[j].real
            oi = orow[j].imag
            bo[j] = orr * orr + oi * oi
        for k in range(nk):
            prow = P[k, i]
            srow = psi[k, i]
            for j in range(mx):
                pr = prow[j].real
                pi = prow[j].imag
                orr = orow[j].real
                oi = orow[j].imag
                srow[j] = complex(pr * orr - pi * oi, pr * oi + pi * orr)
                bp[j] += pr * pr + pi * pi
        for j in range(mx):
            mp = max(mp, bp[j])
            mo = max(mo, bo[j])
    return mp, mo


@jitq
def fourier_k(z, amp, meas, bg, has_bg, acc, cnt, fit, sbuf, fbuf):
    # The incoherent-sum projection (fourier_modes) as z_k <- P(z)_k - z_k, its sums, and
    # the EM background terms acc += I / S, cnt += 1 on measured pixels (fit)
    nk, my, mx = z.shape
    num = 0.0
    cost = 0.0
    one = sbuf.dtype.type(1)  # (``sbuf[0] * 0 + 1`` would be float64 in numba)
    zero = one - one
    for i in range(my):
        arow = amp[i]
        mrow = meas[i]
        for j in range(mx):
            sbuf[j] = bg[i, j] if has_bg else 0
        for k in range(nk):
            zrow = z[k, i]
            for j in range(mx):
                re = zrow[j].real
                im = zrow[j].imag
                sbuf[j] += re * re + im * im
        for j in range(mx):
            s = sbuf[j]
            a = np.sqrt(s)
            b = arow[j]
            m = mrow[j]
            d = np.float64(b - a)
            num += abs(d) if m else 0.0
            cost += d * d if m else 0.0
            f = b / a if a > 0 else one
            fbuf[j] = (f - one) if m else zero
        if fit:
            arow2 = acc[i]
            crow = cnt[i]
            for j in range(mx):
                s = sbuf[j]
                m = mrow[j]
                b = arow[j]
                arow2[j] += (b * b) / s if (m and s > zero) else zero
                crow[j] += 1 if m else 0
        for k in range(nk):
            zrow = z[k, i]
            for j in range(mx):
                f = fbuf[j]
                re = zrow[j].real
                im = zrow[j].imag
                zrow[j] = complex(re * f, im * f)
        for j in range(mx):  # S = 0: mode 0 gets the amplitude, the others stay 0
            if mrow[j] and not sbuf[j] > 0:
                z[0, i, j] = complex(arow[j], 0)
    return num, cost


@jitq
def update_k(P, O, R, y0, x0, so_, sp_, cgo_, gpm_, cgp_, gom_, gr, gi, p2):
    # dO = s_o sum_k conj(P_k) R_k / ((1-g_o) sum_k|P_k|^2 + g_o pm),
    # dP_k = s_p conj(O) R_k / ((1-g_p)|O|^2 + g_p om), both from the pre-update values
    # (cg = 1 - g, gm = g |Q|max^2 from the caller, as in update_regularised; rounded to the
    # arrays' precision here, as in update_exit)
    nk, my, mx = P.shape
    ft = gr.dtype.type
    so, sp, cgo, gpm, cgp, gom = ft(so_), ft(sp_), ft(cgo_), ft(gpm_), ft(cgp_), ft(gom_)
    zero = ft(0)
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        for j in range(mx):
            gr[j] = 0
            gi[j] = 0
            p2[j] = 0
        for k in range(nk):
            prow = P[k, i]
            rrow = R[k, i]
            for j in range(mx):
                pr = prow[j].real
                pi = prow[j].imag
                rr = rrow[j].real
                ri = rrow[j].imag
                gr[j] += pr * rr + pi * ri
                gi[j] += pr * ri - pi * rr
                p2[j] += pr * pr + pi * pi
        for k in range(nk):
            prow = P[k, i]
            rrow = R[k, i]
            for j in range(mx):
                orr = orow[j].real
                oi = orow[j].imag
                rr = rrow[j].real
                ri = rrow[j].imag
                den_p = cgp * (orr * orr + oi * oi) + gom
                f_p = sp / den_p if den_p > zero else zero
                prow[j] = complex(prow[j].real + f_p * (orr * rr + oi * ri),
                                  prow[j].imag + f_p * (orr * ri - oi * rr))
        for j in range(mx):
            den_o = cgo * p2[j] + gpm
            f_o = so / den_o if den_o > zero else zero
            orow[j] = complex(orow[j].real + f_o * gr[j], orow[j].imag + f_o * gi[j])


@jit
def grad_norms_k(P, O, R, y0, x0, gr, gi):
    # row sums in the arrays' precision, added in float64 (as grad_norms_r)
    nk, my, mx = P.shape
    np_ = 0.0
    no = 0.0
    zero = gr.dtype.type(0)
    for i in range(my):
        orow = O[y0 + i, x0:x0 + mx]
        for j in range(mx):
            gr[j] = 0
            gi[j] = 0
        ao = zero
        for k in range(nk):
            prow = P[k, i]
            rrow = R[k, i]
            for j in range(mx):
                pr = prow[j].real
                pi = prow[j].imag
                rr = rrow[j].real
                ri = rrow[j].imag
                gr[j] += pr * rr + pi * ri
                gi[j] += pr * ri - pi * rr
                orr = orow[j].real
                oi = orow[j].imag
                ao += (orr * orr + oi * oi) * (rr * rr + ri * ri)
        ap = zero
        for j in range(mx):
            ap += gr[j] * gr[j] + gi[j] * gi[j]
        np_ += ap
        no += ao
    return np_, no


@jit
def shift_sums_k(P, O, R, y0, x0, gyr, gyi, gxr, gxi):
    # the normal equations of positions.shift_estimate: g_y, g_x central differences of
    # the pre-update patch (one-sided at its edges; rows of them in the buffers), a = P_k g_y,
    # b = P_k g_x; returns (|a|^2, |b|^2, Re<a,b>, Re<a,R>, Re<b,R>) summed over modes and
    # pixels.  Frames of at least 2 x 2 pixels.
    nk, my, mx = P.shape
    ayy = 0.0
    axx = 0.0
    axy = 0.0
    by = 0.0
    bx = 0.0
    half = gyr.dtype.type(0.5)  # (``gyr[0] * 0 + 0.5`` would be float64 in numba)
    one = half * 2
    for i in range(my):
        ia = i - 1 if i > 0 else 0
        ib = i + 1 if i < my - 1 else my - 1
        cy = half if (i > 0 and i < my - 1) else one
        row = O[y0 + i, x0:x0 + mx]
        up = O[y0 + ia, x0:x0 + mx]
        dn = O[y0 + ib, x0:x0 + mx]
        for j in range(mx):
            gyr[j] = cy * (dn[j].real - up[j].real)
            gyi[j] = cy * (dn[j].imag - up[j].imag)
        for j in range(1, mx - 1):
            gxr[j] = half * (row[j + 1].real - row[j - 1].real)
            gxi[j] = half * (row[j + 1].imag - row[j - 1].imag)
        gxr[0] = row[1].real - row[0].real
        gxi[0] = row[1].imag - row[0].imag
        gxr[mx - 1] = row[mx - 1].real - row[mx - 2].real
        gxi[mx - 1] = row[mx - 1].imag - row[mx - 2].imag
        for k in range(nk):
            prow = P[k, i]
            rrow = R[k, i]
            for j in range(mx):
                pr = prow[j].real
                pi = prow[j].imag
                rr = rrow[j].real
                ri = rrow[j].imag
                ar = pr * gyr[j] - pi * gyi[j]
                ai = pr * gyi[j] + pi * gyr[j]
                br = pr * gxr[j] - pi * gxi[j]
                bi = pr * gxi[j] + pi * gxr[j]
                ayy += ar * ar + ai * ai
                axx += br * br + bi * bi
                axy += ar * br + ai * bi
                by += ar * rr + ai * ri
                bx += br * rr + bi * ri
    return ayy, axx, axy, by, bx


def update_k_py(P, O, R, y0, x0, so, sp, go, gp, pm, om, do_probe, bufs):
    sp = float(sp) if do_probe else 0.0
    go, gp, pm, om = float(go), float(gp), float(pm), float(om)
    update_k(P, O, R, y0, x0, float(so), sp, 1.0 - go, go * pm, 1.0 - gp, gp * om, *bufs)


@strict
def momentum(v, x, xo, fr, fb):
    # mPIE's momentum step in one pass (strict IEEE, the operation order of the torch
    # reference): v <- fr v + (x - xo); x <- x + fb v; xo <- x
    for i in range(x.size):
        a = x[i]
        b = xo[i]
        c = v[i]
        wr = c.real * fr + (a.real - b.real)
        wi = c.imag * fr + (a.imag - b.imag)
        v[i] = complex(wr, wi)
        nr = a.real + fb * wr
        ni = a.imag + fb * wi
        x[i] = complex(nr, ni)
        xo[i] = complex(nr, ni)


sweep = SimpleNamespace(fourier_diff=fourier_diff, grad_norms_r=grad_norms_r,
                        update_exit=update_exit_py, momentum=momentum)
modes = SimpleNamespace(exit=exit_k, fourier=fourier_k, update=update_k_py,
                        grad_norms=grad_norms_k, shift_sums=shift_sums_k)


SINGLE = (exit_wave, fourier, grad_norms, update)
