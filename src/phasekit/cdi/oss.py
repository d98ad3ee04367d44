"""Oversampling smoothness (OSS; Rodriguez, Xu, Scott, Jiang, Miao, J. Appl. Cryst. 46, 312 (2013))."""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from ..engine import Algorithm, StrictConfig
from . import kernels_smooth as _ks
from .filters import freq_index_sq, gaussian_window, oss_alphas
from .kernels import fourier_project, scale_


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

    Since ``F`` is linear, ``F h = Z - beta F y`` with ``Z = F x`` and ``F y = P~_m Z``: the
    smoothed density's spectrum ``W F h`` comes out of the projection pass
    (:func:`~phasekit.cdi.kernels_smooth.oss_fourier`), so a step takes 4 FFTs (``F x``,
    ``F^-1`` of ``P~_m Z`` and of ``W F h``, and the R-factor's) instead of 5, and three passes
    over memory: that one, :func:`~phasekit.cdi.kernels_smooth.oss_update` (HIO inside the
    support, the smoothed density outside, the estimate ``P_C y``) and the R-factor sum (numba,
    with torch twins); the best iterate is copied once per improvement.  A real object on the
    complex path (``rfft=False``) keeps 5 FFTs: its ``h = x - beta Re(y)`` pairs ``k`` with
    ``-k`` in Fourier space.

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.cdi import CDIProblem
    >>> obj = np.zeros((16, 16)); obj[6:10, 6:10] = 1.0
    >>> I = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2
    >>> p = CDIProblem.from_arrays(I, obj > 0, real=True)
    >>> algo = OSS(p, 20, n_filters=2)
    >>> algo.initialize(p.random_start(np.random.default_rng(0)))
    >>> for k in range(20):
    ...     algo.step(k)
    >>> algo.metrics()["R_F"] < 0.5
    True
    """

    name = "oss"
    # best tracking is part of the algorithm itself (``estimate()`` is the lowest-R_F estimate
    # of all stages, a tensor never modified in place), as for GPS: the driver's own keep-best
    # would only clone that estimate again at every improvement (7-9 % of a 256^2 / 512^2 run)
    keep_best_default = False
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
        self.x = self.problem.as_iterate(x0).clone().contiguous()
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
        W = self._filter(j)
        if p.use_rfft or not p.real:
            # 4 FFTs: the smoothed density's spectrum W F h = W (Z - beta F y) comes out of the
            # projection pass by linearity (h = x - beta y), with no forward FFT of h
            if p.use_rfft:  # real iterate, real FFTs (half spectrum)
                z = p.rfft_half(self.x)
                hs = _ks.oss_fourier(z, W, self.beta, half=p.half())
                y = p.irfft_half(z, overwrite=True)
                smooth = p.irfft_half(hs, overwrite=True)
            else:
                z = p.fft(self.x)
                hs = _ks.oss_fourier(z, W, self.beta, amp=p.amp, measured=p.measured)
                y = p.ifft(z, out=z)  # in place: both are this step's own temporaries
                smooth = p.ifft(hs, out=hs)
            self.y = y
            # one pass: HIO inside the support, the smoothed density outside, est = P_C y
            est = _ks.oss_update(self.x, y, smooth, p.support, self.beta, positive=p.positive)
        else:
            # a real object on the complex path (rfft=False): h = x - beta Re(y), and the
            # transform of Re(y) pairs k with -k, so h is transformed (5 FFTs)
            z = p.fft(self.x)
            fourier_project(z, p.amp, p.measured)
            y = p.ifft(z)
            self.y = y
            # one pass: h = x - beta Re y, the HIO rule in place in x, est = P_C y
            h, est = _ks.oss_split(self.x, y, p.support, self.beta, real=True, positive=p.positive)
            smooth = p.ifft(scale_(p.fft(h), W))
            # outside the support the real part of the smoothed density
            _ks.oss_merge(self.x, smooth, p.support, real=True)
        self._rf = _ks.rfactor(p, est)
        if self._rf < self.stage_best_rf or self._rf < self.best_rf:
            snap = self.x.clone()  # one copy serves both (neither is modified in place)
            if self._rf < self.stage_best_rf:
                self.stage_best_rf = self._rf
                self.stage_best_x = snap
            if self._rf < self.best_rf:
                self.best_rf = self._rf
                self.best_est = est
                self.best_x = snap

    def metrics(self):
        return {"R_F": self._rf, "alpha": float(self.alphas[getattr(self, "_j", 0)])}

    def estimate(self):
        return self.best_est

    def iterate(self):
        return self.best_x
