"""``phasekit info`` (describe a file) and ``phasekit algorithms`` (list the registry)."""
from __future__ import annotations

import json

import click

from .main import common_options


@click.command("info")
@click.argument("file", metavar="FILE")
@common_options
def info(file: str) -> None:
    """Describe a data or result file (CXI/HDF5, .npy, .npz)."""
    from ..io import describe
    from ..io.ptycho import describe_ptycho, is_ptycho_file

    if is_ptycho_file(file):  # a ptychography scan (frame stack + translations)
        click.echo(describe_ptycho(file))
        return
    click.echo(describe(file))


def _fmt_default(value) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def algorithm_parameters(spec) -> list[tuple[str, object]]:
    """``(name, default)`` of every field of the algorithm's config model."""
    out = []
    for name, field in spec.config.model_fields.items():
        default = field.get_default(call_default_factory=True)
        out.append((name, default))
    return out


@click.command("algorithms")
@common_options
def algorithms() -> None:
    """List the registered algorithms with their parameters.

    \b
    Each line: name, modality, default iterations, description, parameters=defaults.
    Set a parameter with 'phasekit reconstruct --param NAME=VALUE'.
    """
    from ..engine import available

    specs = available()
    width = max(len(s.name) for s in specs)
    for s in specs:
        params = algorithm_parameters(s)
        ptxt = ", ".join(f"{n}={_fmt_default(d)}" for n, d in params) if params else "(none)"
        alias = f" (aliases: {', '.join(s.aliases)})" if s.aliases else ""
        click.echo(f"{s.name:<{width}}  {s.modality:<4}  {s.default_n_iter:>5} it  "
                   f"{s.description}{alias}  parameters: {ptxt}")
