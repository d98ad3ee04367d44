"""Coherent diffractive imaging: single-pattern phase retrieval."""
from .api import build_stages, er, gps, gps_f, gps_r, hio, oss, raar, reconstruct
from .problem import CDIProblem
from .shrinkwrap import ShrinkWrap, autocorrelation_support

__all__ = ["reconstruct", "er", "hio", "raar", "oss", "gps", "gps_r", "gps_f", "CDIProblem",
           "ShrinkWrap", "autocorrelation_support", "build_stages"]
