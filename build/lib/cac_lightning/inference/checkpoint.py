"""Load a cac-train checkpoint for inference, with no Hydra config and no code execution.

A checkpoint holds everything inference needs in its hyper-parameters: the
network name and arguments (``net``), the input definition (``input``: HU
window and threshold), the class map (``class_names``) and the scoring
settings (``scoring``). It is read with ``torch.load(weights_only=True)``, so
loading a checkpoint never runs code from it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cac_lightning.errors import InputError
from cac_lightning.vessels import CLASS_NAMES

__all__ = ["LoadedModel", "load_model", "resolve_device"]


@dataclass
class LoadedModel:
    """A network ready for :func:`cac_lightning.inference.predict_labels`."""

    net: torch.nn.Module
    window: tuple[float, float]
    threshold_hu: float
    scoring: dict = field(default_factory=dict)
    class_names: tuple[str, ...] = CLASS_NAMES
    device: torch.device = torch.device("cpu")

    @property
    def autocast(self) -> bool:
        return self.device.type == "cuda"

    def predict(self, hu, batch_size: int = 16):
        """(Z, H, W) uint8 calcium labels of a HU volume (see :func:`predict_labels`)."""
        from cac_lightning.inference.predict import predict_labels

        return predict_labels(
            self.net,
            hu,
            window=self.window,
            threshold_hu=self.threshold_hu,
            batch_size=batch_size,
            device=self.device,
            autocast=self.autocast,
        )


def resolve_device(device: str | None) -> torch.device:
    """``auto`` (or None) -> CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine")
    return torch.device(device)


def load_model(path: str | Path, device: str | None = "auto") -> LoadedModel:
    """Rebuild the network of a checkpoint written by ``cac-train``.

    Args:
        path: the ``.ckpt`` file.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    from cac_lightning.models import build_net

    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f" such as {found.group(1)}" if found else ""
        raise InputError(
            f"{path}: not a loadable checkpoint: it holds objects{what} that "
            "weights-only loading refuses (a checkpoint never runs code)"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: not a loadable checkpoint ({first[:200]})") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "net" not in hp or "state_dict" not in ckpt:
        raise InputError(f"{path}: not a cac-train checkpoint (no network hyper-parameters)")
    names = tuple(hp.get("class_names", CLASS_NAMES))
    if names != CLASS_NAMES:
        raise InputError(f"{path}: class map {names} differs from this version's {CLASS_NAMES}")
    net_cfg = dict(hp["net"])
    net = build_net(net_cfg.pop("name"), **net_cfg)
    state = {k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    state = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(
            f"{path}: weights do not fit the network ({str(err).splitlines()[0]})"
        ) from None
    dev = resolve_device(device)
    net.to(dev).eval()
    inp = dict(hp.get("input") or {})
    return LoadedModel(
        net=net,
        window=tuple(float(w) for w in inp.get("window", (-1024.0, 2048.0))),
        threshold_hu=float(inp.get("threshold_hu", 130.0)),
        scoring=dict(hp.get("scoring") or {}),
        class_names=names,
        device=dev,
    )
