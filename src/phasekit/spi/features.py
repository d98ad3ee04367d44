"""Features of SPI patterns for single-hit classification.

Four families, kept apart so a benchmark can tell which helps (the VR-RK paper, Xian et al. 2022
section 4.4, feeds phased reconstructions to ISOMAP + KNN but does not say which representation):

* ``raw`` (F1): ``log1p`` of the pattern (unmeasured pixels 0), block-averaged to ``size``
  pixels a side, the input of the CNN line of work on PR772 hits;
* ``autocorrelation`` (F2): ``|F^-1 I|`` of the pattern with its unmeasured centre filled
  (:func:`phasekit.cdi.shrinkwrap.fill_missing_centre` through
  :func:`phasekit.cdi.autocorrelation_support`'s helper), centred crop of ``size`` pixels,
  divided by its maximum outside the origin; translation invariant and needs no phasing;
* ``reconstruction`` (F3): ``|x|`` of the batch-phased image (already centred on the particle by
  :mod:`phasekit.spi.phasing`), crop of ``size`` pixels, divided by its maximum;
* ``physics`` (F4): scalars after Bobkov et al. 2015 (diffraction-physics parameters): photons
  on measured pixels; a uniform-sphere fit of the radial profile
  ``A [3 (sin u - u cos u) / u^3]^2``, ``u = a r`` (Feigin 1987, as libspimage's sphere model)
  giving ``a`` (a size proxy), ``1 - Pearson`` of the profile fit and a 2-D Poisson
  chi^2 per pixel of the pattern against the fitted sphere (a dimer's fringes are not
  circular); the mean ring anisotropy (angular std / mean of the rings); and, from a phased
  result, the support area, the eigenvalues of its second-moment matrix and their ratio
  (an elongated support = a multiple hit), R_F and the PRTF resolution.

The sphere fit is our own minimal one (a brute-force scan of ``a`` on a log grid, linear
least squares for ``A``); it needs no geometry, only centred patterns.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import InputError

__all__ = [
    "FEATURE_SETS",
    "autocorrelation_features",
    "feature_sets",
    "physics_features",
    "raw_features",
    "reconstruction_features",
    "sphere_fit",
    "support_moments",
]

FEATURE_SETS = ("raw", "autocorrelation", "reconstruction", "physics")


def _frames(frames, mask):
    a = np.asarray(frames, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"patterns must be (N, H, W), got shape {a.shape}")
    if mask is None:
        m = np.ones(a.shape, bool)
    else:
        m = np.broadcast_to(np.asarray(mask, bool), a.shape)
    a = np.where(m & np.isfinite(a), np.clip(np.nan_to_num(a, nan=0.0), 0, None), 0.0)
    return a, m


def _centre_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[-2:]
    s = min(size, h, w)
    y0, x0 = h // 2 - s // 2, w // 2 - s // 2
    return a[..., y0:y0 + s, x0:x0 + s]


def _block_mean(a: np.ndarray, size: int) -> np.ndarray:
    n, h, w = a.shape
    fy, fx = max(1, h // size), max(1, w // size)
    a = a[:, : (h // fy) * fy, : (w // fx) * fx]
    return _centre_crop(a.reshape(n, h // fy, fy, w // fx, fx).mean(axis=(2, 4)), size)


def raw_features(frames, mask=None, size: int = 32) -> np.ndarray:
    """F1: ``log1p`` patterns block-averaged to ``size`` x ``size``, flattened (N, size^2).

    Examples
    --------
    >>> raw_features(np.ones((3, 64, 64)), size=16).shape
    (3, 256)
    """
    a, _ = _frames(frames, mask)
    return _block_mean(np.log1p(a), size).reshape(a.shape[0], -1)


def autocorrelation_features(frames, mask=None, size: int = 24) -> np.ndarray:
    """F2: centred autocorrelation moduli, crop ``size`` x ``size``, max-normalised (N, size^2).

    Examples
    --------
    >>> autocorrelation_features(np.random.default_rng(0).random((2, 32, 32)), size=8).shape
    (2, 64)
    """
    from ..cdi.shrinkwrap import fill_missing_centre

    a, m = _frames(frames, mask)
    out = []
    for k in range(a.shape[0]):
        filled = fill_missing_centre(a[k], m[k]) if not m[k].all() else a[k]
        ac = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(filled))))
        c = _centre_crop(ac, size).copy()
        cy, cx = c.shape[0] // 2, c.shape[1] // 2
        peak = np.max(np.where(np.hypot(*np.meshgrid(np.arange(c.shape[0]) - cy, np.arange(c.shape[1]) - cx,
                                                     indexing="ij")) > 1.5, c, 0))
        out.append((c / peak if peak > 0 else c).ravel())
    return np.stack(out)


def reconstruction_features(images, size: int = 32) -> np.ndarray:
    """F3: ``|image|`` of centred reconstructions, crop ``size`` x ``size``, max-normalised.

    Examples
    --------
    >>> reconstruction_features(np.ones((2, 64, 64), complex), size=8).shape
    (2, 64)
    """
    a = np.abs(np.asarray(images))
    if a.ndim != 3:
        raise InputError(f"images must be (N, H, W), got shape {a.shape}")
    c = _centre_crop(a, size).reshape(a.shape[0], -1)
    mx = c.max(axis=1, keepdims=True)
    return np.where(mx > 0, c / np.where(mx > 0, mx, 1.0), 0.0)


def _sphere(u):
    u = np.where(u == 0, 1e-12, u)
    return (3 * (np.sin(u) - u * np.cos(u)) / u ** 3) ** 2


def sphere_fit(pattern, mask=None, n_grid: int = 96) -> dict:
    """Fit a uniform-sphere pattern to a centred pattern's radial profile.

    Returns ``{"a", "scale", "pearson_loss", "chi2"}``: ``u = a r`` (``r`` in pixels from
    ``N // 2``; the first zero is at ``r = 4.493 / a``), the intensity scale, ``1 - Pearson`` of
    the profile fit and the Poisson chi^2 per measured pixel of the 2-D pattern against the
    fitted sphere.

    Examples
    --------
    >>> r = np.hypot(*np.meshgrid(np.arange(64) - 32, np.arange(64) - 32, indexing="ij"))
    >>> I = 1e4 * _sphere(0.5 * r)
    >>> f = sphere_fit(I)
    >>> abs(f["a"] - 0.5) < 0.02 and f["pearson_loss"] < 1e-3
    True
    """
    I = np.asarray(pattern, dtype=np.float64)
    m = np.ones(I.shape, bool) if mask is None else np.asarray(mask, bool)
    m = m & np.isfinite(I)
    I = np.where(m, np.clip(np.nan_to_num(I), 0, None), 0.0)
    h, w = I.shape
    r = np.hypot(*np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij"))
    ri = np.floor(r + 0.5).astype(int)
    nb = min(h, w) // 2
    sel = m & (ri < nb)
    cnt = np.bincount(ri[sel], minlength=nb)[:nb]
    prof = np.bincount(ri[sel], weights=I[sel], minlength=nb)[:nb] / np.maximum(cnt, 1)
    ok = cnt > 0
    rr = np.arange(nb)[ok]
    p = prof[ok]
    best = (np.inf, 1.0, 0.0)
    if p.size >= 3 and p.max() > 0:
        sp = np.sqrt(p)
        for a in np.geomspace(4.493 / (0.7 * nb), 4.493 / 1.5, n_grid):
            mod = np.sqrt(_sphere(a * rr))
            if mod.std() == 0 or sp.std() == 0:
                continue
            loss = 1.0 - float(np.corrcoef(sp, mod)[0, 1])
            if loss < best[0]:
                scale = float((p * mod ** 2).sum() / max((mod ** 4).sum(), 1e-300))
                best = (loss, a, scale)
    loss, a, scale = best
    model = scale * _sphere(a * r)
    chi2 = float((((I - model) ** 2) / np.maximum(model, 1.0))[m].mean()) if m.any() else float("nan")
    return {"a": float(a), "scale": scale, "pearson_loss": float(loss) if np.isfinite(loss) else 1.0,
            "chi2": chi2}


def _ring_anisotropy(I, m) -> float:
    h, w = I.shape
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    ri = np.floor(np.hypot(yy, xx) + 0.5).astype(int)
    vals = []
    for rad in range(3, min(h, w) // 2, 2):
        s = m & (ri == rad)
        if s.sum() >= 8:
            v = I[s]
            if v.mean() > 0:
                vals.append(v.std() / v.mean())
    return float(np.mean(vals)) if vals else 0.0


def support_moments(support) -> tuple[float, float, float, float]:
    """``(area, lambda_1, lambda_2, lambda_2 / lambda_1)`` of a 2-D support (second moments).

    Examples
    --------
    >>> s = np.zeros((16, 16), bool); s[6:10, 2:14] = True
    >>> a, l1, l2, ratio = support_moments(s)
    >>> a, ratio > 5
    (48.0, True)
    """
    s = np.asarray(support, bool)
    area = float(s.sum())
    if area < 2:
        return area, 0.0, 0.0, 1.0
    y, x = np.nonzero(s)
    cov = np.cov(np.stack([y, x]).astype(float))
    ev = np.sort(np.linalg.eigvalsh(cov))
    return area, float(ev[0]), float(ev[1]), float(ev[1] / max(ev[0], 1e-9))


def physics_features(frames, mask=None, result=None) -> tuple[np.ndarray, list[str]]:
    """F4: physics scalars per pattern, and their names.

    Parameters
    ----------
    frames : array (N, H, W)
        Centred patterns.
    mask : bool array, optional
        True = measured.
    result : BatchResult, optional
        A phased result of the same patterns: adds support moments, R_F and PRTF resolution.

    Examples
    --------
    >>> X, names = physics_features(np.random.default_rng(0).poisson(2.0, (2, 32, 32)))
    >>> X.shape == (2, len(names))
    True
    """
    a, m = _frames(frames, mask)
    rows = []
    names = ["log_photons", "sphere_a", "sphere_pearson_loss", "log_sphere_chi2", "ring_anisotropy"]
    if result is not None:
        if len(result) != a.shape[0]:
            raise InputError(f"{len(result)} phased patterns for {a.shape[0]} frames")
        names += ["support_area", "moment_min", "moment_max", "moment_ratio", "rfactor", "prtf_resolution"]
    for k in range(a.shape[0]):
        f = sphere_fit(a[k], m[k])
        row = [np.log10(1.0 + a[k][m[k]].sum()), f["a"], f["pearson_loss"], np.log10(1e-6 + f["chi2"]),
               _ring_anisotropy(a[k], m[k])]
        if result is not None:
            row += list(support_moments(result.support[k]))
            row += [float(result.rfactor[k]), float(result.resolution[k])]
        rows.append(row)
    X = np.asarray(rows, dtype=np.float64)
    # undefined entries (failed patterns, no PRTF) -> column median, so classifiers can run
    for j in range(X.shape[1]):
        bad = ~np.isfinite(X[:, j])
        if bad.any():
            fill = np.nanmedian(np.where(bad, np.nan, X[:, j])) if (~bad).any() else 0.0
            X[bad, j] = fill
    return X, names


def feature_sets(frames, mask=None, result=None, *, raw_size: int = 32, ac_size: int = 24,
                 recon_size: int = 32) -> dict[str, np.ndarray]:
    """All feature sets available for these patterns (``reconstruction`` only with a result).

    Examples
    --------
    >>> fs = feature_sets(np.random.default_rng(0).poisson(2.0, (3, 32, 32)))
    >>> sorted(fs)
    ['autocorrelation', 'physics', 'raw']
    """
    out = {"raw": raw_features(frames, mask, raw_size),
           "autocorrelation": autocorrelation_features(frames, mask, ac_size),
           "physics": physics_features(frames, mask, result)[0]}
    if result is not None:
        out["reconstruction"] = reconstruction_features(result.image, recon_size)
    return out
