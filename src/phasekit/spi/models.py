"""Particle models for single-particle imaging: their far-field scattering amplitude F(s).

``F(s) = sum_r rho_e(r) dV exp(-2 pi i s . r)`` in electrons (``F(0)`` is the number of
electrons), ``s`` in cycles per metre in the particle's own frame.  A pattern then holds
``fluence r_e^2 Omega P |F|^2`` expected photons per pixel (:mod:`phasekit.spi.simulate`).

* :class:`SphereModel` -- a uniform sphere, analytic: ``F = rho V 3 (sin u - u cos u) / u^3``,
  ``u = 2 pi |s| R`` (Feigin & Svergun 1987; libspimage's sphere model).  Also the test reference.
* :class:`SpheroidModel` -- a uniform spheroid, analytic (the sphere formula with
  ``u = 2 pi |A s|``, A the semi-axes).
* :class:`MapModel` -- any electron-density map: its 3-D transform is computed once on a
  zero-padded grid (``pad`` times the particle's extent, 8 by default) and sliced at the pixels'
  ``s`` by trilinear interpolation (``torch.nn.functional.grid_sample``), as Dragonfly's
  make_densities -> make_intensities and Condor's ParticleMap do.  A change of size needs no new
  volume: ``F_D(s) = (D / D0)^3 F_D0(s D / D0)``.
* Builders: :func:`icosahedron_model` (uniform voxel icosahedron, the PR772 proxy; Condor's
  ``ParticleMap(geometry='icosahedron')``), :func:`virus_model` (layered tectivirus: protein
  capsid, lipid membrane, DNA core -- the PRD1 family PR772 belongs to), :func:`map_model`
  (MRC / HDF5 maps).

Sizes: the ``diameter`` of every model is the diameter of the sphere of equal volume (for a map,
its electrons over the median density of the voxels above half its maximum).  Electron
densities (Condor's material table, at 1350 / 1700 / 1000 / 995 kg m^-3): protein 0.436, DNA
0.528, lipid 0.333, water 0.333 e/A^3.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..core.errors import FileFormatError, InputError

__all__ = [
    "DENSITY",
    "MapModel",
    "ParticleModel",
    "SphereModel",
    "SpheroidModel",
    "icosahedron_density",
    "icosahedron_model",
    "load_density_map",
    "make_model",
    "map_model",
    "sphere_form_factor",
    "virus_model",
]

log = logging.getLogger("phasekit")

#: electron densities in electrons per cubic metre (1 e/A^3 = 1e30 e/m^3)
DENSITY = {"protein": 0.436e30, "dna": 0.528e30, "lipid": 0.333e30, "water": 0.333e30,
           "dna_core": 0.47e30, "residue": 0.35e30, "contaminant": 0.40e30}

_PHI = (1.0 + math.sqrt(5.0)) / 2.0


def sphere_form_factor(u: torch.Tensor) -> torch.Tensor:
    """``3 (sin u - u cos u) / u^3`` (1 at u = 0), with a series below u = 0.3.

    Examples
    --------
    >>> float(sphere_form_factor(torch.tensor([0.0]))[0])
    1.0
    """
    small = u.abs() < 0.3
    us = torch.where(small, torch.ones_like(u), u)
    full = 3.0 * (torch.sin(us) - us * torch.cos(us)) / us ** 3
    u2 = u * u
    series = 1.0 - u2 / 10.0 + u2 * u2 / 280.0
    return torch.where(small, series, full)


class ParticleModel:
    """Base class: ``amplitude(s, scale)`` -> complex F at particle-frame ``s`` (cycles/m).

    Attributes
    ----------
    name : str
    diameter : float
        Equal-volume sphere diameter, metres (the nominal size; ``scale`` multiplies it).
    electrons : float
        ``F(0)``, the number of electrons at the nominal size.
    extent : float
        Diameter of the smallest centred sphere holding the particle, metres.
    """

    name = "particle"
    diameter: float = 0.0
    electrons: float = 0.0
    extent: float = 0.0

    def amplitude(self, s: torch.Tensor, scale=1.0) -> torch.Tensor:
        """F at ``s`` (..., 3) (x, y, z; cycles/m) for the particle scaled by ``scale`` (one
        number, or one per leading index of ``s``); complex64."""
        raise NotImplementedError

    def to(self, device) -> ParticleModel:  # analytic models: nothing to move
        return self

    def describe(self) -> dict:
        return {"model": self.name, "diameter_m": self.diameter, "electrons": self.electrons}


def _scale_tensor(scale, s: torch.Tensor) -> torch.Tensor:
    sc = torch.as_tensor(scale, dtype=s.dtype, device=s.device)
    if sc.ndim == 0:
        return sc
    return sc.reshape(sc.shape + (1,) * (s.ndim - 1 - sc.ndim))


class SphereModel(ParticleModel):
    """Uniform sphere of ``diameter`` m and electron ``density`` (e/m^3), analytic.

    Examples
    --------
    >>> m = SphereModel(70e-9)
    >>> f = m.amplitude(torch.zeros(1, 3))
    >>> abs(float(f.real[0]) / m.electrons - 1) < 1e-6
    True
    """

    name = "sphere"

    def __init__(self, diameter: float, density: float = DENSITY["protein"]):
        if not (diameter > 0 and density > 0):
            raise InputError(f"sphere diameter {diameter} and density {density} must be > 0")
        self.diameter = float(diameter)
        self.density = float(density)
        self.extent = self.diameter
        self.electrons = self.density * math.pi * self.diameter ** 3 / 6.0

    def amplitude(self, s, scale=1.0):
        sc = _scale_tensor(scale, s)
        r = 0.5 * self.diameter * sc
        u = 2.0 * math.pi * torch.linalg.vector_norm(s, dim=-1) * r
        f = (self.electrons * sc ** 3) * sphere_form_factor(u)
        return torch.complex(f.to(torch.float32), torch.zeros_like(f, dtype=torch.float32))


class SpheroidModel(ParticleModel):
    """Uniform spheroid: equal-volume ``diameter``, ``aspect`` = polar / equatorial semi-axis
    (polar axis along the particle's z), analytic.

    Examples
    --------
    >>> m = SpheroidModel(60e-9, aspect=2.0)
    >>> round(m.extent * 1e9, 1)
    95.2
    """

    name = "spheroid"

    def __init__(self, diameter: float, aspect: float = 1.0,
                 density: float = DENSITY["contaminant"]):
        if not (diameter > 0 and aspect > 0 and density > 0):
            raise InputError(f"spheroid diameter {diameter}, aspect {aspect} and density "
                             f"{density} must be > 0")
        self.diameter = float(diameter)
        self.aspect = float(aspect)
        self.density = float(density)
        r = 0.5 * self.diameter
        self.a = r / self.aspect ** (1.0 / 3.0)
        self.c = self.a * self.aspect
        self.extent = 2.0 * max(self.a, self.c)
        self.electrons = self.density * math.pi * self.diameter ** 3 / 6.0

    def amplitude(self, s, scale=1.0):
        sc = _scale_tensor(scale, s)
        q = torch.sqrt((self.a * s[..., 0]) ** 2 + (self.a * s[..., 1]) ** 2
                       + (self.c * s[..., 2]) ** 2)
        u = 2.0 * math.pi * q * sc
        f = (self.electrons * sc ** 3) * sphere_form_factor(u)
        return torch.complex(f.to(torch.float32), torch.zeros_like(f, dtype=torch.float32))


class MapModel(ParticleModel):
    """A particle given as an electron-density map, sliced from its padded 3-D transform.

    Parameters
    ----------
    density : array_like (n, n, n)
        Electron density in e/m^3, axes (z, y, x), the particle centred at index n // 2.
    voxel_size : float
        Metres.
    pad : float
        Transform grid side / particle extent (linear oversampling of the transform, >= 2;
        8 by default: the trilinear interpolation error of |F|^2 stays at the per-cent level).
    name : str
    diameter : float, optional
        Nominal diameter (default: the equal-volume diameter of the electrons at the median
        density of the voxels above half the maximum).
    voxel_average : bool
        The map holds averages over each voxel (as the supersampled occupancies of
        :func:`icosahedron_density` do): the transform is divided by the voxel box's transform
        ``sinc(s_x dx) sinc(s_y dx) sinc(s_z dx)``, which otherwise dims the pattern towards
        the grid's Nyquist (to 0.64^3 in intensity per axis there).

    Notes
    -----
    ``F(s_k) = dV fftshift(fftn(ifftshift(rho)))`` on the grid ``s_k = (k - N // 2) / (N dx)``;
    the slice at arbitrary ``s`` is the trilinear interpolation of the real and imaginary parts
    (``grid_sample``, ``align_corners=True``); ``s`` beyond the grid's Nyquist ``1 / (2 dx)``
    gives 0.

    Examples
    --------
    >>> m = icosahedron_model(70e-9, s_max=5e7)
    >>> m.amplitude(torch.zeros(1, 4, 4, 3)).shape
    torch.Size([1, 4, 4])
    """

    name = "map"

    def __init__(self, density, voxel_size: float, *, pad: float = 8.0, name: str = "map",
                 diameter: float | None = None, voxel_average: bool = False, device=None):
        rho = np.asarray(density, dtype=np.float64)
        if rho.ndim != 3 or min(rho.shape) < 2:
            raise InputError(f"density map shape {rho.shape}: expected a 3-D volume")
        if not np.all(np.isfinite(rho)):
            raise InputError("density map holds non-finite values")
        if not (voxel_size > 0 and pad >= 2):
            raise InputError(f"voxel size {voxel_size} must be > 0 and pad {pad} >= 2")
        self.name = name
        self.voxel_size = float(voxel_size)
        dv = self.voxel_size ** 3
        self.electrons = float(rho.sum() * dv)
        if self.electrons <= 0:
            raise InputError("density map has no positive electron count")
        peak = rho.max()
        inside = rho > 0.1 * peak
        if diameter is None:  # equal volume: electrons / the typical inner density
            typical = float(np.median(rho[rho > 0.5 * peak]))
            diameter = (6.0 * self.electrons / typical / math.pi) ** (1.0 / 3.0)
        self.diameter = float(diameter)
        c = np.array([n // 2 for n in rho.shape], dtype=np.float64)
        idx = np.argwhere(inside)
        rmax = float(np.sqrt(((idx - c) ** 2).sum(axis=1)).max()) + 1.0 if idx.size else 1.0
        self.extent = 2.0 * rmax * self.voxel_size
        n = _fast_size(max(int(math.ceil(pad * max(2.0 * rmax, 1.0))), max(rho.shape)))
        from ..core.resources import check_memory

        check_memory(24.0 * n ** 3, f"the {n}^3 transform of the {name} particle model "
                     f"(voxel {self.voxel_size:.3g} m, pad {pad:g})")
        # the particle wrapped around index 0 (= ifftshift of the centred volume), so one
        # fftshift after the FFT gives the centred transform
        vol = torch.zeros((n, n, n), dtype=torch.float32)
        idx = [(np.arange(k) - k // 2) % n for k in rho.shape]
        vol[np.ix_(*idx)] = torch.from_numpy(rho.astype(np.float32))
        f = torch.fft.fftshift(torch.fft.fftn(vol))
        del vol
        f.mul_(np.float32(dv))
        if voxel_average:
            # the map holds voxel averages (occupancies): undo the voxel box's transform,
            # sinc(k / n) along each axis, so F is that of the continuous particle
            sinc = torch.sinc((torch.arange(n, dtype=torch.float32) - n // 2) / n)
            f /= (sinc[:, None, None] * sinc[None, :, None] * sinc[None, None, :])
        grid = torch.view_as_real(f).permute(3, 0, 1, 2).contiguous()[None]  # (1, 2, n, n, n)
        del f
        self.n = n
        self.ds = 1.0 / (n * self.voxel_size)
        self.s_nyquist = 0.5 / self.voxel_size
        from ..core.device import resolve_device

        self._grid = grid.to(resolve_device(device))

    def to(self, device):
        from ..core.device import resolve_device

        self._grid = self._grid.to(resolve_device(device))
        return self

    @property
    def grid_bytes(self) -> int:
        return int(self._grid.numel() * 4)

    def amplitude(self, s, scale=1.0):
        s = s.to(self._grid.device, torch.float32)
        sc = _scale_tensor(scale, s)
        p = s * sc.unsqueeze(-1) if sc.ndim else s * sc
        lead = p.shape[:-1]
        g = (p.reshape(1, 1, 1, -1, 3) / self.ds + self.n // 2) * (2.0 / (self.n - 1)) - 1.0
        out = torch.nn.functional.grid_sample(self._grid, g, mode="bilinear",
                                              padding_mode="zeros", align_corners=True)
        out = out.reshape(2, *lead)
        amp = sc ** 3
        return torch.complex(out[0] * amp, out[1] * amp)


def _fast_size(n: int) -> int:
    """The smallest even number >= n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = max(2, int(n))
    while True:
        if m % 2 == 0:
            k = m
            for p in (2, 3, 5):
                while k % p == 0:
                    k //= p
            if k == 1:
                return m
        m += 1


# --------------------------------------------------------------------------- builders
def _face_normals() -> np.ndarray:
    """The 10 unit face-normal directions of an icosahedron with 2-fold axes along x, y, z
    (the 20 vertices of the dual dodecahedron, one of each +- pair)."""
    v = [(1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)]
    a, b = 1.0 / _PHI, _PHI
    v += [(0, a, b), (0, a, -b), (a, b, 0), (a, -b, 0), (b, 0, a), (-b, 0, a)]
    n = np.array(v, dtype=np.float64)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _ico_inradius(diameter: float) -> float:
    """Inradius of the icosahedron whose volume equals that of a sphere of ``diameter``."""
    vol = math.pi * diameter ** 3 / 6.0
    edge = (vol / (5.0 / 12.0 * (3.0 + math.sqrt(5.0)))) ** (1.0 / 3.0)
    return _PHI ** 2 * edge / (2.0 * math.sqrt(3.0))


def _occupancy(n: int, voxel: float, inside, supersample: int = 3) -> np.ndarray:
    """Fraction of each voxel of an (n, n, n) grid (centre n // 2) where ``inside(x, y, z)``."""
    ss = int(supersample)
    k = ((np.arange(n * ss) + 0.5) / ss - 0.5 - n // 2) * voxel  # sample positions, metres
    y, x = np.meshgrid(k, k, indexing="ij")
    out = np.empty((n, n, n), dtype=np.float32)
    for i in range(n):  # one plane of voxels at a time: memory O(n^2 ss^3)
        z = k[i * ss:(i + 1) * ss, None, None]
        xx, yy, zz = np.broadcast_arrays(x[None], y[None], z)
        occ = inside(xx, yy, zz).astype(np.float32)
        out[i] = occ.reshape(ss, n, ss, n, ss).mean(axis=(0, 2, 4))
    return out


def icosahedron_density(diameter: float, voxel_size: float, density: float = DENSITY["protein"],
                        supersample: int = 3) -> np.ndarray:
    """A uniform icosahedron (equal-volume ``diameter``) voxelised with ``supersample``^3 points
    per voxel: electron density (e/m^3), shape (n, n, n), centred at n // 2.

    Examples
    --------
    >>> rho = icosahedron_density(70e-9, 4e-9)
    >>> rho.shape[0] >= 18
    True
    """
    r_in = _ico_inradius(diameter)
    r_circ = r_in * 1.2584  # circumradius / inradius of an icosahedron
    n = 2 * int(math.ceil(r_circ / voxel_size)) + 3
    from ..core.resources import check_memory

    check_memory(8.0 * 2 * n ** 3 * (512 / 125), f"voxelising a {n}^3 icosahedron")
    normals = _face_normals()

    def inside(x, y, z):
        ok = np.ones(x.shape, dtype=bool)
        for nx, ny, nz in normals:
            ok &= np.abs(nx * x + ny * y + nz * z) <= r_in
        return ok

    occ = _occupancy(n, voxel_size, inside, supersample).astype(np.float64)
    # exact volume: the supersampled voxelisation misses ~1 % at the faces
    occ *= (math.pi * diameter ** 3 / 6.0) / (occ.sum() * voxel_size ** 3)
    return density * occ


def _voxel_for(s_max: float, margin: float) -> float:
    if not (s_max > 0 and margin >= 1):
        raise InputError(f"s_max {s_max} must be > 0 and margin {margin} >= 1")
    return 0.5 / (s_max * margin)


def icosahedron_model(diameter: float = 70e-9, *, s_max: float, margin: float = 1.3,
                      pad: float = 8.0, density: float = DENSITY["protein"],
                      device=None) -> MapModel:
    """A uniform voxel icosahedron whose transform covers ``|s| <= s_max * margin``.

    ``margin`` leaves room for particles up to ``margin`` times the nominal size (size
    variation is done by scaling ``s``).

    Examples
    --------
    >>> from phasekit.spi.detector import amo86615_geometry
    >>> m = icosahedron_model(70e-9, s_max=amo86615_geometry(64, 4).s_max())
    >>> m.name
    'icosahedron'
    """
    dx = _voxel_for(s_max, margin)
    rho = icosahedron_density(diameter, dx, density)
    return MapModel(rho, dx, pad=pad, name="icosahedron", diameter=diameter, voxel_average=True,
                    device=device)


def virus_model(diameter: float = 70e-9, *, s_max: float, margin: float = 1.3, pad: float = 8.0,
                capsid: float = 5e-9, membrane: float = 4e-9, device=None) -> MapModel:
    """A layered tectivirus (PRD1 family): icosahedral protein capsid of thickness ``capsid``,
    an inner lipid membrane of thickness ``membrane`` and a DNA core (nested icosahedra; the
    densities add by linearity).  The membrane and core densities are our choice (lipid
    0.333, hydrated packaged DNA 0.47 e/A^3): no PR772 structure is public (Reddy et al. 2017).

    Examples
    --------
    >>> m = virus_model(70e-9, s_max=3e7)
    >>> m.name
    'virus'
    """
    dx = _voxel_for(s_max, margin)
    r_in = _ico_inradius(diameter)
    if capsid + membrane >= r_in:
        raise InputError(f"capsid {capsid} + membrane {membrane} m exceed the particle "
                         f"inradius {r_in:.3g} m")
    d1 = diameter * (r_in - capsid) / r_in
    d2 = diameter * (r_in - capsid - membrane) / r_in
    outer = icosahedron_density(diameter, dx, 1.0)
    n = outer.shape[0]

    def embed(a):
        out = np.zeros((n, n, n))
        o = (n - a.shape[0]) // 2
        out[o:o + a.shape[0], o:o + a.shape[0], o:o + a.shape[0]] = a
        return out

    mem = embed(icosahedron_density(d1, dx, 1.0))
    core = embed(icosahedron_density(d2, dx, 1.0))
    rho = (DENSITY["protein"] * outer + (DENSITY["lipid"] - DENSITY["protein"]) * mem
           + (DENSITY["dna_core"] - DENSITY["lipid"]) * core)
    return MapModel(rho, dx, pad=pad, name="virus", diameter=diameter, voxel_average=True,
                    device=device)


def load_density_map(path, *, dataset: str | None = None,
                     voxel_size: float | None = None) -> tuple[np.ndarray, float]:
    """Read a density map from MRC/CCP4 or HDF5: (array (z, y, x) float64, voxel size m).

    MRC: the voxel size comes from the header's cell (Angstrom) unless given.  HDF5: the
    dataset ``dataset`` (default the first 3-D numeric dataset), the voxel size from its
    ``voxel_size`` attribute (metres) unless given.

    Raises
    ------
    FileFormatError
        Unreadable file, no 3-D dataset, unknown voxel size.
    """
    from ..io.cxi_common import _existing_file, _sniff, reading_hdf5
    from ..io.tomo_formats import read_mrc

    p = _existing_file(path)
    if _sniff(p) == "hdf5":
        import h5py

        with reading_hdf5(p, "density map") as f:
            names: list[str] = []
            if dataset is None:
                f.visititems(lambda k, o: names.append(k) if isinstance(o, h5py.Dataset)
                             and o.ndim == 3 and o.dtype.kind in "iuf" else None)
                if not names:
                    raise FileFormatError(f"{p}: no 3-D numeric dataset (a density map)")
                dataset = names[0]
            ds = f.get(dataset)
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 3 or ds.dtype.kind not in "iuf":
                raise FileFormatError(f"{p}: /{str(dataset).strip('/')} is not a 3-D numeric "
                                      "dataset")
            rho = np.asarray(ds[()], dtype=np.float64)
            if voxel_size is None and "voxel_size" in ds.attrs:
                voxel_size = float(np.asarray(ds.attrs["voxel_size"]).ravel()[0])
    else:
        data, hdr = read_mrc(p)
        rho = np.asarray(data, dtype=np.float64)
        if voxel_size is None and hdr.get("pixel"):
            voxel_size = float(hdr["pixel"]) * 1e-10
    if voxel_size is None or not (voxel_size > 0):
        raise FileFormatError(f"{p}: the voxel size is not in the file; give it (metres)")
    return rho, float(voxel_size)


def map_model(path, *, s_max: float, margin: float = 1.3, pad: float = 8.0,
              dataset: str | None = None, voxel_size: float | None = None,
              density: float = DENSITY["protein"], device=None) -> MapModel:
    """A particle from an MRC/HDF5 density map.

    The map's values are taken as relative densities: they are scaled so the median of the
    voxels above half the maximum is ``density`` (protein by default; only the fluence
    calibration uses the absolute scale, and ``phasekit simulate spi`` calibrates on photons
    per pattern).
    Negative values are clipped to 0.  A map finer than the detector needs (Nyquist above
    ``s_max * margin``) is binned by an integer factor; a coarser one gives zero beyond its
    Nyquist (a warning is logged).

    Examples
    --------
    >>> m = map_model("pr772.mrc", s_max=1.2e8)  # doctest: +SKIP
    """
    rho, dx = load_density_map(path, dataset=dataset, voxel_size=voxel_size)
    rho = np.clip(rho, 0, None)
    if rho.max() <= 0:
        raise FileFormatError(f"{path}: the density map has no positive value")
    need = _voxel_for(s_max, margin)
    b = int(need // dx)
    if b >= 2:
        n = [k // b * b for k in rho.shape]
        rho = rho[:n[0], :n[1], :n[2]].reshape(n[0] // b, b, n[1] // b, b, n[2] // b, b) \
            .mean(axis=(1, 3, 5))
        dx *= b
    elif dx > need * 1.001:
        log.warning("%s: voxel %.3g m is coarser than the detector needs (%.3g m); the pattern "
                    "is zero beyond |s| = %.3g 1/m", path, dx, need, 0.5 / dx)
    rho = rho * (density / float(np.median(rho[rho > 0.5 * rho.max()])))
    return MapModel(rho, dx, pad=pad, name=f"map:{Path(os.fspath(path)).name}", device=device)


def make_model(kind: str = "icosahedron", *, diameter: float = 70e-9, s_max: float,
               pad: float = 8.0, margin: float = 1.3, device=None, **kw) -> ParticleModel:
    """A model by name: ``icosahedron``, ``sphere``, ``virus`` or a path to an MRC/HDF5 map.

    Examples
    --------
    >>> make_model("sphere", s_max=1e8).name
    'sphere'
    """
    k = str(kind)
    if k.lower() == "sphere":
        return SphereModel(diameter, kw.get("density", DENSITY["protein"]))
    if k.lower() == "icosahedron":
        return icosahedron_model(diameter, s_max=s_max, margin=margin, pad=pad, device=device)
    if k.lower() == "virus":
        return virus_model(diameter, s_max=s_max, margin=margin, pad=pad, device=device)
    if os.path.exists(k):
        return map_model(k, s_max=s_max, margin=margin, pad=pad, device=device, **kw)
    raise InputError(f"particle model {kind!r}: expected icosahedron, sphere, virus or the path "
                     "of an MRC/HDF5 density map")
