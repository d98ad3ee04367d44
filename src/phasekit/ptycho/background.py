r"""An additive detector background, given or estimated jointly with object and probe.

**Model**: :math:`I_n=\sum_k|\Psi_{n,k}|^2+\mathbf B` with :math:`\mathbf B\ge0` the same for every
frame (dark current, air scatter, a readout pedestal); :math:`\mathbf B` is a per-pixel image.

**Projection.** The background is treated as one more incoherent "mode" whose intensity is
:math:`\mathbf B`: the modulus projection scales every probe mode's detector wave by
:math:`f_n=\sqrt{I_n/(\sum_k|\Psi_{n,k}|^2+\mathbf B)}` (with :math:`\mathbf B=0` this is the usual
projection), which would scale the background to :math:`\mathbf Bf_n^2`.

**Update** (once per sweep, from the pre-update model of each position):

.. math:: \mathbf B\leftarrow\mathbf B\odot\frac1N\sum_n\frac{I_n}{\sum_k|\Psi_{n,k}|^2+\mathbf B},

the mean of the projected background over the frames.  This is also the EM (Richardson-Lucy)
update of an additive component under Poisson noise (Shepp & Vardi, IEEE Trans. Med. Imaging 1,
113 (1982), applied to one additive component), so it keeps :math:`\mathbf B\ge0` and its fixed
points satisfy the Poisson likelihood equation for :math:`\mathbf B` (our derivation).  Pixels
that no frame measures keep their value.

**Start** (our choice): a uniform :data:`START_FRACTION` of the mean measured intensity: the
EM update grows from below in one sweep where the probe puts no light (``I/B`` large) and
only slowly where the probe explains the signal.

**Likelihood.** The modulus projection that all PIE engines share is the proximal step of the
Gaussian *amplitude* likelihood :math:`\sum(\sqrt{I}-\sqrt{\sum|\Psi|^2+B})^2` (the
variance-stabilised form of Poisson noise; Godard et al., Opt. Express 20, 25914 (2012)); the
background update is the Poisson one.  A Poisson-likelihood exit-wave step is not implemented.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import InputError

#: the starting background as a fraction of the mean measured intensity
START_FRACTION = 1e-3


def start_background(I: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Uniform start ``START_FRACTION * mean(I[measured])`` (frame shape), positive."""
    v = float(np.mean(I[measured])) if np.any(measured) else 1.0
    return np.full(I.shape[-2:], max(START_FRACTION * v, 1e-12))


def check_background(b, frame_shape) -> np.ndarray:
    """A given background: finite, non-negative, of the frame shape (float64)."""
    a = np.asarray(b)
    if a.shape != tuple(frame_shape):
        raise InputError(f"background shape {a.shape} != frame shape {tuple(frame_shape)}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputError(f"background must be real numbers, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise InputError("background must be finite and >= 0")
    return a.astype(np.float64)
