"""Tomographic projectors, batched over angles, on CPU or CUDA tensors.

Three operators share one geometry (:mod:`phasekit.tomo.geometry`: volume index order
``(x, y, z)``, centre ``N // 2``, ``(x, y) = (R^T r)[:2]``):

:class:`FourierSliceProjector`
    RESIRE's forward projector (Pham thesis §3.2.1.1 and Algorithm 3, §3.2.1.3): zero-pad the volume
    by a per-axis ratio ``s`` (2-4), one centred 3-D FFT, trilinear (the thesis says "bi-linear",
    but slicing a 3-D array needs trilinear) interpolation of the central slice ``R [kx, ky, 0]^T``
    (0 outside the grid), inverse 2-D FFT, real part, centre crop to the detector.  At ``R = I`` it
    equals ``sum(axis=z)`` to rounding (Fourier slice theorem). Its
    :meth:`~FourierSliceProjector.adjoint` is the *exact* adjoint (the transposed chain, obtained
    with autograd through the same operations).
:class:`RealSpaceProjector`
    Voxel-driven projector pair that are exact adjoints of each other: :meth:`adjoint` is the
    bilinear back projector of Eqn 3.3-3.4 (every voxel reads the 2-D residual at its detector
    point, bilinear interpolation, 0 outside the detector), :meth:`forward` its transpose (every
    voxel splats its value onto the 4 detector pixels around its detector point).  For a single
    tilt axis on the CPU both run as compiled kernels (:mod:`phasekit.tomo.kernels`, slice by
    slice, the same operator to float rounding); ``grid_sample`` is the reference path.
:class:`HybridProjector`
    RESIRE's "hybrid" (thesis line 921): Fourier-slice forward with the bilinear back projection.
    It is **not** an adjoint pair (our observation; the thesis does not discuss it): on smooth
    fields the inner products agree to a few percent, on white noise they do not.

Rotation axis off the detector centre (``center_offset`` = axis ``x`` minus ``Dx // 2``, pixels,
as measured on real scans by :func:`phasekit.tomo.preprocess.find_center`): the real-space pair
samples the detector at ``x + offset`` (a shifted sampling coordinate, still an exact pair) and the
Fourier-slice projector multiplies each 2-D slice by the phase ramp ``exp(-2 pi i f_x offset)``
before its inverse FFT (shift theorem; the autograd adjoint stays exact).  The data are never
resampled.

All inputs and outputs are real tensors: volumes ``(Nx, Ny, Nz)``, projection stacks
``(n, Dx, Dy)``.  ``dtype`` is float32 by default (float64 for the exactness tests).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import resolve_device
from ..core.errors import ConfigError, InputError
from ..operators.base import LinearOperator
from . import kernels_fst as _kfst
from .geometry import rotation_matrices

__all__ = ["FourierSliceProjector", "RealSpaceProjector", "HybridProjector", "make_projector",
           "padded_shape"]


def _shape3(shape, name="shape"):
    try:
        s = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be 3 integers, got {shape!r}") from None
    if len(s) != 3 or min(s) < 2:
        raise InputError(f"{name} must be 3 sizes >= 2, got {shape!r}")
    return s


def _det_shape(det_shape, vol_shape):
    if det_shape is None:
        return (vol_shape[0], vol_shape[1])
    try:
        d = tuple(int(n) for n in det_shape)
    except (TypeError, ValueError):
        raise InputError(f"det_shape must be 2 integers, got {det_shape!r}") from None
    if len(d) != 2 or min(d) < 2:
        raise InputError(f"det_shape must be 2 sizes >= 2, got {det_shape!r}")
    return d


def _offset(v) -> float:
    """A rotation-centre offset in detector pixels (finite float)."""
    try:
        o = float(v)
    except (TypeError, ValueError):
        raise InputError(f"center_offset must be a number of pixels, got {v!r}") from None
    if not math.isfinite(o):
        raise InputError(f"center_offset must be finite, got {v!r}")
    return o


def padded_shape(vol_shape, oversampling) -> tuple[int, int, int]:
    """Per-axis padded size ``ceil(s_a N_a)`` (at least ``N_a``) of the Fourier-slice projector."""
    s = np.broadcast_to(np.asarray(oversampling, dtype=np.float64), (3,))
    if not np.all(np.isfinite(s)) or np.any(s < 1.0):
        raise ConfigError(f"oversampling must be >= 1 on every axis, got {oversampling!r}")
    return tuple(max(int(math.ceil(si * n - 1e-9)), n) for si, n in zip(s, vol_shape))


def _dtype(dtype):
    dt = torch.float32 if dtype is None else dtype
    if dt not in (torch.float32, torch.float64):
        raise ConfigError(f"projector dtype must be torch.float32 or torch.float64, got {dt}")
    return dt


class _Geometry(LinearOperator):
    """Shared state: rotations, shapes, device, dtype."""

    def _setup(self, vol_shape, angles, det_shape, device, dtype):
        self.vol_shape = _shape3(vol_shape, "volume shape")
        self.det_shape = _det_shape(det_shape, self.vol_shape)
        self.angles = None if angles is None else np.asarray(angles, dtype=np.float64)
        R = rotation_matrices(angles)
        self.n_proj = R.shape[0]
        self.device = resolve_device(device)
        self.dtype = _dtype(dtype)
        self.R = torch.as_tensor(R, dtype=torch.float64, device=self.device)
        self.in_shape = self.vol_shape
        self.out_shape = (self.n_proj,) + self.det_shape

    def _check_vol(self, x):
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x))
        if tuple(x.shape) != self.vol_shape:
            raise InputError(f"volume shape {tuple(x.shape)} != projector volume {self.vol_shape}")
        return x.to(device=self.device, dtype=self.dtype)

    def _check_proj(self, y):
        if not isinstance(y, torch.Tensor):
            y = torch.as_tensor(np.asarray(y))
        if tuple(y.shape) != self.out_shape:
            raise InputError(f"projection stack shape {tuple(y.shape)} != {self.out_shape}")
        return y.to(device=self.device, dtype=self.dtype)


# --------------------------------------------------------------------------- real space
class RealSpaceProjector(_Geometry):
    """Voxel-driven bilinear projector pair (exact adjoints of each other).

    Parameters
    ----------
    vol_shape : (Nx, Ny, Nz)
    angles : tilt angles or (n, 3) ZYX Euler triples in degrees (see :func:`.geometry.as_euler`)
    det_shape : (Dx, Dy), optional
        Detector size; default ``(Nx, Ny)``.  A smaller detector than the volume is the
        extended-object mode: voxels that project outside get nothing from that projection.
    vol_centre, det_centre : float or sequence, optional
        Rotation centre in index units (default ``N // 2`` per axis).
    device, dtype : torch device and float dtype (float32 default)
    max_cache_bytes : int
        The sampling grid of all angles is cached when it fits in this many bytes, otherwise it
        is recomputed per chunk of angles on every call.
    kernels : bool or None
        Use the compiled single-axis kernels of :mod:`phasekit.tomo.kernels` (same operator, to
        float rounding; much faster on the CPU).  None (default): whenever they apply (CPU
        tensors, numba importable, ``PHASEKIT_NO_NUMBA`` unset, every rotation about ``y`` only,
        integer row offset between the volume and detector centres).  False: always the
        ``grid_sample`` reference path (also used for general Euler geometries and on CUDA).

    Examples
    --------
    >>> import torch
    >>> op = RealSpaceProjector((16, 4, 16), [-30.0, 0.0, 30.0])
    >>> tuple(op.forward(torch.ones(16, 4, 16)).shape)
    (3, 16, 4)
    """

    def __init__(self, vol_shape, angles, det_shape=None, *, vol_centre=None, det_centre=None,
                 device=None, dtype=None, max_cache_bytes: int = 256 * 2**20,
                 chunk_points: int = 2**23, center_offset: float = 0.0,
                 kernels: bool | None = None):
        self._setup(vol_shape, angles, det_shape, device, dtype)
        self.center_offset = _offset(center_offset)
        vc = [n // 2 for n in self.vol_shape] if vol_centre is None else \
            list(np.broadcast_to(np.asarray(vol_centre, float), (3,)))
        dc = [n // 2 for n in self.det_shape] if det_centre is None else \
            list(np.broadcast_to(np.asarray(det_centre, float), (2,)))
        # a rotation axis off the detector centre moves where every voxel is sampled (the
        # sampling coordinate, not the data): exact pair kept
        dc[0] = float(dc[0]) + self.center_offset
        self.vol_centre, self.det_centre = vc, dc
        self._axes = [(torch.arange(n, dtype=torch.float64, device=self.device) - c).to(self.dtype)
                      for n, c in zip(self.vol_shape, vc)]
        nvox = int(np.prod(self.vol_shape))
        self._chunk = max(1, int(chunk_points) // nvox)
        self._cache = None
        self._coef = None
        if kernels is None or kernels:
            from . import kernels as _kern

            if _kern.HAVE_NUMBA and self.device.type == "cpu":
                self._coef = _kern.single_axis_coefficients(self.R.cpu().numpy(), vc, dc)
        esize = torch.finfo(self.dtype).bits // 8
        if self._coef is None and self.n_proj * nvox * 2 * esize <= max_cache_bytes:
            self._cache = [self._grid(i, min(i + self._chunk, self.n_proj))
                           for i in range(0, self.n_proj, self._chunk)]

    def _grid(self, i0, i1):
        """grid_sample grid (c, Nx, Ny*Nz, 2) for angles i0:i1, normalised, align_corners."""
        # detector coordinate j of voxel (u, v, w): R[0, j] u + R[1, j] v + R[2, j] w (Eqn 3.4),
        # built separably by broadcasting, already normalised for grid_sample (align_corners)
        u, v, w = self._axes
        Nx, Ny, Nz = self.vol_shape
        c = i1 - i0
        g = torch.empty((c, Nx, Ny, Nz, 2), dtype=self.dtype, device=self.device)
        for j, k in ((0, 1), (1, 0)):  # grid_sample wants (W, H) = (y, x) order
            D = self.det_shape[j]
            s = 2.0 / (D - 1)
            A = (self.R[i0:i1, :, j] * s).to(self.dtype)
            off = self.det_centre[j] * s - 1.0
            uv = A[:, 0, None, None] * u[:, None] + A[:, 1, None, None] * v[None, :]
            wz = A[:, 2, None] * w[None, :] + off
            torch.add(uv[..., None], wz[:, None, None, :], out=g[..., k])
        return g.reshape(c, Nx, Ny * Nz, 2)

    def _grids(self):
        if self._cache is not None:
            for j, i0 in enumerate(range(0, self.n_proj, self._chunk)):
                yield i0, min(i0 + self._chunk, self.n_proj), self._cache[j]
        else:
            for i0 in range(0, self.n_proj, self._chunk):
                i1 = min(i0 + self._chunk, self.n_proj)
                yield i0, i1, self._grid(i0, i1)

    @property
    def uses_kernels(self) -> bool:
        """True when :meth:`forward` / :meth:`backproject` run the compiled single-axis kernels."""
        return self._coef is not None

    def backproject(self, y: torch.Tensor) -> torch.Tensor:
        """Bilinear back projection ``sum_i P_i^T y_i`` (Eqn 3.3-3.4), 0 outside the detector."""
        y = self._check_proj(y)
        if self._coef is not None and not y.requires_grad:
            from . import kernels as _kern

            return torch.from_numpy(_kern.backproject(y.contiguous().numpy(), self._coef,
                                                      self.vol_shape))
        out = torch.zeros(self.vol_shape[0], self.vol_shape[1] * self.vol_shape[2],
                          dtype=self.dtype, device=self.device)
        for i0, i1, g in self._grids():
            s = F.grid_sample(y[i0:i1, None], g, mode="bilinear", padding_mode="zeros",
                              align_corners=True)
            out += s[:, 0].sum(0)
        return out.reshape(self.vol_shape)

    adjoint = backproject

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Voxel-driven splatting projection: the exact transpose of :meth:`backproject`."""
        x = self._check_vol(x)
        if self._coef is not None and not x.requires_grad:
            from . import kernels as _kern

            return torch.from_numpy(_kern.project(x.contiguous().numpy(), self._coef,
                                                  self.det_shape))
        xs = x.reshape(1, 1, self.vol_shape[0], -1)
        out = torch.empty(self.out_shape, dtype=self.dtype, device=self.device)
        with torch.enable_grad():
            for i0, i1, g in self._grids():
                r = torch.zeros((i1 - i0, 1) + self.det_shape, dtype=self.dtype,
                                device=self.device, requires_grad=True)
                s = F.grid_sample(r, g, mode="bilinear", padding_mode="zeros", align_corners=True)
                (gr,) = torch.autograd.grad(s, r, grad_outputs=xs.expand_as(s))
                out[i0:i1] = gr[:, 0]
        return out


# --------------------------------------------------------------------------- Fourier slice
class FourierSliceProjector(_Geometry):
    """Fourier-slice (FST) forward projector of RESIRE, with its exact adjoint.

    Parameters
    ----------
    vol_shape, angles, det_shape, device, dtype : as :class:`RealSpaceProjector`
    oversampling : float or 3 floats
        Per-axis linear zero-padding ratio ``s`` (thesis: "in range [2, 4]"; RESIRE code default
        3; read here as a per-axis linear ratio).  Default 2.
    pad_tilt_axis : bool
        For a single y-axis tilt series the ``y`` direction is not interpolated (``k_y = f_y``
        exactly, every slice point lies on a ``k_y`` grid plane), so zero-padding ``y`` and
        cropping it again after the inverse FFT is the identity: by default (False) ``y`` is
        not padded there, which halves the 3-D FFT and the slice work and changes the
        projections only at float rounding.  True pads every axis (the literal Algorithm 3).
    kernels : bool
        Sample the slices with the compiled CPU kernel (:mod:`phasekit.tomo.kernels_fst`) where
        it applies (CPU, numba, no autograd); False keeps ``grid_sample`` (the reference twin).

    Notes
    -----
    The slice of the padded ``M_x x M_y x M_z`` spectrum is sampled on the ``M_x x M_y`` 2-D
    frequency grid ``f = ((i - M_x//2)/M_x, (j - M_y//2)/M_y)`` (cycles per voxel) at
    ``R [f_x, f_y, 0]^T``, i.e. 3-D index ``M_a k_a + M_a // 2`` per axis, which handles
    non-cubic volumes.  The DFT is periodic, so the spectrum is extended by its index-0 plane on
    every axis before interpolating: slice points between the last index and the (wrapped)
    Nyquist plane are interpolated rather than set to 0.  The spectrum is the real FFT of the
    real volume (:meth:`spectrum`), its ``k_z < 0`` half the conjugate of the reflected
    ``k_z > 0`` half (:meth:`_extended`; docs/tomography.md).  The thesis says "bi-linear"
    interpolation; a slice through a 3-D array needs trilinear interpolation, used here on the real and imaginary parts (A6).  Unnormalised
    forward FFT and ``1/(M_x M_y)``-normalised inverse 2-D FFT make ``R = I`` give the plain sum
    along ``z``.
    """

    def __init__(self, vol_shape, angles, det_shape=None, *, oversampling=2.0, device=None,
                 dtype=None, center_offset: float = 0.0, pad_tilt_axis: bool = False,
                 kernels: bool = True):
        self._setup(vol_shape, angles, det_shape, device, dtype)
        self.oversampling = oversampling
        self.kernels = bool(kernels)
        self._grid_np = None
        self.center_offset = _offset(center_offset)
        self.pad_shape = padded_shape(self.vol_shape, oversampling)
        Rn = self.R.cpu().numpy()
        self.single_axis = bool(np.abs(Rn[:, 1, 1] - 1.0).max() < 1e-12
                                and np.abs(Rn[:, 1, [0, 2]]).max() < 1e-12
                                and np.abs(Rn[:, [0, 2], 1]).max() < 1e-12)
        if self.single_axis and not pad_tilt_axis and self.det_shape[1] <= self.vol_shape[1]:
            self.pad_shape = (self.pad_shape[0], self.vol_shape[1], self.pad_shape[2])
        Mx, My, Mz = self.pad_shape
        if self.det_shape[0] > Mx or self.det_shape[1] > My:
            raise InputError(f"detector {self.det_shape} is larger than the padded volume "
                             f"{self.pad_shape[:2]}; raise the oversampling")
        fx = (torch.arange(Mx, dtype=torch.float64, device=self.device) - Mx // 2) / Mx
        fy = (torch.arange(My, dtype=torch.float64, device=self.device) - My // 2) / My
        FX, FY = torch.meshgrid(fx, fy, indexing="ij")
        f2 = torch.stack([FX, FY], -1).reshape(-1, 2)
        k = torch.einsum("pj,nij->npi", f2, self.R[:, :, :2])  # (n, Mx*My, 3), k = R [fx, fy, 0]
        M = torch.tensor(self.pad_shape, dtype=torch.float64, device=self.device)
        idx = k * M + torch.div(M, 2, rounding_mode="floor")
        # the spectrum is extended by one periodic plane per axis (index M == index 0, the
        # Nyquist plane of the DFT), so the grid has M + 1 points: align_corners normalisation
        g = idx * (2.0 / M) - 1.0  # order (x, y, z)
        # grid_sample 5-D: input (1, C, D=Mx, H=My, W=Mz); grid last dim = (W, H, D) = (z, y, x)
        self._grid = g.flip(-1).reshape(1, self.n_proj, Mx, My, 3).to(self.dtype)
        self._lo = [m // 2 - n // 2 for m, n in zip(self.pad_shape, self.vol_shape)]
        self._crop = [m // 2 - d // 2 for m, d in zip(self.pad_shape[:2], self.det_shape)]
        self._index_maps()
        self._ramp = None
        if self.center_offset:
            # rotation axis at detector x = Dx // 2 + offset: shift every projection by the
            # offset along x with the phase ramp exp(-2 pi i fx offset) of the shift theorem
            # (band-limited, no resampling of the data; the adjoint follows by autograd)
            ph = -2.0 * math.pi * fx * self.center_offset
            self._ramp = torch.polar(torch.ones_like(ph), ph).to(
                torch.complex64 if self.dtype == torch.float32 else torch.complex128)[:, None]

    def _index_maps(self) -> None:
        """Index maps of :meth:`spectrum` and :meth:`_extended` (no copies, slices only).

        ``ifftshift`` moves padded index ``i`` to ``(i - M // 2) mod M``, so volume index ``v``
        (at ``i = lo + v``) lands at ``(v - N // 2) mod M``: per axis two blocks.  ``fftshift``
        moves work index ``w`` to ``(w + M // 2) mod M``: two blocks on x and y.  The reflection
        ``k -> -k`` of the centred index ``c`` is work index ``(M // 2 - c) mod M``."""
        per_axis = []
        for n, m in zip(self.vol_shape, self.pad_shape):
            h = n // 2
            b = [(slice(0, n - h), slice(h, n))]
            if h:
                b.append((slice(m - h, m), slice(0, h)))
            per_axis.append(b)
        self._wrap_blocks = [(tuple(d for d, _ in c), tuple(s for _, s in c))
                             for c in itertools.product(*per_axis)]
        self._roll_blocks = []
        for m in self.pad_shape[:2]:
            h = m // 2  # centred c <- work (c - h) mod m: c in [h, m) from [0, m - h), [0, h) from [m - h, m)
            self._roll_blocks.append([(slice(h, m), slice(0, m - h))]
                                     + ([(slice(0, h), slice(m - h, m))] if h else []))
        Mx, My, Mz = self.pad_shape
        dev = self.device
        cx, cy = torch.arange(Mx, device=dev), torch.arange(My, device=dev)
        # the filled half: k_z = -1 .. -(Mz - 1) // 2 (torch fills work z indices above Mz // 2;
        # for even Mz the Nyquist plane k_z = -Mz / 2 is the computed one), centred z index
        # Mz // 2 + k_z, read at -k_z
        zf = torch.arange(Mz // 2 - (Mz - 1) // 2, Mz // 2, device=dev)
        self._reflect = ((Mx // 2 - cx) % Mx, (My // 2 - cy) % My, Mz // 2 - zf)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """Half spectrum (``rfftn``, unnormalised) of the zero-padded volume with its centre moved
        to index 0, ``(Mx, My, Mz // 2 + 1)`` complex: the non-negative ``k_z`` half of
        ``fftn(ifftshift(pad(x)))`` up to rounding; the rest follows by Hermitian symmetry.

        The volume is written straight into its wrapped place (no shifted copy), and the real
        transform does half the complex one's work (``torch.fft.fftn`` of a real tensor
        transforms it as a complex one: 146 ms against 53 ms at ``256 x 128 x 256``, one AMD
        EPYC core)."""
        xp = torch.zeros(self.pad_shape, dtype=x.dtype, device=x.device)
        for dst, src in self._wrap_blocks:
            xp[dst] = x[src]
        return torch.fft.rfftn(xp)

    def _extended(self, Fh: torch.Tensor) -> torch.Tensor:
        """The centred full spectrum with its periodic extension, ``(Mx + 1, My + 1, Mz + 1)``:
        ``fftshift`` of the full ``fftn`` with each axis' index-0 plane repeated at index ``M``,
        built from the half spectrum in one pass per half (the ``k_z >= 0`` half by block
        copies, the ``k_z < 0`` half as the conjugate of the reflected half).  Bit for bit the
        array the shifts and concatenations of the full spectrum gave: the same values, moved."""
        Mx, My, Mz = self.pad_shape
        h = Mz // 2
        Fe = torch.empty((Mx + 1, My + 1, Mz + 1), dtype=Fh.dtype, device=Fh.device)
        mh = Fh.shape[2]
        for dx, sx in self._roll_blocks[0]:
            for dy, sy in self._roll_blocks[1]:  # k_z >= 0: centred z index h + k_z
                Fe[dx, dy, h:h + mh] = Fh[sx, sy]
        nx, ny, nz = self._reflect
        z0 = Mz // 2 - nz.shape[0]  # first centred z index of the filled half (1 for even Mz)
        if nz.shape[0]:  # k_z < 0: conj of the value at -k (index -k mod M on x and y, -k_z on z)
            neg = Fh.index_select(2, nz).index_select(0, nx).index_select(1, ny)
            Fe[:Mx, :My, z0:h] = neg.conj()
        if Mz % 2:  # odd Mz: centred index Mz (k_z = (Mz + 1) / 2) is the periodic copy of 0
            Fe[:Mx, :My, Mz] = Fe[:Mx, :My, 0]
        else:  # even Mz: centred index 0 (k_z = -Mz / 2) is the computed Nyquist plane at Mz
            Fe[:Mx, :My, 0] = Fe[:Mx, :My, Mz]
        Fe[Mx] = Fe[0]
        Fe[:, My] = Fe[:, 0]
        return Fe

    def _slices_compiled(self, Fk: torch.Tensor) -> bool:
        return (_kfst.HAVE_NUMBA and self.kernels and Fk.device.type == "cpu"
                and not (Fk.requires_grad and torch.is_grad_enabled()))

    def project_spectrum(self, Fk: torch.Tensor) -> torch.Tensor:
        """Projections from a precomputed :meth:`spectrum` (slice, inverse 2-D FFT, crop).

        On the CPU without autograd the slices are sampled by the compiled kernel straight from
        the half spectrum (:mod:`phasekit.tomo.kernels_fst`); otherwise (CUDA, the exact
        adjoint through autograd, ``kernels=False``) ``grid_sample`` samples the extended
        spectrum, the same samples."""
        if self._slices_compiled(Fk):
            if self._grid_np is None:
                self._grid_np = np.ascontiguousarray(self._grid[0].cpu().numpy())
            sl = torch.from_numpy(_kfst.sample_slices(Fk.detach().resolve_conj().numpy(),
                                                      self._grid_np, self.pad_shape))
        else:
            Fe = self._extended(Fk)  # periodic extension: (Mx+1, My+1, Mz+1)
            inp = torch.view_as_real(Fe).permute(3, 0, 1, 2).unsqueeze(0)
            s = F.grid_sample(inp, self._grid, mode="bilinear", padding_mode="zeros",
                              align_corners=True)[0]  # (2, n, Mx, My)
            sl = torch.complex(s[0], s[1])
        if self._ramp is not None:
            sl = sl * self._ramp
        img = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(sl, dim=(-2, -1))),
                                 dim=(-2, -1)).real
        c = self._crop
        return img[:, c[0]:c[0] + self.det_shape[0], c[1]:c[1] + self.det_shape[1]].contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, Dx, Dy)`` projections of the volume ``x``."""
        x = self._check_vol(x)
        return self.project_spectrum(self.spectrum(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Exact adjoint of :meth:`forward` (the transposed chain, via autograd)."""
        y = self._check_proj(y)
        with torch.enable_grad():
            x = torch.zeros(self.vol_shape, dtype=self.dtype, device=self.device,
                            requires_grad=True)
            p = self.project_spectrum(self.spectrum(x))
            (g,) = torch.autograd.grad(p, x, grad_outputs=y)
        return g


class HybridProjector(_Geometry):
    """RESIRE's pair: :class:`FourierSliceProjector` forward, bilinear back projection.

    ``adjoint`` is the bilinear back projector, *not* the adjoint of ``forward`` (see module doc).
    """

    def __init__(self, vol_shape, angles, det_shape=None, *, oversampling=2.0, device=None,
                 dtype=None, center_offset: float = 0.0, **rs_kwargs):
        self.fst = FourierSliceProjector(vol_shape, angles, det_shape, oversampling=oversampling,
                                         device=device, dtype=dtype, center_offset=center_offset)
        self.bp = RealSpaceProjector(vol_shape, angles, det_shape, device=device, dtype=dtype,
                                     center_offset=center_offset, **rs_kwargs)
        self._setup(vol_shape, angles, det_shape, device, dtype)

    def forward(self, x):
        return self.fst.forward(x)

    def adjoint(self, y):
        return self.bp.backproject(y)


def make_projector(kind: str, vol_shape, angles, det_shape=None, *, oversampling=2.0,
                   device=None, dtype=None, center_offset: float = 0.0):
    """Build a projector by name: ``"hybrid"`` (RESIRE default), ``"fst"`` (Fourier slice with
    its exact adjoint) or ``"realspace"`` (splat / bilinear exact pair).  ``center_offset``:
    the rotation axis's detector ``x`` minus ``Dx // 2``, in pixels."""
    k = str(kind).lower().replace("_", "-")
    kw = dict(device=device, dtype=dtype, center_offset=center_offset)
    if k in ("hybrid", "resire"):
        return HybridProjector(vol_shape, angles, det_shape, oversampling=oversampling, **kw)
    if k in ("fst", "fourier", "fourier-slice"):
        return FourierSliceProjector(vol_shape, angles, det_shape, oversampling=oversampling,
                                     **kw)
    if k in ("realspace", "real-space", "real", "splat"):
        return RealSpaceProjector(vol_shape, angles, det_shape, **kw)
    raise ConfigError(f"unknown projector {kind!r}; choose from: hybrid, fst, realspace")
