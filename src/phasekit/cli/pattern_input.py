"""The pattern-input options of ``phasekit reconstruct`` (CDI patterns only).

``--center``, ``--no-center``, ``--center-mode``, ``--bin``, ``--crop``, ``--mask``,
``--mask-invert``, ``--saturation``, ``--saturation-dilate``: how a pattern as it comes off a
detector (zero frequency anywhere, bad pixels, more pixels than needed) becomes the centred,
masked pattern phase retrieval needs.  The work is done by :func:`phasekit.cdi.prepare.
prepare_pattern`; this module holds the click options, turns them into its keywords and writes
the summary line.
"""
from __future__ import annotations

from typing import Any

import click

#: option names (click parameter names) of this module
PATTERN_KEYS = ("center", "no_center", "center_mode", "bin", "crop", "mask", "mask_invert",
                "saturation", "saturation_dilate")


def pattern_options(f):
    """Add the pattern-input options to a click command."""
    opts = [
        click.option("--center", default="auto", show_default=True, metavar="auto|Y,X|none",
                     help="Zero frequency of the pattern: found from Friedel symmetry (auto), "
                          "given as pixel coordinates in the file's array, or 'none' (the "
                          "array is already centred at N//2).  Tomography: the rotation axis "
                          "on the detector x in pixels, 'auto' (found; the default for raw "
                          "scans) or 'none' (the detector centre)."),
        click.option("--no-center", is_flag=True, default=False,
                     help="Same as --center none."),
        click.option("--center-mode", type=click.Choice(["crop", "pad"]), default="crop",
                     show_default=True,
                     help="Centring: crop to the largest window centred on the zero frequency, "
                          "or pad with unmeasured pixels."),
        click.option("--bin", "bin", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Sum NxN pixel blocks (a block is measured only if all its pixels "
                          "are)."),
        click.option("--crop", default=None, metavar="SIZE|Y,X",
                     help="Keep SIZE (or Y,X) pixels around the zero frequency, after binning."),
        click.option("--mask", default=None, metavar="FILE|zeros|negative|nan",
                     help="Unmeasured pixels: a mask file (.npy/TIFF/EDF, non-zero = measured) "
                          "or a value rule; combined with the file's own mask."),
        click.option("--mask-invert", is_flag=True, default=False,
                     help="The --mask file marks bad pixels (non-zero = unmeasured)."),
        click.option("--saturation", type=float, default=None, metavar="VALUE",
                     help="Pixels >= VALUE are unmeasured (saturated)."),
        click.option("--saturation-dilate", type=click.IntRange(min=0), default=0,
                     show_default=True,
                     help="Also mask pixels within N pixels of a saturated one."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def pattern_settings(values: dict, given=None) -> dict:
    """The pattern options of a click ``values`` dict, as stored in ``ReconOptions.pattern``;
    ``center_given`` records whether ``--center`` was given (``given(name)`` says so)."""
    out = {k: values.get(k) for k in PATTERN_KEYS if k in values}
    out["center_given"] = bool(given("center")) if given is not None else False
    return out


def given_pattern_options(given) -> list[str]:
    """The pattern options given on the command line or in the TOML file (``--center`` and
    friends), for refusing them on ptychography and tomography files."""
    return [f"--{k.replace('_', '-')}" for k in PATTERN_KEYS if given(k)]


def prepare_input(data, settings: dict):
    """Apply the pattern options to a :class:`~phasekit.io.DiffractionData`.

    The default ``--center auto`` searches for the zero frequency except in files that hold a
    simulation's ground truth (phasekit's own simulations, centred by construction), which are
    taken as they are unless ``--center`` is given.

    Returns
    -------
    data : DiffractionData
        A new data set: prepared intensity, mask and support (the truth is dropped when the
        pattern changed shape or moved, since it no longer matches the reconstruction's frame).
    report : dict
        :func:`phasekit.cdi.prepare.prepare_pattern`'s report.
    """
    from ..cdi.prepare import parse_center, parse_shape, prepare_pattern
    from ..core.errors import InputError
    from ..io import DiffractionData

    s = dict(settings or {})
    center: Any = "none" if s.get("no_center") else (s.get("center") or "auto")
    center = parse_center(center)
    simulation = (center == "auto" and not s.get("center_given") and data.truth is not None)
    if simulation:  # centred by construction: a search could only move it off
        center = None
    mask_spec = s.get("mask")
    rule = mfile = None
    if mask_spec is not None:
        if str(mask_spec).strip().lower() in ("zeros", "negative", "nan"):
            rule = str(mask_spec).strip().lower()
        else:
            mfile = mask_spec
    crop = parse_shape(s["crop"]) if s.get("crop") not in (None, "") else None
    sup_in = data.support
    if sup_in is not None and sup_in.shape != data.intensity.shape:
        sup_in = None
    try:
        I, m, sup, report = prepare_pattern(
            data.intensity, data.mask, mask_rule=rule, mask_file=mfile,
            mask_invert=bool(s.get("mask_invert")), saturation=s.get("saturation"),
            saturation_dilate=int(s.get("saturation_dilate") or 0), center=center,
            center_mode=s.get("center_mode") or "crop", bin=int(s.get("bin") or 1), crop=crop,
            support=sup_in)
    except InputError as exc:
        if data.path and not str(exc).startswith(str(data.path)):
            raise InputError(f"{data.path}: {exc}") from None
        raise
    moved = (report["shape_out"] != report["shape_in"]
             or any(report.get("centering", {}).get("shift", [0])))
    truth = None if moved else data.truth
    if simulation:
        report["center"]["method"] = ("not searched: a simulation with its ground truth, "
                                      "centred by construction; --center auto searches")
    meta = dict(data.metadata)
    meta["prepared"] = report
    new = DiffractionData(intensity=I, mask=m, wavelength=data.wavelength,
                          distance=data.distance, pixel_size=data.pixel_size,
                          support=sup if data.support is not None else None, truth=truth,
                          metadata=meta, path=data.path)
    return new, report


def summary_line(report: dict) -> str:
    """One line for the summary: where the zero frequency was and what was done.

    Examples
    --------
    >>> summary_line({"center": {"method": "friedel", "center": [540.2, 470.8],
    ...               "symmetry": 0.93}, "centering": {"offset": [28, -42], "mode": "crop",
    ...               "shape_in": [1024, 1024], "shape_out": [944, 940]}, "shape_in": [1024, 1024],
    ...               "shape_out": [944, 940], "unmeasured": 5})
    'pattern: zero frequency at (540.2, 470.8) (friedel, symmetry 0.93), offset (28, -42) px \
from the array centre, crop 1024x1024 -> 944x940, 5 pixels unmeasured'
    """
    c = report.get("center", {})
    where = ", ".join(f"{v:g}" for v in c.get("center", []))
    how = c.get("method", "")
    if c.get("symmetry") is not None and how == "friedel":
        how += f", symmetry {c['symmetry']:.2f}"
    parts = [f"zero frequency at ({where}) ({how})"]
    cen = report.get("centering")
    steps = []
    if cen:
        parts.append(f"offset ({', '.join(str(v) for v in cen['offset'])}) px from the array "
                     "centre")
        if cen.get("shape_out", cen.get("shape_in")) != cen.get("shape_in"):
            steps.append(cen["mode"])
    if "bin" in report:
        steps.append(f"bin {report['bin']['factor']}")
    if "crop" in report:
        steps.append("crop")
    sh_in = "x".join(str(n) for n in report.get("shape_in", []))
    sh_out = "x".join(str(n) for n in report.get("shape_out", []))
    if sh_in != sh_out:
        parts.append(f"{' + '.join(steps) or 'reshaped'} {sh_in} -> {sh_out}")
    if "saturation" in report:
        parts.append(f"{report['saturation']['saturated']} saturated")
    parts.append(f"{report.get('unmeasured', 0)} pixels unmeasured")
    return "pattern: " + ", ".join(parts)
