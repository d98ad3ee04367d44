r"""Complex objects through a real-image denoiser (PINE paper, sec. 2.4, eq. (22)).

:math:`D(\mathbf O)=\hat D[\Re\mathbf O]+i\,\hat D[\Im\mathbf O]`: the same single-channel
network denoises the real and the imaginary part (the amplitude/phase alternative is rejected
by the paper because of phase wrapping).  Rescaling (``rescale``):

* ``"minmax"`` (**default**, the official MATLAB code ``myDeepDenoiser``, which the paper does
  not state): each part is mapped to [0, 1] by its own minimum and maximum, denoised, and mapped
  back.  The net was trained at :math:`\sigma=15/255` on [0, 1] images, so this sets the
  effective noise level relative to the part's range.  It makes :math:`D` depend on the scale
  of the input (a weak-phase object's real part spanning 0.05 is stretched 20 x).
* ``"none"`` (scale-free): the parts go to the network as they are; :math:`D` is then a fixed
  operator with the network's Lipschitz constant (what the HSD analysis assumes), but the
  effective noise level is the network's, whatever the object's range.

A constant part (max = min) is left unchanged under ``"minmax"``.
"""
from __future__ import annotations

import numpy as np
import torch

from ...core.errors import InputError

RESCALE = ("minmax", "none")


class ComplexDenoiser:
    """Wrap a real-image denoiser for complex 2-D objects.

    Parameters
    ----------
    denoiser : callable
        Real denoiser on ``(B, 1, H, W)`` float tensors (a torch module, a deepinv denoiser, a
        BM3D wrapper); it may return a tensor or a NumPy array of the same shape.
    rescale : {"minmax", "none"}
        See the module docstring; ``"minmax"`` is the default (the official code).
    sigma : float, optional
        Passed as the second argument (``denoiser(x, sigma)``), as deepinv denoisers expect.

    Examples
    --------
    >>> d = ComplexDenoiser(lambda x: x)
    >>> z = torch.randn(8, 8, dtype=torch.complex64)
    >>> bool(torch.allclose(d(z), z, atol=1e-6))
    True
    """

    def __init__(self, denoiser, rescale: str = "minmax", sigma: float | None = None):
        if not callable(denoiser):
            raise InputError(f"denoiser must be callable, got {type(denoiser).__name__}")
        if rescale not in RESCALE:
            raise InputError(f"rescale must be one of {RESCALE}, got {rescale!r}")
        self.denoiser, self.rescale, self.sigma = denoiser, rescale, sigma

    def _call(self, x):
        out = self.denoiser(x) if self.sigma is None else self.denoiser(x, self.sigma)
        return torch.as_tensor(out, dtype=x.dtype, device=x.device).reshape(x.shape)

    def __call__(self, obj):
        is_np = isinstance(obj, np.ndarray)
        z = torch.as_tensor(obj)
        if z.ndim != 2:
            raise InputError(f"complex denoiser input must be 2-D, got shape {tuple(z.shape)}")
        rdt = torch.float32
        parts = torch.stack([z.real, z.imag]).to(rdt) if z.is_complex() \
            else torch.stack([z, torch.zeros_like(z)]).to(rdt)
        lo = parts.amin(dim=(1, 2))
        hi = parts.amax(dim=(1, 2))
        if self.rescale == "minmax":
            span = hi - lo
            live = span > 0
            scale = torch.where(live, span, torch.ones_like(span))
            x = (parts - lo[:, None, None]) / scale[:, None, None]
        else:
            live = torch.ones(2, dtype=torch.bool, device=parts.device)
            x = parts
        with torch.no_grad():
            y = self._call(x[:, None])[:, 0]
        if self.rescale == "minmax":
            y = y * scale[:, None, None] + lo[:, None, None]
        y = torch.where(live[:, None, None], y, parts)
        out = torch.complex(y[0], y[1]) if z.is_complex() else y[0]
        out = out.to(z.dtype)
        return out.numpy() if is_np else out

    def __repr__(self) -> str:
        return f"ComplexDenoiser({self.denoiser.__class__.__name__}, rescale={self.rescale!r})"
