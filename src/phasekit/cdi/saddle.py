"""HIO as a saddle-point problem and the low-dimensional saddle-point solver of SO2D / SO4D.

Source: S. Marchesini, "Phase retrieval and saddle-point optimization", J. Opt. Soc. Am. A 24,
3289 (2007) (arXiv physics/0611233); equations as reconstructed in ``digests/002_saddle_hio.md``
(the preprint text lost nearly every equation body).

Notation (unitary FFT ``F``, so inner products can be taken in either space; ``<a|b>`` is
``sum conj(a) b`` and every gradient uses ``Re<a|b>``):

* ``P_s``: projection onto the (linear) object constraint -- the support, and realness when the
  problem asks for it; ``P_sbar = I - P_s``.  ``P_m = F^-1 P~_m F`` the modulus projection, with
  ``P~_m`` the identity on unmeasured Fourier pixels.
* the Lagrangian, eq. (17): ``L(rho) = eps_m^2(rho) - eps_s^2(rho)
  = ||P_m rho - rho||^2 - ||P_sbar rho||^2`` (:func:`lagrangian`).  HIO is descent in
  ``rho_s = P_s rho`` and ascent in ``rho_sbar`` (eq. (18)): the directions
  ``d_s = P_s (P_m - I) rho`` and ``d_sbar = -P_sbar P_m rho`` of
  :func:`phasekit.cdi.hio.hio_direction` (the one definition of HIO in phasekit), and one HIO
  step is ``rho + d_s + beta d_sbar`` (eqs. (19)-(21)).
* the subspace problem, eqs. (23)-(26): ``min_alpha max_beta L(rho + alpha d_s + beta d_sbar)``,
  and its k-direction generalisation ``L(tau) = L(rho + sum_i tau_i d_i)`` (SO4D uses
  ``k = 4``).  :class:`SubspaceLagrangian` evaluates ``L(tau)``, its gradient (eq. (27), (42))
  and Hessian (App. B, eqs. (43)-(48)) with **no FFT**: everything is an elementwise pass over the
  Fourier-space arrays plus dot products precomputed once per outer iteration.
* :func:`solve_saddle`: trust-region Newton with SR1 updates of the inverse Hessian and the
  safeguards of Sec. V (sign conditions eq. (30), exact Hessian + line search when the secant model
  is poor, SR1 skip rule, trust radius in ``[r_min, r_max]``, best-point / HIO fall-back).

With unmeasured Fourier pixels (beamstop), ``eps_m^2`` sums over measured pixels only; the
formulas below keep ``P~_m = I`` there, which adds the ``- 2 sum_unmeasured Re(conj d_i d_j)``
term to the Hessian (derived here; not in the paper, whose data are complete).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.errors import ConfigError
from ..operators.projections import apply_constraints, modulus_projection
from .hio import hio_direction

__all__ = ["tensor_views", "constrain_inplace", "lagrangian", "sda_directions", "SubspaceLagrangian", "solve_saddle", "SaddleSolution",
           "enforce_saddle_signs", "sr1_inverse_update", "support_violation"]


# --------------------------------------------------------------------------- real-space reference
def _linear_constraint(problem, x: torch.Tensor) -> torch.Tensor:
    """``P_s x`` for the linear constraint set of the problem (support, and realness)."""
    if problem.positive:
        raise ConfigError("the saddle-point formulation needs a linear constraint (support, "
                          "realness); positivity is a cone, use 'hio' instead")
    return apply_constraints(x, problem.support, real=problem.real)


def _modulus(problem, x: torch.Tensor) -> torch.Tensor:
    """``P_m x`` (reference, plain torch)."""
    return problem.ifft(modulus_projection(problem.fft(x), problem.amp, problem.measured))


def lagrangian(problem, x: torch.Tensor) -> float:
    """Marchesini 2007 eq. (17): ``L(rho) = ||P_m rho - rho||^2 - ||P_sbar rho||^2``.

    ``eps_m^2`` is taken over the measured Fourier pixels (``P~_m`` is the identity elsewhere);
    with the unitary FFT ``||P_m rho - rho|| = ||P~_m rho~ - rho~||``.  Computed in float64.

    Parameters
    ----------
    problem : CDIProblem
    x : complex tensor (work layout)
        Real-space iterate ``rho``.
    """
    z = problem.fft(x).to(torch.complex128)
    amp = problem.amp.to(torch.float64)
    meas = problem.measured
    eps_m2 = ((z.abs() - amp) ** 2)[meas].sum()
    xs = _linear_constraint(problem, x.to(torch.complex128))
    eps_s2 = (x.to(torch.complex128) - xs).abs().pow(2).sum()
    return float(eps_m2 - eps_s2)


def sda_directions(problem, x: torch.Tensor):
    """The steepest descent-ascent directions of eq. (18), in real space.

    Returns ``(d_s, d_sbar, y)`` with ``y = P_m x``, ``d_s = P_s (y - x)`` and
    ``d_sbar = -P_sbar y`` -- :func:`phasekit.cdi.hio.hio_direction` for the support constraint
    (realness, when asked, splits each pixel into its real part, in ``P_s``, and its imaginary
    part, in ``P_sbar``).
    """
    y = _modulus(problem, x)
    if not problem.real:
        d_s, d_sbar = hio_direction(x, y, problem.support)
        return d_s, d_sbar, y
    d_s = _linear_constraint(problem, y - x)
    d_sbar = _linear_constraint(problem, y) - y
    return d_s, d_sbar, y


def support_violation(problem, y: torch.Tensor) -> float:
    """Normalised support error of the modulus-projected iterate,
    ``eps^_s = ||P_sbar P_m rho|| / ||sqrt(I)||`` (digest 002 §9 item 3: the success metric; it
    equals ``||d_sbar|| / ||sqrt I||`` and is free during SO2D/SO4D).  ``y`` is ``P_m rho``."""
    if problem.real:
        viol = y - apply_constraints(y, problem.support, real=True)
    else:
        viol = torch.where(problem.support, torch.zeros_like(y), y)
    num = float(torch.linalg.vector_norm(viol))
    return num / math.sqrt(float((problem.amp.double() ** 2)[problem.measured].sum()))


# --------------------------------------------------------------------------- fused CPU kernels
def _build_kernels():  # pragma: no cover - compiled code
    import numba

    jit = numba.njit(fastmath=True, cache=True)

    @jit
    def eval2(z, d0, d1, amp, meas, t0, t1, hess, out):
        """One pass for K = 2: ``out = [S_unmeas, S_amp, q0, q1, h00, h01, h11]``.  Branch-free
        (selects) so that LLVM vectorises the loop."""
        zf = z.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        a0 = d0.ravel()
        a1 = d1.ravel()
        s1 = 0.0
        s2 = 0.0
        q0 = 0.0
        q1 = 0.0
        h00 = 0.0
        h01 = 0.0
        h11 = 0.0
        if not hess:
            for i in range(zf.size):
                u0 = a0[i]
                u1 = a1[i]
                re = zf[i].real + t0 * u0.real + t1 * u1.real
                im = zf[i].imag + t0 * u0.imag + t1 * u1.imag
                m2 = re * re + im * im
                pos = m2 > 0
                m = np.sqrt(m2)
                inv = 1.0 / m if pos else 0.0
                ok = mf[i]
                b = af[i] if ok else 0.0
                # measured: P~_m = b u (u = 1 where rho~ = 0); unmeasured: rho~ itself
                f = b * inv if ok else 1.0
                pr = re * f if pos or not ok else b
                pi = im * f
                s1 += 0.0 if ok else m2
                s2 += b * m
                q0 += u0.real * pr + u0.imag * pi
                q1 += u1.real * pr + u1.imag * pi
        else:
            for i in range(zf.size):
                u0 = a0[i]
                u1 = a1[i]
                re = zf[i].real + t0 * u0.real + t1 * u1.real
                im = zf[i].imag + t0 * u0.imag + t1 * u1.imag
                m2 = re * re + im * im
                pos = m2 > 0
                m = np.sqrt(m2)
                inv = 1.0 / m if pos else 0.0
                ok = mf[i]
                b = af[i] if ok else 0.0
                f = b * inv if ok else 1.0
                pr = re * f if pos or not ok else b
                pi = im * f
                s1 += 0.0 if ok else m2
                s2 += b * m
                q0 += u0.real * pr + u0.imag * pi
                q1 += u1.real * pr + u1.imag * pi
                # Hessian: measured w b_j b_k with b_k = Im(conj(u) d_k), w = b/|rho~|;
                # unmeasured Re(conj(d_j) d_k)
                c = re * inv
                sn = im * inv
                p0 = c * u0.imag - sn * u0.real
                p1 = c * u1.imag - sn * u1.real
                w = b * inv
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

    @jit
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
        c0 = 0.0
        a0 = 0.0
        a1 = 0.0
        p0 = 0.0
        p1 = 0.0
        g00 = 0.0
        g01 = 0.0
        g11 = 0.0
        s1 = 0.0
        s2 = 0.0
        q0 = 0.0
        q1 = 0.0
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
            m2 = re * re + im * im
            pos = m2 > 0
            m = np.sqrt(m2)
            inv = 1.0 / m if pos else 0.0
            ok = mf[i]
            b = af[i] if ok else 0.0
            f = b * inv if ok else 1.0
            pr = re * f if pos or not ok else b
            pi = im * f
            s1 += 0.0 if ok else m2
            s2 += b * m
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

    @jit
    def mask_inplace(y, supp, real):
        """``y <- P_s y``: zero outside the support (and the imaginary part with realness)."""
        yf = y.ravel()
        sf = supp.ravel()
        for i in range(yf.size):
            v = yf[i]
            s = sf[i]
            yf[i] = complex(v.real if s else 0.0, v.imag if (s and not real) else 0.0)

    @jit
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

    @jit
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
            m2 = re * re + im * im
            if mf[i]:
                b = af[i]
                if m2 > 0:
                    m = np.sqrt(m2)
                    c = re / m
                    s = im / m
                else:
                    m = 0.0
                    c = 1.0
                    s = 0.0
                acc[1] += b * m
                for k in range(K):
                    acc[2 + k] += b * (dr[k] * c + di[k] * s)
                if hess and m > 0:
                    w = b / m
                    for k in range(K):
                        pk[k] = c * di[k] - s * dr[k]
                    for k in range(K):
                        for j in range(k, K):
                            acc[2 + K + k * K + j] += w * pk[k] * pk[j]
            else:
                acc[0] += m2
                for k in range(K):
                    acc[2 + k] += dr[k] * re + di[k] * im
                if hess:
                    for k in range(K):
                        for j in range(k, K):
                            acc[2 + K + k * K + j] += dr[k] * dr[j] + di[k] * di[j]
        for k in range(out.size):
            out[k] = acc[k]

    @jit
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
            x0 = e - a
            x1 = e - mm
            D[0, i] = x0
            D[1, i] = x1
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

    @jit
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

    @jit
    def project_into(z, amp, meas, out):
        """``out = P~_m z`` (phase 1 where ``z = 0``; unmeasured pixels copied)."""
        zf = z.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        of = out.ravel()
        for i in range(zf.size):
            v = zf[i]
            re = v.real
            im = v.imag
            a2 = re * re + im * im
            b = af[i]
            pos = a2 > 0
            f = b / np.sqrt(a2) if pos else b
            re2 = re * f if pos else b
            im2 = im * f if pos else im * 0
            ok = mf[i]
            of[i] = complex(re2 if ok else re, im2 if ok else im)

    # ---- SO2D without stored directions: d0 = gms - gs and d1 = gms - gm are formed on the fly
    # (the same float32 differences the stored rows hold, so the results are the same) -- two
    # fewer arrays written per iteration and a working set that stays closer to the cache.
    @jit
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
        a0 = 0.0
        p0 = 0.0
        p1 = 0.0
        g00 = 0.0
        g11 = 0.0
        s1 = 0.0
        s2 = 0.0
        q0 = 0.0
        q1 = 0.0
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
            m2 = re * re + im * im
            pos = m2 > 0
            m = np.sqrt(m2)
            inv = 1.0 / m if pos else 0.0
            ok = mf[i]
            b = af[i] if ok else 0.0
            f = b * inv if ok else 1.0
            pr = re * f if pos or not ok else b
            pi = im * f
            s1 += 0.0 if ok else m2
            s2 += b * m
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

    @jit
    def eval2n(z, gs, gm, gms, amp, meas, t0, t1, hess, out):
        """:func:`eval2` with ``d0 = gms - gs``, ``d1 = gms - gm`` formed on the fly."""
        zf = z.ravel()
        gsf = gs.ravel()
        gmf = gm.ravel()
        gmsf = gms.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        s1 = 0.0
        s2 = 0.0
        q0 = 0.0
        q1 = 0.0
        h00 = 0.0
        h01 = 0.0
        h11 = 0.0
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
                m2 = re * re + im * im
                pos = m2 > 0
                m = np.sqrt(m2)
                inv = 1.0 / m if pos else 0.0
                ok = mf[i]
                b = af[i] if ok else 0.0
                f = b * inv if ok else 1.0
                pr = re * f if pos or not ok else b
                pi = im * f
                s1 += 0.0 if ok else m2
                s2 += b * m
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
                m2 = re * re + im * im
                pos = m2 > 0
                m = np.sqrt(m2)
                inv = 1.0 / m if pos else 0.0
                ok = mf[i]
                b = af[i] if ok else 0.0
                f = b * inv if ok else 1.0
                pr = re * f if pos or not ok else b
                pi = im * f
                s1 += 0.0 if ok else m2
                s2 += b * m
                q0 += u0r * pr + u0i * pi
                q1 += u1r * pr + u1i * pi
                c = re * inv
                sn = im * inv
                p0 = c * u0i - sn * u0r
                p1 = c * u1i - sn * u1r
                w = b * inv
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

    @jit
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
            re = v.real
            im = v.imag
            a2 = re * re + im * im
            b = af[i]
            pos = a2 > 0
            f = b / np.sqrt(a2) if pos else b
            re2 = re * f if pos else b
            im2 = im * f if pos else im * 0
            ok = mf[i]
            gmf[i] = complex(re2 if ok else re, im2 if ok else im)

    return (eval2, evalk, setup, apply_step, project_into, setup2, apply2, mask_inplace, setup2n,
            eval2n, apply2p)


def _unrolled_source(K: int, smask) -> str:
    """Source of the K-direction kernels with every sum unrolled into scalar accumulators (numba
    keeps them in registers; the generic loops over small arrays are ~10x slower)."""
    r = range(K)
    pairs = [(j, k) for j in r for k in r if k >= j]
    ds = ", ".join(f"d{k}" for k in r)
    ts = ", ".join(f"t{k}" for k in r)
    L = []
    a = L.append

    def body(ind, hess, src):
        # src: expressions for the real / imaginary part of direction k at element i
        for k in r:
            a(f"{ind}u{k}r = {src[k][0]}")
            a(f"{ind}u{k}i = {src[k][1]}")
        a(f"{ind}re = zf[i].real + " + " + ".join(f"t{k} * u{k}r" for k in r))
        a(f"{ind}im = zf[i].imag + " + " + ".join(f"t{k} * u{k}i" for k in r))
        a(f"{ind}m2 = re * re + im * im")
        a(f"{ind}pos = m2 > 0")
        a(f"{ind}m = np.sqrt(m2)")
        a(f"{ind}inv = 1.0 / m if pos else 0.0")
        a(f"{ind}ok = mf[i]")
        a(f"{ind}b = af[i] if ok else 0.0")
        a(f"{ind}f = b * inv if ok else 1.0")
        a(f"{ind}pr = re * f if pos or not ok else b")
        a(f"{ind}pi = im * f")
        a(f"{ind}s1 += 0.0 if ok else m2")
        a(f"{ind}s2 += b * m")
        for k in r:
            a(f"{ind}q{k} += u{k}r * pr + u{k}i * pi")
        if hess:
            a(f"{ind}c = re * inv")
            a(f"{ind}sn = im * inv")
            a(f"{ind}w = b * inv")
            for k in r:
                a(f"{ind}p{k} = c * u{k}i - sn * u{k}r")
            for j, k in pairs:
                a(f"{ind}h{j}{k} += w * p{j} * p{k} if ok else u{j}r * u{k}r + u{j}i * u{k}i")

    def init(names):
        for n in names:
            a(f"    {n} = 0.0")

    # ---- evaluation
    a(f"def eval_k(z, {ds}, amp, meas, {ts}, hess, out):")
    a("    zf = z.ravel()\n    af = amp.ravel()\n    mf = meas.ravel()")
    for k in r:
        a(f"    a{k} = d{k}.ravel()")
    init(["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs])
    src = [(f"a{k}[i].real", f"a{k}[i].imag") for k in r]
    a("    if not hess:")
    a("        for i in range(zf.size):")
    body("            ", False, src)
    a("    else:")
    a("        for i in range(zf.size):")
    body("            ", True, src)
    outs = ["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs]
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v}")
    # ---- set-up (writes d0, d1) with the first evaluation fused
    a(f"def setup_k(z, gs, gm, gms, {ds}, amp, meas, {ts}, out):")
    a("    zf = z.ravel()\n    gsf = gs.ravel()\n    gmf = gm.ravel()\n    gmsf = gms.ravel()")
    a("    af = amp.ravel()\n    mf = meas.ravel()")
    for k in r:
        a(f"    a{k} = d{k}.ravel()")
    init(["c0", "s1", "s2"] + [f"q{k}" for k in r] + [f"g{k}" for k in r] + [f"e{k}" for k in r]
         + [f"G{j}{k}" for j, k in pairs])
    a("    for i in range(zf.size):")
    ind = "        "
    a(f"{ind}xr = gsf[i].real\n{ind}xi = gsf[i].imag\n{ind}mr = gmf[i].real\n{ind}mi = gmf[i].imag")
    a(f"{ind}er = gmsf[i].real\n{ind}ei = gmsf[i].imag")
    a(f"{ind}a0[i] = complex(er - xr, ei - xi)\n{ind}a1[i] = complex(er - mr, ei - mi)")
    src = [("er - xr", "ei - xi"), ("er - mr", "ei - mi")] + [(f"a{k}[i].real", f"a{k}[i].imag") for k in r[2:]]
    body(ind, False, src)
    a(f"{ind}c0 += xr * xr + xi * xi")
    for k in r:
        a(f"{ind}g{k} += u{k}r * xr + u{k}i * xi")
        a(f"{ind}e{k} += u{k}r * mr + u{k}i * mi")
    for j, k in pairs:
        a(f"{ind}G{j}{k} += u{j}r * u{k}r + u{j}i * u{k}i")
    outs = (["c0"] + [f"g{k}" for k in r] + [f"e{k}" for k in r] + [f"G{j}{k}" for j, k in pairs]
            + ["s1", "s2"] + [f"q{k}" for k in r])
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v}")
    # ---- update
    a(f"def apply_k(z, gs, {ds}, {ts}):")
    a("    zf = z.ravel()\n    gsf = gs.ravel()")
    for k in r:
        a(f"    a{k} = d{k}.ravel()")
    a("    for i in range(zf.size):")
    for k in r:
        a(f"        v{k} = a{k}[i]")
    a("        zf[i] += " + " + ".join(f"t{k} * v{k}" for k in r))
    a("        gsf[i] += " + " + ".join(f"t{k} * v{k}" for k in r if smask[k]))
    if K == 4 and tuple(smask) == (True, False, True, False):
        _unrolled_nostore(a, init, body, pairs)
    return "\n".join(L) + "\n"


def _unrolled_nostore(a, init, body, pairs):
    """SO4D kernels that do not store the current pair: ``d0 = gms - gs`` and ``d1 = gms - gm``
    are formed on the fly (the same single-precision differences); the update writes the previous
    pair of the next iteration (``mode`` 0: the SDA pair, 1: the step split ``(t2 d2 + t0 d0,
    t3 d3 + t1 d1)``, 2: the step of a 2-D iteration ``(t0 d0, t1 d1)``; formed in double and
    rounded once, where the torch form rounds each product) and the next modulus projection
    ``gm <- P~_m z`` in the same pass."""
    r = range(4)
    ts = ", ".join(f"t{k}" for k in r)
    head = ("    zf = z.ravel()\n    gsf = gs.ravel()\n    gmf = gm.ravel()\n    gmsf = gms.ravel()\n"
            "    af = amp.ravel()\n    mf = meas.ravel()\n    a2 = d2.ravel()\n    a3 = d3.ravel()")
    fly = [("gmsf[i].real - gsf[i].real", "gmsf[i].imag - gsf[i].imag"),
           ("gmsf[i].real - gmf[i].real", "gmsf[i].imag - gmf[i].imag"),
           ("a2[i].real", "a2[i].imag"), ("a3[i].real", "a3[i].imag")]
    # ---- evaluation
    a(f"def eval_kn(z, gs, gm, gms, d2, d3, amp, meas, {ts}, hess, out):")
    a(head)
    init(["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs])
    a("    if not hess:")
    a("        for i in range(zf.size):")
    body("            ", False, fly)
    a("    else:")
    a("        for i in range(zf.size):")
    body("            ", True, fly)
    outs = ["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs]
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v}")
    # ---- set-up with the first evaluation fused (setup_k without the two stores, and without
    # the sums the solver never reads: ||gs||^2 (only the value L needs it), Re<d_k|gs> for the
    # out-of-constraint k and the cross terms G_jk outside the in-constraint block -- NaN in out)
    sm = (True, False, True, False)
    need = {"c0": False, **{f"g{k}": sm[k] for k in r}, **{f"e{k}": True for k in r},
            **{f"G{j}{k}": j == k or (sm[j] and sm[k]) for j, k in pairs}}
    a(f"def setup_kn(z, gs, gm, gms, d2, d3, amp, meas, {ts}, out):")
    a(head)
    init(["s1", "s2"] + [f"q{k}" for k in r] + [n for n, ok in need.items() if ok])
    a("    for i in range(zf.size):")
    ind = "        "
    a(f"{ind}xr = gsf[i].real\n{ind}xi = gsf[i].imag\n{ind}mr = gmf[i].real\n{ind}mi = gmf[i].imag")
    a(f"{ind}er = gmsf[i].real\n{ind}ei = gmsf[i].imag")
    body(ind, False, [("er - xr", "ei - xi"), ("er - mr", "ei - mi")] + fly[2:])
    for k in r:
        if need[f"g{k}"]:
            a(f"{ind}g{k} += u{k}r * xr + u{k}i * xi")
        a(f"{ind}e{k} += u{k}r * mr + u{k}i * mi")
    for j, k in pairs:
        if need[f"G{j}{k}"]:
            a(f"{ind}G{j}{k} += u{j}r * u{k}r + u{j}i * u{k}i")
    outs = (["c0"] + [f"g{k}" for k in r] + [f"e{k}" for k in r] + [f"G{j}{k}" for j, k in pairs]
            + ["s1", "s2"] + [f"q{k}" for k in r])
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v if need.get(v, True) else 'np.nan'}")
    # ---- update + previous pair + next modulus projection
    a(f"def apply_kn(z, gs, gm, gms, d2, d3, amp, meas, {ts}, mode):")
    a(head)
    shift = {0: ["a2[i] = v0", "a3[i] = v1"],
             1: ["a2[i] = t2 * v2 + t0 * v0", "a3[i] = t3 * v3 + t1 * v1"],
             2: ["a2[i] = t0 * v0", "a3[i] = t1 * v1"]}
    for mode, lines in shift.items():
        a(f"    if mode == {mode}:")
        a("        for i in range(zf.size):")
        ind = "            "
        a(f"{ind}e = gmsf[i]\n{ind}v0 = e - gsf[i]\n{ind}v1 = e - gmf[i]\n{ind}v2 = a2[i]\n{ind}v3 = a3[i]")
        a(f"{ind}zf[i] += t0 * v0 + t1 * v1 + t2 * v2 + t3 * v3")
        a(f"{ind}gsf[i] += t0 * v0 + t2 * v2")
        for ln in lines:
            a(f"{ind}{ln}")
        a(f"{ind}w = zf[i]\n{ind}re = w.real\n{ind}im = w.imag\n{ind}mm = re * re + im * im")
        a(f"{ind}b = af[i]\n{ind}pos = mm > 0\n{ind}f = b / np.sqrt(mm) if pos else b")
        a(f"{ind}re2 = re * f if pos else b\n{ind}im2 = im * f if pos else im * 0\n{ind}ok = mf[i]")
        a(f"{ind}gmf[i] = complex(re2 if ok else re, im2 if ok else im)")


def _build_unrolled(K: int, smask):  # pragma: no cover - compiled code
    """The generated K = 4 kernels live in :mod:`._saddle_unrolled` (a file, so numba caches them);
    other K are compiled from the generated source."""
    if K == 4 and tuple(smask) == (True, False, True, False):
        from . import _saddle_unrolled as m

        return m.eval_k, m.setup_k, m.apply_k, m.eval_kn, m.setup_kn, m.apply_kn
    import numba

    ns = {"np": np}
    exec(compile(_unrolled_source(K, smask), f"<phasekit saddle kernels K={K}>", "exec"), ns)
    jit = numba.njit(fastmath=True)
    return jit(ns["eval_k"]), jit(ns["setup_k"]), jit(ns["apply_k"])


def _unpack_pairs(v, K):
    H = np.zeros((K, K))
    n = 0
    for j in range(K):
        for k in range(j, K):
            H[j, k] = H[k, j] = v[n]
            n += 1
    return H


try:
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    (_EVAL2, _EVALK, _SETUP, _APPLY, _PROJECT_INTO, _SETUP2, _APPLY2, _MASK, _SETUP2N, _EVAL2N,
     _APPLY2P) = _build_kernels()
    _EVAL4, _SETUP4, _APPLY4, _EVAL4N, _SETUP4N, _APPLY4N = _build_unrolled(4, (True, False, True, False))
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


def _fused_ok(*ts) -> bool:
    return HAVE_NUMBA and all(t.device.type == "cpu" and t.is_contiguous() for t in ts)


def project_into(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor, out: torch.Tensor,
                 *, fused: bool | None = None) -> torch.Tensor:
    """``out <- P~_m z`` (out of place; the same rule as :func:`phasekit.cdi.kernels.fourier_project`)."""
    if fused is None:
        fused = _fused_ok(z, amp, measured, out)
    if fused:
        _PROJECT_INTO(z.numpy(), amp.numpy(), measured.numpy(), out.numpy())
    else:
        out.copy_(modulus_projection(z, amp, measured))
    return out


def constrain_inplace(y: torch.Tensor, support: torch.Tensor, real: bool, *,
                      fused: bool | None = None) -> torch.Tensor:
    """``y <- P_s y`` in place (support, and realness): the linear constraint projection."""
    if fused is None:
        fused = _fused_ok(y, support)
    if fused:
        _MASK(y.numpy(), support.numpy(), bool(real))
    else:
        y.copy_(apply_constraints(y, support, real=real))
    return y


def tensor_views(z, gs, gm, D, amp, measured) -> dict:
    """NumPy views (shared memory) of the CPU tensors the fused kernels read: ``z``, ``gs``,
    ``gm``, the rows of ``D`` and ``D`` flattened to ``(k, N)``, ``amp``, ``meas``."""
    k = D.shape[0]
    return {"z": z.numpy(), "gs": None if gs is None else gs.numpy(),
            "gm": None if gm is None else gm.numpy(), "rows": tuple(D[i].numpy() for i in range(k)),
            "Dflat": D.reshape(k, -1).numpy(), "amp": amp.numpy(), "meas": measured.numpy()}


# --------------------------------------------------------------------------- the k-D subproblem
class SubspaceLagrangian:
    """``L(tau) = L(rho + sum_i tau_i d_i)`` on a k-dimensional subspace, FFT-free.

    Built once per outer iteration from the Fourier-space state (Marchesini 2007 Sec. V and
    App. B; digest 002 §4-5, general k-direction form):

    * ``z = F rho``, ``gs = F P_s rho``, ``D[i] = F d_i`` (``D[0] = d~_s``, ``D[1] = d~_sbar`` and,
      for SO4D, the previous pair), ``smask[i]`` True for directions inside the constraint set
      (``P_s d_i = d_i``) and False for the others (``P_s d_i = 0``);
    * precomputed scalars ``c0 = ||P_s rho||^2``, ``a_i = Re<d_i|P_s rho>``,
      ``p_i = Re<d_i|P_m rho>`` and the Gram matrix ``G_ij = Re<d_i|d_j>``.

    Then, with ``rho~(tau) = z + sum tau_i D_i``, ``u = rho~/|rho~|``, ``w = sqrt(I)/|rho~|`` and
    ``P~_m`` the identity on unmeasured pixels,

    * ``L = ||P_s rho(tau)||^2 - sum_unmeas |rho~|^2 - 2 sum_meas sqrt(I)|rho~| + sum_meas I``
      (digest §3 identity, App. B eq. (39));
    * ``dL/dtau_i = 2 Re<P_s d_i|rho(tau)> - 2 Re<d~_i|P~_m rho~(tau)>`` (eq. (27)/(42));
    * ``H_ij = 2 Re<P_s d_i|P_s d_j> - 2 sum_meas w Im(conj(u) d~_i) Im(conj(u) d~_j)
      - 2 sum_unmeas Re(conj(d~_i) d~_j)`` (eqs. (43)-(48)).

    Each :meth:`evaluate` is one elementwise pass (a fused numba kernel on the CPU, plain torch
    elsewhere, float64 accumulation).  The small k-vectors are Python floats inside (NumPy calls on
    2-element arrays cost microseconds each, as much as the solver's arithmetic); :meth:`evaluate`
    returns arrays, :meth:`evaluate_lists` the lists the solver uses.

    With ``D=None`` (SO2D on the fused CPU path, :meth:`build_pair`) the two directions are not
    stored: the kernels form ``d~_s = gms - gs`` and ``d~_sbar = gms - gm`` on the fly (the same
    single-precision differences), which saves writing two arrays per outer iteration.
    """

    def __init__(self, z, gs, D, smask, amp, measured, scalars, amp2_sum: float, *,
                 fused: bool | None = None, views: dict | None = None, gm=None, gms=None):
        self.z, self.gs, self.D, self.amp, self.measured = z, gs, D, amp, measured
        self.gm, self.gms = gm, gms
        self.smask = np.asarray(smask, bool)
        self.k = len(self.smask) if D is None else D.shape[0]
        c0, a, p, G = scalars
        self._c0 = float(c0)
        self._lazy = False
        self._al, self._pl, self._Gl = _vec(a), _vec(p), _mat(G)
        self.amp2_sum = float(amp2_sum)
        if D is None:
            if not fused:
                raise ValueError("SubspaceLagrangian without stored directions needs the fused kernels")
            self.fused = True
        else:
            self.fused = _fused_ok(z, D, amp, measured) if fused is None else fused
        self.n_eval = 0
        self._first = None
        self._first_key = None
        self._pair = self._quad = None
        if self.fused:  # numpy views share the tensors' memory; made once (or passed in)
            if D is None:
                v = views
                if self.k == 2:
                    self._pair = (v["z"], v["gs"], v["gm"], gms.numpy(), v["amp"], v["meas"])
                elif self.k == 4 and self._quad_ok():
                    self._quad = (v["z"], v["gs"], v["gm"], gms.numpy(), v["rows"][2], v["rows"][3],
                                  v["amp"], v["meas"])
                else:
                    raise ValueError("without stored directions: k = 2, or k = 4 with smask (s, sbar, s, sbar)")
                self._np = None
                self._rows = None
            else:
                v = views if views is not None else tensor_views(z, None, None, D, amp, measured)
                rows = v["rows"][:self.k]
                self._np = (v["z"], v["Dflat"][:self.k], rows[0], rows[1], v["amp"], v["meas"])
                self._rows = rows
        self._views = views
        # the in-constraint block of G
        self._sl = s = self.smask.tolist()
        self._Gsl = [[self._Gl[i][j] if (s[i] and s[j]) else 0.0 for j in range(self.k)]
                     for i in range(self.k)]

    def _fill(self):
        """The sums the unstored-pair set-up passes skip -- ``c0``, ``a_i`` for out-of-constraint
        ``i`` and ``G_ij`` outside the in-constraint block and the diagonal (the solver reads none
        of them) -- from the arrays in float64 (the torch reference's arithmetic); valid until the
        update pass changes the arrays."""
        if not self._lazy:
            return
        c128 = torch.complex128
        gs = self.gs.to(c128).reshape(-1)
        d = [(self.gms - self.gs).to(c128).reshape(-1), (self.gms - self.gm).to(c128).reshape(-1)]
        d += [self.D[i].to(c128).reshape(-1) for i in range(2, self.k)]
        s = self._sl
        self._c0 = float(gs.abs().pow(2).sum())
        for i in range(self.k):
            if not s[i]:
                self._al[i] = float(torch.real(torch.vdot(d[i], gs)))
            for j in range(i + 1, self.k):
                if not (s[i] and s[j]):
                    self._Gl[i][j] = self._Gl[j][i] = float(torch.real(torch.vdot(d[i], d[j])))
        self._lazy = False

    @property
    def c0(self) -> float:
        """``c0 = ||P_s rho||^2``."""
        self._fill()
        return self._c0

    @property
    def a(self) -> np.ndarray:
        """``a_i = Re<d_i|P_s rho>``."""
        self._fill()
        return np.array(self._al)

    @property
    def p(self) -> np.ndarray:
        """``p_i = Re<d_i|P_m rho>``."""
        return np.array(self._pl)

    @property
    def G(self) -> np.ndarray:
        """The Gram matrix ``G_ij = Re<d_i|d_j>``."""
        self._fill()
        return np.array(self._Gl)

    @property
    def Gs(self) -> np.ndarray:
        """``G`` restricted to the in-constraint block (``Re<P_s d_i|P_s d_j>``)."""
        return np.array(self._Gsl)

    @classmethod
    def build(cls, z, gs, gm, gms, D, smask, amp, measured, amp2_sum, *, fused=None, tau0=None,
              views=None):
        """Fill ``D[0] = gms - gs`` and ``D[1] = gms - gm`` (eq. (18) in Fourier space:
        ``d~_s = F P_s P_m rho - F P_s rho``, ``d~_sbar = F P_s P_m rho - F P_m rho``) and
        precompute the dot products (one pass; with ``tau0`` the pass also evaluates ``L(tau0)``).
        ``views``: NumPy views of the persistent tensors (:func:`tensor_views`), to skip making
        them again."""
        k = D.shape[0]
        if fused is None:
            fused = _fused_ok(z, gs, gm, gms, D)
        first = None
        if fused:
            v = views if views is not None else tensor_views(z, gs, gm, D, amp, measured)
            gmsn = gms.numpy()
        if fused and k == 2:
            o = np.empty(12)
            t = (0.0, 0.0) if tau0 is None else (float(tau0[0]), float(tau0[1]))
            _SETUP2(v["z"], v["gs"], v["gm"], gmsn, v["rows"][0], v["rows"][1], v["amp"], v["meas"],
                    t[0], t[1], o)
            c0, a, p = o[0], o[1:3].copy(), o[3:5].copy()
            G = np.array([[o[5], o[6]], [o[6], o[7]]])
            if tau0 is not None:
                first = (t, (float(o[8]), float(o[9]), o[10:12].tolist(), None))
        elif fused and k == 4 and list(smask) == [True, False, True, False]:
            npair = 10
            o = np.empty(1 + 2 * k + npair + 2 + k)
            t = (0.0,) * 4 if tau0 is None else tuple(float(x) for x in tau0)
            r = v["rows"]
            _SETUP4(v["z"], v["gs"], v["gm"], gmsn, r[0], r[1], r[2], r[3], v["amp"], v["meas"],
                    t[0], t[1], t[2], t[3], o)
            c0, a, p = o[0], o[1:5].copy(), o[5:9].copy()
            G = _unpack_pairs(o[9:19], 4)
            if tau0 is not None:
                first = (t, (float(o[19]), float(o[20]), o[21:25].tolist(), None))
        elif fused:
            out = np.empty(1 + 2 * k + k * k)
            _SETUP(v["z"], v["gs"], v["gm"], gmsn, v["Dflat"][:k], out)
            c0 = out[0]
            a = out[1:1 + k].copy()
            p = out[1 + k:1 + 2 * k].copy()
            G = out[1 + 2 * k:].reshape(k, k).copy()
            G = np.triu(G) + np.triu(G, 1).T
        else:
            torch.sub(gms, gs, out=D[0])
            torch.sub(gms, gm, out=D[1])
            Dd = D.to(torch.complex128)
            c0 = float(gs.to(torch.complex128).abs().pow(2).sum())
            a = torch.real((Dd.conj() * gs.to(torch.complex128)).reshape(k, -1).sum(1)).cpu().numpy()
            p = torch.real((Dd.conj() * gm.to(torch.complex128)).reshape(k, -1).sum(1)).cpu().numpy()
            Df = Dd.reshape(k, -1)
            G = torch.real(Df.conj() @ Df.T).cpu().numpy()
        sub = cls(z, gs, D, smask, amp, measured, (float(c0), a, p, G), amp2_sum, fused=fused,
                  views=v if fused else None)
        sub._set_first(first)
        return sub

    @classmethod
    def build_pair(cls, z, gs, gm, gms, amp, measured, amp2_sum, views, *, tau0=None):
        """The 2-D (SO2D) Lagrangian on the fused CPU path without stored directions: one pass
        computes the dot products of :meth:`build` (and ``L(tau0)``) with ``d~_s = gms - gs``,
        ``d~_sbar = gms - gm`` formed on the fly.  ``views`` as in :meth:`build` (``z``, ``gs``,
        ``gm``, ``amp``, ``meas``).  The three sums the solver never reads (``c0``, needed only for
        the value ``L``, ``a_1`` and ``G_01``) are left out of the pass and computed on first access
        of :attr:`c0`, :attr:`a`, :attr:`G` or of a value ``L`` (:meth:`gradient_lists` skips it)."""
        o = np.empty(12)
        t = (0.0, 0.0) if tau0 is None else (float(tau0[0]), float(tau0[1]))
        _SETUP2N(views["z"], views["gs"], views["gm"], gms.numpy(), views["amp"], views["meas"],
                 t[0], t[1], o)
        ol = o.tolist()
        # (the constructor's work, written out: this runs once per outer iteration)
        sub = cls.__new__(cls)
        sub.z, sub.gs, sub.D, sub.amp, sub.measured, sub.gm, sub.gms = z, gs, None, amp, measured, gm, gms
        sub.smask, sub.k, sub._c0, sub.amp2_sum = _PAIR_MASK, 2, ol[0], float(amp2_sum)
        sub._lazy = True  # c0, a_1, G_01: not summed by the pass (see _fill)
        sub._al, sub._pl = ol[1:3], ol[3:5]
        sub._Gl = [[ol[5], ol[6]], [ol[6], ol[7]]]
        sub._sl = [True, False]
        sub._Gsl = [[ol[5], 0.0], [0.0, 0.0]]
        sub.fused, sub.n_eval, sub._views = True, 0, views
        sub._pair = (views["z"], views["gs"], views["gm"], gms.numpy(), views["amp"], views["meas"])
        sub._np = sub._rows = sub._quad = None
        if tau0 is not None:
            sub._first, sub._first_key = (t, (ol[8], ol[9], ol[10:12], None)), t
        else:
            sub._first = sub._first_key = None
        return sub

    def _quad_ok(self) -> bool:
        return self.smask.tolist() == [True, False, True, False]

    @classmethod
    def build_quad(cls, z, gs, gm, gms, D, amp, measured, amp2_sum, views, *, tau0=None):
        """The 4-D (SO4D) Lagrangian on the fused CPU path without storing the current pair:
        ``d~_s = gms - gs``, ``d~_sbar = gms - gm`` formed on the fly, the previous pair read from
        ``D[2]``, ``D[3]``; one pass for the dot products (and ``L(tau0)``), as :meth:`build`,
        less the sums the solver never reads (computed on first access, as in :meth:`build_pair`)."""
        o = np.empty(25)
        t = (0.0,) * 4 if tau0 is None else tuple(float(x) for x in tau0)
        r = views["rows"]
        _SETUP4N(views["z"], views["gs"], views["gm"], gms.numpy(), r[2], r[3], views["amp"],
                 views["meas"], t[0], t[1], t[2], t[3], o)
        ol = o.tolist()
        sub = cls(z, gs, None, _QUAD_MASK, amp, measured, (ol[0], ol[1:5], ol[5:9], _unpack_pairs(o[9:19], 4)),
                  amp2_sum, fused=True, views=views, gm=gm, gms=gms)
        sub.D = D
        sub._lazy = True  # c0, a_1, a_3 and the cross terms outside the (s, s) block: see _fill
        if tau0 is not None:
            sub._first, sub._first_key = (t, (ol[19], ol[20], ol[21:25], None)), t
        return sub

    def _set_first(self, first):
        self._first = first
        self._first_key = tuple(first[0]) if first is not None else None

    def restrict(self, k: int) -> "SubspaceLagrangian":
        """The same Lagrangian on the first ``k`` directions (no pass: the scalars are sliced)."""
        nostore = self._pair is not None or self._quad is not None
        sub = SubspaceLagrangian(self.z, self.gs, None if nostore else self.D[:k], self.smask[:k],
                                 self.amp, self.measured,
                                 (self._c0, self._al[:k], self._pl[:k], [r[:k] for r in self._Gl[:k]]),
                                 self.amp2_sum, fused=self.fused, views=self._views, gm=self.gm,
                                 gms=self.gms)
        sub._lazy = self._lazy  # the skipped sums of the first k directions (see _fill)
        return sub

    # -- raw pass
    def _pass(self, tau, hess: bool):
        """One pass at ``tau`` (a sequence of floats): ``(S_unmeas, S_amp, q, h)`` with ``q`` a list
        and ``h`` a list of rows (None unless ``hess``)."""
        k = self.k
        if self._first is not None and not hess and tuple(tau) == self._first_key:
            return self._first[1]  # computed by the set-up pass
        if self.fused:
            if self._pair is not None:
                zn, gsn, gmn, gmsn, an, mn = self._pair
                out = np.empty(7)
                _EVAL2N(zn, gsn, gmn, gmsn, an, mn, float(tau[0]), float(tau[1]), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:4], ([[o[4], o[5]], [o[5], o[6]]] if hess else None)
            if self._quad is not None:
                out = np.empty(2 + 4 + 10)
                _EVAL4N(*self._quad, *(float(v) for v in tau), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:6], (_unpack_pairs(out[6:16], 4).tolist() if hess else None)
            zn, Dn, d0n, d1n, an, mn = self._np
            if k == 2:
                out = np.empty(7)
                _EVAL2(zn, d0n, d1n, an, mn, float(tau[0]), float(tau[1]), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:4], ([[o[4], o[5]], [o[5], o[6]]] if hess else None)
            if k == 4:
                out = np.empty(2 + 4 + 10)
                _EVAL4(zn, *self._rows, an, mn, *(float(v) for v in tau), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:6], (_unpack_pairs(out[6:16], 4).tolist() if hess else None)
            out = np.empty(2 + k + k * k)
            _EVALK(zn, Dn, an, mn, np.array(tau, dtype=np.float64), bool(hess), out)
            h = out[2 + k:].reshape(k, k)
            h = np.triu(h) + np.triu(h, 1).T
            return out[0], out[1], out[2:2 + k].tolist(), (h.tolist() if hess else None)
        s1, s2, q, h = self._pass_torch(tau, hess)
        return s1, s2, q.tolist(), (h.tolist() if hess else None)

    def _pass_torch(self, tau, hess):
        """Plain-torch reference of the fused pass (what CUDA runs)."""
        k = self.k
        D = self.D.to(torch.complex128)
        t = torch.as_tensor(np.asarray(tau, np.float64), device=D.device).to(torch.complex128)
        v = self.z.to(torch.complex128) + (t.reshape((k,) + (1,) * (D.ndim - 1)) * D).sum(0)
        amp = self.amp.to(torch.float64)
        meas = self.measured
        m = v.abs()
        pos = m > 0
        u = torch.where(pos, v / m.clamp_min(1e-300), torch.ones_like(v))
        pm = torch.where(meas, amp * u, v)
        s1 = float(torch.where(meas, torch.zeros_like(m), m * m).sum())
        s2 = float(torch.where(meas, amp * m, torch.zeros_like(m)).sum())
        q = torch.real(D.conj() * pm).reshape(k, -1).sum(1).cpu().numpy()
        h = np.zeros((k, k))
        if hess:
            w = torch.where(meas & pos, amp / m.clamp_min(1e-300), torch.zeros_like(m))
            bk = torch.imag(u.conj() * D).reshape(k, -1)
            um = (~meas).reshape(-1)
            Df = D.reshape(k, -1)
            wf = w.reshape(-1)
            h = ((bk * wf) @ bk.T).cpu().numpy()
            Du = Df[:, um]
            h = h + torch.real(Du.conj() @ Du.T).cpu().numpy()
        return s1, s2, q, h

    # -- public
    def gradient_lists(self, tau, hess: bool = False):
        """:meth:`evaluate_lists` without the value (``L`` is NaN): what :func:`solve_saddle` runs on
        (it reads gradients and Hessians only)."""
        return self.evaluate_lists(tau, hess, value=False)

    def evaluate_lists(self, tau, hess: bool = False, value: bool = True):
        """:meth:`evaluate` on and to Python lists: ``(L, grad list, H rows or None)`` (float64
        arithmetic, no NumPy call on the k-vectors); ``value=False`` skips ``L`` (NaN)."""
        tau = [float(x) for x in tau]
        if value:
            self._fill()
        s1, s2, q, h = self._pass(tau, hess)
        self.n_eval += 1
        k = self.k
        s = self._sl
        a = self._al
        Gs = self._Gsl
        if k == 2 and s[0] and not s[1]:  # the SO2D pair, written out (same operations)
            t0, t1 = tau
            Gt0 = Gs[0][0] * t0 + Gs[0][1] * t1
            Gt1 = Gs[1][0] * t0 + Gs[1][1] * t1
            L = (self._c0 + 2 * (t0 * a[0]) + (t0 * Gt0 + t1 * Gt1) - s1 - 2 * s2 + self.amp2_sum
                 if value else math.nan)
            g = [2 * (a[0] + Gt0) - 2 * q[0], -2 * q[1]]
            H = ([[2 * Gs[0][0] - 2 * h[0][0], 2 * Gs[0][1] - 2 * h[0][1]],
                  [2 * Gs[1][0] - 2 * h[1][0], 2 * Gs[1][1] - 2 * h[1][1]]] if hess else None)
            return L, g, H
        # ||P_s rho(tau)||^2 = c0 + 2 sum_s tau_i a_i + tau^T Gs tau
        ta = 0.0
        for i in range(k):
            if s[i]:
                ta += tau[i] * a[i]
        Gt = [sum([Gs[i][j] * tau[j] for j in range(k)]) for i in range(k)]
        tGt = sum([tau[i] * Gt[i] for i in range(k)])
        L = self._c0 + 2 * ta + tGt - s1 - 2 * s2 + self.amp2_sum if value else math.nan
        g = [2 * (a[i] + Gt[i]) - 2 * q[i] if s[i] else -2 * q[i] for i in range(k)]
        H = [[2 * Gs[i][j] - 2 * h[i][j] for j in range(k)] for i in range(k)] if hess else None
        return L, g, H

    def evaluate(self, tau, hess: bool = False):
        """Return ``(L, grad, H)`` at ``tau`` (``H`` is None unless ``hess``); one pass."""
        L, g, H = self.evaluate_lists(np.asarray(tau, np.float64).tolist(), hess)
        return L, np.array(g), (np.array(H) if hess else None)

    def grad0(self) -> np.ndarray:
        """``grad L(0) = 2 a_i [i in s] - 2 p_i`` from the precomputed dot products (free); for the
        2-D pair it is ``(-2||d_s||^2, +2||d_sbar||^2)`` (eq. (28))."""
        return 2 * np.where(self.smask, self.a, 0.0) - 2 * self.p

    def grad0_list(self) -> list:
        """:meth:`grad0` as a list."""
        return [2 * a - 2 * p if s else -2 * p for s, a, p in zip(self._sl, self._al, self._pl)]

    def preconditioner(self, beta: float) -> np.ndarray:
        """Inverse of the diagonal Hessian guess: ``H_beta = diag(2||d_i||^2, -2||d_i||^2/beta)``
        for in-/out-of-constraint directions (eqs. (32)-(33); for the first pair its first Newton
        step from 0 is the HIO step ``(1, beta)``)."""
        return np.array(self.preconditioner_lists(beta))

    def preconditioner_lists(self, beta: float) -> list:
        """:meth:`preconditioner` as a list of rows."""
        k = self.k
        B = [[0.0] * k for _ in range(k)]
        for i, d in enumerate(self.scale_list()):
            B[i][i] = 1.0 / d if self._sl[i] else -beta / d
        return B

    def scale(self) -> np.ndarray:
        """``diag(2||d_i||^2)``: the scale used to average inverse Hessians across iterations."""
        return np.array(self.scale_list())

    def scale_list(self) -> list:
        return [2 * max(self._Gl[i][i], 1e-300) for i in range(self.k)]


_PAIR_MASK = np.array([True, False])
_QUAD_MASK = np.array([True, False, True, False])


# --------------------------------------------------------------------------- small-vector helpers
# The solver works on Python floats: a NumPy call on a 2-vector costs ~1 us, more than the
# arithmetic; these keep the numbers of operations and their order of the NumPy expressions
# they replace (sums left to right).
def _vec(v) -> list:
    return v.tolist() if isinstance(v, np.ndarray) else [float(x) for x in v]


def _mat(B) -> list:
    return np.asarray(B, np.float64).tolist() if isinstance(B, np.ndarray) else [[float(x) for x in r] for r in B]


def _mv(B, v) -> list:
    """``B @ v`` (rows of ``B``)."""
    if len(v) == 2:
        r0, r1 = B
        x, y = v
        return [r0[0] * x + r0[1] * y, r1[0] * x + r1[1] * y]
    return [sum([b * x for b, x in zip(row, v)]) for row in B]


def _dot(u, v) -> float:
    if len(u) == 2:
        return u[0] * v[0] + u[1] * v[1]
    return sum([a * b for a, b in zip(u, v)])


def _norm(v) -> float:
    """Euclidean norm of a tiny vector (``np.linalg.norm`` costs ~3 us per call)."""
    if isinstance(v, np.ndarray):
        return math.sqrt(float(v @ v))
    return math.sqrt(_dot(v, v))


def _signs(B: list, s: list) -> tuple[list, int]:
    """:func:`enforce_saddle_signs` on a list of rows; returns ``B`` itself when nothing changes
    (the solver never modifies a matrix in place)."""
    k = len(s)
    n = 0
    copied = False
    for i in range(k):
        d = B[i][i]
        want = 1.0 if s[i] else -1.0
        if not d * want > 0:
            if not copied:
                B = [list(r) for r in B]
                copied = True
            B[i][i] = want * (abs(d) if d != 0 else 1e-12)
            n += 1
    if k > 2:
        for i in range(k):
            for j in range(i + 1, k):
                if s[i] == s[j] and B[i][j] ** 2 >= B[i][i] * B[j][j]:
                    if not copied:
                        B = [list(r) for r in B]
                        copied = True
                    B[i][j] = B[j][i] = 0.0
                    n += 1
    return B, n


def _sr1(B: list, s: list, y: list, skip: float):
    By = _mv(B, y)
    r = [a - b for a, b in zip(s, By)]
    den = _dot(r, y)
    if not abs(den) > skip * _norm(y) * _norm(r) or den == 0.0:
        return B, False
    return [[B[i][j] + r[i] * r[j] / den for j in range(len(r))] for i in range(len(r))], True


# --------------------------------------------------------------------------- safeguards
def enforce_saddle_signs(B: np.ndarray, smask) -> tuple[np.ndarray, int]:
    """Second-order (min-max) conditions, eq. (30), imposed on an inverse Hessian ``B``.

    Diagonal: ``B_ii > 0`` for minimised (in-constraint) coordinates, ``B_ii < 0`` for maximised
    ones -- violating entries have their sign flipped ("flipping the sign", Sec. V); a zero diagonal
    becomes ``+-1e-12``.  Off-diagonal within a block (k > 2): the block must be definite, so an
    entry with ``B_ij^2 >= B_ii B_jj`` is set to 0 ("setting to 0", the port's rule).  In 2-D the
    diagonal signs of ``B = H^-1`` and of ``H`` agree whenever ``det H < 0``.

    Returns the corrected copy and the number of entries changed.
    """
    Bl, n = _signs(np.array(B, dtype=np.float64).tolist(), np.asarray(smask, bool).tolist())
    return np.array(Bl, dtype=np.float64), n


def sr1_inverse_update(B, s, y, skip: float = 1e-2):
    """SR1 update of the inverse Hessian (eq. (36), inverse form):
    ``B <- B + (s - B y)(s - B y)^T / ((s - B y)^T y)``, skipped (returns ``B, False``) when
    ``|y^T (s - B y)| <= skip ||y|| ||s - B y||`` (Nocedal & Wright eq. (6.26); the port's rule)."""
    B2, done = _sr1(_mat(B), _vec(s), _vec(y), skip)
    return (np.array(B2), True) if done else (B, False)


def _safe_inv(H):
    try:
        B = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return None
    return B if np.all(np.isfinite(B)) else None


@dataclass
class SaddleSolution:
    """Outcome of :func:`solve_saddle`."""

    tau: np.ndarray
    B: np.ndarray
    n_iter: int = 0
    n_eval: int = 0
    converged: bool = False
    fallback: bool = False
    rel_grad: float = float("nan")
    n_sign_fixes: int = 0
    n_sr1: int = 0
    n_sr1_skipped: int = 0
    n_exact_hessian: int = 0
    n_line_search: int = 0
    trust_radius: float = float("nan")
    events: list = field(default_factory=list)


def _line_search(f, tau, d, B, max_iter=10, xtol=0.1, x_max=4.0):
    """1-D root of ``phi(x) = d^T B grad L(tau + x d)`` (the Newton direction at the new point
    orthogonal to ``d``; the port's ``linminab``): ``phi(0) = -||d||^2 < 0`` when ``d = -B g``;
    secant / regula falsi with bracketing and expansion up to ``x_max``.  Returns ``(x, g)`` at the
    best point found (smallest ``|phi|``).  ``tau``, ``d``, ``B``: lists (rows)."""
    def phi(x):
        g = _vec(f([t + x * di for t, di in zip(tau, d)], False)[1])
        return _dot(d, _mv(B, g)), g

    x0, f0 = 0.0, -_dot(d, d)
    x1 = 1.0
    f1, g1 = phi(x1)
    best = (abs(f1), x1, g1)
    lo = hi = None
    if f1 > 0:
        lo, hi = (x0, f0), (x1, f1)
    it = 1
    while hi is None and it < max_iter and x1 < x_max and math.isfinite(f1):
        x0, f0 = x1, f1
        x1 = min(2 * x1, x_max)
        f1, g1 = phi(x1)
        it += 1
        if abs(f1) < best[0]:
            best = (abs(f1), x1, g1)
        if f1 > 0:
            lo, hi = (x0, f0), (x1, f1)
    while hi is not None and it < max_iter:
        (xa, fa), (xb, fb) = lo, hi
        if xb - xa < xtol:
            break
        x = xa - fa * (xb - xa) / (fb - fa)
        x = min(max(x, xa + 0.1 * (xb - xa)), xb - 0.1 * (xb - xa))  # keep inside the bracket
        fx, gx = phi(x)
        it += 1
        if abs(fx) < best[0]:
            best = (abs(fx), x, gx)
        if fx > 0:
            hi = (x, fx)
        else:
            lo = (x, fx)
    return best[1], best[2], it


def solve_saddle(f, g0, tau0, B0, smask, *, tol=1e-2, max_iter=50, r0=0.3, r_min=0.1, r_max=1.0,
                 fallback_tau=None, fallback_ratio=0.5, tau_max=10.0, skip=1e-2, stall=10):
    """Min-max the low-dimensional ``L(tau)``: Newton steps in a trust region with SR1 updates of
    the inverse Hessian (Marchesini 2007 Sec. V, the listing of digest 002 §4.1, items 4-9).

    Parameters
    ----------
    f : callable
        ``f(tau, hess) -> (L, grad, H or None)`` (:meth:`SubspaceLagrangian.evaluate`, or
        :meth:`SubspaceLagrangian.evaluate_lists`); ``tau`` is passed as a list of floats, ``grad``
        and ``H`` may be arrays or lists.
    g0 : array
        ``grad L(0)``: the convergence test is ``||grad L(tau)|| / ||g0|| < tol`` (the paper's
        threshold 0.01 on the relative gradient; digest §9 item 4).
    tau0, B0 : arrays
        First guess and inverse-Hessian guess (HIO ``(1, beta)`` with ``H_beta^-1``, or the
        average of previous solutions: items 2-3 of the listing).
    smask : bool array
        True for minimised coordinates (alphas), False for maximised ones (betas).
    r0, r_min, r_max : float
        Trust radius: reset to ``r0`` at each call, kept in ``[r_min, r_max]`` (port: 0.3, 0.1, 1).
    fallback_tau : array, optional
        Returned, with ``fallback=True``, when the solve fails: non-finite values, ``||tau|| >
        tau_max``, or no point with relative gradient below ``fallback_ratio`` (port: 0.5) when
        ``max_iter`` is reached.  Otherwise the best point seen is returned.
    stall : int
        Stop early when the best relative gradient has not improved for this many iterations (the
        sign-corrected model can cycle when the true Hessian violates eq. (30) near the point;
        an addition to the paper, which only bounds the iteration count).

    Notes
    -----
    Each iteration: Newton step ``-B g`` clipped to the radius; new gradient; ``s``, ``y``;
    model error ``erquad = ||B y - s|| / sqrt(||s||^2 + ||B y||^2)`` (port).  ``erquad > 1``: shrink
    the radius to ``max(r/4, r_min)``, compute the exact Hessian, line-search along its Newton
    direction and scale ``B`` by the step found; ``0.01 < erquad <= 1``: SR1 update (with the skip
    rule) and ``r <- min(2r, r_max)``; otherwise ``r <- min(3r, r_max)``.  Before every step the
    sign conditions of eq. (30) are imposed on ``B`` (:func:`enforce_saddle_signs`).

    The k-vectors are Python floats inside (the arithmetic of the NumPy form, without ~1 us per
    NumPy call on a 2-vector); the solution holds arrays.
    """
    s = np.asarray(smask, bool).tolist()
    k = len(s)
    tau = _vec(tau0)
    B = _mat(B0)
    g0n = _norm(_vec(g0))
    if not g0n > 0 or not math.isfinite(g0n):
        return SaddleSolution(tau=np.zeros(k), B=np.array(B), converged=True, rel_grad=0.0)
    n_iter = n_eval = n_sign_fixes = n_sr1 = n_sr1_skipped = n_exact = n_ls = 0
    converged = False
    events = []
    r = float(r0)
    g = _vec(f(tau, False)[1])
    n_eval += 1
    best_rel, best_tau = math.inf, tau
    bad = False
    since_best = 0
    isfinite = math.isfinite
    for it in range(max_iter + 1):
        rel = _norm(g) / g0n
        tn = _norm(tau)
        if not (isfinite(rel) and isfinite(tn)) or tn > tau_max:
            bad = True
            events.append("diverged")
            break
        if rel < best_rel:
            best_rel, best_tau = rel, tau
            since_best = 0
        else:
            since_best += 1
        if rel < tol:
            converged = True
            break
        if it == max_iter:
            break
        if since_best >= stall:
            events.append("stalled")
            break
        n_iter += 1
        B, nfix = _signs(B, s)
        n_sign_fixes += nfix
        step = [-x for x in _mv(B, g)]
        ns = _norm(step)
        if ns > r:
            c = r / ns
            step = [x * c for x in step]
        tau_new = [t + x for t, x in zip(tau, step)]
        g_new = _vec(f(tau_new, False)[1])
        n_eval += 1
        y = [a - b for a, b in zip(g_new, g)]
        By = _mv(B, y)
        den = math.sqrt(_dot(step, step) + _dot(By, By))
        erquad = _norm([a - b for a, b in zip(By, step)]) / den if den > 0 else 0.0
        if not isfinite(erquad):
            bad = True
            events.append("non-finite gradient")
            break
        if erquad > 1.0:
            # poor secant model: exact Hessian, line search, smaller trust region (items 6-7)
            r = max(r / 4, r_min)
            _, g_new, H = f(tau_new, True)
            g_new = _vec(g_new)
            n_eval += 1
            n_exact += 1
            Bx = _safe_inv(np.asarray(H, np.float64))
            if Bx is not None:
                B, nfix = _signs(Bx.tolist(), s)
                n_sign_fixes += nfix
            d = [-x for x in _mv(B, g_new)]
            nd = _norm(d)
            if nd > 0 and isfinite(nd):
                x_max = max(r_max / nd, 1.0) if nd > 0 else 1.0
                x, g_ls, it_ls = _line_search(f, tau_new, d, B, x_max=min(x_max, 4.0))
                n_eval += it_ls
                n_ls += 1
                if x > 0:
                    B = [[b * x for b in row] for row in B]
                    tau_new = [t + x * di for t, di in zip(tau_new, d)]
                    g_new = g_ls
        elif erquad > 1e-2:
            B2, done = _sr1(B, step, y, skip)
            if done:
                n_sr1 += 1
                B = B2
            else:
                n_sr1_skipped += 1
            r = min(2 * r, r_max)
        else:
            r = min(3 * r, r_max)
        tau, g = tau_new, g_new
    fallback = False
    if converged:
        out = tau
    elif not bad and best_rel <= fallback_ratio:
        out = best_tau
    else:
        fallback = True
        out = fallback_tau if fallback_tau is not None else tau0
    B, _ = _signs(B, s)
    return SaddleSolution(tau=np.array(out, np.float64), B=np.array(B), n_iter=n_iter, n_eval=n_eval,
                          converged=converged, fallback=fallback, rel_grad=best_rel,
                          n_sign_fixes=n_sign_fixes, n_sr1=n_sr1, n_sr1_skipped=n_sr1_skipped,
                          n_exact_hessian=n_exact, n_line_search=n_ls, trust_radius=r, events=events)
