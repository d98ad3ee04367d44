"""Projection algorithms share one loop body: ``Z = F x``; ``Z <- P~_m Z``; ``y = F^-1 Z``;
``x <- U(x, y)`` where only the real-space rule ``U`` differs (ER, HIO, RAAR).  The estimate they
report is ``P_C y = P_C P_m x`` (Marchesini 2007 after eq. (21): "the reported estimate should be
P_m rho (or P_s P_m rho), not rho").

On a real-object problem (``problem.use_rfft``) the iterate is a real tensor and the loop body
runs on the real FFT pair: ``Z = rfftn x``; ``Z <- P~_h Z`` (the half-spectrum projection of
:mod:`phasekit.cdi.halfspectrum`, which equals the real part of the complex path's projection);
``y = irfftn Z``.  ``problem.rfft = False`` keeps the complex path."""
from __future__ import annotations

import torch

from ..engine import Algorithm
from .kernels import fourier_project, fourier_project_half, realspace_update


class ProjectionAlgorithm(Algorithm):
    """``x <- U(x, P_m x)`` with the fused Fourier projection (see :mod:`.kernels`)."""

    mode: int = 0
    state_names = ("x", "y")

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        # the feedback / relaxation parameter of the config; rules without one (ER, C-PRIME)
        # ignore it in the kernel and take 0
        self.beta = float(getattr(self.cfg, "beta", 0.0)) if self.Config is not None else 0.0

    def initialize(self, x0):
        self.x = self.problem.as_iterate(x0).clone()
        self.y = None

    def load_state_dict(self, state):
        super().load_state_dict(state)
        # a checkpoint of the other path (real vs complex iterate) continues on this one
        if isinstance(self.x, torch.Tensor):
            self.x = self.problem.as_iterate(self.x)
        if isinstance(self.y, torch.Tensor):
            self.y = self.problem.as_iterate(self.y)

    def fourier_step(self) -> torch.Tensor:
        """``y = P_m x`` (one FFT pair); unmeasured Fourier pixels keep their value.  On the
        real-FFT path ``y = Re P_m x`` from the half spectrum."""
        p = self.problem
        if p.use_rfft:
            z = p.rfft_half(self.x)
            fourier_project_half(z, p.half())
            self.y = p.irfft_half(z, overwrite=True)
            return self.y
        z = p.fft(self.x)
        fourier_project(z, p.amp, p.measured)
        self.y = p.ifft(z)
        return self.y

    def step(self, k):
        y = self.fourier_step()
        p = self.problem
        realspace_update(self.x, y, p.support, self.mode, self.beta, real=p.real, positive=p.positive)

    def estimate(self):
        if self.y is None:
            return self.problem.constrain(self.x)
        return self.problem.constrain(self.y)
