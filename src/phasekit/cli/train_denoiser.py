"""``phasekit train-denoiser``: train the PINE denoiser (a RealSN DnCNN) on dead-leaves images.

Defaults are the PINE paper's network and schedule (17 x 64 DnCNN with BN, residual form,
1000 images, 50 epochs, batch 128, Adam 1e-3 -> 1e-4 at half, sigma 15/255); on a GPU the
command trains it unchanged.  On a CPU, use a smaller net and a time budget, e.g.::

    phasekit train-denoiser -o my.npz --depth 8 --width 32 --max-minutes 30

Writes the folded weights (``.npz``, loadable with ``--denoiser FILE`` of ``phasekit
reconstruct``) and a JSON report beside them (PSNR in/out on held-out images and on
``skimage.data.camera()``, measured Lipschitz constant, timings).  ``--checkpoint`` saves the
training state every ``--checkpoint-every`` steps and ``--resume`` continues from it.
"""
from __future__ import annotations

from pathlib import Path

import click

from .main import common_options


@click.command("train-denoiser")
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True,
              help="Weight file to write (.npz); the report goes to the same name with .json.")
@click.option("--depth", type=click.IntRange(min=2), default=17, show_default=True,
              help="Convolutions of the DnCNN (the paper: 17).")
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True,
              help="Channels of the hidden layers (the paper: 64).")
@click.option("--bn/--no-bn", default=True, show_default=True,
              help="Batch normalisation (the paper's layout; breaks the Lipschitz bound).")
@click.option("--mode", type=click.Choice(["residual", "averaged"]), default="residual",
              show_default=True, help="residual: D = x - N(x) (the paper); averaged: "
              "D = (x + N(x))/2, nonexpansive (needs --no-bn).")
@click.option("--images", "n_images", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Dead-leaves images (half DL-Diverse, half DL-Textured).")
@click.option("--image-size", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--patch", type=click.IntRange(min=4), default=50, show_default=True)
@click.option("--stride", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=50.0,
              show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop after this many steps (overrides --epochs).")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Wall-time budget of the training loop (the learning rate drops at half).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              show_default=True)
@click.option("--sigma", type=click.FloatRange(min=0, min_open=True), default=15.0,
              show_default=True, help="Noise level on the 0-255 scale.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True, help="auto: measure fp32 vs bf16 (+channels_last) on CPU.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file of the training state.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--resume", is_flag=True, default=False, help="Continue from --checkpoint.")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No progress bar.")
@common_options
def train_denoiser(out, depth, width, bn, mode, n_images, image_size, patch, stride, batch, epochs,
                   max_steps, max_minutes, lr, sigma, precision, device, threads, seed, checkpoint,
                   checkpoint_every, resume, quiet) -> None:
    """Train the PINE denoiser on dead-leaves images and write weights plus a JSON report.

    \b
    Examples:
      phasekit train-denoiser -o dncnn17.npz                      # the paper's net (GPU)
      phasekit train-denoiser -o small.npz --depth 8 --width 32 --max-minutes 20
      phasekit train-denoiser -o ne.npz --no-bn --mode averaged --depth 8 --width 32
    """
    from ..core.errors import ConfigError
    from .outputs import plan_outputs

    if resume and not checkpoint:
        raise ConfigError("--resume needs --checkpoint")
    if mode == "averaged" and bn:
        raise ConfigError("--mode averaged needs --no-bn (BN breaks the nonexpansive bound)")
    if patch > image_size:
        raise ConfigError(f"--patch {patch} is larger than --image-size {image_size}")
    out_p = Path(out)
    report_p = out_p.with_suffix(".json")
    with plan_outputs(out_p, checkpoint=checkpoint, extras=[(report_p, "the report")],
                      suffixes=(".npz",)):
        from ..learn.denoisers.training import TrainConfig
        from ..learn.denoisers.training import train_denoiser as _train

        cfg = TrainConfig(depth=depth, width=width, bn=bn, mode=mode, n_images=n_images,
                          image_size=image_size, patch=patch, stride=stride, batch=batch,
                          epochs=epochs, max_steps=max_steps, max_minutes=max_minutes, lr=lr,
                          lr_final=lr / 10, sigma=sigma / 255.0, seed=seed, precision=precision,
                          device=device, threads=threads, checkpoint_every=checkpoint_every)
        rep = _train(cfg, out_p, checkpoint=checkpoint, resume=resume, progress=not quiet,
                     log=lambda s: click.echo(s, err=True))
    h = rep["heldout_deadleaves"]
    lines = [f"wrote {out_p} and {report_p}",
             f"steps {rep['steps']} ({rep['epochs']:.2f} epochs), {rep['seconds_per_step']:.3f} s/step "
             f"({rep['precision']}{', channels_last' if rep['channels_last'] else ''}, {rep['device']})",
             f"held-out dead leaves: PSNR {h['psnr_in']:.2f} -> {h['psnr_out']:.2f} dB"]
    if "camera" in rep:
        c = rep["camera"]
        lines.append(f"camera: PSNR {c['psnr_in']:.2f} -> {c['psnr_out']:.2f} dB")
    lines.append(f"Lipschitz constant (max local, Jacobian power iteration): "
                 f"{rep['lipschitz']['max']:.3f}")
    click.echo("\n".join(lines))
