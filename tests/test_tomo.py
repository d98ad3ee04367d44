"""Tomography: geometry, projectors (exactness, adjoints), RESIRE / SIRT / FBP / GENFIRE-lite,
metrics, simulation, files and the CLI.  Volumes <= 32^3 so that the file runs in well under a
minute on two cores."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from phasekit import tomo
from phasekit.cli.main import cli
from phasekit.core.errors import ConfigError, FileFormatError, InputError
from phasekit.operators.base import dot_test
from phasekit.tomo.geometry import (as_euler, euler_from_matrix, rotation_matrices, tilt_range,
                                    zyx_to_zyz, zyz_to_zyx)
from phasekit.tomo.metrics import (anisotropy, fsc, fsc_resolution, relative_error,
                                   rfactor_projections)
from phasekit.tomo.projectors import (FourierSliceProjector, HybridProjector, RealSpaceProjector,
                                      make_projector)

D64 = torch.float64


@pytest.fixture(scope="module")
def vesicle24():
    return tomo.make_phantom("vesicle", 24, 0)


@pytest.fixture(scope="module")
def vesicle16():
    return tomo.make_phantom("vesicle", 16, 0)


def _smooth(shape, rng, sigma=3.0):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(rng.standard_normal(shape), sigma)


# --------------------------------------------------------------------------- geometry
def test_euler_single_angle_expands_to_y_tilt():
    a = as_euler([10.0, -20.0])
    assert a.tolist() == [[0, 10, 0], [0, -20, 0]]
    R = rotation_matrices(30.0)[0]
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    assert np.allclose(R, [[c, 0, s], [0, 1, 0], [-s, 0, c]], atol=1e-15)


def test_euler_zyx_composition_order_and_round_trip():
    rng = np.random.default_rng(1)
    ang = np.stack([rng.uniform(-180, 180, 20), rng.uniform(-89, 89, 20),
                    rng.uniform(-180, 180, 20)], -1)
    R = rotation_matrices(ang)
    # R = Rz(phi) Ry(theta) Rx(psi): compose from single-axis matrices
    Rz = rotation_matrices(np.stack([ang[:, 0], 0 * ang[:, 0], 0 * ang[:, 0]], -1))
    Ry = rotation_matrices(np.stack([0 * ang[:, 0], ang[:, 1], 0 * ang[:, 0]], -1))
    Rx = rotation_matrices(np.stack([0 * ang[:, 0], 0 * ang[:, 0], ang[:, 2]], -1))
    assert np.abs(R - Rz @ Ry @ Rx).max() < 1e-14
    assert np.abs(euler_from_matrix(R) - ang).max() < 1e-9
    assert np.abs(np.einsum("nij,nkj->nik", R, R) - np.eye(3)).max() < 1e-14


def test_zyz_converter_same_rotation():
    rng = np.random.default_rng(2)
    zyz = np.stack([rng.uniform(-180, 180, 10), rng.uniform(1, 179, 10),
                    rng.uniform(-180, 180, 10)], -1)
    zyx = zyz_to_zyx(zyz)
    assert np.abs(rotation_matrices(zyx, "zyx") - rotation_matrices(zyz, "zyz")).max() < 1e-12
    assert np.abs(zyx_to_zyz(zyx) - zyz).max() < 1e-9


def test_tilt_range_and_bad_angles():
    t = tilt_range(-70, 70, 3.5)
    assert t.size == 41 and t[0] == -70 and abs(t[-1] - 70) < 1e-12
    assert tilt_range(-58, 65, 3).size == 42
    with pytest.raises(InputError, match="shape"):
        as_euler(np.zeros((4, 2)))
    with pytest.raises(InputError, match="NaN"):
        as_euler([0.0, np.nan])
    with pytest.raises(InputError, match="empty"):
        tilt_range(10, 0, 1)
    with pytest.raises(InputError, match="convention"):
        rotation_matrices([0.0], "xyz")


@pytest.mark.parametrize("ang", [(0, 90, 0), (0, 30, 0), (90, 0, 0), (0, 0, 90), (20, 40, -15)])
def test_point_source_lands_at_RT_r(ang):
    """A single voxel at r = (u, v, w) appears at (x, y) = (R^T r)[:2] (Eqn 3.4) for both
    projectors: the documented axis, sign and centre conventions."""
    N = 24
    r = np.array([3, -2, -7])
    x = np.zeros((N, N, N))
    x[tuple(r + N // 2)] = 1.0
    R = rotation_matrices([ang])[0]
    expect = (R.T @ r)[:2]
    for op in (FourierSliceProjector((N,) * 3, [ang], oversampling=3, dtype=D64),
               RealSpaceProjector((N,) * 3, [ang], dtype=D64)):
        p = op.forward(torch.as_tensor(x))[0].numpy()
        i = np.array(np.unravel_index(np.argmax(p), p.shape)) - N // 2
        assert np.all(np.abs(i - expect) <= 0.5 + 1e-9), (type(op).__name__, i, expect)
        # centroid of the 3x3 neighbourhood of the peak within a fraction of a pixel
        pk = i + N // 2
        win = np.clip(p[pk[0] - 1:pk[0] + 2, pk[1] - 1:pk[1] + 2], 0, None)
        g = np.stack(np.meshgrid(np.arange(-1, 2), np.arange(-1, 2), indexing="ij"), -1)
        cen = i + (g * win[..., None]).sum((0, 1)) / win.sum()
        assert np.abs(cen - expect).max() < 0.3


# --------------------------------------------------------------------------- projectors
def test_fst_zero_tilt_is_sum_along_z_noncubic():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.random((16, 18, 12)))
    for s in (2.0, 3.0, (2.0, 2.5, 4.0)):
        p = FourierSliceProjector(x.shape, [0.0], oversampling=s, dtype=D64).forward(x)
        assert (p[0] - x.sum(2)).abs().max().item() < 1e-10
    p = RealSpaceProjector(x.shape, [0.0], dtype=D64).forward(x)
    assert (p[0] - x.sum(2)).abs().max().item() < 1e-10


def test_backprojection_zero_tilt_replicates_along_z():
    rng = np.random.default_rng(0)
    r = torch.as_tensor(rng.random((1, 16, 18)))
    bp = RealSpaceProjector((16, 18, 10), [0.0], dtype=D64).backproject(r)
    assert (bp - r[0][:, :, None]).abs().max().item() < 1e-12


def test_ninety_degree_projection_is_sum_along_x():
    """theta = 90 about y: x_det = -w, so p[i, j] = sum_u O[u, j, c - (i - c)]."""
    N = 16
    c = N // 2
    rng = np.random.default_rng(3)
    x = rng.random((N, N, N))
    ref = np.zeros((N, N))
    for i in range(N):
        w = 2 * c - i
        if 0 <= w < N:
            ref[i] = x[:, :, w].sum(0)
    for op in (FourierSliceProjector(x.shape, [90.0], dtype=D64),
               RealSpaceProjector(x.shape, [90.0], dtype=D64)):
        p = op.forward(torch.as_tensor(x))[0].numpy()
        assert np.abs(p[1:] - ref[1:]).max() < 1e-9, type(op).__name__


@pytest.mark.parametrize("kind", ["realspace", "fst"])
def test_exact_pairs_pass_dot_test(kind):
    ang = np.array([[0, -60, 0], [0, 0, 0], [30, 45, -20], [-75, 10, 60], [90, 70, 0]], float)
    op = make_projector(kind, (12, 14, 10), ang, (12, 14), dtype=D64)
    assert dot_test(op, rng=0, n_trials=3) < 1e-12
    op32 = make_projector(kind, (12, 14, 10), ang, dtype=torch.float32)
    assert dot_test(op32, rng=1, n_trials=2) < 1e-4


def test_hybrid_pair_agrees_on_smooth_fields_not_on_noise():
    """Inner-product test of the hybrid pair (RESIRE's "hybrid", thesis §3.4): a few % on smooth, object-like fields
    (non-negative mean, compact support), tens of % on white noise."""
    rng = np.random.default_rng(4)
    N = 24
    X = np.stack(np.meshgrid(*[np.arange(N) - N // 2] * 3, indexing="ij"))
    ball = np.sqrt((X ** 2).sum(0)) < 10
    ang = np.arange(-60, 61, 20.0)
    H = HybridProjector((N,) * 3, ang, oversampling=3, dtype=D64)

    def mismatch(x, r):
        x, r = torch.as_tensor(x), torch.as_tensor(r)
        a = float((H.forward(x) * r).sum())
        b = float((x * H.adjoint(r)).sum())
        return abs(a - b) / abs(a)

    smooth = [mismatch((_smooth((N,) * 3, rng) + 0.3) * ball,
                       _smooth((len(ang), N, N), rng, (0, 3, 3)) + 0.3) for _ in range(2)]
    noise = [mismatch(rng.standard_normal((N,) * 3), rng.standard_normal((len(ang), N, N)))
             for _ in range(2)]
    assert max(smooth) < 0.05, smooth
    assert min(noise) > 0.2, noise  # the non-adjointness of the hybrid pair (docs/tomography.md)


def test_largest_eigenvalue_below_n_Nz():
    """lambda_max(sum P^T P) <= n N_z (thesis Eqn 3.7), tight within ~10 %."""
    N = 20
    ang = tilt_range(-70, 70, 10)
    op = RealSpaceProjector((N,) * 3, ang, dtype=D64)
    x = torch.ones((N,) * 3, dtype=D64)
    for _ in range(30):
        y = op.backproject(op.forward(x))
        lam = float(y.norm() / x.norm())
        x = y / y.norm()
    bound = len(ang) * N
    assert lam <= bound
    assert lam > 0.85 * bound


def test_projector_bad_inputs():
    with pytest.raises(InputError, match="volume shape"):
        RealSpaceProjector((8, 8), [0.0])
    with pytest.raises(ConfigError, match="oversampling"):
        FourierSliceProjector((8, 8, 8), [0.0], oversampling=0.5)
    op = RealSpaceProjector((8, 8, 8), [0.0, 10.0])
    with pytest.raises(InputError, match="projection stack"):
        op.backproject(torch.zeros(3, 8, 8))
    with pytest.raises(ConfigError, match="unknown projector"):
        make_projector("cone", (8, 8, 8), [0.0])


# --------------------------------------------------------------------------- algorithms
def _fst_data(truth, ang, oversampling=2):
    return FourierSliceProjector(truth.shape, ang, oversampling=oversampling).forward(
        torch.as_tensor(truth)).numpy()


def test_resire_noiseless_full_range_recovers():
    """Noiseless, full range (-90:6:88, 30 projections), smooth vesicle 16^3: relative error
    < 3 % after 60 iterations (the sharp-edged vesicle plateaus near 6.5 % because the k-space
    corners outside the Nyquist sphere are never measured)."""
    from scipy.ndimage import gaussian_filter

    v = gaussian_filter(tomo.make_phantom("vesicle", 16, 0), 1.0).astype(np.float32)
    ang = tilt_range(-90, 88, 6)
    b = _fst_data(v, ang)
    res = tomo.reconstruct(b, ang, algorithm="resire", n_iter=60, progress=False)
    err = relative_error(res.image, v)
    assert err < 0.03, err
    assert res.history["R_F"][-1] < 3e-3
    assert res.history["R_F"][-1] < 0.1 * res.history["R_F"][5]
    assert res.rfactor == pytest.approx(res.history["R_F"][-1], rel=1e-4)


def test_resire_monotone_for_t_le_1_without_constraints(vesicle16):
    ang = tilt_range(-60, 60, 10)
    b = _fst_data(vesicle16, ang)
    prob = tomo.TomoProblem.from_arrays(b, ang, positive=False)
    from phasekit.tomo.resire import RESIRE

    alg = RESIRE(prob, 20, step=1.0, projector="fst")
    alg.initialize(prob.random_start(None))
    eps = []
    for k in range(20):
        r = prob.fst.forward(alg.x) - prob.projections
        eps.append(0.5 * float((r.double() ** 2).sum()))
        alg.step(k)
    assert all(e1 <= e0 * (1 + 1e-5) for e0, e1 in zip(eps, eps[1:]))
    assert eps[-1] < 0.1 * eps[0]


def test_resire_large_step_warns_and_diverges(vesicle16, caplog):
    ang = tilt_range(-60, 60, 10)
    b = _fst_data(vesicle16, ang)
    with caplog.at_level(logging.WARNING, logger="phasekit"):
        res = tomo.reconstruct(b, ang, algorithm="resire", n_iter=40, positive=False,
                               step=2.6, projector="realspace", progress=False)
    assert "stability limit" in caplog.text
    rf = res.history["R_F"]
    assert rf[-1] > rf[20] > 0  # the low-frequency mode grows


def test_resire_beats_fbp_with_missing_wedge_and_discrepancy_stop(vesicle16):
    ang = tilt_range(-60, 60, 4)
    rng = np.random.default_rng(5)
    clean = _fst_data(vesicle16, ang)
    from phasekit.tomo.simulate import add_noise

    b = add_noise(clean, rng, gaussian=0.03)
    rnoise = rfactor_projections(torch.as_tensor(b), torch.as_tensor(clean))
    r_res = tomo.reconstruct(b, ang, algorithm="resire", n_iter=100, progress=False)
    r_fbp = tomo.reconstruct(b, ang, algorithm="fbp")
    e_res, e_fbp = relative_error(r_res.image, vesicle16), relative_error(r_fbp.image, vesicle16)
    assert e_res < 0.30 and e_res < 0.7 * e_fbp, (e_res, e_fbp)
    assert r_res.rfactor < r_fbp.rfactor
    stop = tomo.reconstruct(b, ang, algorithm="resire", n_iter=100, stop_rf=1.2 * rnoise,
                            progress=False)
    assert "discrepancy" in stop.message
    assert stop.n_iter < 100 and stop.rfactor <= 1.2 * rnoise + 1e-6


def test_sirt_and_genfire_recover(vesicle16):
    ang = tilt_range(-90, 88, 6)
    b = _fst_data(vesicle16, ang)
    r_s = tomo.reconstruct(b, ang, algorithm="sirt", n_iter=50, progress=False)
    r_np = tomo.reconstruct(b, ang, algorithm="sirt", n_iter=50, positive=False, progress=False)
    r_g = tomo.reconstruct(b, ang, algorithm="genfire", n_iter=50, progress=False)
    e_s, e_np, e_g = (relative_error(r.image, vesicle16) for r in (r_s, r_np, r_g))
    assert e_s < 0.2 and e_np < 0.25 and e_g < 0.2, (e_s, e_np, e_g)
    assert r_np.image.min() < 0 <= r_s.image.min()
    assert "R_free" in r_g.history and 0 < r_g.history["R_free"][-1] < 0.5


@pytest.mark.parametrize("shape,oversampling,dtype", [((16, 16, 16), 2.0, torch.float32),
                                                    ((15, 16, 13), 1.6, torch.float64)])
def test_genfire_half_spectrum_iteration_is_the_literal_one(shape, oversampling, dtype):
    """GENFIRE's iteration on the wrapped half spectrum against the literal form of the module
    docstring (complex FFT pair of the centred padded grid, fftshifts, ``Re IFFT``, R_free over the
    full grid), even and odd padded sizes, float32 and float64; a checkpoint of the centred
    iterate continues the run."""
    from phasekit.core.rng import make_rng
    from phasekit.tomo.genfire import GENFIRE, _hermitian_flip, grid_fourier
    from phasekit.tomo.problem import TomoProblem

    rng = np.random.default_rng(1)
    truth = rng.random(shape)
    ang = tilt_range(-70, 70, 10)
    b = FourierSliceProjector(shape, ang).forward(torch.as_tensor(truth)).numpy()
    prob = TomoProblem.from_arrays(b, ang, vol_shape=shape, precision="double" if dtype == torch.float64 else "single")
    alg = GENFIRE(prob, 6, oversampling=oversampling, rfree_fraction=0.1, rfree_seed=3)
    x0 = torch.as_tensor(rng.random(shape), dtype=dtype)
    alg.initialize(x0)
    # the literal form
    Fm, meas, M = grid_fourier(prob, oversampling, 0.7)
    r = torch.as_tensor(make_rng(3).random(meas.shape) < 0.1)
    free = (r | _hermitian_flip(r)) & meas
    meas = meas & ~free
    assert M == alg.M
    box = torch.zeros(M, dtype=torch.bool)
    box[alg.sl] = prob.support
    x = alg.x.clone()
    outside = x.clone()
    outside[alg.sl] = 0
    assert torch.equal(x[alg.sl], x0) and not outside.any()

    def shifted_fft(y):
        return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(y)))

    def constrain(y):
        return torch.where(box, y.clamp_min(0), torch.zeros((), dtype=y.dtype))

    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for k in range(6):
        F = shifted_fft(constrain(x))
        F = torch.where(meas, Fm, F)
        x = torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(F))).real
        alg.step(k)
        scale = float(x.abs().max())
        assert float((alg.x - x).abs().max()) < tol * scale, k
        Fk = shifted_fft(constrain(x))
        want = float((Fk[free].abs() - Fm[free].abs()).abs().sum() / Fm[free].abs().sum())
        got = alg.metrics()
        assert got["R_free"] == pytest.approx(want, rel=10 * tol)
        est = constrain(x)[alg.sl]
        assert torch.allclose(alg.estimate(), est, rtol=0, atol=tol * scale)
    # a checkpoint (the centred iterate) continues the run as the uninterrupted one
    state = {k: v.clone() for k, v in alg.state_dict().items()}
    alg.step(6)
    again = GENFIRE(prob, 6, oversampling=oversampling, rfree_fraction=0.1, rfree_seed=3)
    again.load_state_dict(state)
    again.step(6)
    assert torch.equal(again.x, alg.x)


def test_fbp_full_range_scale_and_euler_rejected(vesicle24):
    ang = tilt_range(-90, 89, 1.5)
    b = _fst_data(vesicle24, ang)
    r = tomo.reconstruct(b, ang, algorithm="fbp", filter="ramp")
    assert relative_error(r.image, vesicle24) < 0.25
    assert r.image.mean() == pytest.approx(vesicle24.mean(), rel=0.05)
    rh = tomo.reconstruct(b, ang, algorithm="fbp", filter="hann")
    assert np.abs(rh.image - r.image).max() > 0
    # uniform pi/n weights (ASTRA, scikit-image) vs angular spacing: equal on a full range,
    # 180/range apart on a limited range
    rs = tomo.reconstruct(b, ang, algorithm="fbp", angle_weights="spacing")
    assert np.allclose(rs.image, r.image, rtol=1e-4, atol=1e-5)
    sub = np.abs(ang) <= 50
    ru = tomo.reconstruct(b[sub], ang[sub], algorithm="fbp").image
    rsp = tomo.reconstruct(b[sub], ang[sub], algorithm="fbp", angle_weights="spacing").image
    assert ru.sum() / rsp.sum() == pytest.approx(180 / (np.ptp(ang[sub]) + 1.5), rel=1e-3)
    with pytest.raises(ConfigError, match="single y-axis"):
        tomo.reconstruct(b[:2], [[10, 20, 0], [0, 30, 0]], algorithm="fbp")
    with pytest.raises(ConfigError, match="invalid parameter .filter"):
        tomo.reconstruct(b, ang, algorithm="fbp", filter="box")


def test_masked_projections_help_and_dual_axis():
    truth = tomo.make_phantom("vesicle", 16, 1)
    ts = tomo.simulate_tilt_series("vesicle", 16, tilt_range(-60, 60, 6), projector="fst",
                                   blocked=8, blocked_fraction=0.3, rng=1)
    masked = tomo.reconstruct(ts, algorithm="resire", n_iter=50, progress=False)
    unmasked = tomo.reconstruct(ts.projections, ts.angles, algorithm="resire", n_iter=50,
                                progress=False)
    e_m, e_u = relative_error(masked.image, ts.truth), relative_error(unmasked.image, ts.truth)
    assert e_m < e_u, (e_m, e_u)
    single = tomo.simulate_tilt_series("vesicle", 16, tilt_range(-60, 60, 6), projector="fst",
                                       rng=1)
    dual = tomo.simulate_tilt_series("vesicle", 16, tomo.dual_axis(tilt_range(-60, 60, 6)),
                                     projector="fst", rng=1)
    e1 = relative_error(tomo.reconstruct(single, n_iter=50, progress=False).image, single.truth)
    e2 = relative_error(tomo.reconstruct(dual, n_iter=50, progress=False).image, dual.truth)
    assert e2 < e1, (e1, e2)
    assert truth.shape == (16, 16, 16)


def test_extended_film_mode():
    """Thin film wider than the field of view: enlarged lateral volume, residuals on the
    detector only, slab-path step normaliser; the central region is recovered."""
    ts = tomo.simulate_tilt_series("film", 16, tilt_range(-50, 50, 10), projector="fst",
                                   thickness=6, rng=2)
    assert ts.vol_shape[0] > 16 and ts.vol_shape[2] == 6
    res = tomo.reconstruct(ts, algorithm="resire", n_iter=50, progress=False)
    assert res.image.shape == ts.vol_shape
    assert res.rfactor < 0.05
    c0, c1 = ts.vol_shape[0] // 2, ts.vol_shape[1] // 2
    core = (slice(c0 - 5, c0 + 5), slice(c1 - 5, c1 + 5), slice(None))
    e = np.linalg.norm(res.image[core] - ts.truth[core]) / np.linalg.norm(ts.truth[core])
    assert e < 0.35, e


def test_problem_bad_inputs():
    b = np.ones((3, 8, 8), np.float32)  # all-zero projections are refused first (tests/test_validation.py)
    with pytest.raises(InputError, match="2 angles for 3"):
        tomo.TomoProblem.from_arrays(b, [0.0, 1.0])
    with pytest.raises(InputError, match="NaN"):
        tomo.TomoProblem.from_arrays(np.full((1, 8, 8), np.nan), [0.0])
    with pytest.raises(InputError, match="mask shape"):
        tomo.TomoProblem.from_arrays(b, [0, 1, 2.0], mask=np.ones((3, 8, 7)))
    with pytest.raises(InputError, match="support shape"):
        tomo.TomoProblem.from_arrays(b, [0, 1, 2.0], support=np.ones((8, 8, 7), bool))
    with pytest.raises(ConfigError, match="invalid parameter 'step'"):
        tomo.reconstruct(b, [0, 1, 2.0], algorithm="resire", n_iter=2, step=0.0)
    with pytest.raises(ConfigError, match="CDI .* algorithm"):
        tomo.reconstruct(b, [0, 1, 2.0], algorithm="hio", n_iter=2)
    with pytest.raises(ConfigError, match="not accepted"):
        tomo.reconstruct(b, [0, 1, 2.0], algorithm="sirt", n_iter=2, step=1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(vesicle24):
    ang = tilt_range(-60, 60, 10)
    b = _fst_data(vesicle24, ang)
    c = tomo.reconstruct(b, ang, n_iter=20, progress=False)
    g = tomo.reconstruct(b, ang, n_iter=20, progress=False, device="cuda")
    assert np.abs(c.image - g.image).max() < 1e-3 * np.abs(c.image).max()


# --------------------------------------------------------------------------- metrics
def test_fsc_and_anisotropy(vesicle24):
    f, c = fsc(vesicle24, vesicle24)
    assert f.size == 12 and np.allclose(c, 1.0)
    assert f[0] == pytest.approx(1 / 24) and f[-1] == pytest.approx(1 - 1 / 24)
    rng = np.random.default_rng(0)
    noisy = vesicle24 + 0.3 * rng.standard_normal(vesicle24.shape)
    f, c = fsc(noisy, vesicle24)
    assert c[0] > c[-1]
    r5 = fsc_resolution(f, c, 0.5)
    assert 0 < r5 < 1
    # a missing-wedge reconstruction is worse along z than along x
    ang = tilt_range(-50, 50, 5)
    b = _fst_data(vesicle24, ang)
    rec = tomo.reconstruct(b, ang, algorithm="fbp").image
    an = anisotropy(rec, vesicle24)
    assert an["ratio"] < 1.0 and an["fsc_z"] < an["fsc_x"]
    with pytest.raises(InputError, match="shape"):
        fsc(vesicle24, vesicle24[:-1])


def test_rfactor_definition_is_mean_of_per_projection_ratios():
    b = torch.tensor([[[1.0, 1.0]], [[10.0, 10.0]]])
    calc = torch.tensor([[[1.5, 1.0]], [[10.0, 10.0]]])
    assert rfactor_projections(calc, b) == pytest.approx(0.5 * (0.5 / 2 + 0.0))


# --------------------------------------------------------------------------- files and CLI
def test_tilt_series_file_round_trip_and_zyz(tmp_path):
    import h5py

    ts = tomo.simulate_tilt_series("cell", 16, tilt_range(-60, 60, 30), projector="fst",
                                   noise=0.01, blocked=1, rng=3)
    p = tomo.write_tilt_series(tmp_path / "s.h5", ts.projections, ts.angles, mask=ts.mask,
                               truth=ts.truth, params=ts.params)
    assert tomo.is_tomo_file(p)
    back = tomo.read_tilt_series(p)
    assert np.array_equal(back.projections, ts.projections)
    assert np.array_equal(back.angles, ts.angles) and np.array_equal(back.mask, ts.mask)
    assert np.array_equal(back.truth, ts.truth) and back.params["phantom"] == "cell"
    zyz = np.array([[30.0, 40.0, -20.0]])
    with h5py.File(tmp_path / "z.h5", "w") as f:
        g = f.create_group("tomo")
        g.attrs["convention"] = "ZYZ"
        g["projections"] = np.zeros((1, 8, 8), np.float32)
        g["angles"] = zyz
    z = tomo.read_tilt_series(tmp_path / "z.h5")
    assert np.allclose(rotation_matrices(z.angles), rotation_matrices(zyz, "zyz"))
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    assert not tomo.is_tomo_file(tmp_path / "bad.h5")
    with pytest.raises(FileFormatError):
        tomo.read_tilt_series(tmp_path / "bad.h5")


def test_cli_simulate_and_reconstruct_tomo(tmp_path):
    runner = CliRunner()
    s = tmp_path / "series.h5"
    r = runner.invoke(cli, ["simulate", "tomo", "--size", "16", "--tilts=-60:10:60",
                            "--noise", "0.01", "--projector", "fst", "-o", str(s)])
    assert r.exit_code == 0, r.output
    assert "13 projections" in r.output and s.exists()
    r = runner.invoke(cli, ["reconstruct", str(s), "--algorithm", "resire", "--iterations", "40",
                            "-q"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "series_resire.h5"
    assert out.exists() and out.with_suffix(".png").exists()
    res = tomo.read_tomo_result(out)
    assert res["volume"].shape == (16, 16, 16)
    assert len(res["history"]["R_F"]) == 40 and res["history"]["R_F"][-1] < 0.1
    assert res["metrics"]["relative_error"] < 0.5 and "fsc" in res
    r = runner.invoke(cli, ["reconstruct", str(s), "-a", "fbp", "-p", "filter=hann",
                            "--no-figure", "-o", str(tmp_path / "f.h5")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["simulate", "tomo", "--size", "16", "--tilts=-60:10:60",
                            "--geometry", "dual", "-o", str(tmp_path / "d.h5")])
    assert r.exit_code == 0 and "26 projections" in r.output


@pytest.mark.parametrize("alg", ["resire", "genfire"])
def test_cli_tomo_checkpoint_and_resume(tmp_path, monkeypatch, alg):
    """A tomography run interrupted after its checkpoint at iteration 10 and resumed with
    ``--resume`` runs only the missing iterations and writes the uninterrupted result to the bit;
    the checkpoint is an output (it may not be the input or the result)."""
    from phasekit.engine import get_algorithm
    from phasekit.tomo.io import read_tomo_result

    runner = CliRunner()
    s = tmp_path / "s.h5"
    assert runner.invoke(cli, ["simulate", "tomo", "--size", "16", "--tilts=-60:10:60",
                               "-o", str(s)]).exit_code == 0
    opts = ["-a", alg, "-n", "24", "-q", "--no-figure"]
    full = tmp_path / "full.h5"
    r = runner.invoke(cli, ["reconstruct", str(s), *opts, "-o", str(full)])
    assert r.exit_code == 0, r.output
    ck = tmp_path / "run.ckpt"
    cls = get_algorithm(alg, "tomo").cls
    orig = cls.step

    def crash(self, k):
        if k == 13:
            raise KeyboardInterrupt
        return orig(self, k)

    monkeypatch.setattr(cls, "step", crash)
    r = runner.invoke(cli, ["reconstruct", str(s), *opts, "--checkpoint", str(ck), "--checkpoint-every", "5",
                            "-o", str(tmp_path / "crashed.h5")])
    assert r.exit_code == 130 and r.output.strip() == "error: interrupted", r.output
    assert ck.exists() and not (tmp_path / "crashed.h5").exists()
    steps = []

    def counting(self, k):
        steps.append(k)
        return orig(self, k)

    monkeypatch.setattr(cls, "step", counting)
    resumed = tmp_path / "resumed.h5"
    r = runner.invoke(cli, ["reconstruct", str(s), *opts, "--resume", str(ck), "-o", str(resumed)])
    assert r.exit_code == 0, r.output
    assert steps == list(range(10, 24))  # the checkpoint at 10, then the 14 missing iterations
    a, b = read_tomo_result(full), read_tomo_result(resumed)
    np.testing.assert_array_equal(a["volume"], b["volume"])
    np.testing.assert_array_equal(a["history"]["R_F"], b["history"]["R_F"])
    r = runner.invoke(cli, ["reconstruct", str(s), *opts, "--checkpoint", str(s), "-o", str(tmp_path / "x.h5")])
    assert r.exit_code == 2 and "error:" in r.output


@pytest.mark.parametrize("args,msg", [
    (["-a", "hio", "-n", "2"], "this is tomography data"),
    (["--schedule", "HIO:2"], "not supported for tomography"),
    (["-n", "2", "-p", "step=-1"], "invalid parameter 'step'"),
    (["-a", "sirt", "-n", "2", "-p", "filter=hann"], "fbp only, not of sirt"),
    (["-a", "fbp", "-p", "angle_weights=cubic"], "invalid parameter 'angle_weights'"),
])
def test_cli_tomo_errors_are_one_line(tmp_path, args, msg):
    runner = CliRunner()
    s = tmp_path / "s.h5"
    tomo.write_tilt_series(s, np.ones((2, 8, 8), np.float32), [0.0, 30.0])
    r = runner.invoke(cli, ["reconstruct", str(s), *args])
    assert r.exit_code == 2
    err = r.output.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and msg in err[0], r.output


def test_cli_tomo_nan_projection_is_one_line(tmp_path):
    b = np.zeros((2, 8, 8), np.float32)
    b[1, 3, 3] = np.nan
    s = tmp_path / "nan.h5"
    tomo.write_tilt_series(s, b, [0.0, 30.0])
    r = CliRunner().invoke(cli, ["reconstruct", str(s), "-n", "2"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"error: {s}: 1 NaN or infinite value(s) in /tomo/projections"], r.output


def test_cli_simulate_tomo_bad_tilts(tmp_path):
    r = CliRunner().invoke(cli, ["simulate", "tomo", "--tilts", "a:b", "-o", str(tmp_path / "x.h5")])
    assert r.exit_code == 2 and "START:STEP:STOP" in r.output


def test_tiff_stack_round_trip_and_cli(tmp_path):
    pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    b = rng.random((5, 12, 10)).astype(np.float32)
    th = np.array([-40.0, -20, 0, 20, 40])
    p = tomo.io.write_tiff_stack(tmp_path / "s.tif", b, th)
    assert (tmp_path / "s.rawtlt").exists() and tomo.is_tomo_file(p)
    back = tomo.read_tilt_series(p)
    assert np.array_equal(back.projections, b) and np.allclose(back.angles[:, 1], th)
    with pytest.raises(InputError, match="single-axis"):
        tomo.io.write_tiff_stack(tmp_path / "e.tif", b, np.ones((5, 3)))
    r = CliRunner().invoke(cli, ["reconstruct", str(p), "-n", "3", "--no-figure", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s_resire.h5").exists()
