"""Frequency-grid helpers and the smoothing filters of OSS and GPS (work layout)."""
from __future__ import annotations

import numpy as np
import torch


def freq_index_sq(shape, device=None, dtype=torch.float32) -> torch.Tensor:
    """``|k|^2`` in DFT index units on the work-layout grid (zero frequency at index 0)."""
    grids = [torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype) for n in shape]
    mesh = torch.meshgrid(*grids, indexing="ij")
    return sum(g * g for g in mesh)


def radius_sq(shape, device=None, dtype=torch.float32) -> torch.Tensor:
    """Squared pixel distance from the array centre ``N // 2`` on the work-layout grid.

    In the work layout the centre pixel sits at index 0, so this equals :func:`freq_index_sq`
    (the periodic distance)."""
    return freq_index_sq(shape, device, dtype)


def oss_alphas(n_filters: int, n_rows: int, alpha_max: float | None = None,
               alpha_min: float | None = None) -> np.ndarray:
    """OSS filter widths: ``alpha_j`` linearly from ``2N`` down to ``0.2N`` over ``n_filters``
    stages (Rodriguez et al., J. Appl. Cryst. 46, 312 (2013), as in their reference MATLAB code:
    ``alpha_j = (11 - j) 2N / 10`` for 10 filters)."""
    hi = 2.0 * n_rows if alpha_max is None else float(alpha_max)
    lo = 0.2 * n_rows if alpha_min is None else float(alpha_min)
    if n_filters == 1:
        return np.array([lo])
    return np.linspace(hi, lo, n_filters)


def gaussian_window(k2: torch.Tensor, alpha: float, scale: float = 1.0) -> torch.Tensor:
    """``exp(-scale |k|^2 / (2 alpha^2))`` (max 1 at the zero frequency)."""
    return torch.exp(-scale * k2 / (2.0 * alpha * alpha))
