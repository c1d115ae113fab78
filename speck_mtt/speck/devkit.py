"""A Speck2e devkit through samna and sinabs: deploy a layout, stream samples, record the outputs.

The calls follow sinabs' own dynapcnn backend (io.py, DynapcnnNetwork.to/reset_states/hw_forward):
the devkit is found in sinabs' device map ("speck2edevkit:N", sorted by USB address), the
configuration is DynapcnnNetwork.make_config for speck2edevkit with our core assignment, and
DynapcnnNetwork.to() opens the device, applies it and connects a BasicSourceNode/BasicSinkNode
(ConfigBuilder.get_input_buffer/get_output_buffer) through samna graphs. Per sample (SPEC §6):
reset the neuron states (config with zero initial states re-applied, as sinabs' reset_states),
flush the output buffer, reset and start the stopwatch, write samna.speck2e.event.Spike events
(timestamps in us from 0, sorted), wait for the last timestamp, then read until no event arrives
for a quiet period; for a membrane-voting head read every output neuron back with
ReadNeuronValue. samna is imported only through samna_guard.require_real_samna, inside the
functions (never at import time: the PyPI stub installs itself when imported).

UNVERIFIED ON HARDWARE: no devkit was available when this was written; the pure-Python parts
(chip_events, recording) are tested, the samna calls mirror sinabs 3.1.3 and samna's examples.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeviceError, SpeckMttError
from ..eventsim.network import load_artifact
from .chip_events import NEURON_VALUE, OUTPUT_SPIKE, ChipIO, chip_io, count_spikes, membranes, neuron_addresses, \
    to_device_events
from .recording import ChipRecorder, ChipRecording, file_hash
from .samna_guard import dynapcnn, require_real_samna

DEVICE_KIND = "speck2edevkit"  # sinabs' name (io.device_types -> samna "Speck2eDevKit")
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


def find_devkit(device: str | None = None) -> str:
    """The sinabs device id ('speck2edevkit:N') of a connected devkit, or DeviceError naming what to connect."""
    _samna()
    device_id = f"{DEVICE_KIND}:{device_index(device)}"
    try:
        found = _backend("io").get_device_map()
    except Exception as exc:  # samna raises its own types when USB enumeration fails
        raise DeviceError(f"samna could not list USB devices ({type(exc).__name__}: {exc}); {CONNECT_HINT}") from exc
    if device_id not in found:
        others = ", ".join(sorted(found)) or "none"
        raise DeviceError(f"no {device_id} found (connected SynSense devices: {others}); {CONNECT_HINT}")
    return device_id


def rebuild_layout(deploy_dir: Path, artifact: dict[str, Any]):
    """The sinabs layout of DEPLOY_DIR/model.pt, done by the layout helper's code exactly as deploy
    did, and checked against artifact.pt (same cores, same integer weights and thresholds)."""
    from ..checkpoint import load_checkpoint, model_from_checkpoint
    from .layout import layout_model

    path = Path(deploy_dir) / "model.pt"
    model = model_from_checkpoint(load_checkpoint(path), path).eval()
    layout = layout_model(model, "speck2e")
    mine, theirs = layout.artifact["layers"], artifact["layers"]
    for i, (a, b) in enumerate(zip(mine, theirs)):
        same = (a["core"] == b["core"] and a["weight"].shape == b["weight"].shape
                and bool((a["weight"] == b["weight"]).all()) and a["threshold_high"] == b["threshold_high"])
        if not same:
            raise SpeckMttError(f"{deploy_dir}: model.pt and artifact.pt disagree at layer {i}; re-run "
                                "`speck-mtt deploy CHECKPOINT --target speck2e --out DIR`")
    if len(mine) != len(theirs):
        raise SpeckMttError(f"{deploy_dir}: model.pt lays out {len(mine)} layers but artifact.pt has {len(theirs)}; "
                            "re-run `speck-mtt deploy`")
    return layout


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

    @property
    def handle(self):
        return self.network.samna_device

    def summary(self) -> dict[str, Any]:
        return {"device": self.device_id, "samna_version": str(getattr(self.samna, "__version__", "")),
                "cores": {f"layer {i}": core for i, core in enumerate(self.cores)},
                "input_core": self.io.input_core, "output_core": self.io.output_core,
                "monitored_cores": sorted({self.io.output_core, self.io.spiking_core}),
                "readout": self.io.readout, "input_pool": self.io.input_pool}

    def reset(self) -> None:
        """Zero all neuron states: sinabs' reset_states (zero initial values, config re-applied, settle)."""
        self._builder.reset_states(self.network.samna_config)
        self.handle.get_model().apply_configuration(self.network.samna_config)
        time.sleep(self.reset_settle_s)

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
        """One sample: reset, flush, stopwatch, write, wait, read (and read membranes back)."""
        event = self.samna.speck2e.event
        spikes = []
        for layer, feature, x, y, timestamp in rows.tolist():
            spike = event.Spike()
            spike.layer, spike.feature, spike.x, spike.y, spike.timestamp = layer, feature, x, y, timestamp
            spikes.append(spike)
        self.reset()
        self.network.samna_output_buffer.get_events()  # flush
        self._stopwatch(True)
        start = time.monotonic()
        self.network.samna_input_buffer.write(spikes)
        last_s = float(rows["timestamp"][-1]) * 1e-6 if len(rows) else 0.0
        time.sleep(max(0.0, start + last_s - time.monotonic()))
        received = self._drain(start + last_s + timeout_s, quiet_s, f"{timeout_s:.1f} s after the last input event")
        wall = time.monotonic() - start
        values = np.zeros(0, NEURON_VALUE)
        if self.io.readout == "membrane":
            values = self._read_states(quiet_s, timeout_s)
        self._stopwatch(False)
        out = [(e.layer, e.feature, e.x, e.y, e.timestamp) for e in received if isinstance(e, event.Spike)]
        return SampleOutput(np.array(out, OUTPUT_SPIKE) if out else np.zeros(0, OUTPUT_SPIKE), values, wall)

    def _read_states(self, quiet_s: float, timeout_s: float) -> np.ndarray:
        """Every output neuron's state via ReadNeuronValue (answers arrive as NeuronValue events)."""
        event = self.samna.speck2e.event
        requests = []
        for address in neuron_addresses(self.io.output_shape)[:, 3].tolist():
            request = event.ReadNeuronValue()
            request.layer, request.address = self.io.output_core, address
            requests.append(request)
        self.network.samna_input_buffer.write(requests)
        got = self._drain(time.monotonic() + timeout_s, quiet_s, "while reading neuron states")
        rows = [(e.layer, e.address, e.neuron_state) for e in got if isinstance(e, event.NeuronValue)]
        return np.array(rows, NEURON_VALUE) if rows else np.zeros(0, NEURON_VALUE)

    def present(self) -> bool:
        """Whether the devkit is still listed on USB (distinguishes an unplug from other failures)."""
        try:
            return self.device_id in _backend("io").get_device_map()
        except Exception:
            return False

    def close(self) -> None:
        for graph in ("device_input_graph", "device_output_graph"):
            if hasattr(self.network, graph):
                try:
                    getattr(self.network, graph).stop()
                except Exception:  # an unplugged devkit: nothing left to stop
                    pass


def open_session(deploy_dir: Path, device: str | None = None, *, reset_settle_s: float = 1.0) -> DevkitSession:
    """Find the devkit, rebuild the layout from model.pt, make_config for speck2edevkit with the
    artifact's cores, monitor the output core (and the layer feeding a membrane readout), apply."""
    samna = _samna()
    device_id = find_devkit(device)
    deploy_dir = Path(deploy_dir)
    artifact = load_artifact(deploy_dir)
    io = chip_io(artifact)
    layout = rebuild_layout(deploy_dir, artifact)
    cores = [int(layer["core"]) for layer in artifact["layers"]]
    keys = layout.keys
    layer2core = {key: core for key, core in zip(keys, cores)}
    monitor = sorted({keys[-1], keys[io.spiking_layer]})
    network = layout.network
    try:
        network.to(device=device_id, layer2core_map=layer2core, monitor_layers=monitor)
    except ValueError as exc:  # make_config: samna's validate_configuration refused it
        raise DeviceError(f"samna refused the configuration for {device_id} ({str(exc).splitlines()[0]}); "
                          "check that samna and sinabs versions match") from exc
    except Exception as exc:  # samna/USB failures come as RuntimeError/OSError/samna types
        raise DeviceError(f"could not configure {device_id} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                          f"{CONNECT_HINT}") from exc
    builder = _backend("chip_factory").ChipFactory(device_id).get_config_builder()
    return DevkitSession(samna, device_id, network, io, cores, reset_settle_s, builder)


def deploy_to_devkit(deploy_dir: Path, device: str | None = None) -> dict[str, Any]:
    """Upload DEPLOY_DIR (written by `speck-mtt deploy --target speck2e`) to a devkit; report the cores."""
    session = open_session(Path(deploy_dir), device)
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
    """Stream each sample to the devkit and record its output spike counts (SPEC §6).

    dataset: a dataset name (event_dataset of `split`) or a sequence of (events, label).
    record: the .npz written as samples complete (default DEPLOY_DIR/recording-speck2e-<time>.npz);
    resume=True skips the samples it already holds. An unplugged devkit or a timeout stops the
    run with a DeviceError after saving what was recorded. Input drops are not reported by the
    devkit, so they are not counted (compare with the simulator's SD instead).
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
    session = open_session(deploy_dir, device, reset_settle_s=reset_settle_s)
    recorder.meta.update(device=session.device_id, samna_version=session.summary()["samna_version"])
    n_out = io.output_shape[0]
    try:
        for k, i in enumerate(todo):
            events, label = samples[i]
            rows = to_device_events(events, io, where=f"sample {i}")
            try:
                out = session.run(rows, quiet_ms * 1e-3, timeout_s)
            except DeviceError as exc:
                raise DeviceError(f"sample {i}: {exc}; {len(recorder)} samples are saved in {recorder.path}, "
                                  "continue with --resume") from exc
            except Exception as exc:  # samna raises RuntimeError & co when the USB link goes away
                state = "was unplugged" if not session.present() else f"failed ({type(exc).__name__}: {exc})"
                raise DeviceError(f"{session.device_id} {state} at sample {i}; {len(recorder)} samples are saved in "
                                  f"{recorder.path}: reconnect it and rerun with --resume") from exc
            out_counts = count_spikes(out.spikes, io.output_core, n_out)
            counts = count_spikes(out.spikes, io.spiking_core, io.spiking_channels)
            if io.readout == "membrane":
                scores = membranes(out.values, io.output_core, io.output_shape, out_counts, io.threshold_high)
            else:
                scores = out_counts.astype(np.float64)
            out_times = out.spikes["timestamp"][out.spikes["layer"] == io.output_core].astype(np.int64)
            last_in = int(rows["timestamp"][-1]) if len(rows) else 0
            extras = {"output_counts": out_counts, "membranes": scores, "wall_ms": out.wall_s * 1e3,
                      "n_input": len(rows), "last_input_us": last_in,
                      "first_output_us": int(out_times.min()) if out_times.size else -1,
                      "last_output_us": int(out_times.max()) if out_times.size else -1}
            recorder.add(i, int(label), counts, int(np.argmax(scores)), extras, out.spikes if raw_events else None)
            if progress is not None:
                progress(k + 1, len(todo))
    finally:
        if len(recorder):
            recorder.flush()
        session.close()
    return recorder.recording()
