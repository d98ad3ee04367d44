"""Public CDI entry points: :func:`reconstruct` and one function per algorithm.

Data positional, options keyword-only; every function returns a :class:`~phasekit.engine.ReconResult`.
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..core.errors import ConfigError
from ..engine import ReconResult, get_algorithm, solve
from .problem import CDIProblem
from .shrinkwrap import ShrinkWrap

#: algorithms that get an error-reduction tail in the default recipe (their iterate is not a
#: fixed point of the constraints; ER polishes it: PyNX's and cohere's HIO/RAAR-then-ER chains)
ER_TAIL_ALGORITHMS = ("hio", "raar")
#: fraction of the iterations given to the ER tail in the default recipe
DEFAULT_ER_TAIL = 0.2
#: shrink-wrap thresholds of the default recipe's starts (start i uses the i-th); the start with
#: the lowest final R-factor is reported (docs/cdi.md "Default recipe": no single threshold
#: suits both compact and faint-edged objects, and the final R_F tells which one fitted)
DEFAULT_START_THRESHOLDS = (0.1, 0.05)


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
                **params: Any) -> ReconResult:
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
    **params
        Algorithm parameters (``beta``, ``sigma``, ``n_stages`` ...), validated strictly.
    """
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
    if starts is None:
        starts = 1
    if sw is True:
        sw = ShrinkWrap()
    elif isinstance(sw, dict):
        try:
            sw = ShrinkWrap(**sw)
        except ValidationError as exc:
            raise ConfigError(f"shrinkwrap: {exc.errors()[0].get('msg')}") from None
    elif sw is False:
        sw = None
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
                   config=config)
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
