"""SIRT with ASTRA's normalisation, on the real-space projector of the shared geometry.

``x <- P_C( x + lambda C A^T R (b - A x) )`` with ``R = 1 / (A 1)`` (row sums) and
``C = 1 / (A^T 1)`` (column sums), zero where a sum is zero; ``P_C`` is optional positivity (ASTRA's
``MinConstraint = 0``) and the support.  This is ASTRA's SIRT, not the thesis' Eqn 3.5 (§3.2.1.1, a
Cimmino/Landweber form with ``1/||a_i||^2``; the thesis's own SIRT runs used ASTRA, §3.3.1). ``A``
is the voxel-driven bilinear projector :class:`~phasekit.tomo.projectors.RealSpaceProjector` (splat
forward, its exact transpose back), so the iteration is a weighted least-squares gradient method
with exact adjoints.  Per-projection masks multiply ``R``.  For a single-axis series on the CPU
``A`` and ``A^T`` run as the compiled kernels of :mod:`phasekit.tomo.kernels` (the same operator
to float rounding; ``benchmarks/tomo_speed.py`` times it against ASTRA's CPU SIRT).
"""
from __future__ import annotations

import torch
from pydantic import Field

from ..engine import Algorithm, StrictConfig


class SIRTConfig(StrictConfig):
    relaxation: float = Field(1.0, gt=0.0, lt=2.0, description="relaxation lambda (ASTRA: 1)")
    positive: bool | None = Field(None, description="override the problem's positivity")


class SIRT(Algorithm):
    """ASTRA-style SIRT (Gregor & Benson 2008 normalisation; ASTRA ``SIRT``)."""

    name = "sirt"

    Config = SIRTConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self.lam = float(self.cfg.relaxation)
        self.positive = problem.positive if self.cfg.positive is None else bool(self.cfg.positive)
        op = problem.realspace
        self.A = op
        if "sirt_RC" not in problem._ops:
            ones_v = torch.ones(problem.shape, dtype=problem.dtype, device=problem.device)
            rows = op.forward(ones_v)
            Rw = torch.where(rows > 1e-6, 1.0 / rows.clamp_min(1e-6), torch.zeros_like(rows))
            Rw = problem.weighted(Rw)
            cols = op.backproject(problem.weighted(torch.ones_like(rows)))
            C = torch.where(cols > 1e-6, 1.0 / cols.clamp_min(1e-6), torch.zeros_like(cols))
            problem._ops["sirt_RC"] = (Rw, C)
        self.Rw, self.C = problem._ops["sirt_RC"]

    def initialize(self, x0):
        self.x = x0.to(device=self.problem.device, dtype=self.problem.dtype).clone()

    def step(self, k):
        p = self.problem
        r = (p.projections - self.A.forward(self.x)) * self.Rw
        x = self.x + self.lam * self.C * self.A.backproject(r)
        if self.positive:
            x = x.clamp_min(0)
        self.x = torch.where(p.support, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def estimate(self):
        return self.x
