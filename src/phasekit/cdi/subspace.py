"""SO2D and SO4D: HIO with the step found by a 2-D (4-D) subspace saddle-point optimisation.

Marchesini, "Phase retrieval and saddle-point optimization", JOSA A 24, 3289 (2007), Secs. IV-V
(equation bodies reconstructed from the text; only the numbers are legible in our copy,
docs/saddle.md).  Each outer iteration:

1. the steepest descent-ascent directions ``d_s = P_s (P_m - I) rho`` and
   ``d_sbar = -P_sbar P_m rho`` of eq. (18) (the HIO directions,
   :func:`phasekit.cdi.hio.hio_direction`) in Fourier space, from the state
   ``(rho~ = F rho, F P_s rho)`` with the same two FFTs as HIO (the port's ``Gs``/``Gns`` split):
   ``d~_s = F P_s F^-1 P~_m rho~ - F P_s rho`` and ``d~_sbar = F P_s F^-1 P~_m rho~ - P~_m rho~``;
2. ``(alpha, beta) = argmin_alpha argmax_beta L(rho + alpha d_s + beta d_sbar)`` (eqs. (23)-(24))
   by :func:`phasekit.cdi.saddle.solve_saddle`, FFT-free; SO4D adds the previous pair of
   directions (Sec. V end): ``tau = (alpha_1, beta_1, alpha_2, beta_2)``;
3. ``rho <- rho + sum tau_i d_i``.

``tau = (1, beta)`` is exactly HIO (eq. (33)): ``solver="fixed"`` runs HIO through this machinery
(a test checks identical iterates).  The estimate reported is ``P_s P_m rho`` (the modulus-
projected iterate, Sec. IV after eq. (21)), which the step computes anyway.

Resolutions of the paper's gaps (values lost in our copy, or never given), chosen here:

* ``beta`` (HIO feedback for the first guess, the ``H_beta`` preconditioner and the fall-back):
  0.9, phasekit's HIO default (the author's code used 0.75; the benchmark sweeps it).
* inner tolerance 0.01 on ``||grad L(tau)|| / ||grad L(0)||`` (paper), at most 50 inner iterations
  (port), trust radius 0.3 in ``[0.1, 1]`` (port).
* first ``warmup = 5`` outer iterations (and whenever no solved step is stored): first guess
  ``(1, beta)`` with ``H_beta^-1`` (paper, item 2; ``first_hessian="exact"`` uses the exact
  Hessian at ``tau = 0`` as the port does).  Afterwards: the mean of the last ``n_average = 5``
  solved ``tau`` (a true 5-window mean; the port's recursive average differs slightly) and of the
  inverse Hessians, averaged **scaled** by ``diag(2||d_i||^2)`` so that the changing step norms do
  not bias them (our choice; the port averages the raw inverse).  Fall-back steps are not averaged.
* fall-back: when the inner solve diverges or ends with relative gradient > 0.5 the step is HIO's
  ``(1, beta)`` (port); SO4D falls back to the 2-D solve first, then to HIO.  The inner solve also
  stops after ``stall = 10`` iterations without progress (an addition: near stagnation the true
  Hessian can violate eq. (30) and the sign-corrected SR1 model cycles).
* SO4D's extra pair: the previous steepest descent-ascent directions (``previous="sda"``) or the
  in-/out-of-constraint parts of the previous applied step (``previous="step"``); the first step,
  and any step after a support change, is 2-D.
* constraints: the support, and realness (a linear subspace, so the split stays exact);
  positivity is a cone, not a subspace, and is refused (use ``hio``).
* shrink-wrap: a support change re-splits the state (2 extra FFTs) and clears the stored history.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from ..core.errors import ConfigError
from ..engine import Algorithm, StrictConfig
from .saddle import (_APPLY, _APPLY2, _APPLY2P, _APPLY4, _APPLY4N, SubspaceLagrangian, _fused_ok,
                     _linear_constraint, constrain_inplace, enforce_saddle_signs, project_into,
                     solve_saddle, tensor_views)


class SO2DConfig(StrictConfig):
    beta: float = Field(0.9, gt=0.0, le=2.0, description="HIO feedback: first guess, preconditioner, fall-back")
    tol: float = Field(1e-2, gt=0.0, lt=1.0, description="inner tolerance on ||grad L(tau)||/||grad L(0)||")
    max_inner: int = Field(50, ge=1, le=10000, description="maximum inner (Newton/SR1) iterations")
    trust_radius: float = Field(0.3, gt=0.0, description="initial trust radius r0")
    trust_min: float = Field(0.1, gt=0.0, description="smallest trust radius")
    trust_max: float = Field(1.0, gt=0.0, description="largest trust radius")
    n_average: int = Field(5, ge=1, le=1000, description="solutions averaged for the warm start")
    warmup: int = Field(5, ge=0, description="outer iterations started from the HIO guess")
    first_hessian: Literal["hio", "exact"] = Field("hio", description="inverse-Hessian guess before warm start")
    stall: int = Field(10, ge=1, description="stop the inner solve after this many iterations without progress")
    fallback_ratio: float = Field(0.5, gt=0.0, description="largest relative gradient accepted when not converged")
    tau_max: float = Field(10.0, gt=0.0, description="a step coefficient vector longer than this is a failure")
    solver: Literal["sr1", "fixed"] = Field("sr1", description="'fixed' takes tau = (1, beta): exactly HIO")

    @model_validator(mode="after")
    def _radii(self):
        if not self.trust_min <= self.trust_radius <= self.trust_max:
            # named after the radius the user gave (a model-level error has no location)
            given = [n for n in ("trust_radius", "trust_min", "trust_max") if n in self.model_fields_set]
            raise ValueError(f"{(given or ['trust_radius'])[0]}: need trust_min <= trust_radius <= "
                             f"trust_max, got {self.trust_min}, {self.trust_radius}, {self.trust_max}")
        return self


class SO4DConfig(SO2DConfig):
    previous: Literal["sda", "step"] = Field("sda", description="second pair: previous SDA directions or previous step")


class SubspaceSaddle(Algorithm):
    """Shared machinery of :class:`SO2D` and :class:`SO4D` (``n_dirs`` = 2 or 4)."""

    name = "so2d"
    n_dirs = 2
    Config = SO2DConfig
    keep_best_default = False
    state_names = ("z", "gs", "y", "D", "n_outer", "has_prev", "support0", "hist")

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        if problem.positive:
            raise ConfigError(f"{self.name}: positivity is not a linear constraint; the saddle-point "
                              "subspace methods support the support and realness constraints (use 'hio')")
        self.beta = float(self.cfg.beta)
        self.amp2 = float((problem.amp.double() ** 2)[problem.measured].sum())
        self.smask = np.array([True, False] * (self.n_dirs // 2))
        self._smask_l = {k: [True, False] * (k // 2) for k in (2, 4, self.n_dirs)}
        self.gm = None
        self.info = {}
        self._views = None
        self._fused = None
        self._gm_ok = False  # gm = P~_m z already computed (by the fused CPU update pass)

    # ------------------------------------------------------------------ state
    def initialize(self, x0):
        p = self.problem
        x = x0.to(p.cdtype).contiguous()
        self.z = p.fft(x).contiguous()
        self.gs = p.fft(_linear_constraint(p, x)).contiguous()
        self.y = None
        self.D = torch.zeros((self.n_dirs,) + tuple(self.z.shape), dtype=self.z.dtype, device=self.z.device)
        self.n_outer = 0
        self.has_prev = False
        self.support0 = p.support.clone()
        self.hist = {2: [], 4: []}
        self.gm = torch.empty_like(self.z)
        self._refresh()

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.z, self.gs, self.D = self.z.contiguous(), self.gs.contiguous(), self.D.contiguous()
        self.gm = torch.empty_like(self.z)
        self.hist = {int(k): [_hist_entry(t, B) for t, B in v] for k, v in self.hist.items()}
        self._refresh()

    def _refresh(self):
        p = self.problem
        self._views = None
        self._fused = _fused_ok(self.z, self.gs, self.gm, self.D, p.amp, p.measured)
        self._gm_ok = False

    def _resplit(self):
        """Support changed (shrink-wrap): recompute ``F P_s rho`` and forget the history."""
        p = self.problem
        self.gs = p.fft(_linear_constraint(p, p.ifft(self.z))).contiguous()
        self._refresh()
        self.support0 = p.support.clone()
        self.has_prev = False
        self.hist = {2: [], 4: []}

    def estimate(self):
        if self.y is None:
            return self.problem.constrain(self.problem.ifft(self.z))
        return self.y

    def iterate(self):
        return self.problem.ifft(self.z)

    def metrics(self):
        m = {"R_F": self.problem.rfactor(self.estimate())}
        m.update(self.info)
        return m

    def support_violation(self) -> float:
        """``||P_sbar P_m rho|| / ||sqrt I||`` of the last step (free; our success metric)."""
        return float(self.info.get("eps_s", float("nan")))

    # ------------------------------------------------------------------ one iteration
    def _nostore(self):
        """The fused CPU path: the current pair of directions is not stored (formed on the fly
        from ``gms``, ``gs``, ``gm``; SO4D's update writes the previous pair it needs) and the
        update pass also computes the next ``gm = P~_m z``."""
        return bool(self._fused) and self.n_dirs in (2, 4)

    def _directions(self, k, tau0=None):
        """Two FFTs: ``gm = P~_m z``, ``y = P_s F^-1 gm`` (the estimate), ``gms = F y``; then the
        subspace Lagrangian over the first ``k`` rows of ``D`` (its set-up pass also evaluates the
        first guess ``tau0``)."""
        p = self.problem
        nostore = self._nostore()
        if not (nostore and self._gm_ok):
            project_into(self.z, p.amp, p.measured, self.gm, fused=self._fused)
        self._gm_ok = False
        y = p.ifft(self.gm).contiguous()
        constrain_inplace(y, p.support, p.real, fused=self._fused and y.is_contiguous())
        self.y = y
        gms = p.fft(y).contiguous()
        if nostore and k == 2:
            return SubspaceLagrangian.build_pair(self.z, self.gs, self.gm, gms, p.amp, p.measured,
                                                 self.amp2, self._get_views(), tau0=tau0)
        if nostore:
            return SubspaceLagrangian.build_quad(self.z, self.gs, self.gm, gms, self.D, p.amp,
                                                 p.measured, self.amp2, self._get_views(), tau0=tau0)
        return SubspaceLagrangian.build(self.z, self.gs, self.gm, gms, self.D[:k], self.smask[:k],
                                        p.amp, p.measured, self.amp2, tau0=tau0, fused=self._fused,
                                        views=self._get_views())

    def _get_views(self):
        """NumPy views of the persistent CPU tensors (made once per state; None off the CPU)."""
        if not self._fused:
            return None
        if self._views is None:
            p = self.problem
            self._views = tensor_views(self.z, self.gs, self.gm, self.D, p.amp, p.measured)
        return self._views

    def _hio_tau(self, k):
        return [1.0, self.beta] + [0.0] * (k - 2)

    def _warm(self, k):
        """True when the warm start (mean of the stored solutions) applies (listing item 3)."""
        return self.n_outer >= self.cfg.warmup and bool(self.hist[k])

    def _guess(self, k):
        """First guess of ``tau``: HIO's ``(1, beta)`` (item 2) or the mean of the last
        ``n_average`` solutions (item 3); SO4D's first 4-D guess is ``(mean 2-D tau, 0, 0)``."""
        if self._warm(k):
            return _mean([h[0] for h in self.hist[k]])
        tau0 = self._hio_tau(k)
        if k == 4 and self._warm(2):
            tau0[:2] = _mean([h[0] for h in self.hist[2]])
        return tau0

    def _solve(self, sub, k, tau0):
        """Inner solve on ``k`` directions from ``tau0`` with the inverse-Hessian guess of the
        listing: ``H_beta^-1`` (or the exact Hessian at 0) before the warm start, afterwards the
        mean of the stored scaled inverse Hessians."""
        cfg = self.cfg
        smask = self._smask_l[k]
        S = sub.scale_list()
        hist = self.hist[k]
        if self._warm(k):
            n = len(hist)
            B0 = [[sum([h[1][i][j] for h in hist]) / n / math.sqrt(S[i] * S[j]) for j in range(k)]
                  for i in range(k)]
        elif cfg.first_hessian == "exact":
            _, _, H = sub.evaluate(np.zeros(k), hess=True)
            try:
                B0 = np.linalg.inv(H)
            except np.linalg.LinAlgError:
                B0 = sub.preconditioner(self.beta)
            B0, _ = enforce_saddle_signs(B0, smask)
        else:
            B0 = sub.preconditioner_lists(self.beta)
        sol = solve_saddle(sub.gradient_lists, sub.grad0_list(), tau0, B0, smask, tol=cfg.tol,
                           max_iter=cfg.max_inner, r0=cfg.trust_radius, r_min=cfg.trust_min,
                           r_max=cfg.trust_max, fallback_tau=self._hio_tau(k),
                           fallback_ratio=cfg.fallback_ratio, tau_max=cfg.tau_max, stall=cfg.stall)
        if not sol.fallback:
            B = sol.B.tolist()
            hist.append((sol.tau.tolist(),
                         [[B[i][j] * math.sqrt(S[i] * S[j]) for j in range(k)] for i in range(k)]))
            del hist[:-cfg.n_average]
        return sol

    def _apply(self, tau, k, sub=None):
        """``rho <- rho + sum tau_i d_i`` (in Fourier space: ``z``, and ``gs`` for the in-constraint
        directions).  Returns True when the pass also did SO4D's shift of the previous pair."""
        if sub is not None and (sub._pair is not None or sub._quad is not None):
            # fused: update + next P~_m z (+ SO4D's previous pair) in one pass
            v = self._get_views()
            gmsn = (sub._pair or sub._quad)[3]
            if self.n_dirs == 2:
                _APPLY2P(v["z"], v["gs"], v["gm"], gmsn, v["amp"], v["meas"], float(tau[0]), float(tau[1]))
            else:
                r = v["rows"]
                mode = 0 if self.cfg.previous == "sda" else (1 if k == 4 else 2)
                t = (float(tau[0]), float(tau[1]), float(tau[2]), float(tau[3])) if k == 4 else \
                    (float(tau[0]), float(tau[1]), 0.0, 0.0)
                _APPLY4N(v["z"], v["gs"], v["gm"], gmsn, r[2], r[3], v["amp"], v["meas"], *t, mode)
            self._gm_ok = True
            return True
        D = self.D[:k]
        v = self._get_views()
        if k == 2 and v is not None:
            _APPLY2(v["z"], v["gs"], v["rows"][0], v["rows"][1], float(tau[0]), float(tau[1]))
        elif k == 4 and v is not None:
            r = v["rows"]
            _APPLY4(v["z"], v["gs"], r[0], r[1], r[2], r[3], float(tau[0]), float(tau[1]),
                    float(tau[2]), float(tau[3]))
        elif v is not None:
            _APPLY(self.z.numpy(), self.gs.numpy(), D.reshape(k, -1).numpy(),
                   np.ascontiguousarray(tau, np.float64), np.ascontiguousarray(self.smask[:k]))
        else:
            for i in range(k):
                t = float(tau[i])
                if t != 0.0:
                    self.z.add_(D[i], alpha=t)
                    if self.smask[i]:
                        self.gs.add_(D[i], alpha=t)
        return False

    def step(self, k_iter):
        p = self.problem
        key = (p.support.data_ptr(), p.support._version)  # O(1): in-place edits bump _version
        if key != getattr(self, "_sup_key", None):
            if not torch.equal(p.support, self.support0):
                self._resplit()
            self._sup_key = key
        k = 4 if (self.n_dirs == 4 and self.has_prev) else 2
        fixed = self.cfg.solver == "fixed"
        tau0 = self._hio_tau(k) if fixed else self._guess(k)
        sub = self._directions(k, tau0)
        G = sub._Gl
        info = {"eps_s": math.sqrt(max(G[1][1], 0.0) / self.amp2),
                "eps_m": math.sqrt(max(G[0][0], 0.0) / self.amp2)}
        level = 0
        if fixed:
            tau = tau0
            n_inner, n_eval = 0, 0
        else:
            sol = self._solve(sub, k, tau0)
            n_inner, n_eval = sol.n_iter, sol.n_eval
            if sol.fallback and k == 4:
                level = 1
                sub2 = sub.restrict(2)
                sol = self._solve(sub2, 2, self._guess(2))
                n_inner += sol.n_iter
                n_eval += sol.n_eval
                tau = sol.tau.tolist() + [0.0, 0.0]
            else:
                tau = sol.tau.tolist()
            if sol.fallback:
                level = 2
        shifted = self._apply(tau, k, sub)
        if self.n_dirs == 4:
            if shifted:
                self.has_prev = True
            else:
                self._shift(tau, k)
        self.n_outer += 1
        info.update({"alpha": float(tau[0]), "beta": float(tau[1]), "inner_iter": float(n_inner),
                     "inner_eval": float(n_eval), "fallback": float(level)})
        if self.n_dirs == 4:
            info.update({"alpha2": float(tau[2]) if k == 4 else 0.0,
                         "beta2": float(tau[3]) if k == 4 else 0.0, "dims": float(k)})
        self.info = info

    def _shift(self, tau, k):
        """SO4D: the pair of this iteration becomes the previous pair of the next one."""
        D = self.D
        if self.cfg.previous == "sda" or k == 2:
            if self.cfg.previous == "sda":
                D[2:4].copy_(D[0:2])
            else:
                torch.mul(D[0], float(tau[0]), out=D[2])
                torch.mul(D[1], float(tau[1]), out=D[3])
        else:  # previous applied step, split into its in/out-of-constraint parts
            D[2].mul_(float(tau[2])).add_(D[0], alpha=float(tau[0]))
            D[3].mul_(float(tau[3])).add_(D[1], alpha=float(tau[1]))
        self.has_prev = True


def _mean(vectors) -> list:
    """Elementwise mean of a few k-vectors (lists), summed left to right as ``sum`` of arrays."""
    n = len(vectors)
    return [sum([v[i] for v in vectors]) / n for i in range(len(vectors[0]))]


def _hist_entry(tau, B):
    """A stored solution ``(tau, scaled B)`` as lists (checkpoints may hold arrays)."""
    return (np.asarray(tau, np.float64).ravel().tolist(), np.asarray(B, np.float64).tolist())


class SO2D(SubspaceSaddle):
    """SO2D: HIO with ``(alpha, beta)`` from the 2-D subspace saddle point of eq. (23)
    (Marchesini 2007).  See :mod:`phasekit.cdi.subspace` for the defaults and choices."""

    name = "so2d"
    n_dirs = 2
    Config = SO2DConfig


class SO4D(SubspaceSaddle):
    """SO4D: the 4-D variant with the previous pair of directions added (Marchesini 2007 Sec. V
    end); its first step, and its fall-back, is the 2-D problem."""

    name = "so4d"
    n_dirs = 4
    Config = SO4DConfig
