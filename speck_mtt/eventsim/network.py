"""The deploy artifact (docs/design.md#deploy-artifact) checked and flattened into the arrays the kernels use.

Documented choices:
- Input events go to layer 0 after the artifact's input pooling (coordinate // input_pool).
  A layer-0 input with one channel merges polarities (every event to channel 0).
- Destinations must have higher indices than their source (feed-forward); within one input
  event the layers are processed in index order.
- Sum pooling maps an output spike (c, y, x) to (c, y // ky, x // kx); rows/columns beyond
  the floored pooled map are dropped (as sinabs' SumPool2d does).
- Integer mode (the default for a discretized artifact) holds thresholds and states as float32
  and weights as int8 (int16 if they do not fit): every value is an integer below 2^24, so float32
  arithmetic is exact, and it runs 8 lanes per SIMD instruction where int64 ran 4 (numba widens
  int32 arithmetic to int64). Each state saturates to the chip's 16-bit register. Float mode uses
  "float_layers" in float64, with the register range divided by the layer's "scale" (a layer
  without one is unbounded).
- The output layer is the one layer without destinations; the "last spiking layer" is the
  output layer for IF voting and the layer feeding a membrane-readout output otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..contracts.artifact import FORMAT
from ..errors import SpeckMttError
from ..files import load_torch
from . import kernels as K


@dataclass(frozen=True)
class SimNet:
    """A deploy artifact ready for the kernels (immutable; build once, simulate many samples)."""

    arch: str
    head: str
    n_classes: int
    input_shape: tuple[int, int, int]  # sensor [C, H, W] before input pooling
    input_pool: int
    integer: bool
    lay: np.ndarray  # (L, N_FIELDS) int64
    weights: np.ndarray  # int64 or float64, all layers concatenated
    th_hi: np.ndarray
    th_lo: np.ndarray
    vb: np.ndarray  # (L, 2) state range (low, high) of each layer, in its units
    dptr: np.ndarray
    didx: np.ndarray
    n_state: int
    out_layer: int
    spiking_layer: int
    readout: str
    scales: tuple[float, ...]

    @property
    def n_layers(self) -> int:
        return int(self.lay.shape[0])

    @property
    def channels(self) -> np.ndarray:
        return self.lay[:, K.F_COUT]

    def channel_slice(self, layer: int) -> slice:
        start = int(self.lay[layer, K.F_COFF])
        return slice(start, start + int(self.lay[layer, K.F_COUT]))

    @property
    def n_channels_total(self) -> int:
        return int(self.channels.sum())


def load_artifact(path: str | Path) -> dict[str, Any]:
    """Read DEPLOY_DIR/artifact.pt (or the file itself) written by `speck-mtt deploy`."""
    path = Path(path)
    if path.is_dir():
        path = path / "artifact.pt"
    if not path.is_file():
        raise SpeckMttError(f"{path}: no deploy artifact; run `speck-mtt deploy CHECKPOINT --out DIR` first")
    artifact = load_torch(path)
    if not isinstance(artifact, dict) or artifact.get("format") != FORMAT:
        raise SpeckMttError(f"{path}: not a speck-mtt deploy artifact (no '{FORMAT}' tag); "
                            "pass a directory written by `speck-mtt deploy`")
    return artifact


def _shape(value: Any, n: int, where: str, key: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
    except TypeError as exc:
        raise SpeckMttError(f"{where}: '{key}' must be a list of {n} ints, got {value!r}") from exc
    if len(out) != n:
        raise SpeckMttError(f"{where}: '{key}' must be a list of {n} ints, got {value!r}")
    return out


def _as_number(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def state_range(integer: bool, scale: Any) -> tuple[float, float]:
    """The 16-bit register range in a layer's units: chip units when integer, float units (chip
    units / scale) for a float layer of a discretized layout, unbounded for a hand-made float net."""
    if integer:
        return K.STATE_MIN, K.STATE_MAX
    if scale is None:
        return -np.inf, np.inf
    scale = _as_number(scale)
    return K.STATE_MIN / scale, K.STATE_MAX / scale


def _compact(weights: np.ndarray, dtype) -> np.ndarray:
    """Integer weights in the narrowest of int8/int16 that holds them (the chip's are int8): a
    quarter of the memory traffic of float32 per update; float weights as `dtype`."""
    if dtype == np.float32:
        for narrow in (np.int8, np.int16):
            info = np.iinfo(narrow)
            if weights.size == 0 or (weights.min() >= info.min and weights.max() <= info.max):
                return weights.astype(narrow)
    return weights.astype(dtype)


def compile_artifact(artifact: dict[str, Any], float_mode: bool = False) -> SimNet:
    """Check the artifact's shapes and wiring and flatten it; every problem is a one-line error."""
    if artifact.get("format") != FORMAT:
        raise SpeckMttError(f"not a speck-mtt deploy artifact (format {artifact.get('format')!r}, expected '{FORMAT}')")
    layers = artifact.get("layers") or []
    if not layers:
        raise SpeckMttError("deploy artifact has no layers; re-run `speck-mtt deploy`")
    if float_mode:
        float_layers = artifact.get("float_layers")
        if not float_layers:
            raise SpeckMttError("deploy artifact has no 'float_layers'; simulate without --float or re-deploy")
        if len(float_layers) != len(layers):
            raise SpeckMttError(f"deploy artifact has {len(layers)} layers but {len(float_layers)} float_layers")
        layers = [{**base, **flt} for base, flt in zip(layers, float_layers)]
    integer = bool(artifact.get("discretized", False)) and not float_mode
    dtype = np.float32 if integer else np.float64  # integers held exactly (module docstring)

    n_layers = len(layers)
    lay = np.zeros((n_layers, K.N_FIELDS), np.int64)
    weights, th_hi, th_lo, dests, scales, bounds = [], [], [], [], [], []
    woff = soff = coff = 0
    for i, layer in enumerate(layers):
        where = f"deploy artifact layer {i}"
        w = layer["weight"]
        w = w.detach().cpu().double().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, np.float64)
        if w.ndim != 4:
            raise SpeckMttError(f"{where}: weight must be (C_out, C_in, kH, kW), got shape {w.shape}")
        c_out, c_in, kh, kw = w.shape
        sy, sx = _shape(layer["stride"], 2, where, "stride")
        py, px = _shape(layer["padding"], 2, where, "padding")
        pool_y, pool_x = _shape(layer.get("pool", [1, 1]), 2, where, "pool")
        cin_s, hin, win = _shape(layer["input_shape"], 3, where, "input_shape")
        cout_s, hout, wout = _shape(layer["output_shape"], 3, where, "output_shape")
        if min(sy, sx, pool_y, pool_x) < 1 or min(py, px) < 0:
            raise SpeckMttError(f"{where}: stride and pool must be >= 1 and padding >= 0")
        expect = (c_out, (hin + 2 * py - kh) // sy + 1, (win + 2 * px - kw) // sx + 1)
        if cin_s != c_in or (cout_s, hout, wout) != expect or min(expect) < 1:
            raise SpeckMttError(f"{where}: shapes disagree: input {[cin_s, hin, win]} through a {c_in}->{c_out} "
                                f"{kh}x{kw} kernel, stride {[sy, sx]}, padding {[py, px]} gives {list(expect)}, "
                                f"but output_shape is {[cout_s, hout, wout]}")
        t_hi, t_lo = _as_number(layer["threshold_high"]), _as_number(layer["threshold_low"])
        if integer and (not np.array_equal(w, np.round(w)) or t_hi != round(t_hi) or t_lo != round(t_lo)):
            raise SpeckMttError(f"{where}: 'discretized' artifact holds non-integer weights or thresholds; "
                                "re-deploy or simulate with --float")
        lay[i] = [c_in, hin, win, c_out, hout, wout, kh, kw, sy, sx, py, px, pool_y, pool_x, woff, soff, coff]
        weights.append(w.transpose(1, 2, 3, 0).ravel())  # (C_in, kH, kW, C_out): see kernels.py
        th_hi.append(t_hi)
        th_lo.append(t_lo)
        scales.append(float(layer.get("scale", 1.0)))
        bounds.append(state_range(integer, layer.get("scale")))
        dests.append([int(d) for d in layer.get("destinations", [])])
        woff += w.size
        soff += c_out * hout * wout
        coff += c_out

    for i, ds in enumerate(dests):
        for d in ds:
            if not i < d < n_layers:
                raise SpeckMttError(f"deploy artifact layer {i}: destination {d} is not a later layer "
                                    f"(the simulator runs feed-forward layouts only)")
            pooled = (lay[i, K.F_COUT], lay[i, K.F_HOUT] // lay[i, K.F_POOLY], lay[i, K.F_WOUT] // lay[i, K.F_POOLX])
            dest_in = tuple(lay[d, [K.F_CIN, K.F_HIN, K.F_WIN]])
            if tuple(int(v) for v in pooled) != tuple(int(v) for v in dest_in):
                raise SpeckMttError(f"deploy artifact layer {i}: pooled output {list(map(int, pooled))} does not "
                                    f"match the input_shape {list(map(int, dest_in))} of destination layer {d}")
    outputs = [i for i, ds in enumerate(dests) if not ds]
    if len(outputs) != 1:
        raise SpeckMttError(f"deploy artifact must have exactly one output layer (no destinations), found {outputs}")
    out = outputs[0]
    readout = str(layers[out].get("readout", "spikes"))
    if readout not in ("spikes", "membrane"):
        raise SpeckMttError(f"deploy artifact layer {out}: readout must be 'spikes' or 'membrane', got {readout!r}")
    spiking = out
    if readout == "membrane":
        sources = [i for i, ds in enumerate(dests) if out in ds]
        spiking = sources[-1] if sources else out

    head = str(artifact.get("head", "if"))
    n_classes = int(artifact.get("n_classes", lay[out, K.F_COUT]))
    if n_classes != lay[out, K.F_COUT]:
        raise SpeckMttError(f"deploy artifact: n_classes {n_classes} but the output layer has {lay[out, K.F_COUT]} channels")
    c, h, w_ = _shape(artifact["input_shape"], 3, "deploy artifact", "input_shape")
    pool = int(artifact.get("input_pool", 1))
    pooled_in = (c, h // pool, w_ // pool) if pool >= 1 else None
    layer0_in = tuple(int(v) for v in lay[0, [K.F_CIN, K.F_HIN, K.F_WIN]])
    merged = pooled_in is not None and layer0_in[0] == 1 and layer0_in[1:] == pooled_in[1:]
    if pooled_in is None or (layer0_in != pooled_in and not merged):
        raise SpeckMttError(f"deploy artifact: input {[c, h, w_]} pooled by {pool} does not match layer 0's "
                            f"input_shape {list(layer0_in)}")

    ptr = np.zeros(n_layers + 1, np.int64)
    ptr[1:] = np.cumsum([len(ds) for ds in dests])
    return SimNet(
        arch=str(artifact.get("arch", "?")), head=head, n_classes=n_classes, input_shape=(c, h, w_),
        input_pool=pool, integer=integer, lay=lay, weights=_compact(np.concatenate(weights), dtype),
        th_hi=np.asarray(th_hi, dtype), th_lo=np.asarray(th_lo, dtype), vb=np.asarray(bounds, dtype).reshape(-1, 2),
        dptr=ptr,
        didx=np.asarray([d for ds in dests for d in ds], np.int64), n_state=soff, out_layer=out,
        spiking_layer=spiking, readout=readout, scales=tuple(scales))
