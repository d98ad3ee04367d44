"""CXI (HDF5) diffraction data and reconstruction results; format dispatch; file summaries.

h5py is imported inside the functions that need it, so ``import phasekit`` does not load it.

Diffraction data (:func:`write_diffraction`, CXI 1.5)
-----------------------------------------------------
::

    /cxi_version                                   150 (int)
    /entry_1                                       NX_class=NXentry
        program_name                               "phasekit <version>"
        instrument_1/source_1/energy               photon energy, J  (= h c / wavelength)
        instrument_1/source_1/wavelength           m
        instrument_1/detector_1/data               float32 intensities, zero frequency at N//2
        instrument_1/detector_1/mask               uint32 bit field, bit 0 (0x1, "invalid") set on
                                                   unmeasured pixels; 0 = good
        instrument_1/detector_1/distance           m
        instrument_1/detector_1/x_pixel_size       m (y_pixel_size written equal)
        data_1/data                                soft link -> instrument_1/detector_1/data
        simulation_1/truth, simulation_1/support   ground truth of a simulation; the group and
                                                   both datasets carry note="simulation ground
                                                   truth"; the group has attribute params (JSON)

:func:`read_diffraction` also reads files laid out by other software: frames at any
``entry_N/data_M/data`` or ``entry_N/instrument_M/detector_K/data`` (first found wins), a
single-frame stack is squeezed, the mask is read from the detector (``mask`` or
``mask_shared``) or ``data_M/mask`` and converted with ``measured = (mask == 0)`` (every set bit
counts as bad), the wavelength from ``source_1/wavelength`` or ``source_1/energy`` (J).  A
``units`` attribute (``nm``, ``angstrom``, ``eV``, ``keV``, ``mm``, ``um``...) is honoured;
without one the values are taken as SI.

Reconstruction results (:func:`write_result`)
---------------------------------------------
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
provenance and timings are stored with every image.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError, InputError
from .arrays import (
    DiffractionData,
    as_bool_array,
    dumps_json,
    loads_json,
    read_npy,
    read_npz,
    sniff_format,
    squeeze_frames,
    to_numpy,
)
from .atomic import atomic_write

__all__ = [
    "read_diffraction",
    "write_diffraction",
    "write_result",
    "read_result",
    "describe",
    "CXI_VERSION",
]

CXI_VERSION = 150
PLANCK = 6.62607015e-34        # J s
SPEED_OF_LIGHT = 299792458.0   # m / s
ELEMENTARY_CHARGE = 1.602176634e-19  # J / eV
HC = PLANCK * SPEED_OF_LIGHT   # J m

GROUND_TRUTH_NOTE = "simulation ground truth"
HDF5_EXTENSIONS = {".cxi", ".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5"}
_FRAME_AXES = {"experiment_identifier", "frame", "frames", "image", "images", "translation",
               "shot", "event", "n"}

_LENGTH_UNITS = {"m": 1.0, "meter": 1.0, "metre": 1.0, "meters": 1.0, "metres": 1.0,
                 "mm": 1e-3, "millimeter": 1e-3, "millimetre": 1e-3, "um": 1e-6, "µm": 1e-6,
                 "micron": 1e-6, "microns": 1e-6, "micrometer": 1e-6, "micrometre": 1e-6,
                 "nm": 1e-9, "nanometer": 1e-9, "nanometre": 1e-9, "angstrom": 1e-10,
                 "angstroms": 1e-10, "a": 1e-10, "å": 1e-10, "ang": 1e-10}
_ENERGY_UNITS = {"j": 1.0, "joule": 1.0, "joules": 1.0, "ev": ELEMENTARY_CHARGE,
                 "kev": 1e3 * ELEMENTARY_CHARGE}


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a declared dependency
        raise FileFormatError("CXI/HDF5 files need h5py (pip install h5py)") from exc
    return h5py


def _version() -> str:
    from .. import __version__

    return __version__


def _cxi_entry(f, file_time: str | None = None):
    """Write the CXI file header (creator, file time, ``cxi_version``) into the open HDF5 file
    ``f`` and return its new ``entry_1`` group (``NXentry`` with ``program_name``)."""
    f.attrs["creator"] = f"phasekit {_version()}"
    f.attrs["file_time"] = file_time or _dt.datetime.now(_dt.timezone.utc).isoformat()
    f.create_dataset("cxi_version", data=np.int32(CXI_VERSION))
    entry = f.create_group("entry_1")
    entry.attrs["NX_class"] = "NXentry"
    entry.create_dataset("program_name", data=f"phasekit {_version()}")
    return entry


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileFormatError(f"{p}: no such file")
    if p.is_dir():
        raise FileFormatError(f"{p}: is a directory, not a data file")
    return p


def _open_h5(p: Path):
    h5py = _h5py()
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise FileFormatError(f"{p}: corrupt or unreadable HDF5 file ({_one_line(exc)})") from exc


def _to_str(v: Any) -> str | None:
    """Decode an HDF5 attribute/dataset value to ``str``."""
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        if v.size != 1:
            return " ".join(_to_str(x) or "" for x in v.ravel())
        v = v.reshape(()).item()
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode("utf-8", errors="replace")
    return str(v)


def _numbered(group, stem: str) -> list[str]:
    """Member names ``<stem>_<N>`` of ``group``, sorted by N."""
    found = []
    for name in group.keys():
        m = re.fullmatch(re.escape(stem) + r"_(\d+)", name)
        if m:
            found.append((int(m.group(1)), name))
    return [name for _, name in sorted(found)]


def _get(group, path: str):
    """``group[path]`` or ``None`` when missing, dangling or unreadable."""
    try:
        return group.get(path)
    except (KeyError, OSError, ValueError, RuntimeError, TypeError):
        return None


def _is_dataset(obj) -> bool:
    h5py = _h5py()
    return isinstance(obj, h5py.Dataset)


def _is_group(obj) -> bool:
    h5py = _h5py()
    return isinstance(obj, h5py.Group)


def _resolve(f, path: str) -> str:
    """Follow soft links on ``path`` (a few hops) and return the target path without '/'."""
    h5py = _h5py()
    path = path.strip("/")
    for _ in range(8):
        parent, _, name = path.rpartition("/")
        grp = f[parent] if parent else f
        try:
            link = grp.get(name, getlink=True)
        except (KeyError, OSError, ValueError):
            break
        if isinstance(link, h5py.SoftLink):
            target = link.path
            path = (target if target.startswith("/") else f"{parent}/{target}").strip("/")
        else:
            break
    return path


def _entries(f) -> list[str]:
    names = _numbered(f, "entry")
    for name in f.keys():
        obj = _get(f, name)
        if name not in names and _is_group(obj) and _to_str(obj.attrs.get("NX_class")) == "NXentry":
            names.append(name)
    return names


def _detectors(entry) -> list[str]:
    out = []
    for ins in _numbered(entry, "instrument"):
        for det in _numbered(entry[ins], "detector"):
            out.append(f"{ins}/{det}")
    return out


def _sources(entry) -> list[str]:
    out = []
    for ins in _numbered(entry, "instrument"):
        for src in _numbered(entry[ins], "source"):
            out.append(f"{ins}/{src}")
    return out


def _find_data(f) -> tuple[str | None, list[str]]:
    """Return (path of the first diffraction dataset, list of paths tried)."""
    tried: list[str] = []
    entries = _entries(f)
    if not entries:
        return None, ["entry_1/data_1/data", "entry_1/instrument_1/detector_1/data"]
    for e in entries:
        eg = f[e]
        data_groups = _numbered(eg, "data") or ["data_1"]
        candidates = [f"{e}/{g}/data" for g in data_groups]
        candidates += [f"{e}/{d}/data" for d in (_detectors(eg) or ["instrument_1/detector_1"])]
        for path in candidates:
            tried.append(path)
            if _is_dataset(_get(f, path)):
                return path, tried
    return None, tried


def _image_paths(f) -> list[tuple[str, str]]:
    """(entry, image group) pairs holding ``image_N/data``."""
    out = []
    for e in _entries(f):
        for img in _numbered(f[e], "image"):
            if _is_dataset(_get(f, f"{e}/{img}/data")):
                out.append((e, img))
    return out


def _scalar(ds, units_table: dict[str, float], warnings: list[str]) -> float | None:
    """Read a scalar geometry value, converting a ``units`` attribute to SI."""
    try:
        a = np.asarray(ds[()], dtype=np.float64).ravel()
    except (TypeError, ValueError, OSError):
        warnings.append(f"{ds.name}: not a number, ignored")
        return None
    if a.size == 0:
        return None
    if a.size > 1 and not np.allclose(a, a[0]):
        warnings.append(f"{ds.name}: {a.size} differing values, the first is used")
    v = float(a[0])
    units = _to_str(ds.attrs.get("units"))
    if units:
        factor = units_table.get(units.strip().lower())
        if factor is None:
            warnings.append(f"{ds.name}: unknown units {units!r}, taken as SI")
        else:
            v *= factor
    if not np.isfinite(v) or v <= 0:
        warnings.append(f"{ds.name}: invalid value {v!r}, ignored")
        return None
    return v


def _bit_counts(mask: np.ndarray) -> dict[str, int]:
    if mask.dtype.kind not in "iu" or not mask.any():
        return {}
    m = mask.astype(np.uint64, copy=False)
    out = {}
    for b in range(min(64, 8 * mask.dtype.itemsize)):
        n = int(np.count_nonzero(m & np.uint64(1 << b)))
        if n:
            out[f"0x{1 << b:x}"] = n
    return out


def _dset_kwargs(a: np.ndarray) -> dict:
    if a.nbytes >= 1 << 20:
        return {"chunks": True, "compression": "gzip", "compression_opts": 4, "shuffle": True}
    return {}


def _write_array(group, name: str, a: np.ndarray, **attrs):
    ds = group.create_dataset(name, data=a, **_dset_kwargs(a))
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _to_bitfield(measured: np.ndarray) -> np.ndarray:
    """True = measured -> CXI uint32 bit field with bit 0 set on unmeasured pixels."""
    return np.where(measured, 0, 1).astype(np.uint32)


def _json_or_none(v: Any) -> Any:
    try:
        return loads_json(v)
    except (ValueError, TypeError):
        return _to_str(v)


# --------------------------------------------------------------------------------------------
# reading diffraction data
# --------------------------------------------------------------------------------------------
def read_diffraction(path: str | os.PathLike) -> DiffractionData:
    """Read a diffraction pattern from a CXI/HDF5, ``.npy`` or ``.npz`` file.

    The format is recognised from the file's first bytes (HDF5 signature, NumPy magic, zip
    archive); the extension only sharpens the error message for unreadable files.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  CXI/HDF5 files (``.cxi``, ``.h5``, ``.hdf5``, ``.nxs`` or any file with the
        HDF5 signature) are searched for frames at ``entry_N/data_M/data`` then
        ``entry_N/instrument_M/detector_K/data``; ``.npy`` holds the intensity; ``.npz`` holds
        ``intensity`` (or ``data``) and optionally ``mask`` (True = measured), ``support``,
        ``truth`` and the geometry (see :mod:`phasekit.io.arrays`).

    Returns
    -------
    DiffractionData
        float32 intensity (a single-frame stack squeezed to one pattern), boolean mask with
        True = measured (from the CXI bit field: ``mask == 0``), geometry in metres, ground
        truth and support when the file is a phasekit simulation, and ``metadata`` (source
        paths, CXI version, mask bit counts, simulation ``params``, ``warnings``).

    Raises
    ------
    FileFormatError
        Missing file, unknown or corrupt format, no diffraction data (the message lists the
        paths tried, and says so when the file holds only reconstruction results), a stack of
        several frames, or a dimensionality other than 2-D/3-D.  The message is one line and
        starts with the file name.
    """
    p = _existing_file(path)
    try:
        kind = sniff_format(p)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from exc
    if kind == "npy":
        return read_npy(p)
    if kind == "npz":
        return read_npz(p)
    if kind == "hdf5":
        return _read_hdf5_diffraction(p)
    raise _unknown_format(p)


def _unknown_format(p: Path) -> FileFormatError:
    ext = p.suffix.lower()
    if p.stat().st_size == 0:
        return FileFormatError(f"{p}: empty file")
    if ext in HDF5_EXTENSIONS:
        return FileFormatError(f"{p}: not a valid HDF5/CXI file (no HDF5 signature; corrupt "
                               "or truncated?)")
    if ext == ".npy":
        return FileFormatError(f"{p}: not a valid .npy file (no NumPy header)")
    if ext == ".npz":
        return FileFormatError(f"{p}: not a valid .npz file (not a zip archive)")
    return FileFormatError(f"{p}: unrecognised file format (expected CXI/HDF5, .npy or .npz)")


def _read_hdf5_diffraction(p: Path) -> DiffractionData:
    with _open_h5(p) as f:
        try:
            return _read_hdf5_open(p, f)
        except FileFormatError:
            raise
        except InputError as exc:
            raise FileFormatError(f"{p}: {_one_line(exc)}") from exc
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise FileFormatError(f"{p}: corrupt HDF5 file ({_one_line(exc)})") from exc


def _read_hdf5_open(p: Path, f) -> DiffractionData:
    data_path, tried = _find_data(f)
    if data_path is None:
        images = _image_paths(f)
        if images:
            e, img = images[0]
            raise FileFormatError(
                f"{p}: holds reconstruction results ({e}/{img}/data) but no diffraction data "
                f"(tried {', '.join(tried)}); use read_result for result files")
        raise FileFormatError(f"{p}: no diffraction data found (tried {', '.join(tried)})")
    ds = f[data_path]
    raw_shape = tuple(ds.shape)
    if ds.dtype.kind == "c":
        raise FileFormatError(f"{p}: {data_path} is complex ({ds.dtype}); expected real "
                              "intensities")
    if ds.dtype.kind not in "biuf":
        raise FileFormatError(f"{p}: {data_path} has non-numeric dtype {ds.dtype}")
    axes = (_to_str(ds.attrs.get("axes")) or "").strip()
    first_axis = axes.split(":")[0].strip().lower() if axes else ""
    if len(raw_shape) >= 3 and raw_shape[0] > 1 and first_axis in _FRAME_AXES:
        raise FileFormatError(f"{p}: {data_path} is a stack of {raw_shape[0]} frames "
                              f"(shape {raw_shape}, axes {axes!r}); phasekit CDI needs one "
                              "pattern")
    arr = squeeze_frames(np.asarray(ds[()]))
    if arr.ndim not in (2, 3):
        raise FileFormatError(f"{p}: {data_path} has shape {raw_shape}: expected a 2-D or 3-D "
                              "pattern (or a stack of one frame)")
    intensity = np.ascontiguousarray(arr, dtype=np.float32)

    entry_name = data_path.split("/")[0]
    entry = f[entry_name]
    real_path = _resolve(f, data_path)
    warnings: list[str] = []
    meta: dict[str, Any] = {
        "format": "cxi" if "cxi_version" in f else "hdf5",
        "data_path": data_path,
        "raw_shape": raw_shape,
        "raw_dtype": str(ds.dtype),
    }
    if real_path != data_path:
        meta["data_target"] = real_path
    if "cxi_version" in f:
        try:
            meta["cxi_version"] = int(np.asarray(f["cxi_version"][()]).ravel()[0])
        except (TypeError, ValueError, IndexError, OSError):
            pass

    # the groups that may hold the mask and the geometry
    data_parent = data_path.rpartition("/")[0]
    real_parent = real_path.rpartition("/")[0]
    detectors = [f"{entry_name}/{d}" for d in _detectors(entry)]
    groups = [real_parent] + [d for d in detectors if d != real_parent]
    if data_parent not in groups:
        groups.append(data_parent)

    # mask (CXI bit field: 0 = good)
    mask = None
    for g in groups:
        for name in ("mask", "mask_shared"):
            mds = _get(f, f"{g}/{name}")
            if not _is_dataset(mds):
                continue
            m = np.asarray(mds[()])
            if m.shape != intensity.shape:
                m2 = squeeze_frames(m)
                if m2.shape != intensity.shape:
                    raise FileFormatError(f"{p}: mask {g}/{name} shape {m.shape} != data "
                                          f"{data_path} shape {raw_shape}")
                m = m2
            if m.dtype.kind not in "biuf":
                raise FileFormatError(f"{p}: mask {g}/{name} has non-numeric dtype {m.dtype}")
            mask = m == 0
            meta["mask_path"] = f"{g}/{name}"
            bits = _bit_counts(m)
            if bits:
                meta["mask_bits"] = bits
            break
        if mask is not None:
            break

    # geometry
    detector = next((g for g in groups if _is_dataset(_get(f, f"{g}/distance"))
                     or _is_dataset(_get(f, f"{g}/x_pixel_size"))), None)
    distance = pixel_size = None
    if detector is not None:
        d = _get(f, f"{detector}/distance")
        if _is_dataset(d):
            distance = _scalar(d, _LENGTH_UNITS, warnings)
        px = _get(f, f"{detector}/x_pixel_size")
        if _is_dataset(px):
            pixel_size = _scalar(px, _LENGTH_UNITS, warnings)
        py = _get(f, f"{detector}/y_pixel_size")
        if _is_dataset(py):
            ypix = _scalar(py, _LENGTH_UNITS, warnings)
            if ypix is not None and pixel_size is None:
                pixel_size = ypix
            if ypix is not None and pixel_size is not None and not np.isclose(ypix, pixel_size):
                meta["y_pixel_size"] = ypix
                warnings.append(f"non-square pixels: x {pixel_size:g} m, y {ypix:g} m; "
                                "pixel_size is the x size")
        meta["detector_path"] = detector
    wavelength = None
    for src in _sources(entry):
        base = f"{entry_name}/{src}"
        for name in ("wavelength", "incident_wavelength"):
            w = _get(f, f"{base}/{name}")
            if _is_dataset(w):
                wavelength = _scalar(w, _LENGTH_UNITS, warnings)
                if wavelength is not None:
                    break
        if wavelength is None:
            for name in ("energy", "incident_energy", "photon_energy"):
                en = _get(f, f"{base}/{name}")
                if _is_dataset(en):
                    energy = _scalar(en, _ENERGY_UNITS, warnings)
                    if energy is not None:
                        wavelength = HC / energy
                        meta["wavelength_from"] = f"{base}/{name}"
                        break
        if wavelength is not None:
            break

    # simulation ground truth (written by phasekit)
    truth = support = None
    sim = _get(entry, "simulation_1")
    if _is_group(sim):
        t = _get(sim, "truth")
        if _is_dataset(t):
            truth = np.asarray(t[()])
            if truth.ndim != intensity.ndim:
                truth = squeeze_frames(truth)
        s = _get(sim, "support")
        if _is_dataset(s):
            support = squeeze_frames(np.asarray(s[()]) != 0)
        params = sim.attrs.get("params")
        if params is not None:
            meta["params"] = _json_or_none(params)
        note = _to_str(sim.attrs.get("note"))
        if note:
            meta["simulation_note"] = note
    if warnings:
        meta["warnings"] = warnings
    return DiffractionData(intensity=intensity, mask=mask, wavelength=wavelength,
                           distance=distance, pixel_size=pixel_size, support=support,
                           truth=truth, metadata=meta, path=str(p))


# --------------------------------------------------------------------------------------------
# writing diffraction data
# --------------------------------------------------------------------------------------------
def write_diffraction(
    path: str | os.PathLike,
    intensity: Any,
    *,
    mask: Any = None,
    wavelength: float | None = None,
    distance: float | None = None,
    pixel_size: float | None = None,
    truth: Any = None,
    support: Any = None,
    params: dict | None = None,
) -> Path:
    """Write a diffraction pattern as a CXI 1.5 file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (``.cxi`` by convention); parent folders are created.
    intensity : array_like or DiffractionData
        Centred intensities, 2-D or 3-D (stored as float32).  A :class:`DiffractionData`
        supplies every other field (its ``metadata["params"]`` as ``params``); explicit keywords
        override.
    mask : array_like of bool, optional
        True = measured.  Stored as a uint32 CXI bit field with bit 0 set on unmeasured pixels.
    wavelength, distance, pixel_size : float, optional
        Metres.  The photon energy (J) is written next to the wavelength.
    truth, support : array_like, optional
        Simulation ground truth and support, stored under ``entry_1/simulation_1``.
    params : dict, optional
        Simulation parameters, stored as a JSON string attribute ``params`` of
        ``entry_1/simulation_1``; read back as ``metadata["params"]``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        Bad arrays (dimensionality, mask shape) or non-positive geometry; nothing is written.
    """
    if isinstance(intensity, DiffractionData):
        d = intensity
        mask = d.mask if mask is None else mask
        wavelength = d.wavelength if wavelength is None else wavelength
        distance = d.distance if distance is None else distance
        pixel_size = d.pixel_size if pixel_size is None else pixel_size
        truth = d.truth if truth is None else truth
        support = d.support if support is None else support
        if params is None:
            params = d.metadata.get("params")
        intensity = d.intensity
    d = DiffractionData(intensity=intensity, mask=mask, wavelength=wavelength, distance=distance,
                        pixel_size=pixel_size, support=support, truth=truth)
    h5py = _h5py()
    p = Path(os.fspath(path))
    axes = "y:x" if d.ndim == 2 else "z:y:x"
    with atomic_write(p) as tmp:
        with h5py.File(tmp, "w") as f:
            entry = _cxi_entry(f)
            ins = entry.create_group("instrument_1")
            ins.attrs["NX_class"] = "NXinstrument"
            det = ins.create_group("detector_1")
            det.attrs["NX_class"] = "NXdetector"
            _write_array(det, "data", d.intensity, axes=axes)
            if d.mask is not None:
                _write_array(det, "mask", _to_bitfield(d.mask),
                             description="CXI bad-pixel bit field: 0 = good, bit 0 = invalid")
            if d.distance is not None:
                det.create_dataset("distance", data=d.distance).attrs["units"] = "m"
            if d.pixel_size is not None:
                det.create_dataset("x_pixel_size", data=d.pixel_size).attrs["units"] = "m"
                det.create_dataset("y_pixel_size", data=d.pixel_size).attrs["units"] = "m"
            if d.wavelength is not None:
                src = ins.create_group("source_1")
                src.attrs["NX_class"] = "NXsource"
                src.create_dataset("energy", data=HC / d.wavelength).attrs["units"] = "J"
                src.create_dataset("wavelength", data=d.wavelength).attrs["units"] = "m"
            data_1 = entry.create_group("data_1")
            data_1.attrs["NX_class"] = "NXdata"
            data_1.attrs["signal"] = "data"
            data_1["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
            if d.truth is not None or d.support is not None or params is not None:
                sim = entry.create_group("simulation_1")
                sim.attrs["note"] = GROUND_TRUTH_NOTE
                if d.truth is not None:
                    _write_array(sim, "truth", d.truth, note=GROUND_TRUTH_NOTE)
                if d.support is not None:
                    _write_array(sim, "support", d.support.astype(np.uint8),
                                 note=GROUND_TRUTH_NOTE, description="1 = inside the support")
                if params is not None:
                    sim.attrs["params"] = dumps_json(params)
    return p


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
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
        version, date, command, path).

    Raises
    ------
    FileFormatError
        Missing, non-HDF5 or corrupt file, or no ``entry_N/image_M/data``.
    """
    p = _existing_file(path)
    try:
        kind = sniff_format(p)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from exc
    if kind != "hdf5":
        if kind in ("npy", "npz"):
            raise FileFormatError(f"{p}: a NumPy file, not a CXI result file")
        raise _unknown_format(p)
    with _open_h5(p) as f:
        try:
            return _read_result_open(p, f)
        except FileFormatError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise FileFormatError(f"{p}: corrupt result file ({_one_line(exc)})") from exc


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
    images, supports, histories, rfactors = [], [], [], []
    config = provenance = timings = None
    meta: dict[str, Any] = {"path": str(p), "entry": entry_name}
    for e, img in pairs:
        if e != entry_name:
            continue
        g = entry[img]
        images.append(np.asarray(g["data"][()]))
        m = _get(g, "mask")
        supports.append(np.asarray(m[()]) != 0 if _is_dataset(m) else None)
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
    mask = None
    for d in _detectors(entry):
        mds = _get(entry, f"{d}/mask")
        if _is_dataset(mds):
            mask = np.asarray(mds[()]) == 0
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


# --------------------------------------------------------------------------------------------
# describe
# --------------------------------------------------------------------------------------------
def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _geometry_line(d: DiffractionData) -> str:
    parts = []
    if d.wavelength is not None:
        ev = HC / d.wavelength / ELEMENTARY_CHARGE
        parts.append(f"wavelength {d.wavelength:.4g} m ({ev:.4g} eV)")
    else:
        parts.append("wavelength unknown")
    parts.append(f"distance {d.distance:.4g} m" if d.distance is not None
                 else "distance unknown")
    parts.append(f"pixel size {d.pixel_size:.4g} m" if d.pixel_size is not None
                 else "pixel size unknown")
    return ", ".join(parts)


def _describe_diffraction(d: DiffractionData) -> list[str]:
    m = d.metadata
    where = m.get("data_path") or m.get("data_key") or "array"
    stored = f"stored {m.get('raw_dtype', 'float32')}"
    raw_shape = tuple(m.get("raw_shape", d.shape))
    if raw_shape != d.shape:
        stored += f", raw shape {raw_shape}"
    lines = [f"diffraction data: {where}  shape {d.shape}  ({stored})"]
    i = d.intensity
    finite = np.isfinite(i)
    vals = i[finite]
    if vals.size:
        lines.append(f"  intensity: total {float(vals.sum(dtype=np.float64)):.4g}, "
                     f"max {float(vals.max()):.4g}, min {float(vals.min()):.4g}")
    bad = []
    if not finite.all():
        bad.append(f"{int(i.size - finite.sum())} non-finite")
    if vals.size and (vals < 0).any():
        bad.append(f"{int((vals < 0).sum())} negative")
    if bad:
        lines.append("  warning: " + ", ".join(bad) + " values")
    if d.mask is None:
        lines.append(f"  mask: none (all {i.size} pixels measured)")
    else:
        n_bad = int(i.size - d.n_measured)
        src = f" [{m['mask_path']}]" if "mask_path" in m else ""
        bits = m.get("mask_bits")
        bit_s = ("; bits " + ", ".join(f"{b}: {c}" for b, c in bits.items())) if bits else ""
        lines.append(f"  mask: {d.n_measured} of {i.size} pixels measured ({n_bad} masked)"
                     f"{src}{bit_s}")
    lines.append("  geometry: " + _geometry_line(d))
    if d.truth is not None:
        lines.append(f"  ground truth: shape {d.truth.shape} {d.truth.dtype} "
                     f"({GROUND_TRUTH_NOTE})")
    else:
        lines.append("  ground truth: none")
    if d.support is not None:
        lines.append(f"  support: shape {d.support.shape}, "
                     f"{int(np.count_nonzero(d.support))} pixels inside")
    if isinstance(m.get("params"), dict) and m["params"]:
        keys = ", ".join(sorted(m["params"])[:12])
        more = " ..." if len(m["params"]) > 12 else ""
        lines.append(f"  simulation params: {keys}{more}")
    for w in m.get("warnings", []):
        lines.append(f"  warning: {w}")
    return lines


def _short_json(obj: Any, limit: int = 100) -> str:
    s = dumps_json(obj)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _describe_result(r: dict) -> list[str]:
    meta = r["metadata"]
    head = f"reconstruction results: {len(r['images'])} image(s)"
    if "program" in meta:
        head += f" by {meta['program']} {meta.get('version', '')}".rstrip()
    if "date" in meta:
        head += f" on {meta['date']}"
    lines = [head]
    for k, im in enumerate(r["images"], 1):
        s = f"  image_{k}: shape {im.shape} {im.dtype}"
        if r["rfactors"][k - 1] is not None:
            s += f", R-factor {r['rfactors'][k - 1]:.4g}"
        sup = r["supports"][k - 1]
        if sup is not None:
            s += f", support {int(np.count_nonzero(sup))} pixels"
        lines.append(s)
    for k, h in enumerate(r["histories"], 1):
        if h:
            n = max((len(v) for v in h.values() if isinstance(v, list)), default=0)
            lines.append(f"  history (image_{k}): {', '.join(h)} ({n} points)")
    if r["config"] is not None:
        lines.append(f"  config: {_short_json(r['config'])}")
    if r["timings"] is not None:
        lines.append(f"  timings: {_short_json(r['timings'])}")
    if r["provenance"] is not None:
        lines.append(f"  provenance: {_short_json(r['provenance'])}")
    if r["extra_images"]:
        lines.append("  extra arrays: " + ", ".join(
            f"{k} {v.shape} {v.dtype}" for k, v in r["extra_images"].items()))
    if r["mask"] is not None:
        lines.append(f"  detector mask: {int(r['mask'].sum())} of {r['mask'].size} measured")
    return lines


def _list_datasets(f, limit: int = 40) -> list[str]:
    h5py = _h5py()
    out: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out.append(f"  {name}: shape {obj.shape} {obj.dtype}")
        return None if len(out) < limit else True

    f.visititems(visit)
    return out


def describe(path: str | os.PathLike) -> str:
    """Return a human-readable, multi-line summary of a data or result file.

    Used by ``phasekit info FILE``.  Covers diffraction data (shape, stored dtype, intensity
    range, mask count and bit fields, geometry, ground truth and support of simulations) and
    reconstruction results (image shapes and dtypes, R-factors, history keys, config, timings,
    provenance).  For an HDF5 file with neither, its datasets are listed.

    Parameters
    ----------
    path : str or os.PathLike
        A CXI/HDF5, ``.npy`` or ``.npz`` file.

    Returns
    -------
    str
        The summary (no trailing newline).

    Raises
    ------
    FileFormatError
        Missing, unrecognised or corrupt file.
    """
    p = _existing_file(path)
    try:
        kind = sniff_format(p)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from exc
    size = _human_size(p.stat().st_size)
    if kind in ("npy", "npz"):
        d = read_diffraction(p)
        return "\n".join([f"file: {p} ({kind}, {size})"] + _describe_diffraction(d))
    if kind != "hdf5":
        raise _unknown_format(p)
    with _open_h5(p) as f:
        try:
            version = None
            if "cxi_version" in f:
                try:
                    version = int(np.asarray(f["cxi_version"][()]).ravel()[0])
                except (TypeError, ValueError, IndexError):
                    version = None
            has_data = _find_data(f)[0] is not None
            has_images = bool(_image_paths(f))
            creator = _to_str(f.attrs.get("creator"))
            listing = [] if (has_data or has_images) else _list_datasets(f)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise FileFormatError(f"{p}: corrupt HDF5 file ({_one_line(exc)})") from exc
    fmt = f"CXI {version // 100}.{version % 100 // 10}" if version else "HDF5"
    lines = [f"file: {p} ({fmt}, {size}{', written by ' + creator if creator else ''})"]
    if has_data:
        lines += _describe_diffraction(read_diffraction(p))
    if has_images:
        lines += _describe_result(read_result(p))
    if not (has_data or has_images):
        lines.append("no diffraction data or reconstruction results found; datasets:")
        lines += listing or ["  (none)"]
    return "\n".join(lines)
