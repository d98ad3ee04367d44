"""``phasekit preprocess-tomo``: run the tomography preprocessing alone and write the corrected
tilt series, so that it can be inspected (``phasekit info``, any HDF5 viewer) and reconstructed
later without repeating it.

The output is phasekit's HDF5 tilt-series layout (``/tomo``: line integrals, angles in degrees);
the rotation centre found or given is stored with it (``params.rotation_center``) and used by
``phasekit reconstruct OUT`` unless ``--center`` says otherwise; the steps done are stored too
(``params.preprocessing``).
"""
from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from .main import common_options
from .reconstruct_tomo import _center_choice, tomo_options


@click.command("preprocess-tomo")
@click.argument("input_file", metavar="FILE")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Corrected tilt series (HDF5).  Default: <input stem>_preprocessed.h5.")
@click.option("--center", default=None, metavar="auto|X|none",
              help="Rotation axis on the detector x (pixels), 'auto' (search) or 'none' (the "
                   "detector centre).  Default: auto for raw scans (Data Exchange, NXtomo).")
@click.option("--no-center", is_flag=True, default=False, help="Same as --center none.")
@tomo_options
@common_options
@click.pass_context
def preprocess_tomo(ctx: click.Context, input_file, out, **values) -> None:
    """Flat/dark correction, -log, zinger removal and rotation-centre finding of the tomography
    scan in FILE (Data Exchange, NXtomo, MRC + .tlt, TIFF stack + .tlt, phasekit HDF5), written
    as a corrected tilt series with what was done.

    \b
    Examples:
      phasekit preprocess-tomo scan_dx.h5 -o corrected.h5
      phasekit info corrected.h5
      phasekit reconstruct corrected.h5 -a sirt -n 100
    """
    from ..tomo.formats import read_scan
    from ..tomo.io import write_tilt_series
    from .outputs import plan_outputs

    def given(name):
        return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT,
                                                      ParameterSource.DEFAULT_MAP)

    values = dict(values, center=values.get("center") if values.get("center") is not None else "")
    target = Path(out) if out else Path(input_file).with_name(Path(input_file).stem + "_preprocessed.h5")
    with plan_outputs(target, input_path=input_file) as plan:
        center = _center_choice(values, given)
        no_pre = bool(values.get("no_preprocess"))
        ts, record, layout = read_scan(
            input_file, angles=values.get("angles"), rows=values.get("slices"),
            preprocess_data=False if no_pre else None, flat_dark=not values.get("no_flat_dark"),
            log=False if values.get("no_log") else None, zingers=not values.get("no_zingers"),
            center=(None if (no_pre and center == "default") else center),
            center_method=values.get("center_method") or "auto")
        params = dict(ts.params or {})
        rot = None if record is None else record.center
        params["rotation_center"] = rot
        write_tilt_series(plan.result, ts.projections, ts.angles, mask=ts.mask,
                          params=params)
    n, dx, dy = ts.projections.shape
    click.echo(f"input:   {input_file} ({layout}, {n} projections {dx}x{dy})")
    for step in (record.steps if record is not None else ["preprocessing: none"]):
        click.echo(f"  {step}")
    click.echo(f"centre:  {'detector centre' if rot is None else f'{rot:.3f} px'}")
    click.echo(f"wrote:   {plan.result}")
