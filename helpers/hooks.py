"""Forward hooks for as long as a block runs: read what a module outputs without editing its code.

Chapter 2 writes ``forward_hooks`` in its own cell, where it first reads the decoder's shapes; chapter 4 reads the
UNet's stages and skip connections with it, and a test keeps this copy identical to that cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


@contextmanager
def forward_hooks(hooks: dict[torch.nn.Module, Callable]) -> Iterator[None]:
    """Each module's hook, called as hook(module, args, output) after the module
    runs, for as long as the block runs; removed after it, even when it fails (a
    hook left behind would fire on every later call)."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
