"""Linear operators with ``forward`` and ``adjoint``, and the registry-wide dot-product test."""
from __future__ import annotations

import numpy as np
import torch

from ..core.rng import make_rng


class LinearOperator:
    """A linear map ``A`` between tensor spaces with its adjoint ``A^H``.

    Subclasses set ``in_shape``, ``out_shape``, ``dtype`` (the complex or real dtype of both
    spaces) and ``device``, and implement :meth:`forward` and :meth:`adjoint`.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    dtype: torch.dtype = torch.complex64
    device: torch.device = torch.device("cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    @property
    def H(self) -> "LinearOperator":
        """The adjoint as an operator."""
        return _Adjoint(self)


class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator):
        self.op = op
        self.in_shape, self.out_shape = op.out_shape, op.in_shape
        self.dtype, self.device = op.dtype, op.device

    def forward(self, x):
        return self.op.adjoint(x)

    def adjoint(self, y):
        return self.op.forward(y)


def _random(shape, dtype, device, rng):
    if dtype.is_complex:
        a = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        return torch.as_tensor(a).to(device=device, dtype=dtype)
    return torch.as_tensor(rng.standard_normal(shape)).to(device=device, dtype=dtype)


def dot_test(op: LinearOperator, rng=None, n_trials: int = 3) -> float:
    """Dot-product (adjoint) test: ``|<A x, y> - <x, A^H y>| / (|<A x, y>| + tiny)``.

    Returns the worst relative mismatch over ``n_trials`` random complex pairs.  A correct adjoint
    gives ~1e-6 in single precision and ~1e-14 in double precision.
    """
    g = make_rng(rng)
    worst = 0.0
    for _ in range(n_trials):
        x = _random(op.in_shape, op.dtype, op.device, g)
        y = _random(op.out_shape, op.dtype, op.device, g)
        lhs = torch.vdot(op.forward(x).reshape(-1), y.reshape(-1))
        rhs = torch.vdot(x.reshape(-1), op.adjoint(y).reshape(-1))
        err = float(abs(lhs - rhs) / (abs(lhs) + np.finfo(float).tiny))
        worst = max(worst, err)
    return worst
