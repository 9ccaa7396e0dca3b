"""Chapter 10's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from helpers.checks import ExerciseFailed
from helpers.checks.ch10 import (
    check_lora_numbers,
    check_lora_output,
    check_which_method,
)


def lora_output(layer: torch.nn.Module, x: torch.Tensor, adapter: str) -> torch.Tensor:
    a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    return layer.base_layer(x) + layer.scaling[adapter] * (x @ a.T) @ b.T


def lora_numbers(unet: torch.nn.Module, rank: int, targets: tuple[str, ...]) -> int:
    return sum(
        rank * (m.in_features + m.out_features)
        for name, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and name.endswith(targets)
    )


def test_not_done_prints(expect_not_done: Callable[..., None]) -> None:
    expect_not_done(
        check_lora_output(...), check_lora_numbers(...), check_which_method(...)
    )


def test_lora_output() -> None:
    assert check_lora_output(lora_output)
    with pytest.raises(ExerciseFailed, match="frozen layer alone"):
        check_lora_output(lambda layer, x, adapter: layer.base_layer(x))
    with pytest.raises(ExerciseFailed, match="scaled"):  # forgets alpha / r
        check_lora_output(
            lambda layer, x, adapter: (
                layer.base_layer(x)
                + x @ layer.lora_A[adapter].weight.T @ layer.lora_B[adapter].weight.T
            )
        )
    with pytest.raises(ExerciseFailed, match="bias"):
        check_lora_output(
            lambda layer, x, adapter: (
                lora_output(layer, x, adapter) - layer.base_layer.bias
            )
        )
    with pytest.raises(ExerciseFailed, match="function"):
        check_lora_output(3)


def test_lora_numbers() -> None:
    assert check_lora_numbers(lora_numbers)
    with pytest.raises(
        ExerciseFailed, match="expected"
    ):  # the full update's size, in x out
        check_lora_numbers(
            lambda unet, rank, targets: sum(
                m.in_features * m.out_features
                for name, m in unet.named_modules()
                if isinstance(m, torch.nn.Linear) and name.endswith(targets)
            )
        )
    with pytest.raises(ExerciseFailed, match="expected"):  # counts A only
        check_lora_numbers(
            lambda unet, rank, targets: sum(
                rank * m.in_features
                for name, m in unet.named_modules()
                if isinstance(m, torch.nn.Linear) and name.endswith(targets)
            )
        )
    with pytest.raises(
        ExerciseFailed, match="expected"
    ):  # every linear layer, not only the targets
        check_lora_numbers(
            lambda unet, rank, targets: sum(
                rank * (m.in_features + m.out_features)
                for m in unet.modules()
                if isinstance(m, torch.nn.Linear)
            )
        )
    with pytest.raises(ExerciseFailed, match="an int"):
        check_lora_numbers(
            lambda unet, rank, targets: float(lora_numbers(unet, rank, targets))
        )


def test_which_method() -> None:
    assert check_which_method({"dog": "textual inversion", "comic": "LoRA"})
    assert check_which_method(
        {"dog": "LoRA", "comic": "lora"}
    )  # a LoRA catches the dog's details too
    with pytest.raises(ExerciseFailed, match="never drawn"):
        check_which_method({"dog": "textual inversion", "comic": "textual inversion"})
    with pytest.raises(ExerciseFailed, match="keys"):
        check_which_method({"dog": "LoRA"})
    with pytest.raises(ExerciseFailed, match="must be"):
        check_which_method({"dog": "DreamBooth", "comic": "LoRA"})
