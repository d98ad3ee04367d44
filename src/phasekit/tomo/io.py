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
from .geometry import as_euler, zyz_to_zyx
from .simulate import TiltSeries

__all__ = ["write_tilt_series", "read_tilt_series", "is_tomo_file", "write_tomo_result",
           "read_tomo_result", "write_tiff_stack", "read_tiff_stack"]

FORMAT = "phasekit-tomo"
VERSION = 1


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


def is_tomo_file(path) -> bool:
    """True if ``path`` is an HDF5 file with a ``/tomo`` tilt-series group, or a TIFF stack with
    an IMOD-style ``.rawtlt`` / ``.tlt`` angle file beside it."""
    p = Path(os.fspath(path))
    if not p.is_file():
        return False
    if p.suffix.lower() in (".tif", ".tiff"):
        return _tilt_sidecar(p) is not None
    try:
        with open(p, "rb") as fh:
            if fh.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
        h5py = _h5py()
        with h5py.File(p, "r") as f:
            return "tomo" in f and "projections" in f["tomo"] and "angles" in f["tomo"]
    except OSError:
        return False


def read_tilt_series(path) -> TiltSeries:
    """Read a tilt series written by :func:`write_tilt_series` (or by hand in that layout), or a
    TIFF stack with its ``.rawtlt`` angle file (:func:`read_tiff_stack`)."""
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileFormatError(f"{p}: no such file")
    if p.suffix.lower() in (".tif", ".tiff"):
        return read_tiff_stack(p)
    h5py = _h5py()
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise FileFormatError(f"{p}: not a readable HDF5 file ({exc})") from None
    with f:
        if "tomo" not in f or "projections" not in f["tomo"] or "angles" not in f["tomo"]:
            raise FileFormatError(f"{p}: no /tomo/projections and /tomo/angles (not a tilt series)")
        g = f["tomo"]
        b = np.asarray(g["projections"][()], dtype=np.float32)
        a = np.asarray(g["angles"][()], dtype=np.float64)
        conv = str(g.attrs.get("convention", "ZYX")).upper()
        units = str(g.attrs.get("angle_units", "deg")).lower()
        if b.ndim != 3:
            raise FileFormatError(f"{p}: /tomo/projections must be (n, Dx, Dy), got {b.shape}")
        if not np.isfinite(b).all():
            raise InputError(f"{p}: {int(np.count_nonzero(~np.isfinite(b)))} NaN or infinite "
                             "value(s) in /tomo/projections")
        try:
            if units in ("rad", "radian", "radians"):
                a = np.rad2deg(a)
            ang = as_euler(a)
            if conv == "ZYZ":
                ang = zyz_to_zyx(ang)
            elif conv != "ZYX":
                raise FileFormatError(f"{p}: unknown angle convention {conv!r}")
        except InputError as exc:
            raise FileFormatError(f"{p}: bad angles: {exc}") from None
        if ang.shape[0] != b.shape[0]:
            raise FileFormatError(f"{p}: {ang.shape[0]} angles for {b.shape[0]} projections")
        mask = np.asarray(g["mask"][()], bool) if "mask" in g else None
        truth = np.asarray(g["truth"][()], np.float32) if "truth" in g else None
        support = np.asarray(g["support"][()], bool) if "support" in g else None
        vs = tuple(int(n) for n in g["volume_shape"][()]) if "volume_shape" in g else None
        try:
            params = json.loads(g.attrs.get("params", "{}"))
        except (TypeError, ValueError):
            params = {}
    return TiltSeries(projections=b, angles=ang, mask=mask, truth=truth, support=support,
                      vol_shape=vs, params=params)


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
    """Read a file written by :func:`write_tomo_result`."""
    h5py = _h5py()
    p = Path(os.fspath(path))
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise FileFormatError(f"{p}: not a readable HDF5 file ({exc})") from None
    with f:
        if "tomo_result" not in f:
            raise FileFormatError(f"{p}: no /tomo_result group")
        g = f["tomo_result"]
        out = {"volume": g["volume"][()],
               "history": {k: g["history"][k][()] for k in g["history"]},
               "config": json.loads(g.attrs.get("config", "{}")),
               "provenance": json.loads(g.attrs.get("provenance", "{}")),
               "metrics": json.loads(g.attrs.get("metrics", "{}"))}
        if "fsc" in g:
            out["fsc"] = (g["fsc"]["freq"][()], g["fsc"]["curve"][()])
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
        tifffile.imwrite(tmp, np.ascontiguousarray(b.transpose(0, 2, 1)))
    with atomic_write(path.with_suffix(".rawtlt")) as tmp:
        Path(tmp).write_text("".join(f"{t:.6f}\n" for t in ang[:, 1]))
    return path


def read_tiff_stack(path, angles=None) -> TiltSeries:
    """Read a TIFF stack (pages ``(y, x)``) and its tilts (``angles`` or ``<stem>.rawtlt`` /
    ``.tlt``, one angle in degrees per line)."""
    tifffile = _tifffile()
    p = Path(os.fspath(path))
    try:
        a = np.asarray(tifffile.imread(p), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a file-format error
        raise FileFormatError(f"{p}: not a readable TIFF stack ({exc})") from None
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise FileFormatError(f"{p}: expected a stack of 2-D images, got shape {a.shape}")
    if angles is None:
        side = _tilt_sidecar(p)
        if side is None:
            raise FileFormatError(f"{p}: no angles given and no {p.stem}.rawtlt / .tlt beside it")
        try:
            angles = np.loadtxt(side, dtype=np.float64, ndmin=1)
        except ValueError as exc:
            raise FileFormatError(f"{side}: not a list of angles ({exc})") from None
    try:
        ang = as_euler(angles)
    except InputError as exc:
        raise FileFormatError(f"{p}: bad angles: {exc}") from None
    if ang.shape[0] != a.shape[0]:
        raise FileFormatError(f"{p}: {ang.shape[0]} angles for {a.shape[0]} images")
    return TiltSeries(projections=np.ascontiguousarray(a.transpose(0, 2, 1)), angles=ang,
                      params={"source": str(p)})
