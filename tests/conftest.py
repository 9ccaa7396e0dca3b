"""Fixtures shared by the tests: the one SD-sized pipeline with random weights (``helpers.sd15``) and its parts, the
shipped tiny-shapes-sd, a guard that fails any test reaching for the network, and the assertion that checks given
the ``...`` placeholder say NOT DONE."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import matplotlib
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel

from helpers import TINY_MODEL_DIR, ModelChoice, load_pipeline
from helpers.checks import Verdict
from helpers.sd15 import sd15_sized_pipeline

matplotlib.use("Agg")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection beyond this machine fails the test: the course must run offline (loopback stays open)."""
    connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise OSError(
                f"tests run offline, but something tried to connect to {address}"
            )
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The shipped tiny-shapes-sd pipeline folder."""
    assert (TINY_MODEL_DIR / "model_index.json").exists(), (
        f"tiny-shapes-sd is missing from {TINY_MODEL_DIR}: train it with `python -m helpers.tiny train`"
    )
    return TINY_MODEL_DIR


@pytest.fixture(scope="session")
def tiny_choice(model_dir: Path) -> ModelChoice:
    return ModelChoice(str(model_dir), "cpu", torch.float32, "the tests' choice")


@pytest.fixture(scope="session")
def sd15_pipe(tiny_choice: ModelChoice) -> StableDiffusionPipeline:
    """SD v1.5's interfaces with random weights and narrower layers: 768-d text over 77 tokens, 4 latent channels,
    a VAE scale factor of 8, 512x512 pictures. Tests must not change it (other tests share it)."""
    pipe = sd15_sized_pipeline(tiny_choice)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def sd_vae(sd15_pipe: StableDiffusionPipeline) -> AutoencoderKL:
    """SD v1.5's VAE layout (4 blocks, so a scale factor of 8; 4 latent channels; scaling_factor 0.18215)."""
    return sd15_pipe.vae


@pytest.fixture(scope="session")
def sd_unet(sd15_pipe: StableDiffusionPipeline) -> UNet2DConditionModel:
    """SD v1.5's UNet layout (cross_attention_dim 768, 4 latent channels), narrower, for cheap forward passes."""
    return sd15_pipe.unet


@pytest.fixture(scope="session")
def sd_text_encoder(sd15_pipe: StableDiffusionPipeline) -> CLIPTextModel:
    """SD v1.5's text encoder layout: CLIP, 768 wide, 77 positions."""
    return sd15_pipe.text_encoder


@pytest.fixture(scope="session")
def tiny_pipe(tiny_choice: ModelChoice) -> StableDiffusionPipeline:
    pipe = load_pipeline(choice=tiny_choice)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_unet(tiny_pipe: StableDiffusionPipeline) -> UNet2DConditionModel:
    """tiny-shapes-sd's UNet, the one in ``tiny_pipe``: tests must not change it."""
    return tiny_pipe.unet


@pytest.fixture
def expect_not_done(capsys: pytest.CaptureFixture[str]) -> Callable[..., None]:
    """``expect_not_done(check(...), ...)``: every check given the ``...`` placeholder failed and printed NOT DONE."""

    def expect(*verdicts: Verdict) -> None:
        assert [verdict.passed for verdict in verdicts] == [False] * len(verdicts)
        assert capsys.readouterr().out.count("NOT DONE") == len(verdicts)

    return expect
