"""Training patches for the PINE denoiser (DnCNN recipe of Zhang et al. 2017 as used by the
RealSN training code of Ryu et al. 2019, which PINE's released network follows).

Each image is resized by the scales ``(1, 0.9, 0.8, 0.7)`` (bicubic) and cut into ``patch x
patch`` windows with ``stride`` pixels between them; 128^2 images, patch 50 and stride 10 give
64 + 49 + 36 + 16 = 165 patches per image.  Random flips/rotations are applied per batch at
training time (:func:`augment`), and the noise is re-drawn for every batch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def extract_patches(images, patch: int = 50, stride: int = 10,
                    scales=(1.0, 0.9, 0.8, 0.7)) -> np.ndarray:
    """Patches ``(n, patch, patch)`` float32 in [0, 1] from uint8 (or [0, 255]) images.

    Examples
    --------
    >>> imgs = np.zeros((2, 128, 128), np.uint8)
    >>> extract_patches(imgs).shape
    (330, 50, 50)
    """
    x = torch.as_tensor(np.asarray(images, np.float32) / 255.0)[:, None]
    out = []
    h, w = x.shape[-2:]
    for s in scales:
        hs, ws = int(h * s), int(w * s)
        xs = x if (hs, ws) == (h, w) else F.interpolate(x, size=(hs, ws), mode="bicubic",
                                                         align_corners=False).clamp_(0, 1)
        if hs < patch or ws < patch:
            continue
        p = xs.unfold(2, patch, stride).unfold(3, patch, stride)  # (n, 1, ny, nx, p, p)
        out.append(p.reshape(-1, patch, patch))
    return torch.cat(out).numpy()


def augment(batch: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """One random rotation by a multiple of 90 degrees and an optional flip, per batch (all
    eight symmetries of the square with equal probability).

    Examples
    --------
    >>> augment(torch.zeros(4, 1, 8, 8)).shape
    torch.Size([4, 1, 8, 8])
    """
    k = int(torch.randint(0, 8, (1,), generator=g))
    out = torch.rot90(batch, k % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if k >= 4 else out
