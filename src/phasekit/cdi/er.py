"""Error reduction (Gerchberg-Saxton-Fienup)."""
from __future__ import annotations

from ..engine import StrictConfig
from .base import ProjectionAlgorithm
from .kernels import ER
from .problem import CDIProblem


class ERConfig(StrictConfig):
    """ER has no parameter of its own."""


class ErrorReduction(ProjectionAlgorithm):
    """ER: ``x_{n+1} = P_C P_m x_n`` (Fienup, Appl. Opt. 21, 2758 (1982); Marchesini 2007 eq. (13)).
    Projected steepest descent on ``eps_m^2`` with unit step: converges to a local minimum,
    used for final refinement.

    The reported estimate ``P_C y = P_C P_m x_n`` is the new iterate ``x_{n+1}`` itself (the ER
    rule writes exactly ``P_C y``), so :meth:`metrics` takes the R-factor on ``x_{n+1}`` and
    keeps its transform, which the next step then uses as its first FFT: with metrics every
    iteration (the driver's default) ER does two FFTs per iteration instead of three, and no
    copy of the estimate.  The transform is modulus-projected in the same pass that takes the
    R-factor's sums (:meth:`CDIProblem.rfactor_project`), so the next step goes straight on
    to its inverse FFT.  The values are those of the plain form to the bit (the same FFT of the
    same array, the same block sums); it falls back to the plain form when the support changed
    after the step (shrink-wrap) or the iterate was changed.  A batch of starts reuses its
    batched transform (or one transform per image where the batch steps image by image,
    :meth:`metrics_batch`), projected in the step as before."""

    name = "er"
    mode = ER
    keep_best_default = False
    batchable = True  # runs a batch of starts (docs/cdi.md "Batched starts")
    Config = ERConfig

    def step(self, k):
        super().step(k)
        p = self.problem
        # what the estimate P_C y == x_{n+1} depends on, as the step left it
        self._stepped = (self.x, self.x._version, p.support, p.support._version)

    def _unchanged(self) -> bool:
        """True when ``x`` is still ``P_C y`` of the last step: the same iterate and support,
        neither modified since, and the problem's objective the R-factor."""
        p = self.problem
        s = getattr(self, "_stepped", None)
        return (s is not None and type(p).objective is CDIProblem.objective and s[0] is self.x
                and s[1] == self.x._version and s[2] is p.support and s[3] == p.support._version)

    def metrics(self):
        p = self.problem
        if self.batched or not self._unchanged():
            return super().metrics()
        # the transform is projected on the way (one pass over it for the R-factor's sums and
        # the next step's projection), so the next step goes on to its inverse FFT
        rf, z = p.rfactor_project(self.x)
        self.keep_transform(z, projected=True)
        return {p.objective_name: rf}

    def metrics_batch(self):
        p = self.problem
        if not self.batched or not self._unchanged():
            return super().metrics_batch()
        # (image by image for large CPU images, as the batch then steps: a list of transforms)
        rfs, z = p.rfactor_batch_transform(self.x)
        self.keep_transform(z)
        return {p.objective_name: rfs}
