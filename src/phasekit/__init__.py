"""phasekit: computational microscopy toolkit.

CDI phase retrieval, ptychography, tomography and k-means on one modality-neutral engine
(:mod:`phasekit.engine`), with simulation, metrics, CXI/HDF5 I/O and a command-line interface.
See the README and docs/.

Heavy optional modules (h5py, matplotlib) are imported lazily by the sub-modules that need them.
"""
from __future__ import annotations

import os as _os

# torch and numba each bring an OpenMP runtime; with the default (active) wait policy the idle
# threads of one spin while the other computes, which on a machine with few cores makes the
# iterations erratically slower (10-100x measured here).  Passive waiting removes that.  It only
# takes effect if phasekit is imported before torch; a value already in the environment wins.
# (docs/conventions.md, "Threads")
import sys as _sys

if "OMP_WAIT_POLICY" not in _os.environ and "torch" in _sys.modules:
    # too late: torch already started OpenMP with active waiting.  numba's OpenMP pool would share
    # that runtime and spin while torch computes (17x slower measured on 2 busy cores), so give
    # numba its own non-spinning pool unless the user chose a threading layer.
    _os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    if "numba" in _sys.modules and _os.environ["NUMBA_THREADING_LAYER"] == "workqueue":
        _sys.modules["numba"].config.THREADING_LAYER = "workqueue"
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    # ... but GNU OpenMP (torch's) spins this many turns for the next parallel region before it
    # sleeps: a purely passive wake-up cost 60-120 us per operation (512^2 HIO on two threads
    # 2.8 -> 2.1 ms on an Intel Xeon; runs below 2^18 elements per operation use one thread
    # anyway, core/threads.py).  Overrides the passive policy's zero spin; other runtimes ignore it.
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"

__all__ = ["__version__"]


def __getattr__(name):  # lazy access to the main entry points
    if name in {"er", "hio", "raar", "oss", "gps_r", "gps_f", "gps", "reconstruct"}:
        from . import cdi

        return getattr(cdi, name)
    if name in {"ReconResult", "run", "solve"}:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'phasekit' has no attribute {name!r}")
