"""A straightforward per-event pure-Python simulator: the yardstick for tests and the benchmark.

Written independently of the compiled kernels (nested lists, a FIFO of pending spikes, every
kernel position tried), sharing only the chip neuron rule (kernels.chip_neuron.py_func).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from .kernels import chip_neuron
from .network import state_range

_neuron = chip_neuron.py_func


def simulate_reference(artifact: dict[str, Any], events: np.ndarray, float_mode: bool = False) -> dict[str, Any]:
    """Output counts per class, final output membranes and SynOps of one (sorted, in-sensor) sample."""
    layers = artifact["layers"]
    if float_mode:
        layers = [{**a, **b} for a, b in zip(layers, artifact["float_layers"])]
    integer = artifact.get("discretized", False) and not float_mode
    num = int if integer else float
    nets = []
    for spec in layers:
        w = spec["weight"].tolist()
        c_out, h, wd = spec["output_shape"]
        nets.append({"w": [[[[num(v) for v in row] for row in k] for k in ci] for ci in w],
                     "state": [[[num(0)] * wd for _ in range(h)] for _ in range(c_out)],
                     "counts": [0] * c_out, "th": (num(spec["threshold_high"]), num(spec["threshold_low"])),
                     "range": state_range(integer, spec.get("scale")), "events": [0, 0, 0], "spec": spec})
    pool = int(artifact.get("input_pool", 1))
    synops = 0
    one_channel = len(nets[0]["w"][0]) == 1
    for e in events:
        queue = deque([(0, 0 if one_channel else int(e["p"]), int(e["y"]) // pool, int(e["x"]) // pool)])
        while queue:
            l, ci, y, x = queue.popleft()
            net = nets[l]
            spec = net["spec"]
            (sy, sx), (py, px) = spec["stride"], spec["padding"]
            c_out, h, wd = spec["output_shape"]
            targets = []
            for co in range(c_out):
                for ky in range(len(net["w"][co][ci])):
                    for kx in range(len(net["w"][co][ci][ky])):
                        ty, tx = y + py - ky, x + px - kx
                        if ty % sy or tx % sx:
                            continue
                        oy, ox = ty // sy, tx // sx
                        if 0 <= oy < h and 0 <= ox < wd:
                            targets.append((co, oy, ox, net["w"][co][ci][ky][kx]))
            targets.sort(key=lambda t: t[:3])
            theta_high, theta_low = net["th"]
            for co, oy, ox, w in targets:
                synops += 1
                v, spiked, *flags = _neuron(net["state"][co][oy][ox], w, theta_high, theta_low, *net["range"])
                net["events"] = [n + bool(f) for n, f in zip(net["events"], flags)]
                net["state"][co][oy][ox] = v
                if spiked:
                    net["counts"][co] += 1
                    ky, kx = spec["pool"]
                    for d in spec["destinations"]:
                        _, dh, dw = layers[d]["input_shape"]
                        if oy // ky < dh and ox // kx < dw:
                            queue.append((d, co, oy // ky, ox // kx))
    out = next(n for n in nets if not n["spec"]["destinations"])
    return {"counts": np.array(out["counts"]), "membranes": np.array([sum(sum(r) for r in c) for c in out["state"]],
                                                                      dtype=np.float64),
            "synops": synops, "layer_counts": [np.array(n["counts"]) for n in nets],
            "events": {k: np.array([n["events"][i] for n in nets]) for i, k in
                       enumerate(("floor_hits", "held_spikes", "top_saturations"))}}
