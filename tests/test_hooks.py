"""Forward hooks for as long as a block runs: forward_hooks."""

from __future__ import annotations

import pytest
import torch

from helpers.hooks import forward_hooks


def test_forward_hooks_see_each_output_inside_the_block_only():
    layers = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2))
    shapes = []
    hooks = {layer: lambda m, args, out: shapes.append(out.shape) for layer in layers}
    with forward_hooks(hooks):
        layers(torch.ones(4, 3))
    assert shapes == [(4, 5), (4, 2)]
    layers(torch.ones(4, 3))
    assert len(shapes) == 2  # removed on leaving the block


def test_forward_hooks_are_removed_when_the_block_fails():
    layer = torch.nn.Linear(3, 5)
    calls = []
    with (
        pytest.raises(RuntimeError),
        forward_hooks({layer: lambda *_: calls.append(1)}),
    ):
        layer(torch.ones(2, 4))  # wrong width: fails before the hook runs
    layer(torch.ones(2, 3))
    assert calls == [] and not layer._forward_hooks
