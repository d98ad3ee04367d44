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
from .sim import SimulatedPtycho


def reconstruct(data, positions=None, *, algorithm: str = "crisp", n_iter: int | None = None,
                schedule: str | None = None, probe=None, obj=None, object_shape=None, mask=None,
                fft_norm: str = "ortho", probe_energy_match: bool | None = None, rng=0,
                callback=None, progress: bool | None = None, metric_every: int = 1, device=None,
                precision: str = "single", checkpoint=None, checkpoint_every: int = 100,
                resume=None, clip_negative: bool = False, propagation: str = "farfield",
                wavelength: float | None = None, pixel_size=None, distance: float | None = None,
                n_modes: int | None = None, refine_positions=False, background=False,
                near_field: float | None = None, **params: Any) -> ReconResult:
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
    n_iter : int, optional
        Iterations (full sweeps); default: the algorithm's (300; PINE 200).
    probe, obj, object_shape, mask, fft_norm, probe_energy_match, clip_negative
        See :meth:`PtychoProblem.from_arrays`.
    propagation, wavelength, pixel_size, distance
        Detector model: ``"farfield"`` (default), or near field ``"fresnel"`` / ``"angular"``
        with the wavelength, the object pixel and the (effective, Fresnel-scaled) propagation
        distance in metres (:mod:`phasekit.operators.propagation`).
    n_modes : int
        Probe modes (mixed state); ``result.probe`` is then (K, My, Mx), strongest first.
    refine_positions : bool or int
        Refine the positions from this sweep (``True``: 10); the refined positions (N, 2),
        object pixels as the input, are ``result.extras["positions"]``.
    background : bool or array (My, Mx)
        ``True``: fit an additive detector background (``result.extras["background"]``,
        counts, centred like the frames); an array: a known one.
    rng : int or Generator
        Seed of the per-sweep random position orders (the same seed gives the same orders to
        every engine, as the papers' comparisons require).
    callback, progress, metric_every, checkpoint, checkpoint_every, resume
        See :func:`phasekit.engine.run`.
    near_field : float, optional
        For a scan read from a file (:func:`phasekit.io.read_ptycho`): the focus-to-sample
        distance in metres (``inf`` for a parallel beam), as ``--near-field`` on the command
        line: the object pixel, the Fresnel-scaled propagation distance and the positions come
        from the file's geometry (:func:`phasekit.ptycho.geometry.scan_geometry`).
    **params
        Engine parameters (``alpha_o``, ``gamma_p``, ``lambda_o``, ``clip``, ``c``, ``xi``, ...),
        validated strictly.

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.ptycho import raster_scan, object_shape_for, simulate_ptycho, reconstruct
    >>> from phasekit.ptycho.probe import fzp_probe
    >>> pos = raster_scan(4, step=6, margin=1)
    >>> shape = object_shape_for(pos, (32, 32), margin=1)
    >>> sim = simulate_ptycho(np.ones(shape, complex), fzp_probe(32, 16, 12), pos, dose=None)
    >>> res = reconstruct(sim, algorithm="epie", n_iter=2, n_modes=2, progress=False)
    >>> res.probe.shape
    (2, 32, 32)
    """
    if isinstance(data, PtychoProblem):
        problem = data
        given = [k for k, v, d in (("propagation", propagation, "farfield"), ("wavelength", wavelength, None),
                                   ("pixel_size", pixel_size, None), ("distance", distance, None),
                                   ("n_modes", n_modes, None), ("refine_positions", refine_positions, False),
                                   ("background", background, False)) if v is not d]
        if given:
            raise ConfigError(f"{', '.join(given)}: set on the problem (PtychoProblem.from_arrays), "
                              f"not with a prepared problem")
    else:
        if near_field is not None:
            if not hasattr(data, "object_pixel_yx"):
                raise ConfigError("near_field: for a scan read from a file (phasekit.io.read_ptycho); "
                                  "give propagation, wavelength, pixel_size and distance otherwise")
            from .geometry import scan_geometry

            geo = scan_geometry(data, near_field).reconstruct_kwargs()
            positions = geo.pop("positions") if positions is None else positions
            propagation = geo.get("propagation", propagation)
            wavelength, pixel_size, distance = (geo.get("wavelength", wavelength),
                                                geo.get("pixel_size", pixel_size),
                                                geo.get("distance", distance))
        if hasattr(data, "intensities"):  # PtychoData / SimulatedPtycho
            positions = data.positions_px() if positions is None and hasattr(data, "positions_px") \
                else (data.positions if positions is None else positions)
            mask = getattr(data, "mask", None) if mask is None else mask
            if propagation != "farfield" and isinstance(data, SimulatedPtycho):
                # near field: the simulation's geometry (a file's pixel is the detector's; the
                # object pixel and effective distance come from phasekit.ptycho.geometry)
                wavelength = getattr(data, "wavelength", None) if wavelength is None else wavelength
                pixel_size = getattr(data, "pixel_size", None) if pixel_size is None else pixel_size
                distance = getattr(data, "distance", None) if distance is None else distance
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
                                            clip_negative=clip_negative, propagation=propagation,
                                            wavelength=wavelength, pixel_size=pixel_size,
                                            distance=distance, n_modes=n_modes,
                                            refine_positions=refine_positions,
                                            background=background)
    config = {"fft_norm": problem.fft_norm, "precision": problem.precision,
              "object_shape": list(problem.shape), "probe_shape": list(problem.probe_shape),
              "n_positions": problem.n_positions, **problem.settings()}
    result = solve(problem, algorithm=algorithm, n_iter=n_iter, schedule=schedule, params=params,
                   starts=1, rng=rng, callback=callback, progress=progress,
                   metric_every=metric_every, keep_best=False, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, resume=resume, config=config)
    result.mask = None
    result.extras = {**(result.extras or {}),
                     "illumination": problem.to_centred(problem.illuminated).astype("uint8")}
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
pine = _make("pine", "PINE (Yamada et al., J. Appl. Cryst. 57, 2024): an ePIE sweep, then "
                     "``O <- (1 - rho) O + rho D(O)``: ``denoiser`` (any callable; the shipped DnCNNs: "
                     "``phasekit.learn.denoisers.load_complex_denoiser('default')``), ``rho``, "
                     "``alpha_o``, ``alpha_p``, ``recentre`` (docs/pine.md).")
