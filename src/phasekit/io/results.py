"""CXI (HDF5) reconstruction results: :func:`write_result` and :func:`read_result`.

Layout
------
::

    /cxi_version                                   150
    /entry_1
        image_k/data                               k = 1, 2, ...: the images, best first
        image_k/data_space = "real", data_type = "object"
        image_k/mask                               the support (uint8, 1 = inside), if given
        image_k  attribute rfactor                 R-factor of image k, if given
        image_k/process_1/program                  "phasekit"
        image_k/process_1/version                  phasekit version
        image_k/process_1/date                     ISO 8601 (UTC)
        image_k/process_1/command                  command line (from provenance "command" or
                                                   "argv"), else "phasekit (Python API)"
        image_k/process_1/note/config              config, JSON string
        image_k/process_1/note/provenance          provenance, JSON string
        image_k/process_1/note/timings             timings, JSON string
        image_k/process_1/history/<metric>         one 1-D dataset per metric
        image_k/process_1/history/iteration        iteration numbers (0..n-1 when not given;
                                                   then it carries attribute generated=1)
        instrument_1/detector_1/mask               detector mask used (CXI bit field), if given
        result_1/<name>                            extra_images (any other named arrays)

A single history dict is stored with image 1; a list of dicts gives one per image.  Config,
provenance and timings are stored with every image.  Ptychography results
(:func:`phasekit.io.ptycho.write_ptycho_result`) use the same layout with the probe as
``image_2`` (``data_type = "probe"``).
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError, InputError
from .arrays import as_bool_array, dumps_json, loads_json, to_numpy
from .atomic import atomic_write
from .cxi_common import (
    _cxi_entry,
    _detectors,
    _existing_file,
    _find_data,
    _get,
    _h5py,
    _image_paths,
    _is_dataset,
    _is_group,
    _json_or_none,
    _sniff,
    _to_bitfield,
    _to_str,
    _unknown_format,
    _version,
    _write_array,
    h5_array,
    reading_hdf5,
)

__all__ = ["write_result", "read_result"]


def _per_image(value: Any, n: int, what: str) -> list:
    """Spread ``value`` over ``n`` images: a list of length ``n`` or one value for image 1."""
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple)) and not (what == "support" and _looks_like_array(value)):
        if len(value) != n:
            raise InputError(f"{what} has {len(value)} entries != {n} images")
        return list(value)
    return [value] + [None] * (n - 1) if what == "history" else [value] * n


def _looks_like_array(value: Any) -> bool:
    """A nested list of numbers (an array), as opposed to a list of arrays."""
    return len(value) > 0 and isinstance(value[0], (list, tuple))


def _write_history(proc, history: dict) -> None:
    hg = proc.create_group("history", track_order=True)  # keep the metric order
    lengths = []
    for key, values in history.items():
        name = str(key)
        if not name or "/" in name or name == ".":
            raise InputError(f"history key {key!r} is not a valid HDF5 name")
        try:
            arr = np.asarray(to_numpy(values) if not isinstance(values, list) else values,
                             dtype=np.float64)
            if name == "iteration":
                arr = arr.astype(np.int64)
            hg.create_dataset(name, data=arr)
            lengths.append(arr.shape[0] if arr.ndim else 1)
        except (TypeError, ValueError):
            hg.create_dataset(name, data=dumps_json(values)).attrs["encoding"] = "json"
    if "iteration" not in history and lengths:
        hg.create_dataset("iteration", data=np.arange(max(lengths), dtype=np.int64))
        hg["iteration"].attrs["generated"] = 1


def write_result(
    path: str | os.PathLike,
    *,
    images: Any,
    support: Any = None,
    history: dict | list | None = None,
    config: Any = None,
    provenance: Any = None,
    timings: Any = None,
    rfactors: Any = None,
    extra_images: dict | None = None,
    mask: Any = None,
) -> Path:
    """Write reconstruction results as a CXI file, atomically (layout in the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; parent folders are created.
    images : list of array_like
        The reconstructed images, best first (a single array is one image).  Each becomes
        ``entry_1/image_k/data`` with its dtype (complex64 typically).
    support : array_like or list of array_like, optional
        The final support (True inside), stored as ``image_k/mask`` (uint8, 1 = inside); one
        array for all images or a list with one per image.
    history : dict or list of dict, optional
        Metric name -> list of values per recorded iteration; an ``iteration`` key gives the
        iteration numbers.  A dict goes with image 1, a list gives one per image.
    config, provenance, timings : dict, optional
        Stored as JSON strings (dataclasses and pydantic models are dumped first).
    rfactors : sequence of float, optional
        One R-factor per image (``None`` entries allowed), stored as attribute ``rfactor`` of
        ``image_k``.  A single number is the R-factor of image 1.
    extra_images : dict, optional
        Name -> array, stored under ``entry_1/result_1/<name>``.
    mask : array_like of bool, optional
        The detector mask used (True = measured), stored as a CXI bit field in
        ``entry_1/instrument_1/detector_1/mask``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        No images, list lengths that do not match the number of images, bad names.
    """
    if isinstance(images, (list, tuple)):
        imgs = [to_numpy(im) for im in images]
    else:
        imgs = [to_numpy(images)]
    if not imgs:
        raise InputError("write_result needs at least one image")
    for k, im in enumerate(imgs, 1):
        if im.dtype.kind not in "biufc" or im.ndim < 1:
            raise InputError(f"image {k} has dtype {im.dtype} and shape {im.shape}: expected a "
                             "numeric array")
    n = len(imgs)
    supports = _per_image(support, n, "support")
    supports = [None if s is None else as_bool_array(s, f"support of image {k}")
                for k, s in enumerate(supports, 1)]
    for k, (s, im) in enumerate(zip(supports, imgs), 1):
        if s is not None and s.shape != im.shape:
            raise InputError(f"support shape {s.shape} != image {k} shape {im.shape}")
    histories = _per_image(history, n, "history")
    for h in histories:
        if h is not None and not isinstance(h, dict):
            raise InputError(f"history must be a dict of lists, got {type(h).__name__}")
    if rfactors is None or np.ndim(rfactors) == 0:
        rf = [rfactors] + [None] * (n - 1)
    else:
        rf = list(rfactors)
        if len(rf) != n:
            raise InputError(f"rfactors has {len(rf)} entries != {n} images")
    extras = {}
    for name, arr in (extra_images or {}).items():
        if not isinstance(name, str) or not name or "/" in name or name == ".":
            raise InputError(f"extra image name {name!r} is not a valid HDF5 name")
        extras[name] = to_numpy(arr)
    measured = None if mask is None else as_bool_array(mask, "mask")
    cfg_json = None if config is None else dumps_json(config)
    prov_json = None if provenance is None else dumps_json(provenance)
    tim_json = None if timings is None else dumps_json(timings)
    command = "phasekit (Python API)"
    if isinstance(provenance, dict):
        if isinstance(provenance.get("command"), str):
            command = provenance["command"]
        elif isinstance(provenance.get("argv"), (list, tuple)):
            command = " ".join(str(a) for a in provenance["argv"])
    date = _dt.datetime.now(_dt.timezone.utc).isoformat()

    h5py = _h5py()
    p = Path(os.fspath(path))
    with atomic_write(p) as tmp:
        with h5py.File(tmp, "w") as f:
            entry = _cxi_entry(f, date)
            for k, im in enumerate(imgs, 1):
                g = entry.create_group(f"image_{k}")
                g.attrs["NX_class"] = "NXdata"
                g.attrs["signal"] = "data"
                _write_array(g, "data", im)
                g.create_dataset("data_space", data="real")
                g.create_dataset("data_type", data="object")
                if supports[k - 1] is not None:
                    _write_array(g, "mask", supports[k - 1].astype(np.uint8),
                                 description="support: 1 = inside")
                if rf[k - 1] is not None:
                    g.attrs["rfactor"] = float(rf[k - 1])
                proc = g.create_group("process_1")
                proc.attrs["NX_class"] = "NXprocess"
                proc.create_dataset("program", data="phasekit")
                proc.create_dataset("version", data=_version())
                proc.create_dataset("date", data=date)
                proc.create_dataset("command", data=command)
                note = proc.create_group("note")
                note.attrs["NX_class"] = "NXnote"
                for name, js in (("config", cfg_json), ("provenance", prov_json),
                                 ("timings", tim_json)):
                    if js is not None:
                        note.create_dataset(name, data=js).attrs["type"] = "application/json"
                if histories[k - 1] is not None:
                    _write_history(proc, histories[k - 1])
            if measured is not None:
                det = entry.create_group("instrument_1").create_group("detector_1")
                _write_array(det, "mask", _to_bitfield(measured),
                             description="CXI bad-pixel bit field: 0 = good, bit 0 = invalid")
            if extras:
                res = entry.create_group("result_1")
                res.attrs["note"] = "additional phasekit result arrays"
                for name, arr in extras.items():
                    _write_array(res, name, arr)
    return p


def _read_history(proc) -> dict | None:
    hg = _get(proc, "history")
    if not _is_group(hg):
        return None
    out: dict[str, list] = {}
    for name in hg.keys():
        ds = hg[name]
        if not _is_dataset(ds):
            continue
        if _to_str(ds.attrs.get("encoding")) == "json":
            out[name] = loads_json(ds[()])
        elif name == "iteration" and int(np.asarray(ds.attrs.get("generated", 0))) == 1:
            continue
        else:
            out[name] = np.asarray(ds[()]).tolist()
    return out


def _read_note(proc, name: str) -> Any:
    for path in (f"note/{name}", name):
        ds = _get(proc, path)
        if _is_dataset(ds):
            return _json_or_none(ds[()])
    return None


def read_result(path: str | os.PathLike) -> dict:
    """Read a result file written by :func:`write_result` (or CXI images by other software).

    Parameters
    ----------
    path : str or os.PathLike
        The result file.

    Returns
    -------
    dict
        ``images`` (list of arrays, best first), ``support`` (bool array of image 1 or ``None``),
        ``supports`` (one per image), ``history`` (dict of lists of image 1, ``{}`` if none),
        ``histories`` (one per image), ``config``, ``provenance``, ``timings`` (dicts or
        ``None``), ``rfactors`` (list, ``None`` where unknown), ``extra_images`` (dict),
        ``mask`` (detector mask, True = measured, or ``None``) and ``metadata`` (program,
        version, date, command, path, ``data_types``: each image's ``data_type`` such as
        ``"object"`` or ``"probe"``, ``None`` where not stored).

    Raises
    ------
    FileFormatError
        Missing, non-HDF5 or corrupt file, or no ``entry_N/image_M/data``.
    """
    p = _existing_file(path)
    kind = _sniff(p)
    if kind != "hdf5":
        if kind in ("npy", "npz"):
            raise FileFormatError(f"{p}: a NumPy file, not a CXI result file")
        raise _unknown_format(p)
    with reading_hdf5(p, "result file") as f:
        return _read_result_open(p, f)


def _read_result_open(p: Path, f) -> dict:
    pairs = _image_paths(f)
    if not pairs:
        extra = ""
        if _find_data(f)[0] is not None:
            extra = "; it holds diffraction data (use read_diffraction)"
        raise FileFormatError(f"{p}: no reconstruction images found (looked for "
                              f"entry_N/image_M/data){extra}")
    entry_name = pairs[0][0]
    entry = f[entry_name]
    images, supports, histories, rfactors, data_types = [], [], [], [], []
    config = provenance = timings = None
    meta: dict[str, Any] = {"path": str(p), "entry": entry_name}
    for e, img in pairs:
        if e != entry_name:
            continue
        g = entry[img]
        images.append(h5_array(g["data"], p, "biufc"))
        dt = _get(g, "data_type")
        data_types.append(_to_str(dt[()]) if _is_dataset(dt) else None)
        m = _get(g, "mask")
        supports.append(h5_array(m, p, "biuf") != 0 if _is_dataset(m) else None)
        r = g.attrs.get("rfactor")
        if r is None and _is_dataset(_get(g, "rfactor")):
            r = g["rfactor"][()]
        rfactors.append(None if r is None else float(np.asarray(r).ravel()[0]))
        proc = _get(g, "process_1")
        if _is_group(proc):
            histories.append(_read_history(proc))
            if config is None:
                config = _read_note(proc, "config")
            if provenance is None:
                provenance = _read_note(proc, "provenance")
            if timings is None:
                timings = _read_note(proc, "timings")
            for key in ("program", "version", "date", "command"):
                ds = _get(proc, key)
                if key not in meta and _is_dataset(ds):
                    meta[key] = _to_str(ds[()])
        else:
            histories.append(None)
    extras = {}
    res = _get(entry, "result_1")
    if _is_group(res):
        for name in res.keys():
            if _is_dataset(res[name]):
                extras[name] = np.asarray(res[name][()])
    meta["data_types"] = data_types
    mask = None
    for d in _detectors(entry):
        mds = _get(entry, f"{d}/mask")
        if _is_dataset(mds):
            mask = h5_array(mds, p, "biuf") == 0
            break
    return {
        "images": images,
        "support": supports[0],
        "supports": supports,
        "history": histories[0] or {},
        "histories": [h or {} for h in histories],
        "config": config,
        "provenance": provenance,
        "timings": timings,
        "rfactors": rfactors,
        "extra_images": extras,
        "mask": mask,
        "metadata": meta,
    }
