"""Names that moved down a layer stay importable from where code written earlier looks."""

from __future__ import annotations

import pytest


def test_volume_types_from_io():
    import cac_lightning.io as io
    import cac_lightning.io.volume as old
    import cac_lightning.volume as new

    assert old.Volume is new.Volume and old.Geometry is new.Geometry and old.AIR_HU == -1024
    assert io.Volume is new.Volume and io.Geometry is new.Geometry


def test_manifest_from_data():
    import cac_lightning.data.manifest as old
    import cac_lightning.io.manifest as new

    assert old.read_manifest is new.read_manifest and old.ManifestRow is new.ManifestRow
    from cac_lightning.scoring.lesions import SCORE_METRICS

    with pytest.deprecated_call():
        assert old.SCORE_KEYS == SCORE_METRICS == ("agatston", "volume_mm3", "mass_mg")


def test_score_keys_is_vessels_and_total():
    from cac_lightning import vessels

    with pytest.deprecated_call():
        assert (
            vessels.SCORE_KEYS == vessels.VESSELS_AND_TOTAL == ("LM", "LAD", "CX", "RCA", "total")
        )
    with pytest.raises(AttributeError):
        vessels.NO_SUCH_NAME  # noqa: B018


def test_air_and_class_count_have_one_value():
    from cac_lightning.data.resample import AIR_HU as resample_air
    from cac_lightning.models.inputs import AIR_HU as input_air
    from cac_lightning.models.registry import build_net
    from cac_lightning.vessels import CLASS_NAMES, NUM_CLASSES
    from cac_lightning.volume import AIR_HU

    assert resample_air is AIR_HU and input_air is AIR_HU
    assert NUM_CLASSES == len(CLASS_NAMES)
    net = build_net("unet", channels=[4, 8])
    assert net.num_classes == NUM_CLASSES
