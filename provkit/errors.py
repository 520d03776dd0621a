"""The one exception type the command line turns into a one-line error.

Library code raises a :class:`ProvkitError` (or a subclass) whose message
names the file, line/row and the fix; ``cli.py`` prints it and exits 2.
"""


class ProvkitError(Exception):
    """A user-facing error with a one-line message."""


class ConfigError(ProvkitError):
    """A bad configuration value (pipeline TOML, experiment config, flags)."""


class InputError(ProvkitError):
    """Bad input data: names the file and line/row."""


class DatasetError(ProvkitError):
    """A dataset that cannot be opened or written, with a one-line reason."""
