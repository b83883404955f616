"""Choose the lesion-confidence floor of an existing checkpoint, as ``cac-train`` does after
fitting (``calibrate_lesion_floor=true``), and write a copy that records it.

For checkpoints trained before the floor existed (or with ``calibrate_lesion_floor=false``):
the floor is chosen on the validation scans of the dataset the Hydra overrides compose (default
the demo's), by :func:`cac_lightning.evaluation.calibration.calibrate_floor`.

Usage::

    python experiments/sim_to_real/calibrate_ckpt.py --ckpt IN.ckpt --out OUT.ckpt \
        [experiment=demo ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from cac_lightning.config import CONF_DIR
from cac_lightning.evaluation.calibration import calibrate_floor, write_floor
from cac_lightning.inference import Predictor


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="the copy to write (not --ckpt)")
    ap.add_argument("overrides", nargs="*", default=["experiment=demo"], help="Hydra overrides")
    args = ap.parse_args(argv)
    if args.out.resolve() == args.ckpt.resolve():
        ap.error("--out must differ from --ckpt (the input is never overwritten)")
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name="train", overrides=args.overrides)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    predictor = Predictor.from_checkpoint(args.ckpt, device="cpu")
    record = calibrate_floor(predictor, dm.native_scans("val"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_floor(args.ckpt, record, args.out)
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
