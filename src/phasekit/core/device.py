"""Device and dtype policy.

* Computation runs in PyTorch; NumPy arrays are accepted and returned at the public boundary.
* ``device=None`` or ``"cpu"`` means the CPU (the default).  ``"cuda"`` (or ``"cuda:N"``) is used
  only when asked for, and asking for it on a machine without CUDA is an :class:`InputError`.
* Default precision is single: complex64 / float32.  ``precision="double"`` gives
  complex128 / float64.  Results follow the precision of the computation.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import InputError

_PRECISIONS = {
    "single": (torch.float32, torch.complex64),
    "double": (torch.float64, torch.complex128),
}


def resolve_device(device=None) -> torch.device:
    """Return a :class:`torch.device`; CPU unless CUDA is explicitly requested and present."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(str(device))
        except RuntimeError as exc:  # e.g. "gpu"
            raise InputError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


def real_dtype(precision: str = "single") -> torch.dtype:
    """float32 for ``"single"``, float64 for ``"double"``."""
    try:
        return _PRECISIONS[precision][0]
    except KeyError:
        raise InputError(f"precision must be 'single' or 'double', got {precision!r}") from None


def complex_dtype(precision: str = "single") -> torch.dtype:
    """complex64 for ``"single"``, complex128 for ``"double"``."""
    try:
        return _PRECISIONS[precision][1]
    except KeyError:
        raise InputError(f"precision must be 'single' or 'double', got {precision!r}") from None


def as_tensor(x, *, device=None, dtype=None) -> torch.Tensor:
    """Convert an array-like to a tensor on ``device`` (copying only when needed)."""
    dev = resolve_device(device)
    if isinstance(x, torch.Tensor):
        return x.to(device=dev, dtype=dtype if dtype is not None else x.dtype)
    arr = np.asarray(x)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.to(device=dev, dtype=dtype if dtype is not None else t.dtype)


def to_numpy(x) -> np.ndarray:
    """Return a NumPy copy of a tensor (detached, on the CPU); arrays pass through."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().copy()
    return np.asarray(x)
