"""Exception types.  Every error raised on bad input names the problem (and the file, if any).

The CLI turns any :class:`PhasekitError` into a one-line message and a non-zero exit status.
"""


class PhasekitError(Exception):
    """Base class of every error phasekit raises on purpose."""


class InputError(PhasekitError, ValueError):
    """Bad array input: wrong shape, NaN/Inf, negative counts, empty support, ..."""


class ConfigError(InputError):
    """Nonsense or unknown parameter (out of range, unknown key, unknown algorithm)."""


class FileFormatError(PhasekitError, OSError):
    """A file that cannot be read: missing, corrupt, or of an unknown layout."""
