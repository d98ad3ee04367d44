"""Simulated coherent diffraction imaging (CDI) data sets.

:func:`simulate_cdi` builds a phantom and embeds it, centred, in a larger zero array
(oversampling). It computes the far-field pattern ``I = |fftc(u)|^2`` with the unitary centred
FFT of docs/conventions.md. It scales the pattern to a photon count and applies the detector
model of Pham thesis eq. (2.29): Poisson noise, Gaussian read noise clipped at 0, and missing
data from a beamstop and panel gaps. The result is a :class:`SimulatedCDI` with the ground
truth, the mask, a support and the noise level R_noise (eq. 2.30).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from phasekit.core.device import to_numpy
from phasekit.core.errors import ConfigError, InputError
from phasekit.core.rng import make_rng

from . import masks as _masks
from . import noise as _noise
from .phantoms import complex_object, embed, make_object

__all__ = ["SimulatedCDI", "simulate_cdi", "oversampling_ratio"]

#: Pixels by which the true object support is dilated to give ``SimulatedCDI.support``.
SUPPORT_DILATION = 2


def _fftc(x: np.ndarray) -> np.ndarray:
    """Centred unitary 2-D FFT in NumPy (float64/complex128), same convention as
    ``phasekit.core.fftc``."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))


@dataclass
class SimulatedCDI:
    """A simulated CDI measurement together with its ground truth.

    Attributes
    ----------
    intensity : numpy.ndarray
        float32 diffraction pattern ``(size, size)`` with the zero frequency at ``size // 2``.
        It holds photon counts when ``photons`` is set, else the noise-free ``|fftc(truth)|^2``.
        Unmeasured pixels (``mask == False``) are set to 0.
    mask : numpy.ndarray
        bool, True = measured pixel.
    support : numpy.ndarray
        bool, the true support of the object (``truth != 0``) dilated by
        :data:`SUPPORT_DILATION` pixels (disk footprint), clipped to the array.
    truth : numpy.ndarray
        The object, embedded in the ``(size, size)`` array (float32, or complex64 for complex
        objects). It is scaled so that the expected noise-free intensity is exactly
        ``|fftc(truth)|^2``: the photon scale is folded into ``truth``.
    photons : float or None
        Total expected photon count (the flux of eq. 2.29), or None for a noise-free pattern.
    rnoise : float
        R_noise over the measured pixels (Pham thesis eq. 2.30): the noisy amplitudes
        ``sqrt(intensity)`` against the noise-free amplitudes ``|fftc(truth)|``. 0 for noise-free
        data.
    params : dict
        Every setting used, JSON-serialisable.
    """

    intensity: np.ndarray
    mask: np.ndarray
    support: np.ndarray
    truth: np.ndarray
    photons: float | None
    rnoise: float
    params: dict = field(default_factory=dict)

    @property
    def amplitude(self) -> np.ndarray:
        """Measured amplitudes ``sqrt(intensity)`` (float32)."""
        return np.sqrt(self.intensity)


def oversampling_ratio(support) -> float:
    """Area oversampling ratio ``N^2 / |S|``: the number of pixels over the number in the support.

    The linear ratio per axis of a square object of side ``m`` in an ``N x N`` array is
    ``N / m``. The area ratio is its square (the quantity of Miao, Sayre and Chapman 1998,
    which must exceed 2 for a unique solution).

    Parameters
    ----------
    support : array_like of bool
        True inside the support.

    Returns
    -------
    float

    Raises
    ------
    InputError
        If the support is empty or not boolean.
    """
    s = to_numpy(support)
    if s.dtype != bool:
        raise InputError(f"support must be boolean, got dtype {s.dtype}")
    n = int(s.sum())
    if n == 0:
        raise InputError("support is empty; the oversampling ratio is undefined")
    return float(s.size / n)


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def _check_int(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_float(value, name: str, *, positive: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    return _noise._check_scalar(value, name, positive=positive)


def simulate_cdi(
    obj="vesicle",
    *,
    size: int = 256,
    oversampling: float = 4.0,
    photons: float | None = None,
    read_noise: float = 0.0,
    beamstop: float = 0,
    gaps: int = 0,
    complex_valued: bool = False,
    target_rnoise: float | None = None,
    rng=None,
) -> SimulatedCDI:
    """Simulate a 2-D far-field CDI pattern of an isolated object.

    Steps:

    1. Object. If ``obj`` is a name (see :data:`phasekit.sim.phantoms.OBJECT_NAMES`), the
       phantom is ``make_object(obj, m, rng)`` with ``m = round(size / oversampling)``. If it
       is an array, it is used as given. With ``complex_valued=True`` a real object gets a
       smooth random phase of up to 1 rad (:func:`phasekit.sim.phantoms.complex_object`).
    2. Oversampling. The object is zero-padded, centred, to ``(size, size)``
       (:func:`phasekit.sim.phantoms.embed`). ``oversampling`` is the **linear ratio per
       axis**, ``size / m``. The area ratio is about its square, ``N^2 / |S|``; see
       :func:`oversampling_ratio`, which ``params`` reports for the actual support. The
       generated phantoms fill about 90 % of their ``m x m`` box, so the real ratio is a
       little larger than requested.
    3. Pattern. ``I = |fftc(u)|^2``, the unitary centred FFT with the zero frequency at
       ``size // 2``. If ``photons`` is given, ``u`` is scaled so that ``sum(I) = photons``
       (the ``flux * |F u|^2 / ||F u||^2`` of Pham thesis eq. 2.29). The scaled object is
       returned as ``truth``, so the expected pattern is exactly ``|fftc(truth)|^2``.
    4. Noise (only with ``photons``). Poisson counts, then optional Gaussian read noise of
       standard deviation ``read_noise`` counts, clipped at 0 (eq. 2.29). With
       ``target_rnoise`` (and ``photons=None``), the photon count is first calibrated by
       bisection to give that R_noise (eq. 2.30), e.g. 0.06 as in the thesis.
    5. Missing data. A centred beamstop of radius ``beamstop`` px
       (:func:`phasekit.sim.masks.beamstop`; ``d <= radius`` is unmeasured, 0 = none) and a
       cross of detector gaps ``gaps`` px wide through the centre
       (:func:`phasekit.sim.masks.detector_gaps`; 0 = none). Unmeasured pixels of
       ``intensity`` are set to 0.

    Parameters
    ----------
    obj : str or array_like, optional
        Phantom name, or a 2-D (real or complex) object array that fits in ``(size, size)``.
    size : int, optional
        Side of the (square) diffraction pattern in pixels.
    oversampling : float, optional
        Linear oversampling ratio per axis (``>= 1``), used only when ``obj`` is a name.
    photons : float, optional
        Total expected photon count. None (default) gives the noise-free pattern.
    read_noise : float, optional
        Read-out noise standard deviation in counts (needs ``photons`` or ``target_rnoise``).
    beamstop : float, optional
        Beamstop radius in pixels (0 = no beamstop).
    gaps : int, optional
        Width of the detector gaps in pixels (0 = no gaps).
    complex_valued : bool, optional
        Give a real object a smooth random phase.
    target_rnoise : float, optional
        Calibrate ``photons`` to give this R_noise (exclusive with ``photons``).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness (phantom, phase, calibration, noise). The same seed gives the
        same data set.

    Returns
    -------
    SimulatedCDI

    Raises
    ------
    InputError
        If ``size`` is not a positive integer, ``obj`` is an unknown name or a bad array
        (not 2-D, NaN/Inf, larger than ``(size, size)``, or zero everywhere).
    ConfigError
        If ``oversampling < 1``, the object would be smaller than 8 px, ``photons`` is not
        positive, ``read_noise`` is negative or given without photons, ``photons`` and
        ``target_rnoise`` are both given, or the beamstop or gap parameters are invalid.
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise InputError(f"size must be an integer, got {size!r}")
    size = int(size)
    if size <= 0:
        raise InputError(f"size must be positive, got {size}")
    from phasekit.core.resources import check_memory, estimate_cdi_simulation

    check_memory(estimate_cdi_simulation(size), f"simulating a {size}x{size} CDI pattern")
    photons = _check_float(photons, "photons", positive=True, allow_none=True)
    target_rnoise = _check_float(target_rnoise, "target_rnoise", positive=True, allow_none=True)
    read_noise = _check_float(read_noise, "read_noise")
    beamstop_r = _check_float(beamstop, "beamstop radius")
    gaps = _check_int(gaps, "gaps")
    if photons is not None and target_rnoise is not None:
        raise ConfigError("give either photons or target_rnoise, not both")
    if read_noise > 0 and photons is None and target_rnoise is None:
        raise ConfigError("read_noise is in counts and needs photons (or target_rnoise)")
    gen = make_rng(rng)
    seed = rng if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) else None

    # 1. object
    if isinstance(obj, str):
        os_ = _check_float(oversampling, "oversampling", positive=True)
        if os_ < 1:
            raise ConfigError(f"oversampling must be >= 1 (linear, per axis), got {oversampling!r}")
        extent = int(round(size / os_))
        if extent < 8:
            raise ConfigError(
                f"object extent round(size / oversampling) = round({size} / {os_:g}) = {extent} px "
                "is below 8; increase size or decrease oversampling"
            )
        u = make_object(obj, extent, gen)
        obj_name = obj
    else:
        u = to_numpy(obj)
        if u.dtype == object or not np.issubdtype(u.dtype, np.number):
            raise InputError(f"object array must be numeric, got dtype {u.dtype}")
        if u.ndim != 2:
            raise InputError(f"object array must be 2-D, got shape {u.shape}")
        if not np.all(np.isfinite(u)):
            raise InputError("object array contains NaN or Inf")
        if u.shape[0] > size or u.shape[1] > size:
            raise InputError(f"object shape {u.shape} does not fit in pattern shape {(size, size)}")
        u = u.astype(np.complex64 if np.iscomplexobj(u) else np.float32)
        obj_name = "array"
        extent = int(max(u.shape))
        os_ = size / extent
    if complex_valued and not np.iscomplexobj(u):
        u = complex_object(np.abs(u), phase_scale=1.0, rng=gen)
    is_complex = bool(np.iscomplexobj(u))
    object_shape = [int(n) for n in u.shape]
    u = embed(u, (size, size)).astype(np.complex128 if is_complex else np.float64)
    if not np.any(u != 0):
        raise InputError("object is zero everywhere")

    # 2. support: true support dilated by SUPPORT_DILATION px
    support = ndimage.binary_dilation(u != 0, structure=_disk(SUPPORT_DILATION))

    # 3. masks
    mask = _masks.beamstop((size, size), beamstop_r)
    if gaps > 0:
        mask = _masks.combine(mask, _masks.detector_gaps((size, size), gaps))
    if not mask.any():
        raise ConfigError("beamstop and gaps leave no measured pixel")

    # 4. pattern, photon scale and noise
    total = float(np.sum(np.abs(_fftc(u)) ** 2))  # = sum |u|^2 by Parseval
    if target_rnoise is not None:
        photons = _noise.calibrate_photons(
            np.abs(_fftc(u)) ** 2, target_rnoise, gen, read_noise=read_noise, mask=mask
        )
    scale = 1.0 if photons is None else math.sqrt(photons / total)
    truth = (u * scale).astype(np.complex64 if is_complex else np.float32)
    expected = np.abs(_fftc(truth.astype(np.complex128))) ** 2  # exactly |fftc(truth)|^2
    if photons is None:
        intensity = expected.copy()
        r_noise = 0.0
    else:
        intensity = _noise.poisson_counts(expected, gen)
        if read_noise > 0:
            intensity = _noise.add_read_noise(intensity, read_noise, gen)
        r_noise = _noise.rnoise(np.sqrt(intensity), np.sqrt(expected), mask)
    intensity[~mask] = 0.0

    params = {
        "obj": obj_name,
        "object_shape": object_shape,
        "size": size,
        "oversampling": float(os_),
        "oversampling_area": oversampling_ratio(u != 0),
        "support_oversampling_area": oversampling_ratio(support),
        "support_dilation": SUPPORT_DILATION,
        "photons": None if photons is None else float(photons),
        "target_rnoise": target_rnoise,
        "read_noise": float(read_noise),
        "beamstop": float(beamstop_r),
        "gaps": int(gaps),
        "gap_orientation": "both",
        "complex_valued": is_complex,
        "truth_scale": float(scale),
        "n_measured": int(mask.sum()),
        "rnoise": float(r_noise),
        "seed": None if seed is None else int(seed),
        "fft": "unitary centred: fftshift(fftn(ifftshift(x), norm='ortho'))",
    }
    return SimulatedCDI(
        intensity=intensity.astype(np.float32),
        mask=mask,
        support=support,
        truth=truth,
        photons=None if photons is None else float(photons),
        rnoise=float(r_noise),
        params=params,
    )
