"""``phasekit info`` describes every kind of file phasekit reads or writes.

Files are laid out by hand (h5py / NumPy / torch / tifffile) for every kind, then written by
phasekit's own commands; anything unrecognised gives one line naming what was looked for.
"""
from __future__ import annotations

import json
import pickle
import zipfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli


def info(path):
    return CliRunner().invoke(cli, ["info", str(path)])


def ok(path) -> str:
    r = info(path)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"file: {path} (")
    return r.output


def one_line_error(path, *contains) -> str:
    r = info(path)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), r.output
    for c in contains:
        assert c in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- laid out by hand
def test_cxi_diffraction(tmp_path):
    p = tmp_path / "d.cxi"
    with h5py.File(p, "w") as f:
        f["cxi_version"] = 150
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = np.arange(64, dtype=np.float32).reshape(8, 8)
        mask = np.zeros((8, 8), np.uint32)
        mask[0, :3] = 1
        det["mask"] = mask
        det["distance"] = 0.5
        det["x_pixel_size"] = 75e-6
        f["entry_1/instrument_1/source_1/wavelength"] = 1e-9
    out = ok(p)
    assert "(CXI 1.5," in out and "shape (8, 8)" in out
    assert "61 of 64 pixels measured (3 masked)" in out and "bits 0x1: 3" in out
    assert "wavelength 1e-09 m" in out and "distance 0.5 m" in out
    assert "total 2016, max 63, min 0" in out


def test_cdi_result(tmp_path):
    p = tmp_path / "r.cxi"
    with h5py.File(p, "w") as f:
        g = f.create_group("entry_1/image_1")
        g["data"] = np.ones((6, 6), np.complex64)
        g["mask"] = np.eye(6, dtype=np.uint8)
        g.attrs["rfactor"] = 0.0425
        proc = g.create_group("process_1")
        proc["note/config"] = json.dumps({"modality": "cdi", "algorithm": None,
                                          "schedule": [["hio", 20, {}], ["er", 5, {}]]})
        proc["history/iteration"] = np.arange(1, 26)  # numbered from 1, as the driver does
        proc["history/R_F"] = np.linspace(1, 0.04, 25)
    out = ok(p)
    assert "reconstruction results: 1 image(s)" in out
    assert "cdi, algorithm HIO:20,ER:5, 25 iterations, R-factor 0.0425" in out
    assert "image_1: shape (6, 6) complex64, R-factor 0.0425, support 6 pixels" in out
    assert "history (image_1): R_F, iteration (25 points)" in out


def test_ptycho_scan_and_result(tmp_path):
    p = tmp_path / "scan.cxi"
    with h5py.File(p, "w") as f:
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = np.full((3, 8, 8), 2.0, np.float32)
        det["distance"] = 1.0
        det["x_pixel_size"] = 1e-4
        f["entry_1/instrument_1/source_1/wavelength"] = 1e-9
        f["entry_1/sample_1/geometry_1/translation"] = np.array(
            [[0, 0, 0], [-2e-6, 0, 0], [0, -1e-6, 0]], float)
    out = ok(p)
    assert "CXI ptychography scan" in out and "frames: 3 x 8x8" in out
    assert "counts per frame: mean 128" in out
    # object pixel = lambda z / (M p) = 1e-9 / (8e-4) = 1.25 um: span 1.6 x 0.8 px (y, x)
    assert "object pixel 1250 nm, positions span 0.8 x 1.6 px" in out
    r = tmp_path / "res.cxi"
    with h5py.File(r, "w") as f:
        for k, kind in ((1, "object"), (2, "probe")):
            f[f"entry_1/image_{k}/data"] = np.ones((4, 4), np.complex64)
            f[f"entry_1/image_{k}/data_type"] = kind
        f["entry_1/image_1"].attrs["rfactor"] = 0.25
        f["entry_1/image_1/process_1/note/config"] = json.dumps(
            {"modality": "ptycho", "algorithm": "rpie", "schedule": [["rpie", 7, {}]]})
    out = ok(r)
    assert "ptycho, algorithm rpie, 7 iterations, R-factor 0.25" in out
    assert "image_1 (object): shape (4, 4) complex64" in out
    assert "image_2 (probe): shape (4, 4) complex64" in out


def _tilt_file(p, angles=True):
    with h5py.File(p, "w") as f:
        g = f.create_group("tomo")
        g["projections"] = np.ones((4, 6, 5), np.float32)
        if angles:
            g["angles"] = np.array([-30.0, -10.0, 10.0, 30.0])
    return p


def test_tilt_series(tmp_path):
    out = ok(_tilt_file(tmp_path / "s.h5"))
    assert "HDF5 tilt series" in out and "tilt series: 4 projections of 6 x 5 (float32)" in out
    assert "tilt angles: -30 to 30 deg (single-axis tilt about y)" in out
    assert "mask: none" in out and "ground truth: none" in out


def test_tilt_series_without_angles_is_named_so(tmp_path):
    p = _tilt_file(tmp_path / "noang.h5", angles=False)
    out = ok(p)
    assert "tilt series without angles (expected dataset /tomo/angles)" in out
    assert "/tomo/projections: shape (4, 6, 5) float32" in out
    assert "no diffraction data" not in out
    # reconstructing it says the same, in one line
    r = CliRunner().invoke(cli, ["reconstruct", str(p), "-n", "2"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"error: {p}: tilt series without angles (expected dataset /tomo/angles)"], r.output


def test_tiff_tilt_series(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, np.zeros((3, 5, 4), np.float32), photometric="minisblack")
    out = ok(p)
    assert "tilt series without angles (expected t.rawtlt or t.tlt beside it)" in out
    assert "images: shape (3, 5, 4) float32" in out
    (tmp_path / "t.rawtlt").write_text("-20\n0\n20\n")
    out = ok(p)
    # pages are (y, x): projections (n, x, y)
    assert "tilt series: 3 projections of 4 x 5 (float32)" in out
    assert "tilt angles: -20 to 20 deg" in out and "angles from t.rawtlt" in out


def test_tomo_result(tmp_path):
    p = tmp_path / "vol.h5"
    with h5py.File(p, "w") as f:
        g = f.create_group("tomo_result")
        g["volume"] = np.full((4, 4, 4), 0.5, np.float32)
        g["history/R_F"] = np.linspace(0.5, 0.1, 5)
        g.attrs["config"] = json.dumps({"algorithm": "sirt", "schedule": [["sirt", 5, {}]]})
        g.attrs["metrics"] = json.dumps({"R_F": 0.1, "relative_error": 0.3})
    out = ok(p)
    assert "tomography result: volume (4, 4, 4) float32, min 0.5, max 0.5" in out
    assert "algorithm sirt, 5 iterations, R_F 0.1" in out
    assert "history: R_F (5 points)" in out and "metrics: relative_error 0.3" in out


def test_kmeans_output(tmp_path):
    p = tmp_path / "x_kmeans.npz"
    np.savez(p, labels=np.array([0, 0, 1, 1, 1]), centers=np.zeros((2, 3)), inertia=4.0,
             objective=0.4, n_iter=7, objectives=np.array([1.0, 0.5, 0.4]),
             config=json.dumps({"method": "lloyd", "n_clusters": 2}))
    out = ok(p)
    assert "k-means result: K=2 clusters of 3-dimensional points, N=5 samples, method lloyd" in out
    assert "objective 0.4, inertia 4, 7 iterations" in out
    assert "cluster sizes: 2-3 (0 empty)" in out and "objective history: 3 values, 1 -> 0.4" in out


def test_checkpoint_from_its_signature(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "run.ckpt"
    torch.save({"format": "phasekit-checkpoint", "version": 1,
                "signature": {"modality": "cdi", "stages": [("hio", 20, {}), ("er", 10, {})],
                              "starts": 2, "shape": [8, 8], "seed": 3},
                "finished": [{"image": np.zeros((8, 8), np.complex64), "rfactor": 0.125,
                              "n_iter": 30, "history": {}}],
                "current": {"start": 1, "stage": 0, "k": 11, "history": {"iteration": [0, 5, 10]},
                            "algo": {"x": torch.zeros(8, 8)}}}, p)
    out = ok(p)
    assert "phasekit checkpoint (format version 1): cdi, schedule HIO:20,ER:10, 2 start(s)" in out
    assert "shape [8, 8], seed 3" in out and "finished starts: 1" in out
    assert "start 1: R-factor 0.125 after 30 iterations, array (8, 8) complex64" in out
    assert "in progress: start 2, stage 0, next step 11 (3 history points)" in out
    # another torch.save file is not a checkpoint
    torch.save({"weights": torch.ones(3)}, tmp_path / "w.pt")
    one_line_error(tmp_path / "w.pt", "not a phasekit checkpoint", "phasekit-checkpoint")


class _Boom:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['PK_BOOM'], 'w').write('ran')",))


def test_checkpoint_code_is_never_run(tmp_path, monkeypatch):
    flag = tmp_path / "ran.txt"
    monkeypatch.setenv("PK_BOOM", str(flag))
    p = tmp_path / "evil.ckpt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"format": "phasekit-checkpoint", "version": 1,
                                                  "signature": {}, "finished": [_Boom()],
                                                  "current": None}))
    out = ok(p)
    assert "phasekit checkpoint (format version 1)" in out and "finished starts: 1" in out
    assert not flag.exists()


def test_numpy_arrays(tmp_path):
    np.save(tmp_path / "line.npy", np.arange(5.0))
    out = ok(tmp_path / "line.npy")
    assert "NumPy array (not a diffraction pattern: intensity has shape (5,)" in out
    assert "array: shape (5,) float64, min 0, max 4" in out
    np.save(tmp_path / "pattern.npy", np.ones((4, 4)))
    assert "diffraction data: array  shape (4, 4)" in ok(tmp_path / "pattern.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros(3, np.int16), b=np.ones((2, 2)))
    out = ok(tmp_path / "two.npz")
    assert "NumPy archive: 2 array(s)" in out and "a: shape (3,) int16" in out
    np.savez(tmp_path / "none.npz")
    assert "NumPy archive: 0 array(s)" in ok(tmp_path / "none.npz")
    np.savez(tmp_path / "pick.npz", o=np.array([{"a": 1}], dtype=object))
    assert "o: Python objects (pickled; not loaded)" in ok(tmp_path / "pick.npz")
    np.savez(tmp_path / "i.npz", intensity=np.ones(3))
    assert "not a diffraction data set: intensity has shape (3,)" in ok(tmp_path / "i.npz")


def test_unrecognised_files_are_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    one_line_error(tmp_path / "notes.txt", "unrecognised file", "HDF5/CXI signature",
                   "NumPy .npy header", "zip archive", "TIFF header")
    (tmp_path / "empty.cxi").write_bytes(b"")
    one_line_error(tmp_path / "empty.cxi", "empty file")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["stuff/x"] = np.zeros(3)
    one_line_error(tmp_path / "other.h5", "no layout phasekit reads", "entry_N/image_M/data",
                   "/tomo_result", "it holds: stuff/x: shape (3,) float64")
    good = tmp_path / "good.h5"
    _tilt_file(good)
    (tmp_path / "cut.h5").write_bytes(good.read_bytes()[:700])
    one_line_error(tmp_path / "cut.h5")
    one_line_error(tmp_path / "missing.h5", "no such file")


# --------------------------------------------------------------------------- written by phasekit
def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


def test_files_written_by_phasekit_cdi(tmp_path):
    d = tmp_path / "d.cxi"
    run("simulate", "cdi", "--size", 32, "--beamstop", 2, "--seed", 0, "--out", d)
    out = ok(d)
    assert "shape (32, 32)" in out and "ground truth: shape (32, 32)" in out
    res, ck = tmp_path / "r.cxi", tmp_path / "r.ckpt"
    run("reconstruct", d, "--schedule", "HIO:10,ER:5", "--seed", "0", "--no-figure", "-q",
        "--checkpoint", ck, "--checkpoint-every", 5, "-o", res)
    out = ok(res)
    assert "cdi, algorithm HIO:10,ER:5, 15 iterations, R-factor" in out
    assert "image_1: shape (32, 32) complex64" in out
    out = ok(ck)
    assert "phasekit checkpoint" in out and "schedule HIO:10,ER:5, 1 start(s)" in out
    assert "after 15 iterations" in out and "in progress: none" in out


def test_files_written_by_phasekit_kmeans_and_tomo(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    np.save(tmp_path / "pts.npy", x)
    run("kmeans", tmp_path / "pts.npy", "-k", 2, "--method", "lloyd", "-q")
    out = ok(tmp_path / "pts_kmeans.npz")
    assert "k-means result: K=2 clusters of 2-dimensional points, N=40 samples, method lloyd" \
        in out and "cluster sizes: 20-20 (0 empty)" in out
    s = tmp_path / "series.h5"
    run("simulate", "tomo", "--size", 8, "--tilts=-60:30:60", "--projector", "fst", "-o", s)
    out = ok(s)
    assert "tilt series: 5 projections of 8 x 8" in out and "-60 to 60 deg" in out
    assert "ground truth: volume (8, 8, 8)" in out
    run("reconstruct", s, "-a", "sirt", "-n", 3, "--no-figure", "-q", "-o", tmp_path / "v.h5")
    out = ok(tmp_path / "v.h5")
    assert "tomography result: volume (8, 8, 8) float32" in out
    assert "algorithm sirt, 3 iterations, R_F" in out
