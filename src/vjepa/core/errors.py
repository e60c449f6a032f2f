"""Errors that the command line turns into one clear line instead of a traceback."""


class VJepaError(Exception):
    """Base class: a problem the user can fix; the message names it and the fix."""


class ConfigError(VJepaError):
    """A params value is missing, unknown, of the wrong type or out of range."""


class DataError(VJepaError):
    """A data source or prepared data file is missing, empty or malformed."""


class CheckpointError(VJepaError):
    """A checkpoint is missing, truncated or does not match the requested run."""
