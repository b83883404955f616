"""Exception types for user errors.

A :class:`CACError` is something the user can fix (a bad path, a corrupt file,
a geometry mismatch). Console scripts turn it into one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["CACError", "ConfigError", "InputError", "OutputError"]


class CACError(Exception):
    """A user error reported as one line by the command-line tools."""


class ConfigError(CACError, ValueError):
    """A configuration value that does not fit (a network argument its architecture does not
    take); also a ValueError, as for any bad argument."""


class InputError(CACError):
    """An input file or folder that cannot be read as asked."""


class OutputError(CACError):
    """An output that cannot be written where asked (refused path, disk full, no permission)."""
