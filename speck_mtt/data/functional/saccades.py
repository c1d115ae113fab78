"""Simulated N-MNIST: an event camera making three saccades over an MNIST digit (Orchard et al. 2015).

Model (our choices; version 3 is tuned so the distributions of events per recording and per
saccade, ON fraction, saccade timing, position and spread, per-pixel intervals, ON/OFF overlap
and isolated noise events match the 800 real recordings of nmnist-real800, see
`speck-mtt data info nmnist-sim`; SaccadeParams.of_version(1 | 2) reproduces the older ones):
- the 28x28 digit is shown dark on a bright monitor (p=1 where the ink leaves, as in the real
  sample) inside a 34x34 window, seen through a Gaussian optical blur; intensity
  I = 1 - contrast * ink, bilinear over sub-pixel shifts. The blur matters for event-driven
  use: without it a thin stroke makes a pixel fire OFF then ON within a few ms, twice as often
  as in the real sample (frames sum such pairs away, an event-driven chip does not);
- the view moves along the triangle (0,0) -> (3.5,7) -> (7,0) -> (0,0) pixels that tonic's
  NMNIST.stabilize undoes, three ~103 ms saccades; the velocity 1 - ease * cos(2 pi tau) never
  quite stops between them (the real recordings start moving within ~15 ms and their gaps are
  not silent);
- each pixel is a log-intensity change detector: it fires ON (OFF) when log I rose (fell) by its
  own threshold since its last event (per-pixel Gaussian threshold spread), with a refractory
  period, crossing times interpolated inside each simulation step;
- uniform background noise events (Poisson, per pixel rate; in the real recordings nearly all ON).
Deterministic: every random draw comes from numpy Generators seeded by (seed, digit index).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from .events import make_events
from .nmnist_bin import NMNIST_SENSOR

TRIANGLE = ((0.0, 0.0), (3.5, 7.0), (7.0, 0.0), (0.0, 0.0))


@dataclass(frozen=True)
class SaccadeParams:
    """Generator parameters (the defaults are version 3); all of them key the on-disk cache."""

    seed: int = 0
    threshold: float = 0.19  # log-intensity contrast threshold C
    threshold_spread: float = 0.32  # per-pixel sigma, relative to C
    contrast: float = 0.69  # ink darkness on the monitor
    refractory_us: float = 370.0
    blur_px: float = 0.63  # sigma of the optics' Gaussian blur, in sensor pixels (0: none)
    noise_hz: float = 0.4  # background events per pixel per second
    saccade_us: float = 102_800.0
    timing_jitter_us: float = 4_000.0
    position_jitter_px: float = 0.5
    dt_us: float = 1000.0
    ease: float = 0.72  # 1: velocity zero at each saccade's ends (raised cosine); 0: constant velocity
    offset_x_px: float = -0.25  # the digit's mean offset on the sensor (+: right, down)
    offset_y_px: float = 1.5
    noise_on_fraction: float = 1.0  # fraction of background noise events that are ON
    version: int = 3  # bump whenever the generator's code or defaults change its output

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of_version(cls, version: int, **changes: float) -> "SaccadeParams":
        """The parameters of generator version 1, 2 or 3, with `changes` on top."""
        if version not in (1, 2, 3):
            raise ValueError(f"nmnist-sim generator versions are 1, 2 and 3, got {version}")
        return cls(**{**(OLD_VERSIONS.get(version) or {}), **changes})


# Version 2 (one real recording as reference) and version 1 (no blur): same code, other numbers;
# their noise polarity was drawn 50/50 with rng.integers (kept so they reproduce exactly).
_V2 = dict(threshold=0.25, threshold_spread=0.15, contrast=0.97, refractory_us=1000.0, blur_px=1.1, noise_hz=0.1,
           saccade_us=104_000.0, timing_jitter_us=4_000.0, position_jitter_px=1.0, ease=1.0, offset_x_px=0.0,
           offset_y_px=0.0, noise_on_fraction=0.5, version=2)
OLD_VERSIONS = {2: _V2, 1: {**_V2, "threshold": 0.37, "contrast": 0.85, "blur_px": 0.0, "version": 1}}


def blurred_ink(image: np.ndarray, sigma: float) -> tuple[np.ndarray, int]:
    """Ink in [0, 1] seen through a Gaussian blur of `sigma` pixels, padded so no ink is cut off;
    returns (ink, pad) where pad shifts image coordinates into the padded array."""
    ink = image.astype(np.float64) / 255.0
    if sigma <= 0:
        return ink, 0
    pad = int(math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / sigma) ** 2)
    k /= k.sum()
    ink = np.pad(ink, pad)
    ink = np.apply_along_axis(np.convolve, 0, ink, k, mode="same")
    return np.apply_along_axis(np.convolve, 1, ink, k, mode="same"), pad


def saccade_path(params: SaccadeParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_us, dx, dy) of the digit's shift, sampled every dt_us over the three saccades."""
    bounds = np.arange(4) * float(params.saccade_us)
    bounds[1:3] += rng.uniform(-params.timing_jitter_us, params.timing_jitter_us, size=2)
    return path_along(TRIANGLE, bounds, params.ease, params.dt_us)


def path_along(corners, bounds: np.ndarray, ease: float, dt_us: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_us, dx, dy) sampled every dt_us along straight segments corners[k] -> corners[k + 1],
    segment k between times bounds[k] and bounds[k + 1], velocity 1 - ease * cos(2 pi tau)."""
    t = np.arange(0.0, bounds[-1] + dt_us / 2, dt_us)
    dx, dy = np.zeros_like(t), np.zeros_like(t)
    for k in range(len(bounds) - 1):
        inside = (t >= bounds[k]) & (t <= bounds[k + 1])
        tau = (t[inside] - bounds[k]) / (bounds[k + 1] - bounds[k])
        s = tau - ease * np.sin(2 * np.pi * tau) / (2 * np.pi)
        (x0, y0), (x1, y1) = corners[k], corners[k + 1]
        dx[inside] = x0 + s * (x1 - x0)
        dy[inside] = y0 + s * (y1 - y0)
    return t, dx, dy


@njit(cache=True, inline="always")
def _intensity(ink, u, v, contrast):
    """1 - contrast * bilinear ink at image coordinates (u=column, v=row); ink is 0 outside."""
    j0 = math.floor(u)
    i0 = math.floor(v)
    fu = u - j0
    fv = v - i0
    h, w = ink.shape
    acc = 0.0
    for di in range(2):
        i = i0 + di
        if i < 0 or i >= h:
            continue
        wv = fv if di else 1.0 - fv
        for dj in range(2):
            j = j0 + dj
            if j < 0 or j >= w:
                continue
            acc += wv * (fu if dj else 1.0 - fu) * ink[i, j]
    return 1.0 - contrast * acc


@njit(cache=True)
def dvs_events(ink, x0, y0, ts, dx, dy, thr_on, thr_off, contrast, refractory_us):
    """Log-intensity change detector over a moving image; returns (x, y, p, t_us) arrays, unsorted.

    Pixel (x, y) sees image point (x - x0 - dx(t), y - y0 - dy(t)); log I is linear in each step.
    """
    h, w = thr_on.shape
    cap = 8192
    ex = np.empty(cap, np.int16)
    ey = np.empty(cap, np.int16)
    ep = np.empty(cap, np.int8)
    et = np.empty(cap, np.int64)
    n = 0
    ref = np.empty((h, w))
    prev = np.empty((h, w))
    last = np.full((h, w), -1e18)
    for y in range(h):
        for x in range(w):
            level = math.log(_intensity(ink, x - x0 - dx[0], y - y0 - dy[0], contrast))
            ref[y, x] = level
            prev[y, x] = level
    for s in range(1, ts.shape[0]):
        t0 = ts[s - 1]
        t1 = ts[s]
        for y in range(h):
            for x in range(w):
                level = math.log(_intensity(ink, x - x0 - dx[s], y - y0 - dy[s], contrast))
                lp = prev[y, x]
                while True:
                    d = level - ref[y, x]
                    if d >= thr_on[y, x]:
                        target = ref[y, x] + thr_on[y, x]
                        pol = 1
                    elif d <= -thr_off[y, x]:
                        target = ref[y, x] - thr_off[y, x]
                        pol = 0
                    else:
                        break
                    frac = 1.0
                    if level != lp:
                        frac = min(max((target - lp) / (level - lp), 0.0), 1.0)
                    te = max(t0 + frac * (t1 - t0), last[y, x] + refractory_us)
                    if te > t1:
                        break  # still refractory: the change stays pending for the next step
                    if n == cap:
                        cap *= 2
                        ex2 = np.empty(cap, np.int16)
                        ey2 = np.empty(cap, np.int16)
                        ep2 = np.empty(cap, np.int8)
                        et2 = np.empty(cap, np.int64)
                        ex2[:n] = ex[:n]
                        ey2[:n] = ey[:n]
                        ep2[:n] = ep[:n]
                        et2[:n] = et[:n]
                        ex, ey, ep, et = ex2, ey2, ep2, et2
                    ex[n] = x
                    ey[n] = y
                    ep[n] = pol
                    et[n] = int(te)
                    n += 1
                    ref[y, x] = target
                    last[y, x] = te
                prev[y, x] = level
    return ex[:n], ey[:n], ep[:n], et[:n]


def with_noise(x, y, p, t, rng: np.random.Generator, noise_hz: float, w: int, h: int, duration_us: float,
               on_fraction: float | None) -> tuple[np.ndarray, ...]:
    """The events plus uniform background noise (Poisson, noise_hz per pixel), ON with probability
    on_fraction (None: a 50/50 rng.integers draw)."""
    n_noise = rng.poisson(noise_hz * w * h * duration_us * 1e-6)
    x = np.concatenate([x, rng.integers(0, w, n_noise)])
    y = np.concatenate([y, rng.integers(0, h, n_noise)])
    if on_fraction is None:
        noise_p = rng.integers(0, 2, n_noise)
    else:
        noise_p = (rng.random(n_noise) < on_fraction).astype(np.int8)
    p = np.concatenate([p, noise_p])
    t = np.concatenate([t, rng.integers(0, int(duration_us), n_noise)])
    return x, y, p, t


def simulate_saccades(image: np.ndarray, params: SaccadeParams, index: int) -> np.ndarray:
    """Events (EVENT_DTYPE, sorted by t) of one simulated N-MNIST recording of a 28x28 uint8 digit."""
    rng = np.random.default_rng([params.seed, index])
    w, h, _ = NMNIST_SENSOR
    ts, dx, dy = saccade_path(params, rng)
    # centre the path's 7x7 box: image centre 13.5 + 3.5 lands on sensor centre 16.5
    x0, y0 = -0.5 + rng.uniform(-1, 1, size=2) * params.position_jitter_px
    x0, y0 = x0 + params.offset_x_px, y0 + params.offset_y_px
    spread = params.threshold_spread
    thr_on = params.threshold * np.clip(1 + spread * rng.standard_normal((h, w)), 0.25, None)
    thr_off = params.threshold * np.clip(1 + spread * rng.standard_normal((h, w)), 0.25, None)
    ink, pad = blurred_ink(image, params.blur_px)
    x0, y0 = x0 - pad, y0 - pad
    x, y, p, t = dvs_events(ink, x0, y0, ts, dx, dy, thr_on, thr_off, params.contrast, params.refractory_us)
    noise_p = None if params.version < 3 else params.noise_on_fraction  # 1, 2: 50/50 (kept so they reproduce)
    x, y, p, t = with_noise(x, y, p, t, rng, params.noise_hz, w, h, ts[-1], noise_p)
    order = np.argsort(t, kind="stable")
    return make_events(x[order], y[order], p[order], t[order])
