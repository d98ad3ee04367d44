"""The Lagrangian of HIO as a saddle-point problem, in real space (the plain-torch reference).

Marchesini, "Phase retrieval and saddle-point optimization", J. Opt. Soc. Am. A 24, 3289 (2007),
eqs. (17)-(18): ``L(rho) = ||P_m rho - rho||^2 - ||P_sbar rho||^2`` and its steepest
descent-ascent directions; the success metric of the benchmarks.  See :mod:`phasekit.cdi.saddle`
for the notation.
"""
from __future__ import annotations

import math

import torch

from ...core.errors import ConfigError
from ...operators.projections import apply_constraints, modulus_projection
from ..hio import hio_direction

__all__ = ["lagrangian", "sda_directions", "support_violation"]


def _linear_constraint(problem, x: torch.Tensor) -> torch.Tensor:
    """``P_s x`` for the linear constraint set of the problem (support, and realness)."""
    if problem.positive:
        raise ConfigError("the saddle-point formulation needs a linear constraint (support, "
                          "realness); positivity is a cone, use 'hio' instead")
    return apply_constraints(x, problem.support, real=problem.real)


def _modulus(problem, x: torch.Tensor) -> torch.Tensor:
    """``P_m x`` (reference, plain torch)."""
    return problem.ifft(modulus_projection(problem.fft(x), problem.amp, problem.measured))


def lagrangian(problem, x: torch.Tensor) -> float:
    """Marchesini 2007 eq. (17): ``L(rho) = ||P_m rho - rho||^2 - ||P_sbar rho||^2``.

    ``eps_m^2`` is taken over the measured Fourier pixels (``P~_m`` is the identity elsewhere);
    with the unitary FFT ``||P_m rho - rho|| = ||P~_m rho~ - rho~||``.  Computed in float64.

    Parameters
    ----------
    problem : CDIProblem
    x : complex tensor (work layout)
        Real-space iterate ``rho``.
    """
    z = problem.fft(x).to(torch.complex128)
    amp = problem.amp.to(torch.float64)
    meas = problem.measured
    eps_m2 = ((z.abs() - amp) ** 2)[meas].sum()
    xs = _linear_constraint(problem, x.to(torch.complex128))
    eps_s2 = (x.to(torch.complex128) - xs).abs().pow(2).sum()
    return float(eps_m2 - eps_s2)


def sda_directions(problem, x: torch.Tensor):
    """The steepest descent-ascent directions of eq. (18), in real space.

    Returns ``(d_s, d_sbar, y)`` with ``y = P_m x``, ``d_s = P_s (y - x)`` and
    ``d_sbar = -P_sbar y`` -- :func:`phasekit.cdi.hio.hio_direction` for the support constraint
    (realness, when asked, splits each pixel into its real part, in ``P_s``, and its imaginary
    part, in ``P_sbar``).
    """
    y = _modulus(problem, x)
    if not problem.real:
        d_s, d_sbar = hio_direction(x, y, problem.support)
        return d_s, d_sbar, y
    d_s = _linear_constraint(problem, y - x)
    d_sbar = _linear_constraint(problem, y) - y
    return d_s, d_sbar, y


def support_violation(problem, y: torch.Tensor) -> float:
    """Normalised support error of the modulus-projected iterate,
    ``eps^_s = ||P_sbar P_m rho|| / ||sqrt(I)||`` (our success metric; the paper's is not legible: it
    equals ``||d_sbar|| / ||sqrt I||`` and is free during SO2D/SO4D).  ``y`` is ``P_m rho``."""
    if problem.real:
        viol = y - apply_constraints(y, problem.support, real=True)
    else:
        viol = torch.where(problem.support, torch.zeros_like(y), y)
    num = float(torch.linalg.vector_norm(viol))
    return num / math.sqrt(float((problem.amp.double() ** 2)[problem.measured].sum()))
