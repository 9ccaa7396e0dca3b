"""Which model the course runs (resolve_model) and loading it through the real from_pretrained."""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer

import helpers.models
from helpers.latents import vae_scale_factor
from helpers.models import (
    REAL_MODEL_ID,
    TINY_MODEL_DIR,
    HubCheck,
    ModelChoice,
    hub_variant,
    load_clip,
    load_component,
    load_pipeline,
    resolve_model,
)


def no_hub(*args, **kwargs):
    raise AssertionError(
        "resolve_model asked the model hub, but only a CUDA machine may"
    )


@pytest.fixture
def cpu_machine(monkeypatch, model_dir: Path) -> None:
    """A machine without CUDA and without SD_BOOK_MODEL, where any question to the hub fails the test."""
    monkeypatch.delenv("SD_BOOK_MODEL", raising=False)
    monkeypatch.setattr(helpers.models, "pick_device", lambda: "cpu")
    monkeypatch.setattr(helpers.models, "hub_reachable", no_hub)
    monkeypatch.setattr(helpers.models, "TINY_MODEL_DIR", model_dir)


def test_without_cuda_the_choice_is_tiny_shapes_sd_in_float32(
    cpu_machine, model_dir, capsys
):
    choice = resolve_model()
    assert choice == ModelChoice(str(model_dir), "cpu", torch.float32, choice.reason)
    assert choice.is_tiny and choice.is_local and choice.name == "tiny-shapes-sd"
    assert "no CUDA GPU" in choice.reason
    assert capsys.readouterr().out == f"{choice}\n"
    assert str(choice).startswith("Model: tiny-shapes-sd on cpu, float32 (no CUDA GPU")


def test_resolve_model_prints_nothing_when_told(cpu_machine, capsys):
    resolve_model(verbose=False)
    assert capsys.readouterr().out == ""


def test_sd_book_model_overrides_the_choice_with_a_folder(
    cpu_machine, monkeypatch, model_dir
):
    monkeypatch.setenv("SD_BOOK_MODEL", str(model_dir))
    choice = resolve_model(verbose=False)
    assert choice.model == str(model_dir) and choice.reason == "set by SD_BOOK_MODEL"


def test_sd_book_model_takes_a_hub_id(cpu_machine, monkeypatch):
    monkeypatch.setenv("SD_BOOK_MODEL", "someone/their-stable-diffusion")
    choice = resolve_model(verbose=False)
    assert choice.model == choice.name == "someone/their-stable-diffusion"
    assert not choice.is_local and not choice.is_tiny


def test_sd_book_model_pointing_at_a_non_pipeline_folder_says_so(
    cpu_machine, monkeypatch, tmp_path
):
    monkeypatch.setenv("SD_BOOK_MODEL", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"model_index\.json"):
        resolve_model()


def test_on_cuda_with_the_hub_the_real_model_runs_in_float16(cpu_machine, monkeypatch):
    monkeypatch.setattr(helpers.models, "pick_device", lambda: "cuda")
    monkeypatch.setattr(
        helpers.models,
        "hub_reachable",
        lambda: HubCheck(True, "the model hub answered"),
    )
    choice = resolve_model(verbose=False)
    assert (choice.model, choice.device, choice.dtype) == (
        REAL_MODEL_ID,
        "cuda",
        torch.float16,
    )
    assert choice.reason == "CUDA GPU and the model hub are available"


def test_on_cuda_without_the_hub_the_fallback_is_loud_and_says_how_to_force_the_real_model(
    cpu_machine, monkeypatch, model_dir
):
    detail = "the model hub is slow or rate-limited (HTTP 429), after 3 tries"
    monkeypatch.setattr(helpers.models, "pick_device", lambda: "cuda")
    monkeypatch.setattr(
        helpers.models, "hub_reachable", lambda: HubCheck(False, detail)
    )
    with pytest.warns(UserWarning, match="NOT Stable Diffusion v1.5") as warned:
        choice = resolve_model(verbose=False)
    assert (choice.model, choice.device, choice.dtype) == (
        str(model_dir),
        "cuda",
        torch.float32,
    )
    assert detail in choice.reason
    message = str(warned[0].message)
    assert (
        detail in message
        and f'os.environ["SD_BOOK_MODEL"] = "{REAL_MODEL_ID}"' in message
    )


class FakeHub:
    """An opener that answers from a script (an exception to raise, or None for an answer) and records its calls."""

    def __init__(self, *script: BaseException | None) -> None:
        self.script, self.timeouts, self.sleeps = list(script), [], []

    def __call__(self, url: str, timeout: float) -> None:
        self.timeouts.append(timeout)
        outcome = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if outcome is not None:
            raise outcome

    def check(self, **kwargs) -> HubCheck:
        return helpers.models.hub_reachable(
            opener=self, sleep=self.sleeps.append, **kwargs
        )


def http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("https://huggingface.co", code, "status", None, None)


@pytest.fixture
def online(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_hub_reachable_is_false_offline_without_asking(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = FakeHub(AssertionError("asked the hub although HF_HUB_OFFLINE is set"))
    assert hub.check() == HubCheck(False, "HF_HUB_OFFLINE is set") and not hub.check()


def test_hub_reachable_retries_an_unreachable_hub_with_backoff(online):
    hub = FakeHub(urllib.error.URLError("connection refused"))
    check = hub.check()
    assert (
        not check
        and check.detail
        == "the model hub is unreachable (connection refused), after 3 tries"
    )
    assert hub.sleeps == [1.0, 2.0] and hub.timeouts == [4.0, 8.0, 16.0]


@pytest.mark.parametrize(
    ("failure", "detail"),
    [
        (http_error(429), "slow or rate-limited (HTTP 429)"),
        (http_error(503), "slow or rate-limited (HTTP 503)"),
        (TimeoutError("timed out"), "slow (no answer within 16 s"),
        (urllib.error.URLError(TimeoutError("timed out")), "slow (timed out)"),
    ],
)
def test_hub_reachable_tells_a_slow_or_rate_limited_hub_from_an_unreachable_one(
    online, failure, detail
):
    check = FakeHub(failure).check()
    assert (
        not check
        and f"the model hub is {detail}" in check.detail
        and "unreachable" not in check.detail
    )


def test_hub_reachable_gets_through_after_a_rate_limit(online):
    hub = FakeHub(http_error(429), None)
    assert hub.check() == HubCheck(True, "the model hub answered") and hub.sleeps == [
        1.0
    ]


def test_hub_reachable_counts_any_other_answer_as_reachable(online):
    assert FakeHub(http_error(404)).check() == HubCheck(
        True, "the model hub answered (HTTP 404)"
    )


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
    assert all(
        torch.equal(a, b)
        for a, b in zip(unet.parameters(), tiny_pipe.unet.parameters())
    )
    assert isinstance(
        load_component(AutoencoderKL, "vae", choice=tiny_choice), AutoencoderKL
    )
    tokenizer = load_component(CLIPTokenizer, "tokenizer", choice=tiny_choice)
    assert (
        tokenizer("a red circle").input_ids
        == tiny_pipe.tokenizer("a red circle").input_ids
    )
    scheduler = load_component(PNDMScheduler, "scheduler", choice=tiny_choice)
    assert (
        scheduler.config.beta_schedule == "scaled_linear"
        and scheduler.config.steps_offset == 1
    )


def test_load_component_names_a_missing_part(tiny_choice):
    with pytest.raises(
        FileNotFoundError,
        match="has no no_such_part/ folder: the part 'no_such_part', is missing "
        r"\(its parts: clip, scheduler, text_encoder",
    ):
        load_component(AutoencoderKL, "no_such_part", choice=tiny_choice)


def test_load_clip_shares_the_text_tower_with_the_pipeline(tiny_choice, tiny_pipe):
    model, processor = load_clip(tiny_choice)
    assert (
        isinstance(model, CLIPModel)
        and isinstance(processor, CLIPProcessor)
        and not model.training
    )
    for name, weight in tiny_pipe.text_encoder.state_dict().items():
        assert torch.equal(model.text_model.state_dict()[name], weight), name
    inputs = processor(
        text=[
            "a red circle on a blue background",
            "a green star on a white background",
        ],
        images=Image.new("RGB", (64, 64), "blue"),
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        assert model(**inputs).logits_per_image.shape == (1, 2)


def test_the_model_names_and_the_shipped_folder():
    assert (
        REAL_MODEL_ID == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    )  # the runwayml repository is gone
    assert helpers.models.REAL_CLIP_ID == "openai/clip-vit-large-patch14"
    assert Path(helpers.__file__).parent / "tiny_shapes_sd" == helpers.TINY_MODEL_DIR
    assert all(hasattr(helpers, name) for name in helpers.__all__)


def tiny_copy(folder: Path, without: str = "", renamed: str = "") -> Path:
    """tiny-shapes-sd in ``folder`` (its parts linked, not copied), less the part ``without``, and with the weights of
    the part ``renamed`` saved under other key names, as a checkpoint of another layout would be."""
    folder.mkdir()
    for part in TINY_MODEL_DIR.iterdir():
        if part.name == renamed:
            (folder / part.name).mkdir()
            for file in part.iterdir():
                if file.suffix == ".safetensors":
                    save_file(
                        {f"renamed.{key}": w for key, w in load_file(file).items()},
                        folder / part.name / file.name,
                    )
                else:
                    shutil.copy(file, folder / part.name / file.name)
        elif part.name != without:
            (folder / part.name).symlink_to(part)
    return folder


def test_sd_book_model_that_reads_as_a_path_but_is_missing_is_a_missing_folder(
    cpu_machine, monkeypatch, tmp_path
):
    for value in (
        str(tmp_path / "no" / "such" / "model"),
        "./no-such-model",
        "~/no-such-model",
    ):
        monkeypatch.setenv("SD_BOOK_MODEL", value)
        with pytest.raises(
            FileNotFoundError,
            match=f"^SD_BOOK_MODEL={value} is taken as a local folder .*, but there "
            "is no folder there. Fix the path, or unset SD_BOOK_MODEL",
        ):
            resolve_model()  # and cpu_machine fails the test if it asks the hub


def test_a_folder_without_a_part_names_the_part_before_the_choice_is_printed(
    cpu_machine, monkeypatch, tmp_path, capsys
):
    folder = tiny_copy(tmp_path / "model", without="unet")
    monkeypatch.setenv("SD_BOOK_MODEL", str(folder))
    with pytest.raises(
        FileNotFoundError,
        match=f"^SD_BOOK_MODEL={folder} has no unet/ folder: the UNet, which "
        r"predicts the noise, is missing \(its parts: clip, scheduler",
    ):
        resolve_model()
    assert (
        capsys.readouterr().out == ""
    )  # no "Model: tiny-shapes-sd" line above the error
    with pytest.raises(FileNotFoundError, match="has no unet/ folder: the UNet"):
        load_pipeline(
            choice=ModelChoice(str(folder), "cpu", torch.float32, "the tests' choice")
        )


def test_offline_a_hub_id_says_the_hub_is_unreachable_and_how_to_run_tiny_shapes_sd(
    cpu_machine, monkeypatch
):
    model = "someone/their-stable-diffusion"
    monkeypatch.setenv("SD_BOOK_MODEL", model)
    monkeypatch.setattr(
        helpers.models,
        "hub_reachable",
        lambda: HubCheck(
            False, "the model hub is unreachable (no network), after 3 tries"
        ),
    )
    choice = resolve_model(verbose=False)

    def expected(repo: str) -> str:
        return (
            f"SD_BOOK_MODEL={model} is taken as a hub id and needs {repo} from the model hub, but the model hub is "
            "unreachable (no network), after 3 tries, and it is not in the local cache. To run offline with "
            f'tiny-shapes-sd instead, unset SD_BOOK_MODEL on a CPU, or set SD_BOOK_MODEL="{TINY_MODEL_DIR}".'
        )

    for load, repo in (
        (lambda: load_pipeline(choice=choice), model),
        (lambda: load_component(UNet2DConditionModel, "unet", choice), model),
        (lambda: load_clip(choice), helpers.REAL_CLIP_ID),
    ):
        with pytest.raises(OSError) as raised:
            load()
        assert str(raised.value) == expected(repo)


def test_load_clip_on_a_folder_without_clip_fails_at_once_without_the_network(
    cpu_machine, tmp_path
):
    folder = tiny_copy(tmp_path / "model", without="clip")
    choice = ModelChoice(str(folder), "cpu", torch.float32, "set by SD_BOOK_MODEL")
    with pytest.raises(
        FileNotFoundError,
        match=f"^SD_BOOK_MODEL={folder} has no clip/ folder: the full CLIP "
        r"\(text and vision towers\) that load_clip\(\) loads, is missing",
    ):
        load_clip(
            choice
        )  # cpu_machine fails the test if it asks the hub; no_network if it connects


@pytest.mark.parametrize("part", ["unet", "vae", "text_encoder"])
def test_a_checkpoint_whose_keys_do_not_match_stops_every_loader(tmp_path, part):
    choice = ModelChoice(
        str(tiny_copy(tmp_path / "model", renamed=part)),
        "cpu",
        torch.float32,
        "the tests' choice",
    )
    message = r"from .* does not match its checkpoint \(missing keys: .*unexpected keys: renamed\..*those weights would stay random"
    with pytest.raises(RuntimeError, match=message):
        load_pipeline(choice=choice)
    if part == "text_encoder":
        with pytest.raises(RuntimeError, match=message):
            load_clip(choice)


def test_a_model_loaded_in_another_dtype_than_asked_for_stops(tiny_choice):
    class IgnoresDtype(UNet2DConditionModel):
        """What diffusers < 0.40 did: no dtype= argument, so the weights stay in float32."""

        @classmethod
        def from_pretrained(cls, *args, dtype=None, **kwargs):
            return super().from_pretrained(*args, **kwargs)

    half = ModelChoice(tiny_choice.model, "cpu", torch.float16, "the tests' choice")
    with pytest.raises(
        RuntimeError,
        match=r"IgnoresDtype from .*/unet loaded in \['torch.float32'\], not the "
        "torch.float16 asked for",
    ):
        load_component(IgnoresDtype, "unet", half)


def test_only_a_hub_model_in_float16_loads_the_fp16_variant(tiny_choice, monkeypatch):
    hub = ModelChoice(REAL_MODEL_ID, "cuda", torch.float16, "the tests' choice")
    assert hub_variant(hub) == {"variant": "fp16"}
    assert hub_variant(ModelChoice(REAL_MODEL_ID, "cpu", torch.float32, "")) == {}
    assert hub_variant(ModelChoice(tiny_choice.model, "cuda", torch.float16, "")) == {}
    asked = {}

    class Recorder(UNet2DConditionModel):
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            asked.update(kwargs)
            raise LookupError("recorded")

    monkeypatch.setattr(helpers.models, "require_hub", lambda *args: None)
    with pytest.raises(LookupError):
        load_component(Recorder, "unet", hub)
    assert (
        asked["variant"] == "fp16"
        and asked["dtype"] == torch.float16
        and asked["local_files_only"] is False
    )
