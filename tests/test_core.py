import numpy as np
import pytest
import torch

from phasekit.core import (InputError, as_tensor, complex_dtype, fftc, from_work, ifftc,
                           make_rng, real_dtype, resolve_device, spawn_rngs, to_numpy, to_work)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (4, 5, 6)])
def test_fftc_matches_numpy_centred_unitary(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    ref = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x), norm="ortho"))
    got = to_numpy(fftc(torch.as_tensor(x)))
    assert np.allclose(got, ref, atol=1e-12)
    back = to_numpy(ifftc(fftc(torch.as_tensor(x))))
    assert np.allclose(back, x, atol=1e-12)
    # Parseval (unitary)
    assert np.isclose(np.sum(np.abs(got) ** 2), np.sum(np.abs(x) ** 2))


def test_centre_index_is_n_over_2():
    for n in (8, 9):
        delta = torch.zeros(n, n, dtype=torch.complex128)
        delta[n // 2, n // 2] = 1
        F = to_numpy(fftc(delta))
        assert np.allclose(F, 1 / n)  # a centred delta has a flat, real spectrum
        const = torch.ones(n, n, dtype=torch.complex128)
        G = to_numpy(fftc(const))
        assert np.isclose(abs(G[n // 2, n // 2]), n) and np.allclose(np.delete(G.ravel(), (n // 2) * n + n // 2), 0)


def test_work_layout_round_trip():
    x = torch.arange(30.0).reshape(5, 6)
    assert torch.equal(from_work(to_work(x)), x)
    assert to_work(x)[0, 0] == x[2, 3]


def test_device_policy():
    assert resolve_device(None).type == "cpu"
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")
    assert complex_dtype() == torch.complex64 and real_dtype() == torch.float32
    assert complex_dtype("double") == torch.complex128
    with pytest.raises(InputError):
        complex_dtype("half")
    t = as_tensor(np.ones(3, np.float32))
    assert t.dtype == torch.float32 and isinstance(to_numpy(t), np.ndarray)


def test_rng_policy():
    a = make_rng(3).random(4)
    b = make_rng(3).random(4)
    assert np.array_equal(a, b)
    g = np.random.default_rng(1)
    assert make_rng(g) is g
    kids = spawn_rngs(0, 3)
    vals = [k.random() for k in kids]
    assert len(set(vals)) == 3
    assert [k.random() for k in spawn_rngs(0, 3)] != vals or True
    assert np.allclose([k.random() for k in spawn_rngs(0, 3)], vals)
    with pytest.raises(InputError):
        make_rng("seed")
    with pytest.raises(InputError):
        make_rng(-1)
