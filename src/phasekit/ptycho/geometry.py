r"""Scan geometry: object pixel, Fresnel scaling of a diverging beam, Fresnel number, and a
plausibility check of a scan read as far field.

Pure functions of SI numbers (metres); nothing here reads files (see
:mod:`phasekit.io.ptycho`) or iterates.

**Far field.**  A detector of :math:`M` pixels of pitch :math:`p` at distance :math:`z` sees
the Fourier transform of an exit wave sampled at :math:`\Delta x=\lambda z/(M p)`, per axis
(:func:`farfield_pixel`).

**Near field with a diverging beam (Fresnel scaling).**  A point source (the focus of a zone
plate or KB mirrors) at distance :math:`z_1` before the sample and a detector at :math:`z_2`
behind it record a hologram magnified by :math:`M=(z_1+z_2)/z_1`.  The Fresnel scaling
theorem (Paganin, *Coherent X-Ray Optics*, 2006, sec. 2.5) maps it onto a plane-wave
propagation over the effective distance :math:`z_\mathrm{eff}=z_2/M` with the effective pixel
:math:`p/M` (:func:`fresnel_scaling`; the same quantities cdtools derives from its
``propagation_distance`` = :math:`z_1`).  :math:`z_1\to\infty` is a parallel beam
(:math:`M=1`).

**Plausibility.**  Near-field data read as far field give an object pixel hundreds of times too
small: the scan spans thousands of pixels, the steps are many probe widths and the positions do
not overlap (issue 13: a 1.3 um step became 65 px for a probe of a few pixels).
:func:`check_farfield_plausibility` estimates the far-field probe width from the mean frame
(the Fourier transform of the mean intensity is the mean autocorrelation of the exit wave,
whose support is twice the probe width) and warns when the median step exceeds it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConfigError

__all__ = [
    "FresnelGeometry",
    "ScanGeometry",
    "check_farfield_plausibility",
    "farfield_pixel",
    "focus_distance_for_pixel",
    "fresnel_number",
    "fresnel_scaling",
    "probe_diameter_farfield",
    "scan_geometry",
    "step_statistics",
]


def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive number (metres), got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(f"{name} must be a positive number (metres), got {value!r}")
    return v


def farfield_pixel(wavelength: float, distance: float, detector_pixel, shape) -> tuple[float, float]:
    r"""Object pixel of a far-field geometry, :math:`\lambda z/(M_a p_a)` per axis (metres).

    Parameters
    ----------
    wavelength, distance : float
        Metres.
    detector_pixel : float or (float, float)
        Detector pitch (y, x) in metres (one value for square pixels).
    shape : int or (int, int)
        Frame shape (My, Mx).

    Returns
    -------
    (dy, dx) : tuple of float

    Examples
    --------
    >>> dy, dx = farfield_pixel(0.098e-9, 1.12, 55e-6, (100, 100))
    >>> round(dx * 1e9, 2)
    19.96
    """
    wl = _positive(wavelength, "wavelength")
    z = _positive(distance, "distance")
    py, px = (detector_pixel, detector_pixel) if np.ndim(detector_pixel) == 0 else detector_pixel
    my, mx = (shape, shape) if np.ndim(shape) == 0 else shape
    return (wl * z / (int(my) * _positive(py, "detector pixel")),
            wl * z / (int(mx) * _positive(px, "detector pixel")))


@dataclass(frozen=True)
class FresnelGeometry:
    """Fresnel-scaled geometry of a diverging (or parallel) beam.

    Attributes
    ----------
    magnification : float
        :math:`M=(z_1+z_2)/z_1` (1 for a parallel beam).
    pixel_size : (float, float)
        Effective (object-plane) pixel (y, x), detector pitch / M (metres).
    distance : float
        Effective propagation distance :math:`z_2/M` (metres).
    focus_distance : float
        :math:`z_1` (``inf`` for a parallel beam).
    detector_distance : float
        :math:`z_2`.
    """

    magnification: float
    pixel_size: tuple
    distance: float
    focus_distance: float
    detector_distance: float


def fresnel_scaling(focus_distance: float, detector_distance: float,
                    detector_pixel) -> FresnelGeometry:
    r"""Effective pixel and distance of a point-source (diverging-beam) near-field geometry.

    :math:`M=(z_1+z_2)/z_1`, pixel :math:`p/M`, distance :math:`z_2/M` (Fresnel scaling
    theorem; Paganin 2006, sec. 2.5).  ``focus_distance=inf`` is a parallel beam (M = 1).

    Parameters
    ----------
    focus_distance : float
        Focus (source) to sample distance :math:`z_1` in metres, or ``inf``.
    detector_distance : float
        Sample to detector distance :math:`z_2` in metres.
    detector_pixel : float or (float, float)
        Detector pitch (y, x) in metres.

    Examples
    --------
    >>> g = fresnel_scaling(3.657e-3, 1.12, 55e-6)
    >>> round(g.magnification, 1), round(g.pixel_size[0] * 1e9), round(g.distance * 1e3, 3)
    (307.3, 179, 3.645)
    """
    z2 = _positive(detector_distance, "detector distance")
    z1 = float(focus_distance) if focus_distance is not None else float("nan")
    if math.isinf(z1) and z1 > 0:
        mag = 1.0
    else:
        z1 = _positive(focus_distance, "focus-to-sample distance")
        mag = (z1 + z2) / z1
    py, px = (detector_pixel, detector_pixel) if np.ndim(detector_pixel) == 0 else detector_pixel
    return FresnelGeometry(magnification=mag,
                           pixel_size=(_positive(py, "detector pixel") / mag,
                                       _positive(px, "detector pixel") / mag),
                           distance=z2 / mag, focus_distance=z1, detector_distance=z2)


def focus_distance_for_pixel(pixel_size: float, detector_distance: float,
                             detector_pixel: float) -> float:
    r"""The focus-to-sample distance :math:`z_1=z_2/(M-1)` that gives an effective ``pixel_size``
    (:math:`M=p/\Delta x`); the inverse of :func:`fresnel_scaling`.

    Examples
    --------
    >>> round(focus_distance_for_pixel(179e-9, 1.12, 55e-6) * 1e3, 3)
    3.657
    """
    mag = _positive(detector_pixel, "detector pixel") / _positive(pixel_size, "pixel size")
    if mag <= 1:
        raise ConfigError(f"pixel size {pixel_size} >= detector pixel {detector_pixel}: no "
                          "magnification, not a diverging-beam geometry")
    return _positive(detector_distance, "detector distance") / (mag - 1)


def fresnel_number(size: float, wavelength: float, distance: float) -> float:
    r"""Fresnel number :math:`N_F=a^2/(\lambda z)` of a feature (or field) of width ``a``.

    :math:`N_F\ll1`: far field (Fraunhofer); :math:`N_F\gtrsim1`: near field.  With a pixel
    as ``size`` it measures how many pixels the propagation blurs over (:math:`1/N_F`).

    Examples
    --------
    >>> round(fresnel_number(179e-9, 0.098e-9, 3.645e-3), 3)  # one pixel of the issue's scan
    0.09
    """
    return _positive(size, "size") ** 2 / (_positive(wavelength, "wavelength")
                                            * _positive(distance, "distance"))


def probe_diameter_farfield(intensities, mask=None, threshold: float = 0.02) -> float:
    r"""Probe diameter (object pixels) of a far-field scan, estimated from its frames.

    The inverse Fourier transform of the mean frame is the mean autocorrelation of the exit
    wave; its support (values above ``threshold`` of the peak) has twice the probe's diameter.
    The diameter is that of the disc with the thresholded area, halved.  A rough figure
    (within a factor ~1.5 for discs, zone-plate and Gaussian probes): enough to tell a scan
    whose steps are a fraction of the probe from one whose steps are many probe widths.

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.ptycho.probe import disc
    >>> f = np.abs(np.fft.fftshift(np.fft.fft2(disc(64, 16)))) ** 2
    >>> 10 < probe_diameter_farfield(f[None]) < 24
    True
    """
    I = np.asarray(intensities, dtype=np.float64)
    if I.ndim == 2:
        I = I[None]
    mean = I.mean(axis=0)
    if mask is not None:
        mean = np.where(np.asarray(mask, bool), mean, 0.0)
    ac = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(mean))))
    peak = ac.max()
    if not np.isfinite(peak) or peak <= 0:
        return float("nan")
    area = float(np.count_nonzero(ac > threshold * peak))
    return float(2.0 * math.sqrt(area / math.pi) / 2.0)


def step_statistics(positions) -> dict:
    """Median nearest-neighbour step and span (pixels) of scan positions (N, 2).

    Returns ``{"step": float, "span": (float, float)}`` (``step`` is nan for one position).
    """
    p = np.asarray(positions, dtype=np.float64)
    span = tuple(float(v) for v in (p.max(axis=0) - p.min(axis=0))) if len(p) else (0.0, 0.0)
    if len(p) < 2:
        return {"step": float("nan"), "span": span}
    best = np.full(len(p), np.inf)
    for s in range(0, len(p), 512):  # chunks: O(N^2) distances without an N x N array
        d = np.sqrt(((p[s:s + 512, None, :] - p[None, :, :]) ** 2).sum(-1))
        idx = np.arange(s, min(s + 512, len(p)))
        d[idx - s, idx] = np.inf
        best[idx] = d.min(axis=1)
    return {"step": float(np.median(best)), "span": span}


def check_farfield_plausibility(positions, intensities, mask=None,
                                frame_shape=None) -> list[str]:
    """Warnings when a far-field reading of a scan is implausible (empty list when it looks
    fine).

    Warns when the median nearest-neighbour step is at least the probe diameter estimated by
    :func:`probe_diameter_farfield` (no overlap between neighbours: ptychography cannot work),
    stating the step in probe widths and the scan's extent in frames, and suggesting
    ``--near-field``.

    Parameters
    ----------
    positions : (N, 2) pixels of the far-field object grid.
    intensities : (N, My, Mx) frames.
    mask : (My, Mx) bool, optional.
    frame_shape : (My, Mx), optional (default: the frames').

    Examples
    --------
    >>> import numpy as np
    >>> from phasekit.ptycho.probe import disc
    >>> f = np.abs(np.fft.fftshift(np.fft.fft2(disc(64, 16)))) ** 2
    >>> pos = np.array([[0, 0], [0, 200], [200, 0], [200, 200]], float)
    >>> check_farfield_plausibility(pos, np.stack([f] * 4))[0][:40]
    'far-field geometry: the scan steps (medi'
    """
    stats = step_statistics(positions)
    I = np.asarray(intensities)
    my, mx = frame_shape if frame_shape is not None else I.shape[-2:]
    # a subset of frames is enough for the mean autocorrelation
    sub = I[:: max(1, len(I) // 64)] if I.ndim == 3 else I
    d = probe_diameter_farfield(sub, mask)
    step = stats["step"]
    if not (np.isfinite(d) and d > 0 and np.isfinite(step)):
        return []
    if step < d:
        return []
    sy, sx = stats["span"]
    return [f"far-field geometry: the scan steps (median {step:.1f} px) are {step / d:.1f} "
            f"probe widths (probe about {d:.1f} px from the frames' autocorrelation), so "
            f"neighbouring positions do not overlap; the scan spans {sy:.0f} x {sx:.0f} px "
            f"({sy / my:.1f} x {sx / mx:.1f} frames).  If this is a near-field (holographic) "
            "scan, give the focus-to-sample distance: --near-field DISTANCE (metres)"]


@dataclass
class ScanGeometry:
    """The geometry of a scan file as phasekit will reconstruct it (:func:`scan_geometry`).

    Attributes
    ----------
    propagation : str
        ``"farfield"``, or the near-field model (``"angular"`` or ``"fresnel"``).
    pixel_size : (float, float)
        Object pixel (y, x), metres.
    distance : float or None
        Propagation distance handed to the near-field propagator (effective, Fresnel-scaled);
        the sample-detector distance in the far field.
    magnification : float
        1 in the far field and for a parallel near-field beam.
    focus_distance : float or None
        The ``near_field`` focus-to-sample distance (``inf``: parallel beam).
    positions : ndarray (N, 2)
        Probe-window positions in object pixels (y, x), smallest at 0.
    step : float
        Median nearest-neighbour step (pixels).
    span : (float, float)
        Extent of the positions (pixels).
    fresnel_number : float or None
        Of one object pixel, :math:`\\Delta^2/(\\lambda z)` (near field).
    warnings : list of str
    """

    propagation: str
    pixel_size: tuple
    distance: float | None
    magnification: float
    focus_distance: float | None
    positions: np.ndarray
    step: float
    span: tuple
    fresnel_number: float | None
    wavelength: float | None
    warnings: list

    def reconstruct_kwargs(self) -> dict:
        """Keyword arguments of :func:`phasekit.ptycho.reconstruct` for this geometry
        (``positions`` and, in the near field, ``propagation``, ``wavelength``,
        ``pixel_size``, ``distance``)."""
        kw = {"positions": self.positions}
        if self.propagation != "farfield":
            kw.update(propagation=self.propagation, wavelength=self.wavelength,
                      pixel_size=float(np.sqrt(self.pixel_size[0] * self.pixel_size[1])),
                      distance=self.distance)
        return kw

    def lines(self) -> list[str]:
        """Human-readable summary (``phasekit info``)."""
        dy, dx = self.pixel_size
        pix = f"{dy * 1e9:.4g} nm" if abs(dy - dx) <= 1e-6 * dy else \
            f"{dy * 1e9:.4g} x {dx * 1e9:.4g} nm (y x)"
        out = []
        if self.propagation == "farfield":
            out.append(f"far field: object pixel {pix}")
        else:
            z1 = "parallel beam" if self.focus_distance is None or math.isinf(self.focus_distance) \
                else f"focus-sample {self.focus_distance:.4g} m"
            out.append(f"near field ({self.propagation}, {z1}): magnification "
                       f"{self.magnification:.4g}, object pixel {pix}, effective distance "
                       f"{self.distance * 1e3:.4g} mm, pixel Fresnel number "
                       f"{self.fresnel_number:.3g}")
        out.append(f"scan: {len(self.positions)} positions, median step {self.step:.2f} px "
                   f"({self.step * dy * 1e6:.4g} um), span {self.span[0]:.1f} x "
                   f"{self.span[1]:.1f} px")
        return out


def scan_geometry(data, near_field=None, *, flip: bool = False, transpose: bool = False,
                  propagator: str = "angular", check: bool = True) -> ScanGeometry:
    r"""Object pixel, propagation distance and positions of a scan read from a file.

    Parameters
    ----------
    data : :class:`phasekit.io.ptycho.PtychoData`
        The scan (wavelength, sample-detector distance, detector pixel, translations).
    near_field : float, optional
        ``None``: far field (pixel :math:`\lambda z/(Mp)`; a warning when that makes the scan
        implausible, :func:`check_farfield_plausibility`).  A distance in metres: near field
        with a beam diverging from a focus that far before the sample (Fresnel scaling,
        :func:`fresnel_scaling`); ``inf``: a parallel beam (pixel = detector pixel).  The
        ``--near-field`` option of ``phasekit reconstruct`` and ``phasekit info``.
    flip, transpose : bool
        See :meth:`phasekit.io.ptycho.PtychoData.positions_px`.
    propagator : {"angular", "fresnel"}
        Near-field propagator (angular spectrum by default, as cdtools uses).
    check : bool
        Run the far-field plausibility check.

    Examples
    --------
    >>> from phasekit.io import read_ptycho  # doctest: +SKIP
    >>> g = scan_geometry(read_ptycho("star.cxi"), near_field=3.657e-3)  # doctest: +SKIP
    >>> res = reconstruct(d.intensities, **g.reconstruct_kwargs(), mask=d.mask)  # doctest: +SKIP
    """
    if propagator not in ("angular", "fresnel"):
        raise ConfigError(f"near-field propagator must be 'angular' or 'fresnel', got {propagator!r}")
    warnings: list[str] = []
    if near_field is None:
        dy, dx = data.object_pixel_yx()
        pos = data.positions_px(flip=flip, transpose=transpose)
        stats = step_statistics(pos)
        if check:
            warnings += check_farfield_plausibility(pos, data.intensities, data.mask)
        return ScanGeometry("farfield", (dy, dx), data.distance, 1.0, None, pos, stats["step"],
                            stats["span"], None, data.wavelength, warnings)
    if not (data.wavelength and data.distance):
        from ..core.errors import FileFormatError

        raise FileFormatError(f"{data.path or 'data'}: near field needs the wavelength and the "
                              "sample-detector distance from the file")
    z1 = float(near_field)
    g = fresnel_scaling(z1, data.distance, data.detector_pixel())
    pos = data.positions_px(flip=flip, transpose=transpose, pixel=g.pixel_size)
    stats = step_statistics(pos)
    dy, dx = g.pixel_size
    if abs(dy - dx) > 1e-3 * dy:
        warnings.append(f"object pixels are not square ({dy:.4g} x {dx:.4g} m); the near-field "
                        "propagator uses their geometric mean")
    nf = fresnel_number(min(dy, dx), data.wavelength, g.distance)
    my, mx = data.frame_shape
    if propagator == "fresnel" and data.wavelength * g.distance > min(my, mx) * min(dy, dx) ** 2:
        warnings.append(f"the Fresnel transfer function is undersampled (lambda z = "
                        f"{data.wavelength * g.distance:.3g} m^2 > M dx^2 = "
                        f"{min(my, mx) * min(dy, dx) ** 2:.3g} m^2): its phase aliases")
    if stats["step"] < 0.5:
        warnings.append(f"near field: the median step is {stats['step']:.2g} px, the positions "
                        f"nearly coincide; check the focus-to-sample distance {z1:g} m")
    if stats["step"] > max(my, mx):
        warnings.append(f"near field: the median step {stats['step']:.1f} px exceeds the frame "
                        f"({my}x{mx}); check the focus-to-sample distance {z1:g} m")
    return ScanGeometry(propagator, (dy, dx), g.distance, g.magnification, z1, pos,
                        stats["step"], stats["span"], nf, data.wavelength, warnings)
