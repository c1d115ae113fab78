"""Devkit entry points without hardware: one-line errors, version/device checks, and the per-sample
loop's bookkeeping (unplug, resume) with the event-driven simulator standing in for the chip."""

import sys

import numpy as np
import pytest
import torch

from speck_mtt.errors import DeviceError
from speck_mtt.eventsim import build, compile_artifact, simulate
from speck_mtt.io import save_torch
from speck_mtt.models import build_model
from speck_mtt.speck import devkit
from speck_mtt.speck.chip_events import NEURON_VALUE, OUTPUT_SPIKE, chip_io
from speck_mtt.speck.layout import layout_model
from speck_mtt.speck.recording import load_chip_recording
from speck_mtt.speck.samna_guard import _Placeholder, real_samna_installed

EV = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])


def _samna_untouched():
    module = sys.modules.get("samna")
    return module is None or isinstance(module, _Placeholder)


@pytest.fixture(scope="module")
def nmnist_dir(tmp_path_factory):
    """A real speck2e deploy artifact of 3C1FC (what the CLI error test needs)."""
    path = tmp_path_factory.mktemp("deploy")
    save_torch(layout_model(build_model("nmnist_3c1fc"), "speck2e").artifact, path / "artifact.pt")
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A two-layer integer artifact on cores 4 and 7 whose output spikes a few dozen times per sample."""
    path = tmp_path_factory.mktemp("tiny")
    weight = torch.randint(-1, 4, (3, 4, 6, 6), generator=torch.Generator().manual_seed(0)).float()
    layers = build.chain([build.layer(torch.ones(4, 2, 3, 3), [2, 8, 8], 3, -4), build.layer(weight, [4, 6, 6], 40, -40)])
    layers[0]["core"], layers[1]["core"] = 4, 7
    save_torch({**build.artifact(layers, [2, 8, 8]), "target": "speck2e"}, path / "artifact.pt")
    return path


def _samples(n, seed=0, size=34):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 300
        ev = np.zeros(k, EV)
        ev["x"], ev["y"], ev["p"] = rng.integers(0, size, k), rng.integers(0, size, k), rng.integers(0, 2, k)
        ev["t"] = np.sort(rng.integers(5_000, 60_000, k))
        out.append((ev, i % 10))
    return out


@pytest.mark.skipif(real_samna_installed(), reason="the real samna is installed here")
@pytest.mark.parametrize("call", ["measure", "deploy"])
def test_without_samna_one_line_error_saying_what_to_install_and_connect(nmnist_dir, call):
    with pytest.raises(DeviceError) as info:
        if call == "measure":
            devkit.measure_on_devkit(nmnist_dir, _samples(1))
        else:
            devkit.deploy_to_devkit(nmnist_dir)
    message = str(info.value)
    assert "\n" not in message and "install the real samna" in message and "connect a Speck2e devkit" in message
    assert _samna_untouched()  # the PyPI stub was never imported


@pytest.mark.skipif(real_samna_installed(), reason="the real samna is installed here")
def test_cli_measure_speck2e_without_devkit_exits_2_with_one_line(nmnist_dir, monkeypatch, capsys):
    from speck_mtt.cli import main

    monkeypatch.setattr(sys, "argv", ["speck-mtt", "measure", str(nmnist_dir), "--backend", "speck2e",
                                      "--dataset", "nmnist-sim", "--data-dir", str(nmnist_dir / "data"), "--limit", "1"])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and "samna" in err[0]
    assert _samna_untouched()


def test_samna_version_problems():
    assert devkit.samna_version_problem("0.48.6", "0.48.6") is None
    assert devkit.samna_version_problem("0.39.11.0", None) is None
    assert "too old" in devkit.samna_version_problem("0.21.8", "0.21.8")
    assert "pip lists samna 0.40.0" in devkit.samna_version_problem("0.48.6", "0.40.0")
    assert "no __version__" in devkit.samna_version_problem(None, "0.48.6")


def test_device_index():
    assert devkit.device_index(None) == 0 and devkit.device_index("speck2edevkit") == 0
    assert devkit.device_index("speck2edevkit:2") == 2 and devkit.device_index("1") == 1
    with pytest.raises(DeviceError, match="speck2edevkit:N"):
        devkit.device_index("speck2fdevkit:0")
    with pytest.raises(DeviceError, match="speck2edevkit:N"):
        devkit.device_index("speck2edevkit:x")


class SimulatedChip:
    """Stands in for DevkitSession: answers each sample with the simulator's output spikes as the
    monitored core would send them, and 'unplugs' before the sample numbered unplug_at."""

    def __init__(self, artifact, unplug_at=None):
        self.net = compile_artifact(artifact)
        self.io = chip_io(artifact)
        self.unplug_at = unplug_at
        self.calls = 0
        self.closed = False
        self.device_id = "speck2edevkit:0"
        self.seen_rows = []

    def summary(self):
        return {"samna_version": "test"}

    def run(self, rows, quiet_s, timeout_s):
        if self.unplug_at is not None and self.calls == self.unplug_at:
            raise RuntimeError("libusb: no device")
        self.calls += 1
        self.seen_rows.append(rows)
        ev = np.zeros(len(rows), EV)
        ev["x"], ev["y"], ev["p"], ev["t"] = rows["x"], rows["y"], rows["feature"], rows["timestamp"]
        counts = simulate(self.net, ev).counts
        spikes = [(self.io.output_core, c, 0, 0, 100 + j) for c, n in enumerate(counts) for j in range(int(n))]
        return devkit.SampleOutput(np.array(spikes, OUTPUT_SPIKE), np.zeros(0, NEURON_VALUE), 0.01)

    def present(self):
        return self.unplug_at is None

    def close(self):
        self.closed = True


def test_unplug_keeps_what_was_recorded_and_resume_finishes(tiny_dir, tmp_path, monkeypatch):
    from speck_mtt.eventsim.network import load_artifact

    artifact = load_artifact(tiny_dir)
    samples = _samples(5, size=8)
    chip = SimulatedChip(artifact, unplug_at=2)
    monkeypatch.setattr(devkit, "_samna", lambda: None)
    monkeypatch.setattr(devkit, "open_session", lambda *a, **k: chip)
    record = tmp_path / "run.npz"
    with pytest.raises(DeviceError) as info:
        devkit.measure_on_devkit(tiny_dir, samples, record=record)
    message = str(info.value)
    assert "unplugged at sample 2" in message and "--resume" in message and "2 samples are saved" in message
    assert chip.closed and load_chip_recording(record).sample_ids.tolist() == [0, 1]

    with pytest.raises(Exception, match="--resume"):  # no silent overwrite of the partial run
        devkit.measure_on_devkit(tiny_dir, samples, record=record)
    chip2 = SimulatedChip(artifact)
    monkeypatch.setattr(devkit, "open_session", lambda *a, **k: chip2)
    rec = devkit.measure_on_devkit(tiny_dir, samples, record=record, resume=True)
    assert chip2.calls == 3 and rec.sample_ids.tolist() == [0, 1, 2, 3, 4]

    net = compile_artifact(artifact)
    expected = np.stack([simulate(net, ev).counts for ev, _ in samples])
    assert expected.sum() > 0
    assert np.array_equal(rec.counts, expected) and np.array_equal(load_chip_recording(record).counts, expected)
    assert rec.labels.tolist() == [label for _, label in samples]
    assert rec.predictions.tolist() == expected.argmax(1).tolist()
    assert rec.meta["backend"] == "speck2e" and rec.meta["layer"] == 1 and len(rec.meta["model_hash"]) == 16
    assert rec.extras["first_output_us"].min() >= -1 and rec.extras["n_input"].tolist() == [300] * 5
    first = chip2.seen_rows[0]
    assert first["timestamp"][0] == 0 and (first["layer"] == artifact["layers"][0]["core"]).all()


def test_hardware_wired_net_does_what_the_hardware_test_expects():
    """The one-event hardware test's expectations hold in the simulator (checked without a devkit)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "hardware_tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("hardware_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    artifact = layout_model(module.wired_nmnist(target_class=3), "speck2e").artifact
    for (x, y, p), expected in [((0, 0, 0), 1), ((9, 17, 1), 1), ((4, 4, 0), 0), ((33, 33, 1), 0)]:
        result = simulate(artifact, np.array([(x, y, p, 0)], EV))
        assert result.counts.tolist() == [0, 0, 0, expected] + [0] * 6
        assert result.layer_spikes[0] == 1


def _session(readout="spikes"):
    """A DevkitSession over plain objects that log the samna calls it receives (their order is SPEC §6)."""
    from types import SimpleNamespace

    log = []
    event_types = {}
    for name in ("Spike", "ReadNeuronValue", "NeuronValue"):
        event_types[name] = type(name, (), {"timestamp": 0})
    out_buffer = SimpleNamespace(get_events=list)
    in_buffer = SimpleNamespace(write=lambda evs: log.append(("write", [type(e).__name__ for e in evs])))
    watch = SimpleNamespace(reset=lambda: log.append(("watch reset",)), start=lambda: log.append(("watch start",)),
                            stop=lambda: log.append(("watch stop",)))
    model = SimpleNamespace(apply_configuration=lambda cfg: log.append(("apply", cfg)))
    handle = SimpleNamespace(get_stop_watch=lambda: watch, get_model=lambda: model)
    network = SimpleNamespace(samna_device=handle, samna_config="cfg", samna_output_buffer=out_buffer,
                              samna_input_buffer=in_buffer)
    builder = SimpleNamespace(reset_states=lambda cfg: log.append(("zero states", cfg)))
    samna = SimpleNamespace(speck2e=SimpleNamespace(event=SimpleNamespace(**event_types)))
    io = chip_io({**{"layers": [{"core": 2, "input_shape": [2, 4, 4], "output_shape": [3, 1, 1], "readout": readout,
                                 "threshold_high": 10.0, "destinations": []}]}, "input_shape": [2, 4, 4]})
    return devkit.DevkitSession(samna, "speck2edevkit:0", network, io, [2], 0.0, builder), log, event_types


def test_session_order_reset_flush_stopwatch_write_read():
    session, log, types = _session()
    spike = types["Spike"]()
    spike.layer, spike.feature, spike.x, spike.y, spike.timestamp = 2, 1, 0, 0, 7
    session.network.samna_output_buffer.get_events = iter([["old"], [spike], []]).__next__
    rows = np.array([(2, 1, 3, 0, 0), (2, 0, 1, 1, 500)], OUTPUT_SPIKE)
    out = session.run(rows, quiet_s=0.0, timeout_s=1.0)
    names = [entry[0] for entry in log]
    assert names == ["zero states", "apply", "watch reset", "watch start", "write", "watch stop"]
    assert log[4][1] == ["Spike", "Spike"]
    assert out.spikes.tolist() == [(2, 1, 0, 0, 7)]  # the flushed "old" event is not counted


def test_session_timeout_is_a_device_error():
    session, _, _ = _session()
    session.network.samna_output_buffer.get_events = lambda: ["busy"]
    with pytest.raises(DeviceError, match="still sent events"):
        session.run(np.zeros(0, OUTPUT_SPIKE), quiet_s=0.0, timeout_s=0.01)
