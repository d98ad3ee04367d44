"""Single-particle imaging (SPI) stacks: many diffraction patterns of one detector in one HDF5 file.

Layout written by :class:`StackWriter` (CXI 1.5, Maia 2012; readable by any CXI reader)::

    /cxi_version                                   150
    /entry_1/instrument_1/detector_1/data          (N, H, W) float32 photon counts, chunked by frames
    /entry_1/instrument_1/detector_1/mask          (H, W) uint32 CXI bit field (0 = good pixel)
    /entry_1/instrument_1/detector_1/distance      metres; x_pixel_size, y_pixel_size metres
    /entry_1/instrument_1/detector_1/corner_position  (x, y, z) of pixel (0, 0) from the beam, metres
    /entry_1/instrument_1/source_1/energy          joules; wavelength metres
    /entry_1/data_1/data                           soft link to the detector data
    /entry_1/sample_1/labels                       (N,) int8: 1 single hit, 0 not, -1 unknown
    /entry_1/phasekit_spi/<name>                   (N, ...) per-pattern metadata (diameter_m,
                                                   quaternion, photons, subclass, centre_px, seed...)
    /entry_1/phasekit_spi   attribute "params"     JSON: geometry and simulation settings

Stacks accepted by :func:`read_stack_info` (frames of shape (N, H, W), looked for in this order):

* ``entry_1/data_1/data`` or ``entry_1/instrument_1/detector_K/data`` (CXI; other ``entry_N`` too);
* ``photonConverter/pnccdBack/photonCount`` and ``photonConverter/pnccdFront/photonCount``
  (the LCLS/Cheetah layout of the CXIDB ID 58 PR772 files, as read by Dragonfly's
  ``config_amo86615.ini``), see :func:`import_cxidb_stack`.

The mask is read from ``entry_1/instrument_1/detector_1/mask`` (or ``mask_shared``) or
``entry_1/data_1/mask`` in the CXI convention (nonzero = bad, converted to True = measured);
labels from ``entry_1/sample_1/labels`` or ``entry_1/phasekit_spi/label``.

Frames are read slice by slice (:func:`read_frames`), so a worker reads only its chunk straight
from the shared file and 10^5 patterns never sit in memory.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError, InputError
from .arrays import dumps_json
from .atomic import atomic_write
from .cxi_common import (
    _ENERGY_UNITS,
    _LENGTH_UNITS,
    HC,
    _cxi_entry,
    _entries,
    _existing_file,
    _get,
    _h5py,
    _is_dataset,
    _is_group,
    _json_or_none,
    _scalar,
    _sniff,
    _to_bitfield,
    _to_str,
    reading_hdf5,
)

__all__ = [
    "FRAME_PATHS",
    "LABEL_PATHS",
    "SpiStackInfo",
    "StackWriter",
    "describe_stack",
    "import_cxidb_stack",
    "is_spi_stack",
    "read_frames",
    "read_labels",
    "read_masks",
    "read_pattern_metadata",
    "read_stack_info",
    "write_stack",
]

#: where frames are looked for (after every ``entry_N``'s ``data_M/data`` and ``detector_K/data``)
FRAME_PATHS = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data",
               "photonConverter/pnccdBack/photonCount", "photonConverter/pnccdFront/photonCount")
#: where per-pattern labels are looked for (1 = single hit, 0 = not, -1 = unknown)
LABEL_PATHS = ("entry_1/sample_1/labels", "entry_1/phasekit_spi/label",
               "entry_1/phasekit_spi/labels")
#: the group holding per-pattern metadata and the JSON ``params`` attribute
SPI_GROUP = "entry_1/phasekit_spi"

_MASK_NAMES = ("mask", "mask_shared")


@dataclass
class SpiStackInfo:
    """What a stack holds, read without its frames (:func:`read_stack_info`).

    Attributes
    ----------
    path : pathlib.Path
        The file.
    n : int
        Number of patterns.
    shape : tuple of int
        (H, W) of one pattern.
    dataset : str
        HDF5 path of the frames as found (a soft link such as ``entry_1/data_1/data`` is
        named, not resolved).
    mask : numpy.ndarray of bool or None
        (H, W), True = measured pixel.
    labels : numpy.ndarray of int or None
        (N,): 1 single hit, 0 not a single hit, -1 unknown.
    metadata : dict
        ``wavelength``, ``distance``, ``pixel_size`` (metres, None when unknown), the JSON
        ``params`` of the writer (simulation settings, class mix...), ``per_pattern`` (names of
        the per-pattern arrays, read with :func:`read_pattern_metadata`), ``format``
        (``"cxi"`` or ``"lcls-pnccd"``), ``dtype`` of the stored frames and ``warnings``.
    centre : tuple of float or None
        Nominal beam centre (y, x) in pixels, from the writer's ``params`` or the CXI
        ``corner_position``; None when unknown.
    """

    path: Path
    n: int
    shape: tuple[int, int]
    dataset: str
    mask: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    metadata: dict = field(default_factory=dict, repr=False)
    centre: tuple[float, float] | None = None

    @property
    def wavelength(self) -> float | None:
        return self.metadata.get("wavelength")

    @property
    def distance(self) -> float | None:
        return self.metadata.get("distance")

    @property
    def pixel_size(self) -> float | None:
        return self.metadata.get("pixel_size")


# --------------------------------------------------------------------------- reading
def _frame_candidates(f) -> list[str]:
    out: list[str] = []
    for e in _entries(f) or ["entry_1"]:
        eg = _get(f, e)
        if not _is_group(eg):
            continue
        datas = sorted(k for k in eg.keys() if k.startswith("data_"))
        out += [f"{e}/{d}/data" for d in datas]
        for ins in sorted(k for k in eg.keys() if k.startswith("instrument_")):
            ig = _get(eg, ins)
            if _is_group(ig):
                out += [f"{e}/{ins}/{d}/data" for d in sorted(ig.keys())
                        if d.startswith("detector_")]
    for p in FRAME_PATHS:
        if p not in out:
            out.append(p)
    return out


def _find_frames(f, p: Path) -> str:
    tried = _frame_candidates(f)
    for path in tried:
        if _is_dataset(_get(f, path)):
            return path
    raise FileFormatError(f"{p}: no pattern stack found (looked for "
                          + ", ".join(f"/{t}" for t in tried[:6]) + ")")


def _read_mask(f, p: Path, frames_path: str, shape) -> tuple[np.ndarray | None, str | None]:
    parent = frames_path.rpartition("/")[0]
    entry = frames_path.split("/")[0]
    groups = [parent]
    for e in (entry, "entry_1"):
        for g in (f"{e}/instrument_1/detector_1", f"{e}/data_1"):
            if g not in groups:
                groups.append(g)
    if frames_path.startswith("photonConverter/"):
        groups.append(parent)
    for g in groups:
        for name in _MASK_NAMES:
            ds = _get(f, f"{g}/{name}")
            if not _is_dataset(ds):
                continue
            if ds.dtype.kind not in "biuf":
                raise FileFormatError(f"{p}: mask /{g}/{name} has non-numeric dtype {ds.dtype}")
            m = np.asarray(ds[()])
            if m.ndim == 3 and m.shape[0] >= 1:  # a per-frame mask: keep the first frame's
                m = m[0]
            if m.shape != tuple(shape):
                raise FileFormatError(f"{p}: mask /{g}/{name} shape {m.shape} != pattern "
                                      f"shape {tuple(shape)}")
            return m == 0, f"{g}/{name}"
    return None, None


def _read_labels(f, p: Path, n: int) -> np.ndarray | None:
    for path in LABEL_PATHS:
        ds = _get(f, path)
        if not _is_dataset(ds):
            continue
        if ds.dtype.kind not in "biu" and ds.dtype.kind != "f":
            raise FileFormatError(f"{p}: labels /{path} have dtype {ds.dtype}; expected integers")
        lab = np.asarray(ds[()]).ravel()
        if lab.shape[0] != n:
            raise FileFormatError(f"{p}: labels /{path} hold {lab.shape[0]} values for {n} "
                                  "patterns")
        if lab.dtype.kind == "f" and not np.all(np.isfinite(lab)):
            raise FileFormatError(f"{p}: labels /{path} hold non-finite values")
        lab = lab.astype(np.int64)
        bad = ~np.isin(lab, (-1, 0, 1))
        if bad.any():
            raise FileFormatError(f"{p}: labels /{path} hold {int(bad.sum())} values other than "
                                  "1 (single hit), 0 (not) and -1 (unknown)")
        return lab
    return None


def _geometry(f, frames_path: str, warnings: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"wavelength": None, "distance": None, "pixel_size": None}
    entry = frames_path.split("/")[0]
    dets = [frames_path.rpartition("/")[0], f"{entry}/instrument_1/detector_1"]
    for g in dets:
        d = _get(f, f"{g}/distance")
        if out["distance"] is None and _is_dataset(d):
            out["distance"] = _scalar(d, _LENGTH_UNITS, warnings)
        for name in ("x_pixel_size", "y_pixel_size", "pixel_size"):
            px = _get(f, f"{g}/{name}")
            if out["pixel_size"] is None and _is_dataset(px):
                out["pixel_size"] = _scalar(px, _LENGTH_UNITS, warnings)
        cp = _get(f, f"{g}/corner_position")
        if "corner_position" not in out and _is_dataset(cp) and cp.dtype.kind in "iuf":
            c = np.asarray(cp[()], dtype=np.float64).ravel()
            if c.size >= 2 and np.all(np.isfinite(c)):
                out["corner_position"] = [float(v) for v in c[:3]]
    # wavelength: CXI source, then LCLS-style photon energy in eV
    for base in (f"{entry}/instrument_1/source_1", "entry_1/instrument_1/source_1", "LCLS", ""):
        if out["wavelength"] is not None:
            break
        for name in ("wavelength", "incident_wavelength"):
            w = _get(f, f"{base}/{name}" if base else name)
            if _is_dataset(w):
                out["wavelength"] = _scalar(w, _LENGTH_UNITS, warnings)
                if out["wavelength"] is not None:
                    break
        if out["wavelength"] is not None:
            break
        for name, table in (("energy", _ENERGY_UNITS), ("photon_energy", _ENERGY_UNITS),
                            ("photon_energy_eV", {"": 1.0})):
            ds = _get(f, f"{base}/{name}" if base else name)
            if not _is_dataset(ds):
                continue
            if name == "photon_energy_eV" or (name == "photon_energy"
                                              and not _to_str(ds.attrs.get("units"))):
                # LCLS stores eV without a units attribute; per-shot values are averaged
                if ds.dtype.kind not in "iuf":
                    continue
                v = np.asarray(ds[()], dtype=np.float64).ravel()
                v = v[np.isfinite(v) & (v > 0)]
                if v.size:
                    out["wavelength"] = HC / (float(v.mean()) * 1.602176634e-19)
                    break
            else:
                e = _scalar(ds, table, warnings)
                if e is not None:
                    out["wavelength"] = HC / e
                    break
    return out


def _resolve_info(path_or_info) -> SpiStackInfo:
    if isinstance(path_or_info, SpiStackInfo):
        return path_or_info
    return read_stack_info(path_or_info)


def read_stack_info(path) -> SpiStackInfo:
    """Describe an SPI stack without reading its frames.

    Parameters
    ----------
    path : str or os.PathLike
        A CXI/HDF5 file with frames of shape (N, H, W) (see the module notes for the paths).

    Returns
    -------
    SpiStackInfo
        Count, pattern shape, frames path, mask (True = measured), labels, geometry and
        writer parameters, nominal centre.

    Raises
    ------
    FileFormatError
        Missing or non-HDF5 file, no stack, frames not 3-D or not numeric, a mask or labels of
        the wrong shape (one line naming the dataset).

    Examples
    --------
    >>> info = read_stack_info("pr772_sim.cxi")  # doctest: +SKIP
    >>> info.n, info.shape, info.dataset  # doctest: +SKIP
    (497, (128, 128), 'entry_1/data_1/data')
    """
    p = _existing_file(path)
    if _sniff(p) != "hdf5":
        raise FileFormatError(f"{p}: not an HDF5/CXI file (an SPI stack is HDF5)")
    warnings: list[str] = []
    with reading_hdf5(p, "SPI stack") as f:
        dpath = _find_frames(f, p)
        ds = f[dpath]
        if ds.ndim != 3:
            raise FileFormatError(f"{p}: /{dpath} has shape {ds.shape}; an SPI stack needs "
                                  "(N, H, W) frames")
        if ds.dtype.kind not in "biuf":
            raise FileFormatError(f"{p}: /{dpath} has dtype {ds.dtype}; expected real numbers")
        n, h, w = (int(s) for s in ds.shape)
        if h < 2 or w < 2:
            raise FileFormatError(f"{p}: /{dpath} has shape {ds.shape}; patterns of at least "
                                  "2 x 2 pixels expected")
        mask, mask_path = _read_mask(f, p, dpath, (h, w))
        labels = _read_labels(f, p, n)
        meta = _geometry(f, dpath, warnings)
        meta["format"] = "lcls-pnccd" if dpath.startswith("photonConverter/") else "cxi"
        meta["dtype"] = str(ds.dtype)
        if mask_path:
            meta["mask_path"] = mask_path
        per = []
        g = _get(f, SPI_GROUP)
        params: dict = {}
        if _is_group(g):
            raw = g.attrs.get("params")
            if raw is not None:
                loaded = _json_or_none(raw)
                params = loaded if isinstance(loaded, dict) else {}
            for k in g.keys():
                obj = _get(g, k)
                if _is_dataset(obj) and obj.ndim >= 1 and obj.shape[0] == n:
                    per.append(k)
        meta["params"] = params
        meta["per_pattern"] = sorted(per)
    for k in ("wavelength", "distance", "pixel_size"):
        if meta.get(k) is None and isinstance(params.get(k), (int, float)):
            meta[k] = float(params[k])
    centre = None
    c = params.get("centre")
    if isinstance(c, (list, tuple)) and len(c) == 2:
        centre = (float(c[0]), float(c[1]))
    elif "corner_position" in meta and meta.get("pixel_size"):
        cx, cy = meta["corner_position"][:2]
        centre = (-cy / meta["pixel_size"], -cx / meta["pixel_size"])
    if warnings:
        meta["warnings"] = warnings
    return SpiStackInfo(path=p, n=n, shape=(h, w), dataset=dpath, mask=mask, labels=labels,
                        metadata=meta, centre=centre)


def _check_range(info: SpiStackInfo, start, stop) -> tuple[int, int]:
    start = 0 if start is None else int(start)
    stop = info.n if stop is None else int(stop)
    if not (0 <= start <= stop <= info.n):
        raise InputError(f"{info.path}: pattern range [{start}, {stop}) outside the stack's "
                         f"{info.n} patterns")
    return start, stop


def read_frames(path_or_info, start: int | None = None, stop: int | None = None) -> np.ndarray:
    """Read patterns ``start:stop`` of a stack (only that slice is read from the file).

    Parameters
    ----------
    path_or_info : str, os.PathLike or SpiStackInfo
        The stack (an :class:`SpiStackInfo` saves looking the layout up again).
    start, stop : int, optional
        Half-open range of pattern indices; default the whole stack.

    Returns
    -------
    numpy.ndarray
        float32, shape (stop - start, H, W).

    Examples
    --------
    >>> info = read_stack_info("pr772_sim.cxi")  # doctest: +SKIP
    >>> read_frames(info, 16, 32).shape  # doctest: +SKIP
    (16, 128, 128)
    """
    info = _resolve_info(path_or_info)
    start, stop = _check_range(info, start, stop)
    with reading_hdf5(_existing_file(info.path), "SPI stack") as f:
        ds = _get(f, info.dataset)
        if not _is_dataset(ds) or ds.ndim != 3 or tuple(ds.shape[1:]) != info.shape:
            raise FileFormatError(f"{info.path}: /{info.dataset} changed since it was described")
        if stop > ds.shape[0]:
            raise FileFormatError(f"{info.path}: /{info.dataset} holds {ds.shape[0]} patterns, "
                                  f"fewer than {stop}")
        out = np.empty((stop - start, *info.shape), dtype=np.float32)
        if stop > start and ds.dtype == np.float32:
            ds.read_direct(out, np.s_[start:stop])
        elif stop > start:
            out[...] = ds[start:stop]
    return out


def read_masks(path_or_info, start: int | None = None, stop: int | None = None) -> np.ndarray:
    """Masks (stop - start, H, W) bool, True = measured, of patterns ``start:stop``.

    A stack whose patterns each have their own mask (preprocessed stacks, cropped about each
    pattern's centre) stores them as the per-pattern array ``pattern_mask`` (1 = measured); the
    stack's detector mask otherwise applies to every pattern (all True without one).

    Examples
    --------
    >>> read_masks("pr772_sim.cxi", 0, 4).shape  # doctest: +SKIP
    (4, 128, 128)
    """
    info = _resolve_info(path_or_info)
    start, stop = _check_range(info, start, stop)
    if "pattern_mask" in info.metadata.get("per_pattern", []):
        return read_pattern_metadata(info, "pattern_mask", start, stop) != 0
    m = np.ones(info.shape, dtype=bool) if info.mask is None else info.mask
    return np.broadcast_to(m, (stop - start, *info.shape)).copy()


def read_labels(path_or_info) -> np.ndarray | None:
    """The stack's labels (N,) (1 single hit, 0 not, -1 unknown), or None when it has none.

    Examples
    --------
    >>> read_labels("pr772_sim.cxi")[:4]  # doctest: +SKIP
    array([1, 0, 1, 1])
    """
    return _resolve_info(path_or_info).labels


def read_pattern_metadata(path_or_info, name: str, start: int | None = None,
                          stop: int | None = None) -> np.ndarray:
    """Read the per-pattern array ``name`` (``entry_1/phasekit_spi/<name>``) for ``start:stop``.

    Examples
    --------
    >>> read_pattern_metadata("pr772_sim.cxi", "diameter_m", 0, 3)  # doctest: +SKIP
    array([6.9e-08, 7.2e-08, 7.0e-08])
    """
    info = _resolve_info(path_or_info)
    start, stop = _check_range(info, start, stop)
    if name not in info.metadata.get("per_pattern", []):
        have = ", ".join(info.metadata.get("per_pattern", [])) or "none"
        raise FileFormatError(f"{info.path}: no per-pattern array {name!r} (has: {have})")
    with reading_hdf5(_existing_file(info.path), "SPI stack") as f:
        return np.asarray(f[f"{SPI_GROUP}/{name}"][start:stop])


def is_spi_stack(path) -> bool:
    """True when ``path`` is an HDF5 file holding a phasekit SPI stack or an LCLS pnCCD stack.

    (A generic CXI file with 3-D data may be a 3-D CDI volume: only files with (N, H, W) frames
    and the ``entry_1/phasekit_spi`` group, labels or the LCLS ``photonConverter`` layout
    count.)

    Examples
    --------
    >>> is_spi_stack("pr772_sim.cxi")  # doctest: +SKIP
    True
    """
    try:
        p = _existing_file(path)
        if _sniff(p) != "hdf5":
            return False
        with reading_hdf5(p) as f:
            marked = (_is_group(_get(f, SPI_GROUP)) or _is_group(_get(f, "photonConverter"))
                      or _is_dataset(_get(f, LABEL_PATHS[0])))
            if not marked:
                return False
            for path_ in _frame_candidates(f):
                ds = _get(f, path_)
                if _is_dataset(ds):
                    return ds.ndim == 3
            return False
    except (FileFormatError, OSError):
        return False


def describe_stack(path) -> str:
    """The ``phasekit info`` summary of an SPI stack.

    Examples
    --------
    >>> print(describe_stack("pr772_sim.cxi"))  # doctest: +SKIP
    file: pr772_sim.cxi (CXI 1.5, 12.3 MiB, written by phasekit 0.1.0)
    SPI stack: 497 patterns of 256 x 256 (entry_1/data_1/data, float32)
    ...
    """
    from .describe import file_line

    info = read_stack_info(path)
    p = info.path
    with reading_hdf5(p, "SPI stack") as f:
        version = None
        try:
            version = int(np.asarray(f["cxi_version"][()]).ravel()[0]) if "cxi_version" in f \
                else None
        except (TypeError, ValueError, IndexError, KeyError):
            version = None
        creator = _to_str(f.attrs.get("creator"))
    fmt = f"CXI {version // 100}.{version % 100 // 10}" if version and version > 0 else "HDF5"
    if info.metadata["format"] == "lcls-pnccd":
        fmt = "HDF5, LCLS pnCCD layout"
    if creator:
        fmt += f", written by {creator}"
    md = info.metadata
    lines = [file_line(p, fmt),
             f"SPI stack: {info.n} patterns of {info.shape[0]} x {info.shape[1]} "
             f"(/{info.dataset}, stored {md.get('dtype')})"]
    geo = []
    lam = md.get("wavelength")
    geo.append(f"wavelength {lam:.4g} m ({HC / lam / 1.602176634e-19:.4g} eV)" if lam
               else "wavelength unknown")
    geo.append(f"distance {md['distance']:.4g} m" if md.get("distance") else "distance unknown")
    geo.append(f"pixel size {md['pixel_size']:.4g} m" if md.get("pixel_size")
               else "pixel size unknown")
    if info.centre is not None:
        geo.append(f"beam centre ({info.centre[0]:.1f}, {info.centre[1]:.1f}) px")
    lines.append("  geometry: " + ", ".join(geo))
    if info.mask is None:
        per_mask = "pattern_mask" in md.get("per_pattern", [])
        lines.append("  mask: " + ("one per pattern (pattern_mask)" if per_mask
                                   else "none (all pixels measured)"))
    else:
        lines.append(f"  mask: {int(info.mask.sum())} of {info.mask.size} pixels measured "
                     f"[{md.get('mask_path')}]")
    if info.labels is None:
        lines.append("  labels: none")
    else:
        lab = info.labels
        lines.append(f"  labels: {int((lab == 1).sum())} single hits, {int((lab == 0).sum())} "
                     f"not, {int((lab == -1).sum())} unknown")
    params = md.get("params") or {}
    if params.get("generator") == "phasekit.spi.simulate":
        model = params.get("model") or {}
        cc = params.get("class_counts") or {}
        ph = params.get("photons") or []
        ph_s = (f"{ph[0]:.3g}" if len(ph) == 2 and ph[0] == ph[1]
                else "-".join(f"{v:.3g}" for v in ph))
        lines.append(f"  simulation: {model.get('model', '?')} "
                     f"{float(params.get('diameter_m', 0)) * 1e9:.4g} nm, "
                     + ", ".join(f"{k} {v}" for k, v in cc.items())
                     + f"; photons {ph_s} per single hit; seed {params.get('seed')}")
    elif params.get("generator") == "phasekit.spi.preprocess":
        pre = params.get("preprocess") or {}
        lines.append("  preprocessed: " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in pre.items() if v not in (None, False)))
    elif params.get("source"):
        lines.append(f"  imported from {params['source']} (/{params.get('source_dataset')})")
    if info.n == 0:
        lines.append("  photons per pattern: (empty stack)")
    elif "photons" in md.get("per_pattern", []):
        ph = read_pattern_metadata(info, "photons")
        lines.append(f"  photons per pattern: median {float(np.median(ph)):.4g}, "
                     f"min {float(ph.min()):.4g}, max {float(ph.max()):.4g}")
    elif info.n:
        k = min(info.n, 64)
        fr = read_frames(info, 0, k)
        tot = fr.reshape(k, -1).sum(axis=1, dtype=np.float64)
        lines.append(f"  photons per pattern (first {k}): median {float(np.median(tot)):.4g}, "
                     f"min {float(tot.min()):.4g}, max {float(tot.max()):.4g}")
    if md.get("per_pattern"):
        lines.append("  per-pattern arrays: " + ", ".join(md["per_pattern"]))
    for w in md.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing
class StackWriter:
    """Write an SPI stack chunk by chunk, atomically.

    Frames are appended in blocks (:meth:`append`), so a stack of 10^5 patterns never sits in
    memory.  The file is written under a temporary name in the destination folder and renamed
    onto ``path`` when the ``with`` block ends normally; an exception (or Ctrl-C) removes the
    temporary file and leaves no half file under ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (``.cxi`` by convention).
    shape : tuple of int
        (H, W) of one pattern.
    mask : array_like of bool, optional
        (H, W), True = measured; stored as a CXI bit field (0 = good).
    metadata : dict, optional
        ``wavelength``, ``distance``, ``pixel_size`` (metres) go to the CXI geometry; ``centre``
        ((y, x) pixels) also to ``corner_position``; everything (JSON-able) is kept as the
        ``params`` attribute of ``entry_1/phasekit_spi``.
    chunk : int, optional
        Frames per HDF5 chunk (default 1: any pattern is read alone cheaply).
    compression : int or None, optional
        gzip level (default 4; None = uncompressed).

    Examples
    --------
    >>> with StackWriter("out.cxi", (64, 64), metadata={"wavelength": 7.75e-10}) as w:  # doctest: +SKIP
    ...     w.append(frames, labels=[1, 0], diameter_m=[7e-8, 7.1e-8])
    """

    def __init__(self, path, shape, *, mask=None, metadata: dict | None = None, chunk: int = 1,
                 compression: int | None = 4):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or min(shape) < 2:
            raise InputError(f"stack pattern shape {shape}: expected (H, W) with H, W >= 2")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != shape:
                raise InputError(f"mask shape {mask.shape} != pattern shape {shape}")
            mask = mask.astype(bool)
        if int(chunk) < 1:
            raise InputError(f"chunk must be >= 1, got {chunk}")
        self.path = Path(os.fspath(path))
        self.shape = shape
        self.mask = mask
        self.metadata = dict(metadata or {})
        self.chunk = int(chunk)
        self.compression = compression
        self.n = 0
        self._stack: contextlib.ExitStack | None = None
        self._f = None
        self._per: dict[str, Any] = {}
        self._labels = None

    # context manager ----------------------------------------------------------------
    def __enter__(self) -> StackWriter:
        h5py = _h5py()
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_write(self.path))
            self._f = stack.enter_context(h5py.File(tmp, "w"))
            self._layout()
        except BaseException:
            stack.__exit__(*sys.exc_info())
            raise
        self._stack = stack
        return self

    def __exit__(self, et, ev, tb):
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        if et is None:
            try:
                self._finish()
            except BaseException:
                stack.__exit__(*sys.exc_info())
                raise
        return stack.__exit__(et, ev, tb)

    # layout -----------------------------------------------------------------------------
    def _layout(self) -> None:
        h5py = _h5py()
        f = self._f
        entry = _cxi_entry(f)
        ins = entry.create_group("instrument_1")
        ins.attrs["NX_class"] = "NXinstrument"
        det = ins.create_group("detector_1")
        det.attrs["NX_class"] = "NXdetector"
        h, w = self.shape
        kw: dict[str, Any] = {"chunks": (self.chunk, h, w), "maxshape": (None, h, w)}
        if self.compression is not None:
            kw.update(compression="gzip", compression_opts=int(self.compression), shuffle=True)
        self._data = det.create_dataset("data", shape=(0, h, w), dtype=np.float32, **kw)
        self._data.attrs["axes"] = "experiment_identifier:y:x"
        if self.mask is not None:
            ds = det.create_dataset("mask", data=_to_bitfield(self.mask))
            ds.attrs["description"] = "CXI bad-pixel bit field: 0 = good, bit 0 = invalid"
        md = self.metadata
        px = md.get("pixel_size")
        if md.get("distance") is not None:
            det.create_dataset("distance", data=float(md["distance"])).attrs["units"] = "m"
        if px is not None:
            det.create_dataset("x_pixel_size", data=float(px)).attrs["units"] = "m"
            det.create_dataset("y_pixel_size", data=float(px)).attrs["units"] = "m"
            c = md.get("centre")
            if c is not None and md.get("distance") is not None:
                corner = [-float(c[1]) * px, -float(c[0]) * px, float(md["distance"])]
                det.create_dataset("corner_position", data=np.array(corner)).attrs["units"] = "m"
        if md.get("wavelength") is not None:
            src = ins.create_group("source_1")
            src.attrs["NX_class"] = "NXsource"
            lam = float(md["wavelength"])
            src.create_dataset("energy", data=HC / lam).attrs["units"] = "J"
            src.create_dataset("wavelength", data=lam).attrs["units"] = "m"
        d1 = entry.create_group("data_1")
        d1.attrs["NX_class"] = "NXdata"
        d1.attrs["signal"] = "data"
        d1["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        self._group = entry.create_group("phasekit_spi")
        self._group.attrs["params"] = dumps_json(md)
        self._entry = entry

    def _per_dataset(self, name: str, a: np.ndarray):
        ds = self._per.get(name)
        if ds is None:
            if self.n:
                raise InputError(f"per-pattern array {name!r} first given after {self.n} "
                                 "patterns; give every per-pattern array with every block")
            ds = self._group.create_dataset(name, shape=(0, *a.shape[1:]), dtype=a.dtype,
                                            maxshape=(None, *a.shape[1:]),
                                            chunks=(max(1, min(4096, 65536 // max(1, a[0].size))),
                                                    *a.shape[1:]))
            self._per[name] = ds
        elif ds.shape[1:] != a.shape[1:]:
            raise InputError(f"per-pattern array {name!r}: block shape {a.shape[1:]} != "
                             f"{ds.shape[1:]} of the earlier blocks")
        return ds

    def append(self, frames, labels=None, **per_pattern) -> None:
        """Append a block of B patterns (B, H, W), their labels (B,) and per-pattern arrays.

        Parameters
        ----------
        frames : array_like
            (B, H, W) (or one (H, W) pattern); stored as float32.
        labels : array_like of int, optional
            (B,) 1 single hit, 0 not, -1 unknown.  Give labels with every block or with none.
        **per_pattern : array_like
            Arrays of leading length B (``diameter_m``, ``quaternion`` (B, k, 4)...), stored
            under ``entry_1/phasekit_spi/<name>``; the same names with every block.
        """
        if self._f is None:
            raise InputError("StackWriter.append outside its with block")
        a = np.asarray(frames, dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[1:] != self.shape:
            raise InputError(f"frames shape {a.shape} != (B, {self.shape[0]}, {self.shape[1]})")
        b = a.shape[0]
        if b == 0:
            return
        blocks: dict[str, np.ndarray] = {}
        for k, v in per_pattern.items():
            v = np.asarray(v)
            if v.ndim == 0 or v.shape[0] != b:
                raise InputError(f"per-pattern array {k!r} has shape {v.shape}; expected a "
                                 f"leading length {b}")
            if v.dtype.kind not in "biuf":
                raise InputError(f"per-pattern array {k!r} has dtype {v.dtype}; numbers only")
            blocks[k] = v
        missing = set(self._per) - set(blocks)
        if self.n and missing:
            raise InputError(f"per-pattern arrays {sorted(missing)} missing from this block")
        if labels is not None:
            lab = np.asarray(labels).astype(np.int8).ravel()
            if lab.shape[0] != b:
                raise InputError(f"labels length {lab.shape[0]} != {b} patterns")
            if self._labels is None:
                if self.n:
                    raise InputError("labels first given after the first block")
                self._labels = self._entry.create_group("sample_1").create_dataset(
                    "labels", shape=(0,), dtype=np.int8, maxshape=(None,), chunks=(4096,))
                self._labels.attrs["description"] = "1 = single hit, 0 = not, -1 = unknown"
        elif self._labels is not None:
            raise InputError("labels missing from this block (given with earlier blocks)")
        dsets = {k: self._per_dataset(k, v) for k, v in blocks.items()}
        n0, n1 = self.n, self.n + b
        self._data.resize(n1, axis=0)
        self._data[n0:n1] = a
        for k, v in blocks.items():
            dsets[k].resize(n1, axis=0)
            dsets[k][n0:n1] = v
        if labels is not None:
            self._labels.resize(n1, axis=0)
            self._labels[n0:n1] = lab
        self.n = n1

    def _finish(self) -> None:
        self._group.attrs["n_patterns"] = self.n


def write_stack(path, frames, *, mask=None, labels=None, metadata=None, **per_pattern) -> Path:
    """Write an in-memory stack (N, H, W) at once (a convenience over :class:`StackWriter`).

    Examples
    --------
    >>> write_stack("small.cxi", np.zeros((4, 32, 32)), labels=[1, 0, 1, 0])  # doctest: +SKIP
    PosixPath('small.cxi')
    """
    a = np.asarray(frames)
    if a.ndim != 3:
        raise InputError(f"frames shape {a.shape}: expected (N, H, W)")
    with StackWriter(path, a.shape[1:], mask=mask, metadata=metadata) as w:
        w.append(a, labels=labels, **per_pattern)
    return Path(os.fspath(path))


# --------------------------------------------------------------------------- importer
def import_cxidb_stack(src, dst, *, detector: str = "back", start: int | None = None,
                       stop: int | None = None, block: int = 256, distance: float | None = None,
                       pixel_size: float | None = None, wavelength: float | None = None,
                       progress: bool = False) -> Path:
    """Copy a CXIDB-style pnCCD stack (e.g. CXIDB ID 58, PR772 at LCLS AMO) into phasekit's layout.

    Reads frames block by block from ``photonConverter/pnccd<Back|Front>/photonCount`` (the
    Cheetah/LCLS layout Dragonfly reads for amo86615) or from any CXI stack
    (``entry_1/data_1/data``...), with the geometry the file holds (CXI ``detector_1/distance``,
    ``x_pixel_size``, ``source_1/energy``; LCLS ``photon_energy_eV`` per shot, averaged).
    Geometry the file lacks can be given here (the amo86615 back detector: 0.586 m, 0.3 mm
    binned pixels, 7.75 Angstrom; :data:`phasekit.spi.detector.AMO86615`).

    Parameters
    ----------
    src, dst : str or os.PathLike
        Source file and the phasekit stack to write (atomically).
    detector : {"back", "front"}
        Which pnCCD of an LCLS file (ignored for CXI layouts).
    start, stop : int, optional
        Pattern range to copy.
    block : int
        Patterns read and written at a time.
    distance, pixel_size, wavelength : float, optional
        Metres; override (or fill in) the file's geometry.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        ``dst``.

    Examples
    --------
    >>> import_cxidb_stack("amo86615_r0182.h5", "r0182.cxi", pixel_size=3e-4)  # doctest: +SKIP
    PosixPath('r0182.cxi')
    """
    p = _existing_file(src)
    det = str(detector).lower()
    if det not in ("back", "front"):
        raise InputError(f"detector {detector!r}: expected 'back' or 'front'")
    info = read_stack_info(p)
    if info.metadata["format"] == "lcls-pnccd":
        want = f"photonConverter/pnccd{det.capitalize()}/photonCount"
        with reading_hdf5(p, "pnCCD file") as f:
            if not _is_dataset(_get(f, want)):
                raise FileFormatError(f"{p}: no dataset /{want}")
            shape = _get(f, want).shape
            if len(shape) != 3:
                raise FileFormatError(f"{p}: /{want} has shape {shape}; expected (N, H, W)")
        if want != info.dataset:
            mask, _ = _read_mask_for(p, want, shape[1:])
            info = SpiStackInfo(path=p, n=int(shape[0]), shape=tuple(shape[1:]), dataset=want,
                                mask=mask, labels=info.labels, metadata=info.metadata,
                                centre=info.centre)
    start, stop = _check_range(info, start, stop)
    meta: dict[str, Any] = {k: info.metadata.get(k) for k in ("wavelength", "distance",
                                                                "pixel_size")}
    for k, v in (("wavelength", wavelength), ("distance", distance), ("pixel_size", pixel_size)):
        if v is not None:
            if not (np.isfinite(v) and v > 0):
                raise InputError(f"{k} must be positive, got {v}")
            meta[k] = float(v)
    meta.update(source=str(p), source_dataset=info.dataset, source_range=[start, stop],
                detector=det, generator="phasekit.io.spi.import_cxidb_stack")
    if info.centre is not None:
        meta["centre"] = list(info.centre)
    labels = info.labels
    from tqdm.auto import tqdm

    with StackWriter(dst, info.shape, mask=info.mask, metadata=meta) as w, \
            tqdm(total=stop - start, unit="pattern", disable=not progress,
                 desc="import") as bar:
        for b0 in range(start, stop, max(1, int(block))):
            b1 = min(stop, b0 + max(1, int(block)))
            fr = read_frames(info, b0, b1)
            w.append(fr, labels=None if labels is None else labels[b0:b1],
                     source_index=np.arange(b0, b1, dtype=np.int64))
            bar.update(b1 - b0)
    return Path(os.fspath(dst))


def _read_mask_for(p: Path, dpath: str, shape):
    with reading_hdf5(p, "pnCCD file") as f:
        return _read_mask(f, p, dpath, shape)
