"""Tomography: RESIRE (Pham thesis Ch. 3) and its baselines (SIRT, FBP, GENFIRE-lite).

Geometry and conventions: :mod:`phasekit.tomo.geometry` (ZYX Euler angles in degrees, volume
index order ``(x, y, z)``, centre ``N // 2``, y = tilt axis, z = beam).  Projectors:
:mod:`phasekit.tomo.projectors`.  Entry point: :func:`reconstruct`.
"""
from .api import DiscrepancyStop, reconstruct
from .fbp import fbp
from .geometry import (as_euler, dual_axis, rotation_matrices, single_axis, tilt_range,
                       zyx_to_zyz, zyz_to_zyx)
from .io import is_tomo_file, read_tilt_series, read_tomo_result, write_tilt_series, write_tomo_result
from .metrics import anisotropy, fsc, fsc_resolution, r2_projections, rfactor_projections
from .phantoms import make_phantom
from .problem import TomoProblem, extended_volume_shape
from .projectors import FourierSliceProjector, HybridProjector, RealSpaceProjector, make_projector
from .simulate import TiltSeries, simulate_tilt_series

__all__ = ["reconstruct", "DiscrepancyStop", "fbp", "as_euler", "dual_axis", "rotation_matrices",
           "single_axis", "tilt_range", "zyx_to_zyz", "zyz_to_zyx", "is_tomo_file",
           "read_tilt_series", "read_tomo_result", "write_tilt_series", "write_tomo_result",
           "anisotropy", "fsc", "fsc_resolution", "r2_projections", "rfactor_projections",
           "make_phantom", "TomoProblem", "extended_volume_shape", "FourierSliceProjector",
           "HybridProjector", "RealSpaceProjector", "make_projector", "TiltSeries",
           "simulate_tilt_series"]
