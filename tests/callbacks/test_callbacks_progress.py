"""The DDP-safe progress bar: no metrics read (a rank-0-only collective) at a DDP epoch end."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cac_lightning.callbacks.progress import (
    RankSafeRichProgressBar,
    RankSafeTQDMProgressBar,
    progress_bar,
)


class _Bar:
    disable = False

    def __init__(self):
        self.postfix = None

    def set_postfix(self, metrics):
        self.postfix = metrics

    def close(self):
        pass


@pytest.mark.parametrize("world_size, read", [(1, True), (2, False)])
def test_tqdm_bar_reads_metrics_at_epoch_end_only_without_ddp(monkeypatch, world_size, read):
    bar = RankSafeTQDMProgressBar()
    bar.train_progress_bar = _Bar()
    calls = []
    monkeypatch.setattr(
        RankSafeTQDMProgressBar, "get_metrics", lambda self, t, m: calls.append(1) or {"x": 1}
    )
    bar.on_train_epoch_end(SimpleNamespace(world_size=world_size), None)
    assert bool(calls) is read
    assert (bar.train_progress_bar.postfix is not None) is read


def test_rich_bar_skips_the_epoch_end_read_under_ddp(monkeypatch):
    bar = RankSafeRichProgressBar()
    monkeypatch.setattr(
        RankSafeRichProgressBar, "_update_metrics", lambda self, t, m: pytest.fail("read")
    )
    bar.on_train_epoch_end(SimpleNamespace(world_size=2), None)


def test_default_bar_is_lightnings_choice_made_safe():
    from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

    expected = RankSafeRichProgressBar if _RICH_AVAILABLE else RankSafeTQDMProgressBar
    assert type(progress_bar()) is expected
