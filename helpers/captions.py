"""Captions as the UNet reads them: token ids padded to 77, then the text encoder's ``last_hidden_state``.

Training (``helpers.tiny.train``), textual inversion and LoRA (``helpers.adapters``) and the chapters' checks share
these two steps, which SD's pipeline runs inside ``encode_prompt``.
"""

from __future__ import annotations

import torch
from transformers import CLIPTextModel, CLIPTokenizer


def tokenize(
    tokenizer: CLIPTokenizer,
    captions: str | list[str],
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Captions -> token ids (B, 77), padded to the tokenizer's length as SD's pipeline pads them."""
    tokens = tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return tokens.input_ids.to(device)


def caption_embeddings(
    text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer, captions: list[str]
) -> torch.Tensor:
    """Captions -> the text encoder's ``last_hidden_state`` (B, 77, d), which the UNet attends to. Gradients flow
    when the caller allows them: textual inversion trains through it."""
    return text_encoder(
        tokenize(tokenizer, captions, text_encoder.device)
    ).last_hidden_state
