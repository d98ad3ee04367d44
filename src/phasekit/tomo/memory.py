"""Memory estimates of tomographic simulation and reconstruction, for the guards of
:func:`phasekit.core.resources.check_memory` (they need the projector's padded grid, so they live
with the projectors rather than in ``core``)."""
from __future__ import annotations

from ..core.resources import _cbytes, _prod
from .projectors import padded_shape


def _fst_bytes(vol_shape, n_proj: int, oversampling, esize: int) -> int:
    """The Fourier-slice forward projector: the padded real volume and its half spectrum (``2 e``
    bytes per padded voxel, ``e`` the real element size) and the slice grids and slices
    (``10 e`` per padded detector pixel and projection); measured, see
    :func:`estimate_tomo_reconstruction`."""
    M = padded_shape(vol_shape, oversampling)
    return 2 * esize * _prod(M) + 10 * esize * int(n_proj) * M[0] * M[1]


def estimate_tomo_simulation(vol_shape, n_proj: int, det_shape=None, *, projector: str = "fine",
                             factor: int = 2, oversampling: float = 3.0) -> int:
    """Peak bytes of :func:`phasekit.tomo.simulate.simulate_tilt_series`.

    ``fine``: the phantom sampled on a ``factor``-times finer grid (float64, then float32 and
    the binned truth), the fine detector stack ``n x (factor D)^2`` and its sampling grids
    (chunks of 2^22 points).  ``fst``: the sampled phantom and the Fourier-slice projector of
    the padded volume (:func:`phasekit.tomo.projectors.padded_shape`).

    Examples
    --------
    >>> estimate_tomo_simulation((64, 64, 64), 41) / 1e6 > 10
    True
    """
    vs = tuple(int(n) for n in vol_shape)
    ds = (vs[0], vs[1]) if det_shape is None else tuple(int(n) for n in det_shape)
    nvox, npx = _prod(vs), _prod(ds)
    f3 = int(factor) ** 3
    # sampling the analytic phantom on the fine grid: float64 coordinates and values, about 64
    # bytes per fine voxel (measured: 245 MB at 64^3, 566 MB at 96^3, both with 41 tilts)
    est = 64 * nvox * f3 + 8 * nvox
    if str(projector).lower() == "fine":
        est += 128 * 2**20  # chunks of the splatting grid (2^22 points) and grid_sample buffers
        est += 3 * 4 * n_proj * npx * int(factor) ** 2  # the fine detector stack
    else:
        est += _fst_bytes(vs, n_proj, oversampling, 4)
    return int(est + 4 * 4 * n_proj * npx)  # clean, noisy, mask, float32 copies


_MB = 2 ** 20


def estimate_tomo_reconstruction(vol_shape, n_proj: int, det_shape=None, *,
                                 oversampling: float = 2.0, precision: str = "single",
                                 algorithm: str | None = "resire", projector: str = "hybrid",
                                 grid_oversampling: float | None = None) -> int:
    """Peak bytes of a tomographic reconstruction (RESIRE, SIRT, GENFIRE, FBP), above what the
    process already holds.

    A model fitted to measured peaks (resident set size above the process's own, two iterations,
    one thread, AMD EPYC host, 64^3-160^3 volumes from 61 and 181 projections; see
    docs/tomography.md "Memory") and then raised by 20 %:

    * the problem (``algorithm=None``; what every algorithm holds): about six volumes and six
      projection stacks, the Fourier-slice forward projector of the padded volume (the padded
      real volume and its half spectrum, ``2 e`` bytes per padded voxel, ``e`` the real
      element size) and its slice grids and slices (``10 e`` per padded detector pixel and
      projection), 64 MiB of workspace;
    * RESIRE (``projector="hybrid"`` or ``"realspace"``), SIRT and FBP: the bilinear
      back-projection's grids (``4 e`` per padded detector pixel and projection) and 32 MiB;
      RESIRE with ``projector="fst"`` also the autograd chain of the exact adjoint (``9 e`` per
      padded voxel);
    * GENFIRE: its gridded 3-D Fourier constraint (the half spectrum, kept) and the gridding's
      and the iteration's work arrays on its own padded grid (``grid_oversampling``, default
      ``oversampling``): ``8 e`` per grid voxel, ``2 e`` per padded projection pixel, 96 MiB.

    Against the measured peaks the estimates are 1.4-2.1x (single and double precision); the
    model before (six copies of the extended complex spectrum for every algorithm) was 3.4-3.9x
    for RESIRE and SIRT and *below* the peak of GENFIRE's earlier complex-FFT iteration
    (0.89-0.97x).

    Examples
    --------
    >>> estimate_tomo_reconstruction((4000, 4000, 4000), 41) > 1e12
    True
    >>> g = estimate_tomo_reconstruction((128,) * 3, 61, algorithm="genfire")
    >>> g > estimate_tomo_reconstruction((128,) * 3, 61) > estimate_tomo_reconstruction((128,) * 3, 61, algorithm=None)
    True
    """
    vs = tuple(int(n) for n in vol_shape)
    ds = (vs[0], vs[1]) if det_shape is None else tuple(int(n) for n in det_shape)
    e = 4 * _cbytes(precision)
    n = int(n_proj)
    nvox, npx = _prod(vs), _prod(ds)
    M = padded_shape(vs, oversampling)
    slices = n * M[0] * M[1]
    est = 6 * e * nvox + 6 * e * n * npx + _fst_bytes(vs, n, oversampling, e) + 64 * _MB
    alg = None if algorithm is None else str(algorithm).lower()
    if alg == "genfire":
        G = padded_shape(vs, oversampling if grid_oversampling is None else grid_oversampling)
        gx, gy = max(G[0], ds[0]), max(G[1], ds[1])
        est += 8 * e * gx * gy * G[2] + 2 * e * n * gx * gy + 96 * _MB
    elif alg is not None:  # RESIRE, SIRT, FBP (and a name the registry will refuse)
        est += 4 * e * slices + 32 * _MB
        if alg == "resire" and str(projector).lower() == "fst":
            est += 9 * e * _prod(M)
    return int(1.2 * est)
