r"""Ptychography phantoms and the simulator.

* :func:`particle_film` -- a weak-phase film of spherical particles, a surrogate of the
  TiO2-in-PMMA specimen of the CRISP/PINE simulations (CRISP sec. 4, PINE sec. 5; neither gives
  sizes or values: amplitude >= 0.95 and phase down to about -0.4 rad at 8 keV are the display
  windows of the group's public PINE code).
* :func:`siemens_star` -- a Siemens star with absorption and phase (a stand-in for the real
  tantalum test chart of the papers).
* :func:`simulate_ptycho` -- Poisson counts :math:`\mathbf I_n\sim\mathrm{Poisson}(|\mathcal F
  [\mathcal T_{\mathbf r_n}\mathbf P\odot\mathcal S_{\mathbf r_n}\mathbf O]|^2)`
  (CRISP eq. (1), sec. 2.2) with the probe scaled to a dose (intensity at the origin of the vacuum pattern).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.errors import ConfigError, InputError
from ..core.rng import make_rng
from .operators import check_positions, exit_waves, shift_ramps, split_positions
from .probe import vacuum_origin_intensity
from .scan import object_shape_for

#: refractive index decrements at 8 keV (Henke tables, rounded): TiO2 (rutile 4.2 g/cm^3) and PMMA
TIO2_DELTA, TIO2_BETA = 1.30e-5, 5.0e-7
PMMA_DELTA, PMMA_BETA = 2.6e-6, 3.0e-9


def particle_film(shape, pixel_size: float = 19.8e-9, *, n_particles: int | None = None,
                  radius_range=(60e-9, 250e-9), wavelength: float = 1.5498e-10,
                  delta=TIO2_DELTA - PMMA_DELTA, beta=TIO2_BETA - PMMA_BETA, fill: float = 0.25,
                  rng=None) -> np.ndarray:
    r"""A weak-phase particle film: spheres of TiO2 in PMMA (relative to the film).

    Each sphere of radius :math:`R` adds a projected thickness :math:`t=2\sqrt{R^2-\rho^2}`; the
    transmission is :math:`\exp(-i k\delta t - k\beta t)`, :math:`k=2\pi/\lambda`.  With the
    defaults a 0.5 um particle gives about -0.22 rad and amplitude 0.99 (the PINE code's display
    windows: phase [-0.4, 0.1] rad, amplitude [0.95, 1.01]).

    Parameters
    ----------
    shape : int or (int, int)
    pixel_size : float
        Object pixel (m), default the BL24XU 19.8 nm.
    n_particles : int, optional
        Default: enough spheres to cover ``fill`` of the area.
    radius_range : (float, float)
        Uniform radius range (m).
    rng : seed or Generator
    """
    shape = (int(shape), int(shape)) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 4:
        raise ConfigError(f"shape must be 2 integers >= 4, got {shape}")
    r0, r1 = (float(v) / pixel_size for v in radius_range)
    if not (0 < r0 <= r1):
        raise ConfigError(f"radius_range must be 0 < min <= max, got {radius_range}")
    g = make_rng(rng)
    if n_particles is None:
        mean_area = math.pi * ((r0 + r1) / 2) ** 2
        n_particles = max(1, int(fill * shape[0] * shape[1] / mean_area))
    t = np.zeros(shape)
    yy = np.arange(shape[0])[:, None]
    xx = np.arange(shape[1])[None, :]
    for _ in range(int(n_particles)):
        r = g.uniform(r0, r1)
        cy, cx = g.uniform(0, shape[0]), g.uniform(0, shape[1])
        y0, y1 = max(0, int(cy - r - 1)), min(shape[0], int(cy + r + 2))
        x0, x1 = max(0, int(cx - r - 1)), min(shape[1], int(cx + r + 2))
        if y0 >= y1 or x0 >= x1:
            continue
        d2 = (yy[y0:y1] - cy) ** 2 + (xx[:, x0:x1] - cx) ** 2
        t[y0:y1, x0:x1] += 2 * np.sqrt(np.clip(r * r - d2, 0, None))
    k = 2 * math.pi / wavelength
    thick = t * pixel_size
    return np.exp(-1j * k * delta * thick - k * beta * thick)


def siemens_star(shape, *, n_spokes: int = 16, radius: float | None = None,
                 amplitude: float = 0.6, phase: float = -0.8, inner: float = 0.08,
                 smooth: float = 0.7) -> np.ndarray:
    """A Siemens star with absorption: spokes of transmission ``amplitude * exp(1j * phase)`` on
    vacuum (1), ``n_spokes`` dark sectors out to ``radius`` pixels (default 0.45 of the size), a
    clear centre of ``inner * radius``.  ``smooth`` (pixels) softens the edges (anti-aliasing)."""
    shape = (int(shape), int(shape)) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if int(n_spokes) < 1:
        raise ConfigError(f"n_spokes must be >= 1, got {n_spokes}")
    if not 0 < amplitude <= 1:
        raise ConfigError(f"amplitude must be in (0, 1], got {amplitude}")
    R = 0.45 * min(shape) if radius is None else float(radius)
    y = np.arange(shape[0]) - shape[0] / 2 + 0.5
    x = np.arange(shape[1]) - shape[1] / 2 + 0.5
    rr = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    th = np.arctan2(y[:, None], x[None, :])
    s = np.sin(int(n_spokes) * th)
    # distance (pixels) to the nearest spoke edge ~ |s| * r / n_spokes
    w = np.clip(0.5 + s * rr / max(int(n_spokes), 1) / max(smooth, 1e-6), 0, 1)
    rad = np.clip((R - rr) / max(smooth, 1e-6) + 0.5, 0, 1) * np.clip((rr - inner * R) / max(smooth, 1e-6) + 0.5, 0, 1)
    f = w * rad
    t = amplitude * np.exp(1j * phase)
    return (1 - f) + f * t


@dataclass
class SimulatedPtycho:
    """A simulated ptychography data set (everything a reconstruction and its check need)."""

    intensities: np.ndarray          # (N, My, Mx) counts, centred (zero frequency at M // 2)
    positions: np.ndarray            # (N, 2) pixels, (y, x) top-left corners
    obj: np.ndarray                  # ground-truth object (complex)
    probe: np.ndarray                # ground-truth probe, scaled to the dose
    mask: np.ndarray | None = None   # (My, Mx) True = measured
    dose: float | None = None
    wavelength: float | None = None
    distance: float | None = None
    detector_pixel: float | None = None
    pixel_size: float | None = None  # object pixel (m)
    params: dict = field(default_factory=dict)

    propagation: str = "farfield"
    background: np.ndarray | None = None  # (My, Mx) counts added to every frame (before noise)

    @property
    def noise_free(self) -> np.ndarray:
        """The expected intensities (recomputed from the truth)."""
        I = forward_intensities(self.obj, self.probe, self.positions,
                                propagation=self.propagation, wavelength=self.wavelength,
                                pixel_size=self.pixel_size, distance=self.distance)
        return I + self.background if self.background is not None else I

    def positions_px(self) -> np.ndarray:
        """The scan positions (object pixels), as :class:`~phasekit.io.ptycho.PtychoData`."""
        return np.asarray(self.positions, np.float64)


def forward_intensities(obj, probe, positions, *, batch: int = 64, propagation: str = "farfield",
                        wavelength=None, pixel_size=None, distance=None) -> np.ndarray:
    r"""Noise-free :math:`\sum_k|\mathcal D[\mathcal T_{\mathbf r_n}\mathbf P_k\odot\mathcal
    S_{\mathbf r_n}\mathbf O]|^2`, (N, My, Mx) float64.

    ``probe`` is (My, Mx) or a stack of K incoherent modes (K, My, Mx).  Far field
    (``propagation="farfield"``): :math:`\mathcal D` is the unitary FFT and frames are centred.
    Near field (``"fresnel"``, ``"angular"``, with ``wavelength``, ``pixel_size`` and
    ``distance`` in metres): :math:`\mathcal D` is the transfer-function propagator and the frame
    is the real-space image in the beam's frame (a fractional position also shifts it, as
    :meth:`phasekit.ptycho.PtychoProblem.to_detector`).
    """
    from ..operators.propagation import make_propagator

    o = torch.as_tensor(np.asarray(obj, dtype=np.complex128))
    # the shift theorem holds for any circular layout, so the centred probe is used directly
    p = torch.as_tensor(np.asarray(probe, dtype=np.complex128))
    frame = tuple(p.shape[-2:])
    ints, frac = split_positions(positions)
    check_positions(ints, frame, o.shape)
    ramps = shift_ramps(frac, frame, dtype=torch.complex128) if np.any(frac) else None
    prop = make_propagator(propagation, frame, wavelength=wavelength, pixel_size=pixel_size,
                           distance=distance, dtype=torch.complex128)
    out = np.empty((len(ints), *frame))
    for s in range(0, len(ints), batch):
        idx = np.arange(s, min(s + batch, len(ints)))
        psi = exit_waves(o, p, ints, ramps, idx)
        if propagation == "farfield":
            z = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(psi, dim=(-2, -1)),
                                                  norm="ortho"), dim=(-2, -1))
        else:
            h = prop.transfer
            if ramps is not None:
                it = torch.as_tensor(idx)
                r = ramps[0][it][:, :, None] * ramps[1][it][:, None, :]
                h = h * (r[:, None] if psi.ndim == 4 else r).conj()
            z = torch.fft.ifft2(torch.fft.fft2(psi) * h)
        a = z.real ** 2 + z.imag ** 2
        out[idx] = (a.sum(1) if a.ndim == 4 else a).numpy()
    return out


def simulate_ptycho(obj, probe, positions, *, dose: float | None = 1e10, rng=None, mask=None,
                    wavelength: float | None = None, distance: float | None = None,
                    detector_pixel: float | None = None, pixel_size: float | None = None,
                    params: dict | None = None, propagation: str = "farfield",
                    background=None) -> SimulatedPtycho:
    """Simulate ptychography: exit waves, propagation, an optional background, Poisson counts.

    Parameters
    ----------
    obj : complex array (Ny, Nx)
        Object transmission (must hold every probe window).
    probe : complex array (My, Mx) or (K, My, Mx)
        Probe shape, or K mutually incoherent modes (a partially coherent beam); rescaled so
        that the vacuum pattern has ``dose`` counts at the origin (far field,
        :func:`phasekit.ptycho.probe.scale_to_dose`; for modes the incoherent sum) or, in near
        field, ``dose`` mean counts per pixel of the vacuum frame (our definition: a near-field
        frame has no zero-frequency peak).  ``dose=None``: the probe is used as given and the
        intensities are noise-free.
    positions : (N, 2) pixels, (y, x) top-left corners; sub-pixel values are allowed.
    rng : seed or Generator of the Poisson noise.
    mask : (My, Mx) bool, optional
        True = measured; unmeasured pixels are stored as 0 counts.
    propagation : {"farfield", "fresnel", "angular"}
        Near field needs ``wavelength``, ``pixel_size`` (object pixel) and ``distance`` (the
        effective, Fresnel-scaled distance for a diverging beam), metres; its frames are
        real-space images (not centred in reciprocal space).
    background : array (My, Mx) or float, optional
        Counts added to every expected frame before the Poisson noise (centred like the frames).

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.ptycho import simulate_ptycho
    >>> sim = simulate_ptycho(np.ones((40, 40), complex), np.ones((32, 32), complex),
    ...                       [[0, 0], [8, 8]], dose=100.0, propagation="fresnel",
    ...                       wavelength=1e-10, pixel_size=1e-7, distance=1e-3, rng=0)
    >>> sim.intensities.shape, round(float(sim.intensities.mean()) / 100, 1)
    ((2, 32, 32), 1.0)
    """
    o = np.asarray(obj)
    p = np.asarray(probe)
    if o.ndim != 2 or p.ndim not in (2, 3):
        raise InputError(f"object must be 2-D and the probe (My, Mx) or (K, My, Mx), got "
                         f"{o.shape} and {p.shape}")
    frame = p.shape[-2:]
    pos = np.asarray(positions, dtype=np.float64)
    need = object_shape_for(pos, frame)
    if need[0] > o.shape[0] or need[1] > o.shape[1]:
        raise InputError(f"object {o.shape} too small for the scan: needs at least {need}")
    if dose is not None:
        if not (float(dose) > 0 and math.isfinite(float(dose))):
            raise ConfigError(f"dose must be positive, got {dose}")
        if propagation == "farfield" and p.ndim == 2:
            i0 = vacuum_origin_intensity(p)
        elif propagation != "farfield":
            i0 = float((np.abs(p) ** 2).sum()) / (frame[0] * frame[1])
        else:
            stack = p.reshape(-1, *frame)
            i0 = float(sum(abs(m.sum()) ** 2 for m in stack) / (frame[0] * frame[1]))
        if i0 <= 0:
            raise ConfigError("the probe has no power to scale to a dose")
        p = p * math.sqrt(float(dose) / i0)
    I = forward_intensities(o, p, pos, propagation=propagation, wavelength=wavelength,
                            pixel_size=pixel_size, distance=distance)
    bg = None
    if background is not None:
        bg = np.broadcast_to(np.asarray(background, np.float64), frame).copy()
        if not np.all(np.isfinite(bg)) or np.any(bg < 0):
            raise InputError("background must be finite and >= 0")
        I = I + bg
    if dose is not None:
        g = make_rng(rng)
        I = g.poisson(I).astype(np.float64)
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != frame:
            raise InputError(f"mask shape {m.shape} != probe shape {frame}")
        I = I * m
    return SimulatedPtycho(intensities=I.astype(np.float32), positions=pos,
                           obj=o.astype(np.complex64), probe=p.astype(np.complex64), mask=m,
                           dose=dose, wavelength=wavelength, distance=distance,
                           detector_pixel=detector_pixel, pixel_size=pixel_size,
                           params=dict(params or {}), propagation=propagation, background=bg)
