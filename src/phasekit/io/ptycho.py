r"""CXI ptychography scans and results.

Scan files (:func:`write_ptycho`, CXI 1.5 layout as PtyPy, PyNX and cdtools read it)::

    /cxi_version                                    150
    /entry_1                                        NX_class = NXentry
        instrument_1/source_1/energy, wavelength    J, m
        instrument_1/detector_1/data                (N, My, Mx) float32 counts, zero frequency at M//2
        instrument_1/detector_1/mask                (My, Mx) uint32 CXI bit field (0 = good)
        instrument_1/detector_1/distance            m
        instrument_1/detector_1/x_pixel_size, y_pixel_size   m (detector pixels)
        instrument_1/detector_1/translation         soft link -> sample_1/geometry_1/translation
        sample_1/geometry_1/translation             (N, 3) m, columns (x, y, z)
        data_1/data                                 soft link -> instrument_1/detector_1/data
        data_1/translation                          soft link -> sample_1/geometry_1/translation
        simulation_1/{object, probe, positions}     ground truth of a simulation (note attribute)

**Translations.**  CXI stores the *sample* translation in metres.  Moving the sample by
:math:`+\mathbf t` moves the illuminated spot on the sample by :math:`-\mathbf t`, so phasekit
writes ``translation[:, :2] = -(x, y) * pixel_size`` from the probe-window positions (pixels),
and :meth:`PtychoData.positions_px` inverts it, then shifts so that the smallest position is 0
(plus ``margin``).  Files from other software whose scans come out mirrored can be read with
``flip=True`` (positions ``+t / pixel_size``).  The object pixel is
:math:`\lambda z/(M p)`, from the wavelength, distance and detector pixel of the file.

Results (:func:`write_ptycho_result`): ``entry_1/image_1`` is the object (``data_type =
"object"``) with ``process_1`` holding the history, config, provenance and timings as
:func:`phasekit.io.write_result` does; ``entry_1/image_2`` is the probe (``data_type = "probe"``);
``entry_1/result_1/illumination`` the illuminated-pixel map.  :func:`phasekit.io.read_result`
reads them (the probe is ``images[1]``).
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError, InputError
from .arrays import dumps_json, loads_json, sniff_format
from .atomic import atomic_write
from .cxi_common import (GROUND_TRUTH_NOTE, HC, _ENERGY_UNITS, _LENGTH_UNITS, _cxi_entry,
                         _detectors, _entries, _existing_file, _get, _h5py, _is_dataset,
                         _is_group, _scalar, _sniff, _to_bitfield, _to_str, _version,
                         _write_array, h5_array, reading_hdf5, READ_ERRORS)
from .results import _write_history

__all__ = ["PtychoData", "read_ptycho", "write_ptycho", "write_ptycho_result", "is_ptycho_file"]


@dataclass
class PtychoData:
    """A ptychographic scan read from (or to be written to) a file."""

    intensities: np.ndarray                 # (N, My, Mx) float32, centred
    translations: np.ndarray                # (N, 3) metres (x, y, z), CXI sample translations
    wavelength: float | None = None
    distance: float | None = None
    pixel_size: float | None = None         # detector pixel (m)
    mask: np.ndarray | None = None          # (My, Mx) bool, True = measured
    truth: np.ndarray | None = None         # simulation ground truth object
    probe: np.ndarray | None = None         # simulation ground truth probe
    truth_positions: np.ndarray | None = None  # the simulation's pixel positions
    metadata: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def n_frames(self) -> int:
        return int(self.intensities.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.intensities.shape[1:])

    def object_pixel_size(self) -> float:
        """``lambda z / (M p)`` (m); needs wavelength, distance and pixel size."""
        if not (self.wavelength and self.distance and self.pixel_size):
            raise FileFormatError(f"{self.path or 'data'}: wavelength, distance and pixel size "
                                  "are needed to convert translations to pixels")
        m = self.frame_shape[0]
        return self.wavelength * self.distance / (m * self.pixel_size)

    def positions_px(self, margin: float = 0.0, flip: bool = False) -> np.ndarray:
        """Probe-window positions in object pixels, (N, 2) (y, x), smallest at ``margin``."""
        if self.truth_positions is not None and margin == 0 and not flip:
            return np.asarray(self.truth_positions, dtype=np.float64)
        dx = self.object_pixel_size()
        t = np.asarray(self.translations, dtype=np.float64)
        yx = np.stack([t[:, 1], t[:, 0]], axis=1) / dx
        if not flip:
            yx = -yx
        return yx - yx.min(axis=0) + float(margin)


def is_ptycho_file(path) -> bool:
    """An HDF5 file with a frame stack and sample translations (a ptychography scan)."""
    p = Path(os.fspath(path))
    try:
        if not p.is_file() or sniff_format(p) != "hdf5":
            return False
        with reading_hdf5(p) as f:
            return _find_scan(f) is not None
    except (FileFormatError, *READ_ERRORS):
        return False


def _find_scan(f):
    """(data path, translation path) of the first scan in the file, or None."""
    for e in _entries(f):
        eg = f[e]
        tr = None
        for cand in (f"{e}/sample_1/geometry_1/translation", f"{e}/data_1/translation",
                     *(f"{e}/{d}/translation" for d in _detectors(eg))):
            if _is_dataset(_get(f, cand)):
                tr = cand
                break
        if tr is None:
            continue
        for cand in (f"{e}/data_1/data", *(f"{e}/{d}/data" for d in _detectors(eg))):
            ds = _get(f, cand)
            if _is_dataset(ds) and ds.ndim == 3:
                return cand, tr
    return None


def read_ptycho(path) -> PtychoData:
    """Read a CXI ptychography scan (written by phasekit or other software).

    Frames from ``entry_N/data_1/data`` (or a detector's ``data``), translations from
    ``entry_N/sample_1/geometry_1/translation`` (or ``data_1/translation``, a detector's
    ``translation``), wavelength from ``source_1/wavelength`` or ``energy`` (J), ``distance``,
    ``x_pixel_size`` and the mask (CXI bit field, ``mask`` or ``mask_shared``) from the
    detector; ``units`` attributes are honoured.  Negative frame values (bad-pixel markers of
    some software) are masked out.

    Raises
    ------
    FileFormatError
        Missing or corrupt file, or no frame stack with translations.
    """
    p = _existing_file(path)
    if _sniff(p) != "hdf5":
        raise FileFormatError(f"{p}: not an HDF5/CXI file")
    with reading_hdf5(p, "ptychography file") as f:
        return _read_open(p, f)


def _read_open(p: Path, f) -> PtychoData:
    found = _find_scan(f)
    if found is None:
        raise FileFormatError(f"{p}: no ptychography scan (a 3-D entry_1/data_1/data with "
                              "entry_1/sample_1/geometry_1/translation)")
    dpath, tpath = found
    I = h5_array(f[dpath], p, "biuf").astype(np.float32)
    if I.size == 0:
        raise FileFormatError(f"{p}: {dpath} is empty (shape {I.shape})")
    t = h5_array(f[tpath], p, "iuf").astype(np.float64)
    if t.ndim == 1 and t.size == 3 * I.shape[0]:
        t = t.reshape(-1, 3)
    if t.ndim != 2 or t.shape[0] != I.shape[0] or t.shape[1] not in (2, 3):
        raise FileFormatError(f"{p}: {tpath} shape {t.shape} does not match {I.shape[0]} frames")
    if not np.isfinite(t).all():
        raise FileFormatError(f"{p}: {tpath} holds NaN or infinite translations")
    units = _to_str(f[tpath].attrs.get("units"))
    if units and units.strip().lower() in _LENGTH_UNITS:
        t = t * _LENGTH_UNITS[units.strip().lower()]
    if t.shape[1] == 2:
        t = np.concatenate([t, np.zeros((len(t), 1))], axis=1)
    entry = dpath.split("/")[0]
    eg = f[entry]
    warnings: list[str] = []
    wl = dist = pix = None
    mask = None
    for d in _detectors(eg):
        g = f"{entry}/{d}"
        if dist is None and _is_dataset(_get(f, f"{g}/distance")):
            dist = _scalar(f[f"{g}/distance"], _LENGTH_UNITS, warnings)
        if pix is None and _is_dataset(_get(f, f"{g}/x_pixel_size")):
            pix = _scalar(f[f"{g}/x_pixel_size"], _LENGTH_UNITS, warnings)
        for name in ("mask", "mask_shared"):
            mds = _get(f, f"{g}/{name}")
            if mask is None and _is_dataset(mds):
                m = h5_array(mds, p, "biuf")
                if m.ndim == 3 and m.shape[0] == 1:
                    m = m[0]
                if m.shape != I.shape[1:]:
                    raise FileFormatError(f"{p}: mask {g}/{name} shape {m.shape} != frame shape "
                                          f"{I.shape[1:]}")
                mask = m == 0
    for ins in (k for k in eg.keys() if k.startswith("instrument")):
        for src in (k for k in eg[ins].keys() if k.startswith("source")):
            g = f"{entry}/{ins}/{src}"
            if wl is None and _is_dataset(_get(f, f"{g}/wavelength")):
                wl = _scalar(f[f"{g}/wavelength"], _LENGTH_UNITS, warnings)
            if wl is None and _is_dataset(_get(f, f"{g}/energy")):
                en = _scalar(f[f"{g}/energy"], _ENERGY_UNITS, warnings)
                wl = HC / en if en else None
    if not np.isfinite(I).all():
        raise InputError(f"{p}: {int(np.count_nonzero(~np.isfinite(I)))} NaN or infinite value(s) "
                         "in the frames")
    bad = I < 0
    if np.any(bad):
        frame_bad = bad.any(axis=0)
        mask = ~frame_bad if mask is None else (mask & ~frame_bad)
        I = np.where(bad, 0, I)
        warnings.append(f"{int(frame_bad.sum())} pixels with negative values masked")
    truth = probe = tpos = None
    params = None
    sim = _get(eg, "simulation_1")
    if _is_group(sim):
        if _is_dataset(_get(sim, "object")):
            truth = h5_array(sim["object"], p, "biufc")
        if _is_dataset(_get(sim, "probe")):
            probe = h5_array(sim["probe"], p, "biufc")
        if _is_dataset(_get(sim, "positions")):
            tpos = h5_array(sim["positions"], p, "iuf").astype(np.float64)
            if tpos.shape != (I.shape[0], 2) or not np.isfinite(tpos).all():
                warnings.append(f"simulation positions of shape {tpos.shape} ignored")
                tpos = None
        if sim.attrs.get("params") is not None:
            try:
                params = loads_json(sim.attrs["params"])
            except (ValueError, TypeError):
                params = None
    meta = {"data_path": dpath, "translation_path": tpath, "warnings": warnings}
    if params is not None:
        meta["params"] = params
    return PtychoData(intensities=I, translations=t, wavelength=wl, distance=dist, pixel_size=pix,
                      mask=mask, truth=truth, probe=probe, truth_positions=tpos, metadata=meta,
                      path=str(p))


def write_ptycho(path, intensities, positions, *, wavelength: float, distance: float,
                 pixel_size: float, mask=None, truth=None, probe=None,
                 params: dict | None = None) -> Path:
    """Write a ptychography scan as a CXI 1.5 file, atomically.

    Parameters
    ----------
    intensities : (N, My, Mx) counts, centred.
    positions : (N, 2) probe-window positions in object pixels (y, x); stored as sample
        translations ``-(x, y) * dx`` in metres with ``dx = wavelength distance / (My pixel_size)``.
    wavelength, distance, pixel_size : metres (pixel_size = detector pixel).
    mask : (My, Mx) bool, True = measured (stored as a CXI bit field, 0 = good).
    truth, probe : simulation ground truth (stored under ``simulation_1`` with the positions).
    """
    I = np.asarray(intensities)
    if I.ndim != 3:
        raise InputError(f"intensities must be (N, My, Mx), got shape {I.shape}")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (I.shape[0], 2):
        raise InputError(f"positions shape {pos.shape} != ({I.shape[0]}, 2)")
    for v, name in ((wavelength, "wavelength"), (distance, "distance"), (pixel_size, "pixel_size")):
        if v is None or not np.isfinite(v) or v <= 0:
            raise InputError(f"{name} must be positive (metres), got {v!r}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != I.shape[1:]:
            raise InputError(f"mask shape {mask.shape} != frame shape {I.shape[1:]}")
    dx = wavelength * distance / (I.shape[1] * pixel_size)
    t = np.zeros((len(pos), 3))
    t[:, 0] = -pos[:, 1] * dx
    t[:, 1] = -pos[:, 0] * dx
    h5py = _h5py()
    p = Path(os.fspath(path))
    with atomic_write(p) as tmp:
        with h5py.File(tmp, "w") as f:
            entry = _cxi_entry(f)
            ins = entry.create_group("instrument_1")
            ins.attrs["NX_class"] = "NXinstrument"
            src = ins.create_group("source_1")
            src.attrs["NX_class"] = "NXsource"
            src.create_dataset("energy", data=HC / wavelength).attrs["units"] = "J"
            src.create_dataset("wavelength", data=wavelength).attrs["units"] = "m"
            det = ins.create_group("detector_1")
            det.attrs["NX_class"] = "NXdetector"
            _write_array(det, "data", I.astype(np.float32), axes="translation:y:x")
            det.create_dataset("distance", data=float(distance)).attrs["units"] = "m"
            det.create_dataset("x_pixel_size", data=float(pixel_size)).attrs["units"] = "m"
            det.create_dataset("y_pixel_size", data=float(pixel_size)).attrs["units"] = "m"
            if mask is not None:
                _write_array(det, "mask", _to_bitfield(mask),
                             description="CXI bad-pixel bit field: 0 = good, bit 0 = invalid")
            geo = entry.create_group("sample_1").create_group("geometry_1")
            geo.create_dataset("translation", data=t).attrs["units"] = "m"
            det["translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
            d1 = entry.create_group("data_1")
            d1.attrs["NX_class"] = "NXdata"
            d1.attrs["signal"] = "data"
            d1["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
            d1["translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
            if truth is not None or probe is not None or params is not None:
                sim = entry.create_group("simulation_1")
                sim.attrs["note"] = GROUND_TRUTH_NOTE
                if truth is not None:
                    _write_array(sim, "object", np.asarray(truth), note=GROUND_TRUTH_NOTE)
                if probe is not None:
                    _write_array(sim, "probe", np.asarray(probe), note=GROUND_TRUTH_NOTE)
                _write_array(sim, "positions", pos, description="probe-window positions, "
                             "object pixels (y, x), top-left corners")
                if params is not None:
                    sim.attrs["params"] = dumps_json(params)
    return p


def write_ptycho_result(path, result, *, extra: dict | None = None) -> Path:
    """Write a ptychography :class:`~phasekit.engine.ReconResult`: object (``image_1``), probe
    (``image_2``), history, config, provenance, timings, and ``extra`` arrays in ``result_1``."""
    h5py = _h5py()
    p = Path(os.fspath(path))
    date = _dt.datetime.now(_dt.timezone.utc).isoformat()
    prov = result.provenance or {}
    command = prov.get("command", "phasekit (Python API)") if isinstance(prov, dict) else \
        "phasekit (Python API)"
    extras = dict(result.extras or {})
    extras.update(extra or {})
    with atomic_write(p) as tmp:
        with h5py.File(tmp, "w") as f:
            entry = _cxi_entry(f, date)
            for k, (arr, kind) in enumerate(((result.image, "object"), (result.probe, "probe")), 1):
                if arr is None:
                    continue
                g = entry.create_group(f"image_{k}")
                g.attrs["NX_class"] = "NXdata"
                g.attrs["signal"] = "data"
                _write_array(g, "data", np.asarray(arr))
                g.create_dataset("data_space", data="real")
                g.create_dataset("data_type", data=kind)
                if k == 1:
                    g.attrs["rfactor"] = float(result.rfactor)
                    proc = g.create_group("process_1")
                    proc.attrs["NX_class"] = "NXprocess"
                    proc.create_dataset("program", data="phasekit")
                    proc.create_dataset("version", data=_version())
                    proc.create_dataset("date", data=date)
                    proc.create_dataset("command", data=str(command))
                    note = proc.create_group("note")
                    note.attrs["NX_class"] = "NXnote"
                    for name, obj in (("config", result.config), ("provenance", result.provenance),
                                      ("timings", result.timings)):
                        if obj is not None:
                            note.create_dataset(name, data=dumps_json(obj)).attrs["type"] = \
                                "application/json"
                    if result.history:
                        _write_history(proc, result.history)
            if extras:
                res = entry.create_group("result_1")
                res.attrs["note"] = "additional phasekit result arrays"
                for name, arr in extras.items():
                    _write_array(res, name, np.asarray(arr))
    return p


def describe_ptycho(path) -> str:
    """A short summary of a ptychography scan file (``phasekit info``)."""
    d = read_ptycho(path)
    n, my, mx = d.intensities.shape
    from .describe import file_line

    lines = [file_line(Path(d.path), "CXI ptychography scan"),
             f"frames: {n} x {my}x{mx} float32, counts per frame: mean "
             f"{float(d.intensities.sum(axis=(1, 2)).mean()):.4g}, max pixel "
             f"{float(d.intensities.max()):.4g}"]
    if d.mask is not None:
        lines.append(f"mask: {int(d.mask.sum())} of {d.mask.size} pixels measured")
    geo = []
    if d.wavelength:
        geo.append(f"wavelength {d.wavelength:.5g} m ({HC / d.wavelength / 1.602176634e-16:.4g} keV)")
    if d.distance:
        geo.append(f"distance {d.distance:.4g} m")
    if d.pixel_size:
        geo.append(f"detector pixel {d.pixel_size:.4g} m")
    if geo:
        lines.append("geometry: " + ", ".join(geo))
    try:
        dx = d.object_pixel_size()
        pos = d.positions_px()
        span = pos.max(axis=0) - pos.min(axis=0)
        lines.append(f"scan: object pixel {dx * 1e9:.4g} nm, positions span {span[0]:.1f} x "
                     f"{span[1]:.1f} px")
    except FileFormatError:
        lines.append("scan: translations present, geometry incomplete (no pixel conversion)")
    if d.truth is not None:
        lines.append(f"simulation ground truth: object {d.truth.shape}, probe "
                     f"{None if d.probe is None else d.probe.shape}")
    for w in d.metadata.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
