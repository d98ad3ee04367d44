"""``phasekit info``: describe a file."""
from __future__ import annotations

import click

from .main import common_options


def describe_file(path) -> str:
    """The summary ``phasekit info`` prints for ``path``, whatever kind of file it is.

    Tomography files (an HDF5 ``/tomo`` tilt series, complete or not, a TIFF stack, a
    ``/tomo_result``) go to :func:`phasekit.tomo.io.describe_tomo`; everything else (CXI
    diffraction data, CDI and ptychography results, ptychography scans, ``.npy`` / ``.npz``
    arrays, k-means output, checkpoints) to :func:`phasekit.io.describe`.

    Raises
    ------
    FileFormatError
        Missing, corrupt or unrecognised file (one line naming what was looked for).

    Examples
    --------
    >>> print(describe_file("series.h5"))  # doctest: +SKIP
    file: series.h5 (HDF5 tilt series, 61.2 KiB)
    tilt series: 13 projections of 16 x 16 (float32)
    ...
    """
    from .. import io
    from ..tomo.io import describe_tomo, tomo_kind

    if tomo_kind(path) is not None:
        return describe_tomo(path)
    return io.describe(path)


@click.command("info")
@click.argument("file", metavar="FILE")
@common_options
def info(file: str) -> None:
    """Describe any file phasekit reads or writes.

    \b
    CXI diffraction data, CDI and ptychography results, ptychography scans,
    tomography tilt series (HDF5, TIFF + .rawtlt) and results, k-means output
    (*_kmeans.npz), checkpoints, .npy / .npz arrays.
    """
    click.echo(describe_file(file))
