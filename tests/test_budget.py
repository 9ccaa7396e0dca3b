"""The GPU-world budget's tally (helpers/budget.py): what it counts, in which units, and for which model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from helpers import budget, decode_latents, load_component
from helpers.budget import Tally, t4_seconds


@pytest.fixture
def tally(monkeypatch, tiny_choice) -> Tally:
    """A running tally, with tiny_choice as the chapter's model."""
    monkeypatch.setattr(budget, "_tally", Tally())
    monkeypatch.setattr(budget, "_chapter_choice", tiny_choice)
    return budget._tally


def test_unet_calls_count_as_guided_calls_at_the_native_size(tally, tiny_choice):
    unet = load_component(UNet2DConditionModel, "unet", tiny_choice)
    side, width = unet.config.sample_size, unet.config.cross_attention_dim
    text = torch.zeros(2, 77, width)
    with torch.no_grad():
        unet(
            torch.zeros(2, 4, side, side), 500, encoder_hidden_states=text
        )  # one guided step: 1
        unet(
            torch.zeros(1, 4, side, side), 500, encoder_hidden_states=text[:1]
        )  # half of one
        unet(
            sample=torch.zeros(2, 4, 2 * side, 2 * side),
            timestep=500,
            encoder_hidden_states=text,
        )  # 4x the area
    assert tally.guided_calls == pytest.approx(5.5) and tally.part_loads == 1
    unet(
        torch.zeros(2, 4, side, side), 500, encoder_hidden_states=text
    )  # with gradients: forward and backward
    assert tally.guided_calls == pytest.approx(5.5 + budget.GRADIENT_FACTOR)


def test_decoded_pictures_count_at_the_native_picture_size(tally, tiny_choice):
    vae = load_component(AutoencoderKL, "vae", tiny_choice)
    native = vae.config.sample_size // 8
    decode_latents(vae, torch.zeros(3, 4, native, native))
    decode_latents(vae, torch.zeros(1, 4, 2 * native, native))
    assert tally.decoded_pictures == pytest.approx(5) and tally.guided_calls == 0


def test_parts_of_another_choice_are_not_the_chapters_model(tally, tiny_choice):
    """Chapter 7 trains on a tiny-shapes-sd that stays on the CPU in both worlds: its work is CPU time, not GPU time."""
    other = dataclasses.replace(tiny_choice, reason="training runs on tiny-shapes-sd")
    unet = load_component(UNet2DConditionModel, "unet", other)
    with torch.no_grad():
        unet(
            torch.zeros(2, 4, 8, 8),
            500,
            encoder_hidden_states=torch.zeros(2, 77, unet.config.cross_attention_dim),
        )
    assert tally.guided_calls == 0 and tally.part_loads == 0
    load_component(
        UNet2DConditionModel,
        "unet",
        dataclasses.replace(tiny_choice, dtype=torch.float16),
    )
    assert (
        tally.part_loads == 1
    )  # the chapter's model in another dtype (chapter 8) is still the chapter's


def test_without_a_tally_nothing_is_hooked(tiny_choice, monkeypatch):
    monkeypatch.setattr(budget, "_tally", None)
    unet = load_component(UNet2DConditionModel, "unet", tiny_choice)
    assert not unet._forward_pre_hooks and not unet._forward_hooks


def test_t4_seconds_adds_the_documented_rates():
    counts = {
        "guided_calls": 100,
        "decoded_pictures": 4,
        "part_loads": 3,
        "cpu_seconds_elsewhere": 10.0,
    }
    assert t4_seconds(counts) == pytest.approx(90 + 100 * 0.14 + 4 * 0.25 + 3 * 5 + 10)
