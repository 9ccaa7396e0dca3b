"""The shipped configs build on the meta device at their published sizes, and the hand-written rectified-flow step,
timestep shift and SDXL micro-conditioning equal the library's."""

from __future__ import annotations

import pytest
import torch

from helpers.architectures import (
    CONFIG_DIR,
    MODELS,
    PUBLISHED_SIZES,
    SCHEDULER,
    architecture_config,
    build_on_meta,
    build_scheduler,
    flow_match_step,
    hub_repository,
    library_time_ids,
    parts,
    published_size_agrees,
    shift_sigmas,
    sources,
)
from helpers.memory import parameter_count


@pytest.fixture(scope="module")
def counts() -> dict[tuple[str, str], int]:
    return {
        (model, part): parameter_count(build_on_meta(model, part))
        for model in MODELS
        for part in parts(model)
    }


def test_every_part_builds_on_meta_without_storage() -> None:
    for model in MODELS:
        for part in parts(model):
            module = build_on_meta(model, part)
            assert all(p.is_meta for p in module.parameters()), (model, part)


def test_published_sizes_agree(counts: dict[tuple[str, str], int]) -> None:
    for name, size in PUBLISHED_SIZES.items():
        assert published_size_agrees(size, counts), (
            name,
            sum(counts[part] for part in size.parts),
        )


def test_sizes_that_do_not_agree_are_caught(counts: dict[tuple[str, str], int]) -> None:
    size = PUBLISHED_SIZES["SDXL UNet"]
    assert not published_size_agrees(
        size, {**counts, ("sdxl", "unet"): counts["sd15", "unet"]}
    )


def test_every_config_names_its_source() -> None:
    listed = {
        (model, part)
        for model, entry in sources().items()
        if not model.startswith("_")
        for part in entry["parts"]
    }
    shipped = {(path.parent.name, path.stem) for path in CONFIG_DIR.glob("*/*.json")}
    assert listed == shipped
    assert all("/" in hub_repository(model) for model in MODELS)


def test_unknown_names_say_what_exists() -> None:
    with pytest.raises(ValueError, match="sdxl"):
        architecture_config("sd4", "unet")
    with pytest.raises(ValueError, match="transformer"):
        architecture_config("flux", "unet")
    assert architecture_config("sdxl", "unet", sample_size=64)["sample_size"] == 64


@pytest.mark.parametrize("model", ["sd3", "flux"])
def test_flow_match_step_equals_the_library(model: str) -> None:
    scheduler = build_scheduler(model)
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    hand = library = torch.randn(2, 16, 8, 8, generator=generator)
    for i, t in enumerate(scheduler.timesteps):
        velocity = torch.randn(hand.shape, generator=generator)
        hand = flow_match_step(
            velocity, scheduler.sigmas[i], scheduler.sigmas[i + 1], hand
        )
        library = scheduler.step(velocity, t, library).prev_sample
        assert torch.allclose(hand, library, atol=1e-6)


def test_flow_match_step_keeps_the_models_dtype() -> None:
    scheduler = build_scheduler("sd3")
    scheduler.set_timesteps(4)
    latents = torch.randn(1, 16, 4, 4).to(torch.bfloat16)
    velocity = torch.randn(1, 16, 4, 4).to(torch.bfloat16)
    hand = flow_match_step(velocity, scheduler.sigmas[0], scheduler.sigmas[1], latents)
    library = scheduler.step(velocity, scheduler.timesteps[0], latents).prev_sample
    assert hand.dtype == library.dtype == torch.bfloat16 and torch.equal(hand, library)


def test_one_step_with_the_true_velocity_lands_on_the_data() -> None:
    generator = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 1, 16, 4, 4, generator=generator)
    assert torch.allclose(flow_match_step(noise - x0, 1.0, 0.0, noise), x0, atol=1e-6)


def test_shift_equals_the_schedulers_sigmas() -> None:
    scheduler = build_scheduler("sd3")
    scheduler.set_timesteps(28)
    plain = torch.linspace(1.0, scheduler.sigma_min, 28)
    assert torch.allclose(
        shift_sigmas(plain, scheduler.config.shift), scheduler.sigmas[:-1], atol=1e-6
    )


def test_sdxl_time_ids() -> None:
    assert torch.equal(
        library_time_ids("sdxl", (768, 1024), (0, 64), (1024, 1024)),
        torch.tensor([[768.0, 1024.0, 0.0, 64.0, 1024.0, 1024.0]]),
    )
    assert torch.equal(
        library_time_ids("sdxl_refiner", (1024, 1024), (0, 0), aesthetic_score=6.0),
        torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 6.0]]),
    )


def test_schedulers_are_real() -> None:
    assert build_scheduler("sd2").config.prediction_type == "v_prediction"
    assert type(build_scheduler("sd3")).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert SCHEDULER not in parts("sdxl")
