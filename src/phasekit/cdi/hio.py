"""Hybrid input-output (Fienup 1982) in its saddle-point form (Marchesini 2007)."""
from __future__ import annotations

import torch
from pydantic import Field

from ..engine import StrictConfig
from .base import ProjectionAlgorithm
from .kernels import HIO


class HIOConfig(StrictConfig):
    beta: float = Field(0.9, gt=0.0, le=2.0, description="feedback parameter")


def hio_direction(x: torch.Tensor, y: torch.Tensor, gamma: torch.Tensor):
    """The two saddle-point directions of HIO (Marchesini 2007 eq. (18)):

    ``d_s = P_Gamma (y - x)`` (descent on the in-support part) and ``d_sbar = -P_Gammabar y``
    (ascent on the out-of-support part), with ``y = P_m x`` and ``Gamma`` the pixels that satisfy
    the object constraint.  One HIO step is ``x + d_s + beta d_sbar`` (eq. (19)-(21)); a fixed
    coefficient point of the 2-D subspace search of eq. (23).
    """
    d_s = torch.where(gamma, y - x, torch.zeros_like(x))
    d_sbar = torch.where(gamma, torch.zeros_like(y), -y)
    return d_s, d_sbar


class HybridInputOutput(ProjectionAlgorithm):
    """HIO: ``x_{n+1} = P_m x_n`` on ``Gamma``, ``x_n - beta P_m x_n`` elsewhere, where ``Gamma``
    is the support (intersected with ``Re(P_m x) >= 0`` under positivity).

    Written as in Marchesini, JOSA A 24, 3289 (2007) eq. (21):
    ``x_{n+1} = [P_s P_m + P_sbar (I - beta P_m)] x_n = x_n + d_s + beta d_sbar`` (see
    :func:`hio_direction`; a test checks the two forms give identical iterates).  Default
    ``beta = 0.9`` (neither Xian et al. 2022 nor Pham 2020 ch. 2 gives beta; 0.9 is the OSS
    reference code's default).  The reported estimate is
    ``P_C P_m x`` (Marchesini: the iterate itself violates the support).
    """

    name = "hio"
    mode = HIO
    keep_best_default = False
    batchable = True  # runs a batch of starts (docs/cdi.md "Batched starts")
    Config = HIOConfig
