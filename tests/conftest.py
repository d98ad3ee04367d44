import numpy as np
import pytest

import phasekit  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, docs/conventions.md)
import torch

# two threads, not pinned: runs through the driver take one thread when their operations are
# small (phasekit.core.threads), as a user's default run does; two pytest-xdist workers with two
# threads each would otherwise wait on each other's cores (a 64^2 test 57 s instead of 1.7 s)
torch.set_num_threads(2)


def _smooth_object(n=64, seed=0, complex_valued=False):
    """A small compact, non-centrosymmetric object centred in an n x n array."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = n / 7
    m = (xx / r) ** 2 + ((yy - 0.3 * xx) / (0.7 * r)) ** 2 < 1
    m |= ((xx - r * 0.8) ** 2 + (yy + r * 0.6) ** 2) < (r * 0.45) ** 2
    obj = np.zeros((n, n))
    obj[m] = 0.6 + 0.4 * rng.random(m.sum())
    obj = gaussian_filter(obj, 0.8)
    obj[obj < 0.03] = 0
    if complex_valued:
        phase = gaussian_filter(rng.standard_normal((n, n)), 3)
        phase = 1.5 * phase / np.abs(phase).max()
        obj = obj * np.exp(1j * phase)
    support = gaussian_filter((np.abs(obj) > 0).astype(float), 1.5) > 0.02
    return obj, support


def _pattern(obj):
    F = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj), norm="ortho"))
    return np.abs(F) ** 2


@pytest.fixture(scope="session")
def small_cdi():
    obj, sup = _smooth_object(64, 0)
    return obj, sup, _pattern(obj)


@pytest.fixture(scope="session")
def small_cdi_complex():
    obj, sup = _smooth_object(64, 1, complex_valued=True)
    return obj, sup, _pattern(obj)
