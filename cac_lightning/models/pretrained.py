"""Initialise a network from a checkpoint's weights (``cac-train ... init_from=CKPT``).

Fine-tuning, not resuming: only the weights are taken (read weights-only by
:func:`cac_lightning.models.checkpoint.load`); the
optimiser, scheduler, epoch and step counters start fresh, and any dataset may follow. The
checkpoint must hold the same network: every parameter and buffer name and shape must match,
otherwise an :class:`~cac_lightning.errors.InputError` says what differs (one line, exit code 2
from ``cac-train``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from cac_lightning.errors import InputError
from cac_lightning.models import checkpoint

__all__ = ["load_init_weights"]

log = logging.getLogger(__name__)


def _state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = checkpoint.load(path, "init_from=")
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        return ckpt["state_dict"], ckpt
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, {}
    raise InputError(f"init_from={path}: holds no state_dict")


def _net(ckpt: dict) -> dict | None:
    """The source checkpoint's network (``net`` of the schema), if it records one."""
    net = (ckpt.get("hyper_parameters") or {}).get("net")
    try:
        return checkpoint.NetworkSpec.from_dict(net).to_dict() if net else None
    except ValueError:
        return None


def load_init_weights(model: torch.nn.Module, path: str | Path) -> dict:
    """Copy the weights of checkpoint ``path`` into ``model`` (in place).

    Args:
        model: the freshly built LightningModule (or any module).
        path: a Lightning checkpoint (``state_dict`` inside) or a plain state dict file.

    Returns:
        ``{"path", "epoch", "global_step", "net"}`` of the source checkpoint (for the log).

    Raises:
        InputError: missing/unreadable file, or a network that does not match.
    """
    path = Path(path)
    state, ckpt = _state_dict(path)
    source_input = (ckpt.get("hyper_parameters") or {}).get("input")
    own_input = (getattr(model, "hparams", None) or {}).get("input")
    if source_input is not None and own_input is not None:
        try:
            theirs, ours = (
                checkpoint.InputSpec.from_dict(v).context for v in (source_input, own_input)
            )
        except ValueError as err:
            raise InputError(f"init_from={path}: {err}") from None
        if theirs != ours:
            raise InputError(
                f"init_from={path}: trained with {theirs} context slices a side, this model "
                f"takes {ours}: set data.context_slices={theirs}"
            )
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        src = _net(ckpt)
        first = shapes or [f"missing {k}" for k in missing] or [f"extra {k}" for k in unexpected]
        raise InputError(
            f"init_from={path}: the checkpoint's network does not match this model "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} shape "
            f"mismatches; first: {first[0]}; checkpoint net: {src})"
        )
    model.load_state_dict(state, strict=True)
    info = {
        "path": str(path),
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "net": _net(ckpt),
    }
    log.info(
        "initialised %d tensors from %s (its epoch %s); fresh optimiser, epoch 0",
        len(state),
        path,
        info["epoch"],
    )
    return info
