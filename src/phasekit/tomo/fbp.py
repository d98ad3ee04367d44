"""Filtered (weighted) back projection for single y-axis tilt series.

``f = sum_i (dtheta_i / 2) BP_i( p_i * h )`` where ``h`` is the ramp filter built in real space
(Kak & Slaney ch. 3, eq. 61: ``h[0] = 1/4``, ``h[n odd] = -1/(pi n)^2``, 0 otherwise; its DFT
times 2 is the frequency response, as in scikit-image's ``iradon``), optionally times a Hann
window ``(1 + cos(2 pi f)) / 2``, applied along the detector ``x`` axis after zero padding to a
power of two >= 2 Dx.  ``BP_i`` is the bilinear back projector of RESIRE
(:meth:`~phasekit.tomo.projectors.RealSpaceProjector.backproject`).  The angular weight
``dtheta_i`` is, by default (``angle_weights="uniform"``), ``pi / n`` for every projection -- the
convention of ASTRA's FBP and scikit-image's ``iradon``, exact for a uniformly sampled 180-degree
range; with a missing wedge it scales the volume up by ``180 / range``.  ``"spacing"`` uses the
angular interval of each projection (midpoints between neighbours, end intervals mirrored), the
textbook quadrature of the measured range.  The thesis used IMOD's weighted back projection, which
is not available in Python; this is the standard FBP an ASTRA/scikit-image user expects.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from ..core.errors import ConfigError, InputError
from ..engine import Algorithm, StrictConfig
from .geometry import as_euler, is_single_axis

__all__ = ["fbp", "ramp_filter", "FBP", "FBPConfig"]


def ramp_filter(n_pad: int, window: str = "ramp") -> np.ndarray:
    """Frequency response (length ``n_pad``, FFT order) of the ramp filter and its windows."""
    n = np.concatenate([np.arange(1, n_pad // 2 + 1, 2), np.arange(n_pad // 2 - 1, 0, -2)])
    h = np.zeros(n_pad)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * n) ** 2
    filt = 2.0 * np.real(np.fft.fft(h))
    w = str(window).lower()
    if w in ("ramp", "ram-lak", "ramlak", "none"):
        return filt
    f = np.fft.fftfreq(n_pad)
    if w == "hann":
        return filt * 0.5 * (1.0 + np.cos(2 * np.pi * f))
    if w in ("shepp-logan", "shepp_logan"):
        return filt * np.sinc(f)
    if w == "cosine":
        return filt * np.cos(np.pi * f)
    raise ConfigError(f"unknown FBP filter {window!r}; choose from: ramp, hann, shepp-logan, cosine")


def _angle_weights(theta_deg: np.ndarray) -> np.ndarray:
    t = np.deg2rad(theta_deg)
    order = np.argsort(t)
    ts = t[order]
    if ts.size == 1:
        d = np.array([math.pi])
    else:
        mids = 0.5 * (ts[1:] + ts[:-1])
        lo = np.concatenate([[ts[0] - (mids[0] - ts[0])], mids])
        hi = np.concatenate([mids, [ts[-1] + (ts[-1] - mids[-1])]])
        d = hi - lo
    out = np.empty_like(d)
    out[order] = d
    return out


def fbp(problem, filter: str = "ramp", angle_weights: str = "uniform") -> torch.Tensor:
    """FBP of a :class:`~phasekit.tomo.problem.TomoProblem` with a y-axis tilt series.

    Returns the volume as a tensor (positivity and support of the problem are **not** applied:
    FBP is a one-step linear method).  Raises :class:`ConfigError` for general Euler geometries,
    where FBP is not defined (use RESIRE or SIRT).
    """
    ang = as_euler(problem.angles)
    if not is_single_axis(ang):
        raise ConfigError("FBP needs a single y-axis tilt series (angles (0, theta, 0)); use "
                          "resire or sirt for general Euler angles")
    b = problem.weighted(problem.projections)
    n, Dx, Dy = b.shape
    if Dx < 2:
        raise InputError("projections too narrow for FBP")
    n_pad = max(64, int(2 ** math.ceil(math.log2(2 * Dx))))
    H = torch.as_tensor(ramp_filter(n_pad, filter), dtype=b.dtype, device=b.device)
    pad = torch.zeros((n, n_pad, Dy), dtype=b.dtype, device=b.device)
    pad[:, :Dx] = b
    q = torch.fft.ifft(torch.fft.fft(pad, dim=1) * H[None, :, None], dim=1).real[:, :Dx]
    aw = str(angle_weights).lower()
    if aw == "uniform":
        d = np.full(n, np.pi / n)
    elif aw == "spacing":
        d = _angle_weights(ang[:, 1])
    else:
        raise ConfigError(f"unknown angle_weights {angle_weights!r}; use 'uniform' or 'spacing'")
    w = torch.as_tensor(d / 2.0, dtype=b.dtype, device=b.device)
    return problem.realspace.backproject(q * w[:, None, None])


class FBPConfig(StrictConfig):
    """Parameters of :class:`FBP` (see :func:`fbp`)."""

    filter: Literal["ramp", "ram-lak", "hann", "shepp-logan", "cosine"] = "ramp"
    angle_weights: Literal["uniform", "spacing"] = "uniform"


class FBP(Algorithm):
    """FBP as a one-step algorithm of the shared driver (registered non-iterative): the step
    computes :func:`fbp`; the estimate is the unconstrained volume.

    Examples
    --------
    >>> from phasekit.engine import get_algorithm
    >>> get_algorithm("fbp").iterative
    False
    """

    name = "fbp"

    Config = FBPConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self.filter = self.cfg.filter
        self.angle_weights = self.cfg.angle_weights

    def initialize(self, x0):
        self.x = x0.clone()

    def step(self, k):
        self.x = fbp(self.problem, filter=self.filter, angle_weights=self.angle_weights).contiguous()

    def estimate(self):
        return self.x

    @classmethod
    def random_start(cls, problem, rng):
        """FBP needs no start; a zero volume keeps the driver's contract."""
        return torch.zeros(problem.shape, dtype=problem.dtype, device=problem.device)
