"""The Fourier-slice projector's spectrum: the real FFT and the Hermitian extension give the
complex-FFT formulation's centred, periodically extended spectrum (and projections) to rounding,
for even and odd padded sizes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from phasekit.tomo.geometry import random_euler, single_axis
from phasekit.tomo.projectors import FourierSliceProjector


def _extended_complex(P, x):
    """The literal chain: pad, ifftshift, complex fftn, fftshift, one periodic plane per axis."""
    Nx, Ny, Nz = P.vol_shape
    lo = P._lo
    xp = torch.zeros(P.pad_shape, dtype=x.dtype)
    xp[lo[0]:lo[0] + Nx, lo[1]:lo[1] + Ny, lo[2]:lo[2] + Nz] = x
    Fk = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(xp)))
    Fk = torch.cat([Fk, Fk[:1]], 0)
    Fk = torch.cat([Fk, Fk[:, :1]], 1)
    return torch.cat([Fk, Fk[:, :, :1]], 2)


def _project(P, Fe):
    inp = torch.view_as_real(Fe).permute(3, 0, 1, 2).unsqueeze(0)
    s = F.grid_sample(inp, P._grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    sl = torch.complex(s[0], s[1])
    if P._ramp is not None:
        sl = sl * P._ramp
    img = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(sl, dim=(-2, -1))), dim=(-2, -1)).real
    c = P._crop
    return img[:, c[0]:c[0] + P.det_shape[0], c[1]:c[1] + P.det_shape[1]]


@pytest.mark.parametrize("shape,oversampling,geom", [
    ((8, 8, 8), 2.0, "single"),      # even padded sizes, y not padded
    ((9, 7, 11), 2.0, "single"),     # odd y (tilt axis, unpadded)
    ((9, 10, 11), 3.0, "euler"),     # odd Mx and Mz
    ((8, 7, 9), 1.0, "euler"),       # no padding, odd My and Mz
    ((12, 9, 10), 1.5, "single"),    # Mz = 15
    ((6, 6, 5), 2.0, "euler"),       # Mz = 10 from odd Nz
])
def test_real_fft_spectrum_matches_the_complex_chain(shape, oversampling, geom):
    rng = np.random.default_rng(sum(shape))
    ang = single_axis(np.arange(-60, 61, 30)) if geom == "single" else random_euler(4, rng)
    P = FourierSliceProjector(shape, ang, oversampling=oversampling, dtype=torch.float64,
                              center_offset=0.5 if geom == "single" else 0.0)
    x = torch.from_numpy(rng.random(shape))
    Fe = P._extended(P.spectrum(x))
    ref = _extended_complex(P, x)
    assert Fe.shape == ref.shape
    scale = float(ref.abs().max())
    assert float((Fe - ref).abs().max()) <= 1e-12 * scale
    p = P.forward(x)
    q = _project(P, ref)
    assert float((p - q).abs().max()) <= 1e-12 * float(q.abs().max())
    # the k_z < 0 half is the conjugate of the reflected k_z > 0 half, bit for bit (centred
    # index c <-> 2 (M // 2) - c, taken mod M on x and y)
    Mx, My, Mz = P.pad_shape
    z = torch.arange(Mz // 2 - (Mz - 1) // 2, Mz // 2)
    rx = (2 * (Mx // 2) - torch.arange(Mx)) % Mx
    ry = (2 * (My // 2) - torch.arange(My)) % My
    neg = Fe[:Mx, :My][:, :, z]
    pos = Fe[rx][:, ry][:, :, 2 * (Mz // 2) - z]
    assert z.numel() > 0 and torch.equal(neg, pos.conj())

def test_float32_projections_agree_with_the_complex_chain_to_rounding():
    P = FourierSliceProjector((24, 24, 24), single_axis(np.arange(-70, 71, 10)))
    x = torch.rand(24, 24, 24, generator=torch.Generator().manual_seed(3))
    p = P.forward(x)
    q = _project(P, _extended_complex(P, x))
    assert float((p - q).abs().max()) <= 2e-6 * float(q.abs().max())


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("shape,oversampling,geom", [
    ((16, 16, 16), 2.0, "single"), ((15, 14, 13), 2.0, "euler"), ((9, 10, 11), 3.0, "euler"),
    ((8, 7, 9), 1.0, "euler"), ((12, 9, 10), 1.5, "single")])
def test_compiled_slices_match_grid_sample(shape, oversampling, geom, dtype, tol):
    """The compiled sampling from the half spectrum against grid_sample on the extended one
    (equal bit for bit on the project's CPU; a tolerance keeps the test CPU-independent)."""
    from phasekit.tomo import kernels_fst

    if not kernels_fst.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(len(shape) + sum(shape))
    ang = single_axis(np.arange(-75, 76, 15)) if geom == "single" else random_euler(6, rng)
    kw = {"oversampling": oversampling, "dtype": dtype}
    P = FourierSliceProjector(shape, ang, **kw)
    Q = FourierSliceProjector(shape, ang, kernels=False, **kw)
    x = torch.from_numpy(rng.random(shape)).to(dtype)
    Fh = P.spectrum(x)
    assert P._slices_compiled(Fh) and not Q._slices_compiled(Fh)
    p, q = P.forward(x), Q.forward(x)
    assert float((p - q).abs().max()) <= tol * float(q.abs().max())
    # the exact adjoint (autograd) runs on the grid_sample path and still passes the dot test
    y = torch.from_numpy(rng.standard_normal(p.shape)).to(dtype)
    lhs = float((P.forward(x) * y).sum())
    rhs = float((x * P.adjoint(y)).sum())
    assert abs(lhs - rhs) <= 50 * tol * (float(p.norm()) * float(y.norm()))


def test_parallel_build_equals_serial_build():
    """Each projection's slice is one task of the parallel build: the same bits as the serial one."""
    from phasekit.tomo import kernels_fst

    if not kernels_fst.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(7)
    P = FourierSliceProjector((10, 12, 14), random_euler(5, rng))
    Fh = P.spectrum(torch.from_numpy(rng.random((10, 12, 14), dtype=np.float32))).numpy()
    grid = np.ascontiguousarray(P._grid[0].numpy())
    Mx, My, Mz = P.pad_shape
    a = np.empty(grid.shape[:3], np.complex64)
    b = np.empty(grid.shape[:3], np.complex64)
    kernels_fst._SERIAL(Fh, grid, a, Mx, My, Mz)
    kernels_fst._PARALLEL(Fh, grid, b, Mx, My, Mz)
    assert np.array_equal(a, b)
    assert np.array_equal(a, kernels_fst.sample_slices(Fh, grid, P.pad_shape))
