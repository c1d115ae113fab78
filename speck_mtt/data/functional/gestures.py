"""gesture-sim: synthetic DVS-Gesture-like recordings (128x128, 11 classes) of moving hand-like blobs.

A subject faces the camera: the person's RIGHT side is the image's LEFT (side = -1). Each class
is a family of limb paths (chains of Gaussian blobs from elbow/shoulder to hand) built so that a
left-right mirror of class l with parameters P is exactly class FLIP_LABEL[l] with mirrored P
(cx -> 127 - cx, side -> -side). Events: each moving blob of brightness a changes log intensity
by a*dg/dt; pixels emit Poisson counts of |dL/dt| / threshold per 1 ms step (ON where it brightens),
plus uniform background noise. Timestamps are whole milliseconds, as in tonic's DVSGesture files.

Version 2 (the default; GestureParams.of_version(1) reproduces version 1 exactly) has the real
set's structure where it makes the task hard: 29 subjects (train users 1-23, test users 24-29, as
in DVS-Gesture), each with their own size, position, tempo, arm-circle ellipse, sleeve contrast
(a dark sleeve flips the arm's polarity) and body sway (the only cue of where the body is, so of
which arm moves); every subject recorded under all five lighting folders, each lighting with its
noise: 120 Hz fluorescent flicker on static scene edges, hot pixels and more shot noise under LED,
lower contrast and a backlit scene (all polarities inverted) in natural light; time-warped motion;
and "other" as one or two hands on random paths anywhere around the body.
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
LIGHTING = ("fluorescent", "fluorescent_led", "lab", "led", "natural")  # DVS-Gesture's folder names
_LIGHT_NOISE = {"fluorescent": 1.0, "fluorescent_led": 1.2, "lab": 0.8, "led": 1.5, "natural": 2.0}  # version 1
_BODY_STEP_MS = 10  # the body sways < 0.1 px per ms: simulated in 10 ms steps (10x cheaper)
MAINS_FLICKER_HZ = 120.0  # fluorescent tubes flicker at twice the (US) mains frequency


@dataclass(frozen=True)
class Light:
    """Version 2's lighting: contrast factor, P(backlit: polarity inverted), shot-noise factor,
    hot pixels, flickering pixels (static edges under fluorescent tubes)."""

    contrast: float
    backlit: float
    shot: float
    hot_px: int
    flicker_px: int


LIGHTS = {"fluorescent": Light(1.0, 0.0, 1.0, 4, 300), "fluorescent_led": Light(0.9, 0.0, 1.5, 12, 200),
          "lab": Light(1.0, 0.0, 0.8, 4, 100), "led": Light(0.85, 0.0, 2.0, 24, 0),
          "natural": Light(0.6, 0.5, 2.5, 4, 0)}


@dataclass(frozen=True)
class GestureParams:
    """Generator parameters (the defaults are version 2); all of them key the on-disk cache."""

    seed: int = 0
    train_users: int = 23  # users 1-23 train, like DVS-Gesture
    test_users: int = 6  # users 24.. like DVS-Gesture's test split
    sessions: int = 5  # lighting folders per user, one recording per class in each (version 1: 1)
    duration_ms: int = 2000
    threshold: float = 0.3  # log-intensity change per event
    brightness: float = 1.0  # log contrast of a hand blob against the background
    noise_hz: float = 0.1  # background events per pixel per second (scaled by lighting)
    spread: float = 1.0  # version 2: scales how much subjects and recordings differ (the difficulty)
    version: int = 2  # bump whenever the generator's code or defaults change its output

    def __post_init__(self) -> None:
        if not 1 <= self.sessions <= len(LIGHTING):
            raise ValueError(f"gesture-sim sessions must be 1..{len(LIGHTING)} (one per lighting folder), got {self.sessions}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of_version(cls, version: int, **changes) -> "GestureParams":
        """The parameters of generator version 1 or 2, with `changes` on top."""
        if version not in (1, 2):
            raise ValueError(f"gesture-sim generator versions are 1 and 2, got {version}")
        return cls(**{**(OLD_VERSIONS.get(version) or {}), **changes})

    def lighting(self, user: int) -> tuple[str, ...]:
        """The lighting folders of one user: `sessions` of LIGHTING, starting at the user's own."""
        return tuple(LIGHTING[(user - 1 + k) % len(LIGHTING)] for k in range(self.sessions))


OLD_VERSIONS = {1: dict(train_users=16, sessions=1, version=1)}  # spread unused by version 1


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


def draw_subject(user: int, params: GestureParams) -> dict:
    """Version 2: one subject's own build and habits, the same in all their recordings."""
    rng = np.random.default_rng([params.seed, user, 29])

    def u(lo: float, hi: float) -> float:  # a range around its middle, widened by `spread`
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * params.spread
        return float(rng.uniform(mid - half, mid + half))

    return {"cx": 64 + u(-14, 14), "cy": 66 + u(-10, 10), "scale": u(0.75, 1.3), "tempo": u(0.7, 1.4),
            "amp": u(0.8, 1.2), "hand": u(0.7, 1.3), "sleeve": u(-0.8, 1.0), "ellipse": u(0.55, 1.0),
            "tilt": u(-0.4, 0.4), "sway": u(0.3, 1.5), "sway_hz": u(0.2, 0.8), "warp": u(0.0, 0.5)}


def draw_sample_params_v2(label: int, user: int, params: GestureParams, rng: np.random.Generator) -> dict:
    """Version 2: a recording of `user` (their subject parameters, jittered) doing `label`."""
    sub = draw_subject(user, params)
    k = params.spread
    side = _SIDE.get(label)
    if side is None:
        side = int(rng.choice((-1, 1)))
    freq = _BASE_HZ[label] * sub["tempo"] * rng.uniform(1 - 0.15 * k, 1 + 0.15 * k)
    warp_hz = rng.uniform(0.3, 1.0)
    sp = {
        "cx": sub["cx"] + rng.uniform(-4, 4) * k, "cy": sub["cy"] + rng.uniform(-4, 4) * k,
        "scale": sub["scale"] * rng.uniform(0.95, 1.05), "freq": freq, "phase": rng.uniform(0, 2 * np.pi),
        "amp": sub["amp"] * rng.uniform(1 - 0.15 * k, 1 + 0.15 * k), "side": side,
        "duration_ms": int(params.duration_ms * rng.uniform(0.9, 1.1)),
        # time warp: amplitude below freq / warp_hz keeps the motion going forwards
        "warp": (min(sub["warp"], 0.8) * freq / warp_hz, warp_hz, rng.uniform(0, 2 * np.pi)),
        "ellipse": sub["ellipse"], "tilt": sub["tilt"],
        "body": (sub["sway"], sub["sway_hz"], rng.uniform(0, 2 * np.pi)),
        "gain": {"hand": sub["hand"], "arm": sub["sleeve"], "body": 0.5 * sub["hand"]},
    }
    if label == 10:  # other: one or two hands on smooth random paths anywhere around the body
        hands = (1, -1) if rng.random() < 0.4 else (1,)
        sp["hands"] = [(h, rng.uniform(4, 26), rng.uniform(-30, 14), rng.uniform(0.3, 2.5, size=(3, 2)),
                        rng.uniform(2, 8, size=(3, 2)), rng.uniform(0, 2 * np.pi, size=(3, 2))) for h in hands]
    return sp


def mirror_params(label: int, sp: dict) -> tuple[int, dict]:
    """The label and parameters whose paths are the left-right mirror of (label, sp)."""
    mirrored = {**sp, "cx": (SENSOR[0] - 1) - sp["cx"], "side": -sp["side"]}
    if "tilt" in sp:
        mirrored["tilt"] = -sp["tilt"]
    return FLIP_LABEL[label], mirrored


def _chain(a: np.ndarray, b: np.ndarray, n: int) -> list[np.ndarray]:
    """n points from a to b (each (S, 2)): a limb drawn as a chain of blobs."""
    return [a + (b - a) * (k / (n - 1)) for k in range(n)]


def _progress(sp: dict, t: np.ndarray) -> np.ndarray:
    """The gesture's phase advance 2 pi f t, time-warped in version 2 (a tempo that varies)."""
    prog = 2 * np.pi * sp["freq"] * t
    if "warp" in sp:
        amp, hz, phase = sp["warp"]
        prog = prog + amp * np.sin(2 * np.pi * hz * t + phase)
    return prog


def limb_paths(label: int, sp: dict) -> list[tuple[np.ndarray, float, str]]:
    """[(centre path (S, 2) in pixels, sigma, part: hand | arm | body)] of every blob, every 1 ms."""
    t = np.arange(sp["duration_ms"]) / 1000.0
    one = np.ones_like(t)
    cx, cy, sc, s, amp = sp["cx"], sp["cy"], sp["scale"], sp["side"], sp["amp"]
    ph = _progress(sp, t) + sp["phase"]

    def pt(x, y):
        return np.stack([x * one, y * one], axis=1)

    shoulder = (cx + s * 18 * sc, cy - 12 * sc)
    hand_s, arm_s = 4.0 * sc, 2.5 * sc
    blobs: list[tuple[np.ndarray, float, str]] = []

    def arm(elbow: np.ndarray, hand: np.ndarray) -> None:
        blobs.extend((c, arm_s, "arm") for c in _chain(elbow, hand, 4)[:-1])
        blobs.append((hand, hand_s, "hand"))

    if label == 0:  # clap: hands meet in front of the chest
        for si in (s, -s):
            gap = (3 + 10 * amp * (1 + np.cos(ph)) / 2) * sc
            arm(pt(cx + si * 20 * sc, cy + 14 * sc), pt(cx + si * gap, cy + 4 * sc))
    elif label in (1, 2):  # wave: hand above the shoulder sweeping sideways
        hand = pt(shoulder[0] + s * (6 + 9 * amp * np.sin(ph)) * sc, shoulder[1] - 22 * sc + 2 * sc * np.sin(2 * ph))
        arm(pt(shoulder[0] + s * 10 * sc, shoulder[1] - 6 * sc), hand)
    elif label in (3, 4, 5, 6) and "tilt" in sp:  # version 2: a tilted ellipse, the subject's own
        theta = sp["phase"] + _TURN[label] * _progress(sp, t)
        r = 24 * amp * sc
        ox, oy = s * r * np.cos(theta), r * sp["ellipse"] * np.sin(theta)
        c, sn = np.cos(sp["tilt"]), np.sin(sp["tilt"])
        arm(pt(*shoulder), pt(shoulder[0] + ox * c - oy * sn, shoulder[1] + ox * sn + oy * c))
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
    elif label == 10 and "hands" in sp:  # version 2: one or two hands anywhere around the body
        for h, bx, by, hz, am, phase in sp["hands"]:
            off = (am * sc * np.sin(2 * np.pi * t[:, None, None] * hz + phase)).sum(axis=1)
            hand = pt(cx + s * h * (bx * sc + off[:, 0]), cy + by * sc + off[:, 1])
            arm(pt(cx + s * h * 22 * sc, cy + 12 * sc), hand)
    elif label == 10:  # other: one hand on a smooth random path
        w = 2 * np.pi * t[:, None, None] * sp["free_hz"] + sp["free_phase"]
        off = (sp["free_amp"] * sc * np.sin(w)).sum(axis=1)  # (S, 2)
        hand = pt(cx + s * (14 * sc + off[:, 0]), cy + off[:, 1])
        arm(pt(cx + s * 22 * sc, cy + 12 * sc), hand)
    else:
        raise ValueError(f"gesture label must be 0..10, got {label}")
    if "body" in sp:  # version 2: head and torso sway a little, the only trace of the body
        a, hz, phase = sp["body"]
        sway = s * a * np.sin(2 * np.pi * hz * t + phase)
        blobs.append((pt(cx + sway, cy - 30 * sc), 5.0 * sc, "body"))
        blobs.append((pt(cx + 0.6 * sway, cy + 10 * sc + 0.3 * a * np.cos(2 * np.pi * hz * t + phase)), 7.0 * sc, "body"))
    return blobs


def blob_events(path: np.ndarray, sigma: float, gain: float, rng: np.random.Generator,
                step: int = 1, min_rate: float = 0.0) -> tuple[np.ndarray, ...]:
    """Poisson events of one moving Gaussian blob; gain = log contrast / threshold. step > 1: the
    path taken every `step` ms (for slow, wide blobs), each event at a uniform ms inside its step.
    min_rate > 0: cells expecting fewer events are skipped (most of the grid; 5x faster draws)."""
    path = path[::step]
    vel = np.gradient(path, axis=0)  # pixels per step
    radius = int(np.ceil(2.5 * sigma))
    grid = np.arange(-radius, radius + 1)
    base = np.rint(path).astype(np.int64)  # (S, 2)
    px = base[:, 0, None, None] + grid[None, None, :]  # (S, 1, P)
    py = base[:, 1, None, None] + grid[None, :, None]  # (S, P, 1)
    dx = (px - path[:, 0, None, None]).astype(np.float32)
    dy = (py - path[:, 1, None, None]).astype(np.float32)
    g = np.exp(-(dx * dx + dy * dy) / np.float32(2 * sigma * sigma))
    rate = gain * g * (dx * vel[:, 0, None, None] + dy * vel[:, 1, None, None]) / np.float32(sigma * sigma)
    if min_rate > 0:
        lam = np.abs(rate)
        busy = lam >= min_rate
        counts = np.zeros(lam.shape, np.int64)
        counts[busy] = rng.poisson(lam[busy])
    else:
        counts = rng.poisson(np.abs(rate))
    s, i, j = np.nonzero(counts)
    n = counts[s, i, j]
    x = np.repeat(base[s, 0] + grid[j], n)
    y = np.repeat(base[s, 1] + grid[i], n)
    p = np.repeat(rate[s, i, j] > 0, n).astype(np.int8)
    t = np.repeat(s, n)
    if step > 1:
        t = t * step + rng.integers(0, step, len(t))
    keep = (x >= 0) & (x < SENSOR[0]) & (y >= 0) & (y < SENSOR[1])
    return x[keep], y[keep], p[keep], t[keep]


def simulate_gesture(label: int, user: int, lighting: str, params: GestureParams) -> np.ndarray:
    """Events (EVENT_DTYPE, t in us, sorted) of one gesture-sim recording; deterministic in its args."""
    if params.version >= 2:
        return _simulate_v2(label, user, lighting, params)
    rng = np.random.default_rng([params.seed, user, label])
    sp = draw_sample_params(label, params, rng)
    gain = params.brightness / params.threshold
    cols = [blob_events(path, sigma, gain, rng) for path, sigma, _ in limb_paths(label, sp)]
    w, h, _ = SENSOR
    n_noise = rng.poisson(params.noise_hz * _LIGHT_NOISE[lighting] * w * h * sp["duration_ms"] / 1000)
    cols.append((rng.integers(0, w, n_noise), rng.integers(0, h, n_noise), rng.integers(0, 2, n_noise),
                 rng.integers(0, sp["duration_ms"], n_noise)))
    return _sorted_events(cols)


def _sorted_events(cols: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    x, y, p, t = (np.concatenate([c[k] for c in cols]) for k in range(4))
    order = np.argsort(t, kind="stable")
    return make_events(x[order], y[order], p[order], t[order] * 1000)


def scene_noise(user: int, lighting: str, params: GestureParams, duration_ms: int,
                rng: np.random.Generator) -> list[tuple[np.ndarray, ...]]:
    """Version 2's lighting noise (x, y, p, t in ms columns): shot noise, the session's hot pixels and,
    under fluorescent tubes, 120 Hz flicker (an ON then an OFF per cycle, each pixel with its own
    probability) on the edges of the static scene. Where the pixels are is fixed per (user, lighting)."""
    light = LIGHTS[lighting]
    scene = np.random.default_rng([params.seed, user, LIGHTING.index(lighting), 11])
    w, h, _ = SENSOR
    n_shot = rng.poisson(params.noise_hz * light.shot * w * h * duration_ms / 1000)
    cols = [(rng.integers(0, w, n_shot), rng.integers(0, h, n_shot), rng.integers(0, 2, n_shot),
             rng.integers(0, duration_ms, n_shot))]
    hot = scene.integers(0, w, (light.hot_px, 2))
    n_hot = rng.poisson(scene.uniform(5, 60, light.hot_px) * duration_ms / 1000)
    hot_on = scene.random(light.hot_px) < 0.8
    cols.append((np.repeat(hot[:, 0], n_hot), np.repeat(hot[:, 1], n_hot), np.repeat(hot_on, n_hot).astype(np.int8),
                 rng.integers(0, duration_ms, n_hot.sum())))
    if light.flicker_px:
        edges = []
        for x0, y0, rw, rh in zip(scene.integers(0, w - 20, 3), scene.integers(0, h - 20, 3),
                                  scene.integers(10, 60, 3), scene.integers(10, 60, 3)):
            x1, y1 = min(x0 + rw, w - 1), min(y0 + rh, h - 1)
            xs, ys = np.arange(x0, x1 + 1), np.arange(y0, y1 + 1)
            edges += [np.stack([xs, np.full_like(xs, y)], 1) for y in (y0, y1)]
            edges += [np.stack([np.full_like(ys, x), ys], 1) for x in (x0, x1)]
        px = np.unique(np.concatenate(edges), axis=0)
        px = px[scene.permutation(len(px))[:light.flicker_px]]
        q = scene.uniform(0.01, 0.15, len(px))
        period = 1000.0 / MAINS_FLICKER_HZ
        cycles = np.arange(int(duration_ms / period)) * period + scene.uniform(0, period)
        for p, delay in ((1, 0.0), (0, period / 2)):
            c, i = np.nonzero(rng.random((len(cycles), len(px))) < q)
            t = np.minimum((cycles[c] + delay).astype(np.int64), duration_ms - 1)
            cols.append((px[i, 0], px[i, 1], np.full(len(i), p, np.int8), t))
    return cols


def _simulate_v2(label: int, user: int, lighting: str, params: GestureParams) -> np.ndarray:
    rng = np.random.default_rng([params.seed, user, LIGHTING.index(lighting), label, 2])
    sp = draw_sample_params_v2(label, user, params, rng)
    light = LIGHTS[lighting]
    backlit = np.random.default_rng([params.seed, user, LIGHTING.index(lighting), 12]).random() < light.backlit
    gain = params.brightness * light.contrast * (-1 if backlit else 1) / params.threshold
    cols = [blob_events(path, sigma, gain * sp["gain"][part], rng, _BODY_STEP_MS if part == "body" else 1, 1e-4)
            for path, sigma, part in limb_paths(label, sp)]
    return _sorted_events(cols + scene_noise(user, lighting, params, sp["duration_ms"], rng))


def encode_gesture_npy(events: np.ndarray) -> np.ndarray:
    """(N, 4) int32 columns x, y, p, t in ms: the layout tonic's DVSGesture reads (it multiplies t by 1000)."""
    if len(events) == 0:
        raise ValueError("cannot write an empty recording")
    return np.stack([events["x"], events["y"], events["p"], events["t"] // 1000], axis=1).astype(np.int32)
