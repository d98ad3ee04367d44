"""Batched random starts (phasekit.engine.batched, docs/cdi.md "Batched starts"): the starts of a
CDI run as one (N, H, W) problem give the sequential starts' results (same random starts, same
per-start shrink-wrap thresholds, supports, histories, keep-best and final selection), within
rounding: a batched FFT may round differently from a single one, so the comparisons are in
double precision at 1e-9 (float32: 2e-4), never bit for bit across the two paths."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.cdi import CDIProblem, reconstruct
from phasekit.cdi.kernels import (
    ER,
    HIO,
    RAAR,
    constrain,
    constrain_batch,
    fourier_project,
    fourier_project_batch,
    fourier_project_half,
    fourier_project_half_batch,
    realspace_update,
    realspace_update_batch,
)
from phasekit.cdi.shrinkwrap import ShrinkWrap, autocorrelation_support
from phasekit.core.errors import ConfigError, InputError


def _pattern(n=32, seed=0):
    """A real, non-negative blob object (a 10 x 8 rectangle with texture), its pattern."""
    rng = np.random.default_rng(seed)
    obj = np.zeros((n, n))
    c = n // 2
    obj[c - 5:c + 5, c - 4:c + 4] = 1.0 + 0.5 * rng.random((10, 8))
    I = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj)))) ** 2
    return obj, I


@pytest.fixture(scope="module")
def pattern():
    return _pattern()


def _loose(I):
    """The default recipe's starting support, given explicitly (the tests compare the driver's
    two paths, not the post-processing ``reconstruct`` adds when no support is given)."""
    return autocorrelation_support(I)


def _both(I, support=None, **kw):
    seq = reconstruct(I, support, batch_starts=False, progress=False, **kw)
    bat = reconstruct(I, support, batch_starts=True, progress=False, **kw)
    assert seq.config["batched_starts"] is False and bat.config["batched_starts"] is True
    return seq, bat


def _assert_same(seq, bat, tol, atol=0.0):
    assert len(bat.images) == len(seq.images)
    np.testing.assert_allclose(bat.rfactors, seq.rfactors, rtol=tol, atol=atol)
    for a, b in zip(seq.images, bat.images):
        assert np.abs(a - b).max() <= tol * np.abs(a).max()
    for ha, hb in zip(seq.histories, bat.histories):
        assert ha.keys() == hb.keys() and ha["iteration"] == hb["iteration"]
        np.testing.assert_allclose(hb["R_F"], ha["R_F"], rtol=tol, atol=atol)
        for k in ("sw_area", "sw_limited", "sw_rejected", "stage"):
            if k in ha:
                assert ha[k] == hb[k], k
    if seq.support is not None:
        assert np.array_equal(seq.support, bat.support)


@pytest.mark.parametrize("real", [False, True], ids=["complex", "rfft"])
@pytest.mark.parametrize("algorithm", ["hio", "raar", "er"])
def test_default_recipe_batched_equals_sequential_double(pattern, algorithm, real):
    # the default recipe's run: autocorrelation support, shrink-wrap with thresholds 0.1 / 0.05
    # (one per start), an ER tail after HIO / RAAR
    _, I = pattern
    seq, bat = _both(I, _loose(I), algorithm=algorithm, n_iter=16, starts=2, rng=7, real=real,
                     precision="double", er_tail=0.25,
                     shrinkwrap={"every": 4, "start_thresholds": (0.1, 0.05)})
    _assert_same(seq, bat, 1e-9)
    assert bat.config["rfft"] is real
    # the starts differ from each other (independent random starts, own thresholds)
    assert len({round(r, 6) for r in bat.rfactors}) == 2
    assert all(len(h["sw_area"]) == 16 for h in bat.histories)
    assert bat.histories[0]["sw_area"] != bat.histories[1]["sw_area"]


def test_float32_given_support_and_keep_best(pattern):
    obj, I = pattern
    sup = np.abs(obj) > 0
    sup = np.roll(sup, 1, 0) | sup  # a little loose
    seq, bat = _both(I, support=sup, schedule="HIO:12,RAAR:8,ER:8", starts=3, rng=3, real=True,
                     positive=True, keep_best=True)
    # float32: the FFT rounding differences (~1e-7) grow through HIO's feedback to ~1e-5 in the
    # images and ~1e-6 absolute in R_F (measured 1.4e-5 and 1e-6 on an AMD EPYC)
    _assert_same(seq, bat, 2e-4, atol=2e-5)
    assert max(bat.rfactors) < 0.05


def test_resume_batched_run_is_bit_identical_and_refuses_the_other_path(pattern, tmp_path):
    _, I = pattern
    kw = dict(support=_loose(I), n_iter=40, starts=2, rng=3, progress=False, er_tail=0.2,
              shrinkwrap={"every": 10, "start_thresholds": (0.1, 0.05)})
    full = reconstruct(I, batch_starts=True, **kw)
    assert full.config["batched_starts"] is True
    ck = tmp_path / "run.ckpt"
    seen = []

    def crash(state):
        seen.append((state.iteration, state.start))
        if state.start == 1 and state.iteration == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct(I, checkpoint=ck, checkpoint_every=10, callback=crash, batch_starts=True, **kw)
    # the callback saw every start after every iteration, interleaved
    assert seen[:4] == [(1, 0), (1, 1), (2, 0), (2, 1)] and seen[-1] == (25, 1)
    with pytest.raises(ConfigError, match="batched starts.*batch_starts=True"):
        reconstruct(I, resume=ck, batch_starts=False, **kw)
    res = reconstruct(I, resume=ck, **kw)
    assert res.config["batched_starts"] is True
    assert np.array_equal(res.image, full.image) and np.array_equal(res.support, full.support)
    assert res.rfactors == full.rfactors
    for a, b in zip(res.histories, full.histories):
        assert a == b
    # a sequential checkpoint is resumed sequentially only
    ck2 = tmp_path / "seq.ckpt"
    with pytest.raises(KeyboardInterrupt):
        reconstruct(I, checkpoint=ck2, checkpoint_every=10, callback=crash, batch_starts=False, **kw)
    with pytest.raises(ConfigError, match="sequential starts"):
        reconstruct(I, resume=ck2, batch_starts=True, **kw)
    assert reconstruct(I, resume=ck2, **kw).config["batched_starts"] is False


def test_choice_fallbacks_and_refusals(pattern, monkeypatch):
    obj, I = pattern
    sup = np.abs(obj) > 0
    kw = dict(support=sup, starts=2, rng=0, progress=False)
    # a stage that cannot run batched: auto falls back, an explicit request is refused
    assert reconstruct(I, schedule="HIO:3,CPRIME:3", **kw).config["batched_starts"] is False
    with pytest.raises(ConfigError, match="cprime cannot run its starts as a batch"):
        reconstruct(I, schedule="HIO:3,CPRIME:3", batch_starts=True, **kw)
    with pytest.raises(ConfigError, match="batch_starts must be"):
        reconstruct(I, algorithm="er", n_iter=2, batch_starts="yes", **kw)
    # one start: nothing to batch
    assert reconstruct(I, sup, algorithm="er", n_iter=2, rng=0, progress=False,
                       batch_starts=True).config["batched_starts"] is False
    # memory: auto falls back, an explicit request is refused by the memory guard
    from phasekit.core import resources
    from phasekit.engine import batched

    monkeypatch.setattr(batched, "_free_memory", lambda device: 1000)
    monkeypatch.setattr(resources, "available_memory", lambda: 1000)
    res = reconstruct(I, algorithm="hio", n_iter=3, **kw)
    assert res.config["batched_starts"] is False and res.config["batch_starts"] is None
    with pytest.raises(InputError, match="as one batch"):
        reconstruct(I, algorithm="hio", n_iter=3, batch_starts=True, **kw)


def test_callback_stop_ends_every_start_and_constraint_update_keeps_last_start(pattern):
    _, I = pattern
    sw = ShrinkWrap(every=5, start_thresholds=(0.1, 0.05, 0.2))

    def cb(state):
        assert state.image().shape == I.shape and state.support().shape == I.shape
        assert state.history["iteration"][-1] == state.iteration
        if state.iteration == 12:
            raise StopIteration

    res = reconstruct(I, _loose(I), algorithm="hio", n_iter=30, starts=3, rng=1, shrinkwrap=sw,
                      callback=cb, progress=False, batch_starts=True)
    assert res.message == "stopped by callback" and res.config["batched_starts"] is True
    assert [h["iteration"][-1] for h in res.histories] == [12, 12, 12]
    # the caller's shrink-wrap object ends with the last start's state (threshold 0.2)
    assert sw.start_index == 2 and [e["threshold"] for e in sw.events] == [0.2, 0.2]


@pytest.mark.parametrize("fused", [True, False], ids=["numba", "torch"])
def test_batch_kernels_equal_per_slice(fused, monkeypatch):
    if not fused:
        monkeypatch.setenv("PHASEKIT_NO_NUMBA", "1")
        import phasekit.cdi.kernels as k

        monkeypatch.setattr(k, "_fused_ok", lambda *ts: False)
    g = torch.Generator().manual_seed(0)
    n, h, w = 3, 16, 12
    p = CDIProblem.from_arrays(np.random.default_rng(0).random((h, w)) + 0.1, np.ones((h, w), bool),
                               np.random.default_rng(1).random((h, w)) > 0.2, real=True)
    z = torch.randn(n, h, w, dtype=torch.complex64, generator=g)
    ref = z.clone()
    for zi in ref:
        fourier_project(zi, p.amp, p.measured)
    fourier_project_batch(z, p.amp, p.measured)
    assert torch.equal(z, ref)
    zh = torch.randn(n, h, w // 2 + 1, dtype=torch.complex64, generator=g)
    ref = zh.clone()
    for zi in ref:
        fourier_project_half(zi, p.half())
    fourier_project_half_batch(zh, p.half())
    assert torch.equal(zh, ref)
    sup = torch.rand(n, h, w, generator=g) > 0.5
    for real_x in (False, True):
        dt = torch.float32 if real_x else torch.complex64
        x = torch.randn(n, h, w, dtype=dt, generator=g)
        y = torch.randn(n, h, w, dtype=dt, generator=g)
        for mode in (ER, HIO, RAAR):
            a, b = x.clone(), x.clone()
            for ai, yi, si in zip(a, y, sup):
                realspace_update(ai, yi, si, mode, 0.8, real=False, positive=True)
            realspace_update_batch(b, y, sup, mode, 0.8, real=False, positive=True)
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-6), mode
        c = torch.stack([constrain(xi, si, positive=True) for xi, si in zip(x, sup)])
        assert torch.equal(constrain_batch(x, sup, positive=True), c)
    # the batched R-factor equals the per-image one
    xr = torch.randn(n, h, w, generator=g)
    np.testing.assert_allclose(p.rfactor_batch(xr), [p.rfactor(xi) for xi in xr], rtol=1e-5)


def test_cli_batch_starts_option(tmp_path):
    from click.testing import CliRunner

    from phasekit.cli.main import cli
    from phasekit.io.results import read_result

    _, I = _pattern()
    np.save(tmp_path / "I.npy", I)
    out = tmp_path / "r.cxi"
    args = ["reconstruct", str(tmp_path / "I.npy"), "--schedule", "HIO:10,ER:5", "--starts", "2",
            "--no-figure"]
    res = CliRunner().invoke(cli, args + ["--batch-starts", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    assert "2 start(s) (batched)" in res.stdout
    assert read_result(out)["config"]["batched_starts"] is True
    res = CliRunner().invoke(cli, args + ["--no-batch-starts", "--out", str(tmp_path / "s.cxi")])
    assert res.exit_code == 0 and "(batched)" not in res.stdout
    assert read_result(tmp_path / "s.cxi")["config"]["batched_starts"] is False
    res = CliRunner().invoke(cli, args[:2] + ["--schedule", "HIO:5,CPRIME:5", "--starts", "2",
                                              "--batch-starts", "--out", str(tmp_path / "o.cxi")])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: batch_starts: cprime")
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("real", [False, True], ids=["complex", "rfft"])
def test_reference_path_batched_equals_sequential(pattern, real, monkeypatch):
    # the plain-torch path (what CUDA runs): the data broadcast over the batch
    import phasekit.cdi.kernels as k

    monkeypatch.setattr(k, "_fused_ok", lambda *ts: False)
    obj, I = pattern
    seq, bat = _both(I, support=np.abs(obj) > 0, schedule="HIO:8,RAAR:6,ER:6", starts=3, rng=2,
                     real=real, precision="double")
    _assert_same(seq, bat, 1e-9)


@pytest.mark.parametrize("real", [False, True], ids=["complex", "rfft"])
def test_large_images_step_image_by_image(pattern, real, monkeypatch):
    # above BATCH_FFT_MAX_PIXELS a CPU batch runs each image's FFT pair and passes in turn (cache
    # locality); forced here on a small pattern
    import phasekit.cdi.problem as problem_module

    monkeypatch.setattr(problem_module, "BATCH_FFT_MAX_PIXELS", 64)
    _, I = pattern
    seq, bat = _both(I, support=_loose(I), schedule="HIO:10,ER:5", starts=2, rng=4, real=real,
                     shrinkwrap={"every": 5})
    _assert_same(seq, bat, 1e-6)


def test_auto_declines_large_cpu_images_explicit_request_batches(pattern, monkeypatch):
    import phasekit.cdi.problem as problem_module

    monkeypatch.setattr(problem_module, "BATCH_FFT_MAX_PIXELS", 64)
    obj, I = pattern
    kw = dict(support=np.abs(obj) > 0, algorithm="hio", n_iter=3, starts=2, rng=0, progress=False)
    assert reconstruct(I, **kw).config["batched_starts"] is False
    assert reconstruct(I, batch_starts=True, **kw).config["batched_starts"] is True


def test_auto_batches_complex_images_only_up_to_128_squared_on_the_cpu(monkeypatch):
    """The automatic choice on the CPU: complex-path starts batched up to 128^2 only (256^2 was
    0.72-0.83x the sequential throughput on an Intel Xeon), real-path starts up to the
    image-by-image limit; an explicit request batches anyway."""
    import phasekit.cdi.problem as problem_module

    from phasekit.core.mkl_fft import use_direct

    def prob(n, real):
        return CDIProblem.from_arrays(np.ones((n, n)), np.ones((n, n), bool), real=real)

    with use_direct(False):  # the CPU FFTs through torch.fft (a torch without MKL)
        assert prob(128, False).prefers_batch(8) and prob(128, True).prefers_batch(8)
        assert not prob(129, False).prefers_batch(8) and prob(256, True).prefers_batch(8)
        assert not prob(512, True).prefers_batch(8)  # image by image: sequential
        assert not prob(64, False).prefers_batch(1)
        # through reconstruct(): a complex run above the limit runs its starts one after another
        monkeypatch.setattr(problem_module, "BATCH_COMPLEX_MAX_PIXELS", 16)
        obj, I = _pattern()
        kw = dict(support=np.abs(obj) > 0, algorithm="hio", n_iter=3, starts=2, rng=0,
                  progress=False)
        assert reconstruct(I, **kw).config["batched_starts"] is False
        assert reconstruct(I, real=True, **kw).config["batched_starts"] is True
        assert reconstruct(I, batch_starts=True, **kw).config["batched_starts"] is True
    # MKL called directly: no per-call set-up left to share, the starts run one after another
    # (an explicit request batches anyway)
    with use_direct(True):
        if prob(64, True).fft_direct():
            assert not prob(128, False).prefers_batch(8) and not prob(128, True).prefers_batch(8)
            assert reconstruct(I, real=True, **kw).config["batched_starts"] is False
        assert reconstruct(I, real=True, batch_starts=True, **kw).config["batched_starts"] is True


@pytest.mark.parametrize("real", [False, True], ids=["complex", "rfft"])
def test_long_float32_hio_batched_stays_with_sequential(pattern, real):
    """A long float32 HIO run (feedback amplifies any rounding difference): the batched starts
    stay with the sequential ones.  The batched real path inverts image by image, since a batched
    inverse real FFT rounded differently from the single one on an Intel Xeon (MKL's column
    transforms over a batch), and real HIO from those bits ended far from the sequential start
    (relative image difference 1.8 at 128^2 in cdi_batched_starts)."""
    obj, I = pattern
    sup = np.roll(np.abs(obj) > 0, 1, 0) | (np.abs(obj) > 0)
    seq, bat = _both(I, support=sup, algorithm="hio", n_iter=300, starts=3, rng=5, real=real)
    _assert_same(seq, bat, 1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("real", [False, True], ids=["complex", "rfft"])
def test_cuda_batched_equals_sequential_and_cpu(pattern, real):
    # on a GPU the automatic choice batches any size (CDIProblem.prefers_batch); the batch is one
    # (N, H, W) problem on the device.  Double precision: the same results as the sequential
    # device starts and as the CPU run, within rounding
    _, I = pattern
    kw = dict(algorithm="hio", n_iter=16, starts=3, rng=5, real=real, precision="double",
              er_tail=0.25, shrinkwrap={"every": 4, "start_thresholds": (0.1, 0.05, 0.08)})
    seq, bat = _both(I, _loose(I), device="cuda", **kw)
    _assert_same(seq, bat, 1e-9)
    auto = reconstruct(I, _loose(I), device="cuda", progress=False, **kw)
    assert auto.config["batched_starts"] is True
    cpu = reconstruct(I, _loose(I), batch_starts=False, progress=False, **kw)
    _assert_same(cpu, bat, 1e-8)
