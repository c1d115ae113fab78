"""User-facing errors: one line that names the thing and the fix; the CLI prints it and exits 2."""


class SpeckMttError(Exception):
    """An error caused by input, environment or configuration, not by a bug in speck-mtt."""


class DataError(SpeckMttError):
    """Missing, corrupt or malformed event data."""


class DataMissing(DataError):
    """A dataset split with no files at all (as opposed to files in a wrong layout)."""


class FitError(SpeckMttError):
    """A model that cannot be mapped onto the target chip."""


class DeviceError(SpeckMttError):
    """The devkit or the real samna is missing or misbehaves."""


class WriteError(SpeckMttError):
    """A file that could not be written (disk full, file-size limit, no permission): the message
    names it and what is still safe; `path` is the file."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class Stopped(BaseException):
    """SIGTERM (how cluster schedulers and `kill` stop a job) or ctrl-C (SIGINT) in the CLI, raised
    where the signal lands so it unwinds like KeyboardInterrupt: context managers release the
    output lock, atomic writes drop their temporary file. A BaseException, so `except Exception`
    never swallows it; not a KeyboardInterrupt, so click/typer do not turn it into a silent exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def note_interrupt(exc: BaseException, where: str, resumable: bool) -> None:
    """Tell the CLI, on a ctrl-C or SIGTERM unwinding through a command, what the command had
    kept (`where`, e.g. "during epoch 3/10; OUT/last.pt holds epoch 2") and whether its --resume
    continues it; cli prints both in the one line the interrupt ends with."""
    exc.speck_where, exc.speck_resumable = where, resumable
