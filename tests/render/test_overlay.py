"""The display window is one fact: every CT picture maps HU through render.grey."""

from __future__ import annotations

import numpy as np

from cac_lightning.render import DISPLAY_WINDOW, grey, render_overlay
from cac_lightning.vessels import VESSEL_COLORS


def test_grey_maps_the_window_onto_0_255():
    lo, hi = DISPLAY_WINDOW
    g = grey(np.array([lo - 100, lo, (lo + hi) / 2, hi, hi + 100]))
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [0.0, 0.0, 127.5, 255.0, 255.0])


def test_overlay_is_grey_where_there_is_no_label_and_coloured_where_there_is():
    hu = np.full((2, 2), DISPLAY_WINDOW[1], np.int16)
    labels = np.array([[0, 1], [0, 0]], np.uint8)
    rgb = render_overlay(hu, labels, alpha=1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 0]) == (255, 255, 255)
    assert tuple(rgb[0, 1]) == VESSEL_COLORS["LM"]
