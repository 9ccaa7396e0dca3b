"""helpers.adapters: the hand-written LoRA layer equals peft's, textual inversion trains one row only, and each
saved file, loaded into a fresh pipeline, draws the same pictures."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from helpers import ModelChoice, load_pipeline, shapes
from helpers.adapters import (
    LORA_TARGETS,
    ConceptData,
    add_token,
    concept_scenes,
    fit,
    lora_forward,
    lora_parameters,
    save_embedding,
    train_only_rows,
)
from helpers.checks.ch10 import ADAPTER, lora_layer
from helpers.compare import max_pixel_diff
from helpers.pipeline import generate

PROMPTS = ["a <sun> on a blue background", "a sun on a blue background"]


def frozen_pipeline(choice: ModelChoice) -> StableDiffusionPipeline:
    pipe = load_pipeline(choice=choice)
    pipe.set_progress_bar_config(disable=True)
    for part in (pipe.unet, pipe.text_encoder, pipe.vae):
        part.requires_grad_(False)
    return pipe


def sun_data(pipe: StableDiffusionPipeline) -> ConceptData:
    """Four yellow circles, called "<sun>" in the captions."""
    return ConceptData(
        pipe.vae,
        concept_scenes("circle", "yellow", 4, seed=0),
        seed=0,
        size=shapes.IMAGE_SIZE,
        rename={"yellow circle": "<sun>"},
    )


def draw(pipe: StableDiffusionPipeline) -> list:
    return generate(
        pipe,
        PROMPTS,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )


@pytest.mark.parametrize("rank, alpha", [(4, 8), (2, 2)])
def test_lora_forward_equals_peft(rank: int, alpha: int) -> None:
    layer = lora_layer(rank, alpha)
    x = torch.randn(2, 7, layer.in_features)
    with torch.no_grad():
        want = layer(x)
        got = lora_forward(
            x,
            layer.base_layer.weight,
            layer.base_layer.bias,
            layer.lora_A[ADAPTER].weight,
            layer.lora_B[ADAPTER].weight,
            layer.scaling[ADAPTER],
        )
    assert torch.allclose(got, want, atol=1e-6)


def test_concept_scenes_show_the_concept_on_other_backgrounds() -> None:
    scenes = concept_scenes("circle", "yellow", 40, seed=1)
    assert {(s.shape, s.color) for s in scenes} == {("circle", "yellow")}
    backgrounds = {s.background for s in scenes}
    assert backgrounds.isdisjoint({"yellow", "white"}) and len(backgrounds) >= 4


def test_concept_data_renames_the_concept(tiny_choice: ModelChoice) -> None:
    pipe = frozen_pipeline(tiny_choice)
    data = sun_data(pipe)
    latents, captions = data.batch(6, random.Random(0))
    assert latents.shape == (6, 4, 8, 8)
    assert all("<sun>" in c and "circle" not in c for c in captions)


def test_textual_inversion_trains_one_row_and_reloads(
    tiny_choice: ModelChoice, tmp_path: Path
) -> None:
    pipe = frozen_pipeline(tiny_choice)
    token_id = add_token(pipe.tokenizer, pipe.text_encoder, "<sun>", "circle")
    table = pipe.text_encoder.get_input_embeddings().weight
    before = table.detach().clone()
    hook = train_only_rows(table, [token_id])
    data = sun_data(pipe)
    losses, seconds = fit(pipe, data, [table], steps=3, lr=1e-2, batch_size=4, seed=0)
    hook.remove()
    assert len(losses) == len(seconds) == 3
    assert (table != before).any(dim=1).nonzero().flatten().tolist() == [token_id]

    path = save_embedding(tmp_path / "sun.safetensors", "<sun>", table[token_id])
    fresh = frozen_pipeline(tiny_choice)
    fresh.load_textual_inversion(path)
    assert torch.equal(
        fresh.text_encoder.get_input_embeddings().weight[-1], table[token_id]
    )
    assert max_pixel_diff(draw(pipe), draw(fresh)) == 0


def test_lora_saves_loads_and_fuses(tiny_choice: ModelChoice, tmp_path: Path) -> None:
    pipe = frozen_pipeline(tiny_choice)
    plain = draw(pipe)
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=list(LORA_TARGETS)),
        adapter_name="sun",
    )
    torch.manual_seed(0)
    for name, parameter in pipe.unet.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(
                parameter, std=0.05
            )  # B starts at zero: move it as training would
    adapted = draw(pipe)
    assert max_pixel_diff(adapted, plain) > 0
    state = convert_state_dict_to_diffusers(
        get_peft_model_state_dict(pipe.unet, adapter_name="sun")
    )
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=state)

    fresh = frozen_pipeline(tiny_choice)
    fresh.load_lora_weights(tmp_path, adapter_name="sun")
    assert max_pixel_diff(draw(fresh), adapted) == 0
    fresh.set_adapters(["sun"], adapter_weights=[0.0])
    assert max_pixel_diff(draw(fresh), plain) == 0
    fresh.set_adapters(["sun"], adapter_weights=[1.0])
    fresh.fuse_lora()
    fresh.unload_lora_weights()
    assert not lora_parameters(fresh.unet)
    assert max_pixel_diff(draw(fresh), adapted) <= 8
