"""Error reduction (Gerchberg-Saxton-Fienup)."""
from __future__ import annotations



from ..engine import StrictConfig
from .base import ProjectionAlgorithm
from .kernels import ER


class ERConfig(StrictConfig):
    """ER has no parameter of its own."""


class ErrorReduction(ProjectionAlgorithm):
    """ER: ``x_{n+1} = P_C P_m x_n`` (Fienup, Appl. Opt. 21, 2758 (1982); Marchesini 2007 eq. (13)).
    Projected steepest descent on ``eps_m^2`` with unit step: converges to a local minimum,
    used for final refinement."""

    name = "er"
    mode = ER
    keep_best_default = False
    batchable = True  # runs a batch of starts (docs/cdi.md "Batched starts")
    Config = ERConfig
