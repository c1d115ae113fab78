"""Deploy-artifact dicts built by hand (docs/design.md#deploy-artifact), for tests and benchmarks of tiny layouts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..contracts.artifact import FORMAT, VERSION


def layer(weight: Any, input_shape: Sequence[int], threshold_high: float, threshold_low: float,
          stride: Sequence[int] = (1, 1), padding: Sequence[int] = (0, 0), pool: Sequence[int] = (1, 1),
          destinations: Sequence[int] = (), readout: str = "spikes") -> dict[str, Any]:
    """One layer entry; output_shape follows from the conv arithmetic."""
    w = torch.as_tensor(weight, dtype=torch.float32)
    c_out, _, kh, kw = w.shape
    _, h, wd = input_shape
    out = [c_out, (h + 2 * padding[0] - kh) // stride[0] + 1, (wd + 2 * padding[1] - kw) // stride[1] + 1]
    return {"weight": w, "stride": list(stride), "padding": list(padding), "threshold_high": threshold_high,
            "threshold_low": threshold_low, "readout": readout, "pool": list(pool),
            "input_shape": list(input_shape), "output_shape": out, "scale": 1.0, "core": None,
            "destinations": list(destinations)}


def artifact(layers: list[dict[str, Any]], input_shape: Sequence[int], input_pool: int = 1,
             head: str = "if", discretized: bool = True, arch: str = "custom",
             float_layers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A whole artifact around `layers` (a chain unless the layers name other destinations)."""
    out_layer = layers[-1]
    return {"format": FORMAT, "version": VERSION, "arch": arch, "head": head, "n_classes": out_layer["output_shape"][0],
            "input_shape": list(input_shape), "input_pool": input_pool, "discretized": discretized,
            "layers": layers, "float_layers": float_layers if float_layers is not None else layers}


def chain(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Point each layer at the next one (the last keeps no destination)."""
    for i, entry in enumerate(layers):
        entry["destinations"] = [i + 1] if i + 1 < len(layers) else []
    return layers
