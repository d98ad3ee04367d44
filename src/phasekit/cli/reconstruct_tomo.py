"""``phasekit reconstruct`` for tomography files (HDF5 with a ``/tomo`` tilt series).

The ``reconstruct`` command hands a tomography file to :func:`run_tomo`.  Supported options:
``--algorithm`` (resire [default], sirt, genfire, fbp), ``--iterations``, ``--positive/
--no-positive`` (positivity is on unless ``--no-positive`` is given), ``--support``
(``file``/``auto``/a .npy), ``--param`` (algorithm parameters plus ``oversampling``,
``stop_rf`` (discrepancy-principle stop), ``filter`` and ``angle_weights`` (FBP)), ``--device``, ``--precision``,
``--metric-every``, ``--no-figure``, ``--out``, ``--quiet``, ``--config``.  CDI-only options
(``--schedule``, ``--starts`` > 1, shrink-wrap, ``--real``, ``--beta``, checkpoints) are errors.
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

_CDI_ONLY = ("schedule", "shrinkwrap", "sw_every", "sw_threshold", "sw_sigma", "real", "beta", "clip_negative",
             "checkpoint", "checkpoint_every", "resume")
_PROBLEM_KEYS = ("oversampling", "stop_rf")


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
    with plan_outputs(out, input_path=input_file, figure=not values.get("no_figure")) as plan, \
            memory_override(bool(values.get("force")), "--force"):
        return _run_tomo(input_file, values, params, given, alg, plan, echo)


def _run_tomo(input_file, values: dict, params: dict, given, alg: str, plan, echo) -> dict:
    from ..core.errors import ConfigError
    from ..core.resources import check_memory
    from ..tomo.memory import estimate_tomo_reconstruction
    from ..engine import provenance
    from ..tomo.api import reconstruct
    from ..tomo.io import read_tilt_series, write_tomo_result
    from ..tomo.metrics import anisotropy, fsc, fsc_resolution, relative_error

    ts = read_tilt_series(input_file)
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
                                              precision=values.get("precision", "single")),
                 f"reconstructing a {'x'.join(map(str, vs))} volume from {n} projections")
    kw = dict(algorithm=alg, n_iter=values.get("iterations"), vol_shape=ts.vol_shape,
              mask=ts.mask, support=support, positive=positive,
              oversampling=extra.get("oversampling", 2.0), stop_rf=extra.get("stop_rf"),
              progress=False if values.get("quiet") else None,
              metric_every=values.get("metric_every", 1), device=values.get("device", "cpu"),
              precision=values.get("precision", "single"))
    t0 = time.perf_counter()
    result = reconstruct(ts.projections, ts.angles, **kw, **p)
    wall = time.perf_counter() - t0
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
    write_tomo_result(out, result.image, history=hist, config=result.config,
                      provenance=provenance(None), fsc=f, metrics=metrics)
    written = [str(out)]
    if plan.figure is not None:
        from ..tomo.plot import plot_tomo_result
        from .outputs import write_figure

        if write_figure(plan.figure, plot_tomo_result, result.image, plan.figure,
                        truth=ts.truth, history=hist, fsc=f,
                        title=f"{alg}: R_F {result.rfactor:.4g}"):
            written.append(str(plan.figure))
    echo(f"{alg}: {n} projections {dx}x{dy} -> volume {'x'.join(map(str, result.image.shape))}, "
         f"{result.n_iter} iteration(s), {result.message}")
    line = f"R_F {result.rfactor:.4g}"
    if "relative_error" in metrics:
        def _cross(v):
            return "none (stays above)" if not np.isfinite(v) else f"{v:.3g}"

        line += (f", relative error {metrics['relative_error']:.4g}, FSC crosses 0.5 at "
                 f"{_cross(metrics['fsc_05'])} / 0.143 at {_cross(metrics['fsc_0143'])} "
                 "(fraction of Nyquist)")
    echo(line + f", {wall:.3g} s")
    echo(f"wrote:   {', '.join(written)}")
    return {"result": result, "out": out, "metrics": metrics}
