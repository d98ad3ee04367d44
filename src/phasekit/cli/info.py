"""``phasekit info``: describe a file."""
from __future__ import annotations

import click

from .main import common_options


def describe_file(path) -> str:
    """The summary ``phasekit info`` prints for ``path``, whatever kind of file it is.

    Tomography files (an HDF5 ``/tomo`` tilt series, complete or not, a TIFF stack, a
    ``/tomo_result``) go to :func:`phasekit.tomo.io.describe_tomo`; everything else (CXI
    diffraction data, TIFF / EDF patterns, CDI and ptychography results, ptychography scans,
    ``.npy`` / ``.npz`` arrays, k-means output, checkpoints) to :func:`phasekit.io.describe`;
    for TIFF / EDF patterns a line with the zero frequency :func:`phasekit.cdi.prepare.
    find_center` estimates is added.

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
    text = io.describe(path)
    return text + _center_line(path)


def _center_line(path) -> str:
    """For a TIFF / EDF detector image: where its zero frequency is (``phasekit reconstruct``
    centres the pattern there by default)."""
    from ..core.errors import PhasekitError
    from ..io.patterns import sniff_pattern_format

    try:
        if sniff_pattern_format(path) is None:
            return ""
        from ..cdi.prepare import find_center
        from ..io import read_diffraction

        d = read_diffraction(path)
        c, info = find_center(d.intensity, d.mask)
    except (PhasekitError, OSError) as exc:
        return f"\n  zero frequency: not estimated ({' '.join(str(exc).split())})"
    how = info["method"] + (f", symmetry {info['symmetry']:.2f}"
                            if info["method"] == "friedel" else "")
    mid = ", ".join(str(n // 2) for n in d.shape)
    return (f"\n  zero frequency: estimated at ({', '.join(f'{v:.1f}' for v in c)}) ({how}); "
            f"phasekit reconstruct moves it to ({mid})")


@click.command("info")
@click.argument("file", metavar="FILE")
@common_options
def info(file: str) -> None:
    """Describe any file phasekit reads or writes.

    \b
    CXI diffraction data, TIFF and EDF patterns (with the estimated zero
    frequency), CDI and ptychography results, ptychography scans,
    tomography tilt series (HDF5, TIFF + .rawtlt) and results, k-means output
    (*_kmeans.npz), checkpoints, .npy / .npz arrays.
    """
    click.echo(describe_file(file))
