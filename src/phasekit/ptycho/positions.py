r"""Scan-position refinement: a per-position shift estimated from each PIE step.

**Method**: the gradient (least-squares) position update, in the form of Odstrčil, Menzel &
Guizar-Sicairos, Opt. Express 26, 3108 (2018) (the linearisation also behind Dwivedi et al.,
Ultramicroscopy 192, 29 (2018)); the alternative, not implemented, is the cross-correlation of
the object patch before and after its update (Zhang et al., Opt. Express 21, 13592 (2013)).  Moving the
probe window of position :math:`n` by a small :math:`\boldsymbol\delta` changes the exit wave of
mode :math:`k` to first order by

.. math:: \Psi_k(\mathbf r_n+\boldsymbol\delta)\approx\Psi_k+\delta_y\,\mathbf P_k\odot\partial_y
          \mathbf O_n+\delta_x\,\mathbf P_k\odot\partial_x\mathbf O_n ,

so the shift that best explains the modulus projection's correction :math:`\mathbf R_k=
\tilde\Psi_k-\Psi_k` is the least-squares solution of the 2 x 2 normal equations

.. math:: \sum_k\begin{pmatrix}\|\mathbf g_{y}\|^2&\Re\langle\mathbf g_{y},\mathbf g_{x}\rangle\\
          \Re\langle\mathbf g_{x},\mathbf g_{y}\rangle&\|\mathbf g_{x}\|^2\end{pmatrix}
          \boldsymbol\delta=\sum_k\begin{pmatrix}\Re\langle\mathbf g_{y},\mathbf R_k\rangle\\
          \Re\langle\mathbf g_{x},\mathbf R_k\rangle\end{pmatrix},\qquad
          \mathbf g_{\cdot}=\mathbf P_k\odot\partial_\cdot\mathbf O_n

(central differences of the pre-update patch, one-sided at its edge).  Our choices, where the
papers leave it open: a Tikhonov term of ``1e-3`` of the mean diagonal; the step is applied with
the factor :data:`POSITION_STEP` and clipped to :data:`MAX_SHIFT` pixels per position and sweep
(the linearisation holds for sub-pixel moves; errors of a few pixels are walked off over
sweeps); after each sweep the mean correction is removed (a common shift of every position is
a shift of the object, which the data cannot see); positions stay inside the object.

Examples
--------
>>> import numpy as np
>>> from phasekit.ptycho.positions import check_overlap
>>> check_overlap(np.array([[0., 0.], [0., 8.], [8., 0.]]), (32, 32))   # fine: steps of 8 px
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.errors import ConfigError

#: default first sweep (0-based) of refinement with ``refine_positions=True``
DEFAULT_START = 10
#: fraction of the least-squares shift applied per position and sweep
POSITION_STEP = 1.0
#: largest correction (pixels, per axis) of one position in one sweep
MAX_SHIFT = 1.0
#: Tikhonov weight (relative to the mean diagonal of the normal matrix)
RIDGE = 1e-3


def refine_start(value) -> int | None:
    """``refine_positions`` as the first sweep (0-based) of refinement, or None (off).

    ``False``/``None`` -> off, ``True`` -> :data:`DEFAULT_START`, an int ``>= 0`` -> itself.
    """
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_START
    if isinstance(value, (int, np.integer)) and int(value) >= 0:
        return int(value)
    raise ConfigError(f"refine_positions must be False, True or a sweep number >= 0, got {value!r}")


def check_overlap(positions, frame_shape) -> None:
    """Refuse position refinement when the scan has no overlap to refine against: fewer than 2
    positions, or a median nearest-neighbour distance of half the frame or more (neighbouring
    views then share too little of the object)."""
    pos = np.asarray(positions, np.float64)
    n = len(pos)
    if n < 2:
        raise ConfigError("refine_positions needs at least 2 scan positions")
    half = 0.5 * min(frame_shape)
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)) if n <= 4000 else None
    if d is None:  # large scans: a random subset is enough for a median
        g = np.random.default_rng(0)
        sub = pos[g.choice(n, 2000, replace=False)]
        d = np.sqrt(((sub[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
        d[d == 0] = np.inf
    else:
        np.fill_diagonal(d, np.inf)
    nn = float(np.median(d.min(axis=1)))
    if not nn < half:
        raise ConfigError(f"refine_positions needs overlapping views: the median step to the "
                          f"nearest position is {nn:.3g} px, not below half the {min(frame_shape)} px "
                          f"frame")


def _grad(o: torch.Tensor):
    """Central differences along y and x (one-sided at the edges), complex."""
    gy = torch.empty_like(o)
    gx = torch.empty_like(o)
    gy[1:-1] = 0.5 * (o[2:] - o[:-2])
    gy[0] = o[1] - o[0]
    gy[-1] = o[-1] - o[-2]
    gx[:, 1:-1] = 0.5 * (o[:, 2:] - o[:, :-2])
    gx[:, 0] = o[:, 1] - o[:, 0]
    gx[:, -1] = o[:, -1] - o[:, -2]
    return gy, gx


def shift_estimate(Pn: torch.Tensor, On: torch.Tensor, R: torch.Tensor) -> tuple[float, float]:
    """Least-squares window shift ``(dy, dx)`` (pixels) of one position (module docstring).

    ``Pn``: the (shifted) probe modes (K, My, Mx); ``On``: the pre-update object patch; ``R``:
    the exit-wave corrections (K, My, Mx).
    """
    gy, gx = _grad(On)
    a = Pn * gy
    b = Pn * gx
    ayy = (a.real ** 2 + a.imag ** 2).sum(dtype=torch.float64)
    axx = (b.real ** 2 + b.imag ** 2).sum(dtype=torch.float64)
    axy = (a.conj() * b).real.sum(dtype=torch.float64)
    by = (a.conj() * R).real.sum(dtype=torch.float64)
    bx = (b.conj() * R).real.sum(dtype=torch.float64)
    return shift_from_sums(float(ayy), float(axx), float(axy), float(by), float(bx))


def shift_from_sums(ayy: float, axx: float, axy: float, by: float, bx: float) -> tuple[float, float]:
    """The regularised, damped and clipped solution of the 2 x 2 normal equations (module
    docstring) from their five sums; shared by :func:`shift_estimate` and the fused kernel.

    >>> [round(v, 4) for v in shift_from_sums(2.0, 2.0, 0.0, 0.2, -0.4)]
    [0.0999, -0.1998]
    """
    ridge = RIDGE * 0.5 * (ayy + axx)
    ayy = ayy + ridge
    axx = axx + ridge
    det = ayy * axx - axy * axy
    if not det > 0:
        return 0.0, 0.0
    dy = (axx * by - axy * bx) / det
    dx = (ayy * bx - axy * by) / det
    c = MAX_SHIFT
    return (min(max(POSITION_STEP * dy, -c), c), min(max(POSITION_STEP * dx, -c), c))
