import numpy as np
import pytest
import torch

from phasekit.cdi import CDIProblem, ShrinkWrap, autocorrelation_support, reconstruct
from phasekit.cdi.gps import GPSR, sigma_schedule
from phasekit.cdi.hio import HybridInputOutput, hio_direction
from phasekit.cdi.kernels import fourier_project
from phasekit.core.errors import ConfigError, FileFormatError, InputError
from phasekit.metrics import relative_error
from phasekit.operators import constraint_mask
from phasekit.engine import parse_schedule

# ---------------------------------------------------------------- identities


def test_hio_equals_saddle_point_step(small_cdi_complex):
    """HIO = x + d_s + beta d_sbar (Marchesini 2007 eq. (19)-(21)), same iterates, complex object."""
    obj, sup, I = small_cdi_complex
    p = CDIProblem.from_arrays(I, sup, precision="double")
    a = HybridInputOutput(p, 20, beta=0.8)
    x = p.random_start(np.random.default_rng(0))
    a.initialize(x)
    for k in range(15):
        xk = a.x.clone()
        a.step(k)
        z = p.fft(xk)
        fourier_project(z, p.amp, p.measured, fused=False)
        y = p.ifft(z)
        d_s, d_sbar = hio_direction(xk, y, constraint_mask(y, p.support))
        assert torch.allclose(a.x, xk + d_s + 0.8 * d_sbar, atol=1e-10)


def test_gps_without_smoothing_is_douglas_rachford(small_cdi_complex):
    """GPS with sigma=0, no smoothing, s=t=1: q = F^-1 z - y follows DR (PDHG = DR, O'Connor & Vandenberghe 2018, the thesis's ref. [107])."""
    obj, sup, I = small_cdi_complex
    p = CDIProblem.from_arrays(I, sup, precision="double")
    g = GPSR(p, 30, sigma=0.0, s=1.0, t=1.0, smoothing="none", n_stages=1)
    x0 = GPSR.random_start(p, np.random.default_rng(1))
    g.initialize(x0)
    q = p.ifft(g.z) - g.y

    def PM(v):
        z = p.fft(v)
        fourier_project(z, p.amp, p.measured, fused=False)
        return p.ifft(z)

    for k in range(25):
        g.step(k)
        pm = PM(q)
        q = q + p.constrain(2 * pm - q) - pm
        assert torch.allclose(p.ifft(g.z) - g.y, q, atol=1e-9)


def test_hio_beta1_is_dr_for_support_only(small_cdi_complex):
    obj, sup, I = small_cdi_complex
    p = CDIProblem.from_arrays(I, sup, precision="double")
    a = HybridInputOutput(p, 10, beta=1.0)
    x = p.random_start(np.random.default_rng(2))
    a.initialize(x)
    q = x.clone()
    for k in range(10):
        a.step(k)
        z = p.fft(q)
        fourier_project(z, p.amp, p.measured, fused=False)
        pm = p.ifft(z)
        q = q + p.constrain(2 * pm - q) - pm
        assert torch.allclose(a.x, q, atol=1e-9)


def test_sigma_schedule():
    s = sigma_schedule([(0.0, 0.01), (0.4, 0.1)], 10)
    assert np.allclose(s, [0.01] * 4 + [0.1] * 6)
    assert np.allclose(sigma_schedule(0.5, 3), 0.5)


# ---------------------------------------------------------------- recovery

REAL_CASES = [
    ("hio", dict(n_iter=400), 0.02),
    ("raar", dict(n_iter=600, beta=0.75), 0.05),
    ("oss", dict(n_iter=600), 0.02),
    ("gps-r", dict(n_iter=500), 0.02),
    ("gps-f", dict(n_iter=500), 0.02),
]


@pytest.mark.parametrize("alg,kw,tol", REAL_CASES)
def test_recovers_real_positive_object(small_cdi, alg, kw, tol):
    obj, sup, I = small_cdi
    r = reconstruct(I, sup, algorithm=alg, real=True, positive=True, rng=0, progress=False, starts=2,
                    metric_every=5, **kw)
    err = relative_error(r.image, obj)
    assert r.success and np.isfinite(r.rfactor)
    assert err < tol, (alg, err, r.rfactors)
    assert r.rfactor < 0.05


def test_oss_reports_its_lowest_rf_estimate_without_the_drivers_keep_best(small_cdi):
    """OSS tracks its best estimate itself (the driver's keep-best is off by default): the result
    is the driver's keep-best result, and its R_F the least recorded in the history."""
    obj, sup, I = small_cdi
    runs = [reconstruct(I, sup, algorithm="oss", n_iter=60, real=True, positive=True, rng=1, progress=False,
                        keep_best=kb) for kb in (None, True, False)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.image, runs[0].image)
    rf = np.array(runs[0].history["R_F"])
    assert rf[-1] > rf.min()  # the last iterate is not the best one: keeping the best matters
    assert runs[0].rfactor == pytest.approx(rf.min(), rel=1e-4)


def test_er_refines_after_hio(small_cdi):
    obj, sup, I = small_cdi
    r = reconstruct(I, sup, schedule="HIO:300,ER:100", real=True, positive=True, rng=0, progress=False)
    assert relative_error(r.image, obj) < 0.02
    assert r.history["stage"][-1] == 1 and r.history["iteration"][-1] == 400
    # ER alone decreases the error monotonically (projected descent): R_F non-increasing
    r2 = reconstruct(I, sup, algorithm="er", n_iter=50, real=True, positive=True, rng=0, progress=False)
    rf = np.array(r2.history["R_F"])
    assert np.all(np.diff(rf) <= 1e-6)


def test_recovers_complex_object_with_support_only(small_cdi_complex):
    from scipy.ndimage import binary_dilation

    obj, sup, I = small_cdi_complex
    tight = binary_dilation(np.abs(obj) > 0, iterations=1)  # a complex object needs a tight support
    r = reconstruct(I, tight, schedule="HIO:300,ER:100", rng=0, progress=False, starts=3, metric_every=10)
    assert relative_error(r.image, obj) < 0.03  # aligned: translation, twin, global phase


def test_missing_centre_left_free(small_cdi):
    obj, sup, I = small_cdi
    n = I.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2
    mask = (xx ** 2 + yy ** 2) > 2 ** 2  # 13 unmeasured pixels at the centre
    r = reconstruct(np.where(mask, I, 0), sup, mask=mask, schedule="HIO:500,ER:100", real=True, positive=True,
                    rng=0, progress=False, starts=2)
    assert relative_error(r.image, obj) < 0.05


def test_shrinkwrap_from_autocorrelation(small_cdi):
    obj, sup, I = small_cdi
    ac = autocorrelation_support(I, threshold=0.04)
    assert ac[sup].mean() > 0.95  # contains the object
    sw = ShrinkWrap(every=20, sigma_start=2.0, sigma_end=1.0, threshold=0.15)
    r = reconstruct(I, None, schedule="HIO:600,ER:100", real=True, positive=True, shrinkwrap=sw, rng=0,
                    progress=False, starts=2, metric_every=10)
    assert r.support.sum() < ac.sum()
    assert relative_error(r.image, obj) < 0.1


# ---------------------------------------------------------------- driver


def test_best_of_n_and_determinism(small_cdi):
    obj, sup, I = small_cdi
    r1 = reconstruct(I, sup, algorithm="hio", n_iter=30, starts=3, rng=5, real=True, progress=False)
    r2 = reconstruct(I, sup, algorithm="hio", n_iter=30, starts=3, rng=5, real=True, progress=False)
    assert len(r1.images) == 3 and r1.rfactors == sorted(r1.rfactors)
    assert np.array_equal(r1.image, r2.image)
    assert r1.timings["per_iteration_s"] > 0 and "provenance" not in r1.config
    assert r1.provenance["software"] == "phasekit"


def test_callback_can_stop(small_cdi):
    obj, sup, I = small_cdi
    seen = []

    def cb(state):
        seen.append(state.iteration)
        if state.iteration == 7:
            assert state.image().shape == I.shape
            raise StopIteration

    r = reconstruct(I, sup, algorithm="hio", n_iter=50, callback=cb, progress=False)
    assert seen[-1] == 7 and r.message == "stopped by callback" and r.n_iter == 7


def test_checkpoint_resume_gives_same_result(small_cdi, tmp_path):
    obj, sup, I = small_cdi
    ck = tmp_path / "run.ckpt"
    kw = dict(schedule="HIO:40,ER:20", starts=2, rng=3, real=True, positive=True, progress=False)
    full = reconstruct(I, sup, **kw)

    def crash(state):
        if state.start == 1 and state.iteration == 45:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct(I, sup, checkpoint=ck, checkpoint_every=10, callback=crash, **kw)
    assert ck.exists()
    resumed = reconstruct(I, sup, resume=ck, checkpoint=ck, checkpoint_every=10, **kw)
    assert np.allclose(resumed.image, full.image, atol=1e-6)
    assert np.allclose(resumed.rfactors, full.rfactors, rtol=1e-5)
    with pytest.raises(ConfigError, match="different run"):
        reconstruct(I, sup, resume=ck, schedule="HIO:41,ER:20", starts=2, rng=3, progress=False)
    with pytest.raises(ConfigError, match="different run"):  # another seed: not the same run
        reconstruct(I, sup, resume=ck, **{**kw, "rng": 4})
    with pytest.raises(ConfigError, match="different run"):  # other parameters: not the same run
        reconstruct(I, sup, resume=ck, **kw, beta=0.7)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"garbage")
    with pytest.raises(FileFormatError):
        reconstruct(I, sup, resume=bad, **kw)


def test_parse_schedule_forms():
    assert [(s.algorithm, s.n_iter) for s in parse_schedule("HIO:800,ER:200")] == [("hio", 800), ("er", 200)]
    assert [(s.algorithm, s.n_iter) for s in parse_schedule("800*HIO, 200*ER")] == [("hio", 800), ("er", 200)]
    assert [(s.algorithm, s.n_iter) for s in parse_schedule("HIO**5")] == [("hio", 5)]
    st = parse_schedule("(HIO:50,ER:10)*3,ER:5")
    assert len(st) == 7 and st[-1].n_iter == 5
    for bad in ("", "HIO", "HIO:0", "(HIO:5", "HIO:x"):
        with pytest.raises(ConfigError):
            parse_schedule(bad)


# ---------------------------------------------------------------- bad input


def test_bad_inputs(small_cdi):
    obj, sup, I = small_cdi
    with pytest.raises(InputError, match="NaN"):
        bad = I.copy(); bad[3, 3] = np.nan
        reconstruct(bad, sup, n_iter=2, progress=False)
    with pytest.raises(InputError, match="negative"):
        bad = I.copy(); bad[3, 3] = -1
        reconstruct(bad, sup, n_iter=2, progress=False)
    with pytest.raises(InputError, match=r"support shape \(64, 63\) != intensity shape \(64, 64\)"):
        reconstruct(I, sup[:, :63], n_iter=2, progress=False)
    with pytest.raises(InputError, match="mask shape"):
        reconstruct(I, sup, mask=np.ones((3, 3), bool), n_iter=2, progress=False)
    with pytest.raises(InputError, match="support is empty"):
        reconstruct(I, np.zeros_like(sup), n_iter=2, progress=False)
    with pytest.raises(InputError):
        reconstruct(np.ones(5), None, n_iter=2, progress=False)
    with pytest.raises(ConfigError, match="unknown algorithm 'nope'; choose from"):
        reconstruct(I, sup, algorithm="nope", progress=False)
    with pytest.raises(ConfigError, match="beta"):
        reconstruct(I, sup, algorithm="hio", beta=-1, n_iter=2, progress=False)
    with pytest.raises(ConfigError, match="not accepted"):
        reconstruct(I, sup, algorithm="er", beta=0.5, n_iter=2, progress=False)
    with pytest.raises(ConfigError):
        reconstruct(I, sup, algorithm="hio", n_iter=0, progress=False)
    with pytest.raises(ConfigError):
        reconstruct(I, sup, algorithm="hio", n_iter=2, starts=0, progress=False)
    # clip_negative accepts background-subtracted data
    ok = I.copy(); ok[3, 3] = -1
    r = reconstruct(ok, sup, n_iter=2, progress=False, clip_negative=True)
    assert r.success


def test_double_precision_and_numba_off(small_cdi, monkeypatch):
    obj, sup, I = small_cdi
    r = reconstruct(I, sup, algorithm="hio", n_iter=20, precision="double", rng=0, progress=False)
    assert r.image.dtype == np.complex128
    from phasekit.cdi import kernels
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    r2 = reconstruct(I, sup, algorithm="hio", n_iter=20, precision="double", rng=0, progress=False)
    assert np.allclose(r.image, r2.image, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu(small_cdi):
    obj, sup, I = small_cdi
    a = reconstruct(I, sup, schedule="HIO:50,ER:10", rng=0, progress=False, precision="double")
    b = reconstruct(I, sup, schedule="HIO:50,ER:10", rng=0, progress=False, precision="double", device="cuda")
    assert np.allclose(a.image, b.image, atol=1e-8)


def test_result_saves_mask_every_history_and_real_images(small_cdi, tmp_path):
    from phasekit.io import read_result

    obj, sup, I = small_cdi
    mask = np.ones(I.shape, bool)
    mask[30:34, 30:34] = False
    res = reconstruct(I, sup, mask=mask, algorithm="er", n_iter=15, starts=3, rng=1, real=True,
                      progress=False)
    assert not np.iscomplexobj(res.image) and all(not np.iscomplexobj(im) for im in res.images)
    assert np.array_equal(res.mask, mask)
    assert res.timings["per_iteration_total_s"] >= res.timings["per_iteration_s"] > 0
    out = tmp_path / "r.cxi"
    res.save(out)
    back = read_result(out)
    assert len(back["histories"]) == 3
    for h_saved, h in zip(back["histories"], res.histories):
        assert np.allclose(h_saved["R_F"], h["R_F"])
    assert np.array_equal(back["mask"], mask)
    assert np.allclose(back["images"][0], res.image)


# ---------------------------------------------------------------- ER's metrics reuse its transform


@pytest.mark.parametrize("kind", ["complex", "real", "real-complex-path", "positive", "shrinkwrap",
                                  "batched", "batched-real", "batched-by-image"])
def test_er_metrics_reuse_the_next_steps_transform(kind, small_cdi, small_cdi_complex, monkeypatch):
    """ER's R-factor is taken on x_{n+1} = P_C y (the reported estimate, to the bit) and its
    transform is the next step's first FFT: histories and images equal the plain form's (the
    estimate copied and transformed again) to the bit, with one forward FFT per iteration; with
    shrink-wrap moving the support between step and metrics the plain form runs."""
    from phasekit.cdi.base import ProjectionAlgorithm
    from phasekit.cdi.er import ErrorReduction

    _, sup, I = small_cdi_complex if kind == "complex" else small_cdi
    opts = {"complex": {}, "real": {"real": True}, "real-complex-path": {"real": True, "rfft": False},
            "positive": {"real": True, "positive": True},
            "shrinkwrap": {"real": True, "shrinkwrap": {"every": 5}},
            "batched": {"starts": 3, "batch_starts": True},
            "batched-real": {"real": True, "starts": 3, "batch_starts": True},
            "batched-by-image": {"real": True, "starts": 3, "batch_starts": True}}[kind]
    if kind == "batched-by-image":  # as for large CPU images: the batch steps image by image
        import phasekit.cdi.problem as problem_module

        monkeypatch.setattr(problem_module, "BATCH_FFT_MAX_PIXELS", 64)
    calls = {"n": 0}
    fft0, rfft0 = CDIProblem.fft, CDIProblem.rfft_half

    def count(f):
        def wrapped(self, x):
            calls["n"] += 1
            return f(self, x)
        return wrapped

    monkeypatch.setattr(CDIProblem, "fft", count(fft0))
    monkeypatch.setattr(CDIProblem, "rfft_half", count(rfft0))
    runs = {}
    for form in ("reuse", "plain"):
        if form == "plain":
            monkeypatch.setattr(ErrorReduction, "metrics", lambda self: ProjectionAlgorithm.metrics(self))
            monkeypatch.setattr(ErrorReduction, "metrics_batch",
                                lambda self: ProjectionAlgorithm.metrics_batch(self))
        calls["n"] = 0
        runs[form] = (reconstruct(I, sup, algorithm="er", n_iter=30, rng=3, progress=False, **opts), calls["n"])
    (new, n_new), (old, n_old) = runs["reuse"], runs["plain"]
    assert new.histories == old.histories and new.rfactors == old.rfactors
    assert all(np.array_equal(a, b) for a, b in zip(new.images, old.images))
    if kind == "batched-by-image":  # one forward FFT per image and iteration instead of two
        assert new.config["batched_starts"] is True
        assert n_new == n_old - 3 * 30 + 3
    elif kind.startswith("batched"):  # one batched forward FFT per iteration instead of two
        assert new.config["batched_starts"] is True
        assert n_new == n_old - 30 + 1
    elif kind == "shrinkwrap":  # the support moves every 5 iterations: those metrics take the plain form
        assert n_old - 25 <= n_new < n_old - 15
    else:
        assert n_new == n_old - 30 + 1  # one FFT per iteration (and the first step's own)


def test_a_support_above_half_the_array_is_reported(caplog):
    """A given support above half the array (area oversampling ratio below 2, Miao, Sayre &
    Chapman 1998) is reported once when the problem is built; a proper support is not."""
    import logging

    from phasekit.cdi import CDIProblem

    I = np.ones((16, 16))
    with caplog.at_level(logging.WARNING, logger="phasekit"):
        CDIProblem.from_arrays(I, np.ones((16, 16), bool))
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 1 and "covers 100 % of the array" in msgs[0] and "ratio 1.00 < 2" in msgs[0]
    caplog.clear()
    s = np.zeros((16, 16), bool)
    s[4:12, 4:12] = True                      # a quarter: ratio 4
    with caplog.at_level(logging.WARNING, logger="phasekit"):
        CDIProblem.from_arrays(I, s)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
