"""Randomized Kaczmarz phase retrieval: RK, VR-RK and its L2 / L1 variants.

Source: Xian, Liu, Tai, Wang, "Randomized Kaczmarz method for single particle X-ray image phase
retrieval", arXiv:2207.04736 (2022), eqs. (8)-(16) and Algorithm 1 (section "Variance-Reduced
Randomized Kaczmarz (VR-RK) method"), in the normalised form described below and in
docs/kaczmarz.md.  The methods minimise the amplitude least-squares objective (8)

.. math:: \\tfrac12 \\sum_{k\\in M} \\big(b_k - |\\langle a_k, x\\rangle|\\big)^2

one measured Fourier pixel ("row") at a time.  With the project's unitary DFT (docs/conventions.md)
row ``k`` of ``A`` is the unitary DFT row restricted to the support ``S``:
``<a_k, x> = (F_u x)[k] = sum_{r in S} x_r w_k(r)``, ``w_k(r) = exp(-2 pi i k.r / N) / sqrt(N1 N2)``,
so every row has the same norm ``||a_k||^2 = |S| / (N1 N2)`` and the sampling law (10) is uniform
over the measured pixels ``M`` (unmeasured pixels -- gap, beamstop -- are simply not rows).

Fast rows (:class:`FourierRows`): the phase factor is separable, ``w_k(r) = E1[k1, r1] E2[k2, r2]``
with 1-D tables over the support's bounding box (our implementation; the paper gives none), so one
row product or one rank-1 update costs O(|S|) and never an FFT. The loop over the rows of an epoch
runs in a compiled numba kernel on CPU tensors; a plain-torch reference loop (the same arithmetic,
row by row) runs for CUDA tensors and is tested against the numba kernel.

One driver iteration is **one epoch = m = |M| row steps** (plus, for VR-RK, the snapshots that fall
in it; with the default epoch length ``s = m`` one snapshot per epoch, i.e. one FFT pair).

Ambiguities of the paper and the resolutions chosen here (also in docs/kaczmarz.md):

* ``sign(.)`` of the paper's real notation (eqs. (9), (12), (14)) is read as ``phase(z) = z/|z|``
  with ``phase(0) = 1``, since Fourier rows are complex (our reading).
* Real objects (``problem.real``): a row constraint ``|<a_k, x>| = b_k`` is two real equations on a
  real ``x``. The step is the minimum-norm *real* increment ``delta`` that makes
  ``<a_k, x + delta> = b_k phase(<a_k, x>)``: ``delta = alpha_k c_k + beta_k s_k`` with
  ``w_k = c_k + i s_k`` and ``[alpha, beta] = G_k^+ [Re rho, Im rho]`` where ``G_k`` is the 2x2 Gram
  matrix of ``(c_k, s_k)`` on ``S``. ``G_k`` costs O(1) per row from one FFT of the support
  indicator: ``sum_S w_k^2 = (F_u 1_S)(2k) / sqrt(N1 N2)``. On a full grid (``c_k``, ``s_k``
  orthogonal with equal norms) this is ``2 Re(rho conj(w_k)) / ||a_k||^2``; eigen-directions of
  ``G_k`` below ``gram_rcond`` times its largest eigenvalue are dropped (pseudo-inverse; rows
  ``k = -k`` have a rank-1 Gram matrix).
* Complex objects: the exact projection of eq. (9), ``delta = rho conj(w_k) / ||a_k||^2``.
* VR-RK (Algorithm 1): the printed step ``m/||A||_F^2`` with eq. (11) is ``m`` times the RK step and
  diverges; the normalised iteration used here (our resolution) is
  ``x <- x + relax [delta_i(x) - delta_i(xbar) + D]`` with
  ``D = E_i delta_i(xbar) = (1/m) A^H coef(xbar)`` (one FFT pair per snapshot, rows cached). Each
  residual keeps the phase of its own point (``phase(<a_i, x>)`` in ``delta_i(x)``,
  ``phase(<a_i, xbar>)`` in ``delta_i(xbar)``): the step is unbiased (its mean is the mean RK step
  at ``x``) and vanishes at ``x = xbar = x*``, so the control variate leaves no bias at the
  solution. (Taking the phase at ``x`` in both terms would turn the stochastic part into the linear
  ``<a_i, x - xbar>`` and the mean step into a least-squares step towards the snapshot's phases --
  also consistent at the fixed point, but biased away from it; not used.) ``variant="literal"`` runs
  the printed layout: no snapshot at the start (the control variates are 0, so the first ``s`` steps
  are plain RK) and a snapshot every ``s`` steps; the printed step itself is ``relax = m`` in this
  parametrisation.
* VR-RK epoch length (issue 4; docs/kaczmarz.md): the default snapshot interval is ``s = d/2`` row
  steps (``d`` real unknowns: ``|S|`` real, ``2|S|`` complex) with the unit step, not ``s = m`` (one
  pass; the paper's "size of the epoch" has no value). Between snapshots the control-variate noise
  ``(P_i - E P_i)(xbar - x*)`` (``P_i`` the linearised row projection) builds up to
  ``relax/(2 - relax) ||xbar - x*||^2`` (SVRG on a consistent system), so with ``s = m >> d`` the
  unit step makes no progress per epoch and small ``relax`` converges slowly; with ``s <= d/2``
  VR-RK converges like RK on the linear system (tests: phases fixed to the truth's through the
  ``_fixed_phase`` hook).
* VR-RK control-variate weight (issue 17; docs/kaczmarz.md): with Algorithm 1's unweighted control
  variate every stationary point of the amplitude loss is an exact fixed point (``x = xbar`` makes
  every step vanish), while RK stops only at exact solutions; on the noise-free gap problem VR-RK
  stalled there.  The step is ``x <- x + relax [delta_i(x) - c (delta_i(xbar) - D)]`` with
  ``c = cv_weight`` (default 1 = Algorithm 1; 0 = RK; 0.5 for noise-free data, issue 17; the mean step is RK's for every ``c``),
  and ``warmup`` RK epochs may precede the first snapshot (Algorithm 1's ``mu = 0`` start).
* VR-RK-L2 (eqs. 14-16): per-row ``gamma`` of (14) equals ``rho_row ||a_k||^2``; the implemented
  update is ``x <- x + relax [delta_i(x) - delta_i(xbar) + D - rho_row x] / (1 + rho_row)`` (for
  complex ``x`` identical to (15)-(16)). The parameter ``gamma`` is the objective-level weight of
  eq. (13), ``1/2 sum (b - |Ax|)^2 + gamma ||x||^2`` in unitary units;
  ``rho_row = 2 gamma / ||A||_F^2`` (complex; the fixed point of (15)-(16) is the stationary point
  of (13) with ``gamma_(13) = m gamma_(14) / 2``) or ``4 gamma / ||A||_F^2`` (real, where the exact
  real step is about twice the complex one).
* VR-RK-L1 (no algorithm in the paper): prox-SVRG, a soft-threshold after every step with
  ``tau = relax lam / (2 ||A||_F^2)`` (complex; our choice, the paper gives no VR-RK-L1 algorithm)
  or ``relax lam / ||A||_F^2`` (real), i.e. the minimised objective is
  ``sum (b - |Ax|)^2 + lam ||x||_1`` -- the un-halved loss for which the printed C-PRIME threshold
  ``lam / (2C)`` is exact (the same ``lam`` as :class:`phasekit.cdi.mm.CPrimeMM`). ``lam_rel`` gives
  it relative to the object's RMS value ``||b|| / sqrt(|S|)`` (Parseval):
  ``lam = 2 lam_rel ||b||/sqrt(|S|)`` shrinks each pixel of the solution by about ``lam_rel`` times
  the RMS.
* Positivity (``problem.positive``) is not part of the paper's iteration; it is applied with the
  realness and support constraints at the end of each RK epoch and before each VR-RK snapshot (our
  choice: the paper's VR-RK equations hold no support or positivity constraint). Support is
  structural (only support pixels are unknowns).
"""
from __future__ import annotations

import math
import os
from typing import Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator

from ..core.errors import ConfigError, InputError
from ..core.rng import make_rng
from ..operators.base import LinearOperator
from ..engine import Algorithm, StrictConfig

# --------------------------------------------------------------------------- row operator


class FourierRows(LinearOperator):
    """Support-restricted, masked unitary DFT rows ``A``: the Fourier vectors ``a_k`` of eqs.
    (8)-(10).

    ``A x = (F_u x)[M]`` for ``x`` living on the support pixels (a vector of length ``|S|``, in
    the order of ``support_index``).  :meth:`forward` / :meth:`adjoint` use one FFT;
    :meth:`row_product` and the epoch kernels use the separable tables ``E1`` (``N1 x h``) and
    ``E2`` (``N2 x w``) over the support's bounding box (in the work layout the box wraps around
    index 0; signed coordinates ``((r + N//2) mod N) - N//2`` make it contiguous), so a row costs
    O(|S|).

    Parameters
    ----------
    shape : tuple (N1, N2)
    support, measured : bool tensors in the work layout.
    dtype : complex dtype of the tables and of the operator spaces.
    real : bool
        Precompute the 2x2 Gram pseudo-inverses of the real step (see module docstring).
    gram_rcond : float
        Relative eigenvalue cut-off of that pseudo-inverse.
    """

    def __init__(self, shape, support: torch.Tensor, measured: torch.Tensor, *,
                 dtype=torch.complex128, real: bool = False, gram_rcond: float = 1e-3):
        if len(shape) != 2:
            raise InputError(f"Kaczmarz methods support 2-D patterns only, got shape {tuple(shape)}")
        n1, n2 = (int(s) for s in shape)
        self.shape = (n1, n2)
        self.device = support.device
        self.dtype = dtype
        sup = support.detach().cpu().numpy().astype(bool)
        meas = measured.detach().cpu().numpy().astype(bool)
        if not sup.any():
            raise InputError("support is empty")
        if not meas.any():
            raise InputError("mask marks no pixel as measured")
        r1, r2 = np.nonzero(sup)
        s1 = (r1 + n1 // 2) % n1 - n1 // 2          # signed coordinates: contiguous box
        s2 = (r2 + n2 // 2) % n2 - n2 // 2
        o1, o2 = int(s1.min()), int(s2.min())
        h, w = int(s1.max()) - o1 + 1, int(s2.max()) - o2 + 1
        self.box = (h, w)
        self.pa = (s1 - o1).astype(np.int64)
        self.pb = (s2 - o2).astype(np.int64)
        self.support_index_np = (r1 * n2 + r2).astype(np.int64)
        k1, k2 = np.nonzero(meas)
        self.k1 = k1.astype(np.int64)
        self.k2 = k2.astype(np.int64)
        self.row_index_np = (k1 * n2 + k2).astype(np.int64)
        self.n_support = int(r1.size)
        self.m = int(k1.size)
        self.in_shape = (self.n_support,)
        self.out_shape = (self.m,)
        #: squared row norm ||a_k||^2 = |S| / (N1 N2) (unitary DFT)
        self.row_norm2 = self.n_support / (n1 * n2)
        #: ||A||_F^2 = m |S| / (N1 N2)
        self.frob2 = self.m * self.row_norm2
        # separable tables, built in float64
        a = np.arange(h) + o1
        b = np.arange(w) + o2
        E1 = np.exp(-2j * np.pi * np.outer(np.arange(n1), a) / n1) / math.sqrt(n1)
        E2 = np.exp(-2j * np.pi * np.outer(np.arange(n2), b) / n2) / math.sqrt(n2)
        cnp = np.complex128 if dtype == torch.complex128 else np.complex64
        self.E1_np = np.ascontiguousarray(E1.astype(cnp))
        self.E2_np = np.ascontiguousarray(E2.astype(cnp))
        self.real = bool(real)
        self.gram_rcond = float(gram_rcond)
        if self.real:
            self.H_np = self._gram_pinv(sup, n1, n2)
        else:
            self.H_np = np.zeros((self.m, 3), np.float64)
        self.support_np = sup

    def _gram_pinv(self, sup, n1, n2) -> np.ndarray:
        """Per row the 2x2 pseudo-inverse ``[h11, h12, h22]`` of ``G = [[sum c^2, sum cs],
        [sum cs, sum s^2]]`` over ``S`` (``w = c + i s``), from ``q = sum_S w^2``."""
        fs = np.fft.fft2(sup.astype(np.float64), norm="ortho")
        q = fs[(2 * self.k1) % n1, (2 * self.k2) % n2] / math.sqrt(n1 * n2)
        nn = self.row_norm2
        g = np.empty((self.m, 2, 2))
        g[:, 0, 0] = 0.5 * (nn + q.real)
        g[:, 1, 1] = 0.5 * (nn - q.real)
        g[:, 0, 1] = g[:, 1, 0] = 0.5 * q.imag
        lam, vec = np.linalg.eigh(g)                      # ascending
        inv = np.where(lam > self.gram_rcond * lam[:, 1:2], 1.0 / np.where(lam > 0, lam, 1.0), 0.0)
        hp = np.einsum("mij,mj,mkj->mik", vec, inv, vec)
        return np.ascontiguousarray(np.stack([hp[:, 0, 0], hp[:, 0, 1], hp[:, 1, 1]], axis=1))

    # ---- tensors on the device (for the torch paths)
    def tensors(self, device) -> dict:
        key = str(device)
        cache = getattr(self, "_tcache", {})
        if key not in cache:
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
            cache[key] = {"E1": t(self.E1_np), "E2": t(self.E2_np), "pa": t(self.pa), "pb": t(self.pb),
                          "k1": t(self.k1), "k2": t(self.k2), "H": t(self.H_np),
                          "sidx": t(self.support_index_np), "ridx": t(self.row_index_np)}
            self._tcache = cache
        return cache[key]

    # ---- full products (one FFT)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x`` on the support pixels (length ``|S|``) -> values on the rows."""
        T = self.tensors(x.device)
        full = torch.zeros(self.shape[0] * self.shape[1], dtype=self.dtype, device=x.device)
        full[T["sidx"]] = x.to(self.dtype)
        z = torch.fft.fft2(full.reshape(self.shape), norm="ortho").reshape(-1)
        return z[T["ridx"]]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^H y = P_S F_u^{-1}(y on M)`` restricted to the support pixels."""
        T = self.tensors(y.device)
        full = torch.zeros(self.shape[0] * self.shape[1], dtype=self.dtype, device=y.device)
        full[T["ridx"]] = y.to(self.dtype)
        x = torch.fft.ifft2(full.reshape(self.shape), norm="ortho").reshape(-1)
        return x[T["sidx"]]

    def row_vector(self, j: int) -> np.ndarray:
        """``w_k`` on the support pixels for row ``j`` (O(|S|), from the tables)."""
        return self.E1_np[self.k1[j], self.pa] * self.E2_np[self.k2[j], self.pb]

    def row_product(self, x, j: int) -> complex:
        """``<a_j, x>`` in O(|S|) (x on the support pixels)."""
        xv = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return complex(np.sum(xv * self.row_vector(j)))

    def gather(self, x_full: torch.Tensor) -> torch.Tensor:
        """Work-layout image -> vector on the support pixels."""
        return x_full.reshape(-1)[self.tensors(x_full.device)["sidx"]]

    def scatter(self, xs: torch.Tensor, dtype) -> torch.Tensor:
        """Vector on the support pixels -> work-layout image (zero off the support)."""
        full = torch.zeros(self.shape[0] * self.shape[1], dtype=dtype, device=xs.device)
        full[self.tensors(xs.device)["sidx"]] = xs.to(dtype)
        return full.reshape(self.shape)


# --------------------------------------------------------------------------- compiled epoch kernels
def _build_kernels():  # pragma: no cover - compiled code
    # strict IEEE; the on-disk cache also goes stale when operators/modulus.py, whose
    # project_pixel the epochs inline, changes (jit_with_helpers)
    jit = jit_with_helpers(fastmath=False)

    @jit
    def epoch_complex(x, order, k1, k2, amp, E1, E2, pa, pb, cbar, D, use_cv, inv_n, relax,
                      rho_row, tau, wbuf, fixph, use_fix):
        P = x.size
        sc = relax / (1.0 + rho_row)
        shrink = 1.0 - relax * rho_row / (1.0 + rho_row)
        for t in range(order.size):
            j = order[t]
            e1 = E1[k1[j]]
            e2 = E2[k2[j]]
            zr = 0.0
            zi = 0.0
            for p in range(P):
                w = e1[pa[p]] * e2[pb[p]]
                wbuf[p] = w
                v = x[p]
                zr += v.real * w.real - v.imag * w.imag
                zi += v.real * w.imag + v.imag * w.real
            b = np.float64(amp[j])
            if use_fix:
                tr = b * fixph[j].real
                ti = b * fixph[j].imag
            else:  # the modulus projection of <a_j, x> (phasekit.operators.modulus)
                tr, ti = project_pixel(zr, zi, b)
            cr = (tr - zr) * inv_n
            ci = (ti - zi) * inv_n
            if use_cv:
                cr -= cbar[j].real
                ci -= cbar[j].imag
            c = complex(cr * sc, ci * sc)
            for p in range(P):
                v = x[p] * shrink + c * wbuf[p].conjugate()
                if use_cv:
                    v += sc * D[p]
                if tau > 0.0:
                    a = abs(v)
                    v = v * (max(a - tau, 0.0) / a) if a > 0.0 else v
                x[p] = v

    @jit
    def epoch_real(x, order, k1, k2, amp, E1, E2, pa, pb, H, cbar, D, use_cv, relax, rho_row,
                   tau, wbuf, fixph, use_fix):
        P = x.size
        sc = relax / (1.0 + rho_row)
        shrink = 1.0 - relax * rho_row / (1.0 + rho_row)
        for t in range(order.size):
            j = order[t]
            e1 = E1[k1[j]]
            e2 = E2[k2[j]]
            zr = 0.0
            zi = 0.0
            for p in range(P):
                w = e1[pa[p]] * e2[pb[p]]
                wbuf[p] = w
                v = x[p]
                zr += v * w.real
                zi += v * w.imag
            b = np.float64(amp[j])
            if use_fix:
                rr = b * fixph[j].real - zr
                ri = b * fixph[j].imag - zi
            else:
                pr, pi = project_pixel(zr, zi, b)
                rr = pr - zr
                ri = pi - zi
            cr = H[j, 0] * rr + H[j, 1] * ri
            ci = H[j, 1] * rr + H[j, 2] * ri
            if use_cv:
                cr -= cbar[j].real
                ci -= cbar[j].imag
            cr *= sc
            ci *= sc
            for p in range(P):
                w = wbuf[p]
                v = x[p] * shrink + (cr * w.real + ci * w.imag)
                if use_cv:
                    v += sc * D[p]
                if tau > 0.0:
                    a = abs(v)
                    v = (v / a) * max(a - tau, 0.0) if a > 0.0 else v
                x[p] = v

    @jit
    def snap_coef(z, amp, H, fixph, use_fix, real, inv_n, out):
        """Snapshot coefficients ``coef_j(xbar)`` of every row from ``z = A xbar`` (the same
        arithmetic as the row kernels)."""
        for j in range(z.size):
            zr = np.float64(z[j].real)
            zi = np.float64(z[j].imag)
            b = np.float64(amp[j])
            if use_fix:
                rr = b * fixph[j].real - zr
                ri = b * fixph[j].imag - zi
            else:
                pr, pi = project_pixel(zr, zi, b)
                rr = pr - zr
                ri = pi - zi
            if real:
                out[j] = complex(H[j, 0] * rr + H[j, 1] * ri, H[j, 1] * rr + H[j, 2] * ri)
            else:
                out[j] = complex(rr * inv_n, ri * inv_n)

    return epoch_complex, epoch_real, snap_coef


try:
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    # (without numba, jit_with_helpers raises ImportError when _build_kernels calls it)
    from ..operators.modulus import jit_with_helpers, project_pixel

    _EPOCH_COMPLEX, _EPOCH_REAL, _SNAP_COEF = _build_kernels()
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


def _epoch_torch(x, order, T, amp, cbar, D, use_cv, inv_n, relax, rho_row, tau, real, fixph=None):
    """Plain-torch reference of the epoch kernels: the same arithmetic, one row at a time, on
    any device (what CUDA tensors run).  ``x`` (support vector) is updated in place.  ``fixph``
    (optional, unit complex per row) replaces ``phase(<a_j, x>)``: the linear system
    ``<a_j, x> = b_j fixph_j``."""
    sc = relax / (1.0 + rho_row)
    shrink = 1.0 - relax * rho_row / (1.0 + rho_row)
    E1, E2, pa, pb, k1, k2, H = T["E1"], T["E2"], T["pa"], T["pb"], T["k1"], T["k2"], T["H"]
    acc = torch.complex128
    for j in order.tolist():
        w = E1[k1[j]][pa] * E2[k2[j]][pb]
        z = (x.to(acc) * w.to(acc)).sum()
        az = z.abs()
        b = amp[j].to(torch.float64)
        if fixph is not None:
            ph = fixph[j].to(acc)
        else:
            ph = torch.where(az > 0, z / torch.where(az > 0, az, torch.ones_like(az)),
                             torch.ones_like(z))
        rho = b * ph - z
        if real:
            cr = H[j, 0] * rho.real + H[j, 1] * rho.imag
            ci = H[j, 1] * rho.real + H[j, 2] * rho.imag
            c = torch.complex(cr, ci)
        else:
            c = rho * inv_n
        if use_cv:
            c = c - cbar[j].to(acc)
        c = c * sc
        if real:
            wd = w.to(acc)
            v = x * shrink + (c.real * wd.real + c.imag * wd.imag).to(x.dtype)
        else:
            v = x * shrink + (c.to(x.dtype) * w.conj())
        if use_cv:
            v = v + sc * D
        if tau > 0:
            a = v.abs()
            v = torch.where(a > 0, v * (torch.clamp(a - tau, min=0) / torch.where(a > 0, a, 1)), v)
        x.copy_(v)


def default_epoch_length(rows: FourierRows, real: bool) -> int:
    """Default VR-RK snapshot interval ``s = d/2``, ``d`` = number of real unknowns (``|S|`` for a
    real object, ``2|S|`` for a complex one); see :class:`VRRKConfig`."""
    d = rows.n_support * (1 if real else 2)
    return max(1, (d + 1) // 2)


# --------------------------------------------------------------------------- configs
class RKConfig(StrictConfig):
    """Parameters of randomized Kaczmarz (Xian et al. 2022, eqs. (9)-(10); the paper gives no
    values)."""

    relax: float = Field(1.0, gt=0.0, description="relaxation alpha of every row step (1 = exact projection)")
    sampling: Literal["iid", "shuffle"] = Field(
        "iid", description="rows i.i.d. uniform over the measured pixels (eq. 10) or a per-epoch permutation")
    gamma: float = Field(0.0, ge=0.0, description="L2 weight of eq. (13), objective level (unitary units)")
    lam: float | None = Field(None, ge=0.0, description="L1 weight: objective sum(b-|Ax|)^2 + lam ||x||_1")
    lam_rel: float | None = Field(None, ge=0.0,
                                  description="L1 weight relative to the object RMS: lam = 2 lam_rel ||b||/sqrt(|S|)")
    gram_rcond: float = Field(1e-3, gt=0.0, lt=1.0, description="eigenvalue cut-off of the real 2x2 step")
    seed: int | None = Field(None, ge=0, description="seed of the row sampling (default: from the run's rng)")
    backend: Literal["auto", "numba", "torch"] = Field("auto", description="epoch kernel")

    @field_validator("lam_rel")
    @classmethod
    def _one_weight(cls, v, info: ValidationInfo):
        if v is not None and info.data.get("lam") is not None:
            raise ValueError("give either lam or lam_rel, not both")
        return v


class VRRKConfig(RKConfig):
    """Parameters of VR-RK (Xian et al. 2022, Algorithm 1, in the normalised form of the module
    docs).

    Defaults (a resolution of ours, docs/kaczmarz.md "Why the epoch length matters"): the unit step
    ``relax = 1`` of eq. (16) and a snapshot every ``s = d/2`` row steps, ``d`` the number of real
    unknowns (``|S|`` for real objects, ``2|S|`` for complex ones).  ``s = m`` (one
    pass) is far too long: between snapshots the control-variate noise ``(P_i - E P_i)(xbar - x*)``
    builds up to ``alpha/(2 - alpha) ||xbar - x*||^2``, so with ``s = m >> d`` and ``relax = 1`` an
    epoch does not reduce the error at all, and only ``relax << 1`` (slow) converges.
    ``epoch_length`` and ``relax`` stay free (``epoch_length=m, relax=0.2`` is the former default).

    ``cv_weight`` (issue 17), default 1 = Algorithm 1 as printed: that weight makes every
    stationary point of the loss a fixed point, and VR-RK stalled on the noise-free gap
    benchmark; ``cv_weight=0.5`` keeps half of RK's row noise, so only exact solutions are fixed
    points, and escaped there -- but on noisy data (the paper's Table 2, where variance reduction
    is the point) it leaves half of RK's noise, so the default stays the paper's.  ``warmup`` RK
    epochs before the first snapshot.
    """

    relax: float = Field(1.0, gt=0.0, description="relaxation alpha of every row step (1 = the paper's unit step)")

    epoch_length: int | None = Field(
        None, ge=1, description="snapshot every s row steps (default d/2, d = real unknowns: |S| real, 2|S| complex)")
    variant: Literal["canonical", "literal"] = Field(
        "canonical", description="canonical: snapshot at the start; literal: printed Algorithm 1 layout")
    warmup: int = Field(0, ge=0, description="plain RK epochs before the first snapshot (Algorithm 1's mu = 0 start)")
    cv_weight: float = Field(1.0, ge=0.0, le=1.0,
                             description="weight c of the control variate delta_i(xbar) - D (1 = Algorithm 1, 0 = RK)")


class VRRKL2Config(VRRKConfig):
    """``gamma`` defaults to 1e-4: the phase-retrieval Hessian has many small eigenvalues, so
    larger ridge weights bias the solution strongly (1e-2 multiplied the error by ~5 in a test
    at eps = 0.01; docs/kaczmarz.md)."""

    gamma: float = Field(1e-4, ge=0.0, description="L2 weight of eq. (13), objective level (unitary units)")
    cv_weight: float = Field(1.0, ge=0.0, le=1.0,
                             description="weight of the control variate (1 = Algorithm 1: the regularised "
                                         "objective is inconsistent, so a weight < 1 would leave row noise)")


class VRRKL1Config(VRRKConfig):
    lam_rel: float | None = Field(1e-3, ge=0.0,
                                  description="L1 weight relative to the object RMS: lam = 2 lam_rel ||b||/sqrt(|S|)")
    cv_weight: float = Field(1.0, ge=0.0, le=1.0,
                             description="weight of the control variate (1 = Algorithm 1: the regularised "
                                         "objective is inconsistent, so a weight < 1 would leave row noise)")


# --------------------------------------------------------------------------- algorithms
class RandomizedKaczmarz(Algorithm):
    """Randomized Kaczmarz for phase retrieval (RK, eqs. 9-10; Wei 2015, Tan & Vershynin 2019).

    Each step picks a measured pixel ``k`` (i.i.d. uniform, which is eq. (10) for Fourier rows,
    or a per-epoch permutation) and projects ``x`` onto ``{|<a_k, x>| = b_k}`` keeping the
    current phase: ``x <- x + relax * delta_k(x)``, ``delta_k = (b_k phase(z) - z) conj(w_k) /
    ||a_k||^2`` with ``z = <a_k, x>`` (complex objects) or the minimum-norm real increment (real
    objects, see the module docstring).  With ``gamma > 0`` the step is eq. (14), with ``lam``
    (or ``lam_rel``) a soft-threshold follows each step.  One iteration of the driver is one epoch
    of ``m = |M|`` steps, O(|S|) each.
    """

    name = "rk"
    variance_reduced = False
    keep_best_default = False
    state_names = ("x",)

    Config = RKConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        relax, sampling, gamma, lam, lam_rel = cfg.relax, cfg.sampling, cfg.gamma, cfg.lam, cfg.lam_rel
        gram_rcond, seed, backend = cfg.gram_rcond, cfg.seed, cfg.backend
        epoch_length = getattr(cfg, "epoch_length", None)
        variant = getattr(cfg, "variant", "canonical")
        self.warmup = int(getattr(cfg, "warmup", 0))
        self.cv_weight = float(getattr(cfg, "cv_weight", 1.0))
        if getattr(problem, "ndim", 2) != 2:
            raise InputError(f"Kaczmarz methods support 2-D patterns only, got shape {tuple(problem.shape)}")
        self.relax = float(relax)
        self.sampling = sampling
        self.gamma = float(gamma)
        self._lam, self._lam_rel = lam, lam_rel
        self.gram_rcond = float(gram_rcond)
        self.backend = backend
        self.epoch_length = epoch_length
        self.variant = variant
        if backend == "numba" and not HAVE_NUMBA:
            raise ConfigError("backend='numba' asked for but numba is not available")
        self.rng = make_rng(seed) if seed is not None else None
        self._seeded = seed is not None
        self.rows: FourierRows | None = None
        #: optional unit phase per row (complex128, length m, row order of :class:`FourierRows`):
        #: when set, ``phase(<a_j, x>)`` is replaced by it everywhere (row steps and snapshots), so
        #: the methods solve the *linear* system ``<a_j, x> = b_j fixed_phase_j`` -- the
        #: linearisation used to test the control-variate algebra (tests/test_kaczmarz.py).
        self._fixed_phase: torch.Tensor | None = None
        self._since_snap = 0
        self._cv_active = False
        self._epoch = 0  # epochs done (the RK warm-up counts them)

    # ---- rng from the driver (one independent stream per start)
    def bind_rng(self, rng) -> None:
        """Called by :func:`phasekit.engine.run` with the start's generator before ``initialize``."""
        if not self._seeded:
            self.rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))

    # ---- set-up
    @property
    def _real(self) -> bool:
        return bool(self.problem.real)

    def _build_rows(self, support=None):
        """The rows of the support ``support`` (default: the problem's current support)."""
        p = self.problem
        sup = p.support if support is None else support
        cd = torch.complex128 if p.precision == "double" else torch.complex64
        self.rows = FourierRows(p.shape, sup, p.measured, dtype=cd, real=self._real,
                                gram_rcond=self.gram_rcond)
        self._rows_support = sup.clone()
        R = self.rows
        self._amp = p.amp.reshape(-1)[R.tensors(p.device)["ridx"]].contiguous()
        self._inv_n = 1.0 / R.row_norm2
        # per-row L2 weight and per-step L1 threshold (module docstring)
        c_real = 4.0 if self._real else 2.0
        self.rho_row = c_real * self.gamma / R.frob2
        if self._lam is not None:
            self.lam = float(self._lam)
        elif self._lam_rel is not None:
            bnorm = float(torch.linalg.vector_norm(self._amp.to(torch.float64)))
            self.lam = 2.0 * float(self._lam_rel) * bnorm / math.sqrt(R.n_support)
        else:
            self.lam = 0.0
        self.tau = self.relax * self.lam / ((1.0 if self._real else 2.0) * R.frob2)
        self._wbuf = np.empty(R.n_support, dtype=R.E1_np.dtype)
        self.s = int(self.epoch_length) if self.epoch_length is not None else default_epoch_length(R, self._real)

    def _use_numba(self, xs) -> bool:
        if self.backend == "torch":
            return False
        ok = HAVE_NUMBA and xs.device.type == "cpu"
        if self.backend == "numba" and not ok:
            raise ConfigError("backend='numba' needs CPU tensors")
        return ok

    def initialize(self, x0):
        p = self.problem
        if self.rng is None:
            self.rng = make_rng(None)
        self._build_rows()
        x = p.constrain(x0.to(p.cdtype))
        self.x = x.contiguous()
        self._new_vector()
        self._since_snap = 0
        self._cv_active = False
        self._epoch = 0
        if self.variance_reduced:
            if self.variant == "canonical" and self.warmup == 0:
                self._snapshot()
            else:  # Algorithm 1's start: mu_i(xbar) = 0, mubar = 0 until the first snapshot
                self._cbar = torch.zeros(self.rows.m, dtype=torch.complex128, device=p.device)
                self._D = torch.zeros_like(self.xs)

    def _new_vector(self):
        """The support vector the kernels update (real for real problems)."""
        xs = self.rows.gather(self.x)
        if self._real:
            xs = xs.real
        dt = (torch.float64 if self._real else torch.complex128) if self.problem.precision == "double" else \
             (torch.float32 if self._real else torch.complex64)
        self.xs = xs.to(dt).contiguous().clone()

    def _sync_x(self):
        self.x = self.rows.scatter(self.xs, self.problem.cdtype).contiguous()

    def _project(self):
        """Realness / positivity (support is structural) at epoch ends / before snapshots."""
        if self.problem.positive:
            if self._real:
                self.xs.clamp_(min=0)
            else:
                self.xs.copy_(torch.complex(self.xs.real.clamp(min=0), self.xs.imag))

    def _snapshot(self):
        """``xbar <- x``; cache ``coef_i(xbar)`` for every row and ``D = (1/m) A^H coef(xbar)``
        (one FFT pair; the snapshot ``xbar = x_k`` of Algorithm 1, step 2)."""
        R = self.rows
        dev = self.xs.device
        z = R.forward(self.xs).to(torch.complex128)
        if self._use_numba(self.xs):
            use_fix = self._fixed_phase is not None
            fix = self._fixed_phase.numpy() if use_fix else np.ones(1, np.complex128)
            cn = np.empty(R.m, np.complex128)
            _SNAP_COEF(z.numpy(), self._amp.numpy(), R.H_np, fix, use_fix, self._real, self._inv_n, cn)
            self._cbar = torch.from_numpy(cn)
            D = R.adjoint(self._cbar.to(R.dtype)).to(torch.complex128) / R.m
            self._D = (D.real if self._real else D).to(self.xs.dtype).contiguous()
            self._weight_cv()
            self._cv_active = True
            return
        if self._fixed_phase is not None:
            ph = self._fixed_phase.to(torch.complex128)
        else:
            az = z.abs()
            ph = torch.where(az > 0, z / torch.where(az > 0, az, torch.ones_like(az)), torch.ones_like(z))
        rho = self._amp.to(torch.float64) * ph - z
        if self._real:
            H = R.tensors(dev)["H"]
            c = torch.complex(H[:, 0] * rho.real + H[:, 1] * rho.imag, H[:, 1] * rho.real + H[:, 2] * rho.imag)
        else:
            c = rho * self._inv_n
        self._cbar = c.contiguous()
        D = R.adjoint(c.to(R.dtype)).to(torch.complex128) / R.m
        self._D = (D.real if self._real else D).to(self.xs.dtype).contiguous()
        self._weight_cv()
        self._cv_active = True

    def _weight_cv(self):
        """Scale the control variate ``delta_i(xbar) - D`` by ``cv_weight`` (1 = Algorithm 1)."""
        if self.cv_weight != 1.0:
            self._cbar.mul_(self.cv_weight)
            self._D.mul_(self.cv_weight)

    # ---- one epoch
    def _run_rows(self, order: np.ndarray):
        R = self.rows
        use_cv = bool(self.variance_reduced and self._cv_active)
        if self._use_numba(self.xs):
            xn = self.xs.numpy()
            amp = self._amp.numpy()
            cbar = self._cbar.numpy() if self.variance_reduced else np.zeros(1, np.complex128)
            D = self._D.numpy() if self.variance_reduced else np.zeros(1, xn.dtype)
            use_fix = self._fixed_phase is not None
            fix = self._fixed_phase.numpy() if use_fix else np.ones(1, np.complex128)
            if self._real:
                _EPOCH_REAL(xn, order, R.k1, R.k2, amp, R.E1_np, R.E2_np, R.pa, R.pb, R.H_np, cbar, D,
                            use_cv, self.relax, self.rho_row, self.tau, self._wbuf, fix, use_fix)
            else:
                _EPOCH_COMPLEX(xn, order, R.k1, R.k2, amp, R.E1_np, R.E2_np, R.pa, R.pb, cbar, D, use_cv,
                               self._inv_n, self.relax, self.rho_row, self.tau, self._wbuf, fix, use_fix)
        else:
            cbar = self._cbar if self.variance_reduced else None
            D = self._D if self.variance_reduced else None
            _epoch_torch(self.xs, order, R.tensors(self.xs.device), self._amp, cbar, D, use_cv,
                         self._inv_n, self.relax, self.rho_row, self.tau, self._real, self._fixed_phase)

    def _draw(self) -> np.ndarray:
        m = self.rows.m
        if self.sampling == "shuffle":
            return self.rng.permutation(m).astype(np.int64)
        return self.rng.integers(0, m, size=m, dtype=np.int64)

    def step(self, k):
        p = self.problem
        if self.rows is None or not torch.equal(self._rows_support, p.support):
            # shrink-wrap changed the support: rebuild the rows, restart the control variate
            x = self.estimate()
            self._build_rows()
            self.x = p.constrain(x).contiguous()
            self._new_vector()
            self._since_snap = 0
            if self.variance_reduced and self._epoch >= self.warmup:
                self._snapshot()
        order = self._draw()
        if not self.variance_reduced or self._epoch < self.warmup:
            # RK, or VR-RK's RK warm-up (Algorithm 1 with mu = 0 before the first snapshot)
            self._run_rows(order)
            self._project()
            self._epoch += 1
            if self.variance_reduced and self._epoch == self.warmup:
                self._since_snap = 0
                if self.variant == "canonical":
                    self._snapshot()
        else:
            self._epoch += 1
            pos = 0
            while pos < order.size:
                n = min(order.size - pos, self.s - self._since_snap)
                self._run_rows(order[pos:pos + n])
                pos += n
                self._since_snap += n
                if self._since_snap >= self.s:
                    self._project()
                    self._snapshot()
                    self._since_snap = 0
        self._sync_x()

    # ---- reporting
    def estimate(self):
        return self.problem.constrain(self.x)

    def objective_terms(self, x=None) -> dict[str, float]:
        """``loss = 1/2 sum_M (b - |F_u x|)^2`` (eq. 8) and the regularised objective
        ``loss + gamma ||x||^2 + (lam/2) ||x||_1`` (eqs. 13 / 17 in this module's convention)."""
        p = self.problem
        x = self.estimate() if x is None else x
        z = p.fft(x)
        d = (z.abs() - p.amp)[p.measured].to(torch.float64)
        loss = 0.5 * float((d * d).sum())
        obj = loss + self.gamma * float((x.abs().to(torch.float64) ** 2).sum()) \
            + 0.5 * self.lam * float(x.abs().to(torch.float64).sum())
        return {"R_F": p.rfactor_fourier(z), "loss": loss, "objective": obj}

    def metrics(self):
        return self.objective_terms()

    # ---- state
    def state_dict(self):
        # rows_support: the support xs (and the control variate) belong to.  A checkpoint taken
        # right after shrink-wrap moved the support holds the problem's new support but the
        # old rows; the next step rebuilds them, on resume as in the uninterrupted run
        st = {"x": self.x, "xs": self.xs,
              "rng_state": self.rng.bit_generator.state if self.rng is not None else None,
              "since_snap": self._since_snap, "cv_active": self._cv_active, "epoch": self._epoch,
              "rows_support": self._rows_support}
        if self.variance_reduced:
            # the control variate at the snapshot point: without it a resumed run would retake
            # the snapshot at the current x and drift from the uninterrupted one
            st["cbar"], st["D"] = self._cbar, self._D
        return st

    def load_state_dict(self, state):
        if self.rng is None:
            self.rng = make_rng(None)
        if state.get("rng_state") is not None:
            self.rng.bit_generator.state = state["rng_state"]
        dev = self.problem.device
        rows_support = state.get("rows_support")
        self._build_rows(None if rows_support is None else rows_support.to(dev))
        if state["xs"].numel() != self.rows.n_support:  # (a checkpoint without rows_support)
            raise ConfigError("the checkpoint's Kaczmarz state does not match its support "
                                  "(written by an older phasekit?); start the run again")
        self.x = state["x"].to(dev).contiguous()
        self.xs = state["xs"].to(dev).contiguous().clone()
        self._since_snap = int(state["since_snap"])
        self._cv_active = bool(state["cv_active"])
        self._epoch = int(state.get("epoch", 0))
        if self.variance_reduced:
            self._cbar = state["cbar"].to(dev).contiguous().clone()
            self._D = state["D"].to(dev).contiguous().clone()


class VRRK(RandomizedKaczmarz):
    """Variance-reduced randomized Kaczmarz (VR-RK, Algorithm 1 / eqs. 11-12), in the normalised
    form of the module docstring (Xian et al. 2022, sec. "Variance-Reduced Randomized Kaczmarz").

    ``x <- x + relax [delta_i(x) - delta_i(xbar) + D]`` with ``D = E_i delta_i(xbar)``; the
    snapshot ``xbar`` is retaken every ``epoch_length`` steps (default ``d/2``, ``d`` the number
    of real unknowns; see :class:`VRRKConfig`) with one FFT pair that also caches
    ``delta_i(xbar)``'s coefficient for every row.  ``variant="literal"`` starts without control
    variate (the printed layout).  With ``relax = 1`` and no snapshot the iteration is exactly RK.

    Notes
    -----
    On noise-free data the fixed points differ from RK's: RK stops only where every row
    constraint holds (an exact solution), VR-RK wherever the averaged step ``D`` vanishes, i.e. at
    any stationary point of the (row-weighted) amplitude loss.  With frequent snapshots an epoch
    acts like an over-relaxed ER step, and like ER it can stagnate at such a point (issue 4,
    benchmarks/results/kaczmarz_gap.md).  On noisy (inconsistent) data this is the intended
    behaviour: VR-RK converges to a minimiser of the loss where RK keeps oscillating.
    """

    name = "vrrk"
    variance_reduced = True
    Config = VRRKConfig


class VRRKL2(VRRK):
    """VR-RK with the L2 (ridge) term, eqs. (13)-(16); ``gamma`` is the weight of eq. (13)."""

    name = "vrrk-l2"
    Config = VRRKL2Config


class VRRKL1(VRRK):
    """VR-RK with the L1 term of eq. (17) as prox-SVRG: a soft-threshold after
    every step.  The paper (Xian et al. 2022, eqs. (17)-(19)) gives the L1 objective and a
    full-batch
    MM step but no stochastic L1 algorithm; prox-SVRG is our choice (docs/kaczmarz.md)."""

    name = "vrrk-l1"
    Config = VRRKL1Config
