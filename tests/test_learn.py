"""Tests of phasekit.learn: the Laplacian smoothing operator (Pham thesis ch. 5, eq. (5.6) and
§5.2.4), the LS-SGD / LS-RMSprop optimisers, and SBE / Lloyd / mini-batch k-means (ch. 4), with the
``phasekit kmeans`` command."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.optimize import linear_sum_assignment
from scipy.special import comb

from phasekit.core.errors import ConfigError, InputError
from phasekit.learn import (LSRMSprop, LSSGD, KMeans, MiniBatchKMeans, NotFittedError, SBEKMeans,
                            kmeans_objective, laplacian_smooth, laplacian_smoothing_divisor,
                            load_iris, smooth_vector, smoothed_noise_variance_factor)
from phasekit.learn.kmeans import KMeansProblem, MiniBatchStep, SBEStep


# --------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP hand-off costs on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def periodic_laplacian(m: int) -> np.ndarray:
    L = -2.0 * np.eye(m)
    for i in range(m):
        L[i, (i + 1) % m] += 1.0
        L[i, (i - 1) % m] += 1.0
    return L


def dense_operator(m: int, sigma: float, order: int) -> np.ndarray:
    """``I + (-1)^n sigma L^n`` built densely (thesis §5.2.4)."""
    L = periodic_laplacian(m)
    return np.eye(m) + (-1) ** order * sigma * np.linalg.matrix_power(L, order)


THESIS_C0 = np.array([[-5.5989, -2.7090], [-4.4572, -4.0614], [-0.1082, 5.2889], [2.3485, 3.5286]])


def thesis_2d(seed: int) -> np.ndarray:
    """The 2-D synthetic Gaussians of §4.3.1 (4 x 1000 points)."""
    rng = np.random.default_rng(seed)
    mus = [(-5, -3), (5, -3), (0.0, 5.0), (2.5, 4.0)]
    covs = [[[0.8, 0.1], [0.1, 0.8]], [[1.2, 0.6], [0.6, 0.7]], [[0.5, 0.05], [0.05, 1.6]],
            [[1.5, 0.05], [0.05, 0.6]]]
    return np.concatenate([rng.multivariate_normal(m, c, 1000) for m, c in zip(mus, covs)])


def matched_centre_error(C, truth) -> float:
    """Largest distance between found and true centres after the best permutation."""
    d = np.linalg.norm(np.asarray(C)[:, None, :] - np.asarray(truth)[None, :, :], axis=-1)
    r, c = linear_sum_assignment(d)
    return float(d[r, c].max())


# --------------------------------------------------------------------------- smoothing operator
@pytest.mark.parametrize("m", [2, 7, 16])
def test_divisor_is_one_plus_4sigma_sin2(m):
    sigma = 0.7
    k = np.arange(m)
    want = 1.0 / (1.0 + 4 * sigma * np.sin(np.pi * k / m) ** 2)
    got = laplacian_smoothing_divisor((m,), sigma, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
    # the thesis's form 1 / (1 - sigma fft(v)), v = [-2, 1, 0, ..., 0, 1]
    v = np.zeros(m)
    v[0] -= 2
    v[1 % m] += 1
    v[-1] += 1
    np.testing.assert_allclose(got, 1.0 / (1.0 - sigma * np.fft.fft(v).real), atol=1e-13)


@pytest.mark.parametrize("m,order", [(10, 1), (7, 1), (10, 2), (7, 2), (9, 3), (3, 2), (4, 3)])
def test_fft_solve_equals_dense_solve(m, order):
    """FFT smoothing == dense solve of (I + (-1)^n sigma L^n) d = g, also for m < 2n + 1."""
    rng = np.random.default_rng(m * 10 + order)
    g = rng.standard_normal((3, m))
    A = dense_operator(m, 1.3, order)
    want = np.linalg.solve(A, g.T).T
    got = laplacian_smooth(torch.as_tensor(g), 1.3, 1, order=order).numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    # condition number 1 + 4^n sigma for even m
    if m % 2 == 0:
        assert np.linalg.cond(A) == pytest.approx(1 + 4 ** order * 1.3, rel=1e-10)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_stencil_is_alternating_binomials(order):
    """Rows of L^n are the central-difference weights (-1)^i C(2n, i) (the corrected recursion)."""
    m = 2 * order + 5
    row = np.linalg.matrix_power(periodic_laplacian(m), order)[order + 2]
    stencil = row[2:2 * order + 3]
    np.testing.assert_allclose(stencil, [(-1) ** i * comb(2 * order, i) for i in range(2 * order + 1)])


def test_smoothing_preserves_mean_and_order1_max_principle():
    rng = np.random.default_rng(0)
    g = torch.as_tensor(rng.standard_normal(257) * 3 + 1.5)
    for order in (1, 2):
        d = laplacian_smooth(g, 2.0, order=order)
        assert float(d.mean()) == pytest.approx(float(g.mean()), abs=1e-12)
    d1 = laplacian_smooth(g, 2.0)
    assert float(d1.min()) >= float(g.min()) and float(d1.max()) <= float(g.max())
    # order 1: A^{-1} is entrywise non-negative with unit row sums; order 2 has negative entries
    inv1 = np.linalg.inv(dense_operator(10, 1.0, 1))
    inv2 = np.linalg.inv(dense_operator(10, 1.0, 2))
    assert inv1.min() > 0 and np.allclose(inv1.sum(1), 1)
    assert inv2.min() < -1e-3 and np.allclose(inv2.sum(1), 1)


def test_smoothed_white_noise_variance_matches_formula():
    """Var(A^{-1} e) / Var(e) = (1/m) sum_k (1 + 4 sigma sin^2)^-2 -> (1 + 2 sigma)/(1 + 4 sigma)^1.5."""
    assert smoothed_noise_variance_factor(None, 1.0) == pytest.approx(0.2683, abs=1e-4)
    for sigma in (0.5, 1.0, 2.0, 10.0):
        exact = smoothed_noise_variance_factor(4096, sigma)
        assert exact == pytest.approx((1 + 2 * sigma) / (1 + 4 * sigma) ** 1.5, rel=1e-6)
    # numerical limit of order 2 agrees with the large-m exact sum
    assert smoothed_noise_variance_factor(None, 1.0, 2) == pytest.approx(
        smoothed_noise_variance_factor(8192, 1.0, 2), rel=1e-6)
    rng = np.random.default_rng(1)
    e = torch.as_tensor(rng.standard_normal((400, 1024)))
    for sigma, order in ((1.0, 1), (3.0, 1), (1.0, 2)):
        v = float(laplacian_smooth(e, sigma, 1, order=order).var())
        assert v == pytest.approx(smoothed_noise_variance_factor(1024, sigma, order), rel=0.02)


def test_smoothing_nd_real_complex_and_shapes():
    rng = np.random.default_rng(2)
    x = torch.as_tensor(rng.standard_normal((6, 9)), dtype=torch.float32)
    a = laplacian_smooth(x, 0.8)
    b = laplacian_smooth(x.to(torch.complex64), 0.8)
    assert a.dtype == torch.float32 and a.shape == x.shape
    np.testing.assert_allclose(a.numpy(), b.real.numpy(), atol=1e-5)
    assert float(b.imag.abs().max()) < 1e-5
    # smooth_vector = smoothing of the flattened tensor
    np.testing.assert_allclose(smooth_vector(x, 0.8).numpy(),
                               laplacian_smooth(x.reshape(-1), 0.8).reshape(6, 9).numpy(), atol=1e-6)
    assert torch.equal(laplacian_smooth(x, 0.0), x)
    with pytest.raises(ConfigError, match="sigma"):
        laplacian_smooth(x, -1.0)
    with pytest.raises(ConfigError, match="order"):
        laplacian_smooth(x, 1.0, order=0)
    with pytest.raises(ConfigError, match="ndim"):
        laplacian_smooth(x, 1.0, 3)


# --------------------------------------------------------------------------- optimisers
def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _steps(opt_factory, n=5, seed=0):
    m = _model(seed)
    opt = opt_factory(m.parameters())
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(8, 12, generator=gen)
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
    return [p.detach().clone() for p in m.parameters()]


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, weight_decay=1e-2),
                                dict(momentum=0.9, nesterov=True, weight_decay=1e-3),
                                dict(momentum=0.5, dampening=0.3)])
def test_lssgd_sigma0_is_sgd(kw):
    a = _steps(lambda p: LSSGD(p, lr=0.1, sigma=0.0, **kw))
    b = _steps(lambda p: torch.optim.SGD(p, lr=0.1, **kw))
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-7)


def test_lsrmsprop_sigma0_is_rmsprop():
    a = _steps(lambda p: LSRMSprop(p, lr=0.01, sigma=0.0, weight_decay=1e-3))
    b = _steps(lambda p: torch.optim.RMSprop(p, lr=0.01, weight_decay=1e-3))
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


def test_lssgd_order_of_smoothing_weight_decay_momentum():
    """d = A^{-1} g + wd p (our order; the thesis does not give one), then momentum; and the smooth-after-decay flag."""
    torch.manual_seed(3)
    w = torch.nn.Parameter(torch.randn(4, 5))
    tiny = torch.nn.Parameter(torch.randn(2))
    g1, g2 = torch.randn(4, 5), torch.randn(4, 5)
    opt = LSSGD([w, tiny], lr=0.1, sigma=1.5, order=2, momentum=0.9, weight_decay=0.01)
    w0 = w.detach().clone()
    A = torch.as_tensor(dense_operator(20, 1.5, 2), dtype=torch.float64)
    d1 = torch.linalg.solve(A, g1.reshape(-1).double()).float().reshape(4, 5) + 0.01 * w0
    w.grad, tiny.grad = g1.clone(), torch.ones(2)
    opt.step()
    torch.testing.assert_close(w.detach(), w0 - 0.1 * d1, rtol=0, atol=1e-6)
    torch.testing.assert_close(tiny.detach(), tiny.detach(), rtol=0, atol=0)
    w1 = w.detach().clone()
    d2 = torch.linalg.solve(A, g2.reshape(-1).double()).float().reshape(4, 5) + 0.01 * w1
    w.grad = g2.clone()
    opt.step()
    torch.testing.assert_close(w.detach(), w1 - 0.1 * (0.9 * d1 + d2), rtol=0, atol=1e-6)
    # numel <= 2 tensors are not smoothed: plain SGD with momentum on the bias-like tensor
    # smoothing after weight decay
    v = torch.nn.Parameter(torch.randn(16))
    v0 = v.detach().clone()
    g = torch.randn(16)
    o2 = LSSGD([v], lr=0.2, sigma=1.0, weight_decay=0.1, smooth_weight_decay=True)
    v.grad = g.clone()
    o2.step()
    want = v0 - 0.2 * laplacian_smooth((g + 0.1 * v0).double(), 1.0).float()
    torch.testing.assert_close(v.detach(), want, rtol=0, atol=1e-6)


def test_lssgd_small_tensors_unsmoothed():
    b = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    b.grad = torch.tensor([3.0, -1.0])
    LSSGD([b], lr=1.0, sigma=5.0).step()
    torch.testing.assert_close(b.detach(), torch.tensor([-2.0, 3.0]))


def test_lsgd_recovers_least_squares_solution_and_reduces_noise():
    """Full-gradient LS-GD converges to the same minimiser (A^{-1} is SPD); with noisy gradients
    the smoothed steps have ~(1+2s)/(1+4s)^1.5 of the per-entry noise variance."""
    rng = np.random.default_rng(4)
    n, m = 200, 64
    Amat = torch.as_tensor(rng.standard_normal((n, m)) / math.sqrt(n))
    w_true = torch.as_tensor(rng.standard_normal(m))
    b = Amat @ w_true
    w = torch.nn.Parameter(torch.zeros(m, dtype=torch.float64))
    opt = LSSGD([w], lr=0.5, sigma=1.0, momentum=0.5)
    for _ in range(600):
        opt.zero_grad()
        (0.5 * (Amat @ w - b).pow(2).sum()).backward()
        opt.step()
    rel = float(torch.linalg.norm(w.detach() - w_true) / torch.linalg.norm(w_true))
    assert rel < 1e-6
    # variance of a smoothed noisy step vs an unsmoothed one
    noise = torch.as_tensor(rng.standard_normal((300, 4096)))
    steps = []
    for sigma in (0.0, 1.0):
        p = torch.nn.Parameter(torch.zeros(4096, dtype=torch.float64))
        o = LSSGD([p], lr=1.0, sigma=sigma)
        s = []
        for e in noise:
            p.data.zero_()
            p.grad = e.clone()
            o.step()
            s.append(-p.detach().clone())
        steps.append(torch.stack(s).var().item())
    assert steps[1] / steps[0] == pytest.approx(smoothed_noise_variance_factor(4096, 1.0), rel=0.02)


def test_optimiser_bad_parameters():
    p = [torch.nn.Parameter(torch.zeros(5))]
    with pytest.raises(ConfigError, match="sigma"):
        LSSGD(p, lr=0.1, sigma=-1)
    with pytest.raises(ConfigError, match="order"):
        LSSGD(p, lr=0.1, order=0)
    with pytest.raises(ConfigError, match="lr"):
        LSSGD(p, lr=-0.1)
    with pytest.raises(ConfigError, match="nesterov"):
        LSSGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="alpha"):
        LSRMSprop(p, alpha=1.0)


# --------------------------------------------------------------------------- k-means
def test_iris_best_objective_is_thesis_normalisation():
    """Thesis eq. (4.4): phi = inertia / (2N); best Iris inertia 78.85 / 300 = 0.2628."""
    X, y = load_iris()
    assert X.shape == (150, 4) and np.bincount(y).tolist() == [50, 50, 50]
    est = KMeans(3, n_init=10, rng=0, precision="double").fit(X)
    assert est.inertia_ == pytest.approx(78.851, abs=2e-3)
    assert est.objective_ == pytest.approx(est.inertia_ / 300)
    assert round(est.objective_, 4) == 0.2628
    assert kmeans_objective(X, est.cluster_centers_) == pytest.approx(est.objective_, rel=1e-12)
    assert est.objectives_[0] == min(est.objectives_)


def test_iris_sbe_never_stuck_where_lloyd_is():
    """§4.3.2 with the printed settings (M=60, imaxit=40, omaxit=10, beta=1/1.01, gamma0=K=3):
    Lloyd from random data points gets stuck near 0.48 in some runs, SBE never."""
    X, _ = load_iris()
    sbe, lloyd = [], []
    for s in range(20):
        C0 = X[np.random.default_rng(s).choice(150, 3, replace=False)]
        lloyd.append(KMeans(3, init=C0).fit(X).objective_)
        sbe.append(SBEKMeans(3, batch_size=60, n_inner=40, max_iter=10, init=C0, rng=s).fit(X).objective_)
    sbe, lloyd = np.array(sbe), np.array(lloyd)
    assert sbe.max() < 0.275 and sbe.min() > 0.2628
    assert (lloyd > 0.45).sum() >= 2 and lloyd.min() == pytest.approx(0.2628, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sbe_escapes_the_2d_lloyd_trap(seed):
    """§4.3.1 / Fig. 4.1: Lloyd from the printed centroids stalls at ~1.34; SBE never ends above
    Lloyd from the same centroids and reaches the global ~0.90, also started where Lloyd got stuck."""
    X = thesis_2d(seed)
    lloyd = KMeans(4, init=THESIS_C0, tol=0).fit(X)
    assert 1.25 < lloyd.objective_ < 1.45
    best = KMeans(4, n_init=5, rng=seed).fit(X).objective_
    for init in (THESIS_C0, lloyd.cluster_centers_):
        sbe = SBEKMeans(4, init=init, batch_size=100, n_inner=10, max_iter=100, rng=seed,
                        metric_every=5).fit(X)
        assert sbe.objective_ <= lloyd.objective_
        assert sbe.objective_ == pytest.approx(best, rel=5e-3)
        assert len(sbe.history_["objective"]) == 20
    assert max(sbe.history_["objective"]) > lloyd.objective_  # the "hill" it jumps over


@pytest.mark.parametrize("cls,kw", [(SBEKMeans, dict(batch_size=200, n_inner=5, max_iter=60)),
                                    (KMeans, dict()), (MiniBatchKMeans, dict(batch_size=200, max_iter=100))])
def test_recovers_separated_gaussian_clusters(cls, kw):
    rng = np.random.default_rng(5)
    truth = rng.uniform(-10, 10, size=(5, 3))
    lab = np.repeat(np.arange(5), 300)
    X = truth[lab] + 0.1 * rng.standard_normal((1500, 3))
    est = cls(5, rng=1, n_init=3, **kw).fit(X)
    assert matched_centre_error(est.cluster_centers_, truth) < 0.03
    # labels equal the truth up to a permutation
    perm = {a: b for a, b in zip(est.labels_, lab)}
    assert len(set(perm.values())) == 5 and all(perm[a] == b for a, b in zip(est.labels_, lab))
    np.testing.assert_array_equal(est.predict(X), est.labels_)


def test_sbe_outer_step_follows_algorithm4():
    """With M = N (no sampling noise) one outer step is the alpha-averaged fixed-point trajectory
    y^l = x - gamma grad phi(y^{l-1}), computed here independently in NumPy."""
    rng = np.random.default_rng(6)
    X = np.concatenate([rng.normal(0, 0.3, (40, 2)), rng.normal(5, 0.3, (60, 2))])
    x0 = np.array([[0.5, -0.2], [4.0, 5.5]])
    p = KMeansProblem(X, 2, precision="double")
    alg = SBEStep(p, 2, batch_size=100, n_inner=7, alpha=0.75, beta=0.5)
    alg.initialize(torch.as_tensor(x0))
    alg.step(0)
    alg.step(1)

    def grad(y):
        lab = np.argmin(((X[:, None] - y[None]) ** 2).sum(-1), 1)
        return np.stack([(y[j] - X[lab == j]).sum(0) for j in range(2)]) / len(X)

    x, gamma = x0.copy(), 2.0
    for _ in range(2):
        xk, y = x.copy(), x.copy()
        for _ in range(7):
            y = x - gamma * grad(y)
            xk = 0.75 * xk + 0.25 * y
        x, gamma = xk, gamma * 0.5
    np.testing.assert_allclose(alg.x.numpy(), x, atol=1e-12)
    assert alg.gamma == pytest.approx(0.5)


def test_minibatch_step_equals_sequential_sculley_update():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((30, 3))
    p = KMeansProblem(X, 3, precision="double")
    alg = MiniBatchStep(p, 1, batch_size=30)
    x0 = X[:3].copy()
    alg.initialize(torch.as_tensor(x0))
    alg.step(0)
    c, v = x0.copy(), np.zeros(3)
    lab = np.argmin(((X[:, None] - x0[None]) ** 2).sum(-1), 1)  # assignment w.r.t. the batch-start centres
    for xi, j in zip(X, lab):
        v[j] += 1
        c[j] += (xi - c[j]) / v[j]
    np.testing.assert_allclose(alg.x.numpy(), c, atol=1e-12)


# --------------------------------------------------------------------------- compiled kernels
kern = pytest.importorskip("phasekit.learn.kmeans_kernels")
needs_numba = pytest.mark.skipif(not kern.available, reason="numba not available")


@pytest.fixture
def reference_path(monkeypatch):
    """Force the torch reference path of phasekit.learn.kmeans (as on CUDA / without numba)."""
    from phasekit.learn import kmeans as km

    def use():
        monkeypatch.setattr(km._kern, "usable", lambda *ts: False)
    return use


def _blobs(n, d, k, seed, spread=0.6):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-6, 6, (k, d))
    return mu[rng.integers(k, size=n)] + spread * rng.standard_normal((n, d))


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,d,k", [(1000, 30, 15), (77, 3, 1), (130, 5, 64)])
def test_compiled_assignment_and_sums_match_torch_reference(dtype, n, d, k):
    from phasekit.learn.kmeans import _cluster_sums, assign_reference

    rng = np.random.default_rng(n + k)
    X = torch.as_tensor(rng.standard_normal((n, d)) * 3 + 1, dtype=dtype)
    C = torch.as_tensor(rng.standard_normal((k, d)) * 3 + 1, dtype=dtype)
    lab_r, m_r = assign_reference(X, C)
    lab, m, sums, counts = kern.assign_sums(X, C)
    # exact assignment wherever the reference's best and second-best distances are apart by
    # more than rounding (in practice: every point)
    D = torch.cdist(X.double(), C.double()) ** 2
    gap = (D.topk(2, largest=False).values.diff(dim=1)[:, 0] if k > 1 else torch.full((n,), 1e9))
    clear = gap > 1e-4 * D.min(1).values.clamp_min(1)
    assert int(clear.sum()) >= n - 1
    np.testing.assert_array_equal(lab[clear].numpy(), lab_r[clear].numpy())
    eps = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(m.double().numpy(), D.min(1).values.numpy(), rtol=eps, atol=eps * 10)
    s_r, c_r = _cluster_sums(X.double(), lab.long(), k)
    np.testing.assert_array_equal(counts.numpy(), c_r.numpy().astype(np.int64))
    np.testing.assert_allclose(sums.numpy(), s_r.numpy(), rtol=eps, atol=eps * 10)
    # a subset given by indices: the same as the gathered rows
    idx = rng.choice(n, size=min(n, 50), replace=False)
    lab_i, m_i, s_i, c_i = kern.assign_sums(X, C, idx)
    lab_g, m_g, s_g, c_g = kern.assign_sums(X[torch.as_tensor(idx)].contiguous(), C)
    np.testing.assert_array_equal(lab_i.numpy(), lab_g.numpy())
    np.testing.assert_array_equal(m_i.numpy(), m_g.numpy())
    np.testing.assert_array_equal(s_i.numpy(), s_g.numpy())
    np.testing.assert_array_equal(c_i.numpy(), c_g.numpy())


@needs_numba
def test_compiled_assignment_ties_go_to_lowest_index():
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    C = torch.tensor([[0.0, 1.0], [0.0, -1.0], [3.0, 0.0], [3.0, 0.0]])
    lab, m = kern.assign(X, C)
    assert lab.tolist() == [0, 0, 2]
    assert m.tolist() == [1.0, 2.0, 29.0]


@needs_numba
@pytest.mark.parametrize("cls,kw", [(SBEKMeans, dict(batch_size=300, n_inner=5, max_iter=40)),
                                    (KMeans, dict(max_iter=30)),
                                    (MiniBatchKMeans, dict(batch_size=300, max_iter=60))])
def test_compiled_fit_matches_torch_reference_fit(cls, kw, reference_path):
    """Same seeded fit on the compiled kernels and on the torch reference: the same algorithm up
    to floating-point rounding (centres to 1e-4, objective to 1e-6 relative).  The objective is
    compared in float64 (the reference's float32 ``|p|^2 - 2 p.c + |c|^2`` is itself off by
    ~2e-6 relative here; the compiled direct sum agrees with float64 to 1e-8)."""
    X = _blobs(3000, 8, 6, seed=11).astype(np.float32)
    fast = cls(6, init="random", rng=3, **kw).fit(X)
    reference_path()
    ref = cls(6, init="random", rng=3, **kw).fit(X)
    np.testing.assert_allclose(fast.cluster_centers_, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
    X64 = X.astype(np.float64)
    phi_fast = kmeans_objective(X64, fast.cluster_centers_)
    assert phi_fast == pytest.approx(kmeans_objective(X64, ref.cluster_centers_), rel=1e-6)
    assert fast.objective_ == pytest.approx(phi_fast, rel=1e-7)
    assert ref.objective_ == pytest.approx(phi_fast, rel=1e-5)
    np.testing.assert_array_equal(fast.labels_, ref.labels_)
    assert fast.n_iter_ == ref.n_iter_


@needs_numba
def test_sbe_compiled_outer_step_matches_reference_step(reference_path):
    """One SBE outer step (thesis Alg. 4) with the same mini-batch draws on both paths."""
    X = _blobs(2000, 5, 4, seed=2)
    out = []
    for fused in (True, False):
        if not fused:
            reference_path()
        p = KMeansProblem(X, 4, precision="double", init="random")
        alg = SBEStep(p, 3, batch_size=250, n_inner=6)
        alg.initialize(p.random_start(np.random.default_rng(9)))
        for k in range(3):
            alg.step(k)
        assert p.fused is fused
        out.append(alg.x.numpy().copy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-12)


def test_estimator_api_reproducibility_and_inputs():
    rng = np.random.default_rng(8)
    X = np.concatenate([rng.normal(m, 0.5, (50, 4)) for m in (0, 4, 8)]).astype(np.float32)
    a = SBEKMeans(3, batch_size=40, n_inner=5, max_iter=20, rng=3).fit(X)
    b = SBEKMeans(3, batch_size=40, n_inner=5, max_iter=20, rng=3).fit(torch.as_tensor(X))
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.cluster_centers_.shape == (3, 4) and a.labels_.shape == (150,) and a.n_iter_ == 20
    assert a.transform(X).shape == (150, 3)
    np.testing.assert_array_equal(a.transform(X).argmin(1), a.labels_)
    assert a.score(X) == pytest.approx(-a.inertia_, rel=1e-5)
    assert np.array_equal(SBEKMeans(3, batch_size=40, max_iter=20, rng=3).fit_predict(X),
                          SBEKMeans(3, batch_size=40, max_iter=20, rng=3).fit(X).labels_)
    assert a.get_params()["batch_size"] == 40 and a.set_params(batch_size=10).batch_size == 10
    # k-means++ and random seeding pick data rows
    p = KMeansProblem(X, 3, init="k-means++")
    C = p.random_start(0).numpy()
    assert all((X == c).all(1).any() for c in C) and len({tuple(c) for c in C}) == 3
    km = KMeans(3, rng=0, init="random").fit(X)
    assert km.n_iter_ < 50 and km.objective_ < 2.0
    with pytest.raises(NotFittedError, match="not fitted"):
        KMeans(3).predict(X)
    with pytest.raises(InputError, match="5 features"):
        a.predict(np.zeros((2, 5)))


@pytest.mark.parametrize("X,kw,err,match", [
    (np.zeros(10), {}, InputError, "2-D"),
    (np.array([[0.0, np.nan], [1, 1]]), {}, InputError, "NaN"),
    (np.zeros((3, 2)), dict(n_clusters=4), InputError, "n_samples=3"),
    (np.zeros((9, 2)), dict(init=np.zeros((2, 2))), InputError, r"\(2, 2\) != .* \(3, 2\)"),
    (np.zeros((9, 2)), dict(init="kmeans+++"), ConfigError, "init"),
    (np.zeros((9, 2)), dict(batch_size=0), ConfigError, "batch_size"),
    (np.zeros((9, 2)), dict(alpha=1.0), ConfigError, "alpha"),
    (np.zeros((9, 2)), dict(max_iter=0), ConfigError, "max_iter"),
    (np.zeros((9, 2)), dict(n_clusters=0), ConfigError, "n_clusters"),
    (np.array([["a", "b"]]), {}, InputError, "numeric"),
])
def test_bad_inputs(X, kw, err, match):
    kw = {"n_clusters": 3, **kw}
    with pytest.raises(err, match=match):
        SBEKMeans(**kw).fit(X)


def test_shared_driver_chain_and_registry(small_cdi):
    """The k-means steps run in the shared driver: Lloyd then SBE from where it stopped (Fig. 4.1)."""
    from phasekit.engine import Stage, get_algorithm, run

    X = thesis_2d(0)
    p = KMeansProblem(X, 4, rng=0)
    res = run(p, [Stage("lloyd", 50), Stage("sbe", 100, {"batch_size": 100})], x0=THESIS_C0, metric_every=10)
    assert res.history["objective"][4] > 1.25 and res.rfactor < 0.91
    assert get_algorithm("sbe").name == "sbe-kmeans" and get_algorithm("sbe").modality == "ml"
    from phasekit.cdi import CDIProblem

    obj, sup, pattern = small_cdi
    prob = CDIProblem.from_arrays(pattern, support=sup)
    with pytest.raises(ConfigError, match="k-means algorithm"):
        SBEStep(prob, 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    X, _ = load_iris()
    C0 = X[[0, 60, 120]]
    a = SBEKMeans(3, batch_size=60, n_inner=10, max_iter=10, init=C0, rng=0, precision="double").fit(X)
    b = SBEKMeans(3, batch_size=60, n_inner=10, max_iter=10, init=C0, rng=0, precision="double",
                  device="cuda").fit(X)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-10)
    g = torch.nn.Parameter(torch.randn(1000, device="cuda"))
    g.grad = torch.randn(1000, device="cuda")
    ref = g.detach().cpu() - 0.1 * laplacian_smooth(g.grad.cpu(), 1.0)
    LSSGD([g], lr=0.1, sigma=1.0).step()
    torch.testing.assert_close(g.detach().cpu(), ref, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- CLI
def _invoke(*args):
    from phasekit.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(res, contains):
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in res.stderr
    assert contains in err, err


def test_cli_kmeans_writes_labels_and_centres(tmp_path):
    X, y = load_iris()
    f = tmp_path / "iris.npy"
    np.save(f, X)
    res = _invoke("kmeans", f, "-k", 3, "--method", "lloyd", "--n-init", 5, "--labels", tmp_path / "lab.txt",
                  "--centers", tmp_path / "c.csv", "-q")
    assert res.exit_code == 0, res.stderr
    assert "objective 0.2628" in res.stdout
    with np.load(tmp_path / "iris_kmeans.npz") as z:
        assert z["centers"].shape == (3, 4) and z["labels"].shape == (150,)
        assert float(z["objective"]) == pytest.approx(0.26284, abs=1e-4)
        assert '"method": "lloyd"' in str(z["config"])
        labels = z["labels"]
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "lab.txt", dtype=int), labels)
    assert np.loadtxt(tmp_path / "c.csv", delimiter=",").shape == (3, 4)
    # SBE from a CSV file with explicit initial centres, into a named result
    np.savetxt(tmp_path / "d.csv", X, delimiter=",")
    np.save(tmp_path / "c0.npy", X[[0, 1, 2]])
    res = _invoke("kmeans", tmp_path / "d.csv", "-k", 3, "--init-centers", tmp_path / "c0.npy", "-b", 60,
                  "--inner", 40, "-n", 10, "-o", tmp_path / "r.npz", "-q")
    assert res.exit_code == 0, res.stderr
    with np.load(tmp_path / "r.npz") as z:
        assert float(z["objective"]) < 0.275 and int(z["n_iter"]) == 10


def test_cli_kmeans_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(10))
    np.save(tmp_path / "x.npy", np.zeros((5, 2)))
    _one_line_error(_invoke("kmeans", tmp_path / "missing.npy", "-k", 2), "No such file")
    _one_line_error(_invoke("kmeans", tmp_path / "flat.npy", "-k", 2), "2-D")
    _one_line_error(_invoke("kmeans", tmp_path / "x.npy", "-k", 9), "n_clusters=9 > n_samples=5")
    _one_line_error(_invoke("kmeans", tmp_path / "x.npy", "-k", 0), "-k")
    _one_line_error(_invoke("kmeans", tmp_path / "x.npy", "-k", 2, "--method", "em"), "--method")
    _one_line_error(_invoke("kmeans", tmp_path / "x.npy", "-k", 2, "-o", tmp_path / "r.h5"), ".npz")
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    _one_line_error(_invoke("kmeans", tmp_path / "bad.npy", "-k", 2), "bad.npy")
    nan = np.ones((6, 2))
    nan[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    _one_line_error(_invoke("kmeans", tmp_path / "nan.npy", "-k", 2), "nan.npy: 1 NaN")
    assert not (tmp_path / "x_kmeans.npz").exists()
