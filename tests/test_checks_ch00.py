"""The chapter 0 checks pass the reference solutions, fail plausible wrong answers and say NOT DONE to `...`."""

import pytest
import torch
from PIL import Image

from helpers import image_grid
from helpers.checks import ExerciseFailed
from helpers.checks.ch00 import (
    check_prompt_rows,
    check_same_seed,
    check_unet_share,
    default_steps,
    native_size,
)
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


@pytest.mark.parametrize(
    "check", [check_same_seed, check_prompt_rows, check_unet_share]
)
def test_placeholder_is_not_done(pipe, check, capsys):
    assert check(..., pipe).passed is False
    assert "NOT DONE" in capsys.readouterr().out
