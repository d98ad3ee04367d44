r"""Mixed-state (partially coherent) probes: K mutually incoherent probe modes.

The measured intensity is the incoherent sum over modes (Thibault & Menzel, Nature 494, 68
(2013), eq. (2)),

.. math:: I_n=\sum_k|\mathcal D[\mathbf P_k\odot\mathcal S_{\mathbf r_n}\mathbf O]|^2 ,

so the modulus projection scales every mode's detector wave by the same factor
:math:`\sqrt{I_n}/\sqrt{\sum_k|\Psi_k|^2}` and the PIE updates sum over modes (PtyLab's ePIE with
modes, Loetgering et al., Opt. Express 31, 13763 (2023)):
:math:`\Delta\mathbf O=\sum_k\bar{\mathbf P}_k\mathbf R_k/\max\sum_k|\mathbf P_k|^2`,
:math:`\Delta\mathbf P_k=\bar{\mathbf O}_n\mathbf R_k/\max|\mathbf O_n|^2`.

The mixed state is defined only up to a unitary mixing of the modes (the density matrix
:math:`\sum_k|\mathbf P_k\rangle\langle\mathbf P_k|` is what the data see), so after each sweep
:func:`orthogonalize` replaces the modes by the orthogonal ones that span the same state (the
eigenvectors of the K x K Gram matrix, i.e. an SVD of the mode stack), ordered by power; this
leaves :math:`\sum_k|\mathbf P_k|^2` unchanged (tested).

Examples
--------
>>> import numpy as np
>>> from phasekit.ptycho.modes import initial_modes
>>> m = initial_modes(np.ones((8, 8), complex), 3)
>>> m.shape, bool(np.isclose((np.abs(m) ** 2).sum(), 64.0))
((3, 8, 8), True)
"""
from __future__ import annotations

import numpy as np
import torch

#: power of each extra starting mode relative to the dominant one (PtyLab starts extra modes
#: as small perturbed copies; our value)
EXTRA_MODE_POWER = 0.05


def initial_modes(probe: np.ndarray, n_modes: int, *, seed: int = 0,
                  power: float = EXTRA_MODE_POWER) -> np.ndarray:
    """K starting modes from one probe: mode 0 is ``probe``; mode k >= 1 is the probe times a
    smooth random complex field (a perturbed copy), made orthogonal to the earlier modes
    (Gram-Schmidt) and scaled to ``power`` of mode 0's power; the stack is then rescaled so that
    the total power equals ``||probe||^2`` (the energy match of the data is kept).

    Deterministic (``seed``), so a run draws nothing from the driver's generator.
    """
    p = np.asarray(probe, np.complex128)
    n_modes = int(n_modes)
    if n_modes == 1:
        return p[None].copy()
    g = np.random.default_rng(seed)
    my, mx = p.shape
    e0 = float(np.vdot(p, p).real)
    out = [p]
    ky = np.fft.fftfreq(my)[:, None]
    kx = np.fft.fftfreq(mx)[None, :]
    low = np.exp(-(ky ** 2 + kx ** 2) / (2 * 0.08 ** 2))  # smooth field: ~ 1/8 of the band
    for _ in range(1, n_modes):
        w = np.fft.ifft2(np.fft.fft2(g.standard_normal((my, mx)) + 1j * g.standard_normal((my, mx)))
                         * low)
        q = p * w
        if not np.any(q):
            q = g.standard_normal((my, mx)) + 1j * g.standard_normal((my, mx))
        for m in out:
            em = np.vdot(m, m).real
            if em > 0:
                q = q - m * (np.vdot(m, q) / em)
        eq = np.vdot(q, q).real
        out.append(q * np.sqrt(power * e0 / eq) if eq > 0 else q)
    m = np.stack(out)
    tot = float((np.abs(m) ** 2).sum())
    return m * np.sqrt(e0 / tot) if tot > 0 else m


@torch.no_grad()
def orthogonalize(modes: torch.Tensor) -> torch.Tensor:
    """Orthogonal modes spanning the same mixed state, strongest first, in place.

    With the stack :math:`A` (K x pixels), the Gram matrix :math:`G=AA^H=V\\Lambda V^H`; the new
    modes :math:`V^HA` are orthogonal with powers :math:`\\Lambda` (sorted descending) and
    :math:`\\sum_k|\\mathbf P_k|^2` is unchanged.  The arbitrary phase of each eigenvector is fixed
    so that its largest component is real and positive (deterministic across runs).  Computed in
    float64.
    """
    k = modes.shape[0]
    if k < 2:
        return modes
    a = modes.reshape(k, -1).to(torch.complex128)
    gram = a @ a.conj().T
    w, v = torch.linalg.eigh(gram)
    order = torch.argsort(w, descending=True)
    v = v[:, order]
    idx = torch.argmax(v.abs(), dim=0)
    ph = v[idx, torch.arange(k)]
    v = v * (ph.conj() / ph.abs().clamp_min(1e-300))[None, :]
    new = v.conj().T @ a
    modes.copy_(new.reshape(modes.shape).to(modes.dtype))
    return modes


def mode_powers(modes) -> np.ndarray:
    """Relative power of each mode, ``||P_k||^2 / sum_j ||P_j||^2`` (sums to 1)."""
    m = np.asarray(modes)
    if m.ndim == 2:
        return np.ones(1)
    p = (np.abs(m) ** 2).reshape(m.shape[0], -1).sum(1)
    return p / max(p.sum(), 1e-300)
