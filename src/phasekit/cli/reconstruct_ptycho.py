"""``phasekit reconstruct`` for ptychography scans: CXI (phasekit, PyNX, cdtools with
``basis_vectors``), PtyLab HDF5 and PtyPy ``.ptyd`` files (:func:`phasekit.io.read_ptycho`).

The ``reconstruct`` command hands such a file to :func:`run_ptycho`.  Supported options:
``--algorithm`` (crisp [default], epie, rpie, mpie, pine), ``--iterations`` (default: the
algorithm's, as ``phasekit algorithms`` lists them: 300 sweeps, PINE 200),
``--schedule`` (e.g. ``"epie:50,crisp:250"``), ``--seed`` (random position orders), ``--param``
(engine parameters such as ``clip=scale``, ``c=0.01``, ``xi=0.05``, ``alpha_p=0.4``,
``probe_start=10``, plus the problem options ``fft_norm=backward``, ``probe_energy_match=false``
and ``flip_translations=true`` (= ``--flip``)), ``--device``, ``--precision``, ``--checkpoint``,
``--checkpoint-every``, ``--resume``, ``--metric-every``, ``--no-figure``, ``--out``, ``--quiet``,
``--config``, and the ptychography options of :func:`ptycho_options`: ``--near-field DISTANCE``
(focus-to-sample distance in metres, or ``inf`` for a parallel beam: near-field propagation
with Fresnel scaling, :func:`phasekit.ptycho.geometry.scan_geometry`), ``--propagator``
(``angular`` [default] or ``fresnel``), ``--flip`` / ``--transpose`` (translation conventions),
``--modes K`` (mixed-state probe), ``--refine-positions [START]`` and ``--background``.
CDI-only options (``--starts`` > 1, ``--support``, shrink-wrap, ``--real``, ``--positive``,
``--beta``) are errors, and the ptychography options are errors for other files.

Writes the result CXI (object ``image_1`` and probe ``image_2`` with ``x_pixel_size`` /
``y_pixel_size`` in metres, history, config, provenance, ``result_1/positions`` (refined when
``--refine-positions``) and ``positions_initial``, ``background`` when fitted), a PNG
(amplitude, phase, probe, R_F curve and, when the file holds a simulation's ground truth, the
FRC) and prints a summary, with a warning when the far-field reading of the file's geometry is
implausible (:func:`phasekit.ptycho.geometry.check_farfield_plausibility`).
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

_CDI_ONLY = ("support", "shrinkwrap", "sw_every", "sw_threshold", "sw_sigma", "real", "positive",
             "beta")
_PROBLEM_KEYS = ("fft_norm", "probe_energy_match", "flip_translations")
#: click parameter names of :func:`ptycho_options`
PTYCHO_KEYS = ("near_field", "propagator", "flip", "transpose", "modes", "refine_positions",
               "background", "denoiser")


class NearFieldType(click.ParamType):
    """A positive distance in metres, or ``inf`` (a parallel beam)."""

    name = "DISTANCE"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            v = float(value)
        else:
            text = str(value).strip().lower()
            if text in ("inf", "infinity", "parallel", "plane"):
                return float("inf")
            try:
                v = float(text)
            except ValueError:
                self.fail(f"{value!r} is not a distance in metres (or 'inf')", param, ctx)
        if not (v > 0):
            self.fail(f"{value!r}: the focus-to-sample distance must be positive (metres)",
                      param, ctx)
        return v


class RefineType(click.ParamType):
    """``--refine-positions [START]``: the first sweep (0-based) of position refinement."""

    name = "START"

    def convert(self, value, param, ctx):
        if value is True or value is None:
            return value
        try:
            v = int(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a sweep number", param, ctx)
        if v < 0:
            self.fail(f"{value!r}: the first sweep of refinement must be >= 0", param, ctx)
        return v


def ptycho_options(f):
    """Add the ptychography options (geometry, modes, positions, background) to a command."""
    opts = [
        click.option("--near-field", "near_field", type=NearFieldType(), default=None,
                     help="Ptychography: near-field (holographic) scan; DISTANCE is the "
                          "focus-to-sample distance in metres of the diverging beam (Fresnel "
                          "scaling: magnification (z1+z2)/z1), or 'inf' for a parallel beam."),
        click.option("--propagator", type=click.Choice(["angular", "fresnel"]),
                     default="angular", show_default=True,
                     help="Ptychography, near field: angular-spectrum or Fresnel transfer "
                          "function."),
        click.option("--flip", is_flag=True, default=False,
                     help="Ptychography: negate the translations (files whose sign convention "
                          "is the opposite of CXI's sample translation)."),
        click.option("--transpose", is_flag=True, default=False,
                     help="Ptychography: swap the x and y translations (detector axes "
                          "transposed with respect to the stage)."),
        click.option("--modes", type=click.IntRange(min=1), default=None, metavar="K",
                     help="Ptychography: K mutually incoherent probe modes (partial coherence)."),
        click.option("--refine-positions", "refine_positions", type=RefineType(),
                     is_flag=False, flag_value=True, default=None,
                     help="Ptychography: refine the scan positions, from sweep START (default "
                          "10); the refined positions are written to the result."),
        click.option("--background", is_flag=True, default=False,
                     help="Ptychography: fit an additive detector background."),
        click.option("--denoiser", default=None, metavar="NAME|FILE",
                     help="Ptychography, --algorithm pine: the denoiser, 'default' (shipped "
                          "DnCNN, the default), 'nonexpansive' (shipped, Lipschitz <= 1) or a "
                          ".npz written by 'phasekit train-denoiser' (docs/pine.md)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def refuse_non_ptycho(input_file, given) -> None:
    """A ptychography option for a file that is not a ptychography scan: one-line error."""
    from pathlib import Path

    from ..core.errors import ConfigError, InputError

    bad = [f"--{k.replace('_', '-')}" for k in PTYCHO_KEYS if given(k)]
    if bad and not Path(input_file).exists():
        raise InputError(f"{input_file}: no such file")
    if bad:
        raise ConfigError(f"{', '.join(bad)}: for ptychography scans only ({input_file} is not "
                          "one; scans are CXI files with translations, PtyLab HDF5 with a "
                          "ptychogram, or PtyPy .ptyd files)")


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


def _resolve_denoiser(values: dict, p: dict, alg: str, schedule) -> None:
    """``--denoiser`` for PINE: the shipped DnCNN by name or a weight file, wrapped for complex
    objects (min-max rescaling, the official code); resolved here because the ptychography
    package does not import :mod:`phasekit.learn`."""
    from ..core.errors import ConfigError

    uses_pine = "pine" in (str(schedule).lower() if schedule else alg)
    name = values.get("denoiser")
    if name is not None and not uses_pine:
        raise ConfigError("--denoiser is for --algorithm pine only")
    if not uses_pine or "denoiser" in p:
        return
    from ..learn.denoisers import load_complex_denoiser

    p["denoiser"] = load_complex_denoiser(name or "default")


def _run_ptycho(input_file, values: dict, params: dict, given, plan, echo) -> dict:
    from ..core.resources import check_memory, estimate_ptycho
    from ..io import read_ptycho, write_ptycho_result
    from ..ptycho import PtychoProblem
    from ..ptycho.api import reconstruct
    from ..ptycho.geometry import scan_geometry
    from ..ptycho.metrics import band_mean, object_error, object_frc, probe_correlation
    from ..ptycho.scan import object_shape_for
    from .main import command_line

    out, checkpoint = plan.result, plan.checkpoint
    data = read_ptycho(input_file)
    for w in data.metadata.get("warnings", []):  # e.g. negative (bad) pixels masked at the boundary
        echo(f"warning: {input_file}: {w}", err=True)
    p = dict(params)
    extra = {k: p.pop(k) for k in _PROBLEM_KEYS if k in p}
    flip = bool(extra.pop("flip_translations", False)) or bool(values.get("flip"))
    transpose = bool(values.get("transpose"))
    near = values.get("near_field")
    geo = scan_geometry(data, near, flip=flip, transpose=transpose,
                        propagator=values.get("propagator") or "angular")
    for w in geo.warnings:
        echo(f"warning: {input_file}: {w}", err=True)
    pos = geo.positions
    # a phasekit simulation: its own positions and object frame when the file's geometry gives
    # the same positions (then the ground truth is compared)
    obj_shape = None
    if data.truth is not None and data.truth_positions is not None and not (flip or transpose):
        tp = np.asarray(data.truth_positions, np.float64)
        if tp.shape == pos.shape and np.allclose(pos - pos.min(axis=0), tp - tp.min(axis=0),
                                                 atol=1e-3):
            pos, obj_shape = tp, data.truth.shape
    true_pos = data.metadata.get("true_positions") if obj_shape is not None else None
    alg = values["algorithm"].lower() if given("algorithm") else "crisp"
    schedule = values.get("schedule")  # '' is an error (an empty chain), not "no chain"
    n_iter = values.get("iterations")  # None: the algorithm's default (300 sweeps, PINE 200)
    n, my, mx = data.intensities.shape
    est_shape = obj_shape or object_shape_for(pos, (my, mx))
    n_modes = values.get("modes") or None
    refine = values.get("refine_positions")
    refine = False if refine is None else refine
    check_memory(estimate_ptycho(n, (my, mx), est_shape, values.get("precision", "single")),
                 f"reconstructing {n} frames of {my}x{mx} (object "
                 f"{est_shape[0]}x{est_shape[1]})")
    near_kw = geo.reconstruct_kwargs()
    near_kw.pop("positions")
    problem = PtychoProblem.from_arrays(
        data.intensities, pos, mask=data.mask, object_shape=obj_shape,
        fft_norm=extra.get("fft_norm", "ortho"),
        probe_energy_match=extra.get("probe_energy_match"), device=values.get("device", "cpu"),
        precision=values.get("precision", "single"),
        clip_negative=bool(values.get("clip_negative", False)), n_modes=n_modes,
        refine_positions=refine, background=bool(values.get("background")), **near_kw)
    _resolve_denoiser(values, p, alg, schedule)  # PINE: --denoiser (phasekit.learn)
    t0 = time.perf_counter()
    result = reconstruct(problem, algorithm=alg, n_iter=None if schedule else n_iter,
                         schedule=schedule, rng=values.get("seed", 0),
                         progress=False if values.get("quiet") else None,
                         metric_every=values.get("metric_every", 1), checkpoint=checkpoint,
                         checkpoint_every=values.get("checkpoint_every", 100),
                         resume=values.get("resume"), **p)
    wall = time.perf_counter() - t0
    geometry = {"propagation": geo.propagation, "object_pixel_m": list(geo.pixel_size),
                "distance_m": geo.distance, "magnification": geo.magnification,
                "focus_distance_m": geo.focus_distance, "flip": flip, "transpose": transpose,
                "layout": data.layout}
    result.config = dict(result.config or {}, input=str(input_file), geometry=geometry, **extra)
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
        if data.probe is not None:  # the dominant modes when there are several
            pe = result.probe[0] if np.ndim(result.probe) == 3 else result.probe
            pt = data.probe[0] if np.ndim(data.probe) == 3 else data.probe
            facts["probe_correlation"] = probe_correlation(pe, pt)
            facts["probe_correlation_modulus"] = probe_correlation(pe, pt, modulus=True)
    extras = {"frc": np.stack(frc_curve)} if frc_curve is not None else {}
    extras["positions_initial"] = np.asarray(pos, np.float64)
    refined = (result.extras or {}).get("positions")
    if refined is None:
        extras["positions"] = np.asarray(pos, np.float64)
    else:
        moved = np.linalg.norm(np.asarray(refined) - pos, axis=1)
        facts["position_shift_mean_px"] = float(moved.mean())
        facts["position_shift_max_px"] = float(moved.max())
    if true_pos is not None:  # a simulation with position errors: distance to the truth
        # (a global shift of all positions is a trivial ambiguity: removed)
        for key, q in (("position_error_initial_px", pos),
                       ("position_error_px", pos if refined is None else refined)):
            dq = np.asarray(q) - true_pos
            facts[key] = float(np.sqrt(((dq - dq.mean(axis=0)) ** 2).sum(axis=1).mean()))
    write_ptycho_result(out, result, extra=extras, pixel_size=geo.pixel_size)
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
    dy = geo.pixel_size[0]
    geo_txt = "far field" if geo.propagation == "farfield" else \
        f"near field ({geo.propagation}, magnification {geo.magnification:.4g}, distance " \
        f"{geo.distance * 1e3:.4g} mm)"
    echo(f"geometry: {geo_txt}, object pixel {dy * 1e9:.4g} nm, median step {geo.step:.2f} px"
         + (", flipped" if flip else "") + (", transposed" if transpose else ""))
    if n_modes and n_modes > 1 and result.probe is not None and np.ndim(result.probe) == 3:
        pw = (np.abs(result.probe) ** 2).sum(axis=(1, 2))
        echo(f"modes:   {n_modes}, power fractions " + ", ".join(f"{v:.3f}" for v in pw / pw.sum()))
    if "position_shift_mean_px" in facts:
        echo(f"positions: refined, mean shift {facts['position_shift_mean_px']:.3f} px, max "
             f"{facts['position_shift_max_px']:.3f} px")
    if "position_error_px" in facts:
        echo(f"positions vs truth: rms error {facts['position_error_initial_px']:.3f} px in the "
             f"file -> {facts['position_error_px']:.3f} px")
    if (result.extras or {}).get("background") is not None:
        echo(f"background: fitted, mean {float(np.mean(result.extras['background'])):.4g} "
             "counts/pixel")
    h = result.history
    echo(f"R_F:     {result.rfactor:.5g} (sweep R_F {h['R_F'][0]:.4g} -> {h['R_F'][-1]:.4g})")
    from .outputs import time_line

    echo(time_line(wall, result, result.n_iter, "sweeps"))
    if "object_error" in facts:
        txt = f"truth:   object error {facts['object_error']:.4f}, FRC(0.25-0.5) {facts['frc_high']:.3f}"
        if "probe_correlation" in facts:
            txt += f", probe correlation {facts['probe_correlation']:.4f}"
        echo(txt)
    echo(f"wrote:   {', '.join(written)}")
    return {"result": result, "out": out, "facts": facts}
