"""Figures of reconstructions and diffraction patterns (PNG, matplotlib's Agg backend).

matplotlib is imported only when a figure is drawn, and only through its object-oriented API
(:class:`matplotlib.figure.Figure` with the Agg canvas), so the global pyplot state and the
interactive backend of the caller are left alone.  Files are written atomically.

* :func:`plot_cdi_result` -- the image (amplitude, and phase when complex), the support, the
  R-factor curve of the best start and, given the ground truth, the aligned truth and
  reconstruction with the relative error and R_real;
* :func:`plot_pattern` -- a diffraction pattern on a log scale, unmeasured pixels in grey.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

__all__ = ["plot_cdi_result", "plot_pattern", "real_if_real"]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    from .io.atomic import atomic_write

    p = Path(os.fspath(path))
    with atomic_write(p) as tmp:
        fig.savefig(tmp, format="png")
    return p


def _fields(result) -> dict:
    """Image, support, history and R-factors of a ReconResult or a read_result() dict."""
    if isinstance(result, dict):
        images = result.get("images") or []
        if not images and result.get("image") is not None:
            images = [result["image"]]
        if not images:
            from .core.errors import InputError

            raise InputError("the result holds no image")
        return {"image": np.asarray(images[0]), "support": result.get("support"),
                "history": result.get("history") or {},
                "rfactors": result.get("rfactors") or [],
                "n_starts": len(images)}
    images = getattr(result, "images", None) or [result.image]
    return {"image": np.asarray(result.image), "support": getattr(result, "support", None),
            "history": getattr(result, "history", None) or {},
            "rfactors": list(getattr(result, "rfactors", []) or []),
            "n_starts": len(images)}


def _is_complex(a: np.ndarray) -> bool:
    """Complex dtype with a non-negligible imaginary part."""
    if not np.iscomplexobj(a):
        return False
    amax = float(np.abs(a).max()) if a.size else 0.0
    return amax > 0 and float(np.abs(a.imag).max()) > 1e-6 * amax


def real_if_real(a) -> np.ndarray:
    """The real part of a complex array whose imaginary part is negligible, else ``a``.

    A reconstruction under the realness constraint is stored complex with a zero imaginary part;
    treating it as real keeps alignment (sub-pixel shifts) and figures real too.
    """
    a = np.asarray(a)
    return np.ascontiguousarray(a.real) if np.iscomplexobj(a) and not _is_complex(a) else a


def _bbox(mask: np.ndarray | None, shape, margin: float = 0.15, min_margin: int = 3):
    """Slices of the bounding box of ``mask`` with a margin (the whole array if empty)."""
    if mask is None or not np.any(mask):
        return tuple(slice(0, n) for n in shape)
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.nonzero(np.any(mask, axis=other))[0]
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        m = max(min_margin, int(math.ceil(margin * (hi - lo))))
        out.append(slice(max(0, lo - m), min(mask.shape[ax], hi + m)))
    return tuple(out)


def _mid_slice(a: np.ndarray) -> np.ndarray:
    """2-D view of an image: the array itself, or the central z slice of a volume."""
    a = np.asarray(a)
    while a.ndim > 2:
        a = a[a.shape[0] // 2]
    return a


def _show(ax, img, title, cmap="gray", *, vmin=None, vmax=None, colorbar=True):
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                   origin="upper")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
    return im


def _log_pattern(intensity: np.ndarray, mask: np.ndarray | None):
    I = np.asarray(intensity, dtype=np.float64)
    finite = np.isfinite(I)
    pos = I[finite & (I > 0)]
    floor = float(pos.min()) if pos.size else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.log10(np.where(finite & (I > 0), I, floor))
    L = np.ma.masked_array(L, mask=None if mask is None else ~np.asarray(mask, bool))
    return L


def _pattern_cmap():
    import matplotlib

    return matplotlib.colormaps["viridis"].with_extremes(bad="0.6")  # unmeasured: grey


def plot_cdi_result(result, path, *, truth=None, intensity=None, mask=None) -> Path:
    """Write a PNG summary of a CDI reconstruction.

    Panels: reconstructed amplitude (and phase if the image is complex), the final support, the
    R-factor curve of the best start (log scale, one colour per stage of a chain), the measured
    pattern (log scale) when ``intensity`` is given, and when ``truth`` is given the truth and
    the reconstruction aligned onto it (translation, twin image, global phase;
    :func:`phasekit.metrics.align`) with the aligned relative error and R_real in the title.
    Volumes are shown by their central slice.

    Parameters
    ----------
    result : ReconResult or dict
        A result object, or the dict returned by :func:`phasekit.io.read_result`.
    path : str or os.PathLike
        The PNG file (written atomically; parent folders are created).
    truth : array, optional
        Ground truth of a simulation, same shape as the image.
    intensity : array, optional
        The measured pattern.
    mask : bool array, optional
        True = measured pixel (unmeasured pixels are drawn grey).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from .core.errors import InputError

    f = _fields(result)
    image = f["image"]
    support = None if f["support"] is None else np.asarray(f["support"], bool)
    is_cplx = _is_complex(image)
    has_truth = truth is not None
    if has_truth:
        truth = np.asarray(truth)
        if truth.shape != image.shape:
            raise InputError(f"truth shape {truth.shape} != image shape {image.shape}")

    panels = ["amp"] + (["phase"] if is_cplx else []) + ["support", "rf"]
    if intensity is not None:
        panels.append("pattern")
    if has_truth:
        panels += ["truth", "aligned"] + (["aligned_phase"] if _is_complex(truth) else [])
    ncol = 3 if len(panels) <= 6 else 4
    nrow = int(math.ceil(len(panels) / ncol))
    fig = _new_figure(4.0 * ncol, 3.5 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    ax_of = dict(zip(panels, axes))

    img2 = _mid_slice(image)
    sup2 = None if support is None else _mid_slice(support)
    amp = np.abs(img2)
    box = _bbox(sup2 if sup2 is not None and sup2.shape == amp.shape else amp > 0.05 * amp.max(),
                amp.shape)
    n_st = f["n_starts"]
    rf_txt = f"R_F {f['rfactors'][0]:.4g}" if f["rfactors"] else ""
    if is_cplx:
        vals, what = amp, "amplitude"
    else:
        vals, what = np.real(img2), "(real)"
    _show(ax_of["amp"], vals[box],
          f"reconstruction {what}\n(best of {n_st} start{'s' if n_st != 1 else ''}"
          f"{', ' + rf_txt if rf_txt else ''})")
    if is_cplx:
        ph = np.ma.masked_array(np.angle(img2), mask=amp < 0.05 * amp.max())
        _show(ax_of["phase"], ph[box], "reconstruction phase (rad)", cmap="twilight",
              vmin=-np.pi, vmax=np.pi)
    if sup2 is not None:
        _show(ax_of["support"], sup2[box].astype(float), f"support ({int(support.sum())} px)",
              vmin=0, vmax=1, colorbar=False)
    else:
        ax_of["support"].text(0.5, 0.5, "no support stored", ha="center", va="center")
        ax_of["support"].set_axis_off()

    # R-factor history of the best start
    ax = ax_of["rf"]
    hist = f["history"]
    it = np.asarray(hist.get("iteration", []), dtype=float)
    rf = np.asarray(hist.get("R_F", []), dtype=float)
    if it.size and rf.size == it.size and np.any(np.isfinite(rf) & (rf > 0)):
        stage = np.asarray(hist.get("stage", np.zeros(it.size)), dtype=int)
        if stage.size != it.size:
            stage = np.zeros(it.size, dtype=int)
        ok = np.isfinite(rf) & (rf > 0)
        for st in np.unique(stage):
            sel = (stage == st) & ok
            ax.plot(it[sel], rf[sel], lw=1.2, marker="." if sel.sum() < 30 else None,
                    label=f"stage {st + 1}" if len(np.unique(stage)) > 1 else None)
        ax.set_yscale("log")
        if len(np.unique(stage)) > 1:
            ax.legend(fontsize=7)
        ax.set_xlabel("iteration")
        ax.set_ylabel("R_F")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"convergence (best start), final R_F {rf[ok][-1]:.4g}", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no R-factor history", ha="center", va="center")
        ax.set_axis_off()

    if intensity is not None:
        I = _mid_slice(np.asarray(intensity))
        m2 = None if mask is None else _mid_slice(np.asarray(mask, bool))
        if m2 is not None and m2.shape != I.shape:
            raise InputError(f"mask shape {m2.shape} != intensity shape {I.shape}")
        _show(ax_of["pattern"], _log_pattern(I, m2), "measured intensity (log10)",
              cmap=_pattern_cmap())

    if has_truth:
        from .metrics import align, r_real, relative_error

        aligned, info = align(real_if_real(image), real_if_real(truth))
        err = relative_error(aligned, truth, align_first=False)
        rr = r_real(aligned, truth, align_first=False)
        t2 = _mid_slice(truth)
        a2 = _mid_slice(aligned)
        tbox = _bbox(np.abs(t2) > 0, t2.shape)
        cplx_t = _is_complex(t2) or is_cplx
        tv = np.abs(t2) if cplx_t else np.real(t2)
        av = np.abs(a2) if cplx_t else np.real(a2)
        lo = float(min(tv[tbox].min(), av[tbox].min()))
        hi = float(max(tv[tbox].max(), av[tbox].max()))
        lab = "amplitude" if cplx_t else "image"
        _show(ax_of["truth"], tv[tbox], f"ground truth {lab}", vmin=lo, vmax=hi)
        twin = ", twin" if info.get("twin") else ""
        _show(ax_of["aligned"], av[tbox],
              f"aligned reconstruction{twin}\nrel. error {err:.4f}, R_real {rr:.4f}",
              vmin=lo, vmax=hi)
        if "aligned_phase" in ax_of:
            ph = np.ma.masked_array(np.angle(a2), mask=np.abs(t2) <= 0)
            _show(ax_of["aligned_phase"], ph[tbox], "aligned phase (rad)", cmap="twilight",
                  vmin=-np.pi, vmax=np.pi)
        fig.suptitle(f"relative error {err:.4f}, R_real {rr:.4f}", fontsize=11)
    return _save(fig, path)


def plot_pattern(intensity, path, mask=None) -> Path:
    """Write a PNG of a diffraction pattern on a log scale (unmeasured pixels grey).

    Parameters
    ----------
    intensity : array
        The pattern (2-D, or a volume whose central slice is drawn).
    path : str or os.PathLike
        The PNG file (written atomically).
    mask : bool array, optional
        True = measured pixel.

    Returns
    -------
    pathlib.Path
    """
    from .core.errors import InputError

    I = np.asarray(intensity)
    if I.ndim < 2 or np.iscomplexobj(I):
        raise InputError(f"intensity must be a real 2-D or 3-D array, got shape {I.shape} "
                         f"dtype {I.dtype}")
    I2 = _mid_slice(I)
    m2 = None
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != I.shape:
            raise InputError(f"mask shape {m.shape} != intensity shape {I.shape}")
        m2 = _mid_slice(m)
    fig = _new_figure(5.0, 4.2)
    ax = fig.subplots()
    n_meas = I.size if m2 is None else int(np.asarray(mask, bool).sum())
    _show(ax, _log_pattern(I2, m2), f"intensity (log10), {n_meas} of {I.size} px measured",
          cmap=_pattern_cmap())
    return _save(fig, path)
