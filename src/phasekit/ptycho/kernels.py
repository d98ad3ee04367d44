r"""Per-position hot steps of the PIE family: a plain-torch reference (what CUDA runs and what the
tests compare against) and fused single-pass numba kernels for the CPU.

One position of every engine is (the ePIE listing of the CRISP paper, sec. 2.2, and its
``CRISPdirection``, sec. 3.4, reconstructed from the text; the listings are not legible in our copy)::

    psi = P_n * O_n                       (exit wave; also max|P_n|^2, max|O_n|^2)
    z = F psi;  z <- b sign(z) on measured pixels   (eq. (3); R_F and cost terms on the way)
    psi~ = F^-1 z;  R = psi~ - psi
    O_n += s_o conj(P_n) R / ((1 - g_o)|P_n|^2 + g_o max|P_n|^2)
    P_n += s_p conj(O_n) R / ((1 - g_p)|O_n|^2 + g_p max|O_n|^2)     (old O_n: simultaneous)

ePIE is ``g = 1`` with ``s = alpha``; rPIE is ``s = 1`` (or its step) with ``g = gamma``; CRISP is
``g = 1`` with ``s = lambda G_nu |P_n|^2_max`` (so the update is ``lambda G_nu conj(P_n) R``).  The
cost :math:`\|\mathbf R\|^2` comes from the Fourier side for free (unitary FFT:
:math:`\|\tilde\Psi-\Psi\|^2=\sum_{\rm measured}(b-|z|)^2`).

The fused sweep (:func:`sweep_kernels`) reorders this into two FFTs and two compiled passes per
position: ``z <- P(z) - z`` (so that :math:`\mathcal F^{-1}` gives :math:`\mathbf R` directly:
equal to ``psi~ - psi`` in exact arithmetic, one array fewer to read) and the update of this
window fused with the exit wave of the next (:func:`sweep_kernels`' ``update_exit``).  The
compiled code lives in :mod:`.numba_kernels`.
"""
from __future__ import annotations

import os

import numpy as np
import torch

try:
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    from . import numba_kernels as _NK
    _K = _NK.SINGLE
    _SWEEP, _MODES = _NK.sweep, _NK.modes
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _K = _SWEEP = _MODES = None
    HAVE_NUMBA = False


def fused_ok(*ts: torch.Tensor) -> bool:
    """The fused CPU kernels apply (numba present, CPU tensors)."""
    return HAVE_NUMBA and all(t.device.type == "cpu" for t in ts)


# --------------------------------------------------------------------------- reference (torch)
def exit_wave_ref(P, O):
    psi = P * O
    pm = (P.real ** 2 + P.imag ** 2).max()
    om = (O.real ** 2 + O.imag ** 2).max()
    return psi, pm, om


def fourier_ref(z, amp, meas):
    """In place modulus projection (sign(0) = 1, unmeasured pixels free); returns the R_F
    numerator and :math:`\\sum_{\\rm measured}(b-|z|)^2` as 0-d tensors."""
    a = torch.sqrt(z.real ** 2 + z.imag ** 2)
    d = (amp - a) * meas
    num = d.abs().sum(dtype=torch.float64)
    cost = (d * d).sum(dtype=torch.float64)
    ph = torch.where(a > 0, z / torch.where(a > 0, a, torch.ones_like(a)), torch.ones_like(z))
    z.copy_(torch.where(meas, amp * ph, z))
    return num, cost


def grad_norms_ref(P, O, psit):
    r = psit - P * O
    r2 = r.real ** 2 + r.imag ** 2
    return ((P.real ** 2 + P.imag ** 2) * r2).sum(dtype=torch.float64), \
        ((O.real ** 2 + O.imag ** 2) * r2).sum(dtype=torch.float64)


def update_ref(P, O, psit, so, sp, go, gp, pm, om, do_probe: bool):
    """In place on the views ``P`` (the shifted probe) and ``O`` (the object patch)."""
    r = psit - P * O
    p2 = P.real ** 2 + P.imag ** 2
    o2 = O.real ** 2 + O.imag ** 2
    den_o = (1 - go) * p2 + go * pm
    dO = torch.where(den_o > 0, so / torch.where(den_o > 0, den_o, 1.0), 0.0) * (P.conj() * r)
    if do_probe:
        den_p = (1 - gp) * o2 + gp * om
        dP = torch.where(den_p > 0, sp / torch.where(den_p > 0, den_p, 1.0), 0.0) * (O.conj() * r)
        P.add_(dP.to(P.dtype))
    O.add_(dO.to(O.dtype))


# --------------------------------------------------------------------------- fused entry points
def fused_kernels():
    """``(exit_wave, fourier, grad_norms, update)`` numba kernels on NumPy views; the object is
    passed whole (C-contiguous) with the patch offsets ``(y0, x0)``, so inner loops vectorise.
    ``exit_wave`` also takes two row buffers and their integer views (:func:`max_buffers`)."""
    return _K


def sweep_kernels():
    r"""The chained single-mode sweep kernels: ``fourier_diff(z, amp, meas)`` (``z`` <- the
    modulus projection of ``z`` minus ``z``, with the bits of ``fourier``'s projection; returns
    the sums), ``grad_norms_r(P, O, R, y0, x0)`` and ``update_exit(P, O, R, y0, x0, s_o, s_p,
    g_o, g_p, pm, om, do_probe, psi, y1, x1, nxt, bufs)`` (this position's update and the next
    window's exit wave in one pass).  The inverse transform of ``fourier_diff``'s output is
    :math:`\mathbf R=\tilde\Psi-\Psi` directly (linearity), so the update reads three
    arrays instead of four."""
    return _SWEEP


def modes_kernels():
    """The K-mode kernels on (K, My, Mx) NumPy arrays: ``exit``, ``fourier`` (incoherent-sum
    projection as a difference, sums and EM background terms), ``update``, ``grad_norms`` and
    ``shift_sums`` (the normal equations of :func:`.positions.shift_estimate`)."""
    return _MODES


def max_buffers(n: int, real_dtype) -> tuple:
    """Scratch rows for :func:`fused_kernels`' ``exit_wave``: ``(bp, bo, ip, io)``, two real
    buffers of length ``n`` and their same-width signed-integer views."""
    rt = np.dtype(real_dtype)
    it = np.int32 if rt.itemsize == 4 else np.int64
    bp = np.zeros(n, rt)
    bo = np.zeros(n, rt)
    return bp, bo, bp.view(it), bo.view(it)


# --------------------------------------------------------------------------- modes (torch)
# The general reference step: K probe modes (K = 1 included), any propagator, an optional
# background.  For K = 1 and no background the arithmetic is that of the functions above.
def exit_wave_modes(P, O):
    """``psi_k = P_k O`` (K, My, Mx), :math:`\\max\\sum_k|P_k|^2` and :math:`\\max|O|^2`."""
    psi = P * O
    pm = (P.real ** 2 + P.imag ** 2).sum(0).max()
    om = (O.real ** 2 + O.imag ** 2).max()
    return psi, pm, om


def fourier_modes(z, amp, meas, background=None):
    r"""In place modulus projection of K detector waves (K, My, Mx) for the incoherent sum
    (Thibault & Menzel 2013): every mode is scaled by :math:`\sqrt I/\sqrt{\sum_k|z_k|^2+B}` on
    measured pixels (where the model is 0: mode 0 gets the measured amplitude, the others 0,
    i.e. ``sign(0) = 1``).  Returns the R_F numerator, :math:`\sum(b-a)^2` (0-d tensors) and
    the model intensity :math:`a^2=\sum_k|z_k|^2+B` (My, Mx)."""
    s = (z.real ** 2 + z.imag ** 2).sum(0)
    if background is not None:
        s = s + background
    a = torch.sqrt(s)
    d = (amp - a) * meas
    num = d.abs().sum(dtype=torch.float64)
    cost = (d * d).sum(dtype=torch.float64)
    pos = a > 0
    ph = z / torch.where(pos, a, torch.ones_like(a))
    ph = torch.where(pos, ph, torch.zeros_like(ph))
    ph[0] = torch.where(pos, ph[0], torch.ones_like(ph[0]))
    z.copy_(torch.where(meas, amp * ph, z))
    return num, cost, s


def grad_norms_modes(P, O, psit, psi):
    r""":math:`\|\sum_k\bar P_k R_k\|^2` and :math:`\sum_k\|\bar O R_k\|^2` (CRISP's
    denominators with modes), ``R = psit - psi``."""
    r = psit - psi
    go = (P.conj() * r).sum(0)
    r2 = r.real ** 2 + r.imag ** 2
    return (go.real ** 2 + go.imag ** 2).sum(dtype=torch.float64), \
        ((O.real ** 2 + O.imag ** 2) * r2).sum(dtype=torch.float64)


def update_modes(P, O, psi, psit, so, sp, go, gp, pm, om, do_probe: bool):
    r"""In place on the views ``P`` (K shifted modes) and ``O`` (the object patch), both from
    the pre-update values: :math:`\Delta O=s_o\sum_k\bar P_kR_k/((1-g_o)\sum_k|P_k|^2+g_o
    p_m)`, :math:`\Delta P_k=s_p\bar OR_k/((1-g_p)|O|^2+g_po_m)`."""
    r = psit - psi
    p2 = (P.real ** 2 + P.imag ** 2).sum(0)
    o2 = O.real ** 2 + O.imag ** 2
    den_o = (1 - go) * p2 + go * pm
    dO = torch.where(den_o > 0, so / torch.where(den_o > 0, den_o, 1.0), 0.0) * \
        (P.conj() * r).sum(0)
    if do_probe:
        den_p = (1 - gp) * o2 + gp * om
        dP = torch.where(den_p > 0, sp / torch.where(den_p > 0, den_p, 1.0), 0.0) * (O.conj() * r)
        P.add_(dP.to(P.dtype))
    O.add_(dO.to(O.dtype))
