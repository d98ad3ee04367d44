"""Projection algorithms share one loop body: ``Z = F x``; ``Z <- P~_m Z``; ``y = F^-1 Z``;
``x <- U(x, y)`` where only the real-space rule ``U`` differs (ER, HIO, RAAR).  The estimate they
report is ``P_C y = P_C P_m x`` (Marchesini 2007 after eq. (21): "the reported estimate should be
P_m rho (or P_s P_m rho), not rho").

On a real-object problem (``problem.use_rfft``) the iterate is a real tensor and the loop body
runs on the real FFT pair: ``Z = rfftn x``; ``Z <- P~_h Z`` (the half-spectrum projection of
:mod:`phasekit.cdi.halfspectrum`, which equals the real part of the complex path's projection);
``y = irfftn Z``.  ``problem.rfft = False`` keeps the complex path.

Batched starts (docs/cdi.md "Batched starts"): ER, HIO and RAAR also run ``N`` random starts as
one ``(N, *shape)`` iterate with one support per start (``problem.support`` of shape
``(N, *shape)`` while the engine's batched path runs): one batched FFT pair per iteration and
the fused kernels a single image uses (:mod:`.kernels`, "batched starts"), so each start follows
the sequential run's arithmetic (only the FFT rounding of a batched transform may differ from a
single one).  Large images on the CPU (:meth:`CDIProblem.batch_by_image`) step image by image
inside the batch."""
from __future__ import annotations

import torch

from ..engine import Algorithm
from .kernels import (
    constrain,
    constrain_batch,
    fourier_project,
    fourier_project_batch,
    fourier_project_half,
    fourier_project_half_batch,
    realspace_update,
    realspace_update_batch,
)


class ProjectionAlgorithm(Algorithm):
    """``x <- U(x, P_m x)`` with the fused Fourier projection (see :mod:`.kernels`)."""

    mode: int = 0
    state_names = ("x", "y")
    #: ER / HIO / RAAR set this: the rule runs on a batch of starts (see :meth:`supports_batch`)
    batchable = False

    @classmethod
    def supports_batch(cls, problem) -> bool:
        """Whether this algorithm can run a batch of starts on ``problem`` (the engine's batched
        path asks every stage of a chain): true for the rules that declare ``batchable``."""
        return bool(cls.batchable)

    @property
    def batched(self) -> bool:
        """True when the iterate holds a batch of starts (one more axis than the data)."""
        return isinstance(getattr(self, "x", None), torch.Tensor) and self.x.ndim > self.problem.ndim

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        # the feedback / relaxation parameter of the config; rules without one (ER, C-PRIME)
        # ignore it in the kernel and take 0
        self.beta = float(getattr(self.cfg, "beta", 0.0)) if self.Config is not None else 0.0

    def initialize(self, x0):
        self.x = self.problem.as_iterate(x0).clone()
        self.y = None
        self._fx = None

    def load_state_dict(self, state):
        super().load_state_dict(state)
        # a checkpoint of the other path (real vs complex iterate) continues on this one
        if isinstance(self.x, torch.Tensor):
            self.x = self.problem.as_iterate(self.x)
        if isinstance(self.y, torch.Tensor):
            self.y = self.problem.as_iterate(self.y)

    def keep_transform(self, z, projected: bool = False) -> None:
        """Keep ``z``, the transform of the current iterate that a metric has just taken (the
        batched or the per-image transforms of a batch), for the next step's first FFT (ER: see
        :meth:`ErrorReduction.metrics <phasekit.cdi.er.ErrorReduction.metrics>`); ``projected``:
        ``z`` is already modulus-projected (a single image), so the step goes on to its inverse
        FFT."""
        self._fx = (z, self.x, self.x._version, bool(projected))

    def _kept_transform(self):
        """``(z, projected)``: the transform :meth:`keep_transform` kept, if it is of this very
        iterate (the same tensor, not modified in place since), else ``(None, False)``; used
        once, so any later step transforms again."""
        fx, self._fx = getattr(self, "_fx", None), None
        if fx is not None and fx[1] is self.x and fx[2] == self.x._version:
            return fx[0], fx[3]
        return None, False

    def fourier_step(self) -> torch.Tensor:
        """``y = P_m x`` (one FFT pair); unmeasured Fourier pixels keep their value.  On the
        real-FFT path ``y = Re P_m x`` from the half spectrum."""
        p = self.problem
        batched = self.batched
        kept, projected = self._kept_transform()
        if p.use_rfft:
            z = p.rfft_half(self.x) if kept is None else kept
            if not projected:
                (fourier_project_half_batch if batched else fourier_project_half)(z, p.half())
            if batched:
                # the inverse image by image, at every size: a batched inverse real transform is
                # not the single one to the bit on every CPU (MKL's column transforms over a
                # batch rounded differently on an Intel Xeon; real HIO then drifted away from
                # the sequential start), and for large images the in-place split form of irfftw
                # over a batch is 2x slower than N single ones (one AMD EPYC core, 256^2).  The
                # forward rfftn and the complex pair over a batch were the single ones to the
                # bit on both hosts.
                self.y = torch.stack([p.irfft_half(zi, overwrite=True) for zi in z])
            else:
                self.y = p.irfft_half(z, overwrite=True)
            return self.y
        z = p.fft(self.x) if kept is None else kept
        if not projected:
            (fourier_project_batch if batched else fourier_project)(z, p.amp, p.measured)
        # in place: z is this step's own transform (fresh, or the one a metric kept for it) and
        # is not read again (an in-place MKL inverse is 1.2-1.5x faster from 480^2 on a Xeon)
        self.y = p.ifft(z, out=z)
        return self.y

    def step(self, k):
        p = self.problem
        if self.batched and p.batch_by_image():
            self._step_by_image()
            return
        y = self.fourier_step()
        update = realspace_update_batch if self.batched else realspace_update
        update(self.x, y, p.support, self.mode, self.beta, real=p.real, positive=p.positive)

    def _step_by_image(self):
        """One step of a batch, image by image (large images on the CPU: each image's FFT pair
        and passes stay in cache, :meth:`CDIProblem.batch_by_image`); the sequential run's
        arithmetic exactly."""
        p = self.problem
        if self.y is None or self.y.shape != self.x.shape:
            self.y = torch.empty_like(self.x)
        kept, _ = self._kept_transform()  # one transform per image here (not projected)
        for i, (xi, yi, si) in enumerate(zip(self.x, self.y, p.support)):
            if p.use_rfft:
                z = p.rfft_half(xi) if kept is None else kept[i]
                fourier_project_half(z, p.half())
                yi.copy_(p.irfft_half(z, overwrite=True))
            else:
                z = p.fft(xi) if kept is None else kept[i]
                fourier_project(z, p.amp, p.measured)
                p.ifft(z, out=yi)
            realspace_update(xi, yi, si, self.mode, self.beta, real=p.real, positive=p.positive)

    def estimate(self):
        x = self.x if self.y is None else self.y
        if self.batched:
            p = self.problem
            return constrain_batch(x, p.support, real=p.real, positive=p.positive)
        return self.problem.constrain(x)

    def metrics_batch(self) -> dict[str, list[float]]:
        """Per-start metrics of a batched run: the R-factor of each start's estimate (one
        batched FFT, see :meth:`CDIProblem.rfactor_batch`)."""
        p = self.problem
        if p.batch_by_image():  # large images on the CPU: P_C then the FFT, image by image
            x = self.x if self.y is None else self.y
            return {p.objective_name: [
                p.rfactor(constrain(xi, si, real=p.real, positive=p.positive))
                for xi, si in zip(x, p.support)]}
        return {p.objective_name: p.rfactor_batch(self.estimate())}
