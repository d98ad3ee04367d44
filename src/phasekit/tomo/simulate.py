"""Simulated tilt series: phantoms, angle sets, noise, masks, and data made without the
inverse crime.

``projector="fst"`` projects the voxel phantom with the same Fourier-slice operator RESIRE inverts
(the thesis protocol of §3.3.1, projections "using FST": an inverse crime). ``projector="fine"``
samples the analytic phantom on a grid ``factor`` (default 2) times finer, projects it with the
voxel-driven real-space projector on a ``factor``-times finer detector, and bins the detector back
(mean over ``factor x factor`` pixels, times ``1/factor`` for the line element): an independent
discretisation.  The ground truth is the phantom averaged over the same fine sub-voxels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.errors import ConfigError, InputError
from ..core.rng import make_rng
from .geometry import as_euler
from .metrics import rfactor_projections
from .phantoms import bin_volume, film_function, phantom_function, sample
from .projectors import FourierSliceProjector, RealSpaceProjector

__all__ = ["TiltSeries", "simulate_tilt_series", "project_fine", "add_noise"]


@dataclass
class TiltSeries:
    """Projections ``(n, Dx, Dy)``, ZYX angles ``(n, 3)`` in degrees, optional mask / truth."""

    projections: np.ndarray
    angles: np.ndarray
    mask: np.ndarray | None = None
    truth: np.ndarray | None = None
    support: np.ndarray | None = None
    vol_shape: tuple | None = None
    clean: np.ndarray | None = None
    rnoise: float = 0.0
    params: dict = field(default_factory=dict)


def project_fine(f, vol_shape, angles, det_shape=None, factor: int = 2, device=None):
    """Project the analytic phantom ``f`` on a ``factor``-times finer grid, then bin."""
    if factor < 1:
        raise ConfigError(f"factor must be >= 1, got {factor}")
    vs = tuple(int(n) for n in vol_shape)
    ds = (vs[0], vs[1]) if det_shape is None else tuple(int(n) for n in det_shape)
    fine = sample(f, vs, factor=factor).astype(np.float32)
    vc = [factor * (n // 2) + (factor - 1) / 2.0 for n in vs]
    dc = [factor * (n // 2) + (factor - 1) / 2.0 for n in ds]
    op = RealSpaceProjector(fine.shape, angles, (factor * ds[0], factor * ds[1]), vol_centre=vc,
                            det_centre=dc, device=device, max_cache_bytes=0,
                            chunk_points=2**22)
    p = op.forward(torch.as_tensor(fine)).cpu().numpy()
    n = p.shape[0]
    p = p.reshape(n, ds[0], factor, ds[1], factor).mean((2, 4)) / factor
    return p, bin_volume(fine, factor)


def add_noise(b, rng=None, *, gaussian: float = 0.0, dose: float | None = None):
    """Gaussian noise of standard deviation ``gaussian * mean|b|`` and/or Poisson noise at
    ``dose`` expected counts per unit of projection value."""
    g = make_rng(rng)
    out = np.asarray(b, dtype=np.float64).copy()
    if dose is not None:
        if not dose > 0:
            raise ConfigError(f"dose must be > 0, got {dose}")
        out = g.poisson(np.clip(out, 0, None) * dose) / dose
    if gaussian:
        if not np.isfinite(gaussian) or gaussian < 0:
            raise ConfigError(f"gaussian noise level must be >= 0, got {gaussian}")
        out = out + g.normal(scale=gaussian * np.abs(b).mean(), size=out.shape)
    return out.astype(np.float32)


def simulate_tilt_series(phantom: str = "vesicle", size: int = 64, angles=None, *,
                         noise: float = 0.0, dose: float | None = None,
                         projector: str = "fine", factor: int = 2, oversampling: float = 3.0,
                         blocked: int = 0, blocked_fraction: float = 0.25,
                         extended: bool = False, thickness: int | None = None,
                         rng=None) -> TiltSeries:
    """Simulate a tilt series of a phantom.

    Parameters
    ----------
    phantom : {"vesicle", "cell", "nanoparticle", "film"}
        ``film`` implies ``extended=True``.
    size : int
        Detector side and nominal volume side.
    angles : tilt angles or (n, 3) ZYX Euler triples, degrees; default -70:3.5:70 (41).
    noise : float
        Gaussian noise, standard deviation as a fraction of the mean projection value.
    dose : float, optional
        Poisson noise: expected counts per unit of projection value.
    projector : {"fine", "fst"}
        Independent fine-grid real-space projection (default) or the Fourier-slice projector
        (the thesis' inverse-crime protocol).
    factor, oversampling : fine-grid factor; FST padding ratio (for ``projector="fst"``).
    blocked, blocked_fraction : int, float
        Block ``blocked`` projections (those at the highest tilts) over ``blocked_fraction`` of
        their ``x`` extent at the positive-x edge (a holder's shadow): data 0, mask False.
    extended, thickness : bool, int
        Thin-film mode: a slab of ``thickness`` voxels that extends laterally beyond the field of
        view; the volume is enlarged with :func:`~phasekit.tomo.problem.extended_volume_shape`.
    rng : seed
    """
    from .problem import extended_volume_shape

    g = make_rng(rng)
    if angles is None:
        angles = np.arange(-70.0, 70.0 + 1e-9, 3.5)
    ang = as_euler(angles)
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise InputError(f"size must be an integer >= 8, got {size!r}")
    proj_kind = str(projector).lower()
    if proj_kind not in ("fine", "fst"):
        raise ConfigError(f"unknown projector {projector!r}; choose 'fine' or 'fst'")
    det = (size, size)
    is_film = str(phantom).lower() == "film"
    if is_film or extended:
        T = int(thickness or max(8, size // 4))
        vol = extended_volume_shape(det, T, ang)
        # the sample extends beyond the reconstructed volume too: simulate a wider film
        big = (vol[0] + 2 * T, vol[1] + 2 * T, T + 4)
        f = film_function(big, T, g) if is_film else phantom_function(phantom, size, g)
        sim_shape = big
    else:
        vol = (size, size, size)
        f = phantom_function(phantom, size, g)
        sim_shape = vol
    from ..core.resources import check_memory
    from .memory import estimate_tomo_simulation

    check_memory(estimate_tomo_simulation(sim_shape, ang.shape[0], det, projector=proj_kind,
                                          factor=factor, oversampling=oversampling),
                 f"simulating {ang.shape[0]} projections of a {'x'.join(map(str, sim_shape))} "
                 "volume")
    if proj_kind == "fine":
        clean, truth_big = project_fine(f, sim_shape, ang, det, factor=factor)
    else:
        truth_big = bin_volume(sample(f, sim_shape, factor=factor), factor)
        op = FourierSliceProjector(sim_shape, ang, det, oversampling=oversampling)
        clean = op.forward(torch.as_tensor(truth_big, dtype=torch.float32)).numpy()
    truth_big = np.maximum(truth_big, 0).astype(np.float32)
    # crop the truth to the reconstruction volume
    sl = tuple(slice(b // 2 - v // 2, b // 2 - v // 2 + v) for b, v in zip(sim_shape, vol))
    truth = truth_big[sl]
    b = add_noise(clean, g, gaussian=noise, dose=dose) if (noise or dose is not None) else clean.astype(np.float32)
    mask = None
    if blocked:
        if not 0 < blocked_fraction < 1:
            raise ConfigError(f"blocked_fraction must be in (0, 1), got {blocked_fraction}")
        tilt = np.abs(ang[:, 1])
        idx = np.argsort(-tilt)[: int(blocked)]
        mask = np.ones(b.shape, bool)
        w = int(round(blocked_fraction * size))
        mask[idx, size - w:, :] = False
        b = b.copy()
        b[~mask] = 0.0
    rn = rfactor_projections(torch.as_tensor(b), torch.as_tensor(clean),
                             None if mask is None else torch.as_tensor(mask))
    params = {"phantom": phantom, "size": size, "noise": noise, "dose": dose,
              "projector": proj_kind, "factor": factor, "blocked": blocked,
              "blocked_fraction": blocked_fraction, "extended": bool(is_film or extended),
              "thickness": thickness, "n_proj": int(ang.shape[0])}
    return TiltSeries(projections=b.astype(np.float32), angles=ang, mask=mask, truth=truth,
                      vol_shape=tuple(vol), clean=clean.astype(np.float32), rnoise=float(rn),
                      params=params)
