"""The output files of a command: named so that none overwrites another, checked writable before
any computing, and locked against a second run writing the same files.

:func:`plan_outputs` is called by every command that writes (``reconstruct``, ``simulate``,
``kmeans``, ``demo``) *before* it reads or computes anything:

* the result must end in one of the accepted suffixes (HDF5 results: ``.cxi``, ``.h5``,
  ``.hdf5``, ``.nxs``); a figure suffix (``.png``...) is refused, since the figure is always
  ``<result stem>.png`` beside the result; the result, the figure, the checkpoint, the extra
  outputs and the input must all be different files;
* every output folder must exist and be writable (a temporary file is created and removed);
* an exclusive lock file ``<output>.lock`` (created with ``O_CREAT | O_EXCL``, holding pid,
  host and start time) is taken for the result, the checkpoint and the extra outputs and held
  until the command ends (:meth:`OutputPlan.release`, from a ``with`` block).  A second run
  gets ``<out> is being written by another phasekit run (pid N, started ...)``; a lock left
  by a process that no longer runs on this host (killed) is taken over with a warning.

Examples
--------
>>> with plan_outputs("run.cxi", input_path="data.cxi", figure=True) as plan:  # doctest: +SKIP
...     plan.figure
PosixPath('run.png')
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from ..io.atomic import pid_alive

__all__ = [
    "FIGURE_SUFFIXES",
    "HDF5_SUFFIXES",
    "OutputPlan",
    "acquire_lock",
    "check_suffix",
    "plan_outputs",
    "release_lock",
    "time_line",
    "write_figure",
]

log = logging.getLogger("phasekit")

#: suffixes of the HDF5 files phasekit writes (CXI is HDF5)
HDF5_SUFFIXES = (".cxi", ".h5", ".hdf5", ".nxs")
#: suffixes of figures (never allowed as a result name: the figure goes beside the result)
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps", ".ps",
                   ".gif", ".bmp", ".webp")
#: a lock file without a readable owner is taken over once it is this old (seconds)
UNREADABLE_LOCK_AGE_S = 60.0


def _list(suffixes) -> str:
    s = list(suffixes)
    return ", ".join(s[:-1]) + " or " + s[-1] if len(s) > 1 else s[0]


def check_suffix(path, suffixes, option: str = "--out", kind: str = "output") -> Path:
    """Refuse ``path`` unless it ends in one of ``suffixes`` (case-insensitive).

    Examples
    --------
    >>> check_suffix("x.txt", HDF5_SUFFIXES)                 # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    phasekit.core.errors.InputError: --out x.txt: ... must end in .cxi, .h5, .hdf5 or .nxs
    """
    p = Path(os.fspath(path))
    suf = p.suffix.lower()
    if suf in FIGURE_SUFFIXES and suf not in suffixes:
        raise InputError(f"{option} {p}: a {kind} cannot be a figure file ({suf}); the figure is "
                         f"written beside the result as <result stem>.png; name the {kind} "
                         f"{p.with_suffix(suffixes[0]).name} (or any name ending in "
                         f"{_list(suffixes)})")
    if suf not in suffixes:
        raise InputError(f"{option} {p}: unsupported suffix {suf or '(none)'!r}; the {kind} "
                         f"must end in {_list(suffixes)}")
    return p


def _same(a: Path, b: Path) -> bool:
    """True when two paths name the same file (existing or not)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _check_folder(path: Path, option: str) -> None:
    """The folder of ``path`` must exist and be writable: create and remove a temporary file."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give a file name")
    if not folder.exists():
        raise InputError(f"{option} {path}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise InputError(f"{option} {path}: {folder} is not a folder")
    probe = folder / f".phasekit-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write in the folder {folder} "
                         f"({exc.strerror or type(exc).__name__})") from None


# --------------------------------------------------------------------------- locks
def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _read_lock(lock: Path) -> dict | None:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _started(info: dict) -> str:
    t = info.get("start")
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))
    except (TypeError, ValueError, OverflowError):
        return "at an unknown time"


def acquire_lock(path, option: str = "--out") -> Path:
    """Take the lock ``<path>.lock`` for writing ``path``; return the lock file.

    Raises
    ------
    InputError
        ``<path> is being written by another phasekit run (pid N, started ...); wait or choose
        another --out`` when a live process holds the lock.

    Examples
    --------
    >>> lock = acquire_lock("run.cxi")                          # doctest: +SKIP
    >>> release_lock(lock)                                      # doctest: +SKIP
    """
    path = Path(os.fspath(path))
    lock = _lock_path(path)
    host = socket.gethostname()
    payload = json.dumps({"pid": os.getpid(), "host": host, "start": time.time(),
                          "file": str(path)})
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read_lock(lock)
            if info is None:
                try:
                    age = time.time() - lock.stat().st_mtime
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                if age < UNREADABLE_LOCK_AGE_S:
                    raise InputError(f"{path} is being written by another phasekit run (lock "
                                     f"{lock}); wait or choose another {option}") from None
                log.warning("taking over the unreadable lock %s (%.0f s old)", lock, age)
            elif info.get("host") == host and not pid_alive(info["pid"]):
                log.warning("taking over the stale lock %s of pid %d (started %s), which no "
                            "longer runs", lock, info["pid"], _started(info))
            else:
                where = "" if info.get("host") == host else f" on {info.get('host')}"
                raise InputError(f"{path} is being written by another phasekit run (pid "
                                 f"{info['pid']}{where}, started {_started(info)}); wait or "
                                 f"choose another {option}") from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        except OSError as exc:
            raise InputError(f"{option} {path}: cannot create the lock file {lock} "
                             f"({exc.strerror or type(exc).__name__})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        return lock
    raise InputError(f"{path}: could not take the lock {lock} (another run keeps taking it); "
                     f"wait or choose another {option}")


def release_lock(lock) -> None:
    """Remove a lock taken by this process (a lock now owned by another process is left)."""
    lock = Path(os.fspath(lock))
    info = _read_lock(lock)
    if info is not None and info.get("pid") != os.getpid():
        return
    with contextlib.suppress(OSError):
        lock.unlink()


# --------------------------------------------------------------------------- the plan
@dataclass
class OutputPlan:
    """The files a command writes, checked and locked by :func:`plan_outputs`.

    Attributes
    ----------
    result : pathlib.Path
    figure : pathlib.Path or None
        ``<result stem>.png`` beside the result, when a figure is wanted.
    checkpoint : pathlib.Path or None
    extras : tuple of pathlib.Path
        Other outputs (k-means labels and centres).
    locks : list of pathlib.Path
        Lock files held until :meth:`release`.
    """

    result: Path
    figure: Path | None = None
    checkpoint: Path | None = None
    extras: tuple = ()
    locks: list = field(default_factory=list)

    def release(self) -> None:
        """Remove the lock files (idempotent)."""
        while self.locks:
            release_lock(self.locks.pop())

    def __enter__(self) -> OutputPlan:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def plan_outputs(out, *, input_path=None, figure: bool = False, checkpoint=None, extras=(),
                 suffixes=HDF5_SUFFIXES, option: str = "--out", lock: bool = True) -> OutputPlan:
    """Check the outputs of a command and lock them; call it before reading or computing.

    Parameters
    ----------
    out : str or os.PathLike
        The result file.
    input_path : str or os.PathLike, optional
        The input file (which no output may be).
    figure : bool
        Whether a figure ``<result stem>.png`` is written beside the result.
    checkpoint : str or os.PathLike, optional
        A checkpoint file written during the run.
    extras : sequence of (path, option) pairs
        Further outputs, each with the option that names it (k-means ``--labels``).
    suffixes : tuple of str
        Accepted suffixes of the result.
    option : str
        The option naming the result, for the messages.
    lock : bool
        Take the lock files (result, checkpoint, extras).

    Returns
    -------
    OutputPlan
        Use it in a ``with`` block so that the locks are released however the command ends.

    Raises
    ------
    InputError
        A bad suffix, two outputs (or an output and the input) naming the same file, a missing
        or unwritable folder, or an output locked by another run.
    """
    result = check_suffix(out, tuple(suffixes), option, "result")
    named = [(result, option)]
    fig = result.with_suffix(".png") if figure else None
    if fig is not None:
        named.append((fig, "the figure"))
    ck = Path(os.fspath(checkpoint)) if checkpoint else None
    if ck is not None:
        named.append((ck, "--checkpoint"))
    ex = []
    for p, opt in extras:
        if p is not None:
            ex.append(Path(os.fspath(p)))
            named.append((ex[-1], opt))
    for i, (a, oa) in enumerate(named):
        if input_path is not None and _same(a, Path(os.fspath(input_path))):
            raise InputError(f"{oa} {a} is the input file; choose another name")
        for b, ob in named[:i]:
            if _same(a, b):
                raise InputError(f"{oa} {a} and {ob} {b} are the same file; choose another name")
    for p, opt in named:
        if opt != "the figure":
            _check_folder(p, opt)
    plan = OutputPlan(result=result, figure=fig, checkpoint=ck, extras=tuple(ex))
    if lock:
        try:
            for p, opt in named:
                if opt != "the figure":
                    plan.locks.append(acquire_lock(p, opt))
        except BaseException:
            plan.release()
            raise
    return plan


def write_figure(path, plot, *args, **kwargs) -> bool:
    """Call ``plot(*args, **kwargs)`` to write the figure ``path``; a failure is a warning.

    The result is written before the figure, and a figure that cannot be drawn or written
    (a plotting bug, a full disk) must not turn a finished run into an error: the failure is
    logged as a warning and False returned (with ``--debug`` it is raised, for the traceback).

    Examples
    --------
    >>> write_figure("x.png", lambda: 1 / 0)                  # doctest: +SKIP
    False
    """
    try:
        plot(*args, **kwargs)
        return True
    except Exception as exc:
        from .main import _STATE, _wants_debug

        if _wants_debug(_STATE.get("argv", [])):
            raise
        log.warning("could not write the figure %s: %s (the result is saved)", path,
                    " ".join(str(exc).split()) or type(exc).__name__)
        return False


def threads_note(result, sep: str = ", ") -> str:
    """``", 1 CPU thread"`` for a summary line: the CPU threads a run used (from its provenance;
    empty on CUDA or when unknown).  Small problems run on one thread (phasekit.core.threads).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> threads_note(SimpleNamespace(provenance={"device": "cpu", "threads": 2}))
    ', 2 CPU threads'
    """
    prov = getattr(result, "provenance", None) or {}
    n = prov.get("threads")
    if n is None or not str(prov.get("device", "cpu")).startswith("cpu"):
        return ""
    return f"{sep}{int(n)} CPU thread{'s' if int(n) != 1 else ''}"


def time_line(wall: float, result, n_done: int, unit: str = "iterations") -> str:
    """The summary's ``time:`` line: wall time and time per iteration, counting only the
    iterations this call ran (a resumed run took the others from its checkpoint).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> r = SimpleNamespace(provenance={"device": "cpu", "threads": 1},
    ...                     timings={"per_iteration_s": 0.002, "iterations_run": 50})
    >>> time_line(0.25, r, 200)
    'time:    0.25 s, 2 ms/iteration (50 of 200 iterations run here, the rest from the checkpoint, 1 CPU thread)'
    >>> r.timings = {"per_iteration_s": float("nan"), "iterations_run": 0}
    >>> time_line(0.01, r, 200)
    'time:    0.01 s, nothing left to run (200 iterations, all from the checkpoint)'
    """
    t = getattr(result, "timings", None) or {}
    per_it = t.get("per_iteration_s", float("nan"))
    n_run = t.get("iterations_run", n_done)
    one = unit[:-1] if unit.endswith("s") else unit
    if n_run == 0 and n_done > 0:
        return f"time:    {wall:.2f} s, nothing left to run ({n_done} {unit}, all from the checkpoint)"
    count = f"{n_done} {unit}" if n_run >= n_done else \
        f"{n_run} of {n_done} {unit} run here, the rest from the checkpoint"
    return f"time:    {wall:.2f} s, {per_it * 1e3:.3g} ms/{one} ({count}{threads_note(result)})"

