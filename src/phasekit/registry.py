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
