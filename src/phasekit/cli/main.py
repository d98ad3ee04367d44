"""Entry point of the ``phasekit`` command line: the command group, logging and error handling.

Errors end the program with one line on stderr, ``error: <message>``, and an exit status:

* 2 for anything phasekit raises on purpose (:class:`~phasekit.core.errors.PhasekitError`: bad
  input, bad parameters, unreadable files), click usage errors (unknown option, bad value),
  ``OSError`` (missing file, permission denied, disk full) and pydantic ``ValidationError``;
* 1 for unexpected exceptions (a bug), still one line;
* 130 when interrupted (Ctrl-C).

``phasekit --debug ...`` (or ``PHASEKIT_DEBUG=1``) prints the traceback as well.  ``-v`` turns
on the debug messages of the ``phasekit`` logger.
"""
from __future__ import annotations

import logging
import os
import shlex
import sys
import traceback

import click

# (the OpenMP wait policy, passive with a short spin, is set by ``import phasekit``, which always
# runs before this module and before torch or numba are imported: docs/conventions.md, "Threads")
from .. import __version__

LOGGER_NAME = "phasekit"
EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130

#: state of the current call of the command line (arguments, verbosity)
_STATE: dict = {}


# --------------------------------------------------------------------------- logging
class _EchoHandler(logging.Handler):
    """Log records to the *current* ``sys.stderr`` (click's test runner swaps it per call)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _handler() -> _EchoHandler:
    logger = logging.getLogger(LOGGER_NAME)
    for h in logger.handlers:
        if isinstance(h, _EchoHandler):
            return h
    h = _EchoHandler()
    h.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(h)
    return h


def set_verbosity(verbose: int) -> None:
    """Warnings by default; ``-v`` (or more) shows the debug messages of the phasekit logger."""
    logger = logging.getLogger(LOGGER_NAME)
    h = _handler()
    level = logging.DEBUG if verbose > 0 else logging.WARNING
    logger.setLevel(level)
    h.setLevel(level)
    fmt = "%(levelname)s %(name)s: %(message)s" if verbose > 0 else "%(levelname)s: %(message)s"
    h.setFormatter(logging.Formatter(fmt))


def _more_verbose(ctx: click.Context, param, value) -> None:
    """Callback of a sub-command's ``-v``: adds to the group's verbosity."""
    if value:
        _STATE["verbose"] = _STATE.get("verbose", 0) + int(value)
        set_verbosity(_STATE["verbose"])


def verbose_option(f):
    """``-v/--verbose`` for a sub-command (the group has its own)."""
    return click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                        callback=_more_verbose, help="Show debug log messages.")(f)


def debug_option(f):
    """A hidden ``--debug`` on sub-commands, so that it may also follow the command name."""
    return click.option("--debug", is_flag=True, hidden=True, expose_value=False,
                        help="Show tracebacks.")(f)


def common_options(f):
    return debug_option(verbose_option(f))


def command_line() -> str:
    """The command line of the current call (recorded in result files)."""
    args = _STATE.get("argv")
    if args is None:
        args = sys.argv[1:]
    return " ".join(["phasekit", *(shlex.quote(str(a)) for a in args)])


# --------------------------------------------------------------------------- errors
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_message(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception."""
    from ..core.errors import PhasekitError

    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover - pydantic is a dependency
        ValidationError = ()  # type: ignore[assignment]

    if isinstance(exc, click.ClickException):
        msg = exc.format_message()
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, click.UsageError) and ctx is not None:
            msg = f"{msg} (see '{ctx.command_path} --help')"
        return _one_line(msg), EXIT_USER_ERROR
    if isinstance(exc, PhasekitError):
        return _one_line(str(exc) or type(exc).__name__), EXIT_USER_ERROR
    if ValidationError and isinstance(exc, ValidationError):
        errs = exc.errors()
        if errs:
            e = errs[0]
            loc = ".".join(str(p) for p in e.get("loc", ())) or exc.title
            msg = f"invalid value for {loc}: {e.get('msg')}"
            if len(errs) > 1:
                msg += f" (and {len(errs) - 1} more)"
        else:  # pragma: no cover
            msg = str(exc)
        return _one_line(msg), EXIT_USER_ERROR
    if isinstance(exc, OSError):
        if exc.filename is not None and exc.strerror:
            msg = f"{exc.filename}: {exc.strerror}"
        else:
            msg = str(exc) or type(exc).__name__
        return _one_line(msg), EXIT_USER_ERROR
    text = str(exc)
    msg = f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")
    return _one_line(msg) + " (a bug? run with --debug for the traceback)", EXIT_BUG


def _wants_debug(args: list[str]) -> bool:
    if os.environ.get("PHASEKIT_DEBUG", "").strip() not in ("", "0", "false", "no"):
        return True
    for a in args:
        if a == "--":
            break
        if a == "--debug":
            return True
    return False


class PhasekitGroup(click.Group):
    """A click group whose ``main`` turns every error into one line and an exit status.

    The handling lives in ``main`` (not in the console-script function) so that click's test
    runner, which calls ``main`` too, sees exactly what a user sees.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug = _wants_debug(args)
        set_verbosity(0)
        _STATE.clear()
        _STATE.update(argv=list(args), verbose=0)
        code = 0
        try:
            rv = super().main(args=args, prog_name=prog_name or "phasekit",
                              complete_var=complete_var, standalone_mode=False, **extra)
            if isinstance(rv, int) and not isinstance(rv, bool):
                code = rv  # click returns the exit code of --help / --version / ctx.exit(n)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare "phasekit" or "phasekit simulate"
            click.echo(exc.ctx.get_help())
            code = 0
        except click.Abort:
            click.echo("error: interrupted", err=True)
            code = EXIT_INTERRUPTED
        except KeyboardInterrupt:  # pragma: no cover - click normally turns it into Abort
            click.echo("error: interrupted", err=True)
            code = EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - the whole point: one line per error
            msg, code = error_message(exc)
            if debug:
                traceback.print_exc(file=_stderr())
            click.echo(f"error: {msg}", err=True)
        if standalone_mode:
            sys.exit(code)
        return code


def _stderr():
    return sys.stderr


# --------------------------------------------------------------------------- the group
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=PhasekitGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="phasekit",
                      message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show the traceback of errors.")
@click.option("-v", "--verbose", count=True, help="Show debug log messages.")
def cli(debug: bool, verbose: int) -> None:
    """phasekit: computational microscopy (CDI phase retrieval, simulation, CXI files).

    \b
    Typical session:
      phasekit simulate cdi --object vesicle --size 256 --out data.cxi
      phasekit info data.cxi
      phasekit reconstruct data.cxi --schedule "HIO:800,ER:200" --real --positive
      phasekit demo
    """
    # --debug itself is read from the arguments by PhasekitGroup.main (it must also cover errors
    # raised while the arguments are parsed)
    if verbose:
        _STATE["verbose"] = _STATE.get("verbose", 0) + verbose
        set_verbosity(_STATE["verbose"])


def main() -> None:
    """The ``phasekit`` console script."""
    cli.main(prog_name="phasekit")


# the commands (imported last: they use the helpers above)
from .demo import demo  # noqa: E402
from .algorithms import algorithms  # noqa: E402
from .info import info  # noqa: E402
from .reconstruct import reconstruct  # noqa: E402
from .simulate import simulate  # noqa: E402
from .kmeans import kmeans  # noqa: E402
from .preprocess_tomo import preprocess_tomo  # noqa: E402

for _cmd in (simulate, reconstruct, info, algorithms, demo):
    cli.add_command(_cmd)
cli.add_command(kmeans)
from .batch import batch  # noqa: E402  (SPI batch phasing)
from .classify import classify  # noqa: E402  (SPI single-hit classification)

cli.add_command(batch)
cli.add_command(classify)
cli.add_command(preprocess_tomo)
from .train_denoiser import train_denoiser  # noqa: E402  (PINE denoiser)

cli.add_command(train_denoiser)
from .simulate_spi import preprocess_spi  # noqa: E402  (SPI hit finding, centring, crop)

cli.add_command(preprocess_spi)
