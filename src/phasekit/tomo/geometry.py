"""Tomographic geometry: Euler angles, rotation matrices and tilt-series angle sets.

Conventions (Pham thesis Ch. 3, §3.2.1, Eqn 3.4 and the ZYX Euler order of §3.2.1.2; the thesis
gives neither the rotation signs nor the array axis order and centre, chosen here as below)
-----------------------------------------------------------------------------------------------
* A volume is stored with array index order ``(x, y, z)`` and shape ``(Nx, Ny, Nz)``; a projection
  with index order ``(x, y)`` and shape ``(Dx, Dy)``.  The centre of every axis is index ``N // 2``
  (the FFT convention of :mod:`phasekit.core.fft`).  ``y`` is the single tilt axis, ``z`` the beam
  direction at zero tilt (and the missing-wedge direction).
* An orientation is a ZYX Euler triple ``(phi, theta, psi)`` in **degrees** with
  ``R = Rz(phi) @ Ry(theta) @ Rx(psi)``, each factor the standard right-handed (active,
  counter-clockwise) rotation, e.g. ``Ry(t) = [[c, 0, s], [0, 1, 0], [-s, 0, c]]``.  The thesis
  gives the order but not the signs; the signs are those of the group's public code
  (``MatrixQuaternionRot``), which we checked returns the standard right-handed rotation.
* A voxel at centred coordinates ``r = (u, v, w)`` lands on the detector at
  ``(x, y) = (R^T r)[:2]`` (Eqn 3.4).  The beam direction in the object frame is ``R e_z``.
  For a single y tilt ``theta``: ``x = cos(theta) u - sin(theta) w``, ``y = v``.
* A scalar tilt angle ``theta`` means ``(0, theta, 0)``.

GENFIRE angle files use ZYZ (``R = Rz(phi) Ry(theta) Rz(psi)``); :func:`zyz_to_zyx` and
:func:`zyx_to_zyz` convert between the two (same matrix, different triple).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..core.errors import InputError

__all__ = ["as_euler", "rotation_matrices", "euler_from_matrix", "zyz_to_zyx", "zyx_to_zyz",
           "tilt_range", "single_axis", "dual_axis", "random_euler", "is_single_axis",
           "detector_coordinates", "max_tilt"]


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def as_euler(angles) -> np.ndarray:
    """Normalise angles to an ``(n, 3)`` float64 array of ZYX Euler triples in degrees.

    Parameters
    ----------
    angles : scalar, 1-D sequence or ``(n, 3)`` array
        Tilt angles in degrees.  Scalars / 1-D arrays are single y-axis tilts ``(0, theta, 0)``
        (the convention of the RESIRE code); an ``(n, 3)`` array is ``(phi, theta, psi)``.

    Raises
    ------
    InputError
        Empty, non-finite or wrongly shaped input.
    """
    try:
        a = np.asarray(angles, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"angles must be numbers in degrees, got {type(angles).__name__}") from None
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim == 1:
        a = np.stack([np.zeros_like(a), a, np.zeros_like(a)], -1)
    if a.ndim != 2 or a.shape[1] != 3:
        raise InputError(f"angles must be a list of tilt angles or an (n, 3) array of Euler angles, "
                         f"got shape {a.shape}")
    if a.shape[0] == 0:
        raise InputError("angles is empty")
    if not np.all(np.isfinite(a)):
        raise InputError("angles contain NaN or Inf")
    return a


def rotation_matrices(angles, convention: str = "zyx") -> np.ndarray:
    """Rotation matrices ``R = Rz(phi) Ry(theta) Rx(psi)`` (``"zyx"``) or ``Rz Ry Rz`` (``"zyz"``).

    Parameters
    ----------
    angles : see :func:`as_euler`
    convention : {"zyx", "zyz"}

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3), float64
    """
    a = np.deg2rad(as_euler(angles))
    conv = str(convention).lower()
    if conv == "zyx":
        return _rz(a[:, 0]) @ _ry(a[:, 1]) @ _rx(a[:, 2])
    if conv == "zyz":
        return _rz(a[:, 0]) @ _ry(a[:, 1]) @ _rz(a[:, 2])
    raise InputError(f"unknown Euler convention {convention!r}; use 'zyx' or 'zyz'")


def euler_from_matrix(R, convention: str = "zyx") -> np.ndarray:
    """Inverse of :func:`rotation_matrices`: ``(n, 3)`` Euler triples in degrees.

    ZYX: ``theta = asin(-R[2, 0])`` in [-90, 90]; ZYZ: ``theta = acos(R[2, 2])`` in [0, 180].  At
    the gimbal-lock poles the first angle is set to 0.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.ndim == 2:
        R = R[None]
    if R.ndim != 3 or R.shape[1:] != (3, 3):
        raise InputError(f"R must be (n, 3, 3), got shape {R.shape}")
    conv = str(convention).lower()
    out = np.zeros((R.shape[0], 3))
    eps = 1e-9
    if conv == "zyx":
        s = np.clip(-R[:, 2, 0], -1.0, 1.0)
        th = np.arcsin(s)
        lock = np.abs(np.cos(th)) < eps
        phi = np.where(lock, 0.0, np.arctan2(R[:, 1, 0], R[:, 0, 0]))
        psi = np.where(lock, np.arctan2(-R[:, 1, 2] * np.sign(s), R[:, 1, 1]),
                       np.arctan2(R[:, 2, 1], R[:, 2, 2]))
        out[:] = np.stack([phi, th, psi], -1)
    elif conv == "zyz":
        c = np.clip(R[:, 2, 2], -1.0, 1.0)
        th = np.arccos(c)
        lock = np.abs(np.sin(th)) < eps
        phi = np.where(lock, 0.0, np.arctan2(R[:, 1, 2], R[:, 0, 2]))
        psi = np.where(lock, np.arctan2(R[:, 1, 0], R[:, 0, 0] * np.sign(c)),
                       np.arctan2(R[:, 2, 1], -R[:, 2, 0]))
        out[:] = np.stack([phi, th, psi], -1)
    else:
        raise InputError(f"unknown Euler convention {convention!r}; use 'zyx' or 'zyz'")
    return np.rad2deg(out)


def zyz_to_zyx(angles) -> np.ndarray:
    """Convert GENFIRE (ZYZ) Euler triples to phasekit/RESIRE (ZYX) triples, same rotation."""
    return euler_from_matrix(rotation_matrices(angles, "zyz"), "zyx")


def zyx_to_zyz(angles) -> np.ndarray:
    """Convert ZYX Euler triples to ZYZ (GENFIRE) triples, same rotation."""
    return euler_from_matrix(rotation_matrices(angles, "zyx"), "zyz")


def tilt_range(start: float, stop: float, step: float) -> np.ndarray:
    """Inclusive tilt range in degrees, like MATLAB ``start:step:stop`` (e.g. ``-70:3.5:70``)."""
    for n, v in (("start", start), ("stop", stop), ("step", step)):
        if not math.isfinite(float(v)):
            raise InputError(f"tilt range {n} must be finite, got {v!r}")
    if step == 0 or (stop - start) * step < 0:
        raise InputError(f"tilt range {start}:{step}:{stop} is empty")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return start + step * np.arange(n, dtype=np.float64)


def single_axis(thetas) -> np.ndarray:
    """``(n, 3)`` Euler triples ``(0, theta, 0)`` of a single y-axis tilt series."""
    t = np.asarray(thetas, dtype=np.float64).reshape(-1)
    return as_euler(t)


def dual_axis(thetas) -> np.ndarray:
    """Dual-axis series: the y-tilt series, then the same tilts after an in-plane rotation of
    the specimen by 90 degrees about z (a second tilt axis along x): ``(90, theta, 0)``."""
    t = np.asarray(thetas, dtype=np.float64).reshape(-1)
    first = single_axis(t)
    second = np.stack([np.full_like(t, 90.0), t, np.zeros_like(t)], -1)
    return np.concatenate([first, second], 0)


def random_euler(n: int, rng=None, *, max_tilt: float = 70.0) -> np.ndarray:
    """``n`` general Euler triples: phi, psi uniform in [-180, 180) / [-max_tilt, max_tilt] and
    theta uniform in [-max_tilt, max_tilt] (beam never more than ~max_tilt from z)."""
    from ..core.rng import make_rng

    g = make_rng(rng)
    phi = g.uniform(-180, 180, n)
    th = g.uniform(-max_tilt, max_tilt, n)
    psi = g.uniform(-max_tilt / 3, max_tilt / 3, n)
    return np.stack([phi, th, psi], -1)


def is_single_axis(angles, tol: float = 1e-9) -> bool:
    """True when every triple is ``(0, theta, 0)`` (a y-axis tilt series)."""
    a = as_euler(angles)
    return bool(np.all(np.abs(a[:, 0]) < tol) and np.all(np.abs(a[:, 2]) < tol))


def max_tilt(angles) -> float:
    """Largest angle between the beam direction ``R e_z`` and ``z``, in degrees."""
    R = rotation_matrices(angles)
    return float(np.rad2deg(np.arccos(np.clip(np.abs(R[:, 2, 2]), 0, 1))).max())


def detector_coordinates(R: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Detector ``(x, y)`` of centred object points: ``(R^T r)[:2]`` for every rotation.

    Parameters
    ----------
    R : tensor (n, 3, 3)
    coords : tensor (..., 3) of centred ``(u, v, w)``

    Returns
    -------
    tensor (n, ..., 2)
    """
    A = R[:, :, :2]  # (R^T r)_j = sum_i R[i, j] r_i, j = 0, 1
    flat = coords.reshape(-1, 3)
    out = torch.einsum("pi,nij->npj", flat, A)
    return out.reshape((R.shape[0],) + tuple(coords.shape[:-1]) + (2,))
