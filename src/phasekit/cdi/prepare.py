"""Preparing a measured diffraction pattern for phase retrieval.

Patterns come off detectors with the zero frequency wherever the direct beam hit, saturated or
dead pixels, gaps and beamstops, and more pixels than the reconstruction needs.  phasekit's
algorithms want the zero frequency at index ``N // 2`` on every axis and a boolean mask with
**True = measured** (``docs/conventions.md``).  The functions here get there; each returns what
it did as a small JSON-able dict so that ``phasekit reconstruct`` can report it.

* :func:`mask_from_value` (``zeros``, ``negative``, ``nan``), :func:`mask_from_file`,
  :func:`saturation_mask`: which pixels are measured;
* :func:`find_center`: the zero frequency, from Friedel symmetry ``I(q) = I(-q)`` (the pattern of
  a real object is centrosymmetric, and that of a weakly absorbing one nearly so), with the
  centre of mass as fall-back;
* :func:`center_pattern`: moves the zero frequency to ``N // 2`` by an integer shift, cropping to
  the largest centred window that fits (default) or padding with unmeasured pixels;
* :func:`bin_pattern`, :func:`crop_pattern`: fewer pixels, around the centre;
* :func:`follow_support`: a real-space support carried along with those changes;
* :func:`prepare_pattern`: all of it in the order the CLI applies it.

Geometry of the changes (for a real-space support, see :func:`follow_support`): an integer shift
of the pattern is a phase ramp on the object, which does not move it; cropping the pattern from
``N`` to ``M`` pixels keeps the real-space field of view and makes its pixels ``N / M`` times
larger; binning by ``f`` divides the field of view by ``f`` and keeps the pixel size (Miao,
Sayre & Chapman, J. Opt. Soc. Am. A 15, 1662 (1998): the oversampling ratio is the field of view
over the object size, so binning by ``f`` divides it by ``f``).
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from ..core.errors import InputError

log = logging.getLogger("phasekit")

__all__ = [
    "MASK_RULES",
    "bin_pattern",
    "center_of_mass",
    "center_pattern",
    "crop_pattern",
    "find_center",
    "follow_support",
    "mask_from_file",
    "mask_from_value",
    "parse_center",
    "parse_shape",
    "prepare_pattern",
    "saturation_mask",
]

#: the value rules of :func:`mask_from_value` and what each marks unmeasured
MASK_RULES = {"zeros": "pixels equal to 0", "negative": "pixels < 0",
              "nan": "NaN or infinite pixels"}


def _as_pattern(intensity) -> np.ndarray:
    a = np.asarray(intensity)
    if a.dtype.kind not in "biuf":
        raise InputError(f"intensity has non-numeric dtype {a.dtype}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise InputError(f"intensity has shape {a.shape}: expected a 2-D or 3-D pattern")
    return a


def _as_mask(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise InputError(f"mask shape {m.shape} != intensity shape {tuple(shape)}")
    return m.astype(bool)


def _ints(t) -> list[int]:
    return [int(v) for v in t]


# --------------------------------------------------------------------------- masks
def mask_from_value(intensity, rule: str) -> tuple[np.ndarray, dict]:
    """The measured pixels by a value rule.

    Parameters
    ----------
    intensity : array_like
        The pattern.
    rule : {"zeros", "negative", "nan"}
        ``zeros``: pixels equal to 0 are unmeasured (detector gaps and masked pixels written as
        0); ``negative``: pixels below 0 are unmeasured (detectors that flag bad pixels with -1
        or -2); ``nan``: NaN and infinite pixels are unmeasured.  NaN pixels are unmeasured
        under every rule.

    Returns
    -------
    mask : numpy.ndarray of bool
        True = measured.
    info : dict
        ``{"rule", "unmeasured"}``.

    Examples
    --------
    >>> m, info = mask_from_value(np.array([[0, 1], [2, -1]]), "zeros")
    >>> m.tolist(), info["unmeasured"]
    ([[False, True], [True, True]], 1)
    """
    a = _as_pattern(intensity)
    key = str(rule).strip().lower()
    finite = np.isfinite(a)
    if key == "zeros":
        bad = (a == 0) | ~finite
    elif key == "negative":
        bad = (a < 0) | ~finite
    elif key == "nan":
        bad = ~finite
    else:
        raise InputError(f"unknown mask rule {rule!r} (expected one of "
                         f"{', '.join(MASK_RULES)}, or a mask file)")
    return ~bad, {"rule": key, "unmeasured": int(np.count_nonzero(bad))}


def mask_from_file(path, shape, *, invert: bool = False) -> tuple[np.ndarray, dict]:
    """A mask read from a ``.npy``, TIFF or EDF file.

    Convention: **non-zero = measured** (phasekit's in-memory convention); ``invert=True``
    reads files where non-zero marks *bad* pixels (e.g. a beamstop drawn as 1).

    Parameters
    ----------
    path : str or os.PathLike
        The mask file; its array must have the pattern's shape (as stored in the pattern's
        file, before any centring, binning or cropping).
    shape : tuple of int
        The pattern's shape.
    invert : bool
        Non-zero = unmeasured instead.

    Returns
    -------
    mask : numpy.ndarray of bool
        True = measured.
    info : dict
        ``{"file", "inverted", "unmeasured"}``.

    Raises
    ------
    FileFormatError
        Missing, unreadable or unrecognised file.
    InputError
        A shape other than ``shape``.

    Examples
    --------
    >>> m, info = mask_from_file("beamstop.npy", (1024, 1024), invert=True)  # doctest: +SKIP
    """
    from ..io.arrays import squeeze_frames
    from ..io.patterns import read_image_array

    arr = squeeze_frames(read_image_array(path, "mask"))
    if arr.shape != tuple(shape):
        raise InputError(f"{os.fspath(path)}: mask shape {arr.shape} != pattern shape "
                         f"{tuple(shape)}")
    with np.errstate(invalid="ignore"):
        good = np.nan_to_num(arr.astype(np.float64), nan=0.0) != 0
    m = ~good if invert else good
    return m, {"file": os.fspath(path), "inverted": bool(invert),
               "unmeasured": int(np.count_nonzero(~m))}


def _dilate(bad: np.ndarray, n: int) -> np.ndarray:
    if n <= 0 or not bad.any():
        return bad
    from scipy.ndimage import binary_dilation

    return binary_dilation(bad, structure=np.ones((3,) * bad.ndim, bool), iterations=int(n))


def saturation_mask(intensity, value: float, dilate: int = 0) -> tuple[np.ndarray, dict]:
    """Pixels at or above a saturation level (and their neighbours) as unmeasured.

    Parameters
    ----------
    intensity : array_like
        The pattern.
    value : float
        Saturation level: pixels ``>= value`` are unmeasured.
    dilate : int
        Also mark the pixels within ``dilate`` pixels (square neighbourhood, the Chebyshev
        distance) of a saturated one, where charge spreads on pixel detectors.

    Returns
    -------
    mask : numpy.ndarray of bool
        True = measured.
    info : dict
        ``{"value", "dilate", "saturated", "unmeasured"}``.

    Examples
    --------
    >>> m, info = saturation_mask(np.array([[1, 9, 1, 1]]), 9, dilate=1)
    >>> m.tolist(), info["saturated"], info["unmeasured"]
    ([[False, False, False, True]], 1, 3)
    """
    a = _as_pattern(intensity)
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"saturation level {value!r} must be a finite number")
    if int(dilate) < 0:
        raise InputError(f"saturation dilation {dilate} must be >= 0")
    with np.errstate(invalid="ignore"):
        sat = np.isfinite(a) & (a >= v)
    bad = _dilate(sat, int(dilate))
    return ~bad, {"value": v, "dilate": int(dilate), "saturated": int(np.count_nonzero(sat)),
                  "unmeasured": int(np.count_nonzero(bad))}


# --------------------------------------------------------------------------- the centre
def center_of_mass(intensity, mask=None) -> tuple[float, ...]:
    """Centre of mass of the measured, finite, non-negative intensities (pixel coordinates).

    Examples
    --------
    >>> center_of_mass(np.pad(np.ones((2, 2)), ((3, 1), (1, 3))))
    (3.5, 1.5)
    """
    a = _as_pattern(intensity).astype(np.float64)
    m = _as_mask(mask, a.shape) & np.isfinite(a)
    w = np.where(m, np.clip(a, 0, None), 0.0)
    total = w.sum()
    if not total > 0:
        raise InputError("no positive measured intensity: the centre of mass is undefined")
    out = []
    for ax in range(a.ndim):
        other = tuple(i for i in range(a.ndim) if i != ax)
        prof = w.sum(axis=other)
        out.append(float(np.dot(prof, np.arange(a.shape[ax])) / total))
    return tuple(out)


def _block_sum(a: np.ndarray, f: int) -> np.ndarray:
    """Sum ``f``-blocks from index 0 (trailing pixels dropped)."""
    shape = tuple(n // f for n in a.shape)
    a = a[tuple(slice(0, n * f) for n in shape)]
    new = []
    for n in shape:
        new += [n, f]
    return a.reshape(new).sum(axis=tuple(range(1, 2 * len(shape), 2)))


def _friedel_map(w: np.ndarray, m: np.ndarray, min_overlap: float):
    """Pearson correlation of ``w`` with its point inversion through every half-pixel centre.

    Entry ``s`` (a multi-index on ``0 .. 2N-2``) correlates ``w(q)`` with ``w(s - q)`` over the
    pixels where both are measured, i.e. inversion through ``c = s / 2``.  The four sums it
    needs are convolutions, done with zero-padded FFTs: ``n = m*m``, ``Sx = (wm)*m``,
    ``Sxx = (w^2 m)*m``, ``Sxy = (wm)*(wm)``; the two variances are equal by symmetry.
    """
    from scipy import fft as sfft

    shape = w.shape
    full = tuple(2 * n - 1 for n in shape)
    pad = tuple(sfft.next_fast_len(n, real=True) for n in full)
    axes = tuple(range(w.ndim))
    wm = np.where(m, w, 0.0)
    Fm = sfft.rfftn(m.astype(np.float64), pad, axes=axes)
    Fw = sfft.rfftn(wm, pad, axes=axes)
    crop = tuple(slice(0, n) for n in full)

    def conv(A, B):
        return sfft.irfftn(A * B, pad, axes=axes)[crop]

    n = np.rint(conv(Fm, Fm))
    sx = conv(Fw, Fm)
    sxy = conv(Fw, Fw)
    del Fw
    sxx = conv(sfft.rfftn(wm * wm, pad, axes=axes), Fm)
    del Fm
    count = float(np.count_nonzero(m))
    valid = n >= max(min_overlap * count, 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prod = np.where(valid, sx * sx / np.where(valid, n, 1.0), 0.0)
        var = sxx - mean_prod
        cov = sxy - mean_prod
        scale = np.abs(sxx).max() if sxx.size else 1.0
        good = valid & (var > 1e-9 * max(scale, 1e-300))
        r = np.where(good, cov / np.where(good, var, 1.0), -np.inf)
    return r


def _parabolic(r: np.ndarray, idx: tuple[int, ...]) -> list[float]:
    """Sub-sample peak position along each axis from a parabola through 3 samples."""
    out = []
    for ax, i in enumerate(idx):
        if 0 < i < r.shape[ax] - 1:
            lo = list(idx)
            hi = list(idx)
            lo[ax] -= 1
            hi[ax] += 1
            a, b, c = r[tuple(lo)], r[idx], r[tuple(hi)]
            den = a - 2 * b + c
            if np.isfinite(a) and np.isfinite(c) and den < 0:
                out.append(i + float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)))
                continue
        out.append(float(i))
    return out


def find_center(intensity, mask=None, *, min_symmetry: float = 0.5,
                min_overlap: float = 0.25, max_elements: int = 1 << 24) -> tuple[tuple, dict]:
    """Find the zero frequency of a diffraction pattern from its Friedel symmetry.

    The pattern of a real object is centrosymmetric, ``I(c + q) = I(c - q)``; that of a complex
    object nearly so at the low frequencies that carry most of the signal.  The centre ``c``
    maximises the Pearson correlation between the amplitudes ``sqrt(I)`` and their point
    inversion ``sqrt(I(2c - q))``, taken over the pixels measured in both (so beamstops, gaps
    and saturated pixels do not bias it).  All inversion centres on the half-pixel grid are
    scored at once with FFT convolutions (:func:`_friedel_map`); a parabola through the peak
    gives the sub-pixel position.  Inversions whose overlap with the measured pixels is below
    ``min_overlap`` of them are not considered.  When the best correlation is below
    ``min_symmetry`` the pattern is not symmetric enough (e.g. a strongly absorbing object) and
    the centre of mass of the measured intensities is returned instead, with a warning.

    Parameters
    ----------
    intensity : array_like
        The pattern, 2-D or 3-D, any position of the zero frequency.
    mask : array_like of bool, optional
        True = measured.  Non-finite pixels are ignored too.
    min_symmetry : float
        The Friedel correlation under which the centre of mass is used.
    min_overlap : float
        The smallest fraction of measured pixels an inversion must pair.
    max_elements : int
        Above this many elements of the padded FFT arrays the search runs on a binned copy
        (the precision is then that of the binned pixels, about a tenth of one).

    Returns
    -------
    center : tuple of float
        Pixel coordinates ``(y, x)`` (or ``(z, y, x)``) of the zero frequency in the array.
    info : dict
        ``{"method": "friedel" | "center-of-mass", "center", "symmetry" (the correlation at the
        centre), "search_binning", "warning" (when falling back)}``.

    Raises
    ------
    InputError
        A pattern that is not 2-D/3-D, or no positive measured intensity.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> u = np.zeros((128, 128)); u[60:68, 58:70] = rng.random((8, 12))
    >>> I = np.fft.fftshift(np.abs(np.fft.fft2(u)) ** 2)  # zero frequency at (64, 64) ...
    >>> I = I[44:108, 27:91]  # ... seen by a 64 x 64 detector at (20, 37)
    >>> c, info = find_center(I)
    >>> [round(v) for v in c], info["method"]
    ([20, 37], 'friedel')
    """
    a = _as_pattern(intensity).astype(np.float64)
    m = _as_mask(mask, a.shape) & np.isfinite(a)
    w = np.sqrt(np.clip(np.where(m, a, 0.0), 0, None))
    if not (w[m] > 0).any():
        raise InputError("no positive measured intensity: cannot find the zero frequency")
    f = 1
    while math.prod(2 * math.ceil(n / f) for n in a.shape) > max_elements:
        f += 1
    if f > 1:
        mb = _block_sum(m.astype(np.float64), f)
        wb = _block_sum(w * w, f)  # binned intensity
        mbool = mb >= 0.5 * f ** a.ndim
        wsearch = np.sqrt(np.where(mbool, wb / np.maximum(mb, 1), 0.0))
    else:
        mbool, wsearch = m, w
    info: dict[str, Any] = {"search_binning": f}
    r = _friedel_map(wsearch, mbool, min_overlap)
    best = float(np.max(r)) if r.size else -np.inf
    if np.isfinite(best):
        idx = np.unravel_index(int(np.argmax(r)), r.shape)
        s = _parabolic(r, tuple(int(i) for i in idx))
        cb = [v / 2 for v in s]
        center = tuple(float(f * v + (f - 1) / 2) for v in cb)
        info["symmetry"] = round(best, 4)
    else:
        center = None
        info["symmetry"] = None
    if center is None or best < min_symmetry:
        com = center_of_mass(a, m)
        sym = "undefined" if center is None else f"{best:.2f}"
        info["warning"] = (f"weak Friedel symmetry (correlation {sym} < {min_symmetry:g}): "
                           "the zero frequency is the centre of mass of the intensities")
        log.warning("%s", info["warning"])
        info["method"] = "center-of-mass"
        center = com
    else:
        info["method"] = "friedel"
    info["center"] = [round(v, 3) for v in center]
    return center, info


def parse_center(text) -> tuple[float, ...] | None:
    """``"512.5,498"`` -> ``(512.5, 498.0)``; ``"none"`` -> ``None``; ``"auto"`` -> ``"auto"``.

    Examples
    --------
    >>> parse_center("12,30.5")
    (12.0, 30.5)
    """
    from ..core.errors import ConfigError

    key = str(text).strip().lower()
    if key in ("none", "no", "off", "false"):
        return None
    if key == "auto":
        return "auto"  # type: ignore[return-value]
    try:
        vals = tuple(float(v) for v in key.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"--center {text!r}: expected Y,X (or Z,Y,X) pixel coordinates of the "
                          "zero frequency, 'auto' or 'none'") from None
    if len(vals) not in (2, 3) or not all(math.isfinite(v) for v in vals):
        raise ConfigError(f"--center {text!r}: expected Y,X (or Z,Y,X) pixel coordinates")
    return vals


def parse_shape(text) -> tuple[int, ...] | int:
    """``"256"`` -> ``256``; ``"256,300"`` -> ``(256, 300)`` (``--crop``).

    Examples
    --------
    >>> parse_shape("128,96")
    (128, 96)
    """
    from ..core.errors import ConfigError

    try:
        vals = tuple(int(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"--crop {text!r}: expected SIZE or Y,X (or Z,Y,X) in pixels") from None
    if not vals or any(v < 1 for v in vals) or len(vals) > 3:
        raise ConfigError(f"--crop {text!r}: sizes must be positive integers")
    return vals[0] if len(vals) == 1 else vals


# --------------------------------------------------------------------------- moving pixels
def center_pattern(intensity, mask, center, *, mode: str = "crop"):
    """Move the zero frequency to index ``N // 2`` by an integer shift.

    The centre is rounded to the nearest pixel (the rounding residual, at most half a pixel, is
    reported).  On each axis where it moves, the new length ``M`` is even:

    * ``mode="crop"`` (default): the largest window centred on the zero frequency that fits in
      the array, ``M = 2 min(c, N - c)``; pixels without a Friedel partner are dropped.
    * ``mode="pad"``: the smallest array that holds every pixel, ``M = 2 max(c, N - c)``, the new
      pixels unmeasured (mask False, intensity 0).

    Parameters
    ----------
    intensity : array_like
        The pattern.
    mask : array_like of bool or None
        True = measured (``None``: all measured; the returned mask is then ``None`` unless
        padding added unmeasured pixels).
    center : sequence of float
        Pixel coordinates of the zero frequency, one per axis.
    mode : {"crop", "pad"}

    Returns
    -------
    intensity, mask, info
        ``info = {"center", "center_pixel", "offset" (the rounded centre minus the array
        centre ``N // 2``), "shift" (the zero frequency's new index minus its old one),
        "residual" (centre minus rounded centre), "mode", "shape_in", "shape_out"}``.

    Raises
    ------
    InputError
        A centre outside the array or so close to its edge that the crop leaves fewer than 4
        pixels.

    Examples
    --------
    >>> I = np.zeros((10, 10)); I[3, 6] = 1
    >>> J, m, info = center_pattern(I, None, (3, 6))
    >>> J.shape, np.argwhere(J).tolist(), info["offset"], info["shift"]
    ((6, 8), [[3, 4]], [-2, 1], [0, -2])
    """
    a = _as_pattern(intensity)
    if mode not in ("crop", "pad"):
        raise InputError(f"centring mode {mode!r}: expected 'crop' or 'pad'")
    c = [float(v) for v in center]
    if len(c) != a.ndim:
        raise InputError(f"centre {tuple(center)} has {len(c)} coordinates for a {a.ndim}-D "
                         f"pattern of shape {a.shape}")
    for v, n in zip(c, a.shape):
        if not (math.isfinite(v) and -0.5 <= v < n - 0.5):
            raise InputError(f"centre {tuple(center)} lies outside the pattern of shape "
                             f"{a.shape}")
    ci = [math.floor(v + 0.5) for v in c]
    src, dst, out_shape = [], [], []
    for k, n in zip(ci, a.shape):
        if k == n // 2:
            M = n
        elif mode == "crop":
            M = 2 * min(k, n - k)
        else:
            M = 2 * max(k, n - k)
        if M < 4:
            raise InputError(f"the zero frequency at {tuple(round(v, 2) for v in c)} is too "
                             f"close to the edge of the pattern of shape {a.shape}")
        lo = k - M // 2  # source index of output index 0
        s0, s1 = max(lo, 0), min(lo + M, n)
        src.append(slice(s0, s1))
        dst.append(slice(s0 - lo, s1 - lo))
        out_shape.append(M)
    out_shape = tuple(out_shape)
    m_in = None if mask is None else _as_mask(mask, a.shape)
    I = np.zeros(out_shape, dtype=a.dtype)
    I[tuple(dst)] = a[tuple(src)]
    full = all(d.start == 0 and d.stop == M for d, M in zip(dst, out_shape))
    if m_in is None and full:
        m = None
    else:
        m = np.zeros(out_shape, dtype=bool)
        m[tuple(dst)] = True if m_in is None else m_in[tuple(src)]
    info = {"center": [round(v, 3) for v in c], "center_pixel": ci,
            "offset": [k - n // 2 for k, n in zip(ci, a.shape)],
            "shift": [n // 2 - k for k, n in zip(ci, out_shape)],
            "residual": [round(v - k, 3) for v, k in zip(c, ci)], "mode": mode,
            "shape_in": _ints(a.shape), "shape_out": _ints(out_shape), "fov_fraction": 1.0}
    return I, m, info


def bin_pattern(intensity, mask, factor: int, *, min_fraction: float = 1.0):
    """Sum ``factor``-pixel blocks of a centred pattern (zero frequency at ``N // 2``).

    Counts are summed, so the total measured intensity is conserved.  The blocks are aligned
    so that the zero-frequency pixel lies in block ``M // 2``: at its middle for odd factors,
    half an original pixel before it for even ones (reported as ``zero_offset``, in binned
    pixels, ``-0.5 / factor``).  Pixels that do not fill a whole block on either side are
    dropped.

    Masks: a binned pixel is measured when at least ``min_fraction`` of its sub-pixels are
    (default 1: all of them, so no binned pixel mixes measured and missing counts); with
    ``min_fraction < 1`` the sum over the measured sub-pixels is scaled by
    ``factor**ndim / n_measured``.  Unmeasured sub-pixels never contribute.

    Parameters
    ----------
    intensity : array_like
        A centred pattern.
    mask : array_like of bool or None
        True = measured.
    factor : int
        Block size on every axis (1 leaves the pattern unchanged).
    min_fraction : float
        In ``(0, 1]``.

    Returns
    -------
    intensity, mask, info
        ``info = {"factor", "shape_in", "shape_out", "zero_offset", "min_fraction",
        "fov_fraction"}``.

    Examples
    --------
    >>> I = np.ones((9, 9)); J, m, info = bin_pattern(I, None, 3)
    >>> J.shape, float(J.sum()), info["zero_offset"]
    ((3, 3), 81.0, 0.0)
    """
    a = _as_pattern(intensity)
    f = int(factor)
    if f < 1:
        raise InputError(f"binning factor {factor} must be >= 1")
    if not (0 < min_fraction <= 1):
        raise InputError(f"min_fraction {min_fraction} must be in (0, 1]")
    if f == 1:
        return a, mask, {"factor": 1, "shape_in": _ints(a.shape), "shape_out": _ints(a.shape),
                         "zero_offset": 0.0, "min_fraction": min_fraction, "fov_fraction": 1.0}
    m = _as_mask(mask, a.shape) & np.isfinite(a)
    sl, out_shape = [], []
    a0 = (f - 1) // 2
    for n in a.shape:
        start_c = n // 2 - a0          # first pixel of the centre block
        nl = start_c // f              # whole blocks below it
        nu = (n - start_c) // f        # whole blocks from it up
        M = max(2 * min(nl, nu), min(2 * nl + 1, 2 * nu - 1))
        if M < 2:
            raise InputError(f"binning by {f} leaves no pixels of the pattern of shape {a.shape}")
        first = start_c - (M // 2) * f
        sl.append(slice(first, first + M * f))
        out_shape.append(M)
    sub = np.where(m, a, 0).astype(np.float64)[tuple(sl)]
    cnt = _block_sum(m[tuple(sl)].astype(np.float64), f)
    tot = _block_sum(sub, f)
    full = f ** a.ndim
    good = cnt >= min_fraction * full - 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        I = np.where(good, tot * (full / np.maximum(cnt, 1)), 0.0)
    I = I.astype(np.float32)
    m_out = None if mask is None and good.all() else good
    info = {"factor": f, "shape_in": _ints(a.shape), "shape_out": _ints(out_shape),
            "zero_offset": 0.0 if f % 2 else round(-0.5 / f, 4),
            "min_fraction": float(min_fraction), "fov_fraction": 1.0 / f}
    return I, m_out, info


def crop_pattern(intensity, mask, size):
    """Keep a window of ``size`` pixels around the zero frequency of a centred pattern.

    The window is ``[N//2 - M//2, N//2 - M//2 + M)`` on each axis, so the zero frequency stays
    at ``M // 2``.

    Parameters
    ----------
    intensity : array_like
        A centred pattern.
    mask : array_like of bool or None
        True = measured.
    size : int or tuple of int
        The new shape (an int: the same on every axis).

    Returns
    -------
    intensity, mask, info
        ``info = {"shape_in", "shape_out", "fov_fraction"}``.

    Raises
    ------
    InputError
        A size larger than the pattern, or of the wrong number of axes.

    Examples
    --------
    >>> I = np.zeros((10, 10)); I[5, 5] = 1
    >>> J, _, _ = crop_pattern(I, None, 4)
    >>> np.argwhere(J).tolist()
    [[2, 2]]
    """
    a = _as_pattern(intensity)
    shape = (int(size),) * a.ndim if np.isscalar(size) else tuple(int(s) for s in size)
    if len(shape) != a.ndim:
        raise InputError(f"crop size {shape} has {len(shape)} axes for a pattern of shape "
                         f"{a.shape}")
    if any(s < 1 or s > n for s, n in zip(shape, a.shape)):
        raise InputError(f"crop size {shape} does not fit in the pattern of shape {a.shape}")
    sl = tuple(slice(n // 2 - s // 2, n // 2 - s // 2 + s) for s, n in zip(shape, a.shape))
    m = None if mask is None else _as_mask(mask, a.shape)[sl]
    return a[sl], m, {"shape_in": _ints(a.shape), "shape_out": _ints(shape),
                      "fov_fraction": 1.0}


def follow_support(support, shape_out, fov_fraction: float = 1.0) -> np.ndarray:
    """Carry a real-space support (centred at ``N // 2``) through pattern changes.

    The pattern's changes leave the object centred and change its sampling: the new array has
    ``shape_out`` pixels over ``fov_fraction`` of the old field of view (the product of
    ``1 / factor`` over the binnings; crops and centring keep the field of view).  A new pixel
    is inside when the old pixel nearest to it is, or when an old inside pixel falls in it.

    Raises
    ------
    InputError
        Part of the support lies outside the new field of view (binning too strong).

    Examples
    --------
    >>> s = np.zeros((8, 8), bool); s[3:5, 3:5] = True
    >>> int(follow_support(s, (4, 4), 0.5).sum())  # binned by 2: same pixels, half the field
    4
    """
    s = np.asarray(support, dtype=bool)
    shape_out = tuple(int(n) for n in shape_out)
    if len(shape_out) != s.ndim:
        raise InputError(f"support shape {s.shape} has {s.ndim} axes, the pattern "
                         f"{len(shape_out)}")
    if s.shape == shape_out and fov_fraction == 1.0:
        return s.copy()
    # old pixel index per new pixel (backward, nearest)
    back = [np.clip(np.rint((np.arange(M) - M // 2) * (fov_fraction * N / M) + N // 2), 0,
                    N - 1).astype(int) for M, N in zip(shape_out, s.shape)]
    out = s[np.ix_(*back)].copy()
    # new pixel index of every inside old pixel (forward)
    idx = np.nonzero(s)
    new = [np.rint((i - N // 2) * (M / (fov_fraction * N)) + M // 2).astype(int)
           for i, M, N in zip(idx, shape_out, s.shape)]
    inside = np.ones(idx[0].shape, bool)
    for k, M in zip(new, shape_out):
        inside &= (k >= 0) & (k < M)
    if not inside.all():
        raise InputError(f"the support ({int(s.sum())} pixels) does not fit in the field of "
                         f"view of the prepared pattern ({fov_fraction:g} of the original): bin "
                         "less, or give --support auto or a support of shape "
                         f"{shape_out}")
    out[tuple(new)] = True
    return out


# --------------------------------------------------------------------------- all together
def prepare_pattern(intensity, mask=None, *, mask_rule: str | None = None,
                    mask_file=None, mask_invert: bool = False, saturation: float | None = None,
                    saturation_dilate: int = 0, center="auto", center_mode: str = "crop",
                    bin: int = 1, crop=None, support=None):
    """Mask, centre, bin and crop a pattern, in that order (what ``phasekit reconstruct``
    does).

    Parameters
    ----------
    intensity : array_like
        The pattern as read.
    mask : array_like of bool, optional
        The file's own mask (True = measured); the masks below are combined with it (a pixel is
        measured only when every mask says so).
    mask_rule : {"zeros", "negative", "nan"}, optional
        See :func:`mask_from_value`.  NaN/infinite pixels are always unmeasured.
    mask_file : path, optional
        See :func:`mask_from_file` (``mask_invert``).
    saturation : float, optional
        See :func:`saturation_mask` (``saturation_dilate``).
    center : "auto", None or sequence of float
        ``"auto"``: :func:`find_center`; a sequence: the zero frequency's pixel coordinates in
        the array as given; ``None``: the pattern is taken as centred.
    center_mode : {"crop", "pad"}
        See :func:`center_pattern`.
    bin : int
        See :func:`bin_pattern` (binned pixels are measured only when all sub-pixels are).
    crop : int or tuple of int, optional
        Final shape, in binned pixels (:func:`crop_pattern`).
    support : array_like of bool, optional
        A real-space support of the input's shape, carried along (:func:`follow_support`).

    Returns
    -------
    intensity : numpy.ndarray
        float32, zero frequency at ``N // 2``; unmeasured pixels set to 0.
    mask : numpy.ndarray of bool or None
    support : numpy.ndarray of bool or None
    report : dict
        JSON-able: ``{"shape_in", "shape_out", "mask": {...}, "saturation": {...},
        "center": {...}, "centering": {...}, "bin": {...}, "crop": {...}}`` (only the steps
        done), ``"unmeasured"`` (pixel count after all steps).

    Examples
    --------
    >>> I, m, s, rep = prepare_pattern(pattern, mask_rule="zeros", bin=2)  # doctest: +SKIP
    >>> rep["center"]["center"], rep["shape_out"]  # doctest: +SKIP
    ([530.2, 470.9], [412, 412])
    """
    a = _as_pattern(intensity)
    report: dict[str, Any] = {"shape_in": _ints(a.shape)}
    finite = np.isfinite(a)
    m = None if mask is None else _as_mask(mask, a.shape)
    if not finite.all():
        m = finite if m is None else (m & finite)
        report["nonfinite"] = int(a.size - np.count_nonzero(finite))
    masks: dict[str, Any] = {}
    if mask_rule is not None:
        mv, info = mask_from_value(a, mask_rule)
        m = mv if m is None else (m & mv)
        masks["rule"] = info
    if mask_file is not None:
        mf, info = mask_from_file(mask_file, a.shape, invert=mask_invert)
        m = mf if m is None else (m & mf)
        masks["file"] = info
    if masks:
        report["mask"] = masks
    if saturation is not None:
        ms, info = saturation_mask(a, saturation, saturation_dilate)
        m = ms if m is None else (m & ms)
        report["saturation"] = info
    if m is not None and not m.any():
        raise InputError("the masks leave no measured pixel")
    work = np.where(m, a, 0) if m is not None else a
    fov = 1.0
    if isinstance(center, str) and center.lower() == "auto":
        c, info = find_center(work, m)
        report["center"] = info
    elif center is None:
        c = None
        report["center"] = {"method": "none (taken as centred)",
                            "center": [n // 2 for n in a.shape]}
    else:
        c = tuple(float(v) for v in center)
        report["center"] = {"method": "given", "center": [round(v, 3) for v in c]}
    if c is not None:
        work, m, info = center_pattern(work, m, c, mode=center_mode)
        report["centering"] = info
    if int(bin) != 1:
        work, m, info = bin_pattern(work, m, int(bin))
        fov *= info["fov_fraction"]
        report["bin"] = info
    if crop is not None:
        work, m, info = crop_pattern(work, m, crop)
        report["crop"] = info
    out = np.ascontiguousarray(work, dtype=np.float32)
    if m is not None:
        out = np.where(m, out, np.float32(0))
    report["shape_out"] = _ints(out.shape)
    report["unmeasured"] = 0 if m is None else int(m.size - np.count_nonzero(m))
    sup = None
    if support is not None:
        sup = follow_support(support, out.shape, fov)
    return out, m, sup, report
