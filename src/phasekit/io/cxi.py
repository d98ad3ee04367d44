"""CXI (HDF5) files: a thin module that re-exports what used to live here.

The code is split by what it reads and writes:

* :mod:`phasekit.io.cxi_common`: constants, the guarded HDF5 reader, CXI header and mask bit field;
* :mod:`phasekit.io.diffraction`: :func:`read_diffraction`, :func:`write_diffraction`;
* :mod:`phasekit.io.results`: :func:`write_result`, :func:`read_result`;
* :mod:`phasekit.io.describe`: :func:`describe` (``phasekit info``).

``from phasekit.io.cxi import write_result`` (and the other names below) keep working.
"""
from __future__ import annotations

from .cxi_common import (  # noqa: F401 - re-exported
    _ENERGY_UNITS,
    _LENGTH_UNITS,
    CXI_VERSION,
    ELEMENTARY_CHARGE,
    GROUND_TRUTH_NOTE,
    HC,
    HDF5_EXTENSIONS,
    PLANCK,
    SPEED_OF_LIGHT,
    _cxi_entry,
    _detectors,
    _entries,
    _existing_file,
    _find_data,
    _get,
    _h5py,
    _image_paths,
    _is_dataset,
    _is_group,
    _one_line,
    _open_h5,
    _scalar,
    _to_bitfield,
    _to_str,
    _version,
    _write_array,
    reading_hdf5,
)
from .describe import describe
from .diffraction import read_diffraction, write_diffraction
from .results import _write_history, read_result, write_result  # noqa: F401

__all__ = [
    "read_diffraction",
    "write_diffraction",
    "write_result",
    "read_result",
    "describe",
    "CXI_VERSION",
    "HC",
]
