"""NVML figures and the peaks a run records (cifartui.gpustats). No GPU here: a fake ``pynvml`` module
(tests/fake_nvml.py) stands in for the driver; without it, the absence of NVML is real or simulated."""

from __future__ import annotations

import sys

import pytest

from cifartui.gpustats import GpuPeakRecorder, Nvml
from cifartui.record.events import RunEnded, RunStarted

from fake_nvml import FakeGpu, fake_pynvml

OTHER = "GPU-0aa1b2c3-0000-0000-0000-0000000000ff"


def started(device="cuda:0", uuids=(FakeGpu().uuid,), pid=None) -> RunStarted:
    gpus = [{"index": i, "name": "NVIDIA H200", "uuid": u} for i, u in enumerate(uuids)]
    return RunStarted(run_id="r", name="r", device=device, num_classes=2, class_names=["a", "b"], epochs=1,
                      steps_per_epoch=1, train_size=1, val_size=1, test_size=1, pid=pid,
                      environment={"gpus": gpus} if device.startswith("cuda") else {})


@pytest.mark.parametrize("module", [None, fake_pynvml([FakeGpu()], driver=False)], ids=["no package", "no driver"])
def test_without_nvml_nothing_is_read_or_recorded(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert Nvml.open() is None
    recorder = GpuPeakRecorder(interval=3600)
    recorder(started())
    ended = RunEnded(status="completed")
    recorder(ended)
    assert ended.gpu_peak is None


def test_peaks_of_the_run_gpu_only(monkeypatch):
    mine, other = FakeGpu(util=40, temperature=55, power_w=200.0), FakeGpu(uuid=OTHER, util=100, temperature=90)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([other, mine]))
    recorder = GpuPeakRecorder(interval=3600)  # samples at the start, when asked and at the end: no timing
    recorder(started(uuids=[mine.uuid.upper()]))  # UUIDs compare without case
    mine.util, mine.temperature, mine.used_mb, mine.power_w = 90, 71, 30720.0, 410.0
    recorder.sample()
    mine.util, mine.temperature, mine.used_mb, mine.power_w = 20, 60, 20480.0, 180.0
    ended = RunEnded(status="completed")
    recorder(ended)
    (gpu,) = ended.gpu_peak["gpus"]
    assert gpu["index"] == 1 and gpu["uuid"] == mine.uuid and ended.gpu_peak["samples"] == 3
    assert (gpu["util_max"], gpu["util_mean"], gpu["temperature_max_c"], gpu["power_max_w"]) == (90, 50.0, 71, 410.0)
    assert (gpu["memory_used_max_mb"], gpu["memory_total_mb"]) == (30720.0, 81920.0)


def test_a_board_without_power_readings_still_records_the_rest(monkeypatch):
    gpu = FakeGpu(power_w=None)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([gpu]))
    recorder = GpuPeakRecorder(interval=3600)
    recorder(started())
    ended = RunEnded(status="completed")
    recorder(ended)
    (peak,) = ended.gpu_peak["gpus"]
    assert "power_max_w" not in peak and peak["util_max"] == gpu.util


def test_runs_without_recorded_uuids_are_found_by_pid(monkeypatch):
    gpus = [FakeGpu(uuid=OTHER, pids=[1]), FakeGpu(pids=[4242, 7])]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpus))
    nvml = Nvml.open()
    assert nvml.indices_for([], pid=4242, cuda=True) == [1]
    assert nvml.indices_for([], pid=99, cuda=True) == []  # two GPUs, none runs it: no guess


def test_a_cpu_run_never_opens_nvml(monkeypatch):
    module = fake_pynvml([FakeGpu()])
    monkeypatch.setitem(sys.modules, "pynvml", module)
    recorder = GpuPeakRecorder(interval=3600)
    recorder(started(device="cpu"))
    ended = RunEnded(status="completed")
    recorder(ended)
    assert module.init_calls == 0 and ended.gpu_peak is None


def test_the_peaks_reach_events_jsonl_when_the_recorder_is_the_first_sink(monkeypatch, tmp_path):
    """The recorder completes run_ended in place (its gpu_peak) before a later sink, here the store, writes it:
    the run_ended line on disk carries the peaks. This is why session.train puts the recorder before the store;
    that order itself is not checked here."""
    from cifartui.record.read_model import RunRecord
    from cifartui.record.store import RunStore

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([FakeGpu(util=77)]))
    store = RunStore.create(tmp_path, "gpu")
    sinks = [GpuPeakRecorder(interval=3600), store]
    for event in (started(), RunEnded(status="completed")):
        for sink in sinks:
            sink(event)
    store.close()
    assert RunRecord.read(store.path).ended.gpu_peak["gpus"][0]["util_max"] == 77
