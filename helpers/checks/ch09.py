"""Checks for chapter 9, "Inpainting and ControlNet"."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from PIL import Image

from ..sd15 import sd15_config
from . import (
    Verdict,
    expect,
    expect_number,
    expect_numbers,
    expect_tensor,
    run_check,
    run_function_check,
    run_open_question,
)


def library_latent_mask(mask_image: Image.Image, factor: int) -> torch.Tensor:
    """The latent mask as ``StableDiffusionInpaintPipeline`` makes it: its ``mask_processor``, then
    ``prepare_mask_latents``' resize to the latent grid."""
    processor = VaeImageProcessor(
        vae_scale_factor=factor,
        do_normalize=False,
        do_binarize=True,
        do_convert_grayscale=True,
    )
    mask = processor.preprocess(
        mask_image, height=mask_image.height, width=mask_image.width
    )  # (1, 1, H, W)
    return F.interpolate(
        mask, size=(mask_image.height // factor, mask_image.width // factor)
    )


def random_masks(seed: int = 0) -> list[Image.Image]:
    """Grey-level masks of several sizes: noise, a soft blob, and hard boxes."""
    rng = np.random.default_rng(seed)
    masks = [
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8))
        for size in (64, 128)
    ]
    y, x = np.mgrid[0:64, 0:64]
    blob = 255 * np.exp(-((x - 30) ** 2 + (y - 36) ** 2) / 300)
    box = np.zeros((96, 96), np.uint8)
    box[10:70, 25:90] = 255
    return masks + [Image.fromarray(blob.astype(np.uint8)), Image.fromarray(box)]


def check_latent_mask(my_latent_mask: Any) -> Verdict:
    """A function (mask picture, factor) -> the 0/1 latent mask (1, 1, H/factor, W/factor), as the library's."""

    def test(fn: Any) -> None:
        for mask_image in random_masks():
            got, want = fn(mask_image, 8), library_latent_mask(mask_image, 8)
            expect_tensor(got, want.shape, f"for a {mask_image.size} mask")
            expect(
                set(got.unique().tolist()) <= {0.0, 1.0},
                "the mask must hold only 0 and 1: round each pixel at one half before shrinking",
            )
            expect(
                torch.equal(got.float(), want),
                "the mask differs from the library's: round at one half "
                "(>= 0.5 is 1), then take the nearest pixel, not an average",
            )

    return run_function_check(
        "ex-09-latent-mask", my_latent_mask, test, "a function of (mask_image, factor)"
    )


@torch.no_grad()
def residual_value_count(controlnet: ControlNetModel, size: int) -> int:
    """How many numbers ``controlnet`` adds to its UNet for one latent picture of ``size`` pixels a side."""
    parameter = next(controlnet.parameters())
    latent = size // 8
    latents = torch.zeros(
        1,
        controlnet.config.in_channels,
        latent,
        latent,
        device=parameter.device,
        dtype=parameter.dtype,
    )
    embeds = torch.zeros(
        1,
        77,
        controlnet.config.cross_attention_dim,
        device=parameter.device,
        dtype=parameter.dtype,
    )
    condition = torch.zeros(
        1, 3, size, size, device=parameter.device, dtype=parameter.dtype
    )
    down, mid = controlnet(
        latents,
        500,
        encoder_hidden_states=embeds,
        controlnet_cond=condition,
        return_dict=False,
    )
    return sum(r.numel() for r in down) + mid.numel()


def check_residual_values(
    answer: Any, controlnet: ControlNetModel, size: int
) -> Verdict:
    """The number of values of all the ControlNet's residuals for one latent picture of the chapter's size."""

    def test(value: Any) -> None:
        expect_number(value, "an int (use `.numel()` and `sum`)")
        want = residual_value_count(controlnet, size)
        expect(
            value != 2 * want,
            "that counts the doubled batch of classifier-free guidance: count one picture",
        )
        expect(
            value == want,
            f"expected {want:,}, got {value:,}: add the numel() of every down residual and of "
            "the middle residual",
        )

    return run_check("ex-09-residual-values", answer, test)


def extra_conv_in_parameters() -> int:
    """How many more parameters SD v1.5's inpainting UNet's conv_in has than SD v1.5's."""
    base, inpainting = sd15_config("unet"), sd15_config("unet_inpainting")
    extra_channels = inpainting["in_channels"] - base["in_channels"]
    return extra_channels * base["block_out_channels"][0] * 3 * 3


def check_extra_parameters(answer: Any) -> Verdict:
    """The extra parameters of the 9-channel UNet's first convolution."""

    def test(value: Any) -> None:
        expect_number(value, "an int")
        want = extra_conv_in_parameters()
        expect(
            value != want // 9,
            "a convolution has a weight for every position of its 3x3 kernel",
        )
        expect(
            value != want * 9 // 5,
            "that is the whole of the inpainting conv_in's weight: count the difference",
        )
        expect(
            value == want,
            f"expected {want:,}, got {value:,}: (extra input channels) x (output channels) x "
            "(kernel positions); the bias does not change",
        )

    return run_check("ex-09-extra-weights", answer, test)


ZERO_START_KEYS = ("residual", "zero_convolutions", "encoder")
GRADIENT_TOLERANCE = (
    1e-2  # relative: a GPU may sum the same float32 products in another order
)


def largest_magnitude(tensors: list[torch.Tensor | None]) -> float:
    """The largest magnitude over ``tensors``; a missing gradient (None) counts as 0."""
    return max(0.0 if x is None else x.abs().max().item() for x in tensors)


def zero_start_measurement(
    unet: UNet2DConditionModel,
    latents: torch.Tensor,
    t: torch.Tensor,
    embeds: torch.Tensor,
    condition: torch.Tensor,
) -> dict[str, float]:
    """A fresh float32 ``ControlNetModel.from_unet(unet)`` on these inputs: its largest residual, and the largest
    gradients of its zero convolutions' weights and of its copied encoder's parameters when every residual value gets
    a gradient of 1."""
    controlnet = ControlNetModel.from_unet(unet).to(latents.device)  # float32, as made
    with torch.enable_grad():
        down, mid = controlnet(
            latents.float(),
            t,
            encoder_hidden_states=embeds.float(),
            controlnet_cond=condition.float(),
            return_dict=False,
        )
        residuals = [*down, mid]
        sum(r.sum() for r in residuals).backward()
    zero_convolutions = [
        *controlnet.controlnet_down_blocks,
        controlnet.controlnet_mid_block,
    ]
    encoder = [controlnet.conv_in, *controlnet.down_blocks, controlnet.mid_block]
    return {
        "residual": largest_magnitude(residuals),
        "zero_convolutions": largest_magnitude(
            [m.weight.grad for m in zero_convolutions]
        ),
        "encoder": largest_magnitude(
            [p.grad for module in encoder for p in module.parameters()]
        ),
    }


def check_zero_start(
    zero_start: Any,
    explanation: Any,
    unet: UNet2DConditionModel,
    latents: torch.Tensor,
    t: torch.Tensor,
    embeds: torch.Tensor,
    condition: torch.Tensor,
) -> Verdict:
    """A fresh ControlNet's largest residual (0), the largest gradients of its zero convolutions (not 0, as the
    library's) and of its copied encoder (0); an explanation of why it starts from zero."""

    def test(measured: Any) -> None:
        expect_numbers(measured, ZERO_START_KEYS, "zero_start")
        expect(
            measured["residual"] == 0,
            f"zero_start['residual'] is {measured['residual']}: measure a fresh "
            "ControlNetModel.from_unet(pipe.unet), not the trained ControlNet",
        )
        want = zero_start_measurement(unet, latents, t, embeds, condition)
        expect(
            measured["zero_convolutions"] != 0,
            "zero_start['zero_convolutions'] is 0: read the gradients of the weights of "
            "controlnet_down_blocks and controlnet_mid_block (the zero convolutions), "
            "after backward() on the sum of all the residuals",
        )
        expect(
            measured["encoder"] == 0,
            f"zero_start['encoder'] is {measured['encoder']}: read the gradients of the copied "
            "encoder (conv_in, down_blocks, mid_block); were the keys swapped?",
        )
        got, expected = measured["zero_convolutions"], want["zero_convolutions"]
        expect(
            abs(got - expected) <= GRADIENT_TOLERANCE * expected,
            f"zero_start['zero_convolutions'] is {got:.6g}, expected {expected:.6g}: the largest "
            "gradient magnitude of a fresh float32 ControlNet, on the inputs of the residuals "
            "cell, with the loss sum(r.sum() for r in [*down, mid])",
        )

    return run_open_question("ex-09-zero-start", zero_start, explanation, test)
