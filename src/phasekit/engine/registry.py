"""The algorithm registry: name -> implementation, config model, modality, description.

Explicit rather than reflective.  Each modality registers its own algorithms from its own
package (``phasekit/<modality>/algorithms.py`` calls :func:`register`); the engine only knows
the names of those registration modules, so it imports no modality code until an algorithm is
looked up.  The CLI's ``--algorithm`` choices, ``phasekit algorithms`` and the conformance test
suite all read this table.

Examples
--------
>>> from phasekit.engine import get_algorithm
>>> spec = get_algorithm("HIO")
>>> spec.name, spec.modality
('hio', 'cdi')
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..core.errors import ConfigError

#: modalities and the module that registers each one's algorithms, in listing order
MODALITIES: dict[str, str] = {
    "cdi": "phasekit.cdi.algorithms",
    "ptycho": "phasekit.ptycho.algorithms",
    "tomo": "phasekit.tomo.algorithms",
    "ml": "phasekit.learn.algorithms",
}

#: what each modality is called in messages
MODALITY_NAMES = {"cdi": "CDI (one diffraction pattern)", "ptycho": "ptychography",
                  "tomo": "tomography", "ml": "k-means / machine learning"}


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered algorithm.

    Attributes
    ----------
    name : str
        Registry name (lower case, ``-`` separated).
    cls : type
        The :class:`~phasekit.engine.Algorithm` subclass the driver runs.
    config : type
        Its :class:`~phasekit.engine.StrictConfig` (keyword parameters, validated strictly).
    description : str
        One line for listings, with the source.
    modality : str
        Key of :data:`MODALITIES`; the problem's ``modality`` must match it.
    default_n_iter : int
        Iterations when none are given.
    aliases : tuple of str
        Other accepted names.
    iterative : bool
        False for one-shot methods (FBP): they run exactly one step.
    """

    name: str
    cls: type
    config: type
    description: str
    modality: str = "cdi"
    default_n_iter: int = 200
    aliases: tuple = ()
    iterative: bool = True


_REGISTRY: dict[str, AlgorithmSpec] = {}
_ALIASES: dict[str, str] = {}
_LOADED: set[str] = set()


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Add ``spec`` to the registry (called by each modality's ``algorithms`` module).

    A name or alias already taken by another algorithm is an error.
    """
    if spec.modality not in MODALITIES:
        raise ValueError(f"{spec.name}: unknown modality {spec.modality!r}")
    for key in (spec.name, *spec.aliases):
        owner = _ALIASES.get(key, key if key in _REGISTRY else None)
        if owner is not None and owner != spec.name:
            raise ValueError(f"algorithm name {key!r} is already registered by {owner!r}")
    _REGISTRY[spec.name] = spec
    for a in spec.aliases:
        _ALIASES[a] = spec.name
    return spec


def _load(modality: str | None = None) -> None:
    for mod, module in MODALITIES.items():
        if (modality is None or mod == modality) and mod not in _LOADED:
            importlib.import_module(module)
            _LOADED.add(mod)


def _key(name) -> str:
    key = str(name).strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def get_algorithm(name: str, modality: str | None = None) -> AlgorithmSpec:
    """Look an algorithm up by name or alias (case-insensitive).

    Parameters
    ----------
    name : str
    modality : str, optional
        When given, an algorithm of another modality is a :class:`ConfigError` that lists this
        modality's algorithms.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the valid ones), or wrong modality.
    """
    _load()
    key = _key(name)
    spec = _REGISTRY.get(key)
    if spec is None:
        pool = available(modality) if modality else available()
        raise ConfigError(f"unknown algorithm {name!r}; choose from: "
                          f"{', '.join(s.name for s in pool)}")
    if modality is not None and spec.modality != modality:
        own = ", ".join(s.name for s in available(modality))
        raise ConfigError(f"{spec.name!r} is a {MODALITY_NAMES.get(spec.modality, spec.modality)} "
                          f"algorithm and this is {MODALITY_NAMES.get(modality, modality)} data; "
                          f"choose from: {own}")
    return spec


def available(modality: str | None = None) -> list[AlgorithmSpec]:
    """Registered algorithms (of one modality, or all), in registration order."""
    _load()
    order = list(MODALITIES)
    specs = [s for s in _REGISTRY.values() if modality is None or s.modality == modality]
    return sorted(specs, key=lambda s: order.index(s.modality))
