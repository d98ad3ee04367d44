"""Single-particle imaging simulator (phasekit.spi.simulate, detector, models): the analytic sphere
as the reference, Ewald curvature, orientation uniformity, photon calibration, classes and labels,
and chunk regeneration."""
import math

import numpy as np
import pytest
import torch

from phasekit.core.errors import ConfigError
from phasekit.spi.detector import (
    CLASSICAL_ELECTRON_RADIUS,
    DetectorGeometry,
    amo86615_geometry,
    pnccd_mask,
)
from phasekit.spi.models import (
    DENSITY,
    MapModel,
    SphereModel,
    _occupancy,
    icosahedron_density,
    icosahedron_model,
)
from phasekit.spi.simulate import (
    SUBCLASSES,
    SpiSimulator,
    quaternion_to_matrix,
    random_quaternions,
)

RE2 = CLASSICAL_ELECTRON_RADIUS ** 2


def _ewald_s(geom, centre):
    """Scattering vectors written out independently: s = (r/|r| - e_z) / lambda."""
    h, w = geom.shape
    y = (np.arange(h)[:, None] - centre[0]) * geom.pixel_size
    x = (np.arange(w)[None, :] - centre[1]) * geom.pixel_size
    r = np.sqrt(x ** 2 + y ** 2 + geom.distance ** 2)
    s = np.stack([x / r, y / r, geom.distance / r - 1.0], axis=-1) / geom.wavelength
    omega = geom.pixel_size ** 2 * geom.distance / r ** 3
    pol = 1.0 - (x / r) ** 2  # horizontal polarisation
    return s, omega * pol


def _sphere_f(s_abs, d):
    u = np.pi * s_abs * d
    u = np.where(u == 0, 1e-12, u)
    return 3 * (np.sin(u) - u * np.cos(u)) / u ** 3


def test_sphere_patterns_equal_the_analytic_form_factor():
    """Noise-free single spheres (random size, centre jitter, mask) against the closed form
    n = F r_e^2 Omega P (rho V 3 (sin u - u cos u)/u^3)^2, u = pi |s| d, s on the Ewald sphere."""
    g = amo86615_geometry(64, 4)
    fl = 1e11 * 1e12  # 1e11 photons / um^2
    sim = SpiSimulator(6, geometry=g, model="sphere", single_fraction=1.0, size_sd=0.05,
                       fluence=fl, fluence_jitter=0.0, centre_jitter=1.5, noise=False, seed=4)
    c = sim.simulate()
    assert (c.labels == 1).all() and (c.meta["subclass"] == 0).all()
    rho = DENSITY["protein"]
    for k in range(6):
        d = float(c.meta["diameter_m"][k, 0])
        assert 0.8 * 70e-9 < d < 1.2 * 70e-9 and d != 70e-9
        s, wgt = _ewald_s(g, c.meta["centre_px"][k])
        f = rho * math.pi * d ** 3 / 6 * _sphere_f(np.linalg.norm(s, axis=-1), d)
        want = fl * RE2 * wgt * f ** 2
        m = sim.mask
        np.testing.assert_allclose(c.frames[k][m], want[m], rtol=2e-4,
                                   atol=1e-6 * want.max())
        assert (c.frames[k][~m] == 0).all()
        assert c.meta["fluence_ph_m2"][k] == pytest.approx(fl)


def test_voxel_sphere_sliced_from_its_3d_transform_matches_the_analytic_sphere():
    """The FFT-and-slice path (MapModel, trilinear grid_sample at rotated, scaled s) against the
    analytic sphere: |F|^2 within 2.5 % (L1 over the pattern), any orientation and size."""
    g = amo86615_geometry(64, 2)
    s_max = g.s_max() * 1.3
    dx = 0.5 / s_max
    r = 35e-9
    n = 2 * int(np.ceil(r / dx)) + 3
    rho = DENSITY["protein"] * _occupancy(n, dx, lambda x, y, z: x * x + y * y + z * z <= r * r)
    vox = MapModel(rho.astype(np.float64), dx, pad=8, voxel_average=True)
    ref = SphereModel(70e-9)
    assert vox.electrons == pytest.approx(ref.electrons, rel=0.01)
    s = torch.from_numpy(g.s_vectors()).float()
    rot = torch.from_numpy(quaternion_to_matrix(random_quaternions(3, np.random.default_rng(1))))
    sp = torch.einsum("hwi,mij->mhwj", s, rot.float())
    scale = torch.tensor([0.9, 1.0, 1.1])
    i_vox = vox.amplitude(sp, scale).abs() ** 2
    i_ref = ref.amplitude(sp, scale).abs() ** 2
    err = (i_vox - i_ref).abs().sum(dim=(1, 2)) / i_ref.sum(dim=(1, 2))
    assert err.max() < 0.025, err
    # icosahedron of the same volume: same electrons, zero-q amplitude = electrons
    ico = icosahedron_model(70e-9, s_max=g.s_max(), pad=4)
    f0 = ico.amplitude(torch.zeros(1, 3))
    assert float(f0.real[0]) == pytest.approx(ref.electrons, rel=1e-3)
    assert abs(float(f0.imag[0])) < 1e-3 * ref.electrons


def test_icosahedron_voxels_have_the_nominal_volume_and_symmetry():
    rho = icosahedron_density(70e-9, 4e-9, density=1.0)
    assert rho.sum() * (4e-9) ** 3 == pytest.approx(math.pi * 70e-9 ** 3 / 6, rel=1e-9)
    # centrosymmetric about n // 2 and invariant under the 2-fold axis z
    np.testing.assert_allclose(rho, rho[::-1, ::-1, ::-1], atol=1e-12)
    np.testing.assert_allclose(rho, rho[:, ::-1, ::-1], atol=1e-12)


def test_ewald_curvature():
    """Pixels lie on the Ewald sphere (s_z = -lambda |s|^2 / 2), and the curvature breaks
    Friedel symmetry of a non-centrosymmetric object (a coherent dimer) but not of a sphere."""
    g = amo86615_geometry(256)
    s = g.s_vectors()
    s2 = (s ** 2).sum(-1)
    np.testing.assert_allclose(s[..., 2], -g.wavelength * s2 / 2, rtol=1e-9,
                               atol=1e-12 * np.abs(s).max())
    assert s[0, 0, 2] < -0.004 * np.linalg.norm(s[0, 0])  # the corner sags by > 0.4 %

    gs = amo86615_geometry(64, 4)
    common = dict(geometry=gs, centre_jitter=0.0, fluence_jitter=0.0, noise=False, gap=0,
                  hole_radius=0, seed=2, pad=4)
    single = SpiSimulator(2, model="sphere", single_fraction=1.0, **common).simulate()
    dimer = SpiSimulator(4, model="icosahedron", single_fraction=0.0, mix={"dimer": 1},
                         **common).simulate()

    def friedel_mismatch(img):
        c = 32
        a = img[c - 31:c + 32, c - 31:c + 32]
        return np.abs(a - a[::-1, ::-1]).sum() / a.sum()

    assert max(friedel_mismatch(f) for f in single.frames) < 1e-5
    assert min(friedel_mismatch(f) for f in dimer.frames) > 1e-3


def test_orientations_are_uniform():
    q = random_quaternions(20000, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-12)
    assert (q[:, 0] >= 0).all()
    r = quaternion_to_matrix(q)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1, atol=1e-12)
    assert np.abs(r.mean(axis=0)).max() < 0.02  # Haar measure: E[R] = 0
    # the rotated beam axis is uniform on the sphere: cos(theta) uniform on [-1, 1]
    z = r[:, :, 2]
    cos_t = np.sort(z[:, 2])
    ks = np.abs(cos_t - np.linspace(-1, 1, cos_t.size)).max() / 2
    assert ks < 0.015
    az = np.arctan2(z[:, 1], z[:, 0])
    hist = np.histogram(az, bins=12, range=(-np.pi, np.pi))[0]
    assert hist.min() > 0.9 * hist.mean() and hist.max() < 1.1 * hist.mean()


def test_photon_calibration():
    """``photons`` is the expected detector total of a nominal single hit; the absolute fluence
    gives I0 r_e^2 lambda^2 rho^2 2 pi R^4 photons for a sphere (about 8.3e5 for 70 nm at
    1e11 photons/um^2)."""
    g = amo86615_geometry(256)
    sim = SpiSimulator(3, geometry=g, model="sphere", single_fraction=1.0, size_sd=0.0,
                       photons=2e4, fluence_jitter=0.0, centre_jitter=0.0, seed=1)
    c = sim.simulate()
    np.testing.assert_allclose(c.meta["photons_expected"], 2e4, rtol=1e-6)
    # Poisson counts on the measured pixels: their sum is the expected sum on those pixels
    nf = SpiSimulator(3, geometry=g, model="sphere", single_fraction=1.0, size_sd=0.0,
                      photons=2e4, fluence_jitter=0.0, centre_jitter=0.0, seed=1, noise=False)
    e = nf.simulate().frames.sum(axis=(1, 2))
    assert np.all(np.abs(c.frames.sum(axis=(1, 2)) - e) < 5 * np.sqrt(e))
    # absolute: closed form of the total scattered photons of a uniform sphere
    fl = 1e11 * 1e12
    ab = SpiSimulator(1, geometry=g, model="sphere", single_fraction=1.0, size_sd=0.0,
                      fluence=fl, fluence_jitter=0.0, centre_jitter=0.0, noise=False, seed=0)
    tot = ab.simulate().meta["photons_expected"][0]
    rho, r = DENSITY["protein"], 35e-9
    closed = fl * RE2 * g.wavelength ** 2 * rho ** 2 * 2 * math.pi * r ** 4
    assert tot == pytest.approx(closed, rel=0.05)
    assert 7e5 < tot < 1e6
    # a log-uniform photon range spreads the expected photons over the range
    rng_sim = SpiSimulator(40, geometry=amo86615_geometry(32, 8), model="sphere",
                           single_fraction=1.0, size_sd=0.0, photons=(1e3, 1e5),
                           fluence_jitter=0.0, centre_jitter=0.0, seed=3, noise=False)
    pe = rng_sim.simulate().meta["photons_expected"]
    assert pe.min() >= 1e3 * 0.999 and pe.max() <= 1e5 * 1.001
    assert pe.max() / pe.min() > 10


def test_classes_labels_and_metadata():
    n = 120
    sim = SpiSimulator(n, geometry=amo86615_geometry(32, 8), model="icosahedron", pad=4,
                       single_fraction=0.25,
                       mix={"dimer": 2, "aggregate": 1, "far_multiple": 1, "droplet": 1,
                            "spheroid": 1, "coated": 1, "weak": 1, "blank": 1},
                       photons=1e4, background=0.01, seed=7)
    c = sim.simulate()
    sub = c.meta["subclass"]
    assert (sub == 0).sum() == 30  # 0.25 * 120; the other 90 split 2:1:1:...
    counts = {name: int((sub == k).sum()) for k, name in enumerate(SUBCLASSES)}
    assert counts["dimer"] == 2 * counts["aggregate"] == 2 * counts["blank"] == 20
    assert sum(counts.values()) == n
    np.testing.assert_array_equal(c.labels, (sub == 0).astype(np.int8))
    npart = c.meta["n_particles"]
    by = {name: npart[sub == k] for k, name in enumerate(SUBCLASSES)}
    assert (by["single"] == 1).all() and (by["dimer"] == 2).all() and (by["weak"] == 1).all()
    assert ((by["aggregate"] >= 3) & (by["aggregate"] <= 5)).all()
    assert ((by["far_multiple"] >= 2) & (by["far_multiple"] <= 3)).all()
    assert (by["blank"] == 0).all() and (by["droplet"] == 1).all()
    # dimers touch: centre distance 1.0-1.3 mean diameter
    for k in np.flatnonzero(sub == 1):
        p, d = c.meta["position_m"][k], c.meta["diameter_m"][k]
        dist = np.linalg.norm(p[0] - p[1])
        assert 0.99 <= dist / (0.5 * (d[0] + d[1])) <= 1.31
    q = c.meta["quaternion"][sub == 0][:, 0]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-6)
    assert (c.meta["coating_m"][sub == SUBCLASSES.index("coated")] >= 2e-9).all()
    assert (c.meta["aspect"][sub == SUBCLASSES.index("spheroid")] > 0).all()
    d_drop = c.meta["diameter_m"][sub == SUBCLASSES.index("droplet"), 0]
    assert ((d_drop >= 40e-9) & (d_drop <= 300e-9)).all()
    # blanks hold background only; weak hits get 2-15 % of a single's fluence
    ph = c.meta["photons"]
    assert np.median(ph[sub == SUBCLASSES.index("blank")]) < 0.05 * np.median(ph[sub == 0])
    fl = c.meta["fluence_ph_m2"]
    assert np.median(fl[sub == SUBCLASSES.index("weak")]) < 0.3 * np.median(fl[sub == 0])
    assert np.all(c.frames == np.rint(c.frames)) and (c.frames >= 0).all()
    np.testing.assert_array_equal(c.meta["index"], np.arange(n))


def test_chunks_regenerate_the_full_run():
    kw = dict(geometry=amo86615_geometry(32, 8), model="icosahedron", pad=4, photons=1e4,
              background=0.01, bad_fraction=0.01, seed=11)
    sim = SpiSimulator(30, **kw)
    full = sim.simulate()
    parts = [SpiSimulator(30, **kw).simulate(a, b) for a, b in ((0, 7), (7, 19), (19, 30))]
    for k in full.meta:  # every random draw is tied to the pattern index
        np.testing.assert_array_equal(np.concatenate([p.meta[k] for p in parts])
                                      if k not in ("photons",) else
                                      np.concatenate([p.meta[k] for p in parts]).round(),
                                      full.meta[k] if k != "photons" else full.meta[k].round(),
                                      err_msg=k)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), full.labels)
    frames = np.concatenate([p.frames for p in parts])
    # the same Poisson draws; at most a count flips if a rate differs in its last bit
    assert np.mean(frames != full.frames) < 1e-3
    assert np.abs(frames - full.frames).sum() <= 0.01 * full.frames.sum()
    # a different seed gives different data
    other = SpiSimulator(30, **dict(kw, seed=12)).simulate(0, 7)
    assert not np.array_equal(other.frames, full.frames[:7])


def test_detector_mask_and_geometry():
    m = pnccd_mask((64, 64), gap=4, hole_radius=5, bad_fraction=0.02, rng=0)
    assert not m[30:34, :].any() and m[29, 0] and m[34, 0]
    assert not m[32, 32 + 5 - 1] and m[20, 20]
    assert 0.01 < 1 - m[:20].mean() < 0.04
    g = DetectorGeometry((8, 8), 1e-3, 1.0, 1e-9)
    assert g.beam_centre == (4.0, 4.0)
    assert g.solid_angles()[4, 4] == pytest.approx(1e-6)
    assert amo86615_geometry(256).speckle_pixels(70e-9) == pytest.approx(21.6, abs=0.1)
    with pytest.raises(Exception, match="pixel_size"):
        DetectorGeometry((8, 8), -1.0, 1.0, 1e-9)


def test_bad_settings_are_config_errors():
    g = amo86615_geometry(32, 8)
    with pytest.raises(ConfigError, match="mix"):
        SpiSimulator(4, geometry=g, model="sphere", mix={"trimer": 1})
    with pytest.raises(ConfigError, match="photons"):
        SpiSimulator(4, geometry=g, model="sphere", photons=(1e4, 1e3))
    with pytest.raises(ConfigError, match="single_fraction"):
        SpiSimulator(4, geometry=g, model="sphere", single_fraction=1.5)
    with pytest.raises(Exception, match="particle model"):
        SpiSimulator(4, geometry=g, model="cube")


def _sphere_map(n=24, dx=4e-9, r=35e-9):
    return _occupancy(n, dx, lambda x, y, z: x * x + y * y + z * z <= r * r).astype(np.float32)


def test_density_maps_from_mrc_and_hdf5_files(tmp_path):
    """Arbitrary maps: an MRC file (header written by hand: mode 2, cell in Angstrom, little-endian
    stamp) and an HDF5 dataset with a voxel_size attribute give the sphere's pattern."""
    import struct

    import h5py

    from phasekit.core.errors import FileFormatError
    from phasekit.spi.models import map_model

    dx, n = 4e-9, 24
    vol = _sphere_map(n, dx)
    head = bytearray(1024)
    head[0:16] = struct.pack("<4i", n, n, n, 2)
    head[40:52] = struct.pack("<3f", n * dx * 1e10, n * dx * 1e10, n * dx * 1e10)
    head[208:212] = b"MAP "
    head[212:214] = b"\x44\x44"
    (tmp_path / "p.mrc").write_bytes(bytes(head) + vol.astype("<f4").tobytes())
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["maps/pr772"] = vol
        f["maps/pr772"].attrs["voxel_size"] = dx
    g = amo86615_geometry(32, 4)
    s = torch.from_numpy(g.s_vectors()).float()
    ref = SphereModel(70e-9).amplitude(s).abs() ** 2
    for path in (tmp_path / "p.mrc", tmp_path / "p.h5"):
        m = map_model(path, s_max=g.s_max(), pad=6)
        assert m.voxel_size == pytest.approx(dx, rel=1e-6)
        assert m.diameter == pytest.approx(70e-9, rel=0.03)
        i = m.amplitude(s).abs() ** 2
        i = i * (ref.sum() / i.sum())
        assert float((i - ref).abs().sum() / ref.sum()) < 0.06
        sim = SpiSimulator(2, geometry=g, model=str(path), single_fraction=1.0, noise=False,
                           seed=0)
        assert sim.model.name.startswith("map:") and sim.simulate().frames.sum() > 0
        assert sim.diameter == pytest.approx(m.diameter)  # a map keeps its own size...
    small = SpiSimulator(4, geometry=g, model=str(tmp_path / "p.h5"), diameter=50e-9,
                         single_fraction=1.0, size_sd=0.0, noise=False, seed=0)
    assert np.allclose(small.simulate().meta["diameter_m"][:, 0], 50e-9)  # ...unless rescaled
    (tmp_path / "flat.h5").write_bytes(b"")
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f["x"] = np.zeros((4, 4))
    with pytest.raises(FileFormatError, match="no 3-D numeric dataset"):
        map_model(tmp_path / "flat.h5", s_max=1e8)
    with h5py.File(tmp_path / "novox.h5", "w") as f:
        f["v"] = vol
    with pytest.raises(FileFormatError, match="voxel size"):
        map_model(tmp_path / "novox.h5", s_max=1e8)
