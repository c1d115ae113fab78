"""The `speck-mtt` command: train | deploy | measure | report | early-exit | search | devices | data.
Each area owns its command function; this module only wires them up."""

from __future__ import annotations

import sys

import typer

from .errors import SpeckMttError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Mixed Time-step Training of SNNs and deployment to SynSense Speck2e.")


def _register() -> None:
    from .data.cli import app as data_app
    from .dynamic import dynamic_cmd
    from .measure import measure_cmd
    from .mtt.search import search_cmd
    from .report import report_cmd
    from .speck.deploy import deploy_cmd
    from .speck.devkit import devices_cmd
    from .train import train_cmd

    app.command("train")(train_cmd)
    app.command("deploy")(deploy_cmd)
    app.command("measure")(measure_cmd)
    app.command("report")(report_cmd)
    app.command("early-exit")(dynamic_cmd)
    app.command("search")(search_cmd)
    app.command("devices")(devices_cmd)
    app.add_typer(data_app, name="data", help="Inspect and prepare datasets (real or built-in offline).")


_register()


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except SpeckMttError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted; checkpoints written so far are intact (resume with --resume)", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
