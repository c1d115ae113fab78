"""The devkit path through sinabs' real DynapcnnNetwork.to() / make_config, with samna faked only at
its module boundary (tests/fake_samna.py): the configuration sinabs builds, the events written, the
device lifecycle, and how failures are reported."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
from speck_mtt.errors import DeviceError
from speck_mtt.eventsim import compile_artifact, simulate
from speck_mtt.eventsim.network import load_artifact
from speck_mtt.models import build_model
from speck_mtt.chip import devkit
from speck_mtt.chip.chip_events import neuron_addresses
from speck_mtt.chip.deploy import deploy
from speck_mtt.chip.layout import STATE_MAX
from speck_mtt.chip.recorder import load_chip_recording

sys.path.insert(0, str(Path(__file__).parent))
import fake_samna  # noqa: E402

EV = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])


def _deploy(root: Path, arch: str, floor: float | None = None, gain: float = 1.0, **kwargs) -> Path:
    """A speck2e deploy folder of a fresh `arch` whose weights are multiplied by `gain`."""
    checkpoint = root / "model.ckpt"
    model = build_model(arch, **kwargs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.mul_(gain)
    save_checkpoint(make_checkpoint(model, kwargs), checkpoint)
    deploy(checkpoint, "speck2e", root / "deploy", samples=0, floor=floor)
    return root / "deploy"


@pytest.fixture(scope="module")
def if_dir(tmp_path_factory):
    """3C1FC, IF-voting head: one monitored core."""
    return _deploy(tmp_path_factory.mktemp("if"), "nmnist_3c1fc")


@pytest.fixture(scope="module")
def membrane_dir(tmp_path_factory):
    """4C2FC (bias-free), membrane head behind a pooled (DVS-layer) input."""
    return _deploy(tmp_path_factory.mktemp("membrane"), "gesture_4c2fc", bn=False)


@pytest.fixture
def board():
    with fake_samna.installed(fake_samna.Board()) as b:
        yield b


def _quick(deploy_dir, samples, **kw):
    return devkit.measure_on_devkit(deploy_dir, samples, quiet_ms=1.0, timeout_s=1.0, reset_settle_s=0.0,
                                    record=kw.pop("record"), **kw)


def test_to_applies_the_artifact_as_sinabs_configures_it(board, if_dir):
    artifact = load_artifact(if_dir)
    cores = [layer["core"] for layer in artifact["layers"]]
    with devkit.open_session(if_dir) as session:
        assert session.network.samna_device is board.opened[0]
    config = board.applied[0]
    used = [i for i, layer in enumerate(config.cnn_layers) if layer.weights]
    assert used == sorted(cores)
    for i, layer in enumerate(artifact["layers"]):
        chip = config.cnn_layers[layer["core"]]
        assert chip.weights == layer["weight"].transpose(2, 3).int().tolist()  # samna holds (out, in, x, y)
        assert chip.threshold_high == int(layer["threshold_high"]) and chip.biases == [0] * len(chip.biases)
        enabled = [d.layer for d in chip.destinations if d.enable]
        assert enabled == [cores[d] for d in layer["destinations"]]
    assert [i for i, layer in enumerate(config.cnn_layers) if layer.monitor_enable] == [cores[-1]]
    assert config.dvs_layer.pass_sensor_events is False
    assert board.open_devices() == []  # closed on leaving the context


def test_membrane_head_monitors_the_feeding_core_and_pooled_input(board, membrane_dir):
    artifact = load_artifact(membrane_dir)
    cores = [layer["core"] for layer in artifact["layers"]]
    with devkit.open_session(membrane_dir):
        pass
    config = board.applied[0]
    monitored = [i for i, layer in enumerate(config.cnn_layers) if layer.monitor_enable]
    assert monitored == sorted({cores[-1], cores[-2]})
    assert config.cnn_layers[cores[-1]].threshold_high == STATE_MAX  # the readout core never spikes
    assert config.dvs_layer.pooling == {"x": 2, "y": 2} and config.dvs_layer.destinations[0].layer == cores[0]
    assert board.open_devices() == []


@pytest.mark.parametrize("which", ["if", "membrane"])
def test_read_back_check_finds_a_core_map_that_differs(board, if_dir, membrane_dir, which):
    deploy_dir = if_dir if which == "if" else membrane_dir
    artifact = load_artifact(deploy_dir)
    cores = [layer["core"] for layer in artifact["layers"]]
    with devkit.open_session(deploy_dir) as session:
        config = session.applied_configuration()
    assert devkit.configuration_problems(config, artifact) == []
    first, second = config.cnn_layers[cores[0]], config.cnn_layers[cores[1]]
    first.weights, second.weights = second.weights, first.weights
    config.cnn_layers[cores[-1]].monitor_enable = False
    config.cnn_layers[cores[0]].destinations[0].pooling = 4
    problems = devkit.configuration_problems(config, artifact)
    monitored = sorted({cores[-1], cores[-2]}) if which == "membrane" else [cores[-1]]
    kept = [c for c in monitored if c != cores[-1]]
    assert problems == [f"layer 0: core {cores[0]} does not hold its weights",
                        f"layer 0: core {cores[0]} sends to (core, pooling) [({cores[1]}, 4)], asked "
                        f"[({cores[1]}, {artifact['layers'][0]['pool'][0]})]",
                        f"layer 1: core {cores[1]} does not hold its weights",
                        f"monitored cores {kept}, asked {monitored}"]


def test_deploy_floor_reaches_every_core_and_model_pt_plays_no_part(board, tmp_path):
    """`deploy --floor -16` on a model trained at -8: the chip is configured from artifact.pt, so
    every core clamps at -16 x threshold_high, as the simulator does; model.pt is not read."""
    deploy_dir = _deploy(tmp_path, "nmnist_3c1fc", floor=-16, gain=40.0)  # thresholds ~100: -16 x is in range
    artifact = load_artifact(deploy_dir)
    (deploy_dir / "model.pt").write_bytes(b"not a checkpoint")  # the devkit path must not depend on it
    with devkit.open_session(deploy_dir) as session:
        config = session.applied_configuration()
    for layer in artifact["layers"]:
        chip = config.cnn_layers[layer["core"]]
        assert chip.threshold_low == -16 * chip.threshold_high == int(layer["threshold_low"])
        assert chip.return_to_zero is False and not chip.leak_enable
    assert devkit.configuration_problems(config, artifact) == []


def test_read_back_check_finds_reset_mode_leak_and_floor(board, if_dir):
    artifact = load_artifact(if_dir)
    cores = [layer["core"] for layer in artifact["layers"]]
    with devkit.open_session(if_dir) as session:
        config = session.applied_configuration()
    low = int(artifact["layers"][1]["threshold_low"])
    config.cnn_layers[cores[0]].return_to_zero = True
    config.cnn_layers[cores[1]].threshold_low = low // 8
    config.cnn_layers[cores[2]].leak_enable = True
    config.cnn_layers[cores[3]].biases = [0] * 9 + [-3]
    assert devkit.configuration_problems(config, artifact) == [
        f"layer 0: core {cores[0]} resets to zero, asked subtract reset (return_to_zero off)",
        f"layer 1: core {cores[1]} threshold_low {low // 8}, asked {low}",
        f"layer 2: core {cores[2]} leaks (leak_enable True, biases [0]), asked no leak",
        f"layer 3: core {cores[3]} leaks (leak_enable False, biases [-3, 0]), asked no leak"]


def test_presence_is_a_fresh_enumeration_not_sinabs_cache(board, if_dir):
    assert devkit.find_devkit(None) == "speck2edevkit:0"
    with devkit.open_session(if_dir) as session:
        assert session.present()
        board.plugged = []
        assert not session.present()
    with pytest.raises(DeviceError, match="no speck2edevkit:0 found"):
        devkit.find_devkit(None)


def _spiking_chip(board, out_core, feature):
    """The chip answers each input Spike with one output spike of `feature` on the output core."""
    def respond(events):
        spikes = [e for e in events if isinstance(e, fake_samna.Spike)]
        return [[fake_samna.Spike(layer=out_core, feature=feature, x=0, y=0, timestamp=e.timestamp + 5)
                 for e in spikes]] if spikes else []
    board.respond = respond


def test_recording_writes_the_exact_event_stream_and_closes(board, if_dir, tmp_path):
    io_core = load_artifact(if_dir)["layers"]
    _spiking_chip(board, io_core[-1]["core"], 7)
    sample = np.array([(3, 30, 1, 2_000), (33, 0, 0, 1_000), (5, 6, 1, 1_000)], EV)
    rec = _quick(if_dir, [(sample, 7)], record=tmp_path / "r.npz")
    spikes = [[(e.layer, e.feature, e.x, e.y, e.timestamp) for e in batch if isinstance(e, fake_samna.Spike)]
              for batch in board.written]
    core = io_core[0]["core"]
    assert [s for s in spikes if s] == [[(core, 0, 33, 0, 0), (core, 1, 5, 6, 0), (core, 1, 3, 30, 1000)]]
    assert rec.counts[0, 7] == 3 and rec.predictions.tolist() == [7]
    assert board.watch_log == ["reset", "start", "stop"]
    assert board.open_devices() == []


def test_key_mismatch_fit_and_samna_refusal_say_what_went_wrong(board, if_dir):
    with pytest.raises(DeviceError, match="does not fit .*samna: core 3: kernel memory"):
        board.refuse = "core 3: kernel memory"
        devkit.open_session(if_dir)
    board.refuse = None
    board.fail_apply = "USB transfer error"
    with pytest.raises(DeviceError, match="samna failed .*USB transfer error"):
        devkit.open_session(if_dir)
    assert board.open_devices() == []  # the half-opened device is closed too
    board.fail_apply = None
    network, _ = devkit.sinabs_network(load_artifact(if_dir))
    with pytest.raises(DeviceError, match="layer-to-core keys .* do not match"):
        devkit.configure(network, "speck2edevkit:0", {99: 0}, [99])


def test_usb_stall_is_reported_not_hidden(board, if_dir, tmp_path):
    out_core = load_artifact(if_dir)["layers"][-1]["core"]

    def stalled(events):
        if not any(isinstance(e, fake_samna.Spike) for e in events):
            return []
        first, late = fake_samna.Spike(layer=out_core, feature=1), fake_samna.Spike(layer=out_core, feature=1)
        return [[first], [], [late]]  # a gap longer than the quiet period, then the rest
    board.respond = stalled
    sample = np.array([(1, 1, 0, 0)], EV)
    with pytest.warns(UserWarning) as caught:
        rec = _quick(if_dir, [(sample, 1), (sample, 1)], record=tmp_path / "r.npz")
    assert [str(w.message) for w in caught] == [f"sample {i}: 1 output events arrived after its 1 ms quiet period "
                                                "(a USB stall?), so its counts are truncated; rerun it with a longer "
                                                "quiet_ms" for i in (0, 1)]
    assert rec.extras["late_events"].tolist() == [1, 1]
    assert rec.meta["truncated_samples"] == [0, 1]


def test_missing_neuron_value_is_read_again(board, membrane_dir, tmp_path):
    artifact = load_artifact(membrane_dir)
    out = artifact["layers"][-1]
    asked = []

    def chip(events):
        reads = [e for e in events if isinstance(e, fake_samna.ReadNeuronValue)]
        asked.append(len(reads))
        answers = [fake_samna.NeuronValue(layer=e.layer, address=e.address, neuron_state=e.address + 1)
                   for e in reads]
        if len(asked) == 2:  # the first readout loses one answer; a late spike of the feeding core comes along
            return [answers[1:] + [fake_samna.Spike(layer=artifact["layers"][-2]["core"], feature=3)]]
        return [answers]
    board.respond = chip
    sample = np.array([(10, 20, 0, 0)], EV)
    rec = _quick(membrane_dir, [(sample, 0)], record=tmp_path / "r.npz")
    addresses = neuron_addresses(out["output_shape"])
    assert asked == [0, len(addresses), 1]  # input spikes, full readout, the one missing address again
    assert rec.extras["membranes"][0].tolist() == [float(a + 1) for a in addresses[:, 3]]
    assert rec.counts[0].nonzero()[0].tolist() == [3] and rec.counts[0, 3] == 1  # kept, not dropped


def test_stopwatch_stopped_and_device_closed_on_error(board, if_dir, tmp_path):
    def unplugged(events):
        raise RuntimeError("libusb: no device")
    board.respond = unplugged
    with pytest.raises(DeviceError, match="failed .*libusb"):
        _quick(if_dir, [(np.array([(1, 1, 0, 0)], EV), 1)], record=tmp_path / "r.npz")
    assert board.watch_log[-1] == "stop" and board.open_devices() == []


def test_timeout_is_a_device_error_and_closes(board, if_dir, tmp_path):
    out_core = load_artifact(if_dir)["layers"][-1]["core"]
    board.respond = lambda events: [[fake_samna.Spike(layer=out_core)]] * 1000  # never quiet
    with pytest.raises(DeviceError, match="sample 0: .*still sent events"):
        devkit.measure_on_devkit(if_dir, [(np.array([(1, 1, 0, 0)], EV), 1)], quiet_ms=1.0, timeout_s=0.05,
                                 reset_settle_s=0.0, record=tmp_path / "r.npz")
    assert board.open_devices() == []


def _simulating_chip(board, artifact, unplug_at=None):
    """The chip answers each sample with the simulator's output counts as output-core spikes;
    before the sample numbered unplug_at the devkit leaves the USB bus."""
    net, out_core, seen = compile_artifact(artifact), artifact["layers"][-1]["core"], []

    def respond(events):
        spikes = [e for e in events if isinstance(e, fake_samna.Spike)]
        if not spikes:
            return []
        if len(seen) == unplug_at:
            board.plugged = []
            raise RuntimeError("libusb: no device")
        seen.append(spikes)
        ev = np.array([(e.x, e.y, e.feature, e.timestamp) for e in spikes], EV)
        counts = simulate(net, ev).counts
        return [[fake_samna.Spike(layer=out_core, feature=c, timestamp=100 + j) for c, n in enumerate(counts)
                 for j in range(int(n))]]
    board.respond = respond
    return seen


def _samples(n, seed=0, size=34):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ev = np.zeros(300, EV)
        ev["x"], ev["y"], ev["p"] = rng.integers(0, size, 300), rng.integers(0, size, 300), rng.integers(0, 2, 300)
        ev["t"] = np.sort(rng.integers(5_000, 60_000, 300))
        out.append((ev, i % 10))
    return out


def test_unplug_keeps_what_was_recorded_and_resume_finishes(board, if_dir, tmp_path):
    artifact = load_artifact(if_dir)
    samples = _samples(5)
    _simulating_chip(board, artifact, unplug_at=2)
    record = tmp_path / "run.npz"
    with pytest.raises(DeviceError) as info:
        _quick(if_dir, samples, record=record)
    message = str(info.value)
    assert "unplugged at sample 2" in message and "--resume" in message and "2 samples are saved" in message
    assert board.open_devices() == [] and load_chip_recording(record).sample_ids.tolist() == [0, 1]

    with pytest.raises(Exception, match="--resume"):  # no silent overwrite of the partial run
        _quick(if_dir, samples, record=record)
    board.plugged = fake_samna.Board().plugged
    seen = _simulating_chip(board, artifact)
    rec = _quick(if_dir, samples, record=record, resume=True)
    assert len(seen) == 3 and rec.sample_ids.tolist() == [0, 1, 2, 3, 4]
    assert rec.labels.tolist() == [label for _, label in samples] and rec.meta["truncated_samples"] == []
    net = compile_artifact(artifact)
    expected = np.stack([simulate(net, ev).counts for ev, _ in samples])
    assert np.array_equal(rec.counts, expected) and np.array_equal(load_chip_recording(record).counts, expected)
    assert seen[0][0].timestamp == 0 and {e.layer for e in seen[0]} == {artifact["layers"][0]["core"]}
