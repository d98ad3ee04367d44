r"""Dead-leaves images: formula-driven training data for the PINE denoiser.

PINE (Yamada, Akaishi, Yatabe & Takayama, J. Appl. Cryst. 57 (2024), sec. 2.5 "Training of
the denoiser") trains its DnCNN on 1000 synthetic 128 x 128 8-bit images: 500 "DL-Diverse"
(rotated shapes of many sizes) and 500 "DL-Textured" (textured shapes) from the dead-leaves
model of Baradad et al. (NeurIPS 2021).  The paper gives no generator details; ours follows
Baradad's published description:

* radii ``r`` on ``[r_min, r_max] x size`` (``0.03`` and ``1``) with the probability mass
  :math:`p(r)\propto r^{-3}-r_{\max}^{-3}` on 200 levels (the :math:`r^{-3}` law, scale
  invariance);
* shapes uniformly among circle, square, oriented square, rectangle, triangle, quadrilateral
  ("DL-Diverse" = this mixed, rotated set);
* centres uniform on the canvas, grey level uniform in [0, 255] (the network is single-channel;
  we draw grey levels directly);
* leaves are painted back to front (a new leaf occludes the old ones) until every pixel is
  covered (at most ``max_leaves``).
* "DL-Textured": each leaf is filled with a Gaussian :math:`1/f^s` texture (random phase, spectrum
  :math:`1/(|f_y|^{s_y}+|f_x|^{s_x})`, :math:`s\sim U[0.5,3.5]`, :math:`s_{y,x}=s\pm d`,
  :math:`d\sim N(0,0.05^2)`), min-max scaled to [0, 255] and blended with the leaf's grey level
  with a weight ``w ~ U[0.5, 1]`` (our resolution: Baradad's textures also match colour histograms
  and wavelet marginals, which a grey generator does not need).

Each image has its own seed (``seed + index``), so a data set is reproducible image by image and
can be generated in parallel.
"""
from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "oriented_square", "rectangle", "triangle", "quadrilateral")


def radius_pmf(size: int = 128, r_min: float = 0.03, r_max: float = 1.0, n_levels: int = 200,
               exponent: float = 3.0):
    r"""Radius levels (pixels) and their probabilities, :math:`p(r)\propto r^{-3}-r_{\max}^{-3}`.

    Examples
    --------
    >>> r, p = radius_pmf(128)
    >>> round(float(p.sum()), 6), bool(r[0] < r[-1])
    (1.0, True)
    """
    r = np.linspace(r_min, r_max, n_levels)
    w = r ** (-exponent) - r_max ** (-exponent)
    w = np.maximum(w, 0.0)
    if w.sum() <= 0:
        w = np.ones_like(w)
    return r * size, w / w.sum()


def _convex_mask(yy, xx, vy, vx):
    """Pixels (yy, xx) inside the convex polygon with vertices in angular order."""
    inside = np.ones(np.broadcast_shapes(np.shape(yy), np.shape(xx)), bool)
    n = len(vy)
    # orientation of the polygon (angles sorted ascending -> counter-clockwise in (x, y))
    for i in range(n):
        j = (i + 1) % n
        cross = (vx[j] - vx[i]) * (yy - vy[i]) - (vy[j] - vy[i]) * (xx - vx[i])
        inside &= cross >= 0
    return inside


_AR = np.arange(4096, dtype=np.float64)


def _leaf_mask(shape: str, cy, cx, r, u, size: int):
    """Bounding box slices and boolean mask of one leaf (``u``: 4 uniform draws in [0, 1))."""
    y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, size)
    x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, size)
    if y0 >= y1 or x0 >= x1:
        return None
    dy = _AR[y0:y1, None] - cy
    dx = _AR[None, x0:x1] - cx
    if shape == "circle":
        m = dy * dy + dx * dx <= r * r
    elif shape == "square":  # side r sqrt(2), axis aligned
        h = r / np.sqrt(2.0)
        m = (np.abs(dy) <= h) & (np.abs(dx) <= h)
    elif shape == "oriented_square":
        t = 2 * np.pi * u[0]
        c, s = np.cos(t), np.sin(t)
        h = r / np.sqrt(2.0)
        m = (np.abs(c * dx + s * dy) <= h) & (np.abs(-s * dx + c * dy) <= h)
    elif shape == "rectangle":  # corners (+-r cos a, +-r sin a)
        a = 0.5 * np.pi * u[0]
        m = (np.abs(dx) <= r * np.cos(a)) & (np.abs(dy) <= r * np.sin(a))
    else:  # triangle / quadrilateral: sorted random angles on the circle of radius r
        k = 3 if shape == "triangle" else 4
        ang = np.sort(2 * np.pi * u[:k])
        m = _convex_mask(dy, dx, r * np.sin(ang), r * np.cos(ang))
    return (slice(y0, y1), slice(x0, x1)), m


def power_law_texture(size: int, s: float, rng, anisotropy: float = 0.05) -> np.ndarray:
    r"""A Gaussian texture with spectrum :math:`1/(|f_y|^{s_y}+|f_x|^{s_x})`, scaled to [0, 1].

    Examples
    --------
    >>> t = power_law_texture(64, 2.0, np.random.default_rng(0))
    >>> t.shape, float(t.min()), float(t.max())
    ((64, 64), 0.0, 1.0)
    """
    g = np.random.default_rng(rng)
    d = g.normal(0.0, anisotropy)
    sy, sx = s + d, s - d
    f = np.abs(np.fft.fftfreq(size))
    den = f[:, None] ** sy + f[None, :] ** sx
    den[0, 0] = np.inf
    spec = 1.0 / den
    phase = np.exp(2j * np.pi * g.random((size, size)))
    t = np.fft.ifft2(spec * phase).real
    t -= t.min()
    mx = t.max()
    return t / mx if mx > 0 else t


def dead_leaves(size: int = 128, rng=0, *, textured: bool = False, r_min: float = 0.03,
                r_max: float = 1.0, exponent: float = 3.0, max_leaves: int = 5000,
                shapes=SHAPES, texture_pool=None, return_leaves: bool = False):
    """One grey dead-leaves image (float64 in [0, 255], integer levels unless textured).

    Parameters
    ----------
    size : int
        Canvas side (pixels).
    rng : int or numpy Generator
    textured : bool
        DL-Textured (each leaf filled with a 1/f^s texture) instead of DL-Diverse.
    r_min, r_max, exponent
        Radius law (fractions of ``size``), :math:`p(r)\\propto r^{-e}-r_{\\max}^{-e}`.
    max_leaves : int
        Stop after this many leaves even if some pixel is uncovered.
    shapes : sequence of str
        Subset of :data:`SHAPES`.
    texture_pool : list of arrays, optional
        Textures to draw from (``size x size`` in [0, 1]); when None, 8 are drawn for the image.
    return_leaves : bool
        Also return a dict with the leaves' radii (pixels) and shapes, and the coverage.

    Examples
    --------
    >>> img = dead_leaves(64, rng=1)
    >>> img.shape, bool(0 <= img.min() <= img.max() <= 255)
    ((64, 64), True)
    """
    g = np.random.default_rng(rng)
    levels, pmf = radius_pmf(size, r_min, r_max, exponent=exponent)
    cdf = np.cumsum(pmf)
    img = np.zeros((size, size))
    covered = np.zeros((size, size), bool)
    n_uncovered = size * size
    pool = list(texture_pool) if texture_pool is not None else []
    radii, kinds = [], []
    batch = 256
    done = 0
    while n_uncovered > 0 and done < max_leaves:
        nb = min(batch, max_leaves - done)
        rs = levels[np.minimum(np.searchsorted(cdf, g.random(nb)), len(levels) - 1)]
        rs = np.maximum(np.floor(rs), 1.0)  # radius = max(int(r res), 1) as Baradad
        cys, cxs = g.uniform(0, size, nb), g.uniform(0, size, nb)
        greys = g.integers(0, 256, nb).astype(np.float64)
        ks = g.integers(0, len(shapes), nb)
        us = g.random((nb, 4))
        for i in range(nb):
            done += 1
            shape = shapes[ks[i]]
            res = _leaf_mask(shape, cys[i], cxs[i], rs[i], us[i], size)
            radii.append(rs[i])
            kinds.append(shape)
            if res is None:
                continue
            sl, m = res
            if textured:
                if not pool:  # no pool given: 8 textures drawn for this image
                    pool = [power_law_texture(size, g.uniform(0.5, 3.5), g) for _ in range(8)]
                tex = pool[int(g.integers(len(pool)))]
                oy, ox = g.integers(0, tex.shape[0]), g.integers(0, tex.shape[1])
                tile = tex[np.ix_((oy + np.arange(m.shape[0])) % tex.shape[0],
                                  (ox + np.arange(m.shape[1])) % tex.shape[1])]
                w = g.uniform(0.5, 1.0)
                val = w * 255.0 * tile + (1 - w) * greys[i]
                img[sl][m] = val[m]
            else:
                img[sl][m] = greys[i]
            cov = covered[sl]
            n_uncovered -= int(np.count_nonzero(m & ~cov))
            cov |= m
            if n_uncovered == 0:
                break
    if textured:
        img = np.clip(img, 0, 255)
    if return_leaves:
        return img, {"radii": np.asarray(radii), "shapes": kinds,
                     "coverage": float(covered.mean()), "n_leaves": done}
    return img


def texture_pool(n: int, size: int = 128, seed: int = 0, s_range=(0.5, 3.5)) -> list:
    """``n`` textures :func:`power_law_texture` with ``s ~ U[s_range]`` (seeded)."""
    g = np.random.default_rng(seed)
    return [power_law_texture(size, g.uniform(*s_range), g) for _ in range(n)]


def dead_leaves_dataset(n_images: int = 1000, size: int = 128, seed: int = 0,
                        textured_fraction: float = 0.5, n_textures: int = 300,
                        progress: bool = False) -> np.ndarray:
    """The PINE training set: ``n_images`` uint8 images, the first half DL-Diverse, the rest
    DL-Textured (the paper: 500 + 500 of 128 x 128).  Image ``i`` uses seed ``seed + i``.

    Examples
    --------
    >>> x = dead_leaves_dataset(4, size=32, seed=0)
    >>> x.shape, x.dtype
    ((4, 32, 32), dtype('uint8'))
    """
    n_tex = int(round(n_images * textured_fraction))
    n_plain = n_images - n_tex
    pool = texture_pool(min(n_textures, max(n_tex, 1)), size, seed + 10 ** 6) if n_tex else None
    out = np.empty((n_images, size, size), np.uint8)
    it = range(n_images)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="dead leaves", unit="img")
    for i in it:
        img = dead_leaves(size, seed + i, textured=i >= n_plain, texture_pool=pool)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out
