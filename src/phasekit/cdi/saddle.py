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

    return eval2, evalk, setup, apply_step, project_into, setup2, apply2, mask_inplace


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
    return "\n".join(L) + "\n"


def _build_unrolled(K: int, smask):  # pragma: no cover - compiled code
    """The generated K = 4 kernels live in :mod:`._saddle_unrolled` (a file, so numba caches them);
    other K are compiled from the generated source."""
    if K == 4 and tuple(smask) == (True, False, True, False):
        from . import _saddle_unrolled as m

        return m.eval_k, m.setup_k, m.apply_k
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
    _EVAL2, _EVALK, _SETUP, _APPLY, _PROJECT_INTO, _SETUP2, _APPLY2, _MASK = _build_kernels()
    _EVAL4, _SETUP4, _APPLY4 = _build_unrolled(4, (True, False, True, False))
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
    elsewhere, float64 accumulation).
    """

    def __init__(self, z, gs, D, smask, amp, measured, scalars, amp2_sum: float, *,
                 fused: bool | None = None, views: dict | None = None):
        self.z, self.gs, self.D, self.amp, self.measured = z, gs, D, amp, measured
        self.k = D.shape[0]
        self.smask = np.asarray(smask, bool)
        self.c0, self.a, self.p, self.G = scalars
        self.amp2_sum = float(amp2_sum)
        self.fused = _fused_ok(z, D, amp, measured) if fused is None else fused
        self.n_eval = 0
        self._first = None
        self._first_key = None
        if self.fused:  # numpy views share the tensors' memory; made once (or passed in)
            v = views if views is not None else tensor_views(z, None, None, D, amp, measured)
            rows = v["rows"][:self.k]
            self._np = (v["z"], v["Dflat"][:self.k], rows[0], rows[1], v["amp"], v["meas"])
            self._rows = rows
        self._views = views
        s = self.smask
        self.Gs = np.where(np.outer(s, s), self.G, 0.0)

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
                first = (np.array(t), (o[8], o[9], o[10:12].copy(), None))
        elif fused and k == 4 and list(smask) == [True, False, True, False]:
            npair = 10
            o = np.empty(1 + 2 * k + npair + 2 + k)
            t = np.zeros(4) if tau0 is None else np.asarray(tau0, np.float64)
            r = v["rows"]
            _SETUP4(v["z"], v["gs"], v["gm"], gmsn, r[0], r[1], r[2], r[3], v["amp"], v["meas"],
                    float(t[0]), float(t[1]), float(t[2]), float(t[3]), o)
            c0, a, p = o[0], o[1:5].copy(), o[5:9].copy()
            G = _unpack_pairs(o[9:19], 4)
            if tau0 is not None:
                first = (t.copy(), (o[19], o[20], o[21:25].copy(), None))
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
        sub._first = first
        sub._first_key = tuple(float(x) for x in first[0]) if first is not None else None
        return sub

    def restrict(self, k: int) -> "SubspaceLagrangian":
        """The same Lagrangian on the first ``k`` directions (no pass: the scalars are sliced)."""
        return SubspaceLagrangian(self.z, self.gs, self.D[:k], self.smask[:k], self.amp, self.measured,
                                  (self.c0, self.a[:k].copy(), self.p[:k].copy(), self.G[:k, :k].copy()),
                                  self.amp2_sum, fused=self.fused, views=self._views)

    # -- raw pass
    def _pass(self, tau: np.ndarray, hess: bool):
        k = self.k
        if self._first is not None and not hess and tuple(tau) == self._first_key:
            return self._first[1]  # computed by the set-up pass
        if self.fused:
            zn, Dn, d0n, d1n, an, mn = self._np
            if k == 2:
                out = np.empty(7)
                _EVAL2(zn, d0n, d1n, an, mn, float(tau[0]), float(tau[1]), bool(hess), out)
                q = out[2:4]
                h = np.array([[out[4], out[5]], [out[5], out[6]]])
                return out[0], out[1], q, h
            if k == 4:
                out = np.empty(2 + 4 + 10)
                _EVAL4(zn, *self._rows, an, mn, *(float(v) for v in tau), bool(hess), out)
                return out[0], out[1], out[2:6].copy(), _unpack_pairs(out[6:16], 4)
            out = np.empty(2 + k + k * k)
            _EVALK(zn, Dn, an, mn, np.ascontiguousarray(tau, dtype=np.float64), bool(hess), out)
            h = out[2 + k:].reshape(k, k)
            h = np.triu(h) + np.triu(h, 1).T
            return out[0], out[1], out[2:2 + k].copy(), h
        return self._pass_torch(tau, hess)

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
    def evaluate(self, tau, hess: bool = False):
        """Return ``(L, grad, H)`` at ``tau`` (``H`` is None unless ``hess``); one pass."""
        tau = np.asarray(tau, np.float64)
        s1, s2, q, h = self._pass(tau, hess)
        self.n_eval += 1
        s = self.smask
        ps_norm2 = self.c0 + 2 * float(np.dot(tau[s], self.a[s])) + float(tau @ self.Gs @ tau)
        L = ps_norm2 - s1 - 2 * s2 + self.amp2_sum
        g = 2 * np.where(s, self.a + self.Gs @ tau, 0.0) - 2 * q
        H = (2 * self.Gs - 2 * h) if hess else None
        return L, g, H

    def grad0(self) -> np.ndarray:
        """``grad L(0) = 2 a_i [i in s] - 2 p_i`` from the precomputed dot products (free); for the
        2-D pair it is ``(-2||d_s||^2, +2||d_sbar||^2)`` (eq. (28))."""
        return 2 * np.where(self.smask, self.a, 0.0) - 2 * self.p

    def preconditioner(self, beta: float) -> np.ndarray:
        """Inverse of the diagonal Hessian guess: ``H_beta = diag(2||d_i||^2, -2||d_i||^2/beta)``
        for in-/out-of-constraint directions (eqs. (32)-(33); for the first pair its first Newton
        step from 0 is the HIO step ``(1, beta)``)."""
        d = 2 * np.maximum(np.diag(self.G), 1e-300)
        return np.diag(np.where(self.smask, 1.0 / d, -beta / d))

    def scale(self) -> np.ndarray:
        """``diag(2||d_i||^2)``: the scale used to average inverse Hessians across iterations."""
        return 2 * np.maximum(np.diag(self.G), 1e-300)


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
    B = np.array(B, dtype=np.float64, copy=True)
    s = np.asarray(smask, bool)
    k = len(s)
    want = np.where(s, 1.0, -1.0)
    d = B.diagonal()
    bad = ~(d * want > 0)
    n = int(bad.sum())
    if n:
        idx = np.flatnonzero(bad)
        B[idx, idx] = want[idx] * np.where(d[idx] != 0, np.abs(d[idx]), 1e-12)
    for i in range(k if k > 2 else 0):
        for j in range(i + 1, k):
            if s[i] == s[j] and B[i, j] ** 2 >= B[i, i] * B[j, j]:
                B[i, j] = B[j, i] = 0.0
                n += 1
    return B, n


def sr1_inverse_update(B, s, y, skip: float = 1e-2):
    """SR1 update of the inverse Hessian (eq. (36), inverse form):
    ``B <- B + (s - B y)(s - B y)^T / ((s - B y)^T y)``, skipped (returns ``B, False``) when
    ``|y^T (s - B y)| <= skip ||y|| ||s - B y||`` (Nocedal & Wright eq. (6.26); the port's rule)."""
    r = s - B @ y
    den = float(r @ y)
    if not abs(den) > skip * _norm(y) * _norm(r) or den == 0.0:
        return B, False
    return B + np.outer(r, r) / den, True


def _norm(v) -> float:
    """Euclidean norm of a tiny vector (``np.linalg.norm`` costs ~3 us per call)."""
    return math.sqrt(float(v @ v))


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
    best point found (smallest ``|phi|``)."""
    def phi(x):
        _, g, _ = f(tau + x * d, False)
        return float(d @ (B @ g)), g

    x0, f0 = 0.0, -float(d @ d)
    x1 = 1.0
    f1, g1 = phi(x1)
    best = (abs(f1), x1, g1)
    lo = hi = None
    if f1 > 0:
        lo, hi = (x0, f0), (x1, f1)
    it = 1
    while hi is None and it < max_iter and x1 < x_max and np.isfinite(f1):
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
        ``f(tau, hess) -> (L, grad, H or None)`` (:meth:`SubspaceLagrangian.evaluate`).
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
    """
    smask = np.asarray(smask, bool)
    tau = np.array(tau0, np.float64)
    B = np.array(B0, np.float64)
    g0n = _norm(g0)
    sol = SaddleSolution(tau=tau.copy(), B=B.copy())
    if not g0n > 0 or not np.isfinite(g0n):
        sol.converged = True
        sol.tau = np.zeros_like(tau)
        sol.rel_grad = 0.0
        return sol
    r = float(r0)
    _, g, _ = f(tau, False)
    sol.n_eval += 1
    best = (np.inf, tau.copy())
    bad = False
    since_best = 0
    for it in range(max_iter + 1):
        rel = _norm(g) / g0n
        tn = _norm(tau)
        if not (math.isfinite(rel) and math.isfinite(tn)) or tn > tau_max:
            bad = True
            sol.events.append("diverged")
            break
        if rel < best[0]:
            best = (rel, tau.copy())
            since_best = 0
        else:
            since_best += 1
        if rel < tol:
            sol.converged = True
            break
        if it == max_iter:
            break
        if since_best >= stall:
            sol.events.append("stalled")
            break
        sol.n_iter += 1
        B, nfix = enforce_saddle_signs(B, smask)
        sol.n_sign_fixes += nfix
        step = -B @ g
        ns = _norm(step)
        if ns > r:
            step *= r / ns
        tau_new = tau + step
        _, g_new, _ = f(tau_new, False)
        sol.n_eval += 1
        y = g_new - g
        By = B @ y
        den = math.sqrt(float(step @ step) + float(By @ By))
        erquad = _norm(By - step) / den if den > 0 else 0.0
        if not np.isfinite(erquad):
            bad = True
            sol.events.append("non-finite gradient")
            break
        if erquad > 1.0:
            # poor secant model: exact Hessian, line search, smaller trust region (items 6-7)
            r = max(r / 4, r_min)
            _, g_new, H = f(tau_new, True)
            sol.n_eval += 1
            sol.n_exact_hessian += 1
            Bx = _safe_inv(H)
            if Bx is not None:
                B, nfix = enforce_saddle_signs(Bx, smask)
                sol.n_sign_fixes += nfix
            d = -B @ g_new
            nd = _norm(d)
            if nd > 0 and np.isfinite(nd):
                x_max = max(r_max / nd, 1.0) if nd > 0 else 1.0
                x, g_ls, n_ls = _line_search(f, tau_new, d, B, x_max=min(x_max, 4.0))
                sol.n_eval += n_ls
                sol.n_line_search += 1
                if x > 0:
                    B = B * x
                    tau_new = tau_new + x * d
                    g_new = g_ls
        elif erquad > 1e-2:
            B2, done = sr1_inverse_update(B, step, y, skip)
            if done:
                sol.n_sr1 += 1
                B = B2
            else:
                sol.n_sr1_skipped += 1
            r = min(2 * r, r_max)
        else:
            r = min(3 * r, r_max)
        tau, g = tau_new, g_new
    sol.trust_radius = r
    sol.rel_grad = best[0]
    if sol.converged:
        sol.tau = tau
    elif not bad and best[0] <= fallback_ratio:
        sol.tau = best[1]
    else:
        sol.fallback = True
        sol.tau = np.array(fallback_tau if fallback_tau is not None else tau0, np.float64)
    B, _ = enforce_saddle_signs(B, smask)
    sol.B = B
    return sol
