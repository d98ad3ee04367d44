"""Public CDI entry points: :func:`reconstruct` and one function per algorithm.

Data positional, options keyword-only; every function returns a :class:`~phasekit.run.ReconResult`.
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..core.errors import ConfigError
from ..registry import get_algorithm
from ..run import ReconResult, Stage, parse_schedule, run
from .problem import CDIProblem
from .shrinkwrap import ShrinkWrap


def _validate_params(spec, params: dict) -> dict:
    try:
        cfg = spec.config(**params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        raise ConfigError(f"{spec.name}: invalid parameter {loc!r}: {err.get('msg')}") from None
    return {k: getattr(cfg, k) for k in params}


def build_stages(algorithm: str | None, n_iter: int | None, schedule: str | list | None,
                 params: dict) -> list[Stage]:
    """Turn (algorithm, n_iter) or a schedule plus flat ``params`` into validated stages.

    Each flat parameter goes to every stage whose config has that field; a parameter no stage
    accepts is a :class:`ConfigError`.  ``params`` may also hold per-algorithm dicts
    (``{"hio": {"beta": 0.8}}``).
    """
    if schedule is not None:
        stages = parse_schedule(schedule) if isinstance(schedule, str) else [
            s if isinstance(s, Stage) else Stage(*s) for s in schedule]
    else:
        spec = get_algorithm(algorithm or "hio")
        n = spec.default_n_iter if n_iter is None else int(n_iter)
        if n < 1:
            raise ConfigError(f"n_iter must be >= 1, got {n_iter}")
        stages = [Stage(spec.name, n)]
    specs = [get_algorithm(s.algorithm) for s in stages]
    per_alg = {k.lower(): v for k, v in params.items() if isinstance(v, dict)}
    flat = {k: v for k, v in params.items() if not isinstance(v, dict)}
    used = set()
    out = []
    for st, spec in zip(stages, specs):
        fields = spec.config.model_fields
        p = {k: v for k, v in flat.items() if k in fields}
        used |= set(p)
        for alias in (spec.name, *spec.aliases, st.algorithm):
            if alias in per_alg:
                p.update(per_alg[alias])
        p.update(st.params)
        out.append(Stage(spec.name, st.n_iter, _validate_params(spec, p)))
    unused = set(flat) - used
    if unused:
        known = sorted({f for sp in specs for f in sp.config.model_fields})
        raise ConfigError(f"parameter(s) {', '.join(sorted(unused))} not accepted by "
                          f"{', '.join(sorted({s.algorithm for s in out}))} "
                          f"(accepted: {', '.join(known) or 'none'})")
    return out


def reconstruct(data, support=None, *, algorithm: str = "hio", n_iter: int | None = None,
                schedule: str | None = None, mask=None, real: bool = False, positive: bool = False,
                starts: int = 1, rng=None, x0=None, shrinkwrap: ShrinkWrap | dict | bool | None = None,
                callback=None, progress: bool | None = None, metric_every: int = 1,
                keep_best: bool | None = None, device=None, precision: str = "single",
                checkpoint=None, checkpoint_every: int = 100, resume=None,
                clip_negative: bool = False, **params: Any) -> ReconResult:
    """Reconstruct an object from one far-field diffraction pattern.

    Parameters
    ----------
    data : array, CDIProblem or DiffractionData
        Measured intensities (centred, zero frequency at ``N // 2``), or a prepared problem.
    support : bool array, optional
        Object support (centred).  Default: thresholded autocorrelation (use shrink-wrap to
        tighten it).
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
        Random starts (best-of-N by final R-factor) and their seed.
    shrinkwrap : ShrinkWrap, dict of its parameters, True (defaults) or None.
    callback, progress, metric_every, keep_best, checkpoint, checkpoint_every, resume
        See :func:`phasekit.run.run`.
    device, precision : str
        ``"cpu"`` / ``"cuda"``; ``"single"`` / ``"double"``.
    **params
        Algorithm parameters (``beta``, ``sigma``, ``n_stages`` ...), validated strictly.
    """
    if isinstance(data, CDIProblem):
        problem = data
    else:
        if hasattr(data, "intensity"):  # DiffractionData from phasekit.io
            mask = data.mask if mask is None else mask
            support = data.support if support is None and getattr(data, "support", None) is not None else support
            data = data.intensity
        problem = CDIProblem.from_arrays(data, support, mask, real=real, positive=positive, device=device,
                                         precision=precision, clip_negative=clip_negative)
    stages = build_stages(algorithm if schedule is None else None, n_iter, schedule, params)
    sw = shrinkwrap
    if sw is True:
        sw = ShrinkWrap()
    elif isinstance(sw, dict):
        try:
            sw = ShrinkWrap(**sw)
        except ValidationError as exc:
            raise ConfigError(f"shrinkwrap: {exc.errors()[0].get('msg')}") from None
    elif sw is False:
        sw = None
    config = {
        "algorithm": stages[0].algorithm if len(stages) == 1 else None,
        "schedule": [[s.algorithm, s.n_iter, s.params] for s in stages],
        "starts": starts, "seed": rng if isinstance(rng, (int, type(None))) else str(rng),
        "real": problem.real, "positive": problem.positive, "metric_every": metric_every,
        "keep_best": keep_best, "precision": problem.precision, "device": str(problem.device),
        "shrinkwrap": sw.to_dict() if sw is not None else None, "shape": list(problem.shape),
    }
    result = run(problem, stages, starts=starts, rng=rng, x0=x0, callback=callback, progress=progress,
                 metric_every=metric_every, keep_best=keep_best, shrinkwrap=sw, checkpoint=checkpoint,
                 checkpoint_every=checkpoint_every, resume=resume, config=config)
    result.mask = problem.to_centred(problem.measured).astype(bool)
    return result


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
