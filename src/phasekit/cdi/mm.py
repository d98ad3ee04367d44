"""C-PRIME / MM: the full-batch majorisation-minimisation step for the L1-regularised amplitude
objective (VR-RK paper, arXiv:2207.04736, eqs. (17)-(19) and the closed form after (19), citing
Qiu & Palomar 2017).

Objective (17) with the convention of the printed closed form (our resolution of a factor-2
mismatch: (17) carries a 1/2, but the printed threshold ``lam / (2C)`` fits the un-halved loss): the
threshold ``lam / (2C)`` is exact for the *un-halved* loss

.. math:: \\sum_{k\\in M} (b_k - |\\langle a_k, x\\rangle|)^2 + \\lambda \\|x\\|_1 ,

which is the same ``lam`` as :class:`phasekit.cdi.kaczmarz.VRRKL1` (so the two minimise the same
objective).  One step (eqs. 18-19):

.. math:: d = x - \\tfrac1C A^H\\big(A x - b\\odot e^{i\\angle Ax}\\big), \\qquad
          x \\leftarrow e^{i\\angle d} \\max(|d| - \\lambda/(2C), 0)

with ``C >= rho_max(A^H A)``.  With the project's unitary DFT ``rho_max = 1`` (no gap), so ``C`` is
given in units of that bound (the paper's unnormalised ``C = N^2`` is ``C = 1`` here).  For ``x``
on the support, ``A^H(Ax - b e^{i angle Ax}) = x - P_S P_M x`` with the missing-pixel-floating
modulus projection ``P_M`` (unmeasured pixels keep their current value, since they are not rows of
``A``), hence

.. math:: d = (1 - 1/C)\\,x + (1/C)\\,P_S P_M x ,

and at ``C = 1`` one C-PRIME step is exactly **ER followed by complex soft-thresholding** (a
sanity test of ours).  Real objects take the real part of ``d`` (the real gradient);
positive ones use the prox of ``lam ||x||_1 + i_{x >= 0}``: ``max(d - tau, 0)``.
"""
from __future__ import annotations

import math

import torch
from pydantic import Field, ValidationInfo, field_validator

from ..engine import StrictConfig
from .base import ProjectionAlgorithm


class CPrimeConfig(StrictConfig):
    """Parameters of the C-PRIME / MM solver."""

    lam: float | None = Field(None, ge=0.0, description="L1 weight: objective sum(b-|Ax|)^2 + lam ||x||_1")
    lam_rel: float | None = Field(None, ge=0.0,
                                  description="L1 weight relative to the object RMS: lam = 2 lam_rel ||b||/sqrt(|S|)")
    C: float = Field(1.0, ge=1.0, description="majorisation constant in units of rho_max(A^H A) = 1 (unitary)")

    @field_validator("lam_rel")
    @classmethod
    def _one_weight(cls, v, info: ValidationInfo):
        if v is not None and info.data.get("lam") is not None:
            raise ValueError("give either lam or lam_rel, not both")
        return v


def soft_threshold(d: torch.Tensor, tau: float, *, real: bool = False, positive: bool = False) -> torch.Tensor:
    """Complex soft-threshold ``phase(d) max(|d| - tau, 0)`` (eq. 19's closed form); for real
    ``d`` ``sign(d) max(|d| - tau, 0)``; with ``positive`` ``max(Re d - tau, 0)``."""
    if real or not d.is_complex():
        r = d.real if d.is_complex() else d
        out = torch.clamp(r - tau, min=0) if positive else torch.sign(r) * torch.clamp(r.abs() - tau, min=0)
        return out.to(d.dtype)
    a = d.abs()
    scale = torch.clamp(a - tau, min=0) / torch.where(a > 0, a, torch.ones_like(a))
    out = d * scale
    if positive:
        out = torch.complex(out.real.clamp(min=0), out.imag)
    return out


class CPrimeMM(ProjectionAlgorithm):
    """C-PRIME / MM full-batch solver (Xian et al. 2022, eqs. (17)-(19)).

    ``x <- Soft_{lam/(2C)}((1 - 1/C) x + (1/C) P_C P_M x)``: one FFT pair per iteration.  It is the
    full-batch reference of :class:`phasekit.cdi.kaczmarz.VRRKL1`; with ``lam = 0`` and ``C = 1``
    it is ER.  The iterate is its own estimate (it always satisfies the constraints).
    """

    name = "cprime"
    state_names = ("x", "y", "lam")

    Config = CPrimeConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self._lam, self._lam_rel = self.cfg.lam, self.cfg.lam_rel
        self.C = float(self.cfg.C)

    def initialize(self, x0):
        super().initialize(x0)
        p = self.problem
        self.x = p.constrain(self.x).contiguous()
        if self._lam is not None:
            self.lam = float(self._lam)
        elif self._lam_rel is not None:
            b = p.amp[p.measured].to(torch.float64)
            self.lam = 2.0 * float(self._lam_rel) * float(torch.linalg.vector_norm(b)) / math.sqrt(
                float(p.support.sum()))
        else:
            self.lam = 0.0

    def step(self, k):
        p = self.problem
        y = p.constrain(self.fourier_step())           # P_C P_M x (the ER step)
        d = y if self.C == 1.0 else (1.0 - 1.0 / self.C) * self.x + (1.0 / self.C) * y
        tau = self.lam / (2.0 * self.C)
        x = soft_threshold(d, tau, real=p.real, positive=p.positive) if tau > 0 else d
        self.x = (x * p.support).contiguous()

    def estimate(self):
        return self.problem.constrain(self.x)

    def metrics(self):
        p = self.problem
        x = self.estimate()
        z = p.fft(x)
        dd = (z.abs() - p.amp)[p.measured].to(torch.float64)
        loss = 0.5 * float((dd * dd).sum())
        return {"R_F": p.rfactor_fourier(z), "loss": loss,
                "objective": loss + 0.5 * self.lam * float(x.abs().to(torch.float64).sum())}

