"""The ``brainprobe`` command line: parses arguments, calls the public API, prints results.

Each sub-module registers its commands on the one typer app through ``register(app)``; the
modules import the heavy parts of brainprobe lazily inside their commands, so ``--help`` is fast.
User errors (:class:`brainprobe.errors.BrainprobeError`), usage errors and failed reads/writes
(OSError: disk full, read-only folder) print one line and exit with code 2; see docs/errors.md.
"""

from __future__ import annotations

import sys

import typer

from brainprobe._version import __version__
from brainprobe.cli import data, encoding, pipeline, report, robustify, validate, zoo
from brainprobe.errors import BrainprobeError, OutputError

app = typer.Typer(
    name="brainprobe",
    help="Evaluate ANN-based models of visual cortex by their local representational geometry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"brainprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """brainprobe: fit encoding models, probe them with small perturbations, compare their geometry."""


for _module in (zoo, data, encoding, robustify, pipeline, report, validate):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``brainprobe`` console script."""
    try:
        app(args=argv, standalone_mode=False)
    except BrainprobeError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.TyperException as err:  # usage errors (bad option value, unknown option) in non-standalone mode
        typer.echo(f"error: {usage_line(err)}", err=True)
        sys.exit(2)
    except OSError as err:  # disk full, read-only folder, permission denied while writing or reading
        typer.echo(f"error: {OutputError.from_os_error(err)}", err=True)
        sys.exit(OutputError.exit_code)
    except Exception as err:
        import click

        if isinstance(err, click.ClickException):  # a command that raised plain click's exceptions
            typer.echo(f"error: {usage_line(err)}", err=True)
            sys.exit(2)
        raise


def usage_line(err: Exception) -> str:
    """One line for a command-line usage error: click's message plus where to read the usage.

    Parameters
    ----------
    err : Exception
        A typer / click ``ClickException`` (``BadParameter``, ``NoSuchOption``, ``MissingParameter`` ...).

    Returns
    -------
    str
        ``"<message>; see 'brainprobe CMD --help'"`` on one line.
    """
    fmt = getattr(err, "format_message", None)
    message = fmt() if callable(fmt) else str(err)
    message = " ".join(str(message).split()).rstrip(".")
    ctx = getattr(err, "ctx", None)
    path = getattr(ctx, "command_path", None) or "brainprobe"
    return f"{message}; see '{path} --help'"
