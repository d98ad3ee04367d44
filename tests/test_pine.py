"""PINE (ePIE + denoiser relaxation, Yamada et al., J. Appl. Cryst. 57 (2024)): rho = 0 is ePIE
bit for bit, the official recentring, denoiser contract errors, the command line, and recovery
of a low-dose object better than ePIE at equal sweeps with the shipped denoiser."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from phasekit.cli.main import cli
from phasekit.core.errors import ConfigError
from phasekit.engine import solve
from phasekit.io import read_result
from phasekit.learn.denoisers import load_complex_denoiser
from phasekit.ptycho import (
    PtychoProblem,
    object_shape_for,
    particle_film,
    raster_scan,
    simulate_ptycho,
)
from phasekit.ptycho.metrics import band_mean, object_error, object_frc
from phasekit.ptycho.pine import GaussianDenoiser, recentre_shift
from phasekit.ptycho.probe import fzp_probe

M = 32


def _scan(dose, seed=1):
    pos = raster_scan(6, step=5, margin=1)
    shape = object_shape_for(pos, (M, M), margin=1)
    obj = particle_film(shape, pixel_size=40e-9, rng=3)
    sim = simulate_ptycho(obj, fzp_probe(M, 16, 12), pos, dose=dose, rng=seed)
    prob = PtychoProblem.from_arrays(sim.intensities, pos, object_shape=shape)
    ill = prob.illumination(torch.as_tensor(sim.probe, dtype=prob.cdtype)).numpy()
    return sim, prob, ill


@pytest.fixture(scope="module")
def low_dose():
    return _scan(1e4)


def test_rho_zero_is_epie_bit_for_bit(low_dose):
    _, prob, _ = low_dose
    kw = dict(n_iter=4, rng=7, progress=False)
    a = solve(prob, algorithm="epie", params=dict(alpha_o=0.8, alpha_p=0.3), **kw)
    b = solve(prob, algorithm="pine", params=dict(alpha_o=0.8, alpha_p=0.3, rho=0.0,
                                                  recentre=False), **kw)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.probe, b.probe)
    assert a.history["R_F"] == b.history["R_F"]
    # the recentring never fires on a centred probe: rho = 0 with it is ePIE too
    c = solve(prob, algorithm="pine", params=dict(alpha_o=0.8, alpha_p=0.3, rho=0.0), **kw)
    assert np.array_equal(a.image, c.image)
    assert c.history["recentre_y"] == [0.0] * 4


def test_pine_with_probe_modes(low_dose):
    """PINE inherits the mixed-state model: rho = 0 equals ePIE with the same two modes, and with
    the denoiser on it still returns two orthogonal modes and fits the data."""
    import phasekit.ptycho as pty

    _, prob, _ = low_dose
    kw = dict(n_iter=3, rng=5, progress=False, n_modes=2)
    sim, _, _ = low_dose
    pos = raster_scan(6, step=5, margin=1)
    shape = object_shape_for(pos, (M, M), margin=1)
    a = pty.epie(sim.intensities, pos, object_shape=shape, alpha_o=0.8, alpha_p=0.3, **kw)
    b = pty.pine(sim.intensities, pos, object_shape=shape, alpha_o=0.8, alpha_p=0.3, rho=0.0,
                 recentre=False, **kw)
    assert a.probe.shape == (2, M, M)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.probe, b.probe)
    c = pty.pine(sim.intensities, pos, object_shape=shape, rho=0.49,
                 denoiser=GaussianDenoiser(0.7), **{**kw, "n_iter": 6})
    P = c.probe.reshape(2, -1)
    overlap = abs(np.vdot(P[0], P[1])) / (np.linalg.norm(P[0]) * np.linalg.norm(P[1]))
    assert c.probe.shape == (2, M, M) and overlap < 1e-3
    assert c.history["R_F"][-1] < c.history["R_F"][0]


def test_recentring_moves_probe_and_object_together(low_dose):
    P = torch.zeros(2, 8, 8, dtype=torch.complex64)   # two modes: |P|^2 summed
    P[0, 6, 4] = 1
    P[1, 6, 4] = 1
    assert recentre_shift(P) == (2, 0)
    P = torch.zeros(8, 8, dtype=torch.complex64)
    P[4, 5] = 1
    P[4, 4] = 1                                       # centre of mass 4.5: within one pixel
    assert recentre_shift(P) == (0, 0)
    sim, prob, _ = low_dose
    off = np.roll(sim.probe, (3, -4), axis=(0, 1))
    p2 = PtychoProblem.from_arrays(sim.intensities, sim.positions, probe=off,
                                   object_shape=prob.shape, probe_energy_match=False)
    r = solve(p2, algorithm="pine", n_iter=1, rng=0, progress=False)
    # the sweep itself moves the probe a little; the shift follows the offset (trunc of the
    # centre of mass) and leaves the probe centred
    assert r.history["recentre_y"][0] in (2.0, 3.0) and r.history["recentre_x"][0] in (-3.0, -4.0)
    assert recentre_shift(torch.as_tensor(r.probe)) == (0, 0)


def test_denoiser_contract(low_dose):
    _, prob, _ = low_dose
    calls = []

    def numpy_denoiser(z):                       # any callable; NumPy output is accepted
        calls.append(tuple(z.shape))
        return GaussianDenoiser(1.0)(z).numpy()

    r = solve(prob, algorithm="pine", n_iter=2, rng=0, progress=False,
              params={"denoiser": numpy_denoiser})
    assert calls == [prob.shape] * 2
    assert all(0 < c < 1 for c in r.history["denoise_change"])
    with pytest.raises(ConfigError, match="denoiser returned shape"):
        solve(prob, algorithm="pine", n_iter=1, rng=0, progress=False,
              params={"denoiser": lambda z: z[:-1]})
    with pytest.raises(ConfigError, match="denoiser"):
        solve(prob, algorithm="pine", n_iter=1, rng=0, progress=False, params={"denoiser": 3})
    with pytest.raises(ConfigError, match="rho"):
        solve(prob, algorithm="pine", n_iter=1, rng=0, progress=False, params={"rho": -0.1})


def test_pine_beats_epie_at_low_dose(low_dose):
    """Equal sweeps, same random orders and start; the shipped DnCNN (min-max wrapper)."""
    sim, prob, ill = low_dose
    kw = dict(n_iter=30, rng=0, progress=False)
    e = solve(prob, algorithm="epie", params=dict(alpha_o=1.0, alpha_p=0.2), **kw)
    p = solve(prob, algorithm="pine", params=dict(denoiser=load_complex_denoiser("default")), **kw)
    err_e = object_error(e.image, sim.obj, ill)
    err_p = object_error(p.image, sim.obj, ill)
    frc_e = band_mean(*object_frc(e.image, sim.obj, ill), 0.05, 0.25)
    frc_p = band_mean(*object_frc(p.image, sim.obj, ill), 0.05, 0.25)
    # measured (shipped 8x32 weights): error 0.073 vs 0.085, FRC(0.05-0.25) 0.19 vs 0.07
    assert err_p < 0.93 * err_e, (err_p, err_e)
    assert frc_p > frc_e + 0.05, (frc_p, frc_e)


def test_cli_pine_with_shipped_and_file_denoisers(tmp_path):
    r = CliRunner()
    scan_f = tmp_path / "scan.cxi"
    out = r.invoke(cli, ["simulate", "ptycho", "--object", "random", "--frame", "32",
                         "--points", "3", "--beam-diameter", "16", "--out", str(scan_f)])
    assert out.exit_code == 0, out.output
    res_f = tmp_path / "r.cxi"
    out = r.invoke(cli, ["reconstruct", str(scan_f), "--algorithm", "pine", "-n", "3", "-q",
                         "--no-figure", "--denoiser", "nonexpansive", "--out", str(res_f)])
    assert out.exit_code == 0, out.output
    h = read_result(res_f)["history"]
    assert len(h["denoise_change"]) == 3 and all(v > 0 for v in h["denoise_change"])
    # without -n: PINE's own default, 200 sweeps as 'phasekit algorithms' lists it (was 300)
    out = r.invoke(cli, ["reconstruct", str(scan_f), "--algorithm", "pine", "--no-figure",
                         "--denoiser", "nonexpansive", "--out", str(res_f)])
    assert out.exit_code == 0, out.output
    assert "PINE:200" in out.output and "(200 sweeps" in out.output
    for args, text in ((["--algorithm", "epie", "--denoiser", "default"], "pine only"),
                       (["--algorithm", "pine", "--denoiser", str(tmp_path / "no.npz")],
                        "no such shipped name")):
        out = r.invoke(cli, ["reconstruct", str(scan_f), "-n", "1", "-q", "--no-figure",
                             "--out", str(tmp_path / "r2.cxi"), *args])
        assert out.exit_code == 2, (args, out.output)
        assert text in out.output and len(out.output.strip().splitlines()) == 1


@pytest.mark.parametrize("sigma", [0.7, 1.5])
def test_gaussian_denoiser_shifted_sums_equal_the_conv2d_form(sigma):
    """The stand-in denoiser's blur as shifted sums equals its conv2d twin (reflecting borders,
    complex and real objects, odd sizes) and keeps a constant object (normalised taps)."""
    d = GaussianDenoiser(sigma)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(37, 52, dtype=torch.complex64, generator=g)
    assert torch.allclose(d(z), d.reference(z), rtol=1e-6, atol=1e-6)
    x = torch.randn(29, 31, dtype=torch.float64, generator=g)
    assert torch.allclose(d(x), d.reference(x), rtol=1e-12, atol=1e-12)
    assert d(x).dtype == torch.float64 and d(z).dtype == torch.complex64
    c = torch.full((20, 20), 3.0 - 2.0j, dtype=torch.complex128)
    assert torch.allclose(d(c), c, atol=1e-12)
    # a point is spread by the separable taps: the outer product of the kernel
    p = torch.zeros(21, 21, dtype=torch.float64)
    p[10, 10] = 1.0
    k = d.kernel
    r = len(k) // 2
    want = torch.zeros_like(p)
    want[10 - r:10 + r + 1, 10 - r:10 + r + 1] = torch.outer(k, k)
    assert torch.allclose(d(p), want, atol=1e-15)
