"""The compiled single-axis projector kernels (phasekit.tomo.kernels) against their torch twin
(the grid_sample path of RealSpaceProjector), their adjointness, and when they apply."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phasekit.tomo import kernels
from phasekit.tomo.projectors import RealSpaceProjector

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not available")

D64 = torch.float64

# (volume, detector, centre offset): cubic, non-cubic with an off-centre axis, extended slab
CASES = [((12, 6, 12), None, 0.0), ((13, 5, 9), None, 1.3), ((22, 8, 4), (14, 6), -0.7)]


def _pair(shape, det, off, dtype, angles):
    fast = RealSpaceProjector(shape, angles, det, dtype=dtype, center_offset=off)
    ref = RealSpaceProjector(shape, angles, det, dtype=dtype, center_offset=off, kernels=False)
    return fast, ref


@pytest.mark.parametrize("shape,det,off", CASES)
def test_kernels_match_grid_sample_twin(shape, det, off):
    rng = np.random.default_rng(1)
    ang = np.concatenate([rng.uniform(-89, 89, 5), [0.0, 90.0, -45.0]])
    fast, ref = _pair(shape, det, off, D64, ang)
    assert fast.uses_kernels and not ref.uses_kernels
    x = torch.as_tensor(rng.standard_normal(shape))
    y = torch.as_tensor(rng.standard_normal(fast.out_shape))
    pf, pr = fast.forward(x), ref.forward(x)
    bf, br = fast.backproject(y), ref.backproject(y)
    # same operator; the reference computes its coordinates in a normalised float grid
    assert float((pf - pr).abs().max() / pr.abs().max()) < 1e-10
    assert float((bf - br).abs().max() / br.abs().max()) < 1e-10
    assert float(pr.abs().max()) > 1.0 and float(br.abs().max()) > 1.0


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (D64, 1e-12)])
@pytest.mark.parametrize("shape,det,off", CASES)
def test_kernels_are_exact_adjoints(shape, det, off, dtype, tol):
    rng = np.random.default_rng(2)
    fast, _ = _pair(shape, det, off, dtype, rng.uniform(-80, 80, 9))
    for _ in range(3):
        x = torch.as_tensor(rng.standard_normal(shape)).to(dtype)
        y = torch.as_tensor(rng.standard_normal(fast.out_shape)).to(dtype)
        Ax, Aty = fast.forward(x).double(), fast.backproject(y).double()
        a = float((Ax * y.double()).sum())
        b = float((x.double() * Aty).sum())
        # relative to ||A x|| ||y|| (random vectors make <A x, y> itself nearly cancel)
        scale = float(Ax.norm() * y.double().norm())
        assert abs(a - b) <= tol * scale, (a, b, scale)
        assert abs(a) > 1e-3 * scale  # not a vacuous comparison of zeros
        # the float32 pair is float32 arithmetic, not a float64 one in disguise
        assert fast.forward(x).dtype == dtype


def test_float32_kernels_match_twin_to_rounding():
    rng = np.random.default_rng(3)
    fast, ref = _pair((16, 4, 12), None, 0.5, torch.float32, np.linspace(-70, 70, 11))
    x = torch.as_tensor(rng.random((16, 4, 12)), dtype=torch.float32)
    pf, pr = fast.forward(x), ref.forward(x)
    assert float((pf - pr).abs().max() / pr.abs().max()) < 1e-5


def test_kernels_apply_only_to_single_axis_geometry():
    shape = (8, 4, 8)
    assert RealSpaceProjector(shape, [-20.0, 10.0]).uses_kernels
    assert RealSpaceProjector(shape, [[0.0, -20.0, 0.0], [0.0, 15.0, 0.0]]).uses_kernels
    # a dual-axis / general Euler geometry stays on the reference path, and is still right
    ang = [[90.0, 20.0, 0.0], [10.0, 5.0, 3.0]]
    op = RealSpaceProjector(shape, ang, dtype=D64)
    assert not op.uses_kernels
    # non-integer row offset between volume and detector centres: reference path
    assert not RealSpaceProjector(shape, [0.0], vol_centre=(4, 1.5, 4)).uses_kernels
    assert not RealSpaceProjector(shape, [0.0], kernels=False).uses_kernels


def test_kernels_single_slice_sum_along_beam():
    # at 0 tilt a projection is the sum along z; at 90 degrees the sum along x (sign: x = -w)
    vol = np.zeros((10, 3, 10))
    vol[7, 1, 2] = 2.0
    op = RealSpaceProjector(vol.shape, [0.0, 90.0], dtype=D64)
    p = op.forward(torch.as_tensor(vol)).numpy()
    assert p[0, 7, 1] == pytest.approx(2.0) and p[0].sum() == pytest.approx(2.0)
    assert p[1, 5 - (2 - 5), 1] == pytest.approx(2.0) and p[1].sum() == pytest.approx(2.0)


@pytest.mark.parametrize("shape,det,off", [((16, 6, 12), None, 0.0), ((13, 7, 11), None, 1.3),
                                           ((20, 8, 4), (14, 6), 0.0)])
def test_fst_without_tilt_axis_padding_is_the_same_operator(shape, det, off):
    from phasekit.tomo.projectors import FourierSliceProjector

    rng = np.random.default_rng(4)
    ang = rng.uniform(-75, 75, 6)
    a = FourierSliceProjector(shape, ang, det, dtype=D64, center_offset=off)
    b = FourierSliceProjector(shape, ang, det, dtype=D64, center_offset=off, pad_tilt_axis=True)
    assert a.pad_shape[1] == shape[1] and b.pad_shape[1] == 2 * shape[1]
    x = torch.as_tensor(rng.standard_normal(shape))
    y = torch.as_tensor(rng.standard_normal(a.out_shape))
    pa, pb = a.forward(x), b.forward(x)
    assert float((pa - pb).abs().max() / pb.abs().max()) < 1e-12
    ga, gb = a.adjoint(y), b.adjoint(y)
    assert float((ga - gb).abs().max() / gb.abs().max()) < 1e-12
    # a general geometry keeps every axis padded
    c = FourierSliceProjector(shape, [[30.0, 20.0, 0.0]], det, dtype=D64)
    assert c.pad_shape[1] == 2 * shape[1]
