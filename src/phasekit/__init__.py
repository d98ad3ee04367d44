"""phasekit: computational microscopy toolkit.

CDI phase retrieval (ER, HIO, RAAR, OSS, GPS-R/F, shrink-wrap) on a shared iteration driver,
with simulation, metrics, CXI I/O and a command-line interface.  See the README and docs/.

Heavy optional modules (h5py, matplotlib) are imported lazily by the sub-modules that need them.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]


def __getattr__(name):  # lazy access to the main entry points
    if name in {"er", "hio", "raar", "oss", "gps_r", "gps_f", "gps", "reconstruct"}:
        from . import cdi

        return getattr(cdi, name)
    if name in {"ReconResult", "run"}:
        from . import run as _run

        return getattr(_run, name)
    raise AttributeError(f"module 'phasekit' has no attribute {name!r}")
