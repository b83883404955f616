"""Exception types for user errors.

A :class:`CACError` is something the user can fix (a bad path, a corrupt file,
a geometry mismatch). Console scripts turn it into one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["CACError", "InputError"]


class CACError(Exception):
    """A user error reported as one line by the command-line tools."""


class InputError(CACError):
    """An input file or folder that cannot be read as asked."""
