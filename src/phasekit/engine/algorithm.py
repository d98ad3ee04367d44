"""The base class of every algorithm the shared driver runs.

An algorithm is state plus one ``step``; :func:`phasekit.engine.run` owns the loop (history,
callbacks, progress, checkpoints, random starts, chains).

Examples
--------
A minimal algorithm (gradient steps towards zero) on any :class:`~phasekit.engine.Problem`:

>>> from phasekit.engine import Algorithm
>>> class Shrink(Algorithm):
...     name = "shrink"
...     def step(self, k):
...         self.x = 0.5 * self.x
"""
from __future__ import annotations

from typing import Any

import torch


class Algorithm:
    """Base class of an iterative algorithm run by :func:`phasekit.engine.run`.

    Subclasses implement :meth:`step` and, where the defaults do not fit, :meth:`initialize`,
    :meth:`estimate`, :meth:`metrics` and the state (de)serialisation; the driver owns the loop.
    ``self.problem`` is shared by the stages of a chain (a constraint update such as
    shrink-wrap changes ``problem.support`` in place).

    Class attributes
    ----------------
    name : str
    Config : type or None
        Its strict config; ``self.cfg`` then holds the validated parameters with their
        defaults, so a subclass declares no default of its own.
    keep_best_default : bool
        The driver reports the best-objective estimate seen, not the last one, by default.
    state_names : tuple of str
        Attributes that make up the state (saved in checkpoints, restored on resume: a resumed
        run must continue bit-identically, so every attribute the next step reads belongs here).
    """

    name = "base"
    keep_best_default = False
    state_names: tuple[str, ...] = ("x",)
    #: the algorithm's :class:`~phasekit.engine.StrictConfig`; when set, ``__init__`` validates
    #: the keyword parameters into ``self.cfg`` (defaults are declared once, in the config)
    Config: type | None = None

    def __init__(self, problem, n_iter: int, **params):
        self.problem = problem
        self.n_iter = int(n_iter)
        self.params = params
        if self.Config is not None:
            from pydantic import ValidationError

            from .config import config_error

            try:
                self.cfg = self.Config(**params)
            except ValidationError as exc:
                raise config_error(self.name, exc, self.Config.model_fields) from None

    # --- to implement
    def initialize(self, x0: torch.Tensor) -> None:
        """Set up the state from a start ``x0`` (work layout)."""
        self.x = x0.clone().contiguous()

    def step(self, k: int) -> None:  # pragma: no cover - abstract
        """Advance one iteration; ``k`` counts iterations of this stage from 0."""
        raise NotImplementedError

    def estimate(self) -> torch.Tensor:
        """The current estimate (work layout); it satisfies the object constraints when the
        problem has them."""
        constrain = getattr(self.problem, "constrain", None)
        return constrain(self.x) if constrain is not None else self.x

    def iterate(self) -> torch.Tensor:
        """What the next algorithm of a chain starts from (default: the raw iterate)."""
        return self.x

    def final(self) -> torch.Tensor:
        """The estimate the algorithm reports when it ends (default: :meth:`estimate`)."""
        return self.estimate()

    def metrics(self) -> dict[str, float]:
        """Named metrics of the current state (default: the problem's objective of
        :meth:`estimate`, under the problem's ``objective_name``)."""
        return {self.problem.objective_name: self.problem.objective(self.estimate())}

    @classmethod
    def random_start(cls, problem, rng) -> torch.Tensor:
        """A random start for this algorithm (default: the problem's)."""
        return problem.random_start(rng)

    # --- state
    def state_dict(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.state_names}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n in self.state_names:
            v = state[n]
            if isinstance(v, torch.Tensor):
                v = v.to(self.problem.device)
            setattr(self, n, v)
