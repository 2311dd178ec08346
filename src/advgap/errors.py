"""One exception hierarchy for everything a user can get wrong or a solver can fail at.

Library code raises these; only the CLI turns them into a one-line message and a non-zero exit code.
"""


class AdvgapError(Exception):
    """Base class: the message is meant for the user, one line, naming the file or value at fault."""

    exit_code = 2


class DataError(AdvgapError):
    """A data file is missing, truncated, corrupt or has the wrong checksum."""


class ModelFormatError(AdvgapError):
    """A network file cannot be read, holds NaN/inf weights, has inconsistent shapes or an unsupported layer."""


class SpecError(AdvgapError):
    """A property (VNN-LIB file, δ, image, label, target) is malformed or out of range."""


class SolverError(AdvgapError):
    """A solver backend is missing or failed in a way that yields no verdict."""


class ConfigError(AdvgapError):
    """Run settings are invalid or clash with results already stored."""
