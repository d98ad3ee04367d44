"""Relaxed averaged alternating reflections (Luke 2005)."""
from __future__ import annotations

from pydantic import Field

from ..engine import StrictConfig
from .base import ProjectionAlgorithm
from .kernels import RAAR


class RAARConfig(StrictConfig):
    beta: float = Field(0.9, gt=0.0, le=1.0, description="relaxation parameter")


class RAAR(ProjectionAlgorithm):
    """RAAR: ``x_{n+1} = [beta/2 (R_C R_m + I) + (1 - beta) P_m] x_n`` with ``R = 2P - I``
    (Luke, Inverse Problems 21, 37 (2005)).  Pointwise: ``P_m x`` where
    ``2 P_m x - x`` satisfies the constraint, ``beta x + (1 - 2 beta) P_m x`` elsewhere.
    Default ``beta = 0.9`` (our choice: Xian et al. 2022 compare with RAAR but give no beta)."""

    name = "raar"
    mode = RAAR
    keep_best_default = False
    batchable = True  # runs a batch of starts (docs/cdi.md "Batched starts")
    Config = RAARConfig
