"""Shared behaviour of the console scripts: user errors become one line and exit 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from cac_lightning.errors import CACError

__all__ = ["EXIT_USER_ERROR", "run_cli"]

EXIT_USER_ERROR = 2


def run_cli(main: Callable[[], int | None], prog: str) -> int:
    """Run ``main``; report a :class:`CACError` (or Ctrl-C) as one line on stderr."""
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(levelname)s: %(message)s")
    try:
        return int(main() or 0)
    except CACError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
