"""nnU-Net v2's folder layout and the facts of our datasets in it: the one home of both.

An nnU-Net v2 raw dataset (``nnUNet_raw/DatasetNNN_NAME/``) holds ``dataset.json``,
``imagesTr/<case>_<channel>.nii.gz`` (one file per input channel, 4 digits),
``labelsTr/<case>.nii.gz`` and ``imagesTs/``; nnU-Net reads the cross-validation folds from
``nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json`` and ``nnUNetv2_predict`` writes one
``<case>.nii.gz`` label map per case (nnU-Net v2 documentation: dataset_format.md,
how_to_use_nnunet.md, manual_data_splits.md).

Our two input channels are the network's (:func:`cac_lightning.models.inputs.make_input`): the
CT in HU, and the HU >= threshold mask of the scan's own threshold. nnU-Net picks each channel's
intensity normalisation from its ``channel_names`` entry, so the names below are choices:

- ``zscore`` for the CT, not ``CT``: nnU-Net's ``CT`` scheme clips every image to the 0.5-99.5
  percentiles of the *foreground* intensities and z-scores with their mean and standard
  deviation. Our foreground is calcium, whose voxels are all at or above the calcium threshold
  (130 HU at 120 kVp), so the ``CT`` scheme would clip fat, muscle, blood and lung to one value
  and leave the network only the bright voxels: no anatomy to tell the LAD from the RCA by.
  ``zscore`` normalises each scan by its own mean and standard deviation and keeps every contrast
  (the test asserts the foreground percentile that makes ``CT`` unfit).
- ``noNorm`` for the mask: it is already 0/1, and a per-scan z-score would give "above the
  threshold" a different value in every scan, depending on how much bone it shows.
"""

from __future__ import annotations

import re
from pathlib import Path

from cac_lightning.errors import InputError
from cac_lightning.vessels import LABELS

__all__ = [
    "CHANNEL_NAMES",
    "CT_NORMALISATIONS",
    "FILE_ENDING",
    "MASK_NORMALISATION",
    "PREPROCESSED",
    "RAW",
    "SPLITS_FILE",
    "TEST_SPLITS",
    "channel_names",
    "check_case_id",
    "check_dataset_id",
    "check_dataset_name",
    "dataset_folder",
    "dataset_labels",
    "existing_datasets",
    "image_file",
]

RAW = "nnUNet_raw"
PREPROCESSED = "nnUNet_preprocessed"
SPLITS_FILE = "splits_final.json"
FILE_ENDING = ".nii.gz"
TEST_SPLITS = ("test", "test_zero")
"""Our splits written to ``imagesTs``; ``train`` and ``val`` go to ``imagesTr`` as fold 0."""

CT_NORMALISATIONS = ("zscore", "CT", "noNorm", "rescale_to_0_1")
"""nnU-Net schemes offered for the CT channel; the first is the default (module docstring)."""
MASK_NORMALISATION = "noNorm"
CHANNEL_NAMES = ("CT", "threshold mask")
"""What the two channels hold, in channel order (``_0000``, ``_0001``)."""

_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_dataset_id(dataset_id: int) -> int:
    """The nnU-Net dataset id, 1..999 (three digits in ``DatasetNNN_NAME``).

    Raises:
        InputError: not a whole number in 1..999.
    """
    try:
        value = int(dataset_id)
    except (TypeError, ValueError):
        raise InputError(f"dataset id must be a whole number 1..999, got {dataset_id!r}") from None
    if value != dataset_id or not 1 <= value <= 999:
        raise InputError(f"dataset id must be a whole number 1..999, got {dataset_id!r}")
    return value


def check_dataset_name(name: str) -> str:
    """A dataset name of letters, digits, ``_`` and ``-``.

    Raises:
        InputError: any other name.
    """
    if not _NAME.match(str(name)):
        raise InputError(f"dataset name must be letters, digits, _ or -, got {name!r}")
    return str(name)


def check_case_id(scan_id: str) -> str:
    """A manifest scan id usable as an nnU-Net case id (a file-name stem).

    Raises:
        InputError: characters other than letters, digits, ``.``, ``_`` and ``-``.
    """
    if not _CASE_ID.match(scan_id):
        raise InputError(
            f"scan id {scan_id!r} cannot name an nnU-Net case: use letters, digits, ., _ and -"
        )
    return scan_id


def dataset_folder(dataset_id: int, name: str) -> str:
    """``DatasetNNN_NAME``."""
    return f"Dataset{check_dataset_id(dataset_id):03d}_{check_dataset_name(name)}"


def image_file(case: str, channel: int) -> str:
    """``<case>_<channel, 4 digits>.nii.gz``."""
    return f"{case}_{channel:04d}{FILE_ENDING}"


def channel_names(ct_normalisation: str = CT_NORMALISATIONS[0]) -> dict[str, str]:
    """``dataset.json``'s ``channel_names``: channel index -> nnU-Net normalisation scheme.

    Raises:
        InputError: a CT scheme not in :data:`CT_NORMALISATIONS`.
    """
    if ct_normalisation not in CT_NORMALISATIONS:
        raise InputError(
            f"CT normalisation must be one of {', '.join(CT_NORMALISATIONS)}, "
            f"got {ct_normalisation!r}"
        )
    return {"0": ct_normalisation, "1": MASK_NORMALISATION}


def dataset_labels() -> dict[str, int]:
    """``dataset.json``'s ``labels``: our label values (background 0, LM 1, LAD 2, CX 3, RCA 4)."""
    return dict(LABELS)


def existing_datasets(root: Path, dataset_id: int) -> list[Path]:
    """Folders ``DatasetNNN_*`` of ``dataset_id`` under ``root/nnUNet_raw`` and
    ``root/nnUNet_preprocessed`` (nnU-Net refuses an id that names two datasets)."""
    prefix = f"Dataset{check_dataset_id(dataset_id):03d}_"
    found = []
    for sub in (RAW, PREPROCESSED):
        folder = Path(root) / sub
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.name.startswith(prefix))
    return found
