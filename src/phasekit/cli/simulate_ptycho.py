"""``phasekit simulate ptycho``: a simulated ptychography scan written to CXI.

Far field (default): the geometry is the BL24XU preset of the CRISP/PINE simulations (8 keV,
4.5 m, 75 um pixels, a 4 um zone-plate beam); ``--frame`` sets the detector crop M (the object
pixel is lambda z / (M p), so a small frame gives coarse pixels and a beam of fewer pixels).

Near field (``--near-field Z1``): the geometry of the near-field scan of issue 13 (12.65 keV,
0.098 nm, 55 um pixels at z2 = 1.12 m) with a beam diverging from a focus Z1 metres before the
sample: magnification (z1 + z2) / z1, object pixel 55 um / M, effective distance z2 / M
(:func:`phasekit.ptycho.geometry.fresnel_scaling`); the probe is a wide aperture (default 0.7
of the frame) behind a smooth random phase screen (a diffuser, as near-field ptychography
uses); frames are real-space holograms (angular-spectrum propagation).  Read it back with
``phasekit info FILE --near-field Z1`` and ``phasekit reconstruct FILE --near-field Z1``.

Real-data effects: ``--modes K`` (a partially coherent beam: K incoherent modes, each extra
one with ``--mode-power`` of the first's power), ``--position-error SIGMA`` (the file's
positions differ from the true ones by Gaussian errors of SIGMA pixels; the true ones are kept
in ``simulation_1/true_positions``), ``--background COUNTS`` (a flat detector background added
before the Poisson noise).
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


#: near-field geometry of issue 13's scan (cdtools' near-field example): 0.098 nm, 55 um, 1.12 m
NEAR_FIELD_WAVELENGTH, NEAR_FIELD_PIXEL, NEAR_FIELD_DISTANCE = 0.098e-9, 55e-6, 1.12


class _NearFieldGeometry:
    """The attributes of :class:`phasekit.ptycho.probe.BeamlineGeometry` this module uses."""

    def __init__(self, z1: float, frame: int):
        from ..ptycho.geometry import fresnel_scaling

        g = fresnel_scaling(z1, NEAR_FIELD_DISTANCE, NEAR_FIELD_PIXEL)
        self.name = f"near field z1={z1:g} m"
        self.wavelength = NEAR_FIELD_WAVELENGTH
        self.distance = NEAR_FIELD_DISTANCE
        self.detector_pixel = NEAR_FIELD_PIXEL
        self.pixel_size = g.pixel_size[0]
        self.effective_distance = g.distance
        self.magnification = g.magnification
        self.beam_diameter_px = 0.7 * frame
        self.pupil_diameter_px = 0.7 * frame


def simulate_ptycho_file(out, *, obj="particles", probe="fzp", frame=64, scan="raster",
                         points=7, step=None, overlap=0.875, jitter=0.0, dose=1e10,
                         defocus=0.0, beam_diameter=None, pupil_diameter=None, margin=2,
                         seed=0, near_field=None, modes=1, mode_power=0.25,
                         position_error=0.0, background=None):
    """Simulate a scan and write it (with the ground truth) to ``out``; returns
    ``(SimulatedPtycho, Path, geometry)``.

    ``near_field`` (focus-to-sample distance, m), ``modes``/``mode_power``,
    ``position_error`` (pixels, Gaussian) and ``background`` (counts per pixel): see the
    module docstring.
    """
    import math

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

    near = near_field is not None
    geo = _NearFieldGeometry(float(near_field), frame) if near else pr.bl24xu(frame)
    bd = geo.beam_diameter_px if beam_diameter is None else float(beam_diameter)
    pd = geo.pupil_diameter_px if pupil_diameter is None else float(pupil_diameter)
    if bd >= frame:
        raise ConfigError(f"beam diameter {bd:.1f} px does not fit a {frame} px frame; use a "
                          "larger --frame or a smaller --beam-diameter")
    margin = int(margin) + int(math.ceil(3 * float(position_error)))
    if near:  # a wide beam behind a smooth random phase screen (a diffuser)
        from scipy.ndimage import gaussian_filter

        screen = gaussian_filter(np.random.default_rng(seed + 1).standard_normal((frame, frame)),
                                 max(1.0, frame / 24))
        p = pr.circular_aperture(frame, bd, edge=max(1.0, frame / 16)) * \
            np.exp(1j * 2.5 * screen / (screen.std() or 1.0))
    elif probe == "fzp":
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
    params.update(near_field=near_field, modes=int(modes), mode_power=float(mode_power),
                  position_error=float(position_error), background=background)
    if int(modes) > 1:
        from ..ptycho.modes import initial_modes

        p = initial_modes(p, int(modes), seed=seed + 2, power=float(mode_power))
    prop = {"propagation": "angular", "distance": geo.effective_distance} if near else \
        {"distance": geo.distance}
    sim = simulate_ptycho(o, p, pos, dose=dose, rng=g, wavelength=geo.wavelength,
                          detector_pixel=geo.detector_pixel, pixel_size=geo.pixel_size,
                          params=params, background=background, **prop)
    written = np.asarray(sim.positions, np.float64)
    if position_error:
        # the file's (encoder) positions: true ones plus Gaussian errors, inside the object
        err = g.normal(0.0, float(position_error), written.shape)
        hi = np.array(o.shape) - np.array(p.shape[-2:])
        written = np.clip(written + err, 0, hi)
    path = write_ptycho(out, sim.intensities, written, wavelength=geo.wavelength,
                        distance=geo.distance, pixel_size=geo.detector_pixel, truth=sim.obj,
                        probe=sim.probe, params=params,
                        object_pixel=geo.pixel_size if near else None,
                        true_positions=np.asarray(sim.positions) if position_error else None)
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
@click.option("--near-field", "near_field", type=click.FloatRange(min=0, min_open=True),
              default=None, metavar="DISTANCE",
              help="Near-field scan: focus-to-sample distance in metres of a diverging beam "
                   "(issue 13's geometry: 0.098 nm, 55 um pixels at 1.12 m; Fresnel scaling). "
                   "--probe and --pupil-diameter do not apply (a wide aperture behind a "
                   "phase screen); --dose is the mean count per pixel of the vacuum frame.")
@click.option("--modes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Probe modes (partially coherent beam).")
@click.option("--mode-power", type=click.FloatRange(0, 1, min_open=True), default=0.25,
              show_default=True, help="Power of each extra mode relative to the first.")
@click.option("--position-error", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="SIGMA", help="Gaussian errors (pixels) of the positions written to the "
                                    "file; the true ones stay in the ground truth.")
@click.option("--background", type=click.FloatRange(min=0), default=None, metavar="COUNTS",
              help="Flat detector background (counts per pixel) added before the noise.")
@force_option
@common_options
def simulate_ptycho_cmd(obj, probe, frame, scan, points, step, overlap, jitter, dose, defocus,
                        beam_diameter, pupil_diameter, seed, out, near_field, modes, mode_power,
                        position_error, background, force):
    """Simulate a ptychography scan (far field, BL24XU-like geometry, or --near-field) and
    write a CXI file.

    \b
    Examples:
      phasekit simulate ptycho --object particles --frame 64 --points 7 --dose 1e10 --out scan.cxi
      phasekit simulate ptycho --near-field 3.657e-3 --object siemens --frame 64 --step 6 \\
          --modes 2 --position-error 1 --background 5 --dose 1e4 --out nf.cxi
    """
    from ..core.resources import memory_override
    from .outputs import plan_outputs

    with plan_outputs(out), memory_override(force, "--force"):
        sim, path, geo = simulate_ptycho_file(out, obj=obj, probe=probe, frame=frame, scan=scan,
                                              points=points, step=step, overlap=overlap,
                                              jitter=jitter, dose=dose, defocus=defocus,
                                              beam_diameter=beam_diameter,
                                              pupil_diameter=pupil_diameter, seed=seed,
                                              near_field=near_field, modes=modes,
                                              mode_power=mode_power,
                                              position_error=position_error,
                                              background=background)
    n, my, mx = sim.intensities.shape
    dose_txt = "noise-free" if dose is None else f"dose {dose:.3g}"
    extra = []
    if near_field is not None:
        extra.append(f"near field: magnification {geo.magnification:.4g}, effective distance "
                     f"{geo.effective_distance * 1e3:.4g} mm")
    if modes > 1:
        extra.append(f"{modes} modes")
    if position_error:
        extra.append(f"position errors {position_error:g} px")
    if background:
        extra.append(f"background {background:g}")
    click.echo(f"simulated {obj} ({scan} scan, {n} positions, frame {my}x{mx}, object "
               f"{sim.obj.shape[0]}x{sim.obj.shape[1]} at {geo.pixel_size * 1e9:.1f} nm, "
               f"{dose_txt}{''.join(', ' + e for e in extra)}) -> {path}")
