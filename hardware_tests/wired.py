"""Hand-wired networks for the hardware tests: every spike path is known, so each test's expected
output follows from the wiring (and is checked in the simulator offline, tests/test_devkit.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

EV = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])
OFF, ON = 0, 1  # polarity = input channel
# 3C1FC: (polarity, y // 8, x // 8) -> class. Swapping x and y, or flipping the polarity, moves the vote.
ROUTES = {(ON, 0, 2): 1, (ON, 2, 0): 2, (OFF, 0, 2): 5, (OFF, 2, 0): 6}


def _weighted(model) -> list[torch.nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for m in layers:
            m.weight.zero_()
    return layers


def events(*rows) -> np.ndarray:
    """A sample from (x, y, p, t_us) rows."""
    return np.array(list(rows), EV)


def wired_nmnist(off_weight: float = 1.0):
    """3C1FC where an event (x, y, p) takes one path: channel p of every layer at the mapped position,
    then the class ROUTES gives for (p, y // 8, x // 8), if any. Each weight equals the threshold it
    drives (the 4 after an AvgPool is 1 once sinabs folds the 1/4 in), so an event makes one spike per
    layer, except at the stride-2 conv where only events with (y // 4, x // 4) both even go on (its
    centre tap). off_weight < 1 leaves an OFF event's first-layer membrane below threshold: one OFF
    event gives nothing, two give the spike (so does one more in the next sample if the reset failed)."""
    from speck_mtt.models import build_model

    model = build_model("nmnist_3c1fc")
    conv0, conv1, conv2, fc = _weighted(model)
    with torch.no_grad():
        for p in (OFF, ON):
            conv0.weight[p, p, 1, 1] = off_weight if p == OFF else 1.0
            conv1.weight[p, p, 1, 1] = conv2.weight[p, p, 1, 1] = 4.0
        for (p, y4, x4), cls in ROUTES.items():
            fc.weight[cls, p * 16 + y4 * 4 + x4] = 1.0  # flatten index of (channel p, y4, x4) in the 16x4x4 map
    return model, {}


# wired_rule: layer 0 gives channel ON of the neuron at (16, 2) three weights (threshold 100 once
# sinabs scales the largest, 1.27, to 127): +127 from an ON event on it, +73 from an OFF event one
# column right of it, -127 from an OFF event one column left; (16, 2) then votes class 1.
RULE_NEURON = (16, 2)
RULE_SAMPLES = {
    # 127 spikes and leaves 27 (subtract) or 0 (reset to zero); +73 reaches 100 only after a subtract
    "reset": events((16, 2, ON, 0), (17, 2, OFF, 10)),
    # -254 stays at a floor of -8 thresholds (then +254 ends at 0: no spike) but is clamped to -100 at
    # -1 (then +254 ends at 154: one spike)
    "floor": events((15, 2, OFF, 0), (15, 2, OFF, 10), (16, 2, ON, 20), (16, 2, ON, 30)),
    # 73 held for a second without a leak, +73 at t = 1 s spikes then and only then
    "leak": events((17, 2, OFF, 0), (17, 2, OFF, 1_000_000)),
}


def wired_rule():
    """3C1FC where the chip neuron rule itself decides the answer (RULE_SAMPLES): negative weights
    and steps below threshold at the layer-0 neuron RULE_NEURON, whose ON channel then takes
    wired_nmnist's one-spike path to class 1. Its left neighbour (14, 2), which the floor sample
    also excites, is stopped at the stride-2 conv; the right one (18, 2) is only ever inhibited."""
    from speck_mtt.models import build_model

    model = build_model("nmnist_3c1fc")
    conv0, conv1, conv2, fc = _weighted(model)
    with torch.no_grad():
        conv0.weight[ON, ON, 1, 1] = 1.27
        conv0.weight[ON, OFF, 1, 2] = 0.73  # an OFF event at x + 1 (cross-correlation: x = ox - 1 + kx)
        conv0.weight[ON, OFF, 1, 0] = -1.27  # an OFF event at x - 1
        conv1.weight[ON, ON, 1, 1] = conv2.weight[ON, ON, 1, 1] = 4.0
        fc.weight[1, ON * 16 + 0 * 4 + 2] = 1.0  # (ON, y // 8 = 0, x // 8 = 2)
    return model, {}


def wired_gesture():
    """4C2FC (bias-free) behind its 2x2 input pooling, membrane-voting head: an event whose pooled
    coordinates (x // 2, y // 2) are both even (the stride-2 first conv's centre tap) spikes channel
    0 of every conv layer and then hidden unit k = (y // 32) * 4 + x // 32; the 11 output membranes
    then hold column k of an asymmetric integer matrix, so each position leaves its own vector."""
    from speck_mtt.models import build_model

    model = build_model("gesture_4c2fc", bn=False)
    *convs, hidden, out = _weighted(model)
    with torch.no_grad():
        convs[0].weight[0, :, 1, 1] = 4.0  # both polarities
        for conv in convs[1:]:
            conv.weight[0, 0, 1, 1] = 4.0
        for k in range(16):
            hidden.weight[k, k] = 1.0  # flatten index of (channel 0, k // 4, k % 4) in the 32x4x4 map
        j, k = torch.meshgrid(torch.arange(11), torch.arange(64), indexing="ij")
        out.weight.copy_(((j + 1) * (k + 2) % 17 - 8).float())  # distinct columns for k < 16
    return model, {"bn": False}


def deploy_model(root: Path, model, arch_kwargs: dict, floor: float | None = None) -> Path:
    """A speck2e deploy directory (artifact.pt + model.pt) of `model`, as `speck-mtt deploy [--floor]` writes it."""
    from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
    from speck_mtt.chip.deploy import deploy

    checkpoint = root / "model.ckpt"
    save_checkpoint(make_checkpoint(model, arch_kwargs), checkpoint)
    deploy(checkpoint, "speck2e", root / "deploy", samples=0, floor=floor)
    return root / "deploy"
