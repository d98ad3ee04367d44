"""Preprocessing of single-particle imaging patterns: hit finding, centring, sphere-model size
and intensity fit, size filter, crop and the VR-RK paper's [0, 255] scaling.

* **Hit finding** (:func:`hit_scores`, :func:`find_hits`): the photons on the measured pixels
  of each frame against a threshold ``median + k MAD`` (k = 5, the MAD at least the Poisson
  ``sqrt(median)``) of blank frames.  Without known blank frames, the blanks are the frames
  below the lowest gap of at least half a decade in the sorted scores (blanks hold background
  only, hits at least a few hundred photons); without such a gap every frame with a positive
  score is a hit.
* **Centring** (:func:`find_centres`): Friedel symmetry ``I(c + r) = I(c - r)``.  The masked
  self-convolution ``C(t) = sum_x A(x) A(t - x)`` of ``A = M sqrt(I)`` (zero-padded FFTs, so
  nothing wraps around the array edge), normalised by ``E(t) = sum_x A(x)^2 M(t - x)``,
  equals 1 exactly at ``t = 2c`` (Cauchy-Schwarz); its peak near twice the nominal centre is
  refined to sub-pixel by a parabola on each axis.  This is the idea of libspimage's
  ``find_center`` (cross-correlation with the inverted pattern), written in-house.
* **Sphere fit** (:func:`fit_sphere`), in libspimage's order (``fit_sphere_diameter_pearson``,
  ``fit_sphere_intensity``, ``fit_full_sphere_model``): ``I = A w(p) [3 (sin u - u cos u) /
  u^3]^2``, ``u = 2 pi |s| d / 2`` with ``s`` the pixel's scattering vector on the Ewald sphere
  and ``w`` the solid angle times polarisation relative to the beam pixel.  The diameter is first
  found by a brute-force search of the Pearson correlation between radial profiles weighted by
  ``|s|^2`` (which evens the fringes' weight); the intensity ``A`` then by linear least squares;
  an optional joint bounded refinement of (y0, x0, d, A) (d within +-20 %, centre within
  +-2 px) minimises Poisson-weighted residuals.  The reduced chi^2 is a strong single-hit
  feature (Bobkov et al. 2015).
* **Size filter** (:func:`size_filter`): keep fitted diameters within ``mode +- k MAD``.
* **Crop** (:func:`crop_patterns`) about the centre (rounded to a pixel; the sub-pixel rest is
  kept) and **scale** (:func:`scale_255`): ``x[x < 0] = 0; x *= 255 / x.max()`` per pattern,
  the VR-RK paper's "pixel values are scaled to the range of [0, 255]" (section 4.4), as the
  H. Liu lab's PR772 example code does.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ConfigError, InputError
from .detector import DetectorGeometry

__all__ = [
    "crop_patterns",
    "find_centres",
    "find_hits",
    "fit_sphere",
    "hit_scores",
    "preprocess_stack",
    "scale_255",
    "size_filter",
]

log = logging.getLogger("phasekit")


def _frames3(frames) -> np.ndarray:
    a = np.asarray(frames, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"patterns of shape {a.shape}: expected (B, H, W) or (H, W)")
    return a


def _mask_for(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape[-2:], dtype=bool)
    m = np.asarray(mask).astype(bool)
    if m.shape != tuple(shape[-2:]) and m.shape != tuple(shape):
        raise InputError(f"mask shape {m.shape} != pattern shape {tuple(shape[-2:])}")
    return m


# --------------------------------------------------------------------------- hits
def hit_scores(frames, mask=None) -> np.ndarray:
    """Photons on the measured pixels of each frame, (B,) float64.

    Examples
    --------
    >>> hit_scores(np.ones((2, 4, 4))).tolist()
    [16.0, 16.0]
    """
    a = _frames3(frames)
    m = _mask_for(mask, a.shape)
    a = np.where(m, np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    return a.sum(axis=(1, 2), dtype=np.float64)


def _blank_population(scores: np.ndarray, gap_decades: float = 0.5) -> np.ndarray | None:
    """The frames below the lowest gap of at least ``gap_decades`` in the sorted log scores
    (at least 2 frames below it and 1 above), or None when the scores show no such gap."""
    ls = np.sort(np.log10(np.clip(scores, 0, None) + 1.0))
    if ls.size < 3:
        return None
    gaps = np.diff(ls)
    for j in np.flatnonzero(gaps >= gap_decades):
        if j + 1 >= 2:
            cut = 0.5 * (ls[j] + ls[j + 1])
            return scores[np.log10(np.clip(scores, 0, None) + 1.0) < cut]
    return None


def find_hits(scores, *, threshold: float | None = None, blank_scores=None,
              k: float = 5.0) -> tuple[np.ndarray, float]:
    """Which frames are hits: (bool (B,), threshold used).

    Parameters
    ----------
    scores : array_like
        :func:`hit_scores` of the frames.
    threshold : float, optional
        Photons; a frame is a hit when its score exceeds it.
    blank_scores : array_like, optional
        Scores of known blank frames: threshold = median + k * 1.4826 MAD of them.
    k : float
        MADs above the blank median.

    Examples
    --------
    >>> hits, t = find_hits([3, 5, 4, 2, 4000, 9000, 5, 3], k=5)
    >>> hits.astype(int).tolist()
    [0, 0, 0, 0, 1, 1, 0, 0]
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if threshold is None:
        if blank_scores is not None:
            blank = np.asarray(blank_scores, dtype=np.float64).ravel()
        else:
            blank = _blank_population(s)
        if blank is None or blank.size == 0:
            threshold = 0.0
        else:
            med = float(np.median(blank))
            mad = 1.4826 * float(np.median(np.abs(blank - med)))
            threshold = med + k * max(mad, math.sqrt(max(med, 1.0)))
    return s > threshold, float(threshold)


# --------------------------------------------------------------------------- centring
def find_centres(frames, mask=None, *, guess=None, max_shift: float = 8.0,
                 power: float = 0.5, smooth: float = 1.0, wrap: bool = False) -> np.ndarray:
    """Beam centres (B, 2) (y, x) in pixels by Friedel symmetry.

    Parameters
    ----------
    frames : array_like
        (B, H, W) or (H, W) patterns.
    mask : array_like of bool, optional
        (H, W) or (B, H, W), True = measured.
    guess : tuple of float, optional
        Nominal centre (y, x); default ``(H // 2, W // 2)``.
    max_shift : float
        Search radius about ``guess``, pixels.
    power : float
        The symmetry is measured on ``I ** power`` (0.5 by default: amplitudes, which keeps the
        bright centre from dominating).
    smooth : float
        Gaussian blur (pixels, normalised by the blurred mask) applied first, so that sparse
        photon counts are compared as local densities (0 = none).
    wrap : bool
        The pattern is periodic (e.g. stored in FFT layout, its zero frequency near a corner):
        the symmetry is measured with circular correlations (``I(c + r) = I(c - r)`` modulo the
        array), and of the two centres that fit (``2c`` is known modulo the array size) the one
        nearest ``guess`` (circularly) is returned, in ``[0, N)``.  By default the correlations
        are zero-padded, so nothing wraps around the edge.

    Examples
    --------
    >>> y, x = np.mgrid[0:32, 0:32]
    >>> img = np.exp(-((y - 15.3) ** 2 + (x - 17.0) ** 2) / 20) * (1 + 0.5 * np.cos(x - 17.0))
    >>> np.round(find_centres(img, guess=(16, 16))[0], 1).tolist()
    [15.3, 17.0]
    """
    a = _frames3(frames)
    b, h, w = a.shape
    m = _mask_for(mask, a.shape)
    m = np.broadcast_to(m, a.shape)
    gy, gx = (h // 2, w // 2) if guess is None else (float(guess[0]), float(guess[1]))
    amp = np.where(m, np.clip(np.nan_to_num(a), 0, None), 0.0).astype(np.float64)
    mm = m.astype(np.float64)
    if smooth > 0:  # sparse photon counts: compare local photon densities, not single photons
        from scipy.ndimage import gaussian_filter

        sig = (0, float(smooth), float(smooth))
        num = gaussian_filter(amp, sig, mode="constant")
        den = gaussian_filter(mm, sig, mode="constant")
        amp = np.where(m, num / np.maximum(den, 1e-6), 0.0)
    amp = amp ** power
    # zero-padded (linear) correlations, or circular ones for a wrapped (FFT-layout) pattern
    size = (h, w) if wrap else (2 * h, 2 * w)
    fa = torch.fft.rfft2(torch.from_numpy(amp), s=size)
    fm = torch.fft.rfft2(torch.from_numpy(mm), s=size)
    fa2 = torch.fft.rfft2(torch.from_numpy(amp ** 2), s=size)
    c = torch.fft.irfft2(fa * fa, s=size).numpy()
    e = torch.fft.irfft2(fa2 * fm, s=size).numpy()
    r = int(math.ceil(2 * max_shift)) + 1
    ty0, tx0 = int(round(2 * gy)), int(round(2 * gx))
    if wrap:  # indices modulo the array: the window may straddle the edge
        iy = np.arange(ty0 - r - 1, ty0 + r + 2)
        ix = np.arange(tx0 - r - 1, tx0 + r + 2)
    else:
        iy = np.arange(max(1, ty0 - r) - 1, min(2 * h - 2, ty0 + r) + 2)
        ix = np.arange(max(1, tx0 - r) - 1, min(2 * w - 2, tx0 + r) + 2)
    ey, ex = np.ix_(iy % size[0], ix % size[1])
    out = np.empty((b, 2))

    def vertex(lo, mid, hi):
        den = lo - 2 * mid + hi
        return 0.0 if den >= 0 else float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))

    for k in range(b):
        ek = e[k][ey, ex]
        ck = c[k][ey, ex]
        floor = 1e-3 * ek.max() if ek.max() > 0 else 1.0
        score = np.where(ek > floor, ck / np.maximum(ek, floor), 0.0)
        inner = score[1:-1, 1:-1]
        ty, tx = np.unravel_index(int(np.argmax(inner)), inner.shape)
        ty += 1
        tx += 1
        dy = vertex(score[ty - 1, tx], score[ty, tx], score[ty + 1, tx])
        dx = vertex(score[ty, tx - 1], score[ty, tx], score[ty, tx + 1])
        cy, cx = (iy[ty] + dy) / 2.0, (ix[tx] + dx) / 2.0
        if wrap:  # t = 2c (mod N): of c and c + N/2 (mod N), the one nearest the guess
            def near(v, g, n):
                cands = np.array([v % n, (v + n / 2.0) % n])
                d = np.abs((cands - g + n / 2.0) % n - n / 2.0)
                return float(cands[int(np.argmin(d))])

            cy, cx = near(cy, gy, h), near(cx, gx, w)
        out[k] = (cy, cx)
    return out


# --------------------------------------------------------------------------- sphere fit
def _s_w(geometry: DetectorGeometry, centre, yy=None, xx=None) -> tuple[np.ndarray, np.ndarray]:
    """|s| and w = Omega P / (Omega P at the beam) at pixels (yy, xx) (default all, (H, W))
    for the beam at ``centre`` (y, x): the same values as :meth:`DetectorGeometry.pixel_maps`."""
    if yy is None:
        yy, xx = np.mgrid[0:geometry.shape[0], 0:geometry.shape[1]]
    p, dist, lam = geometry.pixel_size, geometry.distance, geometry.wavelength
    y = (yy - centre[0]) * p
    x = (xx - centre[1]) * p
    inv = 1.0 / np.sqrt(x * x + y * y + dist * dist)
    s_abs = np.sqrt(2.0 - 2.0 * dist * inv) / lam  # |n - e_z| / lambda
    wgt = (dist * inv) ** 3
    if geometry.polarization == "horizontal":
        wgt = wgt * (1.0 - (x * inv) ** 2)
    elif geometry.polarization == "vertical":
        wgt = wgt * (1.0 - (y * inv) ** 2)
    return s_abs, wgt


def _radial_s(geometry: DetectorGeometry, centre) -> tuple[np.ndarray, np.ndarray]:
    return _s_w(geometry, centre)


def _ff2(u: np.ndarray) -> np.ndarray:
    """[3 (sin u - u cos u) / u^3]^2 in NumPy (series below u = 0.3)."""
    small = np.abs(u) < 0.3
    us = np.where(small, 1.0, u)
    f = np.where(small, 1.0 - u * u / 10.0 + u ** 4 / 280.0,
                 3.0 * (np.sin(us) - us * np.cos(us)) / us ** 3)
    return f * f


def _model(s_abs, wgt, d, amp):
    return amp * wgt * _ff2(np.pi * s_abs * d)


def fit_sphere(frames, geometry: DetectorGeometry, mask=None, centres=None, *,
               d_range: tuple[float, float] = (30e-9, 300e-9), n_grid: int = 300,
               refine: bool = True, profile_weight: float = 2.0) -> dict[str, np.ndarray]:
    """Fit a uniform sphere to each pattern: diameter, intensity, reduced chi^2, correlation.

    Parameters
    ----------
    frames : array_like
        (B, H, W) photon counts.
    geometry : DetectorGeometry
        The detector (its ``centre`` is ignored: ``centres`` gives it per pattern).
    mask : array_like of bool, optional
        (H, W), True = measured.
    centres : array_like, optional
        (B, 2) beam centres (y, x); default :func:`find_centres`.
    d_range : (float, float)
        Diameters searched, metres.
    n_grid : int
        Diameters in the brute-force search (geometric spacing).
    refine : bool
        Joint bounded least-squares refinement of (y0, x0, d, A) (``scipy.optimize``).
    profile_weight : float
        Power of ``|s|`` weighting the radial profiles in the Pearson search.

    Returns
    -------
    dict
        ``diameter_m``, ``intensity`` (photons at the beam pixel), ``chi2`` (reduced, Poisson
        weighted), ``pearson`` (of the weighted profiles), ``centre_px`` (B, 2).

    Examples
    --------
    >>> from phasekit.spi.detector import amo86615_geometry
    >>> from phasekit.spi.simulate import SpiSimulator
    >>> g = amo86615_geometry(64, 4)
    >>> sim = SpiSimulator(1, geometry=g, model="sphere", single_fraction=1, photons=1e5)
    >>> c = sim.simulate()
    >>> fit = fit_sphere(c.frames, g, sim.mask, refine=False)
    >>> bool(abs(fit["diameter_m"][0] / c.meta["diameter_m"][0, 0] - 1) < 0.05)
    True
    """
    a = _frames3(frames).astype(np.float64)
    b, h, w = a.shape
    if tuple(geometry.shape) != (h, w):
        raise InputError(f"geometry shape {geometry.shape} != pattern shape {(h, w)}")
    m = np.broadcast_to(_mask_for(mask, a.shape), a.shape)
    lo, hi = (float(v) for v in d_range)
    if not (0 < lo < hi):
        raise ConfigError(f"d_range {d_range}: expected 0 < low < high")
    if centres is None:
        centres = find_centres(a, m)
    centres = np.asarray(centres, dtype=np.float64).reshape(b, 2)
    d_grid = np.geomspace(lo, hi, int(n_grid))
    out = {k: np.zeros(b) for k in ("diameter_m", "intensity", "chi2", "pearson")}
    out["centre_px"] = centres.copy()
    for k in range(b):
        mk = m[k] & np.isfinite(a[k])
        ik = np.where(mk, a[k], 0.0)
        s_abs, wgt = _radial_s(geometry, centres[k])
        # radial profiles of I / w in |s| bins one pixel wide at the detector's centre
        ds = float(np.median(np.abs(np.diff(s_abs[h // 2]))))
        ds = ds if ds > 0 else float(s_abs.max()) / max(h, w)
        bins = np.minimum((s_abs / ds).astype(np.int64), int(s_abs.max() / ds))
        nb = int(bins.max()) + 1
        cnt = np.bincount(bins[mk], minlength=nb)
        prof = np.bincount(bins[mk], weights=(ik / wgt)[mk], minlength=nb)
        ok = cnt > 0
        sc = (np.arange(nb) + 0.5) * ds
        y = np.where(ok, prof / np.maximum(cnt, 1), 0.0)[ok] * sc[ok] ** profile_weight
        mod = _ff2(np.pi * sc[ok][None, :] * d_grid[:, None]) * sc[ok][None, :] ** profile_weight
        wt = cnt[ok].astype(np.float64)
        wt = wt / wt.sum()
        yc = y - (wt * y).sum()
        mc = mod - (mod * wt).sum(axis=1, keepdims=True)
        num = (mc * yc * wt).sum(axis=1)
        den = np.sqrt((mc ** 2 * wt).sum(axis=1) * (yc ** 2 * wt).sum()) + 1e-300
        r = num / den
        j = int(np.argmax(r))
        d = float(d_grid[j])
        out["pearson"][k] = float(r[j])
        f2 = _model(s_abs, wgt, d, 1.0)
        amp = float((ik * f2)[mk].sum() / max((f2 * f2)[mk].sum(), 1e-300))
        cy, cx = centres[k]
        if refine and mk.sum() > 8 and amp > 0:
            from scipy.optimize import least_squares

            yy, xx = np.nonzero(mk)
            data = ik[yy, xx]

            def resid(p, yy=yy, xx=xx, data=data):
                s2, w2 = _s_w(geometry, (p[0], p[1]), yy, xx)
                mod2 = _model(s2, w2, p[2] * 1e-9, p[3])
                return (data - mod2) / np.sqrt(np.maximum(mod2, 0) + 1.0)

            x0 = np.array([cy, cx, d * 1e9, amp])
            lb = np.array([cy - 2, cx - 2, d * 0.8e9, 0.0])
            ub = np.array([cy + 2, cx + 2, d * 1.2e9, max(amp * 10, 1e-9)])
            try:
                res = least_squares(resid, np.clip(x0, lb, ub), bounds=(lb, ub), x_scale="jac",
                                    max_nfev=60)
                cy, cx, d, amp = res.x[0], res.x[1], res.x[2] * 1e-9, res.x[3]
            except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover - odd data
                log.debug("sphere refinement failed: %s", exc)
        s_abs, wgt = _radial_s(geometry, (cy, cx))
        model = _model(s_abs, wgt, d, amp)
        chi2 = float((((ik - model) ** 2) / (model + 1.0))[mk].sum() / max(mk.sum() - 4, 1))
        out["diameter_m"][k] = d
        out["intensity"][k] = amp
        out["chi2"][k] = chi2
        out["centre_px"][k] = (cy, cx)
    return out


# --------------------------------------------------------------------------- filters, crop
def size_filter(diameters, k: float = 3.0) -> tuple[np.ndarray, float, float]:
    """Keep diameters within ``mode +- k * 1.4826 MAD``: (bool (B,), mode, MAD).

    The mode is the peak of a Gaussian kernel density (Silverman bandwidth) of the diameters;
    the MAD is taken about the mode over the diameters within 25 % of it.

    Examples
    --------
    >>> keep, mode, mad = size_filter([70, 71, 69, 70.5, 140, 69.5, 30])
    >>> keep.astype(int).tolist()
    [1, 1, 1, 1, 0, 1, 0]
    """
    d = np.asarray(diameters, dtype=np.float64).ravel()
    fin = np.isfinite(d) & (d > 0)
    if fin.sum() < 2:
        return fin.copy(), float(np.nanmedian(d)) if fin.any() else float("nan"), 0.0
    x = d[fin]
    bw = 1.06 * max(np.std(x), 1e-12 * abs(x.mean())) * x.size ** (-0.2)
    q1, q3 = np.percentile(x, [25, 75])
    bw = min(bw, 0.9 * max((q3 - q1) / 1.34, 1e-12) * x.size ** (-0.2)) or bw
    grid = np.linspace(x.min(), x.max(), 512)
    dens = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / bw) ** 2).sum(axis=1)
    mode = float(grid[int(np.argmax(dens))])
    near = x[np.abs(x - mode) <= 0.25 * mode]
    mad = 1.4826 * float(np.median(np.abs(near - mode))) if near.size else 0.0
    mad = max(mad, 1e-3 * mode)
    keep = fin & (np.abs(d - mode) <= k * mad)
    return keep, mode, mad


def crop_patterns(frames, centres, size: int, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``size`` x ``size`` patches with each pattern's centre at ``size // 2``.

    The centre is rounded to the nearest pixel (the sub-pixel rest is the caller's:
    ``centres - np.round(centres)``).  Pixels beyond the detector are 0 and unmeasured.

    Returns
    -------
    frames : numpy.ndarray
        (B, size, size) float32.
    masks : numpy.ndarray
        (B, size, size) bool, True = measured.

    Examples
    --------
    >>> f, m = crop_patterns(np.ones((1, 8, 8)), [(4, 4)], 4)
    >>> f.shape, bool(m.all())
    ((1, 4, 4), True)
    """
    a = _frames3(frames)
    b, h, w = a.shape
    size = int(size)
    if size < 2:
        raise InputError(f"crop size must be >= 2, got {size}")
    mk = np.broadcast_to(_mask_for(mask, a.shape), a.shape)
    c = np.rint(np.asarray(centres, dtype=np.float64).reshape(b, 2)).astype(np.int64)
    out = np.zeros((b, size, size), dtype=np.float32)
    om = np.zeros((b, size, size), dtype=bool)
    for k in range(b):
        y0, x0 = c[k, 0] - size // 2, c[k, 1] - size // 2
        sy0, sx0 = max(0, y0), max(0, x0)
        sy1, sx1 = min(h, y0 + size), min(w, x0 + size)
        if sy1 <= sy0 or sx1 <= sx0:
            continue
        out[k, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = a[k, sy0:sy1, sx0:sx1]
        om[k, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = mk[k, sy0:sy1, sx0:sx1]
    out[~om] = 0.0
    return out, om


def scale_255(frames) -> np.ndarray:
    """The VR-RK paper's per-pattern scaling: negatives to 0, then ``x *= 255 / x.max()``.

    Examples
    --------
    >>> scale_255(np.array([[[-1.0, 2.0], [4.0, 1.0]]])).tolist()
    [[[0.0, 127.5], [255.0, 63.75]]]
    """
    a = np.clip(_frames3(frames), 0, None)
    mx = a.max(axis=(1, 2), keepdims=True)
    return np.where(mx > 0, a * (255.0 / np.where(mx > 0, mx, 1.0)), 0.0).astype(np.float32)


# --------------------------------------------------------------------------- a whole stack
def preprocess_stack(src, dst, *, crop: int | None = None, scale255: bool = False,
                     hits_only: bool = True, threshold: float | None = None,
                     size_filter_k: float | None = None, fit: bool = True, refine: bool = False,
                     d_range: tuple[float, float] = (30e-9, 300e-9), chunk: int = 64,
                     progress: bool = False, wavelength: float | None = None,
                     distance: float | None = None, pixel_size: float | None = None) -> dict:
    """Hit finding, centring, sphere fit, size filter, crop and scaling of a whole stack.

    Two passes over ``src`` (chunk by chunk): the first scores, centres and fits every frame
    (only a few numbers per frame stay in memory), the second writes the kept frames, cropped
    about their centres, to ``dst`` (atomically) with per-pattern arrays ``source_index``,
    ``hit_score``, ``centre_px`` (in the source frame), ``fit_diameter_m``,
    ``fit_intensity``, ``fit_chi2``, ``fit_pearson`` and, when cropped, ``pattern_mask``
    (the per-pattern mask, 1 = measured; :func:`phasekit.io.spi.read_masks`).  Labels and
    the simulation's per-pattern arrays are carried over.

    Parameters
    ----------
    src, dst : str or os.PathLike
        Input stack and output stack.
    crop : int, optional
        Side of the cropped patterns (default: no crop; frames keep the detector's shape).
    scale255 : bool
        Apply :func:`scale_255` (the VR-RK paper's format) to the written frames.
    hits_only : bool
        Keep only the hits.
    threshold : float, optional
        Hit threshold in photons (default from the data, :func:`find_hits`).
    size_filter_k : float, optional
        Apply :func:`size_filter` with this ``k`` (default: no size filter).
    fit : bool
        Fit the sphere model (needed by the size filter).
    refine : bool
        Joint refinement in the sphere fit (slower).
    d_range : (float, float)
        Diameters searched by the fit, metres.
    chunk : int
        Frames per read.
    progress : bool
        Progress bars.
    wavelength, distance, pixel_size : float, optional
        Metres; override the file's geometry (or fill it in: CXIDB/LCLS pnCCD files may lack
        it).

    Returns
    -------
    dict
        ``n_in``, ``n_hits``, ``n_out``, ``threshold``, ``size_mode_m``, ``size_mad_m``.
    """
    from tqdm.auto import tqdm

    from ..io.spi import (
        StackWriter,
        read_frames,
        read_pattern_metadata,
        read_stack_info,
    )

    info = read_stack_info(src)
    meta = info.metadata
    for k, v in (("wavelength", wavelength), ("distance", distance), ("pixel_size", pixel_size)):
        if v is not None:
            if not (math.isfinite(float(v)) and float(v) > 0):
                raise ConfigError(f"{k} must be positive, got {v}")
            meta[k] = float(v)
    if not (meta.get("wavelength") and meta.get("distance") and meta.get("pixel_size")) and fit:
        raise InputError(f"{info.path}: the sphere fit needs the wavelength, distance and pixel "
                         "size (not all in the file); use --no-fit")
    chunk = max(1, int(chunk))
    n = info.n
    scores = np.zeros(n)
    centres = np.zeros((n, 2))
    fits = {k: np.full(n, np.nan) for k in ("diameter_m", "intensity", "chi2", "pearson")}
    geom = None
    if meta.get("wavelength") and meta.get("distance") and meta.get("pixel_size"):
        geom = DetectorGeometry(info.shape, meta["pixel_size"], meta["distance"],
                                meta["wavelength"], centre=info.centre,
                                polarization=(meta.get("params") or {}).get("polarization",
                                                                           "horizontal"))
    guess = info.centre if info.centre is not None else (info.shape[0] // 2, info.shape[1] // 2)
    with tqdm(total=n, unit="pattern", desc="preprocess: fit", disable=not progress) as bar:
        for c0 in range(0, n, chunk):
            c1 = min(n, c0 + chunk)
            fr = read_frames(info, c0, c1)
            scores[c0:c1] = hit_scores(fr, info.mask)
            centres[c0:c1] = find_centres(fr, info.mask, guess=guess)
            if fit and geom is not None:
                f = fit_sphere(fr, geom, info.mask, centres[c0:c1], d_range=d_range,
                               refine=refine)
                for k in fits:
                    fits[k][c0:c1] = f[k]
                centres[c0:c1] = f["centre_px"]
            bar.update(c1 - c0)
    hits, thr = find_hits(scores, threshold=threshold)
    keep = hits.copy() if hits_only else np.ones(n, dtype=bool)
    mode = mad = None
    if size_filter_k is not None:
        if not fit:
            raise ConfigError("the size filter needs the sphere fit")
        ok, mode, mad = size_filter(np.where(hits, fits["diameter_m"], np.nan), size_filter_k)
        keep &= ok
    idx = np.flatnonzero(keep)
    carry = [k for k in meta.get("per_pattern", [])
             if k not in ("pattern_mask", "source_index", "centre_px")]
    size = int(crop) if crop else None
    out_shape = (size, size) if size else info.shape
    md = {k: meta.get(k) for k in ("wavelength", "distance", "pixel_size")}
    md.update(source=str(info.path), generator="phasekit.spi.preprocess",
              preprocess={"crop": size, "scale255": bool(scale255), "hits_only": bool(hits_only),
                          "threshold_photons": thr, "size_filter_k": size_filter_k,
                          "size_mode_m": mode, "size_mad_m": mad, "refine": bool(refine)},
              source_params=meta.get("params") or {})
    if size:
        md["centre"] = [size // 2, size // 2]
    elif info.centre is not None:
        md["centre"] = list(info.centre)
    global_mask = info.mask
    if size:
        global_mask = None
    with StackWriter(dst, out_shape, mask=global_mask, metadata=md) as wr, \
            tqdm(total=idx.size, unit="pattern", desc="preprocess: write",
                 disable=not progress) as bar:
        for c0 in range(0, idx.size, chunk):
            sel = idx[c0:c0 + chunk]
            lo, hi = int(sel[0]), int(sel[-1]) + 1
            fr = read_frames(info, lo, hi)[sel - lo]
            per = {"source_index": sel.astype(np.int64), "hit_score": scores[sel],
                   "centre_px": centres[sel], "fit_diameter_m": fits["diameter_m"][sel],
                   "fit_intensity": fits["intensity"][sel], "fit_chi2": fits["chi2"][sel],
                   "fit_pearson": fits["pearson"][sel]}
            for k in carry:
                per[k] = read_pattern_metadata(info, k, lo, hi)[sel - lo]
            if size:
                fr, pm = crop_patterns(fr, centres[sel], size, info.mask)
                per["pattern_mask"] = pm.astype(np.uint8)
            if scale255:
                fr = scale_255(fr)
            labels = None if info.labels is None else info.labels[sel]
            wr.append(fr, labels=labels, **per)
            bar.update(sel.size)
    return {"n_in": n, "n_hits": int(hits.sum()), "n_out": int(idx.size), "threshold": thr,
            "size_mode_m": mode, "size_mad_m": mad, "path": Path(os.fspath(dst))}
