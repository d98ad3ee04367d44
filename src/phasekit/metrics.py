"""Quality metrics for phase retrieval and alignment for its trivial ambiguities.

Everything follows ``docs/conventions.md``: arrays are centred (centre index ``N // 2`` on every
axis), the Fourier transform is the unitary centred ``fftc(x) = fftshift(fftn(ifftshift(x),
norm="ortho"))``, detector masks are boolean with ``True`` = measured pixel, and bad input raises
:class:`phasekit.core.errors.InputError`.  Inputs may be NumPy arrays or torch tensors; results
are NumPy arrays or Python floats.

Contents
--------
Fourier-space agreement with the data
    :func:`rfactor` (thesis eq. (2.21), absolute value restored), :func:`rfactor_image`,
    :func:`residual_map` (the per-pixel residual ``||F u| - b|`` of thesis Fig. 2.2).
Real-space agreement with a reference
    :func:`relative_error` (VR-RK paper, ``||x - x_hat|| / ||x||``), :func:`r_real`
    (thesis eq. (2.31)), both after :func:`align`.
Alignment for the trivial ambiguities of Fourier phase retrieval
    :func:`register_translation` (FFT cross-correlation, then matrix-multiply DFT upsampling
    around the peak in the manner of Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156
    (2008)), :func:`shift_image`, :func:`twin_image`, :func:`align`.
Resolution
    :func:`frc` / :func:`fsc`, :func:`frc_threshold_crossing`, :func:`prtf`,
    :func:`ring_average`.

The noise level ``R_noise`` (thesis eq. (2.30)) lives in :mod:`phasekit.sim.noise`.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .core.device import to_numpy
from .core.errors import ConfigError, InputError

__all__ = [
    "rfactor",
    "rfactor_image",
    "residual_map",
    "register_translation",
    "shift_image",
    "twin_image",
    "align",
    "relative_error",
    "r_real",
    "frc",
    "fsc",
    "frc_threshold_crossing",
    "prtf",
    "ring_average",
]


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _array(x, name: str, *, allow_complex: bool = True) -> np.ndarray:
    """Convert to a finite, non-empty NumPy array (float64 / complex128)."""
    if x is None:
        raise InputError(f"{name} is None")
    try:
        arr = np.asarray(to_numpy(x))
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputError(f"{name} cannot be converted to an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    if np.iscomplexobj(arr):
        if not allow_complex:
            raise InputError(f"{name} must be real, got dtype {arr.dtype}")
        arr = arr.astype(np.complex128, copy=False)
    else:
        arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or Inf")
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{na} shape {a.shape} != {nb} shape {b.shape}")


def _mask(mask, shape: tuple, against: str) -> np.ndarray:
    """Boolean measured-pixel mask of ``shape`` (``None`` -> all measured)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(to_numpy(mask))
    if m.shape != tuple(shape):
        raise InputError(f"mask shape {m.shape} != {against} shape {tuple(shape)}")
    if m.dtype != bool:
        if not (np.issubdtype(m.dtype, np.number)):
            raise InputError(f"mask must be boolean (True = measured), got dtype {m.dtype}")
        if not np.all(np.isfinite(m)):
            raise InputError("mask contains NaN or Inf")
        m = m != 0
    if not m.any():
        raise InputError("mask selects no pixel (True = measured); nothing to compare")
    return m


def _amplitudes_from_intensity(intensity, name: str = "intensity", *,
                               clip_negative: bool = False) -> np.ndarray:
    inten = _array(intensity, name, allow_complex=False)
    if np.any(inten < 0):
        if not clip_negative:
            raise InputError(
                f"{name} has negative values (min {inten.min():g}); "
                "pass clip_negative=True to clip background-subtracted data to zero")
        inten = np.clip(inten, 0.0, None)
    return np.sqrt(inten)


def _fftc(x: np.ndarray) -> np.ndarray:
    """Centred unitary FFT over all axes (NumPy twin of :func:`phasekit.core.fftc`)."""
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x), norm="ortho"))


def _as_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Fourier-space metrics
# --------------------------------------------------------------------------------------------
def rfactor(amplitude, measured_amplitude, mask=None) -> float:
    r"""Fourier R-factor over the measured pixels.

    Pham thesis (2020) eq. (2.21), §2.3.1, with the absolute value that the printed formula lacks
    (our reading; the thesis also calls it "relative error"):

    .. math:: R_F = \frac{\sum_{i\in K} \big|\,|a_i| - b_i\big|}{\sum_{i\in K} b_i},

    where :math:`K` is the set of measured pixels.  Multiply by 100 to quote a percentage.

    Parameters
    ----------
    amplitude : array_like or torch.Tensor
        Model amplitudes :math:`|\mathcal F u|` (or the complex field :math:`\mathcal F u`, whose
        modulus is taken).
    measured_amplitude : array_like or torch.Tensor
        Measured amplitudes :math:`b = \sqrt I`, real and non-negative, same shape and scale.
    mask : array_like of bool, optional
        True = measured pixel.  Unmeasured pixels (beamstop, gaps) are excluded.

    Returns
    -------
    float
        The R-factor (0 for a perfect fit).

    Raises
    ------
    InputError
        Shape mismatch, NaN/Inf, negative or complex measured amplitudes, an empty mask, or
        measured amplitudes that sum to zero on the mask.
    """
    a = np.abs(_array(amplitude, "amplitude"))
    b = _array(measured_amplitude, "measured_amplitude", allow_complex=False)
    _same_shape(a, b, "amplitude", "measured_amplitude")
    if np.any(b < 0):
        raise InputError(f"measured_amplitude has negative values (min {b.min():g})")
    m = _mask(mask, b.shape, "measured_amplitude")
    denom = float(b[m].sum())
    if denom <= 0:
        raise InputError("measured_amplitude sums to zero over the measured pixels")
    return float(np.abs(a[m] - b[m]).sum() / denom)


def rfactor_image(image, intensity, mask=None, *, clip_negative: bool = False) -> float:
    r"""R-factor of a real-space image against measured intensities.

    Computes :func:`rfactor` of :math:`|\mathrm{fftc}(u)|` against :math:`b=\sqrt I` (thesis eq.
    (2.21)).  With the unitary transform the image must be at the scale of the data, i.e. a
    simulated pattern is ``I = |fftc(u)|**2`` (conventions).  The thesis evaluates this on the
    support-projected image :math:`P_S(\mathcal F^{-1} z)`; pass that image here.

    Parameters
    ----------
    image : array_like or torch.Tensor
        Real or complex image ``u``, centred, same shape as ``intensity``.
    intensity : array_like or torch.Tensor
        Measured intensities (zero frequency at ``N // 2``), finite and non-negative.
    mask : array_like of bool, optional
        True = measured pixel.
    clip_negative : bool, default False
        Clip negative intensities to zero instead of raising.

    Returns
    -------
    float
    """
    u = _array(image, "image")
    b = _amplitudes_from_intensity(intensity, clip_negative=clip_negative)
    _same_shape(u, b, "image", "intensity")
    return rfactor(_fftc(u), b, mask)


def residual_map(image, intensity, mask=None, *, clip_negative: bool = False) -> np.ndarray:
    r"""Per-pixel Fourier residual :math:`\big|\,|\mathcal F u| - b\big|`.

    The residual image of thesis Fig. 2.2 (third column; "Res = ‖|Fu| − b‖" in §2.4.1, printed
    with a missing bar); its sum over the
    measured pixels divided by :math:`\sum b` is :func:`rfactor_image`.

    Parameters
    ----------
    image : array_like or torch.Tensor
        Real or complex image ``u``, same shape as ``intensity``.
    intensity : array_like or torch.Tensor
        Measured intensities, finite and non-negative.
    mask : array_like of bool, optional
        True = measured pixel; the map is 0 at unmeasured pixels.
    clip_negative : bool, default False
        Clip negative intensities to zero instead of raising.

    Returns
    -------
    numpy.ndarray
        float64 array of the shape of ``intensity``.
    """
    u = _array(image, "image")
    b = _amplitudes_from_intensity(intensity, clip_negative=clip_negative)
    _same_shape(u, b, "image", "intensity")
    m = _mask(mask, b.shape, "intensity")
    res = np.abs(np.abs(_fftc(u)) - b)
    res[~m] = 0.0
    return res


# --------------------------------------------------------------------------------------------
# translation, twin, alignment
# --------------------------------------------------------------------------------------------
def _shift_vector(shift, ndim: int) -> np.ndarray:
    s = np.asarray(to_numpy(shift), dtype=np.float64).reshape(-1)
    if s.size == 1 and ndim > 1:
        s = np.full(ndim, float(s[0]))
    if s.size != ndim:
        raise InputError(f"shift has {s.size} components but the image has {ndim} axes")
    if not np.all(np.isfinite(s)):
        raise InputError("shift contains NaN or Inf")
    return s


def _phase_ramp_shift(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``x(r - s)`` by a Fourier phase ramp (periodic); complex result."""
    X = np.fft.fftn(x)
    for ax, (n, sa) in enumerate(zip(x.shape, s)):
        if sa == 0:
            continue
        k = np.fft.fftfreq(n)  # cycles per pixel
        ramp = np.exp(-2j * np.pi * k * sa)
        shape = [1] * x.ndim
        shape[ax] = n
        X = X * ramp.reshape(shape)
    return np.fft.ifftn(X)


def shift_image(image, shift) -> np.ndarray:
    r"""Shift an image by a (sub-pixel) vector with a Fourier phase ramp.

    Returns :math:`x(\mathbf r - \mathbf s)`, i.e. the content moves by ``+shift`` pixels along
    each axis, with periodic wrap-around: :math:`\hat x(\mathbf k)\,e^{-2\pi i\,\mathbf k\cdot
    \mathbf s/N}`.  Integer shifts equal ``np.roll(image, shift)``.  A real input gives a real
    output (the real part; for even ``N`` the Nyquist term of a fractional shift is not
    Hermitian, and taking the real part is the usual choice).

    Parameters
    ----------
    image : array_like or torch.Tensor
        Real or complex array of any number of axes.
    shift : float or sequence of float
        Shift per axis in pixels (a scalar applies to every axis).

    Returns
    -------
    numpy.ndarray
        float64 for real input, complex128 for complex input.
    """
    x = _array(image, "image")
    s = _shift_vector(shift, x.ndim)
    if np.all(s == np.round(s)):
        out = np.roll(x, tuple(int(v) for v in np.round(s)), axis=tuple(range(x.ndim)))
        return out.copy()
    out = _phase_ramp_shift(x, s)
    return out.real.copy() if not np.iscomplexobj(x) else out


def twin_image(image) -> np.ndarray:
    r"""Conjugate inversion (twin image) about the array centre.

    :math:`x(\mathbf r)\mapsto \overline{x(-\mathbf r)}`, with :math:`\mathbf r` measured from the
    centre index ``c = N // 2``: index ``c + k`` goes to ``c - k`` (mod ``N``) on every axis.  For
    odd ``N`` this is a plain reversal; for even ``N`` index 0 (which is ``c - N/2``) maps to
    itself.  With this choice ``fftc(twin_image(x)) == conj(fftc(x))`` exactly, so the twin has
    the same Fourier modulus.

    Parameters
    ----------
    image : array_like or torch.Tensor

    Returns
    -------
    numpy.ndarray
    """
    x = _array(image, "image")
    return _twin(x)


def _twin(x: np.ndarray) -> np.ndarray:
    axes = tuple(range(x.ndim))
    # flip maps i -> N-1-i; a roll by 2c-N+1 then maps i -> (2c - i) mod N.
    rolls = tuple(2 * (n // 2) - n + 1 for n in x.shape)
    out = np.roll(np.flip(x, axis=axes), rolls, axis=axes)
    return np.conj(out) if np.iscomplexobj(out) else out.copy()


def _register(reference: np.ndarray, moving: np.ndarray, upsample: int):
    r"""Return (shift, peak) with ``peak`` the complex cross-correlation at ``shift``.

    The cross-correlation :math:`C(\mathbf s)=\sum_r x_{ref}(r)\,\overline{x_{mov}(r-\mathbf s)}`
    is computed for integer ``s`` by FFT; around its modulus peak it is re-evaluated on a grid of
    step ``1/upsample`` (spanning ±0.75 pixel) as a separable matrix-multiply DFT
    :math:`C(\mathbf s)=\sum_k X(k)\,e^{2\pi i k s/N}`, one matrix per axis.
    """
    R = np.fft.fftn(reference)
    M = np.fft.fftn(moving)
    X = R * np.conj(M)
    cc = np.fft.ifftn(X)
    peak_idx = np.unravel_index(int(np.argmax(np.abs(cc))), cc.shape)
    shape = np.array(cc.shape)
    s0 = np.array(peak_idx, dtype=np.float64)
    s0 = np.where(s0 > shape // 2, s0 - shape, s0)
    if upsample <= 1:
        return s0, cc[peak_idx] * cc.size  # same scale as the DFT sum below
    half = int(math.ceil(0.75 * upsample))
    offsets = (np.arange(2 * half + 1) - half) / upsample
    Y = X
    for ax, n in enumerate(X.shape):
        pts = s0[ax] + offsets
        k = np.fft.fftfreq(n) * n  # integer frequencies
        E = np.exp(2j * np.pi * np.outer(pts, k) / n)  # (n_pts, n)
        Y = np.moveaxis(np.tensordot(E, Y, axes=([1], [ax])), 0, ax)
    j = np.unravel_index(int(np.argmax(np.abs(Y))), Y.shape)
    shift = s0 + offsets[np.array(j)]
    return shift, Y[j]


def register_translation(reference, moving, upsample: int = 20) -> np.ndarray:
    r"""Sub-pixel translation that registers ``moving`` onto ``reference``.

    The integer peak of the cross-correlation modulus :math:`|C(\mathbf s)|`,
    :math:`C(\mathbf s)=\sum_{\mathbf r} x_{ref}(\mathbf r)\overline{x_{mov}(\mathbf r-\mathbf s)}`,
    is found by FFT; it is then refined by evaluating :math:`C` on a ``1/upsample`` grid spanning
    ±0.75 pixel around the peak with a matrix-multiply DFT, one small DFT matrix per axis (the
    approach of Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156 (2008)).  The modulus is
    used, so a global phase or sign does not matter.  Shifts are periodic and returned in
    ``(-N/2, N/2]`` (plus the sub-pixel part).

    Parameters
    ----------
    reference, moving : array_like or torch.Tensor
        Real or complex arrays of equal shape (2-D, 3-D or any number of axes).
    upsample : int, default 20
        Sub-pixel precision is ``1/upsample`` pixel; 1 gives the integer peak.

    Returns
    -------
    numpy.ndarray
        Shift per axis such that ``shift_image(moving, shift)`` aligns onto ``reference``.
    """
    ref = _array(reference, "reference")
    mov = _array(moving, "moving")
    _same_shape(ref, mov, "reference", "moving")
    up = _as_int(upsample, "upsample", 1)
    shift, _ = _register(ref, mov, up)
    return shift


def _align(est: np.ndarray, ref: np.ndarray, *, twin: bool, phase: bool, subpixel: bool,
           scale: bool, upsample: int):
    up = upsample if subpixel else 1
    candidates = [(False, est)]
    if twin:
        candidates.append((True, _twin(est)))
    best = None
    for is_twin, cand in candidates:
        shift, peak = _register(ref, cand, up)
        if best is None or abs(peak) > abs(best[2]) * (1 + 1e-12):
            best = (is_twin, cand, peak, shift)
    is_twin, cand, _, shift = best
    moved = shift_image(cand, shift)
    both_real = not np.iscomplexobj(moved) and not np.iscomplexobj(ref)
    # optimal complex factor c = <moved, ref> / ||moved||^2 (least squares)
    nrm2 = float(np.vdot(moved, moved).real)
    c = complex(np.vdot(moved, ref)) / nrm2 if nrm2 > 0 else 0j
    phi = 0.0
    if phase and c != 0:
        phi = float(np.angle(c))
        if both_real:
            # a sign: c is real, so phi is 0 or pi
            if c.real < 0:
                moved = -moved
                phi = float(np.pi)
            else:
                phi = 0.0
        else:
            moved = moved * np.exp(1j * phi)
    s = 1.0
    if scale:
        s = abs(c) if phase else c.real
        moved = moved * s
    info = {"shift": np.asarray(shift, dtype=np.float64), "twin": bool(is_twin),
            "phase": phi, "scale": float(s)}
    return moved, info


def align(estimate, reference, *, twin: bool = True, phase: bool = True,
          subpixel: bool = True, scale: bool = False, upsample: int = 20):
    r"""Remove the trivial ambiguities of Fourier phase retrieval.

    A Fourier modulus does not change under a translation, the conjugate inversion
    :math:`x(\mathbf r)\to\overline{x(-\mathbf r)}` (twin image) and a global phase factor
    :math:`e^{i\varphi}` (a sign for real images).  Neither Xian et al. 2022 nor Pham 2020 (eq.
    (2.31))
    mentions alignment, yet their errors only make sense after it; this solves

    .. math:: \min_{T\in\{1,\mathrm{twin}\},\ \mathbf s,\ \varphi,\ a}
              \big\|x_{ref} - a\,e^{i\varphi}\,\tau_{\mathbf s}T(\hat x)\big\|_2 :

    for each twin candidate the translation :math:`\mathbf s` is the peak of the cross-correlation
    (:func:`register_translation`), and the twin with the larger peak of
    :math:`|C|` (i.e. the larger correlation) is kept; then
    :math:`e^{i\varphi}=\langle\tau_{\mathbf s}T\hat x, x_{ref}\rangle/|\cdot|` and, if asked,
    the least-squares real scale :math:`a=|\langle\tau_{\mathbf s}T\hat x,x_{ref}\rangle|/
    \|\tau_{\mathbf s}T\hat x\|^2`.

    Parameters
    ----------
    estimate, reference : array_like or torch.Tensor
        Arrays of equal shape, real or complex (2-D, 3-D, ...).
    twin : bool, default True
        Also try the twin image (about the centre ``N // 2``, see :func:`twin_image`).
    phase : bool, default True
        Remove the global phase (for a real estimate and reference, a sign).
    subpixel : bool, default True
        Sub-pixel translation (precision ``1/upsample``); otherwise an integer shift.
    scale : bool, default False
        Also apply the least-squares real scale factor.
    upsample : int, default 20
        Upsampling factor of the sub-pixel registration.

    Returns
    -------
    aligned : numpy.ndarray
        ``scale * exp(1j * phase) * shift_image(T(estimate), shift)`` with ``T`` the twin
        operation if ``info["twin"]``; real if both inputs are real.
    info : dict
        ``shift`` (ndarray, pixels per axis), ``twin`` (bool), ``phase`` (radians; 0 or pi for
        real inputs), ``scale`` (float, 1.0 unless ``scale=True``).
    """
    est = _array(estimate, "estimate")
    ref = _array(reference, "reference")
    _same_shape(est, ref, "estimate", "reference")
    up = _as_int(upsample, "upsample", 1)
    return _align(est, ref, twin=bool(twin), phase=bool(phase), subpixel=bool(subpixel),
                  scale=bool(scale), upsample=up)


def relative_error(estimate, reference, *, align_first: bool = True, **align_kwargs) -> float:
    r"""Relative error :math:`\|x_{ref}-\hat x\|_2/\|x_{ref}\|_2` after alignment.

    The error measure of the VR-RK paper (its "relative square error", printed as the norm ratio
    ``||x - x_hat||_2 / ||x||_2`` in sec. "Synthetic single particle data recovery experiment",
    Table 1), evaluated after removing the trivial ambiguities with :func:`align` (our addition;
    the paper does not mention alignment).

    Parameters
    ----------
    estimate, reference : array_like or torch.Tensor
        Arrays of equal shape.
    align_first : bool, default True
        Align ``estimate`` onto ``reference`` first.
    **align_kwargs
        Passed to :func:`align` (``twin``, ``phase``, ``subpixel``, ``scale``, ``upsample``).

    Returns
    -------
    float
    """
    est = _array(estimate, "estimate")
    ref = _array(reference, "reference")
    _same_shape(est, ref, "estimate", "reference")
    nref = float(np.linalg.norm(ref.ravel()))
    if nref == 0:
        raise InputError("reference is zero everywhere; the relative error is undefined")
    if align_first:
        est, _ = align(est, ref, **align_kwargs)
    elif align_kwargs:
        raise ConfigError(f"align options {sorted(align_kwargs)} given with align_first=False")
    return float(np.linalg.norm((ref - est).ravel()) / nref)


def r_real(estimate, reference, *, align_first: bool = True, **align_kwargs) -> float:
    r"""Real-space error of thesis eq. (2.31) after alignment.

    .. math:: R_{real} = \frac{\sum_i |u_i - u^{o}_i|}{\sum_i |u^{o}_i|}

    (the thesis writes :math:`\sum_i u^o_i` for a non-negative model).  Without alignment a
    correct but shifted or twinned reconstruction scores badly, so the estimate is first aligned
    with :func:`align` (our addition; the thesis does not mention alignment).  If the data were
    scaled to photons (eq. (2.29) gives photon units while (2.30)-(2.31) compare with model units),
    rescale the reconstruction to the model's units first or pass ``scale=True``.

    Parameters
    ----------
    estimate, reference : array_like or torch.Tensor
        Arrays of equal shape (crop both around the support beforehand if desired).
    align_first : bool, default True
    **align_kwargs
        Passed to :func:`align`.

    Returns
    -------
    float
    """
    est = _array(estimate, "estimate")
    ref = _array(reference, "reference")
    _same_shape(est, ref, "estimate", "reference")
    denom = float(np.abs(ref).sum())
    if denom == 0:
        raise InputError("reference is zero everywhere; R_real is undefined")
    if align_first:
        est, _ = align(est, ref, **align_kwargs)
    elif align_kwargs:
        raise ConfigError(f"align options {sorted(align_kwargs)} given with align_first=False")
    return float(np.abs(est - ref).sum() / denom)


# --------------------------------------------------------------------------------------------
# ring / shell statistics
# --------------------------------------------------------------------------------------------
def _freq_bins(shape: tuple, pixel_size, n_bins):
    """Ring index of every pixel of a centred Fourier array, and the ring centre frequencies.

    Frequencies are ``(i - N//2) / (N * p)`` per axis (cycles per pixel when ``p = 1``).  Rings
    are one frequency pixel wide by default (width ``max_a 1/(N_a p_a)``) and stop at the
    Nyquist frequency ``min_a 1/(2 p_a)``.
    """
    ndim = len(shape)
    if pixel_size is None:
        p = np.ones(ndim)
    else:
        p = np.asarray(to_numpy(pixel_size), dtype=np.float64).reshape(-1)
        if p.size == 1:
            p = np.full(ndim, float(p[0]))
        if p.size != ndim:
            raise ConfigError(f"pixel_size has {p.size} values for {ndim} axes")
        if not np.all(np.isfinite(p)) or np.any(p <= 0):
            raise ConfigError(f"pixel_size must be positive and finite, got {pixel_size!r}")
    f2 = np.zeros(shape)
    for ax, n in enumerate(shape):
        f = (np.arange(n) - n // 2) / (n * p[ax])
        sh = [1] * ndim
        sh[ax] = n
        f2 = f2 + (f ** 2).reshape(sh)
    fr = np.sqrt(f2)
    nyq = float(np.min(1.0 / (2.0 * p)))
    if n_bins is None:
        df = float(np.max(1.0 / (np.array(shape) * p)))
        nb = int(math.floor(nyq / df + 1e-9)) + 1
    else:
        nb = _as_int(n_bins, "n_bins", 2)
        df = nyq / (nb - 1)
    idx = np.floor(fr / df + 0.5).astype(np.int64)
    centres = np.arange(nb) * df
    return idx, centres, nb


def _binned_sum(values: np.ndarray, idx: np.ndarray, sel: np.ndarray, nb: int) -> np.ndarray:
    sel = sel & (idx < nb)
    i = idx[sel]
    v = values[sel]
    if np.iscomplexobj(v):
        return (np.bincount(i, weights=v.real, minlength=nb)[:nb]
                + 1j * np.bincount(i, weights=v.imag, minlength=nb)[:nb])
    return np.bincount(i, weights=v, minlength=nb)[:nb].astype(np.float64)


def ring_average(arr, mask=None):
    """Azimuthal (2-D ring) or spherical (3-D shell) average about the centre ``N // 2``.

    Pixels are binned by their Euclidean distance from the centre index, rounded to the nearest
    integer, out to the farthest corner.

    Parameters
    ----------
    arr : array_like or torch.Tensor
        Real or complex array (any number of axes).
    mask : array_like of bool, optional
        True = pixel included.

    Returns
    -------
    radii : numpy.ndarray
        Ring radii in pixels, ``0, 1, 2, ...``.
    mean : numpy.ndarray
        Mean over each ring (complex for complex input); NaN where a ring has no included pixel.
    """
    a = _array(arr, "arr")
    m = _mask(mask, a.shape, "arr")
    r2 = np.zeros(a.shape)
    for ax, n in enumerate(a.shape):
        sh = [1] * a.ndim
        sh[ax] = n
        r2 = r2 + ((np.arange(n) - n // 2) ** 2.0).reshape(sh)
    idx = np.floor(np.sqrt(r2) + 0.5).astype(np.int64)
    nb = int(idx.max()) + 1
    sums = _binned_sum(a, idx, m, nb)
    counts = _binned_sum(np.ones(a.shape), idx, m, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    return np.arange(nb, dtype=np.float64), mean


def frc(a, b, *, n_bins=None, pixel_size=None, return_counts: bool = False):
    r"""Fourier ring (2-D) or shell (3-D) correlation.

    .. math:: \mathrm{FRC}(f) = \frac{\mathrm{Re}\sum_{\mathbf k\in f} \hat a(\mathbf k)
              \overline{\hat b(\mathbf k)}}{\sqrt{\sum_{\mathbf k\in f}|\hat a|^2
              \sum_{\mathbf k\in f}|\hat b|^2}},\qquad \hat a = \mathrm{fftc}(a).

    Rings are centred on the zero frequency ``N // 2`` and one frequency pixel wide; the first
    ring holds only the zero frequency.  The frequencies run up to the Nyquist frequency.

    Parameters
    ----------
    a, b : array_like or torch.Tensor
        Two real or complex images (2-D) or volumes (3-D) of equal shape, e.g. two independent
        reconstructions (aligned beforehand with :func:`align`).
    n_bins : int, optional
        Number of rings from 0 to Nyquist (>= 2).  Default: one ring per frequency pixel.
    pixel_size : float or sequence of float, optional
        Real-space pixel size (metres, scalar or per axis).  If given, ``freq`` is in cycles per
        metre; otherwise in cycles per pixel.
    return_counts : bool, default False
        Also return the number of pixels per ring (for the half-bit threshold).

    Returns
    -------
    freq : numpy.ndarray
        Ring centre frequencies.
    curve : numpy.ndarray
        Correlation per ring, NaN where undefined (empty ring or zero power).
    counts : numpy.ndarray
        Only with ``return_counts=True``.
    """
    x = _array(a, "a")
    y = _array(b, "b")
    _same_shape(x, y, "a", "b")
    if x.ndim not in (2, 3):
        raise InputError(f"frc needs 2-D images or 3-D volumes, got shape {x.shape}")
    idx, centres, nb = _freq_bins(x.shape, pixel_size, n_bins)
    fa = _fftc(x)
    fb = _fftc(y)
    allp = np.ones(x.shape, dtype=bool)
    num = _binned_sum((fa * np.conj(fb)).real, idx, allp, nb)
    pa = _binned_sum(np.abs(fa) ** 2, idx, allp, nb)
    pb = _binned_sum(np.abs(fb) ** 2, idx, allp, nb)
    counts = _binned_sum(np.ones(x.shape), idx, allp, nb)
    den = np.sqrt(pa * pb)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if return_counts:
        return centres, curve, counts.astype(np.int64)
    return centres, curve


fsc = frc
"""Fourier shell correlation: :func:`frc` applied to 3-D volumes."""


def _threshold_curve(threshold, freq, counts, ndim):
    if isinstance(threshold, str):
        key = threshold.lower().replace("-", "").replace("_", "").replace(" ", "")
        if key not in ("halfbit", "1/2bit", "onebit", "1bit"):
            raise ConfigError(
                f"unknown threshold {threshold!r}; use a number, 'halfbit' or 'onebit'")
        if counts is None:
            # estimate the pixel count per ring from the ring radius in bins
            if freq.size < 2 or freq[1] <= freq[0]:
                raise ConfigError("pass counts= to use a bit threshold with this frequency axis")
            r = freq / (freq[1] - freq[0])
            if ndim == 2:
                n = 2 * np.pi * r
            elif ndim == 3:
                n = 4 * np.pi * r ** 2
            else:
                raise ConfigError(f"ndim must be 2 or 3, got {ndim!r}")
            n = np.maximum(n, 1.0)
        else:
            n = np.asarray(to_numpy(counts), dtype=np.float64).reshape(-1)
            if n.shape != freq.shape:
                raise InputError(f"counts shape {n.shape} != freq shape {freq.shape}")
            n = np.maximum(n, 1.0)
        sq = np.sqrt(n)
        if key in ("halfbit", "1/2bit"):
            # van Heel & Schatz, J. Struct. Biol. 151, 250 (2005)
            return (0.2071 + 1.9102 / sq) / (1.2071 + 0.9102 / sq)
        return (0.5 + 2.4142 / sq) / (1.5 + 1.4142 / sq)
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not math.isfinite(
            float(threshold)):
        raise ConfigError(f"threshold must be a finite number or 'halfbit', got {threshold!r}")
    return np.full(freq.shape, float(threshold))


def frc_threshold_crossing(freq, curve, threshold=0.143, *, counts=None, ndim: int = 2) -> float:
    """First frequency where a FRC/FSC/PRTF curve drops below a threshold.

    Scanning up from the lowest frequency (NaN points skipped), returns the frequency where
    ``curve - threshold`` first changes from >= 0 to < 0, linearly interpolated between the two
    bracketing points.  If the curve is already below the threshold at its first finite point,
    that point's frequency is returned; if it never drops below, NaN.

    Parameters
    ----------
    freq, curve : array_like
        As returned by :func:`frc` or :func:`prtf`.
    threshold : float or str, default 0.143
        A fixed value (0.5, 0.143 (Rosenthal & Henderson 2003), 1/e for a PRTF, ...) or
        ``"halfbit"`` / ``"onebit"`` (van Heel & Schatz 2005), which depend on the number of
        pixels per ring.
    counts : array_like, optional
        Pixels per ring (``frc(..., return_counts=True)``) for the bit thresholds.  If omitted
        they are estimated as ``2*pi*r`` (2-D) or ``4*pi*r**2`` (3-D), ``r`` in rings.
    ndim : int, default 2
        Dimensionality used for that estimate.

    Returns
    -------
    float
        The crossing frequency, in the units of ``freq``, or NaN.
    """
    f = _array(np.asarray(to_numpy(freq), dtype=np.float64), "freq", allow_complex=False)
    c = np.asarray(to_numpy(curve))
    if np.iscomplexobj(c):
        raise InputError("curve must be real")
    c = c.astype(np.float64).reshape(-1)
    f = f.reshape(-1)
    if f.shape != c.shape:
        raise InputError(f"freq shape {f.shape} != curve shape {c.shape}")
    t = _threshold_curve(threshold, f, counts, ndim)
    ok = np.isfinite(c)
    if not ok.any():
        return float("nan")
    f, d = f[ok], (c - t)[ok]
    if d[0] < 0:
        return float(f[0])
    below = np.nonzero(d < 0)[0]
    if below.size == 0:
        return float("nan")
    i = int(below[0])
    d0, d1 = d[i - 1], d[i]
    w = d0 / (d0 - d1)
    return float(f[i - 1] + w * (f[i] - f[i - 1]))


def prtf(images, intensity, mask=None, *, align_images: bool = True, n_bins=None,
         pixel_size=None, clip_negative: bool = False):
    r"""Phase-retrieval transfer function over several reconstructions.

    .. math:: \mathrm{PRTF}(f) = \Big\langle \frac{|\langle \mathrm{fftc}(u_j)\rangle_j|}
              {\sqrt{I}} \Big\rangle_{\mathbf k \in f,\ \text{measured}}

    (Chapman et al., JOSA A 23, 1179 (2006)).  The reconstructions are first aligned to the first
    one (translation, twin image, global phase; :func:`align`), so phases that are retrieved
    consistently add up while random phases average out.  The ratio is averaged over the
    measured pixels with non-zero intensity in each ring (same rings as :func:`frc`).

    Parameters
    ----------
    images : sequence of arrays or array
        Reconstructions, shape ``(n, *intensity.shape)`` (a single image is allowed).
    intensity : array_like or torch.Tensor
        Measured intensities, same scale as ``|fftc(u)|**2``.
    mask : array_like of bool, optional
        True = measured pixel.
    align_images : bool, default True
        Align every image to the first before averaging.
    n_bins, pixel_size
        As in :func:`frc`.
    clip_negative : bool, default False
        Clip negative intensities to zero instead of raising.

    Returns
    -------
    freq : numpy.ndarray
        Ring centre frequencies (cycles per pixel, or per metre with ``pixel_size``).
    curve : numpy.ndarray
        PRTF per ring, NaN where a ring has no measured pixel.
    """
    b = _amplitudes_from_intensity(intensity, clip_negative=clip_negative)
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise InputError("images is an empty sequence")
        imgs = [_array(im, f"images[{j}]") for j, im in enumerate(images)]
    else:
        arr = _array(images, "images")
        if arr.shape == b.shape:
            imgs = [arr]
        elif arr.ndim == b.ndim + 1:
            imgs = [arr[j] for j in range(arr.shape[0])]
        else:
            raise InputError(
                f"images shape {arr.shape} != (n, *intensity shape) with intensity shape {b.shape}")
    for j, im in enumerate(imgs):
        _same_shape(im, b, f"images[{j}]", "intensity")
    m = _mask(mask, b.shape, "intensity")
    if align_images and len(imgs) > 1:
        ref = imgs[0]
        imgs = [ref] + [_align(im, ref, twin=True, phase=True, subpixel=True, scale=False,
                               upsample=20)[0] for im in imgs[1:]]
    mean_f = np.zeros(b.shape, dtype=np.complex128)
    for im in imgs:
        mean_f += _fftc(im)
    mean_f /= len(imgs)
    sel = m & (b > 0)
    if not sel.any():
        raise InputError("no measured pixel with non-zero intensity")
    ratio = np.zeros(b.shape)
    ratio[sel] = np.abs(mean_f[sel]) / b[sel]
    idx, centres, nb = _freq_bins(b.shape, pixel_size, n_bins)
    sums = _binned_sum(ratio, idx, sel, nb)
    counts = _binned_sum(np.ones(b.shape), idx, sel, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)
    return centres, curve
