"""Tests of phasekit.sim: phantoms, masks, noise and simulated CDI data."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from phasekit.core.errors import ConfigError, InputError
from phasekit.sim import (
    OBJECT_NAMES,
    SimulatedCDI,
    add_read_noise,
    beamstop,
    blobs,
    calibrate_photons,
    combine,
    complex_object,
    complex_phantom,
    crop_center,
    detector_gaps,
    embed,
    make_object,
    oversampling_ratio,
    poisson_counts,
    rnoise,
    scale_to_photons,
    simulate_cdi,
    skimage_image,
    vesicle,
    virus,
)


def fftc_np(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))


def centre_of_mass(a):
    a = np.abs(a).astype(np.float64)
    y, x = np.indices(a.shape)
    return (a * y).sum() / a.sum(), (a * x).sum() / a.sum()


GENERATED = ["vesicle", "blobs", "virus", "complex"]


# --------------------------------------------------------------------------- phantoms


@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("size", [33, 64])
def test_phantom_shape_dtype_range_centring(name, size):
    a = make_object(name, size, rng=0)
    assert a.shape == (size, size)
    if name == "complex":
        assert a.dtype == np.complex64
        amp = np.abs(a)
    else:
        assert a.dtype == np.float32
        assert a.min() >= 0
        amp = a
    assert np.all(np.isfinite(a))
    assert amp.max() == pytest.approx(1.0, abs=1e-5)
    cy, cx = centre_of_mass(a)
    assert abs(cy - size // 2) < 0.1 * size and abs(cx - size // 2) < 0.1 * size
    # compact: zero on the border of the array
    assert np.all(amp[0] == 0) and np.all(amp[-1] == 0)
    assert np.all(amp[:, 0] == 0) and np.all(amp[:, -1] == 0)


@pytest.mark.parametrize("name", GENERATED)
def test_phantom_seeded_determinism(name):
    a = make_object(name, 48, rng=7)
    b = make_object(name, 48, rng=7)
    c = make_object(name, 48, rng=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # a Generator and a SeedSequence are accepted too
    g = make_object(name, 48, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(g, a)
    make_object(name, 48, rng=np.random.SeedSequence(3))


def test_vesicle_structure():
    v = vesicle(128, rng=1, n_bodies=6)
    # membrane (max ~1) plus weaker interior: the centre region is weaker than the ring maximum
    c = 128 // 2
    assert v[c - 2:c + 3, c - 2:c + 3].min() < 0.8
    # the interior is non-zero (the cell is filled) and the outside is zero
    assert v[c, c] > 0
    assert (v > 0).mean() < 0.8
    v0 = vesicle(128, rng=1, n_bodies=0)
    assert not np.array_equal(v0, v)


def test_virus_orientation_and_shell():
    a = virus(64, rng=0, rotation=np.eye(3))
    b = virus(64, rng=1, rotation=np.eye(3))
    # same orientation -> same outline (footprint), the internal density differs
    np.testing.assert_array_equal(a > 0, b > 0)
    filled = virus(64, rng=0, shell=False, rotation=np.eye(3))
    assert filled.shape == (64, 64) and filled.min() >= 0
    np.testing.assert_array_equal(filled > 0, a > 0)
    with pytest.raises(InputError, match="rotation"):
        virus(64, rotation=np.ones((3, 3)))


def test_virus_speed_256():
    t0 = time.perf_counter()
    v = virus(256, rng=0)
    assert time.perf_counter() - t0 < 2.0
    assert v.shape == (256, 256)


def test_complex_object_phase():
    amp = blobs(40, rng=2)
    z = complex_object(amp, phase_scale=2.0, rng=3)
    assert z.dtype == np.complex64
    np.testing.assert_allclose(np.abs(z), amp, rtol=1e-5, atol=1e-6)
    ph = np.angle(z[amp > 1e-3])
    assert ph.min() >= -1e-5 and ph.max() <= 2.0 + 1e-5
    assert ph.max() - ph.min() > 1.0
    c = complex_phantom(40, rng=4)
    assert c.dtype == np.complex64 and c.shape == (40, 40)
    with pytest.raises(InputError):
        complex_object(-amp)
    with pytest.raises(ConfigError):
        complex_object(amp, phase_scale=-1)


def test_skimage_images():
    pytest.importorskip("skimage")
    for name in ("camera", "astronaut", "coins", "moon"):
        im = skimage_image(name, 50)
        assert im.shape == (50, 50) and im.dtype == np.float32
        assert im.min() >= 0 and im.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(make_object("skimage:camera", 32), skimage_image("camera", 32))
    with pytest.raises(InputError, match="camera"):  # the message lists the valid names
        skimage_image("not_an_image", 32)


def test_skimage_missing_is_input_error(monkeypatch):
    import sys

    for mod in ("skimage", "skimage.data", "skimage.color", "skimage.transform"):
        monkeypatch.setitem(sys.modules, mod, None)  # import now raises ImportError
    with pytest.raises(InputError, match="scikit-image"):
        skimage_image("camera", 32)


def test_make_object_unknown_name_lists_valid():
    with pytest.raises(InputError) as info:
        make_object("banana", 32)
    for n in GENERATED:
        assert n in str(info.value)
    assert set(GENERATED) <= set(OBJECT_NAMES)
    assert "skimage:camera" in OBJECT_NAMES


@pytest.mark.parametrize("bad", [0, -5, 3, 12.5, "64"])
def test_phantom_bad_size(bad):
    with pytest.raises(InputError):
        vesicle(bad)


def test_phantom_bad_params():
    with pytest.raises(ConfigError):
        vesicle(32, n_bodies=-1)
    with pytest.raises(ConfigError):
        blobs(32, smoothness=0)
    with pytest.raises(ConfigError):
        blobs(32, n_blobs=0)


@pytest.mark.parametrize("n, big", [(5, 12), (6, 12), (5, 11), (6, 11), (7, 7)])
def test_embed_crop_centre(n, big):
    x = np.arange(n * n, dtype=float).reshape(n, n) + 1
    e = embed(x, (big, big))
    assert e.shape == (big, big)
    assert e[big // 2, big // 2] == x[n // 2, n // 2]
    assert e.sum() == x.sum()
    np.testing.assert_array_equal(crop_center(e, (n, n)), x)
    # batch axes are kept
    xb = np.stack([x, 2 * x])
    eb = embed(xb, (big, big))
    assert eb.shape == (2, big, big)
    np.testing.assert_array_equal(eb[1], 2 * e)


def test_embed_crop_errors():
    with pytest.raises(InputError, match="does not fit"):
        embed(np.ones((5, 5)), (4, 8))
    with pytest.raises(InputError):
        crop_center(np.ones((5, 5)), (6, 5))


# --------------------------------------------------------------------------- masks


def test_beamstop_counts():
    m0 = beamstop((64, 64), 0)
    assert m0.dtype == bool and m0.all()
    m1 = beamstop((64, 64), 1)
    assert (~m1).sum() == 5 and not m1[32, 32] and m1[0, 0]
    sq = beamstop((64, 63), 3, square=True)
    assert (~sq).sum() == 49
    assert not sq[32, 31] and not sq[29, 28] and sq[28, 31]
    disk = beamstop((65, 65), 5)
    y, x = np.indices((65, 65)) - 32
    assert (~disk).sum() == ((y**2 + x**2) <= 25).sum()
    with pytest.raises(ConfigError):
        beamstop((64, 64), -1)
    with pytest.raises(ConfigError):
        beamstop((64, 64), float("nan"))


@pytest.mark.parametrize("shape", [(64, 64), (63, 50)])
@pytest.mark.parametrize("w", [1, 2, 3])
def test_detector_gap_counts(shape, w):
    n, m = shape
    both = detector_gaps(shape, w)
    assert both.dtype == bool
    assert (~both).sum() == w * m + w * n - w * w
    assert not both[n // 2, 0] and not both[0, m // 2]  # bands pass through the centre
    hor = detector_gaps(shape, w, orientation="horizontal")
    assert (~hor).sum() == w * m
    assert not hor[n // 2].any()
    ver = detector_gaps(shape, w, orientation="vertical")
    assert (~ver).sum() == w * n
    assert not ver[:, m // 2].any()


def test_detector_gaps_multi_and_errors():
    g = detector_gaps((90, 90), 2, n_gaps=2, orientation="vertical")
    cols = np.where(~g[0])[0]
    assert len(cols) == 4 and (~g).sum() == 4 * 90
    assert abs(cols.mean() - 45) <= 1
    assert detector_gaps((32, 32), 0).all()
    with pytest.raises(ConfigError, match="orientation"):
        detector_gaps((32, 32), 2, orientation="diagonal")
    with pytest.raises(ConfigError):
        detector_gaps((32, 32), -1)
    with pytest.raises(ConfigError, match="outside"):
        detector_gaps((32, 32), 2, offset=40)


def test_combine():
    a = beamstop((32, 32), 2)
    b = detector_gaps((32, 32), 1)
    c = combine(a, b, None)
    np.testing.assert_array_equal(c, a & b)
    with pytest.raises(InputError, match="shape"):
        combine(a, np.ones((31, 32), bool))
    with pytest.raises(ConfigError):
        combine()


# --------------------------------------------------------------------------- noise


def test_poisson_and_scale():
    inten = np.abs(fftc_np(embed(vesicle(32, rng=0), (128, 128)))) ** 2
    lam = scale_to_photons(inten, 1e6)
    assert lam.sum() == pytest.approx(1e6)
    c1 = poisson_counts(lam, rng=5)
    c2 = poisson_counts(lam, rng=5)
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(c1, poisson_counts(lam, rng=6))
    assert c1.min() >= 0 and np.all(c1 == np.round(c1))
    assert abs(c1.sum() - 1e6) < 5 * np.sqrt(1e6)
    with pytest.raises(InputError):
        poisson_counts(-lam)
    with pytest.raises(InputError, match="NaN"):
        poisson_counts(np.array([1.0, np.nan]))
    with pytest.raises(ConfigError):
        scale_to_photons(inten, -10)
    with pytest.raises(ConfigError):
        scale_to_photons(inten, float("nan"))
    with pytest.raises(InputError):
        scale_to_photons(np.zeros((4, 4)), 10)


def test_read_noise():
    counts = np.full((100, 100), 3.0)
    noisy = add_read_noise(counts, 2.0, rng=0)
    assert noisy.min() >= 0
    assert (noisy == 0).any()  # negatives were clipped
    assert 1.5 < np.std(add_read_noise(np.full((100, 100), 100.0), 2.0, rng=1)) < 2.5
    np.testing.assert_array_equal(add_read_noise(counts, 0.0, rng=0), counts)
    with pytest.raises(ConfigError):
        add_read_noise(counts, -1.0)


def test_rnoise_definition():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = a + np.array([[0.1, -0.2], [0.0, 10.0]])
    assert rnoise(b, a) == pytest.approx(10.3 / 10.0)
    m = np.array([[True, True], [True, False]])
    assert rnoise(b, a, m) == pytest.approx(0.3 / 6.0)
    assert rnoise(a, a) == 0.0
    with pytest.raises(InputError, match="shape"):
        rnoise(a, a[:1])
    with pytest.raises(InputError):
        rnoise(a, a, mask=np.ones((2, 2)))


@pytest.mark.parametrize("target", [0.06, 0.15])
def test_calibrate_photons_hits_target(target):
    inten = np.abs(fftc_np(embed(vesicle(32, rng=0), (128, 128)))) ** 2
    mask = beamstop((128, 128), 3)
    photons = calibrate_photons(inten, target, rng=1, mask=mask)
    assert photons > 0
    # an independent draw at that photon count is within 10 % of the target
    lam = scale_to_photons(inten, photons)
    got = rnoise(np.sqrt(poisson_counts(lam, rng=99)), np.sqrt(lam), mask)
    assert abs(got - target) < 0.1 * target
    # with read noise, more photons are needed for the same R_noise
    photons_rn = calibrate_photons(inten, target, rng=1, read_noise=1.0, mask=mask)
    assert photons_rn > photons
    with pytest.raises(ConfigError):
        calibrate_photons(inten, 1.5)
    with pytest.raises(ConfigError):
        calibrate_photons(inten, -0.1)


# --------------------------------------------------------------------------- simulate_cdi


def test_simulate_noise_free_matches_fft():
    d = simulate_cdi("vesicle", size=128, oversampling=4.0, rng=0)
    assert isinstance(d, SimulatedCDI)
    assert d.intensity.shape == (128, 128) and d.intensity.dtype == np.float32
    assert d.truth.dtype == np.float32 and d.mask.dtype == bool and d.support.dtype == bool
    assert d.photons is None and d.rnoise == 0.0 and d.mask.all()
    expected = np.abs(fftc_np(d.truth.astype(np.float64))) ** 2
    np.testing.assert_allclose(d.intensity, expected, rtol=1e-5, atol=1e-6 * expected.max())
    # zero frequency at N//2 and it is the maximum for a non-negative object
    assert np.unravel_index(np.argmax(d.intensity), d.intensity.shape) == (64, 64)
    # object centred, support contains it
    cy, cx = centre_of_mass(d.truth)
    assert abs(cy - 64) < 4 and abs(cx - 64) < 4
    assert np.all(d.support[d.truth != 0])
    assert d.support.sum() > (d.truth != 0).sum()
    # linear oversampling 4 -> area ratio about 16 or more (phantom fills ~90 % of its box)
    ratio = oversampling_ratio(d.support)
    assert 10 < ratio < 40
    json.dumps(d.params)
    assert d.params["oversampling"] == 4.0 and d.params["object_shape"] == [32, 32]


def test_simulate_photons_and_truth_scale():
    d = simulate_cdi("virus", size=128, photons=1e7, rng=3)
    assert d.intensity.min() >= 0
    assert np.all(d.intensity == np.round(d.intensity))
    assert abs(d.intensity.sum() - 1e7) < 5 * np.sqrt(1e7)
    expected = np.abs(fftc_np(d.truth.astype(np.float64))) ** 2
    assert expected.sum() == pytest.approx(1e7, rel=1e-5)
    lam = expected
    assert d.rnoise == pytest.approx(rnoise(np.sqrt(d.intensity), np.sqrt(lam)), rel=1e-4)
    assert 0 < d.rnoise < 0.5
    json.dumps(d.params)


def test_simulate_determinism():
    kw = dict(size=96, photons=1e6, read_noise=0.5, beamstop=2, gaps=1)
    a = simulate_cdi("blobs", rng=11, **kw)
    b = simulate_cdi("blobs", rng=11, **kw)
    c = simulate_cdi("blobs", rng=12, **kw)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert not np.array_equal(a.intensity, c.intensity)
    assert a.params["seed"] == 11


def test_simulate_masks_and_target_rnoise():
    d = simulate_cdi("vesicle", size=128, target_rnoise=0.06, beamstop=3, gaps=2, rng=5)
    expected_mask = beamstop((128, 128), 3) & detector_gaps((128, 128), 2)
    np.testing.assert_array_equal(d.mask, expected_mask)
    assert np.all(d.intensity[~d.mask] == 0)
    assert abs(d.rnoise - 0.06) < 0.1 * 0.06
    assert d.photons is not None and d.photons > 0
    assert d.params["photons"] == d.photons
    json.dumps(d.params)


def test_simulate_complex_and_array_input():
    d = simulate_cdi("blobs", size=64, complex_valued=True, rng=0)
    assert d.truth.dtype == np.complex64 and np.abs(np.angle(d.truth[d.truth != 0])).max() > 0.1
    expected = np.abs(fftc_np(d.truth.astype(np.complex128))) ** 2
    np.testing.assert_allclose(d.intensity, expected, rtol=1e-4, atol=1e-6 * expected.max())
    obj = np.zeros((9, 14), np.float32)
    obj[2:7, 3:11] = 1.0
    e = simulate_cdi(obj, size=40)
    np.testing.assert_array_equal(crop_center(e.truth, (9, 14)), obj)
    assert e.params["obj"] == "array" and e.params["object_shape"] == [9, 14]
    assert np.all(e.support[e.truth != 0])


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(size=0), InputError),
        (dict(size=-4), InputError),
        (dict(oversampling=0.5), ConfigError),
        (dict(oversampling=float("nan")), ConfigError),
        (dict(size=64, oversampling=10.0), ConfigError),  # object < 8 px
        (dict(photons=-5.0), ConfigError),
        (dict(photons=0.0), ConfigError),
        (dict(read_noise=1.0), ConfigError),  # read noise without photons
        (dict(photons=1e6, read_noise=-1.0), ConfigError),
        (dict(photons=1e6, target_rnoise=0.06), ConfigError),
        (dict(beamstop=-1), ConfigError),
        (dict(gaps=-2), ConfigError),
    ],
)
def test_simulate_bad_config(kwargs, err):
    kw = dict(size=64, oversampling=2.0)
    kw.update(kwargs)
    with pytest.raises(err):
        simulate_cdi("vesicle", **kw)


def test_simulate_bad_object():
    with pytest.raises(InputError, match="vesicle"):
        simulate_cdi("nonsense", size=64)
    with pytest.raises(InputError, match="does not fit"):
        simulate_cdi(np.ones((70, 10)), size=64)
    with pytest.raises(InputError, match="NaN"):
        simulate_cdi(np.full((8, 8), np.nan), size=64)
    with pytest.raises(InputError, match="zero"):
        simulate_cdi(np.zeros((8, 8)), size=64)
    with pytest.raises(InputError, match="2-D"):
        simulate_cdi(np.ones(8), size=64)


def test_oversampling_ratio():
    s = np.zeros((64, 64), bool)
    s[24:40, 24:40] = True
    assert oversampling_ratio(s) == pytest.approx(16.0)
    with pytest.raises(InputError):
        oversampling_ratio(np.zeros((8, 8), bool))
