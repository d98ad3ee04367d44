r"""Ptychography quality metrics (built on :mod:`phasekit.metrics`).

* :func:`rfactor` -- :math:`R_F=\sum_n\sum|\sqrt{I_n}-|\mathcal F\Psi_n||/\sum_n\sum\sqrt{I_n}`
  (Miao et al. 2006; CRISP eq. (23)).
* :func:`prepare_for_comparison` / :func:`object_frc` -- the PINE protocol (PINE paper, sec. 5,
  around eq. (23)): (i) complex scale and global phase fit, (ii) sub-pixel registration by phase-only correlation,
  (iii) pixels with total illumination < 1 % of its maximum set to vacuum (1) in both images;
  then :func:`phasekit.metrics.frc` of the complex objects.
* :func:`object_error` -- relative error on the well-illuminated pixels after the same
  alignment plus removal of the linear phase ramp that ptychography cannot determine (a
  development diagnostic of ours, not a paper metric).
* :func:`probe_correlation` -- :math:`|\langle\mathcal F\hat{\mathbf P},\mathcal F\mathbf P\rangle_A|
  /(\|\cdot\|_A\|\cdot\|_A)` over a Fourier-domain disc ``A`` (the zone-plate aperture;
  CRISP sec. 4.1 computes it "over the spatial frequency range cropped with the aperture of the
  illumination zone plate"; the word naming the domain is lost in our copy, Fourier is our reading).
* :func:`dispersion` -- the normalised L1 stand-in (our choice) for the :math:`\tau_{ij}` score of
  CRISP sec. 4.4 (eq. (25)), whose formula is not legible in our copy.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..metrics import frc, register_translation, shift_image


def rfactor(obj, probe, intensities, positions, mask=None) -> float:
    """R_F of an object and probe against measured frames (centred), unitary-FFT scale."""
    from .problem import PtychoProblem

    prob = PtychoProblem.from_arrays(intensities, positions, probe=probe, obj=obj, mask=mask,
                                     probe_energy_match=False, precision="double",
                                     clip_negative=True)
    return prob.rfactor(prob.pack(prob.obj0, prob.probe0))


def _fftc(a):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(a)))


def _whiten(a: np.ndarray) -> np.ndarray:
    F = np.fft.fft2(a)
    return np.fft.ifft2(F / np.maximum(np.abs(F), 1e-30))


def _scale_fit(est, ref, w):
    nrm = float(np.sum(w * np.abs(est) ** 2))
    return complex(np.sum(w * np.conj(est) * ref)) / nrm if nrm > 0 else 1.0


def _check(est, truth):
    e = np.asarray(est)
    t = np.asarray(truth)
    if e.shape != t.shape or e.ndim != 2:
        raise InputError(f"estimate shape {e.shape} != truth shape {t.shape} (2-D objects)")
    return e.astype(np.complex128), t.astype(np.complex128)


def well_lit(illumination, threshold: float = 0.01) -> np.ndarray:
    """Pixels whose total illumination is at least ``threshold`` of the maximum."""
    ill = np.asarray(illumination, dtype=np.float64)
    return ill >= threshold * ill.max()


def prepare_for_comparison(est, truth, illumination=None, *, threshold: float = 0.01,
                           upsample: int = 20, register: bool = True):
    """PINE preprocessing (PINE paper, sec. 5): returns ``(aligned_estimate, truth_masked, info)``.

    ``illumination`` is the coverage map :math:`\\sum_n\\mathcal S^\\top_n|\\mathbf P_n|^2` (for
    example ``PtychoProblem.illumination(true_probe)``); None uses every pixel.
    """
    e, t = _check(est, truth)
    mask = np.ones(e.shape, bool) if illumination is None else well_lit(illumination, threshold)
    if not mask.any():
        raise InputError("no well-illuminated pixel")
    w = mask.astype(np.float64)
    c = _scale_fit(e, t, w)            # (i) complex scale and global phase
    e = e * c
    shift = np.zeros(2)
    if register:                       # (ii) phase-only correlation, sub-pixel
        # soft window = normalised illumination (a hard mask's edge, the same in both images,
        # would pull the correlation peak to zero shift)
        win = np.ones(e.shape) if illumination is None else \
            np.asarray(illumination, np.float64) / float(np.max(illumination))
        ref = (t - t[mask].mean()) * win
        mov = (e - e[mask].mean()) * win
        shift = register_translation(_whiten(ref), _whiten(mov), upsample=upsample)
        if np.any(np.abs(shift) > 0):
            e = shift_image(e, shift)
            c2 = _scale_fit(e, t, w)
            e = e * c2
            c = c * c2
    e = np.where(mask, e, 1.0)         # (iii) vacuum outside the well-lit region
    t = np.where(mask, t, 1.0)
    return e, t, {"scale": c, "shift": np.asarray(shift, float), "mask": mask}


def object_frc(est, truth, illumination=None, *, threshold: float = 0.01, pixel_size=None,
               upsample: int = 20, register: bool = True):
    """FRC of the complex object after the PINE preprocessing; returns ``(freq, curve)``
    (cycles per pixel, or per metre with ``pixel_size``)."""
    e, t, _ = prepare_for_comparison(est, truth, illumination, threshold=threshold,
                                     upsample=upsample, register=register)
    return frc(e, t, pixel_size=pixel_size)


def band_mean(freq, curve, lo: float, hi: float) -> float:
    """Mean of an FRC curve over ``lo <= f <= hi`` (NaN-safe)."""
    f = np.asarray(freq)
    c = np.asarray(curve)
    sel = (f >= lo) & (f <= hi) & np.isfinite(c)
    return float(np.mean(c[sel])) if sel.any() else float("nan")


def remove_phase_ramp(est, truth, mask):
    """Remove the linear phase ramp of ``est * conj(truth)`` over ``mask`` (the ptychographic
    ramp ambiguity), estimated from the mean phase increments along each axis."""
    d = np.where(mask, est * np.conj(truth), 0)
    gy = np.angle(np.sum(d[1:, :] * np.conj(d[:-1, :])))
    gx = np.angle(np.sum(d[:, 1:] * np.conj(d[:, :-1])))
    y = np.arange(est.shape[0])[:, None]
    x = np.arange(est.shape[1])[None, :]
    return est * np.exp(-1j * (gy * y + gx * x))


def object_error(est, truth, illumination=None, *, threshold: float = 0.01, ramp: bool = True,
                 register: bool = True) -> float:
    """Relative error ``||c e - t|| / ||t||`` over the well-illuminated pixels after the complex
    scale fit, sub-pixel registration and (``ramp=True``) removal of the linear phase ramp."""
    e, t = _check(est, truth)
    mask = np.ones(e.shape, bool) if illumination is None else well_lit(illumination, threshold)
    if register:
        e, _, info = prepare_for_comparison(e, t, illumination, threshold=threshold)
    if ramp:
        e = remove_phase_ramp(e, t, mask)
    w = mask.astype(np.float64)
    e = e * _scale_fit(e, t, w)
    return float(np.sqrt(np.sum(w * np.abs(e - t) ** 2) / np.sum(w * np.abs(t) ** 2)))


def probe_correlation(est, truth, aperture_diameter: float | None = None, *,
                      modulus: bool = False) -> float:
    """Correlation of two probes in the Fourier domain over a centred disc of
    ``aperture_diameter`` pixels (None: every frequency); ``modulus=True`` correlates
    :math:`|\\mathcal F\\mathbf P|` instead (insensitive to shifts and phase ramps)."""
    e, t = _check(est, truth)
    fe, ft = _fftc(e), _fftc(t)
    if modulus:
        fe, ft = np.abs(fe), np.abs(ft)
    if aperture_diameter is None:
        a = np.ones(e.shape, bool)
    else:
        y = np.arange(e.shape[0]) - e.shape[0] // 2
        x = np.arange(e.shape[1]) - e.shape[1] // 2
        a = (y[:, None] ** 2 + x[None, :] ** 2) <= (aperture_diameter / 2) ** 2
    num = abs(np.sum(fe[a] * np.conj(ft[a])))
    den = np.sqrt(np.sum(np.abs(fe[a]) ** 2) * np.sum(np.abs(ft[a]) ** 2))
    return float(num / den) if den > 0 else float("nan")


def dispersion(oi, oj, mask=None) -> float:
    """Stand-in for the CRISP paper's tau_ij (sec. 4.4, eq. (25), not legible in our copy;
    this stand-in is our choice): normalised L1 distance
    ``sum|c oi - oj| / sum(|c oi| + |oj|)`` over ``mask`` after the complex scale fit ``c``."""
    a, b = _check(oi, oj)
    m = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    w = m.astype(np.float64)
    a = a * _scale_fit(a, b, w)
    return float(np.sum(w * np.abs(a - b)) / np.sum(w * (np.abs(a) + np.abs(b))))
