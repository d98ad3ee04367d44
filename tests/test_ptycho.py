"""Ptychography: operators (adjoints, T^dagger T = I), scans, probes, simulation, the engines'
exact equivalences (derived from the CRISP paper's eqs. (6)-(7) and (19)-(21)) and recovery of a known object and probe."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from phasekit.core.errors import ConfigError, InputError
from phasekit.operators import dot_test
from phasekit.ptycho import (PtychoProblem, fermat_spiral, object_shape_for, raster_scan,
                             reconstruct, simulate_ptycho, particle_film, siemens_star)
from phasekit.ptycho import engines as E
from phasekit.ptycho.metrics import (band_mean, dispersion, object_error, object_frc,
                                     probe_correlation)
from phasekit.ptycho.operators import (ObjectPatches, ProbeShift, PtychoObjectOperator,
                                       PtychoProbeOperator, shift_probe, shift_ramps,
                                       split_positions)
from phasekit.ptycho.probe import (bl24xu, bump, fzp_probe, gaussian, scale_to_dose,
                                   vacuum_origin_intensity, circular_aperture)
from phasekit.engine import available, get_algorithm

M = 32


@pytest.fixture(scope="module")
def data():
    """A 5x5 raster (step 6 px) over a 58x58 random complex object, 32x32 zone-plate probe."""
    pos = raster_scan(5, step=6, margin=1)
    shape = object_shape_for(pos, (M, M), margin=1)
    g = np.random.default_rng(1)
    obj = np.exp(1j * 2 * gaussian_filter(g.standard_normal(shape), 1.5)) * \
        (0.7 + 0.3 * gaussian_filter(g.random(shape), 1))
    probe = fzp_probe(M, 16, 12)
    sim = simulate_ptycho(obj, probe, pos, dose=None)
    prob = PtychoProblem.from_arrays(sim.intensities, pos, probe=sim.probe, obj=sim.obj,
                                     probe_energy_match=False, precision="double")
    ill = prob.illumination(torch.as_tensor(sim.probe, dtype=torch.complex128)).numpy()
    return sim, pos, ill


# ----------------------------------------------------------------------------- operators
def test_operator_adjoints():
    pos = np.array([[0.0, 0.0], [3.25, 1.5], [7.0, 6.75], [2.5, 8.0]])
    shape = object_shape_for(pos, (16, 16))
    g = np.random.default_rng(0)
    probe = torch.as_tensor(g.standard_normal((16, 16)) + 1j * g.standard_normal((16, 16)))
    obj = torch.as_tensor(g.standard_normal(shape) + 1j * g.standard_normal(shape))
    for op in (ObjectPatches(shape, (16, 16), pos, dtype=torch.complex128),
               ProbeShift((16, 16), (0.3, -0.7), dtype=torch.complex128),
               PtychoObjectOperator(probe, shape, pos),
               PtychoProbeOperator(obj, (16, 16), pos)):
        assert dot_test(op, rng=1) < 1e-12, type(op).__name__


def test_shift_inverse_and_direction():
    g = np.random.default_rng(2)
    p = torch.as_tensor(g.standard_normal((12, 10)) + 1j * g.standard_normal((12, 10)))
    ry, rx = shift_ramps(np.array([[0.37, 0.81]]), (12, 10), dtype=torch.complex128)
    back = shift_probe(shift_probe(p, ry[0], rx[0]), ry[0], rx[0], inverse=True)
    assert torch.allclose(back, p, atol=1e-12)                # T^dagger T = I
    # an integer shift by the ramp is np.roll (+delta moves the content forward)
    ry, rx = shift_ramps(np.array([[2.0, 3.0]]), (12, 10), dtype=torch.complex128)
    rolled = np.roll(p.numpy(), (2, 3), axis=(0, 1))
    assert np.allclose(shift_probe(p, ry[0], rx[0]).numpy(), rolled, atol=1e-12)
    ints, frac = split_positions([[2.9999999999, 1.5]])
    assert ints.tolist() == [[3, 1]] and frac.tolist() == [[0.0, 0.5]]


def test_patches_are_views():
    obj = torch.zeros(8, 8, dtype=torch.complex64)
    from phasekit.ptycho.operators import crop
    crop(obj, 2, 3, (2, 2)).add_(1)
    assert float(obj.real.sum()) == 4 and float(obj[2, 3].real) == 1


# ----------------------------------------------------------------------------- scans, probes
def test_scans():
    r = raster_scan(3, 4, step=5.0)
    assert r.shape == (12, 2) and r.min() == 0 and r[:, 0].max() == 10 and r[:, 1].max() == 15
    r2 = raster_scan(13, overlap=0.875, probe_diameter=200)          # the paper's 25 px steps
    assert np.allclose(np.diff(np.unique(r2[:, 1])), 25.0)
    j1 = raster_scan(4, step=5, jitter=1.0, rng=3)
    j2 = raster_scan(4, step=5, jitter=1.0, rng=3)
    assert np.array_equal(j1, j2) and not np.allclose(j1, raster_scan(4, step=5))
    f = fermat_spiral(100, step=4.0)
    assert f.shape == (100, 2) and f.min() == 0
    # density: one point per step^2 -> the disc of radius c sqrt(N) holds N points
    span = f.max(axis=0) - f.min(axis=0)
    assert 0.8 * 2 * 4 / np.sqrt(np.pi) * 10 < span.mean() < 1.2 * 2 * 4 / np.sqrt(np.pi) * 10
    assert object_shape_for([[0, 0], [3.5, 2]], (8, 8)) == (12, 10)
    with pytest.raises(ConfigError):
        raster_scan(3, step=1, overlap=0.5, probe_diameter=3)
    with pytest.raises(ConfigError):
        raster_scan(3, overlap=1.2, probe_diameter=3)


def test_probes_and_bl24xu():
    geo = bl24xu(470)
    assert abs(geo.pixel_size - 19.79e-9) < 0.05e-9                 # lambda z / (M p)
    assert 195 < geo.beam_diameter_px < 210                          # 4 um beam ~ 202 px
    assert 85 < geo.pupil_diameter_px < 95                           # bright-field disc ~ 90 px
    p = fzp_probe(64, 30, 20)
    assert p.shape == (64, 64) and np.iscomplexobj(p)
    # the probe's spectrum lies inside the pupil
    F = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(p)))
    r = np.hypot(*np.meshgrid(np.arange(64) - 32, np.arange(64) - 32, indexing="ij"))
    assert np.sum(np.abs(F[r > 11]) ** 2) < 1e-3 * np.sum(np.abs(F) ** 2)
    d = scale_to_dose(p, 1e10)
    assert abs(vacuum_origin_intensity(d) / 1e10 - 1) < 1e-9
    gp = gaussian(33, 10.0)
    assert abs(abs(gp[16, 21]) - 0.5) < 0.02                         # FWHM 10 px of the amplitude
    # defocus keeps the energy (unitary propagation)
    a = circular_aperture(32, 12)
    b = circular_aperture(32, 12, defocus=1e-6, wavelength=1.55e-10, pixel_size=20e-9)
    assert abs(np.sum(np.abs(a) ** 2) - np.sum(np.abs(b) ** 2)) < 1e-9 * np.sum(np.abs(a) ** 2)
    assert not np.allclose(a, b)
    assert bump(32)[16, 16] == 1 and bump(32)[16, 31] == 0


def test_phantoms():
    f = particle_film(64, rng=0)
    assert f.shape == (64, 64) and np.abs(f).min() > 0.95 and np.angle(f).min() < -0.05
    assert np.angle(f).max() <= 1e-12
    s = siemens_star(64, amplitude=0.6, phase=-0.8)
    assert abs(np.abs(s).min() - 0.6) < 0.02 and abs(np.abs(s).max() - 1) < 1e-9


def test_simulation_dose_and_noise(data):
    sim, pos, _ = data
    vac = np.ones((40, 40))
    s = simulate_ptycho(vac, fzp_probe(16, 8, 6), raster_scan(2, step=4), dose=1e6, rng=0)
    c = 8
    assert abs(s.intensities[:, c, c].mean() / 1e6 - 1) < 0.01      # dose = counts at the origin
    assert np.all(s.intensities == np.round(s.intensities))         # Poisson counts
    s2 = simulate_ptycho(vac, fzp_probe(16, 8, 6), raster_scan(2, step=4), dose=1e6, rng=0)
    assert np.array_equal(s.intensities, s2.intensities)
    with pytest.raises(InputError):
        simulate_ptycho(np.ones((10, 10)), fzp_probe(16, 8, 6), raster_scan(2, step=4))


# ----------------------------------------------------------------------------- problem
def test_truth_has_zero_rfactor_and_cost(data):
    sim, pos, _ = data
    prob = PtychoProblem.from_arrays(sim.intensities, pos, probe=sim.probe, obj=sim.obj,
                                     probe_energy_match=False, precision="double")
    x = prob.random_start()
    e, rf = prob.costs_and_rfactor(x)
    assert rf < 1e-6 and float(e.max()) < 1e-6 * float(sim.intensities.sum() / len(pos))
    # sub-pixel positions: noise-free truth also fits exactly
    p2 = pos + np.array([0.3, 0.6])
    s2 = simulate_ptycho(sim.obj, sim.probe, p2, dose=None)
    pr2 = PtychoProblem.from_arrays(s2.intensities, p2, probe=sim.probe, obj=sim.obj,
                                    probe_energy_match=False, precision="double")
    assert pr2.rfactor(pr2.random_start()) < 1e-6
    # unmeasured pixels are free: garbage there changes nothing, and the projection keeps the model
    m = np.ones((M, M), bool)
    m[M // 2, :4] = False
    bad = sim.intensities.copy()
    bad[:, M // 2, :4] = 1e9
    pr3 = PtychoProblem.from_arrays(bad, pos, probe=sim.probe, obj=sim.obj, mask=m,
                                    probe_energy_match=False, precision="double")
    assert pr3.rfactor(pr3.random_start()) < 1e-6
    a = _run(pr3, E.EPIE, 1)
    assert torch.allclose(a.x, pr3.random_start(), atol=1e-6)  # the truth is a fixed point (float32 data)


def test_problem_validation(data):
    sim, pos, _ = data
    with pytest.raises(InputError, match="positions shape"):
        PtychoProblem.from_arrays(sim.intensities, pos[:3])
    with pytest.raises(InputError, match="outside"):
        PtychoProblem.from_arrays(sim.intensities, pos, object_shape=(40, 40))
    with pytest.raises(InputError, match="negative"):
        PtychoProblem.from_arrays(-sim.intensities, pos)
    with pytest.raises(InputError, match="mask shape"):
        PtychoProblem.from_arrays(sim.intensities, pos, mask=np.ones((3, 3), bool))
    with pytest.raises(ConfigError):
        PtychoProblem.from_arrays(sim.intensities, pos, fft_norm="forward")


def _run(prob, cls, n_iter, fused=None, **kw):
    a = cls(prob, n_iter, **kw)
    a.bind_rng(np.random.default_rng(5))
    a.initialize(prob.random_start())
    a.fused = fused
    for k in range(n_iter):
        a.step(k)
    return a


def _problem(sim, pos, **kw):
    return PtychoProblem.from_arrays(sim.intensities, pos, object_shape=sim.obj.shape,
                                     precision="double", **kw)


def test_crisp_equals_epie(data):
    """kappa = 1, xi = 0, nu = (1, 1), lambda = alpha: CRISP is ePIE exactly (eqs. (19)-(21) vs (6)-(7))."""
    sim, pos, _ = data
    prob = _problem(sim, pos)
    a = _run(prob, E.EPIE, 4, alpha_o=0.8, alpha_p=0.4)
    b = _run(prob, E.CRISP, 4, lambda_o=0.8, lambda_p=0.4, kappa=1.0, xi=0.0, clip="epie")
    assert torch.allclose(a.x, b.x, rtol=0, atol=1e-10 * float(a.x.abs().max()))
    assert np.allclose(b._last["step_o_median"], 0.8) and np.allclose(b._last["step_p_max"], 0.4)
    # kappa = 1/2 is not ePIE (alpha_eff = lambda min(1, 1/(2 rho)))
    c = _run(prob, E.CRISP, 4, lambda_o=0.8, lambda_p=0.4, kappa=0.5, xi=0.0, clip="epie")
    assert not torch.allclose(a.x, c.x, atol=1e-6)


def test_rpie_gamma_one_equals_epie(data):
    sim, pos, _ = data
    prob = _problem(sim, pos)
    a = _run(prob, E.EPIE, 3, alpha_o=1.0, alpha_p=1.0)
    b = _run(prob, E.RPIE, 3, gamma_o=1.0, gamma_p=1.0)
    assert torch.allclose(a.x, b.x, rtol=0, atol=1e-10 * float(a.x.abs().max()))


def test_fixed_xi_above_every_cost_makes_no_update(data):
    sim, pos, _ = data
    prob = _problem(sim, pos)
    e, _ = prob.costs_and_rfactor(prob.random_start())
    a = _run(prob, E.CRISP, 2, xi=10 * float(e.max()) + 1e3, clip="none")
    assert torch.equal(a.x, prob.random_start())
    assert a._last["frac_no_update"] == 1.0 and a._last["step_o_max"] == 0.0


def test_fused_kernels_match_reference(data):
    sim, pos, _ = data
    prob = _problem(sim, pos)
    p2 = pos + np.array([0.25, 0.5])                                  # sub-pixel path as well
    s2 = simulate_ptycho(sim.obj, sim.probe, p2, dose=None)
    prob2 = _problem(s2, p2)
    for pr in (prob, prob2):
        for cls, kw in ((E.EPIE, {}), (E.RPIE, {}), (E.CRISP, {"clip": "scale"}), (E.MPIE, {})):
            a = _run(pr, cls, 2, fused=True, **kw)
            b = _run(pr, cls, 2, fused=False, **kw)
            assert torch.allclose(a.x, b.x, atol=1e-8 * float(a.x.abs().max())), cls.__name__
            assert abs(a._last["R_F"] - b._last["R_F"]) < 1e-9


def test_crisp_auto_xi_rules(data):
    sim, pos, _ = data
    prob = _problem(sim, pos)
    e0, _ = prob.costs_and_rfactor(prob.random_start())
    a = _run(prob, E.CRISP, 1, c=0.2)
    b = _run(prob, E.CRISP, 1, c=0.2, xi_rule="c")
    assert np.isclose(a._last["xi"], 0.8 * float(e0.mean()))          # initializeXi, (1 - c)
    assert np.isclose(b._last["xi"], 0.2 * float(e0.mean()))
    assert np.isclose(a.xi_value, 0.8 * a._last["cost_mean"])        # eq. (22) after the sweep


@pytest.mark.parametrize("alg,kw,max_err", [
    ("epie", {}, 0.08), ("rpie", {}, 0.12), ("mpie", {}, 0.12), ("crisp", {}, 0.08),
    ("crisp", {"clip": "none"}, 0.12), ("crisp", {"clip": "scale"}, 0.12)])
def test_engines_recover_object_and_probe(data, alg, kw, max_err):
    sim, pos, ill = data
    res = reconstruct(sim.intensities, pos, algorithm=alg, n_iter=100, rng=0, progress=False,
                      object_shape=sim.obj.shape, **kw)
    assert res.success and res.probe is not None and res.probe.shape == (M, M)
    h = res.history
    assert h["R_F"][-1] < 0.05 < h["R_F"][0] and res.rfactor < 0.05
    err = object_error(res.image, sim.obj, ill, threshold=0.1)
    assert err < max_err
    f, c = object_frc(res.image, sim.obj, ill)
    assert band_mean(f, c, 0.0, 0.25) > 0.9
    assert probe_correlation(res.probe, sim.probe, modulus=True) > 0.99
    for key in ("cost_mean", "cost_median", "step_o_median", "step_p_max"):
        assert len(h[key]) == 100


def test_driver_features(data, tmp_path):
    sim, pos, _ = data
    r1 = reconstruct(sim.intensities, pos, schedule="epie:3,crisp:3", rng=4, progress=False)
    assert r1.history["stage"] == [0, 0, 0, 1, 1, 1] and "xi" in r1.history
    # same seed, same random orders: deterministic
    r2 = reconstruct(sim.intensities, pos, schedule="epie:3,crisp:3", rng=4, progress=False)
    assert np.array_equal(r1.image, r2.image) and np.array_equal(r1.probe, r2.probe)
    # checkpoint / resume gives the uninterrupted result
    ck = tmp_path / "ck.pt"
    full = reconstruct(sim.intensities, pos, algorithm="crisp", n_iter=6, rng=1, progress=False)

    class Crash(Exception):
        pass

    def cb(state):
        if state.iteration == 5:
            raise Crash  # an interruption after the checkpoint of iteration 4

    with pytest.raises(Crash):
        reconstruct(sim.intensities, pos, algorithm="crisp", n_iter=6, rng=1, progress=False,
                    checkpoint=ck, checkpoint_every=2, callback=cb)
    res = reconstruct(sim.intensities, pos, algorithm="crisp", n_iter=6, rng=1, progress=False,
                      resume=ck)
    assert np.array_equal(res.image, full.image) and np.array_equal(res.probe, full.probe)
    assert res.history["xi"] == full.history["xi"]
    with pytest.raises(ConfigError):
        reconstruct(sim.intensities, pos, algorithm="hio", n_iter=2)
    with pytest.raises(ConfigError):
        reconstruct(sim.intensities, pos, algorithm="crisp", n_iter=2, lambda_o=2.5)


def test_registry_and_scale_equivariance(data):
    names = {s.name for s in available("ptycho")}
    assert {"epie", "rpie", "mpie", "crisp"} <= names
    assert get_algorithm("CRISP").modality == "ptycho"
    # I -> s^2 I: ePIE and auto-xi CRISP (nu = 1) give the same object (scale equivariance, our derivation)
    sim, pos, _ = data
    for alg in ("epie", "crisp"):
        a = reconstruct(sim.intensities, pos, algorithm=alg, n_iter=3, rng=0, progress=False,
                        precision="double")
        b = reconstruct(sim.intensities * 100.0, pos, algorithm=alg, n_iter=3, rng=0,
                        progress=False, precision="double")
        # (float32 data: equal to rounding)
        assert np.abs(a.image - b.image).max() < 1e-5
        assert np.abs(10 * a.probe - b.probe).max() < 1e-5 * np.abs(b.probe).max()


def test_metrics_basic():
    g = np.random.default_rng(0)
    t = np.exp(1j * gaussian_filter(g.standard_normal((48, 48)), 2))
    e = 2.0 * np.exp(0.7j) * t
    assert object_error(e, t) < 1e-9
    f, c = object_frc(e, t)
    assert np.nanmin(c) > 0.999
    assert abs(probe_correlation(e, t) - 1) < 1e-12
    assert dispersion(e, t) < 1e-9 and dispersion(t, t * 0 + 1) > 0.01


# ----------------------------------------------------------------------------- CRISP vs pseudocode
def _crisp_by_hand(I, O, P, iy, ix, lam_o, lam_p, xi, nu, kappa=0.5):
    """One position of CRISPdirection + the update of CRISP (secs. 3.4-3.5, reconstructed from the text) in the paper's units:
    photon counts, NumPy's unnormalised forward FFT, data ``fftshift``ed once."""
    my, mx = P.shape
    On = O[iy:iy + my, ix:ix + mx].copy()
    psi = P * On
    Z = np.fft.fft2(psi)
    ph = np.where(np.abs(Z) > 0, Z / np.where(np.abs(Z) > 0, np.abs(Z), 1), 1)
    psit = np.fft.ifft2(np.sqrt(np.fft.ifftshift(I)) * ph)
    R = psit - psi
    e = kappa * np.sum(np.abs(R) ** 2)
    Go = min(max(e - xi, 0) / np.sum(np.abs(np.conj(P) * R) ** 2), nu / np.max(np.abs(P)) ** 2)
    Gp = min(max(e - xi, 0) / np.sum(np.abs(np.conj(On) * R) ** 2), nu / np.max(np.abs(On)) ** 2)
    O2 = O.copy()
    O2[iy:iy + my, ix:ix + mx] = On + lam_o * Go * np.conj(P) * R
    return O2, P + lam_p * Gp * np.conj(On) * R, e


@pytest.mark.parametrize("xi_kw,nu", [({"c": 0.01}, np.inf), ({"c": 0.5}, 1.0),
                                      ({"xi": "half"}, 1.0)])
def test_crisp_matches_pseudocode_in_paper_units(xi_kw, nu):
    """One position, fft_norm="backward": the engine's update equals the CRISP pseudocode
    (reconstructed from the text of secs. 3.4-3.5) written out with the unnormalised FFT on photon counts (units, kappa = 1/2, initializeXi with
    the (1 - c) rule, the clip and the simultaneous update) -- the CRISP low-dose investigation
    (issue 5) found no deviation; this pins it."""
    g = np.random.default_rng(3)
    obj = np.exp(1j * 0.5 * gaussian_filter(g.standard_normal((40, 40)), 1.5))
    probe = scale_to_dose(fzp_probe(M, 14, 12), 1e6)
    sim = simulate_ptycho(obj, probe, np.array([[3.0, 5.0]]), dose=1e6, rng=0)
    p0 = bump((M, M)) * 3.0                                           # unitary-FFT units
    prob = PtychoProblem.from_arrays(sim.intensities, sim.positions, probe=p0, obj=np.ones((40, 40)),
                                     fft_norm="backward", precision="double")
    P = p0 / M                                                        # the paper's units
    e0 = float(prob.costs_and_rfactor(prob.random_start())[0][0])
    kw = dict(xi_kw)
    if kw.get("xi") == "half":
        kw["xi"] = 0.5 * e0
    a = _run(prob, E.CRISP, 1, lambda_o=0.9, lambda_p=0.4, clip="none" if nu == np.inf else "epie",
             **kw)
    xi = kw["xi"] if "xi" in kw else (1 - kw["c"]) * e0
    O2, P2, e = _crisp_by_hand(sim.intensities[0], np.ones((40, 40), complex), P, 3, 5, 0.9, 0.4,
                               xi, nu)
    assert np.isclose(e, e0, rtol=1e-10)
    o, p = prob.views(a.x)
    assert np.allclose(o.numpy(), O2, atol=1e-9) and np.allclose(p.numpy(), P2, atol=1e-12)
    assert not np.allclose(O2, 1.0)                                   # it did move


def test_fused_single_precision_survives_subnormal_spectrum():
    """Regression (issue 5): a hard zone-plate pupil leaves |F psi|^2 subnormal in float32 where
    the data still have counts; the fused modulus projection divided by a flushed-to-zero root
    and the run went to NaN (R_F 1.0) while the torch reference path was fine."""
    pos = raster_scan(5, step=6, margin=1)
    shape = object_shape_for(pos, (M, M), margin=1)
    obj = np.exp(1j * 0.4 * gaussian_filter(np.random.default_rng(2).standard_normal(shape), 1.5))
    sim = simulate_ptycho(obj, fzp_probe(M, 16, 12), pos, dose=1e8, rng=7)
    prob = PtychoProblem.from_arrays(sim.intensities, pos, probe=sim.probe, object_shape=shape)
    a = _run(prob, E.EPIE, 3, fused=True, alpha_o=0.4, alpha_p=0.2)
    b = _run(prob, E.EPIE, 3, fused=False, alpha_o=0.4, alpha_p=0.2)
    assert torch.isfinite(a.x).all() and abs(a._last["R_F"] - b._last["R_F"]) < 1e-3


def test_crisp_low_dose_xi_rules():
    """The low-dose study of issue 5 (benchmarks/results/crisp_paper.md), small: no bug, the
    behaviour is the (1 - c) reading's.  xi = (1 - c) mean(e) makes every step a Polyak step
    aiming ~c below the mean cost, so with the paper's low-dose c = 0.01 the effective step is
    ~1/100 of ePIE's and 300 sweeps end far above the noise floor; with c = 0.1 auto-xi CRISP
    reaches ePIE's R_F (within 1.5x) and its xi settles near the noise-floor cost; the c*mean
    reading (xi ~ 0) tracks ePIE."""
    pos = raster_scan(5, step=6, margin=1)
    shape = object_shape_for(pos, (M, M), margin=1)
    obj = np.exp(1j * 0.4 * gaussian_filter(np.random.default_rng(2).standard_normal(shape), 1.5))
    sim = simulate_ptycho(obj, fzp_probe(M, 16, 12), pos, dose=1e8, rng=7)
    truth = PtychoProblem.from_arrays(sim.intensities, pos, probe=sim.probe, obj=sim.obj,
                                      fft_norm="backward")
    floor = float(truth.costs_and_rfactor(truth.random_start())[0].mean())
    prob = PtychoProblem.from_arrays(sim.intensities, pos, probe=sim.probe, object_shape=shape,
                                     fft_norm="backward")
    lo = dict(lambda_o=0.4, lambda_p=0.2)

    def rf(alg, **kw):
        h = reconstruct(prob, algorithm=alg, n_iter=300, rng=0, progress=False, **kw).history
        return h["R_F"][-1], h

    r_ep, _ = rf("epie", alpha_o=0.4, alpha_p=0.2)
    r_01, h01 = rf("crisp", c=0.01, **lo)
    r_1, h1 = rf("crisp", c=0.1, **lo)
    r_c, _ = rf("crisp", c=0.01, xi_rule="c", **lo)
    assert r_1 < 1.5 * r_ep and 1.0 < h1["xi"][-1] / floor < 10.0
    assert r_c < 1.2 * r_ep
    assert r_01 > 3 * r_ep and np.median(h01["step_o_median"]) < 0.04  # lambda_o / 10


@pytest.mark.skipif(not __import__("phasekit.ptycho.kernels", fromlist=["HAVE_NUMBA"]).HAVE_NUMBA,
                    reason="numba not installed")
@pytest.mark.parametrize("dtype,rdtype", [(np.complex64, np.float32), (np.complex128, np.float64)])
def test_fused_fourier_projection_is_the_shared_rule(dtype, rdtype):
    """The fused ptycho Fourier kernel projects with operators.modulus (fast pass + exact rule on
    the pixels it leaves): bit for bit ``project_t`` in complex64 on random and edge frames --
    zero, subnormal-|z|^2 (4e-23), subnormal, huge z; zero and tiny amplitudes, which a fix-up
    after the pass would re-project -- and within 2 eps in complex128 (torch's vectorised
    float64 root is not always correctly rounded, see test_modulus.py); unmeasured pixels are
    kept.  Its sums are the float64 R-factor numerator and cost to 1e-6."""
    from phasekit.operators.modulus import project_t
    from phasekit.ptycho import kernels as K

    rng = np.random.default_rng(4)
    z = (rng.standard_normal((24, 40)) + 1j * rng.standard_normal((24, 40))).astype(dtype)
    tiny = np.finfo(rdtype).smallest_subnormal
    edge = [0, 3e-23 + 4e-23j, 1e-40 - 1e-41j, complex(tiny, -tiny), 1e19 + 1e19j, -3e38, 1e-20j]
    z[3, :len(edge)] = np.array(edge).astype(dtype)
    amp = (rng.random(z.shape) * 5).astype(rdtype)
    amp[::3, ::4] = 0
    amp[5, :4] = [tiny, 1e-30, 1e-19, 1e-38]
    meas = rng.random(z.shape) > 0.1
    meas[3, :len(edge)] = True
    fourier = K.fused_kernels()[1]
    got = z.copy()
    num, cost = fourier(got, amp, meas)
    want = torch.where(torch.from_numpy(meas), project_t(torch.from_numpy(z), torch.from_numpy(amp)),
                       torch.from_numpy(z)).numpy()
    if rdtype == np.float32:
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8))
    else:
        assert np.allclose(got, want, rtol=2 * np.finfo(rdtype).eps, atol=0)
        assert np.array_equal(got[~meas], z[~meas])
    assert np.abs(got[3, 0]) == amp[3, 0] and np.all(np.isfinite(got[np.abs(z) < 1e18]))
    # the sums: float64 reference (rows without the huge pixels, whose float32 |z|^2 overflows)
    ok = np.ones(z.shape[0], bool)
    ok[3] = False
    zz, aa, mm = z[ok], amp[ok], meas[ok]
    n2, c2 = fourier(zz.copy(), aa, mm)
    d = (aa.astype(np.float64) - np.abs(zz.astype(np.complex128))) * mm
    assert n2 == pytest.approx(np.abs(d).sum(), rel=1e-6)
    assert c2 == pytest.approx((d * d).sum(), rel=1e-6)
