"""The in-memory diffraction data set and the plain NumPy file formats (``.npy`` / ``.npz``).

:class:`DiffractionData` is what :func:`phasekit.io.read_diffraction` returns for every input
format.  It follows ``docs/conventions.md``: the intensity is a float32 array with the zero
frequency at index ``N // 2``, the mask is boolean with **True = measured**, geometry in metres.

NumPy formats
-------------
``.npy``
    The single array is the intensity (2-D pattern, 3-D pattern, or a stack of one frame).
``.npz``
    Keys (all but the first optional):

    * ``intensity`` (or ``data``): the pattern;
    * ``mask``: **True / non-zero = measured pixel** (the in-memory convention; this is *not* the
      CXI bit field, where 0 = good);
    * ``support``: boolean, True inside the support;
    * ``truth``: simulation ground truth (real or complex object);
    * ``wavelength``, ``distance``, ``pixel_size``: scalars in metres;
    * ``metadata``: a JSON string (a dict).

:func:`save_npz_diffraction` writes exactly this layout.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError, InputError
from .atomic import atomic_write

__all__ = [
    "DiffractionData",
    "save_npz_diffraction",
    "read_npy",
    "read_npz",
    "sniff_format",
    "to_jsonable",
    "dumps_json",
    "loads_json",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


# --------------------------------------------------------------------------------------------
# Array helpers (shared with cxi.py)
# --------------------------------------------------------------------------------------------
def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a NumPy array (tensors are detached and moved to the CPU first)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def squeeze_frames(a: np.ndarray) -> np.ndarray:
    """Drop leading length-1 axes while more than two axes are left (a stack of one frame)."""
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    return a


def as_intensity(x: Any, what: str = "intensity") -> np.ndarray:
    """Validate a pattern and return it as a float32 array (2-D or 3-D).

    Raises
    ------
    InputError
        Complex or non-numeric data, a dimensionality other than 2 or 3 (after dropping
        leading length-1 axes), or no pixels at all.
    """
    a = to_numpy(x)
    if a.dtype.kind == "c":
        raise InputError(f"{what} is complex ({a.dtype}); expected real intensities")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{what} has non-numeric dtype {a.dtype}")
    a = squeeze_frames(a)
    if a.ndim not in (2, 3):
        raise InputError(f"{what} has shape {a.shape}: expected a 2-D or 3-D pattern")
    if a.size == 0:
        raise InputError(f"{what} is empty (shape {a.shape})")
    return np.ascontiguousarray(a, dtype=np.float32)


def as_bool_array(x: Any, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``x`` as a boolean array (non-zero = True), optionally checking its shape.

    Leading length-1 axes are dropped when that makes the shape match ``shape``.
    """
    a = to_numpy(x)
    if a.dtype.kind not in "biuf":
        raise InputError(f"{what} has non-numeric dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        s = squeeze_frames(a)
        if s.shape != tuple(shape):
            raise InputError(f"{what} shape {a.shape} != intensity shape {tuple(shape)}")
        a = s
    return np.ascontiguousarray(a != 0)


def as_length(v: Any, name: str) -> float | None:
    """Validate an optional geometry value (metres): ``None`` or a positive finite float."""
    if v is None:
        return None
    try:
        a = to_numpy(v)
        if a.size != 1:
            raise TypeError
        f = float(a.reshape(()))
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in metres, got {v!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise InputError(f"{name} must be positive and finite (metres), got {f!r}")
    return f


# --------------------------------------------------------------------------------------------
# JSON helpers (configurations, provenance and parameters are stored as JSON strings)
# --------------------------------------------------------------------------------------------
def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types (dict, list, str, int, float, bool, None).

    Handles NumPy scalars and arrays, tensors, paths, sets, dataclasses and pydantic models
    (``model_dump``).  Tuples become lists and non-string dict keys become strings, so a dict
    round-trips through JSON when it holds only lists, strings, numbers, booleans and ``None``.
    Anything else is stored as its ``repr`` rather than failing at save time.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, complex):
        return {"real": obj.real, "imag": obj.imag}
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [to_jsonable(v) for v in obj]
        try:
            return sorted(items)
        except TypeError:
            return items
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "model_dump"):  # pydantic v2
        try:
            return to_jsonable(obj.model_dump(mode="json"))
        except Exception:  # noqa: BLE001 - fall through to the generic branches
            pass
    if isinstance(obj, np.ndarray) or (hasattr(obj, "detach") and hasattr(obj, "cpu")):
        return to_jsonable(to_numpy(obj).tolist())
    return repr(obj)


def dumps_json(obj: Any) -> str:
    """Serialise ``obj`` (via :func:`to_jsonable`) to a compact JSON string; NaN/Inf allowed."""
    return json.dumps(to_jsonable(obj), allow_nan=True, separators=(",", ":"))


def loads_json(text: Any) -> Any:
    """Parse a JSON string (``bytes`` accepted); the inverse of :func:`dumps_json`."""
    if isinstance(text, np.ndarray):
        text = text.reshape(()).item() if text.size == 1 else text.tolist()
    if isinstance(text, (bytes, np.bytes_)):
        text = bytes(text).decode("utf-8")
    return json.loads(str(text))


# --------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------
@dataclass
class DiffractionData:
    """A measured (or simulated) diffraction pattern and what is known about it.

    Parameters
    ----------
    intensity : numpy.ndarray
        float32 intensities (counts), 2-D ``(y, x)`` or 3-D ``(z, y, x)``, centred (zero
        frequency at index ``N // 2``).  Converted to float32 on construction.
    mask : numpy.ndarray of bool, optional
        Same shape as ``intensity``; **True = measured pixel**.  ``None`` means all measured.
    wavelength, distance, pixel_size : float, optional
        X-ray wavelength, sample-detector distance and detector pixel size, in metres.
    support : numpy.ndarray of bool, optional
        A known support (True inside), e.g. from a simulation.
    truth : numpy.ndarray, optional
        Simulation ground truth (the object that produced the pattern); never present for
        measured data.
    metadata : dict
        Anything else read from the file (source paths, CXI version, mask bit counts,
        simulation parameters under ``"params"``, warnings about odd values...).
    path : str, optional
        The file the data came from.

    Raises
    ------
    InputError
        Bad dimensionality, a mask whose shape differs from the intensity, a support or truth of
        another dimensionality, or non-positive geometry.
    """

    intensity: np.ndarray
    mask: np.ndarray | None = None
    wavelength: float | None = None
    distance: float | None = None
    pixel_size: float | None = None
    support: np.ndarray | None = None
    truth: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self) -> None:
        self.intensity = as_intensity(self.intensity)
        shape = self.intensity.shape
        if self.mask is not None:
            self.mask = as_bool_array(self.mask, "mask", shape)
        if self.support is not None:
            self.support = as_bool_array(self.support, "support")
            if self.support.ndim != len(shape):
                raise InputError(f"support shape {self.support.shape} has {self.support.ndim} "
                                 f"axes != intensity shape {shape}")
        if self.truth is not None:
            self.truth = to_numpy(self.truth)
            if self.truth.ndim != len(shape):
                raise InputError(f"truth shape {self.truth.shape} has {self.truth.ndim} axes "
                                 f"!= intensity shape {shape}")
        self.wavelength = as_length(self.wavelength, "wavelength")
        self.distance = as_length(self.distance, "distance")
        self.pixel_size = as_length(self.pixel_size, "pixel_size")
        self.metadata = dict(self.metadata or {})
        if self.path is not None:
            self.path = os.fspath(self.path)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the pattern."""
        return tuple(self.intensity.shape)

    @property
    def ndim(self) -> int:
        """2 for a 2-D pattern, 3 for a 3-D pattern."""
        return self.intensity.ndim

    @property
    def measured(self) -> np.ndarray:
        """The boolean mask, all True when no mask is known."""
        if self.mask is None:
            return np.ones(self.shape, dtype=bool)
        return self.mask

    @property
    def n_measured(self) -> int:
        """Number of measured pixels."""
        return int(self.intensity.size if self.mask is None else np.count_nonzero(self.mask))


# --------------------------------------------------------------------------------------------
# Sniffing and the NumPy formats
# --------------------------------------------------------------------------------------------
def sniff_format(path: str | os.PathLike) -> str | None:
    """Identify a file from its first bytes: ``"hdf5"``, ``"npy"``, ``"npz"`` or ``None``.

    The HDF5 signature is also looked for at the user-block offsets 512, 1024, 2048, ...
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head.startswith(NPY_MAGIC):
            return "npy"
        if head[:4] in ZIP_MAGICS:
            return "npz"
        if head == HDF5_SIGNATURE:
            return "hdf5"
        size = os.fstat(fh.fileno()).st_size
        offset = 512
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == HDF5_SIGNATURE:
                return "hdf5"
            offset *= 2
    return None


def _file_error(path: Path, exc: Exception) -> FileFormatError:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return FileFormatError(f"{path}: {msg}")


def read_npy(path: str | os.PathLike) -> DiffractionData:
    """Read a ``.npy`` file whose array is the intensity.

    Raises
    ------
    FileFormatError
        Unreadable file, object arrays, complex data or a dimensionality other than 2 or 3.
    """
    p = Path(os.fspath(path))
    try:
        a = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError...
        raise FileFormatError(f"{p}: corrupt or unreadable .npy file "
                              f"({' '.join(str(exc).split())})") from exc
    raw_shape = a.shape
    try:
        return DiffractionData(intensity=a, path=str(p),
                               metadata={"format": "npy", "raw_shape": raw_shape,
                                         "raw_dtype": str(a.dtype)})
    except InputError as exc:
        raise _file_error(p, exc) from exc


def read_npz(path: str | os.PathLike) -> DiffractionData:
    """Read a ``.npz`` file laid out as described in the module docstring.

    The ``mask`` key follows the in-memory convention: **True / non-zero = measured**.

    Raises
    ------
    FileFormatError
        Unreadable archive, no ``intensity``/``data`` key, or inconsistent arrays.
    """
    p = Path(os.fspath(path))
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"{p}: corrupt or unreadable .npz file "
                              f"({' '.join(str(exc).split())})") from exc
    key = "intensity" if "intensity" in arrays else "data" if "data" in arrays else None
    if key is None:
        raise FileFormatError(f"{p}: no diffraction data found (tried keys 'intensity', 'data'; "
                              f"the archive holds {sorted(arrays) or 'nothing'})")
    meta: dict[str, Any] = {}
    if "metadata" in arrays:
        try:
            loaded = loads_json(arrays["metadata"])
            meta.update(loaded if isinstance(loaded, dict) else {"metadata": loaded})
        except (ValueError, TypeError):
            meta["warnings"] = ["the 'metadata' entry is not valid JSON and was ignored"]
    meta.update({"format": "npz", "data_key": key, "raw_shape": arrays[key].shape,
                 "raw_dtype": str(arrays[key].dtype)})
    try:
        return DiffractionData(
            intensity=arrays[key],
            mask=arrays.get("mask"),
            wavelength=arrays.get("wavelength"),
            distance=arrays.get("distance"),
            pixel_size=arrays.get("pixel_size"),
            support=arrays.get("support"),
            truth=arrays.get("truth"),
            metadata=meta,
            path=str(p),
        )
    except InputError as exc:
        raise _file_error(p, exc) from exc


def save_npz_diffraction(
    path: str | os.PathLike,
    intensity: Any,
    *,
    mask: Any = None,
    wavelength: float | None = None,
    distance: float | None = None,
    pixel_size: float | None = None,
    support: Any = None,
    truth: Any = None,
    metadata: dict | None = None,
) -> Path:
    """Write a compressed ``.npz`` diffraction file atomically (layout in the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        Destination (``.npz`` is the natural suffix; the name is used as given).
    intensity : array_like or DiffractionData
        The pattern.  A :class:`DiffractionData` supplies every other field, each of which an
        explicit keyword overrides.
    mask : array_like of bool, optional
        **True = measured** (stored as such, unlike the CXI bit field).
    wavelength, distance, pixel_size : float, optional
        Geometry in metres.
    support, truth : array_like, optional
        Known support and simulation ground truth.
    metadata : dict, optional
        Stored as a JSON string under ``metadata``.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    if isinstance(intensity, DiffractionData):
        d = intensity
        mask = d.mask if mask is None else mask
        wavelength = d.wavelength if wavelength is None else wavelength
        distance = d.distance if distance is None else distance
        pixel_size = d.pixel_size if pixel_size is None else pixel_size
        support = d.support if support is None else support
        truth = d.truth if truth is None else truth
        metadata = d.metadata if metadata is None else metadata
        intensity = d.intensity
    d = DiffractionData(intensity=intensity, mask=mask, wavelength=wavelength, distance=distance,
                        pixel_size=pixel_size, support=support, truth=truth,
                        metadata=metadata or {})
    out: dict[str, Any] = {"intensity": d.intensity}
    for name in ("mask", "support", "truth"):
        if getattr(d, name) is not None:
            out[name] = getattr(d, name)
    for name in ("wavelength", "distance", "pixel_size"):
        if getattr(d, name) is not None:
            out[name] = np.float64(getattr(d, name))
    if d.metadata:
        out["metadata"] = np.array(dumps_json(d.metadata))
    p = Path(os.fspath(path))
    with atomic_write(p) as tmp:
        with open(tmp, "wb") as fh:  # a file object: numpy appends no extension
            np.savez_compressed(fh, **out)
    return p
