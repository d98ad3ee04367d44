"""Tests for phasekit.metrics."""
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from phasekit.core.errors import ConfigError, InputError
from phasekit.metrics import (
    align,
    frc,
    frc_threshold_crossing,
    fsc,
    prtf,
    r_real,
    register_translation,
    relative_error,
    residual_map,
    rfactor,
    rfactor_image,
    ring_average,
    shift_image,
    twin_image,
)


def fftc(x):
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x), norm="ortho"))


def smooth_complex(shape, sigma=3.0, seed=0):
    rng = np.random.default_rng(seed)
    re = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    im = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    x = re + 1j * im
    return x / np.abs(x).max()


def blob_object(n=64, seed=1):
    """Real, non-negative, non-centrosymmetric object inside a small support (oversampled)."""
    rng = np.random.default_rng(seed)
    u = np.zeros((n, n))
    c = n // 2
    patch = gaussian_filter(rng.random((20, 20)), 1.5)
    u[c - 12:c + 8, c - 9:c + 11] = patch
    u[c - 12:c - 4, c - 9:c - 3] += 0.5  # break symmetry
    return u


# ------------------------------------------------------------------ R-factor
def test_rfactor_truth_zero_and_scaled():
    u = blob_object()
    intensity = np.abs(fftc(u)) ** 2
    b = np.sqrt(intensity)
    assert rfactor(b, b) == 0.0
    assert rfactor_image(u, intensity) == pytest.approx(0.0, abs=1e-12)
    assert rfactor(1.1 * b, b) == pytest.approx(0.1, rel=1e-12)
    assert rfactor_image(0.8 * u, intensity) == pytest.approx(0.2, rel=1e-10)
    # complex amplitudes: modulus taken; global phase is irrelevant
    assert rfactor(fftc(u) * np.exp(0.7j), b) == pytest.approx(0.0, abs=1e-12)
    # mask excludes pixels: corrupt the centre, mask it out
    mask = np.ones(b.shape, dtype=bool)
    mask[30:35, 30:35] = False
    bad = b.copy()
    bad[30:35, 30:35] = 0.0
    assert rfactor(bad, b, mask) == pytest.approx(0.0, abs=1e-15)
    assert rfactor(bad, b) > 0.0


def test_rfactor_known_value_and_residual_map():
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    a = np.array([[1.5, 2.0], [2.0, 4.0]])
    assert rfactor(a, b) == pytest.approx(1.5 / 10.0)
    m = np.array([[True, True], [False, True]])
    assert rfactor(a, b, m) == pytest.approx(0.5 / 7.0)
    u = blob_object()
    intensity = np.abs(fftc(u)) ** 2
    mask = np.ones(u.shape, dtype=bool)
    mask[31:34, 31:34] = False
    res = residual_map(0.9 * u, intensity, mask)
    assert res.shape == u.shape
    assert np.all(res[~mask] == 0)
    np.testing.assert_allclose(res[mask], 0.1 * np.sqrt(intensity[mask]), rtol=1e-9, atol=1e-12)
    assert res[mask].sum() / np.sqrt(intensity[mask]).sum() == pytest.approx(
        rfactor_image(0.9 * u, intensity, mask))


def test_torch_inputs_accepted():
    u = blob_object()
    intensity = np.abs(fftc(u)) ** 2
    val = rfactor_image(torch.from_numpy(u), torch.from_numpy(intensity))
    assert val == pytest.approx(0.0, abs=1e-12)
    assert isinstance(val, float)


# ------------------------------------------------------------------ shift / twin / registration
def test_shift_image_integer_matches_roll_and_roundtrip():
    x = smooth_complex((32, 40))
    np.testing.assert_allclose(shift_image(x, (3, -5)), np.roll(x, (3, -5), axis=(0, 1)))
    y = shift_image(shift_image(x, (1.3, -0.45)), (-1.3, 0.45))
    np.testing.assert_allclose(y, x, atol=1e-12)
    r = shift_image(x.real, (0.5, 0.25))
    assert not np.iscomplexobj(r)


@pytest.mark.parametrize("shape", [(32, 32), (33, 31), (8, 9, 10)])
def test_twin_image_conjugates_fourier_transform(shape):
    x = smooth_complex(shape, sigma=1.0)
    np.testing.assert_allclose(fftc(twin_image(x)), np.conj(fftc(x)), atol=1e-12)
    # centre index N//2 maps to itself; c+k -> c-k
    n0 = shape[0]
    c = tuple(n // 2 for n in shape)
    t = twin_image(x)
    assert t[c] == np.conj(x[c])
    k = (c[0] + 2,) + c[1:]
    km = ((c[0] - 2) % n0,) + c[1:]
    assert t[k] == np.conj(x[km])
    np.testing.assert_allclose(twin_image(twin_image(x)), x)


@pytest.mark.parametrize("true_shift", [(3.0, -7.0), (2.35, -1.6), (-4.123, 0.77)])
def test_register_translation_2d(true_shift):
    ref = smooth_complex((64, 64), sigma=2.5, seed=3)
    moving = shift_image(ref, true_shift)  # moving(r) = ref(r - s)
    up = 20
    est = register_translation(ref, moving, upsample=up)
    np.testing.assert_allclose(est, -np.asarray(true_shift), atol=1.0 / up + 1e-9)
    # global phase does not matter
    est2 = register_translation(ref, moving * np.exp(1.2j), upsample=up)
    np.testing.assert_allclose(est2, est)


def test_register_translation_3d_and_integer():
    ref = gaussian_filter(np.random.default_rng(4).standard_normal((24, 24, 24)), 2.0,
                          mode="wrap")
    s = np.array([1.25, -2.5, 3.7])
    moving = shift_image(ref, s)
    est = register_translation(ref, moving, upsample=10)
    np.testing.assert_allclose(est, -s, atol=0.1 + 1e-9)
    est_int = register_translation(ref, np.roll(ref, (2, -3, 5), axis=(0, 1, 2)), upsample=1)
    np.testing.assert_array_equal(est_int, [-2, 3, -5])


# ------------------------------------------------------------------ alignment
def test_align_undoes_integer_shift_phase_twin():
    x = smooth_complex((64, 64), sigma=3.0, seed=5)
    est = np.exp(1.1j) * twin_image(np.roll(x, (5, -9), axis=(0, 1)))
    aligned, info = align(est, x)
    assert info["twin"] is True
    err = np.linalg.norm(aligned - x) / np.linalg.norm(x)
    assert err < 1e-3
    assert relative_error(est, x) < 1e-3
    assert r_real(est, x) < 1e-3
    assert set(info) == {"shift", "twin", "phase", "scale"}
    # without the twin the error stays large
    assert relative_error(est, x, twin=False) > 0.5


def test_align_subpixel_shift_phase_twin():
    x = smooth_complex((64, 64), sigma=3.0, seed=6)
    # on the 1/20 grid: exact
    est = np.exp(-2.0j) * twin_image(shift_image(x, (2.35, -1.6)))
    assert relative_error(est, x) < 1e-6
    # off the grid: small
    est = np.exp(0.4j) * shift_image(x, (1.234, -3.517))
    aligned, info = align(est, x)
    assert info["twin"] is False
    np.testing.assert_allclose(info["shift"], [-1.234, 3.517], atol=0.05)
    assert abs(np.angle(np.exp(1j * (info["phase"] + 0.4)))) < 1e-2
    assert relative_error(est, x) < 2e-2
    assert relative_error(est, x, subpixel=False) > relative_error(est, x)


def test_align_real_sign_and_scale():
    u = blob_object()
    est = -2.0 * twin_image(np.roll(u, (4, 7), axis=(0, 1)))
    aligned, info = align(est, u, scale=True)
    assert not np.iscomplexobj(aligned)
    assert info["twin"] is True
    assert info["phase"] == pytest.approx(np.pi)
    assert info["scale"] == pytest.approx(0.5)
    np.testing.assert_allclose(aligned, u, atol=1e-12)
    assert relative_error(est, u, scale=True) < 1e-12
    assert relative_error(est, u) == pytest.approx(1.0, rel=1e-9)  # |(-)(-2u) - u| = |u|
    assert relative_error(u, u, align_first=False) == 0.0
    assert r_real(0.5 * u, u) == pytest.approx(0.5)


# ------------------------------------------------------------------ FRC / FSC
def test_frc_self_is_one_and_noise_is_near_zero():
    rng = np.random.default_rng(7)
    a = gaussian_filter(rng.standard_normal((128, 128)), 1.0)
    freq, curve = frc(a, a)
    assert freq[0] == 0 and freq[-1] == pytest.approx(0.5)
    assert len(freq) == 65
    ok = np.isfinite(curve)
    assert ok.all()
    np.testing.assert_allclose(curve[ok], 1.0, atol=1e-12)
    n1 = rng.standard_normal((128, 128))
    n2 = rng.standard_normal((128, 128))
    freq, curve, counts = frc(n1, n2, return_counts=True)
    assert counts[0] == 1
    assert abs(np.nanmean(curve[5:])) < 0.05
    assert np.nanmax(np.abs(curve[5:])) < 0.35
    # pixel size converts the frequency axis
    f_m, _ = frc(n1, n2, pixel_size=2e-9)
    np.testing.assert_allclose(f_m, freq / 2e-9)
    f_b, c_b = frc(n1, n2, n_bins=11)
    assert len(f_b) == 11 and f_b[-1] == pytest.approx(0.5)


def test_fsc_3d():
    rng = np.random.default_rng(8)
    v = gaussian_filter(rng.standard_normal((32, 32, 32)), 1.0)
    freq, curve = fsc(v, v)
    assert len(freq) == 17 and freq[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(curve, 1.0, atol=1e-12)
    noisy1 = v + 2.0 * v.std() * rng.standard_normal(v.shape)
    noisy2 = v + 2.0 * v.std() * rng.standard_normal(v.shape)
    freq, curve = fsc(noisy1, noisy2)
    assert curve[1] > 0.8 and curve[-1] < 0.15
    f143 = frc_threshold_crossing(freq, curve, 0.143)
    fhb = frc_threshold_crossing(freq, curve, "halfbit", ndim=3)
    assert 0.0 < f143 < 0.5 and 0.0 < fhb < 0.5


def test_threshold_crossing_interpolates():
    freq = np.linspace(0, 0.5, 11)
    curve = 1.0 - 2.0 * freq
    assert frc_threshold_crossing(freq, curve, 0.5) == pytest.approx(0.25)
    assert frc_threshold_crossing(freq, curve, 0.143) == pytest.approx((1 - 0.143) / 2)
    assert math.isnan(frc_threshold_crossing(freq, np.ones(11), 0.5))
    curve_nan = curve.copy()
    curve_nan[5] = np.nan
    assert frc_threshold_crossing(freq, curve_nan, 0.5) == pytest.approx(0.25)
    counts = np.maximum(1, np.round(2 * np.pi * np.arange(11)))
    hb = frc_threshold_crossing(freq, curve, "halfbit", counts=counts)
    assert 0 < hb < 0.5
    with pytest.raises(ConfigError):
        frc_threshold_crossing(freq, curve, "quarterbit")


def test_ring_average():
    n = 33
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = np.sqrt(yy ** 2 + xx ** 2)
    radii, mean = ring_average(r)
    assert radii[0] == 0 and mean[0] == 0
    np.testing.assert_allclose(mean[1:17], radii[1:17], atol=0.25)
    mask = r < 5
    radii, mean = ring_average(np.ones((n, n)), mask)
    assert np.all(mean[:5] == 1) and np.all(np.isnan(mean[6:]))


# ------------------------------------------------------------------ PRTF
def test_prtf_identical_reconstructions_is_one():
    u = blob_object()
    intensity = np.abs(fftc(u)) ** 2
    mask = np.ones(u.shape, dtype=bool)
    mask[29:36, 29:36] = False  # beamstop
    recs = [u, np.roll(u, (3, -2), axis=(0, 1)), -twin_image(np.roll(u, (1, 4), axis=(0, 1)))]
    freq, curve = prtf(recs, intensity, mask)
    assert freq[-1] == pytest.approx(0.5)
    assert np.isnan(curve[0])  # the centre is not measured
    ok = np.isfinite(curve)
    np.testing.assert_allclose(curve[ok], 1.0, atol=1e-9)
    # a stacked array works too; without alignment the average degrades
    _, c2 = prtf(np.stack(recs), intensity, mask, align_images=False)
    assert np.nanmean(c2) < 0.9
    # random Fourier phases decorrelate
    rng = np.random.default_rng(9)
    noisy = [np.fft.ifftshift(np.fft.ifftn(np.fft.fftn(np.fft.fftshift(u))
                                           * np.exp(0.8j * rng.standard_normal(u.shape))))
             for _ in range(4)]
    _, c3 = prtf(noisy, intensity, mask)
    assert np.nanmean(c3) < 0.95


# ------------------------------------------------------------------ bad input
def test_bad_input_raises():
    b = np.ones((8, 8))
    with pytest.raises(InputError, match=r"\(8, 9\).*\(8, 8\)"):
        rfactor(np.ones((8, 9)), b)
    nan = b.copy()
    nan[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        rfactor(nan, b)
    with pytest.raises(InputError, match="NaN"):
        frc(nan, b)
    with pytest.raises(InputError, match="no pixel"):
        rfactor(b, b, np.zeros((8, 8), dtype=bool))
    with pytest.raises(InputError, match="mask shape"):
        rfactor(b, b, np.ones((4, 4), dtype=bool))
    with pytest.raises(InputError, match="negative"):
        rfactor_image(b, -b)
    inten = b.copy()
    inten[0, 0] = -0.5
    with pytest.raises(InputError, match="clip_negative"):
        rfactor_image(b, inten)
    assert np.isfinite(rfactor_image(b, inten, clip_negative=True))
    with pytest.raises(InputError):
        align(np.ones((8, 8)), np.ones((8, 9)))
    with pytest.raises(InputError):
        register_translation(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ConfigError):
        register_translation(b, b, upsample=0)
    with pytest.raises(InputError):
        relative_error(b, np.zeros((8, 8)))
    with pytest.raises(InputError):
        frc(np.ones(8), np.ones(8))
    with pytest.raises(InputError):
        prtf([np.ones((8, 9))], b)
    with pytest.raises(InputError):
        rfactor(np.array([]), np.array([]))
    # InputError is a ValueError
    with pytest.raises(ValueError):
        shift_image(b, (1.0, 2.0, 3.0))
