"""``phasekit algorithms``: the registry, grouped by modality, with every parameter's default."""
from __future__ import annotations

import json

import click

from .main import common_options


def _fmt_default(value) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def algorithm_parameters(spec) -> list[tuple[str, object]]:
    """``(name, default)`` of every field of the algorithm's config model."""
    return [(name, field.get_default(call_default_factory=True))
            for name, field in spec.config.model_fields.items()]


def algorithm_choices_help(modalities=("cdi", "ptycho", "tomo")) -> str:
    """The algorithms of each modality, one clause per modality (for ``reconstruct --help``)."""
    from ..engine import available
    from ..engine.registry import MODALITY_NAMES

    lines = []
    for mod in modalities:
        names = ", ".join(s.name for s in available(mod))
        lines.append(f"{MODALITY_NAMES.get(mod, mod)}: {names}")
    return "; ".join(lines)


@click.command("algorithms")
@click.option("-m", "--modality", type=click.Choice(["cdi", "ptycho", "tomo", "ml"]), default=None,
              help="List one modality only.")
@common_options
def algorithms(modality: str | None) -> None:
    """List the registered algorithms, by modality, with their parameters.

    \b
    Each line: name, default iterations ('once' for one-step methods), description,
    parameters=defaults.  Set a parameter with 'phasekit reconstruct --param NAME=VALUE';
    'phasekit reconstruct' picks the modality from the file it reads.
    """
    from ..engine import MODALITIES, available
    from ..engine.registry import MODALITY_NAMES

    specs = available(modality)
    width = max(len(s.name) for s in specs)
    for mod in MODALITIES:
        group = [s for s in specs if s.modality == mod]
        if not group:
            continue
        click.echo(f"{MODALITY_NAMES.get(mod, mod)} [{mod}]")
        for s in group:
            params = algorithm_parameters(s)
            ptxt = ", ".join(f"{n}={_fmt_default(d)}" for n, d in params) if params else "(none)"
            alias = f" (aliases: {', '.join(s.aliases)})" if s.aliases else ""
            its = f"{s.default_n_iter:>5} it" if s.iterative else "   once"
            click.echo(f"  {s.name:<{width}}  {its}  {s.description}{alias}  parameters: {ptxt}")


class AlgorithmOption(click.Option):
    """``--algorithm`` whose help lists every registered algorithm by modality, read from the
    registry when the help is shown (not at import: listing loads every modality)."""

    def get_help_record(self, ctx):
        self.help = ("Algorithm, chosen for the modality of FILE (see 'phasekit algorithms'): "
                     + algorithm_choices_help() + ".  Default: hio for CDI, crisp for "
                     "ptychography, resire for tomography (k-means: 'phasekit kmeans').")
        return super().get_help_record(ctx)
