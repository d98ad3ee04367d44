"""Support determination for CDI without a known support: the autocorrelation support and
shrink-wrap with guards (Marchesini et al., Phys. Rev. B 68, 140101(R) (2003)).

* Initial support (:func:`autocorrelation_support`): the autocorrelation ``|F^-1 I|`` of an
  isolated object is supported on the object's difference set, twice its extent, so a
  threshold of it is a loose support that contains the object wherever it sits.  Made robust
  for measured patterns: a masked centre (beamstop) is filled by a Guinier extrapolation
  ``I(q) ~ I0 exp(-a q^2)`` fitted on the ring of measured pixels around it (Guinier's
  small-angle law) instead of being left at zero (which subtracts a broad hump from the
  autocorrelation and leaks the threshold all over the array); the autocorrelation is smoothed
  by a Gaussian of ``smooth`` pixels; the threshold is relative to its peak measured outside the
  central ``exclude`` pixels (an uncorrelated background or noise floor puts a spike at the
  origin); only the connected component containing the centre is kept (aliased wrap-around
  lobes at the array edges and speckle islands go), holes are filled, and while that component
  touches the array border the threshold is doubled (the autocorrelation of an object sampled
  at least twice per axis never reaches the border).
* Update every ``every`` iterations (:class:`ShrinkWrap`): blur ``|estimate|`` with a Gaussian
  of width ``sigma`` (pixels) and keep what is above ``threshold`` times its maximum; ``sigma``
  shrinks by ``decay`` per update from ``sigma_start`` to ``sigma_end``.  Guards (our
  additions, see docs/cdi.md "Default recipe"): connected pieces smaller than
  ``min_component`` of the new support are dropped (fragmentation); an update may shrink the
  support to no less than ``min_area_fraction`` of its area (the threshold is lowered to keep
  the largest blurred values instead: "limited"), so a collapse takes several updates and is
  visible in the history; optionally (``rf_margin``) an update that raises the R-factor of the
  estimate cut to the new support by more than a relative margin is rejected.  ``history``
  gets ``sw_area`` (support pixels), ``sw_limited`` and ``sw_rejected`` (updates limited /
  rejected so far) at every recorded iteration; ``ShrinkWrap.events`` lists every update.
  ``start_thresholds`` gives each random start its own threshold (the default recipe runs 0.1
  and 0.05 and reports the start with the lower final R-factor).

:class:`ShrinkWrap` is run by the shared driver on its cadence, so it works with every algorithm
(ER, HIO, RAAR, OSS, GPS and the ones built later).
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import ndimage

from ..core.errors import ConfigError, InputError

log = logging.getLogger("phasekit")

#: default relative threshold of the autocorrelation support
AC_THRESHOLD = 0.04
#: default width (pixels) of the Gaussian that smooths the autocorrelation
AC_SMOOTH = 1.0


def _radius(shape) -> np.ndarray:
    """Distance of every pixel from the centre ``N // 2`` (pixels)."""
    r2 = np.zeros(shape)
    for ax, n in enumerate(shape):
        c = (np.arange(n) - n // 2).astype(float) ** 2
        r2 = r2 + c.reshape([-1 if a == ax else 1 for a in range(len(shape))])
    return np.sqrt(r2)


def fill_missing_centre(intensity, mask, *, ring: float = 4.0) -> np.ndarray:
    """Fill unmeasured pixels so the autocorrelation is not distorted by a beamstop or gaps.

    The unmeasured region connected to the centre (a beamstop) gets a Guinier extrapolation
    ``exp(c0 + c1 r^2)`` (``c1 < 0``) least-squares fitted to ``log I`` on the measured pixels
    within ``ring`` pixels outside it (the mean of that ring when the fit is not decreasing);
    other unmeasured pixels (gaps, bad pixels) get a Gaussian-weighted mean of their measured
    neighbours.  Measured pixels are unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> I = np.exp(-0.01 * np.add.outer(np.arange(-8, 8) ** 2, np.arange(-8, 8) ** 2))
    >>> m = np.ones_like(I, bool); m[7:10, 7:10] = False
    >>> bool(np.allclose(fill_missing_centre(I, m), I, rtol=1e-6))
    True
    """
    I = np.asarray(intensity, dtype=np.float64)
    m = np.asarray(mask, bool)
    out = np.where(m, I, 0.0)
    miss = ~m
    if not miss.any():
        return out
    r = _radius(I.shape)
    centre = tuple(n // 2 for n in I.shape)
    lab, _ = ndimage.label(miss)
    if lab[centre]:
        cen = lab == lab[centre]
        rb = r[cen].max()
        ring_px = m & (r > rb) & (r <= rb + ring)
        rr, vv = r[ring_px], I[ring_px]
        pos = vv > 0
        fill = None
        if pos.sum() >= 4:
            A = np.stack([np.ones(int(pos.sum())), rr[pos] ** 2], axis=1)
            coef, *_ = np.linalg.lstsq(A, np.log(vv[pos]), rcond=None)
            if coef[1] < 0:
                fill = np.exp(coef[0] + coef[1] * r[cen] ** 2)
        if fill is None:
            fill = np.full(int(cen.sum()), float(vv.mean()) if vv.size else 0.0)
        out[cen] = fill
        miss = miss & ~cen
    if miss.any():
        w = ndimage.gaussian_filter((~miss).astype(float), 2.0, mode="wrap")
        num = ndimage.gaussian_filter(np.where(miss, 0.0, out), 2.0, mode="wrap")
        out = np.where(miss, num / np.maximum(w, 1e-12), out)
    return out


def autocorrelation_support(intensity, mask=None, *, threshold: float = AC_THRESHOLD,
                            smooth: float = AC_SMOOTH, exclude: float = 1.5) -> np.ndarray:
    """Loose support from the thresholded autocorrelation of a centred pattern.

    Parameters
    ----------
    intensity : array (2-D or 3-D)
        Centred pattern (zero frequency at ``N // 2``; the support does not depend on where the
        zero frequency is, since ``|F^-1 I|`` ignores a shift of ``I``).
    mask : bool array, optional
        True = measured.  Unmeasured pixels are filled (:func:`fill_missing_centre`).
    threshold : float
        Fraction of the autocorrelation's peak (0.04).  Doubled while the support touches the
        array border.
    smooth : float
        Width (pixels) of the Gaussian that smooths the autocorrelation (a Gaussian window on
        the pattern), 1 px.
    exclude : float
        The peak is the maximum outside this radius (pixels) around the centre.

    Returns
    -------
    bool array, centred: the connected component of the thresholded autocorrelation that holds
    the centre, holes filled.

    Examples
    --------
    >>> import numpy as np
    >>> obj = np.zeros((64, 64)); obj[28:36, 26:38] = 1
    >>> I = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj)))) ** 2
    >>> s = autocorrelation_support(I)
    >>> 1.5 < s.sum() / obj.sum() < 6 and not s[:8, :8].any()
    True
    """
    I = np.asarray(intensity, dtype=np.float64)
    if not 0 < threshold < 1:
        raise ConfigError(f"autocorrelation threshold must be in (0, 1), got {threshold}")
    if not smooth >= 0:
        raise ConfigError(f"autocorrelation smoothing width must be >= 0, got {smooth}")
    m = np.ones(I.shape, bool) if mask is None else np.asarray(mask, bool)
    if not np.isfinite(np.where(m, I, 0.0)).all():
        raise InputError("cannot compute an autocorrelation support: the pattern is not finite")
    I = fill_missing_centre(I, m)
    grids = np.meshgrid(*[np.fft.fftshift(np.fft.fftfreq(n)) for n in I.shape], indexing="ij")
    window = np.exp(-2.0 * math.pi ** 2 * smooth ** 2 * sum(g * g for g in grids))
    ac = np.abs(np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(I * window))))
    r = _radius(I.shape)
    outside = r > exclude
    peak = float(ac[outside].max()) if outside.any() else float(ac.max())
    if not np.isfinite(ac).all() or peak <= 0:
        raise InputError("cannot compute an autocorrelation support: the pattern is zero or not finite")
    centre = tuple(n // 2 for n in I.shape)
    th = threshold
    while True:
        s = ac >= th * peak
        s[centre] = True
        lab, _ = ndimage.label(s)
        s = lab == lab[centre]
        touches = any(np.take(s, 0, axis=a).any() or np.take(s, -1, axis=a).any()
                      for a in range(s.ndim))
        if not touches or th >= 0.5:
            break
        th = min(2 * th, 0.5)
    if th != threshold:
        log.info("autocorrelation support touched the array border: threshold raised %g -> %g",
                 threshold, th)
    return ndimage.binary_fill_holes(s)


def gaussian_blur_work(x: torch.Tensor, sigma: float, ndim: int) -> torch.Tensor:
    """Periodic Gaussian blur (std ``sigma`` pixels) of a work-layout real tensor, by FFT.

    The input is real (the estimate's modulus) and the Gaussian is symmetric in ``k``, so the blur
    runs on the real FFT pair (``rfftn``/``irfftn``, the kernel's half spectrum): the real part of
    the complex-FFT blur within rounding, at about half its cost."""
    dims = tuple(range(-ndim, 0))
    shape = tuple(x.shape[-ndim:])
    if x.is_complex():
        x = x.real
    grids = [torch.fft.fftfreq(n, device=x.device, dtype=x.dtype) for n in shape[:-1]]
    grids.append(torch.fft.rfftfreq(shape[-1], device=x.device, dtype=x.dtype))
    q2 = sum(g * g for g in torch.meshgrid(*grids, indexing="ij"))
    kern = torch.exp(-2.0 * math.pi ** 2 * sigma ** 2 * q2)
    return torch.fft.irfftn(torch.fft.rfftn(x, dim=dims) * kern, s=shape, dim=dims)


class ShrinkWrapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(20, ge=1, description="iterations between updates")
    start: int = Field(0, ge=0, description="no update before this iteration")
    stop: int | None = Field(None, ge=0, description="no update after this iteration")
    sigma_start: float = Field(2.0, gt=0)
    sigma_end: float = Field(1.0, gt=0)
    decay: float = Field(0.97, gt=0, le=1)
    threshold: float = Field(0.1, gt=0, lt=1)
    min_area_fraction: float = Field(0.5, ge=0, le=1,
                                     description="an update keeps at least this fraction of the area")
    min_component: float = Field(0.02, ge=0, lt=1,
                                 description="drop connected pieces below this fraction of the support")
    rf_margin: float | None = Field(None, ge=0,
                                    description="reject an update that raises R_F by more (None: off)")
    start_thresholds: tuple[float, ...] | None = Field(
        None, min_length=1, description="threshold of start i: the i-th, cycled (None: threshold)")

    @field_validator("start_thresholds")
    @classmethod
    def _thresholds_in_range(cls, v):
        if v is not None and not all(0 < t < 1 for t in v):
            raise ValueError(f"start thresholds must be in (0, 1), got {list(v)}")
        return v


class ShrinkWrap:
    """Shrink-wrap support updater for the driver (``run(..., constraint_update=ShrinkWrap())``).

    Parameters
    ----------
    every : int
        Update the support every ``every`` iterations (counted over the whole chain), 20.
    start, stop : int
        First / last iteration at which updates may happen.
    sigma_start, sigma_end, decay : float
        Gaussian blur width in pixels, shrinking by ``decay`` per update to ``sigma_end``
        (2 -> 1 px, 3 % per update).
    threshold : float
        Fraction of the blurred maximum above which a pixel is in the support (0.1).
    min_area_fraction : float
        Guard: one update keeps at least this fraction of the current area (0.5); 0 turns it off.
    min_component : float
        Guard: connected pieces smaller than this fraction of the new support are dropped (0.02).
    rf_margin : float or None
        Guard: reject an update when the R-factor of the estimate cut to the new support exceeds
        that of the estimate by more than this relative margin (e.g. 0.25).  None (default):
        off, because while the support is loose HIO's estimate loses more than that on any cut
        (measured, docs/cdi.md).
    start_thresholds : tuple of float or None
        Start ``i`` of a multi-start run uses ``start_thresholds[i % len]`` instead of
        ``threshold`` (the driver calls :meth:`begin_start`); the default recipe uses (0.1, 0.05)
        with two starts and keeps the lower final R-factor (docs/cdi.md "Default recipe").

    Examples
    --------
    >>> sw = ShrinkWrap(every=10, threshold=0.15)
    >>> sw.due(10), sw.due(15)
    (True, False)
    """

    def __init__(self, every=20, *, start=0, stop=None, sigma_start=2.0, sigma_end=1.0, decay=0.97,
                 threshold=0.1, min_area_fraction=0.5, min_component=0.02, rf_margin=None,
                 start_thresholds=None):
        cfg = ShrinkWrapConfig(every=every, start=start, stop=stop, sigma_start=sigma_start,
                               sigma_end=sigma_end, decay=decay, threshold=threshold,
                               min_area_fraction=min_area_fraction, min_component=min_component,
                               rf_margin=rf_margin,
                               start_thresholds=start_thresholds)
        if cfg.sigma_end > cfg.sigma_start:
            raise ConfigError(f"shrinkwrap: sigma_end {cfg.sigma_end:g} exceeds sigma_start "
                              f"{cfg.sigma_start:g}")
        self.cfg = cfg
        self.reset()

    def reset(self):
        self.sigma = self.cfg.sigma_start
        self.n_updates = 0
        self.n_limited = 0
        self.n_rejected = 0
        self.start_index = 0
        self.events: list[dict] = []

    def due(self, iteration: int) -> bool:
        c = self.cfg
        if iteration < max(c.start, 1) or (c.stop is not None and iteration > c.stop):
            return False
        return iteration % c.every == 0

    def new_support(self, estimate: torch.Tensor, ndim: int) -> torch.Tensor:
        """The unguarded shrink-wrap support: blurred ``|estimate|`` above the threshold."""
        blurred = gaussian_blur_work(estimate.abs().to(estimate.real.dtype), self.sigma, ndim)
        return blurred >= self.current_threshold() * blurred.max()

    def _drop_fragments(self, new: torch.Tensor) -> torch.Tensor:
        if self.cfg.min_component <= 0:
            return new
        s = new.cpu().numpy()
        lab, n = ndimage.label(s)  # work layout: a piece split by the array edge counts twice,
        if n <= 1:                 # but then both halves are large (the object sits at the edge)
            return new
        sizes = ndimage.sum_labels(s, lab, np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= self.cfg.min_component * s.sum()) + 1
        return torch.from_numpy(np.isin(lab, keep)).to(new.device)

    def begin_start(self, index: int) -> None:
        """Called by the driver after :meth:`reset` at the start of random start ``index``."""
        self.start_index = int(index)

    def current_threshold(self) -> float:
        """The threshold of this start: ``start_thresholds[start_index % len]`` or ``threshold``."""
        c = self.cfg
        if c.start_thresholds is None:
            return c.threshold
        return float(c.start_thresholds[self.start_index % len(c.start_thresholds)])

    def update(self, problem, estimate: torch.Tensor) -> None:
        """Replace ``problem.support`` in place, through the guards (see the class doc)."""
        c = self.cfg
        area = int(problem.support.sum())
        blurred = gaussian_blur_work(estimate.abs().to(estimate.real.dtype), self.sigma, problem.ndim)
        new = blurred >= self.current_threshold() * blurred.max()
        new = self._drop_fragments(new)
        floor = min(int(math.ceil(c.min_area_fraction * area)), new.numel())
        action = "updated"
        if int(new.sum()) < floor:
            kth = torch.topk(blurred.flatten(), floor).values[-1]
            new = blurred >= kth
            action = "limited"
            self.n_limited += 1
        event = {"update": self.n_updates, "area_before": area, "area": int(new.sum())}
        if c.start_thresholds is not None:
            event["threshold"] = self.current_threshold()
        if not new.any():
            self._reject(event, "empty support")
            return
        if c.rf_margin is not None:
            rf_before = float(problem.rfactor(estimate))
            rf_after = float(problem.rfactor(torch.where(new, estimate, torch.zeros_like(estimate))))
            event.update(rf_before=rf_before, rf_after=rf_after)
            if rf_after > rf_before * (1.0 + c.rf_margin):
                self._reject(event, f"R_F {rf_before:.4g} -> {rf_after:.4g} on the new support")
                return
        problem.support.copy_(new)
        event["action"] = action
        self.events.append(event)
        self.n_updates += 1
        self.sigma = max(c.sigma_end, self.sigma * c.decay)

    def _reject(self, event: dict, why: str) -> None:
        self.n_rejected += 1
        event.update(action="rejected", reason=why)
        self.events.append(event)
        log.info("shrink-wrap update rejected (%s): support kept at %d pixels instead of %d",
                 why, event["area_before"], event["area"])

    def metrics(self, problem) -> dict:
        """Per-iteration history entries: support area and updates rejected or reverted so far."""
        return {"sw_area": float(problem.support.sum()), "sw_rejected": float(self.n_rejected),
                "sw_limited": float(self.n_limited)}

    def state_dict(self):
        return {"sigma": self.sigma, "n_updates": self.n_updates, "n_limited": self.n_limited,
                "n_rejected": self.n_rejected, "start_index": self.start_index, "events": [dict(e) for e in self.events]}

    def load_state_dict(self, d):
        self.sigma, self.n_updates = float(d["sigma"]), int(d["n_updates"])
        self.n_limited, self.n_rejected = int(d.get("n_limited", 0)), int(d.get("n_rejected", 0))
        self.start_index = int(d.get("start_index", 0))
        self.events = [dict(e) for e in d.get("events", [])]

    def to_dict(self):
        return self.cfg.model_dump()
