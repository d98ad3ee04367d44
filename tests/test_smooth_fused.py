"""GPS and OSS: the fused numba passes (:mod:`phasekit.cdi.kernels_smooth`) give the iterates of
their torch twins, and GPS on a real object (real estimate, real-FFT R-factor) gives the complex
path's iterates.

Data: noisy intensities (``I(k) != I(-k)``), an off-centre beamstop and random bad pixels, so
that the modulus projection, its unmeasured pixels and the unpaired Friedel partners are all
exercised.  Tolerances: float32 1e-4 relative to the iterate's maximum after a few iterations
(the fused passes round differently: float32 constants, no temporaries), float64 1e-10."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.cdi import CDIProblem
from phasekit.cdi import kernels_smooth as KS
from phasekit.cdi.gps import GPSF, GPSR
from phasekit.cdi.oss import OSS

pytestmark = pytest.mark.skipif(not KS.HAVE_NUMBA, reason="numba not installed")


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = np.array(shape) // 2
    obj = np.zeros(shape)
    sl = tuple(slice(ci - n // 5, ci + n // 6) for ci, n in zip(c, shape))
    obj[sl] = rng.uniform(0.2, 1.0, obj[sl].shape)
    sup = np.zeros(shape, bool)
    sup[tuple(slice(ci - n // 5 - 1, ci + n // 6 + 1) for ci, n in zip(c, shape))] = True
    F = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj), norm="ortho"))
    I = np.abs(F) ** 2 * rng.uniform(0.9, 1.1, shape)
    m = rng.random(shape) > 0.03
    m[tuple(slice(ci + 1, ci + 3) for ci in c)] = False
    return I, sup, m


def _run(cls, problem, x0, n, fused, monkeypatch, **params):
    with monkeypatch.context() as mp:
        if not fused:
            mp.setattr(KS, "HAVE_NUMBA", False)
        algo = cls(problem, n, **params)
        algo.initialize(x0)
        for k in range(n):
            algo.step(k)
    return algo


def _state(algo):
    if isinstance(algo, OSS):
        return {"x": algo.x, "est": algo.estimate()}
    return {"z": algo.z, "y": algo.y, "u": algo.u_old, "est": algo.best["est"]}


CASES = [(GPSR, {"n_stages": 3}), (GPSF, {"n_stages": 3}), (OSS, {"n_filters": 3})]


@pytest.mark.parametrize("cls,params", CASES, ids=lambda c: getattr(c, "name", ""))
@pytest.mark.parametrize("real,rfft,positive", [(False, True, False), (True, True, True),
                                                (True, False, False)])
def test_fused_iterates_equal_torch_twin(cls, params, real, rfft, positive, monkeypatch):
    I, sup, m = _data((24, 22))
    p = CDIProblem.from_arrays(I, sup, m, real=real, positive=positive, rfft=rfft)
    x0 = p.random_start(np.random.default_rng(3))
    n = 9  # crosses two stage boundaries (restarts from the best pair)
    a = _run(cls, p, x0, n, True, monkeypatch, **params)
    b = _run(cls, p, x0, n, False, monkeypatch, **params)
    sa, sb = _state(a), _state(b)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        scale = float(sb[key].abs().max())
        assert scale > 0
        assert float((sa[key] - sb[key]).abs().max()) < 1e-4 * scale, key
    ra, rb = a.metrics()["R_F"], b.metrics()["R_F"]
    assert 0 < rb < 1 and abs(ra - rb) < 1e-4 * rb


@pytest.mark.parametrize("cls", [GPSR, GPSF], ids=lambda c: c.name)
def test_gps_real_object_equals_complex_path(cls, monkeypatch):
    I, sup, m = _data((20, 19))
    pa = CDIProblem.from_arrays(I, sup, m, real=True, precision="double", rfft=True)
    pb = CDIProblem.from_arrays(I, sup, m, real=True, precision="double", rfft=False)
    x0 = pb.random_start(np.random.default_rng(7))
    a = _run(cls, pa, x0, 8, True, monkeypatch, n_stages=2)
    b = _run(cls, pb, x0, 8, True, monkeypatch, n_stages=2)
    ea, eb = a.estimate(), b.estimate()
    assert not ea.is_complex() and eb.is_complex()  # the real path's estimate is a real tensor
    assert float(eb.imag.abs().max()) == 0.0
    scale = float(eb.real.abs().max())
    assert float((ea - eb.real).abs().max()) < 1e-10 * scale
    for key in ("z", "y", "u_old"):  # the primal and dual variables stay complex on both
        va, vb = getattr(a, key), getattr(b, key)
        assert va.is_complex()
        assert float((va - vb).abs().max()) < 1e-10 * float(vb.abs().max())
    assert abs(a.rf - b.rf) < 1e-10
    assert abs(pa.rfactor(ea) - pb.rfactor(eb)) < 1e-10
    # the dual variable is genuinely complex: Im y carries the realness violation
    assert float(a.y.imag.abs().max()) > 1e-3 * float(a.y.abs().max())


def test_gps_primal_extreme_pixels_match_twin():
    z = torch.tensor([3 + 4j, 0j, 1e-30 + 0j, 1e25 + 1e25j, 2 - 1j], dtype=torch.complex64)
    fy = torch.tensor([0j, 0j, 0j, 0j, 1 + 1j], dtype=torch.complex64)
    amp = torch.tensor([10.0, 2.0, 1.0, 1.0, 5.0])
    meas = torch.tensor([True, True, True, True, False])
    for eps in (0.0, 0.25):
        a = KS.gps_primal(z, fy, amp, meas, 1.0, eps, fused=True)
        b = KS.gps_primal(z, fy, amp, meas, 1.0, eps, fused=False)
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-30)
    a = KS.gps_primal(z, fy, amp, meas, 1.0, 0.0, fused=True)
    assert a[0].item() == pytest.approx(6 + 8j) and a[1].item() == pytest.approx(2 + 0j)
    assert abs(a[2]).item() == pytest.approx(1.0) and abs(a[3]).item() == pytest.approx(1.0)
    assert a[4].item() == pytest.approx(1 - 2j)  # unmeasured: w = z - t Fy, unprojected


@pytest.mark.parametrize("real,positive", [(False, False), (True, True)])
def test_oss_split_and_merge_match_twin(real, positive):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 30, dtype=torch.complex64, generator=g)
    y = torch.randn(40, 30, dtype=torch.complex64, generator=g)
    s = torch.rand(40, 30, generator=g) > 0.5
    for xx, yy in ((x, y), (x.real.contiguous(), y.real.contiguous())):
        a, b = xx.clone(), xx.clone()
        ha, ea = KS.oss_split(a, yy, s, 0.9, real=real, positive=positive, fused=True)
        hb, eb = KS.oss_split(b, yy, s, 0.9, real=real, positive=positive, fused=False)
        for u, v in ((a, b), (ha, hb), (ea, eb)):
            assert u.dtype == v.dtype and torch.allclose(u, v, rtol=1e-6, atol=1e-6)
        assert float(eb[~s].abs().max()) == 0.0
        c = a.clone()
        KS.oss_merge(a, yy, s, real=real, fused=True)
        KS.oss_merge(c, yy, s, real=real, fused=False)
        assert torch.equal(a, c)
        want = yy.real.to(yy.dtype) if (real and yy.is_complex()) else yy
        assert torch.equal(a[~s], want[~s])


@pytest.mark.parametrize("real", [False, True])
def test_fused_rfactor_matches_problem_rfactor(real):
    I, sup, m = _data((30, 27))
    p = CDIProblem.from_arrays(I, sup, m, real=real)
    x = p.random_start(np.random.default_rng(1))
    if real:
        x = x.real.contiguous()
    want = p.rfactor(x)
    assert 0.05 < want < 2
    assert abs(KS.rfactor(p, x, fused=True) - want) < 1e-6 * want
    assert abs(KS.rfactor(p, x, fused=False) - want) < 1e-12 * want


def _gps_r_plain(p, algo, x0, n, literal_re=False):
    """GPS-R as printed (thesis Algorithm 1, eqs. (2.14), (2.19), (2.20)) in plain torch, with
    the class's filters, schedule and best-pair restarts: ``y`` kept in real space, ``F y`` by
    a multiply after the FFT (the form the class computes in Fourier space)."""
    from phasekit.cdi.kernels import fourier_project
    from phasekit.operators.projections import apply_constraints, modulus_projection_

    z = p.fft(x0.to(p.cdtype))
    fourier_project(z, p.amp, p.measured, fused=False)
    y = torch.zeros_like(z)
    Fy = torch.zeros_like(z)
    u = p.ifft(z)
    best = {"rf": float("inf"), "z": z, "y": y, "Fy": Fy, "u": u}
    for k in range(n):
        l = int(np.searchsorted(algo.bounds, k, side="right") - 1)
        if k > 0 and k == algo.bounds[l]:
            z, y, Fy, u = best["z"], best["y"], best["Fy"], best["u"]
        sig = float(algo.sigmas[k])
        eps = sig / (sig + algo.t)
        w = z - algo.t * Fy
        pz = w.clone()
        modulus_projection_(pz, p.amp, p.measured)
        z_new = torch.where(p.measured, (1 - eps) * pz + eps * w, w)
        u_new = p.ifft(z_new)
        v = y + algo.s * (2 * u_new - u)
        yh = v - apply_constraints(v, p.support, real=p.real, positive=p.positive)
        Fy = p.fft(yh) * algo.filter(l)
        y = p.ifft(Fy)
        if literal_re:
            y = y.real.to(y.dtype)
            Fy = p.fft(y)
        z, u = z_new, u_new
        est = apply_constraints(u, p.support, real=p.real, positive=p.positive)
        rf = p.rfactor(est)
        if rf < best["rf"]:
            best = {"rf": rf, "z": z, "y": y, "Fy": Fy, "u": u, "est": est}
    return z, y, u, best


@pytest.mark.parametrize("literal_re,positive", [(False, False), (True, True)])
def test_gps_r_fourier_form_equals_printed_iteration(literal_re, positive, monkeypatch):
    """The class keeps GPS-R's dual variable as ``G = F y_half`` and forms ``F^-1 V = y + s (2
    u_new - u_old)`` in Fourier space; the printed iteration keeps ``y``: same iterates (float64,
    1e-9 relative) through a stage restart, fused kernels and torch twins alike."""
    I, sup, m = _data((18, 20))
    p = CDIProblem.from_arrays(I, sup, m, real=positive, positive=positive, precision="double",
                               rfft=False)
    x0 = p.random_start(np.random.default_rng(11))
    n = 10
    for fused in (True, False):
        a = _run(GPSR, p, x0, n, fused, monkeypatch, n_stages=2, literal_re=literal_re)
        z, y, u, best = _gps_r_plain(p, a, x0, n, literal_re)
        for got, want in ((a.z, z), (a.y, y), (a.u_old, u), (a.best["est"], best["est"])):
            assert float((got - want).abs().max()) < 1e-9 * float(want.abs().max())
        assert a.best["rf"] == pytest.approx(best["rf"], rel=1e-9)


def _oss_plain(p, algo, x0, n):
    """OSS as in the reference MATLAB code of Rodriguez et al. (2013), plain torch: the density
    ``h = x - beta y`` is transformed and filtered explicitly (5 FFTs a step)."""
    from phasekit.cdi.kernels import HIO, fourier_project, realspace_update_reference
    from phasekit.operators.projections import apply_constraints

    x = x0.to(p.cdtype).clone()
    stage_x, stage_rf, best_rf, best_est = x.clone(), float("inf"), float("inf"), None
    for k in range(n):
        j = int(np.searchsorted(algo.bounds, k, side="right") - 1)
        if k > 0 and k == algo.bounds[j]:
            x, stage_rf = stage_x.clone(), float("inf")
        z = p.fft(x)
        fourier_project(z, p.amp, p.measured, fused=False)
        y = p.ifft(z)
        smooth = p.ifft(p.fft(x - algo.beta * y) * algo._filter(j))
        realspace_update_reference(x, y, p.support, HIO, algo.beta, False, p.positive)
        x = torch.where(p.support, x, smooth)
        est = apply_constraints(y, p.support, positive=p.positive)
        rf = p.rfactor(est)
        if rf < stage_rf:
            stage_rf, stage_x = rf, x.clone()
        if rf < best_rf:
            best_rf, best_est = rf, est
    return x, best_est, best_rf


@pytest.mark.parametrize("positive", [False, True])
def test_oss_fourier_form_equals_plain_iteration(positive, monkeypatch):
    """OSS forms ``W F h = W (Z - beta P~_m Z)`` in the projection pass (4 FFTs a step); the plain
    iteration transforms ``h``: same iterates (float64, 1e-9 relative) through a stage restart."""
    I, sup, m = _data((20, 18))
    p = CDIProblem.from_arrays(I, sup, m, positive=positive, precision="double")
    x0 = p.random_start(np.random.default_rng(12))
    for fused in (True, False):
        a = _run(OSS, p, x0, 10, fused, monkeypatch, n_filters=2)
        x, est, rf = _oss_plain(p, a, x0, 10)
        assert float((a.x - x).abs().max()) < 1e-9 * float(x.abs().max())
        assert float((a.estimate() - est).abs().max()) < 1e-9 * float(est.abs().max())
        assert a.best_rf == pytest.approx(rf, rel=1e-9)
