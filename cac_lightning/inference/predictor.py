"""The Predictor: a trained network -> calcium label map on a scan's native grid.

The one place a network meets a scan, used by ``cac-score``, ``cac-eval``, the validation
callback and the image logger alike. A checkpoint holds everything inference needs
(:mod:`cac_lightning.models.checkpoint`, read by :func:`~cac_lightning.models.checkpoint.read`
weights-only, so loading a checkpoint never runs code from it): the network (``net``), the
input window and threshold source (``input``), the class map, the scoring settings and the
geometry of the training data (``data_geometry``: the pixel spacing the network was trained at
and the ranges it saw).

:meth:`Predictor.predict` puts the scan on the checkpoint's training grid with the one rule the
cache applies to training scans (:class:`~cac_lightning.data.resample.TrainingGrid`), so the
network sees exactly the pixels the cache would have stored for the scan, then for each batch of
axial slices:

0. (whole scan, once) resamples the HU slices (bilinear, anti-aliased, sizes rounded down, HU
   rounded as stored) to the training pixel spacing (none when the checkpoint records none: a
   warning is logged once);
1. when the checkpoint records a training field of view (``data_geometry.fov_mm``), cuts that
   square on the resampled grid around the body centre exactly as training did (or the heart
   region's centre, step 5); everything outside it is background;
2. pads them with air to the network's multiple (16 or 32 pixels) and builds the 2-channel
   input (:func:`~cac_lightning.models.inputs.make_input`) with the scan's threshold (or the
   fixed one the checkpoint's ``input.threshold`` records);
3. runs the network in bf16 autocast on CUDA, float32 on CPU (the same for validation and
   ``cac-score``);
4. crops the padding, maps the logits back to the native grid with the inverse of steps 0-1
   (:meth:`~cac_lightning.data.resample.GridPlan.to_native`: bilinear), takes the argmax
   and keeps calcium only where the native HU reach the scan's threshold
   (:func:`~cac_lightning.models.inputs.gate_labels`), so calcium boundaries come from the
   native voxels, and, on a resampled grid, only within one training-grid pixel of that
   grid's own candidates: the pixels the network learnt to judge. A candidates-only loss
   (``loss_region: candidates``) leaves every other pixel's logits untrained, and native
   noise above the threshold there was called calcium (docs/physical_units.md);
5. keeps calcium only inside the scan's heart region (:mod:`cac_lightning.heart`; found before
   step 0, whose window is then centred on it, not on the body): bone, cartilage and the aortic
   arch outside the heart are never coronary (``set_heart``: method and margin, or ``off``);
6. when the checkpoint records a lesion-confidence floor (``lesion_confidence``) and the scan
   lies inside its training domain (:meth:`Predictor.floor_for`), drops the predicted lesions
   whose mean foreground probability is below it (:mod:`cac_lightning.inference.confidence`).

:meth:`Predictor.from_checkpoints` builds one Predictor from several checkpoints of the same
grid, window and scoring (e.g. one recipe trained with different seeds): each slice batch goes
through every network and the members' mean log-probabilities (the normalised geometric mean of
their softmax) take the place of the logits above.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cac_lightning.data.resample import GridPlan, TrainingGrid
from cac_lightning.errors import InputError
from cac_lightning.heart.region import (
    DEFAULT_MARGIN_MM,
    HeartRegion,
    NoHeartError,
    check_heart_settings,
    find_heart,
)
from cac_lightning.inference.confidence import apply_floor, recorded_floor
from cac_lightning.models import checkpoint
from cac_lightning.models.checkpoint import CheckpointRecord, DataGeometry
from cac_lightning.models.inputs import (
    AIR_HU,
    MASK_CHANNEL,
    gate_labels,
    make_input,
)
from cac_lightning.scoring.config import ScoringConfig
from cac_lightning.vessels import CLASS_NAMES

__all__ = ["JUDGED_MARGIN_PX", "Predictor", "resolve_device"]

log = logging.getLogger(__name__)

JUDGED_MARGIN_PX = 1
"""On a resampled grid, labels are kept within this many training-grid pixels of that grid's
>= threshold candidates (see :meth:`Predictor._labels`)."""

REGION_CACHE = 16
"""Heart regions this process remembers (by scan id, shape, HU sum and settings): validation
scores the same scans every few epochs, each time through a new Predictor."""
_REGIONS: dict[tuple, HeartRegion] = {}

_warned: set[str] = set()  # one warning per process, not one per scan or validation epoch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or None) -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine")
    return torch.device(device)


def _net_multiple(net: Any) -> int:
    """Side multiple a network's input needs: its ``multiple`` (a library arm's, which pads any
    other size itself), else its ``net``'s (a LightningModule's), 2**(depth-1) for ours; 32
    otherwise."""
    multiple = getattr(net, "multiple", None)
    if isinstance(multiple, int) and multiple > 0:
        return multiple
    inner = getattr(net, "net", None)
    if isinstance(inner, torch.nn.Module):
        return _net_multiple(inner)
    depth = getattr(net, "depth", None)
    if isinstance(depth, int) and depth > 0:
        return 2 ** (depth - 1)
    encoder_depth = getattr(getattr(net, "encoder", None), "_depth", None)
    if isinstance(encoder_depth, int) and encoder_depth > 0:
        return 2**encoder_depth
    return 32


def _net_name(net: Any) -> str:
    """The network's class name, through a LightningModule's and a padding wrapper's ``net``."""
    while isinstance(getattr(net, "net", None), torch.nn.Module):
        net = net.net
    return type(net).__name__


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad (B, H, W) HU with air to a multiple of ``multiple``; returns (padded, (t, b, l, r))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    if ph or pw:
        x = F.pad(x, (pad[2], pad[3], pad[0], pad[1]), value=AIR_HU)
    return x, pad


def _foreground(logits: torch.Tensor, wanted: bool) -> torch.Tensor | None:
    """(B, H, W) ``1 - P(background)`` of (B, C, H, W) logits (or log-probabilities)."""
    return 1.0 - torch.softmax(logits, dim=1)[:, 0] if wanted else None


def _build(path: Path, device: torch.device) -> tuple[torch.nn.Module, CheckpointRecord]:
    """The network of a cac-train checkpoint on ``device`` (eval mode) and its record."""
    from cac_lightning.models import build_net

    record = checkpoint.read(path)
    if record.class_names != CLASS_NAMES:
        raise InputError(
            f"{path}: class map {record.class_names} differs from this version's {CLASS_NAMES}"
        )
    try:
        net = build_net(record.network.name, **record.network.kwargs)
    except (TypeError, ValueError) as err:  # ConfigError too: a key the arm does not take
        raise InputError(f"{path}: the recorded network does not build ({err})") from None
    try:
        net.load_state_dict(record.network_state())
    except RuntimeError as err:
        raise InputError(
            f"{path}: weights do not fit the network ({str(err).splitlines()[0]})"
        ) from None
    net.to(device).eval()
    if record.training.channels_last:
        net.to(memory_format=torch.channels_last)
    return net, record


class _Ensemble(torch.nn.Module):
    """Networks whose mean log-probabilities stand in for one network's logits."""

    def __init__(self, nets: list[torch.nn.Module]) -> None:
        super().__init__()
        self.nets = torch.nn.ModuleList(nets)
        self.multiple = max(_net_multiple(n) for n in nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.log_softmax(n(x).float(), dim=1) for n in self.nets]).mean(0)


# What every member of an ensemble must share: (what, value in the record).
_SHARED: dict[str, Callable[[CheckpointRecord], Any]] = {
    "input": lambda r: r.input,
    "training spacing": lambda r: r.data_geometry.spacing_mm if r.data_geometry else None,
    "training field of view": lambda r: r.data_geometry.fov_mm if r.data_geometry else None,
    "scoring settings": lambda r: r.scoring,
}


class Predictor:
    """A network ready to label whole scans.

    Args:
        net: maps a (B, 2, H, W) float input to (B, 5, H, W) logits (an ``nn.Module``).
        hparams: the checkpoint's :class:`~cac_lightning.models.checkpoint.CheckpointRecord`,
            or the module's hyper-parameters in its schema (plain dict; missing fields take
            their defaults): ``input`` (``window``, ``threshold``), ``scoring``
            (:class:`~cac_lightning.scoring.ScoringConfig` fields), ``data_geometry``
            (``spacing_mm``, ``fov_mm``, ``pixel_spacing_mm``, ``slice_thickness_mm``,
            ``fov_range_mm``, ``kvp``), ``lesion_confidence`` (``floor``:
            :mod:`~cac_lightning.inference.confidence`).
        device: where ``net`` runs.
        batch_size: slices per forward pass (default 16).
        name: a label for reports (checkpoint file name or network class).

    Raises:
        InputError: hyper-parameters that do not fit the checkpoint schema (a spacing that is
            not a positive number, a floor outside [0, 1), ...).
    """

    def __init__(
        self,
        net: Callable[[torch.Tensor], torch.Tensor],
        hparams: CheckpointRecord | Mapping[str, Any] | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 16,
        name: str = "",
    ) -> None:
        self.net = net
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.multiple = _net_multiple(net)
        self.name = name or _net_name(net)
        if isinstance(hparams, CheckpointRecord):
            record = hparams
        else:
            try:
                record = CheckpointRecord.from_hyper_parameters(hparams)
            except ValueError as err:
                raise InputError(f"{self.name}: {err}") from None
        self.record = record
        self.input = record.input
        self.window: tuple[float, float] = record.input.window
        self.scoring: dict = dict(record.scoring)
        self.data_geometry: DataGeometry | None = record.data_geometry
        self.lesion_floor = record.lesion_floor
        self.floor_everywhere = False  # True once set_floor is called: also outside the domain
        self.heart_method = self.default_heart
        self.heart_margin_mm = DEFAULT_MARGIN_MM

    default_heart = "auto"
    """The heart method a new Predictor starts with (:meth:`set_heart` changes it)."""

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device | None = "auto", batch_size: int = 16
    ) -> Predictor:
        """Rebuild the network of a checkpoint written by ``cac-train``.

        Args:
            path: the ``.ckpt`` file.
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
            batch_size: slices per forward pass.

        Raises:
            InputError: a missing or unreadable file, not a cac-train checkpoint, a class map
                of another version, or weights that do not fit the network.
        """
        return cls.from_checkpoints([path], device, batch_size)

    @classmethod
    def from_checkpoints(
        cls,
        paths: list[str | Path],
        device: str | torch.device | None = "auto",
        batch_size: int = 16,
    ) -> Predictor:
        """One Predictor for one checkpoint or, for several, their ensemble.

        The members must share the input window, the training spacing and field of view and
        the scoring settings; the first one's hyper-parameters describe the ensemble (its
        training ranges for the domain-shift warnings).

        Raises:
            InputError: as :meth:`from_checkpoint`, or members that differ in what they share.
        """
        paths = [Path(p) for p in paths]
        if not paths:
            raise InputError("no checkpoint given")
        dev = resolve_device(device)
        built = [_build(p, dev) for p in paths]
        net, first = built[0]
        name = paths[0].name
        for path, (_, rec) in zip(paths[1:], built[1:], strict=True):
            for what, get in _SHARED.items():
                if get(rec) != get(first):
                    raise InputError(
                        f"{path.name} and {paths[0].name} differ in their {what} "
                        f"({get(rec)} vs {get(first)}): they cannot be ensembled"
                    )
        if len(built) > 1:
            net = _Ensemble([n for n, _ in built]).to(dev).eval()
            name = f"ensemble of {len(paths)}: " + ", ".join(str(p) for p in paths)
        return cls(net, first, dev, batch_size, name=name)

    @classmethod
    def from_module(cls, module: Any, batch_size: int = 16) -> Predictor:
        """Wrap a LightningModule (its ``forward`` and ``hparams``), e.g. during validation."""
        hp = dict(getattr(module, "hparams", {}) or {})
        device = getattr(module, "device", torch.device("cpu"))
        return cls(module, hp, device, batch_size)

    # -- settings ----------------------------------------------------------------------------
    @property
    def autocast(self) -> bool:
        """bf16 autocast on CUDA; float32 elsewhere."""
        return self.device.type == "cuda"

    @property
    def spacing_mm(self) -> float | None:
        """In-plane spacing the network was trained at (None: unknown, predict natively)."""
        return self.data_geometry.spacing_mm if self.data_geometry else None

    def scoring_config(self, overrides: Mapping[str, Any] | None = None) -> ScoringConfig:
        """The checkpoint's scoring settings with ``overrides`` (None values ignored) on top."""
        given = {k: v for k, v in dict(overrides or {}).items() if v is not None}
        return ScoringConfig(**{**self.scoring, **given})

    def threshold_for(self, volume: Any, scoring: ScoringConfig | None = None) -> float:
        """The scan's calcium threshold (HU): the scoring setting, else from its kVp."""
        cfg = scoring if scoring is not None else self.scoring_config()
        return float(cfg.resolve(getattr(volume, "kvp", None))[0])

    def set_floor(self, floor: float) -> None:
        """Replace the checkpoint's lesion-confidence floor (0: none); applied to every scan.

        Raises:
            InputError: a floor outside [0, 1).
        """
        try:
            self.lesion_floor = recorded_floor({"floor": floor})
        except ValueError as err:
            raise InputError(str(err)) from None
        self.floor_everywhere = True

    def set_heart(self, method: str = "auto", margin_mm: float = DEFAULT_MARGIN_MM) -> None:
        """How :meth:`heart_region` finds the heart (:data:`~cac_lightning.heart.HEART_METHODS`;
        ``off``: no region, calcium anywhere may be called coronary)."""
        check_heart_settings(method, margin_mm)
        self.heart_method = method
        self.heart_margin_mm = float(margin_mm)

    def heart_region(self, volume: Any) -> HeartRegion | None:
        """The heart region of ``volume`` (None when switched off or for a bare array, whose
        voxel spacing is unknown).

        Raises:
            NoHeartError: no heart found in the scan.
        """
        geometry = getattr(volume, "geometry", None)
        if self.heart_method == "off" or geometry is None:
            return None
        hu = np.asarray(volume.hu if hasattr(volume, "hu") else volume)
        key = (getattr(volume, "scan_id", None), hu.shape, float(hu.sum(dtype=np.float64)))
        key += (self.heart_method, self.heart_margin_mm)
        if key not in _REGIONS:
            if len(_REGIONS) >= REGION_CACHE:
                _REGIONS.pop(next(iter(_REGIONS)))
            _REGIONS[key] = find_heart(
                hu,
                tuple(float(s) for s in geometry.spacing_zyx),
                method=self.heart_method,
                margin_mm=self.heart_margin_mm,
            )
        return _REGIONS[key]

    def floor_for(self, volume: Any) -> float:
        """The lesion-confidence floor :meth:`predict` applies to ``volume`` by default.

        The checkpoint's floor was chosen on its validation scans, so it holds only for scans
        like them: a scan with any domain-shift warning (:meth:`warnings`), or a bare array whose
        domain cannot be checked, gets none (0). On real scans outside the synthetic training
        domain the floor dropped real lesions (docs/physical_units.md, "Lesion-confidence
        floor"). A floor given with :meth:`set_floor` applies to every scan.
        """
        if self.lesion_floor <= 0 or self.floor_everywhere:
            return self.lesion_floor
        if getattr(volume, "geometry", None) is None or self.warnings(volume):
            return 0.0
        return self.lesion_floor

    def warnings(self, volume: Any) -> list[str]:
        """One line for each way ``volume`` lies outside the checkpoint's training data."""
        from cac_lightning.inference.domain import domain_warnings

        return domain_warnings(volume, self.data_geometry)

    # -- prediction --------------------------------------------------------------------------
    @property
    def grid(self) -> TrainingGrid:
        """The checkpoint's training grid: its ``spacing_mm`` and ``fov_mm``
        (:class:`~cac_lightning.data.resample.TrainingGrid`, the rule of the training cache)."""
        target = self.spacing_mm
        if target is None and "native" not in _warned:
            log.warning(
                "the checkpoint records no training pixel spacing: predicting at the "
                "scan's native spacing"
            )
            _warned.add("native")
        fov = self.data_geometry.fov_mm if self.data_geometry else None
        return TrainingGrid(target, float(fov) if fov else None)

    def _labels(
        self, hu: torch.Tensor, threshold_hu: float, plan: GridPlan, foreground: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, H, W) uint8 labels on the native grid of a (B + 2 * context, rows, cols) float HU
        batch on the training grid (``plan.network_hu``), before the native HU gate, and (when
        ``foreground``) the (B, H, W) foreground probability ``1 - P(background)`` there (else
        None; both 0 outside the field of view).

        On a resampled grid a label is kept only within one training-grid pixel of that grid's
        own >= threshold candidates (:data:`JUDGED_MARGIN_PX`): the only pixels the network has
        learnt to judge (the candidates, and their neighbours for a plaque's native rim).
        Elsewhere its logits mean nothing, and native noise above the threshold, averaged below
        it on the training grid, would take whatever class they happen to favour.
        """
        padded, (top, bottom, left, right) = _pad_to(hu, self.multiple)
        x = make_input(
            padded, self.window, self.input.mask_threshold(threshold_hu), self.input.context
        )
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.net(x)
        h, w = padded.shape[-2:]
        logits = logits.float()[..., top : h - bottom, left : w - right]
        if plan.scale is None and plan.window is None:
            return logits.argmax(1).to(torch.uint8), _foreground(logits, foreground)
        native = plan.to_native(logits, "bilinear")
        labels = native.argmax(1).to(torch.uint8)
        if plan.scale is not None:
            side = 2 * JUDGED_MARGIN_PX + 1
            judged = F.max_pool2d(x[:, MASK_CHANNEL : MASK_CHANNEL + 1], side, 1, JUDGED_MARGIN_PX)
            judged = judged[..., top : h - bottom, left : w - right]
            labels = gate_labels(labels, plan.to_native(judged, "nearest")[:, 0] > 0.5)
        prob = _foreground(native, foreground)
        if plan.window is not None:
            inside = plan.inside(labels.device)
            labels = gate_labels(labels, inside.expand_as(labels))
            prob = None if prob is None else prob * inside
        return labels, prob

    @torch.no_grad()
    def predict(
        self,
        volume: Any,
        *,
        pixel_spacing: tuple[float, float] | None = None,
        kvp: float | None = None,
        threshold_hu: float | None = None,
        batch_size: int | None = None,
        floor: float | None = None,
        return_foreground: bool = False,
        region: HeartRegion | None | str = "auto",
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Calcium labels of every axial slice, on the volume's native grid.

        Args:
            volume: a :class:`~cac_lightning.io.volume.Volume` or cached scan (``hu``,
                ``geometry``, ``kvp``), or a (Z, H, W) HU array.
            pixel_spacing: (row, column) mm; default ``volume.geometry.pixel_spacing``
                (required for a bare array when the checkpoint records a training spacing).
            kvp: tube voltage; default ``volume.kvp``.
            threshold_hu: the scan's calcium threshold; default :meth:`threshold_for`.
            batch_size: slices per forward pass; default the predictor's.
            floor: lesion-confidence floor; default :meth:`floor_for` (the checkpoint's, for
                a scan inside its training domain), 0 keeps every lesion.
            return_foreground: also return the foreground probability map.
            region: the scan's heart region (from :meth:`heart_region`; None: no region);
                default ``"auto"`` finds it with the predictor's heart settings, and predicts
                without one (a warning is logged) when the scan shows no heart: validation
                and evaluation crops may cut the lungs away. ``cac-score`` asks for the region
                itself and refuses such a scan.

        Returns:
            (Z, H, W) uint8 labels: 0 background, 1 LM, 2 LAD, 3 CX, 4 RCA; 0 wherever the
            native HU is below the threshold; with ``return_foreground`` also the (Z, H, W)
            float32 foreground probability ``1 - P(background)`` (0 outside the field of view).

        Raises:
            InputError: an array that is not 3D, or no pixel spacing when one is needed.
        """
        hu = volume.hu if hasattr(volume, "hu") else volume
        if isinstance(region, str):
            try:
                region = self.heart_region(volume)
            except NoHeartError as err:
                log.warning("%s: %s; calcium is kept anywhere", getattr(volume, "scan_id", ""), err)
                region = None
        geometry = getattr(volume, "geometry", None)
        if pixel_spacing is None and geometry is not None:
            pixel_spacing = tuple(float(s) for s in geometry.pixel_spacing)
        if kvp is None:
            kvp = getattr(volume, "kvp", None)
        if threshold_hu is None:
            threshold_hu = float(self.scoring_config().resolve(kvp)[0])
        if np.ndim(hu) != 3:
            raise InputError(f"expected a (slices, rows, columns) volume, got shape {np.shape(hu)}")
        if self.spacing_mm is not None and pixel_spacing is None:
            raise InputError("the checkpoint was trained at a pixel spacing; give the scan's")
        centre = region.centre_yx() if region is not None else None
        plan = self.grid.plan(hu, pixel_spacing, centre)
        net = self.net
        was_training = bool(getattr(net, "training", False))
        if hasattr(net, "eval"):
            net.eval()
        step = int(batch_size or self.batch_size)
        floor = self.floor_for(volume) if floor is None else float(floor)
        wanted = return_foreground or floor > 0
        out = np.zeros(np.shape(hu), dtype=np.uint8)
        fg = np.zeros(np.shape(hu), dtype=np.float32) if wanted else None
        try:
            for start in range(0, out.shape[0], step):
                chunk = np.asarray(hu[start : start + step])
                part = plan.network_hu(start, start + len(chunk), self.input.context)
                x = torch.from_numpy(part.astype(np.float32)).to(self.device)
                pred, prob = self._labels(x, threshold_hu, plan, wanted)
                rows = slice(start, start + len(chunk))
                out[rows] = gate_labels(pred.cpu().numpy(), chunk >= threshold_hu)
                if fg is not None:
                    fg[rows] = prob.cpu().numpy()
        finally:
            if was_training and hasattr(net, "train"):
                net.train(True)
        if region is not None:
            out[~region.mask] = 0
        if floor > 0:
            out = apply_floor(out, fg, floor)
        return (out, fg) if return_foreground else out

    def describe(self) -> dict[str, Any]:
        """Plain description for reports: network, device, precision, spacing."""
        return {
            "checkpoint": self.name,
            "net": " + ".join(_net_name(n) for n in self.net.nets)
            if isinstance(self.net, _Ensemble)
            else _net_name(self.net),
            "device": str(self.device),
            "precision": "bf16-autocast" if self.autocast else "float32",
            "spacing_mm": self.spacing_mm,
            "lesion_confidence_floor": self.lesion_floor,
        }
