"""Every HDF5 reader against the ways beamline files *store* their data: gzip (with and without
shuffle), lzf, odd chunk shapes, big-endian and unusual dtypes, external links (Dectris Eiger
master files), virtual datasets stitching several files, and the broken cases (a linked file or
a virtual source missing, a filter HDF5 lacks), which must be one-line errors naming the
problem.  Files are laid out by hand with h5py; tiny arrays."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli
from phasekit.core.errors import FileFormatError
from phasekit.io import read_diffraction, read_ptycho
from phasekit.io.spi import read_frames
from phasekit.io.tomo_formats import read_tomo_layout
from phasekit.tomo.io import read_tilt_series

DATA = Path(__file__).parent / "data"
WL, Z, PIX = 1e-9, 0.5, 75e-6
RNG = np.random.default_rng(7)


def _frames(n, rows, cols):
    return RNG.integers(1, 200, (n, rows, cols)).astype(np.float32)


def _cdi(f):
    f["cxi_version"] = np.int32(150)
    f["entry_1/data_1/data"] = _frames(1, 12, 12)[0]
    return "entry_1/data_1/data"


def _cxi_ptycho(f):
    pos = np.array([[0, 0], [0, 4], [4, 0], [4, 4]], float) * 2e-8
    e = f.create_group("entry_1")
    e["instrument_1/source_1/wavelength"] = WL
    det = e.create_group("instrument_1/detector_1")
    det["distance"], det["x_pixel_size"], det["y_pixel_size"] = Z, PIX, PIX
    e["sample_1/geometry_1/translation"] = np.c_[pos[:, ::-1], np.zeros(4)]
    e["data_1/data"] = _frames(4, 8, 8)
    return "entry_1/data_1/data"


def _ptylab(f):
    f["ptychogram"] = _frames(4, 8, 8)
    f["encoder"] = np.array([[0, 0], [0, 4], [4, 0], [4, 4]], float) * 1e-8
    f["wavelength"], f["zo"], f["dxd"] = [WL], [Z], [PIX]
    return "ptychogram"


def _ptypy(f):
    meta = f.create_group("meta")
    meta["energy"], meta["distance"], meta["psize"] = 1.24, Z, PIX
    meta["shape"], meta["center"] = [8, 8], [4.0, 4.0]
    f.create_group("info")
    f["chunks/0/data"] = _frames(4, 8, 8)
    f["chunks/0/positions"] = np.array([[0, 0], [0, 4], [4, 0], [4, 4]], float) * 1e-8
    return "chunks/0/data"


def _dxchange(f):
    f["exchange/data"] = _frames(4, 3, 5)
    f["exchange/theta"] = np.array([0.0, 45, 90, 135])
    return "exchange/data"


def _nxtomo(f):
    e = f.create_group("entry")
    e["definition"] = "NXtomo"
    e["instrument/detector/data"] = _frames(4, 3, 5)
    e["instrument/detector/image_key"] = np.zeros(4, np.int8)
    e["sample/rotation_angle"] = np.array([0.0, 45, 90, 135])
    return "entry/instrument/detector/data"


def _tilt(f):
    g = f.create_group("tomo")
    g.attrs.update(format="phasekit-tomo", version=1, convention="ZYX", angle_units="deg")
    g["projections"] = _frames(4, 6, 6)
    g["angles"] = np.c_[np.zeros(4), np.linspace(0, 135, 4), np.zeros(4)]
    return "tomo/projections"


def _spi(f):
    f["entry_1/instrument_1/detector_1/data"] = _frames(5, 6, 6)
    f["entry_1/sample_1/labels"] = np.array([1, 0, 1, 1, 0])
    return "entry_1/instrument_1/detector_1/data"


READERS = {
    "cdi": (_cdi, lambda p: read_diffraction(p).intensity),
    "ptycho-cxi": (_cxi_ptycho, lambda p: read_ptycho(p).intensities),
    "ptylab": (_ptylab, lambda p: read_ptycho(p).intensities),
    "ptypy": (_ptypy, lambda p: read_ptycho(p).intensities),
    "dxchange": (_dxchange, lambda p: read_tomo_layout(p).projections),
    "nxtomo": (_nxtomo, lambda p: read_tomo_layout(p).projections),
    "tilt-series": (_tilt, lambda p: read_tilt_series(p).projections),
    "spi": (_spi, read_frames),
}
STORED = ["gzip", "gzip-shuffle", "lzf", "odd-chunks", ">f4", ">u2", "<u4", "int32", "float16",
          "u2-saturated", "external", "vds"]


def _restore(p: Path, path: str, variant: str) -> np.ndarray:
    """Rewrite dataset ``path`` of ``p`` stored as ``variant``; return the values it holds."""
    with h5py.File(p, "a") as f:
        a = f[path][()]
        del f[path]
        kw: dict = {}
        if variant == "gzip":
            kw = {"compression": "gzip", "compression_opts": 4}
        elif variant == "gzip-shuffle":
            kw = {"compression": "gzip", "shuffle": True}
        elif variant == "lzf":
            kw = {"compression": "lzf"}
        elif variant == "odd-chunks":
            kw = {"chunks": tuple(min(s, c) for s, c in zip(a.shape, (3, 5, 7)[-a.ndim:]))}
        elif variant == "u2-saturated":
            a = a.astype(">u2")
            a.reshape(-1)[::5] = 65535  # a detector's saturation value, read as a number
        elif variant[0] in "<>" or variant in ("int32", "float16"):
            a = a.astype(variant)
        if variant.startswith("external"):  # an Eiger master file: data in <name>_data_000001
            ext = p.with_name(f"{p.stem}_data_000001.h5")
            with h5py.File(ext, "w") as g:
                g.create_dataset("entry/data/data", data=a, compression="gzip")
            f[path] = h5py.ExternalLink(ext.name, "/entry/data/data")
            if variant.endswith("missing"):
                ext.unlink()
        elif variant.startswith("vds"):  # frames (or rows) stitched from two files
            k = a.shape[0] // 2
            layout = h5py.VirtualLayout(shape=a.shape, dtype=a.dtype)
            for i, (lo, hi) in enumerate(((0, k), (k, a.shape[0]))):
                src = p.with_name(f"{p.stem}_part{i}.h5")
                with h5py.File(src, "w") as g:
                    g["data"] = a[lo:hi]
                layout[lo:hi] = h5py.VirtualSource(src.name, "data", shape=a[lo:hi].shape)
            f.create_virtual_dataset(path, layout, fillvalue=0)
            if variant.endswith("missing"):
                p.with_name(f"{p.stem}_part1.h5").unlink()
        else:
            f.create_dataset(path, data=a, **kw)
    return a


def _file(tmp_path, reader, variant):
    p = tmp_path / ("scan.ptyd" if reader == "ptypy" else "data.h5")
    with h5py.File(p, "w") as f:
        path = READERS[reader][0](f)
    return p, _restore(p, path, variant)


@pytest.fixture
def elsewhere(tmp_path_factory):
    """Run from another directory: links must be found beside the file, not in the cwd."""
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(cwd)


@pytest.mark.parametrize("variant", STORED)
@pytest.mark.parametrize("reader", sorted(READERS))
def test_storage_variants_read_the_same_values(tmp_path, elsewhere, reader, variant):
    p, stored = _file(tmp_path, reader, variant)
    got = np.asarray(READERS[reader][1](p), dtype=np.float64)
    assert got.size == stored.size
    if reader not in ("dxchange", "nxtomo", "tilt-series"):  # the tomography axes are reordered
        np.testing.assert_array_equal(got.reshape(stored.shape), stored.astype(np.float64))
    else:
        assert np.isclose(got.sum(), stored.astype(np.float64).sum())


@pytest.mark.parametrize("variant", ["external-missing", "vds-missing"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_missing_linked_file_is_one_line_naming_it(tmp_path, reader, variant):
    p, _ = _file(tmp_path, reader, variant)
    missing = f"{p.stem}_data_000001.h5" if variant == "external-missing" else f"{p.stem}_part1.h5"
    with pytest.raises(FileFormatError) as e:
        READERS[reader][1](p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p)) and missing in msg and "missing" in msg
    res = CliRunner().invoke(cli, ["info", str(p)])
    assert res.exit_code == 2 and missing in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("reader,variant", [("cdi", "external"), ("ptylab", "vds"),
                                            ("tilt-series", "gzip-shuffle"),
                                            ("dxchange", "external-missing"),
                                            ("ptypy", "vds-missing")])
def test_cli_info_and_reconstruct(tmp_path, reader, variant):
    p, _ = _file(tmp_path, reader, variant)
    info = CliRunner().invoke(cli, ["info", str(p)])
    run = CliRunner().invoke(cli, ["reconstruct", str(p), "-n", "2", "--no-figure", "-q",
                                   "-o", str(tmp_path / "out.cxi")])
    want = 2 if variant.endswith("missing") else 0
    assert (info.exit_code, run.exit_code) == (want, want), info.output + run.output
    if want:
        assert "missing" in run.output and len(run.output.strip().splitlines()) == 1


def test_eiger_master_with_several_data_files(tmp_path):
    """/entry/data/data_00000N -> <name>_data_00000N.h5; the second one missing is named even
    though the reader would only look at the first."""
    p = tmp_path / "scan_master.h5"
    with h5py.File(p, "w") as f:
        f["entry_1/data_1/data"] = h5py.ExternalLink("scan_data_000001.h5", "/entry/data/data")
        for i in (1, 2):
            f[f"entry/data/data_00000{i}"] = h5py.ExternalLink(f"scan_data_00000{i}.h5",
                                                               "/entry/data/data")
    frame = _frames(1, 8, 8)[0]
    with h5py.File(tmp_path / "scan_data_000001.h5", "w") as g:
        g.create_dataset("entry/data/data", data=frame.astype(np.uint16), compression="gzip",
                         shuffle=True)
    with pytest.raises(FileFormatError, match=r"/entry/data/data_000002 is an external link to "
                                              r"scan_data_000002\.h5, which is missing"):
        read_diffraction(p)
    with h5py.File(tmp_path / "scan_data_000002.h5", "w") as g:
        g["entry/data/data"] = frame
    np.testing.assert_array_equal(read_diffraction(p).intensity, frame)


def test_external_link_to_a_missing_object(tmp_path):
    p = tmp_path / "m.h5"
    with h5py.File(tmp_path / "other.h5", "w") as g:
        g["x"] = np.zeros(3)
    with h5py.File(p, "w") as f:
        f["entry_1/data_1/data"] = h5py.ExternalLink("other.h5", "/nothing/here")
    with pytest.raises(FileFormatError, match=r"other\.h5:/nothing/here, which cannot be opened"):
        read_diffraction(p)


@pytest.mark.parametrize("name,reader,filter_name", [
    ("filter_bitshuffle.cxi", read_diffraction, "bitshuffle"),
    ("filter_lz4.h5", read_tomo_layout, "LZ4")])
def test_unavailable_filter_names_it_and_hdf5plugin(tmp_path, name, reader, filter_name):
    """Files written with hdf5plugin (tests/data); read here where the plugin is not loaded."""
    if h5py.h5z.filter_avail(32008 if filter_name == "bitshuffle" else 32004):
        pytest.skip("the filter is available here (hdf5plugin installed)")
    p = DATA / name
    with pytest.raises(FileFormatError) as e:
        reader(p)
    msg = str(e.value)
    assert "\n" not in msg and f"{filter_name} filter" in msg and "pip install hdf5plugin" in msg
    if reader is read_diffraction:
        res = CliRunner().invoke(cli, ["reconstruct", str(p), "-n", "2", "--no-figure", "-q",
                                       "-o", str(tmp_path / "out.cxi")])
        assert res.exit_code == 2 and "pip install hdf5plugin" in res.output


def test_info_on_nxtomo_entry_without_frames_is_one_line(tmp_path):
    """Found while checking external links: ``phasekit info`` crashed (AttributeError) on an
    NXtomo entry whose frame stack is absent."""
    p = tmp_path / "nx.h5"
    with h5py.File(p, "w") as f:
        f["entry/definition"] = "NXtomo"
        f["entry/instrument/detector/image_key"] = np.zeros(3, np.int8)
    res = CliRunner().invoke(cli, ["info", str(p)])
    assert res.exit_code == 2 and "without a frame stack" in res.output
