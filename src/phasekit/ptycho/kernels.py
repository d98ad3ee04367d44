r"""Per-position hot steps of the PIE family: a plain-torch reference (what CUDA runs and what the
tests compare against) and fused single-pass numba kernels for the CPU.

One position of every engine is (the ePIE listing of the CRISP paper, sec. 2.2, and its
``CRISPdirection``, sec. 3.4, reconstructed from the text; the listings are not legible in our copy)::

    psi = P_n * O_n                       (exit wave; also max|P_n|^2, max|O_n|^2)
    z = F psi;  z <- b sign(z) on measured pixels   (eq. (3); R_F and cost terms on the way)
    psi~ = F^-1 z;  R = psi~ - psi
    O_n += s_o conj(P_n) R / ((1 - g_o)|P_n|^2 + g_o max|P_n|^2)
    P_n += s_p conj(O_n) R / ((1 - g_p)|O_n|^2 + g_p max|O_n|^2)     (old O_n: simultaneous)

ePIE is ``g = 1`` with ``s = alpha``; rPIE is ``s = 1`` (or its step) with ``g = gamma``; CRISP is
``g = 1`` with ``s = lambda G_nu |P_n|^2_max`` (so the update is ``lambda G_nu conj(P_n) R``).  The
cost :math:`\|\mathbf R\|^2` comes from the Fourier side for free (unitary FFT:
:math:`\|\tilde\Psi-\Psi\|^2=\sum_{\rm measured}(b-|z|)^2`).
"""
from __future__ import annotations

import os

import numpy as np
import torch



def _build():  # pragma: no cover - compiled code
    """Branch-free loops over row views (unit stride, non-negative indices) with real arithmetic
    and scalars in the arrays' precision, so that LLVM vectorises them (~10x faster than the
    naive 2-D form)."""
    from ..operators.modulus import fast_ok, jit_with_helpers, project_fast, project_pixel

    # numba.njit(cache=True) whose cache also goes stale when operators/modulus.py changes
    jit = jit_with_helpers(fastmath=True)
    # kernels that store a modulus projection: strict IEEE arithmetic (see operators/modulus.py)
    strict = jit_with_helpers(fastmath=False, error_model="numpy")

    @jit
    def exit_wave(psi, P, O, y0, x0, bp, bo, ip, io):
        # psi = P * O_patch and the maxima of |P|^2, |O_patch|^2.  A float max reduction does
        # not vectorise (NaN semantics), so the squared moduli of a row go to the buffers bp, bo
        # and the maxima are taken over their integer views ip, io (same memory): for
        # non-negative IEEE floats the integer order is the float order (3x faster, exact).
        my, mx = P.shape
        mp = ip[0] * 0
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
    def fourier_sums(zrow, arow, mrow):
        # R-factor numerator and cost terms of one row (measured pixels).  Sums only, nothing
        # stored, so fastmath (vectorised, reassociated: the same bits run to run on a host, and
        # an approximate root is allowed here).  |z| in the data precision, each difference
        # widened to float64 before it is summed: |z| is exact to a few ulp except where the
        # float32 |z|^2 is subnormal (|z| < 1e-19, counted as 0: an absolute error < 1e-19 in
        # b - |z|) or overflows (|z| > 1.8e19, not reachable from real frames); the float64
        # form of both passes in one loop was 2x slower
        num = 0.0
        cost = 0.0
        for j in range(zrow.size):
            re = zrow[j].real
            im = zrow[j].imag
            d = np.float64(arow[j] - np.sqrt(re * re + im * im))
            ok = mrow[j]
            num += abs(d) if ok else 0.0
            cost += d * d if ok else 0.0
        return num, cost

    @strict
    def fourier_project(zrow, arow, mrow, buf):
        # the modulus projection of operators/modulus.py on one row, in place, in the data
        # precision and strict IEEE: the fast pass into the scratch row buf, the exact rule on the
        # pixels it left (zero, tiny, huge, non-finite |z|; read from the row, still unchanged),
        # then the row is written back.  (Not in place: after the pass a projected pixel with a
        # zero or tiny amplitude fails fast_ok too, and the exact rule on it would change bits,
        # e.g. the sign of a zero.)  The bits of project_pixel / project_t
        n = zrow.size
        nbad = 0
        for j in range(n):
            v = zrow[j]
            re2, im2, ok, bad = project_fast(v.real, v.imag, arow[j], mrow[j])
            nbad += bad
            buf[j] = complex(re2, im2)
        if nbad:
            for j in range(n):
                v = zrow[j]
                if mrow[j] and not fast_ok(v.real, v.imag):
                    re2, im2 = project_pixel(v.real, v.imag, arow[j])
                    buf[j] = complex(re2, im2)
        for j in range(n):
            zrow[j] = buf[j]

    @jit
    def fourier(z, amp, meas):
        # per row: the sums (fastmath), then the projection (strict) of the row still in L1;
        # separately compiled functions, so each keeps its own floating-point flags
        my, mx = z.shape
        buf = np.empty(mx, z.dtype)
        num = 0.0
        cost = 0.0
        for i in range(my):
            n, c = fourier_sums(z[i], amp[i], meas[i])
            num += n
            cost += c
            fourier_project(z[i], amp[i], meas[i], buf)
        return num, cost

    @jit
    def grad_norms(P, O, psi, psit, y0, x0):
        my, mx = P.shape
        np_ = 0.0
        no = 0.0
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
                r2 = rr * rr + ri * ri
                np_ += (pr * pr + pi * pi) * r2
                no += (orr * orr + oi * oi) * r2
        return np_, no

    @jit
    def update_scalar(P, O, psi, psit, y0, x0, fo, fp, do_probe):
        # ePIE / CRISP: O += fo conj(P) R, P += fp conj(O_old) R (fo = s_o / |P|max^2);
        # R = psit - psi with the exit wave psi kept from exit_wave (recomputing P * O here was
        # 3x slower: the compiler cannot vectorise reads of rows it is also writing)
        my, mx = P.shape
        fp = fp if do_probe else fp * 0
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

    @jit
    def update_regularised(P, O, psi, psit, y0, x0, so, sp, go, gp, pm, om, do_probe):
        # rPIE / mPIE: element-wise denominators (1 - g)|Q|^2 + g |Q|max^2
        my, mx = P.shape
        sp = sp if do_probe else sp * 0
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
                den_o = (1 - go) * (pr * pr + pi * pi) + go * pm
                den_p = (1 - gp) * (orr * orr + oi * oi) + gp * om
                fo = so / den_o if den_o > 0 else den_o * 0
                fp = sp / den_p if den_p > 0 else den_p * 0
                orow[j] = complex(orr + fo * (pr * rr + pi * ri), oi + fo * (pr * ri - pi * rr))
                prow[j] = complex(pr + fp * (orr * rr + oi * ri), pi + fp * (orr * ri - oi * rr))

    real_type = {np.dtype(np.complex64): np.float32, np.dtype(np.complex128): np.float64}

    def update(P, O, psi, psit, y0, x0, so, sp, go, gp, pm, om, do_probe):
        rt = real_type[P.dtype]  # scalars in the arrays' precision (mixed types do not vectorise)
        if go == 1.0 and gp == 1.0:
            fo = so / pm if pm > 0 else 0.0
            fp = sp / om if om > 0 else 0.0
            update_scalar(P, O, psi, psit, y0, x0, rt(fo), rt(fp), bool(do_probe))
        else:
            update_regularised(P, O, psi, psit, y0, x0, rt(so), rt(sp), rt(go), rt(gp), rt(pm),
                               rt(om), bool(do_probe))

    return exit_wave, fourier, grad_norms, update


try:
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    _K = _build()
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _K = None
    HAVE_NUMBA = False


def fused_ok(*ts: torch.Tensor) -> bool:
    """The fused CPU kernels apply (numba present, CPU tensors)."""
    return HAVE_NUMBA and all(t.device.type == "cpu" for t in ts)


# --------------------------------------------------------------------------- reference (torch)
def exit_wave_ref(P, O):
    psi = P * O
    pm = (P.real ** 2 + P.imag ** 2).max()
    om = (O.real ** 2 + O.imag ** 2).max()
    return psi, pm, om


def fourier_ref(z, amp, meas):
    """In place modulus projection (sign(0) = 1, unmeasured pixels free); returns the R_F
    numerator and :math:`\\sum_{\\rm measured}(b-|z|)^2` as 0-d tensors."""
    a = torch.sqrt(z.real ** 2 + z.imag ** 2)
    d = (amp - a) * meas
    num = d.abs().sum(dtype=torch.float64)
    cost = (d * d).sum(dtype=torch.float64)
    ph = torch.where(a > 0, z / torch.where(a > 0, a, torch.ones_like(a)), torch.ones_like(z))
    z.copy_(torch.where(meas, amp * ph, z))
    return num, cost


def grad_norms_ref(P, O, psit):
    r = psit - P * O
    r2 = r.real ** 2 + r.imag ** 2
    return ((P.real ** 2 + P.imag ** 2) * r2).sum(dtype=torch.float64), \
        ((O.real ** 2 + O.imag ** 2) * r2).sum(dtype=torch.float64)


def update_ref(P, O, psit, so, sp, go, gp, pm, om, do_probe: bool):
    """In place on the views ``P`` (the shifted probe) and ``O`` (the object patch)."""
    r = psit - P * O
    p2 = P.real ** 2 + P.imag ** 2
    o2 = O.real ** 2 + O.imag ** 2
    den_o = (1 - go) * p2 + go * pm
    dO = torch.where(den_o > 0, so / torch.where(den_o > 0, den_o, 1.0), 0.0) * (P.conj() * r)
    if do_probe:
        den_p = (1 - gp) * o2 + gp * om
        dP = torch.where(den_p > 0, sp / torch.where(den_p > 0, den_p, 1.0), 0.0) * (O.conj() * r)
        P.add_(dP.to(P.dtype))
    O.add_(dO.to(O.dtype))


# --------------------------------------------------------------------------- fused entry points
def fused_kernels():
    """``(exit_wave, fourier, grad_norms, update)`` numba kernels on NumPy views; the object is
    passed whole (C-contiguous) with the patch offsets ``(y0, x0)``, so inner loops vectorise.
    ``exit_wave`` also takes two row buffers and their integer views (:func:`max_buffers`)."""
    return _K


def max_buffers(n: int, real_dtype) -> tuple:
    """Scratch rows for :func:`fused_kernels`' ``exit_wave``: ``(bp, bo, ip, io)``, two real
    buffers of length ``n`` and their same-width signed-integer views."""
    rt = np.dtype(real_dtype)
    it = np.int32 if rt.itemsize == 4 else np.int64
    bp = np.zeros(n, rt)
    bo = np.zeros(n, rt)
    return bp, bo, bp.view(it), bo.view(it)


# --------------------------------------------------------------------------- modes (torch)
# The general reference step: K probe modes (K = 1 included), any propagator, an optional
# background.  For K = 1 and no background the arithmetic is that of the functions above.
def exit_wave_modes(P, O):
    """``psi_k = P_k O`` (K, My, Mx), :math:`\\max\\sum_k|P_k|^2` and :math:`\\max|O|^2`."""
    psi = P * O
    pm = (P.real ** 2 + P.imag ** 2).sum(0).max()
    om = (O.real ** 2 + O.imag ** 2).max()
    return psi, pm, om


def fourier_modes(z, amp, meas, background=None):
    r"""In place modulus projection of K detector waves (K, My, Mx) for the incoherent sum
    (Thibault & Menzel 2013): every mode is scaled by :math:`\sqrt I/\sqrt{\sum_k|z_k|^2+B}` on
    measured pixels (where the model is 0: mode 0 gets the measured amplitude, the others 0,
    i.e. ``sign(0) = 1``).  Returns the R_F numerator, :math:`\sum(b-a)^2` (0-d tensors) and
    the model intensity :math:`a^2=\sum_k|z_k|^2+B` (My, Mx)."""
    s = (z.real ** 2 + z.imag ** 2).sum(0)
    if background is not None:
        s = s + background
    a = torch.sqrt(s)
    d = (amp - a) * meas
    num = d.abs().sum(dtype=torch.float64)
    cost = (d * d).sum(dtype=torch.float64)
    pos = a > 0
    ph = z / torch.where(pos, a, torch.ones_like(a))
    ph = torch.where(pos, ph, torch.zeros_like(ph))
    ph[0] = torch.where(pos, ph[0], torch.ones_like(ph[0]))
    z.copy_(torch.where(meas, amp * ph, z))
    return num, cost, s


def grad_norms_modes(P, O, psit, psi):
    r""":math:`\|\sum_k\bar P_k R_k\|^2` and :math:`\sum_k\|\bar O R_k\|^2` (CRISP's
    denominators with modes), ``R = psit - psi``."""
    r = psit - psi
    go = (P.conj() * r).sum(0)
    r2 = r.real ** 2 + r.imag ** 2
    return (go.real ** 2 + go.imag ** 2).sum(dtype=torch.float64), \
        ((O.real ** 2 + O.imag ** 2) * r2).sum(dtype=torch.float64)


def update_modes(P, O, psi, psit, so, sp, go, gp, pm, om, do_probe: bool):
    r"""In place on the views ``P`` (K shifted modes) and ``O`` (the object patch), both from
    the pre-update values: :math:`\Delta O=s_o\sum_k\bar P_kR_k/((1-g_o)\sum_k|P_k|^2+g_o
    p_m)`, :math:`\Delta P_k=s_p\bar OR_k/((1-g_p)|O|^2+g_po_m)`."""
    r = psit - psi
    p2 = (P.real ** 2 + P.imag ** 2).sum(0)
    o2 = O.real ** 2 + O.imag ** 2
    den_o = (1 - go) * p2 + go * pm
    dO = torch.where(den_o > 0, so / torch.where(den_o > 0, den_o, 1.0), 0.0) * \
        (P.conj() * r).sum(0)
    if do_probe:
        den_p = (1 - gp) * o2 + gp * om
        dP = torch.where(den_p > 0, sp / torch.where(den_p > 0, den_p, 1.0), 0.0) * (O.conj() * r)
        P.add_(dP.to(P.dtype))
    O.add_(dO.to(O.dtype))
