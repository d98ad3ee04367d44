"""Tests of the ``phasekit`` command line (click's CliRunner, plus one run of the real executable)
and of the figures in :mod:`phasekit.plot`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = ["--schedule", "HIO:60,ER:20", "--real", "--positive", "--seed", "0"]


def invoke(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)


def assert_one_line_error(res, code=2, contains=()):
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert "Traceback" not in res.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    for c in contains:
        assert c in err, (c, err)
    return err


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """A small simulated vesicle (64 x 64) with ground truth and support."""
    d = tmp_path_factory.mktemp("cli")
    path = d / "data.cxi"
    res = invoke("simulate", "cdi", "--object", "vesicle", "--size", 64, "--oversampling", 4,
                 "--photons", "1e8", "--beamstop", 2, "--seed", 0, "--out", path)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "64x64" in lines[0] and "R_noise" in lines[0] and str(path) in lines[0]
    return path


# --------------------------------------------------------------------------- basics
def test_version_and_help():
    from phasekit import __version__

    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"phasekit {__version__}"
    res = invoke("--help")
    assert res.exit_code == 0
    for cmd in ("simulate", "reconstruct", "info", "algorithms", "demo"):
        assert cmd in res.stdout
    res = invoke("reconstruct", "--help")
    assert res.exit_code == 0 and "--schedule" in res.stdout and "--resume" in res.stdout


def test_algorithms_lists_registry():
    res = invoke("algorithms")
    assert res.exit_code == 0
    lines = res.stdout.strip().splitlines()
    names = [ln.split()[0] for ln in lines]
    for name in ("er", "hio", "raar", "oss", "gps-r", "gps-f"):
        assert name in names
    hio = lines[names.index("hio")]
    assert lines[0].startswith("CDI") and "[cdi]" in lines[0]
    assert "1000" in hio and "beta=0.9" in hio and "hybrid input-output" in hio
    assert "n_stages=10" in lines[names.index("gps-r")]


def test_simulate_writes_truth_and_geometry(data_file):
    from phasekit.io import read_diffraction

    d = read_diffraction(data_file)
    assert d.intensity.shape == (64, 64)
    assert d.truth is not None and d.support is not None and d.mask is not None
    assert d.wavelength == pytest.approx(1.5498e-10) and d.distance == pytest.approx(2.0)
    assert d.pixel_size == pytest.approx(75e-6)
    assert d.metadata["params"]["photons"] == pytest.approx(1e8)
    assert (~d.mask).sum() > 0  # the beamstop


def test_simulate_options(tmp_path):
    out = tmp_path / "c.npz"
    res = invoke("simulate", "cdi", "--object", "blobs", "--size", 48, "--photons", "none",
                 "--complex", "--gaps", 2, "--beamstop", 0, "--wavelength", "1e-10", "--out", out)
    assert res.exit_code == 0, res.stderr
    assert "noise-free" in res.stdout and "complex" in res.stdout
    from phasekit.io import read_diffraction

    d = read_diffraction(out)
    assert np.iscomplexobj(d.truth) and d.wavelength == pytest.approx(1e-10)
    assert (~d.mask).sum() > 0  # the gaps


def test_info(data_file):
    res = invoke("info", data_file)
    assert res.exit_code == 0
    assert "(64, 64)" in res.stdout and "ground truth" in res.stdout


# --------------------------------------------------------------------------- reconstruct
def test_reconstruct_writes_result_and_figure(data_file, tmp_path):
    from phasekit.io import read_result

    out = tmp_path / "result.cxi"
    res = invoke("reconstruct", data_file, *SMALL, "--starts", 2, "--out", out, "-q")
    assert res.exit_code == 0, res.stderr
    assert out.exists()
    png = tmp_path / "result.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    r = read_result(out)
    assert len(r["images"]) == 2 and r["images"][0].shape == (64, 64)
    assert np.all(np.isfinite(r["images"][0]))
    assert r["rfactors"][0] <= r["rfactors"][1]
    assert r["config"]["input"] == str(data_file)
    assert r["config"]["real"] is True and r["config"]["positive"] is True
    assert "reconstruct" in r["metadata"]["command"]
    assert len(r["history"]["R_F"]) == 80
    text = res.stdout
    for word in ("R_F:", "per start", "ms/iteration", "aligned relative error", "result.png",
                 "zero frequency at (32, 32) (not searched: a simulation with its ground truth"):
        assert word in text, text
    err = float(text.split("aligned relative error")[1].split(",")[0])
    assert 0 <= err < 1.0


def test_reconstruct_default_output_and_npy_input(data_file, tmp_path):
    from phasekit.io import read_diffraction, read_result

    d = read_diffraction(data_file)
    npy = tmp_path / "pattern.npy"
    np.save(npy, d.intensity)
    res = invoke("reconstruct", npy, "-a", "er", "-n", 15, "--no-figure", "--support", "auto")
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "pattern_result.cxi"
    assert out.exists() and not (tmp_path / "pattern_result.png").exists()
    assert "truth" not in res.stdout  # a bare .npy has no ground truth
    assert read_result(out)["config"]["schedule"] == [["er", 15, {}]]


def test_reconstruct_support_file_and_shrinkwrap(data_file, tmp_path):
    from phasekit.io import read_diffraction, read_result

    sup = read_diffraction(data_file).support
    np.save(tmp_path / "sup.npy", sup)
    out = tmp_path / "sw.cxi"
    res = invoke("reconstruct", data_file, "-a", "hio", "-n", 40, "--support", tmp_path / "sup.npy",
                 "--sw-every", 10, "--sw-threshold", 0.15, "--sw-sigma", "2:1", "--no-figure",
                 "-o", out)
    assert res.exit_code == 0, res.stderr
    cfg = read_result(out)["config"]
    assert cfg["shrinkwrap"]["every"] == 10 and cfg["shrinkwrap"]["sigma_end"] == 1.0
    res = invoke("reconstruct", data_file, "-n", 5, "--support", tmp_path / "sup.npy",
                 "--sw-every", 10, "--no-shrinkwrap", "--no-figure", "-o", out)
    assert res.exit_code == 0 and read_result(out)["config"]["shrinkwrap"] is None


def test_param_json_and_per_algorithm(data_file, tmp_path):
    from phasekit.io import read_result

    out = tmp_path / "p.cxi"
    res = invoke("reconstruct", data_file, "--schedule", "HIO:10,RAAR:10", "--param", "hio.beta=0.7",
                 "--param", "raar.beta=0.6", "--no-figure", "-o", out)
    assert res.exit_code == 0, res.stderr
    sched = read_result(out)["config"]["schedule"]
    assert sched == [["hio", 10, {"beta": 0.7}], ["raar", 10, {"beta": 0.6}]]
    res = invoke("reconstruct", data_file, "-a", "gps-r", "-n", 20, "--param",
                 "sigma=[[0, 0.02], [0.5, 0.1]]", "--param", "smoothing=exact", "--no-figure",
                 "-o", out)
    assert res.exit_code == 0, res.stderr
    p = read_result(out)["config"]["schedule"][0][2]
    assert p["smoothing"] == "exact" and p["sigma"] == [[0, 0.02], [0.5, 0.1]]


def test_config_file_and_overrides(data_file, tmp_path):
    from phasekit.io import read_result

    cfg = tmp_path / "run.toml"
    cfg.write_text('algorithm = "hio"\niterations = 30\nstarts = 2\nreal = true\n'
                   'no_figure = true\n[params]\nbeta = 0.8\n')
    out = tmp_path / "cfg.cxi"
    res = invoke("reconstruct", data_file, "--config", cfg, "-o", out)
    assert res.exit_code == 0, res.stderr
    r = read_result(out)
    assert r["config"]["schedule"] == [["hio", 30, {"beta": 0.8}]]
    assert r["config"]["starts"] == 2 and r["config"]["real"] is True
    assert not out.with_suffix(".png").exists()
    # the command line wins over the file
    res = invoke("reconstruct", data_file, "--config", cfg, "-n", 20, "--param", "beta=0.7",
                 "--complex", "--starts", 1, "-o", out)
    assert res.exit_code == 0, res.stderr
    r = read_result(out)
    assert r["config"]["schedule"] == [["hio", 20, {"beta": 0.7}]]
    assert r["config"]["starts"] == 1 and r["config"]["real"] is False


def test_resume_from_checkpoint(data_file, tmp_path, monkeypatch):
    """An interrupted run resumed from its checkpoint runs only the missing iterations and gives
    the uninterrupted result."""
    from phasekit.cdi import reconstruct
    from phasekit.io import read_diffraction, read_result
    from phasekit.engine import get_algorithm

    opts = ["--schedule", "HIO:40,ER:10", "--real", "--positive", "--starts", 2, "--seed", 3,
            "--batch-starts", "--no-figure"]
    full = tmp_path / "full.cxi"
    assert invoke("reconstruct", data_file, *opts, "-o", full).exit_code == 0

    d = read_diffraction(data_file)
    ck = tmp_path / "run.ckpt"

    def interrupt(state):
        if state.start == 1 and state.iteration == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct(d.intensity, d.support, mask=d.mask, schedule="HIO:40,ER:10", real=True,
                    positive=True, starts=2, rng=3, checkpoint=ck, checkpoint_every=10,
                    callback=interrupt, progress=False, batch_starts=True)
    assert ck.exists()

    steps = []
    for name in ("hio", "er"):
        cls = get_algorithm(name).cls
        orig = cls.step

        def counting(self, k, _orig=orig, _name=name):
            steps.append(_name)
            return _orig(self, k)

        monkeypatch.setattr(cls, "step", counting)
    resumed = tmp_path / "resumed.cxi"
    res = invoke("reconstruct", data_file, *opts, "--resume", ck, "-o", resumed)
    assert res.exit_code == 0, res.stderr
    # the two starts ran batched (64^2) and were checkpointed together at iteration 20: 20 HIO
    # + 10 ER batched steps remain
    assert steps.count("hio") == 20 and steps.count("er") == 10
    # the time per iteration counts the iterations run here (2 starts x 30), not those from
    # the checkpoint
    assert "60 of 100 iterations run here, the rest from the checkpoint" in res.stdout
    again = invoke("reconstruct", data_file, *opts, "--resume", ck, "-o", tmp_path / "again.cxi")
    assert again.exit_code == 0, again.stderr
    assert "nothing left to run (100 iterations, all from the checkpoint)" in again.stdout
    assert "ms/iteration" not in again.stdout and "nan" not in again.stdout
    a, b = read_result(full), read_result(resumed)
    assert a["rfactors"] == pytest.approx(b["rfactors"], rel=1e-5)
    for x, y in zip(a["images"], b["images"]):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4 * np.abs(x).max())
    # a checkpoint of another run is refused
    res = invoke("reconstruct", data_file, "-a", "er", "-n", 7, "--resume", ck, "--no-figure",
                 "-o", tmp_path / "x.cxi")
    assert_one_line_error(res, contains=("different run",))


# --------------------------------------------------------------------------- errors
def _bad_inputs(tmp_path, data_file):
    corrupt = tmp_path / "corrupt.cxi"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)  # HDF5 signature, garbage after
    text = tmp_path / "notes.cxi"
    text.write_text("not a data file")
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text('algorithm = "hio"\nwhatever = 3\n')
    return {
        "missing": (["reconstruct", tmp_path / "missing.cxi"], ("missing.cxi",)),
        "corrupt": (["reconstruct", corrupt], ("corrupt.cxi",)),
        "text": (["info", text], ("notes.cxi",)),
        "algorithm": (["reconstruct", data_file, "-a", "nope"],
                      ("nope", "er", "hio", "raar", "oss", "gps-r", "gps-f")),
        "negative-iterations": (["reconstruct", data_file, "--iterations", "-5"], ("iterations",)),
        "param-format": (["reconstruct", data_file, "--param", "beta"], ("KEY=VALUE",)),
        "param-unknown": (["reconstruct", data_file, "--param", "gamma=1"], ("gamma",)),
        "param-value": (["reconstruct", data_file, "--param", "beta=7"], ("beta",)),
        "param-reserved": (["reconstruct", data_file, "--param", "n_iter=3"], ("--iterations",)),
        "config-key": (["reconstruct", data_file, "--config", bad_cfg], ("whatever", "valid keys")),
        "schedule": (["reconstruct", data_file, "--schedule", "HIO:x"], ("HIO:x",)),
        "support": (["reconstruct", data_file, "--support", tmp_path / "nosup.npy"], ("nosup.npy",)),
        "object": (["simulate", "cdi", "--object", "unicorn", "--out", tmp_path / "u.cxi"],
                   ("unicorn", "vesicle")),
        "photons": (["simulate", "cdi", "--photons", "-3"], ("photons",)),
        "command": (["reconstrut", data_file], ("reconstrut",)),
        "option": (["info", data_file, "--frobnicate"], ("--frobnicate",)),
    }


@pytest.mark.parametrize("case", [
    "missing", "corrupt", "text", "algorithm", "negative-iterations", "param-format",
    "param-unknown", "param-value", "param-reserved", "config-key", "schedule", "support",
    "object", "photons", "command", "option"])
def test_bad_input_one_line_error(case, tmp_path, data_file):
    args, contains = _bad_inputs(tmp_path, data_file)[case]
    res = invoke(*args)
    assert_one_line_error(res, code=2, contains=contains)
    assert not list(tmp_path.glob("*_result.cxi"))


def test_debug_shows_traceback(tmp_path):
    res = invoke("--debug", "info", tmp_path / "missing.cxi")
    assert res.exit_code == 2
    assert "Traceback" in res.stderr and res.stderr.strip().splitlines()[-1].startswith("error:")


def test_unexpected_error_is_one_line_with_status_1(monkeypatch, data_file):
    import phasekit.io

    def boom(path):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(phasekit.io, "describe", boom)
    res = invoke("info", data_file)
    err = assert_one_line_error(res, code=1, contains=("RuntimeError", "boom"))
    assert "--debug" in err


def test_verbose_logs_to_stderr(data_file, tmp_path):
    res = invoke("-v", "reconstruct", data_file, "-a", "er", "-n", 3, "--no-figure",
                 "-o", tmp_path / "v.cxi")
    assert res.exit_code == 0
    assert "DEBUG" in res.stderr
    res = invoke("reconstruct", data_file, "-a", "er", "-n", 3, "--no-figure",
                 "-o", tmp_path / "v.cxi")
    assert "DEBUG" not in res.stderr


# --------------------------------------------------------------------------- demo, figures
def test_demo_small(tmp_path):
    out = tmp_path / "demo"
    res = invoke("demo", "--out", out, "--size", 64, "-q")
    assert res.exit_code == 0, res.stderr
    for name in ("demo.cxi", "demo_result.cxi", "demo_result.png"):
        assert (out / name).exists()
    assert "aligned relative error" in res.stdout and "demo finished" in res.stdout


def test_plot_functions(tmp_path, data_file):
    from phasekit.io import read_diffraction
    from phasekit.plot import plot_cdi_result, plot_pattern
    from phasekit.engine import ReconResult

    d = read_diffraction(data_file)
    p = plot_pattern(d.intensity, tmp_path / "pattern.png", mask=d.mask)
    assert p.read_bytes()[:8] == PNG_MAGIC
    # a complex image, given as a read_result-like dict, with a complex truth
    rng = np.random.default_rng(0)
    truth = np.zeros((32, 32), np.complex64)
    truth[10:20, 12:22] = np.exp(1j * rng.uniform(0, 1, (10, 10)))
    est = np.roll(truth, 2, axis=1) * np.exp(0.3j)
    res = {"images": [est], "support": np.abs(est) > 0,
           "history": {"iteration": [1, 2, 3], "R_F": [0.3, 0.1, 0.05], "stage": [0, 0, 1]},
           "rfactors": [0.05]}
    p = plot_cdi_result(res, tmp_path / "sub" / "c.png", truth=truth)
    assert p.read_bytes()[:8] == PNG_MAGIC
    r = ReconResult(image=np.abs(truth), images=[np.abs(truth)], rfactors=[0.1])
    p = plot_cdi_result(r, tmp_path / "r.png")  # no support, no history
    assert p.read_bytes()[:8] == PNG_MAGIC
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temp files left


# --------------------------------------------------------------------------- the executable
def test_executable_end_to_end(tmp_path):
    exe = shutil.which("phasekit") or os.path.join(os.path.dirname(sys.executable), "phasekit")
    if not os.path.exists(exe):
        pytest.skip("the phasekit console script is not installed")

    def run(*args):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)

    p = run("simulate", "cdi", "--size", 64, "--beamstop", 2, "--out", "d.cxi")
    assert p.returncode == 0, p.stderr
    p = run("info", "d.cxi")
    assert p.returncode == 0 and "ground truth" in p.stdout
    p = run("reconstruct", "d.cxi", *SMALL, "-q")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "d_result.cxi").exists() and (tmp_path / "d_result.png").exists()
    assert "aligned relative error" in p.stdout
    p = run("info", "missing.cxi")
    assert p.returncode == 2 and p.stderr.strip() == "error: missing.cxi: no such file"


def test_reconstruct_threads_option(data_file, tmp_path):
    """--threads N runs torch and the compiled kernels on N threads (recorded in the result's
    provenance) and restores the counts afterwards; 0 is a one-line usage error (exit 2)."""
    import torch

    from phasekit.io import read_result

    before = torch.get_num_threads()
    out = tmp_path / "threads.cxi"
    res = invoke("reconstruct", data_file, "-a", "er", "-n", 5, "--threads", 1, "--no-figure", "-q",
                 "--out", out)
    assert res.exit_code == 0, res.stderr
    assert read_result(out)["provenance"]["threads"] == 1
    assert "iterations, 1 CPU thread)" in res.stdout  # the summary says what the run used
    assert torch.get_num_threads() == before
    bad = invoke("reconstruct", data_file, "--threads", 0, "--out", tmp_path / "x.cxi")
    assert bad.exit_code == 2 and "--threads" in bad.stderr and not (tmp_path / "x.cxi").exists()
