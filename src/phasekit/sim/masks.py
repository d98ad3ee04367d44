"""Detector masks: a beamstop (missing centre) and gaps between detector panels.

Masks are boolean with **True = measured** (docs/conventions.md). Unmeasured pixels are left
free by the modulus projection and are left out of R-factors. Both kinds of missing data are
described in Pham's thesis, §2.3.3 ("a beamstop or a hole in the detector leaves the centre
unmeasured, and gaps between detector panels leave more pixels unmeasured"), and in the
VR-RK paper's central gap (Xian et al. 2022, sec. "Synthetic single particle data recovery
experiment", Fig. 1(c)). The zero frequency is at index ``N // 2``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from phasekit.core.device import to_numpy
from phasekit.core.errors import ConfigError, InputError

__all__ = ["beamstop", "detector_gaps", "combine"]


def _check_shape(shape, ndim: int | None = None) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),) * (ndim or 2)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise InputError(f"shape must be a tuple of ints, got {shape!r}") from None
    if len(shape) == 0:
        raise InputError("shape must have at least one axis")
    if ndim is not None and len(shape) != ndim:
        raise InputError(f"shape must have {ndim} axes, got {shape}")
    if any(s <= 0 for s in shape):
        raise InputError(f"shape must be positive on every axis, got {shape}")
    return shape


def beamstop(shape, radius: float, *, square: bool = False) -> np.ndarray:
    """Mask of a centred beamstop (missing centre).

    Pixels within ``radius`` of the centre pixel ``N // 2`` are unmeasured (False). A pixel is
    within the radius if its Euclidean distance ``d <= radius`` from the centre, or
    ``max(|dy|, |dx|) <= radius`` with ``square=True``. For an integer ``r >= 1``,
    ``square=True`` masks a ``(2r + 1) x (2r + 1)`` block, and the disk with ``r = 1`` masks 5
    pixels. ``radius = 0`` means no beamstop: nothing is masked.

    Parameters
    ----------
    shape : tuple of int
        Shape of the pattern, any number of axes (an int ``n`` means ``(n, n)``).
    radius : float
        Beamstop radius in pixels (``>= 0``; may be fractional).
    square : bool, optional
        Use a square (Chebyshev distance) instead of a disk.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``shape``, True = measured.

    Raises
    ------
    InputError
        If ``shape`` is not positive.
    ConfigError
        If ``radius`` is negative or not finite.
    """
    shape = _check_shape(shape)
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise ConfigError(f"beamstop radius must be a number, got {radius!r}") from None
    if not math.isfinite(r) or r < 0:
        raise ConfigError(f"beamstop radius must be finite and >= 0, got {radius!r}")
    measured = np.ones(shape, dtype=bool)
    if r == 0:
        return measured
    axes = np.ogrid[tuple(slice(-(n // 2), n - n // 2) for n in shape)]
    if square:
        dist = np.zeros(shape)
        for a in axes:
            dist = np.maximum(dist, np.abs(a))
    else:
        dist = np.sqrt(sum(a.astype(float) ** 2 for a in axes))
    measured[dist <= r] = False
    return measured


_ORIENTATIONS = ("both", "horizontal", "vertical")


def _band_starts(n: int, width: int, n_gaps: int, offset: int) -> list[int]:
    """First index of each of ``n_gaps`` bands of ``width`` pixels along an axis of length ``n``.

    The detector is read as ``n_gaps + 1`` equal panels with pitch ``n / (n_gaps + 1)``. The
    gap centres are spaced one pitch apart and placed symmetrically about the centre pixel
    ``n // 2``, then shifted by ``offset``. A single gap is a band through the centre
    (covering pixel ``n // 2 + offset``).
    """
    pitch = n / (n_gaps + 1)
    starts = []
    for k in range(n_gaps):
        centre = n // 2 + offset + (k - (n_gaps - 1) / 2.0) * pitch
        starts.append(int(math.floor(centre + 0.5)) - width // 2)
    return starts


def detector_gaps(
    shape,
    width: int,
    *,
    n_gaps: int = 1,
    orientation: str = "both",
    offset: int = 0,
) -> np.ndarray:
    """Mask of the unmeasured bands between detector panels.

    Each gap is a straight band ``width`` pixels wide across the whole pattern. With
    ``n_gaps = 1`` the band passes through the centre pixel ``N // 2`` (plus ``offset``): it
    covers indices ``N//2 + offset - width//2`` to ``N//2 + offset - width//2 + width - 1``.
    With ``n_gaps > 1`` the detector is read as ``n_gaps + 1`` equal panels. The gap centres
    are one panel pitch ``N / (n_gaps + 1)`` apart, symmetric about the centre and shifted by
    ``offset``. ``"horizontal"`` gaps are bands of rows, ``"vertical"`` gaps are bands of
    columns, and ``"both"`` gives both, a cross for one gap. For one gap of width ``w`` on an
    ``(N, M)`` pattern, the counts of unmeasured pixels are ``w*M``, ``w*N`` and
    ``w*M + w*N - w*w``. ``width = 0`` means no gaps.

    Parameters
    ----------
    shape : tuple of int
        2-D pattern shape ``(N, M)`` (an int ``n`` means ``(n, n)``).
    width : int
        Gap width in pixels (``>= 0``).
    n_gaps : int, optional
        Number of gaps per orientation (``>= 1``).
    orientation : {"both", "horizontal", "vertical"}, optional
        Direction of the bands.
    offset : int, optional
        Shift of the gaps from the centre, in pixels (down for rows, right for columns).

    Returns
    -------
    numpy.ndarray
        Boolean array of ``shape``, True = measured.

    Raises
    ------
    InputError
        If ``shape`` is not 2-D and positive.
    ConfigError
        If ``width`` or ``n_gaps`` is out of range, ``orientation`` is unknown, or a gap
        falls (partly) outside the pattern.
    """
    shape = _check_shape(shape, ndim=2)
    for name, val, lo in (("width", width, 0), ("n_gaps", n_gaps, 1)):
        if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val < lo:
            raise ConfigError(f"gap {name} must be an integer >= {lo}, got {val!r}")
    if isinstance(offset, bool) or not isinstance(offset, numbers.Integral):
        raise ConfigError(f"gap offset must be an integer, got {offset!r}")
    if orientation not in _ORIENTATIONS:
        raise ConfigError(
            f"unknown gap orientation {orientation!r}; valid: {', '.join(_ORIENTATIONS)}"
        )
    width, n_gaps, offset = int(width), int(n_gaps), int(offset)
    measured = np.ones(shape, dtype=bool)
    if width == 0:
        return measured
    for axis, wanted in ((0, "horizontal"), (1, "vertical")):
        if orientation not in (wanted, "both"):
            continue
        n = shape[axis]
        for start in _band_starts(n, width, n_gaps, offset):
            if start < 0 or start + width > n:
                raise ConfigError(
                    f"detector gap [{start}, {start + width}) falls outside axis {axis} of "
                    f"length {n} (width={width}, n_gaps={n_gaps}, offset={offset})"
                )
            index = [slice(None), slice(None)]
            index[axis] = slice(start, start + width)
            measured[tuple(index)] = False
    return measured


def combine(*masks) -> np.ndarray:
    """Combine masks: a pixel is measured only if every mask says it is measured (logical AND).

    Parameters
    ----------
    *masks : array_like of bool
        Masks of the same shape, True = measured. ``None`` entries are skipped.

    Returns
    -------
    numpy.ndarray
        Boolean mask, True = measured.

    Raises
    ------
    ConfigError
        If no mask is given.
    InputError
        If the masks are not boolean or their shapes differ.
    """
    arrays = [to_numpy(m) for m in masks if m is not None]
    if not arrays:
        raise ConfigError("combine() needs at least one mask")
    out = None
    for i, m in enumerate(arrays):
        if m.dtype != bool:
            raise InputError(f"mask {i} must be boolean (True = measured), got dtype {m.dtype}")
        if out is None:
            out = m.copy()
        elif m.shape != out.shape:
            raise InputError(f"mask {i} shape {m.shape} != mask 0 shape {out.shape}")
        else:
            out &= m
    return out
