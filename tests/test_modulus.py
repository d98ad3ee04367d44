"""The one modulus-projection rule (phasekit.operators.modulus): the numba helper and its torch
twin agree bit for bit, and are exact for tiny (subnormal |z|^2), subnormal, zero and huge
inputs in float32 and float64 (Marchesini 2007 eq. (4), with the phase of 0 taken as 1)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.cdi.kernels import fourier_project
from phasekit.operators import modulus
from phasekit.operators.modulus import project_t
from phasekit.operators.projections import modulus_projection

numba = pytest.importorskip("numba")


@numba.njit(fastmath=False, error_model="numpy")
def _project_all(z, amp, out):
    for i in range(z.size):
        r, m = modulus.project_pixel(z[i].real, z[i].imag, amp[i])
        out[i] = complex(r, m)


def _inputs(dtype, rdtype):
    rng = np.random.default_rng(0)
    n = 4000
    z = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype)
    tiny = np.finfo(rdtype).smallest_subnormal
    huge = np.finfo(rdtype).max
    special = [0, 3e-23 + 4e-23j, 4e-23, 1e-23j, complex(tiny, 0), complex(-tiny, tiny),
               complex(5 * tiny, -3 * tiny), 1e-40 + 1e-41j, complex(huge / 2, huge / 2),
               complex(-huge, 0), 1e30 - 1e30j]
    if rdtype == np.float64:
        special += [1e-200 + 1e-200j, 1e200j, 1e-310 - 3e-310j]
    z[:len(special)] = np.array(special).astype(dtype)
    z[len(special):2 * len(special)] = z[:len(special)] * np.array(1e-3, rdtype)
    amp = rng.random(n).astype(rdtype) * 10
    amp[-3:] = [0, tiny, 1e-40]
    return z, amp


@pytest.mark.parametrize("dtype,rdtype", [(np.complex64, np.float32), (np.complex128, np.float64)])
def test_helper_and_torch_twin_agree_bit_for_bit_and_are_exact(dtype, rdtype):
    z, amp = _inputs(dtype, rdtype)
    out = np.empty_like(z)
    _project_all(z, amp, out)
    twin = project_t(torch.from_numpy(z), torch.from_numpy(amp)).numpy()
    if rdtype == np.float32:
        assert np.array_equal(out, twin)
    else:  # torch's vectorised float64 sqrt is not always correctly rounded: 1 ulp
        assert np.allclose(out, twin, rtol=2 * np.finfo(rdtype).eps, atol=0)
    # the modulus is the amplitude, the phase is kept (exact reference in extended precision)
    zz = z.astype(np.clongdouble)
    nz = np.abs(zz) > 0
    want = np.where(nz, amp * (zz / np.where(nz, np.abs(zz), 1)), amp).astype(dtype)
    eps = np.finfo(rdtype).eps
    err = np.abs(out.astype(np.clongdouble) - want)
    # a few ulp of the amplitude (subnormal amplitudes: the subnormal spacing)
    assert np.all(err <= 4 * eps * amp + 2 * np.finfo(rdtype).smallest_subnormal)
    # |z| ~ 4e-23 (|z|^2 subnormal in float32): modulus exactly 1 to float32 rounding
    # (the fastmath form gave 1.069)
    i = 1
    assert abs(abs(complex(out[i])) / float(amp[i]) - 1) < 4 * eps
    # z = 0: amplitude with phase 0 (sign(0) = 1)
    assert out[0] == amp[0] and twin[0] == amp[0]


def test_cdi_fused_projection_is_exact_for_subnormal_moduli():
    z0 = torch.tensor([3e-23 + 4e-23j, 1e-45 + 0j, 0j, 2e-40 - 1e-40j, 1 + 1j] * 8, dtype=torch.complex64)
    amp = torch.full(z0.shape, 2.0)
    meas = torch.ones(z0.shape, dtype=torch.bool)
    meas[4] = False
    a, b = z0.clone(), z0.clone()
    fourier_project(a, amp, meas, fused=True)
    fourier_project(b, amp, meas, fused=False)
    assert torch.equal(a, b)
    assert torch.equal(a, torch.where(meas, project_t(z0, amp), z0))
    mod = a.to(torch.complex128).abs()
    assert torch.all((mod[meas] - 2).abs() < 4e-7)
    assert a[2] == 2 and a[4] == z0[4]
    # the reference path of the projections module is the twin
    assert torch.equal(modulus_projection(z0, amp, meas), b)


@pytest.mark.parametrize("dtype,rdtype", [(np.complex64, np.float32), (np.complex128, np.float64)])
def test_fast_pass_with_fixup_has_the_bits_of_the_exact_rule(dtype, rdtype):
    """The fused kernels take the branch-free fast pass (``project_fast``) and apply the exact rule
    to the pixels it leaves: bit for bit the per-pixel rule, serial and multi-threaded kernels, on
    random and edge inputs (0, subnormal, 4e-23, 1e-20, 1e19, 3e38, float64 extremes)."""
    from phasekit.cdi import kernels as K
    from phasekit.cdi.saddle import project_into

    z, amp = _inputs(dtype, rdtype)
    edge = np.array([0, 4e-23, 1e-20, 1e19, 3e38, 1e-20j, 1e19 - 1e19j, 2.0 ** -60, 2.0 ** 60,
                     2.0 ** -59.5 * (1 + 1j), 2.0 ** 60 * (1 + 1j)]).astype(dtype)
    if rdtype == np.float64:
        edge = np.concatenate([edge, np.array([1e-160, 1e160j, 2.0 ** -500, 2.0 ** 500 + 1j,
                                               1e-310 + 0j])])
    z[4000 - len(edge) - 3:4000 - 3] = edge
    meas = np.ones(z.shape, bool)
    meas[::7] = False
    want = np.empty_like(z)
    _project_all(z, amp, want)
    want = np.where(meas, want, z)
    assert not np.all(meas == meas[0])
    for ks in (K._SERIAL, K._PARALLEL):
        got = z.copy()
        ks[0](got, amp, meas)
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8))
    out = torch.empty(z.shape, dtype=torch.from_numpy(z).dtype)
    project_into(torch.from_numpy(z), torch.from_numpy(amp), torch.from_numpy(meas), out, fused=True)
    assert np.array_equal(out.numpy().view(np.uint8), want.view(np.uint8))
    # without any pixel for the exact pass (all |z|^2 normal): the same bits as well
    zz = z[np.abs(z) > 1e-3][:100].copy()
    w2 = np.empty_like(zz)
    _project_all(zz, amp[:zz.size].copy(), w2)
    K._SERIAL[0](zz, amp[:zz.size].copy(), np.ones(zz.shape, bool))
    assert np.array_equal(zz.view(np.uint8), w2.view(np.uint8))


def test_kernels_inlining_the_helpers_are_cached_against_this_module():
    """numba's disk cache is keyed on the kernel file's stamp only: every kernel module that
    inlines the helpers compiles with ``jit_with_helpers``, whose cache stamp also carries a
    CRC-32 of ``modulus.py`` (so an edit of the rule invalidates their caches)."""
    import zlib
    from pathlib import Path

    from phasekit.cdi import _saddle_unrolled
    from phasekit.cdi.saddle import kernels as SK
    from phasekit.ptycho import kernels as PK

    text = Path(modulus.__file__).read_bytes()
    assert modulus.HELPERS_STAMP == format(zlib.crc32(text), "08x")
    for disp in (SK.eval2, SK.project_into, SK.apply2p, _saddle_unrolled.eval_kn,
                 _saddle_unrolled.apply_kn, PK.fused_kernels()[1]):
        stamp = disp._cache._cache_file._source_stamp
        assert stamp[1] == modulus.HELPERS_STAMP, disp
        assert stamp[0] is not None  # numba's own stamp of the kernel's source


def test_fused_cdi_projection_fix_up_tests_the_input_not_the_output():
    """When one pixel needs the exact rule (here z = 0), the fix-up pass must not project again
    the pixels the fast pass already projected onto a zero or tiny amplitude (they fail the fast
    test afterwards; projecting them twice changed the sign of zeros and last bits)."""
    import numpy as np
    import torch

    from phasekit.cdi.kernels import fourier_project
    from phasekit.operators.modulus import project_t

    g = np.random.default_rng(0)
    z = (g.standard_normal((8, 16)) + 1j * g.standard_normal((8, 16))).astype(np.complex64)
    amp = (g.random((8, 16)) * 3).astype(np.float32)
    amp[::2, ::3] = 0
    amp[1, 1], amp[1, 2] = 1e-30, 3e-20
    z[0, 0] = 0  # forces the fix-up pass
    want = project_t(torch.from_numpy(z), torch.from_numpy(amp)).numpy()
    got = torch.from_numpy(z.copy())
    fourier_project(got, torch.from_numpy(amp), torch.ones(z.shape, dtype=torch.bool))
    assert np.array_equal(got.numpy().view(np.uint32), want.view(np.uint32))
