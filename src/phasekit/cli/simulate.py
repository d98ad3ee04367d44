"""``phasekit simulate``: simulated data sets written to CXI (or ``.npz``) files."""
from __future__ import annotations

import math
from pathlib import Path

import click

from .main import common_options

#: default geometry of a simulated measurement (SI units, written into the file): 8 keV X-rays,
#: a detector 2 m from the sample with 75 um pixels (a typical hybrid pixel detector)
DEFAULT_WAVELENGTH = 1.5498e-10  # m (8 keV)
DEFAULT_DISTANCE = 2.0  # m
DEFAULT_PIXEL_SIZE = 75e-6  # m


class PhotonsType(click.ParamType):
    """A positive number of photons, or ``none`` for a noise-free pattern."""

    name = "PHOTONS"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            v = value
        else:
            text = str(value).strip().lower()
            if text in ("none", "inf", "noise-free", "noiseless"):
                return None
            try:
                v = float(text)
            except ValueError:
                self.fail(f"{value!r} is not a number (or 'none' for a noise-free pattern)",
                          param, ctx)
        if v is not None and (not math.isfinite(v) or v <= 0):
            self.fail(f"{value!r} must be positive (or 'none' for a noise-free pattern)", param, ctx)
        return None if v is None else float(v)


class LengthType(click.ParamType):
    """A positive, finite length in metres."""

    name = "METRES"

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number (metres)", param, ctx)
        if not math.isfinite(v) or v <= 0:
            self.fail(f"{value!r} must be positive and finite (metres)", param, ctx)
        return v


def force_option(f):
    """``--force``: run even when the estimated memory exceeds the available memory."""
    return click.option("--force", is_flag=True, default=False,
                        help="Run even when the estimated memory exceeds the available "
                             "memory.")(f)


def simulate_cdi_file(out, *, obj="vesicle", size=256, oversampling=4.0, photons=1e8,
                      read_noise=0.0, beamstop=3.0, gaps=0, complex_valued=False, seed=0,
                      wavelength=DEFAULT_WAVELENGTH, distance=DEFAULT_DISTANCE,
                      pixel_size=DEFAULT_PIXEL_SIZE):
    """Simulate a CDI pattern and write it (with the ground truth and support) to ``out``.

    ``.npz`` files are written with :func:`phasekit.io.save_npz_diffraction`, anything else as
    CXI.  The memory the simulation needs is checked first
    (:func:`phasekit.core.resources.check_memory`).  Returns ``(SimulatedCDI, Path)``.
    """
    from ..core.resources import check_memory, estimate_cdi_simulation
    from ..io import save_npz_diffraction, write_diffraction
    from ..sim.cdi import simulate_cdi

    check_memory(estimate_cdi_simulation(size, oversampling),
                 f"simulating a {size}x{size} CDI pattern")

    sim = simulate_cdi(obj, size=size, oversampling=oversampling, photons=photons,
                       read_noise=read_noise, beamstop=beamstop, gaps=gaps,
                       complex_valued=complex_valued, rng=seed)
    params = dict(sim.params)
    params["generator"] = "phasekit simulate cdi"
    out = Path(out)
    if out.suffix.lower() == ".npz":
        save_npz_diffraction(out, sim.intensity, mask=sim.mask, wavelength=wavelength,
                             distance=distance, pixel_size=pixel_size, support=sim.support,
                             truth=sim.truth, metadata={"params": params,
                                                        "note": "simulation ground truth"})
    else:
        write_diffraction(out, sim.intensity, mask=sim.mask, wavelength=wavelength,
                          distance=distance, pixel_size=pixel_size, truth=sim.truth,
                          support=sim.support, params=params)
    return sim, out


def simulation_summary(sim, out) -> str:
    shape = "x".join(str(n) for n in sim.intensity.shape)
    photons = "noise-free" if sim.photons is None else f"photons {sim.photons:.3g}"
    n_meas = int(sim.mask.sum())
    kind = "complex" if sim.params.get("complex_valued") else "real"
    return (f"simulated {sim.params.get('obj', 'object')} ({kind}): pattern {shape}, {photons}, "
            f"R_noise {sim.rnoise:.4g}, {n_meas} of {sim.mask.size} pixels measured -> {out}")


@click.group("simulate")
def simulate() -> None:
    """Simulate data sets (with their ground truth)."""


@simulate.command("cdi")
@click.option("--object", "obj", default="vesicle", show_default=True, metavar="NAME",
              help="Phantom: vesicle, blobs, virus, complex, or skimage:<image> "
                   "(e.g. skimage:camera).")
@click.option("--size", type=click.IntRange(min=8), default=256, show_default=True,
              help="Side of the square pattern in pixels.")
@click.option("--oversampling", type=click.FloatRange(min=1.0), default=4.0, show_default=True,
              help="Linear oversampling ratio per axis (pattern size / object size).")
@click.option("--photons", type=PhotonsType(), default="1e8", show_default=True,
              help="Total expected photon count (Poisson noise), or 'none' for noise-free data.")
@click.option("--read-noise", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Gaussian read noise, standard deviation in counts.")
@click.option("--beamstop", type=click.FloatRange(min=0.0), default=3.0, show_default=True,
              help="Beamstop radius in pixels (0 = none).")
@click.option("--gaps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Width of a cross of detector gaps through the centre, pixels (0 = none).")
@click.option("--complex/--real", "complex_valued", default=False, show_default=True,
              help="Give the object a smooth random phase (complex) or keep it real.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed (phantom, phase and noise).")
@click.option("--wavelength", type=LengthType(), default=DEFAULT_WAVELENGTH, show_default=True,
              help="X-ray wavelength in metres (written to the file; default 8 keV).")
@click.option("--distance", type=LengthType(), default=DEFAULT_DISTANCE, show_default=True,
              help="Sample-detector distance in metres.")
@click.option("--pixel-size", type=LengthType(), default=DEFAULT_PIXEL_SIZE, show_default=True,
              help="Detector pixel size in metres.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Output file (.cxi/.h5/.hdf5/.nxs, or .npz).  Default: <object>.cxi")
@force_option
@common_options
def simulate_cdi_cmd(obj, size, oversampling, photons, read_noise, beamstop, gaps,
                     complex_valued, seed, wavelength, distance, pixel_size, out, force):
    """Simulate a far-field CDI pattern of an isolated object.

    The pattern |fftc(u)|^2 is scaled to PHOTONS, given Poisson (and read) noise, and masked by
    the beamstop and gaps.  The file holds the pattern, the mask, the geometry and, marked as
    simulation ground truth, the object and a support (the object's, dilated by 2 pixels).
    """
    from ..core.resources import memory_override
    from .outputs import HDF5_SUFFIXES, plan_outputs

    if out is None:
        out = obj.replace(":", "_").replace("/", "_") + ".cxi"
    with plan_outputs(out, suffixes=HDF5_SUFFIXES + (".npz",)), \
            memory_override(force, "--force"):
        sim, path = simulate_cdi_file(out, obj=obj, size=size, oversampling=oversampling,
                                      photons=photons, read_noise=read_noise, beamstop=beamstop,
                                      gaps=gaps, complex_valued=complex_valued, seed=seed,
                                      wavelength=wavelength, distance=distance,
                                      pixel_size=pixel_size)
    click.echo(simulation_summary(sim, path))


# tomography (phasekit.tomo): ``phasekit simulate tomo``
from .simulate_tomo import simulate_tomo_cmd  # noqa: E402

simulate.add_command(simulate_tomo_cmd)

# ptychography (phasekit.ptycho): ``phasekit simulate ptycho`` (registers itself on the group)
from . import simulate_ptycho as _simulate_ptycho  # noqa: E402,F401

# single-particle imaging (phasekit.spi): ``phasekit simulate spi`` (registers itself on the group)
from . import simulate_spi as _simulate_spi  # noqa: E402,F401
