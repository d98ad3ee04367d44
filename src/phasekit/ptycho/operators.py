r"""Ptychographic forward model as linear operators (forward and adjoint).

Notation of the CRISP paper (secs. 2.1-2.2; the conventions of the group's public PINE code):

* :math:`\mathcal S_{\mathbf r}` crops the :math:`M_y\times M_x` object patch whose top-left corner
  is the integer part :math:`\lfloor\mathbf r\rfloor` of the scan position (0-based pixels, (y, x));
  its adjoint scatters (adds) a patch back into a zero object; the algorithms' "write-back"
  :math:`\mathcal S^\dagger` *assigns* the updated patch, which is what an in-place update of the
  cropped view does (:func:`crop` returns a view).
* :math:`\mathcal T_{\mathbf r}` shifts the probe by the fractional part
  :math:`\delta=\mathbf r-\lfloor\mathbf r\rfloor` with a Fourier phase ramp,
  :math:`\mathcal T(\mathbf P)=\mathcal F^{-1}[e^{-2\pi i(\delta_y k_y/M_y+\delta_x k_x/M_x)}
  \odot\mathcal F\mathbf P]` with :math:`k` the integer frequencies (``fftfreq(M) * M``, the same
  as MATLAB's ``ifftshift(-floor(M/2):...)``).  It is unitary and circular, so its adjoint is its
  exact inverse (the conjugate ramp).
* Far-field propagation is the unitary FFT of :mod:`phasekit.core.fft` (work layout: zero
  frequency at index 0, as the PINE code's once-shifted data); :class:`phasekit.operators.FarField`
  is reused.

All operators here act on single tensors and are checked by :func:`phasekit.operators.dot_test`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..core.errors import InputError
from ..core.fft import fftw, ifftw
from ..operators import FarField, LinearOperator


# --------------------------------------------------------------------------- positions
def split_positions(positions) -> tuple[np.ndarray, np.ndarray]:
    """Split scan positions (pixels, (N, 2) as (y, x), top-left corners) into the integer part
    ``floor(r)`` (int64) and the fractional part ``r - floor(r)`` in ``[0, 1)`` (float64)."""
    r = np.asarray(positions, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != 2:
        raise InputError(f"positions must have shape (N, 2) (y, x in pixels), got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise InputError("positions contain NaN or Inf")
    ints = np.floor(r)
    frac = r - ints
    # float noise: 2.9999999999 must not become (2, 0.9999999)
    snap = frac > 1 - 1e-9
    ints[snap] += 1
    frac[snap] = 0.0
    frac[frac < 1e-9] = 0.0
    return ints.astype(np.int64), frac


def check_positions(ints: np.ndarray, probe_shape, object_shape) -> None:
    """Every patch must lie inside the object (no wrap-around)."""
    my, mx = probe_shape
    ny, nx = object_shape
    if ints.size == 0:
        raise InputError("no scan positions")
    lo = ints.min(axis=0)
    hi = ints.max(axis=0) + np.array([my, mx])
    if lo[0] < 0 or lo[1] < 0 or hi[0] > ny or hi[1] > nx:
        raise InputError(f"scan positions reach pixels y in [{lo[0]}, {hi[0]}), x in [{lo[1]}, "
                         f"{hi[1]}) with a {my}x{mx} probe, outside the {ny}x{nx} object")


def crop(obj: torch.Tensor, iy: int, ix: int, shape) -> torch.Tensor:
    """The patch ``obj[iy:iy+My, ix:ix+Mx]`` as a *view* (in-place updates write back)."""
    return obj[..., iy:iy + shape[0], ix:ix + shape[1]]


# --------------------------------------------------------------------------- sub-pixel ramps
def integer_frequencies(n: int, device=None, dtype=torch.float64) -> torch.Tensor:
    """``0, 1, ..., -2, -1`` (``fftfreq(n) * n``), the k of the ramp ``exp(-2 pi i k d / n)``."""
    return torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype).round()


def shift_ramps(frac, shape, *, device=None, dtype=torch.complex64):
    """Separable Fourier ramps of fractional shifts: ``(ry, rx)`` with ``ry[n, k] =
    exp(-2 pi i frac[n, 0] k / My)`` (and the same along x); the 2-D ramp of position ``n`` is
    ``ry[n, :, None] * rx[n, None, :]``."""
    f = torch.as_tensor(np.asarray(frac, dtype=np.float64))
    ky = integer_frequencies(shape[0])
    kx = integer_frequencies(shape[1])
    ry = torch.exp(-2j * math.pi * f[:, :1] * ky[None, :] / shape[0])
    rx = torch.exp(-2j * math.pi * f[:, 1:] * kx[None, :] / shape[1])
    return ry.to(device=device, dtype=dtype), rx.to(device=device, dtype=dtype)


def shift_probe(probe: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor,
                inverse: bool = False) -> torch.Tensor:
    r""":math:`\mathcal T(\mathbf P)` (or :math:`\mathcal T^{-1}=\mathcal T^\dagger` with
    ``inverse=True``) for one separable ramp ``(ry, rx)`` of shapes ``(My,)`` and ``(Mx,)``."""
    ramp = ry[:, None] * rx[None, :]
    if inverse:
        ramp = ramp.conj()
    return ifftw(fftw(probe, 2) * ramp, 2)


class ProbeShift(LinearOperator):
    r"""The sub-pixel probe shift :math:`\mathcal T_\delta` of one fractional shift ``delta``
    (pixels, (y, x)); unitary, so :meth:`adjoint` is the exact inverse (conjugate ramp)."""

    def __init__(self, shape, delta, *, dtype=torch.complex64, device=None):
        self.in_shape = self.out_shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        ry, rx = shift_ramps(np.asarray(delta, dtype=np.float64).reshape(1, 2), self.in_shape,
                             device=self.device, dtype=dtype)
        self.ry, self.rx = ry[0], rx[0]

    def forward(self, x):
        return shift_probe(x, self.ry, self.rx)

    def adjoint(self, y):
        return shift_probe(y, self.ry, self.rx, inverse=True)

    inverse = adjoint


class ObjectPatches(LinearOperator):
    r"""Stacked crops :math:`\mathbf O\mapsto(\mathcal S_{\mathbf r_n}\mathbf O)_n`, shape
    ``object_shape -> (N, My, Mx)``; the adjoint adds each patch back at its position (the
    overlap sum).  Positions are top-left corners (integer parts are used)."""

    def __init__(self, object_shape, probe_shape, positions, *, dtype=torch.complex64,
                 device=None):
        self.ints, _ = split_positions(positions)
        check_positions(self.ints, probe_shape, object_shape)
        self.probe_shape = tuple(int(s) for s in probe_shape)
        self.in_shape = tuple(int(s) for s in object_shape)
        self.out_shape = (len(self.ints), *self.probe_shape)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        my, mx = self.probe_shape
        iy = torch.as_tensor(self.ints[:, 0], device=self.device)[:, None, None] + \
            torch.arange(my, device=self.device)[None, :, None]
        ix = torch.as_tensor(self.ints[:, 1], device=self.device)[:, None, None] + \
            torch.arange(mx, device=self.device)[None, None, :]
        #: flat object index of every patch pixel, (N, My, Mx)
        self.index = (iy * self.in_shape[1] + ix).reshape(-1)

    def forward(self, x):
        return x.reshape(-1)[self.index].reshape(self.out_shape)

    def adjoint(self, y):
        out = torch.zeros(self.in_shape[0] * self.in_shape[1], dtype=y.dtype, device=y.device)
        out.index_add_(0, self.index, y.reshape(-1))
        return out.reshape(self.in_shape)


def exit_waves(obj: torch.Tensor, probe: torch.Tensor, ints: np.ndarray, ramps=None,
               idx=None) -> torch.Tensor:
    r"""Batched exit waves :math:`\boldsymbol\Psi_n=\mathcal T_{\mathbf r_n}(\mathbf P)\odot
    \mathcal S_{\mathbf r_n}(\mathbf O)` for the positions ``idx`` (all by default), (n, My, Mx);
    a stack of probe modes ``(K, My, Mx)`` gives ``(n, K, My, Mx)``."""
    my, mx = probe.shape[-2:]
    if idx is None:
        idx = np.arange(len(ints))
    sel = ints[idx]
    iy = torch.as_tensor(sel[:, 0], device=obj.device)[:, None, None] + \
        torch.arange(my, device=obj.device)[None, :, None]
    ix = torch.as_tensor(sel[:, 1], device=obj.device)[:, None, None] + \
        torch.arange(mx, device=obj.device)[None, None, :]
    patches = obj[iy, ix]
    if probe.ndim == 3:  # probe modes
        patches = patches[:, None]
    if ramps is None:
        return patches * probe
    ry, rx = ramps
    it = torch.as_tensor(idx, device=obj.device)
    ramp = ry[it][:, :, None] * rx[it][:, None, :]
    if probe.ndim == 3:
        ramp = ramp[:, None]
    pn = ifftw(fftw(probe, 2)[None] * ramp, 2)
    return patches * pn


class PtychoObjectOperator(LinearOperator):
    r"""The linear part of the measurement for a fixed probe,
    :math:`\mathbf O\mapsto(\mathcal F[\mathcal T_{\mathbf r_n}(\mathbf P)\odot\mathcal
    S_{\mathbf r_n}\mathbf O])_n` (object ``-> (N, My, Mx)`` in the work layout of the detector),
    adjoint :math:`\sum_n\mathcal S^\top_{\mathbf r_n}[\overline{\mathbf P_n}\odot\mathcal F^H
    \mathbf y_n]`.  The data model is :math:`I_n=|\cdot|^2` of this."""

    def __init__(self, probe: torch.Tensor, object_shape, positions):
        self.probe = probe
        self.patches = ObjectPatches(object_shape, probe.shape, positions, dtype=probe.dtype,
                                     device=probe.device)
        ints, frac = split_positions(positions)
        if np.any(frac != 0):
            ry, rx = shift_ramps(frac, probe.shape, device=probe.device, dtype=probe.dtype)
            ramp = ry[:, :, None] * rx[:, None, :]
            self.pn = ifftw(fftw(probe, 2)[None] * ramp, 2)
        else:
            self.pn = probe[None].expand(len(ints), *probe.shape)
        self.far = FarField(self.patches.out_shape, ndim=2, dtype=probe.dtype, device=probe.device,
                            work=True)
        self.in_shape = self.patches.in_shape
        self.out_shape = self.patches.out_shape
        self.dtype = probe.dtype
        self.device = probe.device

    def forward(self, x):
        return self.far.forward(self.pn * self.patches.forward(x))

    def adjoint(self, y):
        return self.patches.adjoint(self.pn.conj() * self.far.adjoint(y))


class PtychoProbeOperator(LinearOperator):
    r"""The linear part of the measurement for a fixed object,
    :math:`\mathbf P\mapsto(\mathcal F[\mathcal T_{\mathbf r_n}(\mathbf P)\odot\mathbf O_n])_n`,
    adjoint :math:`\sum_n\mathcal T^\dagger_{\mathbf r_n}[\overline{\mathbf O_n}\odot\mathcal F^H
    \mathbf y_n]`."""

    def __init__(self, obj: torch.Tensor, probe_shape, positions):
        self.patches_op = ObjectPatches(obj.shape, probe_shape, positions, dtype=obj.dtype,
                                        device=obj.device)
        self.on = self.patches_op.forward(obj)
        ints, frac = split_positions(positions)
        self.ramps = shift_ramps(frac, probe_shape, device=obj.device, dtype=obj.dtype)
        self.in_shape = tuple(int(s) for s in probe_shape)
        self.out_shape = self.patches_op.out_shape
        self.dtype = obj.dtype
        self.device = obj.device

    def _ramp(self):
        ry, rx = self.ramps
        return ry[:, :, None] * rx[:, None, :]

    def forward(self, x):
        pn = ifftw(fftw(x, 2)[None] * self._ramp(), 2)
        return fftw(pn * self.on, 2)

    def adjoint(self, y):
        g = self.on.conj() * ifftw(y, 2)
        return ifftw((fftw(g, 2) * self._ramp().conj()).sum(0), 2)
