"""How the datasets of an HDF5 file are stored: links to other files, virtual datasets, filters.

Beamline files keep their frames in other files (a Dectris Eiger master file links
``/entry/data/data_000001`` to ``<name>_data_000001.h5``; a virtual dataset stitches the frames
of several files) and compress them with filters that HDF5 itself may lack (bitshuffle, LZ4,
Blosc...).  HDF5 hides a missing file behind an unhelpful ``KeyError``, or, for a virtual
dataset, silently returns its fill value in place of the missing frames.
:func:`~phasekit.io.cxi_common.reading_hdf5` calls :func:`scan_storage` on every file it opens:

* an external link whose file is missing or unreadable, and a virtual dataset whose source file
  is missing, make the file unreadable (a :class:`~phasekit.core.errors.FileFormatError` that
  names the link or dataset and the missing file);
* a dataset written with a filter that is not available is only an error when it is read; the
  message then names the filter and suggests ``pip install hdf5plugin`` (phasekit imports
  ``hdf5plugin`` by itself when it is installed and a file needs one of its filters).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import FileFormatError

__all__ = ["StorageReport", "filter_error", "scan_storage"]

#: names of the registered HDF5 filters that beamline files use most (HDF Group registry)
FILTER_NAMES = {307: "bzip2", 32000: "LZF", 32001: "Blosc", 32004: "LZ4", 32008: "bitshuffle",
                32013: "ZFP", 32015: "Zstandard", 32017: "SZ", 32018: "FCIDECOMP",
                32026: "Blosc2", 32024: "SZ3"}

#: at most this many objects are inspected (a bound on the time spent on huge files)
MAX_OBJECTS = 20000

# what h5py may raise when a link or a dataset's properties cannot be read
_H5_ERRORS = (KeyError, OSError, ValueError, RuntimeError, TypeError)


@dataclass
class StorageReport:
    """What :func:`scan_storage` found in a file.

    Attributes
    ----------
    broken : list of str
        One sentence per external link or virtual dataset whose file is missing.
    filters : list of tuple
        ``(dataset, filter id, filter name)`` of the datasets stored with a filter that this
        HDF5 library lacks.
    """

    broken: list[str] = field(default_factory=list)
    filters: list[tuple[str, int, str]] = field(default_factory=list)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _find_file(name: str, here: Path, prefix_var: str) -> Path | None:
    """Where HDF5 would find the file ``name`` of a link or virtual source, or ``None``.

    HDF5 looks in the directories of the environment variable ``prefix_var``
    (``HDF5_EXT_PREFIX`` or ``HDF5_VDS_PREFIX``), beside the file that holds the link and in the
    working directory; an absolute name is tried as given first, then by its base name.
    """
    rel = Path(name)
    candidates = []
    if rel.is_absolute():
        candidates.append(rel)
        rel = Path(rel.name)
    for d in filter(None, os.environ.get(prefix_var, "").split(os.pathsep)):
        candidates.append(Path(d) / rel)
    candidates += [here / rel, Path.cwd() / rel]
    for c in candidates:
        if c.is_file():
            return c
    return None


def _filter_name(code: int, stored: Any) -> str:
    name = stored.decode("latin-1") if isinstance(stored, bytes) else str(stored or "")
    name = name.split(";")[0].strip()
    return FILTER_NAMES.get(code) or name or f"filter {code}"


def _check_filters(ds, report: StorageReport) -> None:
    from h5py import h5z

    try:
        plist = ds.id.get_create_plist()
        filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
    except _H5_ERRORS:
        return
    for code, _flags, _values, stored in filters:
        if h5z.filter_avail(code):  # (an optional filter applied when written is needed too)
            continue
        report.filters.append((ds.name, int(code), _filter_name(int(code), stored)))


def _check_virtual(ds, p: Path, report: StorageReport) -> None:
    try:
        if not ds.is_virtual:
            return
        sources = ds.virtual_sources()
    except _H5_ERRORS:
        return
    missing: list[str] = []
    for src in sources:
        name = src.file_name
        if name == "." or "%b" in name or name in missing:  # this file, or a printf pattern
            continue
        if _find_file(name, Path(ds.file.filename).parent, "HDF5_VDS_PREFIX") is None:
            missing.append(name)
    if missing:
        files = ", ".join(missing)
        report.broken.append(f"virtual dataset {ds.name} stitches frames from {len(missing)} "
                             f"missing source file(s): {files} (HDF5 would return fill values "
                             f"for their frames; put the file(s) beside {p.name})")


def _check_link(group, name: str, link, p: Path, report: StorageReport) -> None:
    import h5py

    where = f"{group.name.rstrip('/')}/{name}"
    try:
        target = group[name]
    except _H5_ERRORS as exc:
        if _find_file(link.filename, p.parent, "HDF5_EXT_PREFIX") is None:
            report.broken.append(f"{where} is an external link to {link.filename}, which is "
                                 f"missing (expected beside {p.name}, in {p.parent})")
        else:
            report.broken.append(f"{where} is an external link to {link.filename}:{link.path}, "
                                 f"which cannot be opened ({_one_line(exc)})")
        return
    if isinstance(target, h5py.Dataset):
        _check_virtual(target, p, report)
        _check_filters(target, report)


def scan_storage(f, p: Path) -> StorageReport:
    """Find the external links, virtual datasets and filters of the open file ``f`` that
    cannot be read.

    Parameters
    ----------
    f : h5py.File
        The open file.
    p : pathlib.Path
        Its path (links and virtual sources are looked for beside it).

    Returns
    -------
    StorageReport
        The broken links and virtual datasets, and the datasets of unavailable filters (after
        importing ``hdf5plugin`` when it is installed and a filter is missing).

    Examples
    --------
    >>> with h5py.File(path, "r") as f:  # doctest: +SKIP
    ...     scan_storage(f, path).broken
    ['/entry/data/data_000001 is an external link to x_data_000001.h5, which is missing ...']
    """
    import h5py

    report = StorageReport()
    objects: list[Any] = [f]

    def visit(_name, obj):
        objects.append(obj)
        return True if len(objects) >= MAX_OBJECTS else None

    try:
        f.visititems(visit)
    except _H5_ERRORS:
        pass
    for obj in objects:
        if isinstance(obj, h5py.Dataset):
            _check_virtual(obj, p, report)
            _check_filters(obj, report)
            continue
        try:
            names = list(obj.keys())
        except _H5_ERRORS:
            continue
        for name in names:
            try:
                link = obj.get(name, getlink=True)
            except _H5_ERRORS:
                continue
            if isinstance(link, h5py.ExternalLink):
                _check_link(obj, name, link, p, report)
    if report.filters and _load_hdf5plugin():
        from h5py import h5z

        report.filters = [t for t in report.filters if not h5z.filter_avail(t[1])]
    return report


def _load_hdf5plugin() -> bool:
    """Import ``hdf5plugin`` (which registers its filters with HDF5) if it is installed."""
    try:
        import hdf5plugin  # noqa: F401
    except Exception:  # noqa: BLE001 - absent or broken: the filters stay unavailable
        return False
    return True


def filter_error(p: Path, report: StorageReport) -> FileFormatError | None:
    """The error for a read that failed on a dataset of an unavailable filter, or ``None``.

    Parameters
    ----------
    p : pathlib.Path
        The file.
    report : StorageReport
        What :func:`scan_storage` found in it.

    Returns
    -------
    FileFormatError or None
        One line naming the dataset and the filter, suggesting ``pip install hdf5plugin``.
    """
    if not report.filters:
        return None
    ds, code, name = report.filters[0]
    more = f" (and {len(report.filters) - 1} more dataset(s))" if len(report.filters) > 1 else ""
    return FileFormatError(f"{p}: {ds} is compressed with the {name} filter (HDF5 filter id "
                           f"{code}), which this HDF5 installation lacks{more}; install it with "
                           f"'pip install hdf5plugin' (phasekit then loads it by itself)")
