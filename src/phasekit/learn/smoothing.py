"""Laplacian smoothing ``(I + s*gamma*D^T D)^{-1} = (I - sigma L)^{-1}`` by FFT.

One implementation serves GPS-R's real-space smoothing of the dual variable (Pham thesis eq.
(2.17); exact periodic form of digest 001 §3 P4) and Laplacian-smoothing gradient descent
(thesis ch. 5, ``A_sigma = I - sigma L`` with the periodic 1-D Laplacian ``L``).

With the periodic discrete Laplacian the operator is diagonal in Fourier space with eigenvalues
``lambda(xi) = sum_i 4 sin^2(pi k_i / N_i)``, so ``(I - sigma L)^{-1}`` divides the DFT by
``1 + sigma lambda``.  The mean (zero frequency) is preserved.
"""
from __future__ import annotations

import torch


def laplacian_eigenvalues(shape, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Eigenvalues ``sum_i 4 sin^2(pi k_i / N_i)`` of ``-L`` on an unshifted DFT grid of ``shape``."""
    grids = [4.0 * torch.sin(torch.pi * torch.arange(n, device=device, dtype=torch.float64) / n) ** 2
             for n in shape]
    mesh = torch.meshgrid(*grids, indexing="ij")
    return sum(mesh).to(dtype)


def laplacian_smoothing_divisor(shape, sigma: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """``1 / (1 + sigma * lambda)``: the Fourier multiplier of ``(I - sigma L)^{-1}``."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return 1.0 / (1.0 + sigma * laplacian_eigenvalues(shape, device=device, dtype=dtype))


def laplacian_smooth(x: torch.Tensor, sigma: float, ndim: int | None = None) -> torch.Tensor:
    """Apply ``(I - sigma L)^{-1}`` over the last ``ndim`` axes (periodic boundary) of ``x``.

    Real input gives real output.  ``sigma = 0`` is the identity.
    """
    nd = x.ndim if ndim is None else ndim
    dims = tuple(range(-nd, 0))
    rdt = x.real.dtype if x.is_complex() else x.dtype
    mult = laplacian_smoothing_divisor(x.shape[-nd:], sigma, device=x.device, dtype=rdt)
    out = torch.fft.ifftn(torch.fft.fftn(x, dim=dims) * mult, dim=dims)
    return out if x.is_complex() else out.real
