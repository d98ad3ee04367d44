"""Hot elementwise steps of the CDI iterations: a plain-torch reference (what CUDA runs and what
the tests compare against) and fused single-pass CPU kernels compiled with numba.

Why: on the CPU, torch's complex elementwise operations are slow (``abs``/``sgn`` of a 256^2
complex64 array cost about half an FFT pair, and every extra temporary costs a pass over memory),
so an iteration written naively costs 2-3x its FFTs.  Each kernel here does one pass over memory:

* :func:`fourier_project` -- modulus projection on measured pixels (unmeasured pixels free),
  returning the R-factor numerator of the incoming field;
* :func:`realspace_update` -- ER / HIO / RAAR real-space step with support, realness and
  positivity (one definition of each rule; see :mod:`phasekit.cdi.algorithms`).

The numba kernels are used automatically for contiguous CPU tensors when numba imports; set
``PHASEKIT_NO_NUMBA=1`` to force the reference path.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..operators.projections import apply_constraints, modulus_projection_

ER, HIO, RAAR = 0, 1, 2
_MODES = {"er": ER, "hio": HIO, "raar": RAAR}

try:  # numba is optional at run time: fall back to the torch reference
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    import numba

    @numba.njit(fastmath=False, cache=True, parallel=True)
    def _nb_fourier_project(z, amp, meas):  # pragma: no cover - compiled
        zf = z.ravel()
        af = amp.ravel()
        mf = meas.ravel()
        num = 0.0
        for i in numba.prange(zf.size):
            if mf[i]:
                v = zf[i]
                a2 = v.real * v.real + v.imag * v.imag
                b = af[i]
                if a2 > 0:
                    m = np.sqrt(a2)
                    num += abs(m - b)
                    f = b / m
                    zf[i] = v * f
                else:
                    num += b
                    zf[i] = b
        return num

    @numba.njit(fastmath=False, cache=True, parallel=True)
    def _nb_realspace_update(x, y, supp, mode, beta, real, positive):  # pragma: no cover
        xf = x.ravel()
        yf = y.ravel()
        sf = supp.ravel()
        for i in numba.prange(xf.size):
            yv = yf[i]
            if real:
                yv = complex(yv.real, 0.0)
            xv = xf[i]
            if mode == 0:  # ER: x = P_C(y)
                if sf[i]:
                    r = yv.real
                    if positive and r < 0:
                        r = 0.0
                    xf[i] = complex(r, yv.imag)
                else:
                    xf[i] = 0
            elif mode == 1:  # HIO
                if sf[i] and ((not positive) or yv.real >= 0):
                    xf[i] = yv
                else:
                    xf[i] = xv - beta * yv
            else:  # RAAR
                if sf[i] and ((not positive) or (2.0 * yv.real - xv.real) >= 0):
                    xf[i] = yv
                else:
                    xf[i] = beta * xv + (1.0 - 2.0 * beta) * yv

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False


def _fused_ok(*ts: torch.Tensor) -> bool:
    return HAVE_NUMBA and all(t.device.type == "cpu" and t.is_contiguous() and not t.requires_grad
                              for t in ts)


def fourier_project(z: torch.Tensor, amp: torch.Tensor, measured: torch.Tensor, *,
                    fused: bool | None = None) -> float:
    """In place ``z <- P~_m z``; returns ``sum_measured | |z| - b |`` of the incoming ``z``."""
    if fused is None:
        fused = _fused_ok(z, amp, measured)
    if fused:
        return float(_nb_fourier_project(z.numpy(), amp.numpy(), measured.numpy()))
    return modulus_projection_(z, amp, measured)


def realspace_update_reference(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, mode: int,
                               beta: float, real: bool, positive: bool) -> None:
    """Plain-torch reference of :func:`realspace_update` (in place on ``x``)."""
    if real:
        y = y.real.to(x.dtype)
    if mode == ER:
        x.copy_(apply_constraints(y, support, real=False, positive=positive))
        return
    if mode == HIO:
        gamma = support & (y.real >= 0) if positive else support
        x.copy_(torch.where(gamma, y, x - beta * y))
        return
    if mode == RAAR:
        gamma = support & ((2 * y.real - x.real) >= 0) if positive else support
        x.copy_(torch.where(gamma, y, beta * x + (1 - 2 * beta) * y))
        return
    raise ValueError(f"unknown mode {mode}")


def realspace_update(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, mode: int,
                     beta: float = 0.9, *, real: bool = False, positive: bool = False,
                     fused: bool | None = None) -> None:
    """In-place real-space step ``x <- U(x, y)`` with ``y = P_m x``.

    ``mode`` is :data:`ER` (``x = P_C y``), :data:`HIO` (``y`` on ``Gamma``, ``x - beta y``
    elsewhere) or :data:`RAAR` (``y`` on ``Gamma'``, ``beta x + (1 - 2 beta) y`` elsewhere), with
    ``Gamma`` = support (and ``Re y >= 0`` with positivity), ``Gamma'`` = support (and
    ``Re(2y - x) >= 0`` with positivity).  With ``real`` the imaginary part of ``y`` is dropped,
    so a real iterate stays real.
    """
    if fused is None:
        fused = _fused_ok(x, y, support)
    if fused:
        _nb_realspace_update(x.numpy(), y.numpy(), support.numpy(), int(mode), float(beta),
                             bool(real), bool(positive))
    else:
        realspace_update_reference(x, y, support, mode, beta, real, positive)
