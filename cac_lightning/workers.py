"""Worker processes that die with their parent.

:func:`parent_bound_pool` is a ``ProcessPoolExecutor`` whose workers

* ask the kernel for ``SIGKILL`` when the parent dies (``prctl(PR_SET_PDEATHSIG)`` on
  Linux), so a ``kill -9`` of the parent leaves no worker writing behind it, and
* are killed when the parent gets ``SIGTERM`` or ``SIGINT`` (or any exception leaves the
  ``with`` block), instead of finishing their queue first.

``SIGTERM`` becomes ``SystemExit`` in the parent while the pool runs, so ``finally``
blocks (temporary folders of :func:`cac_lightning.io.atomic.atomic_dir`) still clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

__all__ = ["die_with_parent", "parent_bound_pool"]

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: be killed when ``parent_pid`` dies (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: best effort only
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def parent_bound_pool(max_workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers die with this process (see the module docstring)."""
    pool = ProcessPoolExecutor(
        max_workers=max_workers, initializer=die_with_parent, initargs=(os.getpid(),)
    )
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    if main_thread:
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield pool
    except BaseException:  # SIGTERM, Ctrl-C or an error: stop the workers now
        _kill_workers(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
