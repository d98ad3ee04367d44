"""Direct calls to the MKL FFT inside torch's CPU library, with committed descriptors kept.

Torch's CPU wheels for x86-64 compute their FFTs with Intel MKL (DFTI).  Every
``torch.fft.fftn`` call creates, configures and commits a new DFTI descriptor, allocates its
output and frees the descriptor again.  For the array sizes of iterative phase retrieval this
overhead is a large part of the transform: on one Intel Xeon core a 128^2 complex64 ``fftn``
takes 23.7 µs through torch and 14.9 µs as one ``DftiComputeForward`` on a descriptor committed
once (96.5 / 74.5 µs at 256^2); a 256^2 float32 ``irfftn`` takes 105 µs through torch and 44 µs
here.  The numbers are the same library's: the complex transforms give torch's results to the
bit, the real ones agree to rounding (a different but equally exact factorisation of the inverse
real transform).

This module calls the same MKL functions that torch exports (``DftiCreateDescriptor_*``,
``DftiSetValue``, ``DftiCommitDescriptor``, ``DftiComputeForward/Backward``) through
:mod:`ctypes`, keeps one committed descriptor per (transform, dtype, shape, batch, norm, threads,
placement) in a per-thread cache, and writes into a caller's buffer when one is given (no
allocation, the buffer stays in cache).  It is used by :mod:`phasekit.core.fft` for contiguous
CPU tensors and nothing else; anything it does not cover (a GPU tensor, a strided or conjugated
view, autograd, a torch build without MKL, ``PHASEKIT_MKL_FFT=0`` in the environment) returns
``None`` and the caller uses ``torch.fft``.  The first use runs a self-test against ``torch.fft``
and switches the direct path off, with a warning, if anything disagrees.

Examples
--------
>>> import torch
>>> x = torch.randn(2, 8, 8, dtype=torch.complex64)
>>> y = c2c(x, 2, inverse=False)
>>> y is None or bool(torch.allclose(y, torch.fft.fftn(x, dim=(-2, -1), norm="ortho"), atol=1e-5))
True
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import sys
import threading
from pathlib import Path

import torch

log = logging.getLogger("phasekit")

__all__ = ["available", "c2c", "c2r", "enabled", "prepare_c2c", "r2c", "use_direct"]

#: environment variable: ``0`` / ``false`` / ``no`` / ``off`` switches the direct MKL path off
ENV = "PHASEKIT_MKL_FFT"

# DFTI configuration parameters and values (mkl_dfti.h)
_FORWARD_SCALE, _BACKWARD_SCALE = 4, 5
_NUMBER_OF_TRANSFORMS = 7
_CONJUGATE_EVEN_STORAGE = 10
_PLACEMENT = 11
_INPUT_STRIDES, _OUTPUT_STRIDES = 12, 13
_INPUT_DISTANCE, _OUTPUT_DISTANCE = 14, 15
_THREAD_LIMIT = 27
_COMPLEX, _REAL = 32, 33
_COMPLEX_COMPLEX = 39
_INPLACE, _NOT_INPLACE = 43, 44

_DTYPES = {torch.complex64: "s", torch.complex128: "d", torch.float32: "s", torch.float64: "d"}
_NORMS = ("ortho", "backward", "forward")
#: descriptors kept per thread (least recently used ones are freed beyond this)
CACHE_SIZE = 48

_L = ctypes.c_long  # MKL_LONG in the LP64 interface torch links
_H = ctypes.c_void_p


class _Dfti:
    """The DFTI entry points of torch's CPU library (raises OSError / AttributeError if absent)."""

    def __init__(self):
        lib = ctypes.CDLL(str(_library_path()))
        self.create = {"s": lib.DftiCreateDescriptor_s_md, "d": lib.DftiCreateDescriptor_d_md}
        self.create1 = {"s": lib.DftiCreateDescriptor_s_1d, "d": lib.DftiCreateDescriptor_d_1d}
        for f in (*self.create.values(), *self.create1.values()):
            f.restype = _L
        self.set_value = lib.DftiSetValue
        self.set_value.restype = _L
        self.commit = lib.DftiCommitDescriptor
        self.commit.restype = _L
        self.commit.argtypes = [_H]
        self.free = lib.DftiFreeDescriptor
        self.free.restype = _L
        self.free.argtypes = [ctypes.POINTER(_H)]
        proto = ctypes.CFUNCTYPE(_L, _H, ctypes.c_void_p, ctypes.c_void_p)
        # compute functions are variadic in C; on every supported ABI the fixed-argument
        # prototype below passes the two pointers the same way
        self.forward = proto(ctypes.cast(lib.DftiComputeForward, ctypes.c_void_p).value)
        self.backward = proto(ctypes.cast(lib.DftiComputeBackward, ctypes.c_void_p).value)


def _library_path() -> Path:
    # Linux only: the variadic DFTI calls are made through ctypes with the System V x86-64
    # calling convention, the one tested (Windows' torch also links MKL, untested here)
    if not sys.platform.startswith("linux"):
        raise OSError(f"the direct MKL FFT is used on Linux only, not on {sys.platform}")
    return Path(torch.__file__).resolve().parent / "lib" / "libtorch_cpu.so"


class _Plan:
    """Committed descriptors of one transform, and what a call checks against."""
    __slots__ = ("_free", "batch", "handles", "nbytes_in", "nbytes_out", "out_shape", "scratch", "step")

    def __init__(self, handles, *, nbytes_in=0, nbytes_out=0, batch=1, step=0, out_shape=None):
        self.handles = handles
        self.scratch = None  # c2r: the half spectrum after the inverse over the leading axes
        self.nbytes_in, self.nbytes_out = nbytes_in, nbytes_out
        self.batch, self.step, self.out_shape = batch, step, out_shape
        self._free = _state["lib"].free  # kept: module globals are gone at interpreter exit

    def release(self):
        """Free the descriptors (once): on eviction from the cache, or when the plan is garbage
        collected (a thread's cache dies with the thread)."""
        handles, self.handles = self.handles, ()
        for h in handles:
            self._free(ctypes.byref(h))

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001, S110 (at interpreter exit ctypes may be torn down first)
            pass


_state = {"lib": None, "ok": None, "on": os.environ.get(ENV, "1").strip().lower()
          not in ("0", "false", "no", "off")}
_lock = threading.Lock()
_local = threading.local()
#: largest thread limit of a descriptor made in this process, and whether this process was
#: forked from one that ran MKL on several threads: MKL's OpenMP pool does not survive a fork
#: (the child's first multi-threaded transform never returns), so there the direct path runs
#: on one thread (torch.fft itself takes care of this for its own calls)
_threads = {"max": 1, "one": False}


def _after_fork_in_child():
    global _local
    _threads["one"] = _threads["one"] or _threads["max"] > 1
    _threads["max"] = 1
    _local = threading.local()  # the parent's descriptors are not used in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"MKL DFTI {what} failed (status {status})")


def _set(lib, h, param, value):
    if isinstance(value, float):
        _check(lib.set_value(h, ctypes.c_int(param), ctypes.c_double(value)), f"set {param}")
    elif isinstance(value, (tuple, list)):
        arr = (_L * len(value))(*value)
        _check(lib.set_value(h, ctypes.c_int(param), arr), f"set {param}")
    else:
        _check(lib.set_value(h, ctypes.c_int(param), _L(int(value))), f"set {param}")


def _scales(norm, n):
    if norm == "ortho":
        s = 1.0 / math.sqrt(n)
        return s, s
    if norm == "forward":
        return 1.0 / n, 1.0
    return 1.0, 1.0 / n


def _descriptor(lib, domain, prec, dims, *, scales, inplace=False, strides=None, howmany=1,
                distances=None, cce=False):
    """Create and commit one DFTI descriptor (``strides``: (input, output) element strides of
    the transform axes; ``distances``: (input, output) between the ``howmany`` transforms)."""
    h = _H()
    nd = len(dims)
    if nd == 1:
        _check(lib.create1[prec](ctypes.byref(h), ctypes.c_int(domain), _L(dims[0])), "create")
    else:
        _check(lib.create[prec](ctypes.byref(h), ctypes.c_int(domain), _L(nd), (_L * nd)(*dims)),
               "create")
    try:
        _set(lib, h, _FORWARD_SCALE, float(scales[0]))
        _set(lib, h, _BACKWARD_SCALE, float(scales[1]))
        _set(lib, h, _PLACEMENT, _INPLACE if inplace else _NOT_INPLACE)
        if cce:
            _set(lib, h, _CONJUGATE_EVEN_STORAGE, _COMPLEX_COMPLEX)
        if strides is not None:
            _set(lib, h, _INPUT_STRIDES, [0, *strides[0]])
            _set(lib, h, _OUTPUT_STRIDES, [0, *strides[1]])
        if howmany > 1:
            _set(lib, h, _NUMBER_OF_TRANSFORMS, howmany)
            _set(lib, h, _INPUT_DISTANCE, distances[0])
            _set(lib, h, _OUTPUT_DISTANCE, distances[1])
        _set(lib, h, _THREAD_LIMIT, _thread_limit())
        _check(lib.commit(h), "commit")
    except Exception:
        lib.free(ctypes.byref(h))
        raise
    return h


def _row_major(dims):
    return [math.prod(dims[i + 1:]) for i in range(len(dims))]


def _make(lib, kind, prec, dims, batch, norm, inplace):
    """The descriptors of one transform.  'c2c' and 'r2c': one descriptor over all ``dims``
    (``batch`` transforms).  'c2r': the inverse over the leading axes of every column of the
    half spectrum (complex, strided; applied per batch item) and then the 1-D complex-to-real
    inverse of every row: the pair torch's ``irfftn`` computes, which gives the real part of the
    inverse of the Hermitian completion also where the self-paired columns are not Hermitian
    (MKL's own multi-dimensional complex-to-real transform assumes they are)."""
    n = math.prod(dims)
    if kind == "c2c":
        return [_descriptor(lib, _COMPLEX, prec, dims, scales=_scales(norm, n), inplace=inplace,
                            howmany=batch, distances=(n, n))]
    half = (*dims[:-1], dims[-1] // 2 + 1)
    nh = math.prod(half)
    if kind == "r2c":
        return [_descriptor(lib, _REAL, prec, dims, scales=_scales(norm, n), cce=True,
                            strides=(_row_major(dims), _row_major(half)), howmany=batch,
                            distances=(n, nh))]
    lead, width, n_last = dims[:-1], half[-1], dims[-1]
    out = []
    if lead:
        st = [s * width for s in _row_major(lead)]
        out.append(_descriptor(lib, _COMPLEX, prec, lead, scales=_scales(norm, math.prod(lead)),
                               strides=(st, st), howmany=width, distances=(1, 1)))
    rows = batch * math.prod(lead)
    out.append(_descriptor(lib, _REAL, prec, (n_last,), scales=_scales(norm, n_last), cce=True,
                           strides=([1], [1]), howmany=rows, distances=(width, n_last)))
    return out


def _thread_limit() -> int:
    return 1 if _threads["one"] else max(1, torch.get_num_threads())


def _plan(kind, x, nd, norm, inplace, n_last=0):
    """The cached plan of transform ``kind`` for tensor ``x`` (per thread), made on first use;
    False where the direct path does not apply (kept too, so the check is made once)."""
    threads = _thread_limit()
    key = (kind, x.dtype, x.shape, nd, norm, threads, inplace, n_last)
    c = getattr(_local, "cache", None)
    if c is None:
        c = _local.cache = {}
    p = c.get(key)
    if p is None:
        p = _new_plan(kind, x, nd, norm, inplace, n_last)
        if len(c) >= CACHE_SIZE:  # free the oldest
            old = c.pop(next(iter(c)))
            if old:
                old.release()
        c[key] = p
        _threads["max"] = max(_threads["max"], threads)
    return p


def _new_plan(kind, x, nd, norm, inplace, n_last):
    shape = tuple(x.shape)
    if not (isinstance(nd, int) and 0 < nd <= min(len(shape), 7)) or norm not in _NORMS \
            or x.numel() == 0:
        return False
    prec = _DTYPES[x.dtype]
    batch = math.prod(shape[:-nd])
    esize = x.element_size()
    if kind == "c2r":
        if int(n_last) // 2 + 1 != shape[-1]:
            return False
        dims = (*shape[-nd:-1], int(n_last))
        out_shape = (*shape[:-1], int(n_last))
        out_esize = esize // 2
    elif kind == "r2c":
        dims = shape[-nd:]
        out_shape = (*shape[:-1], shape[-1] // 2 + 1)
        out_esize = esize * 2
    else:
        dims = shape[-nd:]
        out_shape, out_esize = shape, esize
    try:
        handles = _make(_state["lib"], kind, prec, dims, batch, norm, inplace)
    except RuntimeError as exc:  # MKL declined the descriptor (e.g. no memory): torch.fft instead
        log.debug("direct MKL FFT not used for %s %s: %s", kind, shape, exc)
        return False
    return _Plan(handles, nbytes_in=x.numel() * esize,
                 nbytes_out=math.prod(out_shape) * out_esize, batch=batch,
                 step=math.prod(shape[-nd:]) * esize, out_shape=out_shape)


def enabled() -> bool:
    """Whether the direct path is switched on (``PHASEKIT_MKL_FFT``, :func:`use_direct`)."""
    return bool(_state["on"])


@contextlib.contextmanager
def use_direct(flag: bool):
    """Switch the direct MKL path on or off inside a ``with`` block (tests, benchmarks).

    Examples
    --------
    >>> with use_direct(False):
    ...     available()
    False
    """
    old = _state["on"]
    _state["on"] = bool(flag)
    try:
        yield
    finally:
        _state["on"] = old


def available() -> bool:
    """True when the direct path is switched on, torch's MKL FFT is found, and the self-test
    against ``torch.fft`` passed (run once per process)."""
    if not _state["on"]:
        return False
    ok = _state["ok"]
    if ok is None:
        with _lock:
            if _state["ok"] is None:
                _state["ok"] = _load()
            ok = _state["ok"]
    return ok


def _load() -> bool:
    try:
        if not (torch.backends.mkl.is_available()):
            return False
        _state["lib"] = _Dfti()
    except (OSError, AttributeError) as exc:
        log.debug("direct MKL FFT not available: %s", exc)
        return False
    try:
        good = _self_test()
    except Exception as exc:  # noqa: BLE001 (any failure of the self-test: use torch.fft)
        log.warning("phasekit: the direct MKL FFT failed its self-test (%s); using torch.fft", exc)
        return False
    if not good:
        log.warning("phasekit: the direct MKL FFT disagrees with torch.fft; using torch.fft")
    return good


def _self_test() -> bool:
    g = torch.Generator().manual_seed(0)
    for dt in (torch.complex64, torch.complex128):
        tol = 1e-5 if dt == torch.complex64 else 1e-12
        x = torch.randn(3, 6, 10, dtype=dt, generator=g)
        for nd in (1, 2, 3):
            dims = tuple(range(-nd, 0))
            for norm in _NORMS:
                for inv in (False, True):
                    ref = (torch.fft.ifftn if inv else torch.fft.fftn)(x, dim=dims, norm=norm)
                    y = _c2c(x, nd, inv, norm, None)
                    if not torch.allclose(y, ref, rtol=tol, atol=tol * float(ref.abs().max())):
                        return False
        for xr in (x.real.contiguous(), x.real[:, :5, :7].contiguous()):
            for nd in (1, 2, 3):
                dims = tuple(range(-nd, 0))
                ref = torch.fft.rfftn(xr, dim=dims, norm="ortho")
                y = _r2c(xr, nd, "ortho", None)
                if not torch.allclose(y, ref, rtol=tol, atol=tol * float(ref.abs().max())):
                    return False
                z = ref.clone()
                back = _c2r(z, xr.shape[-1], nd, "ortho", None)
                if not (torch.allclose(back, xr, rtol=tol, atol=tol * float(xr.abs().max()))
                        and torch.equal(z, ref)):  # the input half spectrum is left unchanged
                    return False
                # a half spectrum that is not Hermitian on its self-paired columns: torch's
                # convention (the real part of the inverse of the Hermitian completion)
                z = torch.randn(ref.shape, dtype=ref.dtype, generator=g)
                want = torch.fft.irfftn(z, s=xr.shape[-nd:], dim=dims, norm="ortho")
                got = _c2r(z, xr.shape[-1], nd, "ortho", None)
                if not torch.allclose(got, want, rtol=tol, atol=tol * float(want.abs().max())):
                    return False
    return True


_CPLX = (torch.complex64, torch.complex128)
_REALT = (torch.float32, torch.float64)
_STRIDED = torch.strided
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}
_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _ready() -> bool:
    ok = _state["ok"]
    return _state["on"] and (ok or (ok is None and available()))


def _plain(x, dtypes) -> bool:
    """A contiguous CPU tensor of one of ``dtypes`` whose memory holds its values (no lazy
    conjugate or negative bit) and that autograd does not track."""
    return (x.is_cpu and x.layout is _STRIDED and x.dtype in dtypes and x.is_contiguous()
            and not x.requires_grad and not x.is_conj() and not x.is_neg())


def _output(out, p, dtype, src):
    """``out`` if it can receive the result (and does not partly overlap ``src``), else None."""
    if not (_plain(out, (dtype,)) and tuple(out.shape) == p.out_shape):
        return None
    a, b = src.data_ptr(), out.data_ptr()
    if a < b + p.nbytes_out and b < a + p.nbytes_in:
        return None
    return out


def _c2c(x, nd, inverse, norm, out):
    inplace = out is not None and out.data_ptr() == x.data_ptr()
    p = _plan("c2c", x, nd, norm, inplace)
    if not p:
        return None
    if inplace:
        if not (_plain(out, (x.dtype,)) and out.shape == x.shape):
            return None
        y = out
    elif out is None:
        y = torch.empty_like(x)
    else:
        y = _output(out, p, x.dtype, x)
        if y is None:
            return None
    lib = _state["lib"]
    st = (lib.backward if inverse else lib.forward)(p.handles[0], x.data_ptr(),
                                                    None if inplace else y.data_ptr())
    if st:
        _check(st, "compute")
    return y


def _r2c(x, nd, norm, out):
    p = _plan("r2c", x, nd, norm, False)
    if not p:
        return None
    cd = _COMPLEX_OF[x.dtype]
    y = torch.empty(p.out_shape, dtype=cd) if out is None else _output(out, p, cd, x)
    if y is None:
        return None
    _check(_state["lib"].forward(p.handles[0], x.data_ptr(), y.data_ptr()), "compute")
    return y


def _c2r(z, n_last, nd, norm, out):
    p = _plan("c2r", z, nd, norm, False, int(n_last))
    if not p:
        return None
    rd = _REAL_OF[z.dtype]
    y = torch.empty(p.out_shape, dtype=rd) if out is None else _output(out, p, rd, z)
    if y is None:
        return None
    back = _state["lib"].backward
    src = z
    if nd > 1:  # the leading axes into the plan's scratch (z is left unchanged)
        if p.scratch is None:
            p.scratch = torch.empty(z.shape, dtype=z.dtype)
        src = p.scratch
        a, b, step = z.data_ptr(), src.data_ptr(), p.step
        for i in range(p.batch):
            _check(back(p.handles[0], a + i * step, b + i * step), "compute")
    _check(back(p.handles[-1], src.data_ptr(), y.data_ptr()), "compute")
    return y


def c2c(x: torch.Tensor, ndim: int, *, inverse: bool, norm: str = "ortho",
        out: torch.Tensor | None = None) -> torch.Tensor | None:
    """Complex FFT over the last ``ndim`` axes of a contiguous CPU tensor (the leading axes a
    batch), as ``torch.fft.fftn`` / ``ifftn`` with ``norm``; ``out`` (same shape and dtype,
    contiguous; may be ``x`` itself for an in-place transform) receives the result.  Returns
    None where the direct path does not apply (the caller then uses ``torch.fft``).

    Examples
    --------
    >>> x = torch.ones(4, 4, dtype=torch.complex64)
    >>> y = c2c(x, 2, inverse=False)
    >>> y is None or float(y[0, 0].real) == 4.0
    True
    """
    if not (_ready() and _plain(x, _CPLX)):
        return None
    return _c2c(x, ndim, inverse, norm, out)


def r2c(x: torch.Tensor, ndim: int, *, norm: str = "ortho",
        out: torch.Tensor | None = None) -> torch.Tensor | None:
    """Real-to-complex FFT (the half spectrum, as ``torch.fft.rfftn``) over the last ``ndim``
    axes of a contiguous real CPU tensor; None where the direct path does not apply.

    Examples
    --------
    >>> y = r2c(torch.ones(4, 6), 2)
    >>> y is None or tuple(y.shape) == (4, 4)
    True
    """
    if not (_ready() and _plain(x, _REALT)):
        return None
    return _r2c(x, ndim, norm, out)


def c2r(z: torch.Tensor, n_last: int, ndim: int, *, norm: str = "ortho",
        out: torch.Tensor | None = None) -> torch.Tensor | None:
    """Complex-to-real inverse FFT (as ``torch.fft.irfftn`` with the last axis ``n_last`` long)
    of a contiguous half spectrum on the CPU; ``z`` is left unchanged.  None where the direct
    path does not apply.

    Examples
    --------
    >>> x = torch.rand(4, 6)
    >>> y = c2r(torch.fft.rfftn(x, norm="ortho"), 6, 2)
    >>> y is None or bool(torch.allclose(y, x, atol=1e-6))
    True
    """
    if not (_ready() and _plain(z, _CPLX)):
        return None
    return _c2r(z, n_last, ndim, norm, out)


def prepare_c2c(x: torch.Tensor, ndim: int, *, inverse: bool, out: torch.Tensor,
                norm: str = "ortho"):
    """A complex transform between two fixed buffers, ready to run again and again: returns
    ``run()``, which transforms the current contents of ``x`` into ``out`` (``out`` may be ``x``:
    in place) and returns ``out``, with no check and no look-up per call (one MKL call, ~0.5 µs
    of Python); None where the direct path does not apply.  The transform owns its descriptor
    (not in the shared cache, freed with ``run``) and keeps ``x`` and ``out`` alive.

    Examples
    --------
    >>> x = torch.ones(4, 4, dtype=torch.complex64)
    >>> run = prepare_c2c(x, 2, inverse=False, out=x.clone())
    >>> run is None or float(run()[0, 0].real) == 4.0
    True
    """
    if not (_ready() and _plain(x, _CPLX)):
        return None
    inplace = out.data_ptr() == x.data_ptr()
    if inplace and not (_plain(out, (x.dtype,)) and out.shape == x.shape):
        return None
    p = _new_plan("c2c", x, ndim, norm, inplace, 0)
    if not p or (not inplace and _output(out, p, x.dtype, x) is None):
        return None
    lib = _state["lib"]
    fn = lib.backward if inverse else lib.forward
    h, a, b = p.handles[0], x.data_ptr(), None if inplace else out.data_ptr()

    def run(_keep=(p, x, out)):
        st = fn(h, a, b)
        if st:
            _check(st, "compute")
        return out

    return run
