"""Pure-Python side of talking to a Speck2e devkit: event tuples in, spike counts out (no samna).

Everything here works on numpy structured arrays so it is tested without hardware; the devkit
module only turns DEVICE_EVENT rows into samna.speck2e.event.Spike objects (and samna output
events back into OUTPUT_SPIKE / NEURON_VALUE rows) at the very edge.

Input (docs/design.md#event-conventions): one Spike per input event, layer = the core of the first network layer,
feature = polarity channel (0 when the network merges polarities), x/y after the input sum
pooling that the DVS layer would do (x // pool, y // pool: sum pooling routes each event to one
pooled pixel, so pooling in software is the same as pooling on chip), timestamps in us starting
at 0 and sorted (stable for ties, the order the simulator uses).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError, SpeckMttError

DEVICE_EVENT = np.dtype([("layer", np.uint8), ("feature", np.uint16), ("x", np.uint16), ("y", np.uint16),
                         ("timestamp", np.uint64)])
OUTPUT_SPIKE = DEVICE_EVENT  # samna Spike read back from a monitored core: same fields
NEURON_VALUE = np.dtype([("layer", np.uint8), ("address", np.uint32), ("neuron_state", np.int32)])


@dataclass(frozen=True)
class ChipIO:
    """Where input goes and what is read, derived from the deploy artifact."""

    input_core: int
    sensor_shape: tuple[int, int, int]  # (C, H, W) of the dataset events, before input pooling
    input_pool: int
    channels: int  # input channels of the first core (1: polarities merged)
    output_core: int
    output_shape: tuple[int, int, int]  # (C, H, W) of the output layer (before its pooling)
    spiking_layer: int  # artifact index of the layer whose spikes are recorded (the recording's "layer")
    spiking_core: int  # its core: the output core for IF voting, else the layer feeding the readout
    spiking_channels: int
    readout: str  # "spikes" | "membrane"
    threshold_high: float  # of the output layer (membrane score = v + spikes * threshold_high)


def chip_io(artifact: dict[str, Any]) -> ChipIO:
    """The devkit's input/output description of a speck2e deploy artifact; a sim-only one is an error."""
    layers = artifact.get("layers") or []
    cores = [layer.get("core") for layer in layers]
    if not layers or any(core is None for core in cores) or artifact.get("target", "speck2e") != "speck2e":
        raise SpeckMttError("the deploy artifact has no core assignment (deployed with --target sim or does not fit "
                            "Speck2e); re-run `speck-mtt deploy CHECKPOINT --target speck2e --out DIR`")
    out = len(layers) - 1
    readout = layers[out].get("readout", "spikes")
    spiking = out if readout == "spikes" else _feeding_layer(layers, out)
    c, h, w = (int(v) for v in artifact["input_shape"])
    return ChipIO(input_core=int(cores[0]), sensor_shape=(c, h, w), input_pool=int(artifact.get("input_pool", 1)),
                  channels=int(layers[0]["input_shape"][0]), output_core=int(cores[out]),
                  output_shape=tuple(int(v) for v in layers[out]["output_shape"]),
                  spiking_layer=spiking, spiking_core=int(cores[spiking]), spiking_channels=int(layers[spiking]["output_shape"][0]),
                  readout=readout, threshold_high=float(layers[out]["threshold_high"]))


def _feeding_layer(layers: Sequence[dict[str, Any]], out: int) -> int:
    feeding = [i for i, layer in enumerate(layers) if out in layer.get("destinations", [])]
    if len(feeding) != 1:
        raise SpeckMttError(f"the membrane readout layer is fed by {len(feeding)} layers; expected one")
    return feeding[0]


def to_device_events(events: np.ndarray, io: ChipIO, where: str = "sample") -> np.ndarray:
    """One sample's tonic-style events (fields x, y, p, t in us) -> DEVICE_EVENT rows for the input core.

    Stable sort by t, rebase t to start at 0, pool coordinates, map polarity to the input channel.
    Events outside the sensor are a DataError (a wrong dataset, not something to drop silently).
    """
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not {"x", "y", "p", "t"} <= set(names):
        raise DataError(f"{where}: events must be a structured array with fields x, y, p, t, got "
                        f"{getattr(events, 'dtype', type(events))}")
    out = np.zeros(len(events), DEVICE_EVENT)
    if len(events) == 0:
        return out
    order = np.argsort(events["t"], kind="stable")
    ev = events[order]
    x, y, p = (ev[k].astype(np.int64) for k in ("x", "y", "p"))
    t = ev["t"].astype(np.int64)
    c, h, w = io.sensor_shape
    bad = (x < 0) | (x >= w) | (y < 0) | (y >= h) | (p < 0) | (p >= c)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"{where}: {int(bad.sum())} of {len(ev)} events lie outside the {w}x{h} sensor with {c} "
                        f"polarities (first: x={x[k]}, y={y[k]}, p={p[k]}); use the dataset the network was deployed for")
    out["layer"] = io.input_core
    out["feature"] = 0 if io.channels == 1 else p
    out["x"] = x // io.input_pool
    out["y"] = y // io.input_pool
    out["timestamp"] = t - t[0]
    return out


def count_spikes(spikes: np.ndarray, core: int, n_features: int) -> np.ndarray:
    """Spike count per feature (channel) of one core, summed over its map: (n_features,) int64."""
    sel = spikes["feature"][spikes["layer"] == core].astype(np.int64)
    if sel.size and sel.max() >= n_features:
        raise SpeckMttError(f"core {core} sent feature {int(sel.max())} but the layer has {n_features} channels; "
                            "the devkit runs another configuration (re-deploy)")
    return np.bincount(sel, minlength=n_features).astype(np.int64)


def _bits(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def neuron_address(c: int, y: int, x: int, shape: Sequence[int]) -> int:
    """Neuron address for ReadNeuronValue, the same packing as sinabs' io.calculate_neuron_address
    (channel in the low bits, then x, then y; y shifted by channel_bits + y_bits as sinabs does)."""
    channels, height, width = (int(v) for v in shape)
    cb, yb, xb = _bits(channels), _bits(height), _bits(width)
    if cb + xb + yb > 18:
        raise SpeckMttError(f"a {channels}x{height}x{width} layer needs more than 18 address bits")
    return (y << (cb + yb)) | (x << cb) | c


def neuron_addresses(shape: Sequence[int]) -> np.ndarray:
    """(N, 4) int64 rows (c, y, x, address) of every neuron of a layer, in (c, y, x) order."""
    channels, height, width = (int(v) for v in shape)
    rows = [(c, y, x, neuron_address(c, y, x, shape)) for c in range(channels) for y in range(height)
            for x in range(width)]
    return np.asarray(rows, np.int64).reshape(-1, 4)


def membranes(values: np.ndarray, core: int, shape: Sequence[int], spikes: np.ndarray,
              threshold_high: float) -> np.ndarray:
    """Membrane-voting score per output channel: states read back (NEURON_VALUE rows of `core`)
    summed over the map, plus spikes * threshold_high (the accumulated input, as the simulator
    reports it). Every neuron must have answered, else the readout is incomplete: SpeckMttError."""
    table = neuron_addresses(shape)
    got = values[values["layer"] == core]
    by_address = dict(zip(got["address"].tolist(), got["neuron_state"].tolist()))
    missing = [int(a) for a in table[:, 3] if int(a) not in by_address]
    if missing:
        raise SpeckMttError(f"core {core}: {len(missing)} of {len(table)} neuron states were not read back "
                            f"(first address {missing[0]}); increase the readout wait")
    score = np.zeros(int(shape[0]), np.float64)
    for c, _, _, address in table.tolist():
        score[c] += by_address[address]
    return score + spikes * float(threshold_high)


def remaining(sample_ids: Iterable[int], done: Iterable[int]) -> list[int]:
    """Sample ids still to run, in the given order (resume bookkeeping)."""
    finished = {int(i) for i in done}
    return [int(i) for i in sample_ids if int(i) not in finished]
