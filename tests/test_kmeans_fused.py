"""The compiled k-means paths against their references (issue 16, item 6): mini-batch draws made
inside the compiled SBE / mini-batch steps are NumPy's ``Generator.choice(n, m, replace=False)``
word for word, the assignment kernel gives the bits of the feature-by-feature sums, and the
fits with compiled draws are the fits with Python draws."""
from __future__ import annotations

import numpy as np
import pytest
import torch

kern = pytest.importorskip("phasekit.learn.kmeans_kernels")
from phasekit.learn import MiniBatchKMeans, SBEKMeans
from phasekit.learn import kmeans as km
from phasekit.learn.kmeans import KMeansProblem, MiniBatchStep, SBEStep

pytestmark = pytest.mark.skipif(not kern.available, reason="numba not available")


@pytest.mark.parametrize("n,m", [(150, 60), (10000, 500), (20000, 500), (60000, 1300), (100000, 500),
                                 (20000, 401), (50, 50), (7, 1), (2, 1), (64, 63), (65, 64),
                                 (kern._BITMAP_MAX + 3, 300)])
def test_compiled_draws_are_numpys_choice(n, m):
    """Both of NumPy's branches (Floyd + shuffle; tail shuffle when n > 10000 and m > n // 50),
    Floyd's membership test in a bitmap (n <= 2**24, word edges at 64) and in NumPy's hash set
    (beyond), m == n (all points, nothing drawn), and the generator left in the same state."""
    assert kern.sampling_exact()
    a, b = np.random.default_rng(n * 7 + m), np.random.default_rng(n * 7 + m)
    s = kern.Sampler(n, m, 4)
    floyd = m < n and not (n > 10000 and m > n // 50)
    assert (s.bits.size > 0) == (floyd and n <= kern._BITMAP_MAX)
    for _ in range(2):
        got = s.draw(a).copy()
        for row in got:
            want = np.arange(n) if m >= n else b.choice(n, m, replace=False)
            np.testing.assert_array_equal(row, want)
    assert a.random() == b.random()
    if s.perm.size:  # the tail-shuffle scratch is arange(n) again after every draw
        np.testing.assert_array_equal(s.perm, np.arange(n))
    assert not s.bits.any()  # the bitmap is cleared after every draw


def _sequential_sqdist(X, C):
    """Float32 ``sum_t (x_t - c_t)^2`` one feature at a time, in NumPy (the reference order)."""
    D = np.zeros((X.shape[0], C.shape[0]), X.dtype)
    for t in range(X.shape[1]):
        e = X[:, t, None] - C[None, :, t]
        D = D + e * e
    return D


def _sequential_scores(X, C, ref):
    """The kernel's score ``|c - r|^2 - 2 (x - r).(c - r)`` in the data's dtype, summed one
    feature at a time in NumPy (``|c - r|^2`` summed in float64 and rounded once)."""
    U = (C - ref).astype(X.dtype)
    c2 = (U.astype(np.float64) ** 2).sum(1).astype(X.dtype)
    S = np.broadcast_to(c2, (X.shape[0], C.shape[0])).copy()
    for t in range(X.shape[1]):
        S = S + (X[:, t, None] - ref[t]) * (-(U[None, :, t] + U[None, :, t]))
    return S


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d,k", [(300, 30, 15), (301, 5, 9), (7, 3, 1), (2, 10, 17), (203, 10, 50), (1, 4, 8),
                                   (130, 7, 33), (61, 2, 4), (9, 30, 16)])
def test_compiled_assignment_has_the_bits_of_the_sequential_sums(n, d, k, dtype):
    """Labels are the argmin of the score summed feature by feature (whatever the grouping of
    points and centres inside the kernel: full and half blocks of centres, both precisions),
    the distances the direct sum to that centre."""
    rng = np.random.default_rng(n + d + k)
    X = (rng.standard_normal((n, d)) * 3 + 1).astype(dtype)
    C = (rng.standard_normal((k, d)) * 3 + 1).astype(dtype)
    ref = kern.reference(X)
    lab, m = kern.assign(torch.from_numpy(X), torch.from_numpy(C))
    want = _sequential_scores(X, C, ref).argmin(1)  # argmin: first of equal minima
    np.testing.assert_array_equal(lab.numpy(), want)
    np.testing.assert_array_equal(m.numpy(), _sequential_sqdist(X, C)[np.arange(n), want])
    np.testing.assert_array_equal(lab.numpy(), _sequential_sqdist(X, C).argmin(1))  # no near ties here


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("d", [1, 3, 30])
def test_block_score_kernel_is_its_python_twin(dtype, half, d):
    """The register-blocked block-score kernel (LLVM IR) against :func:`block_scores_reference`,
    to the bit: scores, least lane, first of equal lanes, NaN lanes ignored, ``+inf`` padding,
    and a running minimum replaced only by a strictly smaller one; blocks at an offset."""
    import numba

    W = kern._lanes(numba.from_dtype(np.dtype(dtype)), half)
    call = numba.njit(lambda *a: (kern._block_scores_half if half else kern._block_scores_full)(*a))
    rng = np.random.default_rng(d + W)
    Kp = 3 * W + 4
    for trial in range(40):
        Y = (rng.standard_normal((9, d)) * 2).astype(dtype)
        CmT = (rng.standard_normal((d, Kp)) * 2).astype(dtype)
        c2p = (rng.standard_normal(Kp) * 4).astype(dtype)
        off = int(rng.integers(0, Kp - W + 1))
        if trial % 4 == 1:  # equal centres: equal scores, first one wins
            CmT[:, off + W - 1] = CmT[:, off + 1]
            c2p[off + W - 1] = c2p[off + 1]
            CmT[:, off + 2] = CmT[:, off + 1]
            c2p[off + 2] = c2p[off + 1]
        if trial % 4 == 2:  # padding and a NaN lane
            c2p[off + W // 2:off + W] = np.inf
            CmT[:, off + W // 2:off + W] = 0
            c2p[off] = np.nan
        if trial % 4 == 3:  # every lane NaN: no update
            c2p[off:off + W] = np.nan
        rows = tuple(int(r) for r in rng.integers(0, 9, 4))
        best0 = np.where(rng.random(4) < 0.5, np.inf, rng.standard_normal(4) * 5).astype(dtype)
        best0[0] = np.inf
        bidx0 = rng.integers(100, 200, 4)
        best, bidx = best0.copy(), bidx0.copy()
        call(Y, *rows, CmT, c2p, off, best, bidx)
        want_b, want_i = best0.copy(), bidx0.copy()
        kern.block_scores_reference(Y, rows, CmT, c2p, off, W, want_b, want_i)
        np.testing.assert_array_equal(bidx, want_i)
        np.testing.assert_array_equal(best.view(np.uint8), want_b.view(np.uint8))  # same bits
        if trial % 4 != 3:
            assert bidx[0] < 100  # row 0 started at +inf: some lane replaced it


def test_compiled_assignment_breaks_exact_ties_to_the_lowest_index():
    """Duplicated centres score the same to the bit: every point goes to the first copy, in all
    four lanes of a group and in a short last group (the branch-free minimum keeps strict ``<``)."""
    rng = np.random.default_rng(11)
    base = (rng.standard_normal((5, 6)) * 2).astype(np.float32)
    C = np.concatenate([base, base[::-1], base])  # centre j, 9 - j and j + 10 are equal
    X = (base[rng.integers(5, size=203)] + 0.1 * rng.standard_normal((203, 6))).astype(np.float32)
    lab, _ = kern.assign(torch.from_numpy(X), torch.from_numpy(C))
    want = _sequential_scores(X, C, kern.reference(X)).argmin(1)
    np.testing.assert_array_equal(lab.numpy(), want)
    assert lab.max() < 5  # never a later copy
    idx = rng.integers(203, size=(1, 57))  # a batch with repeats and a short last group
    _, _, sums, counts = kern.assign_sums(torch.from_numpy(X), torch.from_numpy(C), idx[0])
    assert counts[5:].sum() == 0 and counts.sum() == 57
    np.testing.assert_allclose(sums.numpy()[:5].sum(0), X[idx[0]].astype(np.float64).sum(0), rtol=1e-12, atol=1e-12)


def test_compiled_assignment_keeps_its_digits_far_from_the_origin():
    """Clusters of unit size 10^4 from the origin in float32: scores relative to the data mean
    give the float64 nearest centre (``|p|^2 - 2 p.c + |c|^2`` at the origin would lose them)."""
    rng = np.random.default_rng(3)
    C64 = 1e4 + rng.standard_normal((6, 8)) * 4
    X64 = C64[rng.integers(6, size=2000)] + rng.standard_normal((2000, 8))
    X, C = X64.astype(np.float32), C64.astype(np.float32)
    lab, _ = kern.assign(torch.from_numpy(X), torch.from_numpy(C))
    d64 = ((X.astype(np.float64)[:, None, :] - C.astype(np.float64)[None]) ** 2).sum(-1)
    srt = np.sort(d64, 1)
    clear = srt[:, 1] - srt[:, 0] > 1e-2  # away from ties
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(lab.numpy()[clear], d64.argmin(1)[clear])


def test_fused_sbe_outer_step_equals_python_draws_then_kernel():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3000, 7)).astype(np.float32)
    x = X[:5].copy()
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    s = kern.Sampler(3000, 200, 6)
    fused = kern.sbe_outer_draw(X, a, s, x, 5.0, 0.75)
    idx = np.stack([b.choice(3000, 200, replace=False) for _ in range(6)])
    ref = kern.sbe_outer(torch.from_numpy(X), idx, torch.from_numpy(x), 5.0, 0.75).numpy()
    np.testing.assert_array_equal(fused, ref)
    assert not np.array_equal(fused, x)
    assert a.random() == b.random()


@pytest.mark.parametrize("cls,kw", [(SBEKMeans, {"batch_size": 150, "n_inner": 4, "max_iter": 12}),
                                    (MiniBatchKMeans, {"batch_size": 150, "max_iter": 40})])
def test_fit_with_compiled_draws_equals_fit_with_python_draws(cls, kw, monkeypatch):
    rng = np.random.default_rng(1)
    mu = rng.uniform(-5, 5, (4, 6))
    X = (mu[rng.integers(4, size=2000)] + rng.standard_normal((2000, 6))).astype(np.float32)
    fast = cls(4, init="random", rng=5, **kw).fit(X)
    monkeypatch.setattr(km._kern, "fast_sampler", lambda *a, **k: None)
    slow = cls(4, init="random", rng=5, **kw).fit(X)
    np.testing.assert_array_equal(fast.cluster_centers_, slow.cluster_centers_)
    np.testing.assert_array_equal(fast.labels_, slow.labels_)
    assert fast.inertia_ == slow.inertia_
    one_centre = km.kmeans_objective(X, X.mean(0, keepdims=True))
    assert fast.objective_ < 0.3 * one_centre  # it clustered (noise floor d / 2 = 3 of ~27)


def test_full_data_assignment_is_one_pass_per_centre_set(monkeypatch):
    X = np.random.default_rng(0).standard_normal((500, 3))
    p = km.KMeansProblem(X, 3, init="random")
    C = p.random_start(0)
    calls = []
    real = km.assign
    monkeypatch.setattr(km, "assign", lambda *a, **k: calls.append(1) or real(*a, **k))
    phi = p.rfactor(C)
    _, m = p.assign_all(C.clone())
    assert len(calls) == 1
    assert phi == pytest.approx(float(m.double().sum()) / 1000, rel=1e-12)
    p.rfactor(C + 1)
    assert len(calls) == 2


def test_sums_without_distances_are_the_same_pass():
    """``with_mins=False`` (a Lloyd iteration) gives the labels, sums and counts of the full call."""
    rng = np.random.default_rng(12)
    X = torch.from_numpy((rng.standard_normal((517, 9)) * 2).astype(np.float32))
    C = X[:6].clone()
    lab, m, s, c = kern.assign_sums(X, C)
    lab2, m2, s2, c2 = kern.assign_sums(X, C, with_mins=False)
    assert m2 is None and m is not None
    for a, b in ((lab, lab2), (s, s2), (c, c2)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("cls,kw", [(SBEStep, {"batch_size": 100, "n_inner": 3}),
                                    (MiniBatchStep, {"batch_size": 100})])
def test_compiled_steps_hold_arrays_and_continue_from_a_state_dict(cls, kw):
    """The compiled steps keep the centres (and counts) as NumPy arrays, ``algo.x`` a torch view
    made when read; a state dict taken halfway and loaded into a new algorithm continues the run
    to the same bits as the run without the break (the draws come from the problem's generator)."""
    rng = np.random.default_rng(6)
    X = (rng.standard_normal((2000, 5)) + 4 * rng.integers(4, size=(2000, 1))).astype(np.float32)
    pa, pb = KMeansProblem(X, 4, init="random", rng=5), KMeansProblem(X, 4, init="random", rng=5)
    assert pa.fused
    x0 = torch.from_numpy(X[:4].copy())
    a, b = cls(pa, 10, **kw), cls(pb, 10, **kw)
    a.initialize(x0)
    b.initialize(x0)
    for k in range(6):
        a.step(k)
    for k in range(3):
        b.step(k)
    state = {n: v.clone() if isinstance(v, torch.Tensor) else v for n, v in b.state_dict().items()}
    c = cls(pb, 10, **kw)
    c.load_state_dict(state)
    for k in range(3, 6):
        c.step(k)
    for n in cls.state_names:
        va, vc = getattr(a, n), getattr(c, n)
        if isinstance(va, torch.Tensor):
            assert va.dtype == torch.float32
            np.testing.assert_array_equal(va.numpy(), vc.numpy())
        else:
            assert va == vc
    assert not np.array_equal(a.x.numpy(), X[:4])
