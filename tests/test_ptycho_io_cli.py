"""CXI ptychography files (round trip, other layouts, cdtools) and the command line."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli
from phasekit.core.errors import FileFormatError, InputError
from phasekit.io import is_ptycho_file, read_ptycho, read_result, write_ptycho
from phasekit.ptycho import object_shape_for, raster_scan, simulate_ptycho
from phasekit.ptycho.probe import fzp_probe


@pytest.fixture(scope="module")
def scan():
    pos = raster_scan(4, step=6.5, margin=1)
    shape = object_shape_for(pos, (32, 32), margin=1)
    g = np.random.default_rng(0)
    obj = np.exp(0.3j * g.standard_normal(shape))
    sim = simulate_ptycho(obj, fzp_probe(32, 16, 12), pos, dose=1e6, rng=0)
    return sim, pos


def test_round_trip(scan, tmp_path):
    sim, pos = scan
    m = np.ones((32, 32), bool)
    m[3, 4] = False
    f = write_ptycho(tmp_path / "s.cxi", sim.intensities, pos, wavelength=1.55e-10, distance=2.0,
                     pixel_size=75e-6, mask=m, truth=sim.obj, probe=sim.probe, params={"a": 1})
    assert is_ptycho_file(f) and not is_ptycho_file(tmp_path / "missing.cxi")
    d = read_ptycho(f)
    assert np.array_equal(d.intensities, sim.intensities) and np.array_equal(d.mask, m)
    assert d.wavelength == pytest.approx(1.55e-10) and d.distance == 2.0 and d.pixel_size == 75e-6
    assert np.allclose(d.positions_px(), pos)
    d.truth_positions = None  # from the translations alone (metres -> pixels)
    assert np.allclose(d.positions_px(margin=1), pos, atol=1e-9)
    with h5py.File(f, "r") as h:  # the CXI layout others read
        assert h["entry_1/data_1/data"].shape == (16, 32, 32)
        t = h["entry_1/sample_1/geometry_1/translation"][()]
        assert t.shape == (16, 3) and h["entry_1/sample_1/geometry_1/translation"].attrs["units"] == "m"
        dx = 1.55e-10 * 2.0 / (32 * 75e-6)
        assert np.allclose(-t[:, 0] / dx, pos[:, 1]) and np.allclose(-t[:, 1] / dx, pos[:, 0])
    assert d.metadata["params"] == {"a": 1} and np.allclose(d.truth, sim.obj)
    with pytest.raises(InputError):
        write_ptycho(tmp_path / "x.cxi", sim.intensities, pos[:3], wavelength=1e-10, distance=1,
                     pixel_size=1e-5)


def test_read_other_layout(scan, tmp_path):
    """A file as other software writes it: frames only in the detector group, translations in
    micrometres under data_1, energy in keV, mask_shared, negative bad pixels."""
    sim, pos = scan
    I = sim.intensities.copy()
    I[:, 0, 0] = -1
    dx = 1.55e-10 * 2.0 / (32 * 75e-6)
    t = np.zeros((16, 3))
    t[:, 0], t[:, 1] = -pos[:, 1] * dx * 1e6, -pos[:, 0] * dx * 1e6
    with h5py.File(tmp_path / "o.cxi", "w") as h:
        det = h.create_group("entry_1/instrument_1/detector_1")
        det["data"] = I
        det["distance"] = 2000.0
        det["distance"].attrs["units"] = "mm"
        det["x_pixel_size"] = 75e-6
        mm = np.zeros((32, 32), np.uint32)
        mm[5, 5] = 4
        det["mask_shared"] = mm
        src = h.create_group("entry_1/instrument_1/source_1")
        src["energy"] = 6.62607015e-34 * 299792458.0 / 1.55e-10 / 1.602176634e-19 / 1e3
        src["energy"].attrs["units"] = "keV"
        h["entry_1/data_1/translation"] = t
        h["entry_1/data_1/translation"].attrs["units"] = "um"
    d = read_ptycho(tmp_path / "o.cxi")
    assert d.wavelength == pytest.approx(1.55e-10, rel=1e-6) and d.distance == pytest.approx(2.0)
    assert not d.mask[0, 0] and not d.mask[5, 5] and d.mask.sum() == 32 * 32 - 2
    assert np.allclose(d.positions_px(), pos - pos.min(axis=0), atol=1e-6)
    with h5py.File(tmp_path / "bad.cxi", "w") as h:
        h["entry_1/data_1/data"] = np.zeros((3, 4, 4))
    assert not is_ptycho_file(tmp_path / "bad.cxi")
    with pytest.raises(FileFormatError, match="no ptychography scan"):
        read_ptycho(tmp_path / "bad.cxi")


def test_cdtools_reads_our_files(scan, tmp_path):
    cdtools = pytest.importorskip("cdtools")
    sim, pos = scan
    f = write_ptycho(tmp_path / "s.cxi", sim.intensities, pos, wavelength=1.55e-10, distance=2.0,
                     pixel_size=75e-6)
    ds = cdtools.datasets.Ptycho2DDataset.from_cxi(str(f))
    assert np.allclose(ds.patterns.numpy(), sim.intensities)
    dx = 1.55e-10 * 2.0 / (32 * 75e-6)
    # cdtools negates CXI sample translations into probe translations (x, y)
    tr = ds.translations.numpy()
    assert np.allclose(tr[:, 0] / dx, pos[:, 1], atol=1e-3) and np.allclose(tr[:, 1] / dx, pos[:, 0], atol=1e-3)


def test_cli_simulate_and_reconstruct(tmp_path):
    r = CliRunner()
    scan_f = tmp_path / "scan.cxi"
    out = r.invoke(cli, ["simulate", "ptycho", "--object", "random", "--frame", "32",
                         "--points", "4", "--beam-diameter", "16", "--pupil-diameter", "14",
                         "--dose", "1e10", "--out", str(scan_f)])
    assert out.exit_code == 0, out.output
    assert "16 positions" in out.output and is_ptycho_file(scan_f)
    out = r.invoke(cli, ["info", str(scan_f)])
    assert out.exit_code == 0 and "CXI ptychography scan" in out.output and "16 x 32x32" in out.output
    res_f = tmp_path / "result.cxi"
    out = r.invoke(cli, ["reconstruct", str(scan_f), "--algorithm", "crisp", "--iterations", "20",
                         "--out", str(res_f), "-q", "--param", "clip=scale"])
    assert out.exit_code == 0, out.output
    assert "R_F:" in out.output and "probe correlation" in out.output
    res = read_result(res_f)
    assert len(res["images"]) == 2 and res["images"][1].shape == (32, 32)
    h = res["history"]
    assert len(h["R_F"]) == 20 and h["R_F"][-1] < h["R_F"][0] and "xi" in h
    assert res["config"]["schedule"][0][2]["clip"] == "scale"
    assert (tmp_path / "result.png").stat().st_size > 1000
    assert "frc" in res["extra_images"]
    # a chain and the paper's units
    out = r.invoke(cli, ["reconstruct", str(scan_f), "--schedule", "epie:3,crisp:3", "--out",
                         str(tmp_path / "r2.cxi"), "-q", "--no-figure", "--param",
                         "fft_norm=backward"])
    assert out.exit_code == 0, out.output
    assert read_result(tmp_path / "r2.cxi")["config"]["fft_norm"] == "backward"


def test_cli_errors(tmp_path):
    r = CliRunner()
    scan_f = tmp_path / "scan.cxi"
    r.invoke(cli, ["simulate", "ptycho", "--object", "random", "--frame", "32", "--points", "3",
                   "--beam-diameter", "16", "--out", str(scan_f)])
    for args, text in ((["--real"], "not supported for ptychography"),
                       (["--algorithm", "hio"], "this is ptychography data"),
                       (["--param", "clip=wrong"], "clip"),
                       (["--param", "lambda_o=3"], "lambda_o")):
        out = r.invoke(cli, ["reconstruct", str(scan_f), "-n", "2", "-q", "--no-figure",
                             "--out", str(tmp_path / "r.cxi"), *args])
        assert out.exit_code == 2, (args, out.output)
        assert text in out.output and len(out.output.strip().splitlines()) == 1
    out = r.invoke(cli, ["simulate", "ptycho", "--frame", "16", "--beam-diameter", "20", "--out",
                         str(tmp_path / "x.cxi")])
    assert out.exit_code == 2 and "does not fit" in out.output
    import h5py

    for value, text in ((np.nan, "1 NaN or infinite value(s) in the frames"),
                        (-3.0, "warning: ")):
        bad_f = tmp_path / "bad.cxi"
        bad_f.write_bytes(scan_f.read_bytes())
        with h5py.File(bad_f, "a") as f:
            d = f["entry_1/instrument_1/detector_1/data"]
            a = d[...]
            a[0, 1, 1] = value
            d[...] = a
        out = r.invoke(cli, ["reconstruct", str(bad_f), "-n", "1", "-q", "--no-figure",
                             "--out", str(tmp_path / "r.cxi")])
        assert text in out.output, out.output
        assert out.exit_code == (2 if value != value else 0)  # NaN: error; negative: masked
