"""Ptychography scans in other packages' layouts, each laid out BY HAND with h5py: CXI 1.6 as
cdtools writes it (basis_vectors, far and near field), PtyLab HDF5, PtyPy .ptyd; missing keys
and corrupt files give one-line errors."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from phasekit.core.errors import FileFormatError, InputError, PhasekitError
from phasekit.io import describe, is_ptycho_file, read_ptycho
from phasekit.io.ptycho_formats import write_ptylab
from phasekit.ptycho.geometry import fresnel_scaling, scan_geometry
from phasekit.ptycho.scan import raster_scan

HC = 6.62607015e-34 * 299792458.0
WL, Z, PIX, M = 1.55e-10, 2.0, 75e-6, 16
DX = WL * Z / (M * PIX)  # far-field object pixel


@pytest.fixture(scope="module")
def scan():
    g = np.random.default_rng(0)
    pos = raster_scan(3, step=4.0, jitter=0.4, rng=1)
    pos = pos - pos.min(axis=0)
    frames = g.poisson(50.0, (len(pos), M, M)).astype(np.float32)
    return frames, pos


def _cdtools_file(path, frames, pos, *, pixel, distance, basis_shape=(3, 2), data_1=True):
    """CXI 1.6 as cdtools' ``create_cxi``/``add_detector``/``add_ptycho_translations`` write
    it: basis (3, 2) with columns (0, -py, 0) and (-px, 0, 0), translations = minus the probe
    translation (probe pixel i = -r_y / dy, j = -r_x / dx), energy in J."""
    r = np.zeros((len(pos), 3))
    r[:, 1], r[:, 0] = -pos[:, 0] * pixel, -pos[:, 1] * pixel
    basis = np.array([[0, -PIX], [-PIX, 0], [0, 0]], np.float32)
    if basis_shape == (2, 3):
        basis = basis.T
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        e = f.create_group("entry_1")
        e.attrs["NX_class"] = "NXentry"
        det = e.create_group("instrument_1/detector_1")
        det["distance"] = np.float32(distance)
        det["x_pixel_size"] = np.float32(PIX)
        det["y_pixel_size"] = np.float32(PIX)
        det["basis_vectors"] = basis
        e["instrument_1/source_1/energy"] = np.float32(HC / WL)
        e["sample_1/geometry_1/translation"] = (-r).astype(np.float32)
        if data_1:
            e["data_1/data"] = frames
            e["data_1/translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
        else:
            det["data"] = frames
        mask = np.zeros((M, M), np.uint32)
        mask[0, 3] = 1
        det["mask"] = mask
    return path


@pytest.mark.parametrize("basis_shape,data_1", [((3, 2), True), ((2, 3), False)])
def test_cdtools_far_field(scan, tmp_path, basis_shape, data_1):
    frames, pos = scan
    f = _cdtools_file(tmp_path / "cd.cxi", frames, pos, pixel=DX, distance=Z,
                      basis_shape=basis_shape, data_1=data_1)
    assert is_ptycho_file(f)
    d = read_ptycho(f)
    assert d.layout == "cdtools-cxi" and d.basis.shape == (2, 3)
    assert np.allclose(d.basis, [[0, -PIX, 0], [-PIX, 0, 0]])
    assert d.wavelength == pytest.approx(WL, rel=1e-6) and d.distance == pytest.approx(Z)
    assert d.detector_pixel() == pytest.approx((PIX, PIX))
    assert d.object_pixel_yx() == pytest.approx((DX, DX), rel=1e-6)
    # cdtools' orientation: the file's positions come back (float32 translations: 1e-4 px)
    assert np.allclose(d.positions_px(), pos, atol=1e-3)
    assert not d.mask[0, 3] and d.mask.sum() == M * M - 1
    # --flip negates, --transpose swaps (then both shifted to start at 0)
    fl = d.positions_px(flip=True)
    assert np.allclose(fl, pos.max(axis=0) - pos, atol=1e-3)
    assert np.allclose(d.positions_px(transpose=True), pos[:, ::-1], atol=1e-3)
    text = describe(f)
    assert "basis_vectors (cdtools)" in text and "detector basis" in text


def test_cdtools_near_field(scan, tmp_path):
    """A near-field (Fresnel-scaled) scan as cdtools stores it: only z2 is in the file; the
    focus-to-sample distance z1 gives the pixel detector_pixel / M."""
    frames, pos = scan
    z1, z2 = 3.657e-3, 1.12
    g = fresnel_scaling(z1, z2, PIX)
    f = _cdtools_file(tmp_path / "nf.cxi", frames, pos, pixel=g.pixel_size[0], distance=z2)
    d = read_ptycho(f)
    geo = scan_geometry(d, z1)
    assert np.allclose(geo.positions, pos, atol=1e-3)
    assert geo.distance == pytest.approx(z2 / g.magnification)
    assert geo.pixel_size[0] == pytest.approx(PIX * z1 / (z1 + z2))
    # read as far field the steps scale by (near-field pixel) / (lambda z2 / (M p))
    far = scan_geometry(d, check=False)
    assert far.pixel_size[0] == pytest.approx(WL * z2 / (M * PIX), rel=1e-6)
    assert far.step == pytest.approx(geo.step * g.pixel_size[0] / far.pixel_size[0], rel=1e-4)


def _ptylab_file(path, frames, pos, *, orientation=None, transpose_encoder=False, drop=()):
    enc = (pos - pos.mean(axis=0)) * DX  # (row, col) metres, as PtyLab's simulations
    with h5py.File(path, "w") as f:
        items = {"ptychogram": frames, "encoder": enc.T if transpose_encoder else enc,
                 "wavelength": np.array([WL]), "zo": np.array([Z]), "dxd": np.array([PIX]),
                 "Nd": np.array([M]), "No": np.array([64]),
                 "entrancePupilDiameter": np.array([8 * DX])}
        for k, v in items.items():
            if k not in drop:
                f.create_dataset(k, data=v)
        if orientation is not None:
            f.create_dataset("orientation", data=orientation)
    return path


def test_ptylab(scan, tmp_path):
    frames, pos = scan
    f = _ptylab_file(tmp_path / "pl.hdf5", frames, pos)
    assert is_ptycho_file(f)
    d = read_ptycho(f)
    assert d.layout == "ptylab" and d.wavelength == WL and d.distance == Z and d.pixel_size == PIX
    assert np.array_equal(d.intensities, frames)
    assert np.allclose(d.positions_px(), pos, atol=1e-9)
    assert d.metadata["entrancePupilDiameter"] == pytest.approx(8 * DX)
    assert np.allclose(read_ptycho(_ptylab_file(tmp_path / "t.hdf5", frames, pos,
                                                transpose_encoder=True)).positions_px(), pos)
    # orientation 4 (transpose) and 3 (flip both) are applied to the frames, as PtyLab does
    d4 = read_ptycho(_ptylab_file(tmp_path / "o4.hdf5", frames, pos, orientation=4))
    assert np.array_equal(d4.intensities, np.swapaxes(frames, 1, 2))
    d3 = read_ptycho(_ptylab_file(tmp_path / "o3.hdf5", frames, pos, orientation=3))
    assert np.array_equal(d3.intensities, frames[:, ::-1, ::-1])
    assert "PtyLab HDF5 ptychography scan" in describe(f)


def test_ptylab_missing_keys(scan, tmp_path):
    frames, pos = scan
    f = _ptylab_file(tmp_path / "m.hdf5", frames, pos, drop=("encoder", "zo"))
    assert is_ptycho_file(f)  # recognised by its ptychogram, so the error can name the keys
    with pytest.raises(FileFormatError, match="misses required key\\(s\\): encoder, zo") as e:
        read_ptycho(f)
    assert "\n" not in str(e.value)


def test_write_ptylab_round_trip(scan, tmp_path):
    frames, pos = scan
    f = write_ptylab(tmp_path / "w.hdf5", frames, pos, wavelength=WL, distance=Z,
                     pixel_size=PIX, probe_diameter=1e-6)
    with h5py.File(f, "r") as h:  # the keys PtyLab's loader requires
        assert {"ptychogram", "encoder", "wavelength", "zo", "dxd"} <= set(h.keys())
        assert h["encoder"].shape == (len(pos), 2)
    d = read_ptycho(f)
    assert np.allclose(d.positions_px(), pos, atol=1e-3) and d.wavelength == pytest.approx(WL)
    with pytest.raises(InputError, match="square"):
        write_ptylab(tmp_path / "x.hdf5", frames[:, :, :8], pos, wavelength=WL, distance=Z,
                     pixel_size=PIX)


def _ptypy_file(path, frames, pos, *, drop_meta=(), chunk=4, weights=True, center=None):
    with h5py.File(path, "w") as f:
        meta = f.create_group("meta")
        vals = {"energy": HC / WL / 1.602176634e-19 / 1e3, "distance": Z,
                "psize": np.array([PIX, PIX]), "shape": np.array([M, M]),
                "center": np.array(center or [M // 2, M // 2], float),
                "propagation": "farfield", "version": "0.1"}
        for k, v in vals.items():
            if k not in drop_meta:
                meta[k] = v
        w2 = np.ones((M, M))
        w2[2, 2] = 0
        meta["weight2d"] = w2
        f.create_group("info")["label"] = "test"
        ch = f.create_group("chunks")
        for k, s in enumerate(range(0, len(pos), chunk)):
            g = ch.create_group(str(k))
            g["data"] = frames[s:s + chunk].astype(np.int32)
            g["positions"] = pos[s:s + chunk] * DX  # (y, x) metres
            g["indices"] = np.arange(s, min(s + chunk, len(pos)))
            if weights:
                w = np.ones((len(g["data"]), M, M))
                w[:, 5, 6] = 0
                g["weights"] = w
            else:
                g["weights"] = np.zeros((0,))
    return path


def test_ptypy(scan, tmp_path):
    frames, pos = scan
    f = _ptypy_file(tmp_path / "s.ptyd", frames, pos)
    assert is_ptycho_file(f)
    d = read_ptycho(f)
    assert d.layout == "ptypy" and d.n_frames == len(pos)  # 3 chunks (4, 4, 1) in order
    assert np.array_equal(d.intensities, frames.astype(np.int32).astype(np.float32))
    assert d.wavelength == pytest.approx(WL, rel=1e-9) and d.distance == Z
    assert np.allclose(d.positions_px(), pos, atol=1e-9)
    assert not d.mask[2, 2] and not d.mask[5, 6] and d.mask.sum() == M * M - 2
    assert d.metadata["propagation"] == "farfield"
    assert "PtyPy .ptyd" in describe(f) and "propagation farfield" in describe(f)
    # chunk names sort numerically (10 after 9), empty weights are allowed
    f2 = _ptypy_file(tmp_path / "c1.ptyd", frames, pos, chunk=1, weights=False)
    assert np.allclose(read_ptycho(f2).positions_px(), pos, atol=1e-9)
    off = read_ptycho(_ptypy_file(tmp_path / "c.ptyd", frames, pos, center=[7.0, 9.0]))
    assert any("meta/center" in w for w in off.metadata["warnings"])


def test_ptypy_missing_keys(scan, tmp_path):
    frames, pos = scan
    f = _ptypy_file(tmp_path / "m.ptyd", frames, pos, drop_meta=("energy", "psize"))
    with pytest.raises(FileFormatError, match="meta/energy, meta/psize"):
        read_ptycho(f)
    with h5py.File(tmp_path / "nochunk.ptyd", "w") as h:
        h.create_group("chunks")
        h.create_group("meta")["energy"] = 8.0
    with pytest.raises(FileFormatError, match="chunks/<k>/data"):
        read_ptycho(tmp_path / "nochunk.ptyd")
    with h5py.File(tmp_path / "nopos.ptyd", "w") as h:
        m = h.create_group("meta")
        m["energy"], m["distance"], m["psize"] = 8.0, 1.0, 1e-4
        h["chunks/0/data"] = frames[:2]
    with pytest.raises(FileFormatError, match="chunks/0 misses positions"):
        read_ptycho(tmp_path / "nopos.ptyd")


def _corrupt_cases(tmp_path, frames, pos):
    cases = {}
    p = tmp_path / "basis.cxi"
    _cdtools_file(p, frames, pos, pixel=DX, distance=Z)
    with h5py.File(p, "a") as h:
        del h["entry_1/instrument_1/detector_1/basis_vectors"]
        h["entry_1/instrument_1/detector_1/basis_vectors"] = np.zeros((3, 3))
    cases["basis shape"] = p
    p = tmp_path / "basis0.cxi"
    _cdtools_file(p, frames, pos, pixel=DX, distance=Z)
    with h5py.File(p, "a") as h:
        del h["entry_1/instrument_1/detector_1/basis_vectors"]
        h["entry_1/instrument_1/detector_1/basis_vectors"] = np.array([[1e-4, 0, 0]] * 2)
    cases["degenerate"] = p
    p = _ptylab_file(tmp_path / "enc.hdf5", frames, pos)
    with h5py.File(p, "a") as h:
        del h["encoder"]
        h["encoder"] = np.zeros((3, 2))
    cases["encoder shape"] = p
    p = _ptylab_file(tmp_path / "wl.hdf5", frames, pos)
    with h5py.File(p, "a") as h:
        del h["wavelength"]
        h["wavelength"] = np.array([-1.0])
    cases["negative wavelength"] = p
    p = _ptylab_file(tmp_path / "str.hdf5", frames, pos)
    with h5py.File(p, "a") as h:
        del h["zo"]
        h["zo"] = "two metres"
    cases["string zo"] = p
    p = _ptylab_file(tmp_path / "orient.hdf5", frames, pos, orientation=9)
    cases["orientation"] = p
    p = _ptypy_file(tmp_path / "mis.ptyd", frames, pos)
    with h5py.File(p, "a") as h:
        del h["chunks/1/positions"]
        h["chunks/1/positions"] = np.zeros((2, 2))
    cases["chunk mismatch"] = p
    p = _ptypy_file(tmp_path / "shape.ptyd", frames, pos)
    with h5py.File(p, "a") as h:
        del h["chunks/1/data"]
        h["chunks/1/data"] = np.zeros((4, 8, 8))
    cases["chunk frame shape"] = p
    good = _ptylab_file(tmp_path / "good.hdf5", frames, pos)
    raw = good.read_bytes()
    trunc = tmp_path / "trunc.hdf5"
    trunc.write_bytes(raw[: len(raw) // 3])
    cases["truncated"] = trunc
    flipped = bytearray(raw)
    g = np.random.default_rng(3)
    for i in g.integers(2048, len(raw), 200):
        flipped[i] ^= 0xFF
    noisy = tmp_path / "noisy.hdf5"
    noisy.write_bytes(bytes(flipped))
    cases["bytes flipped"] = noisy
    return cases


def test_corrupt_files_one_line_errors(scan, tmp_path):
    frames, pos = scan
    for name, p in _corrupt_cases(tmp_path, frames, pos).items():
        try:
            read_ptycho(p)
        except PhasekitError as exc:
            msg = str(exc)
            assert "\n" not in msg and str(p) in msg, (name, msg)
            continue
        assert name == "bytes flipped", f"{name}: read without complaint"  # may survive
