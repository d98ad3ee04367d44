"""Real-beamline ptychography from the command line: ``phasekit info --near-field``, the
far-field plausibility warning, ``reconstruct --near-field`` on a near-field CXI file laid out
by hand as cdtools writes it, ``--flip`` / ``--transpose``, ``--modes``,
``--refine-positions``, ``--background`` and their one-line errors."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.ndimage import gaussian_filter

from phasekit.cli.main import cli
from phasekit.core.errors import ConfigError
from phasekit.io import write_ptycho
from phasekit.io.ptycho_formats import write_ptylab
from phasekit.ptycho import object_shape_for, raster_scan, siemens_star, simulate_ptycho
from phasekit.ptycho.geometry import focus_distance_for_pixel, fresnel_scaling
from phasekit.ptycho.probe import circular_aperture, fzp_probe

WL, Z2, PIX, M = 0.098e-9, 1.12, 55e-6, 40
Z1 = focus_distance_for_pixel(179e-9, Z2, PIX)  # the scan: 179 nm pixels, 3.65 mm
HC = 6.62607015e-34 * 299792458.0


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def near_file(tmp_path_factory):
    """A near-field scan (angular spectrum at the Fresnel-scaled distance) written BY HAND as
    cdtools writes CXI 1.6: basis_vectors (3, 2), translations = minus the probe translation,
    energy in J, only z2 in the file."""
    g = fresnel_scaling(Z1, Z2, PIX)
    rng = np.random.default_rng(0)
    probe = circular_aperture(M, 30, edge=3) * np.exp(
        1j * 2 * gaussian_filter(rng.standard_normal((M, M)), 2))
    pos = raster_scan(5, step=5.0, jitter=0.5, margin=1, rng=1)
    obj = siemens_star(object_shape_for(pos, (M, M), margin=1))
    sim = simulate_ptycho(obj, probe, pos, dose=1e4, rng=0, propagation="angular",
                          wavelength=WL, pixel_size=g.pixel_size[0], distance=g.distance)
    d = g.pixel_size[0]
    r = np.zeros((len(pos), 3))
    r[:, 1], r[:, 0] = -pos[:, 0] * d, -pos[:, 1] * d
    path = tmp_path_factory.mktemp("nf") / "star.cxi"
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = sim.intensities.astype(np.float32)
        det["distance"] = np.float32(Z2)
        det["basis_vectors"] = np.array([[0, -PIX], [-PIX, 0], [0, 0]], np.float32)
        f["entry_1/instrument_1/source_1/energy"] = np.float32(HC / WL)
        f["entry_1/sample_1/geometry_1/translation"] = (-r).astype(np.float32)
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
    return path


def test_info_near_field_and_warning(near_file):
    far = run("info", near_file)
    assert far.exit_code == 0, far.output
    assert "basis_vectors (cdtools)" in far.output
    assert "far-field object pixel 49.89 nm" in far.output  # 0.098 nm 1.12 m / (40 x 55 um)
    assert "warning: far-field geometry" in far.output and "--near-field" in far.output
    near = run("info", near_file, "--near-field", f"{Z1:.6e}")
    assert near.exit_code == 0, near.output
    assert "magnification 307.3, object pixel 179 nm, effective distance 3.645 mm" in near.output
    assert "median step 4.66 px (0.8341 um)" in near.output  # 5 px raster, jitter 0.5
    assert "warning" not in near.output
    bad = run("info", near_file, "--near-field", "-3")
    assert bad.exit_code == 2 and "must be positive" in bad.output


@pytest.fixture(scope="module")
def near_results(near_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("nfr")
    res = {}
    for name, extra in (("near", ["--near-field", f"{Z1:.6e}"]), ("far", []),
                        ("flip", ["--near-field", f"{Z1:.6e}", "--flip"])):
        r = run("reconstruct", near_file, "-a", "epie", "-n", 15, "-q", "--no-figure",
                "-o", out / f"{name}.cxi", *extra)
        assert r.exit_code == 0, r.output
        rf = float(r.output.split("R_F:")[1].split()[0])
        res[name] = (r.output, rf, out / f"{name}.cxi")
    return res


def test_reconstruct_near_field(near_results):
    out, rf, path = near_results["near"]
    assert "near field (angular, magnification 307.3" in out and "object pixel 179 nm" in out
    assert rf < 0.05
    with h5py.File(path, "r") as f:  # geometry into the result
        for k in (1, 2):
            assert f[f"entry_1/image_{k}/x_pixel_size"][()] == pytest.approx(179e-9, rel=1e-4)
            assert f[f"entry_1/image_{k}/y_pixel_size"].attrs["units"] == "m"
        assert f["entry_1/result_1/positions"].shape == (25, 2)
    # far field on the same file: the warning, and a model that does not fit
    far_out, far_rf, _ = near_results["far"]
    assert "warning" in far_out and "do not overlap" in far_out
    assert far_rf > 5 * rf  # measured: 0.014 near field, 0.23 far field (ePIE, 15 sweeps)
    # the opposite translation sign is a different (wrong) near-field model
    assert "flipped" in near_results["flip"][0] and near_results["flip"][1] > 5 * rf  # 0.25


def test_api_near_field_keyword_equals_the_cli(near_file, near_results):
    """``reconstruct(read_ptycho(f), near_field=Z)`` is the API's ``--near-field Z``."""
    from phasekit.io import read_ptycho
    from phasekit.ptycho import reconstruct

    r = reconstruct(read_ptycho(near_file), near_field=Z1, algorithm="epie", n_iter=15, rng=0,
                    progress=False)
    assert r.config["propagation"] == "angular"
    assert r.config["pixel_size"] == pytest.approx(179e-9, rel=1e-3)
    assert r.rfactor == pytest.approx(near_results["near"][1], rel=0.05)
    with pytest.raises(ConfigError, match="near_field"):
        reconstruct(np.ones((4, 8, 8)), np.zeros((4, 2)), near_field=Z1)


@pytest.fixture(scope="module")
def far_scan(tmp_path_factory):
    pos = raster_scan(4, step=5.0, margin=2)
    shape = object_shape_for(pos, (32, 32), margin=2)
    g = np.random.default_rng(1)
    obj = np.exp(0.4j * gaussian_filter(g.standard_normal(shape), 1.0))
    sim = simulate_ptycho(obj, fzp_probe(32, 14, 10), pos, dose=1e6, rng=0, background=2.0)
    return sim, pos


def test_transpose_and_flip_options(far_scan, tmp_path):
    sim, pos = far_scan
    f = write_ptycho(tmp_path / "s.cxi", sim.intensities, pos, wavelength=1e-10, distance=2.0,
                     pixel_size=75e-6)
    with h5py.File(f, "a") as h:  # a file whose stage x and y are swapped
        t = h["entry_1/sample_1/geometry_1/translation"]
        t[...] = t[()][:, [1, 0, 2]]
    r = run("reconstruct", f, "-a", "epie", "-n", 2, "-q", "--no-figure", "--transpose",
            "-o", tmp_path / "t.cxi")
    assert r.exit_code == 0 and "transposed" in r.output
    with h5py.File(tmp_path / "t.cxi", "r") as h:
        assert np.allclose(h["entry_1/result_1/positions_initial"][()], pos - pos.min(axis=0))
    r = run("reconstruct", f, "-a", "epie", "-n", 2, "-q", "--no-figure", "--flip",
            "-o", tmp_path / "f.cxi")
    assert r.exit_code == 0 and "flipped" in r.output
    with h5py.File(tmp_path / "f.cxi", "r") as h:
        p = h["entry_1/result_1/positions_initial"][()]
        q = pos[:, ::-1]
        assert np.allclose(p, q.max(axis=0) - q)


def test_modes_refine_background(far_scan, tmp_path):
    sim, pos = far_scan
    f = write_ptylab(tmp_path / "s.hdf5", sim.intensities, pos, wavelength=1e-10, distance=2.0,
                     pixel_size=75e-6)  # a PtyLab file goes through the same command
    r = run("reconstruct", f, "-a", "epie", "-n", 6, "-q", "--modes", 2,
            "--refine-positions", 2, "--background", "-o", tmp_path / "r.cxi")
    assert r.exit_code == 0, r.output
    assert "modes:   2" in r.output and "positions: refined" in r.output
    assert "background: fitted" in r.output
    # the figure shows the dominant probe mode (a (K, M, M) probe once failed to draw)
    assert "could not write the figure" not in r.output
    assert (tmp_path / "r.png").stat().st_size > 0
    with h5py.File(tmp_path / "r.cxi", "r") as h:
        assert h["entry_1/image_2/data"].shape == (2, 32, 32)
        moved = h["entry_1/result_1/positions"][()] - h["entry_1/result_1/positions_initial"][()]
        assert 0 < np.abs(moved).max() < 3
        assert h["entry_1/result_1/background"].shape == (32, 32)
        cfg = h["entry_1/image_1/process_1/note/config"][()]
        assert b"ptylab" in cfg
    # the flag without a value starts refinement at the default sweep
    r = run("reconstruct", f, "-a", "epie", "-n", 2, "-q", "--no-figure",
            "--refine-positions", "-o", tmp_path / "d.cxi")
    assert r.exit_code == 0, r.output


def test_one_line_errors(far_scan, tmp_path):
    sim, pos = far_scan
    cdi = tmp_path / "p.npy"
    np.save(cdi, np.ones((16, 16)))
    for opts in (["--near-field", "1e-3"], ["--modes", "2"], ["--background"], ["--flip"]):
        r = run("reconstruct", cdi, *opts)
        assert r.exit_code == 2 and "for ptychography scans only" in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1
    r = run("info", cdi, "--near-field", "1e-3")
    assert r.exit_code == 2 and "for ptychography scans only" in r.output
    f = write_ptylab(tmp_path / "s.hdf5", sim.intensities, pos, wavelength=1e-10, distance=2.0,
                     pixel_size=75e-6)
    with h5py.File(f, "a") as h:
        del h["zo"]
    r = run("reconstruct", f, "-n", 2)
    assert r.exit_code == 2 and r.output.startswith("error:") and "zo" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = run("reconstruct", tmp_path / "s.hdf5", "--near-field", "abc")
    assert r.exit_code == 2 and "not a distance" in r.output


def test_simulate_near_field_modes_errors_background(tmp_path):
    f = tmp_path / "nf.cxi"
    r = run("simulate", "ptycho", "--near-field", "3.657e-3", "--object", "siemens", "--frame",
            32, "--points", 4, "--step", 4, "--modes", 2, "--position-error", 1,
            "--background", 5, "--dose", 1e4, "-o", f)
    assert r.exit_code == 0, r.output
    assert "near field: magnification 307.3" in r.output and "2 modes" in r.output
    with h5py.File(f, "r") as h:
        assert h["entry_1/simulation_1/probe"].shape == (2, 32, 32)
        true = h["entry_1/simulation_1/true_positions"][()]
        written = h["entry_1/simulation_1/positions"][()]
        err = written - true
        assert 0.5 < np.sqrt((err ** 2).sum(1).mean()) < 2.5  # sigma 1 px per axis
    info = run("info", f, "--near-field", "3.657e-3")
    assert "object pixel 179 nm" in info.output
    r = run("reconstruct", f, "--near-field", "3.657e-3", "-a", "epie", "-n", 4, "-q",
            "--no-figure", "--refine-positions", 1, "-o", tmp_path / "r.cxi")
    assert r.exit_code == 0, r.output
    assert "positions vs truth: rms error" in r.output and "truth:   object error" in r.output


def test_missing_file_with_ptycho_options_says_so(tmp_path):
    for args in (["reconstruct", tmp_path / "nope.cxi", "--modes", 2, "-o", tmp_path / "r.cxi"],
                 ["info", tmp_path / "nope.cxi", "--near-field", "1e-3"]):
        r = CliRunner().invoke(cli, [str(a) for a in args])
        assert r.exit_code == 2 and "no such file" in r.output and "scans only" not in r.output
