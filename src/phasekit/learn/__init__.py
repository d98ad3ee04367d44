"""Optimisation methods of the Pham thesis (ch. 4-5) and the smoothing operator they share with
GPS."""
from .smoothing import laplacian_eigenvalues, laplacian_smooth, laplacian_smoothing_divisor

__all__ = ["laplacian_eigenvalues", "laplacian_smooth", "laplacian_smoothing_divisor"]
