"""Real objects on real FFTs: the measured data folded onto the Hermitian half spectrum.

A real iterate ``x`` has a Hermitian transform, ``X(-k) = conj X(k)``, so ``rfftn`` (the last
axis' first ``N // 2 + 1`` columns) holds all of it at about half the cost of ``fftn``.  The
complex path of a ``real=True`` problem computes, per iteration, ``y = Re F^-1 P~_m F x``
(the modulus projection, then the real part the object constraint keeps).  ``Re F^-1 Z'`` is
``F^-1`` of the Hermitian part ``H(k) = (Z'(k) + conj Z'(-k)) / 2``, and with ``Z = F x``
Hermitian, ``u = Z / |Z|`` (``u = 1`` where ``Z = 0``), ``m1 = m(k)``, ``m2 = m(-k)``:

* both measured:  ``H = (b(k) + b(-k)) / 2 u`` -- the projection onto the *mean* of the two
  amplitudes (the symmetrised data);
* one measured (an unmeasured Friedel partner, e.g. behind an off-centre beamstop or a bad
  pixel):  ``H = (b u + Z) / 2`` -- half projected, half the model's value;
* neither:  ``H = Z`` (free).

So one rule covers all three: ``H = P~(Z; b_h) + (1 - w) Z`` on pixels with ``w > 0`` and
``H = Z`` elsewhere, with ``w = (m1 + m2) / 2`` and ``b_h = (m1 b(k) + m2 b(-k)) / 2`` (the
modulus projection is linear in the amplitude, and halving is exact in binary).  The rule is
symmetric under ``k -> -k``, so ``H`` is Hermitian and the half spectrum of ``H`` is all
``irfftn`` needs.  This module builds ``b_h``, ``w`` and the R-factor weights on the half
spectrum once per problem (:func:`fold`); the per-pixel projection is
:func:`phasekit.operators.modulus.project_t` (torch) / ``project_pixel`` (numba).

The R-factor ``sum_k m(k) | |Z(k)| - b(k) |`` over the full grid is, since ``|Z(-k)| = |Z(k)|``,
``sum_half m1 | |Z| - b(k) | + m2' | |Z| - b(-k) |`` where ``m2' = m(-k)`` off the self-paired
columns (0 and, for even ``N``, ``N / 2``, whose partners lie in the half spectrum itself) and 0
on them: paired columns count twice, self-paired ones once.

Examples
--------
>>> import torch
>>> amp = torch.ones(4, 4, dtype=torch.float64)
>>> meas = torch.ones(4, 4, dtype=torch.bool); meas[1, 1] = False   # partner (3, 3) measured
>>> h = fold(amp, meas, 2)
>>> tuple(h.amp.shape), float(h.amp[1, 1]), float(h.keep[1, 1]), float(h.keep[0, 0])
((4, 3), 0.5, 0.5, 0.0)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.fft import friedel_partner, half_width
from ..operators.modulus import project_t


@dataclass
class HalfSpectrum:
    """Data of a real-object problem folded onto the half spectrum (work layout, last axis
    ``N // 2 + 1``).  All tensors are contiguous, on the problem's device.

    Attributes
    ----------
    amp : real tensor
        ``b_h = (m(k) b(k) + m(-k) b(-k)) / 2``: the amplitude the projection uses.
    proj : bool tensor
        ``m(k) or m(-k)``: pixels the projection touches.
    keep : real tensor
        ``1 - w`` on ``proj`` pixels (0 where both partners are measured, 0.5 where one is),
        0 elsewhere: the share of the model value kept.
    a1, m1, a2, m2 : tensors
        R-factor terms: ``b(k), m(k)`` and ``b(-k), m(-k)`` with ``m2`` false on the
        self-paired columns.
    shape : tuple
        The full (real-space) trailing shape.
    """

    amp: torch.Tensor
    proj: torch.Tensor
    keep: torch.Tensor
    a1: torch.Tensor
    m1: torch.Tensor
    a2: torch.Tensor
    m2: torch.Tensor
    shape: tuple

    def half(self, w: torch.Tensor) -> torch.Tensor:
        """The half-spectrum part of a full work-layout Fourier array (e.g. a filter symmetric
        under ``k -> -k``)."""
        return w[..., : self.amp.shape[-1]].contiguous()


def fold(amp: torch.Tensor, measured: torch.Tensor, ndim: int) -> HalfSpectrum:
    """Fold full work-layout amplitudes and mask onto the half spectrum (see module docstring).

    Parameters
    ----------
    amp : real tensor
        Measured amplitudes (zero where unmeasured), work layout.
    measured : bool tensor
        True on measured pixels, work layout.
    ndim : int
        Number of transformed (trailing) axes.

    Returns
    -------
    HalfSpectrum

    Examples
    --------
    >>> import torch
    >>> h = fold(torch.arange(5.0), torch.ones(5, dtype=torch.bool), 1)
    >>> h.amp.tolist()     # (b(k) + b(-k)) / 2 on columns 0, 1, 2 of 5
    [0.0, 2.5, 2.5]
    >>> h.m2.tolist()      # column 0 is its own partner
    [False, True, True]
    """
    n = amp.shape[-1]
    hw = half_width(n)
    a = amp.to(torch.float64) * measured
    m = measured.to(torch.bool)
    a_p = friedel_partner(a, ndim)
    m_p = friedel_partner(m, ndim)
    w = (m.to(torch.float64) + m_p.to(torch.float64)) / 2
    bh = (a + a_p) / 2
    proj = m | m_p
    keep = torch.where(proj, 1.0 - w, torch.zeros_like(w))
    col = torch.arange(n, device=amp.device)
    self_paired = (col == 0) | ((n % 2 == 0) & (col == n // 2))
    m2 = m_p & ~self_paired
    rdt = amp.dtype

    def h(t, dt=None):
        t = t[..., :hw]
        return (t.to(dt) if dt is not None else t).contiguous()

    return HalfSpectrum(amp=h(bh, rdt), proj=h(proj), keep=h(keep, rdt), a1=h(a, rdt), m1=h(m),
                        a2=h(a_p, rdt), m2=h(m2), shape=tuple(amp.shape[-ndim:]))


def project_half_reference(z: torch.Tensor, hs: HalfSpectrum) -> None:
    """Plain-torch reference of the half-spectrum projection, in place on the half spectrum
    ``z``: ``P~(z; b_h) + keep z`` on ``proj`` pixels, ``z`` elsewhere."""
    zin = z.clone()
    p = torch.where(hs.proj, project_t(zin, hs.amp), zin)
    z.copy_(torch.where(hs.keep > 0, p + hs.keep * zin, p))


def rfactor_numerator_half_reference(z: torch.Tensor, hs: HalfSpectrum) -> float:
    """Plain-torch reference of the R-factor numerator from the half spectrum (see module
    docstring; equals the full-grid ``sum_m | |Z| - b |`` of the Hermitian completion)."""
    az = z.abs()
    t = (az - hs.a1).abs() * hs.m1 + (az - hs.a2).abs() * hs.m2
    return float(t.sum(dtype=torch.float64))
