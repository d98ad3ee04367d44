"""Parameter and input validation (issue 11): defaults are declared once, in each algorithm's
config; nonsense parameter values are one-line ConfigErrors naming the parameter; silent or
wrong results on degenerate tomography and k-means inputs are refused or reported."""
from __future__ import annotations

import inspect
import logging
import math
from importlib import import_module

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from phasekit import tomo
from phasekit.cdi import reconstruct as cdi_reconstruct
from phasekit.cdi.problem import CDIProblem
from phasekit.core.errors import ConfigError, InputError
from phasekit.engine import available, get_algorithm
from phasekit.learn.kmeans import (
    KMeans,
    KMeansProblem,
    LloydStep,
    MiniBatchStep,
    SBEKMeans,
    SBEStep,
)
from phasekit.ptycho import (
    PtychoProblem,
    object_shape_for,
    raster_scan,
    simulate_ptycho,
)
from phasekit.ptycho import engines as pie
from phasekit.ptycho.probe import fzp_probe
from phasekit.tomo.fbp import FBP
from phasekit.tomo.genfire import GENFIRE
from phasekit.tomo.metrics import r2_projections, rfactor_projections
from phasekit.tomo.resire import RESIRE
from phasekit.tomo.sirt import SIRT

# by module path: phasekit.cdi re-exports functions named like these modules (cdi.hio, cdi.raar)
gps, hio, kaczmarz, mm, oss, raar, subspace = (
    import_module(f"phasekit.cdi.{m}") for m in ("gps", "hio", "kaczmarz", "mm", "oss", "raar", "subspace"))
NAN, INF = float("nan"), float("inf")


# --------------------------------------------------------------------------- small problems
@pytest.fixture(scope="module")
def cdi_problem():
    g = np.random.default_rng(0)
    obj = np.zeros((16, 16))
    obj[5:11, 5:11] = g.random((6, 6)) + 0.5
    intensity = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2
    return CDIProblem.from_arrays(intensity, obj > 0)


@pytest.fixture(scope="module")
def ptycho_problem():
    pos = raster_scan(2, step=4, margin=1)
    shape = object_shape_for(pos, (16, 16), margin=1)
    obj = np.exp(0.3j * np.random.default_rng(1).random(shape))
    sim = simulate_ptycho(obj, fzp_probe(16, 8, 6), pos, dose=None)
    return PtychoProblem.from_arrays(sim.intensities, pos, probe=sim.probe, obj=sim.obj)


@pytest.fixture(scope="module")
def tomo_problem():
    b = np.random.default_rng(2).random((5, 8, 8)) + 0.1
    return tomo.TomoProblem.from_arrays(b, np.linspace(-40, 40, 5))


@pytest.fixture(scope="module")
def kmeans_problem():
    return KMeansProblem(np.random.default_rng(3).random((20, 2)), 3)


def _expect_config_error(cls, problem, name, **bad):
    """``cls(problem, 5, **bad)`` is a one-line ConfigError that names the parameter."""
    with pytest.raises(ConfigError) as info:
        cls(problem, 5, **bad)
    msg = str(info.value)
    assert "\n" not in msg
    assert name in msg, msg
    return msg


# --------------------------------------------------------------------------- defaults declared once
#: the keyword defaults the algorithms' ``__init__`` declared before issue 11 (all of them were
#: also the config's); the config is now their only home
OLD_INIT_DEFAULTS = {
    "hio": {"beta": 0.9},
    "raar": {"beta": 0.9},
    "oss": {"beta": 0.9, "n_filters": 10, "alpha_max": None, "alpha_min": None},
    "gps-r": {"t": 1.0, "s": 0.9, "sigma": [(0.0, 0.01), (0.4, 0.1)], "n_stages": 10, "alpha_max": None,
              "alpha_min": None, "gammas": None, "c_r": 1.0, "c_f": 1.0 / (4 * math.pi ** 2),
              "smoothing": "gaussian", "restart": "global", "output": "masked", "literal_re": False},
    "cprime": {"lam": None, "lam_rel": None, "C": 1.0},
    "epie": {"probe_start": 0, "kappa": 0.5, "alpha_o": 1.0, "alpha_p": 1.0},
    "rpie": {"gamma_o": 0.1, "gamma_p": 1.0, "beta_o": 1.0, "beta_p": 1.0},
    "mpie": {"friction": 0.7, "feedback": 0.3, "momentum_every": None},
    "crisp": {"lambda_o": 1.0, "lambda_p": 1.0, "clip": "epie", "nu_o": None, "nu_p": None,
              "clip_exponent": 1.0, "c": 0.5, "xi_rule": "one-minus-c", "xi": None},
    "resire": {"step": 2.0, "projector": "hybrid"},
    "sirt": {"relaxation": 1.0, "positive": None},
    "genfire": {"oversampling": 2.0, "cutoff": 0.7, "rfree_fraction": 0.05, "rfree_seed": 0},
    "fbp": {"filter": "ramp", "angle_weights": "uniform"},
}


def test_every_algorithm_declares_its_defaults_in_its_config_only():
    specs = available()
    assert len(specs) >= 24
    for spec in specs:
        assert spec.cls.Config is spec.config, spec.name
        sig = inspect.signature(spec.cls.__init__)
        extra = [p.name for p in sig.parameters.values()
                 if p.name not in ("self", "problem", "n_iter") and p.kind is not p.VAR_KEYWORD]
        assert extra == [], f"{spec.name}: __init__ still declares {extra}"


@pytest.mark.parametrize("name", sorted(OLD_INIT_DEFAULTS))
def test_config_defaults_are_the_former_init_defaults(name):
    cfg = get_algorithm(name).config()
    for key, value in OLD_INIT_DEFAULTS[name].items():
        assert getattr(cfg, key) == value, (name, key)


def test_algorithm_reads_its_settings_from_the_config(cdi_problem, ptycho_problem, tomo_problem):
    assert hio.HybridInputOutput(cdi_problem, 5).beta == 0.9
    assert hio.HybridInputOutput(cdi_problem, 5, beta=0.7).beta == 0.7
    a = oss.OSS(cdi_problem, 20, n_filters=4)
    assert a.n_filters == 4 and a.alphas[0] == pytest.approx(32.0) and a.alphas[-1] == pytest.approx(3.2)
    g = gps.GPSR(cdi_problem, 10, sigma=0.05, n_stages=2)
    assert np.all(g.sigmas == 0.05) and len(g.gammas) == 2
    m = pie.MPIE(ptycho_problem, 5, gamma_o=0.2, friction=0.5)
    assert (m.gamma_o, m.friction, m.beta_o, m.probe_start) == (0.2, 0.5, 1.0, 0)
    assert RESIRE(tomo_problem, 5).t == 2.0
    assert SIRT(tomo_problem, 5, relaxation=0.5).lam == 0.5


# --------------------------------------------------------------------------- nonsense values, per family
@pytest.mark.parametrize("cls, name, bad", [
    (hio.HybridInputOutput, "beta", {"beta": 0.0}),
    (hio.HybridInputOutput, "beta", {"beta": NAN}),
    (hio.HybridInputOutput, "beta", {"beta": INF}),
    (hio.HybridInputOutput, "beta", {"beta": "strong"}),
    (raar.RAAR, "beta", {"beta": 1.5}),
    (oss.OSS, "n_filters", {"n_filters": 0}),
    (oss.OSS, "alpha_max", {"alpha_max": -1.0}),
    (oss.OSS, "alpha_min", {"alpha_min": NAN}),
])
def test_projection_family_rejects_nonsense(cdi_problem, cls, name, bad):
    _expect_config_error(cls, cdi_problem, name, **bad)


def test_er_takes_no_parameter(cdi_problem):
    from phasekit.cdi.er import ErrorReduction

    _expect_config_error(ErrorReduction, cdi_problem, "beta", beta=0.5)


@pytest.mark.parametrize("name, bad", [
    ("sigma", {"sigma": []}),
    ("sigma", {"sigma": -0.1}),
    ("sigma", {"sigma": NAN}),
    ("sigma", {"sigma": [(0.5, 0.1)]}),          # does not start at fraction 0
    ("sigma", {"sigma": [(0.0, 0.1), (1.5, 0.2)]}),
    ("sigma", {"sigma": [(0.0, NAN)]}),
    ("sigma", {"sigma": [(0.0, 0.1, 0.2)]}),
    ("gammas", {"gammas": [1, 2]}),               # 2 values for the default 10 stages
    ("gammas", {"gammas": []}),
    ("gammas", {"gammas": [1.0, -1.0], "n_stages": 2}),
    ("gammas", {"gammas": [1.0, INF], "n_stages": 2}),
    ("t", {"t": 0.0}),
    ("s", {"s": INF}),
    ("n_stages", {"n_stages": 0}),
    ("smoothing", {"smoothing": "box"}),
])
@pytest.mark.parametrize("cls", [gps.GPSR, gps.GPSF])
def test_gps_rejects_nonsense(cdi_problem, cls, name, bad):
    _expect_config_error(cls, cdi_problem, name, **bad)


def test_gps_gammas_for_more_stages_than_iterations(cdi_problem):
    # n_stages is capped at n_iter: 4 explicit gammas cannot be spread over 3 iterations
    with pytest.raises(ConfigError, match="gammas"):
        gps.GPSR(cdi_problem, 3, gammas=[1, 2, 3, 4], n_stages=4)
    assert gps.GPSR(cdi_problem, 4, gammas=[1, 2, 3, 4], n_stages=4).gammas == [1.0, 2.0, 3.0, 4.0]


def test_gps_bad_sigma_through_the_front_door(cdi_problem):
    """The issue's cases: ``sigma=[]`` and ``gammas=[1,2]`` were plain ValueErrors (exit 1)."""
    intensity = (cdi_problem.amp.cpu().numpy() ** 2)
    sup = np.zeros((16, 16), bool)
    sup[5:11, 5:11] = True
    for bad in ({"sigma": []}, {"gammas": [1, 2]}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            cdi_reconstruct(intensity, sup, algorithm="gps", n_iter=5, progress=False, **bad)


@pytest.mark.parametrize("cls, name, bad", [
    (subspace.SO2D, "tol", {"tol": 0.0}),
    (subspace.SO2D, "max_inner", {"max_inner": 0}),
    (subspace.SO2D, "warmup", {"warmup": -1}),
    (subspace.SO2D, "beta", {"beta": NAN}),
    (subspace.SO2D, "trust_radius", {"trust_radius": 5.0}),
    (subspace.SO4D, "previous", {"previous": "both"}),
    (subspace.SO4D, "tau_max", {"tau_max": INF}),
])
def test_subspace_family_rejects_nonsense(cdi_problem, cls, name, bad):
    _expect_config_error(cls, cdi_problem, name, **bad)


@pytest.mark.parametrize("cls, name, bad", [
    (kaczmarz.RandomizedKaczmarz, "relax", {"relax": 0.0}),
    (kaczmarz.RandomizedKaczmarz, "relax", {"relax": NAN}),
    (kaczmarz.RandomizedKaczmarz, "seed", {"seed": -1}),
    (kaczmarz.RandomizedKaczmarz, "gram_rcond", {"gram_rcond": 1.0}),
    (kaczmarz.RandomizedKaczmarz, "lam_rel", {"lam": 1.0, "lam_rel": 0.1}),
    (kaczmarz.VRRK, "epoch_length", {"epoch_length": 0}),
    (kaczmarz.VRRKL2, "gamma", {"gamma": -1e-4}),
    (kaczmarz.VRRKL1, "lam_rel", {"lam_rel": INF}),
    (kaczmarz.VRRKL1, "lam_rel", {"lam": 0.1, "lam_rel": 1e-3}),
    (mm.CPrimeMM, "C", {"C": 0.5}),
    (mm.CPrimeMM, "lam", {"lam": INF}),
    (mm.CPrimeMM, "lam_rel", {"lam": 1.0, "lam_rel": 0.1}),
])
def test_kaczmarz_family_rejects_nonsense(cdi_problem, cls, name, bad):
    _expect_config_error(cls, cdi_problem, name, **bad)


def test_vrrk_l1_lam_overrides_the_default_lam_rel(cdi_problem):
    """An explicit ``lam`` wins over the config's default ``lam_rel`` (only both given is an error)."""
    a = kaczmarz.VRRKL1(cdi_problem, 1, lam=0.25, seed=0)
    assert a.cfg.lam == 0.25
    a.initialize(cdi_problem.random_start(np.random.default_rng(0)))
    assert a.lam == 0.25


@pytest.mark.parametrize("cls, name, bad", [
    (pie.EPIE, "alpha_o", {"alpha_o": 0.0}),
    (pie.EPIE, "alpha_p", {"alpha_p": NAN}),
    (pie.EPIE, "probe_start", {"probe_start": -1}),
    (pie.RPIE, "gamma_o", {"gamma_o": 0.0}),
    (pie.MPIE, "friction", {"friction": 1.0}),
    (pie.MPIE, "momentum_every", {"momentum_every": 0}),
    (pie.CRISP, "lambda_o", {"lambda_o": 2.0}),
    (pie.CRISP, "clip", {"clip": "max"}),
    (pie.CRISP, "c", {"c": 1.0}),
    (pie.CRISP, "xi", {"xi": -1.0}),
    (pie.CRISP, "kappa", {"kappa": INF}),
])
def test_ptycho_family_rejects_nonsense(ptycho_problem, cls, name, bad):
    _expect_config_error(cls, ptycho_problem, name, **bad)


@pytest.mark.parametrize("cls, name, bad", [
    (RESIRE, "step", {"step": 0.0}),
    (RESIRE, "step", {"step": NAN}),
    (RESIRE, "step", {"step": INF}),
    (RESIRE, "projector", {"projector": "cone"}),
    (SIRT, "relaxation", {"relaxation": 2.0}),
    (GENFIRE, "cutoff", {"cutoff": 0.0}),
    (GENFIRE, "oversampling", {"oversampling": 0.5}),
    (GENFIRE, "rfree_fraction", {"rfree_fraction": 0.6}),
    (FBP, "filter", {"filter": "gauss"}),
])
def test_tomo_family_rejects_nonsense(tomo_problem, cls, name, bad):
    _expect_config_error(cls, tomo_problem, name, **bad)


@pytest.mark.parametrize("cls, name, bad", [
    (SBEStep, "batch_size", {"batch_size": 0}),
    (SBEStep, "alpha", {"alpha": 1.0}),
    (SBEStep, "beta", {"beta": 0.0}),
    (SBEStep, "gamma0", {"gamma0": NAN}),
    (LloydStep, "tol", {"tol": -1.0}),
    (LloydStep, "tol", {"tol": INF}),
    (MiniBatchStep, "batch_size", {"batch_size": 0}),
])
def test_kmeans_family_rejects_nonsense(kmeans_problem, cls, name, bad):
    _expect_config_error(cls, kmeans_problem, name, **bad)


# --------------------------------------------------------------------------- tomography inputs
ANGLES = np.arange(-60.0, 60.1, 10.0)


def test_all_zero_projections_are_refused():
    with pytest.raises(InputError, match="every projection is zero"):
        tomo.TomoProblem.from_arrays(np.zeros((len(ANGLES), 16, 16)), ANGLES)
    b = np.zeros((len(ANGLES), 16, 16))
    b[:, :, :8] = 1.0
    mask = np.ones(b.shape, bool)
    mask[:, :, :8] = False  # the mask hides every non-zero pixel
    with pytest.raises(InputError, match="every projection is zero"):
        tomo.TomoProblem.from_arrays(b, ANGLES, mask=mask)
    with pytest.raises(InputError, match="mask marks no"):
        tomo.TomoProblem.from_arrays(b, ANGLES, mask=np.zeros(b.shape, bool))
    with pytest.raises(InputError, match="every projection is zero"):
        tomo.reconstruct(np.zeros((len(ANGLES), 16, 16)), ANGLES, algorithm="fbp")


def test_rfactor_of_all_zero_data_is_never_nan():
    calc = torch.ones(3, 4, 4)
    for f in (rfactor_projections, r2_projections):
        with pytest.raises(InputError, match="zero"):
            f(calc, torch.zeros(3, 4, 4))
        with pytest.raises(InputError, match="zero"):
            f(calc, torch.ones(3, 4, 4), torch.zeros(3, 4, 4))
    # one zero projection is skipped: the mean runs over the other two
    meas = torch.ones(3, 4, 4)
    meas[1] = 0
    assert rfactor_projections(2 * torch.ones(3, 4, 4), meas) == pytest.approx(1.0)


def test_a_problem_with_some_zero_projections_has_a_finite_rfactor():
    b = np.random.default_rng(4).random((len(ANGLES), 16, 16))
    b[3] = 0.0
    p = tomo.TomoProblem.from_arrays(b, ANGLES)
    rf = p.rfactor(torch.zeros(p.shape))
    assert rf == pytest.approx(1.0)


def test_detector_that_does_not_match_the_volume_is_refused():
    b = np.ones((len(ANGLES), 32, 20))
    with pytest.raises(InputError) as info:  # the issue's case: 32x20 projections, 32^3 volume
        tomo.TomoProblem.from_arrays(b, ANGLES, vol_shape=(32, 32, 32))
    msg = str(info.value)
    assert "32x20" in msg and "32x32x32" in msg and "\n" not in msg
    # the detector's (x, y) axes are the volume's (Nx, Ny); the depth Nz is free
    assert tomo.TomoProblem.from_arrays(b, ANGLES).shape == (32, 20, 32)
    assert tomo.TomoProblem.from_arrays(b, ANGLES, vol_shape=(32, 20, 12)).shape == (32, 20, 12)
    with pytest.raises(InputError, match="16x20x32"):  # narrower than the detector
        tomo.TomoProblem.from_arrays(b, ANGLES, vol_shape=(16, 20, 32))
    with pytest.raises(InputError, match="20x32"):  # axes swapped
        tomo.TomoProblem.from_arrays(np.ones((len(ANGLES), 20, 32)), ANGLES, vol_shape=(32, 20, 32))


def test_extended_slab_must_hold_every_ray():
    det, thick = (16, 16), 6
    vol = tomo.extended_volume_shape(det, thick, ANGLES)
    b = np.ones((len(ANGLES),) + det)
    p = tomo.TomoProblem.from_arrays(b, ANGLES, vol_shape=vol)
    assert p.extended and p.shape == vol
    # without the 2-voxel margin of extended_volume_shape the rays still fit
    assert tomo.TomoProblem.from_arrays(b, ANGLES, vol_shape=(vol[0] - 2, vol[1] - 2, thick)).extended
    with pytest.raises(InputError, match="extended slab"):
        tomo.TomoProblem.from_arrays(b, ANGLES, vol_shape=(vol[0] - 4, vol[1], thick))


# --------------------------------------------------------------------------- k-means
def test_kmeans_reports_empty_clusters_on_duplicate_points(caplog):
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]), 5, axis=0)
    for est in (KMeans(5, rng=0), SBEKMeans(5, batch_size=10, max_iter=5, rng=0)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="phasekit"):
            est.fit(X)
        assert est.n_empty_clusters_ == 2
        assert np.count_nonzero(np.bincount(est.labels_, minlength=5)) == 3
        msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert msgs == ["k-means: 2 of 5 clusters are empty (the data have only 3 distinct points)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="phasekit"):
        est = KMeans(3, rng=0).fit(np.random.default_rng(5).random((30, 2)))
    assert est.n_empty_clusters_ == 0 and not caplog.records


def test_cli_kmeans_prints_empty_clusters(tmp_path):
    from phasekit.cli.main import cli

    data = tmp_path / "dup.npy"
    np.save(data, np.repeat(np.eye(2), 4, axis=0))
    res = CliRunner().invoke(cli, ["kmeans", str(data), "-k", "3", "-m", "lloyd", "-q"])
    assert res.exit_code == 0, res.output
    assert "1 of 3 clusters empty" in res.stdout
    assert "only 2 distinct points" in res.stderr


# --------------------------------------------------------------------------- CDI message
def test_negative_intensity_message_names_an_existing_option():
    intensity = np.ones((16, 16))
    intensity[0, 0] = -1.0
    with pytest.raises(InputError, match="--clip-negative"):
        CDIProblem.from_arrays(intensity, np.ones((16, 16), bool))


# --------------------------------------------------------------------------- API entry points
# (a user's mistakes at phasekit.cdi / ptycho / tomo entry points: phasekit errors, never a raw
# NumPy / TypeError traceback or a silently ignored value)
def _cdi_data():
    g = np.random.default_rng(0)
    obj = np.zeros((16, 16))
    obj[5:11, 5:11] = g.random((6, 6)) + 0.5
    return np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2, obj > 0


@pytest.mark.parametrize("bad, err, words", [
    ({"n_iter": 1.5}, ConfigError, "n_iter"),
    ({"n_iter": NAN}, ConfigError, "n_iter"),
    ({"n_iter": True}, ConfigError, "n_iter"),
    ({"n_iter": "2"}, ConfigError, "n_iter"),
    ({"rng": "abc"}, InputError, "rng"),
    ({"rng": 1.5}, InputError, "rng"),
    ({"rng": -1}, InputError, "seed"),
    ({"rng": torch.Generator()}, InputError, "rng"),
    ({"x0": np.full((16, 16), NAN)}, InputError, "x0"),
    ({"shrinkwrap": {"foo": 1}}, ConfigError, "foo"),
    ({"shrinkwrap": 5}, ConfigError, "shrinkwrap"),
])
@pytest.mark.parametrize("fn", ["reconstruct", "hio", "er", "raar", "oss", "gps_r", "so2d", "vrrk"])
def test_cdi_entry_points_refuse_bad_arguments(fn, bad, err, words):
    from phasekit import cdi

    intensity, support = _cdi_data()
    with pytest.raises(err) as info:
        getattr(cdi, fn)(intensity, support, **{"n_iter": 1, **bad})
    assert "\n" not in str(info.value) and words in str(info.value), str(info.value)


def test_cdi_integral_float_n_iter_is_accepted():
    intensity, support = _cdi_data()
    assert cdi_reconstruct(intensity, support, n_iter=2.0).n_iter == 2


@pytest.mark.parametrize("bad, words", [
    ({"object_shape": (40,)}, "object_shape"),
    ({"object_shape": (-5, -5)}, "object_shape"),
    ({"probe": "zeros"}, "zero"),
    ({"rng": "abc"}, "rng"),
    ({"n_iter": 1.5}, "n_iter"),
])
def test_ptycho_reconstruct_refuses_bad_arguments(bad, words):
    from phasekit import ptycho

    pos = raster_scan(2, step=4, margin=1)
    shape = object_shape_for(pos, (16, 16), margin=1)
    sim = simulate_ptycho(np.exp(0.3j * np.random.default_rng(1).random(shape)), fzp_probe(16, 8, 6),
                          pos, dose=None)
    kw = {"probe": sim.probe, "n_iter": 1, **bad}
    if isinstance(kw["probe"], str):
        kw["probe"] = np.zeros_like(sim.probe)
    with pytest.raises((InputError, ConfigError)) as info:
        ptycho.reconstruct(sim.intensities, pos, **kw)
    assert "\n" not in str(info.value) and words in str(info.value), str(info.value)


@pytest.mark.parametrize("bad, words", [
    ({"noise": NAN}, "noise"),
    ({"dose": 0}, "dose"),
])
def test_tomo_simulation_refuses_nonsense_noise(bad, words):
    with pytest.raises(ConfigError, match=words):
        tomo.simulate_tilt_series("vesicle", 8, np.linspace(-40, 40, 3), **bad)


def test_tomo_reconstruct_refuses_fractional_n_iter(tomo_problem):
    b = np.random.default_rng(2).random((5, 8, 8)) + 0.1
    with pytest.raises(ConfigError, match="n_iter"):
        tomo.reconstruct(b, np.linspace(-40, 40, 5), n_iter=1.5)
