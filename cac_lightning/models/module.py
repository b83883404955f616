"""LightningModule for 2D CAC segmentation (Hong et al. 2022, section 2.4).

Batches are dicts ``{"image": float32 (B, in_channels, H, W), "target": int64 (B, H, W)}`` (other
keys ignored). Each stage logs the epoch mean of the criterion as ``<stage>/loss`` and, from one
``torchmetrics`` ``MulticlassStatScores`` per stage (summed tp/fp/fn, reduced across DDP ranks),
``<stage>/slice_dice``, ``<stage>/slice_iou``, ``<stage>/slice_precision`` and
``<stage>/slice_recall`` (pooled over the slices of the epoch; the scan-level metrics of
:mod:`cac_lightning.evaluation.records` have their own names): macro means over
the calcium classes 1..C-1 that occur in the target or the prediction; background pixels count
as negatives, class 0 is not averaged. An epoch with no calcium at all, found or missed, scores
1.0. With deep supervision the loss is the mean of the head losses in every stage; the metrics
use the network's single output (final or mean head).

Hyper-parameters hold only plain names and numbers and follow the checkpoint schema
(:mod:`cac_lightning.models.checkpoint`): ``on_save_checkpoint`` passes them through
:func:`~cac_lightning.models.checkpoint.normalise`, which stamps the schema version and the
package versions, so the file Lightning's ``ModelCheckpoint`` writes is a schema checkpoint. The
optimizer and scheduler partials are stored as ``optimizer_cfg`` / ``scheduler_cfg`` dicts
``{"name": "<dotted class>", **keywords}``, from which a module loaded from a checkpoint
rebuilds them.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torchmetrics.classification import MulticlassStatScores

from cac_lightning.errors import CACError
from cac_lightning.models.checkpoint import DataGeometry, InputSpec, normalise
from cac_lightning.models.inputs import BASE_CHANNELS, candidates, gate_labels
from cac_lightning.models.losses import build_criterion
from cac_lightning.models.registry import build_net, stored_net
from cac_lightning.vessels import CLASS_NAMES

__all__ = [
    "PAPER_OPTIMIZER",
    "PAPER_SCHEDULER",
    "STAGES",
    "CACSegModule",
    "calcium_metrics",
    "describe_partial",
]

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
# "all": loss over every pixel (the paper). "candidates": only pixels of the >= threshold mask
# channel (input channel 1), the only pixels inference can label as calcium.
LOSS_REGIONS = ("all", "candidates")
# Hong et al. 2022, section 2.4: Adam, initial learning rate 1e-4, reduced by 5% after each epoch.
PAPER_OPTIMIZER: dict[str, Any] = {"name": "torch.optim.Adam", "lr": 1e-4}
PAPER_SCHEDULER: dict[str, Any] = {"name": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.95}


def _plain(value: Any, what: str) -> Any:
    """Deep-copy ``value`` into plain dicts, lists, str, int, float, bool and None."""
    try:  # Hydra passes DictConfig / ListConfig
        from omegaconf import Container, OmegaConf

        if isinstance(value, Container):
            value = OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{what}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, what) for v in value]
    raise ValueError(f"hyper-parameter {what} must hold plain names and numbers, got {value!r}")


def describe_partial(fn: Callable[..., Any] | None) -> dict[str, Any] | None:
    """Plain description of an optimizer/scheduler factory (a ``functools.partial``).

    Args:
        fn: e.g. ``functools.partial(torch.optim.Adam, lr=1e-4)`` (Hydra ``_partial_: true``).

    Returns:
        ``{"name": "torch.optim.adam.Adam", "lr": 0.0001}``, or None for None. Keyword values
        that are not plain are stored as their ``repr``.
    """
    if fn is None:
        return None
    keywords: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        if fn.args:
            raise ValueError(f"optimizer/scheduler partial takes keywords only, got args {fn.args}")
        keywords = dict(fn.keywords)
        fn = fn.func
    out: dict[str, Any] = {"name": f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}"}
    for key, value in keywords.items():
        try:
            out[key] = _plain(value, key)
        except ValueError:
            out[key] = repr(value)
    return out


def _from_cfg(cfg: Mapping[str, Any]) -> Callable[..., Any]:
    """A partial of the ``torch.optim`` class named in ``cfg`` (see :func:`describe_partial`)."""
    cfg = dict(cfg)
    name = str(cfg.pop("name"))
    if not name.startswith("torch.optim."):
        raise CACError(f"can only rebuild torch.optim classes from a stored config, got {name!r}")
    module, _, attr = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CACError(f"cannot import {name!r}: {exc}") from exc
    return functools.partial(cls, **cfg)


def calcium_metrics(stats: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dice, IoU, precision and recall, macro over the calcium classes.

    Args:
        stats: (C, 5) per-class [tp, fp, tn, fn, support] from ``MulticlassStatScores``
            (average=None); row 0 is the background and is not averaged.

    Returns:
        {"dice", "iou", "precision", "recall"}: float32 scalars, means over classes 1..C-1 with
        tp + fp + fn > 0 (zero division -> 0); 1.0 each when no such class exists.
    """
    s = stats[1:].detach().cpu().double()  # 5x5 counts; float64 is not on every device
    tp, fp, fn = s[:, 0], s[:, 1], s[:, 3]
    present = (tp + fp + fn) > 0

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num))

    per_class = {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }
    if not bool(present.any()):
        return {k: torch.tensor(1.0) for k in per_class}
    return {k: v[present].mean().float() for k, v in per_class.items()}


class CACSegModule(L.LightningModule):
    """Segmentation of calcium per coronary artery on 2-channel axial slices.

    Args:
        net: Plain dict ``{"name": ..., **kwargs}`` passed to
            :func:`~cac_lightning.models.registry.build_net` (e.g. ``{"name": "unetplusplus"}``);
            stored without the arm's init-only keys (``encoder_weights_path``).
        criterion: Plain dict ``{"name": ..., **kwargs}`` for
            :func:`~cac_lightning.models.losses.build_criterion`; None -> focal loss, alpha 0.5,
            gamma 3 (paper).
        optimizer: Factory called with the parameters (Hydra ``_partial_: true``); None ->
            ``optimizer_cfg`` or Adam, lr 1e-4 (paper).
        scheduler: Factory called with the optimizer, stepped every epoch; None ->
            ``scheduler_cfg`` or ExponentialLR, gamma 0.95 (paper: -5% per epoch).
        input: Plain dict of the input,
            :class:`~cac_lightning.models.checkpoint.InputSpec` (``window``; ``threshold``:
            ``"scan"`` or a fixed HU, recorded from the DataModule by
            :class:`~cac_lightning.callbacks.geometry.RecordDataGeometry`; ``context``: slices
            each side, which sets the network's ``in_channels`` to 2 + 2 * context).
        scoring: Plain dict of scoring settings; stored only.
        compile: ``torch.compile`` the network (in place) in ``setup``. Default False.
        cuda_graphs: capture the training step's network in CUDA graphs
            (``torch.compile(mode="reduce-overhead")``): fewer kernel launches at the paper's
            batch 4. Only on a CUDA device; elsewhere one warning and nothing changes.
        channels_last: Use the channels-last memory format for the net and its inputs.
        optimizer_cfg: Plain optimizer description, used only when ``optimizer`` is None
            (a module loaded from a checkpoint gets it back from the hyper-parameters).
        scheduler_cfg: Likewise for the scheduler.
        loss_region: ``"all"`` pixels (the paper) or only the ``"candidates"`` >= threshold.
        data_geometry: Plain dict of the training data's geometry,
            :class:`~cac_lightning.models.checkpoint.DataGeometry` (``spacing_mm``, ``fov_mm``,
            ``pixel_spacing_mm``, ``slice_thickness_mm``, ``fov_range_mm``, ``kvp``), read by
            :class:`~cac_lightning.inference.Predictor`; stored only.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        criterion: Mapping[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        input: Mapping[str, Any] | None = None,  # noqa: A002 - name fixed by the config
        scoring: Mapping[str, Any] | None = None,
        compile: bool = False,  # noqa: A002
        cuda_graphs: bool = False,
        channels_last: bool = False,
        optimizer_cfg: Mapping[str, Any] | None = None,
        scheduler_cfg: Mapping[str, Any] | None = None,
        loss_region: str = "all",
        data_geometry: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        net_cfg = _plain(net, "net")
        if not isinstance(net_cfg, dict) or "name" not in net_cfg:
            raise CACError(f"net must be a dict with a 'name', got {net!r}")
        crit_cfg = _plain(criterion if criterion is not None else {"name": "focal"}, "criterion")
        if not isinstance(crit_cfg, dict) or "name" not in crit_cfg:
            raise CACError(f"criterion must be a dict with a 'name', got {criterion!r}")
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler
        opt_cfg = describe_partial(optimizer) or _plain(optimizer_cfg, "optimizer_cfg")
        sched_cfg = describe_partial(scheduler) or _plain(scheduler_cfg, "scheduler_cfg")
        try:
            spec = InputSpec.from_dict(_plain(input, "input"))
            geometry = DataGeometry.from_dict(_plain(data_geometry, "data_geometry"))
        except ValueError as err:
            raise CACError(str(err)) from None
        input_spec = spec.to_dict()
        # the input owns the channel count: the arms' configs say the paper's 2
        given = int(net_cfg.get("in_channels", BASE_CHANNELS))
        if given not in (BASE_CHANNELS, spec.channels):
            raise CACError(
                f"net.in_channels {given} does not fit the input's {spec.channels} channels "
                f"(input.context {spec.context})"
            )
        if spec.channels != BASE_CHANNELS:
            net_cfg = {**net_cfg, "in_channels": spec.channels}
        self.save_hyperparameters(
            {
                "net": stored_net(net_cfg),  # without init-only keys: rebuilds without them
                "criterion": crit_cfg,
                "input": input_spec,
                "scoring": _plain(scoring or {}, "scoring"),
                "compile": bool(compile),
                "cuda_graphs": bool(cuda_graphs),
                "channels_last": bool(channels_last),
                "optimizer_cfg": opt_cfg or dict(PAPER_OPTIMIZER),
                "scheduler_cfg": sched_cfg or dict(PAPER_SCHEDULER),
                "class_names": list(CLASS_NAMES),
                "loss_region": str(loss_region),
                "data_geometry": geometry.to_dict() if geometry else None,
            }
        )
        if loss_region not in LOSS_REGIONS:
            raise CACError(f"loss_region must be one of {LOSS_REGIONS}, got {loss_region!r}")
        net_kwargs = dict(net_cfg)
        self.net = build_net(net_kwargs.pop("name"), **net_kwargs)
        crit_kwargs = dict(crit_cfg)
        self.criterion = build_criterion(crit_kwargs.pop("name"), **crit_kwargs)
        if self.hparams.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.num_classes = int(net_cfg.get("num_classes", len(CLASS_NAMES)))
        ignore = crit_cfg.get("ignore_index")
        for stage in STAGES:
            stats = MulticlassStatScores(
                self.num_classes, average=None, ignore_index=ignore, validate_args=False
            )
            setattr(self, f"{stage}_stats", stats)
        self._compiled = False

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Write the hyper-parameters in the checkpoint schema (version and versions stamped)."""
        try:
            checkpoint["hyper_parameters"] = normalise(checkpoint["hyper_parameters"])
        except ValueError as err:
            raise CACError(f"cannot save the checkpoint: {err}") from None

    # -- inference -------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) of a (B, in_channels, H, W) batch (single output)."""
        return self.net(self._prepare(x))

    @torch.inference_mode()
    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode float32 logits (B, num_classes, H, W); ``x`` (B, in_channels, H, W) is moved
        to the module's device. The training flag is restored afterwards."""
        was_training = self.training
        self.eval()
        try:
            return self(x.to(self.device, torch.float32)).float()
        finally:
            self.train(was_training)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Argmax labels (B, H, W) uint8 (0 background, 1 LM, 2 LAD, 3 CX, 4 RCA), gated by the
        input's HU >= threshold channel (:func:`~cac_lightning.models.inputs.gate_labels`)."""
        x = batch["image"] if isinstance(batch, Mapping) else batch
        if isinstance(x, (list, tuple)):
            x = x[0]
        return gate_labels(self(x).argmax(dim=1).to(torch.uint8), candidates(x))

    # -- training --------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Compile the network in place when ``compile`` or ``cuda_graphs`` is set (state-dict
        keys unchanged); ``cuda_graphs`` off a CUDA device is one warning and a no-op."""
        if self._compiled:
            return
        if self.hparams.get("cuda_graphs", False):
            device = self.trainer.strategy.root_device if self._trainer else self.device
            if device.type != "cuda":
                log.warning(
                    "model.cuda_graphs=true needs a CUDA device; on %s it does nothing",
                    device.type,
                )
            else:
                log.info("torch.compile of the network, CUDA graphs (mode reduce-overhead)")
                self.net.compile(mode="reduce-overhead")
                self._compiled = True
                return
        if self.hparams.compile:
            log.info("torch.compile of the network")
            self.net.compile()
            self._compiled = True

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """All head logits (K, B, C, H, W): K > 1 only with deep supervision."""
        x = self._prepare(x)
        if getattr(self.net, "deep_supervision", False):
            return self.net(x, return_heads=True)
        return self.net(x).unsqueeze(0)

    def _step(self, batch: Mapping[str, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch["image"], batch["target"]
        heads = self._heads(x)
        cand = candidates(x)
        y_loss = y
        if self.hparams.get("loss_region", "all") == "candidates":
            y_loss = y.masked_fill(~cand, getattr(self.criterion, "ignore_index", -100))
        loss = torch.stack([self.criterion(h, y_loss) for h in heads]).mean()
        if heads.shape[0] > 1 and getattr(self.net, "ds_output", "final") == "mean":
            out = heads.mean(dim=0)
        else:
            out = heads[-1]
        # As at inference: calcium only where the input's >= threshold channel is on.
        pred = gate_labels(out.detach().argmax(dim=1), cand)
        getattr(self, f"{stage}_stats").update(pred, y)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            prog_bar=True,
            batch_size=x.shape[0],
        )
        return loss

    def _log_metrics(self, stage: str) -> None:
        stats = getattr(self, f"{stage}_stats")
        if not stats.update_called:
            return
        values = calcium_metrics(stats.compute())
        stats.reset()
        for name, value in values.items():
            # already reduced across ranks by torchmetrics: the sync averages equal values
            self.log(
                f"{stage}/slice_{name}",
                value.to(self.device),
                sync_dist=True,
                prog_bar=name == "dice",
            )

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss of one training batch."""
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss of one validation batch."""
        return self._step(batch, "val")

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss of one test batch."""
        return self._step(batch, "test")

    def on_train_epoch_start(self) -> None:
        """Log the learning rate of this epoch as ``train/lr``."""
        if self.trainer.optimizers:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("train/lr", float(lr), on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        """Log the training metrics."""
        self._log_metrics("train")

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics."""
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics."""
        self._log_metrics("test")

    def configure_optimizers(self) -> dict[str, Any]:
        """Optimizer and an epoch-interval scheduler (paper: Adam 1e-4, ExponentialLR 0.95)."""
        make_opt = self._optimizer_factory or _from_cfg(self.hparams.optimizer_cfg)
        make_sched = self._scheduler_factory or _from_cfg(self.hparams.scheduler_cfg)
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = make_opt(params)
        scheduler = make_sched(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
