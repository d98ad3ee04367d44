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

_CDI_ONLY = ("schedule", "shrinkwrap", "sw_every", "sw_threshold", "sw_sigma", "real", "beta",
             "checkpoint", "checkpoint_every", "resume")
_PROBLEM_KEYS = ("oversampling", "stop_rf")


def run_tomo(input_file, values: dict, params: dict, given, echo=click.echo) -> dict:
    """Reconstruct the tilt series in ``input_file``; write result, history and figure."""
    from ..core.errors import ConfigError
    from ..engine import provenance
    from ..tomo.api import reconstruct
    from ..tomo.io import read_tilt_series, write_tomo_result
    from ..tomo.metrics import anisotropy, fsc, fsc_resolution, relative_error

    bad = [f"--{n.replace('_', '-')}" for n in _CDI_ONLY if given(n)]
    if given("starts") and values.get("starts", 1) != 1:
        bad.append("--starts")
    if bad:
        raise ConfigError(f"{', '.join(bad)} not supported for tomography files")
    ts = read_tilt_series(input_file)
    alg = values["algorithm"].lower() if given("algorithm") else "resire"
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
    kw = dict(algorithm=alg, n_iter=values.get("iterations"), vol_shape=ts.vol_shape,
              mask=ts.mask, support=support, positive=positive,
              oversampling=extra.get("oversampling", 2.0), stop_rf=extra.get("stop_rf"),
              progress=False if values.get("quiet") else None,
              metric_every=values.get("metric_every", 1), device=values.get("device", "cpu"),
              precision=values.get("precision", "single"))
    t0 = time.perf_counter()
    result = reconstruct(ts.projections, ts.angles, **kw, **p)
    wall = time.perf_counter() - t0
    out = Path(values["out"]) if values.get("out") else \
        Path(input_file).with_name(Path(input_file).stem + f"_{alg}.h5")
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
    if not values.get("no_figure"):
        from ..tomo.plot import plot_tomo_result

        png = out.with_suffix(".png")
        plot_tomo_result(result.image, png, truth=ts.truth, history=hist, fsc=f,
                         title=f"{alg}: R_F {result.rfactor:.4g}")
        written.append(str(png))
    n, dx, dy = ts.projections.shape
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
