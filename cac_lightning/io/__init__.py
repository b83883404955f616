"""Reading and writing CT volumes: DICOM series, NIfTI/MHA/NRRD volumes and label maps.

Names are imported on first use, so ``cac_lightning.io.atomic`` stays light (no pydicom or
SimpleITK import). ``Geometry`` and ``Volume`` live in :mod:`cac_lightning.volume`, below ``io``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Geometry",
    "SeriesInfo",
    "Volume",
    "list_series",
    "read_label_map",
    "read_volume",
    "write_dicom_series",
    "write_image",
    "write_label_map",
]

_WHERE = {
    "Geometry": "cac_lightning.volume",
    "Volume": "cac_lightning.volume",
    "SeriesInfo": "dicom",
    "list_series": "dicom",
    "read_label_map": "images",
    "read_volume": "images",
    "write_image": "images",
    "write_label_map": "images",
    "write_dicom_series": "dicom_write",
}

if TYPE_CHECKING:
    from cac_lightning.io.dicom import SeriesInfo, list_series
    from cac_lightning.io.dicom_write import write_dicom_series
    from cac_lightning.io.images import (
        read_label_map,
        read_volume,
        write_image,
        write_label_map,
    )
    from cac_lightning.volume import Geometry, Volume


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where = _WHERE[name]
    module = where if where.startswith("cac_lightning.") else f"{__name__}.{where}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
