"""Batch phasing of an SPI stack beyond one process: chunks as Dask tasks, files per chunk.

:func:`run_batch` phases every pattern of a stack (:mod:`phasekit.io.spi`) with
:func:`phasekit.spi.phasing.phase_batch`:

* the stack is cut into chunks of ``chunk`` consecutive patterns; each chunk is one task, run by
  the module-level :func:`phase_chunk` (what the worker gets: the stack's path, the range, the
  config as a dict, the seed; never the patterns: each worker reads its chunk straight from the
  shared HDF5 file);
* **where**: ``workers=0`` runs the chunks in this process, one after the other (no Dask needed);
  otherwise a ``distributed.LocalCluster`` with ``workers`` processes (default: one per core),
  one thread each, bound to ``127.0.0.1``, no dashboard; ``scheduler="tcp://HOST:8786"`` or
  ``scheduler_file=`` attaches to an existing cluster instead (``dask scheduler`` / ``dask
  worker ADDRESS --nthreads 1`` on the nodes; the stack and output directory must be on a file
  system every worker sees).  Torch runs with one intra-op thread per worker (more threads are
  slower at these sizes, measured in ``benchmarks/spi_scaling.py``);
* **files**: each finished chunk is written atomically by its worker to ``OUT/chunks/cNNNNNN.h5``
  and the client appends a line to ``OUT/journal.jsonl``; when every chunk is there they are
  merged into ``OUT/phased.h5`` (:mod:`phasekit.spi.results`);
* **failures**: a pattern that cannot be phased gets a status (see
  :mod:`phasekit.spi.phasing`); a task whose worker dies is rerun elsewhere (Dask's
  ``allowed-failures``; an exception inside the task is retried ``retries`` times); a chunk that
  still fails is journalled as failed, the others go on, and :func:`run_batch` raises one
  :class:`~phasekit.core.errors.PhasekitError` line at the end naming the failed chunks
  (rerun with ``resume=True``);
* **resume**: ``resume=True`` skips chunks whose file exists and whose journal line says ok; the
  run's parameters (``OUT/run.json``) must be the same;
* **determinism**: seeds derive from each pattern's index (:mod:`phasekit.spi.phasing`), so the
  result depends neither on the chunk size, the worker count nor the order chunks finish;
* a tqdm bar over completed chunks (``as_completed``) shows patterns done and failures.

Dask is imported only here and only when a cluster is used: ``import phasekit`` does not import
it.  Without it, a one-line error says how to install it (``pip install 'phasekit[dask]'``).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, InputError, PhasekitError
from ..io.atomic import atomic_save_text
from .phasing import PhasingConfig, phase_batch
from .results import (
    append_journal,
    chunk_complete,
    chunk_path,
    merge_chunks,
    read_journal,
    read_run_record,
)

__all__ = [
    "BatchRunSummary",
    "connect",
    "import_distributed",
    "local_cluster",
    "phase_chunk",
    "plan_chunks",
    "run_batch",
]

log = logging.getLogger("phasekit")

DASK_HINT = ("Dask is not installed: pip install 'phasekit[dask]' (dask[distributed]), "
             "or run in this process with --workers 0")


def import_distributed():
    """Import ``distributed`` or raise one line on how to install it."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(DASK_HINT) from None
    return distributed


#: glibc malloc settings of the workers.  distributed's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``
#: (to hand freed memory back to the OS), which also fixes the mmap threshold at 128 KiB: every
#: torch temporary of a pattern batch is then a fresh mmap + page faults, and phasing ran 2-3x
#: slower in a worker than in a plain process (measured, benchmarks/spi_scaling.py).  Workers
#: started here keep temporaries below 32 MiB on the heap and trim above 128 MiB instead.  For
#: an external cluster set the same in the workers' environment (``dask worker`` honours
#: ``distributed.nanny.pre-spawn-environ`` in the dask config).
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(128 * 2 ** 20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2 ** 20)}


@dataclass
class BatchRunSummary:
    """What :func:`run_batch` did."""

    outdir: Path
    result: Path | None
    n: int
    n_chunks: int
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    status_counts: dict = field(default_factory=dict)
    wall_s: float = 0.0
    workers: int = 0
    where: str = "this process"

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.status_counts.items()) or "none"
        return (f"{self.n} patterns in {self.n_chunks} chunks ({len(self.done)} phased, "
                f"{len(self.skipped)} resumed, {len(self.failed)} failed) on {self.where} in "
                f"{self.wall_s:.1f} s; patterns: {counts}")


def plan_chunks(n: int, chunk: int) -> list[tuple[int, int, int]]:
    """``[(chunk_id, start, stop), ...]`` covering ``range(n)``.

    Examples
    --------
    >>> plan_chunks(5, 2)
    [(0, 0, 2), (1, 2, 4), (2, 4, 5)]
    """
    if chunk < 1:
        raise ConfigError(f"chunk size must be >= 1, got {chunk}")
    return [(k, s, min(s + chunk, n)) for k, s in enumerate(range(0, n, chunk))]


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def phase_chunk(path: str, start: int, stop: int, config: dict, seed: int, outdir: str,
                chunk_id: int) -> dict:
    """One task: read patterns ``start:stop`` of the stack, phase them, write the chunk file.

    Runs on a worker (module level, so it pickles by reference).  Returns a small JSON-able
    summary (the arrays stay in the chunk file).
    """
    t0 = time.perf_counter()
    if _in_dask_worker():
        import torch

        torch.set_num_threads(1)
    from ..io import spi as spio
    from .results import write_result

    info = spio.read_stack_info(path)
    frames = spio.read_frames(info, start, stop)
    # per-pattern masks of preprocessed stacks (cropped about each centre), else the detector's
    masks = spio.read_masks(info, start, stop) if hasattr(spio, "read_masks") else info.mask
    res = phase_batch(frames, masks, config=config, indices=np.arange(start, stop), seed=seed)
    dest = chunk_path(outdir, chunk_id)
    write_result(dest, res, start=int(start), stop=int(stop), chunk=int(chunk_id))
    return {"chunk": int(chunk_id), "start": int(start), "stop": int(stop), "status": "ok",
            "counts": res.status_counts(), "wall_s": round(time.perf_counter() - t0, 4),
            "pid": os.getpid(), "file": str(dest.relative_to(outdir))}


def local_cluster(n_workers: int | None = None, **kwargs):
    """A loopback ``LocalCluster``: one single-threaded worker process per core, no dashboard.

    Examples
    --------
    >>> with local_cluster(2) as cluster:  # doctest: +SKIP
    ...     print(cluster.scheduler_address)
    tcp://127.0.0.1:...
    """
    import_distributed()
    from distributed import LocalCluster

    n = int(n_workers or os.cpu_count() or 1)
    opts = dict(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, memory_limit="auto", silence_logs=logging.ERROR)
    opts.update(kwargs)
    import dask

    # glibc reads MALLOC_* when a process starts: they must be in the nanny's pre-spawn environment
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.update(WORKER_MALLOC_ENV)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(**opts)


def connect(scheduler: str | None = None, scheduler_file=None, timeout: float = 30.0):
    """A ``distributed.Client`` attached to an existing cluster (by address or scheduler file)."""
    import_distributed()
    from distributed import Client

    try:
        if scheduler_file is not None:
            if not Path(scheduler_file).is_file():
                raise InputError(f"{scheduler_file}: no such scheduler file")
            return Client(scheduler_file=os.fspath(scheduler_file), timeout=timeout)
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        where = scheduler_file or scheduler
        raise InputError(f"cannot reach the Dask scheduler at {where}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _run_record(info, chunk: int, seed: int, cfg: PhasingConfig, n_chunks: int) -> dict:
    st = info.path.stat()
    return {"stack": str(info.path.resolve()), "stack_size": int(st.st_size), "n": int(info.n),
            "shape": list(info.shape), "chunk": int(chunk), "n_chunks": int(n_chunks),
            "seed": int(seed), "config": cfg.model_dump()}


#: lock file of a run directory: held (``flock``) by the one ``run_batch`` writing it
LOCK_NAME = ".phasekit-batch.lock"


def _foreign_entries(outdir: Path) -> bool:
    return outdir.exists() and any(p.name != LOCK_NAME for p in outdir.iterdir())


def _lock_outdir(outdir: Path):
    """Take the run directory's lock (created in it) or raise one line; returns the open file.

    ``flock`` locks go with the process: a run killed outright (SIGKILL) leaves no stale lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        return None
    fh = open(outdir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        who = fh.read().strip()
        fh.close()
        raise InputError(f"{outdir} is being written by another phasekit batch run"
                         f"{f' ({who})' if who else ''}; wait for it to end or choose another "
                         "output directory") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}")
    fh.flush()
    return fh


def _prepare_outdir(outdir: Path, record: dict, resume: bool, chunks=()) -> set[int]:
    """Create/check the run directory (its lock held); return the chunk ids already done.

    A chunk is done when the journal says ok and its file opens and holds its patterns; a
    damaged chunk file (a crash below the atomic rename, a truncated copy) is phased again.
    """
    run_file = outdir / "run.json"
    if run_file.exists():
        if not resume:
            raise InputError(f"{outdir} already holds a batch run; pass --resume to continue it "
                             "or choose another output directory")
        old = read_run_record(outdir)
        diff = [k for k in ("stack", "n", "shape", "chunk", "seed", "config") if old.get(k) != record.get(k)]
        if diff:
            raise InputError(f"{outdir}: cannot resume, the run's {', '.join(diff)} differ from this "
                             "call's")
    else:
        if _foreign_entries(outdir):
            raise InputError(f"{outdir} exists and is not a batch-run directory; choose an empty "
                             "or new directory")
        outdir.mkdir(parents=True, exist_ok=True)
        atomic_save_text(run_file, json.dumps(record, indent=1))
    (outdir / "chunks").mkdir(exist_ok=True)
    ranges = {cid: (s, e) for cid, s, e in chunks}
    done = set()
    for e in read_journal(outdir):
        cid = e["chunk"]
        if e.get("status") == "ok" and cid in ranges and cid not in done:
            if chunk_complete(outdir, cid, *ranges[cid]):
                done.add(cid)
            elif chunk_path(outdir, cid).exists():
                log.warning("%s is damaged or incomplete; phasing chunk %d again",
                            chunk_path(outdir, cid), cid)
    return done


def run_batch(stack, outdir, *, config=None, chunk: int = 16, workers: int | None = None,
              scheduler: str | None = None, scheduler_file=None, resume: bool = False,
              seed: int = 0, retries: int = 1, progress: bool = True, client=None,
              task=None, merge: bool = True, **options) -> BatchRunSummary:
    """Phase every pattern of an SPI stack, chunk by chunk, locally or on a Dask cluster.

    Parameters
    ----------
    stack : path
        CXI/HDF5 stack (frames ``(N, H, W)``, centred patterns; :func:`phasekit.io.spi.read_stack_info`).
    outdir : path
        Run directory (created; must be new or empty unless ``resume``).
    config : PhasingConfig or dict, optional
        Phasing parameters; ``**options`` override single fields (``algorithm="raar"``...).
    chunk : int
        Patterns per task (16).
    workers : int, optional
        0: in this process, no Dask.  N: a loopback LocalCluster of N single-threaded worker
        processes.  None: one per core (ignored with ``scheduler``/``scheduler_file``/``client``).
    scheduler, scheduler_file : str, optional
        Attach to an existing Dask cluster instead.
    resume : bool
        Continue a run in ``outdir``, skipping chunks already done.
    seed : int
        Root seed (pattern ``i`` starts from ``SeedSequence([seed, i])``).
    retries : int
        Retries of a task that raised (worker deaths are rescheduled by Dask itself).
    progress : bool
        A tqdm bar over completed chunks.
    client : distributed.Client, optional
        Use this client.
    task : callable, optional
        Replaces :func:`phase_chunk` (same signature; for tests and instrumentation).
    merge : bool
        Merge the chunk files into ``OUT/phased.h5`` at the end (when every chunk is done).

    Returns
    -------
    BatchRunSummary

    Raises
    ------
    PhasekitError
        One line when chunks failed (the others are kept; rerun with ``resume=True``).

    Examples
    --------
    >>> s = run_batch("sim.cxi", "out", workers=2, algorithm="hio", starts=4)  # doctest: +SKIP
    >>> print(s.line())  # doctest: +SKIP
    """
    from ..io.spi import read_stack_info

    cfg = PhasingConfig.make(config, **options)
    info = read_stack_info(stack)
    outdir = Path(outdir)
    chunks = plan_chunks(info.n, int(chunk))
    record = _run_record(info, chunk, seed, cfg, len(chunks))
    if _foreign_entries(outdir) and not (outdir / "run.json").exists():
        raise InputError(f"{outdir} exists and is not a batch-run directory; choose an empty "
                         "or new directory")
    outdir.mkdir(parents=True, exist_ok=True)
    lock = _lock_outdir(outdir)
    try:
        return _run_locked(outdir, info, cfg, chunks, record, resume, seed, retries, progress,
                           workers, scheduler, scheduler_file, client, task, merge)
    finally:
        if lock is not None:
            lock.close()


def _run_locked(outdir, info, cfg, chunks, record, resume, seed, retries, progress, workers,
                scheduler, scheduler_file, client, task, merge) -> BatchRunSummary:
    done = _prepare_outdir(outdir, record, resume, chunks)
    todo = [c for c in chunks if c[0] not in done]
    summary = BatchRunSummary(outdir=outdir, result=None, n=info.n, n_chunks=len(chunks),
                              skipped=sorted(done))
    fn = task or phase_chunk
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=info.n, initial=sum(c[2] - c[1] for c in chunks if c[0] in done),
               desc="phasing", unit="pattern", disable=not progress, dynamic_ncols=True)
    cdict = cfg.model_dump()
    path = str(info.path.resolve())

    def finished(entry):
        append_journal(outdir, entry)
        if entry.get("status") == "ok":
            summary.done.append(entry["chunk"])
        else:
            summary.failed[entry["chunk"]] = entry.get("error", "")
        bar.update(entry["stop"] - entry["start"])
        if summary.failed:
            bar.set_postfix(failed=len(summary.failed))

    try:
        if todo and workers == 0 and scheduler is None and scheduler_file is None and client is None:
            summary.where, summary.workers = "this process", 0
            for cid, s, e in todo:
                try:
                    finished(fn(path, s, e, cdict, seed, str(outdir), cid))
                except Exception as exc:  # noqa: BLE001 - journal it, go on
                    finished({"chunk": cid, "start": s, "stop": e, "status": "failed",
                              "error": f"{type(exc).__name__}: {exc}".splitlines()[0]})
        elif todo:
            _run_dask(fn, todo, path, cdict, seed, outdir, workers, scheduler, scheduler_file,
                      client, retries, finished, summary)
    finally:
        bar.close()
    summary.wall_s = time.perf_counter() - t0
    if summary.failed:
        first = next(iter(summary.failed.items()))
        raise PhasekitError(f"{len(summary.failed)} of {len(chunks)} chunks failed (first: chunk "
                            f"{first[0]}: {first[1]}); the others are in {outdir}/chunks, rerun "
                            "with --resume")
    if merge:
        summary.result = merge_chunks(outdir, info.n, chunks)
        from .results import read_result

        summary.status_counts = read_result(summary.result).status_counts()
    return summary


def _run_dask(fn, todo, path, cdict, seed, outdir, workers, scheduler, scheduler_file, client,
              retries, finished, summary) -> None:
    import_distributed()
    from contextlib import ExitStack

    from distributed import Client, as_completed

    with ExitStack() as stack:
        if client is None and (scheduler or scheduler_file):
            client = stack.enter_context(connect(scheduler, scheduler_file))
            summary.where = f"the cluster at {client.scheduler.address}"
        elif client is None:
            cluster = stack.enter_context(local_cluster(workers))
            client = stack.enter_context(Client(cluster))
            summary.where = f"a local Dask cluster ({len(cluster.workers)} workers)"
        else:
            summary.where = f"the cluster at {client.scheduler.address}"
        summary.workers = len(client.scheduler_info().get("workers", {}))
        futs = {}
        for cid, s, e in todo:
            f = client.submit(fn, path, s, e, cdict, seed, str(outdir), cid, retries=retries,
                              pure=False, key=f"spi-chunk-{cid}-{os.getpid()}-{time.time_ns()}")
            futs[f] = (cid, s, e)
        for f in as_completed(list(futs)):
            cid, s, e = futs[f]
            try:
                entry = f.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, task errors: journal, go on
                entry = {"chunk": cid, "start": s, "stop": e, "status": "failed",
                         "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            finished(entry)
