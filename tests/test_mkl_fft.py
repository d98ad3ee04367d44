"""The direct MKL FFT path (phasekit.core.mkl_fft) against torch.fft, and its fallbacks."""
from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from phasekit.core import fft as F
from phasekit.core import mkl_fft as M

needs_mkl = pytest.mark.skipif(
    not (torch.backends.mkl.is_available() and sys.platform == "linux" and M.available()),
    reason="torch without its MKL FFT on this platform (the direct path falls back to torch.fft)")

CASES = [((12,), 1), ((6, 10), 2), ((3, 6, 10), 2), ((4, 5, 7), 3), ((2, 3, 8, 9), 2),
         ((2, 17, 16), 1)]


def _tol(dtype):
    return (2e-6, 1e-5) if dtype in (torch.complex64, torch.float32) else (1e-13, 1e-12)


def _close(a, b, dtype):
    rtol, atol = _tol(dtype)
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol * float(b.abs().max()))


@needs_mkl
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("shape,nd", CASES)
@pytest.mark.parametrize("norm", ["ortho", "backward", "forward"])
def test_c2c_matches_torch(dtype, shape, nd, norm):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, dtype=dtype, generator=g)
    x0 = x.clone()
    dims = tuple(range(-nd, 0))
    for inverse, ref_fn in ((False, torch.fft.fftn), (True, torch.fft.ifftn)):
        y = M.c2c(x, nd, inverse=inverse, norm=norm)
        assert y is not None and y.dtype == dtype and y.shape == x.shape
        _close(y, ref_fn(x, dim=dims, norm=norm), dtype)
        assert torch.equal(x, x0)  # out of place: the input is untouched


@needs_mkl
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,nd", CASES)
def test_real_transforms_match_torch(dtype, shape, nd):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(shape, dtype=dtype, generator=g)
    dims = tuple(range(-nd, 0))
    h = M.r2c(x, nd)
    ref = torch.fft.rfftn(x, dim=dims, norm="ortho")
    assert h is not None and h.shape == ref.shape
    _close(h, ref, dtype)
    z = ref.clone()
    back = M.c2r(z, shape[-1], nd)
    assert back is not None and back.shape == x.shape and back.dtype == dtype
    _close(back, torch.fft.irfftn(ref, s=shape[-nd:], dim=dims, norm="ortho"), dtype)
    _close(back, x, dtype)
    assert torch.equal(z, ref)  # the half spectrum is left unchanged


@needs_mkl
def test_c2r_of_a_non_hermitian_half_spectrum_is_torchs():
    """irfftw's documented convention (the real part of the Hermitian completion's inverse)
    holds on the direct path too: column 0 and N/2 carry imaginary parts here."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, 5, dtype=torch.complex64, generator=g)
    ref = torch.fft.irfftn(z, s=(6, 8), norm="ortho")
    _close(F.irfftw(z, (6, 8)), ref, torch.complex64)
    _close(F.irfftw(z.clone(), (6, 8), overwrite=True), ref, torch.complex64)


@needs_mkl
def test_out_buffer_and_in_place():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 16, 16, dtype=torch.complex64, generator=g)
    ref = torch.fft.fftn(x, dim=(-2, -1), norm="ortho")
    out = torch.empty_like(x)
    y = F.fftw(x, 2, out=out)
    assert y.data_ptr() == out.data_ptr()
    _close(out, ref, x.dtype)
    w = x.clone()
    y = F.fftw(w, 2, out=w)  # in place
    assert y.data_ptr() == w.data_ptr()
    _close(w, ref, x.dtype)
    y = F.ifftw(w, 2, out=w)
    _close(w, x, x.dtype)


def test_fallbacks_give_torchs_result():
    """Views the direct path must not read raw (conjugated, negated, strided), autograd, real
    input to a complex transform, a partly overlapping ``out``: ``c2c`` declines, and the
    wrappers still give torch's transform."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 8, dtype=torch.complex64, generator=g)
    cases = [x.conj(), torch._neg_view(x), x[:, ::2], x.t()]
    for v in cases:
        assert M.c2c(v, 2, inverse=False) is None
        _close(F.fftw(v, 2), torch.fft.fftn(v.resolve_conj().resolve_neg(), norm="ortho"), x.dtype)
    assert M.c2c(x.real.contiguous(), 2, inverse=False) is None
    assert M.c2c(x, 2, inverse=False, norm="nonsense") is None
    assert M.c2c(x, 3, inverse=False) is None
    big = torch.zeros(80, dtype=torch.complex64)
    assert M.c2c(big[:64].view(8, 8), 2, inverse=False, out=big[16:].view(8, 8)) is None
    # autograd through the wrapper: torch's path and torch's gradient
    a = x.clone().requires_grad_(True)
    assert M.c2c(a, 2, inverse=False) is None
    (F.fftw(a, 2).abs() ** 2).sum().backward()
    b = x.clone().requires_grad_(True)
    (torch.fft.fftn(b, norm="ortho").abs() ** 2).sum().backward()
    _close(a.grad, b.grad, x.dtype)


def test_switched_off():
    x = torch.ones(4, 4, dtype=torch.complex64)
    with M.use_direct(False):
        assert not M.available()
        assert M.c2c(x, 2, inverse=False) is None
        assert float(F.fftw(x)[0, 0].real) == 4.0
    env = {**os.environ, M.ENV: "0"}
    code = "from phasekit.core import mkl_fft as m; print(m.enabled(), m.available())"
    out = subprocess.run([sys.executable, "-c", code],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_failed_self_test_falls_back_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(M._state, "ok", None)
    monkeypatch.setitem(M._state, "on", True)
    monkeypatch.setattr(M, "_self_test", lambda: False)
    if not torch.backends.mkl.is_available():
        pytest.skip("torch without MKL: no self-test to fail")
    with caplog.at_level("WARNING", logger="phasekit"):
        ok = M.available()
    if M._state["lib"] is None:  # no library here: nothing was tested
        assert not ok
        return
    assert not ok and "disagrees with torch.fft" in caplog.text
    x = torch.randn(4, 4, dtype=torch.complex64)
    assert M.c2c(x, 2, inverse=False) is None
    _close(F.fftw(x), torch.fft.fftn(x, norm="ortho"), x.dtype)


@needs_mkl
def test_thread_count_and_cache_bound():
    x = torch.randn(2, 32, 32, dtype=torch.complex64, generator=torch.Generator().manual_seed(6))
    ref = torch.fft.fftn(x, dim=(-2, -1), norm="ortho")
    n0 = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            _close(M.c2c(x, 2, inverse=False), ref, x.dtype)
    finally:
        torch.set_num_threads(n0)
    for n in range(8, 8 + M.CACHE_SIZE + 6):  # more shapes than the cache holds
        y = torch.ones(n, dtype=torch.complex64)
        assert abs(complex(M.c2c(y, 1, inverse=False, norm="backward")[0]) - n) < 1e-3
    assert len(M._local.cache) <= M.CACHE_SIZE


@needs_mkl
def test_threads_use_their_own_descriptors():
    g = torch.Generator().manual_seed(7)
    xs = [torch.randn(3, n, n, dtype=torch.complex64, generator=g) for n in (16, 24, 16, 40)]
    refs = [torch.fft.fftn(x, dim=(-2, -1), norm="ortho") for x in xs]
    errors = []

    def work(i):
        for _ in range(50):
            y = F.fftw(xs[i], 2)
            if not torch.allclose(y, refs[i], atol=1e-4):
                errors.append(i)
                return

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


@needs_mkl
def test_a_finished_threads_descriptors_are_freed():
    """Plans die with their thread's cache and free their descriptors (no leak in a process that
    runs many short-lived threads); an evicted plan is freed once."""
    import gc

    freed = []
    orig = M._Plan.release

    def counting(self):
        freed.append(len(self.handles))
        orig(self)

    M._Plan.release = counting
    try:
        def work():
            F.fftw(torch.ones(2, 12, 12, dtype=torch.complex64), 2)
            F.irfftw(F.rfftw(torch.ones(6, 10)), (6, 10))

        t = threading.Thread(target=work)
        t.start()
        t.join()
        del t
        gc.collect()
    finally:
        M._Plan.release = orig
    assert sum(freed) >= 4  # c2c (1) + r2c (1) + c2r (2)


def _child(q):
    x = torch.ones(8, 8, dtype=torch.complex64)
    q.put(float(F.fftw(x)[0, 0].real))


@needs_mkl
def test_forked_child_builds_its_own_descriptors():
    """A child forked after MKL ran on two threads: its transforms run (on one thread; MKL's
    OpenMP pool does not survive the fork and a two-thread transform there never returned)."""
    n0 = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        F.fftw(torch.ones(2, 64, 64, dtype=torch.complex64), 2)  # MKL's pool in use
        F.fftw(torch.ones(8, 8, dtype=torch.complex64))  # the parent's cache holds this shape
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(q,))
        p.start()
        p.join(60)
        if p.exitcode is None:
            p.kill()
        assert p.exitcode == 0 and q.get(timeout=5) == 8.0
    finally:
        torch.set_num_threads(n0)


@needs_mkl
def test_reconstructions_agree_with_the_torch_path():
    """HIO (complex and real object, real FFT pair) and an ePIE sweep give the same results with
    the direct path as through torch.fft (within float32 rounding over a short run)."""
    from phasekit.cdi import CDIProblem, reconstruct
    from phasekit.ptycho import PtychoProblem
    from phasekit.ptycho import engines as E
    from phasekit.ptycho.sim import forward_intensities

    rng = np.random.default_rng(0)
    obj = np.zeros((64, 64))
    obj[16:48, 16:48] = rng.random((32, 32))
    I = np.abs(np.fft.fftshift(np.fft.fft2(obj, norm="ortho"))) ** 2
    s = np.zeros((64, 64), bool)
    s[14:50, 14:50] = True
    for real in (False, True):
        p = CDIProblem.from_arrays(I.astype(np.float32), s, real=real)
        a = reconstruct(p, algorithm="hio", n_iter=15, rng=0)
        with M.use_direct(False):
            b = reconstruct(p, algorithm="hio", n_iter=15, rng=0)
        np.testing.assert_allclose(a.history["R_F"], b.history["R_F"], rtol=1e-4)
        np.testing.assert_allclose(a.image, b.image, atol=1e-4 * np.abs(b.image).max())

    yy, xx = np.mgrid[-16:16, -16:16]
    probe = np.exp(-(yy ** 2 + xx ** 2) / 60.0).astype(np.complex64)
    o = (0.6 + 0.4 * rng.random((80, 80))) * np.exp(1j * rng.random((80, 80)))
    pos = np.array([(y, x) for y in range(0, 48, 8) for x in range(0, 48, 8)], float)
    frames = forward_intensities(o.astype(np.complex64), probe, pos.astype(int)).astype(np.float32)
    prob = PtychoProblem.from_arrays(frames, pos, object_shape=(80, 80))
    out = []
    for direct in (True, False):
        with M.use_direct(direct):
            alg = E.EPIE(prob, 3)
            alg.bind_rng(np.random.default_rng(0))
            alg.initialize(prob.random_start())
            for k in range(3):
                alg.step(k)
            out.append((alg.O.clone(), alg._last["R_F"]))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-4, atol=1e-5)
    assert abs(out[0][1] - out[1][1]) <= 1e-5 * abs(out[1][1])


def test_provenance_names_the_fft_path():
    from phasekit.engine.result import provenance

    assert provenance()["fft"] == ("mkl (direct)" if M.available() else "torch.fft")
    assert provenance(device="cuda:0")["fft"] == "torch.fft"
    with M.use_direct(False):
        assert provenance()["fft"] == "torch.fft"


@pytest.mark.parametrize("direct", [True, False])
def test_prepared_transforms_follow_their_buffers(direct):
    """core.fft.prepare: run() transforms the buffer's current contents into ``out`` (or in
    place), on the direct path and through torch.fft alike."""
    g = torch.Generator().manual_seed(8)
    with M.use_direct(direct):
        x = torch.randn(2, 16, 16, dtype=torch.complex64, generator=g)
        buf = torch.empty_like(x)
        fwd = F.prepare(x, buf, 2)
        inv = F.prepare(buf, buf, 2, inverse=True)
        for _ in range(3):
            x.copy_(torch.randn(x.shape, dtype=x.dtype, generator=g))
            y = fwd()
            assert y.data_ptr() == buf.data_ptr()
            _close(buf, torch.fft.fftn(x, dim=(-2, -1), norm="ortho"), x.dtype)
            inv()
            _close(buf, x, x.dtype)
        if direct and M.available():
            assert M.prepare_c2c(x, 2, inverse=False, out=buf) is not None
        # a strided buffer or a partly overlapping output: no direct transform, the same result
        assert M.prepare_c2c(x[:, ::2], 2, inverse=False, out=buf[:, ::2]) is None
        fwd2 = F.prepare(x[:, ::2], buf[:, ::2], 2)
        fwd2()
        _close(buf[:, ::2], torch.fft.fftn(x[:, ::2], dim=(-2, -1), norm="ortho"), x.dtype)


@needs_mkl
def test_a_descriptor_mkl_declines_falls_back_to_torch(monkeypatch):
    def refuse(*a, **k):
        raise RuntimeError("MKL DFTI commit failed (status 1)")

    monkeypatch.setattr(M, "_make", refuse)
    x = torch.randn(3, 13, 11, dtype=torch.complex64, generator=torch.Generator().manual_seed(9))
    assert M.c2c(x, 2, inverse=False) is None
    _close(F.fftw(x, 2), torch.fft.fftn(x, dim=(-2, -1), norm="ortho"), x.dtype)
