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
    """A ptychographic scan read from (or to be written to) a file.

    ``translations`` are CXI *sample* translations (metres), whatever the file's layout:
    PtyLab's ``encoder`` and PtyPy's ``positions`` (probe positions on the object) are stored
    negated (:mod:`phasekit.io.ptycho_formats`).  ``basis`` holds the detector's CXI
    ``basis_vectors`` when the file has them: row 0 the step of one detector row (the frame's
    ``y`` index), row 1 of one column, as 3-vectors in metres; the object grid is taken
    parallel to them (cdtools' convention: far-field exit waves and near-field holograms keep
    the detector's orientation).
    """

    intensities: np.ndarray                 # (N, My, Mx) float32, centred (far field)
    translations: np.ndarray                # (N, 3) metres (x, y, z), CXI sample translations
    wavelength: float | None = None
    distance: float | None = None
    pixel_size: float | None = None         # detector pixel (m), x (columns)
    mask: np.ndarray | None = None          # (My, Mx) bool, True = measured
    truth: np.ndarray | None = None         # simulation ground truth object
    probe: np.ndarray | None = None         # simulation ground truth probe
    truth_positions: np.ndarray | None = None  # the simulation's pixel positions
    metadata: dict = field(default_factory=dict)
    path: str | None = None
    y_pixel_size: float | None = None       # detector pixel (m), y (rows); None: = pixel_size
    basis: np.ndarray | None = None         # (2, 3) detector basis vectors (rows: i, j), m
    layout: str = "cxi"                     # "cxi", "cdtools-cxi", "ptylab", "ptypy"

    @property
    def n_frames(self) -> int:
        return int(self.intensities.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.intensities.shape[1:])

    def detector_pixel(self) -> tuple[float, float]:
        """Detector pitch (y, x) in metres (from ``basis`` when given)."""
        if self.basis is not None:
            b = np.asarray(self.basis, dtype=np.float64)
            return float(np.linalg.norm(b[0])), float(np.linalg.norm(b[1]))
        if not self.pixel_size:
            raise FileFormatError(f"{self.path or 'data'}: no detector pixel size "
                                  "(x_pixel_size or basis_vectors)")
        return float(self.y_pixel_size or self.pixel_size), float(self.pixel_size)

    def object_pixel_yx(self) -> tuple[float, float]:
        """Far-field object pixel ``lambda z / (M_a p_a)`` per axis (y, x), metres."""
        if not (self.wavelength and self.distance and (self.pixel_size or self.basis is not None)):
            raise FileFormatError(f"{self.path or 'data'}: wavelength, distance and pixel size "
                                  "are needed to convert translations to pixels")
        py, px = self.detector_pixel()
        my, mx = self.frame_shape
        return (self.wavelength * self.distance / (my * py),
                self.wavelength * self.distance / (mx * px))

    def object_pixel_size(self) -> float:
        """``lambda z / (M p)`` (m) along y; needs wavelength, distance and pixel size."""
        return self.object_pixel_yx()[0]

    def positions_px(self, margin: float = 0.0, flip: bool = False, transpose: bool = False,
                     pixel=None) -> np.ndarray:
        """Probe-window positions in object pixels, (N, 2) (y, x), smallest at ``margin``.

        Parameters
        ----------
        margin : float
            Pixels added after shifting the smallest position to 0.
        flip : bool
            Negate the positions (files whose sample-translation sign is the opposite of
            CXI's; the reconstruction comes out rotated by 180 degrees otherwise, and in the
            near field it fails).
        transpose : bool
            Swap y and x of the translations (files whose detector axes are transposed with
            respect to the translation stage).
        pixel : float or (float, float), optional
            Object pixel (y, x) in metres; default the far-field one
            (:meth:`object_pixel_yx`).  Pass the Fresnel-scaled pixel for a near-field scan.
        """
        dy, dx = self.object_pixel_yx() if pixel is None else \
            ((float(pixel), float(pixel)) if np.ndim(pixel) == 0 else tuple(map(float, pixel)))
        t = np.asarray(self.translations, dtype=np.float64)
        if t.shape[1] == 2:
            t = np.concatenate([t, np.zeros((len(t), 1))], axis=1)
        if self.basis is not None:
            b = np.asarray(self.basis, dtype=np.float64)
            units = b / np.linalg.norm(b, axis=1, keepdims=True)
        else:  # phasekit's own files: rows along +y, columns along +x
            units = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        obj_basis = units * np.array([[dy], [dx]])
        # the probe moves by -t on the sample; pixels = pinv(basis) (-t)
        yx = -t @ np.linalg.pinv(obj_basis)
        if flip:
            yx = -yx
        if transpose:
            yx = yx[:, ::-1]
        yx = yx - yx.min(axis=0) + float(margin)
        if self.truth_positions is not None and margin == 0 and not (flip or transpose):
            # a phasekit simulation read with its own geometry: its positions (object frame)
            tp = np.asarray(self.truth_positions, dtype=np.float64)
            if tp.shape == yx.shape and np.allclose(yx, tp - tp.min(axis=0), atol=1e-3):
                return tp
        return yx


def is_ptycho_file(path) -> bool:
    """An HDF5 file with a frame stack and sample translations (a ptychography scan)."""
    p = Path(os.fspath(path))
    try:
        if not p.is_file() or sniff_format(p) != "hdf5":
            return False
        with reading_hdf5(p) as f:
            from .ptycho_formats import ptycho_layout

            return ptycho_layout(f) is not None
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
    """Read a ptychography scan: CXI (phasekit, PyNX, cdtools with ``basis_vectors``), PtyLab
    HDF5 or PtyPy ``.ptyd`` (:mod:`phasekit.io.ptycho_formats`), told apart by their keys.

    CXI: frames from ``entry_N/data_1/data`` (or a detector's ``data``), translations from
    ``entry_N/sample_1/geometry_1/translation`` (or ``data_1/translation``, a detector's
    ``translation``), wavelength from ``source_1/wavelength`` or ``energy`` (J), ``distance``,
    ``x_pixel_size``/``y_pixel_size``, ``basis_vectors`` (detector orientation and pitch, as
    cdtools writes them) and the mask (CXI bit field, ``mask`` or ``mask_shared``) from the
    detector; ``units`` attributes are honoured.  Negative frame values (bad-pixel markers of
    some software) are masked out.

    Examples
    --------
    >>> d = read_ptycho("scan.cxi")  # doctest: +SKIP
    >>> d.positions_px().shape, d.object_pixel_yx()  # doctest: +SKIP
    ((200, 2), (1.995e-08, 1.995e-08))

    Raises
    ------
    FileFormatError
        Missing or corrupt file, or no frame stack with translations.
    """
    p = _existing_file(path)
    if _sniff(p) != "hdf5":
        raise FileFormatError(f"{p}: not an HDF5/CXI file")
    from .ptycho_formats import ptycho_layout, read_ptylab, read_ptypy

    with reading_hdf5(p, "ptychography file") as f:
        layout = ptycho_layout(f)
        if layout == "ptylab":
            return read_ptylab(p, f)
        if layout == "ptypy":
            return read_ptypy(p, f)
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
    wl = dist = pix = ypix = basis = None
    mask = None
    for d in _detectors(eg):
        g = f"{entry}/{d}"
        if dist is None and _is_dataset(_get(f, f"{g}/distance")):
            dist = _scalar(f[f"{g}/distance"], _LENGTH_UNITS, warnings)
        if pix is None and _is_dataset(_get(f, f"{g}/x_pixel_size")):
            pix = _scalar(f[f"{g}/x_pixel_size"], _LENGTH_UNITS, warnings)
        if ypix is None and _is_dataset(_get(f, f"{g}/y_pixel_size")):
            ypix = _scalar(f[f"{g}/y_pixel_size"], _LENGTH_UNITS, warnings)
        if basis is None and _is_dataset(_get(f, f"{g}/basis_vectors")):
            basis = _basis_vectors(f[f"{g}/basis_vectors"], p)
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
    extra_meta: dict = {}
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
        if _is_dataset(_get(sim, "true_positions")):
            true_pos = h5_array(sim["true_positions"], p, "iuf").astype(np.float64)
            if true_pos.shape == (I.shape[0], 2):
                extra_meta["true_positions"] = true_pos
        if sim.attrs.get("params") is not None:
            try:
                params = loads_json(sim.attrs["params"])
            except (ValueError, TypeError):
                params = None
    meta = {"data_path": dpath, "translation_path": tpath, "warnings": warnings, **extra_meta}
    if params is not None:
        meta["params"] = params
    if basis is not None:
        ypix, pix = float(np.linalg.norm(basis[0])), float(np.linalg.norm(basis[1]))
    return PtychoData(intensities=I, translations=t, wavelength=wl, distance=dist, pixel_size=pix,
                      mask=mask, truth=truth, probe=probe, truth_positions=tpos, metadata=meta,
                      path=str(p), y_pixel_size=ypix, basis=basis,
                      layout="cdtools-cxi" if basis is not None else "cxi")


def _basis_vectors(ds, p: Path) -> np.ndarray:
    """CXI ``basis_vectors`` as (2, 3) rows (i, j) in metres; cdtools writes (3, 2) columns."""
    b = h5_array(ds, p, "iuf").astype(np.float64)
    if b.shape == (3, 2):
        b = b.T
    if b.shape != (2, 3) or not np.isfinite(b).all():
        raise FileFormatError(f"{p}: {ds.name} must be a finite (2, 3) or (3, 2) array of "
                              f"detector basis vectors, got shape {b.shape}")
    units = _to_str(ds.attrs.get("units"))
    if units and units.strip().lower() in _LENGTH_UNITS:
        b = b * _LENGTH_UNITS[units.strip().lower()]
    n = np.linalg.norm(b, axis=1)
    if not (n > 0).all() or np.linalg.matrix_rank(b, tol=1e-6 * n.max()) < 2:
        raise FileFormatError(f"{p}: {ds.name} holds degenerate detector basis vectors {b.tolist()}")
    return b


def check_scan_geometry(I: np.ndarray, positions, wavelength, distance, pixel_size) -> np.ndarray:
    """Validate a scan's positions (N, 2) against frames ``I`` (N, ...) and its geometry
    (positive finite metres) before writing; return the positions as float64."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (I.shape[0], 2):
        raise InputError(f"positions shape {pos.shape} != ({I.shape[0]}, 2)")
    for v, name in ((wavelength, "wavelength"), (distance, "distance"), (pixel_size, "pixel_size")):
        if v is None or not np.isfinite(v) or v <= 0:
            raise InputError(f"{name} must be positive (metres), got {v!r}")
    return pos


def write_ptycho(path, intensities, positions, *, wavelength: float, distance: float,
                 pixel_size: float, mask=None, truth=None, probe=None,
                 params: dict | None = None, object_pixel: float | None = None,
                 true_positions=None) -> Path:
    """Write a ptychography scan as a CXI 1.5 file, atomically.

    Parameters
    ----------
    intensities : (N, My, Mx) counts, centred.
    positions : (N, 2) probe-window positions in object pixels (y, x); stored as sample
        translations ``-(x, y) * dx`` in metres with ``dx = wavelength distance / (My pixel_size)``.
    wavelength, distance, pixel_size : metres (pixel_size = detector pixel).
    mask : (My, Mx) bool, True = measured (stored as a CXI bit field, 0 = good).
    truth, probe : simulation ground truth (stored under ``simulation_1`` with the positions).
    object_pixel : float, optional
        Object pixel (m) that converts the positions to translations; default the far-field
        one.  A near-field simulation passes its Fresnel-scaled pixel (read it back with
        ``--near-field``).
    true_positions : (N, 2), optional
        A simulation's true positions when ``positions`` carry simulated errors
        (``simulation_1/true_positions``).
    """
    I = np.asarray(intensities)
    if I.ndim != 3:
        raise InputError(f"intensities must be (N, My, Mx), got shape {I.shape}")
    pos = check_scan_geometry(I, positions, wavelength, distance, pixel_size)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != I.shape[1:]:
            raise InputError(f"mask shape {mask.shape} != frame shape {I.shape[1:]}")
    dx = wavelength * distance / (I.shape[1] * pixel_size) if object_pixel is None \
        else float(object_pixel)
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
                if true_positions is not None:
                    _write_array(sim, "true_positions", np.asarray(true_positions, np.float64),
                                 description="true probe-window positions (the file's carry "
                                 "simulated errors), object pixels (y, x)")
                if params is not None:
                    sim.attrs["params"] = dumps_json(params)
    return p


def write_ptycho_result(path, result, *, extra: dict | None = None, pixel_size=None) -> Path:
    """Write a ptychography :class:`~phasekit.engine.ReconResult`: object (``image_1``), probe
    (``image_2``; (K, My, Mx) for K modes), history, config, provenance, timings, and
    ``extra`` arrays plus ``result.extras`` (illumination, refined ``positions`` (N, 2) in
    object pixels (y, x), fitted ``background``) in ``result_1``.

    Parameters
    ----------
    pixel_size : float or (float, float), optional
        Object pixel (y, x) in metres, written as CXI ``x_pixel_size`` / ``y_pixel_size``
        (``units = "m"``) in both image groups.

    Examples
    --------
    >>> write_ptycho_result("scan_result.cxi", result, pixel_size=(1.79e-7, 1.79e-7))  # doctest: +SKIP
    """
    if pixel_size is not None:
        py, px = (pixel_size, pixel_size) if np.ndim(pixel_size) == 0 else pixel_size
        if not all(np.isfinite(v) and v > 0 for v in (py, px)):
            raise InputError(f"pixel_size must be positive metres, got {pixel_size!r}")
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
                if pixel_size is not None:
                    g.create_dataset("x_pixel_size", data=float(px)).attrs["units"] = "m"
                    g.create_dataset("y_pixel_size", data=float(py)).attrs["units"] = "m"
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
                    ds = _write_array(res, name, np.asarray(arr))
                    if name in ("positions", "positions_initial") and ds is not None:
                        ds.attrs["units"] = "pixel"
                        ds.attrs["description"] = ("probe-window positions (y, x), object pixels, "
                                                   "top-left corners" + (", refined" if name ==
                                                                         "positions" else ""))
    return p


_LAYOUT_NAMES = {"cxi": "CXI ptychography scan", "cdtools-cxi": "CXI ptychography scan with "
                 "basis_vectors (cdtools)", "ptylab": "PtyLab HDF5 ptychography scan",
                 "ptypy": "PtyPy .ptyd ptychography scan"}


def describe_ptycho(path, *, scan_line: bool = True) -> str:
    """A short summary of a ptychography scan file (``phasekit info``).

    ``scan_line=False`` leaves out the far-field object pixel and scan extent (``phasekit
    info`` prints them from :func:`phasekit.ptycho.geometry.scan_geometry`, with
    ``--near-field`` and the plausibility warning).
    """
    d = read_ptycho(path)
    n, my, mx = d.intensities.shape
    from .describe import file_line

    lines = [file_line(Path(d.path), _LAYOUT_NAMES.get(d.layout, "ptychography scan")),
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
        py = d.y_pixel_size or d.pixel_size
        geo.append(f"detector pixel {d.pixel_size:.4g} m" if abs(py - d.pixel_size) <= 1e-9 * py
                   else f"detector pixel {py:.4g} x {d.pixel_size:.4g} m (y x)")
    if geo:
        lines.append("geometry: " + ", ".join(geo))
    if d.basis is not None:
        b = np.asarray(d.basis)
        lines.append("detector basis (rows i, j; m): " + "; ".join(
            "(" + ", ".join(f"{v:.4g}" for v in row) + ")" for row in b))
    if "orientation" in d.metadata:
        lines.append(f"orientation: {d.metadata['orientation']} (applied to the frames)")
    if d.metadata.get("propagation"):
        lines.append(f"file says: propagation {d.metadata['propagation']}")
    if scan_line:
        try:
            dy = d.object_pixel_yx()[0]
            pos = d.positions_px()
            span = pos.max(axis=0) - pos.min(axis=0)
            lines.append(f"scan: far-field object pixel {dy * 1e9:.4g} nm, positions span "
                         f"{span[0]:.1f} x {span[1]:.1f} px")
        except FileFormatError:
            lines.append("scan: translations present, geometry incomplete (no pixel conversion)")
    if d.truth is not None:
        lines.append(f"simulation ground truth: object {d.truth.shape}, probe "
                     f"{None if d.probe is None else d.probe.shape}")
    for w in d.metadata.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
