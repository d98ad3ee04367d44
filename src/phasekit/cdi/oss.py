"""Oversampling smoothness (OSS; Rodriguez, Xu, Scott, Jiang, Miao, J. Appl. Cryst. 46, 312 (2013))."""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from ..engine import Algorithm, StrictConfig
from .filters import freq_index_sq, gaussian_window, oss_alphas
from .kernels import HIO, fourier_project, fourier_project_half, realspace_update


class OSSConfig(StrictConfig):
    beta: float = Field(0.9, gt=0.0, le=2.0, description="HIO feedback parameter")
    n_filters: int = Field(10, ge=1, le=1000, description="number of filter stages")
    alpha_max: float | None = Field(None, gt=0, description="first filter width (default 2N)")
    alpha_min: float | None = Field(None, gt=0, description="last filter width (default 0.2N)")


class OSS(Algorithm):
    """OSS: HIO whose out-of-support density is smoothed by a Gaussian Fourier filter that narrows
    over ``n_filters`` stages; each stage restarts from its lowest-R_F iterate.

    Per iteration (our reading of the OSS reference MATLAB code of Rodriguez et al. 2013; the
    thesis, ch. 2, runs OSS but prints no equations for it): ``y = P_m x``;
    ``h = x - beta y``; inside the support ``x' = y`` where the constraint holds and ``h``
    elsewhere (HIO); outside the support ``x' = F^-1(W_alpha F h)``.  ``W_alpha(k) =
    exp(-|k|^2 / (2 alpha^2))`` in DFT index units with ``alpha`` from ``2N`` to ``0.2N``
    (:func:`oss_alphas`).  R_F is measured every iteration on ``P_C y`` (the sample, as the
    reference code does every 2); the output is the lowest-R_F estimate over all stages.
    The thesis (ch. 2) uses OSS as its main baseline with these filters.

    On a real-object problem (``problem.use_rfft``) the iterate is real and both FFT pairs (the
    projection and the smoothing, whose Gaussian is symmetric in ``k``) run on real FFTs and the
    half spectrum (:mod:`phasekit.cdi.halfspectrum`): the same iterates within rounding.
    """

    name = "oss"
    keep_best_default = True
    state_names = ("x", "y", "best_x", "best_est", "best_rf", "stage_best_x", "stage_best_rf")
    Config = OSSConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        self.beta = float(cfg.beta)
        self.n_filters = min(int(cfg.n_filters), self.n_iter)
        self.alphas = oss_alphas(self.n_filters, problem.shape[0], cfg.alpha_max, cfg.alpha_min)
        self.k2 = freq_index_sq(problem.shape, problem.device, problem.rdtype)
        self.bounds = np.linspace(0, self.n_iter, self.n_filters + 1).round().astype(int)
        self._filters = {}
        self._rf = float("nan")

    def _filter(self, j):
        if j not in self._filters:
            w = gaussian_window(self.k2, float(self.alphas[j]))
            if self.problem.use_rfft:
                w = w[..., : self.problem.shape[-1] // 2 + 1].contiguous()
            self._filters = {j: w}
        return self._filters[j]

    def load_state_dict(self, state):
        super().load_state_dict(state)
        # a checkpoint of the other path (real vs complex iterate) continues on this one
        p = self.problem
        for n in ("x", "y", "best_x", "best_est", "stage_best_x"):
            v = getattr(self, n, None)
            if isinstance(v, torch.Tensor):
                setattr(self, n, p.as_iterate(v))

    def initialize(self, x0):
        self.x = self.problem.as_iterate(x0).clone()
        self.y = None
        self.best_x = self.x.clone()
        self.best_est = self.problem.constrain(self.x)
        self.best_rf = float("inf")
        self.stage_best_x = self.x.clone()
        self.stage_best_rf = float("inf")

    def step(self, k):
        p = self.problem
        j = int(np.searchsorted(self.bounds, k, side="right") - 1)
        self._j = j
        if k > 0 and k == self.bounds[j]:  # new stage: restart from the previous stage's best
            self.x = self.stage_best_x.clone()
            self.stage_best_rf = float("inf")
        if p.use_rfft:  # real iterate, real FFTs (half spectrum)
            z = p.rfft_half(self.x)
            fourier_project_half(z, p.half())
            y = p.irfft_half(z, overwrite=True)
            self.y = y
            h = self.x - self.beta * y
            smooth = p.irfft_half(p.rfft_half(h).mul_(self._filter(j)), overwrite=True)
        else:
            z = p.fft(self.x)
            fourier_project(z, p.amp, p.measured)
            y = p.ifft(z)
            self.y = y
            h = self.x - self.beta * (y.real.to(y.dtype) if p.real else y)
            smooth = p.ifft(p.fft(h) * self._filter(j))
            if p.real:
                smooth = smooth.real.to(y.dtype)
        realspace_update(self.x, y, p.support, HIO, self.beta, real=p.real, positive=p.positive)
        self.x = torch.where(p.support, self.x, smooth)
        est = p.constrain(y)
        self._rf = p.rfactor(est)
        if self._rf < self.stage_best_rf:
            self.stage_best_rf = self._rf
            self.stage_best_x = self.x.clone()
        if self._rf < self.best_rf:
            self.best_rf = self._rf
            self.best_est = est
            self.best_x = self.x.clone()

    def metrics(self):
        return {"R_F": self._rf, "alpha": float(self.alphas[getattr(self, "_j", 0)])}

    def estimate(self):
        return self.best_est

    def iterate(self):
        return self.best_x
