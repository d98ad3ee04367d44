"""Ptychography (far and near field): forward model, scans, probes, phantoms, simulation, PIE
engines with mixed-state probes, position refinement and a detector background.

* :mod:`.operators` -- crop / write-back, sub-pixel probe shift, batched exit waves, the linear
  object and probe operators (with adjoints).
* :mod:`.scan`, :mod:`.probe`, :mod:`.sim` -- raster and Fermat scans, probes (aperture, zone
  plate with the BL24XU preset, Gaussian, defocus), phantoms and :func:`simulate_ptycho`.
* :mod:`.problem` -- :class:`PtychoProblem`, the driver's view of a data set (propagation from
  :mod:`phasekit.operators.propagation`: far field, Fresnel, angular spectrum).
* :mod:`.modes`, :mod:`.positions`, :mod:`.background` -- mixed-state probes (orthogonalisation,
  starting modes), the least-squares position update, the additive background.
* :mod:`.engines` -- ePIE, rPIE, mPIE and CRISP (registered with ``modality="ptycho"``).
* :mod:`.metrics` -- R_F, PINE-protocol FRC of the complex object, probe correlation.
* :mod:`.api` -- :func:`reconstruct` and one function per engine.
"""
from . import algorithms as _algorithms  # noqa: F401  (first: its submodule imports would
#   otherwise rebind ``pine`` from the function below to the module ``ptycho.pine``)
from .api import crisp, epie, mpie, pine, reconstruct, rpie
from .problem import PtychoProblem
from .scan import fermat_spiral, object_shape_for, raster_scan, step_from_overlap
from .sim import SimulatedPtycho, particle_film, siemens_star, simulate_ptycho

__all__ = [
    "reconstruct", "epie", "rpie", "mpie", "crisp", "pine", "PtychoProblem", "raster_scan",
    "fermat_spiral", "object_shape_for", "step_from_overlap", "SimulatedPtycho", "particle_film",
    "siemens_star", "simulate_ptycho",
]
