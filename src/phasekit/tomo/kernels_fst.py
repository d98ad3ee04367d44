"""Compiled CPU sampling of the Fourier-slice projector's slices from the half spectrum.

:class:`~phasekit.tomo.projectors.FourierSliceProjector` samples every projection's central
slice from the volume's 3-D spectrum by trilinear interpolation (Pham thesis Ch. 3, §3.2.2,
Algorithm 3; trilinear where the thesis says "bi-linear", see docs/tomography.md).  Its torch
path builds the centred spectrum with one periodic plane per axis, ``(Mx + 1, My + 1, Mz + 1)``,
and calls ``grid_sample``.  :func:`sample_slices` computes the same samples straight from the half
spectrum ``rfftn`` returns, with no extended copy: centred index ``c`` is work index
``(c - M // 2) mod M`` (the periodic plane at ``c = M`` included), and a work ``k_z`` above
``Mz // 2`` reads the conjugate of the reflected point (Hermitian symmetry of a real volume's
spectrum).

It follows ``grid_sample``'s arithmetic (``mode="bilinear"``, ``padding_mode="zeros"``,
``align_corners=True``): the normalised grid is unnormalised as ``(g + 1) / 2 (size - 1)`` in the
grid's dtype, the eight weights are the same products, corners outside ``[0, M]`` contribute
nothing, and the eight terms are added in ``grid_sample``'s order; so the samples agree with the
torch path to rounding (bit for bit in our tests on this CPU).  Projections run in parallel in
the parallel build (each writes its own slice: no races, the same result on any thread count).

The torch path stays the reference twin, the path on CUDA, under autograd (the exact adjoint of
the Fourier-slice projector is taken through it) and with ``PHASEKIT_NO_NUMBA=1``;
``tests/test_tomo_fst.py`` compares the two.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["HAVE_NUMBA", "sample_slices"]

#: slice points x 8 corners at which the multi-threaded build is used
PARALLEL_THRESHOLD = 1 << 22


def _build(parallel: bool):  # pragma: no cover - compiled code
    rng = numba.prange if parallel else range
    jit = numba.njit(fastmath=False, cache=True, parallel=parallel, nogil=True)

    @jit
    def sample(Fh, grid, out, Mx, My, Mz):
        # Fh: (Mx, My, Mz // 2 + 1) complex half spectrum (work layout); grid: (n, Px, Py, 3)
        # normalised (z, y, x) coordinates over the extended sizes (Mx + 1, My + 1, Mz + 1);
        # out: (n, Px, Py) complex
        n, Px, Py = out.shape
        hz = Mz // 2
        one = grid.dtype.type(1)
        two = grid.dtype.type(2)
        sx = grid.dtype.type(Mx)  # extended size - 1
        sy = grid.dtype.type(My)
        sz = grid.dtype.type(Mz)
        zero = out.dtype.type(0)
        for p in rng(n):
            for i in range(Px):
                for j in range(Py):
                    g = grid[p, i, j]
                    # grid_sample's names: x = last input dim (our z), y = ours, z = our x
                    fz = ((g[0] + one) / two) * sz
                    fy = ((g[1] + one) / two) * sy
                    fx = ((g[2] + one) / two) * sx
                    x0 = np.floor(fz)
                    y0 = np.floor(fy)
                    z0 = np.floor(fx)
                    x1 = x0 + one
                    y1 = y0 + one
                    z1 = z0 + one
                    iz0 = int(x0)
                    iy0 = int(y0)
                    ix0 = int(z0)
                    if ix0 < -1 or ix0 > Mx or iy0 < -1 or iy0 > My or iz0 < -1 or iz0 > Mz:
                        out[p, i, j] = zero  # every corner outside
                        continue
                    okx0 = ix0 >= 0
                    okx1 = ix0 + 1 <= Mx
                    oky0 = iy0 >= 0
                    oky1 = iy0 + 1 <= My
                    okz0 = iz0 >= 0
                    okz1 = iz0 + 1 <= Mz
                    # grid_sample's order: tnw tne tsw tse bnw bne bsw bse (t/b: our x,
                    # n/s: y, w/e: our z), each weight the same product in the grid's dtype
                    acc = zero
                    acc += _corner(Fh, ix0, iy0, iz0, okx0 and oky0 and okz0, Mx, My, Mz, hz,
                                  zero) * ((x1 - fz) * (y1 - fy) * (z1 - fx))
                    acc += _corner(Fh, ix0, iy0, iz0 + 1, okx0 and oky0 and okz1, Mx, My, Mz,
                                  hz, zero) * ((fz - x0) * (y1 - fy) * (z1 - fx))
                    acc += _corner(Fh, ix0, iy0 + 1, iz0, okx0 and oky1 and okz0, Mx, My, Mz,
                                  hz, zero) * ((x1 - fz) * (fy - y0) * (z1 - fx))
                    acc += _corner(Fh, ix0, iy0 + 1, iz0 + 1, okx0 and oky1 and okz1, Mx, My,
                                  Mz, hz, zero) * ((fz - x0) * (fy - y0) * (z1 - fx))
                    acc += _corner(Fh, ix0 + 1, iy0, iz0, okx1 and oky0 and okz0, Mx, My, Mz,
                                  hz, zero) * ((x1 - fz) * (y1 - fy) * (fx - z0))
                    acc += _corner(Fh, ix0 + 1, iy0, iz0 + 1, okx1 and oky0 and okz1, Mx, My,
                                  Mz, hz, zero) * ((fz - x0) * (y1 - fy) * (fx - z0))
                    acc += _corner(Fh, ix0 + 1, iy0 + 1, iz0, okx1 and oky1 and okz0, Mx, My,
                                  Mz, hz, zero) * ((x1 - fz) * (fy - y0) * (fx - z0))
                    acc += _corner(Fh, ix0 + 1, iy0 + 1, iz0 + 1, okx1 and oky1 and okz1, Mx,
                                  My, Mz, hz, zero) * ((fz - x0) * (fy - y0) * (fx - z0))
                    out[p, i, j] = acc

    return sample


try:  # numba is optional at run time: fall back to the torch reference
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    import numba

    # module-level (not closures of _build): numba keys the on-disk cache of a closure that
    # calls other compiled functions on the pickled closure, which never hits
    @numba.njit(cache=True, nogil=True)
    def _wrap(a, m):  # a in [-m, 2m): a mod m without an integer division
        return a + m if a < 0 else (a - m if a >= m else a)

    @numba.njit(cache=True, nogil=True)
    def _corner(Fh, cx, cy, cz, ok, Mx, My, Mz, hz, zero):
        # the value at centred index (cx, cy, cz) of the extended spectrum, 0 outside [0, M]
        if not ok:
            return zero
        wx = _wrap(cx - Mx // 2, Mx)
        wy = _wrap(cy - My // 2, My)
        wz = _wrap(cz - Mz // 2, Mz)
        if wz <= hz:
            return Fh[wx, wy, wz]
        return Fh[0 if wx == 0 else Mx - wx, 0 if wy == 0 else My - wy, Mz - wz].conjugate()

    _SERIAL = _build(False)
    _PARALLEL = _build(True)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False


def sample_slices(Fh: np.ndarray, grid: np.ndarray, pad_shape) -> np.ndarray:
    """Trilinear samples ``(n, Px, Py)`` of the centred, periodically extended spectrum whose
    half ``Fh`` (``rfftn`` of the volume centred at index 0, ``(Mx, My, Mz // 2 + 1)``) is given,
    at ``grid`` (``(n, Px, Py, 3)``, ``grid_sample``'s normalised ``(z, y, x)`` coordinates over
    ``(Mx + 1, My + 1, Mz + 1)``, ``align_corners=True``, zero outside).

    Examples
    --------
    >>> import numpy as np
    >>> Fh = np.fft.rfftn(np.ones((4, 4, 4))).astype(np.complex128)  # a delta at k = 0
    >>> g = np.zeros((1, 1, 1, 3))  # the centre of the extended grid: k = 0
    >>> complex(sample_slices(Fh, g, (4, 4, 4))[0, 0, 0])
    (64+0j)
    """
    Mx, My, Mz = (int(m) for m in pad_shape)
    Fh = np.ascontiguousarray(Fh)
    grid = np.ascontiguousarray(grid)
    n, Px, Py = grid.shape[:3]
    out = np.empty((n, Px, Py), dtype=Fh.dtype)
    k = _PARALLEL if n * Px * Py * 8 >= PARALLEL_THRESHOLD else _SERIAL
    k(Fh, grid, out, Mx, My, Mz)
    return out
