"""Memory estimates of tomographic simulation and reconstruction, for the guards of
:func:`phasekit.core.resources.check_memory` (they need the projector's padded grid, so they live
with the projectors rather than in ``core``)."""
from __future__ import annotations

from ..core.resources import _cbytes, _prod
from .projectors import padded_shape


def _fst_bytes(vol_shape, n_proj: int, oversampling, esize: int, adjoint: bool = True) -> int:
    """The Fourier-slice projector: padded spectrum (complex, with the periodic extension; six
    copies with the autograd chain of the exact adjoint, two without) and the slice grid and
    slices (n x Mx x My)."""
    M = padded_shape(vol_shape, oversampling)
    ext = (M[0] + 1) * (M[1] + 1) * (M[2] + 1)
    copies = 6 if adjoint else 2
    return copies * 2 * esize * ext + n_proj * M[0] * M[1] * (3 * esize + 4 * 2 * esize)


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
        est += _fst_bytes(vs, n_proj, oversampling, 4, adjoint=False)
    return int(est + 4 * 4 * n_proj * npx)  # clean, noisy, mask, float32 copies


def estimate_tomo_reconstruction(vol_shape, n_proj: int, det_shape=None, *,
                                 oversampling: float = 2.0, precision: str = "single") -> int:
    """Peak bytes of a tomographic reconstruction (RESIRE, SIRT, GENFIRE, FBP).

    The volume iterates and support (about 6 volumes), the Fourier-slice projector of the
    padded volume with its adjoint (see :func:`phasekit.tomo.projectors.padded_shape`), the
    cached back-projection grid (up to 256 MiB) and a few projection stacks.

    Examples
    --------
    >>> estimate_tomo_reconstruction((4000, 4000, 4000), 41) > 1e12
    True
    """
    vs = tuple(int(n) for n in vol_shape)
    ds = (vs[0], vs[1]) if det_shape is None else tuple(int(n) for n in det_shape)
    esize = 4 * _cbytes(precision)
    nvox, npx = _prod(vs), _prod(ds)
    est = 6 * esize * nvox + _fst_bytes(vs, n_proj, oversampling, esize)
    est += min(n_proj * nvox * 2 * esize, 256 * 2**20) + 6 * esize * n_proj * npx
    return int(est)


