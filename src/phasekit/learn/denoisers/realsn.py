r"""Real spectral normalisation (RealSN) of a convolution layer (Ryu, Liu, Wang, Chen, Wang &
Yin, ICML 2019), as PINE uses it (PINE paper, sec. 2.4: "RealSN computes the Lipschitz constant
of the operation in a layer and divides its parameters by the Lipschitz constant").

Unlike :func:`torch.nn.utils.parametrizations.spectral_norm`, which normalises the reshaped
weight matrix, RealSN normalises the operator norm of the *convolution itself*,
:math:`\mathcal K: \mathbb R^{C_{in}\times h\times w}\to\mathbb R^{C_{out}\times h\times w}`
with zero padding, estimated by power iteration with a persistent vector ``u`` of shape
``(1, C_out, h, w)`` (``h = w = 40`` as in Ryu et al.):

.. math:: v=\frac{\mathcal K^\top u}{\|\mathcal K^\top u\|},\quad
          u=\frac{\mathcal K v}{\|\mathcal K v\|},\quad \sigma=\langle u,\mathcal K v\rangle,
          \quad W_{\rm used}=\frac{W}{\sigma}\,\sigma_{\rm target}.

One iteration per training forward pass, in float32 even under autocast (a bf16 power iteration
overshoots the target by ~3 %); gradients flow through :math:`\sigma` (``u``, ``v`` are
constants).  In eval mode the last :math:`\sigma` is used, so inference is deterministic.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RealSNConv2d(nn.Module):
    """A bias-free (optional bias) ``k x k`` convolution, stride 1, zero "same" padding, whose
    operator norm is kept at ``target`` by RealSN.

    Parameters
    ----------
    c_in, c_out : int
    kernel : int
        Odd kernel size (3 in DnCNN).
    target : float
        Operator norm to keep (1 for a 1-Lipschitz layer).
    bias : bool
    u_size : int
        Spatial side of the power-iteration vectors (40, as Ryu et al.).
    normalize : bool
        False gives a plain convolution (the same module without RealSN).

    Examples
    --------
    >>> conv = RealSNConv2d(1, 4)
    >>> conv.power_iteration(100)
    >>> abs(conv.operator_norm(n_iter=100) - 1.0) < 0.02
    True
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, *, target: float = 1.0,
                 bias: bool = False, u_size: int = 40, normalize: bool = True):
        super().__init__()
        self.c_in, self.c_out, self.kernel = int(c_in), int(c_out), int(kernel)
        self.pad = self.kernel // 2
        self.target = float(target)
        self.normalize = bool(normalize)
        w = torch.empty(c_out, c_in, kernel, kernel)
        nn.init.kaiming_normal_(w, nonlinearity="relu")
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        g = torch.Generator().manual_seed(c_in * 1000 + c_out)
        u = torch.randn(1, c_out, u_size, u_size, generator=g)
        self.register_buffer("u", u / u.norm())
        self.register_buffer("sigma", torch.ones(()))

    def _k(self, x, w):
        return F.conv2d(x, w, padding=self.pad)

    def _kt(self, y, w):
        return F.conv_transpose2d(y, w, padding=self.pad)

    @torch.no_grad()
    def power_iteration(self, n_iter: int = 1) -> None:
        """``n_iter`` power iterations on the current weight (updates ``u`` and ``sigma``)."""
        w = self.weight.detach().float()
        u = self.u
        for _ in range(n_iter):
            v = self._kt(u, w)
            v = v / v.norm().clamp_min(1e-12)
            u = self._k(v, w)
            u = u / u.norm().clamp_min(1e-12)
        self.u.copy_(u)
        self.sigma.copy_((u * self._k(v, w)).sum())

    def effective_weight(self) -> torch.Tensor:
        """``W / sigma * target`` (training: one power iteration, gradient through sigma)."""
        if not self.normalize:
            return self.weight
        if self.training and torch.is_grad_enabled():
            with torch.autocast(device_type=self.weight.device.type, enabled=False):
                with torch.no_grad():
                    w = self.weight.detach().float()
                    v = self._kt(self.u, w)
                    v = v / v.norm().clamp_min(1e-12)
                    u = self._k(v, w)
                    u = u / u.norm().clamp_min(1e-12)
                    self.u.copy_(u)
                sigma = (u * self._k(v, self.weight.float())).sum()
                self.sigma.copy_(sigma.detach())
            return self.weight / sigma * self.target
        if self.training:  # no grad (e.g. evaluation in train mode): still track sigma
            self.power_iteration(1)
        return self.weight / self.sigma * self.target

    def forward(self, x):
        w = self.effective_weight()
        return F.conv2d(x, w.to(x.dtype) if not torch.is_autocast_enabled() else w,
                        self.bias, padding=self.pad)

    @torch.no_grad()
    def operator_norm(self, n_iter: int = 100, size: int = 40) -> float:
        """Operator norm of the convolution as used now (``W/sigma*target``), by ``n_iter``
        power iterations on a ``size x size`` zero-padded grid (independent of ``u``)."""
        w = (self.weight / self.sigma * self.target if self.normalize else self.weight).float()
        return conv_operator_norm(w, size=size, n_iter=n_iter, padding=self.pad)


@torch.no_grad()
def conv_operator_norm(weight: torch.Tensor, size: int = 40, n_iter: int = 100,
                       padding: int | None = None, seed: int = 0) -> float:
    """Largest singular value of the zero-padded convolution with ``weight`` on a
    ``size x size`` grid, by power iteration.

    Examples
    --------
    >>> w = torch.zeros(1, 1, 3, 3); w[0, 0, 1, 1] = 2.0
    >>> round(conv_operator_norm(w), 4)
    2.0
    """
    w = weight.detach().float()
    pad = w.shape[-1] // 2 if padding is None else padding
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(1, w.shape[1], size, size, generator=g)
    v /= v.norm()
    s = 0.0
    for _ in range(n_iter):
        u = F.conv2d(v, w, padding=pad)
        s = float(u.norm())
        if s == 0:
            return 0.0
        v = F.conv_transpose2d(u / s, w, padding=pad)
        v /= v.norm().clamp_min(1e-30)
    return float(F.conv2d(v, w, padding=pad).norm())
