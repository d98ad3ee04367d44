"""Saddle-point HIO: the Lagrangian, the FFT-free subspace gradient / Hessian, the trust-region SR1
solver and its safeguards, SO2D / SO4D on the shared driver, the registry and the CLI
(Marchesini, JOSA A 24, 3289 (2007), Secs. IV-V and App. B; docs/saddle.md)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from phasekit.cdi import CDIProblem, reconstruct
from phasekit.cdi import saddle, subspace
from phasekit.cdi.hio import HybridInputOutput, hio_direction
from phasekit.cdi.saddle import (SubspaceLagrangian, enforce_saddle_signs, lagrangian,
                                 sda_directions, solve_saddle, sr1_inverse_update,
                                 support_violation)
from phasekit.cdi.subspace import SO2D, SO4D
from phasekit.core.errors import ConfigError
from phasekit.metrics import relative_error
from phasekit.operators.projections import modulus_projection


def _box_problem(n=32, m=16, pad=1, seed=12345, **kw):
    """Smooth non-negative random pattern in a box support ``pad`` px larger per side (the
    benchmark's test object, small); reconstructed as complex."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    o = gaussian_filter(rng.random((m + 8, m + 8)), 1.0)[4:-4, 4:-4]
    o = o - o.min() + 0.05 * np.ptp(o)
    truth = np.zeros((n, n))
    c = n // 2 - m // 2
    truth[c:c + m, c:c + m] = o
    sup = np.zeros((n, n), bool)
    sup[c - pad:c + m + pad, c - pad:c + m + pad] = True
    I = np.fft.fftshift(np.abs(np.fft.fftn(np.fft.ifftshift(truth), norm="ortho")) ** 2)
    return truth, sup, I


@pytest.fixture(autouse=True)
def one_thread():
    """Small problems: one torch thread (two spinning OpenMP threads on a loaded 2-core machine
    slow the Python-heavy SO2D loop by an order of magnitude)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def box():
    return _box_problem()


def _subspace(p, x, K=2, seed=0, fused=None):
    """Build the k-D subspace Lagrangian at ``x`` (extra random directions for K = 4)."""
    z = p.fft(x).contiguous()
    gs = p.fft(saddle._linear_constraint(p, x)).contiguous()
    gm = modulus_projection(z, p.amp, p.measured).contiguous()
    gms = p.fft(saddle._linear_constraint(p, p.ifft(gm))).contiguous()
    D = torch.zeros((K,) + z.shape, dtype=z.dtype)
    g = torch.Generator().manual_seed(seed)
    for k in range(2, K):
        r = torch.randn(z.shape, dtype=torch.complex128, generator=g).to(z.dtype)
        rs = saddle._linear_constraint(p, r)
        D[k] = p.fft(rs if k % 2 == 0 else r - rs)
    amp2 = float((p.amp.double() ** 2)[p.measured].sum())
    smask = [True, False] * (K // 2)
    return SubspaceLagrangian.build(z, gs, gm, gms, D, smask, p.amp, p.measured, amp2, fused=fused), z, D


def _problems(small_cdi_complex):
    obj, sup, I = small_cdi_complex
    mask = np.ones(I.shape, bool)
    c = I.shape[0] // 2
    mask[c - 2:c + 3, c - 2:c + 3] = False  # a beamstop: unmeasured pixels
    out = []
    for real in (False, True):
        for m in (None, mask):
            out.append(CDIProblem.from_arrays(I, sup, m, real=real, precision="double"))
    return out


# --------------------------------------------------------------------------- the Lagrangian
def test_lagrangian_identity_and_hio_directions(small_cdi_complex):
    """eq. (17) equals the identity ||rho_s||^2 - 2 sum sqrt(I)|rho~| + sum I; the SDA directions of
    eq. (18) are HIO's (hio_direction) and the gradient of L: dL/dtau at 0 = (-2||d_s||^2, 2||d_sbar||^2)."""
    obj, sup, I = small_cdi_complex
    p = CDIProblem.from_arrays(I, sup, precision="double")
    x = p.random_start(np.random.default_rng(3)) + 0.1 * torch.randn(
        p.shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
    z = p.fft(x)
    xs = torch.where(p.support, x, torch.zeros_like(x))
    ident = float(xs.abs().pow(2).sum() - 2 * (p.amp * z.abs()).sum() + (p.amp ** 2).sum())
    assert lagrangian(p, x) == pytest.approx(ident, rel=1e-12)
    d_s, d_sbar, y = sda_directions(p, x)
    e_s, e_sbar = hio_direction(x, y, p.support)
    assert torch.equal(d_s, e_s) and torch.equal(d_sbar, e_sbar)
    sub, _, D = _subspace(p, x)
    assert torch.allclose(D[0], p.fft(d_s), atol=1e-12) and torch.allclose(D[1], p.fft(d_sbar), atol=1e-12)
    g0 = sub.grad0()
    assert g0[0] == pytest.approx(-2 * float(d_s.abs().pow(2).sum()), rel=1e-10)
    assert g0[1] == pytest.approx(2 * float(d_sbar.abs().pow(2).sum()), rel=1e-10)
    assert np.allclose(sub.evaluate(np.zeros(2))[1], g0, rtol=1e-9)
    # L(tau) of the subspace = L(rho + alpha d_s + beta d_sbar) computed with FFTs
    for tau in ([0.0, 0.0], [1.0, 0.9], [1.7, 1.1], [-0.4, 2.0]):
        L = sub.evaluate(np.array(tau))[0]
        assert L == pytest.approx(lagrangian(p, x + tau[0] * d_s + tau[1] * d_sbar), rel=1e-10)


def test_hio_is_a_fixed_coefficient_saddle_step(small_cdi_complex):
    """HIO = the saddle step with tau = (1, beta) (eq. (33)): SO2D(solver='fixed') through the
    Fourier-space machinery gives HIO's iterates, and its estimate is HIO's P_s P_m x."""
    obj, sup, I = small_cdi_complex
    p = CDIProblem.from_arrays(I, sup, precision="double")
    x0 = p.random_start(np.random.default_rng(5))
    h = HybridInputOutput(p, 30, beta=0.8)
    s = SO2D(p, 30, beta=0.8, solver="fixed")
    h.initialize(x0)
    s.initialize(x0)
    for k in range(25):
        h.step(k)
        s.step(k)
        assert torch.allclose(s.iterate(), h.x, atol=1e-10)
        assert torch.allclose(s.estimate(), h.estimate(), atol=1e-10)
        assert s.info["alpha"] == 1.0 and s.info["beta"] == 0.8


# --------------------------------------------------------------------------- gradient / Hessian
@pytest.mark.parametrize("K", [2, 4])
def test_gradient_and_hessian_match_finite_differences(small_cdi_complex, K):
    """eq. (27)/(42) gradient and App. B Hessian against central differences of L(tau) (float64),
    with and without realness and unmeasured pixels, fused (numba) and plain-torch passes."""
    gen = torch.Generator().manual_seed(11)
    for p in _problems(small_cdi_complex):
        x = p.random_start(np.random.default_rng(1)) + 0.2 * torch.randn(p.shape, dtype=torch.complex128,
                                                                          generator=gen)
        for fused in ([False, True] if saddle.HAVE_NUMBA else [False]):
            sub, _, _ = _subspace(p, x, K=K, fused=fused)
            tau = np.array([0.8, 0.6, 0.3, -0.2][:K])
            L, g, H = sub.evaluate(tau, hess=True)
            h = 1e-5
            E = np.eye(K)
            gfd = np.array([(sub.evaluate(tau + h * e)[0] - sub.evaluate(tau - h * e)[0]) / (2 * h) for e in E])
            Hfd = np.array([(sub.evaluate(tau + h * e)[1] - sub.evaluate(tau - h * e)[1]) / (2 * h) for e in E])
            assert np.abs(g - gfd).max() < 1e-7 * np.abs(g).max()
            # (central differences of a function with |rho~| kinks: 1e-5 relative is their accuracy)
            assert np.abs(H - Hfd).max() < 1e-5 * np.abs(H).max()
            assert np.allclose(H, H.T)
            assert H[1, 1] <= 0  # eq. (30): L is concave in beta
            # against the real-space Lagrangian with FFTs
            xr = x + sum(float(tau[i]) * p.ifft(sub.D[i]) for i in range(K))
            assert L == pytest.approx(lagrangian(p, xr), rel=1e-9)


@pytest.mark.skipif(not saddle.HAVE_NUMBA, reason="numba not installed")
def test_fused_passes_match_torch_reference_single_precision(small_cdi_complex):
    obj, sup, I = small_cdi_complex
    mask = np.ones(I.shape, bool)
    mask[30:34, 30:34] = False
    p = CDIProblem.from_arrays(I, sup, mask)
    x = p.random_start(np.random.default_rng(2))
    for K in (2, 4):
        a, _, _ = _subspace(p, x, K=K, fused=True)
        b, _, _ = _subspace(p, x, K=K, fused=False)
        assert np.allclose(a.G, b.G, rtol=1e-4, atol=1e-5 * np.abs(b.G).max())
        assert np.allclose(a.a, b.a, rtol=1e-4, atol=1e-5 * np.abs(b.a).max())
        assert np.allclose(a.p, b.p, rtol=1e-4, atol=1e-5 * np.abs(b.p).max())
        tau = np.array([1.3, 0.7, 0.2, 0.1][:K])
        La, ga, Ha = a.evaluate(tau, hess=True)
        Lb, gb, Hb = b.evaluate(tau, hess=True)
        assert np.allclose(ga, gb, rtol=1e-4, atol=1e-4 * np.abs(gb).max())
        assert np.allclose(Ha, Hb, rtol=1e-4, atol=1e-4 * np.abs(Hb).max())


def test_generated_kernel_module_matches_generator():
    """``_saddle_unrolled.py`` is exactly the generator's output (a checked-in file, so numba can
    cache it and nothing is ``exec``-ed at import)."""
    from pathlib import Path

    from phasekit.cdi import _saddle_unrolled

    text = Path(_saddle_unrolled.__file__).read_text(encoding="utf-8")
    assert text == saddle.unrolled_module_text()
    assert "exec(" not in Path(saddle.__file__).read_text(encoding="utf-8")


@pytest.mark.skipif(not saddle.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("cls,params", [(SO2D, {}), (SO4D, {}), (SO4D, {"previous": "step"})])
def test_torch_path_gives_the_same_iterates(box, cls, params):
    """The plain-torch path (what CUDA runs) and the fused CPU kernels (current pair not stored,
    update fused with the next modulus projection and SO4D's shift): same iterates (float64)."""
    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup, precision="double")
    x0 = p.random_start(np.random.default_rng(7))
    a, b = cls(p, 20, **params), cls(p, 20, **params)
    a.initialize(x0)
    b.initialize(x0)
    b._fused = False  # force the reference path
    # (10 steps with previous="step": rounding differences of 1e-13 can grow to 1e-7 by step 14)
    for k in range(10 if params else 15):
        a.step(k)
        b.step(k)
        assert cls is SO2D or a.info["dims"] == b.info["dims"]
    assert b._views is None and a._gm_ok and not b._gm_ok
    assert torch.allclose(a.iterate(), b.iterate(), atol=1e-8)
    if cls is SO4D:  # the previous pair the fused update wrote
        assert torch.allclose(a.D[2:4], b.D[2:4], atol=1e-8)


@pytest.mark.skipif(not saddle.HAVE_NUMBA, reason="numba not installed")
def test_unstored_pair_kernels_match_stored_directions(small_cdi_complex):
    """SO2D / SO4D on the CPU form d~_s = gms - gs and d~_sbar = gms - gm on the fly: the same dot
    products, evaluations and Hessians as the kernels reading stored directions (single
    precision, unmeasured pixels); the fused update equals update + modulus projection."""
    obj, sup, I = small_cdi_complex
    mask = np.ones(I.shape, bool)
    mask[30:34, 30:34] = False
    p = CDIProblem.from_arrays(I, sup, mask)
    x = p.random_start(np.random.default_rng(5))
    amp2 = float((p.amp.double() ** 2)[p.measured].sum())
    for K in (2, 4):
        ref, z, D = _subspace(p, x, K=K, fused=True)
        gs = p.fft(saddle._linear_constraint(p, x)).contiguous()
        gm = modulus_projection(z, p.amp, p.measured).contiguous()
        gms = p.fft(saddle._linear_constraint(p, p.ifft(gm))).contiguous()
        D2 = D.clone()
        D2[:2] = 7.0  # the current pair is not read
        v = saddle.tensor_views(z, gs, gm, D2, p.amp, p.measured)
        tau0 = [1.1, 0.8, 0.3, -0.2][:K]
        if K == 2:
            sub = SubspaceLagrangian.build_pair(z, gs, gm, gms, p.amp, p.measured, amp2, v, tau0=tau0)
        else:
            sub = SubspaceLagrangian.build_quad(z, gs, gm, gms, D2, p.amp, p.measured, amp2, v, tau0=tau0)
        assert sub.D is (None if K == 2 else D2)
        for name in ("a", "p", "G"):
            want = getattr(ref, name)
            assert np.allclose(getattr(sub, name), want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
        assert sub.c0 == pytest.approx(ref.c0, rel=1e-6)
        for tau, hess in ((tau0, False), ([0.4, 1.3, -0.1, 0.5][:K], True)):
            La, ga, Ha = sub.evaluate(tau, hess=hess)
            Lb, gb, Hb = ref.evaluate(tau, hess=hess)
            assert La == pytest.approx(Lb, rel=1e-6)
            assert np.allclose(ga, gb, rtol=1e-5, atol=1e-6 * np.abs(gb).max())
            if hess:
                assert np.allclose(Ha, Hb, rtol=1e-5, atol=1e-6 * np.abs(Hb).max())
        assert sub.restrict(2).evaluate(tau0[:2])[1] == pytest.approx(ref.restrict(2).evaluate(tau0[:2])[1], rel=1e-5)
    # the fused update: z += t0 d0 + t1 d1, gs += t0 d0, then gm = P~_m z (and SO4D's previous pair)
    t = (0.9, 0.7)
    z1, gs1, gm1 = z.clone(), gs.clone(), gm.clone()
    d0, d1 = gms - gs, gms - gm
    saddle._APPLY2P(z1.numpy(), gs1.numpy(), gm1.numpy(), gms.numpy(), p.amp.numpy(), p.measured.numpy(), *t)
    assert torch.allclose(z1, z + t[0] * d0 + t[1] * d1, atol=1e-5)
    assert torch.allclose(gs1, gs + t[0] * d0, atol=1e-5)
    assert torch.allclose(gm1, modulus_projection(z1, p.amp, p.measured), atol=1e-5)
    for mode, want in ((0, (d0, d1)), (1, (0.5 * D[2] + t[0] * d0, -0.25 * D[3] + t[1] * d1)),
                       (2, (t[0] * d0, t[1] * d1))):
        z1, gs1, gm1, D4 = z.clone(), gs.clone(), gm.clone(), D.clone()
        tt = (t[0], t[1], 0.5, -0.25) if mode == 1 else (t[0], t[1], 0.0, 0.0)
        saddle._APPLY4N(z1.numpy(), gs1.numpy(), gm1.numpy(), gms.numpy(), D4[2].numpy(), D4[3].numpy(),
                        p.amp.numpy(), p.measured.numpy(), *tt, mode)
        assert torch.allclose(z1, z + tt[0] * d0 + tt[1] * d1 + tt[2] * D[2] + tt[3] * D[3], atol=1e-5)
        assert torch.allclose(gs1, gs + tt[0] * d0 + tt[2] * D[2], atol=1e-5)
        assert torch.allclose(gm1, modulus_projection(z1, p.amp, p.measured), atol=1e-5)
        assert torch.allclose(D4[2], want[0], atol=1e-5) and torch.allclose(D4[3], want[1], atol=1e-5)


# --------------------------------------------------------------------------- safeguards
def _quadratic(H, tau_star, counter=None):
    """A quadratic saddle L = 1/2 (t - t*)^T H (t - t*): grad = H (t - t*)."""
    H = np.asarray(H, float)
    ts = np.asarray(tau_star, float)

    def f(tau, hess=False):
        if counter is not None:
            counter.append((np.array(tau), hess))
        d = np.asarray(tau) - ts
        return 0.5 * d @ H @ d, H @ d, (H.copy() if hess else None)

    return f


def test_sign_conditions_are_enforced():
    """eq. (30): wrong-sign diagonal entries are flipped; a non-definite block has its coupling
    zeroed (4-D); a valid inverse Hessian is left alone."""
    B, n = enforce_saddle_signs(np.array([[-2.0, 0.3], [0.3, 1.0]]), [True, False])
    assert n == 2 and B[0, 0] == 2.0 and B[1, 1] == -1.0 and B[0, 1] == 0.3
    good = np.array([[1.0, 0.2], [0.2, -0.5]])
    B, n = enforce_saddle_signs(good, [True, False])
    assert n == 0 and np.array_equal(B, good)
    B4 = np.diag([1.0, -1.0, 2.0, -3.0])
    B4[0, 2] = B4[2, 0] = 1.5  # 1.5^2 > 1 * 2: alpha block not positive definite
    B4[1, 3] = B4[3, 1] = 1.0  # 1 < 3: beta block fine
    B, n = enforce_saddle_signs(B4, [True, False, True, False])
    assert n == 1 and B[0, 2] == 0.0 and B[1, 3] == 1.0
    assert np.all(np.linalg.eigvalsh(B[np.ix_([0, 2], [0, 2])]) > 0)
    # the solver output always satisfies them even when the model is fed a wrong-sign guess
    f = _quadratic([[4.0, 1.0], [1.0, -2.0]], [1.5, 0.7])
    sol = solve_saddle(f, f(np.zeros(2))[1], [1.0, 0.9], -np.eye(2), [True, False])
    assert sol.converged and sol.B[0, 0] > 0 and sol.B[1, 1] < 0 and sol.n_sign_fixes >= 1
    assert np.allclose(sol.tau, [1.5, 0.7], atol=0.02)


def test_sr1_secant_and_skip_rule():
    B = np.diag([0.5, -0.5])
    s, y = np.array([0.3, 0.1]), np.array([1.0, 0.4])
    B2, done = sr1_inverse_update(B, s, y)
    assert done and np.allclose(B2 @ y, s) and np.allclose(B2, B2.T)
    # (s - B y) orthogonal to y: the denominator vanishes -> skipped, B unchanged
    y = np.array([1.0, 0.0])
    s = B @ y + np.array([0.0, 1.0])
    B3, done = sr1_inverse_update(B, s, y)
    assert not done and np.array_equal(B3, B)


def test_trust_region_bounds_every_step():
    """A far saddle with a good model: every Newton step is clipped to the radius, which grows
    from r0 by x2 / x3 up to r_max (listing items 5-6)."""
    calls = []
    H = np.array([[2.0, 0.0], [0.0, -1.0]])
    f = _quadratic(H, [6.0, -4.0], calls)
    g0 = H @ -np.array([6.0, -4.0])
    sol = solve_saddle(f, g0, [1.0, 0.9], np.linalg.inv(H), [True, False],
                       r0=0.3, r_min=0.1, r_max=1.0, max_iter=50, tau_max=100)
    pts = np.array([c[0] for c in calls if not c[1]])
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert steps[0] == pytest.approx(0.3) and steps[1] == pytest.approx(0.9)
    assert steps.max() <= 1.0 + 1e-12
    assert sol.converged and np.allclose(sol.tau, [6.0, -4.0], atol=1e-2)


def test_poor_model_triggers_exact_hessian_line_search_and_shrink():
    """erquad > 1 (the inverse-Hessian guess is badly off): exact Hessian, line search and a
    smaller trust region (listing item 7); the solve still converges."""
    H = np.array([[1.0, 2.0], [2.0, -1.0]])
    f = _quadratic(H, [1.8, 1.2])
    # signs fine, but sym(B0 H) = -2 I: every secant pair has s^T B0 y < 0, i.e. erquad > 1
    B0 = np.array([[1.0, -1.5], [-1.5, -1.0]])
    calls = []
    f = _quadratic(H, [1.8, 1.2], calls)
    sol = solve_saddle(f, H @ -np.array([1.8, 1.2]), [1.0, 0.9], B0, [True, False], r0=1.0,
                       r_min=0.1, r_max=1.0)
    assert sol.n_exact_hessian >= 1 and sol.n_line_search >= 1
    assert calls[2][1]  # the third evaluation is the exact Hessian at the new point
    assert sol.converged and np.allclose(sol.tau, [1.8, 1.2], atol=1e-2)


def test_failed_inner_solve_falls_back_to_hio():
    """Divergence (non-finite gradient, ||tau|| > tau_max) or no usable point -> HIO's (1, beta)."""
    hio = np.array([1.0, 0.75])

    def nan_f(tau, hess=False):
        return np.nan, np.array([np.nan, np.nan]), None

    sol = solve_saddle(nan_f, np.array([-1.0, 1.0]), [1.0, 0.9], np.eye(2), [True, False], fallback_tau=hio)
    assert sol.fallback and np.array_equal(sol.tau, hio)
    f = _quadratic([[1.0, 0.0], [0.0, -1.0]], [50.0, 50.0])
    sol = solve_saddle(f, f(np.zeros(2))[1], [1.0, 0.9], np.eye(2) * [1, -1], [True, False],
                       fallback_tau=hio, tau_max=10.0, max_iter=100)
    assert sol.fallback and np.array_equal(sol.tau, hio) and "diverged" in sol.events
    # not converged in max_iter and never below fallback_ratio -> HIO
    f = _quadratic([[1.0, 0.0], [0.0, -1.0]], [3.0, 3.0])
    sol = solve_saddle(f, f(np.zeros(2))[1], [1.0, 0.9], np.eye(2) * [1, -1], [True, False],
                       fallback_tau=hio, max_iter=1, r0=0.1, r_min=0.1, r_max=0.1, fallback_ratio=0.01)
    assert sol.fallback and np.array_equal(sol.tau, hio)
    # ... but a usable best point (ratio < fallback_ratio) is kept
    sol = solve_saddle(f, f(np.zeros(2))[1], [1.0, 0.9], np.eye(2) * [1, -1], [True, False],
                       fallback_tau=hio, max_iter=1, r0=0.1, r_min=0.1, r_max=0.1, fallback_ratio=0.9)
    assert not sol.fallback and not sol.converged and not np.array_equal(sol.tau, hio)


def test_stalled_inner_solve_stops_early():
    """No progress for `stall` iterations (the gradient never shrinks): stop, then fall back."""
    calls = []

    def flat(tau, hess=False):
        calls.append(1)
        return 0.0, np.array([1.0, 1.0]), (np.eye(2) * [1, -1] if hess else None)

    sol = solve_saddle(flat, np.array([1.0, 1.0]), [1.0, 0.9], np.eye(2) * [1, -1], [True, False],
                       fallback_tau=np.array([1.0, 0.9]), stall=4, max_iter=50, fallback_ratio=0.5)
    assert "stalled" in sol.events and sol.fallback and sol.n_iter == 4
    assert len(calls) < 20


def test_so2d_with_failing_inner_solve_is_hio(box):
    """In the algorithm: an inner solve that can never succeed makes every SO2D step HIO's."""
    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup, precision="double")
    x0 = p.random_start(np.random.default_rng(0))
    s = SO2D(p, 20, beta=0.7, max_inner=1, tol=1e-12, fallback_ratio=1e-12, trust_radius=0.1,
             trust_min=0.1, trust_max=0.1)
    h = HybridInputOutput(p, 20, beta=0.7)
    s.initialize(x0)
    h.initialize(x0)
    for k in range(10):
        s.step(k)
        h.step(k)
        assert s.info["fallback"] == 2.0
        assert torch.allclose(s.iterate(), h.x, atol=1e-10)


def test_warm_start_is_the_mean_of_the_last_solutions(box, monkeypatch):
    """Listing items 2-3: HIO guess (1, beta) with H_beta^-1 for the first `warmup` outer
    iterations, then the mean of the last `n_average` solved tau (and scaled inverse Hessians)."""
    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup)
    seen = []
    orig = subspace.solve_saddle

    def spy(f, g0, tau0, B0, smask, **kw):
        sol = orig(f, g0, tau0, B0, smask, **kw)
        seen.append((np.array(tau0), np.array(B0), sol))
        return sol

    monkeypatch.setattr(subspace, "solve_saddle", spy)
    a = SO2D(p, 20, beta=0.8, warmup=5, n_average=3)
    a.initialize(p.random_start(np.random.default_rng(1)))
    for k in range(9):
        a.step(k)
    for i in range(5):
        assert np.array_equal(seen[i][0], [1.0, 0.8])
        assert seen[i][1][0, 0] > 0 and seen[i][1][1, 1] < 0 and seen[i][1][0, 1] == 0
    for i in range(5, 9):
        prev = [s[2].tau for s in seen[:i] if not s[2].fallback][-3:]
        assert np.allclose(seen[i][0], np.mean(prev, axis=0))
    assert len(a.hist[2]) == 3
    # the HIO guess is exactly H_beta^-1 = diag(1/(2||d_s||^2), -beta/(2||d_sbar||^2)) (eq. (33))
    sub, _, _ = _subspace(p, a.iterate())
    B = sub.preconditioner(0.8)
    assert np.allclose(-B @ sub.grad0(), [1.0, 0.8])


def test_inner_solution_is_the_subspace_saddle(box):
    """After an SO2D step, the gradient of L(tau) at the chosen tau is small relative to tau = 0
    and the successive steps satisfy the orthogonality of eq. (25)."""
    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup, precision="double")
    a = SO2D(p, 30, tol=1e-6)
    a.initialize(p.random_start(np.random.default_rng(4)))
    for k in range(12):
        a.step(k)
    x = a.iterate()
    sub, _, D = _subspace(p, x)
    sol = solve_saddle(sub.evaluate, sub.grad0(), [1.0, 0.9], sub.preconditioner(0.9), [True, False], tol=1e-8)
    assert sol.converged
    x1 = x + sol.tau[0] * p.ifft(D[0]) + sol.tau[1] * p.ifft(D[1])
    d_s1, d_sbar1, _ = sda_directions(p, x1)
    d_s0, d_sbar0 = p.ifft(D[0]), p.ifft(D[1])
    c_s = float(torch.real(torch.vdot(d_s0.flatten(), d_s1.flatten())))
    c_b = float(torch.real(torch.vdot(d_sbar0.flatten(), d_sbar1.flatten())))
    assert abs(c_s) < 1e-6 * float(d_s0.norm() * d_s1.norm())
    assert abs(c_b) < 1e-6 * float(d_sbar0.norm() * d_sbar1.norm())


def test_so4d_first_step_is_2d_and_falls_back_to_2d(box, monkeypatch):
    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup)
    a = SO4D(p, 20)
    a.initialize(p.random_start(np.random.default_rng(2)))
    a.step(0)
    assert a.info["dims"] == 2.0 and a.info["alpha2"] == 0.0
    a.step(1)
    assert a.info["dims"] == 4.0
    orig = subspace.solve_saddle

    def fail4(f, g0, tau0, B0, smask, **kw):
        sol = orig(f, g0, tau0, B0, smask, **kw)
        if len(tau0) == 4:
            sol.fallback = True
            sol.tau = np.array(kw["fallback_tau"])
        return sol

    monkeypatch.setattr(subspace, "solve_saddle", fail4)
    z_before = a.z.clone()
    a.step(2)
    assert a.info["fallback"] == 1.0 and a.info["alpha2"] == 0.0 and a.info["beta2"] == 0.0
    # the applied step is the 2-D one
    dz = a.z - z_before
    assert torch.allclose(dz, a.info["alpha"] * a.D[2] + a.info["beta"] * a.D[3], atol=1e-4)


def test_support_change_resplits_the_state(box):
    """Shrink-wrap changes the support in place: the Fourier split F P_s rho is recomputed."""
    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup, precision="double")
    a = SO4D(p, 10)
    a.initialize(p.random_start(np.random.default_rng(0)))
    for k in range(3):
        a.step(k)
    p.support[0, :] = False  # work layout: centred row 16, inside the box
    assert not torch.equal(p.support, a.support0)
    a.step(3)
    assert a.info["dims"] == 2.0  # history cleared
    x = a.iterate()
    assert torch.allclose(a.gs, p.fft(saddle._linear_constraint(p, x)), atol=1e-10)


# --------------------------------------------------------------------------- recovery, driver
@pytest.mark.parametrize("alg", ["so2d", "so4d"])
def test_recovers_complex_reconstruction_of_known_object(box, alg):
    """Support-only constraint (complex reconstruction) of the box test object, 8 random starts
    of 1000 iterations: at least one start recovers the object (error after removing phase /
    shift / twin below 1e-3), and the start with the best R-factor is within 5e-2.

    (About half of the single starts converge within 1000 iterations (rng 0: 4 of 8 for SO2D, 5
    of 8 for SO4D; a third at 600 iterations), and which ones depends on rounding, i.e. on the
    CPU: one lucky seed would make a fragile test; with 8 starts of about even odds, all
    failing has a probability near 0.4 %.  The
    success is asked of any of the starts, not of the best by R-factor: near convergence a start
    that stagnates can have the lowest R-factor -- SO4D, rng 0: R 1.9e-4 with error 1.2e-2
    against R 2.7e-4 with error 2.4e-4 -- and that ranking flipped with a 1e-11 relative change
    of the order in which the fastmath evaluation sums the Hessian.)"""
    truth, sup, I = box
    r = reconstruct(I, sup, algorithm=alg, n_iter=1000, rng=0, starts=8, metric_every=20,
                    progress=False)
    errs = [relative_error(im, truth) for im in r.images]
    assert min(errs) < 1e-3, errs
    err = relative_error(r.image, truth)
    assert err < 5e-2, errs
    # the estimate is P_s P_m rho: it satisfies the support exactly
    assert np.all(r.image[~sup] == 0)
    hist = r.history
    for key in ("R_F", "eps_s", "alpha", "beta", "inner_iter", "fallback"):
        assert key in hist and len(hist[key]) == 50
    assert hist["eps_s"][-1] < 1e-3 < hist["eps_s"][0]


def test_realness_constraint(small_cdi):
    obj, sup, I = small_cdi
    r = reconstruct(I, sup, algorithm="so2d", n_iter=200, rng=0, real=True, metric_every=0, progress=False)
    assert np.abs(r.image.imag).max() == 0
    assert relative_error(r.image, obj) < 0.05


@pytest.mark.parametrize("alg", ["so2d", "so4d"])
def test_checkpoint_resume_gives_the_same_result(box, tmp_path, alg):
    """Resuming recomputes the modulus projection the fused update had carried: same result."""
    truth, sup, I = box
    full = reconstruct(I, sup, algorithm=alg, n_iter=60, rng=3, metric_every=0, progress=False)
    ck = tmp_path / "ck.pt"

    def crash(state):
        if state.iteration == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct(I, sup, algorithm=alg, n_iter=60, rng=3, metric_every=0, progress=False,
                    checkpoint=ck, checkpoint_every=20, callback=crash)
    res = reconstruct(I, sup, algorithm=alg, n_iter=60, rng=3, metric_every=0, progress=False,
                      resume=ck)
    assert np.array_equal(res.image, full.image)


@pytest.mark.parametrize("cls", [SO2D, SO4D])
def test_resume_is_bit_identical_at_any_iteration_and_thread_count(box, cls):
    """Resuming from a state_dict after 1, 2 or 7 iterations gives bit for bit the state tensors
    and estimate of the uninterrupted run (the resumed run recomputes with project_into the
    projection the fused update pass carried: strict IEEE in both), whatever the numbers of
    numba and torch threads."""
    import copy

    import numba

    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup)
    x0 = p.random_start(np.random.default_rng(3))
    n = 12

    def run(stop=None, threads=1):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        torch.set_num_threads(threads)
        a = cls(p, n)
        a.initialize(x0)
        for k in range(n):
            if k == stop:
                st = copy.deepcopy(a.state_dict())
                a = cls(p, n)
                a.load_state_dict(st)
            a.step(k)
        return a

    ref = run()
    for stop, threads in ((1, 1), (2, 2), (7, 1), (None, 2)):
        b = run(stop, threads)
        sa, sb = ref.state_dict(), b.state_dict()
        for name in cls.state_names:
            va, vb = sa[name], sb[name]
            if isinstance(va, torch.Tensor):
                assert torch.equal(va, vb), (stop, threads, name)
            else:
                assert va == vb, (stop, threads, name)
        assert torch.equal(ref.estimate(), b.estimate())
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_chain_and_multistart(box):
    truth, sup, I = box
    r = reconstruct(I, sup, schedule="so2d:400,er:20", starts=2, rng=2, metric_every=0, progress=False)
    assert len(r.images) == 2 and r.n_iter == 420 and r.rfactors[0] <= r.rfactors[1]
    assert relative_error(r.image, truth) < 1e-2


def test_function_form(box):
    from phasekit import cdi

    truth, sup, I = box
    r = cdi.so4d(I, sup, n_iter=20, rng=0, previous="step", metric_every=0, progress=False)
    assert r.config["schedule"][0][0] == "so4d" and r.config["schedule"][0][2] == {"previous": "step"}
    assert np.all(np.isfinite(r.image))


def test_bad_parameters_and_constraints_are_errors(box):
    truth, sup, I = box
    with pytest.raises(ConfigError, match="positivity"):
        reconstruct(I, sup, algorithm="so2d", n_iter=5, positive=True, progress=False)
    with pytest.raises(ConfigError, match="tol"):
        reconstruct(I, sup, algorithm="so2d", n_iter=5, tol=2.0, progress=False)
    with pytest.raises(ConfigError, match="trust"):
        reconstruct(I, sup, algorithm="so4d", n_iter=5, trust_radius=5.0, progress=False)
    with pytest.raises(ConfigError, match="previous"):
        reconstruct(I, sup, algorithm="so4d", n_iter=5, previous="bogus", progress=False)
    p = CDIProblem.from_arrays(I, sup)
    with pytest.raises(ConfigError, match="so2d"):
        SO2D(p, 5, beta=-1)


def test_support_violation_matches_so2d_metric(box):
    truth, sup, I = box
    p = CDIProblem.from_arrays(I, sup, precision="double")
    a = SO2D(p, 5)
    a.initialize(p.random_start(np.random.default_rng(0)))
    x = a.iterate()
    a.step(0)
    y = p.ifft(modulus_projection(p.fft(x), p.amp, p.measured))
    assert a.support_violation() == pytest.approx(support_violation(p, y), rel=1e-9)


def test_cli_reconstruct_so2d(tmp_path):
    from phasekit.cli.main import cli
    from phasekit.io import read_result

    runner = CliRunner()
    data = tmp_path / "data.cxi"
    res = runner.invoke(cli, ["simulate", "cdi", "--object", "vesicle", "--size", "48", "--oversampling", "3",
                              "--photons", "1e9", "--beamstop", "0", "--complex", "--seed", "0", "--out", str(data)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "r.cxi"
    res = runner.invoke(cli, ["reconstruct", str(data), "--algorithm", "so2d", "-n", "40", "--no-figure",
                              "-q", "--out", str(out), "-p", "max_inner=20"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    r = read_result(out)
    assert r["images"][0].shape == (48, 48) and np.all(np.isfinite(r["images"][0]))
    assert len(r["history"]["alpha"]) == 40
    res = runner.invoke(cli, ["reconstruct", str(data), "--algorithm", "so4d", "-n", "5", "--no-figure",
                              "-q", "--out", str(out), "--positive"])
    assert res.exit_code == 2 and "positivity" in res.stderr and len(res.stderr.strip().splitlines()) == 1
