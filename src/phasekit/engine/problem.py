"""The interface between a modality's data and the shared driver :func:`phasekit.engine.run`.

A *problem* holds the measurements of one modality as tensors on one device and answers the few
questions the driver asks.  CDI (:class:`phasekit.cdi.CDIProblem`), ptychography
(:class:`phasekit.ptycho.PtychoProblem`), tomography (:class:`phasekit.tomo.TomoProblem`) and
k-means (:class:`phasekit.learn.KMeansProblem`) implement it; nothing else is required of them.

Required (:class:`Problem`):

``modality``
    The modality name; an algorithm registered for another modality is refused.
``shape``, ``device``
    The shape of the measured data set (recorded in checkpoints) and the compute device.
``objective_name``, ``objective(x)``
    The figure of merit of an iterate (lower is better): it picks the best of several random
    starts and the best iterate when ``keep_best`` is on.  ``"R_F"`` for the imaging problems,
    ``"phi"`` for k-means.
``random_start(rng)``
    A start in the work layout, drawn from the NumPy generator ``rng`` only.
``to_output(x)``, ``from_input(a)``
    Work-layout tensor <-> the NumPy array a user sees (centred image, volume, centres).

Optional (checked with ``isinstance`` against the runtime protocols below):

:class:`SupportConstrained`
    ``support`` (a bool tensor the algorithms read and constraint updates such as shrink-wrap
    change in place; the driver restores it for every start and saves it in checkpoints) and
    ``to_output`` of it.
:class:`ExtraOutputs`
    ``extra_outputs(x) -> dict`` of further named arrays of a result (the ptychographic probe).
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Problem(Protocol):
    """What the driver may call (see the module docstring)."""

    modality: str
    shape: tuple
    device: torch.device
    objective_name: str

    def objective(self, x: torch.Tensor) -> float: ...

    def random_start(self, rng: np.random.Generator) -> torch.Tensor: ...

    def to_output(self, x: torch.Tensor) -> np.ndarray: ...

    def from_input(self, a: Any) -> torch.Tensor: ...


@runtime_checkable
class SupportConstrained(Protocol):
    """A problem with a support constraint that constraint updates may change."""

    support: torch.Tensor


@runtime_checkable
class ExtraOutputs(Protocol):
    """A problem whose iterate carries more than one output array."""

    def extra_outputs(self, x: torch.Tensor) -> dict: ...


def check_problem(problem) -> None:
    """Raise ``TypeError`` naming the missing members when ``problem`` is not a :class:`Problem`."""
    need = ("modality", "shape", "device", "objective_name", "objective", "random_start",
            "to_output", "from_input")
    missing = [n for n in need if not hasattr(problem, n)]
    if missing:
        raise TypeError(f"{type(problem).__name__} is not a phasekit Problem: missing "
                        f"{', '.join(missing)} (see phasekit.engine.problem)")
