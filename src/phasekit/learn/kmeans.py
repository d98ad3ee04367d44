"""k-means clustering: stochastic backward Euler (SBE), Lloyd ("EM") and mini-batch k-means.

Pham thesis ch. 4 (Yin, Pham, Oberman, Osher, J. Sci. Comput. 77, 1133 (2018)), §4.2, Algorithm 4
and §4.3.

All three methods minimise the thesis objective (eq. (4.4))

    phi(x) = 1/(2N) sum_i min_j ||x_j - p_i||^2

whose 'gradient' (eq. (4.5)) for the current nearest-centroid assignment ``C_j`` is
``(1/N) [sum_{i in C_j} (x_j - p_i)]_j``.  They are :class:`phasekit.engine.Algorithm` subclasses
run by the shared driver :func:`phasekit.engine.run` (one ``step`` = one outer SBE iteration, one
Lloyd iteration or one mini-batch update), so they get its history, callbacks, progress bar and
best-of-``n_init`` selection (by ``phi``).  The estimator classes :class:`SBEKMeans`,
:class:`KMeans` and :class:`MiniBatchKMeans` give them a scikit-learn-like interface (``fit``,
``predict``, ``fit_predict``, ``transform``, ``score``; ``cluster_centers_``, ``labels_``,
``inertia_``, ``n_iter_``) on NumPy arrays or CPU/CUDA tensors.

On CPU float tensors each step is one call of a compiled kernel (:mod:`.kmeans_kernels`: one SBE
outer step, one Lloyd pass, one mini-batch update) on a NumPy view of the data, with the step's
mini-batches drawn inside that call, word for word the draws of ``rng.choice(N, M,
replace=False)`` (so a seed gives the same fit as with the draws in Python); the torch code here
is the reference twin (CUDA, ``PHASEKIT_NO_NUMBA=1``, the tests).  The driver's final objective
and the estimator's labels share one full-data assignment pass.

Normalisation: ``inertia_`` is scikit-learn's (the sum of squared distances); ``objective_`` is
the thesis's ``phi = inertia_ / (2N)`` (Iris: best 78.85 / 300 = 0.2628).

Resolutions of what the thesis leaves open (our choices), used here:

* (Algorithm 4 writes an unsubscripted ``gamma`` in the inner loop.) In outer step ``k`` the inner
  loop uses ``gamma^{k-1}`` (the first sweep ``gamma^0 = K``); ``gamma`` is multiplied by ``beta``
  after each outer step.  ``beta = 1/1.01`` by default (the thesis gives it only for Iris, §4.3.2).
* (Sampling is not specified.) A fresh mini-batch of ``M`` points, drawn without replacement, at
  every inner step; the batch is assigned to the nearest centroid of the current inner iterate
  ``y^{l-1}`` (ties to the lowest index); a centroid without batch points has zero gradient (it
  stays put, never reseeded).
* (Algorithm 4 outputs ``x^{omaxit}``.) SBE returns the final iterate ``x^{omaxit}``, not the best
  seen; ``phi`` is evaluated on the full data.
* ``init="random"`` draws ``K`` distinct data points uniformly (the thesis says only "random
  initialization", Tables 4.1-4.3). ``init="k-means++"`` (greedy, ``2 + ln K`` local trials, as
  scikit-learn) is offered because a scikit-learn user expects it; the thesis does not use it.
* Mini-batch k-means ("mb-EM" of §4.3.3, "Max iter 100" in Tables 4.1-4.3) is Sculley's update with
  per-centre learning rate ``1/v_j`` and no reassignment; ``max_iter`` counts mini-batch steps (not
  epochs). The per-point sequential update of a batch equals the vectorised
  ``c_j <- (v_j c_j + sum_batch p) / (v_j + b_j)``.
* Lloyd ("EM"; the tables' "Batch size" column is ``N/K``, read as full batch): full batch; an empty
  cluster keeps its centroid (as SBE does); stops when the squared centre shift is
  ``<= tol * mean feature variance`` (scikit-learn's rule) or after ``max_iter`` iterations (further
  driver steps are no-ops).
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from pydantic import Field

from ..core.device import as_tensor, real_dtype, resolve_device
from ..core.errors import ConfigError, InputError, PhasekitError
from ..core.rng import make_rng
from ..engine import Algorithm, StrictConfig, solve
from . import kmeans_kernels as _kern

__all__ = ["kmeans_objective", "assign", "assign_reference", "KMeansProblem", "SBEStep", "LloydStep",
           "MiniBatchStep", "SBEConfig", "LloydConfig", "MiniBatchConfig", "SBEKMeans", "KMeans", "MiniBatchKMeans",
           "NotFittedError", "load_iris"]

_CHUNK_ELEMS = 1 << 22  # distance-matrix elements per chunk (16 MiB in float32)

log = logging.getLogger(__name__)


class NotFittedError(PhasekitError, ValueError, AttributeError):
    """An estimator was used before :meth:`fit` (as scikit-learn's ``NotFittedError``)."""


# --------------------------------------------------------------------------- kernels
def _sqdist(P: torch.Tensor, C: torch.Tensor, c2: torch.Tensor | None = None) -> torch.Tensor:
    """``||p_i - c_j||^2`` for a chunk of points (clamped at 0 against round-off)."""
    if c2 is None:
        c2 = (C * C).sum(1)
    d = (P * P).sum(1, keepdim=True) - 2.0 * (P @ C.T) + c2
    return d.clamp_min_(0)


def assign(P: torch.Tensor, C: torch.Tensor, ref=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each point and the squared distance to it (ties: lowest index).

    On CPU float tensors the compiled kernel of :mod:`phasekit.learn.kmeans_kernels` (one pass;
    scores measured from ``ref``, the data mean when None; the distance returned is the direct
    ``sum (p - c)^2``); elsewhere :func:`assign_reference` (``ref`` unused).

    Examples
    --------
    >>> import torch
    >>> assign(torch.tensor([[0.0, 0.0], [3.0, 0.0]]), torch.tensor([[0.0, 0.0], [2.0, 0.0]]))[0].tolist()
    [0, 1]
    """
    if _kern.usable(P, C) and P.dtype == C.dtype:
        return _kern.assign(P, C, ref)
    return assign_reference(P, C)


def assign_reference(P: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch reference of :func:`assign`: ``||p||^2 - 2 p.c + ||c||^2`` in chunks (CUDA runs it)."""
    n, k = P.shape[0], C.shape[0]
    c2 = (C * C).sum(1)
    step = max(1, _CHUNK_ELEMS // max(k, 1))
    if n <= step:
        d = _sqdist(P, C, c2)
        m, lab = d.min(1)
        return lab, m
    labs, mins = [], []
    for s in range(0, n, step):
        d = _sqdist(P[s:s + step], C, c2)
        m, lab = d.min(1)
        labs.append(lab)
        mins.append(m)
    return torch.cat(labs), torch.cat(mins)


def _cluster_sums(P: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster sums of the points and counts."""
    sums = torch.zeros((k, P.shape[1]), dtype=P.dtype, device=P.device).index_add_(0, labels, P)
    counts = torch.bincount(labels, minlength=k).to(P.dtype)
    return sums, counts


def kmeans_objective(X, C) -> float:
    """The thesis objective ``phi = 1/(2N) sum_i min_j ||c_j - p_i||^2`` (eq. (4.4)).

    ``X`` is ``(N, d)``, ``C`` is ``(K, d)``; NumPy arrays or tensors.  Computed in float64.
    """
    Xt = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    Ct = C if isinstance(C, torch.Tensor) else torch.as_tensor(np.asarray(C), device=Xt.device)
    Xt, Ct = Xt.to(torch.float64), Ct.to(device=Xt.device, dtype=torch.float64)
    _, m = assign(Xt, Ct)
    return float(m.sum() / (2 * Xt.shape[0]))


# --------------------------------------------------------------------------- problem
def _validate_data(X, name="X") -> np.ndarray | torch.Tensor:
    if isinstance(X, torch.Tensor):
        a = X.detach()
        if a.is_complex():
            raise InputError(f"{name} must be real, got a complex tensor")
    else:
        try:
            a = np.asarray(X)
        except Exception as exc:  # ragged lists
            raise InputError(f"{name} is not a numeric array ({exc})") from None
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise InputError(f"{name} must be a numeric array, got dtype {a.dtype}")
        if np.iscomplexobj(a):
            raise InputError(f"{name} must be real, got complex dtype {a.dtype}")
    if a.ndim != 2:
        raise InputError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(a.shape)}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"{name} is empty: shape {tuple(a.shape)}")
    finite = bool(torch.isfinite(a.float()).all()) if isinstance(a, torch.Tensor) else bool(np.isfinite(a).all())
    if not finite:
        raise InputError(f"{name} contains NaN or infinite values")
    return a


class KMeansProblem:
    """Data and initialisation of a k-means run, in the form :func:`phasekit.engine.run` drives.

    Parameters
    ----------
    X : (N, d) array or tensor
        The data points ``p_i``.
    n_clusters : int
        ``K``.
    init : {"k-means++", "random"}
        Seeding used by :meth:`random_start`.
    device, precision
        Where and in which precision to compute (``docs/conventions.md``).
    rng
        Generator of the mini-batches when no random start is drawn (explicit initial centres).

    It implements the engine's :class:`~phasekit.engine.Problem` protocol: the objective is
    ``phi`` (lower is better, recorded as ``objective``), the output the ``(K, d)`` centre
    array; there is no support.
    """

    modality = "ml"
    objective_name = "objective"

    def __init__(self, X, n_clusters: int, *, init: str = "k-means++", device=None,
                 precision: str = "single", rng=None):
        a = _validate_data(X)
        self.device = resolve_device(device)
        self.rdtype = real_dtype(precision)
        self.X = as_tensor(a, device=self.device, dtype=self.rdtype).contiguous()
        self.n, self.d = self.X.shape
        k = int(n_clusters)
        if k != n_clusters or k < 1:
            raise ConfigError(f"n_clusters must be a positive integer, got {n_clusters!r}")
        if k > self.n:
            raise InputError(f"n_clusters={k} > n_samples={self.n}")
        self.k = k
        if init not in ("k-means++", "random"):
            raise ConfigError(f"init must be 'k-means++', 'random' or an array of centres, got {init!r}")
        self.init = init
        self.rng = make_rng(rng)
        self.shape = (self.n, self.d)
        self._mean_var: float | None = None
        self._last_assign: tuple | None = None  # (centre bytes, labels, squared distances)
        # the NumPy view the compiled kernels read (no torch round trip per step)
        self.Xn = self.X.numpy() if _kern.usable(self.X) else None
        self.ref = _kern.reference(self.Xn) if self.Xn is not None else None

    @property
    def mean_var(self) -> float:
        """Mean feature variance: the scale of Lloyd's tolerance (scikit-learn's convention);
        computed on first use (SBE and mini-batch never need it)."""
        if self._mean_var is None:
            self._mean_var = float(self.X.to(torch.float64).var(0, unbiased=False).mean())
        return self._mean_var

    # --- driver interface
    def objective(self, C: torch.Tensor) -> float:
        """The objective ``phi`` of centres ``C`` on the full data."""
        return self.rfactor(C)

    def to_output(self, C: torch.Tensor) -> np.ndarray:
        return self.to_centred(C)

    def from_input(self, C) -> torch.Tensor:
        return self.from_centred(C)

    def rfactor(self, C: torch.Tensor) -> float:
        """The objective ``phi`` of centres ``C`` on the full data."""
        _, m = self.assign_all(C)
        return float(m.to(torch.float64).sum() / (2 * self.n))

    def assign_all(self, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`assign` of all the data to ``C``, remembered for the last ``C`` seen (the driver's
        final objective, its metrics and the estimator's labels are one pass, not three)."""
        key = (C.dtype, C.device, C.detach().cpu().numpy().tobytes())
        if self._last_assign is None or self._last_assign[0] != key:
            self._last_assign = (key, *assign(self.X, C, ref=self.ref))
        return self._last_assign[1], self._last_assign[2]

    def to_centred(self, C: torch.Tensor) -> np.ndarray:
        return C.detach().cpu().numpy().copy()

    def from_centred(self, C) -> torch.Tensor:
        a = C.detach().cpu().numpy() if isinstance(C, torch.Tensor) else np.asarray(C)
        if a.shape != (self.k, self.d):
            raise InputError(f"initial centres shape {a.shape} != (n_clusters, n_features) = {(self.k, self.d)}")
        if not np.isfinite(a).all():
            raise InputError("initial centres contain NaN or infinite values")
        return torch.as_tensor(a, dtype=self.rdtype, device=self.device).clone()

    def random_start(self, rng) -> torch.Tensor:
        """Initial centres by ``self.init``; the start's mini-batches come from a child of ``rng``."""
        rng = make_rng(rng)
        self.rng = rng.spawn(1)[0]
        if self.init == "random":
            idx = rng.choice(self.n, size=self.k, replace=False)
            return self.X[torch.as_tensor(idx, device=self.device)].clone()
        return self._kmeanspp(rng)

    def _kmeanspp(self, rng) -> torch.Tensor:
        """Greedy k-means++ (Arthur & Vassilvitskii 2007) with ``2 + ln K`` candidates per centre."""
        X, k = self.X, self.k
        trials = 2 + int(math.log(k))
        first = int(rng.integers(self.n))
        centres = [X[first]]
        closest = _sqdist(X, X[first:first + 1])[:, 0].to(torch.float64)
        pot = float(closest.sum())
        for _ in range(1, k):
            if pot <= 0:  # all remaining points coincide with centres: pick uniformly
                cand = torch.as_tensor(rng.integers(self.n, size=1), device=self.device)
            else:
                cdf = torch.cumsum(closest, 0).cpu().numpy()
                r = rng.random(trials) * cdf[-1]
                cand = torch.as_tensor(np.minimum(np.searchsorted(cdf, r), self.n - 1), device=self.device)
            d = _sqdist(X, X[cand]).to(torch.float64)  # (N, trials)
            new = torch.minimum(closest[:, None], d)
            pots = new.sum(0)
            b = int(torch.argmin(pots))
            closest, pot = new[:, b].contiguous(), float(pots[b])
            centres.append(X[int(cand[b])])
        return torch.stack(centres).clone()

    def sample(self, m: int) -> torch.Tensor:
        """A mini-batch of ``m`` distinct points (``m >= N``: all points)."""
        if m >= self.n:
            return self.X
        idx = self.sample_index(m)
        return self.X.index_select(0, torch.as_tensor(idx, device=self.device))

    def sample_index(self, m: int) -> np.ndarray:
        """Row indices of the mini-batch :meth:`sample` returns (the same draw from ``self.rng``)."""
        if m >= self.n:
            return np.arange(self.n, dtype=np.int64)
        return self.rng.choice(self.n, size=m, replace=False)

    @property
    def fused(self) -> bool:
        """Whether the compiled CPU kernels run this problem (else the torch reference): decided
        once, when the data are taken (``Xn``)."""
        return self.Xn is not None


# --------------------------------------------------------------------------- algorithms
class SBEConfig(StrictConfig):
    """Parameters of SBE (thesis Alg. 4, §4.3: imaxit 5 or 10, alpha 0.75, gamma0 = K)."""

    batch_size: int = Field(500, ge=1, description="mini-batch size M")
    n_inner: int = Field(10, ge=1, description="fixed-point passes per outer step (imaxit)")
    alpha: float = Field(0.75, ge=0.0, lt=1.0, description="trajectory averaging parameter")
    beta: float = Field(1 / 1.01, gt=0.0, le=1.0, description="step decay per outer step")
    gamma0: float | None = Field(None, gt=0.0, description="initial step (None: K)")


class LloydConfig(StrictConfig):
    """Parameters of Lloyd's algorithm."""

    tol: float = Field(1e-4, ge=0.0, description="stop when centre shift^2 <= tol * mean variance")


class MiniBatchConfig(StrictConfig):
    """Parameters of Sculley's mini-batch k-means."""

    batch_size: int = Field(500, ge=1, description="mini-batch size")


class _ArrayState:
    """A state tensor that the compiled steps keep as a NumPy array (``algo.x`` is a torch view
    of it, made when read): a torch round trip per step (``.numpy()`` in, ``from_numpy`` out)
    cost ~15 us, a sixth of a mini-batch k-means step at 500 points."""

    def __set_name__(self, owner, name):
        self.name = name
        self.t, self.a = f"_{name}_t", f"_{name}_a"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        d = obj.__dict__
        t = d.get(self.t)
        if t is None:
            a = d.get(self.a)
            if a is None:
                raise AttributeError(self.name)
            t = d[self.t] = torch.from_numpy(a)
        return t

    def __set__(self, obj, value):
        obj.__dict__[self.t] = value
        obj.__dict__[self.a] = None

    def array(self, obj, dtype) -> np.ndarray:
        """The NumPy array: the kernels' own, else the tensor's (a view where it has ``dtype``;
        not kept, so a tensor set from outside is never shadowed by a stale copy)."""
        d = obj.__dict__
        a = d.get(self.a)
        return d[self.t].numpy().astype(dtype, copy=False) if a is None else a

    def set_array(self, obj, a: np.ndarray) -> None:
        obj.__dict__[self.a] = a
        obj.__dict__[self.t] = None


class _KMeansStep(Algorithm):
    """Common state: ``self.x`` is the ``(K, d)`` centre tensor."""

    keep_best_default = False
    state_names = ("x",)
    x = _ArrayState()

    def __init__(self, problem, n_iter, **params):
        if not isinstance(problem, KMeansProblem):
            raise ConfigError(f"{self.name} is a k-means algorithm: it runs on k-means data "
                              f"(phasekit.learn), not on {type(problem).__name__}")
        super().__init__(problem, n_iter, **params)

    def estimate(self) -> torch.Tensor:
        return self.x

    def metrics(self) -> dict[str, float]:
        return {"objective": self.problem.rfactor(self.x), "n_iter": float(self.n_done)}

    def state_dict(self) -> dict:
        # the mini-batch generator lives on the problem (made by random_start, which a resumed
        # run skips): without its state the resumed run would draw other mini-batches
        return {**super().state_dict(), "batch_rng": self.problem.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        st = state.get("batch_rng")
        if st is not None:
            bg = getattr(np.random, st["bit_generator"])()
            bg.state = st
            self.problem.rng = np.random.Generator(bg)


class SBEStep(_KMeansStep):
    """Stochastic backward Euler, one outer iteration per step (thesis Algorithm 4).

    ``y^0 = x^{k-1}``; for ``l = 1..imaxit``: ``y^l = x^{k-1} - gamma grad_l phi(y^{l-1})`` with
    the mini-batch gradient ``grad_l phi = (1/M) [sum_{i in C_j^l} (y_j^{l-1} - p_i)]_j`` and the
    forward-looking average ``x^k = alpha x^k + (1 - alpha) y^l``; then ``gamma <- beta gamma``.
    The average is what turns the (at ``gamma ~ K`` non-contracting) fixed-point iteration into an
    approximate prox (our analysis, not in the thesis: with fixed assignments and ``gamma = K``
    the plain fixed-point iteration oscillates between ``x`` and the cluster means).
    """

    name = "sbe-kmeans"
    state_names = ("x", "gamma", "n_done")
    Config = SBEConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        self.m = min(cfg.batch_size, problem.n)
        self.n_inner, self.alpha, self.beta = cfg.n_inner, cfg.alpha, cfg.beta
        self.gamma0 = float(problem.k if cfg.gamma0 is None else cfg.gamma0)

    def initialize(self, x0: torch.Tensor) -> None:
        self.x = x0.clone().contiguous()
        self.gamma = self.gamma0
        self.n_done = 0

    def step(self, k: int) -> None:
        p = self.problem
        if p.fused:  # the whole outer step in one compiled call, same mini-batch draws
            sampler = self._sampler()
            X = type(self).x
            xn = X.array(self, p.Xn.dtype)
            if sampler is not None:  # the draws too (NumPy's choice, word for word)
                out = _kern.sbe_outer_draw(p.Xn, p.rng, sampler, xn, self.gamma, self.alpha, p.ref)
            else:
                idx = np.empty((self.n_inner, self.m), dtype=np.int64)
                for l in range(self.n_inner):
                    idx[l] = p.sample_index(self.m)
                out = _kern._sbe_outer_k(p.Xn, p.ref, idx, xn, float(self.gamma), float(self.alpha))
            X.set_array(self, out)
        else:
            self._step_reference()
        self.gamma *= self.beta
        self.n_done += 1

    def _sampler(self):
        """The compiled draws of this step's ``imaxit`` mini-batches (None: draw in Python)."""
        return _sampler_for(self, self.n_inner)

    def _step_reference(self) -> None:
        """The outer step in torch operations (CUDA; the twin the compiled kernel is tested against)."""
        p, x_prev, K = self.problem, self.x, self.problem.k
        xk = x_prev.clone()
        y = x_prev
        a, g = self.alpha, self.gamma
        for _ in range(self.n_inner):
            P = p.sample(self.m)
            lab, _ = assign_reference(P, y)
            sums, counts = _cluster_sums(P, lab, K)
            grad = (counts[:, None] * y - sums) / P.shape[0]
            y = x_prev - g * grad
            xk.mul_(a).add_(y, alpha=1 - a)
        self.x = xk


def _sampler_for(algo, rows: int):
    """The compiled mini-batch sampler of ``algo`` (made on first use; None: draw in Python)."""
    s = algo.__dict__.get("_sampler_obj", False)
    if s is False:
        s = _kern.fast_sampler(algo.problem.n, algo.m, rows)
        algo._sampler_obj = s
    return s


class LloydStep(_KMeansStep):
    """Lloyd's algorithm ("EM" in the thesis): assign every point, move each centre to its mean."""

    name = "lloyd"
    state_names = ("x", "n_done", "converged")
    Config = LloydConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self.tol = self.cfg.tol * problem.mean_var

    def initialize(self, x0: torch.Tensor) -> None:
        self.x = x0.clone().contiguous()
        self.n_done = 0
        self.converged = False

    def step(self, k: int) -> None:
        if self.converged:
            return
        X, K = self.problem.X, self.problem.k
        if self.problem.fused:
            _, _, sums, counts = _kern.assign_sums(X, self.x, ref=self.problem.ref, with_mins=False)
            means = (sums / counts.clamp_min(1)[:, None]).to(self.x.dtype)
            new = torch.where(counts[:, None] > 0, means, self.x)
        else:
            lab, _ = assign_reference(X, self.x)
            sums, counts = _cluster_sums(X, lab, K)
            new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], self.x)
        shift = float(((new - self.x) ** 2).sum())
        self.x = new
        self.n_done += 1
        if shift <= self.tol:
            self.converged = True


class MiniBatchStep(_KMeansStep):
    """Mini-batch k-means (Sculley 2010; thesis "mb-EM"), one mini-batch per step."""

    name = "minibatch-kmeans"
    state_names = ("x", "v", "n_done")
    Config = MiniBatchConfig
    v = _ArrayState()

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self.m = min(self.cfg.batch_size, problem.n)

    def initialize(self, x0: torch.Tensor) -> None:
        self.x = x0.clone().contiguous()
        self.v = torch.zeros(self.problem.k, dtype=self.x.dtype, device=self.x.device)
        self.n_done = 0

    def step(self, k: int) -> None:
        p = self.problem
        if p.fused:  # one compiled call: assignment, sums and update of the batch (same draw)
            sampler = _sampler_for(self, 1)
            if sampler is not None:
                X, V, dt = type(self).x, type(self).v, p.Xn.dtype
                xn, vn = _kern.minibatch_draw(p.Xn, p.rng, sampler, X.array(self, dt), V.array(self, dt), p.ref)
                X.set_array(self, xn)
                V.set_array(self, vn)
            else:
                self.x, self.v = _kern.minibatch_step(p.X, p.sample_index(self.m), self.x, self.v, p.ref)
        else:
            P = p.sample(self.m)
            lab, _ = assign_reference(P, self.x)
            sums, counts = _cluster_sums(P, lab, p.k)
            v_new = self.v + counts
            upd = (self.v[:, None] * self.x + sums) / v_new.clamp_min(1)[:, None]
            self.x = torch.where(counts[:, None] > 0, upd, self.x)
            self.v = v_new
        self.n_done += 1


# --------------------------------------------------------------------------- estimators
class _BaseKMeans:
    """scikit-learn-like estimator around one registered k-means algorithm."""

    _algorithm = ""

    def __init__(self, n_clusters: int = 8, *, init="k-means++", n_init: int = 1, max_iter: int = 100,
                 device=None, precision: str = "single", rng=None, progress: bool | None = False,
                 callback=None, metric_every: int = 0):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.device = device
        self.precision = precision
        self.rng = rng
        self.progress = progress
        self.callback = callback
        self.metric_every = metric_every

    def _params(self) -> dict:
        return {}

    def get_params(self, deep: bool = True) -> dict:
        import inspect

        names = [p for c in type(self).__mro__ if c is not object and "__init__" in c.__dict__
                 for p in inspect.signature(c.__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in dict.fromkeys(names)}

    def set_params(self, **params):
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ConfigError(f"invalid parameter {k!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_clusters={self.n_clusters}, {', '.join(f'{k}={v!r}' for k, v in self._params().items())})"

    def fit(self, X, y=None):
        """Cluster ``X`` (``(n_samples, n_features)``); returns ``self``."""
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise ConfigError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if int(self.n_init) != self.n_init or self.n_init < 1:
            raise ConfigError(f"n_init must be a positive integer, got {self.n_init!r}")
        if self.metric_every < 0:
            raise ConfigError(f"metric_every must be >= 0, got {self.metric_every}")
        explicit = not isinstance(self.init, str)
        problem = KMeansProblem(X, self.n_clusters, init="random" if explicit else self.init,
                                device=self.device, precision=self.precision, rng=self.rng)
        x0 = problem.to_output(problem.from_input(self.init)) if explicit else None
        res = solve(problem, algorithm=self._algorithm, n_iter=int(self.max_iter),
                    params=self._params(), starts=int(self.n_init), rng=self.rng, x0=x0,
                    callback=self.callback, progress=self.progress,
                    metric_every=int(self.metric_every), config={"n_clusters": problem.k})
        C = torch.as_tensor(res.image, device=problem.device, dtype=problem.rdtype)
        lab, m = problem.assign_all(C)
        self.cluster_centers_ = res.image
        self.labels_ = lab.cpu().numpy()
        self.inertia_ = float(m.to(torch.float64).sum())
        self.objective_ = self.inertia_ / (2 * problem.n)
        self.objectives_ = list(res.rfactors)
        self.n_iter_ = int(res.history["n_iter"][-1]) if res.history.get("n_iter") else int(self.max_iter)
        self.history_ = res.history
        self.n_features_in_ = problem.d
        self.result_ = res
        self._dtype, self._device = problem.rdtype, problem.device
        self._check_empty(problem)
        return self

    def _check_empty(self, problem) -> None:
        """Count the clusters the final assignment leaves empty; warn once when there are any.

        As scikit-learn's ``KMeans.fit`` (which warns "Number of distinct clusters (M) found
        smaller than n_clusters (K)" after the fit), data with fewer distinct points than
        ``n_clusters`` are not refused: the fit runs and the shortfall is reported.
        """
        sizes = np.bincount(self.labels_, minlength=problem.k)
        self.n_empty_clusters_ = int(np.count_nonzero(sizes == 0))
        if self.n_empty_clusters_ == 0:
            return
        m = int(torch.unique(problem.X, dim=0).shape[0])
        pts = f"{m} distinct point{'s' if m != 1 else ''}"
        why = f"only {pts}" if m < problem.k else pts
        log.warning("k-means: %d of %d clusters are empty (the data have %s)",
                    self.n_empty_clusters_, problem.k, why)

    def _check_fitted(self, X):
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")
        a = _validate_data(X)
        if a.shape[1] != self.n_features_in_:
            raise InputError(f"X has {a.shape[1]} features, but {type(self).__name__} was fitted with "
                             f"{self.n_features_in_}")
        Xt = as_tensor(a, device=self._device, dtype=self._dtype)
        return Xt, torch.as_tensor(self.cluster_centers_, device=self._device, dtype=self._dtype)

    def predict(self, X) -> np.ndarray:
        """Index of the nearest centre of each row of ``X``."""
        Xt, C = self._check_fitted(X)
        return assign(Xt, C)[0].cpu().numpy()

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).labels_

    def transform(self, X) -> np.ndarray:
        """Euclidean distances of each row of ``X`` to every centre, ``(n_samples, K)``."""
        Xt, C = self._check_fitted(X)
        return torch.cdist(Xt, C).cpu().numpy()

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    def score(self, X, y=None) -> float:
        """Opposite of the inertia of ``X`` (scikit-learn's convention: higher is better)."""
        Xt, C = self._check_fitted(X)
        return -float(assign(Xt, C)[1].to(torch.float64).sum())


class SBEKMeans(_BaseKMeans):
    """k-means by stochastic backward Euler (Pham thesis Algorithm 4; Yin et al. 2018).

    Parameters
    ----------
    n_clusters : int
        ``K``.
    batch_size : int
        Mini-batch size ``M`` (thesis: 60 on Iris, 500 or 1000 on MNIST).
    n_inner : int
        Fixed-point passes per outer step, ``imaxit`` (thesis: 5 or 10; 40 on Iris).
    max_iter : int
        Outer steps, ``omaxit`` (thesis: 10 on Iris, 100 or 150 on MNIST).
    alpha : float
        Averaging parameter (0.75 in every thesis experiment).
    beta : float
        Step decay per outer step (1/1.01, stated for Iris only).
    gamma0 : float or None
        Initial step; None means ``K`` (thesis §4.3: "we always set gamma^0 = K").
    init : {"k-means++", "random"} or (K, d) array
        Seeding; ``"random"`` picks ``K`` distinct data points (the thesis's protocol).
    n_init : int
        Independent starts; the one with the lowest objective is kept.
    device, precision, rng
        As everywhere in phasekit; ``rng`` seeds the starts and the mini-batches.
    metric_every : int
        Record the full-data objective every this many outer steps in ``history_`` (0: at the end).

    Attributes
    ----------
    cluster_centers_ : (K, d) ndarray
    labels_ : (N,) ndarray
    inertia_ : float
        Sum of squared distances to the nearest centre (scikit-learn's normalisation).
    objective_ : float
        The thesis objective ``phi = inertia_ / (2N)`` (eq. (4.4)).
    objectives_ : list of float
        Final ``phi`` of every start, best first.
    n_iter_ : int
        Outer steps run by the best start.
    history_ : dict
        ``iteration`` / ``objective`` of the best start.
    n_empty_clusters_ : int
        Centres no point is assigned to (a logged warning says so; e.g. the data have fewer
        distinct points than ``n_clusters``).
    """

    _algorithm = "sbe-kmeans"

    def __init__(self, n_clusters: int = 8, *, batch_size: int = 500, n_inner: int = 10,
                 max_iter: int = 100, alpha: float = 0.75, beta: float = 1 / 1.01,
                 gamma0: float | None = None, init="k-means++", n_init: int = 1, device=None,
                 precision: str = "single", rng=None, progress: bool | None = False, callback=None,
                 metric_every: int = 0):
        super().__init__(n_clusters, init=init, n_init=n_init, max_iter=max_iter, device=device,
                         precision=precision, rng=rng, progress=progress, callback=callback,
                         metric_every=metric_every)
        self.batch_size, self.n_inner, self.alpha, self.beta, self.gamma0 = batch_size, n_inner, alpha, beta, gamma0

    def _params(self) -> dict:
        return {"batch_size": self.batch_size, "n_inner": self.n_inner, "alpha": self.alpha,
                "beta": self.beta, "gamma0": self.gamma0}


class KMeans(_BaseKMeans):
    """Lloyd's k-means (the thesis's full-batch "EM" baseline), same interface as :class:`SBEKMeans`.

    ``max_iter`` defaults to 50 (the thesis's EM budget); ``tol`` is scikit-learn's relative
    tolerance on the squared centre shift.
    """

    _algorithm = "lloyd"

    def __init__(self, n_clusters: int = 8, *, max_iter: int = 50, tol: float = 1e-4,
                 init="k-means++", n_init: int = 1, device=None, precision: str = "single", rng=None,
                 progress: bool | None = False, callback=None, metric_every: int = 0):
        super().__init__(n_clusters, init=init, n_init=n_init, max_iter=max_iter, device=device,
                         precision=precision, rng=rng, progress=progress, callback=callback,
                         metric_every=metric_every)
        self.tol = tol

    def _params(self) -> dict:
        return {"tol": self.tol}


class MiniBatchKMeans(_BaseKMeans):
    """Sculley's mini-batch k-means (the thesis's "mb-EM"); ``max_iter`` counts mini-batch steps."""

    _algorithm = "minibatch-kmeans"

    def __init__(self, n_clusters: int = 8, *, batch_size: int = 500, max_iter: int = 100,
                 init="k-means++", n_init: int = 1, device=None, precision: str = "single", rng=None,
                 progress: bool | None = False, callback=None, metric_every: int = 0):
        super().__init__(n_clusters, init=init, n_init=n_init, max_iter=max_iter, device=device,
                         precision=precision, rng=rng, progress=progress, callback=callback,
                         metric_every=metric_every)
        self.batch_size = batch_size

    def _params(self) -> dict:
        return {"batch_size": self.batch_size}


ESTIMATORS = {"sbe": SBEKMeans, "lloyd": KMeans, "minibatch": MiniBatchKMeans}


# --------------------------------------------------------------------------- data
def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """Fisher's Iris data (150 x 4, float64) and the species labels (0, 1, 2).

    Shipped with phasekit (``phasekit/learn/data/iris.csv``): Fisher (1936) / Anderson's
    measurements, the version of Fisher's paper (as in R and scikit-learn; the UCI copy has two
    wrong points).  The data are facts in the public domain; UCI distributes them under CC BY 4.0
    (Fisher, R. A. (1936). Iris. UCI Machine Learning Repository, doi:10.24432/C56C76).
    """
    from importlib import resources

    text = resources.files("phasekit.learn").joinpath("data/iris.csv").read_text(encoding="ascii")
    a = np.loadtxt(text.splitlines(), delimiter=",", comments="#", skiprows=0)
    return a[:, :4].astype(np.float64), a[:, 4].astype(np.int64)
