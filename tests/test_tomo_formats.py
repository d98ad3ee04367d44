"""Tomography readers: files laid out by hand (h5py, raw bytes, tifffile), never by phasekit's
writer, in each layout phasekit reads (APS Data Exchange, NeXus NXtomo, MRC + IMOD .tlt, TIFF
stacks), with angles in degrees and radians, flats and darks; ``phasekit info`` and the errors
that name the tomography layouts."""
from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli
from phasekit.core.errors import FileFormatError, InputError
from phasekit.io.tomo_formats import parse_angles, read_mrc, read_tomo_layout, tomo_layout
from phasekit.tomo.formats import read_scan
from phasekit.tomo.io import is_tomo_file, tomo_kind


def _frames(n, rows, cols, seed=0, lo=100, hi=1000):
    return np.random.default_rng(seed).integers(lo, hi, (n, rows, cols)).astype(np.uint16)


def _dxchange(path, *, theta=None, units=None, flats=3, darks=2, n=5, rows=4, cols=6):
    data = _frames(n, rows, cols)
    with h5py.File(path, "w") as f:
        f["exchange/data"] = data
        if flats:
            f["exchange/data_white"] = _frames(flats, rows, cols, 1, 1000, 1100)
        if darks:
            f["exchange/data_dark"] = _frames(darks, rows, cols, 2, 0, 10)
        if theta is not None:
            d = f.create_dataset("exchange/theta", data=np.asarray(theta, float))
            if units:
                d.attrs["units"] = units
    return data


def test_dxchange_degrees_flats_darks_and_orientation(tmp_path):
    p = tmp_path / "dx.h5"
    data = _dxchange(p, theta=[0, 45, 90, 135, 180])
    assert tomo_layout(p) == "dxchange" and tomo_kind(p) == "dxchange" and is_tomo_file(p)
    raw = read_tomo_layout(p)
    assert raw.layout == "dxchange"
    assert raw.projections.shape == (5, 6, 4)  # (n, Dx = cols, Dy = rows)
    assert raw.projections[2, 5, 3] == data[2, 3, 5]
    assert raw.flats.shape == (3, 6, 4) and raw.darks.shape == (2, 6, 4)
    assert raw.angles.tolist() == [0, 45, 90, 135, 180]
    rows = read_tomo_layout(p, rows=slice(1, 3))
    assert rows.projections.shape == (5, 6, 2) and rows.flats.shape == (3, 6, 2)
    assert rows.projections[0, 2, 0] == data[0, 1, 2]


def test_dxchange_radians_attribute_and_missing_theta(tmp_path):
    p = tmp_path / "rad.h5"
    _dxchange(p, theta=np.deg2rad([0, 30, 60, 90, 120]), units="rad")
    np.testing.assert_allclose(read_tomo_layout(p).angles, [0, 30, 60, 90, 120], atol=1e-9)
    q = tmp_path / "none.h5"
    _dxchange(q, theta=None, n=4)
    raw = read_tomo_layout(q)
    assert raw.angles.tolist() == [0, 45, 90, 135] and raw.angle_source == "assumed"
    assert "no /exchange/theta" in raw.notes[0]
    assert read_tomo_layout(q, angles="0:60:180").angles.tolist() == [0, 60, 120, 180]
    with pytest.raises(InputError, match="3 angles for 4 projections"):
        read_tomo_layout(q, angles="0:60:120")


def _nxtomo(path, units="degree", definition=True):
    rows, cols = 3, 5
    keys = np.array([2, 2, 1, 0, 0, 3, 0, 0, 1])
    frames = np.zeros((keys.size, rows, cols), np.float32)
    frames[keys == 2] = 5
    frames[keys == 1] = 500
    proj_vals = [100, 200, 300, 400]
    frames[np.flatnonzero(keys == 0)] = np.array(proj_vals, np.float32)[:, None, None]
    frames[keys == 3] = -1
    ang = np.array([0, 0, 0, 0, 60, 90, 120, 180, 180], float)
    with h5py.File(path, "w") as f:
        e = f.create_group("entry0000")
        e.attrs["NX_class"] = "NXentry"
        if definition:
            e["definition"] = "NXtomo"
        d = e.create_group("instrument/detector")
        d["data"] = frames
        d["image_key"] = keys
        a = e.create_dataset("sample/rotation_angle",
                             data=np.deg2rad(ang) if units.startswith("rad") else ang)
        a.attrs["units"] = units
    return keys, proj_vals


@pytest.mark.parametrize("units", ["degree", "rad"])
def test_nxtomo_image_key_split_and_angle_units(tmp_path, units):
    p = tmp_path / f"scan_{units}.nx"
    _nxtomo(p, units)
    assert tomo_layout(p) == "nxtomo"
    raw = read_tomo_layout(p)
    assert raw.projections.shape == (4, 5, 3)
    assert raw.projections[:, 0, 0].tolist() == [100, 200, 300, 400]
    assert raw.flats.shape[0] == 2 and float(raw.flats.max()) == 500
    assert raw.darks.shape[0] == 2 and float(raw.darks.max()) == 5
    np.testing.assert_allclose(raw.angles, [0, 60, 120, 180], atol=1e-9)
    assert any("invalid" in n for n in raw.notes)


def test_nxtomo_bad_units_is_one_line(tmp_path):
    p = tmp_path / "bad.nx"
    _nxtomo(p, "furlong")
    with pytest.raises(FileFormatError, match="units 'furlong'; expected degrees or radians"):
        read_tomo_layout(p)


def _mrc_bytes(data, mode, endian="<", next_bytes=0, stamp=True):
    nz, ny, nx = data.shape
    head = bytearray(1024)
    struct.pack_into(endian + "4i", head, 0, nx, ny, nz, mode)
    struct.pack_into(endian + "3f", head, 40, nx * 2.0, ny * 2.0, nz * 2.0)
    struct.pack_into(endian + "i", head, 92, next_bytes)
    head[208:212] = b"MAP "
    if stamp:
        head[212:216] = b"\x44\x44\x00\x00" if endian == "<" else b"\x11\x11\x00\x00"
    dt = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}[mode]
    return bytes(head) + b"\x00" * next_bytes + data.astype(np.dtype(dt).newbyteorder(endian)).tobytes()


@pytest.mark.parametrize("mode,endian,next_bytes", [(1, "<", 0), (2, ">", 128), (6, "<", 64),
                                                     (12, "<", 0), (0, ">", 0)])
def test_mrc_modes_endianness_extended_header(tmp_path, mode, endian, next_bytes):
    data = (np.arange(3 * 4 * 5).reshape(3, 4, 5) % 100).astype(np.float32)
    p = tmp_path / "tilts.mrc"
    p.write_bytes(_mrc_bytes(data, mode, endian, next_bytes))
    (tmp_path / "tilts.tlt").write_text(" -30.0\n0.0\n30.5\n")
    arr, hdr = read_mrc(p)
    assert (hdr["nx"], hdr["ny"], hdr["nz"], hdr["mode"], hdr["next"]) == (5, 4, 3, mode, next_bytes)
    np.testing.assert_array_equal(np.asarray(arr, np.float32), data)
    assert hdr["pixel"] == pytest.approx(2.0)
    assert tomo_kind(p) == "mrc"
    raw = read_tomo_layout(p)
    assert raw.projections.shape == (3, 5, 4)
    assert raw.projections[1, 4, 2] == data[1, 2, 4]
    assert raw.angles.tolist() == [-30.0, 0.0, 30.5] and raw.angle_source == "tilts.tlt"


def test_mrc_without_stamp_truncated_and_complex(tmp_path):
    data = np.ones((2, 3, 4), np.float32)
    p = tmp_path / "old.st"
    p.write_bytes(_mrc_bytes(data, 2, "<", stamp=False))
    (tmp_path / "old.rawtlt").write_text("-10\n10\n")
    assert read_tomo_layout(p).angles.tolist() == [-10, 10]
    t = tmp_path / "cut.mrc"
    t.write_bytes(_mrc_bytes(data, 2)[:-8])
    with pytest.raises(FileFormatError, match="truncated MRC file"):
        read_mrc(t)
    c = tmp_path / "cplx.mrc"
    head = bytearray(_mrc_bytes(data, 2))
    struct.pack_into("<i", head, 12, 4)
    c.write_bytes(bytes(head))
    with pytest.raises(FileFormatError, match="MRC mode 4 is not supported"):
        read_mrc(c)
    q = tmp_path / "noangles.mrc"
    q.write_bytes(_mrc_bytes(data, 2))
    with pytest.raises(FileFormatError, match="noangles.tlt or noangles.rawtlt"):
        read_tomo_layout(q)
    assert read_tomo_layout(q, angles="-0.5:1:0.5rad").angles == pytest.approx(
        np.rad2deg([-0.5, 0.5]))


def test_tiff_stack_with_rawtlt_and_angles_option(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    pages = np.random.default_rng(3).random((4, 6, 7)).astype(np.float32)  # (n, rows, cols)
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, pages, photometric="minisblack")
    (tmp_path / "stack.rawtlt").write_text("-45\n-15\n15\n45\n")
    ts, rec, layout = read_scan(p)
    assert layout == "tiff" and rec is None
    assert ts.projections.shape == (4, 7, 6)
    np.testing.assert_array_equal(ts.projections[2], pages[2].T)
    assert ts.angles[:, 1].tolist() == [-45, -15, 15, 45]
    q = tmp_path / "bare.tif"
    tifffile.imwrite(q, pages, photometric="minisblack")
    ts2, _, _ = read_scan(q, angles="-60:40:60")
    assert ts2.angles[:, 1].tolist() == [-60, -20, 20, 60]


def test_parse_angles_specs(tmp_path):
    assert parse_angles("-60:30:60").tolist() == [-60, -30, 0, 30, 60]
    assert parse_angles("0, 90,180").tolist() == [0, 90, 180]
    np.testing.assert_allclose(parse_angles("0:1.5707963267948966:3.14159265358979rad"),
                               [0, 90, 180], atol=1e-6)
    f = tmp_path / "a.tlt"
    f.write_text("1\n2\n")
    assert parse_angles(str(f)).tolist() == [1, 2]
    with pytest.raises(InputError, match="START:STEP:STOP"):
        parse_angles("0:x:10")
    with pytest.raises(InputError, match="empty range"):
        parse_angles("10:1:0")


def test_info_describes_each_layout(tmp_path):
    dx = tmp_path / "dx.h5"
    _dxchange(dx, theta=[0, 45, 90, 135, 180])
    nx = tmp_path / "scan.nx"
    _nxtomo(nx)
    mrc = tmp_path / "t.mrc"
    mrc.write_bytes(_mrc_bytes(np.zeros((2, 3, 4), np.float32), 2))
    r = CliRunner().invoke(cli, ["info", str(dx)])
    assert r.exit_code == 0, r.output
    assert "APS Data Exchange scan: 5 projections, frames 4 x 6" in r.output
    assert "flat (white) frames: 3" in r.output and "dark frames: 2" in r.output
    assert "0 to 180 deg" in r.output and "flat/dark normalisation" in r.output
    r = CliRunner().invoke(cli, ["info", str(nx)])
    assert r.exit_code == 0, r.output
    assert "image_key: 4 projections, 2 flats, 2 darks, 1 invalid" in r.output
    r = CliRunner().invoke(cli, ["info", str(mrc)])
    assert r.exit_code == 0, r.output
    assert "MRC stack: 2 images of 3 x 4" in r.output and "angles: none" in r.output


def test_tomography_algorithm_on_a_cdi_file_names_the_layouts(tmp_path):
    p = tmp_path / "pattern.h5"
    with h5py.File(p, "w") as f:
        f["entry_1/data_1/data"] = np.ones((8, 8))
    for args in (["-a", "fbp"], ["-a", "sirt"], ["--slices", "0:4"]):
        r = CliRunner().invoke(cli, ["reconstruct", str(p), *args, "-o", str(tmp_path / "o.h5")])
        assert r.exit_code == 2, r.output
        line = r.output.strip()
        assert len(line.splitlines()) == 1 and "no diffraction data" not in line
        assert "APS Data Exchange" in line and "NXtomo" in line and "MRC" in line, line
    # an HDF5 file of no layout: info lists what it looked for
    q = tmp_path / "other.h5"
    with h5py.File(q, "w") as f:
        f["stuff/x"] = np.ones(3)
    r = CliRunner().invoke(cli, ["reconstruct", str(q), "-a", "fbp", "-o", str(tmp_path / "o2.h5")])
    assert r.exit_code == 2 and "Data Exchange" in r.output and "no diffraction" not in r.output
