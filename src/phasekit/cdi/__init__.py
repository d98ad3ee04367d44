"""Coherent diffractive imaging: single-pattern phase retrieval."""
# The algorithm modules first: several share their name with the public functions below
# (``er``, ``hio``, ``raar``, ``oss``, ``gps``).  Importing a submodule for the first time binds
# it as an attribute of this package, so were they imported later (by the registry), they would
# replace the functions: ``phasekit.cdi.hio(...)`` would then be a module.
from . import algorithms as _algorithms  # noqa: F401  (also registers the CDI algorithms)
from .api import (cprime, er, gps, gps_f, gps_r, hio, oss, raar, reconstruct, rk,
                  so2d, so4d, vrrk, vrrk_l1, vrrk_l2)
from .problem import CDIProblem
from .shrinkwrap import ShrinkWrap, autocorrelation_support

__all__ = ["reconstruct", "er", "hio", "raar", "oss", "gps", "gps_r", "gps_f", "CDIProblem",
           "ShrinkWrap", "autocorrelation_support", "rk", "vrrk", "vrrk_l2", "vrrk_l1",
           "cprime", "so2d", "so4d"]
