"""Preprocessing of raw tomography scans and the rotation centre: flat/dark, -log, zingers, the
centre finders, the shifted projectors (exact adjoints), and the full ``phasekit reconstruct``
run from a hand-laid Data Exchange file whose rotation axis is 2 pixels off the detector centre."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from phasekit.cli.main import cli
from phasekit.tomo.io import read_tomo_result
from phasekit.tomo.phantoms import make_phantom
from phasekit.tomo.plot import figure_layout, plot_tomo_result
from phasekit.tomo.preprocess import (find_center, find_center_entropy, find_center_registration,
                                      minus_log, normalize, preprocess, remove_zingers)
from phasekit.tomo.problem import TomoProblem
from phasekit.tomo.projectors import FourierSliceProjector, RealSpaceProjector

N, ROWS, OFFSET, MU = 40, 2, 2.0, 0.05
ZINGERS = [(5, 10, 1), (40, 30, 0)]


def _volume():
    ph = make_phantom("cell", N, rng=0)
    return np.ascontiguousarray(ph[:, N // 2 - ROWS // 2:N // 2 + ROWS // 2, :]).astype(np.float32)


@pytest.fixture(scope="module")
def dx_scan(tmp_path_factory):
    """A Data Exchange file laid out with h5py: counts I = dark + gain exp(-mu p) with Poisson
    noise, 4 flats, 2 darks, 2 zingers; projections of a phantom whose axis is at Dx//2 + 2."""
    g = np.random.default_rng(0)
    vol = _volume()
    ang = np.linspace(0.0, 180.0, 61)
    p = RealSpaceProjector(vol.shape, ang, center_offset=OFFSET).forward(torch.as_tensor(vol)).numpy()
    gain = 2000.0 * (1 + 0.3 * np.sin(np.arange(N) / 5.0))[None, :, None] * np.ones((1, N, ROWS))
    dark = 50.0
    counts = (g.poisson(gain * np.exp(-MU * p)) + dark).astype(np.float64)
    for i, x, y in ZINGERS:
        counts[i, x, y] += 8000
    flats = g.poisson(np.repeat(gain, 4, 0)) + dark
    darks = g.poisson(np.full((2, N, ROWS), dark))
    path = tmp_path_factory.mktemp("dx") / "scan.h5"
    with h5py.File(path, "w") as f:  # dxchange layout: (n, rows, cols), theta in degrees
        f["exchange/data"] = counts.transpose(0, 2, 1).astype(np.uint16)
        f["exchange/data_white"] = flats.transpose(0, 2, 1).astype(np.uint16)
        f["exchange/data_dark"] = darks.transpose(0, 2, 1).astype(np.uint16)
        f["exchange/theta"] = ang
    return {"path": path, "truth": vol * MU, "angles": ang, "line": MU * p, "counts": counts}


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_normalize_and_minus_log_invert_the_transmission_model():
    rng = np.random.default_rng(1)
    p = rng.random((3, 5, 4)).astype(np.float32)
    flat = 900 + 100 * rng.random((5, 4))
    dark = 20.0 + rng.random((5, 4))
    counts = dark + (flat - dark) * np.exp(-p)  # flat frames include the dark
    t = normalize(counts, flats=np.stack([flat, flat, flat]), darks=np.stack([dark, dark]))
    np.testing.assert_allclose(minus_log(t), p, atol=1e-4)
    dead = normalize(counts, flats=np.stack([dark]), darks=np.stack([dark]))  # flat == dark
    assert np.all(dead == 1.0)
    assert float(minus_log(np.zeros((1, 1, 1)))[0, 0, 0]) == pytest.approx(-np.log(1e-6), rel=1e-6)


def test_zingers_removed_and_few_false_hits(dx_scan):
    c = dx_scan["counts"]
    cleaned, n = remove_zingers(c)
    for i, x, y in ZINGERS:
        assert c[i, x, y] > 8000 and cleaned[i, x, y] < 4000
    assert 2 <= n <= 0.01 * c.size  # the 2 zingers, and under 1 % of the pixels in all


def test_shifted_projectors_are_exact_adjoint_pairs():
    torch.manual_seed(0)
    vs, ang = (12, 4, 12), [-50.0, -10.0, 20.0, 70.0]
    for off in (0.0, 2.3, -1.7):
        for op in (FourierSliceProjector(vs, ang, dtype=torch.float64, center_offset=off),
                   RealSpaceProjector(vs, ang, dtype=torch.float64, center_offset=off)):
            x = torch.randn(vs, dtype=torch.float64)
            y = torch.randn(op.out_shape, dtype=torch.float64)
            lhs = float((op.forward(x) * y).sum())
            rhs = float((x * op.adjoint(y)).sum())
            assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_fst_phase_ramp_matches_the_shifted_sampling():
    g = np.indices((16, 4, 16)).astype(float)
    c = np.array([10, 2, 7])[:, None, None, None]
    v = torch.as_tensor(np.exp(-((g - c) ** 2).sum(0) / 8.0))
    ang = [-40.0, 0.0, 35.0]
    for off in (0.0, 2.5):
        a = FourierSliceProjector(v.shape, ang, dtype=torch.float64, center_offset=off).forward(v)
        b = RealSpaceProjector(v.shape, ang, dtype=torch.float64, center_offset=off).forward(v)
        assert float((a - b).norm() / b.norm()) < 0.05
    b0 = RealSpaceProjector(v.shape, ang, dtype=torch.float64).forward(v)
    assert float((a - b0).norm() / b0.norm()) > 0.3  # the shift is really there


def test_problem_center_parameter():
    p = TomoProblem.from_arrays(np.ones((3, 8, 4)), [-30, 0, 30], center=6.25)
    assert p.center_offset == 2.25 and p.realspace.det_centre[0] == 6.25
    assert p.fst.center_offset == 2.25
    with pytest.raises(Exception, match="not on the detector"):
        TomoProblem.from_arrays(np.ones((3, 8, 4)), [-30, 0, 30], center=20)


def test_centre_finders_recover_the_offset(dx_scan):
    pre = preprocess(dx_scan["counts"], dx_scan["angles"], center=None, zingers=False,
                     flats=None, darks=None, log=False)
    b = dx_scan["line"].astype(np.float32)
    est = find_center_registration(b, dx_scan["angles"])
    assert abs(est.offset - OFFSET) < 0.5 and est.center == pytest.approx(N // 2 + est.offset)
    ent = find_center_entropy(b, dx_scan["angles"], search=5)
    assert abs(ent.offset - OFFSET) < 0.5
    assert find_center(b, dx_scan["angles"]).method == "registration"
    assert find_center(b[:-1], dx_scan["angles"][:-1]).method == "entropy"  # no 180 pair
    assert pre.center is None and "not searched" in pre.steps[-1]


def test_preprocess_pipeline_on_the_raw_scan(dx_scan):
    with h5py.File(dx_scan["path"]) as f:
        counts = f["exchange/data"][()].transpose(0, 2, 1)
        flats = f["exchange/data_white"][()].transpose(0, 2, 1)
        darks = f["exchange/data_dark"][()].transpose(0, 2, 1)
    pre = preprocess(counts, dx_scan["angles"], flats=flats, darks=darks)
    assert abs(pre.center_offset - OFFSET) < 0.5 and pre.center_method == "auto:registration"
    assert [s.split(":")[0] for s in pre.steps] == ["zingers", "flat/dark", "-log", "centre"]
    assert _corr(pre.projections, dx_scan["line"]) > 0.95
    rec = pre.as_dict()
    assert rec["flat_dark"] and rec["log"] and rec["zingers"] and rec["zingers_removed"] >= 2


def _run(args):
    r = CliRunner().invoke(cli, ["reconstruct", *map(str, args), "-q"])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("alg", [["-a", "fbp"], ["-a", "sirt", "-n", "20"]])
def test_cli_reconstructs_the_raw_scan_with_the_centre(dx_scan, tmp_path, alg):
    out = tmp_path / "r.h5"
    text = _run([dx_scan["path"], *alg, "-o", out])
    for step in ("zingers:", "flat/dark: (I - dark) / (flat - dark) with 4 flat and 2 dark",
                 "-log:", "centre:", "auto, registration"):
        assert step in text, text
    res = read_tomo_result(out)
    cfg = res["config"]
    assert cfg["layout"] == "dxchange" and abs(cfg["preprocessing"]["center_offset"] - OFFSET) < 0.5
    good = _corr(res["volume"], dx_scan["truth"])
    off = tmp_path / "nocentre.h5"
    _run([dx_scan["path"], *alg, "-o", off, "--center", "none"])
    bad = _corr(read_tomo_result(off)["volume"], dx_scan["truth"])
    assert good > 0.85 and good > bad + 0.3, (good, bad)
    given = tmp_path / "given.h5"
    _run([dx_scan["path"], *alg, "-o", given, "--center", N // 2 + OFFSET, "--no-figure"])
    assert _corr(read_tomo_result(given)["volume"], dx_scan["truth"]) > 0.85


def test_no_preprocess_reproduces_the_raw_path(dx_scan, tmp_path):
    from phasekit.tomo import reconstruct

    out = tmp_path / "raw.h5"
    text = _run([dx_scan["path"], "-a", "fbp", "-o", out, "--no-preprocess", "--no-figure"])
    assert "preprocessing: none" in text
    raw = np.ascontiguousarray(dx_scan["counts"].astype(np.uint16).astype(np.float32))
    ref = reconstruct(raw, dx_scan["angles"], algorithm="fbp", progress=False).image
    np.testing.assert_allclose(read_tomo_result(out)["volume"], ref, rtol=1e-5, atol=1e-3)


def test_switches_and_slices(dx_scan, tmp_path):
    out = tmp_path / "s.h5"
    text = _run([dx_scan["path"], "-a", "fbp", "-o", out, "--no-zingers", "--slices", "1:2",
                 "--center", N // 2 + 2, "--no-figure"])
    assert "zingers: off" in text and "detector rows 1:2" in text and "(given;" in text
    res = read_tomo_result(out)
    assert res["volume"].shape == (N, 1, N) or res["volume"].shape[1] == 1
    assert res["config"]["slices"] == "1:2"


def test_figure_layout_thin_volume_and_fbp(tmp_path):
    lay = figure_layout((40, 2, 40), history={"R_F": [0.3]})
    assert [t for t, _, _ in lay["slices"]] == ["XZ y=0", "XZ y=1"] and not lay["history"]
    lay = figure_layout((40, 1, 40))
    assert [t for t, _, _ in lay["slices"]] == ["XZ y=0"]
    lay = figure_layout((32, 32, 32), history={"R_F": [0.3, 0.2], "iteration": [1, 2]})
    assert [t for t, _, _ in lay["slices"]] == ["XY", "XZ", "YZ"] and lay["history"]
    png = plot_tomo_result(np.random.default_rng(0).random((40, 2, 40)), tmp_path / "f.png",
                           history={"R_F": [0.3], "iteration": [1]})
    assert (tmp_path / "f.png").stat().st_size > 1000 and png is not None


def test_preprocess_command_writes_an_inspectable_corrected_series(dx_scan, tmp_path):
    """``phasekit preprocess-tomo`` runs the steps alone; the corrected series keeps the centre
    it found, and reconstructing it later gives what the one-step run gives."""
    from phasekit.tomo.io import read_tilt_series

    out = tmp_path / "corrected.h5"
    r = CliRunner().invoke(cli, ["preprocess-tomo", str(dx_scan["path"]), "-o", str(out)])
    assert r.exit_code == 0, r.output
    for step in ("flat/dark", "-log:", "zingers:", "centre:"):
        assert step in r.output, r.output
    ts = read_tilt_series(out)
    centre = ts.params["rotation_center"]
    assert abs(centre - (N // 2 + OFFSET)) < 0.5
    # line integrals, up to the Poisson noise of the counts
    assert _corr(ts.projections, dx_scan["line"]) > 0.97
    assert float(np.mean(np.abs(ts.projections - dx_scan["line"]))) < 0.03
    info = CliRunner().invoke(cli, ["info", str(out)])
    assert info.exit_code == 0 and "tilt series" in info.output.lower(), info.output
    # info lists what was done to which file, not "simulation params"
    assert f"preprocessing of {dx_scan['path']}" in info.output, info.output
    assert "-log: line integrals" in info.output and "simulation params" not in info.output
    vol = tmp_path / "v.h5"
    r = CliRunner().invoke(cli, ["reconstruct", str(out), "-a", "fbp", "-o", str(vol),
                                 "--no-figure"])
    assert r.exit_code == 0, r.output
    # the centre is the one stored with the series, and the summary says so
    assert "(stored in the file by preprocess-tomo;" in r.output, r.output
    res = read_tomo_result(vol)
    assert abs(res["config"]["preprocessing"]["center"] - centre) < 1e-6
    assert res["config"]["preprocessing"]["center_method"] == "stored"
    assert _corr(res["volume"], dx_scan["truth"]) > 0.85
    # the output is never the input, and a second run on a locked output is refused
    same = CliRunner().invoke(cli, ["preprocess-tomo", str(dx_scan["path"]), "-o",
                                    str(dx_scan["path"])])
    assert same.exit_code == 2 and "error:" in same.output
