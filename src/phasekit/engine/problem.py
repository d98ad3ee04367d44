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
``parallel_elements``
    Elements of one parallel operation when they are not ``prod(shape)`` (ptychography: a
    frame times its probe modes); below ``phasekit.core.threads.PARALLEL_MIN_ELEMENTS`` the
    driver runs on one CPU thread (:func:`parallel_elements`).
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


def parallel_elements(problem, batch: int = 1) -> int:
    """Elements of the problem's parallel operations (its FFTs, its fused passes), times the
    ``batch`` of starts run together: ``problem.parallel_elements`` when the problem defines it
    (a ptychography frame times its probe modes), else the product of ``problem.shape``.  The
    driver runs on one CPU thread below ``phasekit.core.threads.PARALLEL_MIN_ELEMENTS``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> parallel_elements(SimpleNamespace(shape=(64, 64)), batch=2)
    8192
    """
    n = getattr(problem, "parallel_elements", None)
    if n is None:
        n = int(np.prod(problem.shape)) if len(problem.shape) else 1
    return int(n) * int(batch)


def check_problem(problem) -> None:
    """Raise ``TypeError`` naming the missing members when ``problem`` is not a :class:`Problem`."""
    need = ("modality", "shape", "device", "objective_name", "objective", "random_start",
            "to_output", "from_input")
    missing = [n for n in need if not hasattr(problem, n)]
    if missing:
        raise TypeError(f"{type(problem).__name__} is not a phasekit Problem: missing "
                        f"{', '.join(missing)} (see phasekit.engine.problem)")
