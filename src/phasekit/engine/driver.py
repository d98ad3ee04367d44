"""The shared iteration driver :func:`run` and the front door :func:`solve`.

Every algorithm of every modality runs through :func:`run`: per-iteration history of named
metrics, callbacks that can stop the run, a progress bar, wall-time accounting, checkpoint /
resume, constraint updates (shrink-wrap), several random starts with best-of-N selection by the
problem's objective (run one after another, or as one batch: :mod:`phasekit.engine.batched`),
and chains of algorithms (``"HIO:800,ER:200"``).  :func:`solve` is the one
path the modalities' ``reconstruct`` functions take: it checks the algorithms against the
problem's modality, validates every parameter into a one-line
:class:`~phasekit.core.errors.ConfigError`, and calls :func:`run`.

The design follows scipy's ``OptimizeResult`` (one result object) and the callback convention of
the architecture guide: ``callback(state)`` observes an :class:`IterationState`; raising
``StopIteration`` ends the run cleanly.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.errors import ConfigError, InputError
from ..core.rng import spawn_rngs
from ..core.threads import auto_cpu_threads
from .problem import ExtraOutputs, SupportConstrained, check_problem, parallel_elements
from .registry import get_algorithm
from .result import ReconResult, provenance
from .schedule import Stage, build_stages

log = logging.getLogger("phasekit")

CHECKPOINT_VERSION = 2


# --------------------------------------------------------------------------- callbacks
@dataclass
class IterationState:
    """What a callback sees after each iteration (a read-only snapshot)."""

    iteration: int          # iterations done in this start (all stages), 1-based after a step
    start: int              # index of the random start
    stage: int              # index of the stage in the chain
    algorithm: str
    metrics: dict[str, float]
    history: dict[str, list]
    elapsed: float
    _algo: Any = None
    _problem: Any = None

    def image(self) -> np.ndarray:
        """The current estimate as the user sees it (computed on demand)."""
        return self._problem.to_output(self._algo.estimate())

    def support(self) -> np.ndarray | None:
        """The current support (None when the problem has none)."""
        if not isinstance(self._problem, SupportConstrained):
            return None
        return self._problem.to_output(self._problem.support)


class _Progress:
    def __init__(self, total, enabled, desc):
        self.bar = None
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, n=1, value=None, name="R_F"):
        if self.bar is not None:
            self.bar.update(n)
            if value is not None and self.bar.n % 10 == 0:
                self.bar.set_postfix_str(f"{name}={value:.4g}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, payload: dict) -> None:
    """Atomically write a checkpoint (``torch.save`` to a temp file, then rename)."""
    from ..io.atomic import atomic_write

    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path) -> dict:
    from ..core.errors import FileFormatError

    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # corrupt
        raise FileFormatError(f"{path}: not a readable phasekit checkpoint ({type(exc).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != "phasekit-checkpoint":
        raise FileFormatError(f"{path}: not a phasekit checkpoint")
    if ck.get("version") != CHECKPOINT_VERSION:
        raise FileFormatError(f"{path}: checkpoint format version {ck.get('version')} is not this "
                              f"phasekit's ({CHECKPOINT_VERSION}); start the run again")
    return ck


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj




def _instantiate(spec, problem, stage: Stage):
    """Build a stage's algorithm; a parameter its constructor rejects is a ConfigError."""
    try:
        return spec.cls(problem, stage.n_iter, **stage.params)
    except ConfigError:
        raise
    except ValueError as exc:  # a parameter combination the config could not check alone
        raise ConfigError(f"{spec.name}: {' '.join(str(exc).split())}") from None


# --------------------------------------------------------------------------- the driver
def run(problem, stages: list[Stage], *, starts: int = 1, rng=None, x0=None,
        callback: Callable | None = None, progress: bool | None = None, metric_every: int = 1,
        keep_best: bool | None = None, constraint_update=None, checkpoint=None,
        checkpoint_every: int = 100, resume=None, config: dict | None = None,
        batch_starts: bool | None = None) -> ReconResult:
    """Run a chain of algorithm stages from ``starts`` random starts and pick the best.

    Parameters
    ----------
    problem : Problem
        Any object implementing :class:`phasekit.engine.Problem`.
    stages : list of Stage
        The chain (validated, e.g. by :func:`build_stages`); each stage's algorithm starts from
        the previous one's ``iterate()``.
    starts : int
        Number of independent random starts (best-of-N by the final objective).
    rng : int, SeedSequence or Generator
        Seed of the random starts (each start gets an independent child generator, also bound
        to stochastic algorithms through their ``bind_rng``).
    x0 : array, optional
        Start (as the user gives it, e.g. a centred image) used for every start instead of a
        random one.
    callback : callable, optional
        ``callback(IterationState)`` after every iteration; raise ``StopIteration`` to stop.
    progress : bool or None
        Progress bar; None shows it only when stderr is a terminal.
    metric_every : int
        Compute the metrics every this many iterations (0: only at the end of each stage).
    keep_best : bool or None
        Report the estimate with the lowest objective seen instead of the last one (None: the
        algorithm's default).
    constraint_update : object, optional
        Run on its cadence whatever the algorithm (shrink-wrap): ``reset()``, ``due(it)``,
        ``update(problem, estimate)``, ``state_dict()``, ``load_state_dict(d)`` and optionally
        ``metrics(problem)`` (a dict merged into the history).  Needs a
        :class:`~phasekit.engine.problem.SupportConstrained` problem.
    checkpoint : path, optional
        File written every ``checkpoint_every`` iterations and at the end of each start.
    resume : path, optional
        Checkpoint to continue from (written by an identical call); the resumed run gives the
        result of the uninterrupted one bit for bit.
    config : dict
        Parameters recorded in the result (the call that produced it).
    batch_starts : bool or None
        Run the starts as one batched ``(starts, *shape)`` problem (:mod:`phasekit.engine.batched`:
        same results as sequential starts within rounding; a callback is then called once per
        start after each iteration).  None (default): when every stage can and the batch fits in
        memory; a resumed run follows its checkpoint.  ``result.config["batched_starts"]``
        records the path taken.

    Examples
    --------
    Any modality's problem works (the engine imports none); with ``problem`` a CDI problem,
    e.g. ``phasekit.cdi.CDIProblem.from_arrays(I)``::

        res = run(problem, build_stages("er", 5, None, {}, modality="cdi"), rng=0)
        res.n_iter   # 5
    """
    check_problem(problem)
    if isinstance(starts, bool) or int(starts) != starts or starts < 1:
        raise ConfigError(f"starts must be an integer >= 1, got {starts!r}")
    if metric_every < 0:
        raise ConfigError(f"metric_every must be >= 0, got {metric_every}")
    if checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if not stages:
        raise ConfigError("no algorithm stage to run")
    constrained = isinstance(problem, SupportConstrained)
    if constraint_update is not None and not constrained:
        raise ConfigError(f"a support update (shrink-wrap) needs a problem with a support; "
                          f"{problem.modality} problems have none")
    specs = [get_algorithm(s.algorithm, problem.modality) for s in stages]
    n_total = sum(s.n_iter for s in stages)
    obj_name = problem.objective_name
    # what must match for a checkpoint to be resumed: the chain with its parameters, the starts,
    # the data shape and the seed (a different seed would silently mix two runs)
    signature = {"modality": problem.modality,
                 "stages": [(s.algorithm, s.n_iter, _signature_params(s.params)) for s in stages],
                 "starts": int(starts), "shape": list(problem.shape),
                 "seed": rng if isinstance(rng, (int, type(None))) else None}

    t_setup = time.perf_counter()
    initial_support = problem.support.clone() if constrained else None
    start_rngs = spawn_rngs(rng, starts)
    finished: list[dict] = []
    resume_state = None
    ck = load_checkpoint(resume) if resume is not None else None
    from .batched import choose_batch, run_batched

    use_batch = choose_batch(batch_starts, problem, specs, int(starts), callback, ck)
    if use_batch:  # a batched checkpoint is resumed only by a batched run (and vice versa)
        signature["batched"] = True
    if ck is not None:
        if ck["signature"] != signature:
            raise ConfigError(f"{resume}: checkpoint was written by a different run "
                              f"({ck['signature']} != {signature})")
        if not use_batch:
            finished = ck["finished"]
            resume_state = ck.get("current")
    x0_t = problem.from_input(x0) if x0 is not None else None
    if x0_t is not None and not bool(torch.isfinite(x0_t).all()):
        raise InputError("start image x0 contains NaN or Inf")
    setup_s = time.perf_counter() - t_setup

    # iterations_run: start-iterations stepped in this call (fewer than the result's when it
    # resumed a checkpoint): the per-iteration times divide by it
    timings = {"setup_s": setup_s, "iterate_s": 0.0, "metrics_s": 0.0, "iterations_run": 0}
    bar = _Progress(total=n_total * (starts - len(finished)), enabled=progress,
                    desc="+".join(s.algorithm for s in stages)[:40])
    stopped = False
    # one CPU thread when the problem's parallel operations are small (core.threads)
    threads = contextlib.ExitStack()
    n_threads = threads.enter_context(auto_cpu_threads(
        parallel_elements(problem, int(starts) if use_batch else 1), problem.device))
    t_run = time.perf_counter()

    def _snapshot(si, st_i, k_next, algo, history, best, g):
        return {"start": si, "stage": st_i, "k": k_next, "algo": _to_cpu(algo.state_dict()),
                "history": history, "best": _to_cpu(best),
                "support": problem.support.cpu().clone() if constrained else None,
                "rng": g.bit_generator.state,
                "constraint_update": constraint_update.state_dict() if constraint_update else None}

    try:
        if use_batch:
            finished, stopped = run_batched(
                problem, stages, specs, starts=starts, start_rngs=start_rngs, x0_t=x0_t,
                callback=callback, bar=bar, metric_every=metric_every, keep_best=keep_best,
                constraint_update=constraint_update, checkpoint=checkpoint,
                checkpoint_every=checkpoint_every, ck=ck, signature=signature, timings=timings,
                t_run=t_run)
        for si in range(len(finished), starts if not use_batch else 0):
            g = start_rngs[si]
            if constrained:
                problem.support.copy_(initial_support)
            history: dict[str, list] = {"iteration": [], "stage": []}
            best = {"rf": float("inf"), "img": None, "iteration": -1}
            first_stage, first_k, algo = 0, 0, None
            cu_state = resume_algo = None
            if resume_state is not None and resume_state["start"] == si:
                first_stage, first_k = resume_state["stage"], resume_state["k"]
                history = resume_state["history"]
                best = resume_state["best"]
                if best["img"] is not None:
                    best["img"] = best["img"].to(problem.device)
                if constrained:
                    problem.support.copy_(resume_state["support"].to(problem.device))
                g.bit_generator.state = resume_state["rng"]
                cu_state = resume_state.get("constraint_update")
                resume_algo = resume_state["algo"]
                resume_state = None
            if constraint_update is not None:
                constraint_update.reset()
                if hasattr(constraint_update, "begin_start"):  # e.g. a threshold per start
                    constraint_update.begin_start(si)
                if cu_state is not None:
                    constraint_update.load_state_dict(cu_state)
            done_before = sum(s.n_iter for s in stages[:first_stage]) + first_k
            it = done_before
            prev_iterate = None
            for st_i in range(first_stage, len(stages)):
                stage, spec = stages[st_i], specs[st_i]
                algo = _instantiate(spec, problem, stage)
                if hasattr(algo, "bind_rng"):  # stochastic algorithms draw from the start's rng
                    algo.bind_rng(g)
                kb = algo.keep_best_default if keep_best is None else keep_best
                if st_i == first_stage and first_k > 0:
                    algo.load_state_dict(resume_algo)
                else:
                    if prev_iterate is not None:
                        start_x = prev_iterate
                    elif x0_t is not None:
                        start_x = x0_t
                    else:
                        start_x = spec.cls.random_start(problem, g)
                    algo.initialize(start_x)
                k0 = first_k if st_i == first_stage else 0
                for k in range(k0, stage.n_iter):
                    t0 = time.perf_counter()
                    algo.step(k)
                    timings["iterate_s"] += time.perf_counter() - t0
                    timings["iterations_run"] += 1
                    it += 1
                    if constraint_update is not None and constraint_update.due(it):
                        constraint_update.update(problem, algo.estimate())
                    last = k == stage.n_iter - 1
                    m = None
                    if (metric_every and it % metric_every == 0) or last:
                        t1 = time.perf_counter()
                        m = algo.metrics()
                        if constraint_update is not None and hasattr(constraint_update, "metrics"):
                            m = {**m, **constraint_update.metrics(problem)}  # e.g. sw_area
                        timings["metrics_s"] += time.perf_counter() - t1
                        history["iteration"].append(it)
                        history["stage"].append(st_i)
                        for name, v in m.items():
                            history.setdefault(name, []).append(float(v))
                        rf = m.get(obj_name)
                        if kb and rf is not None and rf < best["rf"]:
                            best = {"rf": rf, "img": algo.estimate().clone(), "iteration": it}
                    bar.update(1, m.get(obj_name) if m else None, obj_name)
                    if callback is not None:
                        state = IterationState(it, si, st_i, stage.algorithm, m or {}, history,
                                               time.perf_counter() - t_run, algo, problem)
                        try:
                            callback(state)
                        except StopIteration:
                            stopped = True
                    if checkpoint is not None and (it % checkpoint_every == 0) and not last:
                        save_checkpoint(checkpoint, {
                            "format": "phasekit-checkpoint", "version": CHECKPOINT_VERSION,
                            "signature": signature, "finished": finished,
                            "current": _snapshot(si, st_i, k + 1, algo, history, best, g)})
                    if stopped:
                        break
                prev_iterate = algo.iterate()
                if stopped:
                    break
            # the estimate this start reports
            img = algo.final()
            if best["img"] is not None and (keep_best or (keep_best is None and algo.keep_best_default)):
                if best["rf"] < problem.objective(img):
                    img = best["img"]
            rf_final = problem.objective(img)
            extras = problem.extra_outputs(img) if isinstance(problem, ExtraOutputs) else {}
            finished.append({"extras": extras, "image": problem.to_output(img),
                             "rfactor": float(rf_final),
                             "support": problem.to_output(problem.support) if constrained else None,
                             "history": history, "n_iter": it})
            if checkpoint is not None:
                save_checkpoint(checkpoint, {"format": "phasekit-checkpoint", "version": CHECKPOINT_VERSION,
                                             "signature": signature, "finished": finished, "current": None})
            if stopped:
                break
    finally:
        bar.close()
        threads.close()
    if problem.device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t_run
    timings["total_s"] = total + setup_s
    n_run = timings["iterations_run"]
    timings["per_iteration_s"] = timings["iterate_s"] / n_run if n_run else float("nan")
    timings["per_iteration_total_s"] = ((timings["iterate_s"] + timings["metrics_s"]) / n_run
                                        if n_run else float("nan"))
    order = sorted(range(len(finished)), key=lambda i: (not np.isfinite(finished[i]["rfactor"]),
                                                         finished[i]["rfactor"]))
    fin = [finished[i] for i in order]
    ok = all(np.all(np.isfinite(f["image"])) for f in fin)
    msg = "stopped by callback" if stopped else ("finished" if ok else "non-finite values in the image")
    best_extras = fin[0].get("extras") or {}
    return ReconResult(
        image=fin[0]["image"], images=[f["image"] for f in fin], rfactors=[f["rfactor"] for f in fin],
        support=fin[0]["support"], history=fin[0]["history"], histories=[f["history"] for f in fin],
        n_iter=fin[0]["n_iter"], success=ok, message=msg, timings=timings,
        config={**(config or {}), "batched_starts": bool(use_batch)},
        provenance=provenance(problem.device, config.get("seed") if config else None, threads=n_threads),
        probe=best_extras.get("probe"),
        extras={k: v for k, v in best_extras.items() if k != "probe"},
    )


def _signature_params(params: dict) -> dict:
    """Parameters as recorded in a checkpoint signature (objects by their type name)."""
    out = {}
    for k, v in params.items():
        out[k] = v if isinstance(v, (int, float, str, bool, type(None), list, tuple, dict)) \
            else f"<{type(v).__name__}>"
    return out


def solve(problem, *, algorithm: str | None = None, n_iter: int | None = None,
          schedule=None, params: dict | None = None, starts: int = 1, rng=None, x0=None,
          callback: Callable | None = None, progress: bool | None = None,
          metric_every: int = 1, keep_best: bool | None = None, constraint_update=None,
          checkpoint=None, checkpoint_every: int = 100, resume=None,
          config: dict | None = None, batch_starts: bool | None = None) -> ReconResult:
    """The one path from a prepared problem to a result, shared by every modality.

    Builds and validates the stages for the problem's modality (an algorithm of another
    modality, an unknown parameter or an out-of-range value is a one-line
    :class:`ConfigError`), records the call in ``config`` and runs :func:`run`.

    Parameters
    ----------
    problem : Problem
    algorithm, n_iter, schedule, params
        See :func:`phasekit.engine.build_stages`.
    starts, rng, x0, callback, progress, metric_every, keep_best, constraint_update,
    checkpoint, checkpoint_every, resume, batch_starts
        See :func:`run`.
    config : dict, optional
        Extra facts to record in the result's ``config`` (the modality's own options).

    Examples
    --------
    With ``problem`` a CDI problem (``phasekit.cdi.CDIProblem.from_arrays(I)``)::

        solve(problem, schedule="HIO:5,ER:5", rng=0).n_iter   # 10
    """
    check_problem(problem)
    stages = build_stages(algorithm if schedule is None else None, n_iter, schedule, params or {},
                          modality=problem.modality)
    cfg = {"modality": problem.modality,
           "algorithm": stages[0].algorithm if len(stages) == 1 else None,
           "schedule": [[s.algorithm, s.n_iter, _signature_params(s.params)] for s in stages],
           "starts": int(starts) if not isinstance(starts, bool) else starts,
           "seed": rng if isinstance(rng, (int, type(None))) else str(rng),
           "metric_every": metric_every, "keep_best": keep_best, "batch_starts": batch_starts,
           "device": str(problem.device), "shape": list(problem.shape)}
    cfg.update(config or {})
    return run(problem, stages, starts=starts, rng=rng, x0=x0, callback=callback,
               progress=progress, metric_every=metric_every, keep_best=keep_best,
               constraint_update=constraint_update, checkpoint=checkpoint,
               checkpoint_every=checkpoint_every, resume=resume, config=cfg,
               batch_starts=batch_starts)
