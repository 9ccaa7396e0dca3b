"""Half precision on the CPU: the GPU world's dtype (float16) through the four verbs, the VAE, img2img and the checks.

A GPU runs the course in float16; mixing a float16 model with float32 tensors fails there, not on a float32 CPU run.
Where this CPU has float16 kernels (recent PyTorch has them for everything tiny-shapes-sd uses), these tests run the
same paths in float16, so such a mix fails here too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from reference_runs import img2img_library_and_ours

from helpers import (
    ModelChoice,
    decode_latents,
    encode_image,
    load_pipeline,
    load_sample_image,
)
from helpers.checks.ch01 import check_add_noise
from helpers.checks.ch02 import check_kl
from helpers.compare import max_pixel_diff
from helpers.pipeline import encode_prompt, generate

PROMPT = "a red circle on a blue background"
STEPS = 6
HALF = torch.float16
# float16 keeps about three digits: the same sums in another order (ours against the library's) move a pixel by a
# few of its 255 levels after a dozen steps (up to 5 seen, in img2img), where float32 agrees within 1. A mixed dtype
# fails outright instead.
HALF_PIXEL_TOLERANCE = 6


@pytest.fixture(scope="module")
def half_pipe(tiny_choice: ModelChoice) -> StableDiffusionPipeline:
    """tiny-shapes-sd loaded in float16 on the CPU (load_pipeline refuses a model that comes back in float32)."""
    try:
        torch.nn.functional.conv2d(
            torch.ones(1, 1, 3, 3, dtype=HALF), torch.ones(1, 1, 1, 1, dtype=HALF)
        )
        torch.nn.functional.group_norm(torch.ones(1, 2, 3, 3, dtype=HALF), 1)
    except RuntimeError as error:  # "... not implemented for 'Half'": an older PyTorch
        pytest.skip(f"this CPU's PyTorch has no float16 kernels: {error}")
    pipe = load_pipeline(
        choice=ModelChoice(tiny_choice.model, "cpu", HALF, "the tests' choice")
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_every_part_loads_in_float16(half_pipe):
    for part in (half_pipe.vae, half_pipe.text_encoder, half_pipe.unet):
        assert {p.dtype for p in part.parameters()} == {HALF}


def test_the_five_verbs_stay_in_float16(half_pipe):
    prompt_embeds, negative_embeds = encode_prompt(
        half_pipe.tokenizer, half_pipe.text_encoder, PROMPT
    )
    assert prompt_embeds.dtype == negative_embeds.dtype == HALF
    outputs = []  # each denoising step's output: the last one's latents are what the VAE decodes
    (picture,) = generate(
        half_pipe,
        PROMPT,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
        callback=lambda i, t, output: outputs.append(output),
        progress=False,
    )  # make_latents draws in the embeddings' dtype, then denoise and decode_latents
    latents = outputs[-1].prev_sample
    assert latents.dtype == HALF and torch.isfinite(latents).all()
    side = half_pipe.unet.config.sample_size
    assert picture.size == (8 * side, 8 * side) and np.asarray(picture).std() > 0


def test_generate_in_float16_matches_the_library_and_float32(half_pipe, tiny_pipe):
    def ours_from_seed_1(pipe: StableDiffusionPipeline) -> list:
        return generate(
            pipe,
            PROMPT,
            num_inference_steps=STEPS,
            generator=torch.Generator().manual_seed(1),
            progress=False,
        )

    ours, in_float32 = ours_from_seed_1(half_pipe), ours_from_seed_1(tiny_pipe)
    library = half_pipe(
        PROMPT, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(1)
    ).images
    assert max_pixel_diff(ours, library) <= HALF_PIXEL_TOLERANCE
    gap = np.abs(
        np.asarray(ours[0], np.float32) - np.asarray(in_float32[0], np.float32)
    ).mean()
    assert gap < 4, (
        f"float16 and float32 pictures differ by {gap:.1f} of 255 on average"
    )


def test_encode_and_decode_take_any_dtype_to_the_vaes(half_pipe):
    picture = load_sample_image(PROMPT)
    latents = encode_image(
        half_pipe.vae, picture, sample=False
    )  # float32 pixels in, float16 latents out
    assert latents.dtype == HALF and torch.isfinite(latents).all()
    (from_half,) = decode_latents(half_pipe.vae, latents)
    (from_float32,) = decode_latents(
        half_pipe.vae, latents.float()
    )  # cast to the VAE's dtype on the way in
    assert max_pixel_diff([from_half], [from_float32]) == 0


def test_img2img_in_float16_matches_the_library(half_pipe):
    expected, ours = img2img_library_and_ours(
        half_pipe, load_sample_image(PROMPT), PROMPT, 0.6, STEPS
    )
    assert max_pixel_diff(ours, expected) <= HALF_PIXEL_TOLERANCE


def test_the_checks_that_take_model_tensors_accept_float16(half_pipe):
    """check_kl on a float16 posterior; check_add_noise with the float16 pipeline's scheduler."""
    pixels = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        posterior = half_pipe.vae.encode(pixels.to(HALF)).latent_dist
    mean, logvar = posterior.mean.float(), posterior.logvar.float()
    assert check_kl(
        0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)), posterior
    )

    def add_noise_by_hand(latents, noise, timesteps, alphas_cumprod):
        alpha_prod_t = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        return alpha_prod_t.sqrt() * latents + (1 - alpha_prod_t).sqrt() * noise

    assert check_add_noise(add_noise_by_hand, half_pipe.scheduler)
