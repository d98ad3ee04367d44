"""GENFIRE-style reconstruction ("GENFIRE-lite"): Fourier gridding plus alternating projections.

After Pryor et al., Sci. Rep. 7, 10409 (2017) as summarised by the Pham thesis (Ch. 3, §3.1 and
§3.4: gridding, oversampling, alternating projections) and the GENFIRE-Python description;
re-implemented here from that description:

1. **Gridding.**  Each projection, zero padded to the ``M_x x M_y`` lateral size of an
   oversampled ``M = ceil(s N)`` grid, is Fourier transformed (centred, unnormalised: the Fourier
   slice theorem then matches :class:`~phasekit.tomo.projectors.FourierSliceProjector`) and its
   samples are placed at the rotated points ``R [k_x, k_y, 0]``.  Every grid point within
   ``cutoff`` voxels of a sample receives it with the inverse-distance weight ``1/d`` (Shepard
   interpolation); a grid point's value is the weighted mean.  Samples beyond the resolution
   sphere (``|k| > 1/2`` cycle/voxel) are dropped, then Hermitian symmetry
   ``F(-k) = conj F(k)`` is enforced by merging the accumulations of ``k`` and ``-k``.
2. **R_free.**  A random ``rfree_fraction`` of the gridded points (with their Hermitian mates)
   is withheld from the constraint; ``R_free = sum | |F| - |F_meas| | / sum |F_meas|`` over them
   is recorded every iteration (GENFIRE's error metric on withheld points).
3. **Iteration** on the ``M^3`` grid: ``y = P_C(x)`` (positivity, zero outside the central
   ``N^3`` box and outside the support), ``F = FFT(y)``, ``F <- F_meas`` on the constrained
   points, ``x = Re IFFT(F)``.  Simplification (stated): the constraint is enforced fully from
   the first iteration (GENFIRE ramps a per-point "constraint enforcement" by confidence).
"""
from __future__ import annotations

import math

import torch
from pydantic import Field

from ..core.fft import from_work, to_work
from ..engine import StrictConfig
from ..core.rng import make_rng
from ..engine import Algorithm
from .projectors import padded_shape


class GENFIREConfig(StrictConfig):
    oversampling: float = Field(2.0, ge=1.0, le=4.0, description="array oversampling ratio")
    cutoff: float = Field(0.7, gt=0.0, lt=1.0, description="gridding cutoff distance (voxels)")
    rfree_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="withheld fraction (R_free)")
    rfree_seed: int = Field(0, ge=0, description="seed of the withheld points")


def _hermitian_flip(a: torch.Tensor) -> torch.Tensor:
    """``a[-k]`` on a centred grid (centre ``M // 2``); for even M the Nyquist plane maps to
    itself after the roll, which is harmless for accumulation weights."""
    out = torch.flip(a, dims=(0, 1, 2))
    for d, m in enumerate(a.shape):
        if m % 2 == 0:
            out = torch.roll(out, 1, dims=d)
    return out


def grid_fourier(problem, oversampling: float = 2.0, cutoff: float = 0.7):
    """Gridded 3-D Fourier constraint of ``problem``: ``(F_meas, measured)`` on the padded grid."""
    M = padded_shape(problem.shape, oversampling)
    Mx, My, Mz = M
    dev, rdt = problem.device, problem.dtype
    cdt = torch.complex64 if rdt == torch.float32 else torch.complex128
    n, Dx, Dy = problem.projections.shape
    if Dx > Mx or Dy > My:
        Mx, My = max(Mx, Dx), max(My, Dy)
        M = (Mx, My, Mz)
    b = problem.weighted(problem.projections)
    pad = torch.zeros((n, Mx, My), dtype=rdt, device=dev)
    ox, oy = Mx // 2 - Dx // 2, My // 2 - Dy // 2
    pad[:, ox:ox + Dx, oy:oy + Dy] = b
    Fp = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(pad, dim=(-2, -1))), dim=(-2, -1))
    fx = (torch.arange(Mx, dtype=torch.float64, device=dev) - Mx // 2) / Mx
    off = float(getattr(problem, "center_offset", 0.0))
    if off:  # rotation axis at Dx // 2 + off: undo that detector shift (shift theorem)
        ph = 2.0 * math.pi * fx * off
        Fp = Fp * torch.polar(torch.ones_like(ph), ph).to(Fp.dtype)[:, None]
    fy = (torch.arange(My, dtype=torch.float64, device=dev) - My // 2) / My
    FX, FY = torch.meshgrid(fx, fy, indexing="ij")
    f2 = torch.stack([FX, FY], -1).reshape(-1, 2)
    R = torch.as_tensor(problem.fst.R, dtype=torch.float64, device=dev)
    num = torch.zeros(Mx * My * Mz, dtype=cdt, device=dev)
    wsum = torch.zeros(Mx * My * Mz, dtype=torch.float64, device=dev)
    Mt = torch.tensor(M, dtype=torch.float64, device=dev)
    inside_sphere = (f2.pow(2).sum(-1) <= 0.25)
    for i in range(n):
        k = f2 @ R[i, :, :2].T  # (P, 3) cycles/voxel
        keep = inside_sphere & (k.abs() <= 0.5).all(-1)
        k = k[keep]
        vals = Fp[i].reshape(-1)[keep]
        idx = k * Mt + torch.div(Mt, 2, rounding_mode="floor")
        base = torch.floor(idx)
        for cx in (0, 1):
            for cy in (0, 1):
                for cz in (0, 1):
                    c = base + torch.tensor([cx, cy, cz], dtype=torch.float64, device=dev)
                    d = (idx - c).pow(2).sum(-1).sqrt()
                    ok = (d < cutoff) & (c >= 0).all(-1) & (c < Mt).all(-1)
                    if not bool(ok.any()):
                        continue
                    ci = c[ok].long()
                    lin = (ci[:, 0] * My + ci[:, 1]) * Mz + ci[:, 2]
                    w = 1.0 / d[ok].clamp_min(1e-6)
                    num.index_add_(0, lin, vals[ok].to(cdt) * w.to(rdt))
                    wsum.index_add_(0, lin, w)
    num = num.reshape(M)
    wsum = wsum.reshape(M)
    num = num + torch.conj(_hermitian_flip(num))
    wsum = wsum + _hermitian_flip(wsum)
    measured = wsum > 0
    Fm = torch.where(measured, num / wsum.clamp_min(1e-300).to(rdt), torch.zeros_like(num))
    return Fm, measured, M


def _wrapped_index(lo: int, n: int, m: int, device) -> torch.Tensor:
    """Where the centred indices ``lo .. lo + n - 1`` of a length-``m`` axis lie after
    ``ifftshift`` (the FFT's own order: centred index ``c`` goes to ``(c - m // 2) mod m``)."""
    return (torch.arange(lo, lo + n, device=device) - m // 2) % m


class GENFIRE(Algorithm):
    """GENFIRE-lite (see module docstring).  History: ``R_F`` (Eqn 3.9, FST projector) and
    ``R_free`` (withheld Fourier points).

    The iteration runs in the FFT's own (wrapped) order and on the half spectrum: the iterate
    is real and the gridded constraint Hermitian (its accumulations of ``k`` and ``-k`` are
    merged), so ``Re IFFT(F)`` of step 3 is the real inverse of the half spectrum.  Per
    iteration one real FFT pair and the substitution on the half spectrum, against the complex
    pair and four ``fftshift`` copies of the padded grid of the literal form: at 128^3 from 61
    projections (256^3 grid, one AMD EPYC core, side by side) a step 1546 -> 396 ms, a step with
    its metrics (R_F, R_free) 2.8 -> 1.3 s; iterates equal to 3e-7 relative (a test checks the
    literal form to rounding).  ``R_free`` is measured on the spectrum the next iteration
    transforms, which it then reuses.  ``x`` (the checkpointed state) is the padded iterate in
    the centred order, as before.
    """

    name = "genfire"
    state_names = ("x",)

    Config = GENFIREConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        oversampling, cutoff = cfg.oversampling, cfg.cutoff
        rfree_fraction, rfree_seed = cfg.rfree_fraction, cfg.rfree_seed
        key = ("genfire", float(oversampling), float(cutoff), float(rfree_fraction), int(rfree_seed))
        if key not in problem._ops:
            Fm, meas, M = grid_fourier(problem, oversampling, cutoff)
            free = torch.zeros_like(meas)
            if rfree_fraction > 0:
                g = make_rng(rfree_seed)
                r = torch.as_tensor(g.random(meas.shape) < rfree_fraction, device=meas.device)
                free = (r | _hermitian_flip(r)) & meas
            h = M[2] // 2 + 1  # the half spectrum, wrapped order
            Fh, mh, fh = (to_work(a)[..., :h].contiguous() for a in (Fm, meas & ~free, free))
            del Fm, meas, free
            # R_free over the full grid from the half: the columns whose mate -k lies outside it
            # count twice, the self-paired ones (0 and, for even M_z, M_z / 2) once
            idx = fh.reshape(-1).nonzero().squeeze(1)
            col = idx % h
            w = torch.where((col == 0) | ((col == h - 1) & (M[2] % 2 == 0)), 1.0, 2.0).to(problem.dtype)
            b = Fh.reshape(-1)[idx].abs()
            problem._ops[key] = (Fh, mh, (idx, w, b, float((b * w).sum())), M)
        self.Fm, self.meas, self._free, self.M = problem._ops[key]
        N = problem.shape
        self.lo = [m // 2 - s // 2 for m, s in zip(self.M, N)]
        box = torch.zeros(self.M, dtype=torch.bool, device=problem.device)
        sl = tuple(slice(l, l + s) for l, s in zip(self.lo, N))
        box[sl] = problem.support
        self.sl = sl
        self._box = to_work(box).contiguous()
        self._idx = [_wrapped_index(l, s, m, problem.device) for l, s, m in zip(self.lo, N, self.M)]
        self._xw = None
        self._z = None  # the half spectrum of P_C(x) for the current x, when already taken

    # the checkpointed state: the padded iterate in the centred order
    @property
    def x(self) -> torch.Tensor:
        return from_work(self._xw)

    @x.setter
    def x(self, v: torch.Tensor) -> None:
        self._xw = to_work(v.to(device=self.problem.device, dtype=self.problem.dtype)).contiguous()
        self._z = None

    def _pad(self, v):
        x = torch.zeros(self.M, dtype=self.problem.dtype, device=self.problem.device)
        x[self.sl] = v
        return x

    def initialize(self, x0):
        self.x = self._pad(x0.to(device=self.problem.device, dtype=self.problem.dtype))

    def _constrain_w(self, xw):
        y = xw.clamp_min(0) if self.problem.positive else xw
        return torch.where(self._box, y, torch.zeros((), dtype=y.dtype, device=y.device))

    def _spectrum(self) -> torch.Tensor:
        if self._z is None:
            self._z = torch.fft.rfftn(self._constrain_w(self._xw))
        return self._z

    def step(self, k):
        z = torch.where(self.meas, self.Fm, self._spectrum())
        self._xw = torch.fft.irfftn(z, s=self.M)
        self._z = None

    def estimate(self):
        y = self._xw
        for d, i in enumerate(self._idx):  # the central N^3 box, in the centred order
            y = torch.index_select(y, d, i)
        y = y.clamp_min(0) if self.problem.positive else y
        return torch.where(self.problem.support, y, torch.zeros((), dtype=y.dtype, device=y.device))

    def metrics(self):
        m = {"R_F": self.problem.rfactor(self.estimate())}
        idx, w, b, den = self._free
        if idx.numel():
            z = self._spectrum()  # reused by the next step
            num = float((((z.reshape(-1)[idx].abs() - b).abs()) * w).sum())
            m["R_free"] = num / max(den, 1e-30)
        return m
