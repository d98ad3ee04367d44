"""Figure of a tomographic reconstruction: slices, R_F history, FSC (PNG, Agg).

The layout fits the volume (:func:`figure_layout`): a plane is shown only when both its sides
have at least :data:`MIN_SIDE` voxels, so a thin volume (a few detector rows along the tilt axis
``y``) shows its tomographic ``XZ`` slices, one per row up to three, instead of the ``XY`` and
``YZ`` planes that would be lines; the history panel appears only for an iterative run with at
least two recorded R_F values (never for FBP).
"""
from __future__ import annotations

import numpy as np

from ..plot import _new_figure, _save

__all__ = ["plot_tomo_result", "central_slices", "figure_layout", "MIN_SIDE"]

#: smallest side (voxels) of a plane shown as an image
MIN_SIDE = 8
_PLANES = (("XY", 2), ("XZ", 1), ("YZ", 0))  # name, axis cut (XY: the plane at central z)


def central_slices(v, thickness: int = 1):
    """XY, XZ, YZ central slabs: the sum of ``thickness`` planes ``N//2 - t//2 ...`` (our
    reading of the thesis' "k-pixel-thick central slice", Figs. 3.1-3.4, which says neither sum
    nor mean nor which planes)."""
    v = np.asarray(v)
    out = []
    for ax in (2, 1, 0):
        out.append(_slab(v, ax, v.shape[ax] // 2, thickness))
    return out  # XY (x, y), XZ (x, z), YZ (y, z)


def _slab(v, ax, centre, thickness):
    t = max(1, min(int(thickness), v.shape[ax]))
    c = min(max(0, centre - t // 2), v.shape[ax] - t)
    sl = [slice(None)] * 3
    sl[ax] = slice(c, c + t)
    return v[tuple(sl)].sum(ax)


def figure_layout(shape, *, history=None, fsc=None) -> dict:
    """Which panels the figure of a volume of ``shape`` shows.

    Parameters
    ----------
    shape : (Nx, Ny, Nz)
    history : dict, optional
        The run's history; a panel is shown when ``R_F`` has at least 2 values.
    fsc : tuple, optional
        (freq, curve); a panel is shown when given (with a ground truth).

    Returns
    -------
    dict
        ``slices``: list of ``(title, axis, index)`` (the plane perpendicular to ``axis`` at
        ``index``); ``history``, ``fsc``: bool.

    Examples
    --------
    >>> [t for t, _, _ in figure_layout((64, 64, 64))["slices"]]
    ['XY', 'XZ', 'YZ']
    >>> [t for t, _, _ in figure_layout((64, 2, 64))["slices"]]
    ['XZ y=0', 'XZ y=1']
    >>> figure_layout((64, 2, 64), history={"R_F": [0.1]})["history"]
    False
    """
    Nx, Ny, Nz = (int(n) for n in shape)
    sides = {2: (Nx, Ny), 1: (Nx, Nz), 0: (Ny, Nz)}
    slices = [(name, ax, int(shape[ax]) // 2) for name, ax in _PLANES
              if min(sides[ax]) >= MIN_SIDE]
    if Ny < MIN_SIDE and min(Nx, Nz) >= MIN_SIDE:
        # a few detector rows: the tomographic slices themselves, one per row (up to 3)
        rows = sorted(set(np.linspace(0, Ny - 1, min(Ny, 3)).round().astype(int).tolist()))
        slices = [s for s in slices if s[1] != 1] + [(f"XZ y={j}", 1, j) for j in rows]
    if not slices:  # degenerate: show the largest plane anyway
        ax = int(np.argmin(shape))
        slices = [(dict((a, n) for n, a in _PLANES)[ax], ax, int(shape[ax]) // 2)]
    rf = (history or {}).get("R_F")
    has_hist = rf is not None and np.size(rf) >= 2
    return {"slices": slices, "history": bool(has_hist), "fsc": fsc is not None}


def plot_tomo_result(volume, path, *, truth=None, history=None, fsc=None, title="",
                     thickness: int = 1):
    """Slices of ``volume`` (and ``truth``) laid out by :func:`figure_layout`, the R_F history
    (iterative runs) and the FSC (with a truth)."""
    volume = np.asarray(volume)
    lay = figure_layout(volume.shape, history=history, fsc=fsc if truth is not None else None)
    rows = 2 if truth is not None else 1
    extra = 1 if (lay["history"] or lay["fsc"]) else 0
    ncol = len(lay["slices"]) + extra
    fig = _new_figure(max(4.0, 3.3 * ncol), 3.3 * rows)
    axes = fig.subplots(rows, ncol, squeeze=False)
    sets = [("recon", volume)] + ([("truth", np.asarray(truth))] if truth is not None else [])
    vmax = max(float(np.max(_slab(v, ax, i, thickness))) for _, v in sets
               for _, ax, i in lay["slices"]) or 1.0
    for r, (lab, v) in enumerate(sets):
        for i, (name, ax_cut, idx) in enumerate(lay["slices"]):
            s = _slab(v, ax_cut, idx, thickness)
            ax = axes[r, i]
            ax.imshow(s.T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
            ax.set_title(f"{lab} {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    if extra:
        ax = axes[0, -1]
        if lay["history"]:
            ax.semilogy(history["iteration"], history["R_F"], label="R_F")
            if history.get("R_free") is not None and np.size(history.get("R_free")):
                ax.semilogy(history["iteration"], history["R_free"], label="R_free")
            ax.set_xlabel("iteration")
            ax.legend(fontsize=8)
            ax.set_title("history", fontsize=9)
        else:
            ax.axis("off")
        if rows == 2:
            ax = axes[1, -1]
            if lay["fsc"]:
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
