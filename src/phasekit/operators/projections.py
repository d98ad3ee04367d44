"""Constraint projections of CDI (reference implementations in plain torch).

Notation follows Marchesini, "Phase retrieval and saddle-point optimization" (JOSA A 24, 3289
(2007), eqs. (3)-(5)) and the Pham thesis ch. 2 (eqs. (2.14), (2.19)):

* modulus projection ``P~_m z = b z / |z|`` on measured pixels, ``z`` unchanged on unmeasured
  pixels (beamstop, gaps: thesis eq. (2.28)); the phase of ``0`` is taken as ``1`` (thesis's
  "arg(0) = 1" in the notation of §2.1, read as the phase factor ``e^{i arg 0} = 1``);
* object constraint set ``C = {support, optionally real, optionally Re >= 0}``, whose projection is
  pointwise (:func:`apply_constraints`);
* the GPS dual set ``S* = {y : Re(y) <= 0 on S}`` (for real+positive objects) with
  ``proj_{S*} = I - proj_S`` (Moreau decomposition, thesis eq. (2.19); :func:`proj_dual`).

The loops call fused CPU kernels (:mod:`phasekit.cdi.kernels`) when available; these
functions are the reference the kernels are tested against, and what CUDA runs.  The per-pixel
rule is :mod:`phasekit.operators.modulus` (numba helper and torch twin).
"""
from __future__ import annotations

import torch

from .modulus import project_t


def modulus_projection(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Return ``P~_m z``: modulus replaced by ``amp`` on measured pixels, phase kept.

    Parameters
    ----------
    z : complex tensor
        Fourier-space field.
    amp : real tensor
        Measured amplitudes ``b = sqrt(I)`` (same shape as ``z``).
    measured : bool tensor, optional
        True where ``amp`` is measured; elsewhere ``z`` is left free.  None means all measured.
    """
    out = project_t(z, amp)  # the one rule (exact for tiny / huge |z|), twin of the kernels'
    if measured is not None:
        out = torch.where(measured, out, z)
    return out


def modulus_projection_(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor | None = None
                        ) -> float:
    """In-place :func:`modulus_projection`; returns ``sum_measured | |z| - b |`` before the update.

    The return value is the numerator of the R-factor of the iterate that entered the projection
    (thesis eq. (2.21), absolute value restored), obtained at no extra FFT cost.
    """
    mag = z.abs()
    diff = (mag - amp).abs()
    if measured is not None:
        diff = diff * measured
    num = float(diff.sum())
    z.copy_(modulus_projection(z, amp, measured))
    return num


def apply_constraints(x: torch.Tensor, support: torch.Tensor | None, *, real: bool = False,
                      positive: bool = False) -> torch.Tensor:
    """Pointwise projection onto ``C``: zero outside ``support``; ``Re`` if ``real``;
    ``Re >= 0`` (clipping the real part, keeping the imaginary part unless ``real``) if
    ``positive``.  Returns a new tensor of the dtype of ``x``."""
    if real:
        r = x.real
        if positive:
            r = r.clamp_min(0)
        y = r.to(x.dtype)
    elif positive and x.is_complex():
        y = torch.complex(x.real.clamp_min(0), x.imag)
    elif positive:
        y = x.clamp_min(0)
    else:
        y = x.clone()
    if support is not None:
        y = y * support
    return y


def constraint_mask(y: torch.Tensor, support: torch.Tensor | None, *, positive: bool = False
                    ) -> torch.Tensor:
    """The set ``Gamma`` of pixels where ``y`` satisfies the object constraint (in the support
    and, with ``positive``, ``Re(y) >= 0``): the pixels HIO and RAAR copy from ``P_m x``
    (Fienup 1982)."""
    g = torch.ones(y.shape, dtype=torch.bool, device=y.device) if support is None else support.clone()
    if positive:
        g &= (y.real >= 0)
    return g


def proj_dual(y: torch.Tensor, support: torch.Tensor | None, *, real: bool = True,
              positive: bool = True) -> torch.Tensor:
    """Projection onto the polar cone ``S*`` of the constraint set: ``y - P_C(y)``
    (thesis eq. (2.19): ``Re(y)^- + i Im(y)`` on ``S``, ``y`` outside)."""
    return y - apply_constraints(y, support, real=real, positive=positive)
