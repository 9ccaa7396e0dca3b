"""Checks for chapter 10, "Teach it a new word: textual inversion and LoRA"."""

from __future__ import annotations

import copy
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from peft import LoraConfig, inject_adapter_in_model

from ..adapters import LORA_TARGETS, count_parameters, lora_parameters
from ..models import TINY_MODEL_DIR
from . import (
    Verdict,
    expect,
    expect_keys,
    expect_tensor,
    run_check,
    run_function_check,
)

ADAPTER = "mine"  # the adapter's name in the checks' layer: not peft's "default", so the name must be used


def lora_layer(rank: int = 4, alpha: int = 8, seed: int = 0) -> torch.nn.Module:
    """A peft ``lora.Linear`` (12 -> 10, with a bias) whose B is not zero, so its update shows."""
    torch.manual_seed(seed)
    model = torch.nn.ModuleDict({"proj": torch.nn.Linear(12, 10)})
    model = inject_adapter_in_model(
        LoraConfig(r=rank, lora_alpha=alpha, target_modules=["proj"]),
        model,
        adapter_name=ADAPTER,
    )
    layer = model["proj"]
    torch.nn.init.normal_(layer.lora_B[ADAPTER].weight)  # peft starts B at zero
    return layer


def check_lora_output(lora_output: Any) -> Verdict:
    """A function (layer, x, adapter) -> the output of a peft LoRA layer, computed from its matrices."""

    def test(fn: Any) -> None:
        layer = lora_layer()
        x = torch.randn(3, 5, 12)  # (batch, tokens, in)
        with torch.no_grad():
            got, want = fn(layer, x, ADAPTER), layer(x)
            base = layer.base_layer(x)
        expect_tensor(got, want.shape)
        update = want - base  # scale * B A x
        scale = layer.scaling[ADAPTER]
        expect(
            not torch.allclose(got, base, atol=1e-5),
            "that is the frozen layer alone: add the LoRA update scale * B A x",
        )
        expect(
            not torch.allclose(got, base + update / scale, atol=1e-5),
            f"the update must be scaled by layer.scaling[adapter] (alpha / r, here {scale})",
        )
        expect(
            not torch.allclose(got, want - layer.base_layer.bias, atol=1e-5),
            "the frozen layer's bias is missing: W x + b, then the update",
        )
        expect(
            torch.allclose(got, want, atol=1e-5),
            f"largest difference from peft's layer {(got - want).abs().max():.3g}: expected "
            "W x + b + scale * B (A x), with A = lora_A[adapter].weight (r, in) and B = lora_B[adapter].weight "
            "(out, r)",
        )

    return run_function_check(
        "ex-10-lora-output", lora_output, test, "a function of (layer, x, adapter)"
    )


def tiny_unet() -> UNet2DConditionModel:
    """A UNet of tiny-shapes-sd's design with random weights: the LoRA count depends only on its shapes."""
    torch.manual_seed(0)
    return UNet2DConditionModel.from_config(
        UNet2DConditionModel.load_config(TINY_MODEL_DIR / "unet")
    )


def peft_lora_numbers(
    unet: torch.nn.Module, rank: int, targets: tuple[str, ...]
) -> int:
    """The trainable numbers ``add_adapter`` adds to a copy of ``unet``."""
    adapted = copy.deepcopy(unet)
    adapted.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets))
    )
    return count_parameters(lora_parameters(adapted))


def check_lora_numbers(lora_numbers: Any) -> Verdict:
    """A function (unet, rank, targets) -> the numbers a LoRA of that rank on those layers adds."""

    def test(fn: Any) -> None:
        unet = tiny_unet()
        for rank, targets in [
            (8, LORA_TARGETS),
            (4, LORA_TARGETS),
            (2, ("to_k", "to_v")),
        ]:
            got, want = fn(unet, rank, targets), peft_lora_numbers(unet, rank, targets)
            expect(
                isinstance(got, int) and not isinstance(got, bool),
                f"expected an int, got {got!r}",
            )
            expect(
                got == want,
                f"rank {rank} on {targets}: expected {want:,} numbers, got {got:,}; each adapted "
                "layer adds A (r, in) and B (out, r)",
            )
        expect(
            not lora_parameters(unet),
            "the function must count, not add an adapter to the UNet it is given",
        )

    return run_function_check(
        "ex-10-lora-count", lora_numbers, test, "a function of (unet, rank, targets)"
    )


METHODS = ("textual inversion", "lora")


def check_which_method(choices: Any) -> Verdict:
    """A dict {"dog": method, "comic": method}, each method "textual inversion" or "LoRA"."""

    def test(answer: Any) -> None:
        expect_keys(answer, ("dog", "comic"))
        picked = {job: str(method).strip().lower() for job, method in answer.items()}
        expect(
            all(method in METHODS for method in picked.values()),
            f'each method must be "textual inversion" or "LoRA", got {answer!r}',
        )
        expect(
            picked["comic"] == "lora",
            "a style the UNet has never drawn is a new drawing, like the heart for tiny-shapes-sd: a new "
            "embedding can only steer drawings the frozen UNet can already make",
        )

    return run_check("ex-10-which-method", choices, test)
