"""gesture-sim: synthetic DVS-Gesture-like recordings (128x128, 11 classes) of moving hand-like blobs.

A subject faces the camera: the person's RIGHT side is the image's LEFT (side = -1). Each class
is a family of limb paths (chains of Gaussian blobs from elbow/shoulder to hand) built so that a
left-right mirror of class l with parameters P is exactly class FLIP_LABEL[l] with mirrored P
(cx -> 127 - cx, side -> -side). Events: each moving blob of brightness a changes log intensity
by a*dg/dt; pixels emit Poisson counts of |dL/dt| / threshold per 1 ms step (ON where it brightens),
plus uniform background noise. Timestamps are whole milliseconds, as in tonic's DVSGesture files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .events import make_events

SENSOR = (128, 128, 2)
CLASSES = (
    "Hand clapping", "Right hand wave", "Left hand wave", "Right arm cw", "Right arm ccw",
    "Left arm cw", "Left arm ccw", "Arm roll", "Air drums", "Air guitar", "Other gestures",
)
# Left-right mirror of a gesture (RandomFlipLR): right <-> left hand wave, right arm cw <-> left
# arm ccw, right arm ccw <-> left arm cw; clap, roll, drums, guitar and other map to themselves.
FLIP_LABEL = (0, 2, 1, 6, 5, 4, 3, 7, 8, 9, 10)
# side of the moving arm for the one-sided classes (-1 = person's right = image left); None: drawn
_SIDE = {1: -1, 2: 1, 3: -1, 4: -1, 5: 1, 6: 1}
_TURN = {3: -1, 4: 1, 5: 1, 6: -1}  # angle direction that makes the arm circle cw/ccw on screen
_BASE_HZ = (2.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.0, 2.5, 3.0, 3.5, 1.0)
LIGHTING = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
_LIGHT_NOISE = {"fluorescent": 1.0, "fluorescent_led": 1.2, "lab": 0.8, "led": 1.5, "natural": 2.0}


@dataclass(frozen=True)
class GestureParams:
    """Generator parameters; all of them (and `version`) key the on-disk cache."""

    seed: int = 0
    train_users: int = 16  # one sample per class per user: 16 x 11 train recordings
    test_users: int = 6  # users 24.. like DVS-Gesture's test split
    duration_ms: int = 2000
    threshold: float = 0.3  # log-intensity change per event
    brightness: float = 1.0  # log contrast of a hand blob against the background
    noise_hz: float = 0.1  # background events per pixel per second (scaled by lighting)
    version: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


def draw_sample_params(label: int, params: GestureParams, rng: np.random.Generator) -> dict:
    """Per-recording randomness: subject position/scale, tempo, phase, amplitude, side, free path."""
    side = _SIDE.get(label)
    if side is None:
        side = int(rng.choice((-1, 1)))
    return {
        "cx": 64 + rng.uniform(-6, 6), "cy": 66 + rng.uniform(-6, 6), "scale": rng.uniform(0.85, 1.15),
        "freq": _BASE_HZ[label] * rng.uniform(0.8, 1.2), "phase": rng.uniform(0, 2 * np.pi),
        "amp": rng.uniform(0.8, 1.2), "side": side,
        "duration_ms": int(params.duration_ms * rng.uniform(0.9, 1.1)),
        "free_hz": rng.uniform(0.4, 1.6, size=(3, 2)), "free_amp": rng.uniform(2, 6, size=(3, 2)),
        "free_phase": rng.uniform(0, 2 * np.pi, size=(3, 2)),
    }


def mirror_params(label: int, sp: dict) -> tuple[int, dict]:
    """The label and parameters whose paths are the left-right mirror of (label, sp)."""
    return FLIP_LABEL[label], {**sp, "cx": (SENSOR[0] - 1) - sp["cx"], "side": -sp["side"]}


def _chain(a: np.ndarray, b: np.ndarray, n: int) -> list[np.ndarray]:
    """n points from a to b (each (S, 2)): a limb drawn as a chain of blobs."""
    return [a + (b - a) * (k / (n - 1)) for k in range(n)]


def limb_paths(label: int, sp: dict) -> list[tuple[np.ndarray, float]]:
    """[(centre path (S, 2) in pixels, sigma)] of every blob, sampled every 1 ms."""
    t = np.arange(sp["duration_ms"]) / 1000.0
    one = np.ones_like(t)
    cx, cy, sc, s, amp = sp["cx"], sp["cy"], sp["scale"], sp["side"], sp["amp"]
    ph = 2 * np.pi * sp["freq"] * t + sp["phase"]

    def pt(x, y):
        return np.stack([x * one, y * one], axis=1)

    shoulder = (cx + s * 18 * sc, cy - 12 * sc)
    hand_s, arm_s = 4.0 * sc, 2.5 * sc
    blobs: list[tuple[np.ndarray, float]] = []

    def arm(elbow: np.ndarray, hand: np.ndarray) -> None:
        blobs.extend((c, arm_s) for c in _chain(elbow, hand, 4)[:-1])
        blobs.append((hand, hand_s))

    if label == 0:  # clap: hands meet in front of the chest
        for si in (s, -s):
            gap = (3 + 10 * amp * (1 + np.cos(ph)) / 2) * sc
            arm(pt(cx + si * 20 * sc, cy + 14 * sc), pt(cx + si * gap, cy + 4 * sc))
    elif label in (1, 2):  # wave: hand above the shoulder sweeping sideways
        hand = pt(shoulder[0] + s * (6 + 9 * amp * np.sin(ph)) * sc, shoulder[1] - 22 * sc + 2 * sc * np.sin(2 * ph))
        arm(pt(shoulder[0] + s * 10 * sc, shoulder[1] - 6 * sc), hand)
    elif label in (3, 4, 5, 6):  # whole arm circling around the shoulder
        theta = sp["phase"] + _TURN[label] * 2 * np.pi * sp["freq"] * t
        r = 24 * amp * sc
        hand = pt(shoulder[0] + s * r * np.cos(theta), shoulder[1] + r * np.sin(theta))
        arm(pt(*shoulder), hand)
    elif label == 7:  # arm roll: forearms circling each other at the chest
        r = 7 * amp * sc
        for si, off in ((s, 0.0), (-s, np.pi)):
            hand = pt(cx + s * r * np.cos(ph + off), cy + 6 * sc + r * np.sin(ph + off))
            arm(pt(cx + si * 20 * sc, cy + 14 * sc), hand)
    elif label == 8:  # air drums: hands beating up and down alternately
        for si, off in ((s, 0.0), (-s, np.pi)):
            hand = pt(cx + si * 14 * sc, cy + 10 * sc + 8 * amp * sc * np.sin(ph + off))
            arm(pt(cx + si * 24 * sc, cy + 2 * sc), hand)
    elif label == 9:  # air guitar: one hand strums fast, the other slides along the neck
        arm(pt(cx + s * 22 * sc, cy + 4 * sc), pt(cx + s * 8 * sc, cy + 14 * sc + 7 * amp * sc * np.sin(ph)))
        slide = 2 * sc * np.sin(2 * np.pi * 0.7 * t + sp["phase"])
        arm(pt(cx - s * 20 * sc, cy + 8 * sc), pt(cx - s * (26 * sc + slide), cy - 2 * sc - slide))
    elif label == 10:  # other: one hand on a smooth random path
        w = 2 * np.pi * t[:, None, None] * sp["free_hz"] + sp["free_phase"]
        off = (sp["free_amp"] * sc * np.sin(w)).sum(axis=1)  # (S, 2)
        hand = pt(cx + s * (14 * sc + off[:, 0]), cy + off[:, 1])
        arm(pt(cx + s * 22 * sc, cy + 12 * sc), hand)
    else:
        raise ValueError(f"gesture label must be 0..10, got {label}")
    return blobs


def blob_events(path: np.ndarray, sigma: float, gain: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Poisson events of one moving Gaussian blob; gain = log contrast / threshold."""
    vel = np.gradient(path, axis=0)  # pixels per 1 ms step
    radius = int(np.ceil(2.5 * sigma))
    grid = np.arange(-radius, radius + 1)
    base = np.rint(path).astype(np.int64)  # (S, 2)
    px = base[:, 0, None, None] + grid[None, None, :]  # (S, 1, P)
    py = base[:, 1, None, None] + grid[None, :, None]  # (S, P, 1)
    dx = (px - path[:, 0, None, None]).astype(np.float32)
    dy = (py - path[:, 1, None, None]).astype(np.float32)
    g = np.exp(-(dx * dx + dy * dy) / np.float32(2 * sigma * sigma))
    rate = gain * g * (dx * vel[:, 0, None, None] + dy * vel[:, 1, None, None]) / np.float32(sigma * sigma)
    counts = rng.poisson(np.abs(rate))
    s, i, j = np.nonzero(counts)
    n = counts[s, i, j]
    x = np.repeat(base[s, 0] + grid[j], n)
    y = np.repeat(base[s, 1] + grid[i], n)
    p = np.repeat(rate[s, i, j] > 0, n).astype(np.int8)
    t = np.repeat(s, n)
    keep = (x >= 0) & (x < SENSOR[0]) & (y >= 0) & (y < SENSOR[1])
    return x[keep], y[keep], p[keep], t[keep]


def simulate_gesture(label: int, user: int, lighting: str, params: GestureParams) -> np.ndarray:
    """Events (EVENT_DTYPE, t in us, sorted) of one gesture-sim recording; deterministic in its args."""
    rng = np.random.default_rng([params.seed, user, label])
    sp = draw_sample_params(label, params, rng)
    gain = params.brightness / params.threshold
    cols = [blob_events(path, sigma, gain, rng) for path, sigma in limb_paths(label, sp)]
    w, h, _ = SENSOR
    n_noise = rng.poisson(params.noise_hz * _LIGHT_NOISE[lighting] * w * h * sp["duration_ms"] / 1000)
    cols.append((rng.integers(0, w, n_noise), rng.integers(0, h, n_noise), rng.integers(0, 2, n_noise),
                 rng.integers(0, sp["duration_ms"], n_noise)))
    x, y, p, t = (np.concatenate([c[k] for c in cols]) for k in range(4))
    order = np.argsort(t, kind="stable")
    return make_events(x[order], y[order], p[order], t[order] * 1000)


def encode_gesture_npy(events: np.ndarray) -> np.ndarray:
    """(N, 4) int32 columns x, y, p, t in ms: the layout tonic's DVSGesture reads (it multiplies t by 1000)."""
    if len(events) == 0:
        raise ValueError("cannot write an empty recording")
    return np.stack([events["x"], events["y"], events["p"], events["t"] // 1000], axis=1).astype(np.int32)
