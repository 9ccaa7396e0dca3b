"""The same starting noise on every call: seeded and draw."""

from __future__ import annotations

import numpy as np
import torch

from helpers.reproducible import draw, seeded


def test_seeded_gives_a_fresh_cpu_generator_each_call():
    first, again = (
        torch.randn(4, generator=seeded(3)),
        torch.randn(4, generator=seeded(3)),
    )
    assert torch.equal(first, again) and seeded().device.type == "cpu"
    assert not torch.equal(torch.randn(4, generator=seeded(0)), first)


def test_draw_repeats_its_picture_for_a_seed_and_passes_arguments_on(tiny_pipe):
    prompt = "a red circle on a blue background"
    (first,) = draw(tiny_pipe, prompt, seed=1, num_inference_steps=2)
    (again,) = draw(tiny_pipe, prompt, seed=1, num_inference_steps=2)
    (other,) = draw(tiny_pipe, prompt, seed=2, num_inference_steps=2)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    latents = draw(tiny_pipe, prompt, num_inference_steps=1, output_type="latent")
    assert isinstance(latents, torch.Tensor) and latents.ndim == 4
