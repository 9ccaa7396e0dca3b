"""The chapter 0 checks pass the reference solutions, fail plausible wrong answers and say NOT DONE to `...`."""

import pytest
import torch
from PIL import Image

from helpers import image_grid
from helpers.checks import ExerciseFailed
from helpers.checks.ch00 import (
    DECODE_PROMPT,
    EXERCISE_STEPS,
    SEED_PROMPTS,
    check_decode_by_hand,
    check_prompt_rows,
    check_same_seed,
    check_seed_or_prompt,
    check_unet_share,
    default_steps,
    native_size,
)
from helpers.compare import mean_pixel_diff
from helpers.memory import parameter_count

PROMPTS = [
    "a red circle on a blue background",
    "a yellow star on a purple background",
    "a green triangle on a white background",
]


@pytest.fixture
def pipe(tiny_pipe):
    return tiny_pipe


def draw(pipe, seed, prompt, **kwargs):
    """Two denoising steps are enough to test the shapes and the seeding."""
    return pipe(
        prompt,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    ).images


def test_same_seed(pipe, capsys):
    assert check_same_seed(
        [draw(pipe, 7, PROMPTS[1])[0] for _ in range(2)], pipe, num_inference_steps=2
    )
    assert (
        capsys.readouterr().out == "[ex-00-same-seed] PASS\n"
    )  # the verdict alone: no progress bar
    with pytest.raises(ExerciseFailed, match="differ"):
        check_same_seed(
            [draw(pipe, 7, PROMPTS[1])[0], draw(pipe, 8, PROMPTS[1])[0]],
            pipe,
            num_inference_steps=2,
        )
    picture = draw(pipe, 7, PROMPTS[1])[0]
    with pytest.raises(ExerciseFailed, match="same object"):
        check_same_seed([picture, picture], pipe, num_inference_steps=2)
    with pytest.raises(ExerciseFailed, match="two pictures"):
        check_same_seed(picture, pipe, num_inference_steps=2)


@pytest.mark.parametrize("seed, prompt", [(8, PROMPTS[1]), (7, PROMPTS[0])])
def test_same_seed_wants_the_picture_of_the_prompt_from_seed_7(pipe, seed, prompt):
    """Any picture twice (``[img, img.copy()]``) once passed: the check now makes the picture itself."""
    picture = draw(pipe, seed, prompt)[0]
    with pytest.raises(
        ExerciseFailed,
        match="not the picture of 'a yellow star on a purple background'",
    ):
        check_same_seed([picture, picture.copy()], pipe, num_inference_steps=2)


def test_same_seed_takes_the_pipelines_default_steps(pipe):
    assert default_steps(pipe) == 50


def test_prompt_rows(pipe, capsys):
    pictures = draw(pipe, 3, PROMPTS, num_images_per_prompt=2)
    assert check_prompt_rows(image_grid(pictures, rows=3), pipe)
    assert "[ex-00-grid] PASS" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="rows=3"):
        check_prompt_rows(image_grid(pictures, rows=2), pipe)
    with pytest.raises(ExerciseFailed, match="PIL"):
        check_prompt_rows(pictures, pipe)


def test_prompt_rows_wants_six_pictures(pipe):
    """A blank picture of the right size once passed."""
    side = native_size(pipe)
    with pytest.raises(ExerciseFailed, match="one flat colour"):
        check_prompt_rows(Image.new("RGB", (2 * side, 3 * side), "white"), pipe)
    picture = draw(pipe, 3, PROMPTS[0])[0]
    with pytest.raises(
        ExerciseFailed, match="pictures 0 and 1 of the grid are the same picture"
    ):
        check_prompt_rows(image_grid([picture] * 6, rows=3), pipe)


def test_unet_share(pipe):
    total = sum(parameter_count(part) for part in pipe.components.values())
    assert check_unet_share(parameter_count(pipe.unet) / total, pipe)
    with pytest.raises(ExerciseFailed, match="percentage"):
        check_unet_share(100 * parameter_count(pipe.unet) / total, pipe)
    with pytest.raises(ExerciseFailed, match="every component"):
        check_unet_share(
            parameter_count(pipe.unet) / (total - parameter_count(pipe.vae)), pipe
        )


# ex-00-decode-by-hand ------------------------------------------------------------------------------------------


def decoded(pipe, scale: str = "divide", mapped: bool = True):
    """The exercise's latents decoded by hand; the flags make the mistakes a learner might make."""
    latents = pipe(
        DECODE_PROMPT,
        num_inference_steps=EXERCISE_STEPS,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).images  # (1, 4, h, w)
    factor = pipe.vae.config.scaling_factor
    latents = {"divide": latents / factor, "multiply": latents * factor}.get(
        scale, latents
    )
    with torch.no_grad():
        pixels = pipe.vae.decode(latents).sample[0]  # (3, H, W) in about [-1, 1]
    pixels = pixels / 2 + 0.5 if mapped else pixels
    pixels = pixels.clamp(0, 1)
    array = (pixels.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(array)


def test_decode_by_hand(pipe):
    assert check_decode_by_hand(decoded(pipe), pipe)
    for mistake in ({"scale": "none"}, {"scale": "multiply"}, {"mapped": False}):
        with pytest.raises(ExerciseFailed, match="differs from the pipeline's picture"):
            check_decode_by_hand(decoded(pipe, **mistake), pipe)
    with pytest.raises(ExerciseFailed, match="PIL image"):
        check_decode_by_hand(torch.zeros(3, 64, 64), pipe)


# ex-00-seed-or-prompt -------------------------------------------------------------------------------------------

EXPLANATION = (
    "The seed fixes the starting noise, and with it the layout: where things go and how big. The prompt "
    "steers each denoising step toward what it names. Another GPU, float16 or another scheduler changes "
    "the arithmetic of every step, so the same seed can end in another picture."
)


def seed_or_prompt(pipe) -> dict[str, float]:
    first, second = SEED_PROMPTS

    def picture(prompt, seed):
        return pipe(
            prompt,
            num_inference_steps=EXERCISE_STEPS,
            generator=torch.Generator().manual_seed(seed),
        ).images[0]

    start = picture(first, 0)
    return {
        "seed": mean_pixel_diff([start], [picture(first, 1)]),
        "prompt": mean_pixel_diff([start], [picture(second, 0)]),
    }


def test_seed_or_prompt(pipe):
    measured = seed_or_prompt(pipe)
    assert abs(measured["seed"] - measured["prompt"]) > 1, (
        "the two differences must differ for a swap to be caught"
    )
    assert check_seed_or_prompt(measured, EXPLANATION, pipe)
    wrong_answers = [
        ({"seed": measured["prompt"], "prompt": measured["seed"]}, EXPLANATION),
        ({"seed": 255.0, "prompt": 255.0}, EXPLANATION),  # the largest difference
        ({"seed": measured["seed"]}, EXPLANATION),  # one key
        (measured, "the seed"),  # no explanation
    ]
    for answer, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_seed_or_prompt(answer, explanation, pipe)


@pytest.mark.parametrize(
    "check",
    [
        check_same_seed,
        check_prompt_rows,
        check_unet_share,
        check_decode_by_hand,
        lambda answer, pipe: check_seed_or_prompt(answer, EXPLANATION, pipe),
        lambda answer, pipe: check_seed_or_prompt({"seed": 1.0}, answer, pipe),
    ],
)
def test_placeholder_is_not_done(pipe, check, capsys):
    assert check(..., pipe).passed is False
    assert "NOT DONE" in capsys.readouterr().out
