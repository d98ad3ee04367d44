"""The noise level of a photon-count pattern and support growth by the discrepancy principle.

Shrink-wrap (Marchesini et al., PRB 68, 140101(R) (2003)) thresholds the blurred modulus at a
fraction of its maximum; an object whose edges fade out slowly (more than half of its pixels below
10 % of its maximum, the ``blobs`` phantom) loses those edges at any threshold that still lets a
compact object's support shrink, and the run ends with an R-factor several times the noise level.
The default recipe (docs/cdi.md, "Default recipe") therefore ends with a step that reads the
R-factor against the noise: Morozov's discrepancy principle, applied to the support:

* the **noise level** :func:`poisson_noise_rfactor` is the R-factor (Pham 2020 thesis eq. (2.21))
  that the noise-free amplitudes would score against Poisson counts, ``R_noise`` of thesis eq.
  (2.30), estimated from the counts alone;
* **support growth** :func:`grow_support`: while the R-factor is above ``tol * R_noise``, the
  support is enlarged to the blurred modulus above a threshold that falls by ``ratio`` per step
  (0.1 -> 0.07 -> 0.049 ... down to ``floor``), keeping only pieces joined to the current support,
  and the estimate is polished on it (``HIO:150,ER:50`` from the current estimate); the support
  whose polished R-factor is lowest is kept, a larger one only when it lowers the R-factor by
  more than ``prefer`` (3 %), so the smallest support consistent with the data wins.

Measured on the ``blobs`` phantom (128^2, objects of 32 px, 1e7 and 1e9 photons, real and complex,
seeds 0-2): the aligned error fell below 0.1 in 7 of 12 runs against 4 of 12 without growth;
compact objects (the virus phantom) already end at the noise level and are left alone.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.special import gammaln

from ..core.errors import ConfigError, InputError

#: pixels with at least this many counts use the large-count limit of E|sqrt(N) - sqrt(lam)|
_LARGE_COUNT = 30.0
_HALF_NORMAL = 0.5 * math.sqrt(2.0 / math.pi)  # E|Z| / 2 for Z ~ N(0, 1): sqrt(N) has sd 1/2


def _expected_abs_sqrt_dev(lam: np.ndarray) -> np.ndarray:
    """``E|sqrt(N) - sqrt(lam)|`` for ``N ~ Poisson(lam)`` (exact sum below 30 counts)."""
    out = np.full(lam.shape, _HALF_NORMAL)
    small = lam < _LARGE_COUNT
    if np.any(small):
        k = np.arange(0, 4 * int(_LARGE_COUNT) + 1, dtype=float)[None, :]
        lam_s = np.maximum(lam[small], 1e-12)[:, None]
        pmf = np.exp(k * np.log(lam_s) - lam_s - gammaln(k + 1.0))
        out[small] = (pmf * np.abs(np.sqrt(k) - np.sqrt(lam_s))).sum(axis=1)
    return out


def looks_like_counts(intensity, mask=None) -> bool:
    """True when the measured intensities are whole numbers (photon counts), not all zero.

    Examples
    --------
    >>> looks_like_counts(np.array([[0.0, 3.0], [12.0, 1.0]]))
    True
    >>> looks_like_counts(np.array([[0.5, 3.2], [1.0, 0.1]]))
    False
    """
    I = np.asarray(intensity, dtype=float)
    m = np.ones(I.shape, bool) if mask is None else np.asarray(mask, bool)
    v = I[m]
    if v.size == 0 or not np.all(np.isfinite(v)) or v.max() <= 0:
        return False
    return bool(np.mean(np.abs(v - np.round(v)) < 1e-6) > 0.99)


def poisson_noise_rfactor(intensity, mask=None, *, sigma: float = 1.5) -> float:
    r"""The R-factor that Poisson noise alone gives a photon-count pattern.

    :math:`R_\mathrm{noise} = \sum_K E\,|\sqrt{N_i} - \sqrt{\lambda_i}| / \sum_K \sqrt{\lambda_i}`
    (Pham 2020 thesis eq. (2.30) with the expectation over the noise), :math:`K` the measured
    pixels.  The expected counts :math:`\lambda` are the counts themselves above 20 and a
    Gaussian-weighted local mean of the measured counts (``sigma`` px) below, where one count says
    little (a zero-count pixel at high angle has :math:`\lambda` well below 1).  Within 15 % of
    the true value on the simulator's patterns from 1e6 to 1e9 photons (tested).

    Parameters
    ----------
    intensity : array_like
        Photon counts (any number of dimensions), finite and non-negative.
    mask : array_like of bool, optional
        True = measured.
    sigma : float
        Width of the local mean for low-count pixels.

    Returns
    -------
    float
        The expected R-factor of the noise-free amplitudes; NaN when the data are not photon
        counts (:func:`looks_like_counts`), where no noise level can be read from them.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lam = np.full((64, 64), 100.0)
    >>> round(poisson_noise_rfactor(rng.poisson(lam)), 2)   # 0.399 / sqrt(100)
    0.04
    """
    I = np.asarray(intensity, dtype=float)
    if not np.all(np.isfinite(I)) or np.any(I < 0):
        raise InputError("poisson_noise_rfactor: intensities must be finite and non-negative")
    if sigma <= 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")
    m = np.ones(I.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != I.shape:
        raise InputError(f"mask shape {m.shape} != intensity shape {I.shape}")
    if not looks_like_counts(I, m):
        return float("nan")
    w = m.astype(float)
    num = ndimage.gaussian_filter(I * w, sigma, mode="wrap")
    den = ndimage.gaussian_filter(w, sigma, mode="wrap")
    local = num / np.maximum(den, 1e-12)
    lam = np.where(I > 20, I, local)[m]
    denom = float(np.sqrt(lam).sum())
    if denom <= 0:
        return float("nan")
    return float(_expected_abs_sqrt_dev(lam).sum() / denom)


def _blurred_modulus(image: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(np.abs(image).astype(float), sigma, mode="wrap")


def grown_support(image, support, threshold: float, *, sigma: float = 1.0) -> np.ndarray:
    """``support`` joined with the blurred ``|image|`` above ``threshold`` of its maximum.

    Only pieces connected to ``support`` are added (a speckle island elsewhere is not part of an
    isolated object).

    Examples
    --------
    >>> img = np.zeros((16, 16)); img[6:10, 6:10] = 1.0; img[10:12, 6:10] = 0.05
    >>> s = np.zeros((16, 16), bool); s[6:10, 6:10] = True
    >>> int(grown_support(img, s, 0.02, sigma=0.5).sum()) > int(s.sum())
    True
    """
    s = np.asarray(support, bool)
    m = _blurred_modulus(np.asarray(image), sigma)
    cand = s | (m > threshold * m.max())
    lab, _ = ndimage.label(cand)
    keep = np.unique(lab[s])
    return np.isin(lab, keep[keep > 0])


def grow_support(polish, image, support, rfactor: float, noise_rf: float, *, tol: float = 1.15,
                 prefer: float = 0.03, start: float = 0.1, ratio: float = 0.7,
                 floor: float = 0.004, sigma: float = 1.0, progress=None):
    """Enlarge a support until the polished R-factor reaches the noise level (see module doc).

    Parameters
    ----------
    polish : callable
        ``polish(support, x0) -> (image, rfactor)``: a short fixed-support run from ``x0``
        (the default recipe uses ``HIO:150,ER:50``).
    image, support : ndarray
        The estimate (centred) and its support.
    rfactor : float
        R-factor of ``image``.
    noise_rf : float
        :func:`poisson_noise_rfactor` of the data; NaN (not counts): no stopping by noise, every
        threshold down to ``floor`` is tried and the lowest R-factor kept.
    tol, prefer, start, ratio, floor, sigma : float
        Stop at ``R <= tol * noise_rf``; a larger support must lower R by more than ``prefer``;
        thresholds ``start * ratio**k`` above ``floor``; blur width in px.
    progress : callable, optional
        Called with each step's record.

    Returns
    -------
    image, support, rfactor, steps
        The kept estimate, support and R-factor, and one record per polished candidate
        (``threshold``, ``area``, ``rfactor``, ``kept``).

    Examples
    --------
    With ``polish`` a closure over :func:`phasekit.cdi.reconstruct`::

        img, sup, rf, steps = grow_support(polish, res.image, res.support, res.rfactor, 0.01)
    """
    if not (0 < ratio < 1 and 0 < floor < start < 1 and tol >= 1 and 0 <= prefer < 1):
        raise ConfigError("grow_support: need 0 < ratio < 1, 0 < floor < start < 1, tol >= 1, "
                          "0 <= prefer < 1")
    best = (float(rfactor), np.asarray(image), np.asarray(support, bool))
    cur_img, cur_sup = best[1], best[2]
    steps: list[dict] = []
    th = start
    target = tol * noise_rf if np.isfinite(noise_rf) else -np.inf
    while True:
        th *= ratio
        if th < floor or best[0] <= target:
            break
        cand = grown_support(cur_img, cur_sup, th, sigma=sigma)
        if cand.sum() == cur_sup.sum():
            continue
        img, rf = polish(cand, cur_img)
        kept = bool(np.isfinite(rf) and rf < best[0] * (1 - prefer))
        step = {"threshold": float(th), "area": int(cand.sum()), "rfactor": float(rf), "kept": kept}
        steps.append(step)
        if progress is not None:
            progress(step)
        if not np.isfinite(rf):
            break
        cur_img, cur_sup = img, cand
        if kept:
            best = (float(rf), img, cand)
    return best[1], best[2], best[0], steps
