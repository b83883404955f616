"""Read an offline W&B run file (``run-<id>.wandb``) without the network.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic ``0xBEE1``,
version 0) followed by LevelDB-log framed chunks (32 KiB blocks; each chunk a
4-byte checksum, 2-byte length, 1-byte type: full / first / middle / last), each
record a ``wandb.proto.wandb_internal_pb2.Record``. This module reassembles the
records and decodes them with W&B's own protobuf schema; it is what the tests use
to check what a run logged, and it lets a user list what an offline run holds
before ``wandb sync``.

Example:
    >>> run = read_run(path_to_run_wandb)
    >>> run.config["model"]["net"]["name"], sorted(run.history_keys)[:3]
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from cac_lightning.errors import InputError

__all__ = ["OfflineRun", "find_run_files", "iter_records", "read_run"]

_IDENT, _MAGIC, _VERSION = b":W&B", 0xBEE1, 0
_FILE_HEADER = struct.Struct("<4sHB")
_BLOCK = 32768
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def iter_records(path: str | Path):
    """Yield each ``Record`` protobuf of a ``.wandb`` file, in order.

    Raises:
        InputError: the file is missing or is not a W&B run file.
    """
    from wandb.proto import wandb_internal_pb2

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read W&B run file ({err.strerror})") from None
    if len(data) < _FILE_HEADER.size:
        raise InputError(f"{path}: not a W&B run file (too short)")
    ident, magic, version = _FILE_HEADER.unpack_from(data, 0)
    if ident != _IDENT or magic != _MAGIC or version != _VERSION:
        raise InputError(f"{path}: not a W&B run file (header {ident!r})")
    pos, parts = _FILE_HEADER.size, []
    while pos + _CHUNK_HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _CHUNK_HEADER:  # block tail too small for a header: padding
            pos += _BLOCK - pos % _BLOCK
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        start, pos = pos + _CHUNK_HEADER, pos + _CHUNK_HEADER + length
        if kind == 0 and length == 0:  # zero fill at the end of a block
            pos += _BLOCK - pos % _BLOCK if pos % _BLOCK else 0
            continue
        parts.append(data[start:pos])
        if kind in (_FULL, _LAST):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(b"".join(parts))
            parts = []
            yield rec


def _value(json_text: str):
    try:
        return json.loads(json_text)
    except json.JSONDecodeError:
        return json_text


@dataclass
class OfflineRun:
    """What an offline run logged: config, summary, history rows, tags, group and job type."""

    run_id: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    @property
    def history_keys(self) -> set[str]:
        return {k for row in self.history for k in row}

    def logged(self, key: str) -> list:
        """Every value logged under ``key`` in the history, in order."""
        return [row[key] for row in self.history if key in row]


def _nested(keys, value, into: dict) -> None:
    for k in keys[:-1]:
        into = into.setdefault(k, {})
    into[keys[-1]] = value


def _records(path: Path, wait_s: float) -> list:
    """All records; waits up to ``wait_s`` for the run's ``exit`` record (W&B's service
    process may still be flushing the file when ``finish()`` returns)."""
    deadline = time.monotonic() + wait_s
    while True:
        records = list(iter_records(path))
        done = any(r.WhichOneof("record_type") == "exit" for r in records)
        if done or time.monotonic() >= deadline:
            return records
        time.sleep(0.2)


def read_run(path: str | Path, wait_s: float = 0.0) -> OfflineRun:
    """Decode a ``run-<id>.wandb`` file into an :class:`OfflineRun`.

    Args:
        path: the run file.
        wait_s: wait up to this long for a just-finished run's file to be complete.
    """
    run = OfflineRun()
    for rec in _records(Path(path), wait_s):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.group = rec.run.run_id, rec.run.run_group
            run.job_type = rec.run.job_type
            run.tags = list(rec.run.tags)
            for item in rec.run.config.update:
                keys = list(item.nested_key) or [item.key]
                _nested(keys, _value(item.value_json), run.config)
        elif kind == "config":
            for item in rec.config.update:
                keys = list(item.nested_key) or [item.key]
                _nested(keys, _value(item.value_json), run.config)
        elif kind == "history":
            row = {}
            for item in rec.history.item:
                row["/".join(item.nested_key) or item.key] = _value(item.value_json)
            run.history.append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                run.summary["/".join(item.nested_key) or item.key] = _value(item.value_json)
    return run


def find_run_files(root: str | Path) -> list[Path]:
    """Every ``run-*.wandb`` file below ``root``, oldest first."""
    return sorted(Path(root).rglob("run-*.wandb"), key=lambda p: p.stat().st_mtime)
