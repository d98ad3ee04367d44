"""Tests of phasekit.io: CXI/npy/npz diffraction data, results, atomic writes, errors."""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from phasekit.core.errors import FileFormatError, InputError
from phasekit.io import (
    DiffractionData,
    atomic_save_bytes,
    atomic_write,
    describe,
    read_diffraction,
    read_result,
    save_npz_diffraction,
    write_diffraction,
    write_result,
)

HC = 6.62607015e-34 * 299792458.0


@pytest.fixture
def sim():
    rng = np.random.default_rng(1)
    n = 24
    intensity = (rng.random((n, n)) * 1000).astype(np.float32)
    mask = np.ones((n, n), bool)
    mask[n // 2 - 2:n // 2 + 2, n // 2 - 2:n // 2 + 2] = False  # beamstop
    mask[:, 3] = False  # a gap
    truth = (rng.random((n, n)) * np.exp(1j * rng.random((n, n)))).astype(np.complex64)
    support = np.zeros((n, n), bool)
    support[8:16, 8:16] = True
    return intensity, mask, truth, support


# ------------------------------------------------------------------------------------------
# diffraction data round trip and layout
# ------------------------------------------------------------------------------------------
def test_write_read_roundtrip(tmp_path, sim):
    intensity, mask, truth, support = sim
    path = tmp_path / "sub" / "sim.cxi"  # parent folder created
    write_diffraction(path, intensity, mask=mask, wavelength=1.5e-9, distance=0.4,
                      pixel_size=55e-6, truth=truth, support=support,
                      params={"seed": 1, "shape": [24, 24], "oversampling": 2.5})
    d = read_diffraction(path)
    assert isinstance(d, DiffractionData)
    assert d.intensity.dtype == np.float32
    np.testing.assert_array_equal(d.intensity, intensity)
    assert d.mask.dtype == bool
    np.testing.assert_array_equal(d.mask, mask)
    assert d.wavelength == pytest.approx(1.5e-9)
    assert d.distance == pytest.approx(0.4)
    assert d.pixel_size == pytest.approx(55e-6)
    np.testing.assert_array_equal(d.truth, truth)
    np.testing.assert_array_equal(d.support, support)
    assert d.metadata["params"] == {"seed": 1, "shape": [24, 24], "oversampling": 2.5}
    assert d.path == str(path)
    assert d.n_measured == int(mask.sum())
    # no temporary files left behind
    assert sorted(os.listdir(path.parent)) == ["sim.cxi"]


def test_written_layout_is_cxi(tmp_path, sim):
    intensity, mask, truth, support = sim
    path = tmp_path / "sim.cxi"
    write_diffraction(path, intensity, mask=mask, wavelength=1e-9, distance=0.5,
                      pixel_size=75e-6, truth=truth, support=support, params={"a": 1})
    with h5py.File(path, "r") as f:
        assert int(f["cxi_version"][()]) == 150
        det = f["entry_1/instrument_1/detector_1"]
        np.testing.assert_array_equal(det["data"][()], intensity)
        link = f["entry_1/data_1"].get("data", getlink=True)
        assert isinstance(link, h5py.SoftLink)
        assert link.path == "/entry_1/instrument_1/detector_1/data"
        m = det["mask"][()]
        assert m.dtype == np.uint32
        np.testing.assert_array_equal(m, np.where(mask, 0, 1))  # bit 0 on bad pixels
        assert det["distance"][()] == pytest.approx(0.5)
        assert det["x_pixel_size"][()] == pytest.approx(75e-6)
        src = f["entry_1/instrument_1/source_1"]
        assert src["energy"][()] == pytest.approx(HC / 1e-9)
        assert src["wavelength"][()] == pytest.approx(1e-9)
        sim_g = f["entry_1/simulation_1"]
        for name in ("truth", "support"):
            assert "simulation ground truth" in str(sim_g[name].attrs["note"])
        assert "simulation ground truth" in str(sim_g.attrs["note"])
        assert isinstance(sim_g.attrs["params"], str)


def test_write_without_optional_fields(tmp_path):
    path = tmp_path / "plain.cxi"
    write_diffraction(path, np.ones((8, 8)))
    d = read_diffraction(path)
    assert d.mask is None and d.truth is None and d.support is None
    assert d.wavelength is None and d.distance is None and d.pixel_size is None
    assert d.metadata["cxi_version"] == 150


def test_3d_pattern_roundtrip(tmp_path):
    vol = np.random.default_rng(0).random((6, 8, 10)).astype(np.float32)
    mask = np.ones(vol.shape, bool)
    mask[0] = False
    path = tmp_path / "vol.cxi"
    write_diffraction(path, vol, mask=mask)
    d = read_diffraction(path)
    assert d.shape == (6, 8, 10)
    np.testing.assert_array_equal(d.mask, mask)


def test_write_rejects_bad_input_and_keeps_old_file(tmp_path, sim):
    intensity, mask, _, _ = sim
    path = tmp_path / "x.cxi"
    write_diffraction(path, intensity)
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"mask shape \(24, 23\) != intensity shape \(24, 24\)"):
        write_diffraction(path, intensity, mask=mask[:, :-1])
    with pytest.raises(InputError, match="distance"):
        write_diffraction(path, intensity, distance=-1.0)
    with pytest.raises(InputError, match="complex"):
        write_diffraction(path, intensity.astype(np.complex64))
    with pytest.raises(InputError, match="2-D or 3-D"):
        write_diffraction(path, np.ones(5))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.cxi"]


# ------------------------------------------------------------------------------------------
# files laid out by other software
# ------------------------------------------------------------------------------------------
def test_foreign_layout_detector_only_energy_bitfields(tmp_path):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 500, size=(1, 16, 20)).astype(np.uint16)  # stack of one frame
    bits = np.zeros((1, 16, 20), np.uint32)
    bits[0, 0, 0] = 0x1        # invalid
    bits[0, 1, 1] = 0x2        # saturated
    bits[0, 2, 2] = 0x4 | 0x8  # hot and dead
    bits[0, 5, :] = 0x10       # shadowed row
    energy = 8000 * 1.602176634e-19  # 8 keV in J
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 140
        det = f.create_group("entry_1/instrument_1/detector_1")
        ds = det.create_dataset("data", data=frames)
        ds.attrs["axes"] = "experiment_identifier:y:x"
        det["mask"] = bits
        det["distance"] = 2.0
        det["x_pixel_size"] = 172e-6
        det["y_pixel_size"] = 172e-6
        f["entry_1/instrument_1/source_1/energy"] = energy
    d = read_diffraction(path)
    assert d.shape == (16, 20)
    np.testing.assert_array_equal(d.intensity, frames[0].astype(np.float32))
    np.testing.assert_array_equal(d.mask, bits[0] == 0)
    assert d.n_measured == 16 * 20 - 3 - 20
    assert d.wavelength == pytest.approx(HC / energy)
    assert d.wavelength == pytest.approx(1.5498e-10, rel=1e-4)
    assert d.distance == 2.0 and d.pixel_size == pytest.approx(172e-6)
    assert d.truth is None and d.support is None
    assert d.metadata["data_path"] == "entry_1/instrument_1/detector_1/data"
    assert d.metadata["mask_bits"]["0x10"] == 20


def test_foreign_minimal_layout_and_other_numbering(tmp_path):
    img = np.arange(30.0).reshape(5, 6)
    p1 = tmp_path / "minimal.cxi"
    with h5py.File(p1, "w") as f:
        f["entry_1/data_1/data"] = img
    d = read_diffraction(p1)
    np.testing.assert_array_equal(d.intensity, img)
    assert d.mask is None and d.wavelength is None
    # other numbering, units attributes and a mask next to the data
    p2 = tmp_path / "numbered.nxs"
    with h5py.File(p2, "w") as f:
        f["entry_2/data_3/data"] = img
        f["entry_2/data_3/mask"] = np.eye(5, 6, dtype=np.uint8) * 4
        w = f.create_dataset("entry_2/instrument_1/source_1/wavelength", data=2.0)
        w.attrs["units"] = "nm"
        dd = f.create_dataset("entry_2/instrument_1/detector_1/distance", data=500.0)
        dd.attrs["units"] = "mm"
    d = read_diffraction(p2)
    np.testing.assert_array_equal(d.mask, np.eye(5, 6) == 0)
    assert d.wavelength == pytest.approx(2e-9)
    assert d.distance == pytest.approx(0.5)


def test_stack_of_many_frames_is_refused(tmp_path):
    path = tmp_path / "stack.cxi"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("entry_1/data_1/data", data=np.ones((4, 8, 8)))
        ds.attrs["axes"] = "experiment_identifier:y:x"
    with pytest.raises(FileFormatError, match=r"stack\.cxi.*stack of 4 frames"):
        read_diffraction(path)


# ------------------------------------------------------------------------------------------
# NumPy formats
# ------------------------------------------------------------------------------------------
def test_npy_input(tmp_path):
    a = np.random.default_rng(3).random((1, 12, 12))
    path = tmp_path / "pattern.npy"
    np.save(path, a)
    d = read_diffraction(path)
    assert d.shape == (12, 12) and d.intensity.dtype == np.float32
    np.testing.assert_allclose(d.intensity, a[0].astype(np.float32))
    assert d.mask is None


def test_npz_input(tmp_path, sim):
    intensity, mask, truth, support = sim
    p1 = tmp_path / "a.npz"
    np.savez(p1, data=intensity, mask=mask, support=support, truth=truth)
    d = read_diffraction(p1)
    np.testing.assert_array_equal(d.intensity, intensity)
    np.testing.assert_array_equal(d.mask, mask)  # npz masks: True = measured, no inversion
    np.testing.assert_array_equal(d.support, support)
    np.testing.assert_array_equal(d.truth, truth)
    # the convenience writer, with geometry and metadata
    p2 = tmp_path / "b.npz"
    save_npz_diffraction(p2, intensity, mask=mask, wavelength=1e-9, distance=1.0,
                         pixel_size=1e-4, metadata={"note": "hi"})
    d = read_diffraction(p2)
    np.testing.assert_array_equal(d.mask, mask)
    assert (d.wavelength, d.distance, d.pixel_size) == (1e-9, 1.0, 1e-4)
    assert d.metadata["note"] == "hi"
    with np.load(p2) as z:
        assert "intensity" in z.files
    # npz without a pattern
    p3 = tmp_path / "c.npz"
    np.savez(p3, foo=np.ones(3))
    with pytest.raises(FileFormatError, match=r"c\.npz.*no diffraction data.*intensity"):
        read_diffraction(p3)


def test_npz_roundtrip_through_cxi(tmp_path, sim):
    intensity, mask, truth, support = sim
    save_npz_diffraction(tmp_path / "a.npz", intensity, mask=mask, truth=truth, support=support,
                         wavelength=1e-9)
    d = read_diffraction(tmp_path / "a.npz")
    write_diffraction(tmp_path / "a.cxi", d)
    e = read_diffraction(tmp_path / "a.cxi")
    np.testing.assert_array_equal(e.mask, mask)
    np.testing.assert_array_equal(e.truth, truth)
    assert e.wavelength == pytest.approx(1e-9)


# ------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------
def test_result_roundtrip(tmp_path, sim):
    _, mask, truth, support = sim
    path = tmp_path / "out" / "result.cxi"
    history = {"iteration": [0, 10, 20], "rfactor": [0.5, 0.2, 0.05], "support_size": [80, 70, 64]}
    config = {"algorithm": "hio", "n_iter": 200, "beta": 0.9, "shrinkwrap": {"sigma": 3.0},
              "seeds": [1, 2], "device": None, "verbose": False}
    prov = {"version": "0.1.0", "argv": ["phasekit", "run", "sim.cxi"], "seed": 7}
    timings = {"total_s": 1.25, "per_iter_ms": 6.25}
    images = [truth, (truth * 0.5).astype(np.complex64)]
    write_result(path, images=images, support=support, history=history, config=config,
                 provenance=prov, timings=timings, rfactors=[0.05, 0.11],
                 extra_images={"final_amplitude": np.abs(truth)}, mask=mask)
    r = read_result(path)
    assert len(r["images"]) == 2
    np.testing.assert_array_equal(r["images"][0], images[0])
    np.testing.assert_array_equal(r["images"][1], images[1])
    np.testing.assert_array_equal(r["support"], support)
    assert r["history"] == history
    assert list(r["history"]) == list(history)  # order kept
    assert r["config"] == config
    assert r["provenance"] == prov
    assert r["timings"] == timings
    assert r["rfactors"] == [0.05, 0.11]
    np.testing.assert_array_equal(r["extra_images"]["final_amplitude"], np.abs(truth))
    np.testing.assert_array_equal(r["mask"], mask)
    assert r["metadata"]["program"] == "phasekit"
    assert r["metadata"]["command"] == "phasekit run sim.cxi"
    with h5py.File(path, "r") as f:
        proc = f["entry_1/image_1/process_1"]
        assert proc["program"].asstr()[()] == "phasekit"
        assert set(proc["history"].keys()) == {"iteration", "rfactor", "support_size"}
        assert f["entry_1/image_2/mask"].dtype == np.uint8
        assert f["entry_1/image_1"].attrs["rfactor"] == pytest.approx(0.05)
        assert int(f["cxi_version"][()]) == 150


def test_result_minimal_and_generated_iteration(tmp_path):
    img = np.ones((4, 4), np.float32)
    path = tmp_path / "r.cxi"
    write_result(path, images=[img], history={"rfactor": [0.3, 0.2]})
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["entry_1/image_1/process_1/history/iteration"][()],
                                      [0, 1])
    r = read_result(path)
    assert r["history"] == {"rfactor": [0.3, 0.2]}
    assert r["config"] is None and r["support"] is None and r["rfactors"] == [None]
    with pytest.raises(InputError, match="rfactors has 2 entries != 1 images"):
        write_result(path, images=[img], rfactors=[0.1, 0.2])
    with pytest.raises(InputError, match="at least one image"):
        write_result(path, images=[])


def test_result_vs_data_files_are_told_apart(tmp_path, sim):
    intensity = sim[0]
    write_diffraction(tmp_path / "d.cxi", intensity)
    write_result(tmp_path / "r.cxi", images=[np.ones((3, 3))])
    with pytest.raises(FileFormatError, match=r"r\.cxi.*reconstruction results"):
        read_diffraction(tmp_path / "r.cxi")
    with pytest.raises(FileFormatError, match=r"d\.cxi.*no reconstruction images"):
        read_result(tmp_path / "d.cxi")


# ------------------------------------------------------------------------------------------
# atomic writes
# ------------------------------------------------------------------------------------------
def test_atomic_write_keeps_old_file_on_error(tmp_path, sim):
    path = tmp_path / "data.cxi"
    write_diffraction(path, sim[0])
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as tmp:
            assert tmp.parent == path.parent and tmp != path
            with h5py.File(tmp, "w") as f:
                f["junk"] = np.zeros(3)
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["data.cxi"]
    read_diffraction(path)  # still valid


def test_atomic_write_success_and_bytes(tmp_path):
    path = tmp_path / "a" / "b" / "x.bin"
    atomic_save_bytes(path, b"one")
    assert path.read_bytes() == b"one"
    atomic_save_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    with atomic_write(tmp_path / "arr.npy") as tmp:
        assert tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "arr.npy"), np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ["a", "arr.npy"]


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.cxi"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(FileFormatError, match=r"corrupt\.cxi.*not a valid HDF5"):
        read_diffraction(path)
    with pytest.raises(FileFormatError, match=r"corrupt\.cxi"):
        describe(path)
    # a truncated HDF5 file: right signature, broken content
    good = tmp_path / "good.cxi"
    write_diffraction(good, np.ones((64, 64)))
    trunc = tmp_path / "trunc.cxi"
    trunc.write_bytes(good.read_bytes()[:600])
    with pytest.raises(FileFormatError, match=r"trunc\.cxi"):
        read_diffraction(trunc)
    bad_npy = tmp_path / "bad.npy"
    bad_npy.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FileFormatError, match=r"bad\.npy"):
        read_diffraction(bad_npy)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.cxi"
    for fn in (read_diffraction, read_result, describe):
        with pytest.raises(FileFormatError, match=r"nope\.cxi: no such file") as info:
            fn(path)
        assert isinstance(info.value, OSError)
        assert "\n" not in str(info.value)


def test_hdf5_without_data(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f["entry_1/sample_1/name"] = "nothing here"
    with pytest.raises(FileFormatError) as info:
        read_diffraction(path)
    msg = str(info.value)
    assert "empty.h5" in msg and "no diffraction data" in msg
    assert "entry_1/data_1/data" in msg and "entry_1/instrument_1/detector_1/data" in msg
    assert "\n" not in msg
    with pytest.raises(FileFormatError) as info:  # one line: what was looked for, what is there
        describe(path)
    msg = str(info.value)
    assert "\n" not in msg and "empty.h5: HDF5 file of no layout phasekit reads" in msg
    assert "entry_N/data_M/data" in msg and "/tomo" in msg
    assert "it holds: entry_1/sample_1/name: shape ()" in msg


def test_wrong_dimensionality_and_mask_shape(tmp_path):
    p1 = tmp_path / "line.cxi"
    with h5py.File(p1, "w") as f:
        f["entry_1/data_1/data"] = np.ones(10)
    with pytest.raises(FileFormatError, match=r"line\.cxi.*shape \(10,\).*2-D or 3-D"):
        read_diffraction(p1)
    p2 = tmp_path / "mask.cxi"
    with h5py.File(p2, "w") as f:
        f["entry_1/instrument_1/detector_1/data"] = np.ones((4, 4))
        f["entry_1/instrument_1/detector_1/mask"] = np.zeros((4, 5), np.uint32)
    with pytest.raises(FileFormatError, match=r"mask\.cxi.*\(4, 5\) != data"):
        read_diffraction(p2)
    p3 = tmp_path / "unknown.dat"
    p3.write_bytes(b"hello world")
    with pytest.raises(FileFormatError, match=r"unknown\.dat.*unrecognised"):
        read_diffraction(p3)


# ------------------------------------------------------------------------------------------
# describe and lazy import
# ------------------------------------------------------------------------------------------
def test_describe(tmp_path, sim):
    intensity, mask, truth, support = sim
    dpath = tmp_path / "sim.cxi"
    write_diffraction(dpath, intensity, mask=mask, wavelength=1e-9, distance=0.5,
                      pixel_size=75e-6, truth=truth, support=support)
    text = describe(dpath)
    assert "(24, 24)" in text
    assert f"{int(mask.sum())} of {mask.size} pixels measured" in text
    assert "ground truth: shape (24, 24) complex64" in text
    assert "wavelength 1e-09 m" in text
    rpath = tmp_path / "res.cxi"
    write_result(rpath, images=[truth], rfactors=[0.0123], history={"rfactor": [0.1, 0.0123]},
                 config={"algorithm": "raar"})
    text = describe(rpath)
    assert "image_1: shape (24, 24) complex64, R-factor 0.0123" in text
    assert "history (image_1): rfactor" in text and "raar" in text
    save_npz_diffraction(tmp_path / "a.npz", intensity)
    assert "npz" in describe(tmp_path / "a.npz")


def test_import_does_not_load_h5py():
    code = "import sys, phasekit, phasekit.io; assert 'h5py' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
