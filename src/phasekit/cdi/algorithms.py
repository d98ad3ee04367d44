"""Registration of the CDI algorithms (loaded by :mod:`phasekit.engine.registry`)."""
from __future__ import annotations

from importlib import import_module

from ..engine.registry import AlgorithmSpec, register

# by module path: the package re-exports functions named like these modules (cdi.er, cdi.hio)
er, gps, hio, kz, mm, oss, raar, subspace = (
    import_module(f"phasekit.cdi.{m}") for m in ("er", "gps", "hio", "kaczmarz", "mm", "oss", "raar", "subspace"))

register(AlgorithmSpec("er", er.ErrorReduction, er.ERConfig,
                       "error reduction: x <- P_C P_m x (Fienup 1982)", default_n_iter=200))
register(AlgorithmSpec("hio", hio.HybridInputOutput, hio.HIOConfig,
                       "hybrid input-output, saddle-point form (Fienup 1982; Marchesini 2007)",
                       default_n_iter=1000))
register(AlgorithmSpec("raar", raar.RAAR, raar.RAARConfig,
                       "relaxed averaged alternating reflections (Luke 2005)", default_n_iter=1000))
register(AlgorithmSpec("oss", oss.OSS, oss.OSSConfig,
                       "oversampling smoothness: HIO + out-of-support low-pass, 10 stages (Rodriguez 2013)",
                       default_n_iter=2000))
register(AlgorithmSpec("gps-r", gps.GPSR, gps.GPSConfig,
                       "generalized proximal smoothing, real-space smoothing (Pham thesis Alg. 1)",
                       default_n_iter=1000, aliases=("gps", "gpsr")))
register(AlgorithmSpec("gps-f", gps.GPSF, gps.GPSConfig,
                       "generalized proximal smoothing, Fourier-space smoothing (Pham thesis Alg. 2)",
                       default_n_iter=1000, aliases=("gpsf",)))
register(AlgorithmSpec("so2d", subspace.SO2D, subspace.SO2DConfig,
                       "HIO with a 2-D subspace saddle-point step, trust-region SR1 (Marchesini 2007)",
                       default_n_iter=1000))
register(AlgorithmSpec("so4d", subspace.SO4D, subspace.SO4DConfig,
                       "SO2D plus the previous pair of directions: 4-D saddle-point step (Marchesini 2007)",
                       default_n_iter=1000))
register(AlgorithmSpec("rk", kz.RandomizedKaczmarz, kz.RKConfig,
                       "randomized Kaczmarz, one iteration = one epoch of row steps (Xian et al. 2022 eq. 9)",
                       default_n_iter=30, aliases=("kaczmarz",)))
register(AlgorithmSpec("vrrk", kz.VRRK, kz.VRRKConfig,
                       "variance-reduced randomized Kaczmarz, epochs (Xian et al. 2022 Alg. 1)",
                       default_n_iter=30, aliases=("vr-rk",)))
register(AlgorithmSpec("vrrk-l2", kz.VRRKL2, kz.VRRKL2Config,
                       "VR-RK with L2 (ridge) term, epochs (Xian et al. 2022 eqs. 13-16)",
                       default_n_iter=30, aliases=("vr-rk-l2",)))
register(AlgorithmSpec("vrrk-l1", kz.VRRKL1, kz.VRRKL1Config,
                       "VR-RK with L1 term, prox-SVRG, epochs (Xian et al. 2022 eq. 17)",
                       default_n_iter=30, aliases=("vr-rk-l1",)))
register(AlgorithmSpec("cprime", mm.CPrimeMM, mm.CPrimeConfig,
                       "C-PRIME/MM full-batch L1 step: ER + soft-threshold at C=1 (Xian et al. 2022 eqs. 17-19)",
                       default_n_iter=200, aliases=("mm", "c-prime")))
