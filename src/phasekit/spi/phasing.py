"""Batch phasing of single-particle diffraction patterns: many patterns, one process.

Single-particle imaging (SPI) records one far-field pattern per particle hit, all of the same
shape; each is phased on its own (Xian et al. 2022, section 4.4: "shrinkwrap" plus VR-RK, HIO or
RAAR per PR772 pattern).  Here the patterns of a chunk and all their random starts run as one
``(B * starts, H, W)`` torch tensor, so one batched FFT pair serves every pattern (cheaper per
pattern than one FFT at a time, and the layout a GPU wants):

* **support**: the autocorrelation support of each pattern
  (:func:`phasekit.cdi.autocorrelation_support`, threshold 4 % of the peak, Xian et al. 2022 /
  Marchesini et al. 2003), then **shrink-wrap** every ``sw_every`` iterations: the estimate's
  modulus blurred by a Gaussian of ``sigma`` pixels (3 -> 1.5 px, shrinking 1 % per update),
  thresholded at ``sw_threshold`` (20 %) of its maximum (Marchesini et al., Phys. Rev. B 68,
  140101(R) (2003); values of the VR-RK paper's notes, which the paper does not give), with the
  guard of :class:`phasekit.cdi.ShrinkWrap` that one update keeps at least half of the area;
* **algorithms** (batched, the rules of :mod:`phasekit.operators.projections`): ``er``
  ``x <- P_S P_M x``; ``hio`` (Fienup 1982) and ``raar`` (Luke 2005) with ``beta = 0.9``, each
  followed by an ER tail of ``er_fraction`` (20 %) of the iterations, as
  :func:`phasekit.cdi.reconstruct`'s default recipe; ``vrrk`` (Xian et al. 2022, Algorithm 1)
  runs per pattern and start through :func:`phasekit.cdi.reconstruct` (its compiled Kaczmarz
  kernel) with the same support and shrink-wrap, ``vrrk_epochs`` epochs;
* **unmeasured pixels float** (the paper's "square root of the diffraction intensities is used as
  a reference for the missing pixels", reading (a) of its ambiguity: the estimate keeps its own
  Fourier value there);
* **starts**: ``starts`` random starts per pattern (random Fourier phases), ranked by their final
  R-factor on measured pixels; the best ``average`` (default half) of those whose R-factor is
  within ``average_rtol * R_best + average_atol`` (1.5, 0.01: a start stuck in a twin or
  stagnated state would blur the average) are re-centred (wrap-aware,
  circular centre of mass), aligned to the best (translation, twin image, global phase:
  :func:`phasekit.metrics.align`) and averaged;
* **PRTF** (Chapman et al., JOSA A 23, 1179 (2006); libspimage's form): the modulus of the mean
  unit phasor ``F_j / |F_j|`` of the aligned starts, ring-averaged over measured pixels (where
  no start has an exact zero of ``|F|``, which has no phase); the **resolution** is the first ring frequency (cycles per pixel) where it drops below ``1/e``
  (NaN with fewer than two averaged starts, or when it never drops);
* **status** per pattern (:data:`STATUS`): ``invalid_input`` (non-finite or negative measured
  pixels, or an empty pattern), ``empty_support``, ``diverged`` (a non-finite estimate or a final
  R-factor above ``max_rfactor``), ``error`` (any other exception, with its message); one bad
  pattern never sinks its batch;
* **seeds** are tied to the pattern's index in its stack: start ``j`` of pattern ``i`` draws from
  ``SeedSequence([seed, i])``, so the result does not depend on how patterns are chunked or which
  worker runs them.  Patterns in a chunk share batched FFTs; pocketfft transforms each slice
  alike whatever the batch, and all other operations are per pixel or per pattern, so the same
  pattern gives the same result in any chunk (tested to float32 round-off).

Patterns are centred (zero frequency at ``N // 2``); masks are True = measured; the images
returned are centred crops of ``crop`` pixels (the particle at the crop's centre).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import ConfigError, InputError
from ..core.fft import fftw, ifftw
from ..operators.projections import (
    apply_constraints,
    constraint_mask,
    modulus_projection,
)

__all__ = [
    "ALGORITHMS",
    "STATUS",
    "STATUS_CODES",
    "BatchResult",
    "PhasingConfig",
    "phase_batch",
    "phasor_prtf",
    "prtf_resolution",
    "recentre",
]

#: per-pattern status codes
STATUS = {0: "ok", 1: "invalid_input", 2: "empty_support", 3: "diverged", 4: "error"}
#: name -> code
STATUS_CODES = {v: k for k, v in STATUS.items()}
#: algorithms of :func:`phase_batch`
ALGORITHMS = ("hio", "raar", "er", "vrrk")


class PhasingConfig(BaseModel):
    """Parameters of :func:`phase_batch` (all JSON-able, so a task can carry them)."""

    model_config = ConfigDict(extra="forbid")
    algorithm: str = Field("hio", description="hio, raar, er or vrrk")
    iterations: int = Field(200, ge=1, description="iterations of hio/raar/er (ER tail included)")
    er_fraction: float = Field(0.2, ge=0, lt=1, description="ER tail after hio/raar")
    vrrk_epochs: int = Field(20, ge=1, description="VR-RK epochs (one epoch = one pass over the rows)")
    starts: int = Field(4, ge=1, description="random starts per pattern")
    average: int | None = Field(None, ge=1, description="best starts averaged (None: half, at least 1)")
    average_rtol: float = Field(1.5, ge=1, description="average only starts with R_F <= rtol R_F_best + atol")
    average_atol: float = Field(0.01, ge=0)
    beta: float = Field(0.9, gt=0, le=1)
    real: bool = True
    positive: bool = True
    ac_threshold: float = Field(0.04, gt=0, lt=1, description="autocorrelation support threshold")
    sw_every: int = Field(20, ge=1)
    sw_sigma_start: float = Field(3.0, gt=0)
    sw_sigma_end: float = Field(1.5, gt=0)
    sw_decay: float = Field(0.99, gt=0, le=1)
    sw_threshold: float = Field(0.2, gt=0, lt=1)
    sw_min_area_fraction: float = Field(0.5, ge=0, le=1)
    crop: int | None = Field(64, ge=4, description="side of the centred image crop (None: full)")
    clip_negative: bool = Field(False, description="clip negative pixels instead of rejecting")
    max_rfactor: float = Field(1.0, gt=0, description="final R_F above this: diverged")

    def model_post_init(self, __context) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown SPI phasing algorithm {self.algorithm!r} "
                              f"(expected one of {', '.join(ALGORITHMS)})")
        if self.sw_sigma_end > self.sw_sigma_start:
            raise ConfigError("sw_sigma_end exceeds sw_sigma_start")

    @classmethod
    def make(cls, config=None, **overrides) -> PhasingConfig:
        """A config from None, a dict or a config, with keyword overrides; one-line errors."""
        if isinstance(config, PhasingConfig):
            base = config.model_dump()
        else:
            base = dict(config or {})
        base.update(overrides)
        try:
            return cls(**base)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(v) for v in err.get("loc", ())) or "config"
            raise ConfigError(f"phasing option {loc}: {err.get('msg')}") from None

    @property
    def n_average(self) -> int:
        return min(self.starts, self.average or max(1, self.starts // 2))


@dataclass
class BatchResult:
    """Per-pattern outputs of :func:`phase_batch` (first axis = pattern).

    ``image`` (B, c, c) complex64 centred crops of the averaged reconstruction; ``support``
    (B, c, c) bool (the best start's); ``rfactor`` (B,) R-factor of the averaged image on measured
    pixels; ``rfactor_starts`` (B, starts); ``prtf`` (B, n_rings); ``resolution`` (B,) cycles per
    pixel (NaN: undefined); ``support_area`` (B,); ``status`` (B,) int8 (:data:`STATUS`);
    ``message`` list of str; ``index`` (B,) int64 position in the stack; ``wall_s`` seconds for
    the whole batch.
    """

    image: np.ndarray
    support: np.ndarray
    rfactor: np.ndarray
    rfactor_starts: np.ndarray
    prtf: np.ndarray
    resolution: np.ndarray
    support_area: np.ndarray
    status: np.ndarray
    message: list
    index: np.ndarray
    wall_s: float = 0.0
    config: dict = field(default_factory=dict)

    ARRAYS = ("image", "support", "rfactor", "rfactor_starts", "prtf", "resolution",
              "support_area", "status", "index")

    def __len__(self) -> int:
        return int(self.status.shape[0])

    @property
    def ok(self) -> np.ndarray:
        return self.status == 0

    def status_counts(self) -> dict:
        """``{status name: count}`` over the batch."""
        return {STATUS[c]: int(np.count_nonzero(self.status == c)) for c in STATUS
                if np.any(self.status == c)}

    @classmethod
    def concatenate(cls, parts: list[BatchResult]) -> BatchResult:
        """Join results in the given order."""
        if not parts:
            raise InputError("no batch results to join")
        kw = {k: np.concatenate([getattr(p, k) for p in parts]) for k in cls.ARRAYS}
        return cls(**kw, message=[m for p in parts for m in p.message],
                   wall_s=float(sum(p.wall_s for p in parts)), config=dict(parts[0].config))


# --------------------------------------------------------------------------- helpers
def _rings(shape) -> tuple[np.ndarray, int]:
    ny, nx = shape
    fy = (np.arange(ny) - ny // 2) / ny
    fx = (np.arange(nx) - nx // 2) / nx
    fr = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    df = 1.0 / max(ny, nx)
    nb = int(math.floor(0.5 / df + 1e-9)) + 1
    return np.floor(fr / df + 0.5).astype(np.int64), nb


def phasor_prtf(images, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """PRTF of aligned reconstructions: ring average of ``|<F_j / |F_j|>_j|`` on measured pixels.

    Parameters
    ----------
    images : array (n, H, W)
        Aligned, centred reconstructions.
    mask : bool array (H, W), optional
        True = measured.

    Returns
    -------
    freq, curve : numpy.ndarray
        Ring frequencies (cycles per pixel) and the PRTF (NaN for a ring without pixels).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((2, 16, 16)); x[:, 6:10, 6:10] = 1
    >>> f, c = phasor_prtf(x)
    >>> bool(np.nanmin(c) > 0.99)
    True
    """
    imgs = np.asarray(images)
    F = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(imgs, axes=(-2, -1))), axes=(-2, -1))
    mag = np.abs(F)
    ph = np.where(mag > 0, F / np.where(mag > 0, mag, 1.0), 0.0)
    p = np.abs(ph.mean(axis=0))
    idx, nb = _rings(p.shape)
    sel = np.ones(p.shape, bool) if mask is None else np.asarray(mask, bool)
    sel = sel & (idx < nb) & (mag.min(axis=0) > 1e-6 * max(float(mag.max()), 1e-300))  # no phase at zeros
    sums = np.bincount(idx[sel], weights=p[sel], minlength=nb)[:nb]
    counts = np.bincount(idx[sel], minlength=nb)[:nb]
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return np.arange(nb) / max(p.shape), curve


def prtf_resolution(freq, curve, threshold: float = 1.0 / math.e) -> float:
    """First ring frequency (beyond the centre) where the PRTF drops below ``threshold``.

    Returns NaN when the PRTF never drops below it.

    Examples
    --------
    >>> prtf_resolution([0, .1, .2, .3], [1, .9, .3, .1])
    0.2
    """
    f = np.asarray(freq, float)
    c = np.asarray(curve, float)
    for k in range(1, len(c)):
        if np.isfinite(c[k]) and c[k] < threshold:
            return float(f[k])
    return float("nan")


def recentre(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Roll ``image`` so its circular centre of mass (of ``|x|^2``) sits at ``N // 2``.

    Wrap-aware: an object split across the array edges is centred whole (the centre is the
    angle of ``sum w exp(2 pi i r / N)`` per axis).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((16, 16)); x[0, 0] = x[-1, -1] = 1
    >>> y, s = recentre(x)
    >>> bool(y[8, 8] + y[7, 7] == 2)
    True
    """
    w = np.abs(image) ** 2
    shifts = []
    for ax in range(2):
        n = image.shape[ax]
        prof = w.sum(axis=1 - ax)
        ang = 2 * np.pi * np.arange(n) / n
        z = (prof * np.exp(1j * ang)).sum()
        c = (np.angle(z) % (2 * np.pi)) * n / (2 * np.pi) if abs(z) > 0 else n // 2
        shifts.append(int(round(n // 2 - c)) % n)
    return np.roll(image, shifts, axis=(0, 1)), (shifts[0], shifts[1])


def _crop(a: np.ndarray, c: int | None) -> np.ndarray:
    if c is None or c >= min(a.shape[-2:]):
        return a
    ny, nx = a.shape[-2:]
    y0, x0 = ny // 2 - c // 2, nx // 2 - c // 2
    return a[..., y0:y0 + c, x0:x0 + c]


def _check_pattern(I: np.ndarray, m: np.ndarray, clip_negative: bool) -> str | None:
    vals = I[m]
    if vals.size == 0:
        return "no measured pixel"
    if not np.isfinite(vals).all():
        return f"{int(np.count_nonzero(~np.isfinite(vals)))} measured pixels are NaN or infinite"
    if not clip_negative and (vals < 0).any():
        return (f"{int(np.count_nonzero(vals < 0))} measured pixels are negative "
                f"(min {float(vals.min()):.3g}); use clip_negative")
    if not (np.clip(vals, 0, None) > 0).any():
        return "empty pattern (no photon on a measured pixel)"
    return None


def _pattern_seed(seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), int(index)])


# --------------------------------------------------------------------------- the batched loop
def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    grids = [torch.fft.fftfreq(n, dtype=x.dtype) for n in x.shape[-2:]]
    q2 = grids[0][:, None] ** 2 + grids[1][None, :] ** 2
    kern = torch.exp(-2.0 * math.pi ** 2 * sigma ** 2 * q2)
    return torch.fft.ifft2(torch.fft.fft2(x) * kern).real


def _shrinkwrap(x: torch.Tensor, support: torch.Tensor, sigma: float, cfg: PhasingConfig) -> torch.Tensor:
    """One batched shrink-wrap update (per image threshold, area floor as ShrinkWrap's guard)."""
    blurred = _blur(x.abs(), sigma)
    flat = blurred.flatten(1)
    mx = flat.max(dim=1).values
    new = flat >= cfg.sw_threshold * mx[:, None]
    area = support.flatten(1).sum(dim=1)
    floor = torch.clamp(torch.ceil(cfg.sw_min_area_fraction * area).long(), min=1)
    short = new.sum(dim=1) < floor
    if bool(short.any()):
        srt = torch.sort(flat[short], dim=1, descending=True).values
        kth = srt.gather(1, (floor[short] - 1)[:, None])
        new[short] = flat[short] >= kth
    return new.reshape(support.shape)


def _iterate(amp, measured, support, x, cfg: PhasingConfig):
    """Run the projection schedule in place; returns the final (x, support, rfactor)."""
    n = cfg.iterations
    tail = int(round(cfg.er_fraction * n)) if cfg.algorithm in ("hio", "raar") else 0
    main = n - tail
    beta = cfg.beta
    sigma = cfg.sw_sigma_start
    denom = (amp * measured).flatten(1).sum(dim=1).clamp_min(1e-30)
    for it in range(1, n + 1):
        X = fftw(x, 2)
        y = ifftw(modulus_projection(X, amp, measured), 2)
        if cfg.real:
            y = y.real.to(x.dtype)
        alg = cfg.algorithm if it <= main else "er"
        if alg == "er":
            x = apply_constraints(y, support, real=cfg.real, positive=cfg.positive)
        elif alg == "hio":
            g = constraint_mask(y, support, positive=cfg.positive)
            x = torch.where(g, y, x - beta * y)
        else:  # raar
            g = constraint_mask(2 * y - x, support, positive=cfg.positive)
            x = torch.where(g, y, beta * x + (1 - 2 * beta) * y)
        if it % cfg.sw_every == 0 and it < n:
            support = _shrinkwrap(x * support, support, sigma, cfg)
            sigma = max(cfg.sw_sigma_end, sigma * cfg.sw_decay)
    x = apply_constraints(x, support, real=cfg.real, positive=cfg.positive)
    X = fftw(x, 2)
    rf = ((X.abs() - amp).abs() * measured).flatten(1).sum(dim=1) / denom
    return x, support, rf


def _vrrk_start(I, m, support_c, cfg: PhasingConfig, ss: np.random.SeedSequence):
    from ..cdi import ShrinkWrap, reconstruct  # public CDI API (allowed for spi)

    every = max(1, cfg.vrrk_epochs // 5)
    sw = ShrinkWrap(every=every, sigma_start=cfg.sw_sigma_start, sigma_end=cfg.sw_sigma_end,
                    decay=cfg.sw_decay, threshold=cfg.sw_threshold,
                    min_area_fraction=cfg.sw_min_area_fraction)
    res = reconstruct(I, support_c, algorithm="vrrk", n_iter=cfg.vrrk_epochs, mask=m, real=cfg.real,
                      positive=cfg.positive, starts=1, rng=np.random.default_rng(ss),
                      shrinkwrap=sw, progress=False, clip_negative=True)
    return np.asarray(res.image), np.asarray(res.support, bool)


def phase_batch(intensity, mask=None, *, config=None, indices=None, seed: int = 0,
                progress: bool = False, **options) -> BatchResult:
    """Phase a batch of centred SPI patterns, every start of every pattern in one tensor.

    Parameters
    ----------
    intensity : array (B, H, W)
        Photon counts or intensities, zero frequency at ``N // 2``.
    mask : bool array (H, W) or (B, H, W), optional
        True = measured (gaps, beamstop and bad pixels False).
    config : PhasingConfig or dict, optional
        Parameters (see :class:`PhasingConfig`); ``**options`` override single fields.
    indices : int array (B,), optional
        Index of every pattern in its stack (default ``0..B-1``): the seeds derive from it.
    seed : int
        Root seed of the run.
    progress : bool
        A tqdm bar over the VR-RK patterns (the batched loop has no per-pattern steps).

    Returns
    -------
    BatchResult

    Examples
    --------
    >>> import numpy as np
    >>> obj = np.zeros((32, 32)); obj[13:19, 14:18] = 1
    >>> I = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2
    >>> r = phase_batch(np.stack([I, np.full_like(I, np.nan)]), iterations=100, starts=2, crop=None)
    >>> [r.status_counts()[k] for k in ("ok", "invalid_input")]
    [1, 1]
    """
    cfg = PhasingConfig.make(config, **options)
    t0 = time.perf_counter()
    I = np.asarray(intensity)
    if I.ndim == 2:
        I = I[None]
    if I.ndim != 3 or I.dtype.kind not in "biuf":
        raise InputError(f"patterns must be a numeric (B, H, W) array, got shape {I.shape}")
    B, H, W = I.shape
    I = I.astype(np.float32, copy=False)
    if mask is None:
        M = np.ones((B, H, W), bool)
    else:
        mk = np.asarray(mask, bool)
        if mk.shape == (H, W):
            M = np.broadcast_to(mk, (B, H, W))
        elif mk.shape == (B, H, W):
            M = mk
        else:
            raise InputError(f"mask shape {mk.shape} fits neither ({H}, {W}) nor ({B}, {H}, {W})")
    idx = np.arange(B, dtype=np.int64) if indices is None else np.asarray(indices, np.int64).reshape(-1)
    if idx.shape != (B,):
        raise InputError(f"{idx.size} indices for {B} patterns")
    S, c = cfg.starts, cfg.crop if cfg.crop is None else min(cfg.crop, H, W)
    cs = (H, W) if c is None else (c, c)
    _, nb = _rings((H, W))
    out = BatchResult(image=np.zeros((B, *cs), np.complex64), support=np.zeros((B, *cs), bool),
                      rfactor=np.full(B, np.nan, np.float32), rfactor_starts=np.full((B, S), np.nan, np.float32),
                      prtf=np.full((B, nb), np.nan, np.float32), resolution=np.full(B, np.nan, np.float32),
                      support_area=np.zeros(B, np.int64), status=np.zeros(B, np.int8),
                      message=[""] * B, index=idx, config=cfg.model_dump())

    def fail(b, code, msg):
        out.status[b] = STATUS_CODES[code]
        out.message[b] = msg

    # ---- validate and find the initial supports
    from ..cdi import autocorrelation_support

    supports = {}
    for b in range(B):
        why = _check_pattern(I[b], M[b], cfg.clip_negative)
        if why:
            fail(b, "invalid_input", why)
            continue
        Ib = np.where(M[b], np.clip(I[b], 0, None), 0.0)
        try:
            s = autocorrelation_support(Ib, M[b], threshold=cfg.ac_threshold)
        except InputError as exc:
            fail(b, "empty_support", str(exc))
            continue
        if int(s.sum()) < 2:
            fail(b, "empty_support", "the autocorrelation support has fewer than 2 pixels")
            continue
        supports[b] = s
    good = sorted(supports)
    starts_img: dict[int, np.ndarray] = {}
    starts_sup: dict[int, np.ndarray] = {}
    starts_rf: dict[int, np.ndarray] = {}
    try:
        if good and cfg.algorithm != "vrrk":
            amp = np.stack([np.sqrt(np.where(M[b], np.clip(I[b], 0, None), 0.0)) for b in good])
            amp_t = torch.from_numpy(np.fft.ifftshift(amp, axes=(-2, -1)).astype(np.float32))
            amp_t = amp_t.repeat_interleave(S, dim=0)
            meas_t = torch.from_numpy(np.ascontiguousarray(
                np.fft.ifftshift(np.stack([M[b] for b in good]), axes=(-2, -1)))).repeat_interleave(S, dim=0)
            sup_t = torch.from_numpy(np.ascontiguousarray(np.fft.ifftshift(
                np.stack([supports[b] for b in good]), axes=(-2, -1)))).repeat_interleave(S, dim=0)
            phases = np.stack([np.random.default_rng(_pattern_seed(seed, idx[b])).uniform(
                0, 2 * np.pi, (S, H, W)) for b in good]).reshape(-1, H, W)
            X0 = amp_t * torch.exp(1j * torch.from_numpy(phases.astype(np.float32)))
            x0 = torch.fft.ifft2(X0, norm="ortho")
            x0 = apply_constraints(x0.real.to(x0.dtype) if cfg.real else x0, sup_t,
                                   real=cfg.real, positive=cfg.positive)
            with torch.no_grad():
                x, sup, rf = _iterate(amp_t, meas_t, sup_t, x0, cfg)
            x = np.fft.fftshift(x.numpy(), axes=(-2, -1)).reshape(len(good), S, H, W)
            sup = np.fft.fftshift(sup.numpy(), axes=(-2, -1)).reshape(len(good), S, H, W)
            rf = rf.numpy().reshape(len(good), S)
            for k, b in enumerate(good):
                starts_img[b], starts_sup[b], starts_rf[b] = x[k], sup[k], rf[k]
        elif good:
            from tqdm.auto import tqdm

            for b in tqdm(good, desc="vrrk", unit="pattern", disable=not progress, leave=False):
                Ib = np.where(M[b], np.clip(I[b], 0, None), 0.0)
                sss = _pattern_seed(seed, idx[b]).spawn(S)
                try:
                    pairs = [_vrrk_start(Ib, M[b], supports[b], cfg, sss[j]) for j in range(S)]
                except Exception as exc:  # noqa: BLE001 - one pattern must not sink the batch
                    fail(b, "error", f"{type(exc).__name__}: {exc}".splitlines()[0])
                    continue
                imgs = np.stack([p[0] for p in pairs])
                amp = np.sqrt(Ib)
                Fm = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(imgs, axes=(-2, -1)),
                                                        norm="ortho"), axes=(-2, -1)))
                rfs = (np.abs(Fm - amp) * M[b]).sum(axis=(1, 2)) / max(float((amp * M[b]).sum()), 1e-30)
                starts_img[b], starts_sup[b] = imgs, np.stack([p[1] for p in pairs])
                starts_rf[b] = rfs.astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - report on every pattern instead of raising
        for b in good:
            if out.status[b] == 0:
                fail(b, "error", f"{type(exc).__name__}: {exc}".splitlines()[0])
        starts_img.clear()

    # ---- per pattern: rank, align, average, PRTF
    from ..metrics import align

    for b in list(starts_img):
        try:
            imgs, sups, rfs = starts_img[b], starts_sup[b], starts_rf[b]
            out.rfactor_starts[b] = rfs
            if not np.isfinite(imgs).all() or not np.isfinite(rfs).any():
                fail(b, "diverged", "non-finite estimate")
                continue
            order = np.argsort(np.where(np.isfinite(rfs), rfs, np.inf), kind="stable")
            best = order[: cfg.n_average]
            lim = cfg.average_rtol * float(rfs[best[0]]) + cfg.average_atol
            best = [j for j in best if rfs[j] <= lim] or [best[0]]
            ref, sh = recentre(imgs[best[0]])
            sup = np.roll(sups[best[0]], sh, axis=(0, 1))
            if not sup.any() or not np.abs(ref).max() > 0:
                fail(b, "empty_support", "the support shrank to nothing")
                continue
            aligned = [ref]
            for j in best[1:]:
                aligned.append(align(imgs[j], ref, twin=True, phase=True, subpixel=False)[0])
            aligned = np.stack(aligned)
            avg = aligned.mean(axis=0)
            avg, sh2 = recentre(avg)
            sup = np.roll(sup, sh2, axis=(0, 1))
            aligned = np.roll(aligned, sh2, axis=(1, 2))
            Fm = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(avg), norm="ortho")))
            amp = np.sqrt(np.where(M[b], np.clip(I[b], 0, None), 0.0))
            r = float((np.abs(Fm - amp) * M[b]).sum() / max(float((amp * M[b]).sum()), 1e-30))
            out.rfactor[b] = r
            if len(best) >= 2:
                f, curve = phasor_prtf(aligned, M[b])
                out.prtf[b] = curve[:nb]
                out.resolution[b] = prtf_resolution(f, curve)
            out.image[b] = _crop(avg, c).astype(np.complex64)
            out.support[b] = _crop(sup, c)
            out.support_area[b] = int(sup.sum())
            if not math.isfinite(r) or float(rfs[best[0]]) > cfg.max_rfactor:
                fail(b, "diverged", f"final R_F {float(rfs[best[0]]):.3g} above {cfg.max_rfactor:g}")
            elif not np.abs(out.image[b]).max() > 0:
                fail(b, "empty_support", "the crop around the particle is blank")
        except Exception as exc:  # noqa: BLE001
            fail(b, "error", f"{type(exc).__name__}: {exc}".splitlines()[0])
    out.wall_s = time.perf_counter() - t0
    return out
