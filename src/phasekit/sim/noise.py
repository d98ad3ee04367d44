"""Detector noise: Poisson photon counting, Gaussian read-out noise, and the R_noise level.

The model follows Pham's thesis eq. (2.29):

    b_i = sqrt( max(0, Poisson(flux * |F u|_i^2 / ||F u||^2) + N(0, sigma)) )

``flux`` is the total expected photon count and ``sigma`` the read-out noise (our reading:
the thesis, §2.4.1, does not say whether N(0, sigma) gives the standard deviation or the
variance; sigma is taken as the standard deviation, in counts). Negative values are set
to 0 before the square root. The noise level is eq. (2.30):

    R_noise = sum_i |b_i - a_i| / sum_i a_i

Here ``a = sqrt(flux) |F u| / ||F u||`` is the noise-free amplitude on the same photon scale
as ``b`` (our resolution of a scale mismatch: eq. (2.29) gives ``b`` in photon units, while eq.
(2.30)
compares it with ``|F u^o|`` in model units). The sums run over measured pixels
only. :func:`calibrate_photons` finds the flux that gives a target R_noise, by bisection on
log(flux). The thesis uses R_noise ~ 6 %.

Scaled Poisson noise as in the VR-RK paper, ``y = eps * Poisson(|F x|^2 / eps)`` (our reading of
the noise model of Xian et al. 2022, sec. "Recovery efficiency under constraints": the printed
``y = |Ax|^2 (1 + eps)`` is a deterministic rescaling and cannot give the errors of their Table 2;
see docs/kaczmarz.md), is :func:`poisson_counts` applied to ``intensity / eps``, with the result
times ``eps``. The photon total is then ``sum |F x|^2 / eps``.

These functions work in float64 on the host (NumPy). Each random function takes an explicit
``rng``.
"""
from __future__ import annotations

import math

import numpy as np

from phasekit.core.device import to_numpy
from phasekit.core.errors import ConfigError, InputError
from phasekit.core.rng import make_rng

__all__ = [
    "poisson_counts",
    "scale_to_photons",
    "add_read_noise",
    "rnoise",
    "calibrate_photons",
]

# numpy's Poisson sampler rejects lam above ~9.2e18; stay well below it.
_MAX_LAM = 1e17


def _real_array(x, name: str) -> np.ndarray:
    arr = to_numpy(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise InputError(f"{name} must be real, got a complex array")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or Inf")
    return arr


def _nonneg_array(x, name: str) -> np.ndarray:
    arr = _real_array(x, name)
    if np.any(arr < 0):
        raise InputError(f"{name} must be non-negative, min is {arr.min():g}")
    return arr


def _check_scalar(value, name: str, *, positive: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ConfigError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


def _check_mask(mask, shape) -> np.ndarray | None:
    if mask is None:
        return None
    m = to_numpy(mask)
    if m.dtype != bool:
        raise InputError(f"mask must be boolean (True = measured), got dtype {m.dtype}")
    if m.shape != tuple(shape):
        raise InputError(f"mask shape {m.shape} != intensity shape {tuple(shape)}")
    if not m.any():
        raise InputError("mask has no measured pixels")
    return m


def poisson_counts(expected, rng=None) -> np.ndarray:
    """Draw Poisson photon counts with the given expected values.

    Parameters
    ----------
    expected : array_like
        Expected counts per pixel: finite, non-negative, at most 1e17.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        float64 array of integer-valued counts, with the shape of ``expected``.

    Raises
    ------
    InputError
        If ``expected`` has NaN/Inf, negative or too large values.
    """
    lam = _nonneg_array(expected, "expected counts")
    if lam.max() > _MAX_LAM:
        raise InputError(f"expected counts up to {lam.max():.3g} exceed the limit {_MAX_LAM:.0e}")
    gen = make_rng(rng)
    return gen.poisson(lam).astype(np.float64)


def scale_to_photons(intensity, photons: float) -> np.ndarray:
    """Scale an intensity so that its total is ``photons`` expected counts.

    This is the ``flux * |F u|^2 / ||F u||^2`` factor of Pham thesis eq. (2.29).

    Parameters
    ----------
    intensity : array_like
        Noise-free intensity (finite, non-negative, not all zero).
    photons : float
        Total expected photon count (``> 0``).

    Returns
    -------
    numpy.ndarray
        float64 array ``intensity * photons / intensity.sum()``.

    Raises
    ------
    InputError
        If ``intensity`` has NaN/Inf or negative values, or sums to zero.
    ConfigError
        If ``photons`` is not a positive finite number.
    """
    inten = _nonneg_array(intensity, "intensity")
    photons = _check_scalar(photons, "photons", positive=True)
    total = inten.sum()
    if total <= 0:
        raise InputError("intensity is zero everywhere; cannot scale it to a photon count")
    return inten * (photons / total)


def add_read_noise(counts, sigma: float, rng=None) -> np.ndarray:
    """Add Gaussian read-out noise and clip negative values to zero.

    This is the ``N(0, sigma)`` term of Pham thesis eq. (2.29). ``sigma`` is the standard
    deviation in counts, and negative results are set to 0, as the thesis does before the
    square root.

    Parameters
    ----------
    counts : array_like
        Photon counts (finite).
    sigma : float
        Read-out noise standard deviation in counts (``>= 0``; 0 returns a copy).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        float64 array, non-negative.

    Raises
    ------
    InputError
        If ``counts`` has NaN/Inf.
    ConfigError
        If ``sigma`` is negative or not finite.
    """
    c = _real_array(counts, "counts")
    sigma = _check_scalar(sigma, "read-noise sigma", positive=False)
    if sigma == 0:
        return np.clip(c, 0.0, None)
    gen = make_rng(rng)
    return np.clip(c + gen.normal(0.0, sigma, size=c.shape), 0.0, None)


def rnoise(b_measured, b_true, mask=None) -> float:
    """Noise level R_noise, Pham thesis eq. (2.30).

    ``R_noise = sum_K |b - b_true| / sum_K b_true``, where ``K`` is the set of measured pixels
    (all of them without a mask). Both arguments are **amplitudes** (square roots of
    intensities) on the same scale. For a photon-count pattern, pass ``b_true`` as the square
    root of the expected counts (the scale mismatch between thesis eqs. (2.29) and (2.30) noted
    above).

    Parameters
    ----------
    b_measured : array_like
        Noisy amplitudes.
    b_true : array_like
        Noise-free amplitudes, same shape.
    mask : array_like of bool, optional
        True = measured; only these pixels are counted.

    Returns
    -------
    float
        The relative l1 amplitude error.

    Raises
    ------
    InputError
        On shape mismatches, NaN/Inf or negative amplitudes, a non-boolean or empty mask, or
        ``b_true`` zero on every measured pixel.
    """
    b = _nonneg_array(b_measured, "b_measured")
    a = _nonneg_array(b_true, "b_true")
    if b.shape != a.shape:
        raise InputError(f"b_measured shape {b.shape} != b_true shape {a.shape}")
    m = _check_mask(mask, a.shape)
    if m is not None:
        b, a = b[m], a[m]
    denom = a.sum()
    if denom <= 0:
        raise InputError("b_true is zero on every measured pixel; R_noise is undefined")
    return float(np.abs(b - a).sum() / denom)


def calibrate_photons(
    intensity_noise_free,
    target_rnoise: float,
    rng=None,
    *,
    read_noise: float = 0.0,
    mask=None,
    bounds: tuple[float, float] = (1.0, 1e15),
    rtol: float = 2e-3,
    max_iter: int = 80,
) -> float:
    """Find the total photon count that gives a target noise level R_noise.

    The noise model is Pham thesis eq. (2.29): Poisson noise at ``photons`` total expected
    counts, then Gaussian read noise of standard deviation ``read_noise`` counts, clipped at
    0. R_noise (eq. 2.30) compares the noisy amplitudes with the square roots of the expected
    counts, over the measured pixels. The thesis's simulations use R_noise ~ 6 %.
    R_noise falls as the photon count rises, so ``log10(photons)`` is found by bisection.
    Every trial draws its noise from the same random stream (common random numbers), which
    keeps the bisection monotone up to Poisson discreteness. The result is the photon count
    whose trial came closest to the target. A fresh draw at that count scatters around the
    target by roughly ``1/sqrt(number of pixels)`` relative.

    Parameters
    ----------
    intensity_noise_free : array_like
        Noise-free intensity ``|F u|^2`` (any scale; only its shape matters).
    target_rnoise : float
        Target R_noise, e.g. 0.06, in (0, 1).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of randomness for the trial draws.
    read_noise : float, optional
        Read-out noise standard deviation in counts.
    mask : array_like of bool, optional
        True = measured; R_noise is computed over these pixels only.
    bounds : (float, float), optional
        Photon-count bracket searched.
    rtol : float, optional
        Stop when ``|R_noise - target| <= rtol * target``.
    max_iter : int, optional
        Maximum number of bisection steps.

    Returns
    -------
    float
        The total expected photon count.

    Raises
    ------
    InputError
        If the intensity is invalid (NaN, negative, all zero) or the mask is bad.
    ConfigError
        If the target is not in (0, 1), ``read_noise`` or ``bounds`` are invalid, or the
        target cannot be reached within ``bounds``.
    """
    inten = _nonneg_array(intensity_noise_free, "intensity_noise_free")
    if inten.sum() <= 0:
        raise InputError("intensity_noise_free is zero everywhere")
    target = _check_scalar(target_rnoise, "target_rnoise", positive=True)
    if target >= 1:
        raise ConfigError(f"target_rnoise must be in (0, 1), got {target_rnoise!r}")
    read_noise = _check_scalar(read_noise, "read_noise", positive=False)
    m = _check_mask(mask, inten.shape)
    try:
        lo_ph, hi_ph = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"bounds must be two numbers, got {bounds!r}") from None
    if not (0 < lo_ph < hi_ph <= _MAX_LAM / 10) or not math.isfinite(hi_ph):
        raise ConfigError(f"bounds must satisfy 0 < low < high <= {_MAX_LAM / 10:.0e}, got {bounds!r}")

    p = inten / inten.sum()
    if m is not None and p[m].sum() <= 0:
        raise InputError("intensity_noise_free is zero on every measured pixel")
    seed = int(make_rng(rng).integers(0, 2**63 - 1))

    def trial(log_ph: float) -> float:
        gen = np.random.default_rng(seed)  # common random numbers across trials
        expected = p * 10.0**log_ph
        counts = gen.poisson(expected).astype(np.float64)
        if read_noise > 0:
            counts = np.clip(counts + gen.normal(0.0, read_noise, size=counts.shape), 0.0, None)
        return rnoise(np.sqrt(counts), np.sqrt(expected), m)

    lo, hi = math.log10(lo_ph), math.log10(hi_ph)
    r_lo, r_hi = trial(lo), trial(hi)
    if not (r_hi <= target <= r_lo):
        raise ConfigError(
            f"target_rnoise {target:g} is not reachable with photons in [{lo_ph:.3g}, {hi_ph:.3g}] "
            f"(R_noise ranges from {r_lo:.4g} to {r_hi:.4g})"
        )
    best_log, best_err = (lo, abs(r_lo - target)) if abs(r_lo - target) < abs(r_hi - target) else (
        hi, abs(r_hi - target))
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        r = trial(mid)
        err = abs(r - target)
        if err < best_err:
            best_log, best_err = mid, err
        if err <= rtol * target:
            break
        if r > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9:
            break
    return float(10.0**best_log)
