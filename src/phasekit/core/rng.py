"""Randomness policy: every stochastic function takes ``rng`` (None, an int seed, a
:class:`numpy.random.SeedSequence` or a :class:`numpy.random.Generator`).  Nothing seeds global
state.  Random numbers are drawn with NumPy on the host and moved to the device, so a seed gives
the same start on the CPU and on CUDA.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError


def make_rng(rng=None) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` from ``rng`` (int, SeedSequence, Generator, None)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        if isinstance(rng, (int, np.integer)) and rng < 0:
            raise InputError(f"seed must be non-negative, got {rng}")
        return np.random.default_rng(rng)
    raise InputError(f"rng must be an int seed, a numpy Generator or None, got {type(rng).__name__}")


def spawn_rngs(rng, n: int) -> list[np.random.Generator]:
    """``n`` statistically independent generators derived from ``rng`` (for random starts)."""
    if isinstance(rng, np.random.Generator):
        return list(rng.spawn(n))
    if not isinstance(rng, np.random.SeedSequence):
        make_rng(rng)  # the same check (and message) as every other stochastic function
    ss = rng if isinstance(rng, np.random.SeedSequence) else np.random.SeedSequence(rng)
    return [np.random.default_rng(s) for s in ss.spawn(n)]
