"""Shared behaviour of the console scripts: user errors become one line and exit 2; the
one-line summary of a scored scan."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from cac_lightning.errors import CACError, InputError
from cac_lightning.vessels import VESSELS

__all__ = ["EXIT_USER_ERROR", "check_config", "run_cli", "summary_line", "user_error"]

EXIT_USER_ERROR = 2


def summary_line(report: dict) -> str:
    """``scan_id: Agatston total (LM=.. LAD=.. CX=.. RCA=..) risk CAC-DRS`` of a scan report."""
    s = report["scores"]
    parts = " ".join(f"{v}={s[v]['agatston']:.1f}" for v in VESSELS)
    return (
        f"{report['scan_id']}: Agatston {s['total']['agatston']:.1f} ({parts}) "
        f"{report['risk_category']} {report['cac_drs']}"
    )


def run_cli(main: Callable[[], int | None], prog: str, exit_process: bool = False) -> int:
    """Run ``main``; report a :class:`CACError` (or Ctrl-C) as one line on stderr.

    Args:
        main: the command's body; returns its exit code (None: 0).
        prog: the command's name, the prefix of its messages.
        exit_process: end the process with the code (a console script, called with no ``argv``);
            False returns it (a test or a caller in Python).
    """
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(levelname)s: %(message)s")
    try:
        code = int(main() or 0)
    except CACError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        code = EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = 130
    if exit_process:
        sys.exit(code)
    return code


def user_error(err: BaseException) -> CACError | None:
    """The :class:`CACError` behind ``err`` (Hydra's ``InstantiationException`` wraps ours)."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, CACError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def check_config(cfg) -> dict:
    """Resolve every value of a composed config (``hydra`` node left out).

    Returns:
        the resolved config as plain containers.

    Raises:
        InputError: a required value is unset or an interpolation cannot be resolved;
            the message names the key and the override that sets it.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    try:
        return OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
            resolve=True,
            throw_on_missing=True,
        )
    except (MissingMandatoryValue, InterpolationResolutionError) as err:
        key = getattr(err, "full_key", None) or "?"
        why = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"config value {key} is not set ({why}); set it on the command line: {key}=..."
        ) from None
