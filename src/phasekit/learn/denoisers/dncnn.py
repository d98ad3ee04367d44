r"""DnCNN denoisers for PINE: the trainable network and its exported (folded) inference form.

PINE (Yamada et al., J. Appl. Cryst. 57 (2024), sec. 2.4, eq. (21)) uses a residual DnCNN
(Zhang et al. 2017): the network :math:`\mathcal N` estimates the noise and the denoiser is
:math:`D=\mathrm{Id}-\mathcal N`, with RealSN (:mod:`.realsn`) on every convolution.  The
released network is Ryu et al.'s ``DnCNN(num_of_layers=17)`` with 64 channels: Conv-ReLU,
15 x [Conv-BN-ReLU], Conv, 3 x 3 bias-free convolutions, batch normalisation folded into the
convolutions at export.  Depth, width and BN are parameters here.

Two forms (``mode``):

* ``"residual"`` (the paper): :math:`D(x)=x-\mathcal N(x)`.  With RealSN, :math:`\mathcal N` is
  1-Lipschitz *only without BN*, and then :math:`D` is merely 2-Lipschitz in general; with BN
  between the convolutions (the faithful layout) nothing is bounded: the paper's released net
  measures 2.2-6.1 (local Lipschitz constants of its Jacobian).
* ``"averaged"``: :math:`D(x)=\tfrac12\bigl(x+\mathcal N(x)\bigr)` with :math:`\mathcal N` the
  BN-free RealSN stack (1-Lipschitz): an averaged operator, nonexpansive by construction, which
  is what the hybrid-steepest-descent argument of PINE (sec. 2.2, eq. (12)) assumes.  Our
  resolution of "the averaged variant": averaging the *residual* denoiser,
  :math:`\tfrac12(x+D(x))=x-\tfrac12\mathcal N(x)`, would only be bounded by 1.5, so the
  average is taken with the 1-Lipschitz network itself.

Training uses :class:`DnCNN`; :meth:`DnCNN.fold` turns it into :class:`FoldedDnCNN` (effective
weights ``W / sigma``, BN folded into weights and biases), the form shipped and loaded by
:mod:`.pretrained` (``.npz``, no pickle).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import FileFormatError, InputError
from .realsn import RealSNConv2d

MODES = ("residual", "averaged")


def _as_batch(x):
    """(H, W) or (C, H, W) -> (B, C, H, W) and a function undoing it."""
    if x.ndim == 2:
        return x[None, None], lambda y: y[0, 0]
    if x.ndim == 3:
        return x[None], lambda y: y[0]
    if x.ndim == 4:
        return x, lambda y: y
    raise InputError(f"denoiser input must be 2-D, 3-D or 4-D, got shape {tuple(x.shape)}")


class DnCNN(nn.Module):
    """Trainable DnCNN with RealSN.

    Parameters
    ----------
    depth : int
        Number of convolutions (17 in the paper's network).
    width : int
        Channels of the hidden layers (64 in the paper).
    bn : bool
        Batch normalisation after the hidden convolutions (the faithful layout).  BN breaks the
        Lipschitz bound; ``bn=False`` keeps :math:`\\mathcal N` 1-Lipschitz.
    mode : {"residual", "averaged"}
        See the module docstring; ``"averaged"`` requires ``bn=False`` and starts near the
        identity (:meth:`_identity_init`).
    realsn : bool
        Spectral normalisation of every convolution (target ``lip ** (1 / depth)``).
    lip : float
        Lipschitz target of the whole stack.
    channels : int
        Image channels (1: grey).

    Examples
    --------
    >>> net = DnCNN(depth=4, width=8, bn=False).eval()
    >>> net(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(self, depth: int = 17, width: int = 64, *, bn: bool = True,
                 mode: str = "residual", realsn: bool = True, lip: float = 1.0,
                 channels: int = 1):
        super().__init__()
        if depth < 2:
            raise InputError(f"DnCNN depth must be >= 2, got {depth}")
        if width < 1:
            raise InputError(f"DnCNN width must be >= 1, got {width}")
        if mode not in MODES:
            raise InputError(f"DnCNN mode must be one of {MODES}, got {mode!r}")
        if mode == "averaged" and bn:
            raise InputError("the averaged (nonexpansive) DnCNN has no batch normalisation: "
                             "use bn=False")
        self.depth, self.width, self.bn, self.mode = int(depth), int(width), bool(bn), mode
        self.channels, self.lip, self.realsn = int(channels), float(lip), bool(realsn)
        t = self.lip ** (1.0 / self.depth)
        layers: list[nn.Module] = [RealSNConv2d(channels, width, target=t, normalize=realsn),
                                   nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(RealSNConv2d(width, width, target=t, normalize=realsn, bias=not bn))
            if bn:
                b = nn.BatchNorm2d(width)
                with torch.no_grad():  # Ryu et al.'s init: N(0, 2/(9*64)) clamped to +-0.025
                    b.weight.normal_(0, (2.0 / 9.0 / 64.0) ** 0.5).clamp_(-0.025, 0.025)
                    b.bias.zero_()
                layers.append(b)
            layers.append(nn.ReLU(inplace=True))
        layers.append(RealSNConv2d(width, channels, target=t, normalize=realsn))
        self.body = nn.Sequential(*layers)
        if mode == "averaged":
            self._identity_init()

    @torch.no_grad()
    def _identity_init(self, scale: float = 0.02) -> None:
        r"""Averaged mode starts near :math:`D=\mathrm{Id}`: small random weights plus a
        centred delta on channel 0 of every layer, so that :math:`\mathcal N(x)\approx x` for
        non-negative images (ours; from a random 1-Lipschitz :math:`\mathcal N` the averaged
        denoiser starts far below the identity's PSNR, and the no-BN stack learns slowly)."""
        for m in self.convs():
            m.weight.mul_(scale)
            c = m.kernel // 2
            m.weight[0, 0, c, c] += 1.0

    def network(self, x):
        """The raw network :math:`\\mathcal N(x)` (noise estimate in residual mode)."""
        return self.body(x)

    def forward(self, x):
        xb, undo = _as_batch(x)
        n = self.body(xb)
        out = xb - n if self.mode == "residual" else 0.5 * (xb + n)
        return undo(out)

    def convs(self):
        return [m for m in self.body if isinstance(m, RealSNConv2d)]

    @torch.no_grad()
    def fold(self) -> FoldedDnCNN:
        """The inference network: effective weights, BN folded into weight and bias.

        Examples
        --------
        >>> net = DnCNN(depth=3, width=4).eval()
        >>> x = torch.rand(1, 1, 12, 12)
        >>> bool(torch.allclose(net(x), net.fold()(x), atol=1e-5))
        True
        """
        ws, bs = [], []
        mods = list(self.body)
        i = 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, RealSNConv2d):
                w = (m.weight / m.sigma * m.target if m.normalize else m.weight).detach().float()
                b = m.bias.detach().float() if m.bias is not None else torch.zeros(w.shape[0])
                if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                    bn = mods[i + 1]
                    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    w = w * s[:, None, None, None]
                    b = (b - bn.running_mean) * s + bn.bias
                ws.append(w.clone())
                bs.append(b.detach().clone())
            i += 1
        return FoldedDnCNN(ws, bs, mode=self.mode,
                           meta={"depth": self.depth, "width": self.width, "bn": self.bn,
                                 "mode": self.mode, "realsn": self.realsn})


class FoldedDnCNN(nn.Module):
    """DnCNN inference form: ``depth`` convolutions with biases, ReLU between them, and the
    residual or averaged output.  Accepts ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` tensors.

    Examples
    --------
    >>> w = [torch.zeros(2, 1, 3, 3), torch.zeros(1, 2, 3, 3)]
    >>> b = [torch.zeros(2), torch.zeros(1)]
    >>> x = torch.rand(8, 8)
    >>> bool(torch.equal(FoldedDnCNN(w, b)(x), x))
    True
    """

    def __init__(self, weights, biases, *, mode: str = "residual", meta: dict | None = None):
        super().__init__()
        if mode not in MODES:
            raise InputError(f"DnCNN mode must be one of {MODES}, got {mode!r}")
        if len(weights) != len(biases) or not weights:
            raise InputError("FoldedDnCNN needs as many biases as weights (at least one)")
        self.mode = mode
        self.meta = dict(meta or {})
        for i, (w, b) in enumerate(zip(weights, biases)):
            self.register_buffer(f"w{i}", torch.as_tensor(w, dtype=torch.float32).contiguous())
            self.register_buffer(f"b{i}", torch.as_tensor(b, dtype=torch.float32).contiguous())
        self.n_layers = len(weights)

    def layers(self):
        return [(getattr(self, f"w{i}"), getattr(self, f"b{i}")) for i in range(self.n_layers)]

    #: run the convolutions in the channels-last layout on the CPU: a 512^2 two-part (complex)
    #: object through the shipped 8x32 network took 845 instead of 1299 ms on one Intel Xeon core,
    #: the same float32 values within 1.2e-7 (oneDNN's blocked kernels instead of reorders per
    #: layer); ``False`` keeps the plain NCHW layout
    channels_last: bool = True

    def network(self, x):
        h = x
        cl = self.channels_last and h.device.type == "cpu" and h.ndim == 4
        fmt = torch.channels_last if cl else torch.contiguous_format
        if cl:
            h = h.contiguous(memory_format=fmt)
        for i, (w, b) in enumerate(self.layers()):
            w = w.to(h.dtype).contiguous(memory_format=fmt) if cl else w.to(h.dtype)
            h = F.conv2d(h, w, b.to(h.dtype), padding=w.shape[-1] // 2)
            if i < self.n_layers - 1:
                h = F.relu(h)
        return h.contiguous() if cl else h

    def forward(self, x):
        xb, undo = _as_batch(x)
        n = self.network(xb)
        out = xb - n if self.mode == "residual" else 0.5 * (xb + n)
        return undo(out)

    # ------------------------------------------------------------------ files
    def save(self, path, **meta) -> Path:
        """Write the weights to an ``.npz`` (float32 arrays ``w<i>``, ``b<i>``, and a JSON
        ``meta`` string); no pickle."""
        path = Path(path)
        info = {**self.meta, **meta, "mode": self.mode, "n_layers": self.n_layers}
        arrays = {}
        for i, (w, b) in enumerate(self.layers()):
            arrays[f"w{i}"] = w.cpu().numpy().astype(np.float32)
            arrays[f"b{i}"] = b.cpu().numpy().astype(np.float32)
        arrays["meta"] = np.array(json.dumps(info))
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path) -> FoldedDnCNN:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                n = int(meta["n_layers"])
                ws = [z[f"w{i}"] for i in range(n)]
                bs = [z[f"b{i}"] for i in range(n)]
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - any malformed archive
            raise FileFormatError(f"{path}: not a phasekit DnCNN weight file "
                                  f"({type(exc).__name__}: {exc})") from None
        for i, (w, b) in enumerate(zip(ws, bs)):
            if w.ndim != 4 or b.shape != (w.shape[0],):
                raise FileFormatError(f"{path}: layer {i} has weight {w.shape} and bias {b.shape}")
            if i and w.shape[1] != ws[i - 1].shape[0]:
                raise FileFormatError(f"{path}: layer {i} takes {w.shape[1]} channels, "
                                      f"layer {i - 1} gives {ws[i - 1].shape[0]}")
        return cls(ws, bs, mode=meta.get("mode", "residual"), meta=meta)
