"""Tomography metrics: R_F (thesis Eqn 3.9), R2, FSC with the RESIRE binning, anisotropy.

``R_F = (1/n) sum_theta sum_xy |P_theta O - b_theta| / sum_xy |b_theta|`` -- the mean over
projections of per-projection relative L1 errors; the printed Eqn 3.9 (§3.3.1) has a stray ``|``,
corrected here.  ``R2 = (1/n) sum_theta ||P_theta O - b_theta||_2 / ||b_theta||_2`` (group code,
not thesis).
Both accept per-projection masks (True / weight > 0 = measured).

The FSC follows the group's ``FourierShellCorrelate(obj1, obj2, numBins)`` (the thesis, §3.3.1,
names the FSC but gives no formula, bins or threshold):
centred FFTs, per-axis normalised radius ``(i - N//2) / (N/2)`` (Nyquist = 1), ``numBins``
half-open bins ``[k_i, k_i+1)`` of ``linspace(0, 1, numBins + 1)``, corners beyond 1 ignored,
``FSC = Re sum F1 conj(F2) / sqrt(sum |F1|^2 sum |F2|^2)``; the bin centres are returned.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.device import to_numpy
from ..core.errors import InputError
from ..metrics import frc_threshold_crossing

__all__ = ["rfactor_projections", "r2_projections", "fsc", "fsc_resolution", "directional_fsc",
           "anisotropy", "relative_error"]


def _per_projection(calc, meas, mask, p):
    calc = torch.as_tensor(calc)
    meas = torch.as_tensor(meas).to(calc)
    if calc.shape != meas.shape:
        raise InputError(f"calculated projections {tuple(calc.shape)} != measured {tuple(meas.shape)}")
    d = (calc - meas).abs()
    b = meas.abs()
    if mask is not None:
        m = torch.as_tensor(mask).to(device=calc.device, dtype=calc.dtype)
        d, b = d * m, b * m
    dims = tuple(range(1, calc.ndim))
    if p == 1:
        num, den = d.sum(dims), b.sum(dims)
    else:
        num, den = d.pow(2).sum(dims).sqrt(), b.pow(2).sum(dims).sqrt()
    ok = den > 0
    if not bool(ok.any()):  # the relative error is undefined: never return NaN
        raise InputError("the measured projections are zero on every (masked) pixel: "
                         "the relative error R_F is undefined")
    return float((num[ok] / den[ok]).mean())


def rfactor_projections(calc, meas, mask=None) -> float:
    """R_F of thesis Eqn 3.9 (mean of per-projection relative L1 errors).

    Projections whose measured sum is zero are skipped; when every one is zero the R-factor is
    undefined and an :class:`InputError` is raised (never NaN).

    Examples
    --------
    >>> import torch
    >>> b = torch.ones(2, 4, 4)
    >>> rfactor_projections(1.5 * b, b)
    0.5
    """
    return _per_projection(calc, meas, mask, 1)


def r2_projections(calc, meas, mask=None) -> float:
    """R2: mean of per-projection relative L2 errors (all-zero measurements: as
    :func:`rfactor_projections`)."""
    return _per_projection(calc, meas, mask, 2)


def _vol(a, name):
    arr = np.asarray(to_numpy(a), dtype=np.float64)
    if arr.ndim != 3:
        raise InputError(f"{name} must be a 3-D volume, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or Inf")
    return arr


def _fftc(a):
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(a)))


def _norm_radius(shape):
    r2 = np.zeros(shape)
    comps = []
    for ax, n in enumerate(shape):
        k = (np.arange(n) - n // 2) / (n / 2.0)
        sh = [1] * len(shape)
        sh[ax] = n
        comps.append(k.reshape(sh))
        r2 = r2 + (k ** 2).reshape(sh)
    return np.sqrt(r2), comps


def _shells(F1, F2, kr, n_bins, sel=None):
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.floor(kr * n_bins).astype(np.int64)
    use = kr < 1.0
    if sel is not None:
        use &= sel
    i = idx[use]
    num = np.bincount(i, (F1 * np.conj(F2)).real[use], n_bins)
    p1 = np.bincount(i, (np.abs(F1) ** 2)[use], n_bins)
    p2 = np.bincount(i, (np.abs(F2) ** 2)[use], n_bins)
    den = np.sqrt(p1 * p2)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return 0.5 * (edges[:-1] + edges[1:]), curve


def fsc(a, b, n_bins=None):
    """Fourier shell correlation with the RESIRE code's binning.

    Parameters
    ----------
    a, b : 3-D arrays of equal shape (e.g. reconstruction and ground truth)
    n_bins : int, optional
        Number of shells between 0 and Nyquist; default ``min(shape) // 2``.

    Returns
    -------
    freq : ndarray
        Shell centres as a fraction of Nyquist (1 = 0.5 cycles/voxel).
    curve : ndarray
    """
    x, y = _vol(a, "a"), _vol(b, "b")
    if x.shape != y.shape:
        raise InputError(f"FSC volumes differ in shape: {x.shape} != {y.shape}")
    nb = min(x.shape) // 2 if n_bins is None else int(n_bins)
    if nb < 2:
        raise InputError(f"n_bins must be >= 2, got {n_bins!r}")
    kr, _ = _norm_radius(x.shape)
    return _shells(_fftc(x), _fftc(y), kr, nb)


def fsc_resolution(freq, curve, threshold=0.5) -> float:
    """First crossing of ``threshold`` (0.5 or 0.143) as a fraction of Nyquist (NaN if none)."""
    return frc_threshold_crossing(freq, curve, threshold)


def directional_fsc(a, b, axis: int, half_angle: float = 30.0, n_bins=None):
    """FSC restricted to a double cone of ``half_angle`` degrees around Fourier ``axis``.

    With ``axis=2`` (z, the beam / missing-wedge direction of a y-tilt series) this measures the
    resolution along the elongation direction; ``axis=0`` (x) the in-plane one.
    """
    x, y = _vol(a, "a"), _vol(b, "b")
    if x.shape != y.shape:
        raise InputError(f"FSC volumes differ in shape: {x.shape} != {y.shape}")
    nb = min(x.shape) // 2 if n_bins is None else int(n_bins)
    kr, comps = _norm_radius(x.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosang = np.abs(np.broadcast_to(comps[axis], x.shape)) / np.where(kr > 0, kr, 1)
    sel = cosang >= np.cos(np.deg2rad(half_angle))
    return _shells(_fftc(x), _fftc(y), kr, nb, sel)


def anisotropy(a, truth, half_angle: float = 30.0, n_bins=None) -> dict:
    """Missing-wedge anisotropy of a reconstruction ``a`` against the ``truth``.

    Returns the mean FSC over shells below Nyquist in the z cone and in the x cone, their ratio
    (``fsc_z / fsc_x``, 1 = isotropic, smaller = more missing-wedge smearing), and the relative
    error of the central XZ and XY planes.
    """
    fz = directional_fsc(a, truth, 2, half_angle, n_bins)[1]
    fx = directional_fsc(a, truth, 0, half_angle, n_bins)[1]
    mz, mx = float(np.nanmean(fz)), float(np.nanmean(fx))
    x, t = _vol(a, "a"), _vol(truth, "truth")
    cy, cz = t.shape[1] // 2, t.shape[2] // 2
    exz = float(np.linalg.norm(x[:, cy, :] - t[:, cy, :]) / max(np.linalg.norm(t[:, cy, :]), 1e-30))
    exy = float(np.linalg.norm(x[:, :, cz] - t[:, :, cz]) / max(np.linalg.norm(t[:, :, cz]), 1e-30))
    return {"fsc_z": mz, "fsc_x": mx, "ratio": mz / mx if mx else float("nan"),
            "err_xz": exz, "err_xy": exy}


def relative_error(a, truth) -> float:
    """``||a - truth|| / ||truth||`` (no alignment: tomography has no trivial ambiguity once the
    geometry is fixed)."""
    x, t = _vol(a, "a"), _vol(truth, "truth")
    if x.shape != t.shape:
        raise InputError(f"volumes differ in shape: {x.shape} != {t.shape}")
    return float(np.linalg.norm(x - t) / max(np.linalg.norm(t), 1e-300))
