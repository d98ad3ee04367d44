"""Dispatch between the fused CPU kernels of the subspace Lagrangian and plain torch: the kernel
table (:mod:`phasekit.cdi.saddle.kernels`, and the generated K = 4 kernels of
:mod:`phasekit.cdi._saddle_unrolled`), the linear-constraint and modulus projections of SO2D /
SO4D, and the NumPy views the kernels read.  Set ``PHASEKIT_NO_NUMBA=1`` to force plain torch.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ...operators.projections import apply_constraints, modulus_projection

__all__ = ["HAVE_NUMBA", "project_into", "constrain_inplace", "tensor_views"]

try:
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    from . import kernels as _k
    from .. import _saddle_unrolled as _u

    _EVAL2, _EVALK, _SETUP, _APPLY, _PROJECT_INTO = _k.eval2, _k.evalk, _k.setup, _k.apply_step, _k.project_into
    _SETUP2, _APPLY2, _MASK, _SETUP2N, _EVAL2N, _APPLY2P = (_k.setup2, _k.apply2, _k.mask_inplace, _k.setup2n,
                                                           _k.eval2n, _k.apply2p)
    # K = 4 (SO4D): the generated kernels; other K use the generic loops (evalk, setup, apply_step)
    _EVAL4, _SETUP4, _APPLY4, _EVAL4N, _SETUP4N, _APPLY4N = (_u.eval_k, _u.setup_k, _u.apply_k, _u.eval_kn,
                                                             _u.setup_kn, _u.apply_kn)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False
    _EVAL2 = _EVALK = _SETUP = _APPLY = _PROJECT_INTO = _SETUP2 = _APPLY2 = _MASK = None
    _SETUP2N = _EVAL2N = _APPLY2P = _EVAL4 = _SETUP4 = _APPLY4 = _EVAL4N = _SETUP4N = _APPLY4N = None


def _unpack_pairs(v, K):
    H = np.zeros((K, K))
    n = 0
    for j in range(K):
        for k in range(j, K):
            H[j, k] = H[k, j] = v[n]
            n += 1
    return H


def _fused_ok(*ts) -> bool:
    return HAVE_NUMBA and all(t.device.type == "cpu" and t.is_contiguous() for t in ts)


def project_into(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor, out: torch.Tensor,
                 *, fused: bool | None = None) -> torch.Tensor:
    """``out <- P~_m z`` (out of place; the same rule and bits as
    :func:`phasekit.cdi.kernels.fourier_project`: :mod:`phasekit.operators.modulus`).

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([3 + 4j, 0j, 1 + 1j], dtype=torch.complex64)
    >>> out = project_into(z, torch.tensor([10.0, 2.0, 5.0]), torch.tensor([True, True, False]),
    ...                    torch.empty_like(z))
    >>> out.tolist()
    [(6+8j), (2+0j), (1+1j)]
    """
    if fused is None:
        fused = _fused_ok(z, amp, measured, out)
    if fused:
        _PROJECT_INTO(z.numpy(), amp.numpy(), measured.numpy(), out.numpy())
    else:
        out.copy_(modulus_projection(z, amp, measured))
    return out


def constrain_inplace(y: torch.Tensor, support: torch.Tensor, real: bool, *,
                      fused: bool | None = None) -> torch.Tensor:
    """``y <- P_s y`` in place (support, and realness): the linear constraint projection.

    Examples
    --------
    >>> import torch
    >>> y = torch.tensor([1 + 2j, 3 + 4j])
    >>> constrain_inplace(y, torch.tensor([True, False]), True).tolist()
    [(1+0j), 0j]
    """
    if fused is None:
        fused = _fused_ok(y, support)
    if fused:
        _MASK(y.numpy(), support.numpy(), bool(real))
    else:
        y.copy_(apply_constraints(y, support, real=real))
    return y


def tensor_views(z, gs, gm, D, amp, measured) -> dict:
    """NumPy views (shared memory) of the CPU tensors the fused kernels read: ``z``, ``gs``,
    ``gm``, the rows of ``D`` and ``D`` flattened to ``(k, N)``, ``amp``, ``meas``."""
    k = D.shape[0]
    return {"z": z.numpy(), "gs": None if gs is None else gs.numpy(),
            "gm": None if gm is None else gm.numpy(), "rows": tuple(D[i].numpy() for i in range(k)),
            "Dflat": D.reshape(k, -1).numpy(), "amp": amp.numpy(), "meas": measured.numpy()}

