"""Far-field (Fraunhofer) propagation as a unitary, centred Fourier transform."""
from __future__ import annotations

import torch

from ..core.fft import fftc, ifftc, fftw, ifftw
from .base import LinearOperator


class FarField(LinearOperator):
    """Far-field propagator ``B x = fftc(x)`` (unitary, centred), adjoint ``B^H = ifftc``.

    In the Fraunhofer regime the exit wave ``x`` (object times illumination) at the sample and
    the detector wave are related by a Fourier transform; the measured intensity is ``|B x|^2``.
    With ``work=True`` the operator acts on work-layout arrays (no shifts; see
    :mod:`phasekit.core.fft`), the form the iteration loops use.

    Parameters
    ----------
    shape : tuple of int
        Shape of the exit wave (2-D or 3-D, optionally with leading batch axes).
    ndim : int, optional
        Number of trailing axes transformed (default: ``len(shape)``, capped at 3).
    """

    def __init__(self, shape, *, ndim: int | None = None, dtype=torch.complex64, device=None,
                 work: bool = False):
        self.in_shape = self.out_shape = tuple(int(s) for s in shape)
        self.ndim = ndim if ndim is not None else min(len(self.in_shape), 3)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.work = work

    def forward(self, x):
        return fftw(x, self.ndim) if self.work else fftc(x, self.ndim)

    def adjoint(self, y):
        return ifftw(y, self.ndim) if self.work else ifftc(y, self.ndim)

    # the transform is unitary: the inverse is the adjoint
    inverse = adjoint


class SupportMask(LinearOperator):
    """Multiplication by a boolean support, ``P_S x = 1_S x`` (self-adjoint, idempotent)."""

    def __init__(self, support: torch.Tensor, dtype=torch.complex64):
        self.support = support.to(torch.bool)
        self.in_shape = self.out_shape = tuple(support.shape)
        self.dtype = dtype
        self.device = support.device

    def forward(self, x):
        return x * self.support

    adjoint = forward
