r"""Free-space propagators as linear operators: far field, Fresnel near field, angular spectrum.

Every propagator maps an exit wave :math:`\psi` (..., My, Mx) sampled on pixels of size
:math:`\Delta` to the wave at the detector, with :meth:`forward` and :meth:`adjoint` acting on
the trailing two axes (leading batch axes, e.g. probe modes, broadcast).

* :class:`FarFieldPropagator` -- Fraunhofer: the discrete Fourier transform, unitary
  (``norm="ortho"``, phasekit's convention) or MATLAB's unnormalised one (``norm="backward"``,
  the CRISP/PINE group's code); in the work layout (zero frequency at index 0, as the
  ptychography loops use it) or centred (``work=False``).
* :class:`FresnelPropagator` -- the paraxial transfer function (Goodman, *Introduction to
  Fourier Optics*, 3rd ed., eq. (4-21); Voelz, *Computational Fourier Optics*, sec. 5.1)

  .. math:: \psi_z=\mathcal F^{-1}\big[e^{-i\pi\lambda z(f_x^2+f_y^2)}\,\mathcal F\psi\big],

  with :math:`f=\mathrm{fftfreq}(M,\Delta)`; the constant phase :math:`e^{ikz}` is dropped (it
  does not change an intensity).  Unitary: the adjoint is the inverse (propagation by
  :math:`-z`).  For a diverging beam (Fresnel scaling) pass the *effective* pixel and distance
  (Paganin, *Coherent X-Ray Optics*, sec. 2.5: :math:`z_{\rm eff}=z_{12}/M`,
  :math:`\Delta_{\rm eff}=\Delta_{\rm det}/M`, :math:`M=(z_1+z_{12})/z_1`).  The transfer
  function is well sampled for :math:`\lambda z\le M\Delta^2` (Voelz sec. 5.2); beyond that
  the phase aliases (:attr:`FresnelPropagator.critical_distance`).
* :class:`AngularSpectrumPropagator` -- the exact scalar transfer function (Goodman eq. (3-74))

  .. math:: H=\exp\big(2\pi i z[\sqrt{\lambda^{-2}-f_x^2-f_y^2}-\lambda^{-1}]\big)

  on propagating frequencies and 0 on evanescent ones (dropped, so the operator is unitary only
  on band-limited waves; its adjoint is the conjugate transfer function).  The same constant
  phase :math:`e^{ikz}` is removed, so in the paraxial regime it agrees with
  :class:`FresnelPropagator` (tested).

Examples
--------
>>> import torch
>>> from phasekit.operators import dot_test
>>> from phasekit.operators.propagation import FresnelPropagator
>>> op = FresnelPropagator((64, 64), wavelength=1e-10, pixel_size=1e-7, distance=5e-3,
...                        dtype=torch.complex128)
>>> dot_test(op) < 1e-12
True
"""
from __future__ import annotations

import math

import torch

from ..core.errors import ConfigError
from ..core.fft import fftc, fftw, ifftc, ifftw
from .base import LinearOperator

PROPAGATIONS = ("farfield", "fresnel", "angular")


def _shape2(shape) -> tuple[int, ...]:
    s = tuple(int(v) for v in shape)
    if len(s) < 2 or min(s[-2:]) < 1:
        raise ConfigError(f"a propagator needs a shape (..., My, Mx), got {shape}")
    return s


class FarFieldPropagator(LinearOperator):
    """Far-field (Fraunhofer) propagation: the 2-D DFT of the trailing axes.

    Parameters
    ----------
    shape : tuple
        ``(..., My, Mx)``.
    norm : {"ortho", "backward"}
        Unitary (default) or unnormalised forward transform (then the adjoint is
        ``My Mx`` times the inverse).
    work : bool
        Work layout (zero frequency at index 0; default) or centred arrays.
    """

    kind = "farfield"

    def __init__(self, shape, *, norm: str = "ortho", work: bool = True,
                 dtype=torch.complex64, device=None):
        if norm not in ("ortho", "backward"):
            raise ConfigError(f"norm must be 'ortho' or 'backward', got {norm!r}")
        self.in_shape = self.out_shape = _shape2(shape)
        self.norm, self.work = norm, bool(work)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        my, mx = self.in_shape[-2:]
        self._scale = 1.0 if norm == "ortho" else math.sqrt(my * mx)

    def forward(self, x):
        y = fftw(x, 2) if self.work else fftc(x, 2)
        return y * self._scale if self._scale != 1.0 else y

    def adjoint(self, y):
        x = ifftw(y, 2) if self.work else ifftc(y, 2)
        return x * self._scale if self._scale != 1.0 else x


class _TransferFunction(LinearOperator):
    """``F^-1 [H F x]`` with a transfer function ``H`` on the unshifted frequency grid."""

    kind = "transfer"

    def __init__(self, shape, wavelength, pixel_size, distance, *, dtype=torch.complex64,
                 device=None):
        self.in_shape = self.out_shape = _shape2(shape)
        vals = [("wavelength", wavelength)] + [("pixel_size", v) for v in
                                               (pixel_size if isinstance(pixel_size, (tuple, list))
                                                else (pixel_size,))]
        for name, v in vals:
            if v is None or not math.isfinite(float(v)) or float(v) <= 0:
                raise ConfigError(f"{self.kind} propagation needs a positive {name} (m), got {v!r}")
        if distance is None or not math.isfinite(float(distance)) or float(distance) == 0:
            raise ConfigError(f"{self.kind} propagation needs a nonzero distance (m), got {distance!r}")
        self.wavelength, self.pixel_size = float(wavelength), self._pixel(pixel_size)
        self.distance = float(distance)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        my, mx = self.in_shape[-2:]
        fy = torch.fft.fftfreq(my, d=self.pixel_size[0], dtype=torch.float64)
        fx = torch.fft.fftfreq(mx, d=self.pixel_size[1], dtype=torch.float64)
        self.transfer = self._transfer(fy[:, None] ** 2 + fx[None, :] ** 2).to(device=self.device,
                                                                           dtype=dtype)

    @staticmethod
    def _pixel(p):
        if isinstance(p, (tuple, list)):
            if len(p) != 2 or min(float(v) for v in p) <= 0:
                raise ConfigError(f"pixel_size must be positive (m), got {p!r}")
            return float(p[0]), float(p[1])
        return float(p), float(p)

    def _transfer(self, f2):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def critical_distance(self) -> float:
        """:math:`\\min(M\\Delta^2)/\\lambda`: beyond it the sampled transfer function aliases."""
        my, mx = self.in_shape[-2:]
        return min(my * self.pixel_size[0] ** 2, mx * self.pixel_size[1] ** 2) / self.wavelength

    @property
    def fresnel_number(self) -> float:
        """:math:`\\Delta^2/(\\lambda z)` of one pixel (small: many pixels per fringe)."""
        return self.pixel_size[0] * self.pixel_size[1] / (self.wavelength * abs(self.distance))

    def forward(self, x):
        return ifftw(fftw(x, 2, norm="backward") * self.transfer, 2, norm="backward")

    def adjoint(self, y):
        return ifftw(fftw(y, 2, norm="backward") * self.transfer.conj(), 2, norm="backward")


class FresnelPropagator(_TransferFunction):
    """Paraxial (Fresnel) near-field propagation by the transfer function (module docstring).

    Parameters
    ----------
    shape : tuple
        ``(..., My, Mx)``.
    wavelength, pixel_size, distance : float
        Metres; ``pixel_size`` may be ``(dy, dx)``; for a diverging beam the Fresnel-scaled
        (effective) pixel and distance.  A negative distance back-propagates.
    """

    kind = "fresnel"

    def _transfer(self, f2):
        return torch.exp(-1j * math.pi * self.wavelength * self.distance * f2)


class AngularSpectrumPropagator(_TransferFunction):
    """Angular-spectrum propagation (module docstring); evanescent frequencies are dropped."""

    kind = "angular"

    def _transfer(self, f2):
        k2 = 1.0 / self.wavelength ** 2 - f2
        prop = k2 > 0
        # kz - 1/lambda = -lambda f2 / (1 + sqrt(1 - lambda^2 f2)): no cancellation
        kz = -self.wavelength * f2 / (1.0 + torch.sqrt(torch.clamp(1.0 - self.wavelength ** 2 * f2,
                                                                   min=0.0)))
        return torch.where(prop, torch.exp(2j * math.pi * self.distance * kz), 0.0)


def make_propagator(kind: str, shape, *, wavelength=None, pixel_size=None, distance=None,
                    norm: str = "ortho", dtype=torch.complex64, device=None) -> LinearOperator:
    """The propagator named ``kind`` (``"farfield"``, ``"fresnel"``, ``"angular"``).

    Near-field kinds need ``wavelength``, ``pixel_size`` and ``distance``: a missing one is a
    one-line :class:`~phasekit.core.errors.ConfigError` naming all that are missing.

    Examples
    --------
    >>> make_propagator("farfield", (8, 8)).kind
    'farfield'
    >>> make_propagator("fresnel", (8, 8), wavelength=1e-10)
    Traceback (most recent call last):
    ...
    phasekit.core.errors.ConfigError: fresnel propagation needs pixel_size, distance (metres)
    """
    if kind == "farfield":
        return FarFieldPropagator(shape, norm=norm, dtype=dtype, device=device)
    if kind not in PROPAGATIONS:
        raise ConfigError(f"propagation must be one of {', '.join(PROPAGATIONS)}, got {kind!r}")
    missing = [n for n, v in (("wavelength", wavelength), ("pixel_size", pixel_size),
                              ("distance", distance)) if v is None]
    if missing:
        raise ConfigError(f"{kind} propagation needs {', '.join(missing)} (metres)")
    cls = FresnelPropagator if kind == "fresnel" else AngularSpectrumPropagator
    return cls(shape, wavelength, pixel_size, distance, dtype=dtype, device=device)
