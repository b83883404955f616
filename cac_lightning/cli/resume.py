"""Safe resume for ``cac-train ckpt_path=...``: load weights-only, check, then hand to Lightning.

The checkpoint is read here weights-only (:func:`cac_lightning.models.checkpoint.load`, which
passes ``weights_only=True`` explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn it
off) and checked against the model
before Lightning sees it; ``cac-train`` also passes ``weights_only=True`` to ``fit`` and
``test``. A file that is missing, truncated, not a training checkpoint, or made for another
network is one :class:`~cac_lightning.errors.InputError` line.
"""

from __future__ import annotations

import os

from lightning.pytorch import Callback

from cac_lightning.errors import InputError

__all__ = ["StopAtStart", "check_against_model", "load_resume_checkpoint", "stopped_reason"]

TRAINING_KEYS = ("state_dict", "epoch", "global_step", "optimizer_states")


def load_resume_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint at ``path`` read weights-only; InputError when unusable."""
    from cac_lightning.models import checkpoint

    ckpt = checkpoint.load(path, "ckpt_path=")
    missing = [k for k in TRAINING_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise InputError(
            f"ckpt_path={path}: not a cac-train training checkpoint (lacks {', '.join(missing)})"
        )
    hp = ckpt.get("hyper_parameters")
    if isinstance(hp, dict):
        try:
            checkpoint.migrate(hp, ckpt)  # an unknown or newer schema version: refused here
        except ValueError as err:
            raise InputError(f"ckpt_path={path}: {err}") from None
    return ckpt


def check_against_model(ckpt: dict, model, path: str | os.PathLike) -> None:
    """InputError naming the first parameter whose name or shape differs from ``model``'s."""
    theirs = ckpt["state_dict"]
    ours = model.state_dict()
    net = (ckpt.get("hyper_parameters") or {}).get("net")
    name = net.get("name") if isinstance(net, dict) else None
    made_for = f" (it was trained with model.net={name})" if name else ""
    for key, value in ours.items():
        if key not in theirs:
            raise InputError(f"ckpt_path={path} does not fit this model{made_for}: no {key}")
        shape = tuple(getattr(theirs[key], "shape", ()))
        if shape != tuple(value.shape):
            raise InputError(
                f"ckpt_path={path} does not fit this model{made_for}: {key} has shape "
                f"{list(shape)}, the model {list(value.shape)}"
            )
    extra = sorted(set(theirs) - set(ours))
    if extra:
        raise InputError(f"ckpt_path={path} does not fit this model{made_for}: extra {extra[0]}")


def stopped_reason(ckpt: dict) -> str | None:
    """Why the checkpointed run had already stopped (early stopping, loss gap), else None."""
    for key, state in (ckpt.get("callbacks") or {}).items():
        if not isinstance(state, dict):
            continue
        name = str(key).split("{")[0]
        epoch = state.get("stopped_epoch")
        if name == "LossGapStopping" and epoch is not None:
            return f"LossGapStopping stopped it at epoch {int(epoch)}"
        if name == "EarlyStopping":
            patience = state.get("patience")
            out_of_patience = patience is not None and state.get("wait_count", 0) >= patience
            if epoch or out_of_patience:
                return f"EarlyStopping stopped it at epoch {int(epoch or 0)}"
    return None


class StopAtStart(Callback):
    """Ends ``fit`` before its first epoch: the resumed run had already stopped."""

    def on_train_start(self, trainer, pl_module) -> None:
        trainer.should_stop = True
