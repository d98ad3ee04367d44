"""``phasekit reconstruct`` for tomography files: phasekit's HDF5 tilt series, TIFF stacks, APS
Data Exchange, NeXus NXtomo and MRC stacks (:func:`phasekit.tomo.formats.read_scan`).

The ``reconstruct`` command hands a tomography file to :func:`run_tomo`.  Supported options:
``--algorithm`` (resire [default], sirt, genfire, fbp), ``--iterations``, ``--positive/
--no-positive`` (positivity is on unless ``--no-positive`` is given), ``--support``
(``file``/``auto``/a .npy), ``--param`` (algorithm parameters plus ``oversampling``,
``stop_rf`` (discrepancy-principle stop), ``filter`` and ``angle_weights`` (FBP)), ``--device``, ``--precision``,
``--metric-every``, ``--checkpoint`` / ``--checkpoint-every`` / ``--resume`` (the engine's
atomic checkpoints: a resumed run gives the uninterrupted result to the bit), ``--no-figure``,
``--out``, ``--quiet``, ``--config``.  CDI-only options (``--schedule``, ``--starts`` > 1,
shrink-wrap, ``--real``, ``--beta``) are errors.

Tomography input options (:func:`tomo_options`): ``--center auto|X|none`` (the rotation axis on
the detector ``x``, in pixels; shared with the CDI pattern centre option), ``--center-method``,
``--no-preprocess``, ``--no-flat-dark``, ``--no-log`` / ``--already-log``, ``--no-zingers``,
``--angles SPEC`` and ``--slices A:B``.  Raw scans (Data Exchange, NXtomo) are preprocessed
by default (zingers, flat/dark, -log, automatic centre); the summary prints every step and the
result file records them (``config["preprocessing"]``).
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

_CDI_ONLY = ("schedule", "shrinkwrap", "sw_every", "sw_threshold", "sw_sigma", "real", "beta", "clip_negative")
_PROBLEM_KEYS = ("oversampling", "stop_rf")
#: click parameter names of :func:`tomo_options`
TOMO_KEYS = ("center_method", "no_preprocess", "no_flat_dark", "no_log", "no_zingers", "angles",
             "slices")


def tomo_options(f):
    """Add the tomography input options to a click command (``--center`` itself is the shared
    option of :mod:`phasekit.cli.pattern_input`)."""
    opts = [
        click.option("--center-method", type=click.Choice(["auto", "registration", "entropy"]),
                     default="auto", show_default=True,
                     help="Tomography: how --center auto finds the rotation axis (registration "
                          "of projections 180 degrees apart, or the sharpest FBP slice)."),
        click.option("--no-preprocess", is_flag=True, default=False,
                     help="Tomography: use the frames as they are (no zingers, flat/dark, -log "
                          "or centre search; the axis at the detector centre unless --center X)."),
        click.option("--no-flat-dark", is_flag=True, default=False,
                     help="Tomography: skip the flat/dark normalisation of a raw scan."),
        click.option("--no-log", "--already-log", "no_log", is_flag=True, default=False,
                     help="Tomography: the data are line integrals already (no -log)."),
        click.option("--no-zingers", is_flag=True, default=False,
                     help="Tomography: skip the zinger (outlier) removal."),
        click.option("--angles", default=None, metavar="START:STEP:STOP|LIST|FILE",
                     help="Tomography: angles in degrees (suffix 'rad' for radians) for TIFF/MRC "
                          "stacks without a .tlt/.rawtlt file, or to override the file's."),
        click.option("--slices", default=None, metavar="A:B",
                     help="Tomography: reconstruct detector rows A to B-1 only (along the "
                          "rotation axis), e.g. for a big scan."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def refuse_non_tomo(input_file, values: dict, given) -> None:
    """For a file that is not a tilt series: a tomography algorithm or tomography option is a
    one-line :class:`~phasekit.core.errors.ConfigError` that lists the layouts read as tilt
    series (instead of a CDI reader's "no diffraction data found")."""
    from ..core.errors import ConfigError
    from ..engine import get_algorithm
    from ..tomo.formats import tomo_layouts_text

    bad = [f"--{k.replace('_', '-')}" for k in TOMO_KEYS if given(k)]
    alg = values.get("algorithm")
    is_tomo_alg = False
    if given("algorithm") and alg:
        try:
            is_tomo_alg = get_algorithm(alg).modality == "tomo"
        except ConfigError:
            is_tomo_alg = False
    if is_tomo_alg:
        raise ConfigError(f"{input_file}: {alg!r} is a tomography algorithm but this is not a "
                          f"tomography file; phasekit reads tilt series as: "
                          f"{tomo_layouts_text()} (see 'phasekit info FILE')")
    if bad:
        raise ConfigError(f"{', '.join(bad)}: for tomography files only ({input_file} is not "
                          f"one; tilt series are read as: {tomo_layouts_text()})")


def _center_choice(values: dict, given):
    """``--center`` for a tomography file: "default", "auto", None (detector centre) or pixels."""
    from ..core.errors import ConfigError

    if values.get("no_center"):
        return None
    if not given("center"):
        return "default"
    raw = str(values.get("center")).strip().lower()
    if raw == "auto":
        return "auto"
    if raw in ("none", "off", "centre", "center"):
        return None
    try:
        c = float(raw)
    except ValueError:
        raise ConfigError(f"--center {values.get('center')!r}: for a tomography file give the "
                          "rotation axis as one detector x position in pixels, 'auto' or "
                          "'none'") from None
    if not np.isfinite(c):
        raise ConfigError(f"--center {values.get('center')!r}: not a finite number")
    return c


def run_tomo(input_file, values: dict, params: dict, given, echo=click.echo) -> dict:
    """Reconstruct the tilt series in ``input_file``; write result, history and figure.

    The outputs are checked and locked before the tilt series is read
    (:func:`phasekit.cli.outputs.plan_outputs`); the memory the reconstruction needs is checked
    before it starts (``values["force"]`` overrides).
    """
    from ..core.errors import ConfigError
    from ..core.resources import memory_override
    from .outputs import plan_outputs

    bad = [f"--{n.replace('_', '-')}" for n in _CDI_ONLY if given(n)]
    if given("starts") and values.get("starts", 1) != 1:
        bad.append("--starts")
    if bad:
        raise ConfigError(f"{', '.join(bad)} not supported for tomography files")
    alg = values["algorithm"].lower() if given("algorithm") else "resire"
    out = Path(values["out"]) if values.get("out") else \
        Path(input_file).with_name(Path(input_file).stem + f"_{alg}.h5")
    checkpoint = values.get("checkpoint") or values.get("resume")  # keep writing where we resumed from
    with plan_outputs(out, input_path=input_file, figure=not values.get("no_figure"),
                      checkpoint=checkpoint) as plan, \
            memory_override(bool(values.get("force")), "--force"):
        return _run_tomo(input_file, values, params, given, alg, plan, echo)


def _run_tomo(input_file, values: dict, params: dict, given, alg: str, plan, echo) -> dict:
    from ..core.errors import ConfigError
    from ..core.resources import check_memory
    from ..tomo.memory import estimate_tomo_reconstruction
    from ..engine import provenance
    from ..tomo.api import reconstruct
    from ..tomo.formats import LAYOUT_NAMES, read_scan
    from ..tomo.io import write_tomo_result
    from ..tomo.metrics import anisotropy, fsc, fsc_resolution, relative_error

    center = _center_choice(values, given)
    no_pre = bool(values.get("no_preprocess"))  # --center auto still searches the centre
    ts, record, layout = read_scan(
        input_file, angles=values.get("angles"), rows=values.get("slices"),
        preprocess_data=False if no_pre else None, flat_dark=not values.get("no_flat_dark"),
        log=False if values.get("no_log") else None, zingers=not values.get("no_zingers"),
        center=(None if (no_pre and center == "default") else center),
        center_method=values.get("center_method") or "auto")
    p = {k: v for k, v in params.items() if not isinstance(v, dict)}
    for k, v in params.items():
        if isinstance(v, dict) and k.lower() == alg:
            p.update(v)
    extra = {k: p.pop(k) for k in _PROBLEM_KEYS if k in p}
    support = None
    sup = values.get("support", "file")
    if sup == "file":
        support = ts.support
    elif sup != "auto":
        try:
            support = np.load(sup)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--support {sup}: cannot read a .npy array ({exc})") from None
    positive = not (given("positive") and not values["positive"])
    n, dx, dy = ts.projections.shape
    vs = ts.vol_shape or (dx, dy, dx)
    check_memory(estimate_tomo_reconstruction(vs, n, (dx, dy),
                                              oversampling=extra.get("oversampling", 2.0),
                                              precision=values.get("precision", "single"),
                                              algorithm=alg, projector=p.get("projector", "hybrid")),
                 f"reconstructing a {'x'.join(map(str, vs))} volume from {n} projections")
    c_used = None if record is None else record.center
    one_row = ts.projections.shape[2] == 1
    if one_row:  # a single slice: the projectors need 2 rows; reconstruct it twice, keep one
        ts.projections = np.repeat(ts.projections, 2, axis=2)
        ts.mask = None if ts.mask is None else np.repeat(ts.mask, 2, axis=2)
        ts.truth = ts.support = ts.vol_shape = None
        n, dx, dy = ts.projections.shape
        vs = (dx, dy, dx)
    kw = dict(algorithm=alg, n_iter=values.get("iterations"), vol_shape=ts.vol_shape,
              center=c_used,
              mask=ts.mask, support=support, positive=positive,
              oversampling=extra.get("oversampling", 2.0), stop_rf=extra.get("stop_rf"),
              progress=False if values.get("quiet") else None,
              metric_every=values.get("metric_every", 1), device=values.get("device", "cpu"),
              precision=values.get("precision", "single"),
              checkpoint=plan.checkpoint, checkpoint_every=values.get("checkpoint_every") or 100,
              resume=values.get("resume"))
    t0 = time.perf_counter()
    result = reconstruct(ts.projections, ts.angles, **kw, **p)
    wall = time.perf_counter() - t0
    if one_row:
        result.image = np.ascontiguousarray(result.image[:, :1, :])
        dy = 1
    out = plan.result
    metrics = {"R_F": result.rfactor, "wall_s": wall,
               "per_iteration_s": result.timings.get("per_iteration_s")}
    f = None
    if ts.truth is not None and ts.truth.shape == result.image.shape:
        f = fsc(result.image, ts.truth)
        metrics.update(relative_error=relative_error(result.image, ts.truth),
                       fsc_05=fsc_resolution(*f, 0.5), fsc_0143=fsc_resolution(*f, 0.143),
                       anisotropy=anisotropy(result.image, ts.truth))
    hist = {k: v for k, v in result.history.items() if k != "stage"}
    result.config = dict(result.config or {})
    result.config.update(input=str(input_file), layout=layout,
                         preprocessing=None if record is None else record.as_dict(),
                         slices=values.get("slices"), angles_option=values.get("angles"))
    write_tomo_result(out, result.image, history=hist, config=result.config,
                      provenance=provenance(None), fsc=f, metrics=metrics)
    written = [str(out)]
    if plan.figure is not None:
        from ..tomo.plot import plot_tomo_result
        from .outputs import write_figure

        if write_figure(plan.figure, plot_tomo_result, result.image, plan.figure,
                        truth=ts.truth, history=hist if result.n_iter > 1 else None, fsc=f,
                        title=f"{alg}: R_F {result.rfactor:.4g}"):
            written.append(str(plan.figure))
    echo(f"input:   {input_file} ({LAYOUT_NAMES.get(layout, layout)}, {n} projections, "
         f"angles {ts.angles[:, 1].min():.4g} to {ts.angles[:, 1].max():.4g} deg"
         + (f", detector rows {values.get('slices')}" if values.get("slices") else "") + ")")
    if record is not None:
        for step in record.steps:
            echo(f"  {step}")
    else:
        echo("  preprocessing: none (data taken as line integrals, rotation axis at the "
             f"detector centre {dx // 2})")
    echo(f"{alg}: {n} projections {dx}x{dy} -> volume {'x'.join(map(str, result.image.shape))}, "
         f"{result.n_iter} iteration(s), {result.message}")
    line = f"R_F {result.rfactor:.4g}"
    if "relative_error" in metrics:
        def _cross(v):
            return "none (stays above)" if not np.isfinite(v) else f"{v:.3g}"

        line += (f", relative error {metrics['relative_error']:.4g}, FSC crosses 0.5 at "
                 f"{_cross(metrics['fsc_05'])} / 0.143 at {_cross(metrics['fsc_0143'])} "
                 "(fraction of Nyquist)")
    from .outputs import threads_note

    echo(line + f", {wall:.3g} s{threads_note(result)}")
    echo(f"wrote:   {', '.join(written)}")
    return {"result": result, "out": out, "metrics": metrics}
