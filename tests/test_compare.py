"""How far apart two pictures are: max_pixel_diff, psnr and difference, on the 0-255 scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from helpers.compare import difference, max_pixel_diff, mean_pixel_diff, psnr

GREY = Image.new("RGB", (4, 4), (100, 100, 100))
LIGHTER = Image.new("RGB", (4, 4), (110, 100, 100))  # one channel 10 levels up


def test_max_pixel_diff_is_the_largest_channel_difference_either_way():
    assert max_pixel_diff([GREY], [GREY]) == 0
    assert max_pixel_diff([GREY, GREY], [GREY, LIGHTER]) == 10
    assert max_pixel_diff([LIGHTER], [GREY]) == 10  # no uint8 wrap-around below 0
    with pytest.raises(ValueError, match="1 pictures against 2"):
        max_pixel_diff([GREY], [GREY, GREY])


def test_mean_pixel_diff_averages_over_channels_pixels_and_pictures():
    assert mean_pixel_diff([GREY], [GREY]) == 0
    assert mean_pixel_diff([LIGHTER], [GREY]) == pytest.approx(10 / 3)
    assert mean_pixel_diff([GREY, LIGHTER], [GREY, GREY]) == pytest.approx(10 / 6)
    with pytest.raises(ValueError, match="2 pictures against 1"):
        mean_pixel_diff([GREY, GREY], [GREY])


def test_psnr_follows_its_formula_and_is_symmetric():
    mse = 10**2 / 3  # one of three channels off by 10
    assert psnr(GREY, LIGHTER) == pytest.approx(10 * math.log10(255**2 / mse))
    assert psnr(LIGHTER, GREY) == psnr(GREY, LIGHTER)
    assert psnr(GREY, GREY) == math.inf


def test_difference_shows_the_error_amplified_and_clipped():
    shown = np.asarray(difference(GREY, LIGHTER))
    assert shown.shape == (4, 4, 3) and shown.dtype == np.uint8
    assert (shown[..., 0] == 40).all() and (shown[..., 1:] == 0).all()  # gain 4
    assert (np.asarray(difference(GREY, LIGHTER, gain=50))[..., 0] == 255).all()
