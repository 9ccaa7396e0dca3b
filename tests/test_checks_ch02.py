"""The chapter 2 checks pass the reference solutions, fail plausible wrong answers and say NOT DONE to `...`."""

import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from helpers.checks import ExerciseFailed
from helpers.checks.ch02 import check_down_shapes, check_kl, check_latent_shape
from helpers.tiny.config import TinyConfig, make_vae


@pytest.fixture(scope="module")
def tiny_vae():
    return make_vae(
        TinyConfig()
    ).eval()  # the checks read shapes and configs, so untrained weights do


def test_latent_shape(tiny_vae, sd_vae, capsys):
    for vae in (tiny_vae, sd_vae):  # tiny-shapes-sd's layout and SD v1.5's
        native, factor, channels = (
            vae.config.sample_size,
            2 ** (len(vae.config.block_out_channels) - 1),
            4,
        )
        assert check_latent_shape(
            (3, channels, native // factor, 2 * native // factor), vae
        )
        assert "[ex-02-latent-shape] PASS" in capsys.readouterr().out
        for wrong, message in [
            (
                (3, channels, 2 * native // factor, native // factor),
                "height comes before width",
            ),
            ((3, 3, native // factor, 2 * native // factor), "channels"),
            ((1, channels, native // factor, 2 * native // factor), "batch"),
            ((3, channels, native, 2 * native), "scale factor"),
            ([3, channels, native // factor, 2 * native // factor], "tuple"),
        ]:
            with pytest.raises(ExerciseFailed, match=message):
                check_latent_shape(wrong, vae)


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


def test_placeholder_is_not_done(tiny_vae, capsys):
    posterior = DiagonalGaussianDistribution(torch.zeros(1, 8, 2, 2))
    assert check_latent_shape(..., tiny_vae).passed is False
    assert check_kl(..., posterior).passed is False
    assert check_down_shapes(..., tiny_vae, torch.zeros(1, 3, 64, 64)).passed is False
    assert capsys.readouterr().out.count("NOT DONE") == 3
