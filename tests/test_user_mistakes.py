"""What a new user did wrong (issue 11's list), each now a one-line error with exit 2 or a correct
result: never exit 1 "a bug?", never a silent surprise."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, *contains):
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "a bug?" not in err
    for c in contains:
        assert c in err, (c, err)
    return err


@pytest.fixture(scope="module")
def cdi_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mistakes") / "d.cxi"
    res = invoke("simulate", "cdi", "--object", "vesicle", "--size", 32, "--oversampling", 4,
                 "--photons", "1e8", "--seed", 0, "--out", path)
    assert res.exit_code == 0, res.stderr
    return path


def _run(cdi_file, tmp_path, *args):
    n = () if "--schedule" in args else ("-n", 3)
    return invoke("reconstruct", cdi_file, *n, "-q", "--no-figure", "--out", tmp_path / "r.cxi",
                  *args)


@pytest.mark.parametrize("alg,expected", [
    ("resire", ("tomography", "not a tomography", "Data Exchange", "NXtomo")),
    ("fbp", ("tomography", "not a tomography", "Data Exchange")),
    ("crisp", ("ptychography", "CDI", "choose from", "hio")),
    ("sbe-kmeans", ("k-means", "CDI", "choose from", "hio"))])
def test_algorithm_of_another_modality(cdi_file, tmp_path, alg, expected):
    """The error names the modalities on both sides (and, for tomography, the layouts read)."""
    one_line_error(_run(cdi_file, tmp_path, "-a", alg), *expected)


def test_empty_schedule_is_an_error(cdi_file, tmp_path):
    one_line_error(_run(cdi_file, tmp_path, "--schedule", ""), "empty schedule")


def test_parameter_for_an_algorithm_not_in_the_chain(cdi_file, tmp_path):
    one_line_error(_run(cdi_file, tmp_path, "--param", "RAAR.beta=0.5"), "raar", "not in the chain")
    ok = _run(cdi_file, tmp_path, "--schedule", "HIO:2,RAAR:2", "--param", "RAAR.beta=0.5")
    assert ok.exit_code == 0, ok.stderr


def test_huge_schedule_refused_at_once(cdi_file, tmp_path):
    one_line_error(_run(cdi_file, tmp_path, "--schedule", "(HIO:1,ER:1)*100000000"), "stages")


def test_unknown_parameter_lists_the_accepted_ones(cdi_file, tmp_path):
    one_line_error(_run(cdi_file, tmp_path, "-a", "raar", "--param", "bta=0.5"), "bta", "accepted: beta")


def test_negative_intensities_and_clip_negative(tmp_path):
    g = np.random.default_rng(0)
    obj = np.zeros((32, 32))
    obj[12:20, 12:20] = g.random((8, 8)) + 0.5
    I = np.abs(np.fft.fftshift(np.fft.fft2(obj))) ** 2 - 2.0  # a background-subtracted pattern
    path = tmp_path / "neg.npy"
    np.save(path, I)
    err = one_line_error(invoke("reconstruct", path, "-n", 2, "-q", "--no-figure", "--out",
                                tmp_path / "r.cxi"), "negative")
    assert "--clip-negative" in err
    res = invoke("reconstruct", path, "-n", 2, "-q", "--no-figure", "--clip-negative", "--out",
                 tmp_path / "r.cxi")
    assert res.exit_code == 0, res.stderr


def test_fbp_is_listed_everywhere():
    res = invoke("algorithms")
    assert res.exit_code == 0
    assert "fbp" in res.stdout and "tomography [tomo]" in res.stdout
    res = invoke("algorithms", "--modality", "tomo")
    names = [ln.split()[0] for ln in res.stdout.splitlines() if ln.startswith("  ")]
    assert names == ["resire", "sirt", "genfire", "fbp"]
    res = invoke("reconstruct", "--help")
    text = " ".join(res.stdout.split())
    for name in ("hio", "so4d", "vrrk-l1", "cprime", "epie", "crisp", "resire", "fbp"):
        assert name in text, name


def test_fbp_iterations_and_parameters(tmp_path):
    from phasekit.tomo.io import write_tilt_series
    from phasekit.tomo.simulate import simulate_tilt_series

    ts = simulate_tilt_series("vesicle", size=16, angles=np.arange(-60, 61, 10.0), rng=0)
    path = tmp_path / "series.h5"
    write_tilt_series(path, ts.projections, ts.angles, vol_shape=ts.vol_shape)
    one_line_error(invoke("reconstruct", path, "-a", "fbp", "-n", 50, "-q", "--no-figure"),
                   "not iterative")
    one_line_error(invoke("reconstruct", path, "-a", "sirt", "-n", 2, "-q", "--no-figure",
                          "-p", "filter=hann"), "fbp only")
    res = invoke("reconstruct", path, "-a", "fbp", "-q", "--no-figure", "-p", "filter=hann",
                 "--out", tmp_path / "fbp.h5")
    assert res.exit_code == 0, res.stderr
    with h5py.File(tmp_path / "fbp.h5", "r") as f:
        assert f is not None
