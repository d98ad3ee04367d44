"""Readers of the tomography layouts that beamlines and other packages write.

Each reader returns a :class:`RawTomo`: the frames as stored, turned into phasekit's projection
order ``(n, Dx, Dy)`` (``x`` across the rotation axis, ``y`` along it: a detector image of
``rows x cols`` with a vertical rotation axis becomes ``(cols, rows)`` by a transposed *view*), the
flat (white) and dark frames in the same order when the file has them, and the rotation angles
in **degrees**.  Nothing is corrected here: see :mod:`phasekit.tomo.preprocess`.

Layouts (detected from the file's content by :func:`tomo_layout`)
-----------------------------------------------------------------
``dxchange``
    APS Data Exchange, as dxchange writes it (De Carlo et al., J. Synchrotron Rad. 21, 1224
    (2014)): ``/exchange/data`` (n, rows, cols) raw counts, ``/exchange/data_white`` and
    ``/exchange/data_dark`` (k, rows, cols), ``/exchange/theta`` (n,) in degrees (dxchange's
    convention; a ``units`` attribute of ``rad``/``radians`` is honoured).  Without ``theta``
    the angles are taken evenly over [0, 180) degrees, as dxchange's ``read_aps_32id`` does,
    and the record says so.
``nxtomo``
    NeXus NXtomo (application definition NXtomo): ``/<entry>/instrument/detector/data``
    (nFrames, rows, cols) with ``image_key`` (0 projection, 1 flat, 2 dark, 3 invalid) and
    ``/<entry>/sample/rotation_angle`` (``units`` degrees or radians; NeXus' default for
    NX_ANGLE is degrees), or the same names in the ``/<entry>/data`` NXdata group.
``mrc``
    MRC / CCP4 stack (MRC2014: a 1024-byte header, ``nx ny nz`` at bytes 0-11, the mode at 12,
    the extended header length ``next`` at 92, ``MAP`` at 208 and the machine stamp at 212;
    modes 0 int8, 1 int16, 2 float32, 6 uint16, 12 float16), sections ``(ny, nx)`` with the tilt
    axis along ``y`` (IMOD's convention); angles from ``<stem>.tlt`` or ``<stem>.rawtlt`` beside
    it (one angle in degrees per line) or given.
``tiff``
    Multi-page TIFF, pages ``(rows, cols)``; angles as for MRC.

Examples
--------
>>> raw = read_tomo_layout("scan.h5")  # doctest: +SKIP
>>> raw.layout, raw.projections.shape, raw.flats is not None  # doctest: +SKIP
('dxchange', (181, 640, 8), True)
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError, InputError
from .cxi_common import READ_ERRORS, _get, _is_dataset, _is_group, _one_line, _to_str, reading_hdf5
from .arrays import sniff_format

__all__ = ["RawTomo", "tomo_layout", "read_tomo_layout", "read_dxchange", "read_nxtomo",
           "read_mrc", "read_mrc_stack", "read_tiff_frames", "read_tilt_file", "parse_angles",
           "tilt_sidecar", "TOMO_LAYOUTS", "MRC_SUFFIXES"]

#: one line per layout phasekit reads as a tilt series (for error messages and ``info``)
TOMO_LAYOUTS = (
    "phasekit HDF5 tilt series (/tomo/projections + /tomo/angles)",
    "APS Data Exchange (/exchange/data, data_white, data_dark, theta)",
    "NeXus NXtomo (instrument/detector/data + image_key, sample/rotation_angle)",
    "MRC stack + IMOD .tlt/.rawtlt",
    "multi-page TIFF + .tlt/.rawtlt (or --angles)",
)
MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".map", ".rec")
_DEG = ("deg", "degree", "degrees", "°")
_RAD = ("rad", "radian", "radians")
_MRC_DTYPES = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}


@dataclass
class RawTomo:
    """Frames of a tomography scan as read, in phasekit's projection order.

    Attributes
    ----------
    projections : ndarray (n, Dx, Dy)
        Sample frames (raw counts or whatever the file holds), ``x`` across the rotation axis.
    angles : ndarray (n,)
        Rotation angles in degrees.
    flats, darks : ndarray (k, Dx, Dy) or None
        Flat (white, open-beam) and dark frames.
    layout : str
        ``"dxchange"``, ``"nxtomo"``, ``"mrc"`` or ``"tiff"``.
    notes : list of str
        What the reader assumed or found (e.g. angles that were not in the file).
    angle_source : str
        Where the angles came from.
    """

    projections: np.ndarray
    angles: np.ndarray
    flats: np.ndarray | None = None
    darks: np.ndarray | None = None
    layout: str = ""
    notes: list = field(default_factory=list)
    angle_source: str = ""
    source: str = ""


# --------------------------------------------------------------------------- detection
def _is_mrc(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    if len(head) < 1024:
        return False
    if head[208:212] == b"MAP ":
        return True
    if p.suffix.lower() not in MRC_SUFFIXES:
        return False
    return _mrc_endian(head) is not None


def _nxtomo_entry(f) -> str | None:
    """Name of the first NXtomo entry of an open HDF5 file, or None."""
    for name in f:
        g = _get(f, name)
        if not _is_group(g):
            continue
        definition = (_to_str(_get(g, "definition")[()]) if _is_dataset(_get(g, "definition"))
                      else None) or _to_str(g.attrs.get("definition"))
        if definition and definition.strip().lower() == "nxtomo":
            return name
        if _is_dataset(_get(g, "instrument/detector/image_key")) or \
                _is_dataset(_get(g, "data/image_key")):
            return name
    return None


def tomo_layout(path) -> str | None:
    """Which beamline / package layout ``path`` has: ``"dxchange"``, ``"nxtomo"``, ``"mrc"`` or
    ``None`` (TIFF stacks and phasekit's own tilt series are recognised by
    :func:`phasekit.tomo.io.tomo_kind`).  Never raises.

    Examples
    --------
    >>> tomo_layout("scan.h5")  # doctest: +SKIP
    'dxchange'
    """
    p = Path(os.fspath(path))
    try:
        if not p.is_file():
            return None
        kind = sniff_format(p)
        if kind != "hdf5":
            return "mrc" if _is_mrc(p) else None
        with reading_hdf5(p) as f:
            if _is_dataset(_get(f, "exchange/data")):
                return "dxchange"
            if _nxtomo_entry(f) is not None:
                return "nxtomo"
    except (FileFormatError, *READ_ERRORS):
        return None
    return None


def read_tomo_layout(path, *, angles=None, rows=None) -> RawTomo:
    """Read any layout of :func:`tomo_layout` (and multi-page TIFF stacks).

    Parameters
    ----------
    path : str or os.PathLike
    angles : array or str, optional
        Angles in degrees (or a spec for :func:`parse_angles`) overriding the file's.
    rows : slice, optional
        Detector rows (along the rotation axis) to read; default all.

    Raises
    ------
    FileFormatError
        Not one of these layouts, or a broken file (one line naming what was looked for).
    """
    p = Path(os.fspath(path))
    lay = tomo_layout(p)
    if lay == "dxchange":
        return read_dxchange(p, angles=angles, rows=rows)
    if lay == "nxtomo":
        return read_nxtomo(p, angles=angles, rows=rows)
    if lay == "mrc":
        return read_mrc_stack(p, angles=angles, rows=rows)
    if p.suffix.lower() in (".tif", ".tiff") or _tiff_magic(p):
        return read_tiff_frames(p, angles=angles, rows=rows)
    if p.is_file() and _sniff_quietly(p) == "hdf5":
        with reading_hdf5(p):  # an external link or virtual dataset to a missing file is named
            pass
    raise FileFormatError(f"{p}: not a tomography layout phasekit reads ({'; '.join(TOMO_LAYOUTS)})")


def _sniff_quietly(p: Path) -> str | None:
    try:
        return sniff_format(p)
    except OSError:
        return None


def _tiff_magic(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    except OSError:
        return False


# --------------------------------------------------------------------------- angles
def parse_angles(spec, n: int | None = None) -> np.ndarray:
    """Angles in degrees from a spec: ``START:STEP:STOP`` (inclusive, MATLAB style), a comma list,
    a ``.tlt``/``.rawtlt``/text file, or numbers; a ``rad`` suffix means radians.

    Examples
    --------
    >>> parse_angles("-60:30:60").tolist()
    [-60.0, -30.0, 0.0, 30.0, 60.0]
    >>> parse_angles("0,90,180").tolist()
    [0.0, 90.0, 180.0]
    """
    if spec is None:
        raise InputError("no angles given")
    if not isinstance(spec, str):
        a = np.asarray(spec, dtype=np.float64).reshape(-1)
    else:
        text = spec.strip()
        scale = 1.0
        low = text.lower()
        if low.endswith("rad"):
            text, scale = text[:-3].strip(), 180.0 / math.pi
        elif low.endswith("deg"):
            text = text[:-3].strip()
        if Path(text).is_file():
            a = read_tilt_file(Path(text))
        elif ":" in text:
            parts = text.split(":")
            try:
                start, step, stop = (float(x) for x in parts)
            except ValueError:
                raise InputError(f"--angles {spec!r}: expected START:STEP:STOP (e.g. -60:3:60), a "
                                 "comma list or an angle file") from None
            if not all(math.isfinite(v) for v in (start, step, stop)) or step == 0 \
                    or (stop - start) * step < 0:
                raise InputError(f"--angles {spec!r}: an empty range")
            k = int(math.floor((stop - start) / step + 1e-9)) + 1
            a = start + step * np.arange(k)
        else:
            try:
                a = np.array([float(x) for x in text.replace(",", " ").split()], dtype=np.float64)
            except ValueError:
                raise InputError(f"--angles {spec!r}: expected START:STEP:STOP, a comma list or an "
                                 "angle file") from None
        a = a * scale
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"angles {spec!r}: empty or not finite")
    if n is not None and a.size != n:
        raise InputError(f"{a.size} angles for {n} projections (angles {spec!r})")
    return a


def read_tilt_file(side: Path) -> np.ndarray:
    """Angles of an IMOD ``.tlt`` / ``.rawtlt`` file: one number (degrees) per line."""
    try:
        text = Path(side).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise FileFormatError(f"{side}: not a readable angle file ({_one_line(exc)})") from None
    try:
        a = np.array([float(t) for t in text.split()], dtype=np.float64)
    except ValueError as exc:
        raise FileFormatError(f"{side}: not a list of angles ({_one_line(exc)})") from None
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise FileFormatError(f"{side}: no finite angles")
    return a


def tilt_sidecar(p: Path) -> Path | None:
    """``<stem>.rawtlt`` or ``<stem>.tlt`` beside ``p`` (the IMOD angle files of a raw and an
    aligned stack: for an aligned ``.ali`` stack ``.tlt`` is looked for first)."""
    order = (".tlt", ".rawtlt") if Path(p).suffix.lower() == ".ali" else (".rawtlt", ".tlt")
    for ext in order:
        c = Path(p).with_suffix(ext)
        if c.is_file():
            return c
    return None


def _units_scale(units, p: Path, what: str) -> float:
    u = (units or "deg").strip().lower()
    if u in _DEG:
        return 1.0
    if u in _RAD:
        return 180.0 / math.pi
    raise FileFormatError(f"{p}: {what} has units {units!r}; expected degrees or radians")


def _given_angles(angles, n: int, p: Path) -> np.ndarray:
    try:
        return parse_angles(angles, n)
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None


# --------------------------------------------------------------------------- HDF5 layouts
def _frames(ds, p: Path, rows, what: str) -> np.ndarray:
    if ds.dtype.kind not in "iuf":
        raise FileFormatError(f"{p}: {ds.name} has dtype {ds.dtype}; expected real numbers")
    if ds.ndim == 2:
        a = np.asarray(ds[()])[None]
    elif ds.ndim == 3:
        a = np.asarray(ds[:, rows, :] if rows is not None else ds[()])
    else:
        raise FileFormatError(f"{p}: {ds.name} must be (n, rows, cols) {what}, got shape {ds.shape}")
    if ds.ndim == 2 and rows is not None:
        a = a[:, rows, :]
    if a.size == 0:
        raise FileFormatError(f"{p}: {ds.name} is empty (shape {a.shape})")
    return a.transpose(0, 2, 1)  # (n, rows, cols) -> (n, Dx=cols, Dy=rows), a view


def read_dxchange(path, *, angles=None, rows=None) -> RawTomo:
    """Read an APS Data Exchange file (see the module docstring).

    Examples
    --------
    >>> raw = read_dxchange("scan.h5")  # doctest: +SKIP
    """
    p = Path(os.fspath(path))
    notes = []
    with reading_hdf5(p, "Data Exchange file") as f:
        ds = _get(f, "exchange/data")
        if not _is_dataset(ds):
            raise FileFormatError(f"{p}: no dataset /exchange/data (not a Data Exchange file)")
        proj = _frames(ds, p, rows, "projections")
        flats = darks = None
        for name in ("data_white", "data_dark"):
            d = _get(f, f"exchange/{name}")
            if _is_dataset(d):
                a = _frames(d, p, rows, "frames")
                if a.shape[1:] != proj.shape[1:]:
                    raise FileFormatError(f"{p}: /exchange/{name} frames {a.shape[1:][::-1]} != "
                                          f"data frames {proj.shape[1:][::-1]}")
                if name == "data_white":
                    flats = a
                else:
                    darks = a
        n = proj.shape[0]
        th = _get(f, "exchange/theta")
        if angles is not None:
            ang, src = _given_angles(angles, n, p), "--angles"
        elif _is_dataset(th):
            if th.dtype.kind not in "iuf":
                raise FileFormatError(f"{p}: /exchange/theta has dtype {th.dtype}")
            ang = np.asarray(th[()], dtype=np.float64).reshape(-1)
            ang = ang * _units_scale(_to_str(th.attrs.get("units")), p, "/exchange/theta")
            src = "/exchange/theta"
        else:
            ang = np.linspace(0.0, 180.0, n, endpoint=False)
            src = "assumed"
            notes.append(f"no /exchange/theta: {n} angles assumed evenly over [0, 180) degrees "
                         "(dxchange's default); give --angles otherwise")
    if ang.size != n:
        raise FileFormatError(f"{p}: {ang.size} angles in {src} for {n} projections")
    if not np.all(np.isfinite(ang)):
        raise FileFormatError(f"{p}: non-finite angles in {src}")
    return RawTomo(proj, ang, flats, darks, "dxchange", notes, src, str(p))


def _first_dataset(g, names):
    for n in names:
        d = _get(g, n)
        if _is_dataset(d):
            return n, d
    return None, None


def read_nxtomo(path, *, angles=None, rows=None) -> RawTomo:
    """Read a NeXus NXtomo file (see the module docstring): frames split by ``image_key``.

    Examples
    --------
    >>> raw = read_nxtomo("scan.nx")  # doctest: +SKIP
    """
    p = Path(os.fspath(path))
    with reading_hdf5(p, "NXtomo file") as f:
        entry = _nxtomo_entry(f)
        if entry is None:
            raise FileFormatError(f"{p}: no NXtomo entry (an NXentry with definition NXtomo)")
        g = f[entry]
        dname, ds = _first_dataset(g, ("instrument/detector/data", "data/data"))
        if ds is None:
            raise FileFormatError(f"{p}: NXtomo entry /{entry} without frames (expected "
                                  f"/{entry}/instrument/detector/data)")
        kname, kd = _first_dataset(g, ("instrument/detector/image_key", "data/image_key",
                                       "instrument/detector/image_key_control"))
        aname, ad = _first_dataset(g, ("sample/rotation_angle", "data/rotation_angle"))
        frames = _frames(ds, p, rows, "frames")
        n = frames.shape[0]
        if kd is not None:
            key = np.asarray(kd[()]).reshape(-1).astype(np.int64)
            if key.size != n:
                raise FileFormatError(f"{p}: /{entry}/{kname} has {key.size} values for {n} frames")
        else:
            key = np.zeros(n, np.int64)
        if aname is not None:
            if ad.dtype.kind not in "iuf":
                raise FileFormatError(f"{p}: /{entry}/{aname} has dtype {ad.dtype}")
            allang = np.asarray(ad[()], dtype=np.float64).reshape(-1)
            allang = allang * _units_scale(_to_str(ad.attrs.get("units")), p, f"/{entry}/{aname}")
            if allang.size != n:
                raise FileFormatError(f"{p}: /{entry}/{aname} has {allang.size} values for "
                                      f"{n} frames")
        else:
            allang = None
    proj_i = np.flatnonzero(key == 0)
    if proj_i.size == 0:
        raise FileFormatError(f"{p}: no projection frames (image_key 0) in /{entry}/{dname}")
    flats = frames[key == 1] if np.any(key == 1) else None
    darks = frames[key == 2] if np.any(key == 2) else None
    notes = []
    if np.any(key == 3):
        notes.append(f"{int(np.sum(key == 3))} invalid frame(s) (image_key 3) skipped")
    bad = ~np.isin(key, (0, 1, 2, 3))
    if bad.any():
        raise FileFormatError(f"{p}: image_key values {sorted(set(key[bad].tolist()))} are not "
                              "0 (projection), 1 (flat), 2 (dark) or 3 (invalid)")
    if angles is not None:
        ang, src = _given_angles(angles, proj_i.size, p), "--angles"
    elif allang is not None:
        ang, src = allang[proj_i], f"/{entry}/{aname}"
    else:
        raise FileFormatError(f"{p}: NXtomo entry /{entry} without rotation angles (expected "
                              f"/{entry}/sample/rotation_angle), and no --angles given")
    if not np.all(np.isfinite(ang)):
        raise FileFormatError(f"{p}: non-finite rotation angles in {src}")
    return RawTomo(frames[proj_i], ang, flats, darks, "nxtomo", notes, src, str(p))


# --------------------------------------------------------------------------- MRC
def _mrc_endian(head: bytes) -> str | None:
    """``"<"`` or ``">"`` from the machine stamp (byte 212: 0x44 little, 0x11 big), else from
    a plausible ``nx, ny, nz, mode`` (old files without a stamp); None when neither fits."""
    stamp = head[212]
    if stamp == 0x44:
        return "<"
    if stamp == 0x11:
        return ">"
    for e in ("<", ">"):
        nx, ny, nz, mode = struct.unpack(e + "4i", head[:16])
        if 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**20 and mode in (0, 1, 2, 3, 4, 6, 12):
            return e
    return None


def read_mrc(path) -> tuple[np.ndarray, dict]:
    """Read an MRC / CCP4 file: the data ``(nz, ny, nx)`` (native byte order) and the header.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    data : ndarray (nz, ny, nx)
        Modes 0 (int8), 1 (int16), 2 (float32), 6 (uint16), 12 (float16) as those dtypes.
    header : dict
        ``nx, ny, nz, mode, next`` (extended header bytes), ``endian`` (``"<"``/``">"``) and
        ``pixel`` (Angstrom per pixel along x when the cell is set, else None).

    Raises
    ------
    FileFormatError
        Short or truncated file, an unsupported (complex) mode, absurd sizes.

    Examples
    --------
    >>> data, hdr = read_mrc("tilts.mrc")  # doctest: +SKIP
    >>> hdr["mode"], data.shape  # doctest: +SKIP
    (2, (41, 256, 256))
    """
    p = Path(os.fspath(path))
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from None
    if len(head) < 1024:
        raise FileFormatError(f"{p}: {len(head)} bytes, shorter than an MRC header (1024)")
    e = _mrc_endian(head)
    if e is None:
        raise FileFormatError(f"{p}: not an MRC file (no machine stamp and implausible sizes)")
    nx, ny, nz, mode = struct.unpack(e + "4i", head[:16])
    nxt = struct.unpack(e + "i", head[92:96])[0]
    if min(nx, ny, nz) <= 0 or nxt < 0:
        raise FileFormatError(f"{p}: bad MRC header (nx {nx}, ny {ny}, nz {nz}, next {nxt})")
    if mode not in _MRC_DTYPES:
        raise FileFormatError(f"{p}: MRC mode {mode} is not supported (read: 0 int8, 1 int16, "
                              "2 float32, 6 uint16, 12 float16)")
    dt = np.dtype(_MRC_DTYPES[mode]).newbyteorder(e)
    need = 1024 + nxt + nx * ny * nz * dt.itemsize
    if size < need:
        raise FileFormatError(f"{p}: truncated MRC file ({size} bytes, the header says {need})")
    data = np.memmap(p, dtype=dt, mode="r", offset=1024 + nxt, shape=(nz, ny, nx))
    cella = struct.unpack(e + "f", head[40:44])[0]
    return data, {"nx": nx, "ny": ny, "nz": nz, "mode": mode, "next": nxt, "endian": e,
                  "pixel": (cella / nx) if cella > 0 else None}


def _angles_beside(p: Path, angles, n: int) -> tuple[np.ndarray, str]:
    if angles is not None:
        return _given_angles(angles, n, p), "--angles"
    side = tilt_sidecar(p)
    if side is None:
        raise FileFormatError(f"{p}: tilt series without angles (expected {p.stem}.tlt or "
                              f"{p.stem}.rawtlt beside it, or --angles START:STEP:STOP)")
    a = read_tilt_file(side)
    if a.size != n:
        raise FileFormatError(f"{side}: {a.size} angles for {n} images in {p.name}")
    return a, side.name


def read_mrc_stack(path, *, angles=None, rows=None) -> RawTomo:
    """An MRC tilt series (sections ``(ny, nx)``, tilt axis along ``y``) and its angles.

    Examples
    --------
    >>> raw = read_mrc_stack("tilts.mrc")  # angles from tilts.tlt  # doctest: +SKIP
    """
    p = Path(os.fspath(path))
    data, hdr = read_mrc(p)
    a = np.asarray(data[:, rows, :] if rows is not None else data)
    a = a.astype(np.float32).transpose(0, 2, 1)
    ang, src = _angles_beside(p, angles, a.shape[0])
    return RawTomo(a, ang, None, None, "mrc", [f"MRC mode {hdr['mode']}"], src, str(p))


# --------------------------------------------------------------------------- TIFF
def read_tiff_frames(path, *, angles=None, rows=None) -> RawTomo:
    """A multi-page TIFF (pages ``(rows, cols)``) and its angles (sidecar or given)."""
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover
        raise FileFormatError("TIFF stacks need the tifffile package (pip install tifffile)") from exc
    p = Path(os.fspath(path))
    try:
        raw = np.asarray(tifffile.imread(p))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a file-format error
        raise FileFormatError(f"{p}: not a readable TIFF stack ({_one_line(exc)})") from None
    if raw.dtype.kind not in "iuf":
        raise FileFormatError(f"{p}: TIFF pixels of dtype {raw.dtype}; expected real numbers")
    if raw.ndim == 2:
        raw = raw[None]
    if raw.ndim != 3 or raw.size == 0:
        raise FileFormatError(f"{p}: expected a stack of 2-D images, got shape {raw.shape}")
    if rows is not None:
        raw = raw[:, rows, :]
    ang, src = _angles_beside(p, angles, raw.shape[0])
    return RawTomo(raw.transpose(0, 2, 1), ang, None, None, "tiff", [], src, str(p))
