"""Figure of a tomographic reconstruction: central slices, R_F history, FSC (PNG, Agg)."""
from __future__ import annotations

import numpy as np

from ..plot import _new_figure, _save

__all__ = ["plot_tomo_result", "central_slices"]


def central_slices(v, thickness: int = 1):
    """XY, XZ, YZ central slabs: the sum of ``thickness`` planes ``N//2 - t//2 ...`` (our
    reading of the thesis' "k-pixel-thick central slice", Figs. 3.1-3.4, which says neither sum
    nor mean nor which planes)."""
    v = np.asarray(v)
    out = []
    for ax in (2, 1, 0):
        c = v.shape[ax] // 2 - thickness // 2
        sl = [slice(None)] * 3
        sl[ax] = slice(c, c + thickness)
        out.append(v[tuple(sl)].sum(ax))
    return out  # XY (x, y), XZ (x, z), YZ (y, z)


def plot_tomo_result(volume, path, *, truth=None, history=None, fsc=None, title="",
                     thickness: int = 1):
    """Central XY/XZ/YZ slices of ``volume`` (and ``truth``), the R_F history and the FSC."""
    rows = 2 if truth is not None else 1
    fig = _new_figure(13, 3.3 * rows)
    axes = fig.subplots(rows, 4, squeeze=False)
    names = ("XY", "XZ", "YZ")
    sets = [("recon", volume)] + ([("truth", truth)] if truth is not None else [])
    vmax = max(float(np.max(central_slices(v, thickness)[0])) for _, v in sets) or 1.0
    for r, (lab, v) in enumerate(sets):
        for i, s in enumerate(central_slices(v, thickness)):
            ax = axes[r, i]
            ax.imshow(s.T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
            ax.set_title(f"{lab} {names[i]}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    ax = axes[0, 3]
    if history and history.get("R_F"):
        ax.semilogy(history["iteration"], history["R_F"], label="R_F")
        if history.get("R_free"):
            ax.semilogy(history["iteration"], history["R_free"], label="R_free")
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
        ax.set_title("history", fontsize=9)
    else:
        ax.axis("off")
    if rows == 2:
        ax = axes[1, 3]
        if fsc is not None:
            ax.plot(fsc[0], fsc[1])
            ax.axhline(0.5, ls="--", c="gray", lw=0.8)
            ax.axhline(0.143, ls=":", c="gray", lw=0.8)
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("spatial frequency / Nyquist")
            ax.set_title("FSC vs truth", fontsize=9)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
