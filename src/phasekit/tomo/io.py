"""HDF5 files of tilt series and tomography results.

Tilt-series layout (``phasekit`` attribute ``format = "phasekit-tomo"``)::

    /tomo                         group, attrs: format, version, convention="ZYX",
                                  angle_units="deg", axes="projection,x,y", params (JSON)
    /tomo/projections             float32 (n, Dx, Dy)
    /tomo/angles                  float64 (n, 3) ZYX Euler triples (phi, theta, psi), degrees
    /tomo/mask                    bool (n, Dx, Dy), optional, True = measured
    /tomo/volume_shape            int (3,), optional (extended-object mode)
    /tomo/truth                   float32 (Nx, Ny, Nz), optional (simulation ground truth)
    /tomo/support                 bool (Nx, Ny, Nz), optional

A single tilt column (n,) may be stored in ``angles`` instead of (n, 3); it means ``(0, t, 0)``.
Angle files in the ZYZ (GENFIRE) convention may be stored with attribute
``convention = "ZYZ"`` and are converted on reading.

Result layout: ``/tomo_result/volume`` (float32), ``/tomo_result/history/<metric>``,
``/tomo_result/fsc/{freq,curve}`` when the truth is known, attributes ``config`` and
``provenance`` (JSON).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError, InputError
from ..io.atomic import atomic_write
from ..io.cxi_common import (READ_ERRORS, existing_file, h5_array, h5_dataset, reading_hdf5,
                             sniff, to_str)
from ..io.tomo_formats import TOMO_LAYOUTS, tomo_layout
from .geometry import as_euler, zyz_to_zyx
from .simulate import TiltSeries

__all__ = ["write_tilt_series", "read_tilt_series", "is_tomo_file", "tomo_kind", "write_tomo_result",
           "read_tomo_result", "write_tiff_stack", "read_tiff_stack", "describe_tomo"]

FORMAT = "phasekit-tomo"
#: tomo_kind() values of the beamline / EM layouts read by :mod:`phasekit.io.tomo_formats`
RAW_KINDS = ("dxchange", "nxtomo", "mrc")
VERSION = 1
TIFF_SUFFIXES = (".tif", ".tiff")
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_DEGREES = ("deg", "degree", "degrees")
_RADIANS = ("rad", "radian", "radians")


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover
        raise FileFormatError("tomography files need h5py (pip install h5py)") from exc
    return h5py


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def write_tilt_series(path, projections, angles, *, mask=None, truth=None, support=None,
                      vol_shape=None, params=None) -> Path:
    """Write a tilt series (atomically).  See the module docstring for the layout."""
    h5py = _h5py()
    b = np.asarray(projections, dtype=np.float32)
    if b.ndim != 3:
        raise InputError(f"projections must be (n, Dx, Dy), got shape {b.shape}")
    ang = as_euler(angles)
    if ang.shape[0] != b.shape[0]:
        raise InputError(f"{ang.shape[0]} angles for {b.shape[0]} projections")
    path = Path(os.fspath(path))
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("tomo")
            g.attrs.update(format=FORMAT, version=VERSION, convention="ZYX", angle_units="deg",
                           axes="projection,x,y",
                           params=json.dumps(params or {}, default=_json_default))
            g.create_dataset("projections", data=b, compression="gzip", shuffle=True)
            g.create_dataset("angles", data=ang)
            if mask is not None:
                m = np.asarray(mask, dtype=bool)
                if m.shape != b.shape:
                    raise InputError(f"mask shape {m.shape} != projections shape {b.shape}")
                g.create_dataset("mask", data=m, compression="gzip")
            if vol_shape is not None:
                g.create_dataset("volume_shape", data=np.asarray(vol_shape, dtype=np.int64))
            if truth is not None:
                t = g.create_dataset("truth", data=np.asarray(truth, dtype=np.float32),
                                     compression="gzip", shuffle=True)
                t.attrs["note"] = "simulation ground truth"
            if support is not None:
                g.create_dataset("support", data=np.asarray(support, dtype=bool), compression="gzip")
    return path


def _tilt_sidecar(p: Path):
    for ext in (".rawtlt", ".tlt"):
        c = p.with_suffix(ext)
        if c.is_file():
            return c
    return None


def _is_tiff(p: Path) -> bool:
    if p.suffix.lower() in TIFF_SUFFIXES:
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(4) in TIFF_MAGICS
    except OSError:
        return False


def tomo_kind(path) -> str | None:
    """What kind of tomography file ``path`` is, from a quick look; never raises.

    Returns
    -------
    str or None
        ``"tilt-series"`` (an HDF5 file with a ``/tomo`` group, complete or not), ``"tomo-result"``
        (a ``/tomo_result`` group), ``"tiff"`` (a TIFF stack: a TIFF with a ``.rawtlt`` /
        ``.tlt`` angle file beside it, or a readable TIFF of several pages) or ``None``.  A
        single-page TIFF without an angle file is a diffraction pattern
        (:func:`phasekit.io.read_diffraction`), and so is ``None`` here.  ``"dxchange"`` (APS
        Data Exchange), ``"nxtomo"`` (NeXus NXtomo) and ``"mrc"`` (an MRC stack) are the beamline
        and electron-tomography layouts of :mod:`phasekit.io.tomo_formats`.

    Examples
    --------
    >>> tomo_kind("series.h5")  # doctest: +SKIP
    'tilt-series'
    """
    p = Path(os.fspath(path))
    try:
        if not p.is_file():
            return None
        if _is_tiff(p):
            if _tilt_sidecar(p) is not None:
                return "tiff"
            from ..io.patterns import tiff_page_count

            pages = tiff_page_count(p)
            return "tiff" if pages is not None and pages > 1 else None
        if sniff(p) != "hdf5":
            return tomo_layout(p)  # "mrc" or None
        with reading_hdf5(p) as f:
            if isinstance(f.get("tomo"), _h5py().Group):
                return "tilt-series"
            if isinstance(f.get("tomo_result"), _h5py().Group):
                return "tomo-result"
        return tomo_layout(p)  # "dxchange", "nxtomo" or None
    except (FileFormatError, *READ_ERRORS):
        return None
    return None


def is_tomo_file(path) -> bool:
    """True if ``path`` is meant as a tilt series: an HDF5 file with a ``/tomo`` group (complete
    or not: :func:`read_tilt_series` then says what is missing) or a TIFF stack (whose angles are
    in an IMOD-style ``.rawtlt`` / ``.tlt`` file beside it; a TIFF of several pages without one
    is taken as a tilt series that lacks its angles, a single-page TIFF without one as a
    diffraction pattern)."""
    return tomo_kind(path) in ("tilt-series", "tiff") + RAW_KINDS


def read_tilt_series(path) -> TiltSeries:
    """Read a tilt series written by :func:`write_tilt_series` (or by hand in that layout), a
    TIFF stack with its ``.rawtlt`` angle file (:func:`read_tiff_stack`), or a Data Exchange,
    NXtomo or MRC scan (:func:`phasekit.tomo.formats.read_scan` with its default preprocessing).

    Raises
    ------
    FileFormatError
        Missing, corrupt or truncated file; no ``/tomo`` group; a tilt series without
        projections or angles (the message names the dataset expected); datasets of the wrong
        type, shape or dtype; unknown angle convention or units.
    InputError
        NaN or infinite projection values.
    """
    p = existing_file(path)
    if tomo_layout(p) is not None:  # Data Exchange, NXtomo, MRC: read and preprocessed
        from .formats import read_scan

        return read_scan(p)[0]
    if _is_tiff(p):
        return read_tiff_stack(p)
    if sniff(p) != "hdf5":
        raise FileFormatError(f"{p}: not a readable HDF5 file (no HDF5 signature), so not a "
                              "tilt series")
    with reading_hdf5(p, "tilt-series file") as f:
        return _read_tilt_series_open(p, f)


def _read_tilt_series_open(p: Path, f) -> TiltSeries:
    h5py = _h5py()
    g = f.get("tomo")
    if not isinstance(g, h5py.Group):
        raise FileFormatError(f"{p}: not a tilt series (expected group /tomo with datasets "
                              "projections and angles)")
    if g.get("projections") is None:
        raise FileFormatError(f"{p}: tilt series without projections (expected dataset "
                              "/tomo/projections)")
    if g.get("angles") is None:
        raise FileFormatError(f"{p}: tilt series without angles (expected dataset /tomo/angles)")
    b = h5_array(h5_dataset(f, "tomo/projections", p), p, "biuf").astype(np.float32)
    if b.ndim != 3 or b.size == 0:
        raise FileFormatError(f"{p}: /tomo/projections must be (n, Dx, Dy), got {b.shape}")
    if not np.isfinite(b).all():
        raise InputError(f"{p}: {int(np.count_nonzero(~np.isfinite(b)))} NaN or infinite "
                         "value(s) in /tomo/projections")
    a = h5_array(h5_dataset(f, "tomo/angles", p), p, "iuf").astype(np.float64)
    conv = (to_str(g.attrs.get("convention")) or "ZYX").strip().upper()
    units = (to_str(g.attrs.get("angle_units")) or "deg").strip().lower()
    if units in _RADIANS:
        a = np.rad2deg(a)
    elif units not in _DEGREES:
        raise FileFormatError(f"{p}: unknown angle_units {units!r} (expected deg or rad)")
    try:
        ang = as_euler(a)
    except InputError as exc:
        raise FileFormatError(f"{p}: bad angles: {exc}") from None
    if conv == "ZYZ":
        ang = zyz_to_zyx(ang)
    elif conv != "ZYX":
        raise FileFormatError(f"{p}: unknown angle convention {conv!r} (expected ZYX or ZYZ)")
    if ang.shape[0] != b.shape[0]:
        raise FileFormatError(f"{p}: {ang.shape[0]} angles for {b.shape[0]} projections")
    mask = truth = support = vs = None
    if g.get("mask") is not None:
        mask = h5_array(h5_dataset(f, "tomo/mask", p), p, "biuf") != 0
        if mask.shape != b.shape:
            raise FileFormatError(f"{p}: /tomo/mask shape {mask.shape} != projections shape "
                                  f"{b.shape}")
    if g.get("truth") is not None:
        truth = h5_array(h5_dataset(f, "tomo/truth", p), p, "biuf").astype(np.float32)
        if truth.ndim != 3:
            raise FileFormatError(f"{p}: /tomo/truth must be a volume, got shape {truth.shape}")
    if g.get("support") is not None:
        support = h5_array(h5_dataset(f, "tomo/support", p), p, "biuf") != 0
        if support.ndim != 3 or (truth is not None and support.shape != truth.shape):
            raise FileFormatError(f"{p}: /tomo/support shape {support.shape} is not that of "
                                  "the volume")
    if g.get("volume_shape") is not None:
        v = h5_array(h5_dataset(f, "tomo/volume_shape", p), p, "iu")
        if v.shape != (3,) or (v <= 0).any():
            raise FileFormatError(f"{p}: /tomo/volume_shape must be 3 positive integers, got "
                                  f"{v.tolist()}")
        vs = tuple(int(n) for n in v)
    params = _json_dict(g.attrs.get("params"))
    return TiltSeries(projections=b, angles=ang, mask=mask, truth=truth, support=support,
                      vol_shape=vs, params=params)


def _json_dict(v) -> dict:
    """A JSON attribute that should hold a dict; anything else (absent, broken) is ``{}``."""
    text = to_str(v)
    if not text:
        return {}
    try:
        out = json.loads(text)
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def write_tomo_result(path, volume, *, history=None, config=None, provenance=None, fsc=None,
                      metrics=None) -> Path:
    """Write a reconstruction (atomically) into ``/tomo_result``."""
    h5py = _h5py()
    path = Path(os.fspath(path))
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("tomo_result")
            g.attrs.update(format=FORMAT + "-result", version=VERSION,
                           config=json.dumps(config or {}, default=_json_default),
                           provenance=json.dumps(provenance or {}, default=_json_default),
                           metrics=json.dumps(metrics or {}, default=_json_default))
            g.create_dataset("volume", data=np.asarray(volume, dtype=np.float32),
                             compression="gzip", shuffle=True)
            h = g.create_group("history")
            for k, v in (history or {}).items():
                h.create_dataset(k, data=np.asarray(v, dtype=np.float64))
            if fsc is not None:
                s = g.create_group("fsc")
                s.create_dataset("freq", data=np.asarray(fsc[0]))
                s.create_dataset("curve", data=np.asarray(fsc[1]))
    return path


def read_tomo_result(path) -> dict:
    """Read a file written by :func:`write_tomo_result`.

    Returns
    -------
    dict
        ``volume`` (float32 array), ``history`` (metric -> 1-D array), ``config``,
        ``provenance`` and ``metrics`` (dicts, ``{}`` when absent) and ``fsc`` ((freq, curve))
        when stored.

    Raises
    ------
    FileFormatError
        Missing, corrupt or truncated file, no ``/tomo_result/volume``, or datasets of the
        wrong type.
    """
    p = existing_file(path)
    if sniff(p) != "hdf5":
        raise FileFormatError(f"{p}: not a readable HDF5 file (no HDF5 signature), so not a "
                              "tomography result")
    with reading_hdf5(p, "tomography result") as f:
        h5py = _h5py()
        g = f.get("tomo_result")
        if not isinstance(g, h5py.Group):
            raise FileFormatError(f"{p}: no /tomo_result group (not a tomography result)")
        vol = h5_array(h5_dataset(f, "tomo_result/volume", p), p, "biuf").astype(np.float32)
        if vol.ndim != 3 or vol.size == 0:
            raise FileFormatError(f"{p}: /tomo_result/volume must be a volume, got shape "
                                  f"{vol.shape}")
        history = {}
        h = g.get("history")
        if isinstance(h, h5py.Group):
            for k in h:
                ds = h.get(k)
                if isinstance(ds, h5py.Dataset):
                    history[k] = np.atleast_1d(h5_array(ds, p, "biuf"))
        out = {"volume": vol, "history": history,
               "config": _json_dict(g.attrs.get("config")),
               "provenance": _json_dict(g.attrs.get("provenance")),
               "metrics": _json_dict(g.attrs.get("metrics"))}
        if g.get("fsc") is not None:
            out["fsc"] = (h5_array(h5_dataset(f, "tomo_result/fsc/freq", p), p, "iuf"),
                          h5_array(h5_dataset(f, "tomo_result/fsc/curve", p), p, "iuf"))
    return out


# --------------------------------------------------------------------------- TIFF stacks
def _tifffile():
    try:
        import tifffile
    except ImportError as exc:
        raise FileFormatError("TIFF stacks need the tifffile package (pip install tifffile)") from exc
    return tifffile


def write_tiff_stack(path, projections, angles) -> Path:
    """Write projections as a multi-page TIFF (one page per projection, page = ``(y, x)``, the
    usual image orientation) and the y-tilt angles, one per line, in ``<stem>.rawtlt`` (IMOD)."""
    tifffile = _tifffile()
    b = np.asarray(projections, dtype=np.float32)
    ang = as_euler(angles)
    if b.ndim != 3 or ang.shape[0] != b.shape[0]:
        raise InputError(f"need (n, Dx, Dy) projections and n angles, got {b.shape} and {ang.shape[0]}")
    if np.any(np.abs(ang[:, [0, 2]]) > 1e-9):
        raise InputError("a .rawtlt file holds single-axis tilts only; use HDF5 for Euler angles")
    path = Path(os.fspath(path))
    with atomic_write(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(b.transpose(0, 2, 1)),
                         photometric="minisblack")  # never RGB(A), whatever the last axis
    with atomic_write(path.with_suffix(".rawtlt")) as tmp:
        Path(tmp).write_text("".join(f"{t:.6f}\n" for t in ang[:, 1]))
    return path


def read_tiff_stack(path, angles=None) -> TiltSeries:
    """Read a TIFF stack (pages ``(y, x)``) and its tilts (``angles`` or ``<stem>.rawtlt`` /
    ``.tlt``, one angle in degrees per line)."""
    tifffile = _tifffile()
    p = existing_file(path)
    try:
        raw = tifffile.imread(p)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a file-format error
        raise FileFormatError(f"{p}: not a readable TIFF stack ({_one_line(exc)})") from None
    raw = np.asarray(raw)
    if raw.dtype.kind not in "biuf":
        raise FileFormatError(f"{p}: TIFF pixels of dtype {raw.dtype}; expected real numbers")
    a = raw.astype(np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.size == 0:
        raise FileFormatError(f"{p}: expected a stack of 2-D images, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{p}: {int(np.count_nonzero(~np.isfinite(a)))} NaN or infinite "
                         "value(s) in the images")
    if angles is None:
        side = _tilt_sidecar(p)
        if side is None:
            raise FileFormatError(f"{p}: tilt series without angles (expected {p.stem}.rawtlt "
                                  f"or {p.stem}.tlt beside it)")
        angles = _read_sidecar(side)
    try:
        ang = as_euler(angles)
    except InputError as exc:
        raise FileFormatError(f"{p}: bad angles: {exc}") from None
    if ang.shape[0] != a.shape[0]:
        raise FileFormatError(f"{p}: {ang.shape[0]} angles for {a.shape[0]} images")
    return TiltSeries(projections=np.ascontiguousarray(a.transpose(0, 2, 1)), angles=ang,
                      params={"source": str(p)})


def _read_sidecar(side: Path) -> np.ndarray:
    """The angles of an IMOD ``.rawtlt`` / ``.tlt`` file, one number (degrees) per line."""
    try:
        text = side.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise FileFormatError(f"{side}: not a readable angle file ({_one_line(exc)})") from None
    try:
        return np.array([float(t) for t in text.split()], dtype=np.float64)
    except ValueError as exc:
        raise FileFormatError(f"{side}: not a list of angles ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --------------------------------------------------------------------------- phasekit info
def _range(a: np.ndarray) -> str:
    lo, hi = float(np.min(a)), float(np.max(a))
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g} to {hi:.4g}"


def _angle_lines(ang: np.ndarray) -> list[str]:
    if np.all(ang[:, [0, 2]] == 0):
        return [f"  tilt angles: {_range(ang[:, 1])} deg (single-axis tilt about y)"]
    return [f"  Euler angles (ZYX, deg): phi {_range(ang[:, 0])}, theta {_range(ang[:, 1])}, "
            f"psi {_range(ang[:, 2])}"]


def _describe_series(ts: TiltSeries) -> list[str]:
    b = ts.projections
    n, dx, dy = b.shape
    lines = [f"tilt series: {n} projections of {dx} x {dy} (float32)"]
    lines += _angle_lines(ts.angles)
    lines.append(f"  projections: min {float(b.min()):.4g}, max {float(b.max()):.4g}, "
                 f"mean {float(b.mean(dtype=np.float64)):.4g}")
    lines.append("  mask: none (all measured)" if ts.mask is None else
                 f"  mask: {int(ts.mask.sum())} of {ts.mask.size} values measured")
    if ts.vol_shape is not None:
        lines.append(f"  volume shape: {ts.vol_shape} (extended object)")
    lines.append("  ground truth: none" if ts.truth is None else
                 f"  ground truth: volume {ts.truth.shape} float32 (simulation ground truth)")
    if ts.support is not None:
        lines.append(f"  support: {ts.support.shape}, {int(ts.support.sum())} voxels inside")
    params = ts.params or {}
    pre = params.get("preprocessing")
    if isinstance(pre, dict):  # written by preprocess-tomo: what was done to the raw file
        src = f" of {params['source']}" if params.get("source") else ""
        lines.append(f"  preprocessing{src} ({params.get('layout', 'raw')} layout):")
        lines += [f"    {step}" for step in pre.get("steps", [])]
        keys = [k for k in params if k not in ("source", "layout", "preprocessing",
                                               "rotation_center")]
        label = "params"
    else:
        keys = [k for k in params if k != "source"]
        label = "simulation params"
    if keys:
        lines.append(f"  {label}: {', '.join(sorted(keys)[:12])}"
                     f"{' ...' if len(keys) > 12 else ''}")
    return lines


def _short(obj, limit: int = 100) -> str:
    s = json.dumps(obj, default=_json_default, separators=(",", ":"))
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _describe_result(r: dict) -> list[str]:
    v = r["volume"]
    lines = [f"tomography result: volume {v.shape} {v.dtype}, min {float(v.min()):.4g}, "
             f"max {float(v.max()):.4g}"]
    cfg, hist, met = r["config"], r["history"], r["metrics"]
    parts = []
    stages = [s for s in cfg.get("schedule") or [] if isinstance(s, list) and len(s) >= 2]
    if cfg.get("algorithm"):
        parts.append(f"algorithm {cfg['algorithm']}")
    elif stages:
        parts.append("algorithm " + ",".join(f"{s[0]}:{s[1]}" for s in stages))
    n = max((h.size for h in hist.values()), default=0)
    if "iteration" in hist and hist["iteration"].size:  # numbered from 1 by the driver
        n = int(hist["iteration"][-1])
    elif stages and all(isinstance(s[1], int) for s in stages):
        n = sum(s[1] for s in stages)
    if n:
        parts.append(f"{n} iterations")
    if isinstance(met.get("R_F"), (int, float)):
        parts.append(f"R_F {met['R_F']:.4g}")
    if parts:
        lines.append("  " + ", ".join(parts))
    if hist:
        lines.append(f"  history: {', '.join(hist)} ({max(h.size for h in hist.values())} "
                     "points)")
    shown = {k: v for k, v in met.items() if k != "R_F" and isinstance(v, (int, float))}
    if shown:
        lines.append("  metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    if "fsc" in r:
        lines.append(f"  FSC against the ground truth: {np.size(r['fsc'][0])} frequencies")
    if cfg:
        lines.append(f"  config: {_short(cfg)}")
    return lines


def describe_tomo(path) -> str:
    """A summary of a tomography file for ``phasekit info``: an HDF5 tilt series (complete or
    not), a TIFF stack with its angle file, or a tomography result.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        The summary (no trailing newline).  A tilt series without angles is described as such
        ("tilt series without angles (expected dataset /tomo/angles)") with its projections.

    Raises
    ------
    FileFormatError
        Not a tomography file, or a corrupt one (one line, naming what was looked for).

    Examples
    --------
    >>> print(describe_tomo("series.h5"))  # doctest: +SKIP
    file: series.h5 (HDF5 tilt series, 61.2 KiB)
    tilt series: 13 projections of 16 x 16 (float32)
    ...
    """
    from ..io.describe import file_line

    p = existing_file(path)
    kind = tomo_kind(p)
    if kind == "tomo-result":
        return "\n".join([file_line(p, "HDF5 tomography result")]
                         + _describe_result(read_tomo_result(p)))
    if kind == "tiff":
        return _describe_tiff(p, file_line(p, "TIFF stack"))
    if kind in RAW_KINDS:
        from .formats import LAYOUT_NAMES, describe_scan

        return "\n".join([file_line(p, LAYOUT_NAMES[kind])] + describe_scan(p))
    if kind != "tilt-series":
        raise FileFormatError(f"{p}: not a tomography file (looked for a tomography result "
                              f"/tomo_result or a tilt series: {'; '.join(TOMO_LAYOUTS)})")
    head = file_line(p, "HDF5 tilt series")
    with reading_hdf5(p, "tilt-series file") as f:
        g = f["tomo"]
        missing = [n for n in ("projections", "angles") if g.get(n) is None]
        if missing:
            held = []
            for name in g:
                obj = g.get(name)
                held.append(f"  /tomo/{name}: " + (f"shape {obj.shape} {obj.dtype}"
                                                   if isinstance(obj, _h5py().Dataset)
                                                   else "group"))
    if missing:
        what = "angles" if missing == ["angles"] else " and ".join(missing)
        expected = ", ".join(f"/tomo/{n}" for n in missing)
        plural = "s" if len(missing) > 1 else ""
        return "\n".join([head, f"tilt series without {what} (expected dataset{plural} "
                                f"{expected})"] + (held or ["  /tomo is empty"]))
    return "\n".join([head] + _describe_series(read_tilt_series(p)))


def _describe_tiff(p: Path, head: str) -> str:
    side = _tilt_sidecar(p)
    if side is not None:
        ts = read_tiff_stack(p)
        return "\n".join([head] + _describe_series(ts)
                         + [f"  angles from {side.name}; pages are (y, x) images"])
    tifffile = _tifffile()
    try:
        raw = np.asarray(tifffile.imread(p))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a file-format error
        raise FileFormatError(f"{p}: not a readable TIFF stack ({_one_line(exc)})") from None
    return "\n".join([head, f"tilt series without angles (expected {p.stem}.rawtlt or "
                            f"{p.stem}.tlt beside it)",
                      f"  images: shape {raw.shape} {raw.dtype}"])
