"""File input and output: CXI/HDF5, ``.npy``/``.npz`` diffraction data, results, atomic writes.

* :func:`read_diffraction` reads a pattern (CXI/HDF5 as written by phasekit or other software,
  ``.npy``, ``.npz``) into a :class:`DiffractionData`; masks become boolean, True = measured.
* :func:`write_diffraction` writes a CXI 1.5 file (mask as a CXI bit field, 0 = good).
* :func:`write_result` / :func:`read_result` store reconstructions with their history,
  configuration, provenance, timings and R-factors.
* :func:`describe` summarises any of these files, ptychography scans, k-means output and
  checkpoints (``phasekit info``; tomography files: :func:`phasekit.tomo.io.describe_tomo`).
* :func:`atomic_write` / :func:`atomic_save_bytes`: every file is written to a temporary file in
  the destination folder and renamed onto it.

Modules: :mod:`~phasekit.io.cxi_common` (the guarded HDF5 reader, CXI header, mask bit field),
:mod:`~phasekit.io.diffraction`, :mod:`~phasekit.io.results`, :mod:`~phasekit.io.ptycho`,
:mod:`~phasekit.io.arrays` (``.npy`` / ``.npz``), :mod:`~phasekit.io.checkpoints`,
:mod:`~phasekit.io.describe`, :mod:`~phasekit.io.atomic`; :mod:`~phasekit.io.cxi` re-exports
the CXI names for older imports.

h5py is imported only when an HDF5 file is read or written.
"""
from .atomic import atomic_save_bytes, atomic_save_text, atomic_write
from .arrays import DiffractionData, dumps_json, loads_json, save_npz_diffraction, to_jsonable
from .describe import describe
from .diffraction import read_diffraction, write_diffraction
from .results import read_result, write_result
from .ptycho import PtychoData, is_ptycho_file, read_ptycho, write_ptycho, write_ptycho_result

__all__ = [
    "atomic_write",
    "atomic_save_bytes",
    "atomic_save_text",
    "DiffractionData",
    "read_diffraction",
    "write_diffraction",
    "write_result",
    "read_result",
    "describe",
    "save_npz_diffraction",
    "to_jsonable",
    "dumps_json",
    "loads_json",
    "PtychoData",
    "read_ptycho",
    "write_ptycho",
    "write_ptycho_result",
    "is_ptycho_file",
]
