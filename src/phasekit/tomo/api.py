"""Public tomography entry point :func:`reconstruct`: RESIRE, SIRT, GENFIRE-lite and FBP (a
registered one-step algorithm), all through the engine's :func:`~phasekit.engine.solve`."""
from __future__ import annotations


import numpy as np

from ..core.errors import ConfigError
from ..engine import ReconResult, get_algorithm, solve
from .problem import TomoProblem

__all__ = ["reconstruct", "DiscrepancyStop", "ITERATIVE"]

ITERATIVE = ("resire", "sirt", "genfire")


class DiscrepancyStop:
    """Callback for :func:`phasekit.engine.run`: stop when ``R_F <= tau`` (discrepancy principle,
    thesis line 925: iterate until the R-factor reaches the level expected from the noise).

    ``tau`` is given directly, or estimated from a noise level (the R_F of the noise alone).
    """

    def __init__(self, tau: float):
        if not (tau > 0):
            raise ConfigError(f"discrepancy level tau must be > 0, got {tau}")
        self.tau = float(tau)
        self.stopped_at = None

    def __call__(self, state):
        rf = state.metrics.get("R_F")
        if rf is not None and rf <= self.tau:
            self.stopped_at = state.iteration
            raise StopIteration


def reconstruct(projections, angles=None, *, algorithm: str = "resire", n_iter: int | None = None,
                vol_shape=None, mask=None, support=None, positive: bool = True,
                oversampling=2.0, stop_rf: float | None = None, callback=None,
                progress: bool | None = None, metric_every: int = 1, device=None,
                precision: str = "single", filter: str | None = None, angle_weights: str | None = None,
                x0=None, center=None, center_offset: float = 0.0, checkpoint=None,
                checkpoint_every: int = 100, resume=None, **params) -> ReconResult:
    """Reconstruct a volume from a tilt series.

    Parameters
    ----------
    projections : array (n, Dx, Dy), TomoProblem, or TiltSeries
    angles : tilt angles (n,) or ZYX Euler triples (n, 3) in degrees
    algorithm : {"resire", "sirt", "genfire", "fbp"}
    n_iter : int
        Iterations (default: the registry default, 400 for RESIRE).
    vol_shape, mask, support, positive, oversampling, device, precision
        See :meth:`TomoProblem.from_arrays`.
    center, center_offset : float, optional
        Rotation axis on the detector ``x`` (pixels), or its offset from ``Dx // 2``; see
        :meth:`TomoProblem.from_arrays`.
    stop_rf : float, optional
        Discrepancy-principle stop: end when R_F falls to this level.
    filter, angle_weights : str
        FBP filter (``ramp``, ``hann``, ``shepp-logan``, ``cosine``) and angular weights
        (``uniform`` = pi/n as ASTRA and scikit-image, or ``spacing``); see :func:`.fbp.fbp`.
    checkpoint, checkpoint_every, resume
        The engine's checkpoints (:func:`phasekit.engine.solve`): written atomically every
        ``checkpoint_every`` iterations to ``checkpoint``; ``resume`` continues a run from one
        written by the same call, with the uninterrupted run's result to the bit.
    **params
        Algorithm parameters (RESIRE: ``step``, ``projector``; SIRT: ``relaxation``,
        ``positive``; GENFIRE: ``cutoff``, ``rfree_fraction``, ``rfree_seed``; GENFIRE's array
        oversampling is ``oversampling`` unless given separately in ``params``).
    """
    if isinstance(projections, TomoProblem):
        problem = projections
    else:
        if hasattr(projections, "projections"):  # TiltSeries
            ts = projections
            angles = ts.angles if angles is None else angles
            mask = ts.mask if mask is None else mask
            vol_shape = ts.vol_shape if vol_shape is None else vol_shape
            support = getattr(ts, "support", None) if support is None else support
            projections = ts.projections
        if angles is None:
            raise ConfigError("angles are required")
        problem = TomoProblem.from_arrays(projections, angles, vol_shape=vol_shape, mask=mask,
                                          support=support, positive=positive,
                                          oversampling=oversampling, device=device,
                                          precision=precision, center=center,
                                          center_offset=center_offset)
    spec = get_algorithm(algorithm, "tomo")
    for name, value in (("filter", filter), ("angle_weights", angle_weights)):
        if value is None:
            continue
        if spec.iterative:
            raise ConfigError(f"{name} is a parameter of fbp only, not of {spec.name}")
        params.setdefault(name, value)
    if spec.name == "genfire" and np.isscalar(oversampling):
        # one oversampling for GENFIRE's array and the problem's Fourier-slice projector
        params.setdefault("oversampling", float(oversampling))
    # the problem checked its own memory; the algorithm adds its projectors' (GENFIRE its grid)
    from ..core.resources import check_memory
    from .memory import estimate_tomo_reconstruction

    check_memory(estimate_tomo_reconstruction(
        problem.shape, problem.n_proj, problem.det_shape, oversampling=problem.oversampling,
        precision=problem.precision, algorithm=spec.name, projector=params.get("projector", "hybrid"),
        grid_oversampling=params.get("oversampling")),
        f"{spec.name} on a {'x'.join(map(str, problem.shape))} volume from {problem.n_proj} projections")
    config = {"n_proj": problem.n_proj, "det_shape": list(problem.det_shape),
              "positive": problem.positive, "oversampling": problem.oversampling,
              "precision": problem.precision, "params": dict(params), "stop_rf": stop_rf,
              "center": problem.det_shape[0] // 2 + problem.center_offset,
              "center_offset": problem.center_offset}
    cbs = []
    stopper = None
    if stop_rf is not None:
        stopper = DiscrepancyStop(stop_rf)
        cbs.append(stopper)
    if callback is not None:
        cbs.append(callback)

    def _cb(state):
        for c in cbs:
            c(state)

    result = solve(problem, algorithm=spec.name, n_iter=n_iter, params=params, starts=1, rng=0,
                   x0=x0, callback=_cb if cbs else None, progress=progress,
                   metric_every=metric_every, config=config, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, resume=resume)
    if stopper is not None and stopper.stopped_at is not None:
        result.message = f"discrepancy principle: R_F <= {stop_rf:g} at iteration {stopper.stopped_at}"
    return result
