"""``phasekit simulate spi`` (PR772-like single-particle patterns written to a CXI stack) and
``phasekit preprocess-spi`` (hit finding, centring, sphere fit, size filter, crop, scaling).

The geometry defaults to the amo86615 experiment at LCLS AMO (Reddy et al. 2017; Dragonfly's
``config_amo86615.ini``): 1.6 keV (7.75 A), the back pnCCD 586 mm away, 0.3 mm binned pixels,
cropped to ``--size`` and binned ``--binning`` more.  See docs/spi.md.
"""
from __future__ import annotations

import math
import time

import click

from .main import common_options
from .simulate import LengthType, force_option, simulate


class PhotonRangeType(click.ParamType):
    """``1e4`` or a log-uniform range ``3e3:1e5`` of photons per pattern."""

    name = "PHOTONS"

    def convert(self, value, param, ctx):
        if isinstance(value, (tuple, float, int)):
            return value
        text = str(value).strip()
        try:
            parts = [float(p) for p in text.split(":")]
        except ValueError:
            self.fail(f"{value!r}: expected a number of photons (1e4) or a range LOW:HIGH "
                      "(3e3:1e5)", param, ctx)
        if len(parts) not in (1, 2) or not all(math.isfinite(p) and p > 0 for p in parts):
            self.fail(f"{value!r}: expected a positive number or a range LOW:HIGH", param, ctx)
        if len(parts) == 2 and parts[0] > parts[1]:
            self.fail(f"{value!r}: LOW must not exceed HIGH", param, ctx)
        return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _parse_mix(text: str | None) -> dict | None:
    from ..core.errors import ConfigError
    from ..spi.simulate import SUBCLASSES

    if text is None:
        return None
    out = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        name, sep, val = item.partition("=")
        name = name.strip().lower().replace("-", "_")
        try:
            w = float(val) if sep else float("nan")
        except ValueError:
            w = float("nan")
        if not sep or not math.isfinite(w) or w < 0:
            raise ConfigError(f"--mix {text!r}: expected NAME=WEIGHT pairs, e.g. "
                              "dimer=0.5,aggregate=0.2,droplet=0.3")
        if name not in SUBCLASSES[1:]:
            raise ConfigError(f"--mix: unknown sub-class {name!r}; expected some of "
                              + ", ".join(SUBCLASSES[1:]))
        out[name] = w
    if not out or sum(out.values()) <= 0:
        raise ConfigError(f"--mix {text!r}: give at least one positive weight")
    return out


@simulate.command("spi")
@click.option("-n", "--patterns", "n", type=click.IntRange(min=1, max=10_000_000), default=497,
              show_default=True, help="Number of patterns (the VR-RK paper's labelled set: 497).")
@click.option("--size", type=click.IntRange(min=16, max=4096), default=256, show_default=True,
              help="Detector side in (binned) pixels; a crop of the amo86615 pnCCD.")
@click.option("--binning", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Further binning of the 0.3 mm amo86615 pixels (--size 128 --binning 2 keeps "
                   "the q range of 256 x 256).")
@click.option("--model", default="icosahedron", show_default=True, metavar="NAME|FILE",
              help="Particle: icosahedron (PR772 proxy), sphere (analytic), virus (layered "
                   "capsid, membrane, DNA core), or an MRC/HDF5 density map.")
@click.option("--map-voxel-size", type=LengthType(), default=None,
              help="Voxel size of a density map without one in its header (metres).")
@click.option("--diameter-nm", type=click.FloatRange(min=1.0, max=5000.0), default=None,
              help="Nominal particle diameter (equal-volume sphere), nm.  Default: 70 (PR772) "
                   "for the named models, a map's own size.")
@click.option("--size-sd", type=click.FloatRange(min=0.0, max=0.5), default=0.04,
              show_default=True, help="Relative standard deviation of the diameter.")
@click.option("--single-fraction", type=click.FloatRange(min=0.0, max=1.0),
              default=round(208 / 497, 4), show_default=True,
              help="Fraction of single hits (label 1); the rest follow --mix.")
@click.option("--mix", default=None, metavar="NAME=W,...",
              help="Weights of the non-single sub-classes: dimer, aggregate, far_multiple, "
                   "droplet, spheroid, coated, weak, blank.  Default "
                   "dimer=0.45,aggregate=0.15,far_multiple=0.15,droplet=0.075,spheroid=0.075,"
                   "coated=0.1.")
@click.option("--photons", type=PhotonRangeType(), default="1e4", show_default=True,
              help="Expected photons on the detector per nominal single hit, or a log-uniform "
                   "range LOW:HIGH per pattern.")
@click.option("--fluence", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Absolute nominal fluence in photons/um^2 instead of --photons.")
@click.option("--fluence-jitter", type=click.FloatRange(min=0.0, max=3.0), default=0.3,
              show_default=True, help="Standard deviation of the log fluence per pattern.")
@click.option("--background", type=click.FloatRange(min=0.0), default=0.005, show_default=True,
              help="Mean background photons per pixel.")
@click.option("--centre-jitter", type=click.FloatRange(min=0.0, max=100.0), default=1.0,
              show_default=True, help="Standard deviation of the beam centre, pixels.")
@click.option("--gap", type=click.FloatRange(min=0.0), default=4.0, show_default=True,
              help="Gap between the pnCCD halves, pixels (0 = none).")
@click.option("--hole", type=click.FloatRange(min=0.0), default=None,
              help="Radius of the central hole, pixels (default size/25).")
@click.option("--bad-pixels", type=click.FloatRange(min=0.0, max=0.5), default=0.0,
              show_default=True, help="Fraction of random bad pixels.")
@click.option("--read-noise", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Gaussian read noise in photons (re-thresholded to whole photons).")
@click.option("--noise-free", is_flag=True, default=False,
              help="Write expected counts instead of Poisson counts.")
@click.option("--wavelength", type=LengthType(), default=None,
              help="Override the wavelength (metres; amo86615: 7.75e-10).")
@click.option("--distance", type=LengthType(), default=None,
              help="Override the detector distance (metres; amo86615: 0.586).")
@click.option("--pixel-size", type=LengthType(), default=None,
              help="Override the pixel size (metres; amo86615: 3e-4 times --binning).")
@click.option("--chunk", type=click.IntRange(min=1, max=100_000), default=32, show_default=True,
              help="Patterns simulated and written at a time (bounds the memory).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), default="spi_sim.cxi",
              show_default=True, help="Output stack (.cxi/.h5/.hdf5/.nxs).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@force_option
@common_options
def simulate_spi_cmd(n, size, binning, model, map_voxel_size, diameter_nm, size_sd,
                     single_fraction, mix, photons, fluence, fluence_jitter, background,
                     centre_jitter, gap, hole, bad_pixels, read_noise, noise_free, wavelength,
                     distance, pixel_size, chunk, device, seed, out, progress, force):
    """Simulate PR772-like single-particle XFEL patterns into a CXI stack.

    Each pattern is the far field of one or more particles at uniformly random orientations,
    sliced on the Ewald sphere from the particle's padded 3-D transform, scaled to photons,
    with Poisson noise, background, a pnCCD mask (gap, hole) and beam-centre jitter.  The
    stack holds the frames (N, H, W), the mask, the geometry, labels (1 = single hit) and
    per-pattern metadata (sub-class, diameters, orientations, fluence, photons, centre).

    \b
    Examples:
      phasekit simulate spi -n 497 --photons 3e3:1e5 -o pr772_sim.cxi
      phasekit simulate spi -n 10000 --size 128 --binning 2 --chunk 64 -o big.cxi
      phasekit info pr772_sim.cxi
    """
    from dataclasses import replace

    from ..core.resources import memory_override
    from ..spi.detector import amo86615_geometry
    from ..spi.simulate import SUBCLASSES, SpiSimulator, simulate_spi_file
    from .outputs import HDF5_SUFFIXES, plan_outputs

    with plan_outputs(out, suffixes=HDF5_SUFFIXES) as plan, memory_override(force, "--force"):
        geom = amo86615_geometry(size, binning)
        over = {k: v for k, v in (("wavelength", wavelength), ("distance", distance),
                                  ("pixel_size", pixel_size)) if v is not None}
        if over:
            geom = replace(geom, **over)
        kw = {}
        if map_voxel_size is not None:
            kw["voxel_size"] = map_voxel_size
        model_arg = model
        if kw:
            from ..spi.models import map_model

            margin = 1.0 + max(0.3, 5.0 * size_sd)
            model_arg = map_model(model, s_max=geom.s_max() * (1 + 4 * centre_jitter / size),
                                  margin=margin, voxel_size=map_voxel_size, device=device)
        t0 = time.perf_counter()
        diameter = None if diameter_nm is None else diameter_nm * 1e-9
        sim = SpiSimulator(n, geometry=geom, model=model_arg, diameter=diameter,
                           size_sd=size_sd, single_fraction=single_fraction,
                           mix=_parse_mix(mix), photons=photons,
                           fluence=None if fluence is None else fluence * 1e12,
                           fluence_jitter=fluence_jitter, background=background,
                           centre_jitter=centre_jitter, gap=gap, hole_radius=hole,
                           bad_fraction=bad_pixels, read_noise=read_noise,
                           noise=not noise_free, seed=seed, device=device)
        t1 = time.perf_counter()
        path = simulate_spi_file(plan.result, n, chunk=chunk, progress=progress, simulator=sim)
        t2 = time.perf_counter()
    counts = {SUBCLASSES[k]: int((sim.plan == k).sum()) for k in range(len(SUBCLASSES))
              if (sim.plan == k).any()}
    single = counts.get("single", 0)
    ph = sim.photons
    ph_s = f"{ph[0]:.3g}" if ph[0] == ph[1] else f"{ph[0]:.3g}-{ph[1]:.3g}"
    click.echo(f"simulated {n} patterns {geom.shape[0]}x{geom.shape[1]} ({sim.model.name} "
               f"{sim.diameter * 1e9:.4g} nm; {single} single, {n - single} not: "
               + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "single")
               + f"), photons {ph_s} per single hit, nominal fluence "
               f"{sim.nominal_fluence * 1e-12:.3g} ph/um^2")
    rate = n / max(t2 - t1, 1e-9)
    click.echo(f"  {t1 - t0:.1f} s set-up, {t2 - t1:.1f} s simulation ({rate:.1f} patterns/s) "
               f"-> {path}")


@click.command("preprocess-spi")
@click.argument("stack", metavar="STACK")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Output stack.  Default: <input stem>_pre.cxi.")
@click.option("--crop", type=click.IntRange(min=8, max=8192), default=None,
              help="Crop SIZE x SIZE patterns about each pattern's centre.")
@click.option("--scale255", is_flag=True, default=False,
              help="Scale each pattern to [0, 255] (the VR-RK paper's format).")
@click.option("--all-frames", is_flag=True, default=False,
              help="Keep every frame (default: hits only).")
@click.option("--threshold", type=click.FloatRange(min=0.0), default=None,
              help="Hit threshold in photons (default: from the data).")
@click.option("--size-filter", "size_k", type=click.FloatRange(min=0.0, min_open=True),
              default=None, metavar="K",
              help="Keep fitted diameters within mode +- K MAD.")
@click.option("--no-fit", is_flag=True, default=False, help="Skip the sphere-model fit.")
@click.option("--refine", is_flag=True, default=False,
              help="Joint refinement of centre, diameter and intensity (slower).")
@click.option("--wavelength", type=LengthType(), default=None,
              help="Wavelength in metres when the file lacks it.")
@click.option("--distance", type=LengthType(), default=None,
              help="Detector distance in metres when the file lacks it.")
@click.option("--pixel-size", type=LengthType(), default=None,
              help="Pixel size in metres when the file lacks it.")
@click.option("--chunk", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@common_options
def preprocess_spi(stack, out, crop, scale255, all_frames, threshold, size_k, no_fit, refine,
                   wavelength, distance, pixel_size, chunk, progress):
    """Hit finding, Friedel centring, sphere fit, size filter, crop and scaling of an SPI stack
    (a phasekit stack, any CXI stack with (N, H, W) frames, or a CXIDB/LCLS pnCCD file with
    photonConverter/pnccdBack/photonCount).

    \b
    Examples:
      phasekit preprocess-spi pr772_sim.cxi --crop 128 --size-filter 3 -o pr772_pre.cxi
      phasekit preprocess-spi amo86615_r0182.h5 --pixel-size 3e-4 --distance 0.586 \\
          --wavelength 7.75e-10 --crop 256 --scale255
    """
    from pathlib import Path

    from ..spi.preprocess import preprocess_stack
    from .outputs import HDF5_SUFFIXES, plan_outputs

    target = Path(out) if out else Path(stack).with_name(Path(stack).stem + "_pre.cxi")
    with plan_outputs(target, input_path=stack, suffixes=HDF5_SUFFIXES) as plan:
        r = preprocess_stack(stack, plan.result, crop=crop, scale255=scale255,
                             hits_only=not all_frames, threshold=threshold,
                             size_filter_k=size_k, fit=not no_fit, refine=refine, chunk=chunk,
                             progress=progress, wavelength=wavelength, distance=distance,
                             pixel_size=pixel_size)
    size = ("" if r["size_mode_m"] is None else
            f", size mode {r['size_mode_m'] * 1e9:.1f} nm +- {r['size_mad_m'] * 1e9:.1f}")
    click.echo(f"{r['n_in']} frames, {r['n_hits']} hits (threshold {r['threshold']:.4g} "
               f"photons){size}; wrote {r['n_out']} patterns -> {r['path']}")
