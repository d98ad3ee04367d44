"""Tilt series from any layout phasekit reads, with the preprocessing a raw scan needs.

:func:`read_scan` is the one reader behind ``phasekit reconstruct`` for tomography: phasekit's
HDF5 tilt series (:func:`phasekit.tomo.io.read_tilt_series`), TIFF stacks, and the beamline /
electron-tomography layouts of :mod:`phasekit.io.tomo_formats` (APS Data Exchange, NeXus
NXtomo, MRC + IMOD angle files).  Raw scans (Data Exchange, NXtomo: detector counts, usually
with flat and dark frames) are corrected by :func:`phasekit.tomo.preprocess.preprocess` by
default; files that already hold line integrals (phasekit's own, TIFF and MRC stacks) are not,
unless asked.  :func:`describe_scan` is what ``phasekit info`` prints for the raw layouts.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError
from ..io.tomo_formats import (TOMO_LAYOUTS, read_tomo_layout, tilt_sidecar, tomo_layout)
from .preprocess import Preprocessed, preprocess
from .simulate import TiltSeries

__all__ = ["read_scan", "describe_scan", "parse_rows", "LAYOUT_NAMES", "RAW_LAYOUTS",
           "tomo_layouts_text"]

LAYOUT_NAMES = {"dxchange": "APS Data Exchange", "nxtomo": "NeXus NXtomo", "mrc": "MRC stack",
                "tiff": "TIFF stack", "tilt-series": "phasekit HDF5 tilt series"}
#: layouts whose frames are detector counts: preprocessed by default
RAW_LAYOUTS = ("dxchange", "nxtomo")


def tomo_layouts_text() -> str:
    """The layouts phasekit reads as tilt series, for error messages."""
    return "; ".join(TOMO_LAYOUTS)


def parse_rows(spec) -> slice | None:
    """``"A:B"`` -> ``slice(A, B)`` (detector rows along the rotation axis); None -> None.

    Examples
    --------
    >>> parse_rows("100:164")
    slice(100, 164, None)
    """
    from ..core.errors import ConfigError

    if spec is None or spec == "":
        return None
    if isinstance(spec, slice):
        return spec
    a, sep, b = str(spec).partition(":")
    try:
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else None
    except ValueError:
        raise ConfigError(f"--slices {spec!r}: expected A:B (detector rows, e.g. 100:164)") from None
    if not sep or lo < 0 or (hi is not None and hi - lo < 1):
        raise ConfigError(f"--slices {spec!r}: expected A:B with 0 <= A < B")
    return slice(lo, hi)


def read_scan(path, *, angles=None, rows=None, preprocess_data: bool | None = None,
              flat_dark: bool = True, log: bool | None = None, zingers: bool = True,
              center="default", center_method: str = "auto"
              ) -> tuple[TiltSeries, Preprocessed | None, str]:
    """Read a tilt series in any layout; preprocess it as its layout needs.

    Parameters
    ----------
    path : str or os.PathLike
    angles : str or array, optional
        Angles (degrees, or a ``START:STEP:STOP`` / file spec) overriding or supplying the file's.
    rows : slice or "A:B", optional
        Detector rows (along the rotation axis) to keep.
    preprocess_data : bool, optional
        Run :func:`~phasekit.tomo.preprocess.preprocess`.  Default: for raw layouts (Data
        Exchange, NXtomo) only.
    flat_dark, log, zingers : bool
        The individual steps (``log`` defaults to ``preprocess_data``).
    center : "default", "auto", float or None
        Rotation centre in detector pixels.  "default": ``auto`` when preprocessing, else the
        detector centre.
    center_method : str
        See :func:`~phasekit.tomo.preprocess.find_center`.

    Returns
    -------
    series : TiltSeries
        Projections ``(n, Dx, Dy)`` float32, angles; ``params`` hold the layout and the
        preprocessing record.
    record : Preprocessed or None
        What was done (None when nothing ran and no centre was set).
    layout : str
        ``"tilt-series"``, ``"tiff"``, ``"dxchange"``, ``"nxtomo"`` or ``"mrc"``.

    Examples
    --------
    >>> ts, pre, layout = read_scan("scan.h5")  # doctest: +SKIP
    >>> layout, pre.center  # doctest: +SKIP
    ('dxchange', 322.5)
    """
    from .io import read_tilt_series, tomo_kind

    p = Path(os.fspath(path))
    rows = parse_rows(rows) if not isinstance(rows, slice) else rows
    kind = tomo_kind(p)
    if kind == "tilt-series" or (kind is None and tomo_layout(p) is None and
                                 p.suffix.lower() not in (".tif", ".tiff")):
        ts = read_tilt_series(p)
        if angles is not None:
            from ..io.tomo_formats import parse_angles

            ts.angles = np.stack([np.zeros(ts.projections.shape[0]),
                                  parse_angles(angles, ts.projections.shape[0]),
                                  np.zeros(ts.projections.shape[0])], -1)
        if rows is not None:
            ts.projections = np.ascontiguousarray(ts.projections[:, :, rows])
            if ts.mask is not None:
                ts.mask = ts.mask[:, :, rows]
            if ts.truth is not None or ts.support is not None or ts.vol_shape is not None:
                ts.truth = None if ts.truth is None else ts.truth[:, rows, :]
                ts.support = None if ts.support is None else ts.support[:, rows, :]
                ts.vol_shape = None
        flats = darks = None
        raw_frames = ts.projections
        ang = ts.angles
        layout = "tilt-series"
        notes: list = []
    else:
        raw = read_tomo_layout(p, angles=angles, rows=rows)
        layout = raw.layout
        raw_frames, flats, darks = raw.projections, raw.flats, raw.darks
        ang = raw.angles
        notes = list(raw.notes)
        ts = None
    if raw_frames.shape[1] < 2 or raw_frames.shape[2] < 1:
        raise FileFormatError(f"{p}: frames of {raw_frames.shape[1]} x {raw_frames.shape[2]} "
                              "pixels are too small")
    do_pre = (layout in RAW_LAYOUTS) if preprocess_data is None else bool(preprocess_data)
    stored = (ts.params or {}).get("rotation_center") if ts is not None else None
    from_file = center == "default" and stored is not None
    if from_file:
        center = float(stored)  # found by 'phasekit preprocess-tomo' and stored with the data
    if center == "default":
        center = "auto" if do_pre else None
    if log is None:
        log = do_pre
    tilts = ang[:, 1] if np.ndim(ang) == 2 else np.asarray(ang)
    record = None
    if do_pre or center is not None:
        record = preprocess(raw_frames, tilts, flats=flats, darks=darks,
                            flat_dark=flat_dark and do_pre, log=bool(log) and do_pre,
                            zingers=zingers and do_pre, center=center,
                            center_method=center_method,
                            center_source="stored" if from_file else "given")
        if not do_pre:
            record.steps = [s for s in record.steps if s.startswith("centre")]
        record.steps = notes + record.steps
        proj = record.projections
    else:
        proj = np.ascontiguousarray(raw_frames, dtype=np.float32)
        if notes:
            record = Preprocessed(proj, tilts, None, "none", notes)
    if not np.all(np.isfinite(proj)):
        from ..core.errors import InputError

        raise InputError(f"{p}: {int(np.count_nonzero(~np.isfinite(proj)))} NaN or infinite "
                         "value(s) in the projections")
    if ts is None:
        ts = TiltSeries(projections=proj, angles=np.stack([np.zeros_like(tilts), tilts,
                                                           np.zeros_like(tilts)], -1),
                        params={"source": str(p)})
    else:
        ts.projections = proj
    ts.params = dict(ts.params or {}, layout=layout,
                     preprocessing=None if record is None else record.as_dict())
    return ts, record, layout


# --------------------------------------------------------------------------- phasekit info
def _h5_line(ds, label) -> str:
    return f"  {label}: {ds.name} {tuple(ds.shape)} {ds.dtype}"


def describe_scan(path) -> list[str]:
    """Summary lines of a Data Exchange, NXtomo or MRC scan (from metadata; the frames are not
    read), ending with what ``phasekit reconstruct`` does with it by default.

    Examples
    --------
    >>> print("\\n".join(describe_scan("scan.h5")))  # doctest: +SKIP
    APS Data Exchange scan: 181 projections of 640 x 8 pixels (rows x cols 8 x 640), uint16
    ...
    """
    from ..io.cxi_common import _get, _is_dataset, _to_str, reading_hdf5
    from ..io.tomo_formats import _nxtomo_entry, read_mrc

    p = Path(os.fspath(path))
    lay = tomo_layout(p)
    lines = []
    if lay == "dxchange":
        with reading_hdf5(p, "Data Exchange file") as f:
            d = f["exchange/data"]
            n = d.shape[0] if d.ndim == 3 else 1
            rows, cols = d.shape[-2:]
            lines.append(f"APS Data Exchange scan: {n} projections, frames {rows} x {cols} "
                         f"(rows along the rotation axis x columns), {d.dtype}")
            for name, lab in (("data_white", "flat (white) frames"), ("data_dark", "dark frames")):
                ds = _get(f, f"exchange/{name}")
                lines.append(f"  {lab}: {ds.shape[0] if ds.ndim == 3 else 1}" if _is_dataset(ds)
                             else f"  {lab}: none")
            th = _get(f, "exchange/theta")
            if _is_dataset(th):
                a = np.asarray(th[()], dtype=np.float64).reshape(-1)
                u = _to_str(th.attrs.get("units")) or "deg (dxchange convention)"
                lines.append(f"  angles: /exchange/theta, {a.size} values, {a.min():.4g} to "
                             f"{a.max():.4g} {u}")
            else:
                lines.append(f"  angles: no /exchange/theta (taken as {n} evenly over [0, 180) "
                             "deg unless --angles)")
    elif lay == "nxtomo":
        with reading_hdf5(p, "NXtomo file") as f:
            e = _nxtomo_entry(f)
            g = f[e]
            d = _get(g, "instrument/detector/data")
            d = d if _is_dataset(d) else _get(g, "data/data")
            if not _is_dataset(d) or d.ndim != 3:
                raise FileFormatError(f"{p}: NXtomo entry /{e} without a frame stack (expected "
                                      f"a 3-D /{e}/instrument/detector/data)")
            k = _get(g, "instrument/detector/image_key")
            k = k if _is_dataset(k) else _get(g, "data/image_key")
            lines.append(f"NeXus NXtomo scan (entry /{e}): {d.shape[0]} frames of "
                         f"{d.shape[1]} x {d.shape[2]} (rows x columns), {d.dtype}")
            if _is_dataset(k):
                key = np.asarray(k[()]).reshape(-1)
                lines.append(f"  image_key: {int(np.sum(key == 0))} projections, "
                             f"{int(np.sum(key == 1))} flats, {int(np.sum(key == 2))} darks, "
                             f"{int(np.sum(key == 3))} invalid")
            a = _get(g, "sample/rotation_angle")
            a = a if _is_dataset(a) else _get(g, "data/rotation_angle")
            if _is_dataset(a):
                v = np.asarray(a[()], dtype=np.float64).reshape(-1)
                lines.append(f"  rotation_angle: {v.min():.4g} to {v.max():.4g} "
                             f"{_to_str(a.attrs.get('units')) or 'deg (NeXus default)'}")
            else:
                lines.append("  rotation_angle: none (give --angles)")
    elif lay == "mrc":
        data, h = read_mrc(p)
        lines.append(f"MRC stack: {h['nz']} images of {h['ny']} x {h['nx']} (rows x columns), "
                     f"mode {h['mode']} ({data.dtype.name}), "
                     f"{'little' if h['endian'] == '<' else 'big'}-endian, extended header "
                     f"{h['next']} bytes")
        side = tilt_sidecar(p)
        if side is not None:
            from ..io.tomo_formats import read_tilt_file

            a = read_tilt_file(side)
            lines.append(f"  angles: {side.name}, {a.size} values, {a.min():.4g} to "
                         f"{a.max():.4g} deg")
        else:
            lines.append(f"  angles: none (expected {p.stem}.tlt or {p.stem}.rawtlt beside it, "
                         "or --angles START:STEP:STOP)")
    else:
        raise FileFormatError(f"{p}: not a Data Exchange, NXtomo or MRC scan")
    if lay in RAW_LAYOUTS:
        lines.append("  phasekit reconstruct: zinger removal, flat/dark normalisation, -log and "
                     "an automatic rotation centre by default (--no-preprocess, --no-flat-dark, "
                     "--no-log, --no-zingers, --center X)")
    else:
        lines.append("  phasekit reconstruct: read as line integrals, rotation axis at the "
                     "detector centre (--center auto|X to change)")
    return lines
