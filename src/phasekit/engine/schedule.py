"""Stages and chains of algorithms: ``"HIO:800,ER:200"``, ``"(HIO:50,ER:10)*5"``,
cohere's ``"800*HIO,200*ER"`` and PyNX-like ``"HIO**800"``, turned into validated stages.

Examples
--------
>>> from phasekit.engine import parse_schedule
>>> [(s.algorithm, s.n_iter) for s in parse_schedule("(HIO:50,ER:10)*2")]
[('hio', 50), ('er', 10), ('hio', 50), ('er', 10)]
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from numbers import Real

from ..core.errors import ConfigError
from .config import validate_params
from .registry import get_algorithm

#: a chain may expand to at most this many stages (each stage is an object with its own state)
MAX_STAGES = 10_000
#: and to at most this many iterations in all
MAX_ITERATIONS = 100_000_000


@dataclass
class Stage:
    """One stage of a chain: ``n_iter`` iterations of ``algorithm`` with ``params``."""

    algorithm: str
    n_iter: int
    params: dict = field(default_factory=dict)


_STAGE_RE = re.compile(r"^\s*(?:(\d+)\s*\*\s*([A-Za-z][\w-]*)|([A-Za-z][\w-]*)\s*[:=]\s*(\d+)|"
                       r"([A-Za-z][\w-]*)\s*\*\*\s*(\d+))\s*$")


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced parentheses in schedule {s!r}")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise ConfigError(f"unbalanced parentheses in schedule {s!r}")
    out.append(cur)
    return [p.strip() for p in out if p.strip()]


def _count(spec: str) -> tuple[int, int]:
    """(stages, iterations) a schedule expands to, computed without expanding it."""
    n_st = n_it = 0
    for part in _split_top(spec):
        m = re.match(r"^\((.*)\)\s*\*\s*(\d+)$", part) or re.match(r"^(\d+)\s*\*\s*\((.*)\)$", part)
        if m:
            inner, rep = (m.group(1), m.group(2)) if part.startswith("(") else (m.group(2), m.group(1))
            s, i = _count(inner)
            n_st += s * int(rep)
            n_it += i * int(rep)
            continue
        m = _STAGE_RE.match(part)
        if not m:
            raise ConfigError(f"cannot parse schedule item {part!r} (use e.g. 'HIO:800,ER:200')")
        n_st += 1
        n_it += int(m.group(1) or m.group(4) or m.group(6))
    return n_st, n_it


def parse_schedule(spec: str) -> list[Stage]:
    """Parse a chain specification into stages.

    Accepted forms (comma separated, groups may repeat): ``"HIO:800,ER:200"``,
    ``"800*HIO,200*ER"`` (cohere), ``"HIO**800,ER**200"``, ``"(HIO:50,ER:10)*5"``.
    Algorithm names are case-insensitive; validity is checked against the registry by
    :func:`build_stages`.  A chain that expands beyond :data:`MAX_STAGES` stages or
    :data:`MAX_ITERATIONS` iterations is refused before it is expanded.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("empty schedule (give e.g. 'HIO:800,ER:200')")
    n_st, n_it = _count(spec)
    if n_st > MAX_STAGES:
        raise ConfigError(f"schedule {spec!r} expands to {n_st} stages (at most {MAX_STAGES}); "
                          "use fewer repetitions of longer stages")
    if n_it > MAX_ITERATIONS:
        raise ConfigError(f"schedule {spec!r} expands to {n_it} iterations (at most {MAX_ITERATIONS})")
    return _parse(spec)


def _parse(spec: str) -> list[Stage]:
    stages: list[Stage] = []
    for part in _split_top(spec):
        m = re.match(r"^\((.*)\)\s*\*\s*(\d+)$", part) or re.match(r"^(\d+)\s*\*\s*\((.*)\)$", part)
        if m:
            inner, rep = (m.group(1), m.group(2)) if part.startswith("(") else (m.group(2), m.group(1))
            if int(rep) < 1:
                raise ConfigError(f"schedule group {part!r} must repeat at least once")
            sub = _parse(inner)
            stages.extend(Stage(s.algorithm, s.n_iter, dict(s.params)) for _ in range(int(rep)) for s in sub)
            continue
        m = _STAGE_RE.match(part)
        if not m:
            raise ConfigError(f"cannot parse schedule item {part!r} (use e.g. 'HIO:800,ER:200')")
        if m.group(1):
            n, name = int(m.group(1)), m.group(2)
        elif m.group(3):
            name, n = m.group(3), int(m.group(4))
        else:
            name, n = m.group(5), int(m.group(6))
        if n <= 0:
            raise ConfigError(f"schedule item {part!r} must have a positive iteration count")
        stages.append(Stage(name.lower(), n))
    return stages


def build_stages(algorithm: str | None, n_iter: int | None, schedule: str | list | None,
                 params: dict, modality: str | None = None) -> list[Stage]:
    """Turn (algorithm, n_iter) or a schedule plus flat ``params`` into validated stages.

    Parameters
    ----------
    algorithm : str or None
        Registry name, used when ``schedule`` is None.
    n_iter : int or None
        Iterations of ``algorithm`` (None: its registry default).
    schedule : str or list of Stage/tuples, optional
        A chain; ``algorithm`` and ``n_iter`` are then not used.
    params : dict
        Flat parameters go to every stage whose config has that field; a parameter no stage
        accepts is a :class:`ConfigError`.  Per-algorithm dicts (``{"hio": {"beta": 0.8}}``)
        go to that algorithm's stages only, and naming an algorithm that is not in the chain is
        an error.
    modality : str, optional
        Every stage's algorithm must belong to this modality.

    Examples
    --------
    >>> [(s.algorithm, s.n_iter, s.params) for s in build_stages(None, None, "HIO:5,ER:2", {"beta": 0.8})]
    [('hio', 5, {'beta': 0.8}), ('er', 2, {})]
    """
    if schedule is not None:
        if isinstance(schedule, str):
            stages = parse_schedule(schedule)
        else:
            stages = [s if isinstance(s, Stage) else Stage(*s) for s in schedule]
            if not stages:
                raise ConfigError("empty schedule")
    else:
        spec = get_algorithm(algorithm or "hio", modality)
        if not spec.iterative:
            if n_iter not in (None, 1):
                raise ConfigError(f"{spec.name} is not iterative: it runs once (omit the iteration count)")
            n = 1
        else:
            if n_iter is not None and (isinstance(n_iter, bool) or not isinstance(n_iter, Real)
                                       or not math.isfinite(n_iter) or int(n_iter) != n_iter):
                raise ConfigError(f"n_iter must be an integer >= 1, got {n_iter!r}")
            n = spec.default_n_iter if n_iter is None else int(n_iter)
        if n < 1:
            raise ConfigError(f"n_iter must be >= 1, got {n_iter}")
        stages = [Stage(spec.name, n)]
    specs = [get_algorithm(s.algorithm, modality) for s in stages]
    for st, spec in zip(stages, specs):
        if not spec.iterative and st.n_iter != 1:
            raise ConfigError(f"{spec.name} is not iterative: give it 1 iteration, not {st.n_iter}")
    if not isinstance(params, dict):
        raise ConfigError(f"params must be a dict, got {type(params).__name__}")
    per_alg = {k.strip().lower().replace("_", "-"): v for k, v in params.items() if isinstance(v, dict)}
    flat = {k: v for k, v in params.items() if not isinstance(v, dict)}
    names_in_chain = {n for st, sp in zip(stages, specs) for n in (sp.name, *sp.aliases, st.algorithm)}
    stray = sorted(k for k in per_alg if k not in names_in_chain)
    if stray:
        raise ConfigError(f"parameters given for {', '.join(stray)}, which is not in the chain "
                          f"({', '.join(dict.fromkeys(sp.name for sp in specs))})")
    used = set()
    out = []
    for st, spec in zip(stages, specs):
        fields = spec.config.model_fields
        p = {k: v for k, v in flat.items() if k in fields}
        used |= set(p)
        for alias in (spec.name, *spec.aliases, st.algorithm):
            if alias in per_alg:
                p.update(per_alg[alias])
        p.update(st.params)
        out.append(Stage(spec.name, st.n_iter, validate_params(spec, p)))
    unused = set(flat) - used
    if unused:
        known = sorted({f for sp in specs for f in sp.config.model_fields})
        raise ConfigError(f"parameter(s) {', '.join(sorted(unused))} not accepted by "
                          f"{', '.join(dict.fromkeys(s.algorithm for s in out))} "
                          f"(accepted: {', '.join(known) or 'none'})")
    return out
