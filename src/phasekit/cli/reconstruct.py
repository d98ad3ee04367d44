"""``phasekit reconstruct``: phase retrieval of one diffraction pattern from a file.

Options come from three levels, later ones winning: the defaults, a TOML file (``--config``)
and the command line.  The TOML keys are the long option names with underscores
(``algorithm``, ``iterations``, ``starts``, ``seed``, ``schedule``, ``support``, ``shrinkwrap``,
``sw_every``, ``sw_threshold``, ``sw_sigma``, ``real``, ``positive``, ``beta``, ``device``,
``precision``, ``checkpoint``, ``checkpoint_every``, ``resume``, ``metric_every``,
``no_figure``, ``quiet``, ``out``) plus a ``[params]`` table of algorithm parameters
(``[params.hio]`` for one algorithm of a chain only); an unknown key is an error::

    algorithm = "gps-r"
    iterations = 1000
    starts = 8
    real = true
    [params]
    sigma = [[0.0, 0.01], [0.4, 0.1]]
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .algorithms import AlgorithmOption
from .pattern_input import pattern_options
from .reconstruct_tomo import tomo_options
from .reconstruct_ptycho import ptycho_options
from .main import command_line, common_options

log = logging.getLogger("phasekit")

#: reconstruct() keywords that --param must not shadow (each has its own option)
_RESERVED = {
    "data", "support", "algorithm", "n_iter", "schedule", "mask", "real", "positive", "starts",
    "rng", "x0", "shrinkwrap", "callback", "progress", "metric_every", "keep_best", "device",
    "precision", "checkpoint", "checkpoint_every", "resume", "clip_negative", "rfft",
    "batch_starts", "refine_support", "max_rounds",
}
_OPTION_FOR = {"n_iter": "--iterations", "rng": "--seed", "support": "--support",
               "schedule": "--schedule", "algorithm": "--algorithm", "real": "--real/--complex",
               "positive": "--positive/--no-positive", "starts": "--starts",
               "shrinkwrap": "--shrinkwrap", "metric_every": "--metric-every",
               "device": "--device", "precision": "--precision",
               "checkpoint": "--checkpoint", "checkpoint_every": "--checkpoint-every",
               "resume": "--resume", "progress": "--quiet", "rfft": "--rfft/--no-rfft",
               "batch_starts": "--batch-starts/--no-batch-starts",
               "refine_support": "--grow-support/--no-grow-support", "max_rounds": "--max-rounds"}


# --------------------------------------------------------------------------- option parsing
def parse_param_value(text: str) -> Any:
    """JSON when it parses (numbers, true/false, null, lists, quoted strings), else the text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        low = text.strip().lower()
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
        if low in ("none", "null"):
            return None
        return text


def parse_params(items) -> dict:
    """``["beta=0.8", "hio.beta=0.7"]`` -> ``{"beta": 0.8, "hio": {"beta": 0.7}}``."""
    from ..core.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE (e.g. --param beta=0.8)")
        if any(c.isspace() for c in key):
            raise ConfigError(f"--param {item!r}: the key {key!r} contains spaces")
        alg, dot, name = key.rpartition(".")
        if dot:
            if not alg or not name:
                raise ConfigError(f"--param {item!r}: expected ALGORITHM.KEY=VALUE")
            sub = out.setdefault(alg.lower(), {})
            if not isinstance(sub, dict):
                raise ConfigError(f"--param {item!r}: {alg!r} is also given as a parameter")
            sub[name] = parse_param_value(value)
        else:
            out[key] = parse_param_value(value)
    return out


def merge_params(*layers: dict) -> dict:
    """Merge parameter dicts (later wins; per-algorithm sub-dicts are merged key by key)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for k, v in (layer or {}).items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = {**out[k], **v}
            else:
                out[k] = v
    return out


def check_params(params: dict) -> None:
    from ..core.errors import ConfigError

    bad = sorted(k for k in params if k in _RESERVED)
    if bad:
        hints = ", ".join(f"{k} (use {_OPTION_FOR.get(k, 'its option')})" for k in bad)
        raise ConfigError(f"not an algorithm parameter: {hints}")


def parse_sw_sigma(text) -> tuple[float, float]:
    """``"3"`` -> (3, min(1.5, 3)); ``"3:1"`` -> (3, 1)."""
    from ..core.errors import ConfigError

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        start, end = float(text), None
    else:
        parts = str(text).split(":")
        try:
            if len(parts) == 1:
                start, end = float(parts[0]), None
            elif len(parts) == 2:
                start, end = float(parts[0]), float(parts[1])
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--sw-sigma {text!r}: expected START or START:END in pixels "
                              "(e.g. 3 or 3:1.5)") from None
    if end is None:
        end = min(1.5, start)
    if not (start > 0 and end > 0) or start != start or end != end:
        raise ConfigError(f"--sw-sigma {text!r}: widths must be positive")
    if end > start:
        raise ConfigError(f"--sw-sigma {text!r}: the end width {end:g} exceeds the start {start:g}")
    return start, end


def load_config(path) -> dict:
    """Read a TOML configuration file into a dict (keys checked by the caller)."""
    import tomllib

    from ..core.errors import ConfigError, FileFormatError

    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML ({' '.join(str(exc).split())})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text (TOML) file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{p}: is a directory, not a TOML file") from None


def apply_config(ctx: click.Context, values: dict, config: dict, path) -> dict:
    """Fill the options not given on the command line from ``config``; return its params."""
    from ..core.errors import ConfigError

    params = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
    allowed = {n for n in params if n not in _NOT_IN_CONFIG}
    allowed_all = sorted(allowed | {"params", "figure"})
    unknown = sorted(k for k in config if k not in allowed and k not in ("params", "figure"))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: "
                          f"{', '.join(allowed_all)}")
    cfg_params = config.get("params", {})
    if not isinstance(cfg_params, dict):
        raise ConfigError(f"{path}: 'params' must be a table ([params]), got {cfg_params!r}")
    cfg = dict(config)
    if "figure" in cfg:
        if "no_figure" in cfg:
            raise ConfigError(f"{path}: give 'figure' or 'no_figure', not both")
        f = cfg.pop("figure")
        if not isinstance(f, bool):
            raise ConfigError(f"{path}: 'figure' must be true or false, got {f!r}")
        cfg["no_figure"] = not f
    for key, raw in cfg.items():
        if key == "params":
            continue
        source = ctx.get_parameter_source(key)
        if source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            continue  # the command line wins
        opt = params[key]
        try:
            values[key] = opt.type_cast_value(ctx, raw)
        except click.BadParameter as exc:
            raise ConfigError(f"{path}: {key} = {raw!r}: {exc.message}") from None
        values.setdefault("_from_config", set()).add(key)
    return cfg_params


# options that are not configuration (they select the file or tune the output only)
_NOT_IN_CONFIG = {"config", "param", "verbose", "debug", "force"}


# --------------------------------------------------------------------------- the run
@dataclass
class ReconOptions:
    """Everything a reconstruction from a file needs (the merged options)."""

    input: str
    algorithm: str = "hio"
    iterations: int | None = None
    schedule: str | None = None
    starts: int = 1
    seed: int = 0
    support: str = "file"
    shrinkwrap: bool | None = None
    sw_every: int = 20
    sw_threshold: float = 0.1
    sw_sigma: str = "2:1"
    real: bool = False
    positive: bool = False
    rfft: bool = True
    batch_starts: bool | None = None  # None: batched when possible (docs/cdi.md "Batched starts")
    refine_support: bool | None = None  # None: on in the default recipe (docs/cdi.md)
    max_rounds: int | None = None  # None: 3 in the default recipe without --starts
    params: dict = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "single"
    checkpoint: str | None = None
    checkpoint_every: int = 100
    resume: str | None = None
    metric_every: int = 1
    figure: bool = True
    quiet: bool = False
    out: str | None = None
    sw_given: bool = False
    sw_threshold_given: bool = False
    starts_given: bool = True
    clip_negative: bool = False
    force: bool = False
    pattern: dict = field(default_factory=dict)  # --center/--bin/--crop/--mask...: pattern_input


def default_output(input_path) -> Path:
    p = Path(input_path)
    return p.with_name(f"{p.stem}_result.cxi")


def load_support(spec: str, data) -> tuple[Any, str]:
    """Resolve ``--support``: 'file', 'auto' or a ``.npy`` file; returns (array or None, label)."""
    import numpy as np

    from ..core.errors import FileFormatError, InputError

    key = str(spec).strip()
    if key.lower() == "file":
        if data.support is not None:
            return data.support, f"from the input file ({int(data.support.sum())} pixels)"
        return None, "autocorrelation (the file has none)"
    if key.lower() == "auto":
        return None, "autocorrelation"
    p = Path(key)
    if not p.exists():
        raise FileFormatError(f"{p}: no such support file (--support takes a .npy file, "
                              "'auto' or 'file')")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any numpy failure is a file problem
        raise FileFormatError(f"{p}: not a readable .npy support file "
                              f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray):
        raise FileFormatError(f"{p}: expected a single .npy array, got a {type(arr).__name__}")
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf" or not np.all(np.isin(arr, (0, 1))):
            raise InputError(f"{p}: support must be a boolean array (or 0/1), got dtype "
                             f"{arr.dtype}")
        arr = arr.astype(bool)
    if arr.shape != data.intensity.shape:
        raise InputError(f"{p}: support shape {arr.shape} != intensity shape "
                         f"{data.intensity.shape}")
    if not arr.any():
        raise InputError(f"{p}: the support is empty")
    return arr, f"{p} ({int(arr.sum())} pixels)"


def run_reconstruction(opts: ReconOptions, echo=click.echo) -> dict:
    """Read, reconstruct, save the result and the figure, print a summary; return the facts.

    The outputs (result, figure, checkpoint) are checked and locked before the input is read
    (:func:`phasekit.cli.outputs.plan_outputs`), and the memory the run needs is checked
    against the available memory before it starts (``opts.force`` overrides).
    """
    from ..core.resources import memory_override
    from .outputs import plan_outputs

    out = Path(opts.out) if opts.out else default_output(opts.input)
    checkpoint = opts.checkpoint or opts.resume  # keep writing where we resumed from
    with plan_outputs(out, input_path=opts.input, figure=opts.figure, checkpoint=checkpoint), \
            memory_override(opts.force, "--force"):
        return _run_reconstruction(opts, out, checkpoint, echo)


def _run_reconstruction(opts: ReconOptions, out: Path, checkpoint, echo) -> dict:
    from ..cdi import reconstruct
    from ..core.resources import check_memory, estimate_cdi_reconstruction
    from ..io import read_diffraction

    data = read_diffraction(opts.input)
    from .pattern_input import prepare_input, summary_line

    data, pattern_report = prepare_input(data, opts.pattern)  # centre, mask, bin, crop
    shape = "x".join(str(n) for n in data.intensity.shape)
    n_starts = max(int(opts.starts or 1), 2)  # the default recipe may run two starts
    check_memory(estimate_cdi_reconstruction(data.intensity.shape, n_starts, opts.precision),
                 f"reconstructing a {shape} pattern with up to {n_starts} start(s)")
    check_params(opts.params)
    support, support_label = load_support(opts.support, data)

    sw = None
    # the default recipe (docs/cdi.md): shrink-wrap is on when the support is not known in
    # advance (the file has none, or --support auto) unless --no-shrinkwrap; --sw-* turn it on
    use_sw = opts.shrinkwrap if opts.shrinkwrap is not None else (opts.sw_given or support is None)
    if use_sw:
        s0, s1 = parse_sw_sigma(opts.sw_sigma)
        sw = {"every": opts.sw_every, "threshold": opts.sw_threshold, "sigma_start": s0,
              "sigma_end": s1}
    starts = opts.starts
    if use_sw and support is None and not opts.sw_threshold_given:
        # the default recipe: one start per threshold, the lowest final R_F reported (docs/cdi.md)
        from ..cdi.api import DEFAULT_START_THRESHOLDS

        sw["start_thresholds"] = list(DEFAULT_START_THRESHOLDS)
        if not opts.starts_given:
            starts = None  # one start per threshold, in up to DEFAULT_MAX_ROUNDS rounds

    schedule = opts.schedule  # '' is an error (an empty chain), not "no chain"

    log.debug("reconstruct %s: algorithm=%s iterations=%s schedule=%s starts=%s seed=%s "
              "support=%s shrinkwrap=%s real=%s positive=%s params=%s", opts.input,
              opts.algorithm, opts.iterations, schedule, opts.starts, opts.seed, support_label,
              sw, opts.real, opts.positive, opts.params)
    t0 = time.perf_counter()
    result = reconstruct(
        data.intensity, support, mask=data.mask, algorithm=opts.algorithm,
        n_iter=opts.iterations, schedule=schedule, real=opts.real, positive=opts.positive,
        starts=starts, rng=opts.seed, shrinkwrap=sw if sw is not None else False,
        progress=False if opts.quiet else None, metric_every=opts.metric_every,
        device=opts.device, precision=opts.precision, checkpoint=checkpoint,
        clip_negative=opts.clip_negative, rfft=opts.rfft, batch_starts=opts.batch_starts,
        refine_support=opts.refine_support, max_rounds=opts.max_rounds,
        checkpoint_every=opts.checkpoint_every, resume=opts.resume, **opts.params)
    wall = time.perf_counter() - t0

    result.config = dict(result.config or {})
    result.config["input"] = str(opts.input)
    result.config["support_source"] = support_label
    result.config["pattern"] = pattern_report
    if opts.params:
        result.config["params"] = opts.params
    result.provenance = dict(result.provenance or {})
    result.provenance["command"] = command_line()
    result.save(out)
    written = [str(out)]

    png = None
    if opts.figure:
        from ..plot import plot_cdi_result
        from .outputs import write_figure

        png = out.with_suffix(".png")  # the same name plan_outputs checked
        if write_figure(png, plot_cdi_result, result, png, truth=data.truth,
                        intensity=data.intensity, mask=data.mask):
            written.append(str(png))
        else:
            png = None

    err = rreal = None
    truth_note = ""
    if data.truth is not None:
        from ..metrics import align, r_real, relative_error
        from ..plot import real_if_real

        truth = real_if_real(data.truth)
        if truth.shape == result.image.shape:
            aligned, _ = align(real_if_real(result.image), truth)
            err = relative_error(aligned, truth, align_first=False)
            rreal = r_real(aligned, truth, align_first=False)
        else:
            truth_note = f"ground truth shape {truth.shape} != image shape {result.image.shape}"

    # ---- summary
    n_meas = data.n_measured
    stages = result.config.get("schedule") or []
    chain = " -> ".join(f"{a.upper()}:{n}" for a, n, *_ in stages)
    flags = ", ".join(f for f, on in (("real", opts.real), ("positive", opts.positive)) if on)
    flags = flags or "complex"
    th_txt = ("/".join(f"{t:g}" for t in sw["start_thresholds"]) + " by start"
              if sw and sw.get("start_thresholds") else f"{sw['threshold']:g}" if sw else "")
    sw_txt = (f", shrink-wrap every {sw['every']} (threshold {th_txt}, sigma "
              f"{sw['sigma_start']:g}->{sw['sigma_end']:g})") if sw else ""
    rfs = result.rfactors
    n_done = sum(int(h["iteration"][-1]) for h in result.histories if h.get("iteration"))
    echo(f"input:   {opts.input} ({shape}, {n_meas} of {data.intensity.size} pixels measured)")
    echo(summary_line(pattern_report))
    batched = " (batched)" if result.config.get("batched_starts") else ""
    n_starts = starts if starts is not None else len(result.rfactors)
    echo(f"run:     {chain}, {flags}, {n_starts} start(s){batched}, seed {opts.seed}, "
         f"{result.config.get('device', opts.device)}/{opts.precision}; support {support_label}"
         f"{sw_txt}")
    echo(f"R_F:     best {result.rfactor:.5g}; per start (best first): "
         + ", ".join(f"{r:.5g}" for r in rfs))
    disc = result.config.get("discrepancy")
    if disc:
        echo("support: " + discrepancy_line(disc))
    from .outputs import time_line

    echo(time_line(wall, result, n_done))
    if err is not None:
        echo(f"truth:   aligned relative error {err:.4f}, R_real {rreal:.4f}")
    elif truth_note:
        echo(f"truth:   not compared ({truth_note})")
    if not result.success:
        echo(f"warning: {result.message}", err=True)
    echo(f"wrote:   {', '.join(written)}")
    return {"result": result, "out": out, "png": png, "relative_error": err, "r_real": rreal,
            "wall_s": wall, "data": data}


# --------------------------------------------------------------------------- the command
@click.command("reconstruct")
@click.argument("input_file", metavar="FILE")
@click.option("-a", "--algorithm", cls=AlgorithmOption, default="hio", metavar="NAME",
              help="Algorithm (see 'phasekit algorithms').")
@click.option("-n", "--iterations", type=click.IntRange(min=1), default=None,
              help="Iterations (default: the algorithm's, e.g. 1000 for HIO).")
@click.option("--schedule", default=None, metavar="CHAIN",
              help="A chain instead of one algorithm, e.g. 'HIO:800,ER:200' or '(HIO:50,ER:10)*5'.")
@click.option("-s", "--starts", type=click.IntRange(min=1), default=1, show_default=True,
              help="Random starts; the best by final R-factor is reported first.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random starts.")
@click.option("--support", default="file", show_default=True, metavar="FILE.npy|auto|file",
              help="Support: a boolean .npy array, 'auto' (thresholded autocorrelation) or 'file' "
                   "(the one in the input file if any, else auto).")
@click.option("--shrinkwrap/--no-shrinkwrap", default=None,
              help="Shrink-wrap support updates (default: on when the support is not known in "
                   "advance, i.e. the file has none or --support auto; on when any --sw-* "
                   "option is given).")
@click.option("--sw-every", type=click.IntRange(min=1), default=20, show_default=True,
              help="Shrink-wrap: iterations between support updates.")
@click.option("--sw-threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.1, show_default=True,
              help="Shrink-wrap: threshold, fraction of the blurred maximum (default recipe, "
                   "support not known and no --sw-threshold: 0.1 and 0.05, one per start, "
                   "with 2 starts unless --starts).")
@click.option("--sw-sigma", default="2:1", show_default=True, metavar="START[:END]",
              help="Shrink-wrap: Gaussian blur width in pixels, shrinking from START to END.")
@click.option("--clip-negative", is_flag=True, default=False,
              help="Set negative intensities (background-subtracted data) to zero instead of "
                   "refusing the file.")
@click.option("--real/--complex", default=False, show_default=True,
              help="Constrain the object to be real.")
@click.option("--positive/--no-positive", default=False, show_default=True,
              help="Constrain the real part of the object to be non-negative.")
@click.option("--rfft/--no-rfft", default=True, show_default=True,
              help="With --real: run ER/HIO/RAAR/OSS on real FFTs and the Hermitian half "
                   "spectrum (same iterates within rounding, about half the time); --no-rfft "
                   "forces the complex path.")
@click.option("--batch-starts/--no-batch-starts", default=None,
              help="Run the --starts as one batched problem (ER/HIO/RAAR; same results as one "
                   "after another within rounding). Default: batched when every stage can and "
                   "the batch fits in memory; a --resume follows its checkpoint.")
@click.option("--grow-support/--no-grow-support", default=None,
              help="Default recipe: after the run, grow the support while R_F is above 1.15x "
                   "the data's Poisson noise level (the discrepancy principle; docs/cdi.md). "
                   "Default: on when no support is given and shrink-wrap runs.")
@click.option("--max-rounds", type=click.IntRange(min=1), default=None,
              help="Default recipe: further rounds of random starts while the best R_F is above "
                   "1.15x the noise level (default 3 without --starts, else 1).")
@click.option("--beta", type=float, default=None,
              help="Feedback/relaxation parameter of HIO, RAAR, OSS (same as --param beta=...).")
@click.option("-p", "--param", multiple=True, metavar="KEY=VALUE",
              help="Algorithm parameter (repeatable); VALUE is read as JSON when it parses. "
                   "ALG.KEY=VALUE sets it for one algorithm of a chain.")
@click.option("-c", "--config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML file of options (keys = long option names with underscores, and a "
                   "[params] table); command-line options override it.")
@click.option("--device", type=click.Choice(["cpu", "cuda"], case_sensitive=False), default="cpu",
              show_default=True, help="Compute device.")
@click.option("--precision", type=click.Choice(["single", "double"], case_sensitive=False),
              default="single", show_default=True, help="complex64 (single) or complex128.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Write a checkpoint file every --checkpoint-every iterations.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=100, show_default=True,
              help="Iterations between checkpoints.")
@click.option("--resume", type=click.Path(dir_okay=False), default=None,
              help="Continue from a checkpoint written by the same command.")
@click.option("--metric-every", type=click.IntRange(min=0), default=1, show_default=True,
              help="Record the R-factor every N iterations (0: at the end of each stage only).")
@click.option("--no-figure", is_flag=True, default=False, help="Do not write the PNG figure.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Result file (CXI).  Default: <input stem>_result.cxi next to the input.")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No progress bar.")
@click.option("--force", is_flag=True, default=False,
              help="Run even when the estimated memory exceeds the available memory.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch and the compiled kernels.  Default: one thread when "
                   "the problem's operations hold fewer than 2^18 elements (a pattern smaller "
                   "than 512x512, a ptychography frame and its modes, a small tomogram), where "
                   "more threads only cost; else torch's count, usually the cores "
                   "(docs/conventions.md, \"Threads\").")
@pattern_options
@tomo_options
@ptycho_options
@common_options
@click.pass_context
def reconstruct(ctx: click.Context, input_file, **values) -> None:
    """Reconstruct from FILE: a CDI diffraction pattern (.cxi/.h5, .npy, .npz), a ptychography
    scan (CXI with translations) or a tomography tilt series (HDF5); the modality is read from
    the file and the algorithm must belong to it.

    Writes the result (CXI: every start's image, best first, with support, R-factor history,
    parameters and versions) and a PNG figure beside it, and prints a summary: R-factors,
    time per iteration and, when FILE holds a simulation's ground truth, the aligned error.

    \b
    Examples:
      phasekit reconstruct data.cxi --algorithm gps-r --iterations 1000 --starts 8
      phasekit reconstruct data.cxi --schedule "HIO:800,ER:200" --real --positive --shrinkwrap
      phasekit reconstruct data.cxi --config run.toml --param sigma=0.05
    """
    cfg_params: dict = {}
    if values.get("config"):
        config = load_config(values["config"])
        cfg_params = apply_config(ctx, values, config, values["config"])
    from_config = values.pop("_from_config", set())
    from ..core.threads import cpu_threads

    with cpu_threads(values.get("threads")):
        _dispatch(ctx, input_file, values, cfg_params, from_config)


def _dispatch(ctx: click.Context, input_file, values: dict, cfg_params: dict, from_config) -> None:
    """The body of ``phasekit reconstruct``: the modality from the file, then its run."""
    params = dict(cfg_params)
    if values.get("beta") is not None:
        params = merge_params(params, {"beta": values["beta"]})
    params = merge_params(params, parse_params(values.get("param")))

    def given(name):
        src = ctx.get_parameter_source(name)
        return name in from_config or src not in (None, ParameterSource.DEFAULT,
                                                   ParameterSource.DEFAULT_MAP)

    from ..tomo.io import is_tomo_file  # tomography tilt series: see cli/reconstruct_tomo.py

    from ..io.ptycho import is_ptycho_file
    from .pattern_input import given_pattern_options, pattern_settings

    pattern_given = [o for o in given_pattern_options(given)  # --center is also tomography's
                     if not (o in ("--center", "--no-center") and is_tomo_file(input_file))]
    if (is_tomo_file(input_file) or is_ptycho_file(input_file)) and pattern_given:
        from ..core.errors import ConfigError

        raise ConfigError(f"{', '.join(pattern_given)}: for CDI patterns only, "
                          f"not for {'tomography' if is_tomo_file(input_file) else 'ptychography'}"
                          " files")
    if not is_ptycho_file(input_file):  # --near-field, --modes, ...: scans only
        from .reconstruct_ptycho import refuse_non_ptycho

        refuse_non_ptycho(input_file, given)
    if is_tomo_file(input_file):
        from .reconstruct_tomo import run_tomo

        run_tomo(input_file, values, params, given)
        return

    from ..io.ptycho import is_ptycho_file  # ptychography scans: see cli/reconstruct_ptycho.py

    if is_ptycho_file(input_file):
        from .reconstruct_ptycho import run_ptycho

        run_ptycho(input_file, values, params, given)
        return

    from .reconstruct_tomo import refuse_non_tomo  # a tomography algorithm/option, no tilt series

    refuse_non_tomo(input_file, values, given)
    if values.get("schedule"):
        ignored = [f"--{n}" for n in ("algorithm", "iterations") if given(n)]
        if ignored:
            log.warning("--schedule given: %s ignored", " and ".join(ignored))
    sw_given = any(given(n) for n in ("sw_every", "sw_threshold", "sw_sigma"))

    opts = ReconOptions(
        input=input_file, algorithm=values["algorithm"], iterations=values["iterations"],
        schedule=values["schedule"], starts=values["starts"], seed=values["seed"],
        support=values["support"], shrinkwrap=values["shrinkwrap"], sw_every=values["sw_every"],
        sw_threshold=values["sw_threshold"], sw_sigma=values["sw_sigma"], real=values["real"],
        positive=values["positive"], rfft=values["rfft"], batch_starts=values.get("batch_starts"),
        refine_support=values.get("grow_support"), max_rounds=values.get("max_rounds"),
        params=params, device=values["device"].lower(),
        precision=values["precision"].lower(), checkpoint=values["checkpoint"],
        checkpoint_every=values["checkpoint_every"], resume=values["resume"],
        metric_every=values["metric_every"], figure=not values["no_figure"],
        quiet=values["quiet"], out=values["out"], sw_given=sw_given, force=values["force"],
        sw_threshold_given=given("sw_threshold"), starts_given=given("starts"),
        clip_negative=values["clip_negative"], pattern=pattern_settings(values, given))
    run_reconstruction(opts)


def discrepancy_line(disc: dict) -> str:
    """One line on the default recipe's discrepancy step (noise level, growth, rounds)."""
    noise = disc.get("noise_rfactor", float("nan"))
    rounds = disc.get("rounds") or []
    chosen = rounds[disc.get("chosen_round", 0)] if rounds else {}
    parts = [f"noise level R_F {noise:.4g}" if noise == noise else "noise level unknown (not counts)"]
    if chosen.get("growth"):
        parts.append(f"grown {chosen['support_area_before']} -> {chosen['support_area']} px "
                     f"(R_F {chosen['rfactor_before']:.4g} -> {chosen['rfactor']:.4g})")
    elif disc.get("refine_support"):
        parts.append(f"{chosen.get('support_area', 0)} px kept (no growth needed or none fitted better)")
    parts.append(f"{disc.get('rounds_run', 1)} round(s) of starts (at most {disc.get('max_rounds', 1)}), "
                 f"round {disc.get('chosen_round', 0) + 1} reported")
    return "; ".join(parts)
