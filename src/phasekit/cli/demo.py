"""``phasekit demo``: simulate a small vesicle, reconstruct it, write the files, print a summary."""
from __future__ import annotations

import time
from pathlib import Path

import click

from .main import common_options

#: the simulated measurement of the demo
DEMO_SIMULATION = {"obj": "vesicle", "oversampling": 4.0, "photons": 1e8, "beamstop": 2.0,
                   "gaps": 0, "read_noise": 0.0, "complex_valued": False, "seed": 0}
#: the reconstruction of the demo.  Measured on 2 CPU cores for the default vesicle (size 128):
#: about 3 s of iterations, 8 s for the whole command, aligned relative error 0.145 (the best
#: R-factor start; the 8 starts range from 0.145 to 0.34).  The vesicle is a hard case for
#: HIO/ER: its near-centrosymmetric support makes random starts stagnate at errors of
#: 0.15-0.3, even without noise; with --object blobs or virus the error is about 0.03.
DEMO_RECONSTRUCTION = {"schedule": "HIO:1000,ER:200", "starts": 8, "seed": 0, "real": True,
                       "positive": True, "metric_every": 5}


@click.command("demo")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="phasekit-demo",
              show_default=True, help="Folder for demo.cxi, demo_result.cxi and demo_result.png.")
@click.option("--size", type=click.IntRange(min=32), default=128, show_default=True,
              help="Side of the simulated pattern in pixels.")
@click.option("--object", "obj", default="vesicle", show_default=True, metavar="NAME",
              help="Phantom (see 'phasekit simulate cdi --help').")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No progress bar.")
@click.option("--force", is_flag=True, default=False,
              help="Run even when the estimated memory exceeds the available memory.")
@common_options
def demo(out_dir: str, size: int, obj: str, quiet: bool, force: bool) -> None:
    """Simulate a vesicle, reconstruct it and write the data, the result and a figure.

    The same as running, in OUT:

    \b
      phasekit simulate cdi --object vesicle --size 128 --oversampling 4 --photons 1e8 \\
          --beamstop 2 --seed 0 --out demo.cxi
      phasekit reconstruct demo.cxi --schedule HIO:1000,ER:200 --real --positive \\
          --starts 8 --seed 0 --metric-every 5 --out demo_result.cxi
    """
    from ..core.errors import InputError
    from ..core.resources import (
        check_memory,
        estimate_cdi_reconstruction,
        estimate_cdi_simulation,
        memory_override,
    )
    from .outputs import plan_outputs
    from .reconstruct import ReconOptions, run_reconstruction
    from .simulate import simulate_cdi_file, simulation_summary

    t0 = time.perf_counter()
    folder = Path(out_dir)
    r = DEMO_RECONSTRUCTION
    with memory_override(force, "--force"):  # both steps, before anything is written
        check_memory(max(estimate_cdi_simulation(size),
                         estimate_cdi_reconstruction((size, size), r["starts"])),
                     f"the demo at --size {size}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {folder}: cannot create the folder "
                         f"({exc.strerror or type(exc).__name__})") from None
    data_path = folder / "demo.cxi"
    with plan_outputs(data_path, option="--out"), memory_override(force, "--force"):
        sim, _ = simulate_cdi_file(data_path, size=size, **{**DEMO_SIMULATION, "obj": obj})
    click.echo(simulation_summary(sim, data_path))
    opts = ReconOptions(input=str(data_path), schedule=r["schedule"], starts=r["starts"],
                        seed=r["seed"], real=r["real"], positive=r["positive"],
                        metric_every=r["metric_every"], out=str(folder / "demo_result.cxi"),
                        quiet=quiet, force=force)
    run_reconstruction(opts)
    click.echo(f"demo finished in {time.perf_counter() - t0:.1f} s; look at "
               f"{folder / 'demo_result.png'} (or run 'phasekit info {folder / 'demo_result.cxi'}')")
