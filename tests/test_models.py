"""Which model the course runs (resolve_model) and loading it through the real from_pretrained."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer

import helpers.models
from helpers import REAL_MODEL_ID, ModelChoice, load_clip, load_component, resolve_model, sd15_config, vae_scale_factor


def no_hub(*args, **kwargs):
    raise AssertionError("resolve_model asked the model hub, but only a CUDA machine may")


@pytest.fixture
def cpu_machine(monkeypatch, model_dir: Path) -> None:
    """A machine without CUDA and without SD_BOOK_MODEL, where any question to the hub fails the test."""
    monkeypatch.delenv("SD_BOOK_MODEL", raising=False)
    monkeypatch.setattr(helpers.models, "pick_device", lambda: "cpu")
    monkeypatch.setattr(helpers.models, "hub_reachable", no_hub)
    monkeypatch.setattr(helpers.models, "TINY_MODEL_DIR", model_dir)


def test_without_cuda_the_choice_is_tiny_shapes_sd_in_float32(cpu_machine, model_dir, capsys):
    choice = resolve_model()
    assert choice == ModelChoice(str(model_dir), "cpu", torch.float32, choice.reason)
    assert choice.is_tiny and choice.is_local and choice.name == "tiny-shapes-sd"
    assert "no CUDA GPU" in choice.reason
    assert capsys.readouterr().out == f"{choice}\n"
    assert str(choice).startswith("Model: tiny-shapes-sd on cpu, float32 (no CUDA GPU")


def test_resolve_model_prints_nothing_when_told(cpu_machine, capsys):
    resolve_model(verbose=False)
    assert capsys.readouterr().out == ""


def test_sd_book_model_overrides_the_choice_with_a_folder(cpu_machine, monkeypatch, model_dir):
    monkeypatch.setenv("SD_BOOK_MODEL", str(model_dir))
    choice = resolve_model(verbose=False)
    assert choice.model == str(model_dir) and choice.reason == "set by SD_BOOK_MODEL"


def test_sd_book_model_takes_a_hub_id(cpu_machine, monkeypatch):
    monkeypatch.setenv("SD_BOOK_MODEL", "someone/their-stable-diffusion")
    choice = resolve_model(verbose=False)
    assert choice.model == choice.name == "someone/their-stable-diffusion"
    assert not choice.is_local and not choice.is_tiny


def test_sd_book_model_pointing_at_a_non_pipeline_folder_says_so(cpu_machine, monkeypatch, tmp_path):
    monkeypatch.setenv("SD_BOOK_MODEL", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        resolve_model()


@pytest.mark.parametrize(
    ("reachable", "model", "dtype", "reason"),
    [(True, REAL_MODEL_ID, torch.float16, "CUDA GPU and the model hub are available"),
     (False, None, torch.float32, "the model hub is unreachable")],
)
def test_on_cuda_the_real_model_needs_the_hub(cpu_machine, monkeypatch, model_dir, reachable, model, dtype, reason):
    monkeypatch.setattr(helpers.models, "pick_device", lambda: "cuda")
    monkeypatch.setattr(helpers.models, "hub_reachable", lambda: reachable)
    choice = resolve_model(verbose=False)
    assert (choice.model, choice.device, choice.dtype) == (model or str(model_dir), "cuda", dtype)
    assert reason in choice.reason


def test_hub_reachable_is_false_offline_without_asking(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(helpers.models.urllib.request, "urlopen", no_hub)
    assert helpers.models.hub_reachable() is False


def test_hub_reachable_is_false_when_the_hub_does_not_answer(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("connection refused")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(helpers.models.urllib.request, "urlopen", refuse)
    assert helpers.models.hub_reachable() is False


def test_load_pipeline_gives_a_float32_pipeline_without_safety_checker(tiny_pipe):
    assert isinstance(tiny_pipe, StableDiffusionPipeline)
    assert tiny_pipe.safety_checker is None and tiny_pipe.feature_extractor is None
    for part in (tiny_pipe.vae, tiny_pipe.text_encoder, tiny_pipe.unet):
        assert {p.dtype for p in part.parameters()} == {torch.float32}
        assert part.device.type == "cpu"
    assert vae_scale_factor(tiny_pipe.vae) == 8
    assert len(tiny_pipe.tokenizer) == 49408


def test_load_component_loads_one_part(tiny_choice, tiny_pipe):
    unet = load_component(UNet2DConditionModel, "unet", choice=tiny_choice)
    assert all(torch.equal(a, b) for a, b in zip(unet.parameters(), tiny_pipe.unet.parameters()))
    assert isinstance(load_component(AutoencoderKL, "vae", choice=tiny_choice), AutoencoderKL)
    tokenizer = load_component(CLIPTokenizer, "tokenizer", choice=tiny_choice)
    assert tokenizer("a red circle").input_ids == tiny_pipe.tokenizer("a red circle").input_ids
    scheduler = load_component(PNDMScheduler, "scheduler", choice=tiny_choice)
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.steps_offset == 1


def test_load_component_names_a_missing_part(tiny_choice):
    with pytest.raises(ValueError, match="no part 'no_such_part': expected one of clip, scheduler, text_encoder"):
        load_component(AutoencoderKL, "no_such_part", choice=tiny_choice)


def test_load_clip_shares_the_text_tower_with_the_pipeline(tiny_choice, tiny_pipe):
    model, processor = load_clip(tiny_choice)
    assert isinstance(model, CLIPModel) and isinstance(processor, CLIPProcessor) and not model.training
    for name, weight in tiny_pipe.text_encoder.state_dict().items():
        assert torch.equal(model.text_model.state_dict()[name], weight), name
    inputs = processor(text=["a red circle on a blue background", "a green star on a white background"],
                       images=Image.new("RGB", (64, 64), "blue"), return_tensors="pt", padding=True)
    with torch.no_grad():
        assert model(**inputs).logits_per_image.shape == (1, 2)


def test_sd15_config_is_sd_v15s_own_with_overrides():
    unet = sd15_config("unet", layers_per_block=1)
    assert unet["block_out_channels"] == [320, 640, 1280, 1280] and unet["cross_attention_dim"] == 768
    assert unet["layers_per_block"] == 1
    assert sd15_config("vae")["scaling_factor"] == 0.18215
    assert sd15_config("text_encoder")["max_position_embeddings"] == 77
    with pytest.raises(ValueError, match="unknown part 'clip'"):
        sd15_config("clip")


def test_the_model_names_and_the_shipped_folder():
    assert REAL_MODEL_ID == "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the runwayml repository is gone
    assert helpers.models.REAL_CLIP_ID == "openai/clip-vit-large-patch14"
    assert helpers.TINY_MODEL_DIR == Path(helpers.__file__).parent / "tiny_shapes_sd"
    assert all(hasattr(helpers, name) for name in helpers.__all__)
