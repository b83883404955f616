"""Best-checkpoint tracking that survives a resume into a new run folder.

Lightning's ``ModelCheckpoint`` forgets ``best_model_score`` when the checkpoint folder
changed since the checkpoint was written (every ``cac-train`` run gets a new folder), so
after a resume the "best" checkpoint would be chosen among post-resume epochs only.
:class:`ResumableModelCheckpoint` keeps the score and copies the earlier best file into
the new folder, so selection spans the whole run and nothing in the old folder is touched.

Since Lightning 2.6 ``save_last=True`` writes ``last.ckpt`` only at a step where a top-k
checkpoint was saved, so with ``save_top_k=1`` it is a copy of the best one and a resume from it
repeats every epoch since. Here ``last.ckpt`` is also written at the end of each training epoch
that has not written it yet: it is always the latest epoch, as ``cac-train ckpt_path=`` expects.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

__all__ = ["ResumableModelCheckpoint"]

log = logging.getLogger(__name__)


class ResumableModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose best score and best file carry over into a new folder, and whose
    ``last.ckpt`` is the latest epoch."""

    _last_saved_step: int | None = None

    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_saved_step = trainer.global_step

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        stale = self._last_saved_step != trainer.global_step
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if self.save_last is True and stale and fitting and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @property
    def state_key(self) -> str:
        """The same key as Lightning's ``ModelCheckpoint``, so older checkpoints resume too."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath", self.dirpath)
        if old_dir == self.dirpath or self.dirpath is None:
            super().load_state_dict(state_dict)
            return
        score = state_dict.get("best_model_score")
        best = Path(state_dict.get("best_model_path") or "")
        self.best_model_path = ""
        if score is None or not best.is_file():
            log.warning("the resumed run's best checkpoint %s is gone; best restarts", best)
            return
        target = Path(self.dirpath) / best.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(best, target)
        self.best_model_score = score
        self.best_model_path = str(target)
        self.best_k_models = {str(target): score}
        self.kth_best_model_path = str(target)
        self.kth_value = score
