"""CPU thread counts: set them, pin them, and let a run pick one thread when more only cost.

torch and phasekit's numba kernels share one OpenMP runtime, which phasekit starts with passive
waiting (``OMP_WAIT_POLICY=PASSIVE``, docs/conventions.md "Threads", since with a short spin,
``GOMP_SPINCOUNT=10000``): an idle thread sleeps and is woken for a parallel operation.  On the
2-core Intel Xeon hosts here a wake-up cost 60-120 us per torch operation (purely passive): with two threads a 64^2 FFT took 75 us instead of 8 us, and a
HIO iteration took 0.20 / 0.27 / 0.73 / 2.07 / 7.4 ms at 64^2 / 128^2 / 256^2 / 512^2 / 1024^2
against 0.032 / 0.073 / 0.33 / 2.06 / 15.5 ms with one thread.  Two threads pay from about
2^18 elements per operation (512^2: 1.1x for HIO, 1.3-1.5x for GPS-R; 1024^2: 2.1x); below,
one thread is 1.2-6x faster.  Ptychography's per-position operations on 128^2 / 256^2 frames
ran 2.2x / 1.8x faster on one thread (equal at 480^2).  Two processes with two threads each on
the two cores (oversubscription) made a 64^2 HIO iteration 360x slower (12 ms), one thread each
none.

So the driver runs a problem whose parallel operations are smaller than
:data:`PARALLEL_MIN_ELEMENTS` on one thread (:func:`auto_cpu_threads`), unless the caller chose
a count (:func:`set_cpu_threads`, :func:`cpu_threads`, ``phasekit reconstruct --threads N``):
a chosen count is *pinned* and kept.  The numba kernels switch to their parallel builds at the
same size (``phasekit.cdi.kernels``).
"""
from __future__ import annotations

import contextlib

import torch

from .errors import InputError

#: elements per parallel operation (pixels of a pattern or of a batch of them, of a
#: ptychography frame times its modes, voxels) from which more than one CPU thread pays
PARALLEL_MIN_ELEMENTS = 1 << 18

_state = {"pinned": False, "outer": []}


def threads_pinned() -> bool:
    """Whether a caller chose the thread count (:func:`set_cpu_threads`, :func:`cpu_threads`)."""
    return _state["pinned"]


def set_cpu_threads(n: int, numba_n: int | None = None, *, pin: bool = True) -> tuple[int, int | None]:
    """Set torch's CPU thread count to ``n`` and numba's to ``numba_n`` (default ``n``, capped at
    numba's pool size); return the counts in effect ``(torch, numba)`` (``numba`` None without
    numba).  numba's is set first: starting its OpenMP pool resets torch's count, as both use
    the same runtime.  ``pin`` (default) marks the count as chosen: runs keep it instead of
    picking one thread for small problems (:func:`auto_cpu_threads`).

    Examples
    --------
    >>> old = torch.get_num_threads()
    >>> set_cpu_threads(1)[0]
    1
    >>> _ = set_cpu_threads(old)
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is optional at run time
        numba = None
    got_numba = None
    if numba is not None:
        numba.set_num_threads(min(int(n if numba_n is None else numba_n), numba.config.NUMBA_NUM_THREADS))
        got_numba = numba.get_num_threads()
    torch.set_num_threads(int(n))
    if pin:
        _state["pinned"] = True
    return torch.get_num_threads(), got_numba


def _numba_threads() -> int | None:
    try:
        import numba
    except ImportError:  # pragma: no cover
        return None
    return numba.get_num_threads()


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run a block with ``n`` CPU threads for torch and for phasekit's numba kernels, pinned (runs
    inside keep it), then restore the previous counts and pinning (``None``: change nothing).

    Examples
    --------
    >>> with cpu_threads(1):
    ...     torch.get_num_threads()
    1
    """
    if n is None:
        yield
        return
    n = int(n)
    if n < 1:
        raise InputError(f"threads must be >= 1, got {n}")
    old_torch = torch.get_num_threads()  # (before numba's pool starts and resets it)
    old_pinned = _state["pinned"]
    _, old_numba = set_cpu_threads(n)
    try:
        yield
    finally:
        set_cpu_threads(old_torch, old_numba, pin=False)
        _state["pinned"] = old_pinned


@contextlib.contextmanager
def auto_cpu_threads(elements: int | None, device=None):
    """Run a block on one CPU thread when its parallel operations hold fewer than
    :data:`PARALLEL_MIN_ELEMENTS` elements and nobody pinned the count; yield the torch thread
    count in effect.  The shared driver wraps every run in it (the count is recorded in
    ``result.provenance["threads"]``).  Never raises the count; CUDA problems are left alone.

    Examples
    --------
    >>> with auto_cpu_threads(64 * 64) as n:
    ...     n == 1 or threads_pinned()
    True
    """
    cur = torch.get_num_threads()
    on_cuda = device is not None and torch.device(device).type == "cuda"
    if (_state["pinned"] or on_cuda or cur == 1 or elements is None
            or elements >= PARALLEL_MIN_ELEMENTS):
        yield cur
        return
    old_numba = _numba_threads()
    set_cpu_threads(1, pin=False)
    _state["outer"].append((cur, old_numba))
    try:
        yield 1
    finally:
        _state["outer"].pop()
        set_cpu_threads(cur, old_numba, pin=False)


@contextlib.contextmanager
def outer_cpu_threads():
    """Inside :func:`auto_cpu_threads`, run a block with the thread count it lowered (a step on
    larger arrays than the problem's parallel operations, e.g. PINE's denoiser on the whole
    object); elsewhere a no-op.

    Examples
    --------
    >>> with outer_cpu_threads():
    ...     pass
    """
    if not _state["outer"]:
        yield
        return
    n, numba_n = _state["outer"][-1]
    set_cpu_threads(n, numba_n, pin=False)
    try:
        yield
    finally:
        set_cpu_threads(1, pin=False)
