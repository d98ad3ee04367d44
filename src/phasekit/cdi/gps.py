"""Generalized proximal smoothing (GPS) for phase retrieval: GPS-R and GPS-F.

Pham, Yin, Rana, Osher, Miao, "GPS: Generalized proximal smoothing for phase retrieval",
Opt. Express 27, 2792 (2019) = Pham thesis (UCLA 2020) ch. 2, Algorithms 1 (GPS-R) and 2 (GPS-F).

The iteration is the generalized primal-dual hybrid gradient (PDHG) of thesis eq. (2.13) for the
min-max problem (2.12)::

    z^{k+1} = prox_{t g_sigma}(z^k - t F y^k)                       (G1-G2, eq. (2.14), (2.28))
    y^{k+1} = Smooth_l( proj_{S*}(y^k + s F^-1(2 z^{k+1} - z^k)) ) (G3-G4, eq. (2.19), (2.18)/(2.27))

with ``prox_{t g_sigma}(w) = (1 - eps) b w/|w| + eps w``, ``eps = sigma / (sigma + t)`` on
measured pixels and ``w`` on unmeasured ones.  Where the thesis leaves something open or has
a typo, the choices made here:

* sigma schedule: piecewise constant, default 0.01 for the first 40 % of the iterations then 0.1
  (the yeast schedule of §2.4.2.1; the vesicle schedule of §2.4.1 is not stated).
* smoothing stages (no gamma values are printed, only "inspired by OSS" below eq. (2.21); the
  "increasing spatial frequency filters" there conflict with the "larger gamma" of Fig. 2.1, and we
  follow Fig. 2.1; the ``s`` of ``G_{s gamma}`` in eq. (2.18) is folded into the filter, as
  Algorithm 1's "abuse of notation" does): ``n_stages`` stages (default 10 x 100 iterations) of
  increasing smoothing, OSS-matched: ``alpha_l`` from ``2N`` to ``0.2N``; GPS-R multiplies ``F y``
  by ``exp(-c_R s |k|^2 / (2 alpha_l^2))`` (k in DFT index units; ``c_R = 1``), GPS-F multiplies
  ``y`` by ``exp(-c_F s r^2 / (2 alpha_l^2))`` (r in pixels from the centre; ``c_F = 1/(4 pi^2)``).
  Explicit ``gammas`` may be given instead (``G_{s gamma}`` of eq. (2.18) / ``W`` of eq. (2.27)).
  ``smoothing="exact"`` uses the exact proximal multipliers ``1/(1 + s gamma lambda(xi))`` (the
  shared Laplacian smoothing of :mod:`phasekit.learn.smoothing`) and ``1/(1 + s gamma r^2)`` (the
  thesis uses the approximations); ``"none"`` turns smoothing off.
* restarts (Algorithms 1-2 never assign ``y_best``; Fig. 2.1 carries both ``z`` and ``y``): each
  stage restarts from the pair ``(z, y)`` with the lowest R_F so far (``restart="global"``, the
  algorithm box) or in the previous stage (``"stage"``, OSS style).
* R_F (eq. (2.21) with the absolute value the printed formula lacks; the thesis does not say on
  which iterate) is computed every iteration on ``P_C(F^-1 z^{k+1})`` over measured pixels; the
  output is ``P_C(F^-1 z_best)`` (``output="unmasked"`` gives the printed ``Re(F^-1 z_best)^+``).
* the smoothing acts on the complex ``y`` (keeping ``Im y``, which carries the realness violation);
  ``literal_re=True`` takes the real part as the printed eq. (2.20) does.
* ``t = 1``, ``s = 0.9`` (thesis experiments); the random start is ``z^0 = b exp(i phi)``,
  ``phi ~ U[0, 2 pi)``, ``z^0 = 0`` on unmeasured pixels, ``y^0 = 0``.
* A real object (``real=True``; CLI ``--real``): ``y`` and ``z`` stay complex (``Im y`` is the dual
  variable of the realness constraint, and ``z`` is not Hermitian for noisy data or a random
  start; docs/cdi.md "GPS and SO2D / SO4D on a real object"), so the FFTs of G2-G4 stay complex;
  the estimate ``P_C u`` is kept as a real tensor and its R-factor runs on ``rfftn`` and the
  half spectrum (``problem.rfft=False`` keeps it complex): the same iterates within rounding.
* The elementwise steps are the fused passes of :mod:`phasekit.cdi.kernels_smooth`, each with a
  torch twin used without numba.  GPS-R keeps its dual variable in Fourier space, ``G = F
  y_half`` with the multiplier ``gW`` of the stage that made it (``F y = gW G``): one pass does
  G1-G2 and forms ``V = F y + s (2 z_new - z)``, whose inverse FFT is G3's point ``y + s (2
  u_new - u_old)`` (F is linear), and one pass does G3 and the estimate -- the same 4 FFTs as
  the printed form, 3 passes instead of 4 (``algo.y``, ``algo.Fy`` are derived on demand; a test
  checks the printed iteration to 1e-9).  GPS-F keeps ``y`` (needed in real space): G1-G2 in
  one pass, G3, the estimate and G4's real-space weight in one pass.
* With ``sigma = 0``, ``smoothing="none"`` and ``s = t = 1`` the iteration is Douglas-Rachford (HIO
  with beta = 1 for a support-only constraint; PDHG equals DR by the thesis's ref. [107], O'Connor
  & Vandenberghe 2018), which a test checks.
"""
from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator

from ..core.errors import ConfigError
from ..engine import Algorithm, StrictConfig
from ..operators.smoothing import laplacian_smoothing_divisor
from . import kernels_smooth as _ks
from .filters import oss_alphas, radius_sq
from .kernels import fourier_project, scale_


class GPSConfig(StrictConfig):
    t: float = Field(1.0, gt=0, description="primal step size")
    s: float = Field(0.9, gt=0, description="dual step size (s*t <= 1 for convergence)")
    sigma: float | list[tuple[float, float]] = Field(
        default=[(0.0, 0.01), (0.4, 0.1)],
        description="fidelity relaxation: a constant or [(fraction of n_iter, value), ...]")
    n_stages: int = Field(10, ge=1, le=1000, description="smoothing stages")
    alpha_max: float | None = Field(None, gt=0, description="first filter width (default 2N)")
    alpha_min: float | None = Field(None, gt=0, description="last filter width (default 0.2N)")
    gammas: list[float] | None = Field(None, description="explicit gamma per stage (overrides alpha)")
    c_r: float = Field(1.0, ge=0, description="GPS-R OSS-matching constant")
    c_f: float = Field(1.0 / (4 * math.pi ** 2), ge=0, description="GPS-F OSS-matching constant")
    smoothing: Literal["gaussian", "exact", "none"] = "gaussian"
    restart: Literal["global", "stage"] = "global"
    output: Literal["masked", "unmasked"] = "masked"
    literal_re: bool = False

    @field_validator("sigma", mode="before")
    @classmethod
    def _sigma(cls, v):
        """A constant >= 0, or a non-empty ``[(fraction, value), ...]`` that starts at fraction 0
        with fractions in [0, 1] and values >= 0 (all finite)."""
        if isinstance(v, bool):
            raise ValueError(f"sigma must be a number or [(fraction, value), ...], got {v!r}")
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise ValueError(f"sigma must be a number or [(fraction, value), ...], got {v!r}") from None
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, numbers.Real):
            v = float(v)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"sigma must be a finite number >= 0, got {v!r}")
            return float(v)
        if isinstance(v, (list, tuple)):
            if len(v) == 0:
                raise ValueError("sigma schedule is empty; give a constant or [(fraction, value), ...]")
            pts = []
            for item in v:
                try:
                    f, s = item
                    f, s = float(f), float(s)
                except (TypeError, ValueError):
                    raise ValueError(f"sigma schedule entries must be (fraction, value) pairs, got {item!r}") from None
                if not (math.isfinite(f) and 0.0 <= f <= 1.0):
                    raise ValueError(f"sigma schedule fractions must be in [0, 1], got {item!r}")
                if not (math.isfinite(s) and s >= 0.0):
                    raise ValueError(f"sigma schedule values must be finite and >= 0, got {item!r}")
                pts.append((f, s))
            if min(f for f, _ in pts) > 0:
                raise ValueError("sigma schedule must start at fraction 0")
            return pts
        raise ValueError(f"sigma must be a number or [(fraction, value), ...], got {v!r}")

    @field_validator("gammas")
    @classmethod
    def _gammas(cls, v, info: ValidationInfo):
        """One finite ``gamma >= 0`` per smoothing stage."""
        if v is None:
            return v
        if len(v) == 0:
            raise ValueError("gammas is empty; give one value per stage or leave it unset")
        if any(g < 0 for g in v):
            raise ValueError(f"gammas must be >= 0, got {v}")
        n = info.data.get("n_stages")
        if n is not None and len(v) != n:
            raise ValueError(f"gammas has {len(v)} values for n_stages={n} (one per stage)")
        return v


def sigma_schedule(sigma, n_iter: int) -> np.ndarray:
    """Per-iteration fidelity parameter from a constant or ``[(fraction, value), ...]``."""
    if isinstance(sigma, (int, float)):
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        return np.full(n_iter, float(sigma))
    pts = sorted((float(f), float(v)) for f, v in sigma)
    if not pts or pts[0][0] > 0:
        raise ValueError("sigma schedule must start at fraction 0")
    out = np.empty(n_iter)
    fr = np.arange(n_iter) / max(n_iter, 1)
    for f, v in pts:
        if v < 0:
            raise ValueError(f"sigma values must be >= 0, got {v}")
        out[fr >= f - 1e-12] = v
    return out


class GPS(Algorithm):
    """GPS-R / GPS-F (thesis Algorithms 1-2; see the module docstring for every choice)."""

    name = "gps"
    variant = "r"
    keep_best_default = False  # best tracking is part of the algorithm itself
    # GPS-R keeps the dual variable in Fourier space as G = F y_half (unsmoothed) and the
    # multiplier gW applied to it (F y = gW G): see step()
    state_names = ("z", "G", "gW", "u_old", "best", "stage_best", "rf")
    Config = GPSConfig
    _vform = True

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        self.t, self.s = float(cfg.t), float(cfg.s)
        self.sigmas = sigma_schedule(cfg.sigma, self.n_iter)
        self.n_stages = min(int(cfg.n_stages), self.n_iter)
        self.bounds = np.linspace(0, self.n_iter, self.n_stages + 1).round().astype(int)
        self.smoothing, self.restart, self.output = cfg.smoothing, cfg.restart, cfg.output
        self.literal_re = cfg.literal_re
        p = problem
        if cfg.gammas is not None:
            if len(cfg.gammas) != self.n_stages:  # n_stages is capped at n_iter
                raise ConfigError(f"{self.name}: gammas has {len(cfg.gammas)} values but {self.n_iter} "
                                  f"iterations hold only {self.n_stages} stages")
            self.gammas = [float(g) for g in cfg.gammas]
        else:
            alphas = oss_alphas(self.n_stages, p.shape[0], cfg.alpha_max, cfg.alpha_min)
            if self.variant == "r":  # gamma_l = N^2 c_R / (8 pi^2 alpha_l^2), xi = k / N
                self.gammas = [p.shape[0] ** 2 * cfg.c_r / (8 * math.pi ** 2 * a * a) for a in alphas]
            else:  # gamma_l = c_F / (2 alpha_l^2)
                self.gammas = [cfg.c_f / (2 * a * a) for a in alphas]
        if self.variant == "r":
            # |xi|^2 with xi = k / N per axis (cycles per pixel)
            grids = [torch.fft.fftfreq(n, device=p.device, dtype=p.rdtype) for n in p.shape]
            self._q2 = sum(g * g for g in torch.meshgrid(*grids, indexing="ij"))
        else:
            self._r2 = radius_sq(p.shape, p.device, p.rdtype)
        self._filters: dict[int, torch.Tensor] = {}
        self._rf = float("nan")
        self._stage = 0

    # ----------------------------------------------------------------- filters
    def filter(self, l: int) -> torch.Tensor | None:
        """Multiplier of stage ``l``: on ``F y`` (GPS-R) or on ``y`` (GPS-F); None if no smoothing."""
        if self.smoothing == "none":
            return None
        if l not in self._filters:
            sg = self.s * self.gammas[l]
            p = self.problem
            if self.variant == "r":
                if self.smoothing == "gaussian":  # W = exp(-4 pi^2 s gamma |xi|^2), eq. (2.20)
                    w = torch.exp(-4 * math.pi ** 2 * sg * self._q2)
                else:  # exact prox of the periodic Laplacian: 1/(1 + s gamma lambda(xi))
                    w = laplacian_smoothing_divisor(p.shape, sg, device=p.device, dtype=p.rdtype)
            else:
                if self.smoothing == "gaussian":  # W = exp(-s gamma r^2), eq. (2.27)
                    w = torch.exp(-sg * self._r2)
                else:  # exact: 1/(1 + s gamma r^2), eq. (2.26)
                    w = 1.0 / (1.0 + sg * self._r2)
            self._filters = {l: w}
        return self._filters[l]

    # ----------------------------------------------------------------- state
    @classmethod
    def random_start(cls, problem, rng):
        phase = torch.from_numpy(rng.uniform(0, 2 * np.pi, size=problem.shape)).to(problem.device, problem.rdtype)
        z = torch.polar(problem.amp * problem.measured, phase)
        return problem.ifft(z)

    # GPS-R's dual variable in real / Fourier space, from its stored form (tests, diagnostics)
    @property
    def Fy(self) -> torch.Tensor:
        """``F y``: ``gW G`` (GPS-R's stored form)."""
        return self.G * self.gW if self.gW is not None else self.G

    @property
    def y(self) -> torch.Tensor:
        """The dual variable ``y = F^-1 (gW G)`` (computed on demand)."""
        return self.problem.ifft(self.Fy)

    def _dual_state(self) -> dict:
        if self._vform:
            return {"G": self.G, "gW": self.gW}
        return {"y": self.y, "Fy": self.Fy}

    def initialize(self, x0):
        p = self.problem
        z = p.fft(x0.to(p.cdtype))
        fourier_project(z, p.amp, p.measured)
        self.z = z.contiguous()
        if self._vform:
            self.G, self.gW = torch.zeros_like(self.z), None
        else:
            self.y = torch.zeros_like(self.z)
            self.Fy = torch.zeros_like(self.z)
        self.u_old = p.ifft(self.z)
        est = p.constrain(self.u_old)
        if p.use_rfft:  # a real object: the estimate is real, its R-factor takes a real FFT
            est = est.real.contiguous()
        self.rf = float("inf")
        self.best = {"rf": float("inf"), "z": self.z.clone(), **self._dual_state(),
                     "u": self.u_old.clone(), "est": est}
        self.stage_best = dict(self.best)

    def _restart_from(self, b):
        # tensors are never modified in place (see step), so references suffice
        self.z, self.u_old = b["z"], b["u"]
        if self._vform:
            self.G, self.gW = b["G"], b["gW"]
        else:
            self.y, self.Fy = b["y"], b["Fy"]

    def step(self, k):
        p = self.problem
        l = int(np.searchsorted(self.bounds, k, side="right") - 1)
        if k > 0 and k == self.bounds[l]:  # new stage: restart from the best pair (G: y0=y_best, z0=z_best)
            self._restart_from(self.best if self.restart == "global" else self.stage_best)
            self.stage_best = {"rf": float("inf")}
        self._stage, self._k = l, k
        sigma = float(self.sigmas[k])
        eps = sigma / (sigma + self.t)
        W = self.filter(l)
        if self._vform:
            self._step_r(p, W, eps)
        else:
            self._step_f(p, W, eps)
        # G5: R-factor of the support-projected iterate (from the half spectrum of a real
        # estimate), best tracking; every tensor kept is fresh and never modified in place, so
        # the best pair is kept by reference (no copies)
        est = self._est
        self.rf = _ks.rfactor(p, est)
        cur = {"rf": self.rf, "z": self.z, **self._dual_state(), "u": self.u_old, "est": est}
        if self.rf < self.best["rf"]:
            self.best = cur
        if self.rf < self.stage_best.get("rf", float("inf")):
            self.stage_best = cur

    def _step_r(self, p, W, eps):
        """GPS-R.  G1-G2 with G4's multiplier and G3's extrapolation in one Fourier-space pass:
        ``F y = gW G``, ``z_new = prox(z - t F y)``, ``V = F y + s (2 z_new - z)``; then
        ``v = F^-1 V`` (``= y + s (2 u_new - u_old)``, F linear), G3 ``y_half = v - P_C v`` with
        the estimate ``P_C u_new`` in one pass, and ``G = F y_half`` (G4's multiplier ``W`` is
        applied in the next primal pass).  FFTs: ``F^-1 z_new``, ``F^-1 V``, ``F y_half`` (and
        the R-factor's), as the plain form's ``F^-1 z_new``, ``F y_half``, ``F^-1 (W F y_half)``."""
        z_new, V = _ks.gps_primal_v(self.z, self.G, self.gW, p.amp, p.measured, self.t, eps, self.s)
        u_new = p.ifft(z_new)
        # V and y_half are this step's temporaries: transformed in place (G takes y_half's memory)
        y_half, est = _ks.gps_dual_v(p.ifft(V, out=V), u_new, p.support, real=p.real,
                                     positive=p.positive, real_estimate=p.use_rfft)
        G, gW = p.fft(y_half, out=y_half), W
        if self.literal_re and W is not None:  # the printed eq. (2.20): y = Re F^-1 (W F y_half)
            y = p.ifft(G * W).real.to(p.cdtype)
            G, gW = p.fft(y), None
        self.z, self.G, self.gW, self.u_old, self._est = z_new, G, gW, u_new, est

    def _step_f(self, p, W, eps):
        """GPS-F: G1-G2 in one pass; G3, the estimate and G4's real-space weight in one pass."""
        z_new = _ks.gps_primal(self.z, self.Fy, p.amp, p.measured, self.t, eps)
        u_new = p.ifft(z_new)
        w_dual = W if (W is not None and not self.literal_re) else None
        y_half, est = _ks.gps_dual(self.y, u_new, self.u_old, self.s, p.support, w_dual,
                                   real=p.real, positive=p.positive, real_estimate=p.use_rfft)
        if W is None:
            y = y_half
        else:
            y = y_half if w_dual is not None else scale_(y_half, W)
            if self.literal_re:
                y = y.real.to(y.dtype)
        self.z, self.y, self.Fy, self.u_old, self._est = z_new, y, p.fft(y), u_new, est

    def metrics(self):
        return {"R_F": self.rf, "sigma": float(self.sigmas[min(self._k_last(), self.n_iter - 1)]),
                "gamma": self.gammas[self._stage]}

    def _k_last(self):
        return getattr(self, "_k", 0)

    def estimate(self):
        return self.best["est"]

    def final(self):
        if self.output == "unmasked":
            u = self.best["u"]
            return torch.complex(u.real.clamp_min(0), torch.zeros_like(u.real))
        return self.best["est"]

    def iterate(self):
        return self.best["u"]


class GPSR(GPS):
    """GPS-R: real-space smoothing of the dual variable (thesis Algorithm 1, §2.3.1)."""

    name = "gps-r"
    variant = "r"


class GPSF(GPS):
    """GPS-F: Fourier-space smoothing, i.e. a real-space Gaussian weight on ``y`` (Algorithm 2)."""

    name = "gps-f"
    variant = "f"
    state_names = ("z", "y", "Fy", "u_old", "best", "stage_best", "rf")
    _vform = False  # y is needed in real space anyway: the plain form costs no extra FFT
    y = None  # plain attributes (shadow GPS-R's derived properties)
    Fy = None
