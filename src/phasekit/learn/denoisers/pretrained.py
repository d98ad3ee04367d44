"""Shipped PINE denoiser weights (package data, loaded without network access).

* ``"default"``: the faithful layout (RealSN on every convolution, BN folded), residual form
  :math:`D=\\mathrm{Id}-\\mathcal N`, reduced in size (the paper's 17 x 64 net cannot be trained
  on the CPUs this package was built on; ``phasekit train-denoiser`` trains it unchanged on a GPU).
* ``"nonexpansive"``: no BN, RealSN, averaged form :math:`D=(\\mathrm{Id}+\\mathcal N)/2`
  (Lipschitz <= 1 by construction).

Each file ``weights/dncnn_<name>.npz`` has a companion ``.json`` with its training settings,
PSNR on held-out dead leaves and on ``skimage.data.camera()``, and its measured Lipschitz
constant (docs/pine.md).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ...core.errors import InputError
from .complex import ComplexDenoiser
from .dncnn import FoldedDnCNN

NAMES = ("default", "nonexpansive")


def _weights_dir():
    return resources.files(__package__) / "weights"


def weights_path(name: str) -> Path:
    """Path of the shipped weight file ``name`` (``default`` or ``nonexpansive``)."""
    if name not in NAMES:
        raise InputError(f"unknown denoiser weights {name!r}; choose from {', '.join(NAMES)} "
                         "or give a .npz file")
    p = Path(str(_weights_dir() / f"dncnn_{name}.npz"))
    if not p.exists():
        raise InputError(f"shipped denoiser weights {name!r} are missing from this installation "
                         f"({p})")
    return p


def weights_info(name: str) -> dict:
    """The training report shipped with the weights ``name`` (empty dict if absent)."""
    p = weights_path(name).with_suffix(".json")
    return json.loads(p.read_text()) if p.exists() else {}


def load_denoiser(name_or_path: str = "default") -> FoldedDnCNN:
    """The real-image denoiser ``name`` (shipped) or a weight file written by
    ``phasekit train-denoiser``, in eval mode.

    Examples
    --------
    >>> import torch
    >>> net = load_denoiser("default")
    >>> net(torch.rand(32, 32)).shape
    torch.Size([32, 32])
    """
    s = str(name_or_path)
    path = weights_path(s) if s in NAMES else Path(s)
    if not path.exists():
        raise InputError(f"denoiser {s!r}: no such shipped name ({', '.join(NAMES)}) or file")
    return FoldedDnCNN.load(path).eval()


def load_complex_denoiser(name_or_path: str = "default", rescale: str = "minmax") -> ComplexDenoiser:
    """:func:`load_denoiser` wrapped for complex objects (PINE eq. (22)), min-max rescaling by
    default (the official code).

    Examples
    --------
    >>> import torch
    >>> d = load_complex_denoiser("nonexpansive")
    >>> d(torch.ones(16, 16, dtype=torch.complex64)).dtype
    torch.complex64
    """
    return ComplexDenoiser(load_denoiser(name_or_path), rescale=rescale)
