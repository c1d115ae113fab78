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
