"""BalancedSliceSampler: exact balance, DDP shares, epochs, seeds."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from cac_lightning.data.samplers import BalancedSliceSampler
from cac_lightning.errors import InputError

# 10 positive slices among 100
POSITIVE = np.zeros(100, dtype=bool)
POSITIVE[::10] = True


@pytest.mark.parametrize(
    ("pos_fraction", "num_samples", "n_pos"),
    [(0.5, 40, 20), (0.25, 40, 10), (0.5, 41, 21), (0.25, 42, 11), (0.5, None, 50)],
)
def test_exact_balance(pos_fraction, num_samples, n_pos):
    s = BalancedSliceSampler(POSITIVE, num_samples=num_samples, pos_fraction=pos_fraction)
    idx = list(s)
    expected_len = num_samples or POSITIVE.size  # default: one draw per slice (the paper)
    assert len(idx) == len(s) == expected_len
    assert sum(POSITIVE[i] for i in idx) == n_pos


def test_oversampling_spreads_evenly():
    s = BalancedSliceSampler(POSITIVE, num_samples=100)
    counts = Counter(i for i in s if POSITIVE[i])
    # 50 positive draws over 10 positive slices: each exactly 5 times
    assert sorted(counts) == list(range(0, 100, 10)) and set(counts.values()) == {5}
    neg = [i for i in s if not POSITIVE[i]]
    assert len(set(neg)) == 50  # 50 of 90 negatives, none repeated


def test_two_ranks_disjoint_complete_equal():
    full = BalancedSliceSampler(
        POSITIVE, num_samples=40, seed=3, num_replicas=1, rank=0, with_seeds=True
    )
    shares = [
        list(
            BalancedSliceSampler(
                POSITIVE, num_samples=40, seed=3, num_replicas=2, rank=r, with_seeds=True
            )
        )
        for r in range(2)
    ]
    assert len(shares[0]) == len(shares[1]) == 20
    whole = list(full)
    # the item seeds identify draw positions: disjoint shares that cover the draw
    assert not {k for _, k in shares[0]} & {k for _, k in shares[1]}
    assert Counter(shares[0] + shares[1]) == Counter(whole)


def test_ranks_pad_to_equal_length():
    shares = [
        len(BalancedSliceSampler(POSITIVE, num_samples=41, num_replicas=2, rank=r))
        for r in range(2)
    ]
    assert shares == [21, 21]


def test_epochs_differ_seed_reproduces():
    a = BalancedSliceSampler(POSITIVE, seed=7)
    b = BalancedSliceSampler(POSITIVE, seed=7)
    e0 = list(a)
    assert e0 == list(b)
    a.set_epoch(1)
    e1 = list(a)
    assert e1 != e0
    b.set_epoch(1)
    assert list(b) == e1
    assert list(BalancedSliceSampler(POSITIVE, seed=8)) != e0


def test_fixed_draw_ignores_set_epoch():
    s = BalancedSliceSampler(POSITIVE, seed=1, reshuffle=False)
    e0 = list(s)
    s.set_epoch(5)
    assert list(s) == e0


def test_seeds_differ_for_repeated_slices():
    s = BalancedSliceSampler(POSITIVE, num_samples=100, with_seeds=True)
    pairs = list(s)
    seeds_of_first = [k for i, k in pairs if i == 0]
    assert len(seeds_of_first) == 5 and len(set(seeds_of_first)) == 5


def test_all_negative_is_an_error_or_explicit_fallback():
    none = np.zeros(12, dtype=bool)
    with pytest.raises(InputError, match="no positive"):
        BalancedSliceSampler(none)
    s = BalancedSliceSampler(none, allow_missing_class=True)
    assert sorted(s) == list(range(12))
    # pos_fraction 0 needs no positives
    assert len(list(BalancedSliceSampler(none, num_samples=6, pos_fraction=0.0))) == 6


def test_all_positive_is_an_error():
    with pytest.raises(InputError, match="no negative"):
        BalancedSliceSampler(np.ones(5, dtype=bool))


@pytest.mark.parametrize(
    "kwargs", [{"pos_fraction": 1.5}, {"num_samples": 0}, {"num_replicas": 2, "rank": 2}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        BalancedSliceSampler(POSITIVE, **kwargs)


def test_default_epoch_is_one_draw_per_slice_with_replacement():
    """The paper's epoch: as many draws as slices, 1:1, the rare class oversampled."""
    s = BalancedSliceSampler(POSITIVE, pos_fraction=0.5, seed=7)
    idx = np.array(list(s))
    assert idx.size == POSITIVE.size
    pos_draws = idx[POSITIVE[idx]]
    assert pos_draws.size == 50 and np.unique(pos_draws).size == 10  # with replacement
    s2 = BalancedSliceSampler(POSITIVE, pos_fraction=0.2, num_replicas=3, rank=1)
    assert len(s2) == 34  # ceil(100 / 3): the whole epoch is shared by the ranks


# Hard negatives: every third negative slice is flagged hard (30 of 90).
HARD = np.zeros(100, dtype=bool)
HARD[1::3] = True


@pytest.mark.parametrize(("hard_fraction", "num_samples"), [(0.5, 40), (0.25, 101), (1.0, 60)])
def test_hard_negative_share_is_honoured(hard_fraction, num_samples):
    s = BalancedSliceSampler(
        POSITIVE, num_samples=num_samples, hard=HARD, hard_fraction=hard_fraction
    )
    idx = np.array(list(s))
    neg = idx[~POSITIVE[idx]]
    n_hard = int(np.sum(HARD[neg]))
    assert n_hard == int(np.floor(neg.size * hard_fraction + 0.5))
    assert neg.size == len(idx) - int(np.floor(len(idx) * 0.5 + 0.5))
    # a flag on a positive slice never makes it a negative draw
    assert set(idx[POSITIVE[idx]]) <= set(np.flatnonzero(POSITIVE))


def test_zero_hard_fraction_is_the_plain_draw():
    plain = BalancedSliceSampler(POSITIVE, num_samples=64, seed=3)
    zero = BalancedSliceSampler(POSITIVE, num_samples=64, seed=3, hard=HARD, hard_fraction=0.0)
    assert list(plain) == list(zero)
    hard = BalancedSliceSampler(POSITIVE, num_samples=64, seed=3, hard=HARD, hard_fraction=0.8)
    assert list(hard) != list(plain)


def test_hard_fraction_without_flags_or_hard_slices():
    with pytest.raises(ValueError, match="hard"):
        BalancedSliceSampler(POSITIVE, hard_fraction=0.5)
    with pytest.raises(ValueError, match="flags"):
        BalancedSliceSampler(POSITIVE, hard=HARD[:50], hard_fraction=0.5)
    none_hard = BalancedSliceSampler(POSITIVE, hard=POSITIVE, hard_fraction=0.5)
    assert none_hard.hard_fraction == 0.0  # only positives flagged: a plain draw, warned


def test_hard_negative_slices_rank_unlabelled_dense_area():
    from types import SimpleNamespace

    from cac_lightning.data.samplers import dense_negative_area, hard_negative_slices

    hu = np.full((4, 8, 8), 40, dtype=np.int16)
    labels = np.zeros((4, 8, 8), dtype=np.uint8)
    hu[0, :2] = 400  # 16 px of bone
    hu[1, :1] = 400  # 8 px
    hu[2, :4] = 400  # 32 px, but 24 of them coronary calcium: a positive slice
    labels[2, 1:4] = 2
    hu[3, :, :1] = 129  # below the threshold
    area = dense_negative_area(hu, labels, 130.0, 0.25)
    assert area.tolist() == [4.0, 2.0, 2.0, 0.0]
    scan = SimpleNamespace(
        hu=hu, labels=labels, positive=labels.any(axis=(1, 2)),
        geometry=SimpleNamespace(pixel_spacing=(0.5, 0.5)),
    )  # fmt: skip
    flags = hard_negative_slices([scan, scan], [130.0, 130.0], quantile=0.34)
    assert flags.tolist() == [True, False, False, False] * 2
    # the threshold is each scan's own: at 500 HU nothing is dense
    assert not hard_negative_slices([scan], [500.0]).any()


# Bright negatives: 6 negative slices, three of them also flagged hard (1, 4, 7 are hard).
BRIGHT = np.zeros(100, dtype=bool)
BRIGHT[[1, 2, 4, 5, 7, 8]] = True


@pytest.mark.parametrize(("bright_fraction", "hard_fraction"), [(0.2, 0.5), (0.5, 0.0), (0.5, 0.5)])
def test_bright_share_is_drawn_first_and_kept_apart_from_the_hard_share(
    bright_fraction, hard_fraction
):
    s = BalancedSliceSampler(
        POSITIVE, num_samples=200, seed=1, hard=HARD, hard_fraction=hard_fraction,
        bright=BRIGHT, bright_fraction=bright_fraction,
    )  # fmt: skip
    idx = np.array(list(s))
    neg = idx[~POSITIVE[idx]]
    assert neg.size == 100
    n_bright = int(np.sum(BRIGHT[neg]))
    n_hard_only = int(np.sum(HARD[neg] & ~BRIGHT[neg]))
    assert n_bright == int(np.floor(100 * bright_fraction + 0.5))
    if hard_fraction:
        # a slice both hard and bright counts in the bright share, never in the hard one
        assert n_hard_only == int(np.floor(100 * hard_fraction + 0.5))
    # every bright slice is drawn about as often as the others of its pool
    counts = Counter(neg[BRIGHT[neg]].tolist())
    assert sorted(counts) == np.flatnonzero(BRIGHT).tolist()
    assert max(counts.values()) - min(counts.values()) <= 1


def test_zero_bright_fraction_is_the_hard_draw():
    hard = BalancedSliceSampler(POSITIVE, num_samples=64, seed=3, hard=HARD, hard_fraction=0.5)
    zero = BalancedSliceSampler(
        POSITIVE, num_samples=64, seed=3, hard=HARD, hard_fraction=0.5,
        bright=BRIGHT, bright_fraction=0.0,
    )  # fmt: skip
    assert list(hard) == list(zero)


def test_bright_fraction_checks():
    with pytest.raises(ValueError, match="bright"):
        BalancedSliceSampler(POSITIVE, bright_fraction=0.2)
    with pytest.raises(ValueError, match="bright_fraction"):
        BalancedSliceSampler(
            POSITIVE, hard=HARD, hard_fraction=0.9, bright=BRIGHT, bright_fraction=0.2
        )
    none_bright = BalancedSliceSampler(POSITIVE, bright=POSITIVE, bright_fraction=0.3)
    assert none_bright.bright_fraction == 0.0  # only positives flagged: warned, ignored


def test_bright_negative_slices_rank_the_densest_unlabelled_pixel():
    from types import SimpleNamespace

    from cac_lightning.data.samplers import (
        bright_negative_slices,
        dense_negative_peak,
        hard_negative_slices,
    )

    hu = np.full((4, 8, 8), 40, dtype=np.int16)
    labels = np.zeros((4, 8, 8), dtype=np.uint8)
    hu[0, :4] = 600  # 32 px of bone: the largest area
    hu[1, 3, 3] = 1600  # one pixel of metal: the brightest
    hu[2, 0, 0] = 1900  # brighter, but coronary calcium: a positive slice
    labels[2, 0, 0] = 1
    hu[2, 5, 5] = 300
    peak = dense_negative_peak(hu, labels, 130.0)
    assert peak.tolist() == [600.0, 1600.0, 300.0, 0.0]
    scan = SimpleNamespace(
        hu=hu, labels=labels, positive=labels.any(axis=(1, 2)),
        geometry=SimpleNamespace(pixel_spacing=(0.5, 0.5)),
    )  # fmt: skip
    assert bright_negative_slices([scan], [130.0], quantile=0.3).tolist() == [
        False, True, False, False,
    ]  # fmt: skip
    # the area rule picks the bone, not the one metal pixel
    assert hard_negative_slices([scan], [130.0], quantile=0.3).tolist() == [
        True, False, False, False,
    ]  # fmt: skip
    assert not bright_negative_slices([scan], [2000.0]).any()


def test_bright_positive_share_of_the_positive_draw():
    """A quarter of the positive draw comes from the two bright positives; negatives unchanged."""
    bright = np.zeros(100, dtype=bool)
    bright[[0, 10, 15]] = True  # 15 is negative: ignored
    s = BalancedSliceSampler(
        POSITIVE, num_samples=80, bright_positive=bright, bright_positive_fraction=0.25, seed=3
    )
    idx, _ = s.draw()
    counts = Counter(int(i) for i in idx)
    assert counts[0] + counts[10] == 10 and 15 not in counts  # 0.25 of 40 positives
    assert sum(POSITIVE[i] for i in idx) == 40
    plain = BalancedSliceSampler(POSITIVE, num_samples=80, seed=3)
    zero = BalancedSliceSampler(
        POSITIVE, num_samples=80, seed=3, bright_positive=bright, bright_positive_fraction=0.0
    )
    assert np.array_equal(zero.draw()[0], plain.draw()[0])
    with pytest.raises(ValueError, match="bright_positive_fraction"):
        BalancedSliceSampler(POSITIVE, bright_positive=bright, bright_positive_fraction=1.5)
    with pytest.raises(ValueError, match="bright_positive slice flags"):
        BalancedSliceSampler(POSITIVE, bright_positive_fraction=0.2)


def test_bright_positive_slices_rank_the_densest_labelled_pixel():
    import types

    from cac_lightning.data.samplers import bright_positive_slices

    hu = np.full((4, 8, 8), 40, np.int16)
    labels = np.zeros((4, 8, 8), np.uint8)
    hu[0, 1, 1], labels[0, 1, 1] = 1200, 2  # dense plaque, one pixel
    hu[1, 2:6, 2:6], labels[1, 2:6, 2:6] = 300, 1  # large and faint
    hu[2, 3, 3] = 1900  # metal, unlabelled: slice 2 is negative
    hu[3, 4, 4], labels[3, 4, 4] = 500, 4
    scan = types.SimpleNamespace(hu=hu, labels=labels, positive=labels.any(axis=(1, 2)))
    assert bright_positive_slices([scan], quantile=0.5).tolist() == [True, False, False, True]
    assert bright_positive_slices([scan], quantile=0.01).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="quantile"):
        bright_positive_slices([scan], quantile=0.0)
