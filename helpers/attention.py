"""Where each word of the prompt looks: the UNet's cross-attention probabilities, recorded without changing its output.

``record_cross_attention(unet)`` swaps a recording processor into every cross-attention layer (``attn2``) through
diffusers' own ``set_attn_processor`` and puts the original processors back afterwards; diffusers is not edited.
Each recorder lets the processor it wraps compute the layer's output, untouched, and computes the attention
probabilities beside it, step for step as diffusers' ``AttnProcessor`` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from PIL import Image

from .images import grid_shape


class AttentionStore:
    """Cross-attention probabilities per layer, averaged over heads and summed over the calls made while ``active``."""

    def __init__(self) -> None:
        self.active = True
        self.sums: dict[str, torch.Tensor] = {}  # layer name -> (B, h*w, tokens)
        self.counts: dict[str, int] = {}

    def add(self, name: str, attention_probs: torch.Tensor, heads: int) -> None:
        """Add one call's probabilities (B * heads, h*w, tokens), averaged over the heads."""
        if not self.active:
            return
        batch_heads, pixels, tokens = attention_probs.shape
        mean = (
            attention_probs.float()
            .view(batch_heads // heads, heads, pixels, tokens)
            .mean(dim=1)
        )
        self.sums[name] = self.sums[name] + mean if name in self.sums else mean
        self.counts[name] = self.counts.get(name, 0) + 1

    def mean(self, name: str) -> torch.Tensor:
        """The average over the recorded calls of layer ``name``: (B, h*w, tokens)."""
        return self.sums[name] / self.counts[name]

    def layers(self, prefix: str = "") -> list[str]:
        """Names of the recorded layers that start with ``prefix`` (e.g. ``"up_blocks"``)."""
        return [name for name in self.sums if name.startswith(prefix)]


class CrossAttentionRecorder:
    """An attention processor that records ``softmax(Q K^T / sqrt(d))`` and leaves the output to ``processor``."""

    def __init__(self, processor: object, store: AttentionStore, name: str) -> None:
        self.processor, self.store, self.name = processor, store, name

    def __call__(
        self, attn: Attention, hidden_states: torch.Tensor, **inputs: object
    ) -> torch.Tensor:
        """Called as diffusers calls a processor: ``(attn, hidden_states, encoder_hidden_states=...,
        attention_mask=...)``; ``inputs`` go unchanged to both the recording and ``processor``."""
        if self.store.active:
            probs = attention_probabilities(attn, hidden_states, **inputs)
            self.store.add(self.name, probs.detach(), attn.heads)
        return self.processor(attn, hidden_states, **inputs)


def attention_probabilities(
    attn: Attention,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    temb: torch.Tensor | None = None,
) -> torch.Tensor:
    """The probabilities (B * heads, h*w, tokens) that weigh the values of ``attn``, made as ``AttnProcessor`` does."""
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    if hidden_states.ndim == 4:  # (B, C, h, w) -> (B, h*w, C)
        hidden_states = hidden_states.flatten(2).transpose(1, 2)
    context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    batch_size, sequence_length, _ = context.shape
    attention_mask = attn.prepare_attention_mask(
        attention_mask, sequence_length, batch_size
    )
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    if encoder_hidden_states is not None and attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    query = attn.head_to_batch_dim(
        attn.to_q(hidden_states)
    )  # (B * heads, h*w, head_dim)
    key = attn.head_to_batch_dim(attn.to_k(context))  # (B * heads, tokens, head_dim)
    if (
        attn.norm_q is not None
    ):  # AttnProcessor2_0 normalises per head; the norm acts on the last axis alone
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return attn.get_attention_scores(query, key, attention_mask)


def is_cross_attention(name: str) -> bool:
    """True for a processor name of a cross-attention layer, e.g. ``down_blocks.0.attentions.0....attn2.processor``."""
    return name.endswith("attn2.processor")


@contextmanager
def record_cross_attention(
    unet: UNet2DConditionModel, store: AttentionStore | None = None
) -> Iterator[AttentionStore]:
    """Within the block, every cross-attention layer of ``unet`` records into the yielded store."""
    store = store if store is not None else AttentionStore()
    original = unet.attn_processors
    recording = {
        name: CrossAttentionRecorder(processor, store, name.removesuffix(".processor"))
        if is_cross_attention(name)
        else processor
        for name, processor in original.items()
    }
    unet.set_attn_processor(
        dict(recording)
    )  # set_attn_processor empties the dict it is given
    try:
        yield store
    finally:
        unet.set_attn_processor(dict(original))


def layer_grid(pixels: int, height: int, width: int) -> tuple[int, int]:
    """The (h, w) grid of a layer with ``pixels`` positions, for a picture of ``height`` x ``width``."""
    step = round(
        math.sqrt(height * width / pixels)
    )  # picture pixels per layer position, per side
    h, w = height // max(step, 1), width // max(step, 1)
    if h * w != pixels or h * step != height or w * step != width:
        raise ValueError(f"{pixels} positions do not tile a {height}x{width} picture")
    return h, w


def token_maps(
    store: AttentionStore, height: int, width: int, prefix: str = "", sample: int = -1
) -> torch.Tensor:
    """Each token's attention over the picture: (tokens, height, width), the mean of the layers named ``prefix*``.

    Every layer's map is upsampled (bilinearly) to the picture's size before the layers are averaged. ``sample``
    picks the batch entry; with classifier-free guidance the last one is the last prompt's conditional half.
    """
    names = store.layers(prefix)
    if not names:
        raise ValueError(
            f"no recorded layer starts with {prefix!r}; recorded: {store.layers()}"
        )
    maps = []
    for name in names:
        probs = store.mean(name)[sample]  # (h*w, tokens)
        h, w = layer_grid(probs.shape[0], height, width)
        grid = probs.T.reshape(1, -1, h, w)  # (1, tokens, h, w)
        maps.append(
            F.interpolate(
                grid, size=(height, width), mode="bilinear", align_corners=False
            )[0]
        )
    return torch.stack(maps).mean(dim=0).cpu()


def show_token_maps(
    image: Image.Image,
    maps: torch.Tensor,
    titles: Sequence[str],
    title: str | None = None,
    max_cols: int = 8,
    size: float = 2.2,
) -> None:
    """The picture, then one panel per map (tokens, H, W) over a grey copy of it, each stretched to its own range;
    displayed at once, like ``show_images``."""
    rows, cols = grid_shape(
        len(titles) + 1, rows=math.ceil((len(titles) + 1) / max_cols)
    )
    figure, axes = plt.subplots(
        rows, cols, figsize=(size * cols, (size + 0.3) * rows + 0.4), squeeze=False
    )
    panels = axes.flat
    first = next(panels)
    first.imshow(image)
    first.set_title("picture", fontsize=9)
    grey = np.asarray(image.convert("L"))
    for ax, token_map, panel_title in zip(panels, maps, titles):
        stretched = (token_map - token_map.min()) / (
            token_map.max() - token_map.min()
        ).clamp_min(1e-12)
        ax.imshow(grey, cmap="gray", vmin=0, vmax=255)
        ax.imshow(np.asarray(stretched), cmap="jet", alpha=0.55, vmin=0, vmax=1)
        ax.set_title(panel_title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    plt.show()
