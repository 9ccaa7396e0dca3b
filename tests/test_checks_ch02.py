"""The chapter 2 checks pass the reference solutions, fail plausible wrong answers and say NOT DONE to `...`."""

import numpy as np
import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from PIL import Image

from helpers.checks import ExerciseFailed
from helpers.checks.ch02 import (
    check_down_shapes,
    check_kl,
    check_vae_or_resize,
    picture_psnr,
    vae_or_resize_psnrs,
)
from helpers.images import load_sample_image
from helpers.tiny.config import TinyConfig, make_vae


@pytest.fixture(scope="module")
def tiny_vae():
    return make_vae(
        TinyConfig()
    ).eval()  # the checks read shapes and configs, so untrained weights do


# ex-02-vae-or-resize ----------------------------------------------------------------------------------------------

EXPLANATION = (
    "Both keep a few numbers per patch of the picture, but the VAE's encoder learned which numbers to keep "
    "and its decoder how to redraw the edges from them, while a resize can only average the pixels."
)


def test_vae_or_resize(tiny_pipe):
    vae = tiny_pipe.vae
    picture = load_sample_image("a yellow star on a purple background", size=64)
    measured = vae_or_resize_psnrs(vae, picture)
    assert abs(measured["vae"] - measured["resize"]) > 0.5, (
        "the two PSNRs must differ for a swap to be caught"
    )
    assert check_vae_or_resize(measured, EXPLANATION, vae, picture)
    bicubic = Image.Resampling.BICUBIC
    by_4 = picture.resize((16, 16), bicubic).resize(picture.size, bicubic)
    nearest = picture.resize((8, 8), Image.Resampling.NEAREST).resize(picture.size)
    wrong_answers = [
        ({"vae": measured["resize"], "resize": measured["vae"]}, EXPLANATION),
        ({**measured, "resize": picture_psnr(picture, by_4)}, EXPLANATION),
        ({**measured, "resize": picture_psnr(picture, nearest)}, EXPLANATION),
        (measured, "the VAE"),  # no explanation
    ]
    with pytest.raises(ExerciseFailed, match="numpy float64: wrap it in float"):
        check_vae_or_resize(
            {key: np.float64(value) for key, value in measured.items()},
            EXPLANATION,
            vae,
            picture,
        )
    for answer, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_vae_or_resize(answer, explanation, vae, picture)
    assert check_vae_or_resize(..., EXPLANATION, vae, picture).passed is False


def test_kl(capsys):
    posterior = DiagonalGaussianDistribution(
        torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    )
    mean, logvar = posterior.mean, posterior.logvar
    assert check_kl(
        0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)), posterior
    )
    assert "[ex-02-kl] PASS" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="half the sum"):
        check_kl((mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)), posterior)
    with pytest.raises(ExerciseFailed, match="one value per picture"):
        check_kl(0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(), posterior)
    with pytest.raises(ExerciseFailed, match="tensor"):
        check_kl(1.0, posterior)


def test_kl_in_float16_where_posterior_kl_overflows(capsys):
    """On a GPU the posterior is float16 and posterior.kl() sums to inf; an answer in float32 is the right one."""
    parameters = 30 + torch.randn(
        1, 8, 4, 4, generator=torch.Generator().manual_seed(0)
    )  # |mean| ~ 30: 128 x 900
    posterior = DiagonalGaussianDistribution(parameters.half())
    assert torch.isinf(posterior.kl()).all()
    mean, logvar = posterior.mean.float(), posterior.logvar.float()
    assert check_kl(
        0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)), posterior
    )
    assert "[ex-02-kl] PASS" in capsys.readouterr().out
    with pytest.raises(
        ExerciseFailed,
        match=r"overflowed torch\.float16.*cast mean and logvar with \.float",
    ):
        check_kl(posterior.kl(), posterior)
    with pytest.raises(ExerciseFailed, match="half the sum"):
        check_kl((mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)), posterior)


def record_down_shapes(vae, pixels):
    shapes = []
    hooks = [
        block.register_forward_hook(
            lambda m, args, out: shapes.append(tuple(out.shape))
        )
        for block in vae.encoder.down_blocks
    ]
    with torch.no_grad():
        vae.encode(pixels)
    for hook in hooks:
        hook.remove()
    return shapes


def test_down_shapes(tiny_vae, sd_vae, capsys):
    pixels = torch.zeros(1, 3, 64, 48)
    for vae in (tiny_vae, sd_vae):
        shapes = record_down_shapes(vae, pixels)
        assert check_down_shapes(shapes, vae, pixels)
        assert "[ex-02-down-shapes] PASS" in capsys.readouterr().out
        with pytest.raises(ExerciseFailed, match="reverse order"):
            check_down_shapes(shapes[::-1], vae, pixels)
        with pytest.raises(ExerciseFailed, match="one per down block"):
            check_down_shapes(shapes[:-1], vae, pixels)
        with pytest.raises(ExerciseFailed, match=r"got \[\(1, 3, 64, 48\)"):
            check_down_shapes([(1, 3, 64, 48)] + shapes[1:], vae, pixels)


def test_placeholder_is_not_done(tiny_vae, expect_not_done):
    posterior = DiagonalGaussianDistribution(torch.zeros(1, 8, 2, 2))
    expect_not_done(
        check_kl(..., posterior),
        check_down_shapes(..., tiny_vae, torch.zeros(1, 3, 64, 64)),
    )
