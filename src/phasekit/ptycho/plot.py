"""Figure of a ptychography result: amplitude, phase, probe, R_F curve and FRC (matplotlib)."""
from __future__ import annotations

import io

import numpy as np


def _complex_rgb(z: np.ndarray) -> np.ndarray:
    """Phase as hue, amplitude as value."""
    from matplotlib.colors import hsv_to_rgb

    a = np.abs(z)
    h = (np.angle(z) + np.pi) / (2 * np.pi)
    v = a / (a.max() or 1.0)
    return hsv_to_rgb(np.stack([h, np.ones_like(h), v], axis=-1))


def plot_ptycho_result(result, path, *, frc=None, truth=None):
    """Write a PNG: object amplitude and phase (illuminated region), probe (phase hue; the
    dominant mode of a mixed-state probe), R_F versus iteration, and the FRC against the ground
    truth when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_save_bytes

    obj = np.asarray(result.image)
    ill = (result.extras or {}).get("illumination")
    m = np.asarray(ill, bool) if ill is not None else np.ones(obj.shape, bool)
    ncol = 5 if frc is not None else 4
    fig, ax = plt.subplots(1, ncol, figsize=(3.2 * ncol, 3.2))
    amp = np.abs(obj)
    ph = np.angle(obj * np.exp(-1j * np.angle(np.sum(obj[m]))))
    lo, hi = np.percentile(amp[m], [1, 99]) if m.any() else (amp.min(), amp.max())
    ax[0].imshow(np.where(m, amp, np.nan), cmap="gray", vmin=lo, vmax=hi)
    ax[0].set_title("object amplitude")
    lo, hi = np.percentile(ph[m], [1, 99]) if m.any() else (-np.pi, np.pi)
    ax[1].imshow(np.where(m, ph, np.nan), cmap="twilight", vmin=lo, vmax=hi)
    ax[1].set_title("object phase (rad)")
    probe_title = "probe (hue = phase)"
    if result.probe is not None:
        probe = np.asarray(result.probe)
        if probe.ndim == 3:  # a mixed-state probe (K, My, Mx): the dominant mode (sorted by power)
            power = np.sum(np.abs(probe) ** 2, axis=(1, 2))
            probe_title = (f"probe mode 1 of {probe.shape[0]}, "
                           f"{100 * power[0] / (power.sum() or 1.0):.0f} % (hue = phase)")
            probe = probe[0]
        ax[2].imshow(_complex_rgb(probe))
    ax[2].set_title(probe_title)
    for a in ax[:3]:
        a.set_xticks([])
        a.set_yticks([])
    h = result.history or {}
    if h.get("R_F"):
        ax[3].semilogy(h.get("iteration", range(1, len(h["R_F"]) + 1)), h["R_F"])
    ax[3].set_xlabel("iteration")
    ax[3].set_title("R_F")
    if frc is not None:
        ax[4].plot(frc[0], frc[1])
        ax[4].set_ylim(min(0.0, np.nanmin(frc[1])), 1.02)
        ax[4].set_xlabel("frequency (1/pixel)")
        ax[4].set_title("FRC vs truth")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_save_bytes(path, buf.getvalue())
    return path
