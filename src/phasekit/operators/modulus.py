"""The one modulus-projection rule of phasekit, per pixel: a numba helper and its torch twin.

The modulus projection replaces the modulus of a Fourier-space pixel ``z`` by the measured
amplitude ``b`` and keeps the phase (Marchesini, JOSA A 24, 3289 (2007), eq. (4); Pham thesis
eq. (2.14))::

    P~_m z = b z / |z|,   with the phase of 0 taken as 1:  P~_m 0 = b.

Every fused CPU kernel (CDI, saddle-point, Kaczmarz, ptychography) calls :func:`project_pixel`;
the torch reference paths call its twin :func:`project_t` (:func:`project_parts_t` on real and
imaginary parts).  The arithmetic is the same sequence of IEEE operations in both, so that the
helper and its twin agree to the last bit on the CPU.

Two properties the copies this replaces did not all have:

* **exact for tiny and huge moduli**: ``|z|^2`` under- or overflows long before ``|z|`` does (in
  float32 ``|z| ~ 4e-23`` has a subnormal ``|z|^2``, and a fastmath ``b / sqrt(|z|^2)`` returned a
  modulus of 1.069 instead of 1).  Here ``z`` is first rescaled by a power of two (exact) when
  ``max(|Re z|, |Im z|)`` is outside ``[2^-60, 2^60]`` (float32) or ``[2^-500, 2^500]`` (float64),
  so ``|z|^2`` is always a normal number and ``b z / |z|`` is accurate to a few ulp (a subnormal
  ``b`` to the subnormal spacing when ``|z| <~ 2^60``);
* **deterministic bits**: the helper is inlined into its caller (``inline="always"``) and every
  kernel that *stores* a projected pixel is compiled without fastmath (no approximate reciprocal
  square root, no contraction, no reassociation; ``error_model="numpy"`` so the loop still
  vectorises).  An approximate float32 ``rsqrt`` (what fastmath code gets on AMD targets, where
  LLVM does not consider ``sqrtps`` fast) is vendor specific and was chosen differently in
  different loops: SO4D's fused update-and-project pass and the stand-alone projection a resumed
  run starts with could give different bits, and a resumed run diverged from the uninterrupted
  one on some AMD EPYC hosts.

The arithmetic stays in the data's precision (float32 for complex64): the float64 form costs
about 2x on a 256^2 projection on an AMD EPYC (``vsqrtpd``/``vdivpd``).
"""
from __future__ import annotations

import os

import numpy as np
import torch

__all__ = ["project_pixel", "project_fast", "fast_ok", "pixel_terms", "project_parts_t", "project_t",
           "HAVE_NUMBA", "HELPERS_STAMP", "jit_with_helpers"]

#: A hash of this file's text.  numba's on-disk cache (``cache=True``) is keyed on the stamp
#: (mtime, size) of the *kernel's* source file only, so a kernel that inlines the helpers below
#: would keep running stale machine code after this file changed; kernels compiled with
#: :func:`jit_with_helpers` add this hash to their cache stamp.
try:
    import zlib

    with open(__file__, "rb") as _fh:
        HELPERS_STAMP = format(zlib.crc32(_fh.read()), "08x")
    del _fh
except OSError:  # pragma: no cover - e.g. run from a zip archive: no on-disk cache either
    HELPERS_STAMP = "unknown"

#: (lo, hi, scale up, scale down): rescale z when max(|re|, |im|) < lo or > hi (powers of two)
_LIMITS = {np.dtype(np.float32): (2.0 ** -60, 2.0 ** 60, 2.0 ** 90, 2.0 ** -90),
           np.dtype(np.float64): (2.0 ** -500, 2.0 ** 500, 2.0 ** 600, 2.0 ** -600)}
_C32 = tuple(np.float32(v) for v in _LIMITS[np.dtype(np.float32)]) + (np.float32(1), np.float32(0))
_C64 = tuple(np.float64(v) for v in _LIMITS[np.dtype(np.float64)]) + (np.float64(1), np.float64(0))


#: (lo2, hi2): the fast pass is taken where ``lo2 < |z|^2 < hi2`` (rounded).  Then
#: ``lo <= max(|re|, |im|) <= hi``, so the exact rule would not rescale: ``mx < lo`` gives
#: ``fl(re^2) + fl(im^2) <= 2 lo^2 = lo2`` and ``mx > hi`` gives ``fl(mx^2) >= hi^2 = hi2``
#: (rounding is monotone and the bounds are representable normal numbers)
_FAST = {np.dtype(np.float32): (2.0 ** -119, 2.0 ** 120), np.dtype(np.float64): (2.0 ** -999, 2.0 ** 1000)}
_F32 = tuple(np.float32(v) for v in _FAST[np.dtype(np.float32)]) + (np.float32(1),)
_F64 = tuple(np.float64(v) for v in _FAST[np.dtype(np.float64)]) + (np.float64(1),)


def _constants(x):
    """``(lo, hi, up, down, one, zero)`` in the type of ``x`` (typed per dtype in numba)."""
    return _C32 if isinstance(x, np.float32) else _C64


def _fast_constants(x):
    """``(lo2, hi2, one)`` in the type of ``x``."""
    return _F32 if isinstance(x, np.float32) else _F64


def _project_pixel_py(re, im, b):
    lo, hi, up, down, one, zero = _constants(re)
    ar = abs(re)
    ai = abs(im)
    mx = ar if ar > ai else ai
    sc = up if mx < lo else (down if mx > hi else one)  # exact: a power of two
    rs = re * sc
    is_ = im * sc
    a2 = rs * rs + is_ * is_                           # a normal number unless z = 0
    pos = a2 > zero
    f = b / np.sqrt(a2 if pos else one)
    return (rs * f if pos else b), (is_ * f if pos else zero)   # phase of 0 taken as 1


def _fast_ok_py(re, im):
    lo2, hi2, one = _fast_constants(re)
    a2 = re * re + im * im
    return (a2 > lo2) & (a2 < hi2)


def _project_fast_py(re, im, b, m):
    lo2, hi2, one = _fast_constants(re)
    a2 = re * re + im * im
    good = (a2 > lo2) & (a2 < hi2)
    f = b / np.sqrt(a2 if good else one)
    ok = m & good
    return (re * f if ok else re), (im * f if ok else im), ok, m & (not good)


def _pixel_terms_py(re, im, a, ok):
    m2 = re * re + im * im
    pos = m2 > 0
    m = np.sqrt(m2)
    inv = 1.0 / m if pos else 0.0
    b = a if ok else 0.0
    f = b * inv if ok else 1.0
    pr = re * f if pos or not ok else b
    pi = im * f
    return (0.0 if ok else m2), b * m, pr, pi, b, inv


project_pixel = _project_pixel_py
pixel_terms = _pixel_terms_py
project_fast = _project_fast_py
fast_ok = _fast_ok_py

try:  # numba is optional at run time
    if os.environ.get("PHASEKIT_NO_NUMBA"):
        raise ImportError
    import numba
    from numba import types
    from numba.extending import overload

    @overload(_constants, inline="always")
    def _constants_ol(x):  # pragma: no cover - compiled code
        if isinstance(x, types.Float) and x.bitwidth == 32:
            lo, hi, up, down, one, zero = _C32
        else:
            lo, hi, up, down, one, zero = _C64

        def impl(x):
            return lo, hi, up, down, one, zero
        return impl

    @overload(_fast_constants, inline="always")
    def _fast_constants_ol(x):  # pragma: no cover - compiled code
        lo2, hi2, one = _F32 if (isinstance(x, types.Float) and x.bitwidth == 32) else _F64

        def impl(x):
            return lo2, hi2, one
        return impl

    # inlined into the caller (numba IR): compiled with the caller's flags (see above)
    project_pixel = numba.njit(inline="always", cache=True)(_project_pixel_py)
    project_fast = numba.njit(inline="always", cache=True)(_project_fast_py)
    fast_ok = numba.njit(inline="always", cache=True)(_fast_ok_py)
    pixel_terms = numba.njit(inline="always", cache=True)(_pixel_terms_py)
    HAVE_NUMBA = True

    def jit_with_helpers(**flags):
        """``numba.njit(cache=True, **flags)`` for kernels that inline the helpers of this
        module: their on-disk cache is also invalidated when this file changes (see
        :data:`HELPERS_STAMP`).

        numba keys a cache index on ``(mtime, size)`` of the kernel's own file; the index loader
        discards the index when its stored stamp differs from the dispatcher's, so the
        dispatcher's stamp is extended with :data:`HELPERS_STAMP`.  That stamp lives in numba's
        ``_cache._cache_file._source_stamp`` (numba 0.57-0.61 at least); if a numba version does
        not have it, the kernel is compiled without an on-disk cache (correct, only slower to
        start) -- ``tests/test_modulus.py`` checks which case applies.

        Examples
        --------
        In a kernel module (a file: numba caches only functions defined in one)::

            strict = jit_with_helpers(fastmath=False, error_model="numpy")

            @strict
            def first(z, b):
                return project_pixel(z.real, z.imag, b)[0]

        >>> len(HELPERS_STAMP)  # a CRC-32 in hexadecimal
        8
        """
        def deco(fn):
            disp = numba.njit(cache=True, **flags)(fn)
            cf = getattr(getattr(disp, "_cache", None), "_cache_file", None)
            stamp = getattr(cf, "_source_stamp", None)
            if stamp is not None:
                cf._source_stamp = (stamp, HELPERS_STAMP)
            else:  # pragma: no cover - another numba: no on-disk cache rather than a stale one
                disp = numba.njit(cache=False, **flags)(fn)
            return disp
        return deco
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

    def jit_with_helpers(**flags):  # noqa: ARG001 - same signature as with numba
        """Without numba: kernels are not compiled (callers check ``HAVE_NUMBA``)."""
        raise ImportError("numba is not installed")

project_pixel.__doc__ = """Modulus projection of one pixel: ``b z / |z|`` (``(b, 0)`` where ``z = 0``).

Returns ``(re', im')`` in the type of ``re``; ``b`` must have that type too.  The rule of
Marchesini 2007 eq. (4) with "arg(0) = 1" (Pham thesis §2.2).  Numba-jitted; the torch twin is
:func:`project_t`.

Examples
--------
>>> import numpy as np
>>> r, i = project_pixel(np.float32(3e-23), np.float32(4e-23), np.float32(2))
>>> round(float(r), 6), round(float(i), 6)
(1.2, 1.6)
"""

project_fast.__doc__ = """The fast, vectorisable pass of :func:`project_pixel` on a pixel selected by
``m``: ``(re', im', ok, bad)``.

Branch-free: ``a2 = re^2 + im^2``, ``good = lo2 < a2 < hi2`` (``|z|^2`` a normal number with a
margin: false for 0, tiny, subnormal, huge, infinite or NaN ``z``), ``f = b / sqrt(a2 if good
else 1)``; ``ok = m and good``; ``(re', im') = (re f, im f)`` where ``ok``, ``(re, im)``
(unchanged) elsewhere; ``bad = m and not good``.  Where ``ok`` the result has the bits of
:func:`project_pixel`: the exact rule then has ``max(|re|, |im|)`` in ``[lo, hi]``, multiplies by
1 (exact) and does the same operations.  Where ``bad`` the caller applies :func:`project_pixel`
in a second, serial pass over the pixels :func:`fast_ok` rejects (rare: zero or extreme moduli),
run only when the first pass flagged some; that pass must test :func:`fast_ok` on the *input* pixel (or a
flag the first pass stored), not on the projected one: a pixel projected with a zero or tiny
``b`` fails :func:`fast_ok` as well, and re-projecting it changes bits (the sign of a zero).
Numba only.  (Returning ``(re', im')`` already selected, rather
than ``re f``, is what lets LLVM vectorise the caller's loop best: 97 us against 147 us for a
256^2 complex64 projection on an AMD EPYC core.)  Callers flag the pass with
``nbad = max(nbad, np.int32(bad))`` from ``nbad = np.int32(0)``: a 32-bit max, which numba's
``prange`` accepts as a reduction.  The former ``nbad += bad`` summed in int64, and the 64-bit
lanes made LLVM vectorise the whole loop 4 wide instead of 16 (ptychography's ``diff_row`` at
128^2: 16.3 vs 13.8 us, at 480^2: 271 vs 179 us, one Intel Xeon core, the same bits).

Examples
--------
>>> import numpy as np
>>> r, i, ok, bad = project_fast(np.float32(3), np.float32(4), np.float32(10), True)
>>> (float(r), float(i), bool(ok), bool(bad))
(6.0, 8.0, True, False)
>>> [bool(v) for v in project_fast(np.float32(0), np.float32(0), np.float32(1), True)[2:]]
[False, True]
"""

fast_ok.__doc__ = """``good`` of :func:`project_fast` alone (the test of the fix-up pass).

Examples
--------
>>> import numpy as np
>>> bool(fast_ok(np.float32(1), np.float32(0))), bool(fast_ok(np.float32(1e-20), np.float32(0)))
(True, False)
"""

pixel_terms.__doc__ = """Per-pixel terms of one evaluation at ``rho~ = (re, im)`` (float64) with amplitude ``a``,
``ok`` for a measured pixel: ``(|rho~|^2 [unmeasured], b |rho~|, P~_m rho~ (re, im), b,
1/|rho~|)`` with ``b = a`` on measured pixels, 0 elsewhere (``1/|rho~| = 0`` at 0: the Hessian
terms ``w = b/|rho~|``, ``(cos, sin) = rho~/|rho~|`` are formed by the caller); ``P~_m`` is ``b u``
(``u = 1`` where ``rho~ = 0``) on measured pixels and the identity elsewhere.

The one copy of the rule in the saddle-point evaluation passes (inlined; numba's fastmath
loops of :mod:`phasekit.cdi.saddle.kernels` and the generated :mod:`phasekit.cdi._saddle_unrolled`).  It is the unscaled polar form
(``|rho~|^2`` in float64), not a rescaled polar form like :func:`project_pixel`'s: the rescaled
form keeps LLVM from vectorising these fastmath loops and costs +55-75% per pass (256^2, AMD
EPYC), while the evaluations only sum (they store no projection) and ``|rho~|^2`` in float64
under/overflows only for ``|rho~| < 1e-154`` or ``> 1e154`` -- not reachable from complex64
data; for complex128 data such pixels count as ``rho~ = 0`` in the sums.

Examples
--------
>>> [float(v) for v in pixel_terms(3.0, 4.0, 10.0, True)]
[0.0, 50.0, 6.0, 8.0, 10.0, 0.2]
"""


def _limits_t(dtype: torch.dtype):
    if dtype == torch.float32:
        return _LIMITS[np.dtype(np.float32)]
    if dtype == torch.float64:
        return _LIMITS[np.dtype(np.float64)]
    raise TypeError(f"the modulus projection needs float32 or float64 tensors, got {dtype}")


def project_parts_t(re: torch.Tensor, im: torch.Tensor, b: torch.Tensor):
    """Torch twin of :func:`project_pixel` (the same IEEE operations, elementwise on tensors).

    Parameters
    ----------
    re, im : real tensors (float32 or float64, same shape and dtype)
        Real and imaginary parts of ``z``.
    b : real tensor of the same dtype
        Amplitudes.

    Returns
    -------
    (re', im') : tensors
        ``b z / |z|`` (``(b, 0)`` where ``z = 0``).

    Examples
    --------
    >>> import torch
    >>> r, i = project_parts_t(torch.tensor([0.0, 3e-23]), torch.tensor([0.0, 4e-23]), torch.tensor([2.0, 1.0]))
    >>> r.tolist(), [round(v, 6) for v in i.tolist()]
    ([2.0, 0.6000000238418579], [0.0, 0.8])
    """
    lo, hi, up, down = _limits_t(re.dtype)
    one = torch.ones((), dtype=re.dtype, device=re.device)
    mx = torch.maximum(re.abs(), im.abs())
    sc = torch.where(mx < lo, up, torch.where(mx > hi, down, one))
    rs = re * sc
    is_ = im * sc
    a2 = rs * rs + is_ * is_
    pos = a2 > 0
    # torch's vectorised float32 sqrt is not always correctly rounded (the numba helper's is): the
    # root in float64 rounded once to float32 is (53 >= 2 * 24 + 2 bits: no double rounding)
    f = b / torch.sqrt(torch.where(pos, a2, one).to(torch.float64)).to(a2.dtype)
    return torch.where(pos, rs * f, b), torch.where(pos, is_ * f, 0.0)


def project_t(z: torch.Tensor, amp: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`project_pixel` on a complex tensor: ``amp z / |z|`` (``amp`` where
    ``z = 0``), a new complex tensor of the dtype of ``z``.

    Examples
    --------
    >>> import torch
    >>> project_t(torch.tensor([3e-23 + 4e-23j, 0j]), torch.tensor([2.0, 5.0]))
    tensor([1.2000+1.6000j, 5.0000+0.0000j])
    """
    re, im = z.real, z.imag
    r, i = project_parts_t(re, im, amp.to(re.dtype).expand_as(re))
    return torch.complex(r, i)
