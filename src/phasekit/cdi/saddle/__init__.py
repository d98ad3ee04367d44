"""HIO as a saddle-point problem and the low-dimensional saddle-point solver of SO2D / SO4D.

Source: S. Marchesini, "Phase retrieval and saddle-point optimization", J. Opt. Soc. Am. A 24,
3289 (2007) (arXiv physics/0611233).  In our copy of the preprint only the equation numbers are
legible, not the equation bodies; every formula below is reconstructed from the text of the cited
section and appendix (docs/saddle.md).

Notation (unitary FFT ``F``, so inner products can be taken in either space; ``<a|b>`` is
``sum conj(a) b`` and every gradient uses ``Re<a|b>``):

* ``P_s``: projection onto the (linear) object constraint -- the support, and realness when the
  problem asks for it; ``P_sbar = I - P_s``.  ``P_m = F^-1 P~_m F`` the modulus projection, with
  ``P~_m`` the identity on unmeasured Fourier pixels.
* the Lagrangian, eq. (17): ``L(rho) = eps_m^2(rho) - eps_s^2(rho)
  = ||P_m rho - rho||^2 - ||P_sbar rho||^2`` (:func:`lagrangian`).  HIO is descent in
  ``rho_s = P_s rho`` and ascent in ``rho_sbar`` (eq. (18)): the directions
  ``d_s = P_s (P_m - I) rho`` and ``d_sbar = -P_sbar P_m rho`` of
  :func:`phasekit.cdi.hio.hio_direction` (the one definition of HIO in phasekit), and one HIO
  step is ``rho + d_s + beta d_sbar`` (eqs. (19)-(21)).
* the subspace problem, eqs. (23)-(26): ``min_alpha max_beta L(rho + alpha d_s + beta d_sbar)``,
  and its k-direction generalisation ``L(tau) = L(rho + sum_i tau_i d_i)`` (SO4D uses
  ``k = 4``).  :class:`SubspaceLagrangian` evaluates ``L(tau)``, its gradient (eq. (27), (42))
  and Hessian (App. B, eqs. (43)-(48)) with **no FFT**: everything is an elementwise pass over the
  Fourier-space arrays plus dot products precomputed once per outer iteration.
* :func:`solve_saddle`: trust-region Newton with SR1 updates of the inverse Hessian and the
  safeguards of Sec. V (sign conditions eq. (30), exact Hessian + line search when the secant model
  is poor, SR1 skip rule, trust radius in ``[r_min, r_max]``, best-point / HIO fall-back).

With unmeasured Fourier pixels (beamstop), ``eps_m^2`` sums over measured pixels only; the
formulas below keep ``P~_m = I`` there, which adds the ``- 2 sum_unmeasured Re(conj d_i d_j)``
term to the Hessian (derived here; not in the paper, whose data are complete).

Modules: :mod:`.lagrangian` (the real-space Lagrangian and directions, plain torch),
:mod:`.evaluation` (:class:`SubspaceLagrangian`), :mod:`.solver` (:func:`solve_saddle` and its
safeguards), :mod:`.kernels` (the fused numba kernels), :mod:`.fused` (dispatch between them and
torch), :mod:`.codegen` (the generator of the unrolled K = 4 kernels,
:mod:`phasekit.cdi._saddle_unrolled`).
"""
from __future__ import annotations

# the private names are re-exported for the tests and benchmarks that reach into the kernels
# ruff: noqa: F401
from .codegen import UNROLLED_MODULE, _unrolled_source, unrolled_module_text, write_unrolled_module
from .evaluation import _PAIR_MASK, _QUAD_MASK, SubspaceLagrangian
from .fused import (_APPLY, _APPLY2, _APPLY2P, _APPLY4, _APPLY4N, _EVAL2, _EVAL2N, _EVAL4, _EVAL4N,
                    _EVALK, _MASK, _PROJECT_INTO, _SETUP, _SETUP2, _SETUP2N, _SETUP4, _SETUP4N,
                    HAVE_NUMBA, _fused_ok, _unpack_pairs, constrain_inplace, project_into,
                    tensor_views)
from .lagrangian import _linear_constraint, _modulus, lagrangian, sda_directions, support_violation
from .solver import SaddleSolution, enforce_saddle_signs, solve_saddle, sr1_inverse_update

__all__ = ["tensor_views", "constrain_inplace", "lagrangian", "sda_directions", "SubspaceLagrangian",
           "solve_saddle", "SaddleSolution", "enforce_saddle_signs", "sr1_inverse_update",
           "support_violation", "project_into", "unrolled_module_text", "write_unrolled_module"]
