r"""Training of the PINE denoiser on dead-leaves images (PINE paper, sec. 2.5; the unstated
details from Ryu et al.'s RealSN training code, which the released network follows).

Recipe (defaults = the paper's network and schedule; everything not in the paper is marked):

* data: ``n_images`` dead-leaves images 128 x 128 (half DL-Diverse, half DL-Textured,
  :mod:`.deadleaves`), 5 % held out for evaluation (ours); patches 50 x 50, stride 10, scales
  (1, 0.9, 0.8, 0.7) (:mod:`.patches`; inferred from the exported 50 x 50 input);
* noise: AWGN :math:`\sigma=15/255` on [0, 1], re-drawn for every batch (Ryu et al.);
  one random flip/rotation per batch;
* loss: MSE between :math:`D(\tilde x)` and the clean patch (eq. (21));
* optimiser: Adam, learning rate 1e-3, divided by 10 at half of the run (epoch 25 of 50), batch
  128 (Ryu et al.).  With a wall-time budget (``max_minutes``) the drop comes at half the budget
  or half the steps, whichever is first.
* precision: ``"auto"`` measures fp32 against bf16 autocast (+ channels_last) for a few steps
  on CPU and keeps the faster (CPUs with AMX gain 3-4x, others little); CUDA uses bf16 autocast.
  RealSN's power iteration always runs in fp32.

Checkpoints (model, optimiser, step, elapsed time) are written atomically every
``checkpoint_every`` steps; batches are a function of (seed, step), so a resumed run continues
exactly where it stopped.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...core.errors import InputError
from .deadleaves import dead_leaves_dataset
from .dncnn import DnCNN, FoldedDnCNN
from .lipschitz import jacobian_norm
from .patches import augment, extract_patches


def tune_malloc() -> bool:
    """glibc: keep large buffers on the heap (``mallopt`` M_MMAP_THRESHOLD, M_TRIM_THRESHOLD,
    M_TOP_PAD).  Eager PyTorch otherwise maps and unmaps its multi-MB activations every step,
    which halved the CPU training throughput in our measurements.  No-op elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(-3, 1 << 30)) or bool(mallopt(-3, 32 << 20))  # M_MMAP_THRESHOLD
    mallopt(-1, 64 << 30 if ctypes.sizeof(ctypes.c_long) == 8 else 1 << 30)  # M_TRIM_THRESHOLD
    mallopt(-2, 256 << 20)  # M_TOP_PAD
    return ok


@dataclass
class TrainConfig:
    """Settings of :func:`train_denoiser` (defaults: the paper's network and schedule)."""

    depth: int = 17
    width: int = 64
    bn: bool = True
    mode: str = "residual"
    n_images: int = 1000
    image_size: int = 128
    textured_fraction: float = 0.5
    holdout: float = 0.05
    patch: int = 50
    stride: int = 10
    batch: int = 128
    epochs: float = 50.0
    max_steps: int | None = None
    max_minutes: float | None = None
    lr: float = 1e-3
    lr_final: float = 1e-4
    sigma: float = 15.0 / 255.0
    seed: int = 0
    precision: str = "auto"      # auto | fp32 | bf16
    channels_last: bool | None = None
    device: str = "auto"
    threads: int | None = None
    checkpoint_every: int = 200
    lipschitz_iters: int = 25
    data_cache: str | None = None  # .npy of the generated images (reused when it matches)
    notes: dict = field(default_factory=dict)

    def check(self) -> None:
        if self.depth < 2 or self.width < 1:
            raise InputError("depth must be >= 2 and width >= 1")
        if self.mode not in ("residual", "averaged"):
            raise InputError(f"mode must be residual or averaged, got {self.mode!r}")
        if self.mode == "averaged" and self.bn:
            raise InputError("the averaged (nonexpansive) denoiser is trained without BN (--no-bn)")
        if self.n_images < 2:
            raise InputError("need at least 2 images (one held out)")
        if self.patch > self.image_size:
            raise InputError(f"patch {self.patch} is larger than the images ({self.image_size})")
        if self.batch < 1 or self.stride < 1 or self.sigma <= 0 or self.lr <= 0:
            raise InputError("batch, stride, sigma and lr must be positive")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")


def psnr(x, ref, peak: float = 1.0) -> float:
    """PSNR in dB of ``x`` against ``ref`` (peak 1 for [0, 1] images).

    Examples
    --------
    >>> round(psnr(np.full(4, 0.1), np.zeros(4)), 6)
    20.0
    """
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(ref, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"bad device {name!r}: {exc}") from None


def _batch(patches: np.ndarray, cfg: TrainConfig, step: int, n_per_epoch: int, dev):
    """Batch ``step``: a function of (seed, step) only (exact resume)."""
    epoch, j = divmod(step, n_per_epoch)
    perm = np.random.default_rng((cfg.seed, epoch)).permutation(len(patches))
    idx = np.sort(perm[j * cfg.batch:(j + 1) * cfg.batch])
    clean = torch.from_numpy(patches[idx])[:, None]
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    clean = augment(clean, g)
    noisy = clean + cfg.sigma * torch.randn(clean.shape, generator=g)
    return clean.to(dev), noisy.to(dev)


def _train_step(net, opt, clean, noisy, bf16: bool, cl: bool, dev) -> float:
    if cl:
        clean = clean.contiguous(memory_format=torch.channels_last)
        noisy = noisy.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(noisy)
    loss = F.mse_loss(out.float(), clean)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def measure_precision(cfg: TrainConfig, patches, n_per_epoch, dev, n_steps: int = 2,
                      batch: int = 16) -> dict:
    """Seconds per training step of fp32, bf16 and bf16 + channels_last on throw-away copies
    of the network (after one warm-up step each), on ``batch`` patches (scaled to the real
    batch size linearly)."""
    out = {}
    small = TrainConfig(**{**asdict(cfg), "batch": min(batch, cfg.batch)})
    for name, bf16, cl in (("fp32", False, False), ("bf16", True, False),
                           ("bf16_channels_last", True, True)):
        torch.manual_seed(0)
        net = DnCNN(cfg.depth, cfg.width, bn=cfg.bn, mode=cfg.mode).to(dev).train()
        if cl:
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        clean, noisy = _batch(patches, small, 0, n_per_epoch, dev)
        _train_step(net, opt, clean, noisy, bf16, cl, dev)
        t = time.perf_counter()
        for _ in range(n_steps):
            _train_step(net, opt, clean, noisy, bf16, cl, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out[name] = (time.perf_counter() - t) / n_steps * cfg.batch / small.batch
    return out


def evaluate(denoiser, images_u8, sigma: float, seed: int = 12345) -> dict:
    """PSNR in/out of ``denoiser`` on [0, 1] images with AWGN ``sigma`` (fixed noise seed)."""
    g = np.random.default_rng(seed)
    pin, pout = [], []
    for img in images_u8:
        clean = np.asarray(img, np.float32) / 255.0 if np.asarray(img).dtype == np.uint8 \
            else np.asarray(img, np.float32)
        noisy = clean + sigma * g.standard_normal(clean.shape).astype(np.float32)
        with torch.no_grad():
            den = denoiser(torch.from_numpy(noisy)).numpy()
        pin.append(psnr(noisy, clean))
        pout.append(psnr(den, clean))
    return {"psnr_in": float(np.mean(pin)), "psnr_out": float(np.mean(pout)), "n": len(pin)}


def lipschitz_report(denoiser, images_u8, sigma: float, n_iter: int = 25, size: int = 64) -> dict:
    """Local Lipschitz constants (Jacobian power iteration) of ``denoiser`` on a flat image,
    clean and noisy held-out images and uniform noise (``size`` x ``size`` crops)."""
    g = np.random.default_rng(7)
    pts = {"flat": np.full((size, size), 0.5, np.float32)}
    for i, img in enumerate(images_u8[:2]):
        c = np.asarray(img, np.float32)[:size, :size] / 255.0
        pts[f"clean_{i}"] = c
        pts[f"noisy_{i}"] = c + sigma * g.standard_normal(c.shape).astype(np.float32)
    pts["uniform"] = g.random((size, size)).astype(np.float32)
    vals = {k: jacobian_norm(denoiser, torch.from_numpy(v), n_iter=n_iter) for k, v in pts.items()}
    return {"max": max(vals.values()), "per_input": vals, "iterations": n_iter, "size": size}


def camera_image():
    """``skimage.data.camera()`` (512 x 512 uint8) or None without scikit-image."""
    try:
        from skimage import data
    except ImportError:  # pragma: no cover
        return None
    return data.camera()


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_denoiser(cfg: TrainConfig, out: str | os.PathLike, *, checkpoint=None, resume: bool = False,
                   progress: bool = True, log=None) -> dict:
    """Train, export (``out``: ``.npz`` folded weights) and write the report (``out`` with
    ``.json``).  Returns the report.

    Parameters
    ----------
    cfg : TrainConfig
    out : path
        Weight file to write (``.npz``); the report goes next to it as ``.json``.
    checkpoint : path, optional
        Checkpoint file (written every ``cfg.checkpoint_every`` steps).
    resume : bool
        Continue from ``checkpoint`` if it exists.
    progress : bool
        tqdm progress bar.
    log : callable, optional
        ``log(str)`` for status lines.

    Examples
    --------
    >>> cfg = TrainConfig(depth=3, width=4, n_images=4, image_size=64, max_steps=2, batch=4,
    ...                   precision="fp32", lipschitz_iters=2)
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> rep = train_denoiser(cfg, os.path.join(d, "w.npz"), progress=False)
    >>> rep["steps"]
    2
    """
    cfg.check()
    log = log or (lambda s: None)
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    dev = _device(cfg.device)
    if dev.type == "cpu":
        tune_malloc()
    t0 = time.perf_counter()
    images = None
    cache = Path(cfg.data_cache) if cfg.data_cache else None
    if cache is not None and cache.exists():
        images = np.load(cache, allow_pickle=False)
        if images.shape != (cfg.n_images, cfg.image_size, cfg.image_size):
            images = None
    if images is None:
        images = dead_leaves_dataset(cfg.n_images, cfg.image_size, seed=cfg.seed,
                                     textured_fraction=cfg.textured_fraction, progress=progress)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, images)
    t_data = time.perf_counter() - t0
    n_hold = max(1, int(round(cfg.holdout * cfg.n_images)))
    # hold out the same share of plain and textured images (the last of each kind)
    n_tex = int(round(cfg.n_images * cfg.textured_fraction))
    n_plain = cfg.n_images - n_tex
    h_tex = int(round(n_hold * cfg.textured_fraction)) if n_tex else 0
    h_plain = n_hold - h_tex
    hold_idx = list(range(n_plain - h_plain, n_plain)) + list(range(cfg.n_images - h_tex, cfg.n_images))
    train_idx = [i for i in range(cfg.n_images) if i not in set(hold_idx)]
    held = images[hold_idx]
    patches = extract_patches(images[train_idx], cfg.patch, cfg.stride)
    n_per_epoch = max(1, len(patches) // cfg.batch)
    total = int(cfg.max_steps) if cfg.max_steps else int(math.ceil(cfg.epochs * n_per_epoch))
    log(f"{len(images)} images in {t_data:.1f} s, {len(patches)} patches, {n_per_epoch} steps "
        f"per epoch, {total} steps planned")

    timing = {}
    if dev.type == "cuda":
        bf16, cl = cfg.precision != "fp32", bool(cfg.channels_last)
    elif cfg.precision == "auto":
        timing = measure_precision(cfg, patches, n_per_epoch, dev)
        best = min(timing, key=timing.get)
        bf16, cl = best != "fp32", best == "bf16_channels_last"
        if cfg.channels_last is not None:
            cl = bool(cfg.channels_last) and bf16
        log("seconds per step: " + ", ".join(f"{k} {v:.3f}" for k, v in timing.items()))
    else:
        bf16 = cfg.precision == "bf16"
        cl = bool(cfg.channels_last) if cfg.channels_last is not None else bf16

    torch.manual_seed(cfg.seed)
    net = DnCNN(cfg.depth, cfg.width, bn=cfg.bn, mode=cfg.mode).to(dev).train()
    if cl:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, elapsed, dropped = 0, 0.0, False
    ck = Path(checkpoint) if checkpoint else None
    if ck is not None:
        ck.parent.mkdir(parents=True, exist_ok=True)
    if resume and ck is not None and ck.exists():
        state = torch.load(ck, map_location=dev, weights_only=False)
        if state.get("arch") != [cfg.depth, cfg.width, cfg.bn, cfg.mode]:
            raise InputError(f"checkpoint {ck} is for a different network {state.get('arch')}")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed, dropped = int(state["step"]), float(state["elapsed"]), bool(state["dropped"])
        log(f"resumed from {ck} at step {step}")

    def set_lr(v):
        for gr in opt.param_groups:
            gr["lr"] = v

    if dropped:
        set_lr(cfg.lr_final)
    budget = cfg.max_minutes * 60.0 if cfg.max_minutes else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc="train-denoiser", unit="step")
    t_start = time.perf_counter() - elapsed
    losses = []
    while step < total:
        elapsed = time.perf_counter() - t_start
        if budget is not None and elapsed >= budget:
            log(f"time budget reached after {step} steps")
            break
        if not dropped and (step >= total // 2 or (budget is not None and elapsed >= budget / 2)):
            set_lr(cfg.lr_final)
            dropped = True
        clean, noisy = _batch(patches, cfg, step, n_per_epoch, dev)
        losses.append(_train_step(net, opt, clean, noisy, bf16, cl, dev))
        step += 1
        if bar is not None:
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2e}", lr=opt.param_groups[0]["lr"])
        if ck is not None and step % cfg.checkpoint_every == 0:
            _save_checkpoint(ck, {"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                                  "elapsed": time.perf_counter() - t_start, "dropped": dropped,
                                  "arch": [cfg.depth, cfg.width, cfg.bn, cfg.mode]})
    if bar is not None:
        bar.close()
    train_s = time.perf_counter() - t_start
    if ck is not None:
        _save_checkpoint(ck, {"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                              "elapsed": train_s, "dropped": dropped,
                              "arch": [cfg.depth, cfg.width, cfg.bn, cfg.mode]})

    net = net.to(memory_format=torch.contiguous_format).eval().cpu()
    for m in net.convs():  # settle RealSN's estimate before export (ours; u has converged)
        if m.normalize:
            m.power_iteration(10)
    folded = net.fold().eval()
    report = {
        "network": {"depth": cfg.depth, "width": cfg.width, "bn": cfg.bn, "mode": cfg.mode,
                    "realsn": True,
                    "parameters": int(sum(p.numel() for p in net.parameters()))},
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("notes", "data_cache")},
        "steps": step, "epochs": step / n_per_epoch, "steps_per_epoch": n_per_epoch,
        "patches": len(patches), "train_seconds": train_s, "data_seconds": t_data,
        "seconds_per_step": train_s / max(step, 1),
        "precision": "bf16" if bf16 else "fp32", "channels_last": cl, "device": str(dev),
        "precision_timing_s_per_step": timing, "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        **cfg.notes,
    }
    report["heldout_deadleaves"] = evaluate(folded, held, cfg.sigma)
    cam = camera_image()
    if cam is not None:
        report["camera"] = evaluate(folded, [cam], cfg.sigma)
    # conv operator norms of the trained net (RealSN targets)
    from .realsn import conv_operator_norm
    report["conv_norms"] = [conv_operator_norm(m.weight / m.sigma * m.target, n_iter=50)
                            for m in net.convs()]
    report["lipschitz"] = lipschitz_report(folded, held, cfg.sigma, n_iter=cfg.lipschitz_iters)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    folded.save(tmp, steps=step, sigma=cfg.sigma,
                psnr_heldout=report["heldout_deadleaves"]["psnr_out"],
                lipschitz_max=report["lipschitz"]["max"])
    os.replace(tmp, out)
    rep_path = out.with_suffix(".json")
    tmpj = rep_path.with_name(rep_path.name + ".tmp")
    tmpj.write_text(json.dumps(report, indent=2, default=float))
    os.replace(tmpj, rep_path)
    return report


__all__ = [
    "FoldedDnCNN",
    "TrainConfig",
    "evaluate",
    "lipschitz_report",
    "measure_precision",
    "psnr",
    "train_denoiser",
    "tune_malloc",
]
