"""CXI (HDF5) diffraction patterns: :func:`read_diffraction` and :func:`write_diffraction`.

:func:`read_diffraction` also dispatches ``.npy`` / ``.npz`` files to
:mod:`phasekit.io.arrays` and TIFF / EDF detector images to :mod:`phasekit.io.patterns` (the
format is recognised from the first bytes).

Layout written (CXI 1.5)
------------------------
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
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError, InputError
from .arrays import DiffractionData, dumps_json, read_npy, read_npz, squeeze_frames
from .atomic import atomic_write
from .cxi_common import (
    _ENERGY_UNITS,
    _FRAME_AXES,
    _LENGTH_UNITS,
    GROUND_TRUTH_NOTE,
    HC,
    HDF5_EXTENSIONS,
    _bit_counts,
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
    _one_line,
    _resolve,
    _scalar,
    _sniff,
    _sources,
    _to_bitfield,
    _to_str,
    _unknown_format,
    _write_array,
    reading_hdf5,
)
from .patterns import read_edf_pattern, read_tiff_pattern, sniff_pattern_format

__all__ = ["read_diffraction", "write_diffraction"]


def read_diffraction(path: str | os.PathLike) -> DiffractionData:
    """Read a diffraction pattern from a CXI/HDF5, ``.npy``, ``.npz``, TIFF or EDF file.

    The format is recognised from the file's first bytes (HDF5 signature, NumPy magic, zip
    archive, TIFF header, EDF ``{`` header); the extension only sharpens the error message for
    unreadable files.  TIFF and EDF detector images (:mod:`phasekit.io.patterns`) are returned
    as stored, zero frequency wherever the detector had it: :mod:`phasekit.cdi.prepare` finds
    and moves it.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  CXI/HDF5 files (``.cxi``, ``.h5``, ``.hdf5``, ``.nxs`` or any file with the
        HDF5 signature) are searched for frames at ``entry_N/data_M/data`` then
        ``entry_N/instrument_M/detector_K/data``; ``.npy`` holds the intensity; ``.npz`` holds
        ``intensity`` (or ``data``) and optionally ``mask`` (True = measured), ``support``,
        ``truth`` and the geometry (see :mod:`phasekit.io.arrays`); a TIFF holds one 2-D page;
        an EDF file one frame (``Dim_1`` = x is the fast axis).

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
        several frames (or TIFF pages), or a dimensionality other than 2-D/3-D.  The message is
        one line and starts with the file name.

    Examples
    --------
    >>> d = read_diffraction("pattern.tif")  # doctest: +SKIP
    >>> d.shape, d.metadata["format"]  # doctest: +SKIP
    ((1024, 1024), 'tiff')
    """
    p = _existing_file(path)
    kind = _sniff(p)
    if kind == "npy":
        return read_npy(p)
    if kind == "npz":
        return read_npz(p)
    if kind == "hdf5":
        return _read_hdf5_diffraction(p)
    try:
        image = sniff_pattern_format(p)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from exc
    if image == "tiff":
        return read_tiff_pattern(p)
    if image == "edf":
        return read_edf_pattern(p)
    raise _unrecognised(p)


def _unrecognised(p: Path) -> FileFormatError:
    exc = _unknown_format(p)
    if p.stat().st_size and p.suffix.lower() not in HDF5_EXTENSIONS | {".npy", ".npz"}:
        return FileFormatError(f"{p}: unrecognised file format (expected CXI/HDF5, .npy, .npz, "
                               "TIFF or EDF)")
    return exc


def _read_hdf5_diffraction(p: Path) -> DiffractionData:
    with reading_hdf5(p, "HDF5 file") as f:
        try:
            return _read_hdf5_open(p, f)
        except InputError as exc:  # inconsistent arrays (DiffractionData): name the file
            raise FileFormatError(f"{p}: {_one_line(exc)}") from exc


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
