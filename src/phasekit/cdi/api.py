"""Public CDI entry points: :func:`reconstruct` and one function per algorithm.

Data positional, options keyword-only; every function returns a :class:`~phasekit.engine.ReconResult`.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..core.errors import ConfigError
from ..engine import ReconResult, get_algorithm, solve
from .discrepancy import grow_support, poisson_noise_rfactor
from .problem import CDIProblem
from .shrinkwrap import ShrinkWrap, ShrinkWrapConfig

#: algorithms that get an error-reduction tail in the default recipe (their iterate is not a
#: fixed point of the constraints; ER polishes it: PyNX's and cohere's HIO/RAAR-then-ER chains)
ER_TAIL_ALGORITHMS = ("hio", "raar")
#: fraction of the iterations given to the ER tail in the default recipe
DEFAULT_ER_TAIL = 0.2
#: shrink-wrap thresholds of the default recipe's starts (start i uses the i-th); the start with
#: the lowest final R-factor is reported (docs/cdi.md "Default recipe": no single threshold
#: suits both compact and faint-edged objects, and the final R_F tells which one fitted)
DEFAULT_START_THRESHOLDS = (0.1, 0.05)
#: rounds of the default recipe's starts at most (a further round only while the best R-factor
#: is above ``DISCREPANCY_TOL`` times the noise level; docs/cdi.md "Default recipe")
DEFAULT_MAX_ROUNDS = 3
#: the discrepancy principle's tolerance: R_F within this factor of the noise level is "fitted"
DISCREPANCY_TOL = 1.15
#: the fixed-support polish of each support-growth step
GROWTH_POLISH = "HIO:150,ER:50"


def default_schedule(algorithm: str, n_iter: int | None, er_tail: float = DEFAULT_ER_TAIL) -> str | None:
    """The chain of the default recipe for ``algorithm`` alone, or None when it runs as given.

    ``hio`` / ``raar`` with ``n`` iterations become ``"HIO:(n - t),ER:t"`` with
    ``t = round(er_tail * n)``; other algorithms (and ``er_tail=0``) are left alone.

    Examples
    --------
    >>> default_schedule("hio", 1000)
    'hio:800,er:200'
    >>> default_schedule("gps-r", 1000) is None
    True
    """
    if not 0 <= er_tail < 1:
        raise ConfigError(f"er_tail must be in [0, 1), got {er_tail}")
    spec = get_algorithm(algorithm, "cdi")
    if spec.name not in ER_TAIL_ALGORITHMS or er_tail == 0:
        return None
    n = spec.default_n_iter if n_iter is None else int(n_iter)
    tail = int(round(er_tail * n))
    if n < 2 or tail < 1 or tail >= n:
        return None
    return f"{spec.name}:{n - tail},er:{tail}"


def reconstruct(data, support=None, *, algorithm: str = "hio", n_iter: int | None = None,
                schedule: str | None = None, mask=None, real: bool = False, positive: bool = False,
                starts: int | None = None, rng=None, x0=None, shrinkwrap: ShrinkWrap | dict | bool | None = None,
                callback=None, progress: bool | None = None, metric_every: int = 1,
                keep_best: bool | None = None, device=None, precision: str = "single",
                checkpoint=None, checkpoint_every: int = 100, resume=None,
                clip_negative: bool = False, er_tail: float | None = None, rfft: bool = True,
                batch_starts: bool | None = None, refine_support: bool | None = None,
                max_rounds: int | None = None, **params: Any) -> ReconResult:
    """Reconstruct an object from one far-field diffraction pattern.

    Parameters
    ----------
    data : array, CDIProblem or DiffractionData
        Measured intensities (centred, zero frequency at ``N // 2``), or a prepared problem.
    support : bool array, optional
        Object support (centred).  Default: the *default recipe* for a support not known in
        advance (docs/cdi.md): the autocorrelation support
        (:func:`~phasekit.cdi.shrinkwrap.autocorrelation_support`), shrink-wrap on and an ER
        tail after HIO / RAAR.
    algorithm : str
        Registry name (``er``, ``hio``, ``raar``, ``oss``, ``gps-r``, ``gps-f``); ignored if
        ``schedule`` is given.
    n_iter : int
        Iterations (default: the algorithm's default, e.g. 1000 for GPS).
    schedule : str
        A chain, e.g. ``"HIO:800,ER:200"`` or ``"(HIO:50,ER:10)*5"``.
    mask : bool array, optional
        True = measured pixel.
    real, positive : bool
        Object constraints.
    starts, rng : int
        Random starts (best-of-N by final R-factor) and their seed.  None (default): 1, or
        ``len(DEFAULT_START_THRESHOLDS)`` (2) in the default recipe, one per shrink-wrap
        threshold.
    shrinkwrap : ShrinkWrap, dict of its parameters, True, False or None
        None (default): shrink-wrap with its defaults when no support is given, none otherwise;
        True: the defaults; False: off.
    er_tail : float, optional
        Fraction of ``n_iter`` run as error reduction after ``hio`` / ``raar`` when no
        ``schedule`` is given.  None (default): 0.2 when no support is given, 0 otherwise.
    callback, progress, metric_every, keep_best, checkpoint, checkpoint_every, resume
        See :func:`phasekit.engine.run`.
    device, precision : str
        ``"cpu"`` / ``"cuda"``; ``"single"`` / ``"double"``.
    rfft : bool
        With ``real``: run ER / HIO / RAAR / OSS on real FFTs and the Hermitian half spectrum
        (default; same iterates within rounding, about half the time).  False forces the complex
        path.  Ignored when ``data`` is a prepared problem (set its ``rfft``).
    batch_starts : bool or None
        Run the starts as one batched ``(starts, H, W)`` problem (ER, HIO, RAAR; same results as
        one after another within rounding, docs/cdi.md "Batched starts").  None (default): when
        possible; ``result.config["batched_starts"]`` records whether it was used.
    refine_support : bool or None
        Support growth by the discrepancy principle after the run
        (:func:`~phasekit.cdi.discrepancy.grow_support`): while R_F is above 1.15 times the
        data's Poisson noise level, the support is enlarged step by step and the estimate
        polished (``HIO:150,ER:50``); the smallest support that fits is kept.  None (default): on
        in the default recipe (no support given, shrink-wrap on), off otherwise.
    max_rounds : int or None
        Rounds of ``starts`` at most: a further round (new random starts) runs only while the
        best R_F is above 1.15 times the noise level.  None (default): 3 in the default recipe
        when ``starts`` is not given, 1 otherwise.  Data that are not photon counts have no
        noise level: one round, and growth tries every step and keeps the lowest R_F.
    **params
        Algorithm parameters (``beta``, ``sigma``, ``n_stages`` ...), validated strictly.

    Examples
    --------
    The default recipe on a simulated isolated object (no support given)::

        from phasekit.sim import simulate_cdi
        sim = simulate_cdi("blobs", size=128, oversampling=4, photons=1e9, beamstop=2, rng=0)
        res = reconstruct(sim.intensity, mask=sim.mask, rng=0)
        res.config["discrepancy"]["noise_rfactor"], res.rfactor
    """
    starts_given = starts is not None
    auto_support = False
    if isinstance(data, CDIProblem):
        problem = data
    else:
        if hasattr(data, "intensity"):  # DiffractionData from phasekit.io
            mask = data.mask if mask is None else mask
            support = data.support if support is None and getattr(data, "support", None) is not None else support
            data = data.intensity
        auto_support = support is None
        problem = CDIProblem.from_arrays(data, support, mask, real=real, positive=positive, device=device,
                                         precision=precision, clip_negative=clip_negative, rfft=rfft)
    sw = shrinkwrap
    if sw is None and auto_support:
        sw = ShrinkWrap(start_thresholds=DEFAULT_START_THRESHOLDS)
        if starts is None:
            starts = len(DEFAULT_START_THRESHOLDS)
    if sw is True:
        sw = ShrinkWrap()
    elif isinstance(sw, dict):
        unknown = sorted(set(map(str, sw)) - set(ShrinkWrapConfig.model_fields))
        if unknown:
            raise ConfigError(f"shrinkwrap: unknown parameter(s) {', '.join(unknown)} (accepted: "
                              f"{', '.join(ShrinkWrapConfig.model_fields)})")
        try:
            sw = ShrinkWrap(**sw)
        except ValidationError as exc:
            raise ConfigError(f"shrinkwrap: {exc.errors()[0].get('msg')}") from None
    elif sw is False:
        sw = None
    elif sw is not None and not isinstance(sw, ShrinkWrap):
        raise ConfigError(f"shrinkwrap must be a ShrinkWrap, a dict of its parameters, True, False or "
                          f"None, got {type(sw).__name__}")
    if starts is None:  # one start per shrink-wrap threshold of the default recipe, else one
        starts = len(sw.cfg.start_thresholds) if auto_support and sw is not None \
            and sw.cfg.start_thresholds else 1
    if er_tail is None:
        er_tail = DEFAULT_ER_TAIL if auto_support else 0.0
    if schedule is None and er_tail:
        schedule = default_schedule(algorithm, n_iter, er_tail)
    config = {"real": problem.real, "positive": problem.positive, "precision": problem.precision,
              "rfft": problem.use_rfft,
              "shrinkwrap": sw.to_dict() if sw is not None else None,
              "support_source": "autocorrelation" if auto_support else "given",
              "er_tail": float(er_tail)}
    result = solve(problem, algorithm=algorithm, n_iter=n_iter, schedule=schedule, params=params,
                   starts=starts, rng=rng, x0=x0, callback=callback, progress=progress,
                   metric_every=metric_every, keep_best=keep_best, constraint_update=sw,
                   checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                   config=config, batch_starts=batch_starts)
    result.mask = problem.to_centred(problem.measured).astype(bool)
    default_recipe = auto_support and sw is not None
    if refine_support is None:
        refine_support = default_recipe
    if max_rounds is None:
        max_rounds = DEFAULT_MAX_ROUNDS if default_recipe and not starts_given and x0 is None else 1
    if isinstance(max_rounds, bool) or int(max_rounds) != max_rounds or max_rounds < 1:
        raise ConfigError(f"max_rounds must be an integer >= 1, got {max_rounds!r}")
    if auto_support:  # records the noise level; grows and reruns as asked
        result = _discrepancy_rounds(
            result, data, mask, refine=bool(refine_support), max_rounds=int(max_rounds),
            make_problem=lambda sup: CDIProblem.from_arrays(
                data, sup, mask, real=real, positive=positive, device=device, precision=precision,
                clip_negative=clip_negative, rfft=rfft),
            rerun=lambda prob, rng_r: solve(
                prob, algorithm=algorithm, n_iter=n_iter, schedule=schedule, params=params,
                starts=starts, rng=rng_r, x0=x0, callback=callback, progress=progress,
                metric_every=metric_every, keep_best=keep_best, constraint_update=sw,
                config=config, batch_starts=batch_starts),
            rng=rng, progress=progress)
        result.mask = problem.to_centred(problem.measured).astype(bool)
    return result


def _round_rng(rng, r: int):
    """The seed of round ``r`` (round 0 is ``rng`` itself)."""
    if r == 0 or rng is None:
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.SeedSequence([int(rng), int(r)])
    if isinstance(rng, np.random.SeedSequence):
        return rng.spawn(r)[-1]
    return rng  # a Generator continues its own stream


def _discrepancy_rounds(result: ReconResult, data, mask, *, refine: bool, max_rounds: int,
                        make_problem, rerun, rng, progress) -> ReconResult:
    """Support growth and further rounds of starts by the discrepancy principle (docs/cdi.md)."""
    intensity = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    intensity = np.clip(np.nan_to_num(intensity.astype(float)), 0, None)
    mask_np = None if mask is None else np.asarray(mask, bool)
    noise_rf = poisson_noise_rfactor(intensity, mask_np)
    target = DISCREPANCY_TOL * noise_rf if np.isfinite(noise_rf) else -np.inf
    if not np.isfinite(noise_rf):
        max_rounds = 1
    t0 = time.perf_counter()
    main_total = float((result.timings or {}).get("total_s", 0.0))  # round 0, run before this step
    rounds, best, best_i = [], None, 0
    for r in range(max_rounds):
        res = result if r == 0 else rerun(make_problem(None), _round_rng(rng, r))
        img, sup, rf, steps = res.image, res.support, float(res.rfactor), []
        if refine and sup is not None:
            rng_r = _round_rng(rng, r)

            def polish(cand, x0, _rng=rng_r):
                p = solve(make_problem(cand), schedule=GROWTH_POLISH, starts=1, rng=_rng, x0=x0,
                          progress=False, metric_every=0)
                return p.image, float(p.rfactor)

            img, sup, rf, steps = grow_support(polish, img, sup, rf, noise_rf, tol=DISCREPANCY_TOL)
        rounds.append({"round": r, "rfactor_before": float(res.rfactor), "rfactor": rf,
                       "support_area_before": int(np.count_nonzero(res.support))
                       if res.support is not None else None,
                       "support_area": int(np.count_nonzero(sup)) if sup is not None else None,
                       "growth": steps})
        if best is None or rf < best[2]:
            best, best_i = (res, img, rf, sup), r
        if rf <= target:
            break
    res, img, rf, sup = best
    res.image = img
    if res.images:
        res.images = [img] + list(res.images[1:])
    res.rfactors = [rf] + list(res.rfactors[1:])
    res.support = sup
    res.config = dict(res.config or {})
    res.config["discrepancy"] = {"noise_rfactor": float(noise_rf), "tol": DISCREPANCY_TOL,
                                 "refine_support": refine, "max_rounds": max_rounds,
                                 "rounds_run": len(rounds), "chosen_round": best_i,
                                 "rounds": rounds}
    res.timings = dict(res.timings or {})
    res.timings["discrepancy_s"] = time.perf_counter() - t0
    # the whole call: round 0 plus this step (further rounds and polishes); a later round's own
    # total is inside discrepancy_s, so it is not added twice
    res.timings["total_s"] = main_total + res.timings["discrepancy_s"]
    return res


def _make(name: str, doc: str):
    def fn(intensity, support=None, **kwargs) -> ReconResult:
        return reconstruct(intensity, support, algorithm=name, **kwargs)

    fn.__name__ = name.replace("-", "_")
    fn.__doc__ = doc + "\n\nSee :func:`reconstruct` for the common keyword arguments."
    return fn


er = _make("er", "Error reduction (Fienup 1982): ``x <- P_C P_m x``.")
hio = _make("hio", "Hybrid input-output (Fienup 1982), ``beta=0.9`` by default (Marchesini 2007 eq. (21)).")
raar = _make("raar", "RAAR (Luke 2005), ``beta=0.9`` by default.")
oss = _make("oss", "Oversampling smoothness (Rodriguez et al. 2013): 10 filter stages, alpha 2N -> 0.2N.")
gps_r = _make("gps-r", "GPS-R (Pham thesis Algorithm 1): PDHG with real-space smoothing of the dual.")
gps_f = _make("gps-f", "GPS-F (Pham thesis Algorithm 2): PDHG with Fourier-space smoothing of the dual.")
gps = gps_r
so2d = _make("so2d", "SO2D (Marchesini 2007): HIO with (alpha, beta) from the 2-D subspace saddle point, "
                     "trust-region SR1 (docs/saddle.md).")
so4d = _make("so4d", "SO4D (Marchesini 2007): the 4-D subspace saddle point with the previous pair of "
                     "directions (docs/saddle.md).")
rk = _make("rk", "Randomized Kaczmarz (Xian et al. 2022 eqs. 9-10); ``n_iter`` counts epochs.")
vrrk = _make("vrrk", "VR-RK (Xian et al. 2022 Algorithm 1, canonical form); ``n_iter`` counts epochs.")
vrrk_l2 = _make("vrrk-l2", "VR-RK with the L2 term of eq. (13); ``n_iter`` counts epochs.")
vrrk_l1 = _make("vrrk-l1", "VR-RK with the L1 term of eq. (17) (prox-SVRG); ``n_iter`` counts epochs.")
cprime = _make("cprime", "C-PRIME / MM (Xian et al. 2022 eqs. 17-19): ER followed by soft-thresholding "
                         "at ``C = 1``.")
