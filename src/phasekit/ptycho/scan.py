"""Scan patterns: raster and Fermat spiral, from a step or an overlap ratio, optional jitter.

Positions are returned in pixels as an ``(N, 2)`` float array of (y, x) **top-left corners** of
the probe window in the object array (0-based), the convention of the group's public PINE code
(github.com/mada-ko/PINE).  :func:`object_shape_for` gives the smallest object holding every window.

The overlap ratio is the *linear* one, ``o = 1 - step / D`` for a probe of diameter ``D``
(the PINE code's simulated scan: 25 px steps of a ~200 px beam = 87.5 %).
"""
from __future__ import annotations

import math

import numpy as np

from ..core.errors import ConfigError
from ..core.rng import make_rng


def step_from_overlap(overlap: float, probe_diameter: float) -> float:
    """Step (pixels) giving a linear overlap ``overlap = 1 - step / probe_diameter``."""
    if not 0.0 <= float(overlap) < 1.0:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}")
    if not float(probe_diameter) > 0:
        raise ConfigError(f"probe_diameter must be positive, got {probe_diameter}")
    return float(probe_diameter) * (1.0 - float(overlap))


def _resolve_step(step, overlap, probe_diameter) -> float:
    if (step is None) == (overlap is None):
        raise ConfigError("give exactly one of step (pixels) and overlap (with probe_diameter)")
    if overlap is not None:
        if probe_diameter is None:
            raise ConfigError("overlap needs probe_diameter (pixels)")
        return step_from_overlap(overlap, probe_diameter)
    if not (math.isfinite(float(step)) and float(step) > 0):
        raise ConfigError(f"step must be positive, got {step}")
    return float(step)


def _jitter(pos: np.ndarray, jitter: float, rng) -> np.ndarray:
    if jitter < 0:
        raise ConfigError(f"jitter must be >= 0, got {jitter}")
    if jitter > 0:
        g = make_rng(rng)
        pos = pos + g.uniform(-jitter, jitter, size=pos.shape)
    return pos


def raster_scan(ny: int, nx: int | None = None, *, step: float | None = None,
                overlap: float | None = None, probe_diameter: float | None = None,
                jitter: float = 0.0, margin: float = 0.0, rng=None) -> np.ndarray:
    """A rectangular ``ny x nx`` raster (row-major), in pixels.

    Parameters
    ----------
    ny, nx : int
        Points along y and x (``nx`` defaults to ``ny``).
    step : float, optional
        Step in pixels.  Or ``overlap`` (linear, in [0, 1)) with ``probe_diameter`` (pixels).
    jitter : float
        Uniform random offset in ``[-jitter, jitter]`` pixels added to each coordinate (breaks
        the raster periodicity that causes raster grid pathology).
    margin : float
        Offset of the first window from the object edge (pixels); with jitter, positions are
        moved so that the smallest is ``margin``.
    rng : seed or Generator, for the jitter.

    Returns
    -------
    ndarray (ny * nx, 2), float64, (y, x) top-left corners.
    """
    nx = ny if nx is None else nx
    if int(ny) < 1 or int(nx) < 1:
        raise ConfigError(f"raster needs at least 1x1 points, got {ny}x{nx}")
    s = _resolve_step(step, overlap, probe_diameter)
    yy, xx = np.meshgrid(np.arange(int(ny)) * s, np.arange(int(nx)) * s, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], axis=1)
    pos = _jitter(pos, float(jitter), rng)
    return pos - pos.min(axis=0) + float(margin)


def fermat_spiral(n_points: int, *, step: float | None = None, overlap: float | None = None,
                  probe_diameter: float | None = None, jitter: float = 0.0, margin: float = 0.0,
                  rng=None) -> np.ndarray:
    r"""A Fermat spiral of ``n_points`` (Huang et al., Opt. Express 22, 12634 (2014)):
    :math:`r_j = c\sqrt j`, :math:`\theta_j = j\,\varphi_g` with the golden angle
    :math:`\varphi_g = \pi(3-\sqrt5)`; ``c = step / sqrt(pi)`` gives one point per ``step^2``
    of area, the density of a raster of the same ``step``.

    Returns (y, x) top-left corners in pixels, shifted so that the smallest is ``margin``.
    """
    if int(n_points) < 1:
        raise ConfigError(f"n_points must be >= 1, got {n_points}")
    s = _resolve_step(step, overlap, probe_diameter)
    c = s / math.sqrt(math.pi)
    j = np.arange(int(n_points), dtype=np.float64)
    r = c * np.sqrt(j)
    th = j * math.pi * (3.0 - math.sqrt(5.0))
    pos = np.stack([r * np.sin(th), r * np.cos(th)], axis=1)
    pos = _jitter(pos, float(jitter), rng)
    return pos - pos.min(axis=0) + float(margin)


def object_shape_for(positions, probe_shape, margin: int = 0) -> tuple[int, int]:
    """Smallest object shape that holds every probe window (plus ``margin`` pixels)."""
    p = np.asarray(positions, dtype=np.float64)
    hi = np.floor(p.max(axis=0) + 1e-9).astype(int) + np.asarray(probe_shape, dtype=int)
    hi += (np.any(p - np.floor(p + 1e-9) > 1e-9, axis=0)).astype(int)  # room for a sub-pixel shift
    return int(hi[0] + margin), int(hi[1] + margin)


def object_pixel_size(wavelength: float, distance: float, detector_pixel: float,
                      n_pixels: int) -> float:
    r"""Real-space pixel of a far-field geometry, :math:`\Delta x=\lambda z/(M p)` (metres)."""
    for v, name in ((wavelength, "wavelength"), (distance, "distance"),
                    (detector_pixel, "detector_pixel"), (n_pixels, "n_pixels")):
        if not (v is not None and float(v) > 0 and math.isfinite(float(v))):
            raise ConfigError(f"{name} must be positive, got {v!r}")
    return float(wavelength) * float(distance) / (int(n_pixels) * float(detector_pixel))


def linear_overlap(positions, probe_diameter: float) -> float:
    """``1 - d / D`` with ``d`` the median nearest-neighbour distance of the positions."""
    p = np.asarray(positions, dtype=np.float64)
    if len(p) < 2:
        return 0.0
    d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(1.0 - np.median(d.min(axis=1)) / float(probe_diameter))
