"""Coherent diffractive imaging: single-pattern phase retrieval."""
from .api import (cprime, er, gps, gps_f, gps_r, hio, oss, raar, reconstruct, rk,
                  so2d, so4d, vrrk, vrrk_l1, vrrk_l2)
from .problem import CDIProblem
from .shrinkwrap import ShrinkWrap, autocorrelation_support

__all__ = ["reconstruct", "er", "hio", "raar", "oss", "gps", "gps_r", "gps_f", "CDIProblem",
           "ShrinkWrap", "autocorrelation_support", "rk", "vrrk", "vrrk_l2", "vrrk_l1",
           "cprime", "so2d", "so4d"]
