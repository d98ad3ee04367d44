"""Centred unitary FFTs and the internal "work" layout.

Public convention (docs/conventions.md): arrays are stored *centred*: the zero frequency of a
diffraction pattern and the centre of an object are at index ``N // 2`` on every axis, and the
transform is unitary (``norm="ortho"``) so that Parseval holds:

    fftc(x) = fftshift(fftn(ifftshift(x), norm="ortho"))

Inside iterative loops phasekit keeps every array in the *work* layout, i.e. ``ifftshift`` of the
centred array, in both spaces.  Then ``fftc`` becomes a plain ``fftn`` (``fftw``) and no shift is
paid per iteration; every real-space and Fourier-space constraint is pointwise, so it is applied to
masks converted once with :func:`to_work`.
"""
from __future__ import annotations

import torch


def _dims(x: torch.Tensor, ndim: int | None):
    nd = x.ndim if ndim is None else ndim
    return tuple(range(-nd, 0))


def to_work(x: torch.Tensor, ndim: int | None = None) -> torch.Tensor:
    """Centred layout -> work layout (``ifftshift`` over the last ``ndim`` axes)."""
    return torch.fft.ifftshift(x, dim=_dims(x, ndim))


def from_work(x: torch.Tensor, ndim: int | None = None) -> torch.Tensor:
    """Work layout -> centred layout (``fftshift`` over the last ``ndim`` axes)."""
    return torch.fft.fftshift(x, dim=_dims(x, ndim))


def fftw(x: torch.Tensor, ndim: int | None = None) -> torch.Tensor:
    """Unitary forward FFT of a work-layout array (result in work layout)."""
    return torch.fft.fftn(x, dim=_dims(x, ndim), norm="ortho")


def ifftw(x: torch.Tensor, ndim: int | None = None) -> torch.Tensor:
    """Unitary inverse FFT of a work-layout array (result in work layout)."""
    return torch.fft.ifftn(x, dim=_dims(x, ndim), norm="ortho")


def fftc(x: torch.Tensor, ndim: int | None = None) -> torch.Tensor:
    """Centred unitary forward FFT over the last ``ndim`` axes (all axes by default)."""
    return from_work(fftw(to_work(x, ndim), ndim), ndim)


def ifftc(x: torch.Tensor, ndim: int | None = None) -> torch.Tensor:
    """Centred unitary inverse FFT over the last ``ndim`` axes (all axes by default)."""
    return from_work(ifftw(to_work(x, ndim), ndim), ndim)
