"""Detector images as beamlines write them: TIFF and EDF diffraction patterns.

:func:`phasekit.io.read_diffraction` dispatches here when a file starts with a TIFF header
(``II*\\0``, ``MM\\0*``, BigTIFF ``II+\\0`` / ``MM\\0+``) or an EDF header (``{`` after optional
white space).  The pattern is returned as it is stored: the zero frequency is wherever the
detector had it (find and move it with :mod:`phasekit.cdi.prepare`, which ``phasekit
reconstruct`` does by default).

TIFF (read with ``tifffile``)
    One 2-D page, any integer or float pixel type.  A TIFF of several pages is refused with a
    one-line error (it is either a tilt series, read by :mod:`phasekit.tomo.io` when a
    ``.rawtlt`` / ``.tlt`` file lies beside it, or several exposures, which phasekit does not sum
    silently: sum them first, or store a 3-D pattern as ``.npy`` / CXI).  Colour pages are
    refused.  The page is ``(y, x)``, the usual image orientation.

EDF (ESRF Data Format; a small reader written for phasekit)
    A text header ``{ key = value ; ... }`` (padded with spaces so that header and closing
    ``}\\n`` fill a multiple of 512 bytes), followed directly by the raw pixels.  Keys used:
    ``Dim_1`` (fast axis, x), ``Dim_2`` (y), optional ``Dim_3`` (z, a 3-D pattern), ``DataType``
    (``UnsignedByte``, ``SignedByte``, ``UnsignedShort``, ``SignedShort``, ``UnsignedInteger``,
    ``SignedInteger``, ``UnsignedLong``, ``SignedLong`` (4 bytes), ``Unsigned64``, ``Signed64``,
    ``FloatValue``, ``DoubleValue``, with their usual spellings), ``ByteOrder``
    (``LowByteFirst`` / ``HighByteFirst``; little-endian when absent), ``Size`` (bytes of
    data, optional) and ``Compression`` (none, ``gzip``, ``Z``/``zlib`` or ``bz2``; any other is
    refused).  The SAXS keywords ``PSize_1`` (pixel size, m), ``SampleDistance`` (m) and
    ``WaveLength`` (m) give the geometry when present.  A file of several frames (another
    header after the data) is refused.

Every failure is a one-line :class:`~phasekit.core.errors.FileFormatError` starting with the
file name.
"""
from __future__ import annotations

import bz2
import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError, InputError
from .arrays import DiffractionData

__all__ = [
    "read_edf_header",
    "read_edf_pattern",
    "read_image_array",
    "read_tiff_pattern",
    "sniff_pattern_format",
    "tiff_page_count",
]

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
EDF_BLOCK = 512
#: the largest header phasekit looks through (real EDF headers are a few KiB)
_EDF_MAX_HEADER = 1 << 20
#: the largest pattern phasekit allocates from a header's dimensions (elements)
_MAX_ELEMENTS = 1 << 31

_EDF_TYPES = {
    "unsignedbyte": "u1", "unsignedchar": "u1", "unsignedinteger8": "u1", "unsigned8": "u1",
    "signedbyte": "i1", "signedchar": "i1", "signedinteger8": "i1", "signed8": "i1",
    "unsignedshort": "u2", "unsignedshortinteger": "u2", "unsignedinteger16": "u2",
    "unsigned16": "u2",
    "signedshort": "i2", "signedshortinteger": "i2", "signedinteger16": "i2", "signed16": "i2",
    "unsignedinteger": "u4", "unsignedlong": "u4", "unsignedlonginteger": "u4",
    "unsignedinteger32": "u4", "unsigned32": "u4",
    "signedinteger": "i4", "signedlong": "i4", "signedlonginteger": "i4", "signedinteger32": "i4",
    "signed32": "i4",
    "unsigned64": "u8", "unsignedinteger64": "u8", "unsignedlonglong": "u8",
    "signed64": "i8", "signedinteger64": "i8", "signedlonglong": "i8",
    "floatvalue": "f4", "float": "f4", "floatieee32": "f4", "real": "f4", "float32": "f4",
    "doublevalue": "f8", "double": "f8", "doubleieee64": "f8", "float64": "f8",
}
_EDF_NO_COMPRESSION = {"", "none", "nocompression", "no", "uncompressed", "raw"}
_EDF_DECOMPRESS = {
    "gzip": gzip.decompress, "gzipcompression": gzip.decompress, "gz": gzip.decompress,
    "z": zlib.decompress, "zlib": zlib.decompress, "zcompression": zlib.decompress,
    "bz2": bz2.decompress, "bzip2": bz2.decompress, "bzipcompression": bz2.decompress,
}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def sniff_pattern_format(path: str | os.PathLike) -> str | None:
    """``"tiff"``, ``"edf"`` or ``None`` from the first bytes of ``path``.

    Examples
    --------
    >>> sniff_pattern_format("frame.edf")  # doctest: +SKIP
    'edf'
    """
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head[:4] in TIFF_MAGICS:
        return "tiff"
    if head.lstrip(b" \t\r\n").startswith(b"{"):
        return "edf"
    return None


# --------------------------------------------------------------------------- TIFF
def _tifffile():
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise FileFormatError("TIFF files need the tifffile package (pip install tifffile)") \
            from exc
    return tifffile


def tiff_page_count(path: str | os.PathLike) -> int | None:
    """Number of pages of a TIFF file, or ``None`` when it cannot be read; never raises."""
    try:
        tifffile = _tifffile()
        with tifffile.TiffFile(os.fspath(path)) as tif:
            return len(tif.pages)
    except Exception:  # noqa: BLE001 - a quick look only
        return None


def _tiff_array(p: Path) -> tuple[np.ndarray, dict]:
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(p) as tif:
            n = len(tif.pages)
            if n == 0:
                raise FileFormatError(f"{p}: a TIFF file without images")
            if n > 1:
                raise FileFormatError(
                    f"{p}: a TIFF of {n} pages; phasekit reads one 2-D pattern per TIFF file "
                    "(sum the exposures into one page, store a 3-D pattern as .npy or CXI, or "
                    "give a tilt series its .rawtlt angle file)")
            page = tif.pages[0]
            spp = int(getattr(page, "samplesperpixel", 1) or 1)
            arr = np.asarray(page.asarray())
            desc = getattr(page, "description", "") or ""
    except FileFormatError:
        raise
    except MemoryError as exc:
        raise FileFormatError(f"{p}: the TIFF image is too large to read ({_one_line(exc)})") \
            from None
    except Exception as exc:  # noqa: BLE001 - any tifffile failure is a file-format error
        raise FileFormatError(f"{p}: corrupt or unreadable TIFF file ({_one_line(exc)})") \
            from None
    if spp > 1:
        raise FileFormatError(f"{p}: a colour TIFF ({spp} samples per pixel, shape {arr.shape}); "
                              "a diffraction pattern is one grey-level page")
    meta: dict[str, Any] = {"format": "tiff", "raw_shape": tuple(arr.shape),
                            "raw_dtype": str(arr.dtype)}
    if desc:
        meta["description"] = " ".join(str(desc).split())[:200]
    return arr, meta


def read_tiff_pattern(path: str | os.PathLike) -> DiffractionData:
    """Read a single-page TIFF diffraction pattern.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF file of one 2-D grey-level page (``(y, x)``).

    Returns
    -------
    DiffractionData
        float32 intensity as stored (no mask, no geometry), ``metadata`` with ``format="tiff"``,
        ``raw_shape`` and ``raw_dtype``.

    Raises
    ------
    FileFormatError
        Unreadable or corrupt file, several pages, colour pages, non-numeric or complex pixels,
        an image that is not 2-D.

    Examples
    --------
    >>> import numpy as np, tifffile
    >>> tifffile.imwrite("p.tif", np.ones((64, 64), np.uint16))  # doctest: +SKIP
    >>> read_tiff_pattern("p.tif").shape  # doctest: +SKIP
    (64, 64)
    """
    p = Path(os.fspath(path))
    arr, meta = _tiff_array(p)
    if arr.ndim != 2:
        raise FileFormatError(f"{p}: TIFF image of shape {arr.shape}; expected a 2-D pattern")
    return _data(p, arr, meta)


def _data(p: Path, arr: np.ndarray, meta: dict, **geometry) -> DiffractionData:
    if arr.dtype.kind == "c":
        raise FileFormatError(f"{p}: complex pixels ({arr.dtype}); expected real intensities")
    if arr.dtype.kind not in "biuf":
        raise FileFormatError(f"{p}: pixels of non-numeric type {arr.dtype}")
    try:
        return DiffractionData(intensity=arr, metadata=meta, path=str(p), **geometry)
    except InputError as exc:
        raise FileFormatError(f"{p}: {_one_line(exc)}") from None


# --------------------------------------------------------------------------- EDF
def _parse_edf_header(p: Path, raw: bytes, start: int) -> tuple[dict[str, str], int]:
    """Parse the header block that starts at ``raw[start:]`` (white space then ``{``); return
    ``(keys, offset of the first data byte)``."""
    i = start
    while i < len(raw) and raw[i:i + 1] in (b" ", b"\t", b"\r", b"\n"):
        i += 1
    if raw[i:i + 1] != b"{":
        raise FileFormatError(f"{p}: not an EDF file (no '{{' opening the header)")
    end = raw.find(b"}", i, i + _EDF_MAX_HEADER)
    if end < 0:
        raise FileFormatError(f"{p}: EDF header without its closing '}}' (truncated file?)")
    text = raw[i + 1:end].decode("latin-1")
    keys: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and key:
            keys[key] = value.strip()
    offset = end + 1
    if raw[offset:offset + 1] == b"\r":
        offset += 1
    if raw[offset:offset + 1] == b"\n":
        offset += 1
    return keys, offset


def _key(keys: dict[str, str], name: str) -> str | None:
    low = name.lower()
    for k, v in keys.items():
        if k.lower() == low:
            return v
    return None


def _positive_int(p: Path, keys: dict[str, str], name: str, required: bool) -> int | None:
    v = _key(keys, name)
    if v is None:
        if required:
            raise FileFormatError(f"{p}: EDF header without {name}")
        return None
    try:
        n = int(v)
    except ValueError:
        raise FileFormatError(f"{p}: EDF {name} = {v!r} is not an integer") from None
    if n <= 0:
        raise FileFormatError(f"{p}: EDF {name} = {n} must be positive")
    return n


def _length(keys: dict[str, str], name: str, warnings: list[str]) -> float | None:
    v = _key(keys, name)
    if v is None:
        return None
    try:
        x = float(v.split()[0])
    except (ValueError, IndexError):
        warnings.append(f"EDF {name} = {v!r} is not a number and was ignored")
        return None
    if not (math.isfinite(x) and x > 0):
        warnings.append(f"EDF {name} = {v!r} is not a positive length and was ignored")
        return None
    return x


def read_edf_header(path: str | os.PathLike) -> dict[str, str]:
    """The keys of the first header block of an EDF file (values as text).

    Examples
    --------
    >>> read_edf_header("frame.edf")["DataType"]  # doctest: +SKIP
    'UnsignedShort'
    """
    p = Path(os.fspath(path))
    try:
        with open(p, "rb") as fh:
            raw = fh.read(_EDF_MAX_HEADER + 64)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from None
    return _parse_edf_header(p, raw, 0)[0]


def _edf_array(p: Path) -> tuple[np.ndarray, dict[str, str], list[str]]:
    try:
        raw = p.read_bytes()
    except MemoryError:
        raise FileFormatError(f"{p}: too large to read") from None
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from None
    keys, offset = _parse_edf_header(p, raw, 0)
    warnings: list[str] = []
    dims = [_positive_int(p, keys, "Dim_1", True), _positive_int(p, keys, "Dim_2", False),
            _positive_int(p, keys, "Dim_3", False)]
    if dims[1] is None:
        if dims[2] is not None:
            raise FileFormatError(f"{p}: EDF header with Dim_3 but no Dim_2")
        raise FileFormatError(f"{p}: EDF image of one dimension (Dim_1 = {dims[0]}, no Dim_2); "
                              "expected a 2-D pattern")
    shape = tuple(d for d in reversed(dims) if d is not None)  # Dim_1 is the fast axis (x)
    n = math.prod(shape)
    if n > _MAX_ELEMENTS:
        raise FileFormatError(f"{p}: EDF dimensions {shape} are implausibly large")
    dt = _key(keys, "DataType")
    if dt is None:
        raise FileFormatError(f"{p}: EDF header without DataType")
    code = _EDF_TYPES.get(dt.replace(" ", "").replace("_", "").lower())
    if code is None:
        raise FileFormatError(f"{p}: unknown EDF DataType {dt!r} (phasekit reads "
                              "UnsignedByte/Short/Integer/Long, SignedByte/Short/Integer/Long, "
                              "Unsigned64, Signed64, FloatValue, DoubleValue)")
    order = (_key(keys, "ByteOrder") or "LowByteFirst").strip().lower()
    if order in ("lowbytefirst", "littleendian", "little"):
        endian = "<"
    elif order in ("highbytefirst", "bigendian", "big"):
        endian = ">"
    else:
        raise FileFormatError(f"{p}: unknown EDF ByteOrder {_key(keys, 'ByteOrder')!r} "
                              "(expected LowByteFirst or HighByteFirst)")
    dtype = np.dtype(endian + code)
    expected = n * dtype.itemsize
    size = _positive_int(p, keys, "Size", False)
    comp = (_key(keys, "Compression") or "").strip()
    comp_key = comp.replace(" ", "").replace("_", "").lower()
    if comp_key in _EDF_NO_COMPRESSION:
        if size is not None and size != expected:
            raise FileFormatError(f"{p}: EDF Size = {size} bytes != {expected} bytes for "
                                  f"{shape} pixels of {dt}")
        body = raw[offset:offset + expected]
        if len(body) < expected:
            raise FileFormatError(f"{p}: truncated EDF file ({len(body)} of {expected} bytes of "
                                  "data)")
        used = expected
    elif comp_key in _EDF_DECOMPRESS:
        packed = raw[offset:] if size is None else raw[offset:offset + size]
        if size is not None and len(packed) < size:
            raise FileFormatError(f"{p}: truncated EDF file ({len(packed)} of {size} bytes of "
                                  "compressed data)")
        try:
            body = _EDF_DECOMPRESS[comp_key](packed)
        except Exception as exc:  # noqa: BLE001 - zlib.error, OSError, EOFError...
            raise FileFormatError(f"{p}: corrupt {comp} data in EDF file "
                                  f"({_one_line(exc)})") from None
        if len(body) != expected:
            raise FileFormatError(f"{p}: EDF {comp} data of {len(body)} bytes != {expected} "
                                  f"bytes for {shape} pixels of {dt}")
        used = len(packed)
    else:
        raise FileFormatError(f"{p}: unsupported EDF compression {comp!r} (phasekit reads "
                              "uncompressed, gzip, zlib (Z) and bz2 EDF files)")
    rest = raw[offset + used:]
    if rest.strip(b" \t\r\n\x00").startswith(b"{"):
        raise FileFormatError(f"{p}: an EDF file of several frames; phasekit reads one pattern "
                              "per file (sum the frames first)")
    if rest.strip(b" \t\r\n\x00"):
        warnings.append(f"{len(rest)} bytes after the EDF data were ignored")
    arr = np.frombuffer(body, dtype=dtype).reshape(shape)
    return arr, keys, warnings


def read_edf_pattern(path: str | os.PathLike) -> DiffractionData:
    """Read an EDF (ESRF Data Format) diffraction pattern.

    Parameters
    ----------
    path : str or os.PathLike
        An EDF file of one frame (layout in the module docstring).

    Returns
    -------
    DiffractionData
        float32 intensity ``(Dim_2, Dim_1)`` (or ``(Dim_3, Dim_2, Dim_1)``) as stored, geometry
        from ``PSize_1``, ``SampleDistance``, ``WaveLength`` when present (metres), and
        ``metadata`` with ``format="edf"``, ``raw_dtype`` and ``edf_header`` (the keys).

    Raises
    ------
    FileFormatError
        No header, missing or bad ``Dim_1`` / ``Dim_2`` / ``DataType``, unknown byte order,
        unsupported compression, a ``Size`` that does not match, truncated data, several frames.

    Examples
    --------
    >>> d = read_edf_pattern("frame.edf")  # doctest: +SKIP
    >>> d.shape, d.metadata["raw_dtype"]  # doctest: +SKIP
    ((1024, 1024), '<u2')
    """
    p = Path(os.fspath(path))
    arr, keys, warnings = _edf_array(p)
    meta: dict[str, Any] = {"format": "edf", "raw_shape": tuple(arr.shape),
                            "raw_dtype": str(arr.dtype),
                            "edf_header": dict(list(keys.items())[:64])}
    geometry = {"pixel_size": _length(keys, "PSize_1", warnings),
                "distance": _length(keys, "SampleDistance", warnings),
                "wavelength": _length(keys, "WaveLength", warnings)}
    if warnings:
        meta["warnings"] = warnings
    return _data(p, arr, meta, **geometry)


# --------------------------------------------------------------------------- any image
def read_image_array(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """The array of a ``.npy``, single-page TIFF or EDF file (for masks given as files).

    Raises
    ------
    FileFormatError
        Missing, unreadable or unrecognised file, or a non-numeric array.

    Examples
    --------
    >>> read_image_array("mask.tif", "mask").shape  # doctest: +SKIP
    (1024, 1024)
    """
    from .arrays import sniff_format

    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileFormatError(f"{p}: no such {what} file")
    try:
        kind = sniff_format(p) or sniff_pattern_format(p)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from None
    if kind == "npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError
            raise FileFormatError(f"{p}: corrupt or unreadable .npy {what} file "
                                  f"({_one_line(exc)})") from None
    elif kind == "tiff":
        arr = _tiff_array(p)[0]
    elif kind == "edf":
        arr = _edf_array(p)[0]
    else:
        raise FileFormatError(f"{p}: unrecognised {what} file (expected .npy, TIFF or EDF)")
    if arr.dtype.kind not in "biuf":
        raise FileFormatError(f"{p}: {what} of non-numeric type {arr.dtype}")
    return np.asarray(arr)
