"""Fully event-driven, time-step-free simulation of a deployed layout (docs/design.md#neurons, #event-conventions).

`simulate` runs one sample; `simulate_many` streams any number of samples through the
compiled kernel in chunks, one sample per core (memory stays flat in the number of samples),
and `simulate_sharded` splits samples across torch.distributed ranks and gathers the results.

Input handling (documented): events need integer fields x, y, p (and t to order them).
Timestamps only order events; unsorted input is sorted stably by t with a warning. Events
outside the sensor (x, y beyond the artifact's input_shape, or a polarity >= its channels) are
an error by default (`outside="drop"` drops them with a warning). An empty sample gives zero
counts and membranes. Ties in the readout go to the lowest class index.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numba
import numpy as np

from ..errors import DataError
from . import kernels as K
from .load import LoadSpec, sample_load
from .network import SimNet, compile_artifact

Outside = Literal["error", "drop"]


# how often the chip rule departs from a time-stepped multistep IF, per layer (kernels.S_*)
EVENT_COUNTERS = {"floor_hits": K.S_FLOOR, "held_spikes": K.S_HELD, "top_saturations": K.S_TOP_SATURATED}


def _event_counts(stats: np.ndarray) -> dict[str, np.ndarray]:
    return {name: stats[..., col].copy() for name, col in EVENT_COUNTERS.items()}


class UnsortedEventsWarning(UserWarning):
    """Input events were not in timestamp order and were sorted (stably)."""


@dataclass
class SimResult:
    """Readouts of one sample."""

    counts: np.ndarray  # (n_classes,) output spikes per class (summed over the output map)
    membranes: np.ndarray  # (n_classes,) output-layer state summed over its map (see _readout), layer units
    layer_spikes: np.ndarray  # (n_layers,) spikes emitted per layer
    synops: np.ndarray  # (n_layers,) (event, target neuron) updates per layer
    channel_counts: list[np.ndarray]  # per layer, spikes per output channel
    states: list[np.ndarray]  # per layer, final neuron states (C, H, W)
    readout: str
    events: dict[str, np.ndarray] = field(default_factory=dict)  # EVENT_COUNTERS -> (n_layers,)
    times_us: np.ndarray | None = None  # with trace=True: each simulated input event's timestamp
    trace: np.ndarray | None = None  # with trace=True: (n_events, n_layers) SynOps so far after each event

    @property
    def prediction(self) -> int:
        return int(np.argmax(self.membranes if self.readout == "membrane" else self.counts))


@dataclass
class BatchResult:
    """Readouts of many samples, row i = the i-th sample given."""

    counts: np.ndarray  # (N, n_classes) output-layer spikes
    membranes: np.ndarray  # (N, n_classes)
    spiking_counts: np.ndarray  # (N, C) spikes of the last spiking layer (what SD compares)
    channel_counts: np.ndarray  # (N, all channels) spikes per channel of every layer (SimNet.channel_slice)
    layer_spikes: np.ndarray  # (N, n_layers)
    synops: np.ndarray  # (N, n_layers)
    events: dict[str, np.ndarray]  # EVENT_COUNTERS -> (N, n_layers)
    n_events: np.ndarray  # (N,) input events simulated (after dropping, if any)
    labels: np.ndarray  # (N,) int, -1 where unknown
    sample_ids: np.ndarray  # (N,) int
    readout: str
    seconds: float = 0.0  # wall time of the whole run (loading included)
    sim_seconds: float = 0.0  # time spent inside the compiled kernel
    extra: dict[str, Any] = field(default_factory=dict)
    load: dict[str, np.ndarray] = field(default_factory=dict)  # with a LoadSpec: load.sample_load per sample, stacked

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.membranes if self.readout == "membrane" else self.counts, axis=1)

    def __len__(self) -> int:
        return len(self.counts)


def prepare_events(net: SimNet, events: np.ndarray, outside: Outside = "error",
                   where: str = "sample") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate, order and input-pool one sample's events -> int32 (x, y, channel) arrays."""
    return _prepared(net, events, outside, where)[:3]


def _prepared(net: SimNet, events: np.ndarray, outside: Outside,
              where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """prepare_events plus the kept events' timestamps (int64 us; their index without a t field)."""
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not {"x", "y", "p"} <= set(names):
        raise DataError(f"{where}: events must be a structured array with fields x, y, p (and t), got "
                        f"{getattr(events, 'dtype', type(events))}")
    n = len(events)
    if n == 0:
        empty = np.zeros(0, np.int32)
        return empty, empty, empty, np.zeros(0, np.int64)
    if "t" in names:
        t = events["t"]
        if np.any(t[1:] < t[:-1]):
            warnings.warn(f"{where}: events not in timestamp order; sorted stably by t", UnsortedEventsWarning,
                          stacklevel=3)
            events = events[np.argsort(t, kind="stable")]
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = events["p"].astype(np.int64)
    t = events["t"].astype(np.int64) if "t" in names else np.arange(n, dtype=np.int64)
    c, h, w = net.input_shape
    bad = (x < 0) | (x >= w) | (y < 0) | (y >= h) | (p < 0) | (p >= c)
    if bad.any():
        k = int(np.argmax(bad))
        msg = (f"{where}: {int(bad.sum())} of {n} events lie outside the {w}x{h} sensor with {c} polarities "
               f"(first: x={x[k]}, y={y[k]}, p={p[k]}); use the dataset the network was deployed for")
        if outside == "error":
            raise DataError(msg + " or drop them with outside='drop'")
        warnings.warn(msg + "; dropped", stacklevel=3)
        keep = ~bad
        x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    if net.lay[0, K.F_CIN] == 1:
        p = np.zeros_like(p)  # one input channel: polarities merged
    pool = net.input_pool
    return (x // pool).astype(np.int32), (y // pool).astype(np.int32), p.astype(np.int32), t


def _as_net(artifact: dict[str, Any] | SimNet, float_mode: bool) -> SimNet:
    return artifact if isinstance(artifact, SimNet) else compile_artifact(artifact, float_mode=float_mode)


def _kernel_args(net: SimNet) -> tuple:
    return net.lay, net.weights, net.th_hi, net.th_lo, net.vb, net.dptr, net.didx


def _trace(n_events: int, net: SimNet, on: bool) -> np.ndarray:
    return np.zeros((n_events if on else 0, net.n_layers), np.int64)


def simulate(artifact: dict[str, Any] | SimNet, events: np.ndarray, float_mode: bool = False,
             outside: Outside = "error", layerwise: bool = False, trace: bool = False) -> SimResult:
    """Simulate one sample event by event (layerwise=True: layer by layer, same result for
    feed-forward nets). Pass a SimNet (compile_artifact) to avoid re-flattening per call.
    trace=True also returns each input event's time and the per-layer SynOps so far (event by event)."""
    net = _as_net(artifact, float_mode)
    xs, ys, ps, ts = _prepared(net, events, outside, "sample")
    state = np.zeros(net.n_state, net.vb.dtype)
    counts = np.zeros(net.n_channels_total, np.int64)
    stats = np.zeros((net.n_layers, K.N_STATS), np.int64)
    if layerwise:
        if trace:
            raise ValueError("trace needs the event-by-event run (layerwise=False)")
        K.run_layerwise(xs, ys, ps, *_kernel_args(net), state, counts, stats)
    else:
        K.run_events(xs, ys, ps, *_kernel_args(net), state, counts, stats, synops := _trace(len(xs), net, trace))
    result = _single_result(net, state, counts, stats)
    if trace:
        result.times_us, result.trace = ts, synops
    return result


def _readout(net: SimNet, state_sums: np.ndarray, out_counts: np.ndarray) -> np.ndarray:
    """Output membranes: the final state, plus spikes * theta_high for a membrane readout (its
    accumulated input, exact with subtract reset even if it ever fired)."""
    membranes = np.asarray(state_sums, np.float64)
    if net.readout == "membrane":
        membranes = membranes + out_counts * float(net.th_hi[net.out_layer])
    return membranes


def _single_result(net: SimNet, state: np.ndarray, counts: np.ndarray, stats: np.ndarray) -> SimResult:
    per_layer = [counts[net.channel_slice(i)].copy() for i in range(net.n_layers)]
    out_type = np.int64 if net.integer else state.dtype  # the kernels hold chip integers as exact float32
    states = []
    for i in range(net.n_layers):
        c, h, w = (int(v) for v in net.lay[i, [K.F_COUT, K.F_HOUT, K.F_WOUT]])
        start = int(net.lay[i, K.F_SOFF])
        states.append(state[start:start + c * h * w].reshape(h, w, c).transpose(2, 0, 1).astype(out_type))
    out = net.out_layer
    return SimResult(counts=per_layer[out], membranes=_readout(net, states[out].sum((1, 2)), per_layer[out]),
                     layer_spikes=np.array([pc.sum() for pc in per_layer], np.int64), synops=stats[:, K.S_SYNOPS],
                     channel_counts=per_layer, states=states, readout=net.readout, events=_event_counts(stats))


Sample = tuple[np.ndarray, int]


def _chunks(samples: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    chunk: list[Sample] = []
    for item in samples:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def set_workers(workers: int | None) -> int:
    """Use `workers` threads for the per-sample prange (default and cap: all cores numba sees)."""
    n = numba.config.NUMBA_NUM_THREADS if not workers else max(1, min(int(workers), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def simulate_many(artifact: dict[str, Any] | SimNet, samples: Iterable[Sample], workers: int | None = None,
                  float_mode: bool = False, outside: Outside = "error", chunk_size: int = 64,
                  sample_ids: Iterable[int] | None = None, progress=None, load: LoadSpec | None = None) -> BatchResult:
    """Stream (events, label) pairs through the simulator, `workers` samples at a time in parallel.

    Only one chunk of events is held at once. `progress(n_done)` is called after each chunk.
    load: also reduce each sample's per-event SynOps to its per-core load (eventsim.load), kept
    per sample in BatchResult.load (the per-event trace lives for one chunk only).
    """
    net = _as_net(artifact, float_mode)
    set_workers(workers)
    start = time.perf_counter()
    sim_seconds = 0.0
    parts: dict[str, list] = {k: [] for k in ("counts", "membranes", "stats", "n", "labels", "load")}
    ids = iter(sample_ids) if sample_ids is not None else None
    all_ids: list[int] = []
    done = 0
    for chunk in _chunks(samples, chunk_size):
        xs, ys, ps, ts, lens, labels = [], [], [], [], [], []
        for j, (events, label) in enumerate(chunk):
            sid = next(ids) if ids is not None else done + j
            all_ids.append(int(sid))
            x, y, p, t = _prepared(net, events, outside, f"sample {sid}")
            xs.append(x), ys.append(y), ps.append(p), ts.append(t), lens.append(len(x))
            labels.append(int(label) if label is not None else -1)
        offsets = np.zeros(len(chunk) + 1, np.int64)
        offsets[1:] = np.cumsum(lens)
        counts = np.zeros((len(chunk), net.n_channels_total), np.int64)
        stats = np.zeros((len(chunk), net.n_layers, K.N_STATS), np.int64)
        membranes = np.zeros((len(chunk), net.n_classes), np.float64)
        trace = _trace(int(offsets[-1]), net, load is not None)
        t0 = time.perf_counter()
        K.run_batch(np.concatenate(xs), np.concatenate(ys), np.concatenate(ps), offsets, *_kernel_args(net),
                    net.n_state, counts, stats, membranes, net.out_layer, trace)
        sim_seconds += time.perf_counter() - t0
        if load is not None:
            parts["load"] += [sample_load(t, trace[offsets[j]:offsets[j + 1]], load) for j, t in enumerate(ts)]
        parts["counts"].append(counts)
        parts["membranes"].append(membranes)
        parts["stats"].append(stats)
        parts["n"].append(np.asarray(lens, np.int64))
        parts["labels"].append(np.asarray(labels, np.int64))
        done += len(chunk)
        if progress is not None:
            progress(done)
    return _batch_result(net, parts, np.asarray(all_ids, np.int64), time.perf_counter() - start, sim_seconds)


def _batch_result(net: SimNet, parts: dict[str, list[np.ndarray]], ids: np.ndarray, seconds: float,
                  sim_seconds: float) -> BatchResult:
    def cat(key: str, width: int, dtype) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else np.zeros((0, width) if width else 0, dtype)

    counts = cat("counts", net.n_channels_total, np.int64)
    stats = np.concatenate(parts["stats"]) if parts["stats"] else np.zeros((0, net.n_layers, K.N_STATS), np.int64)
    layer_spikes = np.stack([counts[:, net.channel_slice(i)].sum(1) for i in range(net.n_layers)], 1) \
        if len(counts) else np.zeros((0, net.n_layers), np.int64)
    load = {k: np.stack([row[k] for row in parts["load"]]) for k in ("peak", "above_us", "span_us")} \
        if parts["load"] else {}
    return BatchResult(
        counts=counts[:, net.channel_slice(net.out_layer)],
        membranes=_readout(net, cat("membranes", net.n_classes, np.float64), counts[:, net.channel_slice(net.out_layer)]),
        spiking_counts=counts[:, net.channel_slice(net.spiking_layer)], channel_counts=counts, layer_spikes=layer_spikes,
        synops=stats[:, :, K.S_SYNOPS], events=_event_counts(stats), n_events=cat("n", 0, np.int64),
        labels=cat("labels", 0, np.int64), sample_ids=ids, readout=net.readout, seconds=seconds,
        sim_seconds=sim_seconds, load=load)


def concat_results(results: list[BatchResult]) -> BatchResult:
    """Join partial results (e.g. from several ranks) and order them by sample id."""
    ids = np.concatenate([r.sample_ids for r in results])
    order = np.argsort(ids, kind="stable")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for r in results])[order]

    return BatchResult(counts=cat("counts"), membranes=cat("membranes"), spiking_counts=cat("spiking_counts"),
                       channel_counts=cat("channel_counts"),
                       layer_spikes=cat("layer_spikes"), synops=cat("synops"),
                       events={k: np.concatenate([r.events[k] for r in results])[order] for k in results[0].events},
                       n_events=cat("n_events"),
                       labels=cat("labels"), sample_ids=ids[order], readout=results[0].readout,
                       seconds=max(r.seconds for r in results), sim_seconds=sum(r.sim_seconds for r in results),
                       load={k: np.concatenate([r.load[k] for r in results])[order] for k in results[0].load})


def simulate_sharded(artifact: dict[str, Any] | SimNet, dataset, indices: Iterable[int] | None = None,
                     **kwargs) -> BatchResult:
    """Simulate dataset[i] for i in `indices`, split across torch.distributed ranks when a process
    group is initialised (rank r takes every world-th sample); every rank returns the gathered,
    id-ordered result of all samples. Without a process group it is simulate_many."""
    import torch.distributed as dist

    idx = list(range(len(dataset)) if indices is None else indices)
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed:
        idx = idx[dist.get_rank()::dist.get_world_size()]
    result = simulate_many(artifact, (dataset[i] for i in idx), sample_ids=idx, **kwargs)
    if not distributed:
        return result
    gathered: list[BatchResult | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, result)
    return concat_results([r for r in gathered if r is not None and len(r)] or [result])
