"""HeartLocator: shipped weights, native-grid round trip, synthetic accuracy, empty input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.heart.locator import (
    DEFAULT_WEIGHTS,
    HeartLocator,
    _area_matrix,
    from_coarse,
    to_coarse,
)
from cac_lightning.heart.synth import make_case
from cac_lightning.heart.train import VAL_OFFSET, dice
from cac_lightning.sources.synthetic.render import interp_matrix

WEIGHTS = __import__("pathlib").Path(__file__).parents[2] / "cac_lightning/heart/weights"


@pytest.fixture(scope="module")
def loc() -> HeartLocator:
    return HeartLocator.load()


def test_shipped_weights_small_and_verified(loc: HeartLocator) -> None:
    path = WEIGHTS / DEFAULT_WEIGHTS
    assert path.stat().st_size < 2 * 1024 * 1024
    for key in ("spacing_mm", "window_hu", "channels", "seed", "sha256", "train_command"):
        assert key in loc.meta


def test_tampered_weights_refused(tmp_path) -> None:
    src = WEIGHTS / DEFAULT_WEIGHTS
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k in arrays if k != "meta_json")
    arrays[key] = arrays[key] + 1.0
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(InputError, match="sha256"):
        HeartLocator.load(bad)
    meta = json.loads(str(arrays["meta_json"]))
    assert meta["format_version"] == 1


def test_resampling_matrices() -> None:
    a = _area_matrix(7, 23)
    assert np.allclose(a.sum(1), 1.0)
    assert np.allclose(interp_matrix(9, 9), np.eye(9))
    # Area averaging keeps the mean of a signal (same extent on both grids).
    x = np.random.default_rng(0).random(23)
    assert np.isclose((a @ x).mean(), x.mean(), rtol=0.02)


def test_round_trip_on_non_cubic_grid(loc: HeartLocator) -> None:
    shape, sp = (37, 53, 71), (2.5, 0.7, 0.9)
    hu = np.full(shape, 40.0, dtype=np.float32)
    coarse = to_coarse(hu, sp, 6.0)
    assert coarse.shape == (15, 6, 11)  # round(37*2.5/6), round(53*.7/6), round(71*.9/6)
    back = from_coarse(np.full(coarse.shape, 0.25, np.float32), shape)
    assert back.shape == shape and np.allclose(back, 0.25)
    prob = loc.probability(hu, sp)
    assert prob.shape == shape and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0


def test_all_air_gives_no_heart(loc: HeartLocator) -> None:
    prob = loc.probability(np.full((40, 96, 96), -1000, np.int16), (3.0, 2.0, 2.0))
    assert prob.max() < 0.05


def test_bad_spacing_is_an_input_error(loc: HeartLocator) -> None:
    with pytest.raises(InputError):
        loc.probability(np.zeros((4, 8, 8)), (0.0, 1.0, 1.0))


@pytest.mark.parametrize("index", [VAL_OFFSET + 511, VAL_OFFSET + 513])
def test_finds_synthetic_heart_on_unseen_gated_case(loc: HeartLocator, index: int) -> None:
    # Seed 1: the shipped weights saw seed 0 only. Gated field of view (the COCA setting); the
    # whole-chest setting is weaker (docs/heart.md) and not held to this bar.
    case = make_case(seed=1, index=index)
    assert not case.whole_chest
    pred = loc.probability(case.hu, case.spacing_zyx) >= 0.5
    assert dice(pred, case.mask) >= 0.75


def test_importing_heart_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, cac_lightning.heart; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
