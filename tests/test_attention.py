"""The cross-attention recorder: it leaves the UNet's noise prediction unchanged and records the probabilities used."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from diffusers import UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from helpers import ModelChoice, load_component
from helpers.attention import (
    AttentionStore,
    attention_probabilities,
    layer_grid,
    record_cross_attention,
    show_token_maps,
    token_maps,
)
from helpers.pipeline import encode_prompt


def small_unet() -> UNet2DConditionModel:
    """A random-weight UNet of SD's block types: cross-attention at 8x8 on the way down and up."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=16,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8,
        norm_num_groups=8,
    ).eval()


@pytest.fixture(scope="module")
def tiny(tiny_choice: ModelChoice) -> tuple[UNet2DConditionModel, torch.Tensor]:
    """tiny-shapes-sd's UNet, and the text embeddings of ``""`` and of a prompt (B = 2, as guidance sends them)."""
    tokenizer = load_component(CLIPTokenizer, "tokenizer", tiny_choice)
    text_encoder = load_component(CLIPTextModel, "text_encoder", tiny_choice)
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        tokenizer, text_encoder, "a red circle on a blue background"
    )
    unet = load_component(UNet2DConditionModel, "unet", tiny_choice).eval()
    return unet, torch.cat([negative_prompt_embeds, prompt_embeds])


def unet_inputs(
    unet: UNet2DConditionModel, embeds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents (B, 4, h, w) at the UNet's native size, a timestep and the text embeddings (B, 77, d)."""
    generator = torch.Generator().manual_seed(1)
    size = unet.config.sample_size
    latents = torch.randn(
        len(embeds), unet.config.in_channels, size, size, generator=generator
    )
    return latents, torch.tensor(500), embeds


def assert_prediction_unchanged(
    unet: UNet2DConditionModel, embeds: torch.Tensor
) -> AttentionStore:
    """Same noise prediction with and without the recorder; the original processors are back afterwards."""
    inputs = unet_inputs(unet, embeds)
    original = unet.attn_processors
    with torch.no_grad():
        expected = unet(*inputs).sample
        with record_cross_attention(unet) as store:
            recorded = unet(*inputs).sample
        after = unet(*inputs).sample
    assert torch.allclose(recorded, expected)
    assert torch.equal(
        recorded, expected
    )  # the wrapped processor computes the output: not even rounding differs
    assert torch.equal(after, expected)
    assert all(
        unet.attn_processors[name] is processor for name, processor in original.items()
    )
    return store


def test_small_random_unet_prediction_unchanged() -> None:
    unet = small_unet()
    store = assert_prediction_unchanged(
        unet, torch.randn(2, 77, unet.config.cross_attention_dim)
    )
    cross = [
        name.removesuffix(".processor")
        for name in unet.attn_processors
        if name.endswith("attn2.processor")
    ]
    assert sorted(store.layers()) == sorted(
        cross
    )  # every cross-attention layer, and no self-attention layer
    assert set(store.counts.values()) == {1}


def test_tiny_model_prediction_unchanged(
    tiny: tuple[UNet2DConditionModel, torch.Tensor],
) -> None:
    unet, embeds = tiny
    store = assert_prediction_unchanged(unet, embeds)
    assert all(".attn2" in name for name in store.layers()) and store.layers()
    for name in (
        store.layers()
    ):  # probabilities: each picture position spreads a total of 1 over the 77 tokens
        assert torch.allclose(store.mean(name).sum(dim=-1), torch.ones(1), atol=1e-5)


def test_recorded_probabilities_are_the_ones_that_weigh_the_values() -> None:
    """softmax(Q K^T / sqrt(d)) @ V, projected out, gives the layer's own output."""
    unet = small_unet()
    attn = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    pictures = torch.randn(2, 64, attn.to_q.in_features)  # (B, h*w, C)
    text = torch.randn(2, 77, attn.to_k.in_features)  # (B, 77, d)
    with torch.no_grad():
        probs = attention_probabilities(attn, pictures, text)  # (B * heads, h*w, 77)
        values = attn.head_to_batch_dim(attn.to_v(text))
        rebuilt = attn.to_out[0](attn.batch_to_head_dim(torch.bmm(probs, values)))
        output = attn(pictures, encoder_hidden_states=text)
    assert probs.shape == (2 * attn.heads, 64, 77)
    assert torch.allclose(rebuilt, output, atol=1e-6)


def test_processors_restored_after_an_error() -> None:
    unet = small_unet()
    original = unet.attn_processors
    with pytest.raises(RuntimeError), record_cross_attention(unet):
        raise RuntimeError("interrupted")
    assert all(
        unet.attn_processors[name] is processor for name, processor in original.items()
    )


def test_inactive_store_records_nothing() -> None:
    unet = small_unet()
    store = AttentionStore()
    store.active = False
    with torch.no_grad(), record_cross_attention(unet, store):
        unet(*unet_inputs(unet, torch.randn(1, 77, 16)))
    assert store.layers() == []


def test_token_maps_cover_the_picture(
    tiny: tuple[UNet2DConditionModel, torch.Tensor],
) -> None:
    unet, embeds = tiny
    with torch.no_grad(), record_cross_attention(unet) as store:
        unet(*unet_inputs(unet, embeds))
    maps = token_maps(store, 40, 40, prefix="up_blocks")
    assert maps.shape == (77, 40, 40)
    # bilinear upsampling and the mean over layers keep the probabilities of each pixel summing to one
    assert torch.allclose(maps.sum(dim=0), torch.ones(40, 40), atol=1e-4)
    with pytest.raises(ValueError, match="no recorded layer"):
        token_maps(store, 40, 40, prefix="nowhere")


def test_layer_grid() -> None:
    assert layer_grid(64, 64, 64) == (8, 8)
    assert layer_grid(32, 64, 128) == (4, 8)
    with pytest.raises(ValueError):
        layer_grid(30, 64, 64)  # 5 x 6 positions, but not the picture's square shape


def test_show_token_maps_titles_one_panel_per_token() -> None:
    assert (
        show_token_maps(
            Image.new("RGB", (16, 16)),
            torch.rand(9, 16, 16),
            [f"t{i}" for i in range(9)],
            title="maps",
            max_cols=4,
        )
        is None
    )  # displayed, not returned
    figure = plt.gcf()
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["picture"] + [f"t{i}" for i in range(9)]
    assert (
        len(figure.axes) == 12 and figure._suptitle.get_text() == "maps"
    )  # 10 panels on a 3 x 4 grid
    plt.close(figure)
