"""The sizes chapter 8 computes from configs: SD v1.5's parameter counts, and activation sizes checked against the
tensors a real forward pass of a small model of SD's layout makes."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor

from helpers.memory import (
    MIB,
    attention_heads,
    attention_scores_bytes,
    device_name,
    feed_forward_bytes,
    held_mb,
    release_freed_memory,
    vae_decoder_largest_bytes,
    weights_bytes,
)
from helpers.sd15 import sd15_config

TEXT_EMBEDDINGS = torch.randn(
    3, 77, 768
)  # what SD v1.5's text encoder gives a batch of 3


def test_attention_heads_reads_either_spelling() -> None:
    assert (
        attention_heads(sd15_config("unet")) == 8
    )  # SD v1 calls its 8 heads attention_head_dim
    assert attention_heads({"attention_head_dim": 8, "num_attention_heads": 4}) == 4
    assert (
        attention_heads({"attention_head_dim": [5, 10, 20, 20]}) == 5
    )  # SD v2 lists one per level


def test_sd15_sizes_at_512() -> None:
    assert (
        attention_scores_bytes(sd15_config("unet"), 64, batch=2) == 512 * MIB
    )  # 2 x 8 x 4096^2 x 2 bytes
    assert (
        vae_decoder_largest_bytes(sd15_config("vae"), 64, batch=1) == 128 * MIB
    )  # 256 x 512^2 x 2 bytes
    assert (
        feed_forward_bytes(sd15_config("unet"), 64, batch=2) == 40 * MIB
    )  # 2 x 4096 x 2560 x 2 bytes


def largest_outputs(model: torch.nn.Module, kind: type, run: callable) -> int:
    """The most elements of any output of a ``kind`` submodule while ``run()`` runs."""
    sizes = [0]
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out: sizes.append(
                out.numel() if isinstance(out, torch.Tensor) else 0
            )
        )
        for m in model.modules()
        if isinstance(m, kind)
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    return max(sizes)


def test_attention_scores_match_a_forward_pass(
    sd_unet: UNet2DConditionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the classic processor builds the score matrix; the shared UNet gets its default back
    sd_unet.set_attn_processor(AttnProcessor())
    sizes = []
    original = Attention.get_attention_scores

    def record(self: Attention, *args: object, **kwargs: object) -> torch.Tensor:
        scores = original(self, *args, **kwargs)
        sizes.append(scores.numel() * scores.element_size())
        return scores

    monkeypatch.setattr(Attention, "get_attention_scores", record)
    try:
        with torch.no_grad():
            sd_unet(
                torch.randn(3, 4, 16, 16), 10, encoder_hidden_states=TEXT_EMBEDDINGS
            )
    finally:
        sd_unet.set_default_attn_processor()
    assert max(sizes) == attention_scores_bytes(
        sd_unet.config, 16, batch=3, dtype=torch.float32
    )


def test_feed_forward_matches_a_forward_pass(sd_unet: UNet2DConditionModel) -> None:
    from diffusers.models.activations import GEGLU

    elements = largest_outputs(
        sd_unet,
        torch.nn.Linear,
        lambda: sd_unet(
            torch.randn(3, 4, 16, 16), 10, encoder_hidden_states=TEXT_EMBEDDINGS
        ),
    )
    assert any(isinstance(m, GEGLU) for m in sd_unet.modules())
    assert 4 * elements == feed_forward_bytes(
        sd_unet.config, 16, batch=3, dtype=torch.float32
    )


def test_vae_decoder_largest_matches_a_forward_pass(sd_vae: AutoencoderKL) -> None:
    elements = largest_outputs(
        sd_vae.decoder, torch.nn.Module, lambda: sd_vae.decode(torch.randn(2, 4, 8, 8))
    )
    assert 4 * elements == vae_decoder_largest_bytes(
        sd_vae.config, 8, batch=2, dtype=torch.float32
    )


def test_device_name_and_memory_helpers(sd_vae: AutoencoderKL) -> None:
    assert "CPU" in device_name(
        "cpu"
    ) and f"{torch.get_num_threads()} thread" in device_name("cpu")
    release_freed_memory("cpu")
    assert held_mb("cpu", sd_vae) == pytest.approx(weights_bytes(sd_vae) / MIB)
