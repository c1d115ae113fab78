"""The `speck-mtt` command: train | deploy | export | measure | report | early-exit | search | devices | data.
The commands live in speck_mtt.commands; this module only assembles them and turns errors into one line.
Command modules import their libraries (torch, sinabs, ...) inside the command, so --help, --version
and a usage error answer without loading them (tests/test_cli_startup.py)."""

from __future__ import annotations

import shlex
import signal
import sys
from typing import Annotated

import typer

from . import __version__
from .errors import SpeckMttError, Stopped

app = typer.Typer(no_args_is_help=True,
                  help="Mixed Time-step Training of SNNs and deployment to SynSense Speck2e.")


def _register() -> None:
    from .commands.data import app as data_app
    from .commands.deploy import deploy_cmd
    from .commands.devices import devices_cmd
    from .commands.early_exit import early_exit_cmd
    from .commands.export import export_cmd
    from .commands.measure import measure_cmd
    from .commands.report import report_cmd
    from .commands.search import search_cmd
    from .commands.train import train_cmd

    app.command("train")(train_cmd)
    app.command("deploy")(deploy_cmd)
    app.command("export")(export_cmd)
    app.command("measure")(measure_cmd)
    app.command("report")(report_cmd)
    app.command("early-exit")(early_exit_cmd)
    app.command("search")(search_cmd)
    app.command("devices")(devices_cmd)
    app.add_typer(data_app, name="data", help="Inspect and prepare datasets (real or built-in offline).")


_register()

_debug = False  # set by --debug: unexpected errors show their traceback


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"speck-mtt {__version__}")
        raise typer.Exit()


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of any error "
                                                  "(e.g. speck-mtt --debug train ...).")] = False,
             version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    global _debug
    _debug = debug


def _click_exception() -> type[Exception]:
    """ClickException of the click typer parses with: typer >= 0.2x bundles its own copy (and no
    longer installs click), older typer uses click itself; typer.BadParameter derives from it in both."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _usage_line(exc: Exception) -> str:
    """A click usage/parameter error as one line, with the command it concerns and where help is."""
    ctx = getattr(exc, "ctx", None)
    message = _one_line(exc.format_message())
    if ctx is None:
        return f"error: {message}"
    return f"error: {ctx.command_path}: {message} (see {ctx.command_path} --help)"


def _fail(line: str, code: int) -> None:
    print(line, file=sys.stderr)
    sys.exit(code)


def _on_signal(signum: int, frame: object) -> None:
    """SIGTERM and ctrl-C unwind the command (locks released, temporary files removed). A repeated
    SIGTERM is ignored so the unwinding can finish (SIGKILL still ends the process at once); a
    second ctrl-C is Python's plain KeyboardInterrupt."""
    signal.signal(signum, signal.SIG_IGN if signum == signal.SIGTERM else signal.default_int_handler)
    raise Stopped(signum)


# What each command leaves behind when it is stopped half-way (train says it itself: epoch, last.pt).
_KEPT = {
    "deploy": "no complete deployment was written (artifact.pt, what measure reads, is written last)",
    "measure": "no result was written (measure writes its JSON and --record at the end; data generated "
               "or cached so far is kept)",
    "data": "recordings generated and frame caches finished so far are kept",
}
_KEPT_DEFAULT = "every file written so far is complete (each is written atomically)"


def _command_line() -> tuple[str, list[str]]:
    """The command (train, measure, ...) and the argument list as the user typed it."""
    args = sys.argv[1:]
    command = next((a for a in args if not a.startswith("-")), "")
    return command, ["speck-mtt", *args]


def _interrupted_line(exc: BaseException) -> str:
    """One line for ctrl-C or SIGTERM: what the command kept and how to continue it."""
    what = "terminated (SIGTERM)" if getattr(exc, "signum", None) == signal.SIGTERM else "interrupted"
    command, argv = _command_line()
    where = getattr(exc, "speck_where", None)
    kept = where if where else _KEPT.get(command, _KEPT_DEFAULT)
    if getattr(exc, "speck_resumable", False):
        resume = argv if "--resume" in argv else [*argv, "--resume"]
        how = f"continue with `{shlex.join(resume)}`"
    else:
        how = f"rerun `{shlex.join(argv)}`"
    return f"{what} {kept}; {how}" if where else f"{what}; {kept}; {how}"


def main() -> None:
    """Entry point: a usage error or an expected failure is one line on stderr and exit code 2; an
    unexpected exception is one line (exit 1) unless --debug asks for its traceback."""
    click_exception = _click_exception()
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):  # not when ignored (nohup, &)
            signal.signal(signum, _on_signal)
    try:
        code = app(standalone_mode=False)  # a typer.Exit (--help, ctrl-C: 130) returns its code
    except SpeckMttError as exc:
        if _debug:
            raise
        _fail(f"error: {_one_line(exc)}", 2)
    except (typer.Abort, KeyboardInterrupt) as exc:
        _fail(_interrupted_line(exc), 130)
    except Stopped as exc:
        _fail(_interrupted_line(exc), 128 + exc.signum)
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `speck-mtt` alone: the help is the answer
            exc.show()
            sys.exit(exc.exit_code)
        _fail(_usage_line(exc), 2)
    except OSError as exc:  # the environment: a file where a folder is wanted, no space, no permission
        if _debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"error: {where}{exc.strerror or _one_line(exc)}", 2)
    except Exception as exc:
        if _debug:
            raise
        _fail(f"error: unexpected {type(exc).__name__}: {_one_line(exc)[:300]} "
              "(a bug in speck-mtt? rerun as `speck-mtt --debug ...` for the traceback)", 1)
    sys.exit(code if isinstance(code, int) else 0)
