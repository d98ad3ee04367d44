"""Real objects on real FFTs: the half-spectrum path gives the complex path's iterates.

The complex path of a ``real=True`` problem computes ``Re F^-1 P~_m F x``; the real-FFT path
folds the data onto the Hermitian half spectrum (:mod:`phasekit.cdi.halfspectrum`).  Masks here
have unpaired measured pixels (an off-centre beamstop and random bad pixels), sizes are even and
odd, 2-D and 3-D.  Tolerances: float64 1e-10 relative, float32 1e-4 (rounding of different FFT
algorithms, amplified a little by a few iterations)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.cdi import CDIProblem
from phasekit.cdi import kernels as K
from phasekit.cdi.er import ErrorReduction
from phasekit.cdi.halfspectrum import fold, project_half_reference, rfactor_numerator_half_reference
from phasekit.cdi.hio import HybridInputOutput
from phasekit.cdi.oss import OSS
from phasekit.cdi.raar import RAAR
from phasekit.core.fft import friedel_partner, irfftw, rfftw

SHAPES = [(24, 24), (23, 21), (16, 18), (10, 9, 11)]


def _data(shape, seed=0, *, beamstop=True, bad=0.03):
    rng = np.random.default_rng(seed)
    c = np.array(shape) // 2
    obj = np.zeros(shape)
    sl = tuple(slice(ci - n // 5, ci + n // 6) for ci, n in zip(c, shape))
    obj[sl] = rng.uniform(0.2, 1.0, obj[sl].shape)
    sup = np.zeros(shape, bool)
    sl2 = tuple(slice(ci - n // 5 - 1, ci + n // 6 + 1) for ci, n in zip(c, shape))
    sup[sl2] = True
    F = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj), norm="ortho"))
    I = np.abs(F) ** 2 * rng.uniform(0.9, 1.1, shape)  # noisy: I(k) != I(-k)
    m = rng.random(shape) > bad
    if beamstop:  # off-centre: its Friedel partners stay measured
        bs = tuple(slice(ci + 1, ci + 3) for ci in c)
        m[bs] = False
    return I, sup, m


def _problems(shape, precision="double", positive=False, **kw):
    I, sup, m = _data(shape, **kw)
    a = CDIProblem.from_arrays(I, sup, m, real=True, positive=positive, precision=precision, rfft=True)
    b = CDIProblem.from_arrays(I, sup, m, real=True, positive=positive, precision=precision, rfft=False)
    return a, b


def test_friedel_partner_and_fold_counts():
    x = torch.arange(12).reshape(3, 4)
    p = friedel_partner(x)
    assert p[0, 0] == 0 and p[1, 1] == x[2, 3] and p[2, 0] == x[1, 0]
    # every measured pixel of the full grid is counted once by the R-factor weights
    for shape in SHAPES:
        _, _, m = _data(shape)
        mt = torch.from_numpy(np.fft.ifftshift(m))
        h = fold(torch.ones(shape, dtype=torch.float64), mt, len(shape))
        n = shape[-1]
        # columns whose partner lies in the discarded half represent two full-grid pixels
        assert int(h.m1.sum() + h.m2.sum()) == int(mt[..., : n // 2 + 1].sum() + mt[..., n // 2 + 1:].sum())
        assert set(np.unique(h.keep.numpy())) <= {0.0, 0.5, 1.0}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fused", [False, True])
def test_half_projection_equals_real_part_of_complex(shape, fused):
    if fused and not K.HAVE_NUMBA:
        pytest.skip("numba not available")
    pa, pb = _problems(shape)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal(shape))
    # complex path: Re F^-1 P~_m F x
    z = pb.fft(x.to(pb.cdtype))
    K.fourier_project(z, pb.amp, pb.measured, fused=fused)
    ref = pb.ifft(z).real
    # half spectrum
    zh = rfftw(x, len(shape)).contiguous()
    K.fourier_project_half(zh, pa.half(), fused=fused)
    got = irfftw(zh, shape)
    err = float((got - ref).abs().max() / ref.abs().max())
    assert err < 1e-12, err
    # the unpaired pixels matter: ignoring the mask's asymmetry would not match
    bad = pa.half()
    assert bool((bad.keep == 0.5).any())


@pytest.mark.parametrize("shape", SHAPES)
def test_half_rfactor_equals_full(shape):
    pa, _ = _problems(shape)
    x = torch.from_numpy(np.random.default_rng(2).standard_normal(shape))
    full = K.rfactor_numerator(pa.fft(x.to(pa.cdtype)), pa.amp, pa.measured)
    h = pa.half()
    zh = rfftw(x, len(shape)).contiguous()
    for fused in ([False, True] if K.HAVE_NUMBA else [False]):
        half = K.rfactor_numerator_half(zh, h, fused=fused)
        assert abs(half - full) <= 1e-12 * full
    assert abs(rfactor_numerator_half_reference(zh, h) - full) <= 1e-12 * full
    assert abs(pa.rfactor(x) - pa.rfactor(x.to(pa.cdtype))) < 1e-13


def test_fused_half_projection_matches_torch_twin_float32():
    if not K.HAVE_NUMBA:
        pytest.skip("numba not available")
    pa, _ = _problems((32, 30), precision="single")
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((32, 30)).astype(np.float32))
    z0 = pa.rfft_half(x).contiguous()
    z0[0, 3] = 0  # the phase-of-zero rule and the fix-up pass
    z0[1, 2] = 1e-30
    a, b = z0.clone(), z0.clone()
    K.fourier_project_half(a, pa.half(), fused=True)
    project_half_reference(b, pa.half())
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert torch.isfinite(a).all()


def test_fused_half_projection_has_the_bits_of_the_per_pixel_rule():
    """The fused half-spectrum projection, fix-up pass included, to the bit against the
    per-pixel rule (``project_pixel``, then ``+ keep z``), serial and multi-threaded, with pixels
    the fast pass leaves (0, tiny, huge) and pixels projected onto a zero amplitude."""
    if not K.HAVE_NUMBA:
        pytest.skip("numba not available")
    from phasekit.operators.modulus import _project_pixel_py

    pa, _ = _problems((32, 30), precision="single")
    h = pa.half()
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((32, 30)).astype(np.float32))
    z0 = pa.rfft_half(x).contiguous()
    z0[0, 3], z0[1, 2], z0[2, 5], z0[3, 7] = 0, 1e-30, 1e19 + 1e19j, 2.0 ** -61
    amp, proj, keep = h.amp.clone(), h.proj, h.keep
    amp[4, :5] = 0  # projected onto zero: such pixels fail the fast test after the pass
    zn, an, pn, kn = z0.numpy(), amp.numpy(), proj.numpy(), keep.numpy()
    want = zn.copy()
    for idx in np.ndindex(zn.shape):
        v = zn[idx]
        if pn[idx]:
            r, i = _project_pixel_py(np.float32(v.real), np.float32(v.imag), an[idx])
        else:
            r, i = np.float32(v.real), np.float32(v.imag)
        c = kn[idx]
        if c > 0:
            r, i = r + c * np.float32(v.real), i + c * np.float32(v.imag)
        want[idx] = complex(r, i)
    assert pn[0, 3] and pn[1, 2]
    for ks in (K._SERIAL, K._PARALLEL):
        got = z0.clone()
        ks[8](got.numpy(), an, pn, kn)
        assert np.array_equal(got.numpy().view(np.uint32), want.view(np.uint32))


def _run(cls, problem, x0, n, **params):
    algo = cls(problem, n, **params)
    algo.initialize(x0)
    for k in range(n):
        algo.step(k)
    return algo


CASES = [(ErrorReduction, {}), (HybridInputOutput, {"beta": 0.9}), (RAAR, {"beta": 0.8}),
         (OSS, {"beta": 0.9, "n_filters": 3})]


@pytest.mark.parametrize("cls,params", CASES, ids=lambda c: getattr(c, "name", ""))
@pytest.mark.parametrize("shape", [(24, 24), (23, 21), (10, 9, 11)])
@pytest.mark.parametrize("positive", [False, True])
def test_iterates_equal_complex_path_float64(cls, params, shape, positive):
    pa, pb = _problems(shape, positive=positive)
    assert pa.use_rfft and not pb.use_rfft
    x0 = pb.random_start(np.random.default_rng(4))
    n = 12
    a = _run(cls, pa, x0, n, **params)
    b = _run(cls, pb, x0, n, **params)
    assert not a.x.is_complex() and b.x.is_complex()
    assert float(b.x.imag.abs().max()) == 0.0  # the complex path's iterate is real too
    scale = float(b.x.real.abs().max())
    assert float((a.x - b.x.real).abs().max()) < 1e-10 * scale
    ea, eb = a.estimate(), b.estimate()
    assert float((ea - eb.real).abs().max()) < 1e-10 * scale
    assert abs(pa.rfactor(ea) - pb.rfactor(eb)) < 1e-10


@pytest.mark.parametrize("cls,params", CASES[:3], ids=lambda c: getattr(c, "name", ""))
def test_iterates_equal_complex_path_float32(cls, params):
    pa, pb = _problems((32, 31), precision="single")
    x0 = pb.random_start(np.random.default_rng(5))
    a = _run(cls, pa, x0, 8, **params)
    b = _run(cls, pb, x0, 8, **params)
    assert a.x.dtype == torch.float32
    scale = float(b.x.real.abs().max())
    assert float((a.x - b.x.real).abs().max()) < 1e-4 * scale


def test_reconstruct_end_to_end_and_cross_path_resume(tmp_path):
    from phasekit.cdi.api import reconstruct

    I, sup, m = _data((24, 24), seed=7)
    kw = dict(schedule="hio:30,er:10", real=True, rng=3, progress=False, precision="double")
    ra = reconstruct(I, sup, mask=m, rfft=True, **kw)
    rb = reconstruct(I, sup, mask=m, rfft=False, **kw)
    assert not np.iscomplexobj(ra.image) and not np.iscomplexobj(rb.image)
    assert np.abs(ra.image - rb.image).max() < 1e-9 * np.abs(rb.image).max()
    assert abs(ra.rfactor - rb.rfactor) < 1e-9


@pytest.mark.parametrize("cls,params", [CASES[1], CASES[3]], ids=lambda c: getattr(c, "name", ""))
def test_state_of_one_path_continues_on_the_other(cls, params):
    pa, pb = _problems((20, 19))
    x0 = pb.random_start(np.random.default_rng(6))
    ref = _run(cls, pb, x0, 10, **params)
    a = _run(cls, pa, x0, 10, **params)
    # 5 steps on the real path, then the state moves to the complex path and back
    a1 = cls(pa, 10, **params)
    a1.initialize(x0)
    for k in range(5):
        a1.step(k)
    b1 = cls(pb, 10, **params)
    b1.load_state_dict(a1.state_dict())
    assert b1.x.is_complex()
    for k in range(5, 10):
        b1.step(k)
    scale = float(ref.x.real.abs().max())
    assert float((b1.x - ref.x).abs().max()) < 1e-10 * scale
    a2 = cls(pa, 10, **params)
    a2.load_state_dict(b1.state_dict())
    assert not a2.x.is_complex()
    assert float((a2.x - a.x).abs().max()) < 1e-10 * scale


@pytest.mark.parametrize("shape", [(256, 256), (255, 257), (40, 41, 42)])
def test_irfftw_split_in_place_form_equals_irfftn(shape):
    from phasekit.core.fft import IRFFT_SPLIT_MIN

    x = torch.from_numpy(np.random.default_rng(8).standard_normal(shape))
    z = rfftw(x)
    assert z.numel() >= IRFFT_SPLIT_MIN  # the split form is the one exercised
    ref = torch.fft.irfftn(z, s=shape, norm="ortho")
    got = irfftw(z.clone(), shape, overwrite=True)
    assert float((got - ref).abs().max()) < 1e-13
    assert float((got - x).abs().max()) < 1e-12


@pytest.mark.parametrize("shape", [(256, 256), (512, 512)])
def test_iterates_equal_complex_path_above_split_size(shape):
    # 512^2 also runs the multi-threaded real-array kernels (K.PARALLEL_THRESHOLD elements)
    pa, pb = _problems(shape)
    x0 = pb.random_start(np.random.default_rng(9))
    a = _run(HybridInputOutput, pa, x0, 3, beta=0.9)
    b = _run(HybridInputOutput, pb, x0, 3, beta=0.9)
    assert float((a.x - b.x.real).abs().max()) < 1e-10 * float(b.x.real.abs().max())
    assert abs(pa.rfactor(a.estimate()) - pb.rfactor(b.estimate())) < 1e-10


def test_cprime_equals_complex_path():
    from phasekit.cdi.mm import CPrimeMM

    pa, pb = _problems((22, 21))
    x0 = pb.random_start(np.random.default_rng(10))
    a = _run(CPrimeMM, pa, x0, 10, lam_rel=0.01)
    b = _run(CPrimeMM, pb, x0, 10, lam_rel=0.01)
    assert not a.x.is_complex()
    assert float((a.x - b.x.real).abs().max()) < 1e-10 * float(b.x.real.abs().max())
    assert abs(a.metrics()["R_F"] - b.metrics()["R_F"]) < 1e-10


@pytest.mark.parametrize("schedule", ["hio:8,er:4,raar:4", "er:3,rk:1,hio:3"])
def test_chains_of_real_iterates_equal_complex_path(schedule):
    from phasekit.cdi.api import reconstruct

    I, sup, m = _data((20, 20), seed=11)
    kw = dict(schedule=schedule, real=True, rng=1, progress=False, precision="double")
    ra = reconstruct(I, sup, mask=m, rfft=True, **kw)
    rb = reconstruct(I, sup, mask=m, rfft=False, **kw)
    assert np.isfinite(ra.rfactor) and not np.iscomplexobj(ra.image)
    assert np.abs(ra.image - rb.image).max() < 1e-8 * np.abs(rb.image).max()


@pytest.mark.parametrize("schedule", ["hio:8,so2d:4,er:6", "gps-r:6,er:6"])
def test_chains_from_complex_iterates(schedule):
    """SO2D / GPS hand over a complex iterate; the real-FFT path starts from its real part (the
    complex path's first ER step projects the complex field instead: not the same iterate, but
    both end real and ER improves on the hand-over)."""
    from phasekit.cdi.api import reconstruct

    I, sup, m = _data((20, 20), seed=11)
    kw = dict(schedule=schedule, real=True, rng=1, progress=False, precision="double")
    ra = reconstruct(I, sup, mask=m, rfft=True, **kw)
    rb = reconstruct(I, sup, mask=m, rfft=False, **kw)
    for r in (ra, rb):
        assert not np.iscomplexobj(r.image)
        h = r.history["R_F"]
        assert np.isfinite(r.rfactor) and r.rfactor < 0.5
        assert h[-1] <= h[-6] + 1e-12  # the ER tail does not increase R_F
    assert abs(ra.rfactor - rb.rfactor) < 0.05
