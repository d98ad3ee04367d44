"""Public ptychography entry point :func:`reconstruct` and one function per engine.

Data positional, options keyword-only; every function returns a :class:`~phasekit.engine.ReconResult`
whose ``image`` is the object and ``probe`` the probe (unitary-FFT scale).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..engine import ReconResult, solve
from .problem import PtychoProblem


def reconstruct(data, positions=None, *, algorithm: str = "crisp", n_iter: int | None = None,
                schedule: str | None = None, probe=None, obj=None, object_shape=None, mask=None,
                fft_norm: str = "ortho", probe_energy_match: bool | None = None, rng=0,
                callback=None, progress: bool | None = None, metric_every: int = 1, device=None,
                precision: str = "single", checkpoint=None, checkpoint_every: int = 100,
                resume=None, clip_negative: bool = False, **params: Any) -> ReconResult:
    """Reconstruct object and probe from a ptychographic scan.

    Parameters
    ----------
    data : array (N, My, Mx), PtychoProblem or PtychoData (from :func:`phasekit.io.read_ptycho`)
        Measured frames (centred counts).
    positions : array (N, 2)
        Scan positions in object pixels ((y, x) top-left corners); taken from ``data`` when it
        is a :class:`~phasekit.io.ptycho.PtychoData`.
    algorithm : str
        ``epie``, ``rpie``, ``mpie`` or ``crisp`` (or a ``schedule`` such as ``"epie:50,crisp:250"``).
    n_iter : int
        Iterations (full sweeps); default 300.
    probe, obj, object_shape, mask, fft_norm, probe_energy_match, clip_negative
        See :meth:`PtychoProblem.from_arrays`.
    rng : int or Generator
        Seed of the per-sweep random position orders (the same seed gives the same orders to
        every engine, as the papers' comparisons require).
    callback, progress, metric_every, checkpoint, checkpoint_every, resume
        See :func:`phasekit.engine.run`.
    **params
        Engine parameters (``alpha_o``, ``gamma_p``, ``lambda_o``, ``clip``, ``c``, ``xi``, ...),
        validated strictly.
    """
    if isinstance(data, PtychoProblem):
        problem = data
    else:
        if hasattr(data, "intensities"):  # PtychoData / SimulatedPtycho
            positions = data.positions_px() if positions is None and hasattr(data, "positions_px") \
                else (data.positions if positions is None else positions)
            mask = getattr(data, "mask", None) if mask is None else mask
            truth = getattr(data, "obj", None)
            if truth is None:
                truth = getattr(data, "truth", None)
            if object_shape is None and obj is None and truth is not None:
                object_shape = np.asarray(truth).shape  # the simulated object's frame
            data = data.intensities
        if positions is None:
            raise ConfigError("positions are required (N, 2) in object pixels")
        problem = PtychoProblem.from_arrays(data, positions, probe=probe, obj=obj,
                                            object_shape=object_shape, mask=mask,
                                            fft_norm=fft_norm, probe_energy_match=probe_energy_match,
                                            device=device, precision=precision,
                                            clip_negative=clip_negative)
    config = {"fft_norm": problem.fft_norm, "precision": problem.precision,
              "object_shape": list(problem.shape), "probe_shape": list(problem.probe_shape),
              "n_positions": problem.n_positions}
    result = solve(problem, algorithm=algorithm, n_iter=n_iter, schedule=schedule, params=params,
                   starts=1, rng=rng, callback=callback, progress=progress,
                   metric_every=metric_every, keep_best=False, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, resume=resume, config=config)
    result.mask = None
    result.extras = {"illumination": problem.to_centred(problem.illuminated).astype("uint8")}
    return result


def _make(name: str, doc: str):
    def fn(data, positions=None, **kwargs) -> ReconResult:
        return reconstruct(data, positions, algorithm=name, **kwargs)

    fn.__name__ = name
    fn.__doc__ = doc + "\n\nSee :func:`reconstruct` for the common keyword arguments."
    return fn


epie = _make("epie", "ePIE (Maiden & Rodenburg 2009): ``alpha_o``, ``alpha_p``, ``probe_start``.")
rpie = _make("rpie", "rPIE (Maiden, Johnson & Li 2017): ``gamma_o``, ``gamma_p``.")
mpie = _make("mpie", "mPIE (Maiden, Johnson & Li 2017): rPIE + momentum ``eta_o``, ``eta_p``.")
crisp = _make("crisp", "CRISP (J. Appl. Cryst. 57, 2024): ``lambda_o``, ``lambda_p``, ``clip``, "
                       "``c``, ``xi_rule``, ``xi``, ``kappa``.")
