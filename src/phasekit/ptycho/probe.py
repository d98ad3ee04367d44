r"""Probes (illuminations): circular aperture, Fresnel-zone-plate focus, Gaussian, defocus, the
PINE "bump" start, the BL24XU geometry preset, and photon scaling.

Every probe is a complex ``(My, Mx)`` NumPy array centred at index ``M // 2``. Scaling to photons
(:func:`scale_to_dose`) uses the dose definition of the CRISP/PINE simulations: the intensity at the
origin of the vacuum diffraction pattern, :math:`I_0=|\mathcal F\mathbf P|^2(\mathbf 0)`, in photon
counts (CRISP sec. 4, PINE sec. 5: "diffraction intensities at the origin"; with the unnormalised
FFT of the paper :math:`I_0=|\sum\mathbf P|^2`, with phasekit's unitary FFT
:math:`I_0=|\sum\mathbf P|^2/(M_yM_x)`; both describe the same counts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConfigError
from ..io.cxi import HC

KEV = 1e3 * 1.602176634e-19  # J


def _shape(shape) -> tuple[int, int]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape), int(shape))
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 2:
        raise ConfigError(f"probe shape must be 2 integers >= 2, got {shape}")
    return shape


def _radius(shape) -> np.ndarray:
    my, mx = shape
    y = np.arange(my) - my // 2
    x = np.arange(mx) - mx // 2
    return np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)


def _fftc(a):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(a), norm="ortho"))


def _ifftc(a):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(a), norm="ortho"))


def _freq2(shape, pixel_size: float) -> np.ndarray:
    my, mx = shape
    fy = (np.arange(my) - my // 2) / (my * pixel_size)
    fx = (np.arange(mx) - mx // 2) / (mx * pixel_size)
    return fy[:, None] ** 2 + fx[None, :] ** 2


def disc(shape, diameter: float, *, edge: float = 1.0) -> np.ndarray:
    """A centred disc of ``diameter`` pixels with a raised-cosine edge ``edge`` pixels wide (real)."""
    shape = _shape(shape)
    if not float(diameter) > 0:
        raise ConfigError(f"diameter must be positive, got {diameter}")
    r = _radius(shape)
    r0 = float(diameter) / 2
    if edge <= 0:
        return (r <= r0).astype(np.float64)
    t = np.clip((r - (r0 - edge / 2)) / edge, 0.0, 1.0)
    return 0.5 * (1 + np.cos(np.pi * t))


def circular_aperture(shape, diameter: float, *, edge: float = 1.0, defocus: float = 0.0,
                      wavelength: float | None = None, pixel_size: float | None = None) -> np.ndarray:
    """Illumination of a circular aperture of ``diameter`` pixels (a flat disc, complex), optionally
    propagated by ``defocus`` metres (:func:`propagate`)."""
    p = disc(shape, diameter, edge=edge).astype(np.complex128)
    if defocus:
        p = propagate(p, defocus, wavelength, pixel_size)
    return p


def gaussian(shape, fwhm: float, *, defocus: float = 0.0, wavelength: float | None = None,
             pixel_size: float | None = None) -> np.ndarray:
    """A centred Gaussian probe of full width at half maximum ``fwhm`` pixels (of the amplitude),
    optionally propagated by ``defocus`` metres."""
    shape = _shape(shape)
    if not float(fwhm) > 0:
        raise ConfigError(f"fwhm must be positive, got {fwhm}")
    sigma = float(fwhm) / (2 * math.sqrt(2 * math.log(2)))
    p = np.exp(-_radius(shape) ** 2 / (2 * sigma ** 2)).astype(np.complex128)
    if defocus:
        p = propagate(p, defocus, wavelength, pixel_size)
    return p


def propagate(field, distance: float, wavelength: float | None, pixel_size: float | None):
    r"""Paraxial (Fresnel transfer function) propagation by ``distance`` metres:
    :math:`\mathcal F^{-1}[e^{-i\pi\lambda z(f_x^2+f_y^2)}\mathcal F u]`; periodic boundaries."""
    if wavelength is None or pixel_size is None:
        raise ConfigError("defocus needs wavelength and pixel_size (metres)")
    if not (wavelength > 0 and pixel_size > 0):
        raise ConfigError("wavelength and pixel_size must be positive")
    f = np.asarray(field, dtype=np.complex128)
    h = np.exp(-1j * np.pi * float(wavelength) * float(distance) * _freq2(f.shape, float(pixel_size)))
    return _ifftc(_fftc(f) * h)


def bump(shape) -> np.ndarray:
    """The initial probe of the PINE paper, sec. 5.1 ("a bump function with support approximately
    the same size as the simulation probe"), in the form of the group's public code: a radial raised
    cosine, 1 for ``d <= M/8``, ``cos`` taper to 0 at ``d = M/4`` (support diameter ~ M/2), zero phase."""
    shape = _shape(shape)
    m = min(shape)
    r = _radius(shape)
    a, b = m / 8, m / 4
    out = np.where(r <= a, 1.0, np.where(r <= b, 0.5 * np.cos(np.pi * (r - a) / (b - a)) + 0.5, 0.0))
    return out.astype(np.complex128)


def fzp_probe(shape, beam_diameter: float, pupil_diameter: float, *, defocus: float = 0.0,
              wavelength: float | None = None, pixel_size: float | None = None,
              edge: float = 2.0) -> np.ndarray:
    """Focus of a Fresnel zone plate imaging a beam-defining aperture onto the sample.

    The demagnified aperture image (a disc of ``beam_diameter`` pixels) is low-pass filtered by
    the zone-plate pupil, a disc of ``pupil_diameter`` pixels in the detector (Fourier) plane --
    the bright-field disc (for BL24XU, derived from CRISP sec. 4: a ~200 px disc filtered by a
    ~90 px pupil).  An optional
    ``defocus`` (metres) propagates the result.
    """
    shape = _shape(shape)
    obj = disc(shape, beam_diameter, edge=edge)
    pupil = disc(shape, pupil_diameter, edge=1.0)
    p = _ifftc(_fftc(obj) * pupil)
    if defocus:
        p = propagate(p, defocus, wavelength, pixel_size)
    return p


@dataclass(frozen=True)
class BeamlineGeometry:
    """A far-field ptychography geometry (SI units) and the derived probe parameters."""

    name: str
    energy_keV: float
    distance: float            # sample-detector, m
    detector_pixel: float      # m
    n_pixels: int              # detector frame side M
    beam_diameter_m: float     # illumination diameter on the sample, m
    fzp_diameter: float        # m
    fzp_outer_zone: float      # m
    demagnification: float

    @property
    def wavelength(self) -> float:
        return HC / (self.energy_keV * KEV)

    @property
    def pixel_size(self) -> float:
        """Object pixel ``lambda z / (M p)``."""
        return self.wavelength * self.distance / (self.n_pixels * self.detector_pixel)

    @property
    def focal_length(self) -> float:
        return self.fzp_diameter * self.fzp_outer_zone / self.wavelength

    @property
    def fzp_to_sample(self) -> float:
        """Thin lens with magnification 1/demagnification: b = f (1 + 1/m)."""
        return self.focal_length * (1 + 1 / self.demagnification)

    @property
    def convergence_semi_angle(self) -> float:
        return self.fzp_diameter / 2 / self.fzp_to_sample

    @property
    def pupil_diameter_px(self) -> float:
        """Bright-field disc on the detector, pixels: ``2 z theta / p``."""
        return 2 * self.distance * self.convergence_semi_angle / self.detector_pixel

    @property
    def beam_diameter_px(self) -> float:
        return self.beam_diameter_m / self.pixel_size

    def probe(self, defocus: float = 0.0) -> np.ndarray:
        """The zone-plate probe of this geometry (:func:`fzp_probe`), unit amplitude scale."""
        return fzp_probe(self.n_pixels, self.beam_diameter_px, self.pupil_diameter_px,
                         defocus=defocus, wavelength=self.wavelength, pixel_size=self.pixel_size)


def bl24xu(n_pixels: int = 470) -> BeamlineGeometry:
    """The SPring-8 BL24XU geometry of the CRISP/PINE simulations (CRISP sec. 4): 8 keV, EIGER
    X 1M (75 um pixels) at 4.5 m, BDA 20 um demagnified 5x to a 4 um beam by a 416 um zone plate
    with 86 nm outermost zones.  ``n_pixels = 470`` gives a 19.8 nm object pixel, a ~202 px beam
    and a ~90 px bright-field disc; smaller frames keep the geometry (coarser object pixels)."""
    if int(n_pixels) < 8:
        raise ConfigError(f"n_pixels must be >= 8, got {n_pixels}")
    return BeamlineGeometry("BL24XU", 8.0, 4.5, 75e-6, int(n_pixels), 4e-6, 416e-6, 86e-9, 5.0)


def vacuum_origin_intensity(probe) -> float:
    """``|fftc(P)|^2`` at zero frequency (unitary FFT): ``|sum P|^2 / (My Mx)``."""
    p = np.asarray(probe)
    return float(abs(p.sum()) ** 2 / p.size)


def scale_to_dose(probe, dose: float) -> np.ndarray:
    """Scale ``probe`` so that the vacuum diffraction pattern has ``dose`` photons at the origin."""
    if not (float(dose) > 0 and math.isfinite(float(dose))):
        raise ConfigError(f"dose must be positive, got {dose}")
    i0 = vacuum_origin_intensity(probe)
    if i0 <= 0:
        raise ConfigError("the probe has no zero-frequency component; cannot scale to a dose")
    return np.asarray(probe) * math.sqrt(float(dose) / i0)


def energy_match(probe, intensities, mask=None) -> np.ndarray:
    r"""Scale ``probe`` so that :math:`\|\mathbf P\|^2` equals the mean measured energy per
    frame (unitary FFT, so :math:`\|\mathcal F(\mathbf P\odot\mathbf O)\|^2=\|\mathbf P\|^2` for a
    unit-modulus object).  Unmeasured pixels are ignored."""
    I = np.asarray(intensities, dtype=np.float64)
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, dtype=bool), I.shape)
        I = np.where(m, I, 0.0)
    e = float(I.sum() / I.shape[0])
    p = np.asarray(probe)
    n2 = float((np.abs(p) ** 2).sum())
    if n2 <= 0 or e <= 0:
        raise ConfigError("cannot energy-match an all-zero probe or data set")
    return p * math.sqrt(e / n2)
