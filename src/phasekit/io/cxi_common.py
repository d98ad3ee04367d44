"""Shared pieces of the CXI (HDF5) readers and writers.

* constants: CXI version, physical constants (photon energy <-> wavelength), unit tables;
* guarded reading: :func:`reading_hdf5` opens a file and turns every failure while reading it
  into one :class:`~phasekit.core.errors.FileFormatError` (the single guard every HDF5 reader
  goes through), :func:`_existing_file`, :func:`_sniff`, :func:`_unknown_format`;
* navigation: ``entry_N``, ``instrument_M/detector_K``, ``source_K``, ``image_N`` groups, soft
  links, scalars with ``units``;
* writing: the CXI header (:func:`_cxi_entry`), datasets (compressed above 1 MiB) and the mask bit
  field (:func:`_to_bitfield`: True = measured -> 0 = good, bit 0 = invalid).

The CXI layout is that of the CXI 1.5 specification (Maia, "The Coherent X-ray Imaging Data
Bank", Nature Methods 9, 854 (2012); cxidb.org/cxi.html).  h5py is imported only when a file is
read or written.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError, PhasekitError
from .arrays import loads_json, sniff_format
from .h5storage import filter_error, scan_storage

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


# what reading a corrupt, truncated or oddly laid out file may raise (h5py, NumPy, json)
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, LookupError, ValueError, TypeError,
                                                RuntimeError, ArithmeticError, EOFError,
                                                MemoryError)


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


def _sniff(p: Path) -> str | None:
    """:func:`~phasekit.io.arrays.sniff_format` with an unreadable file as a FileFormatError."""
    try:
        return sniff_format(p)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from exc


@contextlib.contextmanager
def reading_hdf5(p: Path, what: str = "HDF5 file") -> Iterator[Any]:
    """Open the HDF5 file ``p`` for reading; every failure becomes one :class:`FileFormatError`.

    The one guard of every HDF5 reader: an exception raised while opening the file, inside the
    ``with`` block or while closing it that is not a :class:`~phasekit.core.errors.PhasekitError`
    (h5py's ``OSError``/``KeyError`` on corrupt or truncated files, NumPy's ``ValueError`` or
    ``TypeError`` on datasets of an unexpected type, ``MemoryError`` on absurd shapes...) is
    re-raised as a one-line ``FileFormatError`` that starts with the file name.

    The file's storage is checked first (:func:`phasekit.io.h5storage.scan_storage`): an
    external link to a missing file, or a virtual dataset with a missing source file, is an
    error naming the missing file; a read that fails on a dataset whose filter is not available
    names the filter and suggests ``pip install hdf5plugin``.

    Parameters
    ----------
    p : pathlib.Path
        An existing HDF5 file (see :func:`_existing_file`).
    what : str
        What the file was expected to be, for the message ("corrupt <what> (...)").

    Examples
    --------
    >>> with reading_hdf5(path, "result file") as f:  # doctest: +SKIP
    ...     data = f["entry_1/image_1/data"][()]
    """
    h5py = _h5py()
    try:
        f = h5py.File(p, "r")
    except READ_ERRORS as exc:
        raise FileFormatError(f"{p}: corrupt or unreadable HDF5 file ({_one_line(exc)})") from exc
    report = None
    try:
        with f:
            report = scan_storage(f, p)
            if report.broken:
                more = (f" (and {len(report.broken) - 1} more)" if len(report.broken) > 1
                        else "")
                raise FileFormatError(f"{p}: {report.broken[0]}{more}")
            yield f
    except PhasekitError:
        raise
    except MemoryError as exc:
        raise FileFormatError(f"{p}: a dataset is too large to read ({_one_line(exc)})") from exc
    except READ_ERRORS as exc:
        missing_filter = filter_error(p, report) if report is not None else None
        if missing_filter is not None and isinstance(exc, OSError):
            raise missing_filter from exc
        raise FileFormatError(f"{p}: corrupt {what} ({_one_line(exc)})") from exc


def _open_h5(p: Path):
    """Open ``p`` read-only (an unreadable file is a :class:`FileFormatError`); prefer
    :func:`reading_hdf5`, which also guards what is read."""
    h5py = _h5py()
    try:
        return h5py.File(p, "r")
    except READ_ERRORS as exc:
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
    """Names of the groups ``<stem>_<N>`` in ``group``, sorted by N (datasets of such a name,
    or a ``group`` that is not a group, give nothing)."""
    if not _is_group(group):
        return []
    found = []
    for name in group.keys():
        m = re.fullmatch(re.escape(stem) + r"_(\d+)", name)
        if m and _is_group(_get(group, name)):
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


_KIND_NAMES = {"b": "boolean", "i": "integer", "u": "unsigned integer", "f": "real",
               "c": "complex"}


def h5_dataset(f, path: str, p: Path):
    """``f[path]`` as a dataset; a :class:`FileFormatError` naming the file otherwise.

    Parameters
    ----------
    f : h5py.File or h5py.Group
        Where to look.
    path : str
        Path of the dataset inside ``f``.
    p : pathlib.Path
        The file, for the message.

    Examples
    --------
    >>> with reading_hdf5(path) as f:  # doctest: +SKIP
    ...     ds = h5_dataset(f, "tomo/angles", path)
    """
    obj = _get(f, path)
    if obj is None:
        raise FileFormatError(f"{p}: no dataset /{path.strip('/')}")
    if not _is_dataset(obj):
        raise FileFormatError(f"{p}: /{path.strip('/')} is a group, expected a dataset")
    return obj


def h5_array(ds, p: Path, kinds: str = "biuf") -> np.ndarray:
    """Read the dataset ``ds`` whole, refusing dtypes whose kind is not in ``kinds``.

    Parameters
    ----------
    ds : h5py.Dataset
        The dataset.
    p : pathlib.Path
        The file, for the message.
    kinds : str
        Accepted NumPy dtype kinds (``"b"`` bool, ``"i"``/``"u"`` integers, ``"f"`` real,
        ``"c"`` complex).

    Returns
    -------
    numpy.ndarray
        The data (0-d for a scalar dataset).

    Raises
    ------
    FileFormatError
        Strings, compound or other dtypes outside ``kinds``.

    Examples
    --------
    >>> a = h5_array(h5_dataset(f, "tomo/projections", path), path, "iuf")  # doctest: +SKIP
    """
    if ds.dtype.kind not in kinds:
        want = " or ".join(_KIND_NAMES[k] for k in kinds if k in _KIND_NAMES)
        raise FileFormatError(f"{p}: {ds.name} has dtype {ds.dtype}; expected {want} numbers")
    return np.asarray(ds[()])


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
        for det in _numbered(_get(entry, ins), "detector"):
            out.append(f"{ins}/{det}")
    return out


def _sources(entry) -> list[str]:
    out = []
    for ins in _numbered(entry, "instrument"):
        for src in _numbered(_get(entry, ins), "source"):
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
    if ds.dtype.kind not in "biuf":
        warnings.append(f"{ds.name}: not a real number (dtype {ds.dtype}), ignored")
        return None
    try:
        a = np.asarray(ds[()], dtype=np.float64).ravel()
    except (TypeError, ValueError, OSError):
        warnings.append(f"{ds.name}: unreadable, ignored")
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


# public names for the readers of other packages (phasekit.tomo.io)
existing_file = _existing_file
sniff = _sniff
to_str = _to_str
