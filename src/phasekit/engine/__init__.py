"""The modality-neutral engine: algorithms, configs, stages and schedules, the registry, the
problem protocol, the shared driver and the result object.

Imports point one way: the modalities (``cdi``, ``ptycho``, ``tomo``, ``learn``) import from
here; the engine imports no modality (it loads their registration modules by name, lazily).
See ``docs/architecture.md``.
"""
from .algorithm import Algorithm
from .config import CallableParam, StrictConfig, validate_params
from .driver import IterationState, load_checkpoint, run, save_checkpoint, solve
from .problem import ExtraOutputs, Problem, SupportConstrained, parallel_elements
from .registry import MODALITIES, AlgorithmSpec, available, get_algorithm, register
from .result import ReconResult, provenance
from .schedule import Stage, build_stages, parse_schedule

__all__ = ["Algorithm", "StrictConfig", "CallableParam", "validate_params", "IterationState",
           "run", "solve", "load_checkpoint", "save_checkpoint", "Problem", "SupportConstrained",
           "ExtraOutputs", "parallel_elements", "MODALITIES", "AlgorithmSpec", "available", "get_algorithm", "register",
           "ReconResult", "provenance", "Stage", "build_stages", "parse_schedule"]
