"""Realism measures (cac-synth --stats): per-tissue HU and the noise power spectrum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cac_lightning.sources.synthetic.realism import (
    noise_power_spectrum,
    nps_bins,
    nps_mean_freq,
    tissue_hu,
)

PX = 0.5


def _flat(value: float, sd: float, sigma_px: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.standard_normal((12, 160, 160))
    if sigma_px:
        n = ndi.gaussian_filter(n, (0, sigma_px, sigma_px), mode="wrap")
    return value + sd * n / n.std()


def test_white_noise_nps_is_flat_at_variance_times_pixel_area():
    nps = noise_power_spectrum(_flat(40.0, 20.0), PX, "soft")
    f = nps_bins()
    ok = np.isfinite(nps) & (f > 0.1)
    # white noise: NPS = sigma^2 * px^2 = 400 * 0.25 = 100 HU^2 mm^2 at every frequency
    assert np.median(nps[ok]) == pytest.approx(100.0, rel=0.1)
    assert nps_mean_freq(nps) > 0.6


def test_correlated_noise_moves_power_to_low_frequencies():
    white = noise_power_spectrum(_flat(40.0, 20.0), PX, "soft")
    smooth = noise_power_spectrum(_flat(40.0, 20.0, sigma_px=1.0), PX, "soft")
    assert nps_mean_freq(smooth) < 0.6 * nps_mean_freq(white)
    f = nps_bins()
    assert smooth[f > 0.7].max() < 0.2 * smooth[np.isfinite(smooth)].max()
    assert np.isnan(noise_power_spectrum(_flat(40.0, 20.0), PX, "fat")).all()  # no fat region


def test_tissue_hu_medians_and_sd():
    vol = _flat(40.0, 15.0)
    vol[:, :, :80] = _flat(-105.0, 15.0, seed=1)[:, :, :80]
    vol[:, 60:100, 120:150] = 300.0  # bone block
    t = tissue_hu(vol.astype(np.int16), PX)
    assert t["soft"][0] == pytest.approx(40.0, abs=2.0)
    assert t["fat"][0] == pytest.approx(-105.0, abs=2.0)
    assert t["soft"][1] == pytest.approx(15.0, rel=0.15)
    assert t["bone"][0] == pytest.approx(300.0, abs=1.0)
    assert np.isnan(t["lung"][0])
