"""The fused ptychography sweep kernels against their references: the chained single-mode
kernels (projection-minus-input, update + next exit wave in one pass) against the per-position
kernels, and the fused K-mode sweep (modes, fitted background, position refinement, sub-pixel
windows) against the plain-torch reference sweep."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.ptycho import (
    PtychoProblem,
    object_shape_for,
    raster_scan,
    simulate_ptycho,
)
from phasekit.ptycho import engines as E
from phasekit.ptycho import kernels as K
from phasekit.ptycho.probe import fzp_probe

pytestmark = pytest.mark.skipif(not K.HAVE_NUMBA, reason="numba not installed")


def _rand(g, shape, dtype):
    return (g.standard_normal(shape) + 1j * g.standard_normal(shape)).astype(dtype)


def test_fourier_diff_is_the_projection_minus_its_input():
    """Bit for bit (complex64) the shared projection of ``fourier`` minus the input, edge pixels
    (zero, subnormal |z|^2, huge) included, unmeasured pixels 0; the same sums."""
    g = np.random.default_rng(0)
    z = _rand(g, (20, 24), np.complex64)
    z[2, :5] = np.array([0, 3e-23 + 4e-23j, 1e-40, 1e19 + 1e19j, 1e-20j]).astype(np.complex64)
    amp = (g.random(z.shape) * 4).astype(np.float32)
    amp[::4, ::3] = 0
    meas = g.random(z.shape) > 0.15
    meas[2, :5] = True
    _, fourier, _, _ = K.fused_kernels()
    want = z.copy()
    n1, c1 = fourier(want, amp, meas)
    got = z.copy()
    n2, c2 = K.sweep_kernels().fourier_diff(got, amp, meas)
    assert np.array_equal(got.view(np.uint8), (want - z).view(np.uint8))
    assert not got[~meas].any() and np.abs(got).max() > 1
    assert n2 == pytest.approx(n1, rel=1e-12) and c2 == pytest.approx(c1, rel=1e-12)


@pytest.mark.parametrize("dy,dx", [(9, -5), (-7, 3), (0, 4), (40, 40)])
@pytest.mark.parametrize("gamma", [1.0, 0.2])
def test_update_exit_is_update_then_exit_wave(dy, dx, gamma):
    """One pass = the update of a window, then the exit wave of the next (overlapping below,
    above, beside, or apart), with max|P_new|^2 and max|O_next|^2 (complex128: to rounding)."""
    g = np.random.default_rng(1)
    m = 16
    O = _rand(g, (80, 80), np.complex128)
    P = _rand(g, (m, m), np.complex128)
    R = _rand(g, (m, m), np.complex128) * 0.1
    y0, x0 = 20, 22
    y1, x1 = y0 + dy, x0 + dx
    exit_wave, _, _, update = K.fused_kernels()
    pm = float((np.abs(P) ** 2).max())
    om = float((np.abs(O[y0:y0 + m, x0:x0 + m]) ** 2).max())
    # reference: psi so that psit - psi = R, then the old update and exit wave
    psi = P * O[y0:y0 + m, x0:x0 + m]
    O1, P1 = O.copy(), P.copy()
    update(P1, O1, psi, psi + R, y0, x0, 0.7, 0.5, gamma, 1.0, pm, om, True)
    psi1 = np.empty_like(P)
    pm1, om1 = exit_wave(psi1, P1, O1, y1, x1, *K.max_buffers(m, np.float64))
    O2, P2 = O.copy(), P.copy()
    psi2 = np.empty_like(P)
    pm2, om2 = K.sweep_kernels().update_exit(P2, O2, R, y0, x0, 0.7, 0.5, gamma, 1.0, pm, om, True,
                                             psi2, y1, x1, True, K.max_buffers(m, np.float64))
    for a, b in ((O2, O1), (P2, P1), (psi2, psi1)):
        assert np.allclose(a, b, rtol=0, atol=1e-13 * np.abs(b).max())
    assert pm2 == pytest.approx(pm1, rel=1e-13) and om2 == pytest.approx(om1, rel=1e-13)
    assert not np.allclose(O2, O)                                      # it did update


@pytest.mark.parametrize("dtype,rel", [(np.complex64, 2e-6), (np.complex128, 1e-12)])
@pytest.mark.parametrize("m", [7, 33, 128])
def test_grad_norms_kernels_match_their_torch_references(dtype, rel, m):
    """CRISP's denominators from the compiled kernels (rows summed in the arrays' precision,
    the row sums in float64): the chained sweep's ``grad_norms_r``, the per-position
    ``grad_norms`` and the K-mode ``grad_norms`` against the torch references (float64 sums)."""
    g = np.random.default_rng(m)
    O = _rand(g, (m + 40, m + 30), dtype)
    P = _rand(g, (m, m), dtype)
    R = _rand(g, (m, m), dtype) * 1e3  # large terms: a float32 sum over a row still holds
    y0, x0 = 17, 9
    Ow = O[y0:y0 + m, x0:x0 + m]
    psi = P * Ow
    want = [float(v) for v in K.grad_norms_ref(torch.from_numpy(P), torch.from_numpy(Ow.copy()),
                                                torch.from_numpy(psi + R))]
    got_r = K.sweep_kernels().grad_norms_r(P, O, R, y0, x0)
    got_p = K.fused_kernels()[2](P, O, psi, psi + R, y0, x0)
    for got in (got_r, got_p):
        assert got[0] == pytest.approx(want[0], rel=rel) and got[1] == pytest.approx(want[1], rel=rel)
    # K = 3 modes
    Pk = _rand(g, (3, m, m), dtype)
    Rk = _rand(g, (3, m, m), dtype)
    want = [float(v) for v in K.grad_norms_modes(torch.from_numpy(Pk), torch.from_numpy(Ow.copy()),
                                                  torch.from_numpy(Rk), torch.zeros(1, dtype=torch.from_numpy(Rk).dtype))]
    rt = np.float32 if dtype == np.complex64 else np.float64
    got = K.modes_kernels().grad_norms(Pk, O, Rk, y0, x0, np.zeros(m, rt), np.zeros(m, rt))
    assert got[0] == pytest.approx(want[0], rel=rel) and got[1] == pytest.approx(want[1], rel=rel)


@pytest.fixture(scope="module")
def partial_scan():
    """5x5 raster at 5 px with sub-pixel offsets, 16^2 frames, 2 modes + a flat background."""
    m = 16
    pos = raster_scan(5, step=5, margin=1) + np.random.default_rng(3).uniform(-0.4, 0.4, (25, 2))
    shape = object_shape_for(pos, (m, m), margin=2)
    g = np.random.default_rng(4)
    obj = np.exp(0.4j * g.standard_normal(shape)) * (0.8 + 0.2 * g.random(shape))
    p0 = fzp_probe(m, 8, 6)
    sim = simulate_ptycho(obj, np.stack([p0, 0.5 * np.roll(p0, 2, axis=1)]), pos, dose=None)
    return pos, shape, sim.intensities + 0.5


def _run(prob, cls, n, fused, **kw):
    a = cls(prob, n, **kw)
    a.bind_rng(np.random.default_rng(7))
    a.initialize(prob.random_start())
    a.fused = fused
    for k in range(n):
        a.step(k)
    return a


@pytest.mark.parametrize("cls,kw", [(E.EPIE, {}), (E.RPIE, {}), (E.MPIE, {"momentum_every": 4}),
                                    (E.CRISP, {"clip": "scale"})],
                         ids=["EPIE", "RPIE", "MPIE", "CRISP"])
def test_fused_modes_sweep_matches_reference(partial_scan, cls, kw):
    """2 modes, fitted background and position refinement from sweep 0 on sub-pixel windows:
    the fused sweep (numba kernels, carried shifted probe) gives the reference sweep's object,
    modes, background, positions and history to rounding (double precision)."""
    pos, shape, intensities = partial_scan
    prob = PtychoProblem.from_arrays(intensities, pos, object_shape=shape, precision="double",
                                     n_modes=2, refine_positions=0, background=True)
    a = _run(prob, cls, 3, True, **kw)
    b = _run(prob, cls, 3, False, **kw)
    scale = float(b.x.abs().max())
    assert torch.allclose(a.x, b.x, rtol=0, atol=1e-9 * scale)
    assert not torch.allclose(b.x, prob.random_start(), atol=1e-3 * scale)   # it moved
    d = prob.shifts_view(b.x)
    assert float(d.abs().max()) > 1e-3                                    # positions refined
    for key in ("R_F", "cost_mean", "background_mean", "position_shift_rms", "mode_power_0"):
        assert a._last[key] == pytest.approx(b._last[key], rel=1e-8, abs=1e-12), key


def _placed(g, m, gap):
    """P (m x m complex64), R and the scratch rows, with ``bp`` placed ``gap`` float32 words after
    the end of P in one buffer (``gap=None``: separate arrays).  Close placements make LLVM's
    runtime alias checks fail for some rows, so those rows run the scalar copy of the loop."""
    P = _rand(g, (m, m), np.complex64)
    R = (_rand(g, (m, m), np.complex64) * 0.1).astype(np.complex64)
    if gap is None:
        return P, R, K.max_buffers(m, np.float32)
    buf = np.zeros(2 * m * m + gap + 2 * m + 64, np.float32)
    Pv = buf[:2 * m * m].view(np.complex64).reshape(m, m)
    Pv[...] = P
    bp = buf[2 * m * m + gap:2 * m * m + gap + m]
    bo = np.zeros(m, np.float32)
    return Pv, R, (bp, bo, bp.view(np.int32), bo.view(np.int32))


@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_update_exit_bits_do_not_depend_on_placement(gamma):
    """The vector loop and the scalar loop LLVM falls back to (when the arrays lie close in
    memory) give the same bits: no approximate reciprocal (vrcpps) in the vector loop.  rPIE's
    float32 quotients differed by 1 ulp from run to run before (issue 16's review)."""
    m = 16
    outs = []
    for gap in (None, 0, 1, 4, 8, 16, 40):
        g = np.random.default_rng(7)
        O = _rand(g, (48, 48), np.complex64)
        P, R, bufs = _placed(g, m, gap)
        psi = np.zeros((m, m), np.complex64)
        pm, om = K.sweep_kernels().update_exit(P, O, R, 10, 12, 0.9, 0.7, gamma, gamma, 3.0, 2.0,
                                               True, psi, 14, 9, True, bufs)
        outs.append((O.copy(), P.copy(), psi.copy(), pm, om))
    for o in outs[1:]:
        for a, b in zip(o[:3], outs[0][:3]):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
        assert o[3:] == outs[0][3:]


def test_kernels_that_store_quotients_use_exact_division():
    """Kernels that store a quotient or a root are compiled without the approximate reciprocal
    and root ('arcp', 'afn'): with them the K-mode projection and the regularised updates used
    vrcpps / vrsqrtps, whose bits differ between AMD and Intel CPUs (and between a vector loop
    and its scalar fallback, see the placement test above)."""
    from phasekit.ptycho import numba_kernels as nk

    for kern in (nk.update_exit, nk.update_regularised, nk.update_k, nk.fourier_k):
        fm = kern.targetoptions["fastmath"]
        assert fm is not True and not ({"arcp", "afn", "fast"} & set(fm or ())), kern


@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_update_kernels_round_python_float_scalars_first(gamma):
    """The sweep passes the step scalars as Python floats (NumPy's float32(x) costs ~0.8 us each
    per position); the kernels round them to float32 before any arithmetic, so the result is the
    one with float32 scalars given (not a float64 update rounded at the end)."""
    from phasekit.ptycho import numba_kernels as nk

    m = 16
    g = np.random.default_rng(3)
    O0 = _rand(g, (40, 40), np.complex64)
    P0, R = _rand(g, (m, m), np.complex64), _rand(g, (m, m), np.complex64)
    s = (0.9 / 3.0, 0.7 / 2.0, 0.9, 0.7, 1.0 - gamma, gamma * 3.0, 1.0 - gamma, gamma * 2.0)
    outs = []
    for sc in (s, tuple(np.float32(v) for v in s)):
        O, P, psi = O0.copy(), P0.copy(), np.zeros((m, m), np.complex64)
        bufs = K.max_buffers(m, np.float32)
        r = nk.update_exit(P, O, R, 5, 7, *sc, gamma != 1.0, psi, 9, 4, True, *bufs)
        outs.append((O, P, psi, r))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    assert outs[0][3] == outs[1][3]
    # the K-mode update likewise
    outs = []
    for sc in ((0.9, 0.7, *s[4:]), (np.float32(0.9), np.float32(0.7), *(np.float32(v) for v in s[4:]))):
        O, P = O0.copy(), np.stack([P0, 0.5 * P0])
        nk.update_k(P, O, np.stack([R, R]), 5, 7, *sc, *(np.empty(m, np.float32) for _ in range(3)))
        outs.append((O, P))
    for a, b in zip(outs[0], outs[1]):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
