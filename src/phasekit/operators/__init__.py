"""Physics operators (forward / adjoint) and constraint projections, separate from algorithms."""
from .base import LinearOperator, dot_test
from .farfield import FarField, SupportMask
from .projections import (
    modulus_projection,
    modulus_projection_,
    apply_constraints,
    constraint_mask,
    proj_dual,
)

__all__ = [
    "LinearOperator", "dot_test", "FarField", "SupportMask",
    "modulus_projection", "modulus_projection_", "apply_constraints", "constraint_mask", "proj_dual",
]
