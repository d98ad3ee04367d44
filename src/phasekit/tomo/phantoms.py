"""3-D phantoms for tomography, defined analytically so that they can be sampled on any grid.

Each phantom is a function of centred coordinates in voxel units of the nominal ``size``
grid; :func:`make_phantom` samples it on the voxel grid (optionally averaged over
``supersample^3`` sub-voxels) or on a finer grid for data made without the inverse crime
(:func:`phasekit.tomo.simulate.simulate_tilt_series`).

* ``vesicle``: our hollow vesicle (the thesis does not describe its 64^3 vesicle model, §3.3.1) -- a
  spherical shell of radius ``0.41 size`` (26 px at 64) and thickness ``0.04 size`` (2.5 px at 64),
  a weak interior 0.25 and 5 inner spheres of density 0.6-1.5;
* ``cell``: a cell-like ellipsoid with a membrane, a nucleus-like body, granules and a
  rod-shaped filament (the cyanobacterium stand-in of B2);
* ``nanoparticle``: a binary-alloy nanoparticle of Gaussian atoms (two species, peak 1.0 and
  0.6, sigma 0.9 px) on a jittered fcc-like lattice inside a sphere (the NiPt stand-in of B3).
"""
from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError, InputError
from ..core.rng import make_rng

__all__ = ["make_phantom", "PHANTOMS", "phantom_function"]

PHANTOMS = ("vesicle", "cell", "nanoparticle")


def _ball(X, Y, Z, c, r, edge=0.5):
    d = np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2)
    return np.clip((r - d) / edge + 0.5, 0.0, 1.0) if edge > 0 else (d <= r).astype(float)


def _vesicle(size, gen):
    R = 0.41 * size
    th = 0.04 * size
    bodies = []
    for _ in range(5):
        while True:
            r = gen.uniform(0.06, 0.14) * size
            c = gen.uniform(-1, 1, 3) * (R - th - r - 1)
            if np.linalg.norm(c) < R - th - r - 1:
                break
        bodies.append((c, r, gen.uniform(0.6, 1.5)))

    def f(X, Y, Z):
        d = np.sqrt(X ** 2 + Y ** 2 + Z ** 2)
        shell = np.clip(th / 2 - np.abs(d - R + th / 2) + 0.5, 0, 1)
        inside = np.clip(R - th - d + 0.5, 0, 1)
        out = shell + 0.25 * inside
        for c, r, dens in bodies:
            out = out + (dens - 0.25) * _ball(X, Y, Z, c, r)
        return out
    return f


def _cell(size, gen):
    a, b, c = 0.42 * size, 0.32 * size, 0.24 * size
    mem = max(1.5, 0.03 * size)
    nuc_c = gen.uniform(-0.1, 0.1, 3) * size
    gran = [(gen.uniform(-0.6, 0.6, 3) * np.array([a, b, c]), gen.uniform(0.02, 0.05) * size,
             gen.uniform(0.5, 1.2)) for _ in range(8)]
    rod_dir = gen.normal(size=3)
    rod_dir /= np.linalg.norm(rod_dir)

    def f(X, Y, Z):
        rho = np.sqrt((X / a) ** 2 + (Y / b) ** 2 + (Z / c) ** 2)
        rs = np.sqrt(a * b)
        membrane = np.clip(mem / 2 - np.abs(rho - 1) * rs + 0.5, 0, 1)
        cyto = 0.15 * np.clip((1 - rho) * rs + 0.5, 0, 1)
        out = membrane + cyto
        out = out + 0.35 * _ball(X, Y, Z, nuc_c, 0.12 * size, edge=1.5) * (rho < 1)
        for cc, r, d in gran:
            out = out + d * _ball(X, Y, Z, cc, r) * (rho < 1)
        # filament: a rod through the centre
        P = np.stack([X, Y, Z], -1)
        t = P @ rod_dir
        perp = np.linalg.norm(P - t[..., None] * rod_dir, axis=-1)
        rod = np.clip(1.0 - perp + 0.5, 0, 1) * (np.abs(t) < 0.3 * size) * (rho < 1)
        return out + 0.6 * rod
    return f


def _nanoparticle(size, gen):
    spacing = 2.6  # voxels (~1.2 A at 0.47 A/px)
    R = 0.36 * size
    n = int(np.ceil(R / spacing)) + 1
    g = np.arange(-n, n + 1) * spacing
    A, B, C = np.meshgrid(g, g, g, indexing="ij")
    pts = np.stack([A, B, C], -1).reshape(-1, 3)
    # fcc: keep sites with even index sum
    ijk = np.round(pts / spacing).astype(int)
    pts = pts[(ijk.sum(1) % 2) == 0]
    pts = pts[np.linalg.norm(pts, axis=1) < R]
    pts = pts + gen.normal(scale=0.1, size=pts.shape)
    # two species in random domains (chemical order): Pt-rich core
    heavy = (np.linalg.norm(pts, axis=1) < 0.6 * R) ^ (gen.random(len(pts)) < 0.15)
    amp = np.where(heavy, 1.0, 0.6)
    sig = 0.9

    def f(X, Y, Z):
        out = np.zeros(np.broadcast(X, Y, Z).shape)
        rc = 4 * sig
        for p, a_ in zip(pts, amp):
            sl = (np.abs(X - p[0]) < rc) & (np.abs(Y - p[1]) < rc) & (np.abs(Z - p[2]) < rc)
            if not sl.any():
                continue
            d2 = (X[sl] - p[0]) ** 2 + (Y[sl] - p[1]) ** 2 + (Z[sl] - p[2]) ** 2
            out[sl] += a_ * np.exp(-d2 / (2 * sig ** 2))
        return out
    f.atoms = pts
    f.species = heavy
    return f


def phantom_function(name: str, size: int, rng=None):
    """The analytic phantom ``f(X, Y, Z)`` (centred voxel coordinates of the ``size`` grid)."""
    key = str(name).lower()
    if key not in PHANTOMS:
        raise ConfigError(f"unknown tomography phantom {name!r}; choose from: {', '.join(PHANTOMS)}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise InputError(f"size must be an integer >= 8, got {size!r}")
    gen = make_rng(rng)
    return {"vesicle": _vesicle, "cell": _cell, "nanoparticle": _nanoparticle}[key](int(size), gen)


def sample(f, shape, *, factor: int = 1, offset=None):
    """Sample ``f`` on a grid ``factor`` times finer than the voxel grid of ``shape``.

    Fine voxel ``j`` on axis ``a`` sits at coarse coordinate ``(j - factor N_a/2 - (factor-1)/2)
    / factor`` so that averaging ``factor`` consecutive fine voxels gives coarse voxel centres
    ``i - N_a // 2`` (for even ``N_a``).
    """
    axes = []
    for n in shape:
        j = np.arange(factor * n, dtype=np.float64)
        axes.append((j - factor * (n // 2) - (factor - 1) / 2.0) / factor)
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    return f(X, Y, Z)


def bin_volume(v, factor: int):
    """Mean over ``factor^3`` blocks."""
    if factor == 1:
        return v
    s = v.shape
    return v.reshape(s[0] // factor, factor, s[1] // factor, factor, s[2] // factor,
                     factor).mean((1, 3, 5))


def make_phantom(name: str, size, rng=None, *, supersample: int = 2) -> np.ndarray:
    """A phantom volume, float32, non-negative, centred.

    Parameters
    ----------
    name : {"vesicle", "cell", "nanoparticle"}
    size : int or (Nx, Ny, Nz)
        The phantom is scaled to ``min(size)``; a larger lateral size embeds it (extended mode).
    rng : seed or Generator
    supersample : int
        Average over ``supersample^3`` sub-voxels (anti-aliasing).
    """
    shape = (size,) * 3 if np.isscalar(size) else tuple(int(n) for n in size)
    if len(shape) != 3 or min(shape) < 8:
        raise InputError(f"phantom size must be an int or 3 ints >= 8, got {size!r}")
    if supersample < 1:
        raise ConfigError(f"supersample must be >= 1, got {supersample}")
    f = phantom_function(name, min(shape), rng)
    v = bin_volume(sample(f, shape, factor=supersample), supersample)
    return np.maximum(v, 0).astype(np.float32)


def film_function(shape, thickness: int, rng=None, *, n_blobs_per_area: float = 0.004):
    """An extended thin film: Gaussian blobs of random size and density filling the slab
    ``|z| < thickness / 2`` over the whole lateral ``shape`` (which may exceed the detector)."""
    gen = make_rng(rng)
    Nx, Ny = int(shape[0]), int(shape[1])
    n = max(1, int(n_blobs_per_area * Nx * Ny * thickness / 4))
    # the slab holds the ``thickness`` voxel planes z = -T//2 ... T - T//2 - 1 (centre T//2)
    z0, z1 = -(thickness // 2) - 0.5, thickness - thickness // 2 - 0.5
    c = np.stack([gen.uniform(-Nx / 2, Nx / 2, n), gen.uniform(-Ny / 2, Ny / 2, n),
                  gen.uniform(z0 + 1.5, z1 - 1.5, n)], -1)
    s = gen.uniform(0.8, 1.8, n)
    a = gen.uniform(0.4, 1.0, n)

    def f(X, Y, Z):
        inside = (Z > z0) & (Z < z1)
        out = 0.1 * inside.astype(float)
        for ci, si, ai in zip(c, s, a):
            rc = 4 * si
            sl = (np.abs(X - ci[0]) < rc) & (np.abs(Y - ci[1]) < rc) & (np.abs(Z - ci[2]) < rc)
            if sl.any():
                d2 = (X[sl] - ci[0]) ** 2 + (Y[sl] - ci[1]) ** 2 + (Z[sl] - ci[2]) ** 2
                out[sl] += ai * np.exp(-d2 / (2 * si ** 2))
        return out * inside
    return f
