"""An interrupted run resumed from its checkpoint gives the uninterrupted result bit for bit
(double precision), for the algorithms whose state goes beyond the iterate, with the features
that add state (position refinement, background, probe modes, shrink-wrap, filter stages,
variance-reduction memory, mini-batch draws) and interruptions both at and between checkpoints.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter


class Crash(Exception):
    pass


def _resumed(fn, tmp_path, at, every, start=None):
    """``fn(**kw)`` interrupted after iteration ``at`` (of start ``start``), then resumed."""
    ck = tmp_path / "run.ckpt"

    def cb(state):
        if state.iteration == at and (start is None or state.start == start):
            raise Crash

    with pytest.raises(Crash):
        fn(checkpoint=ck, checkpoint_every=every, callback=cb)
    assert ck.exists()
    return fn(resume=ck)


def _same(a, b):
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def _assert_same_result(res, full):
    assert _same(res.image, full.image)
    assert len(res.images) == len(full.images)
    for a, b in zip(res.images, full.images):
        assert _same(a, b)
    assert _same(res.support, full.support)
    assert _same(res.probe, full.probe)
    assert res.extras.keys() == full.extras.keys()
    for k in full.extras:
        assert _same(res.extras[k], full.extras[k]), k
    assert res.rfactors == full.rfactors
    assert res.histories == full.histories


# --------------------------------------------------------------------------- ptychography
@pytest.fixture(scope="module")
def ptycho_data():
    from phasekit.ptycho import object_shape_for, raster_scan, simulate_ptycho
    from phasekit.ptycho.probe import fzp_probe

    M = 16
    nominal = raster_scan(3, step=4, margin=2)
    shape = object_shape_for(nominal, (M, M), margin=2)
    g = np.random.default_rng(0)
    obj = np.exp(1j * 2 * gaussian_filter(g.standard_normal(shape), 1.5)) * \
        (0.7 + 0.3 * gaussian_filter(g.random(shape), 1))
    true = nominal + g.uniform(-0.7, 0.7, nominal.shape)
    sim = simulate_ptycho(obj, fzp_probe(M, 8, 6), true, dose=1e6, rng=1, background=3.0)
    return sim.intensities, nominal, shape


@pytest.mark.parametrize("at", [4, 5])
@pytest.mark.parametrize("algorithm", ["epie", "rpie", "mpie", "crisp", "pine"])
def test_ptycho_modes_positions_background(ptycho_data, tmp_path, algorithm, at):
    from phasekit.ptycho import reconstruct

    I, nominal, shape = ptycho_data

    def fn(**kw):
        return reconstruct(I, nominal, algorithm=algorithm, n_iter=7, rng=2, progress=False,
                           object_shape=shape, n_modes=2, refine_positions=2, background=True,
                           precision="double", **kw)

    full = fn()
    _assert_same_result(_resumed(fn, tmp_path, at, 2), full)
    assert full.probe.shape[0] == 2 and "positions" in full.extras


def test_ptycho_schedule_interrupted_in_second_stage(ptycho_data, tmp_path):
    from phasekit.ptycho import reconstruct

    I, nominal, shape = ptycho_data

    def fn(**kw):
        return reconstruct(I, nominal, schedule="epie:3,crisp:4", rng=4, progress=False,
                           object_shape=shape, refine_positions=1, precision="double", **kw)

    full = fn()
    _assert_same_result(_resumed(fn, tmp_path, 6, 2), full)  # checkpoint at 4 (crisp k=1)
    assert full.history["stage"] == [0, 0, 0, 1, 1, 1, 1]


# --------------------------------------------------------------------------- CDI
def _pattern(n=32, seed=0):
    g = np.random.default_rng(seed)
    obj = np.zeros((n, n))
    c = n // 2
    obj[c - 5:c + 5, c - 4:c + 4] = 1.0 + 0.5 * g.random((10, 8))
    return np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj)))) ** 2


def _loose(I):
    from phasekit.cdi.shrinkwrap import autocorrelation_support

    return autocorrelation_support(I)


CDI_CASES = {
    "hio-shrinkwrap": dict(algorithm="hio", n_iter=24, shrinkwrap={"every": 5}),
    "raar-shrinkwrap": dict(algorithm="raar", n_iter=24, shrinkwrap={"every": 5}),
    "oss": dict(algorithm="oss", n_iter=24, n_filters=3),
    "gps-r": dict(algorithm="gps-r", n_iter=24, n_stages=3),
    "gps-f": dict(algorithm="gps-f", n_iter=24, n_stages=3),
    "so2d": dict(algorithm="so2d", n_iter=24, positive=False),
    "so4d": dict(algorithm="so4d", n_iter=24, positive=False),
    "vrrk": dict(algorithm="vrrk", n_iter=24),
    # a checkpoint right after shrink-wrap moved the support held the old rows' state but the
    # new support: the resumed run built rows of the new support around the old vector (a
    # segmentation fault in the compiled epoch, or wrong rows on the torch path)
    "vrrk-warmup-shrinkwrap": dict(algorithm="vrrk", n_iter=24, warmup=3, shrinkwrap={"every": 5}),
    "rk-shrinkwrap": dict(algorithm="rk", n_iter=24, shrinkwrap={"every": 5}),
}


@pytest.mark.parametrize("at", [17, 20])
@pytest.mark.parametrize("case", list(CDI_CASES))
def test_cdi_stateful_algorithms(tmp_path, case, at):
    from phasekit.cdi import reconstruct

    I = _pattern()
    sup = _loose(I)

    def fn(**kw):
        return reconstruct(I, sup, rng=3, real=True, progress=False, precision="double",
                           **{"positive": True, **CDI_CASES[case]}, **kw)

    full = fn()
    _assert_same_result(_resumed(fn, tmp_path, at, 10), full)


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("algorithm", ["raar", "hio"])
def test_cdi_starts_batched_and_sequential(tmp_path, algorithm, batch):
    from phasekit.cdi import reconstruct

    I = _pattern(64)
    sup = _loose(I)

    def fn(**kw):
        return reconstruct(I, sup, algorithm=algorithm, n_iter=16, starts=3, rng=5,
                           batch_starts=batch, precision="double", progress=False,
                           shrinkwrap={"every": 4, "start_thresholds": (0.1, 0.05, 0.08)},
                           **kw)

    full = fn()
    assert full.config["batched_starts"] is batch
    _assert_same_result(_resumed(fn, tmp_path, 11, 5, start=1), full)


def test_cdi_default_recipe(tmp_path):
    """The default recipe (no support given): auto support, shrink-wrap, discrepancy step."""
    from phasekit.cdi import reconstruct

    I = _pattern()

    def fn(**kw):
        return reconstruct(I, n_iter=12, rng=3, progress=False, precision="double",
                           max_rounds=3, **kw)

    full = fn()
    calls = []

    def fn_counting(**kw):
        cb = kw.pop("callback", None)

        def counting(state):
            calls.append(state.iteration)
            if cb is not None:
                cb(state)

        return fn(callback=counting, **kw)

    _assert_same_result(_resumed(fn_counting, tmp_path, 7, 5), full)


# --------------------------------------------------------------------------- tomography
@pytest.mark.parametrize("at", [4, 5])
@pytest.mark.parametrize("algorithm", ["sirt", "resire"])
def test_tomo(tmp_path, algorithm, at):
    from phasekit.tomo import reconstruct
    from phasekit.tomo.simulate import simulate_tilt_series

    ts = simulate_tilt_series("vesicle", size=12, angles=np.arange(-60, 61, 20.0), rng=0)

    def fn(**kw):
        return reconstruct(ts.projections, ts.angles, vol_shape=ts.vol_shape,
                           algorithm=algorithm, n_iter=7, precision="double", progress=False,
                           **kw)

    full = fn()
    _assert_same_result(_resumed(fn, tmp_path, at, 2), full)


# --------------------------------------------------------------------------- k-means
@pytest.mark.parametrize("at", [4, 5])
@pytest.mark.parametrize("stage", [("sbe-kmeans", {"batch_size": 20, "n_inner": 3}),
                                   ("minibatch-kmeans", {"batch_size": 20})])
def test_kmeans_minibatch_draws(tmp_path, stage, at):
    from phasekit.engine import Stage, run
    from phasekit.learn.kmeans import KMeansProblem

    g = np.random.default_rng(3)
    X = np.concatenate([g.normal(c, 0.5, (60, 2)) for c in ((0, 0), (2, 0), (0, 2))])

    def fn(**kw):  # a fresh problem each time, as a new process would build
        return run(KMeansProblem(X, 3, precision="double"), [Stage(stage[0], 7, dict(stage[1]))],
                   starts=2, rng=1, progress=False, **kw)

    full = fn()
    _assert_same_result(_resumed(fn, tmp_path, at, 2, start=1), full)
