"""Laplacian smoothing (stochastic) gradient descent: LS-SGD and LS-RMSprop as ``torch.optim``
optimisers.

Pham thesis ch. 5 (Osher, Wang, Yin, Luo, Barekat, Pham, Lin, "Laplacian smoothing gradient
descent", arXiv:1806.06317), §5.2 and §5.3.  The update (eq. (5.9), Algorithm 5) is

    w^{k+1} = w^k - eta_k (A_sigma^n)^{-1} grad f_{i_k}(w^k),

with ``A_sigma = I - sigma L`` (eq. (5.6), periodic 1-D Laplacian on the parameter *indices*) or
its order-``n`` generalisation ``I + (-1)^n sigma L^n`` (§5.2.4), inverted by FFT with the
shared operator :func:`phasekit.learn.smoothing.smooth_vector` (the one GPS uses).

Resolutions of what the thesis leaves open (our choices):

* Order of operations (the thesis does not place smoothing relative to weight decay and momentum):
  the raw data-loss gradient of each parameter tensor is smoothed, *then* weight decay is added,
  *then* momentum (as ``torch.optim.SGD``) is applied (the authors' public code does the same).
  ``smooth_weight_decay=True`` smooths after adding weight decay.
* "Layer-wise" smoothing (§5.2.3, which gives no granularity): one smoothing per parameter tensor
  (weights and biases separately), flattened row-major; tensors with ``numel <= 2`` are left
  unsmoothed (they smooth trivially or not at all).
* Order ``n`` (§5.2.4) uses the Fourier symbol ``1 + sigma (4 sin^2(pi k/m))^n`` (the thesis's
  stencil recursion is off by one); no dummy variables are needed for short tensors.
* ``sigma`` and ``order`` are optimiser parameters (Algorithm 5 does not list them as inputs);
  ``sigma = 0`` is plain SGD / RMSprop.
* LS-RMSprop (§5.3.4): the smoothed gradient replaces the gradient *and* feeds the running average
  of its square.
"""
from __future__ import annotations

import torch
from torch.optim import Optimizer

from ..core.errors import ConfigError
from ..operators.smoothing import smooth_vector

__all__ = ["LSSGD", "LSRMSprop"]


def _check_common(lr, sigma, order, weight_decay, min_numel):
    if not lr >= 0:
        raise ConfigError(f"lr must be >= 0, got {lr}")
    if not sigma >= 0:
        raise ConfigError(f"sigma must be >= 0, got {sigma}")
    if int(order) != order or order < 1:
        raise ConfigError(f"order must be an integer >= 1, got {order}")
    if not weight_decay >= 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
    if int(min_numel) != min_numel or min_numel < 1:
        raise ConfigError(f"min_numel must be an integer >= 1, got {min_numel}")


def _smoothed_grad(p: torch.Tensor, group: dict) -> torch.Tensor:
    """The direction before momentum: smoothed gradient plus weight decay (order per group)."""
    g = p.grad
    if g.is_sparse:
        raise ConfigError("Laplacian smoothing does not support sparse gradients")
    sigma, order, wd = group["sigma"], group["order"], group["weight_decay"]
    smooth = sigma > 0 and p.numel() >= group["min_numel"]
    if group["smooth_weight_decay"]:
        if wd:
            g = g.add(p, alpha=wd)
        return smooth_vector(g, sigma, order) if smooth else g
    if smooth:
        g = smooth_vector(g, sigma, order)
    if wd:
        g = g.add(p, alpha=wd)
    return g


class LSSGD(Optimizer):
    """Laplacian-smoothing SGD (thesis Algorithm 5, eq. (5.9)) with momentum and weight decay.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups, as for any ``torch.optim`` optimiser.
    lr : float
        Step ``eta``.
    sigma : float
        Smoothing strength (thesis: 1.0 for LeNet and ResNet); 0 gives ``torch.optim.SGD``.
    order : int
        Order ``n`` of ``A_sigma^n = I + (-1)^n sigma L^n`` (1: Laplacian, 2: biharmonic).
    momentum, dampening, nesterov : as ``torch.optim.SGD``.
    weight_decay : float
        L2 penalty, added *after* smoothing (our choice, see the module docs) unless
        ``smooth_weight_decay``.
    smooth_weight_decay : bool
        Smooth ``grad + weight_decay * p`` instead of ``grad``.
    min_numel : int
        Tensors with fewer elements are not smoothed (default 3).

    Notes
    -----
    Per tensor ``p`` with gradient ``g``: ``d = A^{-1} vec(g) (+ wd p)``; with momentum
    ``b <- mu b + (1 - dampening) d`` (``b = d`` at the first step), ``d <- d + mu b`` (Nesterov)
    or ``d <- b``; then ``p <- p - lr d``.  The smoothing preserves the mean of ``g`` and, for
    order 1, keeps every entry inside ``[min g, max g]``.
    """

    def __init__(self, params, lr: float = 0.01, *, sigma: float = 1.0, order: int = 1,
                 momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, smooth_weight_decay: bool = False, min_numel: int = 3):
        _check_common(lr, sigma, order, weight_decay, min_numel)
        if not momentum >= 0:
            raise ConfigError(f"momentum must be >= 0, got {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigError("nesterov momentum requires momentum > 0 and dampening = 0")
        defaults = dict(lr=lr, sigma=float(sigma), order=int(order), momentum=momentum,
                        dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                        smooth_weight_decay=smooth_weight_decay, min_numel=int(min_numel))
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update; ``closure`` re-evaluates the loss (optional, as in ``torch.optim``)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            mu, damp = group["momentum"], group["dampening"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = _smoothed_grad(p, group)
                if mu:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.detach().clone()
                    else:
                        buf.mul_(mu).add_(d, alpha=1 - damp)
                    d = d.add(buf, alpha=mu) if group["nesterov"] else buf
                p.add_(d, alpha=-group["lr"])
        return loss


class LSRMSprop(Optimizer):
    """RMSprop on Laplacian-smoothed gradients (thesis §5.3.4, "LS-RMSProp").

    ``g_s = A_sigma^{-1} g`` (+ weight decay); ``v <- a v + (1 - a) g_s^2``;
    ``p <- p - lr g_s / (sqrt(v) + eps)``.  ``sigma = 0`` is ``torch.optim.RMSprop`` without
    momentum or centring.
    """

    def __init__(self, params, lr: float = 1e-2, *, sigma: float = 1.0, order: int = 1,
                 alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 smooth_weight_decay: bool = False, min_numel: int = 3):
        _check_common(lr, sigma, order, weight_decay, min_numel)
        if not 0 <= alpha < 1:
            raise ConfigError(f"alpha must be in [0, 1), got {alpha}")
        if not eps > 0:
            raise ConfigError(f"eps must be > 0, got {eps}")
        defaults = dict(lr=lr, sigma=float(sigma), order=int(order), alpha=alpha, eps=eps,
                        weight_decay=weight_decay, smooth_weight_decay=smooth_weight_decay,
                        min_numel=int(min_numel))
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = _smoothed_grad(p, group)
                state = self.state[p]
                v = state.get("square_avg")
                if v is None:
                    v = state["square_avg"] = torch.zeros_like(p)
                v.mul_(group["alpha"]).addcmul_(d, d, value=1 - group["alpha"])
                p.addcdiv_(d, v.sqrt().add_(group["eps"]), value=-group["lr"])
        return loss
