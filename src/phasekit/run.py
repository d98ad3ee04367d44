"""The shared iteration driver and the result object.

Every iterative algorithm of phasekit is a subclass of :class:`Algorithm` (state + one ``step``);
this module runs it: per-iteration history of named metrics, callbacks that can stop the run,
a progress bar, wall-time accounting, checkpoint / resume, support updates (shrink-wrap), several
random starts with best-of-N selection by R-factor, and chains of algorithms
(``"HIO:800,ER:200"``, ``"(HIO:50,ER:10)*5"``, cohere-style ``"800*HIO,200*ER"``).

The design follows scipy's ``OptimizeResult`` (one result object) and the callback convention of
the architecture guide: ``callback(state)`` observes an :class:`IterationState`; raising
``StopIteration`` ends the run cleanly.
"""
from __future__ import annotations

import datetime
import logging
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .core.errors import ConfigError
from .core.rng import spawn_rngs

log = logging.getLogger("phasekit")

CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------- algorithm protocol
class Algorithm:
    """Base class of an iterative algorithm run by :func:`run`.

    Subclasses implement :meth:`initialize`, :meth:`step`, :meth:`estimate` and the state
    (de)serialisation; the driver owns the loop.  ``self.problem`` is shared by the stages of a
    chain (shrink-wrap changes ``problem.support`` in place).
    """

    name = "base"
    #: the driver keeps the best-R_F estimate by default for this algorithm
    keep_best_default = False
    #: names of the tensors that make up the state (saved in checkpoints)
    state_names: tuple[str, ...] = ("x",)

    def __init__(self, problem, n_iter: int, **params):
        self.problem = problem
        self.n_iter = int(n_iter)
        self.params = params

    # --- to implement
    def initialize(self, x0: torch.Tensor) -> None:
        """Set up the state from a real-space start ``x0`` (work layout)."""
        self.x = x0.clone().contiguous()

    def step(self, k: int) -> None:  # pragma: no cover - abstract
        """Advance one iteration; ``k`` counts iterations of this stage from 0."""
        raise NotImplementedError

    def estimate(self) -> torch.Tensor:
        """The current image estimate (work layout); it satisfies the object constraints."""
        return self.problem.constrain(self.x)

    def iterate(self) -> torch.Tensor:
        """What the next algorithm of a chain starts from (default: the raw iterate)."""
        return self.x

    def final(self) -> torch.Tensor:
        """The image the algorithm reports when it ends (default: :meth:`estimate`)."""
        return self.estimate()

    def metrics(self) -> dict[str, float]:
        """Named metrics of the current state (default: R-factor of :meth:`estimate`)."""
        return {"R_F": self.problem.rfactor(self.estimate())}

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


# --------------------------------------------------------------------------- schedules
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


def parse_schedule(spec: str) -> list[Stage]:
    """Parse a chain specification into stages.

    Accepted forms (comma separated, groups may repeat): ``"HIO:800,ER:200"``,
    ``"800*HIO,200*ER"`` (cohere), ``"HIO**800,ER**200"``, ``"(HIO:50,ER:10)*5"``.
    Algorithm names are case-insensitive; validity is checked against the registry by the caller.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("empty schedule")
    stages: list[Stage] = []
    for part in _split_top(spec):
        m = re.match(r"^\((.*)\)\s*\*\s*(\d+)$", part) or re.match(r"^(\d+)\s*\*\s*\((.*)\)$", part)
        if m:
            inner, rep = (m.group(1), m.group(2)) if part.startswith("(") else (m.group(2), m.group(1))
            sub = parse_schedule(inner)
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
        """The current estimate as a centred NumPy array (computed on demand)."""
        return self._problem.to_centred(self._algo.estimate())

    def support(self) -> np.ndarray:
        return self._problem.to_centred(self._problem.support)


# --------------------------------------------------------------------------- result
@dataclass
class ReconResult:
    """Result of a reconstruction (one object for every algorithm).

    Attributes
    ----------
    image : ndarray
        Best reconstruction (centred), the best start by final R-factor.
    images : list of ndarray
        One image per start, best first.
    rfactors : list of float
        Final R-factor of each image in ``images``.
    support : ndarray or None
        Final support of the best start.
    history : dict[str, list]
        Per-iteration metrics of the best start (``iteration``, ``R_F``, algorithm-specific ones,
        ``stage``).
    histories : list of dict
        The history of every start, in the order of ``images``.
    n_iter : int
        Iterations run per start.
    success : bool
        True when the run finished (or was stopped by a callback) and produced a finite image.
    message : str
    timings : dict
        Wall times in seconds (``setup_s``, ``iterate_s``, ``metrics_s``, ``total_s``,
        ``per_iteration_s`` = ``iterate_s`` per iteration, the algorithm alone, and
        ``per_iteration_total_s`` = (``iterate_s`` + ``metrics_s``) per iteration).
    config : dict
        The parameters that produced the result (a saved call).
    provenance : dict
        Software versions, device, host, date, seed.
    mask : ndarray or None
        Detector mask of the data (True = measured), saved with the result.
    """

    image: np.ndarray
    images: list = field(default_factory=list)
    rfactors: list = field(default_factory=list)
    support: np.ndarray | None = None
    history: dict = field(default_factory=dict)
    histories: list = field(default_factory=list)
    n_iter: int = 0
    success: bool = True
    message: str = ""
    timings: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    probe: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    mask: np.ndarray | None = None

    @property
    def rfactor(self) -> float:
        """Final R-factor of the best image."""
        return self.rfactors[0] if self.rfactors else float("nan")

    def save(self, path) -> None:
        """Write the result into a CXI file (atomically): ``entry_1/image_k`` per start."""
        from .io.cxi import write_result

        write_result(path, images=self.images or [self.image], support=self.support,
                     history=self.histories or self.history, config=self.config, provenance=self.provenance,
                     timings=self.timings, rfactors=self.rfactors, extra_images=self.extras or None,
                     mask=self.mask)

    def __repr__(self) -> str:  # short, useful in notebooks
        return (f"ReconResult(image={self.image.shape} {self.image.dtype}, starts={len(self.images)}, "
                f"R_F={self.rfactor:.4g}, n_iter={self.n_iter}, success={self.success}, "
                f"message={self.message!r})")


def provenance(device=None, seed=None) -> dict:
    """Versions, device, host and date for a result file."""
    from . import __version__

    return {
        "software": "phasekit", "version": __version__, "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
        "host": platform.node(), "machine": platform.machine(),
        "device": str(device) if device is not None else "cpu",
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed if isinstance(seed, (int, type(None))) else str(seed),
    }


# --------------------------------------------------------------------------- progress
class _Progress:
    def __init__(self, total, enabled, desc):
        self.bar = None
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, n=1, rf=None):
        if self.bar is not None:
            self.bar.update(n)
            if rf is not None and self.bar.n % 10 == 0:
                self.bar.set_postfix_str(f"R_F={rf:.4g}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, payload: dict) -> None:
    """Atomically write a checkpoint (``torch.save`` to a temp file, then rename)."""
    from .io.atomic import atomic_write

    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path) -> dict:
    from .core.errors import FileFormatError

    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # corrupt
        raise FileFormatError(f"{path}: not a readable phasekit checkpoint ({type(exc).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != "phasekit-checkpoint":
        raise FileFormatError(f"{path}: not a phasekit checkpoint")
    return ck


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


# --------------------------------------------------------------------------- the driver
def run(problem, stages: list[Stage], *, starts: int = 1, rng=None, x0=None,
        callback: Callable | None = None, progress: bool | None = None, metric_every: int = 1,
        keep_best: bool | None = None, shrinkwrap=None, checkpoint=None,
        checkpoint_every: int = 100, resume=None, config: dict | None = None) -> ReconResult:
    """Run a chain of algorithm stages from ``starts`` random starts and pick the best.

    Parameters
    ----------
    problem : CDIProblem (or any problem object with ``support``, ``rfactor``, ``to_centred``,
        ``random_start``)
    stages : list of Stage
        The chain; each stage's algorithm starts from the previous one's ``iterate()``.
    starts : int
        Number of independent random starts (best-of-N by final R-factor).
    rng : int, SeedSequence or Generator
        Seed of the random starts (each start gets an independent child generator).
    x0 : array, optional
        Starting image (centred) used for every start instead of a random one.
    callback : callable, optional
        ``callback(IterationState)`` after every iteration; raise ``StopIteration`` to stop.
    progress : bool or None
        Progress bar; None shows it only when stderr is a terminal.
    metric_every : int
        Compute the metrics (R-factor of the estimate, one extra FFT) every this many iterations
        (0: only at the end of each stage).
    keep_best : bool or None
        Report the estimate with the lowest R-factor seen instead of the last one (None: the
        algorithm's default).
    shrinkwrap : ShrinkWrap, optional
        Support update run on its cadence, whatever the algorithm.
    checkpoint : path, optional
        File written every ``checkpoint_every`` iterations and at the end of each start.
    resume : path, optional
        Checkpoint to continue from (written by an identical call).
    config : dict
        Parameters recorded in the result (the call that produced it).
    """
    from .registry import get_algorithm

    if starts < 1:
        raise ConfigError(f"starts must be >= 1, got {starts}")
    if metric_every < 0:
        raise ConfigError(f"metric_every must be >= 0, got {metric_every}")
    if checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    specs = [get_algorithm(s.algorithm) for s in stages]
    n_total = sum(s.n_iter for s in stages)
    # what must match for a checkpoint to be resumed: the chain with its parameters, the starts,
    # the data shape and the seed (a different seed would silently mix two runs)
    signature = {"stages": [(s.algorithm, s.n_iter, dict(s.params)) for s in stages],
                 "starts": starts, "shape": list(problem.shape),
                 "seed": rng if isinstance(rng, (int, type(None))) else None}

    t_setup = time.perf_counter()
    initial_support = problem.support.clone()
    start_rngs = spawn_rngs(rng, starts)
    finished: list[dict] = []
    resume_state = None
    if resume is not None:
        ck = load_checkpoint(resume)
        if ck["signature"] != signature:
            raise ConfigError(f"{resume}: checkpoint was written by a different run "
                              f"({ck['signature']} != {signature})")
        finished = ck["finished"]
        resume_state = ck.get("current")
    x0_t = problem.from_centred(x0) if x0 is not None else None
    setup_s = time.perf_counter() - t_setup

    timings = {"setup_s": setup_s, "iterate_s": 0.0, "metrics_s": 0.0}
    bar = _Progress(total=n_total * (starts - len(finished)), enabled=progress,
                    desc="+".join(s.algorithm for s in stages)[:40])
    stopped = False
    t_run = time.perf_counter()
    try:
        for si in range(len(finished), starts):
            g = start_rngs[si]
            problem.support.copy_(initial_support)
            history: dict[str, list] = {"iteration": [], "stage": []}
            best = {"rf": float("inf"), "img": None, "iteration": -1}
            first_stage, first_k, algo = 0, 0, None
            sw_state = resume_algo = None
            if resume_state is not None and resume_state["start"] == si:
                first_stage, first_k = resume_state["stage"], resume_state["k"]
                history = resume_state["history"]
                best = resume_state["best"]
                if best["img"] is not None:
                    best["img"] = best["img"].to(problem.device)
                problem.support.copy_(resume_state["support"].to(problem.device))
                g.bit_generator.state = resume_state["rng"]
                sw_state = resume_state.get("shrinkwrap")
                resume_algo = resume_state["algo"]
                resume_state = None
            if shrinkwrap is not None:
                shrinkwrap.reset()
                if sw_state is not None:
                    shrinkwrap.load_state_dict(sw_state)
            done_before = sum(s.n_iter for s in stages[:first_stage]) + first_k
            it = done_before
            prev_iterate = None
            for st_i in range(first_stage, len(stages)):
                stage, spec = stages[st_i], specs[st_i]
                algo = spec.cls(problem, stage.n_iter, **stage.params)
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
                    it += 1
                    if shrinkwrap is not None and shrinkwrap.due(it):
                        shrinkwrap.update(problem, algo.estimate())
                    last = k == stage.n_iter - 1
                    m = None
                    if (metric_every and it % metric_every == 0) or last:
                        t1 = time.perf_counter()
                        m = algo.metrics()
                        timings["metrics_s"] += time.perf_counter() - t1
                        history["iteration"].append(it)
                        history["stage"].append(st_i)
                        for name, v in m.items():
                            history.setdefault(name, []).append(float(v))
                        rf = m.get("R_F")
                        if kb and rf is not None and rf < best["rf"]:
                            best = {"rf": rf, "img": algo.estimate().clone(), "iteration": it}
                    bar.update(1, m.get("R_F") if m else None)
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
                            "current": {"start": si, "stage": st_i, "k": k + 1,
                                        "algo": _to_cpu(algo.state_dict()),
                                        "history": history, "best": _to_cpu(best),
                                        "support": problem.support.cpu().clone(),
                                        "rng": g.bit_generator.state,
                                        "shrinkwrap": shrinkwrap.state_dict() if shrinkwrap else None}})
                    if stopped:
                        break
                prev_iterate = algo.iterate()
                if stopped:
                    break
            # the image this start reports
            img = algo.final()
            if best["img"] is not None and (keep_best or (keep_best is None and algo.keep_best_default)):
                cand_rf = problem.rfactor(img)
                if best["rf"] < cand_rf:
                    img = best["img"]
            rf_final = problem.rfactor(img)
            img_c = problem.to_centred(img)
            if getattr(problem, "real", False) and np.iscomplexobj(img_c):
                img_c = np.ascontiguousarray(img_c.real)  # a real-constrained object is real
            probe_of = getattr(problem, "probe_of", None)  # ptychography: the probe as well
            finished.append({"probe": probe_of(img) if probe_of is not None else None,
                             "image": img_c, "rfactor": float(rf_final),
                             "support": problem.to_centred(problem.support), "history": history,
                             "n_iter": it})
            if checkpoint is not None:
                save_checkpoint(checkpoint, {"format": "phasekit-checkpoint", "version": CHECKPOINT_VERSION,
                                             "signature": signature, "finished": finished, "current": None})
            if stopped:
                break
    finally:
        bar.close()
    if problem.device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t_run
    timings["total_s"] = total + setup_s
    n_done = sum(f["n_iter"] for f in finished)
    timings["per_iteration_s"] = timings["iterate_s"] / max(n_done, 1)
    timings["per_iteration_total_s"] = (timings["iterate_s"] + timings["metrics_s"]) / max(n_done, 1)
    order = sorted(range(len(finished)), key=lambda i: (not np.isfinite(finished[i]["rfactor"]),
                                                         finished[i]["rfactor"]))
    fin = [finished[i] for i in order]
    ok = all(np.all(np.isfinite(f["image"])) for f in fin)
    msg = "stopped by callback" if stopped else ("finished" if ok else "non-finite values in the image")
    return ReconResult(
        image=fin[0]["image"], images=[f["image"] for f in fin], rfactors=[f["rfactor"] for f in fin],
        support=fin[0]["support"], history=fin[0]["history"], histories=[f["history"] for f in fin],
        n_iter=fin[0]["n_iter"], success=ok, message=msg, timings=timings, config=config or {},
        provenance=provenance(problem.device, config.get("seed") if config else None),
        probe=fin[0].get("probe"),
    )
