r"""Ptychography scans in the layouts of other packages: PtyLab HDF5 and PtyPy ``.ptyd``.

Detected from the file's keys (:func:`ptycho_layout`), read into the same
:class:`~phasekit.io.ptycho.PtychoData` as CXI files (:func:`phasekit.io.read_ptycho` calls
these readers), so every command takes them.  CXI files as cdtools writes them (CXI 1.6,
``basis_vectors``) are read by :mod:`phasekit.io.ptycho` itself.

**PtyLab** (``ExperimentalData.loadData`` of PtyLab 0.3, CPM mode; the keys of its
``io/generateSimulationData.py``)::

    ptychogram              (N, Nd, Nd) intensities, zero frequency at Nd//2 (fft2c)
    encoder                 (N, 2) probe positions on the object (row, col), metres
                            ((2, N) is transposed, as PtyLab does)
    wavelength, zo, dxd     metres (scalars or 1-element arrays)
    Nd, No, entrancePupilDiameter, binningFactor, emptyBeam    optional
    orientation             optional, 0-7 (PtyPy's code: 1 flips columns, 2 rows,
                            4 transposes, ...), applied to the frames as PtyLab applies it

**PtyPy** ``.ptyd`` (``ptypy.core.data.PtyScan`` output; ``doc/rst/ptyd.rst``)::

    meta/energy             keV
    meta/distance           m
    meta/psize              detector pixel (scalar or (y, x)), m
    meta/shape, center      frame shape, zero-frequency position (a warning when it is not
                            at shape//2)
    meta/propagation        "farfield" or "nearfield" (kept in ``metadata``)
    meta/weight2d           optional detector weights (0 = bad)
    chunks/<k>/data         (M_k, Ny, Nx) frames, chunks concatenated in numeric order
    chunks/<k>/positions    (M_k, 2) probe positions (y, x), metres
    chunks/<k>/weights      optional (M_k, Ny, Nx) or empty

Both store *probe* positions on the object; phasekit keeps CXI *sample* translations, so they
are stored negated (``translations[:, :2] = -(x, y)``) and
:meth:`~phasekit.io.ptycho.PtychoData.positions_px` returns the file's positions in object
pixels unchanged (shifted so the smallest is 0).

:func:`write_ptylab` writes the PtyLab layout (a scan that PtyLab's ``ExperimentalData``
loads).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError, InputError
from .atomic import atomic_write
from .cxi_common import (
    ELEMENTARY_CHARGE,
    HC,
    _get,
    _h5py,
    _is_dataset,
    _is_group,
    _to_str,
    h5_array,
)
from .ptycho import check_scan_geometry

__all__ = [
    "PTYLAB_REQUIRED",
    "PTYPY_META_REQUIRED",
    "ptycho_layout",
    "read_ptylab",
    "read_ptypy",
    "write_ptylab",
]

#: keys PtyLab's loader requires (CPM)
PTYLAB_REQUIRED = ("ptychogram", "encoder", "wavelength", "zo", "dxd")
#: keys of ``meta`` a far-field ``.ptyd`` needs for a geometry
PTYPY_META_REQUIRED = ("energy", "distance", "psize")


def ptycho_layout(f) -> str | None:
    """The layout of an open HDF5 file: ``"ptylab"``, ``"ptypy"``, ``"cxi"`` or ``None``.

    PtyLab: a ``ptychogram`` dataset at the root; PtyPy: a ``chunks`` group (or a ``meta``
    group beside a ``info`` one); CXI: a frame stack with translations
    (:func:`phasekit.io.ptycho._find_scan`).  A file is given its layout by these marks even
    when required keys are missing, so that the reader can say which ones.
    """
    from .ptycho import _find_scan

    if _is_dataset(_get(f, "ptychogram")):
        return "ptylab"
    if _is_group(_get(f, "chunks")) or (_is_group(_get(f, "meta"))
                                        and _is_group(_get(f, "info"))):
        return "ptypy"
    if _find_scan(f) is not None:
        return "cxi"
    return None


def _scalar_key(f, key: str, p: Path, what: str) -> float:
    a = h5_array(f[key], p, "biuf").astype(np.float64).ravel()
    if a.size < 1 or not np.isfinite(a[0]) or a[0] <= 0:
        raise FileFormatError(f"{p}: {what} {key} must be a positive number, got "
                              f"{a.tolist()[:3]}")
    return float(a[0])


def _orient(frames: np.ndarray, code: int, p: Path) -> np.ndarray:
    """PtyPy's detector orientation code (as PtyLab's ``setOrientation`` applies it)."""
    if code not in range(8):
        raise FileFormatError(f"{p}: orientation {code} is not one of 0-7")
    if code & 4:
        frames = np.swapaxes(frames, -1, -2)
    if code & 1:
        frames = frames[..., ::-1]
    if code & 2:
        frames = frames[..., ::-1, :]
    return np.ascontiguousarray(frames)


def read_ptylab(p: Path, f):
    """Read an open PtyLab HDF5 file (CPM) into :class:`~phasekit.io.ptycho.PtychoData`.

    Raises
    ------
    FileFormatError
        Missing keys (all named), frames that are not a stack, encoder of the wrong shape.
    """
    from .ptycho import PtychoData

    missing = [k for k in PTYLAB_REQUIRED if not _is_dataset(_get(f, k))]
    if missing:
        raise FileFormatError(f"{p}: PtyLab layout (a 'ptychogram' dataset) misses required "
                              f"key(s): {', '.join(missing)} (needs {', '.join(PTYLAB_REQUIRED)})")
    I = h5_array(f["ptychogram"], p, "biuf").astype(np.float32)
    if I.ndim == 2:
        I = I[None]
    if I.ndim != 3 or I.size == 0:
        raise FileFormatError(f"{p}: ptychogram must be a stack (N, Ny, Nx), got shape {I.shape}")
    enc = h5_array(f["encoder"], p, "biuf").astype(np.float64)
    if enc.ndim == 2 and enc.shape[0] == 2 and enc.shape[1] == I.shape[0] and I.shape[0] != 2:
        enc = enc.T
    if enc.shape != (I.shape[0], 2) or not np.isfinite(enc).all():
        raise FileFormatError(f"{p}: encoder shape {enc.shape} does not match "
                              f"{I.shape[0]} frames (expected ({I.shape[0]}, 2) finite metres)")
    wl = _scalar_key(f, "wavelength", p, "PtyLab")
    zo = _scalar_key(f, "zo", p, "PtyLab")
    dxd = _scalar_key(f, "dxd", p, "PtyLab")
    warnings: list[str] = []
    meta: dict = {"layout": "ptylab", "data_path": "ptychogram", "translation_path": "encoder",
                  "warnings": warnings}
    if _is_dataset(_get(f, "orientation")):
        code = int(np.asarray(h5_array(f["orientation"], p, "biuf")).ravel()[0])
        I = _orient(I, code, p)
        meta["orientation"] = code
    if _is_dataset(_get(f, "Nd")):
        nd = int(np.asarray(h5_array(f["Nd"], p, "biuf")).ravel()[0])
        if nd != I.shape[-1]:
            warnings.append(f"Nd = {nd} but the frames are {I.shape[-1]} wide; the frames win")
    for key in ("entrancePupilDiameter", "No", "binningFactor"):
        if _is_dataset(_get(f, key)):
            a = np.asarray(h5_array(f[key], p, "biuf"), dtype=np.float64).ravel()
            if a.size:
                meta[key] = float(a[0])
    if not np.isfinite(I).all():
        raise InputError(f"{p}: {int(np.count_nonzero(~np.isfinite(I)))} NaN or infinite "
                         "value(s) in the ptychogram")
    mask = None
    if (I < 0).any():
        bad = (I < 0).any(axis=0)
        mask = ~bad
        I = np.where(I < 0, 0, I)
        warnings.append(f"{int(bad.sum())} pixels with negative values masked")
    t = np.zeros((len(enc), 3))
    t[:, 0], t[:, 1] = -enc[:, 1], -enc[:, 0]
    return PtychoData(intensities=I, translations=t, wavelength=wl, distance=zo, pixel_size=dxd,
                      mask=mask, metadata=meta, path=str(p), layout="ptylab")


def read_ptypy(p: Path, f):
    """Read an open PtyPy ``.ptyd`` file into :class:`~phasekit.io.ptycho.PtychoData`.

    Raises
    ------
    FileFormatError
        No ``chunks``, chunks without ``data``/``positions``, missing ``meta`` keys (named),
        shapes that do not match.
    """
    from .ptycho import PtychoData

    meta_g = _get(f, "meta")
    missing = [] if _is_group(meta_g) else ["meta"]
    if _is_group(meta_g):
        missing += [f"meta/{k}" for k in PTYPY_META_REQUIRED if not _is_dataset(_get(meta_g, k))]
    chunks = _get(f, "chunks")
    if not _is_group(chunks) or not len(chunks.keys()):
        missing.append("chunks/<k>/data")
    if missing:
        raise FileFormatError(f"{p}: PtyPy .ptyd layout misses required key(s): "
                              f"{', '.join(missing)}")
    names = sorted(chunks.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    frames, positions, weights = [], [], []
    for k in names:
        g = chunks[k]
        lack = [n for n in ("data", "positions") if not _is_dataset(_get(g, n))]
        if not _is_group(g) or lack:
            raise FileFormatError(f"{p}: PtyPy chunk chunks/{k} misses "
                                  f"{', '.join(lack) or 'data, positions'}")
        d = h5_array(g["data"], p, "biuf").astype(np.float32)
        if d.ndim == 2:
            d = d[None]
        pos = h5_array(g["positions"], p, "biuf").astype(np.float64)
        if pos.ndim == 1 and pos.size == 2:
            pos = pos[None]
        if d.ndim != 3 or pos.shape != (d.shape[0], 2):
            raise FileFormatError(f"{p}: chunks/{k}: data {d.shape} and positions {pos.shape} "
                                  "do not match ((M, Ny, Nx) and (M, 2))")
        if frames and d.shape[1:] != frames[0].shape[1:]:
            raise FileFormatError(f"{p}: chunks/{k} frames are {d.shape[1:]}, chunk "
                                  f"{names[0]}'s {frames[0].shape[1:]}")
        frames.append(d)
        positions.append(pos)
        w = _get(g, "weights")
        if _is_dataset(w) and w.size:
            wa = h5_array(w, p, "biuf")
            weights.append(wa.reshape((-1,) + d.shape[1:]) if wa.size % (d.shape[1] * d.shape[2])
                           == 0 else None)
    I = np.concatenate(frames, axis=0)
    pos = np.concatenate(positions, axis=0)
    if I.size == 0 or not np.isfinite(pos).all():
        raise FileFormatError(f"{p}: no frames, or non-finite positions, in chunks")
    warnings: list[str] = []
    energy = float(np.asarray(h5_array(meta_g["energy"], p, "biuf"), np.float64).ravel()[0])
    dist = float(np.asarray(h5_array(meta_g["distance"], p, "biuf"), np.float64).ravel()[0])
    ps = np.asarray(h5_array(meta_g["psize"], p, "biuf"), np.float64).ravel()
    if not (energy > 0 and dist > 0 and ps.size and (ps > 0).all() and np.isfinite(ps).all()):
        raise FileFormatError(f"{p}: meta/energy ({energy} keV), meta/distance ({dist} m) and "
                              f"meta/psize ({ps.tolist()}) must be positive")
    wl = HC / (energy * 1e3 * ELEMENTARY_CHARGE)
    py, px = (float(ps[0]), float(ps[-1]))
    meta: dict = {"layout": "ptypy", "data_path": "chunks/*/data",
                  "translation_path": "chunks/*/positions", "warnings": warnings,
                  "energy_keV": energy}
    if _is_dataset(_get(meta_g, "propagation")):
        meta["propagation"] = _to_str(meta_g["propagation"][()])
    if _is_dataset(_get(meta_g, "center")):
        c = np.asarray(h5_array(meta_g["center"], p, "biuf"), np.float64).ravel()
        want = np.array(I.shape[1:]) // 2
        if c.size == 2 and np.isfinite(c).all() and np.abs(c - want).max() > 0.5:
            warnings.append(f"meta/center {c.tolist()} is not the frame centre {want.tolist()}: "
                            "the frames are used as they are")
    mask = None
    if _is_dataset(_get(meta_g, "weight2d")):
        w2 = h5_array(meta_g["weight2d"], p, "biuf")
        if w2.shape == I.shape[1:]:
            mask = w2 > 0
        else:
            warnings.append(f"meta/weight2d shape {w2.shape} != frame shape {I.shape[1:]}, ignored")
    if weights and all(w is not None for w in weights) and \
            sum(len(w) for w in weights) == len(I):
        w_all = np.concatenate(weights, axis=0) > 0
        common = w_all.all(axis=0)
        if not (w_all == common).all():
            warnings.append("per-frame weights differ; pixels bad in any frame are masked")
        mask = common if mask is None else (mask & common)
    if not np.isfinite(I).all():
        raise InputError(f"{p}: {int(np.count_nonzero(~np.isfinite(I)))} NaN or infinite "
                         "value(s) in the frames")
    if (I < 0).any():
        bad = (I < 0).any(axis=0)
        mask = ~bad if mask is None else (mask & ~bad)
        I = np.where(I < 0, 0, I)
        warnings.append(f"{int(bad.sum())} pixels with negative values masked")
    t = np.zeros((len(pos), 3))
    t[:, 0], t[:, 1] = -pos[:, 1], -pos[:, 0]
    return PtychoData(intensities=I, translations=t, wavelength=wl, distance=dist, pixel_size=px,
                      y_pixel_size=py, mask=mask, metadata=meta, path=str(p), layout="ptypy")


def write_ptylab(path, intensities, positions, *, wavelength: float, distance: float,
                 pixel_size: float, object_pixel: float | None = None,
                 probe_diameter: float | None = None, origin=None) -> Path:
    """Write a scan in PtyLab's HDF5 layout (CPM), atomically.

    Parameters
    ----------
    intensities : (N, Nd, Nd) centred frames.
    positions : (N, 2) probe positions in object pixels (row, col); stored as ``encoder``
        (metres, centred on their mean, as PtyLab's own files are).
    wavelength, distance, pixel_size : metres (``zo``, ``dxd``).
    object_pixel : float, optional
        Object pixel in metres (default the far-field ``wavelength zo / (Nd dxd)``).
    probe_diameter : float, optional
        ``entrancePupilDiameter`` in metres.
    origin : (float, float), optional
        Pixel position stored as encoder 0 (default: the mean position).  PtyLab places the
        probe at ``round(encoder / dxo) + No // 2 - Np // 2``, so ``origin = (No // 2 - Np //
        2,) * 2`` makes its object grid of ``No`` pixels coincide with the positions' grid.

    Examples
    --------
    >>> write_ptylab("scan_ptylab.hdf5", I, pos, wavelength=1e-10, distance=2.0,
    ...              pixel_size=75e-6)  # doctest: +SKIP
    """
    I = np.asarray(intensities, dtype=np.float32)
    if I.ndim != 3 or I.shape[1] != I.shape[2]:
        raise InputError(f"PtyLab frames must be square (N, Nd, Nd), got shape {I.shape}")
    pos = check_scan_geometry(I, positions, wavelength, distance, pixel_size)
    dxo = object_pixel or wavelength * distance / (I.shape[1] * pixel_size)
    enc = (pos - (pos.mean(axis=0) if origin is None else np.asarray(origin, float))) * dxo
    h5py = _h5py()
    p = Path(os.fspath(path))
    with atomic_write(p) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("ptychogram", data=I)
            f.create_dataset("encoder", data=enc.astype(np.float32))
            f.create_dataset("wavelength", data=(float(wavelength),), dtype="f")
            f.create_dataset("zo", data=(float(distance),), dtype="f")
            f.create_dataset("dxd", data=(float(pixel_size),), dtype="f")
            f.create_dataset("Nd", data=(I.shape[1],), dtype="i")
            f.create_dataset("No", data=(int(np.ceil(np.ptp(pos, axis=0).max())) + 2 * I.shape[1],),
                             dtype="i")
            f.create_dataset("binningFactor", data=(1,), dtype="i")
            f.create_dataset("orientation", data=0)
            if probe_diameter is not None:
                f.create_dataset("entrancePupilDiameter", data=(float(probe_diameter),), dtype="f")
    return p
