"""``phasekit simulate tomo``: a simulated tilt series written to an HDF5 file."""
from __future__ import annotations

import click

from .main import common_options
from .simulate import force_option


def parse_tilts(text: str):
    """``"-70:3.5:70"`` (start:step:stop, inclusive) or ``"-60,0,60"`` -> array of degrees.

    A range of more than :data:`phasekit.core.resources.MAX_TILTS` angles is refused before
    the angles are made.
    """
    import math

    from ..core.errors import ConfigError
    from ..core.resources import MAX_TILTS
    from ..tomo.geometry import tilt_range

    t = str(text).strip()
    try:
        if ":" in t:
            parts = [float(p) for p in t.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, step, stop = parts
            if all(math.isfinite(v) for v in parts) and step != 0 and (stop - start) * step >= 0:
                n = math.floor((stop - start) / step + 1e-9) + 1
                if n > MAX_TILTS:
                    raise ConfigError(f"--tilts {text!r}: {n} tilt angles; at most {MAX_TILTS} "
                                      "are supported (use a larger step)")
            return tilt_range(start, stop, step)
        import numpy as np

        return np.array([float(p) for p in t.split(",") if p.strip()])
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"--tilts {text!r}: expected START:STEP:STOP (e.g. -70:3.5:70) or a "
                          "comma-separated list of degrees") from None


@click.command("tomo")
@click.option("--phantom", default="vesicle", show_default=True,
              type=click.Choice(["vesicle", "cell", "nanoparticle", "film"], case_sensitive=False),
              help="3-D phantom.")
@click.option("--size", type=click.IntRange(min=8, max=512), default=64, show_default=True,
              help="Detector side and volume side in voxels.")
@click.option("--tilts", default="-70:3.5:70", show_default=True, metavar="START:STEP:STOP",
              help="y-axis tilt angles in degrees (MATLAB-style range or a comma list).")
@click.option("--geometry", type=click.Choice(["single", "dual", "euler"], case_sensitive=False),
              default="single", show_default=True,
              help="single y-axis series, dual-axis (second axis after a 90-degree in-plane "
                   "rotation), or random general Euler angles (as many as --tilts).")
@click.option("--noise", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Gaussian noise, standard deviation as a fraction of the mean projection.")
@click.option("--dose", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Poisson noise: expected counts per unit of projection value.")
@click.option("--projector", type=click.Choice(["fine", "fst"], case_sensitive=False),
              default="fine", show_default=True,
              help="fine: independent 2x-finer real-space projection (no inverse crime); fst: "
                   "the Fourier-slice projector RESIRE inverts (the thesis protocol).")
@click.option("--blocked", type=click.IntRange(min=0), default=0, show_default=True,
              help="Number of projections partially blocked (masked) at the highest tilts.")
@click.option("--thickness", type=click.IntRange(min=2), default=None,
              help="Film thickness in voxels (film phantom, extended-object mode).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Output HDF5 file, .h5/.hdf5/.cxi/.nxs (default <phantom>_tilt.h5).")
@force_option
@common_options
def simulate_tomo_cmd(phantom, size, tilts, geometry, noise, dose, projector, blocked, thickness,
                      seed, out, force):
    """Simulate a tilt series (with its ground truth) and write it as HDF5 (/tomo group)."""
    from ..core.resources import memory_override
    from .outputs import plan_outputs

    if out is None:
        out = f"{phantom.lower()}_tilt.h5"
    with plan_outputs(out), memory_override(force, "--force"):
        _simulate_tomo(phantom, size, tilts, geometry, noise, dose, projector, blocked,
                       thickness, seed, out)


def _simulate_tomo(phantom, size, tilts, geometry, noise, dose, projector, blocked, thickness,
                   seed, out):
    from ..tomo.geometry import dual_axis, random_euler, single_axis
    from ..tomo.io import write_tilt_series
    from ..tomo.simulate import simulate_tilt_series

    t = parse_tilts(tilts)
    geo = geometry.lower()
    if geo == "single":
        ang = single_axis(t)
    elif geo == "dual":
        ang = dual_axis(t)
    else:
        ang = random_euler(len(t), seed, max_tilt=float(abs(t).max()) if len(t) else 70.0)
    ts = simulate_tilt_series(phantom.lower(), size, ang, noise=noise, dose=dose,
                              projector=projector.lower(), blocked=blocked, thickness=thickness,
                              rng=seed)
    params = dict(ts.params, geometry=geo, tilts=tilts, seed=seed,
                  generator="phasekit simulate tomo", rnoise=ts.rnoise)
    path = write_tilt_series(out, ts.projections, ts.angles, mask=ts.mask, truth=ts.truth,
                             vol_shape=ts.vol_shape, params=params)
    n, dx, dy = ts.projections.shape
    click.echo(f"simulated {phantom} tilt series: {n} projections {dx}x{dy}, volume "
               f"{'x'.join(map(str, ts.vol_shape))}, {geo} axis, R_noise {ts.rnoise:.4g} -> {path}")
