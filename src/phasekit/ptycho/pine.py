r"""PINE: ePIE assisted by a denoiser (Yamada, Akaishi, Yatabe & Takayama, "Ptychographic phase
retrieval via a deep-learning-assisted iterative algorithm", J. Appl. Cryst. 57 (2024)).

One driver iteration (paper, sec. 3, the PINE procedure; eqs. (18)-(20)):

1. an ePIE sweep over the positions in a fresh random order (eqs. (18)-(19), the object and the
   probe both updated from the pre-update patch and probe) -- inherited from
   :class:`~phasekit.ptycho.engines.EPIE`, so every feature of the ePIE engine (sub-pixel
   positions, detector masks, and whatever the engine gains) applies unchanged;
2. the denoising step, once per sweep (eq. (20)):

   .. math:: \mathbf O\leftarrow(1-\rho)\,\mathbf O+\rho\,D(\mathbf O),\qquad \rho=0.49;

   ``rho = 0`` is ePIE exactly (tested bit for bit);
3. the recentring of the official MATLAB code (github.com/mada-ko/PINE, ``PINE.m``; not in the
   paper): the centre of mass of :math:`|\mathbf P|^2` (summed over probe modes, if any) is
   computed; if it lies one pixel or more from the array centre (truncation toward zero, as
   MATLAB's ``fix``), probe and object are both circularly shifted by that integer amount.  Our
   resolution: the centre is phasekit's probe centre ``M // 2`` (the MATLAB code's
   :math:`(M+1)/2` in 1-based indices is half a pixel away for even :math:`M` and would move
   every phasekit probe by one pixel at the first sweep).  ``recentre=False`` turns it off.

**The denoiser** :math:`D` is any callable ``x -> x`` on the complex object (a 2-D complex
torch tensor, :math:`N_y\times N_x`, the whole canvas as the official code does); it may return
a tensor or a NumPy array of the same shape.  The paper's is a RealSN DnCNN trained on
dead-leaves images applied to the real and imaginary parts (eq. (22)): the shipped weights are
loaded with ``phasekit.learn.denoisers.load_complex_denoiser("default")`` (or
``"nonexpansive"``) and passed here, or chosen on the command line with ``phasekit reconstruct
--algorithm pine --denoiser default|nonexpansive|FILE``.  Any real-image denoiser (a deepinv
denoiser, a BM3D wrapper) goes through ``phasekit.learn.denoisers.ComplexDenoiser``.

Without a denoiser (``denoiser=None``, e.g. a bare ``solve(problem, algorithm="pine")``) the
engine uses :class:`GaussianDenoiser` (a normalised Gaussian blur of ``fallback_sigma`` pixels,
Lipschitz constant 1), which needs no weight file.  That is our choice, not the paper's; the
command line's default is the shipped DnCNN.

Defaults: ``alpha_o = 1``, ``alpha_p = 0.2`` (the official demo ``main.m``), ``rho = 0.49``
(every experiment of the paper).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from ..core.errors import ConfigError
from ..core.threads import outer_cpu_threads
from ..engine import CallableParam
from .engines import EPIE, EPIEConfig


class GaussianDenoiser:
    """Normalised Gaussian blur of the real and imaginary parts (reflecting borders): a
    linear, nonexpansive, file-free stand-in denoiser.

    Examples
    --------
    >>> d = GaussianDenoiser(0.7)
    >>> z = torch.ones(16, 16, dtype=torch.complex64)
    >>> bool(torch.allclose(d(z), z))
    True
    """

    def __init__(self, sigma: float = 0.7):
        self.sigma = float(sigma)
        r = max(1, int(math.ceil(3 * self.sigma)))
        t = torch.arange(-r, r + 1, dtype=torch.float64)
        k = torch.exp(-0.5 * (t / self.sigma) ** 2)
        self.kernel = k / k.sum()

    def __call__(self, obj: torch.Tensor) -> torch.Tensor:
        return self._parts(obj, lambda p, k: self._blur(self._blur(p, k, 2), k, 3))

    def reference(self, obj: torch.Tensor) -> torch.Tensor:
        """The same blur through ``conv2d`` (the torch twin of :meth:`__call__`'s shifted sums)."""
        r = len(self.kernel) // 2
        return self._parts(obj, lambda p, k: F.conv2d(
            F.pad(F.conv2d(F.pad(p, (0, 0, r, r), mode="reflect"), k.reshape(1, 1, -1, 1)),
                  (r, r, 0, 0), mode="reflect"), k.reshape(1, 1, 1, -1)))

    def _parts(self, obj, blur2d) -> torch.Tensor:
        """``blur2d`` on the real and imaginary parts (or the real image) as (C, 1, H, W)."""
        z = torch.as_tensor(obj)
        parts = torch.stack([z.real, z.imag])[:, None] if z.is_complex() else z[None, None]
        y = blur2d(parts, self.kernel.to(parts.dtype))
        return torch.complex(y[0, 0], y[1, 0]) if z.is_complex() else y[0, 0]

    @staticmethod
    def _blur(x: torch.Tensor, k: torch.Tensor, axis: int) -> torch.Tensor:
        """``x`` correlated with the taps ``k`` along ``axis`` (2: y, 3: x) with reflecting
        borders, as a sum of shifted views of the padded array (``conv2d`` with a (7, 1) or
        (1, 7) kernel and one channel took 17 ms per axis for a 512^2 complex object on an Intel
        Xeon core; this 2 ms, the same values in our tests; :meth:`reference` keeps the
        ``conv2d`` form)."""
        r = len(k) // 2
        padded = F.pad(x, (0, 0, r, r) if axis == 2 else (r, r, 0, 0), mode="reflect")
        n = x.shape[axis]
        out = padded.narrow(axis, 0, n) * k[0]
        for i in range(1, len(k)):
            out.add_(padded.narrow(axis, i, n), alpha=float(k[i]))
        return out

    def __repr__(self) -> str:
        return f"GaussianDenoiser(sigma={self.sigma})"


class PINEConfig(EPIEConfig):
    alpha_o: float = Field(1.0, gt=0.0, le=2.0, description="object step alpha, eq. (18)")
    alpha_p: float = Field(0.2, gt=0.0, le=2.0, description="probe step beta, eq. (19)")
    rho: float = Field(0.49, ge=0.0, le=1.0, description="denoising relaxation rho, eq. (20) "
                       "(the paper: (0, 1/2), 0.49; 0 = ePIE)")
    denoiser: CallableParam = Field(None, description="callable D(object) -> object (complex "
                                    "2-D tensor); None: GaussianDenoiser(fallback_sigma)")
    fallback_sigma: float = Field(0.7, gt=0.0, le=10.0, description="width (pixels) of the "
                                  "Gaussian stand-in used when no denoiser is given")
    recentre: bool = Field(True, description="the official code's probe/object recentring "
                           "after each sweep")


def recentre_shift(P: torch.Tensor) -> tuple[int, int]:
    """The official code's integer recentring shift of a probe (``(..., My, Mx)``): the centre
    of mass of :math:`|P|^2` minus the array centre ``M // 2``, truncated toward zero.

    Examples
    --------
    >>> P = torch.zeros(8, 8, dtype=torch.complex64); P[6, 4] = 1
    >>> recentre_shift(P)
    (2, 0)
    """
    w = (P.abs() ** 2).to(torch.float64)
    w = w.reshape(-1, *w.shape[-2:]).sum(0)
    tot = float(w.sum())
    if not math.isfinite(tot) or tot <= 0:
        return 0, 0
    my, mx = w.shape
    cy = float((w.sum(1) * torch.arange(my, dtype=torch.float64)).sum()) / tot
    cx = float((w.sum(0) * torch.arange(mx, dtype=torch.float64)).sum()) / tot
    return int(math.trunc(cy - my // 2)), int(math.trunc(cx - mx // 2))


class PINE(EPIE):
    r"""PINE (Yamada et al. 2024): the ePIE sweep, then :math:`\mathbf O\leftarrow(1-\rho)
    \mathbf O+\rho D(\mathbf O)` once per sweep, then the official code's recentring.

    History adds ``denoise_change`` (:math:`\|D(\mathbf O)-\mathbf O\|/\|\mathbf O\|`) and
    ``recentre_y``/``recentre_x`` (the shift applied, pixels).  See :mod:`phasekit.ptycho.pine`.
    """

    name = "pine"

    Config = PINEConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        self.rho = float(cfg.rho)
        self.denoiser = cfg.denoiser if cfg.denoiser is not None else GaussianDenoiser(cfg.fallback_sigma)
        self.recentre = bool(cfg.recentre)

    def denoise(self) -> float:
        """Eq. (20) in place on the object; returns the relative change of the denoiser."""
        O = self.O
        if self.rho == 0.0:
            return 0.0
        # the run's thread count, not the one thread a small frame gets (core.threads): the
        # denoiser works on the whole object, a network's convolutions on many channels
        with torch.no_grad(), outer_cpu_threads():
            d = self.denoiser(O.detach().clone())
        d = torch.as_tensor(np.asarray(d) if not isinstance(d, torch.Tensor) else d)
        if tuple(d.shape) != tuple(O.shape):
            raise ConfigError(f"pine: the denoiser returned shape {tuple(d.shape)} for an object "
                              f"of shape {tuple(O.shape)}")
        d = d.to(device=O.device, dtype=O.dtype)
        if not bool(torch.isfinite(torch.view_as_real(d)).all()):
            raise ConfigError("pine: the denoiser returned non-finite values")
        # norms over the real views: the same numbers, ~80x faster than torch's complex norm
        nrm = float(torch.linalg.vector_norm(torch.view_as_real(O)))
        change = float(torch.linalg.vector_norm(torch.view_as_real(d - O))) / max(nrm, 1e-300)
        O.mul_(1.0 - self.rho).add_(d, alpha=self.rho)
        return change

    def do_recentre(self) -> tuple[int, int]:
        """Shift probe and object by the official recentring rule (no-op if centred)."""
        sy, sx = recentre_shift(self.P)
        if sy or sx:
            self.P.copy_(torch.roll(self.P, shifts=(-sy, -sx), dims=(-2, -1)))
            self.O.copy_(torch.roll(self.O, shifts=(-sy, -sx), dims=(-2, -1)))
        return sy, sx

    def end_sweep(self, k, e, stats):
        super().end_sweep(k, e, stats)
        stats["denoise_change"] = self.denoise()
        sy, sx = self.do_recentre() if self.recentre else (0, 0)
        stats["recentre_y"] = float(sy)
        stats["recentre_x"] = float(sx)
