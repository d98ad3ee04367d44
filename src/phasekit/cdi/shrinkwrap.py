"""Shrink-wrap support determination (Marchesini et al., Phys. Rev. B 68, 140101 (2003)).

* Initial support: the autocorrelation ``|F^-1 I|`` (unmeasured pixels set to zero) thresholded at
  a few percent of its maximum (:func:`autocorrelation_support`).  The autocorrelation of an
  object is twice its extent, so this support is loose but contains the object.
* Update every ``every`` iterations: blur ``|estimate|`` with a Gaussian of width ``sigma``
  (pixels), threshold at ``threshold`` times its maximum.  ``sigma`` starts at ``sigma_start`` and
  shrinks by the factor ``decay`` per update down to ``sigma_end`` (defaults 3 px, 1 %, 1.5 px, 20
  %: our choice after Marchesini et al., PRB 68, 140101 (2003); Xian et al. 2022 use shrinkwrap on
  PR772 but give no values).

:class:`ShrinkWrap` is run by the shared driver on its cadence, so it works with every algorithm
(ER, HIO, RAAR, OSS, GPS and the ones built later).
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import ConfigError, InputError

log = logging.getLogger("phasekit")


def autocorrelation_support(intensity, mask=None, *, threshold: float = 0.04) -> np.ndarray:
    """Support from the thresholded autocorrelation of a centred pattern (bool, centred)."""
    I = np.asarray(intensity, dtype=np.float64)
    if mask is not None:
        I = np.where(np.asarray(mask, bool), I, 0.0)
    if not 0 < threshold < 1:
        raise ConfigError(f"autocorrelation threshold must be in (0, 1), got {threshold}")
    ac = np.abs(np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(I))))
    if not np.isfinite(ac).all() or ac.max() <= 0:
        raise InputError("cannot compute an autocorrelation support: the pattern is zero or not finite")
    return ac >= threshold * ac.max()


def gaussian_blur_work(x: torch.Tensor, sigma: float, ndim: int) -> torch.Tensor:
    """Periodic Gaussian blur (std ``sigma`` pixels) of a work-layout real tensor, by FFT."""
    dims = tuple(range(-ndim, 0))
    grids = [torch.fft.fftfreq(n, device=x.device, dtype=x.dtype) for n in x.shape[-ndim:]]
    q2 = sum(g * g for g in torch.meshgrid(*grids, indexing="ij"))
    kern = torch.exp(-2.0 * math.pi ** 2 * sigma ** 2 * q2)
    return torch.fft.ifftn(torch.fft.fftn(x, dim=dims) * kern, dim=dims).real


class ShrinkWrapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(20, ge=1, description="iterations between updates")
    start: int = Field(0, ge=0, description="no update before this iteration")
    stop: int | None = Field(None, ge=0, description="no update after this iteration")
    sigma_start: float = Field(3.0, gt=0)
    sigma_end: float = Field(1.5, gt=0)
    decay: float = Field(0.99, gt=0, le=1)
    threshold: float = Field(0.2, gt=0, lt=1)


class ShrinkWrap:
    """Shrink-wrap support updater for the driver (``run(..., constraint_update=ShrinkWrap())``).

    Parameters
    ----------
    every : int
        Update the support every ``every`` iterations (counted over the whole chain).
    start, stop : int
        First / last iteration at which updates may happen.
    sigma_start, sigma_end, decay : float
        Gaussian blur width in pixels, shrinking by ``decay`` per update to ``sigma_end``.
    threshold : float
        Fraction of the blurred maximum above which a pixel is in the support.
    """

    def __init__(self, every=20, *, start=0, stop=None, sigma_start=3.0, sigma_end=1.5, decay=0.99,
                 threshold=0.2):
        cfg = ShrinkWrapConfig(every=every, start=start, stop=stop, sigma_start=sigma_start,
                               sigma_end=sigma_end, decay=decay, threshold=threshold)
        self.cfg = cfg
        self.reset()

    def reset(self):
        self.sigma = self.cfg.sigma_start
        self.n_updates = 0

    def due(self, iteration: int) -> bool:
        c = self.cfg
        if iteration < max(c.start, 1) or (c.stop is not None and iteration > c.stop):
            return False
        return iteration % c.every == 0

    def new_support(self, estimate: torch.Tensor, ndim: int) -> torch.Tensor:
        blurred = gaussian_blur_work(estimate.abs().to(estimate.real.dtype), self.sigma, ndim)
        return blurred >= self.cfg.threshold * blurred.max()

    def update(self, problem, estimate: torch.Tensor) -> None:
        """Replace ``problem.support`` in place (kept unchanged if the new one would be empty)."""
        new = self.new_support(estimate, problem.ndim)
        if new.any():
            problem.support.copy_(new)
        else:  # pragma: no cover - guard
            log.warning("shrink-wrap produced an empty support; keeping the previous one")
        self.n_updates += 1
        self.sigma = max(self.cfg.sigma_end, self.sigma * self.cfg.decay)

    def state_dict(self):
        return {"sigma": self.sigma, "n_updates": self.n_updates}

    def load_state_dict(self, d):
        self.sigma, self.n_updates = float(d["sigma"]), int(d["n_updates"])

    def to_dict(self):
        return self.cfg.model_dump()
