"""Algorithm registry: name -> implementation, config model, description (feeds the CLI).

Explicit rather than reflective: adding an algorithm means adding one :func:`register` call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .core.errors import ConfigError


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    cls: type
    config: type
    description: str
    modality: str = "cdi"
    default_n_iter: int = 200
    aliases: tuple = ()
    capabilities: tuple = field(default_factory=tuple)


_REGISTRY: dict[str, AlgorithmSpec] = {}
_ALIASES: dict[str, str] = {}
_LOADED = False


def register(spec: AlgorithmSpec) -> None:
    _REGISTRY[spec.name] = spec
    for a in spec.aliases:
        _ALIASES[a] = spec.name


def _load():
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    er, gps, hio, oss, raar = (importlib.import_module(f"phasekit.cdi.{m}") for m in ("er", "gps", "hio", "oss", "raar"))

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
    subspace = importlib.import_module("phasekit.cdi.subspace")
    register(AlgorithmSpec("so2d", subspace.SO2D, subspace.SO2DConfig,
                           "HIO with a 2-D subspace saddle-point step, trust-region SR1 (Marchesini 2007)",
                           default_n_iter=1000))
    register(AlgorithmSpec("so4d", subspace.SO4D, subspace.SO4DConfig,
                           "SO2D plus the previous pair of directions: 4-D saddle-point step (Marchesini 2007)",
                           default_n_iter=1000))
    kz, mm = (importlib.import_module(f"phasekit.cdi.{m}") for m in ("kaczmarz", "mm"))
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
    pie = importlib.import_module("phasekit.ptycho.engines")
    register(AlgorithmSpec("epie", pie.EPIE, pie.EPIEConfig,
                           "ePIE, extended ptychographical iterative engine (Maiden & Rodenburg 2009)",
                           modality="ptycho", default_n_iter=300))
    register(AlgorithmSpec("rpie", pie.RPIE, pie.RPIEConfig,
                           "rPIE, regularised PIE (Maiden, Johnson & Li 2017)",
                           modality="ptycho", default_n_iter=300))
    register(AlgorithmSpec("mpie", pie.MPIE, pie.MPIEConfig,
                           "mPIE, rPIE with momentum (Maiden, Johnson & Li 2017)",
                           modality="ptycho", default_n_iter=300))
    register(AlgorithmSpec("crisp", pie.CRISP, pie.CRISPConfig,
                           "CRISP, clipped subgradient-projection PIE (J. Appl. Cryst. 57, 2024)",
                           modality="ptycho", default_n_iter=300))
    kmeans = importlib.import_module("phasekit.learn.kmeans")
    register(AlgorithmSpec("sbe-kmeans", kmeans.SBEStep, kmeans.SBEConfig,
                           "k-means by stochastic backward Euler (Pham thesis Alg. 4)",
                           modality="ml", default_n_iter=100, aliases=("sbe",)))
    register(AlgorithmSpec("lloyd", kmeans.LloydStep, kmeans.LloydConfig,
                           "Lloyd's k-means, full batch ('EM' of Pham thesis ch. 4)",
                           modality="ml", default_n_iter=50, aliases=("kmeans-lloyd",)))
    register(AlgorithmSpec("minibatch-kmeans", kmeans.MiniBatchStep, kmeans.MiniBatchConfig,
                           "mini-batch k-means (Sculley 2010; 'mb-EM' of Pham thesis ch. 4)",
                           modality="ml", default_n_iter=100, aliases=("mb-kmeans",)))
    resire, sirt, genfire = (importlib.import_module(f"phasekit.tomo.{m}") for m in ("resire", "sirt", "genfire"))
    register(AlgorithmSpec("resire", resire.RESIRE, resire.RESIREConfig,
                           "RESIRE: gradient descent, FST forward + bilinear back projection (Pham thesis Alg. 3)",
                           modality="tomo", default_n_iter=400))
    register(AlgorithmSpec("sirt", sirt.SIRT, sirt.SIRTConfig,
                           "SIRT with ASTRA's row/column normalisation, real-space projector pair",
                           modality="tomo", default_n_iter=400))
    register(AlgorithmSpec("genfire", genfire.GENFIRE, genfire.GENFIREConfig,
                           "GENFIRE-lite: Fourier gridding (1/d weights) + alternating constraints (Pryor 2017)",
                           modality="tomo", default_n_iter=400, aliases=("genfire-lite",)))


def get_algorithm(name: str) -> AlgorithmSpec:
    """Look an algorithm up by name or alias (case-insensitive); unknown names list valid ones."""
    _load()
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ConfigError(f"unknown algorithm {name!r}; choose from: {', '.join(sorted(_REGISTRY))}") from None


def available(modality: str | None = None) -> list[AlgorithmSpec]:
    _load()
    return [s for s in _REGISTRY.values() if modality is None or s.modality == modality]
