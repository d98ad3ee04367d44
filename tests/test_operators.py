import numpy as np
import pytest
import torch

from phasekit.operators import FarField, SupportMask, apply_constraints, dot_test, modulus_projection, proj_dual
from phasekit.cdi import kernels
from phasekit.operators.smoothing import laplacian_smooth, laplacian_smoothing_divisor


@pytest.mark.parametrize("work", [False, True])
@pytest.mark.parametrize("shape,dtype,tol", [((16, 16), torch.complex64, 1e-5), ((9, 12), torch.complex128, 1e-12),
                                             ((6, 7, 8), torch.complex128, 1e-12), ((3, 8, 8), torch.complex64, 1e-5)])
def test_farfield_adjoint(shape, dtype, tol, work):
    op = FarField(shape, ndim=2 if len(shape) == 3 and shape[0] == 3 else None, dtype=dtype, work=work)
    assert dot_test(op, rng=0) < tol
    assert dot_test(op.H, rng=1) < tol


def test_support_mask_adjoint_and_idempotent():
    s = torch.rand(10, 10) > 0.5
    op = SupportMask(s, dtype=torch.complex128)
    assert dot_test(op, rng=0) < 1e-12
    x = torch.randn(10, 10, dtype=torch.complex128)
    assert torch.equal(op(op(x)), op(x))


def _rand(shape, seed=0, dtype=torch.complex64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=dtype, generator=g)


def test_modulus_projection_idempotent_and_keeps_unmeasured():
    z = _rand((32, 32))
    amp = torch.rand(32, 32)
    meas = torch.rand(32, 32) > 0.2
    p = modulus_projection(z, amp, meas)
    assert torch.allclose(p.abs()[meas], amp[meas], atol=1e-5)
    assert torch.equal(p[~meas], z[~meas])
    assert torch.allclose(modulus_projection(p, amp, meas), p, atol=1e-5)
    # phase kept
    ph = torch.angle(p[meas]) - torch.angle(z[meas])
    assert torch.allclose(torch.cos(ph), torch.ones_like(ph), atol=1e-4)
    # arg(0) := 0 (phase factor 1)
    z0 = torch.zeros(2, 2, dtype=torch.complex64)
    assert torch.allclose(modulus_projection(z0, torch.ones(2, 2)), torch.ones(2, 2, dtype=torch.complex64))


@pytest.mark.parametrize("real,positive", [(False, False), (True, False), (True, True), (False, True)])
def test_constraint_projection_idempotent_and_dual_orthogonal(real, positive):
    x = _rand((16, 16), 3, torch.complex128)
    s = torch.rand(16, 16, generator=torch.Generator().manual_seed(1)) > 0.5
    p = apply_constraints(x, s, real=real, positive=positive)
    assert torch.allclose(apply_constraints(p, s, real=real, positive=positive), p)
    assert torch.all(p[~s] == 0)
    if real:
        assert torch.all(p.imag == 0)
    if positive:
        assert torch.all(p.real >= 0)
    # Moreau: x = P_C x + proj_{S*} x with Re<P_C x, proj_{S*} x> = 0 (C a cone)
    d = proj_dual(x, s, real=real, positive=positive)
    assert torch.allclose(p + d, x)
    assert abs(float(torch.vdot(p.reshape(-1), d.reshape(-1)).real)) < 1e-10


@pytest.fixture(params=["serial", "parallel"])
def kernel_flavour(request, monkeypatch):
    monkeypatch.setattr(kernels, "PARALLEL_THRESHOLD", 1 << 40 if request.param == "serial" else 1)
    return request.param


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_fused_fourier_projection_matches_reference(dtype, kernel_flavour):
    z = _rand((40, 40), 5, dtype)
    z[3, 4] = 0  # phase of 0 is 1
    amp = torch.rand(40, 40, dtype=torch.float32 if dtype == torch.complex64 else torch.float64)
    meas = torch.rand(40, 40) > 0.1
    meas[3, 4] = True
    z1, z2 = z.clone(), z.clone()
    kernels.fourier_project(z1, amp, meas, fused=True)
    kernels.fourier_project(z2, amp, meas, fused=False)
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    assert torch.allclose(z1, z2, atol=tol)
    assert torch.isclose(z1[3, 4], amp[3, 4].to(dtype))


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("mode", [kernels.ER, kernels.HIO, kernels.RAAR])
@pytest.mark.parametrize("real,positive", [(False, False), (True, True), (False, True)])
def test_fused_realspace_update_matches_reference(mode, real, positive, kernel_flavour):
    x = _rand((24, 24), 7)
    y = _rand((24, 24), 8)
    s = torch.rand(24, 24, generator=torch.Generator().manual_seed(2)) > 0.4
    x1, x2 = x.clone(), x.clone()
    kernels.realspace_update(x1, y, s, mode, 0.8, real=real, positive=positive, fused=True)
    kernels.realspace_update(x2, y, s, mode, 0.8, real=real, positive=positive, fused=False)
    assert torch.allclose(x1, x2, atol=1e-6)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_componentwise_update_follows_support_changes(dtype, kernel_flavour):
    """The complex rules without realness or positivity run on the float views with the support
    repeated per component (kernels.lane_mask, cached): equal to the reference in both
    precisions, and a support changed in place (as shrink-wrap does) is seen by the next call."""
    x = _rand((20, 20), 3, dtype)
    y = _rand((20, 20), 4, dtype)
    s = torch.rand(20, 20, generator=torch.Generator().manual_seed(1)) > 0.5
    tol = 1e-6 if dtype == torch.complex64 else 1e-14
    for mode in (kernels.ER, kernels.HIO, kernels.RAAR):
        for change in (False, True):
            if change:
                s.copy_(~s)  # a new support in the same tensor: a new lane mask
            x1, x2 = x.clone(), x.clone()
            kernels.realspace_update(x1, y, s, mode, 0.8, fused=True)
            kernels.realspace_update(x2, y, s, mode, 0.8, fused=False)
            assert torch.allclose(x1, x2, atol=tol, rtol=0), (mode, change)
            if mode == kernels.ER:
                assert not x1[~s].any()
            assert torch.equal(x1[s], y[s])
    m = kernels.lane_mask(s)
    assert m.shape == (800,) and np.array_equal(m[0::2], s.numpy().ravel()) and \
        np.array_equal(m[1::2], s.numpy().ravel())
    assert torch.equal(kernels.constrain(y, s), torch.where(s, y, torch.zeros_like(y)))


def test_laplacian_smoothing_divisor_mean_and_formula():
    m = 16
    d = laplacian_smoothing_divisor((m,), 2.0, dtype=torch.float64)
    k = np.arange(m)
    assert np.allclose(d.numpy(), 1 / (1 + 4 * 2.0 * np.sin(np.pi * k / m) ** 2))
    x = torch.randn(8, 8, dtype=torch.float64)
    y = laplacian_smooth(x, 1.5)
    assert torch.isclose(y.mean(), x.mean())
    assert y.dtype == x.dtype
    # (I - sigma L) y = x with the periodic 5-point Laplacian
    L = lambda u: (torch.roll(u, 1, 0) + torch.roll(u, -1, 0) + torch.roll(u, 1, 1) + torch.roll(u, -1, 1) - 4 * u)
    assert torch.allclose(y - 1.5 * L(y), x, atol=1e-10)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("real,positive", [(False, False), (True, True), (False, True)])
def test_fused_constrain_and_rfactor_match_reference(real, positive, kernel_flavour):
    x = _rand((30, 30), 11)
    s = torch.rand(30, 30, generator=torch.Generator().manual_seed(4)) > 0.5
    assert torch.allclose(kernels.constrain(x, s, real=real, positive=positive),
                          apply_constraints(x, s, real=real, positive=positive))
    amp = torch.rand(30, 30)
    ref = float(((x.abs() - amp).abs() * s).sum())
    assert np.isclose(kernels.rfactor_numerator(x, amp, s), ref, rtol=1e-5)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("real,positive", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_fused_gps_steps_match_reference(real, positive, eps, kernel_flavour):
    g = torch.Generator().manual_seed(5)
    shape = (24, 20)

    def c():
        return torch.randn(shape, generator=g, dtype=torch.complex64)

    z, fy, y, un, uo = c(), c(), c(), c(), c()
    z[0, 0] = 0.5 * fy[0, 0]  # w = 0 at a measured pixel (phase of 0 taken as 1)
    amp = torch.rand(shape, generator=g)
    meas = torch.rand(shape, generator=g) > 0.2
    meas[0, 0] = True
    supp = torch.rand(shape, generator=g) > 0.5
    for t in (1.0, 0.5):
        a = kernels.gps_primal(z, fy, amp, meas, t, eps, fused=True)
        b = kernels.gps_primal(z, fy, amp, meas, t, eps, fused=False)
        assert torch.allclose(a, b, atol=1e-5)
    h1, e1 = kernels.gps_dual(y, un, uo, 0.9, supp, real=real, positive=positive, fused=True)
    h2, e2 = kernels.gps_dual(y, un, uo, 0.9, supp, real=real, positive=positive, fused=False)
    assert torch.allclose(h1, h2, atol=1e-5) and torch.allclose(e1, e2, atol=1e-6)
    w = torch.rand(shape, generator=g)
    assert torch.allclose(kernels.scale_(y.clone(), w, fused=True), y * w, atol=1e-6)


def test_cached_views_and_scalars_follow_their_tensors():
    """The NumPy views the kernel wrappers cache for long-lived tensors (data, support) share the
    tensor's memory (in-place changes show), and a tensor whose storage was replaced, or a new
    tensor at a recycled ``id``, gets a fresh view; cached scalars are the NumPy scalars."""
    t = torch.zeros(4, 4)
    v = kernels._sv(t)
    assert kernels._sv(t) is v
    t.add_(2.0)
    assert v[0, 0] == 2.0 and kernels._sv(t)[0, 0] == 2.0
    t.set_(torch.full((4, 4), 5.0))  # same object, new storage
    w = kernels._sv(t)
    assert w is not v and w[0, 0] == 5.0
    t.resize_(2, 8)  # same storage, new shape: a new view
    x = kernels._sv(t)
    assert x.shape == (2, 8) and x[1, 7] == 5.0
    q = torch.arange(16.0).reshape(4, 4)
    assert kernels._sv(q)[0, 1] == 1.0
    q.t_()  # same storage and shape, transposed strides
    assert kernels._sv(q)[0, 1] == 4.0
    q.data = torch.zeros(2, 2)  # new storage without a version bump
    assert kernels._sv(q).shape == (2, 2)
    for _ in range(50):  # ids get reused: never a stale view
        u = torch.full((3,), float(_))
        assert kernels._sv(u)[0] == _
        del u
    s = kernels._scalar(np.float32, 0.9)
    assert type(s) is np.float32 and s == np.float32(0.9)
    assert kernels._scalar(np.float32, 0.9) is s
    assert type(kernels._scalar(np.float64, 0.9)) is np.float64
