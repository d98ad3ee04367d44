"""Scan geometry: far-field pixel, Fresnel scaling of a diverging beam, Fresnel number, the
far-field plausibility check (phasekit.ptycho.geometry)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from phasekit.core.errors import ConfigError
from phasekit.io.ptycho import PtychoData
from phasekit.ptycho.geometry import (
    check_farfield_plausibility,
    farfield_pixel,
    focus_distance_for_pixel,
    fresnel_number,
    fresnel_scaling,
    probe_diameter_farfield,
    scan_geometry,
    step_statistics,
)
from phasekit.ptycho.probe import disc, fzp_probe
from phasekit.ptycho.scan import raster_scan

# the issue's file: 100x100 frames of 55 um pixels at 1.12 m, 0.098 nm
WL, Z2, PIX, M = 0.098e-9, 1.12, 55e-6, 100


def test_farfield_pixel_of_the_issue_file():
    dy, dx = farfield_pixel(WL, Z2, PIX, (M, M))
    assert dy == dx == pytest.approx(19.95e-9, rel=1e-3)  # lambda z / (M p)
    dy, dx = farfield_pixel(WL, Z2, (55e-6, 110e-6), (100, 50))  # per axis
    assert dy == pytest.approx(19.95e-9, rel=1e-3) and dx == pytest.approx(19.95e-9, rel=1e-3)
    with pytest.raises(ConfigError, match="wavelength"):
        farfield_pixel(-1, Z2, PIX, M)


def test_fresnel_scaling_of_the_issue_file():
    # cdtools reconstructs the file at ~179 nm pixels and a 3.65 mm propagation distance:
    # M = 55 um / 179 nm = 307.3, z1 = z2 / (M - 1) = 3.657 mm
    z1 = focus_distance_for_pixel(179e-9, Z2, PIX)
    assert z1 == pytest.approx(Z2 / (PIX / 179e-9 - 1), rel=1e-12)
    assert z1 == pytest.approx(3.657e-3, abs=2e-6)
    g = fresnel_scaling(z1, Z2, PIX)
    assert g.magnification == pytest.approx((z1 + Z2) / z1) and g.magnification == pytest.approx(
        307.26, abs=0.05)
    assert g.pixel_size[0] == g.pixel_size[1] == pytest.approx(179e-9, rel=1e-9)
    assert g.distance == pytest.approx(3.645e-3, abs=1e-6)  # z2 / M
    assert g.distance == pytest.approx(z1 * Z2 / (z1 + Z2))  # = z1 z2 / (z1 + z2)
    # the 1.3 um steps of the scan: 65 px in the far field, ~7 px Fresnel-scaled
    assert 1.3e-6 / farfield_pixel(WL, Z2, PIX, M)[0] == pytest.approx(65.2, abs=0.1)
    assert 1.3e-6 / g.pixel_size[0] == pytest.approx(7.26, abs=0.01)
    par = fresnel_scaling(math.inf, 0.01, 1e-6)  # a parallel beam: no magnification
    assert par.magnification == 1 and par.pixel_size == (1e-6, 1e-6) and par.distance == 0.01
    with pytest.raises(ConfigError):
        fresnel_scaling(-1e-3, Z2, PIX)
    with pytest.raises(ConfigError, match="magnification"):
        focus_distance_for_pixel(60e-6, Z2, PIX)


def test_fresnel_number():
    assert fresnel_number(179e-9, WL, 3.645e-3) == pytest.approx(
        179e-9 ** 2 / (WL * 3.645e-3)) == pytest.approx(0.0897, abs=1e-4)
    # the far-field condition of the issue's beam is nowhere near met: N_F of the field >> 1
    assert fresnel_number(M * 179e-9, WL, 3.645e-3) > 100


def test_probe_diameter_estimate():
    for diameter, n in ((12, 64), (24, 64), (30, 128)):
        f = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(disc(n, diameter))))) ** 2
        est = probe_diameter_farfield(f[None])
        assert 0.7 * diameter < est < 1.3 * diameter, (diameter, est)
    p = fzp_probe(64, 20, 12)
    f = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(p)))) ** 2
    assert 10 < probe_diameter_farfield(f[None]) < 30
    assert math.isnan(probe_diameter_farfield(np.zeros((1, 8, 8))))


def test_step_statistics():
    pos = raster_scan(4, step=3.0)
    s = step_statistics(pos)
    assert s["step"] == pytest.approx(3.0) and s["span"] == (9.0, 9.0)
    assert math.isnan(step_statistics(pos[:1])["step"])


def _frames(diameter, n=64, count=16):
    f = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(disc(n, diameter))))) ** 2
    return np.stack([f] * count)


def test_plausibility_warns_only_without_overlap():
    frames = _frames(16)
    ok = raster_scan(4, step=4.0)  # steps of a quarter probe
    assert check_farfield_plausibility(ok, frames) == []
    bad = raster_scan(4, step=65.0)  # 4 probe widths apart
    w = check_farfield_plausibility(bad, frames)
    assert len(w) == 1 and "do not overlap" in w[0] and "--near-field" in w[0]
    assert "median 65.0 px" in w[0]


def _near_field_data():
    """A near-field scan read as far field: the issue's geometry scaled down (a wide beam, so
    the frames' autocorrelation is narrow; 1.3 um steps)."""
    g = np.random.default_rng(0)
    n = 16
    frames = (1000 * disc(M, 70, edge=4)[None] * (1 + 0.1 * g.random((n, M, M)))).astype(
        np.float32)
    pos_m = raster_scan(4, step=1.3e-6)  # metres
    t = np.zeros((n, 3))
    t[:, 0], t[:, 1] = -pos_m[:, 1], -pos_m[:, 0]
    return PtychoData(intensities=frames, translations=t, wavelength=WL, distance=Z2,
                      pixel_size=PIX)


def test_scan_geometry_far_and_near():
    d = _near_field_data()
    far = scan_geometry(d)
    assert far.propagation == "farfield" and far.pixel_size[0] == pytest.approx(19.95e-9,
                                                                               rel=1e-3)
    assert far.step == pytest.approx(65.2, abs=0.1)
    assert len(far.warnings) == 1 and "do not overlap" in far.warnings[0]
    z1 = focus_distance_for_pixel(179e-9, Z2, PIX)
    near = scan_geometry(d, z1)
    assert near.propagation == "angular" and near.pixel_size[0] == pytest.approx(179e-9)
    assert near.distance == pytest.approx(3.645e-3, abs=1e-6)
    assert near.step == pytest.approx(7.26, abs=0.01) and near.warnings == []
    kw = near.reconstruct_kwargs()
    assert kw["propagation"] == "angular" and kw["pixel_size"] == pytest.approx(179e-9)
    assert kw["distance"] == pytest.approx(3.645e-3, abs=1e-6) and kw["wavelength"] == WL
    assert "magnification 307.3" in near.lines()[0] and "median step 7.26 px" in near.lines()[1]
    fres = scan_geometry(d, z1, propagator="fresnel")
    assert fres.propagation == "fresnel"
    with pytest.raises(ConfigError):
        scan_geometry(d, z1, propagator="bogus")
    # a wrong focus distance that makes the steps larger than the frame is flagged
    assert any("exceeds the frame" in w for w in scan_geometry(d, 1e-5).warnings)
    par = scan_geometry(d, math.inf)  # a parallel beam: pixel = detector pixel, steps << 1 px
    assert par.magnification == 1 and par.pixel_size[0] == PIX and par.distance == Z2
    assert any("nearly coincide" in w for w in par.warnings)
