"""Test objects (phantoms) for CDI simulation.

Every phantom is a 2-D array of shape ``(size, size)``, centred on the pixel ``size // 2``
(docs/conventions.md). Real phantoms are float32, non-negative, scaled to a maximum of 1, and
exactly zero outside a compact region that fits inside the array with a margin of at least one
pixel. Complex phantoms are complex64 with amplitude of at most 1 and the same compact support.

Pixel coordinates are ``x = j - size // 2`` and ``y = i - size // 2`` for pixel ``[i, j]``. An
object symmetric about the origin therefore has its centre of mass on pixel ``size // 2``.

The phantoms:

* :func:`vesicle` is a vesicle-like cell: an irregular elliptical membrane, a weaker interior and
  granules inside it. It stands in for the unpublished "vesicle model" of Pham's thesis
  (Pham 2020, §2.4.1, which gives neither its size nor its shape).
* :func:`blobs` is a sum of smooth Gaussian blobs inside a disk.
* :func:`virus` is the projection of an icosahedral virus-like particle: a capsid shell, a weaker
  interior and some internal density. It looks like the mimivirus projection used by the VR-RK
  paper's synthetic experiment.
* :func:`complex_object` and :func:`complex_phantom` give complex-valued objects with a smooth
  phase.
* :func:`skimage_image` gives grey images bundled with scikit-image.
* :func:`make_object` chooses a phantom by name; the valid names are in :data:`OBJECT_NAMES`.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import ndimage

from phasekit.core.device import to_numpy
from phasekit.core.errors import ConfigError, InputError
from phasekit.core.rng import make_rng

__all__ = [
    "vesicle",
    "blobs",
    "virus",
    "complex_object",
    "complex_phantom",
    "skimage_image",
    "make_object",
    "embed",
    "crop_center",
    "OBJECT_NAMES",
    "SKIMAGE_NAMES",
]

#: Smallest phantom size accepted by the generated phantoms.
MIN_SIZE = 8

# scikit-image test images that ship with the package (no download needed), and the
# ``skimage.data`` function that loads each one.
_SKIMAGE_LOADERS = {
    "astronaut": "astronaut",
    "brick": "brick",
    "camera": "camera",
    "cell": "cell",
    "chelsea": "chelsea",
    "checkerboard": "checkerboard",
    "clock": "clock",
    "coffee": "coffee",
    "coins": "coins",
    "grass": "grass",
    "gravel": "gravel",
    "horse": "horse",
    "hubble_deep_field": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry",
    "microaneurysms": "microaneurysms",
    "moon": "moon",
    "page": "page",
    "rocket": "rocket",
    "shepp_logan": "shepp_logan_phantom",
    "text": "text",
}

#: Names accepted by :func:`skimage_image`.
SKIMAGE_NAMES: list[str] = sorted(_SKIMAGE_LOADERS)

_GENERATED = ["vesicle", "blobs", "virus", "complex"]

#: Names accepted by :func:`make_object`.
OBJECT_NAMES: list[str] = _GENERATED + [f"skimage:{n}" for n in SKIMAGE_NAMES]


# --------------------------------------------------------------------------- helpers


def _check_size(size, name: str = "size", minimum: int = MIN_SIZE) -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {size!r}")
    size = int(size)
    if size <= 0:
        raise InputError(f"{name} must be positive, got {size}")
    if size < minimum:
        raise InputError(f"{name} must be at least {minimum} pixels, got {size}")
    return size


def _check_count(n, name: str, minimum: int = 0) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {n!r}")
    if n < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def _check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def _grid(size: int, oversample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel coordinates ``(y, x)``, with ``oversample``-fold sub-pixel sampling.

    For ``oversample = s`` each pixel is sampled at ``s`` evenly spaced points per axis, so the
    mean over the ``s x s`` samples of a pixel approximates the pixel's area average.
    """
    c = size // 2
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    ax = (np.arange(size)[:, None] - c + sub[None, :]).ravel()
    return np.meshgrid(ax, ax, indexing="ij")


def _bin(arr: np.ndarray, s: int) -> np.ndarray:
    """Mean over ``s x s`` blocks (inverse of the sub-pixel sampling of :func:`_grid`)."""
    if s == 1:
        return arr
    n = arr.shape[0] // s
    return arr.reshape(n, s, n, s).mean(axis=(1, 3))


def _cos2_edge(t: np.ndarray) -> np.ndarray:
    """Smooth step from 1 (``t <= 0``) to 0 (``t >= 1``), ``cos^2(pi t / 2)`` in between."""
    t = np.clip(t, 0.0, 1.0)
    # exactly 0 from t = 1 on (with a little slack for rounding in t)
    return np.where(t < 1.0 - 1e-9, np.cos(0.5 * np.pi * t) ** 2, 0.0)


def _plateau(d: np.ndarray, edge: float) -> np.ndarray:
    """Flat-top compact profile of the normalised radius ``d``: 1 for ``d <= 1 - edge``, 0 for
    ``d >= 1``, a ``cos^2`` roll-off in between."""
    return _cos2_edge((d - (1.0 - edge)) / edge)


def _finish(img: np.ndarray) -> np.ndarray:
    img = np.where(img > 0, img, 0.0)
    m = img.max()
    if m > 0:
        img = img / m
    return img.astype(np.float32)


def _as_array(x, name: str) -> np.ndarray:
    try:
        arr = to_numpy(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


# --------------------------------------------------------------------------- embedding


def _normalise_shape(shape, ndim_max: int, name: str = "shape") -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise InputError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if len(shape) == 0 or len(shape) > ndim_max:
        raise InputError(f"{name} {shape} must have between 1 and {ndim_max} axes")
    if any(s <= 0 for s in shape):
        raise InputError(f"{name} must be positive on every axis, got {shape}")
    return shape


def embed(obj, shape) -> np.ndarray:
    """Zero-pad ``obj`` to ``shape``, keeping it centred.

    The pixel at index ``n // 2`` of ``obj`` goes to index ``N // 2`` of the result on every
    padded axis. This is the centring convention of docs/conventions.md and is exact for odd and
    even sizes. :func:`crop_center` is the exact inverse.

    Parameters
    ----------
    obj : array_like
        Array to pad. ``shape`` applies to its last ``len(shape)`` axes; any leading axes are
        batch axes and are kept.
    shape : tuple of int
        Target shape of the last axes; each entry must be ``>=`` the size of that axis of ``obj``.

    Returns
    -------
    numpy.ndarray
        Padded array, with the dtype of ``obj``.

    Raises
    ------
    InputError
        If ``shape`` is smaller than ``obj`` on some axis, or has more axes than ``obj``.
    """
    arr = _as_array(obj, "obj")
    shape = _normalise_shape(shape, arr.ndim)
    nd = len(shape)
    inner = arr.shape[arr.ndim - nd:]
    if any(n > m for n, m in zip(inner, shape)):
        raise InputError(f"object shape {inner} does not fit in target shape {shape}")
    out = np.zeros(arr.shape[: arr.ndim - nd] + shape, dtype=arr.dtype)
    index = [slice(None)] * (arr.ndim - nd)
    for n, m in zip(inner, shape):
        start = m // 2 - n // 2
        index.append(slice(start, start + n))
    out[tuple(index)] = arr
    return out


def crop_center(arr, shape) -> np.ndarray:
    """Centred crop of the last ``len(shape)`` axes of ``arr`` to ``shape``.

    The pixel at ``N // 2`` of ``arr`` goes to ``n // 2`` of the crop, so
    ``crop_center(embed(x, S), x.shape)`` returns ``x`` exactly.

    Parameters
    ----------
    arr : array_like
        Array to crop.
    shape : tuple of int
        Target shape of the last axes; each entry must be ``<=`` the size of that axis of ``arr``.

    Returns
    -------
    numpy.ndarray
        A copy of the central region.

    Raises
    ------
    InputError
        If ``shape`` is larger than ``arr`` on some axis, or has more axes than ``arr``.
    """
    a = _as_array(arr, "arr")
    shape = _normalise_shape(shape, a.ndim)
    nd = len(shape)
    outer = a.shape[a.ndim - nd:]
    if any(n > m for n, m in zip(shape, outer)):
        raise InputError(f"crop shape {shape} is larger than array shape {outer}")
    index = [slice(None)] * (a.ndim - nd)
    for n, m in zip(shape, outer):
        start = m // 2 - n // 2
        index.append(slice(start, start + n))
    return a[tuple(index)].copy()


# --------------------------------------------------------------------------- vesicle


def vesicle(size: int, rng=None, *, n_bodies: int = 6) -> np.ndarray:
    """Vesicle-like cell: an irregular elliptical membrane, a weak interior and inner bodies.

    This stands in for the simulated "vesicle model" of Pham's thesis (Ch. 2, §2.4.1, Figs.
    2.2-2.4). The thesis does not describe that model, so this phantom is our own
    design from the name alone: a membrane ring with granules inside, non-negative, on a
    compact support.

    The parts:

    * an elliptical membrane with random semi-axes, aspect ratio 0.7-0.95 and orientation. Its
      radius is modulated by random low-order angular harmonics (2-4) of a few percent, so the
      ring is slightly irregular. It has a ``cos^2`` cross-section about 3 % of ``size`` thick
      (at least 2 px) and density about 1, which varies a little along the ring;
    * a uniform interior of density 0.2-0.35 that fades out under the membrane;
    * ``n_bodies`` elliptical granules of density 0.25-0.65, with flat tops and soft edges, of
      different sizes. They lie wholly inside the membrane and may overlap.

    The image is scaled to a maximum of 1 and is zero outside the membrane. The membrane's
    outer edge stays at least one pixel inside the array. The overall extent is about
    0.85-0.93 ``size``.

    Parameters
    ----------
    size : int
        Side of the square array (at least 8).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness. A seed gives the same phantom every time.
    n_bodies : int, optional
        Number of inner granules (``>= 0``).

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(size, size)``, non-negative, maximum 1, centred.

    Raises
    ------
    InputError
        If ``size`` is not an integer >= 8.
    ConfigError
        If ``n_bodies`` is negative or not an integer.
    """
    size = _check_size(size)
    n_bodies = _check_count(n_bodies, "n_bodies")
    gen = make_rng(rng)

    # Membrane geometry. Harmonic amplitudes c_k <= 0.03, so the radius modulation is <= 9 %.
    w_px = max(2.0, 0.03 * size)  # full membrane thickness in pixels
    harm_amp = 0.03
    # Outer edge along the major axis: a (1 + 3 c) (1 + hw) with hw * a <= 0.6 w_px (b/a >= 0.7).
    # Keep it 1.5 px inside the last pixel centre (2 x 2 sub-samples reach 0.25 px further).
    a_max = (size / 2.0 - 1.5) / (1.0 + 3 * harm_amp) - 0.6 * w_px
    a = min(gen.uniform(0.40, 0.43) * size, a_max)
    b = a * gen.uniform(0.7, 0.95)
    angle = gen.uniform(0.0, np.pi)
    ks = np.array([2, 3, 4])
    ck = gen.uniform(-harm_amp, harm_amp, size=ks.size)
    phik = gen.uniform(0.0, 2 * np.pi, size=ks.size)
    dens_k = gen.integers(1, 4)
    dens_phase = gen.uniform(0.0, 2 * np.pi)
    interior_level = gen.uniform(0.2, 0.35)

    s = 2 if size <= 512 else 1
    y, x = _grid(size, s)
    ca, sa = np.cos(angle), np.sin(angle)
    xr = ca * x + sa * y
    yr = -sa * x + ca * y
    theta = np.arctan2(yr / b, xr / a)
    r_b = 1.0 + np.tensordot(ck, np.cos(ks[:, None, None] * theta[None] + phik[:, None, None]), 1)
    rho = np.hypot(xr / a, yr / b) / r_b  # 1 on the centre line of the membrane
    hw = 0.5 * w_px / math.sqrt(a * b)  # membrane half-thickness in units of rho

    ring = _cos2_edge(np.abs(rho - 1.0) / hw) * (1.0 + 0.1 * np.cos(dens_k * theta + dens_phase))
    interior = interior_level * _plateau(rho, hw)  # fades out between 1 - hw and 1
    img = ring + interior

    # Inner bodies, each wholly inside rho < 1 - hw (the membrane's inner edge).
    b_in = b * (1.0 - 3 * harm_amp) * (1.0 - 1.5 * hw)  # radius safely inside the membrane
    for _ in range(n_bodies):
        rad = max(gen.uniform(0.07, 0.22) * b, 1.0)
        aspect = gen.uniform(0.65, 1.0)
        # centre uniform in the ellipse whose semi-axes are those of the interior minus ``rad``
        # (rotated-ellipse frame), so the whole body lies inside the membrane
        rr = math.sqrt(gen.uniform()) * 0.95
        ph = gen.uniform(0, 2 * np.pi)
        cx = rr * max(a / b * b_in - rad, 0.0) * math.cos(ph)
        cy = rr * max(b_in - rad, 0.0) * math.sin(ph)
        bang = gen.uniform(0, np.pi)
        dens = gen.uniform(0.25, 0.65)
        cb, sb = np.cos(bang), np.sin(bang)
        dx, dy = xr - cx, yr - cy
        u = cb * dx + sb * dy
        v = -sb * dx + cb * dy
        d = np.hypot(u / rad, v / (rad * aspect))
        img = img + dens * _plateau(d, 0.4) * (rho < 1.0)

    img = np.where(rho < 1.0 + hw, img, 0.0)
    return _finish(_bin(img, s))


# --------------------------------------------------------------------------- blobs


def blobs(size: int, rng=None, *, n_blobs: int = 8, smoothness: float = 0.08) -> np.ndarray:
    """Random smooth blobs: a sum of Gaussians inside a disk.

    The blob centres are drawn uniformly in a disk of radius ``0.27 size``, then shifted
    together so that the centre of mass of the blobs is at the array centre. Each blob has an amplitude
    in [0.3, 1] and a width ``sigma = smoothness * size * U(0.6, 1.4)``. A ``cos^2`` window
    from ``0.36 size`` to ``0.45 size`` makes the sum exactly zero outside a disk of radius
    ``0.45 size``.

    Parameters
    ----------
    size : int
        Side of the square array (at least 8).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness.
    n_blobs : int, optional
        Number of Gaussian blobs (``>= 1``).
    smoothness : float, optional
        Typical Gaussian standard deviation as a fraction of ``size`` (``> 0``). Larger values
        give smoother objects.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(size, size)``, non-negative, maximum 1, centred.

    Raises
    ------
    InputError
        If ``size`` is not an integer >= 8.
    ConfigError
        If ``n_blobs < 1`` or ``smoothness`` is not a positive finite number.
    """
    size = _check_size(size)
    n_blobs = _check_count(n_blobs, "n_blobs", minimum=1)
    smoothness = _check_positive(smoothness, "smoothness")
    gen = make_rng(rng)
    r_disk = min(0.45 * size, size / 2.0 - 1.5)
    y, x = _grid(size)
    centres = np.empty((n_blobs, 2))
    sigmas = np.empty(n_blobs)
    amps = np.empty(n_blobs)
    for k in range(n_blobs):
        rr = 0.6 * r_disk * math.sqrt(gen.uniform())
        ph = gen.uniform(0, 2 * np.pi)
        centres[k] = rr * math.cos(ph), rr * math.sin(ph)
        sigmas[k] = max(smoothness * size * gen.uniform(0.6, 1.4), 0.5)
        amps[k] = gen.uniform(0.3, 1.0)
    # Centre the object: move the blobs so that their centre of mass (blob mass ~ amp sigma^2)
    # is at the origin, then shrink the layout radially if a blob left the 0.6 r_disk disk.
    mass = amps * sigmas**2
    centres -= (mass[:, None] * centres).sum(axis=0) / mass.sum()
    reach = np.hypot(centres[:, 0], centres[:, 1]).max()
    if reach > 0.6 * r_disk:
        centres *= 0.6 * r_disk / reach
    img = np.zeros((size, size))
    for (cx, cy), sig, amp in zip(centres, sigmas, amps):
        img += amp * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sig**2))
    r = np.hypot(x, y)
    img *= _plateau(r / r_disk, 0.2)
    return _finish(img)


# --------------------------------------------------------------------------- virus

_PHI = (1.0 + math.sqrt(5.0)) / 2.0


def _icosahedron_vertices() -> np.ndarray:
    """The 12 vertices ``(0, +-1, +-phi)`` and their cyclic permutations, on the unit sphere."""
    v = []
    for s1 in (-1.0, 1.0):
        for s2 in (-1.0, 1.0):
            v.append((0.0, s1, s2 * _PHI))
            v.append((s1, s2 * _PHI, 0.0))
            v.append((s2 * _PHI, 0.0, s1))
    v = np.array(v)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _icosahedron_faces(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Outward unit face normals and the inradius of the convex hull of ``vertices``.

    The faces are the vertex triples that are mutually nearest neighbours (edge length =
    minimum vertex distance). The 20 triangles come out of the vertices; nothing is hard-coded.
    """
    d = np.linalg.norm(vertices[:, None] - vertices[None], axis=-1)
    edge = d[d > 1e-9].min()
    adj = np.abs(d - edge) < 1e-6
    normals = []
    n = len(vertices)
    for i in range(n):
        for j in range(i + 1, n):
            if not adj[i, j]:
                continue
            for k in range(j + 1, n):
                if adj[i, k] and adj[j, k]:
                    c = vertices[[i, j, k]].mean(axis=0)
                    normals.append(c / np.linalg.norm(c))
    normals = np.array(normals)
    inradius = float(np.max(normals @ vertices.T, axis=1).min())
    return normals, inradius


def _random_rotation(gen: np.random.Generator) -> np.ndarray:
    """Uniformly distributed rotation matrix (normalised Gaussian quaternion)."""
    q = gen.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _chord(normals: np.ndarray, offset: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Length along z of the ray at ``(x, y)`` inside the convex polyhedron
    ``{p : n_f . p <= offset for all faces f}`` (exact)."""
    zmax = np.full(x.shape, np.inf)
    zmin = np.full(x.shape, -np.inf)
    empty = np.zeros(x.shape, dtype=bool)
    for nx, ny, nz in normals:
        c = offset - nx * x - ny * y
        if nz > 1e-12:
            np.minimum(zmax, c / nz, out=zmax)
        elif nz < -1e-12:
            np.maximum(zmin, c / nz, out=zmin)
        else:
            empty |= c < 0
    length = np.clip(zmax - zmin, 0.0, None)
    length[empty] = 0.0
    return length


def virus(size: int, rng=None, *, shell: bool = True, rotation=None) -> np.ndarray:
    """Projection of an icosahedral virus-like particle.

    The 3-D density is a filled icosahedron built from its 12 vertices ``(0, +-1, +-phi)`` and
    their cyclic permutations. Its circumradius is ``0.45 size`` (at most ``size/2 - 1.5``), so
    the projection fits in the array in any orientation. With ``shell=True`` the particle has a
    dense capsid, the region between the icosahedron and a copy scaled by 0.85, of density 1,
    around a weaker interior of density 0.35. With ``shell=False`` it is uniform with density
    0.6. In both cases a few "genome" balls with the density profile
    ``rho (1 - r^2/s^2)`` lie wholly inside the inner icosahedron.

    The particle is rotated (a uniform random rotation drawn from ``rng``, or ``rotation``) and
    projected along z. The projection is computed analytically, not on a voxel grid. The
    chord of a convex polyhedron along a ray is exact (clipping by the 20 face planes), and a
    ball of profile ``(1 - r^2/s^2)`` projects to ``(4/3) (s^2 - d^2)^{3/2} / s^2``. Each pixel
    is the average of 2 x 2 sub-pixel samples, to reduce aliasing at the facet edges. This is
    fast: well under a second at ``size = 256``.

    The object looks like the mimivirus projection of the VR-RK paper's synthetic experiment
    (Xian et al. 2022, Fig. 1(a), after Li 2016).

    Parameters
    ----------
    size : int
        Side of the square array (at least 8).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness: the orientation (unless ``rotation`` is given) and the internal
        density.
    shell : bool, optional
        Give the particle a denser capsid shell (default True).
    rotation : array_like of shape (3, 3), optional
        Rotation matrix applied to the particle before projection. By default a uniformly
        random rotation is drawn from ``rng``.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(size, size)``, non-negative, maximum 1, centred.

    Raises
    ------
    InputError
        If ``size`` is not an integer >= 8, or ``rotation`` is not a 3 x 3 rotation matrix.
    """
    size = _check_size(size)
    gen = make_rng(rng)
    if rotation is None:
        rot = _random_rotation(gen)
    else:
        rot = np.asarray(to_numpy(rotation), dtype=float)
        if rot.shape != (3, 3) or not np.all(np.isfinite(rot)):
            raise InputError(f"rotation must be a finite 3x3 matrix, got shape {rot.shape}")
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
            raise InputError("rotation must be a proper rotation matrix (orthogonal, det +1)")

    # the last pixel centre is at size/2 - 1 and its sub-samples reach 0.25 px further
    radius = min(0.45 * size, size / 2.0 - 1.5)
    verts = _icosahedron_vertices() * radius
    normals, inradius = _icosahedron_faces(verts)
    normals = normals @ rot.T  # rotate the particle: n' = R n
    inner = 0.85

    s = 2
    y, x = _grid(size, s)
    if shell:
        outer_len = _chord(normals, inradius, x, y)
        inner_len = _chord(normals, inner * inradius, x, y)
        img = 1.0 * (outer_len - inner_len) + 0.35 * inner_len
    else:
        outer_len = _chord(normals, inradius, x, y)
        img = 0.6 * outer_len

    # "Genome" balls inside the inner icosahedron's inscribed sphere.
    r_ins = inner * inradius
    n_balls = int(gen.integers(3, 7))
    for _ in range(n_balls):
        sb = gen.uniform(0.18, 0.35) * r_ins
        direction = gen.normal(size=3)
        direction /= np.linalg.norm(direction)
        c = direction * gen.uniform(0.0, 0.9) * (r_ins - sb)
        c = rot @ c
        dens = gen.uniform(0.15, 0.4)
        d2 = (x - c[0]) ** 2 + (y - c[1]) ** 2
        img += dens * (4.0 / 3.0) * np.clip(sb**2 - d2, 0.0, None) ** 1.5 / sb**2
    img = np.where(outer_len > 0, img, 0.0)
    return _finish(_bin(img, s))


# --------------------------------------------------------------------------- complex objects


def complex_object(amplitude, phase_scale: float = 1.0, rng=None) -> np.ndarray:
    """Attach a smooth random phase to a real amplitude: ``amplitude * exp(i * phase)``.

    The phase field is white noise smoothed by a Gaussian with standard deviation ``n / 8``
    (``n`` the larger side), then mapped linearly onto ``[0, phase_scale]`` radians over the
    pixels where ``amplitude > 0``. Elsewhere it is zero, which does not matter because the
    amplitude is zero there. The object's support is therefore that of ``amplitude``.

    Parameters
    ----------
    amplitude : array_like
        Real, finite, non-negative 2-D array.
    phase_scale : float, optional
        Peak-to-peak phase in radians (``>= 0``).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        complex64 array with the shape of ``amplitude``.

    Raises
    ------
    InputError
        If ``amplitude`` is not a real 2-D array, or has NaN/Inf or negative values.
    ConfigError
        If ``phase_scale`` is negative or not finite.
    """
    amp = _as_array(amplitude, "amplitude")
    if np.iscomplexobj(amp):
        raise InputError("amplitude must be real, got a complex array")
    if amp.ndim != 2:
        raise InputError(f"amplitude must be a 2-D array, got shape {amp.shape}")
    amp = amp.astype(np.float64)
    if not np.all(np.isfinite(amp)):
        raise InputError("amplitude contains NaN or Inf")
    if np.any(amp < 0):
        raise InputError(f"amplitude must be non-negative, min is {amp.min():g}")
    phase_scale = _check_positive(phase_scale, "phase_scale", allow_zero=True)
    gen = make_rng(rng)
    noise = gen.standard_normal(amp.shape)
    field = ndimage.gaussian_filter(noise, sigma=max(amp.shape) / 8.0, mode="wrap")
    inside = amp > 0
    phase = np.zeros(amp.shape)
    if inside.any():
        lo, hi = field[inside].min(), field[inside].max()
        if hi > lo:
            phase[inside] = phase_scale * (field[inside] - lo) / (hi - lo)
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def complex_phantom(size: int, rng=None, *, phase_scale: float = 1.0) -> np.ndarray:
    """Complex version of :func:`blobs`: blob amplitude with a smooth phase in
    ``[0, phase_scale]`` radians (see :func:`complex_object`).

    Parameters
    ----------
    size : int
        Side of the square array (at least 8).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness.
    phase_scale : float, optional
        Peak-to-peak phase in radians.

    Returns
    -------
    numpy.ndarray
        complex64 array of shape ``(size, size)``, amplitude at most 1, centred.
    """
    gen = make_rng(rng)
    return complex_object(blobs(size, gen), phase_scale=phase_scale, rng=gen)


# --------------------------------------------------------------------------- scikit-image


def skimage_image(name: str, size: int) -> np.ndarray:
    """A grey test image that ships with scikit-image, resized to ``(size, size)``.

    Colour images are converted to grey (luminance) and boolean images to 0/1. Non-square
    images are cropped to their central square, then resized with anti-aliasing. The result
    is clipped at 0 and scaled to a maximum of 1. These images fill their whole square, so
    their support is the full box. Only images bundled with scikit-image are offered
    (:data:`SKIMAGE_NAMES`), so nothing is downloaded.

    Parameters
    ----------
    name : str
        One of :data:`SKIMAGE_NAMES` (e.g. ``"camera"``, ``"astronaut"``, ``"moon"``,
        ``"coins"``, ``"shepp_logan"``).
    size : int
        Output side in pixels.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(size, size)``, non-negative, maximum 1.

    Raises
    ------
    InputError
        If scikit-image is not installed, ``name`` is unknown, or ``size`` is not a positive
        integer.
    """
    size = _check_size(size, minimum=1)
    if name not in _SKIMAGE_LOADERS:
        raise InputError(
            f"unknown scikit-image image {name!r}; valid names: {', '.join(SKIMAGE_NAMES)}"
        )
    try:
        import skimage.data
        from skimage.color import rgb2gray, rgba2rgb
        from skimage.transform import resize
    except ImportError as exc:
        raise InputError(
            "scikit-image is required for skimage images; install phasekit[images]"
        ) from exc
    img = getattr(skimage.data, _SKIMAGE_LOADERS[name])()
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.float64)
    if img.ndim == 3:
        if img.shape[-1] == 4:
            img = rgba2rgb(img)
        img = rgb2gray(img)
    img = img.astype(np.float64)
    h, w = img.shape
    m = min(h, w)
    img = img[(h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]
    if m != size:
        img = resize(img, (size, size), order=1, anti_aliasing=size < m, preserve_range=True)
    return _finish(img)


# --------------------------------------------------------------------------- dispatcher


def make_object(name: str, size: int, rng=None) -> np.ndarray:
    """Make a phantom by name.

    Parameters
    ----------
    name : str
        ``"vesicle"`` (:func:`vesicle`), ``"blobs"`` (:func:`blobs`), ``"virus"``
        (:func:`virus`), ``"complex"`` (:func:`complex_phantom`) or ``"skimage:<image>"``
        (:func:`skimage_image`). The full list is :data:`OBJECT_NAMES`.
    size : int
        Side of the square array.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness (not used by the scikit-image images).

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(size, size)`` (complex64 for ``"complex"``).

    Raises
    ------
    InputError
        If ``name`` is unknown (the message lists the valid names) or ``size`` is invalid.
    """
    if not isinstance(name, str):
        raise InputError(f"object name must be a string, got {type(name).__name__}")
    key = name.strip()
    if key.lower().startswith("skimage:"):
        return skimage_image(key.split(":", 1)[1].strip(), size)
    key = key.lower()
    if key == "vesicle":
        return vesicle(size, rng)
    if key == "blobs":
        return blobs(size, rng)
    if key == "virus":
        return virus(size, rng)
    if key == "complex":
        return complex_phantom(size, rng)
    raise InputError(
        f"unknown object name {name!r}; valid names: {', '.join(_GENERATED)}, "
        f"or 'skimage:<image>' with <image> one of {', '.join(SKIMAGE_NAMES)}"
    )
