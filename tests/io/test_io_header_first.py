"""Item 8: image and label headers are checked before any pixel is decompressed."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.io import read_label_map, read_volume
from cac_lightning.io.images import MAX_VOXELS
from cac_lightning.volume import Geometry

REPO = Path(__file__).resolve().parents[2]


def _bomb(path: Path, shape_xyz=(1024, 1024, 1024), datatype=4, bitpix=16) -> Path:
    """A NIfTI-1 file whose header claims ``shape_xyz`` voxels and which holds almost no data."""
    hdr = np.zeros(348, np.uint8)

    def put(offset, dtype, values):
        raw = np.asarray(values, dtype=dtype).tobytes()
        hdr[offset : offset + len(raw)] = np.frombuffer(raw, np.uint8)

    put(0, "<i4", 348)  # sizeof_hdr
    put(40, "<i2", [3, *shape_xyz, 1, 1, 1, 1])  # dim
    put(70, "<i2", [datatype, bitpix])
    put(76, "<f4", [1, 0.5, 0.5, 3.0, 1, 1, 1, 1])  # pixdim
    put(108, "<f4", 352)  # vox_offset
    put(112, "<f4", [1, 0])  # scl_slope, scl_inter
    put(254, "<i2", 1)  # sform_code
    put(280, "<f4", [[0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 3.0, 0]])  # srow_x/y/z
    hdr[344:348] = np.frombuffer(b"n+1\0", np.uint8)
    body = hdr.tobytes() + b"\0" * 4 + b"\0" * 1024 * 1024  # 1 MiB of the claimed 2 GiB
    path.write_bytes(gzip.compress(body))
    return path


def test_huge_header_refused_as_volume(tmp_path):
    bomb = _bomb(tmp_path / "bomb.nii.gz")
    assert bomb.stat().st_size < 10_000
    with pytest.raises(InputError, match=r"header claims 1024 x 1024 x 1024 = 1073741824 voxels"):
        read_volume(bomb)


def test_huge_header_refused_as_label_map_by_grid(tmp_path):
    bomb = _bomb(tmp_path / "bomb.nii.gz", shape_xyz=(512, 512, 400))  # under the cap
    g = Geometry(shape=(4, 16, 16), pixel_spacing=(0.5, 0.5), slice_spacing=3.0)
    with pytest.raises(InputError, match=r"shape \(z, y, x\) \(400, 512, 512\) vs image \(4, 16"):
        read_label_map(bomb, g)


def test_cap_covers_real_ct():
    assert MAX_VOXELS >= 512 * 512 * 1000  # a long thin-slice CT still reads


@pytest.mark.parametrize("role", ["input", "mask"])
def test_cac_score_stays_small_on_a_header_bomb(tmp_path, role):
    """End to end: one line, exit 2, and the process never grows to the claimed size."""
    import SimpleITK as sitk

    bomb = _bomb(tmp_path / "bomb.nii.gz")
    img = sitk.GetImageFromArray(np.zeros((4, 16, 16), np.int16))
    img.SetSpacing((0.5, 0.5, 3.0))
    small = tmp_path / "small.nii.gz"
    sitk.WriteImage(img, str(small))
    inp, mask = (bomb, small) if role == "input" else (small, bomb)
    code = (
        # VmHWM: this process image's peak RSS (ru_maxrss would carry pytest's over the exec)
        "import re, sys; from cac_lightning.cli.score import main; c = main(sys.argv[1:]); "
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
        "sys.exit(c)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(inp), "--mask", str(mask), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "1073741824 voxels" in err[0]
    peak_mb = int(r.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mb < 1024, f"peak {peak_mb:.0f} MB: the claimed 2 GiB was decompressed"
