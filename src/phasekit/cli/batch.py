"""``phasekit batch``: phase every pattern of an SPI stack, in this process or on Dask."""
from __future__ import annotations

import click

from .main import command_line, common_options


@click.command("batch")
@click.argument("stack", metavar="STACK.cxi", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "outdir", type=click.Path(file_okay=False), required=True,
              help="Output directory (new or empty; with --resume, the run to continue).")
@click.option("-a", "--algorithm", type=click.Choice(["hio", "raar", "er", "vrrk"], case_sensitive=False),
              default="hio", show_default=True, help="Phasing algorithm (shrink-wrap support with all).")
@click.option("--starts", type=click.IntRange(min=1), default=4, show_default=True,
              help="Random starts per pattern; the best half are aligned and averaged.")
@click.option("--average", type=click.IntRange(min=1), default=None,
              help="How many of the best starts to average (default: half of --starts).")
@click.option("-n", "--iterations", type=click.IntRange(min=1), default=200, show_default=True,
              help="Iterations of hio/raar/er (the last 20 % are ER for hio/raar).")
@click.option("--vrrk-epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Epochs of VR-RK per start.")
@click.option("--beta", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True)
@click.option("--crop", type=click.IntRange(min=4), default=64, show_default=True,
              help="Side of the centred image crop stored per pattern.")
@click.option("--clip-negative", is_flag=True, help="Clip negative pixels to 0 instead of rejecting the pattern.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local Dask worker processes (default: one per core); 0 = this process, no Dask.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Use an existing Dask cluster, e.g. tcp://head:8786.")
@click.option("--scheduler-file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Use an existing Dask cluster described by a scheduler file.")
@click.option("--chunk", type=click.IntRange(min=1), default=16, show_default=True,
              help="Patterns per task (and per chunk file).")
@click.option("--resume", is_flag=True, help="Continue the run in OUT, skipping finished chunks.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="Retries of a task that raised.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Root seed (pattern i seeds from (seed, i)).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@common_options
def batch(stack, outdir, algorithm, starts, average, iterations, vrrk_epochs, beta, crop, clip_negative,
          workers, scheduler, scheduler_file, chunk, resume, retries, seed, quiet):
    """Phase every pattern of an SPI stack (CXI/HDF5 frames (N, H, W), centred).

    Each chunk of patterns is one task; a worker reads its chunk from the file, phases it
    (shrink-wrap, several starts, alignment and averaging, PRTF) and writes OUT/chunks/cNNNNNN.h5
    atomically; OUT/journal.jsonl records finished chunks; OUT/phased.h5 holds the merged
    result.  A bad pattern gets a status code instead of stopping the run.

    \b
    Examples:
      phasekit batch sim.cxi -o run1 --algorithm raar --starts 8 --workers 2
      phasekit batch sim.cxi -o run1 --resume
      phasekit batch big.cxi -o run2 --scheduler-file ~/scheduler.json --chunk 64
    """
    from ..core.errors import InputError
    from ..spi.distributed import run_batch

    if scheduler and scheduler_file:
        raise InputError("give either --scheduler or --scheduler-file, not both")
    if (scheduler or scheduler_file) and workers is not None:
        raise InputError("--workers starts a local cluster; it cannot be combined with --scheduler")
    summary = run_batch(stack, outdir, algorithm=algorithm.lower(), starts=starts, average=average,
                        iterations=iterations, vrrk_epochs=vrrk_epochs, beta=beta, crop=crop,
                        clip_negative=clip_negative, chunk=chunk, workers=workers, scheduler=scheduler,
                        scheduler_file=scheduler_file, resume=resume, retries=retries, seed=seed,
                        progress=not quiet)
    click.echo(summary.line())
    if summary.result is not None:
        click.echo(f"wrote {summary.result}  ({command_line()})")
