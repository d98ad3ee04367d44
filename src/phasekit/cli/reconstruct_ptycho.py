"""``phasekit reconstruct`` for ptychography scans (CXI files with a frame stack and translations).

The ``reconstruct`` command hands such a file to :func:`run_ptycho`.  Supported options:
``--algorithm`` (crisp [default], epie, rpie, mpie), ``--iterations`` (default 300),
``--schedule`` (e.g. ``"epie:50,crisp:250"``), ``--seed`` (random position orders), ``--param``
(engine parameters such as ``clip=scale``, ``c=0.01``, ``xi=0.05``, ``alpha_p=0.4``,
``probe_start=10``, plus the problem options ``fft_norm=backward``, ``probe_energy_match=false``
and ``flip_translations=true``), ``--device``, ``--precision``, ``--checkpoint``,
``--checkpoint-every``, ``--resume``, ``--metric-every``, ``--no-figure``, ``--out``, ``--quiet``,
``--config``.  CDI-only options (``--starts`` > 1, ``--support``, shrink-wrap, ``--real``,
``--positive``, ``--beta``) are errors.

Writes the result CXI (object ``image_1``, probe ``image_2``, history, config, provenance), a
PNG (amplitude, phase, probe, R_F curve and, when the file holds a simulation's ground truth,
the FRC) and prints a summary.
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

_CDI_ONLY = ("support", "shrinkwrap", "sw_every", "sw_threshold", "sw_sigma", "real", "positive",
             "beta")
_PROBLEM_KEYS = ("fft_norm", "probe_energy_match", "flip_translations")


def run_ptycho(input_file, values: dict, params: dict, given, echo=click.echo) -> dict:
    """Reconstruct the scan in ``input_file``; write result, figure; print a summary.

    The outputs are checked and locked before the scan is read
    (:func:`phasekit.cli.outputs.plan_outputs`); the memory the run needs is checked before
    it starts (``values["force"]`` overrides).
    """
    from ..core.errors import ConfigError
    from ..core.resources import memory_override
    from .outputs import plan_outputs

    bad = [f"--{n.replace('_', '-')}" for n in _CDI_ONLY if given(n)]
    if given("starts") and values.get("starts", 1) != 1:
        bad.append("--starts")
    if bad:
        raise ConfigError(f"{', '.join(bad)} not supported for ptychography scans")
    out = Path(values["out"]) if values.get("out") else \
        Path(input_file).with_name(Path(input_file).stem + "_result.cxi")
    checkpoint = values.get("checkpoint") or values.get("resume")
    with plan_outputs(out, input_path=input_file, figure=not values.get("no_figure"),
                      checkpoint=checkpoint) as plan, \
            memory_override(bool(values.get("force")), "--force"):
        return _run_ptycho(input_file, values, params, given, plan, echo)


def _run_ptycho(input_file, values: dict, params: dict, given, plan, echo) -> dict:
    from ..core.resources import check_memory, estimate_ptycho
    from ..io import read_ptycho, write_ptycho_result
    from ..ptycho import PtychoProblem
    from ..ptycho.api import reconstruct
    from ..ptycho.metrics import band_mean, object_error, object_frc, probe_correlation
    from ..ptycho.scan import object_shape_for
    from .main import command_line

    out, checkpoint = plan.result, plan.checkpoint
    data = read_ptycho(input_file)
    for w in data.metadata.get("warnings", []):  # e.g. negative (bad) pixels masked at the boundary
        echo(f"warning: {input_file}: {w}", err=True)
    p = dict(params)
    extra = {k: p.pop(k) for k in _PROBLEM_KEYS if k in p}
    flip = bool(extra.pop("flip_translations", False))
    pos = data.positions_px(flip=flip) if flip else data.positions_px()
    alg = values["algorithm"].lower() if given("algorithm") else "crisp"
    schedule = values.get("schedule")  # '' is an error (an empty chain), not "no chain"
    n_iter = values.get("iterations") or 300
    obj_shape = data.truth.shape if data.truth is not None else None
    n, my, mx = data.intensities.shape
    est_shape = obj_shape or object_shape_for(pos, (my, mx))
    check_memory(estimate_ptycho(n, (my, mx), est_shape, values.get("precision", "single")),
                 f"reconstructing {n} frames of {my}x{mx} (object "
                 f"{est_shape[0]}x{est_shape[1]})")
    problem = PtychoProblem.from_arrays(
        data.intensities, pos, mask=data.mask, object_shape=obj_shape,
        fft_norm=extra.get("fft_norm", "ortho"),
        probe_energy_match=extra.get("probe_energy_match"), device=values.get("device", "cpu"),
        precision=values.get("precision", "single"),
        clip_negative=bool(values.get("clip_negative", False)))
    t0 = time.perf_counter()
    result = reconstruct(problem, algorithm=alg, n_iter=None if schedule else n_iter,
                         schedule=schedule, rng=values.get("seed", 0),
                         progress=False if values.get("quiet") else None,
                         metric_every=values.get("metric_every", 1), checkpoint=checkpoint,
                         checkpoint_every=values.get("checkpoint_every", 100),
                         resume=values.get("resume"), **p)
    wall = time.perf_counter() - t0
    result.config = dict(result.config or {}, input=str(input_file), **extra)
    result.provenance = dict(result.provenance or {}, command=command_line())

    facts = {"R_F": result.rfactor, "wall_s": wall}
    frc_curve = None
    if data.truth is not None and data.truth.shape == result.image.shape:
        import torch

        ill = problem.illumination(torch.as_tensor(data.probe, dtype=problem.cdtype)
                                   / problem.probe_scale).cpu().numpy() \
            if data.probe is not None else problem.illumination(problem.probe0).cpu().numpy()
        frc_curve = object_frc(result.image, data.truth, ill)
        facts["object_error"] = object_error(result.image, data.truth, ill, threshold=0.1)
        facts["frc_high"] = band_mean(*frc_curve, 0.25, 0.5)
        if data.probe is not None:
            facts["probe_correlation"] = probe_correlation(result.probe, data.probe)
            facts["probe_correlation_modulus"] = probe_correlation(result.probe, data.probe,
                                                                   modulus=True)
    extras = {"frc": np.stack(frc_curve)} if frc_curve is not None else {}
    write_ptycho_result(out, result, extra=extras)
    written = [str(out)]
    if plan.figure is not None:
        from ..ptycho.plot import plot_ptycho_result
        from .outputs import write_figure

        if write_figure(plan.figure, plot_ptycho_result, result, plan.figure, frc=frc_curve,
                        truth=data.truth):
            written.append(str(plan.figure))
    chain = " -> ".join(f"{a.upper()}:{k}" for a, k, *_ in result.config.get("schedule", []))
    echo(f"input:   {input_file} ({n} frames of {my}x{mx}, object {result.image.shape[0]}x"
         f"{result.image.shape[1]})")
    echo(f"run:     {chain}, seed {values.get('seed', 0)}, "
         f"{result.config.get('device')}/{values.get('precision', 'single')}")
    h = result.history
    echo(f"R_F:     {result.rfactor:.5g} (sweep R_F {h['R_F'][0]:.4g} -> {h['R_F'][-1]:.4g})")
    per_it = (result.timings or {}).get("per_iteration_s", float("nan"))
    echo(f"time:    {wall:.2f} s, {per_it * 1e3:.3g} ms/iteration")
    if "object_error" in facts:
        txt = f"truth:   object error {facts['object_error']:.4f}, FRC(0.25-0.5) {facts['frc_high']:.3f}"
        if "probe_correlation" in facts:
            txt += f", probe correlation {facts['probe_correlation']:.4f}"
        echo(txt)
    echo(f"wrote:   {', '.join(written)}")
    return {"result": result, "out": out, "facts": facts}
