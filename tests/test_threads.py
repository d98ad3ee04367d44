"""CPU thread policy (phasekit.core.threads): the driver runs problems whose parallel operations
are small on one thread unless the caller pinned a count, restores the counts afterwards, records
the count used, and gives the same bits as a run pinned to one thread."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.cdi.problem import CDIProblem
from phasekit.core import threads
from phasekit.core.threads import (
    PARALLEL_MIN_ELEMENTS,
    auto_cpu_threads,
    cpu_threads,
    outer_cpu_threads,
)
from phasekit.engine import parallel_elements, solve


@pytest.fixture
def two_unpinned(monkeypatch):
    """Two torch threads, not pinned (as a fresh process on two cores), restored afterwards."""
    monkeypatch.setitem(threads._state, "pinned", False)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_auto_lowers_small_problems_and_restores(two_unpinned):
    nb = threads._numba_threads()
    with auto_cpu_threads(64 * 64) as n:
        assert n == 1 and torch.get_num_threads() == 1
        assert threads._numba_threads() in (None, 1)
        with outer_cpu_threads():  # a heavy sub-step gets the run's count back
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2 and threads._numba_threads() == nb
    assert not threads.threads_pinned()


@pytest.mark.parametrize("elements, device", [(PARALLEL_MIN_ELEMENTS, None), (10 ** 7, None),
                                              (None, None), (64, "cuda")])
def test_auto_keeps_large_unknown_and_cuda(two_unpinned, elements, device):
    with auto_cpu_threads(elements, device) as n:
        assert n == 2 and torch.get_num_threads() == 2


def test_a_chosen_count_is_kept(two_unpinned):
    with cpu_threads(2):
        assert threads.threads_pinned()
        with auto_cpu_threads(16) as n:
            assert n == 2 and torch.get_num_threads() == 2
    assert not threads.threads_pinned()  # the block's pin ends with it
    with pytest.raises(Exception, match="threads must be >= 1"), cpu_threads(0):
        pass


def _small_cdi(small_cdi):
    _, sup, I = small_cdi
    return CDIProblem.from_arrays(I, sup)


def test_driver_runs_a_small_problem_on_one_thread(two_unpinned, small_cdi):
    p = _small_cdi(small_cdi)
    assert parallel_elements(p) == 64 * 64 and parallel_elements(p, 3) == 3 * 64 * 64
    seen = []
    res = solve(p, algorithm="hio", n_iter=20, rng=0, callback=lambda s: seen.append(torch.get_num_threads()))
    assert set(seen) == {1} and res.provenance["threads"] == 1
    assert torch.get_num_threads() == 2
    with cpu_threads(1):  # the same bits as a run pinned to one thread
        ref = solve(p, algorithm="hio", n_iter=20, rng=0)
    assert np.array_equal(res.image, ref.image) and res.rfactor == ref.rfactor
    with cpu_threads(2):  # a chosen count is used, and recorded
        seen.clear()
        res2 = solve(p, algorithm="hio", n_iter=3, rng=0, callback=lambda s: seen.append(torch.get_num_threads()))
    assert set(seen) == {2} and res2.provenance["threads"] == 2


def test_ptychography_counts_frames_and_pine_denoises_with_the_run_count(two_unpinned):
    from phasekit.ptycho import (
        PtychoProblem,
        object_shape_for,
        raster_scan,
        simulate_ptycho,
    )
    from phasekit.ptycho.probe import fzp_probe

    M = 32
    pos = raster_scan(4, step=6, margin=1)
    shape = object_shape_for(pos, (M, M), margin=1)
    rng = np.random.default_rng(0)
    obj = np.exp(0.3j * rng.random(shape)).astype(np.complex64)
    sim = simulate_ptycho(obj, fzp_probe(M, 16, 12), pos, dose=None, rng=0)
    prob = PtychoProblem.from_arrays(sim.intensities, pos, object_shape=shape, n_modes=2)
    assert prob.parallel_elements == 2 * M * M == parallel_elements(prob)
    in_denoiser, in_sweep = [], []

    def denoiser(o):
        in_denoiser.append(torch.get_num_threads())
        return o

    res = solve(prob, algorithm="pine", n_iter=2, params={"denoiser": denoiser}, rng=0,
                callback=lambda s: in_sweep.append(torch.get_num_threads()))
    assert set(in_sweep) == {1} and set(in_denoiser) == {2} and res.provenance["threads"] == 1
    assert torch.get_num_threads() == 2


def test_tomography_keeps_threads_where_its_projectors_go_parallel(two_unpinned):
    from types import SimpleNamespace

    from phasekit.tomo import TomoProblem, reconstruct, simulate_tilt_series
    from phasekit.tomo.kernels import PARALLEL_THRESHOLD

    def elements(n, n_proj=41):
        return TomoProblem.parallel_elements.fget(SimpleNamespace(shape=(n, n, n), n_proj=n_proj))

    # the driver's threshold falls where the projectors switch to their parallel build
    assert (elements(32) < PARALLEL_MIN_ELEMENTS) == (32 ** 3 * 41 < PARALLEL_THRESHOLD)
    assert elements(48) >= PARALLEL_MIN_ELEMENTS and 48 ** 3 * 41 >= PARALLEL_THRESHOLD
    sim = simulate_tilt_series("vesicle", 16, np.arange(-60, 61, 20.0), rng=0)
    res = reconstruct(sim.projections, sim.angles, algorithm="sirt", n_iter=2, progress=False)
    assert res.provenance["threads"] == 1 and torch.get_num_threads() == 2


@pytest.mark.parametrize("env, expect", [({}, ("PASSIVE", "10000")),
                                         ({"OMP_WAIT_POLICY": "ACTIVE"}, ("ACTIVE", None)),
                                         ({"GOMP_SPINCOUNT": "5"}, ("PASSIVE", "5"))])
def test_import_sets_passive_waiting_with_a_short_spin_unless_the_user_chose(env, expect):
    import json
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import json, os, phasekit; print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), "
            "os.environ.get('GOMP_SPINCOUNT')]))")
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True,
                         text=True, check=True, timeout=120)
    assert tuple(json.loads(out.stdout)) == expect


def test_counts_are_restored_when_a_run_fails(two_unpinned, small_cdi):
    p = _small_cdi(small_cdi)

    def boom(state):
        assert torch.get_num_threads() == 1
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        solve(p, algorithm="er", n_iter=5, rng=0, callback=boom)
    assert torch.get_num_threads() == 2 and not threads._state["outer"]
