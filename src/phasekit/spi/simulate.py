"""Simulated single-particle imaging (SPI) data: PR772-like XFEL diffraction patterns.

Each pattern is the far field of one or several particles in a random orientation, on the Ewald
sphere of a flat detector (:mod:`phasekit.spi.detector`), in expected photons per pixel

    n(pixel) = fluence r_e^2 Omega(pixel) P(pixel) |sum_j F_j(R_j^T s) exp(-2 pi i s . r_j)|^2
               + background(pixel),

then Poisson counts (integers, optionally with Gaussian read noise re-thresholded to photons),
zero on the masked pixels.  This follows Condor (Hantke et al. 2016) and skopi; the design and
its numbers are in docs/spi.md.

* **Orientations**: uniform random unit quaternions (Shoemake 1992), stored per particle.
* **Sizes**: diameter ~ N(D, size_sd D); a change of size scales ``s`` (no new volume).
* **Classes** (label 1 = single hit, 0 = not), each with a recorded sub-class:
  ``single``; ``dimer`` (two touching particles, centre distance 1.0-1.3 D, coherent);
  ``aggregate`` (3-5 particles grown ballistically, coherent); ``far_multiple`` (2-3 particles
  farther apart than the field of view: intensities add, each at its own fluence);
  ``droplet`` (a water sphere, log-normal diameter 40-300 nm); ``spheroid`` (a contaminant,
  equal-volume diameter 50-120 nm, axis ratio 0.5-2); ``coated`` (the particle in a spherical
  residue shell 2-10 nm thick); ``weak`` (a single particle at the edge of the focus: 2-15 % of
  the fluence); ``blank`` (no particle: background only, for hit finding).
  The default mix is the VR-RK paper's 208 single / 289 non-single hits (Table 3, section 4.4),
  the non-single ones split 45 % dimers, 15 % aggregates, 15 % far multiples, 7.5 % droplets,
  7.5 % spheroids, 10 % coated.
* **Photons**: calibrated on photons per pattern, not on pulse energy: ``photons`` is the
  expected number of photons on the whole detector (masked pixels included, background
  excluded) of a *nominal* single particle (nominal size, averaged over 8 fixed orientations)
  at the nominal fluence; a range ``(lo, hi)`` draws it log-uniformly per pattern.  Each pattern's
  fluence is then spread log-normally (``fluence_jitter``, the particle's random position in the
  focus).  The fluence (photons / m^2) that results is stored per pattern.
* **Background**: ``b0 + b1 (1 + |s|^2 / s0^2)^-2`` (gas and beamline scatter) with mean
  ``background`` photons per pixel, scaled per shot by a log-normal factor (sd 0.3).
* **Detector**: a pnCCD-like mask (:func:`~phasekit.spi.detector.pnccd_mask`: gap, hole, bad
  pixels) fixed to the detector, and a beam centre that jitters per pattern (``centre_jitter``
  pixels, normal).
* **Reproducibility**: pattern ``i`` draws everything from ``SeedSequence(seed, spawn_key=(1,
  i))``; the class of each pattern comes from a permutation seeded by ``(seed, N)``; so any chunk
  of the data set is regenerated alone, identical to the same patterns of a full run.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ConfigError, InputError
from .detector import (
    CLASSICAL_ELECTRON_RADIUS,
    DetectorGeometry,
    amo86615_geometry,
    pnccd_mask,
)
from .models import DENSITY, ParticleModel, SphereModel, SpheroidModel, make_model

__all__ = [
    "DEFAULT_MIX",
    "KMAX",
    "SUBCLASSES",
    "SpiChunk",
    "SpiSimulator",
    "quaternion_to_matrix",
    "random_quaternions",
    "simulate_spi",
    "simulate_spi_file",
]

log = logging.getLogger("phasekit")

#: sub-class names; the code stored per pattern is the index in this tuple
SUBCLASSES = ("single", "dimer", "aggregate", "far_multiple", "droplet", "spheroid", "coated",
              "weak", "blank")
#: default split of the non-single patterns (design section 4.1)
DEFAULT_MIX = {"dimer": 0.45, "aggregate": 0.15, "far_multiple": 0.15, "droplet": 0.075,
               "spheroid": 0.075, "coated": 0.10}
#: most particles in one pattern (aggregates of up to 5)
KMAX = 5
#: the VR-RK paper's labelled set: 208 single of 497 (section 4.4)
PAPER_SINGLE_FRACTION = 208 / 497


# --------------------------------------------------------------------------- orientations
def random_quaternions(n: int, rng) -> np.ndarray:
    """``n`` uniformly distributed unit quaternions (w, x, y, z), w >= 0 (Shoemake 1992).

    Examples
    --------
    >>> q = random_quaternions(5, np.random.default_rng(0))
    >>> np.allclose(np.linalg.norm(q, axis=1), 1)
    True
    """
    u1, u2, u3 = rng.random((3, int(n)))
    a, b = np.sqrt(1.0 - u1), np.sqrt(u1)
    q = np.stack([a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2),
                  b * np.sin(2 * np.pi * u3), b * np.cos(2 * np.pi * u3)], axis=1)
    q = q[:, [3, 0, 1, 2]]
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q


def quaternion_to_matrix(q) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4) (w, x, y, z): particle -> lab.

    Examples
    --------
    >>> np.allclose(quaternion_to_matrix(np.array([1.0, 0, 0, 0])), np.eye(3))
    True
    """
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = (q[..., k] for k in range(4))
    r = np.empty(q.shape[:-1] + (3, 3))
    r[..., 0, 0] = 1 - 2 * (y * y + z * z)
    r[..., 0, 1] = 2 * (x * y - z * w)
    r[..., 0, 2] = 2 * (x * z + y * w)
    r[..., 1, 0] = 2 * (x * y + z * w)
    r[..., 1, 1] = 1 - 2 * (x * x + z * z)
    r[..., 1, 2] = 2 * (y * z - x * w)
    r[..., 2, 0] = 2 * (x * z - y * w)
    r[..., 2, 1] = 2 * (y * z + x * w)
    r[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def _unit_vector(rng) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


# --------------------------------------------------------------------------- data classes
@dataclass
class SpiChunk:
    """Patterns ``start:stop`` of a simulation.

    Attributes
    ----------
    frames : numpy.ndarray
        (B, H, W) float32 photon counts (expected counts when simulated without noise), zero on
        masked pixels.
    labels : numpy.ndarray
        (B,) int8: 1 single hit, 0 not.
    meta : dict of numpy.ndarray
        Per-pattern arrays (leading length B): ``subclass``, ``n_particles``, ``diameter_m``
        (B, KMAX), ``quaternion`` (B, KMAX, 4), ``position_m`` (B, KMAX, 3), ``aspect``,
        ``coating_m``, ``fluence_ph_m2``, ``photons_expected`` (signal on the whole detector),
        ``photons`` (counts on measured pixels), ``background_ph_px``, ``centre_px`` (B, 2),
        ``index``.
    start : int
    """

    frames: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)
    start: int = 0


@dataclass
class _Particle:
    group: int
    kind: str               # "main", "droplet", "spheroid", "shell"
    diameter: float
    quat: np.ndarray
    position: np.ndarray    # metres, lab frame
    aspect: float = 1.0
    thickness: float = 0.0


def _parse_photons(photons):
    if isinstance(photons, (tuple, list)):
        if len(photons) != 2:
            raise ConfigError(f"photons range {photons!r}: expected (low, high)")
        lo, hi = (float(v) for v in photons)
    else:
        lo = hi = float(photons)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ConfigError(f"photons {photons!r}: expected a positive number or a range "
                          "low <= high")
    return lo, hi


class SpiSimulator:
    """A prepared SPI simulation: the particle transform, the class plan and the mask.

    Parameters
    ----------
    n : int
        Number of patterns in the data set (fixes the class plan).
    geometry : DetectorGeometry, optional
        Default :func:`~phasekit.spi.detector.amo86615_geometry` (256 x 256, 0.3 mm, 586 mm,
        7.75 A).
    model : str or ParticleModel
        ``"icosahedron"`` (default, the PR772 proxy), ``"sphere"``, ``"virus"``, a path to an
        MRC/HDF5 density map, or a built model.
    diameter : float, optional
        Nominal particle diameter, metres (equal-volume sphere).  Default: 70 nm (PR772) for the
        named models, the model's own size for a density map or a built model (a different
        value rescales it).
    size_sd : float
        Relative standard deviation of the diameter.
    single_fraction : float
        Fraction of single hits (default 208/497, the paper's labelled set).
    mix : dict, optional
        Weights of the other sub-classes (:data:`DEFAULT_MIX`); normalised.
    photons : float or (float, float)
        Expected photons per nominal single hit on the whole detector (or a log-uniform range).
    fluence : float, optional
        Nominal fluence in photons/m^2 instead of ``photons`` (absolute calibration).
    fluence_jitter : float
        Standard deviation of the log of the per-pattern fluence factor.
    background : float
        Mean background photons per pixel (0 = none).
    centre_jitter : float
        Standard deviation of the beam centre, pixels.
    gap, hole_radius, bad_fraction : float
        pnCCD mask (:func:`~phasekit.spi.detector.pnccd_mask`); ``hole_radius`` default
        ``H / 25`` pixels (about 10 on 256 x 256).
    read_noise : float
        Gaussian read noise in photons (the sum is re-thresholded to whole photons); 0 = none.
    noise : bool
        Poisson counts (True) or expected counts (False).
    pad : float
        Transform oversampling of voxel models.
    seed : int
    device : str, optional
        Where the slicing runs (``"cuda"`` when asked for and present).

    Examples
    --------
    >>> from phasekit.spi.detector import amo86615_geometry
    >>> sim = SpiSimulator(8, geometry=amo86615_geometry(64, 4), model="sphere", photons=1e4)
    >>> chunk = sim.simulate(0, 8)
    >>> chunk.frames.shape, chunk.labels.dtype
    ((8, 64, 64), dtype('int8'))
    """

    def __init__(self, n: int, *, geometry: DetectorGeometry | None = None,
                 model: str | ParticleModel = "icosahedron", diameter: float | None = None,
                 size_sd: float = 0.04, single_fraction: float = PAPER_SINGLE_FRACTION,
                 mix: dict | None = None, photons=1e4, fluence: float | None = None,
                 fluence_jitter: float = 0.3, background: float = 0.0,
                 centre_jitter: float = 1.0, gap: float = 4.0, hole_radius: float | None = None,
                 bad_fraction: float = 0.0, read_noise: float = 0.0, noise: bool = True,
                 pad: float = 8.0, seed: int = 0, device=None):
        from ..core.device import resolve_device

        self.n = int(n)
        if self.n < 1:
            raise ConfigError(f"number of patterns must be >= 1, got {n}")
        self.geometry = geometry if geometry is not None else amo86615_geometry(256)
        if not isinstance(self.geometry, DetectorGeometry):
            raise ConfigError("geometry must be a phasekit.spi.detector.DetectorGeometry")
        if diameter is not None and not (diameter > 0 and math.isfinite(diameter)):
            raise ConfigError(f"diameter must be positive, got {diameter}")
        for name, v, hi in (("size_sd", size_sd, 0.5), ("single_fraction", single_fraction, 1.0),
                            ("fluence_jitter", fluence_jitter, 3.0),
                            ("bad_fraction", bad_fraction, 0.99)):
            if not (math.isfinite(v) and 0 <= v <= hi):
                raise ConfigError(f"{name} must be in [0, {hi}], got {v}")
        for name, v in (("background", background), ("centre_jitter", centre_jitter),
                        ("gap", gap), ("read_noise", read_noise)):
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be >= 0, got {v}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.diameter = None if diameter is None else float(diameter)
        self.size_sd = float(size_sd)
        self.single_fraction = float(single_fraction)
        self.mix = self._check_mix(DEFAULT_MIX if mix is None else mix)
        self.photons = _parse_photons(photons)
        if fluence is not None and not (math.isfinite(fluence) and fluence > 0):
            raise ConfigError(f"fluence must be positive, got {fluence}")
        self.fluence = None if fluence is None else float(fluence)
        self.fluence_jitter = float(fluence_jitter)
        self.background = float(background)
        self.centre_jitter = float(centre_jitter)
        self.read_noise = float(read_noise)
        self.noise = bool(noise)
        self.seed = int(seed)
        self.device = resolve_device(device)
        h, w = self.geometry.shape
        self.hole_radius = float(h / 25.0 if hole_radius is None else hole_radius)
        self.gap = float(gap)
        self.bad_fraction = float(bad_fraction)
        self.mask = pnccd_mask((h, w), gap=self.gap, hole_radius=self.hole_radius,
                               centre=self.geometry.beam_centre, bad_fraction=self.bad_fraction,
                               rng=np.random.default_rng(np.random.SeedSequence(self.seed,
                                                                                spawn_key=(2,))))
        s_max = self.geometry.s_max() * (1.0 + 4.0 * self.centre_jitter / max(h, w))
        margin = 1.0 + max(0.3, 5.0 * self.size_sd)
        if isinstance(model, ParticleModel):
            self.model = model.to(self.device)
        else:
            self.model = make_model(model, diameter=self.diameter or 70e-9, s_max=s_max,
                                    pad=pad, margin=margin, device=self.device)
        if self.diameter is None:  # named models: 70 nm; maps and built models: their own size
            self.diameter = float(self.model.diameter)
        self.plan = self._class_plan()
        self._per_fluence = self._reference_photons()

    # ----------------------------------------------------------------- set-up
    @staticmethod
    def _check_mix(mix: dict) -> dict:
        out = {}
        for k, v in dict(mix).items():
            if k not in SUBCLASSES or k == "single":
                raise ConfigError(f"mix: unknown sub-class {k!r}; expected some of "
                                  + ", ".join(SUBCLASSES[1:]))
            if not (math.isfinite(float(v)) and float(v) >= 0):
                raise ConfigError(f"mix: weight of {k} must be >= 0, got {v}")
            out[k] = float(v)
        if sum(out.values()) <= 0:
            out = dict(DEFAULT_MIX)
        total = sum(out.values())
        return {k: v / total for k, v in out.items() if v > 0}

    def _class_plan(self) -> np.ndarray:
        """Sub-class code per pattern: exact counts (largest remainder), shuffled by (seed, N)."""
        n = self.n
        n_single = int(round(self.single_fraction * n))
        names = list(self.mix)
        want = np.array([self.mix[k] * (n - n_single) for k in names])
        counts = np.floor(want).astype(int)
        rest = (n - n_single) - counts.sum()
        if rest > 0:
            counts[np.argsort(-(want - counts), kind="stable")[:rest]] += 1
        codes = [0] * n_single
        for k, c in zip(names, counts, strict=True):
            codes += [SUBCLASSES.index(k)] * int(c)
        codes = np.array(codes, dtype=np.int8)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0, n)))
        return codes[rng.permutation(n)]

    def _reference_photons(self) -> float:
        """Expected photons on the whole detector per unit fluence (photons/m^2) of a nominal
        single particle, averaged over 8 fixed orientations."""
        g = self.geometry
        s = torch.from_numpy(g.s_vectors()).to(self.device, torch.float32)
        weight = torch.from_numpy(CLASSICAL_ELECTRON_RADIUS ** 2 * g.solid_angles()
                                  * g.polarization_factor()).to(self.device, torch.float64)
        q = random_quaternions(8, np.random.default_rng(20230701))
        rot = torch.from_numpy(quaternion_to_matrix(q)).to(self.device, torch.float32)
        sp = torch.einsum("hwi,mij->mhwj", s, rot)
        scale = self.diameter / self.model.diameter
        amp = self.model.amplitude(sp, torch.full((8,), scale, device=self.device))
        tot = (amp.real.double() ** 2 + amp.imag.double() ** 2) * weight
        return float(tot.sum(dim=(1, 2)).mean())

    @property
    def nominal_fluence(self) -> float:
        """Photons/m^2 at which a nominal single hit gives the (geometric mean) ``photons``."""
        if self.fluence is not None:
            return self.fluence
        return math.sqrt(self.photons[0] * self.photons[1]) / self._per_fluence

    def metadata(self) -> dict:
        """Geometry and settings for the stack file (JSON-able)."""
        md = self.geometry.to_metadata()
        counts = {name: int(np.count_nonzero(self.plan == k)) for k, name in enumerate(SUBCLASSES)
                  if np.any(self.plan == k)}
        md.update(generator="phasekit.spi.simulate", n_patterns=self.n,
                  model=self.model.describe(), diameter_m=self.diameter, size_sd=self.size_sd,
                  single_fraction=self.single_fraction, mix=self.mix,
                  photons=list(self.photons), fluence_ph_m2=self.fluence,
                  nominal_fluence_ph_m2=self.nominal_fluence,
                  photons_per_fluence=self._per_fluence, fluence_jitter=self.fluence_jitter,
                  background_ph_px=self.background, centre_jitter_px=self.centre_jitter,
                  mask={"gap_px": self.gap, "hole_radius_px": self.hole_radius,
                        "bad_fraction": self.bad_fraction},
                  read_noise=self.read_noise, noise="poisson" if self.noise else "none",
                  seed=self.seed, subclasses=list(SUBCLASSES), class_counts=counts,
                  labels="1 = single hit, 0 = not")
        return md

    # ----------------------------------------------------------------- one pattern's draws
    def _draw(self, i: int):
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, int(i))))
        code = int(self.plan[i])
        kind = SUBCLASSES[code]
        offset = rng.normal(size=2) * self.centre_jitter
        lo, hi = self.photons
        ph = math.exp(rng.uniform(math.log(lo), math.log(hi))) if hi > lo else lo
        jit = math.exp(self.fluence_jitter * rng.normal())
        bgf = math.exp(0.3 * rng.normal())
        if self.fluence is not None:
            fl = self.fluence * jit
        else:
            fl = ph * jit / self._per_fluence
        d0 = self.diameter

        def size():
            return d0 * max(0.5, 1.0 + self.size_sd * rng.normal())

        parts: list[_Particle] = []
        weights = [1.0]
        if kind in ("single", "weak"):
            parts.append(_Particle(0, "main", size(), random_quaternions(1, rng)[0], np.zeros(3)))
            if kind == "weak":
                fl *= rng.uniform(0.02, 0.15)
        elif kind == "dimer":
            da, db = size(), size()
            u = _unit_vector(rng) * 0.5 * (da + db) * rng.uniform(1.0, 1.3)
            parts += [_Particle(0, "main", da, random_quaternions(1, rng)[0], -0.5 * u),
                      _Particle(0, "main", db, random_quaternions(1, rng)[0], 0.5 * u)]
        elif kind == "aggregate":
            k = int(rng.choice([3, 4, 5], p=[0.6, 0.25, 0.15]))
            ds_, pos = [size()], [np.zeros(3)]
            while len(ds_) < k:
                d = size()
                for _ in range(100):
                    j = int(rng.integers(len(ds_)))
                    p = pos[j] + _unit_vector(rng) * 0.5 * (d + ds_[j]) * rng.uniform(1.0, 1.15)
                    if all(np.linalg.norm(p - pos[m]) >= 0.98 * 0.5 * (d + ds_[m])
                           for m in range(len(ds_))):
                        break
                ds_.append(d)
                pos.append(p)
            c = np.mean(pos, axis=0)
            q = random_quaternions(k, rng)
            parts += [_Particle(0, "main", ds_[m], q[m], pos[m] - c) for m in range(k)]
        elif kind == "far_multiple":
            k = int(rng.choice([2, 3], p=[0.75, 0.25]))
            q = random_quaternions(k, rng)
            weights = [1.0] + [float(rng.uniform(0.3, 1.0)) for _ in range(k - 1)]
            parts += [_Particle(m, "main", size(), q[m], np.zeros(3)) for m in range(k)]
        elif kind == "droplet":
            d = float(np.clip(120e-9 * math.exp(0.5 * rng.normal()), 40e-9, 300e-9))
            parts.append(_Particle(0, "droplet", d, np.array([1.0, 0, 0, 0]), np.zeros(3)))
        elif kind == "spheroid":
            d = rng.uniform(50e-9, 120e-9)
            a = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
            parts.append(_Particle(0, "spheroid", d, random_quaternions(1, rng)[0], np.zeros(3),
                                   aspect=a))
        elif kind == "coated":
            d = size()
            t = rng.uniform(2e-9, 10e-9)
            q = random_quaternions(1, rng)[0]
            parts += [_Particle(0, "main", d, q, np.zeros(3)),
                      _Particle(0, "shell", d, q, np.zeros(3), thickness=t)]
        # "blank": no particle
        return rng, code, offset, fl, bgf, parts, weights

    # ----------------------------------------------------------------- a chunk
    def simulate(self, start: int = 0, stop: int | None = None) -> SpiChunk:
        """Simulate patterns ``start:stop`` (any chunk; equal to the same patterns of a full
        run).

        Returns
        -------
        SpiChunk
        """
        stop = self.n if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= self.n:
            raise InputError(f"pattern range [{start}, {stop}) outside the simulation's "
                             f"{self.n} patterns")
        g = self.geometry
        h, w = g.shape
        b = stop - start
        dev = self.device
        draws = [self._draw(i) for i in range(start, stop)]
        # per-pattern detector maps (the beam centre moves; the detector does not)
        s_lab, omega_p = g.pixel_maps(np.array([d[2] for d in draws]).reshape(b, 2))
        s_t = torch.from_numpy(s_lab).to(dev)
        # groups: coherent sums; each pattern's groups add in intensity
        group_pattern, group_weight, items = [], [], []
        for k, d in enumerate(draws):
            base = len(group_pattern)
            n_groups = max([p.group for p in d[5]], default=-1) + 1
            for gi in range(n_groups):
                group_pattern.append(k)
                group_weight.append(d[6][gi] if gi < len(d[6]) else 1.0)
            for p in d[5]:
                items.append((k, base + p.group, p))
        n_groups = len(group_pattern)
        amp = torch.zeros((max(n_groups, 1), h, w), dtype=torch.complex64, device=dev)
        main = [it for it in items if it[2].kind == "main"]
        if main:
            pk = torch.tensor([it[0] for it in main], device=dev)
            rot = torch.from_numpy(quaternion_to_matrix(np.stack([it[2].quat for it in main]))
                                   ).to(dev, torch.float32)
            scale = torch.tensor([it[2].diameter / self.model.diameter for it in main],
                                 dtype=torch.float32, device=dev)
            sp = torch.einsum("mhwi,mij->mhwj", s_t[pk], rot)  # R^T s as row vectors
            a = self.model.amplitude(sp, scale)
            del sp
            a = a * self._phase(s_t[pk], [it[2].position for it in main])
            amp.index_add_(0, torch.tensor([it[1] for it in main], device=dev), a)
            del a
        for k, gi, p in items:
            if p.kind == "main":
                continue
            sk = s_t[k]
            if p.kind == "droplet":
                a = SphereModel(p.diameter, DENSITY["water"]).amplitude(sk)
            elif p.kind == "spheroid":
                r = torch.from_numpy(quaternion_to_matrix(p.quat)).to(dev, torch.float32)
                a = SpheroidModel(p.diameter, p.aspect).amplitude(sk @ r)
            else:  # a spherical residue shell around the particle
                outer = SphereModel(p.diameter + 2 * p.thickness, DENSITY["residue"])
                inner = SphereModel(p.diameter, DENSITY["residue"])
                a = outer.amplitude(sk) - inner.amplitude(sk)
            amp[gi] += a  # analytic particles sit at the origin
        inten = torch.zeros((b, h, w), dtype=torch.float64, device=dev)
        if n_groups:
            gw = torch.tensor(group_weight, dtype=torch.float64, device=dev)[:, None, None]
            inten.index_add_(0, torch.tensor(group_pattern, device=dev),
                             (amp.real.double() ** 2 + amp.imag.double() ** 2) * gw)
        del amp
        fl = np.array([d[3] for d in draws])
        expected = inten.cpu().numpy() * (CLASSICAL_ELECTRON_RADIUS ** 2 * fl[:, None, None]
                                          * omega_p)
        photons_expected = expected.sum(axis=(1, 2))
        if self.background > 0:
            s0 = 0.15 * g.s_max()
            s2 = (s_lab.astype(np.float64) ** 2).sum(-1)
            shape = 1.0 / (1.0 + s2 / s0 ** 2) ** 2
            shape = 0.3 + 0.7 * shape / shape.mean(axis=(1, 2), keepdims=True)
            bgf = np.array([d[4] for d in draws])
            expected = expected + self.background * bgf[:, None, None] * shape
        frames = np.empty((b, h, w), dtype=np.float32)
        for k, d in enumerate(draws):
            rng = d[0]
            if self.noise:
                c = rng.poisson(expected[k]).astype(np.float64)
                if self.read_noise > 0:
                    c = np.clip(np.rint(c + self.read_noise * rng.normal(size=c.shape)), 0, None)
                frames[k] = c
            else:
                frames[k] = expected[k]
        frames[:, ~self.mask] = 0.0
        meta = self._meta(draws, start, fl, photons_expected, frames)
        labels = (meta["subclass"] == 0).astype(np.int8)
        return SpiChunk(frames=frames, labels=labels, meta=meta, start=start)

    @staticmethod
    def _phase(s: torch.Tensor, positions) -> torch.Tensor | float:
        pos = np.stack([np.asarray(p, dtype=np.float64) for p in positions])
        if not np.any(pos):
            return 1.0
        r = torch.from_numpy(pos).to(s.device, torch.float32)
        # s . r is at most a few tens of cycles: single precision keeps the phase to ~1e-5 rad
        ph = torch.einsum("mhwi,mi->mhw", s, r) * (-2.0 * math.pi)
        return torch.polar(torch.ones_like(ph), ph)

    def _meta(self, draws, start, fl, photons_expected, frames) -> dict:
        b = len(draws)
        out = {
            "index": np.arange(start, start + b, dtype=np.int64),
            "subclass": np.array([d[1] for d in draws], dtype=np.int8),
            "n_particles": np.zeros(b, dtype=np.int8),
            "diameter_m": np.zeros((b, KMAX), dtype=np.float32),
            "quaternion": np.zeros((b, KMAX, 4), dtype=np.float32),
            "position_m": np.zeros((b, KMAX, 3), dtype=np.float32),
            "aspect": np.zeros(b, dtype=np.float32),
            "coating_m": np.zeros(b, dtype=np.float32),
            "fluence_ph_m2": fl.astype(np.float64),
            "photons_expected": photons_expected.astype(np.float32),
            "photons": frames.sum(axis=(1, 2), dtype=np.float64).astype(np.float32),
            "background_ph_px": np.array([self.background * d[4] for d in draws],
                                         dtype=np.float32),
            "centre_px": np.array([np.asarray(self.geometry.beam_centre) + d[2] for d in draws],
                                  dtype=np.float32),
        }
        for k, d in enumerate(draws):
            solid = [p for p in d[5] if p.kind != "shell"]
            out["n_particles"][k] = len(solid)
            for j, p in enumerate(solid[:KMAX]):
                out["diameter_m"][k, j] = p.diameter
                out["quaternion"][k, j] = p.quat
                out["position_m"][k, j] = p.position
                if p.kind == "spheroid":
                    out["aspect"][k] = p.aspect
            for p in d[5]:
                if p.kind == "shell":
                    out["coating_m"][k] = p.thickness
        return out

    # ----------------------------------------------------------------- memory
    def chunk_bytes(self, chunk: int) -> int:
        """Peak memory of simulating ``chunk`` patterns (items of up to 5 particles)."""
        h, w = self.geometry.shape
        per = h * w * (3 * 4 * 2 + 8 * 3 + 8 * 4 + 4 * 2) + 2.5 * h * w * (12 + 8 + 8)
        grid = getattr(self.model, "grid_bytes", 0)
        return int(grid * 1.2 + chunk * per + 64e6)


def simulate_spi(n: int, **kw) -> SpiChunk:
    """Simulate ``n`` patterns in memory (see :class:`SpiSimulator` for the keywords).

    Examples
    --------
    >>> from phasekit.spi.detector import amo86615_geometry
    >>> c = simulate_spi(4, geometry=amo86615_geometry(32, 8), model="sphere", seed=1)
    >>> c.frames.shape
    (4, 32, 32)
    """
    return SpiSimulator(n, **kw).simulate(0, n)


def simulate_spi_file(path, n: int, *, chunk: int = 32, progress: bool = False,
                      simulator: SpiSimulator | None = None, **kw) -> Path:
    """Simulate ``n`` patterns into an SPI stack written chunk by chunk (atomically).

    The memory needed for one chunk and the transform is checked first
    (:func:`phasekit.core.resources.check_memory`); the file holds the frames, the mask, the
    geometry, the labels and the per-pattern metadata of :class:`SpiChunk` (see
    :mod:`phasekit.io.spi`).

    Examples
    --------
    >>> simulate_spi_file("pr772_sim.cxi", 497, photons=(3e3, 1e5), seed=0)  # doctest: +SKIP
    PosixPath('pr772_sim.cxi')
    """
    from tqdm.auto import tqdm

    from ..core.resources import check_memory, format_bytes
    from ..io.spi import StackWriter

    if int(chunk) < 1:
        raise ConfigError(f"chunk must be >= 1, got {chunk}")
    sim = simulator if simulator is not None else SpiSimulator(n, **kw)
    if sim.n != int(n):
        raise ConfigError(f"simulator prepared for {sim.n} patterns, asked for {n}")
    chunk = int(min(chunk, sim.n))
    check_memory(sim.chunk_bytes(chunk), f"simulating SPI chunks of {chunk} patterns of "
                 f"{sim.geometry.shape[0]}x{sim.geometry.shape[1]}")
    log.info("simulating %d patterns in chunks of %d (%s per chunk)", sim.n, chunk,
             format_bytes(sim.chunk_bytes(chunk)))
    with StackWriter(path, sim.geometry.shape, mask=sim.mask, metadata=sim.metadata()) as wr, \
            tqdm(total=sim.n, unit="pattern", desc="simulate spi", disable=not progress,
                 dynamic_ncols=True) as bar:
        for c0 in range(0, sim.n, chunk):
            c = sim.simulate(c0, min(sim.n, c0 + chunk))
            wr.append(c.frames, labels=c.labels, **c.meta)
            bar.update(len(c.frames))
    return Path(os.fspath(path))
