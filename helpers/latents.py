"""Pictures to latents and back through the VAE, with SD's scaling factor applied where the library applies it.

The VAE's scale factor says how many pixels a latent covers per side; ``preprocess`` crops a picture to a multiple
of it and scales it to the [-1, 1] tensor the encoder reads.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image

from .images import ImageLike, expect_pixel_range, numpy_to_pil, to_pil


def vae_scale_factor(vae: torch.nn.Module) -> int:
    """How many pixels one latent pixel covers per side: ``2 ** (len(block_out_channels) - 1)`` (8 for SD)."""
    block_out_channels = getattr(
        getattr(vae, "config", None), "block_out_channels", None
    )
    if block_out_channels is None:
        raise TypeError(
            f"expected a VAE (such as AutoencoderKL) whose config has block_out_channels, "
            f"got {type(vae).__name__}"
        )
    return 2 ** (len(block_out_channels) - 1)


def preprocess(image: ImageLike, vae_or_factor: torch.nn.Module | int) -> torch.Tensor:
    """An image -> a float32 tensor (1, 3, H, W) in [-1, 1], cropped to a multiple of the VAE's scale factor.

    ``vae_or_factor`` is the VAE (its factor is derived from its config) or the factor itself.
    """
    factor = (
        vae_or_factor
        if isinstance(vae_or_factor, int)
        else vae_scale_factor(vae_or_factor)
    )
    if factor < 1:
        raise ValueError(f"the scale factor must be a positive integer, got {factor}")
    picture = to_pil(image)
    width, height = (side - side % factor for side in picture.size)
    if width == 0 or height == 0:
        raise ValueError(
            f"image of {picture.size[0]}x{picture.size[1]} is smaller than the scale factor {factor}"
        )
    cropped = picture.crop((0, 0, width, height))
    array = np.asarray(cropped, dtype=np.float32) / 127.5 - 1  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def expect_finite(values: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` if ``values`` hold NaN or infinity: decoded, they would make a black or white picture."""
    bad = ~torch.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{what} hold NaN or infinity ({int(bad.sum())} of {values.numel()} values): the denoising "
            "or the VAE overflowed (float16 on a CPU, or a guidance scale far too high); try float32"
        )


@torch.no_grad()
def encode_image(
    vae: AutoencoderKL,
    image: ImageLike | torch.Tensor,
    generator: torch.Generator | None = None,
    sample: bool = True,
) -> torch.Tensor:
    """A picture (or a (B, 3, H, W) tensor in [-1, 1]) -> latents (B, 4, H/8, W/8) times ``vae.config.scaling_factor``.

    ``sample=True`` draws from the latent distribution (as training does); ``False`` takes its mean.
    """
    pixels = image if isinstance(image, torch.Tensor) else preprocess(image, vae)
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(
            f"expected pixels shaped (B, 3, H, W), got {tuple(pixels.shape)}"
        )
    if not pixels.is_floating_point():
        raise TypeError(
            f"expected float pixels in [-1, 1], got a {pixels.dtype} tensor: preprocess() makes them"
        )
    expect_pixel_range(
        pixels,
        -1.0,
        1.0,
        "pixels for the VAE",
        "preprocess() makes them; 0-255 values need / 127.5 - 1, [0, 1] values * 2 - 1",
    )
    factor = vae_scale_factor(vae)
    if pixels.shape[2] % factor or pixels.shape[3] % factor:
        raise ValueError(
            f"height and width must be multiples of the VAE's scale factor {factor}, got "
            f"{pixels.shape[2]}x{pixels.shape[3]}: preprocess() crops a picture to fit"
        )
    distribution = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    latents = distribution.sample(generator) if sample else distribution.mode()
    return latents * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor) -> list[Image.Image]:
    """Scaled latents (B, 4, h, w) -> PIL images: undo the scaling, then decode."""
    if not isinstance(latents, torch.Tensor):
        raise TypeError(f"expected a latents tensor, got {type(latents).__name__}")
    channels = vae.config.latent_channels
    if latents.ndim != 4 or latents.shape[1] != channels:
        shape = tuple(latents.shape)
        raise ValueError(f"expected latents shaped (B, {channels}, h, w), got {shape}")
    expect_finite(latents, "the latents")
    latents = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor
    pixels = vae.decode(latents).sample  # (B, 3, H, W) in [-1, 1]
    expect_finite(pixels, f"the VAE's output ({vae.dtype})")
    pixels = (pixels / 2 + 0.5).clamp(0, 1)
    return numpy_to_pil(pixels.float().cpu().permute(0, 2, 3, 1).numpy())
