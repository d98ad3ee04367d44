"""Pattern input as users have it: TIFF / EDF readers, centring, binning, cropping, masks.

The TIFF files are written with ``tifffile.imwrite`` of a plain array and the EDF files byte by
byte (header text + raw pixels), as other software lays them out; the synthetic patterns have
their zero frequency at a known, off-centre, sub-pixel position.
"""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cdi.prepare import (
    bin_pattern,
    center_of_mass,
    center_pattern,
    crop_pattern,
    find_center,
    follow_support,
    mask_from_file,
    mask_from_value,
    parse_center,
    prepare_pattern,
    saturation_mask,
)
from phasekit.cli.main import cli
from phasekit.core.errors import ConfigError, FileFormatError, InputError
from phasekit.io import describe, read_diffraction

tifffile = pytest.importorskip("tifffile")


# --------------------------------------------------------------------------- helpers
def synthetic_pattern(n, center, *, seed=0, photons=1e8, beamstop=3.0, complex_obj=False):
    """Poisson-noisy |FFT|^2 of a random isolated object, zero frequency at ``center`` (y, x),
    with a round beamstop (unmeasured) on it.  Returns (intensity, mask)."""
    rng = np.random.default_rng(seed)
    o = n // 8
    yy, xx = np.mgrid[: 2 * o, : 2 * o]
    blob = (((yy - o) ** 2 + (xx - o) ** 2) < o * o) * rng.random((2 * o, 2 * o))
    if complex_obj:
        blob = blob * np.exp(0.5j * rng.random(blob.shape))
    u = np.zeros((n, n), complex)
    u[n // 2 - o: n // 2 + o, n // 2 - o: n // 2 + o] = blob
    dy, dx = center[0] - n // 2, center[1] - n // 2
    y = np.arange(n)[:, None] - n // 2
    x = np.arange(n)[None, :] - n // 2
    u = u * np.exp(2j * np.pi * (dy * y + dx * x) / n)  # a phase ramp moves the pattern
    F = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(u)))
    I = np.abs(F) ** 2
    I = rng.poisson(I / I.sum() * photons).astype(np.float64)
    mask = ((y + n // 2 - center[0]) ** 2 + (x + n // 2 - center[1]) ** 2) >= beamstop ** 2
    return I, mask


def edf_bytes(arr, data_type, *, order="LowByteFirst", extra=None, compression=None,
              size=True, block=512):
    """An EDF file laid out by hand: '{\\n key = value ;\\n ... }\\n' padded to ``block``."""
    arr = np.asarray(arr)
    body = arr.tobytes()
    if compression == "gzip":
        body = gzip.compress(body)
    keys = {"HeaderID": "EH:000001:000000:000000", "Image": "1", "ByteOrder": order,
            "DataType": data_type}
    dims = arr.shape[::-1]  # Dim_1 = fast axis (x)
    for k, d in enumerate(dims, 1):
        keys[f"Dim_{k}"] = str(d)
    if size:
        keys["Size"] = str(len(body))
    if compression:
        keys["Compression"] = compression
    keys.update(extra or {})
    text = "{\n" + "".join(f"{k} = {v} ;\n" for k, v in keys.items())
    pad = (-(len(text) + 2)) % block
    return (text + " " * pad + "}\n").encode("latin-1") + body


def one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


# --------------------------------------------------------------------------- find_center
@pytest.mark.parametrize("n,center,complex_obj", [
    (128, (64.0, 64.0), False),           # already centred
    (128, (69.3, 54.7), False),           # sub-pixel, off-centre
    (128, (52.5, 75.25), True),           # complex object, half-pixel
    (256, (153.6, 104.4), False),         # ~10 % of N off-centre on both axes
])
def test_find_center_recovers_known_shift(n, center, complex_obj):
    I, mask = synthetic_pattern(n, center, complex_obj=complex_obj, seed=n)
    c, info = find_center(I, mask)
    assert info["method"] == "friedel" and info["symmetry"] > 0.6
    assert np.allclose(c, center, atol=0.5), (c, center)


def test_find_center_ignores_masked_pixels():
    I, mask = synthetic_pattern(128, (60.4, 70.2), seed=3)
    # a detector gap and hot pixels: garbage values, masked
    mask[:, 20:24] = False
    I[:, 20:24] = 1e9
    c, _ = find_center(I, mask)
    assert np.allclose(c, (60.4, 70.2), atol=0.5)
    # without the mask the garbage wins: the mask is what made it work
    c_bad, _ = find_center(I)
    assert not np.allclose(c_bad, (60.4, 70.2), atol=0.5)


def test_find_center_falls_back_to_center_of_mass(caplog):
    rng = np.random.default_rng(0)
    I = rng.random((64, 64)) * 100  # white noise: no point symmetry anywhere
    c, info = find_center(I)
    assert info["method"] == "center-of-mass" and "weak Friedel symmetry" in info["warning"]
    assert np.allclose(c, center_of_mass(I))
    assert np.allclose(center_of_mass(np.pad(np.ones((2, 2)), ((3, 1), (1, 3)))), (3.5, 1.5))


def test_find_center_binned_search_keeps_precision():
    I, mask = synthetic_pattern(256, (140.3, 117.8), seed=5)
    c, info = find_center(I, mask, max_elements=1 << 16)  # forces a binned search
    assert info["search_binning"] >= 2
    assert np.allclose(c, (140.3, 117.8), atol=1.0)


# --------------------------------------------------------------------------- centring etc.
def test_center_pattern_crop_and_pad():
    I = np.arange(100, dtype=float).reshape(10, 10)
    J, m, info = center_pattern(I, None, (3.2, 6.4))
    # rounded to (3, 6): crop keeps 2*min(c, N-c) pixels, zero frequency at M//2
    assert J.shape == (6, 8) and J[3, 4] == I[3, 6] and m is None
    assert info["shift"] == [0, -2] and info["residual"] == [0.2, 0.4]
    assert info["offset"] == [-2, 1]
    assert J[0, 0] == I[0, 2] and J[-1, -1] == I[5, 9]
    P, mp, info = center_pattern(I, None, (3, 6), mode="pad")
    assert P.shape == (14, 12) and P[7, 6] == I[3, 6]
    assert mp.sum() == 100 and not mp[0].any() and P[~mp].sum() == 0
    # a centred pattern is left as it is
    K, mk, info = center_pattern(I, np.ones((10, 10), bool), (5, 5))
    assert np.array_equal(K, I) and mk.all() and info["shift"] == [0, 0]
    with pytest.raises(InputError, match="outside the pattern"):
        center_pattern(I, None, (12, 3))
    with pytest.raises(InputError, match="too close to the edge"):
        center_pattern(I, None, (1, 5))


def test_bin_pattern_conserves_counts_and_centre():
    rng = np.random.default_rng(1)
    I = np.zeros((16, 16))
    I[2:14, 2:14] = rng.poisson(50, (12, 12))
    J, m, info = bin_pattern(I, None, 2)
    assert J.shape == (8, 8) and m is None
    assert float(J.sum()) == pytest.approx(I.sum())
    assert info["zero_offset"] == -0.25
    # the zero-frequency pixel lies in the centre block
    I2 = np.zeros((15, 15)); I2[7, 7] = 1
    J2, _, info = bin_pattern(I2, None, 3)
    assert J2.shape == (5, 5) and J2[2, 2] == 1 and info["zero_offset"] == 0.0
    I3 = np.zeros((16, 16)); I3[8, 8] = 1
    J3, _, _ = bin_pattern(I3, None, 2)
    assert J3[4, 4] == 1
    # a block with one unmeasured sub-pixel is unmeasured; with min_fraction it is scaled
    mask = np.ones((16, 16), bool); mask[8, 8] = False
    Ib = np.ones((16, 16))
    Jb, mb, _ = bin_pattern(Ib, mask, 2)
    assert not mb[4, 4] and mb.sum() == 63 and Jb[4, 4] == 0 and Jb[0, 0] == 4
    Jc, mc, _ = bin_pattern(Ib, mask, 2, min_fraction=0.75)
    assert mc.all() and Jc[4, 4] == pytest.approx(4.0)


def test_crop_pattern_keeps_the_centre():
    I = np.zeros((10, 12)); I[5, 6] = 7
    J, m, _ = crop_pattern(I, np.ones((10, 12), bool), (4, 6))
    assert J.shape == (4, 6) and J[2, 3] == 7 and m.shape == (4, 6)
    J, _, _ = crop_pattern(I, None, 5)
    assert J[2, 2] == 7
    with pytest.raises(InputError, match="does not fit"):
        crop_pattern(I, None, 11)


def test_masks_from_values_files_and_saturation(tmp_path):
    I = np.array([[0.0, 1.0, 2.0], [-1.0, np.nan, 5.0], [3.0, 9.0, 9.5]])
    m, _ = mask_from_value(I, "zeros")
    assert m.tolist() == [[False, True, True], [True, False, True], [True, True, True]]
    m, _ = mask_from_value(I, "negative")
    assert (~m).sum() == 2 and not m[1, 0] and not m[1, 1]
    m, info = mask_from_value(I, "nan")
    assert (~m).sum() == 1 and info["unmeasured"] == 1
    with pytest.raises(InputError, match="unknown mask rule"):
        mask_from_value(I, "ones")
    # saturation: exactly the pixels >= value, then their neighbours
    S = np.zeros((7, 7)); S[3, 3] = 100; S[0, 6] = 99.9
    m, info = saturation_mask(S, 100)
    assert np.argwhere(~m).tolist() == [[3, 3]] and info["saturated"] == 1
    m, info = saturation_mask(S, 99.9, dilate=1)
    bad = np.zeros((7, 7), bool); bad[2:5, 2:5] = True; bad[0:2, 5:7] = True
    assert np.array_equal(~m, bad) and info["saturated"] == 2 and info["unmeasured"] == 13
    # files: non-zero = measured, or inverted; .npy, TIFF and EDF
    arr = np.ones((3, 3), np.uint8); arr[0, 0] = 0
    np.save(tmp_path / "m.npy", arr)
    tifffile.imwrite(tmp_path / "m.tif", arr)
    (tmp_path / "m.edf").write_bytes(edf_bytes(arr, "UnsignedByte"))
    for name in ("m.npy", "m.tif", "m.edf"):
        m, info = mask_from_file(tmp_path / name, (3, 3))
        assert m.sum() == 8 and not m[0, 0], name
        m, info = mask_from_file(tmp_path / name, (3, 3), invert=True)
        assert m.sum() == 1 and m[0, 0] and info["inverted"]
    with pytest.raises(InputError, match=r"mask shape \(3, 3\) != pattern shape \(4, 4\)"):
        mask_from_file(tmp_path / "m.npy", (4, 4))
    with pytest.raises(FileFormatError, match="no such mask file"):
        mask_from_file(tmp_path / "nope.npy", (3, 3))


def test_follow_support():
    s = np.zeros((16, 16), bool); s[6:10, 7:9] = True
    # binning by 2 (half the field of view, same pixels): a central crop
    b = follow_support(s, (8, 8), 0.5)
    assert b.sum() == 8 and np.array_equal(b, s[4:12, 4:12])
    # a Fourier crop to 8 pixels (same field of view, pixels twice as large)
    c = follow_support(s, (8, 8), 1.0)
    assert np.argwhere(c).tolist() == [[3, 4], [4, 4]]
    big = np.zeros((16, 16), bool); big[1, 1] = True
    with pytest.raises(InputError, match="does not fit in the field of view"):
        follow_support(big, (8, 8), 0.5)


def test_prepare_pattern_end_to_end():
    I, mask = synthetic_pattern(128, (70.4, 57.6), seed=11)
    I[~mask] = 0  # a beamstop written as zeros
    I[100, 100] = 1e12  # one hot pixel
    out, m, _, rep = prepare_pattern(I, mask_rule="zeros", saturation=1e11, bin=2, crop=48)
    assert rep["center"]["method"] == "friedel"
    assert np.allclose(rep["center"]["center"], (70.4, 57.6), atol=0.5)
    # rounded to (70, 58): the largest centred window is 116 x 116, zero frequency at 58
    assert rep["centering"]["shift"] == [-12, 0] and rep["centering"]["shape_out"] == [116, 116]
    assert out.shape == (48, 48) and m.shape == (48, 48) and rep["shape_out"] == [48, 48]
    assert rep["saturation"]["saturated"] == 1 and rep["mask"]["rule"]["unmeasured"] > 0
    # the pattern is now centred: its own centre is found at N//2
    c, _ = find_center(out, m)
    assert np.allclose(c, (24, 24), atol=0.75)
    json.dumps(rep)  # stored in the result's config
    assert parse_center("none") is None and parse_center("12, 3.5") == (12.0, 3.5)
    with pytest.raises(ConfigError):
        parse_center("12")


# --------------------------------------------------------------------------- readers
def test_tiff_pattern(tmp_path):
    a = (np.arange(30, dtype=np.uint16) * 7).reshape(5, 6)
    tifffile.imwrite(tmp_path / "p.tif", a)
    d = read_diffraction(tmp_path / "p.tif")
    assert d.shape == (5, 6) and d.intensity.dtype == np.float32
    assert np.array_equal(d.intensity, a) and d.metadata["format"] == "tiff"
    assert d.metadata["raw_dtype"] == "uint16" and d.mask is None
    tifffile.imwrite(tmp_path / "f.tiff", a.astype(np.float32) / 3)
    assert np.allclose(read_diffraction(tmp_path / "f.tiff").intensity, a / 3)
    tifffile.imwrite(tmp_path / "stack.tif", np.ones((3, 4, 4), np.float32),
                     photometric="minisblack")
    with pytest.raises(FileFormatError, match=r"stack\.tif: a TIFF of 3 pages") as e:
        read_diffraction(tmp_path / "stack.tif")
    one_line(e)
    tifffile.imwrite(tmp_path / "rgb.tif", np.ones((4, 4, 3), np.uint8), photometric="rgb")
    with pytest.raises(FileFormatError, match="colour TIFF"):
        read_diffraction(tmp_path / "rgb.tif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x07" * 40)
    with pytest.raises(FileFormatError, match=r"bad\.tif: (corrupt or unreadable TIFF|a TIFF file without)") as e:
        read_diffraction(tmp_path / "bad.tif")
    one_line(e)


@pytest.mark.parametrize("name,dtype", [
    ("UnsignedByte", "u1"), ("SignedByte", "i1"), ("UnsignedShort", "u2"), ("SignedShort", "i2"),
    ("UnsignedInteger", "u4"), ("SignedInteger", "i4"), ("UnsignedLong", "u4"),
    ("SignedLong", "i4"), ("Signed64", "i8"), ("FloatValue", "f4"), ("DoubleValue", "f8"),
])
@pytest.mark.parametrize("order", ["LowByteFirst", "HighByteFirst"])
def test_edf_data_types(tmp_path, name, dtype, order):
    a = (np.arange(12) % 100).reshape(3, 4)
    if dtype[0] == "i":
        a = a - 50
    endian = "<" if order == "LowByteFirst" else ">"
    raw = a.astype(endian + dtype)
    p = tmp_path / "p.edf"
    p.write_bytes(edf_bytes(raw, name, order=order))
    d = read_diffraction(p)
    assert d.shape == (3, 4) and np.array_equal(d.intensity, a)
    assert d.metadata["format"] == "edf" and d.metadata["edf_header"]["DataType"] == name


def test_edf_layouts_and_errors(tmp_path):
    a = np.arange(24, dtype=np.uint16).reshape(4, 6)
    p = tmp_path / "x.edf"
    # Dim_1 is the fast axis: a (4, 6) array has Dim_1 = 6, Dim_2 = 4
    raw = edf_bytes(a, "UnsignedShort", extra={"PSize_1": "75e-6", "SampleDistance": "5.0",
                                               "WaveLength": "1.5e-10"})
    assert b"Dim_1 = 6 ;" in raw and b"Dim_2 = 4 ;" in raw and raw.index(b"}\n") + 2 == 512
    p.write_bytes(raw)
    d = read_diffraction(p)
    assert np.array_equal(d.intensity, a) and d.intensity[1, 0] == 6
    assert d.pixel_size == 75e-6 and d.distance == 5.0 and d.wavelength == 1.5e-10
    # a header that is not padded to 512 bytes, and no Size key
    p.write_bytes(edf_bytes(a, "UnsignedShort", size=False, block=1))
    assert np.array_equal(read_diffraction(p).intensity, a)
    # gzip compression
    p.write_bytes(edf_bytes(a, "UnsignedShort", compression="gzip"))
    assert np.array_equal(read_diffraction(p).intensity, a)
    # 3-D
    v = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    p.write_bytes(edf_bytes(v, "FloatValue"))
    assert np.array_equal(read_diffraction(p).intensity, v)

    def refused(data, pattern):
        p.write_bytes(data)
        with pytest.raises(FileFormatError, match=pattern) as e:
            read_diffraction(p)
        assert one_line(e).startswith(str(p))

    refused(edf_bytes(a, "UnsignedShort", compression="RLE"), "unsupported EDF compression 'RLE'")
    refused(edf_bytes(a, "Complex"), "unknown EDF DataType 'Complex'")
    refused(edf_bytes(a, "UnsignedShort", order="MiddleEndian"), "unknown EDF ByteOrder")
    refused(edf_bytes(a, "UnsignedShort")[:-10], r"truncated EDF file \(38 of 48 bytes")
    refused(edf_bytes(a, "UnsignedShort", extra={"Size": "40"}), "Size = 40 bytes != 48")
    refused(edf_bytes(a, "UnsignedShort", extra={"Dim_2": "x"}), "Dim_2 = 'x' is not an integer")
    refused(edf_bytes(a, "UnsignedShort") * 2, "several frames")
    refused(b"{\nDim_1 = 4 ;\nDataType = FloatValue ;\n" + b" " * 100, "closing '}'")
    refused(edf_bytes(a, "UnsignedShort", compression="gzip")[:-5] + b"xxxxx", "corrupt gzip")
    refused(b"{\nDim_1 = 4 ;\nDim_2 = 2 ;\n}\n" + bytes(32), "without DataType")
    refused(b"hello", "unrecognised file format")


def test_tiff_detection_pattern_versus_tilt_series(tmp_path):
    from phasekit.tomo.io import is_tomo_file, tomo_kind

    tifffile.imwrite(tmp_path / "p.tif", np.ones((8, 8), np.float32))
    assert not is_tomo_file(tmp_path / "p.tif") and tomo_kind(tmp_path / "p.tif") is None
    tifffile.imwrite(tmp_path / "s.tif", np.ones((3, 8, 8), np.float32), photometric="minisblack")
    assert is_tomo_file(tmp_path / "s.tif")  # several pages: a tilt series (angles missing)
    (tmp_path / "p.rawtlt").write_text("0\n")
    assert is_tomo_file(tmp_path / "p.tif")  # one page with its angle file: a tilt series


# --------------------------------------------------------------------------- CLI
def _run(args):
    r = CliRunner().invoke(cli, args)
    return r


@pytest.fixture(scope="module")
def off_centre(tmp_path_factory):
    d = tmp_path_factory.mktemp("pat")
    I, _ = synthetic_pattern(64, (36.0, 27.0), seed=2, photons=1e7, beamstop=0.5)
    return d, I


def test_cli_reconstruct_tiff_finds_the_centre(off_centre):
    d, I = off_centre
    p = d / "pattern.tif"
    tifffile.imwrite(p, I.astype(np.float32))
    out = d / "tif_result.cxi"
    r = _run(["reconstruct", str(p), "-n", "10", "--no-figure", "-q", "-o", str(out)])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("pattern:"))
    # the zero frequency is 4 px below and 5 px left of (32, 32): 56 x 54 pixels centred on it
    assert "friedel" in line and "offset (4, -5) px from the array centre" in line
    assert "crop 64x64 -> 56x54" in line
    from phasekit.io import read_result

    cfg = read_result(out)["config"]
    assert np.allclose(cfg["pattern"]["center"]["center"], (36, 27), atol=0.5)
    assert cfg["pattern"]["shape_out"] == [56, 54]
    # an explicit centre, binning and cropping; --no-center keeps the array
    r = _run(["reconstruct", str(p), "-n", "5", "--no-figure", "-q", "-o", str(out),
              "--center", "36,27", "--bin", "2", "--crop", "24"])
    assert r.exit_code == 0, r.output
    assert "zero frequency at (36, 27) (given)" in r.output
    assert "crop + bin 2 + crop 64x64 -> 24x24" in r.output
    r = _run(["reconstruct", str(p), "-n", "5", "--no-figure", "-q", "-o", str(out),
              "--no-center", "--saturation", "1e30", "--mask", "negative"])
    assert r.exit_code == 0, r.output
    assert "(none (taken as centred))" in r.output and "0 saturated" in r.output
    assert "input:   " in r.output and "(64x64," in r.output


def test_cli_reconstruct_edf_with_mask_file(off_centre):
    d, I = off_centre
    p = d / "pattern.edf"
    counts = np.rint(I).astype(np.uint32)
    counts[20:22, :] = 0  # a detector gap
    p.write_bytes(edf_bytes(counts.astype(">u4"), "UnsignedInteger", order="HighByteFirst"))
    gap = np.zeros((64, 64), np.uint8); gap[20:22, :] = 1
    np.save(d / "gap.npy", gap)
    out = d / "edf_result.cxi"
    r = _run(["reconstruct", str(p), "-n", "10", "--no-figure", "-q", "-o", str(out),
              "--mask", str(d / "gap.npy"), "--mask-invert"])
    assert r.exit_code == 0, r.output
    assert "offset (4, -5) px" in r.output and "2916 of 3024 pixels measured" in r.output
    info = _run(["info", str(p)])
    assert info.exit_code == 0, info.output
    assert "EDF image" in info.output and "shape (64, 64)" in info.output
    assert "zero frequency: estimated at (36.0, 27.0) (friedel" in info.output
    assert "EDF header: " in info.output and "DataType UnsignedInteger" in info.output
    # bad option values are one-line errors (exit 2)
    for args, msg in ([["--center", "3"], "--center '3'"],
                      [["--mask", "nothere.npy"], "no such mask file"],
                      [["--crop", "100"], "does not fit"]):
        r = _run(["reconstruct", str(p), "-n", "2", "--no-figure", "-q", "-o", str(out)] + args)
        assert r.exit_code == 2 and msg in r.output and len(r.output.strip().splitlines()) == 1, \
            r.output


def test_cli_info_tiff_pattern(off_centre):
    d, I = off_centre
    p = d / "info.tif"
    tifffile.imwrite(p, I.astype(np.float32))
    r = _run(["info", str(p)])
    assert r.exit_code == 0, r.output
    assert "TIFF image" in r.output and "TIFF page  shape (64, 64)" in r.output
    assert "zero frequency: estimated at (36.0, 27.0)" in r.output
    assert "phasekit reconstruct moves it to (32, 32)" in r.output
    assert describe(p).startswith("file: ")


def test_pattern_options_refused_for_tilt_series(tmp_path):
    p = tmp_path / "s.tif"
    tifffile.imwrite(p, np.ones((3, 8, 8), np.float32), photometric="minisblack")
    (tmp_path / "s.rawtlt").write_text("-10\n0\n10\n")
    r = _run(["reconstruct", str(p), "--bin", "2"])
    assert r.exit_code == 2 and "--bin: for CDI patterns only" in r.output
