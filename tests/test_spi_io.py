"""SPI stacks (phasekit.io.spi): our writer, CXI stacks and a CXIDB/LCLS pnCCD file laid out by
hand with h5py, slices, the atomic writer and one-line errors."""
import os

import h5py
import numpy as np
import pytest

from phasekit.core.errors import FileFormatError, InputError
from phasekit.io import describe
from phasekit.io.spi import (
    StackWriter,
    import_cxidb_stack,
    is_spi_stack,
    read_frames,
    read_labels,
    read_masks,
    read_pattern_metadata,
    read_stack_info,
    write_stack,
)

HC_EV = 1.23984198e-6  # h c in eV m


def _frames(n=10, h=12, w=16, seed=0):
    return np.random.default_rng(seed).poisson(3.0, (n, h, w)).astype(np.float32)


def test_writer_round_trip_in_chunks(tmp_path):
    p = tmp_path / "stack.cxi"
    fr = _frames(10)
    mask = np.ones((12, 16), bool)
    mask[5:7] = False
    md = {"wavelength": 7.75e-10, "distance": 0.586, "pixel_size": 3e-4, "centre": [6, 8],
          "note": "x"}
    with StackWriter(p, (12, 16), mask=mask, metadata=md) as w:
        for a in range(0, 10, 4):
            b = min(10, a + 4)
            w.append(fr[a:b], labels=(np.arange(a, b) % 2), diameter_m=np.full(b - a, 7e-8),
                     quaternion=np.zeros((b - a, 5, 4)))
        assert not p.exists()  # written under a temporary name until the block ends
    info = read_stack_info(p)
    assert (info.n, info.shape, info.dataset) == (10, (12, 16), "entry_1/data_1/data")
    np.testing.assert_array_equal(info.mask, mask)
    np.testing.assert_array_equal(info.labels, np.arange(10) % 2)
    assert info.wavelength == pytest.approx(7.75e-10) and info.distance == pytest.approx(0.586)
    assert info.pixel_size == pytest.approx(3e-4) and info.centre == (6.0, 8.0)
    assert info.metadata["params"]["note"] == "x"
    assert info.metadata["per_pattern"] == ["diameter_m", "quaternion"]
    np.testing.assert_array_equal(read_frames(info, 3, 8), fr[3:8])
    np.testing.assert_array_equal(read_frames(p), fr)
    assert read_frames(info, 4, 4).shape == (0, 12, 16)
    assert read_pattern_metadata(info, "quaternion", 2, 5).shape == (3, 5, 4)
    np.testing.assert_array_equal(read_labels(p), np.arange(10) % 2)
    ms = read_masks(info, 1, 3)
    assert ms.shape == (2, 12, 16) and (ms == mask).all()
    # on disk: CXI conventions (bit field, 0 = good; geometry with units; data link)
    with h5py.File(p, "r") as f:
        m = f["entry_1/instrument_1/detector_1/mask"][()]
        assert m.dtype == np.uint32 and (m[5:7] == 1).all() and (m[:5] == 0).all()
        assert f["entry_1/instrument_1/detector_1/distance"].attrs["units"] == "m"
        assert f["entry_1/data_1/data"].shape == (10, 12, 16)
        assert f["entry_1/sample_1/labels"].dtype == np.int8
    assert is_spi_stack(p)
    text = describe(p)
    assert "SPI stack: 10 patterns of 12 x 16" in text and "5 single hits, 5 not" in text


def test_hand_made_cxi_stack_detector_layout(tmp_path):
    """A foreign CXI stack: uint16 frames at the detector, a bit-field mask with several bits,
    geometry in mm and eV, labels; no phasekit group."""
    p = tmp_path / "foreign.cxi"
    fr = _frames(6, 8, 8).astype(np.uint16)
    with h5py.File(p, "w") as f:
        f["cxi_version"] = 150
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = fr
        mask = np.zeros((8, 8), np.uint32)
        mask[0, 0] = 0x2
        mask[3, 4] = 0x400
        det["mask"] = mask
        det["distance"] = 586.0
        det["distance"].attrs["units"] = "mm"
        det["x_pixel_size"] = 300.0
        det["x_pixel_size"].attrs["units"] = "um"
        src = f.create_group("entry_1/instrument_1/source_1")
        src["energy"] = 1600.0
        src["energy"].attrs["units"] = "eV"
        f["entry_1/sample_1/labels"] = np.array([1, 0, 1, -1, 0, 1])
    info = read_stack_info(p)
    assert info.dataset == "entry_1/instrument_1/detector_1/data" and info.n == 6
    assert info.mask.sum() == 62 and not info.mask[0, 0] and not info.mask[3, 4]
    assert info.distance == pytest.approx(0.586) and info.pixel_size == pytest.approx(3e-4)
    assert info.wavelength == pytest.approx(HC_EV / 1600.0, rel=1e-6)
    np.testing.assert_array_equal(info.labels, [1, 0, 1, -1, 0, 1])
    assert info.centre is None
    out = read_frames(p, 2, 5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, fr[2:5].astype(np.float32))
    assert is_spi_stack(p)


def test_hand_made_cxi_stack_data_1_layout(tmp_path):
    p = tmp_path / "d1.h5"
    fr = _frames(3, 6, 6)
    with h5py.File(p, "w") as f:
        f["entry_1/data_1/data"] = fr
        f["entry_1/data_1/mask"] = np.eye(6, dtype=np.uint8)  # nonzero = bad
    info = read_stack_info(p)
    assert info.dataset == "entry_1/data_1/data" and info.labels is None
    assert info.mask.sum() == 30 and not info.mask[2, 2]
    assert info.wavelength is None and info.metadata["format"] == "cxi"
    assert not is_spi_stack(p)  # a plain 3-D CXI file may be a CDI volume


def _lcls_file(path, n=5, back=(20, 18), front=(8, 8)):
    """A CXIDB-58-like file (LCLS/Cheetah layout, as Dragonfly's amo86615 config reads it)."""
    rng = np.random.default_rng(3)
    back_fr = rng.poisson(1.0, (n, *back)).astype(np.int32)
    with h5py.File(path, "w") as f:
        f["photonConverter/pnccdBack/photonCount"] = back_fr
        f["photonConverter/pnccdFront/photonCount"] = rng.poisson(2.0, (n, *front)).astype(
            np.int32)
        f["LCLS/photon_energy_eV"] = np.full(n, 1600.0) + rng.normal(0, 2, n)
        f["LCLS/fiducial"] = np.arange(n)
    return back_fr


def test_cxidb_pnccd_file_read_and_imported(tmp_path):
    src = tmp_path / "amo86615_r0182.h5"
    back = _lcls_file(src)
    info = read_stack_info(src)
    assert info.dataset == "photonConverter/pnccdBack/photonCount"
    assert info.metadata["format"] == "lcls-pnccd" and info.shape == (20, 18)
    assert info.wavelength == pytest.approx(HC_EV / 1600.0, rel=1e-2)
    assert info.distance is None and info.mask is None
    np.testing.assert_array_equal(read_frames(info, 1, 3), back[1:3])
    assert is_spi_stack(src)
    dst = tmp_path / "r0182.cxi"
    import_cxidb_stack(src, dst, start=1, stop=5, block=2, distance=0.586, pixel_size=3e-4)
    got = read_stack_info(dst)
    assert got.n == 4 and got.distance == pytest.approx(0.586)
    assert got.pixel_size == pytest.approx(3e-4)
    assert got.wavelength == pytest.approx(info.wavelength)
    np.testing.assert_array_equal(read_frames(got), back[1:5])
    np.testing.assert_array_equal(read_pattern_metadata(got, "source_index"), [1, 2, 3, 4])
    front = tmp_path / "front.cxi"
    import_cxidb_stack(src, front, detector="front")
    assert read_stack_info(front).shape == (8, 8)
    assert "LCLS pnCCD layout" in describe(src)


def test_atomic_writer_leaves_no_half_file(tmp_path):
    p = tmp_path / "s.cxi"
    write_stack(p, _frames(2, 4, 4), labels=[1, 0])
    before = p.read_bytes()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), StackWriter(p, (4, 4)) as w:
        w.append(_frames(3, 4, 4))
        raise Boom
    assert p.read_bytes() == before  # the old file is untouched
    q = tmp_path / "new.cxi"
    with pytest.raises(InputError, match="frames shape"):
        with StackWriter(q, (4, 4)) as w:
            w.append(_frames(1, 4, 4))
            w.append(_frames(1, 5, 4))
    assert not q.exists()
    assert sorted(os.listdir(tmp_path)) == ["s.cxi"]  # no temporary files left


def test_writer_rejects_inconsistent_blocks(tmp_path):
    with StackWriter(tmp_path / "a.cxi", (4, 4)) as w:
        w.append(_frames(2, 4, 4), labels=[1, 1], d=[1.0, 2.0])
        with pytest.raises(InputError, match="labels missing"):
            w.append(_frames(1, 4, 4), d=[3.0])
        with pytest.raises(InputError, match="missing from this block"):
            w.append(_frames(1, 4, 4), labels=[0])
        with pytest.raises(InputError, match="leading length"):
            w.append(_frames(2, 4, 4), labels=[0, 0], d=[1.0])
    assert read_stack_info(tmp_path / "a.cxi").n == 2
    with pytest.raises(InputError, match="mask shape"):
        StackWriter(tmp_path / "b.cxi", (4, 4), mask=np.ones((3, 4)))


def test_one_line_errors(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        read_stack_info(tmp_path / "missing.cxi")
    (tmp_path / "text.cxi").write_text("hello")
    with pytest.raises(FileFormatError, match="not an HDF5"):
        read_stack_info(tmp_path / "text.cxi")
    cases = {
        "flat.cxi": ({"entry_1/data_1/data": np.zeros((8, 8))},
                     "has shape \\(8, 8\\).*\\(N, H, W\\)"),
        "empty.cxi": ({"other/x": np.zeros(3)}, "no pattern stack found.*entry_1/data_1/data"),
        "strings.cxi": ({"entry_1/data_1/data": np.array([[[b"a"]]] * 2)}, "dtype"),
        "mask.cxi": ({"entry_1/data_1/data": np.zeros((2, 8, 8)),
                      "entry_1/data_1/mask": np.zeros((8, 7))}, "mask .* shape \\(8, 7\\)"),
        "labels.cxi": ({"entry_1/data_1/data": np.zeros((2, 8, 8)),
                        "entry_1/sample_1/labels": np.array([1, 0, 1])}, "3 values for 2"),
        "labels2.cxi": ({"entry_1/data_1/data": np.zeros((2, 8, 8)),
                         "entry_1/sample_1/labels": np.array([1, 7])}, "other than 1"),
    }
    for name, (layout, msg) in cases.items():
        with h5py.File(tmp_path / name, "w") as f:
            for k, v in layout.items():
                f[k] = v
        with pytest.raises(FileFormatError, match=msg) as exc:
            read_stack_info(tmp_path / name)
        assert "\n" not in str(exc.value) and name in str(exc.value)
    good = tmp_path / "g.cxi"
    write_stack(good, _frames(3, 4, 4))
    with pytest.raises(InputError, match="outside the stack's 3 patterns"):
        read_frames(good, 2, 5)
    with pytest.raises(FileFormatError, match="no per-pattern array 'nope'"):
        read_pattern_metadata(good, "nope")
