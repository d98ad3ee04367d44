"""The default CDI recipe for a support not known in advance (docs/cdi.md, "Default recipe"):
autocorrelation support, shrink-wrap with guards, HIO/RAAR + ER tail; API and CLI."""
import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from phasekit.cdi import CDIProblem, ShrinkWrap, autocorrelation_support, reconstruct
from phasekit.cdi.api import default_schedule
from phasekit.cli.main import cli
from phasekit.core.errors import ConfigError
from phasekit.io.results import read_result
from phasekit.metrics import relative_error
from phasekit.sim import simulate_cdi


@pytest.fixture(scope="module")
def virus_real():
    return simulate_cdi("virus", size=128, oversampling=4, photons=1e9, beamstop=2, rng=0)


@pytest.fixture(scope="module")
def virus_complex():
    return simulate_cdi("virus", size=128, oversampling=4, photons=1e9, beamstop=2,
                        complex_valued=True, rng=1)


def test_autocorrelation_support_size_and_no_aliased_corners():
    sim = simulate_cdi("blobs", size=128, oversampling=4, photons=1e9, beamstop=2, rng=0)
    obj_area = int((sim.truth != 0).sum())
    s = autocorrelation_support(sim.intensity, sim.mask)
    assert 1.5 * obj_area < s.sum() < 6 * obj_area
    q = s.shape[0] // 4
    for corner in (s[:q, :q], s[:q, -q:], s[-q:, :q], s[-q:, -q:]):
        assert not corner.any()
    # it holds the (centred) object
    assert s[sim.truth != 0].mean() > 0.95


def test_autocorrelation_support_beamstop_does_not_leak():
    """A zero-filled beamstop spreads |F^-1 I| over the array; the Guinier fill keeps it compact."""
    sim = simulate_cdi("virus", size=128, oversampling=4, photons=1e8, beamstop=3, rng=2)
    obj_area = int((sim.truth != 0).sum())
    s = autocorrelation_support(sim.intensity, sim.mask)
    assert 1.5 * obj_area < s.sum() < 10 * obj_area
    zero_filled = np.abs(np.fft.ifft2(np.where(sim.mask, sim.intensity, 0)))
    assert (zero_filled >= 0.02 * zero_filled.max()).sum() > 2 * s.sum()  # what we avoid


def test_default_schedule():
    assert default_schedule("hio", 1000) == "hio:800,er:200"
    assert default_schedule("RAAR", 50) == "raar:40,er:10"
    assert default_schedule("gps-r", 1000) is None and default_schedule("er", 100) is None
    assert default_schedule("hio", 100, 0.0) is None


@pytest.mark.parametrize("which", ["real", "complex"])
def test_default_reconstruct_isolated_object(which, virus_real, virus_complex):
    """Only the pattern and the mask: the defaults (complex object model, no --real)."""
    sim = virus_real if which == "real" else virus_complex
    r = reconstruct(sim.intensity, mask=sim.mask, rng=0, progress=False, metric_every=20)
    assert r.config["support_source"] == "autocorrelation" and r.config["shrinkwrap"] is not None
    assert [s[0] for s in r.config["schedule"]] == ["hio", "er"]
    truth = sim.truth if which == "complex" else sim.truth.real
    assert relative_error(r.image, truth) < 0.12
    area = np.asarray(r.history["sw_area"])
    assert area[-1] < 0.5 * area[0]  # shrink-wrap tightened the loose start
    assert len(area) == len(r.history["R_F"])


def test_known_support_keeps_the_plain_algorithm(virus_real):
    sim = virus_real
    r = reconstruct(sim.intensity, sim.support, mask=sim.mask, algorithm="hio", n_iter=20, rng=0,
                    progress=False)
    assert r.config["shrinkwrap"] is None and r.config["schedule"] == [["hio", 20, {}]]
    assert "sw_area" not in r.history


def test_collapsing_update_is_limited_and_rejected(virus_real):
    """A threshold that keeps a few pixels: the area guard limits the update to half the area;
    the R_F guard (opt-in) rejects it (the cut removes object); the history says so."""
    sim = virus_real
    p = CDIProblem.from_arrays(sim.intensity, sim.support, sim.mask, precision="double")
    est = p.constrain(p.from_centred(sim.truth))
    area0 = int(p.support.sum())
    sw = ShrinkWrap(threshold=0.95)
    sw.update(p, est)
    assert sw.events[-1]["action"] == "limited" and int(p.support.sum()) == int(np.ceil(0.5 * area0))
    p2 = CDIProblem.from_arrays(sim.intensity, sim.support, sim.mask, precision="double")
    sw2 = ShrinkWrap(threshold=0.95, rf_margin=0.25)
    sw2.update(p2, est)
    assert sw2.events[-1]["action"] == "rejected" and int(p2.support.sum()) == area0
    assert sw2.metrics(p2) == {"sw_area": float(area0), "sw_rejected": 1.0, "sw_limited": 1.0}


def test_rejection_recorded_in_history(virus_real):
    sim = virus_real
    r = reconstruct(sim.intensity, mask=sim.mask, schedule="HIO:60", rng=0, progress=False,
                    shrinkwrap={"every": 20, "rf_margin": 0.0})
    assert r.history["sw_rejected"][-1] >= 1  # any cut of a loose HIO estimate raises R_F
    assert r.history["sw_area"][-1] == r.history["sw_area"][0]


def test_fragments_are_dropped():
    p = CDIProblem.from_arrays(np.ones((32, 32)), np.ones((32, 32), bool))
    est = torch.zeros((32, 32), dtype=torch.complex64)
    est[:6, :6] = 1.0
    est[14, 14] = 0.5  # an isolated pixel far away (work layout)
    sw = ShrinkWrap(sigma_start=0.5, sigma_end=0.5, min_area_fraction=0.0, min_component=0.05)
    sw.update(p, est)
    assert not bool(p.support[14, 14]) and bool(p.support[2, 2])


def test_checkpoint_resume_bit_identical_with_default_shrinkwrap(virus_complex, tmp_path):
    sim = virus_complex
    ck = tmp_path / "run.ckpt"
    kw = dict(mask=sim.mask, n_iter=100, starts=2, rng=3, progress=False)
    full = reconstruct(sim.intensity, **kw)

    def crash(state):
        if state.start == 1 and state.iteration == 55:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct(sim.intensity, checkpoint=ck, checkpoint_every=10, callback=crash, **kw)
    resumed = reconstruct(sim.intensity, resume=ck, checkpoint=ck, checkpoint_every=10, **kw)
    assert np.array_equal(resumed.image, full.image) and np.array_equal(resumed.support, full.support)
    assert resumed.rfactors == full.rfactors
    assert resumed.histories[1]["sw_area"] == full.histories[1]["sw_area"]
    assert list(full.config["shrinkwrap"]["start_thresholds"]) == [0.1, 0.05]  # start 1: 0.05


def test_start_thresholds_cycle_validate_and_resume_state():
    sw = ShrinkWrap(start_thresholds=(0.1, 0.05))
    assert sw.current_threshold() == 0.1
    sw.begin_start(1)
    assert sw.current_threshold() == 0.05
    sw.begin_start(2)
    assert sw.current_threshold() == 0.1  # cycled
    sw.begin_start(3)
    sw2 = ShrinkWrap(start_thresholds=(0.1, 0.05))
    sw2.load_state_dict(sw.state_dict())
    assert sw2.current_threshold() == 0.05
    assert ShrinkWrap(threshold=0.2).current_threshold() == 0.2
    with pytest.raises(ConfigError, match="start thresholds must be in"):
        reconstruct(np.ones((16, 16)), shrinkwrap={"start_thresholds": [0.1, 1.5]}, n_iter=2)


def test_default_recipe_picks_the_threshold_by_rfactor():
    """blobs (faint edges): threshold 0.1 cuts the faint parts (error ~0.11, R_F ~0.19 for this
    seed), the 0.05 start fits (R_F ~0.06) and is reported (docs/cdi.md "Default recipe")."""
    sim = simulate_cdi("blobs", size=128, oversampling=4, photons=1e9, beamstop=2, rng=0)
    r = reconstruct(sim.intensity, mask=sim.mask, rng=0, progress=False, metric_every=0)
    assert len(r.rfactors) == 2 and list(r.config["shrinkwrap"]["start_thresholds"]) == [0.1, 0.05]
    assert r.rfactors[0] < 0.5 * r.rfactors[1]
    assert relative_error(r.image, sim.truth.real) < 0.1
    one = reconstruct(sim.intensity, mask=sim.mask, rng=0, progress=False, metric_every=0,
                      n_iter=10, starts=1)
    assert len(one.rfactors) == 1


def test_cli_default_on_plain_cxi(virus_real, tmp_path):
    """A CXI file written by other software: frames and a mask, no support, no truth."""
    sim = virus_real
    f = tmp_path / "plain.cxi"
    with h5py.File(f, "w") as h:
        h["entry_1/data_1/data"] = sim.intensity.astype(np.float32)
        h["entry_1/instrument_1/detector_1/mask"] = (~sim.mask).astype(np.uint32)
    out = tmp_path / "out.cxi"
    res = CliRunner().invoke(cli, ["reconstruct", str(f), "--no-figure", "-q",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "shrink-wrap every 20 (threshold 0.1/0.05 by start" in res.output
    assert "HIO:800 -> ER:200" in res.output and "2 start(s)" in res.output
    img = read_result(out)["images"][0]
    assert relative_error(img, sim.truth.real) < 0.12
    res = CliRunner().invoke(cli, ["reconstruct", str(f), "-n", "20", "--no-shrinkwrap",
                                   "--no-figure", "-q", "-o", str(tmp_path / "o2.cxi")])
    assert res.exit_code == 0 and "shrink-wrap" not in res.output
