"""``phasekit info``: describe a file."""
from __future__ import annotations

import click

from .main import common_options
from .reconstruct_ptycho import NearFieldType


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
    from ..spi.results import describe_run, is_batch_run
    from ..tomo.io import describe_tomo, tomo_kind

    if is_batch_run(path):  # SPI batch-phasing run directory or phased.h5 (phasekit batch)
        return describe_run(path)
    if tomo_kind(path) is not None:
        return describe_tomo(path)
    text = io.describe(path)
    return text + _center_line(path)


def describe_scan(path, near_field=None, *, flip: bool = False, transpose: bool = False) -> str:
    """``phasekit info`` for a ptychography scan: the file summary, then the geometry
    phasekit will reconstruct with (:func:`phasekit.ptycho.geometry.scan_geometry`): the
    object pixel and the median step in pixels, far field or, with ``near_field`` (the
    focus-to-sample distance in metres, ``inf`` for a parallel beam), Fresnel-scaled near
    field; and a warning when the far-field reading makes the scan implausible.

    Examples
    --------
    >>> print(describe_scan("star.cxi", 3.657e-3))  # doctest: +SKIP
    ...
    near field (angular, focus-sample 0.003657 m): magnification 307.3, object pixel 179 nm, ...
    scan: 200 positions, median step 7.26 px (1.3 um), span 73.4 x 77.9 px
    """
    from ..core.errors import FileFormatError
    from ..io import read_ptycho
    from ..io.ptycho import describe_ptycho
    from ..ptycho.geometry import scan_geometry

    far = near_field is None
    lines = [describe_ptycho(path, scan_line=far and not (flip or transpose))]
    data = read_ptycho(path)
    try:
        geo = scan_geometry(data, near_field, flip=flip, transpose=transpose)
    except FileFormatError as exc:
        if not far:
            raise
        lines.append(f"geometry: not checked ({' '.join(str(exc).split())})")
        return "\n".join(lines)
    geo_lines = geo.lines()
    lines += geo_lines[1:] if far and not (flip or transpose) else geo_lines
    lines += [f"warning: {w}" for w in geo.warnings]
    return "\n".join(lines)


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
@click.option("--near-field", "near_field", type=NearFieldType(), default=None,
              help="Ptychography scans: show the near-field geometry for this focus-to-sample "
                   "distance (metres; 'inf' for a parallel beam): magnification, object pixel, "
                   "effective distance, step in pixels.")
@click.option("--flip", is_flag=True, default=False,
              help="Ptychography scans: negate the translations (as reconstruct --flip).")
@click.option("--transpose", is_flag=True, default=False,
              help="Ptychography scans: swap x and y translations (as reconstruct --transpose).")
@common_options
def info(file: str, near_field=None, flip: bool = False, transpose: bool = False) -> None:
    """Describe any file phasekit reads or writes.

    \b
    CXI diffraction data, TIFF and EDF patterns (with the estimated zero
    frequency), CDI and ptychography results, ptychography scans (CXI, cdtools
    CXI with basis_vectors, PtyLab HDF5, PtyPy .ptyd: object pixel, step in
    pixels, a warning when a far-field reading is implausible),
    tomography tilt series (HDF5, TIFF + .rawtlt) and results, k-means output
    (*_kmeans.npz), checkpoints, .npy / .npz arrays.

    \b
    Example:
      phasekit info scan.cxi --near-field 3.657e-3
    """
    from ..io.ptycho import is_ptycho_file

    ptycho_opts = near_field is not None or flip or transpose
    if is_ptycho_file(file) and _is_scan_only(file):
        click.echo(describe_scan(file, near_field, flip=flip, transpose=transpose))
        return
    if ptycho_opts:
        from pathlib import Path

        from ..core.errors import ConfigError, InputError

        if not Path(file).exists():
            raise InputError(f"{file}: no such file")
        raise ConfigError(f"--near-field, --flip, --transpose: for ptychography scans only "
                          f"({file} is not one)")
    click.echo(describe_file(file))


def _is_scan_only(path) -> bool:
    """A scan file (not a tomography file, not a result that also holds images)."""
    from ..io.cxi_common import _existing_file, _image_paths, reading_hdf5
    from ..tomo.io import tomo_kind

    if tomo_kind(path) is not None:
        return False
    with reading_hdf5(_existing_file(path)) as f:
        return not _image_paths(f)
