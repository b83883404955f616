"""The checkpoint schema: the one owner of what a cac-train checkpoint holds.

A checkpoint is the file Lightning's ``ModelCheckpoint`` writes (``torch.save`` of a dict).
Lightning owns its training state (``epoch``, ``global_step``, ``optimizer_states``,
``lr_schedulers``, ``loops``, ``callbacks``, ``datamodule_hyper_parameters``); this module
owns ``state_dict`` (the module's weights, the network under ``net.``) and the module's
``hyper_parameters``, which :class:`~cac_lightning.models.module.CACSegModule` keeps in this
schema (``on_save_checkpoint`` passes them through :func:`normalise`, so what Lightning writes
IS the schema):

=====================  ======================================================================
``schema_version``     :data:`SCHEMA_VERSION` (absent: version 0, see below)
``net``                :class:`NetworkSpec`: ``{"name": ..., **kwargs}`` for ``build_net``
                       (without init-only keys: ``registry.stored_net``)
``input``              :class:`InputSpec`: ``{"window": [lo, hi], "threshold": "scan" | HU,
                       "context": slices each side}`` (``context`` absent: 0)
``scoring``            :class:`~cac_lightning.scoring.ScoringConfig` fields (plain dict)
``class_names``        the label map, ``["background", "LM", "LAD", "CX", "RCA"]``
``data_geometry``      :class:`DataGeometry`: training spacing, field of view, training ranges
``data``               the data definition trained on: ``{"_target_": <DataModule>, **kwargs}``
``lesion_confidence``  :class:`LesionFloor` (absent / None: no floor)
training keys          :class:`TrainingSummary`: ``criterion``, ``optimizer_cfg``,
                       ``scheduler_cfg``, ``loss_region``, ``compile``, ``channels_last``,
                       ``cuda_graphs`` (absent: false)
                       (the module's own arguments, so ``load_from_checkpoint`` still works)
``versions``           :class:`Versions`: ``cac_lightning``, ``torch``, ``lightning``
=====================  ======================================================================

Version history (docs/checkpoint.md):

- **0** (no ``schema_version``; main up to 1f90b89): ``input`` held ``threshold_hu`` (the
  data config's value, stored and never read: inference always built the mask channel with the
  scan's own threshold), the data definition only in Lightning's
  ``datamodule_hyper_parameters`` (no class name), no versions. :func:`migrate` maps it to 1:
  ``threshold`` ``"scan"``, ``data`` from ``datamodule_hyper_parameters`` with the
  :data:`DEFAULT_DATAMODULE`, versions unknown but Lightning's.
- **1**: the table above.

:func:`load` (under :func:`read`) is the package's only loading of a checkpoint file, always
weights-only (a checkpoint never runs code); :func:`write` its only writer besides Lightning.
Every fault is one :class:`~cac_lightning.errors.InputError` line.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cac_lightning.errors import InputError
from cac_lightning.models.inputs import DEFAULT_WINDOW, input_channels
from cac_lightning.vessels import CLASS_NAMES

__all__ = [
    "DEFAULT_DATAMODULE",
    "SCHEMA_VERSION",
    "CheckpointRecord",
    "DataGeometry",
    "InputSpec",
    "LesionFloor",
    "NetworkSpec",
    "TrainingSummary",
    "Versions",
    "describe_datamodule",
    "load",
    "migrate",
    "normalise",
    "read",
    "set_lesion_floor",
    "write",
]

SCHEMA_VERSION = 1
"""The version :func:`write` and the module write; :func:`read` reads 0 up to this."""

DEFAULT_DATAMODULE = "cac_lightning.data.datamodule.CACDataModule"
"""The DataModule of a version-0 checkpoint's ``datamodule_hyper_parameters`` (the only one)."""

THRESHOLD_SOURCES = ("scan",)
"""``input.threshold`` names: ``"scan"`` = the scan's calcium threshold (the scoring setting,
else from its kVp), the data's ``per_scan_threshold: true``; else a number of HU."""

_TRAINING_KEYS = ("criterion", "optimizer_cfg", "scheduler_cfg", "loss_region")
_SCHEMA_KEYS = (
    "schema_version",
    "net",
    "input",
    "scoring",
    "class_names",
    "data_geometry",
    "data",
    "lesion_confidence",
    *_TRAINING_KEYS,
    "compile",
    "cuda_graphs",
    "channels_last",
    "versions",
)


def _plain(value: Any) -> Any:
    """Plain dicts/lists/scalars of ``value`` (tuples become lists, keys strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _number(value: Any, what: str, positive: bool = False) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (positive and number <= 0):
        kind = "a positive number" if positive else "a finite number"
        raise ValueError(f"{what} must be {kind}, got {value!r}")
    return number


def _span(value: Any, what: str) -> tuple[float, float] | None:
    """A [min, max] range; None for None (or a malformed range: no warning can use it)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    try:
        lo, hi = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    return (lo, hi) if lo <= hi else None


@dataclass(frozen=True)
class NetworkSpec:
    """The network: a registry name and its keyword arguments (``build_net(name, **kwargs)``)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> NetworkSpec:
        """From ``{"name": ..., **kwargs}``; ValueError without a name."""
        if not isinstance(value, Mapping) or not value.get("name"):
            raise ValueError(f"net must be a dict with a 'name', got {value!r}")
        kwargs = {str(k): _plain(v) for k, v in value.items() if k != "name"}
        return cls(str(value["name"]), kwargs)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **kwargs}``."""
        return {"name": self.name, **_plain(self.kwargs)}


@dataclass(frozen=True)
class DataGeometry:
    """The grid the network was trained on and the ranges of its training scans.

    Attributes:
        spacing_mm: in-plane pixel spacing of the training grid (the Predictor resamples to it;
            at native spacing, the median of the training scans). None: unknown.
        fov_mm: side of the square field of view cut around the body centre, or None.
        pixel_spacing_mm: [min, max] native in-plane spacing of the training scans.
        slice_thickness_mm: [min, max] slice thickness (else spacing) of the training scans.
        fov_range_mm: [min, max] native field of view of the training scans.
        kvp: the whole tube voltages seen in training (sorted).
    """

    spacing_mm: float | None = None
    fov_mm: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: tuple[float, float] | None = None
    fov_range_mm: tuple[float, float] | None = None
    kvp: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> DataGeometry | None:
        """From the ``data_geometry`` dict; None for None or an empty dict.

        Raises:
            ValueError: a spacing or field of view that is not a positive number.
        """
        if not value:
            return None
        if isinstance(value, DataGeometry):
            return value
        kvp = tuple(sorted({int(round(float(k))) for k in value.get("kvp") or ()}))
        return cls(
            spacing_mm=_number(value.get("spacing_mm"), "data_geometry.spacing_mm", True),
            fov_mm=_number(value.get("fov_mm"), "data_geometry.fov_mm", True),
            pixel_spacing_mm=_span(value.get("pixel_spacing_mm"), "pixel_spacing_mm"),
            slice_thickness_mm=_span(value.get("slice_thickness_mm"), "slice_thickness_mm"),
            fov_range_mm=_span(value.get("fov_range_mm"), "fov_range_mm"),
            kvp=kvp,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ranges as lists)."""
        return _plain(dataclasses.asdict(self))


@dataclass(frozen=True)
class InputSpec:
    """The input the network was trained on (:func:`~cac_lightning.models.inputs.make_input`).

    Attributes:
        window: HU window of the image channel.
        threshold: where the mask channel's threshold comes from: ``"scan"`` (the scan's own
            calcium threshold, as scored; the data's ``per_scan_threshold: true``) or one fixed
            HU value for every scan (``per_scan_threshold: false``).
        context: neighbour slices on each side (the data's ``context_slices``; 0: the paper's
            2-channel input).
    """

    window: tuple[float, float] = DEFAULT_WINDOW
    threshold: str | float = "scan"
    context: int = 0

    @property
    def channels(self) -> int:
        """The network's input channels, 2 + 2 * context."""
        return input_channels(self.context)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> InputSpec:
        """From the ``input`` dict (None: the defaults); version 0's ``threshold_hu`` is dropped.

        Raises:
            ValueError: unknown keys, a window that is not two increasing numbers, or a
                threshold that is neither a source name nor a number.
        """
        value = dict(value or {})
        value.pop("threshold_hu", None)  # version 0's: stored, never read (see migrate)
        unknown = sorted(set(value) - {"window", "threshold", "context"})
        if unknown:
            raise ValueError(f"input has unknown keys {unknown}; valid: window, threshold, context")
        window = value.get("window", DEFAULT_WINDOW)
        try:
            lo, hi = (float(w) for w in window)
        except (TypeError, ValueError):
            raise ValueError(f"input.window must be [low, high] HU, got {window!r}") from None
        if not lo < hi:
            raise ValueError(f"input.window must be [low, high] HU, got {window!r}")
        threshold = value.get("threshold", "scan")
        if not (isinstance(threshold, str) and threshold in THRESHOLD_SOURCES):
            threshold = _number(threshold, f"input.threshold (or one of {THRESHOLD_SOURCES})")
        context = value.get("context", 0)
        if isinstance(context, bool) or not isinstance(context, int) or context < 0:
            raise ValueError(f"input.context must be a whole number >= 0, got {context!r}")
        return cls((lo, hi), threshold, context)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"window": list(self.window), "threshold": self.threshold, "context": self.context}

    def mask_threshold(self, scan_threshold: float) -> float:
        """The mask channel's threshold for a scan whose calcium threshold is ``scan_threshold``."""
        return float(scan_threshold) if self.threshold == "scan" else float(self.threshold)


@dataclass(frozen=True)
class LesionFloor:
    """The lesion-confidence floor (:mod:`cac_lightning.inference.confidence`).

    Attributes:
        floor: lesions whose mean foreground probability is below it are dropped; in [0, 1).
        calibrated_on: the split it was chosen on.
        n_scans: how many scans.
        agatston_mae: the split's Agatston MAE for every floor tried (``"0.8": ...``).
    """

    floor: float = 0.0
    calibrated_on: str | None = None
    n_scans: int | None = None
    agatston_mae: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> LesionFloor | None:
        """From the ``lesion_confidence`` dict; None for None.

        Raises:
            ValueError: a floor outside [0, 1).
        """
        if value is None:
            return None
        if isinstance(value, LesionFloor):
            return value
        raw = value.get("floor", 0.0)
        try:
            floor = float(raw)
        except (TypeError, ValueError):
            floor = math.nan
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"the lesion-confidence floor must be in [0, 1), got {raw!r}")
        n = value.get("n_scans")
        return cls(
            floor,
            None if value.get("calibrated_on") is None else str(value["calibrated_on"]),
            None if n is None else int(n),
            {str(k): float(v) for k, v in (value.get("agatston_mae") or {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return _plain(dataclasses.asdict(self))


@dataclass(frozen=True)
class TrainingSummary:
    """How the network was trained (the module's own arguments; Lightning keeps the rest).

    Attributes:
        criterion: ``{"name": ..., **kwargs}`` of the loss.
        optimizer: ``{"name": "<dotted class>", **kwargs}``.
        scheduler: likewise.
        loss_region: ``"all"`` or ``"candidates"``.
        compile: ``torch.compile`` was on.
        cuda_graphs: the training step ran in CUDA graphs.
        channels_last: channels-last memory format.
    """

    criterion: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    loss_region: str = "all"
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False

    @classmethod
    def from_hyper_parameters(cls, hp: Mapping[str, Any]) -> TrainingSummary:
        """From the hyper-parameters' training keys."""
        return cls(
            _plain(dict(hp.get("criterion") or {})),
            _plain(dict(hp.get("optimizer_cfg") or {})),
            _plain(dict(hp.get("scheduler_cfg") or {})),
            str(hp.get("loss_region", "all")),
            bool(hp.get("compile", False)),
            bool(hp.get("channels_last", False)),
            bool(hp.get("cuda_graphs", False)),
        )

    def to_hyper_parameters(self) -> dict[str, Any]:
        """The hyper-parameters' training keys."""
        return {
            "criterion": _plain(self.criterion),
            "optimizer_cfg": _plain(self.optimizer),
            "scheduler_cfg": _plain(self.scheduler),
            "loss_region": self.loss_region,
            "compile": self.compile,
            "channels_last": self.channels_last,
            "cuda_graphs": self.cuda_graphs,
        }


@dataclass(frozen=True)
class Versions:
    """Who wrote the checkpoint.

    Attributes:
        schema: the schema version of the record (after migration: :data:`SCHEMA_VERSION`).
        cac_lightning / torch / lightning: package versions of the writer (None: unknown).
    """

    schema: int = SCHEMA_VERSION
    cac_lightning: str | None = None
    torch: str | None = None
    lightning: str | None = None

    @classmethod
    def current(cls) -> Versions:
        """The versions of this process."""
        from importlib.metadata import PackageNotFoundError, version

        import torch

        def get(name: str) -> str | None:
            try:
                return version(name)
            except PackageNotFoundError:
                return None

        return cls(SCHEMA_VERSION, get("cac-lightning"), str(torch.__version__), get("lightning"))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the package versions (the schema version is stored on its own)."""
        return {
            "cac_lightning": self.cac_lightning,
            "torch": self.torch,
            "lightning": self.lightning,
        }


@dataclass(frozen=True)
class CheckpointRecord:
    """Everything a cac-train checkpoint holds, typed.

    Attributes:
        network: the network (None only for partial records built from bare hyper-parameters).
        input: the input definition.
        scoring: :class:`~cac_lightning.scoring.ScoringConfig` fields.
        data_geometry: the training grid and ranges (None: not recorded).
        data: the data definition trained on, ``{"_target_": ..., **kwargs}`` (None: unknown).
        lesion_confidence: the lesion-confidence floor (None: none).
        training: the training configuration summary.
        versions: who wrote it.
        class_names: the label map.
        source_schema: the schema version of the file (0 for a migrated version-0 file).
        state_dict: the module's weights (network under ``net.``).
        lightning: Lightning's training state (every other key of the file).
        path: the file read, if any.
    """

    network: NetworkSpec | None = None
    input: InputSpec = field(default_factory=InputSpec)
    scoring: dict[str, Any] = field(default_factory=dict)
    data_geometry: DataGeometry | None = None
    data: dict[str, Any] | None = None
    lesion_confidence: LesionFloor | None = None
    training: TrainingSummary = field(default_factory=TrainingSummary)
    versions: Versions = field(default_factory=Versions)
    class_names: tuple[str, ...] = CLASS_NAMES
    source_schema: int = SCHEMA_VERSION
    state_dict: dict[str, Any] = field(default_factory=dict, repr=False)
    lightning: dict[str, Any] = field(default_factory=dict, repr=False)
    path: Path | None = None

    @classmethod
    def from_hyper_parameters(
        cls, hp: Mapping[str, Any] | None, state_dict: Mapping[str, Any] | None = None
    ) -> CheckpointRecord:
        """The record of current-schema hyper-parameters (e.g. a live module's ``hparams``;
        missing fields take their defaults). Use :func:`migrate` first for an older file's.

        Raises:
            ValueError: a field that does not fit the schema (the message names it).
        """
        hp = dict(hp or {})
        versions = dict(hp.get("versions") or {})
        net = hp.get("net")
        return cls(
            network=NetworkSpec.from_dict(net) if net is not None else None,
            input=InputSpec.from_dict(hp.get("input")),
            scoring=_plain(dict(hp.get("scoring") or {})),
            data_geometry=DataGeometry.from_dict(hp.get("data_geometry")),
            data=_plain(dict(hp["data"])) if hp.get("data") else None,
            lesion_confidence=LesionFloor.from_dict(hp.get("lesion_confidence")),
            training=TrainingSummary.from_hyper_parameters(hp),
            versions=Versions(
                SCHEMA_VERSION,
                versions.get("cac_lightning"),
                versions.get("torch"),
                versions.get("lightning"),
            ),
            class_names=tuple(str(n) for n in hp.get("class_names", CLASS_NAMES)),
            state_dict=dict(state_dict or {}),
        )

    @property
    def lesion_floor(self) -> float:
        """The recorded floor (0: none)."""
        return self.lesion_confidence.floor if self.lesion_confidence else 0.0

    def hyper_parameters(self) -> dict[str, Any]:
        """The ``hyper_parameters`` dict of this record (the schema, plain values)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "net": self.network.to_dict() if self.network else None,
            "input": self.input.to_dict(),
            "scoring": _plain(self.scoring),
            "class_names": list(self.class_names),
            "data_geometry": self.data_geometry.to_dict() if self.data_geometry else None,
            "data": _plain(self.data) if self.data else None,
            "lesion_confidence": (
                self.lesion_confidence.to_dict() if self.lesion_confidence else None
            ),
            **self.training.to_hyper_parameters(),
            "versions": self.versions.to_dict(),
        }

    def network_state(self) -> dict[str, Any]:
        """The network's own weights (``net.`` prefix and ``torch.compile``'s wrapper removed)."""
        state = {k[4:]: v for k, v in self.state_dict.items() if k.startswith("net.")}
        return {k.replace("_orig_mod.", ""): v for k, v in state.items()}

    def replace(self, **changes: Any) -> CheckpointRecord:
        """A copy with ``changes`` (dataclass fields)."""
        return dataclasses.replace(self, **changes)


def describe_datamodule(datamodule: Any) -> dict[str, Any] | None:
    """The data definition of a DataModule, ``{"_target_": <dotted class>, **hparams}``, from
    its (plain) hyper-parameters; None when it keeps none."""
    hp = getattr(datamodule, "hparams", None)
    if datamodule is None or not hp:
        return None
    cls = type(datamodule)
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **_plain(dict(hp))}


def migrate(hp: Mapping[str, Any], ckpt: Mapping[str, Any] | None = None) -> tuple[dict, int]:
    """The hyper-parameters of any readable version as the current schema's.

    Args:
        hp: the file's ``hyper_parameters``.
        ckpt: the whole file (version 0 keeps its data definition in Lightning's
            ``datamodule_hyper_parameters`` and its Lightning version at the top).

    Returns:
        ``(hyper_parameters, version_found)``.

    Raises:
        ValueError: an unknown or newer schema version.
    """
    hp = dict(hp)
    ckpt = ckpt or {}
    found = hp.get("schema_version", 0)
    if isinstance(found, bool) or not isinstance(found, int) or found < 0:
        raise ValueError(f"unknown checkpoint schema version {found!r}")
    if found > SCHEMA_VERSION:
        raise ValueError(
            f"written with checkpoint schema version {found}; this cac-lightning reads versions "
            f"0 to {SCHEMA_VERSION}: upgrade cac-lightning"
        )
    if found == 0:
        inp = dict(hp.get("input") or {})
        inp.pop("threshold_hu", None)  # stored, never read: the mask used the scan's threshold
        inp.setdefault("threshold", "scan")
        hp["input"] = inp
        dm = ckpt.get("datamodule_hyper_parameters")
        if hp.get("data") is None and isinstance(dm, Mapping) and dm:
            hp["data"] = {"_target_": DEFAULT_DATAMODULE, **_plain(dict(dm))}
        hp.setdefault("versions", {"lightning": ckpt.get("pytorch-lightning_version")})
        hp["schema_version"] = 1
    return hp, int(found)


def normalise(hp: Mapping[str, Any]) -> dict[str, Any]:
    """Current-schema hyper-parameters checked and written out through the record, stamped with
    :data:`SCHEMA_VERSION` and this process's :class:`Versions` (what the module saves).

    Keys outside the schema are kept as they are (after the schema's).

    Raises:
        ValueError: a field that does not fit the schema.
    """
    hp = dict(hp)
    record = CheckpointRecord.from_hyper_parameters(hp).replace(versions=Versions.current())
    out = record.hyper_parameters()
    out.update({k: v for k, v in hp.items() if k not in _SCHEMA_KEYS})
    return out


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return (lines[0] if lines else type(err).__name__)[:200]


def load(path: str | Path, label: str = "") -> Any:
    """The object stored in ``path``, loaded weights-only.

    The one place the package loads a checkpoint file. :func:`read` is the schema's reader;
    this is for files that may not be cac-train checkpoints (a plain state dict to fine-tune
    from, Lightning's training state to resume).

    Args:
        path: the file.
        label: how the caller names it in messages (e.g. ``"ckpt_path="``).

    Raises:
        InputError: a missing file, or one weights-only loading cannot read (truncated, not a
            torch file, or holding objects that would run code).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{label}{path}: no such checkpoint file")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f" such as {found.group(1)}" if found else f" ({_first_line(err)})"
        raise InputError(
            f"{label}{path}: not a loadable checkpoint: it holds objects{what} that "
            "weights-only loading refuses (a checkpoint never runs code)"
        ) from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input
        raise InputError(f"{label}{path}: not a loadable checkpoint ({_first_line(err)})") from None


def read(path: str | Path, label: str = "") -> CheckpointRecord:
    """The :class:`CheckpointRecord` of a cac-train checkpoint (any readable schema version).

    Args:
        path: the ``.ckpt`` file.
        label: how the caller names it in messages (e.g. ``"init_from="``).

    Raises:
        InputError: a missing or unreadable file (:func:`load`), a file that is not a cac-train
            checkpoint (no ``state_dict`` or no network hyper-parameters), an unknown or newer
            schema version, or a field that does not fit the schema.
    """
    ckpt = load(path, label)
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, Mapping) or not isinstance(hp.get("net"), Mapping):
        raise InputError(f"{label}{path}: not a cac-train checkpoint (no network hyper-parameters)")
    if not isinstance(ckpt.get("state_dict"), Mapping):
        raise InputError(f"{label}{path}: not a cac-train checkpoint (no state_dict)")
    try:
        current, found = migrate(hp, ckpt)
        record = CheckpointRecord.from_hyper_parameters(current, ckpt["state_dict"])
    except ValueError as err:
        raise InputError(f"{label}{path}: {err}") from None
    rest = {k: v for k, v in ckpt.items() if k not in ("state_dict", "hyper_parameters")}
    return record.replace(source_schema=found, lightning=rest, path=Path(path))


def write(record: CheckpointRecord, path: str | Path) -> None:
    """Write ``record`` to ``path`` atomically in the current schema (with its Lightning
    training state, so a rewritten checkpoint still resumes)."""
    import torch

    from cac_lightning.io.atomic import atomic_path

    ckpt = {
        **record.lightning,
        "state_dict": dict(record.state_dict),
        "hyper_parameters": record.hyper_parameters(),
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def set_lesion_floor(
    src: str | Path, floor: Mapping[str, Any] | LesionFloor, dest: str | Path | None = None
) -> None:
    """Rewrite checkpoint ``src`` with lesion-confidence ``floor`` to ``dest`` (default ``src``).

    Raises:
        InputError: as :func:`read`, or a floor outside [0, 1).
    """
    record = read(src)
    try:
        lesion = LesionFloor.from_dict(floor)
    except ValueError as err:
        raise InputError(f"{src}: {err}") from None
    write(record.replace(lesion_confidence=lesion), src if dest is None else dest)
