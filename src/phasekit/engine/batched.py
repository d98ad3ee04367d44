"""Batched random starts: the ``N`` starts of :func:`phasekit.engine.run` as one ``(N, *shape)``
problem.

Several random starts are independent runs of the same chain.  Run one after another they pay
``N`` times the per-iteration Python overhead and ``N`` small FFT pairs; run as one batch they
pay the overhead once and do one batched FFT pair (the natural layout on a GPU).  The driver
takes this path (:func:`choose_batch`) when every stage's algorithm declares it can run a batch
(a classmethod ``supports_batch(problem)`` returning True: CDI's ER, HIO and RAAR), the problem
does not decline (``prefers_batch(n)``: a CDI problem on the CPU declines when its FFTs call MKL
directly, which leaves a batch little to share, and for large images) and ``N`` copies of the
working set fit in memory (the problem's ``batch_memory(n)``, compared with the free memory).

What is the same as sequential starts (tests compare both paths on final images, R-factors and
histories within float32 rounding -- a batched FFT may round differently from a single one):

* start ``i`` starts from the same random start, drawn from the same child generator;
* each start has its own support (the problem's ``support`` is ``(N, *shape)`` while the batch
  runs), its own copy of the constraint update (shrink-wrap: ``reset()``, ``begin_start(i)``,
  so its own threshold, guards, counters and events), its own history, its own keep-best
  estimate and its own final selection;
* the result lists the starts sorted by final objective, as the sequential path does.

What differs, by design:

* a callback is called once per start after every iteration (``state.start`` tells which,
  ``state.history`` is that start's and ``state.image()`` its estimate; the iterations of the
  starts interleave: iteration ``k`` of every start before iteration ``k + 1`` of any), and
  ``StopIteration`` stops all starts at that iteration (sequentially it stops the current start
  and skips the later ones).  A callback that needs the sequential order asks for
  ``batch_starts=False``;
* a checkpoint of a batched run holds all starts at one iteration; it is resumed only by a
  batched run (``batch_starts`` None or True), and a sequential checkpoint only by a sequential
  run: the other combination is refused with a one-line :class:`ConfigError` (the states do not
  map onto each other without replaying iterations).

After the run the problem's own support tensor holds the last start's support (as after a
sequential run) and the caller's constraint update object holds the last start's state.

Examples
--------
With ``problem`` a CDI problem (``phasekit.cdi.CDIProblem.from_arrays(I)``)::

    res = run(problem, build_stages("hio", 50, None, {}, modality="cdi"), starts=4, rng=0,
              batch_starts=True)
    res.config["batched_starts"]   # True
"""
from __future__ import annotations

import copy
import logging
import math
import time

import torch

from ..core.errors import ConfigError
from .problem import ExtraOutputs, SupportConstrained

log = logging.getLogger("phasekit")

#: a batch is run automatically only when its estimated memory is below this fraction of the
#: free memory (the rest is left to the other processes and to the result arrays)
AUTO_MEMORY_FRACTION = 0.5


def batch_memory(problem, n: int) -> int:
    """Estimated peak bytes of ``n`` starts run as one batch: the problem's ``batch_memory(n)``
    where it has one, else ``n`` times 150 bytes per data element (a handful of complex work
    arrays, as :func:`phasekit.core.resources.estimate_cdi_reconstruction`)."""
    fn = getattr(problem, "batch_memory", None)
    if fn is not None:
        return int(fn(n))
    double = str(getattr(problem, "precision", "single")).lower() == "double"
    return int(n) * 150 * math.prod(problem.shape) * (2 if double else 1)


def _free_memory(device) -> int:
    if getattr(device, "type", "cpu") == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    from ..core.resources import available_memory

    return int(available_memory())


def choose_batch(batch_starts, problem, specs, starts: int, callback, checkpoint_state) -> bool:
    """Decide whether :func:`run` batches its starts (see the module docstring).

    ``batch_starts`` None (auto): batched when ``starts > 1``, every stage supports it, the
    problem does not decline (an optional ``prefers_batch(n)`` returning False) and the
    batch takes under :data:`AUTO_MEMORY_FRACTION` of the free memory;
    a resumed run follows its checkpoint.  True: batched (a stage that cannot run batched is a
    :class:`ConfigError`, a batch too large for the memory an
    :class:`~phasekit.core.errors.InputError` unless the memory guard is overridden); one
    start runs sequentially.  False: sequential.
    """
    if batch_starts is not None and not isinstance(batch_starts, bool):
        raise ConfigError(f"batch_starts must be True, False or None, got {batch_starts!r}")
    ck_batched = None
    if checkpoint_state is not None:
        ck_batched = bool(checkpoint_state["signature"].get("batched", False))
        if batch_starts is not None and batch_starts != ck_batched:
            how = "batched" if ck_batched else "sequential"
            raise ConfigError(f"the checkpoint was written by a run with {how} starts; resume it "
                              f"with batch_starts={ck_batched} (CLI: --{'' if ck_batched else 'no-'}"
                              f"batch-starts) or leave batch_starts unset")
        return ck_batched
    if batch_starts is False or starts < 2:
        return False
    unable = [s.name for s in specs
              if not (getattr(s.cls, "supports_batch", None) and s.cls.supports_batch(problem))]
    if unable:
        if batch_starts:
            raise ConfigError(f"batch_starts: {', '.join(sorted(set(unable)))} cannot run its starts "
                              f"as a batch (ER, HIO and RAAR can); drop batch_starts")
        return False
    prefers = getattr(problem, "prefers_batch", None)
    if batch_starts is None and prefers is not None and not prefers(starts):
        return False  # the problem knows a batch brings nothing there (large CDI images on a CPU)
    need = batch_memory(problem, starts)
    if batch_starts:
        from ..core.resources import check_memory

        if getattr(problem.device, "type", "cpu") != "cuda":
            check_memory(need, f"running {starts} starts as one batch (batch_starts=False runs "
                               f"them one after another)")
        return True
    fits = need <= AUTO_MEMORY_FRACTION * _free_memory(problem.device)
    if not fits:
        log.info("starts run one after another: a batch of %d needs about %.0f MB", starts, need / 1e6)
    return fits


class _StartView:
    """One start of a batched problem as a constraint update or a callback sees it: the problem
    with ``support`` replaced by the start's slice (attribute reads go to the problem)."""

    def __init__(self, problem, support):
        self._problem = problem
        self.support = support

    def __getattr__(self, name):
        return getattr(self._problem, name)


class _StartAlgo:
    """One start of a batched algorithm, for :meth:`IterationState.image`."""

    def __init__(self, algo, index):
        self._algo, self._index = algo, index

    def estimate(self):
        return self._algo.estimate()[self._index]


def run_batched(problem, stages, specs, *, starts, start_rngs, x0_t, callback, bar, metric_every,
                keep_best, constraint_update, checkpoint, checkpoint_every, ck, signature,
                timings, t_run):
    """The batched loop of :func:`phasekit.engine.run`; returns ``(finished, stopped)`` with
    ``finished`` one entry per start in start order (the shape the sequential loop builds)."""
    from .driver import (
        CHECKPOINT_VERSION,
        IterationState,
        _instantiate,
        _to_cpu,
        save_checkpoint,
    )

    n = int(starts)
    constrained = isinstance(problem, SupportConstrained)
    obj_name = problem.objective_name
    finished = list(ck["finished"]) if ck is not None else []
    if len(finished) >= n:  # the checkpoint of a completed run
        return finished, False
    cur = ck.get("current") if ck is not None else None
    cus = None
    if constraint_update is not None:
        cus = [copy.deepcopy(constraint_update) for _ in range(n)]
        for i, cu in enumerate(cus):
            cu.reset()
            if hasattr(cu, "begin_start"):
                cu.begin_start(i)

    orig_support = problem.support if constrained else None
    x_starts = None
    if cur is not None:
        first_stage, first_k = int(cur["stage"]), int(cur["k"])
        histories, bests = cur["histories"], cur["bests"]
        for b in bests:
            if b["img"] is not None:
                b["img"] = b["img"].to(problem.device)
        sup_b = cur["support"].to(problem.device).clone() if constrained else None
        for g, st in zip(start_rngs, cur["rngs"]):
            g.bit_generator.state = st
        if cus is not None:
            for cu, st in zip(cus, cur["constraint_updates"]):
                cu.load_state_dict(st)
        resume_algo = cur["algo"]
    else:
        first_stage = first_k = 0
        histories = [{"iteration": [], "stage": []} for _ in range(n)]
        bests = [{"rf": float("inf"), "img": None, "iteration": -1} for _ in range(n)]
        sup_b = orig_support.unsqueeze(0).repeat(n, *([1] * orig_support.ndim)).contiguous() \
            if constrained else None
        resume_algo = None
        if x0_t is None:  # drawn with the start's support in place, as the sequential loop does
            x_starts = torch.stack([specs[0].cls.random_start(problem, g) for g in start_rngs])
        else:
            x_starts = x0_t.unsqueeze(0).repeat(n, *([1] * x0_t.ndim)).contiguous()
    views = [_StartView(problem, sup_b[i]) if constrained else problem for i in range(n)]

    def snapshot(st_i, k_next, algo):
        return {"batched": True, "stage": st_i, "k": k_next, "algo": _to_cpu(algo.state_dict()),
                "histories": histories, "bests": _to_cpu(bests),
                "support": sup_b.cpu().clone() if constrained else None,
                "rngs": [g.bit_generator.state for g in start_rngs],
                "constraint_updates": [cu.state_dict() for cu in cus] if cus is not None else None}

    stopped = False
    done = False
    if constrained:
        problem.support = sup_b
    try:
        it = sum(s.n_iter for s in stages[:first_stage]) + first_k
        prev_iterate = algo = None
        for st_i in range(first_stage, len(stages)):
            stage, spec = stages[st_i], specs[st_i]
            algo = _instantiate(spec, problem, stage)
            kb = algo.keep_best_default if keep_best is None else keep_best
            if st_i == first_stage and first_k > 0:
                algo.load_state_dict(resume_algo)
            else:
                algo.initialize(prev_iterate if prev_iterate is not None else x_starts)
            k0 = first_k if st_i == first_stage else 0
            for k in range(k0, stage.n_iter):
                t0 = time.perf_counter()
                algo.step(k)
                timings["iterate_s"] += time.perf_counter() - t0
                timings["iterations_run"] += n  # one step of every start
                it += 1
                if cus is not None and any(cu.due(it) for cu in cus):
                    est = algo.estimate()
                    for i, cu in enumerate(cus):
                        if cu.due(it):
                            cu.update(views[i], est[i])
                last = k == stage.n_iter - 1
                ms = None
                if (metric_every and it % metric_every == 0) or last:
                    t1 = time.perf_counter()
                    mb = algo.metrics_batch()
                    ms = []
                    est = None
                    for i in range(n):
                        m = {name: v[i] for name, v in mb.items()}
                        if cus is not None and hasattr(cus[i], "metrics"):
                            m = {**m, **cus[i].metrics(views[i])}
                        ms.append(m)
                        h = histories[i]
                        h["iteration"].append(it)
                        h["stage"].append(st_i)
                        for name, v in m.items():
                            h.setdefault(name, []).append(float(v))
                        rf = m.get(obj_name)
                        if kb and rf is not None and rf < bests[i]["rf"]:
                            est = algo.estimate() if est is None else est
                            bests[i] = {"rf": rf, "img": est[i].clone(), "iteration": it}
                    timings["metrics_s"] += time.perf_counter() - t1
                bar.update(n, min(m.get(obj_name, math.inf) for m in ms) if ms else None, obj_name)
                if callback is not None:
                    for i in range(n):
                        state = IterationState(it, i, st_i, stage.algorithm, ms[i] if ms else {},
                                               histories[i], time.perf_counter() - t_run,
                                               _StartAlgo(algo, i), views[i])
                        try:
                            callback(state)
                        except StopIteration:
                            stopped = True
                if checkpoint is not None and (it % checkpoint_every == 0) and not last:
                    save_checkpoint(checkpoint, {
                        "format": "phasekit-checkpoint", "version": CHECKPOINT_VERSION,
                        "signature": signature, "finished": finished,
                        "current": snapshot(st_i, k + 1, algo)})
                if stopped:
                    break
            prev_iterate = algo.iterate()
            if stopped:
                break
        # the estimate each start reports (as the sequential loop: keep-best against the final)
        img_final = algo.final()
        use_best = keep_best or (keep_best is None and algo.keep_best_default)
        for i in range(n):
            img = img_final[i]
            if bests[i]["img"] is not None and use_best and bests[i]["rf"] < problem.objective(img):
                img = bests[i]["img"]
            extras = problem.extra_outputs(img) if isinstance(problem, ExtraOutputs) else {}
            finished.append({"extras": extras, "image": problem.to_output(img),
                             "rfactor": float(problem.objective(img)),
                             "support": problem.to_output(sup_b[i]) if constrained else None,
                             "history": histories[i], "n_iter": it})
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"format": "phasekit-checkpoint", "version": CHECKPOINT_VERSION,
                                         "signature": signature, "finished": finished, "current": None})
        done = True
    finally:
        if constrained:
            problem.support = orig_support
            if done:  # as after a sequential run: the last start's support
                orig_support.copy_(sup_b[-1])
        if cus is not None and done:
            constraint_update.load_state_dict(cus[-1].state_dict())
    return finished, stopped
