"""Preprocessing of raw tomography scans: flat/dark normalisation, -log, zinger removal and
rotation-centre finding.

Every step works on projection stacks in phasekit's order ``(n, Dx, Dy)`` (``x`` across the
rotation axis, ``y`` along it; :mod:`phasekit.tomo.geometry`) and returns float32.  The steps
follow the standard transmission model ``I = I_0 exp(-int mu dl)`` (Kak & Slaney, *Principles of
Computerized Tomographic Imaging*, ch. 4): ``t = (I - D) / (F - D)`` with the flat ``F`` and dark
``D`` frames, then ``p = -ln t``.

Rotation centre (the detector ``x`` of the rotation axis, in pixels; phasekit's projectors assume
``Dx // 2`` and take the difference as ``center_offset`` without resampling the data):

* ``"registration"``: a projection at ``theta + 180`` degrees is the mirror image of the one at
  ``theta`` about the axis, ``p_{theta+180}(x) = p_theta(2c - x)``; the shift between one and the
  other mirrored gives ``c`` (the 0/180 registration idea of TomoPy's ``find_center_pc``; here a
  cross-correlation peak refined to a fraction of a pixel by a least-squares Fourier shift).
* ``"entropy"``: FBP of a few detector rows for candidate centres; the right centre gives the
  sharpest slice, i.e. the smallest entropy of the grey-level histogram (Donath, Beckmann &
  Schreyer, J. Opt. Soc. Am. A 23, 1048 (2006); also TomoPy's ``find_center``).  It needs no 180
  degree pair (limited-angle data), at the cost of a reconstruction per candidate.

:func:`preprocess` chains them and returns a :class:`Preprocessed` record of what was done.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ConfigError, InputError

__all__ = ["normalize", "minus_log", "remove_zingers", "find_center", "find_center_registration",
           "find_center_entropy", "CenterEstimate", "Preprocessed", "preprocess"]

_FLOOR = 1e-6  # smallest transmission before -log


def _stack(a, name="projections") -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.size == 0:
        raise InputError(f"{name} must be a stack (n, Dx, Dy), got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be real numbers, got dtype {a.dtype}")
    return a


def _mean_frame(frames, name) -> np.ndarray | None:
    if frames is None:
        return None
    f = _stack(frames, name).astype(np.float32)
    return np.median(f, axis=0) if f.shape[0] > 2 else f.mean(0)


def normalize(projections, flats=None, darks=None) -> np.ndarray:
    """Flat/dark correction ``(I - D) / (F - D)``: the transmission, float32.

    Several flat or dark frames are combined by their median (their mean for 1-2 frames), which
    ignores zingers hitting one frame.  Pixels where ``F - D <= 0`` (dead pixels) get
    transmission 1.

    Parameters
    ----------
    projections : array (n, Dx, Dy)
    flats, darks : array (k, Dx, Dy) or (Dx, Dy), optional
        Without flats the result is ``I - D``; without darks ``D = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> t = normalize(np.full((1, 2, 2), 60.0), flats=np.full((3, 2, 2), 110.0),
    ...               darks=np.full((2, 2, 2), 10.0))
    >>> float(t[0, 0, 0])
    0.5
    """
    p = _stack(projections).astype(np.float32)
    d = _mean_frame(darks, "darks")
    f = _mean_frame(flats, "flats")
    for fr, nm in ((d, "dark"), (f, "flat")):
        if fr is not None and fr.shape != p.shape[1:]:
            raise InputError(f"{nm} frames {fr.shape} do not match projections {p.shape[1:]}")
    if d is not None:
        p = p - d
    if f is None:
        return p
    den = f - (d if d is not None else 0.0)
    good = den > 0
    return np.where(good, p / np.where(good, den, 1.0), 1.0).astype(np.float32)


def minus_log(transmission, floor: float = _FLOOR) -> np.ndarray:
    """Line integrals ``-ln(max(t, floor))`` from transmissions (float32).

    Examples
    --------
    >>> import numpy as np
    >>> round(float(minus_log(np.array([[[np.exp(-2.0)]]]))[0, 0, 0]), 6)
    2.0
    """
    t = np.asarray(transmission, dtype=np.float32)
    return (-np.log(np.maximum(t, np.float32(floor)))).astype(np.float32)


def remove_zingers(frames, threshold: float = 6.0, size: int = 3) -> tuple[np.ndarray, int]:
    """Replace isolated bright outliers (zingers: direct hits on the detector) by the local median.

    A pixel is a zinger when it exceeds the ``size x size`` median of its own frame by more than
    ``threshold`` robust standard deviations (``1.4826 x`` the median absolute deviation of the
    frame's difference from its median filter) -- the rule of TomoPy's ``remove_outlier`` with a
    threshold relative to the frame's noise instead of an absolute one -- *and* exceeds the
    largest of its 8 neighbours by half that much, so that the bright side of a sharp edge is
    not taken for a zinger.

    Returns
    -------
    cleaned : ndarray float32, the same shape
    count : int
        Pixels replaced.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.random.default_rng(0).normal(100, 1, (1, 16, 16)); a[0, 5, 7] = 400
    >>> b, n = remove_zingers(a)
    >>> n, bool(abs(b[0, 5, 7] - 100) < 5)
    (1, True)
    """
    from scipy.ndimage import maximum_filter, median_filter

    a = _stack(frames).astype(np.float32)
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    if not threshold > 0:
        raise ConfigError(f"zinger threshold must be > 0, got {threshold}")
    out = a.copy()
    count = 0
    for i in range(a.shape[0]):
        med = median_filter(a[i], size=int(size), mode="mirror")
        d = a[i] - med
        mad = float(np.median(np.abs(d - np.median(d))))
        sigma = 1.4826 * mad
        if sigma <= 0:
            sigma = float(np.std(d)) or 1.0
        hit = d > threshold * sigma
        if hit.any():
            nb = maximum_filter(a[i], footprint=ring, mode="mirror")  # not the pixel itself
            hit &= (a[i] - nb) > 0.5 * threshold * sigma
        n = int(hit.sum())
        if n:
            out[i][hit] = med[hit]
            count += n
    return out, count


# --------------------------------------------------------------------------- rotation centre
@dataclass
class CenterEstimate:
    """A rotation-centre estimate: ``center`` (detector ``x``, pixels), ``offset`` from
    ``Dx // 2``, the ``method`` used and its ``details`` (pairs, scores)."""

    center: float
    offset: float
    method: str
    details: dict = field(default_factory=dict)


def _pairs_180(angles, tol: float | None) -> list[tuple[int, int, float]]:
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    if a.size < 2:
        return []
    if tol is None:
        steps = np.diff(np.sort(a))
        steps = steps[steps > 1e-9]
        tol = max(0.05, 0.5 * float(np.median(steps))) if steps.size else 0.05
        tol = min(tol, 1.0)
    out = []
    for i in range(a.size):
        d = np.abs(((a - a[i]) % 360.0) - 180.0)
        j = int(np.argmin(d))
        if d[j] <= tol and j != i and (j, i) not in [(p[0], p[1]) for p in out]:
            out.append((i, j, float(d[j])))
    return out


def _shift_fourier(prof: np.ndarray, s: float) -> np.ndarray:
    """``prof(x - s)`` along axis 0 (zero-padded to twice the length, band-limited shift)."""
    n = prof.shape[0]
    m = 2 * n
    pad = np.zeros((m,) + prof.shape[1:], dtype=np.float64)
    pad[:n] = prof
    f = np.fft.fftfreq(m)
    ramp = np.exp(-2j * np.pi * f * s).reshape((m,) + (1,) * (prof.ndim - 1))
    return np.fft.ifft(np.fft.fft(pad, axis=0) * ramp, axis=0).real[:n]


def _register_mirror(p0: np.ndarray, p1: np.ndarray) -> float:
    """``delta`` with ``p1[::-1](x) ~ p0(x + delta)``, to a fraction of a pixel."""
    from scipy.optimize import minimize_scalar

    # no mean subtraction: the zero padding of the correlation must meet the profiles' own
    # background (0 for line integrals), not a step
    a = p0.astype(np.float64)
    b = p1[::-1].astype(np.float64)
    n = a.shape[0]
    m = 2 * n
    Fa = np.fft.fft(a, n=m, axis=0)
    Fb = np.fft.fft(b, n=m, axis=0)
    xc = np.fft.ifft(Fb * np.conj(Fa), axis=0).real.sum(axis=tuple(range(1, a.ndim)))
    k = int(np.argmax(xc))
    lag = k if k < n else k - m  # b(x) ~ a(x - lag)  =>  delta = -lag

    def cost(s):
        return float(np.sum((_shift_fourier(a, s) - b) ** 2))

    r = minimize_scalar(cost, bounds=(lag - 1.5, lag + 1.5), method="bounded",
                        options={"xatol": 1e-3})
    return -float(r.x)


def find_center_registration(projections, angles, *, tol: float | None = None,
                             max_pairs: int = 8) -> CenterEstimate:
    """Rotation centre from projections 180 degrees apart (see the module docstring).

    Parameters
    ----------
    projections : array (n, Dx, Dy)
        Line integrals (after -log) or transmissions.
    angles : array (n,) or (n, 3)
        Degrees (y tilts; for Euler triples the middle angle is used).
    tol : float, optional
        Largest mismatch from 180 degrees of a pair (default half the angular step, at most 1).
    max_pairs : int
        Up to this many pairs, spread over the scan; the median centre is returned.

    Raises
    ------
    InputError
        No pair of projections 180 degrees apart.

    Examples
    --------
    >>> est = find_center_registration(b, angles)  # doctest: +SKIP
    >>> est.center  # doctest: +SKIP
    34.02
    """
    b = _stack(projections)
    ang = _tilts(angles, b.shape[0])
    pairs = _pairs_180(ang, tol)
    if not pairs:
        raise InputError("no two projections 180 degrees apart (the angles span "
                         f"{ang.min():g} to {ang.max():g}); use the entropy centre search")
    if len(pairs) > max_pairs:
        pick = np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int)
        pairs = [pairs[i] for i in pick]
    Dx = b.shape[1]
    cs = []
    for i, j, _ in pairs:
        delta = _register_mirror(b[i], b[j])
        cs.append((delta + Dx - 1) / 2.0)
    c = float(np.median(cs))
    return CenterEstimate(c, c - Dx // 2, "registration",
                          {"pairs": [(int(i), int(j)) for i, j, _ in pairs],
                           "centers": [float(x) for x in cs]})


def _tilts(angles, n) -> np.ndarray:
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 3:
        a = a[:, 1]
    a = a.reshape(-1)
    if a.size != n:
        raise InputError(f"{a.size} angles for {n} projections")
    return a


def _entropy(img: np.ndarray, lo: float, hi: float, bins: int = 256) -> float:
    h, _ = np.histogram(img, bins=bins, range=(lo, hi))
    p = h[h > 0] / max(1, img.size)
    return float(-(p * np.log(p)).sum())


def find_center_entropy(projections, angles, *, rows=None, search: float | None = None,
                        start: float | None = None, step: float = 1.0,
                        refine: float = 0.25, metric: str = "entropy") -> CenterEstimate:
    """Rotation centre minimising the histogram entropy of an FBP slice (module docstring).

    Parameters
    ----------
    projections : array (n, Dx, Dy)
        Line integrals.
    angles : degrees
    rows : sequence of 2 ints, optional
        Detector rows (``y``) reconstructed for the search; default the two middle rows.
    search : float, optional
        Half-width in pixels of the coarse search around ``start`` (default ``Dx / 8``, at
        least 4).
    start : float, optional
        Centre of the search (default ``Dx // 2``).
    step, refine : float
        Coarse step, then a fine step around the best coarse candidate (pixels).
    metric : {"entropy", "negativity"}
        Histogram entropy (Donath et al. 2006) of the Hann-filtered FBP slice inside the
        reconstruction disc, with one histogram range for every candidate (from the slice at
        ``start``), or the negative mass ``-sum(min(f, 0))`` (a mis-centred FBP of a
        non-negative object has negative arcs).

    Examples
    --------
    >>> est = find_center_entropy(b, angles, search=5)  # doctest: +SKIP
    """
    from .fbp import fbp
    from .problem import TomoProblem

    if metric not in ("entropy", "negativity"):
        raise ConfigError(f"unknown centre metric {metric!r}; choose entropy or negativity")
    b = _stack(projections).astype(np.float32)
    ang = _tilts(angles, b.shape[0])
    n, Dx, Dy = b.shape
    if rows is None:
        r0 = max(0, Dy // 2 - 1)
        rows = (r0, min(Dy, r0 + 2))
    sub = b[:, :, rows[0]:rows[1]]
    if sub.shape[2] < 2:
        sub = np.concatenate([sub, sub], axis=2)
    c0 = Dx // 2 if start is None else float(start)
    half = max(4.0, Dx / 8.0) if search is None else float(search)
    uu, ww = np.meshgrid(np.arange(Dx) - Dx // 2, np.arange(Dx) - Dx // 2, indexing="ij")
    disk = (uu ** 2 + ww ** 2) <= (0.45 * Dx) ** 2

    def recon(c):
        prob = TomoProblem.from_arrays(sub, ang, center=c, positive=False)
        v = fbp(prob, filter="hann").cpu().numpy()
        return v[:, 0, :][disk]

    ref = recon(c0)
    lo, hi = float(np.percentile(ref, 0.5)), float(np.percentile(ref, 99.5))
    span = hi - lo or 1.0
    lo, hi = lo - 0.5 * span, hi + 0.5 * span
    scores = {}

    def score(c):
        c = float(round(c, 6))
        if c not in scores:
            if not (0 < c < Dx - 1):
                scores[c] = math.inf
            elif metric == "negativity":
                f = recon(c)
                scores[c] = float(-f[f < 0].sum())
            else:
                scores[c] = _entropy(recon(c), lo, hi)
        return scores[c]

    for c in np.arange(c0 - half, c0 + half + 1e-9, step):
        score(c)
    best = min(scores, key=scores.get)
    if refine and refine < step:
        for c in np.arange(best - step, best + step + 1e-9, refine):
            score(c)
        best = min(scores, key=scores.get)
    return CenterEstimate(best, best - Dx // 2, "entropy",
                          {"rows": [int(rows[0]), int(rows[1])], "candidates": len(scores),
                           "metric": metric, "score": scores[best]})


def find_center(projections, angles, method: str = "auto", **kw) -> CenterEstimate:
    """Rotation centre (detector ``x`` in pixels) by ``"registration"`` (projections 180 degrees
    apart), ``"entropy"`` (sharpest FBP slice) or ``"auto"``: registration when the scan has a
    pair of projections 180 degrees apart, else entropy.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from phasekit.tomo.projectors import RealSpaceProjector
    >>> vol = np.zeros((32, 2, 32), np.float32); vol[12:18, :, 9:20] = 1
    >>> ang = np.linspace(0, 180, 37)
    >>> b = RealSpaceProjector(vol.shape, ang, center_offset=2).forward(torch.as_tensor(vol))
    >>> round(find_center(b.numpy(), ang).offset, 1)
    2.0
    """
    m = str(method).lower()
    if m == "auto":
        ang = _tilts(angles, np.shape(projections)[0])
        m = "registration" if _pairs_180(ang, kw.get("tol")) else "entropy"
    if m in ("registration", "pc", "180"):
        return find_center_registration(projections, angles,
                                        **{k: v for k, v in kw.items() if k in ("tol", "max_pairs")})
    if m in ("entropy", "sharpness"):
        return find_center_entropy(projections, angles,
                                   **{k: v for k, v in kw.items()
                                      if k in ("rows", "search", "start", "step", "refine",
                                                    "metric")})
    raise ConfigError(f"unknown centre method {method!r}; choose auto, registration or entropy")


# --------------------------------------------------------------------------- the pipeline
@dataclass
class Preprocessed:
    """Corrected projections and the record of what was done.

    Attributes
    ----------
    projections : ndarray (n, Dx, Dy) float32
        Line integrals (or the data as given when nothing applied).
    angles : ndarray (n,)
        Degrees.
    center : float or None
        Rotation axis on the detector ``x`` (pixels); None = not set (``Dx // 2``).
    center_method : str
        ``"auto:registration"``, ``"auto:entropy"``, ``"given"``, ``"stored"`` (read with a
        tilt series that ``phasekit preprocess-tomo`` wrote) or ``"none"``.
    steps : list of str
        One human-readable line per step done or skipped.
    zingers : int
        Pixels replaced by the zinger filter.
    """

    projections: np.ndarray
    angles: np.ndarray
    center: float | None = None
    center_method: str = "none"
    steps: list = field(default_factory=list)
    zingers: int = 0
    flags: dict = field(default_factory=dict)

    @property
    def center_offset(self) -> float:
        return 0.0 if self.center is None else float(self.center) - self.projections.shape[1] // 2

    def as_dict(self) -> dict:
        """The record (for the result file's configuration)."""
        return {"steps": list(self.steps), "center": self.center,
                "center_method": self.center_method, "center_offset": self.center_offset,
                "zingers_removed": self.zingers, **self.flags}


def preprocess(projections, angles, *, flats=None, darks=None, flat_dark: bool = True,
               log: bool = True, zingers: bool = True, zinger_threshold: float = 6.0,
               center="auto", center_method: str = "auto",
               center_source: str = "given") -> Preprocessed:
    """Zingers, flat/dark normalisation, -log and the rotation centre, each switchable.

    Parameters
    ----------
    projections : array (n, Dx, Dy)
        Raw frames (counts) or, with ``log=False``, line integrals already.
    angles : (n,) degrees
    flats, darks : arrays (k, Dx, Dy), optional
    flat_dark, log, zingers : bool
        Switch the steps off.  Without flat frames and with ``log`` on, the data are divided by
        their 99.9th percentile (an estimate of the open beam) and the record says so.
    center : "auto", float or None
        ``"auto"``: :func:`find_center` with ``center_method``; a number: that centre (pixels);
        None: leave it at ``Dx // 2``.
    center_source : {"given", "stored"}
        Where a numeric ``center`` comes from: the caller (``"given"``) or the tilt series
        that ``phasekit preprocess-tomo`` wrote (``"stored"``); recorded as ``center_method``
        and in the step's text.

    Examples
    --------
    >>> pre = preprocess(raw.projections, raw.angles, flats=raw.flats, darks=raw.darks)  # doctest: +SKIP
    >>> print("\\n".join(pre.steps))  # doctest: +SKIP
    zingers: 12 pixel(s) replaced (threshold 5 robust sigma, 3x3 median)
    flat/dark: (I - dark) / (flat - dark) with 4 flat and 2 dark frame(s)
    -log: line integrals -ln(t)
    centre: 322.46 px (auto, registration of 1 pair 180 degrees apart; detector centre 320)
    """
    b = _stack(projections)
    ang = _tilts(angles, b.shape[0])
    steps: list[str] = []
    nz = 0
    flags = {"flat_dark": False, "log": False, "zingers": False}
    if zingers:
        b, nz = remove_zingers(b, zinger_threshold)
        nf = 0
        if flats is not None and flat_dark:
            flats, nf = remove_zingers(flats, zinger_threshold)
        steps.append(f"zingers: {nz} pixel(s) replaced in the projections"
                     + (f", {nf} in the flats" if flats is not None and flat_dark else "")
                     + f" (threshold {zinger_threshold:g} robust sigma, 3x3 median)")
        flags["zingers"] = True
    else:
        steps.append("zingers: off")
    if flat_dark and (flats is not None or darks is not None):
        b = normalize(b, flats, darks)
        nfl = 0 if flats is None else _stack(flats).shape[0]
        ndk = 0 if darks is None else _stack(darks).shape[0]
        steps.append(f"flat/dark: (I - dark) / (flat - dark) with {nfl} flat and {ndk} dark "
                     "frame(s)" if flats is not None else
                     f"flat/dark: dark subtracted ({ndk} frame(s)); no flat frames")
        flags["flat_dark"] = True
        have_flat = flats is not None
    else:
        b = np.asarray(b, dtype=np.float32)
        steps.append("flat/dark: off" if not flat_dark else "flat/dark: none in the file")
        have_flat = False
    if log:
        if not have_flat:
            ref = float(np.percentile(b, 99.9))
            if not ref > 0:
                raise InputError("cannot take -log: the data are not positive (already line "
                                 "integrals? use --already-log)")
            b = b / np.float32(ref)
            steps.append(f"open beam: no flat frames, the data divided by their 99.9th "
                         f"percentile ({ref:.4g})")
        clipped = int(np.count_nonzero(b < _FLOOR))
        b = minus_log(b)
        steps.append("-log: line integrals -ln(t)" + (f" ({clipped} value(s) <= 0 clipped to "
                                                       f"t = {_FLOOR:g})" if clipped else ""))
        flags["log"] = True
    else:
        steps.append("-log: off (data taken as line integrals)")
    b = np.ascontiguousarray(b, dtype=np.float32)
    if not np.all(np.isfinite(b)):
        raise InputError(f"{int(np.count_nonzero(~np.isfinite(b)))} NaN or infinite value(s) "
                         "after preprocessing")
    Dx = b.shape[1]
    c, how = None, "none"
    if isinstance(center, str) and center.lower() == "auto":
        est = find_center(b, ang, center_method)
        c, how = est.center, f"auto:{est.method}"
        what = (f"registration of {len(est.details['pairs'])} pair(s) 180 degrees apart"
                if est.method == "registration" else
                f"entropy search over {est.details['candidates']} candidates")
        steps.append(f"centre: {c:.2f} px (auto, {what}; detector centre {Dx // 2}, offset "
                     f"{c - Dx // 2:+.2f})")
    elif center is not None:
        try:
            c = float(center)
        except (TypeError, ValueError):
            raise ConfigError(f"center must be 'auto' or pixels, got {center!r}") from None
        if center_source not in ("given", "stored"):
            raise ConfigError(f"center_source must be 'given' or 'stored', got {center_source!r}")
        how = center_source
        src = "given" if how == "given" else "stored in the file by preprocess-tomo"
        steps.append(f"centre: {c:.2f} px ({src}; detector centre {Dx // 2}, offset "
                     f"{c - Dx // 2:+.2f})")
    else:
        steps.append(f"centre: detector centre {Dx // 2} px (not searched)")
    return Preprocessed(b, ang, c, how, steps, nz, flags)
