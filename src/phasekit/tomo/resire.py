"""RESIRE: real space iterative reconstruction engine (Pham thesis Ch. 3, Algorithm 3).

Update (Eqn 3.8, §3.2.1.2; Algorithm 3 prints the step as ``t/(nN)`` with ``N`` the number of
projections and ``n`` undefined, read here as ``t/(n_proj N_z)`` as in Eqn 3.8):

``O <- P_C( O - t / (n_proj N_z) * (sum_i P_i^T M_i P_i O - sum_i P_i^T M_i b_i) )``

with ``P_i`` the Fourier-slice forward projector, ``P_i^T`` the bilinear back projector (the
"hybrid" of thesis line 921), ``M_i`` optional per-projection masks (masked least squares; our
formulation of the partially blocked projections of §3.4, which gives no equation),
``sum_i P_i^T M_i b_i`` precomputed once, ``P_C`` positivity and support, ``O^0 = 0``.
"""
from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from ..engine import StrictConfig
from ..core.errors import ConfigError
from ..engine import Algorithm

log = logging.getLogger("phasekit")

#: empirical stability limit of the normalised step (thesis §3.2.1.2 bounds lambda_max by n N_z
#: and runs t = 2; we measured lambda_max ~ 0.957 n N_z)
STABILITY_LIMIT = 2.0


class RESIREConfig(StrictConfig):
    step: float = Field(2.0, gt=0.0, le=4.0, description="normalised step size t (thesis: 2)")
    projector: Literal["hybrid", "fst", "realspace"] = Field(
        "hybrid", description="forward/back pair: hybrid (FST + bilinear, RESIRE), fst (FST with "
                              "its exact adjoint) or realspace (splat + bilinear, exact pair)")


def _pair(problem, kind: str):
    """(forward, back) callables of a projector pair of ``problem``."""
    if kind == "hybrid":
        return problem.fst.forward, problem.realspace.backproject
    if kind == "fst":
        return problem.fst.forward, problem.fst.adjoint
    if kind == "realspace":
        return problem.realspace.forward, problem.realspace.backproject
    raise ConfigError(f"unknown projector {kind!r}; choose from: hybrid, fst, realspace")


class RESIRE(Algorithm):
    """Gradient descent on ``1/2 sum_i ||M_i (P_i O - b_i)||^2`` with step ``t/(n N_z)``.

    Parameters
    ----------
    problem : TomoProblem
    n_iter : int
    step : float, default 2.0
        Normalised step ``t``.  The thesis proves convergence for ``t in (0, 1]`` and uses 2 in
        every experiment; the bound ``n N_z`` is tight within ~5 %, so ``t`` above ~2.09 makes the
        low-frequency mode diverge.  A warning is logged for ``t > 2``.
    projector : {"hybrid", "fst", "realspace"}
        ``hybrid`` is RESIRE; the two others are exact adjoint pairs (an ablation of ours).

    Notes
    -----
    The history's ``R_F`` at iteration ``k`` is Eqn 3.9 of the estimate after ``k`` updates,
    computed with the Fourier-slice projector; those projections are reused by the next update,
    so recording the history costs nothing extra.
    """

    name = "resire"
    state_names = ("x",)

    Config = RESIREConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self.t = float(self.cfg.step)
        projector = self.cfg.projector
        if self.t > STABILITY_LIMIT:
            log.warning("RESIRE step t=%.3g is above the stability limit (~2.09 = 2/0.957): the "
                        "low-frequency mode may diverge", self.t)
        self.kind = projector
        self.fwd, self.back = _pair(problem, projector)
        self.dt = self.t / problem.lipschitz_bound
        key = f"bpb_{projector}"
        if key not in problem._ops:
            problem._ops[key] = self.back(problem.weighted(problem.projections))
        self.bpb = problem._ops[key]
        self._proj = None  # forward projections of the current x (valid while x is unchanged)

    def initialize(self, x0):
        self.x = x0.to(device=self.problem.device, dtype=self.problem.dtype).clone()
        self._proj = None

    def _projections(self):
        if self._proj is None:
            self._proj = self.fwd(self.x)
        return self._proj

    def step(self, k):
        p = self.problem
        g = self.back(p.weighted(self._projections())) - self.bpb
        self.x = p.constrain(self.x - self.dt * g)
        self._proj = None

    def estimate(self):
        return self.x

    def metrics(self):
        from .metrics import rfactor_projections

        p = self.problem
        proj = self._projections()
        if self.kind != "realspace":
            calc = proj
        else:
            calc = p.fst.forward(self.x)
        return {"R_F": rfactor_projections(calc, p.projections, p.weights)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._proj = None
