"""The mode-collapse protocol (VEEGAN, PacGAN) pinned on hand-built samples whose answers are known: the
study's numbers rest on it, so a change that would inflate them fails here."""

import math

import pytest
import torch

from fastgan.train.data import grid_modes, ring_modes
from fastgan.train.metrics import mode_metrics


def test_the_mixtures_are_the_papers():
    ring, grid = ring_modes(), grid_modes()
    assert ring.std == 0.01 and grid.std == 0.05
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    torch.testing.assert_close(ring.centers.double(), torch.stack([angles.cos(), angles.sin()], 1), atol=1e-7, rtol=0)
    assert sorted(map(tuple, grid.centers.tolist())) == [
        (x, y) for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)
    ]


def _at(modes, which, offset_in_std=0.0, direction=(1.0, 0.0)):
    """Samples at modes ``which`` (indices), moved ``offset_in_std`` standard deviations along ``direction``."""
    shift = torch.tensor(direction) * offset_in_std * modes.std
    return modes.centers[torch.tensor(which)] + shift


def test_half_the_ring_with_a_fifth_of_the_samples_far_off():
    ring = ring_modes()
    samples = torch.cat([_at(ring, [0, 1, 2, 3] * 100), torch.zeros(100, 2)])
    result = mode_metrics(samples, ring)
    assert (result["modes"], result["total_modes"]) == (4, 8)
    assert result["high_quality"] == pytest.approx(0.8)
    assert result["reverse_kl"] == pytest.approx(math.log(2.0))  # uniform over 4 of 8 modes


def test_high_quality_means_within_three_standard_deviations():
    ring = ring_modes()
    inside, outside = _at(ring, [2] * 10, 2.9, (0.0, 1.0)), _at(ring, [5] * 30, 3.1, (0.6, 0.8))
    result = mode_metrics(torch.cat([inside, outside]), ring)
    assert result["high_quality"] == pytest.approx(0.25)
    assert result["modes"] == 1  # mode 5's samples are nearest to it but not high quality: not captured
    assert result["reverse_kl"] == pytest.approx(math.log(8.0))  # the high-quality samples, all in one mode


def test_reverse_kl_weighs_the_high_quality_samples_by_mode():
    grid = grid_modes()
    samples = torch.cat(
        [_at(grid, [0] * 30, 1.0), _at(grid, [7] * 10, 2.0, (0.0, -1.0)), _at(grid, [7] * 50, 4.0)]
    )  # 50 low-quality samples near mode 7 count for nothing
    result = mode_metrics(samples, grid)
    assert (result["modes"], result["total_modes"]) == (2, 25)
    assert result["high_quality"] == pytest.approx(40 / 90)
    assert result["reverse_kl"] == pytest.approx(0.75 * math.log(0.75 * 25) + 0.25 * math.log(0.25 * 25))


def test_every_mode_evenly_is_perfect_and_none_is_no_kl():
    grid = grid_modes()
    assert mode_metrics(_at(grid, list(range(25)) * 4, 0.5), grid) == {
        "modes": 25,
        "high_quality": 1.0,
        "reverse_kl": 0.0,
        "total_modes": 25,
    }
    nothing = mode_metrics(torch.full((20, 2), 10.0), grid)
    assert (nothing["modes"], nothing["high_quality"], nothing["reverse_kl"]) == (0, 0.0, None)
