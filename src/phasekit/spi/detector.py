"""Detector geometry of single-particle imaging: pixel scattering vectors on the Ewald sphere,
solid angles, polarisation, and a pnCCD-like mask (gap between the two halves, central hole,
bad pixels).

The preset :data:`AMO86615` is the LCLS AMO experiment amo86615 (PR772, Reddy et al. 2017, Sci.
Data 4:170079) as Dragonfly's ``config_amo86615.ini`` describes it: the back pnCCD 586 mm from
the interaction point, 7.75 Angstrom (1.6 keV) photons, 75 um pixels binned 4 x 4 to 0.3 mm,
260 x 257 binned pixels.  :func:`amo86615_geometry` crops it to a square (256 x 256 by
default, the VR-RK paper's pattern size) and can bin it further for fast tests.

Conventions (docs/conventions.md): arrays (y, x); the beam hits pixel ``(H // 2, W // 2)``
unless a centre is given; scattering vectors ``s = (k_out - k_in) / (2 pi)`` in cycles per metre
(``|k| = 2 pi / lambda``), so a particle's far field is its Fourier transform at ``s``;
the beam travels along +z, ``s_z = (cos 2theta - 1) / lambda <= 0`` (the Ewald sphere).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..core.errors import InputError

__all__ = [
    "AMO86615",
    "CLASSICAL_ELECTRON_RADIUS",
    "DetectorGeometry",
    "amo86615_geometry",
    "pnccd_mask",
]

#: r_e in metres (CODATA 2018)
CLASSICAL_ELECTRON_RADIUS = 2.8179403262e-15


@dataclass(frozen=True)
class DetectorGeometry:
    """A flat detector normal to the beam.

    Parameters
    ----------
    shape : tuple of int
        (H, W) pixels.
    pixel_size : float
        Metres (square pixels).
    distance : float
        Interaction point to detector, metres.
    wavelength : float
        Metres.
    centre : tuple of float, optional
        Beam position (y, x) in pixels; default ``(H // 2, W // 2)``.
    polarization : {"horizontal", "vertical", "none"}
        Linear polarisation of the incident beam (LCLS: horizontal, i.e. along x).

    Examples
    --------
    >>> g = DetectorGeometry((64, 64), 6e-4, 0.586, 7.75e-10)
    >>> g.s_vectors().shape
    (64, 64, 3)
    """

    shape: tuple[int, int]
    pixel_size: float
    distance: float
    wavelength: float
    centre: tuple[float, float] | None = None
    polarization: str = "horizontal"

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 2 or min(shape) < 2:
            raise InputError(f"detector shape {self.shape}: expected (H, W) with H, W >= 2")
        object.__setattr__(self, "shape", shape)
        for name in ("pixel_size", "distance", "wavelength"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
                raise InputError(f"detector {name} must be a positive number, got {v!r}")
        if self.polarization not in ("horizontal", "vertical", "none"):
            raise InputError(f"polarization {self.polarization!r}: expected horizontal, "
                             "vertical or none")

    @property
    def beam_centre(self) -> tuple[float, float]:
        """(y, x) of the beam in pixels."""
        if self.centre is None:
            return (float(self.shape[0] // 2), float(self.shape[1] // 2))
        return (float(self.centre[0]), float(self.centre[1]))

    def with_centre(self, centre) -> DetectorGeometry:
        """The same detector with the beam at ``centre`` (y, x) pixels."""
        return replace(self, centre=(float(centre[0]), float(centre[1])))

    def pixel_positions(self, offset=(0.0, 0.0)) -> np.ndarray:
        """(H, W, 3) pixel-centre positions (x, y, z) in metres from the interaction point, the
        beam at :attr:`beam_centre` + ``offset`` (pixels, y then x)."""
        cy, cx = self.beam_centre
        h, w = self.shape
        y = (np.arange(h) - cy - offset[0]) * self.pixel_size
        x = (np.arange(w) - cx - offset[1]) * self.pixel_size
        out = np.empty((h, w, 3))
        out[..., 0] = x[None, :]
        out[..., 1] = y[:, None]
        out[..., 2] = self.distance
        return out

    def s_vectors(self, offset=(0.0, 0.0)) -> np.ndarray:
        """(H, W, 3) scattering vectors (s_x, s_y, s_z) in cycles/m on the Ewald sphere.

        ``s = (n - e_z) / lambda`` with ``n`` the unit vector to the pixel centre; the
        curvature term ``s_z = -lambda |s|^2 / 2`` is kept (Condor, skopi and Dragonfly keep it
        too).
        """
        r = self.pixel_positions(offset)
        n = r / np.linalg.norm(r, axis=-1, keepdims=True)
        n[..., 2] -= 1.0
        return n / self.wavelength

    def solid_angles(self, offset=(0.0, 0.0)) -> np.ndarray:
        """(H, W) solid angle of each pixel in steradians, ``p^2 D / |r|^3``."""
        r = self.pixel_positions(offset)
        return self.pixel_size ** 2 * self.distance / np.linalg.norm(r, axis=-1) ** 3

    def polarization_factor(self, offset=(0.0, 0.0)) -> np.ndarray:
        """(H, W) Thomson polarisation factor ``1 - (n . e_pol)^2`` (1 for ``"none"``)."""
        if self.polarization == "none":
            return np.ones(self.shape)
        r = self.pixel_positions(offset)
        n = r / np.linalg.norm(r, axis=-1, keepdims=True)
        comp = n[..., 0] if self.polarization == "horizontal" else n[..., 1]
        return 1.0 - comp ** 2

    def pixel_maps(self, offsets) -> tuple[np.ndarray, np.ndarray]:
        """For beam offsets (B, 2) (pixels, y then x): ``s`` (B, H, W, 3) float32 (cycles/m) and
        the solid angle times the polarisation factor (B, H, W) float64 (one vectorised pass;
        the same values as :meth:`s_vectors`, :meth:`solid_angles` and
        :meth:`polarization_factor`)."""
        off = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
        cy, cx = self.beam_centre
        h, w = self.shape
        p = self.pixel_size
        y = (np.arange(h)[None, :] - cy - off[:, :1]) * p          # (B, H)
        x = (np.arange(w)[None, :] - cx - off[:, 1:]) * p          # (B, W)
        r2 = y[:, :, None] ** 2 + x[:, None, :] ** 2 + self.distance ** 2
        inv = 1.0 / np.sqrt(r2)                                    # (B, H, W)
        s = np.empty(inv.shape + (3,), dtype=np.float32)
        lam = self.wavelength
        s[..., 0] = x[:, None, :] * inv / lam
        s[..., 1] = y[:, :, None] * inv / lam
        s[..., 2] = (self.distance * inv - 1.0) / lam
        wgt = p ** 2 * self.distance * inv ** 3
        if self.polarization == "horizontal":
            wgt *= 1.0 - (x[:, None, :] * inv) ** 2
        elif self.polarization == "vertical":
            wgt *= 1.0 - (y[:, :, None] * inv) ** 2
        return s, wgt

    def s_max(self) -> float:
        """Largest |s| on the detector (the farthest corner from the beam), cycles/m."""
        s = self.s_vectors()
        return float(np.linalg.norm(s, axis=-1).max())

    def speckle_pixels(self, diameter: float) -> float:
        """Fringe period ``lambda D_det / (p d)`` in pixels of a particle of ``diameter`` m."""
        return self.wavelength * self.distance / (self.pixel_size * diameter)

    def to_metadata(self) -> dict:
        """Geometry for a stack file (``wavelength``, ``distance``, ``pixel_size``, ``centre``)."""
        return {"wavelength": self.wavelength, "distance": self.distance,
                "pixel_size": self.pixel_size, "centre": list(self.beam_centre),
                "detector_shape": list(self.shape), "polarization": self.polarization}


#: the amo86615 back pnCCD as binned 4 x 4 (Dragonfly ``config_amo86615.ini``)
AMO86615 = DetectorGeometry(shape=(260, 257), pixel_size=0.3e-3, distance=0.586,
                            wavelength=7.75e-10, polarization="horizontal")


def amo86615_geometry(size: int = 256, binning: int = 1) -> DetectorGeometry:
    """The amo86615 geometry cropped to ``size`` x ``size`` pixels, binned ``binning`` x more.

    ``amo86615_geometry(256)`` is the VR-RK paper's 256 x 256 pattern (0.3 mm pixels, the same
    q range as the full frame); ``amo86615_geometry(128, 2)`` keeps that q range on 128 x 128
    pixels of 0.6 mm (for quick tests and benchmarks).

    Examples
    --------
    >>> g = amo86615_geometry(128, 2)
    >>> g.shape, round(g.speckle_pixels(70e-9), 1)
    ((128, 128), 10.8)
    """
    size, binning = int(size), int(binning)
    if size < 8 or binning < 1:
        raise InputError(f"amo86615 geometry: size {size} must be >= 8 and binning {binning} >= 1")
    return replace(AMO86615, shape=(size, size), pixel_size=AMO86615.pixel_size * binning)


def pnccd_mask(shape, *, gap: float = 4, hole_radius: float = 10, centre=None,
               bad_fraction: float = 0.0, rng=None) -> np.ndarray:
    """A pnCCD-like mask (True = measured): a horizontal gap between the two detector halves, a
    central hole, and random bad pixels.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    gap : float
        Height in pixels of the unmeasured band between the upper and lower halves, centred on
        the beam row (0 = none).
    hole_radius : float
        Radius in pixels of the unmeasured disc at the beam (the hole the direct beam passes
        through; 0 = none).
    centre : tuple of float, optional
        (y, x) of the beam; default ``(H // 2, W // 2)``.
    bad_fraction : float
        Fraction of other pixels marked bad at random.
    rng : int, Generator or None
        For the bad pixels.

    Examples
    --------
    >>> m = pnccd_mask((64, 64), gap=2, hole_radius=4)
    >>> bool(m[0, 0]), bool(m[32, 32]), bool(m[32, 0])
    (True, False, False)
    """
    from ..core.rng import make_rng

    h, w = (int(s) for s in shape)
    cy, cx = (h // 2, w // 2) if centre is None else (float(centre[0]), float(centre[1]))
    if gap < 0 or hole_radius < 0 or not (0 <= bad_fraction < 1):
        raise InputError(f"pnccd mask: gap {gap}, hole radius {hole_radius} must be >= 0 and "
                         f"bad fraction {bad_fraction} in [0, 1)")
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.ones((h, w), dtype=bool)
    if gap > 0:
        m &= ~((yy >= cy - gap / 2.0) & (yy < cy + gap / 2.0))
    if hole_radius > 0:
        m &= (yy - cy) ** 2 + (xx - cx) ** 2 > hole_radius ** 2
    if bad_fraction > 0:
        m &= make_rng(rng).random((h, w)) >= bad_fraction
    return m
