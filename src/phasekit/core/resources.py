"""Memory guards: estimate what a computation needs and refuse it before anything is allocated.

A request such as ``phasekit simulate cdi --size 100000`` or a tilt range of a million angles
does not fail on its own: it allocates until the kernel kills the process, minutes later and
with no message.  The functions here turn that into an immediate one-line error:

* :func:`available_memory` -- the memory this process may still use (``MemAvailable`` of
  ``/proc/meminfo``, psutil where installed, capped by a cgroup limit);
* ``estimate_*`` -- the peak memory (bytes) of each expensive computation, from its sizes only.
  The per-element factors were measured (peak resident set size on CPU, float32/complex64) and
  rounded up; they are estimates to within a factor of about 1.5, meant to catch requests that
  are many times too large, not to budget memory precisely;
* :func:`check_memory` -- raises :class:`~phasekit.core.errors.InputError` when an estimate
  exceeds the available memory (``force=True`` downgrades it to a warning).

Examples
--------
>>> from phasekit.core.resources import check_memory, estimate_cdi_simulation
>>> check_memory(estimate_cdi_simulation(256), "simulating a 256x256 pattern")
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os

from .errors import InputError

__all__ = [
    "FALLBACK_MEMORY",
    "MAX_TILTS",
    "available_memory",
    "check_memory",
    "estimate_cdi_reconstruction",
    "estimate_cdi_simulation",
    "estimate_kmeans",
    "estimate_ptycho",
    "format_bytes",
    "memory_override",
    "raster_scan_extent",
]

log = logging.getLogger("phasekit")

#: memory assumed available where it cannot be measured (no /proc/meminfo, no psutil)
FALLBACK_MEMORY = 4 * 2**30
#: more projections than this is refused outright (before any array of angles is built)
MAX_TILTS = 100_000

_NO_LIMIT = 2**60

#: (force, override text) of the enclosing :func:`memory_override` block
_OVERRIDE: contextvars.ContextVar = contextvars.ContextVar("phasekit_memory_override",
                                                           default=(False, None))
_LIBRARY_OVERRIDE = "'with phasekit.core.resources.memory_override(True):'"


@contextlib.contextmanager
def memory_override(force: bool = True, hint: str | None = None):
    """Within the block, :func:`check_memory` warns instead of raising (when ``force``) and names
    ``hint`` as the override (the command line passes ``"--force"``).

    Examples
    --------
    >>> with memory_override(True):
    ...     check_memory(1e18, "a huge array")   # a warning only
    """
    token = _OVERRIDE.set((bool(force), hint))
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_available() -> int | None:
    """Room left under the cgroup memory limit (v2 ``memory.max``, or v1), None if unlimited."""
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit = _read_int(limit_f)
        if limit is None or limit >= _NO_LIMIT:
            continue
        usage = _read_int(usage_f) or 0
        return max(limit - usage, 0)
    return None


def available_memory() -> int:
    """Bytes of memory this process can still allocate without swapping or being killed.

    The smallest of: ``MemAvailable`` from ``/proc/meminfo`` (Linux) or psutil's
    ``virtual_memory().available`` (where psutil is installed), and the room left under a cgroup
    limit (``/sys/fs/cgroup/memory.max`` minus ``memory.current``; cgroup v1 likewise).  Where
    none can be read, :data:`FALLBACK_MEMORY` (4 GiB).

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> available_memory() > 0
    True
    """
    values = []
    v = _meminfo_available()
    if v is None:
        try:
            import psutil  # optional

            v = int(psutil.virtual_memory().available)
        except Exception:
            v = None
    if v is None:
        try:
            v = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            v = None
    if v is not None and v > 0:
        values.append(v)
    c = _cgroup_available()
    if c is not None:
        values.append(c)
    return min(values) if values else FALLBACK_MEMORY


def format_bytes(n: float) -> str:
    """``23.6 GB``-style text (decimal units).

    Examples
    --------
    >>> format_bytes(23.6e9)
    '23.6 GB'
    """
    n = float(n)
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def check_memory(estimate_bytes: float, what: str, force: bool | None = None,
                 override: str | None = None) -> None:
    """Refuse a computation whose estimated peak memory exceeds the available memory.

    Parameters
    ----------
    estimate_bytes : float
        Estimated peak memory of the computation (one of the ``estimate_*`` functions).
    what : str
        What is being computed, e.g. ``"simulate cdi --size 30000"``; starts the message.
    force : bool, optional
        Only log a warning instead of raising.  Default: that of the enclosing
        :func:`memory_override` block, else False.
    override : str, optional
        How the caller overrides the check, named in the message.  Default: that of the
        enclosing :func:`memory_override` block (``--force`` on the command line), else the
        ``memory_override`` block itself.

    Raises
    ------
    InputError
        ``<what> needs about 23.6 GB, more than the 21.9 GB available (use --force to try
        anyway)``.

    Examples
    --------
    >>> check_memory(1e15, "a huge array")                     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    phasekit.core.errors.InputError: a huge array needs about 1e+03 TB, more than the ...
    """
    ctx_force, ctx_hint = _OVERRIDE.get()
    force = ctx_force if force is None else bool(force)
    override = override or ctx_hint or _LIBRARY_OVERRIDE
    est = float(estimate_bytes)
    if not math.isfinite(est):
        est = float("inf")
    avail = available_memory()
    if est <= avail:
        return
    need = "an unbounded amount of memory" if math.isinf(est) else f"about {format_bytes(est)}"
    msg = f"{what} needs {need}, more than the {format_bytes(avail)} available"
    if force:
        log.warning("%s; going on as asked (%s)", msg, override)
        return
    raise InputError(f"{msg} (use {override} to try anyway)")


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _cbytes(precision: str) -> int:
    return 2 if str(precision).lower() == "double" else 1


# --------------------------------------------------------------------------- CDI
def estimate_cdi_simulation(size: int, oversampling: float = 4.0) -> int:
    """Peak bytes of :func:`phasekit.sim.simulate_cdi` for a ``size x size`` pattern.

    The simulation works in float64/complex128: the embedded object, its centred FFT with the
    shift copies, the expected and noisy patterns, masks and support -- about 96 bytes per
    pixel measured (81-87 at 1024-2048 px).  ``oversampling`` only sets the (smaller) object.

    Examples
    --------
    >>> estimate_cdi_simulation(1000) / 1e6
    96.0
    """
    del oversampling  # the object (size / oversampling)^2 is small beside the pattern
    return 96 * int(size) ** 2


def estimate_cdi_reconstruction(shape, starts: int = 1, precision: str = "single") -> int:
    """Peak bytes of a CDI reconstruction of a pattern of ``shape`` with ``starts`` starts.

    A handful of complex arrays per iterate (the iterate, its transform, the projections,
    the algorithm's memory) plus the input, mask and support: about 150 bytes per pixel at
    single precision (measured 143), plus about 24 per pixel for each start kept for the result
    (measured 17); twice that at double precision.

    Examples
    --------
    >>> estimate_cdi_reconstruction((512, 512), starts=4) / 1e6
    64.487424
    """
    n = _prod(shape)
    return (150 + 24 * max(int(starts), 1)) * n * _cbytes(precision)


# --------------------------------------------------------------------------- ptychography
def raster_scan_extent(points: int, step: float) -> float:
    """Side (pixels) spanned by the top-left corners of a ``points x points`` raster."""
    return max(int(points) - 1, 0) * float(step)


def estimate_ptycho(n_positions: int, frame, object_shape, precision: str = "single") -> int:
    """Peak bytes of a ptychography simulation or reconstruction.

    Per frame pixel: the intensities (float32 and float64 while simulating), exit waves and
    their transforms (complex128 while simulating, complex64 batches while reconstructing):
    about 64 bytes per frame pixel; per object pixel about 64 bytes (object, its update
    buffers, the illumination and the phantom's filtering).

    Parameters
    ----------
    n_positions : int
        Scan positions.
    frame : int or (int, int)
        Detector frame shape.
    object_shape : (int, int)
        Object array shape.
    precision : {"single", "double"}

    Examples
    --------
    >>> estimate_ptycho(49, 64, (200, 200)) / 1e6
    15.405056
    """
    fr = (int(frame), int(frame)) if isinstance(frame, (int, float)) else tuple(frame)
    return (64 * int(n_positions) * _prod(fr) + 64 * _prod(object_shape)) * _cbytes(precision)


# --------------------------------------------------------------------------- k-means
def estimate_kmeans(n_samples: int, n_features: int, n_clusters: int,
                    precision: str = "single") -> int:
    """Peak bytes of k-means on an ``N x d`` array with ``K`` clusters.

    The data (a float64 copy and the working tensor), the ``N x K`` distances of a full pass and
    the ``K x d`` centres with their sums.

    Examples
    --------
    >>> estimate_kmeans(10**6, 10, 10) / 1e6
    280.0032
    """
    e = 4 * _cbytes(precision)
    n, d, k = int(n_samples), int(n_features), int(n_clusters)
    return 8 * n * d + 2 * e * n * d + 3 * e * n * k + 4 * 8 * k * d
