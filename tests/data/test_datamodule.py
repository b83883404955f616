"""CACDataModule end to end on a tiny manifest of SimpleITK volumes."""

from __future__ import annotations

import json
import math
from collections import Counter

import lightning.pytorch as pl
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from cac_lightning.data.datamodule import CACDataModule
from cac_lightning.data.transforms import make_input
from cac_lightning.errors import InputError
from cac_lightning.io.manifest import ManifestRow, write_manifest

SIZE, NZ = 32, 6
# scan id -> (patient, split, slices with calcium)
COHORT = {
    "a": ("P1", "train", [1, 2]),
    "b": ("P2", "train", [3]),
    "c": ("P3", "val", [2]),
    "d": ("P4", "test", [0, 5]),
    "e": ("P5", "test_zero", []),
}


def _write(arr: np.ndarray, path) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.6, 0.6, 3.0))
    sitk.WriteImage(img, str(path))


def write_cohort(root, cohort=COHORT):
    """Tiny scans (NZ x SIZE x SIZE): tissue, unlabelled bone, labelled calcium; manifest."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (sid, (pid, split, zs)) in enumerate(cohort.items()):
        rng = np.random.default_rng(k)
        hu = rng.integers(-60, 80, size=(NZ, SIZE, SIZE)).astype(np.int16)
        hu[:, 2:6, 20:28] = 800
        labels = np.zeros(hu.shape, dtype=np.uint8)
        for z in zs:
            hu[z, 12:15, 4:8] = 350
            labels[z, 12:15, 4:8] = 1 + (z + k) % 4
        _write(hu, root / f"{sid}.nii.gz")
        _write(labels, root / f"{sid}_label.nii.gz")
        rows.append(
            ManifestRow(
                sid,
                pid,
                root / f"{sid}.nii.gz",
                root / f"{sid}_label.nii.gz",
                split,
                {"total": {"agatston": 10.0 * len(zs)}},
            )
        )
    write_manifest(root, rows)
    return rows


@pytest.fixture
def data_dir(tmp_path):
    write_cohort(tmp_path / "data")
    return tmp_path / "data"


def test_end_to_end_batches(data_dir):
    dm = CACDataModule(str(data_dir), batch_size=4, augment={"p": 1.0}, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    # default epoch (the paper's): one draw per training slice, 2 x 6 = 12 -> 3 batches of 4
    assert [len(b["scan"]) for b in batches] == [4, 4, 4]
    b = batches[0]
    assert b["image"].shape == (4, 2, SIZE, SIZE) and b["image"].dtype == torch.float32
    assert b["target"].shape == (4, SIZE, SIZE) and b["target"].dtype == torch.uint8
    assert dm.on_after_batch_transfer(b, 0)["target"].dtype == torch.int64  # for the loss
    assert set(b) == {"image", "target", "scan", "slice"}
    positive = sum(int((bb["target"] > 0).flatten(1).any(1).sum()) for bb in batches)
    assert positive == 6  # exactly half of the epoch (3 positive slices oversampled)
    assert [s.scan_id for s in dm.scans("train")] == ["a", "b"]


def test_val_and_test_are_not_augmented(data_dir):
    dm = CACDataModule(str(data_dir), batch_size=2, augment={"p": 1.0, "noise_sd": 50.0}, seed=0)
    dm.setup()
    scan = dm.scans("val")[0]
    val = dm.val_dataloader()
    items = [(int(s), int(z)) for b in val for s, z in zip(b["scan"], b["slice"], strict=True)]
    # a fixed balanced draw, as many as the split has slices (same footing as training)
    assert len(items) == NZ and Counter(bool(scan.positive[z]) for _, z in items)[True] == 3
    for b in val:
        for i, z in enumerate(b["slice"].tolist()):
            ref = make_input(np.asarray(scan.hu[z])[None], dm.window, dm.threshold_hu)[0]
            assert torch.equal(b["image"][i], ref)
            assert torch.equal(b["target"][i], torch.from_numpy(scan.labels[z].astype(np.uint8)))
    before = list(val.sampler)
    val.sampler.set_epoch(3)  # Lightning does this each epoch: the val draw stays fixed
    assert list(val.sampler) == before
    test = list(dm.test_dataloader())
    assert [z for b in test for z in b["slice"].tolist()] == list(range(NZ))
    assert torch.equal(test[0]["image"][0], make_input(dm.scans("test")[0].hu[0])[0])


def test_crop_for_training_only(data_dir):
    dm = CACDataModule(str(data_dir), batch_size=2, crop=16, augment={"p": 0.5})
    dm.setup()
    tb = next(iter(dm.train_dataloader()))
    assert tb["image"].shape == (2, 2, 16, 16) and tb["target"].shape == (2, 16, 16)
    assert next(iter(dm.val_dataloader()))["image"].shape == (2, 2, SIZE, SIZE)
    with pytest.raises(InputError, match="crop 64 is larger"):
        CACDataModule(str(data_dir), crop=64).setup()


def test_scans_for_scoring(data_dir):
    dm = CACDataModule(str(data_dir))
    zero = dm.scans("test_zero")  # sets up lazily
    assert [s.scan_id for s in zero] == ["e"] and zero[0].ref == {"total": {"agatston": 0.0}}
    d = dm.scans("test")[0]
    assert d.hu.dtype == np.int16 and d.labels.dtype == np.uint8 and d.hu.shape == (NZ, SIZE, SIZE)
    assert d.geometry.pixel_spacing == pytest.approx((0.6, 0.6)) and d.kvp is None
    with pytest.raises(InputError, match="unknown split"):
        dm.scans("training")


def test_validate_on_train_for_few_scan_fine_tuning(data_dir):
    dm = CACDataModule(str(data_dir), validate_on="train")
    assert [s.scan_id for s in dm.scans("val")] == ["a", "b"]  # the training scans
    assert [s.scan_id for s in dm.scans("test")] == ["d"]  # the held-out stays held out
    assert len(dm.val_dataloader().dataset) == 2 * NZ
    with pytest.raises(InputError, match="validate_on must be"):
        CACDataModule(str(data_dir), validate_on="test")


def test_patient_in_two_splits_is_refused(tmp_path):
    cohort = dict(COHORT, c=("P1", "val", [2]))
    write_cohort(tmp_path / "data", cohort)
    with pytest.raises(InputError, match=r"patient P1 appears in splits \['train', 'val'\]"):
        CACDataModule(str(tmp_path / "data")).setup()


def test_missing_manifest_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no manifest"):
        CACDataModule(str(tmp_path / "empty")).prepare_data()


def test_synthetic_cohort_generated_once(tmp_path):
    calls = []

    def make_cohort(data_dir, *, generate, n_scans, seed=0, size=512, **options):
        calls.append((generate, n_scans, seed, size))
        if generate:
            write_cohort(data_dir)

    kwargs = {
        "synthetic": {"n_scans": 5, "seed": 3, "size": SIZE},
        "make_cohort": make_cohort,
        "batch_size": 2,
    }
    CACDataModule(str(tmp_path / "syn"), **kwargs).prepare_data()
    dm = CACDataModule(str(tmp_path / "syn"), **kwargs)
    dm.check_source()
    dm.prepare_data()
    # generated once, then only checked (the version of the cohort on disk)
    assert calls == [(True, 5, 3, SIZE), (False, 5, 3, SIZE), (False, 5, 3, SIZE)]
    assert "make_cohort" not in dm.hparams  # a callable, never a hyper-parameter
    dm.setup()
    assert len(dm.scans("train")) == 2 and (tmp_path / "syn" / ".cache").is_dir()


def test_synthetic_without_a_cohort_maker_needs_its_manifest(tmp_path):
    dm = CACDataModule(str(tmp_path / "syn"), synthetic={"n_scans": 5, "seed": 0, "size": 64})
    for step in (dm.check_source, dm.prepare_data):
        with pytest.raises(InputError, match="no manifest"):
            step()
    assert not (tmp_path / "syn").exists()


def test_real_synthetic_generator(tmp_path):
    from cac_lightning.sources import synthetic as synth

    make = synth.prepare_cohort
    dm = CACDataModule(
        str(tmp_path / "syn"),
        synthetic={"n_scans": 5, "seed": 0, "size": 64},
        make_cohort=make,
        batch_size=2,
        augment={"p": 1.0},
    )
    dm.prepare_data()
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (2, 2, 64, 64) and b["target"].dtype == torch.uint8
    assert b["target"].max() <= 4
    # a cohort of an older generator version is refused in one line, never reused or replaced
    info = tmp_path / "syn" / "synthetic.json"
    meta = json.loads(info.read_text())
    assert meta["version"] == synth.COHORT_VERSION
    del meta["version"]  # what version 1 wrote
    info.write_text(json.dumps(meta))
    old = CACDataModule(
        str(tmp_path / "syn"), synthetic={"n_scans": 5, "seed": 0, "size": 64}, make_cohort=make
    )
    for step in (old.check_source, old.prepare_data):
        expected = f"generator version 1, this one writes version {synth.COHORT_VERSION}"
        with pytest.raises(InputError, match=expected):
            step()
    assert json.loads(info.read_text()) == meta


class _Tiny(pl.LightningModule):
    """A 1x1 conv that records what each training epoch drew."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Conv2d(2, 5, 1)
        self.seen: dict[int, list[tuple[int, int]]] = {}

    def training_step(self, batch, batch_idx):
        keys = list(zip(batch["scan"].tolist(), batch["slice"].tolist(), strict=True))
        self.seen.setdefault(self.current_epoch, []).extend(keys)
        return torch.nn.functional.cross_entropy(self.net(batch["image"]), batch["target"])

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_sets_the_sampler_epoch(data_dir):
    dm = CACDataModule(str(data_dir), batch_size=2, samples_per_epoch=12, seed=1)
    model = _Tiny()
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.train_dataloader.sampler.epoch == 2
    assert len(model.seen) == 3 and all(len(v) == 12 for v in model.seen.values())
    assert model.seen[0] != model.seen[1] != model.seen[2]  # a new draw each epoch
    assert math.isclose(sum(dm.scans("train")[s].positive[z] for s, z in model.seen[1]), 6)


def test_worker_processes_give_the_same_batches(data_dir):
    kwargs = {"batch_size": 3, "augment": {"p": 1.0}, "crop": 24, "seed": 4}
    ref = list(CACDataModule(str(data_dir), **kwargs).train_dataloader())
    par = list(CACDataModule(str(data_dir), num_workers=2, **kwargs).train_dataloader())
    assert len(ref) == len(par) == 4  # 12 training slices, batches of 3
    for a, b in zip(ref, par, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])


def test_instantiates_from_the_hydra_data_config(data_dir):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from cac_lightning.config import CONF_DIR

    cfg = OmegaConf.load(f"{CONF_DIR}/data/synthetic.yaml")
    cfg.data_dir, cfg.synthetic, cfg.seed, cfg.num_workers = str(data_dir), None, 0, 0
    dm = instantiate(cfg)
    assert isinstance(dm, CACDataModule) and dm.augment is not None and dm.window == (-1024, 2048)
    from cac_lightning.sources.synthetic import prepare_cohort

    assert dm.make_cohort.func is prepare_cohort  # the config injects the generator
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (cfg.batch_size, 2, SIZE, SIZE)


def _cohort_with_dense(root, z: int, rows: slice, cols: slice, value: int) -> None:
    """The test cohort with unlabelled ``value`` HU at ``[z, rows, cols]`` of scan a."""
    write_cohort(root)
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "a.nii.gz")))
    hu[z, rows, cols] = value
    _write(hu, root / "a.nii.gz")


def test_hard_negative_fraction_reaches_the_training_sampler(tmp_path):
    """Scan a's slice 4 holds extra unlabelled dense area: it is the hard negative, and half
    of the training negatives are drawn from it; validation draws are unchanged."""
    root = tmp_path / "data"
    _cohort_with_dense(root, 4, slice(20, 30), slice(2, 10), 600)
    kwargs = dict(batch_size=2, samples_per_epoch=40, seed=0)
    dm = CACDataModule(str(root), hard_negative_fraction=0.5, hard_negative_quantile=0.1, **kwargs)
    sampler = dm.train_dataloader().sampler
    assert sampler.hard_idx.tolist() == [4]  # slice 4 of the first training scan
    idx = np.array([i for i, _ in sampler])
    neg = idx[~dm._dataset(["train"]).positive[idx]]
    assert np.sum(neg == 4) == neg.size // 2
    plain = CACDataModule(str(root), **kwargs)
    assert plain.train_dataloader().sampler.hard_fraction == 0.0
    assert list(plain.val_dataloader().sampler) == list(dm.val_dataloader().sampler)
    with pytest.raises(InputError, match="hard_negative_fraction"):
        CACDataModule(str(root), hard_negative_fraction=1.5)


def test_bright_negative_fraction_reaches_the_training_sampler(tmp_path):
    """Scan a's slice 5 holds one small metal spot (1,800 HU, brighter than the cohort's 800 HU
    bone): it is the bright negative, drawn for a fifth of the negatives, before the hard ones."""
    root = tmp_path / "data"
    _cohort_with_dense(root, 5, slice(25, 27), slice(25, 27), 1800)
    kwargs = dict(batch_size=2, samples_per_epoch=40, seed=0)
    dm = CACDataModule(
        str(root), bright_negative_fraction=0.2, bright_negative_quantile=0.05, **kwargs
    )
    sampler = dm.train_dataloader().sampler
    assert sampler.bright_idx.tolist() == [5]
    idx = np.array([i for i, _ in sampler])
    neg = idx[~dm._dataset(["train"]).positive[idx]]
    assert np.sum(neg == 5) == int(np.floor(neg.size * 0.2 + 0.5))
    with pytest.raises(InputError, match="bright_negative_fraction"):
        CACDataModule(str(root), hard_negative_fraction=0.9, bright_negative_fraction=0.2)
    with pytest.raises(InputError, match="bright_negative_quantile"):
        CACDataModule(str(root), bright_negative_quantile=0.0)


def test_bright_positive_fraction_reaches_the_training_sampler(tmp_path):
    """Scan a's first calcified slice gets one 1,500 HU plaque pixel (the others peak at 350):
    it is the bright positive, drawn for half of the positives."""
    root = tmp_path / "data"
    write_cohort(root)
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "a.nii.gz")))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "a_label.nii.gz")))
    z = int(np.flatnonzero(labels.any(axis=(1, 2)))[0])
    hu[z, 13, 5] = 1500
    _write(hu, root / "a.nii.gz")
    kwargs = dict(batch_size=2, samples_per_epoch=40, seed=0)
    dm = CACDataModule(
        str(root), bright_positive_fraction=0.5, bright_positive_quantile=0.3, **kwargs
    )
    sampler = dm.train_dataloader().sampler
    ds = dm._dataset(["train"])
    assert sampler.bright_pos_idx.tolist() == [z]
    assert ds.positive[sampler.bright_pos_idx].all()
    idx = np.array([i for i, _ in sampler])
    pos = idx[ds.positive[idx]]
    assert np.isin(pos, sampler.bright_pos_idx).sum() == int(np.floor(pos.size * 0.5 + 0.5))
    with pytest.raises(InputError, match="bright_positive_fraction"):
        CACDataModule(str(root), bright_positive_fraction=-0.1)
    with pytest.raises(InputError, match="bright_positive_quantile"):
        CACDataModule(str(root), bright_positive_quantile=1.5)
