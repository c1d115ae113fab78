"""A Speck2e devkit through samna and sinabs: deploy a layout, stream samples, record the outputs.

The calls follow sinabs' own dynapcnn backend (io.py, DynapcnnNetwork.to/reset_states/hw_forward):
the devkit is found by a fresh samna enumeration ("speck2edevkit:N", sorted by USB address as
sinabs numbers them; sinabs' own device map is a cache that never forgets an unplugged devkit),
the configuration is DynapcnnNetwork.make_config for speck2edevkit with our core assignment, and
DynapcnnNetwork.to() opens the device, applies it and connects a BasicSourceNode/BasicSinkNode
(ConfigBuilder.get_input_buffer/get_output_buffer) through samna graphs. A session is a context
manager: the graphs are stopped and samna.device.close_device called on every exit path.
Before each sample the neuron states are zeroed (config with zero initial states re-applied, as
sinabs' reset_states); per sample: flush the output buffer, reset and start the stopwatch, write
samna.speck2e.event.Spike events (timestamps in us from 0, sorted), wait for the last timestamp,
read until no event arrives for a quiet period, for a membrane-voting head read every output
neuron back with ReadNeuronValue (asking again for the ones that did not answer), stop the
stopwatch (also on error). Events that arrive while the next reset settles came after the quiet
period (a USB stall): they are counted per sample and reported, never silently dropped. samna is
imported only through samna_guard.require_real_samna, inside the functions (never at import
time: the PyPI stub installs itself when imported).

UNVERIFIED ON HARDWARE: no devkit was available when this was written; the pure-Python parts
(chip_events, recording) are tested, the samna calls mirror sinabs 3.1.3 and samna's examples.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io as text_io
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


from ..errors import DeviceError, SpeckMttError
from ..eventsim.network import load_artifact
from .chip_events import NEURON_VALUE, OUTPUT_SPIKE, ChipIO, chip_io, count_spikes, membranes, neuron_addresses, \
    to_device_events
from .recorder import ChipRecorder, ChipRecording, file_hash
from .samna_guard import dynapcnn, require_real_samna

DEVICE_KIND = "speck2edevkit"  # sinabs' name (io.device_types -> samna "Speck2eDevKit")
READ_RETRIES = 3  # ReadNeuronValue rounds for neurons that did not answer
MIN_SAMNA = (0, 33)  # sinabs 3.1 requires samna >= 0.33
CONNECT_HINT = "connect a Speck2e devkit by USB (and check that `samna.device.get_all_devices()` lists it)"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def samna_version_problem(loaded: str | None, installed: str | None) -> str | None:
    """Why this samna cannot be used, or None: too old for sinabs, or the module that was imported
    is not the distribution pip installed (two samnas on the path)."""
    if not loaded:
        return "samna reports no __version__; reinstall the real samna from SynSense"
    if _version_tuple(loaded) < MIN_SAMNA:
        need = ".".join(map(str, MIN_SAMNA))
        return f"samna {loaded} is too old for sinabs (needs >= {need}); upgrade samna from SynSense's index"
    if installed and _version_tuple(installed) != _version_tuple(loaded):
        return (f"samna {loaded} was imported but pip lists samna {installed}; remove the stale copy so one samna "
                "is on the path")
    return None


def _samna():
    """The real samna, checked: DeviceError with a one-line fix otherwise."""
    samna = require_real_samna()
    try:
        installed = importlib.metadata.version("samna")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    problem = samna_version_problem(getattr(samna, "__version__", None), installed)
    if problem is None and not hasattr(samna, "speck2e"):
        problem = f"samna {samna.__version__} has no speck2e module; install a samna release that supports Speck2e"
    if problem:
        raise DeviceError(problem)
    return samna


def _backend(module: str):
    """A submodule of sinabs.backend.dynapcnn, imported after the samna guard (its package imports samna)."""
    dynapcnn()
    return importlib.import_module(f"sinabs.backend.dynapcnn.{module}")


def device_index(device: str | None) -> int:
    """Index of the devkit asked for: None -> 0, 'speck2edevkit[:N]' or 'N' -> N."""
    if device is None:
        return 0
    kind, _, index = str(device).partition(":")
    if kind.isdigit() and not index:
        return int(kind)
    if kind.lower() != DEVICE_KIND or (index and not index.isdigit()):
        raise DeviceError(f"device {device!r} is not a Speck2e devkit id; use {DEVICE_KIND}:N (e.g. {DEVICE_KIND}:0)")
    return int(index or 0)


def usb_devices() -> list[Any]:
    """samna's DeviceInfo of every SynSense device on USB now (a fresh enumeration, never a cache)."""
    samna = _samna()
    try:
        return list(samna.device.get_all_devices())
    except Exception as exc:  # samna raises its own types when USB enumeration fails
        raise DeviceError(f"samna could not list USB devices ({type(exc).__name__}: {exc}); {CONNECT_HINT}") from exc


def connected_devkits() -> list[Any]:
    """The Speck2e devkits on USB now, index N = 'speck2edevkit:N' (sorted by USB address, as sinabs)."""
    name = _backend("io").device_types[DEVICE_KIND]
    return sorted((d for d in usb_devices() if d.device_type_name == name), key=lambda d: d.usb_device_address)


def _usb_key(info: Any) -> tuple:
    return getattr(info, "usb_bus_number", None), info.usb_device_address


def _on_usb() -> str:
    """The kinds of SynSense device on USB now, for messages."""
    return ", ".join(sorted({d.device_type_name for d in usb_devices()})) or "none"


def find_devkit(device: str | None = None) -> str:
    """The sinabs device id ('speck2edevkit:N') of a connected devkit, or DeviceError naming what to connect."""
    device_id = f"{DEVICE_KIND}:{device_index(device)}"
    found = connected_devkits()
    if device_index(device) >= len(found):
        raise DeviceError(f"no {device_id} found ({len(found)} Speck2e devkits connected; SynSense devices on USB: "
                          f"{_on_usb()}); {CONNECT_HINT}")
    return device_id


def list_devkits() -> list[dict[str, Any]]:
    """The Speck2e devkits connected now (id, serial, USB bus and address); none is a DeviceError."""
    found = connected_devkits()
    if not found:
        raise DeviceError(f"no Speck2e devkit is connected (SynSense devices on USB: {_on_usb()}); {CONNECT_HINT}")
    return [{"id": f"{DEVICE_KIND}:{i}", "serial": getattr(info, "serial_number", "?"), "bus": _usb_key(info)[0],
             "address": _usb_key(info)[1]} for i, info in enumerate(found)]


def sinabs_network(artifact: dict[str, Any]) -> tuple[Any, list[int]]:
    """sinabs' DynapcnnNetwork of the deploy artifact itself, and the sinabs index of each artifact
    layer: the chip is configured from the very numbers the simulator runs (weights, both
    thresholds, so `deploy --floor`), never from a second conversion of the checkpoint. The
    integer weights go in as they are (discretize=False), pooling as SumPool2d (no rescale), the
    input pooling through sinabs' DVSLayer as the layout had it; neurons subtract on reset."""
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneSubtract
    from torch import nn

    backend = dynapcnn()
    modules: list[nn.Module] = []
    channels, height, width = (int(v) for v in artifact["input_shape"])
    if artifact.get("input_layer") == "dvs":
        modules.append(backend.DVSLayer(input_shape=(height, width), merge_polarities=(channels == 1),
                                        disable_pixel_array=True))
        if int(artifact["input_pool"]) > 1:
            modules.append(sl.SumPool2d(int(artifact["input_pool"])))
    for layer in artifact["layers"]:
        weight = torch.as_tensor(layer["weight"], dtype=torch.float32)
        c_out, c_in, kh, kw = weight.shape
        conv = nn.Conv2d(c_in, c_out, (kh, kw), stride=tuple(layer["stride"]), padding=tuple(layer["padding"]),
                         bias=False)
        with torch.no_grad():
            conv.weight.copy_(weight)
        modules += [conv, sl.IAFSqueeze(batch_size=1, spike_threshold=float(layer["threshold_high"]),
                                        min_v_mem=float(layer["threshold_low"]), reset_fn=MembraneSubtract())]
        if list(layer["pool"]) != [1, 1]:
            modules.append(sl.SumPool2d(tuple(int(p) for p in layer["pool"])))
    network = backend.DynapcnnNetwork(nn.Sequential(*modules), input_shape=(channels, height, width),
                                      discretize=False, dvs_input=False)
    keys = sorted(k for k, v in network.dynapcnn_layers.items() if isinstance(v, backend.DynapcnnLayer))
    if len(keys) != len(artifact["layers"]):
        raise SpeckMttError(f"sinabs lays the artifact out in {len(keys)} cores, not its {len(artifact['layers'])} "
                            "layers; re-run `speck-mtt deploy CHECKPOINT --target speck2e --out DIR`")
    return network, keys


@dataclass
class SampleOutput:
    """What the chip did with one sample."""

    spikes: np.ndarray  # OUTPUT_SPIKE rows of the monitored cores, in arrival order
    values: np.ndarray  # NEURON_VALUE rows read back (membrane heads), else empty
    wall_s: float  # from writing the input to the end of the quiet period


@dataclass
class DevkitSession:
    """A deploy artifact running on an opened devkit (through sinabs' DynapcnnNetwork.to)."""

    samna: Any
    device_id: str
    network: Any  # sinabs DynapcnnNetwork, deployed
    io: ChipIO
    cores: list[int]  # core of each artifact layer
    reset_settle_s: float = 1.0
    _builder: Any = field(default=None, repr=False)
    usb: tuple = ()  # (bus, address) of the devkit when it was opened
    _closed: bool = field(default=False, repr=False)

    @property
    def handle(self):
        return self.network.samna_device

    def __enter__(self) -> "DevkitSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def summary(self) -> dict[str, Any]:
        return {"device": self.device_id, "samna_version": str(getattr(self.samna, "__version__", "")),
                "cores": {f"layer {i}": core for i, core in enumerate(self.cores)},
                "input_core": self.io.input_core, "output_core": self.io.output_core,
                "monitored_cores": sorted({self.io.output_core, self.io.spiking_core}),
                "readout": self.io.readout, "input_pool": self.io.input_pool}

    def applied_configuration(self) -> Any:
        """The configuration the device model holds (samna's get_configuration), to check against the artifact."""
        return self.handle.get_model().get_configuration()

    def settle(self, timeout_s: float = 10.0) -> int:
        """Zero all neuron states (sinabs' reset_states: zero initial values, config re-applied, settle
        time) and count what arrived meanwhile: events of the last sample that came after its quiet
        period, i.e. the sample was cut short by a USB stall."""
        self._builder.reset_states(self.network.samna_config)
        self.handle.get_model().apply_configuration(self.network.samna_config)
        time.sleep(self.reset_settle_s)
        return len(self._drain(time.monotonic() + timeout_s, 0.0, "while its neuron states were reset"))

    def _stopwatch(self, on: bool) -> None:
        watch = self.handle.get_stop_watch()
        if on:
            watch.reset()
        if hasattr(watch, "start"):  # sinabs 3.1 io: start/stop/reset
            (watch.start if on else watch.stop)()
        else:  # older samna
            watch.set_enable_value(on)

    def _drain(self, deadline: float, quiet_s: float, what: str) -> list:
        """Read the output buffer until a quiet period passes without events; DeviceError past deadline."""
        got: list = []
        buffer = self.network.samna_output_buffer
        while True:
            time.sleep(quiet_s)
            new = buffer.get_events()
            if not new:
                return got
            got.extend(new)
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.device_id} still sent events {what}; the chip is congested or misconfigured "
                                  "(raise the timeout, or reset the devkit)")

    def run(self, rows: np.ndarray, quiet_s: float, timeout_s: float) -> SampleOutput:
        """One sample on zeroed states (settle first): flush, stopwatch, write, wait, read (and read
        membranes back); the stopwatch is stopped on every exit path."""
        self.network.samna_output_buffer.get_events()  # flush
        self._stopwatch(True)
        try:
            out = self._sample(rows, quiet_s, timeout_s)
        except BaseException:
            with contextlib.suppress(Exception):  # an unplugged devkit cannot stop it; keep the first error
                self._stopwatch(False)
            raise
        self._stopwatch(False)
        return out

    def _sample(self, rows: np.ndarray, quiet_s: float, timeout_s: float) -> SampleOutput:
        event = self.samna.speck2e.event
        spikes = []
        for layer, feature, x, y, timestamp in rows.tolist():
            spike = event.Spike()
            spike.layer, spike.feature, spike.x, spike.y, spike.timestamp = layer, feature, x, y, timestamp
            spikes.append(spike)
        start = time.monotonic()
        self.network.samna_input_buffer.write(spikes)
        last_s = float(rows["timestamp"][-1]) * 1e-6 if len(rows) else 0.0
        time.sleep(max(0.0, start + last_s - time.monotonic()))
        received = self._drain(start + last_s + timeout_s, quiet_s, f"{timeout_s:.1f} s after the last input event")
        wall = time.monotonic() - start
        values = np.zeros(0, NEURON_VALUE)
        if self.io.readout == "membrane":
            values = self._read_states(quiet_s, timeout_s, received)
        out = [(e.layer, e.feature, e.x, e.y, e.timestamp) for e in received if isinstance(e, event.Spike)]
        return SampleOutput(np.array(out, OUTPUT_SPIKE) if out else np.zeros(0, OUTPUT_SPIKE), values, wall)

    def _read_states(self, quiet_s: float, timeout_s: float, received: list) -> np.ndarray:
        """Every output neuron's state via ReadNeuronValue (answers arrive as NeuronValue events);
        neurons whose answer got lost are asked again, READ_RETRIES times, then DeviceError. Other
        events arriving meanwhile are still the sample's output: appended to `received`."""
        event = self.samna.speck2e.event
        core = self.io.output_core
        missing = neuron_addresses(self.io.output_shape)[:, 3].tolist()
        states: dict[int, int] = {}
        for _ in range(READ_RETRIES + 1):
            requests = []
            for address in missing:
                request = event.ReadNeuronValue()
                request.layer, request.address = core, address
                requests.append(request)
            self.network.samna_input_buffer.write(requests)
            got = self._drain(time.monotonic() + timeout_s, quiet_s, "while reading neuron states")
            states.update((e.address, e.neuron_state) for e in got if isinstance(e, event.NeuronValue)
                          and e.layer == core)
            received.extend(e for e in got if not isinstance(e, event.NeuronValue))
            missing = [a for a in missing if a not in states]
            if not missing:
                return np.array([(core, a, v) for a, v in states.items()], NEURON_VALUE)
        raise DeviceError(f"{len(missing)} output neurons of core {core} did not answer ReadNeuronValue "
                          f"{READ_RETRIES + 1} times (first address {missing[0]}); reset the devkit")

    def present(self) -> bool:
        """Whether this devkit is on USB now (a fresh enumeration: tells an unplug from other failures)."""
        try:
            return any(_usb_key(d) == self.usb for d in connected_devkits())
        except Exception:
            return False

    def close(self) -> None:
        """Stop the graphs and close the device (samna.device.close_device), once; never raises, since
        it runs while other errors are reported (an unplugged devkit has nothing left to close)."""
        if self._closed:
            return
        self._closed = True
        for graph in ("device_input_graph", "device_output_graph"):
            if hasattr(self.network, graph):
                with contextlib.suppress(Exception):
                    getattr(self.network, graph).stop()
        if getattr(self.network, "samna_device", None) is not None:
            with contextlib.suppress(Exception):
                self.samna.device.close_device(self.network.samna_device)


def _xy(value: Any) -> tuple[int, int]:
    """(x, y) of a samna pair, which sinabs may have set from a dict."""
    if isinstance(value, dict):
        return int(value["x"]), int(value["y"])
    return int(value.x), int(value.y)


def configuration_problems(config: Any, artifact: dict[str, Any]) -> list[str]:
    """Where a Speck2e configuration differs from what the deploy artifact asks, in every field the
    chip neuron rule (docs/design.md#neurons) depends on: per core the weights (samna holds kernels
    as (out, in, x, y)), threshold_high, threshold_low (the floor), subtract reset (return_to_zero
    off), no leak (leak_enable off, biases zero), destinations and their pooling; the monitored
    cores, and the input pooling of the DVS layer; empty when they agree."""
    io = chip_io(artifact)
    layers = artifact["layers"]
    cores = [int(layer["core"]) for layer in layers]
    problems = []
    for i, layer in enumerate(layers):
        chip = config.cnn_layers[cores[i]]
        where = f"layer {i}: core {cores[i]}"
        weight = layer["weight"].transpose(2, 3).int().numpy()
        if not np.array_equal(np.asarray(chip.weights), weight):
            problems.append(f"{where} does not hold its weights")
        for name in ("threshold_high", "threshold_low"):
            if int(getattr(chip, name)) != int(layer[name]):
                problems.append(f"{where} {name} {getattr(chip, name)}, asked {int(layer[name])}")
        if bool(chip.return_to_zero):
            problems.append(f"{where} resets to zero, asked subtract reset (return_to_zero off)")
        if bool(chip.leak_enable) or np.any(np.asarray(chip.biases)):
            problems.append(f"{where} leaks (leak_enable {bool(chip.leak_enable)}, biases "
                            f"{sorted(set(np.asarray(chip.biases).ravel().tolist()))}), asked no leak")
        sent = [(int(d.layer), int(d.pooling)) for d in chip.destinations if d.enable]
        asked = [(cores[d], int(layer["pool"][0])) for d in layer["destinations"]]
        if sent != asked:
            problems.append(f"{where} sends to (core, pooling) {sent}, asked {asked}")
    monitored = [c for c, layer in enumerate(config.cnn_layers) if layer.monitor_enable]
    if monitored != sorted({io.output_core, io.spiking_core}):
        problems.append(f"monitored cores {monitored}, asked {sorted({io.output_core, io.spiking_core})}")
    if artifact.get("input_layer") == "dvs":
        pool = _xy(config.dvs_layer.pooling)
        if pool != (io.input_pool, io.input_pool):
            problems.append(f"DVS layer pools {pool}, asked {io.input_pool}")
    return problems


def _sinabs_refusal(device_id: str, layer2core: dict, exc: ValueError, printed: str) -> str:
    """What sinabs' ValueError from make_config means: a core map whose keys are not the network's
    layers, samna's validate_configuration refusing it (sinabs prints samna's reason), or a layer
    sinabs cannot express."""
    said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "layer2core_map" in said:
        return (f"sinabs refused the core map for {device_id}: the layer-to-core keys {sorted(layer2core)} do not "
                f"match the network's layers ({said}); re-run `speck-mtt deploy CHECKPOINT --target speck2e --out DIR`")
    if said.startswith("Generated config is not valid"):
        samna_said = [line for line in printed.strip().splitlines() if line.strip() != "Network is valid"]
        reason = samna_said[-1].strip() if samna_said else "no reason given"
        return (f"the configuration does not fit {device_id} (samna: {reason}); samna's validate_configuration "
                "refused it: check the deploy report, and that samna and sinabs versions match")
    return f"sinabs could not build the configuration for {device_id}: {said}"


def configure(network: Any, device_id: str, layer2core: dict, monitor: list) -> None:
    """sinabs' DynapcnnNetwork.to() for the devkit, with its errors turned into one-line DeviceErrors."""
    printed = text_io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # sinabs prints samna's validation message
            network.to(device=device_id, layer2core_map=layer2core, monitor_layers=monitor)
    except ValueError as exc:
        raise DeviceError(_sinabs_refusal(device_id, layer2core, exc, printed.getvalue())) from exc
    except Exception as exc:  # samna/USB failures come as RuntimeError/OSError/samna types
        said = (str(exc).strip().splitlines() or [""])[0]
        raise DeviceError(f"samna failed to configure {device_id} ({type(exc).__name__}: {said}); "
                          f"{CONNECT_HINT}") from exc


def open_session(deploy_dir: Path, device: str | None = None, *, reset_settle_s: float = 1.0) -> DevkitSession:
    """Find the devkit, build sinabs' network from artifact.pt, make_config for speck2edevkit with the
    artifact's cores, monitor the output core (and the layer feeding a membrane readout), apply."""
    samna = _samna()
    device_id = find_devkit(device)
    usb = _usb_key(connected_devkits()[device_index(device)])
    deploy_dir = Path(deploy_dir)
    artifact = load_artifact(deploy_dir)
    io = chip_io(artifact)
    network, keys = sinabs_network(artifact)
    cores = [int(layer["core"]) for layer in artifact["layers"]]
    layer2core = {key: core for key, core in zip(keys, cores)}
    monitor = sorted({keys[-1], keys[io.spiking_layer]})
    builder = _backend("chip_factory").ChipFactory(device_id).get_config_builder()
    session = DevkitSession(samna, device_id, network, io, cores, reset_settle_s, builder, usb)
    try:
        configure(network, device_id, layer2core, monitor)
    except BaseException:
        session.close()  # sinabs may have opened the device before samna failed
        raise
    return session


def deploy_to_devkit(deploy_dir: Path, device: str | None = None) -> dict[str, Any]:
    """Upload DEPLOY_DIR (written by `speck-mtt deploy --target speck2e`) to a devkit; report the cores."""
    with open_session(Path(deploy_dir), device) as session:
        return session.summary()


def _samples(dataset: str | Sequence[tuple[np.ndarray, int]], split: str, data_dir: Path | None,
             limit: int | None) -> tuple[Sequence[tuple[np.ndarray, int]], str]:
    if isinstance(dataset, str):
        from ..data import event_dataset

        return event_dataset(dataset, split, data_dir=data_dir, limit=limit), dataset
    samples = list(dataset)
    return (samples[:limit] if limit else samples), "custom"


def measure_on_devkit(deploy_dir: Path, dataset: str | Sequence[tuple[np.ndarray, int]], *,
                      data_dir: Path | None = None, limit: int | None = None, split: str = "test",
                      record: Path | None = None, resume: bool = False, device: str | None = None,
                      quiet_ms: float = 100.0, timeout_s: float = 10.0, reset_settle_s: float = 1.0,
                      raw_events: bool = False, flush_every: int = 20,
                      progress: Callable[[int, int], None] | None = None) -> ChipRecording:
    """Stream each sample to the devkit and record its output spike counts (docs/design.md#event-conventions).

    dataset: a dataset name (event_dataset of `split`) or a sequence of (events, label).
    record: the .npz written as samples complete (default DEPLOY_DIR/recording-speck2e-<time>.npz);
    resume=True skips the samples it already holds. An unplugged devkit or a timeout stops the
    run with a DeviceError after saving what was recorded. Input drops are not reported by the
    devkit, so they are not counted (compare with the simulator's SD instead). A sample whose
    output kept arriving after the quiet period (USB stall) is kept but reported: a warning, its
    extras["late_events"], and meta["truncated_samples"].
    """
    _samna()  # first: without the real samna this is the one-line error
    deploy_dir = Path(deploy_dir)
    artifact = load_artifact(deploy_dir)
    io = chip_io(artifact)
    samples, name = _samples(dataset, split, data_dir, limit)
    if record is None:  # a fresh file per run, so repeated runs (chip vs chip) never collide
        record = deploy_dir / f"recording-speck2e-{time.strftime('%Y%m%d-%H%M%S')}.npz"
    record = Path(record)
    meta = {"backend": "speck2e", "dataset": name, "split": split, "layer": io.spiking_layer,
            "readout": io.readout, "model_hash": file_hash(deploy_dir / "artifact.pt"), "deploy_dir": str(deploy_dir),
            "quiet_ms": quiet_ms, "input_core": io.input_core, "output_core": io.output_core,
            "dropped_events": "not reported by the devkit"}
    recorder = ChipRecorder(record, meta, resume=resume, raw=raw_events, flush_every=flush_every)
    todo = recorder.todo(list(range(len(samples))))
    with open_session(deploy_dir, device, reset_settle_s=reset_settle_s) as session:
        recorder.meta.update(device=session.device_id, samna_version=session.summary()["samna_version"])
        try:
            session.settle(timeout_s)
            for k, i in enumerate(todo):
                events, label = samples[i]
                rows = to_device_events(events, io, where=f"sample {i}")
                out, late = _measure_sample(session, recorder, i, rows, quiet_ms * 1e-3, timeout_s)
                if late:
                    warnings.warn(f"sample {i}: {late} output events arrived after its {quiet_ms:g} ms quiet period "
                                  "(a USB stall?), so its counts are truncated; rerun it with a longer quiet_ms",
                                  stacklevel=2)
                _record(recorder, io, i, int(label), rows, out, late, raw_events)
                if progress is not None:
                    progress(k + 1, len(todo))
        finally:
            if len(recorder):
                so_far = recorder.recording()
                late = so_far.extras["late_events"]
                recorder.meta["truncated_samples"] = [int(i) for i in so_far.sample_ids[late > 0]]
                recorder.flush()
    return recorder.recording()


def _measure_sample(session: DevkitSession, recorder: ChipRecorder, i: int, rows: np.ndarray, quiet_s: float,
                    timeout_s: float) -> tuple[SampleOutput, int]:
    """Run sample i, then zero the states for the next one and count its late events; a failure is a
    DeviceError saying what is saved and how to continue."""
    try:
        out = session.run(rows, quiet_s, timeout_s)
        return out, session.settle(timeout_s)
    except DeviceError as exc:
        raise DeviceError(f"sample {i}: {exc}; {len(recorder)} samples are saved in {recorder.path}, "
                          "continue with --resume") from exc
    except Exception as exc:  # samna raises RuntimeError & co when the USB link goes away
        state = "was unplugged" if not session.present() else f"failed ({type(exc).__name__}: {exc})"
        raise DeviceError(f"{session.device_id} {state} at sample {i}; {len(recorder)} samples are saved in "
                          f"{recorder.path}: reconnect it and rerun with --resume") from exc


def _record(recorder: ChipRecorder, io: ChipIO, i: int, label: int, rows: np.ndarray, out: SampleOutput, late: int,
            raw_events: bool) -> None:
    """Sample i's counts, scores and timing into the recording."""
    n_out = io.output_shape[0]
    out_counts = count_spikes(out.spikes, io.output_core, n_out)
    counts = count_spikes(out.spikes, io.spiking_core, io.spiking_channels)
    if io.readout == "membrane":
        scores = membranes(out.values, io.output_core, io.output_shape, out_counts, io.threshold_high)
    else:
        scores = out_counts.astype(np.float64)
    out_times = out.spikes["timestamp"][out.spikes["layer"] == io.output_core].astype(np.int64)
    last_in = int(rows["timestamp"][-1]) if len(rows) else 0
    extras = {"output_counts": out_counts, "membranes": scores, "wall_ms": out.wall_s * 1e3,
              "n_input": len(rows), "last_input_us": last_in, "late_events": late,
              "first_output_us": int(out_times.min()) if out_times.size else -1,
              "last_output_us": int(out_times.max()) if out_times.size else -1}
    recorder.add(i, label, counts, int(np.argmax(scores)), extras, out.spikes if raw_events else None)
