"""The projection kernels that also take the R-factor of their input (ER's metrics and its next
step in one pass, ``kernels.fourier_project_rfactor`` / ``fourier_project_half_rfactor``): the
same values to the bit as the R-factor then the projection, for both kernel builds (serial and
multi-threaded), both precisions, sizes that are not a multiple of the kernels' block, and the
pixels the fast pass leaves to the exact rule (zero, tiny, huge)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phasekit.cdi import CDIProblem
from phasekit.cdi import kernels as K

pytestmark = pytest.mark.skipif(not K.HAVE_NUMBA, reason="numba not available")


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    rd = torch.float32 if dtype == torch.complex64 else torch.float64
    z = torch.from_numpy(rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).to(dtype)
    z.view(-1)[:5] = torch.tensor([0, 1e-30 + 1e-30j, 3e37 + 3e37j, 0, 2.5], dtype=dtype)
    amp = torch.from_numpy(np.abs(rng.standard_normal(shape))).to(rd)
    meas = torch.from_numpy(rng.random(shape) > 0.1)
    return z, amp, meas


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("shape", [(7, 9), (64, 64), (100, 123)])
def test_fused_projection_and_rfactor_equal_the_two_calls(shape, dtype, parallel, monkeypatch):
    if parallel:  # the multi-threaded build at every size
        monkeypatch.setattr(K, "PARALLEL_THRESHOLD", 1)
    z, amp, meas = _data(shape, dtype)
    za, zb = z.clone(), z.clone()
    num = K.rfactor_numerator(za, amp, meas)
    K.fourier_project(za, amp, meas)
    got = K.fourier_project_rfactor(zb, amp, meas)
    assert got == num
    assert torch.equal(torch.view_as_real(za), torch.view_as_real(zb))
    # and against the torch path (the reference twin)
    zc = z.clone()
    ref = K.fourier_project_rfactor(zc, amp, meas, fused=False)
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    if math.isinf(ref):  # float32: the huge pixel's |z|^2 overflows in both
        assert got == ref
    else:
        assert abs(ref - got) <= tol * abs(ref)
    assert torch.allclose(zc, zb, rtol=tol, atol=0)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(8, 8), (64, 64), (100, 123)])
def test_fused_half_projection_and_rfactor_equal_the_two_calls(shape, dtype, parallel, monkeypatch):
    if parallel:
        monkeypatch.setattr(K, "PARALLEL_THRESHOLD", 1)
    rng = np.random.default_rng(1)
    I = rng.random(shape) ** 2 * 1e4
    mask = rng.random(shape) > 0.05
    p = CDIProblem.from_arrays(I, np.ones(shape, bool), mask=mask, real=True,
                               precision="single" if dtype == torch.float32 else "double")
    x = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
    z = p.rfft_half(x)
    hs = p.half()
    za, zb = z.clone(), z.clone()
    num = K.rfactor_numerator_half(za, hs)
    K.fourier_project_half(za, hs)
    got = K.fourier_project_half_rfactor(zb, hs)
    assert got == num
    assert torch.equal(torch.view_as_real(za), torch.view_as_real(zb))
    zc = z.clone()
    ref = K.fourier_project_half_rfactor(zc, hs, fused=False)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert abs(ref - got) <= tol * abs(ref)
    assert torch.allclose(zc, zb, rtol=tol, atol=tol * float(zc.abs().max()))


def test_rfactor_project_is_rfactor_transform_then_projection():
    rng = np.random.default_rng(2)
    for real in (False, True):
        p = CDIProblem.from_arrays(rng.random((24, 24)) * 100, np.ones((24, 24), bool), real=real)
        x = p.as_iterate(p.random_start(np.random.default_rng(3)))  # a real tensor when real
        assert x.is_complex() is not real
        rf1, z1 = p.rfactor_transform(x)
        (K.fourier_project_half(z1, p.half()) if real else K.fourier_project(z1, p.amp, p.measured))
        rf2, z2 = p.rfactor_project(x)
        assert rf1 == rf2 and torch.equal(z1, z2)
