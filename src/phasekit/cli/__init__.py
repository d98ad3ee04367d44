"""The ``phasekit`` command line (click).

Commands: ``simulate cdi``, ``reconstruct``, ``info``, ``algorithms``, ``demo``.  The entry point
is :func:`phasekit.cli.main.main` (the ``phasekit`` console script).
Heavy modules (torch, h5py, matplotlib) are imported by the commands that need them, so
``phasekit --help`` and ``phasekit --version`` start quickly.
"""
from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
