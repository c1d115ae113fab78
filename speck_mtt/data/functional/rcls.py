"""Simulated CIFAR10-DVS recording: an image moved on a monitor in front of a 128x128 DVS.

CIFAR10-DVS (Li et al. 2017, Frontiers in Neuroscience 11:309) was recorded by showing each
CIFAR-10 image on a monitor and moving it along a repeated closed-loop smooth path ("RCLS") in
front of a DVS128. Here (our choices): an MNIST t10k digit scaled up to most of the sensor, dark
on a bright textured background (a smooth random field, so the whole picture makes events as a
natural image does, not only the digit's strokes), moves `loops` times around a small square; the
pixels are the same log-intensity change detectors, blur, refractory time and background noise as
nmnist-sim's (saccades.dvs_events, path_along, with_noise). Generator version 2 (the default) also
varies each picture as photographs vary: the digit's size, tilt and place on the monitor, its
darkness and the texture's strength (drawn from a second Generator, so version 1, which has no
variation, reproduces exactly: RCLSParams.of_version(1)).
Deterministic: every random draw comes from numpy Generators seeded by (seed, image index).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .events import make_events
from .saccades import blurred_ink, dvs_events, path_along, with_noise

SENSOR = (128, 128, 2)  # DVS128
SQUARE = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0))


@dataclass(frozen=True)
class RCLSParams:
    """Generator parameters; all of them key the on-disk cache."""

    seed: int = 0
    scale: float = 3.5  # the 28x28 digit becomes 98x98 sensor pixels
    loop_px: float = 5.0  # side of the square the image moves around
    loops: int = 4
    loop_us: float = 325_000.0  # one loop; 4 loops: 1.3 s per recording
    ease: float = 0.5
    texture: float = 0.45  # background texture's ink amplitude (0: plain monitor)
    texture_px: float = 6.0  # its correlation length (sigma of the smoothing, sensor pixels)
    threshold: float = 0.2  # log-intensity contrast threshold
    threshold_spread: float = 0.3  # per-pixel sigma, relative to the threshold
    contrast: float = 0.8  # ink darkness on the monitor
    refractory_us: float = 1000.0
    blur_px: float = 1.0
    noise_hz: float = 0.5  # background events per pixel per second
    noise_on_fraction: float = 0.5
    position_jitter_px: float = 4.0
    dt_us: float = 2000.0
    scale_spread: float = 0.15  # per recording: scale times U(1 - s, 1 + s)
    rotation_deg: float = 15.0  # per recording: the digit tilted by U(-r, r) degrees
    offset_px: float = 8.0  # per recording: the digit placed U(-o, o) pixels off the monitor's centre
    contrast_spread: float = 0.25  # per recording: ink darkness times U(1 - s, 1)
    texture_spread: float = 0.3  # per recording: texture amplitude times U(1 - s, 1 + s)
    version: int = 2  # bump whenever the generator's code or defaults change its output

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of_version(cls, version: int, **changes: float) -> "RCLSParams":
        """The parameters of generator version 1 or 2, with `changes` on top."""
        if version not in (1, 2):
            raise ValueError(f"cifar10dvs-sim generator versions are 1 and 2, got {version}")
        return cls(**{**(OLD_VERSIONS.get(version) or {}), **changes})

    @property
    def varies(self) -> bool:
        return any((self.scale_spread, self.rotation_deg, self.offset_px, self.contrast_spread, self.texture_spread))


# Version 1: the same picture for every recording of a digit (no per-recording variation).
OLD_VERSIONS = {1: dict(scale_spread=0.0, rotation_deg=0.0, offset_px=0.0, contrast_spread=0.0, texture_spread=0.0,
                        version=1)}


@dataclass(frozen=True)
class Picture:
    """One recording's draw of the per-recording variation (all neutral in version 1)."""

    scale: float
    rotation_deg: float
    offset: tuple[float, float]
    contrast: float
    texture: float


def picture_of(params: RCLSParams, index: int) -> Picture:
    """The variation of recording `index`, from its own Generator (version 1's draws stay untouched)."""
    if not params.varies:
        return Picture(params.scale, 0.0, (0.0, 0.0), params.contrast, params.texture)
    u = np.random.default_rng([params.seed, index, 2]).uniform(-1.0, 1.0, size=6)
    return Picture(params.scale * (1 + params.scale_spread * u[0]), params.rotation_deg * u[1],
                   (params.offset_px * u[2], params.offset_px * u[3]),
                   params.contrast * (1 - params.contrast_spread * (u[4] + 1) / 2),
                   params.texture * (1 + params.texture_spread * u[5]))


def scene(image: np.ndarray, params: RCLSParams, rng: np.random.Generator, picture: Picture) -> np.ndarray:
    """Ink in [0, 1] of the whole monitor picture, sensor-sized plus a margin for the motion:
    the scaled (tilted, placed) digit over the smooth random texture."""
    margin = int(np.ceil(params.loop_px + params.position_jitter_px)) + 2
    side = SENSOR[0] + 2 * margin
    field = ndimage.gaussian_filter(rng.standard_normal((side, side)), params.texture_px)
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-12)
    ink = picture.texture * field
    digit = image.astype(np.float64) / 255.0
    if picture.rotation_deg:
        digit = ndimage.rotate(digit, picture.rotation_deg, reshape=False, order=1)
    digit = np.clip(ndimage.zoom(digit, picture.scale, order=1), 0.0, 1.0)
    top = [min(max((side - n) // 2 + round(o), 0), side - n) for n, o in zip(digit.shape, picture.offset[::-1])]
    window = ink[top[0]:top[0] + digit.shape[0], top[1]:top[1] + digit.shape[1]]
    window[:] = np.maximum(window, digit)
    return ink


def simulate_rcls(image: np.ndarray, params: RCLSParams, index: int) -> np.ndarray:
    """Events (EVENT_DTYPE, sorted by t) of one simulated CIFAR10-DVS-style recording of a digit."""
    rng = np.random.default_rng([params.seed, index])
    w, h, _ = SENSOR
    bounds = np.arange(4 * params.loops + 1) * (params.loop_us / 4)
    corners = [(params.loop_px * cx, params.loop_px * cy) for cx, cy in SQUARE[:4]] * params.loops + [(0.0, 0.0)]
    ts, dx, dy = path_along(corners, bounds, params.ease, params.dt_us)
    picture = picture_of(params, index)
    ink = scene(image, params, rng, picture)
    margin = (ink.shape[0] - h) // 2
    ink, pad = blurred_ink(ink * 255.0, params.blur_px)
    x0, y0 = -margin - pad - params.loop_px / 2 + rng.uniform(-1, 1, size=2) * params.position_jitter_px
    spread = params.threshold_spread
    thr_on = params.threshold * np.clip(1 + spread * rng.standard_normal((h, w)), 0.25, None)
    thr_off = params.threshold * np.clip(1 + spread * rng.standard_normal((h, w)), 0.25, None)
    x, y, p, t = dvs_events(ink, x0, y0, ts, dx, dy, thr_on, thr_off, picture.contrast, params.refractory_us)
    x, y, p, t = with_noise(x, y, p, t, rng, params.noise_hz, w, h, ts[-1], params.noise_on_fraction)
    order = np.argsort(t, kind="stable")
    return make_events(x[order], y[order], p[order], t[order])
