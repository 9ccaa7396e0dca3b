"""Device, precision and measuring: pick_device, pick_dtype, measure."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import torch

from helpers import Measurement, measure, pick_device, pick_dtype
from helpers.device import native_bfloat16


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert pick_device() == expected


@pytest.mark.parametrize(
    ("device", "dtype"),
    [
        ("cuda", torch.float16),
        ("cuda:1", torch.float16),
        (torch.device("cuda"), torch.float16),
        ("cpu", torch.float32),
        ("mps", torch.float32),
    ],
)
def test_pick_dtype_is_half_on_cuda_only(device, dtype):
    assert pick_dtype(device) == dtype


@pytest.mark.parametrize("device", ["gpu", None])
def test_pick_dtype_rejects_what_is_not_a_device(device):
    with pytest.raises(ValueError, match="expected a device"):
        pick_dtype(device)


@pytest.mark.parametrize(
    ("capability", "native"),
    [((7, 5), False), ((7, 0), False), ((8, 0), True), ((9, 0), True)],
)
def test_native_bfloat16_needs_a_gpu_from_ampere_on(monkeypatch, capability, native):
    """A T4 (7.5) emulates bfloat16, slowly; an A100 (8.0) and later run it natively. CPUs have their own kernels."""
    monkeypatch.setattr(
        torch.cuda, "get_device_capability", lambda device=None: capability
    )
    assert native_bfloat16("cuda") is native
    assert native_bfloat16("cpu") is True


def test_measure_passes_the_result_on_and_measures_no_time():
    measurement = measure(lambda: "done")
    assert isinstance(measurement, Measurement)
    assert measurement.result == "done"
    assert not hasattr(measurement, "seconds")  # helpers.timing is the one timer
    with pytest.raises(dataclasses.FrozenInstanceError):
        measurement.peak_mb = 0


def test_measure_sees_cpu_memory_that_torch_allocates():
    def allocate() -> float:
        tensor = torch.ones(50_000_000)  # 200 MB
        time.sleep(0.05)  # the sampler looks every millisecond
        return tensor.sum().item()

    measurement = measure(allocate, device="cpu")
    assert measurement.memory_kind == "process RSS"
    assert measurement.result == 50_000_000
    assert 150 < measurement.peak_mb < 2000


def test_measure_rejects_what_it_cannot_call():
    with pytest.raises(TypeError, match="expected a function"):
        measure(torch.ones(3))


def test_measure_lets_errors_through_and_stops_sampling():
    def fail() -> None:
        raise KeyError("boom")

    threads = threading.active_count()
    with pytest.raises(KeyError, match="boom"):
        measure(fail)
    assert threading.active_count() == threads
