"""``phasekit simulate ptycho``: a simulated far-field ptychography scan written to CXI.

The geometry defaults to the BL24XU preset of the CRISP/PINE simulations (8 keV, 4.5 m, 75 um
pixels, a 4 um zone-plate beam); ``--frame`` sets the detector crop M (the object pixel is
lambda z / (M p), so a small frame gives coarse pixels and a beam of fewer pixels).
"""
from __future__ import annotations

import click

from .main import common_options
from .simulate import PhotonsType, force_option, simulate


def _check_scan_memory(scan: str, points: int, step: float, jitter: float, margin: float,
                       frame: int) -> None:
    """Refuse a scan whose frames and object would not fit in memory, before any position is
    made (a raster of ``points`` per side has ``points^2`` positions)."""
    import math

    from ..core.resources import check_memory, estimate_ptycho

    if scan == "raster":
        n = int(points) ** 2
        extent = (int(points) - 1) * float(step)
    else:
        n = int(points)
        extent = 2 * float(step) / math.sqrt(math.pi) * math.sqrt(max(n - 1, 0))
    side = extent + 2 * float(jitter) + int(frame) + 2 * float(margin) + 1
    check_memory(estimate_ptycho(n, frame, (side, side)),
                 f"simulating a {scan} scan of {n} positions with {frame}x{frame} frames "
                 f"(object about {side:.0f}x{side:.0f})")


def simulate_ptycho_file(out, *, obj="particles", probe="fzp", frame=64, scan="raster",
                         points=7, step=None, overlap=0.875, jitter=0.0, dose=1e10,
                         defocus=0.0, beam_diameter=None, pupil_diameter=None, margin=2,
                         seed=0):
    """Simulate a scan and write it (with the ground truth) to ``out``; returns
    ``(SimulatedPtycho, Path, geometry)``."""
    import numpy as np

    from ..core.errors import ConfigError
    from ..io import write_ptycho
    from ..ptycho import probe as pr
    from ..ptycho.scan import (
        fermat_spiral,
        object_shape_for,
        raster_scan,
        step_from_overlap,
    )
    from ..ptycho.sim import particle_film, siemens_star, simulate_ptycho

    geo = pr.bl24xu(frame)
    bd = geo.beam_diameter_px if beam_diameter is None else float(beam_diameter)
    pd = geo.pupil_diameter_px if pupil_diameter is None else float(pupil_diameter)
    if bd >= frame:
        raise ConfigError(f"beam diameter {bd:.1f} px does not fit a {frame} px frame; use a "
                          "larger --frame or a smaller --beam-diameter")
    if probe == "fzp":
        p = pr.fzp_probe(frame, bd, pd, defocus=defocus, wavelength=geo.wavelength,
                         pixel_size=geo.pixel_size)
    elif probe == "aperture":
        p = pr.circular_aperture(frame, bd, defocus=defocus, wavelength=geo.wavelength,
                                 pixel_size=geo.pixel_size)
    else:
        p = pr.gaussian(frame, bd / 2, defocus=defocus, wavelength=geo.wavelength,
                        pixel_size=geo.pixel_size)
    kw = {"step": step} if step is not None else {"overlap": overlap, "probe_diameter": bd}
    _check_scan_memory(scan, points, step if step is not None else step_from_overlap(overlap, bd),
                       jitter, margin, frame)
    if scan == "raster":
        pos = raster_scan(points, jitter=jitter, margin=margin, rng=seed, **kw)
    else:
        pos = fermat_spiral(points, jitter=jitter, margin=margin, rng=seed, **kw)
    shape = object_shape_for(pos, (frame, frame), margin=margin)
    g = np.random.default_rng(seed)
    if obj == "particles":
        o = particle_film(shape, geo.pixel_size, wavelength=geo.wavelength,
                          radius_range=(max(60e-9, 1.5 * geo.pixel_size),
                                        max(250e-9, 4 * geo.pixel_size)), rng=g)
    elif obj == "siemens":
        o = siemens_star(shape)
    else:
        from scipy.ndimage import gaussian_filter

        o = np.exp(1j * 2 * gaussian_filter(g.standard_normal(shape), 1.5)) * \
            (0.7 + 0.3 * gaussian_filter(g.random(shape), 1.0))
    params = {"generator": "phasekit simulate ptycho", "object": obj, "probe": probe,
              "frame": frame, "scan": scan, "points": points, "step": step, "overlap": overlap,
              "jitter": jitter, "dose": dose, "defocus": defocus, "beam_diameter_px": bd,
              "pupil_diameter_px": pd, "seed": seed, "geometry": geo.name,
              "object_pixel_size": geo.pixel_size}
    sim = simulate_ptycho(o, p, pos, dose=dose, rng=g, wavelength=geo.wavelength,
                          distance=geo.distance, detector_pixel=geo.detector_pixel,
                          pixel_size=geo.pixel_size, params=params)
    path = write_ptycho(out, sim.intensities, sim.positions, wavelength=geo.wavelength,
                        distance=geo.distance, pixel_size=geo.detector_pixel, truth=sim.obj,
                        probe=sim.probe, params=params)
    return sim, path, geo


@simulate.command("ptycho")
@click.option("--object", "obj", type=click.Choice(["particles", "siemens", "random"]),
              default="particles", show_default=True,
              help="Phantom: weak-phase particle film (TiO2 in PMMA), Siemens star with "
                   "absorption, or a smooth random complex object.")
@click.option("--probe", type=click.Choice(["fzp", "aperture", "gaussian"]), default="fzp",
              show_default=True, help="Illumination: zone-plate focus, circular aperture, Gaussian.")
@click.option("--frame", type=click.IntRange(min=8), default=64, show_default=True,
              help="Detector frame side M in pixels (BL24XU geometry: object pixel = lambda z / (M p)).")
@click.option("--scan", type=click.Choice(["raster", "fermat"]), default="raster",
              show_default=True, help="Scan pattern.")
@click.option("--points", type=click.IntRange(min=1), default=7, show_default=True,
              help="Raster: points per side; Fermat: number of points.")
@click.option("--step", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Scan step in object pixels (default: from --overlap).")
@click.option("--overlap", type=click.FloatRange(0, 1, max_open=True), default=0.875,
              show_default=True, help="Linear overlap 1 - step / beam diameter.")
@click.option("--jitter", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Uniform random position jitter, +- pixels.")
@click.option("--dose", type=PhotonsType(), default="1e10", show_default=True,
              help="Photons at the origin of the vacuum pattern (Poisson noise), or 'none'.")
@click.option("--defocus", type=float, default=0.0, show_default=True,
              help="Probe defocus in metres.")
@click.option("--beam-diameter", type=click.FloatRange(min=1), default=None,
              help="Beam diameter in pixels (default: the 4 um beam of the preset).")
@click.option("--pupil-diameter", type=click.FloatRange(min=1), default=None,
              help="Zone-plate pupil (bright-field disc) in detector pixels (default: the preset's).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed (object, jitter, noise).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default="scan.cxi",
              show_default=True, help="Output CXI file (.cxi/.h5/.hdf5/.nxs).")
@force_option
@common_options
def simulate_ptycho_cmd(obj, probe, frame, scan, points, step, overlap, jitter, dose, defocus,
                        beam_diameter, pupil_diameter, seed, out, force):
    """Simulate a far-field ptychography scan (BL24XU-like geometry) and write a CXI file.

    \b
    Example:
      phasekit simulate ptycho --object particles --frame 64 --points 7 --dose 1e10 --out scan.cxi
    """
    from ..core.resources import memory_override
    from .outputs import plan_outputs

    with plan_outputs(out), memory_override(force, "--force"):
        sim, path, geo = simulate_ptycho_file(out, obj=obj, probe=probe, frame=frame, scan=scan,
                                              points=points, step=step, overlap=overlap,
                                              jitter=jitter, dose=dose, defocus=defocus,
                                              beam_diameter=beam_diameter,
                                              pupil_diameter=pupil_diameter, seed=seed)
    n, my, mx = sim.intensities.shape
    dose_txt = "noise-free" if dose is None else f"dose {dose:.3g}"
    click.echo(f"simulated {obj} ({scan} scan, {n} positions, frame {my}x{mx}, object "
               f"{sim.obj.shape[0]}x{sim.obj.shape[1]} at {geo.pixel_size * 1e9:.1f} nm, "
               f"{dose_txt}) -> {path}")
