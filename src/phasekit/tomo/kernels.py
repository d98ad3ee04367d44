"""Compiled CPU kernels of the real-space projector pair for single-axis (y) tilt series.

For a tilt about ``y`` only (every rotation has ``R e_y = e_y``) the voxel-driven bilinear pair of
:class:`~phasekit.tomo.projectors.RealSpaceProjector` (Pham thesis §3.2.1, Eqn 3.3-3.4) decouples
into the ``Ny`` slices of the volume: voxel ``(u, v, w)`` lands on detector column
``x = R[0, 0] (u - c_u) + R[2, 0] (w - c_w) + c_x`` of detector row ``y = v - c_v + c_y`` (an
integer when the centres are integers, the default), so the bilinear weights reduce to the two
linear weights ``1 - f`` and ``f`` of ``x`` (``f = x - floor(x)``) on one detector row.

* :func:`backproject` -- ``out[u, v, w] = sum_i (1 - f) b_i[x0, y] + f b_i[x0 + 1, y]``, the
  bilinear back projection with zero padding outside the detector (what ``grid_sample`` with
  ``align_corners=True, padding_mode="zeros"`` computes);
* :func:`project` -- its exact transpose (every voxel splats onto the two detector pixels).

Layout: the kernels run on the volume in ``(Nx, Nz, Ny)`` order and on a padded detector copy
``(n, Dx + 4, Dy)`` with two zero guard columns on each side of ``x``, so the innermost loop runs
along the tilt axis ``y``, contiguous in both (it vectorises for thick volumes), and the
coordinate work (``x``, ``floor``, two weights) is done once per ``(angle, u, w)``.  A column
``x`` outside ``[-1, Dx)`` is clamped into the guard columns, where it reads zeros (back
projection) or writes values that are dropped (projection): no branches.  Coordinates are float64,
the weights and sums are in the data's dtype.  ``project`` runs its angles in parallel (each
writes its own projection), ``backproject`` its ``u`` planes (each writes its own plane): no
races, and the result does not depend on the thread count.

The reference twin is the ``grid_sample`` path of
:class:`~phasekit.tomo.projectors.RealSpaceProjector` (the only path on CUDA, for general Euler
geometries and with ``PHASEKIT_NO_NUMBA=1``); ``tests/test_tomo_kernels.py`` compares the two.
Threads follow :mod:`phasekit.cdi.kernels`: the parallel build above :data:`PARALLEL_THRESHOLD`
voxel-projections, with numba's thread count (``numba.set_num_threads``).
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["HAVE_NUMBA", "backproject", "project", "single_axis_coefficients"]

#: voxel x projection products at which the multi-threaded kernels are used
PARALLEL_THRESHOLD = 1 << 22

_GUARD = 2  # zero guard columns on each side of a padded detector row


def _build(parallel: bool):  # pragma: no cover - compiled code
    """Compile the pair; ``rng`` is a closure variable, so the serial and the parallel build
    have different cache keys (the pattern of :mod:`phasekit.cdi.kernels`)."""
    rng = numba.prange if parallel else range
    jit = numba.njit(fastmath=True, cache=True, parallel=parallel, nogil=True)

    @jit
    def project_rows(volt, pad, ca, sa, cu, cw, cx, dy):
        # volume in (Nx, Nz, Ny) order, detector (n, Dx + 4, Dy): the inner loop runs along
        # the tilt axis, contiguous in both, with the two weights of (i, u, w) in the data's
        # dtype (a 2-element scratch array carries the type)
        n = pad.shape[0]
        Dx = pad.shape[1] - 4
        Dy = pad.shape[2]
        Nx, Nz, Ny = volt.shape
        lo_v = max(0, -dy)
        hi_v = min(Ny, Dy - dy)
        hi_x = Dx + 2.5
        for i in rng(n):
            wb = np.empty(2, dtype=pad.dtype)
            c = ca[i]
            s = sa[i]
            for u in range(Nx):
                base = c * (u - cu) + cx + 2.0 - s * cw
                for w in range(Nz):
                    x = min(max(base + s * w, 0.0), hi_x)
                    x0 = math.floor(x)
                    f = x - x0
                    k = int(x0)
                    wb[0] = 1.0 - f
                    wb[1] = f
                    a = wb[0]
                    b = wb[1]
                    r0 = pad[i, k]
                    r1 = pad[i, k + 1]
                    src = volt[u, w]
                    for v in range(lo_v, hi_v):
                        val = src[v]
                        r0[v + dy] += a * val
                        r1[v + dy] += b * val

    @jit
    def backproject_rows(pad, outt, ca, sa, cu, cw, cx, dy):
        n = pad.shape[0]
        Dx = pad.shape[1] - 4
        Dy = pad.shape[2]
        Nx, Nz, Ny = outt.shape
        lo_v = max(0, -dy)
        hi_v = min(Ny, Dy - dy)
        hi_x = Dx + 2.5
        for u in rng(Nx):
            wb = np.empty(2, dtype=pad.dtype)
            for i in range(n):
                c = ca[i]
                s = sa[i]
                base = c * (u - cu) + cx + 2.0 - s * cw
                for w in range(Nz):
                    x = min(max(base + s * w, 0.0), hi_x)
                    x0 = math.floor(x)
                    f = x - x0
                    k = int(x0)
                    wb[0] = 1.0 - f
                    wb[1] = f
                    a = wb[0]
                    b = wb[1]
                    r0 = pad[i, k]
                    r1 = pad[i, k + 1]
                    dst = outt[u, w]
                    for v in range(lo_v, hi_v):
                        dst[v] += a * r0[v + dy] + b * r1[v + dy]

    return project_rows, backproject_rows


try:  # numba is optional at run time: fall back to the torch reference
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    import numba

    _SERIAL = _build(False)
    _PARALLEL = _build(True)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False


def _k(work: int):
    return _PARALLEL if work >= PARALLEL_THRESHOLD else _SERIAL


def single_axis_coefficients(R, vol_centre, det_centre, tol: float = 1e-12):
    """``(cos, sin, cu, cw, cx, dy)`` of a single-axis geometry, or None.

    ``R`` (n, 3, 3) rotations; the geometry is single-axis when every ``R`` maps ``y`` to ``y``
    (to ``tol``) and the row offset ``dy = c_y - c_v`` is an integer, so that a voxel's detector
    row is exact.  ``cos = R[:, 0, 0]``, ``sin = R[:, 2, 0]`` give the detector column
    ``x = cos (u - cu) + sin (w - cw) + cx`` (Eqn 3.4 with ``R[1, 0] = 0``).
    """
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 3 or R.shape[1:] != (3, 3):
        return None
    if (np.abs(R[:, 1, 1] - 1.0).max() > tol or np.abs(R[:, 1, [0, 2]]).max() > tol
            or np.abs(R[:, [0, 2], 1]).max() > tol):
        return None
    dy = float(det_centre[1]) - float(vol_centre[1])
    if abs(dy - round(dy)) > tol:
        return None
    return (np.ascontiguousarray(R[:, 0, 0]), np.ascontiguousarray(R[:, 2, 0]),
            float(vol_centre[0]), float(vol_centre[2]), float(det_centre[0]), round(dy))


def project(vol: np.ndarray, coef, det_shape) -> np.ndarray:
    """Splat projection ``(n, Dx, Dy)`` of a volume ``(Nx, Ny, Nz)`` (the exact transpose of
    :func:`backproject`); ``coef`` from :func:`single_axis_coefficients`.

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.tomo.geometry import rotation_matrices
    >>> c = single_axis_coefficients(rotation_matrices([0.0]), (2, 2, 2), (2, 2))
    >>> float(project(np.ones((4, 4, 4), np.float32), c, (4, 4))[0, 1, 1])
    4.0
    """
    ca, sa, cu, cw, cx, dy = coef
    n = ca.shape[0]
    Dx, Dy = (int(d) for d in det_shape)
    volt = np.ascontiguousarray(np.asarray(vol).transpose(0, 2, 1))
    pad = np.zeros((n, Dx + 2 * _GUARD, Dy), dtype=volt.dtype)
    _k(volt.size * n)[0](volt, pad, ca, sa, cu, cw, cx, dy)
    return np.ascontiguousarray(pad[:, _GUARD:Dx + _GUARD])


def backproject(proj: np.ndarray, coef, vol_shape) -> np.ndarray:
    """Bilinear back projection ``(Nx, Ny, Nz)`` of projections ``(n, Dx, Dy)`` (zero outside
    the detector); ``coef`` from :func:`single_axis_coefficients`.

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.tomo.geometry import rotation_matrices
    >>> c = single_axis_coefficients(rotation_matrices([0.0, 90.0]), (2, 2, 2), (2, 2))
    >>> float(backproject(np.ones((2, 4, 4), np.float32), c, (4, 4, 4))[1, 1, 1])
    2.0
    """
    ca, sa, cu, cw, cx, dy = coef
    proj = np.asarray(proj)
    n, Dx, Dy = proj.shape
    Nx, Ny, Nz = (int(s) for s in vol_shape)
    pad = np.zeros((n, Dx + 2 * _GUARD, Dy), dtype=proj.dtype)
    pad[:, _GUARD:Dx + _GUARD] = proj
    outt = np.zeros((Nx, Nz, Ny), dtype=proj.dtype)
    _k(outt.size * n)[1](pad, outt, ca, sa, cu, cw, cx, dy)
    return np.ascontiguousarray(outt.transpose(0, 2, 1))
