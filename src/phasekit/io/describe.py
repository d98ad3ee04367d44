"""Human-readable summaries of the files phasekit reads and writes (``phasekit info``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError
from .arrays import DiffractionData, dumps_json, loads_json
from .checkpoints import describe_checkpoint, is_torch_zip, read_checkpoint_summary
from .cxi_common import (
    ELEMENTARY_CHARGE,
    GROUND_TRUTH_NOTE,
    HC,
    _existing_file,
    _find_data,
    _get,
    _h5py,
    _image_paths,
    _is_group,
    _one_line,
    _sniff,
    _to_str,
    reading_hdf5,
)
from .diffraction import read_diffraction
from .patterns import sniff_pattern_format
from .results import read_result

__all__ = ["describe", "file_line"]


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
    where = (m.get("data_path") or m.get("data_key")
             or {"tiff": "TIFF page", "edf": "EDF frame"}.get(m.get("format"), "array"))
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
    algo = _algorithm_line(r)
    if algo:
        lines.append(algo)
    kinds = meta.get("data_types") or []
    if all(k in (None, "object") for k in kinds):  # CDI: say "(object)" only beside a probe
        kinds = []
    for k, im in enumerate(r["images"], 1):
        kind = kinds[k - 1] if k - 1 < len(kinds) and kinds[k - 1] else None
        s = f"  image_{k}{f' ({kind})' if kind else ''}: shape {im.shape} {im.dtype}"
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


def _algorithm_line(r: dict) -> str | None:
    """``  algorithm HIO:20,ER:10, 30 iterations, R-factor 0.012`` from config and history."""
    cfg = r["config"] if isinstance(r["config"], dict) else {}
    parts = []
    sched = cfg.get("schedule")
    stages = [s for s in sched if isinstance(s, (list, tuple)) and len(s) >= 2] \
        if isinstance(sched, list) else []
    if cfg.get("modality"):
        parts.append(str(cfg["modality"]))
    if stages and (len(stages) > 1 or not cfg.get("algorithm")):
        parts.append("algorithm " + ",".join(f"{str(s[0]).upper()}:{s[1]}" for s in stages))
    elif cfg.get("algorithm"):
        parts.append(f"algorithm {cfg['algorithm']}")
    hist = r["history"] or {}
    its = hist.get("iteration")  # the driver numbers iterations from 1: the last is the count
    if isinstance(its, list) and its and isinstance(its[-1], (int, float)):
        parts.append(f"{int(its[-1])} iterations")
    elif stages and all(isinstance(s[1], int) for s in stages):
        parts.append(f"{sum(s[1] for s in stages)} iterations")
    rf = r["rfactors"][0] if r["rfactors"] else None
    if rf is not None:
        parts.append(f"R-factor {rf:.4g}")
    return "  " + ", ".join(parts) if parts else None


def _list_datasets(f, limit: int = 40) -> list[str]:
    h5py = _h5py()
    out: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out.append(f"  {name}: shape {obj.shape} {obj.dtype}")
        return None if len(out) < limit else True

    f.visititems(visit)
    return out


def file_line(p: Path, fmt: str) -> str:
    """The first line of every summary: ``file: <path> (<format>, <size>)``."""
    return f"file: {p} ({fmt}, {_human_size(p.stat().st_size)})"


def describe(path: str | os.PathLike) -> str:
    """Return a human-readable, multi-line summary of a data or result file.

    Used by ``phasekit info FILE`` (which also describes tomography files, see
    :func:`phasekit.tomo.io.describe_tomo`).  Recognised from the file's first bytes and layout:

    * CXI diffraction data: shape, stored dtype, intensity range, mask count and bit fields,
      geometry, ground truth and support of simulations;
    * CXI reconstruction results (CDI and ptychography): image shapes and dtypes, algorithm,
      iterations, R-factors, history keys, config, timings, provenance;
    * CXI ptychography scans: frames, mask, geometry, scan extent;
    * TIFF (one page) and EDF detector images: the pattern (shape, stored type, range);
    * ``.npy`` / ``.npz``: a diffraction pattern when the arrays make one, k-means output
      (``labels`` and ``centers``, written by ``phasekit kmeans``), otherwise the arrays;
    * phasekit checkpoints (``torch.save`` archives), summarised without unpickling their code.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        The summary (no trailing newline).

    Raises
    ------
    FileFormatError
        Missing, corrupt or unrecognised file; the one-line message names what was looked for.

    Examples
    --------
    >>> print(describe("data.cxi"))  # doctest: +SKIP
    file: data.cxi (CXI 1.5, 33.1 KiB, written by phasekit 0.1.0)
    diffraction data: entry_1/data_1/data  shape (64, 64)  (stored float32)
    ...
    """
    p = _existing_file(path)
    kind = _sniff(p)
    if kind == "npy":
        return "\n".join([file_line(p, "NumPy .npy")] + _describe_npy(p))
    if kind == "npz":
        if is_torch_zip(p):
            try:
                lines = describe_checkpoint(read_checkpoint_summary(p))
            except FileFormatError as exc:
                msg = str(exc)
                raise FileFormatError(msg if msg.startswith(str(p)) else f"{p}: {msg}") from None
            return "\n".join([file_line(p, "torch.save archive")] + lines)
        return "\n".join([file_line(p, "NumPy .npz")] + _describe_npz(p))
    if kind == "hdf5":
        return _describe_hdf5(p)
    if p.stat().st_size == 0:
        raise FileFormatError(f"{p}: empty file")
    try:
        image = sniff_pattern_format(p)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({_one_line(exc)})") from None
    if image == "tiff":
        return "\n".join([file_line(p, "TIFF image")] + _describe_diffraction(read_diffraction(p)))
    if image == "edf":
        d = read_diffraction(p)
        hdr = d.metadata.get("edf_header", {})
        extra = [f"  EDF header: {len(hdr)} keys"
                 + (f" (DataType {hdr['DataType']}, ByteOrder {hdr.get('ByteOrder', '?')})"
                    if "DataType" in hdr else "")]
        return "\n".join([file_line(p, "EDF image")] + _describe_diffraction(d) + extra)
    raise FileFormatError(f"{p}: unrecognised file (looked for an HDF5/CXI signature, a NumPy "
                          ".npy header, a zip archive (.npz or a phasekit checkpoint), a TIFF "
                          "header (a pattern, or a tilt series) and an EDF header)")


def _describe_hdf5(p: Path) -> str:
    from .spi import describe_stack, is_spi_stack

    if is_spi_stack(p):  # single-particle imaging stacks (phasekit.io.spi)
        return describe_stack(p)
    from .ptycho import describe_ptycho
    from .ptycho_formats import ptycho_layout

    with reading_hdf5(p, "HDF5 file") as f:
        version = None
        if "cxi_version" in f:
            try:
                version = int(np.asarray(f["cxi_version"][()]).ravel()[0])
            except (TypeError, ValueError, IndexError):
                version = None
        tomo = [g for g in ("tomo", "tomo_result") if _is_group(_get(f, g))]
        scan = ptycho_layout(f) is not None  # CXI, PtyLab or PtyPy scan
        has_data = _find_data(f)[0] is not None
        has_images = bool(_image_paths(f))
        creator = _to_str(f.attrs.get("creator"))
        listing = [] if (has_data or has_images) else _list_datasets(f, limit=6)
    if tomo and not (scan or has_data or has_images):
        raise FileFormatError(f"{p}: a tomography file (group /{tomo[0]}); describe it with "
                              "phasekit info or phasekit.tomo.io.describe_tomo")
    if scan and not has_images:
        return describe_ptycho(p)
    fmt = f"CXI {version // 100}.{version % 100 // 10}" if version and version > 0 else "HDF5"
    if creator:
        fmt += f", written by {creator}"
    lines = [file_line(p, fmt)]
    if has_data and not scan:
        lines += _describe_diffraction(read_diffraction(p))
    if has_images:
        lines += _describe_result(read_result(p))
    if not (has_data or has_images or scan):
        found = "; ".join(x.strip() for x in listing) or "no datasets"
        raise FileFormatError(
            f"{p}: HDF5 file of no layout phasekit reads (looked for diffraction data at "
            "entry_N/data_M/data or entry_N/instrument_M/detector_K/data, results at "
            "entry_N/image_M/data, a ptychography scan with sample_1/geometry_1/translation, "
            f"tomography groups /tomo and /tomo_result); it holds: {found}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- NumPy files
def _array_line(name: str, a: np.ndarray) -> str:
    s = f"  {name}: shape {a.shape} {a.dtype}"
    if a.dtype.kind in "biuf" and a.size:
        finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
        if finite.size:
            s += f", min {float(finite.min()):.4g}, max {float(finite.max()):.4g}"
        if finite.size != a.size:
            s += f", {a.size - finite.size} non-finite"
    return s


def _load_npy(p: Path) -> np.ndarray:
    try:
        return np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError...
        raise FileFormatError(f"{p}: corrupt or unreadable .npy file ({_one_line(exc)})") from exc


def _describe_npy(p: Path) -> list[str]:
    try:
        return _describe_diffraction(read_diffraction(p))
    except FileFormatError as exc:
        a = _load_npy(p)  # corrupt: this raises the reader's error
        why = str(exc).removeprefix(f"{p}: ")
        return [f"NumPy array (not a diffraction pattern: {why})", _array_line("array", a)]


def _load_npz(p: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays of an archive (pickled members left out and named in the second list)."""
    arrays, pickled = {}, []
    try:
        with np.load(p, allow_pickle=False) as z:
            for k in z.files:
                try:
                    arrays[k] = np.asarray(z[k])
                except ValueError as exc:
                    if "pickle" not in str(exc):
                        raise
                    pickled.append(k)
    except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many types on bad archives
        raise FileFormatError(f"{p}: corrupt or unreadable .npz file ({_one_line(exc)})") from exc
    return arrays, pickled


def _describe_npz(p: Path) -> list[str]:
    arrays, pickled = _load_npz(p)
    if "labels" in arrays and "centers" in arrays:
        lines = _describe_kmeans(arrays)
        if lines:
            return lines
    note = ""
    if "intensity" in arrays or "data" in arrays:
        try:
            return _describe_diffraction(read_diffraction(p))
        except FileFormatError as exc:
            note = f" (not a diffraction data set: {str(exc).removeprefix(f'{p}: ')})"
    lines = [f"NumPy archive: {len(arrays) + len(pickled)} array(s){note}"]
    lines += [_array_line(k, a) for k, a in arrays.items()]
    lines += [f"  {k}: Python objects (pickled; not loaded)" for k in pickled]
    return lines


def _scalar_of(a: np.ndarray | None) -> float | None:
    if a is None or a.size != 1 or a.dtype.kind not in "biuf":
        return None
    return float(a.reshape(()))


def _describe_kmeans(arrays: dict[str, np.ndarray]) -> list[str]:
    """k-means output of ``phasekit kmeans``; ``[]`` when the arrays do not fit that layout."""
    labels, centers = arrays["labels"], arrays["centers"]
    if centers.ndim != 2 or labels.ndim != 1 or labels.dtype.kind not in "iu":
        return []
    k, d = centers.shape
    cfg = {}
    if "config" in arrays:
        try:
            loaded = loads_json(arrays["config"])
            cfg = loaded if isinstance(loaded, dict) else {}
        except (ValueError, TypeError):
            cfg = {}
    lines = [f"k-means result: K={k} clusters of {d}-dimensional points, "
             f"N={labels.size} samples" + (f", method {cfg['method']}" if "method" in cfg else "")]
    parts = []
    obj, inertia, n_iter = (_scalar_of(arrays.get(n)) for n in ("objective", "inertia", "n_iter"))
    if obj is not None:
        parts.append(f"objective {obj:.6g}")
    if inertia is not None:
        parts.append(f"inertia {inertia:.6g}")
    if n_iter is not None:
        parts.append(f"{int(n_iter)} iterations")
    if parts:
        lines.append("  " + ", ".join(parts))
    if labels.size and labels.min() >= 0 and k:
        sizes = np.bincount(labels.astype(np.int64), minlength=k)
        lines.append(f"  cluster sizes: {int(sizes.min())}-{int(sizes.max())} "
                     f"({int(np.count_nonzero(sizes == 0))} empty)")
    objs = arrays.get("objectives")
    if objs is not None and objs.ndim == 1 and objs.size and objs.dtype.kind in "iuf":
        lines.append(f"  objective history: {objs.size} values, {float(objs[0]):.6g} -> "
                     f"{float(objs[-1]):.6g}")
    if cfg:
        lines.append(f"  config: {_short_json(cfg)}")
    return lines
