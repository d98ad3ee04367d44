"""Conformance suite over the registry: every registered algorithm, on a tiny problem of its
modality, through the shared driver.

Adding an algorithm to a modality's ``algorithms.py`` adds it here with no new test code: the
parametrisation reads :func:`phasekit.engine.available`.  For each algorithm:

* it runs through :func:`phasekit.engine.solve` and reports a finite estimate and the history keys
  the driver promises (``iteration``, ``stage`` and the problem's objective);
* an interrupted run resumed from its checkpoint gives the uninterrupted result bit for bit
  (images, extra outputs, every history value) -- on any host, so the state an algorithm saves
  must be complete and its arithmetic independent of the interruption;
* an unknown parameter and a nonsense value are one-line :class:`ConfigError`\\ s;
* an algorithm of another modality is refused with a :class:`ConfigError`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.core.errors import ConfigError
from phasekit.engine import MODALITIES, available, get_algorithm, solve

N_ITER = 4          # iterations of the uninterrupted run
CHECKPOINT_EVERY = 2
CRASH_AT = 3        # the interruption comes after the checkpoint of iteration 2


# --------------------------------------------------------------------------- tiny problems
def _cdi_problem():
    from phasekit.cdi import CDIProblem

    g = np.random.default_rng(0)
    n, m = 32, 8
    obj = np.zeros((n, n), complex)
    obj[12:12 + m, 12:12 + m] = g.random((m, m)) + 0.2
    I = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2
    sup = np.zeros((n, n), bool)
    sup[10:22, 10:22] = True
    return CDIProblem.from_arrays(I, sup, real=True)


def _ptycho_problem():
    from phasekit.ptycho import PtychoProblem
    from phasekit.ptycho.probe import bump
    from phasekit.ptycho.sim import simulate_ptycho

    g = np.random.default_rng(1)
    obj = np.exp(1j * 0.5 * g.random((40, 40))) * (0.8 + 0.2 * g.random((40, 40)))
    probe = bump(16)
    pos = np.array([[y, x] for y in (4, 12, 20) for x in (4, 12, 20)], float)
    sim = simulate_ptycho(obj, probe, pos, dose=1e6, rng=2)
    return PtychoProblem.from_arrays(sim.intensities, pos, object_shape=obj.shape)


def _tomo_problem():
    from phasekit.tomo import TomoProblem
    from phasekit.tomo.simulate import simulate_tilt_series

    ts = simulate_tilt_series("vesicle", size=12, angles=np.arange(-60, 61, 20.0), rng=0)
    return TomoProblem.from_arrays(ts.projections, ts.angles, vol_shape=ts.vol_shape)


def _ml_problem():
    from phasekit.learn.kmeans import KMeansProblem

    g = np.random.default_rng(3)
    X = np.concatenate([g.normal(c, 0.3, (30, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    return KMeansProblem(X, 3)


PROBLEMS = {"cdi": _cdi_problem, "ptycho": _ptycho_problem, "tomo": _tomo_problem,
            "ml": _ml_problem}


def test_every_modality_has_a_tiny_problem():
    assert set(PROBLEMS) == set(MODALITIES)


SPECS = available()
IDS = [s.name for s in SPECS]


def _n_iter(spec):
    return N_ITER if spec.iterative else 1


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and a.shape == b.shape and a.dtype == b.dtype \
            and np.array_equal(a, b, equal_nan=True)
    return a == b


# --------------------------------------------------------------------------- the suite
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_runs_through_the_driver(spec):
    problem = PROBLEMS[spec.modality]()
    res = solve(problem, algorithm=spec.name, n_iter=_n_iter(spec), rng=0, progress=False)
    assert res.success, res.message
    assert np.all(np.isfinite(res.image))
    assert res.n_iter == _n_iter(spec)
    h = res.history
    for key in ("iteration", "stage", problem.objective_name):
        assert key in h, (spec.name, sorted(h))
    assert h["iteration"] == list(range(1, _n_iter(spec) + 1))
    assert all(len(v) == len(h["iteration"]) for v in h.values()), {k: len(v) for k, v in h.items()}
    assert np.isfinite(res.rfactor)
    assert res.config["modality"] == spec.modality
    assert res.config["algorithm"] == spec.name


@pytest.mark.parametrize("spec", [s for s in SPECS if s.iterative],
                         ids=[s.name for s in SPECS if s.iterative])
def test_checkpoint_resume_is_bit_identical(spec, tmp_path):
    problem = PROBLEMS[spec.modality]()
    kw = dict(algorithm=spec.name, n_iter=N_ITER, rng=5, progress=False)
    full = solve(problem, **kw)

    class Crash(Exception):
        pass

    def crash(state):
        if state.iteration == CRASH_AT:
            raise Crash

    ck = tmp_path / "run.ckpt"
    problem = PROBLEMS[spec.modality]()
    with pytest.raises(Crash):
        solve(problem, checkpoint=ck, checkpoint_every=CHECKPOINT_EVERY, callback=crash, **kw)
    problem = PROBLEMS[spec.modality]()  # a fresh process would build the problem anew
    res = solve(problem, resume=ck, **kw)
    assert _same(res.image, full.image), f"{spec.name}: resumed image differs"
    if full.support is not None:
        assert _same(res.support, full.support)
    if full.probe is not None:
        assert _same(res.probe, full.probe)
    assert res.history.keys() == full.history.keys()
    for k in full.history:
        assert res.history[k] == full.history[k], (spec.name, k, res.history[k], full.history[k])


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_bad_parameters_are_config_errors(spec):
    problem = PROBLEMS[spec.modality]()
    with pytest.raises(ConfigError, match="no_such_parameter"):
        solve(problem, algorithm=spec.name, n_iter=_n_iter(spec), progress=False,
              params={"no_such_parameter": 1})
    fields = spec.config.model_fields
    if not fields:
        return
    # a nonsense value for each field in turn: at least one must be refused, and none may raise
    # anything but a ConfigError
    refused = 0
    for name in fields:
        for bad in ("~nonsense~", float("nan"), -1e300, [[]]):
            try:
                spec.config(**{name: bad})
            except Exception:  # noqa: BLE001 - pydantic's error; the solve call must convert it
                with pytest.raises(ConfigError, match=name):
                    solve(problem, algorithm=spec.name, n_iter=_n_iter(spec), progress=False,
                          params={name: bad})
                refused += 1
                break
    assert refused >= 1, f"{spec.name}: no nonsense value refused by {sorted(fields)}"


@pytest.mark.parametrize("modality", sorted(MODALITIES))
def test_other_modalities_algorithms_are_refused(modality):
    problem = PROBLEMS[modality]()
    other = next(s for s in SPECS if s.modality != modality)
    with pytest.raises(ConfigError, match="data; choose from"):
        solve(problem, algorithm=other.name, n_iter=1, progress=False)


def test_registry_names_are_unique_and_described():
    seen = set()
    for s in SPECS:
        for key in (s.name, *s.aliases):
            assert key not in seen, key
            seen.add(key)
        assert s.description and s.default_n_iter >= 1
        assert get_algorithm(s.name.upper()) is s
    with pytest.raises(ConfigError, match="choose from"):
        get_algorithm("no-such-algorithm")


def test_configs_accept_callables_checked_by_protocol():
    """A learned denoiser (a torch module) can be a config field; a non-callable cannot."""
    from phasekit.engine import CallableParam, StrictConfig

    class DenoisingConfig(StrictConfig):
        denoiser: CallableParam = None
        rho: float = 0.49

    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    cfg = DenoisingConfig(denoiser=net)
    assert cfg.denoiser is net
    assert DenoisingConfig(denoiser=lambda x: x).denoiser(3) == 3
    with pytest.raises(Exception, match="callable"):
        DenoisingConfig(denoiser=3)
